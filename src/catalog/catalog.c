/* catalog front: URL parsing, argument checks, dispatch to a driver. */
#include "catalog_internal.h"

#include <stdlib.h>
#include <string.h>

int sv_catalog_open(const char *url, sv_catalog **out, sv_err *err)
{
    *out = NULL;
    if (!url || !*url)
        return sv_fail(err, SV_EINVAL, "catalog URL is empty; use embedded:///path/to/dir or a directory path");
    const char *sep = strstr(url, "://");
    if (!sep)
        return sv_catalog_embedded_open(url, out, err);
    size_t slen = (size_t)(sep - url);
    const char *rest = sep + 3;
    if (slen == 8 && !strncmp(url, "embedded", 8)) {
        /* embedded:///abs -> /abs ; embedded://./rel -> ./rel */
        if (!*rest)
            return sv_fail(err, SV_EINVAL, "catalog URL %s has no directory; use embedded:///abs/dir", url);
        if (rest[0] != '/' && rest[0] != '.')
            return sv_fail(err, SV_EINVAL,
                           "catalog URL %s: the directory must be absolute (embedded:///abs/dir) or relative "
                           "(embedded://./rel/dir)",
                           url);
        return sv_catalog_embedded_open(rest, out, err);
    }
    if (slen == 4 && !strncmp(url, "etcd", 4))
        return sv_catalog_etcd_open(rest, out, err);
    return sv_fail(err, SV_EUNSUPPORTED, "catalog URL %s: unknown scheme %.*s; supported: embedded://, etcd://", url,
                   (int)slen, url);
}

void sv_catalog_close(sv_catalog *cat)
{
    if (cat)
        cat->drv->close(cat);
}

static int check_key(const char *key, sv_err *err)
{
    if (!key || !*key)
        return sv_fail(err, SV_EINVAL, "catalog key must be a non-empty string");
    return 0;
}

int sv_catalog_get(sv_catalog *cat, const char *key, char **val, size_t *len, int64_t *rev, sv_err *err)
{
    *val = NULL;
    if (len)
        *len = 0;
    if (rev)
        *rev = 0;
    if (check_key(key, err))
        return SV_EINVAL;
    return cat->drv->get(cat, key, val, len, rev, err);
}

int sv_catalog_put(sv_catalog *cat, const char *key, const void *val, size_t len, int64_t lease_id, sv_err *err)
{
    sv_catalog_op op = {.key = key, .val = val ? val : "", .len = val ? len : 0, .lease_id = lease_id};
    return sv_catalog_txn(cat, NULL, 0, &op, 1, err);
}

int sv_catalog_delete(sv_catalog *cat, const char *key, sv_err *err)
{
    sv_catalog_op op = {.key = key, .val = NULL};
    return sv_catalog_txn(cat, NULL, 0, &op, 1, err);
}

int sv_catalog_scan(sv_catalog *cat, const char *prefix, sv_catalog_scan_fn fn, void *ud, sv_err *err)
{
    if (!fn)
        return sv_fail(err, SV_EINVAL, "catalog scan needs a callback");
    return cat->drv->scan(cat, prefix ? prefix : "", fn, ud, err);
}

int sv_catalog_txn(sv_catalog *cat, const sv_catalog_cond *conds, size_t nconds, const sv_catalog_op *ops,
                   size_t nops, sv_err *err)
{
    if ((nconds && !conds) || (nops && !ops))
        return sv_fail(err, SV_EINVAL, "catalog txn: NULL condition or op array");
    for (size_t i = 0; i < nconds; i++) {
        if (check_key(conds[i].key, err))
            return SV_EINVAL;
        if (conds[i].expect_rev < -1)
            return sv_fail(err, SV_EINVAL, "catalog txn: condition on %s has expect_rev %lld; use -1, 0 or a revision",
                           conds[i].key, (long long)conds[i].expect_rev);
    }
    for (size_t i = 0; i < nops; i++) {
        if (check_key(ops[i].key, err))
            return SV_EINVAL;
        if (ops[i].lease_id < 0)
            return sv_fail(err, SV_EINVAL, "catalog txn: negative lease id on %s", ops[i].key);
        /* As etcd: one key once per txn, so the outcome never depends on op order. */
        for (size_t j = 0; j < i; j++)
            if (!strcmp(ops[i].key, ops[j].key))
                return sv_fail(err, SV_EINVAL, "catalog txn: key %s appears in more than one op", ops[i].key);
    }
    return cat->drv->txn(cat, conds, nconds, ops, nops, err);
}

