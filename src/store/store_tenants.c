/* store — tenants and shard listing. */

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    if (s && strcmp(s, "ACTIVE") == 0)
        *out = SHARD_ACTIVE;
    else if (s && strcmp(s, "INACTIVE") == 0)
        *out = SHARD_INACTIVE;
    else if (s && strcmp(s, "OFFLOADED") == 0)
        return sv_fail(err, SV_EUNSUPPORTED, "tenant status OFFLOADED is not supported yet; use ACTIVE or INACTIVE");
    else
        return sv_fail(err, SV_EINVAL, "tenant status must be \"ACTIVE\" or \"INACTIVE\"");
    return 0;
}

static json_t *tenants_array(json_t *body, sv_err *err)
{
    json_t *arr = json_is_object(body) ? json_object_get(body, "tenants") : NULL;
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        sv_fail(err, SV_EINVAL, "the body must be {\"tenants\": [...]} with at least one tenant");
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
static void shard_info(sv_store *st, const collection *c, shard *s, bool with_bytes, sv_shard_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", s->name);
    out->is_tenant = c->schema->multi_tenancy;
    int64_t objects = -1;
    pthread_rwlock_rdlock(&s->use);
    int status = s->status;
    if (s->db || (status == SHARD_ACTIVE && s->objects >= 0)) /* closed when idle: the count is still exact */
        objects = s->objects;
    pthread_rwlock_unlock(&s->use);
    if (objects < 0 && status == SHARD_ACTIVE) {
        if (store_shard_enter(st, c, s, NULL) == 0) {
            objects = s->objects;
            store_shard_leave(s);
        }
    }
    out->status = status == SHARD_ACTIVE ? SV_SHARD_ACTIVE : SV_SHARD_INACTIVE;
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
        else if ((rc = sv_check_tenant_name(name, err)) == 0)
            rc = parse_status(json_object_get(t, "status"), SHARD_ACTIVE, &statuses[i], err);
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(name, json_string_value(json_object_get(json_array_get(arr, j), "name"))) == 0)
                rc = sv_fail(err, SV_EINVAL, "tenant '%s' is listed twice", name);
    }
    pthread_mutex_lock(&st->ddl_mu);
    sv_catalog_cond *conds = calloc(n + 1, sizeof *conds);
    sv_catalog_op *ops = calloc(n + 1, sizeof *ops);
    char (*keys)[300] = calloc(n + 1, sizeof *keys);
    char **vals = calloc(n + 1, sizeof *vals);
    if (rc == 0 && (!conds || !ops || !keys || !vals))
        rc = store_oom(err);
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
        if (!(vals[i] = store_tenant_record(name, statuses[i])))
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

/* With ddl_mu held: persists then applies one tenant's status. The catalog
 * write requires the tenant's record to exist, so it never recreates one. */
static int set_tenant_status(sv_store *st, collection *c, shard *s, int status, sv_err *err)
{
    char key[300];
    snprintf(key, sizeof key, "tenants/%s/%s", c->name, s->name);
    char *val = store_tenant_record(s->name, status);
    if (!val)
        return store_oom(err);
    sv_catalog_cond cond = {key, -1};
    sv_catalog_op op = {key, val, strlen(val), 0};
    int rc = sv_catalog_txn(st->cat, &cond, 1, &op, 1, err);
    free(val);
    if (rc == SV_ECONFLICT)
        return sv_fail(err, SV_ENOTFOUND, "tenant '%s' not found in collection '%s'", s->name, c->name);
    if (rc)
        return rc;
    pthread_rwlock_wrlock(&s->use);
    s->status = status;
    if (status == SHARD_INACTIVE)
        store_shard_close(st, s); /* frees its memtables and cache share */
    pthread_rwlock_unlock(&s->use);
    sv_info("tenant status changed", "collection=%s tenant=%s status=%s", c->name, s->name,
            status == SHARD_ACTIVE ? "ACTIVE" : "INACTIVE");
    return 0;
}

int sv_store_update_tenants(sv_store *st, const char *collection_name, json_t *body, json_t **out, sv_err *err)
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
        else if (!json_object_get(t, "status"))
            rc = sv_fail(err, SV_EINVAL, "tenants[%zu] needs a \"status\" (ACTIVE or INACTIVE)", i);
        else
            rc = parse_status(json_object_get(t, "status"), SHARD_ACTIVE, &statuses[i], err);
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
                                                statuses[i] == SHARD_ACTIVE ? "ACTIVE" : "INACTIVE"));
    }
    pthread_mutex_unlock(&st->ddl_mu);
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
        store_shard_close(st, s);
        pthread_rwlock_unlock(&s->use);
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
    for (size_t i = 0; i < c->nshards; i++) {
        sv_shard_info info;
        shard_info(st, c, c->shards[i], false, &info);
        json_array_append_new(arr, shard_info_json(&info));
    }
    pthread_rwlock_unlock(&c->tenants_lock);
    store_coll_release(st, c);
    *out = json_pack("{s:o}", "tenants", arr);
    return *out ? 0 : store_oom(err);
}

int sv_store_shards(sv_store *st, const char *collection_name, sv_shard_info **out, size_t *n, sv_err *err)
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
        shard_info(st, c, c->shards[i], true, &infos[i]);
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
            json_object_set_new(j, "node", json_string(st->node));
        }
        json_array_append_new(arr, j);
    }
    free(infos);
    *out = json_pack("{s:o}", "shards", arr);
    return *out ? 0 : store_oom(err);
}
