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


/* Placement: two nodes (two stores sharing one catalog, placement on). Shards
 * go to the node with the fewest, ties by name; each store serves only its
 * own; the other node's collection and tenants reach a view by the watch or
 * on a miss; a capture of a spread collection is refused. */
static sv_store *store_at(sv_catalog *cat, const char *name)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/pl-%s", g_root, name);
    sv_store_opts so = {.data_dir = d, .node_name = name};
    sv_store *st = NULL;
    sv_err err = {0};
    if (sv_store_open(&so, cat, &st, &err))
        fail_msg("%s", err.msg);
    return st;
}

static sv_cluster *placed_node(sv_catalog *cat, sv_store *st, const char *name)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/pl-%s", g_root, name);
    sv_cluster_opts o = {.node_name = name, .data_dir = d, .ttl_ms = 2000, .store = st, .placement = true,
                         .secret = "0123456789abcdef0123"};
    sv_cluster *c = NULL;
    sv_err err = {0};
    if (sv_cluster_open(&o, cat, &c, &err))
        fail_msg("%s", err.msg);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", name[0] == 'a' ? 1 : 2);
    if (sv_cluster_join(c, url, &err))
        fail_msg("%s", err.msg);
    return c;
}

static void placement(void **state)
{
    sv_catalog *cat = open_cat("placement");
    sv_store *sa = store_at(cat, "a"), *sb = store_at(cat, "b");
    sv_cluster *ca = placed_node(cat, sa, "a"), *cb = placed_node(cat, sb, "b");
    sv_err err = {0};
    /* the secret: at least 16 characters */
    sv_cluster *bad = NULL;
    sv_cluster_opts short_secret = {.node_name = "x", .data_dir = g_root, .secret = "short"};
    assert_int_equal(sv_cluster_open(&short_secret, cat, &bad, &err), SV_EINVAL);
    assert_int_equal(sv_cluster_check_secret(ca, "0123456789abcdef0123", &err), 0);
    assert_int_equal(sv_cluster_check_secret(ca, "0123456789abcdef012", &err), SV_EDENIED);
    assert_int_equal(sv_cluster_check_secret(ca, NULL, &err), SV_EDENIED);

    const char *schema = "{\"name\":\"P\",\"shards\":4,\"vectors\":{\"default\":{\"dim\":1}}}";
    json_t *out = NULL;
    assert_int_equal(sv_store_create_collection(sa, schema, strlen(schema), &out, &err), 0);
    json_decref(out);
    sv_shard_info *sh = NULL;
    size_t n = 0;
    assert_int_equal(sv_store_shards(sa, "P", &sh, &n, &err), 0);
    assert_int_equal(n, 4);
    const char *want[] = {"a", "b", "a", "b"}; /* fewest first, ties by name */
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(sh[i].node, want[i]);
        assert_int_equal(sh[i].local, !strcmp(want[i], "a"));
    }
    free(sh);
    /* b learns of P (its watch, or a lookup on the miss) and agrees. */
    char node[65], shard[72];
    int tries = 0;
    while (sv_store_owner(sb, "P", NULL, "00000000-0000-4000-8000-000000000001", node, shard, &err) != 0 && tries++ < 100)
        sv_sleep_ms(20);
    assert_int_equal(sv_store_owner(sa, "P", NULL, "00000000-0000-4000-8000-000000000001", node, shard, &err), 0);
    char node_b[65], shard_b[72];
    assert_int_equal(sv_store_owner(sb, "P", NULL, "00000000-0000-4000-8000-000000000001", node_b, shard_b, &err), 0);
    assert_string_equal(node, node_b);
    assert_string_equal(shard, shard_b);
    /* The node that does not own the shard refuses to open it, naming the owner. */
    sv_store *wrong = strcmp(node, "a") ? sa : sb;
    sv_store *right = strcmp(node, "a") ? sb : sa;
    const char *obj = "{\"id\":\"00000000-0000-4000-8000-000000000001\",\"vector\":[1]}";
    sv_buf buf = {0};
    assert_int_equal(sv_store_put_object(wrong, "P", NULL, NULL, obj, strlen(obj), &buf, &err), SV_EUNAVAIL);
    assert_non_null(strstr(err.msg, node));
    assert_int_equal(sv_store_put_object(right, "P", NULL, NULL, obj, strlen(obj), &buf, &err), 0);
    sv_buf_free(&buf);
    /* Owners of a listing: both nodes. */
    char (*owners)[65] = NULL;
    assert_int_equal(sv_store_owner_nodes(sb, "P", NULL, &owners, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(owners[0], "a");
    assert_string_equal(owners[1], "b");
    free(owners);
    /* A capture across nodes is refused. */
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/pl-cap", g_root);
    sv_capture *cap = NULL;
    assert_int_equal(sv_store_capture(sa, "P", dir, &cap, &err), SV_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "other nodes"));

    /* Tenants: placed one by one on the node with fewest shards (2 + 2 now). */
    const char *mt = "{\"name\":\"M\",\"multiTenancy\":true,\"vectors\":{\"default\":{\"dim\":1}}}";
    assert_int_equal(sv_store_create_collection(sb, mt, strlen(mt), &out, &err), 0);
    json_decref(out);
    json_t *body = json_loads("{\"tenants\":[{\"name\":\"t1\"},{\"name\":\"t2\"},{\"name\":\"t3\"}]}", 0, NULL);
    tries = 0;
    while (sv_store_add_tenants(sa, "M", body, &out, &err) == SV_ENOTFOUND && tries++ < 100) {
        sv_store_sync_collection(sa, "M", NULL); /* not seen by a's watch yet */
        sv_sleep_ms(20);
    }
    json_decref(out);
    json_decref(body);
    assert_int_equal(sv_store_owner(sb, "M", "t1", NULL, node, NULL, &err), 0); /* b looks it up on the miss */
    assert_string_equal(node, "a");
    assert_int_equal(sv_store_owner(sb, "M", "t2", NULL, node, NULL, &err), 0);
    assert_string_equal(node, "b");
    /* Deleting the collection on b removes it from a's view too (watch). */
    assert_int_equal(sv_store_delete_collection(sb, "P", &err), 0);
    tries = 0;
    while (sv_store_get_collection(sa, "P", &out, &err) == 0 && tries++ < 200) {
        json_decref(out);
        sv_sleep_ms(20);
    }
    assert_int_equal(sv_store_get_collection(sa, "P", &out, &err), SV_ENOTFOUND);

    sv_cluster_close(ca);
    sv_cluster_close(cb);
    sv_store_close(sa);
    sv_store_close(sb);
    sv_catalog_close(cat);
}

