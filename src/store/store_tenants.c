/* store — tenants and shard listing. */

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "store_internal.h"

/* ---- tenants ------------------------------------------------------------ */

static int parse_status(json_t *v, int dflt, int *out, sv_err *err)
{
    if (!v) {
        *out = dflt;
        return 0;
    }
    const char *s = json_string_value(v);
    int st = store_status_parse(s);
    if (st == SHARD_ACTIVE || st == SHARD_INACTIVE || st == SHARD_OFFLOADED) {
        *out = st;
        return 0;
    }
    return sv_fail(err, SV_EINVAL, "tenant status must be \"ACTIVE\", \"INACTIVE\" or \"OFFLOADED\"");
}

json_t *sv_store_tenants_body(json_t *body)
{
    json_t *arr = json_is_array(body) ? body : json_is_object(body) ? json_object_get(body, "tenants") : NULL;
    return json_is_array(arr) ? arr : NULL;
}

/* arr[i] names a tenant an earlier entry named: SV_EINVAL (a request
 * changes each tenant once). */
static int listed_before(json_t *arr, size_t i, const char *name, sv_err *err)
{
    for (size_t j = 0; j < i; j++) {
        const char *other = json_string_value(json_object_get(json_array_get(arr, j), "name"));
        if (other && !strcmp(name, other))
            return sv_fail(err, SV_EINVAL, "tenant '%s' is listed twice", name);
    }
    return 0;
}

static json_t *tenants_array(json_t *body, sv_err *err)
{
    json_t *arr = sv_store_tenants_body(body);
    if (!arr || json_array_size(arr) == 0) {
        sv_fail(err, SV_EINVAL, "the body must be a list of tenants, [...] or {\"tenants\": [...]}, with at least "
                "one tenant");
        return NULL;
    }
    return arr;
}

static int need_mt(const collection *c, sv_err *err)
{
    if (!c->schema->multi_tenancy)
        return sv_fail(err, SV_EINVAL,
                       "collection '%s' is not multi-tenant; create it with \"multiTenancy\": true to use tenants",
                       c->name);
    return 0;
}

/* One shard's introspection. An ACTIVE shard not yet open is opened to
 * count it; an INACTIVE one is never opened: objects -1 ("not loaded"). */
static void shard_info(sv_store *st, const collection *c, shard *s, bool with_bytes, bool count, sv_shard_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", s->name);
    snprintf(out->node, sizeof out->node, "%s", s->node[0] ? s->node : st->node);
    out->is_tenant = c->schema->multi_tenancy;
    out->local = store_shard_local(st, s);
    if (!out->local) { /* another node's: never opened here */
        pthread_rwlock_rdlock(&s->use);
        out->status = (sv_shard_status)s->status;
        pthread_rwlock_unlock(&s->use);
        out->objects = -1;
        return;
    }
    int64_t objects = -1;
    pthread_rwlock_rdlock(&s->use);
    int status = s->status;
    if (s->db || (status == SHARD_ACTIVE && s->objects >= 0)) /* closed when idle: the count is still exact */
        objects = s->objects;
    pthread_rwlock_unlock(&s->use);
    if (objects < 0 && status == SHARD_ACTIVE && count) {
        if (store_shard_enter(st, c, s, NULL) == 0) {
            objects = s->objects;
            store_shard_leave(s);
        }
    }
    out->status = (sv_shard_status)status; /* the same order as SHARD_* */
    if (objects < 0 && status != SHARD_ACTIVE && status != SHARD_INACTIVE)
        objects = s->objects; /* recorded at offload */
    out->objects = objects;
    if (with_bytes) {
        pthread_rwlock_rdlock(&s->use);
        int64_t bytes = s->db ? sv_db_disk_bytes(s->db) : sv_dir_bytes(s->dir);
        pthread_rwlock_unlock(&s->use);
        out->bytes = bytes > 0 ? bytes : 0;
    }
}

static json_t *shard_info_json(const sv_shard_info *info)
{
    json_t *j = json_pack("{s:s,s:s}", "name", info->name, "status", sv_shard_status_name(info->status));
    /* An INACTIVE tenant is not opened to count it: null says "not loaded". */
    if (j)
        json_object_set_new(j, "objects", info->objects >= 0 ? json_integer(info->objects) : json_null());
    return j;
}

const char *sv_shard_status_name(sv_shard_status status)
{
    switch (status) {
    case SV_SHARD_ACTIVE: return "ACTIVE";
    case SV_SHARD_INACTIVE: return "INACTIVE";
    case SV_SHARD_OFFLOADED: return "OFFLOADED";
    case SV_SHARD_OFFLOADING: return "OFFLOADING";
    case SV_SHARD_ONLOADING: return "ONLOADING";
    }
    return "UNKNOWN";
}

/* Acquires a multi-tenant collection and the body's "tenants" array (at
 * least one entry). On failure nothing is held. */
