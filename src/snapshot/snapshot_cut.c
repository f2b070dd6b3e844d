/* A cluster-wide snapshot: one cut across every node owning a shard of the
 * collection (docs/cluster.md "Cluster-wide snapshot").
 *
 * The coordinator (the node that received the request, running the create
 * job) and the owners:
 *   1. cut      every owner, in parallel: closes the write gate of each of its
 *               shards of the collection, waits for the writes inside, and
 *               checkpoints them (the gates stay closed);
 *   2. release  only once every owner answered the cut within
 *               SNAP_CUT_ANSWER_MS: the gates open; each owner answers how
 *               long its gates were closed (the write stall);
 *   3. upload   each owner stores its checkpoints as content-addressed blobs
 *               with one part manifest per shard under cuts/<id>/;
 *   4. the coordinator writes the collection manifest (every shard with its
 *      node) and then deletes the parts.
 *
 * Invariants:
 *  - a write acknowledged before an owner's gate closed is in its checkpoint
 *    (the close drains the writes inside);
 *  - a write acknowledged after any gate opened is in no checkpoint: no gate
 *    opens before every checkpoint is taken (release is sent only then), and a
 *    gate that opened by itself (its hold, SV_STORE_CUT_HOLD_MS, ran out
 *    before the release) fails the snapshot;
 *  - writes never stay blocked: every gate opens at the release, at an abort,
 *    or by itself SV_STORE_CUT_HOLD_MS after it closed;
 *  - a missing or failed answer aborts on every owner (gates open,
 *    checkpoints and parts deleted) and the snapshot is FAILED naming the node.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot_internal.h"

#define SNAP_CUT_ANSWER_MS 1500   /* cut and release answers (< the 2 s hold) */
#define SNAP_CUT_DRAIN_MS 1000    /* writes inside a shard when its gate closes */
#define SNAP_CUT_UPLOAD_MS 3600000
#define SNAP_CUT_STALE_MS 600000  /* an owner's cut never uploaded nor aborted */
#define SNAP_CUT_ATTEMPTS 4       /* cut rounds refused by another snapshot's cut */

typedef struct snap_cut {
    char id[129];
    char collection[129];
    uint64_t token;
    bool open;              /* the gates were opened (release or abort) */
    int64_t closed_ns, stall_ns;
    int64_t started_ms;
    char dir[1200];
    sv_capture *cap;
    struct snap_cut *next;
} snap_cut;

void sv_snapshot_set_cluster(sv_snapshot *s, const sv_snapshot_cluster *c) { s->cluster = *c; }

bool sv_snap_cut_wanted(sv_snapshot *s, const char *collection)
{
    if (!s->cluster.send)
        return false;
    char(*nodes)[65] = NULL;
    size_t n = 0;
    bool spread = false;
    if (sv_store_collection_nodes(s->st, collection, &nodes, &n, NULL) == 0)
        spread = n > 1 || (n == 1 && strcmp(nodes[0], s->node));
    free(nodes);
    return spread;
}

int sv_snap_cut_check(sv_snapshot *s, const char *collection, sv_err *err)
{
    if (!sv_snapshot_location_is_own(s))
        return 0;
    return sv_fail(err, SV_EUNSUPPORTED,
                   "collection '%s' is spread over several nodes: its snapshot is one cut across them, each node "
                   "uploading its own shards to a location every node reads, but this node's location is its own "
                   "data directory (%s); set SHARDVAULT_LOCATION (s3://… or a shared file://) on every node",
                   collection, s->url);
}

static void probe_key(const char *id, char key[400]) { snprintf(key, 400, "cuts/%s/probe", id); }

/* ---- the owner's side ----------------------------------------------------------- */

static void cut_free(sv_snapshot *s, snap_cut *c)
{
    if (!c->open)
        sv_store_cut_open(s->st, c->collection, c->token, NULL);
    if (c->dir[0]) {
        sv_err ignored;
        sv_rmtree(c->dir, &ignored);
    }
    sv_capture_free(c->cap);
    free(c);
}

