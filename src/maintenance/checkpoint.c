/* Catalog checkpoints: the location-related part of the catalog (snapshot
 * records; offloaded tenants and export ids once their services expose them)
 * as {location}/catalog/{YYYYMMDDTHHMMSSmmmZ}.json.zst, written after a
 * snapshot commit or drop, coalesced to at most one per
 * SHARDVAULT_CATALOG_CHECKPOINT_INTERVAL; the newest 5 are kept. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "maintenance_internal.h"

#define KEEP 5

void sv_maint_ckpt_changed(void *ud)
{
    sv_maintenance *m = ud;
    pthread_mutex_lock(&m->mu);
    m->ckpt_dirty = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->mu);
}

typedef struct key_vec {
    char (*v)[128];
    size_t n, cap;
} key_vec;

static int collect_ckpt(void *ctx, const sv_location_entry *e)
{
    key_vec *kv = ctx;
    size_t l = strlen(e->key);
    if (e->is_prefix || l >= 128 || l < 17 || strcmp(e->key + l - 9, ".json.zst"))
        return 0;
    if (sv_grow(&kv->v, &kv->cap, kv->n + 1, sizeof *kv->v))
        return SV_ENOMEM;
    snprintf(kv->v[kv->n++], 128, "%s", e->key);
    return 0;
}

int sv_maint_ckpt_write(sv_maintenance *m, char key_out[128], sv_err *err)
{
    json_t *recs = NULL;
    int rc = sv_snapshot_records(m->snap, &recs, err);
    if (rc)
        return rc;
    int64_t now = sv_now_ms();
    pthread_mutex_lock(&m->mu);
    json_t *doc = json_pack("{s:i,s:s,s:s,s:I,s:o,s:[],s:[],s:{}}", "format_version", MAINT_FORMAT, "kind",
                            "shardvault.catalog-checkpoint", "storeId", m->store_id, "createdAt", (json_int_t)now,
                            "snapshots", recs, "tenants", "exports", "collections");
    pthread_mutex_unlock(&m->mu);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    size_t n = strlen(text), bound = ZSTD_compressBound(n);
    void *z = malloc(bound);
    size_t zn = z ? ZSTD_compress(z, bound, text, n, 3) : 0;
    free(text);
    if (!z || ZSTD_isError(zn)) {
        free(z);
        return sv_fail(err, SV_ENOMEM, "cannot compress the checkpoint");
    }
    time_t t = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char key[128];
    snprintf(key, sizeof key, "catalog/%04d%02d%02dT%02d%02d%02d%03dZ.json.zst", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now % 1000));
    rc = sv_location_put(m->loc, key, z, zn, err);
    free(z);
    if (rc)
        return rc;
    if (key_out)
        snprintf(key_out, 128, "%s", key);
    /* Prune: keep the newest KEEP. */
    key_vec kv = {0};
    sv_err e = {0};
    if (sv_location_list(m->loc, "catalog/", NULL, NULL, collect_ckpt, &kv, &e) == 0 && kv.n > KEEP) {
        const char **del = malloc((kv.n - KEEP) * sizeof *del);
        for (size_t i = 0; del && i < kv.n - KEEP; i++)
            del[i] = kv.v[i];
        if (del && sv_location_delete_many(m->loc, del, kv.n - KEEP, &e))
            sv_warn("checkpoint prune failed", "error=\"%s\"", e.msg);
        free(del);
    }
    free(kv.v);
    pthread_mutex_lock(&m->mu);
    m->ckpt_last_ms = now;
    snprintf(m->ckpt_last_key, sizeof m->ckpt_last_key, "%s", key);
    pthread_mutex_unlock(&m->mu);
    atomic_fetch_add(&m->m_checkpoints, 1);
    sv_debug("catalog checkpoint written", "key=%s bytes=%zu", key, zn);
    return 0;
}

