/* store — batch import. */

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

/* ---- batch -------------------------------------------------------------- */

#define BATCH_GROUP_OBJECTS 1024
#define BATCH_GROUP_BYTES (8u << 20)

typedef struct result {
    sv_uuid id;  /* when has_id (formatted only for the answer and errors) */
    bool has_id;
    char *error; /* NULL = ok; SV_BATCH_EXISTS itself (not a copy) for a held id */
} result;

typedef struct group_item {
    collection *c;
    shard *s;
    pending p;
    uint32_t seg; /* 0: p.enc_off is in b->enc; k: in b->segs[k - 1] (absorbed batches) */
} group_item;

struct sv_batch {
    sv_store *st;
    result *results;
    size_t nresults, capresults;
    group_item *items;
    size_t nitems, capitems;
    sv_buf enc;
    sv_buf *segs; /* encodings of absorbed batches, kept where they are */
    size_t nsegs;
    sv_record *rec, *scratch;
    size_t written;        /* objects flushed to their shards so far */
    collection *cached[8]; /* acquired collections, released at the end */
    size_t ncached;
    int oom;
    sv_batch_check_fn check; /* may this object be written? (auth) */
    void *check_ud;
    sv_batch_moved_fn moved; /* an object whose shard moved away (cluster moves) */
    void *moved_ud;
    size_t bulk; /* > 0: written once, at the end, as table files of at least this many (store.h) */
    bool keep;      /* SV_BATCH_KEEP: held ids are not written (store.h) */
    uint8_t *kept;  /* during batch_flush in KEEP (NULL: out of memory): per item, 1 = held, not written */
    int64_t now_ms; /* the objects' write time: the clock read once per BATCH_CLOCK_EVERY objects */
    size_t clock_n;
};

#define BATCH_CLOCK_EVERY 64

void sv_batch_set_bulk(sv_batch *b, size_t min_objects) { b->bulk = min_objects; }

const char SV_BATCH_EXISTS[] = "an object with this id already exists";

void sv_batch_set_conflict(sv_batch *b, sv_batch_conflict c) { b->keep = c == SV_BATCH_KEEP; }

static void recycle_give(const sv_batch *b, void *p, size_t cap);

static const uint8_t *item_enc(const sv_batch *b, const group_item *it)
{
    return (it->seg ? b->segs[it->seg - 1].data : b->enc.data) + it->p.enc_off;
}

void sv_batch_set_moved(sv_batch *b, sv_batch_moved_fn fn, void *ud)
{
    b->moved = fn;
    b->moved_ud = ud;
}

/* The objects of a group whose shard a move switched to another node while
 * they waited at its gate: each one's JSON to the moved callback. */
static void report_moved(sv_batch *b, const collection *c, shard *s, size_t from, size_t to)
{
    char node[65];
    pthread_rwlock_rdlock(&s->use);
    bool gone = !store_shard_local(b->st, s);
    snprintf(node, sizeof node, "%s", s->node);
    pthread_rwlock_unlock(&s->use);
    if (!gone || !node[0])
        return;
    sv_buf js = {0};
    for (size_t k = from; k < to; k++) {
        const pending *p = &b->items[k].p;
        js.len = 0;
        if (sv_record_decode(b->scratch, c->schema, item_enc(b, &b->items[k]), p->enc_len, NULL) != 0)
            continue;
        b->scratch->id = p->id;
        b->scratch->has_id = true;
        if (sv_record_to_json(b->scratch, c->schema, c->name, c->schema->multi_tenancy ? s->name : NULL, &js) == 0)
            b->moved(b->moved_ud, p->result, node, (const char *)js.data, js.len);
    }
    sv_buf_free(&js);
}

void sv_batch_set_check(sv_batch *b, sv_batch_check_fn fn, void *ud)
{
    b->check = fn;
    b->check_ud = ud;
}

sv_batch *sv_batch_begin(sv_store *st)
{
    sv_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->st = st;
    b->rec = sv_record_new();
    b->scratch = sv_record_new();
    if (!b->rec || !b->scratch) {
        sv_batch_abort(b);
        return NULL;
    }
    return b;
}

