/* registry — read-only snapshot mounts (docs/registry.md, "Snapshot mounts").
 *
 * Mounting a COMMITTED snapshot registers each of its shards as
 * "<snapshot>@<shard>" with source SNAPSHOT (lazy: nothing is fetched) and
 * holds the snapshot so it cannot be dropped. A read acquires the shard (the
 * first one hydrates it into the cache from the snapshot's blobs), opens the
 * RocksDB directory read-only, decodes with the snapshot's own schema and
 * answers in the live API's shapes. Restoring objects reads them the same
 * way and writes them into the live collection through the store.
 *
 * Invariants: a snapshot is mounted exactly while the registry holds records
 * of its shards; the snapshot module holds it (no drop) while mounted, again
 * after a restart (attach re-holds what the records say); unmount is refused
 * while any of its shards has a reference. */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "registry_internal.h"
#include "snapshot.h"
#include "store.h"

#define MOUNT_LIST_MAX 10000

/* The part of tenants.c's service this file uses. */
struct sv_registry_svc;
sv_store *sv__svc_store(struct sv_registry_svc *v);
sv_snapshot *sv__svc_snapshot(struct sv_registry_svc *v);

static void mount_name(const char *snapshot, const char *part, char out[210])
{
    snprintf(out, 210, "%.128s@%.72s", snapshot, part);
}

/* ---- the SNAPSHOT mount ------------------------------------------------------- */

/* name is "<snapshot>@<shard>" (checked at register). */
static int split(const char *name, char snap[130], char part[72])
{
    const char *at = strchr(name, '@');
    if (!at || (size_t)(at - name) >= 130 || strlen(at + 1) >= 72)
        return SV_EINVAL;
    memcpy(snap, name, (size_t)(at - name));
    snap[at - name] = '\0';
    snprintf(part, 72, "%s", at + 1);
    return 0;
}

static int snap_size(void *self, const char *collection, const char *name, int64_t *bytes, sv_err *err)
{
    char snap[130], part[72], key[400];
    if (split(name, snap, part))
        return sv_fail(err, SV_EINVAL, "not a snapshot shard: %s", name);
    int rc = sv_snapshot_describe(sv__svc_snapshot(self), collection, snap, key, NULL, NULL, NULL, err);
    sv_dir_stats ds = {0};
    if (rc == 0)
        rc = sv_snapshot_dir_info(sv__svc_snapshot(self), key, part, &ds, NULL, err);
    if (rc == 0)
        *bytes = ds.bytes;
    return rc;
}

static int snap_fetch(void *self, const char *collection, const char *name, const char *dir,
                      _Atomic int64_t *progress, sv_err *err)
{
    char snap[130], part[72], key[400];
    if (split(name, snap, part))
        return sv_fail(err, SV_EINVAL, "not a snapshot shard: %s", name);
    int rc = sv_snapshot_describe(sv__svc_snapshot(self), collection, snap, key, NULL, NULL, NULL, err);
    if (rc == 0 && rmdir(dir) != 0)
        rc = sv_fail(err, SV_EIO, "cannot prepare %s for hydration", dir);
    if (rc == 0)
        rc = sv_snapshot_get_dir(sv__svc_snapshot(self), key, part, dir, NULL, progress, NULL, err);
    return rc;
}

static int mounts_start(sv_registry *r, sv_err *err);
static int views_drop(sv_registry *r, const char *collection, const char *snapshot, sv_err *err);

int sv__mounts_attach(sv_registry *r, struct sv_registry_svc *v, sv_err *err)
{
    sv_registry_mount m = {.self = v, .size = snap_size, .fetch = snap_fetch};
    int rc = mounts_start(r, err);
    if (rc == 0)
        rc = sv_registry_set_mount(r, SV_SHARD_SRC_SNAPSHOT, &m, err);
    /* Hold every snapshot the records say is mounted (once each). */
    json_t *all = NULL;
    if (rc == 0)
        rc = sv_registry_shards_json(r, NULL, NULL, &all, err);
    size_t i;
    json_t *e;
    char last[400] = "";
    json_array_foreach(rc == 0 ? json_object_get(all, "shards") : NULL, i, e)
    {
        const char *src = json_string_value(json_object_get(e, "source"));
        const char *c = json_string_value(json_object_get(e, "collection"));
        char snap[130], part[72], key[400];
        if (!src || strcmp(src, "snapshot") || split(json_string_value(json_object_get(e, "shard")), snap, part))
            continue;
        snprintf(key, sizeof key, "%s/%s", c, snap);
        if (strcmp(key, last) == 0)
            continue; /* sorted by collection then shard: one hold per snapshot */
        snprintf(last, sizeof last, "%s", key);
        sv_err e2 = {0};
        if (sv_snapshot_hold(sv__svc_snapshot(v), c, snap, &e2))
            sv_warn("registry: mounted snapshot not held", "collection=%s snapshot=%s error=\"%s\"", c, snap, e2.msg);
    }
    json_decref(all);
    return rc;
}

