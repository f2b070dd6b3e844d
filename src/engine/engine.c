/* engine — RocksDB per shard. See engine.h for the contract and
 * docs/engine.md for the tuning rationale and measured memory bounds. */
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <rocksdb/c.h>

#define MIB (1024LL * 1024LL)

/* RocksDB InfoLogLevel: warnings and errors only, so 1000 idle shards do not
 * fill the disk with option dumps and periodic stats. */
#define ROCKS_LOG_WARN 2

struct sv_engine {
    rocksdb_cache_t *cache;
    rocksdb_env_t *env;
    rocksdb_options_t *opts;          /* create_if_missing = 0 */
    rocksdb_options_t *opts_create;   /* create_if_missing = 1 */
    rocksdb_options_t *opts_dio;      /* opts, flushes and compactions with O_DIRECT (NULL: off) */
    rocksdb_options_t *opts_dio_create;
    rocksdb_writeoptions_t *wo_nosync;
    rocksdb_writeoptions_t *wo_sync;
    rocksdb_readoptions_t *ro;
    rocksdb_readoptions_t *ro_nofill; /* lookups that must not fill the block cache */
    rocksdb_flushoptions_t *fo;
    rocksdb_options_t *opts_sst;      /* bulk-load table files: no compression */
    rocksdb_envoptions_t *envo;
    rocksdb_ingestexternalfileoptions_t *ingest;
    atomic_int open_dbs;
    pthread_mutex_t probe_mu; /* the filesystems probed for O_DIRECT */
    struct {
        dev_t dev;
        bool ok;
    } probed[8];
    int nprobed;
};

struct sv_db_sst {
    rocksdb_sstfilewriter_t *w;
    char *path;
};

struct sv_db {
    sv_engine *eng;
    rocksdb_t *db;
    bool readonly;
    char *path;
};

struct sv_db_batch {
    rocksdb_writebatch_t *wb;
};

struct sv_db_iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
};

/* Maps a RocksDB status string ("IO error: ...") to an SV_E* code, sets err
 * and frees the RocksDB-allocated message. */
static int rocks_fail(sv_err *err, char *rerr, const char *what, const char *path)
{
    int code = SV_EIO;
    if (!strncmp(rerr, "Corruption", 10))
        code = SV_ECORRUPT;
    else if (!strncmp(rerr, "NotFound", 8))
        code = SV_ENOTFOUND;
    else if (!strncmp(rerr, "Invalid argument", 16))
        code = SV_EINVAL;
    else if (!strncmp(rerr, "Not implemented", 15))
        code = SV_EUNSUPPORTED;
    else if (strstr(rerr, "lock file") || strstr(rerr, "/LOCK"))
        code = SV_ECONFLICT; /* another process (or handle) has the db open */
    sv_fail(err, code, "%s %s: %s", what, path ? path : "", rerr);
    free(rerr);
    return code;
}

