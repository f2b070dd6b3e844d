/* Embedded catalog driver: one RocksDB, every write one fsynced WriteBatch
 * applied under one mutex. See docs/catalog.md.
 *
 * Layout (one keyspace, one-byte tags):
 *   'k' key                 -> rev (8) | lease id (8) | value
 *   'l' id (8, big-endian)  -> ttl ms (8) | deadline wall-clock ms (8)
 *   'a' id (8, BE) key      -> ""   (key attached to lease id)
 *   'm' "rev"               -> store revision (8)
 *   'm' "lease"             -> last granted lease id (8)
 * Integers are little-endian except lease ids inside keys (big-endian, so a
 * lease's attachments are one contiguous range).
 */
#include "catalog_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rocksdb/c.h>

#define REC_HDR 16

typedef struct lease {
    int64_t id, ttl_ms, deadline_ms;
} lease;

/* A queued change for a watch (key and val owned). */
typedef struct emb_ev {
    sv_catalog_event_type type;
    char *key, *val;
    size_t len;
    int64_t rev;
} emb_ev;

/* Beyond this many undelivered changes a watch drops its queue and re-lists. */
#define WATCH_QUEUE_MAX 10000

typedef struct emb_watch emb_watch;

typedef struct embedded {
    struct sv_catalog base;
    char *dir;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wo; /* sync = 1 */
    rocksdb_readoptions_t *ro;

    pthread_mutex_t mu; /* serializes every write and the lease table */
    pthread_cond_t cv;  /* wakes the expiry thread (grant, close) */
    pthread_t thread;
    bool thread_started, stop;
    int64_t rev;        /* last committed store revision */
    int64_t last_lease;
    lease *leases;
    size_t nleases, cap;
    emb_watch *watches; /* under mu */
} embedded;

struct emb_watch {
    struct sv_catalog_watch base;
    embedded *c;
    char *prefix;
    size_t plen;
    sv_catalog_watch_fn fn;
    void *ud;
    pthread_t thread;
    pthread_cond_t cv; /* with c->mu */
    /* under c->mu: */
    emb_ev *q;
    size_t qn, qcap;
    bool relist, stop;
    bool busy;         /* delivering events taken from q */
    int64_t delivered; /* every change up to here delivered; 0 = listing */
    emb_watch *next;
};

/* A change made by a txn or an expiry, before it is published. */
typedef struct change {
    bool del;
    const char *key;
    const void *val;
    size_t len;
} change;

static void ev_free(emb_ev *e)
{
    free(e->key);
    free(e->val);
}

/* Queues the committed changes (all at revision rev) for every watch whose
 * prefix matches. Caller holds mu. A watch that cannot take them re-lists. */
static void publish_locked(embedded *c, const change *ch, size_t n, int64_t rev)
{
    for (emb_watch *w = c->watches; w; w = w->next) {
        bool any = false;
        for (size_t i = 0; i < n; i++) {
            if (strncmp(ch[i].key, w->prefix, w->plen) != 0)
                continue;
            any = true;
            if (w->relist)
                continue; /* the listing will show it */
            emb_ev e = {.type = ch[i].del ? SV_CATALOG_EV_DELETE : SV_CATALOG_EV_PUT, .len = ch[i].len, .rev = rev};
            bool ok = w->qn < WATCH_QUEUE_MAX && sv_grow(&w->q, &w->qcap, w->qn + 1, sizeof *w->q) == 0 &&
                      (e.key = strdup(ch[i].key)) != NULL;
            if (ok && !ch[i].del) {
                ok = (e.val = malloc(ch[i].len + 1)) != NULL;
                if (ok) {
                    memcpy(e.val, ch[i].val, ch[i].len);
                    e.val[ch[i].len] = 0;
                }
            }
            if (!ok) {
                ev_free(&e);
                for (size_t k = 0; k < w->qn; k++)
                    ev_free(&w->q[k]);
                w->qn = 0;
                w->relist = true;
                sv_warn("catalog watch fell behind; it re-lists", "prefix=%s", w->prefix);
                continue;
            }
            w->q[w->qn++] = e;
        }
        if (any)
            pthread_cond_signal(&w->cv);
    }
}

