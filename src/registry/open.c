/* registry — open (loading, reconciliation after a restart, orphan removal),
 * close, and the introspection answers (stats, JSON listing, metrics).
 *
 * Invariants:
 *  1. After sv_registry_open no shard is in a transitional state
 *     (INITIALIZING, RECOVERING, SERVING): each is NEW, AVAILABLE or ERRORED,
 *     decided by whether its directory is complete (has the completion
 *     marker hydration writes before the rename), with the reason in
 *     lastError. AVAILABLE shards whose directory vanished become NEW too.
 *  2. Reconciliation reads the catalog once (one prefix scan) and writes the
 *     changed records in transactions of at most REG_TXN_MAX ops, before the
 *     registry is handed out (memory is not visible to anyone until then).
 *  3. Only AVAILABLE shards own a directory in the cache; every other entry
 *     that looks like ours (temporary directories, shard directories of no
 *     AVAILABLE shard, empty collection directories) is removed at open.
 *  4. r->held starts as the sum of AVAILABLE shards' bytes, brought under the
 *     quota (by eviction) if the quota shrank since the last run.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_internal.h"

static int oom(sv_err *err) { return sv_fail(err, SV_ENOMEM, "out of memory"); }

static void copy_str(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : ""); }

typedef struct pending_op {
    char *key;
    char *val;
} pending_op;

typedef struct load_ctx {
    sv_registry *r;
    pending_op *ops;
    size_t nops, capops;
    int64_t now;
    int rc;
    sv_err *err;
} load_ctx;

static int64_t marker_bytes(const char *dir)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/" REG_DONE_MARKER, dir);
    char *data = NULL;
    size_t len = 0;
    sv_err e = {0};
    if (sv_read_file(path, &data, &len, &e))
        return -1;
    char *end = NULL;
    long long v = strtoll(data, &end, 10);
    bool ok = end != data && v >= 0;
    free(data);
    return ok ? (int64_t)v : -1;
}

static int add_op(load_ctx *c, const shard *s)
{
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:b,s:s,s:I,s:I,s:I}", "format_version", REG_FORMAT, "collection",
                          s->collection, "shard", s->name, "state", sv_shard_state_name(s->state), "source",
                          sv_shard_source_name(s->source), "pinned", s->pinned, "lastError", s->last_error,
                          "lastTransitionAt", (json_int_t)s->last_transition_at, "localBytes",
                          (json_int_t)s->local_bytes, "remoteBytes", (json_int_t)s->remote_bytes);
    char *val = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    char key[640];
    snprintf(key, sizeof key, "%s%s/%s", c->r->prefix, s->collection, s->name);
    char *k = strdup(key);
    if (!val || !k || sv_grow(&c->ops, &c->capops, c->nops + 1, sizeof *c->ops)) {
        free(val);
        free(k);
        return SV_ENOMEM;
    }
    c->ops[c->nops++] = (pending_op){k, val};
    return 0;
}

/* Reconciles one loaded shard (invariant 1). Returns true when it changed. */
static bool reconcile(sv_registry *r, shard *s, int64_t now)
{
    char dir[1300];
    snprintf(dir, sizeof dir, "%s/%s/%s", r->cache_dir, s->collection, s->name);
    sv_shard_state was = s->state, to = was;
    char why[512] = "";
    int64_t bytes = -1;
    switch (was) {
    case SV_SHARD_NEW:
    case SV_SHARD_ERRORED:
        break;
    case SV_SHARD_AVAILABLE:
        if ((bytes = marker_bytes(dir)) < 0) {
            to = SV_SHARD_NEW;
            snprintf(why, sizeof why, "reconciled at restart: was AVAILABLE but its cache directory is missing or "
                                      "incomplete");
        }
        break;
    case SV_SHARD_SERVING:
    case SV_SHARD_INITIALIZING:
    case SV_SHARD_RECOVERING:
        bytes = marker_bytes(dir);
        if (bytes >= 0) {
            to = SV_SHARD_AVAILABLE;
            snprintf(why, sizeof why, "reconciled at restart: was %s, cache directory complete%s",
                     sv_shard_state_name(was), was == SV_SHARD_SERVING ? " (references of the previous process released)" : "");
        } else if (was == SV_SHARD_RECOVERING) {
            to = SV_SHARD_ERRORED;
            snprintf(why, sizeof why, "reconciled at restart: recovery interrupted; before: %.400s", s->last_error);
        } else {
            to = SV_SHARD_NEW;
            snprintf(why, sizeof why, "reconciled at restart: was %s, cache directory missing or incomplete",
                     sv_shard_state_name(was));
        }
        break;
    }
    if (to == SV_SHARD_AVAILABLE)
        s->local_bytes = bytes;
    else
        s->local_bytes = 0;
    if (to == was)
        return false;
    s->state = to;
    copy_str(s->last_error, sizeof s->last_error, why);
    s->last_transition_at = now;
    return true;
}


