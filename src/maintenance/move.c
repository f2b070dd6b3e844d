/* The move agent: the whole store to another location, then the node uses
 * it. Writes to the store wait while it runs (the guard answers 503), so the
 * copy is complete when the switch happens. Order: the descriptor first (so a
 * resumed move recognises its own half-filled target), then blobs, manifests
 * and checkpoints — each skipped when the target already has it with the
 * same size, each copy verified (blobs: streamed SHA-256 against the name;
 * every object: the target's size) — then the switch: the snapshot service's
 * location in memory, then one catalog write (`maintenance/location`), which
 * later starts apply before anything else. The old location is not touched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maintenance_internal.h"

/* path made absolute and canonical: symbolic links of its longest existing
 * prefix resolved, "." and ".." of the rest folded. false: cannot tell. */
static bool file_canon(const char *path, char *out, size_t n)
{
    if (path[0] != '/' || strlen(path) >= 4096)
        return false;
    char head[4096], tail[4096] = "";
    snprintf(head, sizeof head, "%s", path);
    char *real = NULL;
    for (;;) {
        real = realpath(head, NULL);
        if (real)
            break;
        char *slash = strrchr(head, '/');
        if (!slash || slash == head) {
            real = strdup("/");
            snprintf(tail, sizeof tail, "%s", path + 1);
            break;
        }
        snprintf(tail, sizeof tail, "%s", path + (slash - head) + 1);
        *slash = '\0';
    }
    if (!real)
        return false;
    /* fold the rest: segments, "." dropped, ".." pops */
    char buf[8300];
    snprintf(buf, sizeof buf, "%s", strcmp(real, "/") ? real : "");
    free(real);
    for (char *save = NULL, *seg = strtok_r(tail, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (!strcmp(seg, "."))
            continue;
        if (!strcmp(seg, "..")) {
            char *sl = strrchr(buf, '/');
            if (sl)
                *sl = '\0';
            continue;
        }
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "/%s", seg);
    }
    if (!buf[0])
        snprintf(buf, sizeof buf, "/");
    if (strlen(buf) >= n)
        return false;
    snprintf(out, n, "%s", buf);
    return true;
}

int sv_maint_move_check(sv_maintenance *m, json_t *body, sv_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "target") && strcmp(k, "parallelism"))
            return sv_fail(err, SV_EINVAL, "unknown field \"%s\" (move takes target, parallelism)", k);
    }
    const char *t = json_string_value(json_object_get(body, "target"));
    json_t *p = json_object_get(body, "parallelism");
    if (!t || (strncmp(t, "file://", 7) && strncmp(t, "s3://", 5)) || strlen(t) > 4000)
        return sv_fail(err, SV_EINVAL, "\"target\" must be a location URL: \"s3://bucket/prefix\" or \"file:///dir\"");
    if (p && (!json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 64))
        return sv_fail(err, SV_EINVAL, "\"parallelism\" must be a whole number from 1 to 64");
    pthread_mutex_lock(&m->mu);
    bool same = !strcmp(t, m->url);
    bool ok = m->desc_state == DESC_OK;
    char cur[4200];
    snprintf(cur, sizeof cur, "%s", m->url);
    pthread_mutex_unlock(&m->mu);
    if (same)
        return sv_fail(err, SV_EINVAL, "the store is already at %s", t);
    if (!strncmp(t, "file://", 7) && !strncmp(cur, "file://", 7)) {
        /* the same folder by another spelling, or one inside the other: the
         * old location must stay as it is, and a copy must not hold itself */
        char a[4200], b[4200];
        if (file_canon(t + 7, a, sizeof a) && file_canon(cur + 7, b, sizeof b)) {
            size_t la = strlen(a), lb = strlen(b);
            if (!strcmp(a, b))
                return sv_fail(err, SV_EINVAL, "the store is already at %s (%s)", t, b);
            if ((la > lb && !strncmp(a, b, lb) && a[lb] == '/') || (lb > la && !strncmp(b, a, la) && b[la] == '/'))
                return sv_fail(err, SV_EINVAL, "%s and the current location %s are inside one another: move to a "
                               "folder outside it", t, cur);
        }
    }
    if (!ok)
        return sv_fail(err, SV_ESTATE, "the location is not this store's yet (%s); adopt it with a rebuild first",
                       m->problem);
    return 0;
}