/* Takes the cut out of the list (NULL: none with that id). */
static snap_cut *cut_take(sv_snapshot *s, const char *id)
{
    pthread_mutex_lock(&s->mu);
    snap_cut *c = NULL;
    for (snap_cut **pp = &s->cuts; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->id, id)) {
            c = *pp;
            *pp = c->next;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return c;
}

static void cut_put(sv_snapshot *s, snap_cut *c)
{
    pthread_mutex_lock(&s->mu);
    c->next = s->cuts;
    s->cuts = c;
    pthread_mutex_unlock(&s->mu);
}

/* Cuts whose coordinator never came back: their checkpoints go. */
static void cut_sweep(sv_snapshot *s)
{
    int64_t now = sv_now_ms();
    snap_cut *stale = NULL;
    pthread_mutex_lock(&s->mu);
    for (snap_cut **pp = &s->cuts; *pp;) {
        snap_cut *c = *pp;
        if (now - c->started_ms > SNAP_CUT_STALE_MS) {
            *pp = c->next;
            c->next = stale;
            stale = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&s->mu);
    while (stale) {
        snap_cut *next = stale->next;
        sv_warn("snapshot cut dropped: no upload nor abort came", "id=%s collection=%s", stale->id,
                stale->collection);
        cut_free(s, stale);
        stale = next;
    }
}

static int check_id(const char *id, sv_err *err)
{
    if (!id || sv_check_snapshot_name(id, NULL) != 0)
        return sv_fail(err, SV_EINVAL, "a cut id must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$");
    return 0;
}

int sv_snapshot_cut_prepare(sv_snapshot *s, json_t *req, json_t **out, sv_err *err)
{
    const char *coll = json_string_value(json_object_get(req, "collection"));
    const char *id = json_string_value(json_object_get(req, "id"));
    int rc = check_id(id, err);
    if (rc == 0)
        rc = sv_check_collection_name(coll, err);
    if (rc)
        return rc;
    cut_sweep(s);
    snap_cut *c = calloc(1, sizeof *c);
    if (!c)
        return sv_snap_oom(err);
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->collection, sizeof c->collection, "%s", coll);
    c->started_ms = sv_now_ms();
    c->open = true;
    snap_cut *old = cut_take(s, id);
    if (old) { /* a repeated cut of the same id: the first is void */
        cut_free(s, old);
    }
    /* Tests (SHARDVAULT_TEST_CUT_DELAY_MS): this owner closes its gates late,
     * so the others' gates are closed well before it — the window a cut
     * without gates would let a write pair straddle. */
    const char *delay = getenv("SHARDVAULT_TEST_CUT_DELAY_MS");
    if (delay && atoi(delay) > 0)
        sv_sleep_ms(atoi(delay));
    size_t nclosed = 0;
    rc = sv_store_cut_close(s->st, coll, SNAP_CUT_DRAIN_MS, &c->token, &nclosed, err);
    if (rc == 0) {
        c->open = false;
        c->closed_ns = sv_mono_ns();
        sv_crash_point("cut:closed"); /* tests: this owner dies with its gates closed */
        /* from here on c->dir holds this cut's checkpoints (empty until then:
         * nothing of ours to remove) */
        snprintf(c->dir, sizeof c->dir, "%s/cut-%s", sv_store_tmp_dir(s->st), id);
        rc = sv_store_capture_ex(s->st, coll, c->dir, SV_CAPTURE_LOCAL, &c->cap, err);
    }
    for (size_t i = 0; rc == 0 && c->cap && i < c->cap->nshards; i++)
        if (c->cap->shards[i].status == SV_CAPTURE_UNAVAILABLE)
            rc = sv_fail(err, SV_EUNAVAIL, "%s", c->cap->shards[i].reason);
    /* Every shard captured was held by this cut: a tenant created (or a
     * shard switched here) between the close and the capture was not, and
     * its writes are not ordered with the others'. */
    if (rc == 0 && c->cap) {
        const char **names = calloc(c->cap->nshards + 1, sizeof *names);
        for (size_t i = 0; names && i < c->cap->nshards; i++)
            names[i] = c->cap->shards[i].name;
        if (!names)
            rc = sv_snap_oom(err);
        else if (!sv_store_cut_covers(s->st, coll, c->token, names, c->cap->nshards))
            rc = sv_fail(err, SV_ECONFLICT,
                         "the shards of collection '%s' changed during the cut (a tenant added or a shard moved "
                         "here), or its gates reopened before the capture ended; retry the snapshot",
                         coll);
        free(names);
    }
    if (rc) {
        sv_err_wrap(err, "node %s: cut of collection '%s'", s->node, coll);
        cut_free(s, c);
        return rc;
    }
    json_t *names = json_array();
    int64_t objects = 0;
    for (size_t i = 0; i < c->cap->nshards; i++) {
        json_array_append_new(names, json_string(c->cap->shards[i].name));
        objects += c->cap->shards[i].objects > 0 ? c->cap->shards[i].objects : 0;
    }
    *out = json_pack("{s:s,s:o,s:I,s:I}", "node", s->node, "shards", names, "objects", (json_int_t)objects,
                     "capturedAt", (json_int_t)c->cap->captured_at);
    cut_put(s, c);
    return *out ? 0 : sv_snap_oom(err);
}

