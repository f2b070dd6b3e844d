/* jobs — the one framework for long operations: persisted job records, one
 * state machine, counters read without locks, cancel, a bounded worker pool
 * with "first error wins", deadlines, retention of finished jobs, and
 * schedules (cron or interval) that create jobs and apply retention to what
 * they created.
 *
 * The protocol (docs/jobs.md):
 *  - A job record `jobs/<id>` is written to the catalog (PENDING) before the
 *    work it describes starts, and again at every transition
 *    PENDING -> RUNNING -> SUCCEEDED | FAILED | CANCELED (and every few seconds
 *    while counters move). Memory follows the catalog, never the reverse.
 *  - At start (sv_jobs_open) every record is loaded. Services then open and
 *    claim the jobs they resume (sv_jobs_claim); sv_jobs_recover ends every
 *    other PENDING or RUNNING job of this node FAILED "interrupted by restart".
 *    So after a restart no job is left PENDING or RUNNING unless something is
 *    really running it.
 *  - Finished jobs are pruned: at most `keep` per kind and none older than
 *    `keep_days`, in catalog and memory. A successful scheduled job whose
 *    artifact is still kept by its schedule's retention is not pruned.
 *
 * The jobs module knows nothing of the services: a service registers a kind
 * (sv_jobs_register_kind) with callbacks for cancel, scheduled runs and
 * retention. Services hold sv_job handles; the jobs service owns the records.
 *
 * Thread safety: every function may be called from any thread. Counters
 * (sv_job_add_*) are atomics: calling them on a hot path takes no lock.
 */
#ifndef SV_JOBS_H
#define SV_JOBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "core.h"

typedef struct sv_jobs sv_jobs;
typedef struct sv_job sv_job;

typedef enum {
    SV_JOB_PENDING,
    SV_JOB_RUNNING,
    SV_JOB_SUCCEEDED,
    SV_JOB_FAILED,
    SV_JOB_CANCELED,
} sv_job_state;

const char *sv_job_state_name(sv_job_state s); /* "PENDING", … */
int sv_job_state_parse(const char *s);          /* -1 when unknown */
bool sv_job_state_final(sv_job_state s);

/* ---- the service ----------------------------------------------------------- */

typedef struct sv_jobs_opts {
    const char *node_name; /* NULL = "node1" */
    int64_t keep;          /* [SHARDVAULT_JOBS_KEEP] 1000 finished jobs per kind */
    int64_t keep_days;     /* [SHARDVAULT_JOBS_KEEP_DAYS] 30 */
    int64_t tick_ms;       /* scheduler and flusher period, 0 = 200 ms */
} sv_jobs_opts;

/* cat is borrowed and must outlive the service. Loads every job and schedule;
 * starts nothing until sv_jobs_recover. */
int sv_jobs_open(const sv_jobs_opts *opts, sv_catalog *cat, sv_jobs **out, sv_err *err);
/* After every service has opened (and claimed what it resumes): fails the
 * unclaimed PENDING/RUNNING jobs of this node, applies retention, and starts
 * the scheduler. */
int sv_jobs_recover(sv_jobs *j, sv_err *err);
/* Stops the scheduler (no new scheduled runs). Running jobs are the services'
 * to stop. */
void sv_jobs_shutdown(sv_jobs *j);
/* Shuts down if needed and frees. Every sv_job handle must be released
 * first. NULL is fine. */
void sv_jobs_close(sv_jobs *j);

/* ---- kinds ---------------------------------------------------------------- */

/* What a schedule asks a kind to do for one run. Strings are borrowed for the
 * call. */
typedef struct sv_schedule_run {
    const char *schedule;   /* the schedule's name */
    const char *collection; /* snapshot: the collection; export: NULL */
    const char *backend;    /* export: "filesystem" | "s3" */
    const char *const *include; /* export: collections (may be NULL) */
    size_t ninclude;
    const char *name;       /* the artifact's name: "{schedule}-{YYYYMMDDTHHMMSSZ}" (snapshot) or
                               "{schedule}-{yyyymmddthhmmssz}" (export) */
} sv_schedule_run;