static collection *batch_collection(sv_batch *b, const sv_str *name)
{
    for (size_t i = 0; i < b->ncached; i++)
        if (strlen(b->cached[i]->name) == name->len && memcmp(b->cached[i]->name, name->ptr, name->len) == 0)
            return b->cached[i];
    collection *c = store_coll_acquire(b->st, name->ptr, name->len);
    if (!c)
        return NULL;
    if (b->ncached == sizeof b->cached / sizeof b->cached[0]) {
        /* The cache is full: an uncached reference, which sv_batch_add
         * flushes at once and batch_flush then releases. */
        return c;
    }
    b->cached[b->ncached++] = c;
    return c;
}

static int set_result(sv_batch *b, size_t idx, const char *msg)
{
    if (msg == SV_BATCH_EXISTS) /* a re-import of a million held ids: no copy each */
        b->results[idx].error = (char *)SV_BATCH_EXISTS;
    else if (msg && !(b->results[idx].error = strdup(msg)))
        b->oom = 1;
    return 0;
}

static int cmp_items(const void *a, const void *bb)
{
    const group_item *x = a, *y = bb;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    /* by key within a shard: RocksDB's memtable inserts a sorted run much
     * faster; equal ids keep their order (the later one replaces) */
    int k = memcmp(x->p.id.b, y->p.id.b, 16);
    if (k)
        return k;
    return x->p.result < y->p.result ? -1 : (x->p.result > y->p.result);
}

/* The order of cmp_items, fast: a batch's items sorted through 32-byte
 * keys (shard, the id as two big-endian words, the item's place: items are
 * added, and absorbed, in the order of their results) by a bottom-up merge
 * sort, then moved once. qsort with cmp_items (memcmp and a
 * call per comparison, 64-byte items) was 5% of an import's CPU. Falls
 * back to qsort without memory. */
typedef struct item_key {
    uintptr_t s;
    uint64_t a, b;
    size_t at;
} item_key;

static inline bool key_lt(const item_key *x, const item_key *y)
{
    if (x->s != y->s)
        return x->s < y->s;
    if (x->a != y->a)
        return x->a < y->a;
    if (x->b != y->b)
        return x->b < y->b;
    return x->at < y->at;
}

static void sort_items(group_item *items, size_t n)
{
    item_key *k = n > 1 ? malloc(n * sizeof *k) : NULL, *t = k ? malloc(n * sizeof *t) : NULL;
    group_item *moved = t ? malloc(n * sizeof *moved) : NULL;
    if (!moved) {
        free(k);
        free(t);
        if (n > 1)
            qsort(items, n, sizeof *items, cmp_items);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t a, b;
        memcpy(&a, items[i].p.id.b, 8);
        memcpy(&b, items[i].p.id.b + 8, 8);
        k[i] = (item_key){(uintptr_t)items[i].s, __builtin_bswap64(a), __builtin_bswap64(b), i};
    }
    /* runs of 8 by insertion, then merges */
    for (size_t lo = 0; lo < n; lo += 8) {
        size_t hi = lo + 8 < n ? lo + 8 : n;
        for (size_t i = lo + 1; i < hi; i++) {
            item_key x = k[i];
            size_t j = i;
            for (; j > lo && key_lt(&x, &k[j - 1]); j--)
                k[j] = k[j - 1];
            k[j] = x;
        }
    }
    for (size_t w = 8; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                t[o++] = key_lt(&k[j], &k[i]) ? k[j++] : k[i++];
            while (i < mid)
                t[o++] = k[i++];
            while (j < hi)
                t[o++] = k[j++];
        }
        item_key *sw = k;
        k = t;
        t = sw;
    }
    for (size_t i = 0; i < n; i++)
        moved[i] = items[k[i].at];
    memcpy(items, moved, n * sizeof *items);
    free(k);
    free(t);
    free(moved);
}

/* Writes items [i, j) (one shard) with ps[0..j-i) as scratch; 1 when
 * try_lock and the shard is busy. Touches nothing of b but reads, so
 * groups of different shards may be written at once (bulk_flush). */
