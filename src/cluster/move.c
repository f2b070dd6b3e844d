/* cluster — shard moves (docs/cluster.md "Shard moves"): a fixed shard or a
 * tenant goes from its owner (the source, which runs the job) to another
 * node (the target) through the shared location.
 *
 *   1. checkpoint the live shard, upload it as content-addressed blobs
 *      (sv_snapshot_put_dir: blobs the location has are reused);
 *   2. the target lays it out in its scratch space (node-to-node "base");
 *   3. the catch-up, fenced: the shard's write gate closes (new writes wait,
 *      the ones inside finish), a fresh checkpoint is uploaded (only the
 *      delta is new), the target lays it out at the shard's place reusing
 *      what step 2 fetched ("final"), and ownership switches in one catalog
 *      transaction conditioned on the placement record's revision; the
 *      gate opens and the held writes fail over to the target (forwarded);
 *      the source's copy is removed;
 *   4. the target is told to read the record now ("activate"; its watch
 *      would deliver it anyway).
 * Any failure before the switch opens the gate with the shard still here,
 * tells the target to discard what it laid out and ends the job FAILED with
 * the reason. */
#include "cluster.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "snapshot.h"

#define DRAIN_MS 5000LL          /* writes inside the shard must finish within this once the gate closes */
#define FENCE_MS 30000LL         /* the fenced catch-up (checkpoint, upload, lay-out, switch) budget */
#define BASE_TIMEOUT_MS 3600000LL /* the target's first lay-out: a large shard from a slow bucket */
#define STEP_TIMEOUT_MS 10000LL  /* activate / discard */
#define MAX_ROUNDS 4             /* unfenced rounds after the base, while the target still fetches much */
#define SMALL_DELTA (8LL << 20)  /* ... more than this (or 2% of the shard) */

typedef struct move_task {
    struct sv_cluster_moves *m;
    sv_job *job;
    char id[64];
    char coll[129], shard[72], from[65], to[65];
    bool unresolved; /* stopped with the switch's outcome unknown: the job is left to the next start */
    struct move_task *next;
} move_task;

struct sv_cluster_moves {
    sv_cluster *cl;
    sv_store *st;
    struct sv_snapshot *snap;
    struct sv_jobs *jobs;
    sv_catalog *cat;
    sv_catalog_watch *watch;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    move_task *running;
    int nrunning;
    atomic_bool stopping; /* sv_cluster_moves_close: the only way out of an unknown switch */
};

static void manifest_key(const char *coll, const char *shard, const char *job, char key[400])
{
    snprintf(key, 400, "moves/%s/%s/%s/manifest.json", coll, shard, job);
}

/* ---- the target ----------------------------------------------------------------- */

static int check_job_id(const char *id, sv_err *err)
{
    sv_uuid u;
    if (!id || sv_uuid_parse(id, strlen(id), &u) != 0)
        return sv_fail(err, SV_EINVAL, "job must be the move's job id (a UUID)");
    return 0;
}

/* What the base lay-out verified (<work>/base.files: "sha256 size name"
 * lines), so the catch-up trusts those files without hashing them again. */
static int save_known(sv_cluster_moves *m, const char *key, const char *work, sv_err *err)
{
    sv_dir_file *f = NULL;
    size_t n = 0;
    int rc = sv_snapshot_dir_files(m->snap, key, NULL, &f, &n, err);
    sv_buf b = {0};
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (sv_buf_printf(&b, "%s %lld %s\n", f[i].sha256, (long long)f[i].size, f[i].name))
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
    free(f);
    char path[1500];
    snprintf(path, sizeof path, "%s/base.files", work);
    if (rc == 0)
        rc = sv_write_file_atomic(path, b.data ? (const char *)b.data : "", b.len, err);
    sv_buf_free(&b);
    return rc;
}

static void load_known(const char *work, sv_dir_file **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char path[1500];
    snprintf(path, sizeof path, "%s/base.files", work);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return; /* the target restarted since (its scratch space was emptied): every file is hashed */
    size_t cap = 0;
    char line[400];
    while (fgets(line, sizeof line, fp)) {
        sv_dir_file f = {0};
        long long size = 0;
        if (sscanf(line, "%64s %lld %255s", f.sha256, &size, f.name) != 3 || sv_grow(out, &cap, *n + 1, sizeof **out))
            continue;
        f.size = size;
        (*out)[(*n)++] = f;
    }
    fclose(fp);
}

