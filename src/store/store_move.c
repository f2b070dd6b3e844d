/* store — the store's part of a shard move (docs/cluster.md "Shard moves"):
 * a per-shard write gate and the ownership switch in one catalog
 * transaction. The cluster module's mover copies the files.
 *
 * Gate invariants (all under gate_mu):
 *  - a write enters a shard only while its gate is open (s->writers counts
 *    the writes inside); sv_store_move_fence closes the gate and returns once
 *    writers is 0, so a checkpoint taken then holds every acknowledged write;
 *  - a write that meets a closed gate waits at most SV_STORE_MOVE_HOLD_MS;
 *    the gate opens either after the switch (s->node names the new owner
 *    first, so the waiting write fails over with SV_EUNAVAIL naming it) or
 *    when the move is abandoned (the write goes on here). */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;

/* Waits (gate_mu held) until no write is inside any of sel[0..n), at most
 * ms; the writes still inside after that. */
static int drain_locked(shard *const *sel, size_t n, int64_t ms)
{
    int64_t until_ns = sv_mono_ns() + ms * 1000000;
    for (size_t i = 0; i < n; i++)
        while (sel[i]->writers > 0) {
            int64_t left = (until_ns - sv_mono_ns()) / 1000000;
            if (left <= 0 || sv_cond_wait_ms(&gate_cv, &gate_mu, left) == ETIMEDOUT)
                break;
        }
    int busy = 0;
    for (size_t i = 0; i < n; i++)
        busy += sel[i]->writers;
    return busy;
}

static bool cut_closed(const shard *s) { return s->cut_until && sv_mono_ns() < s->cut_until; }

int store_write_enter(sv_store *st, const collection *c, shard *s, sv_err *err)
{
    pthread_mutex_lock(&gate_mu);
    if (s->gate_closed || cut_closed(s)) {
        /* A cut gate opens by itself at cut_until (at most
         * SV_STORE_CUT_HOLD_MS): the write waits and goes on. A move's gate
         * is waited for at most SV_STORE_MOVE_HOLD_MS. */
        int64_t until_ns = sv_mono_ns() + (int64_t)SV_STORE_MOVE_HOLD_MS * 1000000;
        for (;;) {
            int64_t now = sv_mono_ns();
            if (cut_closed(s)) {
                sv_cond_wait_ms(&gate_cv, &gate_mu, (s->cut_until - now) / 1000000 + 1);
                continue;
            }
            if (!s->gate_closed || now >= until_ns)
                break;
            sv_cond_wait_ms(&gate_cv, &gate_mu, (until_ns - now) / 1000000 + 1);
        }
        if (s->gate_closed) {
            pthread_mutex_unlock(&gate_mu);
            return sv_fail(err, SV_EUNAVAIL,
                           "writes to %s %s of collection '%s' are held while it moves to another node, and the move "
                           "did not finish within %d s; retry the write",
                           c->schema->multi_tenancy ? "tenant" : "shard", s->name, c->name,
                           SV_STORE_MOVE_HOLD_MS / 1000);
        }
    }
    s->writers++;
    pthread_mutex_unlock(&gate_mu);
    int rc = store_shard_enter(st, c, s, err);
    if (rc) {
        pthread_mutex_lock(&gate_mu);
        if (--s->writers == 0)
            pthread_cond_broadcast(&gate_cv);
        pthread_mutex_unlock(&gate_mu);
    }
    return rc;
}

void store_write_leave(shard *s)
{
    store_shard_leave(s);
    pthread_mutex_lock(&gate_mu);
    if (--s->writers == 0)
        pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

/* ---- a cluster snapshot's cut (docs/cluster.md "Cluster-wide snapshot") ----------
 * Every local shard of the collection at once: the gates close, the writes
 * inside drain, and the gates stay closed until sv_store_cut_open with the
 * same token, or at most SV_STORE_CUT_HOLD_MS after the close (a vanished
 * coordinator never blocks writes for longer). */

static uint64_t cut_next_token = 1;

/* The local shards of c (tenants_lock read-held by the caller). */
static size_t local_shards(sv_store *st, collection *c, shard **sel)
{
    size_t n = 0;
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = c->shards[i];
        pthread_rwlock_rdlock(&s->use);
        bool mine = store_shard_local(st, s) && !s->deleted;
        pthread_rwlock_unlock(&s->use);
        if (mine)
            sel[n++] = s;
    }
    return n;
}

