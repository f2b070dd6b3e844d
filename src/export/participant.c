/* The local participant: one export slot per node; prepare captures the
 * shards (the point in time), commit scans the checkpoints with parallel
 * workers, each key range streaming one Parquet file into the location. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "export_internal.h"

/* J_COMMITTING: a commit is building layouts with the lock dropped; an abort
 * waits for it to end (RUNNING, or PREPARED again) before it acts. */
enum { J_PREPARING, J_PREPARED, J_COMMITTING, J_RUNNING, J_FINISHING };

typedef struct sv_export_shard {
    int coll;
    char name[72];
    char stem[SV_EXPORT_STEM_MAX]; /* its files are {stem}_{range:04d}.parquet */
    bool is_tenant;
    int status; /* SV_EXPORT_SHARD_*, under job->mu */
    /* Rows and bytes of the shard's files, published or being written (a
     * range that fails takes its own back out). bytes counts what reached
     * the location; pending estimates the row groups still in the writers'
     * memory, so the status grows with the rows (0 once every range ended). */
    atomic_llong objects, bytes, pending;
    char error[600];
    char skip[512];
    char dir[1200]; /* the checkpoint, "" when there is none */
    sv_db *db;      /* the checkpoint opened by its first range, shared by all (under job->mu) */
    int64_t known;  /* objects at capture (the store keeps exact counts) */
    uint32_t nranges;
    atomic_uint ranges_done;
} sv_export_shard;

typedef struct sv_export_coll {
    char name[129];
    sv_capture *cap;
    sv_export_layout *layout;
} sv_export_coll;

typedef struct sv_export_task {
    int shard;
    uint32_t range;
} sv_export_task;

typedef struct sv_export_job {
    sv_export *ex;
    char id[SV_EXPORT_ID_MAX + 1];
    int backend;
    sv_location *loc;
    json_t *req;
    sv_export_file_opts opt;
    uint64_t gen;
    int state; /* J_*, under ex->mu */
    int64_t started_ms, completed_ms, prepared_ns, committed_ns;
    char capture_root[1200];
    char marker_key[300];
    sv_export_coll *colls;
    size_t ncolls;
    sv_export_shard *shards;
    size_t nshards;
    sv_export_task *tasks;
    size_t ntasks;
    atomic_size_t next_task;
    atomic_bool stop;
    atomic_llong rows_total; /* for EXPORT_MAX_ROWS_PER_SECOND */
    /* Encoded record bytes of row groups handed to the location, and the
     * bytes they became: the ratio behind the pending estimates. */
    atomic_llong flushed_rec_bytes, flushed_file_bytes;
    pthread_mutex_t mu; /* status, error, shard status, workers_left */
    pthread_cond_t cv;
    int status;       /* SV_EXPORT_*: what the live view shows */
    int final_status; /* -1 until decided */
    int stop_status; /* what a stop ends as: SV_EXPORT_CANCELED or SV_EXPORT_FAILED */
    char error[1024];
    int workers_left;
    sv_job *job; /* the jobs service's record (may be NULL); finished with the export */
    bool clustered; /* other nodes take part: capture only this node's shards */
} sv_export_job;

/* ---- documents ---------------------------------------------------------------- */

static const char *shard_status_name(int st)
{
    static const char *const n[] = {"TRANSFERRING", "SUCCESS", "FAILED", "SKIPPED"};
    return st >= 0 && st <= SV_EXPORT_SHARD_SKIPPED ? n[st] : "FAILED";
}

/* {collection: {shard: progress}}; caller holds j->mu. */
static json_t *shard_status_json(sv_export_job *j)
{
    json_t *all = json_object();
    for (size_t i = 0; i < j->ncolls; i++)
        json_object_set_new(all, j->colls[i].name, json_object());
    for (size_t i = 0; i < j->nshards; i++) {
        sv_export_shard *s = &j->shards[i];
        json_t *p = json_pack("{s:s,s:I,s:I}", "status", shard_status_name(s->status), "objectsExported",
                              (json_int_t)atomic_load(&s->objects), "bytesWritten",
                              (json_int_t)(atomic_load(&s->bytes) + atomic_load(&s->pending)));
        if (s->error[0])
            json_object_set_new(p, "error", json_string(s->error));
        if (s->skip[0])
            json_object_set_new(p, "skipReason", json_string(s->skip));
        json_object_set_new(json_object_get(all, j->colls[s->coll].name), s->name, p);
    }
    return all;
}

/* The status documents show final_status once it is decided, while the live
 * view (j->status) turns terminal only after they are written: a client that
 * sees SUCCESS can rely on the metadata file saying so too. */
static int doc_status(sv_export_job *j) { return j->final_status >= 0 ? j->final_status : j->status; }

/* Objects of this node's shards at the point in time; -1 while one is not
 * known yet. Under j->mu. */
static int64_t objects_total_locked(const sv_export_job *j)
{
    int64_t total = 0;
    for (size_t i = 0; i < j->nshards && total >= 0; i++)
        total = j->shards[i].known < 0 ? -1 : total + j->shards[i].known;
    return total;
}

static json_t *node_status_json(sv_export_job *j)
{
    pthread_mutex_lock(&j->mu);
    json_t *d =
        json_pack("{s:i,s:s,s:s,s:o,s:s}", "format_version", 1, "nodeName", j->ex->node, "status",
                  sv_export_status_name(doc_status(j)), "shardProgress", shard_status_json(j), "version", SV_VERSION);
    int64_t total = objects_total_locked(j);
    if (d && total >= 0) /* this node's part: a cluster's total is the sum over the nodes */
        json_object_set_new(d, "objectsTotal", json_integer(total));
    if (j->error[0])
        json_object_set_new(d, "error", json_string(j->error));
    if (j->completed_ms) {
        json_object_set_new(d, "completedAt", sv_export_time_json(j->completed_ms));
        json_object_set_new(d, "completedAtMs", json_integer(j->completed_ms));
    }
    pthread_mutex_unlock(&j->mu);
    return d;
}

