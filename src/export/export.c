/* Export service: configuration, the scheduler (create / status / list /
 * cancel), metadata documents, crash recovery and metrics. The participant
 * (prepare / commit / abort and the scan) lives in participant.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"

/* ---- small helpers --------------------------------------------------------- */

const char *sv_export_status_name(int st)
{
    static const char *const n[] = {"STARTED", "TRANSFERRING", "SUCCESS", "FAILED", "CANCELED"};
    return st >= 0 && st <= SV_EXPORT_CANCELED ? n[st] : "FAILED";
}

bool sv_export_status_terminal(const char *s)
{
    return s && (!strcmp(s, "SUCCESS") || !strcmp(s, "FAILED") || !strcmp(s, "CANCELED"));
}

json_t *sv_export_time_json(int64_t ms)
{
    char t[40];
    sv_format_time_ms(ms, t, sizeof t);
    return json_string(t);
}

int sv_export_backend_index(const char *b)
{
    if (b && !strcmp(b, "filesystem"))
        return SV_EXPORT_BACKEND_FS;
    if (b && !strcmp(b, "s3"))
        return SV_EXPORT_BACKEND_S3;
    return -1;
}

void sv_export_key(char *out, size_t n, const char *id, const char *file) { snprintf(out, n, "%s/%s", id, file); }

void sv_export_node_key(char *out, size_t n, const char *id, const char *node)
{
    snprintf(out, n, "%s/node_%s_status.json", id, node);
}

const char *sv_export_backend_name(int backend) { return backend == SV_EXPORT_BACKEND_S3 ? "s3" : "filesystem"; }

static void export_path(const sv_export *ex, int backend, const char *id, char *out, size_t n)
{
    if (backend == SV_EXPORT_BACKEND_FS)
        snprintf(out, n, "%s/%s", ex->fs_root, id);
    else
        snprintf(out, n, "s3://%s/%s%s%s", ex->s3_bucket, ex->s3_prefix, ex->s3_prefix[0] ? "/" : "", id);
}

/* Opens a backend's location on first use (S3 may be unconfigured or down
 * when the server starts; that must not stop the filesystem backend). */
int sv_export_location(sv_export *ex, int backend, sv_location **out, sv_err *err)
{
    pthread_mutex_lock(&ex->loc_mu);
    int rc = 0;
    if (!ex->locs[backend]) {
        char url[1500];
        if (backend == SV_EXPORT_BACKEND_FS) {
            snprintf(url, sizeof url, "file://%s", ex->fs_root);
        } else if (!ex->s3_bucket[0]) {
            rc = sv_fail(err, SV_EINVAL, "the s3 backend needs EXPORT_DEFAULT_BUCKET set on the server");
        } else {
            snprintf(url, sizeof url, "s3://%s%s%s", ex->s3_bucket, ex->s3_prefix[0] ? "/" : "", ex->s3_prefix);
        }
        if (rc == 0)
            rc = sv_location_open(url, NULL, &ex->locs[backend], err);
    }
    *out = ex->locs[backend];
    pthread_mutex_unlock(&ex->loc_mu);
    return rc;
}

int sv_export_backend_location(sv_export *ex, const char *backend, sv_location **out, sv_err *err)
{
    *out = NULL;
    int b = sv_export_backend_index(backend);
    if (b < 0)
        return sv_fail(err, SV_EINVAL, "unknown backend '%.40s' (filesystem or s3)", backend ? backend : "");
    return sv_export_location(ex, b, out, err);
}

int sv_export_put_json(sv_location *loc, const char *key, json_t *j, sv_err *err)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!s)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = sv_location_put(loc, key, s, strlen(s), err);
    free(s);
    return rc;
}

int sv_export_get_json(sv_location *loc, const char *key, json_t **out, sv_err *err)
{
    *out = NULL;
    sv_buf b = {0};
    int rc = sv_location_get_buf(loc, key, &b, err);
    if (rc == 0) {
        json_error_t je;
        *out = json_loadb((const char *)b.data, b.len, 0, &je);
        if (!*out || !json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = sv_fail(err, SV_ECORRUPT, "%s is not a JSON object: %s", key, je.text);
        }
    }
    sv_buf_free(&b);
    return rc;
}

/* ---- the metadata document and the API's status shape ---------------------- */

/* The API answer from a metadata document: the same fields, minus the ones
 * only files need, plus tookInMs. */
static json_t *status_from_meta(json_t *meta)
{
    json_t *o = json_object();
    static const char *const keys[] = {"id", "backend", "path", "status", "startedAt", "completedAt",
                                       "classes", "error", "shardStatus"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(meta, keys[i]);
        if (v)
            json_object_set(o, keys[i], v);
    }
    static const char *const extra[] = {"tookInMs", "objectsTotal"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(meta, extra[i]);
        if (v)
            json_object_set(o, extra[i], v);
    }
    if (!json_object_get(o, "shardStatus"))
        json_object_set_new(o, "shardStatus", json_object());
    return o;
}

/* ---- configuration ----------------------------------------------------------- */

static int env_int(const char *name, int64_t dflt, int64_t min, int64_t max, int64_t *out, sv_err *err)
{
    int rc = sv_env_int(name, dflt, out, err);
    if (rc)
        return rc;
    if (*out < min || *out > max)
        return sv_fail(err, SV_EINVAL, "%s=%lld is out of range (%lld..%lld)", name, (long long)*out, (long long)min,
                       (long long)max);
    return 0;
}

