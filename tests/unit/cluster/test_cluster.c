#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test_root.h"
#include "cluster.h"

static char g_root[1024];

static sv_catalog *open_cat(const char *name)
{
    char url[1200];
    snprintf(url, sizeof url, "embedded://%s/%s", g_root, name);
    sv_catalog *c = NULL;
    sv_err err = {0};
    if (sv_catalog_open(url, &c, &err))
        fail_msg("%s", err.msg);
    return c;
}

static sv_cluster *node(sv_catalog *cat, const char *name, const char *dir, int64_t ttl)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/%s", g_root, dir);
    sv_err err = {0};
    assert_int_equal(sv_mkdirs(d, &err), 0);
    sv_cluster_opts o = {.node_name = name, .data_dir = d, .ttl_ms = ttl};
    sv_cluster *c = NULL;
    if (sv_cluster_open(&o, cat, &c, &err))
        fail_msg("%s", err.msg);
    return c;
}

/* The status of name in GET /v1/nodes, or NULL when not listed. */
static const char *status_of(sv_cluster *c, const char *name, char buf[32])
{
    json_t *out = NULL;
    sv_err err = {0};
    assert_int_equal(sv_cluster_nodes(c, &out, &err), 0);
    size_t i;
    json_t *n;
    const char *st = NULL;
    json_array_foreach(json_object_get(out, "nodes"), i, n)
    {
        assert_int_equal(json_object_size(n), 7);
        if (!strcmp(json_string_value(json_object_get(n, "name")), name)) {
            snprintf(buf, 32, "%s", json_string_value(json_object_get(n, "status")));
            st = buf;
        }
    }
    json_decref(out);
    return st;
}

static void wait_status(sv_cluster *c, const char *name, const char *want)
{
    char buf[32];
    const char *st = NULL;
    for (int i = 0; i < 400; i++) {
        st = status_of(c, name, buf);
        if (st && !strcmp(st, want))
            return;
        sv_sleep_ms(50);
    }
    fail_msg("node %s is %s, want %s", name, st ? st : "absent", want);
}

static void options(void **state)
{
    sv_catalog *cat = open_cat("opts");
    sv_err err = {0};
    sv_cluster *c = NULL;
    sv_cluster_opts bad = {.node_name = "no/slash", .data_dir = g_root};
    assert_int_equal(sv_cluster_open(&bad, cat, &c, &err), SV_EINVAL);
    sv_cluster_opts ttl = {.node_name = "n", .data_dir = g_root, .ttl_ms = 10};
    assert_int_equal(sv_cluster_open(&ttl, cat, &c, &err), SV_EINVAL);
    c = node(cat, "n", "opts-n", 1000);
    assert_int_equal(sv_cluster_join(c, "ftp://x:1", &err), SV_EINVAL);
    assert_int_equal(sv_cluster_join(c, "http://h:1/path", &err), SV_EINVAL);
    assert_int_equal(sv_cluster_join(c, "http://u@h:1", &err), SV_EINVAL);
    char buf[32];
    assert_null(status_of(c, "n", buf)); /* not joined yet */
    assert_int_equal(sv_cluster_join(c, "http://127.0.0.1:1/", &err), 0);
    assert_string_equal(status_of(c, "n", buf), "HEALTHY");
    assert_int_equal(sv_cluster_join(c, "http://127.0.0.1:1", &err), SV_ESTATE);
    sv_cluster_close(c);
    sv_catalog_close(cat);
}