int sv_snapshot_cut_release(sv_snapshot *s, const char *id, json_t **out, sv_err *err)
{
    int rc = check_id(id, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->mu);
    snap_cut *c = s->cuts;
    while (c && strcmp(c->id, id))
        c = c->next;
    bool expired = false, found = c != NULL;
    int64_t stall = 0;
    char coll[129] = "";
    uint64_t token = 0;
    if (c && !c->open) {
        c->open = true;
        snprintf(coll, sizeof coll, "%s", c->collection);
        token = c->token;
        c->stall_ns = sv_mono_ns() - c->closed_ns;
    }
    if (c)
        stall = c->stall_ns;
    pthread_mutex_unlock(&s->mu);
    if (!found)
        return sv_fail(err, SV_ENOTFOUND, "node %s holds no cut '%s' (aborted, or this node restarted)", s->node, id);
    if (coll[0])
        sv_store_cut_open(s->st, coll, token, &expired);
    *out = json_pack("{s:s,s:f,s:b}", "node", s->node, "stallMs", (double)stall / 1e6, "expired", expired);
    return *out ? 0 : sv_snap_oom(err);
}

int sv_snapshot_cut_upload(sv_snapshot *s, const char *id, json_t **out, sv_err *err)
{
    int rc = check_id(id, err);
    if (rc)
        return rc;
    snap_cut *c = cut_take(s, id);
    if (!c)
        return sv_fail(err, SV_ENOTFOUND, "node %s holds no cut '%s' (aborted, or this node restarted)", s->node, id);
    /* The coordinator's probe: the owner uploads where the coordinator reads. */
    char pk[400];
    probe_key(id, pk);
    sv_buf pb = {0};
    int prc = sv_location_get_buf(s->loc, pk, &pb, NULL);
    bool same = prc == 0 && pb.len == strlen(id) && !memcmp(pb.data, id, pb.len);
    sv_buf_free(&pb);
    if (!same) {
        cut_free(s, c);
        return sv_fail(err, SV_EUNSUPPORTED,
                       "node %s does not see the coordinator's snapshot location (its own is %s): set the same "
                       "SHARDVAULT_LOCATION on every node",
                       s->node, s->url);
    }
    if (!c->open) { /* an upload without a release: the gates open now */
        sv_store_cut_open(s->st, c->collection, c->token, NULL);
        c->open = true;
    }
    json_t *shards = json_array();
    int64_t uploaded = 0;
    for (size_t i = 0; rc == 0 && i < c->cap->nshards; i++) {
        sv_shard_capture *sc = &c->cap->shards[i];
        json_t *one = json_pack("{s:s,s:s,s:I}", "name", sc->name, "node", s->node, "objects",
                                (json_int_t)(sc->objects > 0 ? sc->objects : 0));
        if (sc->status == SV_CAPTURE_EMPTY) {
            json_object_set_new(one, "key", json_null());
        } else {
            char key[400];
            snprintf(key, sizeof key, "cuts/%s/%s/manifest.json", id, sc->name);
            sv_dir_stats st = {0};
            rc = sv_snapshot_put_dir(s, sc->dir, c->collection, sc->name, sc->objects, key, NULL, &st, err);
            uploaded += st.bytes_uploaded;
            json_object_set_new(one, "key", json_string(key));
        }
        json_array_append_new(shards, one);
    }
    if (rc) {
        sv_err_wrap(err, "node %s: upload of cut '%s'", s->node, id);
        json_decref(shards);
        for (size_t i = 0; i < c->cap->nshards; i++) {
            char key[400];
            snprintf(key, sizeof key, "cuts/%s/%s/manifest.json", id, c->cap->shards[i].name);
            sv_snapshot_drop_dir(s, key, NULL);
        }
        cut_free(s, c);
        return rc;
    }
    cut_free(s, c);
    *out = json_pack("{s:s,s:o,s:I}", "node", s->node, "shards", shards, "bytesUploaded", (json_int_t)uploaded);
    return *out ? 0 : sv_snap_oom(err);
}