static void trim_slashes(char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n && s[i] == '/')
        i++;
    memmove(s, s + i, n - i + 1);
    n = strlen(s);
    while (n && s[n - 1] == '/')
        s[--n] = '\0';
}

static int configure(sv_export *ex, const sv_export_opts *o, sv_err *err)
{
    int rc = sv_env_bool("EXPORT_ENABLED", true, &ex->enabled, err);
    int64_t v;
    if (rc == 0 && (rc = env_int("EXPORT_PARALLELISM", sv_cpu_count(), 1, 256, &v, err)) == 0)
        ex->parallelism = (int)v;
    if (rc == 0 && (rc = env_int("EXPORT_ROWS_PER_FILE", 1000000, 1, INT64_MAX, &v, err)) == 0)
        ex->rows_per_file = v;
    if (rc == 0 && (rc = env_int("EXPORT_RESERVATION_TIMEOUT_MS", 120000, 100, INT64_MAX, &v, err)) == 0)
        ex->reservation_ms = v;
    if (rc == 0 && (rc = env_int("EXPORT_STATUS_INTERVAL_MS", 2000, 50, INT64_MAX, &v, err)) == 0)
        ex->status_interval_ms = v;
    if (rc == 0 && (rc = env_int("EXPORT_ROW_GROUP_BYTES", 32 << 20, 1 << 16, 1LL << 32, &v, err)) == 0)
        ex->row_group_bytes = v;
    if (rc == 0 && (rc = env_int("EXPORT_MAX_ROWS_PER_SECOND", 0, 0, INT64_MAX, &v, err)) == 0)
        ex->max_rows_per_sec = v;
    if (rc)
        return rc;
    /* EXPORT_DEFAULT_PATH is the filesystem root and, within the bucket, the
     * S3 prefix (as Weaviate's); EXPORT_FILESYSTEM_PATH / EXPORT_S3_PATH
     * override one backend each. */
    const char *path = sv_env_str("EXPORT_DEFAULT_PATH", NULL);
    const char *fs_path = sv_env_str("EXPORT_FILESYSTEM_PATH", path);
    const char *s3_path = sv_env_str("EXPORT_S3_PATH", path);
    const char *bucket = sv_env_str("EXPORT_DEFAULT_BUCKET", "");
    if (strlen(bucket) >= sizeof ex->s3_bucket)
        return sv_fail(err, SV_EINVAL, "EXPORT_DEFAULT_BUCKET is too long");
    snprintf(ex->s3_bucket, sizeof ex->s3_bucket, "%s", bucket);
    char root[1100];
    if (fs_path && *fs_path) {
        if ((size_t)snprintf(root, sizeof root, "%s", fs_path) >= sizeof root)
            return sv_fail(err, SV_EINVAL, "EXPORT_FILESYSTEM_PATH / EXPORT_DEFAULT_PATH is too long");
    } else {
        snprintf(root, sizeof root, "%s/exports", o->data_dir);
    }
    if (s3_path && strlen(s3_path) >= sizeof ex->s3_prefix)
        return sv_fail(err, SV_EINVAL, "EXPORT_S3_PATH / EXPORT_DEFAULT_PATH is too long");
    snprintf(ex->s3_prefix, sizeof ex->s3_prefix, "%s", s3_path ? s3_path : "");
    trim_slashes(ex->s3_prefix);
    if (ex->s3_prefix[0] && sv_location_check_key(ex->s3_prefix, err))
        return sv_err_wrap(err, "EXPORT_S3_PATH / EXPORT_DEFAULT_PATH is not a valid S3 prefix");
    if ((rc = sv_mkdirs(root, err)) != 0)
        return sv_err_wrap(err, "export filesystem root (EXPORT_DEFAULT_PATH)");
    char *real = realpath(root, NULL);
    if (!real)
        return sv_fail(err, SV_EIO, "cannot resolve export root %s", root);
    size_t n = strlen(real);
    if (n >= sizeof ex->fs_root) {
        free(real);
        return sv_fail(err, SV_EINVAL, "export root %s is too long", root);
    }
    memcpy(ex->fs_root, real, n + 1);
    free(real);
    return 0;
}

/* ---- crash recovery ------------------------------------------------------------ */

typedef struct marker_list {
    char **vals;
    char **keys;
    size_t n;
} marker_list;

static int collect_marker(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    marker_list *m = ud;
    char **v = realloc(m->vals, (m->n + 1) * sizeof *v);
    if (!v)
        return SV_ENOMEM;
    m->vals = v;
    char **k = realloc(m->keys, (m->n + 1) * sizeof *k);
    if (!k)
        return SV_ENOMEM;
    m->keys = k;
    m->vals[m->n] = strndup(val, len);
    m->keys[m->n] = strdup(key);
    m->n++;
    return 0;
}

void sv_export_fail_unfinished(json_t *ss, json_t *assigned, const char *reason)
{
    const char *coll;
    json_t *shards;
    json_object_foreach(assigned, coll, shards)
    {
        json_t *cs = json_object_get(ss, coll);
        if (!json_is_object(cs)) {
            cs = json_object();
            json_object_set_new(ss, coll, cs);
        }
        size_t i;
        json_t *sh;
        json_array_foreach(shards, i, sh)
        {
            const char *name = json_string_value(sh);
            json_t *p = name ? json_object_get(cs, name) : NULL;
            const char *st = json_string_value(json_object_get(p, "status"));
            if (!name || (st && (!strcmp(st, "SUCCESS") || !strcmp(st, "SKIPPED"))))
                continue;
            json_object_set_new(cs, name,
                                json_pack("{s:s,s:I,s:I,s:s}", "status", "FAILED", "objectsExported",
                                          (json_int_t)json_integer_value(json_object_get(p, "objectsExported")),
                                          "bytesWritten",
                                          (json_int_t)json_integer_value(json_object_get(p, "bytesWritten")), "error",
                                          reason));
        }
    }
}

