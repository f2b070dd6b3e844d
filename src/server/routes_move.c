/* Shard and tenant moves (docs/cluster.md "Shard moves"): HTTP <->
 * sv_cluster_move_*. A move runs on the shard's owner: any other node sends
 * the request there (node-to-node, with the cluster secret) and passes its
 * answer back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "server_internal.h"
#include "store.h"

static sv_cluster_moves *moves(const request *rq) { return sv_request_services(rq)->moves; }

static int move(request *rq, bool tenant_route)
{
    sv_err err = {0};
    sv_cluster *cl = sv_request_services(rq)->cluster;
    sv_store *st = sv_request_services(rq)->store;
    if (!moves(rq) || !cl || !sv_cluster_placement(cl))
        return sv_reply_error(rq, 422,
                              "shard moves need a cluster: this server runs on the embedded catalog, where it holds "
                              "every shard (start nodes with --catalog etcd://…, see docs/cluster.md)");
    json_t *body = NULL;
    int rc = sv_parse_body(rq, &body, &err);
    if (rc)
        return sv_reply_err(rq, rc, &err);
    json_t *tov = json_object_get(body, "to");
    char to[65] = "";
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "to")) {
            rc = sv_fail(&err, SV_EINVAL, "unknown field \"%.64s\" in a move: the body is {\"to\": \"node2\"}", k);
            json_decref(body);
            return sv_reply_err(rq, rc, &err);
        }
    }
    if (!json_is_string(tov) || !json_string_length(tov) || json_string_length(tov) > 64) {
        json_decref(body);
        return sv_reply_error(rq, 422, "the body must name the target node: {\"to\": \"node2\"} (GET /v1/nodes lists them)");
    }
    snprintf(to, sizeof to, "%s", json_string_value(tov));
    json_decref(body);
    if (sv_check_tenant_name(to, NULL) != 0) /* the rule node names follow (sv_cluster_open) */
        return sv_reply_error(rq, 422, "\"to\" must be a node name (letters, digits, '_' and '-'; GET /v1/nodes "
                                       "lists them)");
    const char *coll = rq->params[0], *shard = rq->params[1];
    if ((rc = sv_check_collection_name(coll, &err)) != 0 || (rc = sv_check_tenant_name(shard, &err)) != 0)
        return sv_reply_err(rq, rc, &err);
    /* the route must fit the collection before the name is looked up in it */
    sv_schema *schema = NULL;
    if ((rc = sv_store_schema(st, coll, &schema, &err)) != 0)
        return sv_reply_err(rq, rc, &err);
    bool mt = schema->multi_tenancy;
    sv_schema_free(schema);
    char owner[65];
    bool is_tenant = mt;
    if (mt == tenant_route && (rc = sv_store_shard_node(st, coll, shard, owner, &is_tenant, &err)) != 0)
        return sv_reply_err(rq, rc, &err);
    if (is_tenant != tenant_route)
        return sv_reply_error(rq, 422, is_tenant ? "the collection is multi-tenant: move a tenant with POST "
                                                   "/v1/collections/{c}/tenants/{tenant}/move"
                                                 : "the collection is not multi-tenant: move a shard with POST "
                                                   "/v1/collections/{c}/shards/{shard}/move");
    if (strcmp(owner, sv_cluster_name(cl)) && strcmp(owner, to)) {
        if (rq->forwarded) /* the sender's view is behind this one's: no second hop */
            return sv_reply_error(rq, 503, "the shard's owner changed while the move request was forwarded; retry");
        char target[600], b[200];
        snprintf(target, sizeof target, "/v1/collections/%s/%s/%s/move", coll, tenant_route ? "tenants" : "shards",
                 shard);
        snprintf(b, sizeof b, "{\"to\":\"%s\"}", to);
        sv_cluster_call call = {.node = owner, .method = "POST", .target = target, .body = b, .len = strlen(b),
                                .principal = rq->who.key_id};
        sv_cluster_forward(cl, &call, 1);
        return sv_forward_pass_back(rq, &call);
    }
    json_t *out = NULL;
    rc = sv_cluster_move_start(moves(rq), coll, shard, to, &out, &err);
    return sv_reply(rq, rc, &err, 202, out);
}

int sv_route_shard_move(request *rq) { return move(rq, false); }
int sv_route_tenant_move(request *rq) { return move(rq, true); }

/* The target's side of a move, called by the source only. */
int sv_route_move_step(request *rq)
{
    if (!rq->forwarded) /* 422, not 403: no key grants it, it is not a client's route */
        return sv_reply_error(rq, 422,
                              "a node-to-node route: only the nodes of the cluster call it (with the cluster secret)");
    if (!moves(rq))
        return sv_reply_error(rq, 503, "shard moves are not running on this node");
    sv_err err = {0};
    json_t *body = NULL, *out = NULL;
    int rc = sv_parse_body(rq, &body, &err);
    if (rc == 0)
        rc = sv_cluster_move_step(moves(rq), body, &out, &err);
    json_decref(body);
    return sv_reply(rq, rc, &err, 200, out);
}
