#include "server.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "record.h"
#include "server_internal.h"

/* ---- errors -> status: the one table ------------------------------------ */

int sv_http_status(int code)
{
    switch (code) {
    case SV_OK: return 200;
    case SV_EPARSE: return 400;
    case SV_EINVAL: return 422;
    case SV_ESTATE: return 422;
    case SV_EUNSUPPORTED: return 422;
    case SV_EDENIED: return 403;
    case SV_ENOSPACE: return 507;
    case SV_ENOTFOUND: return 404;
    case SV_EEXIST: return 409;
    case SV_ECONFLICT: return 409;
    case SV_ETOOBIG: return 413;
    case SV_EUNAVAIL: return 503;
    case SV_ETIMEOUT: return 504;
    default: return 500;
    }
}

/* ---- requests ----------------------------------------------------------- */

static const char *const perm_names[] = {"none", "read", "write", "manage", "operate", "public", "node"};

/* Counters are per route-table row; the table may grow to MAX_ROUTES - 1
 * rows (one slot is for unmatched requests). */
#define MAX_ROUTES 96
#define N_CODES 17
/* Upper bounds of the latency histogram buckets, in seconds. */
static const double latency_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define N_BUCKETS (sizeof latency_le / sizeof latency_le[0])
static const int tracked_codes[N_CODES] = {200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 413, 422, 500, 503, 504, 507, 0};

struct sv_server {
    struct MHD_Daemon *daemon;
    sv_services svc;
    sv_store *store;
    int64_t max_body;
    int port;
    char node[64];
    int64_t started_ns; /* for /v1/meta's uptime */
    bool metrics_private;
    atomic_bool quiescing;
    atomic_int in_flight;
    pthread_mutex_t metrics_mu;
    struct metrics_hook {
        sv_metrics_fn fn;
        void *ud;
    } metrics[16];
    int nmetrics;
    /* per route x code; one extra route slot for "unmatched" */
    atomic_llong counts[MAX_ROUTES][N_CODES];
    atomic_llong dur_us[MAX_ROUTES];
    /* latency histogram per route: requests per bucket (not cumulative);
     * the last slot is +Inf */
    atomic_llong latency[MAX_ROUTES][N_BUCKETS + 1];
    /* TLS (NULL tls: plain HTTP); tls is swapped by a reload under tls_mu */
    pthread_mutex_t tls_mu;
    struct tls_creds *tls;
    char *tls_cert_file, *tls_key_file, *tls_client_ca_file;
    char *tls_client_ca_pem; /* given to MHD at start so it asks for client certificates */
};

static const route routes[];
static const size_t nroutes;

const sv_services *sv_request_services(const request *rq) { return &rq->srv->svc; }
bool sv_request_metrics_private(const request *rq) { return rq->srv->metrics_private; }

int sv_reply_json(request *rq, int status, json_t *j)
{
    rq->status = status;
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s || sv_buf_append_str(&rq->out, s)) {
        free(s);
        return SV_ENOMEM;
    }
    free(s);
    return 0;
}

int sv_reply_error(request *rq, int status, const char *msg)
{
    rq->status = status;
    sv_buf_reset(&rq->out);
    sv_buf_append_str(&rq->out, "{\"error\":[{\"message\":");
    sv_buf_json_string(&rq->out, msg, strlen(msg));
    sv_buf_append_str(&rq->out, "}]}");
    return 0;
}

int sv_reply_err(request *rq, int rc, const sv_err *err)
{
    const char *msg = err->msg[0] ? err->msg : sv_strerror(rc);
    int status = sv_http_status(rc);
    if (status >= 500)
        sv_error("request failed", "method=%s route=\"%s\" status=%d error=\"%s\"", rq->method,
                 rq->route ? rq->route->pattern : "?", status, msg);
    return sv_reply_error(rq, status, msg);
}

int sv_reply(request *rq, int rc, const sv_err *err, int status, json_t *j)
{
    if (rc) {
        json_decref(j);
        return sv_reply_err(rq, rc, err);
    }
    if (!j) {
        rq->status = status;
        return 0;
    }
    return sv_reply_json(rq, status, j);
}

#define EMPTY_BODY_MSG "request body is empty: send a JSON object (Content-Type: application/json)"

bool sv_body_empty(request *rq)
{
    if (rq->body.len)
        return false;
    sv_reply_error(rq, 400, EMPTY_BODY_MSG);
    return true;
}

