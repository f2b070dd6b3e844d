/* jobs — schedules: records `schedules/<name>` in the catalog, the scheduler
 * pass run by the ticker, and retention of what a schedule created.
 *
 * Invariants:
 *  1. Every change of a schedule (create, pause, delete, a run, a skip) holds
 *     jobs->tick_mu from the decision to the catalog write, so two changes of
 *     one schedule never interleave; the list itself also changes under
 *     jobs->mu so readers (GET, prune) see a consistent array.
 *  2. A run is started only when the schedule's previous job is finished;
 *     otherwise the slot is skipped and the reason recorded.
 *  3. After a run (or a skip) nextRunAt moves past now: slots missed while the
 *     server was down cause one catch-up run, not one per slot.
 *  4. Retention only ever forgets SUCCEEDED jobs of this schedule and kind,
 *     created since the schedule was (a name used again by a new schedule
 *     does not inherit the deleted one's artifacts)
 *     (the job records say which schedule created what), so manual artifacts
 *     and other schedules' are never touched.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs_internal.h"

struct sched {
    char name[72];
    char kind[32];
    char collection[129];
    char backend[16];
    json_t *include; /* array of strings or NULL */
    char cron[128];
    sv_cron cr;
    char every[32];
    int64_t every_ms;
    sv_retention ret;
    bool paused;
    int64_t created_at, next_run_at;
    char last_job[64];
    int64_t last_started_at;
    char skip_reason[256];
    int64_t skip_at;
    char retained_for[64]; /* the job after whose success retention last ran */
};

static int oom(sv_err *err) { return sv_fail(err, SV_ENOMEM, "out of memory"); }

static sched *find_locked(sv_jobs *j, const char *name, size_t *idx)
{
    for (size_t i = 0; i < j->nscheds; i++)
        if (!strcmp(j->scheds[i]->name, name)) {
            if (idx)
                *idx = i;
            return j->scheds[i];
        }
    return NULL;
}

static void sched_free(sched *s)
{
    if (s) {
        json_decref(s->include);
        free(s);
    }
}

void sv__sched_free_all(sv_jobs *j)
{
    for (size_t i = 0; i < j->nscheds; i++)
        sched_free(j->scheds[i]);
    free(j->scheds);
    j->scheds = NULL;
    j->nscheds = j->capscheds = 0;
}

bool sv__sched_protects_locked(sv_jobs *j, const sv_job *job)
{
    return job->schedule[0] && !job->forgotten && atomic_load(&job->state) == SV_JOB_SUCCEEDED &&
           find_locked(j, job->schedule, NULL) != NULL;
}

/* ---- JSON ------------------------------------------------------------------------- */

static const char *const ret_keys[6] = {"keepLast", "keepHourly", "keepDaily", "keepWeekly", "keepMonthly",
                                        "keepYearly"};

static int *ret_field(sv_retention *r, int i)
{
    int *f[6] = {&r->keep_last, &r->keep_hourly, &r->keep_daily, &r->keep_weekly, &r->keep_monthly, &r->keep_yearly};
    return f[i];
}

static json_t *ret_json(const sv_retention *r)
{
    json_t *o = json_object();
    for (int i = 0; o && i < 6; i++) {
        int v = *ret_field((sv_retention *)r, i);
        if (v)
            json_object_set_new(o, ret_keys[i], json_integer(v));
    }
    return o;
}