/* Marks an export this node was running when it died FAILED, in its node
 * status and (when no other node still runs) in its metadata. */
static int recover_one(sv_export *ex, json_t *mark, sv_err *err)
{
    const char *id = json_string_value(json_object_get(mark, "id"));
    int backend = sv_export_backend_index(json_string_value(json_object_get(mark, "backend")));
    if (!id || sv_check_export_id(id, NULL) || backend < 0)
        return 0; /* not ours to interpret: drop it */
    sv_location *loc;
    int rc = sv_export_location(ex, backend, &loc, err);
    if (rc)
        return rc;
    const char *reason = "the node stopped while the export was running (crash or kill); files already "
                         "written are kept";
    char key[300];
    sv_export_key(key, sizeof key, id, "export_metadata.json");
    json_t *meta = NULL;
    rc = sv_export_get_json(loc, key, &meta, err);
    if (rc == SV_ENOTFOUND)
        return 0; /* died during prepare: nothing was published */
    if (rc)
        return rc;
    if (sv_export_status_terminal(json_string_value(json_object_get(meta, "status")))) {
        json_decref(meta);
        return 0;
    }
    int64_t now = sv_now_ms();
    /* Every shard not finished is FAILED with the same reason. */
    json_t *ss = json_object_get(meta, "shardStatus");
    if (!json_is_object(ss)) {
        ss = json_object();
        json_object_set_new(meta, "shardStatus", ss);
    }
    /* The metadata holds no progress while an export runs (it is rewritten
     * at the end); this node's status file has the progress it last flushed:
     * shards that had finished, with their rows and bytes. */
    char nkey[300];
    sv_export_node_key(nkey, sizeof nkey, id, ex->node);
    json_t *last = NULL;
    sv_err nerr = {0};
    if (sv_export_get_json(loc, nkey, &last, &nerr) == 0) {
        const char *c;
        json_t *shards;
        json_object_foreach(json_object_get(last, "shardProgress"), c, shards)
        {
            json_t *cs = json_object_get(ss, c);
            if (!json_is_object(cs) && json_is_object(shards))
                json_object_set(ss, c, shards);
            else if (json_is_object(shards))
                json_object_update_missing(cs, shards);
        }
        json_decref(last);
    }
    sv_export_fail_unfinished(ss, json_object_get(json_object_get(meta, "nodeAssignments"), ex->node), reason);
    json_t *node = json_pack("{s:i,s:s,s:s,s:O,s:s,s:o,s:I,s:s}", "format_version", 1, "nodeName", ex->node, "status",
                             "FAILED", "shardProgress", ss, "error", reason, "completedAt", sv_export_time_json(now),
                             "completedAtMs", (json_int_t)now, "version", SV_VERSION);
    rc = sv_export_put_json(loc, nkey, node, err);
    json_decref(node);
    if (rc == 0 && sv_export_clustered(meta)) {
        /* Other nodes take part: they learn from the decision record that
         * this node's part is lost and stop; the last to stop writes the
         * outcome (or this node does, if they already have). */
        char why[200];
        snprintf(why, sizeof why, "node %s restarted during the export; its part was lost", ex->node);
        sv_err derr = {0};
        if (sv_export_decide_abort(ex, json_string_value(json_object_get(meta, "backend")), id,
                                   json_string_value(json_object_get(meta, "attempt")), why, false, &derr))
            sv_warn("export recovery: cannot record the abort", "id=%s error=\"%s\"", id, derr.msg);
        json_object_set_new(meta, "shardStatus", json_object());
        json_object_del(meta, "error");
        sv_export_promote(ex, loc, meta, meta, false, err);
        json_decref(meta);
        sv_warn("export part marked FAILED after restart", "id=%s", id);
        return 0;
    }
    if (rc == 0) {
        json_object_set_new(meta, "status", json_string("FAILED"));
        json_object_set_new(meta, "error", json_string(reason));
        json_object_set_new(meta, "completedAt", sv_export_time_json(now));
        int64_t started = json_integer_value(json_object_get(meta, "startedAtMs"));
        if (started > 0)
            json_object_set_new(meta, "tookInMs", json_integer(now - started));
        rc = sv_export_put_json(loc, key, meta, err);
    }
    json_decref(meta);
    if (rc == 0)
        sv_warn("export marked FAILED after restart", "id=%s reason=\"%s\"", id, reason);
    return rc;
}

