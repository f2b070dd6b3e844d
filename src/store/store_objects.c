/* store — objects: put, get, delete, list. */

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "store_internal.h"

/* Fresh shards. Every lookup probes each file of L0, and bulk loads stack
 * files there, so lookups grow with them (measured: 88 ms per 62k objects
 * with no file, 460 ms with eight). A shard written while empty (count 0)
 * gets a fresh record: Bloom filters of every key written since, and the
 * db's sequence number after the last write. Every write of a shard takes
 * write_mu and notes its keys (fresh_note), so while that number is
 * unchanged the shard holds no key the filters do not know: such a key is
 * absent without a lookup; a "maybe" is looked up (deletes leave "maybe"s,
 * which the lookup answers). A number that moved (a writer that did not
 * note) drops the record: lookups again. Filters grow geometrically (few
 * to probe); past FRESH_MAX_KEYS the record is dropped, bounding its
 * memory (3 bytes per key) whatever the shard's size. Dropped when the db
 * closes. */
#define FRESH_MAX_KEYS (16u << 20)
/* The first filter holds 4096 keys (12 KiB: thousands of small fresh
 * tenants cost little), each next one 4 times the last (few to probe). */
#define FRESH_MIN_CAP 4096u

typedef struct fresh_filter {
    sv_bloom b;
    size_t cap, n;
} fresh_filter;

typedef struct store_fresh {
    fresh_filter *f;
    size_t n, cap;
    size_t keys;
    uint64_t seq;
} store_fresh;

void store_fresh_drop(shard *s)
{
    if (!s->fresh)
        return;
    for (size_t i = 0; i < s->fresh->n; i++)
        sv_bloom_free(&s->fresh->f[i].b);
    free(s->fresh->f);
    free(s->fresh);
    s->fresh = NULL;
}

/* Before a write, under write_mu: the record still valid, or started on an
 * empty shard, or NULL (look keys up). */
static store_fresh *fresh_begin(shard *s)
{
    if (s->fresh && sv_db_latest_seq(s->db) != s->fresh->seq)
        store_fresh_drop(s); /* something wrote without noting its keys */
    if (!s->fresh && s->objects == 0 && (s->fresh = calloc(1, sizeof *s->fresh)))
        s->fresh->seq = sv_db_latest_seq(s->db);
    return s->fresh;
}

/* The filters' hash of a key. */
static inline uint64_t fresh_hash(const sv_uuid *id) { return sv_hash64(id->b, 16); }

/* false: the key (its fresh_hash h) is certainly not in the shard. */
static bool fresh_maybe(const store_fresh *fr, uint64_t h)
{
    for (size_t i = 0; i < fr->n; i++)
        if (sv_bloom_maybe(&fr->f[i].b, h))
            return true;
    return false;
}

/* A key asked a little later: its filter blocks start loading now (each
 * filter is a cache miss per key otherwise). */
static void fresh_prefetch(const store_fresh *fr, uint64_t h)
{
    for (size_t i = 0; i < fr->n; i++)
        sv_bloom_prefetch(&fr->f[i].b, h);
}

/* After a successful write of items' keys (or a delete: n = 0), under
 * write_mu; hs: their fresh_hash when the caller has them, or NULL. Dropped
 * when out of memory or past the bound. */
static void fresh_note(shard *s, const pending *items, const uint64_t *hs, size_t n)
{
    store_fresh *fr = s->fresh;
    if (!fr)
        return;
    if (fr->keys + n > FRESH_MAX_KEYS) {
        store_fresh_drop(s);
        return;
    }
    fresh_filter *last = fr->n ? &fr->f[fr->n - 1] : NULL;
    if (n && (!last || last->n + n > last->cap)) {
        size_t cap = last ? last->cap * 4 : FRESH_MIN_CAP;
        if (cap < n)
            cap = n;
        if (sv_grow(&fr->f, &fr->cap, fr->n + 1, sizeof *fr->f) || sv_bloom_init(&fr->f[fr->n].b, cap)) {
            store_fresh_drop(s);
            return;
        }
        fr->f[fr->n].cap = cap;
        fr->f[fr->n].n = 0;
        last = &fr->f[fr->n++];
    }
    for (size_t i = 0; i < n; i++)
        sv_bloom_add(&last->b, hs ? hs[i] : fresh_hash(&items[i].id));
    if (last)
        last->n += n;
    fr->keys += n;
    fr->seq = sv_db_latest_seq(s->db);
}

