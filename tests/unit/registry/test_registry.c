#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test_root.h"
#include "registry.h"

static char g_root[1024];

/* ---- a fake mount ------------------------------------------------------------------ */

typedef struct fake {
    int nfiles;
    int64_t file_bytes;
    atomic_int fetches, sizes, concurrent, max_concurrent;
    atomic_int slow_ms;
    atomic_int fail;
    const char *watch;         /* a shard whose fetches are counted apart */
    atomic_int watch_fetches;
} fake;

static int fake_size(void *self, const char *c, const char *s, int64_t *bytes, sv_err *err)
{
    fake *f = self;
    atomic_fetch_add(&f->sizes, 1);
    *bytes = f->nfiles * f->file_bytes;
    return 0;
}

static int fake_fetch(void *self, const char *c, const char *s, const char *dir, _Atomic int64_t *progress,
                      sv_err *err)
{
    fake *f = self;
    atomic_fetch_add(&f->fetches, 1);
    if (f->watch && !strcmp(f->watch, s))
        atomic_fetch_add(&f->watch_fetches, 1);
    int now = atomic_fetch_add(&f->concurrent, 1) + 1;
    int m = atomic_load(&f->max_concurrent);
    while (now > m && !atomic_compare_exchange_weak(&f->max_concurrent, &m, now))
        ;
    if (atomic_load(&f->slow_ms))
        sv_sleep_ms(atomic_load(&f->slow_ms));
    int rc = 0;
    if (atomic_load(&f->fail)) {
        rc = sv_fail(err, SV_EIO, "fake: remote unreachable for %s/%s", c, s);
    } else {
        char *buf = malloc((size_t)f->file_bytes);
        memset(buf, 'x', (size_t)f->file_bytes);
        for (int i = 0; i < f->nfiles && !rc; i++) {
            char p[1200];
            snprintf(p, sizeof p, "%s/part-%d", dir, i);
            FILE *fp = fopen(p, "wb");
            if (!fp || fwrite(buf, 1, (size_t)f->file_bytes, fp) != (size_t)f->file_bytes)
                rc = sv_fail(err, SV_EIO, "fake: cannot write %s", p);
            if (fp)
                fclose(fp);
            atomic_fetch_add(progress, f->file_bytes);
        }
        free(buf);
    }
    atomic_fetch_sub(&f->concurrent, 1);
    return rc;
}

static sv_registry_mount mount_of(fake *f)
{
    return (sv_registry_mount){.self = f, .size = fake_size, .fetch = fake_fetch};
}

/* ---- helpers -------------------------------------------------------------------------- */

typedef struct env {
    char dir[1100], cache[1200];
    sv_catalog *cat;
    sv_registry *r;
    fake f;
    sv_registry_opts o;
} env;

static sv_catalog *open_cat(const char *dir)
{
    char url[1300];
    snprintf(url, sizeof url, "embedded://%s/cat", dir);
    sv_catalog *c = NULL;
    sv_err err = {0};
    if (sv_catalog_open(url, &c, &err))
        fail_msg("open %s: %s", url, err.msg);
    return c;
}

static void env_open(env *e)
{
    sv_err err = {0};
    e->o.cache_dir = e->cache;
    sv_registry_mount m = mount_of(&e->f);
    e->o.mounts[SV_SHARD_SRC_OFFLOADED] = &m;
    if (sv_registry_open(&e->o, e->cat, &e->r, &err))
        fail_msg("registry open: %s", err.msg);
}

static env *env_new(const char *name, int64_t quota)
{
    env *e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/%s", g_root, name);
    snprintf(e->cache, sizeof e->cache, "%s/cache", e->dir);
    sv_err err = {0};
    sv_rmtree(e->dir, &err);
    assert_int_equal(sv_mkdirs(e->dir, &err), 0);
    e->cat = open_cat(e->dir);
    e->f.nfiles = 2;
    e->f.file_bytes = 500;
    e->o.cache_quota_bytes = quota;
    env_open(e);
    return e;
}

static void env_free(env *e)
{
    sv_registry_close(e->r);
    sv_catalog_close(e->cat);
    free(e);
}

static void reg(env *e, const char *c, const char *s)
{
    sv_err err = {0};
    if (sv_registry_register(e->r, c, s, SV_SHARD_SRC_OFFLOADED, 0, &err))
        fail_msg("register %s/%s: %s", c, s, err.msg);
}

/* The shard's entry in sv_registry_shards_json (borrowed from *all, which
 * the caller frees). */
static json_t *shard_json(env *e, const char *c, const char *s, json_t **all)
{
    sv_err err = {0};
    assert_int_equal(sv_registry_shards_json(e->r, c, NULL, all, &err), 0);
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(*all, "shards"), i, v) if (!strcmp(json_string_value(json_object_get(v, "shard")), s))
        return v;
    fail_msg("shard %s/%s not listed", c, s);
    return NULL;
}

static char *state_of(env *e, const char *c, const char *s)
{
    json_t *all = NULL;
    json_t *v = shard_json(e, c, s, &all);
    char *st = strdup(json_string_value(json_object_get(v, "state")));
    json_decref(all);
    return st;
}

