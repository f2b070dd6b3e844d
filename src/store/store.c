/* store — shards, collections in memory, routing, catalog records, open/close. */

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "engine.h"

#include "store_internal.h"

/* See store_internal.h. */
const char STORE_COUNT_KEY[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
                               "count";

void (*store_test_hook)(const char *point, const char *arg);

int store_fsync_dir(const char *path, sv_err *err)
{
    STORE_HOOK("fsync_dir", path);
    return sv_fsync_dir(path, err);
}

int store_parent_dir(const char *path, char *out, size_t n)
{
    if ((size_t)snprintf(out, n, "%s", path) >= n)
        return SV_EINVAL;
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/')
        out[--len] = '\0';
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == out)
        out[1] = '\0';
    else
        *slash = '\0';
    return 0;
}

int store_oom(sv_err *err) { return sv_fail(err, SV_ENOMEM, "out of memory"); }

shard *store_shard_new(const char *dir_root, const char *name, int status)
{
    shard *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->dir, sizeof s->dir, "%s/%s", dir_root, name);
    s->status = status;
    s->objects = -1;
    pthread_rwlock_init(&s->use, NULL);
    pthread_mutex_init(&s->write_mu, NULL);
    return s;
}

/* ---- the open-shard bound --------------------------------------------------------
 * Invariants: a shard is in st->open exactly while s->db is open; s->db only
 * changes under s->use held for writing; st->open_mu is never held while
 * waiting for a shard's lock (victims are taken with trywrlock), so no lock
 * order between shards exists. */

static void open_list_remove(sv_store *st, shard *s)
{
    pthread_mutex_lock(&st->open_mu);
    for (size_t i = 0; s->in_open && i < st->nopen; i++)
        if (st->open[i] == s) {
            st->open[i] = st->open[--st->nopen];
            s->in_open = false;
        }
    pthread_mutex_unlock(&st->open_mu);
}

/* Closes least recently used idle shards (not keep) until at most max_open
 * are open. A shard in use is skipped; it is closed by a later pass. */
static void close_idle(sv_store *st, const shard *keep)
{
    for (int guard = 0; guard < 64; guard++) {
        shard *victim = NULL;
        pthread_mutex_lock(&st->open_mu);
        if ((int64_t)st->nopen > st->max_open) {
            uint64_t best = UINT64_MAX;
            size_t vi = 0;
            for (size_t i = 0; i < st->nopen; i++) {
                shard *c = st->open[i];
                uint64_t u = atomic_load_explicit(&c->last_use, memory_order_relaxed);
                if (c != keep && u < best && pthread_rwlock_trywrlock(&c->use) == 0) {
                    if (victim)
                        pthread_rwlock_unlock(&victim->use);
                    victim = c;
                    best = u;
                    vi = i;
                }
            }
            if (victim) {
                st->open[vi] = st->open[--st->nopen];
                victim->in_open = false;
            }
        }
        pthread_mutex_unlock(&st->open_mu);
        if (!victim)
            return;
        if (victim->db) { /* the count stays valid: nothing writes a closed shard */
            sv_db_close(victim->db);
            victim->db = NULL;
            victim->bulk = false;
            store_fresh_drop(victim);
            atomic_fetch_sub(&st->shards_open, 1);
            atomic_fetch_add(&st->idle_closes, 1);
        }
        pthread_rwlock_unlock(&victim->use);
    }
}

void store_shard_close(sv_store *st, shard *s)
{
    if (s->db) {
        open_list_remove(st, s);
        sv_db_close(s->db);
        s->db = NULL;
        s->bulk = false;
        store_fresh_drop(s);
        atomic_fetch_sub(&st->shards_open, 1);
    }
}

void store_shard_free(sv_store *st, shard *s)
{
    if (!s)
        return;
    store_shard_close(st, s); /* drops the fresh record with the db */
    pthread_rwlock_destroy(&s->use);
    pthread_mutex_destroy(&s->write_mu);
    free(s);
}