/* ---- mount / unmount ---------------------------------------------------------- */

/* The shards of a snapshot the registry has: *n of them (0: not mounted). */
static int mounted_shards(sv_registry *r, const char *collection, const char *snapshot, json_t **out, size_t *n,
                          sv_err *err)
{
    json_t *all = NULL;
    int rc = sv_registry_shards_json(r, collection, NULL, &all, err);
    if (rc)
        return rc;
    json_t *mine = json_array();
    size_t i;
    json_t *e;
    size_t pl = strlen(snapshot);
    json_array_foreach(json_object_get(all, "shards"), i, e)
    {
        const char *name = json_string_value(json_object_get(e, "shard"));
        if (name && strncmp(name, snapshot, pl) == 0 && name[pl] == '@')
            json_array_append(mine, e);
    }
    json_decref(all);
    *n = json_array_size(mine);
    *out = mine;
    return 0;
}

static int need_svc(sv_registry *r, sv_err *err)
{
    return r->svc ? 0 : sv_fail(err, SV_EUNAVAIL, "snapshot mounts need the registry attached to the store");
}

int sv_registry_mount_snapshot(sv_registry *r, const char *collection, const char *snapshot, json_t **out,
                               sv_err *err)
{
    int rc = need_svc(r, err);
    if (rc)
        return rc;
    sv_snapshot *snap = sv__svc_snapshot(r->svc);
    char key[400];
    sv_snapshot_shard *shards = NULL;
    size_t n = 0;
    if ((rc = sv_snapshot_describe(snap, collection, snapshot, key, NULL, &shards, &n, err)) != 0)
        return rc;
    json_t *have = NULL;
    size_t nhave = 0;
    rc = mounted_shards(r, collection, snapshot, &have, &nhave, err);
    json_decref(have);
    bool fresh = rc == 0 && nhave == 0;
    if (fresh && (rc = sv_snapshot_hold(snap, collection, snapshot, err)) != 0)
        fresh = false;
    for (size_t i = 0; rc == 0 && i < n; i++) { /* idempotent: a shard already registered stays */
        char name[210];
        mount_name(snapshot, shards[i].name, name);
        sv_err e2 = {0};
        int x = sv_registry_register(r, collection, name, SV_SHARD_SRC_SNAPSHOT, shards[i].bytes, &e2);
        if (x && x != SV_EEXIST)
            rc = sv_fail(err, x, "%s", e2.msg);
    }
    if (rc && fresh) { /* undo a half-made mount */
        for (size_t i = 0; i < n; i++) {
            char name[210];
            mount_name(snapshot, shards[i].name, name);
            sv_registry_destroy(r, collection, name, NULL);
        }
        sv_snapshot_unhold(snap, collection, snapshot);
    }
    int64_t bytes = 0, objects = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += shards[i].bytes;
        objects += shards[i].objects;
    }
    free(shards);
    if (rc)
        return rc;
    *out = json_pack("{s:s,s:s,s:b,s:I,s:I,s:I}", "collection", collection, "snapshot", snapshot, "mounted", true,
                     "shards", (json_int_t)n, "objects", (json_int_t)objects, "bytes", (json_int_t)bytes);
    sv_info("snapshot mounted", "collection=%s snapshot=%s shards=%zu", collection, snapshot, n);
    return *out ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
}

