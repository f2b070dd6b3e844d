#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"

static char g_root[1024];

static void test_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_root, name);
}

/* Object-like key: 16 bytes, big-endian counter in the last 8. */
static void key_of(uint64_t i, uint8_t k[16])
{
    memset(k, 0xA5, 8);
    for (int b = 0; b < 8; b++)
        k[15 - b] = (uint8_t)(i >> (8 * b));
}

static void val_of(uint64_t i, int gen, char *v, size_t n)
{
    snprintf(v, n, "value-%llu-gen%d-padding-padding-padding", (unsigned long long)i, gen);
}

static sv_engine *new_engine(void)
{
    sv_engine *e = NULL;
    sv_err err = {0};
    sv_engine_opts o = {.block_cache_bytes = 32 << 20, .write_buffer_bytes = 4 << 20};
    assert_int_equal(sv_engine_new(&o, &e, &err), 0);
    return e;
}

static void basic_ops(void **state)
{
    char dir[1200];
    test_dir(dir, sizeof dir, "basic");
    sv_engine *e = new_engine();
    sv_err err = {0};
    sv_db *db = NULL;
    assert_int_equal(sv_db_open(e, dir, false, &db, &err), SV_ENOTFOUND);
    assert_int_equal(sv_db_open(e, dir, true, &db, &err), 0);

    sv_db *db2 = NULL;
    assert_int_equal(sv_db_open(e, dir, false, &db2, &err), SV_ECONFLICT);

    uint8_t k[16];
    key_of(1, k);
    char *v = NULL;
    size_t vl = 0;
    assert_int_equal(sv_db_get(db, k, 16, &v, &vl, &err), SV_ENOTFOUND);
    assert_int_equal(sv_db_put(db, k, 16, "hello", 5, false, &err), 0);
    assert_int_equal(sv_db_get(db, k, 16, &v, &vl, &err), 0);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "hello", 5);
    free(v);
    assert_int_equal(sv_db_put(db, k, 16, "", 0, true, &err), 0); /* empty value is a value */
    assert_int_equal(sv_db_get(db, k, 16, &v, &vl, &err), 0);
    assert_int_equal(vl, 0);
    free(v);
    assert_int_equal(sv_db_delete(db, k, 16, true, &err), 0);
    assert_int_equal(sv_db_get(db, k, 16, &v, &vl, &err), SV_ENOTFOUND);
    assert_int_equal(sv_db_delete(db, k, 16, false, &err), 0); /* absent is fine */

    /* batch: atomic, count, clear */
    sv_db_batch *b = sv_db_batch_new();
    for (uint64_t i = 0; i < 100; i++) {
        char val[64];
        key_of(i, k);
        val_of(i, 0, val, sizeof val);
        sv_db_batch_put(b, k, 16, val, strlen(val));
    }
    key_of(50, k);
    sv_db_batch_delete(b, k, 16);
    assert_int_equal(sv_db_batch_count(b), 101);
    assert_int_equal(sv_db_write(db, b, true, &err), 0);
    sv_db_batch_clear(b);
    assert_int_equal(sv_db_batch_count(b), 0);
    sv_db_batch_free(b);
    assert_int_equal(sv_db_get(db, k, 16, &v, &vl, &err), SV_ENOTFOUND);
    key_of(51, k);
    assert_int_equal(sv_db_get(db, k, 16, &v, &vl, &err), 0);
    free(v);
    assert_true(sv_db_disk_bytes(db) > 0);

    /* reopen (close flushes), then read-only refuses writes */
    sv_db_close(db);
    assert_int_equal(sv_db_open_readonly(e, dir, &db, &err), 0);
    assert_int_equal(sv_db_get(db, k, 16, &v, &vl, &err), 0);
    free(v);
    assert_int_equal(sv_db_put(db, k, 16, "x", 1, false, &err), SV_ESTATE);
    sv_db_close(db);
    sv_db_close(NULL);
    sv_engine_free(e);
}