static int tenants_request(sv_store *st, const char *name, json_t *body, collection **c, json_t **arr, size_t *n,
                           sv_err *err)
{
    int rc = store_coll_get(st, name, c, err);
    if (rc)
        return rc;
    if ((rc = need_mt(*c, err)) == 0 && !(*arr = tenants_array(body, err)))
        rc = SV_EINVAL;
    if (rc) {
        store_coll_release(st, *c);
        return rc;
    }
    *n = json_array_size(*arr);
    return 0;
}

int sv_store_add_tenants(sv_store *st, const char *collection_name, json_t *body, json_t **out, sv_err *err)
{
    return sv_store_add_tenants_ex(st, collection_name, body, 0, out, err);
}

int sv_store_add_tenants_ex(sv_store *st, const char *collection_name, json_t *body, unsigned flags, json_t **out,
                            sv_err *err)
{
    collection *c;
    json_t *arr;
    size_t n;
    int rc = tenants_request(st, collection_name, body, &c, &arr, &n, err);
    if (rc)
        return rc;
    /* Validate everything first: a request adds all its tenants or none. */
    int *statuses = calloc(n + 1, sizeof *statuses);
    if (rc == 0 && !statuses)
        rc = store_oom(err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *t = json_array_get(arr, i);
        const char *name = json_is_object(t) ? json_string_value(json_object_get(t, "name")) : NULL;
        if (!name)
            rc = sv_fail(err, SV_EINVAL, "tenants[%zu] must be an object with a \"name\"", i);
        else if ((rc = sv_check_tenant_name(name, err)) == 0 &&
                 (rc = parse_status(json_object_get(t, "status"), SHARD_ACTIVE, &statuses[i], err)) == 0 &&
                 statuses[i] == SHARD_OFFLOADED)
            rc = sv_fail(err, SV_EINVAL, "a new tenant starts ACTIVE or INACTIVE; offload it once it exists");
        if (rc == 0)
            rc = listed_before(arr, i, name, err);
    }
    pthread_mutex_lock(&st->ddl_mu);
    sv_catalog_cond *conds = calloc(n + 1, sizeof *conds);
    sv_catalog_op *ops = calloc(n + 1, sizeof *ops);
    char (*keys)[300] = calloc(n + 1, sizeof *keys);
    char **vals = calloc(n + 1, sizeof *vals);
    char (*nodes)[65] = calloc(n + 1, sizeof *nodes);
    if (rc == 0 && (!conds || !ops || !keys || !vals || !nodes))
        rc = store_oom(err);
    if (rc == 0)
        rc = store_place(st, n, flags, nodes, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(arr, i), "name"));
        pthread_rwlock_rdlock(&c->tenants_lock);
        bool exists = store_find_tenant(c, name) != NULL;
        pthread_rwlock_unlock(&c->tenants_lock);
        if (exists) {
            rc = sv_fail(err, SV_EEXIST, "tenant '%s' already exists in collection '%s'", name, c->name);
            break;
        }
        snprintf(keys[i], sizeof keys[i], "tenants/%s/%s", c->name, name);
        if (!(vals[i] = store_tenant_record(name, statuses[i], nodes[i])))
            rc = store_oom(err);
        conds[i] = (sv_catalog_cond){keys[i], 0};
        ops[i] = (sv_catalog_op){keys[i], vals[i], vals[i] ? strlen(vals[i]) : 0, 0};
    }
    if (rc == 0)
        rc = sv_catalog_txn(st->cat, conds, n, ops, n, err);
    json_t *result = rc == 0 ? json_array() : NULL;
    char root[1100];
    store_coll_dir(st, c, root, sizeof root);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(arr, i), "name"));
        shard *s = store_shard_new(root, name, statuses[i]);
        if (s)
            snprintf(s->node, sizeof s->node, "%s", nodes[i]);
        pthread_rwlock_wrlock(&c->tenants_lock);
        int irc = s ? store_insert_tenant(c, s) : SV_ENOMEM;
        pthread_rwlock_unlock(&c->tenants_lock);
        if (irc) {
            store_shard_free(st, s);
            rc = store_oom(err);
            break;
        }
        json_array_append_new(result, json_pack("{s:s,s:s}", "name", name, "status",
                                                statuses[i] == SHARD_ACTIVE ? "ACTIVE" : "INACTIVE"));
    }
    pthread_mutex_unlock(&st->ddl_mu);
    for (size_t i = 0; vals && i < n; i++)
        free(vals[i]);
    free(vals);
    free(nodes);
    free(keys);
    free(ops);
    free(conds);
    free(statuses);
    store_coll_release(st, c);
    if (rc) {
        json_decref(result);
        return rc;
    }
    *out = json_pack("{s:o}", "tenants", result);
    return 0;
}