static void recover(sv_export *ex)
{
    /* Markers are export/running/{node}/{id} (this node's only: on a shared
     * catalog every node has its own), or export/running/{id} from before
     * there were nodes. */
    marker_list m = {0};
    sv_err err = {0};
    if (sv_catalog_scan(ex->cat, SV_EXPORT_MARKER_PREFIX, collect_marker, &m, &err))
        sv_warn("export recovery: cannot scan the catalog", "error=\"%s\"", err.msg);
    for (size_t i = 0; i < m.n; i++) {
        const char *rest = m.keys[i] + strlen(SV_EXPORT_MARKER_PREFIX);
        const char *slash = strchr(rest, '/');
        if (slash && ((size_t)(slash - rest) != strlen(ex->node) || strncmp(rest, ex->node, (size_t)(slash - rest)))) {
            free(m.vals[i]);
            free(m.keys[i]);
            continue; /* another node's */
        }
        json_t *mark = m.vals[i] ? json_loads(m.vals[i], 0, NULL) : NULL;
        sv_err e = {0};
        int rc = mark ? recover_one(ex, mark, &e) : 0;
        if (rc == 0)
            sv_catalog_delete(ex->cat, m.keys[i], &e);
        else /* keep the marker: the next start tries again */
            sv_warn("export recovery failed; will retry at next start", "key=%s error=\"%s\"", m.keys[i], e.msg);
        json_decref(mark);
        free(m.vals[i]);
        free(m.keys[i]);
    }
    free(m.vals);
    free(m.keys);
}

/* ---- open / close --------------------------------------------------------------- */

/* The "export" job kind (below the scheduler). */
static void kind_cancel(void *self, sv_job *job);
static int kind_run(void *self, const sv_schedule_run *run, char job_id[64], sv_err *err);
static int kind_forget(void *self, const char *schedule, const char *collection, const char *backend,
                       const char *target, sv_err *err);

int sv_export_open(const sv_export_opts *o, sv_export **out, sv_err *err)
{
    *out = NULL;
    if (!o || !o->store || !o->catalog || !o->data_dir)
        return sv_fail(err, SV_EINVAL, "export service needs a store, a catalog and a data dir");
    sv_export *ex = calloc(1, sizeof *ex);
    if (!ex)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    ex->store = o->store;
    ex->cat = o->catalog;
    ex->jobs = o->jobs;
    snprintf(ex->node, sizeof ex->node, "%s", o->node_name ? o->node_name : "node1");
    pthread_mutex_init(&ex->loc_mu, NULL);
    pthread_mutex_init(&ex->sched_mu, NULL);
    pthread_mutex_init(&ex->mu, NULL);
    pthread_cond_init(&ex->cv, NULL);
    int rc = configure(ex, o, err);
    ex->engine = sv_store_engine(o->store); /* one engine per process */
    if (rc == 0)
        rc = sv_export_local_start(ex, err);
    if (rc) {
        sv_export_close(ex);
        return rc;
    }
    recover(ex);
    if (ex->jobs) {
        sv_job_kind k = {.name = "export", .self = ex, .cancel = kind_cancel, .run_scheduled = kind_run,
                         .forget = kind_forget};
        if ((rc = sv_jobs_register_kind(ex->jobs, &k, err))) {
            sv_export_close(ex);
            return rc;
        }
    }
    sv_info("export service ready", "enabled=%s root=%s bucket=%s parallelism=%d rows_per_file=%lld",
            ex->enabled ? "true" : "false", ex->fs_root, ex->s3_bucket[0] ? ex->s3_bucket : "-", ex->parallelism,
            (long long)ex->rows_per_file);
    *out = ex;
    return 0;
}

void sv_export_shutdown(sv_export *ex)
{
    if (!ex)
        return;
    /* Taking the scheduler lock waits for a create in progress. */
    pthread_mutex_lock(&ex->sched_mu);
    ex->shutting_down = true;
    pthread_mutex_unlock(&ex->sched_mu);
    sv_export_local_shutdown(ex);
    sv_export_local_stop(ex); /* joins the ticker: no cluster call after this */
    sv_export_watch_stop(ex);
}

void sv_export_close(sv_export *ex)
{
    if (!ex)
        return;
    sv_export_shutdown(ex);
    if (ex->jobs) /* the kind no longer points at this service */
        sv_jobs_register_kind(ex->jobs, &(sv_job_kind){.name = "export"}, NULL);
    for (int i = 0; i < 2; i++)
        sv_location_close(ex->locs[i]);
    pthread_mutex_destroy(&ex->loc_mu);
    pthread_mutex_destroy(&ex->sched_mu);
    pthread_mutex_destroy(&ex->mu);
    pthread_cond_destroy(&ex->cv);
    free(ex);
}

/* ---- scheduler --------------------------------------------------------------------- */

static int check_backend(sv_export *ex, const char *backend, sv_err *err)
{
    if (!ex->enabled)
        return sv_fail(err, SV_EINVAL, "export is disabled on this server (EXPORT_ENABLED=false)");
    int b = sv_export_backend_index(backend);
    if (b < 0)
        return sv_fail(err, SV_EINVAL, "unknown export backend '%.64s' (use filesystem or s3)", backend);
    return b;
}

static int string_list(json_t *body, const char *name, json_t **out, sv_err *err)
{
    json_t *v = json_object_get(body, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return sv_fail(err, SV_EINVAL, "\"%s\" must be an array of collection names", name);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return sv_fail(err, SV_EINVAL, "\"%s\"[%zu] must be a collection name", name, i);
    }
    *out = json_array_size(v) ? v : NULL;
    return 0;
}

static bool in_list(json_t *arr, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (!strcmp(json_string_value(e), s))
            return true;
    }
    return false;
}

