/* Maintenance routes: HTTP <-> sv_maintenance_* calls. */
#include <stdlib.h>
#include <string.h>

#include "maintenance.h"
#include "server_internal.h"

#define SVC sv_request_services(rq)->maintenance

SV_ROUTE_BODY(sv_route_maint_rebuild, 202, sv_maintenance_rebuild(SVC, body, &out, &err))
SV_ROUTE_BODY(sv_route_maint_verify, 202, sv_maintenance_verify(SVC, body, &out, &err))
SV_ROUTE_BODY(sv_route_maint_move, 202, sv_maintenance_move(SVC, body, &out, &err))
SV_ROUTE_BODY(sv_route_maint_analyze, 202, sv_maintenance_analyze(SVC, body, &out, &err))
SV_ROUTE(sv_route_maint_status, 200, sv_maintenance_status(SVC, &out, &err))
SV_ROUTE(sv_route_maint_lease_break, 200, sv_maintenance_lease_break(SVC, &out, &err))
SV_ROUTE(sv_route_maint_checkpoint, 200, sv_maintenance_checkpoint(SVC, &out, &err))

/* The recovery kit is plain text, to print or store offline. */
int sv_route_maint_kit(request *rq)
{
    sv_err err = {0};
    char *text = NULL;
    int rc = sv_maintenance_recovery_kit(SVC, &text, &err);
    if (rc)
        return sv_reply_err(rq, rc, &err);
    sv_buf_reset(&rq->out);
    rc = sv_buf_append_str(&rq->out, text);
    free(text);
    rq->content_type = "text/plain; charset=utf-8";
    rq->status = 200;
    return rc;
}