int sv_store_cut_close(sv_store *st, const char *cname, int64_t drain_ms, uint64_t *token, size_t *nshards,
                       sv_err *err)
{
    collection *c;
    int rc = store_coll_get(st, cname, &c, err);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&c->tenants_lock);
    shard **sel = calloc(c->nshards + 1, sizeof *sel);
    size_t n = sel ? local_shards(st, c, sel) : 0;
    pthread_rwlock_unlock(&c->tenants_lock);
    if (!sel) {
        store_coll_release(st, c);
        return store_oom(err);
    }
    pthread_mutex_lock(&gate_mu);
    /* One cut of a collection at a time: a second one would reopen the
     * first one's gates (one token per shard) in the middle of its cut. */
    for (size_t i = 0; i < n; i++)
        if (cut_closed(sel[i])) {
            pthread_mutex_unlock(&gate_mu);
            free(sel);
            rc = sv_fail(err, SV_ECONFLICT,
                         "another snapshot of collection '%s' is taking its cut on this node; retry in a moment",
                         c->name);
            store_coll_release(st, c);
            return rc;
        }
    uint64_t tok = cut_next_token++;
    int64_t until = sv_mono_ns() + (int64_t)SV_STORE_CUT_HOLD_MS * 1000000;
    for (size_t i = 0; i < n; i++) {
        sel[i]->cut_until = until;
        sel[i]->cut_token = tok;
    }
    /* The drain: every write that entered before the close has finished
     * (so it is acknowledged before, and in, the checkpoint). */
    int busy = drain_locked(sel, n, drain_ms);
    if (busy) {
        for (size_t i = 0; i < n; i++)
            if (sel[i]->cut_token == tok)
                sel[i]->cut_until = 0;
        pthread_cond_broadcast(&gate_cv);
        rc = sv_fail(err, SV_ETIMEOUT, "%d write(s) to collection '%s' were still running %lld ms after its writes were held",
                     busy, c->name, (long long)drain_ms);
    }
    pthread_mutex_unlock(&gate_mu);
    free(sel);
    store_coll_release(st, c);
    if (rc == 0) {
        *token = tok;
        if (nshards)
            *nshards = n;
    }
    return rc;
}

int sv_store_cut_open(sv_store *st, const char *cname, uint64_t token, bool *expired)
{
    if (expired)
        *expired = false;
    collection *c = store_coll_acquire(st, cname, strlen(cname));
    if (!c)
        return SV_ENOTFOUND;
    pthread_rwlock_rdlock(&c->tenants_lock);
    pthread_mutex_lock(&gate_mu);
    int64_t now = sv_mono_ns();
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = c->shards[i];
        if (s->cut_token != token || !s->cut_until)
            continue;
        if (expired && now >= s->cut_until)
            *expired = true;
        s->cut_until = 0;
    }
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    pthread_rwlock_unlock(&c->tenants_lock);
    store_coll_release(st, c);
    return 0;
}

bool sv_store_cut_covers(sv_store *st, const char *cname, uint64_t token, const char *const *names, size_t n)
{
    collection *c = store_coll_acquire(st, cname, strlen(cname));
    if (!c)
        return false;
    bool ok = true;
    pthread_rwlock_rdlock(&c->tenants_lock);
    pthread_mutex_lock(&gate_mu);
    for (size_t k = 0; k < n && ok; k++) {
        shard *found = NULL;
        for (size_t i = 0; i < c->nshards && !found; i++)
            if (!strcmp(c->shards[i]->name, names[k]))
                found = c->shards[i];
        ok = found && found->cut_token == token && cut_closed(found);
    }
    pthread_mutex_unlock(&gate_mu);
    pthread_rwlock_unlock(&c->tenants_lock);
    store_coll_release(st, c);
    return ok;
}