static void assert_state(env *e, const char *c, const char *s, const char *want)
{
    char *st = state_of(e, c, s);
    if (strcmp(st, want))
        fail_msg("%s/%s is %s, expected %s", c, s, st, want);
    free(st);
}

typedef struct acq {
    env *e;
    const char *c;
    char s[65];
    int64_t timeout_ms;
    int rc;
    sv_err err;
    sv_shard_ref *ref;
    int64_t elapsed_ms;
    char dir[1200];
    atomic_int *go;
} acq;

static void *acq_main(void *p)
{
    acq *a = p;
    if (a->go)
        while (!atomic_load(a->go))
            ;
    int64_t t0 = sv_mono_ns();
    a->rc = sv_registry_acquire(a->e->r, a->c, a->s, a->timeout_ms, &a->ref, &a->err);
    a->elapsed_ms = (sv_mono_ns() - t0) / 1000000;
    if (!a->rc)
        snprintf(a->dir, sizeof a->dir, "%s", sv_shard_ref_dir(a->ref));
    return NULL;
}

/* ---- single flight ---------------------------------------------------------------------- */

static void single_flight(void **state)
{
    env *e = env_new("single", 1 << 20);
    reg(e, "Books", "s1");
    atomic_store(&e->f.slow_ms, 100);
    enum { N = 100 };
    acq *a = calloc(N, sizeof *a);
    pthread_t th[N];
    atomic_int go = 0;
    for (int i = 0; i < N; i++) {
        a[i] = (acq){.e = e, .c = "Books", .timeout_ms = 10000, .go = &go};
        snprintf(a[i].s, sizeof a[i].s, "s1");
        pthread_create(&th[i], NULL, acq_main, &a[i]);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&e->f.fetches), 1);
    for (int i = 0; i < N; i++) {
        if (a[i].rc)
            fail_msg("acquirer %d: %s", i, a[i].err.msg);
        assert_string_equal(a[i].dir, a[0].dir);
    }
    char part[1300];
    snprintf(part, sizeof part, "%s/part-1", a[0].dir);
    assert_true(sv_path_exists(part));
    assert_non_null(strstr(a[0].dir, e->cache));
    assert_state(e, "Books", "s1", "SERVING");
    json_t *all = NULL;
    assert_int_equal(json_integer_value(json_object_get(shard_json(e, "Books", "s1", &all), "refs")), N);
    json_decref(all);
    for (int i = 0; i < N; i++)
        sv_registry_release(a[i].ref);
    assert_state(e, "Books", "s1", "AVAILABLE");
    sv_registry_stats st;
    sv_registry_stats(e->r, &st);
    assert_int_equal(st.cache_used_bytes, 1000);
    assert_int_equal(st.cache_reserved_bytes, 0);
    assert_int_equal(st.hydrated_bytes, 1000);
    /* a warm acquire is a hit and fetches nothing */
    sv_shard_ref *ref = NULL;
    sv_err err = {0};
    assert_int_equal(sv_registry_acquire(e->r, "Books", "s1", 1000, &ref, &err), 0);
    sv_registry_release(ref);
    assert_int_equal(atomic_load(&e->f.fetches), 1);
    sv_registry_stats(e->r, &st);
    assert_true(st.hits >= 1);
    /* unknown shard */
    assert_int_equal(sv_registry_acquire(e->r, "Books", "nope", 1000, &ref, &err), SV_ENOTFOUND);
    free(a);
    env_free(e);
}

/* ---- parked acquirers: deadlines, destroy ------------------------------------------------- */