int sv_registry_unmount_snapshot(sv_registry *r, const char *collection, const char *snapshot, sv_err *err)
{
    int rc = need_svc(r, err);
    if (rc)
        return rc;
    if ((rc = sv_check_collection_name(collection, err)) != 0 || (rc = sv_check_snapshot_name(snapshot, err)) != 0)
        return rc;
    json_t *have = NULL;
    size_t n = 0;
    if ((rc = mounted_shards(r, collection, snapshot, &have, &n, err)) != 0)
        return rc;
    if (n == 0) {
        json_decref(have);
        return sv_fail(err, SV_ENOTFOUND, "snapshot '%s' of collection '%s' is not mounted", snapshot, collection);
    }
    /* A read waiting for a shard's hydration holds no reference yet: it is
     * a read on all the same (409, as for one that holds it). */
    size_t i;
    json_t *e;
    json_array_foreach(have, i, e)
    {
        if (sv__registry_awaited(r, collection, json_string_value(json_object_get(e, "shard")))) {
            json_decref(have);
            return sv_fail(err, SV_ECONFLICT, "snapshot '%s' of collection '%s' is being read; unmount it when done",
                           snapshot, collection);
        }
    }
    /* Readers' kept shards first (409 if a read is on), then the records:
     * destroy refuses a shard someone still references. */
    if ((rc = views_drop(r, collection, snapshot, err)) != 0) {
        json_decref(have);
        return rc;
    }
    json_array_foreach(have, i, e)
    {
        int x = sv_registry_destroy(r, collection, json_string_value(json_object_get(e, "shard")), err);
        if (x == SV_ECONFLICT) {
            rc = sv_fail(err, SV_ECONFLICT, "snapshot '%s' of collection '%s' is being read; unmount it when done",
                         snapshot, collection);
            break;
        }
        if (x && x != SV_ENOTFOUND) {
            rc = x;
            break;
        }
    }
    json_decref(have);
    if (rc == 0) {
        sv_snapshot_unhold(sv__svc_snapshot(r->svc), collection, snapshot);
        sv_info("snapshot unmounted", "collection=%s snapshot=%s", collection, snapshot);
    }
    return rc;
}

/* ---- reading ------------------------------------------------------------------- */

/* ---- what reads keep open between requests ------------------------------------
 *
 * A mounted snapshot's description (schema, shards) is read from its manifest
 * once and kept while it is mounted (manifests are immutable, and a mounted
 * snapshot cannot be dropped). Opened shards (a registry reference plus a
 * read-only RocksDB) are kept for MOUNT_IDLE_MS after their last read, so a
 * read costs a lookup rather than an open; the sweeper thread releases idle
 * ones, so a shard no one reads becomes evictable again within about a
 * second. Both live under mc->mu; users counts readers of an entry, and an
 * entry is freed only when unlinked and unused. */

#define MOUNT_IDLE_MS 1000

typedef struct mview {
    struct mview *next;
    int users;
    bool dead; /* unlinked (unmounted): freed by its last user */
    char collection[129], snapshot[130];
    sv_schema *schema;
    sv_snapshot_shard *shards;
    size_t n;
    sv_registry *r;
} mview;

typedef struct mhandle {
    struct mhandle *next;
    int users;
    int64_t last_ms;
    char collection[129], name[210];
    sv_shard_ref *ref;
    sv_db *db; /* NULL: a shard that never held data */
} mhandle;

struct sv_mounts {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    mview *views;
    mhandle *handles;
    bool stop;
    pthread_t sweeper;
    bool started;
};

static void view_free(mview *v)
{
    sv_schema_free(v->schema);
    free(v->shards);
    free(v);
}

static void handle_free(mhandle *h)
{
    if (h->db)
        sv_db_close(h->db);
    sv_registry_release(h->ref);
    free(h);
}

/* Unlinks (under mu) idle handles; with snapshot set, only that snapshot's
 * (and *busy counts the ones in use). Returns the list to free without mu. */
static mhandle *take_idle(struct sv_mounts *mc, const char *collection, const char *snapshot, int64_t older_than,
                          int *busy)
{
    mhandle *out = NULL, **pp = &mc->handles;
    size_t pl = snapshot ? strlen(snapshot) : 0;
    while (*pp) {
        mhandle *h = *pp;
        bool mine = !snapshot || (!strcmp(h->collection, collection) && !strncmp(h->name, snapshot, pl) &&
                                  h->name[pl] == '@');
        if (mine && h->users == 0 && h->last_ms <= older_than) {
            *pp = h->next;
            h->next = out;
            out = h;
            continue;
        }
        if (mine && h->users && busy)
            (*busy)++;
        pp = &h->next;
    }
    return out;
}

static void free_handles(mhandle *h)
{
    while (h) {
        mhandle *next = h->next;
        handle_free(h);
        h = next;
    }
}

static void *sweeper(void *arg)
{
    struct sv_mounts *mc = arg;
    pthread_mutex_lock(&mc->mu);
    while (!mc->stop) {
        sv_cond_wait_ms(&mc->cv, &mc->mu, 250);
        mhandle *idle = take_idle(mc, NULL, NULL, sv_now_ms() - MOUNT_IDLE_MS, NULL);
        pthread_mutex_unlock(&mc->mu);
        free_handles(idle);
        pthread_mutex_lock(&mc->mu);
    }
    pthread_mutex_unlock(&mc->mu);
    return NULL;
}