/* ---- finding the shard -------------------------------------------------------- */

/* The collection (read from the catalog when this view lacks it) and its
 * shard `name`; *cp acquired on success. */
static int find_shard(sv_store *st, const char *cname, const char *name, collection **cp, shard **sp, sv_err *err)
{
    int rc = sv_check_collection_name(cname, err);
    if (rc)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        collection *c = store_coll_acquire(st, cname, strlen(cname));
        shard *s = NULL;
        if (c && c->schema->multi_tenancy) {
            pthread_rwlock_rdlock(&c->tenants_lock);
            s = store_find_tenant(c, name);
            pthread_rwlock_unlock(&c->tenants_lock);
        } else if (c) {
            for (size_t i = 0; i < c->nshards && !s; i++)
                if (!strcmp(c->shards[i]->name, name))
                    s = c->shards[i];
        }
        if (s) {
            *cp = c;
            *sp = s;
            return 0;
        }
        if (c && !c->schema->multi_tenancy) { /* fixed shards never change */
            size_t n = c->nshards;
            store_coll_release(st, c);
            return sv_fail(err, SV_ENOTFOUND,
                           "collection '%s' has no shard '%.72s' (it has shard0000 to shard%04zu; GET "
                           "/v1/collections/%s/shards lists them)",
                           cname, name, n ? n - 1 : 0, cname);
        }
        store_coll_release(st, c);
        if (attempt == 0 && atomic_load(&st->placement) && (rc = sv_store_sync_collection(st, cname, err)) != 0)
            return rc;
        if (!atomic_load(&st->placement))
            break;
    }
    collection *c = store_coll_acquire(st, cname, strlen(cname));
    if (!c)
        return sv_fail(err, SV_ENOTFOUND, "collection '%.128s' not found", cname);
    store_coll_release(st, c);
    return sv_fail(err, SV_ENOTFOUND, "tenant '%.72s' not found in collection '%s'", name, cname);
}

int sv_store_shard_node(sv_store *st, const char *cname, const char *name, char node[65], bool *is_tenant,
                        sv_err *err)
{
    collection *c;
    shard *s;
    int rc = find_shard(st, cname, name, &c, &s, err);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&s->use);
    snprintf(node, 65, "%s", s->node[0] && atomic_load(&st->placement) ? s->node : st->node);
    pthread_rwlock_unlock(&s->use);
    if (is_tenant)
        *is_tenant = c->schema->multi_tenancy;
    store_coll_release(st, c);
    return 0;
}

/* ---- the source ------------------------------------------------------------------ */

int sv_store_move_begin(sv_store *st, const char *cname, const char *name, sv_err *err)
{
    collection *c;
    shard *s;
    int rc = find_shard(st, cname, name, &c, &s, err);
    if (rc)
        return rc;
    const char *what = c->schema->multi_tenancy ? "tenant" : "shard";
    pthread_mutex_lock(&st->ddl_mu); /* against tenant status changes */
    pthread_rwlock_rdlock(&s->use);
    if (!store_shard_local(st, s))
        rc = store_not_local(st, c, s, err);
    else if (s->deleted)
        rc = sv_fail(err, SV_ENOTFOUND, "tenant '%s' of collection '%s' was deleted", s->name, c->name);
    else if (s->status != SHARD_ACTIVE)
        rc = sv_fail(err, SV_ESTATE,
                     "tenant '%s' of collection '%s' is %s; only an ACTIVE tenant can move (set it ACTIVE first)",
                     s->name, c->name, store_status_word(s->status));
    pthread_rwlock_unlock(&s->use);
    if (rc == 0) {
        pthread_mutex_lock(&gate_mu);
        if (s->moving)
            rc = sv_fail(err, SV_ECONFLICT, "%s %s of collection '%s' is moving already (GET /v1/jobs?kind=shard-move)",
                         what, s->name, c->name);
        else
            s->moving = true;
        pthread_mutex_unlock(&gate_mu);
    }
    pthread_mutex_unlock(&st->ddl_mu);
    store_coll_release(st, c);
    return rc;
}

