/* Blobs: hashing shard files (on up to s->workers threads), the hash cache
 * (what earlier snapshots of a collection already hashed), storing blobs in
 * the location, and getting them back for a restore with their size and
 * sha256 verified. See docs/snapshot.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot_internal.h"

int sv_snap_cmp_hex(const void *a, const void *b) { return memcmp(a, b, 64); }

bool sv_snap_hex_in(char (*set)[65], size_t n, const char *hex)
{
    return n && bsearch(hex, set, n, 65, sv_snap_cmp_hex) != NULL;
}

/* ---- hashing ---------------------------------------------------------------------- */

typedef struct hash_ctx {
    sv_snapshot *s;
    sv_snap_file *files;
    _Atomic int64_t *progress;
} hash_ctx;

static int hash_one(void *arg, size_t i, sv_err *err)
{
    hash_ctx *cx = arg;
    sv_snap_file *f = &cx->files[i];
    if (f->cached)
        return 0;
    if (sv_snap_stopping(cx->s))
        return sv_fail(err, SV_ECANCELED, "the server stopped while the snapshot was being created");
    int64_t size = 0;
    int rc = sv_sha256_file(f->path, f->hex, &size, cx->progress, err);
    if (rc == 0 && size != f->id.size)
        rc = sv_fail(err, SV_EIO, "%s changed size while being hashed", f->path);
    return rc;
}

int sv_snap_hash_files(sv_snapshot *s, sv_snap_file *files, size_t n, _Atomic int64_t *progress, const sv_job *job,
                       sv_err *err)
{
    hash_ctx cx = {.s = s, .files = files, .progress = progress};
    int rc = sv_pool_run(s->workers, n, hash_one, &cx, job, err);
    if (rc == SV_ECANCELED && job && sv_job_canceled(job))
        sv_fail(err, rc, "canceled by request");
    return rc;
}

/* ---- hash cache ---------------------------------------------------------------------- */

struct sv_snap_cache_entry {
    char key[700];
    char *val;
    size_t len;
    bool seen;
};

static int load_cache_entry(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    sv_snap_hash_cache *hc = ud;
    if (sv_grow(&hc->v, &hc->cap, hc->n + 1, sizeof *hc->v))
        return SV_ENOMEM;
    sv_snap_cache_entry *e = &hc->v[hc->n];
    snprintf(e->key, sizeof e->key, "%s", key);
    e->val = malloc(len + 1);
    if (!e->val)
        return SV_ENOMEM;
    memcpy(e->val, val, len);
    e->len = len;
    e->seen = false;
    hc->n++;
    return 0;
}

static int cmp_cache(const void *a, const void *b)
{
    return strcmp(((const sv_snap_cache_entry *)a)->key, ((const sv_snap_cache_entry *)b)->key);
}

int sv_snap_hash_cache_load(sv_snapshot *s, const char *collection, sv_snap_hash_cache *hc, sv_err *err)
{
    snprintf(hc->prefix, sizeof hc->prefix, "snapshot-hashes/%s/", collection);
    int rc = sv_catalog_scan(s->cat, hc->prefix, load_cache_entry, hc, err);
    if (rc == SV_ENOMEM)
        rc = sv_snap_oom(err);
    if (rc == 0 && hc->n)
        qsort(hc->v, hc->n, sizeof *hc->v, cmp_cache);
    return rc;
}

int64_t sv_snap_hash_cache_apply(sv_snap_hash_cache *hc, const sv_capture *cap, sv_snap_file *files, size_t n,
                                 _Atomic int64_t *progress)
{
    int64_t cached_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        sv_snap_file *f = &files[i];
        sv_snap_cache_entry probe;
        snprintf(probe.key, sizeof probe.key, "%s%s/%s", hc->prefix, cap->shards[f->shard].name, f->name);
        sv_snap_cache_entry *e = hc->n ? bsearch(&probe, hc->v, hc->n, sizeof *hc->v, cmp_cache) : NULL;
        if (e) {
            e->seen = true;
            if (sv_hash_cache_match(e->val, e->len, &f->id, f->hex)) {
                f->cached = true;
                cached_bytes += f->id.size;
                atomic_fetch_add(progress, f->id.size);
            }
        }
    }
    return cached_bytes;
}

