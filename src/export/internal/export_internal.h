/* Internal to the export module (and its unit tests): request options,
 * Parquet row layouts, key ranges, file names, and the service structure
 * shared by the scheduler (export.c) and the local participant
 * (participant.c). */
#ifndef SV_EXPORT_INTERNAL_H
#define SV_EXPORT_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "core.h"
#include "engine.h"
#include "export.h"
#include "jobs.h"
#include "location.h"
#include "parquet.h"
#include "record.h"

typedef enum { SV_EXPORT_SCHEMA_TYPED = 0, SV_EXPORT_SCHEMA_WEAVIATE = 1 } sv_export_schema_kind;

typedef struct sv_export_file_opts {
    sv_export_schema_kind schema;
    sv_pq_codec codec;
    int level; /* 0 = codec default */
} sv_export_file_opts;

/* Parses the request's "options" (may be NULL). SV_EINVAL names the field. */
int sv_export_file_opts_parse(json_t *opts, sv_export_file_opts *out, sv_err *err);
json_t *sv_export_file_opts_json(const sv_export_file_opts *o);

/* ---- row layout ---------------------------------------------------------- */

/* The Parquet schema of one collection in one layout, and how a record maps
 * onto it. Owned by the caller (sv_export_layout_free). */
typedef struct sv_export_layout sv_export_layout;

int sv_export_layout_new(const sv_schema *s, sv_export_schema_kind kind, sv_export_layout **out, sv_err *err);
void sv_export_layout_free(sv_export_layout *l);
const sv_pq_schema *sv_export_layout_pq(const sv_export_layout *l);
/* The JSON description stored as "shardvault.schema" (NUL-terminated). */
const char *sv_export_layout_description(const sv_export_layout *l);
/* Per-thread scratch space for appending (a layout is shared by the workers
 * of a collection and never written after sv_export_layout_new). Zeroed = empty. */
typedef struct sv_export_scratch {
    sv_buf buf;
    const void **ptrs;
    uint32_t *lens;
    size_t cap;
} sv_export_scratch;
void sv_export_scratch_free(sv_export_scratch *x);
/* Appends one record as one row (including sv_pq_writer_end_row). */
int sv_export_layout_append(const sv_export_layout *l, sv_export_scratch *x, sv_pq_writer *w, const sv_record *r,
                            sv_err *err);

/* ---- key ranges ---------------------------------------------------------- */

/* Range i of n splits the 128-bit UUID key space evenly: [start, end), with
 * has_end false for the last range (it runs to the end of the keys). Random
 * (v4) UUIDs therefore spread evenly over ranges. */
void sv_export_range_bounds(uint32_t i, uint32_t n, uint8_t start[16], uint8_t end[16], bool *has_end);
/* Number of ranges for a shard of `objects` objects (>= 1). */
uint32_t sv_export_range_count(int64_t objects, int64_t rows_per_file);

/* ---- file names (names.c) ------------------------------------------------ */

/* {collection}_{shard}_{range:04d}.parquet with every '_' inside the two names
 * written as '.' (names never hold '.'), so different (collection, shard,
 * range) never share a file name; names without '_' keep Weaviate's layout.
 * SV_EINVAL for a name outside the collection / shard patterns. */
#define SV_EXPORT_STEM_MAX 200 /* 128 + '_' + 64 + NUL, rounded up */
/* "{collection}_{shard}": the file name without "_{range}.parquet". */
int sv_export_file_stem(char *out, size_t n, const char *collection, const char *shard, sv_err *err);
int sv_export_file_name(char *out, size_t n, const char *collection, const char *shard, uint32_t range,
                        sv_err *err);
/* 1 and the indexes (a < b in input order) of two equal names, 0 if all
 * differ, or a negative SV_E* code. */
int sv_export_first_duplicate(const char *const *names, size_t n, size_t *a, size_t *b, sv_err *err);

/* ---- the service (export.c) and the local participant (participant.c) ---- */

#define SV_EXPORT_ID_MAX 128
#define SV_EXPORT_MARKER_PREFIX "export/running/"
#define SV_EXPORT_PROBE "cluster_probe.txt" /* written by a coordinator, read by its participants at prepare */
#define SV_EXPORT_NBUCKETS 8