int sv_catalog_lease_grant(sv_catalog *cat, int64_t ttl_ms, int64_t *lease_id, sv_err *err)
{
    *lease_id = 0;
    if (ttl_ms <= 0)
        return sv_fail(err, SV_EINVAL, "lease TTL must be positive (got %lld ms)", (long long)ttl_ms);
    return cat->drv->lease_grant(cat, ttl_ms, lease_id, err);
}

int sv_catalog_lease_keepalive(sv_catalog *cat, int64_t lease_id, sv_err *err)
{
    if (lease_id <= 0)
        return sv_fail(err, SV_EINVAL, "lease id must be positive");
    return cat->drv->lease_keepalive(cat, lease_id, err);
}

int sv_catalog_lease_revoke(sv_catalog *cat, int64_t lease_id, sv_err *err)
{
    if (lease_id <= 0)
        return sv_fail(err, SV_EINVAL, "lease id must be positive");
    return cat->drv->lease_revoke(cat, lease_id, err);
}

int sv_catalog_apply(sv_catalog *cat, const sv_catalog_op *ops, size_t nops, sv_err *err)
{
    for (size_t at = 0; at < nops; at += SV_CATALOG_MAX_TXN_OPS) {
        size_t n = nops - at < SV_CATALOG_MAX_TXN_OPS ? nops - at : SV_CATALOG_MAX_TXN_OPS;
        int rc = sv_catalog_txn(cat, NULL, 0, ops + at, n, err);
        if (rc)
            return rc;
    }
    return 0;
}

int sv_catalog_watch_start(sv_catalog *cat, const char *prefix, int64_t after_rev, sv_catalog_watch_fn fn, void *ud,
                           sv_catalog_watch **out, sv_err *err)
{
    *out = NULL;
    if (!fn)
        return sv_fail(err, SV_EINVAL, "catalog watch needs a callback");
    if (after_rev < 0)
        return sv_fail(err, SV_EINVAL, "catalog watch: after_rev must be 0 (list first) or a revision");
    int rc = cat->drv->watch_start(cat, prefix ? prefix : "", after_rev, fn, ud, out, err);
    if (rc == 0)
        (*out)->cat = cat;
    return rc;
}

int64_t sv_catalog_watch_revision(const sv_catalog_watch *w)
{
    return w->cat->drv->watch_revision(w);
}

void sv_catalog_watch_stop(sv_catalog_watch *w)
{
    if (w)
        w->cat->drv->watch_stop(w);
}

void sv_catalog_metrics(sv_buf *o, void *ud)
{
    sv_catalog *c = ud;
    sv_buf_printf(o,
                  "# HELP shardvault_catalog_up 1 when the catalog answers (etcd: 0 while no endpoint does).\n"
                  "# TYPE shardvault_catalog_up gauge\nshardvault_catalog_up{driver=\"%s\"} %d\n"
                  "# HELP shardvault_catalog_requests_total Requests sent to the catalog's backend.\n"
                  "# TYPE shardvault_catalog_requests_total counter\nshardvault_catalog_requests_total %lld\n"
                  "# HELP shardvault_catalog_failed_attempts_total Attempts that failed over or were retried.\n"
                  "# TYPE shardvault_catalog_failed_attempts_total counter\n"
                  "shardvault_catalog_failed_attempts_total %lld\n"
                  "# HELP shardvault_catalog_unavailable_total Calls that gave up: catalog unavailable (503).\n"
                  "# TYPE shardvault_catalog_unavailable_total counter\nshardvault_catalog_unavailable_total %lld\n"
                  "# HELP shardvault_catalog_watch_relists_total Watches that re-listed their prefix.\n"
                  "# TYPE shardvault_catalog_watch_relists_total counter\nshardvault_catalog_watch_relists_total "
                  "%lld\n",
                  c->drv->name, atomic_load(&c->m_down) ? 0 : 1, (long long)atomic_load(&c->m_requests),
                  (long long)atomic_load(&c->m_failed_attempts), (long long)atomic_load(&c->m_unavailable),
                  (long long)atomic_load(&c->m_relists));
}

const char *sv_catalog_driver_name(const sv_catalog *cat)
{
    return cat->drv->name;
}

bool sv_catalog_shared(const sv_catalog *cat) { return cat && strcmp(cat->drv->name, "embedded") != 0; }
