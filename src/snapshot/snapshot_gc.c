/* Garbage collection of blobs no manifest references: fail closed (every
 * manifest must load and every COMMITTED record must have its manifest before
 * a blob may be called unreferenced), blobs younger than the grace period and
 * blobs of creates in flight are kept. See docs/snapshot.md. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapshot_internal.h"

typedef struct hexset {
    char (*v)[65];
    size_t n, cap;
} hexset;

static int hexset_add(hexset *h, const char *hex)
{
    if (sv_grow(&h->v, &h->cap, h->n + 1, sizeof *h->v))
        return SV_ENOMEM;
    memcpy(h->v[h->n++], hex, 65);
    return 0;
}

typedef struct key_list {
    char **v;
    size_t n, cap;
} key_list;

static int collect_manifest_key(void *ctx, const sv_location_entry *e)
{
    key_list *kl = ctx;
    size_t n = strlen(e->key);
    const char *suffix = "/manifest.json";
    if (e->is_prefix || n < strlen(suffix) || strcmp(e->key + n - strlen(suffix), suffix))
        return 0;
    if (sv_grow(&kl->v, &kl->cap, kl->n + 1, sizeof *kl->v))
        return SV_ENOMEM;
    if (!(kl->v[kl->n] = strdup(e->key)))
        return SV_ENOMEM;
    kl->n++;
    return 0;
}

typedef struct blob_scan {
    hexset *refs;
    int64_t now, grace;
    char **cands;
    int64_t *sizes;
    size_t n, cap;
    int64_t kept, young;
} blob_scan;

static int collect_blob(void *ctx, const sv_location_entry *e)
{
    blob_scan *bs = ctx;
    if (e->is_prefix)
        return 0;
    const char *slash = strrchr(e->key, '/');
    const char *hex = slash ? slash + 1 : e->key;
    if (!sv_sha256_valid_hex(hex))
        return 0; /* not ours: leave it */
    if (sv_snap_hex_in(bs->refs->v, bs->refs->n, hex)) {
        bs->kept++;
        return 0;
    }
    if (bs->now - e->mtime_ms < bs->grace) {
        bs->young++;
        return 0;
    }
    size_t cap_sizes = bs->cap;
    if (sv_grow(&bs->sizes, &cap_sizes, bs->n + 1, sizeof *bs->sizes) ||
        sv_grow(&bs->cands, &bs->cap, bs->n + 1, sizeof *bs->cands))
        return SV_ENOMEM;
    if (!(bs->cands[bs->n] = strdup(e->key)))
        return SV_ENOMEM;
    bs->sizes[bs->n++] = e->size;
    return 0;
}

typedef struct stale_ctx {
    sv_snapshot *s;
    int64_t now;
    int failed;
} stale_ctx;

/* PENDING records whose creator is gone (another boot) and older than the
 * timeout become FAILED, so nothing stays PENDING forever. */
static int fail_stale_pending(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    stale_ctx *sc = ud;
    json_t *rec = json_loadb(val, len, 0, NULL);
    if (!rec)
        return 0;
    const char *boot = json_string_value(json_object_get(rec, "boot"));
    int64_t created = json_integer_value(json_object_get(rec, "createdAt"));
    if (sv_snap_record_state(rec) == SNAP_PENDING && (!boot || strcmp(boot, sc->s->boot)) &&
        sc->now - created >= sc->s->pending_timeout_ms) {
        sv_snap_set_failed(rec, "abandoned: its creator stopped before it was committed");
        char *v = json_dumps(rec, JSON_COMPACT);
        sv_catalog_cond cond = {key, rev};
        sv_catalog_op op = {key, v, v ? strlen(v) : 0, 0};
        if (v && sv_catalog_txn(sc->s->cat, &cond, 1, &op, 1, NULL) == 0)
            sc->failed++;
        free(v);
    }
    json_decref(rec);
    return 0;
}

typedef struct committed_ctx {
    sv_snapshot *s;
    key_list *manifests;
    char missing[400];
} committed_ctx;