static int load_one(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    load_ctx *c = ud;
    sv_registry *r = c->r;
    json_t *o = json_loadb(val, len, 0, NULL);
    const char *coll = json_string_value(json_object_get(o, "collection"));
    const char *name = json_string_value(json_object_get(o, "shard"));
    int st = sv_shard_state_parse(json_string_value(json_object_get(o, "state")));
    int src = sv_shard_source_parse(json_string_value(json_object_get(o, "source")));
    sv_err e = {0};
    if (!o || st < 0 || src < 0 || !coll || !name || sv_check_collection_name(coll, &e) ||
        sv__check_shard_name(name, &e)) {
        /* A record this version cannot read is reported, not guessed at. */
        sv_warn("registry: unreadable shard record skipped", "key=%s", key);
        json_decref(o);
        return 0;
    }
    shard *s = sv__shard_new(coll, name, (sv_shard_source)src);
    if (!s) {
        json_decref(o);
        return (c->rc = oom(c->err));
    }
    s->state = (sv_shard_state)st;
    s->pinned = json_is_true(json_object_get(o, "pinned"));
    copy_str(s->last_error, sizeof s->last_error, json_string_value(json_object_get(o, "lastError")));
    s->last_transition_at = json_integer_value(json_object_get(o, "lastTransitionAt"));
    s->remote_bytes = json_integer_value(json_object_get(o, "remoteBytes"));
    json_decref(o);
    if (sv_strmap_find(&r->map, s->key) || sv_strmap_add(&r->map, s->key, s)) {
        sv__shard_put_locked(s);
        return 0;
    }
    sv_shard_state was = s->state;
    if (reconcile(r, s, c->now)) {
        sv__registry_publish(r, s, was, s->state, c->now);
        if (add_op(c, s))
            return (c->rc = oom(c->err));
    }
    if (s->state == SV_SHARD_AVAILABLE)
        r->held += s->local_bytes;
    if (s->state == SV_SHARD_ERRORED && r->policy == SV_REGISTRY_RECOVER_NOW)
        s->recover_pending = true;
    return 0;
}

static int flush_ops(sv_registry *r, load_ctx *c, sv_err *err)
{
    sv_catalog_op ops[REG_TXN_MAX];
    for (size_t i = 0; i < c->nops; i += REG_TXN_MAX) {
        size_t n = c->nops - i < REG_TXN_MAX ? c->nops - i : REG_TXN_MAX;
        for (size_t k = 0; k < n; k++)
            ops[k] = (sv_catalog_op){.key = c->ops[i + k].key, .val = c->ops[i + k].val, .len = strlen(c->ops[i + k].val)};
        if (sv_catalog_txn(r->cat, NULL, 0, ops, n, err))
            return sv_err_wrap(err, "registry: writing reconciled shard records");
    }
    return 0;
}