void sv_snapshot_cut_abort(sv_snapshot *s, const char *id)
{
    if (check_id(id, NULL))
        return;
    snap_cut *c = cut_take(s, id);
    if (!c)
        return;
    for (size_t i = 0; c->cap && i < c->cap->nshards; i++) {
        char key[400];
        snprintf(key, sizeof key, "cuts/%s/%s/manifest.json", id, c->cap->shards[i].name);
        sv_snapshot_drop_dir(s, key, NULL);
    }
    sv_info("snapshot cut aborted", "id=%s collection=%s", id, c->collection);
    cut_free(s, c);
}

void sv_snap_cut_close_all(sv_snapshot *s)
{
    pthread_mutex_lock(&s->mu);
    snap_cut *c = s->cuts;
    s->cuts = NULL;
    pthread_mutex_unlock(&s->mu);
    while (c) {
        snap_cut *next = c->next;
        cut_free(s, c);
        c = next;
    }
}

/* ---- the coordinator ---------------------------------------------------------------- */

/* This node's own part, without a network hop. */
static void call_self(sv_snapshot *s, sv_snapshot_rpc *r, const char *verb, json_t *body, const char *id)
{
    memset(&r->err, 0, sizeof r->err);
    r->reply = NULL;
    if (!strcmp(verb, "cut"))
        r->rc = sv_snapshot_cut_prepare(s, body, &r->reply, &r->err);
    else if (!strcmp(verb, "release"))
        r->rc = sv_snapshot_cut_release(s, id, &r->reply, &r->err);
    else if (!strcmp(verb, "upload"))
        r->rc = sv_snapshot_cut_upload(s, id, &r->reply, &r->err);
    else {
        sv_snapshot_cut_abort(s, id);
        r->rc = 0;
    }
    /* as a remote failure reads: the reason in err, the status the route
     * would answer (409 for a refusal, which the coordinator retries) */
    r->status = !r->rc ? 200 : r->rc == SV_ECONFLICT ? 409 : 500;
    r->rc = 0;
}

typedef struct remote_arg {
    sv_snapshot *s;
    sv_snapshot_rpc *calls;
    size_t n;
    int64_t timeout_ms;
} remote_arg;

static void *remote_thread(void *arg)
{
    remote_arg *a = arg;
    a->s->cluster.send(a->s->cluster.self, a->calls, a->n, a->timeout_ms);
    return NULL;
}