static rocksdb_options_t *make_options(const sv_engine_opts *o, rocksdb_cache_t *cache, rocksdb_env_t *env)
{
    int64_t wb = o && o->write_buffer_bytes > 0 ? o->write_buffer_bytes : 16 * MIB;
    int64_t total = o && o->total_write_buffer_bytes > 0 ? o->total_write_buffer_bytes : 256 * MIB;
    int jobs = o && o->max_background_jobs > 0 ? o->max_background_jobs : 2;
    /* RocksDB 7.8's C API cannot share a WriteBufferManager between DBs, so
     * the budget is enforced per db: two memtables of at most total/2 each. */
    if (wb * 2 > total)
        wb = total / 2;
    if (wb < MIB)
        wb = MIB;

    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(t, cache);
    rocksdb_block_based_options_set_block_size(t, 16 * 1024);
    /* Index and filter blocks live in the shared cache (and are evicted with
     * it), so an idle shard pins almost nothing; L0's stay pinned for speed. */
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(t, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_block_based_options_set_format_version(t, 5);

    rocksdb_options_t *opts = rocksdb_options_create();
    rocksdb_options_set_block_based_table_factory(opts, t);
    rocksdb_block_based_options_destroy(t); /* the factory keeps its own copy */
    rocksdb_options_set_env(opts, env);
    rocksdb_options_set_max_background_jobs(opts, jobs);
    rocksdb_options_set_write_buffer_size(opts, (size_t)wb);
    rocksdb_options_set_max_write_buffer_number(opts, 2);
    rocksdb_options_set_arena_block_size(opts, (size_t)(wb / 16 < MIB ? wb / 16 : MIB));
    /* Vectors are random floats: compression saves little and costs CPU on
     * every flush, compaction and scan (ingest and export are CPU-bound on
     * two cores). L0/L1 stay raw, deeper levels get cheap LZ4. */
    int per_level[7] = {rocksdb_no_compression, rocksdb_no_compression, rocksdb_lz4_compression,
                        rocksdb_lz4_compression, rocksdb_lz4_compression, rocksdb_lz4_compression,
                        rocksdb_lz4_compression};
    rocksdb_options_set_num_levels(opts, 7);
    /* Writers look a key up before writing it (to keep counts exact and
     * creation times on replace); most imported keys are new, and a memtable
     * bloom filter answers "absent" without walking the skiplist. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(opts, 0.05);
    rocksdb_options_set_memtable_whole_key_filtering(opts, 1);
    rocksdb_options_set_compression_per_level(opts, per_level, 7);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(opts, 1);
    rocksdb_options_set_max_open_files(opts, 256);
    /* The default reserves 4 MiB of disk per open MANIFEST; a shard's
     * manifest stays tiny. */
    rocksdb_options_set_manifest_preallocation_size(opts, 64 * 1024);
    rocksdb_options_set_info_log_level(opts, ROCKS_LOG_WARN);
    rocksdb_options_set_keep_log_file_num(opts, 2);
    rocksdb_options_set_max_log_file_size(opts, (size_t)MIB);
    rocksdb_options_set_stats_dump_period_sec(opts, 0);
    rocksdb_options_set_stats_persist_period_sec(opts, 0);
    /* RocksDB fallocates each new WAL at 1.1 x write_buffer_size (17.6 MiB
     * of disk per open shard by default). max_total_wal_size caps that
     * preallocation; with a single column family it triggers no flushes. */
    rocksdb_options_set_max_total_wal_size(opts, (uint64_t)MIB);
    rocksdb_options_set_manual_wal_flush(opts, 0); /* every write() reaches the OS before ack */
    return opts;
}

int sv_engine_new(const sv_engine_opts *o, sv_engine **out, sv_err *err)
{
    *out = NULL;
    if (o && (o->block_cache_bytes < 0 || o->write_buffer_bytes < 0 || o->total_write_buffer_bytes < 0 ||
              o->max_background_jobs < 0))
        return sv_fail(err, SV_EINVAL, "engine options must not be negative");
    sv_engine *e = calloc(1, sizeof *e);
    if (!e)
        return sv_fail(err, SV_ENOMEM, "out of memory creating the engine");
    int64_t cache = o && o->block_cache_bytes > 0 ? o->block_cache_bytes : 256 * MIB;
    e->cache = rocksdb_cache_create_lru((size_t)cache);
    e->env = rocksdb_create_default_env();
    int jobs = o && o->max_background_jobs > 0 ? o->max_background_jobs : 2;
    /* The default env's thread pools are process-wide: every shard's
     * flushes and compactions share these threads. */
    rocksdb_env_set_background_threads(e->env, jobs > 1 ? jobs - 1 : 1);
    rocksdb_env_set_high_priority_background_threads(e->env, 1);
    e->opts = make_options(o, e->cache, e->env);
    e->opts_create = rocksdb_options_create_copy(e->opts);
    rocksdb_options_set_create_if_missing(e->opts_create, 1);
    if (!(o && o->no_direct_io)) {
        /* Flushes and compactions write around the page cache: the kernel's
         * copy into it was a fifth of the server's CPU under NDJSON ingest
         * (docs/engine.md). WAL writes and reads stay buffered. */
        e->opts_dio = rocksdb_options_create_copy(e->opts);
        rocksdb_options_set_use_direct_io_for_flush_and_compaction(e->opts_dio, 1);
        e->opts_dio_create = rocksdb_options_create_copy(e->opts_dio);
        rocksdb_options_set_create_if_missing(e->opts_dio_create, 1);
    }
    pthread_mutex_init(&e->probe_mu, NULL);
    e->wo_nosync = rocksdb_writeoptions_create();
    e->wo_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(e->wo_sync, 1);
    e->ro = rocksdb_readoptions_create();
    e->ro_nofill = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(e->ro_nofill, 0);
    e->fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(e->fo, 1);
    e->opts_sst = rocksdb_options_create_copy(e->opts);
    int none[7] = {0};
    rocksdb_options_set_compression_per_level(e->opts_sst, none, 7);
    rocksdb_options_set_compression(e->opts_sst, rocksdb_no_compression);
    e->envo = rocksdb_envoptions_create();
    e->ingest = rocksdb_ingestexternalfileoptions_create();
    rocksdb_ingestexternalfileoptions_set_move_files(e->ingest, 1);
    rocksdb_ingestexternalfileoptions_set_allow_global_seqno(e->ingest, 1);
    rocksdb_ingestexternalfileoptions_set_allow_blocking_flush(e->ingest, 1);
    rocksdb_ingestexternalfileoptions_set_snapshot_consistency(e->ingest, 1);
    *out = e;
    return 0;
}

void sv_engine_free(sv_engine *e)
{
    if (!e)
        return;
    int n = atomic_load(&e->open_dbs);
    if (n)
        sv_warn("engine freed with open dbs", "open=%d", n);
    rocksdb_flushoptions_destroy(e->fo);
    rocksdb_options_destroy(e->opts_sst);
    rocksdb_envoptions_destroy(e->envo);
    rocksdb_ingestexternalfileoptions_destroy(e->ingest);
    rocksdb_readoptions_destroy(e->ro);
    rocksdb_readoptions_destroy(e->ro_nofill);
    rocksdb_writeoptions_destroy(e->wo_sync);
    rocksdb_writeoptions_destroy(e->wo_nosync);
    rocksdb_options_destroy(e->opts_create);
    rocksdb_options_destroy(e->opts);
    if (e->opts_dio) {
        rocksdb_options_destroy(e->opts_dio);
        rocksdb_options_destroy(e->opts_dio_create);
    }
    pthread_mutex_destroy(&e->probe_mu);
    rocksdb_cache_destroy(e->cache);
    rocksdb_env_destroy(e->env);
    free(e);
}

static bool is_db_dir(const char *dir)
{
    char p[4096];
    if ((size_t)snprintf(p, sizeof p, "%s/CURRENT", dir) >= sizeof p)
        return false;
    return sv_path_exists(p);
}

/* Does the filesystem holding dir take O_DIRECT writes? tmpfs (before
 * Linux 6.6) and some FUSE filesystems refuse them, and RocksDB would then
 * fail every flush. Answered by a 4 KiB aligned write to a scratch file
 * beside dir, once per filesystem (st_dev) for the process. */
static bool direct_ok(sv_engine *e, const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return false;
    pthread_mutex_lock(&e->probe_mu);
    for (int i = 0; i < e->nprobed; i++)
        if (e->probed[i].dev == sb.st_dev) {
            bool ok = e->probed[i].ok;
            pthread_mutex_unlock(&e->probe_mu);
            return ok;
        }
    pthread_mutex_unlock(&e->probe_mu);
    char p[4200];
    static atomic_uint seq;
    if ((size_t)snprintf(p, sizeof p, "%s/../.sv-direct-probe-%d-%u", dir, (int)getpid(), atomic_fetch_add(&seq, 1)) >=
        sizeof p)
        return false;
    bool ok = false;
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        void *buf = NULL;
        if (posix_memalign(&buf, 4096, 4096) == 0) {
            memset(buf, 0, 4096);
            ok = pwrite(fd, buf, 4096, 0) == 4096;
            free(buf);
        }
        close(fd);
        unlink(p);
    }
    pthread_mutex_lock(&e->probe_mu);
    if (e->nprobed < (int)(sizeof e->probed / sizeof e->probed[0])) {
        e->probed[e->nprobed].dev = sb.st_dev;
        e->probed[e->nprobed].ok = ok;
        e->nprobed++;
        sv_info("direct I/O for flushes and compactions", "dir=\"%s\" direct=%s", dir, ok ? "on" : "off (the filesystem refuses O_DIRECT)");
    }
    pthread_mutex_unlock(&e->probe_mu);
    return ok;
}