static json_t *meta_json(sv_export_job *j, bool live)
{
    json_t *r = j->req;
    pthread_mutex_lock(&j->mu);
    int status = live ? j->status : doc_status(j);
    json_t *m = json_pack("{s:i,s:s,s:s,s:O,s:s,s:o,s:I,s:O,s:O,s:O,s:o}", "format_version", 1, "id", j->id,
                          "backend", json_string_value(json_object_get(r, "backend")), "path",
                          json_object_get(r, "path"), "status", sv_export_status_name(status), "startedAt",
                          sv_export_time_json(j->started_ms), "startedAtMs", (json_int_t)j->started_ms, "classes",
                          json_object_get(r, "classes"), "nodeAssignments", json_object_get(r, "nodeAssignments"),
                          "options", json_object_get(r, "options"), "shardStatus", shard_status_json(j));
    if (m && j->error[0])
        json_object_set_new(m, "error", json_string(j->error));
    json_t *coord = json_object_get(r, "coordinator"), *attempt = json_object_get(r, "attempt");
    if (m && coord)
        json_object_set(m, "coordinator", coord);
    if (m && attempt)
        json_object_set(m, "attempt", attempt);
    /* Objects at the point in time, for progress bars and ETAs (this node's;
     * sv_export_promote and sv_export_aggregate add the other nodes'). */
    int64_t total = objects_total_locked(j);
    if (m && total >= 0)
        json_object_set_new(m, "objectsTotal", json_integer(total));
    if (m && j->completed_ms && sv_export_status_terminal(sv_export_status_name(status))) {
        json_object_set_new(m, "completedAt", sv_export_time_json(j->completed_ms));
        json_object_set_new(m, "tookInMs", json_integer(j->completed_ms - j->started_ms));
    }
    pthread_mutex_unlock(&j->mu);
    return m;
}

static void flush_node_status(sv_export_job *j)
{
    char key[300];
    sv_export_node_key(key, sizeof key, j->id, j->ex->node);
    json_t *d = node_status_json(j);
    sv_err err = {0};
    if (!d || sv_export_put_json(j->loc, key, d, &err))
        sv_warn("export: cannot write node status", "id=%s error=\"%s\"", j->id, err.msg);
    json_decref(d);
}

/* Writes the final metadata once every participant has finished: this node's
 * status is known; other nodes' come from their status files. Returns false
 * if the final document could not be written. */
static bool promote_metadata(sv_export_job *j)
{
    json_t *meta = meta_json(j, false);
    sv_err err = {0};
    bool ok = meta && sv_export_promote(j->ex, j->loc, meta, j->req, true, &err);
    if (!ok)
        sv_error("export: cannot write final metadata; the running marker stays so the next start marks it FAILED",
                 "id=%s error=\"%s\"", j->id, err.msg);
    json_decref(meta);
    return ok;
}

bool sv_export_promote(sv_export *ex, sv_location *loc, json_t *meta, json_t *req, bool self_included, sv_err *err)
{
    const char *id = json_string_value(json_object_get(meta, "id"));
    json_t *ss = json_object_get(meta, "shardStatus");
    if (!json_is_object(ss)) {
        ss = json_object();
        json_object_set_new(meta, "shardStatus", ss);
    }
    const char *node;
    json_t *v;
    bool complete = true, failed = false, canceled = false;
    const char *first_error = NULL;
    int64_t last_done = 0;
    /* objectsTotal over every node: this one's (when it holds shards) plus
     * each other node's status file; unknown (left out) if one lacks it */
    int64_t total = 0;
    bool total_known = true;
    if (self_included)
        sv_export_total_add(meta, &total, &total_known);
    json_t *others = json_array(); /* keeps other nodes' documents alive */
    json_object_foreach(json_object_get(req, "nodeAssignments"), node, v)
    {
        if (self_included && !strcmp(node, ex->node))
            continue;
        char key[300];
        sv_export_node_key(key, sizeof key, id, node);
        json_t *d = NULL;
        sv_err gerr = {0};
        const char *st = NULL;
        if (sv_export_get_json(loc, key, &d, &gerr) == 0) {
            json_array_append_new(others, d);
            st = json_string_value(json_object_get(d, "status"));
        }
        if (!sv_export_status_terminal(st)) {
            complete = false;
            continue;
        }
        failed |= !strcmp(st, "FAILED");
        canceled |= !strcmp(st, "CANCELED");
        sv_export_total_add(d, &total, &total_known);
        if (!first_error)
            first_error = json_string_value(json_object_get(d, "error"));
        json_t *cp = json_object_get(d, "completedAtMs");
        if (json_integer_value(cp) > last_done)
            last_done = json_integer_value(cp);
        const char *coll;
        json_t *shards;
        json_object_foreach(json_object_get(d, "shardProgress"), coll, shards)
        {
            json_t *cs = json_object_get(ss, coll);
            if (json_is_object(cs) && json_is_object(shards))
                json_object_update(cs, shards);
            else if (json_is_object(shards))
                json_object_set(ss, coll, shards);
        }
    }
    bool written = true;
    if (!complete && sv_export_clustered(req)) { /* watched until the others end (or are marked lost) */
        bool s3 = sv_export_backend_index(json_string_value(json_object_get(req, "backend"))) == SV_EXPORT_BACKEND_S3;
        sv_export_watch_add(ex, s3 ? SV_EXPORT_BACKEND_S3 : SV_EXPORT_BACKEND_FS, id, NULL);
    }
    if (complete && sv_export_clustered(req))
        sv_export_total_set(meta, total, total_known);
    if (complete) {
        const char *mine = json_string_value(json_object_get(meta, "status"));
        if (!self_included || !sv_export_status_terminal(mine))
            mine = "SUCCESS";
        const char *final = failed || !strcmp(mine, "FAILED")       ? "FAILED"
                            : canceled || !strcmp(mine, "CANCELED") ? "CANCELED"
                                                                    : "SUCCESS";
        json_object_set_new(meta, "status", json_string(final));
        if (strcmp(final, "SUCCESS") && first_error && !json_object_get(meta, "error"))
            json_object_set_new(meta, "error", json_string(first_error));
        if (!self_included || !json_object_get(meta, "completedAt")) {
            int64_t done = last_done > 0 ? last_done : sv_now_ms();
            int64_t started = json_integer_value(json_object_get(meta, "startedAtMs"));
            json_object_set_new(meta, "completedAt", sv_export_time_json(done));
            if (started > 0)
                json_object_set_new(meta, "tookInMs", json_integer(done - started));
        }
        char key[300];
        sv_export_key(key, sizeof key, id, "export_metadata.json");
        written = sv_export_put_json(loc, key, meta, err) == 0;
        /* The decision record has done its work once the outcome is in
         * the metadata (a later reader never needs it). */
        if (written && sv_export_clustered(req)) {
            char dk[400];
            sv_export_decision_key(dk, sizeof dk, json_string_value(json_object_get(req, "backend")), id);
            sv_err derr = {0};
            sv_catalog_delete(ex->cat, dk, &derr);
        }
    }
    json_decref(others);
    return written;
}

/* ---- job lifetime ---------------------------------------------------------------- */

