/* Job and schedule routes: HTTP <-> sv_jobs_* / sv_schedules_* calls. */
#include <stdlib.h>

#include "jobs.h"
#include "server_internal.h"

static sv_jobs *svc(request *rq) { return sv_request_services(rq)->jobs; }

int sv_route_jobs_list(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    sv_jobs_filter f = {.kind = sv_query(rq, "kind"), .state = sv_query(rq, "state"),
                        .collection = sv_query(rq, "collection"), .after = sv_query(rq, "after")};
    const char *limit = sv_query(rq, "limit");
    if (limit) {
        char *end;
        long v = strtol(limit, &end, 10);
        if (*end || v < 1 || v > 1000)
            return sv_reply_error(rq, 422, "limit must be an integer between 1 and 1000");
        f.limit = (int)v;
    }
    int rc = sv_jobs_list(svc(rq), &f, &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_job_get(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_jobs_get(svc(rq), rq->params[0], &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_job_cancel(request *rq)
{
    sv_err err = {0};
    int rc = sv_jobs_cancel(svc(rq), rq->params[0], &err);
    json_t *out = NULL;
    if (rc == 0)
        rc = sv_jobs_get(svc(rq), rq->params[0], &out, &err);
    return sv_reply(rq, rc, &err, 202, out);
}

int sv_route_schedule_create(request *rq)
{
    sv_err err = {0};
    json_t *body = NULL, *out = NULL;
    int rc = sv_parse_body(rq, &body, &err);
    if (rc == 0)
        rc = sv_schedules_create(svc(rq), body, &out, &err);
    json_decref(body);
    return sv_reply(rq, rc, &err, 201, out);
}

int sv_route_schedule_list(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_schedules_list(svc(rq), &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_schedule_get(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_schedules_get(svc(rq), rq->params[0], &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_schedule_update(request *rq)
{
    sv_err err = {0};
    json_t *body = NULL, *out = NULL;
    int rc = sv_parse_body(rq, &body, &err);
    if (rc == 0)
        rc = sv_schedules_update(svc(rq), rq->params[0], body, &out, &err);
    json_decref(body);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_schedule_delete(request *rq)
{
    sv_err err = {0};
    int rc = sv_schedules_delete(svc(rq), rq->params[0], &err);
    return sv_reply(rq, rc, &err, 204, NULL);
}
