#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test_root.h"
#include "catalog.h"

static char g_root[1024];

static sv_catalog *open_cat(const char *name)
{
    char url[1200];
    snprintf(url, sizeof url, "embedded://%s/%s", g_root, name);
    sv_catalog *c = NULL;
    sv_err err = {0};
    int rc = sv_catalog_open(url, &c, &err);
    if (rc)
        fail_msg("open %s: %s", url, err.msg);
    return c;
}

static int64_t rev_of(sv_catalog *c, const char *key)
{
    char *v = NULL;
    size_t n;
    int64_t rev = 0;
    sv_err err = {0};
    if (sv_catalog_get(c, key, &v, &n, &rev, &err) != 0)
        return 0;
    free(v);
    return rev;
}

static void expect_val(sv_catalog *c, const char *key, const char *want)
{
    char *v = NULL;
    size_t n = 0;
    sv_err err = {0};
    assert_int_equal(sv_catalog_get(c, key, &v, &n, NULL, &err), 0);
    assert_int_equal(n, strlen(want));
    assert_string_equal(v, want);
    free(v);
}

static void urls(void **state)
{
    sv_catalog *c = NULL;
    sv_err err = {0};
    assert_int_equal(sv_catalog_open("etcd://127.0.0.1:2379", &c, &err), SV_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "etcd catalog driver is not built yet"));
    assert_int_equal(sv_catalog_open("zk://x", &c, &err), SV_EUNSUPPORTED);
    assert_int_equal(sv_catalog_open("embedded://", &c, &err), SV_EINVAL);
    assert_int_equal(sv_catalog_open("", &c, &err), SV_EINVAL);
    assert_null(c);
    /* a plain path means embedded */
    char path[1200];
    snprintf(path, sizeof path, "%s/plain", g_root);
    assert_int_equal(sv_catalog_open(path, &c, &err), 0);
    sv_catalog_close(c);
    /* a relative URL */
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(g_root), 0);
    assert_int_equal(sv_catalog_open("embedded://./rel/cat", &c, &err), 0);
    assert_int_equal(sv_catalog_put(c, "k", "v", 1, 0, &err), 0);
    sv_catalog_close(c);
    assert_int_equal(chdir(cwd), 0);
    snprintf(path, sizeof path, "%s/rel/cat/CURRENT", g_root);
    assert_int_equal(access(path, F_OK), 0);
}

struct seen {
    int n;
    char keys[16][64];
    int64_t revs[16];
};

static int collect(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    struct seen *s = ud;
    if (s->n >= 16)
        return 99;
    snprintf(s->keys[s->n], 64, "%s=%.*s", key, (int)len, val);
    assert_int_equal(val[len], '\0');
    s->revs[s->n++] = rev;
    return 0;
}

static int stop_at_two(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    return ++*(int *)ud == 2 ? 7 : 0;
}