static int mounts_start(sv_registry *r, sv_err *err)
{
    struct sv_mounts *mc = calloc(1, sizeof *mc);
    if (!mc)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    pthread_mutex_init(&mc->mu, NULL);
    pthread_cond_init(&mc->cv, NULL);
    if (pthread_create(&mc->sweeper, NULL, sweeper, mc) != 0) {
        pthread_mutex_destroy(&mc->mu);
        pthread_cond_destroy(&mc->cv);
        free(mc);
        return sv_fail(err, SV_EIO, "cannot start the mount sweeper thread");
    }
    mc->started = true;
    r->mcache = mc;
    return 0;
}

void sv__mounts_close(sv_registry *r)
{
    struct sv_mounts *mc = r->mcache;
    if (!mc)
        return;
    pthread_mutex_lock(&mc->mu);
    mc->stop = true;
    pthread_cond_broadcast(&mc->cv);
    pthread_mutex_unlock(&mc->mu);
    if (mc->started)
        pthread_join(mc->sweeper, NULL);
    free_handles(take_idle(mc, NULL, NULL, INT64_MAX, NULL));
    for (mview *v = mc->views, *next; v; v = next) {
        next = v->next;
        view_free(v);
    }
    pthread_mutex_destroy(&mc->mu);
    pthread_cond_destroy(&mc->cv);
    free(mc);
    r->mcache = NULL;
}

/* The mounted snapshot's view, used until view_put. SV_ECONFLICT (saying to
 * mount it) when it is not mounted. */
static int view_get(sv_registry *r, const char *collection, const char *snapshot, mview **out, sv_err *err)
{
    int rc = need_svc(r, err);
    if (rc)
        return rc;
    if ((rc = sv_check_collection_name(collection, err)) || (rc = sv_check_snapshot_name(snapshot, err)))
        return rc;
    struct sv_mounts *mc = r->mcache;
    pthread_mutex_lock(&mc->mu);
    for (mview *v = mc->views; v; v = v->next)
        if (!strcmp(v->collection, collection) && !strcmp(v->snapshot, snapshot)) {
            v->users++;
            *out = v;
            pthread_mutex_unlock(&mc->mu);
            return 0;
        }
    pthread_mutex_unlock(&mc->mu);
    /* Not cached: mounted at all? (after a restart the records say so) */
    json_t *have = NULL;
    size_t nhave = 0;
    if ((rc = mounted_shards(r, collection, snapshot, &have, &nhave, err)) == 0 && nhave == 0) {
        /* one that does not exist (or never committed) is not a matter of mounting */
        json_t *rec = NULL;
        sv_err e2 = {0};
        int g = sv_snapshot_get(sv__svc_snapshot(r->svc), collection, snapshot, &rec, &e2);
        const char *st = json_string_value(json_object_get(rec, "status"));
        if (g == SV_ENOTFOUND)
            rc = sv_fail(err, SV_ENOTFOUND, "%s", e2.msg);
        else if (g == 0 && st && strcmp(st, "COMMITTED"))
            rc = sv_fail(err, SV_ECONFLICT, "snapshot '%s' of collection '%s' is %s: only a committed snapshot can "
                         "be mounted and read", snapshot, collection, st);
        else
            rc = sv_fail(err, SV_ECONFLICT,
                         "snapshot '%s' of collection '%s' is not mounted; mount it first (POST "
                         "/v1/collections/%s/snapshots/%s/mount)",
                         snapshot, collection, collection, snapshot);
        json_decref(rec);
    }
    json_decref(have);
    mview *v = rc == 0 ? calloc(1, sizeof *v) : NULL;
    if (rc == 0 && !v)
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    char key[400];
    if (rc == 0)
        rc = sv_snapshot_describe(sv__svc_snapshot(r->svc), collection, snapshot, key, &v->schema, &v->shards, &v->n,
                                  err);
    if (rc) {
        if (v)
            view_free(v);
        return rc;
    }
    v->r = r;
    snprintf(v->collection, sizeof v->collection, "%s", collection);
    snprintf(v->snapshot, sizeof v->snapshot, "%s", snapshot);
    v->users = 1;
    pthread_mutex_lock(&mc->mu);
    for (mview *o = mc->views; o; o = o->next)
        if (!strcmp(o->collection, collection) && !strcmp(o->snapshot, snapshot)) { /* raced: use theirs */
            o->users++;
            pthread_mutex_unlock(&mc->mu);
            view_free(v);
            *out = o;
            return 0;
        }
    v->next = mc->views;
    mc->views = v;
    pthread_mutex_unlock(&mc->mu);
    *out = v;
    return 0;
}

