/* Forwarding in front of the store routes (docs/cluster.md "Forwarding"):
 * with placement on, a request for a shard another node owns is sent to that
 * node (sv_cluster_forward) and its answer passed back; a batch is split by
 * owner and the results merged in request order; a listing merges every
 * owner's page. A forwarded request (checked by sv_forward_gate) is served
 * from this node's shards only and never forwarded again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "server_internal.h"
#include "store.h"

static sv_cluster *cl(const request *rq) { return sv_request_services(rq)->cluster; }
static sv_store *store(const request *rq) { return sv_request_services(rq)->store; }
static bool placement(const request *rq) { return cl(rq) && sv_cluster_placement(cl(rq)); }

static bool forwardable(const route *r)
{
    handler_fn f = r->fn;
    return f == sv_route_object_create || f == sv_route_object_put || f == sv_route_object_get ||
           f == sv_route_object_delete || f == sv_route_objects_list || f == sv_route_batch ||
           f == sv_route_tenants_update || f == sv_route_tenants_delete || f == sv_route_shards_list ||
           f == sv_route_tenants_list || f == sv_route_snapshot_create || f == sv_route_shard_move ||
           f == sv_route_tenant_move || f == sv_route_move_step;
}

int sv_forward_gate(request *rq)
{
    const char *by = MHD_lookup_connection_value(rq->con, MHD_HEADER_KIND, SV_CLUSTER_FORWARDED_HEADER);
    if (!by)
        return 0;
    if (!cl(rq) || (!forwardable(rq->route) && rq->route->perm != PERM_NODE)) {
        sv_reply_error(rq, 403,
                       "forwarded requests are accepted on object, shard, tenant, snapshot-create and node-to-node routes only");
        return 1;
    }
    sv_err err = {0};
    const char *secret = MHD_lookup_connection_value(rq->con, MHD_HEADER_KIND, SV_CLUSTER_SECRET_HEADER);
    if (sv_cluster_check_secret(cl(rq), secret, &err) != 0) {
        sv_warn("forwarded request refused", "route=\"%s\" from=\"%.64s\" reason=\"%s\"", rq->route->pattern, by,
                err.msg);
        sv_reply_error(rq, 401, err.msg);
        return 1;
    }
    rq->forwarded = true;
    /* Authenticated and authorized by the node that received it; its key id
     * travels for this node's audit log (never the key itself). */
    const char *who = MHD_lookup_connection_value(rq->con, MHD_HEADER_KIND, SV_CLUSTER_PRINCIPAL_HEADER);
    snprintf(rq->who.key_id, sizeof rq->who.key_id, "%.39s", who && *who ? who : "cluster");
    rq->authed = sv_request_auth(rq) != NULL;
    return 2;
}

/* The path of a store route, rebuilt from its checked parameters, plus the
 * query arguments the store routes read (each checked), so nothing from the
 * request is passed on unchecked. false: a parameter does not pass its
 * check (the local store call answers the error). */
static bool target(request *rq, const char *suffix, const char *tenant, char *out, size_t n)
{
    if (sv_check_collection_name(rq->params[0], NULL) != 0 || (tenant && sv_check_tenant_name(tenant, NULL) != 0))
        return false;
    size_t k = (size_t)snprintf(out, n, "/v1/collections/%s/%s", rq->params[0], suffix);
    char sep = '?';
    if (tenant) {
        k += (size_t)snprintf(out + k, k < n ? n - k : 0, "%ctenant=%s", sep, tenant);
        sep = '&';
    }
    const char *after = sv_query(rq, "after"), *limit = sv_query(rq, "limit");
    sv_uuid u;
    if (after && sv_uuid_parse(after, strlen(after), &u) != 0)
        return false;
    if (after) {
        k += (size_t)snprintf(out + k, k < n ? n - k : 0, "%cafter=%s", sep, after);
        sep = '&';
    }
    for (const char *p = limit; p && *p; p++)
        if (*p < '0' || *p > '9' || p - limit > 8)
            return false;
    if (limit)
        k += (size_t)snprintf(out + k, k < n ? n - k : 0, "%climit=%s", sep, limit);
    return k < n;
}

int sv_forward_pass_back(request *rq, sv_cluster_call *call)
{
    if (call->rc) {
        int rc = sv_reply_err(rq, call->rc, &call->err);
        sv_buf_free(&call->out);
        return rc;
    }
    sv_buf_free(&rq->out);
    rq->out = call->out;
    memset(&call->out, 0, sizeof call->out);
    rq->status = call->status;
    return 0;
}

/* ---- one object ------------------------------------------------------------ */