/* The stored form and the API form differ only in lastRun/lastSkipped. */
static json_t *sched_json_locked(sv_jobs *j, const sched *s, bool api)
{
    json_t *o = json_pack("{s:s,s:s,s:o,s:b,s:I,s:I}", "name", s->name, "kind", s->kind, "retention",
                          ret_json(&s->ret), "paused", s->paused, "createdAt", (json_int_t)s->created_at,
                          "nextRunAt", (json_int_t)s->next_run_at);
    if (!o)
        return NULL;
    if (s->collection[0])
        json_object_set_new(o, "collection", json_string(s->collection));
    if (s->backend[0])
        json_object_set_new(o, "backend", json_string(s->backend));
    if (s->include)
        json_object_set_new(o, "include", json_deep_copy(s->include));
    if (s->cron[0])
        json_object_set_new(o, "cron", json_string(s->cron));
    else
        json_object_set_new(o, "every", json_string(s->every));
    if (!api) {
        json_object_set_new(o, "format_version", json_integer(JOB_FORMAT));
        json_object_set_new(o, "node", json_string(j->node)); /* the node that runs it (a cluster shares the catalog) */
        json_object_set_new(o, "lastJob", json_string(s->last_job));
        json_object_set_new(o, "lastStartedAt", json_integer(s->last_started_at));
        json_object_set_new(o, "skipReason", json_string(s->skip_reason));
        json_object_set_new(o, "skipAt", json_integer(s->skip_at));
        return o;
    }
    if (s->paused)
        json_object_set_new(o, "nextRunAt", json_null());
    json_t *last = json_null();
    if (s->last_job[0]) {
        const sv_job *r = sv__job_find_locked(j, s->last_job);
        last = json_pack("{s:s,s:s,s:I}", "jobId", s->last_job, "state",
                         r ? sv_job_state_name(atomic_load(&r->state)) : "UNKNOWN", "startedAt",
                         (json_int_t)s->last_started_at);
    }
    json_object_set_new(o, "lastRun", last);
    json_object_set_new(o, "lastSkipped",
                        s->skip_at ? json_pack("{s:I,s:s}", "at", (json_int_t)s->skip_at, "reason", s->skip_reason)
                                   : json_null());
    return o;
}

/* Invariant 1: called with tick_mu held. */
static int sched_persist(sv_jobs *j, const sched *s, sv_err *err)
{
    pthread_mutex_lock(&j->mu);
    json_t *o = sched_json_locked(j, s, false);
    pthread_mutex_unlock(&j->mu);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!txt)
        return oom(err);
    char key[128];
    snprintf(key, sizeof key, "schedules/%s", s->name);
    int rc = sv_catalog_put(j->cat, key, txt, strlen(txt), 0, err);
    free(txt);
    return rc;
}

static int check_name(const char *s, sv_err *err)
{
    size_t n = s ? strlen(s) : 0;
    bool ok = n >= 1 && n <= 64 && (islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]));
    for (size_t i = 1; ok && i < n; i++)
        ok = islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' || s[i] == '-';
    if (!ok)
        return sv_fail(err, SV_EINVAL, "name: '%.80s' must match ^[a-z0-9][a-z0-9_-]{0,63}$", s ? s : "");
    return 0;
}

static int64_t next_after(const sched *s, int64_t slot, int64_t now)
{
    if (s->cron[0])
        return sv_cron_next(&s->cr, now);
    int64_t next = slot + s->every_ms;
    if (next <= now)
        next = slot + ((now - slot) / s->every_ms + 1) * s->every_ms;
    return next;
}

/* Fills s from a request body or a stored record (stored = true also reads
 * the bookkeeping fields). Every error names the field. */