int sv_parse_body(request *rq, json_t **out, sv_err *err)
{
    if (rq->body.len == 0)
        return sv_fail(err, SV_EPARSE, EMPTY_BODY_MSG);
    json_error_t je;
    *out = json_loadb((const char *)rq->body.data, rq->body.len, 0, &je);
    if (!*out)
        return sv_fail(err, SV_EPARSE, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
    return 0;
}

const char *sv_query(request *rq, const char *name)
{
    const char *v = MHD_lookup_connection_value(rq->con, MHD_GET_ARGUMENT_KIND, name);
    return v && *v ? v : NULL;
}

/* ---- handlers ----------------------------------------------------------- */

static int h_live(request *rq) { return sv_reply_json(rq, 200, json_pack("{s:s}", "status", "ok")); }

static int h_ready(request *rq)
{
    if (atomic_load(&rq->srv->quiescing))
        return sv_reply_error(rq, 503, "shutting down");
    return sv_reply_json(rq, 200, json_pack("{s:s}", "status", "ready"));
}

static int h_meta(request *rq)
{
    return sv_reply_json(rq, 200, json_pack("{s:s,s:s,s:s,s:s,s:I}", "name", "shardvault", "version", SV_VERSION,
                                         "gitSha", SV_GIT_SHA, "node", rq->srv->node, "uptimeSeconds",
                                         (json_int_t)((sv_mono_ns() - rq->srv->started_ns) / 1000000000)));
}

/* One histogram per route pattern: rows that share a pattern (GET and POST
 * /v1/collections) are summed into one series. */
static void latency_histogram(sv_server *srv, sv_buf *o)
{
    sv_buf_append_str(o, "# HELP shardvault_request_duration_seconds Time from request line to answer, by route.\n"
                         "# TYPE shardvault_request_duration_seconds histogram\n");
    for (size_t r = 0; r < nroutes; r++) {
        bool seen = false;
        for (size_t e = 0; e < r && !seen; e++)
            seen = !strcmp(routes[e].pattern, routes[r].pattern);
        if (seen)
            continue;
        long long buckets[N_BUCKETS + 1] = {0}, us = 0;
        for (size_t e = r; e < nroutes; e++) {
            if (strcmp(routes[e].pattern, routes[r].pattern))
                continue;
            for (size_t b = 0; b <= N_BUCKETS; b++)
                buckets[b] += atomic_load(&srv->latency[e][b]);
            us += atomic_load(&srv->dur_us[e]);
        }
        long long cum = 0;
        for (size_t b = 0; b <= N_BUCKETS; b++) {
            cum += buckets[b];
            if (b < N_BUCKETS)
                sv_buf_printf(o, "shardvault_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lld\n",
                              routes[r].pattern, latency_le[b], cum);
            else
                sv_buf_printf(o, "shardvault_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lld\n",
                              routes[r].pattern, cum);
        }
        sv_buf_printf(o, "shardvault_request_duration_seconds_sum{route=\"%s\"} %.6f\n", routes[r].pattern,
                      (double)us / 1e6);
        sv_buf_printf(o, "shardvault_request_duration_seconds_count{route=\"%s\"} %lld\n", routes[r].pattern, cum);
    }
}

static int h_metrics(request *rq)
{
    sv_server *srv = rq->srv;
    sv_buf *o = &rq->out;
    rq->content_type = "text/plain; version=0.0.4";
    sv_buf_append_str(o, "# HELP shardvault_http_requests_total HTTP requests by route, method and status code.\n"
                         "# TYPE shardvault_http_requests_total counter\n");
    for (size_t r = 0; r <= nroutes; r++) {
        for (int c = 0; c < N_CODES; c++) {
            long long n = atomic_load(&srv->counts[r][c]);
            if (!n)
                continue;
            sv_buf_printf(o, "shardvault_http_requests_total{route=\"%s\",method=\"%s\",code=\"%s%d\"} %lld\n",
                          r < nroutes ? routes[r].pattern : "unmatched", r < nroutes ? routes[r].method : "any",
                          tracked_codes[c] ? "" : "other", tracked_codes[c], n);
        }
    }
    sv_buf_append_str(o, "# HELP shardvault_http_request_duration_seconds_total Time spent serving each route.\n"
                         "# TYPE shardvault_http_request_duration_seconds_total counter\n");
    for (size_t r = 0; r < nroutes; r++) {
        long long us = atomic_load(&srv->dur_us[r]);
        if (us)
            sv_buf_printf(o, "shardvault_http_request_duration_seconds_total{route=\"%s\",method=\"%s\"} %.6f\n",
                          routes[r].pattern, routes[r].method, (double)us / 1e6);
    }
    latency_histogram(srv, o);
    sv_store_stats s;
    sv_store_get_stats(srv->store, &s);
    sv_buf_printf(o,
                  "# HELP shardvault_objects_written_total Objects created or replaced since start.\n"
                  "# TYPE shardvault_objects_written_total counter\nshardvault_objects_written_total %lld\n"
                  "# HELP shardvault_objects_deleted_total Objects deleted since start.\n"
                  "# TYPE shardvault_objects_deleted_total counter\nshardvault_objects_deleted_total %lld\n"
                  "# HELP shardvault_shards_open Shards whose RocksDB is open.\n"
                  "# TYPE shardvault_shards_open gauge\nshardvault_shards_open %lld\n"
                  "# HELP shardvault_shards_open_max Bound on open shards (SHARDVAULT_MAX_OPEN_SHARDS).\n"
                  "# TYPE shardvault_shards_open_max gauge\nshardvault_shards_open_max %lld\n"
                  "# HELP shardvault_shards_idle_closed_total Idle shards closed to stay under the bound.\n"
                  "# TYPE shardvault_shards_idle_closed_total counter\nshardvault_shards_idle_closed_total %lld\n"
                  "# HELP shardvault_collections Collections.\n"
                  "# TYPE shardvault_collections gauge\nshardvault_collections %lld\n"
                  "# HELP shardvault_process_peak_rss_bytes Peak resident set size.\n"
                  "# TYPE shardvault_process_peak_rss_bytes gauge\nshardvault_process_peak_rss_bytes %lld\n",
                  (long long)s.objects_written, (long long)s.objects_deleted, (long long)s.shards_open,
                  (long long)s.shards_open_max, (long long)s.shards_idle_closed,
                  (long long)s.collections, (long long)sv_peak_rss_bytes());
    pthread_mutex_lock(&srv->metrics_mu);
    for (int i = 0; i < srv->nmetrics; i++)
        srv->metrics[i].fn(o, srv->metrics[i].ud);
    pthread_mutex_unlock(&srv->metrics_mu);
    rq->status = 200;
    return 0;
}

/* The one route table: method, pattern, handler, the action it needs, whether
 * the body is streamed, the service it fronts, and what the action is checked
 * against (server_internal.h: scope). Every row must name an action. */
#define A SCOPE_AUTO
#define H SCOPE_HANDLER
#define ANY SCOPE_ANY
static const route routes[] = {
    {"GET", "/v1/.well-known/live", h_live, PERM_PUBLIC, false, SVC_STORE, A},
    {"GET", "/v1/.well-known/ready", h_ready, PERM_PUBLIC, false, SVC_STORE, A},
    {"GET", "/v1/meta", h_meta, PERM_READ, false, SVC_STORE, ANY},
    {"GET", "/v1/nodes", sv_route_nodes_list, PERM_READ, false, SVC_CLUSTER, A},
    {"GET", "/metrics", h_metrics, PERM_PUBLIC, false, SVC_STORE, A},
    {"POST", "/v1/collections", sv_route_collections_create, PERM_MANAGE, false, SVC_STORE, H},
    {"GET", "/v1/collections", sv_route_collections_list, PERM_READ, false, SVC_STORE, ANY},
    {"GET", "/v1/collections/{}", sv_route_collection_get, PERM_READ, false, SVC_STORE, A},
    {"DELETE", "/v1/collections/{}", sv_route_collection_delete, PERM_MANAGE, false, SVC_STORE, A},
    {"GET", "/v1/collections/{}/tenants", sv_route_tenants_list, PERM_READ, false, SVC_STORE, A},
    {"POST", "/v1/collections/{}/tenants", sv_route_tenants_add, PERM_MANAGE, false, SVC_STORE, H},
    {"PUT", "/v1/collections/{}/tenants", sv_route_tenants_update, PERM_MANAGE, false, SVC_STORE, H},
    {"DELETE", "/v1/collections/{}/tenants", sv_route_tenants_delete, PERM_MANAGE, false, SVC_STORE, H},
    {"GET", "/v1/collections/{}/shards", sv_route_shards_list, PERM_READ, false, SVC_STORE, A},
    {"POST", "/v1/collections/{}/shards/{}/move", sv_route_shard_move, PERM_OPERATE, false, SVC_CLUSTER, A},
    {"POST", "/v1/collections/{}/tenants/{}/move", sv_route_tenant_move, PERM_OPERATE, false, SVC_CLUSTER, A},
    {"POST", "/v1/internal/moves", sv_route_move_step, PERM_OPERATE, false, SVC_CLUSTER, A},
    {"POST", "/v1/collections/{}/objects", sv_route_object_create, PERM_WRITE, false, SVC_STORE, A},
    {"GET", "/v1/collections/{}/objects", sv_route_objects_list, PERM_READ, false, SVC_STORE, A},
    {"GET", "/v1/collections/{}/objects/{}", sv_route_object_get, PERM_READ, false, SVC_STORE, A},
    {"PUT", "/v1/collections/{}/objects/{}", sv_route_object_put, PERM_WRITE, false, SVC_STORE, A},
    {"DELETE", "/v1/collections/{}/objects/{}", sv_route_object_delete, PERM_WRITE, false, SVC_STORE, A},
    {"POST", "/v1/batch/objects", sv_route_batch, PERM_WRITE, true, SVC_STORE, H},
    {"POST", "/v1/export/{}", sv_route_export_create, PERM_OPERATE, false, SVC_EXPORT, H},
    {"GET", "/v1/export/{}", sv_route_export_list, PERM_READ, false, SVC_EXPORT, ANY},
    {"GET", "/v1/export/{}/{}", sv_route_export_status, PERM_READ, false, SVC_EXPORT, H},
    {"DELETE", "/v1/export/{}/{}", sv_route_export_cancel, PERM_OPERATE, false, SVC_EXPORT, H},
    {"POST", "/v1/cluster/export/prepare", sv_route_cluster_export_prepare, PERM_NODE, false, SVC_EXPORT, A},
    {"POST", "/v1/cluster/export/{}/commit", sv_route_cluster_export_commit, PERM_NODE, false, SVC_EXPORT, A},
    {"POST", "/v1/cluster/export/{}/abort", sv_route_cluster_export_abort, PERM_NODE, false, SVC_EXPORT, A},
    {"POST", "/v1/import/{}", sv_route_import_create, PERM_OPERATE, false, SVC_IMPORT, H},
    {"GET", "/v1/import/{}/{}", sv_route_import_status, PERM_READ, false, SVC_IMPORT, H},
    {"DELETE", "/v1/import/{}/{}", sv_route_import_cancel, PERM_OPERATE, false, SVC_IMPORT, H},
    {"POST", "/v1/collections/{}/snapshots", sv_route_snapshot_create, PERM_OPERATE, false, SVC_SNAPSHOT, A},
    {"POST", "/v1/cluster/snapshot/cut", sv_route_cluster_snapshot_cut, PERM_NODE, false, SVC_SNAPSHOT, A},
    {"POST", "/v1/cluster/snapshot/{}/release", sv_route_cluster_snapshot_release, PERM_NODE, false, SVC_SNAPSHOT, A},
    {"POST", "/v1/cluster/snapshot/{}/upload", sv_route_cluster_snapshot_upload, PERM_NODE, false, SVC_SNAPSHOT, A},
    {"POST", "/v1/cluster/snapshot/{}/abort", sv_route_cluster_snapshot_abort, PERM_NODE, false, SVC_SNAPSHOT, A},
    {"POST", "/v1/cluster/restore/lay", sv_route_cluster_restore_lay, PERM_NODE, false, SVC_SNAPSHOT, A},
    {"POST", "/v1/cluster/restore/unlay", sv_route_cluster_restore_unlay, PERM_NODE, false, SVC_SNAPSHOT, A},
    {"GET", "/v1/collections/{}/snapshots", sv_route_snapshot_list, PERM_READ, false, SVC_SNAPSHOT, A},
    {"GET", "/v1/collections/{}/snapshots/{}", sv_route_snapshot_get, PERM_READ, false, SVC_SNAPSHOT, A},
    {"DELETE", "/v1/collections/{}/snapshots/{}", sv_route_snapshot_drop, PERM_OPERATE, false, SVC_SNAPSHOT, A},
    {"POST", "/v1/collections/{}/snapshots/{}/restore", sv_route_snapshot_restore, PERM_OPERATE, false, SVC_SNAPSHOT, A},
    {"POST", "/v1/collections/{}/snapshots/{}/mount", sv_route_snapshot_mount, PERM_OPERATE, false, SVC_REGISTRY, A},
    {"DELETE", "/v1/collections/{}/snapshots/{}/mount", sv_route_snapshot_unmount, PERM_OPERATE, false, SVC_REGISTRY, A},
    {"GET", "/v1/collections/{}/snapshots/{}/objects", sv_route_snapshot_objects_list, PERM_READ, false, SVC_REGISTRY, A},
    {"GET", "/v1/collections/{}/snapshots/{}/objects/{}", sv_route_snapshot_object_get, PERM_READ, false, SVC_REGISTRY, A},
    {"POST", "/v1/collections/{}/snapshots/{}/objects/restore", sv_route_snapshot_objects_restore, PERM_WRITE, false,
     SVC_REGISTRY, H},
    {"GET", "/v1/restore-jobs", sv_route_restore_job_list, PERM_READ, false, SVC_SNAPSHOT, ANY},
    {"GET", "/v1/restore-jobs/{}", sv_route_restore_job_get, PERM_READ, false, SVC_SNAPSHOT, H},
    {"POST", "/v1/snapshots/gc", sv_route_snapshot_gc, PERM_OPERATE, false, SVC_SNAPSHOT, A},
    {"GET", "/v1/registry", sv_route_registry_summary, PERM_READ, false, SVC_REGISTRY, A},
    {"GET", "/v1/registry/shards", sv_route_registry_shards, PERM_READ, false, SVC_REGISTRY, ANY},
    {"GET", "/v1/registry/shards/{}/{}", sv_route_registry_shard_get, PERM_READ, false, SVC_REGISTRY, H},
    {"POST", "/v1/registry/shards/{}/{}/recover", sv_route_registry_recover, PERM_OPERATE, false, SVC_REGISTRY, H},
    {"POST", "/v1/registry/shards/{}/{}/pin", sv_route_registry_pin, PERM_OPERATE, false, SVC_REGISTRY, H},
    {"POST", "/v1/registry/shards/{}/{}/unpin", sv_route_registry_unpin, PERM_OPERATE, false, SVC_REGISTRY, H},
    {"POST", "/v1/registry/gc", sv_route_registry_gc, PERM_OPERATE, false, SVC_REGISTRY, A},
    {"GET", "/v1/jobs", sv_route_jobs_list, PERM_READ, false, SVC_JOBS, ANY},
    {"GET", "/v1/jobs/{}", sv_route_job_get, PERM_READ, false, SVC_JOBS, H},
    {"POST", "/v1/jobs/{}/cancel", sv_route_job_cancel, PERM_OPERATE, false, SVC_JOBS, H},
    {"POST", "/v1/schedules", sv_route_schedule_create, PERM_MANAGE, false, SVC_JOBS, H},
    {"GET", "/v1/schedules", sv_route_schedule_list, PERM_READ, false, SVC_JOBS, ANY},
    {"GET", "/v1/schedules/{}", sv_route_schedule_get, PERM_READ, false, SVC_JOBS, H},
    {"PUT", "/v1/schedules/{}", sv_route_schedule_update, PERM_MANAGE, false, SVC_JOBS, H},
    {"DELETE", "/v1/schedules/{}", sv_route_schedule_delete, PERM_MANAGE, false, SVC_JOBS, H},
    {"POST", "/v1/maintenance/rebuild", sv_route_maint_rebuild, PERM_MANAGE, false, SVC_MAINT, A},
    {"POST", "/v1/maintenance/verify", sv_route_maint_verify, PERM_OPERATE, false, SVC_MAINT, A},
    {"POST", "/v1/maintenance/move", sv_route_maint_move, PERM_MANAGE, false, SVC_MAINT, A},
    {"POST", "/v1/maintenance/analyze", sv_route_maint_analyze, PERM_MANAGE, false, SVC_MAINT, A},
    {"GET", "/v1/maintenance/status", sv_route_maint_status, PERM_READ, false, SVC_MAINT, A},
    {"GET", "/v1/maintenance/recovery-kit", sv_route_maint_kit, PERM_MANAGE, false, SVC_MAINT, A},
    {"DELETE", "/v1/maintenance/lease", sv_route_maint_lease_break, PERM_MANAGE, false, SVC_MAINT, A},
    {"POST", "/v1/maintenance/checkpoint", sv_route_maint_checkpoint, PERM_OPERATE, false, SVC_MAINT, A},
    {"GET", "/v1/authz/me", sv_route_authz_me, PERM_READ, false, SVC_AUTH, ANY},
    {"GET", "/v1/authz/routes", sv_route_authz_routes, PERM_MANAGE, false, SVC_AUTH, A},
    {"POST", "/v1/authz/keys", sv_route_authz_key_create, PERM_MANAGE, false, SVC_AUTH, A},
    {"GET", "/v1/authz/keys", sv_route_authz_key_list, PERM_MANAGE, false, SVC_AUTH, A},
    {"DELETE", "/v1/authz/keys/{}", sv_route_authz_key_delete, PERM_MANAGE, false, SVC_AUTH, A},
    {"PUT", "/v1/authz/keys/{}", sv_route_authz_key_set_roles, PERM_MANAGE, false, SVC_AUTH, A},
    {"POST", "/v1/authz/keys/{}/rotate", sv_route_authz_key_rotate, PERM_MANAGE, false, SVC_AUTH, A},
    {"POST", "/v1/authz/roles", sv_route_authz_role_create, PERM_MANAGE, false, SVC_AUTH, A},
    {"GET", "/v1/authz/roles", sv_route_authz_role_list, PERM_MANAGE, false, SVC_AUTH, A},
    {"GET", "/v1/authz/roles/{}", sv_route_authz_role_get, PERM_MANAGE, false, SVC_AUTH, A},
    {"DELETE", "/v1/authz/roles/{}", sv_route_authz_role_delete, PERM_MANAGE, false, SVC_AUTH, A},
    {"GET", "/console", sv_route_console, PERM_PUBLIC, false, SVC_STORE, A},
    {"GET", "/console/{}", sv_route_console, PERM_PUBLIC, false, SVC_STORE, A},
};
static const size_t nroutes = sizeof routes / sizeof routes[0];
_Static_assert(sizeof routes / sizeof routes[0] < MAX_ROUTES, "raise MAX_ROUTES: the metrics have a slot per route");

json_t *sv_server_route_table(const request *rq)
{
    static const char *const scopes[] = {"auto", "any", "handler"};
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < nroutes; i++) {
        /* --metrics-public false: /metrics needs operate (server_auth.c) */
        bool private_metrics = !strcmp(routes[i].pattern, "/metrics") && sv_request_metrics_private(rq);
        json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "method", routes[i].method, "pattern",
                                             routes[i].pattern, "action",
                                             private_metrics ? perm_names[PERM_OPERATE] : perm_names[routes[i].perm],
                                             "scope", scopes[routes[i].scope]));
    }
    return arr ? json_pack("{s:o}", "routes", arr) : NULL;
}