/* Invariant 4: the quota may have shrunk since the last run. */
static int fit_quota(sv_registry *r, load_ctx *c)
{
    for (size_t i = 0; i < r->map.nb && r->held > r->quota; i++)
        for (sv_strmap_entry *e = r->map.b[i]; e && r->held > r->quota; e = e->next) {
            shard *s = e->v[0];
            if (s->state != SV_SHARD_AVAILABLE || s->pinned)
                continue;
            sv__registry_publish(r, s, s->state, SV_SHARD_NEW, c->now);
            r->held -= s->local_bytes;
            s->local_bytes = 0;
            s->state = SV_SHARD_NEW;
            snprintf(s->last_error, sizeof s->last_error,
                     "evicted at open: the cache holds more than cache_quota_bytes=%" PRId64, r->quota);
            s->last_transition_at = c->now;
            r->evictions++;
            if (add_op(c, s))
                return SV_ENOMEM;
        }
    if (r->held > r->quota)
        /* only pinned shards are left: they stay (pins win over the quota),
         * and nothing new is hydrated until they go or the quota grows */
        sv_warn("registry cache over its quota at open: pinned shards are kept",
                "held_bytes=%" PRId64 " cache_quota_bytes=%" PRId64
                " hint=\"unpin shards (POST /v1/registry/shards/{c}/{s}/unpin) or raise SHARDVAULT_CACHE_BYTES\"",
                r->held, r->quota);
    return 0;
}

static bool owns_dir(sv_registry *r, const char *collection, const char *name)
{
    char key[600];
    snprintf(key, sizeof key, "%s/%s", collection, name);
    sv_strmap_entry *e = sv_strmap_find(&r->map, key);
    return e && e->n && ((shard *)e->v[0])->state == SV_SHARD_AVAILABLE;
}

/* Invariant 3. Returns the number of entries removed. */
static int64_t remove_orphans(sv_registry *r)
{
    int64_t removed = 0;
    DIR *d = opendir(r->cache_dir);
    if (!d)
        return 0;
    struct dirent *de;
    sv_err e = {0};
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", r->cache_dir, n);
        if (!strncmp(n, REG_TMP_PREFIX, strlen(REG_TMP_PREFIX))) {
            sv_rmtree(path, &e);
            removed++;
            continue;
        }
        sv_err ne = {0};
        if (sv_check_collection_name(n, &ne)) {
            sv_warn("registry: unknown entry in the cache directory left alone", "path=%s", path);
            continue;
        }
        DIR *cd = opendir(path);
        if (!cd)
            continue;
        struct dirent *ce;
        int64_t kept = 0;
        while ((ce = readdir(cd))) {
            if (!strcmp(ce->d_name, ".") || !strcmp(ce->d_name, ".."))
                continue;
            if (owns_dir(r, n, ce->d_name)) {
                kept++;
                continue;
            }
            char sp[1500 + 256];
            snprintf(sp, sizeof sp, "%s/%s", path, ce->d_name);
            sv_rmtree(sp, &e);
            removed++;
        }
        closedir(cd);
        if (!kept)
            sv_rmtree(path, &e);
    }
    closedir(d);
    return removed;
}

