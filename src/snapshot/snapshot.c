/* The snapshot service: create (capture, hash, store blobs, manifest,
 * commit), get/list/drop, restore jobs (one task per shard, resumable), and
 * garbage collection of unreferenced blobs. See docs/snapshot.md. */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "location.h"
#include "record.h"
#include "snapshot_internal.h"

enum { SNAP_PENDING, SNAP_COMMITTED, SNAP_DELETING, SNAP_FAILED };
static const char *const snap_states[] = {"PENDING", "COMMITTED", "DELETING", "FAILED"};

static int snap_state_parse(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, snap_states[i]))
            return i;
    return -1;
}

/* A create in progress: live progress for GET, and the blobs it is about to
 * reference, which GC must not delete although no manifest names them yet. */
typedef struct create_op {
    char collection[129], name[129];
    _Atomic int64_t bytes_total, bytes_hashed, bytes_uploaded;
    char (*blobs)[65]; /* sorted; set under s->mu */
    size_t nblobs;
    struct create_op *next;
} create_op;

/* A restore job being executed: bytes copied by tasks still running. */
typedef struct job_run {
    char id[37];
    _Atomic int64_t bytes_running; /* of tasks not yet COMPLETED */
    atomic_bool failed;
    struct job_run *next;
} job_run;

struct sv_snapshot {
    sv_store *st;
    sv_catalog *cat;
    sv_location *loc;
    sv_engine *engine;
    sv_restore_meta *meta;
    char url[PATH_MAX + 64];
    char data_dir[PATH_MAX];
    char staging[PATH_MAX + 32]; /* <data>/snapshot-restore: survives restarts, unlike <data>/tmp */
    char node[64];
    char boot[37];
    int64_t gc_interval_ms, gc_grace_ms, pending_timeout_ms, test_delay_ms;
    int workers;
    bool link_restore; /* file:// restores hard-link immutable files */
    bool verify_count; /* restore iterates each shard to count; else the store's count after adoption */

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cond;
    bool stopping;
    int threads; /* detached create and job threads still running */
    create_op *creates;
    create_op *retired; /* finished while a GC ran: still protected until it ends */
    bool gc_running;
    job_run *runs;

    pthread_mutex_t ddl_mu; /* serializes create/drop/restore starts */
    pthread_mutex_t gc_mu;  /* one GC at a time */
    pthread_t gc_thread;
    bool gc_thread_started;

    _Atomic int64_t m_created, m_failed, m_restored, m_restore_failed, m_gc_runs, m_gc_deleted, m_gc_bytes;
};

static int oom(sv_err *err) { return sv_fail(err, SV_ENOMEM, "out of memory"); }

static void record_key(const char *collection, const char *name, char key[400])
{
    snprintf(key, 400, "snapshots/%s/%s", collection, name);
}