static int sched_from_json(sv_jobs *j, json_t *b, bool stored, sched *s, sv_err *err)
{
    if (!json_is_object(b))
        return sv_fail(err, SV_EINVAL, "a schedule is a JSON object");
    if (!stored) {
        /* a field this does not know would be accepted and ignored (an
         * "exclude" exporting what it meant to leave out) */
        static const char *const known[] = {"name", "kind", "collection", "backend", "include",
                                            "cron", "every", "retention", "paused"};
        const char *k;
        json_t *v;
        json_object_foreach(b, k, v) {
            size_t i = 0;
            while (i < sizeof known / sizeof *known && strcmp(known[i], k))
                i++;
            if (i == sizeof known / sizeof *known)
                return sv_fail(err, SV_EINVAL, "%.40s: unknown field (name, kind, collection, backend, include, "
                               "cron, every, retention, paused)", k);
        }
    }
    const char *name = json_string_value(json_object_get(b, "name"));
    int rc = check_name(name, err);
    if (rc)
        return rc;
    snprintf(s->name, sizeof s->name, "%s", name);
    const char *kind = json_string_value(json_object_get(b, "kind"));
    if (!kind)
        return sv_fail(err, SV_EINVAL, "kind: required (snapshot or export)");
    if (!stored) {
        pthread_mutex_lock(&j->mu);
        const sv_job_kind *k = sv__kind_locked(j, kind);
        bool ok = k && k->run_scheduled;
        pthread_mutex_unlock(&j->mu);
        if (!ok || strlen(kind) >= sizeof s->kind)
            return sv_fail(err, SV_EINVAL, "kind: '%.40s' cannot be scheduled (use snapshot or export)", kind);
    }
    snprintf(s->kind, sizeof s->kind, "%s", kind);
    json_t *c = json_object_get(b, "collection");
    if (c) {
        if (!json_is_string(c) || sv_check_collection_name(json_string_value(c), err))
            return sv_fail(err, SV_EINVAL, "collection: must be a collection name");
        snprintf(s->collection, sizeof s->collection, "%s", json_string_value(c));
    }
    json_t *be = json_object_get(b, "backend");
    if (be) {
        const char *v = json_string_value(be);
        if (!v || (strcmp(v, "filesystem") && strcmp(v, "s3")))
            return sv_fail(err, SV_EINVAL, "backend: must be filesystem or s3");
        snprintf(s->backend, sizeof s->backend, "%s", v);
    }
    json_t *inc = json_object_get(b, "include");
    if (inc) {
        size_t i;
        json_t *v;
        if (!json_is_array(inc) || json_array_size(inc) > 64)
            return sv_fail(err, SV_EINVAL, "include: must be an array of at most 64 collection names");
        json_array_foreach(inc, i, v) {
            if (!json_is_string(v) || sv_check_collection_name(json_string_value(v), NULL))
                return sv_fail(err, SV_EINVAL, "include[%zu]: must be a collection name", i);
        }
        s->include = json_deep_copy(inc);
    }
    if (!stored && !strcmp(kind, "snapshot") && !s->collection[0])
        return sv_fail(err, SV_EINVAL, "collection: required for a snapshot schedule");
    /* Each kind reads one field: the other would be accepted and ignored. */
    if (!stored && !strcmp(kind, "snapshot") && (s->include || s->backend[0]))
        return sv_fail(err, SV_EINVAL, "include, backend: not used by a snapshot schedule (it names one collection)");
    if (!stored && !strcmp(kind, "export") && s->collection[0])
        return sv_fail(err, SV_EINVAL, "collection: not used by an export schedule; name them in include");
    if (!stored && !strcmp(kind, "export") && !s->backend[0])
        return sv_fail(err, SV_EINVAL, "backend: required for an export schedule (filesystem or s3)");
    json_t *cron = json_object_get(b, "cron"), *every = json_object_get(b, "every");
    if (cron && every)
        return sv_fail(err, SV_EINVAL, "cron, every: give one of them, not both");
    if (!cron && !every)
        return sv_fail(err, SV_EINVAL, "cron or every: required (e.g. \"cron\": \"0 3 * * *\" or \"every\": \"6h\")");
    if (cron) {
        const char *v = json_string_value(cron);
        if (!v || strlen(v) >= sizeof s->cron)
            return sv_fail(err, SV_EINVAL, "cron: must be a string of 5 fields");
        if ((rc = sv_cron_parse(v, &s->cr, err)))
            return rc;
        if (sv_cron_next(&s->cr, sv_now_ms()) < 0)
            return sv_fail(err, SV_EINVAL, "cron: '%s' never matches a date", v);
        snprintf(s->cron, sizeof s->cron, "%s", v);
    } else {
        const char *v = json_string_value(every);
        if ((rc = sv_interval_parse(v, &s->every_ms, err)))
            return rc;
        snprintf(s->every, sizeof s->every, "%s", v);
    }
    json_t *ret = json_object_get(b, "retention");
    if (ret && !json_is_object(ret) && !json_is_null(ret))
        return sv_fail(err, SV_EINVAL, "retention: must be an object such as {\"keepLast\": 7}");
    const char *rk;
    json_t *rv;
    json_object_foreach(ret, rk, rv) {
        int i = 0;
        while (i < 6 && strcmp(ret_keys[i], rk))
            i++;
        if (i == 6)
            return sv_fail(err, SV_EINVAL, "retention.%.40s: unknown rule (keepLast, keepHourly, keepDaily, "
                                           "keepWeekly, keepMonthly, keepYearly)", rk);
        if (!json_is_integer(rv) || json_integer_value(rv) < 0 || json_integer_value(rv) > 100000)
            return sv_fail(err, SV_EINVAL, "retention.%s: must be an integer from 0 to 100000", rk);
        *ret_field(&s->ret, i) = (int)json_integer_value(rv);
    }
    json_t *p = json_object_get(b, "paused");
    if (p && !json_is_boolean(p))
        return sv_fail(err, SV_EINVAL, "paused: must be true or false");
    s->paused = json_is_true(p);
    if (stored) {
        s->created_at = json_integer_value(json_object_get(b, "createdAt"));
        s->next_run_at = json_integer_value(json_object_get(b, "nextRunAt"));
        s->last_started_at = json_integer_value(json_object_get(b, "lastStartedAt"));
        s->skip_at = json_integer_value(json_object_get(b, "skipAt"));
        const char *lj = json_string_value(json_object_get(b, "lastJob"));
        const char *sr = json_string_value(json_object_get(b, "skipReason"));
        snprintf(s->last_job, sizeof s->last_job, "%s", lj ? lj : "");
        snprintf(s->skip_reason, sizeof s->skip_reason, "%s", sr ? sr : "");
    }
    return 0;
}

