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
#include "etcd_fixture.h"

/* The conformance tests run once per driver: g_etcd_on selects etcd (a real
 * one started by the group setup; each test in its own namespace). */
static char g_root[1024];
static bool g_etcd_on;
static etcd_proc g_etcd;

static void url_for(const char *name, char *url, size_t n)
{
    if (g_etcd_on)
        snprintf(url, n, "etcd://127.0.0.1:%d/t/%s/", g_etcd.client_port, name);
    else
        snprintf(url, n, "embedded://%s/%s", g_root, name);
}

static sv_catalog *open_cat(const char *name)
{
    char url[1200];
    url_for(name, url, sizeof url);
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
    if (!g_etcd_on) {
        assert_int_equal(sv_catalog_open(url, &c2, &err), SV_ECONFLICT); /* already open */
        assert_null(c2);
    }
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
    /* etcd leases are whole seconds (and at least its minimum TTL). */
    assert_int_equal(sv_catalog_lease_grant(c, g_etcd_on ? 1000 : 200, &l1, &err), 0);
    /* l2's TTL leaves room for the fsynced puts below on a loaded machine. */
    assert_int_equal(sv_catalog_lease_grant(c, g_etcd_on ? 3000 : 1500, &l2, &err), 0);
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
    while (sv_mono_ns() - t0 < (g_etcd_on ? 4000000000LL : 2000000000LL)) {
        sv_sleep_ms(g_etcd_on ? 300 : 40);
        assert_int_equal(sv_catalog_lease_keepalive(c, l2, &err), 0);
    }
    t0 = sv_mono_ns();
    while (rev_of(c, "eph/1") != 0 && sv_mono_ns() - t0 < 10000000000LL)
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
    while (rev_of(c, "eph/2") != 0 && sv_mono_ns() - t0 < 15000000000LL)
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
    sv_err e0 = {0};
    assert_int_equal(sv_catalog_put(c, "start", "", 0, 0, &e0), 0);
    int64_t r0 = rev_of(c, "start");
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
    assert_int_equal(rev_of(c, "counter"), r0 + 2 * NTHREADS * NINCR);
    print_message("%d CAS conflicts retried\n", conflicts);
    sv_catalog_close(c);
}

/* ---- txn size ---------------------------------------------------------------- */

static void txn_limits(void **state)
{
    sv_catalog *c = open_cat("limits");
    sv_err err = {0};
    enum { N = 300 };
    static char keys[N][32];
    sv_catalog_op ops[N];
    sv_catalog_cond conds[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "big/%04d", i);
        ops[i] = (sv_catalog_op){keys[i], "v", 1, 0};
        conds[i] = (sv_catalog_cond){keys[i], 0};
    }
    /* more ops than etcd takes at once, no conditions: applied (in chunks on etcd) */
    assert_int_equal(sv_catalog_txn(c, NULL, 0, ops, N, &err), 0);
    int64_t st[2] = {0, 0};
    assert_int_equal(sv_catalog_scan(c, "big/", count_cb, st, &err), 0);
    assert_int_equal(st[0], N);
    if (g_etcd_on) {
        /* with conditions it cannot be atomic: refused, nothing written */
        for (int i = 0; i < N; i++)
            ops[i] = (sv_catalog_op){keys[i], NULL, 0, 0};
        sv_catalog_cond one = {"big/0000", -1};
        assert_int_equal(sv_catalog_txn(c, &one, 1, ops, SV_CATALOG_MAX_TXN_OPS + 1, &err), SV_ETOOBIG);
        assert_non_null(strstr(err.msg, "128"));
        assert_int_equal(sv_catalog_txn(c, conds, SV_CATALOG_MAX_TXN_OPS + 1, NULL, 0, &err), SV_ETOOBIG);
        expect_val(c, "big/0000", "v");
        /* told etcd takes more than it does: etcd's own refusal comes back as SV_ETOOBIG */
        char url[300];
        snprintf(url, sizeof url, "etcd://127.0.0.1:%d/t/limits/?max_txn_ops=1000", g_etcd.client_port);
        sv_catalog *big = NULL;
        assert_int_equal(sv_catalog_open(url, &big, &err), 0);
        assert_int_equal(sv_catalog_txn(big, &one, 1, ops, SV_CATALOG_MAX_TXN_OPS + 1, &err), SV_ETOOBIG);
        assert_non_null(strstr(err.msg, "too many operations"));
        sv_catalog_close(big);
        expect_val(c, "big/0000", "v");
        /* exactly the limit is one atomic txn */
        assert_int_equal(sv_catalog_txn(c, &one, 1, ops, SV_CATALOG_MAX_TXN_OPS, &err), 0);
        assert_int_equal(rev_of(c, "big/0000"), 0);
        assert_int_equal(rev_of(c, "big/0128") > 0, 1);
    }
    /* sv_catalog_apply splits on every driver */
    for (int i = 0; i < N; i++)
        ops[i] = (sv_catalog_op){keys[i], NULL, 0, 0};
    assert_int_equal(sv_catalog_apply(c, ops, N, &err), 0);
    st[0] = st[1] = 0;
    assert_int_equal(sv_catalog_scan(c, "big/", count_cb, st, &err), 0);
    assert_int_equal(st[0], 0);
    /* a scan longer than one etcd page (500) */
    static char vals[1200][8];
    static sv_catalog_op many[1200];
    static char mk[1200][32];
    for (int i = 0; i < 1200; i++) {
        snprintf(mk[i], sizeof mk[i], "page/%05d", i);
        snprintf(vals[i], sizeof vals[i], "%d", i);
        many[i] = (sv_catalog_op){mk[i], vals[i], strlen(vals[i]), 0};
    }
    assert_int_equal(sv_catalog_apply(c, many, 1200, &err), 0);
    st[0] = st[1] = 0;
    assert_int_equal(sv_catalog_scan(c, "page/", count_cb, st, &err), 0);
    assert_int_equal(st[0], 1200);
    sv_catalog_close(c);
}

