/* registry — shard records, the state machine, acquire/release with parked
 * acquirers, single-flight hydration on a bounded set of threads, the cache
 * quota and LRU eviction, recovery at open, the event ring, introspection.
 *
 * Invariants (see registry.h and docs/registry.md):
 *  1. The catalog is written before memory changes state. A thread changes a
 *     shard only while it holds the shard's `busy` claim (taken under mu);
 *     it writes the record with mu dropped and applies it under mu after the
 *     write succeeded. So no two writes of one record race, and no fsync
 *     happens under mu.
 *  2. r->held (bytes reserved for fetches in progress + bytes present) is the
 *     one quota counter; it only grows under mu by a check `held + n <= quota`
 *     (reserve_locked), so it never exceeds the quota. Bytes leave it only
 *     after their directory is gone.
 *  3. At most one hydration per shard is queued or running (s->queued); it
 *     is the only writer of the shard's directory, which it fills under a
 *     temporary name and renames into place, with a completion marker
 *     inside, so a directory under the final name is always complete.
 *  4. A shard is evicted only when AVAILABLE with no reference, nobody
 *     parked on it, not pinned, not busy and not queued: an acquirer woken by
 *     the end of a hydration always finds the directory it waited for.
 *  5. A shard's memory lives while anything holds it (s->mrefs: the map, the
 *     hydration queue/worker, each parked acquirer, each sv_shard_ref); a
 *     destroyed shard leaves the map and the catalog at once.
 *  6. The event ring has its own lock, held only to copy one event in or a
 *     batch out; publishing never waits for readers.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs.h"
#include "registry_internal.h"

static const char *const state_names[SV_SHARD_NSTATES] = {"NEW",     "INITIALIZING", "AVAILABLE",
                                                          "SERVING", "ERRORED",      "RECOVERING"};
static const char *const source_names[SV_SHARD_NSOURCES] = {"LOCAL", "OFFLOADED", "SNAPSHOT"};

const char *sv_shard_state_name(sv_shard_state s) { return sv_enum_name(state_names, SV_SHARD_NSTATES, (int)s); }
int sv_shard_state_parse(const char *s) { return sv_enum_parse(state_names, SV_SHARD_NSTATES, s); }
const char *sv_shard_source_name(sv_shard_source s) { return sv_enum_name(source_names, SV_SHARD_NSOURCES, (int)s); }
int sv_shard_source_parse(const char *s) { return sv_enum_parse(source_names, SV_SHARD_NSOURCES, s); }

static int oom(sv_err *err) { return sv_fail(err, SV_ENOMEM, "out of memory"); }

static void copy_str(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src ? src : ""); }

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
}

/* Waits on cv until signalled or until at_ns (monotonic; 0 = no limit). */
static void cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t at_ns)
{
    if (!at_ns) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts = {.tv_sec = at_ns / 1000000000, .tv_nsec = at_ns % 1000000000};
    pthread_cond_timedwait(cv, mu, &ts);
}

static void shard_dir(const sv_registry *r, const shard *s, char *out, size_t n)
{
    snprintf(out, n, "%s/%s/%s", r->cache_dir, s->collection, s->name);
}

/* Removes s's cache directory with mu dropped (called and returns with mu
 * held); what says why, for the warning when it cannot. */
static void remove_dir_unlocked(sv_registry *r, const shard *s, const char *what)
{
    char dir[1300];
    shard_dir(r, s, dir, sizeof dir);
    pthread_mutex_unlock(&r->mu);
    sv_err e = {0};
    if (sv_rmtree(dir, &e))
        sv_warn("registry: shard directory not removed", "why=%s dir=%s err=\"%s\"", what, dir, e.msg);
    pthread_mutex_lock(&r->mu);
}

/* A waiter's reasons to stop waiting for good: the registry closes or the
 * shard was destroyed. 0 otherwise. Under r->mu. */
static int gone_locked(const sv_registry *r, const shard *s, sv_err *err)
{
    if (r->closing)
        return sv_fail(err, SV_EUNAVAIL, "registry is closing");
    if (s->destroyed)
        return sv_fail(err, SV_ENOTFOUND, "shard %s was destroyed", s->key);
    return 0;
}

int sv__check_shard_name(const char *name, sv_err *err)
{
    if (!name)
        return sv_fail(err, SV_EINVAL, "shard name is required");
    const char *at = strchr(name, '@');
    if (!at)
        return sv_check_tenant_name(name, err);
    char snap[130];
    size_t n = (size_t)(at - name);
    if (n >= sizeof snap)
        return sv_fail(err, SV_EINVAL, "shard name: the snapshot part is longer than 128 characters");
    memcpy(snap, name, n);
    snap[n] = '\0';
    if (sv_check_snapshot_name(snap, err) || sv_check_tenant_name(at + 1, err))
        return sv_err_wrap(err, "shard name '<snapshot>@<shard>'");
    return 0;
}