/* The export's outcome in the jobs vocabulary (SUCCESS -> SUCCEEDED). */
static void job_finish(sv_export_job *j, int status, const char *reason)
{
    if (!j->job)
        return;
    sv_job_state st = status == SV_EXPORT_SUCCESS    ? SV_JOB_SUCCEEDED
                      : status == SV_EXPORT_CANCELED ? SV_JOB_CANCELED
                                                     : SV_JOB_FAILED;
    /* the job's result: what this node exported (its shards' counters) */
    int64_t objects = 0, bytes = 0;
    for (size_t i = 0; i < j->nshards; i++) {
        objects += atomic_load(&j->shards[i].objects);
        bytes += atomic_load(&j->shards[i].bytes);
    }
    json_t *result = json_pack("{s:I,s:I}", "objectsExported", (json_int_t)objects, "bytesWritten", (json_int_t)bytes);
    sv_err e = {0};
    if (sv_job_finish(j->job, st, st == SV_JOB_FAILED ? reason : NULL, result, &e))
        sv_warn("export: job record not updated", "id=%s error=\"%s\"", j->id, e.msg);
    json_decref(result); /* sv_job_finish keeps its own reference */
    sv_job_release(j->job);
    j->job = NULL;
}

static void job_free(sv_export_job *j)
{
    if (!j)
        return;
    job_finish(j, SV_EXPORT_FAILED, "export released before it ran"); /* no-op once finished */
    for (size_t i = 0; i < j->ncolls; i++) {
        sv_capture_free(j->colls[i].cap);
        sv_export_layout_free(j->colls[i].layout);
    }
    free(j->colls);
    free(j->shards);
    free(j->tasks);
    json_decref(j->req);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* Called once no worker scans any more. */
static void job_remove_checkpoints(sv_export_job *j)
{
    for (size_t i = 0; i < j->nshards; i++) {
        sv_db_close(j->shards[i].db);
        j->shards[i].db = NULL;
    }
    sv_err err = {0};
    if (j->capture_root[0] && sv_rmtree(j->capture_root, &err))
        sv_warn("export: cannot remove checkpoints", "dir=%s error=\"%s\"", j->capture_root, err.msg);
    j->capture_root[0] = '\0';
}

/* Removes what prepare created: checkpoints and the running marker. */
static void job_cleanup(sv_export_job *j)
{
    sv_err err = {0};
    job_remove_checkpoints(j);
    if (j->marker_key[0] && sv_catalog_delete(j->ex->cat, j->marker_key, &err))
        sv_warn("export: cannot clear the running marker", "key=%s error=\"%s\"", j->marker_key, err.msg);
}

/* Caller holds ex->mu and owns j (it is or was in the slot). */
static void slot_release(sv_export *ex, sv_export_job *j)
{
    if (ex->slot == j) {
        ex->slot = NULL;
        pthread_cond_broadcast(&ex->cv);
    }
}

static void request_stop(sv_export_job *j, int status, const char *why)
{
    pthread_mutex_lock(&j->mu);
    if (!atomic_load(&j->stop)) {
        j->stop_status = status;
        if (why && !j->error[0])
            snprintf(j->error, sizeof j->error, "%s", why);
        atomic_store(&j->stop, true);
    }
    pthread_mutex_unlock(&j->mu);
}

/* ---- the scan ----------------------------------------------------------------------- */

typedef struct sink_ctx {
    sv_location_writer *lw;
    sv_export_job *job;
    sv_export_shard *shard;
    int64_t bytes;     /* handed to the location */
    int64_t rec_bytes; /* encoded size of the rows appended since the writer last wrote */
    int64_t estimate;  /* what this range adds to shard->pending now */
} sink_ctx;

/* Published rows and bytes, in the shard's status and in the job's counters. */
static void count(sv_export_job *j, sv_export_shard *sh, int64_t rows, int64_t bytes)
{
    if (rows)
        atomic_fetch_add(&sh->objects, rows);
    if (bytes)
        atomic_fetch_add(&sh->bytes, bytes);
    if (j->job)
        sv_job_add_done(j->job, rows, bytes);
}

static void set_estimate(sink_ctx *c, int64_t est)
{
    atomic_fetch_add(&c->shard->pending, est - c->estimate);
    c->estimate = est;
}

/* The bytes the rows appended since the last write will take once written:
 * their encoded size scaled by what earlier row groups of this export became
 * (until the first one is written: uncompressed about 1:1; compressed,
 * vectors shrink little and text much, 3/4 is a middle). */
static void update_estimate(sink_ctx *c)
{
    double rec = (double)atomic_load(&c->job->flushed_rec_bytes);
    double file = (double)atomic_load(&c->job->flushed_file_bytes);
    double ratio = rec > 0 && file > 0 ? file / rec : c->job->opt.codec == SV_PQ_CODEC_NONE ? 1.0 : 0.75;
    set_estimate(c, (int64_t)((double)c->rec_bytes * ratio));
}

static int sink_write(void *ud, const void *data, size_t len, sv_err *err)
{
    sink_ctx *c = ud;
    int rc = sv_location_writer_write(c->lw, data, len, err);
    if (rc == 0) {
        /* A row group (or the footer) went out: real bytes replace the estimate. */
        if (c->rec_bytes) {
            atomic_fetch_add(&c->job->flushed_rec_bytes, c->rec_bytes);
            c->rec_bytes = 0;
        }
        atomic_fetch_add(&c->job->flushed_file_bytes, (long long)len);
        c->bytes += (int64_t)len;
        count(c->job, c->shard, 0, (int64_t)len);
        set_estimate(c, 0);
    }
    return rc;
}

static int sink_close(void *ud, sv_err *err)
{
    sink_ctx *c = ud;
    sv_location_writer *lw = c->lw;
    c->lw = NULL; /* commit frees it whatever the outcome */
    return sv_location_writer_commit(lw, err);
}

/* EXPORT_MAX_ROWS_PER_SECOND: keeps a node's export from saturating its
 * disks or uplink; sleeps in short steps so a stop is still seen quickly. */
static void throttle(sv_export_job *j, int64_t rows)
{
    int64_t rate = j->ex->max_rows_per_sec;
    int64_t done = atomic_fetch_add(&j->rows_total, rows) + rows;
    if (rate <= 0)
        return;
    for (;;) {
        int64_t due_ns = j->committed_ns + done * 1000000000LL / rate;
        int64_t wait = due_ns - sv_mono_ns();
        if (wait <= 0 || atomic_load(&j->stop))
            return;
        sv_sleep_ms(wait > 50000000LL ? 50 : wait / 1000000 + 1);
    }
}

static int run_range(sv_export_job *j, const sv_export_task *t, sv_record *r, sv_export_scratch *x, sv_err *err)
{
    sv_export *ex = j->ex;
    sv_export_shard *sh = &j->shards[t->shard];
    sv_export_coll *c = &j->colls[sh->coll];
    uint8_t start[16], end[16];
    bool has_end;
    sv_export_range_bounds(t->range, sh->nranges, start, end, &has_end);
    char key[400];
    snprintf(key, sizeof key, "%s/%s_%04u.parquet", j->id, sh->stem, t->range);
    sv_db_iter *it = NULL;
    sv_pq_writer *w = NULL;
    sink_ctx sc = {.job = j, .shard = sh};
    int64_t rows = 0, counted = 0;
    pthread_mutex_lock(&j->mu);
    int rc = sh->db ? 0 : sv_db_open_readonly(ex->engine, sh->dir, &sh->db, err);
    sv_db *db = sh->db;
    pthread_mutex_unlock(&j->mu);
    if (rc == 0)
        rc = sv_location_writer_open(j->loc, key, &sc.lw, err);
    if (rc == 0) {
        char range[16];
        snprintf(range, sizeof range, "%04u", t->range);
        sv_pq_kv kv[6] = {{"collection", c->name},
                          {"shardvault.export_id", j->id},
                          {"shardvault.schema", sv_export_layout_description(c->layout)},
                          {"shardvault.shard", sh->name},
                          {"shardvault.range", range},
                          {"tenant", sh->name}};
        sv_pq_options o = {.codec = j->opt.codec, .level = j->opt.level, .row_group_bytes = ex->row_group_bytes,
                           .kv = kv, .n_kv = sh->is_tenant ? 6 : 5};
        sv_pq_sink sink = {sink_write, sink_close, &sc};
        rc = sv_pq_writer_new(sv_export_layout_pq(c->layout), &o, &sink, &w, err);
    }
    if (rc == 0 && !(it = sv_db_iter_new(db)))
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    if (rc == 0)
        sv_db_iter_seek(it, start, 16);
    while (rc == 0 && sv_db_iter_valid(it)) {
        size_t klen, vlen;
        const char *k = sv_db_iter_key(it, &klen);
        if (klen == 16) { /* longer keys are bookkeeping */
            if (has_end && memcmp(k, end, 16) >= 0)
                break;
            memcpy(r->id.b, k, 16);
            const char *v = sv_db_iter_value(it, &vlen);
            if ((rc = sv_record_decode(r, c->cap->schema, v, vlen, err)) != 0) {
                char u[37];
                sv_uuid_format(&r->id, u);
                sv_err_wrap(err, "object %s", u);
                break;
            }
            if ((rc = sv_export_layout_append(c->layout, x, w, r, err)) != 0)
                break;
            sc.rec_bytes += (int64_t)(klen + vlen);
            if ((++rows & 127) == 0) {
                count(j, sh, 128, 0);
                counted += 128;
                update_estimate(&sc);
                throttle(j, 128);
                if (atomic_load(&j->stop)) {
                    rc = sv_fail(err, SV_ECANCELED, "stopped");
                    break;
                }
            }
        }
        sv_db_iter_next(it);
    }
    if (rc == 0 && it)
        rc = sv_db_iter_status(it, err);
    if (rc == 0) {
        count(j, sh, rows - counted, 0);
        counted = rows;
        rc = sv_pq_writer_close(w, err);
    }
    if (rc) {
        /* Only files that were published count. */
        count(j, sh, -counted, -sc.bytes);
        sv_err_wrap(err, "%s", key);
    } else {
        atomic_fetch_add(&ex->m_objects, rows);
        atomic_fetch_add(&ex->m_bytes, sc.bytes);
    }
    set_estimate(&sc, 0);
    if (sc.lw)
        sv_location_writer_abort(sc.lw);
    sv_pq_writer_free(w);
    sv_db_iter_free(it);
    return rc;
}

static void *worker(void *arg)
{
    sv_export_job *j = arg;
    sv_record *r = sv_record_new();
    sv_export_scratch x = {0};
    for (;;) {
        if (atomic_load(&j->stop))
            break;
        size_t t = atomic_fetch_add(&j->next_task, 1);
        if (t >= j->ntasks)
            break;
        sv_export_shard *sh = &j->shards[j->tasks[t].shard];
        sv_err err = {0};
        int rc = r ? run_range(j, &j->tasks[t], r, &x, &err) : sv_fail(&err, SV_ENOMEM, "out of memory");
        pthread_mutex_lock(&j->mu);
        if (rc == 0) {
            if (atomic_fetch_add(&sh->ranges_done, 1) + 1 == sh->nranges && sh->status == SV_EXPORT_SHARD_TRANSFERRING)
                sh->status = SV_EXPORT_SHARD_SUCCESS;
        } else if (rc != SV_ECANCELED) {
            sh->status = SV_EXPORT_SHARD_FAILED;
            snprintf(sh->error, sizeof sh->error, "%s", err.msg);
        }
        pthread_mutex_unlock(&j->mu);
        if (rc && rc != SV_ECANCELED) {
            char why[1024];
            snprintf(why, sizeof why, "collection %s shard %s: %s", j->colls[sh->coll].name, sh->name, err.msg);
            sv_error("export shard failed", "id=%s error=\"%s\"", j->id, why);
            request_stop(j, SV_EXPORT_FAILED, why);
        }
    }
    sv_record_free(r);
    sv_export_scratch_free(&x);
    pthread_mutex_lock(&j->mu);
    j->workers_left--;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* Names the files of every shard that has data and refuses an export in
 * which two of them would share a name: the second would replace the first
 * and the export would report rows that are not in its files. File names are
 * {stem}_{range}.parquet with a decimal range, so two files share a name
 * exactly when their shards share a stem. */
static int check_file_names(sv_export_job *j, sv_err *err)
{
    const char **stems = calloc(j->nshards + 1, sizeof *stems);
    size_t *owner = calloc(j->nshards + 1, sizeof *owner);
    size_t n = 0;
    int rc = stems && owner ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < j->nshards; i++) {
        sv_export_shard *s = &j->shards[i];
        if (s->status != SV_EXPORT_SHARD_TRANSFERRING)
            continue;
        rc = sv_export_file_stem(s->stem, sizeof s->stem, j->colls[s->coll].name, s->name, err);
        stems[n] = s->stem;
        owner[n++] = i;
    }
    size_t a = 0, b = 0;
    if (rc == 0 && (rc = sv_export_first_duplicate(stems, n, &a, &b, err)) == 1) {
        const sv_export_shard *x = &j->shards[owner[a]], *y = &j->shards[owner[b]];
        rc = sv_fail(err, SV_ECONFLICT,
                     "export files would collide: collection %s shard %s and collection %s shard %s both write "
                     "%s_NNNN.parquet; nothing was written",
                     j->colls[x->coll].name, x->name, j->colls[y->coll].name, y->name, x->stem);
    }
    free(stems);
    free(owner);
    return rc;
}

/* Splits every shard with data into key ranges of about rows_per_file. */
static int plan(sv_export_job *j, sv_err *err)
{
    size_t ntasks = 0;
    for (size_t i = 0; i < j->nshards; i++) {
        sv_export_shard *s = &j->shards[i];
        if (s->status != SV_EXPORT_SHARD_TRANSFERRING)
            continue;
        if (!s->dir[0])
            s->known = 0;
        pthread_mutex_lock(&j->mu);
        if (s->known == 0) {
            s->status = SV_EXPORT_SHARD_SKIPPED;
            snprintf(s->skip, sizeof s->skip, "no data");
        }
        pthread_mutex_unlock(&j->mu);
        if (s->status == SV_EXPORT_SHARD_TRANSFERRING) {
            s->nranges = sv_export_range_count(s->known, j->ex->rows_per_file);
            ntasks += s->nranges;
        }
    }
    int rc = check_file_names(j, err);
    if (rc)
        return rc;
    if (j->job) {
        int64_t total = 0;
        for (size_t i = 0; i < j->nshards; i++)
            if (j->shards[i].status == SV_EXPORT_SHARD_TRANSFERRING)
                total += j->shards[i].known;
        sv_job_set_totals(j->job, total, 0);
    }
    j->tasks = calloc(ntasks + 1, sizeof *j->tasks);
    if (!j->tasks)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    /* Range 0 of every shard first, so small shards finish early and every
     * shard shows progress. */
    for (uint32_t r = 0;; r++) {
        bool any = false;
        for (size_t i = 0; i < j->nshards; i++) {
            sv_export_shard *s = &j->shards[i];
            if (s->status == SV_EXPORT_SHARD_TRANSFERRING && r < s->nranges) {
                j->tasks[j->ntasks++] = (sv_export_task){(int)i, r};
                any = true;
            }
        }
        if (!any)
            break;
    }
    return 0;
}

static void *runner(void *arg)
{
    sv_export_job *j = arg;
    sv_export *ex = j->ex;
    sv_err err = {0};
    flush_node_status(j);
    int rc = plan(j, &err);
    if (rc)
        request_stop(j, SV_EXPORT_FAILED, err.msg);
    int nw = 0;
    pthread_t *th = NULL;
    if (rc == 0 && j->ntasks) {
        nw = ex->parallelism < (int)j->ntasks ? ex->parallelism : (int)j->ntasks;
        th = calloc((size_t)nw, sizeof *th);
        int started = 0;
        pthread_mutex_lock(&j->mu);
        j->workers_left = nw;
        pthread_mutex_unlock(&j->mu);
        for (int i = 0; th && i < nw; i++, started++)
            if (pthread_create(&th[i], NULL, worker, j))
                break;
        if (started < nw) {
            pthread_mutex_lock(&j->mu);
            j->workers_left -= nw - started;
            pthread_mutex_unlock(&j->mu);
            if (started == 0)
                request_stop(j, SV_EXPORT_FAILED, "cannot start export worker threads");
        }
        nw = started;
    }
    /* Wait for the workers, writing this node's status every interval. */
    pthread_mutex_lock(&j->mu);
    while (j->workers_left > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (ex->status_interval_ms % 1000) * 1000000LL;
        ts.tv_sec += ex->status_interval_ms / 1000 + ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) != 0 && j->workers_left > 0) {
            pthread_mutex_unlock(&j->mu);
            flush_node_status(j);
            pthread_mutex_lock(&j->mu);
        }
    }
    pthread_mutex_unlock(&j->mu);
    for (int i = 0; i < nw; i++)
        pthread_join(th[i], NULL);
    free(th);

    pthread_mutex_lock(&ex->mu);
    j->state = J_FINISHING;
    pthread_mutex_unlock(&ex->mu);
    pthread_mutex_lock(&j->mu);
    int status = atomic_load(&j->stop) ? j->stop_status : SV_EXPORT_SUCCESS;
    /* Never SUCCESS for rows that are not in the files: every shard's
     * published rows must be the rows captured at the point in time. */
    for (size_t i = 0; status == SV_EXPORT_SUCCESS && i < j->nshards; i++) {
        sv_export_shard *s = &j->shards[i];
        int64_t rows = atomic_load(&s->objects);
        if (s->status != SV_EXPORT_SHARD_SUCCESS || rows == s->known)
            continue;
        s->status = SV_EXPORT_SHARD_FAILED;
        snprintf(s->error, sizeof s->error, "its files hold %lld rows but %lld objects were captured",
                 (long long)rows, (long long)s->known);
        snprintf(j->error, sizeof j->error, "collection %s shard %s: %s", j->colls[s->coll].name, s->name, s->error);
        sv_error("export shard incomplete", "id=%s error=\"%s\"", j->id, j->error);
        status = SV_EXPORT_FAILED;
    }
    for (size_t i = 0; i < j->nshards; i++) {
        sv_export_shard *s = &j->shards[i];
        if (s->status != SV_EXPORT_SHARD_TRANSFERRING)
            continue;
        s->status = SV_EXPORT_SHARD_FAILED;
        snprintf(s->error, sizeof s->error, "%.590s",
                 status == SV_EXPORT_CANCELED ? "export canceled" : j->error[0] ? j->error : "not exported");
    }
    j->completed_ms = sv_now_ms();
    j->final_status = status;
    pthread_mutex_unlock(&j->mu);
    /* Checkpoints go first; the running marker goes last, so a crash in
     * between still ends with the metadata marked FAILED at restart. */
    job_remove_checkpoints(j);
    flush_node_status(j);
    if (!promote_metadata(j))
        j->marker_key[0] = '\0'; /* keep it: recovery repairs the metadata at the next start */
    pthread_mutex_lock(&j->mu);
    j->status = status;
    pthread_mutex_unlock(&j->mu);
    sv_export_metrics_finish(ex, status, j->completed_ms - j->started_ms);
    job_finish(j, status, j->error[0] ? j->error : "export failed");
    job_cleanup(j);
    sv_info("export finished", "id=%s status=%s took_ms=%lld error=\"%s\"", j->id, sv_export_status_name(status),
            (long long)(j->completed_ms - j->started_ms), j->error);
    pthread_mutex_lock(&ex->mu);
    slot_release(ex, j);
    pthread_mutex_unlock(&ex->mu);
    job_free(j);
    return NULL;
}