/* ---- watch --------------------------------------------------------------------- */

typedef struct wlog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char ev[64][80];
    int64_t rev[64];
    int n;
} wlog;

static void wlog_fn(const sv_catalog_event *e, void *ud)
{
    wlog *l = ud;
    pthread_mutex_lock(&l->mu);
    if (l->n < 64) {
        char *s = l->ev[l->n];
        switch (e->type) {
        case SV_CATALOG_EV_RESET: snprintf(s, 80, "RESET"); break;
        case SV_CATALOG_EV_SYNCED: snprintf(s, 80, "SYNCED"); break;
        case SV_CATALOG_EV_PUT:
            assert_int_equal(e->val[e->len], '\0');
            snprintf(s, 80, "PUT %s=%.*s", e->key, (int)e->len, e->val);
            break;
        case SV_CATALOG_EV_DELETE: snprintf(s, 80, "DEL %s", e->key); break;
        }
        l->rev[l->n++] = e->rev;
    }
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void wlog_init(wlog *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
}

/* Waits (bounded, generously) until n events arrived; returns the count. */
static int wlog_wait(wlog *l, int n)
{
    int64_t t0 = sv_mono_ns();
    pthread_mutex_lock(&l->mu);
    while (l->n < n && sv_mono_ns() - t0 < 20000000000LL) {
        pthread_mutex_unlock(&l->mu);
        sv_sleep_ms(10);
        pthread_mutex_lock(&l->mu);
    }
    int got = l->n;
    pthread_mutex_unlock(&l->mu);
    return got;
}

static void expect_events(wlog *l, int from, const char *const *want, int n)
{
    int got = wlog_wait(l, from + n);
    for (int i = 0; i < got - from && i < n; i++)
        if (strcmp(l->ev[from + i], want[i]))
            fail_msg("event %d: got '%s', want '%s'", from + i, l->ev[from + i], want[i]);
    assert_int_equal(got, from + n);
}

static void watch_events(void **state)
{
    sv_catalog *c = open_cat("watch");
    sv_err err = {0};
    assert_int_equal(sv_catalog_put(c, "a/1", "x", 1, 0, &err), 0);
    assert_int_equal(sv_catalog_put(c, "a/2", "y", 1, 0, &err), 0);
    assert_int_equal(sv_catalog_put(c, "b/1", "z", 1, 0, &err), 0);
    wlog l;
    wlog_init(&l);
    sv_catalog_watch *w = NULL;
    assert_int_equal(sv_catalog_watch_start(c, "a/", 0, NULL, &l, &w, &err), SV_EINVAL);
    assert_int_equal(sv_catalog_watch_start(c, "a/", 0, wlog_fn, &l, &w, &err), 0);
    const char *listing[] = {"RESET", "PUT a/1=x", "PUT a/2=y", "SYNCED"};
    expect_events(&l, 0, listing, 4);
    assert_true(l.rev[3] >= rev_of(c, "b/1"));

    assert_int_equal(sv_catalog_put(c, "a/3", "w", 1, 0, &err), 0);
    assert_int_equal(sv_catalog_delete(c, "a/1", &err), 0);
    assert_int_equal(sv_catalog_put(c, "b/2", "no", 2, 0, &err), 0);
    sv_catalog_op two[] = {{"a/4", "", 0, 0}, {"a/5", "five", 4, 0}};
    assert_int_equal(sv_catalog_txn(c, NULL, 0, two, 2, &err), 0);
    int64_t lid;
    assert_int_equal(sv_catalog_lease_grant(c, 60000, &lid, &err), 0);
    assert_int_equal(sv_catalog_put(c, "a/eph", "e", 1, lid, &err), 0);
    assert_int_equal(sv_catalog_lease_revoke(c, lid, &err), 0);
    const char *changes[] = {"PUT a/3=w", "DEL a/1", "PUT a/4=", "PUT a/5=five", "PUT a/eph=e", "DEL a/eph"};
    expect_events(&l, 4, changes, 6);
    assert_int_equal(l.rev[4], rev_of(c, "a/3"));
    assert_int_equal(l.rev[6], l.rev[7]); /* one txn, one revision */
    for (int i = 5; i < 10; i++)
        assert_true(l.rev[i] >= l.rev[i - 1]);
    assert_true(l.rev[9] > l.rev[8]);
    /* everything up to the revoke has been delivered */
    for (int i = 0; i < 2000 && sv_catalog_watch_revision(w) < l.rev[9]; i++)
        sv_sleep_ms(10);
    assert_int_equal(sv_catalog_watch_revision(w), l.rev[9]);

    sv_catalog_watch_stop(w);
    int n = l.n;
    assert_int_equal(sv_catalog_put(c, "a/6", "late", 4, 0, &err), 0);
    sv_sleep_ms(100);
    assert_int_equal(l.n, n); /* nothing after stop */
    sv_catalog_watch_stop(NULL);
    sv_catalog_close(c);
}

/* A watch from a revision follows from there; from a revision whose history
 * is gone (compacted on etcd; any past revision on the embedded driver,
 * which keeps none) it re-lists. */
static void watch_resume_relist(void **state)
{
    sv_catalog *c = open_cat("resume");
    sv_err err = {0};
    assert_int_equal(sv_catalog_put(c, "r/1", "1", 1, 0, &err), 0);
    assert_int_equal(sv_catalog_put(c, "r/2", "2", 1, 0, &err), 0);
    int64_t r2 = rev_of(c, "r/2");
    wlog l;
    wlog_init(&l);
    sv_catalog_watch *w = NULL;
    assert_int_equal(sv_catalog_watch_start(c, "r/", r2, wlog_fn, &l, &w, &err), 0);
    sv_sleep_ms(200); /* let the stream open; an event either way */
    assert_int_equal(sv_catalog_put(c, "r/3", "3", 1, 0, &err), 0);
    const char *one[] = {"PUT r/3=3"};
    expect_events(&l, 0, one, 1);
    sv_catalog_watch_stop(w);

    int64_t r3 = rev_of(c, "r/3");
    assert_int_equal(sv_catalog_put(c, "r/4", "4", 1, 0, &err), 0);
    assert_int_equal(sv_catalog_delete(c, "r/1", &err), 0);
    assert_int_equal(sv_catalog_put(c, "r/5", "5", 1, 0, &err), 0);
    if (g_etcd_on) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "compact %lld", (long long)rev_of(c, "r/5"));
        assert_int_equal(etcd_ctl(&g_etcd, cmd), 0);
    }
    wlog l2;
    wlog_init(&l2);
    assert_int_equal(sv_catalog_watch_start(c, "r/", r3, wlog_fn, &l2, &w, &err), 0);
    const char *relist[] = {"RESET", "PUT r/2=2", "PUT r/3=3", "PUT r/4=4", "PUT r/5=5", "SYNCED"};
    expect_events(&l2, 0, relist, 6);
    assert_true(l2.rev[5] >= rev_of(c, "r/5"));
    assert_int_equal(sv_catalog_put(c, "r/6", "6", 1, 0, &err), 0);
    const char *after[] = {"PUT r/6=6"};
    expect_events(&l2, 6, after, 1);
    sv_catalog_watch_stop(w);
    sv_catalog_close(c);
}