static int check_names(const char *collection, const char *name, sv_err *err)
{
    if (!collection || sv_check_collection_name(collection, err))
        return collection ? SV_EINVAL : sv_fail(err, SV_EINVAL, "collection is required");
    if (!name || sv__check_shard_name(name, err))
        return name ? SV_EINVAL : sv_fail(err, SV_EINVAL, "shard name is required");
    return 0;
}

/* ---- shards in memory ----------------------------------------------------------- */

shard *sv__shard_new(const char *collection, const char *name, sv_shard_source src)
{
    shard *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    copy_str(s->collection, sizeof s->collection, collection);
    copy_str(s->name, sizeof s->name, name);
    snprintf(s->key, sizeof s->key, "%s/%s", collection, name);
    s->source = src;
    s->mrefs = 1; /* the map */
    cond_init_mono(&s->cv);
    return s;
}

void sv__shard_put_locked(shard *s)
{
    if (--s->mrefs == 0) {
        pthread_cond_destroy(&s->cv);
        free(s);
    }
}

static shard *find_locked(sv_registry *r, const char *collection, const char *name)
{
    char key[340];
    snprintf(key, sizeof key, "%s/%s", collection, name);
    sv_strmap_entry *e = sv_strmap_find(&r->map, key);
    return e && e->n ? e->v[0] : NULL;
}

void sv__registry_hydration(sv_registry *r, const char *collection, const char *name, int64_t *done, int64_t *total)
{
    pthread_mutex_lock(&r->mu);
    shard *s = find_locked(r, collection, name);
    *total = s ? s->remote_bytes : 0;
    *done = s ? (s->queued ? atomic_load(&s->progress) : s->local_bytes) : 0;
    pthread_mutex_unlock(&r->mu);
}

bool sv__registry_awaited(sv_registry *r, const char *collection, const char *name)
{
    pthread_mutex_lock(&r->mu);
    shard *s = find_locked(r, collection, name);
    bool used = s && s->waiters > 0;
    pthread_mutex_unlock(&r->mu);
    return used;
}

static void claim_locked(sv_registry *r, shard *s)
{
    while (s->busy)
        pthread_cond_wait(&s->cv, &r->mu);
    s->busy = true;
}

static void unclaim_locked(shard *s)
{
    s->busy = false;
    pthread_cond_broadcast(&s->cv);
}

/* ---- events ---------------------------------------------------------------------- */

void sv__registry_publish(sv_registry *r, const shard *s, sv_shard_state from, sv_shard_state to, int64_t ts)
{
    pthread_mutex_lock(&r->ev_mu);
    uint64_t seq = ++r->ev_seq;
    sv_registry_event *e = &r->ring[seq % r->ring_cap];
    e->seq = seq;
    copy_str(e->collection, sizeof e->collection, s->collection);
    copy_str(e->shard, sizeof e->shard, s->name);
    e->from = from;
    e->to = to;
    e->ts_ms = ts;
    pthread_mutex_unlock(&r->ev_mu);
}

int sv_registry_events(sv_registry *r, uint64_t after_seq, sv_registry_event *out, size_t max, size_t *n,
                       uint64_t *dropped)
{
    *n = 0;
    if (dropped)
        *dropped = 0;
    pthread_mutex_lock(&r->ev_mu);
    uint64_t last = r->ev_seq;
    uint64_t oldest = last > r->ring_cap ? last - r->ring_cap + 1 : 1;
    uint64_t first = after_seq + 1;
    if (first < oldest) {
        uint64_t lost = oldest - first;
        atomic_fetch_add(&r->ev_dropped, lost);
        if (dropped)
            *dropped = lost;
        first = oldest;
    }
    for (uint64_t q = first; q <= last && *n < max; q++)
        out[(*n)++] = r->ring[q % r->ring_cap];
    pthread_mutex_unlock(&r->ev_mu);
    return 0;
}

/* ---- records ------------------------------------------------------------------------ */

static char *rec_dump(const shard *s, sv_shard_state st, bool pinned, const char *last_error, int64_t ts,
                      int64_t local)
{
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:b,s:s,s:I,s:I,s:I}", "format_version", REG_FORMAT, "collection",
                          s->collection, "shard", s->name, "state", sv_shard_state_name(st), "source",
                          sv_shard_source_name(s->source), "pinned", pinned, "lastError", last_error,
                          "lastTransitionAt", (json_int_t)ts, "localBytes", (json_int_t)local, "remoteBytes",
                          (json_int_t)s->remote_bytes);
    char *js = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return js;
}