static const sv_catalog_driver embedded_driver;

static void put64(uint8_t *p, int64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

static int64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return (int64_t)v;
}

static void put64be(uint8_t *p, int64_t v)
{
    for (int i = 0; i < 8; i++)
        p[7 - i] = (uint8_t)((uint64_t)v >> (8 * i));
}

static int rocks_fail(sv_err *err, char *rerr, const char *what)
{
    int code = !strncmp(rerr, "Corruption", 10) ? SV_ECORRUPT : SV_EIO;
    if (strstr(rerr, "lock file") || strstr(rerr, "/LOCK"))
        code = SV_ECONFLICT;
    sv_fail(err, code, "catalog %s: %s", what, rerr);
    free(rerr);
    return code;
}

/* tag + bytes into buf (sv_buf so keys of any length work). */
static int mkkey(sv_buf *b, char tag, const void *id8, const char *s)
{
    sv_buf_reset(b);
    if (sv_buf_putc(b, (uint8_t)tag) || (id8 && sv_buf_append(b, id8, 8)) || (s && sv_buf_append_str(b, s)))
        return SV_ENOMEM;
    return 0;
}

/* Reads the record stored under the internal key k ('k' + key). */
static int read_raw(embedded *c, const sv_buf *k, bool *found, int64_t *rev, int64_t *lease_id, sv_err *err)
{
    char *rerr = NULL;
    size_t n = 0;
    char *v = rocksdb_get(c->db, c->ro, (const char *)k->data, k->len, &n, &rerr);
    *found = false;
    *rev = 0;
    if (lease_id)
        *lease_id = 0;
    if (rerr)
        return rocks_fail(err, rerr, "read failed");
    if (!v)
        return 0;
    if (n < REC_HDR) {
        free(v);
        return sv_fail(err, SV_ECORRUPT, "catalog record of %.*s is truncated (%zu bytes)", (int)k->len - 1,
                       (const char *)k->data + 1, n);
    }
    *found = true;
    *rev = get64((uint8_t *)v);
    if (lease_id)
        *lease_id = get64((uint8_t *)v + 8);
    free(v);
    return 0;
}

static int read_rec(embedded *c, const char *key, bool *found, int64_t *rev, int64_t *lease_id, sv_err *err)
{
    sv_buf k = {0};
    if (mkkey(&k, 'k', NULL, key))
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = read_raw(c, &k, found, rev, lease_id, err);
    sv_buf_free(&k);
    return rc;
}

static lease *find_lease(embedded *c, int64_t id)
{
    for (size_t i = 0; i < c->nleases; i++)
        if (c->leases[i].id == id)
            return &c->leases[i];
    return NULL;
}

static int write_batch(embedded *c, rocksdb_writebatch_t *wb, sv_err *err)
{
    char *rerr = NULL;
    rocksdb_write(c->db, c->wo, wb, &rerr);
    return rerr ? rocks_fail(err, rerr, "write failed") : 0;
}

static void batch_put_rev(rocksdb_writebatch_t *wb, int64_t rev)
{
    uint8_t v[8];
    put64(v, rev);
    rocksdb_writebatch_put(wb, "mrev", 4, (const char *)v, 8);
}

/* ---- reads ---------------------------------------------------------------- */

static int emb_get(sv_catalog *cat, const char *key, char **val, size_t *len, int64_t *rev, sv_err *err)
{
    embedded *c = (embedded *)cat;
    sv_buf k = {0};
    if (mkkey(&k, 'k', NULL, key))
        return sv_fail(err, SV_ENOMEM, "out of memory");
    char *rerr = NULL;
    size_t n = 0;
    char *v = rocksdb_get(c->db, c->ro, (const char *)k.data, k.len, &n, &rerr);
    sv_buf_free(&k);
    if (rerr)
        return rocks_fail(err, rerr, "get failed");
    if (!v)
        return sv_fail(err, SV_ENOTFOUND, "catalog key %s not found", key);
    if (n < REC_HDR) {
        free(v);
        return sv_fail(err, SV_ECORRUPT, "catalog record of %s is truncated", key);
    }
    char *out = malloc(n - REC_HDR + 1);
    if (!out) {
        free(v);
        return sv_fail(err, SV_ENOMEM, "out of memory reading %s", key);
    }
    memcpy(out, v + REC_HDR, n - REC_HDR);
    out[n - REC_HDR] = 0; /* handy for JSON values; not counted in len */
    if (rev)
        *rev = get64((uint8_t *)v);
    if (len)
        *len = n - REC_HDR;
    *val = out;
    free(v);
    return 0;
}

