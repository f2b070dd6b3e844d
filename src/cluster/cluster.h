/* cluster — membership: each node holds a lease on the catalog key
 * nodes/{name} (TTL SHARDVAULT_NODE_TTL, default 10 s) and keeps a permanent
 * record under members/{name}; a node whose lease lapsed is UNREACHABLE.
 * Works on either catalog driver (a one-node "cluster" on the embedded one).
 * On the etcd catalog, shards are placed across healthy nodes and requests
 * for shards owned elsewhere are forwarded (forward.c); exports across nodes
 * use sv_cluster_forward for their two-phase protocol (src/export). See
 * docs/cluster.md.
 */
#ifndef SV_CLUSTER_H
#define SV_CLUSTER_H

#include <jansson.h>

#include "catalog.h"
#include "core.h"
#include "store.h"

typedef struct sv_cluster sv_cluster;

typedef struct sv_cluster_opts {
    const char *node_name;     /* required: ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$ */
    const char *data_dir;      /* required: holds node.id, this node's identity across restarts */
    int64_t ttl_ms;            /* lease TTL; 0 = 10000 */
    sv_store *store;           /* for this node's shard and object counts (borrowed) */
    /* Shard placement across nodes and forwarding: on for the etcd catalog
     * (where several nodes can share it), off for the embedded one. */
    bool placement;
    /* The node-to-node secret (SHARDVAULT_CLUSTER_SECRET); NULL or "" =
     * this node neither forwards nor accepts forwarded requests. */
    const char *secret;
} sv_cluster_opts;

/* Checks the options and reads (or creates) this node's identity; the node
 * is not registered yet (sv_cluster_nodes works, without it). */
int sv_cluster_open(const sv_cluster_opts *opts, sv_catalog *cat, sv_cluster **out, sv_err *err);
/* Registers this node as reachable at advertise_url (http(s)://host:port):
 * at once when nodes/{name} is free or held by an earlier process of this
 * data directory; otherwise waits up to TTL + 2 s for the holder's lease to
 * lapse, then SV_ECONFLICT naming it. Starts the keepalive thread and the
 * watch on nodes/. Call once. */
int sv_cluster_join(sv_cluster *c, const char *advertise_url, sv_err *err);
/* Stops the keepalive and revokes the lease: the node shows UNREACHABLE at
 * once. NULL is fine. */
void sv_cluster_close(sv_cluster *c);

/* The API's GET /v1/nodes: {"nodes":[{"name","url","status","shards",
 * "objects","startedAt","version"}]} in name order, status HEALTHY (its
 * lease is alive) or UNREACHABLE (a member whose lease lapsed). */
int sv_cluster_nodes(sv_cluster *c, json_t **out, sv_err *err);

/* Nodes whose lease is alive, as last seen by this node's watch. */
int sv_cluster_healthy_count(sv_cluster *c);
/* node's lease is alive, as last seen by this node's watch. */
bool sv_cluster_node_healthy(sv_cluster *c, const char *node);
/* The nodes whose lease is alive, read from the catalog now (current even
 * before this node's watch has synced): *out malloc'd (free()), *n names. */
int sv_cluster_live_nodes(sv_cluster *c, char (**out)[65], size_t *n, sv_err *err);

/* ---- forwarding (forward.c; docs/cluster.md "Forwarding") ------------------ */

/* A forwarded request carries these headers; the owner serves it from its own
 * shards only. The secret is compared in constant time and never logged. */
#define SV_CLUSTER_FORWARDED_HEADER "X-Shardvault-Forwarded-By"
#define SV_CLUSTER_SECRET_HEADER "X-Shardvault-Cluster-Secret"
#define SV_CLUSTER_PRINCIPAL_HEADER "X-Shardvault-Principal"

/* Placement and forwarding are on (the etcd catalog). */
bool sv_cluster_placement(const sv_cluster *c);
const char *sv_cluster_name(const sv_cluster *c);
/* A forwarded request's secret: 0, or SV_EDENIED (no secret configured here,
 * or another one). */
int sv_cluster_check_secret(const sv_cluster *c, const char *presented, sv_err *err);

typedef struct sv_cluster_call {
    /* in */
    const char *node;         /* the owner */
    const char *method;       /* "GET", "POST", … */
    const char *target;       /* path and query, as received (already escaped) */
    const char *body;         /* may be NULL */
    size_t len;
    const char *content_type; /* NULL = application/json */
    const char *principal;    /* the caller's key id, for the owner's audit log; may be NULL */
    int64_t timeout_ms;       /* 0 = 30 s */
    /* out */
    int rc;                   /* 0: the owner answered (status, out); else why not (err) */
    sv_err err;
    int status;
    sv_buf out;
} sv_cluster_call;

/* Sends every call to its node in parallel and returns once all answered or
 * failed. A node that is not HEALTHY, or does not answer, gives rc
 * SV_EUNAVAIL with a message naming it. The caller frees each out. */
void sv_cluster_forward(sv_cluster *c, sv_cluster_call *calls, size_t n);

/* Prometheus lines (sv_metrics_fn). */
void sv_cluster_metrics(sv_buf *out, void *ud);

/* ---- shard moves (move.c; docs/cluster.md "Shard moves") -------------------- */

typedef struct sv_cluster_moves sv_cluster_moves;
struct sv_snapshot;
struct sv_jobs;

/* The move service of this node: registers the job kind "shard-move",
 * settles the moves a previous process of this node left unfinished (call
 * before sv_jobs_recover) and watches shards/ so this view follows switches
 * made by other nodes. Borrowed services must outlive it. */
int sv_cluster_moves_open(sv_cluster *c, sv_store *st, struct sv_snapshot *snap, struct sv_jobs *jobs,
                          sv_catalog *cat, sv_cluster_moves **out, sv_err *err);
/* Asks running moves to stop (each ends FAILED, the shard staying here) and
 * waits for them. NULL is fine. */
void sv_cluster_moves_close(sv_cluster_moves *m);
/* On the shard's owner: checks the move (to: a HEALTHY member other than the
 * owner) and starts the job; *out {"jobId","kind","collection","shard",
 * "from","to","node"}. SV_EUNSUPPORTED without placement (one node). */
int sv_cluster_move_start(sv_cluster_moves *m, const char *collection, const char *shard, const char *to,
                          json_t **out, sv_err *err);
/* On a move's target, called by the source (node-to-node): body {"step":
 * "base"|"final"|"activate"|"discard","job","collection","shard"}. */
int sv_cluster_move_step(sv_cluster_moves *m, json_t *body, json_t **out, sv_err *err);

#endif