/* ---- participant operations ------------------------------------------------------------ */

static int find_capture_shard(const sv_capture *cap, const char *name)
{
    for (size_t i = 0; i < cap->nshards; i++)
        if (!strcmp(cap->shards[i].name, name))
            return (int)i;
    return -1;
}

static int do_prepare(sv_export_job *j, sv_err *err)
{
    sv_export *ex = j->ex;
    json_t *shards = json_object_get(j->req, "shards");
    json_t *mark = json_pack("{s:s,s:s,s:s,s:I,s:b}", "id", j->id, "backend",
                             json_string_value(json_object_get(j->req, "backend")), "node", ex->node, "startedAtMs",
                             (json_int_t)j->started_ms, "clustered", j->clustered);
    char *ms = mark ? json_dumps(mark, JSON_COMPACT) : NULL;
    json_decref(mark);
    /* Per node: on a shared catalog every participant has its own. */
    snprintf(j->marker_key, sizeof j->marker_key, SV_EXPORT_MARKER_PREFIX "%s/%s", ex->node, j->id);
    int rc = ms ? sv_catalog_put(ex->cat, j->marker_key, ms, strlen(ms), 0, err) : sv_fail(err, SV_ENOMEM, "oom");
    free(ms);
    if (rc) {
        j->marker_key[0] = '\0';
        return rc;
    }
    if (j->clustered) {
        char probe[300];
        sv_export_key(probe, sizeof probe, j->id, SV_EXPORT_PROBE);
        sv_location_info info;
        sv_err perr = {0};
        int prc = sv_location_head(j->loc, probe, &info, &perr);
        if (prc == SV_ENOTFOUND)
            return sv_fail(err, SV_EINVAL,
                           "node %s does not see the coordinator's export location (%s): across nodes every node "
                           "must write to the same storage: use the s3 backend, or point EXPORT_FILESYSTEM_PATH at a "
                           "directory all nodes share",
                           ex->node, json_string_value(json_object_get(j->req, "path")));
        if (prc)
            return sv_fail(err, prc, "node %s cannot read the export location: %s", ex->node, perr.msg);
    }
    snprintf(j->capture_root, sizeof j->capture_root, "%s/export-%s-%llu", sv_store_tmp_dir(ex->store), j->id,
             (unsigned long long)j->gen);
    if ((rc = sv_mkdirs(j->capture_root, err)))
        return rc;
    j->ncolls = json_object_size(shards);
    size_t total = 0;
    const char *coll;
    json_t *names;
    json_object_foreach(shards, coll, names) total += json_array_size(names);
    j->colls = calloc(j->ncolls + 1, sizeof *j->colls);
    j->shards = calloc(total + 1, sizeof *j->shards);
    if (!j->colls || !j->shards)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    size_t ci = 0;
    json_object_foreach(shards, coll, names)
    {
        sv_export_coll *c = &j->colls[ci];
        snprintf(c->name, sizeof c->name, "%s", coll);
        char dir[1300];
        snprintf(dir, sizeof dir, "%s/%zu", j->capture_root, ci);
        if ((rc = sv_store_capture_ex(ex->store, coll, dir, j->clustered ? SV_CAPTURE_LOCAL : 0, &c->cap, err)))
            return sv_err_wrap(err, "capturing collection %s", coll);
        size_t k;
        json_t *n;
        json_array_foreach(names, k, n)
        {
            sv_export_shard *s = &j->shards[j->nshards++];
            s->coll = (int)ci;
            s->status = SV_EXPORT_SHARD_TRANSFERRING;
            snprintf(s->name, sizeof s->name, "%s", json_string_value(n));
            int idx = find_capture_shard(c->cap, s->name);
            if (idx < 0 && j->clustered) /* placement changed since the coordinator looked */
                return sv_fail(err, SV_ECONFLICT,
                               "shard %s of collection %s is no longer on node %s (it was deleted or moved); retry "
                               "the export",
                               s->name, coll, ex->node);
            if (idx < 0) {
                s->status = SV_EXPORT_SHARD_SKIPPED;
                snprintf(s->skip, sizeof s->skip, "the shard no longer exists");
                continue;
            }
            const sv_shard_capture *sc = &c->cap->shards[idx];
            s->is_tenant = sc->is_tenant;
            if (sc->status == SV_CAPTURE_UNAVAILABLE) {
                s->status = SV_EXPORT_SHARD_SKIPPED;
                snprintf(s->skip, sizeof s->skip, "%s", sc->reason);
                continue;
            }
            s->known = sc->status == SV_CAPTURE_EMPTY ? 0 : sc->objects;
            if (sc->status == SV_CAPTURE_OK)
                snprintf(s->dir, sizeof s->dir, "%s", sc->dir);
        }
        ci++;
        if (atomic_load(&j->stop))
            return sv_fail(err, SV_ECANCELED, "export '%s' was aborted during prepare", j->id);
    }
    return 0;
}

