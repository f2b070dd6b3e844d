/* Internal to the server module: what route handlers in routes_*.c see.
 * One route table lives in server.c; each service's handlers live in their
 * own file and are declared here. */
#ifndef SV_SERVER_INTERNAL_H
#define SV_SERVER_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>

#include "auth.h"
#include "record.h"
#include "server.h"

/* PERM_NONE is no permission: the server refuses to start with such a row.
 * PERM_PUBLIC routes answer without a key (health, metrics). */
/* PERM_NODE routes are node-to-node only: they answer a request carrying the
 * cluster secret (sv_forward_gate) and 403 to every client, whatever its key. */
typedef enum { PERM_NONE, PERM_READ, PERM_WRITE, PERM_MANAGE, PERM_OPERATE, PERM_PUBLIC, PERM_NODE } perm;

/* What a route's permission is checked against, before the handler runs:
 *  SCOPE_AUTO     "/v1/collections/{c}/…" -> collection c (and ?tenant=);
 *                 any other path -> the whole server;
 *  SCOPE_ANY      any valid key (the handler filters what it lists);
 *  SCOPE_HANDLER  the handler checks the collections it names (bodies, jobs). */
typedef enum { SCOPE_AUTO, SCOPE_ANY, SCOPE_HANDLER } scope;

#define MAX_PARAMS 4

typedef struct request {
    struct sv_server *srv;
    struct MHD_Connection *con;
    const struct route *route;
    const char *method;  /* NULL until on_request first sees the request */
    char url_problem[200]; /* why the raw URL is refused (400), or empty */
    bool has_query;        /* the raw URL has a '?' */
    char allow[64];        /* a 405's Allow header */
    char params[MAX_PARAMS][256];
    int nparams;
    sv_buf body;           /* buffered bodies */
    bool body_too_big;
    /* streamed batch bodies */
    sv_batch *batch;
    sv_batch_splitter *splitter;
    int stream_rc;
    sv_err stream_err;
    int64_t stream_auth_ns; /* when the key was last checked while the body streams */
    /* response */
    int status;
    sv_buf out;
    const char *content_type;
    int64_t started_ns;
    /* forwarding (routes_forward.c) */
    bool forwarded;            /* sent by another node with the cluster secret */
    struct sv_fwd_batch *fwd;  /* a batch being split by owner */
    /* the caller, when auth is on (authed) */
    bool authed;
    sv_principal who;
    char request_id[17];
} request;

typedef int (*handler_fn)(request *rq);

/* The service a route fronts; the server answers 503 for a service that is
 * not running, so handlers can assume theirs is. */
typedef enum { SVC_STORE, SVC_EXPORT, SVC_SNAPSHOT, SVC_JOBS, SVC_AUTH, SVC_REGISTRY, SVC_CLUSTER, SVC_IMPORT, SVC_MAINT } service;

typedef struct route {
    const char *method;
    const char *pattern; /* "{}" matches one path segment */
    handler_fn fn;
    perm perm;
    bool stream_body;
    service svc;
    scope scope;
} route;

/* Answers: each returns 0 (or SV_ENOMEM). */
int sv_reply_json(request *rq, int status, json_t *j); /* steals j */
int sv_reply_error(request *rq, int status, const char *msg);
int sv_reply_err(request *rq, int rc, const sv_err *err); /* status from sv_http_status */
/* rc == 0: answers status with j (NULL: no body, e.g. 204); else the error.
 * Steals j either way. */
int sv_reply(request *rq, int rc, const sv_err *err, int status, json_t *j);
int sv_parse_body(request *rq, json_t **out, sv_err *err);

/* The two common route shapes, one line each in the routes files. CALL is a
 * service call that sees `err` and `out` (and `body` for SV_ROUTE_BODY, the
 * parsed JSON body) and returns 0 or an SV_E* code; the route answers STATUS
 * with `out` (NULL: no body), or the error. */
#define SV_ROUTE(NAME, STATUS, CALL)                                                                                   \
    int NAME(request *rq)                                                                                              \
    {                                                                                                                  \
        sv_err err = {0};                                                                                              \
        json_t *out = NULL;                                                                                            \
        int rc = (CALL);                                                                                               \
        return sv_reply(rq, rc, &err, STATUS, out);                                                                    \
    }