int sv_forward_object(request *rq)
{
    if (!placement(rq))
        return 0;
    const char *tenant = sv_query(rq, "tenant");
    const char *id = rq->nparams > 1 ? rq->params[1] : NULL;
    char node[65];
    if (rq->forwarded) { /* the owner: make sure this view knows a new collection or tenant */
        char sh[72];
        if ((id || tenant) && sv_store_owner(store(rq), rq->params[0], tenant, id, node, sh, NULL) == 0 &&
            strcmp(node, sv_cluster_name(cl(rq))))
            sv_store_refresh_shard(store(rq), rq->params[0], sh, NULL); /* a move's switch this view has not seen */
        else if (!id && !tenant)
            sv_store_sync_collection(store(rq), rq->params[0], NULL);
        return 0;
    }
    bool has_body = !strcmp(rq->method, "POST") || !strcmp(rq->method, "PUT");
    json_t *body = NULL;
    char idbuf[37];
    if (has_body) {
        body = rq->body.len ? json_loadb((const char *)rq->body.data, rq->body.len, 0, NULL) : NULL;
        if (!json_is_object(body)) {
            json_decref(body);
            return 0; /* the store explains what is wrong with it */
        }
        if (!tenant)
            tenant = json_string_value(json_object_get(body, "tenant"));
        if (!id) {
            id = json_string_value(json_object_get(body, "id"));
            if (!id && !json_object_get(body, "id")) { /* assign it here: it decides the shard */
                sv_uuid u;
                sv_uuid_v4(&u);
                sv_uuid_format(&u, idbuf);
                json_object_set_new(body, "id", json_string(idbuf));
                char *s = json_dumps(body, JSON_COMPACT);
                if (!s) {
                    json_decref(body);
                    return 0;
                }
                rq->body.len = 0;
                int arc = sv_buf_append(&rq->body, s, strlen(s));
                free(s);
                if (arc) {
                    json_decref(body);
                    return 0;
                }
                id = idbuf;
            }
        }
    }
    char tenant_copy[72], id_copy[40];
    snprintf(tenant_copy, sizeof tenant_copy, "%.71s", tenant ? tenant : "");
    snprintf(id_copy, sizeof id_copy, "%.39s", id ? id : "");
    json_decref(body);
    tenant = tenant_copy[0] ? tenant_copy : NULL;
    id = id_copy[0] ? id_copy : NULL;
    sv_err oerr = {0};
    int orc = id ? sv_store_owner(store(rq), rq->params[0], tenant, id, node, NULL, &oerr) : SV_EINVAL;
    if (orc == SV_EUNAVAIL || orc == SV_EIO) /* the catalog could not say: not a 404 */
        return sv_reply_err(rq, orc, &oerr) == 0;
    if (orc || !strcmp(node, sv_cluster_name(cl(rq))))
        return 0; /* this node's shard, or an error the store call explains */
    char t[600], suffix[80];
    snprintf(suffix, sizeof suffix, rq->nparams > 1 ? "objects/%s" : "objects", rq->params[1]);
    if (!target(rq, suffix, tenant, t, sizeof t))
        return 0;
    sv_cluster_call call = {.node = node, .method = rq->method, .target = t, .principal = rq->who.key_id};
    if (has_body) {
        call.body = (const char *)rq->body.data;
        call.len = rq->body.len;
    }
    sv_cluster_forward(cl(rq), &call, 1);
    sv_forward_pass_back(rq, &call);
    return 1;
}

int sv_forward_moved(request *rq)
{
    if (!placement(rq) || (rq->forwarded && sv_query(rq, "moved")))
        return 0; /* a request re-sent after a move is never sent on again */
    const char *tenant = sv_query(rq, "tenant");
    const char *id = rq->nparams > 1 ? rq->params[1] : NULL;
    json_t *body = NULL;
    bool has_body = !strcmp(rq->method, "POST") || !strcmp(rq->method, "PUT");
    if (has_body && (body = json_loadb((const char *)rq->body.data, rq->body.len, 0, NULL)) != NULL) {
        if (!tenant)
            tenant = json_string_value(json_object_get(body, "tenant"));
        if (!id)
            id = json_string_value(json_object_get(body, "id"));
    }
    char node[65], sh[72], tenant_copy[72] = "", id_copy[40] = "";
    snprintf(tenant_copy, sizeof tenant_copy, "%.71s", tenant ? tenant : "");
    snprintf(id_copy, sizeof id_copy, "%.39s", id ? id : "");
    json_decref(body);
    tenant = tenant_copy[0] ? tenant_copy : NULL;
    id = id_copy[0] ? id_copy : NULL;
    if (!id || sv_store_owner(store(rq), rq->params[0], tenant, id, node, sh, NULL) != 0)
        return 0;
    if (!strcmp(node, sv_cluster_name(cl(rq)))) /* the view may be behind the catalog */
        if (sv_store_refresh_shard(store(rq), rq->params[0], sh, NULL) != 0 ||
            sv_store_owner(store(rq), rq->params[0], tenant, id, node, NULL, NULL) != 0 ||
            !strcmp(node, sv_cluster_name(cl(rq))))
            return 0; /* still this node's: the error stands */
    char t[640], suffix[80];
    snprintf(suffix, sizeof suffix, rq->nparams > 1 ? "objects/%s" : "objects", rq->params[1]);
    if (!target(rq, suffix, tenant, t, sizeof t - 12))
        return 0;
    strcat(t, strchr(t, '?') ? "&moved=1" : "?moved=1");
    sv_cluster_call call = {.node = node, .method = rq->method, .target = t, .principal = rq->who.key_id};
    if (has_body) {
        call.body = (const char *)rq->body.data;
        call.len = rq->body.len;
    }
    sv_buf_free(&rq->out);
    sv_cluster_forward(cl(rq), &call, 1);
    sv_forward_pass_back(rq, &call);
    return 1;
}

