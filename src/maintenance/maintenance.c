/* The maintenance service: open/close, the one running agent (a job of kind
 * "maintenance" under the exclusive lease), resume after a restart, status
 * and metrics. See docs/maintenance.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maintenance_internal.h"

void sv_maint_test_delay(sv_maintenance *m)
{
    for (int64_t left = m->test_delay_ms; left > 0; left -= 20) {
        pthread_mutex_lock(&m->mu);
        bool stop = m->stopping;
        pthread_mutex_unlock(&m->mu);
        if (stop)
            return;
        sv_sleep_ms(left < 20 ? left : 20);
    }
}

bool sv_maint_agent_stop(maint_agent *a)
{
    pthread_mutex_lock(&a->m->mu);
    bool stop = a->m->stopping;
    pthread_mutex_unlock(&a->m->mu);
    return stop || atomic_load(&a->lease.lost) || (a->job && sv_job_canceled(a->job));
}

int64_t sv_maint_int(const json_t *body, const char *key, int64_t dflt)
{
    json_t *v = json_object_get(body, key);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

int sv_maint_stop_error(maint_agent *a, sv_err *err)
{
    if (atomic_load(&a->lease.lost))
        return sv_fail(err, SV_ESTATE, "lease lost");
    return sv_fail(err, SV_ECANCELED, "stopped: the job was canceled or the server is shutting down");
}

int sv_maint_agent_save(maint_agent *a, sv_catalog_op *extra, size_t nextra, sv_err *err)
{
    char key[128];
    snprintf(key, sizeof key, MAINT_AGENT_PREFIX "%s", a->job_id);
    char *v = json_dumps(a->state, JSON_COMPACT);
    sv_catalog_op *ops = malloc((nextra + 1) * sizeof *ops);
    if (!v || !ops) {
        free(v);
        free(ops);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nextra; i++)
        ops[i] = extra[i];
    ops[nextra] = (sv_catalog_op){key, v, strlen(v), 0};
    int rc = sv_maint_lease_txn(&a->lease, ops, nextra + 1, err);
    free(ops);
    free(v);
    return rc;
}

static void agent_free(maint_agent *a)
{
    if (!a)
        return;
    sv_job_release(a->job);
    json_decref(a->body);
    json_decref(a->state);
    free(a);
}

static void *agent_thread(void *arg)
{
    maint_agent *a = arg;
    sv_maintenance *m = a->m;
    sv_err err = {0};
    int rc = 0;
    sv_job_start(a->job, NULL);
    /* A resumed agent waits for its crashed predecessor's lease to expire. */
    while (!a->lease.lease_id) {
        atomic_store(&a->resumed_wait, true);
        sv_err e = {0};
        rc = sv_maint_lease_acquire(m, a->job_id, a->op, &a->lease, &e);
        if (rc == 0)
            break;
        if (rc != SV_ECONFLICT) {
            err = e;
            break;
        }
        pthread_mutex_lock(&m->mu);
        bool stop = m->stopping;
        pthread_mutex_unlock(&m->mu);
        if (stop || sv_job_canceled(a->job)) {
            rc = SV_ECANCELED;
            break;
        }
        rc = 0;
        sv_sleep_ms(100);
    }
    atomic_store(&a->resumed_wait, false);
    json_t *result = NULL;
    if (rc == 0)
        rc = !strcmp(a->op, "rebuild") ? sv_maint_rebuild_run(a, &result, &err)
             : !strcmp(a->op, "move")    ? sv_maint_move_run(a, &result, &err)
             : !strcmp(a->op, "analyze") ? sv_maint_analyze_run(a, &result, &err)
                                         : sv_maint_verify_run(a, &result, &err);
    pthread_mutex_lock(&m->mu);
    bool stopping = m->stopping;
    pthread_mutex_unlock(&m->mu);
    bool lost = atomic_load(&a->lease.lost);
    /* rebuild and move resume at the next open */
    bool leave = rc && stopping && !lost && (!strcmp(a->op, "rebuild") || !strcmp(a->op, "move"));
    sv_job_state st = rc == 0                                         ? SV_JOB_SUCCEEDED
                      : lost                                          ? SV_JOB_FAILED
                      : rc == SV_ECANCELED && sv_job_canceled(a->job) ? SV_JOB_CANCELED
                                                                      : SV_JOB_FAILED;
    const char *why = rc == 0 ? NULL : lost ? "lease lost" : err.msg[0] ? err.msg : sv_strerror(rc);
    if (!leave) {
        char key[128];
        snprintf(key, sizeof key, MAINT_AGENT_PREFIX "%s", a->job_id);
        sv_catalog_delete(m->cat, key, NULL);
    }
    /* Lease and slot free before the job says finished, so a client that
     * saw it finish can start the next agent at once. */
    sv_maint_lease_release(&a->lease);
    pthread_mutex_lock(&m->mu);
    m->agent = NULL;
    pthread_mutex_unlock(&m->mu);
    if (!leave) {
        sv_job_finish(a->job, st, st == SV_JOB_FAILED ? why : NULL, result, NULL);
        if (rc)
            sv_warn("maintenance agent failed", "op=%s job=%s error=\"%s\"", a->op, a->job_id, why);
        else
            sv_info("maintenance agent finished", "op=%s job=%s", a->op, a->job_id);
        if (rc == 0 && !strcmp(a->op, "rebuild"))
            atomic_fetch_add(&m->m_rebuilds, 1);
        if (rc == 0 && !strcmp(a->op, "verify"))
            atomic_fetch_add(&m->m_verifies, 1);
    }
    json_decref(result);
    agent_free(a);
    pthread_mutex_lock(&m->mu);
    m->threads--;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static int spawn_agent(sv_maintenance *m, maint_agent *a, sv_err *err)
{
    pthread_t t;
    pthread_mutex_lock(&m->mu);
    m->threads++;
    pthread_mutex_unlock(&m->mu);
    if (pthread_create(&t, NULL, agent_thread, a)) {
        pthread_mutex_lock(&m->mu);
        m->threads--;
        pthread_mutex_unlock(&m->mu);
        return sv_fail(err, SV_EIO, "cannot start the agent thread");
    }
    pthread_detach(t);
    return 0;
}

