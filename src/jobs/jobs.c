/* jobs — job records, the state machine, recovery at start, retention of
 * finished jobs, cancel, and the API's answers.
 *
 * Invariants (see jobs.h and docs/jobs.md):
 *  1. The catalog is written before memory changes state: a transition is
 *     persisted (sv__job_persist) and only then visible as the new state.
 *     (Counters are the exception: they are lock-free atomics, persisted at
 *     transitions and by the flusher every few seconds; a crash loses at most
 *     that much progress, which the kinds that resume recompute anyway.)
 *  2. A job leaves PENDING/RUNNING exactly once (sv_job_finish ignores a
 *     second finish), so a late worker cannot overwrite the first outcome.
 *  3. At start every PENDING/RUNNING job of this node is either claimed by a
 *     service that resumes it or ended FAILED "interrupted by restart" in
 *     sv_jobs_recover: none stays in a running state without a runner.
 *  4. jobs->recs is sorted by (created_at, seq); listing walks it backwards
 *     (newest first) and the cursor is a job id.
 *  5. A record is freed only when pruned and no handle holds it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_internal.h"

static const char *const state_names[] = {"PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED"};

const char *sv_job_state_name(sv_job_state s) { return sv_enum_name(state_names, 5, (int)s); }
int sv_job_state_parse(const char *s) { return sv_enum_parse(state_names, 5, s); }

bool sv_job_state_final(sv_job_state s) { return s >= SV_JOB_SUCCEEDED; }

static int oom(sv_err *err) { return sv_fail(err, SV_ENOMEM, "out of memory"); }

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

/* ---- records ---------------------------------------------------------------- */

static json_t *rec_json_locked(const sv_job *r)
{
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}",
                          "format_version", JOB_FORMAT, "id", r->id, "kind", r->kind, "collection", r->collection,
                          "target", r->target, "backend", r->backend, "schedule", r->schedule, "link", r->link,
                          "node", r->node, "state", sv_job_state_name(atomic_load(&r->state)), "itemsDone",
                          (json_int_t)atomic_load(&r->items_done), "itemsTotal",
                          (json_int_t)atomic_load(&r->items_total), "bytesDone",
                          (json_int_t)atomic_load(&r->bytes_done), "bytesTotal",
                          (json_int_t)atomic_load(&r->bytes_total), "createdAt", (json_int_t)r->created_at,
                          "startedAt", (json_int_t)r->started_at, "finishedAt", (json_int_t)r->finished_at,
                          "forgotten", r->forgotten);
    if (o) {
        json_object_set_new(o, "reason", json_string(r->reason));
        if (r->result)
            json_object_set(o, "result", r->result);
    }
    return o;
}

/* Writes o (stolen) as the record, ordered with every other write of it. */
static int put_rec(sv_job *r, json_t *o, sv_err *err)
{
    pthread_mutex_lock(&r->wmu);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc = s ? 0 : oom(err);
    if (s) {
        char key[128];
        snprintf(key, sizeof key, "jobs/%s", r->id);
        rc = sv_catalog_put(r->jobs->cat, key, s, strlen(s), 0, err);
        free(s);
    }
    atomic_store(&r->persisted_ms, sv_mono_ns() / 1000000);
    pthread_mutex_unlock(&r->wmu);
    return rc;
}