/* ---- the offload protocol -----------------------------------------------
 *
 * A tenant's status is persisted in its catalog record before memory
 * changes, and memory changes only under ddl_mu with s->use held for writing
 * (so a reader that entered the shard finishes first).
 *
 *   ACTIVE|INACTIVE --offload--> OFFLOADING --done ok--> OFFLOADED (local files removed after)
 *                                     \--done failed--> the previous status ("settle")
 *   OFFLOADED --onload--> ONLOADING --done ok--> ACTIVE|INACTIVE ("settle")
 *                                \--done failed--> OFFLOADED (partial files removed)
 *
 * Invariants:
 *  - the local directory of an OFFLOADING tenant is closed and unchanged
 *    until its offload ends (no reader opens a non-ACTIVE shard);
 *  - local files are removed only after OFFLOADED is durable, so a crash
 *    never loses the only copy; the location copy is never removed here;
 *  - after a crash, open settles OFFLOADING -> previous status (the local
 *    files are still whole) and ONLOADING -> OFFLOADED (partial files
 *    removed), and removes local files an OFFLOADED tenant left behind.
 * Waiters (reads with autoTenantActivation, ?wait=true) sleep on tenant_cv,
 * broadcast after every change. */

static int shard_status(shard *s)
{
    pthread_rwlock_rdlock(&s->use);
    int v = s->status;
    pthread_rwlock_unlock(&s->use);
    return v;
}

static bool transitional(int status) { return status == SHARD_OFFLOADING || status == SHARD_ONLOADING; }

static void tenant_broadcast(sv_store *st)
{
    pthread_mutex_lock(&st->tenant_mu);
    pthread_cond_broadcast(&st->tenant_cv);
    pthread_mutex_unlock(&st->tenant_mu);
}

/* Waits until s is not OFFLOADING/ONLOADING or until (ms since epoch);
 * *now gets the status seen last. */
static int tenant_wait(sv_store *st, const collection *c, shard *s, int64_t until, int *now, sv_err *err)
{
    pthread_mutex_lock(&st->tenant_mu);
    int v;
    while (transitional(v = shard_status(s)) && !s->deleted && !atomic_load(&((collection *)c)->deleted) &&
           sv_now_ms() < until) {
        int64_t left = until - sv_now_ms();
        if (left > 200)
            left = 200; /* re-check now and then: a deleted tenant wakes nobody */
        sv_cond_wait_ms(&st->tenant_cv, &st->tenant_mu, left);
    }
    pthread_mutex_unlock(&st->tenant_mu);
    *now = v;
    if (s->deleted || atomic_load(&((collection *)c)->deleted))
        return sv_fail(err, SV_ENOTFOUND, "tenant '%s' of collection '%s' was deleted", s->name, c->name);
    if (transitional(v))
        return sv_fail(err, SV_ETIMEOUT, "tenant '%s' of collection '%s' is still %s; its job goes on (GET /v1/jobs)",
                       s->name, c->name, store_status_word(v));
    return 0;
}

/* With ddl_mu held: the tenant's record as status (settle and objects kept
 * for the offload statuses). The write requires the record to exist, so it
 * never recreates a deleted tenant. */
static int persist_tenant(sv_store *st, const collection *c, shard *s, int status, int settle, sv_err *err)
{
    char key[300];
    snprintf(key, sizeof key, "tenants/%s/%s", c->name, s->name);
    bool offload = status != SHARD_ACTIVE && status != SHARD_INACTIVE;
    char *val = store_tenant_record_ex(s->name, status, transitional(status) ? settle : -1,
                                       offload ? (s->objects >= 0 ? s->objects : 0) : -1,
                                       s->node[0] ? s->node : st->node, s->copy);
    if (!val)
        return store_oom(err);
    sv_catalog_cond cond = {key, -1};
    sv_catalog_op op = {key, val, strlen(val), 0};
    int rc = sv_catalog_txn(st->cat, &cond, 1, &op, 1, err);
    free(val);
    if (rc == SV_ECONFLICT)
        return sv_fail(err, SV_ENOTFOUND, "tenant '%s' not found in collection '%s'", s->name, c->name);
    return rc;
}

static void apply_status(sv_store *st, shard *s, int status, int settle)
{
    pthread_rwlock_wrlock(&s->use);
    s->status = status;
    s->settle = settle;
    if (status != SHARD_ACTIVE)
        store_shard_close(st, s); /* frees its memtables and cache share; nobody reopens it */
    pthread_rwlock_unlock(&s->use);
    tenant_broadcast(st);
}

/* The exact object count of a closed tenant. */
static int64_t closed_count(sv_store *st, shard *s)
{
    if (s->objects >= 0)
        return s->objects;
    if (!sv_path_exists(s->dir))
        return 0;
    sv_db *db = NULL;
    sv_err e = {0};
    if (sv_db_open_readonly(st->engine, s->dir, &db, &e) != 0)
        return -1;
    int64_t n = store_read_count(db);
    sv_db_close(db);
    return n;
}

static void remove_local(const collection *c, shard *s)
{
    sv_err e = {0};
    if (sv_path_exists(s->dir) && sv_rmtree(s->dir, &e) != 0)
        sv_warn("tenant files not removed", "collection=%s tenant=%s error=\"%s\"", c->name, s->name, e.msg);
}

