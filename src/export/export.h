/* export — point-in-time export of collections to Parquet files in a location
 * (after Weaviate's export API).
 *
 *   {root}/{id}/export_metadata.json          the single source of truth
 *   {root}/{id}/node_{node}_status.json       per participant, flushed while running
 *   {root}/{id}/{collection}_{shard}_{range:04d}.parquet
 *
 * A scheduler (the node that received the request) drives participants
 * through two-phase commit: prepare reserves the node's single export slot and
 * captures RocksDB checkpoints of its shards (the point in time), commit
 * starts the parallel scan, abort releases. Today the scheduler calls the
 * local participant in-process through sv_export_participant, so a cluster can
 * later put HTTP between them without touching either side.
 *
 * Answers are jansson values in the API's JSON shapes; the caller owns them
 * (json_decref). Errors are SV_E* codes with a message saying what to fix.
 * Thread-safe: every function may be called from any number of threads,
 * except open/close.
 */
#ifndef SV_EXPORT_H
#define SV_EXPORT_H

#include <jansson.h>

#include "catalog.h"
#include "core.h"
#include "store.h"

typedef struct sv_export sv_export;

typedef struct sv_export_opts {
    sv_store *store;       /* borrowed, must outlive the service */
    sv_catalog *catalog;   /* borrowed: records the running export for crash recovery */
    struct sv_jobs *jobs;  /* borrowed, may be NULL: every export is also a job of kind "export" */
    const char *data_dir;  /* default filesystem root is <data_dir>/exports */
    const char *node_name; /* NULL = "node1" */
} sv_export_opts;

/* Reads the EXPORT_* variables (see docs/export.md), then marks FAILED any
 * export this node was running when it last stopped without shutting down. */
int sv_export_open(const sv_export_opts *opts, sv_export **out, sv_err *err);
/* Rejects new exports (SV_EUNAVAIL), ends a running one FAILED "shutting
 * down" (final status written, checkpoints removed, slot released) and waits
 * for it. Other calls keep answering (status reads the location). */
void sv_export_shutdown(sv_export *ex);
/* Shuts down if needed and frees. NULL is fine. */
void sv_export_close(sv_export *ex);

/* POST /v1/export/{backend}: body {"id","file_format","include"|"exclude","options"}.
 * Returns once the point in time is captured and the scan started:
 * {id, backend, path, status:"STARTED", startedAt, classes}. */
int sv_export_create(sv_export *ex, const char *backend, json_t *body, json_t **out, sv_err *err);
/* GET /v1/export/{backend}/{id}: live progress while running, else the
 * metadata file. SV_ENOTFOUND for an unknown id. */
int sv_export_status(sv_export *ex, const char *backend, const char *id, json_t **out, sv_err *err);
/* GET /v1/export/{backend}: an array of status objects, oldest first. */
int sv_export_list(sv_export *ex, const char *backend, json_t **out, sv_err *err);
/* DELETE /v1/export/{backend}/{id}: stops a running export (it ends CANCELED;
 * files already written stay) and returns once it has stopped. SV_ECONFLICT
 * if it already finished, SV_ENOTFOUND if unknown. */
int sv_export_cancel(sv_export *ex, const char *backend, const char *id, sv_err *err);

/* The root location of a backend ("filesystem" | "s3"), opened on first use
 * and owned by the service (valid while ex is open): the importer reads
 * from the same roots the exports are written to. SV_EINVAL for an unknown
 * or unconfigured backend. */
struct sv_location;
int sv_export_backend_location(sv_export *ex, const char *backend, struct sv_location **out, sv_err *err);

/* Prometheus text for /metrics (sv_server_add_metrics); ud is the sv_export. */
void sv_export_metrics(sv_buf *out, void *ud);

/* ---- participant interface ---------------------------------------------- */

/* What a scheduler needs from a participant node. req (borrowed) is the JSON
 * a remote participant would receive: {"id","backend","classes",
 * "shards":{collection:[shard,...]},"nodeName","startedAt","nodeAssignments",
 * "options":{"schema","compression","compression_level"}}. */
typedef struct sv_export_participant {
    void *self;
    /* Reserves the node's export slot and captures its shards. Auto-aborts if
     * commit does not follow within the reservation timeout. */
    int (*prepare)(void *self, json_t *req, sv_err *err);
    /* Starts the scan of a prepared export. */
    int (*commit)(void *self, const char *id, sv_err *err);
    /* Releases a prepared export or stops a running one (it ends CANCELED,
     * or FAILED with reason when reason is not NULL) and waits until it has. */
    void (*abort)(void *self, const char *id, const char *reason);
    bool (*is_running)(void *self, const char *id);
} sv_export_participant;

/* This node's participant (valid while ex is open). */
sv_export_participant sv_export_local_participant(sv_export *ex);

/* ---- across nodes (coordinator.c; docs/cluster.md "Two-phase export") ---- */

/* One node-to-node call: POST path with a JSON body to node. */
typedef struct sv_export_rpc {
    const char *node; /* in */
    char path[300];   /* in: "/v1/cluster/export/…" */
    json_t *body;     /* in, borrowed; NULL = {} */
    int rc;           /* out: 0 = the node answered (status); else why not (err) */
    int status;
    sv_err err;       /* out: the reason, also for an answer >= 300 */
} sv_export_rpc;

/* What the scheduler needs from the cluster; without it (one node) every
 * shard is this node's. */
typedef struct sv_export_cluster {
    void *self;
    /* Sends every call in parallel; returns once all answered or failed. */
    void (*send)(void *self, sv_export_rpc *calls, size_t n, int64_t timeout_ms);
    /* The node's lease is alive, as this node last saw it. */
    bool (*healthy)(void *self, const char *node);
} sv_export_cluster;

/* Call once, before requests: exports of collections whose shards live on
 * other nodes are then coordinated across them (two-phase commit with the
 * decision in the catalog). The participant's failure checks start too. */
void sv_export_set_cluster(sv_export *ex, const sv_export_cluster *c);

/* The node-to-node endpoints (POST /v1/cluster/export/…): prepare with a
 * participant request, commit or abort an export by id ({"reason"?,
 * "canceled"?}). Answers like the participant interface. */
int sv_export_remote_prepare(sv_export *ex, json_t *req, sv_err *err);
int sv_export_remote_commit(sv_export *ex, const char *id, sv_err *err);
void sv_export_remote_abort(sv_export *ex, const char *id, json_t *body);

#endif