static int start_agent(sv_maintenance *m, const char *op, json_t *body, json_t **out, sv_err *err)
{
    if (body && !json_is_object(body))
        return sv_fail(err, SV_EINVAL, "the body must be a JSON object");
    int rc = !strcmp(op, "rebuild") ? sv_maint_rebuild_check(body, err)
             : !strcmp(op, "move")    ? sv_maint_move_check(m, body, err)
             : !strcmp(op, "analyze") ? sv_maint_analyze_check(body, err)
                                      : sv_maint_verify_check(body, err);
    if (rc)
        return rc;
    maint_agent *a = calloc(1, sizeof *a);
    if (!a)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    a->m = m;
    snprintf(a->op, sizeof a->op, "%s", op);
    a->body = body ? json_deep_copy(body) : json_object();
    a->started_ms = sv_now_ms();
    a->state = json_pack("{s:s,s:O,s:I}", "op", op, "body", a->body, "startedAt", (json_int_t)a->started_ms);
    sv_uuid u;
    sv_uuid_v4(&u);
    sv_uuid_format(&u, a->job_id);
    pthread_mutex_lock(&m->mu);
    if (m->stopping)
        rc = sv_fail(err, SV_EUNAVAIL, "the server is shutting down");
    else if (!strcmp(op, "rebuild") && (m->desc_state == DESC_MISSING || m->desc_state == DESC_INVALID) &&
             !json_is_string(json_object_get(body, "recoveryKit")))
        rc = sv_fail(err, SV_ESTATE, "%s; the rebuild was refused: pass \"recoveryKit\"", m->problem);
    else if (m->agent)
        rc = sv_fail(err, SV_ECONFLICT, "a maintenance agent is running (%s, job %s); one runs at a time",
                     m->agent->op, m->agent->job_id);
    else
        m->agent = a;
    pthread_mutex_unlock(&m->mu);
    if (rc) {
        agent_free(a);
        return rc;
    }
    if (!a->body || !a->state)
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    if (rc == 0)
        rc = sv_maint_lease_acquire(m, a->job_id, op, &a->lease, err);
    sv_job_spec spec = {.kind = "maintenance", .id = a->job_id, .target = op};
    if (rc == 0)
        rc = sv_jobs_create(m->jobs, &spec, &a->job, err);
    if (rc == 0)
        rc = sv_maint_agent_save(a, NULL, 0, err);
    if (rc == 0)
        rc = spawn_agent(m, a, err);
    if (rc) {
        if (a->job)
            sv_job_finish(a->job, SV_JOB_FAILED, err->msg, NULL, NULL);
        sv_maint_lease_release(&a->lease);
        pthread_mutex_lock(&m->mu);
        m->agent = NULL;
        pthread_mutex_unlock(&m->mu);
        agent_free(a);
        return rc;
    }
    sv_info("maintenance agent started", "op=%s job=%s", op, a->job_id);
    *out = json_pack("{s:s}", "jobId", a->job_id);
    return 0;
}

