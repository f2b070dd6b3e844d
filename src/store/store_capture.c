/* store — point-in-time capture and adoption. */

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

/* ---- capture and adoption ---------------------------------------------- */

const char *sv_store_tmp_dir(const sv_store *st) { return st->tmp_dir; }

int64_t sv_store_list_page_bytes(const sv_store *st) { return st->list_page_bytes; }

struct sv_engine *sv_store_engine(const sv_store *st) { return st->engine; }

void sv_capture_free(sv_capture *cap)
{
    if (!cap)
        return;
    sv_schema_free(cap->schema);
    free(cap->shards);
    free(cap);
}

int sv_store_capture_ex(sv_store *st, const char *name, const char *dst_dir, unsigned flags, sv_capture **out,
                        sv_err *err)
{
    bool local_only = flags & SV_CAPTURE_LOCAL;
    collection *c;
    int rc = store_coll_get(st, name, &c, err);
    if (rc)
        return rc;
    if (sv_path_exists(dst_dir)) {
        store_coll_release(st, c);
        return sv_fail(err, SV_EEXIST, "capture directory %s already exists", dst_dir);
    }
    pthread_rwlock_rdlock(&c->tenants_lock);
    for (size_t i = 0; rc == 0 && !local_only && i < c->nshards; i++)
        if (!store_shard_local(st, c->shards[i]))
            rc = sv_fail(err, SV_EUNSUPPORTED,
                         "collection '%s' has shards on other nodes (%s on node %s): a capture across nodes (the "
                         "cluster-wide cut for exports and snapshots) is not built yet; only collections whose "
                         "shards all live on one node can be captured",
                         c->name, c->shards[i]->name, c->shards[i]->node);
    pthread_rwlock_unlock(&c->tenants_lock);
    if (rc) {
        store_coll_release(st, c);
        return rc;
    }
    if ((rc = sv_mkdirs(dst_dir, err)) != 0) {
        store_coll_release(st, c);
        return rc;
    }
    sv_capture *cap = calloc(1, sizeof *cap);
    /* The shard set cannot change while we hold tenants_lock (adding and
     * deleting tenants take it for writing). */
    pthread_rwlock_rdlock(&c->tenants_lock);
    /* The shards captured: all of them, or this node's (SV_CAPTURE_LOCAL). */
    shard **sel = calloc(c->nshards + 1, sizeof *sel);
    size_t n = 0;
    for (size_t i = 0; sel && i < c->nshards; i++)
        if (!local_only || store_shard_local(st, c->shards[i]))
            sel[n++] = c->shards[i];
    bool *entered = calloc(n + 1, sizeof *entered);
    if (!cap || !sel || !entered || !(cap->shards = calloc(n + 1, sizeof *cap->shards)) ||
        !(cap->schema = sv_schema_dup(c->schema)))
        rc = store_oom(err);
    /* Enter every shard: open ACTIVE ones, pin INACTIVE ones (a reader lock
     * keeps anyone from opening them meanwhile). */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        shard *s = sel[i];
        sv_shard_capture *sc = &cap->shards[i];
        snprintf(sc->name, sizeof sc->name, "%s", s->name);
        sc->is_tenant = c->schema->multi_tenancy;
        sc->objects = -1;
        pthread_rwlock_rdlock(&s->use);
        if (!s->db && s->status == SHARD_ACTIVE && sv_path_exists(s->dir)) {
            pthread_rwlock_unlock(&s->use);
            sv_err e2 = {0};
            if (store_shard_enter(st, c, s, &e2) != 0) {
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
        if (sel[i]->db)
            pthread_mutex_lock(&sel[i]->write_mu);
    cap->captured_at = sv_now_ms();
    int rc2 = rc;
    for (size_t i = 0; rc2 == 0 && i < n; i++) {
        shard *s = sel[i];
        sv_shard_capture *sc = &cap->shards[i];
        if ((size_t)snprintf(sc->dir, sizeof sc->dir, "%s/%s", dst_dir, s->name) >= sizeof sc->dir) {
            rc2 = sv_fail(err, SV_EINVAL, "capture directory path too long");
            break;
        }
        sc->was_active = s->db != NULL;
        if (s->status == SHARD_OFFLOADED || s->status == SHARD_ONLOADING) {
            continue; /* its files are in the location: laid out below, writers no longer held */
        } else if (s->db) {
            sc->objects = s->objects;
            rc2 = sv_db_checkpoint(s->db, sc->dir, err);
        } else if (sv_path_exists(s->dir)) {
            rc2 = sv_db_checkpoint_closed(s->dir, sc->dir, err);
            /* The exact count is in the checkpoint: one point read, no scan. */
            sv_db *db = NULL;
            if (rc2 == 0 && (rc2 = sv_db_open_readonly(st->engine, sc->dir, &db, err)) == 0) {
                sc->objects = store_read_count(db);
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
        if (sel[i]->db)
            pthread_mutex_unlock(&sel[i]->write_mu);
    /* Offloaded tenants cannot change while we hold their use lock (a status
     * change takes it for writing), so laying them out now is still the same
     * instant. Their object count is the one recorded at offload. */
    for (size_t i = 0; rc == 0 && rc2 == 0 && i < n; i++) {
        shard *s = sel[i];
        sv_shard_capture *sc = &cap->shards[i];
        if (s->status != SHARD_OFFLOADED && s->status != SHARD_ONLOADING)
            continue;
        sv_err me = {0};
        int mrc = st->mover.materialize ? st->mover.materialize(st->mover.self, c->name, s->name, sc->dir, &me)
                                        : sv_fail(&me, SV_EUNSUPPORTED, "no mover is set");
        sc->objects = s->objects >= 0 ? s->objects : 0;
        if (mrc) { /* the caller decides: export skips it, a snapshot fails */
            sc->status = SV_CAPTURE_UNAVAILABLE;
            sc->dir[0] = '\0';
            snprintf(sc->reason, sizeof sc->reason, "offloaded tenant %s could not be read: %.400s", s->name, me.msg);
            sv_warn("offloaded tenant not captured", "collection=%s tenant=%s error=\"%s\"", c->name, s->name,
                    me.msg);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (entered && entered[i])
            pthread_rwlock_unlock(&sel[i]->use);
    pthread_rwlock_unlock(&c->tenants_lock);
    free(entered);
    free(sel);
    if (rc == 0)
        rc = rc2;
    if (cap) {
        snprintf(cap->collection, sizeof cap->collection, "%s", c->name);
        cap->nshards = n;
    }
    store_coll_release(st, c);
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

int sv_store_capture(sv_store *st, const char *name, const char *dst_dir, sv_capture **out, sv_err *err)
{
    return sv_store_capture_ex(st, name, dst_dir, 0, out, err);
}

/* fsyncs the destination parent (root), the directory holding it (root may
 * be new), and every distinct parent the shard directories came from. */
static int fsync_adopted_dirs(sv_store *st, const char *root, const char *const *dirs, size_t n, sv_err *err)
{
    char shards_dir[1100];
    snprintf(shards_dir, sizeof shards_dir, "%s/shards", st->data_dir);
    int rc = store_fsync_dir(root, err);
    if (rc == 0)
        rc = store_fsync_dir(shards_dir, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char parent[1200];
        if (store_parent_dir(dirs[i], parent, sizeof parent) != 0)
            return sv_fail(err, SV_EINVAL, "shard directory path too long: %.100s", dirs[i]);
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            char other[1200];
            seen = store_parent_dir(dirs[j], other, sizeof other) == 0 && strcmp(other, parent) == 0;
        }
        if (!seen)
            rc = store_fsync_dir(parent, err);
    }
    if (rc)
        sv_err_wrap(err, "making the adopted shard directories durable");
    return rc;
}

static bool uid_valid(const char *uid)
{
    if (!uid || strlen(uid) != 16)
        return false;
    for (const char *p = uid; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* nodes (may be NULL): each shard's owner ("" or this node: dirs[i] is
 * moved in; another node: it laid the shard out with sv_store_place_shard
 * under uid, dirs[i] is not used). */
static bool placed_here(sv_store *st, const char *const *nodes, size_t i)
{
    return !nodes || !nodes[i] || !nodes[i][0] || !strcmp(nodes[i], st->node);
}

int sv_store_adopt_collection(sv_store *st, const char *schema_json, size_t len, const char *const *names,
                              const char *const *dirs, size_t n, json_t **out, sv_err *err)
{
    return sv_store_adopt_collection_placed(st, schema_json, len, names, dirs, NULL, NULL, n, out, err);
}

int sv_store_adopt_collection_placed(sv_store *st, const char *schema_json, size_t len, const char *const *names,
                                     const char *const *dirs, const char *const *nodes, const char *uid, size_t n,
                                     json_t **out, sv_err *err)
{
    if (uid && !uid_valid(uid))
        return sv_fail(err, SV_EINVAL, "a collection uid is 16 lower-case hex digits");
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
        if (rc == 0 && nodes && nodes[i] && nodes[i][0] && sv_check_tenant_name(nodes[i], NULL) != 0)
            rc = sv_fail(err, SV_EINVAL, "shard '%s': invalid node name", names[i]);
        if (rc == 0 && placed_here(st, nodes, i) && !sv_path_exists(dirs[i]))
            rc = sv_fail(err, SV_ENOTFOUND, "shard directory %s does not exist", dirs[i]);
    }
    if (rc) {
        sv_schema_free(schema);
        return rc;
    }
    pthread_mutex_lock(&st->ddl_mu);
    collection *c;
    if ((rc = store_new_collection_uid_locked(st, schema, uid, &c, err)) != 0) {
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
    char root[1100];
    store_coll_dir(st, c, root, sizeof root);
    for (size_t i = 0; rc == 0 && schema->multi_tenancy && i < n; i++) {
        shard *s = store_shard_new(root, names[i], SHARD_ACTIVE);
        if (s && !placed_here(st, nodes, i))
            snprintf(s->node, sizeof s->node, "%s", nodes[i]);
        if (!s || store_insert_tenant(c, s) != 0) {
            store_shard_free(st, s);
            rc = store_oom(err);
        }
    }
    for (size_t i = 0; rc == 0 && !schema->multi_tenancy && i < n && i < c->nshards; i++)
        if (!placed_here(st, nodes, i))
            snprintf(c->shards[i]->node, sizeof c->shards[i]->node, "%s", nodes[i]);
    if (rc == 0)
        rc = sv_mkdirs(root, err);
    size_t moved = 0;
    for (; rc == 0 && moved < n; moved++) {
        if (!placed_here(st, nodes, moved))
            continue;
        char identity[1300], target[1200];
        /* A fresh identity: RocksDB writes a new IDENTITY when it is missing. */
        snprintf(identity, sizeof identity, "%s/IDENTITY", dirs[moved]);
        unlink(identity);
        snprintf(target, sizeof target, "%s/%s", root, names[moved]);
        if (rename(dirs[moved], target) != 0)
            rc = sv_fail(err, SV_EIO, "cannot move %s to %s: %s", dirs[moved], target, strerror(errno));
    }
    /* Renames are durable only once both parents are fsynced: before the
     * catalog names the collection, or a power loss could leave it naming
     * shards that come back empty. */
    if (rc == 0) {
        const char **mine = calloc(n + 1, sizeof *mine);
        size_t nmine = 0;
        for (size_t i = 0; mine && i < n; i++)
            if (placed_here(st, nodes, i))
                mine[nmine++] = dirs[i];
        rc = mine ? fsync_adopted_dirs(st, root, mine, nmine, err) : store_oom(err);
        free(mine);
    }
    if (rc == 0) {
        STORE_HOOK("adopt:before_commit", c->name);
        rc = store_persist_new_collection(st, c, err);
    }
    if (rc == 0)
        rc = store_add_collection_to_view(st, c) ? store_oom(err) : 0;
    if (rc) {
        /* Put back what was moved so the caller can retry or clean up. */
        for (size_t i = 0; i < moved; i++) {
            if (!placed_here(st, nodes, i))
                continue;
            char target[1200];
            snprintf(target, sizeof target, "%s/%s", root, names[i]);
            rename(target, dirs[i]);
        }
        sv_err ignored;
        sv_rmtree(root, &ignored);
        store_collection_free(st, c);
        pthread_mutex_unlock(&st->ddl_mu);
        return rc;
    }
    ssize_t reserved = store_reserved_index(st, c->name);
    if (reserved >= 0)
        store_reserved_remove(st, (size_t)reserved); /* the restore that reserved it is done */
    pthread_mutex_unlock(&st->ddl_mu);
    sv_info("collection adopted", "collection=%s shards=%zu", c->name, n);
    if (out)
        *out = store_collection_json(c);
    return 0;
}

int sv_store_place_shard(sv_store *st, const char *uid, const char *name, const char *dir, sv_err *err)
{
    if (!uid_valid(uid))
        return sv_fail(err, SV_EINVAL, "a collection uid is 16 lower-case hex digits");
    int rc = sv_check_tenant_name(name, err);
    if (rc)
        return rc;
    char root[1100], target[1200], identity[1300];
    snprintf(root, sizeof root, "%s/shards/%s", st->data_dir, uid);
    snprintf(target, sizeof target, "%s/%s", root, name);
    snprintf(identity, sizeof identity, "%s/IDENTITY", dir);
    unlink(identity); /* a fresh identity: RocksDB writes a new one when it is missing */
    if ((rc = sv_mkdirs(root, err)) != 0 || (rc = sv_rmtree(target, err)) != 0)
        return rc;
    if (rename(dir, target) != 0)
        return sv_fail(err, SV_EIO, "cannot move %s to %s: %s", dir, target, strerror(errno));
    const char *dirs[1] = {dir};
    return fsync_adopted_dirs(st, root, dirs, 1, err);
}

void sv_store_unplace(sv_store *st, const char *uid)
{
    if (!uid_valid(uid))
        return;
    /* Never a collection this node serves. */
    pthread_rwlock_rdlock(&st->lock);
    bool used = false;
    for (size_t i = 0; i < st->ncolls && !used; i++)
        used = !strcmp(st->colls[i]->uid, uid);
    pthread_rwlock_unlock(&st->lock);
    if (used)
        return;
    char root[1100];
    snprintf(root, sizeof root, "%s/shards/%s", st->data_dir, uid);
    sv_err ignored;
    sv_rmtree(root, &ignored);
}