static void iterator_order(void **state)
{
    char dir[1200];
    test_dir(dir, sizeof dir, "iter");
    sv_engine *e = new_engine();
    sv_err err = {0};
    sv_db *db = NULL;
    assert_int_equal(sv_db_open(e, dir, true, &db, &err), 0);
    /* insert in scrambled order */
    for (uint64_t i = 0; i < 1000; i++) {
        uint64_t j = (i * 7919) % 1000;
        uint8_t k[16];
        char val[64];
        key_of(j * 2, k); /* even keys only */
        val_of(j * 2, 0, val, sizeof val);
        assert_int_equal(sv_db_put(db, k, 16, val, strlen(val), false, &err), 0);
        if (i == 500)
            assert_int_equal(sv_db_flush(db, &err), 0); /* half in SST, half in memtable */
    }
    uint8_t meta[20];
    memset(meta, 0xFF, 16);
    memcpy(meta + 16, "meta", 4);
    assert_int_equal(sv_db_put(db, meta, sizeof meta, "m", 1, false, &err), 0);
    uint8_t maxk[16];
    memset(maxk, 0xFF, 16);
    assert_int_equal(sv_db_put(db, maxk, 16, "max", 3, false, &err), 0);

    sv_db_iter *it = sv_db_iter_new(db);
    /* writes after creation are invisible to the iterator (implicit snapshot) */
    uint8_t k[16];
    key_of(3, k);
    assert_int_equal(sv_db_put(db, k, 16, "late", 4, false, &err), 0);

    int n = 0;
    uint64_t prev = 0;
    for (sv_db_iter_seek_first(it); sv_db_iter_valid(it); sv_db_iter_next(it)) {
        size_t kl, vl;
        const char *kk = sv_db_iter_key(it, &kl);
        const char *vv = sv_db_iter_value(it, &vl);
        if (n < 1000) {
            assert_int_equal(kl, 16);
            uint64_t x = 0;
            for (int b = 8; b < 16; b++)
                x = (x << 8) | (uint8_t)kk[b];
            assert_int_equal(x % 2, 0);
            if (n > 0)
                assert_true(x > prev);
            prev = x;
            char val[64];
            val_of(x, 0, val, sizeof val);
            assert_int_equal(vl, strlen(val));
            assert_memory_equal(vv, val, vl);
        } else if (n == 1000) {
            assert_int_equal(kl, 16); /* the all-0xFF object key sorts before meta keys */
            assert_memory_equal(kk, maxk, 16);
        } else {
            assert_int_equal(kl, sizeof meta);
            assert_memory_equal(kk, meta, sizeof meta);
        }
        n++;
    }
    assert_int_equal(n, 1002);
    assert_int_equal(sv_db_iter_status(it, &err), 0);

    /* seek lands on first key >= target */
    key_of(501, k);
    sv_db_iter_seek(it, k, 16);
    assert_true(sv_db_iter_valid(it));
    size_t kl;
    const char *kk = sv_db_iter_key(it, &kl);
    key_of(502, k);
    assert_memory_equal(kk, k, 16);
    sv_db_iter_seek(it, meta, sizeof meta);
    assert_true(sv_db_iter_valid(it));
    sv_db_iter_next(it);
    assert_false(sv_db_iter_valid(it));
    sv_db_iter_free(it);

    /* a new iterator sees the late write */
    it = sv_db_iter_new(db);
    key_of(3, k);
    sv_db_iter_seek(it, k, 16);
    assert_true(sv_db_iter_valid(it));
    size_t vl;
    assert_memory_equal(sv_db_iter_value(it, &vl), "late", 4);
    sv_db_iter_free(it);
    sv_db_close(db);
    sv_engine_free(e);
}

/* Every key in [0, n) with generation gen, and nothing else. */
static void expect_exactly(sv_db *db, uint64_t n, int gen)
{
    sv_db_iter *it = sv_db_iter_new(db);
    uint64_t i = 0;
    for (sv_db_iter_seek_first(it); sv_db_iter_valid(it); sv_db_iter_next(it), i++) {
        uint8_t k[16];
        char val[64];
        key_of(i, k);
        val_of(i, gen, val, sizeof val);
        size_t kl, vl;
        const char *kk = sv_db_iter_key(it, &kl);
        const char *vv = sv_db_iter_value(it, &vl);
        assert_int_equal(kl, 16);
        assert_memory_equal(kk, k, 16);
        assert_int_equal(vl, strlen(val));
        assert_memory_equal(vv, val, vl);
    }
    assert_int_equal(i, n);
    sv_db_iter_free(it);
}

struct writer {
    sv_db *db;
    atomic_ullong acked; /* keys [base, base+acked) are acknowledged */
    uint64_t base;
    atomic_bool stop;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    sv_err err = {0};
    for (uint64_t i = w->base; !atomic_load(&w->stop); i++) {
        uint8_t k[16];
        char val[64];
        key_of(i, k);
        val_of(i, 0, val, sizeof val);
        if (sv_db_put(w->db, k, 16, val, strlen(val), false, &err) != 0)
            break;
        atomic_store(&w->acked, i - w->base + 1);
    }
    return NULL;
}

