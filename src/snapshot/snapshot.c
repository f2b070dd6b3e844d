/* The snapshot service: records and the get/list/drop answers, open/close,
 * metrics, and the helpers the other parts share. Create, restore, GC and
 * blob handling live in snapshot_create.c, snapshot_restore.c,
 * snapshot_gc.c and snapshot_blob.c. See docs/snapshot.md. */
#include "snapshot.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "location.h"
#include "record.h"
#include "snapshot_internal.h"

static const char *const snap_states[] = {"PENDING", "COMMITTED", "DELETING", "FAILED"};

static int snap_state_parse(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, snap_states[i]))
            return i;
    return -1;
}

int sv_snap_oom(sv_err *err) { return sv_fail(err, SV_ENOMEM, "out of memory"); }

void sv_snap_record_key(const char *collection, const char *name, char key[400])
{
    snprintf(key, 400, "snapshots/%s/%s", collection, name);
}

bool sv_snap_stopping(sv_snapshot *s)
{
    pthread_mutex_lock(&s->mu);
    bool v = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return v;
}

void sv_snap_test_delay(sv_snapshot *s)
{
    for (int64_t left = s->test_delay_ms; left > 0 && !sv_snap_stopping(s); left -= 50)
        sv_sleep_ms(left < 50 ? left : 50);
}

/* ---- snapshot records ---------------------------------------------------------- */

int sv_snap_record_load(sv_snapshot *s, const char *collection, const char *name, json_t **out, int64_t *rev,
                       sv_err *err)
{
    char key[400];
    sv_snap_record_key(collection, name, key);
    char *val = NULL;
    size_t len = 0;
    int rc = sv_catalog_get(s->cat, key, &val, &len, rev, err);
    if (rc == SV_ENOTFOUND)
        return sv_fail(err, rc, "snapshot '%s' of collection '%s' not found", name, collection);
    if (rc)
        return rc;
    *out = json_loadb(val, len, 0, NULL);
    free(val);
    if (!*out)
        return sv_fail(err, SV_ECORRUPT, "the catalog record of snapshot '%s' of '%s' is not JSON", name, collection);
    return 0;
}

int sv_snap_record_put(sv_snapshot *s, json_t *rec, sv_err *err)
{
    char key[400];
    sv_snap_record_key(json_string_value(json_object_get(rec, "collection")), json_string_value(json_object_get(rec, "name")),
               key);
    char *v = json_dumps(rec, JSON_COMPACT);
    if (!v)
        return sv_snap_oom(err);
    int rc = sv_catalog_put(s->cat, key, v, strlen(v), 0, err);
    free(v);
    return rc;
}

int sv_snap_record_state(json_t *rec) { return snap_state_parse(json_string_value(json_object_get(rec, "status"))); }

void sv_snap_set_failed(json_t *rec, const char *why)
{
    json_object_set_new(rec, "status", json_string("FAILED"));
    json_object_set_new(rec, "error", json_string(why));
}