static void view_put(mview *v)
{
    if (!v)
        return;
    struct sv_mounts *mc = v->r->mcache;
    pthread_mutex_lock(&mc->mu);
    bool last = --v->users == 0 && v->dead;
    pthread_mutex_unlock(&mc->mu);
    if (last)
        view_free(v);
}

/* Unmount: drops the view and the idle handles; SV_ECONFLICT if a read is on. */
static int views_drop(sv_registry *r, const char *collection, const char *snapshot, sv_err *err)
{
    struct sv_mounts *mc = r->mcache;
    int busy = 0;
    pthread_mutex_lock(&mc->mu);
    mhandle *idle = take_idle(mc, collection, snapshot, INT64_MAX, &busy);
    mview *dead = NULL;
    if (!busy)
        for (mview **pp = &mc->views; *pp; pp = &(*pp)->next)
            if (!strcmp((*pp)->collection, collection) && !strcmp((*pp)->snapshot, snapshot)) {
                dead = *pp;
                *pp = dead->next;
                dead->dead = true;
                if (dead->users)
                    dead = NULL; /* its last user frees it */
                break;
            }
    pthread_mutex_unlock(&mc->mu);
    free_handles(idle);
    if (dead)
        view_free(dead);
    if (busy)
        return sv_fail(err, SV_ECONFLICT, "snapshot '%s' of collection '%s' is being read; unmount it when done",
                       snapshot, collection);
    return 0;
}

/* One shard opened for a request. */
typedef struct mshard {
    mhandle *h;
    sv_db *db;
    const char *name;
} mshard;

static int mshard_open(mview *m, size_t i, mshard *out, sv_err *err)
{
    memset(out, 0, sizeof *out);
    out->name = m->shards[i].name;
    struct sv_mounts *mc = m->r->mcache;
    char name[210];
    mount_name(m->snapshot, m->shards[i].name, name);
    pthread_mutex_lock(&mc->mu);
    for (mhandle *h = mc->handles; h; h = h->next)
        if (!strcmp(h->collection, m->collection) && !strcmp(h->name, name)) {
            h->users++;
            out->h = h;
            out->db = h->db;
            pthread_mutex_unlock(&mc->mu);
            return 0;
        }
    pthread_mutex_unlock(&mc->mu);
    mhandle *h = calloc(1, sizeof *h);
    if (!h)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    snprintf(h->collection, sizeof h->collection, "%s", m->collection);
    snprintf(h->name, sizeof h->name, "%s", name);
    int rc = sv_registry_acquire(m->r, m->collection, name, sv_store_acquire_timeout_ms(sv__svc_store(m->r->svc)),
                                 &h->ref, err);
    if (rc == SV_ETIMEOUT) { /* still hydrating: worth a retry (503 with Retry-After, SHARDVAULT_ACQUIRE_TIMEOUT) */
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        rc = sv_fail(err, SV_EUNAVAIL, "%.400s; retry shortly (SHARDVAULT_ACQUIRE_TIMEOUT)", why);
    }
    char current[1400];
    if (rc == 0) {
        snprintf(current, sizeof current, "%s/CURRENT", sv_shard_ref_dir(h->ref));
        if (sv_path_exists(current))
            rc = sv_db_open_readonly(sv_store_engine(sv__svc_store(m->r->svc)), sv_shard_ref_dir(h->ref), &h->db, err);
    }
    if (rc) {
        handle_free(h);
        return rc;
    }
    h->users = 1;
    pthread_mutex_lock(&mc->mu);
    h->next = mc->handles;
    mc->handles = h;
    pthread_mutex_unlock(&mc->mu);
    out->h = h;
    out->db = h->db;
    return 0;
}

static void mshard_close(mshard *s, mview *m)
{
    if (s->h) {
        struct sv_mounts *mc = m->r->mcache;
        pthread_mutex_lock(&mc->mu);
        s->h->users--;
        s->h->last_ms = sv_now_ms();
        pthread_mutex_unlock(&mc->mu);
    }
    memset(s, 0, sizeof *s);
}