int sv_maint_move_apply(sv_maintenance *m, sv_err *err)
{
    char *v = NULL;
    size_t len = 0;
    int rc = sv_catalog_get(m->cat, MAINT_LOCATION_KEY, &v, &len, NULL, err);
    if (rc == SV_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    json_t *o = json_loadb(v, len, 0, NULL);
    free(v);
    const char *url = json_string_value(json_object_get(o, "url"));
    if (url && strcmp(url, m->url)) {
        sv_warn("the store was moved: using the location recorded by maintenance move, not the configured one",
                "location=\"%s\" configured=\"%s\"", url, m->url);
        rc = sv_snapshot_set_location(m->snap, url, err);
        if (rc == 0) {
            m->loc = sv_snapshot_location(m->snap);
            snprintf(m->url, sizeof m->url, "%s", sv_snapshot_location_url(m->snap));
        }
    }
    json_decref(o);
    return rc;
}

typedef struct obj {
    char key[400];
    int64_t size;
} obj;

typedef struct mv {
    maint_agent *a;
    sv_maintenance *m;
    sv_location *src, *dst;
    obj *batch;
    size_t n;
    int par;
    bool counting;
    int64_t counted;
    _Atomic int64_t copied, skipped, bytes, manifests, checkpoints;
    sv_err err;
} mv;

typedef struct copy_sink {
    sv_location_writer *w;
    sv_sha256_ctx *sha;
    sv_err err;
} copy_sink;

static int copy_bytes(void *ctx, const void *data, size_t len)
{
    copy_sink *c = ctx;
    if (c->sha)
        sv_sha256_update(c->sha, data, len);
    return sv_location_writer_write(c->w, data, len, &c->err);
}

static int copy_one(void *arg, size_t i, sv_err *err)
{
    mv *x = arg;
    const obj *o = &x->batch[i];
    if (sv_maint_agent_stop(x->a))
        return sv_maint_stop_error(x->a, err);
    sv_location_info info;
    sv_err e = {0};
    int rc = sv_location_head(x->dst, o->key, &info, &e);
    bool blob = !strncmp(o->key, "blobs/", 6);
    if (rc == 0 && info.size == o->size && blob) {
        atomic_fetch_add(&x->skipped, 1); /* content-addressed: same name and size is the same blob */
        return 0;
    }
    if (rc && rc != SV_ENOTFOUND) {
        *err = e;
        return rc;
    }
    copy_sink c = {0};
    const char *hex = strrchr(o->key, '/');
    hex = hex ? hex + 1 : o->key;
    if (blob && sv_sha256_valid_hex(hex) && !(c.sha = sv_sha256_new()))
        return sv_fail(err, SV_ENOMEM, "out of memory");
    rc = sv_location_writer_open(x->dst, o->key, &c.w, err);
    if (rc == 0) {
        rc = sv_location_get(x->src, o->key, 0, -1, copy_bytes, &c, err);
        if (rc && c.err.code)
            *err = c.err;
    }
    char got[65] = "";
    if (c.sha) {
        sv_sha256_final_hex(c.sha, got);
        c.sha = NULL;
    }
    if (rc == 0 && got[0] && strcmp(got, hex))
        rc = sv_fail(err, SV_ECORRUPT, "%s in the source hashes to %.16s…, not to its name: nothing was moved; run "
                                       "maintenance verify",
                     o->key, got);
    if (rc) {
        sv_location_writer_abort(c.w);
        return rc;
    }
    int64_t n = sv_location_writer_size(c.w);
    rc = sv_location_writer_commit(c.w, err);
    if (rc == 0 && (rc = sv_location_head(x->dst, o->key, &info, err)) == 0 && info.size != n)
        rc = sv_fail(err, SV_EIO, "the copy of %s at the target has %lld bytes, not %lld", o->key,
                     (long long)info.size, (long long)n);
    if (rc)
        return rc;
    atomic_fetch_add(&x->copied, 1);
    atomic_fetch_add(&x->bytes, n);
    if (!strncmp(o->key, "catalog/", 8))
        atomic_fetch_add(&x->checkpoints, 1);
    else if (!blob)
        atomic_fetch_add(&x->manifests, 1);
    return 0;
}

static int flush(mv *x)
{
    if (x->n == 0)
        return 0;
    int rc = sv_pool_run(x->par, x->n, copy_one, x, x->a->job, &x->err);
    atomic_fetch_add(&x->a->scanned, (int64_t)x->n);
    atomic_store(&x->a->bytes, atomic_load(&x->bytes));
    sv_job_set_done(x->a->job, atomic_load(&x->a->scanned), atomic_load(&x->bytes));
    x->n = 0;
    if (rc == 0)
        rc = sv_maint_lease_check(&x->a->lease, &x->err);
    if (rc == 0)
        sv_maint_test_delay(x->m);
    return rc;
}

static int on_obj(void *ctx, const sv_location_entry *e)
{
    mv *x = ctx;
    size_t l = strlen(e->key);
    if (e->is_prefix || l >= 400)
        return 0;
    if (x->counting) {
        x->counted++;
        return 0;
    }
    snprintf(x->batch[x->n].key, sizeof x->batch[x->n].key, "%s", e->key);
    x->batch[x->n].size = e->size;
    if (++x->n < 256)
        return 0;
    return flush(x);
}

int sv_maint_move_run(maint_agent *a, json_t **result, sv_err *err)
{
    sv_maintenance *m = a->m;
    const char *target = json_string_value(json_object_get(a->body, "target"));
    mv x = {.a = a, .m = m};
    x.par = (int)sv_maint_int(a->body, "parallelism", 8);
    char from[4200];
    pthread_mutex_lock(&m->mu);
    snprintf(from, sizeof from, "%s", m->url);
    char *desc = m->descriptor ? strdup(m->descriptor) : NULL;
    char sid[37];
    snprintf(sid, sizeof sid, "%s", m->store_id);
    bool ok = m->desc_state == DESC_OK;
    if (ok)
        m->moving = true;
    pthread_mutex_unlock(&m->mu);
    if (!ok || !desc) {
        free(desc);
        return sv_fail(err, SV_ESTATE, "the location is not this store's: nothing to move");
    }
    if (!strcmp(from, target)) {
        /* A resumed move that had switched before the crash. */
        pthread_mutex_lock(&m->mu);
        m->moving = false;
        pthread_mutex_unlock(&m->mu);
        free(desc);
        *result = json_pack("{s:s,s:s,s:b}", "target", target, "from", from, "alreadyMoved", true);
        return 0;
    }
    x.src = m->loc;
    int rc = sv_location_open(target, NULL, &x.dst, err);
    if (rc)
        sv_err_wrap(err, "target");
    /* The target: empty, or this store's (a resumed move). */
    if (rc == 0) {
        sv_buf b = {0};
        sv_err e = {0};
        int grc = sv_location_get_buf(x.dst, "store.json", &b, &e);
        char tid[37];
        int64_t ca;
        if (grc == 0) {
            if (sv_maint_desc_parse((const char *)b.data, b.len, tid, &ca, &e) || strcmp(tid, sid))
                rc = sv_fail(err, SV_ECONFLICT, "the target %s belongs to another store (%s); move into an empty "
                                                "location",
                             target, e.msg[0] ? e.msg : tid);
        } else if (grc == SV_ENOTFOUND) {
            x.counting = true;
            rc = sv_location_list(x.dst, "", NULL, NULL, on_obj, &x, err);
            x.counting = false;
            if (rc == 0 && x.counted > 0)
                rc = sv_fail(err, SV_ECONFLICT, "the target %s holds data but no store.json; move into an empty "
                                                "location",
                             target);
            if (rc == 0)
                rc = sv_maint_create_descriptor(x.dst, desc, err);
            x.counted = 0;
        } else {
            rc = sv_fail(err, grc, "target: %s", e.msg);
        }
        sv_buf_free(&b);
    }
    static const char *const prefixes[] = {"blobs/", "snapshots/", "tenants/", "catalog/"};
    x.counting = true;
    for (int p = 0; rc == 0 && p < 4; p++)
        rc = sv_location_list(x.src, prefixes[p], NULL, NULL, on_obj, &x, err);
    x.counting = false;
    atomic_store(&a->total, x.counted);
    sv_job_set_totals(a->job, x.counted, 0);
    x.batch = rc == 0 ? calloc(256, sizeof *x.batch) : NULL;
    if (rc == 0 && !x.batch)
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    for (int p = 0; rc == 0 && p < 4; p++) {
        rc = sv_location_list(x.src, prefixes[p], NULL, NULL, on_obj, &x, err);
        if (rc == 0)
            rc = flush(&x);
        else if (x.err.code)
            *err = x.err;
    }
    free(x.batch);
    /* The switch: memory, then the one catalog write (undone in memory if
     * that fails). */
    if (rc == 0)
        rc = sv_snapshot_set_location(m->snap, target, err);
    if (rc == 0) {
        char *v = NULL;
        json_t *o = json_pack("{s:s,s:s,s:I}", "url", target, "from", from, "movedAt", (json_int_t)sv_now_ms());
        v = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        sv_catalog_op op = {MAINT_LOCATION_KEY, v, v ? strlen(v) : 0, 0};
        rc = v ? sv_maint_lease_txn(&a->lease, &op, 1, err) : sv_fail(err, SV_ENOMEM, "out of memory");
        free(v);
        if (rc)
            sv_snapshot_set_location(m->snap, from, NULL);
    }
    pthread_mutex_lock(&m->mu);
    if (rc == 0) {
        m->loc = sv_snapshot_location(m->snap);
        snprintf(m->url, sizeof m->url, "%s", sv_snapshot_location_url(m->snap));
        m->ckpt_dirty = true; /* the new location gets its own checkpoint */
    }
    m->moving = false;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->mu);
    sv_location_close(x.dst);
    free(desc);
    if (rc)
        return rc;
    sv_info("store moved", "from=\"%s\" to=\"%s\" copied=%lld skipped=%lld", from, target,
            (long long)atomic_load(&x.copied), (long long)atomic_load(&x.skipped));
    *result = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "target", target, "from", from, "objectsCopied",
                        (json_int_t)atomic_load(&x.copied), "blobsSkipped", (json_int_t)atomic_load(&x.skipped),
                        "bytesCopied", (json_int_t)atomic_load(&x.bytes), "manifestsCopied",
                        (json_int_t)atomic_load(&x.manifests), "checkpointsCopied",
                        (json_int_t)atomic_load(&x.checkpoints), "durationMs",
                        (json_int_t)(sv_now_ms() - a->started_ms));
    return *result ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
}