void store_collection_free(sv_store *st, collection *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nshards; i++)
        store_shard_free(st, c->shards[i]);
    free(c->shards);
    for (size_t i = 0; i < c->ndead; i++)
        store_shard_free(st, c->dead[i]);
    free(c->dead);
    sv_schema_free(c->schema);
    pthread_rwlock_destroy(&c->tenants_lock);
    free(c->name);
    free(c);
}

void store_coll_dir(sv_store *st, const collection *c, char *out, size_t n)
{
    snprintf(out, n, "%s/shards/%s", st->data_dir, c->uid);
}

collection *store_coll_acquire(sv_store *st, const char *name, size_t len)
{
    collection *found = NULL;
    pthread_rwlock_rdlock(&st->lock);
    for (size_t i = 0; i < st->ncolls; i++) {
        collection *c = st->colls[i];
        if (strlen(c->name) == len && memcmp(c->name, name, len) == 0) {
            atomic_fetch_add(&c->refs, 1);
            found = c;
            break;
        }
    }
    pthread_rwlock_unlock(&st->lock);
    return found;
}

void store_coll_release(sv_store *st, collection *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1 && atomic_load(&c->deleted))
        store_collection_free(st, c);
}

int store_coll_get(sv_store *st, const char *name, collection **out, sv_err *err)
{
    *out = store_coll_acquire(st, name, strlen(name));
    if (!*out)
        return sv_fail(err, SV_ENOTFOUND, "collection '%.128s' not found", name);
    return 0;
}

int64_t store_read_count(sv_db *db)
{
    char *v = NULL;
    size_t n = 0;
    int64_t count = 0;
    if (sv_db_get(db, STORE_COUNT_KEY, STORE_COUNT_KEY_LEN, &v, &n, NULL) == 0 && n == 8)
        memcpy(&count, v, 8);
    free(v);
    return count;
}

/* Returns with s->use read-locked and s->db open, or an error (unlocked). */
int store_shard_enter(sv_store *st, const collection *c, shard *s, sv_err *err)
{
    for (;;) {
        pthread_rwlock_rdlock(&s->use);
        if (s->deleted) {
            pthread_rwlock_unlock(&s->use);
            return sv_fail(err, SV_ENOTFOUND, "tenant '%s' of collection '%s' was deleted", s->name, c->name);
        }
        if (s->status == SHARD_INACTIVE) {
            pthread_rwlock_unlock(&s->use);
            return sv_fail(err, SV_ESTATE,
                           "tenant '%s' of collection '%s' is INACTIVE; set its status to ACTIVE "
                           "(PUT /v1/collections/%s/tenants) to read or write it",
                           s->name, c->name, c->name);
        }
        if (atomic_load(&c->deleted)) {
            pthread_rwlock_unlock(&s->use);
            return sv_fail(err, SV_ENOTFOUND, "collection '%s' was deleted", c->name);
        }
        if (!store_shard_local(st, s)) {
            pthread_rwlock_unlock(&s->use);
            return store_not_local(st, c, s, err);
        }
        if (s->status != SHARD_ACTIVE) { /* offloaded, or moving */
            int status = s->status;
            pthread_rwlock_unlock(&s->use);
            int rc = store_tenant_unavailable(st, c, s, status, err);
            if (rc)
                return rc;
            continue;
        }
        if (s->db) {
            atomic_store_explicit(&s->last_use, atomic_fetch_add_explicit(&st->tick, 1, memory_order_relaxed),
                                  memory_order_relaxed);
            return 0;
        }
        pthread_rwlock_unlock(&s->use);
        pthread_rwlock_wrlock(&s->use);
        int rc = 0;
        bool opened = false;
        if (!s->db && s->status == SHARD_ACTIVE && !atomic_load(&c->deleted)) {
            pthread_mutex_lock(&st->open_mu);
            rc = sv_grow(&st->open, &st->capopen, st->nopen + 1, sizeof *st->open) ? store_oom(err) : 0;
            pthread_mutex_unlock(&st->open_mu);
            if (rc == 0)
                rc = sv_db_open(st->engine, s->dir, true, &s->db, err);
            if (rc == 0) {
                atomic_fetch_add(&st->shards_open, 1);
                s->objects = store_read_count(s->db);
                pthread_mutex_lock(&st->open_mu);
                st->open[st->nopen++] = s; /* room was made above; only this path adds */
                s->in_open = true;
                pthread_mutex_unlock(&st->open_mu);
                opened = true;
            }
        }
        pthread_rwlock_unlock(&s->use);
        if (opened)
            close_idle(st, s);
        if (rc)
            return sv_err_wrap(err, "opening shard %s of %s", s->name, c->name);
    }
}