static int list_add_locked(sv_jobs *j, sched *s)
{
    if (sv_grow(&j->scheds, &j->capscheds, j->nscheds + 1, sizeof *j->scheds))
        return SV_ENOMEM;
    j->scheds[j->nscheds++] = s;
    return 0;
}

static int load_one(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    sv_jobs *j = ud;
    json_t *o = json_loadb(val, len, 0, NULL);
    /* In a cluster a schedule runs on the node that made it, once: the
     * others leave its record alone (no duplicate runs). */
    const char *owner = json_string_value(json_object_get(o, "node"));
    if (owner && *owner && strcmp(owner, j->node) && sv_catalog_shared(j->cat)) {
        json_decref(o);
        return 0;
    }
    sched *s = calloc(1, sizeof *s);
    sv_err e = {0};
    if (!o || !s || sched_from_json(j, o, true, s, &e)) {
        sv_warn("jobs: unreadable schedule skipped", "key=%s error=\"%s\"", key, e.msg);
        json_decref(o);
        sched_free(s);
        return 0;
    }
    json_decref(o);
    pthread_mutex_lock(&j->mu);
    int rc = list_add_locked(j, s);
    pthread_mutex_unlock(&j->mu);
    if (rc)
        sched_free(s);
    return rc;
}

int sv__sched_load(sv_jobs *j, sv_err *err)
{
    int rc = sv_catalog_scan(j->cat, "schedules/", load_one, j, err);
    return rc == SV_ENOMEM ? oom(err) : rc;
}

/* ---- API -------------------------------------------------------------------------- */