/* Matches path against pattern, capturing "{}" segments. */
static bool match(const char *pattern, const char *path, request *rq)
{
    int np = 0;
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (p[0] == '{' && p[1] == '}') {
            const char *end = strchr(u, '/');
            size_t n = end ? (size_t)(end - u) : strlen(u);
            if (n == 0 || n >= sizeof rq->params[0] || np == MAX_PARAMS)
                return false;
            memcpy(rq->params[np], u, n);
            rq->params[np][n] = '\0';
            np++;
            u += n;
            p += 2;
        } else if (*p == *u) {
            p++;
            u++;
        } else {
            return false;
        }
    }
    /* tolerate one trailing slash */
    if (*p == '\0' && (u[0] == '\0' || (u[0] == '/' && u[1] == '\0'))) {
        rq->nparams = np;
        return true;
    }
    return false;
}

static int code_slot(int status)
{
    for (int i = 0; i < N_CODES - 1; i++)
        if (tracked_codes[i] == status)
            return i;
    return N_CODES - 1;
}

static enum MHD_Result send_response(request *rq)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(rq->out.len, rq->out.data, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    if (rq->out.len || rq->status != 204)
        MHD_add_response_header(resp, "Content-Type", rq->content_type ? rq->content_type : "application/json");
    if (rq->status == 405 && rq->allow[0])
        MHD_add_response_header(resp, "Allow", rq->allow);
    if (rq->status == 429 && rq->allow[0])
        MHD_add_response_header(resp, "Retry-After", rq->allow);
    if (rq->status == 503) /* not ready, shutting down, a tenant still onloading: worth a retry */
        MHD_add_response_header(resp, "Retry-After", "5");
    if (rq->status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"shardvault\"");
    if (rq->route && rq->route->fn == sv_route_console) {
        /* The console (docs/console.md): only its own origin, no framing;
         * revalidated on each load so a new binary's assets are picked up. */
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'");
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    }
    sv_server_audit(rq);
    enum MHD_Result r = MHD_queue_response(rq->con, (unsigned)rq->status, resp);
    MHD_destroy_response(resp);
    size_t slot = rq->route ? (size_t)(rq->route - routes) : nroutes;
    atomic_fetch_add(&rq->srv->counts[slot][code_slot(rq->status)], 1);
    if (rq->route) {
        int64_t ns = sv_mono_ns() - rq->started_ns;
        atomic_fetch_add(&rq->srv->dur_us[slot], ns / 1000);
        size_t b = 0;
        while (b < N_BUCKETS && (double)ns / 1e9 > latency_le[b])
            b++;
        atomic_fetch_add(&rq->srv->latency[slot][b], 1);
    }
    if (sv_log_enabled(SV_LOG_DEBUG))
        sv_debug("request", "method=%s route=\"%s\" permission=%s status=%d us=%lld", rq->method,
                 rq->route ? rq->route->pattern : "unmatched", rq->route ? perm_names[rq->route->perm] : "-",
                 rq->status,
                 (long long)((sv_mono_ns() - rq->started_ns) / 1000));
    return r;
}

