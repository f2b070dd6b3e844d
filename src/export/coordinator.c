/* Export across nodes: two-phase commit with the decision in the catalog.
 *
 * The node that receives POST /v1/export/{backend} coordinates. Its
 * participants are the nodes owning shards of the included collections
 * (nodeAssignments), itself among them when it owns any.
 *
 *   1. The coordinator creates the decision record
 *      export/2pc/{backend}/{id} = {state: "preparing", coordinator,
 *      participants} (only if absent: one coordinator per id).
 *   2. Prepare on every participant (each reserves its one export slot and
 *      captures its own shards: the point in time is per node, as in
 *      Weaviate). Any failure: the record goes "aborted", every prepared
 *      participant is released, nothing is published.
 *   3. export_metadata.json is published (STARTED).
 *   4. The record goes "committed" (a compare-and-swap on its revision):
 *      the decision is durable before any participant hears it.
 *   5. Commit on every participant; each scans and writes its files and its
 *      node_{name}_status.json; the last to end writes the final metadata
 *      (sv_export_promote) and deletes the record.
 *
 * Invariants:
 *   - The record changes only preparing -> committed, preparing -> aborted
 *     and committed -> aborted, each by CAS: a coordinator that comes back
 *     late can never commit what a survivor aborted.
 *   - Every participant with a prepared or running cluster export reads the
 *     record every tick (250 ms): "aborted" (or a missing record) stops its
 *     part at once, FAILED with the reason (CANCELED when canceled).
 *   - Every participant watches the membership of the other participants and
 *     of the coordinator (leases, TTL SHARDVAULT_NODE_TTL): a participant
 *     whose lease lapsed has lost its part, so the first node to see it marks
 *     that node's status file FAILED "node X left the cluster" and aborts the
 *     record; all others stop within a tick. A coordinator that is not a
 *     participant and left before deciding: the record is aborted; after
 *     deciding "committed": prepared participants commit themselves.
 *   - A node restarted during an export marks its part FAILED and aborts the
 *     record at start (export.c recover).
 *   - The metadata never stays STARTED: every part ends in a terminal node
 *     status (its own, or one written for it by a survivor), and whichever
 *     node writes the last terminal status also writes the outcome.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"

#define DECISION_PREFIX "export/2pc/"
#define PREPARE_TIMEOUT_MS 60000
#define CALL_TIMEOUT_MS 30000

typedef struct sv_export_watch {
    int backend;
    char id[SV_EXPORT_ID_MAX + 1];
    sv_job *job;  /* the coordinator's job (NULL on other nodes) */
    int64_t done; /* rows the job was told of */
} sv_export_watch;

static const char *or_(const char *a, const char *b) { return a ? a : b; }

bool sv_export_clustered(const json_t *req)
{
    return json_is_string(json_object_get(req, "coordinator"));
}

void sv_export_decision_key(char *out, size_t n, const char *backend, const char *id)
{
    snprintf(out, n, DECISION_PREFIX "%s/%s", backend ? backend : "", id ? id : "");
}

void sv_export_set_cluster(sv_export *ex, const sv_export_cluster *c)
{
    pthread_mutex_lock(&ex->mu);
    ex->cl = *c;
    ex->has_cl = c->send && c->healthy;
    pthread_mutex_unlock(&ex->mu);
}

static bool healthy(sv_export *ex, const char *node)
{
    return !strcmp(node, ex->node) || ex->cl.healthy(ex->cl.self, node);
}

/* ---- the decision record ------------------------------------------------------ */

static int decision_get(sv_export *ex, const char *key, json_t **rec, int64_t *rev, sv_err *err)
{
    *rec = NULL;
    char *val = NULL;
    size_t len = 0;
    int rc = sv_catalog_get(ex->cat, key, &val, &len, rev, err);
    if (rc)
        return rc;
    *rec = json_loadb(val, len, 0, NULL);
    free(val);
    if (!json_is_object(*rec)) {
        json_decref(*rec);
        *rec = NULL;
        return sv_fail(err, SV_ECORRUPT, "the catalog's %s is not a JSON object", key);
    }
    return 0;
}

/* Writes rec if the key still has revision rev (0: is absent). */
static int decision_cas(sv_export *ex, const char *key, json_t *rec, int64_t rev, sv_err *err)
{
    char *s = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
    if (!s)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    sv_catalog_cond cond = {key, rev};
    sv_catalog_op op = {key, s, strlen(s), 0};
    int rc = sv_catalog_txn(ex->cat, &cond, 1, &op, 1, err);
    free(s);
    return rc;
}

/* The record belongs to this attempt (NULL: any). */
static bool same_attempt(json_t *rec, const char *attempt)
{
    const char *a = json_string_value(json_object_get(rec, "attempt"));
    return !attempt || (a && !strcmp(a, attempt));
}

