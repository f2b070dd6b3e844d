/* Internal to the snapshot module (and its unit tests): the restore-job
 * metadata manager, the manifest, blob keys, the hash cache, and the
 * service's shared state and cross-file helpers. The service is split by
 * concern:
 *   snapshot.c          records, get/list/drop answers, open/close, metrics
 *   snapshot_create.c   create (capture, hash, store, manifest, commit)
 *   snapshot_restore.c  restore jobs and tasks
 *   snapshot_gc.c       garbage collection of unreferenced blobs
 *   snapshot_blob.c     hashing, the hash cache, blob put/fetch
 *   restore_meta.c, manifest.c  as described below. */
#ifndef SV_SNAPSHOT_INTERNAL_H
#define SV_SNAPSHOT_INTERNAL_H

#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "catalog.h"
#include "core.h"
#include "engine.h"
#include "jobs.h"
#include "location.h"
#include "snapshot.h"
#include "store.h"

/* ---- restore jobs and tasks ---------------------------------------------- */
/* The pattern of Milvus' copy-segment meta: every change is persisted to the
 * catalog before memory changes, memory is rebuilt from the catalog at open,
 * and tasks are indexed by job and jobs by collection (source and target).
 * Callers get copies, never pointers into the manager. */

typedef enum { SV_RESTORE_PENDING, SV_RESTORE_EXECUTING, SV_RESTORE_COMPLETED, SV_RESTORE_FAILED } sv_restore_state;
const char *sv_restore_state_name(int state);
bool sv_restore_state_final(int state);

typedef struct sv_restore_job {
    char id[37];
    char collection[129]; /* the snapshot's collection */
    char snapshot[129];
    char target[129];
    int state;
    char reason[512];
    int64_t created_at, started_at, finished_at; /* ms since epoch; 0 = not yet */
    int64_t bytes_total;
    int ntasks;
} sv_restore_job;

typedef struct sv_restore_task {
    char job_id[37];
    char shard[72];
    char collection[129]; /* the target collection */
    int index;            /* position in the manifest */
    int state;
    int64_t bytes_total;
    int64_t objects; /* counted in the laid-out shard; -1 until then */
    char reason[512];
} sv_restore_task;

typedef struct sv_restore_meta sv_restore_meta;

/* Loads every job and task from the catalog (cat is borrowed). */
int sv_restore_meta_open(sv_catalog *cat, sv_restore_meta **out, sv_err *err);
void sv_restore_meta_free(sv_restore_meta *m);
/* Persists the job and all its tasks in one transaction (fails with
 * SV_EEXIST if the job id exists), then adds them to memory. */
int sv_restore_meta_add_job(sv_restore_meta *m, const sv_restore_job *job, const sv_restore_task *tasks, size_t n,
                            sv_err *err);
/* Replace an existing job / task (SV_ENOTFOUND if unknown): catalog first. */
int sv_restore_meta_update_job(sv_restore_meta *m, const sv_restore_job *job, sv_err *err);
int sv_restore_meta_update_task(sv_restore_meta *m, const sv_restore_task *task, sv_err *err);
int sv_restore_meta_get_job(sv_restore_meta *m, const char *id, sv_restore_job *out);
/* Malloc'd arrays of copies (free()); *n is their length. Jobs are ordered by
 * creation time, tasks by index. */
int sv_restore_meta_list_jobs(sv_restore_meta *m, sv_restore_job **out, size_t *n);
int sv_restore_meta_tasks_of_job(sv_restore_meta *m, const char *id, sv_restore_task **out, size_t *n);
/* Jobs whose source or target is this collection. */
int sv_restore_meta_jobs_of_collection(sv_restore_meta *m, const char *collection, sv_restore_job **out, size_t *n);
/* Removes a job and its tasks (catalog, then memory). */
int sv_restore_meta_remove_job(sv_restore_meta *m, const char *id, sv_err *err);

/* ---- blob keys (SHA-256 itself is in core.h) ------------------------------ */

/* "blobs/ab/abcdef…" */
void sv_blob_key(const char *hex, char key[80]);

/* ---- manifest -------------------------------------------------------------- */

#define SV_MANIFEST_FORMAT 1

typedef struct sv_manifest_file {
    char name[256]; /* a file of the RocksDB directory: "000012.sst", "CURRENT" */
    char blob[65];  /* sha256 hex */
    int64_t size;
} sv_manifest_file;