/* Scans under ro (an explicit snapshot, or none: the iterator's implicit
 * one). */
static int scan_ro(embedded *c, rocksdb_readoptions_t *ro, const char *prefix, sv_catalog_scan_fn fn, void *ud,
                   sv_err *err)
{
    sv_buf p = {0}, key = {0}, val = {0};
    if (mkkey(&p, 'k', NULL, prefix))
        return sv_fail(err, SV_ENOMEM, "out of memory");
    rocksdb_iterator_t *it = rocksdb_create_iterator(c->db, ro);
    int rc = 0;
    for (rocksdb_iter_seek(it, (const char *)p.data, p.len); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl < p.len || memcmp(k, p.data, p.len) != 0)
            break;
        const char *v = rocksdb_iter_value(it, &vl);
        if (vl < REC_HDR) {
            rc = sv_fail(err, SV_ECORRUPT, "catalog record of %.*s is truncated", (int)(kl - 1), k + 1);
            break;
        }
        sv_buf_reset(&key);
        sv_buf_reset(&val);
        if (sv_buf_append(&key, k + 1, kl - 1) || !sv_buf_cstr(&key) || sv_buf_append(&val, v + REC_HDR, vl - REC_HDR) ||
            !sv_buf_cstr(&val)) {
            rc = sv_fail(err, SV_ENOMEM, "out of memory scanning the catalog");
            break;
        }
        rc = fn((const char *)key.data, val.data ? (const char *)val.data : "", vl - REC_HDR, get64((const uint8_t *)v),
                ud);
        if (rc)
            break;
    }
    if (rc == 0) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (rerr)
            rc = rocks_fail(err, rerr, "scan failed");
    }
    rocksdb_iter_destroy(it);
    sv_buf_free(&p);
    sv_buf_free(&key);
    sv_buf_free(&val);
    return rc;
}