int sv_export_decision_status(sv_export *ex, const char *backend, const char *id, json_t **out)
{
    *out = NULL;
    char key[400];
    sv_export_decision_key(key, sizeof key, backend, id);
    json_t *rec = NULL;
    int64_t rev = 0;
    if (!ex->cat || decision_get(ex, key, &rec, &rev, NULL) != 0)
        return SV_ENOTFOUND;
    int rc = SV_ENOTFOUND;
    if (!strcmp(or_(json_string_value(json_object_get(rec, "state")), ""), "aborted")) {
        bool canceled = json_is_true(json_object_get(rec, "canceled"));
        *out = json_pack("{s:s,s:s,s:s,s:s?,s:{}}", "id", id, "backend", backend, "status",
                         canceled ? "CANCELED" : "FAILED", "error",
                         canceled ? NULL : or_(json_string_value(json_object_get(rec, "reason")), "aborted"),
                         "shardStatus");
        rc = *out ? 0 : SV_ENOMEM;
    }
    json_decref(rec);
    return rc;
}

int sv_export_decide_abort(sv_export *ex, const char *backend, const char *id, const char *attempt, const char *reason,
                           bool canceled, sv_err *err)
{
    char key[400];
    sv_export_decision_key(key, sizeof key, backend, id);
    for (int tries = 0; tries < 8; tries++) {
        json_t *rec = NULL;
        int64_t rev = 0;
        int rc = decision_get(ex, key, &rec, &rev, err);
        if (rc == SV_ENOTFOUND)
            return 0; /* finished (or never started): participants stop on a missing record */
        if (rc)
            return rc;
        if (!same_attempt(rec, attempt) ||
            !strcmp(or_(json_string_value(json_object_get(rec, "state")), ""), "aborted")) {
            json_decref(rec);
            return 0;
        }
        json_object_set_new(rec, "state", json_string("aborted"));
        json_object_set_new(rec, "reason", json_string(reason ? reason : "canceled"));
        json_object_set_new(rec, "canceled", json_boolean(canceled));
        json_object_set_new(rec, "decidedBy", json_string(ex->node));
        rc = decision_cas(ex, key, rec, rev, err);
        json_decref(rec);
        if (rc != SV_ECONFLICT) {
            if (rc == 0)
                sv_warn("export aborted across nodes", "id=%s reason=\"%s\"", id, reason ? reason : "canceled");
            return rc;
        }
    }
    return sv_fail(err, SV_ECONFLICT, "the decision record of export '%s' keeps changing", id);
}

/* preparing -> committed; SV_ECONFLICT with the reason if it was aborted. */
static int decide_commit(sv_export *ex, const char *key, const char *attempt, sv_err *err)
{
    json_t *rec = NULL;
    int64_t rev = 0;
    int rc = decision_get(ex, key, &rec, &rev, err);
    if (rc == SV_ENOTFOUND)
        return sv_fail(err, SV_ECONFLICT, "the export's decision record is gone");
    if (rc)
        return rc;
    const char *state = json_string_value(json_object_get(rec, "state"));
    if (!same_attempt(rec, attempt)) {
        rc = sv_fail(err, SV_ECONFLICT, "the export was taken over by another start of the same id");
    } else if (!state || strcmp(state, "preparing")) {
        rc = sv_fail(err, SV_ECONFLICT, "the export was aborted before it could commit: %s",
                     or_(json_string_value(json_object_get(rec, "reason")), or_(state, "?")));
    } else {
        json_object_set_new(rec, "state", json_string("committed"));
        rc = decision_cas(ex, key, rec, rev, err);
        if (rc == SV_ECONFLICT)
            rc = sv_fail(err, SV_ECONFLICT, "the export was aborted (by a participant) before it could commit");
    }
    json_decref(rec);
    return rc;
}

/* Deletes the record if it is still this attempt's. */
static void decision_delete(sv_export *ex, const char *key, const char *attempt)
{
    json_t *rec = NULL;
    int64_t rev = 0;
    sv_err err = {0};
    if (decision_get(ex, key, &rec, &rev, &err) == 0 && same_attempt(rec, attempt)) {
        sv_catalog_cond cond = {key, rev};
        sv_catalog_op op = {key, NULL, 0, 0};
        sv_catalog_txn(ex->cat, &cond, 1, &op, 1, &err);
    }
    json_decref(rec);
}

/* ---- node status files ---------------------------------------------------------- */

/* Writes node's status file FAILED with reason (its shards from assign, those
 * not finished FAILED), unless it already holds a terminal status. */
