/* snapshot — named, immutable, point-in-time copies of a collection in the
 * location, restore jobs that rebuild a collection from one, and garbage
 * collection of the content-addressed blobs they share.
 *
 *   {location}/blobs/{sha256[0:2]}/{sha256}                 shard files, shared
 *   {location}/snapshots/{collection}/{name}/manifest.json   one per COMMITTED snapshot
 *
 * Snapshot records (`snapshots/<collection>/<name>`), restore jobs
 * (`restore-jobs/<id>`) and their per-shard tasks (`restore-tasks/<id>/<shard>`)
 * live in the catalog and are persisted before memory changes. See
 * docs/snapshot.md for states, manifest format, GC rules and crash behaviour.
 *
 * Every answer is a jansson value in the API's JSON shape; the caller owns it
 * (json_decref). All functions are thread-safe. Names from requests are
 * validated here before they touch a key or a path.
 */
#ifndef SV_SNAPSHOT_H
#define SV_SNAPSHOT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "catalog.h"
#include "core.h"
#include "store.h"

typedef struct sv_snapshot sv_snapshot;
struct sv_job; /* jobs.h */

/* Zero / NULL fields mean "from the environment, else the default"
 * (variables in brackets, documented in docs/snapshot.md). */
typedef struct sv_snapshot_opts {
    const char *data_dir;        /* required: restore staging lives below it */
    const char *location_url;    /* [SHARDVAULT_SNAPSHOT_LOCATION] file://<data>/location */
    int64_t gc_interval_ms;      /* [SHARDVAULT_SNAPSHOT_GC_INTERVAL_MS] 15 min; <0 = never */
    int64_t gc_grace_ms;         /* [SHARDVAULT_SNAPSHOT_GC_GRACE_MS] 1 h; <0 = 0 */
    int64_t pending_timeout_ms;  /* [SHARDVAULT_SNAPSHOT_PENDING_TIMEOUT_MS] 1 h */
    int workers;                 /* [SHARDVAULT_SNAPSHOT_WORKERS] 2: hashing and restore threads */
    const char *node_name;       /* owner of PENDING records; NULL = "node1" */
    struct sv_jobs *jobs;        /* borrowed, may be NULL: creates, restores and GC runs are also jobs
                                    (kinds "snapshot", "restore", "gc") and snapshots can be scheduled */
} sv_snapshot_opts;

/* st and cat are borrowed and must outlive the service. Opening finishes what
 * a previous process left: PENDING snapshots of this node become FAILED,
 * DELETING ones are deleted, unfinished restore jobs resume. */
int sv_snapshot_open(const sv_snapshot_opts *opts, sv_store *st, sv_catalog *cat, sv_snapshot **out, sv_err *err);
/* Stops background work (running creates end FAILED, running restores are
 * left to resume at the next open) and frees. NULL is fine. */
void sv_snapshot_close(sv_snapshot *s);

/* body: {"name", "description"?}. Answers {name, collection, status, createdAt}
 * at once, or — with wait — the full record once COMMITTED or FAILED. */
int sv_snapshot_create(sv_snapshot *s, const char *collection, json_t *body, bool wait, json_t **out, sv_err *err);
int sv_snapshot_get(sv_snapshot *s, const char *collection, const char *name, json_t **out, sv_err *err);
int sv_snapshot_list(sv_snapshot *s, const char *collection, json_t **out, sv_err *err);
/* SV_ECONFLICT while a restore reads it or while it is being created. */
int sv_snapshot_drop(sv_snapshot *s, const char *collection, const char *name, sv_err *err);

/* body: {"target": "NewCollection"}. Answers {jobId}. */
int sv_snapshot_restore(sv_snapshot *s, const char *collection, const char *name, json_t *body, json_t **out,
                        sv_err *err);
int sv_snapshot_job_get(sv_snapshot *s, const char *job_id, json_t **out, sv_err *err);
int sv_snapshot_job_list(sv_snapshot *s, json_t **out, sv_err *err);

