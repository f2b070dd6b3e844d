/* engine — one RocksDB instance per shard, all sharing one block cache and
 * bounded write buffers, so thousands of shards can exist on disk while only
 * open ones hold memory.
 *
 * Keys are opaque bytes (shardvault uses the 16-byte UUID of an object; see
 * SV_DB_META_PREFIX for bookkeeping keys). Writes go through RocksDB's WAL, so
 * an acknowledged write survives kill -9 even without `sync`; `sync` adds an
 * fsync for power loss.
 *
 * Ownership: sv_engine owns the shared cache and must outlive every sv_db
 * opened from it. Values returned by get are malloc'd; the caller frees them.
 * Iterator key/value pointers are valid until the next iterator call.
 * All functions are thread-safe for distinct objects; one sv_db may be used by
 * many threads at once (RocksDB is), except close, which the caller serializes.
 */
#ifndef SV_ENGINE_H
#define SV_ENGINE_H

#include "core.h"

typedef struct sv_engine sv_engine;
typedef struct sv_db sv_db;
typedef struct sv_db_batch sv_db_batch;
typedef struct sv_db_iter sv_db_iter;

typedef struct sv_engine_opts {
    int64_t block_cache_bytes;  /* shared LRU block cache; 0 = 256 MiB */
    int64_t write_buffer_bytes; /* per-db memtable size;   0 = 16 MiB */
    int64_t total_write_buffer_bytes; /* shared write-buffer manager budget; 0 = 256 MiB */
    int max_background_jobs;    /* shared env; 0 = 2 */
    bool no_direct_io;          /* flushes and compactions through the page cache even where
                                   the filesystem takes O_DIRECT (the default uses it there) */
} sv_engine_opts;

/* Bookkeeping keys start with 16 bytes of 0xFF and are longer than 16 bytes,
 * so they sort after every 16-byte object key. */
#define SV_DB_META_PREFIX_LEN 16

int sv_engine_new(const sv_engine_opts *opts, sv_engine **out, sv_err *err);
void sv_engine_free(sv_engine *engine);

/* Opens (create_if_missing when `create`) the RocksDB at dir. */
int sv_db_open(sv_engine *engine, const char *dir, bool create, sv_db **out, sv_err *err);
/* Flushes memtables and closes. NULL is fine. */
void sv_db_close(sv_db *db);

/* get returns SV_ENOTFOUND when absent; *val is malloc'd (caller frees). */
int sv_db_get(sv_db *db, const void *key, size_t klen, char **val, size_t *vlen, sv_err *err);
/* no_fill: the blocks read are not added to the block cache (a bulk
 * writer's existence checks would otherwise fill it with blocks it never
 * reads again). */
int sv_db_get_ex(sv_db *db, const void *key, size_t klen, bool no_fill, char **val, size_t *vlen, sv_err *err);
int sv_db_put(sv_db *db, const void *key, size_t klen, const void *val, size_t vlen, bool sync, sv_err *err);
int sv_db_delete(sv_db *db, const void *key, size_t klen, bool sync, sv_err *err);

sv_db_batch *sv_db_batch_new(void);
void sv_db_batch_put(sv_db_batch *b, const void *key, size_t klen, const void *val, size_t vlen);
void sv_db_batch_delete(sv_db_batch *b, const void *key, size_t klen);
void sv_db_batch_clear(sv_db_batch *b);
int sv_db_batch_count(const sv_db_batch *b);
int sv_db_write(sv_db *db, sv_db_batch *b, bool sync, sv_err *err); /* atomic */
void sv_db_batch_free(sv_db_batch *b);

/* Iterates a consistent view (an implicit snapshot taken at creation). */
sv_db_iter *sv_db_iter_new(sv_db *db);
void sv_db_iter_seek(sv_db_iter *it, const void *key, size_t klen); /* first key >= key */
void sv_db_iter_seek_first(sv_db_iter *it);
bool sv_db_iter_valid(const sv_db_iter *it);
void sv_db_iter_next(sv_db_iter *it);
const char *sv_db_iter_key(const sv_db_iter *it, size_t *klen);
const char *sv_db_iter_value(const sv_db_iter *it, size_t *vlen);
int sv_db_iter_status(const sv_db_iter *it, sv_err *err); /* 0 unless the scan hit an error */
void sv_db_iter_free(sv_db_iter *it);

/* Point-in-time copy of an open db into dst_dir (must not exist): RocksDB
 * checkpoint, hard links for SST files. dst_dir is a valid db directory. */
int sv_db_checkpoint(sv_db *db, const char *dst_dir, sv_err *err);
/* Same for a db that is not open (an unloaded shard): hard links the
 * immutable files, copies the mutable ones (CURRENT, MANIFEST, OPTIONS, WAL).
 * The caller guarantees nobody opens src_dir meanwhile. */
int sv_db_checkpoint_closed(const char *src_dir, const char *dst_dir, sv_err *err);

/* Forces memtables to SST files (used before snapshots, and by tests). */
int sv_db_flush(sv_db *db, sv_err *err);
/* Live bytes on disk (SST + WAL) of an open db. */
int64_t sv_db_disk_bytes(sv_db *db);

/* Bulk load: a table file written outside any db, in strictly ascending key
 * order, then ingested whole into a db (no memtable, no WAL, no flush).
 * The file is uncompressed (it lands in L0, which is raw here) and carries
 * the db's bloom filter and block format. sv_db_sst_finish fsyncs it.
 * Ownership: the writer is the caller's (sv_db_sst_free); the file stays
 * until ingested or removed by the caller. */
typedef struct sv_db_sst sv_db_sst;
int sv_db_sst_open(sv_engine *engine, const char *path, sv_db_sst **out, sv_err *err);
int sv_db_sst_put(sv_db_sst *w, const void *key, size_t klen, const void *val, size_t vlen, sv_err *err);
int sv_db_sst_finish(sv_db_sst *w, sv_err *err);
void sv_db_sst_free(sv_db_sst *w); /* NULL is fine */
/* Adds the files to db atomically (all or none), newer than everything in
 * it; the files are moved (hard-linked, the originals removed). Durable on
 * return: the files are synced and the db's MANIFEST names them. */
int sv_db_ingest(sv_db *db, const char *const *paths, size_t n, sv_err *err);
/* Bulk mode: while on, the db runs no automatic compaction and never stalls
 * writes for its L0 file count (ingested files pile up in L0); off restores
 * the defaults, and compaction then catches up in the background. Not
 * persisted: a reopened db is never in bulk mode. */
int sv_db_set_bulk(sv_db *db, bool on, sv_err *err);
/* The db's latest sequence number: it moves with every write and ingest,
 * so an unchanged number means nothing was written in between. */
uint64_t sv_db_latest_seq(sv_db *db);

/* Opens a db read-only (e.g. a checkpoint being exported). */
int sv_db_open_readonly(sv_engine *engine, const char *dir, sv_db **out, sv_err *err);

#endif