static void rec_key(const sv_registry *r, const shard *s, char *out, size_t n)
{
    snprintf(out, n, "%s%s/%s", r->prefix, s->collection, s->name);
}

/* With mu held and s claimed: persists s as it will be (state `to`, lastError
 * `why` (NULL = unchanged), `local` bytes present, `pinned`), with mu dropped
 * during the write, then applies it and publishes the transition. */
static int commit_locked(sv_registry *r, shard *s, sv_shard_state to, const char *why, int64_t local, bool pinned,
                         sv_err *err)
{
    char lerr[sizeof s->last_error];
    copy_str(lerr, sizeof lerr, why ? why : s->last_error);
    int64_t ts = sv_now_ms();
    char *js = rec_dump(s, to, pinned, lerr, ts, local);
    if (!js)
        return oom(err);
    char key[640];
    rec_key(r, s, key, sizeof key);
    pthread_mutex_unlock(&r->mu);
    int rc = sv_catalog_put(r->cat, key, js, strlen(js), 0, err);
    free(js);
    pthread_mutex_lock(&r->mu);
    if (rc)
        return sv_err_wrap(err, "registry: persisting shard %s", s->key);
    sv_shard_state from = s->state;
    s->state = to;
    memcpy(s->last_error, lerr, sizeof lerr);
    s->local_bytes = local;
    s->pinned = pinned;
    s->last_transition_at = ts;
    if (from != to)
        sv__registry_publish(r, s, from, to, ts);
    return 0;
}

/* ---- the cache ------------------------------------------------------------------------ */

static bool evictable(const shard *s)
{
    return s->state == SV_SHARD_AVAILABLE && !s->refs && !s->waiters && !s->pinned && !s->busy && !s->queued &&
           !s->destroyed;
}

/* Evicts s if it still may be: record NEW first, then the directory goes,
 * then its bytes leave r->held. mu is dropped meanwhile. 1 when evicted. */
static int evict_locked(sv_registry *r, shard *s, int64_t *freed)
{
    if (!evictable(s))
        return 0;
    s->mrefs++;
    claim_locked(r, s);
    int done = 0;
    if (s->state == SV_SHARD_AVAILABLE && !s->refs && !s->waiters && !s->pinned && !s->queued && !s->destroyed) {
        int64_t bytes = s->local_bytes;
        sv_err e = {0};
        if (commit_locked(r, s, SV_SHARD_NEW, NULL, 0, s->pinned, &e)) {
            sv_warn("registry: eviction not persisted", "shard=%s err=\"%s\"", s->key, e.msg);
        } else {
            remove_dir_unlocked(r, s, "evicted");
            r->held -= bytes;
            r->evictions++;
            r->evicted_bytes += bytes;
            if (freed)
                *freed += bytes;
            pthread_cond_broadcast(&r->room_cv);
            done = 1;
        }
    }
    unclaim_locked(s);
    sv__shard_put_locked(s);
    return done;
}

/* The least recently used evictable shard, or NULL. */
static shard *lru_locked(sv_registry *r)
{
    shard *best = NULL;
    for (size_t i = 0; i < r->map.nb; i++)
        for (sv_strmap_entry *e = r->map.b[i]; e; e = e->next) {
            shard *s = e->v[0];
            if (evictable(s) && (!best || s->last_use_ns < best->last_use_ns))
                best = s;
        }
    return best;
}

/* Reserves bytes for s's hydration, evicting LRU shards and waiting in FIFO
 * order for room. Gives up when the registry closes, the shard is destroyed,
 * or nobody waits for a foreground hydration any more. */
