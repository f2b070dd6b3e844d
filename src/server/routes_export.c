/* Export routes: /v1/export/{backend}[/{id}] -> the export service. */
#include "export.h"
#include "server_internal.h"

static sv_export *svc(request *rq) { return sv_request_services(rq)->export; }

int sv_route_export_create(request *rq)
{
    sv_err err = {0};
    json_t *body = NULL, *out = NULL;
    int rc = sv_parse_body(rq, &body, &err);
    if (rc == 0)
        rc = sv_export_create(svc(rq), rq->params[0], body, &out, &err);
    json_decref(body);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_export_status(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_export_status(svc(rq), rq->params[0], rq->params[1], &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_export_list(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_export_list(svc(rq), rq->params[0], &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_export_cancel(request *rq)
{
    sv_err err = {0};
    int rc = sv_export_cancel(svc(rq), rq->params[0], rq->params[1], &err);
    return sv_reply(rq, rc, &err, 204, NULL);
}
