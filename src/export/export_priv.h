/* Private to src/export: the service structure shared by the scheduler
 * (export.c) and the local participant (participant.c). */
#ifndef SV_EXPORT_PRIV_H
#define SV_EXPORT_PRIV_H

#include <pthread.h>
#include <stdatomic.h>

#include "engine.h"
#include "export.h"
#include "export_internal.h"
#include "location.h"

#define EXP_ID_MAX 128
#define EXP_MARKER_PREFIX "export/running/"
#define EXP_NBUCKETS 8

enum { EXP_BACKEND_FS = 0, EXP_BACKEND_S3 = 1 };
enum { EXP_STARTED, EXP_TRANSFERRING, EXP_SUCCESS, EXP_FAILED, EXP_CANCELED };
enum { SH_TRANSFERRING, SH_SUCCESS, SH_FAILED, SH_SKIPPED };

struct exp_job;

struct sv_export {
    sv_store *store;
    sv_catalog *cat;
    sv_engine *engine; /* read-only scans of checkpoints */
    char node[64];
    /* configuration (EXPORT_*) */
    bool enabled;
    int parallelism;
    int64_t rows_per_file, reservation_ms, status_interval_ms, row_group_bytes, max_rows_per_sec;
    char fs_root[1024];
    char s3_bucket[256];
    char s3_prefix[1024];
    /* backends, opened on first use */
    pthread_mutex_t loc_mu;
    sv_location *locs[2];
    /* serializes create against create and shutdown */
    pthread_mutex_t sched_mu;
    bool shutting_down;
    /* the participant's single export slot */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct exp_job *slot;
    uint64_t slot_gen; /* bumped per reservation: waiters compare it, not pointers */
    bool part_shutdown, ticker_stop;
    pthread_t ticker;
    bool ticker_started;
    pthread_t runner; /* of the last committed export; joined before the next */
    bool runner_joinable;
    /* metrics */
    atomic_llong m_objects, m_bytes, m_ops[3], m_dur_bucket[EXP_NBUCKETS], m_dur_ms, m_dur_count;
};

const char *exp_status_name(int st);
const char *exp_shard_status_name(int st);
bool exp_status_terminal(const char *s);
json_t *exp_time_json(int64_t ms);
void exp_key(char *out, size_t n, const char *id, const char *file);
void exp_export_path(const sv_export *ex, int backend, const char *id, char *out, size_t n);
int exp_location(sv_export *ex, int backend, sv_location **out, sv_err *err);
int exp_put_json(sv_location *loc, const char *key, json_t *j, sv_err *err);
int exp_get_json(sv_location *loc, const char *key, json_t **out, sv_err *err);
void exp_metrics_finish(sv_export *ex, int status, int64_t took_ms);

/* participant.c */
int exp_participant_start(sv_export *ex, sv_err *err);
void exp_participant_shutdown(sv_export *ex); /* ends the running export FAILED "shutting down" */
void exp_participant_stop(sv_export *ex);     /* joins threads; after shutdown */
bool exp_participant_running_id(sv_export *ex, char *id, size_t n);
bool exp_participant_owns(sv_export *ex, int backend, const char *id);
/* The metadata document as it would be written now, for a running export
 * with this id (NULL if none). */
json_t *exp_participant_live_meta(sv_export *ex, int backend, const char *id);

#endif