/* ---- listings ---------------------------------------------------------------- */

typedef struct slice {
    const char *p;
    size_t n;
    char id[37];
} slice;

/* The objects of a page {"objects":[...],"next":...} as slices of its text
 * (re-encoding them would change how their numbers are written). */
static int page_objects(const char *s, size_t n, slice **out, size_t *count, size_t *cap)
{
    const char *a = strstr(s, "\"objects\":[");
    if (!a)
        return SV_EPARSE;
    const char *p = a + 11, *end = s + n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\n'))
            p++;
        if (p >= end || *p == ']')
            return 0;
        if (*p != '{')
            return SV_EPARSE;
        const char *q = p;
        int depth = 0;
        bool str = false;
        for (; q < end; q++) {
            if (str) {
                if (*q == '\\')
                    q++;
                else if (*q == '"')
                    str = false;
            } else if (*q == '"') {
                str = true;
            } else if (*q == '{' || *q == '[') {
                depth++;
            } else if (*q == '}' || *q == ']') {
                if (--depth == 0)
                    break;
            }
        }
        if (q >= end)
            return SV_EPARSE;
        if (sv_grow(out, cap, *count + 1, sizeof **out))
            return SV_ENOMEM;
        slice *sl = &(*out)[*count];
        sl->p = p;
        sl->n = (size_t)(q - p + 1);
        json_t *j = json_loadb(p, sl->n, 0, NULL);
        const char *id = json_string_value(json_object_get(j, "id"));
        snprintf(sl->id, sizeof sl->id, "%s", id ? id : "");
        json_decref(j);
        (*count)++;
        p = q + 1;
    }
    return SV_EPARSE;
}

static int cmp_slice(const void *a, const void *b) { return strcmp(((const slice *)a)->id, ((const slice *)b)->id); }

int sv_forward_list(request *rq)
{
    if (!placement(rq))
        return 0;
    const char *tenant = sv_query(rq, "tenant");
    char (*nodes)[65] = NULL;
    size_t n = 0;
    sv_err oerr = {0};
    int orc = sv_store_owner_nodes(store(rq), rq->params[0], tenant, &nodes, &n, &oerr);
    if (orc == SV_EUNAVAIL || orc == SV_EIO) /* the catalog could not say: not a 404 */
        return sv_reply_err(rq, orc, &oerr) == 0;
    if (orc || rq->forwarded || (n == 1 && !strcmp(nodes[0], sv_cluster_name(cl(rq))))) {
        free(nodes);
        return 0;
    }
    int64_t limit = 100;
    const char *l = sv_query(rq, "limit");
    if (l && (sv_parse_size(l, &limit) != 0 || limit < 1 || limit > 10000)) {
        free(nodes);
        return 0; /* the local route answers 422 */
    }
    char t[600];
    if (!target(rq, "objects", tenant, t, sizeof t)) {
        free(nodes);
        return 0;
    }
    sv_cluster_call *calls = calloc(n + 1, sizeof *calls);
    sv_buf local = {0};
    int local_rc = 0;
    bool has_local = false;
    sv_err err = {0};
    size_t nc = 0;
    for (size_t i = 0; calls && i < n; i++) {
        if (!strcmp(nodes[i], sv_cluster_name(cl(rq)))) {
            has_local = true;
            continue;
        }
        calls[nc++] = (sv_cluster_call){.node = nodes[i], .method = "GET", .target = t, .principal = rq->who.key_id};
    }
    if (!calls) {
        free(nodes);
        return sv_reply_error(rq, 500, "out of memory") == 0;
    }
    if (has_local)
        local_rc = sv_store_list_objects(store(rq), rq->params[0], tenant, sv_query(rq, "after"), (int)limit, &local,
                                         &err);
    sv_cluster_forward(cl(rq), calls, nc);
    /* Any owner that did not answer fails the listing: never a partial page. */
    int done = 0;
    if (local_rc) {
        sv_reply_err(rq, local_rc, &err);
        done = 1;
    }
    for (size_t i = 0; !done && i < nc; i++) {
        if (calls[i].rc || calls[i].status != 200) {
            sv_forward_pass_back(rq, &calls[i]);
            done = 1;
        }
    }
    slice *all = NULL;
    size_t count = 0, cap = 0;
    char bound[37] = "";
    bool any_next = false;
    for (size_t i = 0; !done && i <= nc; i++) {
        sv_buf *b = i < nc ? &calls[i].out : &local;
        if (i == nc && !has_local)
            break;
        if (sv_buf_putc(b, 0)) {
            sv_reply_error(rq, 500, "out of memory");
            done = 1;
            break;
        }
        b->len--;
        size_t before = count;
        if (page_objects((const char *)b->data, b->len, &all, &count, &cap) != 0) {
            sv_reply_error(rq, 502, "a node answered a listing page this node cannot read");
            done = 1;
            break;
        }
        json_t *page = json_loadb((const char *)b->data, b->len, 0, NULL);
        const char *next = json_string_value(json_object_get(page, "next"));
        if (next && count > before) { /* objects after its page may sort before others' */
            any_next = true;
            if (!bound[0] || strcmp(all[count - 1].id, bound) < 0)
                snprintf(bound, sizeof bound, "%s", all[count - 1].id);
        }
        json_decref(page);
    }
    if (!done) {
        if (count) /* every page empty: all is NULL, and qsort's pointer may not be */
            qsort(all, count, sizeof *all, cmp_slice);
        size_t eligible = 0;
        while (eligible < count && (!bound[0] || strcmp(all[eligible].id, bound) <= 0))
            eligible++;
        /* The page ends as one node's does: at `limit` objects, or once it
         * holds the page byte budget (passing it by at most one object). */
        int64_t budget = sv_store_list_page_bytes(store(rq)), bytes = 0;
        size_t take = 0;
        while (take < eligible && take < (size_t)limit && (take == 0 || bytes < budget)) {
            bytes += (int64_t)all[take].n + (take > 0); /* with its comma */
            take++;
        }
        bool more = take < count || any_next;
        sv_buf_free(&rq->out);
        int rc = sv_buf_append_str(&rq->out, "{\"objects\":[");
        for (size_t i = 0; rc == 0 && i < take; i++) {
            if (i)
                rc |= sv_buf_putc(&rq->out, ',');
            rc |= sv_buf_append(&rq->out, all[i].p, all[i].n);
        }
        if (rc == 0 && more && take)
            rc = sv_buf_printf(&rq->out, "],\"next\":\"%s\"}", all[take - 1].id);
        else if (rc == 0)
            rc = sv_buf_append_str(&rq->out, "],\"next\":null}");
        if (rc)
            sv_reply_error(rq, 500, "out of memory");
        else
            rq->status = 200;
    }
    free(all);
    for (size_t i = 0; i < nc; i++)
        sv_buf_free(&calls[i].out);
    free(calls);
    sv_buf_free(&local);
    free(nodes);
    return 1;
}

