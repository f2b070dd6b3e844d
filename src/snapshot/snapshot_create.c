/* Create: capture a point in time, hash the shard files (hash cache first),
 * store the blobs the location lacks, write the manifest, commit the record.
 * The blobs a create is about to reference are announced to GC (create_op)
 * before it looks at the location. See docs/snapshot.md. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "record.h"
#include "snapshot_internal.h"

typedef struct create_ctx {
    sv_snapshot *s;
    create_op *op;
    json_t *rec;
    char capture_dir[PATH_MAX];
    sv_capture *cap;
    sv_snap_file *files;
    size_t nfiles;
    sv_snap_hash_cache cache;
    /* timings (sv_mono_ns) */
    int64_t t0, t_capture, t_hash0, t_hash;
    int64_t cached_bytes;
} create_ctx;

static bool skip_file(const char *name)
{
    /* RocksDB's text log and lock are not part of the database. */
    return name[0] == '.' || !strcmp(name, "LOCK") || !strncmp(name, "LOG", 3);
}

static int list_dir_files(const char *dir, int shard, sv_snap_file **files, size_t *n, size_t *cap, sv_err *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return sv_fail(err, SV_EIO, "cannot list %s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (skip_file(e->d_name))
            continue;
        if (strlen(e->d_name) >= 200) {
            rc = sv_fail(err, SV_EINVAL, "unexpected file name in %s", dir);
            break;
        }
        if (sv_grow(files, cap, *n + 1, sizeof **files)) {
            rc = sv_snap_oom(err);
            break;
        }
        sv_snap_file *f = &(*files)[*n];
        memset(f, 0, sizeof *f);
        f->shard = shard;
        snprintf(f->name, sizeof f->name, "%s", e->d_name);
        snprintf(f->path, sizeof f->path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(f->path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        rc = sv_file_id_of(f->path, &f->id, err);
        if (rc == 0)
            (*n)++;
    }
    closedir(d);
    return rc;
}

/* The point in time, and the list of its files. */
static int create_capture(create_ctx *cx, sv_err *err)
{
    sv_snapshot *s = cx->s;
    sv_uuid u;
    sv_uuid_v4(&u);
    char us[37];
    sv_uuid_format(&u, us);
    snprintf(cx->capture_dir, sizeof cx->capture_dir, "%s/snapshot-%s", sv_store_tmp_dir(s->st), us);
    cx->t0 = sv_mono_ns();
    int rc = sv_store_capture(s->st, cx->op->collection, cx->capture_dir, &cx->cap, err);
    if (rc)
        return rc;
    sv_capture *cap = cx->cap;
    for (size_t i = 0; i < cap->nshards; i++)
        if (cap->shards[i].status == SV_CAPTURE_UNAVAILABLE) /* a snapshot is all of the collection or nothing */
            return sv_fail(err, SV_EUNAVAIL, "%s", cap->shards[i].reason);
    json_object_set_new(cx->rec, "capturedAt", json_integer(cap->captured_at));
    cx->t_capture = sv_mono_ns();
    size_t cap_files = 0;
    for (size_t i = 0; rc == 0 && i < cap->nshards; i++)
        if (cap->shards[i].status == SV_CAPTURE_OK)
            rc = list_dir_files(cap->shards[i].dir, (int)i, &cx->files, &cx->nfiles, &cap_files, err);
    return rc;
}

/* Hash cache first (what this collection's earlier snapshots already
 * hashed), then the rest. */
static int create_hash(create_ctx *cx, sv_err *err)
{
    create_op *op = cx->op;
    int rc = sv_snap_hash_cache_load(cx->s, op->collection, &cx->cache, err);
    if (rc == 0) {
        int64_t total = 0;
        for (size_t i = 0; i < cx->nfiles; i++)
            total += cx->files[i].id.size;
        cx->cached_bytes = sv_snap_hash_cache_apply(&cx->cache, cx->cap, cx->files, cx->nfiles, &op->bytes_hashed);
        atomic_store(&op->bytes_total, total);
    }
    cx->t_hash0 = sv_mono_ns();
    if (rc == 0)
        rc = sv_snap_hash_files(cx->s, cx->files, cx->nfiles, &op->bytes_hashed, op->job, err);
    cx->t_hash = sv_mono_ns();
    if (op->job) { /* items: files stored (next step); bytes: the capture, hashed */
        sv_job_set_totals(op->job, (int64_t)cx->nfiles, atomic_load(&op->bytes_total));
        sv_job_set_done(op->job, 0, atomic_load(&op->bytes_hashed));
    }
    return rc;
}

/* Announce the blobs before looking at the location, so a concurrent GC
 * never deletes one we found present and are about to reference. */
static int create_announce(create_ctx *cx, sv_err *err)
{
    sv_snapshot *s = cx->s;
    char(*blobs)[65] = calloc(cx->nfiles + 1, sizeof *blobs);
    if (!blobs)
        return sv_snap_oom(err);
    size_t nb = 0;
    for (size_t i = 0; i < cx->nfiles; i++)
        memcpy(blobs[nb++], cx->files[i].hex, 65);
    qsort(blobs, nb, 65, sv_snap_cmp_hex);
    pthread_mutex_lock(&s->mu);
    cx->op->blobs = blobs;
    cx->op->nblobs = nb;
    /* A GC batch being deleted right now (without s->mu) may hold one of
     * them: wait until that delete is over, so the location check that
     * follows sees the blob gone and uploads it again. Later batches see
     * this op in flight and keep its blobs. */
    for (;;) {
        bool hit = false;
        for (size_t i = 0; i < nb && !hit && s->gc_ndeleting; i++)
            hit = sv_snap_hex_in(s->gc_deleting, s->gc_ndeleting, blobs[i]);
        if (!hit)
            break;
        pthread_cond_wait(&s->cond, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* The manifest of what was captured and stored; *shards_api gets the
 * per-shard summary of the record. */
static int create_manifest(create_ctx *cx, sv_manifest **out, json_t *shards_api, sv_err *err)
{
    const sv_capture *cap = cx->cap;
    sv_manifest *m = calloc(1, sizeof *m);
    *out = m;
    if (!m || !(m->shards = calloc(cap->nshards + 1, sizeof *m->shards)))
        return sv_snap_oom(err);
    snprintf(m->collection, sizeof m->collection, "%s", cx->op->collection);
    snprintf(m->name, sizeof m->name, "%s", cx->op->name);
    snprintf(m->description, sizeof m->description, "%s", json_string_value(json_object_get(cx->rec, "description")));
    m->created_at = json_integer_value(json_object_get(cx->rec, "createdAt"));
    m->captured_at = cap->captured_at;
    char *sj = sv_schema_to_json(cap->schema);
    m->schema = sj ? json_loads(sj, 0, NULL) : NULL;
    free(sj);
    if (!m->schema)
        return sv_snap_oom(err);
    m->nshards = cap->nshards;
    /* Each shard's file array sized by its own files: thousands of tenants
     * times all of the collection's files would not fit. */
    size_t *per_shard = calloc(cap->nshards + 1, sizeof *per_shard);
    if (!per_shard)
        return sv_snap_oom(err);
    for (size_t k = 0; k < cx->nfiles; k++)
        per_shard[cx->files[k].shard]++;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < cap->nshards; i++) {
        sv_manifest_shard *ms = &m->shards[i];
        snprintf(ms->name, sizeof ms->name, "%s", cap->shards[i].name);
        ms->empty = cap->shards[i].status == SV_CAPTURE_EMPTY;
        ms->objects = cap->shards[i].objects;
        if (!(ms->files = calloc(per_shard[i] + 1, sizeof *ms->files)))
            rc = sv_snap_oom(err);
    }
    free(per_shard);
    for (size_t k = 0; rc == 0 && k < cx->nfiles; k++) {
        sv_manifest_shard *ms = &m->shards[cx->files[k].shard];
        sv_manifest_file *mf = &ms->files[ms->nfiles++];
        snprintf(mf->name, sizeof mf->name, "%s", cx->files[k].name);
        memcpy(mf->blob, cx->files[k].hex, 65);
        mf->size = cx->files[k].id.size;
        ms->bytes += mf->size;
    }
    for (size_t i = 0; rc == 0 && i < cap->nshards; i++) {
        sv_manifest_shard *ms = &m->shards[i];
        m->objects += ms->objects;
        m->bytes += ms->bytes;
        json_array_append_new(shards_api, json_pack("{s:s,s:I,s:I,s:I}", "name", ms->name, "objects",
                                                    (json_int_t)ms->objects, "files", (json_int_t)ms->nfiles, "bytes",
                                                    (json_int_t)ms->bytes));
    }
    return rc;
}

/* The record's totals, shards and where the time went: capture
 * (checkpoints, memtable flush), hashing (files not in the hash cache),
 * storing (blobs, manifest). */
static void create_summary(create_ctx *cx, const sv_manifest *m, json_t *shards_api)
{
    create_op *op = cx->op;
    json_object_set_new(cx->rec, "objects", json_integer(m->objects));
    json_object_set_new(cx->rec, "bytes", json_integer(m->bytes));
    json_object_set_new(cx->rec, "bytesUploaded", json_integer(atomic_load(&op->bytes_uploaded)));
    json_object_set_new(cx->rec, "shards", shards_api);
    int64_t now = sv_mono_ns();
    json_object_set_new(cx->rec, "timings",
                        json_pack("{s:I,s:I,s:I,s:I,s:I}", "captureMs", (json_int_t)((cx->t_capture - cx->t0) / 1000000),
                                  "hashMs", (json_int_t)((cx->t_hash - cx->t_hash0) / 1000000), "bytesHashedFresh",
                                  (json_int_t)(atomic_load(&op->bytes_hashed) - cx->cached_bytes), "storeMs",
                                  (json_int_t)((now - cx->t_hash) / 1000000), "totalMs",
                                  (json_int_t)((now - cx->t0) / 1000000)));
}

static int do_create(create_ctx *cx, sv_err *err)
{
    sv_snapshot *s = cx->s;
    /* Another node's GC never deletes what this create finds in the
     * location, nor what its cut's parts name while it assembles them. */
    int rc = sv_snap_fence_writer_begin(s, cx->op->fence_key, err);
    if (rc)
        return rc;
    if (sv_snap_cut_wanted(s, cx->op->collection)) /* spread over nodes: one cut across them */
        return sv_snap_cut_create(s, cx->op, cx->rec, err);
    rc = create_capture(cx, err);
    if (rc == 0)
        rc = create_hash(cx, err);
    if (rc == 0)
        rc = create_announce(cx, err);
    if (rc == 0)
        rc = sv_snap_store_blobs(s, cx->files, cx->nfiles, &cx->op->bytes_uploaded, cx->op->job, false, err);
    /* Manifest, then the hash cache. */
    sv_manifest *m = NULL;
    json_t *shards_api = json_array();
    if (rc == 0)
        rc = create_manifest(cx, &m, shards_api, err);
    if (rc == 0) {
        char *mj = sv_manifest_to_json(m);
        char key[400];
        sv_manifest_key(cx->op->collection, cx->op->name, key);
        rc = mj ? sv_location_put(s->loc, key, mj, strlen(mj), err) : sv_snap_oom(err);
        free(mj);
    }
    if (rc == 0) {
        sv_snap_hash_cache_save(s, &cx->cache, cx->cap, cx->files, cx->nfiles);
        create_summary(cx, m, shards_api);
        shards_api = NULL;
    }
    json_decref(shards_api);
    sv_manifest_free(m);
    return rc;
}

static void op_finish(sv_snapshot *s, create_op *op)
{
    sv_snap_fence_writer_end(s, op->fence_key); /* its manifest is written, or it failed */
    pthread_mutex_lock(&s->mu);
    for (create_op **pp = &s->creates; *pp; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    }
    if (s->gc_running) {
        op->next = s->retired;
        s->retired = op;
    } else {
        free(op->blobs);
        free(op);
    }
    s->threads--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

static void *create_thread(void *arg)
{
    create_ctx *cx = arg;
    sv_snapshot *s = cx->s;
    sv_err err = {0};
    int64_t t0 = sv_mono_ns();
    if (cx->op->job)
        sv_job_start(cx->op->job, NULL);
    int rc = do_create(cx, &err);
    if (rc == 0) {
        json_object_set_new(cx->rec, "status", json_string("COMMITTED"));
        json_object_set_new(cx->rec, "committedAt", json_integer(sv_now_ms()));
        rc = sv_snap_record_put(s, cx->rec, &err);
    }
    if (rc) {
        /* Partial uploads stay in the location; GC reclaims them, since no
         * manifest names them. */
        char why[600];
        snprintf(why, sizeof why, "%s", err.msg[0] ? err.msg : sv_strerror(rc));
        sv_snap_set_failed(cx->rec, why);
        json_object_set_new(cx->rec, "bytesUploaded", json_integer(atomic_load(&cx->op->bytes_uploaded)));
        sv_err e2 = {0};
        if (sv_snap_record_put(s, cx->rec, &e2))
            sv_error("cannot mark snapshot FAILED", "collection=%s name=%s error=\"%s\"", cx->op->collection,
                     cx->op->name, e2.msg);
        sv_warn("snapshot failed", "collection=%s name=%s error=\"%s\"", cx->op->collection, cx->op->name, why);
        atomic_fetch_add(&s->m_failed, 1);
    } else {
        sv_info("snapshot committed", "collection=%s name=%s bytes=%lld uploaded=%lld ms=%lld", cx->op->collection,
                cx->op->name, (long long)json_integer_value(json_object_get(cx->rec, "bytes")),
                (long long)atomic_load(&cx->op->bytes_uploaded), (long long)((sv_mono_ns() - t0) / 1000000));
        atomic_fetch_add(&s->m_created, 1);
        sv_snap_changed(s);
    }
    if (cx->op->job) {
        /* COMMITTED -> SUCCEEDED; a cancel request that stopped it -> CANCELED. */
        bool canceled = rc == SV_ECANCELED && sv_job_canceled(cx->op->job);
        sv_job_state st = rc == 0 ? SV_JOB_SUCCEEDED : canceled ? SV_JOB_CANCELED : SV_JOB_FAILED;
        /* A committed snapshot's job says what it holds and what this run
         * uploaded (files already in the location are not sent again). */
        json_t *res = st != SV_JOB_SUCCEEDED ? NULL
                      : json_pack("{s:s, s:s, s:O?, s:O?, s:I}", "collection", cx->op->collection, "snapshot",
                                  cx->op->name, "objects", json_object_get(cx->rec, "objects"), "bytes",
                                  json_object_get(cx->rec, "bytes"), "bytesUploaded",
                                  (json_int_t)atomic_load(&cx->op->bytes_uploaded));
        sv_job_finish(cx->op->job, st, st == SV_JOB_FAILED ? (err.msg[0] ? err.msg : sv_strerror(rc)) : NULL, res,
                      NULL);
        json_decref(res);
        sv_job_release(cx->op->job);
        cx->op->job = NULL;
    }
    if (cx->capture_dir[0]) {
        sv_err ignored;
        sv_rmtree(cx->capture_dir, &ignored);
    }
    sv_capture_free(cx->cap);
    sv_snap_hash_cache_free(&cx->cache);
    free(cx->files);
    json_decref(cx->rec);
    op_finish(s, cx->op);
    free(cx);
    return NULL;
}

/* With wait: the record once it is no longer PENDING. The op may be freed
 * once done, so this waits for the record instead of the op. */
static int wait_created(sv_snapshot *s, const char *collection, const char *name, json_t **out, sv_err *err)
{
    int rc;
    for (;;) {
        json_t *rec = NULL;
        rc = sv_snap_record_load(s, collection, name, &rec, NULL, err);
        if (rc)
            return rc;
        int st = sv_snap_record_state(rec);
        if (st != SNAP_PENDING) {
            *out = sv_snap_record_api(s, rec);
            json_decref(rec);
            return *out ? 0 : sv_snap_oom(err);
        }
        json_decref(rec);
        pthread_mutex_lock(&s->mu);
        bool running = false;
        for (create_op *o = s->creates; o; o = o->next)
            running |= !strcmp(o->collection, collection) && !strcmp(o->name, name);
        if (running) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&s->cond, &s->mu, &ts);
        }
        pthread_mutex_unlock(&s->mu);
        if (!running) {
            /* Finished between our read and the check: read once more. */
            rc = sv_snap_record_load(s, collection, name, &rec, NULL, err);
            if (rc)
                return rc;
            *out = sv_snap_record_api(s, rec);
            json_decref(rec);
            return *out ? 0 : sv_snap_oom(err);
        }
    }
}

/* The jobs service's record of a create whose snapshot record is persisted. */
static sv_job *create_sjob(sv_snapshot *s, const char *collection, const char *name, const char *schedule)
{
    if (!s->jobs)
        return NULL;
    char link[400];
    snprintf(link, sizeof link, "/v1/collections/%s/snapshots/%s", collection, name);
    sv_job_spec spec = {.kind = "snapshot", .collection = collection, .target = name, .schedule = schedule,
                        .link = link};
    sv_job *h = NULL;
    sv_err e = {0};
    if (sv_jobs_create(s->jobs, &spec, &h, &e))
        sv_warn("snapshot: no job record", "collection=%s name=%s error=\"%s\"", collection, name, e.msg);
    return h;
}

int sv_snapshot_create(sv_snapshot *s, const char *collection, json_t *body, bool wait, json_t **out, sv_err *err)
{
    return sv_snap_create(s, collection, body, wait, NULL, NULL, out, err);
}

int sv_snap_create(sv_snapshot *s, const char *collection, json_t *body, bool wait, const char *schedule,
                   char job_id[64], json_t **out, sv_err *err)
{
    int rc = sv_check_collection_name(collection, err);
    if (rc)
        return rc;
    if (!json_is_object(body))
        return sv_fail(err, SV_EINVAL, "the body must be a JSON object {\"name\": ..., \"description\": ...}");
    json_t *nj = json_object_get(body, "name"), *dj = json_object_get(body, "description");
    if (!json_is_string(nj))
        return sv_fail(err, SV_EINVAL, "\"name\" is required: a string matching ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$");
    if (dj && !json_is_null(dj) && (!json_is_string(dj) || json_string_length(dj) > 1000))
        return sv_fail(err, SV_EINVAL, "\"description\" must be a string of at most 1000 bytes");
    const char *name = json_string_value(nj);
    if ((rc = sv_check_snapshot_name(name, err)) != 0)
        return rc;
    json_t *cj = NULL;
    if ((rc = sv_store_get_collection(s->st, collection, &cj, err)) != 0)
        return rc;
    json_decref(cj);
    if ((rc = sv_snap_may_write(s, err)) != 0)
        return rc;
    if (sv_snap_cut_wanted(s, collection) && (rc = sv_snap_cut_check(s, collection, err)) != 0)
        return rc;

    create_op *op = calloc(1, sizeof *op);
    create_ctx *cx = calloc(1, sizeof *cx);
    if (!op || !cx) {
        free(op);
        free(cx);
        return sv_snap_oom(err);
    }
    snprintf(op->collection, sizeof op->collection, "%s", collection);
    snprintf(op->name, sizeof op->name, "%s", name);
    int64_t now = sv_now_ms();
    char loc_str[PATH_MAX + 400];
    snprintf(loc_str, sizeof loc_str, "%s/snapshots/%s/%s", s->url, collection, name);
    cx->rec = json_pack("{s:i,s:s,s:s,s:s,s:s,s:I,s:n,s:n,s:I,s:I,s:I,s:[],s:s,s:s,s:s}", "format_version", 1,
                        "name", name, "description", dj && json_is_string(dj) ? json_string_value(dj) : "",
                        "collection", collection, "status", "PENDING", "createdAt", (json_int_t)now, "committedAt",
                        "error", "objects", (json_int_t)0, "bytes", (json_int_t)0, "bytesUploaded", (json_int_t)0,
                        "shards", "location", loc_str, "node", s->node, "boot", s->boot);
    if (cx->rec && schedule)
        json_object_set_new(cx->rec, "schedule", json_string(schedule));
    cx->s = s;
    cx->op = op;
    char key[400];
    sv_snap_record_key(collection, name, key);
    char *val = cx->rec ? json_dumps(cx->rec, JSON_COMPACT) : NULL;
    if (!val) {
        rc = sv_snap_oom(err);
        goto fail;
    }
    pthread_mutex_lock(&s->ddl_mu);
    if (sv_snap_stopping(s)) {
        rc = sv_fail(err, SV_EUNAVAIL, "the server is shutting down");
    } else {
        sv_catalog_cond cond = {key, 0};
        sv_catalog_op cop = {key, val, strlen(val), 0};
        rc = sv_catalog_txn(s->cat, &cond, 1, &cop, 1, err);
        if (rc == SV_ECONFLICT)
            rc = sv_fail(err, SV_EEXIST,
                         "snapshot '%s' of collection '%s' already exists; drop it first or choose another name", name,
                         collection);
    }
    if (rc == 0) {
        op->job = create_sjob(s, collection, name, schedule);
        if (op->job && job_id)
            snprintf(job_id, 64, "%s", sv_job_id(op->job));
    }
    if (rc == 0 && schedule && s->jobs && !op->job) {
        /* A scheduled run must be a job: without one its schedule could
         * neither skip an overlapping run nor forget it later. */
        rc = sv_fail(err, SV_EIO, "snapshot '%s' not started: its job could not be recorded", name);
        sv_snap_set_failed(cx->rec, err->msg);
        sv_snap_record_put(s, cx->rec, NULL);
    }
    if (rc == 0) {
        pthread_mutex_lock(&s->mu);
        op->next = s->creates;
        s->creates = op;
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&s->ddl_mu);
    free(val);
    if (rc)
        goto fail;
    sv_info("snapshot started", "collection=%s name=%s", collection, name);
    json_t *reply = json_pack("{s:s,s:s,s:s,s:I}", "name", name, "collection", collection, "status", "PENDING",
                              "createdAt", (json_int_t)now);
    if ((rc = sv_snap_spawn(s, create_thread, cx, err)) != 0) {
        json_decref(reply);
        sv_snap_set_failed(cx->rec, err->msg);
        sv_snap_record_put(s, cx->rec, NULL);
        if (op->job) {
            sv_job_finish(op->job, SV_JOB_FAILED, err->msg, NULL, NULL);
            sv_job_release(op->job);
            op->job = NULL;
        }
        pthread_mutex_lock(&s->mu);
        s->threads++; /* op_finish decrements */
        pthread_mutex_unlock(&s->mu);
        op_finish(s, op);
        json_decref(cx->rec);
        free(cx);
        return rc;
    }
    if (!wait) {
        *out = reply;
        return 0;
    }
    json_decref(reply);
    return wait_created(s, collection, name, out, err);
fail:
    json_decref(cx->rec);
    free(cx);
    free(op);
    return rc;
}

/* ---- one directory as blobs plus a manifest -------------------------------------------
 * The same mechanism as a snapshot (hash with the cache, announce to GC, store
 * what the location lacks, write a manifest), for one closed RocksDB directory:
 * what tenant offload and shard moves build on. */

int sv_snapshot_put_dir(sv_snapshot *s, const char *dir, const char *collection, const char *shard, int64_t objects,
                        const char *key, sv_job *job, sv_dir_stats *out, sv_err *err)
{
    size_t kl = key ? strlen(key) : 0;
    int rc = sv_check_collection_name(collection, err);
    if (rc == 0)
        rc = sv_check_tenant_name(shard, err);
    if (rc == 0 && (sv_location_check_key(key, err) || kl < 15 || strcmp(key + kl - 14, "/manifest.json") ||
                    !strncmp(key, "snapshots/", 10)))
        return sv_fail(err, SV_EINVAL, "put_dir: the manifest key must end in /manifest.json, outside snapshots/");
    if (rc == 0)
        rc = sv_snap_may_write(s, err);
    if (rc)
        return rc;
    sv_schema *schema = NULL;
    if ((rc = sv_store_schema(s->st, collection, &schema, err)))
        return rc;
    create_op *op = calloc(1, sizeof *op);
    create_ctx cx = {.s = s, .op = op};
    sv_shard_capture sc = {.status = SV_CAPTURE_OK, .objects = objects};
    sv_capture cap = {.schema = schema, .shards = &sc, .nshards = 1, .captured_at = sv_now_ms()};
    snprintf(sc.name, sizeof sc.name, "%s", shard);
    snprintf(sc.dir, sizeof sc.dir, "%s", dir);
    snprintf(cap.collection, sizeof cap.collection, "%s", collection);
    cx.cap = &cap;
    cx.rec = json_pack("{s:s,s:I}", "description", "", "createdAt", (json_int_t)cap.captured_at);
    if (!op || !cx.rec) {
        free(op);
        json_decref(cx.rec);
        sv_schema_free(schema);
        return sv_snap_oom(err);
    }
    snprintf(op->collection, sizeof op->collection, "%s", collection);
    snprintf(op->name, sizeof op->name, "dir-%s", shard);
    pthread_mutex_lock(&s->mu); /* in flight for GC from here (op_finish takes it out) */
    op->next = s->creates;
    s->creates = op;
    s->threads++;
    pthread_mutex_unlock(&s->mu);
    size_t capf = 0;
    rc = list_dir_files(dir, 0, &cx.files, &cx.nfiles, &capf, err);
    if (rc == 0 && job)
        sv_job_set_totals(job, (int64_t)cx.nfiles, 0);
    if (rc == 0)
        rc = create_hash(&cx, err);
    if (rc == 0 && job) {
        /* the bytes are known once hashed: each file's count as it is stored */
        int64_t total = 0;
        for (size_t i = 0; i < cx.nfiles; i++)
            total += cx.files[i].id.size;
        sv_job_set_totals(job, (int64_t)cx.nfiles, total);
    }
    if (rc == 0)
        rc = sv_snap_fence_writer_begin(s, op->fence_key, err);
    if (rc == 0)
        rc = create_announce(&cx, err);
    if (rc == 0)
        rc = sv_snap_store_blobs(s, cx.files, cx.nfiles, &op->bytes_uploaded, job, true, err);
    sv_manifest *m = NULL;
    json_t *shards_api = json_array();
    if (rc == 0)
        rc = create_manifest(&cx, &m, shards_api, err);
    if (rc == 0) {
        char *mj = sv_manifest_to_json(m);
        rc = mj ? sv_location_put(s->loc, key, mj, strlen(mj), err) : sv_snap_oom(err);
        free(mj);
    }
    if (rc == 0) {
        sv_snap_hash_cache_save(s, &cx.cache, &cap, cx.files, cx.nfiles);
        if (out)
            *out = (sv_dir_stats){(int64_t)cx.nfiles, m->bytes, atomic_load(&op->bytes_uploaded)};
    }
    json_decref(shards_api);
    sv_manifest_free(m);
    sv_snap_hash_cache_free(&cx.cache);
    free(cx.files);
    json_decref(cx.rec);
    sv_schema_free(schema);
    op_finish(s, op);
    return rc;
}

/* The manifest at key and the shard named (NULL: its only one). */
static int dir_manifest(sv_snapshot *s, const char *key, const char *shard, sv_manifest **out,
                        const sv_manifest_shard **ms, sv_err *err)
{
    *out = NULL;
    int rc = sv_location_check_key(key, err);
    if (rc)
        return rc;
    sv_buf b = {0};
    sv_manifest *m = NULL;
    rc = sv_location_get_buf(s->loc, key, &b, err);
    if (rc == 0)
        rc = sv_manifest_parse((const char *)b.data, b.len, &m, err);
    sv_buf_free(&b);
    *ms = NULL;
    if (rc == 0 && !shard && m->nshards != 1)
        rc = sv_fail(err, SV_ECORRUPT, "%s describes %zu shards, not one", key, m->nshards);
    for (size_t i = 0; rc == 0 && i < m->nshards && !*ms; i++)
        if (!shard || strcmp(m->shards[i].name, shard) == 0)
            *ms = &m->shards[i];
    if (rc == 0 && !*ms)
        rc = sv_fail(err, SV_ENOTFOUND, "%s has no shard '%.72s'", key, shard);
    if (rc)
        sv_manifest_free(m);
    else
        *out = m;
    return rc;
}

int sv_snapshot_drop_dir(sv_snapshot *s, const char *key, sv_err *err)
{
    size_t kl = key ? strlen(key) : 0;
    if (sv_location_check_key(key, err) || kl < 15 || strcmp(key + kl - 14, "/manifest.json") ||
        !strncmp(key, "snapshots/", 10))
        return sv_fail(err, SV_EINVAL, "drop_dir: the manifest key must end in /manifest.json, outside snapshots/");
    int rc = sv_location_delete(s->loc, key, err);
    return rc == SV_ENOTFOUND ? 0 : rc;
}

int sv_snapshot_dir_info(sv_snapshot *s, const char *key, const char *shard, sv_dir_stats *out, int64_t *objects,
                         sv_err *err)
{
    sv_manifest *m;
    const sv_manifest_shard *ms;
    int rc = dir_manifest(s, key, shard, &m, &ms, err);
    if (rc)
        return rc;
    *out = (sv_dir_stats){(int64_t)ms->nfiles, ms->bytes, 0};
    if (objects)
        *objects = ms->objects;
    sv_manifest_free(m);
    return 0;
}

/* One file of a get_dir: fetched (or linked) and verified on a pool worker. */
typedef struct get_dir_ctx {
    sv_snapshot *s;
    const sv_manifest_shard *ms;
    const char *dir;
    sv_job *job;
    _Atomic int64_t *progress;
    _Atomic int64_t copied;
    const char *reuse;       /* a directory laid out earlier from the same shard (may be NULL) */
    const sv_dir_file *known; /* its files as verified then */
    size_t nknown;
    _Atomic int64_t fetched; /* bytes not found in reuse */
} get_dir_ctx;

/* An immutable file (SST, blob file) of the same name and size in the reuse
 * directory is hard-linked instead of fetched, then verified against the
 * manifest's sha256 like a fetched one (a mismatch falls back to the fetch). */
static bool reuse_one(get_dir_ctx *g, const sv_manifest_file *mf, const char *path, _Atomic int64_t *mine)
{
    size_t n = strlen(mf->name);
    bool immutable = (n > 4 && !strcmp(mf->name + n - 4, ".sst")) || (n > 5 && !strcmp(mf->name + n - 5, ".blob"));
    if (!g->reuse || !immutable)
        return false;
    char old[PATH_MAX + 300];
    snprintf(old, sizeof old, "%s/%s", g->reuse, mf->name);
    struct stat sb;
    if (stat(old, &sb) != 0 || sb.st_size != mf->size || link(old, path) != 0)
        return false;
    for (size_t k = 0; k < g->nknown; k++)
        if (!strcmp(g->known[k].name, mf->name)) {
            if (g->known[k].size == mf->size && !memcmp(g->known[k].sha256, mf->blob, 64)) {
                atomic_store(mine, mf->size);
                return true;
            }
            break;
        }
    char hex[65];
    int64_t size = 0;
    if (sv_sha256_file(path, hex, &size, mine, NULL) == 0 && size == mf->size && !memcmp(hex, mf->blob, 64))
        return true;
    unlink(path);
    atomic_store(mine, 0);
    return false;
}

static int get_dir_one(void *arg, size_t i, sv_err *err)
{
    get_dir_ctx *g = arg;
    char path[PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", g->dir, g->ms->files[i].name);
    _Atomic int64_t mine = 0;
    int rc = 0;
    if (!reuse_one(g, &g->ms->files[i], path, &mine)) {
        rc = sv_snap_restore_blob(g->s, g->ms, &g->ms->files[i], path, &mine, err);
        atomic_fetch_add(&g->fetched, atomic_load(&mine));
    }
    int64_t got = atomic_load(&mine);
    atomic_fetch_add(&g->copied, got);
    if (rc == 0 && g->job)
        sv_job_add_done(g->job, 1, got);
    if (rc == 0 && g->progress)
        atomic_fetch_add(g->progress, got);
    return rc;
}

int sv_snapshot_dir_schema(sv_snapshot *s, const char *key, char **schema_json, sv_err *err)
{
    sv_manifest *m;
    const sv_manifest_shard *ms;
    int rc = dir_manifest(s, key, NULL, &m, &ms, err);
    if (rc)
        return rc;
    *schema_json = json_dumps(m->schema, JSON_COMPACT);
    sv_manifest_free(m);
    return *schema_json ? 0 : sv_snap_oom(err);
}

int sv_snapshot_get_dir(sv_snapshot *s, const char *key, const char *shard, const char *dir, sv_job *job,
                        _Atomic int64_t *progress, sv_dir_stats *out, sv_err *err)
{
    return sv_snapshot_get_dir_reusing(s, key, shard, dir, NULL, NULL, 0, job, progress, out, err);
}

int sv_snapshot_dir_files(sv_snapshot *s, const char *key, const char *shard, sv_dir_file **out, size_t *n,
                          sv_err *err)
{
    *out = NULL;
    *n = 0;
    sv_manifest *m;
    const sv_manifest_shard *ms;
    int rc = dir_manifest(s, key, shard, &m, &ms, err);
    if (rc)
        return rc;
    if (!(*out = calloc(ms->nfiles + 1, sizeof **out))) {
        sv_manifest_free(m);
        return sv_snap_oom(err);
    }
    for (size_t i = 0; i < ms->nfiles; i++) {
        snprintf((*out)[i].name, sizeof (*out)[i].name, "%s", ms->files[i].name);
        memcpy((*out)[i].sha256, ms->files[i].blob, 65);
        (*out)[i].size = ms->files[i].size;
    }
    *n = ms->nfiles;
    sv_manifest_free(m);
    return 0;
}

int sv_snapshot_get_dir_reusing(sv_snapshot *s, const char *key, const char *shard, const char *dir,
                                const char *reuse, const sv_dir_file *known, size_t nknown, sv_job *job,
                                _Atomic int64_t *progress, sv_dir_stats *out, sv_err *err)
{
    if (sv_path_exists(dir))
        return sv_fail(err, SV_EEXIST, "get_dir: %s exists; the shard is laid out into a new directory", dir);
    sv_manifest *m = NULL;
    const sv_manifest_shard *found = NULL;
    int rc = dir_manifest(s, key, shard, &m, &found, err);
    if (rc == 0)
        rc = sv_mkdirs(dir, err);
    const sv_manifest_shard *ms = rc == 0 ? found : NULL;
    if (rc == 0 && job)
        sv_job_set_totals(job, (int64_t)ms->nfiles, ms->bytes);
    /* Files in parallel on the snapshot workers (both cores by default):
     * fetching and sha256 verification of one file per worker. */
    get_dir_ctx g = {.s = s, .ms = ms, .dir = dir, .job = job, .progress = progress, .reuse = reuse,
                     .known = known, .nknown = nknown};
    if (rc == 0 && ms->nfiles)
        rc = sv_pool_run(s->workers, ms->nfiles, get_dir_one, &g, job, err);
    if (rc == 0)
        rc = sv_fsync_dir(dir, err);
    if (rc == 0 && out)
        *out = (sv_dir_stats){(int64_t)ms->nfiles, ms->bytes, atomic_load(&g.fetched)};
    if (rc && ms) /* nothing half laid out stays behind */
        sv_rmtree(dir, NULL);
    sv_manifest_free(m);
    return rc;
}
