/* Export routes: /v1/export/{backend}[/{id}] -> the export service. */
#include <stdio.h>
#include <string.h>

#include "export.h"
#include "server_internal.h"

#define SVC sv_request_services(rq)->export

static bool in_names(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (json_is_string(v) && !strcmp(json_string_value(v), s)) return true;
    return false;
}

/* The collections an export request would read (include, or every collection
 * not excluded), checked for operate: 403 listing every forbidden one —
 * never silently exporting less than asked. */
static int export_allowed(request *rq, json_t *body, sv_err *err)
{
    if (!sv_request_auth(rq))
        return 0;
    json_t *inc = json_object_get(body, "include"), *exc = json_object_get(body, "exclude");
    sv_buf denied = {0};
    int rc = 0;
    if (json_is_array(inc) && json_array_size(inc)) {
        size_t i;
        json_t *v;
        json_array_foreach(inc, i, v) if (json_is_string(v) && !sv_request_allowed(rq, PERM_OPERATE, json_string_value(v), NULL))
            sv_buf_printf(&denied, "%s'%.128s'", denied.len ? ", " : "", json_string_value(v));
    } else {
        sv_collection_name *all = NULL;
        size_t n = 0;
        rc = sv_store_collection_names(sv_request_services(rq)->store, &all, &n, err);
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (!in_names(exc, all[i]) && !sv_request_allowed(rq, PERM_OPERATE, all[i], NULL))
                sv_buf_printf(&denied, "%s'%s'", denied.len ? ", " : "", all[i]);
        free(all);
    }
    if (rc == 0 && denied.len)
        rc = sv_fail(err, SV_EDENIED, "forbidden: key %s may not operate on collection(s) %.400s named by this export",
                     rq->who.key_id, sv_buf_cstr(&denied));
    sv_buf_free(&denied);
    return rc;
}

/* An existing export's status is read, and its cancel operated, against its
 * collections. */
static int export_visible(request *rq, perm action, sv_err *err)
{
    if (!sv_request_auth(rq))
        return 0;
    json_t *st = NULL;
    int rc = sv_export_status(SVC, rq->params[0], rq->params[1], &st, err);
    if (rc == 0) {
        json_t *classes = json_object_get(st, "classes");
        size_t i;
        json_t *v;
        json_array_foreach(classes, i, v) if (!sv_request_allowed(rq, action, json_string_value(v), NULL))
            rc = sv_fail(err, SV_EDENIED, "forbidden: key %s may not %s collection '%.128s' of export '%.128s'",
                         rq->who.key_id, action == PERM_READ ? "read" : "operate", json_string_value(v),
                         rq->params[1]);
    }
    json_decref(st);
    return rc;
}

SV_ROUTE_BODY(sv_route_export_create, 200,
              export_allowed(rq, body, &err) ? err.code : sv_export_create(SVC, rq->params[0], body, &out, &err))
SV_ROUTE(sv_route_export_status, 200,
         export_visible(rq, PERM_READ, &err) ? err.code
                                             : sv_export_status(SVC, rq->params[0], rq->params[1], &out, &err))
SV_ROUTE(sv_route_export_cancel, 204,
         export_visible(rq, PERM_OPERATE, &err) ? err.code : sv_export_cancel(SVC, rq->params[0], rq->params[1], &err))

int sv_route_export_list(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_export_list(SVC, rq->params[0], &out, &err);
    if (rc == 0)
        sv_filter_readable(rq, out, "classes");
    return sv_reply(rq, rc, &err, 200, out);
}

/* ---- node-to-node: a cluster export's participant (docs/cluster.md) ---- */

static int node_reply(request *rq, int rc, sv_err *err)
{
    return sv_reply(rq, rc, err, 200, rc ? NULL : json_object());
}

int sv_route_cluster_export_prepare(request *rq)
{
    sv_err err = {0};
    json_t *body = NULL;
    int rc = sv_parse_body(rq, &body, &err);
    if (rc == 0)
        rc = sv_export_remote_prepare(SVC, body, &err);
    json_decref(body);
    return node_reply(rq, rc, &err);
}

int sv_route_cluster_export_commit(request *rq)
{
    sv_err err = {0};
    return node_reply(rq, sv_export_remote_commit(SVC, rq->params[0], &err), &err);
}

int sv_route_cluster_export_abort(request *rq)
{
    sv_err err = {0};
    json_t *body = NULL;
    int rc = sv_body_empty(rq) ? 0 : sv_parse_body(rq, &body, &err);
    if (rc == 0)
        sv_export_remote_abort(SVC, rq->params[0], body);
    json_decref(body);
    return node_reply(rq, rc, &err);
}