/* One verb on every owner in parallel: calls[i] answers nodes[i]. */
static void cut_round(sv_snapshot *s, char (*nodes)[65], size_t n, const char *verb, const char *id, json_t *body,
                      int64_t timeout_ms, sv_snapshot_rpc *calls)
{
    size_t self = n, nremote = 0;
    sv_snapshot_rpc *remote = calloc(n + 1, sizeof *remote);
    size_t *map = calloc(n + 1, sizeof *map);
    for (size_t i = 0; i < n; i++) {
        memset(&calls[i], 0, sizeof calls[i]);
        calls[i].node = nodes[i];
        calls[i].body = body;
        if (!strcmp(verb, "cut"))
            snprintf(calls[i].path, sizeof calls[i].path, "/v1/cluster/snapshot/cut");
        else
            snprintf(calls[i].path, sizeof calls[i].path, "/v1/cluster/snapshot/%s/%s", id, verb);
        if (!strcmp(nodes[i], s->node))
            self = i;
        else if (remote && map) {
            remote[nremote] = calls[i];
            map[nremote++] = i;
        }
    }
    if (!remote || !map) {
        for (size_t i = 0; i < n; i++)
            calls[i].rc = sv_fail(&calls[i].err, SV_ENOMEM, "out of memory");
        free(remote);
        free(map);
        return;
    }
    remote_arg ra = {s, remote, nremote, timeout_ms};
    pthread_t th;
    bool threaded = nremote > 0 && self < n && pthread_create(&th, NULL, remote_thread, &ra) == 0;
    if (nremote > 0 && !threaded)
        remote_thread(&ra);
    if (self < n)
        call_self(s, &calls[self], verb, body, id);
    if (threaded)
        pthread_join(th, NULL);
    for (size_t k = 0; k < nremote; k++)
        calls[map[k]] = remote[k];
    free(remote);
    free(map);
}

static bool call_ok(const sv_snapshot_rpc *r) { return r->rc == 0 && r->status < 300; }

void sv_snap_rpc_why(const sv_snapshot_rpc *r, char *why, size_t len)
{
    if (r->rc == 0 && r->status < 300)
        snprintf(why, len, "ok");
    else
        snprintf(why, len, "%s", r->err.msg[0] ? r->err.msg : sv_strerror(r->rc ? r->rc : SV_EIO));
}

static void round_free(sv_snapshot_rpc *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(calls[i].reply);
        calls[i].reply = NULL;
    }
}

static void abort_all(sv_snapshot *s, char (*nodes)[65], size_t n, const char *id, sv_snapshot_rpc *calls)
{
    cut_round(s, nodes, n, "abort", id, NULL, 1000, calls);
    round_free(calls, n);
}

static int cmp_shard(const void *a, const void *b)
{
    return strcmp(((const sv_manifest_shard *)a)->name, ((const sv_manifest_shard *)b)->name);
}