int sv_cluster_move_step(sv_cluster_moves *m, json_t *body, json_t **out, sv_err *err)
{
    *out = NULL;
    const char *step = json_string_value(json_object_get(body, "step"));
    const char *job = json_string_value(json_object_get(body, "job"));
    const char *coll = json_string_value(json_object_get(body, "collection"));
    const char *shard = json_string_value(json_object_get(body, "shard"));
    if (!step || !coll || !shard)
        return sv_fail(err, SV_EINVAL, "a move step needs step, job, collection and shard");
    int rc = check_job_id(job, err);
    if (rc == 0)
        rc = sv_check_collection_name(coll, err);
    if (rc == 0)
        rc = sv_check_tenant_name(shard, err); /* fixed shard names pass it too */
    if (rc)
        return rc;
    char work[1400], base[1500], key[400], dir[1024] = "";
    snprintf(work, sizeof work, "%s/move-%s", sv_store_tmp_dir(m->st), job);
    snprintf(base, sizeof base, "%s/base", work);
    manifest_key(coll, shard, job, key);
    sv_dir_stats ds = {0};
    int64_t t0 = sv_mono_ns(), objects = -1;
    if (!strcmp(step, "base")) {
        if ((rc = sv_store_move_target_dir(m->st, coll, shard, dir, err)) != 0)
            return rc;
        sv_rmtree(work, NULL);
        rc = sv_mkdirs(work, err);
        if (rc == 0)
            rc = sv_snapshot_get_dir(m->snap, key, NULL, base, NULL, NULL, &ds, err);
        if (rc == 0)
            rc = save_known(m, key, work, err);
        sv_crash_point("move:target-laid-out");
        if (rc) {
            sv_rmtree(work, NULL);
            return sv_err_wrap(err, "laying out the shard on node %s", sv_cluster_name(m->cl));
        }
    } else if (!strcmp(step, "again")) { /* a later unfenced round: the base again, fetching what changed */
        char next[1600];
        snprintf(next, sizeof next, "%s.next", base);
        sv_rmtree(next, NULL);
        sv_dir_file *known = NULL;
        size_t nknown = 0;
        load_known(work, &known, &nknown);
        rc = sv_snapshot_get_dir_reusing(m->snap, key, NULL, next, base, known, nknown, NULL, NULL, &ds, err);
        free(known);
        if (rc == 0)
            rc = sv_rmtree(base, err);
        if (rc == 0 && rename(next, base) != 0)
            rc = sv_fail(err, SV_EIO, "cannot rename %s: %s", next, strerror(errno));
        if (rc == 0)
            rc = save_known(m, key, work, err);
        if (rc) {
            sv_rmtree(work, NULL);
            return sv_err_wrap(err, "laying out the shard again on node %s", sv_cluster_name(m->cl));
        }
    } else if (!strcmp(step, "final")) {
        if ((rc = sv_store_move_target_dir(m->st, coll, shard, dir, err)) != 0)
            return rc;
        sv_rmtree(dir, NULL); /* a copy an earlier, abandoned move left */
        char parent[1100];
        snprintf(parent, sizeof parent, "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash)
            *slash = 0;
        rc = sv_mkdirs(parent, err);
        sv_dir_file *known = NULL;
        size_t nknown = 0;
        load_known(work, &known, &nknown);
        if (rc == 0)
            rc = sv_snapshot_get_dir_reusing(m->snap, key, NULL, dir, base, known, nknown, NULL, NULL, &ds, err);
        free(known);
        if (rc == 0)
            rc = sv_fsync_dir(parent, err);
        /* Opened (read-only) before the source switches: a copy RocksDB
         * cannot open, or with another count, never becomes the owner's. */
        if (rc == 0)
            rc = sv_store_dir_objects(m->st, dir, &objects, err);
        sv_rmtree(work, NULL);
        if (rc) {
            sv_rmtree(dir, NULL);
            return sv_err_wrap(err, "laying out the catch-up on node %s", sv_cluster_name(m->cl));
        }
    } else if (!strcmp(step, "activate")) {
        if ((rc = sv_store_refresh_shard(m->st, coll, shard, err)) != 0)
            return rc;
    } else if (!strcmp(step, "discard")) {
        sv_rmtree(work, NULL);
        /* Only a copy that is not this node's (the switch did not happen). */
        if (sv_store_move_target_dir(m->st, coll, shard, dir, NULL) == 0)
            sv_rmtree(dir, NULL);
    } else {
        return sv_fail(err, SV_EINVAL, "step must be base, final, activate or discard");
    }
    *out = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "step", step, "files", (json_int_t)ds.files, "bytes",
                     (json_int_t)ds.bytes, "bytesFetched", (json_int_t)ds.bytes_uploaded, "objects",
                     (json_int_t)objects, "ms", (json_int_t)((sv_mono_ns() - t0) / 1000000));
    return *out ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
}