static void parked_deadlines_and_destroy(void **state)
{
    env *e = env_new("parked", 1 << 20);
    reg(e, "Books", "slow");
    atomic_store(&e->f.slow_ms, 600);
    acq shortd = {.e = e, .c = "Books", .s = "slow", .timeout_ms = 50};
    acq longd = {.e = e, .c = "Books", .s = "slow", .timeout_ms = 10000};
    pthread_t t1, t2;
    pthread_create(&t2, NULL, acq_main, &longd);
    pthread_create(&t1, NULL, acq_main, &shortd);
    pthread_join(t1, NULL);
    assert_int_equal(shortd.rc, SV_ETIMEOUT);
    assert_non_null(strstr(shortd.err.msg, "not ready within 50 ms"));
    assert_true(shortd.elapsed_ms < 500);
    pthread_join(t2, NULL);
    if (longd.rc)
        fail_msg("long deadline: %s", longd.err.msg);
    sv_registry_release(longd.ref);
    assert_int_equal(atomic_load(&e->f.fetches), 1);

    /* destroy while parked: every parked acquirer hears SV_ENOTFOUND at once,
     * long before the 3 s fetch ends */
    reg(e, "Books", "doomed");
    atomic_store(&e->f.slow_ms, 3000);
    enum { N = 8 };
    acq a[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        a[i] = (acq){.e = e, .c = "Books", .s = "doomed", .timeout_ms = 20000};
        pthread_create(&th[i], NULL, acq_main, &a[i]);
    }
    sv_sleep_ms(200);
    sv_err err = {0};
    int64_t t0 = sv_mono_ns();
    assert_int_equal(sv_registry_destroy(e->r, "Books", "doomed", &err), 0);
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].rc, SV_ENOTFOUND);
    }
    int64_t waited = (sv_mono_ns() - t0) / 1000000;
    printf("destroy answered %d parked acquirers in %lld ms\n", N, (long long)waited);
    assert_true(waited < 1500);
    assert_int_equal(sv_registry_acquire(e->r, "Books", "doomed", 100, &a[0].ref, &err), SV_ENOTFOUND);
    /* destroying a shard in use is refused */
    atomic_store(&e->f.slow_ms, 0);
    sv_shard_ref *ref = NULL;
    assert_int_equal(sv_registry_acquire(e->r, "Books", "slow", 1000, &ref, &err), 0);
    assert_int_equal(sv_registry_destroy(e->r, "Books", "slow", &err), SV_ECONFLICT);
    char dir[1200];
    snprintf(dir, sizeof dir, "%s", sv_shard_ref_dir(ref));
    sv_registry_release(ref);
    assert_int_equal(sv_registry_destroy(e->r, "Books", "slow", &err), 0);
    assert_false(sv_path_exists(dir));
    sv_registry_stats st;
    sv_registry_stats(e->r, &st);
    assert_int_equal(st.cache_used_bytes, 0);
    env_free(e); /* waits for the 3 s fetch of the destroyed shard */
    char tmpl[1300];
    snprintf(tmpl, sizeof tmpl, "%s/parked/cache/Books/doomed", g_root);
    assert_false(sv_path_exists(tmpl));
}

/* ---- failures and recovery ------------------------------------------------------------------ */

