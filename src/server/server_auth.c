/* The server's one place for authentication and authorization.
 *
 * Order for every request (server.c calls sv_server_authorize after routing
 * and before reading the body or calling the handler):
 *   1. auth off -> go on;
 *   2. PERM_PUBLIC routes -> go on;
 *   3. a key in the query string -> 400 (keys travel only in the header);
 *   4. Authorization: Bearer <key> -> 401 with WWW-Authenticate, one body for
 *      missing, unknown, expired and revoked keys (repeated failures from one
 *      address are answered more and more slowly);
 *   5. the key's rate limit -> 429 with Retry-After;
 *   6. the route's permission against its scope -> 403 naming action and
 *      resource — before any lookup, so the answer is the same whether the
 *      collection exists or not.
 * Handlers with SCOPE_HANDLER check the collections they name themselves
 * (sv_request_allowed), list handlers filter (sv_filter_readable).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "jobs.h"
#include "server_internal.h"

struct sv_auth *sv_request_auth(const request *rq) { return sv_request_services(rq)->auth; }

static sv_action action_of(perm p)
{
    switch (p) {
    case PERM_WRITE: return SV_ACT_WRITE;
    case PERM_MANAGE: return SV_ACT_MANAGE;
    case PERM_OPERATE: return SV_ACT_OPERATE;
    default: return SV_ACT_READ;
    }
}

bool sv_request_allowed(const request *rq, perm action, const char *collection, const char *tenant)
{
    sv_auth *a = sv_request_auth(rq);
    /* A forwarded request was authorized by the node that received it. */
    return !a || action == PERM_PUBLIC || rq->forwarded ||
           sv_auth_allowed(a, &rq->who, action_of(action), collection, tenant);
}

int sv_reply_forbidden(request *rq, perm action, const char *collection, const char *tenant)
{
    char msg[400];
    if (collection && tenant)
        snprintf(msg, sizeof msg, "forbidden: key %s may not %s collection '%.128s' tenant '%.64s'", rq->who.key_id,
                 sv_action_name(action_of(action)), collection, tenant);
    else if (collection)
        snprintf(msg, sizeof msg, "forbidden: key %s may not %s collection '%.128s'", rq->who.key_id,
                 sv_action_name(action_of(action)), collection);
    else
        snprintf(msg, sizeof msg, "forbidden: key %s may not %s on the whole server", rq->who.key_id,
                 sv_action_name(action_of(action)));
    return sv_reply_error(rq, 403, msg);
}

static bool element_readable(const request *rq, json_t *v)
{
    if (json_is_string(v))
        return sv_request_allowed(rq, PERM_READ, json_string_value(v), NULL);
    if (!json_is_array(v) || json_array_size(v) == 0)
        return sv_request_allowed(rq, PERM_READ, NULL, NULL);
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c) {
        if (!json_is_string(c) || !sv_request_allowed(rq, PERM_READ, json_string_value(c), NULL))
            return false;
    }
    return true;
}

void sv_filter_readable(const request *rq, json_t *array, const char *field)
{
    if (!sv_request_auth(rq) || !json_is_array(array))
        return;
    for (size_t i = json_array_size(array); i-- > 0;) {
        json_t *v = json_object_get(json_array_get(array, i), field);
        if (!element_readable(rq, json_is_null(v) ? NULL : v))
            json_array_remove(array, i);
    }
}