static int p_prepare(void *self, json_t *req, sv_err *err)
{
    sv_export *ex = self;
    const char *id = json_string_value(json_object_get(req, "id"));
    const char *backend = json_string_value(json_object_get(req, "backend"));
    int b = sv_export_backend_index(backend) == SV_EXPORT_BACKEND_S3 ? SV_EXPORT_BACKEND_S3 : SV_EXPORT_BACKEND_FS;
    if (!id || !json_is_object(json_object_get(req, "shards")))
        return sv_fail(err, SV_EINVAL, "prepare: the request needs an id and shards");
    int idrc = sv_check_export_id(id, err); /* its message names the rule */
    if (idrc)
        return idrc;
    sv_export_file_opts opt = {0};
    int rc = sv_export_file_opts_parse(json_object_get(req, "options"), &opt, err);
    sv_location *loc = NULL;
    if (rc == 0)
        rc = sv_export_location(ex, b, &loc, err);
    if (rc)
        return rc;
    sv_export_job *j = calloc(1, sizeof *j);
    if (!j)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    j->ex = ex;
    j->final_status = -1;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->backend = b;
    j->loc = loc;
    j->req = json_deep_copy(req);
    j->opt = opt;
    j->clustered = sv_export_clustered(req);
    j->started_ms = json_integer_value(json_object_get(req, "startedAtMs"));
    if (j->started_ms <= 0)
        j->started_ms = sv_now_ms();
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    pthread_mutex_lock(&ex->mu);
    /* An export that is only writing its final documents frees the slot in
     * moments: wait rather than refuse the next one. */
    while (ex->slot && ex->slot->state == J_FINISHING && !ex->part_shutdown)
        pthread_cond_wait(&ex->cv, &ex->mu);
    if (ex->part_shutdown)
        rc = sv_fail(err, SV_EUNAVAIL, "the server is shutting down; retry after restart");
    else if (ex->slot)
        rc = sv_fail(err, SV_ECONFLICT, "export '%s' is already running on node %s; wait for it or cancel it",
                     ex->slot->id, ex->node);
    else {
        ex->slot = j;
        j->gen = ++ex->slot_gen;
        j->state = J_PREPARING;
    }
    pthread_mutex_unlock(&ex->mu);
    if (rc) {
        job_free(j);
        return rc;
    }
    rc = do_prepare(j, err);
    pthread_mutex_lock(&ex->mu);
    if (rc == 0 && atomic_load(&j->stop))
        rc = sv_fail(err, SV_ECANCELED, "export '%s' was aborted during prepare", j->id);
    if (rc) {
        slot_release(ex, j);
        pthread_mutex_unlock(&ex->mu);
        job_cleanup(j);
        job_free(j);
        return rc;
    }
    j->state = J_PREPARED;
    j->prepared_ns = sv_mono_ns();
    pthread_mutex_unlock(&ex->mu);
    sv_info("export prepared", "id=%s collections=%zu shards=%zu", j->id, j->ncolls, j->nshards);
    return 0;
}