int sv_schedules_create(sv_jobs *j, json_t *body, json_t **out, sv_err *err)
{
    *out = NULL;
    sched *s = calloc(1, sizeof *s);
    if (!s)
        return oom(err);
    int rc = sched_from_json(j, body, false, s, err);
    if (rc) {
        sched_free(s);
        return rc;
    }
    s->created_at = sv_now_ms();
    s->next_run_at = s->cron[0] ? sv_cron_next(&s->cr, s->created_at) : s->created_at + s->every_ms;
    pthread_mutex_lock(&j->tick_mu);
    pthread_mutex_lock(&j->mu);
    bool taken = find_locked(j, s->name, NULL) != NULL;
    pthread_mutex_unlock(&j->mu);
    if (taken)
        rc = sv_fail(err, SV_EEXIST, "schedule '%s' exists", s->name);
    /* another node's (a cluster): names are cluster-wide */
    char key[128], *v = NULL;
    size_t vlen = 0;
    snprintf(key, sizeof key, "schedules/%s", s->name);
    if (rc == 0 && sv_catalog_get(j->cat, key, &v, &vlen, NULL, NULL) == 0) {
        json_t *o = json_loadb(v, vlen, 0, NULL);
        rc = sv_fail(err, SV_EEXIST, "schedule '%s' exists on node %s (schedules run and are managed on the node that "
                                     "made them)", s->name, json_string_value(json_object_get(o, "node")) ?: "?");
        json_decref(o);
    }
    free(v);
    /* Room first (the list only changes under tick_mu), so that once the
     * record is durable adding it to memory cannot fail. */
    pthread_mutex_lock(&j->mu);
    if (rc == 0 && sv_grow(&j->scheds, &j->capscheds, j->nscheds + 1, sizeof *j->scheds))
        rc = oom(err);
    pthread_mutex_unlock(&j->mu);
    if (rc == 0)
        rc = sched_persist(j, s, err);
    if (rc == 0) {
        pthread_mutex_lock(&j->mu);
        list_add_locked(j, s);
        *out = sched_json_locked(j, s, true);
        pthread_mutex_unlock(&j->mu);
        if (!*out)
            rc = oom(err); /* created all the same: GET shows it */
        s = NULL;
    }
    pthread_mutex_unlock(&j->tick_mu);
    sched_free(s); /* NULL once the list owns it */
    if (rc == 0)
        sv_info("schedule created", "schedule=%s", json_string_value(json_object_get(*out, "name")));
    return rc;
}

int sv_schedules_get(sv_jobs *j, const char *name, json_t **out, sv_err *err)
{
    pthread_mutex_lock(&j->mu);
    sched *s = find_locked(j, name, NULL);
    *out = s ? sched_json_locked(j, s, true) : NULL;
    pthread_mutex_unlock(&j->mu);
    if (!s)
        return sv_fail(err, SV_ENOTFOUND, "schedule '%.80s' not found", name);
    return *out ? 0 : oom(err);
}

int sv_schedules_list(sv_jobs *j, json_t **out, sv_err *err)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; arr && i < j->nscheds; i++)
        json_array_append_new(arr, sched_json_locked(j, j->scheds[i], true));
    pthread_mutex_unlock(&j->mu);
    *out = arr ? json_pack("{s:o}", "schedules", arr) : NULL;
    return *out ? 0 : oom(err);
}

int sv_schedules_update(sv_jobs *j, const char *name, json_t *body, json_t **out, sv_err *err)
{
    *out = NULL;
    json_t *p = json_object_get(body, "paused");
    if (!json_is_object(body) || !json_is_boolean(p))
        return sv_fail(err, SV_EINVAL, "paused: required, true or false");
    if (json_object_size(body) != 1)
        return sv_fail(err, SV_EINVAL, "only paused can be changed: delete the schedule and create it again to change "
                       "anything else (what it created is kept)");
    pthread_mutex_lock(&j->tick_mu);
    pthread_mutex_lock(&j->mu);
    sched *s = find_locked(j, name, NULL);
    sched saved = s ? *s : (sched){0};
    if (s && s->paused && !json_is_true(p)) /* resuming: the next slot from now, no catch-up */
        s->next_run_at = s->cron[0] ? sv_cron_next(&s->cr, sv_now_ms()) : sv_now_ms() + s->every_ms;
    if (s)
        s->paused = json_is_true(p);
    pthread_mutex_unlock(&j->mu);
    int rc = s ? sched_persist(j, s, err) : sv_fail(err, SV_ENOTFOUND, "schedule '%.80s' not found", name);
    pthread_mutex_lock(&j->mu);
    if (s && rc) { /* memory follows the catalog */
        s->paused = saved.paused;
        s->next_run_at = saved.next_run_at;
    }
    if (s && rc == 0)
        *out = sched_json_locked(j, s, true);
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_unlock(&j->tick_mu);
    if (rc == 0 && !*out)
        rc = oom(err);
    return rc;
}

