/* What maintenance needs from the snapshot service, as typed calls: the
 * location, the write guard and change notice, manifests read and summarized,
 * records built from manifests or checkpoints, and the damaged mark. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "location.h"
#include "snapshot_internal.h"

sv_location *sv_snapshot_location(sv_snapshot *s) { return s->loc; }
const char *sv_snapshot_location_url(const sv_snapshot *s) { return s->url; }

bool sv_snapshot_location_is_own(const sv_snapshot *s)
{
    char own[PATH_MAX + 64];
    snprintf(own, sizeof own, "file://%s/", s->data_dir);
    return !strncmp(s->url, own, strlen(own));
}

int sv_snapshot_set_location(sv_snapshot *s, const char *url, sv_err *err)
{
    sv_location *nl = NULL;
    int rc = sv_location_open(url, NULL, &nl, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->ddl_mu);
    pthread_mutex_lock(&s->gc_mu);
    pthread_mutex_lock(&s->mu);
    if (s->creates || s->runs || s->gc_running)
        rc = sv_fail(err, SV_ECONFLICT, "snapshots are being created or restored, or GC runs; retry when idle");
    else if (s->nretired_locs >= (int)(sizeof s->retired_locs / sizeof s->retired_locs[0]))
        rc = sv_fail(err, SV_ECONFLICT, "too many location switches in one process; restart the server first");
    if (rc == 0) {
        s->retired_locs[s->nretired_locs++] = s->loc;
        s->loc = nl;
        snprintf(s->url, sizeof s->url, "%s", url);
        size_t ul = strlen(s->url);
        while (ul > 8 && s->url[ul - 1] == '/')
            s->url[--ul] = '\0';
    }
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->gc_mu);
    pthread_mutex_unlock(&s->ddl_mu);
    if (rc)
        sv_location_close(nl);
    else
        sv_info("snapshot location switched", "location=\"%s\"", sv_location_describe(nl));
    return rc;
}

void sv_snapshot_set_hooks(sv_snapshot *s, const sv_snapshot_hooks *hooks)
{
    pthread_mutex_lock(&s->mu);
    s->hooks = hooks ? *hooks : (sv_snapshot_hooks){0};
    pthread_mutex_unlock(&s->mu);
}

int sv_snap_may_write(sv_snapshot *s, sv_err *err)
{
    pthread_mutex_lock(&s->mu);
    sv_snapshot_hooks h = s->hooks;
    pthread_mutex_unlock(&s->mu);
    return h.before_write ? h.before_write(h.ud, err) : 0;
}

void sv_snap_changed(sv_snapshot *s)
{
    pthread_mutex_lock(&s->mu);
    sv_snapshot_hooks h = s->hooks;
    pthread_mutex_unlock(&s->mu);
    if (h.changed)
        h.changed(h.ud);
}

int sv_snapshot_manifest_load(sv_snapshot *s, const char *key, sv_manifest **out, int64_t *json_bytes, sv_err *err)
{
    *out = NULL;
    sv_buf b = {0};
    int rc = sv_location_check_key(key, err);
    if (rc == 0)
        rc = sv_location_get_buf(s->loc, key, &b, err);
    /* A manifest is never empty: a store that shows a just-written object
     * before its bytes (s3rver does, now and then) is asked again. */
    for (int tries = 0; rc == 0 && b.len == 0 && tries < 5; tries++) {
        sv_sleep_ms(100);
        sv_buf_free(&b);
        rc = sv_location_get_buf(s->loc, key, &b, err);
    }
    if (rc == 0 && json_bytes)
        *json_bytes = (int64_t)b.len;
    if (rc == 0) {
        rc = sv_manifest_parse((const char *)b.data, b.len, out, err);
        if (rc)
            sv_err_wrap(err, "manifest %s", key);
    }
    sv_buf_free(&b);
    return rc;
}

void sv_snapshot_manifest_free(sv_manifest *m) { sv_manifest_free(m); }

void sv_snapshot_manifest_info_of(const sv_manifest *m, sv_snapshot_manifest_info *out)
{
    size_t nf = 0;
    for (size_t i = 0; i < m->nshards; i++)
        nf += m->shards[i].nfiles;
    *out = (sv_snapshot_manifest_info){m->collection, m->name, m->objects, m->bytes, m->created_at, m->captured_at,
                                       m->nshards, nf};
}

int sv_snapshot_manifest_blobs(const sv_manifest *m, int (*fn)(void *ud, const char *hex, int64_t size), void *ud)
{
    for (size_t i = 0; i < m->nshards; i++)
        for (size_t k = 0; k < m->shards[i].nfiles; k++) {
            int rc = fn(ud, m->shards[i].files[k].blob, m->shards[i].files[k].size);
            if (rc)
                return rc;
        }
    return 0;
}

