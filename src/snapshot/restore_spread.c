/* A restore across the cluster (docs/cluster.md "Restore of a cluster-wide
 * snapshot"): a snapshot whose manifest names several nodes is restored with
 * its shards placed across the healthy nodes.
 *
 *  1. plan: each shard goes to the node it was captured on when that node is
 *     healthy, else to the healthy node with the fewest shards of the target
 *     so far (ties by name) — so a cluster with other node names, or fewer
 *     nodes, takes it too;
 *  2. the restoring node lays out its own shards (the restore's tasks);
 *  3. every other owner, in parallel, lays out its shards from the location
 *     (each file verified) and moves them to where the collection's shards
 *     live on it (the target's uid, fixed before the adoption):
 *     POST /v1/cluster/restore/lay;
 *  4. one catalog transaction (sv_store_adopt_collection_placed) writes the
 *     collection and every shard's owner: the target appears on every node at
 *     once, or not at all. A failure at 3 or 4 removes what the owners laid
 *     out (POST /v1/cluster/restore/unlay) and the restore is FAILED naming
 *     the node.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot_internal.h"

#define SPREAD_LAY_MS 3600000

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

int sv_snap_spread_plan(sv_snapshot *s, const sv_manifest *m, char (**out)[65], sv_err *err)
{
    *out = NULL;
    if (!s->cluster.send || !s->cluster.healthy_nodes)
        return 0;
    /* Only a cluster-wide snapshot (its shards name more than one node). */
    const char *first = NULL;
    bool several = false;
    for (size_t i = 0; i < m->nshards; i++) {
        if (!m->shards[i].node[0])
            continue;
        if (!first)
            first = m->shards[i].node;
        else if (strcmp(first, m->shards[i].node))
            several = true;
    }
    if (!several)
        return 0;
    char(*healthy)[65] = NULL;
    size_t nh = 0;
    int rc = s->cluster.healthy_nodes(s->cluster.self, &healthy, &nh, err);
    if (rc)
        return rc;
    if (nh == 0) {
        free(healthy);
        return 0;
    }
    qsort(healthy, nh, sizeof *healthy, cmp_name);
    char(*nodes)[65] = calloc(m->nshards + 1, sizeof *nodes);
    size_t *load = calloc(nh + 1, sizeof *load);
    if (!nodes || !load) {
        free(nodes);
        free(load);
        free(healthy);
        return sv_snap_oom(err);
    }
    /* Shards whose node is healthy stay there; the others fill the least loaded. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < m->nshards; i++) {
            size_t at = nh;
            for (size_t h = 0; h < nh && at == nh; h++)
                if (!strcmp(healthy[h], m->shards[i].node))
                    at = h;
            if (pass == 0 && at < nh) {
                snprintf(nodes[i], sizeof nodes[i], "%s", healthy[at]);
                load[at]++;
            } else if (pass == 1 && at == nh) {
                size_t best = 0;
                for (size_t h = 1; h < nh; h++)
                    if (load[h] < load[best])
                        best = h;
                snprintf(nodes[i], sizeof nodes[i], "%s", healthy[best]);
                load[best]++;
            }
        }
    free(load);
    free(healthy);
    *out = nodes;
    return 0;
}

bool sv_snap_spread_here(const sv_snapshot *s, char (*nodes)[65], size_t i)
{
    return !nodes || !strcmp(nodes[i], s->node);
}

/* The distinct other owners of the plan. */
static size_t others(const sv_snapshot *s, char (*nodes)[65], size_t n, char (*out)[65])
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (sv_snap_spread_here(s, nodes, i))
            continue;
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++)
            seen = !strcmp(out[j], nodes[i]);
        if (!seen)
            snprintf(out[k++], 65, "%s", nodes[i]);
    }
    return k;
}

void sv_snap_spread_unlay(sv_snapshot *s, char (*nodes)[65], size_t n, const char *uid)
{
    char(*who)[65] = calloc(n + 1, sizeof *who);
    sv_snapshot_rpc *calls = calloc(n + 1, sizeof *calls);
    json_t *body = json_pack("{s:s}", "uid", uid);
    size_t k = who ? others(s, nodes, n, who) : 0;
    for (size_t i = 0; calls && i < k; i++) {
        calls[i].node = who[i];
        calls[i].body = body;
        snprintf(calls[i].path, sizeof calls[i].path, "/v1/cluster/restore/unlay");
    }
    if (calls && k)
        s->cluster.send(s->cluster.self, calls, k, 10000);
    for (size_t i = 0; calls && i < k; i++)
        json_decref(calls[i].reply);
    json_decref(body);
    free(calls);
    free(who);
}