static bool mark_node_failed(sv_export *ex, sv_location *loc, const char *id, const char *node, json_t *assign,
                             const char *reason)
{
    char key[300];
    sv_export_node_key(key, sizeof key, id, node);
    json_t *d = NULL;
    sv_err err = {0};
    if (sv_export_get_json(loc, key, &d, &err) == 0 &&
        sv_export_status_terminal(json_string_value(json_object_get(d, "status")))) {
        json_decref(d);
        return false; /* it had ended: nothing of it is lost */
    }
    json_t *prog = json_object_get(d, "shardProgress");
    json_t *ss = json_is_object(prog) ? json_deep_copy(prog) : json_object();
    sv_export_fail_unfinished(ss, json_object_get(assign, node), reason);
    json_decref(d);
    int64_t now = sv_now_ms();
    d = json_pack("{s:i,s:s,s:s,s:o,s:s,s:o,s:I,s:s,s:s}", "format_version", 1, "nodeName", node, "status", "FAILED",
                  "shardProgress", ss, "error", reason, "completedAt", sv_export_time_json(now), "completedAtMs",
                  (json_int_t)now, "writtenBy", ex->node, "version", SV_VERSION);
    if (!d || sv_export_put_json(loc, key, d, &err))
        sv_warn("export: cannot write a lost node's status", "id=%s node=%s error=\"%s\"", id, node, err.msg);
    json_decref(d);
    return true;
}

void sv_export_total_add(json_t *doc, int64_t *total, bool *known)
{
    json_t *ot = json_object_get(doc, "objectsTotal");
    *known &= json_is_integer(ot);
    *total += json_integer_value(ot);
}

void sv_export_total_set(json_t *meta, int64_t total, bool known)
{
    if (known)
        json_object_set_new(meta, "objectsTotal", json_integer(total));
    else
        json_object_del(meta, "objectsTotal");
}

void sv_export_shard_sums(json_t *shard_status, int64_t *rows, int64_t *bytes)
{
    *rows = *bytes = 0;
    const char *c, *sn;
    json_t *shards, *p;
    json_object_foreach(shard_status, c, shards)
    {
        json_object_foreach(shards, sn, p)
        {
            *rows += json_integer_value(json_object_get(p, "objectsExported"));
            *bytes += json_integer_value(json_object_get(p, "bytesWritten"));
        }
    }
}

void sv_export_aggregate(sv_export *ex, sv_location *loc, json_t *meta, json_t *live)
{
    json_t *ss = json_object_get(meta, "shardStatus");
    if (!json_is_object(ss)) {
        ss = json_object();
        json_object_set_new(meta, "shardStatus", ss);
    }
    bool running = false;
    const char *node;
    json_t *v;
    /* objectsTotal: the sum of every node's part, left out while one is unknown */
    int64_t total = 0;
    bool total_known = true;
    json_object_foreach(json_object_get(meta, "nodeAssignments"), node, v)
    {
        json_t *prog = NULL, *d = NULL;
        if (live && !strcmp(node, ex->node)) {
            prog = json_object_get(live, "shardStatus");
            running = true;
            sv_export_total_add(live, &total, &total_known);
        } else {
            char key[300];
            sv_export_node_key(key, sizeof key, or_(json_string_value(json_object_get(meta, "id")), ""), node);
            sv_err err = {0};
            if (sv_export_get_json(loc, key, &d, &err) == 0) {
                prog = json_object_get(d, "shardProgress");
                running |= !strcmp(or_(json_string_value(json_object_get(d, "status")), ""), "TRANSFERRING");
            }
            sv_export_total_add(d, &total, &total_known);
        }
        const char *coll;
        json_t *shards;
        json_object_foreach(prog, coll, shards)
        {
            json_t *cs = json_object_get(ss, coll);
            if (json_is_object(cs) && json_is_object(shards))
                json_object_update(cs, shards);
            else if (json_is_object(shards))
                json_object_set(ss, coll, shards);
        }
        json_decref(d);
    }
    if (running)
        json_object_set_new(meta, "status", json_string("TRANSFERRING"));
    sv_export_total_set(meta, total, total_known);
}

/* ---- calls to participants -------------------------------------------------------- */

/* An rpc's outcome as an error code (0 = answered 2xx). */
static int rpc_rc(const sv_export_rpc *r)
{
    if (r->rc)
        return r->rc;
    if (r->status < 300)
        return 0;
    /* A conflict (a busy slot) and a refused request (422: e.g. storage
     * not shared) are the client's to act on; anything else is the
     * cluster's fault. */
    return r->status == 409 ? SV_ECONFLICT : r->status == 422 ? SV_EINVAL : SV_EUNAVAIL;
}

/* Sends abort to every participant but skip (NULL: all), this node's in
 * process. */
static void abort_all(sv_export *ex, json_t *assign, const char *id, const char *reason, bool canceled,
                      const char *skip)
{
    size_t n = json_object_size(assign), k = 0;
    sv_export_rpc *calls = calloc(n + 1, sizeof *calls);
    json_t *body = json_pack("{s:s,s:b}", "reason", reason ? reason : "canceled", "canceled", canceled);
    bool local = false;
    const char *node;
    json_t *v;
    json_object_foreach(assign, node, v)
    {
        if (skip && !strcmp(node, skip))
            continue;
        if (!strcmp(node, ex->node)) {
            local = true;
            continue;
        }
        if (!calls || !healthy(ex, node))
            continue;
        calls[k].node = node;
        snprintf(calls[k].path, sizeof calls[k].path, "/v1/cluster/export/%s/abort", id);
        calls[k].body = body;
        k++;
    }
    if (k)
        ex->cl.send(ex->cl.self, calls, k, CALL_TIMEOUT_MS);
    for (size_t i = 0; i < k; i++)
        if (rpc_rc(&calls[i]) && calls[i].status != 404)
            sv_warn("export: abort not delivered", "id=%s node=%s error=\"%s\"", id, calls[i].node,
                    calls[i].err.msg);
    if (local) {
        sv_export_participant p = sv_export_local_participant(ex);
        p.abort(p.self, id, canceled ? NULL : reason);
    }
    json_decref(body);
    free(calls);
}