int sv_check_fields(const request *rq, perm action, json_t *obj, const char *field, sv_err *err)
{
    if (!sv_request_auth(rq))
        return 0;
    json_t *v = json_object_get(obj, field);
    if (json_is_string(v)) {
        if (sv_request_allowed(rq, action, json_string_value(v), NULL))
            return 0;
        return sv_fail(err, SV_EDENIED, "forbidden: key %s may not %s collection '%.128s'", rq->who.key_id,
                       sv_action_name(action_of(action)), json_string_value(v));
    }
    size_t i;
    json_t *c;
    if (json_is_array(v) && json_array_size(v)) {
        json_array_foreach(v, i, c) {
            if (!json_is_string(c) || !sv_request_allowed(rq, action, json_string_value(c), NULL))
                return sv_fail(err, SV_EDENIED, "forbidden: key %s may not %s collection '%.128s'", rq->who.key_id,
                               sv_action_name(action_of(action)), json_is_string(c) ? json_string_value(c) : "?");
        }
        return 0;
    }
    if (sv_request_allowed(rq, action, NULL, NULL))
        return 0;
    return sv_fail(err, SV_EDENIED, "forbidden: key %s may not %s on the whole server", rq->who.key_id,
                   sv_action_name(action_of(action)));
}

/* ---- failed authentications, per address ------------------------------------------ */

#define FAIL_SLOTS 256
static struct fail_slot {
    uint32_t addr;
    int count;
    int64_t since_ms;
} fails[FAIL_SLOTS];
static pthread_mutex_t fails_mu = PTHREAD_MUTEX_INITIALIZER;

static uint32_t client_addr(const request *rq, char *text, size_t n)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(rq->con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(text, n, "-");
    if (!ci || !ci->client_addr || ci->client_addr->sa_family != AF_INET)
        return 0;
    const struct sockaddr_in *in = (const struct sockaddr_in *)ci->client_addr;
    inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)n);
    return in->sin_addr.s_addr;
}

/* After 5 failures in a minute from one address, each further failure waits
 * one step more (SHARDVAULT_AUTH_FAIL_DELAY_MS, default 200 ms; at most 3 s;
 * 0 = off): guessing keys gets slow, real clients do not. */
static void slow_down_failures(const request *rq)
{
    static atomic_llong step_cfg = -1;
    int64_t step = atomic_load(&step_cfg);
    if (step < 0) {
        if (sv_env_int("SHARDVAULT_AUTH_FAIL_DELAY_MS", 200, &step, NULL) || step < 0)
            step = 200;
        atomic_store(&step_cfg, step);
    }
    if (step == 0)
        return;
    char ip[64];
    uint32_t a = client_addr(rq, ip, sizeof ip);
    int64_t now = sv_now_ms(), delay = 0;
    pthread_mutex_lock(&fails_mu);
    struct fail_slot *f = &fails[(a * 2654435761u) % FAIL_SLOTS];
    if (f->addr != a || now - f->since_ms > 60000)
        *f = (struct fail_slot){a, 0, now};
    if (++f->count > 5)
        delay = (f->count - 5) * step;
    pthread_mutex_unlock(&fails_mu);
    if (delay)
        sv_sleep_ms(delay > 3000 ? 3000 : delay);
}

static enum MHD_Result key_like(void *cls, enum MHD_ValueKind kind, const char *name, const char *value)
{
    static const char *const names[] = {"key", "api_key", "apikey", "api-key", "access_token", "token", "auth"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcasecmp(name, names[i])) {
            *(bool *)cls = true;
            return MHD_NO;
        }
    return MHD_YES;
}

/* One pass over the query arguments, and none without a query (most requests). */
static bool key_in_query(request *rq)
{
    bool found = false;
    if (rq->has_query)
        MHD_get_connection_values(rq->con, MHD_GET_ARGUMENT_KIND, key_like, &found);
    return found;
}

static enum MHD_Result count_authorization(void *cls, enum MHD_ValueKind kind, const char *name, const char *value)
{
    if (name && !strcasecmp(name, MHD_HTTP_HEADER_AUTHORIZATION))
        (*(int *)cls)++;
    return MHD_YES;
}

static int unauthorized(request *rq)
{
    sv_reply_error(rq, 401, "missing or invalid API key: send it as 'Authorization: Bearer <key>'");
    return 1;
}

