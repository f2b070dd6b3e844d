/* Snapshot and restore-job routes: HTTP <-> sv_snapshot_* calls. */
#include "server_internal.h"
#include "snapshot.h"

static sv_snapshot *svc(request *rq) { return sv_request_services(rq)->snapshot; }

int sv_route_snapshot_create(request *rq)
{
    sv_err err = {0};
    json_t *body = NULL, *out = NULL;
    const char *w = sv_query(rq, "wait");
    bool wait = false;
    if (w && sv_parse_bool(w, &wait))
        return sv_reply_error(rq, 422, "wait must be true or false");
    int rc = sv_parse_body(rq, &body, &err);
    if (rc == 0)
        rc = sv_snapshot_create(svc(rq), rq->params[0], body, wait, &out, &err);
    json_decref(body);
    /* With wait the answer is the finished record, COMMITTED or FAILED. */
    return sv_reply(rq, rc, &err, wait ? 200 : 202, out);
}

int sv_route_snapshot_list(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_snapshot_list(svc(rq), rq->params[0], &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_snapshot_get(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_snapshot_get(svc(rq), rq->params[0], rq->params[1], &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_snapshot_drop(request *rq)
{
    sv_err err = {0};
    int rc = sv_snapshot_drop(svc(rq), rq->params[0], rq->params[1], &err);
    return sv_reply(rq, rc, &err, 204, NULL);
}

int sv_route_snapshot_restore(request *rq)
{
    sv_err err = {0};
    json_t *body = NULL, *out = NULL;
    int rc = sv_parse_body(rq, &body, &err);
    if (rc == 0)
        rc = sv_snapshot_restore(svc(rq), rq->params[0], rq->params[1], body, &out, &err);
    json_decref(body);
    return sv_reply(rq, rc, &err, 202, out);
}

int sv_route_restore_job_get(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_snapshot_job_get(svc(rq), rq->params[0], &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_restore_job_list(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_snapshot_job_list(svc(rq), &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_snapshot_gc(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_snapshot_gc(svc(rq), &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}
