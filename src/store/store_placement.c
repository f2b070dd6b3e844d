/* store — placement across nodes: which node owns each shard, and keeping
 * this node's view of collections and tenants made by other nodes current.
 * See docs/cluster.md ("Placement"). */

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_internal.h"

bool store_shard_local(const sv_store *st, const shard *s)
{
    return !atomic_load((atomic_bool *)&st->placement) || !s->node[0] || !strcmp(s->node, st->node);
}

int store_not_local(const sv_store *st, const collection *c, const shard *s, sv_err *err)
{
    return sv_fail(err, SV_EUNAVAIL,
                   "%s %s of collection '%s' is served by node %s, not by this node (%s); send the request through "
                   "the cluster's API (any node forwards it to the owner)",
                   c->schema->multi_tenancy ? "tenant" : "shard", s->name, c->name, s->node, st->node);
}

int store_place(sv_store *st, size_t n, unsigned flags, char (*out)[65], sv_err *err)
{
    if ((flags & SV_STORE_PLACE_HERE) || !atomic_load(&st->placement) || !st->placer.place) {
        for (size_t i = 0; i < n; i++)
            snprintf(out[i], sizeof out[i], "%s", st->node);
        return 0;
    }
    return n ? st->placer.place(st->placer.self, n, out, err) : 0;
}

void sv_store_set_placer(sv_store *st, const sv_store_placer *p)
{
    pthread_mutex_lock(&st->ddl_mu);
    st->placer = *p;
    atomic_store(&st->placement, true);
    pthread_mutex_unlock(&st->ddl_mu);
}

bool sv_store_placement_on(const sv_store *st) { return atomic_load((atomic_bool *)&st->placement); }

const char *sv_store_node(const sv_store *st) { return st->node; }

/* ---- keeping the view current ------------------------------------------------ */

static int apply_locked(sv_store *st, const char *key, const char *val, size_t len, sv_err *err);

/* With ddl_mu held: the collection as the catalog has it now. */
static int sync_locked(sv_store *st, const char *name, sv_err *err)
{
    char key[300];
    snprintf(key, sizeof key, "collections/%s", name);
    char *val = NULL;
    size_t len = 0;
    int rc = sv_catalog_get(st->cat, key, &val, &len, NULL, err);
    if (rc == SV_ENOTFOUND)
        return apply_locked(st, key, NULL, 0, err);
    if (rc)
        return rc;
    rc = apply_locked(st, key, val, len, err);
    free(val);
    return rc;
}

typedef struct tenant_scan {
    sv_store *st;
    sv_err *err;
} tenant_scan;

static int apply_scanned(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    tenant_scan *ts = ud;
    return apply_locked(ts->st, key, val, len, ts->err);
}

/* Moves a tenant out of the view (its record is gone): as a delete does. */
static void drop_tenant(sv_store *st, collection *c, shard *s)
{
    pthread_rwlock_wrlock(&c->tenants_lock);
    shard **dead = realloc(c->dead, (c->ndead + 1) * sizeof *dead);
    if (!dead) { /* keep it listed; the next re-list tries again */
        pthread_rwlock_unlock(&c->tenants_lock);
        return;
    }
    c->dead = dead;
    c->dead[c->ndead++] = s;
    for (size_t j = 0; j < c->nshards; j++)
        if (c->shards[j] == s) {
            memmove(c->shards + j, c->shards + j + 1, (c->nshards - j - 1) * sizeof *c->shards);
            c->nshards--;
            break;
        }
    pthread_rwlock_unlock(&c->tenants_lock);
    bool local = store_shard_local(st, s);
    pthread_rwlock_wrlock(&s->use);
    s->deleted = true;
    store_shard_close(st, s);
    pthread_rwlock_unlock(&s->use);
    pthread_mutex_lock(&st->tenant_mu);
    pthread_cond_broadcast(&st->tenant_cv);
    pthread_mutex_unlock(&st->tenant_mu);
    if (local) {
        sv_err rmerr = {0};
        if (sv_rmtree(s->dir, &rmerr) != 0)
            sv_warn("tenant directory not removed", "error=\"%s\"", rmerr.msg);
    }
    sv_info("tenant deleted by another node", "collection=%s tenant=%s", c->name, s->name);
}

