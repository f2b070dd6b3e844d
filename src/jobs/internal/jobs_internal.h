/* Internal to the jobs module: the job record, the service struct, and what
 * jobs.c (records, retention, API) and schedule.c (schedules, scheduler)
 * share. Not installed, not seen by other modules. */
#ifndef SV_JOBS_INTERNAL_H
#define SV_JOBS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "jobs.h"

#define JOB_FORMAT 1
#define MAX_KINDS 16

/* One job. Strings are fixed at create except reason/result, which change
 * under jobs->mu. Counters are atomics. A record lives in jobs->recs until
 * pruned; a pruned record still held by a handle is freed at release. */
struct sv_job {
    sv_jobs *jobs;
    char id[64];
    char kind[32];
    char collection[129];
    char target[160];
    char backend[16];
    char schedule[72];
    char link[600];
    char node[64];
    atomic_int state;
    char reason[512];
    json_t *result;
    int64_t created_at, started_at, finished_at;
    uint64_t seq; /* creation order within this process, ties of created_at */
    _Atomic int64_t items_done, items_total, bytes_done, bytes_total;
    atomic_bool cancel;
    atomic_bool dirty;     /* counters changed since the last persist */
    _Atomic int64_t persisted_ms; /* monotonic ms of the last persist (flusher) */
    bool finishing;        /* a finish is being made durable (under jobs->mu) */
    bool claimed;          /* resumed by a service at open */
    bool forgotten;        /* its schedule's retention deleted the artifact */
    bool pruned;           /* removed from recs; freed when refs drop to 0 */
    int refs;              /* handles held (under jobs->mu) */
    pthread_mutex_t wmu;   /* orders persists of this record */
};

typedef struct sched sched; /* schedule.c */

struct sv_jobs {
    sv_catalog *cat;
    char node[64];
    int64_t keep, keep_days, tick_ms;
    pthread_mutex_t mu;
    sv_job **recs; /* sorted by (created_at, seq) ascending */
    size_t nrecs, caprecs;
    uint64_t next_seq;
    sv_job_kind kinds[MAX_KINDS];
    size_t nkinds;
    /* schedules (schedule.c) */
    sched **scheds;
    size_t nscheds, capscheds;
    pthread_t ticker;
    bool ticker_started;
    atomic_bool stopping;
    pthread_mutex_t tick_mu; /* serializes scheduler passes with schedule deletes */
    pthread_cond_t tick_cv;
    int64_t pruned_at_ms; /* the ticker's last age-out pass (ticker thread only) */
    /* metrics */
    atomic_llong created, finished[5];
    atomic_llong sched_runs, sched_skips, sched_forgotten;
};

/* jobs.c */
int sv__job_persist(sv_job *job, sv_err *err);
sv_job *sv__job_find_locked(sv_jobs *j, const char *id);
const sv_job_kind *sv__kind_locked(sv_jobs *j, const char *name);
int sv__jobs_create_failed(sv_jobs *j, const sv_job_spec *spec, const char *reason, char id_out[64]);
void sv__jobs_prune(sv_jobs *j);
/* Persists dirty RUNNING jobs (all of them with force, else those not
 * persisted for 2 s). */
void sv__jobs_flush(sv_jobs *j, bool force);

/* schedule.c */
int sv__sched_load(sv_jobs *j, sv_err *err);
void sv__sched_free_all(sv_jobs *j);
void sv__sched_tick(sv_jobs *j);
/* True when a finished scheduled job's artifact is still governed by its
 * schedule (so job retention must not prune it). Under jobs->mu. */
bool sv__sched_protects_locked(sv_jobs *j, const sv_job *job);

#endif
