/* The manifest (format, parsing with every later key/path checked), blob
 * keys, and the hash-cache value format. SHA-256 is core's (sha256.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot_internal.h"

void sv_blob_key(const char *hex, char key[80]) { snprintf(key, 80, "blobs/%.2s/%.64s", hex, hex); }

/* ---- hash cache ----------------------------------------------------------------- */

int sv_file_id_of(const char *path, sv_file_id *out, sv_err *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return sv_fail(err, SV_EIO, "cannot stat %s: %s", path, strerror(errno));
    out->dev = (uint64_t)st.st_dev;
    out->ino = (uint64_t)st.st_ino;
    out->size = (int64_t)st.st_size;
    out->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    return 0;
}

char *sv_hash_cache_value(const sv_file_id *id, const char *hex)
{
    char *s = malloc(200);
    if (s)
        snprintf(s, 200, "%llu %llu %lld %lld %s", (unsigned long long)id->dev, (unsigned long long)id->ino,
                 (long long)id->size, (long long)id->mtime_ns, hex);
    return s;
}

bool sv_hash_cache_match(const char *val, size_t len, const sv_file_id *id, char hex[65])
{
    char buf[200];
    if (len >= sizeof buf)
        return false;
    memcpy(buf, val, len);
    buf[len] = '\0';
    unsigned long long dev, ino;
    long long size, mtime;
    char h[65];
    if (sscanf(buf, "%llu %llu %lld %lld %64s", &dev, &ino, &size, &mtime, h) != 5 || !sv_sha256_valid_hex(h))
        return false;
    if (dev != id->dev || ino != id->ino || size != id->size || mtime != id->mtime_ns)
        return false;
    memcpy(hex, h, 65);
    return true;
}

/* ---- manifest ------------------------------------------------------------------- */

void sv_manifest_key(const char *collection, const char *name, char key[400])
{
    snprintf(key, 400, "snapshots/%s/%s/manifest.json", collection, name);
}

void sv_manifest_free(sv_manifest *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nshards; i++)
        free(m->shards[i].files);
    free(m->shards);
    json_decref(m->schema);
    free(m);
}

char *sv_manifest_to_json(const sv_manifest *m)
{
    json_t *shards = json_array();
    for (size_t i = 0; shards && i < m->nshards; i++) {
        const sv_manifest_shard *s = &m->shards[i];
        json_t *files = json_array();
        for (size_t k = 0; files && k < s->nfiles; k++)
            json_array_append_new(files, json_pack("{s:s,s:s,s:I}", "name", s->files[k].name, "blob",
                                                   s->files[k].blob, "size", (json_int_t)s->files[k].size));
        json_t *sj = json_pack("{s:s,s:s,s:I,s:I,s:o*}", "name", s->name, "status", s->empty ? "EMPTY" : "OK",
                               "objects", (json_int_t)s->objects, "bytes", (json_int_t)s->bytes, "files", files);
        if (sj && s->node[0])
            json_object_set_new(sj, "node", json_string(s->node));
        json_array_append_new(shards, sj);
    }
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:I,s:I,s:O,s:I,s:I,s:o*}", "format_version", SV_MANIFEST_FORMAT,
                          "kind", "shardvault.snapshot", "collection", m->collection, "name", m->name, "description",
                          m->description, "createdAt", (json_int_t)m->created_at, "capturedAt",
                          (json_int_t)m->captured_at, "schema", m->schema, "objects", (json_int_t)m->objects, "bytes",
                          (json_int_t)m->bytes, "shards", shards);
    char *s = o ? json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return s;
}

/* A file name from a manifest becomes a path component at restore. */
static bool safe_file_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 200 || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

static bool safe_shard_name(const char *s)
{
    /* "shard0000"… or a tenant name: ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$ */
    return s && sv_check_tenant_name(s, NULL) == 0;
}