static void basic_crud_scan(void **state)
{
    sv_catalog *c = open_cat("crud");
    sv_err err = {0};
    char *v = NULL;
    size_t n;
    int64_t rev;
    char url[1200];
    snprintf(url, sizeof url, "%s/crud", g_root);
    sv_catalog *c2 = NULL;
    assert_int_equal(sv_catalog_open(url, &c2, &err), SV_ECONFLICT); /* already open */
    assert_null(c2);
    assert_int_equal(sv_catalog_get(c, "nope", &v, &n, &rev, &err), SV_ENOTFOUND);
    assert_null(v);
    assert_int_equal(sv_catalog_put(c, "col/b", "2", 1, 0, &err), 0);
    assert_int_equal(sv_catalog_put(c, "col/a", "1", 1, 0, &err), 0);
    assert_int_equal(sv_catalog_put(c, "col/a/x", "1x", 2, 0, &err), 0);
    assert_int_equal(sv_catalog_put(c, "col0", "zero", 4, 0, &err), 0); /* '0' > '/' */
    assert_int_equal(sv_catalog_put(c, "co", "short", 5, 0, &err), 0);
    assert_int_equal(sv_catalog_put(c, "empty", NULL, 0, 0, &err), 0);
    expect_val(c, "empty", "");
    int64_t ra = rev_of(c, "col/a"), rb = rev_of(c, "col/b");
    assert_true(ra > rb && rb > 0);
    /* overwrite bumps the key's revision */
    assert_int_equal(sv_catalog_put(c, "col/b", "22", 2, 0, &err), 0);
    assert_true(rev_of(c, "col/b") > rev_of(c, "empty"));
    expect_val(c, "col/b", "22");

    struct seen s = {0};
    assert_int_equal(sv_catalog_scan(c, "col/", collect, &s, &err), 0);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.keys[0], "col/a=1");
    assert_string_equal(s.keys[1], "col/a/x=1x");
    assert_string_equal(s.keys[2], "col/b=22");
    assert_int_equal(s.revs[0], ra);
    memset(&s, 0, sizeof s);
    assert_int_equal(sv_catalog_scan(c, "col", collect, &s, &err), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.keys[3], "col0=zero");
    memset(&s, 0, sizeof s);
    assert_int_equal(sv_catalog_scan(c, "", collect, &s, &err), 0);
    assert_int_equal(s.n, 6);
    assert_string_equal(s.keys[0], "co=short");
    assert_string_equal(s.keys[5], "empty=");
    memset(&s, 0, sizeof s);
    assert_int_equal(sv_catalog_scan(c, "zzz", collect, &s, &err), 0);
    assert_int_equal(s.n, 0);
    int count = 0;
    assert_int_equal(sv_catalog_scan(c, "col", stop_at_two, &count, &err), 7);
    assert_int_equal(count, 2);

    int64_t before = rev_of(c, "col/b");
    assert_int_equal(sv_catalog_delete(c, "col/a", &err), 0);
    assert_int_equal(sv_catalog_get(c, "col/a", &v, &n, &rev, &err), SV_ENOTFOUND);
    assert_int_equal(sv_catalog_delete(c, "col/a", &err), 0); /* absent is fine */
    assert_int_equal(sv_catalog_put(c, "", "x", 1, 0, &err), SV_EINVAL);
    assert_int_equal(sv_catalog_put(c, "col/b", "x", 1, 12345, &err), SV_ENOTFOUND); /* no such lease */
    assert_int_equal(rev_of(c, "col/b"), before);
    sv_catalog_close(c);
}

static void txn_semantics(void **state)
{
    sv_catalog *c = open_cat("txn");
    sv_err err = {0};
    assert_int_equal(sv_catalog_put(c, "a", "1", 1, 0, &err), 0);
    int64_t ra = rev_of(c, "a");

    /* success: all conditions hold; all ops share one new revision */
    sv_catalog_cond conds[] = {{"a", ra}, {"b", 0}, {"a", -1}};
    sv_catalog_op ops[] = {{"b", "2", 1, 0}, {"c", "3", 1, 0}, {"a", NULL, 0, 0}};
    assert_int_equal(sv_catalog_txn(c, conds, 3, ops, 3, &err), 0);
    int64_t rb = rev_of(c, "b");
    assert_int_equal(rb, ra + 1);
    assert_int_equal(rev_of(c, "c"), rb);
    assert_int_equal(rev_of(c, "a"), 0);

    /* conflicts write nothing */
    sv_catalog_op w[] = {{"x", "x", 1, 0}, {"b", NULL, 0, 0}};
    sv_catalog_cond must_absent = {"b", 0};
    assert_int_equal(sv_catalog_txn(c, &must_absent, 1, w, 2, &err), SV_ECONFLICT);
    assert_non_null(strstr(err.msg, "b"));
    sv_catalog_cond wrong_rev = {"b", rb + 100};
    assert_int_equal(sv_catalog_txn(c, &wrong_rev, 1, w, 2, &err), SV_ECONFLICT);
    sv_catalog_cond must_exist = {"zz", -1};
    assert_int_equal(sv_catalog_txn(c, &must_exist, 1, w, 2, &err), SV_ECONFLICT);
    sv_catalog_cond rev_of_absent = {"zz", 5};
    assert_int_equal(sv_catalog_txn(c, &rev_of_absent, 1, w, 2, &err), SV_ECONFLICT);
    /* a bad lease in the second op aborts the first too */
    sv_catalog_op badlease[] = {{"x", "x", 1, 0}, {"y", "y", 1, 777}};
    assert_int_equal(sv_catalog_txn(c, NULL, 0, badlease, 2, &err), SV_ENOTFOUND);
    sv_catalog_op dup[] = {{"x", "x", 1, 0}, {"x", "y", 1, 0}};
    assert_int_equal(sv_catalog_txn(c, NULL, 0, dup, 2, &err), SV_EINVAL);
    sv_catalog_cond bad = {"b", -2};
    assert_int_equal(sv_catalog_txn(c, &bad, 1, w, 2, &err), SV_EINVAL);
    char *v;
    size_t n;
    assert_int_equal(sv_catalog_get(c, "x", &v, &n, NULL, &err), SV_ENOTFOUND);
    assert_int_equal(sv_catalog_get(c, "y", &v, &n, NULL, &err), SV_ENOTFOUND);
    assert_int_equal(rev_of(c, "b"), rb);

    /* conditions only (a read-only check) succeed without writing */
    sv_catalog_cond ok = {"b", rb};
    assert_int_equal(sv_catalog_txn(c, &ok, 1, NULL, 0, &err), 0);
    assert_int_equal(sv_catalog_put(c, "z", "z", 1, 0, &err), 0);
    assert_int_equal(rev_of(c, "z"), rb + 1);
    sv_catalog_close(c);
}