#define SV_ROUTE_BODY(NAME, STATUS, CALL)                                                                              \
    int NAME(request *rq)                                                                                              \
    {                                                                                                                  \
        sv_err err = {0};                                                                                              \
        json_t *body = NULL, *out = NULL;                                                                              \
        int rc = sv_parse_body(rq, &body, &err);                                                                       \
        if (rc == 0)                                                                                                   \
            rc = (CALL);                                                                                               \
        json_decref(body);                                                                                             \
        return sv_reply(rq, rc, &err, STATUS, out);                                                                    \
    } /* SV_EPARSE: empty, or line/column */
/* For handlers that pass the raw body on: true (after answering 400 with
 * what to send) when the body is empty. */
bool sv_body_empty(request *rq);
const char *sv_query(request *rq, const char *name);      /* NULL when absent or empty */
const sv_services *sv_request_services(const request *rq);

/* routes_cluster.c */
int sv_route_nodes_list(request *rq);
/* routes_export.c: a cluster export's participant endpoints (PERM_NODE) */
int sv_route_cluster_export_prepare(request *rq);
int sv_route_cluster_export_commit(request *rq);
int sv_route_cluster_export_abort(request *rq);
int sv_route_cluster_snapshot_cut(request *rq);
int sv_route_cluster_snapshot_release(request *rq);
int sv_route_cluster_snapshot_upload(request *rq);
int sv_route_cluster_snapshot_abort(request *rq);
int sv_route_cluster_restore_lay(request *rq);
int sv_route_cluster_restore_unlay(request *rq);
/* routes_move.c */
int sv_route_shard_move(request *rq);
int sv_route_tenant_move(request *rq);
int sv_route_move_step(request *rq);

/* routes_forward.c: forwarding to shard owners (docs/cluster.md). Each
 * sv_forward_* returns 1 when it answered the request, 0 to go on locally. */
/* Before authorization: 0 not forwarded; 1 answered (401/403); 2 a
 * forwarded request with the right secret (authorized by its sender). */
int sv_forward_gate(request *rq);
int sv_forward_object(request *rq);
/* After a store call failed SV_EUNAVAIL: when the object's shard is now
 * another node's (a move switched it while the request waited at its write
 * gate, or this view was behind), sends the request there once (?moved=1;
 * such a request is never sent on again) and answers with its answer. */
int sv_forward_moved(request *rq);
int sv_forward_list(request *rq);
int sv_forward_tenants(request *rq);
/* A snapshot of a collection on one other node is taken there; of one
 * spread over nodes, refused (422). */
int sv_forward_snapshot(request *rq);
/* Fills objects (and bytes) of out[field]'s entries owned by other nodes
 * from their owners' answers; an owner that does not answer leaves them
 * null. Always 0. */
int sv_forward_counts(request *rq, json_t *out, const char *field);
bool sv_forward_batch_wanted(const request *rq);
int sv_forward_batch_begin(request *rq);
int sv_forward_batch_add(request *rq, const char *json, size_t len);
int sv_forward_batch_end(request *rq, sv_batch *b, sv_err *err); /* frees b */
void sv_forward_batch_free(request *rq);
/* A collection (and tenant) another node just created may not be in this
 * node's view yet: read from the catalog on a miss. */
void sv_forward_ensure_object(request *rq, const char *json, size_t len);
/* Reads the route's collection (params[0]) and its tenants from the catalog
 * into this node's view (tenants come and go on other nodes: a listing reads
 * them afresh). */
void sv_forward_sync_collection(request *rq);
struct sv_cluster_call;
/* Answers rq with a node call's answer as it is (status and body), or with
 * the call's error; takes call->out. */
int sv_forward_pass_back(request *rq, struct sv_cluster_call *call);
/* After a store call answered rc: true when it was "not found" and the
 * catalog was read into the view, so the call is worth one retry (another
 * node may have created the collection moments ago). */
bool sv_forward_resync(request *rq, int rc);

/* routes_store.c */
int sv_route_collections_create(request *rq);
int sv_route_collections_list(request *rq);
int sv_route_collection_get(request *rq);
int sv_route_collection_delete(request *rq);
int sv_route_tenants_list(request *rq);
int sv_route_tenants_add(request *rq);
int sv_route_tenants_update(request *rq);
int sv_route_tenants_delete(request *rq);
int sv_route_shards_list(request *rq);
int sv_route_object_create(request *rq);
int sv_route_object_put(request *rq);
int sv_route_object_get(request *rq);
int sv_route_object_delete(request *rq);
int sv_route_objects_list(request *rq);
int sv_route_batch(request *rq);
/* The batch route streams its body: begin when the headers are in (0 or
 * SV_ENOMEM), feed each chunk; sv_route_batch answers at the end. */