/* The methods the path supports, for the Allow header of a 405. */
static void set_allow(request *rq, const char *url)
{
    request scratch = {0};
    size_t n = 0;
    for (size_t i = 0; i < nroutes; i++) {
        if (!match(routes[i].pattern, url, &scratch) || strstr(rq->allow, routes[i].method))
            continue;
        n += (size_t)snprintf(rq->allow + n, sizeof rq->allow - n, "%s%s", n ? ", " : "", routes[i].method);
        if (n >= sizeof rq->allow)
            break;
    }
}

/* "%00", "%2F" and "%5C" at s (any hex case): '/' or '\\' for those two,
 * '0' for NUL; 0 for anything else. */
static char encoded_separator(const char *s)
{
    if (s[0] != '%' || !s[1] || !s[2])
        return 0;
    char hi = s[1], lo = (char)tolower((unsigned char)s[2]);
    if (hi == '0' && lo == '0')
        return '0';
    if (hi == '2' && lo == 'f')
        return '/';
    if (hi == '5' && lo == 'c')
        return '\\';
    return 0;
}

static const char *separator_name(char c)
{
    return c == '0' ? "an encoded NUL (%00)" : c == '/' ? "an encoded '/' (%2F)" : "an encoded '\\' (%5C)";
}

/* Checks the undecoded request target. MHD decodes the path and the query
 * values before on_request sees them, so "%00" would cut a name short
 * ("Prod%00-not-prod" -> "Prod") and "%2F" would turn into a segment
 * separator: such URLs are refused here, before routing. Writes the problem
 * into msg (empty when the URL is fine). */