/* With ddl_mu held: ACTIVE|INACTIVE -> OFFLOADING, and the mover starts. */
static int begin_offload(sv_store *st, collection *c, shard *s, sv_err *err)
{
    if (!st->mover.offload)
        return sv_fail(err, SV_EUNSUPPORTED, "offloading tenants needs a location; this server has none configured");
    s->move_rc = 0; /* a new move: the last one's failure is history */
    s->move_reason[0] = 0;
    int prev = s->status;
    int rc = persist_tenant(st, c, s, SHARD_OFFLOADING, prev, err);
    if (rc)
        return rc;
    apply_status(st, s, SHARD_OFFLOADING, prev); /* closed: the directory is stable from here */
    s->objects = closed_count(st, s);
    if (s->objects < 0)
        rc = sv_fail(err, SV_EIO, "cannot read tenant '%s' to offload it", s->name);
    else
        rc = st->mover.offload(st->mover.self, c->name, s->name, s->dir, s->objects, err);
    if (rc) {
        sv_err e2 = {0};
        if (persist_tenant(st, c, s, prev, -1, &e2) == 0)
            apply_status(st, s, prev, prev);
        else
            sv_warn("tenant left OFFLOADING until restart", "collection=%s tenant=%s error=\"%s\"", c->name, s->name,
                    e2.msg);
        return rc;
    }
    sv_info("tenant offloading", "collection=%s tenant=%s objects=%lld", c->name, s->name, (long long)s->objects);
    return 0;
}

/* With ddl_mu held: OFFLOADED -> ONLOADING (to reach target), the mover starts. */
static int begin_onload(sv_store *st, const collection *c, shard *s, int target, sv_err *err)
{
    if (!st->mover.onload)
        return sv_fail(err, SV_EUNSUPPORTED, "onloading tenants needs a location; this server has none configured");
    s->move_rc = 0; /* a new move: the last one's failure is history */
    s->move_reason[0] = 0;
    int rc = persist_tenant(st, c, s, SHARD_ONLOADING, target, err);
    if (rc)
        return rc;
    apply_status(st, s, SHARD_ONLOADING, target);
    remove_local(c, s); /* stale files (none, normally) */
    rc = st->mover.onload(st->mover.self, c->name, s->name, s->dir, err);
    if (rc) {
        sv_err e2 = {0};
        if (persist_tenant(st, c, s, SHARD_OFFLOADED, -1, &e2) == 0)
            apply_status(st, s, SHARD_OFFLOADED, SHARD_OFFLOADED);
        return rc;
    }
    sv_info("tenant onloading", "collection=%s tenant=%s target=%s", c->name, s->name, store_status_word(target));
    return 0;
}

/* With ddl_mu held: persists then applies one tenant's requested status. */
static int set_tenant_status(sv_store *st, collection *c, shard *s, int status, sv_err *err)
{
    int cur = s->status;
    if (store_shard_moving(s))
        return sv_fail(err, SV_ECONFLICT, "tenant '%s' is moving to another node; change its status after the move "
                       "(GET /v1/jobs?kind=shard-move)", s->name);
    if (transitional(cur))
        return sv_fail(err, SV_ECONFLICT, "tenant '%s' is %s; wait until it is done (GET /v1/collections/%s/tenants)",
                       s->name, store_status_word(cur), c->name);
    if (cur == status)
        return 0;
    if (status == SHARD_OFFLOADED)
        return begin_offload(st, c, s, err);
    if (cur == SHARD_OFFLOADED)
        return begin_onload(st, c, s, status, err);
    int rc = persist_tenant(st, c, s, status, -1, err);
    if (rc)
        return rc;
    apply_status(st, s, status, status);
    sv_info("tenant status changed", "collection=%s tenant=%s status=%s", c->name, s->name, store_status_word(status));
    return 0;
}

void sv_store_set_tenant_mover(sv_store *st, const sv_tenant_mover *m)
{
    pthread_mutex_lock(&st->ddl_mu);
    if (m)
        st->mover = *m;
    else
        memset(&st->mover, 0, sizeof st->mover);
    pthread_mutex_unlock(&st->ddl_mu);
}

/* With ddl_mu held: the tenant, if it is in status want. */
static int find_moving(sv_store *st, const char *cname, const char *tname, int want, collection **cp, shard **sp,
                       sv_err *err)
{
    collection *c;
    int rc = store_coll_get(st, cname, &c, err);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&c->tenants_lock);
    shard *s = c->schema->multi_tenancy ? store_find_tenant(c, tname) : NULL;
    pthread_rwlock_unlock(&c->tenants_lock);
    if (!s || s->status != want) {
        store_coll_release(st, c);
        return sv_fail(err, s ? SV_ESTATE : SV_ENOTFOUND, "tenant '%s' of collection '%s' is %s", tname, cname,
                       s ? store_status_word(s->status) : "gone");
    }
    *cp = c;
    *sp = s;
    return 0;
}

