/* Store routes: collections, tenants, shards, objects and batch -> sv_store_* calls. */
#include <stdio.h>
#include <string.h>

#include "server_internal.h"
#include "store.h"

static sv_store *store(request *rq) { return sv_request_services(rq)->store; }
#define SVC store(rq)

int sv_route_collections_create(request *rq)
{
    sv_err err = {0};
    if (sv_body_empty(rq))
        return 0;
    if (sv_request_auth(rq)) { /* manage on the collection the body names */
        json_t *b = json_loadb((const char *)rq->body.data, rq->body.len, 0, NULL);
        const char *name = json_string_value(json_object_get(b, "name"));
        bool ok = name && sv_request_allowed(rq, PERM_MANAGE, name, NULL);
        if (!ok && name)
            sv_reply_forbidden(rq, PERM_MANAGE, name, NULL);
        json_decref(b);
        if (!ok && name)
            return 0;
        if (!ok && !sv_request_allowed(rq, PERM_MANAGE, NULL, NULL))
            return sv_reply_forbidden(rq, PERM_MANAGE, NULL, NULL);
    }
    json_t *out = NULL;
    int rc = sv_store_create_collection(store(rq), (const char *)rq->body.data, rq->body.len, &out, &err);
    return sv_reply(rq, rc, &err, 200, out);
}

int sv_route_collections_list(request *rq)
{
    sv_err err = {0};
    json_t *out = NULL;
    int rc = sv_store_list_collections(SVC, &out, &err);
    if (rc == 0) /* only what the caller may read */
        sv_filter_readable(rq, json_object_get(out, "collections"), "name");
    return sv_reply(rq, rc, &err, 200, out);
}

/* A collection another node created moments ago may not be in this node's
 * view yet (the watch brings it): these routes read the catalog on a miss
 * and try once more. */
static int collection_get(request *rq, json_t **out, sv_err *err)
{
    int rc = sv_store_get_collection(SVC, rq->params[0], out, err);
    return sv_forward_resync(rq, rc) ? sv_store_get_collection(SVC, rq->params[0], out, err) : rc;
}
SV_ROUTE(sv_route_collection_get, 200, collection_get(rq, &out, &err))

static int collection_delete(request *rq, sv_err *err)
{
    int rc = sv_store_delete_collection(SVC, rq->params[0], err);
    return sv_forward_resync(rq, rc) ? sv_store_delete_collection(SVC, rq->params[0], err) : rc;
}
SV_ROUTE(sv_route_collection_delete, 204, collection_delete(rq, &err))

/* Tenant changes name their tenants in the body: each must be manageable. */
static int tenants_allowed(request *rq, json_t *body, sv_err *err)
{
    size_t i, named = 0;
    json_t *t;
    json_array_foreach(sv_store_tenants_body(body), i, t) {
        const char *n = json_is_string(t) ? json_string_value(t) : json_string_value(json_object_get(t, "name"));
        if (n && !sv_request_allowed(rq, PERM_MANAGE, rq->params[0], n))
            return sv_fail(err, SV_EDENIED, "forbidden: key %s may not manage collection '%.128s' tenant '%.64s'",
                           rq->who.key_id, rq->params[0], n);
        named += n != NULL;
    }
    if (!named && !sv_request_allowed(rq, PERM_MANAGE, rq->params[0], NULL))
        return sv_fail(err, SV_EDENIED, "forbidden: key %s may not manage collection '%.128s'", rq->who.key_id,
                       rq->params[0]);
    return 0;
}

static int tenants_add(request *rq, json_t *body, json_t **out, sv_err *err)
{
    int rc = sv_store_add_tenants(SVC, rq->params[0], body, out, err);
    return sv_forward_resync(rq, rc) ? sv_store_add_tenants(SVC, rq->params[0], body, out, err) : rc;
}
SV_ROUTE_BODY(sv_route_tenants_add, 200,
              tenants_allowed(rq, body, &err) ? err.code : tenants_add(rq, body, &out, &err))
/* ?wait=true answers once offloads and onloads the body started are done
 * (at most 10 minutes; the jobs go on after that). */
