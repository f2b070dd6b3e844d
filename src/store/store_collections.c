/* store — collections: create, read, list, delete. */

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

/* ---- collections -------------------------------------------------------- */

json_t *store_collection_json(const collection *c)
{
    char *s = sv_schema_to_json(c->schema);
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    if (j)
        json_object_set_new(j, "createdAt", json_integer(c->created_at));
    return j;
}

static void new_uid(char uid[17])
{
    sv_uuid u;
    sv_uuid_v4(&u);
    for (int i = 0; i < 8; i++)
        snprintf(uid + 2 * i, 3, "%02x", u.b[i]);
}

/* Writes a new collection's record, its fixed shards' placement and its
 * tenants in one catalog transaction that fails if the name is taken. */
int store_persist_new_collection(sv_store *st, collection *c, sv_err *err)
{
    char *rec = store_coll_record(c);
    char key[256];
    snprintf(key, sizeof key, "collections/%s", c->name);
    bool mt = c->schema->multi_tenancy;
    sv_catalog_op *ops = calloc(c->nshards + 1, sizeof *ops);
    char (*skeys)[300] = calloc(c->nshards + 1, sizeof *skeys);
    char **vals = calloc(c->nshards + 1, sizeof *vals);
    sv_catalog_cond cond = {key, 0};
    size_t nops = 0;
    int rc = 0;
    if (!rec || !ops || !skeys || !vals) {
        rc = store_oom(err);
        goto done;
    }
    ops[nops++] = (sv_catalog_op){key, rec, strlen(rec), 0};
    for (size_t i = 0; i < c->nshards; i++) {
        if (mt) {
            snprintf(skeys[i], sizeof skeys[i], "tenants/%s/%s", c->name, c->shards[i]->name);
            vals[i] = store_tenant_record(c->shards[i]->name, c->shards[i]->status,
                                          c->shards[i]->node[0] ? c->shards[i]->node : st->node);
        } else {
            snprintf(skeys[i], sizeof skeys[i], "shards/%s/%s", c->name, c->shards[i]->name);
            json_t *pj = json_pack("{s:i,s:s}", "format_version", 1, "node",
                                   c->shards[i]->node[0] ? c->shards[i]->node : st->node);
            vals[i] = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
            json_decref(pj);
        }
        if (!vals[i]) {
            rc = store_oom(err);
            goto done;
        }
        ops[nops++] = (sv_catalog_op){skeys[i], vals[i], strlen(vals[i]), 0};
    }
    rc = sv_catalog_txn(st->cat, &cond, 1, ops, nops, err);
    if (rc == SV_ECONFLICT)
        rc = sv_fail(err, SV_EEXIST, "collection '%s' already exists", c->name);
done:
    for (size_t i = 0; vals && i < c->nshards; i++)
        free(vals[i]);
    free(vals);
    free(skeys);
    free(ops);
    free(rec);
    return rc;
}

/* With ddl_mu held: a new collection object for schema (not yet persisted
 * nor in the view), or SV_EEXIST if the name is taken. Takes schema (frees it
 * on failure). */
int store_new_collection_locked(sv_store *st, sv_schema *schema, collection **out, sv_err *err)
{
    return store_new_collection_uid_locked(st, schema, NULL, out, err);
}

int store_new_collection_uid_locked(sv_store *st, sv_schema *schema, const char *given_uid, collection **out,
                                    sv_err *err)
{
    collection *existing = store_coll_acquire(st, schema->name, strlen(schema->name));
    if (existing) {
        store_coll_release(st, existing);
        int rc = sv_fail(err, SV_EEXIST, "collection '%s' already exists", schema->name);
        sv_schema_free(schema);
        return rc;
    }
    char uid[17];
    if (given_uid)
        snprintf(uid, sizeof uid, "%s", given_uid);
    else
        new_uid(uid);
    *out = store_collection_new(st, schema->name, uid, sv_now_ms(), schema);
    if (!*out) {
        sv_schema_free(schema);
        return store_oom(err);
    }
    return 0;
}

ssize_t store_reserved_index(const sv_store *st, const char *name)
{
    for (size_t i = 0; i < st->nreserved; i++)
        if (strcmp(st->reserved[i], name) == 0)
            return (ssize_t)i;
    return -1;
}

void store_reserved_remove(sv_store *st, size_t i)
{
    free(st->reserved[i]);
    st->reserved[i] = st->reserved[--st->nreserved];
}