static void failing_fetch_and_recovery(void **state)
{
    env *e = env_new("failing", 1 << 20);
    reg(e, "Books", "bad");
    atomic_store(&e->f.fail, 1);
    atomic_store(&e->f.slow_ms, 100);
    enum { N = 10 };
    acq a[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        a[i] = (acq){.e = e, .c = "Books", .s = "bad", .timeout_ms = 5000};
        pthread_create(&th[i], NULL, acq_main, &a[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(a[i].rc, SV_EIO);
        assert_non_null(strstr(a[i].err.msg, "remote unreachable"));
    }
    assert_int_equal(atomic_load(&e->f.fetches), 1);
    json_t *all = NULL;
    json_t *v = shard_json(e, "Books", "bad", &all);
    assert_string_equal(json_string_value(json_object_get(v, "state")), "ERRORED");
    assert_non_null(strstr(json_string_value(json_object_get(v, "lastError")), "remote unreachable"));
    json_decref(all);
    sv_registry_stats st;
    sv_registry_stats(e->r, &st);
    assert_int_equal(st.cache_reserved_bytes, 0);
    assert_int_equal(st.cache_used_bytes, 0);
    assert_int_equal(st.hydrations_failed, 1);
    /* ON_ACQUIRE (the default): the next acquire recovers once the mount works */
    atomic_store(&e->f.fail, 0);
    sv_shard_ref *ref = NULL;
    sv_err err = {0};
    if (sv_registry_acquire(e->r, "Books", "bad", 5000, &ref, &err))
        fail_msg("recovery: %s", err.msg);
    assert_int_equal(atomic_load(&e->f.fetches), 2);
    assert_state(e, "Books", "bad", "SERVING");
    sv_registry_release(ref);
    assert_state(e, "Books", "bad", "AVAILABLE");
    /* the event trail shows ERRORED -> RECOVERING -> AVAILABLE */
    sv_registry_event ev[64];
    size_t n = 0;
    assert_int_equal(sv_registry_events(e->r, 0, ev, 64, &n, NULL), 0);
    bool saw_recovering = false;
    for (size_t i = 0; i < n; i++)
        if (ev[i].from == SV_SHARD_ERRORED && ev[i].to == SV_SHARD_RECOVERING)
            saw_recovering = true;
    assert_true(saw_recovering);
    env_free(e);

    /* policy NONE: ERRORED stays until sv_registry_recover */
    e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/failing-none", g_root);
    snprintf(e->cache, sizeof e->cache, "%s/cache", e->dir);
    sv_rmtree(e->dir, &err);
    sv_mkdirs(e->dir, &err);
    e->cat = open_cat(e->dir);
    e->f.nfiles = 1;
    e->f.file_bytes = 100;
    e->o.cache_quota_bytes = 1 << 20;
    e->o.recover_on_start = SV_REGISTRY_RECOVER_NONE;
    env_open(e);
    reg(e, "Books", "bad");
    atomic_store(&e->f.fail, 1);
    assert_int_equal(sv_registry_acquire(e->r, "Books", "bad", 5000, &ref, &err), SV_EIO);
    atomic_store(&e->f.fail, 0);
    assert_int_equal(sv_registry_acquire(e->r, "Books", "bad", 5000, &ref, &err), SV_ESTATE);
    assert_int_equal(sv_registry_recover(e->r, "Books", "bad", &err), 0);
    for (int i = 0; i < 500; i++) {
        char *st2 = state_of(e, "Books", "bad");
        bool done = !strcmp(st2, "AVAILABLE");
        free(st2);
        if (done)
            break;
        sv_sleep_ms(10);
    }
    assert_state(e, "Books", "bad", "AVAILABLE");
    env_free(e);
}

/* ---- quota ---------------------------------------------------------------------------------- */

typedef struct churn {
    env *e;
    int seed, iters;
    atomic_int *stop;
    atomic_int failures;
} churn;

static void *churn_main(void *p)
{
    churn *c = p;
    unsigned seed = (unsigned)c->seed;
    for (int i = 0; i < c->iters; i++) {
        char s[32];
        snprintf(s, sizeof s, "s%d", rand_r(&seed) % 200);
        sv_shard_ref *ref = NULL;
        sv_err err = {0};
        if (sv_registry_acquire(c->e->r, "Churn", s, 20000, &ref, &err)) {
            fprintf(stderr, "churn acquire %s: %s\n", s, err.msg);
            atomic_fetch_add(&c->failures, 1);
            continue;
        }
        char part[1300];
        snprintf(part, sizeof part, "%s/part-0", sv_shard_ref_dir(ref));
        if (!sv_path_exists(part))
            atomic_fetch_add(&c->failures, 1);
        sv_registry_release(ref);
    }
    return NULL;
}

typedef struct sampler {
    env *e;
    atomic_int stop;
    int64_t samples, violations, max_held, pinned_lost;
} sampler;

static void *sampler_main(void *p)
{
    sampler *s = p;
    while (!atomic_load(&s->stop)) {
        sv_registry_stats st;
        sv_registry_stats(s->e->r, &st);
        int64_t held = st.cache_used_bytes + st.cache_reserved_bytes;
        if (held > st.cache_quota_bytes)
            s->violations++;
        if (held > s->max_held)
            s->max_held = held;
        s->samples++;
        sv_sleep_ms(1);
    }
    return NULL;
}

static void quota_churn(void **state)
{
    env *e = env_new("quota", 20 * 1000); /* 20 shards of 1000 bytes */
    for (int i = 0; i < 200; i++) {
        char s[32];
        snprintf(s, sizeof s, "s%d", i);
        reg(e, "Churn", s);
    }
    /* pin one hydrated shard: it must survive the churn (fetched once only) */
    e->f.watch = "s0";
    sv_shard_ref *ref = NULL;
    sv_err err = {0};
    assert_int_equal(sv_registry_acquire(e->r, "Churn", "s0", 5000, &ref, &err), 0);
    sv_registry_release(ref);
    assert_int_equal(sv_registry_pin(e->r, "Churn", "s0", &err), 0);
    sampler sm = {.e = e};
    pthread_t st;
    pthread_create(&st, NULL, sampler_main, &sm);
    churn c[4];
    pthread_t th[4];
    int64_t t0 = sv_mono_ns();
    for (int i = 0; i < 4; i++) {
        c[i] = (churn){.e = e, .seed = 1234 + i, .iters = 150};
        pthread_create(&th[i], NULL, churn_main, &c[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    atomic_store(&sm.stop, 1);
    pthread_join(st, NULL);
    sv_registry_stats stats;
    sv_registry_stats(e->r, &stats);
    printf("churn: 600 acquires in %lld ms, %lld fetches, %lld evictions, %lld samples, max held %lld of %lld\n",
           (long long)((sv_mono_ns() - t0) / 1000000), (long long)atomic_load(&e->f.fetches),
           (long long)stats.evictions, (long long)sm.samples, (long long)sm.max_held, (long long)stats.cache_quota_bytes);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&c[i].failures), 0);
    assert_true(sm.samples > 10);
    assert_int_equal(sm.violations, 0);
    assert_true(stats.evictions > 0);
    assert_true(stats.cache_used_bytes + stats.cache_reserved_bytes <= stats.cache_quota_bytes);
    assert_state(e, "Churn", "s0", "AVAILABLE");
    assert_int_equal(atomic_load(&e->f.watch_fetches), 1);
    json_t *all = NULL;
    json_t *v = shard_json(e, "Churn", "s0", &all); /* json_is_true evaluates its argument twice */
    assert_true(json_is_true(json_object_get(v, "pinned")));
    json_decref(all);

    /* gc evicts everything evictable, never the pinned shard */
    int64_t evicted = 0, freed = 0;
    assert_int_equal(sv_registry_gc(e->r, &evicted, &freed, &err), 0);
    assert_true(evicted > 0);
    assert_int_equal(freed, evicted * 1000);
    assert_state(e, "Churn", "s0", "AVAILABLE");
    sv_registry_stats(e->r, &stats);
    assert_int_equal(stats.cache_used_bytes, 1000);
    assert_int_equal(stats.shards[SV_SHARD_AVAILABLE], 1);
    assert_int_equal(sv_registry_unpin(e->r, "Churn", "s0", &err), 0);
    assert_int_equal(sv_registry_gc(e->r, &evicted, &freed, &err), 0);
    assert_int_equal(evicted, 1);
    assert_state(e, "Churn", "s0", "NEW");

    /* all 20 slots held: the next acquire waits, then SV_ENOSPACE naming the quota */
    sv_shard_ref *held[20];
    for (int i = 0; i < 20; i++) {
        char s[32];
        snprintf(s, sizeof s, "s%d", 100 + i);
        if (sv_registry_acquire(e->r, "Churn", s, 5000, &held[i], &err))
            fail_msg("hold %s: %s", s, err.msg);
    }
    acq over = {.e = e, .c = "Churn", .s = "s7", .timeout_ms = 300};
    acq_main(&over);
    assert_int_equal(over.rc, SV_ENOSPACE);
    assert_non_null(strstr(over.err.msg, "cache_quota_bytes=20000"));
    assert_true(over.elapsed_ms >= 250);
    assert_state(e, "Churn", "s7", "NEW");
    sv_registry_stats(e->r, &stats);
    assert_int_equal(stats.cache_reserved_bytes, 0);
    /* ... or succeeds if a release happens before its deadline */
    acq later = {.e = e, .c = "Churn", .s = "s7", .timeout_ms = 10000};
    pthread_t lt;
    pthread_create(&lt, NULL, acq_main, &later);
    sv_sleep_ms(200);
    sv_registry_release(held[0]);
    pthread_join(lt, NULL);
    if (later.rc)
        fail_msg("acquire after a release: %s", later.err.msg);
    assert_true(later.elapsed_ms >= 150);
    assert_state(e, "Churn", "s100", "NEW"); /* evicted to make room */
    sv_registry_release(later.ref);
    for (int i = 1; i < 20; i++)
        sv_registry_release(held[i]);
    /* a shard bigger than the whole quota fails at once */
    e->f.file_bytes = 20000;
    over = (acq){.e = e, .c = "Churn", .s = "s8", .timeout_ms = 5000};
    acq_main(&over);
    assert_int_equal(over.rc, SV_ENOSPACE);
    assert_non_null(strstr(over.err.msg, "cache_quota_bytes=20000"));
    e->f.file_bytes = 500;
    env_free(e);
}

/* ---- concurrency limit ------------------------------------------------------------------------ */

static void max_concurrent_hydrations(void **state)
{
    env *e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/maxconc", g_root);
    snprintf(e->cache, sizeof e->cache, "%s/cache", e->dir);
    sv_err err = {0};
    sv_rmtree(e->dir, &err);
    sv_mkdirs(e->dir, &err);
    e->cat = open_cat(e->dir);
    e->f.nfiles = 1;
    e->f.file_bytes = 100;
    e->o.cache_quota_bytes = 1 << 20;
    e->o.max_concurrent_hydrations = 2;
    env_open(e);
    atomic_store(&e->f.slow_ms, 150);
    enum { N = 8 };
    acq a[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        a[i] = (acq){.e = e, .c = "Books", .timeout_ms = 20000};
        snprintf(a[i].s, sizeof a[i].s, "m%d", i);
        reg(e, "Books", a[i].s);
    }
    for (int i = 0; i < N; i++)
        pthread_create(&th[i], NULL, acq_main, &a[i]);
    sv_sleep_ms(60);
    sv_registry_stats st;
    sv_registry_stats(e->r, &st);
    assert_true(st.hydrations_running <= 2);
    int64_t queued_seen = st.hydrations_queued;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (a[i].rc)
            fail_msg("m%d: %s", i, a[i].err.msg);
        sv_registry_release(a[i].ref);
    }
    printf("max concurrent fetches %d (limit 2), queued seen %lld\n", atomic_load(&e->f.max_concurrent),
           (long long)queued_seen);
    assert_int_equal(atomic_load(&e->f.fetches), N);
    assert_true(atomic_load(&e->f.max_concurrent) <= 2);
    assert_int_equal(atomic_load(&e->f.max_concurrent), 2);
    env_free(e);
}

/* ---- restart --------------------------------------------------------------------------------- */

static void put_rec(sv_catalog *cat, const char *c, const char *s, const char *state, const char *last_error)
{
    char key[256], val[1024];
    snprintf(key, sizeof key, "registry/shards/%s/%s", c, s);
    snprintf(val, sizeof val,
             "{\"format_version\":1,\"collection\":\"%s\",\"shard\":\"%s\",\"state\":\"%s\",\"source\":\"OFFLOADED\","
             "\"pinned\":false,\"lastError\":\"%s\",\"lastTransitionAt\":1,\"localBytes\":0,\"remoteBytes\":0}",
             c, s, state, last_error);
    sv_err err = {0};
    if (sv_catalog_put(cat, key, val, strlen(val), 0, &err))
        fail_msg("put: %s", err.msg);
}

static void mkfile(const char *path, const char *content)
{
    sv_err err = {0};
    if (sv_write_file_atomic(path, content, strlen(content), &err))
        fail_msg("write %s: %s", path, err.msg);
}

static void restart_reconciliation(void **state)
{
    env *e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/restart", g_root);
    snprintf(e->cache, sizeof e->cache, "%s/cache", e->dir);
    sv_err err = {0};
    sv_rmtree(e->dir, &err);
    sv_mkdirs(e->dir, &err);
    e->cat = open_cat(e->dir);
    e->f.nfiles = 1;
    e->f.file_bytes = 100;
    e->o.cache_quota_bytes = 1 << 20;
    put_rec(e->cat, "Books", "init", "INITIALIZING", "");
    put_rec(e->cat, "Books", "initdone", "INITIALIZING", "");
    put_rec(e->cat, "Books", "serving", "SERVING", "");
    put_rec(e->cat, "Books", "recov", "RECOVERING", "disk full");
    put_rec(e->cat, "Books", "gone", "AVAILABLE", "");
    put_rec(e->cat, "Books", "partial", "INITIALIZING", "");
    char p[1500];
    /* complete directories (with the marker) for initdone and serving */
    char d[1400];
    snprintf(d, sizeof d, "%s/Books/initdone", e->cache);
    sv_mkdirs(d, &err);
    snprintf(p, sizeof p, "%s/Books/initdone/f", e->cache);
    mkfile(p, "0123456789");
    snprintf(p, sizeof p, "%s/Books/initdone/.sv-complete", e->cache);
    mkfile(p, "10\n");
    snprintf(p, sizeof p, "%s/Books/serving/f", e->cache);
    snprintf(d, sizeof d, "%s/Books/serving", e->cache);
    sv_mkdirs(d, &err);
    mkfile(p, "01234567890123456789");
    snprintf(p, sizeof p, "%s/Books/serving/.sv-complete", e->cache);
    mkfile(p, "20\n");
    /* a half directory (no marker), an orphan shard, an orphan collection, temp dirs */
    snprintf(d, sizeof d, "%s/Books/partial", e->cache);
    sv_mkdirs(d, &err);
    snprintf(p, sizeof p, "%s/half", d);
    mkfile(p, "x");
    snprintf(d, sizeof d, "%s/Books/unknown", e->cache);
    sv_mkdirs(d, &err);
    snprintf(d, sizeof d, "%s/Orphan/x", e->cache);
    sv_mkdirs(d, &err);
    snprintf(d, sizeof d, "%s/.tmp-123-4", e->cache);
    sv_mkdirs(d, &err);
    env_open(e);

    sv_registry_stats st;
    sv_registry_stats(e->r, &st);
    assert_int_equal(st.shards[SV_SHARD_INITIALIZING] + st.shards[SV_SHARD_RECOVERING] + st.shards[SV_SHARD_SERVING], 0);
    assert_int_equal(st.shards_total, 6);
    assert_int_equal(st.cache_used_bytes, 30);
    assert_state(e, "Books", "init", "NEW");
    assert_state(e, "Books", "initdone", "AVAILABLE");
    assert_state(e, "Books", "serving", "AVAILABLE");
    assert_state(e, "Books", "recov", "ERRORED");
    assert_state(e, "Books", "gone", "NEW");
    assert_state(e, "Books", "partial", "NEW");
    json_t *all = NULL;
    json_t *v = shard_json(e, "Books", "recov", &all);
    const char *le = json_string_value(json_object_get(v, "lastError"));
    assert_non_null(strstr(le, "restart"));
    assert_non_null(strstr(le, "disk full"));
    json_decref(all);
    v = shard_json(e, "Books", "serving", &all);
    assert_non_null(strstr(json_string_value(json_object_get(v, "lastError")), "was SERVING"));
    json_decref(all);
    v = shard_json(e, "Books", "init", &all);
    assert_non_null(strstr(json_string_value(json_object_get(v, "lastError")), "was INITIALIZING"));
    json_decref(all);
    snprintf(d, sizeof d, "%s/Books/partial", e->cache);
    assert_false(sv_path_exists(d));
    snprintf(d, sizeof d, "%s/Books/unknown", e->cache);
    assert_false(sv_path_exists(d));
    snprintf(d, sizeof d, "%s/Orphan", e->cache);
    assert_false(sv_path_exists(d));
    snprintf(d, sizeof d, "%s/.tmp-123-4", e->cache);
    assert_false(sv_path_exists(d));
    snprintf(d, sizeof d, "%s/Books/serving/f", e->cache);
    assert_true(sv_path_exists(d));
    /* the reconciled records are in the catalog */
    char *val = NULL;
    size_t len = 0;
    assert_int_equal(sv_catalog_get(e->cat, "registry/shards/Books/serving", &val, &len, NULL, &err), 0);
    assert_non_null(strstr(val, "\"AVAILABLE\""));
    free(val);
    /* the reconciled shards work: a NEW one hydrates, an AVAILABLE one is a hit */
    sv_shard_ref *ref = NULL;
    assert_int_equal(sv_registry_acquire(e->r, "Books", "serving", 1000, &ref, &err), 0);
    sv_registry_release(ref);
    assert_int_equal(sv_registry_acquire(e->r, "Books", "init", 5000, &ref, &err), 0);
    sv_registry_release(ref);
    assert_int_equal(atomic_load(&e->f.fetches), 1);
    env_free(e);
}

static void restart_10k(void **state)
{
    env *e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/restart10k", g_root);
    snprintf(e->cache, sizeof e->cache, "%s/cache", e->dir);
    sv_err err = {0};
    sv_rmtree(e->dir, &err);
    sv_mkdirs(e->dir, &err);
    e->cat = open_cat(e->dir);
    e->f.nfiles = 1;
    e->f.file_bytes = 100;
    e->o.cache_quota_bytes = 1 << 20;
    enum { N = 10000, B = 128 };
    static char keys[B][64], vals[B][512];
    sv_catalog_op ops[B];
    const char *states[] = {"INITIALIZING", "SERVING", "RECOVERING", "AVAILABLE"};
    for (int i = 0; i < N; i += B) {
        for (int k = 0; k < B && i + k < N; k++) {
            snprintf(keys[k], sizeof keys[k], "registry/shards/Big/t%d", i + k);
            snprintf(vals[k], sizeof vals[k],
                     "{\"format_version\":1,\"collection\":\"Big\",\"shard\":\"t%d\",\"state\":\"%s\",\"source\":"
                     "\"OFFLOADED\",\"pinned\":false,\"lastError\":\"\",\"lastTransitionAt\":1,\"localBytes\":0}",
                     i + k, states[(i + k) % 4]);
            ops[k] = (sv_catalog_op){.key = keys[k], .val = vals[k], .len = strlen(vals[k])};
        }
        assert_int_equal(sv_catalog_txn(e->cat, NULL, 0, ops, (size_t)(N - i < B ? N - i : B), &err), 0);
    }
    int64_t t0 = sv_mono_ns();
    env_open(e);
    printf("reconciled %d shards at open in %lld ms\n", N, (long long)((sv_mono_ns() - t0) / 1000000));
    sv_registry_stats st;
    sv_registry_stats(e->r, &st);
    assert_int_equal(st.shards_total, N);
    assert_int_equal(st.shards[SV_SHARD_NEW], N / 4 * 3);
    assert_int_equal(st.shards[SV_SHARD_ERRORED], N / 4);
    env_free(e);
}

/* ---- recovery policy NOW ------------------------------------------------------------------------ */

static void recover_now_at_open(void **state)
{
    env *e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/recovernow", g_root);
    snprintf(e->cache, sizeof e->cache, "%s/cache", e->dir);
    sv_err err = {0};
    sv_rmtree(e->dir, &err);
    sv_mkdirs(e->dir, &err);
    e->cat = open_cat(e->dir);
    e->f.nfiles = 1;
    e->f.file_bytes = 100;
    e->o.cache_quota_bytes = 1 << 20;
    e->o.recover_on_start = SV_REGISTRY_RECOVER_NOW;
    put_rec(e->cat, "Books", "broken", "ERRORED", "fetch failed");
    put_rec(e->cat, "Books", "fresh", "NEW", "");
    env_open(e); /* the OFFLOADED mount is given in opts: recovery starts at once */
    for (int i = 0; i < 500; i++) {
        char *st = state_of(e, "Books", "broken");
        bool done = !strcmp(st, "AVAILABLE");
        free(st);
        if (done)
            break;
        sv_sleep_ms(10);
    }
    assert_state(e, "Books", "broken", "AVAILABLE");
    assert_state(e, "Books", "fresh", "NEW"); /* only ERRORED shards are recovered */
    assert_int_equal(atomic_load(&e->f.fetches), 1);
    env_free(e);
}

/* ---- events ---------------------------------------------------------------------------------- */

static void events(void **state)
{
    env *e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s/events", g_root);
    snprintf(e->cache, sizeof e->cache, "%s/cache", e->dir);
    sv_err err = {0};
    sv_rmtree(e->dir, &err);
    sv_mkdirs(e->dir, &err);
    e->cat = open_cat(e->dir);
    e->f.nfiles = 1;
    e->f.file_bytes = 100;
    e->o.cache_quota_bytes = 1 << 20;
    e->o.event_ring = 16;
    env_open(e);
    /* a normal reader sees the transitions in order */
    reg(e, "Books", "e1");
    sv_shard_ref *ref = NULL;
    assert_int_equal(sv_registry_acquire(e->r, "Books", "e1", 5000, &ref, &err), 0);
    sv_registry_release(ref);
    sv_registry_event ev[16];
    size_t n = 0;
    uint64_t dropped = 99;
    assert_int_equal(sv_registry_events(e->r, 0, ev, 16, &n, &dropped), 0);
    assert_int_equal(dropped, 0);
    sv_shard_state want[][2] = {{SV_SHARD_NEW, SV_SHARD_NEW},
                                {SV_SHARD_NEW, SV_SHARD_INITIALIZING},
                                {SV_SHARD_INITIALIZING, SV_SHARD_AVAILABLE},
                                {SV_SHARD_AVAILABLE, SV_SHARD_SERVING},
                                {SV_SHARD_SERVING, SV_SHARD_AVAILABLE}};
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ev[i].seq, i + 1);
        assert_string_equal(ev[i].collection, "Books");
        assert_string_equal(ev[i].shard, "e1");
        assert_int_equal(ev[i].from, want[i][0]);
        assert_int_equal(ev[i].to, want[i][1]);
        assert_true(ev[i].ts_ms > 0);
    }
    /* nothing new: nothing returned */
    assert_int_equal(sv_registry_events(e->r, 5, ev, 16, &n, &dropped), 0);
    assert_int_equal(n, 0);
    /* a reader that does not keep up loses the oldest events, counted */
    for (int i = 0; i < 30; i++) {
        char s[16];
        snprintf(s, sizeof s, "x%d", i);
        reg(e, "Books", s);
    }
    assert_int_equal(sv_registry_events(e->r, 5, ev, 16, &n, &dropped), 0);
    assert_int_equal(dropped, 35 - 16 - 5);
    assert_int_equal(n, 16);
    assert_int_equal(ev[0].seq, 35 - 16 + 1);
    assert_int_equal(ev[15].seq, 35);
    sv_registry_stats st;
    sv_registry_stats(e->r, &st);
    assert_int_equal(st.events_dropped, 14);
    assert_int_equal(st.events_published, 35);
    sv_buf m = {0};
    sv_registry_metrics(&m, e->r);
    assert_non_null(strstr(sv_buf_cstr(&m), "shardvault_registry_events_dropped_total 14\n"));
    assert_non_null(strstr(sv_buf_cstr(&m), "shardvault_registry_shards{state=\"AVAILABLE\"} 1\n"));
    assert_non_null(strstr(sv_buf_cstr(&m), "shardvault_registry_cache_quota_bytes 1048576\n"));
    sv_buf_free(&m);
    env_free(e);
}