static void leases(void **state)
{
    sv_catalog *c = open_cat("lease");
    sv_err err = {0};
    int64_t l1, l2, l3;
    assert_int_equal(sv_catalog_lease_grant(c, 0, &l1, &err), SV_EINVAL);
    assert_int_equal(sv_catalog_lease_grant(c, 200, &l1, &err), 0);
    /* l2's TTL leaves room for the fsynced puts below on a loaded machine. */
    assert_int_equal(sv_catalog_lease_grant(c, 1500, &l2, &err), 0);
    assert_int_equal(sv_catalog_lease_grant(c, 60000, &l3, &err), 0);
    assert_true(l1 > 0 && l2 > l1 && l3 > l2);
    assert_int_equal(sv_catalog_put(c, "eph/1", "a", 1, l1, &err), 0);
    assert_int_equal(sv_catalog_put(c, "eph/2", "b", 1, l2, &err), 0);
    assert_int_equal(sv_catalog_put(c, "eph/3", "c", 1, l3, &err), 0);
    assert_int_equal(sv_catalog_put(c, "eph/moved", "m", 1, l1, &err), 0);
    assert_int_equal(sv_catalog_put(c, "eph/moved", "m2", 2, l3, &err), 0); /* re-attached to l3 */
    assert_int_equal(sv_catalog_put(c, "eph/freed", "f", 1, l1, &err), 0);
    assert_int_equal(sv_catalog_put(c, "eph/freed", "f2", 2, 0, &err), 0); /* detached */
    assert_int_equal(sv_catalog_put(c, "keep", "k", 1, 0, &err), 0);

    /* keep l2 alive well past its TTL while l1 lapses */
    int64_t t0 = sv_mono_ns();
    while (sv_mono_ns() - t0 < 2000000000LL) {
        sv_sleep_ms(40);
        assert_int_equal(sv_catalog_lease_keepalive(c, l2, &err), 0);
    }
    t0 = sv_mono_ns();
    while (rev_of(c, "eph/1") != 0 && sv_mono_ns() - t0 < 5000000000LL)
        sv_sleep_ms(10);
    char *v;
    size_t n;
    assert_int_equal(sv_catalog_get(c, "eph/1", &v, &n, NULL, &err), SV_ENOTFOUND);
    assert_int_equal(sv_catalog_lease_keepalive(c, l1, &err), SV_ENOTFOUND);
    expect_val(c, "eph/2", "b");
    expect_val(c, "eph/moved", "m2");
    expect_val(c, "eph/freed", "f2");
    expect_val(c, "keep", "k");
    assert_int_equal(sv_catalog_put(c, "late", "x", 1, l1, &err), SV_ENOTFOUND);

    /* revoke deletes at once */
    assert_int_equal(sv_catalog_lease_revoke(c, l3, &err), 0);
    assert_int_equal(sv_catalog_get(c, "eph/3", &v, &n, NULL, &err), SV_ENOTFOUND);
    assert_int_equal(sv_catalog_get(c, "eph/moved", &v, &n, NULL, &err), SV_ENOTFOUND);
    assert_int_equal(sv_catalog_lease_revoke(c, l3, &err), SV_ENOTFOUND);

    /* stop keeping l2 alive: it expires on its own */
    t0 = sv_mono_ns();
    while (rev_of(c, "eph/2") != 0 && sv_mono_ns() - t0 < 5000000000LL)
        sv_sleep_ms(10);
    assert_int_equal(rev_of(c, "eph/2"), 0);
    sv_catalog_close(c);
}