/* A quiet watch still learns how far the catalog has moved (etcd: progress
 * notifications), so resuming it after a compaction needs no re-list. */
static void watch_progress(void **state)
{
    sv_catalog *c = open_cat("progress");
    sv_err err = {0};
    assert_int_equal(sv_catalog_put(c, "p/1", "1", 1, 0, &err), 0);
    wlog l;
    wlog_init(&l);
    sv_catalog_watch *w = NULL;
    assert_int_equal(sv_catalog_watch_start(c, "p/", 0, wlog_fn, &l, &w, &err), 0);
    const char *listing[] = {"RESET", "PUT p/1=1", "SYNCED"};
    expect_events(&l, 0, listing, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sv_catalog_put(c, "q/x", "other", 5, 0, &err), 0);
    int64_t moved = rev_of(c, "q/x");
    for (int i = 0; i < 2000 && sv_catalog_watch_revision(w) < moved; i++)
        sv_sleep_ms(10);
    assert_int_equal(sv_catalog_watch_revision(w), moved);
    assert_int_equal(l.n, 3); /* no event for q/ */
    if (g_etcd_on) {
        /* compact up to now, and cut the stream: it resumes after "moved",
         * which is not compacted, so no re-list */
        char cmd[64];
        snprintf(cmd, sizeof cmd, "compact %lld", (long long)moved);
        assert_int_equal(etcd_ctl(&g_etcd, cmd), 0);
        etcd_stop(&g_etcd);
        assert_int_equal(etcd_run(&g_etcd), 0);
    }
    assert_int_equal(sv_catalog_put(c, "p/2", "2", 1, 0, &err), 0);
    const char *after[] = {"PUT p/2=2"};
    expect_events(&l, 3, after, 1);
    sv_catalog_watch_stop(w);
    sv_catalog_close(c);
}