int sv_registry_open(const sv_registry_opts *o, sv_catalog *cat, sv_registry **out, sv_err *err)
{
    *out = NULL;
    if (!o || !o->cache_dir || !*o->cache_dir)
        return sv_fail(err, SV_EINVAL, "registry: cache_dir is required");
    if (strlen(o->cache_dir) > 800)
        return sv_fail(err, SV_EINVAL, "registry: cache_dir is longer than 800 bytes");
    if (o->cache_quota_bytes <= 0)
        return sv_fail(err, SV_EINVAL, "registry: cache_quota_bytes must be > 0 (got %" PRId64 ")",
                       o->cache_quota_bytes);
    if (o->max_concurrent_hydrations < 0 || o->max_concurrent_hydrations > 1024)
        return sv_fail(err, SV_EINVAL, "registry: max_concurrent_hydrations must be 0 (= 4) to 1024 (got %d)",
                       o->max_concurrent_hydrations);
    if ((unsigned)o->recover_on_start > SV_REGISTRY_RECOVER_NOW)
        return sv_fail(err, SV_EINVAL, "registry: unknown recover_on_start policy %d", (int)o->recover_on_start);
    if (!cat)
        return sv_fail(err, SV_EINVAL, "registry: a catalog is required");
    for (int i = 0; i < SV_SHARD_NSOURCES; i++)
        if (o->mounts[i] && (!o->mounts[i]->size || !o->mounts[i]->fetch))
            return sv_fail(err, SV_EINVAL, "registry: the %s mount needs both size and fetch callbacks",
                           sv_shard_source_name((sv_shard_source)i));
    if (o->node && sv_check_tenant_name(o->node, NULL)) /* node names follow the tenant-name rule */
        return sv_fail(err, SV_EINVAL, "registry: node name '%.64s' is not valid", o->node);
    if (sv_mkdirs(o->cache_dir, err))
        return sv_err_wrap(err, "registry: creating cache_dir");

    sv_registry *r = calloc(1, sizeof *r);
    if (!r)
        return oom(err);
    r->cat = cat;
    if (o->node)
        snprintf(r->prefix, sizeof r->prefix, "registry/nodes/%s/shards/", o->node);
    else
        snprintf(r->prefix, sizeof r->prefix, "%s", REG_PREFIX);
    copy_str(r->cache_dir, sizeof r->cache_dir, o->cache_dir);
    size_t l = strlen(r->cache_dir);
    while (l > 1 && r->cache_dir[l - 1] == '/')
        r->cache_dir[--l] = 0;
    r->quota = o->cache_quota_bytes;
    r->nworkers = o->max_concurrent_hydrations ? o->max_concurrent_hydrations : 4;
    r->policy = o->recover_on_start;
    r->ring_cap = o->event_ring ? o->event_ring : 4096;
    r->ring = calloc(r->ring_cap, sizeof *r->ring);
    r->workers = calloc((size_t)r->nworkers, sizeof *r->workers);
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->ev_mu, NULL);
    pthread_cond_init(&r->work_cv, NULL);
    pthread_cond_init(&r->idle_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->room_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!r->ring || !r->workers) {
        sv_registry_close(r);
        return oom(err);
    }
    for (int i = 0; i < SV_SHARD_NSOURCES; i++)
        if (o->mounts[i]) {
            r->mounts[i] = *o->mounts[i];
            r->has_mount[i] = true;
        }

    int64_t t0 = sv_mono_ns();
    load_ctx c = {.r = r, .now = sv_now_ms(), .err = err};
    int rc = sv_catalog_scan(cat, r->prefix, load_one, &c, err);
    if (!rc && c.rc)
        rc = c.rc;
    if (!rc && fit_quota(r, &c))
        rc = oom(err);
    if (!rc)
        rc = flush_ops(r, &c, err);
    size_t changed = c.nops;
    for (size_t i = 0; i < c.nops; i++) {
        free(c.ops[i].key);
        free(c.ops[i].val);
    }
    free(c.ops);
    if (rc) {
        sv_registry_close(r);
        return rc;
    }
    int64_t orphans = remove_orphans(r);
    sv_info("registry: opened", "shards=%zu reconciled=%zu orphans_removed=%" PRId64 " ms=%" PRId64, r->map.count,
            changed, orphans, (sv_mono_ns() - t0) / 1000000);

    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < r->nworkers; i++) {
        if (pthread_create(&r->workers[i], NULL, sv__registry_worker, r) != 0) {
            pthread_mutex_unlock(&r->mu);
            sv_registry_close(r);
            return sv_fail(err, SV_EINTERNAL, "registry: cannot start hydration threads");
        }
        r->nstarted++;
    }
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < SV_SHARD_NSOURCES; i++)
        if (r->has_mount[i]) {
            sv_registry_mount m = r->mounts[i];
            sv_registry_set_mount(r, (sv_shard_source)i, &m, NULL);
        }
    *out = r;
    return 0;
}

