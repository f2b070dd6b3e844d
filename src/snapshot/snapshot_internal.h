/* Internal to the snapshot module (and its unit tests): the restore-job
 * metadata manager, the manifest, SHA-256 helpers and the hash cache. */
#ifndef SV_SNAPSHOT_INTERNAL_H
#define SV_SNAPSHOT_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "catalog.h"
#include "core.h"
#include "location.h"

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

/* ---- SHA-256 ------------------------------------------------------------- */

typedef struct sv_sha256_ctx sv_sha256_ctx;
sv_sha256_ctx *sv_sha256_new(void);
void sv_sha256_update(sv_sha256_ctx *c, const void *data, size_t len);
void sv_sha256_final_hex(sv_sha256_ctx *c, char hex[65]); /* also frees c */
void sv_sha256_free(sv_sha256_ctx *c);
/* Hashes a local file; *progress (may be NULL) is incremented atomically as
 * bytes are read. */
int sv_sha256_file(const char *path, char hex[65], int64_t *size, _Atomic int64_t *progress, sv_err *err);
bool sv_sha256_valid_hex(const char *s);
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

#endif