/* The collections to export, in the store's order. */
static int resolve_classes(sv_export *ex, json_t *include, json_t *exclude, json_t **out, sv_err *err)
{
    sv_collection_name *all = NULL;
    size_t nall = 0;
    int rc = sv_store_collection_names(ex->store, &all, &nall, err);
    if (rc)
        return rc;
    json_t *names = json_array();
    size_t i;
    json_t *c;
    for (i = 0; i < nall; i++) {
        const char *n = all[i];
        if (include && !in_list(include, n))
            continue;
        if (exclude && in_list(exclude, n))
            continue;
        json_array_append_new(names, json_string(n));
    }
    /* Every named collection must exist: a typo should not silently export
     * less than asked. */
    json_t *named = include ? include : exclude;
    json_array_foreach(named, i, c)
    {
        const char *n = json_string_value(c);
        bool found = false;
        for (size_t k = 0; k < nall && !found; k++)
            found = !strcmp(all[k], n);
        if (!found && rc == 0)
            rc = sv_fail(err, SV_EINVAL, "collection '%.128s' in \"%s\" does not exist", n,
                         include ? "include" : "exclude");
    }
    if (rc == 0 && json_array_size(names) == 0)
        rc = sv_fail(err, SV_EINVAL, "nothing to export: %s", nall ? "every collection is excluded"
                                                                   : "there are no collections");
    free(all);
    if (rc) {
        json_decref(names);
        return rc;
    }
    *out = names;
    return 0;
}

/* Adds a collection's shards to shards {collection: [shard…]} and to assign
 * {node: {collection: [shard…]}} under their owners (this node's name for
 * every shard it serves). */
static int add_shards(sv_export *ex, const char *coll, json_t *shards, json_t *assign, sv_err *err)
{
    sv_shard_info *sh = NULL;
    size_t n = 0;
    int rc = sv_store_shards_ex(ex->store, coll, 0, &sh, &n, err);
    if (rc)
        return rc;
    json_t *names = json_array();
    json_object_set_new(shards, coll, names);
    for (size_t i = 0; i < n; i++) {
        const char *node = sh[i].local || !sh[i].node[0] ? ex->node : sh[i].node;
        json_t *mine = json_object_get(assign, node);
        if (!mine) {
            mine = json_object();
            json_object_set_new(assign, node, mine);
        }
        json_t *list = json_object_get(mine, coll);
        if (!list) {
            list = json_array();
            json_object_set_new(mine, coll, list);
        }
        json_array_append_new(names, json_string(sh[i].name));
        json_array_append_new(list, json_string(sh[i].name));
    }
    free(sh);
    /* A collection with no shards (a multi-tenant one without tenants) is
     * still listed, under this node. */
    if (n == 0) {
        json_t *mine = json_object_get(assign, ex->node);
        if (!mine) {
            mine = json_object();
            json_object_set_new(assign, ex->node, mine);
        }
        json_object_set_new(mine, coll, json_array());
    }
    return 0;
}

/* A job record for an export that is about to be prepared. */
static int export_job(sv_export *ex, const char *backend, const char *id, json_t *classes, const char *schedule,
                      sv_job **out, sv_err *err)
{
    *out = NULL;
    if (!ex->jobs)
        return 0;
    char link[300];
    snprintf(link, sizeof link, "/v1/export/%s/%s", backend, id);
    /* The collection field names the collection when the export has one. */
    const char *coll = json_array_size(classes) == 1 ? json_string_value(json_array_get(classes, 0)) : NULL;
    sv_job_spec spec = {.kind = "export", .collection = coll, .target = id, .backend = backend,
                        .schedule = schedule, .link = link};
    return sv_jobs_create(ex->jobs, &spec, out, err);
}