/* The stored form of an object that replaces old: its encoding enc with
 * old's creation time (decoding our own encoding is exact), in re; enc as
 * it is when old's time cannot be read. Frees old. */
static void replaced_value(const collection *c, sv_record *scratch, const sv_uuid *id, char *old, size_t oldlen,
                           const void *enc, size_t len, sv_buf *re, const void **val, size_t *vlen)
{
    int64_t created = 0;
    if (sv_record_decode(scratch, c->schema, old, oldlen, NULL) == 0)
        created = scratch->creation_time;
    free(old);
    *val = enc;
    *vlen = len;
    sv_buf_reset(re);
    if (created && sv_record_decode(scratch, c->schema, enc, len, NULL) == 0) {
        scratch->id = *id;
        scratch->has_id = true;
        scratch->creation_time = created;
        if (sv_record_encode(scratch, c->schema, re, NULL) == 0) {
            *val = re->data;
            *vlen = re->len;
        }
    }
}

/* Writes encoded records to one shard atomically, keeping creation times of
 * replaced objects and the exact object count. Caller is inside the shard. */
int store_write_objects(sv_store *st, const collection *c, shard *s, pending *items, size_t n, sv_buf *enc,
                         sv_record *scratch, sv_err *err)
{
    return store_write_objects_ex(st, c, s, items, n, enc, scratch, false, NULL, err);
}

int store_write_objects_ex(sv_store *st, const collection *c, shard *s, pending *items, size_t n, sv_buf *enc,
                           sv_record *scratch, bool try_lock, uint8_t *kept, sv_err *err)
{
    sv_db_batch *b = sv_db_batch_new();
    /* Ids already in this group (a later one replaces an earlier one and
     * must not be counted twice): open addressing over item indexes + 1. */
    size_t slots = 16;
    while (slots < 2 * n)
        slots *= 2;
    uint32_t *seen = calloc(slots, sizeof *seen);
    if (!b || !seen) {
        sv_db_batch_free(b);
        free(seen);
        return store_oom(err);
    }
    if (try_lock) {
        if (pthread_mutex_trylock(&s->write_mu) != 0) {
            sv_db_batch_free(b);
            free(seen);
            return 1;
        }
    } else {
        pthread_mutex_lock(&s->write_mu);
    }
    int64_t added = 0;
    size_t nkept = 0;
    int rc = 0;
    sv_buf re = {0};
    store_fresh *fr = fresh_begin(s);
    for (size_t i = 0; i < n && rc == 0; i++) {
        pending *p = &items[i];
        bool seen_in_batch = false;
        uint64_t h;
        memcpy(&h, p->id.b + 8, 8); /* v4 UUIDs are random here */
        for (size_t k = h & (slots - 1);; k = (k + 1) & (slots - 1)) {
            if (!seen[k]) {
                seen[k] = (uint32_t)i + 1;
                break;
            }
            if (memcmp(items[seen[k] - 1].id.b, p->id.b, 16) == 0) {
                seen_in_batch = true;
                break;
            }
        }
        char *old = NULL;
        size_t oldlen = 0;
        if (kept && seen_in_batch) {
            kept[i] = 1; /* held by its earlier add (written, or held itself) */
            nkept++;
            continue;
        }
        int g = seen_in_batch || (fr && !fresh_maybe(fr, fresh_hash(&p->id)))
                    ? SV_ENOTFOUND
                    : sv_db_get_ex(s->db, p->id.b, 16, true, &old, &oldlen, err);
        if (g == 0 && kept) {
            free(old);
            kept[i] = 1;
            nkept++;
        } else if (g == 0) {
            const void *val;
            size_t vlen;
            replaced_value(c, scratch, &p->id, old, oldlen, enc->data + p->enc_off, p->enc_len, &re, &val, &vlen);
            sv_db_batch_put(b, p->id.b, 16, val, vlen);
        } else if (g == SV_ENOTFOUND) {
            if (!seen_in_batch)
                added++;
            sv_db_batch_put(b, p->id.b, 16, enc->data + p->enc_off, p->enc_len);
        } else {
            rc = g;
        }
    }
    sv_buf_free(&re);
    if (rc == 0) {
        int64_t count = s->objects + added;
        sv_db_batch_put(b, STORE_COUNT_KEY, STORE_COUNT_KEY_LEN, &count, 8);
        rc = sv_db_write(s->db, b, st->sync, err);
        if (rc == 0) {
            s->objects = count;
            atomic_fetch_add(&st->objects_written, (long long)(n - nkept));
            fresh_note(s, items, NULL, n);
        } else {
            store_fresh_drop(s); /* the write may have happened */
        }
    }
    pthread_mutex_unlock(&s->write_mu);
    sv_db_batch_free(b);
    free(seen);
    return rc;
}