static void check_raw_url(const char *uri, char *msg, size_t cap)
{
    msg[0] = '\0';
    const char *q = strchr(uri, '?');
    size_t path_len = q ? (size_t)(q - uri) : strlen(uri);
    for (size_t i = 0; i < path_len; i++) {
        char c = encoded_separator(uri + i);
        if (c) {
            snprintf(msg, cap, "the URL path has %s in a segment: no name can contain it; remove it from the URL",
                     separator_name(c));
            return;
        }
    }
    if (!q)
        return;
    const char *param = q + 1;
    for (const char *p = q + 1; *p; p++) {
        if (*p == '&') {
            param = p + 1;
            continue;
        }
        char c = encoded_separator(p);
        if (!c)
            continue;
        size_t klen = strcspn(param, "=&");
        bool plain = klen > 0 && klen <= 40;
        for (size_t k = 0; plain && k < klen; k++)
            plain = (param[k] >= 'a' && param[k] <= 'z') || (param[k] >= 'A' && param[k] <= 'Z') ||
                    (param[k] >= '0' && param[k] <= '9') || param[k] == '_' || param[k] == '-' || param[k] == '.';
        if (plain)
            snprintf(msg, cap, "the query parameter '%.*s' has %s in its value: no parameter accepts it; remove it",
                     (int)klen, param, separator_name(c));
        else
            snprintf(msg, cap, "the URL query has %s: no parameter accepts it; remove it", separator_name(c));
        return;
    }
}

/* ---- TLS ----------------------------------------------------------------- */