/* The shard an object (or tenant) lives in, as the store routes it. */
static int route(const mview *m, const sv_uuid *id, const char *tenant, size_t *out, sv_err *err)
{
    if (m->schema->multi_tenancy) {
        if (!tenant || !*tenant)
            return sv_fail(err, SV_EINVAL, "collection '%s' is multi-tenant; name the tenant (?tenant= or \"tenant\")",
                           m->collection);
        for (size_t i = 0; i < m->n; i++)
            if (strcmp(m->shards[i].name, tenant) == 0) {
                *out = i;
                return 0;
            }
        return sv_fail(err, SV_ENOTFOUND, "tenant '%.64s' is not in snapshot '%s'", tenant, m->snapshot);
    }
    if (tenant && *tenant)
        return sv_fail(err, SV_EINVAL, "collection '%s' is not multi-tenant; remove the tenant", m->collection);
    if (m->n == 0)
        return sv_fail(err, SV_ENOTFOUND, "snapshot '%s' has no shards", m->snapshot);
    char want[16];
    snprintf(want, sizeof want, "shard%04u", (unsigned)(sv_hash64(id->b, 16) % m->n));
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->shards[i].name, want) == 0) {
            *out = i;
            return 0;
        }
    return sv_fail(err, SV_ECORRUPT, "snapshot '%s' lacks %s", m->snapshot, want);
}

/* The stored encoding of object id (caller frees *val); SV_ENOTFOUND if
 * the snapshot does not hold it. */
static int read_raw(mview *m, mshard *s, const sv_uuid *id, char **val, size_t *vlen, sv_err *err)
{
    *val = NULL;
    int rc = s->db ? sv_db_get(s->db, id->b, 16, val, vlen, err) : SV_ENOTFOUND;
    if (rc == SV_ENOTFOUND) {
        char u[37];
        sv_uuid_format(id, u);
        free(*val);
        *val = NULL;
        return sv_fail(err, SV_ENOTFOUND, "object %s is not in snapshot '%s' of collection '%s'", u, m->snapshot,
                       m->collection);
    }
    return rc;
}

/* Appends object id's JSON; SV_ENOTFOUND if the snapshot does not hold it. */
static int read_one(mview *m, mshard *s, const sv_uuid *id, sv_record *rec, sv_buf *out, sv_err *err)
{
    char *val = NULL;
    size_t vlen = 0;
    int rc = read_raw(m, s, id, &val, &vlen, err);
    if (rc == 0 && (rc = sv_record_decode(rec, m->schema, val, vlen, err)) == 0) {
        rec->id = *id;
        rc = sv_record_to_json(rec, m->schema, m->collection, m->schema->multi_tenancy ? s->name : NULL, out);
    }
    free(val);
    return rc;
}

static int parse_id(const char *id, sv_uuid *u, sv_err *err)
{
    if (!id || sv_uuid_parse(id, strlen(id), u))
        return sv_fail(err, SV_EINVAL, "'%.40s' is not a UUID (like 6f1c1e1e-8e0a-4c1b-9b58-0f6a0c3a8d4e)",
                       id ? id : "");
    return 0;
}

int sv_registry_snapshot_get_object(sv_registry *r, const char *collection, const char *snapshot, const char *tenant,
                                    const char *id, sv_buf *out, sv_err *err)
{
    sv_uuid u;
    int rc = parse_id(id, &u, err);
    mview *mv = NULL;
    if (rc || (rc = view_get(r, collection, snapshot, &mv, err)) != 0)
        return rc;
    size_t i;
    mshard s;
    sv_record *rec = sv_record_new();
    if (!rec)
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    if (rc == 0 && (rc = route(mv, &u, tenant, &i, err)) == 0 && (rc = mshard_open(mv, i, &s, err)) == 0) {
        rc = read_one(mv, &s, &u, rec, out, err);
        mshard_close(&s, mv);
    }
    sv_record_free(rec);
    view_put(mv);
    return rc;
}

/* Positions it after `after` (NULL: at the start); keys of 16 bytes are
 * objects, longer ones (bookkeeping) sort after them all. */
static bool at_object(sv_db_iter *it)
{
    size_t kl = 0;
    return sv_db_iter_valid(it) && sv_db_iter_key(it, &kl) && kl == 16;
}