static int db_open(sv_engine *e, const char *dir, bool create, bool readonly, sv_db **out, sv_err *err)
{
    *out = NULL;
    if (!e || !dir || !*dir)
        return sv_fail(err, SV_EINVAL, "db open needs an engine and a directory");
    if (!create && !is_db_dir(dir))
        return sv_fail(err, SV_ENOTFOUND, "no database at %s (missing CURRENT file)", dir);
    if (create && sv_mkdirs(dir, err) != 0)
        return err ? err->code : SV_EIO;
    sv_db *db = calloc(1, sizeof *db);
    char *path = strdup(dir);
    if (!db || !path) {
        free(db);
        free(path);
        return sv_fail(err, SV_ENOMEM, "out of memory opening %s", dir);
    }
    char *rerr = NULL;
    bool dio = !readonly && e->opts_dio && direct_ok(e, dir);
    if (readonly)
        db->db = rocksdb_open_for_read_only(e->opts, dir, 0, &rerr);
    else if (dio)
        db->db = rocksdb_open(create ? e->opts_dio_create : e->opts_dio, dir, &rerr);
    else
        db->db = rocksdb_open(create ? e->opts_create : e->opts, dir, &rerr);
    if (rerr) {
        free(db);
        free(path);
        return rocks_fail(err, rerr, "cannot open database", dir);
    }
    db->eng = e;
    db->readonly = readonly;
    db->path = path;
    atomic_fetch_add(&e->open_dbs, 1);
    *out = db;
    return 0;
}

