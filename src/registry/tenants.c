/* registry — tenant offload and onload: the registry as the store's tenant
 * mover (docs/registry.md, "Tenant offloading").
 *
 * The one mechanism: a tenant's closed RocksDB directory -> content-addressed
 * blobs + {location}/tenants/{c}/{t}/manifest.json (sv_snapshot_put_dir);
 * back: the OFFLOADED mount hydrates it into the cache (sv_snapshot_get_dir,
 * single flight, quota), and onload links it from there into the store.
 *
 * Protocol (the store persists the statuses, see store_tenants.c):
 *   offload job:  put_dir -> destroy any stale registry record -> register
 *                 the tenant NEW/OFFLOADED -> sv_store_offload_done(ok)
 *                 (the store removes the local files only after that).
 *   onload job:   acquire (hydrate) -> checkpoint the cache dir into the
 *                 store's tenant dir -> release -> sv_store_onload_done ->
 *                 destroy the registry record (the tenant is local again).
 *   capture:      acquire -> checkpoint into the capture dir -> release.
 * Invariants: a registry record with source OFFLOADED exists for every
 * OFFLOADED tenant once attach has run (attach re-registers what a crash lost
 * and destroys records of tenants that are local again); the location copy is
 * never deleted here (snapshot GC keeps its blobs while the manifest exists),
 * so offloading unchanged data again uploads nothing.
 * Every job ends SUCCEEDED or FAILED with the reason; one interrupted by a
 * crash ends FAILED "interrupted by restart" (sv_jobs_recover) while the store
 * settles the tenant. */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "jobs.h"
#include "registry_internal.h"
#include "snapshot.h"
#include "store.h"

struct sv_registry_svc {
    sv_registry *r;
    sv_store *st;
    sv_snapshot *snap;
    sv_jobs *jobs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running; /* job threads */
};

sv_store *sv__svc_store(struct sv_registry_svc *v) { return v->st; }
sv_snapshot *sv__svc_snapshot(struct sv_registry_svc *v) { return v->snap; }
int sv__mounts_attach(sv_registry *r, struct sv_registry_svc *v, sv_err *err); /* mounts.c */

#define LAY_OUT_TIMEOUT_MS (3600 * 1000LL) /* an hour: a large tenant from a slow bucket still fits */

static void manifest_key(const char *collection, const char *tenant, char key[400])
{
    snprintf(key, 400, "tenants/%s/%s/manifest.json", collection, tenant);
}

/* ---- the OFFLOADED mount ------------------------------------------------------ */

static int mount_size(void *self, const char *collection, const char *name, int64_t *bytes, sv_err *err)
{
    struct sv_registry_svc *v = self;
    char key[400];
    manifest_key(collection, name, key);
    sv_dir_stats ds = {0};
    int rc = sv_snapshot_dir_info(v->snap, key, NULL, &ds, NULL, err);
    if (rc == 0)
        *bytes = ds.bytes;
    return rc;
}

static int mount_fetch(void *self, const char *collection, const char *name, const char *dir,
                       _Atomic int64_t *progress, sv_err *err)
{
    struct sv_registry_svc *v = self;
    char key[400];
    manifest_key(collection, name, key);
    if (rmdir(dir) != 0) /* get_dir lays out into a new directory */
        return sv_fail(err, SV_EIO, "cannot prepare %s for hydration", dir);
    sv_crash_point("hydrate:fetch");
    return sv_snapshot_get_dir(v->snap, key, NULL, dir, NULL, progress, NULL, err);
}

/* ---- jobs --------------------------------------------------------------------- */

static void mv_forget(void *self, const char *collection, const char *tenant);

typedef struct move_task {
    struct sv_registry_svc *v;
    sv_job *job;
    bool onload;
    char collection[129];
    char tenant[72];
    char dir[1200];
    int64_t objects;
} move_task;

/* Hydrates the tenant (single flight through the registry) and lays it out
 * at dst: hard links for the immutable files, copies of the rest. */