/* Bulk write protocol (one shard, one group):
 *   1. Under write_mu (no other writer of the shard meanwhile), each id in
 *      key order is looked up as store_write_objects_ex does (count, and the
 *      creation time of a replaced object) and its encoding is appended to a
 *      table file under tmp/, the new count last (its key sorts after every
 *      object key).
 *   2. The file is fsynced and ingested: RocksDB adds it atomically, newer
 *      than everything in the shard, durable once ingest returns. Only then
 *      does the cached count change.
 * A crash before 2 completes leaves a file under tmp/ (swept at start) and
 * the shard as it was. The shard is switched to bulk mode (no automatic
 * compaction) on its first bulk write; sv_store_bulk_done switches it back.
 */
int store_bulk_write_objects(sv_store *st, const collection *c, shard *s, const pending *items,
                             const uint8_t *const *vals, size_t n, sv_record *scratch, uint8_t *kept, sv_err *err)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/bulk-%llu.sst", st->tmp_dir,
             (unsigned long long)atomic_fetch_add(&st->bulk_seq, 1));
    sv_db_sst *w = NULL;
    sv_buf re = {0};
    pthread_mutex_lock(&s->write_mu);
    int rc = 0;
    if (!s->bulk && (rc = sv_db_set_bulk(s->db, true, err)) == 0)
        s->bulk = true;
    store_fresh *fr = fresh_begin(s);
    /* each key's filter hash, once: prefetched 8 ahead, probed, then noted
     * (without memory for them the filters go: every key is looked up) */
    uint64_t *hs = fr ? malloc((n ? n : 1) * sizeof *hs) : NULL;
    if (fr && !hs) {
        store_fresh_drop(s);
        fr = NULL;
    }
    for (size_t i = 0; hs && i < n; i++)
        hs[i] = fresh_hash(&items[i].id);
    if (rc == 0)
        rc = sv_db_sst_open(st->engine, path, &w, err);
    int64_t added = 0;
    size_t nkept = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const pending *p = &items[i];
        if (kept && i > 0 && memcmp(items[i - 1].id.b, p->id.b, 16) == 0) {
            kept[i] = 1; /* held by the first of its id (written, or held itself) */
            nkept++;
            continue;
        }
        if (!kept && i + 1 < n && memcmp(items[i + 1].id.b, p->id.b, 16) == 0)
            continue; /* a later object with the same id replaces this one */
        const void *val = vals[i];
        size_t vlen = p->enc_len;
        if (fr && i + 8 < n)
            fresh_prefetch(fr, hs[i + 8]);
        if (i + 4 < n) {
            /* values are visited in key order, not where they lie: bring
             * the one 4 ahead in while this one is copied into its block */
            const uint8_t *ahead = vals[i + 4];
            for (size_t o = 0; o < items[i + 4].enc_len; o += 64)
                __builtin_prefetch(ahead + o);
        }
        char *old = NULL;
        size_t oldlen = 0;
        int g = fr && !fresh_maybe(fr, hs[i])
                    ? SV_ENOTFOUND
                    : sv_db_get_ex(s->db, p->id.b, 16, true, &old, &oldlen, err);
        if (g == SV_ENOTFOUND) {
            added++;
        } else if (g == 0 && kept) {
            free(old);
            kept[i] = 1;
            nkept++;
            continue;
        } else if (g == 0) {
            replaced_value(c, scratch, &p->id, old, oldlen, vals[i], p->enc_len, &re, &val, &vlen);
        } else {
            rc = g;
            break;
        }
        rc = sv_db_sst_put(w, p->id.b, 16, val, vlen, err);
    }
    int64_t count = s->objects + added;
    if (rc == 0)
        rc = sv_db_sst_put(w, STORE_COUNT_KEY, STORE_COUNT_KEY_LEN, &count, 8, err);
    if (rc == 0)
        rc = sv_db_sst_finish(w, err);
    sv_db_sst_free(w);
    if (rc == 0) {
        const char *paths[1] = {path};
        rc = sv_db_ingest(s->db, paths, 1, err);
    }
    if (rc == 0) {
        s->objects = count;
        atomic_fetch_add(&st->objects_written, (long long)(n - nkept));
        fresh_note(s, items, hs, n);
    } else {
        store_fresh_drop(s); /* the ingest may have happened */
    }
    pthread_mutex_unlock(&s->write_mu);
    free(hs);
    if (rc)
        unlink(path); /* a table file never ingested (gone already when it was) */
    sv_buf_free(&re);
    return rc;
}