static int tenants_update(request *rq, json_t *body, json_t **out, sv_err *err)
{
    const char *w = sv_query(rq, "wait");
    bool wait = false;
    if (w && sv_parse_bool(w, &wait))
        return sv_fail(err, SV_EINVAL, "wait must be true or false");
    if (tenants_allowed(rq, body, err))
        return err->code;
    return sv_store_update_tenants_wait(SVC, rq->params[0], body, wait ? 600000 : 0, out, err);
}
static SV_ROUTE_BODY(tenants_update_here, 200, tenants_update(rq, body, &out, &err))
int sv_route_tenants_update(request *rq) { return sv_forward_tenants(rq) ? 0 : tenants_update_here(rq); }

static SV_ROUTE_BODY(tenants_delete_here, 204,
                     tenants_allowed(rq, body, &err) ? err.code
                                                     : sv_store_delete_tenants(SVC, rq->params[0], body, &err))
int sv_route_tenants_delete(request *rq) { return sv_forward_tenants(rq) ? 0 : tenants_delete_here(rq); }

/* With placement, other nodes' shards get their counts from their owners. */
static int tenants_with_counts(request *rq, json_t **out, sv_err *err)
{
    sv_forward_sync_collection(rq);
    int rc = sv_store_list_tenants(SVC, rq->params[0], out, err);
    return rc ? rc : sv_forward_counts(rq, *out, "tenants");
}
SV_ROUTE(sv_route_tenants_list, 200, tenants_with_counts(rq, &out, &err))

static int shards_with_counts(request *rq, json_t **out, sv_err *err)
{
    int rc = sv_store_list_shards(SVC, rq->params[0], out, err);
    if (sv_forward_resync(rq, rc))
        rc = sv_store_list_shards(SVC, rq->params[0], out, err);
    return rc ? rc : sv_forward_counts(rq, *out, "shards");
}
SV_ROUTE(sv_route_shards_list, 200, shards_with_counts(rq, &out, &err))

int sv_route_object_create(request *rq)
{
    sv_err err = {0};
    if (sv_body_empty(rq) || sv_forward_object(rq))
        return 0;
    int rc = sv_store_put_object(store(rq), rq->params[0], NULL, sv_query(rq, "tenant"), (const char *)rq->body.data,
                                 rq->body.len, &rq->out, &err);
    if (rc == SV_EUNAVAIL && sv_forward_moved(rq))
        return 0;
    if (rc)
        return sv_reply_err(rq, rc, &err);
    rq->status = 200;
    return 0;
}

int sv_route_object_put(request *rq)
{
    sv_err err = {0};
    if (sv_body_empty(rq) || sv_forward_object(rq))
        return 0;
    int rc = sv_store_put_object(store(rq), rq->params[0], rq->params[1], sv_query(rq, "tenant"),
                                 (const char *)rq->body.data, rq->body.len, &rq->out, &err);
    if (rc == SV_EUNAVAIL && sv_forward_moved(rq))
        return 0;
    if (rc)
        return sv_reply_err(rq, rc, &err);
    rq->status = 200;
    return 0;
}

int sv_route_object_get(request *rq)
{
    sv_err err = {0};
    if (sv_forward_object(rq))
        return 0;
    int rc = sv_store_get_object(store(rq), rq->params[0], sv_query(rq, "tenant"), rq->params[1], &rq->out, &err);
    if (rc == SV_EUNAVAIL && sv_forward_moved(rq))
        return 0;
    if (rc)
        return sv_reply_err(rq, rc, &err);
    rq->status = 200;
    return 0;
}

int sv_route_object_delete(request *rq)
{
    sv_err err = {0};
    if (sv_forward_object(rq))
        return 0;
    int rc = sv_store_delete_object(store(rq), rq->params[0], sv_query(rq, "tenant"), rq->params[1], &err);
    if (rc == SV_EUNAVAIL && sv_forward_moved(rq))
        return 0;
    return sv_reply(rq, rc, &err, 204, NULL);
}