static int export_create(sv_export *ex, const char *backend, json_t *body, const char *schedule, char job_id[64],
                         json_t **out, sv_err *err)
{
    *out = NULL;
    int b = check_backend(ex, backend, err);
    if (b < 0)
        return b;
    if (!json_is_object(body))
        return sv_fail(err, SV_EINVAL, "the body must be a JSON object {\"id\":...}");
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "id") && strcmp(k, "file_format") && strcmp(k, "include") && strcmp(k, "exclude") &&
            strcmp(k, "options"))
            return sv_fail(err, SV_EINVAL,
                           "\"%.64s\" is not a field of an export request (id, file_format, include, exclude, "
                           "options); paths are set by the server (EXPORT_DEFAULT_PATH, EXPORT_DEFAULT_BUCKET)",
                           k);
    }
    const char *id = json_string_value(json_object_get(body, "id"));
    if (!id)
        return sv_fail(err, SV_EINVAL, "\"id\" is required: a string matching ^[a-z0-9_-]{1,128}$");
    int rc = sv_check_export_id(id, err);
    if (rc)
        return rc;
    json_t *ff = json_object_get(body, "file_format");
    if (ff && !json_is_null(ff) && (!json_is_string(ff) || strcmp(json_string_value(ff), "parquet")))
        return sv_fail(err, SV_EINVAL, "file_format must be \"parquet\" (the only format supported)");
    json_t *include, *exclude;
    if ((rc = string_list(body, "include", &include, err)) || (rc = string_list(body, "exclude", &exclude, err)))
        return rc;
    if (include && exclude)
        return sv_fail(err, SV_EINVAL, "give either \"include\" or \"exclude\", not both");
    sv_export_file_opts opt;
    if ((rc = sv_export_file_opts_parse(json_object_get(body, "options"), &opt, err)))
        return rc;

    pthread_mutex_lock(&ex->sched_mu);
    json_t *classes = NULL, *req = NULL, *meta = NULL;
    sv_job *job = NULL; /* ours until the prepared export takes it */
    sv_location *loc = NULL;
    char path[1400];
    export_path(ex, b, id, path, sizeof path);
    sv_export_participant p = sv_export_local_participant(ex);
    if (ex->shutting_down) {
        rc = sv_fail(err, SV_EUNAVAIL, "the server is shutting down; retry after restart");
        goto done;
    }
    if ((rc = sv_export_location(ex, b, &loc, err)))
        goto done;
    if ((rc = resolve_classes(ex, include, exclude, &classes, err)))
        goto done;
    char running[SV_EXPORT_ID_MAX + 1];
    if (sv_export_local_running_id(ex, running, sizeof running)) {
        rc = sv_fail(err, SV_ECONFLICT, "export '%s' is already running on this node; wait for it or cancel it",
                     running);
        goto done;
    }
    char key[300];
    sv_export_key(key, sizeof key, id, "export_metadata.json");
    sv_location_info info;
    sv_err herr = {0};
    rc = sv_location_head(loc, key, &info, &herr);
    if (rc == 0) {
        rc = sv_fail(err, SV_EEXIST, "export id '%s' is already used (%s exists); choose another id", id, path);
        goto done;
    }
    if (rc != SV_ENOTFOUND) {
        rc = sv_fail(err, rc, "%s", herr.msg);
        goto done;
    }
    int64_t started = sv_now_ms();
    json_t *shards = json_object(), *assign = json_object();
    size_t i;
    json_t *c;
    json_array_foreach(classes, i, c)
    {
        if ((rc = add_shards(ex, json_string_value(c), shards, assign, err))) {
            json_decref(shards);
            json_decref(assign);
            goto done;
        }
    }
    if (json_object_size(assign) == 0) /* nothing to export: this node writes the (empty) result */
        json_object_set_new(assign, ex->node, json_object());
    bool across = json_object_size(assign) > 1 || !json_object_get(assign, ex->node);
    if (across && !ex->has_cl) {
        rc = sv_fail(err, SV_EUNAVAIL, "the export's shards live on other nodes and this node has no cluster");
        json_decref(shards);
        json_decref(assign);
        goto done;
    }
    req = json_pack("{s:s,s:s,s:O,s:o,s:s,s:I,s:o,s:o,s:s}", "id", id, "backend", backend, "classes", classes,
                    "shards", shards, "nodeName", ex->node, "startedAtMs", (json_int_t)started, "nodeAssignments",
                    assign, "options", sv_export_file_opts_json(&opt), "path", path);
    if (!req) {
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = export_job(ex, backend, id, classes, schedule, &job, err)))
        goto done;
    if (job && job_id)
        snprintf(job_id, 64, "%s", sv_job_id(job));
    /* The STARTED metadata, published by the protocol across nodes or here. */
    meta = json_pack("{s:i,s:s,s:s,s:s,s:s,s:o,s:I,s:O,s:O,s:O,s:o}", "format_version", 1, "id", id, "backend",
                     backend, "path", path, "status", "STARTED", "startedAt", sv_export_time_json(started),
                     "startedAtMs", (json_int_t)started, "classes", classes, "nodeAssignments",
                     json_object_get(req, "nodeAssignments"), "options", json_object_get(req, "options"),
                     "shardStatus", json_object());
    if (!meta) {
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
        goto done;
    }
    if (across) {
        rc = sv_export_cluster_run(ex, b, loc, req, meta, job, err);
        job = NULL; /* the protocol finished or handed it on */
        if (rc)
            goto done;
        sv_info("export started across nodes", "id=%s backend=%s path=%s nodes=%zu", id, backend, path,
                json_object_size(json_object_get(req, "nodeAssignments")));
        goto started;
    }
    if ((rc = p.prepare(p.self, req, err)))
        goto done;
    if (job) {
        sv_job_start(job, NULL);
        if ((rc = sv_export_local_attach_job(ex, id, job, err)) == 0)
            job = NULL; /* the participant finishes and releases it now */
    }
    if (rc) {
        p.abort(p.self, id, NULL);
        goto done;
    }
    if ((rc = sv_export_put_json(loc, key, meta, err))) {
        p.abort(p.self, id, NULL);
        goto done;
    }
    sv_err cerr = {0};
    if ((rc = p.commit(p.self, id, &cerr))) {
        /* The metadata is published: it must not stay STARTED. Mark it FAILED
         * before abort releases the slot and clears the running marker. */
        json_t *m = NULL;
        sv_err e2 = {0};
        int wrc = sv_export_get_json(loc, key, &m, &e2);
        if (wrc == 0) {
            json_object_set_new(m, "status", json_string("FAILED"));
            json_object_set_new(m, "error", json_string(cerr.msg));
            json_object_set_new(m, "completedAt", sv_export_time_json(sv_now_ms()));
            wrc = sv_export_put_json(loc, key, m, &e2);
            json_decref(m);
        }
        if (wrc)
            sv_error("export: cannot mark a failed commit FAILED", "id=%s error=\"%s\"", id, e2.msg);
        p.abort(p.self, id, NULL);
        sv_fail(err, rc, "%s", cerr.msg);
        goto done;
    }
    sv_info("export started", "id=%s backend=%s path=%s", id, backend, path);
started:
    *out = json_pack("{s:s,s:s,s:s,s:s,s:o,s:O}", "id", id, "backend", backend, "path", path, "status", "STARTED",
                     "startedAt", sv_export_time_json(started), "classes", classes);