static int reserve_locked(sv_registry *r, shard *s, int64_t bytes, sv_err *err)
{
    if (bytes > r->quota)
        return sv_fail(err, SV_ENOSPACE,
                       "shard %s needs %" PRId64 " bytes, more than the whole cache quota (cache_quota_bytes=%" PRId64
                       "; raise SHARDVAULT_CACHE_BYTES)",
                       s->key, bytes, r->quota);
    room_wait me = {0};
    if (r->room_tail)
        r->room_tail->next = &me;
    else
        r->room_head = &me;
    r->room_tail = &me;
    s->waiting_room = true;
    int rc = 0;
    for (;;) {
        if ((rc = gone_locked(r, s, err)))
            break;
        if (!s->background && !s->waiters) {
            rc = sv_fail(err, SV_ENOSPACE,
                         "no room in the cache quota (cache_quota_bytes=%" PRId64 ") for shard %s before every "
                         "acquirer's deadline (unpin or unmount shards, or raise SHARDVAULT_CACHE_BYTES)",
                         r->quota, s->key);
            break;
        }
        if (r->room_head == &me) {
            if (r->held + bytes <= r->quota) {
                r->held += bytes;
                r->reserved += bytes;
                break;
            }
            shard *v = lru_locked(r);
            if (v && evict_locked(r, v, NULL))
                continue;
        }
        cond_wait_until(&r->room_cv, &r->mu, sv_mono_ns() + 50 * 1000000LL);
    }
    /* leave the FIFO (not necessarily from its head) and let the next look */
    room_wait **pp = &r->room_head;
    room_wait *prev = NULL;
    while (*pp && *pp != &me) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp)
        *pp = me.next;
    if (r->room_tail == &me)
        r->room_tail = prev;
    s->waiting_room = false;
    pthread_cond_broadcast(&r->room_cv);
    return rc;
}

static void unreserve_locked(sv_registry *r, int64_t bytes)
{
    r->held -= bytes;
    r->reserved -= bytes;
    pthread_cond_broadcast(&r->room_cv);
}

/* ---- hydration -------------------------------------------------------------------------- */

static void enqueue_locked(sv_registry *r, shard *s, bool background)
{
    s->queued = true;
    s->background = background;
    s->hyd_code = 0;
    atomic_store(&s->progress, 0);
    s->mrefs++;
    s->qnext = NULL;
    if (r->qtail)
        r->qtail->qnext = s;
    else
        r->qhead = s;
    r->qtail = s;
    r->nqueued++;
    pthread_cond_signal(&r->work_cv);
}

/* Ends s's hydration: every acquirer parked on it wakes to its outcome. */
static void hydration_end_locked(shard *s, int code, const sv_err *e)
{
    s->hyd_code = code;
    copy_str(s->hyd_msg, sizeof s->hyd_msg, code ? e->msg : "");
    s->queued = false;
    s->background = false;
    s->hyd_gen++;
    pthread_cond_broadcast(&s->cv);
}

/* Fetches s into <cache>/.tmp-<unique>, checks the bytes against the
 * reservation, marks it complete. Called without mu. */
static int fetch_into(const sv_registry_mount *m, shard *s, const char *tmp, int64_t reserved, int64_t *bytes,
                      sv_err *err)
{
    if (sv_rmtree(tmp, err) || sv_mkdirs(tmp, err))
        return sv_err_wrap(err, "registry: preparing %s", tmp);
    int rc = m->fetch(m->self, s->collection, s->name, tmp, &s->progress, err);
    if (rc)
        return sv_err_wrap(err, "fetch of shard %s failed", s->key);
    int64_t got = sv_dir_bytes(tmp);
    if (got < 0)
        return sv_fail(err, SV_EIO, "registry: cannot measure fetched shard %s in %s", s->key, tmp);
    if (got > reserved)
        return sv_fail(err, SV_ECORRUPT,
                       "fetch of shard %s wrote %" PRId64 " bytes, more than the %" PRId64
                       " bytes its mount's size announced",
                       s->key, got, reserved);
    sv_crash_point("hydrate:fetched");
    char marker[1400], num[32];
    snprintf(marker, sizeof marker, "%s/" REG_DONE_MARKER, tmp);
    snprintf(num, sizeof num, "%" PRId64 "\n", got);
    if (sv_write_file_atomic(marker, num, strlen(num), err))
        return sv_err_wrap(err, "registry: marking shard %s complete", s->key);
    *bytes = got;
    return 0;
}

/* Runs one hydration of s (queued by an acquirer or a recovery). Called and
 * returns with mu held. */
