/* registry — the shard registry: which shards exist, where their bytes come
 * from, and a transient local cache they are hydrated into on demand (after
 * filecoin's dagstore; docs/registry.md).
 *
 * The registry knows nothing of the store, tenants or snapshots. The owner of
 * a shard registers it with a source kind (LOCAL | OFFLOADED | SNAPSHOT) and
 * sets one mount per source kind: two callbacks that say how big a shard is
 * and fetch it into a directory. A reader acquires a shard and gets a
 * directory in the cache that stays put until it releases the reference.
 *
 * States (persisted at `registry/shards/<collection>/<shard>` after every
 * transition; memory follows the catalog, never the reverse):
 *
 *     NEW -> INITIALIZING -> AVAILABLE <-> SERVING
 *                  \
 *                   -> ERRORED -> RECOVERING -> AVAILABLE | ERRORED
 *     AVAILABLE -> NEW          (evicted from the cache)
 *
 * Acquire: AVAILABLE/SERVING answer at once. NEW (or ERRORED, when the
 * recovery policy is ON_ACQUIRE) starts one hydration per shard however many
 * acquirers ask; they are parked and answered together when it ends, each by
 * its own deadline. Hydrations run on at most max_concurrent_hydrations
 * threads. The cache never holds more than cache_quota_bytes (reserved for
 * downloads in progress + present): least-recently-used unreferenced,
 * unpinned shards are evicted to make room, and a hydration that cannot get
 * room waits (FIFO) until its acquirers' deadlines, which then fail
 * SV_ENOSPACE (HTTP 507) naming the quota.
 *
 * Ownership: the registry borrows the catalog (which must outlive it) and
 * copies mounts (their `self` must outlive the registry or be replaced).
 * Strings passed in are copied. An sv_shard_ref is owned by the acquirer and
 * released with sv_registry_release; every ref must be released before
 * sv_registry_close.
 *
 * Thread safety: every function may be called from any thread. Mount
 * callbacks are called from registry threads without any registry lock held;
 * they may call back into the registry except to wait on the shard they are
 * fetching.
 */
#ifndef SV_REGISTRY_H
#define SV_REGISTRY_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "core.h"

typedef struct sv_registry sv_registry;
typedef struct sv_shard_ref sv_shard_ref;

typedef enum {
    SV_SHARD_NEW,
    SV_SHARD_INITIALIZING,
    SV_SHARD_AVAILABLE,
    SV_SHARD_SERVING,
    SV_SHARD_ERRORED,
    SV_SHARD_RECOVERING,
} sv_shard_state;
#define SV_SHARD_NSTATES 6

typedef enum {
    SV_SHARD_SRC_LOCAL,
    SV_SHARD_SRC_OFFLOADED,
    SV_SHARD_SRC_SNAPSHOT,
} sv_shard_source;
#define SV_SHARD_NSOURCES 3

const char *sv_shard_state_name(sv_shard_state s);   /* "NEW", … */
int sv_shard_state_parse(const char *s);              /* -1 when unknown */
const char *sv_shard_source_name(sv_shard_source s); /* "LOCAL", "OFFLOADED", "SNAPSHOT" */
int sv_shard_source_parse(const char *s);             /* -1 when unknown */

/* How the owner of a shard provides its bytes. Both callbacks return 0 or a
 * negative SV_E* code with a message in err.
 *  size:  the shard's size in bytes (what the cache reserves before fetch).
 *  fetch: writes the shard's files into dir (an empty directory that exists),
 *         adding to *progress (atomically) the bytes written so far. Must not
 *         write more than size announced. */
typedef struct sv_registry_mount {
    void *self;
    int (*size)(void *self, const char *collection, const char *shard, int64_t *bytes, sv_err *err);
    int (*fetch)(void *self, const char *collection, const char *shard, const char *dir, _Atomic int64_t *progress,
                 sv_err *err);
} sv_registry_mount;

typedef enum {
    SV_REGISTRY_RECOVER_ON_ACQUIRE = 0, /* the default: an ERRORED shard is re-hydrated by the next acquire */
    SV_REGISTRY_RECOVER_NONE,           /* ERRORED stays ERRORED until sv_registry_recover */
    SV_REGISTRY_RECOVER_NOW,            /* as ON_ACQUIRE, and ERRORED shards are recovered in the
                                           background at open (once their source's mount is set) */
} sv_registry_recover_policy;