static int write_group(sv_batch *b, pending *ps, size_t i, size_t j, bool try_lock, sv_record *scratch, sv_err *err)
{
    collection *c = b->items[i].c;
    shard *s = b->items[i].s;
    bool bulk = b->bulk && j - i >= b->bulk;
    const uint8_t **vals = bulk ? malloc((j - i) * sizeof *vals) : NULL;
    sv_buf tmp = {0}; /* a small group of an absorbed batch: its encodings in one buffer */
    const sv_buf *enc = &b->enc;
    int rc = 0;
    uint8_t *kept = b->kept ? b->kept + i : NULL;
    if (!ps || (bulk && !vals) || (b->keep && !kept))
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    for (size_t k = i; rc == 0 && k < j; k++) {
        ps[k - i] = b->items[k].p;
        if (bulk) {
            vals[k - i] = item_enc(b, &b->items[k]);
        } else if (b->nsegs) {
            ps[k - i].enc_off = tmp.len;
            if (sv_buf_append(&tmp, item_enc(b, &b->items[k]), b->items[k].p.enc_len))
                rc = sv_fail(err, SV_ENOMEM, "out of memory");
        }
    }
    if (b->nsegs)
        enc = &tmp;
    /* The write gate (a shard moving away) holds the group, like any write. */
    if (rc == 0)
        rc = store_write_enter(b->st, c, s, err);
    if (rc == 0) {
        if (bulk)
            rc = store_bulk_write_objects(b->st, c, s, ps, vals, j - i, scratch, kept, err);
        else
            rc = store_write_objects_ex(b->st, c, s, ps, j - i, (sv_buf *)enc, scratch, try_lock, kept, err);
        store_write_leave(s);
    }
    free(vals);
    sv_buf_free(&tmp);
    return rc;
}

/* The results of a written group (rc from write_group, not 1). */
static void settle_group(sv_batch *b, size_t i, size_t j, int rc, const sv_err *err)
{
    if (rc == SV_EUNAVAIL && b->moved)
        report_moved(b, b->items[i].c, b->items[i].s, i, j);
    if (rc)
        for (size_t k = i; k < j; k++)
            set_result(b, b->items[k].p.result, err->msg);
    else if (b->kept) {
        for (size_t k = i; k < j; k++) {
            if (b->kept[k])
                set_result(b, b->items[k].p.result, SV_BATCH_EXISTS);
            else
                b->written++;
        }
    } else
        b->written += j - i;
}

static int flush_group(sv_batch *b, pending *ps, size_t i, size_t j, bool try_lock)
{
    sv_err err = {0};
    int rc = write_group(b, ps, i, j, try_lock, b->scratch, &err);
    if (rc == 1)
        return 1;
    settle_group(b, i, j, rc, &err);
    return 0;
}

/* Bulk groups of different shards are written at once, a thread each (the
 * caller writes the first): their table files are built in parallel. */
#define BULK_PARALLEL 8

typedef struct group_write {
    sv_batch *b;
    pending *ps;
    size_t i, j;
    sv_record *scratch;
    int rc;
    sv_err err;
    pthread_t th;
    bool thread;
} group_write;

static void *group_write_main(void *arg)
{
    group_write *g = arg;
    g->rc = g->scratch ? write_group(g->b, g->ps, g->i, g->j, false, g->scratch, &g->err)
                       : sv_fail(&g->err, SV_ENOMEM, "out of memory");
    return NULL;
}

/* Writes the bulk groups among [0, nitems) (items sorted by shard); the
 * others are left to the caller's pass, which skips what *done marks. */