typedef struct sv_manifest_shard {
    char name[72];
    char node[65];   /* the node it was captured on (a cluster-wide snapshot); "" = not recorded */
    bool empty;      /* the shard never held data: restored as an empty directory */
    int64_t objects;
    int64_t bytes;
    sv_manifest_file *files;
    size_t nfiles;
} sv_manifest_shard;

typedef struct sv_manifest {
    char collection[129];
    char name[129];
    char description[1024];
    int64_t created_at, captured_at;
    json_t *schema; /* the collection's schema JSON */
    int64_t objects, bytes;
    sv_manifest_shard *shards;
    size_t nshards;
} sv_manifest;

void sv_manifest_free(sv_manifest *m); /* frees what it holds and m itself */
char *sv_manifest_to_json(const sv_manifest *m);
/* Parses and checks everything later used as a key or a path: shard names,
 * file names (no '/', no ".."), blob ids (64 hex). */
int sv_manifest_parse(const char *json, size_t len, sv_manifest **out, sv_err *err);
/* "snapshots/<collection>/<name>/manifest.json" */
void sv_manifest_key(const char *collection, const char *name, char key[400]);

/* ---- hash cache -------------------------------------------------------------- */
/* sha256 of immutable shard files, keyed in the catalog by
 * `snapshot-hashes/<collection>/<shard>/<file>` and valid only while the
 * file's device, inode, size and mtime (ns) are unchanged. SST files are hard
 * links of the live ones in every checkpoint, so an unchanged SST has the same
 * inode across snapshots and is never read twice. */

typedef struct sv_file_id {
    uint64_t dev, ino;
    int64_t size;
    int64_t mtime_ns;
} sv_file_id;

int sv_file_id_of(const char *path, sv_file_id *out, sv_err *err);
/* Serializes the cache value / checks one against a file id. */
char *sv_hash_cache_value(const sv_file_id *id, const char *hex);
bool sv_hash_cache_match(const char *val, size_t len, const sv_file_id *id, char hex[65]);

/* ---- the service's shared state ---------------------------------------------- */

enum { SNAP_PENDING, SNAP_COMMITTED, SNAP_DELETING, SNAP_FAILED };

/* A create in progress: live progress for GET, and the blobs it is about to
 * reference, which GC must not delete although no manifest names them yet. */
typedef struct create_op {
    char collection[129], name[129];
    char fence_key[200]; /* its writer key in the GC fence (snapshot_fence.c), "" = none */
    sv_job *job; /* the jobs service's record (may be NULL); released by the create thread */
    _Atomic int64_t bytes_total, bytes_hashed, bytes_uploaded;
    char (*blobs)[65]; /* sorted; set under s->mu */
    size_t nblobs;
    struct create_op *next;
} create_op;

/* A restore job being executed: bytes copied by tasks still running. */
typedef struct job_run {
    char id[37];
    _Atomic int64_t bytes_running; /* of tasks not yet COMPLETED */
    atomic_bool failed;
    struct job_run *next;
} job_run;

struct sv_snapshot {
    sv_store *st;
    sv_catalog *cat;
    sv_jobs *jobs; /* borrowed, may be NULL */
    /* Atomic: maintenance move switches it (sv_snapshot_set_location) while
     * nothing is being created, restored or collected; the old one stays
     * open until close (retired_locs), so a reader holding it is safe. */
    _Atomic(sv_location *) loc;
    sv_location *retired_locs[8];
    int nretired_locs;
    sv_engine *engine;
    sv_restore_meta *meta;
    char url[PATH_MAX + 64];
    char data_dir[PATH_MAX];
    char staging[PATH_MAX + 32]; /* <data>/snapshot-restore: survives restarts, unlike <data>/tmp */
    char node[64];
    char boot[37];
    int64_t gc_interval_ms, gc_grace_ms, pending_timeout_ms, test_delay_ms;
    int workers;
    bool link_restore; /* file:// restores hard-link immutable files */
    bool verify_count; /* restore iterates each shard to count; else the store's count after adoption */

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cond;
    bool stopping;
    int threads; /* detached create and job threads still running */
    create_op *creates;
    create_op *retired; /* finished while a GC ran: still protected until it ends */
    bool gc_running;
    char (*gc_deleting)[65]; /* sorted: the batch GC is deleting without s->mu */
    size_t gc_ndeleting;
    job_run *runs;
    struct snap_hold {
        char key[260]; /* "<collection>/<name>" */
        int n;
    } *holds; /* mounted snapshots (sv_snapshot_hold), under ddl_mu */
    size_t nholds, capholds;