/* The collection manifest from the owners' parts. */
static int assemble(sv_snapshot *s, create_op *op, json_t *rec, sv_snapshot_rpc *up, size_t n, int64_t captured_at,
                    sv_manifest **out, sv_err *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += json_array_size(json_object_get(up[i].reply, "shards"));
    sv_manifest *m = calloc(1, sizeof *m);
    *out = m;
    if (!m || !(m->shards = calloc(total + 1, sizeof *m->shards)))
        return sv_snap_oom(err);
    snprintf(m->collection, sizeof m->collection, "%s", op->collection);
    snprintf(m->name, sizeof m->name, "%s", op->name);
    snprintf(m->description, sizeof m->description, "%s", json_string_value(json_object_get(rec, "description")));
    m->created_at = json_integer_value(json_object_get(rec, "createdAt"));
    m->captured_at = captured_at;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t k;
        json_t *sh;
        json_array_foreach(json_object_get(up[i].reply, "shards"), k, sh) {
            const char *name = json_string_value(json_object_get(sh, "name"));
            const char *key = json_string_value(json_object_get(sh, "key"));
            if (!name || sv_check_tenant_name(name, NULL)) {
                rc = sv_fail(err, SV_ECORRUPT, "node %s answered an upload without a valid shard name", up[i].node);
                break;
            }
            sv_manifest_shard *ms = &m->shards[m->nshards++];
            snprintf(ms->name, sizeof ms->name, "%s", name);
            snprintf(ms->node, sizeof ms->node, "%s", up[i].node);
            ms->objects = json_integer_value(json_object_get(sh, "objects"));
            if (!key) {
                ms->empty = true;
                continue;
            }
            sv_manifest *part = NULL;
            if ((rc = sv_snapshot_manifest_load(s, key, &part, NULL, err)) != 0)
                break;
            if (part->nshards != 1) {
                sv_snapshot_manifest_free(part);
                rc = sv_fail(err, SV_ECORRUPT, "part manifest %s has %zu shards, not 1", key, part->nshards);
                break;
            }
            if (!m->schema)
                m->schema = json_incref(part->schema);
            ms->files = part->shards[0].files;
            ms->nfiles = part->shards[0].nfiles;
            ms->bytes = part->shards[0].bytes;
            ms->objects = part->shards[0].objects;
            part->shards[0].files = NULL;
            part->shards[0].nfiles = 0;
            sv_snapshot_manifest_free(part);
        }
    }
    if (rc == 0 && !m->schema) { /* every shard empty: the store's schema */
        sv_schema *sc = NULL;
        if ((rc = sv_store_schema(s->st, op->collection, &sc, err)) == 0) {
            char *sj = sv_schema_to_json(sc);
            m->schema = sj ? json_loads(sj, 0, NULL) : NULL;
            free(sj);
            sv_schema_free(sc);
            if (!m->schema)
                rc = sv_snap_oom(err);
        }
    }
    if (rc)
        return rc;
    qsort(m->shards, m->nshards, sizeof *m->shards, cmp_shard);
    json_t *shards_api = json_array();
    for (size_t i = 0; i < m->nshards; i++) {
        sv_manifest_shard *ms = &m->shards[i];
        m->objects += ms->objects;
        m->bytes += ms->bytes;
        json_array_append_new(shards_api, json_pack("{s:s,s:s,s:I,s:I,s:I}", "name", ms->name, "node", ms->node,
                                                    "objects", (json_int_t)ms->objects, "files",
                                                    (json_int_t)ms->nfiles, "bytes", (json_int_t)ms->bytes));
    }
    json_object_set_new(rec, "objects", json_integer(m->objects));
    json_object_set_new(rec, "bytes", json_integer(m->bytes));
    json_object_set_new(rec, "shards", shards_api);
    return 0;
}