int sv_db_open(sv_engine *e, const char *dir, bool create, sv_db **out, sv_err *err)
{
    return db_open(e, dir, create, false, out, err);
}

int sv_db_open_readonly(sv_engine *e, const char *dir, sv_db **out, sv_err *err)
{
    return db_open(e, dir, false, true, out, err);
}

void sv_db_close(sv_db *db)
{
    if (!db)
        return;
    if (!db->readonly) {
        char *rerr = NULL;
        rocksdb_flush(db->db, db->eng->fo, &rerr);
        if (rerr) {
            /* Not fatal: the WAL still holds every acknowledged write. */
            sv_warn("flush before close failed", "path=\"%s\" error=\"%s\"", db->path, rerr);
            free(rerr);
        }
    }
    rocksdb_close(db->db);
    atomic_fetch_sub(&db->eng->open_dbs, 1);
    free(db->path);
    free(db);
}

int sv_db_get(sv_db *db, const void *key, size_t klen, char **val, size_t *vlen, sv_err *err)
{
    return sv_db_get_ex(db, key, klen, false, val, vlen, err);
}

int sv_db_get_ex(sv_db *db, const void *key, size_t klen, bool no_fill, char **val, size_t *vlen, sv_err *err)
{
    char *rerr = NULL;
    size_t n = 0;
    char *v = rocksdb_get(db->db, no_fill ? db->eng->ro_nofill : db->eng->ro, key, klen, &n, &rerr);
    *val = NULL;
    if (vlen)
        *vlen = 0;
    if (rerr)
        return rocks_fail(err, rerr, "get failed in", db->path);
    if (!v)
        return sv_fail(err, SV_ENOTFOUND, "key not found");
    /* The C API copies values with malloc, so the caller's free() matches. */
    *val = v;
    if (vlen)
        *vlen = n;
    return 0;
}

