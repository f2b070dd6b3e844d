/* Internal to the maintenance module (and its unit tests).
 *   maintenance.c  open/close, status, the agent registry, jobs, metrics
 *   descriptor.c   store.json, the store id in the catalog, the write guard, the recovery kit
 *   lease.c        the exclusive lease maintenance/lease
 *   checkpoint.c   catalog checkpoints (write, prune, read)
 *   rebuild.c      the rebuild agent
 *   verify.c       the verify agent */
#ifndef SV_MAINTENANCE_INTERNAL_H
#define SV_MAINTENANCE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "location.h"
#include "maintenance.h"

#define MAINT_FORMAT 1
#define MAINT_STORE_KEY "maintenance/store"
#define MAINT_LEASE_KEY "maintenance/lease"
#define MAINT_AGENT_PREFIX "maintenance/agents/"
#define MAINT_LOCATION_KEY "maintenance/location"

enum { DESC_UNKNOWN, DESC_OK, DESC_MISSING, DESC_FOREIGN, DESC_INVALID, DESC_UNADOPTED };
const char *sv_maint_desc_name(int state);

/* ---- the lease ---------------------------------------------------------- */
typedef struct maint_lease {
    sv_maintenance *m;
    int64_t lease_id, rev;
    atomic_bool lost;
    atomic_bool stop;
    pthread_t renewer;
    bool renewing;
} maint_lease;

/* SV_ECONFLICT naming the holder when another agent holds it. */
int sv_maint_lease_acquire(sv_maintenance *m, const char *job_id, const char *op, maint_lease *l, sv_err *err);
void sv_maint_lease_release(maint_lease *l);
/* SV_ESTATE "lease lost" once lost. */
int sv_maint_lease_check(maint_lease *l, sv_err *err);
/* A catalog transaction conditional on still holding the lease (a failed
 * condition marks it lost). */
int sv_maint_lease_txn(maint_lease *l, const sv_catalog_op *ops, size_t nops, sv_err *err);

/* ---- an agent ----------------------------------------------------------- */
typedef struct maint_agent {
    sv_maintenance *m;
    char job_id[64];
    char op[16]; /* "rebuild" | "verify" | "move" | "analyze" */
    sv_job *job;
    json_t *body;  /* the request */
    json_t *state; /* the persisted agent record (rebuild: cursor and counters) */
    maint_lease lease;
    int64_t started_ms;
    _Atomic int64_t scanned, total, indexed, skipped, blobs, bytes;
    atomic_bool resumed_wait; /* waiting for a crashed holder's lease to expire */
} maint_agent;

struct sv_maintenance {
    sv_catalog *cat;
    sv_snapshot *snap;
    sv_jobs *jobs;
    _Atomic(sv_location *) loc; /* the snapshot service's; switched by move */
    char url[4200];
    char node[64];
    int64_t lease_ttl_ms, ckpt_interval_ms, test_delay_ms;
    int batch;

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cond;
    bool stopping;
    int threads;
    /* the descriptor */
    int desc_state;
    int64_t desc_checked_ms; /* the guard's last re-read while refused (another node may adopt) */
    char store_id[37];     /* the catalog's, "" when none */
    char loc_store_id[37]; /* the location's */
    char *descriptor;      /* the catalog's copy of store.json (exact bytes) */
    char problem[700];
    bool moving; /* a move copies the location: writes wait */
    /* checkpoints */
    bool ckpt_dirty;
    int64_t ckpt_last_ms;
    char ckpt_last_key[128];
    pthread_t ckpt_thread;
    bool ckpt_thread_started;
    /* the running agent */
    maint_agent *agent;
    sv_maintenance_tenant_fn tenant_fn;
    void *tenant_ud;

    _Atomic int64_t m_checkpoints, m_rebuilds, m_verifies, m_refused;
};

/* descriptor.c */
int sv_maint_desc_init(sv_maintenance *m, sv_err *err); /* reads/creates; sets desc_state (m->mu held) */
/* Refused (unadopted, foreign): reads the descriptors again, at most once a
 * second. In a cluster another node's rebuild adopts the location for every
 * node (the catalog is shared), so no node needs a rebuild of its own.
 * m->mu held. */
void sv_maint_desc_recheck_locked(sv_maintenance *m);
int sv_maint_guard(void *ud, sv_err *err); /* sv_snapshot_hooks.before_write */
/* Conditional create of store.json (HEAD then PUT where unsupported). */
int sv_maint_create_descriptor(sv_location *loc, const char *text, sv_err *err);
/* The descriptor JSON text for an id and creation time (exact, stable bytes). */
char *sv_maint_desc_text(const char *store_id, int64_t created_at);
/* Parses a descriptor: 0 and the id / creation time, or SV_ECORRUPT. */
int sv_maint_desc_parse(const char *text, size_t len, char id[37], int64_t *created_at, sv_err *err);
/* Parses and checks a recovery kit. */
typedef struct maint_kit {
    char store_id[37];
    int64_t created_at;
    char descriptor_sha256[65];
    char location[4200];
} maint_kit;
int sv_maint_kit_parse(const char *text, maint_kit *out, sv_err *err);
char *sv_maint_kit_text(const char *store_id, const char *location, int64_t created_at, const char *desc_sha);
/* Rebuild's adoption: makes the location's descriptor (rewritten from kit
 * when given and the descriptor is missing or invalid) this node's. dry_run
 * only checks. *rewritten tells whether store.json was written. */
int sv_maint_desc_adopt(sv_maintenance *m, const char *kit_text, bool dry_run, bool *rewritten, sv_err *err);

/* checkpoint.c */
void sv_maint_ckpt_changed(void *ud); /* sv_snapshot_hooks.changed */
void *sv_maint_ckpt_loop(void *arg);
int sv_maint_ckpt_write(sv_maintenance *m, char key_out[128], sv_err *err);
/* The newest checkpoint: key ("" when none), its time and its parsed JSON. */
int sv_maint_ckpt_newest(sv_maintenance *m, char key[128], int64_t *at_ms, json_t **doc, sv_err *err);

/* rebuild.c / verify.c: the agent bodies (run on the agent's thread). */
int sv_maint_rebuild_run(maint_agent *a, json_t **result, sv_err *err);
int sv_maint_rebuild_check(json_t *body, sv_err *err);
int sv_maint_verify_run(maint_agent *a, json_t **result, sv_err *err);
int sv_maint_move_run(maint_agent *a, json_t **result, sv_err *err);
int sv_maint_analyze_run(maint_agent *a, json_t **result, sv_err *err);
int sv_maint_analyze_check(json_t *body, sv_err *err);
int sv_maint_move_check(sv_maintenance *m, json_t *body, sv_err *err);
/* At open: the location a finished move recorded in the catalog. */
int sv_maint_move_apply(sv_maintenance *m, sv_err *err);
json_t *sv_maint_agent_progress(maint_agent *a);
int sv_maint_verify_check(json_t *body, sv_err *err);
/* body[key] when it is an integer, else dflt. */
int64_t sv_maint_int(const json_t *body, const char *key, int64_t dflt);
/* Persists the agent record (op, body, state) under the lease. */
int sv_maint_agent_save(maint_agent *a, sv_catalog_op *extra, size_t nextra, sv_err *err);
bool sv_maint_agent_stop(maint_agent *a); /* stopping, canceled or lease lost */
/* The error for a stopped agent: SV_ESTATE "lease lost", else SV_ECANCELED. */
int sv_maint_stop_error(maint_agent *a, sv_err *err);
void sv_maint_test_delay(sv_maintenance *m);

#endif