int sv_maintenance_rebuild(sv_maintenance *m, json_t *body, json_t **out, sv_err *err)
{
    return start_agent(m, "rebuild", body, out, err);
}

int sv_maintenance_verify(sv_maintenance *m, json_t *body, json_t **out, sv_err *err)
{
    return start_agent(m, "verify", body, out, err);
}

int sv_maintenance_move(sv_maintenance *m, json_t *body, json_t **out, sv_err *err)
{
    return start_agent(m, "move", body, out, err);
}

int sv_maintenance_analyze(sv_maintenance *m, json_t *body, json_t **out, sv_err *err)
{
    return start_agent(m, "analyze", body, out, err);
}

void sv_maintenance_set_tenant_adopter(sv_maintenance *m, sv_maintenance_tenant_fn fn, void *ud)
{
    pthread_mutex_lock(&m->mu);
    m->tenant_fn = fn;
    m->tenant_ud = ud;
    pthread_mutex_unlock(&m->mu);
}

/* ---- resume ------------------------------------------------------------------ */

typedef struct resume_ctx {
    sv_maintenance *m;
    int resumed;
} resume_ctx;

static void resume_one(void *ud, const char *id, const char *collection, const char *target, const char *backend)
{
    resume_ctx *rc = ud;
    sv_maintenance *m = rc->m;
    char key[128];
    snprintf(key, sizeof key, MAINT_AGENT_PREFIX "%s", id);
    char *v = NULL;
    size_t len = 0;
    if (rc->resumed || sv_catalog_get(m->cat, key, &v, &len, NULL, NULL))
        return; /* no record: it ends "interrupted by restart" */
    json_t *st = json_loadb(v, len, 0, NULL);
    free(v);
    const char *op = json_string_value(json_object_get(st, "op"));
    if (!op || (strcmp(op, "rebuild") && strcmp(op, "move"))) {
        /* Verify does not resume (it writes nothing but damage marks). */
        json_decref(st);
        sv_catalog_delete(m->cat, key, NULL);
        return;
    }
    maint_agent *a = calloc(1, sizeof *a);
    if (!a) {
        json_decref(st);
        return;
    }
    a->m = m;
    snprintf(a->op, sizeof a->op, "%s", op);
    snprintf(a->job_id, sizeof a->job_id, "%s", id);
    a->state = st;
    json_object_set_new(st, "resumed", json_true());
    a->body = json_incref(json_object_get(st, "body"));
    a->started_ms = json_integer_value(json_object_get(st, "startedAt"));
    if (sv_jobs_claim(m->jobs, id, &a->job, NULL)) {
        agent_free(a);
        return;
    }
    m->agent = a; /* open: no other thread yet */
    if (spawn_agent(m, a, NULL)) {
        m->agent = NULL;
        agent_free(a);
        return;
    }
    rc->resumed++;
    sv_info("maintenance agent resumes", "op=%s job=%s", a->op, id);
}

/* ---- open / close --------------------------------------------------------------- */

static int env_duration_ms(const char *name, int64_t dflt, int64_t *out, sv_err *err)
{
    const char *s = sv_env_str(name, NULL);
    *out = dflt;
    if (!s)
        return 0;
    char *end = NULL;
    double v = strtod(s, &end);
    double mul = 1000;
    if (end && !strcmp(end, "ms"))
        mul = 1;
    else if (end && (!strcmp(end, "s") || !*end))
        mul = 1000;
    else if (end && !strcmp(end, "m"))
        mul = 60000;
    else
        return sv_fail(err, SV_EINVAL, "%s must be a duration such as 30s, 500ms or 2m, not '%s'", name, s);
    if (end == s)
        return sv_fail(err, SV_EINVAL, "%s must be a duration such as 30s, 500ms or 2m, not '%s'", name, s);
    *out = (int64_t)(v * mul);
    return 0;
}