/* ---- shard and tenant listings: counts from the owners ------------------------- */

int sv_forward_counts(request *rq, json_t *out, const char *field)
{
    json_t *arr = json_object_get(out, field);
    if (!placement(rq) || rq->forwarded || !json_is_array(arr))
        return 0;
    const char *self = sv_cluster_name(cl(rq));
    char(*nodes)[65] = calloc(json_array_size(arr) + 1, sizeof *nodes);
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        const char *node = json_string_value(json_object_get(e, "node"));
        bool known = !node || !strcmp(node, self) || strlen(node) > 64;
        for (size_t k = 0; nodes && !known && k < n; k++)
            known = !strcmp(nodes[k], node);
        if (nodes && !known)
            snprintf(nodes[n++], sizeof nodes[0], "%s", node);
    }
    json_t *byname = json_object(); /* name -> this answer's entry */
    json_array_foreach(arr, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (name && byname)
            json_object_set(byname, name, e);
    }
    sv_cluster_call *calls = n ? calloc(n, sizeof *calls) : NULL;
    char t[300];
    snprintf(t, sizeof t, "/v1/collections/%s/%s", rq->params[0], field);
    for (size_t k = 0; calls && k < n; k++)
        calls[k] = (sv_cluster_call){.node = nodes[k], .method = "GET", .target = t, .principal = rq->who.key_id,
                                     .timeout_ms = 10000};
    if (calls && sv_check_collection_name(rq->params[0], NULL) == 0)
        sv_cluster_forward(cl(rq), calls, n);
    for (size_t k = 0; calls && k < n; k++) {
        json_t *ans = calls[k].rc == 0 && calls[k].status == 200
                          ? json_loadb((const char *)calls[k].out.data, calls[k].out.len, 0, NULL)
                          : NULL;
        size_t j;
        json_t *theirs;
        json_array_foreach(json_object_get(ans, field), j, theirs) {
            const char *owner = json_string_value(json_object_get(theirs, "node"));
            const char *name = json_string_value(json_object_get(theirs, "name"));
            if (!owner || !name || strcmp(owner, nodes[k]))
                continue;
            json_t *mine = json_object_get(byname, name);
            json_t *o = json_object_get(theirs, "objects"), *b = json_object_get(theirs, "bytes");
            json_t *st = json_object_get(theirs, "status"); /* the owner's word */
            if (mine && o)
                json_object_set(mine, "objects", o);
            if (mine && json_is_string(st))
                json_object_set(mine, "status", st);
            if (mine && b && json_object_get(mine, "bytes"))
                json_object_set(mine, "bytes", b);
        }
        json_decref(ans);
        sv_buf_free(&calls[k].out);
    }
    json_decref(byname);
    free(calls);
    free(nodes);
    return 0;
}

/* ---- snapshots: on the one node holding the collection ------------------------- */