static int check_writable(sv_db *db, sv_err *err)
{
    if (db->readonly)
        return sv_fail(err, SV_ESTATE, "database %s is open read-only", db->path);
    return 0;
}

int sv_db_put(sv_db *db, const void *key, size_t klen, const void *val, size_t vlen, bool sync, sv_err *err)
{
    if (check_writable(db, err))
        return SV_ESTATE;
    char *rerr = NULL;
    rocksdb_put(db->db, sync ? db->eng->wo_sync : db->eng->wo_nosync, key, klen, val, vlen, &rerr);
    return rerr ? rocks_fail(err, rerr, "put failed in", db->path) : 0;
}

int sv_db_delete(sv_db *db, const void *key, size_t klen, bool sync, sv_err *err)
{
    if (check_writable(db, err))
        return SV_ESTATE;
    char *rerr = NULL;
    rocksdb_delete(db->db, sync ? db->eng->wo_sync : db->eng->wo_nosync, key, klen, &rerr);
    return rerr ? rocks_fail(err, rerr, "delete failed in", db->path) : 0;
}

sv_db_batch *sv_db_batch_new(void)
{
    sv_db_batch *b = calloc(1, sizeof *b);
    if (b)
        b->wb = rocksdb_writebatch_create();
    return b;
}

void sv_db_batch_put(sv_db_batch *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    rocksdb_writebatch_put(b->wb, key, klen, val, vlen);
}

void sv_db_batch_delete(sv_db_batch *b, const void *key, size_t klen)
{
    rocksdb_writebatch_delete(b->wb, key, klen);
}

void sv_db_batch_clear(sv_db_batch *b)
{
    rocksdb_writebatch_clear(b->wb);
}

int sv_db_batch_count(const sv_db_batch *b)
{
    return rocksdb_writebatch_count(b->wb);
}

int sv_db_write(sv_db *db, sv_db_batch *b, bool sync, sv_err *err)
{
    if (check_writable(db, err))
        return SV_ESTATE;
    char *rerr = NULL;
    rocksdb_write(db->db, sync ? db->eng->wo_sync : db->eng->wo_nosync, b->wb, &rerr);
    return rerr ? rocks_fail(err, rerr, "batch write failed in", db->path) : 0;
}

void sv_db_batch_free(sv_db_batch *b)
{
    if (!b)
        return;
    rocksdb_writebatch_destroy(b->wb);
    free(b);
}

/* ---- bulk load ---------------------------------------------------------- */

/* RocksDB's SstFileWriter drops the pages of the table file it writes
 * (POSIX_FADV_DONTNEED every MiB and when it finishes), so the ingest that
 * follows reads the footer, index and filter back from the disk, and every
 * lookup into the fresh file does too: on a bulk load the writer threads sat
 * idle in those reads. This definition takes the place of libc's for the
 * process (RocksDB calls it through the dynamic linker): on a thread inside
 * sv_db_sst_*, "drop these pages" becomes "start writing them out"
 * (sync_file_range, what DONTNEED also did to dirty pages), and the pages
 * stay cached; every other call is passed to the kernel unchanged. */
static _Thread_local bool sst_keep_pages;

#if defined(__x86_64__) || defined(__aarch64__) /* fadvise64's arguments in this order (64-bit ABIs) */
int posix_fadvise(int fd, off_t off, off_t len, int advice)
{
    if (sst_keep_pages && advice == POSIX_FADV_DONTNEED) {
        (void)sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE);
        return 0;
    }
    long rc = syscall(SYS_fadvise64, fd, (long)off, (long)len, advice);
    return rc < 0 ? errno : 0;
}
#endif