static bool stopping(sv_snapshot *s)
{
    pthread_mutex_lock(&s->mu);
    bool v = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* Test hook (SHARDVAULT_SNAPSHOT_TEST_DELAY_MS): slows each stored or
 * restored file so crash tests can kill the server mid-operation. */
static void test_delay(sv_snapshot *s)
{
    for (int64_t left = s->test_delay_ms; left > 0 && !stopping(s); left -= 50)
        sv_sleep_ms(left < 50 ? left : 50);
}

/* ---- snapshot records ---------------------------------------------------------- */

static int record_load(sv_snapshot *s, const char *collection, const char *name, json_t **out, int64_t *rev,
                       sv_err *err)
{
    char key[400];
    record_key(collection, name, key);
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

static int record_put(sv_snapshot *s, json_t *rec, sv_err *err)
{
    char key[400];
    record_key(json_string_value(json_object_get(rec, "collection")), json_string_value(json_object_get(rec, "name")),
               key);
    char *v = json_dumps(rec, JSON_COMPACT);
    if (!v)
        return oom(err);
    int rc = sv_catalog_put(s->cat, key, v, strlen(v), 0, err);
    free(v);
    return rc;
}

static int record_state(json_t *rec) { return snap_state_parse(json_string_value(json_object_get(rec, "status"))); }

static void set_failed(json_t *rec, const char *why)
{
    json_object_set_new(rec, "status", json_string("FAILED"));
    json_object_set_new(rec, "error", json_string(why));
}

/* The API shape: the record without bookkeeping, plus live progress. */
static json_t *record_api(sv_snapshot *s, json_t *rec)
{
    json_t *o = json_deep_copy(rec);
    if (!o)
        return NULL;
    json_object_del(o, "format_version");
    json_object_del(o, "node");
    json_object_del(o, "boot");
    if (record_state(o) == SNAP_PENDING) {
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

/* ---- create ---------------------------------------------------------------------- */

typedef struct cfile {
    int shard;
    char name[256];
    char path[PATH_MAX];
    sv_file_id id;
    char hex[65];
    bool cached;
} cfile;

typedef struct create_ctx {
    sv_snapshot *s;
    create_op *op;
    json_t *rec;
    char capture_dir[PATH_MAX];
    /* hashing workers */
    cfile *files;
    size_t nfiles;
    _Atomic size_t next;
    atomic_int rc;
    sv_err err;
    pthread_mutex_t err_mu;
} create_ctx;

static bool skip_file(const char *name)
{
    /* RocksDB's text log and lock are not part of the database. */
    return name[0] == '.' || !strcmp(name, "LOCK") || !strncmp(name, "LOG", 3);
}

static int list_dir_files(const char *dir, int shard, cfile **files, size_t *n, size_t *cap, sv_err *err)
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
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            cfile *f = realloc(*files, nc * sizeof *f);
            if (!f) {
                rc = oom(err);
                break;
            }
            *files = f;
            *cap = nc;
        }
        cfile *f = &(*files)[*n];
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

static void *hash_worker(void *arg)
{
    create_ctx *cx = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&cx->next, 1);
        if (i >= cx->nfiles || atomic_load(&cx->rc) != 0)
            break;
        cfile *f = &cx->files[i];
        if (f->cached)
            continue;
        if (stopping(cx->s)) {
            atomic_store(&cx->rc, SV_ECANCELED);
            break;
        }
        sv_err e = {0};
        int64_t size = 0;
        int rc = sv_sha256_file(f->path, f->hex, &size, &cx->op->bytes_hashed, &e);
        if (rc == 0 && size != f->id.size)
            rc = sv_fail(&e, SV_EIO, "%s changed size while being hashed", f->path);
        if (rc) {
            pthread_mutex_lock(&cx->err_mu);
            if (atomic_load(&cx->rc) == 0) {
                cx->err = e;
                atomic_store(&cx->rc, rc);
            }
            pthread_mutex_unlock(&cx->err_mu);
            break;
        }
    }
    return NULL;
}

/* Runs fn on up to n threads (the calling thread is one of them). */
static void run_parallel(int n, void *(*fn)(void *), void *arg)
{
    pthread_t t[16];
    int started = 0;
    if (n > 16)
        n = 16;
    for (int i = 1; i < n; i++)
        if (pthread_create(&t[started], NULL, fn, arg) == 0)
            started++;
    fn(arg);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}

/* Counts object keys (16-byte UUIDs; bookkeeping keys are longer). */
static int count_objects(sv_snapshot *s, const char *dir, int64_t *out, sv_err *err)
{
    sv_db *db = NULL;
    int rc = sv_db_open_readonly(s->engine, dir, &db, err);
    if (rc)
        return rc;
    sv_db_iter *it = sv_db_iter_new(db);
    int64_t n = 0;
    for (sv_db_iter_seek_first(it); sv_db_iter_valid(it); sv_db_iter_next(it)) {
        size_t kl;
        sv_db_iter_key(it, &kl);
        if (kl == 16)
            n++;
    }
    rc = sv_db_iter_status(it, err);
    sv_db_iter_free(it);
    sv_db_close(db);
    *out = n;
    return rc;
}

typedef struct cache_entry {
    char key[700];
    char *val;
    size_t len;
    bool seen;
} cache_entry;

typedef struct cache_load {
    cache_entry *v;
    size_t n, cap;
} cache_load;

static int load_cache_entry(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    cache_load *cl = ud;
    if (cl->n == cl->cap) {
        size_t nc = cl->cap ? cl->cap * 2 : 64;
        cache_entry *v = realloc(cl->v, nc * sizeof *v);
        if (!v)
            return SV_ENOMEM;
        cl->v = v;
        cl->cap = nc;
    }
    cache_entry *e = &cl->v[cl->n];
    snprintf(e->key, sizeof e->key, "%s", key);
    e->val = malloc(len + 1);
    if (!e->val)
        return SV_ENOMEM;
    memcpy(e->val, val, len);
    e->len = len;
    e->seen = false;
    cl->n++;
    return 0;
}

static int cmp_cache(const void *a, const void *b) { return strcmp(((const cache_entry *)a)->key, ((const cache_entry *)b)->key); }
static int cmp_hex(const void *a, const void *b) { return memcmp(a, b, 64); }

static bool hex_in(char (*set)[65], size_t n, const char *hex)
{
    return n && bsearch(hex, set, n, 65, cmp_hex) != NULL;
}

static int do_create(create_ctx *cx, sv_capture **capp, sv_err *err)
{
    sv_snapshot *s = cx->s;
    create_op *op = cx->op;
    const char *coll = op->collection;
    sv_uuid u;
    sv_uuid_v4(&u);
    char us[37];
    sv_uuid_format(&u, us);
    snprintf(cx->capture_dir, sizeof cx->capture_dir, "%s/snapshot-%s", sv_store_tmp_dir(s->st), us);

    /* The point in time. */
    int64_t t0 = sv_mono_ns();
    int rc = sv_store_capture(s->st, coll, cx->capture_dir, capp, err);
    if (rc)
        return rc;
    sv_capture *cap = *capp;
    json_object_set_new(cx->rec, "capturedAt", json_integer(cap->captured_at));
    int64_t t_capture = sv_mono_ns();

    size_t cap_files = 0;
    for (size_t i = 0; rc == 0 && i < cap->nshards; i++)
        if (cap->shards[i].status == SV_CAPTURE_OK)
            rc = list_dir_files(cap->shards[i].dir, (int)i, &cx->files, &cx->nfiles, &cap_files, err);
    if (rc)
        return rc;

    /* Hash cache: what this collection's earlier snapshots already hashed. */
    cache_load cl = {0};
    char prefix[300];
    snprintf(prefix, sizeof prefix, "snapshot-hashes/%s/", coll);
    rc = sv_catalog_scan(s->cat, prefix, load_cache_entry, &cl, err);
    if (rc == SV_ENOMEM)
        rc = oom(err);
    if (rc == 0 && cl.n)
        qsort(cl.v, cl.n, sizeof *cl.v, cmp_cache);
    int64_t total = 0, cached_bytes = 0;
    for (size_t i = 0; rc == 0 && i < cx->nfiles; i++) {
        cfile *f = &cx->files[i];
        total += f->id.size;
        cache_entry probe;
        snprintf(probe.key, sizeof probe.key, "%s%s/%s", prefix, cap->shards[f->shard].name, f->name);
        cache_entry *e = cl.n ? bsearch(&probe, cl.v, cl.n, sizeof *cl.v, cmp_cache) : NULL;
        if (e) {
            e->seen = true;
            if (sv_hash_cache_match(e->val, e->len, &f->id, f->hex)) {
                f->cached = true;
                cached_bytes += f->id.size;
                atomic_fetch_add(&op->bytes_hashed, f->id.size);
            }
        }
    }
    atomic_store(&op->bytes_total, total);

    int64_t t_hash0 = sv_mono_ns();
    if (rc == 0) {
        run_parallel(s->workers, hash_worker, cx);
        if ((rc = atomic_load(&cx->rc)) != 0) {
            if (rc == SV_ECANCELED)
                sv_fail(err, rc, "the server stopped while the snapshot was being created");
            else
                *err = cx->err;
        }
    }


    int64_t t_hash = sv_mono_ns();
    /* Announce the blobs before looking at the location, so a concurrent GC
     * never deletes one we found present and are about to reference. */
    char(*blobs)[65] = NULL;
    size_t nb = 0;
    if (rc == 0) {
        blobs = calloc(cx->nfiles + 1, sizeof *blobs);
        if (!blobs)
            rc = oom(err);
        for (size_t i = 0; rc == 0 && i < cx->nfiles; i++)
            memcpy(blobs[nb++], cx->files[i].hex, 65);
        if (rc == 0) {
            qsort(blobs, nb, 65, cmp_hex);
            pthread_mutex_lock(&s->mu);
            op->blobs = blobs;
            op->nblobs = nb;
            pthread_mutex_unlock(&s->mu);
        }
    }

    /* Store each blob unless it is already there. */
    for (size_t i = 0; rc == 0 && i < cx->nfiles; i++) {
        cfile *f = &cx->files[i];
        char key[80];
        sv_blob_key(f->hex, key);
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = !memcmp(cx->files[k].hex, f->hex, 64);
        if (dup)
            continue;
        sv_location_info info;
        rc = sv_location_head(s->loc, key, &info, err);
        if (rc == 0 && info.size == f->id.size)
            continue;
        if (rc != 0 && rc != SV_ENOTFOUND)
            break;
        test_delay(s);
        if (stopping(s)) {
            rc = sv_fail(err, SV_ECANCELED, "the server stopped while the snapshot was being created");
            break;
        }
        rc = sv_location_put_file(s->loc, key, f->path, err);
        if (rc == 0)
            atomic_fetch_add(&op->bytes_uploaded, f->id.size);
    }

    /* Manifest, then the hash cache. */
    sv_manifest *m = NULL;
    if (rc == 0) {
        m = calloc(1, sizeof *m);
        if (!m || !(m->shards = calloc(cap->nshards + 1, sizeof *m->shards)))
            rc = oom(err);
    }
    json_t *shards_api = json_array();
    if (rc == 0) {
        snprintf(m->collection, sizeof m->collection, "%s", coll);
        snprintf(m->name, sizeof m->name, "%s", op->name);
        snprintf(m->description, sizeof m->description, "%s",
                 json_string_value(json_object_get(cx->rec, "description")));
        m->created_at = json_integer_value(json_object_get(cx->rec, "createdAt"));
        m->captured_at = cap->captured_at;
        char *sj = sv_schema_to_json(cap->schema);
        m->schema = sj ? json_loads(sj, 0, NULL) : NULL;
        free(sj);
        if (!m->schema)
            rc = oom(err);
        m->nshards = cap->nshards;
        /* Each shard's file array sized by its own files: thousands of
         * tenants times all of the collection's files would not fit. */
        size_t *per_shard = rc == 0 ? calloc(cap->nshards + 1, sizeof *per_shard) : NULL;
        if (rc == 0 && !per_shard)
            rc = oom(err);
        for (size_t k = 0; rc == 0 && k < cx->nfiles; k++)
            per_shard[cx->files[k].shard]++;
        for (size_t i = 0; rc == 0 && i < cap->nshards; i++) {
            sv_manifest_shard *ms = &m->shards[i];
            snprintf(ms->name, sizeof ms->name, "%s", cap->shards[i].name);
            ms->empty = cap->shards[i].status == SV_CAPTURE_EMPTY;
            ms->objects = cap->shards[i].objects;
            if (!(ms->files = calloc(per_shard[i] + 1, sizeof *ms->files)))
                rc = oom(err);
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
                                                        (json_int_t)ms->objects, "files", (json_int_t)ms->nfiles,
                                                        "bytes", (json_int_t)ms->bytes));
        }
    }
    if (rc == 0) {
        char *mj = sv_manifest_to_json(m);
        char key[400];
        sv_manifest_key(coll, op->name, key);
        rc = mj ? sv_location_put(s->loc, key, mj, strlen(mj), err) : oom(err);
        free(mj);
    }
    if (rc == 0) {
        /* Cache what was hashed; forget files the shards no longer have. */
        size_t nops = 0;
        sv_catalog_op *ops = calloc(cx->nfiles + cl.n + 1, sizeof *ops);
        char **vals = calloc(cx->nfiles + 1, sizeof *vals);
        char(*keys)[700] = calloc(cx->nfiles + 1, sizeof *keys);
        if (ops && vals && keys) {
            for (size_t i = 0; i < cx->nfiles; i++) {
                cfile *f = &cx->files[i];
                if (f->cached || !(vals[i] = sv_hash_cache_value(&f->id, f->hex)))
                    continue;
                snprintf(keys[i], sizeof keys[i], "%s%s/%s", prefix, cap->shards[f->shard].name, f->name);
                ops[nops++] = (sv_catalog_op){keys[i], vals[i], strlen(vals[i]), 0};
            }
            for (size_t i = 0; i < cl.n; i++)
                if (!cl.v[i].seen)
                    ops[nops++] = (sv_catalog_op){cl.v[i].key, NULL, 0, 0};
            sv_err ce = {0};
            if (nops && sv_catalog_txn(s->cat, NULL, 0, ops, nops, &ce) != 0)
                sv_warn("cannot update the snapshot hash cache", "error=\"%s\"", ce.msg); /* only slower next time */
        }
        for (size_t i = 0; vals && i < cx->nfiles; i++)
            free(vals[i]);
        free(vals);
        free(keys);
        free(ops);
        json_object_set_new(cx->rec, "objects", json_integer(m->objects));
        json_object_set_new(cx->rec, "bytes", json_integer(m->bytes));
        json_object_set_new(cx->rec, "bytesUploaded", json_integer(atomic_load(&op->bytes_uploaded)));
        json_object_set_new(cx->rec, "shards", shards_api);
        shards_api = NULL;
        /* Where the time went: capture (checkpoints, memtable flush), hashing
         * (files not in the hash cache), storing (blobs, manifest). */
        int64_t now = sv_mono_ns();
        json_object_set_new(cx->rec, "timings",
                            json_pack("{s:I,s:I,s:I,s:I,s:I}", "captureMs", (json_int_t)((t_capture - t0) / 1000000),
                                      "hashMs", (json_int_t)((t_hash - t_hash0) / 1000000), "bytesHashedFresh",
                                      (json_int_t)(atomic_load(&op->bytes_hashed) - cached_bytes), "storeMs",
                                      (json_int_t)((now - t_hash) / 1000000), "totalMs",
                                      (json_int_t)((now - t0) / 1000000)));
    }
    json_decref(shards_api);
    sv_manifest_free(m);
    for (size_t i = 0; i < cl.n; i++)
        free(cl.v[i].val);
    free(cl.v);
    return rc;
}