/* The API shape: the record without bookkeeping, plus live progress. */
json_t *sv_snap_record_api(sv_snapshot *s, json_t *rec)
{
    json_t *o = json_deep_copy(rec);
    if (!o)
        return NULL;
    json_object_del(o, "format_version");
    json_object_del(o, "node");
    json_object_del(o, "boot");
    if (sv_snap_record_state(o) == SNAP_COMMITTED && !json_object_get(o, "damaged"))
        json_object_set_new(o, "damaged", json_false()); /* set by maintenance verify */
    if (sv_snap_record_state(o) == SNAP_PENDING) {
        const char *c = json_string_value(json_object_get(o, "collection"));
        const char *n = json_string_value(json_object_get(o, "name"));
        pthread_mutex_lock(&s->mu);
        for (create_op *op = s->creates; op; op = op->next) {
            if (!strcmp(op->collection, c) && !strcmp(op->name, n)) {
                json_object_set_new(o, "bytes", json_integer(atomic_load(&op->bytes_total)));
                json_object_set_new(o, "bytesHashed", json_integer(atomic_load(&op->bytes_hashed)));
                json_object_set_new(o, "bytesUploaded", json_integer(atomic_load(&op->bytes_uploaded)));
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    return o;
}

int sv_snap_check_names(const char *collection, const char *name, sv_err *err)
{
    int rc = sv_check_collection_name(collection, err);
    if (rc == 0 && name)
        rc = sv_check_snapshot_name(name, err);
    return rc;
}

int sv_snap_spawn(sv_snapshot *s, void *(*fn)(void *), void *arg, sv_err *err)
{
    pthread_t t;
    pthread_mutex_lock(&s->mu);
    s->threads++;
    pthread_mutex_unlock(&s->mu);
    int e = pthread_create(&t, NULL, fn, arg);
    if (e) {
        pthread_mutex_lock(&s->mu);
        s->threads--;
        pthread_mutex_unlock(&s->mu);
        return sv_fail(err, SV_EIO, "cannot start a thread: %s", strerror(e));
    }
    pthread_detach(t);
    return 0;
}

/* ---- get / list / drop -------------------------------------------------------------- */

int sv_snapshot_get(sv_snapshot *s, const char *collection, const char *name, json_t **out, sv_err *err)
{
    int rc = sv_snap_check_names(collection, name, err);
    json_t *rec = NULL;
    if (rc == 0)
        rc = sv_snap_record_load(s, collection, name, &rec, NULL, err);
    if (rc)
        return rc;
    *out = sv_snap_record_api(s, rec);
    json_decref(rec);
    return *out ? 0 : sv_snap_oom(err);
}

typedef struct list_ctx {
    sv_snapshot *s;
    json_t *arr;
} list_ctx;

static int list_one(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    list_ctx *lc = ud;
    json_t *rec = json_loadb(val, len, 0, NULL);
    if (!rec)
        return 0;
    json_t *a = sv_snap_record_api(lc->s, rec);
    json_decref(rec);
    if (!a)
        return SV_ENOMEM;
    json_array_append_new(lc->arr, a);
    return 0;
}

static int cmp_created(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "createdAt"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "createdAt"));
    return (x > y) - (x < y);
}

int sv_snapshot_list(sv_snapshot *s, const char *collection, json_t **out, sv_err *err)
{
    int rc = sv_check_collection_name(collection, err);
    if (rc)
        return rc;
    char prefix[300];
    snprintf(prefix, sizeof prefix, "snapshots/%s/", collection);
    list_ctx lc = {s, json_array()};
    if (!lc.arr)
        return sv_snap_oom(err);
    rc = sv_catalog_scan(s->cat, prefix, list_one, &lc, err);
    if (rc == SV_ENOMEM)
        rc = sv_snap_oom(err);
    if (rc == 0 && json_array_size(lc.arr) == 0) {
        /* Snapshots outlive their collection; only a collection that neither
         * exists nor has snapshots is unknown. */
        json_t *cj = NULL;
        rc = sv_store_get_collection(s->st, collection, &cj, err);
        json_decref(cj);
    }
    if (rc) {
        json_decref(lc.arr);
        return rc;
    }
    size_t n = json_array_size(lc.arr);
    json_t **v = malloc((n + 1) * sizeof *v);
    json_t *sorted = json_array();
    if (!v || !sorted) {
        free(v);
        json_decref(sorted);
        json_decref(lc.arr);
        return sv_snap_oom(err);
    }
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(lc.arr, i);
    qsort(v, n, sizeof *v, cmp_created);
    for (size_t i = 0; i < n; i++)
        json_array_append(sorted, v[i]);
    free(v);
    json_decref(lc.arr);
    *out = json_pack("{s:o}", "snapshots", sorted);
    return 0;
}

/* Unfinished restore jobs reading this snapshot. */
static int readers_of(sv_snapshot *s, const char *collection, const char *name, char *job_id, size_t n)
{
    sv_restore_job *jobs = NULL;
    size_t nj = 0;
    if (sv_restore_meta_jobs_of_collection(s->meta, collection, &jobs, &nj))
        return -1;
    int count = 0;
    for (size_t i = 0; i < nj; i++) {
        if (!sv_restore_state_final(jobs[i].state) && !strcmp(jobs[i].collection, collection) &&
            !strcmp(jobs[i].snapshot, name)) {
            if (count++ == 0)
                snprintf(job_id, n, "%s", jobs[i].id);
        }
    }
    free(jobs);
    return count;
}

/* DELETING -> manifest gone -> record gone. Re-entrant after a crash. */
static int finish_drop(sv_snapshot *s, const char *collection, const char *name, sv_err *err)
{
    char key[400];
    sv_manifest_key(collection, name, key);
    int rc = sv_location_delete(s->loc, key, err);
    if (rc == 0) {
        sv_snap_record_key(collection, name, key);
        rc = sv_catalog_delete(s->cat, key, err);
    }
    return rc;
}

/* ---- holds (mounts) ---------------------------------------------------------------------- */

/* With ddl_mu held: the index of a held snapshot, or -1. */
static ssize_t hold_find(sv_snapshot *s, const char *collection, const char *name)
{
    char key[260];
    snprintf(key, sizeof key, "%s/%s", collection, name);
    for (size_t i = 0; i < s->nholds; i++)
        if (strcmp(s->holds[i].key, key) == 0)
            return (ssize_t)i;
    return -1;
}

/* A cluster (a shared catalog): a node's holds are also catalog keys
 * snapshot-holds/<collection>/<name>/<node>, so a drop through any node sees
 * a mount on another one. With the embedded catalog the memory is enough. */
static void hold_key(sv_snapshot *s, const char *collection, const char *name, char *out, size_t n)
{
    snprintf(out, n, "snapshot-holds/%s/%s/%s", collection, name, s->node[0] ? s->node : "-");
}

int sv_snapshot_hold(sv_snapshot *s, const char *collection, const char *name, sv_err *err)
{
    int rc = sv_snap_check_names(collection, name, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->ddl_mu);
    ssize_t i = hold_find(s, collection, name);
    if (i >= 0) {
        s->holds[i].n++;
    } else if (sv_grow(&s->holds, &s->capholds, s->nholds + 1, sizeof *s->holds)) {
        rc = sv_snap_oom(err);
    } else {
        char key[600];
        hold_key(s, collection, name, key, sizeof key);
        if (sv_catalog_shared(s->cat) && (rc = sv_catalog_put(s->cat, key, "1", 1, 0, err)) != 0)
            sv_err_wrap(err, "recording the mount in the cluster's catalog");
        if (rc == 0) {
            snprintf(s->holds[s->nholds].key, sizeof s->holds[0].key, "%s/%s", collection, name);
            s->holds[s->nholds++].n = 1;
        }
    }
    pthread_mutex_unlock(&s->ddl_mu);
    return rc;
}

void sv_snapshot_unhold(sv_snapshot *s, const char *collection, const char *name)
{
    pthread_mutex_lock(&s->ddl_mu);
    ssize_t i = hold_find(s, collection, name);
    if (i >= 0 && --s->holds[i].n == 0) {
        s->holds[i] = s->holds[--s->nholds];
        char key[600];
        hold_key(s, collection, name, key, sizeof key);
        sv_err e = {0};
        if (sv_catalog_shared(s->cat) && sv_catalog_delete(s->cat, key, &e))
            sv_warn("mount not cleared in the catalog (a drop elsewhere stays refused)", "key=%s error=\"%s\"", key,
                    e.msg);
    }
    pthread_mutex_unlock(&s->ddl_mu);
}

typedef struct other_hold {
    const char *me;
    char node[65];
} other_hold;

static int find_other_hold(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    (void)val, (void)len, (void)rev;
    other_hold *o = ud;
    const char *node = strrchr(key, '/');
    if (node && strcmp(node + 1, o->me)) {
        snprintf(o->node, sizeof o->node, "%s", node + 1);
        return 1;
    }
    return 0;
}

int sv_snapshot_describe(sv_snapshot *s, const char *collection, const char *name, char key[400],
                         sv_schema **schema, sv_snapshot_shard **shards, size_t *n, sv_err *err)
{
    if (schema)
        *schema = NULL;
    if (shards)
        *shards = NULL;
    if (n)
        *n = 0;
    int rc = sv_snap_check_names(collection, name, err);
    json_t *rec = NULL;
    if (rc == 0)
        rc = sv_snap_record_load(s, collection, name, &rec, NULL, err);
    if (rc == 0 && sv_snap_record_state(rec) != SNAP_COMMITTED)
        rc = sv_fail(err, SV_ESTATE, "snapshot '%s' of collection '%s' is not COMMITTED", name, collection);
    json_decref(rec);
    if (rc)
        return rc;
    sv_manifest_key(collection, name, key);
    sv_buf b = {0};
    sv_manifest *m = NULL;
    rc = sv_location_get_buf(s->loc, key, &b, err);
    if (rc == 0)
        rc = sv_manifest_parse((const char *)b.data, b.len, &m, err);
    sv_buf_free(&b);
    if (rc == 0 && schema) {
        char *sj = json_dumps(m->schema, JSON_COMPACT);
        rc = sj ? sv_schema_parse(sj, strlen(sj), schema, err) : sv_snap_oom(err);
        free(sj);
    }
    if (rc == 0 && shards) {
        sv_snapshot_shard *v = calloc(m->nshards + 1, sizeof *v);
        if (!v)
            rc = sv_snap_oom(err);
        for (size_t i = 0; v && i < m->nshards; i++) {
            snprintf(v[i].name, sizeof v[i].name, "%s", m->shards[i].name);
            v[i].objects = m->shards[i].objects;
            v[i].bytes = m->shards[i].bytes;
            v[i].is_tenant = json_is_true(json_object_get(m->schema, "multiTenancy"));
        }
        *shards = v;
        if (n)
            *n = v ? m->nshards : 0;
    }
    if (rc && schema) {
        sv_schema_free(*schema);
        *schema = NULL;
    }
    sv_manifest_free(m);
    return rc;
}

int sv_snapshot_drop(sv_snapshot *s, const char *collection, const char *name, sv_err *err)
{
    int rc = sv_snap_check_names(collection, name, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->ddl_mu);
    json_t *rec = NULL;
    rc = sv_snap_record_load(s, collection, name, &rec, NULL, err);
    char job[37] = "";
    if (rc == 0) {
        int st = sv_snap_record_state(rec);
        int readers = readers_of(s, collection, name, job, sizeof job);
        if (st == SNAP_PENDING)
            rc = sv_fail(err, SV_ECONFLICT,
                         "snapshot '%s' of collection '%s' is being created; drop it once it is COMMITTED or FAILED",
                         name, collection);
        else if (readers > 0)
            rc = sv_fail(err, SV_ECONFLICT,
                         "snapshot '%s' of collection '%s' is being read by restore job %s; drop it when the job "
                         "has finished",
                         name, collection, job);
        else if (readers < 0)
            rc = sv_snap_oom(err);
        else if (hold_find(s, collection, name) >= 0)
            rc = sv_fail(err, SV_ECONFLICT,
                         "snapshot '%s' of collection '%s' is mounted; unmount it first (DELETE "
                         "/v1/collections/%s/snapshots/%s/mount)",
                         name, collection, collection, name);
        else if (sv_catalog_shared(s->cat)) {
            char prefix[600];
            snprintf(prefix, sizeof prefix, "snapshot-holds/%s/%s/", collection, name);
            other_hold o = {.me = s->node[0] ? s->node : "-"};
            int sc = sv_catalog_scan(s->cat, prefix, find_other_hold, &o, err);
            if (sc == 1)
                rc = sv_fail(err, SV_ECONFLICT,
                             "snapshot '%s' of collection '%s' is mounted on node %s; unmount it there first (DELETE "
                             "/v1/collections/%s/snapshots/%s/mount through node %s)",
                             name, collection, o.node, collection, name, o.node);
            else if (sc)
                rc = sc;
        }
    }
    if (rc == 0) {
        json_object_set_new(rec, "status", json_string("DELETING"));
        rc = sv_snap_record_put(s, rec, err);
    }
    pthread_mutex_unlock(&s->ddl_mu);
    if (rc == 0)
        rc = finish_drop(s, collection, name, err);
    if (rc == 0) {
        sv_info("snapshot dropped", "collection=%s name=%s", collection, name);
        sv_snap_changed(s);
    }
    json_decref(rec);
    return rc;
}

/* ---- open / close ----------------------------------------------------------------------- */

typedef struct recover_ctx {
    sv_snapshot *s;
    int failed, dropped;
} recover_ctx;

static int recover_record(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    recover_ctx *rc = ud;
    sv_snapshot *s = rc->s;
    json_t *rec = json_loadb(val, len, 0, NULL);
    if (!rec)
        return 0;
    int st = sv_snap_record_state(rec);
    const char *node = json_string_value(json_object_get(rec, "node"));
    const char *coll = json_string_value(json_object_get(rec, "collection"));
    const char *name = json_string_value(json_object_get(rec, "name"));
    if (coll && name && st == SNAP_PENDING && node && !strcmp(node, s->node)) {
        /* Its creator was this node's previous process, which is gone. A
         * manifest it may have written goes too, so the blobs it names
         * become garbage. */
        char mk[400];
        sv_manifest_key(coll, name, mk);
        sv_location_delete(s->loc, mk, NULL);
        sv_snap_set_failed(rec, "interrupted: the server stopped while the snapshot was being created");
        if (sv_snap_record_put(s, rec, NULL) == 0)
            rc->failed++;
    } else if (coll && name && st == SNAP_DELETING) {
        if (finish_drop(s, coll, name, NULL) == 0)
            rc->dropped++;
    }
    json_decref(rec);
    return 0;
}

static int64_t env_ms(const char *name, int64_t given, int64_t dflt, sv_err *err, int *rc)
{
    if (given)
        return given;
    int64_t v = dflt;
    if (*rc == 0)
        *rc = sv_env_int(name, dflt, &v, err);
    return v;
}

/* A create whose process died after the record was COMMITTED but before its
 * job was finished: the job is SUCCEEDED (so a schedule's retention still
 * sees the snapshot as its own) instead of "interrupted by restart". */
static void settle_create_job(void *ud, const char *id, const char *collection, const char *target,
                              const char *backend)
{
    sv_snapshot *s = ud;
    json_t *rec = NULL;
    if (!collection[0] || !target[0] || sv_snap_record_load(s, collection, target, &rec, NULL, NULL))
        return;
    sv_job *job = NULL;
    /* Only a finished snapshot settles its job; anything else was cut short
     * and ends "interrupted by restart" like every other job. */
    if (sv_snap_record_state(rec) == SNAP_COMMITTED && sv_jobs_claim(s->jobs, id, &job, NULL) == 0) {
        sv_job_finish(job, SV_JOB_SUCCEEDED, NULL, NULL, NULL);
        sv_job_release(job);
    }
    json_decref(rec);
}

/* ---- the "snapshot" job kind: schedules and their retention ----------------------------- */
/* Cancel needs no callback: create polls sv_job_canceled between files. */

static int kind_run(void *self, const sv_schedule_run *run, char job_id[64], sv_err *err)
{
    if (!run->collection)
        return sv_fail(err, SV_EINVAL, "a snapshot schedule needs a collection");
    json_t *body = json_pack("{s:s,s:s}", "name", run->name, "description", "scheduled"), *out = NULL;
    if (!body)
        return sv_snap_oom(err);
    int rc = sv_snap_create(self, run->collection, body, false, run->schedule, job_id, &out, err);
    json_decref(body);
    json_decref(out);
    return rc;
}

/* Only a snapshot this schedule made (its record says so): a manual one
 * that reuses the name after a drop is left alone. */
static int kind_forget(void *self, const char *schedule, const char *collection, const char *backend,
                       const char *target, sv_err *err)
{
    json_t *rec = NULL;
    int rc = sv_snap_record_load(self, collection ? collection : "", target, &rec, NULL, err);
    const char *owner = json_string_value(json_object_get(rec, "schedule"));
    bool ours = rc == 0 && owner && !strcmp(owner, schedule);
    json_decref(rec);
    if (rc)
        return rc;
    return ours ? sv_snapshot_drop(self, collection, target, err) : 0;
}

int sv_snapshot_open(const sv_snapshot_opts *opts, sv_store *st, sv_catalog *cat, sv_snapshot **out, sv_err *err)
{
    if (!opts || !opts->data_dir)
        return sv_fail(err, SV_EINVAL, "the snapshot service needs the data directory");
    sv_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return sv_snap_oom(err);
    s->st = st;
    s->cat = cat;
    s->jobs = opts->jobs;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_mutex_init(&s->ddl_mu, NULL);
    pthread_mutex_init(&s->gc_mu, NULL);
    snprintf(s->node, sizeof s->node, "%s", opts->node_name ? opts->node_name : "node1");
    s->defer_resume = opts->defer_resume;
    sv_uuid u;
    sv_uuid_v4(&u);
    sv_uuid_format(&u, s->boot);
    int rc = 0;
    if (!realpath(opts->data_dir, s->data_dir))
        rc = sv_fail(err, SV_EIO, "data directory %s: %s", opts->data_dir, strerror(errno));
    s->gc_interval_ms = env_ms("SHARDVAULT_SNAPSHOT_GC_INTERVAL_MS", opts->gc_interval_ms, 15 * 60 * 1000, err, &rc);
    s->gc_grace_ms = env_ms("SHARDVAULT_SNAPSHOT_GC_GRACE_MS", opts->gc_grace_ms, 60 * 60 * 1000, err, &rc);
    s->pending_timeout_ms =
        env_ms("SHARDVAULT_SNAPSHOT_PENDING_TIMEOUT_MS", opts->pending_timeout_ms, 60 * 60 * 1000, err, &rc);
    s->test_delay_ms = env_ms("SHARDVAULT_SNAPSHOT_TEST_DELAY_MS", 0, 0, err, &rc);
    int64_t workers = env_ms("SHARDVAULT_SNAPSHOT_WORKERS", opts->workers, 2, err, &rc);
    if (rc == 0 && (workers < 1 || workers > 16))
        rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_SNAPSHOT_WORKERS must be between 1 and 16, not %lld",
                     (long long)workers);
    s->workers = (int)workers;
    if (rc == 0)
        rc = sv_env_bool("SHARDVAULT_SNAPSHOT_RESTORE_LINK", true, &s->link_restore, err);
    const char *verify = sv_env_str("SHARDVAULT_SNAPSHOT_RESTORE_VERIFY", "open");
    if (rc == 0 && strcmp(verify, "open") && strcmp(verify, "count"))
        rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_SNAPSHOT_RESTORE_VERIFY must be open or count, not '%s'", verify);
    s->verify_count = !strcmp(verify, "count");
    if (s->gc_grace_ms < 0)
        s->gc_grace_ms = 0;
    if (rc == 0) {
        const char *url = opts->location_url ? opts->location_url
                                             : sv_env_str("SHARDVAULT_LOCATION",
                                                          sv_env_str("SHARDVAULT_SNAPSHOT_LOCATION", NULL));
        if (url)
            snprintf(s->url, sizeof s->url, "%s", url);
        else
            snprintf(s->url, sizeof s->url, "file://%s/location", s->data_dir);
        size_t ul = strlen(s->url);
        while (ul > 8 && s->url[ul - 1] == '/')
            s->url[--ul] = '\0';
        sv_location *loc = NULL;
        rc = sv_location_open(s->url, NULL, &loc, err);
        s->loc = loc;
        if (rc)
            sv_err_wrap(err, "location (SHARDVAULT_LOCATION)");
    }
    if (rc == 0) {
        snprintf(s->staging, sizeof s->staging, "%s/snapshot-restore", s->data_dir);
        rc = sv_mkdirs(s->staging, err);
    }
    s->engine = sv_store_engine(st); /* one engine per process */
    if (rc == 0)
        rc = sv_restore_meta_open(cat, &s->meta, err);
    recover_ctx rcx = {s, 0, 0};
    if (rc == 0)
        rc = sv_catalog_scan(cat, "snapshots/", recover_record, &rcx, err);
    if (rc) {
        sv_snapshot_close(s);
        return rc;
    }
    if (rcx.failed || rcx.dropped)
        sv_info("snapshots recovered", "failed=%d dropped=%d", rcx.failed, rcx.dropped);
    sv_snap_resume_jobs(s);
    if (s->jobs)
        sv_jobs_unfinished(s->jobs, "snapshot", settle_create_job, s, NULL);
    if (s->jobs) {
        sv_job_kind k = {.name = "snapshot", .self = s, .run_scheduled = kind_run, .forget = kind_forget};
        if ((rc = sv_jobs_register_kind(s->jobs, &k, err))) {
            sv_snapshot_close(s);
            return rc;
        }
    }
    if (s->gc_interval_ms > 0 && pthread_create(&s->gc_thread, NULL, sv_snap_gc_loop, s) == 0)
        s->gc_thread_started = true;
    sv_info("snapshot service ready", "location=\"%s\" workers=%d gc_interval_ms=%lld gc_grace_ms=%lld",
            sv_location_describe(s->loc), s->workers, (long long)s->gc_interval_ms, (long long)s->gc_grace_ms);
    *out = s;
    return 0;
}