static void membership(void **state)
{
    sv_catalog *cat = open_cat("members");
    sv_err err = {0};
    sv_cluster *a = node(cat, "a", "dir-a", 1000), *b = node(cat, "b", "dir-b", 1000);
    assert_int_equal(sv_cluster_join(a, "http://127.0.0.1:1001", &err), 0);
    assert_int_equal(sv_cluster_join(b, "http://127.0.0.1:1002", &err), 0);
    wait_status(a, "b", "HEALTHY");
    json_t *out = NULL;
    assert_int_equal(sv_cluster_nodes(b, &out, &err), 0);
    json_t *first = json_array_get(json_object_get(out, "nodes"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "name")), "a");
    assert_string_equal(json_string_value(json_object_get(first, "url")), "http://127.0.0.1:1001");
    json_decref(out);
    for (int i = 0; i < 200 && sv_cluster_healthy_count(a) != 2; i++)
        sv_sleep_ms(20);
    assert_int_equal(sv_cluster_healthy_count(a), 2);

    /* kept alive past several TTLs */
    sv_sleep_ms(2500);
    char buf[32];
    assert_string_equal(status_of(a, "b", buf), "HEALTHY");

    /* a lease lost (revoked behind the node's back): it registers again */
    char *v = NULL;
    size_t n;
    assert_int_equal(sv_catalog_get(cat, "nodes/b", &v, &n, NULL, &err), 0);
    json_t *rec = json_loads(v, 0, NULL);
    free(v);
    int64_t lease = strtoll(json_string_value(json_object_get(rec, "lease")), NULL, 10);
    json_decref(rec);
    assert_int_equal(sv_catalog_lease_revoke(cat, lease, &err), 0);
    assert_string_equal(status_of(a, "b", buf), "UNREACHABLE");
    wait_status(a, "b", "HEALTHY");
    sv_buf m = {0};
    sv_cluster_metrics(&m, b);
    assert_non_null(strstr(sv_buf_cstr(&m), "shardvault_cluster_lease_losses_total 1"));
    sv_buf_free(&m);

    /* another identity under a live name waits out TTL + 2 s, then refuses */
    sv_cluster *imp = node(cat, "a", "dir-imposter", 1000);
    assert_int_equal(sv_cluster_join(imp, "http://127.0.0.1:1003", &err), SV_ECONFLICT);
    assert_non_null(strstr(err.msg, "http://127.0.0.1:1001"));
    sv_cluster_close(imp);
    assert_string_equal(status_of(b, "a", buf), "HEALTHY");

    /* close revokes: UNREACHABLE at once, still listed */
    sv_cluster_close(b);
    assert_string_equal(status_of(a, "b", buf), "UNREACHABLE");
    /* the same data directory takes its name over at once */
    b = node(cat, "b", "dir-b", 1000);
    assert_int_equal(sv_cluster_join(b, "http://127.0.0.1:1004", &err), 0);
    assert_string_equal(status_of(a, "b", buf), "HEALTHY");
    sv_cluster_close(a);
    sv_cluster_close(b);
    sv_catalog_close(cat);
}

/* A crashed node (no close: its lease stays) comes back under the same
 * identity without waiting for the old lease. */
static void takeover_after_crash(void **state)
{
    sv_catalog *cat = open_cat("crash");
    sv_err err = {0};
    /* simulate the crashed process: a record with our id under a long lease */
    sv_cluster *c = node(cat, "x", "dir-x", 60000);
    assert_int_equal(sv_cluster_join(c, "http://127.0.0.1:2001", &err), 0);
    size_t n;
    /* "crash": put the record back under the old lease as the dead process left it */
    sv_cluster_close(c);
    int64_t l;
    assert_int_equal(sv_catalog_lease_grant(cat, 60000, &l, &err), 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/dir-x/node.id", g_root);
    char *id = NULL;
    assert_int_equal(sv_read_file(path, &id, &n, &err), 0);
    id[36] = 0;
    char recs[300];
    snprintf(recs, sizeof recs, "{\"format_version\":1,\"name\":\"x\",\"id\":\"%s\",\"url\":\"http://old\",\"lease\":\"%lld\"}",
             id, (long long)l);
    free(id);
    assert_int_equal(sv_catalog_put(cat, "nodes/x", recs, strlen(recs), l, &err), 0);
    c = node(cat, "x", "dir-x", 60000);
    assert_int_equal(sv_cluster_join(c, "http://127.0.0.1:2002", &err), 0);
    /* it took the record over (not waiting out the old lease) and revoked that lease */
    assert_int_equal(sv_catalog_lease_keepalive(cat, l, &err), SV_ENOTFOUND);
    char buf[32];
    assert_string_equal(status_of(c, "x", buf), "HEALTHY");
    sv_cluster_close(c);
    sv_catalog_close(cat);
}

int main(void)
{
    if (sv_test_root("cluster", g_root, sizeof g_root))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(options),
        cmocka_unit_test(membership),
        cmocka_unit_test(takeover_after_crash),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        sv_rmtree(g_root, NULL);
    return rc;
}