static int emb_scan(sv_catalog *cat, const char *prefix, sv_catalog_scan_fn fn, void *ud, sv_err *err)
{
    /* The iterator's implicit snapshot gives a consistent view; no lock is
     * held, so fn may call back into the catalog. */
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    int rc = scan_ro((embedded *)cat, ro, prefix, fn, ud, err);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* ---- writes ----------------------------------------------------------------- */

static int emb_txn(sv_catalog *cat, const sv_catalog_cond *conds, size_t nconds, const sv_catalog_op *ops, size_t nops,
                   sv_err *err)
{
    embedded *c = (embedded *)cat;
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    sv_buf k = {0}, v = {0};
    int rc = 0;
    bool changed = false;
    change *chg = nops ? calloc(nops, sizeof *chg) : NULL;
    size_t nchg = 0;
    if (nops && !chg)
        return sv_fail(err, SV_ENOMEM, "out of memory building a catalog txn");
    pthread_mutex_lock(&c->mu);
    int64_t now = sv_now_ms(), newrev = c->rev + 1;
    for (size_t i = 0; i < nconds && rc == 0; i++) {
        bool found;
        int64_t rev;
        if ((rc = read_rec(c, conds[i].key, &found, &rev, NULL, err)) != 0)
            break;
        int64_t want = conds[i].expect_rev;
        if (want == 0 && found)
            rc = sv_fail(err, SV_ECONFLICT, "condition failed: %s exists (revision %lld) but must be absent",
                         conds[i].key, (long long)rev);
        else if (want == -1 && !found)
            rc = sv_fail(err, SV_ECONFLICT, "condition failed: %s is absent but must exist", conds[i].key);
        else if (want > 0 && !found)
            rc = sv_fail(err, SV_ECONFLICT, "condition failed: %s is absent, expected revision %lld", conds[i].key,
                         (long long)want);
        else if (want > 0 && rev != want)
            rc = sv_fail(err, SV_ECONFLICT, "condition failed: %s has revision %lld, expected %lld", conds[i].key,
                         (long long)rev, (long long)want);
    }
    for (size_t i = 0; i < nops && rc == 0; i++) {
        const sv_catalog_op *op = &ops[i];
        if (op->val && op->lease_id) {
            lease *l = find_lease(c, op->lease_id);
            if (!l || l->deadline_ms <= now) {
                rc = sv_fail(err, SV_ENOTFOUND, "lease %lld for key %s not found or expired", (long long)op->lease_id,
                             op->key);
                break;
            }
        }
        bool found;
        int64_t oldrev, oldlease;
        if ((rc = read_rec(c, op->key, &found, &oldrev, &oldlease, err)) != 0)
            break;
        uint8_t id8[8];
        if (found && oldlease && (!op->val || oldlease != op->lease_id)) {
            put64be(id8, oldlease);
            if ((rc = mkkey(&k, 'a', id8, op->key)) != 0)
                break;
            rocksdb_writebatch_delete(wb, (const char *)k.data, k.len);
        }
        if ((rc = mkkey(&k, 'k', NULL, op->key)) != 0)
            break;
        if (!op->val) {
            if (found) {
                rocksdb_writebatch_delete(wb, (const char *)k.data, k.len);
                changed = true;
                chg[nchg++] = (change){.del = true, .key = op->key};
            }
            continue;
        }
        uint8_t hdr[REC_HDR];
        put64(hdr, newrev);
        put64(hdr + 8, op->lease_id);
        sv_buf_reset(&v);
        if (sv_buf_append(&v, hdr, sizeof hdr) || sv_buf_append(&v, op->val, op->len)) {
            rc = SV_ENOMEM;
            break;
        }
        rocksdb_writebatch_put(wb, (const char *)k.data, k.len, (const char *)v.data, v.len);
        if (op->lease_id && !(found && oldlease == op->lease_id)) {
            put64be(id8, op->lease_id);
            if ((rc = mkkey(&k, 'a', id8, op->key)) != 0)
                break;
            rocksdb_writebatch_put(wb, (const char *)k.data, k.len, "", 0);
        }
        changed = true;
        chg[nchg++] = (change){.key = op->key, .val = op->val, .len = op->len};
    }
    if (rc == SV_ENOMEM)
        sv_fail(err, rc, "out of memory building a catalog txn");
    if (rc == 0 && changed) {
        batch_put_rev(wb, newrev);
        if ((rc = write_batch(c, wb, err)) == 0) {
            c->rev = newrev;
            publish_locked(c, chg, nchg, newrev);
        }
    }
    pthread_mutex_unlock(&c->mu);
    free(chg);
    rocksdb_writebatch_destroy(wb);
    sv_buf_free(&k);
    sv_buf_free(&v);
    return rc;
}

/* ---- leases ----------------------------------------------------------------- */

/* Deletes lease id, its record and every key still attached to it, in one
 * batch. Caller holds mu. */
static int expire_locked(embedded *c, int64_t id, sv_err *err)
{
    uint8_t pfx[9];
    pfx[0] = 'a';
    put64be(pfx + 1, id);
    sv_buf k = {0};
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(c->db, ro);
    int rc = 0;
    bool changed = false;
    char **dk = NULL; /* the keys deleted, for watches */
    size_t ndk = 0, dkcap = 0;
    for (rocksdb_iter_seek(it, (const char *)pfx, sizeof pfx); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const char *ak = rocksdb_iter_key(it, &kl);
        if (kl < sizeof pfx || memcmp(ak, pfx, sizeof pfx) != 0)
            break;
        rocksdb_writebatch_delete(wb, ak, kl);
        sv_buf_reset(&k);
        if (sv_buf_putc(&k, 'k') || sv_buf_append(&k, ak + sizeof pfx, kl - sizeof pfx)) {
            rc = sv_fail(err, SV_ENOMEM, "out of memory expiring lease %lld", (long long)id);
            break;
        }
        bool found;
        int64_t rev, owner;
        if ((rc = read_raw(c, &k, &found, &rev, &owner, err)) != 0)
            break;
        /* A stale attachment (the key was re-put under another lease or
         * none) must not delete the key. */
        if (found && owner == id) {
            rocksdb_writebatch_delete(wb, (const char *)k.data, k.len);
            changed = true;
            char *key = strndup(ak + sizeof pfx, kl - sizeof pfx);
            if (!key || sv_grow(&dk, &dkcap, ndk + 1, sizeof *dk)) {
                free(key);
                rc = sv_fail(err, SV_ENOMEM, "out of memory expiring lease %lld", (long long)id);
                break;
            }
            dk[ndk++] = key;
        }
    }
    if (rc == 0) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (rerr)
            rc = rocks_fail(err, rerr, "lease scan failed");
    }
    if (rc == 0) {
        uint8_t lk[9];
        lk[0] = 'l';
        put64be(lk + 1, id);
        rocksdb_writebatch_delete(wb, (const char *)lk, sizeof lk);
        if (changed)
            batch_put_rev(wb, c->rev + 1);
        if ((rc = write_batch(c, wb, err)) == 0) {
            if (changed) {
                c->rev++;
                change *chg = calloc(ndk ? ndk : 1, sizeof *chg);
                if (chg) {
                    for (size_t i = 0; i < ndk; i++)
                        chg[i] = (change){.del = true, .key = dk[i]};
                    publish_locked(c, chg, ndk, c->rev);
                } else {
                    for (emb_watch *w = c->watches; w; w = w->next) /* cannot tell them what: re-list */
                        w->relist = true;
                }
                free(chg);
            }
            lease *l = find_lease(c, id);
            if (l)
                *l = c->leases[--c->nleases];
        }
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    rocksdb_writebatch_destroy(wb);
    sv_buf_free(&k);
    for (size_t i = 0; i < ndk; i++)
        free(dk[i]);
    free(dk);
    return rc;
}

/* Expires every lease whose deadline passed; returns the earliest remaining
 * deadline (or now + 1 s). Caller holds mu. */
static int64_t expire_due_locked(embedded *c)
{
    int64_t now = sv_now_ms(), next = now + 1000;
    for (size_t i = 0; i < c->nleases;) {
        lease l = c->leases[i];
        if (l.deadline_ms <= now) {
            sv_err err = {0};
            if (expire_locked(c, l.id, &err) == 0) {
                sv_debug("catalog lease expired", "lease=%lld", (long long)l.id);
                continue; /* slot i now holds another lease */
            }
            sv_warn("catalog lease expiry failed; will retry", "lease=%lld error=\"%s\"", (long long)l.id, err.msg);
            next = now + 100;
        } else if (l.deadline_ms < next) {
            next = l.deadline_ms;
        }
        i++;
    }
    return next;
}

static void *expiry_main(void *arg)
{
    embedded *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        int64_t next = expire_due_locked(c);
        /* Deadlines are wall-clock (they must mean something after a
         * restart), so wait on CLOCK_REALTIME, the condvar default. */
        struct timespec ts = {.tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000L};
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static int emb_lease_grant(sv_catalog *cat, int64_t ttl_ms, int64_t *lease_id, sv_err *err)
{
    embedded *c = (embedded *)cat;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (c->nleases == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        lease *nl = realloc(c->leases, ncap * sizeof *nl);
        if (!nl) {
            pthread_mutex_unlock(&c->mu);
            return sv_fail(err, SV_ENOMEM, "out of memory granting a lease");
        }
        c->leases = nl;
        c->cap = ncap;
    }
    lease l = {.id = c->last_lease + 1, .ttl_ms = ttl_ms, .deadline_ms = sv_now_ms() + ttl_ms};
    uint8_t lk[9], lv[16], last[8];
    lk[0] = 'l';
    put64be(lk + 1, l.id);
    put64(lv, l.ttl_ms);
    put64(lv + 8, l.deadline_ms);
    put64(last, l.id);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_writebatch_put(wb, (const char *)lk, sizeof lk, (const char *)lv, sizeof lv);
    rocksdb_writebatch_put(wb, "mlease", 6, (const char *)last, sizeof last);
    rc = write_batch(c, wb, err);
    rocksdb_writebatch_destroy(wb);
    if (rc == 0) {
        c->last_lease = l.id;
        c->leases[c->nleases++] = l;
        *lease_id = l.id;
        pthread_cond_signal(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int emb_lease_keepalive(sv_catalog *cat, int64_t id, sv_err *err)
{
    embedded *c = (embedded *)cat;
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    int64_t now = sv_now_ms();
    lease *l = find_lease(c, id);
    if (!l) {
        rc = sv_fail(err, SV_ENOTFOUND, "lease %lld not found or expired", (long long)id);
    } else if (l->deadline_ms <= now) {
        /* Too late: expire it now rather than resurrect keys others may
         * already consider gone. */
        rc = expire_locked(c, id, err);
        if (rc == 0)
            rc = sv_fail(err, SV_ENOTFOUND, "lease %lld expired", (long long)id);
    } else {
        uint8_t lk[9], lv[16];
        lk[0] = 'l';
        put64be(lk + 1, id);
        put64(lv, l->ttl_ms);
        put64(lv + 8, now + l->ttl_ms);
        rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
        rocksdb_writebatch_put(wb, (const char *)lk, sizeof lk, (const char *)lv, sizeof lv);
        rc = write_batch(c, wb, err);
        rocksdb_writebatch_destroy(wb);
        if (rc == 0)
            l->deadline_ms = now + l->ttl_ms;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int emb_lease_revoke(sv_catalog *cat, int64_t id, sv_err *err)
{
    embedded *c = (embedded *)cat;
    pthread_mutex_lock(&c->mu);
    int rc = find_lease(c, id) ? expire_locked(c, id, err)
                               : sv_fail(err, SV_ENOTFOUND, "lease %lld not found or expired", (long long)id);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---- watch ------------------------------------------------------------------ */

static int relist_put(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    emb_watch *w = ud;
    sv_catalog_event e = {.type = SV_CATALOG_EV_PUT, .key = key, .val = val, .len = len, .rev = rev};
    w->fn(&e, w->ud);
    return 0;
}

static void *watch_main(void *arg)
{
    emb_watch *w = arg;
    embedded *c = w->c;
    pthread_mutex_lock(&c->mu);
    while (!w->stop) {
        if (w->relist) {
            /* The snapshot and the revision are taken under mu, so every
             * change queued from here on is newer than the listing. */
            w->relist = false;
            w->delivered = 0;
            atomic_fetch_add(&c->base.m_relists, 1);
            for (size_t i = 0; i < w->qn; i++)
                ev_free(&w->q[i]);
            w->qn = 0;
            int64_t rev = c->rev;
            const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(c->db);
            pthread_mutex_unlock(&c->mu);
            rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
            rocksdb_readoptions_set_snapshot(ro, snap);
            sv_catalog_event e = {.type = SV_CATALOG_EV_RESET, .rev = rev};
            w->fn(&e, w->ud);
            sv_err err = {0};
            int rc = scan_ro(c, ro, w->prefix, relist_put, w, &err);
            rocksdb_readoptions_destroy(ro);
            rocksdb_release_snapshot(c->db, snap);
            pthread_mutex_lock(&c->mu);
            if (rc) {
                sv_warn("catalog watch listing failed; retrying", "prefix=%s error=\"%s\"", w->prefix, err.msg);
                w->relist = true;
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&w->cv, &c->mu, &ts);
                continue;
            }
            e = (sv_catalog_event){.type = SV_CATALOG_EV_SYNCED, .rev = rev};
            w->busy = true;
            pthread_mutex_unlock(&c->mu);
            w->fn(&e, w->ud);
            pthread_mutex_lock(&c->mu);
            w->busy = false;
            if (!w->relist)
                w->delivered = rev;
            continue;
        }
        if (w->qn == 0) {
            pthread_cond_wait(&w->cv, &c->mu);
            continue;
        }
        emb_ev *q = w->q;
        size_t n = w->qn;
        w->q = NULL;
        w->qn = w->qcap = 0;
        w->busy = true;
        int64_t last = q[n - 1].rev;
        pthread_mutex_unlock(&c->mu);
        for (size_t i = 0; i < n; i++) {
            sv_catalog_event e = {.type = q[i].type, .key = q[i].key, .val = q[i].val, .len = q[i].len, .rev = q[i].rev};
            w->fn(&e, w->ud);
            ev_free(&q[i]);
        }
        free(q);
        pthread_mutex_lock(&c->mu);
        w->busy = false;
        if (!w->relist && w->delivered)
            w->delivered = last;
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static int64_t emb_watch_revision(const sv_catalog_watch *base)
{
    emb_watch *w = (emb_watch *)base;
    embedded *c = w->c;
    pthread_mutex_lock(&c->mu);
    /* Nothing queued or in hand: every change so far has been delivered. */
    int64_t rev = w->relist || !w->delivered ? 0 : (w->qn == 0 && !w->busy) ? c->rev : w->delivered;
    pthread_mutex_unlock(&c->mu);
    return rev;
}

static void watch_free(emb_watch *w)
{
    for (size_t i = 0; i < w->qn; i++)
        ev_free(&w->q[i]);
    free(w->q);
    free(w->prefix);
    pthread_cond_destroy(&w->cv);
    free(w);
}

static int emb_watch_start(sv_catalog *cat, const char *prefix, int64_t after_rev, sv_catalog_watch_fn fn, void *ud,
                           sv_catalog_watch **out, sv_err *err)
{
    embedded *c = (embedded *)cat;
    emb_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->prefix = strdup(prefix))) {
        free(w);
        return sv_fail(err, SV_ENOMEM, "out of memory starting a catalog watch");
    }
    w->c = c;
    w->plen = strlen(prefix);
    w->fn = fn;
    w->ud = ud;
    pthread_cond_init(&w->cv, NULL);
    pthread_mutex_lock(&c->mu);
    /* No history is kept: a watch from the past re-lists. */
    w->relist = after_rev == 0 || after_rev < c->rev;
    w->delivered = w->relist ? 0 : after_rev;
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        pthread_mutex_unlock(&c->mu);
        watch_free(w);
        return sv_fail(err, SV_EINTERNAL, "cannot start a catalog watch thread: %s", strerror(errno));
    }
    w->next = c->watches;
    c->watches = w;
    pthread_mutex_unlock(&c->mu);
    *out = &w->base;
    return 0;
}

static void emb_watch_stop(sv_catalog_watch *base)
{
    emb_watch *w = (emb_watch *)base;
    embedded *c = w->c;
    pthread_mutex_lock(&c->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    for (emb_watch **pp = &c->watches; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    pthread_join(w->thread, NULL);
    watch_free(w);
}

/* ---- open / close ----------------------------------------------------------- */

static void emb_close(sv_catalog *cat)
{
    embedded *c = (embedded *)cat;
    while (c->watches) {
        sv_warn("catalog closed with a watch still running; stopping it", "prefix=%s", c->watches->prefix);
        emb_watch_stop(&c->watches->base);
    }
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    if (c->db)
        rocksdb_close(c->db);
    if (c->ro)
        rocksdb_readoptions_destroy(c->ro);
    if (c->wo)
        rocksdb_writeoptions_destroy(c->wo);
    if (c->opts)
        rocksdb_options_destroy(c->opts);
    if (c->cache)
        rocksdb_cache_destroy(c->cache);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->leases);
    free(c->dir);
    free(c);
}

static int load_state(embedded *c, sv_err *err)
{
    char *rerr = NULL;
    size_t n = 0;
    char *v = rocksdb_get(c->db, c->ro, "mrev", 4, &n, &rerr);
    if (rerr)
        return rocks_fail(err, rerr, "cannot read the store revision");
    if (v && n == 8)
        c->rev = get64((uint8_t *)v);
    free(v);
    v = rocksdb_get(c->db, c->ro, "mlease", 6, &n, &rerr);
    if (rerr)
        return rocks_fail(err, rerr, "cannot read the lease counter");
    if (v && n == 8)
        c->last_lease = get64((uint8_t *)v);
    free(v);

    rocksdb_iterator_t *it = rocksdb_create_iterator(c->db, c->ro);
    int rc = 0;
    for (rocksdb_iter_seek(it, "l", 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl == 0 || k[0] != 'l')
            break;
        const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl != 9 || vl != 16) {
            rc = sv_fail(err, SV_ECORRUPT, "catalog lease record is malformed in %s", c->dir);
            break;
        }
        if (c->nleases == c->cap) {
            size_t ncap = c->cap ? c->cap * 2 : 16;
            lease *nl = realloc(c->leases, ncap * sizeof *nl);
            if (!nl) {
                rc = sv_fail(err, SV_ENOMEM, "out of memory loading leases");
                break;
            }
            c->leases = nl;
            c->cap = ncap;
        }
        int64_t id = 0;
        for (int i = 1; i < 9; i++)
            id = (int64_t)(((uint64_t)id << 8) | k[i]);
        c->leases[c->nleases++] = (lease){.id = id, .ttl_ms = get64(val), .deadline_ms = get64(val + 8)};
    }
    rocksdb_iter_destroy(it);
    return rc;
}

int sv_catalog_embedded_open(const char *dir, sv_catalog **out, sv_err *err)
{
    *out = NULL;
    int rc = sv_mkdirs(dir, err);
    if (rc)
        return rc;
    embedded *c = calloc(1, sizeof *c);
    if (!c || !(c->dir = strdup(dir))) {
        free(c);
        return sv_fail(err, SV_ENOMEM, "out of memory opening the catalog");
    }
    c->base.drv = &embedded_driver;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);

    /* Small and separate from the shards: the catalog is tiny and hot. */
    c->cache = rocksdb_cache_create_lru(8u << 20);
    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(t, c->cache);
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
    c->opts = rocksdb_options_create();
    rocksdb_options_set_block_based_table_factory(c->opts, t);
    rocksdb_block_based_options_destroy(t);
    rocksdb_options_set_create_if_missing(c->opts, 1);
    rocksdb_options_set_write_buffer_size(c->opts, 4u << 20);
    rocksdb_options_set_max_write_buffer_number(c->opts, 2);
    rocksdb_options_set_info_log_level(c->opts, 2 /* WARN */);
    rocksdb_options_set_keep_log_file_num(c->opts, 2);
    rocksdb_options_set_max_log_file_size(c->opts, 1u << 20);
    rocksdb_options_set_stats_dump_period_sec(c->opts, 0);
    rocksdb_options_set_stats_persist_period_sec(c->opts, 0);
    rocksdb_options_set_compression(c->opts, rocksdb_lz4_compression);
    c->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(c->wo, 1);
    c->ro = rocksdb_readoptions_create();

    char *rerr = NULL;
    c->db = rocksdb_open(c->opts, dir, &rerr);
    if (rerr) {
        rc = rocks_fail(err, rerr, "cannot open its RocksDB");
        if (err)
            sv_err_wrap(err, "catalog at %s", dir);
        goto fail;
    }
    if ((rc = load_state(c, err)) != 0)
        goto fail;
    /* Leases that ran out while we were down go before anyone reads. */
    pthread_mutex_lock(&c->mu);
    (void)expire_due_locked(c);
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&c->thread, NULL, expiry_main, c) != 0) {
        rc = sv_fail(err, SV_EINTERNAL, "cannot start the catalog lease thread: %s", strerror(errno));
        goto fail;
    }
    c->thread_started = true;
    *out = &c->base;
    return 0;
fail:
    emb_close(&c->base);
    return rc;
}

static const sv_catalog_driver embedded_driver = {
    .name = "embedded",
    .close = emb_close,
    .get = emb_get,
    .scan = emb_scan,
    .txn = emb_txn,
    .lease_grant = emb_lease_grant,
    .lease_keepalive = emb_lease_keepalive,
    .lease_revoke = emb_lease_revoke,
    .watch_start = emb_watch_start,
    .watch_stop = emb_watch_stop,
    .watch_revision = emb_watch_revision,
};