/* Tenant records from before placement (no node) are claimed by the first
 * node that joins with placement on; other views then route them to it. */
static void claim_old_tenants(void **state)
{
    sv_catalog *cat = open_cat("claim");
    sv_err err = {0};
    const char *coll = "{\"format_version\":1,\"name\":\"Old\",\"uid\":\"0123456789abcdef\",\"createdAt\":1,"
                       "\"schema\":{\"name\":\"Old\",\"multiTenancy\":true,\"vectors\":{\"default\":{\"dim\":1}}}}";
    const char *ten = "{\"format_version\":1,\"name\":\"t0\",\"status\":\"ACTIVE\"}";
    assert_int_equal(sv_catalog_put(cat, "collections/Old", coll, strlen(coll), 0, &err), 0);
    assert_int_equal(sv_catalog_put(cat, "tenants/Old/t0", ten, strlen(ten), 0, &err), 0);
    sv_store *sa = store_at(cat, "ca");
    sv_cluster *ca = placed_node(cat, sa, "ca");
    char *v = NULL;
    size_t n = 0;
    assert_int_equal(sv_catalog_get(cat, "tenants/Old/t0", &v, &n, NULL, &err), 0);
    assert_non_null(strstr(v, "\"node\":\"ca\""));
    free(v);
    char node[65];
    assert_int_equal(sv_store_owner(sa, "Old", "t0", NULL, node, NULL, &err), 0);
    assert_string_equal(node, "ca");
    sv_store *sb = store_at(cat, "cb"); /* a node started later sees the claim */
    assert_int_equal(sv_store_owner(sb, "Old", "t0", NULL, node, NULL, &err), 0);
    assert_string_equal(node, "ca");
    sv_store_close(sb);
    sv_cluster_close(ca);
    sv_store_close(sa);
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
        cmocka_unit_test(placement),
        cmocka_unit_test(claim_old_tenants),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        sv_rmtree(g_root, NULL);
    return rc;
}