/* ---- the source ----------------------------------------------------------------- */

/* One step on the target; *ans (may be NULL) gets its answer. */
static int call_target(move_task *t, const char *step, int64_t timeout_ms, json_t **ans, sv_err *err)
{
    json_t *b = json_pack("{s:s,s:s,s:s,s:s}", "step", step, "job", t->id, "collection", t->coll, "shard", t->shard);
    char *body = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!body)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    sv_cluster_call call = {.node = t->to, .method = "POST", .target = "/v1/internal/moves", .body = body,
                            .len = strlen(body), .principal = "cluster", .timeout_ms = timeout_ms};
    sv_cluster_forward(t->m->cl, &call, 1);
    free(body);
    int rc = call.rc;
    json_t *a = rc == 0 ? json_loadb((const char *)call.out.data, call.out.len, 0, NULL) : NULL;
    if (rc) {
        rc = sv_fail(err, rc, "%s", call.err.msg);
    } else if (call.status != 200) {
        const char *msg = json_string_value(json_object_get(json_array_get(json_object_get(a, "error"), 0), "message"));
        rc = sv_fail(err, call.status == 503 ? SV_EUNAVAIL : SV_EIO, "node %s refused the move's %s step (HTTP %d): %s",
                     t->to, step, call.status, msg ? msg : "no readable answer");
    }
    sv_buf_free(&call.out);
    if (rc == 0 && ans)
        *ans = a;
    else
        json_decref(a);
    return rc;
}

static int64_t jint(json_t *o, const char *k) { return (int64_t)json_integer_value(json_object_get(o, k)); }

static int canceled(move_task *t, sv_err *err)
{
    return sv_job_canceled(t->job) ? sv_fail(err, SV_ECANCELED, "the move was canceled") : 0;
}

/* Checkpoints the live shard into work/<name>, uploads it under the move's
 * manifest key (job: progress, NULL when none), removes the checkpoint. */
static int upload_checkpoint(move_task *t, const char *work, const char *name, const char *key, sv_job *job,
                             int64_t *objects, sv_dir_stats *up, sv_err *err)
{
    char ck[1500];
    snprintf(ck, sizeof ck, "%s/%s", work, name);
    int rc = sv_store_move_checkpoint(t->m->st, t->coll, t->shard, ck, objects, err);
    if (rc == 0)
        rc = sv_snapshot_put_dir(t->m->snap, ck, t->coll, t->shard, *objects, key, job, up, err);
    sv_rmtree(ck, NULL);
    return rc;
}