void sv_store_bulk_done(sv_store *st, const char *collection_name)
{
    store_recycle_clear(st);
    collection *c = store_coll_acquire(st, collection_name, strlen(collection_name));
    if (!c)
        return;
    if (c->schema->multi_tenancy)
        pthread_rwlock_rdlock(&c->tenants_lock);
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = c->shards[i];
        pthread_rwlock_rdlock(&s->use);
        pthread_mutex_lock(&s->write_mu);
        sv_err err = {0};
        if (s->db && s->bulk) {
            if (sv_db_set_bulk(s->db, false, &err) == 0)
                s->bulk = false;
            else
                sv_warn("bulk mode not ended", "shard=\"%s\" error=\"%s\"", s->name, err.msg);
        }
        pthread_mutex_unlock(&s->write_mu);
        pthread_rwlock_unlock(&s->use);
    }
    if (c->schema->multi_tenancy)
        pthread_rwlock_unlock(&c->tenants_lock);
    store_coll_release(st, c);
}

int store_parse_uuid_arg(const char *s, sv_uuid *u, sv_err *err)
{
    if (!s || sv_uuid_parse(s, strlen(s), u) != 0)
        return sv_fail(err, SV_EINVAL, "'%.64s' is not a valid UUID (expected the form 8-4-4-4-12 hex digits)",
                       s ? s : "");
    return 0;
}