static int apply_tenant(sv_store *st, const char *key, const char *val, size_t len, sv_err *err)
{
    const char *cname = key + strlen("tenants/");
    const char *slash = strchr(cname, '/');
    if (!slash || sv_check_tenant_name(slash + 1, NULL) != 0)
        return 0;
    collection *c = store_coll_acquire(st, cname, (size_t)(slash - cname));
    if (!c) {
        if (!val)
            return 0;
        char name[130];
        snprintf(name, sizeof name, "%.*s", (int)((size_t)(slash - cname) > 128 ? 128 : slash - cname), cname);
        return sync_locked(st, name, err); /* loads its tenants too */
    }
    int rc = 0;
    if (!c->schema->multi_tenancy)
        goto done;
    pthread_rwlock_rdlock(&c->tenants_lock);
    shard *s = store_find_tenant(c, slash + 1);
    pthread_rwlock_unlock(&c->tenants_lock);
    if (!val) {
        if (s)
            drop_tenant(st, c, s);
        goto done;
    }
    json_t *rec = json_loadb(val, len, 0, NULL);
    int status = store_status_parse(rec ? json_string_value(json_object_get(rec, "status")) : NULL);
    const char *node = json_string_value(json_object_get(rec, "node"));
    json_t *objects = json_object_get(rec, "objects");
    if (status < 0 || (node && strlen(node) > 64)) {
        json_decref(rec);
        sv_warn("malformed tenant record ignored", "key=%s", key);
        goto done;
    }
    if (!s) {
        char root[1100];
        store_coll_dir(st, c, root, sizeof root);
        shard *ns = store_shard_new(root, slash + 1, status);
        if (ns) {
            snprintf(ns->node, sizeof ns->node, "%s", node ? node : "");
            if (json_is_integer(objects))
                ns->objects = json_integer_value(objects);
            if (status == SHARD_ACTIVE || status == SHARD_INACTIVE)
                ns->objects = -1;
        }
        pthread_rwlock_wrlock(&c->tenants_lock);
        bool raced = store_find_tenant(c, slash + 1) != NULL;
        int irc = !ns ? SV_ENOMEM : raced ? 0 : store_insert_tenant(c, ns);
        pthread_rwlock_unlock(&c->tenants_lock);
        if (irc || raced)
            store_shard_free(st, ns);
        if (irc)
            rc = store_oom(err);
    } else if (!s->node[0] && node && *node) {
        /* A record from before placement, just claimed by a node (see
         * cluster.c claim_unplaced): it is that node's from now on. */
        pthread_rwlock_wrlock(&s->use);
        snprintf(s->node, sizeof s->node, "%s", node);
        if (strcmp(node, st->node))
            store_shard_close(st, s);
        pthread_rwlock_unlock(&s->use);
    } else if (!store_shard_local(st, s)) {
        /* Another node's tenant: mirror its status (its owner applies it). */
        pthread_rwlock_wrlock(&s->use);
        s->status = status;
        if (node)
            snprintf(s->node, sizeof s->node, "%s", node);
        if (json_is_integer(objects))
            s->objects = json_integer_value(objects);
        pthread_rwlock_unlock(&s->use);
    }
    /* This node's own tenant: it applied the change itself. */
    json_decref(rec);
done:
    store_coll_release(st, c);
    return rc;
}

static int apply_locked(sv_store *st, const char *key, const char *val, size_t len, sv_err *err)
{
    if (!strncmp(key, "tenants/", 8))
        return apply_tenant(st, key, val, len, err);
    if (!strncmp(key, "shards/", 7))
        return store_apply_shard_record(st, key, val, len, err);
    if (strncmp(key, "collections/", 12) || sv_check_collection_name(key + 12, NULL) != 0)
        return 0;
    const char *name = key + 12;
    collection *c = store_coll_acquire(st, name, strlen(name));
    if (!val) {
        if (c) {
            sv_info("collection deleted by another node", "collection=%s", name);
            store_unview_collection(st, c);
        }
        return 0;
    }
    json_t *rec = json_loadb(val, len, 0, NULL);
    const char *uid = json_string_value(json_object_get(rec, "uid"));
    bool same = c && uid && !strcmp(uid, c->uid);
    json_decref(rec);
    if (same) { /* known: pick up tenants it may not have yet */
        bool mt = c->schema->multi_tenancy;
        store_coll_release(st, c);
        if (!mt)
            return 0;
        char prefix[300];
        snprintf(prefix, sizeof prefix, "tenants/%s/", name);
        tenant_scan ts = {st, err};
        return sv_catalog_scan(st->cat, prefix, apply_scanned, &ts, err);
    }
    if (c) /* dropped and created again elsewhere: the old one is gone */
        store_unview_collection(st, c);
    int rc = store_load_collection(st, key, val, len, err);
    if (rc == 0)
        sv_info("collection created by another node", "collection=%s", name);
    return rc;
}

int sv_store_apply_record(sv_store *st, const char *key, const char *val, size_t len, sv_err *err)
{
    pthread_mutex_lock(&st->ddl_mu);
    int rc = apply_locked(st, key, val, len, err);
    pthread_mutex_unlock(&st->ddl_mu);
    return rc;
}

int sv_store_sync_collection(sv_store *st, const char *name, sv_err *err)
{
    int rc = sv_check_collection_name(name, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&st->ddl_mu);
    rc = sync_locked(st, name, err);
    pthread_mutex_unlock(&st->ddl_mu);
    return rc;
}

/* ---- owners ------------------------------------------------------------------- */

static int collection_nodes(sv_store *st, collection *c, char (**out)[65], size_t *n, sv_err *err);

