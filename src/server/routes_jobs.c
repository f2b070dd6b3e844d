/* Job and schedule routes: HTTP <-> sv_jobs_* / sv_schedules_* calls. */
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "jobs.h"
#include "server_internal.h"

#define SVC sv_request_services(rq)->jobs

/* The collections a job acts on, each checked for action: its collection;
 * a restore's target as well; for an export of several collections
 * (collection null) each of its classes, from the export's status. None
 * known: the whole server. */
static int job_allowed(request *rq, perm action, json_t *job, sv_err *err)
{
    if (!sv_request_auth(rq) || sv_request_allowed(rq, action, NULL, NULL))
        return 0;
    const char *kind = json_string_value(json_object_get(job, "kind"));
    json_t *coll = json_object_get(job, "collection"), *target = json_object_get(job, "target");
    json_t *names = json_array();
    if (json_is_string(coll))
        json_array_append(names, coll);
    if (kind && !strcmp(kind, "restore") && json_is_string(target))
        json_array_append(names, target);
    char backend[16] = "";
    if (kind && !strcmp(kind, "export") && !json_is_string(coll) && json_is_string(target) &&
        sv_request_services(rq)->export &&
        sv_jobs_backend(SVC, json_string_value(json_object_get(job, "id")), backend, NULL) == 0 && backend[0]) {
        json_t *st = NULL;
        sv_err e2 = {0};
        if (sv_export_status(sv_request_services(rq)->export, backend, json_string_value(target), &st, &e2) == 0)
            json_array_extend(names, json_object_get(st, "classes"));
        json_decref(st);
    }
    json_t *wrap = json_pack("{s:o}", "c", names);
    int rc = wrap ? sv_check_fields(rq, action, wrap, "c", err) : sv_fail(err, SV_ENOMEM, "out of memory");
    json_decref(wrap);
    return rc;
}

static void job_filter_readable(request *rq, json_t *jobs)
{
    for (size_t i = json_array_size(jobs); i-- > 0;) {
        sv_err e = {0};
        if (job_allowed(rq, PERM_READ, json_array_get(jobs, i), &e))
            json_array_remove(jobs, i);
    }
}

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
    if (rc == 0) /* only jobs of collections the caller may read (pages may come back shorter) */
        job_filter_readable(rq, json_object_get(out, "jobs"));
    return sv_reply(rq, rc, &err, 200, out);
}

/* A job is read, and canceled, against its collection (none: the server). */
static int job_checked(request *rq, perm action, json_t **out, sv_err *err)
{
    int rc = sv_jobs_get(SVC, rq->params[0], out, err);
    if (rc == 0 && job_allowed(rq, action, *out, err)) {
        json_decref(*out);
        *out = NULL;
        rc = err->code;
    }
    return rc;
}

/* A schedule's collections: the snapshot's collection or the export's include. */
/* (An export schedule without include reads every collection: the check then
 * needs the whole server, which sv_check_fields applies to a missing field.) */
static const char *sched_field(json_t *s)
{
    const char *kind = json_string_value(json_object_get(s, "kind"));
    return kind && !strcmp(kind, "export") ? "include" : "collection";
}

static int schedule_checked(request *rq, perm action, json_t **out, sv_err *err)
{
    int rc = sv_schedules_get(SVC, rq->params[0], out, err);
    if (rc == 0 && sv_check_fields(rq, action, *out, sched_field(*out), err)) {
        json_decref(*out);
        *out = NULL;
        rc = err->code;
    }
    return rc;
}

SV_ROUTE(sv_route_job_get, 200, job_checked(rq, PERM_READ, &out, &err))
/* 202 with the job as it is once asked to stop. */
SV_ROUTE(sv_route_job_cancel, 202,
         job_checked(rq, PERM_OPERATE, &out, &err) ? err.code
         : (json_decref(out), out = NULL, sv_jobs_cancel(SVC, rq->params[0], &err))
             ? err.code
             : sv_jobs_get(SVC, rq->params[0], &out, &err))
/* Creating a schedule manages it and operates on what it names. */
SV_ROUTE_BODY(sv_route_schedule_create, 201,
              sv_check_fields(rq, PERM_MANAGE, body, sched_field(body), &err) ||
                      sv_check_fields(rq, PERM_OPERATE, body, sched_field(body), &err)
                  ? err.code
                  : sv_schedules_create(SVC, body, &out, &err))
SV_ROUTE(sv_route_schedule_get, 200, schedule_checked(rq, PERM_READ, &out, &err))
SV_ROUTE_BODY(sv_route_schedule_update, 200,
              schedule_checked(rq, PERM_MANAGE, &out, &err) ? err.code
              : (json_decref(out), out = NULL, sv_schedules_update(SVC, rq->params[0], body, &out, &err)))
SV_ROUTE(sv_route_schedule_delete, 204,
         schedule_checked(rq, PERM_MANAGE, &out, &err) ? err.code
         : (json_decref(out), out = NULL, sv_schedules_delete(SVC, rq->params[0], &err)))

int sv_route_schedule_list(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_schedules_list(SVC, &out, &err);
    json_t *arr = json_object_get(out, "schedules");
    for (size_t i = json_array_size(arr); rc == 0 && i-- > 0;) {
        sv_err e = {0};
        json_t *s = json_array_get(arr, i);
        if (sv_check_fields(rq, PERM_READ, s, sched_field(s), &e))
            json_array_remove(arr, i);
    }
    return sv_reply(rq, rc, &err, 200, out);
}