static void op_finish(sv_snapshot *s, create_op *op)
{
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
    sv_capture *cap = NULL;
    int64_t t0 = sv_mono_ns();
    int rc = do_create(cx, &cap, &err);
    if (rc == 0) {
        json_object_set_new(cx->rec, "status", json_string("COMMITTED"));
        json_object_set_new(cx->rec, "committedAt", json_integer(sv_now_ms()));
        rc = record_put(s, cx->rec, &err);
    }
    if (rc) {
        /* Partial uploads stay in the location; GC reclaims them, since no
         * manifest names them. */
        char why[600];
        snprintf(why, sizeof why, "%s", err.msg[0] ? err.msg : sv_strerror(rc));
        set_failed(cx->rec, why);
        json_object_set_new(cx->rec, "bytesUploaded", json_integer(atomic_load(&cx->op->bytes_uploaded)));
        sv_err e2 = {0};
        if (record_put(s, cx->rec, &e2))
            sv_error("cannot mark snapshot FAILED", "collection=%s name=%s error=\"%s\"", cx->op->collection,
                     cx->op->name, e2.msg);
        sv_warn("snapshot failed", "collection=%s name=%s error=\"%s\"", cx->op->collection, cx->op->name, why);
        atomic_fetch_add(&s->m_failed, 1);
    } else {
        sv_info("snapshot committed", "collection=%s name=%s bytes=%lld uploaded=%lld ms=%lld", cx->op->collection,
                cx->op->name, (long long)json_integer_value(json_object_get(cx->rec, "bytes")),
                (long long)atomic_load(&cx->op->bytes_uploaded), (long long)((sv_mono_ns() - t0) / 1000000));
        atomic_fetch_add(&s->m_created, 1);
    }
    if (cx->capture_dir[0]) {
        sv_err ignored;
        sv_rmtree(cx->capture_dir, &ignored);
    }
    sv_capture_free(cap);
    free(cx->files);
    json_decref(cx->rec);
    pthread_mutex_destroy(&cx->err_mu);
    op_finish(s, cx->op);
    free(cx);
    return NULL;
}

static int check_names(const char *collection, const char *name, sv_err *err)
{
    int rc = sv_check_collection_name(collection, err);
    if (rc == 0 && name)
        rc = sv_check_snapshot_name(name, err);
    return rc;
}

static int spawn(sv_snapshot *s, void *(*fn)(void *), void *arg, sv_err *err)
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

int sv_snapshot_create(sv_snapshot *s, const char *collection, json_t *body, bool wait, json_t **out, sv_err *err)
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

    create_op *op = calloc(1, sizeof *op);
    create_ctx *cx = calloc(1, sizeof *cx);
    if (!op || !cx) {
        free(op);
        free(cx);
        return oom(err);
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
    cx->s = s;
    cx->op = op;
    pthread_mutex_init(&cx->err_mu, NULL);
    char key[400];
    record_key(collection, name, key);
    char *val = cx->rec ? json_dumps(cx->rec, JSON_COMPACT) : NULL;
    if (!val) {
        rc = oom(err);
        goto fail;
    }
    pthread_mutex_lock(&s->ddl_mu);
    if (stopping(s)) {
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
    if ((rc = spawn(s, create_thread, cx, err)) != 0) {
        json_decref(reply);
        set_failed(cx->rec, err->msg);
        record_put(s, cx->rec, NULL);
        pthread_mutex_lock(&s->mu);
        s->threads++; /* op_finish decrements */
        pthread_mutex_unlock(&s->mu);
        op_finish(s, op);
        json_decref(cx->rec);
        pthread_mutex_destroy(&cx->err_mu);
        free(cx);
        return rc;
    }
    if (!wait) {
        *out = reply;
        return 0;
    }
    json_decref(reply);
    /* op may be freed once done: wait for the record instead of the op. */
    for (;;) {
        json_t *rec = NULL;
        rc = record_load(s, collection, name, &rec, NULL, err);
        if (rc)
            return rc;
        int st = record_state(rec);
        if (st != SNAP_PENDING) {
            *out = record_api(s, rec);
            json_decref(rec);
            return *out ? 0 : oom(err);
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
            rc = record_load(s, collection, name, &rec, NULL, err);
            if (rc)
                return rc;
            *out = record_api(s, rec);
            json_decref(rec);
            return *out ? 0 : oom(err);
        }
    }
fail:
    json_decref(cx->rec);
    pthread_mutex_destroy(&cx->err_mu);
    free(cx);
    free(op);
    return rc;
}

/* ---- get / list / drop -------------------------------------------------------------- */

int sv_snapshot_get(sv_snapshot *s, const char *collection, const char *name, json_t **out, sv_err *err)
{
    int rc = check_names(collection, name, err);
    json_t *rec = NULL;
    if (rc == 0)
        rc = record_load(s, collection, name, &rec, NULL, err);
    if (rc)
        return rc;
    *out = record_api(s, rec);
    json_decref(rec);
    return *out ? 0 : oom(err);
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
    json_t *a = record_api(lc->s, rec);
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
        return oom(err);
    rc = sv_catalog_scan(s->cat, prefix, list_one, &lc, err);
    if (rc == SV_ENOMEM)
        rc = oom(err);
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
        return oom(err);
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
        record_key(collection, name, key);
        rc = sv_catalog_delete(s->cat, key, err);
    }
    return rc;
}