int sv_store_move_checkpoint(sv_store *st, const char *cname, const char *name, const char *dst, int64_t *objects,
                             sv_err *err)
{
    collection *c;
    shard *s;
    int rc = find_shard(st, cname, name, &c, &s, err);
    if (rc)
        return rc;
    if ((rc = store_shard_enter(st, c, s, err)) == 0) {
        /* The count and the checkpoint at one point: no write runs while
         * write_mu is held. */
        pthread_mutex_lock(&s->write_mu);
        rc = sv_db_checkpoint(s->db, dst, err);
        if (objects)
            *objects = s->objects;
        pthread_mutex_unlock(&s->write_mu);
        store_shard_leave(s);
    }
    store_coll_release(st, c);
    return rc;
}

int sv_store_move_fence(sv_store *st, const char *cname, const char *name, int64_t drain_ms, sv_err *err)
{
    collection *c;
    shard *s;
    int rc = find_shard(st, cname, name, &c, &s, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&gate_mu);
    s->gate_closed = true;
    int n = drain_locked(&s, 1, drain_ms);
    if (n) {
        s->gate_closed = false;
        pthread_cond_broadcast(&gate_cv);
        rc = sv_fail(err, SV_ETIMEOUT, "%d write(s) to %s %s were still running %lld ms after its writes were held",
                     n, c->schema->multi_tenancy ? "tenant" : "shard", s->name, (long long)drain_ms);
    }
    pthread_mutex_unlock(&gate_mu);
    store_coll_release(st, c);
    return rc;
}