/* ---- the coordinator ------------------------------------------------------------- */

void sv_export_watch_add(sv_export *ex, int backend, const char *id, sv_job *job)
{
    pthread_mutex_lock(&ex->mu);
    sv_export_watch *w = NULL;
    for (size_t i = 0; i < ex->nwatch && !w; i++)
        if (ex->watch[i].backend == backend && !strcmp(ex->watch[i].id, id))
            w = &ex->watch[i];
    if (!w && sv_grow(&ex->watch, &ex->watch_cap, ex->nwatch + 1, sizeof *ex->watch) == 0) {
        w = &ex->watch[ex->nwatch++];
        memset(w, 0, sizeof *w);
        w->backend = backend;
        snprintf(w->id, sizeof w->id, "%s", id);
    }
    if (w && job && !w->job) {
        w->job = job;
        job = NULL;
    }
    pthread_mutex_unlock(&ex->mu);
    if (job) {
        sv_job_finish(job, SV_JOB_FAILED, "out of memory following the export", NULL, NULL);
        sv_job_release(job);
    }
}

/* Takes the watch entry of id out of the list: its job (may be NULL), or
 * false when the entry is gone (shutdown took it). */
static bool watch_take(sv_export *ex, int backend, const char *id, sv_job **job)
{
    bool found = false;
    pthread_mutex_lock(&ex->mu);
    for (size_t i = 0; i < ex->nwatch && !found; i++)
        if (ex->watch[i].backend == backend && !strcmp(ex->watch[i].id, id)) {
            *job = ex->watch[i].job;
            ex->watch[i] = ex->watch[--ex->nwatch];
            found = true;
        }
    pthread_mutex_unlock(&ex->mu);
    return found;
}

/* A record left by an earlier start of the same id that can be replaced:
 * aborted, or its coordinator is gone (or is this node, restarted). */
static bool record_stale(sv_export *ex, json_t *rec)
{
    const char *state = json_string_value(json_object_get(rec, "state"));
    const char *coord = json_string_value(json_object_get(rec, "coordinator"));
    return !state || !coord || !strcmp(state, "aborted") || !strcmp(coord, ex->node) || !healthy(ex, coord);
}