static void reopen_persists(void **state)
{
    sv_catalog *c = open_cat("reopen");
    sv_err err = {0};
    int64_t short_l, long_l;
    assert_int_equal(sv_catalog_put(c, "a", "1", 1, 0, &err), 0);
    assert_int_equal(sv_catalog_lease_grant(c, 400, &short_l, &err), 0);
    assert_int_equal(sv_catalog_lease_grant(c, 60000, &long_l, &err), 0);
    assert_int_equal(sv_catalog_put(c, "s", "short", 5, short_l, &err), 0);
    assert_int_equal(sv_catalog_put(c, "l", "long", 4, long_l, &err), 0);
    int64_t r1 = rev_of(c, "l");
    /* on a very loaded machine the lease may already have run out here */
    bool alive_at_close = rev_of(c, "s") != 0;
    sv_catalog_close(c);

    /* the short lease runs out while closed; its key is gone at open */
    sv_sleep_ms(500);
    c = open_cat("reopen");
    char *v;
    size_t n;
    assert_int_equal(sv_catalog_get(c, "s", &v, &n, NULL, &err), SV_ENOTFOUND);
    expect_val(c, "a", "1");
    expect_val(c, "l", "long");
    assert_int_equal(rev_of(c, "l"), r1);
    assert_int_equal(sv_catalog_lease_keepalive(c, long_l, &err), 0);
    assert_int_equal(sv_catalog_lease_keepalive(c, short_l, &err), SV_ENOTFOUND);
    /* revisions keep increasing across reopen (the expiry itself was one) */
    assert_int_equal(sv_catalog_put(c, "b", "2", 1, 0, &err), 0);
    int64_t rb = rev_of(c, "b");
    assert_true(rb > r1);
    if (alive_at_close)
        assert_int_equal(rb, r1 + 2);
    /* lease ids are not reused */
    int64_t l3;
    assert_int_equal(sv_catalog_lease_grant(c, 1000, &l3, &err), 0);
    assert_true(l3 > long_l);
    sv_catalog_close(c);

    c = open_cat("reopen");
    assert_int_equal(sv_catalog_put(c, "c", "3", 1, 0, &err), 0);
    assert_int_equal(rev_of(c, "c"), rb + 1);
    sv_catalog_close(c);
}

#define NTHREADS 4
#define NINCR 50

struct worker {
    sv_catalog *c;
    int id;
    int conflicts;
};

/* Each thread increments a shared counter with compare-and-set, and writes
 * its own keys: the final count proves no lost update. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    sv_err err = {0};
    for (int i = 0; i < NINCR; i++) {
        char key[64];
        snprintf(key, sizeof key, "w/%d/%03d", w->id, i);
        if (sv_catalog_put(w->c, key, "x", 1, 0, &err) != 0)
            return "put failed";
        for (;;) {
            char *v = NULL;
            size_t n;
            int64_t rev = 0;
            long cur = 0;
            int rc = sv_catalog_get(w->c, "counter", &v, &n, &rev, &err);
            if (rc == 0)
                cur = strtol(v, NULL, 10);
            else if (rc != SV_ENOTFOUND)
                return "get failed";
            free(v);
            char nv[32];
            snprintf(nv, sizeof nv, "%ld", cur + 1);
            sv_catalog_cond cond = {"counter", rc == 0 ? rev : 0};
            sv_catalog_op op = {"counter", nv, strlen(nv), 0};
            rc = sv_catalog_txn(w->c, &cond, 1, &op, 1, &err);
            if (rc == 0)
                break;
            if (rc != SV_ECONFLICT)
                return "txn failed";
            w->conflicts++;
        }
    }
    return NULL;
}

static int count_cb(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    int64_t *prev = ud;
    (void)key;
    prev[0]++;
    if (rev > prev[1])
        prev[1] = rev;
    return 0;
}

static void concurrent_writers(void **state)
{
    sv_catalog *c = open_cat("concurrent");
    pthread_t th[NTHREADS];
    struct worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.c = c, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    int conflicts = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        if (ret)
            fail_msg("worker %d: %s", i, (const char *)ret);
        conflicts += w[i].conflicts;
    }
    char want[32];
    snprintf(want, sizeof want, "%d", NTHREADS * NINCR);
    expect_val(c, "counter", want);
    int64_t st[2] = {0, 0};
    sv_err err = {0};
    assert_int_equal(sv_catalog_scan(c, "w/", count_cb, st, &err), 0);
    assert_int_equal(st[0], NTHREADS * NINCR);
    /* every successful write got its own revision */
    assert_int_equal(rev_of(c, "counter"), 2 * NTHREADS * NINCR);
    print_message("%d CAS conflicts retried\n", conflicts);
    sv_catalog_close(c);
}

int main(void)
{
    if (sv_test_root("catalog", g_root, sizeof g_root))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(urls),   cmocka_unit_test(basic_crud_scan), cmocka_unit_test(txn_semantics),
        cmocka_unit_test(leases), cmocka_unit_test(reopen_persists), cmocka_unit_test(concurrent_writers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        sv_rmtree(g_root, NULL);
    return rc;
}