typedef struct sv_job_kind {
    const char *name; /* "export", "snapshot", "restore", "gc", … (static storage) */
    void *self;
    /* Asks the running job to stop (optional; without it the job only sees
     * sv_job_canceled()). Called without any jobs lock held. */
    void (*cancel)(void *self, sv_job *job);
    /* Non-NULL: the kind's jobs cannot be canceled, and this says why (a
     * cancel answers SV_ECONFLICT with it instead of a request it ignores). */
    const char *no_cancel;
    /* Starts one scheduled run; fills job_id (its sv_job id). Optional: a
     * kind without it cannot be scheduled. */
    int (*run_scheduled)(void *self, const sv_schedule_run *run, char job_id[64], sv_err *err);
    /* Deletes an artifact schedule's retention no longer keeps (target as
     * recorded in the job) — only if the artifact is still that schedule's
     * (a manual one reusing the name is left alone; answer 0 then). Optional. */
    int (*forget)(void *self, const char *schedule, const char *collection, const char *backend, const char *target,
                  sv_err *err);
} sv_job_kind;

/* The kind struct is copied; self must outlive the jobs service or be
 * unregistered by registering the same name with NULL callbacks. */
int sv_jobs_register_kind(sv_jobs *j, const sv_job_kind *kind, sv_err *err);

/* ---- jobs ------------------------------------------------------------------ */

typedef struct sv_job_spec {
    const char *kind;       /* required */
    const char *id;         /* NULL = a new UUID */
    const char *collection; /* may be NULL */
    const char *target;     /* the kind's own name for it: export id, snapshot name, restore target */
    const char *backend;    /* export: filesystem | s3 (may be NULL) */
    const char *schedule;   /* the schedule that created it, or NULL */
    const char *link;       /* the kind's own status URL, or NULL */
} sv_job_spec;

/* Persists a PENDING job and returns a handle (owned by the caller, released
 * with sv_job_release; the record lives on in the service). SV_EEXIST if the
 * id is taken. */
int sv_jobs_create(sv_jobs *j, const sv_job_spec *spec, sv_job **out, sv_err *err);
/* A handle on an existing job that this process will resume: it counts as
 * claimed for sv_jobs_recover. SV_ENOTFOUND if unknown. */
int sv_jobs_claim(sv_jobs *j, const char *id, sv_job **out, sv_err *err);
void sv_job_release(sv_job *job); /* NULL is fine */
/* Calls fn for every PENDING or RUNNING job of kind on this node (before
 * sv_jobs_recover: what a previous process left). A service uses it to settle
 * jobs whose work finished but whose record did not (claim + finish). fn runs
 * without any jobs lock; the strings are valid during the call. */
typedef void (*sv_jobs_visit_fn)(void *ud, const char *id, const char *collection, const char *target,
                                 const char *backend);
int sv_jobs_unfinished(sv_jobs *j, const char *kind, sv_jobs_visit_fn fn, void *ud, sv_err *err);

const char *sv_job_id(const sv_job *job); /* valid while the handle is held */

/* PENDING -> RUNNING (startedAt), persisted. */
int sv_job_start(sv_job *job, sv_err *err);
/* Ends the job, persisted: state is SUCCEEDED, FAILED or CANCELED; reason
 * (may be NULL) says why it failed; result (borrowed, may be NULL) is the
 * kind's own outcome, shown by GET /v1/jobs/{id}. A finished job stays
 * finished: a second finish is ignored (returns 0). */
int sv_job_finish(sv_job *job, sv_job_state state, const char *reason, json_t *result, sv_err *err);

/* Counters: lock-free; persisted at transitions and by the flusher. */
void sv_job_set_totals(sv_job *job, int64_t items_total, int64_t bytes_total);
void sv_job_add_done(sv_job *job, int64_t items, int64_t bytes);
void sv_job_set_done(sv_job *job, int64_t items, int64_t bytes);
/* True once a cancel was asked: long loops poll it between steps. */
bool sv_job_canceled(const sv_job *job);
/* Marks the job canceled-requested without a request (shutdown paths). */
void sv_job_request_cancel(sv_job *job);

/* ---- the API's answers (jansson, caller owns) -------------------------------- */

typedef struct sv_jobs_filter {
    const char *kind, *state, *collection; /* NULL = any */
    int limit;                             /* 0 = 100 */
    const char *after;                     /* a job id from a previous page's "next" */
} sv_jobs_filter;