int sv_export_cluster_run(sv_export *ex, int backend, sv_location *loc, json_t *req, json_t *meta, sv_job *job,
                          sv_err *err)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    const char *bname = json_string_value(json_object_get(req, "backend"));
    json_t *assign = json_object_get(req, "nodeAssignments");
    char key[400], attempt[40], probe[300] = "";
    sv_export_decision_key(key, sizeof key, bname, id);
    sv_uuid u; /* this start of the id: the record is acted on only by its own attempt */
    sv_uuid_v4(&u);
    sv_uuid_format(&u, attempt);
    const char *node;
    json_t *v;
    int rc = 0;
    json_object_foreach(assign, node, v)
    {
        if (!healthy(ex, node)) {
            rc = sv_fail(err, SV_EUNAVAIL,
                         "node %s, which holds shards of the export's collections, is unreachable (its lease "
                         "lapsed); retry once it is back (GET /v1/nodes) or exclude its collections",
                         node);
            goto fail_job;
        }
    }
    json_object_set_new(req, "coordinator", json_string(ex->node));
    json_object_set_new(req, "attempt", json_string(attempt));
    json_object_set_new(meta, "coordinator", json_string(ex->node));
    json_object_set_new(meta, "attempt", json_string(attempt));

    /* 1. The record: one coordinator per id. */
    json_t *parts = json_array();
    json_object_foreach(assign, node, v) json_array_append_new(parts, json_string(node));
    json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:I}", "id", id, "backend", bname, "attempt", attempt, "state",
                            "preparing", "coordinator", ex->node, "participants", parts, "startedAtMs",
                            json_integer_value(json_object_get(req, "startedAtMs")));
    if (!rec) {
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
        goto fail_job;
    }
    rc = decision_cas(ex, key, rec, 0, err);
    if (rc == SV_ECONFLICT) {
        json_t *old = NULL;
        int64_t rev = 0;
        sv_err gerr = {0};
        if (decision_get(ex, key, &old, &rev, &gerr) == 0 && record_stale(ex, old))
            rc = decision_cas(ex, key, rec, rev, err);
        else
            rc = sv_fail(err, SV_ECONFLICT, "export id '%s' is being started by node %s; choose another id", id,
                         or_(json_string_value(json_object_get(old, "coordinator")), "?"));
        json_decref(old);
    }
    json_decref(rec);
    if (rc)
        goto fail_job;
    /* Every participant must write where this node does: a probe it checks
     * at prepare (a filesystem root on each node's own disk would scatter
     * the files). */
    sv_export_key(probe, sizeof probe, id, SV_EXPORT_PROBE);
    if ((rc = sv_location_put(loc, probe, ex->node, strlen(ex->node), err)) != 0) {
        decision_delete(ex, key, attempt);
        goto fail_job;
    }

    /* 2. Prepare everywhere: this node in process, the others in parallel. */
    size_t n = json_object_size(assign), k = 0;
    sv_export_rpc *calls = calloc(n + 1, sizeof *calls);
    json_t **bodies = calloc(n + 1, sizeof *bodies);
    bool local_part = json_object_get(assign, ex->node) != NULL, local_prepared = false, sent = false;
    sv_export_participant p = sv_export_local_participant(ex);
    char why[1200] = "";
    if (!calls || !bodies) {
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    } else {
        json_object_foreach(assign, node, v)
        {
            json_t *b = json_copy(req);
            json_object_set(b, "shards", v);
            json_object_set_new(b, "nodeName", json_string(node));
            if (strcmp(node, ex->node)) {
                bodies[k] = b;
                calls[k].node = node;
                snprintf(calls[k].path, sizeof calls[k].path, "/v1/cluster/export/prepare");
                calls[k].body = b;
                k++;
                continue;
            }
            sv_err lerr = {0};
            if ((rc = p.prepare(p.self, b, &lerr)) != 0)
                snprintf(why, sizeof why, "node %s: %s", node, lerr.msg);
            else
                local_prepared = true;
            json_decref(b);
        }
        if (rc == 0 && k) {
            ex->cl.send(ex->cl.self, calls, k, PREPARE_TIMEOUT_MS);
            sent = true;
        }
        for (size_t i = 0; sent && i < k && !why[0]; i++)
            if ((rc = rpc_rc(&calls[i])) != 0)
                snprintf(why, sizeof why, "node %s could not prepare: %s", calls[i].node, calls[i].err.msg);
    }
    if (rc) {
        sv_err derr = {0};
        sv_export_decide_abort(ex, bname, id, attempt, why[0] ? why : err->msg, false, &derr);
        /* Release, in one parallel round, the nodes that prepared; one that
         * is still preparing sees the aborted record within a tick. */
        sv_export_rpc *rel = calloc(k + 1, sizeof *rel);
        size_t nrel = 0;
        for (size_t i = 0; sent && rel && i < k; i++)
            if (rpc_rc(&calls[i]) == 0) {
                rel[nrel].node = calls[i].node;
                snprintf(rel[nrel].path, sizeof rel[nrel].path, "/v1/cluster/export/%s/abort", id);
                nrel++;
            }
        if (nrel)
            ex->cl.send(ex->cl.self, rel, nrel, CALL_TIMEOUT_MS);
        free(rel);
        if (local_prepared)
            p.abort(p.self, id, why);
        if (why[0])
            sv_fail(err, rc, "%s", why);
    }
    for (size_t i = 0; bodies && i < n; i++)
        json_decref(bodies[i]);
    free(bodies);
    free(calls);
    sv_err perr = {0};
    sv_location_delete(loc, probe, &perr);
    if (rc) {
        decision_delete(ex, key, attempt); /* nothing was published */
        goto fail_job;
    }

    sv_crash_point("export-coordinator-unpublished"); /* tests: prepared everywhere, nothing in the bucket */

    /* 3. Publish. */
    char mkey[300];
    sv_export_key(mkey, sizeof mkey, id, "export_metadata.json");
    if ((rc = sv_export_put_json(loc, mkey, meta, err)) != 0) {
        char reason[700];
        snprintf(reason, sizeof reason, "cannot publish the export's metadata: %.600s", err->msg);
        sv_err derr = {0};
        sv_export_decide_abort(ex, bname, id, attempt, reason, false, &derr);
        abort_all(ex, assign, id, reason, false, NULL);
        decision_delete(ex, key, attempt);
        goto fail_job;
    }
    /* The job follows the whole export, not this node's part: the watch
     * ends it with the final metadata (and marks a node lost after the
     * others ended). */
    if (job)
        sv_job_start(job, NULL);
    sv_export_watch_add(ex, backend, id, job);
    job = NULL;
    sv_crash_point("export-coordinator-prepared"); /* prepared and published, not decided */

    /* 4. Decide. */
    if ((rc = decide_commit(ex, key, attempt, err)) != 0) {
        char reason[1100];
        snprintf(reason, sizeof reason, "%s", err->msg);
        sv_err derr = {0};
        sv_export_decide_abort(ex, bname, id, attempt, reason, false, &derr); /* an unclear answer may have committed */
        abort_all(ex, assign, id, reason, false, NULL);
        return rc;
    }
    sv_crash_point("export-coordinator-committed");

    /* 5. Commit. */
    calls = calloc(n + 1, sizeof *calls);
    k = 0;
    why[0] = '\0';
    const char *lost = NULL;
    json_object_foreach(assign, node, v)
    {
        if (!strcmp(node, ex->node) || !calls)
            continue;
        calls[k].node = node;
        snprintf(calls[k].path, sizeof calls[k].path, "/v1/cluster/export/%s/commit", id);
        k++;
    }
    if (calls && k)
        ex->cl.send(ex->cl.self, calls, k, CALL_TIMEOUT_MS);
    for (size_t i = 0; calls && i < k && !why[0]; i++)
        if ((rc = rpc_rc(&calls[i])) != 0) {
            snprintf(why, sizeof why, "node %s could not start its part: %.1000s", calls[i].node, calls[i].err.msg);
            lost = calls[i].node;
        }
    if (!calls) {
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
        snprintf(why, sizeof why, "out of memory");
    }
    if (rc == 0 && local_part) {
        sv_err lerr = {0};
        if ((rc = p.commit(p.self, id, &lerr)) != 0) {
            snprintf(why, sizeof why, "node %s could not start its part: %.1000s", ex->node, lerr.msg);
            lost = ex->node;
        }
    }
    if (rc) {
        sv_err derr = {0};
        if (lost)
            mark_node_failed(ex, loc, id, lost, assign, why);
        sv_export_decide_abort(ex, bname, id, attempt, why, false, &derr);
        abort_all(ex, assign, id, why, false, lost);
        json_t *pub = NULL;
        if (sv_export_get_json(loc, mkey, &pub, &derr) == 0)
            sv_export_promote(ex, loc, pub, pub, false, &derr);
        json_decref(pub);
        sv_fail(err, rc, "%s", why);
    }
    free(calls);
    return rc;