int sv_forward_snapshot(request *rq)
{
    if (!placement(rq))
        return 0;
    char(*nodes)[65] = NULL;
    size_t n = 0;
    sv_err err = {0};
    int rc = sv_store_collection_nodes(store(rq), rq->params[0], &nodes, &n, &err);
    if (rc == SV_EUNAVAIL || rc == SV_EIO) {
        free(nodes);
        return sv_reply_err(rq, rc, &err) == 0;
    }
    if (rc || n == 0 || rq->forwarded || (n == 1 && !strcmp(nodes[0], sv_cluster_name(cl(rq))))) {
        free(nodes);
        return 0; /* here: the snapshot service answers (or explains the error) */
    }
    if (n > 1) { /* spread over nodes: this node coordinates the cut (docs/cluster.md) */
        free(nodes);
        return 0;
    }
    char t[300];
    const char *w = sv_query(rq, "wait");
    if (sv_check_collection_name(rq->params[0], NULL) != 0 || (w && strcmp(w, "true") && strcmp(w, "false"))) {
        free(nodes);
        return 0;
    }
    snprintf(t, sizeof t, "/v1/collections/%s/snapshots%s", rq->params[0], w && !strcmp(w, "true") ? "?wait=true" : "");
    sv_cluster_call call = {.node = nodes[0], .method = "POST", .target = t, .body = (const char *)rq->body.data,
                            .len = rq->body.len, .principal = rq->who.key_id, .timeout_ms = 3600000};
    sv_cluster_forward(cl(rq), &call, 1);
    sv_forward_pass_back(rq, &call);
    free(nodes);
    return 1;
}

/* ---- tenant changes go to the tenants' owner ---------------------------------- */

int sv_forward_tenants(request *rq)
{
    if (!placement(rq))
        return 0;
    json_t *body = rq->body.len ? json_loadb((const char *)rq->body.data, rq->body.len, 0, NULL) : NULL;
    json_t *arr = sv_store_tenants_body(body);
    char owner[65] = "", first[72] = "";
    bool mixed = false, ok = json_is_array(arr) && json_array_size(arr) > 0;
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t) {
        const char *name = json_is_string(t) ? json_string_value(t) : json_string_value(json_object_get(t, "name"));
        char node[65];
        if (!ok || !name || !sv_request_allowed(rq, PERM_MANAGE, rq->params[0], name) ||
            sv_store_owner(store(rq), rq->params[0], name, NULL, node, NULL, NULL) != 0) {
            ok = false; /* the local call answers the error */
            break;
        }
        if (!owner[0]) {
            snprintf(owner, sizeof owner, "%s", node);
            snprintf(first, sizeof first, "%s", name);
        } else if (strcmp(owner, node)) {
            mixed = true;
            char msg[800];
            snprintf(msg, sizeof msg,
                     "the tenants of this request live on different nodes (%s on %s, %.64s on %s); send one request "
                     "per node's tenants (GET /v1/collections/%.128s/tenants shows each tenant's node)",
                     first, owner, name, node, rq->params[0]);
            sv_reply_error(rq, 422, msg);
            break;
        }
    }
    json_decref(body);
    if (mixed)
        return 1;
    if (rq->forwarded || !ok || !strcmp(owner, sv_cluster_name(cl(rq))))
        return 0;
    char tg[400];
    const char *wait = sv_query(rq, "wait");
    snprintf(tg, sizeof tg, "/v1/collections/%s/tenants%s", rq->params[0],
             wait && !strcmp(wait, "true") ? "?wait=true" : "");
    sv_cluster_call call = {.node = owner, .method = rq->method, .target = tg, .body = (const char *)rq->body.data,
                            .len = rq->body.len, .principal = rq->who.key_id, .timeout_ms = 660000};
    sv_cluster_forward(cl(rq), &call, 1);
    sv_forward_pass_back(rq, &call);
    return 1;
}

/* ---- batches ----------------------------------------------------------------- */

/* A group is sent to its owner once it holds this much (and the rest at the
 * end, all groups in parallel): memory stays bounded by a group per owner. */
#define FWD_GROUP_BYTES (8 << 20)
#define FWD_GROUP_OBJECTS 10000

/* Objects to send again to the nodes that own their shards now, one part
 * per node: lines of NDJSON and, for each, its index in the results. */
struct moved_part {
    char node[65];
    sv_buf body;
    size_t *idx; /* result indexes, in body order */
    size_t n, cap;
};
struct moved_set {
    struct moved_part *p;
    size_t n, cap;
};

/* Adds one object (json, without its newline) for node; on no memory it is
 * left out and keeps its error. */
static void moved_add(struct moved_set *ms, size_t result, const char *node, const char *json, size_t len)
{
    size_t m = 0;
    while (m < ms->n && strcmp(ms->p[m].node, node))
        m++;
    if (m == ms->n) {
        if (sv_grow(&ms->p, &ms->cap, ms->n + 1, sizeof *ms->p))
            return;
        memset(&ms->p[m], 0, sizeof ms->p[m]);
        snprintf(ms->p[m].node, sizeof ms->p[m].node, "%s", node);
        ms->n++;
    }
    struct moved_part *mp = &ms->p[m];
    size_t before = mp->body.len;
    if (sv_grow(&mp->idx, &mp->cap, mp->n + 1, sizeof *mp->idx) || sv_buf_append(&mp->body, json, len) ||
        sv_buf_putc(&mp->body, '\n')) {
        mp->body.len = before;
        return;
    }
    mp->idx[mp->n++] = result;
}