static void bulk_flush(sv_batch *b, pending *ps, bool *done)
{
    group_write g[BULK_PARALLEL];
    size_t ng = 0, i = 0;
    while (i <= b->nitems) {
        size_t j = i;
        while (j < b->nitems && b->items[j].s == b->items[i].s)
            j++;
        if (i < b->nitems && j - i >= b->bulk)
            g[ng++] = (group_write){.b = b, .ps = ps ? ps + i : NULL, .i = i, .j = j};
        if (ng && (ng == BULK_PARALLEL || j >= b->nitems)) {
            for (size_t k = 1; k < ng; k++) {
                g[k].scratch = sv_record_new();
                g[k].thread = pthread_create(&g[k].th, NULL, group_write_main, &g[k]) == 0;
                if (!g[k].thread)
                    group_write_main(&g[k]);
            }
            g[0].scratch = b->scratch;
            group_write_main(&g[0]);
            for (size_t k = 0; k < ng; k++) {
                if (g[k].thread)
                    pthread_join(g[k].th, NULL);
                if (k)
                    sv_record_free(g[k].scratch);
                settle_group(b, g[k].i, g[k].j, g[k].rc, &g[k].err);
                done[g[k].i] = true;
            }
            ng = 0;
        }
        if (j >= b->nitems)
            break;
        i = j;
    }
}

static void batch_flush(sv_batch *b)
{
    if (!b->nitems)
        return;
    sort_items(b->items, b->nitems);
    pending *ps = malloc(b->nitems * sizeof *ps);
    b->kept = b->keep ? calloc(b->nitems, 1) : NULL; /* none: each group fails out of memory */
    bool *done = b->bulk ? calloc(b->nitems, sizeof *done) : NULL;
    if (done)
        bulk_flush(b, ps, done);
    /* A shard whose writer is busy (another batch writing it) is left for a
     * second pass, so concurrent batches write different shards at once
     * instead of queueing on the same one. */
    size_t busy[64], nbusy = 0;
    size_t i = 0;
    while (i < b->nitems) {
        size_t j = i;
        while (j < b->nitems && b->items[j].s == b->items[i].s)
            j++;
        bool can_defer = nbusy < sizeof busy / sizeof busy[0];
        if ((!done || !done[i]) && flush_group(b, ps ? ps + i : NULL, i, j, can_defer) == 1)
            busy[nbusy++] = i;
        i = j;
    }
    for (size_t k = 0; k < nbusy; k++) {
        size_t j = busy[k];
        while (j < b->nitems && b->items[j].s == b->items[busy[k]].s)
            j++;
        flush_group(b, ps ? ps + busy[k] : NULL, busy[k], j, false);
    }
    free(done);
    free(ps);
    free(b->kept);
    b->kept = NULL;
    /* Release collections acquired beyond the cache. */
    for (size_t k = 0; k < b->nitems; k++) {
        collection *c = b->items[k].c;
        bool cached = false;
        for (size_t m = 0; m < b->ncached; m++)
            cached |= b->cached[m] == c;
        if (!cached)
            store_coll_release(b->st, c);
    }
    b->nitems = 0;
    sv_buf_reset(&b->enc);
    for (size_t k = 0; k < b->nsegs; k++)
        recycle_give(b, b->segs[k].data, b->segs[k].cap);
    b->nsegs = 0;
}

/* The common tail of sv_batch_add and sv_batch_add_record: rc is the
 * result of building rec so far (0 = rec is valid for c's schema). */
static int batch_put(sv_batch *b, size_t idx, collection *c, bool cached, sv_record *rec, const char *tenant,
                     size_t tlen, int rc, sv_err *err)
{
    result *res = &b->results[idx];
    if (rc == 0 && !rec->has_id) {
        sv_uuid_v4(&rec->id);
        rec->has_id = true;
    }
    if (rec->has_id) {
        res->id = rec->id;
        res->has_id = true;
    }
    shard *s = NULL;
    if (rc == 0)
        rc = store_route(c, &rec->id, tenant, tlen, &s, err);
    size_t enc_off = b->enc.len;
    if (rc == 0) {
        if (b->clock_n++ % BATCH_CLOCK_EVERY == 0)
            b->now_ms = sv_now_ms();
        rec->creation_time = rec->update_time = b->now_ms;
        rc = sv_record_encode(rec, c->schema, &b->enc, err);
    }
    if (rc == 0 && b->nitems == b->capitems) {
        size_t cap = b->capitems ? b->capitems * 2 : 256;
        group_item *p = realloc(b->items, cap * sizeof *p);
        if (!p)
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
        else {
            b->items = p;
            b->capitems = cap;
        }
    }
    if (rc) {
        if (!cached)
            store_coll_release(b->st, c);
        return set_result(b, idx, err->msg);
    }
    b->items[b->nitems++] = (group_item){c, s, {rec->id, idx, enc_off, b->enc.len - enc_off}, 0};
    if ((!b->bulk && (b->nitems >= BATCH_GROUP_OBJECTS || b->enc.len >= BATCH_GROUP_BYTES)) || !cached)
        batch_flush(b);
    return 0;
}

