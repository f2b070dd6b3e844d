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
    bool defer_resume;           /* unfinished restores are claimed at open but start only at
                                    sv_snapshot_resume (a cluster: once its membership is known) */
} sv_snapshot_opts;

/* st and cat are borrowed and must outlive the service. Opening finishes what
 * a previous process left: PENDING snapshots of this node become FAILED,
 * DELETING ones are deleted, unfinished restore jobs resume. */
int sv_snapshot_open(const sv_snapshot_opts *opts, sv_store *st, sv_catalog *cat, sv_snapshot **out, sv_err *err);
/* Stops background work (running creates end FAILED, running restores are
 * left to resume at the next open) and frees. NULL is fine. */
void sv_snapshot_close(sv_snapshot *s);
/* With defer_resume: starts the restores open claimed. Call once. */
void sv_snapshot_resume(sv_snapshot *s);

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
/* A file an earlier sv_snapshot_get_dir laid out and verified. */
typedef struct sv_dir_file {
    char name[256];
    char sha256[65];
    int64_t size;
} sv_dir_file;
/* The files the manifest at key lists for shard (NULL: its only one):
 * *out malloc'd (free()), *n entries. */
int sv_snapshot_dir_files(sv_snapshot *s, const char *key, const char *shard, sv_dir_file **out, size_t *n,
                          sv_err *err);
/* As sv_snapshot_get_dir, taking every immutable file (SST, blob file) that
 * reuse (a directory an earlier get_dir of the same shard laid out; may be
 * NULL) holds with the same name and size as a hard link instead of fetching
 * it (shard moves: the catch-up fetches only the delta). A file listed in
 * known (what that earlier get_dir verified; may be NULL) with the sha256 the
 * manifest names is trusted as it is; any other reused file is hashed and
 * compared first. out->bytes_uploaded gets the bytes fetched. */