static void checkpoint_open(void **state)
{
    char dir[1200], cp[1200], cp2[1200];
    test_dir(dir, sizeof dir, "cp-src");
    test_dir(cp, sizeof cp, "cp-dst/one");
    test_dir(cp2, sizeof cp2, "cp-dst/two");
    sv_engine *e = new_engine();
    sv_err err = {0};
    sv_db *db = NULL;
    assert_int_equal(sv_db_open(e, dir, true, &db, &err), 0);
    for (uint64_t i = 0; i < 2000; i++) {
        uint8_t k[16];
        char val[64];
        key_of(i, k);
        val_of(i, 1, val, sizeof val);
        assert_int_equal(sv_db_put(db, k, 16, val, strlen(val), false, &err), 0);
        if (i == 999)
            assert_int_equal(sv_db_flush(db, &err), 0);
    }
    assert_int_equal(sv_db_checkpoint(db, cp, &err), 0);
    assert_int_equal(sv_db_checkpoint(db, cp, &err), SV_EEXIST);
    /* the source moves on: overwrite, delete, add */
    for (uint64_t i = 0; i < 3000; i++) {
        uint8_t k[16];
        char val[64];
        key_of(i, k);
        val_of(i, 2, val, sizeof val);
        if (i % 3 == 0)
            assert_int_equal(sv_db_delete(db, k, 16, false, &err), 0);
        else
            assert_int_equal(sv_db_put(db, k, 16, val, strlen(val), false, &err), 0);
    }
    sv_db *c = NULL;
    assert_int_equal(sv_db_open_readonly(e, cp, &c, &err), 0);
    expect_exactly(c, 2000, 1);
    sv_db_close(c);

    /* checkpoint while another thread keeps writing: everything acknowledged
     * before the call is in it */
    struct writer w = {.db = db, .base = 10000};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    while (atomic_load(&w.acked) < 500)
        sv_sleep_ms(1);
    uint64_t before = atomic_load(&w.acked);
    assert_int_equal(sv_db_checkpoint(db, cp2, &err), 0);
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    assert_int_equal(sv_db_open(e, cp2, false, &c, &err), 0); /* a checkpoint is a normal db */
    for (uint64_t i = 0; i < before; i++) {
        uint8_t k[16];
        key_of(w.base + i, k);
        char *v;
        size_t vl;
        assert_int_equal(sv_db_get(c, k, 16, &v, &vl, &err), 0);
        free(v);
    }
    sv_db_close(c);
    sv_db_close(db);
    sv_engine_free(e);
}

/* ---- kill -9: a child process writes and reports acks through a pipe ---- */

static int kill9_child(const char *dir, int fd)
{
    sv_engine *e = NULL;
    sv_err err = {0};
    if (sv_engine_new(NULL, &e, &err) != 0)
        return 2;
    sv_db *db = NULL;
    if (sv_db_open(e, dir, true, &db, &err) != 0)
        return 3;
    for (uint32_t i = 0; i < 10000000; i++) {
        uint8_t k[16];
        char val[64];
        key_of(i, k);
        val_of(i, 0, val, sizeof val);
        if (sv_db_put(db, k, 16, val, strlen(val), false, &err) != 0)
            return 4;
        if (write(fd, &i, sizeof i) != (ssize_t)sizeof i)
            return 5;
    }
    return 0;
}

static void kill9(void **state)
{
    char dir[1200], cp[1200];
    test_dir(dir, sizeof dir, "kill9");
    test_dir(cp, sizeof cp, "kill9-cp");
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* exec a fresh image: RocksDB's threads do not survive fork */
        close(p[0]);
        char fdbuf[16];
        snprintf(fdbuf, sizeof fdbuf, "%d", p[1]);
        execl("/proc/self/exe", "test_engine", "--kill9-child", dir, fdbuf, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    uint32_t last = 0, got = 0;
    bool killed = false;
    for (;;) {
        uint32_t x;
        ssize_t n = read(p[0], &x, sizeof x);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof x)
            break;
        assert_int_equal(x, got);
        last = x;
        got++;
        if (got == 20000 && !killed) {
            kill(pid, SIGKILL);
            killed = true;
        }
    }
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(killed);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    sv_err err = {0};
    /* capture the crashed, unopened db: its data is still only in the WAL */
    assert_int_equal(sv_db_checkpoint_closed(dir, cp, &err), 0);
    sv_engine *e = new_engine();
    const char *dirs[2] = {dir, cp};
    for (int d = 0; d < 2; d++) {
        sv_db *db = NULL;
        assert_int_equal(sv_db_open(e, dirs[d], false, &db, &err), 0);
        for (uint32_t i = 0; i <= last; i++) {
            uint8_t k[16];
            char val[64];
            key_of(i, k);
            val_of(i, 0, val, sizeof val);
            char *v;
            size_t vl;
            int rc = sv_db_get(db, k, 16, &v, &vl, &err);
            if (rc != 0)
                fail_msg("%s: acknowledged key %u of %u missing after kill -9", dirs[d], i, last);
            assert_int_equal(vl, strlen(val));
            assert_memory_equal(v, val, vl);
            free(v);
        }
        sv_db_close(db);
    }
    sv_engine_free(e);
}