/* A new, empty result slot for the next object: its index, or -1 (out of memory). */
static long new_result(sv_batch *b)
{
    if (sv_grow(&b->results, &b->capresults, b->nresults + 1, sizeof *b->results))
        return -1;
    size_t idx = b->nresults++;
    b->results[idx].error = NULL;
    b->results[idx].has_id = false;
    return (long)idx;
}

int sv_batch_add(sv_batch *b, const char *json, size_t len)
{
    long at = new_result(b);
    if (at < 0)
        return SV_ENOMEM;
    size_t idx = (size_t)at;
    sv_err err = {0};
    sv_object_route ro = {0};
    if (sv_record_peek_route(json, len, &ro, &err) != 0)
        return set_result(b, idx, err.msg);
    if (!ro.collection.len)
        return set_result(b, idx, "the object has no \"collection\"; name the collection it belongs to");
    if (b->check) { /* before any lookup: the same answer whether it exists or not */
        char cn[129], tn[65];
        snprintf(cn, sizeof cn, "%.*s", (int)(ro.collection.len > 128 ? 128 : ro.collection.len), ro.collection.ptr);
        snprintf(tn, sizeof tn, "%.*s", (int)(ro.tenant.len > 64 ? 64 : ro.tenant.len), ro.tenant.ptr);
        if (!b->check(b->check_ud, cn, ro.tenant.len ? tn : NULL)) {
            char msg[300];
            snprintf(msg, sizeof msg, "forbidden: this key may not write to collection '%s'%s%s%s", cn,
                     ro.tenant.len ? " tenant '" : "", ro.tenant.len ? tn : "", ro.tenant.len ? "'" : "");
            return set_result(b, idx, msg);
        }
    }
    collection *c = batch_collection(b, &ro.collection);
    if (!c) {
        char msg[300];
        snprintf(msg, sizeof msg, "collection '%.*s' not found", (int)(ro.collection.len > 128 ? 128 : ro.collection.len),
                 ro.collection.ptr);
        return set_result(b, idx, msg);
    }
    bool cached = false;
    for (size_t m = 0; m < b->ncached; m++)
        cached |= b->cached[m] == c;
    int rc = sv_record_parse_json(b->rec, c->schema, json, len, &ro, &err);
    return batch_put(b, idx, c, cached, b->rec, ro.tenant.ptr, ro.tenant.len, rc, &err);
}

/* Same shape: counts, types and dimensions (what a record's arrays and
 * encoding depend on). */
static bool schema_compatible(const sv_schema *a, const sv_schema *b)
{
    if (a == b)
        return true;
    if (a->vector_dim != b->vector_dim || a->n_named != b->n_named || a->n_multi != b->n_multi ||
        a->n_props != b->n_props)
        return false;
    for (uint32_t i = 0; i < a->n_named; i++)
        if (a->named[i].dim != b->named[i].dim)
            return false;
    for (uint32_t i = 0; i < a->n_multi; i++)
        if (a->multi[i].dim != b->multi[i].dim)
            return false;
    for (uint32_t i = 0; i < a->n_props; i++)
        if (a->props[i].type != b->props[i].type || a->props[i].array != b->props[i].array)
            return false;
    return true;
}