void sv_registry_close(sv_registry *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->closing = true;
    pthread_cond_broadcast(&r->work_cv);
    pthread_cond_broadcast(&r->room_cv);
    for (size_t i = 0; i < r->map.nb; i++)
        for (sv_strmap_entry *e = r->map.b[i]; e; e = e->next)
            pthread_cond_broadcast(&((shard *)e->v[0])->cv);
    pthread_mutex_unlock(&r->mu);
    sv__registry_svc_close(r); /* its threads' acquires are answered SV_EUNAVAIL now */
    for (int i = 0; i < r->nstarted; i++)
        pthread_join(r->workers[i], NULL);
    pthread_mutex_lock(&r->mu);
    /* parked acquirers (woken above) leave with SV_EUNAVAIL */
    while (r->inflight > 0) {
        for (size_t i = 0; i < r->map.nb; i++)
            for (sv_strmap_entry *e = r->map.b[i]; e; e = e->next)
                pthread_cond_broadcast(&((shard *)e->v[0])->cv);
        pthread_cond_wait(&r->idle_cv, &r->mu);
    }
    while (r->qhead) {
        shard *s = r->qhead;
        r->qhead = s->qnext;
        s->queued = false;
        sv__shard_put_locked(s);
    }
    for (size_t i = 0; i < r->map.nb; i++) {
        sv_strmap_entry *e = r->map.b[i];
        while (e) {
            sv_strmap_entry *next = e->next;
            shard *s = e->v[0];
            if (s->refs)
                sv_warn("registry: closed with references held", "shard=%s refs=%d", s->key, s->refs);
            sv__shard_put_locked(s);
            e = next;
        }
    }
    sv_strmap_free(&r->map);
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->ev_mu);
    pthread_cond_destroy(&r->work_cv);
    pthread_cond_destroy(&r->room_cv);
    pthread_cond_destroy(&r->idle_cv);
    free(r->workers);
    free(r->ring);
    free(r);
}

/* ---- introspection ------------------------------------------------------------------------ */

void sv_registry_stats_get(sv_registry *r, sv_registry_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->map.nb; i++)
        for (sv_strmap_entry *e = r->map.b[i]; e; e = e->next) {
            const shard *s = e->v[0];
            out->shards[s->state]++;
            out->shards_total++;
            out->pinned += s->pinned;
        }
    out->cache_used_bytes = r->held - r->reserved;
    out->cache_reserved_bytes = r->reserved;
    out->cache_quota_bytes = r->quota;
    out->hydrations_running = r->nrunning;
    out->hydrations_queued = r->nqueued;
    out->hits = r->hits;
    out->misses = r->misses;
    out->hydrated_bytes = r->hydrated_bytes;
    out->hydration_ns = r->hydration_ns;
    out->hydrations_failed = r->hydrations_failed;
    out->evictions = r->evictions;
    out->evicted_bytes = r->evicted_bytes;
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&r->ev_mu);
    out->events_published = r->ev_seq;
    pthread_mutex_unlock(&r->ev_mu);
    out->events_dropped = atomic_load(&r->ev_dropped);
}

static int shard_cmp(const void *a, const void *b)
{
    const shard *x = *(shard *const *)a, *y = *(shard *const *)b;
    int c = strcmp(x->collection, y->collection);
    return c ? c : strcmp(x->name, y->name);
}

int sv_registry_shards_json(sv_registry *r, const char *collection, const char *state, json_t **out, sv_err *err)
{
    *out = NULL;
    int want = -1;
    if (state && (want = sv_shard_state_parse(state)) < 0)
        return sv_fail(err, SV_EINVAL, "unknown shard state '%s' (NEW, INITIALIZING, AVAILABLE, SERVING, ERRORED, "
                                       "RECOVERING)", state);
    json_t *arr = json_array();
    json_t *o = json_object();
    if (!arr || !o) {
        json_decref(arr);
        json_decref(o);
        return oom(err);
    }
    json_object_set_new(o, "shards", arr);
    pthread_mutex_lock(&r->mu);
    shard **v = NULL;
    size_t nv = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < r->map.nb && !rc; i++)
        for (sv_strmap_entry *e = r->map.b[i]; e; e = e->next) {
            shard *s = e->v[0];
            if ((collection && strcmp(s->collection, collection)) || (want >= 0 && (int)s->state != want))
                continue;
            if (sv_grow(&v, &cap, nv + 1, sizeof *v)) {
                rc = SV_ENOMEM;
                break;
            }
            v[nv++] = s;
        }
    if (!rc && nv)
        qsort(v, nv, sizeof *v, shard_cmp);
    for (size_t i = 0; i < nv && !rc; i++) {
        const shard *s = v[i];
        int64_t pct = 0;
        if (s->state == SV_SHARD_AVAILABLE || s->state == SV_SHARD_SERVING)
            pct = 100;
        else if (s->queued && s->remote_bytes > 0)
            pct = atomic_load(&s->progress) * 100 / s->remote_bytes;
        if (pct > 100)
            pct = 100;
        static const char *const lower[SV_SHARD_NSOURCES] = {"local", "offloaded", "snapshot"};
        json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:b,s:s,s:I}", "collection", s->collection, "shard",
                              s->name, "state", sv_shard_state_name(s->state), "source",
                              lower[s->source], "refs", s->refs, "localBytes",
                              (json_int_t)s->local_bytes, "remoteBytes", (json_int_t)s->remote_bytes, "hydration",
                              (json_int_t)pct, "pinned", s->pinned, "lastError", s->last_error, "lastTransitionAt",
                              (json_int_t)s->last_transition_at);
        if (j)
            json_object_set_new(j, "tenant", s->source == SV_SHARD_SRC_OFFLOADED ? json_string(s->name) : json_null());
        if (!j || json_array_append_new(arr, j))
            rc = SV_ENOMEM;
    }
    pthread_mutex_unlock(&r->mu);
    free(v);
    if (rc) {
        json_decref(o);
        return oom(err);
    }
    *out = o;
    return 0;
}