int sv_store_offload_done(sv_store *st, const char *cname, const char *tname, int result, const char *reason,
                          sv_err *err)
{
    pthread_mutex_lock(&st->ddl_mu);
    collection *c;
    shard *s;
    int rc = find_moving(st, cname, tname, SHARD_OFFLOADING, &c, &s, err);
    if (rc == 0) {
        int to = result == 0 ? SHARD_OFFLOADED : s->settle;
        if (result == 0)
            s->copy = true; /* the manifest is in the location from here on */
        if ((rc = persist_tenant(st, c, s, to, -1, err)) == 0) {
            apply_status(st, s, to, to);
            if (to == SHARD_OFFLOADED) {
                sv_crash_point("offload:before_remove_local");
                remove_local(c, s);
                sv_info("tenant offloaded", "collection=%s tenant=%s", cname, tname);
            } else {
                sv_warn("tenant offload failed", "collection=%s tenant=%s status=%s reason=\"%s\"", cname, tname,
                        store_status_word(to), reason ? reason : "");
                s->move_rc = result;
                snprintf(s->move_reason, sizeof s->move_reason, "%.399s", reason ? reason : "");
            }
        }
        store_coll_release(st, c);
    }
    pthread_mutex_unlock(&st->ddl_mu);
    return rc;
}

int sv_store_onload_done(sv_store *st, const char *cname, const char *tname, int result, const char *reason,
                         sv_err *err)
{
    pthread_mutex_lock(&st->ddl_mu);
    collection *c;
    shard *s;
    int rc = find_moving(st, cname, tname, SHARD_ONLOADING, &c, &s, err);
    if (rc == 0) {
        int to = result == 0 ? s->settle : SHARD_OFFLOADED;
        char parent[1100];
        if (to != SHARD_OFFLOADED && sv_path_exists(s->dir) &&
            ((rc = store_fsync_dir(s->dir, err)) != 0 ||
             (store_parent_dir(s->dir, parent, sizeof parent) == 0 && (rc = store_fsync_dir(parent, err)) != 0)))
            to = SHARD_OFFLOADED;
        if (to == SHARD_OFFLOADED)
            remove_local(c, s);
        sv_crash_point("onload:before_settle");
        sv_err e2 = {0};
        int prc = persist_tenant(st, c, s, to, -1, &e2);
        if (prc == 0)
            apply_status(st, s, to, to);
        else if (rc == 0)
            rc = sv_fail(err, e2.code, "%s", e2.msg);
        if (prc == 0 && to == SHARD_OFFLOADED) {
            sv_warn("tenant onload failed", "collection=%s tenant=%s reason=\"%s\"", cname, tname,
                    reason ? reason : err->msg);
            s->move_rc = result ? result : rc ? rc : SV_EIO;
            snprintf(s->move_reason, sizeof s->move_reason, "%.399s", reason && reason[0] ? reason : err->msg);
        }
        else if (prc == 0)
            sv_info("tenant onloaded", "collection=%s tenant=%s status=%s", cname, tname, store_status_word(to));
        store_coll_release(st, c);
    }
    pthread_mutex_unlock(&st->ddl_mu);
    return rc;
}

/* The last offload's or onload's failure of s: its code (0: none) and, in
 * why, its reason (or where to look). */
static int move_failure(sv_store *st, shard *s, char *why, size_t n)
{
    pthread_mutex_lock(&st->ddl_mu);
    int mrc = s->move_rc;
    snprintf(why, n, "%s", s->move_reason[0] ? s->move_reason : "see GET /v1/jobs");
    pthread_mutex_unlock(&st->ddl_mu);
    return mrc;
}

int store_tenant_unavailable(sv_store *st, const collection *c, shard *s, int status, sv_err *err)
{
    if (!c->schema->auto_tenant_activation) {
        if (status == SHARD_OFFLOADED)
            return sv_fail(err, SV_ESTATE,
                           "tenant '%s' of collection '%s' is OFFLOADED (its files are in the location); bring it "
                           "back with PUT /v1/collections/%s/tenants {\"tenants\": [{\"name\": \"%s\", \"status\": "
                           "\"ACTIVE\"}]}, or create the collection with \"autoTenantActivation\": true",
                           s->name, c->name, c->name, s->name);
        return sv_fail(err, SV_ESTATE, "tenant '%s' of collection '%s' is %s; retry once it is done", s->name,
                       c->name, store_status_word(status));
    }
    int64_t until = sv_now_ms() + st->acquire_timeout_ms;
    bool started = false;
    for (;;) {
        int now;
        int rc = tenant_wait(st, c, s, until, &now, err);
        if (rc == SV_ETIMEOUT)
            return sv_fail(err, SV_EUNAVAIL,
                           "tenant '%s' of collection '%s' is still %s after %lld ms (SHARDVAULT_ACQUIRE_TIMEOUT); "
                           "retry later",
                           s->name, c->name, store_status_word(now), (long long)st->acquire_timeout_ms);
        if (rc)
            return rc;
        if (now != SHARD_OFFLOADED)
            return 0; /* the caller looks again */
        if (started) {
            /* the onload this read started failed: its code when it says
             * more than "retry" (507 for the cache quota) */
            char why[400];
            int mrc = move_failure(st, s, why, sizeof why);
            return sv_fail(err, mrc == SV_ENOSPACE ? SV_ENOSPACE : SV_EUNAVAIL,
                           "tenant '%s' of collection '%s' could not be onloaded: %s", s->name, c->name, why);
        }
        pthread_mutex_lock(&st->ddl_mu);
        if (!s->deleted && s->status == SHARD_OFFLOADED)
            rc = begin_onload(st, c, s, SHARD_ACTIVE, err);
        pthread_mutex_unlock(&st->ddl_mu);
        if (rc)
            return rc;
        started = true;
    }
}