/* ---- etcd only ------------------------------------------------------------------ */

static void etcd_urls(void **state)
{
    sv_catalog *c = NULL;
    sv_err err = {0};
    assert_int_equal(sv_catalog_open("etcd://", &c, &err), SV_EINVAL);
    assert_int_equal(sv_catalog_open("etcd://hostonly", &c, &err), SV_EINVAL);
    assert_int_equal(sv_catalog_open("etcd://h:1,", &c, &err), SV_EINVAL);
    assert_int_equal(sv_catalog_open("etcd://h:1?bogus=1", &c, &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "bogus"));
    assert_int_equal(sv_catalog_open("etcd://h:1?retry_ms=x", &c, &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "retry_ms needs a number of milliseconds"));
    assert_int_equal(sv_catalog_open("etcd://h:1?max_txn_ops=0", &c, &err), SV_EINVAL);
    assert_int_equal(sv_catalog_open("etcd://h;rm:1", &c, &err), SV_EINVAL);
    /* nobody there: unavailable, saying so */
    char url[200];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d?retry_ms=300", etcd_free_port());
    assert_int_equal(sv_catalog_open(url, &c, &err), SV_EUNAVAIL);
    assert_non_null(strstr(err.msg, "no etcd endpoint answered"));
    assert_null(c);
    /* namespaces keep two catalogs apart */
    sv_catalog *a = NULL, *b = NULL;
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d/nsA/", g_etcd.client_port);
    assert_int_equal(sv_catalog_open(url, &a, &err), 0);
    assert_string_equal(sv_catalog_driver_name(a), "etcd");
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d/nsB/", g_etcd.client_port);
    assert_int_equal(sv_catalog_open(url, &b, &err), 0);
    assert_int_equal(sv_catalog_put(a, "k", "A", 1, 0, &err), 0);
    assert_int_equal(sv_catalog_put(b, "k", "B", 1, 0, &err), 0);
    expect_val(a, "k", "A");
    expect_val(b, "k", "B");
    struct seen s = {0};
    assert_int_equal(sv_catalog_scan(a, "", collect, &s, &err), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.keys[0], "k=A");
    sv_catalog_close(a);
    sv_catalog_close(b);
}