int sv_store_put_object(sv_store *st, const char *collection_name, const char *path_id, const char *query_tenant,
                        const char *json, size_t len, sv_buf *out, sv_err *err)
{
    collection *c;
    int rc = store_coll_get(st, collection_name, &c, err);
    if (rc)
        return rc;
    sv_record *r = sv_record_new();
    sv_record *scratch = sv_record_new();
    sv_object_route route_info = {0};
    sv_buf enc = {0};
    shard *s = NULL;
    if (!r || !scratch) {
        rc = store_oom(err);
        goto done;
    }
    if ((rc = sv_record_parse_json(r, c->schema, json, len, &route_info, err)) != 0)
        goto done;
    if (route_info.collection.len &&
        (route_info.collection.len != strlen(c->name) || memcmp(route_info.collection.ptr, c->name, route_info.collection.len))) {
        rc = sv_fail(err, SV_EINVAL, "the body names collection '%.*s' but the URL names '%s'",
                     (int)(route_info.collection.len > 128 ? 128 : route_info.collection.len),
                     route_info.collection.ptr, c->name);
        goto done;
    }
    if (path_id) {
        sv_uuid pid;
        if ((rc = store_parse_uuid_arg(path_id, &pid, err)) != 0)
            goto done;
        if (r->has_id && sv_uuid_cmp(&pid, &r->id) != 0) {
            rc = sv_fail(err, SV_EINVAL, "the id in the body differs from the id in the URL");
            goto done;
        }
        r->id = pid;
        r->has_id = true;
    }
    if (!r->has_id) {
        sv_uuid_v4(&r->id);
        r->has_id = true;
    }
    const char *tenant = route_info.tenant.ptr;
    size_t tlen = route_info.tenant.len;
    if (query_tenant && *query_tenant) {
        if (tlen && (tlen != strlen(query_tenant) || memcmp(tenant, query_tenant, tlen))) {
            rc = sv_fail(err, SV_EINVAL, "the body's tenant differs from ?tenant=%.64s", query_tenant);
            goto done;
        }
        tenant = query_tenant;
        tlen = strlen(query_tenant);
    }
    if ((rc = store_route(c, &r->id, tenant, tlen, &s, err)) != 0)
        goto done;
    r->creation_time = r->update_time = sv_now_ms();
    if ((rc = sv_record_encode(r, c->schema, &enc, err)) != 0)
        goto done;
    if ((rc = store_write_enter(st, c, s, err)) != 0)
        goto done;
    pending p = {.id = r->id, .enc_off = 0, .enc_len = enc.len};
    rc = store_write_objects(st, c, s, &p, 1, &enc, scratch, err);
    if (rc == 0) {
        char *stored = NULL;
        size_t slen = 0;
        rc = sv_db_get(s->db, r->id.b, 16, &stored, &slen, err);
        if (rc == 0)
            rc = sv_record_decode(scratch, c->schema, stored, slen, err);
        if (rc == 0) {
            scratch->id = r->id;
            rc = sv_record_to_json(scratch, c->schema, c->name, c->schema->multi_tenancy ? s->name : NULL, out);
        }
        free(stored);
    }
    store_write_leave(s);
done:
    sv_buf_free(&enc);
    sv_record_free(r);
    sv_record_free(scratch);
    store_coll_release(st, c);
    return rc;
}

int sv_store_put_encoded(sv_store *st, const char *collection_name, const char *tenant, const sv_uuid *id,
                         const void *val, size_t len, sv_err *err)
{
    collection *c;
    int rc = store_coll_get(st, collection_name, &c, err);
    if (rc)
        return rc;
    shard *s;
    sv_buf enc = {0};
    sv_record *scratch = sv_record_new();
    if (!scratch || sv_buf_append(&enc, val, len))
        rc = store_oom(err);
    if (rc == 0 && (rc = store_route(c, id, tenant, tenant ? strlen(tenant) : 0, &s, err)) == 0 &&
        (rc = store_write_enter(st, c, s, err)) == 0) {
        pending p = {.id = *id, .enc_off = 0, .enc_len = len};
        rc = store_write_objects(st, c, s, &p, 1, &enc, scratch, err);
        store_write_leave(s);
    }
    sv_record_free(scratch);
    sv_buf_free(&enc);
    store_coll_release(st, c);
    return rc;
}

int sv_store_get_object(sv_store *st, const char *collection_name, const char *tenant, const char *id, sv_buf *out,
                        sv_err *err)
{
    sv_uuid u;
    int rc = store_parse_uuid_arg(id, &u, err);
    if (rc)
        return rc;
    collection *c;
    if ((rc = store_coll_get(st, collection_name, &c, err)) != 0)
        return rc;
    shard *s;
    if ((rc = store_route(c, &u, tenant, tenant ? strlen(tenant) : 0, &s, err)) == 0 &&
        (rc = store_shard_enter(st, c, s, err)) == 0) {
        char *val = NULL;
        size_t vlen = 0;
        rc = sv_db_get(s->db, u.b, 16, &val, &vlen, err);
        if (rc == SV_ENOTFOUND)
            rc = sv_fail(err, SV_ENOTFOUND, "object %s not found in collection '%s'", id, c->name);
        sv_record *r = rc == 0 ? sv_record_new() : NULL;
        if (rc == 0 && !r)
            rc = store_oom(err);
        if (rc == 0 && (rc = sv_record_decode(r, c->schema, val, vlen, err)) == 0) {
            r->id = u;
            rc = sv_record_to_json(r, c->schema, c->name, c->schema->multi_tenancy ? s->name : NULL, out);
        }
        sv_record_free(r);
        free(val);
        store_shard_leave(s);
    }
    store_coll_release(st, c);
    return rc;
}