static int p_commit(void *self, const char *id, sv_err *err)
{
    sv_export *ex = self;
    pthread_mutex_lock(&ex->mu);
    sv_export_job *j = ex->slot;
    int rc = 0;
    if (!j || strcmp(j->id, id))
        rc = sv_fail(err, SV_ENOTFOUND, "no prepared export '%s' on node %s (the reservation may have timed out)",
                     id, ex->node);
    else if (j->state == J_COMMITTING || j->state == J_RUNNING) {
        pthread_mutex_unlock(&ex->mu);
        return 0; /* committed already (a repeated or a self-commit): idempotent */
    } else if (j->state != J_PREPARED)
        rc = sv_fail(err, SV_ECONFLICT, "export '%s' is not in the prepared state", id);
    bool join = rc == 0 && ex->runner_joinable;
    pthread_t prev = ex->runner;
    if (join)
        ex->runner_joinable = false;
    if (rc == 0)
        j->state = J_COMMITTING; /* j stays in the slot until this commit ends */
    pthread_mutex_unlock(&ex->mu);
    if (rc)
        return rc;
    if (join) /* that runner already left the slot; it is only returning */
        pthread_join(prev, NULL);
    /* Layouts are built before the state changes, so a failure here leaves
     * a prepared export the scheduler can abort. */
    for (size_t i = 0; rc == 0 && i < j->ncolls; i++)
        if (!j->colls[i].layout)
            rc = sv_export_layout_new(j->colls[i].cap->schema, j->opt.schema, &j->colls[i].layout, err);
    pthread_mutex_lock(&ex->mu);
    if (rc == 0) {
        pthread_mutex_lock(&j->mu);
        j->status = SV_EXPORT_TRANSFERRING;
        pthread_mutex_unlock(&j->mu);
        j->state = J_RUNNING;
        j->committed_ns = sv_mono_ns();
        if (pthread_create(&ex->runner, NULL, runner, j))
            rc = sv_fail(err, SV_ENOMEM, "cannot start the export thread");
        else
            ex->runner_joinable = true;
    }
    if (rc)
        j->state = J_PREPARED;
    pthread_cond_broadcast(&ex->cv); /* an abort waiting for the commit to end */
    pthread_mutex_unlock(&ex->mu);
    return rc;
}

