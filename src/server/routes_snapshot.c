/* Snapshot and restore-job routes: HTTP <-> sv_snapshot_* calls. */
#include "server_internal.h"
#include "snapshot.h"

#define SVC sv_request_services(rq)->snapshot

int sv_route_snapshot_create(request *rq)
{
    sv_err err = {0};
    json_t *body = NULL, *out = NULL;
    const char *w = sv_query(rq, "wait");
    bool wait = false;
    if (w && sv_parse_bool(w, &wait))
        return sv_reply_error(rq, 422, "wait must be true or false");
    if (sv_forward_snapshot(rq)) /* cluster: where the collection's shards are */
        return 0;
    int rc = sv_parse_body(rq, &body, &err);
    if (rc == 0)
        rc = sv_snapshot_create(SVC, rq->params[0], body, wait, &out, &err);
    json_decref(body);
    /* With wait the answer is the finished record, COMMITTED or FAILED. */
    return sv_reply(rq, rc, &err, wait ? 200 : 202, out);
}

SV_ROUTE(sv_route_snapshot_list, 200, sv_snapshot_list(SVC, rq->params[0], &out, &err))
SV_ROUTE(sv_route_snapshot_get, 200, sv_snapshot_get(SVC, rq->params[0], rq->params[1], &out, &err))
SV_ROUTE(sv_route_snapshot_drop, 204, sv_snapshot_drop(SVC, rq->params[0], rq->params[1], &err))
/* A restore creates its target: operate on it too. */
SV_ROUTE_BODY(sv_route_snapshot_restore, 202,
              sv_check_fields(rq, PERM_OPERATE, body, "target", &err)
                  ? err.code
                  : sv_snapshot_restore(SVC, rq->params[0], rq->params[1], body, &out, &err))

/* A restore job is read against its source and its target. */
int sv_route_restore_job_get(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_snapshot_job_get(SVC, rq->params[0], &out, &err);
    if (rc == 0 && (sv_check_fields(rq, PERM_READ, out, "collection", &err) ||
                    sv_check_fields(rq, PERM_READ, out, "target", &err)))
        rc = err.code;
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_restore_job_list(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_snapshot_job_list(SVC, &out, &err);
    if (rc == 0) {
        sv_filter_readable(rq, json_object_get(out, "jobs"), "collection");
        sv_filter_readable(rq, json_object_get(out, "jobs"), "target");
    }
    return sv_reply(rq, rc, &err, 200, out);
}
SV_ROUTE(sv_route_snapshot_gc, 200, sv_snapshot_gc(SVC, &out, &err))

/* ---- node-to-node: an owner's part of a cluster-wide snapshot (docs/cluster.md) ---- */

SV_ROUTE_BODY(sv_route_cluster_snapshot_cut, 200, sv_snapshot_cut_prepare(SVC, body, &out, &err))
SV_ROUTE(sv_route_cluster_snapshot_release, 200, sv_snapshot_cut_release(SVC, rq->params[0], &out, &err))
SV_ROUTE(sv_route_cluster_snapshot_upload, 200, sv_snapshot_cut_upload(SVC, rq->params[0], &out, &err))
SV_ROUTE(sv_route_cluster_snapshot_abort, 200,
         (sv_snapshot_cut_abort(SVC, rq->params[0]), out = json_object()) ? 0 : SV_ENOMEM)
SV_ROUTE_BODY(sv_route_cluster_restore_lay, 200, sv_snapshot_restore_lay(SVC, body, &out, &err))
SV_ROUTE_BODY(sv_route_cluster_restore_unlay, 200,
              sv_snapshot_restore_unlay(SVC, body, &err) ? err.code : ((out = json_object()) ? 0 : SV_ENOMEM))