int sv_store_adopt_offloaded_tenant(sv_store *st, const char *cname, const char *tname, int64_t objects, sv_err *err)
{
    int rc = sv_check_tenant_name(tname, err);
    collection *c;
    if (rc || (rc = store_coll_get(st, cname, &c, err)) != 0)
        return rc;
    if ((rc = need_mt(c, err)) != 0) {
        store_coll_release(st, c);
        return rc;
    }
    pthread_mutex_lock(&st->ddl_mu);
    pthread_rwlock_rdlock(&c->tenants_lock);
    shard *have = store_find_tenant(c, tname);
    pthread_rwlock_unlock(&c->tenants_lock);
    if (have) {
        if (have->status != SHARD_OFFLOADED)
            rc = sv_fail(err, SV_EEXIST, "tenant '%s' of collection '%s' exists (%s); the local one is kept", tname,
                         cname, store_status_word(have->status));
    } else {
        char key[300];
        snprintf(key, sizeof key, "tenants/%s/%s", c->name, tname);
        char *val = store_tenant_record_ex(tname, SHARD_OFFLOADED, -1, objects >= 0 ? objects : 0, st->node, true);
        sv_catalog_cond cond = {key, 0};
        sv_catalog_op op = {key, val, val ? strlen(val) : 0, 0};
        rc = val ? sv_catalog_txn(st->cat, &cond, 1, &op, 1, err) : store_oom(err);
        free(val);
        char root[1100];
        store_coll_dir(st, c, root, sizeof root);
        shard *s = rc == 0 ? store_shard_new(root, tname, SHARD_OFFLOADED) : NULL;
        if (rc == 0 && !s)
            rc = store_oom(err);
        if (s) {
            s->settle = SHARD_OFFLOADED;
            s->copy = true;
            s->objects = objects >= 0 ? objects : 0;
            pthread_rwlock_wrlock(&c->tenants_lock);
            int irc = store_insert_tenant(c, s);
            pthread_rwlock_unlock(&c->tenants_lock);
            if (irc) {
                store_shard_free(st, s);
                rc = store_oom(err);
            }
        }
        if (rc == 0)
            sv_info("offloaded tenant adopted", "collection=%s tenant=%s objects=%lld", cname, tname,
                    (long long)objects);
    }
    pthread_mutex_unlock(&st->ddl_mu);
    store_coll_release(st, c);
    return rc;
}

int64_t sv_store_acquire_timeout_ms(const sv_store *st) { return st->acquire_timeout_ms; }

int sv_store_tenant_status(sv_store *st, const char *cname, const char *tname, sv_shard_status *out, sv_err *err)
{
    collection *c;
    int rc = store_coll_get(st, cname, &c, err);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&c->tenants_lock);
    shard *s = c->schema->multi_tenancy ? store_find_tenant(c, tname) : NULL;
    pthread_rwlock_unlock(&c->tenants_lock);
    if (!s)
        rc = sv_fail(err, SV_ENOTFOUND, "tenant '%.64s' not found in collection '%s'", tname, cname);
    else
        *out = (sv_shard_status)shard_status(s);
    store_coll_release(st, c);
    return rc;
}

int store_reconcile_tenants(sv_store *st, sv_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&st->ddl_mu);
    for (size_t i = 0; rc == 0 && i < st->ncolls; i++) {
        collection *c = st->colls[i];
        if (!c->schema->multi_tenancy)
            continue;
        for (size_t j = 0; rc == 0 && j < c->nshards; j++) {
            shard *s = c->shards[j];
            /* Another node's tenant (its record names its owner) is settled by
             * that node, never by this one: its move may be running now. */
            if (s->node[0] && strcmp(s->node, st->node) != 0)
                continue;
            int to = s->status == SHARD_OFFLOADING ? s->settle : s->status == SHARD_ONLOADING ? SHARD_OFFLOADED : -1;
            if (to >= 0) {
                if (to == SHARD_OFFLOADED)
                    remove_local(c, s);
                if ((rc = persist_tenant(st, c, s, to, -1, err)) == 0) {
                    sv_warn("tenant settled after a restart", "collection=%s tenant=%s from=%s to=%s "
                            "reason=\"interrupted by restart\"", c->name, s->name, store_status_word(s->status),
                            store_status_word(to));
                    s->status = s->settle = to;
                }
            }
            if (s->status == SHARD_OFFLOADED)
                remove_local(c, s); /* a crash between OFFLOADED and the removal */
        }
    }
    pthread_mutex_unlock(&st->ddl_mu);
    return rc;
}

int sv_store_update_tenants(sv_store *st, const char *collection_name, json_t *body, json_t **out, sv_err *err)
{
    return sv_store_update_tenants_wait(st, collection_name, body, 0, out, err);
}