int sv_registry_snapshot_list_objects(sv_registry *r, const char *collection, const char *snapshot, const char *tenant,
                                      const char *after, int limit, sv_buf *out, sv_err *err)
{
    if (limit <= 0 || limit > MOUNT_LIST_MAX)
        return sv_fail(err, SV_EINVAL, "limit must be between 1 and %d", MOUNT_LIST_MAX);
    sv_uuid start;
    int rc = after && *after ? parse_id(after, &start, err) : 0;
    mview *mv = NULL;
    if (rc || (rc = view_get(r, collection, snapshot, &mv, err)) != 0)
        return rc;
    /* Which shards: a tenant's one, or every fixed shard (merged by id). */
    size_t first = 0, count = mv->n;
    if (mv->schema->multi_tenancy || (tenant && *tenant)) {
        sv_uuid zero = {{0}};
        rc = route(mv, &zero, tenant, &first, err);
        count = 1;
    }
    mshard *sh = calloc(count + 1, sizeof *sh);
    sv_db_iter **its = calloc(count + 1, sizeof *its);
    sv_record *rec = sv_record_new();
    if (rc == 0 && (!sh || !its || !rec))
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    for (size_t k = 0; rc == 0 && k < count; k++) {
        if ((rc = mshard_open(mv, first + k, &sh[k], err)) != 0)
            break;
        if (sh[k].db && (its[k] = sv_db_iter_new(sh[k].db)) != NULL) {
            if (after && *after) {
                sv_db_iter_seek(its[k], start.b, 16);
                size_t kl;
                const char *key = at_object(its[k]) ? sv_db_iter_key(its[k], &kl) : NULL;
                if (key && memcmp(key, start.b, 16) == 0)
                    sv_db_iter_next(its[k]);
            } else {
                sv_db_iter_seek_first(its[k]);
            }
        }
    }
    if (rc == 0)
        rc = sv_buf_append_str(out, "{\"objects\":[") ? sv_fail(err, SV_ENOMEM, "out of memory") : 0;
    int emitted = 0;
    sv_uuid last;
    bool more = false;
    while (rc == 0) {
        ssize_t best = -1;
        const char *bk = NULL;
        for (size_t k = 0; k < count; k++) {
            size_t kl;
            const char *key = its[k] && at_object(its[k]) ? sv_db_iter_key(its[k], &kl) : NULL;
            if (key && (!bk || memcmp(key, bk, 16) < 0)) {
                bk = key;
                best = (ssize_t)k;
            }
        }
        if (best < 0)
            break;
        if (emitted == limit) {
            more = true;
            break;
        }
        sv_uuid id;
        memcpy(id.b, bk, 16);
        size_t vl;
        const char *val = sv_db_iter_value(its[best], &vl);
        if (emitted && sv_buf_putc(out, ','))
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
        if (rc == 0 && (rc = sv_record_decode(rec, mv->schema, val, vl, err)) == 0) {
            rec->id = id;
            rc = sv_record_to_json(rec, mv->schema, mv->collection, mv->schema->multi_tenancy ? sh[best].name : NULL, out);
        }
        last = id;
        emitted++;
        sv_db_iter_next(its[best]);
    }
    if (rc == 0) {
        char next[40] = "null";
        if (more) {
            char u[37];
            sv_uuid_format(&last, u);
            snprintf(next, sizeof next, "\"%s\"", u);
        }
        rc = sv_buf_printf(out, "],\"next\":%s}", next) ? sv_fail(err, SV_ENOMEM, "out of memory") : 0;
    }
    for (size_t k = 0; its && sh && k < count; k++) {
        if (its[k])
            sv_db_iter_free(its[k]);
        if (sh[k].h)
            mshard_close(&sh[k], mv);
    }
    free(its);
    free(sh);
    sv_record_free(rec);
    view_put(mv);
    return rc;
}

/* body: {"ids": [...], "tenant"?, "onConflict": "replace" | "skip"} ->
 * {"restored", "skipped", "missing": [ids]}. Objects are written with the
 * store's own checks (the live schema must still accept them). */