int sv_route_objects_list(request *rq)
{
    sv_err err = {0};
    int64_t limit = 100;
    const char *l = sv_query(rq, "limit");
    if (l && (sv_parse_size(l, &limit) != 0 || limit < 1 || limit > 10000))
        return sv_reply_error(rq, 422, "limit must be an integer between 1 and 10000");
    if (sv_forward_list(rq))
        return 0;
    int rc = sv_store_list_objects(store(rq), rq->params[0], sv_query(rq, "tenant"), sv_query(rq, "after"),
                                   (int)limit, &rq->out, &err);
    if (rc)
        return sv_reply_err(rq, rc, &err);
    rq->status = 200;
    return 0;
}

/* Batch bodies are streamed: each complete object goes to the batch as soon
 * as the splitter sees it, so memory is bounded by a write group, not by the
 * request. */
static int batch_object(const char *json, size_t len, void *ud)
{
    request *rq = ud;
    if (rq->fwd)
        return sv_forward_batch_add(rq, json, len);
    if (rq->forwarded)
        sv_forward_ensure_object(rq, json, len);
    return sv_batch_add(rq->batch, json, len);
}

/* A body that breaks off or turns malformed midway is refused, but groups
 * written before that point stay written: the answer says how many. */
static bool batch_may_write(void *ud, const char *collection, const char *tenant)
{
    return sv_request_allowed(ud, PERM_WRITE, collection, tenant);
}

int sv_route_batch_begin(request *rq, bool ndjson, size_t max_object)
{
    rq->splitter = sv_batch_splitter_new(ndjson, max_object);
    rq->batch = sv_batch_begin(store(rq));
    if (rq->batch && sv_request_auth(rq))
        sv_batch_set_check(rq->batch, batch_may_write, rq);
    if (sv_forward_batch_wanted(rq) && sv_forward_batch_begin(rq)) /* split by owner */
        return SV_ENOMEM;
    return rq->splitter && rq->batch ? 0 : SV_ENOMEM;
}

/* A key revoked or expired while its body streams stops the batch at the
 * next check (at most every 200 ms): what was written stays, the answer
 * says so. */
#define STREAM_AUTH_EVERY_NS (200 * 1000000LL)

static int stream_key_alive(request *rq)
{
    sv_auth *a = sv_request_auth(rq);
    if (!a || !rq->authed)
        return 0;
    int64_t now = sv_mono_ns();
    if (rq->stream_auth_ns == 0)
        rq->stream_auth_ns = now;
    if (now - rq->stream_auth_ns < STREAM_AUTH_EVERY_NS)
        return 0;
    rq->stream_auth_ns = now;
    sv_principal again;
    sv_err e = {0};
    const char *h = MHD_lookup_connection_value(rq->con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (sv_auth_authenticate(a, h, &again, &e) == 0)
        return 0;
    return sv_fail(&rq->stream_err, SV_EDENIED, "the API key was revoked or expired while the body was sent: the "
                   "batch stopped there");
}

void sv_route_batch_feed(request *rq, const char *data, size_t n)
{
    if (rq->stream_rc == 0)
        rq->stream_rc = stream_key_alive(rq);
    if (rq->stream_rc == 0)
        rq->stream_rc = sv_batch_splitter_feed(rq->splitter, data, n, batch_object, rq, &rq->stream_err);
}

static int batch_refused(request *rq, int rc, sv_err *err)
{
    size_t written = sv_batch_written(rq->batch);
    if (written) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof err->msg - n,
                 "; the first %zu objects of the body were written: correct the body and resend the objects after them",
                 written);
    }
    return sv_reply_err(rq, rc, err);
}

int sv_route_batch(request *rq)
{
    if (rq->stream_rc)
        return batch_refused(rq, rq->stream_rc, &rq->stream_err);
    sv_err err = {0};
    int rc = sv_batch_splitter_finish(rq->splitter, batch_object, rq, &err);
    if (rc)
        return batch_refused(rq, rc, &err);
    sv_batch *b = rq->batch;
    rq->batch = NULL;
    rc = rq->fwd ? sv_forward_batch_end(rq, b, &err) : sv_batch_end(b, &rq->out, &err);
    if (rc)
        return sv_reply_err(rq, rc, &err);
    rq->status = 200;
    return 0;
}