void sv_registry_metrics(sv_buf *out, void *ud)
{
    sv_registry *r = ud;
    sv_registry_stats st;
    sv_registry_stats_get(r, &st);
    sv__registry_add_local(r, st.shards, NULL); /* as /v1/registry counts them */
    sv_buf_append_str(out, "# HELP shardvault_registry_shards Shards by state: the registered ones and the local ones.\n"
                           "# TYPE shardvault_registry_shards gauge\n");
    for (int i = 0; i < SV_SHARD_NSTATES; i++)
        sv_buf_printf(out, "shardvault_registry_shards{state=\"%s\"} %" PRId64 "\n",
                      sv_shard_state_name((sv_shard_state)i), st.shards[i]);
#define G(name, help, type, v)                                                                                        \
    sv_buf_printf(out, "# HELP shardvault_registry_" name " " help "\n# TYPE shardvault_registry_" name " " type       \
                       "\nshardvault_registry_" name " %" PRId64 "\n",                                                \
                  (int64_t)(v))
    G("shards_pinned", "Pinned shards (never evicted).", "gauge", st.pinned);
    G("cache_used_bytes", "Bytes of hydrated shards present in the cache.", "gauge", st.cache_used_bytes);
    G("cache_reserved_bytes", "Bytes reserved in the cache for hydrations in progress.", "gauge",
      st.cache_reserved_bytes);
    G("cache_quota_bytes", "The cache quota.", "gauge", st.cache_quota_bytes);
    G("hydrations_running", "Hydrations running (fetching or waiting for cache room).", "gauge",
      st.hydrations_running);
    G("hydrations_queued", "Hydrations waiting for a hydration thread.", "gauge", st.hydrations_queued);
    G("acquire_hits_total", "Acquires answered at once from the cache.", "counter", st.hits);
    G("acquire_misses_total", "Acquires that waited for a hydration.", "counter", st.misses);
    G("hydrated_bytes_total", "Bytes fetched into the cache.", "counter", st.hydrated_bytes);
    sv_buf_printf(out, "# HELP shardvault_registry_hydration_seconds_total Time spent fetching shards into the cache.\n"
                       "# TYPE shardvault_registry_hydration_seconds_total counter\n"
                       "shardvault_registry_hydration_seconds_total %.6f\n",
                  (double)st.hydration_ns / 1e9);
    G("hydrations_failed_total", "Hydrations that ended ERRORED.", "counter", st.hydrations_failed);
    G("evictions_total", "Shards evicted from the cache.", "counter", st.evictions);
    G("evicted_bytes_total", "Bytes evicted from the cache.", "counter", st.evicted_bytes);
    G("events_total", "Shard transitions published.", "counter", (int64_t)st.events_published);
    G("events_dropped_total", "Events lost by readers that fell behind the ring.", "counter",
      (int64_t)st.events_dropped);
#undef G
}