static int lay_out(struct sv_registry_svc *v, const char *collection, const char *tenant, const char *dst,
                   int64_t *bytes, sv_err *err)
{
    sv_shard_ref *ref = NULL;
    /* Bounded: an onload or a capture never waits for cache room (or a
     * stuck fetch) for ever; the hydration itself goes on for the next one. */
    int rc = sv_registry_acquire(v->r, collection, tenant, LAY_OUT_TIMEOUT_MS, &ref, err);
    if (rc)
        return sv_err_wrap(err, "hydrating tenant %s of %s", tenant, collection);
    char parent[1200];
    snprintf(parent, sizeof parent, "%s", dst);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    if (slash && (rc = sv_mkdirs(parent, err)) != 0) {
        sv_registry_release(ref);
        return rc;
    }
    sv_crash_point("lay_out:hydrated");
    char current[1400];
    snprintf(current, sizeof current, "%s/CURRENT", sv_shard_ref_dir(ref));
    if (sv_path_exists(current))
        rc = sv_db_checkpoint_closed(sv_shard_ref_dir(ref), dst, err);
    else /* a tenant that never held data: an empty directory */
        rc = sv_mkdirs(dst, err);
    sv_crash_point("lay_out:laid_out");
    if (rc == 0 && bytes)
        *bytes = sv_dir_bytes(dst);
    sv_registry_release(ref);
    return rc;
}

static int run_offload(move_task *t, json_t **result, sv_err *err)
{
    struct sv_registry_svc *v = t->v;
    char key[400];
    manifest_key(t->collection, t->tenant, key);
    char empty[1300] = "";
    const char *dir = t->dir;
    int rc = 0;
    if (!sv_path_exists(t->dir)) { /* a tenant that never held data: an empty directory */
        snprintf(empty, sizeof empty, "%s/offload-%s-%s", sv_store_tmp_dir(v->st), t->collection, t->tenant);
        sv_rmtree(empty, NULL);
        rc = sv_mkdirs(empty, err);
        dir = empty;
    }
    sv_dir_stats ds = {0};
    if (rc == 0)
        rc = sv_snapshot_put_dir(v->snap, dir, t->collection, t->tenant, t->objects, key, t->job, &ds, err);
    if (empty[0])
        sv_rmtree(empty, NULL);
    if (rc == 0) {
        sv_job_set_totals(t->job, ds.files, ds.bytes);
        sv_job_set_done(t->job, ds.files, ds.bytes);
    }
    /* A record left from an earlier offload may hold older files in the
     * cache: drop it, then register the tenant afresh (NEW, nothing cached). */
    if (rc == 0) {
        sv_err e2 = {0};
        int d = sv_registry_destroy(v->r, t->collection, t->tenant, &e2);
        if (d != 0 && d != SV_ENOTFOUND)
            rc = sv_fail(err, d, "%s", e2.msg);
    }
    sv_crash_point("offload:after_upload");
    if (rc == 0)
        rc = sv_registry_register(v->r, t->collection, t->tenant, SV_SHARD_SRC_OFFLOADED, ds.bytes, err);
    sv_crash_point("offload:after_register");
    if (rc == 0)
        *result = json_pack("{s:I,s:I,s:I,s:I,s:s}", "files", (json_int_t)ds.files, "bytes", (json_int_t)ds.bytes,
                            "bytesUploaded", (json_int_t)ds.bytes_uploaded, "objects", (json_int_t)t->objects,
                            "manifest", key);
    return rc;
}

/* An onload's job counters follow its hydration while lay_out waits for it:
 * items 1 (the tenant), bytes fetched of the bytes its manifest holds. */
typedef struct onload_watch {
    move_task *t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
} onload_watch;