static void checkpoint_closed(void **state)
{
    char dir[1200], cp[1200];
    test_dir(dir, sizeof dir, "cpc-src");
    test_dir(cp, sizeof cp, "cpc-dst");
    sv_engine *e = new_engine();
    sv_err err = {0};
    sv_db *db = NULL;
    assert_int_equal(sv_db_open(e, dir, true, &db, &err), 0);
    for (uint64_t i = 0; i < 3000; i++) {
        uint8_t k[16];
        char val[64];
        key_of(i, k);
        val_of(i, 3, val, sizeof val);
        assert_int_equal(sv_db_put(db, k, 16, val, strlen(val), false, &err), 0);
        if (i % 1000 == 999)
            assert_int_equal(sv_db_flush(db, &err), 0); /* several SSTs */
    }
    sv_db_close(db);
    assert_int_equal(sv_db_checkpoint_closed(dir, cp, &err), 0);
    assert_int_equal(sv_db_checkpoint_closed(dir, cp, &err), SV_EEXIST);
    assert_int_equal(sv_db_checkpoint_closed("/nonexistent/db", cp, &err), SV_ENOTFOUND);
    /* the source changes after the capture; the checkpoint does not */
    assert_int_equal(sv_db_open(e, dir, false, &db, &err), 0);
    for (uint64_t i = 0; i < 3000; i += 2) {
        uint8_t k[16];
        key_of(i, k);
        assert_int_equal(sv_db_delete(db, k, 16, false, &err), 0);
    }
    sv_db_close(db);
    assert_int_equal(sv_db_open(e, cp, false, &db, &err), 0);
    expect_exactly(db, 3000, 3);
    sv_db_close(db);
    sv_engine_free(e);
}

static int64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    fclose(f);
    return (int64_t)res * sysconf(_SC_PAGESIZE);
}

#define NSHARDS 300
#define NOPENERS 6

struct opener {
    sv_engine *e;
    sv_db **dbs;
    int from, to;
    bool close;
    int rc;
};

/* Opening is fsync-bound (MANIFEST, CURRENT, OPTIONS, directory), so
 * several threads overlap the waits, as a server loading tenants would. */
static void *opener_main(void *arg)
{
    struct opener *o = arg;
    sv_err err = {0};
    for (int i = o->from; i < o->to && o->rc == 0; i++) {
        if (o->close) {
            uint8_t k[16];
            char *v;
            size_t vl;
            key_of(7, k);
            o->rc = sv_db_get(o->dbs[i], k, 16, &v, &vl, &err);
            if (o->rc == 0)
                free(v);
            sv_db_close(o->dbs[i]);
            continue;
        }
        char dir[1200], name[64];
        snprintf(name, sizeof name, "shards/s%03d", i);
        test_dir(dir, sizeof dir, name);
        o->rc = sv_db_open(o->e, dir, true, &o->dbs[i], &err);
        if (o->rc == 0) {
            uint8_t k[16];
            key_of(7, k);
            o->rc = sv_db_put(o->dbs[i], k, 16, "v", 1, false, &err);
        }
    }
    return NULL;
}

static void run_openers(sv_engine *e, sv_db **dbs, bool close)
{
    pthread_t th[NOPENERS];
    struct opener o[NOPENERS];
    for (int t = 0; t < NOPENERS; t++) {
        o[t] = (struct opener){.e = e, .dbs = dbs, .from = t * NSHARDS / NOPENERS,
                               .to = (t + 1) * NSHARDS / NOPENERS, .close = close};
        assert_int_equal(pthread_create(&th[t], NULL, opener_main, &o[t]), 0);
    }
    for (int t = 0; t < NOPENERS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(o[t].rc, 0);
    }
}