int sv_manifest_parse(const char *json, size_t len, sv_manifest **out, sv_err *err)
{
    json_error_t je;
    json_t *o = json_loadb(json, len, 0, &je);
    if (!o)
        return sv_fail(err, SV_ECORRUPT, "manifest is not JSON (line %d: %s)", je.line, je.text);
    sv_manifest *m = calloc(1, sizeof *m);
    int rc = 0;
    if (!m) {
        json_decref(o);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    json_int_t fv = json_integer_value(json_object_get(o, "format_version"));
    const char *coll = json_string_value(json_object_get(o, "collection"));
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *desc = json_string_value(json_object_get(o, "description"));
    json_t *shards = json_object_get(o, "shards");
    m->schema = json_incref(json_object_get(o, "schema"));
    if (fv != SV_MANIFEST_FORMAT) {
        rc = sv_fail(err, SV_ECORRUPT, "manifest format_version %lld is not supported (this build reads %d)",
                     (long long)fv, SV_MANIFEST_FORMAT);
        goto done;
    }
    if (!coll || sv_check_collection_name(coll, NULL) || !name || sv_check_snapshot_name(name, NULL) ||
        !json_is_object(m->schema) || !json_is_array(shards)) {
        rc = sv_fail(err, SV_ECORRUPT, "manifest lacks a valid collection, name, schema or shards");
        goto done;
    }
    snprintf(m->collection, sizeof m->collection, "%s", coll);
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->description, sizeof m->description, "%s", desc ? desc : "");
    m->created_at = json_integer_value(json_object_get(o, "createdAt"));
    m->captured_at = json_integer_value(json_object_get(o, "capturedAt"));
    m->objects = json_integer_value(json_object_get(o, "objects"));
    m->bytes = json_integer_value(json_object_get(o, "bytes"));
    m->shards = calloc(json_array_size(shards) + 1, sizeof *m->shards);
    if (!m->shards) {
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
        goto done;
    }
    m->nshards = json_array_size(shards); /* only now: sv_manifest_free walks shards */
    for (size_t i = 0; i < m->nshards; i++) {
        json_t *sj = json_array_get(shards, i);
        sv_manifest_shard *s = &m->shards[i];
        const char *sn = json_string_value(json_object_get(sj, "name"));
        const char *st = json_string_value(json_object_get(sj, "status"));
        json_t *files = json_object_get(sj, "files");
        if (!safe_shard_name(sn) || !st || !json_is_array(files)) {
            rc = sv_fail(err, SV_ECORRUPT, "manifest shard %zu lacks a valid name, status or files", i);
            goto done;
        }
        snprintf(s->name, sizeof s->name, "%s", sn);
        const char *nd = json_string_value(json_object_get(sj, "node"));
        snprintf(s->node, sizeof s->node, "%.64s", nd ? nd : "");
        s->empty = !strcmp(st, "EMPTY");
        s->objects = json_integer_value(json_object_get(sj, "objects"));
        s->bytes = json_integer_value(json_object_get(sj, "bytes"));
        s->nfiles = json_array_size(files);
        s->files = calloc(s->nfiles + 1, sizeof *s->files);
        if (!s->files) {
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < s->nfiles; k++) {
            json_t *fj = json_array_get(files, k);
            const char *fn = json_string_value(json_object_get(fj, "name"));
            const char *blob = json_string_value(json_object_get(fj, "blob"));
            json_t *size = json_object_get(fj, "size");
            if (!fn || !safe_file_name(fn) || !sv_sha256_valid_hex(blob) || !json_is_integer(size) ||
                json_integer_value(size) < 0) {
                rc = sv_fail(err, SV_ECORRUPT, "manifest shard %s file %zu lacks a valid name, blob or size", sn, k);
                goto done;
            }
            snprintf(s->files[k].name, sizeof s->files[k].name, "%s", fn);
            memcpy(s->files[k].blob, blob, 65);
            s->files[k].size = json_integer_value(size);
        }
    }
done:
    json_decref(o);
    if (rc) {
        sv_manifest_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