/* The move is over: the gate opens and the shard may move again. */
static void move_release(shard *s)
{
    pthread_mutex_lock(&gate_mu);
    s->gate_closed = false;
    s->moving = false;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

bool store_shard_moving(shard *s)
{
    pthread_mutex_lock(&gate_mu);
    bool moving = s->moving;
    pthread_mutex_unlock(&gate_mu);
    return moving;
}

void sv_store_move_finish(sv_store *st, const char *cname, const char *name)
{
    collection *c;
    shard *s;
    if (find_shard(st, cname, name, &c, &s, NULL) != 0)
        return;
    move_release(s);
    pthread_rwlock_rdlock(&s->use);
    bool gone = !store_shard_local(st, s);
    pthread_rwlock_unlock(&s->use);
    sv_err rmerr = {0};
    if (gone && sv_rmtree(s->dir, &rmerr) != 0)
        sv_warn("the moved shard's local copy was not removed", "dir=%s error=\"%s\"", s->dir, rmerr.msg);
    store_coll_release(st, c);
}

void sv_store_move_end(sv_store *st, const char *cname, const char *name)
{
    collection *c;
    shard *s;
    if (find_shard(st, cname, name, &c, &s, NULL) != 0)
        return;
    move_release(s);
    store_coll_release(st, c);
}

static void placement_key(const collection *c, const shard *s, char key[300])
{
    snprintf(key, 300, "%s/%s/%s", c->schema->multi_tenancy ? "tenants" : "shards", c->name, s->name);
}

/* The owner a placement record names ("" when it names none). */
static void record_node(const char *val, size_t len, char node[65])
{
    json_t *rec = json_loadb(val, len, 0, NULL);
    snprintf(node, 65, "%.64s", json_string_value(json_object_get(rec, "node")) ? json_string_value(json_object_get(rec, "node")) : "");
    json_decref(rec);
}

/* With ddl_mu held, after the switch committed: this view follows. */
static void switched_locked(sv_store *st, collection *c, shard *s, const char *to)
{
    sv_crash_point("move:switched"); /* tests: the switch committed, nothing else done */
    /* The new owner in this view; the gate stays closed until
     * sv_store_move_finish (the mover tells the target first). Reads fail
     * over from here on. */
    pthread_rwlock_wrlock(&s->use);
    snprintf(s->node, sizeof s->node, "%s", to);
    store_shard_close(st, s);
    pthread_rwlock_unlock(&s->use);
    sv_info("shard moved", "collection=%s shard=%s to=%s", c->name, s->name, to);
}

/* Settles a switch whose transaction's outcome is unknown: *switched if the
 * record names `to`; otherwise the record is written back unchanged,
 * conditioned on the revision just read, so the lost transaction (conditioned
 * on an older one) can never apply later. 0 once settled; an error while the
 * catalog does not answer. Caller holds ddl_mu. */
static int settle_switch(sv_store *st, const char *key, const char *to, bool *switched, sv_err *err)
{
    *switched = false;
    for (int tries = 0; tries < 5; tries++) {
        char *v = NULL, now[65] = "";
        size_t l = 0;
        int64_t rev = 0;
        int rc = sv_catalog_get(st->cat, key, &v, &l, &rev, err);
        if (rc == SV_ENOTFOUND)
            return 0; /* deleted meanwhile: nothing to switch */
        if (rc)
            return rc;
        record_node(v, l, now);
        if (!strcmp(now, to)) {
            free(v);
            *switched = true;
            return 0;
        }
        sv_catalog_cond cond = {key, rev};
        sv_catalog_op op = {key, v, l, 0};
        rc = sv_catalog_txn(st->cat, &cond, 1, &op, 1, err);
        free(v);
        if (rc != SV_ECONFLICT)
            return rc; /* 0: fenced, not switched */
    }
    return sv_fail(err, SV_EUNAVAIL, "the placement record %s keeps changing", key);
}

int sv_store_move_resolve(sv_store *st, const char *cname, const char *name, const char *to, bool *switched,
                          sv_err *err)
{
    *switched = false;
    collection *c;
    shard *s;
    int rc = find_shard(st, cname, name, &c, &s, err);
    if (rc)
        return rc;
    char key[300];
    placement_key(c, s, key);
    pthread_mutex_lock(&st->ddl_mu);
    rc = settle_switch(st, key, to, switched, err);
    if (rc == 0 && *switched && store_shard_local(st, s))
        switched_locked(st, c, s, to);
    pthread_mutex_unlock(&st->ddl_mu);
    store_coll_release(st, c);
    return rc;
}

int sv_store_move_switch(sv_store *st, const char *cname, const char *name, const char *to, bool *unknown,
                         sv_err *err)
{
    *unknown = false;
    collection *c;
    shard *s;
    int rc = find_shard(st, cname, name, &c, &s, err);
    if (rc)
        return rc;
    char key[300];
    placement_key(c, s, key);
    /* Not during a cluster snapshot's cut: the new owner has no cut gate, so
     * a write acknowledged there could be missing from the snapshot while a
     * later one on a node that closed later is in it. A cut gate opens at
     * its release or by itself within SV_STORE_CUT_HOLD_MS: the switch waits
     * for that (the move's own gate holds the writes meanwhile) rather than
     * failing the move. */
    pthread_mutex_lock(&gate_mu);
    for (int64_t now = sv_mono_ns(); cut_closed(s); now = sv_mono_ns())
        sv_cond_wait_ms(&gate_cv, &gate_mu, (s->cut_until - now) / 1000000 + 1);
    pthread_mutex_unlock(&gate_mu);
    pthread_mutex_lock(&st->ddl_mu);
    char *val = NULL;
    size_t len = 0;
    int64_t rev = 0;
    rc = sv_catalog_get(st->cat, key, &val, &len, &rev, err);
    json_t *rec = rc == 0 ? json_loadb(val, len, 0, NULL) : NULL;
    const char *cur = json_string_value(json_object_get(rec, "node"));
    if (rc == 0 && (!json_is_object(rec) || !cur || strcmp(cur, st->node)))
        rc = sv_fail(err, SV_ECONFLICT, "the placement record %s names node %s, not this node (%s): nothing switched",
                     key, cur ? cur : "(none)", st->node);
    char *nval = NULL;
    if (rc == 0) {
        json_object_set_new(rec, "node", json_string(to));
        if (!(nval = json_dumps(rec, JSON_COMPACT)))
            rc = store_oom(err);
    }
    if (rc == 0) {
        sv_catalog_cond cond = {key, rev};
        sv_catalog_op op = {key, nval, strlen(nval), 0};
        rc = sv_catalog_txn(st->cat, &cond, 1, &op, 1, err);
        if (rc && rc != SV_ECONFLICT) { /* unknown outcome: settled by the record */
            bool sw = false;
            sv_err e2 = {0};
            int g = settle_switch(st, key, to, &sw, &e2);
            if (g == 0 && sw)
                rc = 0;
            else if (g != 0)
                *unknown = true; /* sv_store_move_resolve decides once the catalog answers */
        }
    }
    free(nval);
    json_decref(rec);
    free(val);
    if (rc == 0)
        switched_locked(st, c, s, to);
    pthread_mutex_unlock(&st->ddl_mu);
    store_coll_release(st, c);
    return rc;
}

/* ---- the target and every other node --------------------------------------------- */

int sv_store_move_target_dir(sv_store *st, const char *cname, const char *name, char dir[1024], sv_err *err)
{
    collection *c;
    shard *s;
    int rc = find_shard(st, cname, name, &c, &s, err);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&s->use);
    if (store_shard_local(st, s))
        rc = sv_fail(err, SV_ECONFLICT, "%s %s of collection '%s' is this node's already",
                     c->schema->multi_tenancy ? "tenant" : "shard", s->name, c->name);
    else
        snprintf(dir, 1024, "%s", s->dir);
    pthread_rwlock_unlock(&s->use);
    store_coll_release(st, c);
    return rc;
}