static void *onload_watch_main(void *arg)
{
    onload_watch *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        int64_t done, total;
        sv__registry_hydration(w->t->v->r, w->t->collection, w->t->tenant, &done, &total);
        if (total > 0) {
            sv_job_set_totals(w->t->job, 1, total);
            sv_job_set_done(w->t->job, 0, done < total ? done : total);
        }
        pthread_mutex_lock(&w->mu);
        if (!w->stop)
            sv_cond_wait_ms(&w->cv, &w->mu, 200);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int run_onload(move_task *t, json_t **result, sv_err *err)
{
    int64_t bytes = 0;
    onload_watch w = {.t = t};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_t th;
    bool watching = pthread_create(&th, NULL, onload_watch_main, &w) == 0;
    int rc = lay_out(t->v, t->collection, t->tenant, t->dir, &bytes, err);
    if (watching) {
        pthread_mutex_lock(&w.mu);
        w.stop = true;
        pthread_cond_signal(&w.cv);
        pthread_mutex_unlock(&w.mu);
        pthread_join(th, NULL);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    if (rc == 0) {
        sv_job_set_totals(t->job, 1, bytes);
        sv_job_set_done(t->job, 1, bytes);
        *result = json_pack("{s:I}", "bytes", (json_int_t)bytes);
    }
    return rc;
}

static void *move_thread(void *arg)
{
    move_task *t = arg;
    struct sv_registry_svc *v = t->v;
    sv_err err = {0};
    json_t *result = NULL;
    sv_job_start(t->job, NULL);
    sv_crash_point(t->onload ? "onload:started" : "offload:started");
    int rc = t->onload ? run_onload(t, &result, &err) : run_offload(t, &result, &err);
    sv_err e2 = {0};
    int drc = t->onload ? sv_store_onload_done(v->st, t->collection, t->tenant, rc, err.msg, &e2)
                        : sv_store_offload_done(v->st, t->collection, t->tenant, rc, err.msg, &e2);
    if (rc == 0 && drc != 0) { /* deleted meanwhile, or the catalog failed */
        rc = drc;
        err = e2;
        if (!t->onload && drc == SV_ENOTFOUND) /* what this offload stored belongs to nobody */
            mv_forget(v, t->collection, t->tenant);
    }
    sv_crash_point(t->onload ? "onload:settled" : "offload:settled");
    if (rc == 0 && t->onload) { /* local again: the cached copy is not needed */
        sv_err e3 = {0};
        if (sv_registry_destroy(v->r, t->collection, t->tenant, &e3) != 0 && e3.code != SV_ENOTFOUND)
            sv_warn("registry record of an onloaded tenant kept", "collection=%s tenant=%s error=\"%s\"",
                    t->collection, t->tenant, e3.msg);
    }
    sv_job_finish(t->job, rc == 0 ? SV_JOB_SUCCEEDED : rc == SV_ECANCELED ? SV_JOB_CANCELED : SV_JOB_FAILED,
                  rc ? (err.msg[0] ? err.msg : sv_strerror(rc)) : NULL, result, NULL);
    json_decref(result); /* sv_job_finish keeps its own reference */
    sv_job_release(t->job);
    free(t);
    pthread_mutex_lock(&v->mu);
    v->running--;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
    return NULL;
}

static int start_move(struct sv_registry_svc *v, bool onload, const char *collection, const char *tenant,
                      const char *dir, int64_t objects, sv_err *err)
{
    move_task *t = calloc(1, sizeof *t);
    if (!t)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    t->v = v;
    t->onload = onload;
    t->objects = objects;
    snprintf(t->collection, sizeof t->collection, "%s", collection);
    snprintf(t->tenant, sizeof t->tenant, "%s", tenant);
    snprintf(t->dir, sizeof t->dir, "%s", dir);
    sv_job_spec spec = {.kind = onload ? "onload" : "offload", .collection = collection, .target = tenant};
    int rc = sv_jobs_create(v->jobs, &spec, &t->job, err);
    if (rc) {
        free(t);
        return rc;
    }
    pthread_mutex_lock(&v->mu);
    v->running++;
    pthread_mutex_unlock(&v->mu);
    int e = sv_thread_detached(move_thread, t);
    if (e) {
        pthread_mutex_lock(&v->mu);
        v->running--;
        pthread_mutex_unlock(&v->mu);
        sv_job_finish(t->job, SV_JOB_FAILED, "cannot start a thread", NULL, NULL);
        sv_job_release(t->job);
        free(t);
        return sv_fail(err, SV_EIO, "cannot start the %s thread", onload ? "onload" : "offload");
    }
    return 0;
}

static int mv_offload(void *self, const char *collection, const char *tenant, const char *dir, int64_t objects,
                      sv_err *err)
{
    return start_move(self, false, collection, tenant, dir, objects, err);
}

static int mv_onload(void *self, const char *collection, const char *tenant, const char *dir, sv_err *err)
{
    return start_move(self, true, collection, tenant, dir, 0, err);
}

static int mv_materialize(void *self, const char *collection, const char *tenant, const char *dst, sv_err *err)
{
    return lay_out(self, collection, tenant, dst, NULL, err);
}

/* A deleted offloaded tenant: its registry record and cached copy, and its
 * manifest in the location (the blobs go at the next snapshot GC). A record
 * still referenced (an onload or a capture reading it) is dropped at the
 * next start instead (reconcile). */
static void mv_forget(void *self, const char *collection, const char *tenant)
{
    struct sv_registry_svc *v = self;
    char key[400];
    manifest_key(collection, tenant, key);
    sv_err e = {0};
    if (sv_registry_destroy(v->r, collection, tenant, &e) != 0 && e.code != SV_ENOTFOUND)
        sv_warn("registry record of a deleted tenant kept until restart", "collection=%s tenant=%s error=\"%s\"",
                collection, tenant, e.msg);
    sv_err e2 = {0};
    if (sv_snapshot_drop_dir(v->snap, key, &e2) != 0)
        sv_warn("manifest of a deleted tenant not removed", "key=%s error=\"%s\"", key, e2.msg);
    else
        sv_info("offloaded tenant forgotten", "collection=%s tenant=%s", collection, tenant);
}

/* ---- attach -------------------------------------------------------------------- */

/* Registry records of OFFLOADED tenants follow the store: one per OFFLOADED
 * (or ONLOADING) tenant, none for the others. */
static int reconcile(struct sv_registry_svc *v, sv_err *err)
{
    sv_collection_name *names = NULL;
    size_t nn = 0;
    int rc = sv_store_collection_names(v->st, &names, &nn, err);
    json_t *reg = NULL;
    if (rc == 0)
        rc = sv_registry_shards_json(v->r, NULL, NULL, &reg, err);
    size_t i;
    json_t *e;
    for (size_t k = 0; rc == 0 && k < nn; k++) {
        sv_shard_info *infos = NULL;
        size_t n = 0;
        if (sv_store_shards_ex(v->st, names[k], 0, &infos, &n, NULL) != 0) /* statuses only: nothing opened */
            continue;
        for (size_t j = 0; j < n; j++) {
            if (!infos[j].is_tenant || (infos[j].status != SV_SHARD_OFFLOADED && infos[j].status != SV_SHARD_ONLOADING))
                continue;
            if (infos[j].node[0] && strcmp(infos[j].node, sv_store_node(v->st)) != 0)
                continue; /* another node's tenant: its registry holds it */
            sv_err e2 = {0};
            if (sv_registry_register(v->r, names[k], infos[j].name, SV_SHARD_SRC_OFFLOADED, 0, &e2) == 0)
                sv_info("registry: offloaded tenant registered again", "collection=%s tenant=%s", names[k],
                        infos[j].name);
        }
        free(infos);
    }
    json_array_foreach(rc == 0 ? json_object_get(reg, "shards") : NULL, i, e)
    {
        const char *c = json_string_value(json_object_get(e, "collection"));
        const char *t = json_string_value(json_object_get(e, "shard"));
        const char *src = json_string_value(json_object_get(e, "source"));
        sv_shard_status now;
        if (!c || !t || !src || strcmp(src, "offloaded"))
            continue;
        if (sv_store_tenant_status(v->st, c, t, &now, NULL) == 0 &&
            (now == SV_SHARD_OFFLOADED || now == SV_SHARD_ONLOADING))
            continue;
        sv_err e2 = {0};
        if (sv_registry_destroy(v->r, c, t, &e2) == 0)
            sv_info("registry: record of a tenant no longer offloaded removed", "collection=%s tenant=%s", c, t);
    }
    json_decref(reg);
    free(names);
    return rc;
}

int sv_registry_attach(sv_registry *r, sv_store *st, sv_snapshot *snap, sv_jobs *jobs, sv_err *err)
{
    if (r->svc)
        return sv_fail(err, SV_ECONFLICT, "registry: already attached");
    struct sv_registry_svc *v = calloc(1, sizeof *v);
    if (!v)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    *v = (struct sv_registry_svc){.r = r, .st = st, .snap = snap, .jobs = jobs};
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    r->svc = v;
    int rc = sv_jobs_register_kind(jobs, &(sv_job_kind){.name = "offload"}, err);
    if (rc == 0)
        rc = sv_jobs_register_kind(jobs, &(sv_job_kind){.name = "onload", .no_cancel = "an onload ends on its own "
                                                                                        "(ACTIVE, or back to OFFLOADED "
                                                                                        "with the reason)"}, err);
    sv_registry_mount m = {.self = v, .size = mount_size, .fetch = mount_fetch};
    if (rc == 0)
        rc = sv_registry_set_mount(r, SV_SHARD_SRC_OFFLOADED, &m, err);
    if (rc == 0)
        rc = reconcile(v, err);
    if (rc == 0)
        rc = sv__mounts_attach(r, v, err);
    if (rc == 0)
        sv_store_set_tenant_mover(st, &(sv_tenant_mover){.self = v, .offload = mv_offload, .onload = mv_onload,
                                                         .materialize = mv_materialize, .forget = mv_forget});
    return rc;
}

void sv__registry_svc_close(sv_registry *r)
{
    struct sv_registry_svc *v = r->svc;
    if (!v)
        return;
    sv__mounts_close(r);
    sv_store_set_tenant_mover(v->st, NULL);
    pthread_mutex_lock(&v->mu);
    while (v->running > 0)
        pthread_cond_wait(&v->cv, &v->mu);
    pthread_mutex_unlock(&v->mu);
    pthread_mutex_destroy(&v->mu);
    pthread_cond_destroy(&v->cv);
    free(v);
    r->svc = NULL;
}

/* ---- inspection: registered shards plus the store's local ones ---------------- */

/* Local shards as registry entries: ACTIVE ones are served (SERVING), the
 * INACTIVE and OFFLOADING ones are on disk, unopened (AVAILABLE). OFFLOADED
 * and ONLOADING tenants are the registry's own records. */
static int local_shards(struct sv_registry_svc *v, const char *collection, int want, unsigned flags, json_t *arr,
                        sv_err *err)
{
    sv_collection_name *names = NULL;
    size_t nn = 0;
    int rc = sv_store_collection_names(v->st, &names, &nn, err);
    for (size_t k = 0; rc == 0 && k < nn; k++) {
        if (collection && strcmp(collection, names[k]))
            continue;
        sv_shard_info *infos = NULL;
        size_t n = 0;
        if (sv_store_shards_ex(v->st, names[k], flags, &infos, &n, NULL) != 0) /* never opens a shard */
            continue;
        for (size_t j = 0; j < n; j++) {
            sv_shard_status s = infos[j].status;
            if (s == SV_SHARD_OFFLOADED || s == SV_SHARD_ONLOADING || !infos[j].local)
                continue; /* the registry's own records; another node's shards are in its registry */
            sv_shard_state state = s == SV_SHARD_ACTIVE ? SV_SHARD_SERVING : SV_SHARD_AVAILABLE;
            if (want >= 0 && (int)state != want)
                continue;
            json_t *e = json_pack("{s:s,s:s,s:o,s:s,s:s,s:i,s:I,s:I,s:i,s:b,s:s,s:n}", "collection", names[k], "shard",
                                  infos[j].name, "tenant", infos[j].is_tenant ? json_string(infos[j].name) : json_null(),
                                  "state", sv_shard_state_name(state), "source", "local", "refs", 0, "localBytes",
                                  (json_int_t)infos[j].bytes, "remoteBytes", (json_int_t)0, "hydration", 100, "pinned",
                                  false, "lastError", "", "lastTransitionAt");
            if (!e || json_array_append_new(arr, e))
                rc = sv_fail(err, SV_ENOMEM, "out of memory");
        }
        free(infos);
    }
    free(names);
    return rc;
}

int sv_registry_list(sv_registry *r, const char *collection, const char *state, json_t **out, sv_err *err)
{
    json_t *o = NULL;
    int rc = sv_registry_shards_json(r, collection, state, &o, err);
    if (rc == 0 && r->svc)
        rc = local_shards(r->svc, collection, state ? sv_shard_state_parse(state) : -1, SV_SHARDS_BYTES,
                          json_object_get(o, "shards"), err);
    if (rc) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}

int sv_registry_get(sv_registry *r, const char *collection, const char *name, json_t **out, sv_err *err)
{
    json_t *all = NULL;
    int rc = sv_registry_list(r, collection, NULL, &all, err);
    if (rc)
        return rc;
    size_t i;
    json_t *e, *found = NULL;
    json_array_foreach(json_object_get(all, "shards"), i, e)
    {
        if (!found && strcmp(json_string_value(json_object_get(e, "shard")), name) == 0)
            found = json_incref(e);
    }
    json_decref(all);
    if (!found)
        return sv_fail(err, SV_ENOTFOUND, "no shard '%.64s' of collection '%.128s' is known to this node", name,
                       collection);
    *out = found;
    return 0;
}

int sv__registry_add_local(sv_registry *r, int64_t *shards, sv_err *err)
{
    /* local shards by status (no shard opened, no directory walked) */
    json_t *local = json_array();
    int rc = local ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
    if (rc == 0 && r->svc)
        rc = local_shards(r->svc, NULL, -1, 0, local, err);
    size_t i;
    json_t *e;
    json_array_foreach(local, i, e)
    {
        int st = rc ? -1 : sv_shard_state_parse(json_string_value(json_object_get(e, "state")));
        if (st >= 0)
            shards[st]++;
    }
    json_decref(local);
    return rc;
}

int sv_registry_summary(sv_registry *r, json_t **out, sv_err *err)
{
    sv_registry_stats s;
    sv_registry_stats_get(r, &s);
    /* registered shards by state from the counters, and the local ones */
    int rc = sv__registry_add_local(r, s.shards, err);
    if (rc)
        return rc;
    json_t *by = json_object();
    for (int k = 0; k < SV_SHARD_NSTATES; k++)
        json_object_set_new(by, sv_shard_state_name((sv_shard_state)k), json_integer(s.shards[k]));
    *out = json_pack("{s:o,s:I,s:I,s:I,s:I,s:I}", "shards", by, "cacheBytes", (json_int_t)s.cache_used_bytes,
                     "cacheQuotaBytes", (json_int_t)s.cache_quota_bytes, "hydrationsRunning",
                     (json_int_t)s.hydrations_running, "hydrationsQueued", (json_int_t)s.hydrations_queued,
                     "cacheReservedBytes", (json_int_t)s.cache_reserved_bytes);
    return *out ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
}

/* ---- adopting offloaded tenants found in the location (a catalog rebuild) ------ */

int sv_registry_adopt_tenant(void *ud, const char *collection, const char *tenant, const char *key,
                             sv_err *err)
{
    sv_registry *r = ud;
    struct sv_registry_svc *v = r->svc;
    if (!v)
        return sv_fail(err, SV_EUNAVAIL, "the registry is not attached to a store");
    char want[400];
    manifest_key(collection, tenant, want);
    if (strcmp(want, key))
        return sv_fail(err, SV_EINVAL, "%s is not the manifest of tenant %s of %s", key, tenant, collection);
    sv_dir_stats ds = {0};
    int64_t objects = 0;
    sv_err me = {0};
    int rc = sv_snapshot_dir_info(v->snap, key, NULL, &ds, &objects, &me);
    if (rc == SV_ECORRUPT || rc == SV_EINVAL || rc == SV_ENOTFOUND) {
        /* One bad tenant manifest does not stop a disaster recovery: it is
         * left out (and `maintenance verify` reports the manifest). */
        sv_warn("rebuild: offloaded tenant not adopted: its manifest is unusable", "key=%s error=\"%s\"", key,
                me.msg);
        return 0;
    }
    if (rc)
        return sv_fail(err, rc, "%s", me.msg);
    /* Its collection, from the schema the manifest carries, when the
     * catalog has lost it too. */
    sv_schema *have = NULL;
    if (rc == 0 && sv_store_schema(v->st, collection, &have, NULL) != 0) {
        char *sj = NULL;
        json_t *made = NULL;
        if ((rc = sv_snapshot_dir_schema(v->snap, key, &sj, err)) == 0) {
            rc = sv_store_create_collection(v->st, sj, strlen(sj), &made, err);
            if (rc == SV_EEXIST) /* created meanwhile by another worker */
                rc = 0;
        }
        free(sj);
        json_decref(made);
    }
    sv_schema_free(have);
    if (rc == 0) {
        sv_err e2 = {0};
        rc = sv_store_adopt_offloaded_tenant(v->st, collection, tenant, objects, &e2);
        if (rc == SV_EEXIST) { /* a live tenant of that name: it is newer than the location's copy */
            sv_info("rebuild: local tenant kept", "collection=%s tenant=%s", collection, tenant);
            return 0;
        }
        if (rc == SV_EINVAL || rc == SV_ESTATE) {
            /* the live collection of that name cannot hold it (not
             * multi-tenant): the live one wins, the copy stays in the
             * location, and the rest of the rebuild goes on */
            sv_warn("rebuild: offloaded tenant not adopted: the live collection of that name cannot hold it",
                    "collection=%s tenant=%s manifest=%s error=\"%s\"", collection, tenant, key, e2.msg);
            return 0;
        }
        if (rc)
            return sv_fail(err, rc, "%s", e2.msg);
    }
    if (rc == 0) {
        sv_err e2 = {0};
        int x = sv_registry_register(r, collection, tenant, SV_SHARD_SRC_OFFLOADED, ds.bytes, &e2);
        if (x && x != SV_EEXIST)
            rc = sv_fail(err, x, "%s", e2.msg);
    }
    return rc;
}