void sv_snapshot_close(sv_snapshot *s)
{
    if (!s)
        return;
    if (s->jobs) /* the kind no longer points at this service */
        sv_jobs_register_kind(s->jobs, &(sv_job_kind){.name = "snapshot"}, NULL);
    for (size_t i = 0; i < s->ndeferred; i++) /* never started: the next open resumes them */
        sv_job_release(s->deferred_jobs[i]);
    free(s->deferred);
    free(s->deferred_jobs);
    s->ndeferred = 0;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    while (s->threads > 0)
        pthread_cond_wait(&s->cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (s->gc_thread_started)
        pthread_join(s->gc_thread, NULL);
    sv_snap_cut_close_all(s);
    for (create_op *op = s->retired, *next; op; op = next) {
        next = op->next;
        free(op->blobs);
        free(op);
    }
    sv_restore_meta_free(s->meta);
    sv_location_close(s->loc);
    for (int i = 0; i < s->nretired_locs; i++)
        sv_location_close(s->retired_locs[i]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->ddl_mu);
    pthread_mutex_destroy(&s->gc_mu);
    free(s->holds);
    free(s);
}

void sv_snapshot_metrics(sv_buf *out, void *ud)
{
    sv_snapshot *s = ud;
    sv_buf_printf(out,
                  "# HELP shardvault_snapshots_created_total Snapshots COMMITTED since start.\n"
                  "# TYPE shardvault_snapshots_created_total counter\nshardvault_snapshots_created_total %lld\n"
                  "# HELP shardvault_snapshots_failed_total Snapshots that ended FAILED since start.\n"
                  "# TYPE shardvault_snapshots_failed_total counter\nshardvault_snapshots_failed_total %lld\n"
                  "# HELP shardvault_restores_completed_total Restore jobs COMPLETED since start.\n"
                  "# TYPE shardvault_restores_completed_total counter\nshardvault_restores_completed_total %lld\n"
                  "# HELP shardvault_restores_failed_total Restore jobs FAILED since start.\n"
                  "# TYPE shardvault_restores_failed_total counter\nshardvault_restores_failed_total %lld\n"
                  "# HELP shardvault_snapshot_gc_runs_total Garbage collections since start.\n"
                  "# TYPE shardvault_snapshot_gc_runs_total counter\nshardvault_snapshot_gc_runs_total %lld\n"
                  "# HELP shardvault_snapshot_gc_blobs_deleted_total Blobs deleted by garbage collection.\n"
                  "# TYPE shardvault_snapshot_gc_blobs_deleted_total counter\n"
                  "shardvault_snapshot_gc_blobs_deleted_total %lld\n"
                  "# HELP shardvault_snapshot_gc_bytes_freed_total Bytes freed by garbage collection.\n"
                  "# TYPE shardvault_snapshot_gc_bytes_freed_total counter\n"
                  "shardvault_snapshot_gc_bytes_freed_total %lld\n",
                  (long long)atomic_load(&s->m_created), (long long)atomic_load(&s->m_failed),
                  (long long)atomic_load(&s->m_restored), (long long)atomic_load(&s->m_restore_failed),
                  (long long)atomic_load(&s->m_gc_runs), (long long)atomic_load(&s->m_gc_deleted),
                  (long long)atomic_load(&s->m_gc_bytes));
}
