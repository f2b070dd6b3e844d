/* Export routes: /v1/export/{backend}[/{id}] -> the export service. */
#include "export.h"
#include "server_internal.h"

#define SVC sv_request_services(rq)->export

SV_ROUTE_BODY(sv_route_export_create, 200, sv_export_create(SVC, rq->params[0], body, &out, &err))
SV_ROUTE(sv_route_export_status, 200, sv_export_status(SVC, rq->params[0], rq->params[1], &out, &err))
SV_ROUTE(sv_route_export_list, 200, sv_export_list(SVC, rq->params[0], &out, &err))
SV_ROUTE(sv_route_export_cancel, 204, sv_export_cancel(SVC, rq->params[0], rq->params[1], &err))