int sv_db_sst_open(sv_engine *e, const char *path, sv_db_sst **out, sv_err *err)
{
    *out = NULL;
    sv_db_sst *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return sv_fail(err, SV_ENOMEM, "out of memory opening a table file");
    }
    w->w = rocksdb_sstfilewriter_create(e->envo, e->opts_sst);
    char *rerr = NULL;
    rocksdb_sstfilewriter_open(w->w, path, &rerr);
    if (rerr) {
        sv_db_sst_free(w);
        return rocks_fail(err, rerr, "cannot create table file", path);
    }
    *out = w;
    return 0;
}

int sv_db_sst_put(sv_db_sst *w, const void *key, size_t klen, const void *val, size_t vlen, sv_err *err)
{
    char *rerr = NULL;
    sst_keep_pages = true;
    rocksdb_sstfilewriter_put(w->w, key, klen, val, vlen, &rerr);
    sst_keep_pages = false;
    return rerr ? rocks_fail(err, rerr, "cannot write table file", w->path) : 0;
}

int sv_db_sst_finish(sv_db_sst *w, sv_err *err)
{
    char *rerr = NULL;
    sst_keep_pages = true;
    rocksdb_sstfilewriter_finish(w->w, &rerr);
    sst_keep_pages = false;
    return rerr ? rocks_fail(err, rerr, "cannot finish table file", w->path) : 0;
}

void sv_db_sst_free(sv_db_sst *w)
{
    if (!w)
        return;
    if (w->w)
        rocksdb_sstfilewriter_destroy(w->w);
    free(w->path);
    free(w);
}

int sv_db_ingest(sv_db *db, const char *const *paths, size_t n, sv_err *err)
{
    if (check_writable(db, err))
        return SV_ESTATE;
    char *rerr = NULL;
    rocksdb_ingest_external_file(db->db, paths, n, db->eng->ingest, &rerr);
    return rerr ? rocks_fail(err, rerr, "cannot ingest table files into", db->path) : 0;
}

int sv_db_set_bulk(sv_db *db, bool on, sv_err *err)
{
    if (check_writable(db, err))
        return SV_ESTATE;
    /* Off: RocksDB's defaults for these (the options above leave them). */
    const char *keys[3] = {"disable_auto_compactions", "level0_slowdown_writes_trigger",
                           "level0_stop_writes_trigger"};
    const char *vals[3] = {on ? "true" : "false", on ? "1000000" : "20", on ? "1000000" : "36"};
    char *rerr = NULL;
    rocksdb_set_options(db->db, 3, keys, vals, &rerr);
    return rerr ? rocks_fail(err, rerr, "cannot change the compaction mode of", db->path) : 0;
}

uint64_t sv_db_latest_seq(sv_db *db) { return rocksdb_get_latest_sequence_number(db->db); }

sv_db_iter *sv_db_iter_new(sv_db *db)
{
    sv_db_iter *it = calloc(1, sizeof *it);
    if (!it)
        return NULL;
    /* Own read options: the iterator pins the implicit snapshot taken here. */
    it->ro = rocksdb_readoptions_create();
    it->it = rocksdb_create_iterator(db->db, it->ro);
    return it;
}

void sv_db_iter_seek(sv_db_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek(it->it, key, klen);
}

void sv_db_iter_seek_first(sv_db_iter *it)
{
    rocksdb_iter_seek_to_first(it->it);
}

bool sv_db_iter_valid(const sv_db_iter *it)
{
    return rocksdb_iter_valid(it->it) != 0;
}

void sv_db_iter_next(sv_db_iter *it)
{
    rocksdb_iter_next(it->it);
}

const char *sv_db_iter_key(const sv_db_iter *it, size_t *klen)
{
    size_t n = 0;
    const char *k = rocksdb_iter_key(it->it, &n);
    if (klen)
        *klen = n;
    return k;
}

