#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"

/* The object count of a shard lives under a bookkeeping key that sorts after
 * every 16-byte object key (see engine.h). It is updated in the same atomic
 * write batch as the objects, under the shard's write mutex, so it is exact. */
static const char COUNT_KEY[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
                                "count";
#define COUNT_KEY_LEN (SV_DB_META_PREFIX_LEN + 5)

enum { SHARD_ACTIVE, SHARD_INACTIVE };

typedef struct shard {
    char name[72];
    char dir[1024];
    int status;
    bool deleted;             /* tenant deleted; struct kept until the collection goes */
    sv_db *db;
    pthread_rwlock_t use;     /* read: using db; write: open / close */
    pthread_mutex_t write_mu; /* serializes writes so the count stays exact */
    int64_t objects;          /* cached count, valid while open */
} shard;

typedef struct collection {
    char *name;
    char uid[17];
    int64_t created_at;
    sv_schema *schema;
    shard **shards; /* fixed shards, or tenants sorted by name */
    size_t nshards;
    size_t cap;
    shard **dead; /* deleted tenants: a request may still hold one (see route) */
    size_t ndead;
    pthread_rwlock_t tenants_lock; /* guards shards and dead of a multi-tenant collection */
    atomic_int refs;
    atomic_bool deleted;
} collection;

struct sv_store {
    char data_dir[1024];
    char tmp_dir[1100];
    char node[64];
    bool sync;
    sv_catalog *cat;
    sv_engine *engine;
    pthread_rwlock_t lock; /* guards colls */
    collection **colls;
    size_t ncolls, capcolls;
    pthread_mutex_t ddl_mu; /* one schema change at a time */
    atomic_llong objects_written, objects_deleted, shards_open;
};

/* ---- small helpers ------------------------------------------------------ */

static int oom(sv_err *err) { return sv_fail(err, SV_ENOMEM, "out of memory"); }

static shard *shard_new(const char *dir_root, const char *name, int status)
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

static void shard_close(sv_store *st, shard *s)
{
    if (s->db) {
        sv_db_close(s->db);
        s->db = NULL;
        atomic_fetch_sub(&st->shards_open, 1);
    }
}

static void shard_free(sv_store *st, shard *s)
{
    if (!s)
        return;
    shard_close(st, s);
    pthread_rwlock_destroy(&s->use);
    pthread_mutex_destroy(&s->write_mu);
    free(s);
}

static void collection_free(sv_store *st, collection *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nshards; i++)
        shard_free(st, c->shards[i]);
    free(c->shards);
    for (size_t i = 0; i < c->ndead; i++)
        shard_free(st, c->dead[i]);
    free(c->dead);
    sv_schema_free(c->schema);
    pthread_rwlock_destroy(&c->tenants_lock);
    free(c->name);
    free(c);
}

static void coll_dir(sv_store *st, const collection *c, char *out, size_t n)
{
    snprintf(out, n, "%s/shards/%s", st->data_dir, c->uid);
}

static collection *coll_acquire(sv_store *st, const char *name, size_t len)
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

static void coll_release(sv_store *st, collection *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1 && atomic_load(&c->deleted))
        collection_free(st, c);
}

static int coll_get(sv_store *st, const char *name, collection **out, sv_err *err)
{
    *out = coll_acquire(st, name, strlen(name));
    if (!*out)
        return sv_fail(err, SV_ENOTFOUND, "collection '%.128s' not found", name);
    return 0;
}

static int64_t read_count(sv_db *db)
{
    char *v = NULL;
    size_t n = 0;
    int64_t count = 0;
    if (sv_db_get(db, COUNT_KEY, COUNT_KEY_LEN, &v, &n, NULL) == 0 && n == 8)
        memcpy(&count, v, 8);
    free(v);
    return count;
}

/* Returns with s->use read-locked and s->db open, or an error (unlocked). */
static int shard_enter(sv_store *st, const collection *c, shard *s, sv_err *err)
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
        if (s->db)
            return 0;
        pthread_rwlock_unlock(&s->use);
        pthread_rwlock_wrlock(&s->use);
        int rc = 0;
        if (!s->db && s->status == SHARD_ACTIVE && !atomic_load(&c->deleted)) {
            rc = sv_db_open(st->engine, s->dir, true, &s->db, err);
            if (rc == 0) {
                atomic_fetch_add(&st->shards_open, 1);
                s->objects = read_count(s->db);
            }
        }
        pthread_rwlock_unlock(&s->use);
        if (rc)
            return sv_err_wrap(err, "opening shard %s of %s", s->name, c->name);
    }
}

static void shard_leave(shard *s) { pthread_rwlock_unlock(&s->use); }

/* Finds the shard of a multi-tenant collection; tenants_lock held by caller. */
static shard *find_tenant(const collection *c, const char *name)
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

static int insert_tenant(collection *c, shard *s)
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
static int route(const collection *c, const sv_uuid *id, const char *tenant, size_t tenant_len, shard **out,
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
    shard *s = find_tenant(c, name);
    pthread_rwlock_unlock((pthread_rwlock_t *)&c->tenants_lock);
    if (!s)
        return sv_fail(err, SV_ENOTFOUND, "tenant '%s' not found in collection '%s'", name, c->name);
    *out = s;
    return 0;
}

/* ---- catalog records ---------------------------------------------------- */

static char *coll_record(const collection *c)
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

static char *tenant_record(const char *name, int status)
{
    json_t *rec = json_pack("{s:i,s:s,s:s}", "format_version", 1, "name", name, "status",
                            status == SHARD_ACTIVE ? "ACTIVE" : "INACTIVE");
    char *out = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
    json_decref(rec);
    return out;
}

static int add_collection_to_view(sv_store *st, collection *c)
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