    pthread_mutex_t ddl_mu; /* serializes create/drop/restore starts */
    pthread_mutex_t gc_mu;  /* one GC at a time */
    pthread_t gc_thread;
    bool gc_thread_started;

    sv_snapshot_hooks hooks; /* maintenance's guard and change notice (zeroed: none) */
    sv_snapshot_cluster cluster; /* set once before requests (zeroed: one node) */
    /* defer_resume: restores claimed at open, started by sv_snapshot_resume */
    bool defer_resume;
    struct sv_restore_job *deferred;
    struct sv_job **deferred_jobs;
    size_t ndeferred;
    struct snap_cut *cuts;       /* this node's open cuts (snapshot_cut.c), under mu */

    _Atomic int64_t m_created, m_failed, m_restored, m_restore_failed, m_gc_runs, m_gc_deleted, m_gc_bytes;
};

/* A cluster-wide snapshot (snapshot_cut.c): true when the collection's
 * shards live on more than one node and a cluster is set. */
bool sv_snap_cut_wanted(sv_snapshot *s, const char *collection);
/* SV_EUNSUPPORTED when this node's location is its own data directory (the
 * other owners could not upload where it reads). */
int sv_snap_cut_check(sv_snapshot *s, const char *collection, sv_err *err);
/* A node call's outcome in words: "ok", or what went wrong. */
void sv_snap_rpc_why(const sv_snapshot_rpc *r, char *why, size_t len);
/* Runs the cut across the owners, their uploads and writes the manifest;
 * rec gets the record's summary (objects, bytes, shards, cut, timings). */
int sv_snap_cut_create(sv_snapshot *s, create_op *op, json_t *rec, sv_err *err);
/* A restore across nodes (restore_spread.c): *nodes gets each manifest
 * shard's owner, or stays NULL (every shard here: not a cluster-wide
 * snapshot, or no cluster). */
int sv_snap_spread_plan(sv_snapshot *s, const sv_manifest *m, char (**nodes)[65], sv_err *err);
bool sv_snap_spread_here(const sv_snapshot *s, char (*nodes)[65], size_t i);
/* The other owners lay out their shards under uid, in parallel; a failure
 * unlays them all and names the node. */
int sv_snap_spread_lay(sv_snapshot *s, const char *job_id, const char *collection, const char *snapshot,
                       const char *uid, const sv_manifest *m, char (*nodes)[65], sv_err *err);
void sv_snap_spread_unlay(sv_snapshot *s, char (*nodes)[65], size_t n, const char *uid);
/* Stops: drops this node's open cuts (gates opened, checkpoints removed). */
void sv_snap_cut_close_all(sv_snapshot *s);

/* ---- the GC fence across nodes (snapshot_fence.c) ------------------------------- */

/* A writer's key, put before it looks at the location for its blobs (and
 * after waiting out another node's GC), removed once its manifest is
 * written. No-ops with the embedded catalog. key: "" when none. */
int sv_snap_fence_writer_begin(sv_snapshot *s, char key[200], sv_err *err);
void sv_snap_fence_writer_end(sv_snapshot *s, char key[200]);
typedef struct sv_snap_fence {
    bool held;
    int64_t rev, expires;
    char deferred[300]; /* set: writers of other nodes are storing blobs; delete nothing */
} sv_snap_fence;
/* GC: takes the fence (SV_ECONFLICT when another node's GC holds it), then
 * says in f->deferred whether another node is storing blobs. */
int sv_snap_fence_gc_begin(sv_snapshot *s, sv_snap_fence *f, sv_err *err);
/* Before each delete batch: renews, or fails (delete nothing more). */
int sv_snap_fence_gc_renew(sv_snapshot *s, sv_snap_fence *f, sv_err *err);
void sv_snap_fence_gc_end(sv_snapshot *s, sv_snap_fence *f);

/* ---- shared helpers (snapshot.c) ------------------------------------------------ */

int sv_snap_oom(sv_err *err);
void sv_snap_record_key(const char *collection, const char *name, char key[400]);
bool sv_snap_stopping(sv_snapshot *s);
/* Test hook (SHARDVAULT_SNAPSHOT_TEST_DELAY_MS): slows each stored or
 * restored file so crash tests can kill the server mid-operation. */