int sv_store_dir_objects(sv_store *st, const char *dir, int64_t *objects, sv_err *err)
{
    sv_db *db = NULL;
    int rc = sv_db_open_readonly(st->engine, dir, &db, err);
    if (rc)
        return rc;
    *objects = store_read_count(db);
    sv_db_close(db);
    return 0;
}

int store_apply_shard_record(sv_store *st, const char *key, const char *val, size_t len, sv_err *err)
{
    (void)err;
    const char *cname = key + strlen("shards/");
    const char *slash = strchr(cname, '/');
    if (!val || !slash)
        return 0; /* a collection's records go with it (collections/ says) */
    collection *c = store_coll_acquire(st, cname, (size_t)(slash - cname));
    if (!c)
        return 0;
    char node[65];
    record_node(val, len, node);
    for (size_t i = 0; node[0] && !c->schema->multi_tenancy && i < c->nshards; i++) {
        shard *s = c->shards[i];
        if (strcmp(s->name, slash + 1) || !strcmp(s->node, node))
            continue;
        pthread_rwlock_wrlock(&s->use);
        bool was_local = store_shard_local(st, s);
        snprintf(s->node, sizeof s->node, "%s", node);
        if (was_local && !store_shard_local(st, s))
            store_shard_close(st, s);
        pthread_rwlock_unlock(&s->use);
        sv_info("shard owner changed", "collection=%s shard=%s node=%s", c->name, s->name, node);
    }
    store_coll_release(st, c);
    return 0;
}

int sv_store_refresh_shard(sv_store *st, const char *cname, const char *name, sv_err *err)
{
    collection *c;
    shard *s;
    int rc = find_shard(st, cname, name, &c, &s, err);
    if (rc)
        return rc;
    char key[300];
    placement_key(c, s, key);
    store_coll_release(st, c);
    char *val = NULL;
    size_t len = 0;
    if ((rc = sv_catalog_get(st->cat, key, &val, &len, NULL, err)) != 0)
        return rc;
    rc = sv_store_apply_record(st, key, val, len, err);
    free(val);
    return rc;
}
