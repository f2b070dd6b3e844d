/* Import routes: /v1/import/{backend}[/{id}] -> the importer service. */
#include "importer.h"
#include "server_internal.h"

#define SVC sv_request_services(rq)->importer

/* An import writes into its target collection(s): the caller must be able
 * to write there (the export source's original names are checked by the
 * service's answer: with auth on, an export import needs "collection"). */
static int import_allowed(request *rq, json_t *body, sv_err *err)
{
    if (!sv_request_auth(rq))
        return 0;
    const char *c = json_string_value(json_object_get(body, "collection"));
    if (!c)
        return sv_request_allowed(rq, PERM_OPERATE, NULL, NULL)
                   ? 0
                   : sv_fail(err, SV_EDENIED, "forbidden: an import without \"collection\" writes the export's own "
                                              "collections; it needs operate on the whole server");
    if (!sv_request_allowed(rq, PERM_OPERATE, c, NULL) || !sv_request_allowed(rq, PERM_WRITE, c, NULL))
        return sv_fail(err, SV_EDENIED, "forbidden: key %s may not import into collection '%.128s'", rq->who.key_id,
                       c);
    return 0;
}

SV_ROUTE_BODY(sv_route_import_create, 202,
              import_allowed(rq, body, &err) ? err.code : sv_importer_create(SVC, rq->params[0], body, &out, &err))
/* An existing import is read (and canceled) against its target collection,
 * or the whole server when it wrote an export's own collections. */
static int import_visible(request *rq, perm action, sv_err *err)
{
    if (!sv_request_auth(rq))
        return 0;
    json_t *st = NULL;
    int rc = sv_importer_status(SVC, rq->params[0], rq->params[1], &st, err);
    if (rc == 0) {
        const char *c = json_string_value(json_object_get(st, "collection"));
        if (!sv_request_allowed(rq, action, c, NULL))
            rc = sv_fail(err, SV_EDENIED, "forbidden: key %s may not %s import '%.128s'", rq->who.key_id,
                         action == PERM_READ ? "read" : "cancel", rq->params[1]);
    }
    json_decref(st);
    return rc;
}

SV_ROUTE(sv_route_import_status, 200,
         import_visible(rq, PERM_READ, &err) ? err.code
                                             : sv_importer_status(SVC, rq->params[0], rq->params[1], &out, &err))
SV_ROUTE(sv_route_import_cancel, 204,
         import_visible(rq, PERM_OPERATE, &err) ? err.code
                                                : sv_importer_cancel(SVC, rq->params[0], rq->params[1], &err))