static void hydrate_locked(sv_registry *r, shard *s)
{
    sv_err e = {0};
    int rc = 0;
    if (s->destroyed) {
        rc = sv_fail(&e, SV_ENOTFOUND, "shard %s was destroyed", s->key);
        goto end;
    }
    if (r->closing) {
        rc = sv_fail(&e, SV_EUNAVAIL, "registry is closing");
        goto end;
    }
    if (!r->has_mount[s->source]) {
        rc = sv_fail(&e, SV_EUNAVAIL, "no mount is set for source %s (shard %s)",
                     sv_shard_source_name(s->source), s->key);
        goto end;
    }
    sv_registry_mount m = r->mounts[s->source];
    bool recovering = s->state == SV_SHARD_ERRORED || s->state == SV_SHARD_RECOVERING;
    int64_t size = 0;
    pthread_mutex_unlock(&r->mu);
    rc = m.size(m.self, s->collection, s->name, &size, &e);
    if (!rc && size < 0)
        rc = sv_fail(&e, SV_EINTERNAL, "mount size of shard %s is negative", s->key);
    pthread_mutex_lock(&r->mu);
    if (rc) {
        sv_err_wrap(&e, "size of shard %s", s->key);
        goto failed;
    }
    s->remote_bytes = size;
    if ((rc = reserve_locked(r, s, size, &e)))
        goto end; /* nothing changed: the shard stays as it was */

    claim_locked(r, s);
    if (s->destroyed) {
        unclaim_locked(s);
        unreserve_locked(r, size);
        rc = sv_fail(&e, SV_ENOTFOUND, "shard %s was destroyed", s->key);
        goto end;
    }
    rc = commit_locked(r, s, recovering ? SV_SHARD_RECOVERING : SV_SHARD_INITIALIZING, NULL, 0, s->pinned, &e);
    unclaim_locked(s);
    if (rc) {
        unreserve_locked(r, size);
        goto end;
    }
    char tmp[1300], dir[1300], parent[1300];
    snprintf(tmp, sizeof tmp, "%s/" REG_TMP_PREFIX "%d-%" PRIu64, r->cache_dir, (int)getpid(), ++r->tmp_seq);
    shard_dir(r, s, dir, sizeof dir);
    snprintf(parent, sizeof parent, "%s/%s", r->cache_dir, s->collection);
    pthread_mutex_unlock(&r->mu);
    int64_t got = 0, t0 = sv_mono_ns();
    rc = fetch_into(&m, s, tmp, size, &got, &e);
    int64_t fetch_ns = sv_mono_ns() - t0;
    if (!rc && (rc = sv_mkdirs(parent, &e)))
        sv_err_wrap(&e, "registry: creating %s", parent);
    if (rc) {
        sv_err e2 = {0};
        sv_rmtree(tmp, &e2);
    }
    pthread_mutex_lock(&r->mu);
    if (rc) {
        unreserve_locked(r, size);
        goto failed;
    }
    claim_locked(r, s);
    if (s->destroyed) {
        unclaim_locked(s);
        unreserve_locked(r, size);
        pthread_mutex_unlock(&r->mu);
        sv_err e2 = {0};
        sv_rmtree(tmp, &e2);
        pthread_mutex_lock(&r->mu);
        rc = sv_fail(&e, SV_ENOTFOUND, "shard %s was destroyed", s->key);
        goto end;
    }
    /* Only this hydration writes dir (invariant 3); a leftover from a crash
     * was removed at open. The rename is the commit point of the files. */
    if (rename(tmp, dir) != 0) {
        rc = sv_fail(&e, SV_EIO, "registry: rename %s -> %s: %s", tmp, dir, strerror(errno));
        unclaim_locked(s);
        unreserve_locked(r, size);
        pthread_mutex_unlock(&r->mu);
        sv_err e2 = {0};
        sv_rmtree(tmp, &e2);
        pthread_mutex_lock(&r->mu);
        goto failed;
    }
    /* the reservation shrinks to the bytes present (never more, fetch_into checked) */
    r->reserved -= size;
    r->held -= size;
    s->last_use_ns = sv_mono_ns();
    r->held += got; /* counted as reserved until the record says AVAILABLE */
    r->reserved += got;
    rc = commit_locked(r, s, SV_SHARD_AVAILABLE, "", got, s->pinned, &e);
    r->reserved -= got;
    if (rc) {
        /* the record still says INITIALIZING/RECOVERING: the directory goes
         * (memory follows the catalog) and the next acquire hydrates again */
        s->local_bytes = 0;
        unclaim_locked(s);
        pthread_mutex_unlock(&r->mu);
        sv_err e2 = {0};
        sv_rmtree(dir, &e2);
        pthread_mutex_lock(&r->mu);
        r->held -= got;
        pthread_cond_broadcast(&r->room_cv);
        r->hydrations_failed++;
        goto end;
    }
    r->hydrated_bytes += got;
    r->hydration_ns += fetch_ns;
    pthread_cond_broadcast(&r->room_cv);
    unclaim_locked(s);
    goto end;

failed:
    r->hydrations_failed++;
    claim_locked(r, s);
    if (!s->destroyed) {
        sv_err e2 = {0};
        if (commit_locked(r, s, SV_SHARD_ERRORED, e.msg, 0, s->pinned, &e2))
            sv_warn("registry: ERRORED not persisted", "shard=%s err=\"%s\"", s->key, e2.msg);
    }
    unclaim_locked(s);
end:
    hydration_end_locked(s, rc, &e);
}