int sv_maintenance_open(const sv_maintenance_opts *opts, sv_catalog *cat, sv_snapshot *snap, sv_maintenance **out,
                        sv_err *err)
{
    if (!opts || !opts->jobs || !cat || !snap)
        return sv_fail(err, SV_EINVAL, "the maintenance service needs the catalog, jobs and snapshot services");
    sv_maintenance *m = calloc(1, sizeof *m);
    if (!m)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    m->cat = cat;
    m->snap = snap;
    m->jobs = opts->jobs;
    m->loc = sv_snapshot_location(snap);
    snprintf(m->url, sizeof m->url, "%s", sv_snapshot_location_url(snap));
    snprintf(m->node, sizeof m->node, "%s", opts->node_name ? opts->node_name : "node1");
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cond, NULL);
    int rc = 0;
    m->lease_ttl_ms = opts->lease_ttl_ms;
    if (!m->lease_ttl_ms)
        rc = env_duration_ms("SHARDVAULT_MAINTENANCE_LEASE_TTL", 30000, &m->lease_ttl_ms, err);
    if (rc == 0 && m->lease_ttl_ms < 300)
        rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_MAINTENANCE_LEASE_TTL must be at least 300ms");
    m->ckpt_interval_ms = opts->checkpoint_interval_ms;
    if (rc == 0 && !m->ckpt_interval_ms)
        rc = env_duration_ms("SHARDVAULT_CATALOG_CHECKPOINT_INTERVAL", 60000, &m->ckpt_interval_ms, err);
    int64_t batch = 100;
    if (rc == 0)
        rc = sv_env_int("SHARDVAULT_MAINTENANCE_BATCH", 100, &batch, err);
    if (rc == 0 && (batch < 1 || batch > 120)) /* etcd: at most 128 ops per transaction */
        rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_MAINTENANCE_BATCH must be between 1 and 120");
    m->batch = (int)batch;
    if (rc == 0)
        rc = sv_env_int("SHARDVAULT_MAINTENANCE_TEST_DELAY_MS", 0, &m->test_delay_ms, err);
    if (rc == 0)
        rc = sv_maint_move_apply(m, err);
    if (rc == 0) {
        pthread_mutex_lock(&m->mu);
        rc = sv_maint_desc_init(m, err);
        pthread_mutex_unlock(&m->mu);
    }
    if (rc == 0) {
        sv_job_kind k = {.name = "maintenance", .self = m};
        rc = sv_jobs_register_kind(m->jobs, &k, err);
    }
    if (rc) {
        free(m->descriptor);
        pthread_mutex_destroy(&m->mu);
        pthread_cond_destroy(&m->cond);
        free(m);
        return rc;
    }
    if (m->desc_state != DESC_OK)
        sv_warn("location not writable by this node", "problem=\"%s\"", m->problem);
    sv_snapshot_hooks h = {.before_write = sv_maint_guard, .changed = sv_maint_ckpt_changed, .ud = m};
    sv_snapshot_set_hooks(snap, &h);
    resume_ctx rcx = {m, 0};
    sv_jobs_unfinished(m->jobs, "maintenance", resume_one, &rcx, NULL);
    if (m->ckpt_interval_ms >= 0 && pthread_create(&m->ckpt_thread, NULL, sv_maint_ckpt_loop, m) == 0)
        m->ckpt_thread_started = true;
    sv_info("maintenance service ready", "store=%s descriptor=%s lease_ttl_ms=%lld checkpoint_interval_ms=%lld",
            m->store_id[0] ? m->store_id : "-", sv_maint_desc_name(m->desc_state), (long long)m->lease_ttl_ms,
            (long long)m->ckpt_interval_ms);
    *out = m;
    return 0;
}