int sv_server_authorize(request *rq)
{
    sv_auth *a = sv_request_auth(rq);
    uint8_t id[8]; /* a request id only where it is recorded */
    if (sv_request_services(rq)->audit && getrandom(id, sizeof id, GRND_NONBLOCK) == sizeof id)
        snprintf(rq->request_id, sizeof rq->request_id, "%02x%02x%02x%02x%02x%02x%02x%02x", id[0], id[1], id[2],
                 id[3], id[4], id[5], id[6], id[7]);
    bool private_metrics = rq->route->fn && !strcmp(rq->route->pattern, "/metrics") && sv_request_metrics_private(rq);
    if (!a || (rq->route->perm == PERM_PUBLIC && !private_metrics))
        return 0;
    if (key_in_query(rq)) {
        sv_reply_error(rq, 400, "API keys are accepted only in the Authorization header (Bearer), never in the URL: "
                                "URLs end up in logs and histories");
        return 1;
    }
    int nauth = 0;
    MHD_get_connection_values(rq->con, MHD_HEADER_KIND, count_authorization, &nauth);
    if (nauth > 1) {
        /* which one a proxy added first is not ours to guess */
        sv_reply_error(rq, 400, "more than one Authorization header: send exactly one 'Authorization: Bearer <key>'");
        return 1;
    }
    const char *h = MHD_lookup_connection_value(rq->con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    sv_err err = {0};
    if (sv_auth_authenticate(a, h, &rq->who, &err) != 0) {
        sv_debug("authentication failed", "route=\"%s\" reason=\"%s\"", rq->route->pattern, err.msg);
        slow_down_failures(rq);
        return unauthorized(rq);
    }
    rq->authed = true;
    int retry = 1;
    if (!sv_auth_rate(a, &rq->who, &retry)) {
        char msg[160];
        snprintf(msg, sizeof msg, "rate limit of key %s exceeded (SHARDVAULT_RATE_LIMIT); retry after %d s",
                 rq->who.key_id, retry);
        sv_reply_error(rq, 429, msg);
        snprintf(rq->allow, sizeof rq->allow, "%d", retry); /* send_response turns it into Retry-After */
        return 1;
    }
    if (private_metrics) { /* --metrics-public false: operators only */
        if (sv_request_allowed(rq, PERM_OPERATE, NULL, NULL))
            return 0;
        sv_reply_forbidden(rq, PERM_OPERATE, NULL, NULL);
        return 1;
    }
    if (rq->route->scope != SCOPE_AUTO)
        return 0;
    bool coll = !strncmp(rq->route->pattern, "/v1/collections/{}", 18);
    const char *c = coll ? rq->params[0] : NULL;
    /* Only object routes act on one tenant; the others act on the whole
     * collection whatever ?tenant= says. */
    const char *t = coll && strstr(rq->route->pattern, "/objects") ? sv_query(rq, "tenant") : NULL;
    if (!sv_request_allowed(rq, rq->route->perm, c, t)) {
        if (c && !t && strstr(rq->route->pattern, "/objects")) {
            /* a key limited to tenants is checked before the body is read */
            char msg[400];
            snprintf(msg, sizeof msg, "forbidden: key %s may not %s collection '%.128s' (a key limited to tenants "
                     "names the tenant in ?tenant=, which is checked before the body is read)", rq->who.key_id,
                     sv_action_name(action_of(rq->route->perm)), c);
            sv_reply_error(rq, 403, msg);
        } else {
            sv_reply_forbidden(rq, rq->route->perm, c, t);
        }
        return 1;
    }
    return 0;
}

/* ---- audit -------------------------------------------------------------------------- */

/* The value of "field":"..." in the answer (names here are plain:
 * validated, no escapes), or "". */
static void answer_str(const request *rq, const char *field, char *out, size_t n)
{
    char pat[40];
    int pl = snprintf(pat, sizeof pat, "\"%s\":\"", field);
    out[0] = 0;
    const char *p = rq->out.len ? memmem(rq->out.data, rq->out.len, pat, (size_t)pl) : NULL;
    if (!p)
        return;
    p += pl;
    const char *end = memchr(p, '"', (size_t)((const char *)rq->out.data + rq->out.len - p));
    if (end && (size_t)(end - p) < n)
        snprintf(out, n, "%.*s", (int)(end - p), p);
}

/* A snapshot or export this request started: its job, found by kind,
 * collection and target (their answers predate jobs and name none). */
static void started_job(const request *rq, char *job, size_t n)
{
    bool snap = !strcmp(rq->route->pattern, "/v1/collections/{}/snapshots");
    if (!snap && strcmp(rq->route->pattern, "/v1/export/{}"))
        return;
    sv_jobs *jobs = sv_request_services(rq)->jobs;
    char target[160];
    answer_str(rq, snap ? "name" : "id", target, sizeof target);
    json_t *list = NULL;
    sv_jobs_filter f = {.kind = snap ? "snapshot" : "export", .collection = snap ? rq->params[0] : NULL, .limit = 50};
    if (!jobs || !target[0] || sv_jobs_list(jobs, &f, &list, NULL))
        return;
    size_t i;
    json_t *jb;
    json_array_foreach(json_object_get(list, "jobs"), i, jb) {
        const char *t = json_string_value(json_object_get(jb, "target"));
        if (t && !strcmp(t, target)) {
            snprintf(job, n, "%s", json_string_value(json_object_get(jb, "id")));
            break;
        }
    }
    json_decref(list);
}

void sv_server_audit(const request *rq)
{
    sv_audit *au = sv_request_services(rq)->audit;
    if (!au || !rq->route)
        return;
    bool denied = rq->status == 401 || rq->status == 403 || rq->status == 429;
    if (!denied && (rq->route->perm == PERM_READ || rq->route->perm == PERM_PUBLIC))
        return;
    char ip[64];
    client_addr(rq, ip, sizeof ip);
    const char *roles[8];
    for (int i = 0; i < rq->who.nroles; i++)
        roles[i] = rq->who.roles[i];
    bool coll = !strncmp(rq->route->pattern, "/v1/collections/{}", 18);
    /* The job an operation started, when its answer names one ("jobId"). */
    char job[40] = "";
    const char *j = rq->out.len ? memmem(rq->out.data, rq->out.len, "\"jobId\":\"", 9) : NULL;
    if (j && (size_t)((const uint8_t *)j + 9 + 36 - rq->out.data) <= rq->out.len)
        snprintf(job, sizeof job, "%.36s", j + 9);
    else if (!strncmp(rq->route->pattern, "/v1/jobs/{}", 11) && rq->nparams > 0) /* a job's own routes */
        snprintf(job, sizeof job, "%.36s", rq->params[0]);
    else if (rq->status < 300 && !strcmp(rq->method, "POST"))
        started_job(rq, job, sizeof job);
    sv_audit_rec r = {
        .ts_ms = sv_now_ms(),
        .request_id = rq->request_id,
        .key_id = rq->authed ? rq->who.key_id : NULL,
        .roles = roles,
        .nroles = rq->authed ? rq->who.nroles : 0,
        .remote_addr = ip,
        .method = rq->method,
        .route = rq->route->pattern,
        .action = rq->route->perm == PERM_PUBLIC ? "public" : sv_action_name(action_of(rq->route->perm)),
        .collection = coll ? rq->params[0] : NULL,
        .tenant = coll ? MHD_lookup_connection_value(rq->con, MHD_GET_ARGUMENT_KIND, "tenant") : NULL,
        .status = rq->status,
        .outcome = denied ? "denied" : rq->status >= 400 ? "error" : "ok",
        .duration_ms = (sv_mono_ns() - rq->started_ns) / 1000000,
        .job_id = job[0] ? job : NULL,
    };
    sv_audit_write(au, &r);
}