int sv_store_delete_object(sv_store *st, const char *collection_name, const char *tenant, const char *id, sv_err *err)
{
    sv_uuid u;
    int rc = store_parse_uuid_arg(id, &u, err);
    if (rc)
        return rc;
    collection *c;
    if ((rc = store_coll_get(st, collection_name, &c, err)) != 0)
        return rc;
    shard *s;
    if ((rc = store_route(c, &u, tenant, tenant ? strlen(tenant) : 0, &s, err)) == 0 &&
        (rc = store_write_enter(st, c, s, err)) == 0) {
        pthread_mutex_lock(&s->write_mu);
        char *val = NULL;
        size_t vlen;
        rc = sv_db_get(s->db, u.b, 16, &val, &vlen, err);
        free(val);
        if (rc == SV_ENOTFOUND) {
            rc = sv_fail(err, SV_ENOTFOUND, "object %s not found in collection '%s'", id, c->name);
        } else if (rc == 0) {
            sv_db_batch *b = sv_db_batch_new();
            int64_t count = s->objects - 1;
            sv_db_batch_delete(b, u.b, 16);
            sv_db_batch_put(b, STORE_COUNT_KEY, STORE_COUNT_KEY_LEN, &count, 8);
            store_fresh *fr = fresh_begin(s); /* a delete adds no key: only the number moves */
            rc = sv_db_write(s->db, b, st->sync, err);
            sv_db_batch_free(b);
            if (rc == 0) {
                s->objects = count;
                atomic_fetch_add(&st->objects_deleted, 1);
                if (fr)
                    fresh_note(s, NULL, NULL, 0);
            } else {
                store_fresh_drop(s);
            }
        }
        pthread_mutex_unlock(&s->write_mu);
        store_write_leave(s);
    }
    store_coll_release(st, c);
    return rc;
}

/* The shards a listing merges: every fixed shard, or the one tenant. */
static int list_shards_of(const sv_store *st, const collection *c, const char *tenant, shard ***out, size_t *n, sv_err *err)
{
    *out = NULL;
    *n = 0;
    if (c->schema->multi_tenancy) {
        shard *s;
        static const sv_uuid zero;
        int rc = store_route(c, &zero, tenant, tenant ? strlen(tenant) : 0, &s, err);
        if (rc)
            return rc;
        if (!(*out = malloc(sizeof **out)))
            return store_oom(err);
        (*out)[0] = s;
        *n = 1;
        return 0;
    }
    if (tenant && *tenant)
        return sv_fail(err, SV_EINVAL, "collection '%s' is not multi-tenant; remove ?tenant=", c->name);
    if (!(*out = malloc((c->nshards + 1) * sizeof **out)))
        return store_oom(err);
    /* With placement, this node's shards only: the server merges the
     * other nodes' pages (docs/cluster.md). */
    for (size_t i = 0; i < c->nshards; i++)
        if (store_shard_local(st, c->shards[i]))
            (*out)[(*n)++] = c->shards[i];
    return 0;
}

/* Positions an iterator on the first object after `after` (or the first). */
static void list_seek(sv_db_iter *it, const sv_uuid *after)
{
    if (!after) {
        sv_db_iter_seek_first(it);
        return;
    }
    sv_db_iter_seek(it, after->b, 16);
    size_t kl;
    const char *k = sv_db_iter_valid(it) ? sv_db_iter_key(it, &kl) : NULL;
    if (k && kl == 16 && memcmp(k, after->b, 16) == 0)
        sv_db_iter_next(it);
}

/* The iterator holding the smallest object id, or -1 when all are done
 * (bookkeeping keys sort after every object and end a shard's scan). */