/* ---- persistence ------------------------------------------------------------------------------- */

static void persistence(void **state)
{
    env *e = env_new("persist", 1 << 20);
    sv_err err = {0};
    reg(e, "Books", "avail");
    reg(e, "Books", "new");
    reg(e, "Books", "bad");
    sv_shard_ref *ref = NULL;
    assert_int_equal(sv_registry_acquire(e->r, "Books", "avail", 5000, &ref, &err), 0);
    sv_registry_release(ref);
    assert_int_equal(sv_registry_pin(e->r, "Books", "avail", &err), 0);
    atomic_store(&e->f.fail, 1);
    assert_int_equal(sv_registry_acquire(e->r, "Books", "bad", 5000, &ref, &err), SV_EIO);
    atomic_store(&e->f.fail, 0);
    assert_int_equal(sv_registry_register(e->r, "Books", "new", SV_SHARD_SRC_OFFLOADED, 0, &err), SV_EEXIST);
    assert_int_equal(sv_registry_register(e->r, "Books", "bad/name", SV_SHARD_SRC_OFFLOADED, 0, &err), SV_EINVAL);
    sv_registry_close(e->r);
    e->r = NULL;
    env_open(e);
    assert_state(e, "Books", "avail", "AVAILABLE");
    assert_state(e, "Books", "new", "NEW");
    assert_state(e, "Books", "bad", "ERRORED");
    json_t *all = NULL;
    json_t *v = shard_json(e, "Books", "avail", &all);
    assert_true(json_is_true(json_object_get(v, "pinned")));
    assert_int_equal(json_integer_value(json_object_get(v, "localBytes")), 1000);
    assert_int_equal(json_integer_value(json_object_get(v, "hydration")), 100);
    assert_string_equal(json_string_value(json_object_get(v, "source")), "offloaded");
    json_decref(all);
    v = shard_json(e, "Books", "bad", &all);
    assert_non_null(strstr(json_string_value(json_object_get(v, "lastError")), "remote unreachable"));
    json_decref(all);
    /* filters */
    assert_int_equal(sv_registry_shards_json(e->r, NULL, "ERRORED", &all, &err), 0);
    assert_int_equal(json_array_size(json_object_get(all, "shards")), 1);
    json_decref(all);
    assert_int_equal(sv_registry_shards_json(e->r, NULL, "BOGUS", &all, &err), SV_EINVAL);
    sv_registry_stats st;
    sv_registry_stats(e->r, &st);
    assert_int_equal(st.cache_used_bytes, 1000);
    /* the hydrated shard is served from the cache after the restart: no fetch */
    assert_int_equal(sv_registry_acquire(e->r, "Books", "avail", 1000, &ref, &err), 0);
    sv_registry_release(ref);
    assert_int_equal(atomic_load(&e->f.fetches), 2);
    env_free(e);
}

int main(void)
{
    if (sv_test_root("registry", g_root, sizeof g_root))
        return 1;
    sv_log_set_level(SV_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single_flight),          cmocka_unit_test(parked_deadlines_and_destroy),
        cmocka_unit_test(failing_fetch_and_recovery), cmocka_unit_test(quota_churn),
        cmocka_unit_test(max_concurrent_hydrations),  cmocka_unit_test(restart_reconciliation),
        cmocka_unit_test(restart_10k),            cmocka_unit_test(recover_now_at_open),
        cmocka_unit_test(events),
        cmocka_unit_test(persistence),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        sv_rmtree(g_root, NULL);
    return rc;
}