int sv_batch_add_record(sv_batch *b, const char *coll_name, const char *tenant, const sv_schema *schema,
                        sv_record *rec)
{
    long at = new_result(b);
    if (at < 0)
        return SV_ENOMEM;
    size_t idx = (size_t)at;
    sv_err err = {0};
    if (b->check && !b->check(b->check_ud, coll_name, tenant && tenant[0] ? tenant : NULL)) {
        char msg[300];
        snprintf(msg, sizeof msg, "forbidden: this key may not write to collection '%.128s'%s%.64s%s", coll_name,
                 tenant && tenant[0] ? " tenant '" : "", tenant && tenant[0] ? tenant : "",
                 tenant && tenant[0] ? "'" : "");
        return set_result(b, idx, msg);
    }
    sv_str name = {coll_name, (uint32_t)strlen(coll_name)};
    collection *c = batch_collection(b, &name);
    if (!c) {
        char msg[300];
        snprintf(msg, sizeof msg, "collection '%.128s' not found", coll_name);
        return set_result(b, idx, msg);
    }
    bool cached = false;
    for (size_t m = 0; m < b->ncached; m++)
        cached |= b->cached[m] == c;
    int rc = 0;
    if (!schema_compatible(schema, c->schema))
        rc = sv_fail(&err, SV_ECONFLICT,
                     "the collection '%.128s' changed while the object was being built (its schema differs)",
                     coll_name);
    size_t tlen = tenant ? strlen(tenant) : 0;
    return batch_put(b, idx, c, cached, rec, tenant, tlen, rc, &err);
}

int sv_batch_end(sv_batch *b, sv_buf *out, sv_err *err)
{
    batch_flush(b);
    size_t ok = 0;
    int rc = sv_buf_append_str(out, "{\"results\":[");
    for (size_t i = 0; rc == 0 && i < b->nresults; i++) {
        result *r = &b->results[i];
        if (i)
            rc |= sv_buf_putc(out, ',');
        rc |= sv_buf_append_str(out, "{\"id\":");
        char id[37];
        if (r->has_id) {
            sv_uuid_format(&r->id, id);
            rc |= sv_buf_printf(out, "\"%s\"", id);
        }
        else
            rc |= sv_buf_append_str(out, "null");
        if (r->error) {
            rc |= sv_buf_append_str(out, ",\"status\":\"error\",\"error\":");
            rc |= sv_buf_json_string(out, r->error, strlen(r->error));
            rc |= sv_buf_putc(out, '}');
        } else {
            ok++;
            rc |= sv_buf_append_str(out, ",\"status\":\"ok\"}");
        }
    }
    if (rc == 0)
        rc = sv_buf_printf(out, "],\"ok\":%zu,\"failed\":%zu}", ok, b->nresults - ok);
    int was_oom = b->oom;
    sv_batch_abort(b);
    if (rc || was_oom)
        return sv_fail(err, SV_ENOMEM, "out of memory building the batch response");
    return 0;
}

int sv_batch_end_results(sv_batch *b, sv_batch_result_fn fn, void *ud, size_t *ok, sv_err *err)
{
    batch_flush(b);
    size_t n = 0;
    for (size_t i = 0; i < b->nresults; i++) {
        if (b->results[i].error) {
            char id[37] = "";
            if (b->results[i].has_id)
                sv_uuid_format(&b->results[i].id, id);
            fn(ud, i, id, b->results[i].error);
        }
        else
            n++;
    }
    *ok = n;
    int was_oom = b->oom;
    sv_batch_abort(b);
    if (was_oom)
        return sv_fail(err, SV_ENOMEM, "out of memory recording the batch's results");
    return 0;
}

size_t sv_batch_written(const sv_batch *b) { return b->written; }

/* ---- recycling ------------------------------------------------------------
 * An import fills a batch of tens of MB per part, dozens of times: fresh
 * pages for each (mapped, zeroed, unmapped by malloc) cost more CPU than
 * filling them (measured: a third of a 1M-object import's kernel time). So
 * the large buffers of an ended batch (>= RECYCLE_MIN) go to the store's
 * STORE_RECYCLE_SLOTS slots, and sv_batch_reserve takes the smallest that
 * fits. Retained memory is bounded (RECYCLE_MAX_BYTES); store_recycle_clear
 * (at sv_store_bulk_done and close) frees it. */