static int check_committed(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    committed_ctx *cc = ud;
    json_t *rec = json_loadb(val, len, 0, NULL);
    if (!rec)
        return 0;
    if (sv_snap_record_state(rec) == SNAP_COMMITTED) {
        char mk[400];
        sv_manifest_key(json_string_value(json_object_get(rec, "collection")),
                        json_string_value(json_object_get(rec, "name")), mk);
        bool found = false;
        for (size_t i = 0; i < cc->manifests->n && !found; i++)
            found = !strcmp(cc->manifests->v[i], mk);
        /* Committed after the listing: its manifest is there now, and its
         * blobs are protected as in flight for this run. */
        sv_location_info info;
        if (!found && sv_location_head(cc->s->loc, mk, &info, NULL) != 0)
            snprintf(cc->missing, sizeof cc->missing, "%s", mk);
    }
    json_decref(rec);
    return cc->missing[0] ? 1 : 0;
}

static bool in_flight(sv_snapshot *s, const char *hex)
{
    for (create_op *op = s->creates; op; op = op->next)
        if (sv_snap_hex_in(op->blobs, op->nblobs, hex))
            return true;
    for (create_op *op = s->retired; op; op = op->next)
        if (sv_snap_hex_in(op->blobs, op->nblobs, hex))
            return true;
    return false;
}

static int gc_delete(sv_snapshot *s, sv_snap_fence *fence, blob_scan *bs, int64_t *deleted, int64_t *freed,
                     sv_err *err)
{
    /* Delete in batches, deciding under s->mu and deleting without it, so a
     * slow location (S3 retries and backoff) never stalls status calls,
     * creates or restores waiting for s->mu.
     *
     * Why no blob still wanted is deleted (fail closed):
     * - A blob named by a manifest GC loaded is never a candidate.
     * - A create announces its blobs under s->mu (create_op, then retired
     *   until this GC ends) before it checks the location for them. A create
     *   that announced before the batch is chosen is seen by in_flight() and
     *   its blobs stay.
     * - A create that announces while a batch is being deleted finds its
     *   blobs in s->gc_deleting and waits (create_announce) until the delete
     *   has finished, then checks the location: the blob is gone and is
     *   uploaded again. Later batches see it in flight.
     * - Blobs younger than the grace period are never candidates, which
     *   covers writers this process does not know about (another node, a
     *   create whose upload started before its record was visible).
     * - Writers on other nodes sharing the catalog: the GC fence
     *   (snapshot_fence.c), renewed before each batch. */
    char(*batch_hex)[65] = calloc(256, sizeof *batch_hex);
    if (!batch_hex)
        return sv_snap_oom(err);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < bs->n;) {
        const char *batch[256];
        int64_t bytes = 0;
        size_t nb = 0;
        if ((rc = sv_snap_fence_gc_renew(s, fence, err)) != 0) /* catalog I/O: not under s->mu */
            break;
        pthread_mutex_lock(&s->mu);
        for (; i < bs->n && nb < 256; i++) {
            const char *slash = strrchr(bs->cands[i], '/');
            if (in_flight(s, slash + 1)) {
                bs->kept++;
                continue;
            }
            memcpy(batch_hex[nb], slash + 1, 65);
            batch[nb++] = bs->cands[i];
            bytes += bs->sizes[i];
        }
        qsort(batch_hex, nb, 65, sv_snap_cmp_hex);
        s->gc_deleting = batch_hex;
        s->gc_ndeleting = nb;
        pthread_mutex_unlock(&s->mu);
        if (nb)
            rc = sv_location_delete_many(s->loc, batch, nb, err);
        pthread_mutex_lock(&s->mu);
        s->gc_deleting = NULL;
        s->gc_ndeleting = 0;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->mu);
        if (rc == 0) {
            *deleted += (int64_t)nb;
            *freed += bytes;
        }
    }
    free(batch_hex);
    return rc;
}