/* A cluster export released before it ran on this node: once its metadata
 * is published, this node's status file says how it ended (every shard
 * FAILED with the reason), and the last node to end writes the outcome —
 * the metadata never stays STARTED. Before it is published (a failed start)
 * nothing is left behind. */
static void publish_unrun(sv_export_job *j, int status, const char *reason)
{
    char key[300];
    sv_export_key(key, sizeof key, j->id, "export_metadata.json");
    sv_location_info info;
    sv_err err = {0};
    if (sv_location_head(j->loc, key, &info, &err) != 0)
        return;
    pthread_mutex_lock(&j->mu);
    snprintf(j->error, sizeof j->error, "%s", reason ? reason : "");
    for (size_t i = 0; i < j->nshards; i++) {
        sv_export_shard *s = &j->shards[i];
        if (s->status != SV_EXPORT_SHARD_TRANSFERRING)
            continue;
        s->status = SV_EXPORT_SHARD_FAILED;
        snprintf(s->error, sizeof s->error, "%.590s", reason ? reason : "export canceled");
    }
    j->completed_ms = sv_now_ms();
    j->final_status = status;
    j->status = status;
    pthread_mutex_unlock(&j->mu);
    flush_node_status(j);
    promote_metadata(j);
}

/* Caller holds ex->mu. Releases a prepared export or stops a running one and
 * waits until it has left the slot. */
static void abort_locked(sv_export *ex, sv_export_job *j, int status, const char *reason)
{
    uint64_t gen = j->gen;
    while (ex->slot && ex->slot_gen == gen && ex->slot->state == J_COMMITTING)
        pthread_cond_wait(&ex->cv, &ex->mu);
    if (!ex->slot || ex->slot_gen != gen)
        return; /* it ended meanwhile */
    if (j->state == J_PREPARED) {
        slot_release(ex, j);
        pthread_mutex_unlock(&ex->mu);
        if (j->clustered)
            publish_unrun(j, status, reason);
        job_cleanup(j);
        sv_info("export reservation released", "id=%s reason=\"%s\"", j->id, reason ? reason : "aborted");
        job_finish(j, status, reason ? reason : "released before it ran"); /* CANCELED, or FAILED with why */
        job_free(j);
        pthread_mutex_lock(&ex->mu);
        return;
    }
    request_stop(j, status, reason);
    while (ex->slot && ex->slot_gen == gen)
        pthread_cond_wait(&ex->cv, &ex->mu);
}

static void p_abort(void *self, const char *id, const char *reason)
{
    sv_export *ex = self;
    pthread_mutex_lock(&ex->mu);
    sv_export_job *j = ex->slot;
    if (j && !strcmp(j->id, id))
        abort_locked(ex, j, reason ? SV_EXPORT_FAILED : SV_EXPORT_CANCELED, reason);
    pthread_mutex_unlock(&ex->mu);
}

static bool p_is_running(void *self, const char *id)
{
    sv_export *ex = self;
    pthread_mutex_lock(&ex->mu);
    bool r = ex->slot && !strcmp(ex->slot->id, id) && ex->slot->state >= J_RUNNING;
    pthread_mutex_unlock(&ex->mu);
    return r;
}

int sv_export_local_attach_job(sv_export *ex, const char *id, sv_job *job, sv_err *err)
{
    pthread_mutex_lock(&ex->mu);
    sv_export_job *j = ex->slot;
    bool ok = j && !strcmp(j->id, id) && !j->job;
    if (ok)
        j->job = job;
    pthread_mutex_unlock(&ex->mu);
    return ok ? 0 : sv_fail(err, SV_ENOTFOUND, "no prepared export '%s' to attach a job to", id);
}