#define RECYCLE_MIN (1u << 20)

/* Only bulk batches (imports, which reserve and so take blocks back) give;
 * the slots hold at most RECYCLE_MAX_BYTES. */
#define RECYCLE_MAX_BYTES (128u << 20)

static void recycle_give(const sv_batch *b, void *p, size_t cap)
{
    if (!p)
        return;
    sv_store *st = b->st;
    if (b->bulk && cap >= RECYCLE_MIN) {
        /* into a free slot, else in place of smaller blocks (a batch's big
         * encoding buffer is what a part needs again; small blocks filled
         * every slot and the big ones were freed) */
        pthread_mutex_lock(&st->recycle_mu);
        for (;;) {
            size_t held = 0;
            int free_slot = -1, smallest = -1;
            for (int i = 0; i < STORE_RECYCLE_SLOTS; i++) {
                held += st->recycle[i].cap;
                if (!st->recycle[i].p)
                    free_slot = free_slot < 0 ? i : free_slot;
                else if (smallest < 0 || st->recycle[i].cap < st->recycle[smallest].cap)
                    smallest = i;
            }
            if (free_slot >= 0 && held + cap <= RECYCLE_MAX_BYTES) {
                st->recycle[free_slot] = (struct store_block){p, cap};
                p = NULL;
                break;
            }
            if (smallest < 0 || st->recycle[smallest].cap >= cap)
                break;
            void *old = st->recycle[smallest].p;
            st->recycle[smallest] = (struct store_block){0};
            pthread_mutex_unlock(&st->recycle_mu);
            free(old);
            pthread_mutex_lock(&st->recycle_mu);
        }
        pthread_mutex_unlock(&st->recycle_mu);
    }
    free(p);
}

/* A recycled block of at least want bytes, or NULL. */
static void *recycle_take(sv_store *st, size_t want, size_t *cap)
{
    if (want < RECYCLE_MIN)
        return NULL;
    pthread_mutex_lock(&st->recycle_mu);
    int best = -1;
    for (int i = 0; i < STORE_RECYCLE_SLOTS; i++)
        if (st->recycle[i].p && st->recycle[i].cap >= want && (best < 0 || st->recycle[i].cap < st->recycle[best].cap))
            best = i;
    void *p = NULL;
    if (best >= 0) {
        p = st->recycle[best].p;
        *cap = st->recycle[best].cap;
        st->recycle[best] = (struct store_block){0};
    }
    pthread_mutex_unlock(&st->recycle_mu);
    return p;
}

void store_recycle_clear(sv_store *st)
{
    pthread_mutex_lock(&st->recycle_mu);
    for (int i = 0; i < STORE_RECYCLE_SLOTS; i++) {
        free(st->recycle[i].p);
        st->recycle[i] = (struct store_block){0};
    }
    pthread_mutex_unlock(&st->recycle_mu);
}

/* An empty array of *cap elements given room for n: a recycled block. */
static void reserve_empty(const sv_batch *b, void **arr, size_t *cap, size_t n, size_t elem)
{
    size_t bytes = 0;
    void *p;
    if (n <= *cap || !(p = recycle_take(b->st, n * elem, &bytes)))
        return;
    recycle_give(b, *arr, *cap * elem);
    *arr = p;
    *cap = bytes / elem;
}

int sv_batch_reserve(sv_batch *b, size_t objects, size_t bytes)
{
    if (!b->nresults)
        reserve_empty(b, (void **)&b->results, &b->capresults, objects, sizeof *b->results);
    if (!b->nitems)
        reserve_empty(b, (void **)&b->items, &b->capitems, objects, sizeof *b->items);
    if (!b->enc.len)
        reserve_empty(b, (void **)&b->enc.data, &b->enc.cap, bytes, 1);
    if (sv_grow(&b->results, &b->capresults, b->nresults + objects, sizeof *b->results) ||
        sv_grow(&b->items, &b->capitems, b->nitems + objects, sizeof *b->items) || sv_buf_reserve(&b->enc, bytes))
        return SV_ENOMEM;
    return 0;
}

