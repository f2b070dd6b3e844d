/* Job and schedule routes: HTTP <-> sv_jobs_* / sv_schedules_* calls. */
#include <stdlib.h>

#include "jobs.h"
#include "server_internal.h"

#define SVC sv_request_services(rq)->jobs

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
    int rc = sv_jobs_list(SVC, &f, &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

SV_ROUTE(sv_route_job_get, 200, sv_jobs_get(SVC, rq->params[0], &out, &err))
/* 202 with the job as it is once asked to stop. */
SV_ROUTE(sv_route_job_cancel, 202,
         sv_jobs_cancel(SVC, rq->params[0], &err) ? err.code : sv_jobs_get(SVC, rq->params[0], &out, &err))
SV_ROUTE_BODY(sv_route_schedule_create, 201, sv_schedules_create(SVC, body, &out, &err))
SV_ROUTE(sv_route_schedule_list, 200, sv_schedules_list(SVC, &out, &err))
SV_ROUTE(sv_route_schedule_get, 200, sv_schedules_get(SVC, rq->params[0], &out, &err))
SV_ROUTE_BODY(sv_route_schedule_update, 200, sv_schedules_update(SVC, rq->params[0], body, &out, &err))
SV_ROUTE(sv_route_schedule_delete, 204, sv_schedules_delete(SVC, rq->params[0], &err))