void *sv__registry_worker(void *arg)
{
    sv_registry *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->qhead && !r->closing)
            pthread_cond_wait(&r->work_cv, &r->mu);
        if (r->closing)
            break;
        shard *s = r->qhead;
        r->qhead = s->qnext;
        if (!r->qhead)
            r->qtail = NULL;
        r->nqueued--;
        r->nrunning++;
        hydrate_locked(r, s);
        r->nrunning--;
        sv__shard_put_locked(s);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- acquire / release ---------------------------------------------------------------------- */

const char *sv_shard_ref_dir(const sv_shard_ref *ref) { return ref ? ref->dir : NULL; }

int sv_registry_acquire(sv_registry *r, const char *collection, const char *name, int64_t timeout_ms,
                        sv_shard_ref **out, sv_err *err)
{
    *out = NULL;
    if (check_names(collection, name, err))
        return SV_EINVAL;
    sv_deadline dl = sv_deadline_in(timeout_ms);
    sv_shard_ref *ref = calloc(1, sizeof *ref);
    if (!ref)
        return oom(err);
    pthread_mutex_lock(&r->mu);
    shard *s = find_locked(r, collection, name);
    if (!s || r->closing) {
        pthread_mutex_unlock(&r->mu);
        free(ref);
        return s ? sv_fail(err, SV_EUNAVAIL, "registry is closing")
                 : sv_fail(err, SV_ENOTFOUND, "shard %s/%s is not registered", collection, name);
    }
    r->inflight++;
    s->mrefs++;
    bool parked = false;
    uint64_t gen0 = 0;
    int rc = 0;
    for (;;) {
        if ((rc = gone_locked(r, s, err)))
            break;
        if (parked && s->hyd_gen != gen0 && s->hyd_code) {
            rc = sv_fail(err, s->hyd_code, "%s", s->hyd_msg);
            break;
        }
        if (s->busy) {
            pthread_cond_wait(&s->cv, &r->mu);
            continue;
        }
        if (!s->queued && (s->state == SV_SHARD_AVAILABLE || s->state == SV_SHARD_SERVING)) {
            if (s->refs == 0) {
                claim_locked(r, s);
                rc = commit_locked(r, s, SV_SHARD_SERVING, NULL, s->local_bytes, s->pinned, err);
                if (!rc)
                    s->refs++;
                unclaim_locked(s);
                if (rc)
                    break;
            } else {
                s->refs++;
            }
            break;
        }
        if (!s->queued) {
            if (!r->has_mount[s->source]) {
                rc = sv_fail(err, SV_EUNAVAIL, "shard %s cannot be hydrated: no mount is set for source %s", s->key,
                             sv_shard_source_name(s->source));
                break;
            }
            if (s->state == SV_SHARD_ERRORED && r->policy == SV_REGISTRY_RECOVER_NONE) {
                rc = sv_fail(err, SV_ESTATE, "shard %s is ERRORED (%s); recover it first", s->key, s->last_error);
                break;
            }
            /* INITIALIZING/RECOVERING with no hydration: a persist failed at
             * the end of the last one; hydrating again settles it. */
            enqueue_locked(r, s, false);
            if (parked)
                gen0 = s->hyd_gen;
        }
        if (!parked) {
            parked = true;
            s->waiters++;
            gen0 = s->hyd_gen;
            r->misses++;
        }
        if (sv_deadline_passed(dl)) {
            /* waiting for room, or queued behind hydrations that are */
            if (s->waiting_room ||
                (r->room_head && (s->state == SV_SHARD_NEW || s->state == SV_SHARD_ERRORED)))
                rc = sv_fail(err, SV_ENOSPACE,
                             "shard %s: no room in the cache quota (cache_quota_bytes=%" PRId64 ", %" PRId64
                             " bytes held by shards in use, pinned or downloading) within %" PRId64 " ms (unpin or "
                             "unmount shards, or raise SHARDVAULT_CACHE_BYTES)",
                             s->key, r->quota, r->held, timeout_ms);
            else
                rc = sv_fail(err, SV_ETIMEOUT,
                             "shard %s not ready within %" PRId64 " ms: its hydration is %s (%" PRId64 " of %" PRId64
                             " bytes fetched)",
                             s->key, timeout_ms, s->state == SV_SHARD_NEW || s->state == SV_SHARD_ERRORED ? "queued" : "running",
                             atomic_load(&s->progress), s->remote_bytes);
            break;
        }
        cond_wait_until(&s->cv, &r->mu, dl.at_ns);
    }
    if (parked) {
        s->waiters--;
        if (!s->waiters)
            pthread_cond_broadcast(&r->room_cv); /* a hydration waiting for room may give up */
    } else if (!rc) {
        r->hits++;
    }
    if (!rc) {
        ref->reg = r;
        ref->s = s; /* keeps its mref */
        shard_dir(r, s, ref->dir, sizeof ref->dir);
        *out = ref;
    } else {
        sv__shard_put_locked(s);
        free(ref);
    }
    if (--r->inflight == 0)
        pthread_cond_broadcast(&r->idle_cv);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void sv_registry_release(sv_shard_ref *ref)
{
    if (!ref)
        return;
    sv_registry *r = ref->reg;
    shard *s = ref->s;
    pthread_mutex_lock(&r->mu);
    s->refs--;
    s->last_use_ns = sv_mono_ns();
    if (s->refs == 0 && !s->destroyed) {
        claim_locked(r, s);
        if (s->refs == 0 && s->state == SV_SHARD_SERVING && !s->destroyed) {
            sv_err e = {0};
            if (commit_locked(r, s, SV_SHARD_AVAILABLE, NULL, s->local_bytes, s->pinned, &e))
                sv_warn("registry: release not persisted; the shard stays SERVING", "shard=%s err=\"%s\"", s->key,
                        e.msg);
        }
        unclaim_locked(s);
        pthread_cond_broadcast(&r->room_cv);
    }
    sv__shard_put_locked(s);
    pthread_mutex_unlock(&r->mu);
    free(ref);
}

/* ---- register / destroy / pin / recover / gc --------------------------------------------------- */

int sv_registry_register(sv_registry *r, const char *collection, const char *name, sv_shard_source source,
                         int64_t remote_bytes, sv_err *err)
{
    if (check_names(collection, name, err))
        return SV_EINVAL;
    if ((unsigned)source >= SV_SHARD_NSOURCES)
        return sv_fail(err, SV_EINVAL, "unknown shard source %d", (int)source);
    shard *s = sv__shard_new(collection, name, source);
    if (!s)
        return oom(err);
    s->remote_bytes = remote_bytes > 0 ? remote_bytes : 0;
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    if (find_locked(r, collection, name)) {
        rc = sv_fail(err, SV_EEXIST, "shard %s/%s is already registered", collection, name);
    } else if (sv_strmap_add(&r->map, s->key, s)) {
        rc = oom(err);
    } else {
        s->busy = true; /* nobody may see it before its record is written */
        rc = commit_locked(r, s, SV_SHARD_NEW, "", 0, false, err);
        if (!rc)
            sv__registry_publish(r, s, SV_SHARD_NEW, SV_SHARD_NEW, s->last_transition_at);
        else
            sv_strmap_remove(&r->map, s->key, s);
        unclaim_locked(s);
        if (!rc)
            s = NULL;
    }
    if (s)
        sv__shard_put_locked(s);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

/* 0 with r->mu taken and *out the named shard, held (mrefs) and claimed for
 * a change; or an error with r->mu released. */
static int hold_named(sv_registry *r, const char *collection, const char *name, shard **out, sv_err *err)
{
    if (check_names(collection, name, err))
        return SV_EINVAL;
    pthread_mutex_lock(&r->mu);
    shard *s = find_locked(r, collection, name);
    if (!s) {
        pthread_mutex_unlock(&r->mu);
        return sv_fail(err, SV_ENOTFOUND, "shard %s/%s is not registered", collection, name);
    }
    s->mrefs++;
    claim_locked(r, s);
    *out = s;
    return 0;
}

int sv_registry_destroy(sv_registry *r, const char *collection, const char *name, sv_err *err)
{
    shard *s = NULL;
    int rc = hold_named(r, collection, name, &s, err);
    if (rc)
        return rc;
    if (s->destroyed) {
        rc = sv_fail(err, SV_ENOTFOUND, "shard %s was destroyed", s->key);
    } else if (s->refs > 0) {
        rc = sv_fail(err, SV_ECONFLICT, "shard %s is in use by %d reference(s); release them first", s->key,
                     s->refs);
    } else {
        char key[640];
        rec_key(r, s, key, sizeof key);
        pthread_mutex_unlock(&r->mu);
        rc = sv_catalog_delete(r->cat, key, err);
        pthread_mutex_lock(&r->mu);
    }
    if (!rc && s->refs > 0) /* cannot happen while claimed: refs grow only through the claim at 0 */
        rc = sv_fail(err, SV_EINTERNAL, "shard %s gained a reference while being destroyed", s->key);
    if (rc) {
        unclaim_locked(s);
        sv__shard_put_locked(s);
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    s->destroyed = true;
    sv_strmap_remove(&r->map, s->key, s);
    sv__shard_put_locked(s); /* the map's */
    pthread_cond_broadcast(&s->cv); /* parked acquirers answer SV_ENOTFOUND now */
    pthread_cond_broadcast(&r->room_cv);
    int64_t bytes = (s->state == SV_SHARD_AVAILABLE || s->state == SV_SHARD_SERVING) ? s->local_bytes : 0;
    remove_dir_unlocked(r, s, "destroyed");
    r->held -= bytes;
    s->local_bytes = 0;
    pthread_cond_broadcast(&r->room_cv);
    unclaim_locked(s);
    sv__shard_put_locked(s);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int set_pinned(sv_registry *r, const char *collection, const char *name, bool pinned, sv_err *err)
{
    shard *s = NULL;
    int rc = hold_named(r, collection, name, &s, err);
    if (rc)
        return rc;
    rc = s->destroyed ? sv_fail(err, SV_ENOTFOUND, "shard %s was destroyed", s->key)
                          : commit_locked(r, s, s->state, NULL, s->local_bytes, pinned, err);
    unclaim_locked(s);
    sv__shard_put_locked(s);
    if (!pinned)
        pthread_cond_broadcast(&r->room_cv);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int sv_registry_pin(sv_registry *r, const char *c, const char *s, sv_err *err) { return set_pinned(r, c, s, true, err); }
int sv_registry_unpin(sv_registry *r, const char *c, const char *s, sv_err *err)
{
    return set_pinned(r, c, s, false, err);
}

int sv_registry_recover(sv_registry *r, const char *collection, const char *name, sv_err *err)
{
    if (check_names(collection, name, err))
        return SV_EINVAL;
    pthread_mutex_lock(&r->mu);
    shard *s = find_locked(r, collection, name);
    int rc = 0;
    if (!s)
        rc = sv_fail(err, SV_ENOTFOUND, "shard %s/%s is not registered", collection, name);
    else if (s->state != SV_SHARD_ERRORED)
        rc = sv_fail(err, SV_ESTATE, "shard %s is %s, not ERRORED", s->key, sv_shard_state_name(s->state));
    else if (!r->has_mount[s->source])
        rc = sv_fail(err, SV_EUNAVAIL, "no mount is set for source %s", sv_shard_source_name(s->source));
    else if (!s->queued)
        enqueue_locked(r, s, true);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int sv_registry_gc(sv_registry *r, int64_t *evicted, int64_t *freed, sv_err *err)
{
    int64_t n = 0, bytes = 0;
    pthread_mutex_lock(&r->mu);
    shard **v = NULL;
    size_t nv = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < r->map.nb && !rc; i++)
        for (sv_strmap_entry *e = r->map.b[i]; e; e = e->next) {
            shard *s = e->v[0];
            if (!evictable(s))
                continue;
            if (sv_grow(&v, &cap, nv + 1, sizeof *v)) {
                rc = oom(err);
                break;
            }
            s->mrefs++;
            v[nv++] = s;
        }
    for (size_t i = 0; i < nv; i++) {
        if (!rc)
            n += evict_locked(r, v[i], &bytes);
        sv__shard_put_locked(v[i]);
    }
    pthread_mutex_unlock(&r->mu);
    free(v);
    if (evicted)
        *evicted = n;
    if (freed)
        *freed = bytes;
    return rc;
}

int sv_registry_set_mount(sv_registry *r, sv_shard_source source, const sv_registry_mount *m, sv_err *err)
{
    if ((unsigned)source >= SV_SHARD_NSOURCES)
        return sv_fail(err, SV_EINVAL, "unknown shard source %d", (int)source);
    if (m && (!m->size || !m->fetch))
        return sv_fail(err, SV_EINVAL, "a mount needs both size and fetch callbacks");
    pthread_mutex_lock(&r->mu);
    r->has_mount[source] = m != NULL;
    if (m) {
        r->mounts[source] = *m;
        for (size_t i = 0; i < r->map.nb; i++)
            for (sv_strmap_entry *e = r->map.b[i]; e; e = e->next) {
                shard *s = e->v[0];
                if (s->recover_pending && s->source == source) {
                    s->recover_pending = false;
                    if (s->state == SV_SHARD_ERRORED && !s->queued)
                        enqueue_locked(r, s, true);
                }
            }
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}