int sv_snapshot_drop(sv_snapshot *s, const char *collection, const char *name, sv_err *err)
{
    int rc = check_names(collection, name, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->ddl_mu);
    json_t *rec = NULL;
    rc = record_load(s, collection, name, &rec, NULL, err);
    char job[37] = "";
    if (rc == 0) {
        int st = record_state(rec);
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
            rc = oom(err);
    }
    if (rc == 0) {
        json_object_set_new(rec, "status", json_string("DELETING"));
        rc = record_put(s, rec, err);
    }
    pthread_mutex_unlock(&s->ddl_mu);
    if (rc == 0)
        rc = finish_drop(s, collection, name, err);
    if (rc == 0)
        sv_info("snapshot dropped", "collection=%s name=%s", collection, name);
    json_decref(rec);
    return rc;
}

/* ---- restore ------------------------------------------------------------------------- */

static job_run *run_get(sv_snapshot *s, const char *id)
{
    for (job_run *r = s->runs; r; r = r->next)
        if (!strcmp(r->id, id))
            return r;
    return NULL;
}

static json_t *job_api(sv_snapshot *s, const sv_restore_job *j)
{
    sv_restore_task *tasks = NULL;
    size_t nt = 0;
    int64_t copied = 0;
    json_t *tj = json_array();
    if (sv_restore_meta_tasks_of_job(s->meta, j->id, &tasks, &nt) == 0) {
        for (size_t i = 0; i < nt; i++) {
            if (tasks[i].state == SV_RESTORE_COMPLETED)
                copied += tasks[i].bytes_total;
            json_array_append_new(tj, json_pack("{s:s,s:s,s:I,s:I}", "shard", tasks[i].shard, "state",
                                                sv_restore_state_name(tasks[i].state), "bytes",
                                                (json_int_t)tasks[i].bytes_total, "objects",
                                                (json_int_t)tasks[i].objects));
        }
        free(tasks);
    }
    pthread_mutex_lock(&s->mu);
    job_run *r = run_get(s, j->id);
    if (r)
        copied += atomic_load(&r->bytes_running);
    pthread_mutex_unlock(&s->mu);
    if (j->state == SV_RESTORE_COMPLETED)
        copied = j->bytes_total;
    if (copied > j->bytes_total)
        copied = j->bytes_total;
    int progress = j->state == SV_RESTORE_COMPLETED ? 100
                   : j->bytes_total > 0         ? (int)(copied * 100 / j->bytes_total)
                                                : 0;
    if (progress > 99 && j->state != SV_RESTORE_COMPLETED)
        progress = 99;
    int64_t took = j->started_at ? (j->finished_at ? j->finished_at : sv_now_ms()) - j->started_at : 0;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:s,s:I,s:I,s:I,s:o}", "jobId", j->id, "snapshot",
                     j->snapshot, "collection", j->collection, "target", j->target, "state",
                     sv_restore_state_name(j->state), "progress", progress, "bytesCopied", (json_int_t)copied,
                     "bytesTotal", (json_int_t)j->bytes_total, "reason", j->reason, "startedAt",
                     (json_int_t)j->started_at, "tookInMs", (json_int_t)took, "createdAt", (json_int_t)j->created_at,
                     "tasks", tj);
}

int sv_snapshot_job_get(sv_snapshot *s, const char *id, json_t **out, sv_err *err)
{
    sv_uuid u;
    if (sv_uuid_parse(id, strlen(id), &u) != 0)
        return sv_fail(err, SV_EINVAL, "restore job id '%.64s' is not a UUID", id);
    char canon[37];
    sv_uuid_format(&u, canon);
    sv_restore_job j;
    if (sv_restore_meta_get_job(s->meta, canon, &j) != 0)
        return sv_fail(err, SV_ENOTFOUND, "restore job %s not found", canon);
    *out = job_api(s, &j);
    return *out ? 0 : oom(err);
}

int sv_snapshot_job_list(sv_snapshot *s, json_t **out, sv_err *err)
{
    sv_restore_job *jobs = NULL;
    size_t n = 0;
    if (sv_restore_meta_list_jobs(s->meta, &jobs, &n))
        return oom(err);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, job_api(s, &jobs[i]));
    free(jobs);
    *out = arr ? json_pack("{s:o}", "jobs", arr) : NULL;
    return *out ? 0 : oom(err);
}

static int load_manifest(sv_snapshot *s, const char *collection, const char *name, sv_manifest **out, sv_err *err)
{
    char key[400];
    sv_manifest_key(collection, name, key);
    sv_buf b = {0};
    int rc = sv_location_get_buf(s->loc, key, &b, err);
    if (rc == 0) {
        rc = sv_manifest_parse((const char *)b.data, b.len, out, err);
        if (rc)
            sv_err_wrap(err, "manifest %s", key);
    }
    sv_buf_free(&b);
    return rc;
}

typedef struct fetch_sink {
    int fd;
    sv_sha256_ctx *sha;
    int64_t n;
    _Atomic int64_t *progress;
} fetch_sink;

static int fetch_write(void *ctx, const void *data, size_t len)
{
    fetch_sink *fs = ctx;
    sv_sha256_update(fs->sha, data, len);
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fs->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return SV_EIO;
        p += w;
        left -= (size_t)w;
    }
    fs->n += (int64_t)len;
    atomic_fetch_add(fs->progress, (int64_t)len);
    return 0;
}

/* On a file:// location on the data dir's filesystem, an immutable shard file
 * (SST, blob file) is restored as a hard link of its blob, as create stored
 * it, and verified by reading it back: no bytes are copied. The layout
 * <root>/<key> is the file driver's documented contract. Mutable files
 * (MANIFEST, WAL, CURRENT, OPTIONS) are always copied: RocksDB may append. */
static bool link_blob(sv_snapshot *s, const sv_manifest_file *mf, const char *path, _Atomic int64_t *progress,
                      int *rc, sv_err *err)
{
    size_t n = strlen(mf->name);
    bool immutable = (n > 4 && !strcmp(mf->name + n - 4, ".sst")) || (n > 5 && !strcmp(mf->name + n - 5, ".blob"));
    if (!immutable || strcmp(sv_location_scheme(s->loc), "file") != 0 || !s->link_restore)
        return false;
    char key[80], src[PATH_MAX + 200];
    sv_blob_key(mf->blob, key);
    snprintf(src, sizeof src, "%s/%s", s->url + 7, key);
    if (link(src, path) != 0)
        return false; /* other filesystem, missing blob...: the copy path says why */
    char hex[65];
    int64_t size = 0;
    *rc = sv_sha256_file(path, hex, &size, progress, err);
    if (*rc == 0 && (size != mf->size || memcmp(hex, mf->blob, 64) != 0))
        *rc = sv_fail(err, SV_ECORRUPT,
                      "blob %s (file %s) is corrupt: %lld bytes with sha256 %s, the manifest expects %lld bytes with "
                      "sha256 %s",
                      key, mf->name, (long long)size, hex, (long long)mf->size, mf->blob);
    return true;
}