static int run_move(move_task *t, json_t **result, sv_err *err)
{
    sv_cluster_moves *m = t->m;
    char work[1400], key[400];
    snprintf(work, sizeof work, "%s/move-%s-src", sv_store_tmp_dir(m->st), t->id);
    manifest_key(t->coll, t->shard, t->id, key);
    sv_rmtree(work, NULL);
    int64_t t_start = sv_mono_ns(), objects = 0, objects2 = 0, fence_ms = -1;
    sv_dir_stats up1 = {0}, up2 = {0};
    json_t *a1 = NULL, *a2 = NULL;
    bool switched = false;
    int rc = sv_mkdirs(work, err);
    /* 1. the live shard, uploaded */
    if (rc == 0)
        rc = upload_checkpoint(t, work, "base", key, t->job, &objects, &up1, err);
    if (rc == 0)
        rc = canceled(t, err);
    /* 2. laid out on the target */
    if (rc == 0)
        rc = call_target(t, "base", BASE_TIMEOUT_MS, &a1, err);
    sv_crash_point("move:based");
    /* 2b. unfenced rounds while the target had much to fetch (writes, or a
     * compaction, rewrote files meanwhile): the fenced delta stays small. */
    int64_t fetched = jint(a1, "bytesFetched"), more_up = 0, more_fetched = 0;
    int rounds = 0;
    for (; rc == 0 && rounds < MAX_ROUNDS && fetched > SMALL_DELTA && fetched > up1.bytes / 50; rounds++) {
        sv_dir_stats upr = {0};
        json_t *ar = NULL;
        int64_t n = 0;
        rc = upload_checkpoint(t, work, "round", key, t->job, &n, &upr, err);
        if (rc == 0)
            rc = canceled(t, err);
        if (rc == 0)
            rc = call_target(t, "again", BASE_TIMEOUT_MS, &ar, err);
        fetched = jint(ar, "bytesFetched");
        more_up += upr.bytes_uploaded;
        more_fetched += fetched;
        json_decref(ar);
    }
    if (rc == 0)
        rc = canceled(t, err);
    /* 3. the fenced catch-up */
    int64_t f0 = sv_mono_ns();
    if (rc == 0)
        rc = sv_store_move_fence(m->st, t->coll, t->shard, DRAIN_MS, err);
    sv_crash_point("move:fenced");
    if (rc == 0)
        rc = upload_checkpoint(t, work, "final", key, NULL, &objects2, &up2, err);
    int64_t left = FENCE_MS - (sv_mono_ns() - f0) / 1000000;
    if (rc == 0 && left < 1000)
        rc = sv_fail(err, SV_ETIMEOUT, "the catch-up upload took more than the %lld ms the writes may be held",
                     FENCE_MS);
    if (rc == 0)
        rc = call_target(t, "final", left, &a2, err);
    if (rc == 0 && jint(a2, "objects") != objects2)
        rc = sv_fail(err, SV_ECORRUPT, "node %s's copy holds %lld objects, this node's %lld: nothing switched", t->to,
                     (long long)jint(a2, "objects"), (long long)objects2);
    if (rc == 0 && (sv_mono_ns() - f0) / 1000000 > FENCE_MS)
        rc = sv_fail(err, SV_ETIMEOUT, "the catch-up took more than the %lld ms the writes may be held", FENCE_MS);
    if (rc == 0)
        rc = canceled(t, err);
    bool unknown = false;
    if (rc == 0 && (rc = sv_store_move_switch(m->st, t->coll, t->shard, t->to, &unknown, err)) == 0)
        switched = true;
    /* Neither the transaction nor the read-back answered: the shard may be the
     * target's already, so the gate stays closed (writes wait, then get 503;
     * reads go on: both copies are the same) until the catalog answers. */
    if (unknown)
        sv_warn("a move's switch has an unknown outcome; writes to the shard stay held until the catalog answers",
                "collection=%s shard=%s to=%s error=\"%s\"", t->coll, t->shard, t->to, err->msg);
    while (unknown) {
        sv_sleep_ms(1000);
        bool sw = false;
        sv_err e2 = {0};
        if (sv_store_move_resolve(m->st, t->coll, t->shard, t->to, &sw, &e2) == 0) {
            unknown = false;
            switched = sw;
            char was[sizeof err->msg];
            snprintf(was, sizeof was, "%s", err->msg);
            rc = sw ? 0 : sv_fail(err, SV_EUNAVAIL, "the switch did not commit (%s)", was);
        } else if (atomic_load(&m->stopping)) {
            /* shutting down: the next start settles it by the record. A
             * client's cancel does not leave here: the gate must not stay
             * closed with nobody left to resolve it. */
            t->unresolved = true;
            break;
        }
    }
    /* 4. the target reads the record now (its watch would bring it too),
     * then the held writes go to it */
    if (t->unresolved) {
        sv_rmtree(work, NULL);
        json_decref(a1);
        json_decref(a2);
        return rc;
    }
    if (switched) {
        sv_err e2 = {0};
        if (call_target(t, "activate", STEP_TIMEOUT_MS, NULL, &e2) != 0)
            sv_warn("the move's target was not told; its watch applies the switch", "collection=%s shard=%s "
                    "error=\"%s\"", t->coll, t->shard, e2.msg);
        sv_store_move_finish(m->st, t->coll, t->shard);
        fence_ms = (sv_mono_ns() - f0) / 1000000;
    } else {
        sv_store_move_end(m->st, t->coll, t->shard); /* writes go on here */
        sv_err e2 = {0};
        if (call_target(t, "discard", STEP_TIMEOUT_MS, NULL, &e2) != 0)
            sv_warn("the move's target did not discard its copy (it never serves it; a later move replaces it)",
                    "collection=%s shard=%s to=%s error=\"%s\"", t->coll, t->shard, t->to, e2.msg);
    }
    sv_rmtree(work, NULL);
    sv_err e3 = {0};
    if (sv_snapshot_drop_dir(m->snap, key, &e3) != 0)
        sv_warn("a move's manifest was not removed (snapshot GC keeps its blobs while it exists)", "key=%s error=\"%s\"",
                key, e3.msg);
    if (rc == 0)
        *result = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:i,s:I,s:I,s:I,s:I,s:I,s:I}", "collection", t->coll,
                            "shard", t->shard, "from", t->from, "to", t->to, "objects", (json_int_t)objects2, "files",
                            (json_int_t)up2.files, "bytes", (json_int_t)up2.bytes, "unfencedRounds", rounds + 1,
                            "bytesUploaded", (json_int_t)(up1.bytes_uploaded + more_up + up2.bytes_uploaded),
                            "catchUpBytesUploaded", (json_int_t)up2.bytes_uploaded, "bytesFetched",
                            (json_int_t)(jint(a1, "bytesFetched") + more_fetched + jint(a2, "bytesFetched")),
                            "catchUpBytesFetched", (json_int_t)jint(a2, "bytesFetched"), "writesHeldMs",
                            (json_int_t)fence_ms, "ms", (json_int_t)((sv_mono_ns() - t_start) / 1000000));
    json_decref(a1);
    json_decref(a2);
    return rc;
}