typedef struct sv_registry_opts {
    const char *cache_dir;            /* required; created; owned by the registry (unknown entries removed) */
    int64_t cache_quota_bytes;        /* required, > 0 */
    int max_concurrent_hydrations;    /* 0 = 4 */
    sv_registry_recover_policy recover_on_start;
    size_t event_ring;                /* 0 = 4096 events kept for readers */
    /* Optional mounts set before recovery runs (same as sv_registry_set_mount
     * right after open); NULL entries are unset. */
    const sv_registry_mount *mounts[SV_SHARD_NSOURCES];
    /* A cluster (a catalog nodes share): this node's name. Its records are
     * then kept under registry/nodes/<node>/shards/, so each node loads,
     * reconciles and changes only its own (every node has its own cache and
     * its own mounts). NULL = one node: registry/shards/. */
    const char *node;
} sv_registry_opts;

/* Loads every shard record (one catalog scan), reconciles transitional
 * states left by a previous process (batched catalog writes), removes cache
 * directories no shard owns, and starts the hydration threads. */
int sv_registry_open(const sv_registry_opts *o, sv_catalog *cat, sv_registry **out, sv_err *err);
/* Answers every parked acquirer SV_EUNAVAIL, waits for fetches in progress,
 * frees. Every sv_shard_ref must have been released. NULL is fine. */
void sv_registry_close(sv_registry *r);

/* Copies *mount (NULL clears it). Queues the background recoveries that
 * policy NOW left waiting for this source. */
int sv_registry_set_mount(sv_registry *r, sv_shard_source source, const sv_registry_mount *mount, sv_err *err);

/* A new shard, NEW; remote_bytes is its size in its source (what a
 * hydration fetches; 0 when unknown, learnt at the first hydration). SV_EEXIST if known, SV_EINVAL for a bad name (collection:
 * sv_check_collection_name; shard: sv_check_tenant_name, or
 * "<snapshot>@<shard>" for a shard of a mounted snapshot). */
int sv_registry_register(sv_registry *r, const char *collection, const char *shard, sv_shard_source source,
                         int64_t remote_bytes, sv_err *err);
/* Removes the record and the shard's cache directory. Parked acquirers are
 * answered SV_ENOTFOUND at once; a fetch in progress finishes into a
 * directory that is then thrown away. SV_ECONFLICT while references are
 * held, SV_ENOTFOUND if unknown. */
int sv_registry_destroy(sv_registry *r, const char *collection, const char *shard, sv_err *err);

/* Gets a reference on the shard's local directory, hydrating it first if
 * needed (see above). timeout_ms <= 0 waits without a deadline. Errors:
 * SV_ENOTFOUND (unknown or destroyed while waiting), SV_ETIMEOUT (deadline
 * while the fetch ran or was queued), SV_ENOSPACE (deadline while waiting for
 * cache room), the fetch's own error (the shard is then ERRORED), SV_ESTATE
 * (ERRORED and policy NONE), SV_EUNAVAIL (no mount for its source yet, or
 * closing). */
int sv_registry_acquire(sv_registry *r, const char *collection, const char *shard, int64_t timeout_ms,
                        sv_shard_ref **ref, sv_err *err);
/* The shard's directory in the cache; valid until the ref is released. */
const char *sv_shard_ref_dir(const sv_shard_ref *ref);
/* Drops the reference (NULL is fine). At 0 references the shard is
 * AVAILABLE again and becomes the most recently used. */
void sv_registry_release(sv_shard_ref *ref);

/* Pinned shards are never evicted. Persisted. SV_ENOTFOUND if unknown. */
int sv_registry_pin(sv_registry *r, const char *collection, const char *shard, sv_err *err);
int sv_registry_unpin(sv_registry *r, const char *collection, const char *shard, sv_err *err);
/* Queues a background re-hydration of an ERRORED shard (any policy).
 * SV_ESTATE if it is not ERRORED. */
int sv_registry_recover(sv_registry *r, const char *collection, const char *shard, sv_err *err);
/* Evicts every evictable shard (AVAILABLE, no reference, not pinned, nobody
 * waiting). Either out pointer may be NULL. */
int sv_registry_gc(sv_registry *r, int64_t *evicted, int64_t *freed_bytes, sv_err *err);

/* ---- events ------------------------------------------------------------------ */

typedef struct sv_registry_event {
    uint64_t seq; /* from 1, no gaps */
    char collection[129];
    char shard[200];
    sv_shard_state from, to;
    int64_t ts_ms; /* wall clock */
} sv_registry_event;

/* Copies up to max events with seq > after_seq, oldest first. Events the
 * ring no longer holds are skipped and counted in *dropped (may be NULL);
 * continue with after_seq = out[n-1].seq. Never blocks the registry. */
int sv_registry_events(sv_registry *r, uint64_t after_seq, sv_registry_event *out, size_t max, size_t *n,
                       uint64_t *dropped);

/* ---- introspection -------------------------------------------------------------- */