/* Fetches one blob into path, verifying size and sha256 on the way. */
static int fetch_blob(sv_snapshot *s, const sv_manifest_shard *ms, const sv_manifest_file *mf, const char *path,
                      _Atomic int64_t *progress, sv_err *err)
{
    char key[80];
    sv_blob_key(mf->blob, key);
    fetch_sink fs = {.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), .sha = sv_sha256_new(),
                     .progress = progress};
    int rc = 0;
    if (fs.fd < 0 || !fs.sha) {
        rc = fs.fd < 0 ? sv_fail(err, SV_EIO, "cannot create %s: %s", path, strerror(errno)) : oom(err);
        goto done;
    }
    rc = sv_location_get(s->loc, key, 0, -1, fetch_write, &fs, err);
    if (rc == SV_ENOTFOUND)
        rc = sv_fail(err, SV_ECORRUPT, "blob %s (file %s of shard %s) is missing from the location", key, mf->name,
                     ms->name);
    if (rc)
        goto done;
    char hex[65];
    sv_sha256_final_hex(fs.sha, hex);
    fs.sha = NULL;
    if (fs.n != mf->size || memcmp(hex, mf->blob, 64) != 0) {
        rc = sv_fail(err, SV_ECORRUPT,
                     "blob %s (file %s of shard %s) is corrupt: %lld bytes with sha256 %s, the manifest expects %lld "
                     "bytes with sha256 %s",
                     key, mf->name, ms->name, (long long)fs.n, hex, (long long)mf->size, mf->blob);
        goto done;
    }
    if (fsync(fs.fd) != 0)
        rc = sv_fail(err, SV_EIO, "cannot fsync %s: %s", path, strerror(errno));
done:
    sv_sha256_free(fs.sha);
    if (fs.fd >= 0)
        close(fs.fd);
    return rc;
}

typedef struct job_ctx {
    sv_snapshot *s;
    job_run *run;
    sv_restore_job job;
    sv_manifest *m;
    sv_restore_task *tasks;
    size_t ntasks;
    char root[PATH_MAX + 128];
    _Atomic size_t next;
    pthread_mutex_t mu;
    sv_err err;
    int rc;
    long failed_task; /* index of the task whose error failed the job, -1 if none */
} job_ctx;

static void task_dirs(job_ctx *jc, const sv_restore_task *t, char *dir, char *part, size_t n)
{
    snprintf(dir, n, "%s/%s", jc->root, t->shard);
    snprintf(part, n, "%s/%s.part", jc->root, t->shard);
}

static int run_task(job_ctx *jc, sv_restore_task *t, sv_err *err)
{
    sv_snapshot *s = jc->s;
    if (t->index < 0 || (size_t)t->index >= jc->m->nshards || strcmp(jc->m->shards[t->index].name, t->shard))
        return sv_fail(err, SV_ECORRUPT, "restore task %s does not match the manifest", t->shard);
    const sv_manifest_shard *ms = &jc->m->shards[t->index];
    char dir[PATH_MAX + 300], part[PATH_MAX + 300];
    task_dirs(jc, t, dir, part, sizeof dir);
    t->state = SV_RESTORE_EXECUTING;
    int rc = sv_restore_meta_update_task(s->meta, t, err);
    if (rc)
        return rc;
    _Atomic int64_t copied = 0;
    int64_t t0 = sv_mono_ns();
    if ((rc = sv_rmtree(part, err)) != 0 || (rc = sv_rmtree(dir, err)) != 0 || (rc = sv_mkdirs(part, err)) != 0)
        return rc;
    for (size_t k = 0; rc == 0 && k < ms->nfiles; k++) {
        if (atomic_load(&jc->run->failed))
            return SV_ECANCELED;
        test_delay(s);
        if (stopping(s))
            return SV_ECANCELED;
        char path[PATH_MAX + 600];
        snprintf(path, sizeof path, "%s/%s", part, ms->files[k].name);
        int64_t before = atomic_load(&copied);
        if (!link_blob(s, &ms->files[k], path, &copied, &rc, err))
            rc = fetch_blob(s, ms, &ms->files[k], path, &copied, err);
        atomic_fetch_add(&jc->run->bytes_running, atomic_load(&copied) - before);
    }
    if (rc == 0)
        rc = sv_fsync_dir(part, err);
    int64_t t_fetch = sv_mono_ns();
    int64_t objects = 0;
    if (rc == 0 && !ms->empty && !s->verify_count) {
        /* Every byte is already verified; opening checks the files form a
         * database. Objects are counted by the store after adoption. */
        sv_db *db = NULL;
        rc = sv_db_open_readonly(s->engine, part, &db, err);
        if (rc)
            sv_err_wrap(err, "opening restored shard %s", ms->name);
        sv_db_close(db);
        objects = ms->objects;
    } else if (rc == 0 && !ms->empty) {
        rc = count_objects(s, part, &objects, err);
        if (rc)
            sv_err_wrap(err, "opening restored shard %s", ms->name);
        else if (ms->objects >= 0 && objects != ms->objects)
            rc = sv_fail(err, SV_ECORRUPT, "restored shard %s holds %lld objects, the manifest says %lld", ms->name,
                         (long long)objects, (long long)ms->objects);
    }
    if (rc == 0 && rename(part, dir) != 0)
        rc = sv_fail(err, SV_EIO, "cannot rename %s: %s", part, strerror(errno));
    if (rc == 0)
        rc = sv_fsync_dir(jc->root, err);
    atomic_fetch_sub(&jc->run->bytes_running, atomic_load(&copied));
    if (rc)
        return rc;
    sv_debug("restore task done", "job=%s shard=%s bytes=%lld fetch_ms=%lld count_ms=%lld", t->job_id, t->shard,
             (long long)atomic_load(&copied), (long long)((t_fetch - t0) / 1000000),
             (long long)((sv_mono_ns() - t_fetch) / 1000000));
    t->state = SV_RESTORE_COMPLETED;
    t->objects = objects;
    return sv_restore_meta_update_task(s->meta, t, err);
}

static void *task_worker(void *arg)
{
    job_ctx *jc = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&jc->next, 1);
        if (i >= jc->ntasks || atomic_load(&jc->run->failed) || stopping(jc->s))
            break;
        sv_restore_task *t = &jc->tasks[i];
        if (t->state == SV_RESTORE_COMPLETED)
            continue;
        sv_err e = {0};
        int rc = run_task(jc, t, &e);
        if (rc == SV_ECANCELED && !atomic_load(&jc->run->failed))
            break; /* stopping: the task resumes at the next start */
        if (rc) {
            pthread_mutex_lock(&jc->mu);
            if (jc->rc == 0 || jc->rc == SV_ECANCELED) {
                jc->rc = rc;
                jc->err = e;
                jc->failed_task = (long)i;
                sv_err_wrap(&jc->err, "shard %s", t->shard);
            }
            pthread_mutex_unlock(&jc->mu);
            atomic_store(&jc->run->failed, true);
            break;
        }
    }
    return NULL;
}