/* A dead endpoint listed first: every call, and a watch, go to the live one. */
static void etcd_failover(void **state)
{
    char url[300];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d,127.0.0.1:%d/fo/", etcd_free_port(), g_etcd.client_port);
    sv_catalog *c = NULL;
    sv_err err = {0};
    assert_int_equal(sv_catalog_open(url, &c, &err), 0);
    assert_int_equal(sv_catalog_put(c, "x", "1", 1, 0, &err), 0);
    expect_val(c, "x", "1");
    wlog l;
    wlog_init(&l);
    sv_catalog_watch *w = NULL;
    assert_int_equal(sv_catalog_watch_start(c, "", 0, wlog_fn, &l, &w, &err), 0);
    const char *listing[] = {"RESET", "PUT x=1", "SYNCED"};
    expect_events(&l, 0, listing, 3);
    assert_int_equal(sv_catalog_put(c, "y", "2", 1, 0, &err), 0);
    const char *one[] = {"PUT y=2"};
    expect_events(&l, 3, one, 1);
    sv_catalog_watch_stop(w);
    sv_catalog_close(c);

    /* A hung endpoint (takes the connection, never answers) listed first:
     * one attempt times out, the call goes to the next endpoint. */
    int hung = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(hung, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(hung, 16), 0);
    assert_int_equal(getsockname(hung, (struct sockaddr *)&a, &al), 0);
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d,127.0.0.1:%d/fo/?timeout_ms=500", ntohs(a.sin_port),
             g_etcd.client_port);
    assert_int_equal(sv_catalog_open(url, &c, &err), 0);
    assert_int_equal(sv_catalog_put(c, "z", "3", 1, 0, &err), 0);
    expect_val(c, "z", "3");
    sv_catalog_cond cond = {"z", rev_of(c, "z")};
    sv_catalog_op op = {"z", "4", 1, 0};
    assert_int_equal(sv_catalog_txn(c, &cond, 1, &op, 1, &err), 0);
    expect_val(c, "z", "4");
    sv_catalog_close(c);
    close(hung);
}

/* A real three-member cluster: the member the driver talks to is killed
 * (-9), then another one; calls and a running watch carry on through the
 * survivors. */
static void etcd_member_loss(void **state)
{
    etcd_proc m[3];
    char root[1100];
    snprintf(root, sizeof root, "%s/cluster3", g_root);
    assert_int_equal(etcd_cluster_start(root, m, 3), 0);
    char url[600];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/ml/", m[0].client_port,
             m[1].client_port, m[2].client_port);
    sv_catalog *c = NULL;
    sv_err err = {0};
    assert_int_equal(sv_catalog_open(url, &c, &err), 0);
    assert_int_equal(sv_catalog_put(c, "a", "1", 1, 0, &err), 0);
    int64_t lid;
    assert_int_equal(sv_catalog_lease_grant(c, 30000, &lid, &err), 0);
    assert_int_equal(sv_catalog_put(c, "eph", "e", 1, lid, &err), 0);
    wlog l;
    wlog_init(&l);
    sv_catalog_watch *w = NULL;
    assert_int_equal(sv_catalog_watch_start(c, "", 0, wlog_fn, &l, &w, &err), 0);
    const char *listing[] = {"RESET", "PUT a=1", "PUT eph=e", "SYNCED"};
    expect_events(&l, 0, listing, 4);

    etcd_kill(&m[0]); /* the endpoint every call went to */
    assert_int_equal(sv_catalog_put(c, "b", "2", 1, 0, &err), 0);
    expect_val(c, "a", "1");
    assert_int_equal(sv_catalog_lease_keepalive(c, lid, &err), 0);
    sv_catalog_cond cond = {"b", rev_of(c, "b")};
    sv_catalog_op op = {"b", "22", 2, 0};
    assert_int_equal(sv_catalog_txn(c, &cond, 1, &op, 1, &err), 0);
    const char *moved[] = {"PUT b=2", "PUT b=22"};
    expect_events(&l, 4, moved, 2);

    /* the first member comes back, another goes: still a quorum */
    assert_int_equal(etcd_run(&m[0]), 0);
    etcd_kill(&m[1]);
    assert_int_equal(sv_catalog_put(c, "c", "3", 1, 0, &err), 0);
    expect_val(c, "eph", "e");
    const char *again[] = {"PUT c=3"};
    expect_events(&l, 6, again, 1);
    sv_catalog_watch_stop(w);
    assert_int_equal(sv_catalog_lease_revoke(c, lid, &err), 0);
    sv_catalog_close(c);
    for (int i = 0; i < 3; i++)
        etcd_stop(&m[i]);
}

/* etcd stops and comes back: calls during the outage fail with SV_EUNAVAIL
 * and a reason, nothing acknowledged is lost, a lease outlives an outage
 * shorter than its TTL, and a running watch carries on. */