int sv_schedules_delete(sv_jobs *j, const char *name, sv_err *err)
{
    pthread_mutex_lock(&j->tick_mu);
    pthread_mutex_lock(&j->mu);
    bool found = find_locked(j, name, NULL) != NULL;
    pthread_mutex_unlock(&j->mu);
    int rc = found ? 0 : sv_fail(err, SV_ENOTFOUND, "schedule '%.80s' not found", name);
    if (rc == 0) {
        char key[128];
        snprintf(key, sizeof key, "schedules/%s", name);
        rc = sv_catalog_delete(j->cat, key, err);
    }
    sched *gone = NULL;
    if (rc == 0) {
        size_t idx;
        pthread_mutex_lock(&j->mu);
        if ((gone = find_locked(j, name, &idx)))
            j->scheds[idx] = j->scheds[--j->nscheds];
        pthread_mutex_unlock(&j->mu);
    }
    pthread_mutex_unlock(&j->tick_mu);
    sched_free(gone);
    return rc;
}

/* ---- the scheduler pass ------------------------------------------------------------ */

static void artifact_name(const sched *s, int64_t slot, char *out, size_t n)
{
    time_t t = (time_t)(slot / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(out, n, "%s-%s", s->name, ts);
    if (!strcmp(s->kind, "export")) /* export ids are lower case */
        for (char *p = out; *p; p++)
            *p = (char)tolower((unsigned char)*p);
}

/* Starts (or skips) one due run of s. tick_mu held; s stays valid. */
static void run_due(sv_jobs *j, sched *s, int64_t now)
{
    int64_t slot = s->next_run_at;
    pthread_mutex_lock(&j->mu);
    const sv_job *last = s->last_job[0] ? sv__job_find_locked(j, s->last_job) : NULL;
    int last_state = last ? atomic_load(&last->state) : -1;
    const sv_job_kind *k = sv__kind_locked(j, s->kind);
    sv_job_kind kind = k ? *k : (sv_job_kind){0};
    pthread_mutex_unlock(&j->mu);
    if (last && !sv_job_state_final(last_state)) {
        /* Invariant 2. */
        pthread_mutex_lock(&j->mu);
        snprintf(s->skip_reason, sizeof s->skip_reason, "run due at %lld skipped: previous run %s still %s",
                 (long long)slot, s->last_job, sv_job_state_name(last_state));
        s->skip_at = now;
        pthread_mutex_unlock(&j->mu);
        atomic_fetch_add(&j->sched_skips, 1);
        sv_info("scheduled run skipped", "schedule=%s reason=\"%s\"", s->name, s->skip_reason);
    } else {
        char name[160], id[64] = "";
        artifact_name(s, slot, name, sizeof name);
        const char *inc[64];
        size_t ninc = 0;
        for (size_t i = 0; s->include && i < json_array_size(s->include) && ninc < 64; i++)
            inc[ninc++] = json_string_value(json_array_get(s->include, i));
        sv_schedule_run run = {.schedule = s->name, .collection = s->collection[0] ? s->collection : NULL,
                               .backend = s->backend[0] ? s->backend : NULL, .include = ninc ? inc : NULL,
                               .ninclude = ninc, .name = name};
        sv_err e = {0};
        int rc = kind.run_scheduled ? kind.run_scheduled(kind.self, &run, id, &e)
                                    : sv_fail(&e, SV_EUNAVAIL, "the %s service is not running", s->kind);
        if (rc && !id[0]) {
            /* The attempt is a job too, so it shows in /v1/jobs and lastRun
             * (unless the kind recorded it already). */
            sv_job_spec spec = {.kind = s->kind, .collection = run.collection, .target = name,
                                .backend = run.backend, .schedule = s->name};
            if (sv__jobs_create_failed(j, &spec, e.msg, id))
                id[0] = '\0';
        }
        if (rc)
            sv_warn("scheduled run failed to start", "schedule=%s error=\"%s\"", s->name, e.msg);
        pthread_mutex_lock(&j->mu);
        snprintf(s->last_job, sizeof s->last_job, "%s", id);
        s->last_started_at = now;
        pthread_mutex_unlock(&j->mu);
        atomic_fetch_add(&j->sched_runs, 1);
    }
    int64_t next = next_after(s, slot, now); /* invariant 3 */
    pthread_mutex_lock(&j->mu);
    s->next_run_at = next > 0 ? next : INT64_MAX;
    pthread_mutex_unlock(&j->mu);
    sv_err e = {0};
    if (sched_persist(j, s, &e))
        sv_warn("schedule not persisted", "schedule=%s error=\"%s\"", s->name, e.msg);
}

typedef struct forget_item {
    sv_job *job;
    int64_t t;
} forget_item;

/* Invariant 4: restic's forget over this schedule's successful jobs. */
static void apply_retention(sv_jobs *j, sched *s)
{
    pthread_mutex_lock(&j->mu);
    const sv_job_kind *k = sv__kind_locked(j, s->kind);
    sv_job_kind kind = k ? *k : (sv_job_kind){0};
    forget_item *items = malloc((j->nrecs ? j->nrecs : 1) * sizeof *items);
    size_t n = 0;
    for (size_t i = 0; items && i < j->nrecs; i++) {
        sv_job *r = j->recs[i];
        /* this schedule's: its name and kind, and made since it was created
         * (a deleted schedule's artifacts stay when its name is used again),
         * of its collection (snapshot schedules) */
        if (!strcmp(r->schedule, s->name) && !strcmp(r->kind, s->kind) && !r->forgotten && r->target[0] &&
            r->created_at >= s->created_at && (!s->collection[0] || !strcmp(r->collection, s->collection)) &&
            atomic_load(&r->state) == SV_JOB_SUCCEEDED) {
            r->refs++;
            items[n++] = (forget_item){r, r->created_at};
        }
    }
    pthread_mutex_unlock(&j->mu);
    if (!items)
        return;
    int64_t *times = malloc((n ? n : 1) * sizeof *times);
    bool *keep = malloc((n ? n : 1) * sizeof *keep);
    for (size_t i = 0; times && keep && i < n; i++)
        times[i] = items[i].t;
    if (times && keep)
        sv_retention_apply(&s->ret, times, n, keep);
    for (size_t i = 0; i < n; i++) {
        sv_job *r = items[i].job;
        if (times && keep && !keep[i] && kind.forget) {
            sv_err e = {0};
            int rc = kind.forget(kind.self, r->schedule, r->collection[0] ? r->collection : NULL,
                                 r->backend[0] ? r->backend : NULL, r->target, &e);
            if (rc == 0 || rc == SV_ENOTFOUND) {
                pthread_mutex_lock(&j->mu);
                r->forgotten = true;
                pthread_mutex_unlock(&j->mu);
                sv__job_persist(r, NULL);
                atomic_fetch_add(&j->sched_forgotten, 1);
                sv_info("retention deleted", "schedule=%s kind=%s target=%s", s->name, s->kind, r->target);
            } else {
                sv_warn("retention could not delete", "schedule=%s target=%s error=\"%s\"", s->name, r->target, e.msg);
            }
        }
        sv_job_release(r);
    }
    free(times);
    free(keep);
    free(items);
}

void sv__sched_tick(sv_jobs *j)
{
    int64_t now = sv_now_ms();
    pthread_mutex_lock(&j->mu);
    size_t n = j->nscheds;
    sched **list = malloc((n ? n : 1) * sizeof *list);
    if (list && n)
        memcpy(list, j->scheds, n * sizeof *list);
    pthread_mutex_unlock(&j->mu);
    if (!list)
        return;
    /* tick_mu is held: no schedule is freed while we walk the copy. */
    for (size_t i = 0; i < n; i++) {
        sched *s = list[i];
        pthread_mutex_lock(&j->mu);
        const sv_job *last = s->last_job[0] ? sv__job_find_locked(j, s->last_job) : NULL;
        bool retain = last && atomic_load(&last->state) == SV_JOB_SUCCEEDED && strcmp(s->retained_for, s->last_job);
        pthread_mutex_unlock(&j->mu);
        if (retain) {
            apply_retention(j, s);
            snprintf(s->retained_for, sizeof s->retained_for, "%s", s->last_job);
        }
        if (!s->paused && s->next_run_at <= now)
            run_due(j, s, now);
    }
    free(list);
    /* Every finish prunes already; the ticker only has to age jobs out
     * (keep_days), which once a minute does. */
    if (now - j->pruned_at_ms >= 60000) {
        j->pruned_at_ms = now;
        sv__jobs_prune(j);
    }
}