int sv_store_reserve_collection(sv_store *st, const char *name, sv_err *err)
{
    int rc = sv_check_collection_name(name, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&st->ddl_mu);
    collection *existing = store_coll_acquire(st, name, strlen(name));
    if (existing) {
        store_coll_release(st, existing);
        rc = sv_fail(err, SV_EEXIST, "collection '%s' already exists", name);
    } else if (store_reserved_index(st, name) >= 0) {
        rc = sv_fail(err, SV_EEXIST, "collection name '%s' is already reserved by a restore", name);
    } else {
        char **p = realloc(st->reserved, (st->nreserved + 1) * sizeof *p);
        char *copy = p ? strdup(name) : NULL;
        if (p)
            st->reserved = p;
        if (!copy)
            rc = store_oom(err);
        else
            st->reserved[st->nreserved++] = copy;
    }
    pthread_mutex_unlock(&st->ddl_mu);
    return rc;
}

void sv_store_unreserve_collection(sv_store *st, const char *name)
{
    pthread_mutex_lock(&st->ddl_mu);
    ssize_t i = name ? store_reserved_index(st, name) : -1;
    if (i >= 0)
        store_reserved_remove(st, (size_t)i);
    pthread_mutex_unlock(&st->ddl_mu);
}

int sv_store_create_collection(sv_store *st, const char *json, size_t len, json_t **out, sv_err *err)
{
    return sv_store_create_collection_ex(st, json, len, 0, out, err);
}