static void etcd_outage(void **state)
{
    char url[300];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d/out/?retry_ms=500", g_etcd.client_port);
    sv_catalog *c = NULL;
    sv_err err = {0};
    assert_int_equal(sv_catalog_open(url, &c, &err), 0);
    int64_t lid;
    assert_int_equal(sv_catalog_lease_grant(c, 30000, &lid, &err), 0);
    assert_int_equal(sv_catalog_put(c, "eph", "e", 1, lid, &err), 0);
    assert_int_equal(sv_catalog_put(c, "acked", "a", 1, 0, &err), 0);
    wlog l;
    wlog_init(&l);
    sv_catalog_watch *w = NULL;
    assert_int_equal(sv_catalog_watch_start(c, "", 0, wlog_fn, &l, &w, &err), 0);
    const char *listing[] = {"RESET", "PUT acked=a", "PUT eph=e", "SYNCED"};
    expect_events(&l, 0, listing, 4);

    etcd_stop(&g_etcd);
    assert_int_equal(sv_catalog_put(c, "lost", "l", 1, 0, &err), SV_EUNAVAIL);
    assert_non_null(strstr(err.msg, "catalog unavailable"));
    char *v;
    size_t n;
    assert_int_equal(sv_catalog_get(c, "acked", &v, &n, NULL, &err), SV_EUNAVAIL);
    assert_non_null(strstr(err.msg, "has answered since")); /* known down: one round, no waiting */
    assert_int_equal(sv_catalog_lease_keepalive(c, lid, &err), SV_EUNAVAIL);
    sv_buf m = {0};
    sv_catalog_metrics(&m, c);
    assert_non_null(strstr(sv_buf_cstr(&m), "shardvault_catalog_up{driver=\"etcd\"} 0\n"));
    assert_null(strstr(sv_buf_cstr(&m), "shardvault_catalog_unavailable_total 0\n"));
    assert_int_equal(etcd_run(&g_etcd), 0);

    expect_val(c, "acked", "a");
    expect_val(c, "eph", "e");
    assert_int_equal(sv_catalog_lease_keepalive(c, lid, &err), 0);
    assert_int_equal(sv_catalog_get(c, "lost", &v, &n, NULL, &err), SV_ENOTFOUND);
    assert_int_equal(sv_catalog_put(c, "after", "b", 1, 0, &err), 0);
    /* the watch reconnects by itself and resumes where it was (no re-list) */
    const char *after[] = {"PUT after=b"};
    expect_events(&l, 4, after, 1);
    sv_catalog_watch_stop(w);
    assert_int_equal(sv_catalog_lease_revoke(c, lid, &err), 0);
    sv_buf_reset(&m);
    sv_catalog_metrics(&m, c);
    assert_non_null(strstr(sv_buf_cstr(&m), "shardvault_catalog_up{driver=\"etcd\"} 1\n"));
    assert_non_null(strstr(sv_buf_cstr(&m), "shardvault_catalog_watch_relists_total 1\n")); /* the first listing only */
    sv_buf_free(&m);
    sv_catalog_close(c);
}

static int etcd_up(void **state)
{
    g_etcd_on = true;
    return etcd_start(g_root, &g_etcd);
}

static int etcd_down(void **state)
{
    etcd_stop(&g_etcd);
    g_etcd_on = false;
    return 0;
}

int main(void)
{
    if (sv_test_root("catalog", g_root, sizeof g_root))
        return 1;
    const struct CMUnitTest embedded_tests[] = {
        cmocka_unit_test(urls),          cmocka_unit_test(basic_crud_scan),    cmocka_unit_test(txn_semantics),
        cmocka_unit_test(leases),        cmocka_unit_test(reopen_persists),    cmocka_unit_test(concurrent_writers),
        cmocka_unit_test(txn_limits),    cmocka_unit_test(watch_events),       cmocka_unit_test(watch_resume_relist),
        cmocka_unit_test(watch_progress),
    };
    const struct CMUnitTest etcd_tests[] = {
        cmocka_unit_test(etcd_urls),     cmocka_unit_test(basic_crud_scan),    cmocka_unit_test(txn_semantics),
        cmocka_unit_test(leases),        cmocka_unit_test(concurrent_writers), cmocka_unit_test(txn_limits),
        cmocka_unit_test(watch_events),  cmocka_unit_test(watch_resume_relist), cmocka_unit_test(etcd_failover),
        cmocka_unit_test(etcd_outage),   cmocka_unit_test(watch_progress),     cmocka_unit_test(etcd_member_loss),
    };
    int rc = cmocka_run_group_tests_name("embedded", embedded_tests, NULL, NULL);
    rc |= cmocka_run_group_tests_name("etcd", etcd_tests, etcd_up, etcd_down);
    if (rc == 0)
        sv_rmtree(g_root, NULL);
    return rc;
}