int sv_snap_spread_lay(sv_snapshot *s, const char *job_id, const char *collection, const char *snapshot,
                       const char *uid, const sv_manifest *m, char (*nodes)[65], sv_err *err)
{
    size_t n = m->nshards;
    char(*who)[65] = calloc(n + 1, sizeof *who);
    sv_snapshot_rpc *calls = calloc(n + 1, sizeof *calls);
    json_t **bodies = calloc(n + 1, sizeof *bodies);
    if (!who || !calls || !bodies) {
        free(who);
        free(calls);
        free(bodies);
        return sv_snap_oom(err);
    }
    size_t k = others(s, nodes, n, who);
    for (size_t i = 0; i < k; i++) {
        json_t *names = json_array();
        for (size_t sh = 0; sh < n; sh++)
            if (!strcmp(nodes[sh], who[i]))
                json_array_append_new(names, json_string(m->shards[sh].name));
        bodies[i] = json_pack("{s:s,s:s,s:s,s:s,s:o}", "job", job_id, "collection", collection, "snapshot", snapshot,
                              "uid", uid, "shards", names);
        calls[i].node = who[i];
        calls[i].body = bodies[i];
        snprintf(calls[i].path, sizeof calls[i].path, "/v1/cluster/restore/lay");
    }
    if (k)
        s->cluster.send(s->cluster.self, calls, k, SPREAD_LAY_MS);
    int rc = 0;
    for (size_t i = 0; i < k; i++) {
        if (rc == 0 && (calls[i].rc || calls[i].status >= 300)) {
            char why[600];
            sv_snap_rpc_why(&calls[i], why, sizeof why);
            rc = sv_fail(err, SV_EUNAVAIL, "node %s could not lay out its shards of the restore: %s", who[i], why);
        }
        json_decref(calls[i].reply);
        json_decref(bodies[i]);
    }
    free(bodies);
    free(calls);
    free(who);
    if (rc)
        sv_snap_spread_unlay(s, nodes, n, uid);
    return rc;
}

/* ---- the owner's side -------------------------------------------------------------- */

int sv_snapshot_restore_lay(sv_snapshot *s, json_t *req, json_t **out, sv_err *err)
{
    const char *job = json_string_value(json_object_get(req, "job"));
    const char *coll = json_string_value(json_object_get(req, "collection"));
    const char *snap = json_string_value(json_object_get(req, "snapshot"));
    const char *uid = json_string_value(json_object_get(req, "uid"));
    json_t *shards = json_object_get(req, "shards");
    int rc = sv_check_collection_name(coll, err);
    if (rc == 0)
        rc = sv_check_snapshot_name(snap, err);
    if (rc == 0 && (!job || sv_check_snapshot_name(job, NULL) || !uid || strlen(uid) != 16 || !json_is_array(shards)))
        rc = sv_fail(err, SV_EINVAL, "a lay request needs job, collection, snapshot, uid (16 hex digits) and shards");
    if (rc)
        return rc;
    char key[400];
    sv_manifest_key(coll, snap, key);
    sv_manifest *m = NULL;
    if ((rc = sv_snapshot_manifest_load(s, key, &m, NULL, err)) != 0)
        return rc;
    size_t i;
    json_t *nm;
    int64_t objects = 0;
    json_array_foreach(shards, i, nm) {
        const char *name = json_string_value(nm);
        const sv_manifest_shard *ms = NULL;
        for (size_t k = 0; name && k < m->nshards && !ms; k++)
            if (!strcmp(m->shards[k].name, name))
                ms = &m->shards[k];
        if (!ms) {
            rc = sv_fail(err, SV_EINVAL, "snapshot '%s' of '%s' has no shard '%.72s'", snap, coll, name ? name : "?");
            break;
        }
        char dir[PATH_MAX + 300];
        snprintf(dir, sizeof dir, "%s/lay-%s-%s", s->staging, job, ms->name);
        if ((rc = sv_rmtree(dir, err)) != 0)
            break;
        if (ms->empty)
            rc = sv_mkdirs(dir, err);
        else
            rc = sv_snapshot_get_dir(s, key, ms->name, dir, NULL, NULL, NULL, err);
        if (rc == 0)
            rc = sv_store_place_shard(s->st, uid, ms->name, dir, err);
        if (rc == 0)
            sv_crash_point("restore:laid"); /* tests: an owner dies after laying out a shard */
        if (rc) {
            sv_err ignored;
            sv_rmtree(dir, &ignored);
            sv_err_wrap(err, "node %s: shard %s", s->node, ms->name);
            break;
        }
        objects += ms->objects;
    }
    sv_manifest_free(m);
    if (rc) {
        sv_store_unplace(s->st, uid);
        return rc;
    }
    *out = json_pack("{s:s,s:I,s:I}", "node", s->node, "shards", (json_int_t)json_array_size(shards), "objects",
                     (json_int_t)objects);
    return *out ? 0 : sv_snap_oom(err);
}

int sv_snapshot_restore_unlay(sv_snapshot *s, json_t *req, sv_err *err)
{
    const char *uid = json_string_value(json_object_get(req, "uid"));
    if (!uid || strlen(uid) != 16)
        return sv_fail(err, SV_EINVAL, "an unlay request needs uid (16 hex digits)");
    sv_store_unplace(s->st, uid);
    return 0;
}
