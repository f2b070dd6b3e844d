/* catalog driver boundary. A driver fills one sv_catalog_driver table and
 * returns an object whose first member is `struct sv_catalog`; catalog.c
 * parses the URL, validates arguments once, and dispatches. An etcd driver
 * (catalog_etcd.c, libcurl + v3 JSON gateway) is the second driver. Drivers may assume non-NULL,
 * non-empty keys and well-formed conditions (catalog.c checks them).
 */
#ifndef SV_CATALOG_INTERNAL_H
#define SV_CATALOG_INTERNAL_H

#include <stdatomic.h>

#include "catalog.h"

typedef struct sv_catalog_driver {
    const char *name; /* "embedded", "etcd" */
    void (*close)(sv_catalog *cat);
    int (*get)(sv_catalog *cat, const char *key, char **val, size_t *len, int64_t *rev, sv_err *err);
    int (*scan)(sv_catalog *cat, const char *prefix, sv_catalog_scan_fn fn, void *ud, sv_err *err);
    /* put and delete are single-op transactions; drivers implement txn only. */
    int (*txn)(sv_catalog *cat, const sv_catalog_cond *conds, size_t nconds, const sv_catalog_op *ops,
               size_t nops, sv_err *err);
    int (*lease_grant)(sv_catalog *cat, int64_t ttl_ms, int64_t *lease_id, sv_err *err);
    int (*lease_keepalive)(sv_catalog *cat, int64_t lease_id, sv_err *err);
    int (*lease_revoke)(sv_catalog *cat, int64_t lease_id, sv_err *err);
    /* Returns a watch whose first member is `struct sv_catalog_watch`. */
    int (*watch_start)(sv_catalog *cat, const char *prefix, int64_t after_rev, sv_catalog_watch_fn fn, void *ud,
                       sv_catalog_watch **out, sv_err *err);
    void (*watch_stop)(sv_catalog_watch *w);
    int64_t (*watch_revision)(const sv_catalog_watch *w);
} sv_catalog_driver;

struct sv_catalog {
    const sv_catalog_driver *drv;
    /* counters for sv_catalog_metrics (drivers bump what applies) */
    _Atomic int64_t m_requests, m_failed_attempts, m_unavailable, m_relists;
    _Atomic int m_down;
};

struct sv_catalog_watch {
    sv_catalog *cat;
};

/* dir: a filesystem path (created if missing). */
int sv_catalog_embedded_open(const char *dir, sv_catalog **out, sv_err *err);
/* spec: what follows "etcd://". */
int sv_catalog_etcd_open(const char *spec, sv_catalog **out, sv_err *err);

#endif