done:
    pthread_mutex_unlock(&ex->sched_mu);
    if (job) {
        sv_job_finish(job, SV_JOB_FAILED, err && err->msg[0] ? err->msg : "export did not start", NULL, NULL);
        sv_job_release(job);
    }
    json_decref(classes);
    json_decref(req);
    json_decref(meta);
    return rc;
}

int sv_export_create(sv_export *ex, const char *backend, json_t *body, json_t **out, sv_err *err)
{
    return export_create(ex, backend, body, NULL, NULL, out, err);
}

/* The status of one export: live from the participant while it runs, else
 * the metadata document. */
static int status_of(sv_export *ex, int b, sv_location *loc, const char *id, json_t **out, sv_err *err)
{
    json_t *live = sv_export_local_live_meta(ex, b, id);
    if (live && !sv_export_clustered(live)) {
        *out = status_from_meta(live);
        json_decref(live);
        return 0;
    }
    char key[300];
    sv_export_key(key, sizeof key, id, "export_metadata.json");
    json_t *meta = NULL;
    int rc = sv_export_get_json(loc, key, &meta, err);
    /* Across nodes, a running export's progress is in the nodes' status
     * files (this node's own part live). */
    if (rc == 0 && !sv_export_status_terminal(json_string_value(json_object_get(meta, "status"))) &&
        sv_export_clustered(meta))
        sv_export_aggregate(ex, loc, meta, live);
    json_decref(live);
    if (rc == SV_ENOTFOUND && sv_export_decision_status(ex, sv_export_backend_name(b), id, out) == 0)
        return 0; /* aborted across nodes before its coordinator wrote anything */
    if (rc == SV_ENOTFOUND)
        return sv_fail(err, SV_ENOTFOUND, "export '%s' not found on backend %s", id,
                       sv_export_backend_name(b));
    if (rc)
        return rc;
    *out = status_from_meta(meta);
    json_decref(meta);
    return 0;
}

int sv_export_status(sv_export *ex, const char *backend, const char *id, json_t **out, sv_err *err)
{
    *out = NULL;
    int b = check_backend(ex, backend, err);
    if (b < 0)
        return b;
    if (sv_check_export_id(id, NULL))
        return sv_fail(err, SV_ENOTFOUND, "export '%.128s' not found (ids match ^[a-z0-9_-]{1,128}$)", id);
    sv_location *loc;
    int rc = sv_export_location(ex, b, &loc, err);
    return rc ? rc : status_of(ex, b, loc, id, out, err);
}

typedef struct list_ctx {
    sv_export *ex;
    sv_location *loc;
    int backend;
    json_t *arr;
} list_ctx;

static int list_one(void *ud, const sv_location_entry *e)
{
    list_ctx *lc = ud;
    if (!e->is_prefix)
        return 0;
    char id[SV_EXPORT_ID_MAX + 2];
    size_t n = strlen(e->key);
    if (n < 2 || n > SV_EXPORT_ID_MAX + 1)
        return 0;
    memcpy(id, e->key, n - 1); /* drop the trailing '/' */
    id[n - 1] = '\0';
    if (sv_check_export_id(id, NULL))
        return 0;
    json_t *st = NULL;
    sv_err err = {0};
    if (status_of(lc->ex, lc->backend, lc->loc, id, &st, &err) == 0)
        json_array_append_new(lc->arr, st);
    return 0;
}

static int by_start(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "startedAt"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "startedAt"));
    return strcmp(x ? x : "", y ? y : "");
}

int sv_export_list(sv_export *ex, const char *backend, json_t **out, sv_err *err)
{
    *out = NULL;
    int b = check_backend(ex, backend, err);
    if (b < 0)
        return b;
    sv_location *loc;
    int rc = sv_export_location(ex, b, &loc, err);
    if (rc)
        return rc;
    list_ctx lc = {ex, loc, b, json_array()};
    rc = sv_location_list(loc, "", "/", NULL, list_one, &lc, err);
    if (rc) {
        json_decref(lc.arr);
        return rc;
    }
    size_t n = json_array_size(lc.arr);
    json_t **items = calloc(n + 1, sizeof *items);
    for (size_t i = 0; items && i < n; i++)
        items[i] = json_incref(json_array_get(lc.arr, i));
    if (items) {
        qsort(items, n, sizeof *items, by_start);
        json_array_clear(lc.arr);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(lc.arr, items[i]);
        free(items);
    }
    *out = lc.arr;
    return 0;
}

int sv_export_cancel(sv_export *ex, const char *backend, const char *id, sv_err *err)
{
    int b = check_backend(ex, backend, err);
    if (b < 0)
        return b;
    if (sv_check_export_id(id, NULL))
        return sv_fail(err, SV_ENOTFOUND, "export '%.128s' not found", id);
    sv_export_participant p = sv_export_local_participant(ex);
    int rc = ex->has_cl ? sv_export_cluster_cancel(ex, b, id, err) : SV_ENOTFOUND;
    if (rc != SV_ENOTFOUND)
        return rc;
    if (sv_export_local_owns(ex, b, id)) {
        p.abort(p.self, id, NULL);
        sv_info("export canceled", "id=%s", id);
        return 0;
    }
    json_t *st = NULL;
    sv_location *loc;
    rc = sv_export_location(ex, b, &loc, err);
    if (rc == 0)
        rc = status_of(ex, b, loc, id, &st, err);
    if (rc)
        return rc;
    const char *s = json_string_value(json_object_get(st, "status"));
    rc = sv_fail(err, SV_ECONFLICT, "export '%s' has already finished (%s); nothing to cancel", id, s ? s : "?");
    json_decref(st);
    return rc;
}