/* Runs garbage collection now: {blobsDeleted, bytesFreed, ...}. */
int sv_snapshot_gc(sv_snapshot *s, json_t **out, sv_err *err);

/* ---- one shard directory as blobs (the one mechanism: capture -> blobs ->
 * manifest -> hydrate; tenant offload and shard moves build on it) ---- */

typedef struct sv_dir_stats {
    int64_t files, bytes, bytes_uploaded;
} sv_dir_stats;

/* Stores every file of dir (a closed RocksDB directory or a checkpoint of
 * shard `shard` of `collection`) as content-addressed blobs — the location's
 * copies are reused, so an unchanged directory uploads nothing — and writes
 * the manifest at key (relative to the location, ending in /manifest.json,
 * outside snapshots/), which snapshot GC then treats as a reference. The
 * blobs are protected from GC from the moment they are hashed. job (may be
 * NULL) gets the counters and can cancel. out (may be NULL) gets the sizes. */
int sv_snapshot_put_dir(sv_snapshot *s, const char *dir, const char *collection, const char *shard, int64_t objects,
                        const char *key, struct sv_job *job, sv_dir_stats *out, sv_err *err);
/* Lays out the one shard described by the manifest at key into dir (which
 * must not exist), every file verified against its sha256 (hard links on
 * file://). On failure nothing is left at dir. */
/* shard: which shard of the manifest (NULL: a one-shard manifest's only one,
 * as sv_snapshot_put_dir writes). progress (may be NULL) counts bytes laid out. */
int sv_snapshot_get_dir(sv_snapshot *s, const char *key, const char *shard, const char *dir, struct sv_job *job,
                        _Atomic int64_t *progress, sv_dir_stats *out, sv_err *err);
/* The sizes of that shard (nothing fetched but the manifest): out->files,
 * out->bytes; *objects (may be NULL) its count. */
int sv_snapshot_dir_info(sv_snapshot *s, const char *key, const char *shard, sv_dir_stats *out, int64_t *objects,
                         sv_err *err);
/* The collection schema (JSON, malloc'd) recorded in the manifest at key. */
int sv_snapshot_dir_schema(sv_snapshot *s, const char *key, char **schema_json, sv_err *err);

/* Deletes the manifest at key that sv_snapshot_put_dir wrote (its blobs go
 * at the next GC if nothing else references them). Absent is fine. */
int sv_snapshot_drop_dir(sv_snapshot *s, const char *key, sv_err *err);

/* ---- reading a COMMITTED snapshot in place (registry mounts) ---- */

typedef struct sv_snapshot_shard {
    char name[72]; /* "shard0000"… or the tenant name */
    bool is_tenant;
    int64_t objects, bytes;
} sv_snapshot_shard;

/* A COMMITTED snapshot: its manifest key (for sv_snapshot_get_dir), its
 * schema (caller frees with sv_schema_free; may pass NULL) and its shards
 * in manifest order (caller frees; may pass NULL). SV_ENOTFOUND, or
 * SV_ESTATE when not COMMITTED. */
int sv_snapshot_describe(sv_snapshot *s, const char *collection, const char *name, char key[400],
                         sv_schema **schema, sv_snapshot_shard **shards, size_t *n, sv_err *err);
/* A held snapshot (mounted) cannot be dropped: sv_snapshot_drop answers
 * SV_ECONFLICT saying to unmount it. Holds count; they live in memory (the
 * holder takes them again after a restart). */
int sv_snapshot_hold(sv_snapshot *s, const char *collection, const char *name, sv_err *err);
void sv_snapshot_unhold(sv_snapshot *s, const char *collection, const char *name);

/* Prometheus text for /metrics (signature of sv_metrics_fn). */
void sv_snapshot_metrics(sv_buf *out, void *snapshot);

#endif