static int list_next_shard(sv_db_iter **its, size_t n)
{
    int best = -1;
    const char *bestk = NULL;
    for (size_t i = 0; i < n; i++) {
        size_t kl;
        if (!sv_db_iter_valid(its[i]))
            continue;
        const char *k = sv_db_iter_key(its[i], &kl);
        if (kl != 16)
            continue;
        if (!bestk || memcmp(k, bestk, 16) < 0) {
            bestk = k;
            best = (int)i;
        }
    }
    return best;
}

/* Merges the shards' ordered scans into out until limit objects or the
 * store's page byte budget (at least one object). *last is the last id
 * written, *more whether objects remain after it. */
static int list_page(sv_store *st, const collection *c, shard **shards, sv_db_iter **its, size_t n, int limit,
                     sv_buf *out, sv_uuid *last, bool *more, sv_err *err)
{
    sv_record *r = sv_record_new();
    if (!r)
        return store_oom(err);
    size_t start = out->len;
    int emitted = 0, rc = 0, best = -1;
    while (rc == 0) {
        best = list_next_shard(its, n);
        if (best < 0)
            break;
        /* Stop at the count, or once the page has reached its byte budget:
         * the page holds whole objects, so it may pass the budget by one. */
        if (emitted == limit || (emitted && (int64_t)(out->len - start) >= st->list_page_bytes))
            break;
        size_t kl, vl;
        const char *k = sv_db_iter_key(its[best], &kl);
        const char *v = sv_db_iter_value(its[best], &vl);
        memcpy(last->b, k, 16);
        if ((rc = sv_record_decode(r, c->schema, v, vl, err)) != 0)
            break;
        r->id = *last;
        if (emitted && sv_buf_putc(out, ','))
            rc = store_oom(err);
        if (rc == 0)
            rc = sv_record_to_json(r, c->schema, c->name, c->schema->multi_tenancy ? shards[best]->name : NULL, out);
        sv_db_iter_next(its[best]);
        emitted++;
    }
    sv_record_free(r);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = sv_db_iter_status(its[i], err);
    *more = rc == 0 && best >= 0;
    return rc;
}

int sv_store_list_objects(sv_store *st, const char *collection_name, const char *tenant, const char *after, int limit,
                          sv_buf *out, sv_err *err)
{
    if (limit <= 0 || limit > 10000)
        return sv_fail(err, SV_EINVAL, "limit must be between 1 and 10000");
    sv_uuid start = {{0}};
    bool has_after = after && *after;
    int rc = has_after ? store_parse_uuid_arg(after, &start, err) : 0;
    if (rc)
        return sv_err_wrap(err, "after");
    collection *c;
    if ((rc = store_coll_get(st, collection_name, &c, err)) != 0)
        return rc;
    shard **shards = NULL;
    size_t n = 0;
    rc = list_shards_of(st, c, tenant, &shards, &n, err);
    sv_db_iter **its = rc == 0 ? calloc(n + 1, sizeof *its) : NULL;
    size_t entered = 0;
    if (rc == 0 && !its)
        rc = store_oom(err);
    for (; rc == 0 && entered < n; entered++) {
        if ((rc = store_shard_enter(st, c, shards[entered], err)) != 0)
            break;
        if (!(its[entered] = sv_db_iter_new(shards[entered]->db))) {
            store_shard_leave(shards[entered]);
            rc = store_oom(err);
            break;
        }
        list_seek(its[entered], has_after ? &start : NULL);
    }
    if (rc == 0)
        rc = sv_buf_append_str(out, "{\"objects\":[") ? store_oom(err) : 0;
    sv_uuid last;
    bool more = false;
    if (rc == 0)
        rc = list_page(st, c, shards, its, n, limit, out, &last, &more, err);
    if (rc == 0 && more) {
        /* A next cursor only when more objects follow. */
        char s[37];
        sv_uuid_format(&last, s);
        rc = sv_buf_printf(out, "],\"next\":\"%s\"}", s) ? store_oom(err) : 0;
    } else if (rc == 0) {
        rc = sv_buf_append_str(out, "],\"next\":null}") ? store_oom(err) : 0;
    }
    for (size_t i = 0; i < entered; i++) {
        sv_db_iter_free(its[i]);
        store_shard_leave(shards[i]);
    }
    free(its);
    free(shards);
    store_coll_release(st, c);
    return rc;
}