void sv_maintenance_close(sv_maintenance *m)
{
    if (!m)
        return;
    sv_snapshot_set_hooks(m->snap, NULL);
    sv_jobs_register_kind(m->jobs, &(sv_job_kind){.name = "maintenance"}, NULL);
    pthread_mutex_lock(&m->mu);
    m->stopping = true;
    pthread_cond_broadcast(&m->cond);
    while (m->threads > 0)
        pthread_cond_wait(&m->cond, &m->mu);
    bool due = m->ckpt_dirty && m->desc_state == DESC_OK;
    pthread_mutex_unlock(&m->mu);
    if (m->ckpt_thread_started)
        pthread_join(m->ckpt_thread, NULL);
    if (due) {
        sv_err e = {0};
        if (sv_maint_ckpt_write(m, NULL, &e))
            sv_warn("final catalog checkpoint failed", "error=\"%s\"", e.msg);
    }
    free(m->descriptor);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cond);
    free(m);
}

/* ---- status / metrics ----------------------------------------------------------- */

json_t *sv_maint_agent_progress(maint_agent *a)
{
    int64_t scanned = atomic_load(&a->scanned), total = atomic_load(&a->total);
    int64_t elapsed = sv_now_ms() - a->started_ms;
    json_t *eta = json_null();
    if (scanned > 0 && total >= scanned)
        eta = json_integer((json_int_t)((double)(total - scanned) * (double)elapsed / (double)scanned));
    return json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:b}", "jobId", a->job_id, "op", a->op, "manifestsScanned",
                     (json_int_t)scanned, "manifestsTotal", (json_int_t)total, "manifestsIndexed",
                     (json_int_t)atomic_load(&a->indexed), "blobs", (json_int_t)atomic_load(&a->blobs), "bytes",
                     (json_int_t)atomic_load(&a->bytes), "elapsedMs", (json_int_t)elapsed, "etaMs", eta,
                     "waitingForLease", atomic_load(&a->resumed_wait));
}

int sv_maintenance_status(sv_maintenance *m, json_t **out, sv_err *err)
{
    char *v = NULL;
    size_t len = 0;
    json_t *lease = NULL;
    if (sv_catalog_get(m->cat, MAINT_LEASE_KEY, &v, &len, NULL, NULL) == 0)
        lease = json_loadb(v, len, 0, NULL);
    free(v);
    pthread_mutex_lock(&m->mu);
    sv_maint_desc_recheck_locked(m);
    json_t *agent = m->agent ? sv_maint_agent_progress(m->agent) : NULL;
    *out = json_pack("{s:s?,s:s?,s:s,s:s,s:s?,s:o,s:o,s:s?,s:I}", "storeId", m->store_id[0] ? m->store_id : NULL,
                     "locationStoreId", m->loc_store_id[0] ? m->loc_store_id : NULL, "location", m->url,
                     "descriptor", sv_maint_desc_name(m->desc_state), "problem", m->problem[0] ? m->problem : NULL,
                     "lease", lease ? lease : json_null(), "agent", agent ? agent : json_null(), "lastCheckpoint",
                     m->ckpt_last_key[0] ? m->ckpt_last_key : NULL, "leaseTtlMs", (json_int_t)m->lease_ttl_ms);
    pthread_mutex_unlock(&m->mu);
    return *out ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
}

void sv_maintenance_metrics(sv_buf *out, void *ud)
{
    sv_maintenance *m = ud;
    sv_buf_printf(out,
                  "# HELP shardvault_catalog_checkpoints_total Catalog checkpoints written since start.\n"
                  "# TYPE shardvault_catalog_checkpoints_total counter\nshardvault_catalog_checkpoints_total %lld\n"
                  "# HELP shardvault_maintenance_rebuilds_total Rebuilds finished since start.\n"
                  "# TYPE shardvault_maintenance_rebuilds_total counter\nshardvault_maintenance_rebuilds_total %lld\n"
                  "# HELP shardvault_maintenance_verifies_total Verifies finished since start.\n"
                  "# TYPE shardvault_maintenance_verifies_total counter\nshardvault_maintenance_verifies_total %lld\n"
                  "# HELP shardvault_location_writes_refused_total Writes refused: the location is not this store's.\n"
                  "# TYPE shardvault_location_writes_refused_total counter\n"
                  "shardvault_location_writes_refused_total %lld\n",
                  (long long)atomic_load(&m->m_checkpoints), (long long)atomic_load(&m->m_rebuilds),
                  (long long)atomic_load(&m->m_verifies), (long long)atomic_load(&m->m_refused));
}