static void moved_free(struct moved_set *ms)
{
    for (size_t m = 0; m < ms->n; m++) {
        sv_buf_free(&ms->p[m].body);
        free(ms->p[m].idx);
    }
    free(ms->p);
    *ms = (struct moved_set){0};
}

/* Sends each part once (?moved=1) to its node, in parallel, and puts the
 * answers' results in place of the errors in res; a part refused or
 * answered with another count of results keeps its errors. */
static void moved_send(request *rq, struct moved_set *ms, json_t *res)
{
    if (!ms->n || !json_is_array(res))
        return;
    sv_cluster_call *calls = calloc(ms->n, sizeof *calls);
    if (!calls)
        return;
    for (size_t m = 0; m < ms->n; m++)
        calls[m] = (sv_cluster_call){.node = ms->p[m].node, .method = "POST", .target = "/v1/batch/objects?moved=1",
                                     .body = (const char *)ms->p[m].body.data, .len = ms->p[m].body.len,
                                     .content_type = "application/x-ndjson", .principal = rq->who.key_id,
                                     .timeout_ms = 300000};
    sv_cluster_forward(cl(rq), calls, ms->n);
    for (size_t m = 0; m < ms->n; m++) {
        json_t *ans = calls[m].rc == 0 && calls[m].status == 200
                          ? json_loadb((const char *)calls[m].out.data, calls[m].out.len, 0, NULL)
                          : NULL;
        json_t *got = json_object_get(ans, "results");
        if (json_array_size(got) != ms->p[m].n)
            sv_warn("a batch's objects re-sent after a move were refused; their errors stand",
                    "node=%s status=%d error=\"%s\"", calls[m].node, calls[m].status,
                    calls[m].rc ? calls[m].err.msg : "");
        else
            for (size_t k = 0; k < ms->p[m].n; k++)
                json_array_set(res, ms->p[m].idx[k], json_array_get(got, k));
        json_decref(ans);
        sv_buf_free(&calls[m].out);
    }
    free(calls);
}

struct sv_fwd_batch {
    struct group {
        char node[65];
        sv_buf body;     /* NDJSON not sent yet */
        size_t pending;  /* objects in body */
        size_t count;    /* objects given to this group so far */
        json_t *results; /* the owner's results for the objects sent, in order */
    } *groups;
    size_t ngroups, capgroups;
    struct slot {
        long group; /* -1: this node's batch */
        size_t idx; /* within the group, or the local batch */
        char id[37]; /* a forwarded object's id */
        char *error; /* group -2: why the object could not be routed */
    } *order;
    size_t norder, caporder;
    size_t nlocal;
    /* this node's objects whose shard a move switched away (store callback) */
    struct moved_set moved;
};

static void on_moved(void *ud, size_t result, const char *node, const char *json, size_t len)
{
    struct sv_fwd_batch *f = ud;
    moved_add(&f->moved, result, node, json, len);
}

bool sv_forward_batch_wanted(const request *rq) { return placement(rq) && !rq->forwarded; }

int sv_forward_batch_begin(request *rq)
{
    rq->fwd = calloc(1, sizeof *rq->fwd);
    if (rq->fwd && rq->batch)
        sv_batch_set_moved(rq->batch, on_moved, rq->fwd);
    return rq->fwd ? 0 : SV_ENOMEM;
}

void sv_forward_batch_free(request *rq)
{
    struct sv_fwd_batch *f = rq->fwd;
    if (!f)
        return;
    for (size_t i = 0; i < f->ngroups; i++) {
        sv_buf_free(&f->groups[i].body);
        json_decref(f->groups[i].results);
    }
    free(f->groups);
    for (size_t i = 0; i < f->norder; i++)
        free(f->order[i].error);
    free(f->order);
    moved_free(&f->moved);
    free(f);
    rq->fwd = NULL;
}

static int add_local(request *rq, const char *json, size_t len)
{
    struct sv_fwd_batch *f = rq->fwd;
    if (sv_grow(&f->order, &f->caporder, f->norder + 1, sizeof *f->order))
        return SV_ENOMEM;
    f->order[f->norder++] = (struct slot){-1, f->nlocal++, "", NULL};
    return sv_batch_add(rq->batch, json, len);
}

/* The node a result's error names as the shard's owner ("… is served by node
 * X, not by this node …": a move switched the shard), or false. */