int sv__job_persist(sv_job *r, sv_err *err)
{
    sv_jobs *j = r->jobs;
    pthread_mutex_lock(&r->wmu);
    pthread_mutex_lock(&j->mu);
    atomic_store(&r->dirty, false);
    json_t *o = rec_json_locked(r);
    pthread_mutex_unlock(&j->mu);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    int rc;
    if (!s) {
        rc = oom(err);
    } else {
        char key[128];
        snprintf(key, sizeof key, "jobs/%s", r->id);
        rc = sv_catalog_put(j->cat, key, s, strlen(s), 0, err);
        free(s);
    }
    atomic_store(&r->persisted_ms, sv_mono_ns() / 1000000);
    pthread_mutex_unlock(&r->wmu);
    return rc;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int64_t jint(json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

static sv_job *rec_new(sv_jobs *j)
{
    sv_job *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->jobs = j;
    pthread_mutex_init(&r->wmu, NULL);
    return r;
}

static void rec_free(sv_job *r)
{
    if (!r)
        return;
    json_decref(r->result);
    pthread_mutex_destroy(&r->wmu);
    free(r);
}

static int rec_cmp(const sv_job *a, const sv_job *b)
{
    if (a->created_at != b->created_at)
        return a->created_at < b->created_at ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return strcmp(a->id, b->id);
}

/* Inserts keeping recs sorted (new jobs land at the end: O(1) in practice). */
static int recs_insert_locked(sv_jobs *j, sv_job *r)
{
    if (sv_grow(&j->recs, &j->caprecs, j->nrecs + 1, sizeof *j->recs))
        return SV_ENOMEM;
    size_t i = j->nrecs;
    while (i > 0 && rec_cmp(j->recs[i - 1], r) > 0) {
        j->recs[i] = j->recs[i - 1];
        i--;
    }
    j->recs[i] = r;
    j->nrecs++;
    return 0;
}

sv_job *sv__job_find_locked(sv_jobs *j, const char *id)
{
    for (size_t i = j->nrecs; i-- > 0;)
        if (!strcmp(j->recs[i]->id, id))
            return j->recs[i];
    return NULL;
}

const sv_job_kind *sv__kind_locked(sv_jobs *j, const char *name)
{
    for (size_t i = 0; i < j->nkinds; i++)
        if (!strcmp(j->kinds[i].name, name))
            return &j->kinds[i];
    return NULL;
}

static int load_one(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    sv_jobs *j = ud;
    json_t *o = json_loadb(val, len, 0, NULL);
    sv_job *r = o ? rec_new(j) : NULL;
    int st = o ? sv_job_state_parse(jstr(o, "state")) : -1;
    if (!o || !r || st < 0 || !*jstr(o, "id")) {
        /* A record this version cannot read is reported, not guessed at. */
        sv_warn("jobs: unreadable job record skipped", "key=%s", key);
        json_decref(o);
        rec_free(r);
        return 0;
    }
    copy_str(r->id, sizeof r->id, jstr(o, "id"));
    copy_str(r->kind, sizeof r->kind, jstr(o, "kind"));
    copy_str(r->collection, sizeof r->collection, jstr(o, "collection"));
    copy_str(r->target, sizeof r->target, jstr(o, "target"));
    copy_str(r->backend, sizeof r->backend, jstr(o, "backend"));
    copy_str(r->schedule, sizeof r->schedule, jstr(o, "schedule"));
    copy_str(r->link, sizeof r->link, jstr(o, "link"));
    copy_str(r->node, sizeof r->node, jstr(o, "node"));
    if (r->node[0] && strcmp(r->node, j->node) && sv_catalog_shared(j->cat)) {
        /* another node's job (a cluster shares the catalog): that node
         * lists, runs, resumes and prunes it; a copy here would only go
         * stale */
        json_decref(o);
        rec_free(r);
        return 0;
    }
    copy_str(r->reason, sizeof r->reason, jstr(o, "reason"));
    atomic_store(&r->state, st);
    atomic_store(&r->items_done, jint(o, "itemsDone"));
    atomic_store(&r->items_total, jint(o, "itemsTotal"));
    atomic_store(&r->bytes_done, jint(o, "bytesDone"));
    atomic_store(&r->bytes_total, jint(o, "bytesTotal"));
    r->created_at = jint(o, "createdAt");
    r->started_at = jint(o, "startedAt");
    r->finished_at = jint(o, "finishedAt");
    r->forgotten = json_is_true(json_object_get(o, "forgotten"));
    json_t *res = json_object_get(o, "result");
    if (res)
        r->result = json_incref(res);
    json_decref(o);
    r->seq = j->next_seq++;
    if (recs_insert_locked(j, r)) {
        rec_free(r);
        return SV_ENOMEM;
    }
    return 0;
}

/* ---- the service -------------------------------------------------------------- */

int sv_jobs_open(const sv_jobs_opts *opts, sv_catalog *cat, sv_jobs **out, sv_err *err)
{
    *out = NULL;
    sv_jobs *j = calloc(1, sizeof *j);
    if (!j)
        return oom(err);
    j->cat = cat;
    copy_str(j->node, sizeof j->node, opts && opts->node_name ? opts->node_name : "node1");
    int rc = 0;
    if (opts && opts->keep > 0)
        j->keep = opts->keep;
    else
        rc = sv_env_int("SHARDVAULT_JOBS_KEEP", 1000, &j->keep, err);
    if (rc == 0 && opts && opts->keep_days > 0)
        j->keep_days = opts->keep_days;
    else if (rc == 0)
        rc = sv_env_int("SHARDVAULT_JOBS_KEEP_DAYS", 30, &j->keep_days, err);
    if (rc == 0 && (j->keep < 1 || j->keep_days < 1))
        rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_JOBS_KEEP and SHARDVAULT_JOBS_KEEP_DAYS must be at least 1");
    j->tick_ms = opts && opts->tick_ms > 0 ? opts->tick_ms : 200;
    pthread_mutex_init(&j->mu, NULL);
    pthread_mutex_init(&j->tick_mu, NULL);
    pthread_cond_init(&j->tick_cv, NULL);
    if (rc == 0) {
        pthread_mutex_lock(&j->mu);
        rc = sv_catalog_scan(cat, "jobs/", load_one, j, err);
        pthread_mutex_unlock(&j->mu);
        if (rc == SV_ENOMEM)
            oom(err);
    }
    if (rc == 0)
        rc = sv__sched_load(j, err);
    if (rc) {
        sv_jobs_close(j);
        return rc;
    }
    *out = j;
    return 0;
}

int sv_jobs_register_kind(sv_jobs *j, const sv_job_kind *kind, sv_err *err)
{
    pthread_mutex_lock(&j->mu);
    sv_job_kind *slot = (sv_job_kind *)sv__kind_locked(j, kind->name);
    if (!slot && j->nkinds < MAX_KINDS)
        slot = &j->kinds[j->nkinds++];
    if (slot)
        *slot = *kind;
    pthread_mutex_unlock(&j->mu);
    return slot ? 0 : sv_fail(err, SV_EINTERNAL, "too many job kinds (at most %d)", MAX_KINDS);
}

static void *ticker(void *arg)
{
    sv_jobs *j = arg;
    pthread_mutex_lock(&j->tick_mu);
    while (!atomic_load(&j->stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + j->tick_ms * 1000000;
        ts.tv_sec += ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&j->tick_cv, &j->tick_mu, &ts);
        if (atomic_load(&j->stopping))
            break;
        sv__sched_tick(j); /* under tick_mu: schedule changes are serialized with it */
        pthread_mutex_unlock(&j->tick_mu);
        sv__jobs_flush(j, false);
        pthread_mutex_lock(&j->tick_mu);
    }
    pthread_mutex_unlock(&j->tick_mu);
    return NULL;
}

int sv_jobs_recover(sv_jobs *j, sv_err *err)
{
    /* Invariant 3: every running record of this node without a claimant. */
    size_t n = 0;
    sv_job **todo = NULL;
    pthread_mutex_lock(&j->mu);
    todo = calloc(j->nrecs ? j->nrecs : 1, sizeof *todo);
    for (size_t i = 0; todo && i < j->nrecs; i++) {
        sv_job *r = j->recs[i];
        if (!sv_job_state_final(atomic_load(&r->state)) && !r->claimed && !strcmp(r->node, j->node)) {
            r->refs++;
            todo[n++] = r;
        }
    }
    pthread_mutex_unlock(&j->mu);
    if (!todo)
        return oom(err);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        sv_err e = {0};
        int r2 = sv_job_finish(todo[i], SV_JOB_FAILED, "interrupted by restart", NULL, &e);
        if (r2 && rc == 0) {
            rc = r2;
            if (err)
                *err = e;
        }
        if (r2 == 0)
            sv_info("job failed at start", "job=%s kind=%s reason=\"interrupted by restart\"", todo[i]->id,
                    todo[i]->kind);
        sv_job_release(todo[i]);
    }
    free(todo);
    if (rc)
        return rc;
    sv__jobs_prune(j);
    if (pthread_create(&j->ticker, NULL, ticker, j) != 0)
        return sv_fail(err, SV_EINTERNAL, "cannot start the scheduler thread");
    j->ticker_started = true;
    return 0;
}

void sv_jobs_shutdown(sv_jobs *j)
{
    if (!j)
        return;
    if (j->ticker_started) {
        pthread_mutex_lock(&j->tick_mu);
        atomic_store(&j->stopping, true);
        pthread_cond_broadcast(&j->tick_cv);
        pthread_mutex_unlock(&j->tick_mu);
        pthread_join(j->ticker, NULL);
        j->ticker_started = false;
    }
    sv__jobs_flush(j, true);
}

void sv_jobs_close(sv_jobs *j)
{
    if (!j)
        return;
    sv_jobs_shutdown(j);
    for (size_t i = 0; i < j->nrecs; i++)
        rec_free(j->recs[i]);
    free(j->recs);
    sv__sched_free_all(j);
    pthread_mutex_destroy(&j->mu);
    pthread_mutex_destroy(&j->tick_mu);
    pthread_cond_destroy(&j->tick_cv);
    free(j);
}

/* ---- jobs ----------------------------------------------------------------------- */

static int check_spec(const sv_job_spec *s, sv_err *err)
{
    if (!s->kind || !*s->kind || strlen(s->kind) >= 32)
        return sv_fail(err, SV_EINVAL, "a job needs a kind (at most 31 bytes)");
    if (s->id && (!*s->id || strlen(s->id) >= 64 || strchr(s->id, '/')))
        return sv_fail(err, SV_EINVAL, "job id '%.80s' must be 1..63 bytes without '/'", s->id);
    return 0;
}

static int create_rec(sv_jobs *j, const sv_job_spec *spec, sv_job_state state, const char *reason, sv_job **out,
                      sv_err *err)
{
    int rc = check_spec(spec, err);
    if (rc)
        return rc;
    sv_job *r = rec_new(j);
    if (!r)
        return oom(err);
    if (spec->id) {
        copy_str(r->id, sizeof r->id, spec->id);
    } else {
        sv_uuid u;
        sv_uuid_v4(&u);
        sv_uuid_format(&u, r->id);
    }
    copy_str(r->kind, sizeof r->kind, spec->kind);
    copy_str(r->collection, sizeof r->collection, spec->collection);
    copy_str(r->target, sizeof r->target, spec->target);
    copy_str(r->backend, sizeof r->backend, spec->backend);
    copy_str(r->schedule, sizeof r->schedule, spec->schedule);
    copy_str(r->link, sizeof r->link, spec->link);
    copy_str(r->node, sizeof r->node, j->node);
    copy_str(r->reason, sizeof r->reason, reason);
    atomic_store(&r->state, (int)state);
    r->created_at = sv_now_ms();
    if (sv_job_state_final(state))
        r->finished_at = r->created_at;
    pthread_mutex_lock(&j->mu);
    if (sv__job_find_locked(j, r->id)) {
        pthread_mutex_unlock(&j->mu);
        rec_free(r);
        return sv_fail(err, SV_EEXIST, "job %s exists", spec->id);
    }
    r->seq = j->next_seq++;
    r->claimed = true;
    r->refs = out ? 1 : 0;
    pthread_mutex_unlock(&j->mu);
    /* Invariant 1: the record is durable before anyone sees it. */
    rc = sv__job_persist(r, err);
    if (rc) {
        rec_free(r);
        return rc;
    }
    pthread_mutex_lock(&j->mu);
    rc = recs_insert_locked(j, r);
    pthread_mutex_unlock(&j->mu);
    if (rc) {
        /* Durable but not in memory: the next start loads it and, since
         * nothing runs it, ends it FAILED (invariant 3). */
        rec_free(r);
        return oom(err);
    }
    atomic_fetch_add(&j->created, 1);
    if (sv_job_state_final(state))
        atomic_fetch_add(&j->finished[state], 1);
    if (out)
        *out = r;
    return 0;
}

int sv_jobs_create(sv_jobs *j, const sv_job_spec *spec, sv_job **out, sv_err *err)
{
    *out = NULL;
    return create_rec(j, spec, SV_JOB_PENDING, NULL, out, err);
}

int sv__jobs_create_failed(sv_jobs *j, const sv_job_spec *spec, const char *reason, char id_out[64])
{
    sv_job *r = NULL;
    int rc = create_rec(j, spec, SV_JOB_FAILED, reason, &r, NULL);
    if (rc == 0) {
        copy_str(id_out, 64, r->id);
        sv_job_release(r);
    }
    return rc;
}

int sv_jobs_claim(sv_jobs *j, const char *id, sv_job **out, sv_err *err)
{
    *out = NULL;
    pthread_mutex_lock(&j->mu);
    sv_job *r = sv__job_find_locked(j, id);
    if (r) {
        r->claimed = true;
        r->refs++;
    }
    pthread_mutex_unlock(&j->mu);
    if (!r)
        return sv_fail(err, SV_ENOTFOUND, "job %.64s not found", id);
    *out = r;
    return 0;
}

int sv_jobs_unfinished(sv_jobs *j, const char *kind, sv_jobs_visit_fn fn, void *ud, sv_err *err)
{
    size_t n = 0;
    pthread_mutex_lock(&j->mu);
    sv_job **todo = malloc((j->nrecs ? j->nrecs : 1) * sizeof *todo);
    for (size_t i = 0; todo && i < j->nrecs; i++) {
        sv_job *r = j->recs[i];
        if (!strcmp(r->kind, kind) && !sv_job_state_final(atomic_load(&r->state)) && !strcmp(r->node, j->node)) {
            r->refs++;
            todo[n++] = r;
        }
    }
    pthread_mutex_unlock(&j->mu);
    if (!todo)
        return oom(err);
    for (size_t i = 0; i < n; i++) {
        fn(ud, todo[i]->id, todo[i]->collection, todo[i]->target, todo[i]->backend);
        sv_job_release(todo[i]);
    }
    free(todo);
    return 0;
}

void sv_job_release(sv_job *r)
{
    if (!r)
        return;
    sv_jobs *j = r->jobs;
    pthread_mutex_lock(&j->mu);
    bool gone = --r->refs == 0 && r->pruned;
    pthread_mutex_unlock(&j->mu);
    if (gone)
        rec_free(r);
}

const char *sv_job_id(const sv_job *job) { return job->id; }

int sv_job_start(sv_job *r, sv_err *err)
{
    sv_jobs *j = r->jobs;
    pthread_mutex_lock(&j->mu);
    int st = atomic_load(&r->state);
    if (st != SV_JOB_PENDING) {
        pthread_mutex_unlock(&j->mu);
        return st == SV_JOB_RUNNING ? 0 : sv_fail(err, SV_ECONFLICT, "job %s already finished", r->id);
    }
    atomic_store(&r->state, SV_JOB_RUNNING);
    r->started_at = sv_now_ms();
    pthread_mutex_unlock(&j->mu);
    /* Memory shows RUNNING a moment before the catalog does; a crash in
     * between leaves PENDING, which recovery treats the same way. */
    return sv__job_persist(r, err);
}

int sv_job_finish(sv_job *r, sv_job_state state, const char *reason, json_t *result, sv_err *err)
{
    if (!sv_job_state_final(state))
        return sv_fail(err, SV_EINTERNAL, "finish needs a final state");
    sv_jobs *j = r->jobs;
    pthread_mutex_lock(&j->mu);
    if (r->finishing || sv_job_state_final(atomic_load(&r->state))) { /* invariant 2 */
        pthread_mutex_unlock(&j->mu);
        return 0;
    }
    r->finishing = true;
    if (state == SV_JOB_SUCCEEDED) {
        /* A finished job's counters read complete. */
        int64_t it = atomic_load(&r->items_total), bt = atomic_load(&r->bytes_total);
        if (it > atomic_load(&r->items_done))
            atomic_store(&r->items_done, it);
        if (bt > atomic_load(&r->bytes_done))
            atomic_store(&r->bytes_done, bt);
    }
    /* Invariant 1: the final record is built and made durable first; memory
     * (and so listings and prune) sees the final state only after. */
    int64_t now = sv_now_ms();
    json_t *o = rec_json_locked(r);
    pthread_mutex_unlock(&j->mu);
    if (o) {
        json_object_set_new(o, "state", json_string(sv_job_state_name(state)));
        json_object_set_new(o, "finishedAt", json_integer(now));
        if (!r->started_at)
            json_object_set_new(o, "startedAt", json_integer(now));
        json_object_set_new(o, "reason", json_string(reason ? reason : ""));
        if (result)
            json_object_set(o, "result", result);
    }
    int rc = o ? put_rec(r, o, err) : oom(err);
    pthread_mutex_lock(&j->mu);
    atomic_store(&r->state, (int)state);
    r->finished_at = now;
    if (!r->started_at)
        r->started_at = now;
    copy_str(r->reason, sizeof r->reason, reason);
    if (result) {
        json_decref(r->result);
        r->result = json_incref(result);
    }
    pthread_mutex_unlock(&j->mu);
    atomic_fetch_add(&j->finished[state], 1);
    sv__jobs_prune(j);
    return rc;
}

void sv_job_set_totals(sv_job *r, int64_t items_total, int64_t bytes_total)
{
    atomic_store(&r->items_total, items_total);
    atomic_store(&r->bytes_total, bytes_total);
    atomic_store(&r->dirty, true);
}

void sv_job_add_done(sv_job *r, int64_t items, int64_t bytes)
{
    if (items)
        atomic_fetch_add(&r->items_done, items);
    if (bytes)
        atomic_fetch_add(&r->bytes_done, bytes);
    atomic_store(&r->dirty, true);
}

void sv_job_set_done(sv_job *r, int64_t items, int64_t bytes)
{
    atomic_store(&r->items_done, items);
    atomic_store(&r->bytes_done, bytes);
    atomic_store(&r->dirty, true);
}

bool sv_job_canceled(const sv_job *r) { return atomic_load(&r->cancel); }
void sv_job_request_cancel(sv_job *r) { atomic_store(&r->cancel, true); }

int sv_jobs_cancel(sv_jobs *j, const char *id, sv_err *err)
{
    pthread_mutex_lock(&j->mu);
    sv_job *r = sv__job_find_locked(j, id);
    if (!r) {
        pthread_mutex_unlock(&j->mu);
        return sv_fail(err, SV_ENOTFOUND, "job %.64s not found", id);
    }
    int st = atomic_load(&r->state);
    if (sv_job_state_final(st)) {
        pthread_mutex_unlock(&j->mu);
        return sv_fail(err, SV_ECONFLICT, "job %s already finished (%s)", r->id, sv_job_state_name(st));
    }
    const sv_job_kind *k = sv__kind_locked(j, r->kind);
    sv_job_kind kind = k ? *k : (sv_job_kind){0};
    if (kind.no_cancel) {
        pthread_mutex_unlock(&j->mu);
        return sv_fail(err, SV_ECONFLICT, "job %s (%s) cannot be canceled: %s", r->id, r->kind, kind.no_cancel);
    }
    atomic_store(&r->cancel, true);
    r->refs++;
    pthread_mutex_unlock(&j->mu);
    if (kind.cancel)
        kind.cancel(kind.self, r);
    sv_job_release(r);
    return 0;
}

/* ---- flusher and retention -------------------------------------------------------- */

void sv__jobs_flush(sv_jobs *j, bool force)
{
    int64_t now = sv_mono_ns() / 1000000;
    sv_job *todo[64];
    size_t n = 0;
    pthread_mutex_lock(&j->mu);
    for (size_t i = j->nrecs; i-- > 0 && n < 64;) {
        sv_job *r = j->recs[i];
        if (atomic_load(&r->state) == SV_JOB_RUNNING && atomic_load(&r->dirty) && (force || now - atomic_load(&r->persisted_ms) >= 2000)) {
            r->refs++;
            todo[n++] = r;
        }
    }
    pthread_mutex_unlock(&j->mu);
    for (size_t i = 0; i < n; i++) {
        sv_err e = {0};
        if (sv__job_persist(todo[i], &e))
            sv_warn("jobs: progress not persisted", "job=%s error=\"%s\"", todo[i]->id, e.msg);
        sv_job_release(todo[i]);
    }
}

/* Drops finished jobs beyond `keep` per kind (newest kept) or older than
 * `keep_days`, except scheduled artifacts their schedule still keeps.
 * Catalog first, then memory. */
void sv__jobs_prune(sv_jobs *j)
{
    int64_t cutoff = sv_now_ms() - j->keep_days * 86400000LL;
    pthread_mutex_lock(&j->mu);
    sv_job **gone = malloc((j->nrecs ? j->nrecs : 1) * sizeof *gone);
    size_t ngone = 0;
    struct kind_count { const char *kind; int64_t seen; } counts[MAX_KINDS * 2];
    size_t ncounts = 0;
    for (size_t i = j->nrecs; gone && i-- > 0;) { /* newest first */
        sv_job *r = j->recs[i];
        if (!sv_job_state_final(atomic_load(&r->state)))
            continue;
        size_t c = 0;
        while (c < ncounts && strcmp(counts[c].kind, r->kind))
            c++;
        if (c == ncounts) {
            if (ncounts == sizeof counts / sizeof counts[0])
                continue; /* more kinds than ever registered: keep */
            counts[ncounts++] = (struct kind_count){r->kind, 0};
        }
        bool keep = ++counts[c].seen <= j->keep && r->finished_at >= cutoff;
        if (!keep && !sv__sched_protects_locked(j, r)) {
            r->refs++; /* held while the catalog is written */
            gone[ngone++] = r;
        }
    }
    pthread_mutex_unlock(&j->mu);
    if (!gone)
        return;
    for (size_t i = 0; i < ngone; i++) {
        char key[128];
        snprintf(key, sizeof key, "jobs/%s", gone[i]->id);
        bool deleted = sv_catalog_delete(j->cat, key, NULL) == 0;
        pthread_mutex_lock(&j->mu);
        for (size_t k = 0; deleted && k < j->nrecs; k++) {
            if (j->recs[k] == gone[i]) {
                memmove(&j->recs[k], &j->recs[k + 1], (j->nrecs - k - 1) * sizeof *j->recs);
                j->nrecs--;
                gone[i]->pruned = true;
                break;
            }
        }
        pthread_mutex_unlock(&j->mu);
        sv_job_release(gone[i]);
    }
    free(gone);
}

/* ---- answers ---------------------------------------------------------------------- */

static json_t *ms_or_null(int64_t ms) { return ms ? json_integer(ms) : json_null(); }

static json_t *job_api_locked(const sv_job *r, bool with_result)
{
    int st = atomic_load(&r->state);
    int64_t id = atomic_load(&r->items_done), it = atomic_load(&r->items_total);
    int64_t bd = atomic_load(&r->bytes_done), bt = atomic_load(&r->bytes_total);
    int progress = 0;
    if (st == SV_JOB_SUCCEEDED)
        progress = 100;
    else if (it > 0)
        progress = (int)(id * 100 / it);
    else if (bt > 0)
        progress = (int)(bd * 100 / bt);
    if (progress > 99 && st != SV_JOB_SUCCEEDED)
        progress = 99;
    if (progress < 0)
        progress = 0;
    json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:I,s:s,s:I,s:o,s:o}", "id", r->id, "kind", r->kind, "state",
                          sv_job_state_name(st), "progress", progress, "itemsDone", (json_int_t)id, "itemsTotal",
                          (json_int_t)it, "bytesDone", (json_int_t)bd, "bytesTotal", (json_int_t)bt, "reason",
                          r->reason, "createdAt", (json_int_t)r->created_at, "startedAt", ms_or_null(r->started_at),
                          "finishedAt", ms_or_null(r->finished_at));
    if (!o)
        return NULL;
    json_object_set_new(o, "collection", *r->collection ? json_string(r->collection) : json_null());
    json_object_set_new(o, "target", *r->target ? json_string(r->target) : json_null());
    json_object_set_new(o, "schedule", *r->schedule ? json_string(r->schedule) : json_null());
    json_object_set_new(o, "link", *r->link ? json_string(r->link) : json_null());
    json_object_set_new(o, "node", json_string(r->node));
    /* A running job's ETA from its rate so far (items, else bytes). */
    int64_t done = it > 0 ? id : bd, total = it > 0 ? it : bt;
    int64_t elapsed = r->started_at ? sv_now_ms() - r->started_at : 0;
    json_object_set_new(o, "etaMs",
                        st == SV_JOB_RUNNING && done > 0 && total >= done && elapsed > 0
                            ? json_integer((json_int_t)((double)(total - done) * (double)elapsed / (double)done))
                            : json_null());
    if (with_result)
        json_object_set_new(o, "result", r->result ? json_deep_copy(r->result) : json_null());
    return o;
}