/* ---- the "export" job kind ------------------------------------------------------------ */

static void kind_cancel(void *self, sv_job *job) { sv_export_local_cancel_job(self, job); }

static int kind_run(void *self, const sv_schedule_run *run, char job_id[64], sv_err *err)
{
    json_t *inc = json_array();
    for (size_t i = 0; inc && i < run->ninclude; i++)
        json_array_append_new(inc, json_string(run->include[i]));
    json_t *body = json_pack("{s:s}", "id", run->name), *out = NULL;
    if (body && inc && run->ninclude)
        json_object_set(body, "include", inc);
    json_decref(inc);
    if (!body)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = export_create(self, run->backend, body, run->schedule, job_id, &out, err);
    json_decref(body);
    json_decref(out);
    return rc;
}

/* Retention: deletes every file of a finished export, the metadata first so
 * it is never listed half deleted (a retry deletes what is left). */
static int kind_forget(void *self, const char *schedule, const char *collection, const char *backend,
                       const char *target, sv_err *err)
{
    sv_export *ex = self;
    int b = check_backend(ex, backend ? backend : "", err);
    if (b < 0)
        return b;
    if (sv_check_export_id(target, err))
        return SV_EINVAL;
    if (sv_export_local_owns(ex, b, target))
        return sv_fail(err, SV_ECONFLICT, "export '%s' is running", target);
    sv_location *loc;
    int rc = sv_export_location(ex, b, &loc, err);
    char key[400], prefix[SV_EXPORT_ID_MAX + 2];
    sv_export_key(key, sizeof key, target, "export_metadata.json");
    snprintf(prefix, sizeof prefix, "%s/", target);
    if (rc == 0)
        rc = sv_location_delete(loc, key, err);
    return rc ? rc : sv_location_delete_prefix(loc, prefix, err);
}

/* ---- metrics ------------------------------------------------------------------------ */

static const double duration_buckets[SV_EXPORT_NBUCKETS] = {1, 5, 15, 60, 300, 900, 3600, 14400};

void sv_export_metrics_finish(sv_export *ex, int status, int64_t took_ms)
{
    int k = status == SV_EXPORT_SUCCESS ? 0 : status == SV_EXPORT_CANCELED ? 2 : 1;
    atomic_fetch_add(&ex->m_ops[k], 1);
    double s = (double)took_ms / 1000.0;
    for (int i = 0; i < SV_EXPORT_NBUCKETS; i++)
        if (s <= duration_buckets[i])
            atomic_fetch_add(&ex->m_dur_bucket[i], 1);
    atomic_fetch_add(&ex->m_dur_ms, took_ms);
    atomic_fetch_add(&ex->m_dur_count, 1);
}

void sv_export_metrics(sv_buf *o, void *ud)
{
    sv_export *ex = ud;
    sv_buf_printf(o,
                  "# HELP shardvault_export_objects_total Objects written to export files.\n"
                  "# TYPE shardvault_export_objects_total counter\nshardvault_export_objects_total %lld\n"
                  "# HELP shardvault_export_bytes_total Bytes of export files written.\n"
                  "# TYPE shardvault_export_bytes_total counter\nshardvault_export_bytes_total %lld\n"
                  "# HELP shardvault_export_operations_total Exports finished, by outcome.\n"
                  "# TYPE shardvault_export_operations_total counter\n"
                  "shardvault_export_operations_total{status=\"success\"} %lld\n"
                  "shardvault_export_operations_total{status=\"failed\"} %lld\n"
                  "shardvault_export_operations_total{status=\"canceled\"} %lld\n"
                  "# HELP shardvault_export_duration_seconds Duration of finished exports (commit to end).\n"
                  "# TYPE shardvault_export_duration_seconds histogram\n",
                  (long long)atomic_load(&ex->m_objects), (long long)atomic_load(&ex->m_bytes),
                  (long long)atomic_load(&ex->m_ops[0]), (long long)atomic_load(&ex->m_ops[1]),
                  (long long)atomic_load(&ex->m_ops[2]));
    for (int i = 0; i < SV_EXPORT_NBUCKETS; i++)
        sv_buf_printf(o, "shardvault_export_duration_seconds_bucket{le=\"%g\"} %lld\n", duration_buckets[i],
                      (long long)atomic_load(&ex->m_dur_bucket[i]));
    char running[SV_EXPORT_ID_MAX + 1];
    sv_buf_printf(o,
                  "# HELP shardvault_export_slot_reserved 1 while this node's one export slot is held (prepared or "
                  "running).\n# TYPE shardvault_export_slot_reserved gauge\nshardvault_export_slot_reserved %d\n",
                  sv_export_local_running_id(ex, running, sizeof running) ? 1 : 0);
    long long cnt = atomic_load(&ex->m_dur_count);
    sv_buf_printf(o,
                  "shardvault_export_duration_seconds_bucket{le=\"+Inf\"} %lld\n"
                  "shardvault_export_duration_seconds_sum %.3f\n"
                  "shardvault_export_duration_seconds_count %lld\n",
                  cnt, (double)atomic_load(&ex->m_dur_ms) / 1000.0, cnt);
}