enum { SV_EXPORT_BACKEND_FS = 0, SV_EXPORT_BACKEND_S3 = 1 };
enum { SV_EXPORT_STARTED, SV_EXPORT_TRANSFERRING, SV_EXPORT_SUCCESS, SV_EXPORT_FAILED, SV_EXPORT_CANCELED };
enum { SV_EXPORT_SHARD_TRANSFERRING, SV_EXPORT_SHARD_SUCCESS, SV_EXPORT_SHARD_FAILED, SV_EXPORT_SHARD_SKIPPED };

struct sv_export_job;

struct sv_export {
    sv_store *store;
    sv_catalog *cat;
    sv_engine *engine; /* read-only scans of checkpoints */
    sv_jobs *jobs;     /* borrowed, may be NULL */
    char node[64];
    /* configuration (EXPORT_*) */
    bool enabled;
    int parallelism;
    int64_t rows_per_file, reservation_ms, status_interval_ms, row_group_bytes, max_rows_per_sec;
    char fs_root[1024];
    char s3_bucket[256];
    char s3_prefix[1024];
    /* backends, opened on first use */
    pthread_mutex_t loc_mu;
    sv_location *locs[2];
    /* serializes create against create and shutdown */
    pthread_mutex_t sched_mu;
    bool shutting_down;
    /* the participant's single export slot */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sv_export_job *slot;
    uint64_t slot_gen; /* bumped per reservation: waiters compare it, not pointers */
    bool part_shutdown, ticker_stop;
    pthread_t ticker;
    bool ticker_started;
    pthread_t runner; /* of the last committed export; joined before the next */
    bool runner_joinable;
    /* across nodes (coordinator.c): set once before requests */
    sv_export_cluster cl;
    bool has_cl;
    /* exports this node coordinates without a part of its own: their jobs
     * end when the metadata does (under mu) */
    struct sv_export_watch *watch;
    size_t nwatch, watch_cap;
    int64_t last_watch_ns;
    /* metrics */
    atomic_llong m_objects, m_bytes, m_ops[3], m_dur_bucket[SV_EXPORT_NBUCKETS], m_dur_ms, m_dur_count;
};

const char *sv_export_status_name(int st);
bool sv_export_status_terminal(const char *s);
json_t *sv_export_time_json(int64_t ms);
void sv_export_key(char *out, size_t n, const char *id, const char *file);
/* The key of a node's status file: <id>/node_<node>_status.json. */
void sv_export_node_key(char *out, size_t n, const char *id, const char *node);
/* "filesystem" / "s3" -> SV_EXPORT_BACKEND_*, -1 for anything else; and back. */
int sv_export_backend_index(const char *name);
const char *sv_export_backend_name(int backend);
int sv_export_location(sv_export *ex, int backend, sv_location **out, sv_err *err);
int sv_export_put_json(sv_location *loc, const char *key, json_t *j, sv_err *err);
int sv_export_get_json(sv_location *loc, const char *key, json_t **out, sv_err *err);
void sv_export_metrics_finish(sv_export *ex, int status, int64_t took_ms);
/* In ss ({collection: {shard: progress}}), every shard of assigned
 * ({collection: [shard…]}) not SUCCESS or SKIPPED becomes FAILED with reason
 * (its counts kept). */
void sv_export_fail_unfinished(json_t *ss, json_t *assigned, const char *reason);

/* participant.c */
int sv_export_local_start(sv_export *ex, sv_err *err);
void sv_export_local_shutdown(sv_export *ex); /* ends the running export FAILED "shutting down" */
void sv_export_local_stop(sv_export *ex);     /* joins threads; after shutdown */
bool sv_export_local_running_id(sv_export *ex, char *id, size_t n);
bool sv_export_local_owns(sv_export *ex, int backend, const char *id);
/* Hands a job handle to the prepared export `id`: its counters follow the
 * scan and it is finished (and released) with the export. */