void store_shard_leave(shard *s) { pthread_rwlock_unlock(&s->use); }

/* Finds the shard of a multi-tenant collection; tenants_lock held by caller. */
shard *store_find_tenant(const collection *c, const char *name)
{
    size_t lo = 0, hi = c->nshards;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(c->shards[mid]->name, name);
        if (cmp == 0)
            return c->shards[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int store_insert_tenant(collection *c, shard *s)
{
    if (c->nshards == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        shard **p = realloc(c->shards, cap * sizeof *p);
        if (!p)
            return SV_ENOMEM;
        c->shards = p;
        c->cap = cap;
    }
    size_t i = 0;
    while (i < c->nshards && strcmp(c->shards[i]->name, s->name) < 0)
        i++;
    memmove(c->shards + i + 1, c->shards + i, (c->nshards - i) * sizeof *c->shards);
    c->shards[i] = s;
    c->nshards++;
    return 0;
}

/* Resolves the shard an object goes to. For a multi-tenant collection the
 * shard pointer stays valid while c is acquired: tenants are only freed when
 * deleted, and deletion takes the shard's write lock (see delete_tenants). */
int store_route(const collection *c, const sv_uuid *id, const char *tenant, size_t tenant_len, shard **out,
                 sv_err *err)
{
    if (!c->schema->multi_tenancy) {
        if (tenant_len)
            return sv_fail(err, SV_EINVAL,
                           "collection '%s' is not multi-tenant; remove the tenant '%.*s' from the request",
                           c->name, (int)(tenant_len > 64 ? 64 : tenant_len), tenant);
        *out = c->shards[sv_hash64(id->b, 16) % c->nshards];
        return 0;
    }
    if (!tenant_len)
        return sv_fail(err, SV_EINVAL,
                       "collection '%s' is multi-tenant; name the tenant (\"tenant\" field or ?tenant=)", c->name);
    char name[72];
    if (tenant_len >= sizeof name)
        return sv_fail(err, SV_EINVAL, "tenant name is longer than 64 characters");
    memcpy(name, tenant, tenant_len);
    name[tenant_len] = '\0';
    pthread_rwlock_rdlock((pthread_rwlock_t *)&c->tenants_lock);
    shard *s = store_find_tenant(c, name);
    pthread_rwlock_unlock((pthread_rwlock_t *)&c->tenants_lock);
    if (!s)
        return sv_fail(err, SV_ENOTFOUND, "tenant '%s' not found in collection '%s'", name, c->name);
    *out = s;
    return 0;
}

/* ---- catalog records ---------------------------------------------------- */

char *store_coll_record(const collection *c)
{
    char *schema = sv_schema_to_json(c->schema);
    if (!schema)
        return NULL;
    json_t *sj = json_loads(schema, 0, NULL);
    free(schema);
    if (!sj)
        return NULL;
    json_t *rec = json_pack("{s:i,s:s,s:s,s:I,s:o}", "format_version", 1, "name", c->name, "uid", c->uid,
                            "createdAt", (json_int_t)c->created_at, "schema", sj);
    char *out = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return out;
}

static const char *const status_words[] = {"ACTIVE", "INACTIVE", "OFFLOADED", "OFFLOADING", "ONLOADING"};

const char *store_status_word(int status) { return sv_enum_name(status_words, 5, status); }
int store_status_parse(const char *s) { return s ? sv_enum_parse(status_words, 5, s) : -1; }

char *store_tenant_record(const char *name, int status, const char *node)
{
    return store_tenant_record_ex(name, status, -1, -1, node, false);
}

char *store_tenant_record_ex(const char *name, int status, int settle, int64_t objects, const char *node,
                             bool copy)
{
    json_t *rec = json_pack("{s:i,s:s,s:s}", "format_version", 1, "name", name, "status", store_status_word(status));
    if (rec && settle >= 0)
        json_object_set_new(rec, "settle", json_string(store_status_word(settle)));
    if (rec && objects >= 0)
        json_object_set_new(rec, "objects", json_integer(objects));
    if (rec && node && *node)
        json_object_set_new(rec, "node", json_string(node));
    if (rec && copy)
        json_object_set_new(rec, "locationCopy", json_true());
    char *out = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return out;
}

int store_add_collection_to_view(sv_store *st, collection *c)
{
    pthread_rwlock_wrlock(&st->lock);
    if (st->ncolls == st->capcolls) {
        size_t cap = st->capcolls ? st->capcolls * 2 : 16;
        collection **p = realloc(st->colls, cap * sizeof *p);
        if (!p) {
            pthread_rwlock_unlock(&st->lock);
            return SV_ENOMEM;
        }
        st->colls = p;
        st->capcolls = cap;
    }
    st->colls[st->ncolls++] = c;
    pthread_rwlock_unlock(&st->lock);
    return 0;
}

collection *store_collection_new(sv_store *st, const char *name, const char *uid, int64_t created,
                                  sv_schema *schema)
{
    collection *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->name = strdup(name);
    snprintf(c->uid, sizeof c->uid, "%s", uid);
    c->created_at = created;
    c->schema = schema;
    pthread_rwlock_init(&c->tenants_lock, NULL);
    atomic_init(&c->refs, 1); /* the view's reference */
    if (!c->name) {
        free(c);
        return NULL;
    }
    if (!schema->multi_tenancy) {
        char root[1100];
        store_coll_dir(st, c, root, sizeof root);
        c->shards = calloc(schema->shards, sizeof *c->shards);
        if (!c->shards) {
            c->schema = NULL;
            store_collection_free(st, c);
            return NULL;
        }
        c->cap = schema->shards;
        for (uint32_t i = 0; i < schema->shards; i++) {
            char sname[16];
            snprintf(sname, sizeof sname, "shard%04u", i);
            c->shards[i] = store_shard_new(root, sname, SHARD_ACTIVE);
            if (!c->shards[i]) {
                c->schema = NULL;
                store_collection_free(st, c);
                return NULL;
            }
            c->nshards++;
        }
    }
    return c;
}

/* ---- open / close ------------------------------------------------------- */

typedef struct load_ctx {
    sv_store *st;
    sv_err *err;
} load_ctx;

typedef struct load_ctx_ex {
    load_ctx lc;
    collection *hold; /* store_load_collection: built here, added to the view after its placement */
} load_ctx_ex;

static int load_collection(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    load_ctx *lc = ud;
    json_error_t jerr;
    json_t *rec = json_loadb(val, len, 0, &jerr);
    json_t *schema = rec ? json_object_get(rec, "schema") : NULL;
    const char *uid = rec ? json_string_value(json_object_get(rec, "uid")) : NULL;
    if (!rec || !schema || !uid || strlen(uid) != 16) {
        json_decref(rec);
        return sv_fail(lc->err, SV_ECORRUPT, "catalog record %s is malformed", key);
    }
    char *sj = json_dumps(schema, JSON_COMPACT);
    sv_schema *s = NULL;
    int rc = sj ? sv_schema_parse(sj, strlen(sj), &s, lc->err) : store_oom(lc->err);
    free(sj);
    if (rc == 0) {
        collection *c = store_collection_new(lc->st, s->name, uid, json_integer_value(json_object_get(rec, "createdAt")), s);
        if (!c) {
            sv_schema_free(s);
            rc = store_oom(lc->err);
        } else if (rev < 0) {
            ((load_ctx_ex *)lc)->hold = c;
        } else if ((rc = store_add_collection_to_view(lc->st, c)) != 0) {
            store_collection_free(lc->st, c);
        }
    }
    json_decref(rec);
    return rc;
}

static int load_tenant(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    load_ctx *lc = ud;
    /* key: tenants/<collection>/<tenant> */
    const char *cname = key + strlen("tenants/");
    const char *slash = strchr(cname, '/');
    if (!slash)
        return sv_fail(lc->err, SV_ECORRUPT, "catalog key %s is malformed", key);
    collection *c = store_coll_acquire(lc->st, cname, (size_t)(slash - cname));
    if (!c) {
        sv_warn("tenant record without collection ignored", "key=%s", key);
        return 0;
    }
    json_t *rec = json_loadb(val, len, 0, NULL);
    int status = store_status_parse(rec ? json_string_value(json_object_get(rec, "status")) : NULL);
    int settle = store_status_parse(rec ? json_string_value(json_object_get(rec, "settle")) : NULL);
    json_t *objects = rec ? json_object_get(rec, "objects") : NULL;
    int rc = 0;
    if (status < 0 || sv_check_tenant_name(slash + 1, NULL) != 0) {
        rc = sv_fail(lc->err, SV_ECORRUPT, "catalog record %s is malformed", key);
    } else {
        char root[1100];
        store_coll_dir(lc->st, c, root, sizeof root);
        shard *s = store_shard_new(root, slash + 1, status);
        if (s) {
            const char *node = json_string_value(json_object_get(rec, "node"));
            snprintf(s->node, sizeof s->node, "%s", node && strlen(node) <= 64 ? node : "");
            s->settle = settle == SHARD_INACTIVE ? SHARD_INACTIVE : SHARD_ACTIVE;
            s->copy = json_is_true(json_object_get(rec, "locationCopy")) ||
                      (status != SHARD_ACTIVE && status != SHARD_INACTIVE);
            if (json_is_integer(objects) && status != SHARD_ACTIVE && status != SHARD_INACTIVE)
                s->objects = json_integer_value(objects);
        }
        if (!s || store_insert_tenant(c, s) != 0) {
            store_shard_free(lc->st, s);
            rc = store_oom(lc->err);
        }
    }
    json_decref(rec);
    store_coll_release(lc->st, c);
    return rc;
}

/* shards/<collection>/<shard> -> {"node"}: the fixed shard's owner. */
static int load_placement(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    load_ctx *lc = ud;
    const char *cname = key + strlen("shards/");
    const char *slash = strchr(cname, '/');
    collection *c = slash ? store_coll_acquire(lc->st, cname, (size_t)(slash - cname)) : NULL;
    if (!c)
        return 0;
    json_t *rec = json_loadb(val, len, 0, NULL);
    const char *node = json_string_value(json_object_get(rec, "node"));
    for (size_t i = 0; node && strlen(node) <= 64 && !c->schema->multi_tenancy && i < c->nshards; i++)
        if (!strcmp(c->shards[i]->name, slash + 1))
            snprintf(c->shards[i]->node, sizeof c->shards[i]->node, "%s", node);
    json_decref(rec);
    store_coll_release(lc->st, c);
    return 0;
}

/* shards/<c>/<shard> -> the node of a collection not yet in the view. */
static int hold_placement(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    collection *c = ud;
    const char *slash = strrchr(key, '/');
    json_t *rec = json_loadb(val, len, 0, NULL);
    const char *node = json_string_value(json_object_get(rec, "node"));
    for (size_t i = 0; slash && node && strlen(node) <= 64 && !c->schema->multi_tenancy && i < c->nshards; i++)
        if (!strcmp(c->shards[i]->name, slash + 1))
            snprintf(c->shards[i]->node, sizeof c->shards[i]->node, "%s", node);
    json_decref(rec);
    return 0;
}

int store_load_collection(sv_store *st, const char *key, const char *val, size_t len, sv_err *err)
{
    /* Built, given its placement, then shown: a request never routes by a
     * collection whose owners are not filled in yet. */
    load_ctx_ex lx = {{st, err}, NULL};
    int rc = load_collection(key, val, len, -1, &lx);
    if (rc)
        return rc;
    const char *name = key + strlen("collections/");
    char prefix[300];
    snprintf(prefix, sizeof prefix, "shards/%s/", name);
    rc = sv_catalog_scan(st->cat, prefix, hold_placement, lx.hold, err);
    if (rc == 0)
        rc = store_add_collection_to_view(st, lx.hold) ? store_oom(err) : 0;
    if (rc) {
        store_collection_free(st, lx.hold);
        return rc;
    }
    snprintf(prefix, sizeof prefix, "tenants/%s/", name);
    return sv_catalog_scan(st->cat, prefix, load_tenant, &lx.lc, err);
}

/* Removes shard directories whose collection is gone (a crash between the
 * catalog delete and the directory removal leaves them behind). */
static void remove_orphan_dirs(sv_store *st)
{
    char root[1100];
    snprintf(root, sizeof root, "%s/shards", st->data_dir);
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        bool known = false;
        for (size_t i = 0; i < st->ncolls && !known; i++)
            known = strcmp(st->colls[i]->uid, e->d_name) == 0;
        if (!known && strlen(e->d_name) == 16) {
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", root, e->d_name);
            sv_err err = {0};
            if (sv_rmtree(path, &err) == 0)
                sv_info("removed orphaned shard directory", "path=%s", path);
            else
                sv_warn("cannot remove orphaned shard directory", "path=%s error=\"%s\"", path, err.msg);
        }
    }
    closedir(d);
}

int sv_store_open(const sv_store_opts *opts, sv_catalog *cat, sv_store **out, sv_err *err)
{
    sv_store *st = calloc(1, sizeof *st);
    if (!st)
        return store_oom(err);
    snprintf(st->data_dir, sizeof st->data_dir, "%s", opts->data_dir);
    snprintf(st->node, sizeof st->node, "%s", opts->node_name ? opts->node_name : "node1");
    st->sync = opts->sync_writes;
    st->cat = cat;
    st->list_page_bytes = opts->list_page_bytes;
    st->max_open = opts->max_open_shards;
    pthread_mutex_init(&st->open_mu, NULL);
    pthread_mutex_init(&st->recycle_mu, NULL);
    pthread_rwlock_init(&st->lock, NULL);
    pthread_mutex_init(&st->ddl_mu, NULL);
    pthread_mutex_init(&st->tenant_mu, NULL);
    pthread_cond_init(&st->tenant_cv, NULL);
    char shards_dir[1100];
    snprintf(shards_dir, sizeof shards_dir, "%s/shards", st->data_dir);
    snprintf(st->tmp_dir, sizeof st->tmp_dir, "%s/tmp", st->data_dir);
    int rc = 0;
    if (st->list_page_bytes <= 0) {
        rc = sv_env_int("SHARDVAULT_LIST_PAGE_BYTES", SV_STORE_LIST_PAGE_BYTES_DEFAULT, &st->list_page_bytes, err);
        if (rc == 0 && st->list_page_bytes <= 0)
            rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_LIST_PAGE_BYTES must be a positive number of bytes (e.g. 16Mi)");
    }
    if (rc == 0 && st->max_open <= 0) {
        struct rlimit rl;
        int64_t dflt = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                           ? ((int64_t)rl.rlim_cur - 256) / 16
                           : 1024;
        rc = sv_env_int("SHARDVAULT_MAX_OPEN_SHARDS", dflt < 8 ? 8 : dflt, &st->max_open, err);
        if (rc == 0 && st->max_open < 1)
            rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_MAX_OPEN_SHARDS must be at least 1");
    }
    if (rc == 0) {
        const char *v = getenv("SHARDVAULT_ACQUIRE_TIMEOUT");
        char *end = NULL;
        double secs = v && *v ? strtod(v, &end) : 30.0;
        if (v && *v && (end == v || *end || !(secs > 0) || secs > 86400))
            rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_ACQUIRE_TIMEOUT must be a number of seconds (e.g. 30 or 0.5)");
        st->acquire_timeout_ms = (int64_t)(secs * 1000);
    }
    if (rc == 0)
        rc = sv_mkdirs(shards_dir, err);
    /* Scratch from before a restart (half-finished captures, restores) is
     * never resumed from here: services that resume keep their own state. */
    if (rc == 0)
        rc = sv_rmtree(st->tmp_dir, err);
    if (rc == 0)
        rc = sv_mkdirs(st->tmp_dir, err);
    sv_engine_opts eo = {.block_cache_bytes = opts->block_cache_bytes, .write_buffer_bytes = opts->write_buffer_bytes};
    if (rc == 0) {
        /* auto: flushes and compactions use O_DIRECT where the filesystem
         * takes it (engine.h); off: always through the page cache */
        const char *dio = sv_env_str("SHARDVAULT_DIRECT_IO", "auto");
        if (!strcmp(dio, "off"))
            eo.no_direct_io = true;
        else if (strcmp(dio, "auto"))
            rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_DIRECT_IO must be auto or off (got '%.32s')", dio);
    }
    if (rc == 0)
        rc = sv_engine_new(&eo, &st->engine, err);
    load_ctx lc = {st, err};
    if (rc == 0)
        rc = sv_catalog_scan(cat, "collections/", load_collection, &lc, err);
    if (rc == 0)
        rc = sv_catalog_scan(cat, "tenants/", load_tenant, &lc, err);
    if (rc == 0)
        rc = sv_catalog_scan(cat, "shards/", load_placement, &lc, err);
    if (rc) {
        sv_store_close(st);
        return sv_err_wrap(err, "opening store in %s", opts->data_dir);
    }
    if ((rc = store_reconcile_tenants(st, err)) != 0) {
        sv_store_close(st);
        return sv_err_wrap(err, "opening store in %s", opts->data_dir);
    }
    remove_orphan_dirs(st);
    sv_info("store opened", "data_dir=%s collections=%zu", st->data_dir, st->ncolls);
    *out = st;
    return 0;
}

void sv_store_close(sv_store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->ncolls; i++)
        store_collection_free(st, st->colls[i]);
    free(st->colls);
    for (size_t i = 0; i < st->nreserved; i++)
        free(st->reserved[i]);
    free(st->reserved);
    sv_engine_free(st->engine);
    free(st->open);
    store_recycle_clear(st);
    pthread_mutex_destroy(&st->recycle_mu);
    pthread_mutex_destroy(&st->open_mu);
    pthread_rwlock_destroy(&st->lock);
    pthread_mutex_destroy(&st->ddl_mu);
    pthread_mutex_destroy(&st->tenant_mu);
    pthread_cond_destroy(&st->tenant_cv);
    free(st);
}

void sv_store_get_stats(sv_store *st, sv_store_stats *out)
{
    pthread_rwlock_rdlock(&st->lock);
    out->collections = (int64_t)st->ncolls;
    pthread_rwlock_unlock(&st->lock);
    out->shards_open = atomic_load(&st->shards_open);
    out->shards_open_max = st->max_open;
    out->shards_idle_closed = atomic_load(&st->idle_closes);
    out->objects_written = atomic_load(&st->objects_written);
    out->objects_deleted = atomic_load(&st->objects_deleted);
}