fail_job:
    if (job) {
        sv_job_finish(job, SV_JOB_FAILED, err->msg[0] ? err->msg : "export did not start", NULL, NULL);
        sv_job_release(job);
    }
    return rc;
}

int sv_export_cluster_cancel(sv_export *ex, int backend, const char *id, sv_err *err)
{
    const char *bname = sv_export_backend_name(backend);
    char key[400];
    sv_export_decision_key(key, sizeof key, bname, id);
    json_t *rec = NULL;
    int64_t rev = 0;
    int rc = decision_get(ex, key, &rec, &rev, err);
    if (rc)
        return rc;
    json_t *assign = json_object();
    size_t i;
    json_t *pn;
    json_array_foreach(json_object_get(rec, "participants"), i, pn)
    {
        if (json_is_string(pn))
            json_object_set_new(assign, json_string_value(pn), json_object());
    }
    rc = sv_export_decide_abort(ex, bname, id, NULL, "canceled", true, err);
    if (rc == 0) {
        abort_all(ex, assign, id, NULL, true, NULL);
        sv_info("export canceled across nodes", "id=%s", id);
    }
    json_decref(assign);
    json_decref(rec);
    return rc;
}

/* ---- node-to-node endpoints -------------------------------------------------------- */

/* A node, shard or tenant name (nodes follow the tenant-name rule, as
 * sv_cluster_open checks them). */
static bool name_ok(const char *s) { return s && sv_check_tenant_name(s, NULL) == 0; }

/* {collection: [name…]} with checked names only. */
static bool shard_map_ok(json_t *m)
{
    if (!json_is_object(m))
        return false;
    const char *coll;
    json_t *names;
    json_object_foreach(m, coll, names)
    {
        if (sv_check_collection_name(coll, NULL) || !json_is_array(names))
            return false;
        size_t i;
        json_t *x;
        json_array_foreach(names, i, x) if (!name_ok(json_string_value(x))) return false;
    }
    return true;
}

int sv_export_remote_prepare(sv_export *ex, json_t *req, sv_err *err)
{
    const char *backend = json_string_value(json_object_get(req, "backend"));
    json_t *assign = json_object_get(req, "nodeAssignments");
    bool ok = json_is_object(req) && name_ok(json_string_value(json_object_get(req, "coordinator"))) &&
              json_is_string(json_object_get(req, "attempt")) && json_is_string(json_object_get(req, "path")) &&
              backend && (!strcmp(backend, "filesystem") || !strcmp(backend, "s3")) && json_is_object(assign) &&
              shard_map_ok(json_object_get(req, "shards")) && json_is_array(json_object_get(req, "classes"));
    const char *node;
    json_t *v;
    json_object_foreach(assign, node, v) ok = ok && name_ok(node) && shard_map_ok(v);
    if (!ok)
        return sv_fail(err, SV_EINVAL,
                       "a participant request needs id, backend (filesystem|s3), path, classes, shards, coordinator, "
                       "attempt and nodeAssignments, with valid node, collection and shard names");
    sv_export_participant p = sv_export_local_participant(ex);
    return p.prepare(p.self, req, err);
}