int sv_export_local_attach_job(sv_export *ex, const char *id, sv_job *job, sv_err *err);
/* Stops the running export that carries this job (it ends CANCELED). */
void sv_export_local_cancel_job(sv_export *ex, const sv_job *job);
/* The metadata document as it would be written now, for a running export
 * with this id (NULL if none). */
json_t *sv_export_local_live_meta(sv_export *ex, int backend, const char *id);

/* What the cluster checks see of the slot (participant.c): a copy. */
typedef struct sv_export_slot_view {
    bool busy;        /* an export across nodes is prepared or running (not finishing) */
    bool prepared;    /* prepared, not committed */
    uint64_t gen;     /* the reservation: act only while it is unchanged */
    char id[SV_EXPORT_ID_MAX + 1];
    json_t *req;      /* owned copy (json_decref) */
} sv_export_slot_view;
void sv_export_local_view(sv_export *ex, sv_export_slot_view *v);
/* Commits / aborts the reservation gen if it is still in the slot. */
int sv_export_local_commit_gen(sv_export *ex, uint64_t gen, sv_err *err);
void sv_export_local_abort_gen(sv_export *ex, uint64_t gen, const char *reason);
/* Writes the final export_metadata.json if every node's status file is
 * terminal. meta is the document to write (changed in place): this node's
 * own when self_included (its status and shards are already in it), else the
 * published one. false if it could not be written. */
bool sv_export_promote(sv_export *ex, sv_location *loc, json_t *meta, json_t *req, bool self_included, sv_err *err);

/* coordinator.c */
bool sv_export_clustered(const json_t *req); /* more than one node takes part */
/* The catalog key of a cluster export's decision record. */
void sv_export_decision_key(char *out, size_t n, const char *backend, const char *id);
/* Aborts the whole export through its decision record (every participant
 * sees it within a tick), unless it is already decided aborted; attempt
 * (NULL: any) limits it to one start of the id. */
int sv_export_decide_abort(sv_export *ex, const char *backend, const char *id, const char *attempt, const char *reason,
                           bool canceled, sv_err *err);
/* An export aborted across nodes before any metadata was written (its
 * coordinator died before deciding): its status from the decision record,
 * FAILED (or CANCELED) with the reason. SV_ENOTFOUND if there is none. */
int sv_export_decision_status(sv_export *ex, const char *backend, const char *id, json_t **out);
/* objectsTotal across nodes: each node's status document carries its part.
 * total_add adds doc's (doc may be NULL: then the total is not known);
 * total_set writes the sum into meta, or drops it while a part is unknown. */
void sv_export_total_add(json_t *doc, int64_t *total, bool *known);
void sv_export_total_set(json_t *meta, int64_t total, bool known);
/* objectsExported and bytesWritten summed over a shardStatus object. */
void sv_export_shard_sums(json_t *shard_status, int64_t *rows, int64_t *bytes);
/* Watches export id until its metadata is final (marking nodes lost after
 * the others ended), then finishes job (may be NULL; taken over). */
void sv_export_watch_add(sv_export *ex, int backend, const char *id, sv_job *job);
/* Runs the two-phase protocol for a create whose shards span nodes:
 * assign = {node: {collection: [shard…]}}, req = the request every
 * participant gets (its "shards" replaced by its own). On success the
 * export runs on every participant. */
int sv_export_cluster_run(sv_export *ex, int backend, sv_location *loc, json_t *req, json_t *meta, sv_job *job,
                          sv_err *err);
/* Called by the ticker every 250 ms without locks held. */
void sv_export_cluster_tick(sv_export *ex);
/* Merges the node status files of a running cluster export into its
 * metadata (in place). */
void sv_export_aggregate(sv_export *ex, sv_location *loc, json_t *meta, json_t *live);
/* Cancels a cluster export from any node (SV_ENOTFOUND if it is none). */
int sv_export_cluster_cancel(sv_export *ex, int backend, const char *id, sv_err *err);
void sv_export_watch_stop(sv_export *ex); /* finishes coordinator-only jobs at shutdown */
/* Caller holds ex->mu: the id and backend of the coordinator-only export
 * whose job this is (id stays "" when none). */
void sv_export_watch_job(sv_export *ex, const sv_job *job, char *id, size_t n, int *backend);

#endif