static bool matches(const sv_job *r, const sv_jobs_filter *f, int want_state)
{
    if (f->kind && strcmp(f->kind, r->kind))
        return false;
    if (f->collection && strcmp(f->collection, r->collection))
        return false;
    return want_state < 0 || atomic_load(&r->state) == want_state;
}

int sv_jobs_list(sv_jobs *j, const sv_jobs_filter *f, json_t **out, sv_err *err)
{
    *out = NULL;
    int want_state = -1;
    if (f->state && (want_state = sv_job_state_parse(f->state)) < 0)
        return sv_fail(err, SV_EINVAL,
                       "state '%.32s' is unknown: use PENDING, RUNNING, SUCCEEDED, FAILED or CANCELED", f->state);
    int limit = f->limit ? f->limit : 100;
    if (limit < 1 || limit > 1000)
        return sv_fail(err, SV_EINVAL, "limit must be between 1 and 1000");
    json_t *arr = json_array();
    if (!arr)
        return oom(err);
    pthread_mutex_lock(&j->mu);
    size_t i = j->nrecs;
    if (f->after) {
        while (i > 0 && strcmp(j->recs[i - 1]->id, f->after))
            i--;
        if (i == 0) {
            pthread_mutex_unlock(&j->mu);
            json_decref(arr);
            return sv_fail(err, SV_EINVAL, "after: no job with id '%.64s' (it may have been pruned); start again "
                                           "without after", f->after);
        }
        i--; /* skip the cursor itself */
    }
    const char *next = NULL;
    for (; i-- > 0;) {
        sv_job *r = j->recs[i];
        if (!matches(r, f, want_state))
            continue;
        if ((int)json_array_size(arr) == limit) {
            next = json_string_value(json_object_get(json_array_get(arr, (size_t)limit - 1), "id"));
            break;
        }
        json_array_append_new(arr, job_api_locked(r, false));
    }
    json_t *o = json_pack("{s:o,s:o}", "jobs", arr, "next", next ? json_string(next) : json_null());
    pthread_mutex_unlock(&j->mu);
    *out = o;
    return o ? 0 : oom(err);
}