int sv_store_update_tenants_wait(sv_store *st, const char *collection_name, json_t *body, int64_t wait_ms,
                                 json_t **out, sv_err *err)
{
    collection *c;
    json_t *arr;
    size_t n;
    int rc = tenants_request(st, collection_name, body, &c, &arr, &n, err);
    if (rc)
        return rc;
    int *statuses = calloc(n + 1, sizeof *statuses);
    shard **targets = calloc(n + 1, sizeof *targets);
    if (rc == 0 && (!statuses || !targets))
        rc = store_oom(err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *t = json_array_get(arr, i);
        const char *name = json_is_object(t) ? json_string_value(json_object_get(t, "name")) : NULL;
        if (!name)
            rc = sv_fail(err, SV_EINVAL, "tenants[%zu] must be an object with a \"name\" and a \"status\"", i);
        else if ((rc = sv_check_tenant_name(name, err)) != 0)
            ;
        else if (!json_object_get(t, "status"))
            rc = sv_fail(err, SV_EINVAL, "tenants[%zu] needs a \"status\" (ACTIVE, INACTIVE or OFFLOADED)", i);
        else
            rc = parse_status(json_object_get(t, "status"), SHARD_ACTIVE, &statuses[i], err);
        if (rc == 0)
            rc = listed_before(arr, i, name, err);
    }
    STORE_HOOK("update_tenants:before_lock", c->name);
    pthread_mutex_lock(&st->ddl_mu);
    /* The lookup is under the DDL lock: a tenant deleted meanwhile is not
     * found, rather than written back to the catalog by this update. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(arr, i), "name"));
        pthread_rwlock_rdlock(&c->tenants_lock);
        targets[i] = store_find_tenant(c, name);
        pthread_rwlock_unlock(&c->tenants_lock);
        if (!targets[i])
            rc = sv_fail(err, SV_ENOTFOUND, "tenant '%.64s' not found in collection '%s'", name, c->name);
    }
    json_t *result = rc == 0 ? json_array() : NULL;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        shard *s = targets[i];
        if ((rc = set_tenant_status(st, c, s, statuses[i], err)) != 0)
            break;
        json_array_append_new(result, json_pack("{s:s,s:s}", "name", s->name, "status",
                                                store_status_word(s->status)));
    }
    pthread_mutex_unlock(&st->ddl_mu);
    if (rc == 0 && wait_ms > 0) {
        int64_t until = sv_now_ms() + wait_ms;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            int now = SHARD_ACTIVE;
            rc = tenant_wait(st, c, targets[i], until, &now, err);
            json_object_set_new(json_array_get(result, i), "status", json_string(store_status_word(now)));
            if (rc == 0 && now != statuses[i]) {
                /* the move failed and the tenant went back: the caller asked
                 * for statuses[i] and must not read a 200 as that */
                shard *s = targets[i];
                char why[400];
                int mrc = move_failure(st, s, why, sizeof why);
                /* the move's own code when it says what to do (507 quota,
                 * 409 a location guard, 503 retry), else 500 */
                bool telling = mrc == SV_ENOSPACE || mrc == SV_ECONFLICT || mrc == SV_EUNAVAIL || mrc == SV_ESTATE;
                rc = sv_fail(err, telling ? mrc : SV_EIO,
                             "tenant '%s' did not become %s, it is %s: the %s failed: %s", s->name,
                             store_status_word(statuses[i]), store_status_word(now),
                             statuses[i] == SHARD_OFFLOADED ? "offload" : "onload", why);
            }
        }
    }
    free(statuses);
    free(targets);
    store_coll_release(st, c);
    if (rc) {
        json_decref(result);
        return rc;
    }
    *out = json_pack("{s:o}", "tenants", result);
    return 0;
}