static int job_fail(sv_snapshot *s, job_ctx *jc, const char *why)
{
    sv_restore_job *j = &jc->job;
    /* Rollback: everything the job laid out goes; no collection was created
     * (adoption is all or nothing). */
    sv_err ignored;
    sv_rmtree(jc->root, &ignored);
    for (size_t i = 0; i < jc->ntasks; i++) {
        if (jc->tasks[i].state != SV_RESTORE_FAILED) {
            jc->tasks[i].state = SV_RESTORE_FAILED;
            snprintf(jc->tasks[i].reason, sizeof jc->tasks[i].reason, "%s",
                     (long)i == jc->failed_task ? why : "the job failed");
            sv_restore_meta_update_task(s->meta, &jc->tasks[i], NULL);
        }
    }
    j->state = SV_RESTORE_FAILED;
    snprintf(j->reason, sizeof j->reason, "%s", why);
    j->finished_at = sv_now_ms();
    if (!j->started_at)
        j->started_at = j->finished_at;
    sv_err e = {0};
    int rc = sv_restore_meta_update_job(s->meta, j, &e);
    if (rc)
        sv_error("cannot mark restore job FAILED", "job=%s error=\"%s\"", j->id, e.msg);
    sv_warn("restore failed", "job=%s snapshot=%s/%s target=%s reason=\"%s\"", j->id, j->collection, j->snapshot,
            j->target, why);
    atomic_fetch_add(&s->m_restore_failed, 1);
    return rc;
}

static bool collection_exists(sv_snapshot *s, const char *name)
{
    json_t *cj = NULL;
    int rc = sv_store_get_collection(s->st, name, &cj, NULL);
    json_decref(cj);
    return rc == 0;
}

/* The adopted collection's exact per-shard counts (the store opens each
 * shard and reads its count) must equal the manifest's. */
static int check_counts(sv_snapshot *s, job_ctx *jc, sv_err *err)
{
    json_t *out = NULL;
    int rc = sv_store_list_shards(s->st, jc->job.target, &out, err);
    if (rc)
        return rc;
    json_t *arr = json_object_get(out, "shards");
    for (size_t i = 0; rc == 0 && i < jc->ntasks; i++) {
        const sv_manifest_shard *ms = &jc->m->shards[jc->tasks[i].index];
        int64_t got = -1;
        json_t *sh;
        size_t k;
        json_array_foreach(arr, k, sh)
        {
            if (!strcmp(json_string_value(json_object_get(sh, "name")), ms->name))
                got = json_is_integer(json_object_get(sh, "objects")) ? json_integer_value(json_object_get(sh, "objects"))
                                                                     : -1;
        }
        if (ms->objects >= 0 && got != ms->objects)
            rc = sv_fail(err, SV_ECORRUPT, "restored shard %s holds %lld objects, the manifest says %lld", ms->name,
                         (long long)got, (long long)ms->objects);
        else
            jc->tasks[i].objects = got;
    }
    json_decref(out);
    for (size_t i = 0; rc == 0 && i < jc->ntasks; i++)
        sv_restore_meta_update_task(s->meta, &jc->tasks[i], NULL);
    return rc;
}

static void run_job(sv_snapshot *s, job_ctx *jc)
{
    sv_restore_job *j = &jc->job;
    sv_err err = {0};
    snprintf(jc->root, sizeof jc->root, "%s/%s", s->staging, j->id);
    int rc = sv_restore_meta_tasks_of_job(s->meta, j->id, &jc->tasks, &jc->ntasks);
    if (rc) {
        sv_error("cannot load restore tasks", "job=%s", j->id);
        return;
    }
    /* Resumption: tasks COMPLETED before a restart keep their directories
     * (staging is outside <data>/tmp); one whose directory is gone redoes. */
    bool all_done = jc->ntasks > 0 || j->ntasks == 0;
    bool dirs_present = false;
    for (size_t i = 0; i < jc->ntasks; i++) {
        char dir[PATH_MAX + 300], part[PATH_MAX + 300];
        task_dirs(jc, &jc->tasks[i], dir, part, sizeof dir);
        bool present = sv_path_exists(dir);
        dirs_present |= present;
        if (jc->tasks[i].state != SV_RESTORE_COMPLETED)
            all_done = false;
    }
    if (all_done && jc->ntasks > 0 && !dirs_present && collection_exists(s, j->target)) {
        /* The previous process adopted the shards and stopped before it
         * could record COMPLETED. */
        j->state = SV_RESTORE_COMPLETED;
        j->finished_at = sv_now_ms();
        if (sv_restore_meta_update_job(s->meta, j, &err) == 0)
            atomic_fetch_add(&s->m_restored, 1);
        return;
    }
    for (size_t i = 0; i < jc->ntasks; i++) {
        char dir[PATH_MAX + 300], part[PATH_MAX + 300];
        task_dirs(jc, &jc->tasks[i], dir, part, sizeof dir);
        if (jc->tasks[i].state == SV_RESTORE_COMPLETED && !sv_path_exists(dir))
            jc->tasks[i].state = SV_RESTORE_PENDING;
    }
    if (j->state == SV_RESTORE_PENDING) {
        j->state = SV_RESTORE_EXECUTING;
        j->started_at = sv_now_ms();
        if ((rc = sv_restore_meta_update_job(s->meta, j, &err)) != 0) {
            sv_error("cannot start restore job", "job=%s error=\"%s\"", j->id, err.msg);
            return;
        }
    }
    if ((rc = load_manifest(s, j->collection, j->snapshot, &jc->m, &err)) != 0) {
        job_fail(s, jc, err.msg);
        return;
    }
    if (jc->m->nshards != jc->ntasks) {
        job_fail(s, jc, "the manifest no longer matches the job's tasks");
        return;
    }
    if ((rc = sv_mkdirs(jc->root, &err)) != 0) {
        job_fail(s, jc, err.msg);
        return;
    }
    run_parallel(s->workers, task_worker, jc);
    if (jc->rc && jc->rc != SV_ECANCELED) {
        job_fail(s, jc, jc->err.msg);
        return;
    }
    bool done = true;
    for (size_t i = 0; i < jc->ntasks; i++)
        done &= jc->tasks[i].state == SV_RESTORE_COMPLETED;
    if (!done || stopping(s)) {
        sv_info("restore paused; it resumes at the next start", "job=%s", j->id);
        return;
    }
    /* Every shard is laid out: the target appears at once, or not at all. */
    json_t *schema = json_deep_copy(jc->m->schema);
    json_object_set_new(schema, "name", json_string(j->target));
    char *sj = json_dumps(schema, JSON_COMPACT);
    json_decref(schema);
    const char **names = calloc(jc->ntasks + 1, sizeof *names);
    const char **dirs = calloc(jc->ntasks + 1, sizeof *dirs);
    char(*dirbuf)[PATH_MAX + 300] = calloc(jc->ntasks + 1, sizeof *dirbuf);
    if (!sj || !names || !dirs || !dirbuf) {
        rc = oom(&err);
    } else {
        for (size_t i = 0; i < jc->ntasks; i++) {
            char part[PATH_MAX + 300];
            task_dirs(jc, &jc->tasks[i], dirbuf[i], part, sizeof part);
            names[i] = jc->tasks[i].shard;
            dirs[i] = dirbuf[i];
        }
        rc = sv_store_adopt_collection(s->st, sj, strlen(sj), names, dirs, jc->ntasks, NULL, &err);
    }
    free(sj);
    free(names);
    free(dirs);
    free(dirbuf);
    if (rc) {
        sv_err_wrap(&err, "creating collection '%s'", j->target);
        job_fail(s, jc, err.msg);
        return;
    }
    if (!s->verify_count && (rc = check_counts(s, jc, &err)) != 0) {
        sv_err e2 = {0};
        if (sv_store_delete_collection(s->st, j->target, &e2) != 0)
            sv_error("cannot roll back restored collection", "collection=%s error=\"%s\"", j->target, e2.msg);
        job_fail(s, jc, err.msg);
        return;
    }
    sv_err ignored;
    sv_rmtree(jc->root, &ignored);
    j->state = SV_RESTORE_COMPLETED;
    j->finished_at = sv_now_ms();
    if (sv_restore_meta_update_job(s->meta, j, &err) != 0)
        sv_error("cannot mark restore job COMPLETED", "job=%s error=\"%s\"", j->id, err.msg);
    atomic_fetch_add(&s->m_restored, 1);
    sv_info("restore completed", "job=%s snapshot=%s/%s target=%s ms=%lld", j->id, j->collection, j->snapshot,
            j->target, (long long)(j->finished_at - j->started_at));
}

