/* Maintenance routes: HTTP <-> sv_maintenance_* calls. */
#include <stdlib.h>
#include <string.h>

#include "maintenance.h"
#include "server_internal.h"

#define SVC sv_request_services(rq)->maintenance

/* An agent's body is optional: no body means every default ({}). */
#define MAINT_AGENT_ROUTE(NAME, CALL)                                                                                  \
    int NAME(request *rq)                                                                                              \
    {                                                                                                                  \
        sv_err err = {0};                                                                                              \
        json_t *body = NULL, *out = NULL;                                                                              \
        int rc = rq->body.len == 0 ? ((body = json_object()) ? 0 : SV_ENOMEM) : sv_parse_body(rq, &body, &err);       \
        if (rc == 0)                                                                                                   \
            rc = CALL(SVC, body, &out, &err);                                                                          \
        json_decref(body);                                                                                             \
        return sv_reply(rq, rc, &err, 202, out);                                                                       \
    }

MAINT_AGENT_ROUTE(sv_route_maint_rebuild, sv_maintenance_rebuild)
MAINT_AGENT_ROUTE(sv_route_maint_verify, sv_maintenance_verify)
MAINT_AGENT_ROUTE(sv_route_maint_move, sv_maintenance_move)
MAINT_AGENT_ROUTE(sv_route_maint_analyze, sv_maintenance_analyze)
SV_ROUTE(sv_route_maint_status, 200, sv_maintenance_status(SVC, &out, &err))
SV_ROUTE(sv_route_maint_lease_break, 200, sv_maintenance_lease_break(SVC, &out, &err))
/* Takes no body: one sent must at least be an empty JSON object. */
static int checkpoint_now(request *rq, json_t **out, sv_err *err)
{
    if (rq->body.len) {
        json_t *body = NULL;
        int rc = sv_parse_body(rq, &body, err);
        bool empty = rc == 0 && json_is_object(body) && json_object_size(body) == 0;
        json_decref(body);
        if (rc)
            return rc;
        if (!empty)
            return sv_fail(err, SV_EINVAL, "a checkpoint takes no body (send none, or {})");
    }
    return sv_maintenance_checkpoint(SVC, out, err);
}
SV_ROUTE(sv_route_maint_checkpoint, 200, checkpoint_now(rq, &out, &err))

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