int sv_store_create_collection_ex(sv_store *st, const char *json, size_t len, unsigned flags, json_t **out,
                                  sv_err *err)
{
    sv_schema *schema = NULL;
    int rc = sv_schema_parse(json, len, &schema, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&st->ddl_mu);
    if (store_reserved_index(st, schema->name) >= 0) {
        pthread_mutex_unlock(&st->ddl_mu);
        rc = sv_fail(err, SV_EEXIST,
                     "collection '%s' is being created by a restore; wait for the restore to finish or choose "
                     "another name",
                     schema->name);
        sv_schema_free(schema);
        return rc;
    }
    collection *c;
    if ((rc = store_new_collection_locked(st, schema, &c, err)) != 0) {
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
    char (*nodes)[65] = c->schema->multi_tenancy ? NULL : calloc(c->nshards + 1, sizeof *nodes);
    if (!c->schema->multi_tenancy)
        rc = nodes ? store_place(st, c->nshards, flags, nodes, err) : store_oom(err);
    for (size_t i = 0; rc == 0 && nodes && i < c->nshards; i++)
        snprintf(c->shards[i]->node, sizeof c->shards[i]->node, "%s", nodes[i]);
    free(nodes);
    if (rc == 0)
        rc = store_persist_new_collection(st, c, err);
    if (rc == 0)
        rc = store_add_collection_to_view(st, c) ? store_oom(err) : 0;
    if (rc) {
        store_collection_free(st, c);
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
    pthread_mutex_unlock(&st->ddl_mu);
    sv_info("collection created", "collection=%s shards=%zu multi_tenancy=%s", c->name, c->nshards,
            c->schema->multi_tenancy ? "true" : "false");
    if (out)
        *out = store_collection_json(c);
    return 0;
}

int sv_store_get_collection(sv_store *st, const char *name, json_t **out, sv_err *err)
{
    collection *c;
    int rc = store_coll_get(st, name, &c, err);
    if (rc)
        return rc;
    *out = store_collection_json(c);
    store_coll_release(st, c);
    return *out ? 0 : store_oom(err);
}

int sv_store_schema(sv_store *st, const char *name, sv_schema **out, sv_err *err)
{
    collection *c;
    int rc = store_coll_get(st, name, &c, err);
    if (rc)
        return rc;
    *out = sv_schema_dup(c->schema);
    store_coll_release(st, c);
    return *out ? 0 : store_oom(err);
}

int sv_store_list_collections(sv_store *st, json_t **out, sv_err *err)
{
    json_t *arr = json_array();
    pthread_rwlock_rdlock(&st->lock);
    for (size_t i = 0; arr && i < st->ncolls; i++)
        json_array_append_new(arr, store_collection_json(st->colls[i]));
    pthread_rwlock_unlock(&st->lock);
    *out = json_pack("{s:o}", "collections", arr);
    return *out ? 0 : store_oom(err);
}

int sv_store_collection_names(sv_store *st, sv_collection_name **out, size_t *n, sv_err *err)
{
    pthread_rwlock_rdlock(&st->lock);
    *n = st->ncolls;
    *out = calloc(st->ncolls + 1, sizeof **out);
    for (size_t i = 0; *out && i < st->ncolls; i++)
        snprintf((*out)[i], sizeof **out, "%s", st->colls[i]->name);
    pthread_rwlock_unlock(&st->lock);
    if (!*out) {
        *n = 0;
        return store_oom(err);
    }
    return 0;
}

typedef struct key_list {
    char **keys;
    size_t n, cap;
} key_list;

static int collect_key(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    key_list *kl = ud;
    if (kl->n == kl->cap) {
        size_t cap = kl->cap ? kl->cap * 2 : 16;
        char **p = realloc(kl->keys, cap * sizeof *p);
        if (!p)
            return SV_ENOMEM;
        kl->keys = p;
        kl->cap = cap;
    }
    if (!(kl->keys[kl->n] = strdup(key)))
        return SV_ENOMEM;
    kl->n++;
    return 0;
}

static void key_list_free(key_list *kl)
{
    for (size_t i = 0; i < kl->n; i++)
        free(kl->keys[i]);
    free(kl->keys);
}

int sv_store_delete_collection(sv_store *st, const char *name, sv_err *err)
{
    int rc = sv_check_collection_name(name, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&st->ddl_mu);
    collection *c = store_coll_acquire(st, name, strlen(name));
    if (!c) {
        pthread_mutex_unlock(&st->ddl_mu);
        return sv_fail(err, SV_ENOTFOUND, "collection '%s' not found", name);
    }
    key_list kl = {0};
    char prefix[300];
    snprintf(prefix, sizeof prefix, "tenants/%s/", name);
    rc = sv_catalog_scan(st->cat, prefix, collect_key, &kl, err);
    snprintf(prefix, sizeof prefix, "shards/%s/", name);
    if (rc == 0)
        rc = sv_catalog_scan(st->cat, prefix, collect_key, &kl, err);
    snprintf(prefix, sizeof prefix, "collections/%s", name);
    if (rc == 0)
        rc = collect_key(prefix, NULL, 0, 0, &kl) ? store_oom(err) : 0;
    sv_catalog_op *ops = rc == 0 ? calloc(kl.n, sizeof *ops) : NULL;
    if (rc == 0 && !ops)
        rc = store_oom(err);
    for (size_t i = 0; rc == 0 && i < kl.n; i++)
        ops[i].key = kl.keys[i];
    if (rc == 0)
        rc = sv_catalog_txn(st->cat, NULL, 0, ops, kl.n, err);
    free(ops);
    key_list_free(&kl);
    if (rc) {
        store_coll_release(st, c);
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
    store_unview_collection(st, c);
    pthread_mutex_unlock(&st->ddl_mu);
    sv_info("collection deleted", "collection=%s", name);
    return 0;
}

void store_unview_collection(sv_store *st, collection *c)
{
    pthread_rwlock_wrlock(&st->lock);
    for (size_t i = 0; i < st->ncolls; i++) {
        if (st->colls[i] == c) {
            st->colls[i] = st->colls[--st->ncolls];
            break;
        }
    }
    pthread_rwlock_unlock(&st->lock);
    atomic_store(&c->deleted, true);
    /* Wait out every in-flight user of each shard, then close it. */
    pthread_rwlock_rdlock(&c->tenants_lock);
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = c->shards[i];
        pthread_rwlock_wrlock(&s->use);
        store_shard_close(st, s);
        bool moved = s->status == SHARD_OFFLOADED || s->status == SHARD_OFFLOADING || s->status == SHARD_ONLOADING ||
                     s->copy;
        pthread_rwlock_unlock(&s->use);
        /* Offloaded tenants: the mover drops its record and the location copy. */
        if (moved && st->mover.forget && store_shard_local(st, s))
            st->mover.forget(st->mover.self, c->name, s->name);
    }
    pthread_rwlock_unlock(&c->tenants_lock);
    pthread_mutex_lock(&st->tenant_mu); /* waiters on its tenants leave: deleted */
    pthread_cond_broadcast(&st->tenant_cv);
    pthread_mutex_unlock(&st->tenant_mu);
    char dir[1100];
    store_coll_dir(st, c, dir, sizeof dir);
    sv_err rmerr = {0};
    if (sv_rmtree(dir, &rmerr) != 0)
        sv_warn("collection directory not removed; it is removed at next start", "error=\"%s\"", rmerr.msg);
    store_coll_release(st, c); /* ours */
    store_coll_release(st, c); /* the view's */
}