/* The collection, looked up in the catalog when this view lacks it. */
static int coll_synced(sv_store *st, const char *name, collection **out, sv_err *err)
{
    *out = store_coll_acquire(st, name, strlen(name));
    if (!*out && atomic_load(&st->placement) && sv_check_collection_name(name, NULL) == 0) {
        int rc = sv_store_sync_collection(st, name, err); /* 0 also when the catalog has none */
        if (rc)
            return rc; /* e.g. the catalog is unreachable: not "not found" */
        *out = store_coll_acquire(st, name, strlen(name));
    }
    if (!*out)
        return sv_fail(err, SV_ENOTFOUND, "collection '%.128s' not found", name);
    return 0;
}

static const char *owner_of(const sv_store *st, const shard *s) { return s->node[0] ? s->node : st->node; }

int sv_store_owner(sv_store *st, const char *collection_name, const char *tenant, const char *id, char node[65],
                   char shard_out[72], sv_err *err)
{
    sv_uuid u = {{0}};
    int rc = id ? store_parse_uuid_arg(id, &u, err) : 0;
    if (rc)
        return rc;
    collection *c;
    if ((rc = coll_synced(st, collection_name, &c, err)) != 0)
        return rc;
    if (!id && !c->schema->multi_tenancy) {
        store_coll_release(st, c);
        return sv_fail(err, SV_EINVAL, "an object id is needed to find its shard");
    }
    size_t tlen = tenant ? strlen(tenant) : 0;
    shard *s = NULL;
    rc = store_route(c, &u, tenant, tlen, &s, err);
    if (rc == SV_ENOTFOUND && atomic_load(&st->placement)) { /* a tenant another node just added */
        store_coll_release(st, c);
        if ((rc = sv_store_sync_collection(st, collection_name, err)) != 0)
            return rc;
        if ((rc = coll_synced(st, collection_name, &c, err)) != 0)
            return rc;
        rc = store_route(c, &u, tenant, tlen, &s, err);
    }
    if (rc == 0) {
        snprintf(node, 65, "%s", owner_of(st, s));
        if (shard_out)
            snprintf(shard_out, 72, "%s", s->name);
    }
    store_coll_release(st, c);
    return rc;
}

int sv_store_owner_nodes(sv_store *st, const char *collection_name, const char *tenant, char (**out)[65], size_t *n,
                         sv_err *err)
{
    *out = NULL;
    *n = 0;
    collection *c;
    int rc = coll_synced(st, collection_name, &c, err);
    if (rc)
        return rc;
    if (c->schema->multi_tenancy || (tenant && *tenant)) {
        bool mt = c->schema->multi_tenancy;
        store_coll_release(st, c);
        if (!mt)
            return sv_fail(err, SV_EINVAL, "collection '%s' is not multi-tenant; remove ?tenant=", collection_name);
        if (!(*out = calloc(1, sizeof **out)))
            return store_oom(err);
        if ((rc = sv_store_owner(st, collection_name, tenant, NULL, (*out)[0], NULL, err)) != 0) {
            free(*out);
            *out = NULL;
            return rc;
        }
        *n = 1;
        return 0;
    }
    return collection_nodes(st, c, out, n, err);
}

int sv_store_collection_nodes(sv_store *st, const char *collection_name, char (**out)[65], size_t *n, sv_err *err)
{
    *out = NULL;
    *n = 0;
    collection *c;
    int rc = coll_synced(st, collection_name, &c, err);
    return rc ? rc : collection_nodes(st, c, out, n, err);
}

/* Releases c. */
static int collection_nodes(sv_store *st, collection *c, char (**out)[65], size_t *n, sv_err *err)
{
    pthread_rwlock_rdlock(&c->tenants_lock);
    if (!(*out = calloc(c->nshards + 1, sizeof **out))) {
        pthread_rwlock_unlock(&c->tenants_lock);
        store_coll_release(st, c);
        return store_oom(err);
    }
    for (size_t i = 0; i < c->nshards; i++) {
        const char *o = owner_of(st, c->shards[i]);
        size_t k = 0;
        while (k < *n && strcmp((*out)[k], o) < 0)
            k++;
        if (k < *n && !strcmp((*out)[k], o))
            continue;
        memmove(*out + k + 1, *out + k, (*n - k) * sizeof **out);
        snprintf((*out)[k], sizeof **out, "%s", o);
        (*n)++;
    }
    pthread_rwlock_unlock(&c->tenants_lock);
    store_coll_release(st, c);
    return 0;
}

void sv_store_count_placed(sv_store *st, const char (*nodes)[65], int64_t *counts, size_t n)
{
    pthread_rwlock_rdlock(&st->lock);
    for (size_t i = 0; i < st->ncolls; i++) {
        collection *c = st->colls[i];
        pthread_rwlock_rdlock(&c->tenants_lock);
        for (size_t k = 0; k < c->nshards; k++) {
            const char *o = owner_of(st, c->shards[k]);
            for (size_t m = 0; m < n; m++)
                if (!strcmp(nodes[m], o)) {
                    counts[m]++;
                    break;
                }
        }
        pthread_rwlock_unlock(&c->tenants_lock);
    }
    pthread_rwlock_unlock(&st->lock);
}