int sv_snap_cut_create(sv_snapshot *s, create_op *op, json_t *rec, sv_err *err)
{
    char(*nodes)[65] = NULL;
    size_t n = 0;
    int rc = sv_store_collection_nodes(s->st, op->collection, &nodes, &n, err);
    if (rc == 0 && n == 0)
        rc = sv_fail(err, SV_ESTATE, "collection '%s' has no shards to snapshot", op->collection);
    sv_snapshot_rpc *calls = rc == 0 ? calloc(n + 1, sizeof *calls) : NULL;
    if (rc == 0 && !calls)
        rc = sv_snap_oom(err);
    if (rc) {
        free(nodes);
        return rc;
    }
    char id[129];
    sv_uuid u;
    sv_uuid_v4(&u);
    char us[37];
    sv_uuid_format(&u, us);
    snprintf(id, sizeof id, "%s", us);
    char pk[400];
    probe_key(id, pk);
    if ((rc = sv_location_put(s->loc, pk, id, strlen(id), err)) != 0) {
        free(calls);
        free(nodes);
        return rc;
    }
    json_t *cut_body = json_pack("{s:s,s:s}", "collection", op->collection, "id", id);
    int64_t t0 = sv_mono_ns();

    /* 1. cut. Two snapshots of one collection cutting at once close some
     * gates each and are refused (409) by the rest: the loser of such a
     * round reopens its gates and tries again after a random pause, so one
     * of them wins instead of both failing. */
    for (int attempt = 1;; attempt++) {
        cut_round(s, nodes, n, "cut", id, cut_body, SNAP_CUT_ANSWER_MS, calls);
        bool refused = false, other = false;
        for (size_t i = 0; i < n; i++) {
            if (call_ok(&calls[i]))
                continue;
            if (calls[i].rc == 0 && calls[i].status == 409)
                refused = true;
            else
                other = true;
        }
        if (!refused || other || attempt >= SNAP_CUT_ATTEMPTS)
            break;
        abort_all(s, nodes, n, id, calls);
        sv_uuid r;
        sv_uuid_v4(&r);
        sv_sleep_ms(50 + (r.b[0] | r.b[1] << 8) % (150 * attempt));
    }
    int64_t t_cut = sv_mono_ns();
    int64_t captured_at = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!call_ok(&calls[i])) {
            char why[600];
            sv_snap_rpc_why(&calls[i], why, sizeof why);
            if (calls[i].rc == 0) /* it answered: a refusal, not a timeout */
                rc = sv_fail(err, calls[i].status == 409 ? SV_ECONFLICT : SV_EUNAVAIL,
                             "node %s refused the cut (HTTP %d: %s); every gate was reopened and nothing was kept",
                             calls[i].node, calls[i].status, why);
            else
                rc = sv_fail(err, SV_EUNAVAIL,
                             "node %s did not answer the cut (%s; answers are awaited %d ms); every gate was reopened "
                             "and nothing was kept",
                             calls[i].node, why, SNAP_CUT_ANSWER_MS);
        } else {
            int64_t ca = json_integer_value(json_object_get(calls[i].reply, "capturedAt"));
            captured_at = ca > captured_at ? ca : captured_at;
        }
    }
    /* Every shard exactly once, by its owner: the shard set and the owners
     * as this node sees them (a move or a new tenant meanwhile voids the cut). */
    json_t *seen = json_object();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t k;
        json_t *nm;
        json_array_foreach(json_object_get(calls[i].reply, "shards"), k, nm) {
            const char *sn = json_string_value(nm);
            if (!sn || json_object_get(seen, sn)) {
                rc = sv_fail(err, SV_ECONFLICT, "shard %s was captured twice (by node %s too): the placement changed "
                             "during the cut; retry the snapshot", sn ? sn : "?", calls[i].node);
                break;
            }
            json_object_set_new(seen, sn, json_string(calls[i].node));
        }
    }
    sv_shard_info *info = NULL;
    size_t ninfo = 0;
    if (rc == 0 && (rc = sv_store_shards_ex(s->st, op->collection, 0, &info, &ninfo, err)) == 0) {
        for (size_t k = 0; rc == 0 && k < ninfo; k++) {
            const char *by = json_string_value(json_object_get(seen, info[k].name));
            if (!by || strcmp(by, info[k].node))
                rc = sv_fail(err, SV_ECONFLICT,
                             "%s %s (owned by node %s) is not in the cut%s%s: the placement changed during the cut; "
                             "retry the snapshot",
                             info[k].is_tenant ? "tenant" : "shard", info[k].name, info[k].node, by ? " of that node; node " : "",
                             by ? by : "");
        }
        if (rc == 0 && json_object_size(seen) != ninfo)
            rc = sv_fail(err, SV_ECONFLICT, "the cut holds %zu shards, the collection %zu: the placement changed during "
                         "the cut; retry the snapshot", json_object_size(seen), ninfo);
    }
    free(info);
    json_decref(seen);
    round_free(calls, n);
    json_decref(cut_body);
    if (rc) {
        goto void_cut;
    }

    /* 2. release: every checkpoint is taken */
    cut_round(s, nodes, n, "release", id, NULL, SNAP_CUT_ANSWER_MS, calls);
    int64_t t_rel = sv_mono_ns();
    json_t *cut_nodes = json_array();
    double stall_max = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char why[600];
        sv_snap_rpc_why(&calls[i], why, sizeof why);
        if (!call_ok(&calls[i]))
            rc = sv_fail(err, SV_EUNAVAIL, "node %s did not answer the release (%s); the cut is void", calls[i].node,
                         why);
        else if (json_is_true(json_object_get(calls[i].reply, "expired")))
            rc = sv_fail(err, SV_ETIMEOUT,
                         "node %s reopened its write gates by itself (held %d ms) before every node had "
                         "checkpointed; the cut is void",
                         calls[i].node, SV_STORE_CUT_HOLD_MS);
        else {
            double st = json_real_value(json_object_get(calls[i].reply, "stallMs"));
            stall_max = st > stall_max ? st : stall_max;
            json_array_append_new(cut_nodes, json_pack("{s:s,s:f}", "node", calls[i].node, "stallMs", st));
        }
    }
    round_free(calls, n);
    if (rc) {
        json_decref(cut_nodes);
        goto void_cut;
    }
    json_object_set_new(rec, "capturedAt", json_integer(captured_at));
    json_object_set_new(rec, "cut", json_pack("{s:s,s:o,s:f}", "id", id, "nodes", cut_nodes, "stallMaxMs", stall_max));

    /* 3. upload (a cancel request stops it here: the cut is what took no time) */
    if (op->job && sv_job_canceled(op->job)) {
        rc = sv_fail(err, SV_ECANCELED, "canceled by request");
        goto void_cut;
    }
    cut_round(s, nodes, n, "upload", id, NULL, SNAP_CUT_UPLOAD_MS, calls);
    int64_t t_up = sv_mono_ns();
    int64_t uploaded = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!call_ok(&calls[i])) {
            char why[600];
            sv_snap_rpc_why(&calls[i], why, sizeof why);
            rc = sv_fail(err, SV_EUNAVAIL, "node %s could not upload its shards (%s)", calls[i].node, why);
        } else {
            uploaded += json_integer_value(json_object_get(calls[i].reply, "bytesUploaded"));
        }
    }
    atomic_store(&op->bytes_uploaded, uploaded);

    /* 4. the manifest, then the parts go */
    sv_manifest *m = NULL;
    if (rc == 0)
        rc = assemble(s, op, rec, calls, n, captured_at, &m, err);
    if (rc == 0 && op->job) {
        int64_t files = 0;
        for (size_t i = 0; i < m->nshards; i++)
            files += (int64_t)m->shards[i].nfiles;
        sv_job_set_totals(op->job, files, m->bytes);
        sv_job_set_done(op->job, files, m->bytes);
    }
    if (rc == 0) {
        char *mj = sv_manifest_to_json(m);
        char key[400];
        sv_manifest_key(op->collection, op->name, key);
        rc = mj ? sv_location_put(s->loc, key, mj, strlen(mj), err) : sv_snap_oom(err);
        free(mj);
    }
    sv_manifest_free(m);
    for (size_t i = 0; i < n; i++) {
        size_t k;
        json_t *sh;
        json_array_foreach(json_object_get(calls[i].reply, "shards"), k, sh) {
            const char *key = json_string_value(json_object_get(sh, "key"));
            if (key && !strncmp(key, "cuts/", 5))
                sv_snapshot_drop_dir(s, key, NULL);
        }
    }
    round_free(calls, n);
    if (rc) /* an owner that failed its upload keeps nothing either */
        abort_all(s, nodes, n, id, calls);
    sv_location_delete(s->loc, pk, NULL);
    int64_t now = sv_mono_ns();
    json_object_set_new(rec, "bytesUploaded", json_integer(uploaded));
    json_object_set_new(rec, "timings",
                        json_pack("{s:I,s:I,s:I,s:I}", "cutMs", (json_int_t)((t_cut - t0) / 1000000), "releaseMs",
                                  (json_int_t)((t_rel - t_cut) / 1000000), "uploadMs",
                                  (json_int_t)((t_up - t_rel) / 1000000), "totalMs",
                                  (json_int_t)((now - t0) / 1000000)));
    free(calls);
    free(nodes);
    return rc;

void_cut: /* every gate is open again, nothing of the cut is kept */
    abort_all(s, nodes, n, id, calls);
    sv_location_delete(s->loc, pk, NULL);
    free(calls);
    free(nodes);
    return rc;
}
