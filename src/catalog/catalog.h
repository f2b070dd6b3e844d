/* catalog — the metastore: ordered string keys with get / put / delete /
 * prefix scan / atomic compare-and-set batch / leases with TTL.
 *
 * Drivers behind this one interface: "embedded" (a RocksDB under the data
 * dir; the default) and, later, "etcd" (v3 JSON gateway). Every key carries a
 * revision (a store-wide counter bumped by every write, as etcd's
 * mod_revision), which compare-and-set conditions test.
 *
 * Ownership: values handed to callbacks are valid only during the callback;
 * values returned by get are malloc'd and freed by the caller. The catalog is
 * thread-safe.
 */
#ifndef SV_CATALOG_H
#define SV_CATALOG_H

#include "core.h"

typedef struct sv_catalog sv_catalog;

/* url: "embedded:///abs/dir" or "embedded://./rel/dir" (or a plain directory
 * path, which means embedded). */
int sv_catalog_open(const char *url, sv_catalog **out, sv_err *err);
void sv_catalog_close(sv_catalog *cat);

/* SV_ENOTFOUND when absent. *rev (may be NULL) receives the key's revision. */
int sv_catalog_get(sv_catalog *cat, const char *key, char **val, size_t *len, int64_t *rev, sv_err *err);
/* Durable (fsynced) before it returns. lease_id 0 = no lease. */
int sv_catalog_put(sv_catalog *cat, const char *key, const void *val, size_t len, int64_t lease_id, sv_err *err);
int sv_catalog_delete(sv_catalog *cat, const char *key, sv_err *err); /* absent is fine */

/* Calls fn for every key starting with prefix, in key order. A non-zero
 * return from fn stops the scan and is returned. */
typedef int (*sv_catalog_scan_fn)(const char *key, const char *val, size_t len, int64_t rev, void *ud);
int sv_catalog_scan(sv_catalog *cat, const char *prefix, sv_catalog_scan_fn fn, void *ud, sv_err *err);

/* Atomic transaction: if every condition holds, apply every op; otherwise
 * nothing is written and SV_ECONFLICT is returned naming the first failed
 * condition. A condition checks a key's revision: expect_rev == 0 means "the
 * key must be absent", > 0 means "must exist with exactly this revision",
 * -1 means "must exist (any revision)". */
typedef struct sv_catalog_cond {
    const char *key;
    int64_t expect_rev;
} sv_catalog_cond;

typedef struct sv_catalog_op {
    const char *key;
    const void *val; /* NULL = delete */
    size_t len;
    int64_t lease_id;
} sv_catalog_op;

int sv_catalog_txn(sv_catalog *cat, const sv_catalog_cond *conds, size_t nconds, const sv_catalog_op *ops,
                   size_t nops, sv_err *err);

/* Leases: keys put with a lease are deleted when it expires or is revoked.
 * Embedded leases persist, so a key attached to a lease that expired while
 * the process was down is gone at the next open. */
int sv_catalog_lease_grant(sv_catalog *cat, int64_t ttl_ms, int64_t *lease_id, sv_err *err);
int sv_catalog_lease_keepalive(sv_catalog *cat, int64_t lease_id, sv_err *err); /* SV_ENOTFOUND if expired */
int sv_catalog_lease_revoke(sv_catalog *cat, int64_t lease_id, sv_err *err);

#endif