const char *sv_db_iter_value(const sv_db_iter *it, size_t *vlen)
{
    size_t n = 0;
    const char *v = rocksdb_iter_value(it->it, &n);
    if (vlen)
        *vlen = n;
    return v;
}

int sv_db_iter_status(const sv_db_iter *it, sv_err *err)
{
    char *rerr = NULL;
    rocksdb_iter_get_error(it->it, &rerr);
    return rerr ? rocks_fail(err, rerr, "iteration failed", NULL) : 0;
}

void sv_db_iter_free(sv_db_iter *it)
{
    if (!it)
        return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ro);
    free(it);
}

static int parent_dir(const char *path, char *out, size_t outlen)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    while (n > 0 && path[n - 1] != '/')
        n--;
    while (n > 1 && path[n - 1] == '/')
        n--;
    if (n == 0) {
        snprintf(out, outlen, ".");
        return 0;
    }
    if (n >= outlen)
        return -1;
    memcpy(out, path, n);
    out[n] = 0;
    return 0;
}

/* Creates the parent of dst and checks that dst itself does not exist. */
static int prepare_dst(const char *dst_dir, sv_err *err)
{
    if (!dst_dir || !*dst_dir)
        return sv_fail(err, SV_EINVAL, "checkpoint needs a destination directory");
    if (sv_path_exists(dst_dir))
        return sv_fail(err, SV_EEXIST, "checkpoint destination %s already exists; choose a new directory", dst_dir);
    char parent[4096];
    if (parent_dir(dst_dir, parent, sizeof parent) != 0)
        return sv_fail(err, SV_EINVAL, "checkpoint destination path too long");
    return sv_mkdirs(parent, err);
}

int sv_db_checkpoint(sv_db *db, const char *dst_dir, sv_err *err)
{
    int rc = prepare_dst(dst_dir, err);
    if (rc)
        return rc;
    char *rerr = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(db->db, &rerr);
    if (rerr)
        return rocks_fail(err, rerr, "cannot create checkpoint of", db->path);
    /* log_size_for_flush = 0: always flush the memtable first, so the
     * checkpoint is (nearly) all immutable SSTs — hard links, content-
     * addressable by snapshots, and no WAL replay when it is opened. WAL
     * written after the flush is still copied, so nothing acknowledged
     * before this call is missing. */
    rocksdb_checkpoint_create(cp, dst_dir, 0, &rerr);
    rocksdb_checkpoint_object_destroy(cp);
    if (rerr)
        return rocks_fail(err, rerr, "checkpoint failed into", dst_dir);
    char parent[4096];
    if (parent_dir(dst_dir, parent, sizeof parent) == 0)
        (void)sv_fsync_dir(parent, NULL);
    return 0;
}