size_t sv_batch_bytes(const sv_batch *b)
{
    size_t n = b->enc.len;
    for (size_t k = 0; k < b->nsegs; k++)
        n += b->segs[k].len;
    return n;
}

int sv_batch_absorb(sv_batch *b, sv_batch *o, sv_err *err)
{
    /* o's pending items hold collections from o's cache (an uncached one is
     * written at once); b takes them over, or o writes its items first when
     * b's cache has no room for them (or o holds absorbed encodings itself:
     * one level is enough). */
    size_t missing = 0, room = sizeof b->cached / sizeof b->cached[0] - b->ncached;
    for (size_t i = 0; i < o->ncached; i++) {
        bool have = false;
        for (size_t m = 0; m < b->ncached; m++)
            have |= b->cached[m] == o->cached[i];
        missing += !have;
    }
    if (missing > room || o->nsegs)
        batch_flush(o);
    size_t base = b->nresults;
    sv_buf *segs = o->nitems ? realloc(b->segs, (b->nsegs + 1) * sizeof *b->segs) : b->segs;
    if ((o->nitems && !segs) ||
        sv_grow(&b->results, &b->capresults, b->nresults + o->nresults, sizeof *b->results) ||
        sv_grow(&b->items, &b->capitems, b->nitems + o->nitems, sizeof *b->items)) {
        if (segs)
            b->segs = segs;
        sv_batch_abort(o);
        b->oom = 1;
        return sv_fail(err, SV_ENOMEM, "out of memory merging batches");
    }
    b->segs = segs;
    uint32_t seg = 0;
    if (o->nitems) { /* o's encodings stay in their buffer, now b's */
        b->segs[b->nsegs++] = o->enc;
        o->enc = (sv_buf){0};
        seg = (uint32_t)b->nsegs;
    }
    if (o->nresults)
        memcpy(b->results + b->nresults, o->results, o->nresults * sizeof *o->results);
    b->nresults += o->nresults;
    o->nresults = 0; /* the error strings are b's now */
    for (size_t k = 0; k < o->nitems; k++) {
        group_item it = o->items[k];
        it.p.result += base;
        it.seg = seg;
        b->items[b->nitems++] = it;
    }
    o->nitems = 0;
    for (size_t i = 0; i < o->ncached; i++) {
        bool have = false;
        for (size_t m = 0; m < b->ncached; m++)
            have |= b->cached[m] == o->cached[i];
        if (!have && b->ncached < sizeof b->cached / sizeof b->cached[0])
            b->cached[b->ncached++] = o->cached[i];
        else /* b holds it already, or o's items were written: nothing of b needs it */
            store_coll_release(o->st, o->cached[i]);
    }
    o->ncached = 0;
    b->written += o->written;
    b->oom |= o->oom;
    sv_batch_abort(o);
    return 0;
}

void sv_batch_abort(sv_batch *b)
{
    if (!b)
        return;
    for (size_t k = 0; k < b->nitems; k++) {
        bool cached = false;
        for (size_t m = 0; m < b->ncached; m++)
            cached |= b->cached[m] == b->items[k].c;
        if (!cached)
            store_coll_release(b->st, b->items[k].c);
    }
    for (size_t i = 0; i < b->ncached; i++)
        store_coll_release(b->st, b->cached[i]);
    for (size_t i = 0; i < b->nresults; i++)
        if (b->results[i].error != SV_BATCH_EXISTS)
            free(b->results[i].error);
    recycle_give(b, b->results, b->capresults * sizeof *b->results);
    recycle_give(b, b->items, b->capitems * sizeof *b->items);
    recycle_give(b, b->enc.data, b->enc.cap);
    for (size_t k = 0; k < b->nsegs; k++)
        recycle_give(b, b->segs[k].data, b->segs[k].cap);
    free(b->segs);
    sv_record_free(b->rec);
    sv_record_free(b->scratch);
    free(b);
}