static int gc_run(sv_snapshot *s, json_t **out, sv_err *err)
{
    int wrc = sv_snap_may_write(s, err);
    if (wrc)
        return wrc;
    pthread_mutex_lock(&s->gc_mu);
    pthread_mutex_lock(&s->mu);
    s->gc_running = true;
    /* Ops of every create that has not finished yet are protected, and so
     * are those finishing while we run (retired); older ones wrote their
     * manifests before this point and are seen below. */
    pthread_mutex_unlock(&s->mu);
    int64_t t0 = sv_mono_ns();
    /* Across nodes: taken before anything is listed (snapshot_fence.c). */
    sv_snap_fence fence;
    int rc = sv_snap_fence_gc_begin(s, &fence, err);
    stale_ctx sc = {s, sv_now_ms(), 0};
    if (rc == 0)
        rc = sv_catalog_scan(s->cat, "snapshots/", fail_stale_pending, &sc, err);

    key_list manifests = {0};
    hexset refs = {0};
    blob_scan bs = {.refs = &refs, .now = sv_now_ms(), .grace = s->gc_grace_ms};
    int64_t deleted = 0, freed = 0;
    if (rc == 0) {
        rc = sv_location_list(s->loc, "snapshots/", NULL, NULL, collect_manifest_key, &manifests, err);
        /* Offloaded tenants' manifests (sv_snapshot_put_dir) reference blobs too. */
        if (rc == 0)
            rc = sv_location_list(s->loc, "tenants/", NULL, NULL, collect_manifest_key, &manifests, err);
        /* So do the manifests of shard moves under way (cluster moves). */
        if (rc == 0)
            rc = sv_location_list(s->loc, "moves/", NULL, NULL, collect_manifest_key, &manifests, err);
        /* And the owners' parts of a cluster-wide snapshot being assembled. */
        if (rc == 0)
            rc = sv_location_list(s->loc, "cuts/", NULL, NULL, collect_manifest_key, &manifests, err);
        if (rc == SV_ENOMEM)
            rc = sv_snap_oom(err);
    }
    /* Fail closed: every manifest must load, and every COMMITTED record must
     * have its manifest, before a single blob may be called unreferenced. */
    for (size_t i = 0; rc == 0 && i < manifests.n; i++) {
        sv_buf b = {0};
        sv_manifest *m = NULL;
        rc = sv_location_get_buf(s->loc, manifests.v[i], &b, err);
        if (rc == SV_ENOTFOUND) {
            rc = 0; /* dropped since the listing: its blobs may go */
            sv_buf_free(&b);
            continue;
        }
        if (rc == 0)
            rc = sv_manifest_parse((const char *)b.data, b.len, &m, err);
        sv_buf_free(&b);
        if (rc) {
            sv_err_wrap(err, "garbage collection stopped, nothing was deleted: cannot read manifest %s",
                        manifests.v[i]);
            break;
        }
        for (size_t k = 0; rc == 0 && k < m->nshards; k++)
            for (size_t f = 0; rc == 0 && f < m->shards[k].nfiles; f++)
                if (hexset_add(&refs, m->shards[k].files[f].blob))
                    rc = sv_snap_oom(err);
        sv_manifest_free(m);
    }
    if (rc == 0) {
        committed_ctx cc = {s, &manifests, ""};
        rc = sv_catalog_scan(s->cat, "snapshots/", check_committed, &cc, err);
        if (rc == 1)
            rc = sv_fail(err, SV_ECORRUPT,
                         "garbage collection stopped, nothing was deleted: a COMMITTED snapshot has no manifest at "
                         "%s in the location",
                         cc.missing);
    }
    if (rc == 0) {
        if (refs.n)
            qsort(refs.v, refs.n, 65, sv_snap_cmp_hex);
        rc = sv_location_list(s->loc, "blobs/", NULL, NULL, collect_blob, &bs, err);
        if (rc == SV_ENOMEM)
            rc = sv_snap_oom(err);
    }
    if (rc == 0 && !fence.deferred[0])
        rc = gc_delete(s, &fence, &bs, &deleted, &freed, err);
    sv_snap_fence_gc_end(s, &fence);
    pthread_mutex_lock(&s->mu);
    s->gc_running = false;
    for (create_op *op = s->retired, *next; op; op = next) {
        next = op->next;
        free(op->blobs);
        free(op);
    }
    s->retired = NULL;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < manifests.n; i++)
        free(manifests.v[i]);
    free(manifests.v);
    for (size_t i = 0; i < bs.n; i++)
        free(bs.cands[i]);
    free(bs.cands);
    free(bs.sizes);
    free(refs.v);
    atomic_fetch_add(&s->m_gc_runs, 1);
    atomic_fetch_add(&s->m_gc_deleted, deleted);
    atomic_fetch_add(&s->m_gc_bytes, freed);
    pthread_mutex_unlock(&s->gc_mu);
    if (rc) {
        sv_warn("snapshot gc failed", "error=\"%s\" deleted=%lld", err && err->msg[0] ? err->msg : sv_strerror(rc),
                (long long)deleted);
        return rc;
    }
    if (fence.deferred[0])
        sv_info("snapshot gc deferred: nothing deleted", "reason=\"%s\" candidates=%zu", fence.deferred, bs.n);
    else
        sv_info("snapshot gc", "deleted=%lld bytes=%lld kept=%lld young=%lld ms=%lld", (long long)deleted,
                (long long)freed, (long long)bs.kept, (long long)bs.young,
                (long long)((sv_mono_ns() - t0) / 1000000));
    *out = json_pack("{s:I,s:I,s:I,s:I,s:I,s:i,s:s?}", "blobsDeleted", (json_int_t)deleted, "bytesFreed",
                     (json_int_t)freed, "blobsKept", (json_int_t)bs.kept, "blobsYoung", (json_int_t)bs.young,
                     "manifests", (json_int_t)manifests.n, "pendingFailed", sc.failed, "deferred",
                     fence.deferred[0] ? fence.deferred : NULL);
    return *out ? 0 : sv_snap_oom(err);
}