/* TLS 1.2 and 1.3 only. */
static const char tls_priorities[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";

/* Up to this many certificates in the server's chain and in a client's. */
#define TLS_MAX_CHAIN 16

/* One loaded set of TLS files. Certificate and key are kept as PEM text and
 * imported afresh for every handshake (gnutls frees those copies when the
 * session ends), so a reload never frees anything a session still uses. */
struct tls_creds {
    char *cert_pem, *key_pem;
    size_t cert_len, key_len;
    gnutls_x509_trust_list_t client_ca; /* NULL without --tls-client-ca */
};

static void tls_creds_free(struct tls_creds *c)
{
    if (!c)
        return;
    free(c->cert_pem);
    if (c->key_pem) {
        explicit_bzero(c->key_pem, c->key_len);
        free(c->key_pem);
    }
    if (c->client_ca)
        gnutls_x509_trust_list_deinit(c->client_ca, 1);
    free(c);
}

/* Reads and checks the files: each must exist and parse, and the key must
 * belong to the certificate. Messages name the flag to fix. */
static int tls_creds_load(const char *cert_file, const char *key_file, const char *ca_file, struct tls_creds **out,
                          sv_err *err)
{
    struct tls_creds *c = calloc(1, sizeof *c);
    if (!c)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    sv_err e = {0};
    int rc = sv_read_file(cert_file, &c->cert_pem, &c->cert_len, &e);
    if (rc) {
        tls_creds_free(c);
        return sv_fail(err, rc, "--tls-cert: %s", e.msg);
    }
    rc = sv_read_file(key_file, &c->key_pem, &c->key_len, &e);
    if (rc) {
        tls_creds_free(c);
        return sv_fail(err, rc, "--tls-key: %s", e.msg);
    }
    gnutls_datum_t cd = {(unsigned char *)c->cert_pem, (unsigned)c->cert_len};
    gnutls_datum_t kd = {(unsigned char *)c->key_pem, (unsigned)c->key_len};
    gnutls_x509_crt_t *crts = NULL;
    unsigned ncrts = 0;
    int g =
        gnutls_x509_crt_list_import2(&crts, &ncrts, &cd, GNUTLS_X509_FMT_PEM, GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
    if (g < 0 || ncrts == 0) {
        tls_creds_free(c);
        return sv_fail(err, SV_EINVAL, "--tls-cert: %s holds no usable PEM certificate (%s)", cert_file,
                       g < 0 ? gnutls_strerror(g) : "no certificate found");
    }
    for (unsigned i = 0; i < ncrts; i++)
        gnutls_x509_crt_deinit(crts[i]);
    gnutls_free(crts);
    if (ncrts > TLS_MAX_CHAIN) {
        tls_creds_free(c);
        return sv_fail(err, SV_EINVAL, "--tls-cert: %s holds %u certificates; at most %d (the certificate and its chain)",
                       cert_file, ncrts, TLS_MAX_CHAIN);
    }
    gnutls_x509_privkey_t pk;
    gnutls_x509_privkey_init(&pk);
    g = gnutls_x509_privkey_import2(pk, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(pk);
    if (g < 0) {
        tls_creds_free(c);
        return sv_fail(err, SV_EINVAL, "--tls-key: %s holds no usable unencrypted PEM private key (%s)", key_file,
                       gnutls_strerror(g));
    }
    /* gnutls checks that the key belongs to the certificate here. */
    gnutls_certificate_credentials_t probe;
    if (gnutls_certificate_allocate_credentials(&probe) < 0) {
        tls_creds_free(c);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    g = gnutls_certificate_set_x509_key_mem2(probe, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(probe);
    if (g < 0) {
        tls_creds_free(c);
        if (g == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
            return sv_fail(err, SV_EINVAL, "--tls-key: the key in %s does not match the certificate in %s (--tls-cert)",
                           key_file, cert_file);
        return sv_fail(err, SV_EINVAL, "--tls-cert/--tls-key: cannot use %s with %s: %s", cert_file, key_file,
                       gnutls_strerror(g));
    }
    if (ca_file) {
        char *ca = NULL;
        size_t ca_len = 0;
        rc = sv_read_file(ca_file, &ca, &ca_len, &e);
        if (rc) {
            tls_creds_free(c);
            return sv_fail(err, rc, "--tls-client-ca: %s", e.msg);
        }
        gnutls_datum_t ad = {(unsigned char *)ca, (unsigned)ca_len};
        g = gnutls_x509_trust_list_init(&c->client_ca, 0);
        if (g >= 0)
            g = gnutls_x509_trust_list_add_trust_mem(c->client_ca, &ad, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
        free(ca);
        if (g <= 0) {
            tls_creds_free(c);
            return sv_fail(err, SV_EINVAL, "--tls-client-ca: %s holds no usable PEM CA certificate (%s)", ca_file,
                           g < 0 ? gnutls_strerror(g) : "no certificate found");
        }
    }
    *out = c;
    return 0;
}

/* MHD's connection notification: remembers the server on each connection so
 * the certificate callback, which gets only the gnutls session, finds it. */
static void on_connection(void *cls, struct MHD_Connection *con, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        *socket_context = cls;
}

/* gnutls asks for the certificate of each handshake: fresh copies of the
 * current ones, freed by gnutls (GNUTLS_CERT_RETR_DEINIT_ALL). */
static int tls_retrieve(gnutls_session_t session, const struct gnutls_cert_retr_st *info, gnutls_pcert_st **certs,
                        unsigned int *ncerts, gnutls_ocsp_data_st **ocsp, unsigned int *nocsp,
                        gnutls_privkey_t *key, unsigned int *flags)
{
    *certs = NULL;
    *ncerts = 0;
    *ocsp = NULL;
    *nocsp = 0;
    *key = NULL;
    *flags = GNUTLS_CERT_RETR_DEINIT_ALL;
    struct MHD_Connection *con = gnutls_session_get_ptr(session);
    const union MHD_ConnectionInfo *ci = con ? MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT) : NULL;
    sv_server *srv = ci ? ci->socket_context : NULL;
    if (!srv)
        return -1;
    gnutls_pcert_st *pc = gnutls_malloc(TLS_MAX_CHAIN * sizeof *pc);
    gnutls_privkey_t pk = NULL;
    if (!pc || gnutls_privkey_init(&pk) < 0) {
        gnutls_free(pc);
        return -1;
    }
    unsigned n = TLS_MAX_CHAIN;
    pthread_mutex_lock(&srv->tls_mu);
    struct tls_creds *c = srv->tls;
    gnutls_datum_t cd = {(unsigned char *)c->cert_pem, (unsigned)c->cert_len};
    gnutls_datum_t kd = {(unsigned char *)c->key_pem, (unsigned)c->key_len};
    int g = gnutls_pcert_list_import_x509_raw(pc, &n, &cd, GNUTLS_X509_FMT_PEM, 0);
    int gk = g < 0 ? g : gnutls_privkey_import_x509_raw(pk, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    pthread_mutex_unlock(&srv->tls_mu);
    if (g < 0 || gk < 0) {
        if (g >= 0)
            for (unsigned i = 0; i < n; i++)
                gnutls_pcert_deinit(&pc[i]);
        gnutls_free(pc);
        gnutls_privkey_deinit(pk);
        sv_error("cannot use the TLS certificate", "error=\"%s\"", gnutls_strerror(g < 0 ? g : gk));
        return -1;
    }
    *certs = pc;
    *ncerts = n;
    *key = pk;
    return 0;
}

/* With --tls-client-ca: the connection's client certificate chain must
 * verify against the CA (signatures, validity dates, key purpose). Returns
 * 0, or -1 with why in msg. */
static int tls_verify_client(sv_server *srv, struct MHD_Connection *con, char *msg, size_t cap)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ci ? (gnutls_session_t)ci->tls_session : NULL;
    unsigned n = 0;
    const gnutls_datum_t *peers = session ? gnutls_certificate_get_peers(session, &n) : NULL;
    if (!peers || n == 0) {
        snprintf(msg, cap, "a client certificate is required: connect with a certificate issued by this server's "
                           "client CA (--tls-client-ca)");
        return -1;
    }
    if (n > TLS_MAX_CHAIN)
        n = TLS_MAX_CHAIN;
    gnutls_x509_crt_t crts[TLS_MAX_CHAIN];
    unsigned got = 0;
    int g = 0;
    for (; got < n; got++) {
        if ((g = gnutls_x509_crt_init(&crts[got])) < 0)
            break;
        if ((g = gnutls_x509_crt_import(crts[got], &peers[got], GNUTLS_X509_FMT_DER)) < 0) {
            gnutls_x509_crt_deinit(crts[got]);
            break;
        }
    }
    unsigned status = 0;
    if (got == n) {
        gnutls_typed_vdata_st purpose = {.type = GNUTLS_DT_KEY_PURPOSE_OID,
                                         .data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT};
        pthread_mutex_lock(&srv->tls_mu);
        g = gnutls_x509_trust_list_verify_crt2(srv->tls->client_ca, crts, n, &purpose, 1, 0, &status, NULL);
        pthread_mutex_unlock(&srv->tls_mu);
    }
    for (unsigned i = 0; i < got; i++)
        gnutls_x509_crt_deinit(crts[i]);
    if (g < 0) {
        snprintf(msg, cap, "the client certificate cannot be checked: %s", gnutls_strerror(g));
        return -1;
    }
    if (status) {
        gnutls_datum_t why = {0};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) >= 0 && why.data) {
            snprintf(msg, cap, "the client certificate is not accepted: %s", (const char *)why.data);
            gnutls_free(why.data);
            for (size_t end = strlen(msg); end > 0 && msg[end - 1] == ' '; end--)
                msg[end - 1] = '\0';
        } else {
            snprintf(msg, cap, "the client certificate is not accepted (status 0x%x)", status);
        }
        return -1;
    }
    return 0;
}

/* Refuses (403) a request whose connection has no acceptable client
 * certificate, when the server requires one. */
static bool tls_client_refused(sv_server *srv, request *rq)
{
    if (!srv->tls || !srv->tls_client_ca_file)
        return false;
    char msg[256];
    if (tls_verify_client(srv, rq->con, msg, sizeof msg) == 0)
        return false;
    sv_warn("client certificate refused", "error=\"%s\"", msg);
    sv_reply_error(rq, 403, msg);
    return true;
}

int sv_server_reload_tls(sv_server *srv, sv_err *err)
{
    if (!srv || !srv->tls)
        return sv_fail(err, SV_ESTATE, "the server runs without TLS (no --tls-cert): nothing to reload");
    struct tls_creds *fresh = NULL;
    int rc = tls_creds_load(srv->tls_cert_file, srv->tls_key_file, srv->tls_client_ca_file, &fresh, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&srv->tls_mu);
    struct tls_creds *old = srv->tls;
    srv->tls = fresh;
    pthread_mutex_unlock(&srv->tls_mu);
    tls_creds_free(old);
    return 0;
}

/* MHD's URI log callback: called with the request target as sent, before
 * any decoding. The request starts here so the raw URL can be checked. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
    sv_server *srv = cls;
    request *rq = calloc(1, sizeof *rq);
    if (!rq)
        return NULL;
    rq->srv = srv;
    rq->con = con;
    rq->started_ns = sv_mono_ns();
    check_raw_url(uri, rq->url_problem, sizeof rq->url_problem);
    rq->has_query = strchr(uri, '?') != NULL;
    atomic_fetch_add(&srv->in_flight, 1);
    return rq;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    sv_server *srv = cls;
    request *rq = *con_cls;
    if (!rq) /* on_uri could not allocate it; without it the raw URL went unchecked */
        return MHD_NO;
    if (!rq->method) {
        rq->method = method;
        if (tls_client_refused(srv, rq))
            return MHD_YES;
        if (rq->url_problem[0]) {
            sv_reply_error(rq, 400, rq->url_problem);
            return MHD_YES;
        }
        bool path_known = false;
        for (size_t i = 0; i < nroutes; i++) {
            if (match(routes[i].pattern, url, rq)) {
                path_known = true;
                /* HEAD is GET without the body (libmicrohttpd sends none) */
                if (strcmp(routes[i].method, method) == 0 ||
                    (!strcmp(method, "HEAD") && !strcmp(routes[i].method, "GET"))) {
                    rq->route = &routes[i];
                    break;
                }
            }
        }
        if (!rq->route) {
            if (path_known) {
                char msg[300];
                /* a mounted snapshot's objects: read-only, say what to use */
                bool snap = strstr(url, "/snapshots/") && strstr(url, "/objects");
                snprintf(msg, sizeof msg, "method %.16s is not allowed on %.100s%s", method, url,
                         snap ? ": a snapshot is read-only (bring objects back with POST "
                                "/v1/collections/{c}/snapshots/{s}/objects/restore)"
                              : "");
                sv_reply_error(rq, 405, msg);
                set_allow(rq, url);
            } else {
                char msg[256];
                snprintf(msg, sizeof msg, "no such endpoint: %.16s %.150s (see docs/api.md)", method, url);
                sv_reply_error(rq, 404, msg);
            }
            return MHD_YES;
        }
        const char *down = rq->route->svc == SVC_EXPORT && !srv->svc.export       ? "export"
                           : rq->route->svc == SVC_SNAPSHOT && !srv->svc.snapshot ? "snapshot"
                           : rq->route->svc == SVC_JOBS && !srv->svc.jobs         ? "jobs"
                           : rq->route->svc == SVC_IMPORT && !srv->svc.importer   ? "import"
                           : rq->route->svc == SVC_AUTH && !srv->svc.auth         ? "auth (--auth apikey)"
                           : rq->route->svc == SVC_REGISTRY && !srv->svc.registry ? "registry"
                           : rq->route->svc == SVC_CLUSTER && !srv->svc.cluster   ? "cluster"
                           : rq->route->svc == SVC_MAINT && !srv->svc.maintenance ? "maintenance"
                                                                                  : NULL;
        if (down) {
            char msg[128];
            snprintf(msg, sizeof msg, "the %s service is not running on this server", down);
            sv_reply_error(rq, 503, msg);
            return MHD_YES;
        }
        int gate = sv_forward_gate(rq); /* a request another node forwarded */
        if (gate == 0 && rq->route->perm == PERM_NODE) {
            sv_reply_error(rq, 403, "this endpoint is for the cluster's nodes only (it needs the cluster secret)");
            return MHD_YES;
        }
        if (gate == 1 || (gate == 0 && sv_server_authorize(rq)))
            return MHD_YES;
        if (atomic_load(&srv->quiescing) && rq->route->perm != PERM_READ && rq->route->perm != PERM_PUBLIC) {
            sv_reply_error(rq, 503, "the server is shutting down; retry against another node or after restart");
            return MHD_YES;
        }
        const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (!rq->route->stream_body && cl && strtoll(cl, NULL, 10) > srv->max_body) {
            char msg[160];
            snprintf(msg, sizeof msg, "request body of %s bytes is over the limit of %lld bytes (--max-body-bytes)", cl,
                     (long long)srv->max_body);
            sv_reply_error(rq, 413, msg);
            rq->body_too_big = true;
            return MHD_YES;
        }
        if (rq->route->stream_body) {
            const char *ct = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
            bool ndjson = ct && (strstr(ct, "ndjson") || strstr(ct, "jsonl") || strstr(ct, "json-seq"));
            if (sv_route_batch_begin(rq, ndjson, (size_t)srv->max_body))
                return MHD_NO;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (rq->status) /* an answer is already decided: discard the body */
            return MHD_YES;
        if (rq->route->stream_body) {
            sv_route_batch_feed(rq, upload_data, n);
            return MHD_YES;
        }
        if (rq->body.len + n > (size_t)srv->max_body) {
            char msg[160];
            snprintf(msg, sizeof msg, "request body is over the limit of %lld bytes (--max-body-bytes)",
                     (long long)srv->max_body);
            sv_reply_error(rq, 413, msg);
            sv_buf_free(&rq->body);
            return MHD_YES;
        }
        if (sv_buf_append(&rq->body, upload_data, n))
            return MHD_NO;
        return MHD_YES;
    }
    if (!rq->status) {
        if (rq->route->fn(rq) != 0 && !rq->status)
            sv_reply_error(rq, 500, "out of memory");
    }
    return send_response(rq);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    sv_server *srv = cls;
    request *rq = *con_cls;
    if (!rq)
        return;
    if (rq->batch) {
        /* The client went away mid-batch: objects already flushed stay
         * written (each group is atomic), the rest are dropped. */
        sv_batch_abort(rq->batch);
    }
    sv_batch_splitter_free(rq->splitter);
    sv_forward_batch_free(rq);
    sv_buf_free(&rq->body);
    sv_buf_free(&rq->out);
    free(rq);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

static void tls_state_free(sv_server *srv)
{
    tls_creds_free(srv->tls);
    free(srv->tls_cert_file);
    free(srv->tls_key_file);
    free(srv->tls_client_ca_file);
    free(srv->tls_client_ca_pem);
    pthread_mutex_destroy(&srv->tls_mu);
}

/* Loads the TLS files named in opts (none: plain HTTP). */
static int tls_state_init(sv_server *srv, const sv_server_opts *opts, sv_err *err)
{
    pthread_mutex_init(&srv->tls_mu, NULL);
    bool cert = opts->tls_cert_file && opts->tls_cert_file[0], key = opts->tls_key_file && opts->tls_key_file[0];
    bool ca = opts->tls_client_ca_file && opts->tls_client_ca_file[0];
    if (!cert && !key && !ca)
        return 0;
    if (!cert || !key)
        return sv_fail(err, SV_EINVAL, "%s is set but %s is not: HTTPS needs both a certificate and its key",
                       cert ? "--tls-cert" : key ? "--tls-key" : "--tls-client-ca",
                       cert ? "--tls-key" : "--tls-cert");
    sv_err e = {0};
    if (!(srv->tls_cert_file = strdup(opts->tls_cert_file)) || !(srv->tls_key_file = strdup(opts->tls_key_file)) ||
        (ca && !(srv->tls_client_ca_file = strdup(opts->tls_client_ca_file))))
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = tls_creds_load(srv->tls_cert_file, srv->tls_key_file, srv->tls_client_ca_file, &srv->tls, err);
    if (rc == 0 && ca && (rc = sv_read_file(srv->tls_client_ca_file, &srv->tls_client_ca_pem, NULL, &e)))
        sv_fail(err, rc, "--tls-client-ca: %s", e.msg);
    return rc;
}

int sv_server_start(const sv_server_opts *opts, const sv_services *svc, sv_server **out, sv_err *err)
{
    /* Every route names its action: a row without one would be unchecked. */
    for (size_t i = 0; i < nroutes; i++)
        if (routes[i].perm == PERM_NONE)
            return sv_fail(err, SV_EINTERNAL, "route %s %s has no permission: refusing to start", routes[i].method,
                           routes[i].pattern);
    sv_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    srv->svc = *svc;
    srv->store = svc->store;
    srv->max_body = opts->max_body_bytes > 0 ? opts->max_body_bytes : 64 << 20;
    snprintf(srv->node, sizeof srv->node, "%s", opts->node_name ? opts->node_name : "node1");
    srv->metrics_private = opts->metrics_private;
    srv->started_ns = sv_mono_ns();
    pthread_mutex_init(&srv->metrics_mu, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opts->port)};
    if (inet_pton(AF_INET, opts->host ? opts->host : "127.0.0.1", &addr.sin_addr) != 1) {
        free(srv);
        return sv_fail(err, SV_EINVAL, "listen address '%s' is not an IPv4 address (e.g. 127.0.0.1 or 0.0.0.0)",
                       opts->host);
    }
    int rc = tls_state_init(srv, opts, err);
    if (rc) {
        tls_state_free(srv);
        pthread_mutex_destroy(&srv->metrics_mu);
        free(srv);
        return rc;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (srv->tls)
        /* The certificate comes from tls_retrieve at each handshake (so a
         * reload needs no restart); a trust list makes MHD ask clients for
         * their certificate, which tls_client_refused then checks. */
        srv->daemon = MHD_start_daemon(
            flags | MHD_USE_TLS, 0, NULL, NULL, on_request, srv, MHD_OPTION_HTTPS_PRIORITIES, tls_priorities,
            MHD_OPTION_HTTPS_CERT_CALLBACK2, tls_retrieve, MHD_OPTION_HTTPS_MEM_TRUST, srv->tls_client_ca_pem,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED,
            on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
            MHD_OPTION_END);
    else
        srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, &addr,
                                       MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_URI_LOG_CALLBACK,
                                       on_uri, srv, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                                       MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                                       MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
    if (!srv->daemon) {
        bool tls = srv->tls != NULL;
        tls_state_free(srv);
        pthread_mutex_destroy(&srv->metrics_mu);
        free(srv);
        return sv_fail(err, SV_EIO, "cannot listen on %s:%d (address in use or not permitted?%s)",
                       opts->host ? opts->host : "127.0.0.1", opts->port,
                       tls ? " or the TLS setup was refused: see the messages above" : "");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : opts->port;
    *out = srv;
    return 0;
}

int sv_server_port(const sv_server *srv) { return srv->port; }

int sv_server_add_metrics(sv_server *srv, sv_metrics_fn fn, void *ud)
{
    pthread_mutex_lock(&srv->metrics_mu);
    int rc = 0;
    if (srv->nmetrics == (int)(sizeof srv->metrics / sizeof srv->metrics[0]))
        rc = SV_ENOMEM;
    else
        srv->metrics[srv->nmetrics++] = (struct metrics_hook){fn, ud};
    pthread_mutex_unlock(&srv->metrics_mu);
    return rc;
}

void sv_server_quiesce(sv_server *srv)
{
    atomic_store(&srv->quiescing, true);
}

void sv_server_stop(sv_server *srv, int64_t timeout_ms)
{
    if (!srv)
        return;
    atomic_store(&srv->quiescing, true);
    MHD_socket listen_fd = MHD_quiesce_daemon(srv->daemon);
    int64_t deadline = sv_mono_ns() + timeout_ms * 1000000LL;
    while (atomic_load(&srv->in_flight) > 0 && sv_mono_ns() < deadline)
        sv_sleep_ms(20);
    if (atomic_load(&srv->in_flight) > 0)
        sv_warn("stopping with requests still in flight", "count=%d", atomic_load(&srv->in_flight));
    MHD_stop_daemon(srv->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    pthread_mutex_destroy(&srv->metrics_mu);
    tls_state_free(srv);
    free(srv);
}
