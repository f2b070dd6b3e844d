/* catalog — the metastore: ordered string keys with get / put / delete /
 * prefix scan / atomic compare-and-set batch / leases with TTL / watch.
 *
 * Drivers behind this one interface: "embedded" (a RocksDB under the data
 * dir; the default) and "etcd" (etcd's v3 JSON gateway over libcurl; see
 * docs/catalog.md). Every key carries a
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
 * path, which means embedded), or "etcd://host:port[,host:port...][/namespace/]"
 * [?timeout_ms=N&retry_ms=N]. An etcd catalog that no endpoint answers within
 * retry_ms gives SV_EUNAVAIL. */
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

/* etcd executes at most this many conditions and this many ops in one txn
 * (its default --max-txn-ops). On etcd, a txn with more conditions, or with
 * conditions and more ops, is refused with SV_ETOOBIG (it cannot be atomic);
 * one without conditions is applied in chunks of this size, in op order,
 * each chunk atomic (see docs/catalog.md). The embedded driver has no limit.
 * sv_catalog_apply splits explicitly on every driver. */
#define SV_CATALOG_MAX_TXN_OPS 128

int sv_catalog_txn(sv_catalog *cat, const sv_catalog_cond *conds, size_t nconds, const sv_catalog_op *ops,
                   size_t nops, sv_err *err);

/* Applies ops (no conditions) in txns of at most SV_CATALOG_MAX_TXN_OPS:
 * atomic per chunk, not as a whole — for bulk writes and clean-ups whose
 * parts stand alone. On an error the earlier chunks stay applied. */
int sv_catalog_apply(sv_catalog *cat, const sv_catalog_op *ops, size_t nops, sv_err *err);

/* Leases: keys put with a lease are deleted when it expires or is revoked.
 * Embedded leases persist, so a key attached to a lease that expired while
 * the process was down is gone at the next open. */
int sv_catalog_lease_grant(sv_catalog *cat, int64_t ttl_ms, int64_t *lease_id, sv_err *err);
int sv_catalog_lease_keepalive(sv_catalog *cat, int64_t lease_id, sv_err *err); /* SV_ENOTFOUND if expired */
int sv_catalog_lease_revoke(sv_catalog *cat, int64_t lease_id, sv_err *err);

/* Leases are whole seconds on etcd (ttl_ms rounded up, and etcd may raise
 * it to its minimum); milliseconds on the embedded driver. */

/* ---- watch ------------------------------------------------------------------
 * A watch delivers, in revision order, every change to keys under a prefix,
 * on a thread of its own. When it cannot say what happened in between (it
 * starts without a revision, the revision it resumes from was compacted, it
 * fell too far behind), it re-lists: RESET ("forget what you know under the
 * prefix"), a PUT for every key there now, then SYNCED with the listing's
 * revision; changes after that revision follow. A consumer that applies
 * RESET/PUT/DELETE to a map therefore always converges on the catalog. */
typedef enum sv_catalog_event_type {
    SV_CATALOG_EV_PUT,
    SV_CATALOG_EV_DELETE, /* val NULL, len 0 */
    SV_CATALOG_EV_RESET,  /* key NULL */
    SV_CATALOG_EV_SYNCED, /* key NULL; rev = the listing's revision */
} sv_catalog_event_type;

typedef struct sv_catalog_event {
    sv_catalog_event_type type;
    const char *key; /* valid during the callback */
    const char *val; /* NUL-terminated, not counted in len */
    size_t len;
    int64_t rev; /* the change's revision */
} sv_catalog_event;

typedef void (*sv_catalog_watch_fn)(const sv_catalog_event *ev, void *ud);
typedef struct sv_catalog_watch sv_catalog_watch;

/* after_rev 0: list first, then follow. after_rev > 0: changes with a
 * revision above after_rev (re-listing if they are no longer known). The
 * watch keeps going through catalog outages (reconnecting, re-listing when
 * needed); fn must not call sv_catalog_watch_stop on its own watch. */
int sv_catalog_watch_start(sv_catalog *cat, const char *prefix, int64_t after_rev, sv_catalog_watch_fn fn, void *ud,
                           sv_catalog_watch **out, sv_err *err);
/* The revision up to which every change under the prefix has been delivered
 * (and fn has returned): a consumer can persist it and later resume with
 * after_rev = it. 0 while a listing is under way or before the first. */
int64_t sv_catalog_watch_revision(const sv_catalog_watch *w);

/* Ends the watch: fn is not running and is not called again once this
 * returns. NULL is fine. */
void sv_catalog_watch_stop(sv_catalog_watch *w);

/* Prometheus lines (an sv_metrics_fn for the server; ud = the catalog):
 * shardvault_catalog_up (etcd: 0 while no endpoint answers),
 * shardvault_catalog_requests_total, shardvault_catalog_failed_attempts_total
 * (attempts that went to another endpoint or round), shardvault_catalog_
 * unavailable_total (calls that gave up with SV_EUNAVAIL),
 * shardvault_catalog_watch_relists_total. */
void sv_catalog_metrics(sv_buf *out, void *ud);

/* The driver's name: "embedded" or "etcd". */
const char *sv_catalog_driver_name(const sv_catalog *cat);
/* True when other processes may share this catalog (etcd: a cluster); the
 * embedded one belongs to one process. NULL is false. */
bool sv_catalog_shared(const sv_catalog *cat);

#endif