static collection *collection_new(sv_store *st, const char *name, const char *uid, int64_t created,
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
        coll_dir(st, c, root, sizeof root);
        c->shards = calloc(schema->shards, sizeof *c->shards);
        if (!c->shards) {
            c->schema = NULL;
            collection_free(st, c);
            return NULL;
        }
        c->cap = schema->shards;
        for (uint32_t i = 0; i < schema->shards; i++) {
            char sname[16];
            snprintf(sname, sizeof sname, "shard%04u", i);
            c->shards[i] = shard_new(root, sname, SHARD_ACTIVE);
            if (!c->shards[i]) {
                c->schema = NULL;
                collection_free(st, c);
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
    int rc = sj ? sv_schema_parse(sj, strlen(sj), &s, lc->err) : oom(lc->err);
    free(sj);
    if (rc == 0) {
        collection *c = collection_new(lc->st, s->name, uid, json_integer_value(json_object_get(rec, "createdAt")), s);
        if (!c) {
            sv_schema_free(s);
            rc = oom(lc->err);
        } else if ((rc = add_collection_to_view(lc->st, c)) != 0) {
            collection_free(lc->st, c);
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
    collection *c = coll_acquire(lc->st, cname, (size_t)(slash - cname));
    if (!c) {
        sv_warn("tenant record without collection ignored", "key=%s", key);
        return 0;
    }
    json_t *rec = json_loadb(val, len, 0, NULL);
    const char *status = rec ? json_string_value(json_object_get(rec, "status")) : NULL;
    int rc = 0;
    if (!status || sv_check_tenant_name(slash + 1, NULL) != 0) {
        rc = sv_fail(lc->err, SV_ECORRUPT, "catalog record %s is malformed", key);
    } else {
        char root[1100];
        coll_dir(lc->st, c, root, sizeof root);
        shard *s = shard_new(root, slash + 1, strcmp(status, "INACTIVE") == 0 ? SHARD_INACTIVE : SHARD_ACTIVE);
        if (!s || insert_tenant(c, s) != 0) {
            shard_free(lc->st, s);
            rc = oom(lc->err);
        }
    }
    json_decref(rec);
    coll_release(lc->st, c);
    return rc;
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
        return oom(err);
    snprintf(st->data_dir, sizeof st->data_dir, "%s", opts->data_dir);
    snprintf(st->node, sizeof st->node, "%s", opts->node_name ? opts->node_name : "node1");
    st->sync = opts->sync_writes;
    st->cat = cat;
    pthread_rwlock_init(&st->lock, NULL);
    pthread_mutex_init(&st->ddl_mu, NULL);
    char shards_dir[1100];
    snprintf(shards_dir, sizeof shards_dir, "%s/shards", st->data_dir);
    snprintf(st->tmp_dir, sizeof st->tmp_dir, "%s/tmp", st->data_dir);
    int rc = sv_mkdirs(shards_dir, err);
    /* Scratch from before a restart (half-finished captures, restores) is
     * never resumed from here: services that resume keep their own state. */
    if (rc == 0)
        rc = sv_rmtree(st->tmp_dir, err);
    if (rc == 0)
        rc = sv_mkdirs(st->tmp_dir, err);
    sv_engine_opts eo = {.block_cache_bytes = opts->block_cache_bytes, .write_buffer_bytes = opts->write_buffer_bytes};
    if (rc == 0)
        rc = sv_engine_new(&eo, &st->engine, err);
    load_ctx lc = {st, err};
    if (rc == 0)
        rc = sv_catalog_scan(cat, "collections/", load_collection, &lc, err);
    if (rc == 0)
        rc = sv_catalog_scan(cat, "tenants/", load_tenant, &lc, err);
    if (rc) {
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
        collection_free(st, st->colls[i]);
    free(st->colls);
    sv_engine_free(st->engine);
    pthread_rwlock_destroy(&st->lock);
    pthread_mutex_destroy(&st->ddl_mu);
    free(st);
}

/* ---- collections -------------------------------------------------------- */

static json_t *collection_json(const collection *c)
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
static int persist_new_collection(sv_store *st, collection *c, sv_err *err)
{
    char *rec = coll_record(c);
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
        rc = oom(err);
        goto done;
    }
    ops[nops++] = (sv_catalog_op){key, rec, strlen(rec), 0};
    for (size_t i = 0; i < c->nshards; i++) {
        if (mt) {
            snprintf(skeys[i], sizeof skeys[i], "tenants/%s/%s", c->name, c->shards[i]->name);
            vals[i] = tenant_record(c->shards[i]->name, c->shards[i]->status);
        } else {
            snprintf(skeys[i], sizeof skeys[i], "shards/%s/%s", c->name, c->shards[i]->name);
            json_t *pj = json_pack("{s:i,s:s}", "format_version", 1, "node", st->node);
            vals[i] = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
            json_decref(pj);
        }
        if (!vals[i]) {
            rc = oom(err);
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
static int new_collection_locked(sv_store *st, sv_schema *schema, collection **out, sv_err *err)
{
    collection *existing = coll_acquire(st, schema->name, strlen(schema->name));
    if (existing) {
        coll_release(st, existing);
        int rc = sv_fail(err, SV_EEXIST, "collection '%s' already exists", schema->name);
        sv_schema_free(schema);
        return rc;
    }
    char uid[17];
    new_uid(uid);
    *out = collection_new(st, schema->name, uid, sv_now_ms(), schema);
    if (!*out) {
        sv_schema_free(schema);
        return oom(err);
    }
    return 0;
}

int sv_store_create_collection(sv_store *st, const char *json, size_t len, json_t **out, sv_err *err)
{
    sv_schema *schema = NULL;
    int rc = sv_schema_parse(json, len, &schema, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&st->ddl_mu);
    collection *c;
    if ((rc = new_collection_locked(st, schema, &c, err)) != 0) {
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
    rc = persist_new_collection(st, c, err);
    if (rc == 0)
        rc = add_collection_to_view(st, c) ? oom(err) : 0;
    if (rc) {
        collection_free(st, c);
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
    pthread_mutex_unlock(&st->ddl_mu);
    sv_info("collection created", "collection=%s shards=%zu multi_tenancy=%s", c->name, c->nshards,
            c->schema->multi_tenancy ? "true" : "false");
    if (out)
        *out = collection_json(c);
    return 0;
}

int sv_store_get_collection(sv_store *st, const char *name, json_t **out, sv_err *err)
{
    collection *c;
    int rc = coll_get(st, name, &c, err);
    if (rc)
        return rc;
    *out = collection_json(c);
    coll_release(st, c);
    return *out ? 0 : oom(err);
}

int sv_store_schema(sv_store *st, const char *name, sv_schema **out, sv_err *err)
{
    collection *c;
    int rc = coll_get(st, name, &c, err);
    if (rc)
        return rc;
    *out = sv_schema_dup(c->schema);
    coll_release(st, c);
    return *out ? 0 : oom(err);
}

int sv_store_list_collections(sv_store *st, json_t **out, sv_err *err)
{
    json_t *arr = json_array();
    pthread_rwlock_rdlock(&st->lock);
    for (size_t i = 0; arr && i < st->ncolls; i++)
        json_array_append_new(arr, collection_json(st->colls[i]));
    pthread_rwlock_unlock(&st->lock);
    *out = json_pack("{s:o}", "collections", arr);
    return *out ? 0 : oom(err);
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
    collection *c = coll_acquire(st, name, strlen(name));
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
        rc = collect_key(prefix, NULL, 0, 0, &kl) ? oom(err) : 0;
    sv_catalog_op *ops = rc == 0 ? calloc(kl.n, sizeof *ops) : NULL;
    if (rc == 0 && !ops)
        rc = oom(err);
    for (size_t i = 0; rc == 0 && i < kl.n; i++)
        ops[i].key = kl.keys[i];
    if (rc == 0)
        rc = sv_catalog_txn(st->cat, NULL, 0, ops, kl.n, err);
    free(ops);
    key_list_free(&kl);
    if (rc) {
        coll_release(st, c);
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
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
        pthread_rwlock_wrlock(&c->shards[i]->use);
        shard_close(st, c->shards[i]);
        pthread_rwlock_unlock(&c->shards[i]->use);
    }
    pthread_rwlock_unlock(&c->tenants_lock);
    char dir[1100];
    coll_dir(st, c, dir, sizeof dir);
    sv_err rmerr = {0};
    if (sv_rmtree(dir, &rmerr) != 0)
        sv_warn("collection directory not removed; it is removed at next start", "error=\"%s\"", rmerr.msg);
    pthread_mutex_unlock(&st->ddl_mu);
    sv_info("collection deleted", "collection=%s", name);
    coll_release(st, c); /* ours */
    coll_release(st, c); /* the view's */
    return 0;
}

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

static json_t *tenant_json(sv_store *st, const collection *c, shard *s)
{
    int64_t objects = -1;
    pthread_rwlock_rdlock(&s->use);
    if (s->db)
        objects = s->objects;
    int status = s->status;
    pthread_rwlock_unlock(&s->use);
    if (objects < 0 && status == SHARD_ACTIVE) {
        if (shard_enter(st, c, s, NULL) == 0) {
            objects = s->objects;
            shard_leave(s);
        }
    }
    json_t *j = json_pack("{s:s,s:s}", "name", s->name, "status", status == SHARD_ACTIVE ? "ACTIVE" : "INACTIVE");
    /* An INACTIVE tenant is not opened to count it: null says "not loaded". */
    json_object_set_new(j, "objects", objects >= 0 ? json_integer(objects) : json_null());
    return j;
}

/* Acquires a multi-tenant collection and the body's "tenants" array (at
 * least one entry). On failure nothing is held. */
static int tenants_request(sv_store *st, const char *name, json_t *body, collection **c, json_t **arr, size_t *n,
                           sv_err *err)
{
    int rc = coll_get(st, name, c, err);
    if (rc)
        return rc;
    if ((rc = need_mt(*c, err)) == 0 && !(*arr = tenants_array(body, err)))
        rc = SV_EINVAL;
    if (rc) {
        coll_release(st, *c);
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
        rc = oom(err);
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
        rc = oom(err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(arr, i), "name"));
        pthread_rwlock_rdlock(&c->tenants_lock);
        bool exists = find_tenant(c, name) != NULL;
        pthread_rwlock_unlock(&c->tenants_lock);
        if (exists) {
            rc = sv_fail(err, SV_EEXIST, "tenant '%s' already exists in collection '%s'", name, c->name);
            break;
        }
        snprintf(keys[i], sizeof keys[i], "tenants/%s/%s", c->name, name);
        if (!(vals[i] = tenant_record(name, statuses[i])))
            rc = oom(err);
        conds[i] = (sv_catalog_cond){keys[i], 0};
        ops[i] = (sv_catalog_op){keys[i], vals[i], vals[i] ? strlen(vals[i]) : 0, 0};
    }
    if (rc == 0)
        rc = sv_catalog_txn(st->cat, conds, n, ops, n, err);
    json_t *result = rc == 0 ? json_array() : NULL;
    char root[1100];
    coll_dir(st, c, root, sizeof root);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(arr, i), "name"));
        shard *s = shard_new(root, name, statuses[i]);
        pthread_rwlock_wrlock(&c->tenants_lock);
        int irc = s ? insert_tenant(c, s) : SV_ENOMEM;
        pthread_rwlock_unlock(&c->tenants_lock);
        if (irc) {
            shard_free(st, s);
            rc = oom(err);
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
    coll_release(st, c);
    if (rc) {
        json_decref(result);
        return rc;
    }
    *out = json_pack("{s:o}", "tenants", result);
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
        rc = oom(err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *t = json_array_get(arr, i);
        const char *name = json_is_object(t) ? json_string_value(json_object_get(t, "name")) : NULL;
        if (!name)
            rc = sv_fail(err, SV_EINVAL, "tenants[%zu] must be an object with a \"name\" and a \"status\"", i);
        else if (!json_object_get(t, "status"))
            rc = sv_fail(err, SV_EINVAL, "tenants[%zu] needs a \"status\" (ACTIVE or INACTIVE)", i);
        else if ((rc = parse_status(json_object_get(t, "status"), SHARD_ACTIVE, &statuses[i], err)) == 0) {
            pthread_rwlock_rdlock(&c->tenants_lock);
            targets[i] = find_tenant(c, name);
            pthread_rwlock_unlock(&c->tenants_lock);
            if (!targets[i])
                rc = sv_fail(err, SV_ENOTFOUND, "tenant '%.64s' not found in collection '%s'", name, c->name);
        }
    }
    pthread_mutex_lock(&st->ddl_mu);
    json_t *result = rc == 0 ? json_array() : NULL;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        shard *s = targets[i];
        char key[300];
        snprintf(key, sizeof key, "tenants/%s/%s", c->name, s->name);
        char *val = tenant_record(s->name, statuses[i]);
        rc = val ? sv_catalog_put(st->cat, key, val, strlen(val), 0, err) : oom(err);
        free(val);
        if (rc)
            break;
        pthread_rwlock_wrlock(&s->use);
        s->status = statuses[i];
        if (statuses[i] == SHARD_INACTIVE)
            shard_close(st, s); /* frees its memtables and cache share */
        pthread_rwlock_unlock(&s->use);
        sv_info("tenant status changed", "collection=%s tenant=%s status=%s", c->name, s->name,
                statuses[i] == SHARD_ACTIVE ? "ACTIVE" : "INACTIVE");
        json_array_append_new(result, json_pack("{s:s,s:s}", "name", s->name, "status",
                                                statuses[i] == SHARD_ACTIVE ? "ACTIVE" : "INACTIVE"));
    }
    pthread_mutex_unlock(&st->ddl_mu);
    free(statuses);
    free(targets);
    coll_release(st, c);
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
        shard *s = find_tenant(c, name);
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
            rc = oom(err);
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
        shard_close(st, s);
        pthread_rwlock_unlock(&s->use);
        sv_err rmerr = {0};
        if (sv_rmtree(s->dir, &rmerr) != 0)
            sv_warn("tenant directory not removed", "error=\"%s\"", rmerr.msg);
        sv_info("tenant deleted", "collection=%s tenant=%s", c->name, name);
    }
    pthread_mutex_unlock(&st->ddl_mu);
    coll_release(st, c);
    return rc;
}

int sv_store_list_tenants(sv_store *st, const char *collection_name, json_t **out, sv_err *err)
{
    collection *c;
    int rc = coll_get(st, collection_name, &c, err);
    if (rc)
        return rc;
    if ((rc = need_mt(c, err)) != 0) {
        coll_release(st, c);
        return rc;
    }
    json_t *arr = json_array();
    pthread_rwlock_rdlock(&c->tenants_lock);
    for (size_t i = 0; i < c->nshards; i++)
        json_array_append_new(arr, tenant_json(st, c, c->shards[i]));
    pthread_rwlock_unlock(&c->tenants_lock);
    coll_release(st, c);
    *out = json_pack("{s:o}", "tenants", arr);
    return 0;
}

int sv_store_list_shards(sv_store *st, const char *collection_name, json_t **out, sv_err *err)
{
    collection *c;
    int rc = coll_get(st, collection_name, &c, err);
    if (rc)
        return rc;
    json_t *arr = json_array();
    pthread_rwlock_rdlock(&c->tenants_lock);
    for (size_t i = 0; i < c->nshards; i++) {
        shard *s = c->shards[i];
        json_t *j = tenant_json(st, c, s);
        pthread_rwlock_rdlock(&s->use);
        int64_t bytes = s->db ? sv_db_disk_bytes(s->db) : sv_dir_bytes(s->dir);
        pthread_rwlock_unlock(&s->use);
        json_object_set_new(j, "bytes", json_integer(bytes > 0 ? bytes : 0));
        json_object_set_new(j, "node", json_string(st->node));
        json_array_append_new(arr, j);
    }
    pthread_rwlock_unlock(&c->tenants_lock);
    coll_release(st, c);
    *out = json_pack("{s:o}", "shards", arr);
    return 0;
}

/* ---- objects ------------------------------------------------------------ */

/* Writes encoded records to one shard atomically, keeping creation times of
 * replaced objects and the exact object count. Caller is inside the shard. */
typedef struct pending {
    sv_uuid id;
    size_t result;    /* index into the batch's results */
    size_t enc_off, enc_len;
} pending;

static int write_objects(sv_store *st, const collection *c, shard *s, pending *items, size_t n, sv_buf *enc,
                         sv_record *scratch, sv_err *err)
{
    sv_db_batch *b = sv_db_batch_new();
    /* Ids already in this group (a later one replaces an earlier one and
     * must not be counted twice): open addressing over item indexes + 1. */
    size_t slots = 16;
    while (slots < 2 * n)
        slots *= 2;
    uint32_t *seen = calloc(slots, sizeof *seen);
    if (!b || !seen) {
        sv_db_batch_free(b);
        free(seen);
        return oom(err);
    }
    pthread_mutex_lock(&s->write_mu);
    int64_t added = 0;
    int rc = 0;
    sv_buf re = {0};
    for (size_t i = 0; i < n && rc == 0; i++) {
        pending *p = &items[i];
        bool seen_in_batch = false;
        uint64_t h;
        memcpy(&h, p->id.b + 8, 8); /* v4 UUIDs are random here */
        for (size_t k = h & (slots - 1);; k = (k + 1) & (slots - 1)) {
            if (!seen[k]) {
                seen[k] = (uint32_t)i + 1;
                break;
            }
            if (memcmp(items[seen[k] - 1].id.b, p->id.b, 16) == 0) {
                seen_in_batch = true;
                break;
            }
        }
        char *old = NULL;
        size_t oldlen = 0;
        int g = seen_in_batch ? SV_ENOTFOUND : sv_db_get(s->db, p->id.b, 16, &old, &oldlen, err);
        if (g == 0) {
            /* Replace: keep the original creation time, re-encode the new
             * record with it (decoding our own encoding is exact). */
            int64_t created = 0;
            if (sv_record_decode(scratch, c->schema, old, oldlen, NULL) == 0)
                created = scratch->creation_time;
            free(old);
            sv_buf_reset(&re);
            if (created && sv_record_decode(scratch, c->schema, enc->data + p->enc_off, p->enc_len, NULL) == 0) {
                scratch->id = p->id;
                scratch->has_id = true;
                scratch->creation_time = created;
                if (sv_record_encode(scratch, c->schema, &re, NULL) == 0) {
                    sv_db_batch_put(b, p->id.b, 16, re.data, re.len);
                    continue;
                }
            }
            sv_db_batch_put(b, p->id.b, 16, enc->data + p->enc_off, p->enc_len);
        } else if (g == SV_ENOTFOUND) {
            if (!seen_in_batch)
                added++;
            sv_db_batch_put(b, p->id.b, 16, enc->data + p->enc_off, p->enc_len);
        } else {
            rc = g;
        }
    }
    sv_buf_free(&re);
    if (rc == 0) {
        int64_t count = s->objects + added;
        sv_db_batch_put(b, COUNT_KEY, COUNT_KEY_LEN, &count, 8);
        rc = sv_db_write(s->db, b, st->sync, err);
        if (rc == 0) {
            s->objects = count;
            atomic_fetch_add(&st->objects_written, (long long)n);
        }
    }
    pthread_mutex_unlock(&s->write_mu);
    sv_db_batch_free(b);
    free(seen);
    return rc;
}

static int parse_uuid_arg(const char *s, sv_uuid *u, sv_err *err)
{
    if (!s || sv_uuid_parse(s, strlen(s), u) != 0)
        return sv_fail(err, SV_EINVAL, "'%.64s' is not a valid UUID (expected the form 8-4-4-4-12 hex digits)",
                       s ? s : "");
    return 0;
}

int sv_store_put_object(sv_store *st, const char *collection_name, const char *path_id, const char *query_tenant,
                        const char *json, size_t len, sv_buf *out, sv_err *err)
{
    collection *c;
    int rc = coll_get(st, collection_name, &c, err);
    if (rc)
        return rc;
    sv_record *r = sv_record_new();
    sv_record *scratch = sv_record_new();
    sv_object_route route_info = {0};
    sv_buf enc = {0};
    shard *s = NULL;
    if (!r || !scratch) {
        rc = oom(err);
        goto done;
    }
    if ((rc = sv_record_parse_json(r, c->schema, json, len, &route_info, err)) != 0)
        goto done;
    if (route_info.collection.len &&
        (route_info.collection.len != strlen(c->name) || memcmp(route_info.collection.ptr, c->name, route_info.collection.len))) {
        rc = sv_fail(err, SV_EINVAL, "the body names collection '%.*s' but the URL names '%s'",
                     (int)(route_info.collection.len > 128 ? 128 : route_info.collection.len),
                     route_info.collection.ptr, c->name);
        goto done;
    }
    if (path_id) {
        sv_uuid pid;
        if ((rc = parse_uuid_arg(path_id, &pid, err)) != 0)
            goto done;
        if (r->has_id && sv_uuid_cmp(&pid, &r->id) != 0) {
            rc = sv_fail(err, SV_EINVAL, "the id in the body differs from the id in the URL");
            goto done;
        }
        r->id = pid;
        r->has_id = true;
    }
    if (!r->has_id) {
        sv_uuid_v4(&r->id);
        r->has_id = true;
    }
    const char *tenant = route_info.tenant.ptr;
    size_t tlen = route_info.tenant.len;
    if (query_tenant && *query_tenant) {
        if (tlen && (tlen != strlen(query_tenant) || memcmp(tenant, query_tenant, tlen))) {
            rc = sv_fail(err, SV_EINVAL, "the body's tenant differs from ?tenant=%.64s", query_tenant);
            goto done;
        }
        tenant = query_tenant;
        tlen = strlen(query_tenant);
    }
    if ((rc = route(c, &r->id, tenant, tlen, &s, err)) != 0)
        goto done;
    r->creation_time = r->update_time = sv_now_ms();
    if ((rc = sv_record_encode(r, c->schema, &enc, err)) != 0)
        goto done;
    if ((rc = shard_enter(st, c, s, err)) != 0)
        goto done;
    pending p = {.id = r->id, .enc_off = 0, .enc_len = enc.len};
    rc = write_objects(st, c, s, &p, 1, &enc, scratch, err);
    if (rc == 0) {
        char *stored = NULL;
        size_t slen = 0;
        rc = sv_db_get(s->db, r->id.b, 16, &stored, &slen, err);
        if (rc == 0)
            rc = sv_record_decode(scratch, c->schema, stored, slen, err);
        if (rc == 0) {
            scratch->id = r->id;
            rc = sv_record_to_json(scratch, c->schema, c->name, c->schema->multi_tenancy ? s->name : NULL, out);
        }
        free(stored);
    }
    shard_leave(s);
done:
    sv_buf_free(&enc);
    sv_record_free(r);
    sv_record_free(scratch);
    coll_release(st, c);
    return rc;
}

int sv_store_get_object(sv_store *st, const char *collection_name, const char *tenant, const char *id, sv_buf *out,
                        sv_err *err)
{
    sv_uuid u;
    int rc = parse_uuid_arg(id, &u, err);
    if (rc)
        return rc;
    collection *c;
    if ((rc = coll_get(st, collection_name, &c, err)) != 0)
        return rc;
    shard *s;
    if ((rc = route(c, &u, tenant, tenant ? strlen(tenant) : 0, &s, err)) == 0 &&
        (rc = shard_enter(st, c, s, err)) == 0) {
        char *val = NULL;
        size_t vlen = 0;
        rc = sv_db_get(s->db, u.b, 16, &val, &vlen, err);
        if (rc == SV_ENOTFOUND)
            rc = sv_fail(err, SV_ENOTFOUND, "object %s not found in collection '%s'", id, c->name);
        sv_record *r = rc == 0 ? sv_record_new() : NULL;
        if (rc == 0 && !r)
            rc = oom(err);
        if (rc == 0 && (rc = sv_record_decode(r, c->schema, val, vlen, err)) == 0) {
            r->id = u;
            rc = sv_record_to_json(r, c->schema, c->name, c->schema->multi_tenancy ? s->name : NULL, out);
        }
        sv_record_free(r);
        free(val);
        shard_leave(s);
    }
    coll_release(st, c);
    return rc;
}

int sv_store_delete_object(sv_store *st, const char *collection_name, const char *tenant, const char *id, sv_err *err)
{
    sv_uuid u;
    int rc = parse_uuid_arg(id, &u, err);
    if (rc)
        return rc;
    collection *c;
    if ((rc = coll_get(st, collection_name, &c, err)) != 0)
        return rc;
    shard *s;
    if ((rc = route(c, &u, tenant, tenant ? strlen(tenant) : 0, &s, err)) == 0 &&
        (rc = shard_enter(st, c, s, err)) == 0) {
        pthread_mutex_lock(&s->write_mu);
        char *val = NULL;
        size_t vlen;
        rc = sv_db_get(s->db, u.b, 16, &val, &vlen, err);
        free(val);
        if (rc == SV_ENOTFOUND) {
            rc = sv_fail(err, SV_ENOTFOUND, "object %s not found in collection '%s'", id, c->name);
        } else if (rc == 0) {
            sv_db_batch *b = sv_db_batch_new();
            int64_t count = s->objects - 1;
            sv_db_batch_delete(b, u.b, 16);
            sv_db_batch_put(b, COUNT_KEY, COUNT_KEY_LEN, &count, 8);
            rc = sv_db_write(s->db, b, st->sync, err);
            sv_db_batch_free(b);
            if (rc == 0) {
                s->objects = count;
                atomic_fetch_add(&st->objects_deleted, 1);
            }
        }
        pthread_mutex_unlock(&s->write_mu);
        shard_leave(s);
    }
    coll_release(st, c);
    return rc;
}

int sv_store_list_objects(sv_store *st, const char *collection_name, const char *tenant, const char *after, int limit,
                          sv_buf *out, sv_err *err)
{
    if (limit <= 0 || limit > 10000)
        return sv_fail(err, SV_EINVAL, "limit must be between 1 and 10000");
    sv_uuid start = {{0}};
    bool has_after = after && *after;
    int rc = has_after ? parse_uuid_arg(after, &start, err) : 0;
    if (rc)
        return sv_err_wrap(err, "after");
    collection *c;
    if ((rc = coll_get(st, collection_name, &c, err)) != 0)
        return rc;
    /* The shards to merge: every fixed shard, or the one tenant. */
    shard **shards = NULL;
    size_t n = 0;
    if (c->schema->multi_tenancy) {
        shard *s;
        static const sv_uuid zero;
        if ((rc = route(c, &zero, tenant, tenant ? strlen(tenant) : 0, &s, err)) == 0) {
            shards = malloc(sizeof *shards);
            if (shards) {
                shards[0] = s;
                n = 1;
            }
        }
    } else if (tenant && *tenant) {
        rc = sv_fail(err, SV_EINVAL, "collection '%s' is not multi-tenant; remove ?tenant=", c->name);
    } else {
        shards = malloc(c->nshards * sizeof *shards);
        if (shards) {
            memcpy(shards, c->shards, c->nshards * sizeof *shards);
            n = c->nshards;
        }
    }
    if (rc == 0 && !shards)
        rc = oom(err);
    sv_db_iter **its = rc == 0 ? calloc(n, sizeof *its) : NULL;
    size_t entered = 0;
    if (rc == 0 && !its)
        rc = oom(err);
    for (; rc == 0 && entered < n; entered++) {
        if ((rc = shard_enter(st, c, shards[entered], err)) != 0)
            break;
        its[entered] = sv_db_iter_new(shards[entered]->db);
        if (has_after) {
            sv_db_iter_seek(its[entered], start.b, 16);
            size_t kl;
            const char *k = sv_db_iter_valid(its[entered]) ? sv_db_iter_key(its[entered], &kl) : NULL;
            if (k && kl == 16 && memcmp(k, start.b, 16) == 0)
                sv_db_iter_next(its[entered]);
        } else {
            sv_db_iter_seek_first(its[entered]);
        }
    }
    sv_record *r = rc == 0 ? sv_record_new() : NULL;
    if (rc == 0 && !r)
        rc = oom(err);
    if (rc == 0)
        rc = sv_buf_append_str(out, "{\"objects\":[") ? oom(err) : 0;
    int emitted = 0;
    sv_uuid last;
    while (rc == 0 && emitted < limit) {
        int best = -1;
        const char *bestk = NULL;
        for (size_t i = 0; i < n; i++) {
            size_t kl;
            if (!sv_db_iter_valid(its[i]))
                continue;
            const char *k = sv_db_iter_key(its[i], &kl);
            if (kl != 16)
                continue; /* bookkeeping keys sort last */
            if (!bestk || memcmp(k, bestk, 16) < 0) {
                bestk = k;
                best = (int)i;
            }
        }
        if (best < 0)
            break;
        size_t vl;
        const char *v = sv_db_iter_value(its[best], &vl);
        memcpy(last.b, bestk, 16);
        if ((rc = sv_record_decode(r, c->schema, v, vl, err)) != 0)
            break;
        r->id = last;
        if (emitted && sv_buf_putc(out, ','))
            rc = oom(err);
        if (rc == 0)
            rc = sv_record_to_json(r, c->schema, c->name, c->schema->multi_tenancy ? shards[best]->name : NULL, out);
        sv_db_iter_next(its[best]);
        emitted++;
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = sv_db_iter_status(its[i], err);
    if (rc == 0) {
        /* A next cursor only when more objects may follow. */
        bool more = false;
        for (size_t i = 0; i < n && emitted == limit && !more; i++) {
            size_t kl;
            more = sv_db_iter_valid(its[i]) && (sv_db_iter_key(its[i], &kl), kl == 16);
        }
        if (more) {
            char s[37];
            sv_uuid_format(&last, s);
            rc = sv_buf_printf(out, "],\"next\":\"%s\"}", s) ? oom(err) : 0;
        } else {
            rc = sv_buf_append_str(out, "],\"next\":null}") ? oom(err) : 0;
        }
    }
    sv_record_free(r);
    for (size_t i = 0; i < entered; i++) {
        sv_db_iter_free(its[i]);
        shard_leave(shards[i]);
    }
    free(its);
    free(shards);
    coll_release(st, c);
    return rc;
}

/* ---- batch -------------------------------------------------------------- */

#define BATCH_GROUP_OBJECTS 1024
#define BATCH_GROUP_BYTES (8u << 20)

typedef struct result {
    char id[37];
    char *error; /* NULL = ok */
} result;

typedef struct group_item {
    collection *c;
    shard *s;
    pending p;
} group_item;

struct sv_batch {
    sv_store *st;
    result *results;
    size_t nresults, capresults;
    group_item *items;
    size_t nitems, capitems;
    sv_buf enc;
    sv_record *rec, *scratch;
    size_t written;        /* objects flushed to their shards so far */
    collection *cached[8]; /* acquired collections, released at the end */
    size_t ncached;
    int oom;
};

sv_batch *sv_batch_begin(sv_store *st)
{
    sv_batch *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->st = st;
    b->rec = sv_record_new();
    b->scratch = sv_record_new();
    if (!b->rec || !b->scratch) {
        sv_batch_abort(b);
        return NULL;
    }
    return b;
}

static collection *batch_collection(sv_batch *b, const sv_str *name)
{
    for (size_t i = 0; i < b->ncached; i++)
        if (strlen(b->cached[i]->name) == name->len && memcmp(b->cached[i]->name, name->ptr, name->len) == 0)
            return b->cached[i];
    collection *c = coll_acquire(b->st, name->ptr, name->len);
    if (!c)
        return NULL;
    if (b->ncached == sizeof b->cached / sizeof b->cached[0]) {
        /* The cache is full: an uncached reference, which sv_batch_add
         * flushes at once and batch_flush then releases. */
        return c;
    }
    b->cached[b->ncached++] = c;
    return c;
}

static int set_result(sv_batch *b, size_t idx, const char *msg)
{
    if (msg && !(b->results[idx].error = strdup(msg)))
        b->oom = 1;
    return 0;
}

static int cmp_items(const void *a, const void *bb)
{
    const group_item *x = a, *y = bb;
    if (x->s != y->s)
        return x->s < y->s ? -1 : 1;
    return x->p.result < y->p.result ? -1 : (x->p.result > y->p.result);
}

static void batch_flush(sv_batch *b)
{
    if (!b->nitems)
        return;
    qsort(b->items, b->nitems, sizeof *b->items, cmp_items);
    pending *ps = malloc(b->nitems * sizeof *ps);
    size_t i = 0;
    while (i < b->nitems) {
        size_t j = i;
        while (j < b->nitems && b->items[j].s == b->items[i].s)
            j++;
        collection *c = b->items[i].c;
        shard *s = b->items[i].s;
        sv_err err = {0};
        int rc = ps ? shard_enter(b->st, c, s, &err) : sv_fail(&err, SV_ENOMEM, "out of memory");
        if (rc == 0) {
            for (size_t k = i; k < j; k++)
                ps[k - i] = b->items[k].p;
            rc = write_objects(b->st, c, s, ps, j - i, &b->enc, b->scratch, &err);
            shard_leave(s);
        }
        if (rc)
            for (size_t k = i; k < j; k++)
                set_result(b, b->items[k].p.result, err.msg);
        else
            b->written += j - i;
        i = j;
    }
    free(ps);
    /* Release collections acquired beyond the cache. */
    for (size_t k = 0; k < b->nitems; k++) {
        collection *c = b->items[k].c;
        bool cached = false;
        for (size_t m = 0; m < b->ncached; m++)
            cached |= b->cached[m] == c;
        if (!cached)
            coll_release(b->st, c);
    }
    b->nitems = 0;
    sv_buf_reset(&b->enc);
}

int sv_batch_add(sv_batch *b, const char *json, size_t len)
{
    if (b->nresults == b->capresults) {
        size_t cap = b->capresults ? b->capresults * 2 : 256;
        result *p = realloc(b->results, cap * sizeof *p);
        if (!p)
            return SV_ENOMEM;
        b->results = p;
        b->capresults = cap;
    }
    size_t idx = b->nresults++;
    result *res = &b->results[idx];
    res->error = NULL;
    strcpy(res->id, "");
    sv_err err = {0};
    sv_object_route ro = {0};
    if (sv_record_peek_route(json, len, &ro, &err) != 0)
        return set_result(b, idx, err.msg);
    if (!ro.collection.len)
        return set_result(b, idx, "the object has no \"collection\"; name the collection it belongs to");
    collection *c = batch_collection(b, &ro.collection);
    if (!c) {
        char msg[300];
        snprintf(msg, sizeof msg, "collection '%.*s' not found", (int)(ro.collection.len > 128 ? 128 : ro.collection.len),
                 ro.collection.ptr);
        return set_result(b, idx, msg);
    }
    bool cached = false;
    for (size_t m = 0; m < b->ncached; m++)
        cached |= b->cached[m] == c;
    int rc = sv_record_parse_json(b->rec, c->schema, json, len, &ro, &err);
    if (rc == 0 && !b->rec->has_id) {
        sv_uuid_v4(&b->rec->id);
        b->rec->has_id = true;
    }
    if (b->rec->has_id)
        sv_uuid_format(&b->rec->id, res->id);
    shard *s = NULL;
    if (rc == 0)
        rc = route(c, &b->rec->id, ro.tenant.ptr, ro.tenant.len, &s, &err);
    size_t enc_off = b->enc.len;
    if (rc == 0) {
        b->rec->creation_time = b->rec->update_time = sv_now_ms();
        rc = sv_record_encode(b->rec, c->schema, &b->enc, &err);
    }
    if (rc == 0 && b->nitems == b->capitems) {
        size_t cap = b->capitems ? b->capitems * 2 : 256;
        group_item *p = realloc(b->items, cap * sizeof *p);
        if (!p)
            rc = sv_fail(&err, SV_ENOMEM, "out of memory");
        else {
            b->items = p;
            b->capitems = cap;
        }
    }
    if (rc) {
        if (!cached)
            coll_release(b->st, c);
        return set_result(b, idx, err.msg);
    }
    b->items[b->nitems++] = (group_item){c, s, {b->rec->id, idx, enc_off, b->enc.len - enc_off}};
    if (b->nitems >= BATCH_GROUP_OBJECTS || b->enc.len >= BATCH_GROUP_BYTES || !cached)
        batch_flush(b);
    return 0;
}

int sv_batch_end(sv_batch *b, sv_buf *out, sv_err *err)
{
    batch_flush(b);
    size_t ok = 0;
    int rc = sv_buf_append_str(out, "{\"results\":[");
    for (size_t i = 0; rc == 0 && i < b->nresults; i++) {
        result *r = &b->results[i];
        if (i)
            rc |= sv_buf_putc(out, ',');
        rc |= sv_buf_append_str(out, "{\"id\":");
        if (r->id[0])
            rc |= sv_buf_printf(out, "\"%s\"", r->id);
        else
            rc |= sv_buf_append_str(out, "null");
        if (r->error) {
            rc |= sv_buf_append_str(out, ",\"status\":\"error\",\"error\":");
            rc |= sv_buf_json_string(out, r->error, strlen(r->error));
            rc |= sv_buf_putc(out, '}');
        } else {
            ok++;
            rc |= sv_buf_append_str(out, ",\"status\":\"ok\"}");
        }
    }
    if (rc == 0)
        rc = sv_buf_printf(out, "],\"ok\":%zu,\"failed\":%zu}", ok, b->nresults - ok);
    int was_oom = b->oom;
    sv_batch_abort(b);
    if (rc || was_oom)
        return sv_fail(err, SV_ENOMEM, "out of memory building the batch response");
    return 0;
}

size_t sv_batch_written(const sv_batch *b) { return b->written; }

void sv_batch_abort(sv_batch *b)
{
    if (!b)
        return;
    for (size_t k = 0; k < b->nitems; k++) {
        bool cached = false;
        for (size_t m = 0; m < b->ncached; m++)
            cached |= b->cached[m] == b->items[k].c;
        if (!cached)
            coll_release(b->st, b->items[k].c);
    }
    for (size_t i = 0; i < b->ncached; i++)
        coll_release(b->st, b->cached[i]);
    for (size_t i = 0; i < b->nresults; i++)
        free(b->results[i].error);
    free(b->results);
    free(b->items);
    sv_buf_free(&b->enc);
    sv_record_free(b->rec);
    sv_record_free(b->scratch);
    free(b);
}

/* ---- capture and adoption ---------------------------------------------- */

const char *sv_store_tmp_dir(const sv_store *st) { return st->tmp_dir; }

void sv_capture_free(sv_capture *cap)
{
    if (!cap)
        return;
    sv_schema_free(cap->schema);
    free(cap->shards);
    free(cap);
}

int sv_store_capture(sv_store *st, const char *name, const char *dst_dir, sv_capture **out, sv_err *err)
{
    collection *c;
    int rc = coll_get(st, name, &c, err);
    if (rc)
        return rc;
    if (sv_path_exists(dst_dir)) {
        coll_release(st, c);
        return sv_fail(err, SV_EEXIST, "capture directory %s already exists", dst_dir);
    }
    if ((rc = sv_mkdirs(dst_dir, err)) != 0) {
        coll_release(st, c);
        return rc;
    }
    sv_capture *cap = calloc(1, sizeof *cap);
    /* The shard set cannot change while we hold tenants_lock (adding and
     * deleting tenants take it for writing). */
    pthread_rwlock_rdlock(&c->tenants_lock);
    size_t n = c->nshards;
    bool *entered = calloc(n + 1, sizeof *entered);
    if (!cap || !entered || !(cap->shards = calloc(n + 1, sizeof *cap->shards)) ||
        !(cap->schema = sv_schema_dup(c->schema)))
        rc = oom(err);
    /* Enter every shard: open ACTIVE ones, pin INACTIVE ones (a reader lock
     * keeps anyone from opening them meanwhile). */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        shard *s = c->shards[i];
        sv_shard_capture *sc = &cap->shards[i];
        snprintf(sc->name, sizeof sc->name, "%s", s->name);
        sc->is_tenant = c->schema->multi_tenancy;
        sc->objects = -1;
        pthread_rwlock_rdlock(&s->use);
        if (!s->db && s->status == SHARD_ACTIVE && sv_path_exists(s->dir)) {
            pthread_rwlock_unlock(&s->use);
            sv_err e2 = {0};
            if (shard_enter(st, c, s, &e2) != 0) {
                if (e2.code != SV_ESTATE) {
                    rc = sv_fail(err, e2.code, "%s", e2.msg);
                    break;
                }
                pthread_rwlock_rdlock(&s->use); /* it just went INACTIVE: capture from disk */
            }
        }
        entered[i] = true;
    }
    /* Hold every writer out, so all shards are captured at one instant. */
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (c->shards[i]->db)
            pthread_mutex_lock(&c->shards[i]->write_mu);
    cap->captured_at = sv_now_ms();
    int rc2 = rc;
    for (size_t i = 0; rc2 == 0 && i < n; i++) {
        shard *s = c->shards[i];
        sv_shard_capture *sc = &cap->shards[i];
        if ((size_t)snprintf(sc->dir, sizeof sc->dir, "%s/%s", dst_dir, s->name) >= sizeof sc->dir) {
            rc2 = sv_fail(err, SV_EINVAL, "capture directory path too long");
            break;
        }
        sc->was_active = s->db != NULL;
        if (s->db) {
            sc->objects = s->objects;
            rc2 = sv_db_checkpoint(s->db, sc->dir, err);
        } else if (sv_path_exists(s->dir)) {
            rc2 = sv_db_checkpoint_closed(s->dir, sc->dir, err);
            /* The exact count is in the checkpoint: one point read, no scan. */
            sv_db *db = NULL;
            if (rc2 == 0 && (rc2 = sv_db_open_readonly(st->engine, sc->dir, &db, err)) == 0) {
                sc->objects = read_count(db);
                sv_db_close(db);
            }
        } else {
            sc->status = SV_CAPTURE_EMPTY;
            sc->objects = 0;
            sc->dir[0] = '\0';
        }
        if (rc2)
            sv_err_wrap(err, "capturing shard %s of %s", s->name, c->name);
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (c->shards[i]->db)
            pthread_mutex_unlock(&c->shards[i]->write_mu);
    for (size_t i = 0; i < n; i++)
        if (entered && entered[i])
            pthread_rwlock_unlock(&c->shards[i]->use);
    pthread_rwlock_unlock(&c->tenants_lock);
    free(entered);
    if (rc == 0)
        rc = rc2;
    if (cap) {
        snprintf(cap->collection, sizeof cap->collection, "%s", c->name);
        cap->nshards = n;
    }
    coll_release(st, c);
    if (rc) {
        sv_capture_free(cap);
        sv_err ignored;
        sv_rmtree(dst_dir, &ignored);
        return rc;
    }
    sv_info("collection captured", "collection=%s shards=%zu dir=%s", name, n, dst_dir);
    *out = cap;
    return 0;
}

int sv_store_adopt_collection(sv_store *st, const char *schema_json, size_t len, const char *const *names,
                              const char *const *dirs, size_t n, json_t **out, sv_err *err)
{
    sv_schema *schema = NULL;
    int rc = sv_schema_parse(schema_json, len, &schema, err);
    if (rc)
        return rc;
    /* The names must be exactly the schema's shards, or valid distinct tenants. */
    if (!schema->multi_tenancy && n != schema->shards)
        rc = sv_fail(err, SV_EINVAL, "collection '%s' has %u shards but %zu were given", schema->name, schema->shards, n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (schema->multi_tenancy) {
            rc = sv_check_tenant_name(names[i], err);
        } else {
            char want[32];
            snprintf(want, sizeof want, "shard%04zu", i);
            if (strcmp(names[i], want) != 0)
                rc = sv_fail(err, SV_EINVAL, "shard %zu must be named %s, not '%.64s'", i, want, names[i]);
        }
        for (size_t j = 0; rc == 0 && j < i; j++)
            if (strcmp(names[i], names[j]) == 0)
                rc = sv_fail(err, SV_EINVAL, "shard '%s' given twice", names[i]);
        if (rc == 0 && !sv_path_exists(dirs[i]))
            rc = sv_fail(err, SV_ENOTFOUND, "shard directory %s does not exist", dirs[i]);
    }
    if (rc) {
        sv_schema_free(schema);
        return rc;
    }
    pthread_mutex_lock(&st->ddl_mu);
    collection *c;
    if ((rc = new_collection_locked(st, schema, &c, err)) != 0) {
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
    char root[1100];
    coll_dir(st, c, root, sizeof root);
    for (size_t i = 0; rc == 0 && schema->multi_tenancy && i < n; i++) {
        shard *s = shard_new(root, names[i], SHARD_ACTIVE);
        if (!s || insert_tenant(c, s) != 0) {
            shard_free(st, s);
            rc = oom(err);
        }
    }
    if (rc == 0)
        rc = sv_mkdirs(root, err);
    size_t moved = 0;
    for (; rc == 0 && moved < n; moved++) {
        char identity[1300], target[1200];
        /* A fresh identity: RocksDB writes a new IDENTITY when it is missing. */
        snprintf(identity, sizeof identity, "%s/IDENTITY", dirs[moved]);
        unlink(identity);
        snprintf(target, sizeof target, "%s/%s", root, names[moved]);
        if (rename(dirs[moved], target) != 0)
            rc = sv_fail(err, SV_EIO, "cannot move %s to %s: %s", dirs[moved], target, strerror(errno));
    }
    if (rc == 0)
        rc = persist_new_collection(st, c, err);
    if (rc == 0)
        rc = add_collection_to_view(st, c) ? oom(err) : 0;
    if (rc) {
        /* Put back what was moved so the caller can retry or clean up. */
        for (size_t i = 0; i < moved; i++) {
            char target[1200];
            snprintf(target, sizeof target, "%s/%s", root, names[i]);
            rename(target, dirs[i]);
        }
        sv_err ignored;
        sv_rmtree(root, &ignored);
        collection_free(st, c);
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
    pthread_mutex_unlock(&st->ddl_mu);
    sv_info("collection adopted", "collection=%s shards=%zu", c->name, n);
    if (out)
        *out = collection_json(c);
    return 0;
}

void sv_store_get_stats(sv_store *st, sv_store_stats *out)
{
    pthread_rwlock_rdlock(&st->lock);
    out->collections = (int64_t)st->ncolls;
    pthread_rwlock_unlock(&st->lock);
    out->shards_open = atomic_load(&st->shards_open);
    out->objects_written = atomic_load(&st->objects_written);
    out->objects_deleted = atomic_load(&st->objects_deleted);
}
