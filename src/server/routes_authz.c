/* Key and role routes: the /v1/authz endpoints -> sv_auth_ calls. */
#include "server_internal.h"

#define SVC sv_request_auth(rq)

SV_ROUTE(sv_route_authz_me, 200, sv_auth_me(SVC, &rq->who, &out, &err))
SV_ROUTE(sv_route_authz_routes, 200, (out = sv_server_route_table(rq)) ? 0 : sv_fail(&err, SV_ENOMEM, "out of memory"))
SV_ROUTE_BODY(sv_route_authz_key_create, 201, sv_auth_key_create(SVC, &rq->who, body, &out, &err))
SV_ROUTE(sv_route_authz_key_list, 200, sv_auth_key_list(SVC, &out, &err))
SV_ROUTE(sv_route_authz_key_delete, 204, sv_auth_key_delete(SVC, &rq->who, rq->params[0], &err))
SV_ROUTE_BODY(sv_route_authz_key_set_roles, 200, sv_auth_key_set_roles(SVC, &rq->who, rq->params[0], body, &out, &err))
SV_ROUTE_BODY(sv_route_authz_role_create, 201, sv_auth_role_create(SVC, &rq->who, body, &out, &err))
SV_ROUTE(sv_route_authz_role_list, 200, sv_auth_role_list(SVC, &out, &err))
SV_ROUTE(sv_route_authz_role_get, 200, sv_auth_role_get(SVC, rq->params[0], &out, &err))
SV_ROUTE(sv_route_authz_role_delete, 204, sv_auth_role_delete(SVC, rq->params[0], &err))

/* Rotate takes an optional body ({"graceSeconds": n}). */
int sv_route_authz_key_rotate(request *rq)
{
    sv_err err = {0};
    json_t *body = NULL, *out = NULL;
    int rc = rq->body.len ? sv_parse_body(rq, &body, &err) : 0;
    if (rc == 0)
        rc = sv_auth_key_rotate(SVC, &rq->who, rq->params[0], body, &out, &err);
    json_decref(body);
    return sv_reply(rq, rc, &err, 200, out);
}