int sv_snapshot_get_dir_reusing(sv_snapshot *s, const char *key, const char *shard, const char *dir,
                                const char *reuse, const sv_dir_file *known, size_t nknown, struct sv_job *job,
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


/* ---- for maintenance (rebuild, verify, checkpoints, the store descriptor) ----
 * Typed access to what the snapshot service keeps, so maintenance never parses
 * manifests or builds snapshot records itself. See docs/maintenance.md. */

struct sv_location;
struct sv_manifest; /* a parsed manifest (snapshot or offloaded tenant) */

/* The service's location (borrowed; valid until sv_snapshot_close). */
struct sv_location *sv_snapshot_location(sv_snapshot *s);
/* Its URL as configured ("file:///…", "s3://bucket/prefix"). */
const char *sv_snapshot_location_url(const sv_snapshot *s);
/* true when the location lies in this node's data directory (the default):
 * no other node reads it, so nothing that crosses nodes can go through it. */
bool sv_snapshot_location_is_own(const sv_snapshot *s);

/* Switches the location to url (maintenance move, after copying everything
 * there): SV_ECONFLICT while a snapshot is being created or restored or GC
 * runs. The old location object stays open until close. */
int sv_snapshot_set_location(sv_snapshot *s, const char *url, sv_err *err);

/* before_write (may be NULL) is asked before anything is written to or
 * deleted from the location (create, put_dir, GC): a non-zero answer refuses
 * the operation with its message. changed (may be NULL) is told after a
 * snapshot became COMMITTED or was dropped. Set once, before requests. */
typedef struct sv_snapshot_hooks {
    int (*before_write)(void *ud, sv_err *err);
    void (*changed)(void *ud);
    void *ud;
} sv_snapshot_hooks;
void sv_snapshot_set_hooks(sv_snapshot *s, const sv_snapshot_hooks *hooks);

/* Reads and parses the manifest at key; *json_bytes (may be NULL) gets its
 * size. SV_ENOTFOUND if absent, SV_ECORRUPT if it does not parse. */
int sv_snapshot_manifest_load(sv_snapshot *s, const char *key, struct sv_manifest **out, int64_t *json_bytes,
                              sv_err *err);
void sv_snapshot_manifest_free(struct sv_manifest *m); /* NULL is fine */
typedef struct sv_snapshot_manifest_info {
    const char *collection, *name; /* valid while m lives */
    int64_t objects, bytes, created_at, captured_at;
    size_t nshards, nfiles;
} sv_snapshot_manifest_info;
void sv_snapshot_manifest_info_of(const struct sv_manifest *m, sv_snapshot_manifest_info *out);
/* fn(ud, sha256 hex, size) for every file of every shard, in order; a
 * non-zero return stops and is returned. */
int sv_snapshot_manifest_blobs(const struct sv_manifest *m, int (*fn)(void *ud, const char *hex, int64_t size),
                               void *ud);
/* "blobs/ab/ab…" for a sha256 hex. */
void sv_snapshot_blob_key(const char *hex, char key[80]);

/* The catalog key and value (malloc'd) of the COMMITTED record a manifest at
 * snapshots/<c>/<n>/manifest.json describes — what create would have written
 * (no schedule: manifests do not carry it). */
int sv_snapshot_record_of_manifest(sv_snapshot *s, const struct sv_manifest *m, char key[400], char **val,
                                   sv_err *err);
/* The catalog key and value of a record as exported by sv_snapshot_records
 * (checked: names, COMMITTED). */
int sv_snapshot_record_kv(const json_t *rec, char key[400], char **val, sv_err *err);
/* True when the catalog holds a record for collection/name. */
bool sv_snapshot_record_exists(sv_snapshot *s, const char *collection, const char *name);
/* Every COMMITTED record as stored (a JSON array, caller owns). */
int sv_snapshot_records(sv_snapshot *s, json_t **out, sv_err *err);
/* Sets (or clears) "damaged" and "damage" (detail) on a record: GET shows
 * them. SV_ENOTFOUND if the record is gone. */
int sv_snapshot_mark_damaged(sv_snapshot *s, const char *collection, const char *name, bool damaged,
                             const char *detail, sv_err *err);

/* ---- cluster-wide snapshot (snapshot_cut.c; docs/cluster.md "Cluster-wide
 * snapshot") ---- */

typedef struct sv_snapshot_rpc {
    const char *node; /* in */
    char path[300];   /* in: "/v1/cluster/snapshot/…" */
    json_t *body;     /* in, borrowed; NULL = {} */
    int rc;           /* out: 0 = the node answered (status); else why not (err) */
    int status;
    sv_err err;       /* out: the reason, also for an answer >= 300 */
    json_t *reply;    /* out: the answer's JSON when status < 300 (caller frees) */
} sv_snapshot_rpc;

typedef struct sv_snapshot_cluster {
    void *self;
    /* Sends every call in parallel; returns once all answered or failed. */
    void (*send)(void *self, sv_snapshot_rpc *calls, size_t n, int64_t timeout_ms);
    /* The nodes whose lease is alive (*out malloc'd; may be NULL: a restore
     * then places every shard on the node running it). */
    int (*healthy_nodes)(void *self, char (**out)[65], size_t *n, sv_err *err);
} sv_snapshot_cluster;

/* Call once, before requests: a snapshot of a collection whose shards live on
 * several nodes is then one cut across them, coordinated by this node. */
void sv_snapshot_set_cluster(sv_snapshot *s, const sv_snapshot_cluster *c);

/* The owner's side (POST /v1/cluster/snapshot/…): cut {collection, id}
 * closes the gates of this node's shards of the collection and checkpoints
 * them (answers {node, shards, objects}); release opens the gates ({stallMs,
 * expired}); upload {name} stores the checkpoints as blobs ({shards: [{name,
 * node, key|null, objects}]}); abort drops everything of the cut. */
int sv_snapshot_cut_prepare(sv_snapshot *s, json_t *req, json_t **out, sv_err *err);
int sv_snapshot_cut_release(sv_snapshot *s, const char *id, json_t **out, sv_err *err);
int sv_snapshot_cut_upload(sv_snapshot *s, const char *id, json_t **out, sv_err *err);
void sv_snapshot_cut_abort(sv_snapshot *s, const char *id);
/* A restore across nodes, the owner's side (POST /v1/cluster/restore/…):
 * lay {job, collection, snapshot, uid, shards} lays out those shards of the
 * snapshot where the target's shards live on this node (answers {node,
 * shards, objects}); unlay {uid} removes them (an adoption that did not
 * happen). */
int sv_snapshot_restore_lay(sv_snapshot *s, json_t *req, json_t **out, sv_err *err);
int sv_snapshot_restore_unlay(sv_snapshot *s, json_t *req, sv_err *err);

/* Prometheus text for /metrics (signature of sv_metrics_fn). */
void sv_snapshot_metrics(sv_buf *out, void *snapshot);

#endif