void sv_snap_hash_cache_save(sv_snapshot *s, sv_snap_hash_cache *hc, const sv_capture *cap, const sv_snap_file *files,
                             size_t n)
{
    size_t nops = 0;
    sv_catalog_op *ops = calloc(n + hc->n + 1, sizeof *ops);
    char **vals = calloc(n + 1, sizeof *vals);
    char(*keys)[700] = calloc(n + 1, sizeof *keys);
    if (ops && vals && keys) {
        for (size_t i = 0; i < n; i++) {
            const sv_snap_file *f = &files[i];
            if (f->cached || !(vals[i] = sv_hash_cache_value(&f->id, f->hex)))
                continue;
            snprintf(keys[i], sizeof keys[i], "%s%s/%s", hc->prefix, cap->shards[f->shard].name, f->name);
            ops[nops++] = (sv_catalog_op){keys[i], vals[i], strlen(vals[i]), 0};
        }
        for (size_t i = 0; i < hc->n; i++)
            if (!hc->v[i].seen)
                ops[nops++] = (sv_catalog_op){hc->v[i].key, NULL, 0, 0};
        sv_err ce = {0};
        if (nops && sv_catalog_txn(s->cat, NULL, 0, ops, nops, &ce) != 0)
            sv_warn("cannot update the snapshot hash cache", "error=\"%s\"", ce.msg); /* only slower next time */
    }
    for (size_t i = 0; vals && i < n; i++)
        free(vals[i]);
    free(vals);
    free(keys);
    free(ops);
}

void sv_snap_hash_cache_free(sv_snap_hash_cache *hc)
{
    for (size_t i = 0; i < hc->n; i++)
        free(hc->v[i].val);
    free(hc->v);
    hc->v = NULL;
    hc->n = hc->cap = 0;
}

/* ---- storing ------------------------------------------------------------------------------ */

int sv_snap_store_blobs(sv_snapshot *s, const sv_snap_file *files, size_t n, _Atomic int64_t *uploaded, sv_job *job,
                        bool job_bytes, sv_err *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const sv_snap_file *f = &files[i];
        char key[80];
        sv_blob_key(f->hex, key);
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = !memcmp(files[k].hex, f->hex, 64);
        if (job)
            sv_job_add_done(job, 1, job_bytes ? f->id.size : 0);
        if (dup)
            continue;
        if (job && sv_job_canceled(job)) {
            rc = sv_fail(err, SV_ECANCELED, "canceled by request");
            break;
        }
        sv_location_info info;
        rc = sv_location_head(s->loc, key, &info, err);
        if (rc == 0 && info.size == f->id.size)
            continue;
        if (rc != 0 && rc != SV_ENOTFOUND)
            break;
        sv_snap_test_delay(s);
        if (job && sv_job_canceled(job)) {
            rc = sv_fail(err, SV_ECANCELED, "canceled by request");
            break;
        }
        if (sv_snap_stopping(s)) {
            rc = sv_fail(err, SV_ECANCELED, "the server stopped while the snapshot was being created");
            break;
        }
        rc = sv_location_put_file(s->loc, key, f->path, err);
        if (rc == 0)
            atomic_fetch_add(uploaded, f->id.size);
    }
    return rc;
}

/* ---- fetching ------------------------------------------------------------------------------ */

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
 * it (sv_location_link_to_file; a copy on another filesystem), and verified
 * by reading it back. Mutable files (MANIFEST, WAL, CURRENT, OPTIONS) are
 * always copied: RocksDB may append, and a linked file must never be
 * modified in place. s3:// restores stream every file (fetch_blob): one pass
 * that hashes while it writes. */
static bool link_blob(sv_snapshot *s, const sv_manifest_file *mf, const char *path, _Atomic int64_t *progress,
                      int *rc, sv_err *err)
{
    size_t n = strlen(mf->name);
    bool immutable = (n > 4 && !strcmp(mf->name + n - 4, ".sst")) || (n > 5 && !strcmp(mf->name + n - 5, ".blob"));
    if (!immutable || strcmp(sv_location_scheme(s->loc), "file") != 0 || !s->link_restore)
        return false;
    char key[80];
    sv_blob_key(mf->blob, key);
    sv_err e = {0};
    if (sv_location_link_to_file(s->loc, key, path, &e) != 0)
        return false; /* missing blob, local error...: the fetch path says why */
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
        rc = fs.fd < 0 ? sv_fail(err, SV_EIO, "cannot create %s: %s", path, strerror(errno)) : sv_snap_oom(err);
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

int sv_snap_restore_blob(sv_snapshot *s, const sv_manifest_shard *ms, const sv_manifest_file *mf, const char *path,
                         _Atomic int64_t *progress, sv_err *err)
{
    int rc = 0;
    if (link_blob(s, mf, path, progress, &rc, err))
        return rc;
    return fetch_blob(s, ms, mf, path, progress, err);
}