void sv_snapshot_blob_key(const char *hex, char key[80]) { sv_blob_key(hex, key); }

int sv_snapshot_record_of_manifest(sv_snapshot *s, const sv_manifest *m, char key[400], char **val, sv_err *err)
{
    *val = NULL;
    int rc = sv_snap_check_names(m->collection, m->name, err);
    if (rc)
        return rc;
    json_t *shards = json_array();
    for (size_t i = 0; shards && i < m->nshards; i++) {
        const sv_manifest_shard *ms = &m->shards[i];
        json_array_append_new(shards, json_pack("{s:s,s:I,s:I,s:I}", "name", ms->name, "objects",
                                                (json_int_t)ms->objects, "files", (json_int_t)ms->nfiles, "bytes",
                                                (json_int_t)ms->bytes));
    }
    char loc_str[PATH_MAX + 400];
    snprintf(loc_str, sizeof loc_str, "%s/snapshots/%s/%s", s->url, m->collection, m->name);
    /* committedAt: the manifest is written just before the commit, so its
     * capture time is the closest the location knows. */
    json_t *rec = shards ? json_pack("{s:i,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:n,s:I,s:I,s:I,s:o,s:s,s:s,s:s,s:b}",
                                     "format_version", 1, "name", m->name, "description", m->description,
                                     "collection", m->collection, "status", "COMMITTED", "createdAt",
                                     (json_int_t)m->created_at, "capturedAt", (json_int_t)m->captured_at,
                                     "committedAt", (json_int_t)m->captured_at, "error", "objects",
                                     (json_int_t)m->objects, "bytes", (json_int_t)m->bytes, "bytesUploaded",
                                     (json_int_t)0, "shards", shards, "location", loc_str, "node", s->node, "boot",
                                     s->boot, "rebuilt", true)
                         : NULL;
    if (!rec)
        return sv_snap_oom(err);
    sv_snap_record_key(m->collection, m->name, key);
    *val = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    return *val ? 0 : sv_snap_oom(err);
}

int sv_snapshot_record_kv(const json_t *rec, char key[400], char **val, sv_err *err)
{
    *val = NULL;
    const char *c = json_string_value(json_object_get(rec, "collection"));
    const char *n = json_string_value(json_object_get(rec, "name"));
    int rc = !c || !n ? sv_fail(err, SV_ECORRUPT, "a snapshot record lacks its collection or name")
                      : sv_snap_check_names(c, n, err);
    if (rc == 0 && sv_snap_record_state((json_t *)rec) != SNAP_COMMITTED)
        rc = sv_fail(err, SV_ECORRUPT, "snapshot record %s/%s is not COMMITTED", c, n);
    if (rc)
        return rc;
    sv_snap_record_key(c, n, key);
    *val = json_dumps(rec, JSON_COMPACT);
    return *val ? 0 : sv_snap_oom(err);
}

bool sv_snapshot_record_exists(sv_snapshot *s, const char *collection, const char *name)
{
    char key[400];
    if (sv_snap_check_names(collection, name, NULL))
        return false;
    sv_snap_record_key(collection, name, key);
    char *v = NULL;
    size_t len = 0;
    int rc = sv_catalog_get(s->cat, key, &v, &len, NULL, NULL);
    free(v);
    return rc == 0;
}

static int collect_committed(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    json_t *rec = json_loadb(val, len, 0, NULL);
    if (rec && sv_snap_record_state(rec) == SNAP_COMMITTED)
        json_array_append(ud, rec);
    json_decref(rec);
    return 0;
}

int sv_snapshot_records(sv_snapshot *s, json_t **out, sv_err *err)
{
    json_t *arr = json_array();
    if (!arr)
        return sv_snap_oom(err);
    int rc = sv_catalog_scan(s->cat, "snapshots/", collect_committed, arr, err);
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int sv_snapshot_mark_damaged(sv_snapshot *s, const char *collection, const char *name, bool damaged,
                             const char *detail, sv_err *err)
{
    int rc = sv_snap_check_names(collection, name, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->ddl_mu);
    json_t *rec = NULL;
    rc = sv_snap_record_load(s, collection, name, &rec, NULL, err);
    if (rc == 0) {
        if (damaged) {
            json_object_set_new(rec, "damaged", json_true());
            json_object_set_new(rec, "damage", json_string(detail ? detail : ""));
        } else {
            json_object_del(rec, "damaged");
            json_object_del(rec, "damage");
        }
        rc = sv_snap_record_put(s, rec, err);
    }
    pthread_mutex_unlock(&s->ddl_mu);
    json_decref(rec);
    return rc;
}