int sv_store_delete_tenants(sv_store *st, const char *collection_name, json_t *body, sv_err *err)
{
    collection *c;
    json_t *arr;
    size_t n;
    int rc = tenants_request(st, collection_name, body, &c, &arr, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = json_string_value(json_array_get(arr, i));
        if (!name)
            rc = sv_fail(err, SV_EINVAL, "tenants[%zu] must be a tenant name (a string)", i);
        else
            rc = sv_check_tenant_name(name, err);
    }
    pthread_mutex_lock(&st->ddl_mu);
    /* A tenant moving between the disk and the location is deleted once the
     * move is done, all or none of the request's: its job would otherwise
     * finish for a tenant deleted (or deleted and created again) meanwhile,
     * and leave the location's copy to a name that no longer owns it. The
     * statuses change only under ddl_mu, held from here to the deletions. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = json_string_value(json_array_get(arr, i));
        pthread_rwlock_rdlock(&c->tenants_lock);
        shard *s = store_find_tenant(c, name);
        int cur = s ? s->status : SHARD_ACTIVE;
        pthread_rwlock_unlock(&c->tenants_lock);
        if (transitional(cur))
            rc = sv_fail(err, SV_ECONFLICT, "tenant '%s' is %s; delete it once that is done (GET "
                         "/v1/collections/%s/tenants); nothing was deleted", name, store_status_word(cur), c->name);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = json_string_value(json_array_get(arr, i));
        char key[300];
        snprintf(key, sizeof key, "tenants/%s/%s", c->name, name);
        pthread_rwlock_wrlock(&c->tenants_lock);
        shard *s = store_find_tenant(c, name);
        if (!s) {
            pthread_rwlock_unlock(&c->tenants_lock);
            continue; /* deleting a missing tenant is not an error (idempotent) */
        }
        rc = sv_catalog_delete(st->cat, key, err);
        if (rc) {
            pthread_rwlock_unlock(&c->tenants_lock);
            break;
        }
        shard **dead = realloc(c->dead, (c->ndead + 1) * sizeof *dead);
        if (!dead) {
            pthread_rwlock_unlock(&c->tenants_lock);
            rc = store_oom(err);
            break;
        }
        c->dead = dead;
        c->dead[c->ndead++] = s;
        for (size_t j = 0; j < c->nshards; j++) {
            if (c->shards[j] == s) {
                memmove(c->shards + j, c->shards + j + 1, (c->nshards - j - 1) * sizeof *c->shards);
                c->nshards--;
                break;
            }
        }
        pthread_rwlock_unlock(&c->tenants_lock);
        /* Requests that resolved s before removal hold its read lock. */
        pthread_rwlock_wrlock(&s->use);
        s->deleted = true;
        bool moved = s->status == SHARD_OFFLOADED || transitional(s->status) || s->copy;
        store_shard_close(st, s);
        pthread_rwlock_unlock(&s->use);
        tenant_broadcast(st); /* waiters on it leave: deleted */
        if (moved && st->mover.forget && store_shard_local(st, s))
            st->mover.forget(st->mover.self, c->name, name);
        sv_err rmerr = {0};
        if (sv_rmtree(s->dir, &rmerr) != 0)
            sv_warn("tenant directory not removed", "error=\"%s\"", rmerr.msg);
        sv_info("tenant deleted", "collection=%s tenant=%s", c->name, name);
    }
    pthread_mutex_unlock(&st->ddl_mu);
    store_coll_release(st, c);
    return rc;
}

int sv_store_list_tenants(sv_store *st, const char *collection_name, json_t **out, sv_err *err)
{
    collection *c;
    int rc = store_coll_get(st, collection_name, &c, err);
    if (rc)
        return rc;
    if ((rc = need_mt(c, err)) != 0) {
        store_coll_release(st, c);
        return rc;
    }
    json_t *arr = json_array();
    pthread_rwlock_rdlock(&c->tenants_lock);
    bool placed = sv_store_placement_on(st);
    for (size_t i = 0; i < c->nshards; i++) {
        sv_shard_info info;
        shard_info(st, c, c->shards[i], false, true, &info);
        json_t *j = shard_info_json(&info);
        if (j && placed)
            json_object_set_new(j, "node", json_string(info.node));
        json_array_append_new(arr, j);
    }
    pthread_rwlock_unlock(&c->tenants_lock);
    store_coll_release(st, c);
    *out = json_pack("{s:o}", "tenants", arr);
    return *out ? 0 : store_oom(err);
}

int sv_store_shards(sv_store *st, const char *collection_name, sv_shard_info **out, size_t *n, sv_err *err)
{
    return sv_store_shards_ex(st, collection_name, SV_SHARDS_COUNT | SV_SHARDS_BYTES, out, n, err);
}

int sv_store_shards_ex(sv_store *st, const char *collection_name, unsigned flags, sv_shard_info **out, size_t *n,
                       sv_err *err)
{
    *out = NULL;
    *n = 0;
    collection *c;
    int rc = store_coll_get(st, collection_name, &c, err);
    if (rc)
        return rc;
    /* The shard set cannot change while tenants_lock is held for reading. */
    pthread_rwlock_rdlock(&c->tenants_lock);
    sv_shard_info *infos = calloc(c->nshards + 1, sizeof *infos);
    size_t count = infos ? c->nshards : 0;
    for (size_t i = 0; i < count; i++)
        shard_info(st, c, c->shards[i], flags & SV_SHARDS_BYTES, flags & SV_SHARDS_COUNT, &infos[i]);
    pthread_rwlock_unlock(&c->tenants_lock);
    store_coll_release(st, c);
    if (!infos)
        return store_oom(err);
    *out = infos;
    *n = count;
    return 0;
}

int sv_store_list_shards(sv_store *st, const char *collection_name, json_t **out, sv_err *err)
{
    sv_shard_info *infos;
    size_t n;
    int rc = sv_store_shards(st, collection_name, &infos, &n, err);
    if (rc)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *j = shard_info_json(&infos[i]);
        if (j) {
            json_object_set_new(j, "bytes", json_integer(infos[i].bytes));
            json_object_set_new(j, "node", json_string(infos[i].node));
        }
        json_array_append_new(arr, j);
    }
    free(infos);
    *out = json_pack("{s:o}", "shards", arr);
    return *out ? 0 : store_oom(err);
}