int sv_export_remote_commit(sv_export *ex, const char *id, sv_err *err)
{
    sv_export_participant p = sv_export_local_participant(ex);
    return p.commit(p.self, id, err);
}

void sv_export_remote_abort(sv_export *ex, const char *id, json_t *body)
{
    const char *reason = json_string_value(json_object_get(body, "reason"));
    bool canceled = json_is_true(json_object_get(body, "canceled"));
    char r[600];
    snprintf(r, sizeof r, "%s", reason ? reason : "aborted by the coordinator");
    sv_export_participant p = sv_export_local_participant(ex);
    p.abort(p.self, id, canceled ? NULL : r);
}

/* ---- failure detection (every tick) ------------------------------------------------- */

/* Marks every participant of a published export whose lease lapsed before
 * it ended (its status file not terminal) FAILED, aborting the record;
 * the reason names the first. Returns whether any was marked. */
static bool mark_lost(sv_export *ex, sv_location *loc, json_t *req, char *reason, size_t n)
{
    const char *id = json_string_value(json_object_get(req, "id"));
    json_t *assign = json_object_get(req, "nodeAssignments");
    bool marked = false;
    const char *node;
    json_t *x;
    json_object_foreach(assign, node, x)
    {
        if (!strcmp(node, ex->node) || healthy(ex, node))
            continue;
        char why[200];
        snprintf(why, sizeof why, "node %s left the cluster (its lease lapsed) during the export", node);
        if (mark_node_failed(ex, loc, id, node, assign, why)) {
            if (!marked)
                snprintf(reason, n, "%s", why);
            marked = true;
        }
    }
    if (marked) {
        sv_err derr = {0};
        if (sv_export_decide_abort(ex, json_string_value(json_object_get(req, "backend")), id,
                                   json_string_value(json_object_get(req, "attempt")), reason, false, &derr))
            sv_warn("export: cannot record the abort", "id=%s error=\"%s\"", id, derr.msg);
    }
    return marked;
}

/* Exports this node watches until their metadata is final: the ones it
 * coordinates, and the ones whose part ended here while others had not. A
 * node lost after the others ended is marked here, then the outcome
 * written. */
static void tick_watch(sv_export *ex)
{
    int64_t now = sv_mono_ns();
    pthread_mutex_lock(&ex->mu);
    bool due = ex->nwatch && now - ex->last_watch_ns > 1000000000LL;
    if (due)
        ex->last_watch_ns = now;
    size_t n = due ? ex->nwatch : 0;
    sv_export_watch *copy = n ? calloc(n, sizeof *copy) : NULL;
    if (copy)
        memcpy(copy, ex->watch, n * sizeof *copy);
    pthread_mutex_unlock(&ex->mu);
    for (size_t i = 0; copy && i < n; i++) {
        sv_export_watch *w = &copy[i];
        sv_location *loc;
        sv_err err = {0};
        json_t *meta = NULL;
        char mkey[300];
        sv_export_key(mkey, sizeof mkey, w->id, "export_metadata.json");
        if (sv_export_location(ex, w->backend, &loc, &err))
            continue;
        int grc = sv_export_get_json(loc, mkey, &meta, &err);
        if (grc == SV_ENOTFOUND) {
            /* deleted under the watch: nothing more will say how it ended */
            sv_job *job = NULL;
            if (watch_take(ex, w->backend, w->id, &job) && job) {
                sv_job_finish(job, SV_JOB_FAILED, "the export's metadata was deleted before it ended", NULL, NULL);
                sv_job_release(job);
            }
            continue;
        }
        if (grc)
            continue; /* unreadable for now: the next tick asks again */
        const char *st = json_string_value(json_object_get(meta, "status"));
        if (!sv_export_status_terminal(st)) {
            char reason[200];
            if (ex->cl.healthy(ex->cl.self, ex->node) && mark_lost(ex, loc, meta, reason, sizeof reason))
                sv_export_promote(ex, loc, meta, meta, false, &err);
            else if (w->job) { /* progress: the rows the nodes' status files report */
                sv_export_aggregate(ex, loc, meta, NULL);
                int64_t rows, bytes;
                sv_export_shard_sums(json_object_get(meta, "shardStatus"), &rows, &bytes);
                pthread_mutex_lock(&ex->mu);
                for (size_t k = 0; k < ex->nwatch; k++)
                    if (ex->watch[k].job == w->job && rows > ex->watch[k].done) {
                        sv_job_add_done(w->job, rows - ex->watch[k].done, 0);
                        ex->watch[k].done = rows;
                    }
                pthread_mutex_unlock(&ex->mu);
            }
            json_decref(meta);
            continue;
        }
        sv_job *job = NULL;
        if (watch_take(ex, w->backend, w->id, &job) && job) {
            sv_job_state js = !strcmp(st, "SUCCESS")    ? SV_JOB_SUCCEEDED
                              : !strcmp(st, "CANCELED") ? SV_JOB_CANCELED
                                                        : SV_JOB_FAILED;
            /* the whole export, from the final metadata (every node's
             * shards): the job's figures and, on success, its result */
            int64_t rows, bytes;
            sv_export_shard_sums(json_object_get(meta, "shardStatus"), &rows, &bytes);
            json_t *ot = json_object_get(meta, "objectsTotal");
            sv_job_set_totals(job, json_is_integer(ot) ? json_integer_value(ot) : rows, bytes);
            sv_job_set_done(job, rows, bytes);
            json_t *res = js == SV_JOB_SUCCEEDED
                              ? json_pack("{s:I,s:I}", "objectsExported", (json_int_t)rows, "bytesWritten", (json_int_t)bytes)
                              : NULL;
            sv_job_finish(job, js, js == SV_JOB_FAILED ? json_string_value(json_object_get(meta, "error")) : NULL,
                          res, NULL);
            json_decref(res);
            sv_job_release(job);
        }
        json_decref(meta);
    }
    free(copy);
}