int sv_maint_ckpt_newest(sv_maintenance *m, char key[128], int64_t *at_ms, json_t **doc, sv_err *err)
{
    key[0] = '\0';
    *doc = NULL;
    *at_ms = 0;
    key_vec kv = {0};
    int rc = sv_location_list(m->loc, "catalog/", NULL, NULL, collect_ckpt, &kv, err);
    if (rc || kv.n == 0) {
        free(kv.v);
        return rc;
    }
    snprintf(key, 128, "%s", kv.v[kv.n - 1]);
    free(kv.v);
    sv_buf b = {0};
    rc = sv_location_get_buf(m->loc, key, &b, err);
    unsigned long long size = rc == 0 ? ZSTD_getFrameContentSize(b.data, b.len) : 0;
    if (rc == 0 && (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > (1ULL << 32)))
        rc = sv_fail(err, SV_ECORRUPT, "checkpoint %s is not a zstd frame with a known size", key);
    char *text = rc == 0 ? malloc(size + 1) : NULL;
    if (rc == 0 && !text)
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    if (rc == 0) {
        size_t got = ZSTD_decompress(text, size, b.data, b.len);
        if (ZSTD_isError(got) || got != size)
            rc = sv_fail(err, SV_ECORRUPT, "checkpoint %s does not decompress", key);
    }
    if (rc == 0) {
        *doc = json_loadb(text, size, 0, NULL);
        if (!*doc || json_integer_value(json_object_get(*doc, "format_version")) != MAINT_FORMAT ||
            !json_is_array(json_object_get(*doc, "snapshots"))) {
            json_decref(*doc);
            *doc = NULL;
            rc = sv_fail(err, SV_ECORRUPT, "checkpoint %s is not a format_version %d checkpoint", key, MAINT_FORMAT);
        } else {
            *at_ms = json_integer_value(json_object_get(*doc, "createdAt"));
        }
    }
    free(text);
    sv_buf_free(&b);
    return rc;
}

void *sv_maint_ckpt_loop(void *arg)
{
    sv_maintenance *m = arg;
    /* lastCheckpoint survives a restart: the newest one already in the
     * location (listed here, off the start path, so a slow bucket does not
     * delay the server). */
    key_vec kv = {0};
    sv_err le = {0};
    if (sv_location_list(m->loc, "catalog/", NULL, NULL, collect_ckpt, &kv, &le) == 0 && kv.n > 0) {
        pthread_mutex_lock(&m->mu);
        if (!m->ckpt_last_key[0])
            snprintf(m->ckpt_last_key, sizeof m->ckpt_last_key, "%s", kv.v[kv.n - 1]);
        pthread_mutex_unlock(&m->mu);
    }
    free(kv.v);
    pthread_mutex_lock(&m->mu);
    while (!m->stopping) {
        sv_cond_wait_ms(&m->cond, &m->mu, 200);
        if (m->stopping)
            break;
        bool due = m->ckpt_dirty && m->desc_state == DESC_OK && !m->moving &&
                   sv_now_ms() - m->ckpt_last_ms >= m->ckpt_interval_ms;
        if (!due)
            continue;
        m->ckpt_dirty = false;
        pthread_mutex_unlock(&m->mu);
        sv_err e = {0};
        if (sv_maint_ckpt_write(m, NULL, &e)) {
            sv_warn("catalog checkpoint failed", "error=\"%s\"", e.msg);
            pthread_mutex_lock(&m->mu);
            m->ckpt_dirty = true;
            m->ckpt_last_ms = sv_now_ms(); /* retry after an interval */
            continue;
        }
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int sv_maintenance_checkpoint(sv_maintenance *m, json_t **out, sv_err *err)
{
    int rc = sv_maint_guard(m, err);
    char key[128];
    if (rc == 0)
        rc = sv_maint_ckpt_write(m, key, err);
    if (rc == 0)
        *out = json_pack("{s:s}", "key", key);
    return rc;
}