/* Takes t out of the running list (wherever it is: others start and end
 * meanwhile) and wakes a shutdown waiting for the list to empty. */
static void task_unlink(sv_cluster_moves *m, move_task *t)
{
    pthread_mutex_lock(&m->mu);
    for (move_task **p = &m->running; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            break;
        }
    m->nrunning--;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void *move_thread(void *arg)
{
    move_task *t = arg;
    sv_cluster_moves *m = t->m;
    sv_err err = {0};
    json_t *result = NULL;
    sv_job_start(t->job, NULL);
    sv_info("shard move started", "job=%s collection=%s shard=%s from=%s to=%s", t->id, t->coll, t->shard, t->from,
            t->to);
    int rc = run_move(t, &result, &err);
    if (rc)
        sv_warn("shard move failed; the shard stays on this node", "job=%s collection=%s shard=%s to=%s error=\"%s\"",
                t->id, t->coll, t->shard, t->to, err.msg);
    if (!t->unresolved)
        sv_job_finish(t->job, rc == 0 ? SV_JOB_SUCCEEDED : rc == SV_ECANCELED ? SV_JOB_CANCELED : SV_JOB_FAILED,
                      rc ? (err.msg[0] ? err.msg : sv_strerror(rc)) : NULL, result, NULL);
    json_decref(result);
    task_unlink(m, t);
    sv_job_release(t->job);
    free(t);
    return NULL;
}

/* to: a member, HEALTHY. */
static int check_target(sv_cluster_moves *m, const char *to, sv_err *err)
{
    json_t *nodes = NULL;
    int rc = sv_cluster_nodes(m->cl, &nodes, err);
    if (rc)
        return rc;
    json_t *arr = json_object_get(nodes, "nodes"), *n;
    size_t i;
    const char *status = NULL;
    json_array_foreach(arr, i, n)
    {
        const char *name = json_string_value(json_object_get(n, "name"));
        if (name && !strcmp(name, to))
            status = json_string_value(json_object_get(n, "status"));
    }
    if (!status)
        rc = sv_fail(err, SV_EINVAL, "node '%.64s' is not a member of the cluster (GET /v1/nodes lists them)", to);
    else if (strcmp(status, "HEALTHY"))
        rc = sv_fail(err, SV_ESTATE, "node %.64s is %s; a shard can only move to a HEALTHY node", to, status);
    json_decref(nodes);
    return rc;
}

int sv_cluster_move_start(sv_cluster_moves *m, const char *coll, const char *shard, const char *to, json_t **out,
                          sv_err *err)
{
    *out = NULL;
    if (!m || !sv_cluster_placement(m->cl))
        return sv_fail(err, SV_EUNSUPPORTED,
                       "shard moves need a cluster: this server runs on the embedded catalog, where it holds every "
                       "shard (start nodes with --catalog etcd://…, docs/cluster.md)");
    if (!to || !*to)
        return sv_fail(err, SV_EINVAL, "the body must name the target node: {\"to\": \"node2\"}");
    char owner[65];
    bool tenant = false;
    int rc = sv_store_shard_node(m->st, coll, shard, owner, &tenant, err);
    if (rc)
        return rc;
    const char *what = tenant ? "tenant" : "shard";
    if (!strcmp(owner, to))
        return sv_fail(err, SV_ECONFLICT, "%s %s of collection '%s' is on node %s already", what, shard, coll, to);
    if (strcmp(owner, sv_cluster_name(m->cl)))
        return sv_fail(err, SV_EUNAVAIL, "%s %s of collection '%s' is served by node %s, which runs its moves", what,
                       shard, coll, owner);
    if ((rc = check_target(m, to, err)) != 0)
        return rc;
    if (sv_snapshot_location_is_own(m->snap))
        return sv_fail(err, SV_EUNSUPPORTED,
                       "shard moves go through a location every node reads; this node's is its own data directory "
                       "(%s): set SHARDVAULT_LOCATION (s3://… or a shared file://) on every node",
                       sv_snapshot_location_url(m->snap));
    if ((rc = sv_store_move_begin(m->st, coll, shard, err)) != 0)
        return rc;
    move_task *t = calloc(1, sizeof *t);
    if (!t) {
        sv_store_move_end(m->st, coll, shard);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    t->m = m;
    snprintf(t->coll, sizeof t->coll, "%s", coll);
    snprintf(t->shard, sizeof t->shard, "%s", shard);
    snprintf(t->from, sizeof t->from, "%s", owner);
    snprintf(t->to, sizeof t->to, "%s", to);
    char target[200];
    snprintf(target, sizeof target, "%s -> %s", shard, to);
    sv_job_spec spec = {.kind = "shard-move", .collection = coll, .target = target};
    if ((rc = sv_jobs_create(m->jobs, &spec, &t->job, err)) != 0) {
        sv_store_move_end(m->st, coll, shard);
        free(t);
        return rc;
    }
    snprintf(t->id, sizeof t->id, "%s", sv_job_id(t->job));
    *out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "jobId", t->id, "kind", "shard-move", "collection", coll,
                     tenant ? "tenant" : "shard", shard, "from", owner, "to", to, "node", owner);
    pthread_mutex_lock(&m->mu);
    t->next = m->running;
    m->running = t;
    m->nrunning++;
    pthread_mutex_unlock(&m->mu);
    int e = sv_thread_detached(move_thread, t);
    if (e) {
        task_unlink(m, t);
        sv_store_move_end(m->st, coll, shard);
        sv_job_finish(t->job, SV_JOB_FAILED, "cannot start a thread", NULL, NULL);
        sv_job_release(t->job);
        free(t);
        json_decref(*out);
        *out = NULL;
        return sv_fail(err, SV_EIO, "cannot start the move thread");
    }
    return 0;
}

/* ---- restart: moves a previous process left ------------------------------------- */

/* A move interrupted by a restart of this node (the source): its outcome is
 * the placement record's. Switched: the job SUCCEEDED and this node's stale
 * copy goes; not switched: FAILED, the shard stays here. Either way the
 * move's manifest goes. */
static void settle(void *ud, const char *id, const char *coll, const char *target, const char *backend)
{
    (void)backend;
    sv_cluster_moves *m = ud;
    const char *arrow = target ? strstr(target, " -> ") : NULL;
    if (!coll || !arrow)
        return; /* not ours to read: recover fails it */
    char shard[72], to[65], owner[65] = "", key[400];
    snprintf(shard, sizeof shard, "%.*s", (int)(arrow - target > 71 ? 71 : arrow - target), target);
    snprintf(to, sizeof to, "%.64s", arrow + 4);
    sv_job *job = NULL;
    if (sv_jobs_claim(m->jobs, id, &job, NULL) != 0)
        return;
    sv_err e = {0};
    int rc = sv_store_shard_node(m->st, coll, shard, owner, NULL, &e);
    manifest_key(coll, shard, id, key);
    sv_snapshot_drop_dir(m->snap, key, NULL);
    char why[700];
    if (rc == 0 && !strcmp(owner, to)) {
        char dir[1024];
        /* Not this node's: its leftover copy (the process died before removing it). */
        if (sv_store_move_target_dir(m->st, coll, shard, dir, NULL) == 0)
            sv_rmtree(dir, NULL);
        json_t *res = json_pack("{s:s,s:s,s:s,s:b}", "collection", coll, "shard", shard, "to", to, "settledAtRestart", 1);
        sv_job_finish(job, SV_JOB_SUCCEEDED, NULL, res, NULL);
        json_decref(res);
        sv_info("shard move settled at restart: it had switched", "job=%s collection=%s shard=%s to=%s", id, coll, shard,
                to);
    } else {
        if (rc)
            snprintf(why, sizeof why, "the source node restarted during the move; its outcome could not be read "
                                      "(%.500s)", e.msg);
        else
            snprintf(why, sizeof why, "the source node restarted during the move, before the ownership switch: the "
                                      "shard stays on node %s (nothing was switched)", owner);
        sv_job_finish(job, SV_JOB_FAILED, why, NULL, NULL);
        sv_info("shard move settled at restart: not switched", "job=%s collection=%s shard=%s", id, coll, shard);
    }
    sv_job_release(job);
}

/* ---- following other nodes' switches --------------------------------------------- */

static void on_shards(const sv_catalog_event *e, void *ud)
{
    sv_cluster_moves *m = ud;
    if (e->type != SV_CATALOG_EV_PUT)
        return; /* a collection's records go with it (the collections/ watch) */
    sv_err err = {0};
    if (sv_store_apply_record(m->st, e->key, e->val, e->len, &err) != 0)
        sv_warn("cannot apply a shard placement change; it is read again on use", "key=%s error=\"%s\"", e->key,
                err.msg);
}

int sv_cluster_moves_open(sv_cluster *c, sv_store *st, struct sv_snapshot *snap, struct sv_jobs *jobs,
                          sv_catalog *cat, sv_cluster_moves **out, sv_err *err)
{
    *out = NULL;
    sv_cluster_moves *m = calloc(1, sizeof *m);
    if (!m)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    *m = (sv_cluster_moves){.cl = c, .st = st, .snap = snap, .jobs = jobs, .cat = cat};
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    int rc = sv_jobs_register_kind(jobs, &(sv_job_kind){.name = "shard-move"}, err);
    if (rc == 0)
        rc = sv_jobs_unfinished(jobs, "shard-move", settle, m, err);
    if (rc == 0 && sv_cluster_placement(c))
        rc = sv_catalog_watch_start(cat, "shards/", 0, on_shards, m, &m->watch, err);
    if (rc) {
        sv_cluster_moves_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void sv_cluster_moves_close(sv_cluster_moves *m)
{
    if (!m)
        return;
    sv_catalog_watch_stop(m->watch);
    atomic_store(&m->stopping, true);
    pthread_mutex_lock(&m->mu);
    for (move_task *t = m->running; t; t = t->next)
        sv_job_request_cancel(t->job);
    while (m->nrunning > 0)
        pthread_cond_wait(&m->cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