int sv_jobs_backend(sv_jobs *j, const char *id, char out[16], sv_err *err)
{
    pthread_mutex_lock(&j->mu);
    sv_job *r = sv__job_find_locked(j, id);
    if (r)
        snprintf(out, 16, "%s", r->backend);
    pthread_mutex_unlock(&j->mu);
    return r ? 0 : sv_fail(err, SV_ENOTFOUND, "job %.64s not found", id);
}

int sv_jobs_get(sv_jobs *j, const char *id, json_t **out, sv_err *err)
{
    pthread_mutex_lock(&j->mu);
    sv_job *r = sv__job_find_locked(j, id);
    *out = r ? job_api_locked(r, true) : NULL;
    pthread_mutex_unlock(&j->mu);
    if (!r)
        return sv_fail(err, SV_ENOTFOUND, "job %.64s not found", id);
    return *out ? 0 : oom(err);
}

void sv_jobs_metrics(sv_buf *out, void *ud)
{
    sv_jobs *j = ud;
    int64_t running[MAX_KINDS] = {0}, pending[MAX_KINDS] = {0};
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->nrecs; i++) {
        const sv_job *r = j->recs[i];
        int st = atomic_load(&r->state);
        for (size_t k = 0; k < j->nkinds; k++)
            if (!strcmp(j->kinds[k].name, r->kind)) {
                if (st == SV_JOB_RUNNING)
                    running[k]++;
                else if (st == SV_JOB_PENDING)
                    pending[k]++;
            }
    }
    sv_buf_append_str(out, "# HELP shardvault_jobs_active Jobs not yet finished, by kind and state.\n"
                           "# TYPE shardvault_jobs_active gauge\n");
    for (size_t k = 0; k < j->nkinds; k++) {
        sv_buf_printf(out, "shardvault_jobs_active{kind=\"%s\",state=\"RUNNING\"} %lld\n", j->kinds[k].name,
                      (long long)running[k]);
        sv_buf_printf(out, "shardvault_jobs_active{kind=\"%s\",state=\"PENDING\"} %lld\n", j->kinds[k].name,
                      (long long)pending[k]);
    }
    pthread_mutex_unlock(&j->mu);
    sv_buf_printf(out, "# HELP shardvault_jobs_created_total Jobs created since start.\n"
                       "# TYPE shardvault_jobs_created_total counter\nshardvault_jobs_created_total %lld\n",
                  (long long)atomic_load(&j->created));
    sv_buf_append_str(out, "# HELP shardvault_jobs_finished_total Jobs finished since start, by state.\n"
                           "# TYPE shardvault_jobs_finished_total counter\n");
    for (int s = SV_JOB_SUCCEEDED; s <= SV_JOB_CANCELED; s++)
        sv_buf_printf(out, "shardvault_jobs_finished_total{state=\"%s\"} %lld\n", state_names[s],
                      (long long)atomic_load(&j->finished[s]));
    sv_buf_printf(out,
                  "# HELP shardvault_schedule_runs_total Scheduled runs started since start.\n"
                  "# TYPE shardvault_schedule_runs_total counter\nshardvault_schedule_runs_total %lld\n"
                  "# HELP shardvault_schedule_skips_total Scheduled runs skipped (previous still running).\n"
                  "# TYPE shardvault_schedule_skips_total counter\nshardvault_schedule_skips_total %lld\n"
                  "# HELP shardvault_schedule_forgotten_total Artifacts deleted by schedule retention.\n"
                  "# TYPE shardvault_schedule_forgotten_total counter\nshardvault_schedule_forgotten_total %lld\n",
                  (long long)atomic_load(&j->sched_runs), (long long)atomic_load(&j->sched_skips),
                  (long long)atomic_load(&j->sched_forgotten));
}