static bool moved_to(json_t *r, char node[65])
{
    const char *st = json_string_value(json_object_get(r, "status"));
    const char *e = json_string_value(json_object_get(r, "error"));
    const char *p = e && st && !strcmp(st, "error") ? strstr(e, "is served by node ") : NULL;
    if (!p || !strstr(p, ", not by this node"))
        return false;
    p += strlen("is served by node ");
    size_t k = 0;
    while (k < 64 && p[k] && p[k] != ',')
        k++;
    if (!k || p[k] != ',')
        return false;
    memcpy(node, p, k);
    node[k] = 0;
    return true;
}

/* A part's objects that failed because their shard moved away while they
 * waited at its write gate (or the part reached an owner whose view was
 * ahead of this one's): sent once to the node each error names, their
 * results replacing the errors. body holds one line per object of res. */
static void resend_moved(request *rq, const sv_buf *body, json_t *res)
{
    struct moved_set ms = {0};
    const char *p = (const char *)body->data, *end = p + body->len;
    size_t n = json_array_size(res);
    for (size_t i = 0; i < n && p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char to[65];
        if (moved_to(json_array_get(res, i), to)) /* this node too: it owns the shard now */
            moved_add(&ms, i, to, p, len);
        p = nl ? nl + 1 : end;
    }
    moved_send(rq, &ms, res);
    moved_free(&ms);
}

/* Sends the pending part of each listed group to its owner, in parallel, and
 * appends the owners' results (or, for a part that failed, an error result
 * per object naming the node) to the groups' results. */
static void send_groups(request *rq, const size_t *which, size_t n)
{
    struct sv_fwd_batch *f = rq->fwd;
    sv_cluster_call *calls = calloc(n + 1, sizeof *calls);
    for (size_t k = 0; calls && k < n; k++) {
        struct group *g = &f->groups[which[k]];
        calls[k] = (sv_cluster_call){.node = g->node, .method = "POST", .target = "/v1/batch/objects",
                                     .body = (const char *)g->body.data, .len = g->body.len,
                                     .content_type = "application/x-ndjson", .principal = rq->who.key_id,
                                     .timeout_ms = 300000};
    }
    if (calls)
        sv_cluster_forward(cl(rq), calls, n);
    for (size_t k = 0; k < n; k++) {
        struct group *g = &f->groups[which[k]];
        char error[600] = "out of memory";
        json_t *ans = calls && calls[k].rc == 0
                          ? json_loadb((const char *)calls[k].out.data, calls[k].out.len, 0, NULL)
                          : NULL;
        json_t *res = json_object_get(ans, "results");
        if (calls && calls[k].rc) {
            snprintf(error, sizeof error, "%s", calls[k].err.msg);
        } else if (calls && (calls[k].status != 200 || !json_is_array(res) || json_array_size(res) != g->pending)) {
            json_t *e = json_array_get(json_object_get(ans, "error"), 0);
            const char *m = json_string_value(json_object_get(e, "message"));
            snprintf(error, sizeof error, "node %s refused its part of the batch (HTTP %d): %s", g->node,
                     calls[k].status, m ? m : "no readable answer");
        } else if (calls) {
            resend_moved(rq, &g->body, res);
            json_array_extend(g->results, res);
            error[0] = 0;
        }
        for (size_t i = 0; error[0] && i < g->pending; i++)
            json_array_append_new(g->results, json_pack("{s:s,s:s}", "status", "error", "error", error));
        json_decref(ans);
        if (calls)
            sv_buf_free(&calls[k].out);
        g->body.len = 0;
        g->pending = 0;
    }
    free(calls);
}

int sv_forward_batch_add(request *rq, const char *json, size_t len)
{
    struct sv_fwd_batch *f = rq->fwd;
    json_t *o = json_loadb(json, len, 0, NULL);
    const char *coll = json_string_value(json_object_get(o, "collection"));
    if (!coll)
        coll = json_string_value(json_object_get(o, "class"));
    const char *tenant = json_string_value(json_object_get(o, "tenant"));
    json_t *idv = json_object_get(o, "id");
    char node[65];
    if (!json_is_object(o) || !coll || (idv && !json_is_string(idv)) ||
        !sv_request_allowed(rq, PERM_WRITE, coll, tenant)) {
        json_decref(o);
        return add_local(rq, json, len); /* the batch records the error */
    }
    char idbuf[37];
    if (!idv) {
        sv_uuid u;
        sv_uuid_v4(&u);
        sv_uuid_format(&u, idbuf);
    } else {
        snprintf(idbuf, sizeof idbuf, "%s", json_string_value(idv));
    }
    sv_err oerr = {0};
    int orc = sv_store_owner(store(rq), coll, tenant, idbuf, node, NULL, &oerr);
    if (orc == SV_EUNAVAIL || orc == SV_EIO) { /* the catalog could not say where it goes */
        json_decref(o);
        char *msg = strdup(oerr.msg);
        if (!msg || sv_grow(&f->order, &f->caporder, f->norder + 1, sizeof *f->order)) {
            free(msg);
            return SV_ENOMEM;
        }
        struct slot *sl = &f->order[f->norder++];
        *sl = (struct slot){-2, 0, "", msg};
        snprintf(sl->id, sizeof sl->id, "%s", idbuf);
        return 0;
    }
    if (orc || !strcmp(node, sv_cluster_name(cl(rq)))) {
        json_decref(o);
        return add_local(rq, json, len);
    }
    if (!idv)
        json_object_set_new(o, "id", json_string(idbuf));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return SV_ENOMEM;
    size_t g = 0;
    while (g < f->ngroups && strcmp(f->groups[g].node, node))
        g++;
    int rc = 0;
    if (g == f->ngroups) {
        rc = sv_grow(&f->groups, &f->capgroups, f->ngroups + 1, sizeof *f->groups);
        if (rc == 0) {
            memset(&f->groups[g], 0, sizeof f->groups[g]);
            snprintf(f->groups[g].node, sizeof f->groups[g].node, "%s", node);
            if (!(f->groups[g].results = json_array()))
                rc = SV_ENOMEM;
            else
                f->ngroups++;
        }
    }
    if (rc == 0)
        rc = sv_grow(&f->order, &f->caporder, f->norder + 1, sizeof *f->order);
    if (rc == 0)
        rc = sv_buf_append_str(&f->groups[g].body, s) || sv_buf_putc(&f->groups[g].body, '\n');
    free(s);
    if (rc)
        return SV_ENOMEM;
    struct slot *sl = &f->order[f->norder++];
    *sl = (struct slot){(long)g, f->groups[g].count++, "", NULL};
    snprintf(sl->id, sizeof sl->id, "%s", idbuf);
    f->groups[g].pending++;
    if (f->groups[g].body.len >= FWD_GROUP_BYTES || f->groups[g].pending >= FWD_GROUP_OBJECTS)
        send_groups(rq, &g, 1);
    return 0;
}