void sv_export_local_cancel_job(sv_export *ex, const sv_job *job)
{
    pthread_mutex_lock(&ex->mu);
    sv_export_job *j = ex->slot;
    char id[SV_EXPORT_ID_MAX + 1] = "";
    int backend = 0;
    if (j && j->job == job && j->clustered) { /* cancel it on every node */
        snprintf(id, sizeof id, "%s", j->id);
        backend = j->backend;
    } else if (j && j->job == job) {
        abort_locked(ex, j, SV_EXPORT_CANCELED, NULL);
    } else {
        sv_export_watch_job(ex, job, id, sizeof id, &backend);
    }
    pthread_mutex_unlock(&ex->mu);
    sv_err err = {0};
    if (id[0] && sv_export_cluster_cancel(ex, backend, id, &err) && err.code != SV_ENOTFOUND)
        sv_warn("export: cannot cancel across nodes", "id=%s error=\"%s\"", id, err.msg);
}

sv_export_participant sv_export_local_participant(sv_export *ex)
{
    return (sv_export_participant){ex, p_prepare, p_commit, p_abort, p_is_running};
}

/* ---- service hooks ----------------------------------------------------------------------- */

static void *ticker(void *arg)
{
    sv_export *ex = arg;
    pthread_mutex_lock(&ex->mu);
    while (!ex->ticker_stop) {
        sv_cond_wait_ms(&ex->cv, &ex->mu, 250);
        sv_export_job *j = ex->slot;
        if (j && j->state == J_PREPARED && sv_mono_ns() - j->prepared_ns > ex->reservation_ms * 1000000LL)
            abort_locked(ex, j, SV_EXPORT_FAILED, "reservation timed out: no commit arrived");
        if (ex->has_cl && !ex->ticker_stop) { /* network and catalog calls: no lock held */
            pthread_mutex_unlock(&ex->mu);
            sv_export_cluster_tick(ex);
            pthread_mutex_lock(&ex->mu);
        }
    }
    pthread_mutex_unlock(&ex->mu);
    return NULL;
}

int sv_export_local_start(sv_export *ex, sv_err *err)
{
    if (pthread_create(&ex->ticker, NULL, ticker, ex))
        return sv_fail(err, SV_ENOMEM, "cannot start the export reservation thread");
    ex->ticker_started = true;
    return 0;
}

void sv_export_local_shutdown(sv_export *ex)
{
    pthread_mutex_lock(&ex->mu);
    ex->part_shutdown = true;
    pthread_cond_broadcast(&ex->cv);
    sv_export_job *j = ex->slot;
    if (j && j->clustered) {
        /* the others stop too: the export cannot succeed without this part.
         * The decision is etcd's: asked with no lock held (status, metrics
         * and node calls take ex->mu). */
        char backend[16], id[SV_EXPORT_ID_MAX + 1];
        const char *b = json_string_value(json_object_get(j->req, "backend"));
        snprintf(backend, sizeof backend, "%s", b ? b : "");
        snprintf(id, sizeof id, "%s", j->id);
        const char *a = json_string_value(json_object_get(j->req, "attempt"));
        char *attempt = a ? strdup(a) : NULL;
        pthread_mutex_unlock(&ex->mu);
        char why[200];
        snprintf(why, sizeof why, "node %s shut down during the export", ex->node);
        sv_err derr = {0};
        if (!a || attempt) /* out of memory: the lease lapse tells the others */
            sv_export_decide_abort(ex, backend, id, attempt, why, false, &derr);
        free(attempt);
        pthread_mutex_lock(&ex->mu);
        j = ex->slot;
    }
    if (j) {
        sv_warn("export stopped by shutdown", "id=%s", j->id);
        abort_locked(ex, j, SV_EXPORT_FAILED, "shutting down");
    }
    pthread_mutex_unlock(&ex->mu);
}

void sv_export_local_stop(sv_export *ex)
{
    pthread_mutex_lock(&ex->mu);
    ex->ticker_stop = true;
    pthread_cond_broadcast(&ex->cv);
    bool join = ex->runner_joinable;
    ex->runner_joinable = false;
    pthread_mutex_unlock(&ex->mu);
    if (ex->ticker_started)
        pthread_join(ex->ticker, NULL);
    ex->ticker_started = false;
    if (join)
        pthread_join(ex->runner, NULL);
}

bool sv_export_local_running_id(sv_export *ex, char *id, size_t n)
{
    pthread_mutex_lock(&ex->mu);
    bool r = ex->slot && ex->slot->state != J_FINISHING;
    if (r)
        snprintf(id, n, "%s", ex->slot->id);
    pthread_mutex_unlock(&ex->mu);
    return r;
}

bool sv_export_local_owns(sv_export *ex, int backend, const char *id)
{
    pthread_mutex_lock(&ex->mu);
    bool r = ex->slot && ex->slot->backend == backend && !strcmp(ex->slot->id, id) && ex->slot->state != J_FINISHING;
    pthread_mutex_unlock(&ex->mu);
    return r;
}

json_t *sv_export_local_live_meta(sv_export *ex, int backend, const char *id)
{
    pthread_mutex_lock(&ex->mu);
    sv_export_job *j = ex->slot;
    json_t *m = NULL;
    /* While prepare fills in the shards nothing is published yet: the
     * caller answers from the location (not found). */
    if (j && j->backend == backend && !strcmp(j->id, id) && j->state != J_PREPARING)
        m = meta_json(j, true);
    pthread_mutex_unlock(&ex->mu);
    return m;
}

void sv_export_local_view(sv_export *ex, sv_export_slot_view *v)
{
    memset(v, 0, sizeof *v);
    pthread_mutex_lock(&ex->mu);
    sv_export_job *j = ex->slot;
    if (j && j->clustered && (j->state == J_PREPARED || j->state == J_COMMITTING || j->state == J_RUNNING)) {
        v->busy = true;
        v->prepared = j->state == J_PREPARED;
        v->gen = j->gen;
        snprintf(v->id, sizeof v->id, "%s", j->id);
        v->req = json_deep_copy(j->req);
    }
    pthread_mutex_unlock(&ex->mu);
}

int sv_export_local_commit_gen(sv_export *ex, uint64_t gen, sv_err *err)
{
    char id[SV_EXPORT_ID_MAX + 1] = "";
    pthread_mutex_lock(&ex->mu);
    if (ex->slot && ex->slot_gen == gen && ex->slot->state == J_PREPARED)
        snprintf(id, sizeof id, "%s", ex->slot->id);
    pthread_mutex_unlock(&ex->mu);
    if (!id[0])
        return sv_fail(err, SV_ECONFLICT, "the reservation is gone");
    return p_commit(ex, id, err); /* checks the state again under the lock */
}

void sv_export_local_abort_gen(sv_export *ex, uint64_t gen, const char *reason)
{
    pthread_mutex_lock(&ex->mu);
    sv_export_job *j = ex->slot;
    if (j && ex->slot_gen == gen && j->state != J_FINISHING && j->state != J_PREPARING)
        abort_locked(ex, j, reason ? SV_EXPORT_FAILED : SV_EXPORT_CANCELED, reason);
    pthread_mutex_unlock(&ex->mu);
}