int sv_route_batch_begin(request *rq, bool ndjson, size_t max_object);
void sv_route_batch_feed(request *rq, const char *data, size_t n);

/* server_auth.c: authentication, the route check, list filtering, audit. */
/* 0: go on; 1: an answer (400/401/403/429) is set. */
int sv_server_authorize(request *rq);
/* True when auth is off or the caller may do action on collection/tenant
 * (collection NULL: the whole server). */
bool sv_request_allowed(const request *rq, perm action, const char *collection, const char *tenant);
/* 403 naming the action and the resource. Returns 0. */
int sv_reply_forbidden(request *rq, perm action, const char *collection, const char *tenant);
/* Keeps the elements of array (objects) whose collection fields the caller
 * may read: `field` names a string or an array of strings; an element with
 * none needs the whole server. */
void sv_filter_readable(const request *rq, json_t *array, const char *field);
/* 0, or SV_EDENIED (err filled) unless the caller may do action on every
 * collection named by field in obj (a string or an array of strings; none:
 * the whole server). */
int sv_check_fields(const request *rq, perm action, json_t *obj, const char *field, sv_err *err);
/* One audit record for a finished request (writes, lifecycle operations,
 * key and role changes, denials), when an audit log is configured. */
void sv_server_audit(const request *rq);
struct sv_auth *sv_request_auth(const request *rq);
bool sv_request_metrics_private(const request *rq); /* server.c */

/* routes_authz.c */
int sv_route_authz_me(request *rq);
int sv_route_authz_routes(request *rq);
int sv_route_authz_key_create(request *rq);
int sv_route_authz_key_list(request *rq);
int sv_route_authz_key_delete(request *rq);
int sv_route_authz_key_set_roles(request *rq);
int sv_route_authz_key_rotate(request *rq);
int sv_route_authz_role_create(request *rq);
int sv_route_authz_role_list(request *rq);
int sv_route_authz_role_get(request *rq);
int sv_route_authz_role_delete(request *rq);
/* server.c: the route table as {"routes":[{"method","pattern","action","scope"}]} */
json_t *sv_server_route_table(const request *rq);

/* routes_maintenance.c */
int sv_route_maint_rebuild(request *rq);
int sv_route_maint_verify(request *rq);
int sv_route_maint_move(request *rq);
int sv_route_maint_analyze(request *rq);
int sv_route_maint_status(request *rq);
int sv_route_maint_kit(request *rq);
int sv_route_maint_lease_break(request *rq);
int sv_route_maint_checkpoint(request *rq);

/* routes_export.c */
int sv_route_export_create(request *rq);
int sv_route_export_status(request *rq);
int sv_route_export_list(request *rq);
int sv_route_export_cancel(request *rq);
/* routes_import.c */
int sv_route_import_create(request *rq);
int sv_route_import_status(request *rq);
int sv_route_import_cancel(request *rq);

/* routes_snapshot.c */
int sv_route_snapshot_create(request *rq);
int sv_route_snapshot_list(request *rq);
int sv_route_snapshot_get(request *rq);
int sv_route_snapshot_drop(request *rq);
int sv_route_snapshot_restore(request *rq);
int sv_route_restore_job_get(request *rq);
int sv_route_restore_job_list(request *rq);
int sv_route_snapshot_gc(request *rq);

/* routes_registry.c */
int sv_route_registry_summary(request *rq);
int sv_route_registry_shards(request *rq);
int sv_route_registry_shard_get(request *rq);
int sv_route_registry_recover(request *rq);
int sv_route_registry_pin(request *rq);
int sv_route_registry_unpin(request *rq);
int sv_route_registry_gc(request *rq);
int sv_route_snapshot_mount(request *rq);
int sv_route_snapshot_unmount(request *rq);
int sv_route_snapshot_object_get(request *rq);
int sv_route_snapshot_objects_list(request *rq);
int sv_route_snapshot_objects_restore(request *rq);

/* routes_jobs.c */
int sv_route_jobs_list(request *rq);
int sv_route_job_get(request *rq);
int sv_route_job_cancel(request *rq);
int sv_route_schedule_create(request *rq);
int sv_route_schedule_list(request *rq);
int sv_route_schedule_get(request *rq);
int sv_route_schedule_update(request *rq);
int sv_route_schedule_delete(request *rq);


/* routes_console.c: the web console's embedded assets */
int sv_route_console(request *rq);
#endif