/* On the owner of a forwarded batch: the object's collection (and tenant)
 * may be newer than this node's view (its watch lags): read it on a miss. */
void sv_forward_ensure_object(request *rq, const char *json, size_t len)
{
    sv_object_route ro = {0};
    if (!placement(rq) || sv_record_peek_route(json, len, &ro, NULL) != 0 || !ro.collection.len ||
        ro.collection.len > 128 || ro.tenant.len > 64)
        return;
    char coll[129], tenant[65], node[65];
    snprintf(coll, sizeof coll, "%.*s", (int)ro.collection.len, ro.collection.ptr);
    snprintf(tenant, sizeof tenant, "%.*s", (int)ro.tenant.len, ro.tenant.ptr);
    sv_store_owner(store(rq), coll, ro.tenant.len ? tenant : NULL, NULL, node, NULL, NULL);
}

void sv_forward_sync_collection(request *rq)
{
    if (placement(rq))
        sv_store_sync_collection(store(rq), rq->params[0], NULL);
}

bool sv_forward_resync(request *rq, int rc)
{
    return rc == SV_ENOTFOUND && placement(rq) && sv_store_sync_collection(store(rq), rq->params[0], NULL) == 0;
}

int sv_forward_batch_end(request *rq, sv_batch *b, sv_err *err)
{
    struct sv_fwd_batch *f = rq->fwd;
    sv_buf local = {0};
    int rc = sv_batch_end(b, &local, err);
    if (rc) {
        sv_buf_free(&local);
        return rc;
    }
    size_t *which = calloc(f->ngroups + 1, sizeof *which), nw = 0;
    if (!which) {
        sv_buf_free(&local);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    for (size_t g = 0; g < f->ngroups; g++)
        if (f->groups[g].pending)
            which[nw++] = g;
    send_groups(rq, which, nw);
    free(which);
    json_t *lans = json_loadb((const char *)local.data, local.len, 0, NULL);
    json_t *lres = json_object_get(lans, "results");
    moved_send(rq, &rq->fwd->moved, lres); /* this node's objects whose shard moved away */
    json_t *results = json_array();
    size_t ok = 0;
    for (size_t i = 0; results && i < f->norder; i++) {
        struct slot s = f->order[i];
        json_t *r = NULL;
        if (s.group == -2)
            r = json_pack("{s:s,s:s,s:s}", "id", s.id, "status", "error", "error", s.error);
        else if (s.group < 0)
            r = json_incref(json_array_get(lres, s.idx));
        else if ((r = json_incref(json_array_get(f->groups[s.group].results, s.idx))) &&
                 !json_is_string(json_object_get(r, "id")))
            json_object_set_new(r, "id", json_string(s.id)); /* a part that failed: the id it was sent with */
        if (!r)
            r = json_pack("{s:n,s:s,s:s}", "id", "status", "error", "error", "no result for this object");
        const char *st = json_string_value(json_object_get(r, "status"));
        ok += st && !strcmp(st, "ok");
        json_array_append_new(results, r);
    }
    json_decref(lans);
    sv_buf_free(&local);
    if (!results)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    json_t *out = json_pack("{s:o,s:I,s:I}", "results", results, "ok", (json_int_t)ok, "failed",
                            (json_int_t)(f->norder - ok));
    char *s = out ? json_dumps(out, JSON_COMPACT) : NULL;
    json_decref(out);
    rc = s && sv_buf_append_str(&rq->out, s) == 0 ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
    free(s);
    return rc;
}