void sv_export_watch_job(sv_export *ex, const sv_job *job, char *id, size_t n, int *backend)
{
    for (size_t i = 0; job && i < ex->nwatch; i++)
        if (ex->watch[i].job == job) {
            snprintf(id, n, "%s", ex->watch[i].id);
            *backend = ex->watch[i].backend;
        }
}

void sv_export_watch_stop(sv_export *ex)
{
    pthread_mutex_lock(&ex->mu);
    sv_export_watch *w = ex->watch;
    size_t n = ex->nwatch;
    ex->watch = NULL;
    ex->nwatch = ex->watch_cap = 0;
    pthread_mutex_unlock(&ex->mu);
    for (size_t i = 0; i < n; i++) {
        if (!w[i].job)
            continue;
        sv_job_finish(w[i].job, SV_JOB_FAILED,
                      "the coordinating node shut down; the export goes on on its participants (see its status)", NULL,
                      NULL);
        sv_job_release(w[i].job);
    }
    free(w);
}

void sv_export_cluster_tick(sv_export *ex)
{
    tick_watch(ex);
    sv_export_slot_view v;
    sv_export_local_view(ex, &v);
    if (!v.busy || !sv_export_clustered(v.req) || !ex->cl.healthy(ex->cl.self, ex->node)) {
        json_decref(v.req); /* not ours to check, or this node's view of the cluster is not current */
        return;
    }
    const char *bname = json_string_value(json_object_get(v.req, "backend"));
    const char *coord = json_string_value(json_object_get(v.req, "coordinator"));
    const char *attempt = json_string_value(json_object_get(v.req, "attempt"));
    json_t *assign = json_object_get(v.req, "nodeAssignments");
    char key[400];
    sv_export_decision_key(key, sizeof key, bname, v.id);
    json_t *rec = NULL;
    int64_t rev = 0;
    sv_err err = {0};
    int rc = decision_get(ex, key, &rec, &rev, &err);
    const char *state = json_string_value(json_object_get(rec, "state"));
    char reason[700] = "";
    bool canceled = false;
    if (rc == SV_ENOTFOUND || (rc == 0 && !same_attempt(rec, attempt))) {
        snprintf(reason, sizeof reason, "the export's decision record is gone (the export was abandoned)");
    } else if (rc == 0 && state && !strcmp(state, "aborted")) {
        canceled = json_is_true(json_object_get(rec, "canceled"));
        snprintf(reason, sizeof reason, "%.690s", or_(json_string_value(json_object_get(rec, "reason")), "aborted"));
    } else if (rc == 0) {
        /* Membership: a participant that left before it ended lost its part. */
        sv_location *loc;
        int b = sv_export_backend_index(bname) == SV_EXPORT_BACKEND_S3 ? SV_EXPORT_BACKEND_S3 : SV_EXPORT_BACKEND_FS;
        if (sv_export_location(ex, b, &loc, &err) == 0)
            mark_lost(ex, loc, v.req, reason, sizeof reason);
        if (!reason[0] && coord && !json_object_get(assign, coord) && !healthy(ex, coord)) {
            if (state && !strcmp(state, "preparing")) {
                snprintf(reason, sizeof reason,
                         "the coordinator, node %s, left the cluster before committing the export", coord);
                sv_err derr = {0};
                if (sv_export_decide_abort(ex, bname, v.id, attempt, reason, false, &derr))
                    sv_warn("export: cannot record the abort", "id=%s error=\"%s\"", v.id, derr.msg);
            } else if (v.prepared && sv_export_local_commit_gen(ex, v.gen, &err) == 0) {
                sv_info("export committed after its coordinator left", "id=%s coordinator=%s", v.id, coord);
            }
        }
    }
    if (reason[0]) {
        sv_warn("export part stopped", "id=%s reason=\"%s\"", v.id, reason);
        sv_export_local_abort_gen(ex, v.gen, canceled ? NULL : reason);
    }
    json_decref(rec);
    json_decref(v.req);
}