int sv_registry_snapshot_restore_objects(sv_registry *r, const char *collection, const char *snapshot, json_t *body,
                                         json_t **out, sv_err *err)
{
    json_t *ids = json_is_object(body) ? json_object_get(body, "ids") : NULL;
    json_t *tj = json_is_object(body) ? json_object_get(body, "tenant") : NULL;
    json_t *cj = json_is_object(body) ? json_object_get(body, "onConflict") : NULL;
    const char *tenant = json_string_value(tj);
    const char *conflict = cj ? json_string_value(cj) : "replace";
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > MOUNT_LIST_MAX)
        return sv_fail(err, SV_EINVAL, "ids must be an array of 1 to %d object ids", MOUNT_LIST_MAX);
    if (tj && !tenant)
        return sv_fail(err, SV_EINVAL, "tenant must be a string");
    if (!conflict || (strcmp(conflict, "replace") && strcmp(conflict, "skip")))
        return sv_fail(err, SV_EINVAL, "onConflict must be \"replace\" or \"skip\"");
    static const char *const known[] = {"ids", "tenant", "onConflict"};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < 3; i++)
            ok |= strcmp(k, known[i]) == 0;
        if (!ok)
            return sv_fail(err, SV_EINVAL, "unknown field '%.40s' (expected ids, tenant, onConflict)", k);
    }
    size_t n = json_array_size(ids);
    sv_uuid *u = calloc(n, sizeof *u);
    if (!u)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *idv = json_array_get(ids, i);
        if (!json_is_string(idv))
            rc = sv_fail(err, SV_EINVAL, "ids[%zu] must be a UUID string", i);
        else if (parse_id(json_string_value(idv), &u[i], err))
            rc = sv_err_wrap(err, "ids[%zu]", i);
        for (size_t p = 0; rc == 0 && p < i; p++)
            if (!memcmp(u[p].b, u[i].b, 16))
                rc = sv_fail(err, SV_EINVAL, "ids[%zu] repeats ids[%zu] (%s): list each id once", i, p,
                             json_string_value(idv));
    }
    mview *mv = NULL;
    if (rc || (rc = view_get(r, collection, snapshot, &mv, err)) != 0) {
        free(u);
        return rc;
    }
    sv_store *st = sv__svc_store(r->svc);
    /* Same schema as the live collection: the stored bytes go back as they
     * are (creation and update times included); else through the API shape. */
    sv_schema *live = NULL;
    bool same = false;
    if (sv_store_schema(st, collection, &live, NULL) == 0) {
        char *a = sv_schema_to_json(live), *b = sv_schema_to_json(mv->schema);
        same = a && b && strcmp(a, b) == 0;
        free(a);
        free(b);
        sv_schema_free(live);
    }
    mshard *open = calloc(mv->n + 1, sizeof *open);
    sv_record *rec = sv_record_new();
    json_t *missing = json_array();
    int64_t restored = 0, skipped = 0;
    if (!open || !rec || !missing)
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    sv_buf obj = {0}, scratch = {0};
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char idtxt[37];
        sv_uuid_format(&u[i], idtxt);
        size_t si;
        if ((rc = route(mv, &u[i], tenant, &si, err)) != 0)
            break;
        if (!open[si].h && (rc = mshard_open(mv, si, &open[si], err)) != 0)
            break;
        obj.len = 0;
        sv_err e2 = {0};
        char *raw = NULL;
        size_t rawlen = 0;
        int x = same ? read_raw(mv, &open[si], &u[i], &raw, &rawlen, &e2) : read_one(mv, &open[si], &u[i], rec, &obj, &e2);
        if (x == SV_ENOTFOUND) {
            json_array_append_new(missing, json_string(idtxt));
            continue;
        }
        if (x) {
            rc = sv_fail(err, x, "%s", e2.msg);
            break;
        }
        if (strcmp(conflict, "skip") == 0) {
            scratch.len = 0;
            x = sv_store_get_object(st, collection, tenant, idtxt, &scratch, &e2);
            if (x == 0) {
                free(raw);
                skipped++;
                continue;
            }
            if (x != SV_ENOTFOUND) {
                free(raw);
                rc = sv_fail(err, x, "%s", e2.msg);
                break;
            }
        }
        scratch.len = 0;
        if (same)
            rc = sv_store_put_encoded(st, collection, tenant, &u[i], raw, rawlen, err);
        else
            rc = sv_store_put_object(st, collection, idtxt, tenant, (const char *)obj.data, obj.len, &scratch, err);
        free(raw);
        if (rc) {
            /* in a cluster the object's shard may live on another node: say
             * where to restore it (mounts and their restores are per node) */
            char owner[65] = "", sname[72] = "";
            sv_err oe = {0};
            if (sv_store_placement_on(st) && sv_store_owner(st, collection, tenant, idtxt, owner, sname, &oe) == 0 &&
                owner[0] && strcmp(owner, sv_store_node(st)))
                rc = sv_fail(err, SV_EUNAVAIL,
                             "restoring object %s: it belongs to %s %s, on node %s; a restore of selected objects "
                             "writes only this node's shards: mount snapshot '%s' on node %s and restore it there",
                             idtxt, tenant ? "tenant" : "shard", tenant ? tenant : sname, owner, snapshot, owner);
            else
                sv_err_wrap(err, "restoring object %s", idtxt);
        } else {
            restored++;
        }
    }
    for (size_t i = 0; open && i < mv->n; i++)
        if (open[i].h)
            mshard_close(&open[i], mv);
    free(open);
    sv_buf_free(&obj);
    sv_buf_free(&scratch);
    sv_record_free(rec);
    view_put(mv);
    free(u);
    if (rc) {
        json_decref(missing);
        return rc;
    }
    *out = json_pack("{s:I,s:I,s:o}", "restored", (json_int_t)restored, "skipped", (json_int_t)skipped, "missing",
                     missing);
    return *out ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
}