static void *job_thread(void *arg)
{
    job_ctx *jc = arg;
    sv_snapshot *s = jc->s;
    run_job(s, jc);
    pthread_mutex_lock(&s->mu);
    for (job_run **pp = &s->runs; *pp; pp = &(*pp)->next) {
        if (*pp == jc->run) {
            *pp = jc->run->next;
            break;
        }
    }
    s->threads--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    free(jc->run);
    free(jc->tasks);
    sv_manifest_free(jc->m);
    pthread_mutex_destroy(&jc->mu);
    free(jc);
    return NULL;
}

static int start_job(sv_snapshot *s, const sv_restore_job *j, sv_err *err)
{
    job_ctx *jc = calloc(1, sizeof *jc);
    job_run *r = calloc(1, sizeof *r);
    if (!jc || !r) {
        free(jc);
        free(r);
        return oom(err);
    }
    jc->s = s;
    jc->job = *j;
    jc->run = r;
    jc->failed_task = -1;
    pthread_mutex_init(&jc->mu, NULL);
    snprintf(r->id, sizeof r->id, "%s", j->id);
    pthread_mutex_lock(&s->mu);
    r->next = s->runs;
    s->runs = r;
    pthread_mutex_unlock(&s->mu);
    int rc = spawn(s, job_thread, jc, err);
    if (rc) {
        pthread_mutex_lock(&s->mu);
        for (job_run **pp = &s->runs; *pp; pp = &(*pp)->next) {
            if (*pp == r) {
                *pp = r->next;
                break;
            }
        }
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_destroy(&jc->mu);
        free(r);
        free(jc);
        /* The job is persisted: leave it FAILED, not PENDING, or it would
         * run at the next start after the caller was told it failed. */
        sv_restore_job failed = *j;
        failed.state = SV_RESTORE_FAILED;
        failed.finished_at = sv_now_ms();
        snprintf(failed.reason, sizeof failed.reason, "could not start: %.400s", err ? err->msg : "no thread");
        sv_err e2 = {0};
        if (sv_restore_meta_update_job(s->meta, &failed, &e2))
            sv_error("cannot mark restore job FAILED", "job=%s error=\"%s\"", j->id, e2.msg);
    }
    return rc;
}

int sv_snapshot_restore(sv_snapshot *s, const char *collection, const char *name, json_t *body, json_t **out,
                        sv_err *err)
{
    int rc = check_names(collection, name, err);
    if (rc)
        return rc;
    json_t *tj = json_is_object(body) ? json_object_get(body, "target") : NULL;
    if (!json_is_string(tj))
        return sv_fail(err, SV_EINVAL, "the body needs {\"target\": \"NewCollection\"}: the collection to create");
    const char *target = json_string_value(tj);
    if ((rc = sv_check_collection_name(target, err)) != 0)
        return sv_err_wrap(err, "target");
    pthread_mutex_lock(&s->ddl_mu);
    json_t *rec = NULL;
    sv_manifest *m = NULL;
    sv_restore_task *tasks = NULL;
    sv_restore_job *others = NULL;
    size_t nothers = 0;
    rc = record_load(s, collection, name, &rec, NULL, err);
    if (rc == 0 && record_state(rec) != SNAP_COMMITTED)
        rc = sv_fail(err, SV_ECONFLICT, "snapshot '%s' of collection '%s' is %s; only COMMITTED snapshots can be restored",
                     name, collection, json_string_value(json_object_get(rec, "status")));
    if (rc == 0 && collection_exists(s, target))
        rc = sv_fail(err, SV_EEXIST, "target collection '%s' already exists; restore into a new name", target);
    if (rc == 0 && sv_restore_meta_jobs_of_collection(s->meta, target, &others, &nothers) != 0)
        rc = oom(err);
    for (size_t i = 0; rc == 0 && i < nothers; i++)
        if (!sv_restore_state_final(others[i].state) && !strcmp(others[i].target, target))
            rc = sv_fail(err, SV_ECONFLICT, "restore job %s is already restoring into '%s'", others[i].id, target);
    if (rc == 0 && stopping(s))
        rc = sv_fail(err, SV_EUNAVAIL, "the server is shutting down");
    if (rc == 0)
        rc = load_manifest(s, collection, name, &m, err);
    sv_restore_job job = {0};
    if (rc == 0) {
        sv_uuid u;
        sv_uuid_v4(&u);
        sv_uuid_format(&u, job.id);
        snprintf(job.collection, sizeof job.collection, "%s", collection);
        snprintf(job.snapshot, sizeof job.snapshot, "%s", name);
        snprintf(job.target, sizeof job.target, "%s", target);
        job.state = SV_RESTORE_PENDING;
        job.created_at = sv_now_ms();
        job.ntasks = (int)m->nshards;
        tasks = calloc(m->nshards + 1, sizeof *tasks);
        if (!tasks)
            rc = oom(err);
        for (size_t i = 0; rc == 0 && i < m->nshards; i++) {
            sv_restore_task *t = &tasks[i];
            snprintf(t->job_id, sizeof t->job_id, "%s", job.id);
            snprintf(t->shard, sizeof t->shard, "%s", m->shards[i].name);
            snprintf(t->collection, sizeof t->collection, "%s", target);
            t->index = (int)i;
            t->state = SV_RESTORE_PENDING;
            t->objects = -1;
            t->bytes_total = m->shards[i].bytes;
            job.bytes_total += t->bytes_total;
        }
    }
    if (rc == 0)
        rc = sv_restore_meta_add_job(s->meta, &job, tasks, m->nshards, err);
    pthread_mutex_unlock(&s->ddl_mu);
    if (rc == 0)
        rc = start_job(s, &job, err);
    if (rc == 0) {
        sv_info("restore started", "job=%s snapshot=%s/%s target=%s bytes=%lld", job.id, collection, name, target,
                (long long)job.bytes_total);
        *out = json_pack("{s:s}", "jobId", job.id);
    }
    free(others);
    free(tasks);
    sv_manifest_free(m);
    json_decref(rec);
    return rc;
}

/* ---- garbage collection ------------------------------------------------------------- */

typedef struct hexset {
    char (*v)[65];
    size_t n, cap;
} hexset;