/* {"jobs": [...], "next": id|null}, newest first. SV_EINVAL for a bad filter. */
int sv_jobs_list(sv_jobs *j, const sv_jobs_filter *f, json_t **out, sv_err *err);
/* A job's backend (export jobs: filesystem | s3; "" for the others) into
 * out. SV_ENOTFOUND if unknown. */
int sv_jobs_backend(sv_jobs *j, const char *id, char out[16], sv_err *err);
/* One job with "result". SV_ENOTFOUND if unknown. */
int sv_jobs_get(sv_jobs *j, const char *id, json_t **out, sv_err *err);
/* Asks a job to stop: SV_ECONFLICT if finished, SV_ENOTFOUND if unknown. */
int sv_jobs_cancel(sv_jobs *j, const char *id, sv_err *err);

/* ---- schedules --------------------------------------------------------------- */

/* body: {"name","kind","collection"|"backend"+"include","cron"|"every","retention"}. */
int sv_schedules_create(sv_jobs *j, json_t *body, json_t **out, sv_err *err);
int sv_schedules_get(sv_jobs *j, const char *name, json_t **out, sv_err *err);
int sv_schedules_list(sv_jobs *j, json_t **out, sv_err *err);
/* body: {"paused": bool} */
int sv_schedules_update(sv_jobs *j, const char *name, json_t *body, json_t **out, sv_err *err);
/* Keeps what the schedule created. */
int sv_schedules_delete(sv_jobs *j, const char *name, sv_err *err);

/* Prometheus text (signature of sv_metrics_fn). */
void sv_jobs_metrics(sv_buf *out, void *jobs);

/* ---- worker pool ---------------------------------------------------------- */

/* Runs fn(arg, i) for i in [0, n) on at most `workers` threads. The first
 * non-zero return wins: its code and message are returned, the other workers
 * stop taking new items (items already running finish). When job is not NULL
 * a cancel request stops the pool the same way with SV_ECANCELED. */
typedef int (*sv_pool_fn)(void *arg, size_t i, sv_err *err);
int sv_pool_run(int workers, size_t n, sv_pool_fn fn, void *arg, const sv_job *job, sv_err *err);

/* A crew: sv_pool_run's workers kept between runs, for a caller that runs
 * many small pools in a row (thread start and exit cost more than a run of
 * a few milliseconds). sv_crew_new: workers - 1 threads wait (the caller of
 * each run is the other worker); NULL without memory (fewer threads when
 * some cannot start). sv_crew_run: as sv_pool_run, from one thread at a
 * time. sv_crew_free: joins the threads; NULL is a no-op. */
typedef struct sv_crew sv_crew;
sv_crew *sv_crew_new(int workers);
int sv_crew_run(sv_crew *c, size_t n, sv_pool_fn fn, void *arg, const sv_job *job, sv_err *err);
void sv_crew_free(sv_crew *c);

/* ---- deadlines -------------------------------------------------------------- */

typedef struct sv_deadline { int64_t at_ns; } sv_deadline; /* 0 = none */
sv_deadline sv_deadline_in(int64_t ms);                   /* ms <= 0: none */
bool sv_deadline_passed(sv_deadline d);
int64_t sv_deadline_left_ms(sv_deadline d);               /* INT64_MAX when none */

/* ---- pure helpers (exposed for tests) ------------------------------------------ */

/* A parsed 5-field cron expression (UTC): minute hour day-of-month month
 * day-of-week; '*', lists, ranges and steps; day-of-week 0-7 (0 and 7 are
 * Sunday); when both day fields are restricted either may match. */
typedef struct sv_cron {
    uint64_t minute; /* bit i = minute i */
    uint32_t hour, dom, month;
    uint8_t dow;
    bool dom_any, dow_any;
} sv_cron;
int sv_cron_parse(const char *expr, sv_cron *out, sv_err *err);
/* The first matching minute strictly after t (ms since epoch), or -1. */
int64_t sv_cron_next(const sv_cron *c, int64_t after_ms);
/* "30s", "15m", "6h", "1d" -> ms (>= 1000). */
int sv_interval_parse(const char *s, int64_t *ms, sv_err *err);

typedef struct sv_retention {
    int keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly; /* 0 = rule off */
} sv_retention;
/* restic's forget: times[i] are the artifacts' times (ms); keep[i] is set
 * when any rule keeps artifact i. With every rule off everything is kept. */
void sv_retention_apply(const sv_retention *r, const int64_t *times, size_t n, bool *keep);

#endif