void sv_snap_test_delay(sv_snapshot *s);
/* The hooks (sv_snapshot_set_hooks): 0 when writing is allowed. */
int sv_snap_may_write(sv_snapshot *s, sv_err *err);
void sv_snap_changed(sv_snapshot *s);
/* Starts a detached thread counted in s->threads. */
int sv_snap_spawn(sv_snapshot *s, void *(*fn)(void *), void *arg, sv_err *err);
int sv_snap_check_names(const char *collection, const char *name, sv_err *err);

/* Snapshot records in the catalog (`snapshots/<collection>/<name>`). */
int sv_snap_record_load(sv_snapshot *s, const char *collection, const char *name, json_t **out, int64_t *rev,
                        sv_err *err);
int sv_snap_record_put(sv_snapshot *s, json_t *rec, sv_err *err);
int sv_snap_record_state(json_t *rec);
void sv_snap_set_failed(json_t *rec, const char *why);
/* The API shape: the record without bookkeeping, plus live progress. */
json_t *sv_snap_record_api(sv_snapshot *s, json_t *rec);

/* ---- create (snapshot_create.c) ------------------------------------------------------ */

/* sv_snapshot_create with the schedule that asked for it (NULL = a request);
 * job_id (may be NULL) receives the create's job id. */
int sv_snap_create(sv_snapshot *s, const char *collection, json_t *body, bool wait, const char *schedule,
                   char job_id[64], json_t **out, sv_err *err);

/* ---- restore (snapshot_restore.c) ------------------------------------------------- */

/* Removes staging directories of jobs that are gone and resumes unfinished
 * jobs (called by open). */
void sv_snap_resume_jobs(sv_snapshot *s);

/* ---- garbage collection (snapshot_gc.c) -------------------------------------------- */

void *sv_snap_gc_loop(void *arg);

/* ---- blobs (snapshot_blob.c) ---------------------------------------------------------- */

/* A shard file of a create: where it is, its identity and its hash. */
typedef struct sv_snap_file {
    int shard; /* index in the capture */
    char name[256];
    char path[PATH_MAX];
    sv_file_id id;
    char hex[65];
    bool cached; /* hex came from the hash cache */
} sv_snap_file;

int sv_snap_cmp_hex(const void *a, const void *b); /* for qsort/bsearch of char[65] */
bool sv_snap_hex_in(char (*set)[65], size_t n, const char *hex);

/* Hashes every file not cached on up to s->workers threads (the jobs pool;
 * job, may be NULL, stops it when canceled); progress counts the bytes read. */
int sv_snap_hash_files(sv_snapshot *s, sv_snap_file *files, size_t n, _Atomic int64_t *progress, const sv_job *job,
                       sv_err *err);

/* The hash cache of one collection, loaded from the catalog. */
typedef struct sv_snap_cache_entry sv_snap_cache_entry;
typedef struct sv_snap_hash_cache {
    char prefix[300]; /* "snapshot-hashes/<collection>/" */
    sv_snap_cache_entry *v;
    size_t n, cap;
} sv_snap_hash_cache;

int sv_snap_hash_cache_load(sv_snapshot *s, const char *collection, sv_snap_hash_cache *hc, sv_err *err);
/* Marks files whose cached hash is still valid (cached, hex set) and adds
 * their bytes to *progress; returns the bytes found in the cache. */
int64_t sv_snap_hash_cache_apply(sv_snap_hash_cache *hc, const sv_capture *cap, sv_snap_file *files, size_t n,
                                 _Atomic int64_t *progress);
/* Stores what was hashed and forgets files the shards no longer have; a
 * failure is only logged (the next snapshot hashes again). */
void sv_snap_hash_cache_save(sv_snapshot *s, sv_snap_hash_cache *hc, const sv_capture *cap, const sv_snap_file *files,
                             size_t n);
void sv_snap_hash_cache_free(sv_snap_hash_cache *hc);

/* Stores each distinct file as its blob unless the location already holds
 * it; *uploaded counts the bytes sent, job (may be NULL) counts the files
 * done (and their bytes with job_bytes: a snapshot's job counts the bytes it
 * hashed instead) and stops the loop when canceled (SV_ECANCELED). */
int sv_snap_store_blobs(sv_snapshot *s, const sv_snap_file *files, size_t n, _Atomic int64_t *uploaded, sv_job *job,
                        bool job_bytes, sv_err *err);
/* Restores one manifest file into path (local fast path or fetch), verifying
 * size and sha256; progress counts the bytes. */
int sv_snap_restore_blob(sv_snapshot *s, const sv_manifest_shard *ms, const sv_manifest_file *mf, const char *path,
                         _Atomic int64_t *progress, sv_err *err);

#endif