static int hexset_add(hexset *h, const char *hex)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 256;
        char(*v)[65] = realloc(h->v, nc * sizeof *v);
        if (!v)
            return SV_ENOMEM;
        h->v = v;
        h->cap = nc;
    }
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
    if (kl->n == kl->cap) {
        size_t nc = kl->cap ? kl->cap * 2 : 64;
        char **v = realloc(kl->v, nc * sizeof *v);
        if (!v)
            return SV_ENOMEM;
        kl->v = v;
        kl->cap = nc;
    }
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
    if (hex_in(bs->refs->v, bs->refs->n, hex)) {
        bs->kept++;
        return 0;
    }
    if (bs->now - e->mtime_ms < bs->grace) {
        bs->young++;
        return 0;
    }
    if (bs->n == bs->cap) {
        size_t nc = bs->cap ? bs->cap * 2 : 64;
        char **v = realloc(bs->cands, nc * sizeof *v);
        int64_t *sz = realloc(bs->sizes, nc * sizeof *sz);
        if (v)
            bs->cands = v;
        if (sz)
            bs->sizes = sz;
        if (!v || !sz)
            return SV_ENOMEM;
        bs->cap = nc;
    }
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
    if (record_state(rec) == SNAP_PENDING && (!boot || strcmp(boot, sc->s->boot)) &&
        sc->now - created >= sc->s->pending_timeout_ms) {
        set_failed(rec, "abandoned: its creator stopped before it was committed");
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
    if (record_state(rec) == SNAP_COMMITTED) {
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
        if (hex_in(op->blobs, op->nblobs, hex))
            return true;
    for (create_op *op = s->retired; op; op = op->next)
        if (hex_in(op->blobs, op->nblobs, hex))
            return true;
    return false;
}

int sv_snapshot_gc(sv_snapshot *s, json_t **out, sv_err *err)
{
    pthread_mutex_lock(&s->gc_mu);
    pthread_mutex_lock(&s->mu);
    s->gc_running = true;
    /* Ops of every create that has not finished yet are protected, and so
     * are those finishing while we run (retired); older ones wrote their
     * manifests before this point and are seen below. */
    pthread_mutex_unlock(&s->mu);
    int64_t t0 = sv_mono_ns();
    stale_ctx sc = {s, sv_now_ms(), 0};
    int rc = sv_catalog_scan(s->cat, "snapshots/", fail_stale_pending, &sc, err);

    key_list manifests = {0};
    hexset refs = {0};
    blob_scan bs = {.refs = &refs, .now = sv_now_ms(), .grace = s->gc_grace_ms};
    int64_t deleted = 0, freed = 0;
    if (rc == 0) {
        rc = sv_location_list(s->loc, "snapshots/", NULL, NULL, collect_manifest_key, &manifests, err);
        if (rc == SV_ENOMEM)
            rc = oom(err);
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
                    rc = oom(err);
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
            qsort(refs.v, refs.n, 65, cmp_hex);
        rc = sv_location_list(s->loc, "blobs/", NULL, NULL, collect_blob, &bs, err);
        if (rc == SV_ENOMEM)
            rc = oom(err);
    }
    /* Delete in batches under s->mu: a create announces its blobs under the
     * same lock before checking the location, so it either sees the blob
     * gone (and uploads it again) or is seen here (and the blob stays). */
    for (size_t i = 0; rc == 0 && i < bs.n;) {
        const char *batch[256];
        int64_t bytes = 0;
        size_t nb = 0;
        pthread_mutex_lock(&s->mu);
        for (; i < bs.n && nb < 256; i++) {
            const char *slash = strrchr(bs.cands[i], '/');
            if (in_flight(s, slash + 1)) {
                bs.kept++;
                continue;
            }
            batch[nb++] = bs.cands[i];
            bytes += bs.sizes[i];
        }
        if (nb)
            rc = sv_location_delete_many(s->loc, batch, nb, err);
        pthread_mutex_unlock(&s->mu);
        if (rc == 0) {
            deleted += (int64_t)nb;
            freed += bytes;
        }
    }
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
    sv_info("snapshot gc", "deleted=%lld bytes=%lld kept=%lld young=%lld ms=%lld", (long long)deleted,
            (long long)freed, (long long)bs.kept, (long long)bs.young, (long long)((sv_mono_ns() - t0) / 1000000));
    *out = json_pack("{s:I,s:I,s:I,s:I,s:I,s:i}", "blobsDeleted", (json_int_t)deleted, "bytesFreed",
                     (json_int_t)freed, "blobsKept", (json_int_t)bs.kept, "blobsYoung", (json_int_t)bs.young,
                     "manifests", (json_int_t)manifests.n, "pendingFailed", sc.failed);
    return *out ? 0 : oom(err);
}

static void *gc_loop(void *arg)
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
    int st = record_state(rec);
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
        set_failed(rec, "interrupted: the server stopped while the snapshot was being created");
        if (record_put(s, rec, NULL) == 0)
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

int sv_snapshot_open(const sv_snapshot_opts *opts, sv_store *st, sv_catalog *cat, sv_snapshot **out, sv_err *err)
{
    if (!opts || !opts->data_dir)
        return sv_fail(err, SV_EINVAL, "the snapshot service needs the data directory");
    sv_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return oom(err);
    s->st = st;
    s->cat = cat;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_mutex_init(&s->ddl_mu, NULL);
    pthread_mutex_init(&s->gc_mu, NULL);
    snprintf(s->node, sizeof s->node, "%s", opts->node_name ? opts->node_name : "node1");
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
        const char *url = opts->location_url ? opts->location_url : sv_env_str("SHARDVAULT_SNAPSHOT_LOCATION", NULL);
        if (url)
            snprintf(s->url, sizeof s->url, "%s", url);
        else
            snprintf(s->url, sizeof s->url, "file://%s/location", s->data_dir);
        size_t ul = strlen(s->url);
        while (ul > 8 && s->url[ul - 1] == '/')
            s->url[--ul] = '\0';
        rc = sv_location_open(s->url, NULL, &s->loc, err);
        if (rc)
            sv_err_wrap(err, "snapshot location (SHARDVAULT_SNAPSHOT_LOCATION)");
    }
    if (rc == 0) {
        snprintf(s->staging, sizeof s->staging, "%s/snapshot-restore", s->data_dir);
        rc = sv_mkdirs(s->staging, err);
    }
    if (rc == 0) {
        sv_engine_opts eo = {.block_cache_bytes = 8 << 20, .write_buffer_bytes = 4 << 20,
                             .total_write_buffer_bytes = 16 << 20, .max_background_jobs = 1};
        rc = sv_engine_new(&eo, &s->engine, err);
    }
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
    /* Staging directories of jobs that are gone (finished or removed). */
    DIR *d = opendir(s->staging);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        sv_restore_job j;
        if (e->d_name[0] == '.' || sv_restore_meta_get_job(s->meta, e->d_name, &j) == 0)
            continue;
        char p[PATH_MAX + 400];
        snprintf(p, sizeof p, "%s/%s", s->staging, e->d_name);
        sv_rmtree(p, NULL);
    }
    if (d)
        closedir(d);
    /* Resume unfinished jobs. */
    sv_restore_job *jobs = NULL;
    size_t nj = 0;
    if (sv_restore_meta_list_jobs(s->meta, &jobs, &nj) == 0) {
        for (size_t i = 0; i < nj; i++) {
            if (sv_restore_state_final(jobs[i].state))
                continue;
            sv_info("resuming restore job", "job=%s target=%s", jobs[i].id, jobs[i].target);
            sv_err e2 = {0};
            if (start_job(s, &jobs[i], &e2))
                sv_error("cannot resume restore job", "job=%s error=\"%s\"", jobs[i].id, e2.msg);
        }
        free(jobs);
    }
    if (s->gc_interval_ms > 0 && pthread_create(&s->gc_thread, NULL, gc_loop, s) == 0)
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
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    while (s->threads > 0)
        pthread_cond_wait(&s->cond, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (s->gc_thread_started)
        pthread_join(s->gc_thread, NULL);
    for (create_op *op = s->retired, *next; op; op = next) {
        next = op->next;
        free(op->blobs);
        free(op);
    }
    sv_restore_meta_free(s->meta);
    sv_engine_free(s->engine);
    sv_location_close(s->loc);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->ddl_mu);
    pthread_mutex_destroy(&s->gc_mu);
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
