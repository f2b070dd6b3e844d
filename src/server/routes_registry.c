/* Registry routes: HTTP <-> sv_registry_* calls (docs/registry.md). */
#include <string.h>

#include "registry.h"
#include "server_internal.h"

#define SVC sv_request_services(rq)->registry

/* Listings keep what the caller may read. */
static int registry_list(request *rq, json_t **out, sv_err *err)
{
    int rc = sv_registry_list(SVC, sv_query(rq, "collection"), sv_query(rq, "state"), out, err);
    if (rc == 0)
        sv_filter_readable(rq, json_object_get(*out, "shards"), "collection");
    return rc;
}

/* One named shard: the caller needs action on its collection. */
static int shard_checked(request *rq, perm action, sv_err *err)
{
    if (!sv_request_allowed(rq, action, rq->params[0], NULL))
        return sv_fail(err, SV_EDENIED, "forbidden: key %s may not %s collection '%.128s'", rq->who.key_id,
                       action == PERM_READ ? "read" : "operate", rq->params[0]);
    return 0;
}

SV_ROUTE(sv_route_registry_summary, 200, sv_registry_summary(SVC, &out, &err))
SV_ROUTE(sv_route_registry_shards, 200, registry_list(rq, &out, &err))
SV_ROUTE(sv_route_registry_shard_get, 200,
         shard_checked(rq, PERM_READ, &err) ? err.code
                                            : sv_registry_get(SVC, rq->params[0], rq->params[1], &out, &err))
/* recover, pin, unpin: on a registered shard; a local one (on this node's
 * disk, listed but never cached) says why it does not apply. */
static int shard_action(request *rq, int (*fn)(sv_registry *, const char *, const char *, sv_err *),
                        const char *what, json_t **out, sv_err *err)
{
    if (shard_checked(rq, PERM_OPERATE, err))
        return err->code;
    int rc = fn(SVC, rq->params[0], rq->params[1], err);
    if (rc == SV_ENOTFOUND) {
        json_t *e = NULL;
        sv_err e2 = {0};
        if (sv_registry_get(SVC, rq->params[0], rq->params[1], &e, &e2) == 0 &&
            !strcmp(json_string_value(json_object_get(e, "source")) ? json_string_value(json_object_get(e, "source"))
                                                                    : "", "local"))
            rc = sv_fail(err, SV_EINVAL, "shard %.128s/%.72s is local to this node: always present, never evicted; "
                         "%s applies to offloaded tenants and mounted snapshot shards", rq->params[0], rq->params[1],
                         what);
        json_decref(e);
    }
    return rc ? rc : sv_registry_get(SVC, rq->params[0], rq->params[1], out, err);
}

SV_ROUTE(sv_route_registry_recover, 200, shard_action(rq, sv_registry_recover, "recover", &out, &err))
SV_ROUTE(sv_route_registry_pin, 200, shard_action(rq, sv_registry_pin, "pin", &out, &err))
SV_ROUTE(sv_route_registry_unpin, 200, shard_action(rq, sv_registry_unpin, "unpin", &out, &err))

static int registry_gc(sv_registry *r, json_t **out, sv_err *err)
{
    int64_t evicted = 0, freed = 0;
    int rc = sv_registry_gc(r, &evicted, &freed, err);
    if (rc == 0)
        *out = json_pack("{s:I,s:I}", "shardsEvicted", (json_int_t)evicted, "bytesFreed", (json_int_t)freed);
    return rc;
}
SV_ROUTE(sv_route_registry_gc, 200, registry_gc(SVC, &out, &err))

/* ---- snapshot mounts ------------------------------------------------------------ */

SV_ROUTE(sv_route_snapshot_mount, 200, sv_registry_mount_snapshot(SVC, rq->params[0], rq->params[1], &out, &err))
SV_ROUTE(sv_route_snapshot_unmount, 204, sv_registry_unmount_snapshot(SVC, rq->params[0], rq->params[1], &err))

int sv_route_snapshot_object_get(request *rq)
{
    sv_err err = {0};
    int rc = sv_registry_snapshot_get_object(SVC, rq->params[0], rq->params[1], sv_query(rq, "tenant"), rq->params[2],
                                             &rq->out, &err);
    if (rc)
        return sv_reply_err(rq, rc, &err);
    rq->status = 200;
    return 0;
}

int sv_route_snapshot_objects_list(request *rq)
{
    sv_err err = {0};
    int64_t limit = 100;
    const char *l = sv_query(rq, "limit");
    if (l && (sv_parse_size(l, &limit) != 0 || limit < 1 || limit > 10000))
        return sv_reply_error(rq, 422, "limit must be an integer between 1 and 10000");
    int rc = sv_registry_snapshot_list_objects(SVC, rq->params[0], rq->params[1], sv_query(rq, "tenant"),
                                               sv_query(rq, "after"), (int)limit, &rq->out, &err);
    if (rc)
        return sv_reply_err(rq, rc, &err);
    rq->status = 200;
    return 0;
}

/* Writes into the live collection: write on it (and on the body's tenant). */
static int restore_objects(request *rq, json_t *body, json_t **out, sv_err *err)
{
    const char *tenant = json_string_value(json_object_get(body, "tenant"));
    if (!sv_request_allowed(rq, PERM_WRITE, rq->params[0], tenant))
        return sv_fail(err, SV_EDENIED, "forbidden: key %s may not write collection '%.128s'%s%.64s", rq->who.key_id,
                       rq->params[0], tenant ? " tenant " : "", tenant ? tenant : "");
    return sv_registry_snapshot_restore_objects(SVC, rq->params[0], rq->params[1], body, out, err);
}
SV_ROUTE_BODY(sv_route_snapshot_objects_restore, 200, restore_objects(rq, body, &out, &err))