typedef struct sv_registry_stats {
    int64_t shards[SV_SHARD_NSTATES]; /* by state */
    int64_t shards_total, pinned;
    int64_t cache_used_bytes;     /* present in the cache */
    int64_t cache_reserved_bytes; /* reserved for fetches in progress */
    int64_t cache_quota_bytes;
    int64_t hydrations_running, hydrations_queued;
    int64_t hits, misses; /* acquires answered at once / that needed a hydration */
    int64_t hydrated_bytes, hydrations_failed, evictions, evicted_bytes;
    int64_t hydration_ns; /* time spent fetching, over successful hydrations */
    uint64_t events_published, events_dropped;
} sv_registry_stats;

void sv_registry_stats_get(sv_registry *r, sv_registry_stats *out);
#define sv_registry_stats(r, out) sv_registry_stats_get((r), (out))

/* {"shards":[{"collection","shard","state","source","refs","localBytes",
 * "remoteBytes","hydration"(0-100),"pinned","lastError","lastTransitionAt"}]}
 * sorted by collection then shard. collection/state filter (NULL = all);
 * SV_EINVAL for an unknown state name. Caller owns *out. */
int sv_registry_shards_json(sv_registry *r, const char *collection, const char *state, json_t **out, sv_err *err);

/* ---- the registry as a service (tenants.c) -------------------------------------- */

struct sv_store;
struct sv_snapshot;
struct sv_jobs;

/* Makes the registry the store's tenant mover: offload and onload run as
 * jobs (kinds "offload", "onload") through the snapshot module's blobs
 * (manifest at {location}/tenants/{c}/{t}/manifest.json), and the OFFLOADED
 * mount hydrates offloaded tenants into the cache (for onload and for
 * captures: snapshots and exports include OFFLOADED tenants). Reconciles the
 * registry's records with the store's OFFLOADED tenants. Call once after
 * open; the services must outlive the registry (close it first). */
int sv_registry_attach(sv_registry *r, struct sv_store *st, struct sv_snapshot *snap, struct sv_jobs *jobs,
                       sv_err *err);

/* A tenant found in the location ({location}/tenants/{c}/{t}/manifest.json)
 * by a catalog rebuild: its collection is created from the manifest's schema
 * if the catalog lacks it, the tenant recorded OFFLOADED (a live tenant of
 * that name is kept, and 0 answered) and registered. ud is the registry (the
 * signature of sv_maintenance_tenant_fn). */
int sv_registry_adopt_tenant(void *ud, const char *collection, const char *tenant, const char *manifest_key,
                             sv_err *err);

/* Snapshot mounts (mounts.c): a COMMITTED snapshot's shards registered as
 * "<snapshot>@<shard>" (source SNAPSHOT, lazy) and the snapshot held against
 * drops. mount answers {"collection","snapshot","mounted","shards","objects",
 * "bytes"} (again for a mounted one); unmount: SV_ECONFLICT while read,
 * SV_ENOTFOUND when not mounted. Reads answer in the live API's shapes and
 * fail SV_ECONFLICT (saying to mount it) for an unmounted snapshot.
 * restore_objects: body {"ids", "tenant"?, "onConflict": "replace"|"skip"}
 * -> {"restored","skipped","missing":[ids]} written into the live collection. */
int sv_registry_mount_snapshot(sv_registry *r, const char *collection, const char *snapshot, json_t **out,
                               sv_err *err);
int sv_registry_unmount_snapshot(sv_registry *r, const char *collection, const char *snapshot, sv_err *err);
int sv_registry_snapshot_get_object(sv_registry *r, const char *collection, const char *snapshot, const char *tenant,
                                    const char *id, sv_buf *out, sv_err *err);
int sv_registry_snapshot_list_objects(sv_registry *r, const char *collection, const char *snapshot, const char *tenant,
                                      const char *after, int limit, sv_buf *out, sv_err *err);
int sv_registry_snapshot_restore_objects(sv_registry *r, const char *collection, const char *snapshot, json_t *body,
                                         json_t **out, sv_err *err);

/* The API's answers (caller owns *out). list: {"shards":[…]} as
 * sv_registry_shards_json plus, once attached, the store's local shards
 * (source "local": ACTIVE ones SERVING, INACTIVE ones AVAILABLE). get: one
 * entry (SV_ENOTFOUND). summary: {"shards":{state:count}, "cacheBytes",
 * "cacheQuotaBytes", "hydrationsRunning", "hydrationsQueued",
 * "cacheReservedBytes"}. */
int sv_registry_list(sv_registry *r, const char *collection, const char *state, json_t **out, sv_err *err);
int sv_registry_get(sv_registry *r, const char *collection, const char *shard, json_t **out, sv_err *err);
int sv_registry_summary(sv_registry *r, json_t **out, sv_err *err);

/* Prometheus text, names shardvault_registry_* (signature of sv_metrics_fn). */
void sv_registry_metrics(sv_buf *out, void *r);

#endif