/* Each run is a job of kind "gc" whose result is GC's own answer. */
int sv_snapshot_gc(sv_snapshot *s, json_t **out, sv_err *err)
{
    *out = NULL;
    sv_job *job = NULL;
    if (s->jobs) {
        sv_job_spec spec = {.kind = "gc"};
        sv_err e = {0};
        if (sv_jobs_create(s->jobs, &spec, &job, &e) == 0)
            sv_job_start(job, NULL);
        else
            sv_warn("snapshot gc: no job record", "error=\"%s\"", e.msg);
    }
    int rc = gc_run(s, out, err);
    if (job) {
        if (rc == 0) {
            int64_t n = json_integer_value(json_object_get(*out, "blobsDeleted"));
            int64_t b = json_integer_value(json_object_get(*out, "bytesFreed"));
            sv_job_set_totals(job, n, b);
            sv_job_set_done(job, n, b);
        }
        sv_job_finish(job, rc ? SV_JOB_FAILED : SV_JOB_SUCCEEDED, rc ? (err && err->msg[0] ? err->msg : sv_strerror(rc))
                                                                     : NULL, rc ? NULL : *out, NULL);
        sv_job_release(job);
    }
    return rc;
}

void *sv_snap_gc_loop(void *arg)
{
    sv_snapshot *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (s->gc_interval_ms % 1000) * 1000000LL;
        ts.tv_sec += s->gc_interval_ms / 1000 + ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        int r = pthread_cond_timedwait(&s->cond, &s->mu, &ts);
        if (s->stopping)
            break;
        if (r != ETIMEDOUT)
            continue;
        pthread_mutex_unlock(&s->mu);
        json_t *o = NULL;
        sv_err e = {0};
        if (sv_snapshot_gc(s, &o, &e) == 0)
            json_decref(o);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}