static int copy_file(const char *src, const char *dst, sv_err *err)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return sv_fail(err, SV_EIO, "cannot open %s: %s", src, strerror(errno));
    int outfd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (outfd < 0) {
        close(in);
        return sv_fail(err, SV_EIO, "cannot create %s: %s", dst, strerror(errno));
    }
    char buf[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sv_fail(err, SV_EIO, "cannot read %s: %s", src, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(outfd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = sv_fail(err, SV_EIO, "cannot write %s: %s", dst, strerror(errno));
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    if (rc == 0 && fsync(outfd) != 0)
        rc = sv_fail(err, SV_EIO, "fsync of %s failed: %s", dst, strerror(errno));
    close(in);
    close(outfd);
    return rc;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !strcmp(s + n - m, suf);
}

int sv_db_checkpoint_closed(const char *src_dir, const char *dst_dir, sv_err *err)
{
    if (!src_dir || !is_db_dir(src_dir))
        return sv_fail(err, SV_ENOTFOUND, "no database at %s (missing CURRENT file)", src_dir ? src_dir : "");
    int rc = prepare_dst(dst_dir, err);
    if (rc)
        return rc;
    /* Build under a temporary name and rename, so a crash never leaves a
     * half-copied directory that looks like a valid checkpoint. */
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", dst_dir, (int)getpid()) >= sizeof tmp)
        return sv_fail(err, SV_EINVAL, "checkpoint destination path too long");
    if (sv_rmtree(tmp, err) != 0)
        return err ? err->code : SV_EIO;
    if (mkdir(tmp, 0755) != 0)
        return sv_fail(err, SV_EIO, "cannot create %s: %s", tmp, strerror(errno));
    DIR *d = opendir(src_dir);
    if (!d) {
        rc = sv_fail(err, SV_EIO, "cannot list %s: %s", src_dir, strerror(errno));
        goto fail;
    }
    struct dirent *ent;
    while (rc == 0 && (ent = readdir(d))) {
        const char *name = ent->d_name;
        /* LOCK is recreated on open; LOG* is RocksDB's text log; *.dbtmp are
         * leftovers of an interrupted OPTIONS/CURRENT write. */
        if (name[0] == '.' || !strcmp(name, "LOCK") || !strcmp(name, "LOG") || !strncmp(name, "LOG.old", 7) ||
            has_suffix(name, ".dbtmp"))
            continue;
        char s[4096], t[4096];
        if ((size_t)snprintf(s, sizeof s, "%s/%s", src_dir, name) >= sizeof s ||
            (size_t)snprintf(t, sizeof t, "%s/%s", tmp, name) >= sizeof t) {
            rc = sv_fail(err, SV_EINVAL, "path too long below %s", src_dir);
            break;
        }
        struct stat st;
        if (lstat(s, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (has_suffix(name, ".sst") || has_suffix(name, ".blob")) {
            if (link(s, t) == 0)
                continue;
            if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
                rc = sv_fail(err, SV_EIO, "cannot hard link %s to %s: %s", s, t, strerror(errno));
                break;
            }
        }
        /* CURRENT, MANIFEST-*, OPTIONS-*, IDENTITY and *.log change while a db
         * is open, so the checkpoint gets its own copies. */
        rc = copy_file(s, t, err);
    }
    closedir(d);
    if (rc)
        goto fail;
    if ((rc = sv_fsync_dir(tmp, err)) != 0)
        goto fail;
    if (rename(tmp, dst_dir) != 0) {
        rc = sv_fail(err, SV_EIO, "cannot rename %s to %s: %s", tmp, dst_dir, strerror(errno));
        goto fail;
    }
    char parent[4096];
    if (parent_dir(dst_dir, parent, sizeof parent) == 0)
        (void)sv_fsync_dir(parent, NULL);
    return 0;
fail:
    (void)sv_rmtree(tmp, NULL);
    return rc;
}

int sv_db_flush(sv_db *db, sv_err *err)
{
    if (db->readonly)
        return 0;
    char *rerr = NULL;
    rocksdb_flush(db->db, db->eng->fo, &rerr);
    return rerr ? rocks_fail(err, rerr, "flush failed in", db->path) : 0;
}

int64_t sv_db_disk_bytes(sv_db *db)
{
    uint64_t sst = 0;
    if (rocksdb_property_int(db->db, "rocksdb.total-sst-files-size", &sst) != 0)
        sst = 0;
    /* No property reports live WAL bytes in 7.8; the *.log files are it. */
    int64_t wal = 0;
    DIR *d = opendir(db->path);
    if (d) {
        struct dirent *ent;
        while ((ent = readdir(d))) {
            if (!has_suffix(ent->d_name, ".log"))
                continue;
            char p[4096];
            struct stat st;
            if ((size_t)snprintf(p, sizeof p, "%s/%s", db->path, ent->d_name) < sizeof p && stat(p, &st) == 0)
                wal += st.st_size;
        }
        closedir(d);
    }
    return (int64_t)sst + wal;
}