static void many_shards(void **state)
{
    /* default options: what a server uses */
    sv_engine *e = NULL;
    sv_err err = {0};
    assert_int_equal(sv_engine_new(NULL, &e, &err), 0);
    static sv_db *dbs[NSHARDS];
    int64_t rss0 = rss_bytes(), t0 = sv_mono_ns();
    run_openers(e, dbs, false);
    int64_t t1 = sv_mono_ns();
    int64_t rss1 = rss_bytes();
    int64_t per = (rss1 - rss0) / NSHARDS;
    print_message("%d open dbs, each with one write: RSS %+lld KiB total, %lld KiB per db\n", NSHARDS,
                  (long long)((rss1 - rss0) / 1024), (long long)(per / 1024));
#if defined(__SANITIZE_ADDRESS__)
    assert_true(per < 16 * 1024 * 1024);
#else
    assert_true(per < 2 * 1024 * 1024);
#endif
    run_openers(e, dbs, true);
    print_message("open+put %.2f s, close %.2f s\n", (double)(t1 - t0) / 1e9, (double)(sv_mono_ns() - t1) / 1e9);
    sv_engine_free(e);
}

static int64_t g_t0;
static int timer_start(void **state)
{
    g_t0 = sv_mono_ns();
    return 0;
}
static int timer_stop(void **state)
{
    print_message("  (%.2f s)\n", (double)(sv_mono_ns() - g_t0) / 1e9);
    return 0;
}
#define T(f) cmocka_unit_test_setup_teardown(f, timer_start, timer_stop)

/* Share of a file's pages in the page cache. */
static double resident(const char *path)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    size_t pages = ((size_t)st.st_size + 4095) / 4096;
    unsigned char *v = malloc(pages);
    assert_non_null(v);
    assert_int_equal(mincore(m, (size_t)st.st_size, v), 0);
    size_t in = 0;
    for (size_t i = 0; i < pages; i++)
        in += v[i] & 1;
    free(v);
    munmap(m, (size_t)st.st_size);
    close(fd);
    return (double)in / (double)pages;
}

/* A table file written for a bulk load: ingested whole (every key readable,
 * the sequence number moved), and its pages still cached when the writer
 * finished (RocksDB's writer drops them; the ingest reads them back). */
static void table_file(void **state)
{
    char dir[1200], path[1300], path2[1300];
    test_dir(dir, sizeof dir, "sst");
    snprintf(path, sizeof path, "%s-1.sst", dir);
    snprintf(path2, sizeof path2, "%s-2.sst", dir);
    sv_engine *e = new_engine();
    sv_err err = {0};
    sv_db *db = NULL;
    assert_int_equal(sv_db_open(e, dir, true, &db, &err), 0);
    uint64_t seq0 = sv_db_latest_seq(db);
    static char val[2048];
    memset(val, 'v', sizeof val);
    for (int f = 0; f < 2; f++) {
        sv_db_sst *w = NULL;
        assert_int_equal(sv_db_sst_open(e, f ? path2 : path, &w, &err), 0);
        for (uint64_t i = 0; i < 4000; i++) { /* 8 MB: RocksDB drops pages every MiB */
            uint8_t k[16];
            key_of(i * 2 + (uint64_t)f, k);
            snprintf(val, 32, "value %llu", (unsigned long long)(i * 2 + (uint64_t)f));
            assert_int_equal(sv_db_sst_put(w, k, 16, val, sizeof val, &err), 0);
        }
        assert_int_equal(sv_db_sst_finish(w, &err), 0);
        sv_db_sst_free(w);
    }
    assert_true(resident(path) > 0.9);
    /* the control: the same advice from outside a table writer drops them */
    int fd = open(path2, O_RDONLY);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    close(fd);
    assert_true(resident(path2) < 0.5);
    const char *paths[2] = {path, path2};
    assert_int_equal(sv_db_ingest(db, paths, 1, &err), 0);
    assert_int_equal(sv_db_ingest(db, paths + 1, 1, &err), 0);
    assert_true(sv_db_latest_seq(db) > seq0);
    for (uint64_t i = 0; i < 8000; i += 997) {
        uint8_t k[16];
        key_of(i, k);
        char *v = NULL;
        size_t vlen = 0;
        assert_int_equal(sv_db_get(db, k, 16, &v, &vlen, &err), 0);
        char want[32];
        snprintf(want, sizeof want, "value %llu", (unsigned long long)i);
        assert_int_equal(vlen, sizeof val);
        assert_string_equal(v, want);
        free(v);
    }
    sv_db_close(db);
    sv_engine_free(e);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--kill9-child"))
        return kill9_child(argv[2], atoi(argv[3]));
    const char *base = getenv("SV_TEST_TMP");
    snprintf(g_root, sizeof g_root, "%s/engine-%d", base && *base ? base : "/tmp", (int)getpid());
    sv_err err = {0};
    if (sv_mkdirs(g_root, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        T(basic_ops), T(iterator_order), T(checkpoint_open), T(checkpoint_closed), T(kill9), T(many_shards), T(table_file),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        sv_rmtree(g_root, NULL);
    return rc;
}
