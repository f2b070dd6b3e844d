/* The store's part of a shard move (docs/cluster.md "Shard moves"), on two
 * stores sharing one catalog with placement on: the write gate holds a write
 * until the switch and the write then fails over naming the new owner; the
 * switch is one conditioned transaction that the other view reads; an
 * abandoned move lets the held write go on where it was; a record naming
 * another owner refuses the switch. */
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

static sv_store *store_at(sv_catalog *cat, const char *name)
{
    char d[1200];
    snprintf(d, sizeof d, "%s/mv-%s", g_root, name);
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
    snprintf(d, sizeof d, "%s/mv-%s", g_root, name);
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

typedef struct writer {
    sv_store *st;
    char id[37];
    atomic_bool done;
    int rc;
    sv_err err;
} writer;

static void *write_one(void *arg)
{
    writer *w = arg;
    char obj[200];
    snprintf(obj, sizeof obj, "{\"id\":\"%s\",\"vector\":[2]}", w->id);
    sv_buf out = {0};
    w->rc = sv_store_put_object(w->st, "P", NULL, NULL, obj, strlen(obj), &out, &w->err);
    sv_buf_free(&out);
    atomic_store(&w->done, true);
    return NULL;
}

/* An id of shard0000 (as both views route it). */
static void id_of_shard0(sv_store *st, char id[37], int salt)
{
    for (int i = 0; i < 10000; i++) {
        snprintf(id, 37, "00000000-0000-4000-8000-%012d", i * 7 + salt);
        char node[65], shard[72];
        sv_err err = {0};
        assert_int_equal(sv_store_owner(st, "P", NULL, id, node, shard, &err), 0);
        if (!strcmp(shard, "shard0000"))
            return;
    }
    fail_msg("no id of shard0000");
}

static void gate_and_switch(void **state)
{
    (void)state;
    sv_catalog *cat = open_cat("move");
    sv_store *sa = store_at(cat, "a"), *sb = store_at(cat, "b");
    sv_cluster *ca = placed_node(cat, sa, "a"), *cb = placed_node(cat, sb, "b");
    sv_err err = {0};
    const char *schema = "{\"name\":\"P\",\"shards\":2,\"vectors\":{\"default\":{\"dim\":1}}}";
    json_t *out = NULL;
    assert_int_equal(sv_store_create_collection(sa, schema, strlen(schema), &out, &err), 0);
    json_decref(out);
    assert_int_equal(sv_store_sync_collection(sb, "P", &err), 0);
    char node[65];
    bool tenant = true;
    assert_int_equal(sv_store_shard_node(sb, "P", "shard0000", node, &tenant, &err), 0);
    assert_string_equal(node, "a");
    assert_false(tenant);
    assert_int_equal(sv_store_shard_node(sb, "P", "shard0007", node, NULL, &err), SV_ENOTFOUND);

    char x[37], y[37];
    id_of_shard0(sa, x, 1);
    id_of_shard0(sa, y, 2);
    char obj[200];
    snprintf(obj, sizeof obj, "{\"id\":\"%s\",\"vector\":[1]}", x);
    sv_buf buf = {0};
    assert_int_equal(sv_store_put_object(sa, "P", NULL, NULL, obj, strlen(obj), &buf, &err), 0);
    sv_buf_free(&buf);

    /* Only the owner moves a shard, one move at a time. */
    assert_int_equal(sv_store_move_begin(sb, "P", "shard0000", &err), SV_EUNAVAIL);
    assert_int_equal(sv_store_move_begin(sa, "P", "shard0000", &err), 0);
    assert_int_equal(sv_store_move_begin(sa, "P", "shard0000", &err), SV_ECONFLICT);
    assert_int_equal(sv_store_move_fence(sa, "P", "shard0000", 1000, &err), 0);

    /* A write meets the closed gate and waits. */
    writer w = {.st = sa};
    snprintf(w.id, sizeof w.id, "%s", y);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_one, &w), 0);
    sv_sleep_ms(200);
    assert_false(atomic_load(&w.done));
    /* Reads go on. */
    assert_int_equal(sv_store_get_object(sa, "P", NULL, x, &buf, &err), 0);
    sv_buf_free(&buf);

    /* The catch-up: a checkpoint with every acknowledged write, laid out where b keeps the shard. */
    char ck[1200], dir[1024];
    snprintf(ck, sizeof ck, "%s/ck", g_root);
    int64_t objects = -1;
    assert_int_equal(sv_store_move_checkpoint(sa, "P", "shard0000", ck, &objects, &err), 0);
    assert_int_equal(objects, 1);
    assert_int_equal(sv_store_move_target_dir(sa, "P", "shard0000", dir, &err), SV_ECONFLICT); /* a's own */
    assert_int_equal(sv_store_move_target_dir(sb, "P", "shard0000", dir, &err), 0);
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", dir);
    *strrchr(parent, '/') = 0;
    assert_int_equal(sv_mkdirs(parent, &err), 0);
    assert_int_equal(rename(ck, dir), 0);

    /* The switch: reads fail over at once; the held write waits for the finish, then fails over naming b. */
    bool unknown = true;
    assert_int_equal(sv_store_move_switch(sa, "P", "shard0000", "b", &unknown, &err), 0);
    assert_false(unknown);
    assert_int_equal(sv_store_get_object(sa, "P", NULL, x, &buf, &err), SV_EUNAVAIL);
    sv_sleep_ms(100);
    assert_false(atomic_load(&w.done));
    sv_store_move_finish(sa, "P", "shard0000");
    pthread_join(th, NULL);
    assert_int_equal(w.rc, SV_EUNAVAIL);
    assert_non_null(strstr(w.err.msg, "served by node b"));
    assert_int_equal(sv_store_shard_node(sa, "P", "shard0000", node, NULL, &err), 0);
    assert_string_equal(node, "b");
    char olddir[1024];
    assert_int_equal(sv_store_move_target_dir(sa, "P", "shard0000", olddir, &err), 0); /* not a's any more */
    assert_false(sv_path_exists(olddir));                                              /* a's copy is gone */

    /* b reads the record (its watch would bring it too) and serves the shard with its data. */
    assert_int_equal(sv_store_refresh_shard(sb, "P", "shard0000", &err), 0);
    assert_int_equal(sv_store_get_object(sb, "P", NULL, x, &buf, &err), 0);
    sv_buf_free(&buf);
    snprintf(obj, sizeof obj, "{\"id\":\"%s\",\"vector\":[2]}", y);
    assert_int_equal(sv_store_put_object(sb, "P", NULL, NULL, obj, strlen(obj), &buf, &err), 0);
    sv_buf_free(&buf);
    assert_int_equal(sv_store_get_object(sa, "P", NULL, x, &buf, &err), SV_EUNAVAIL);

    /* An abandoned move: the held write goes on where it was. */
    assert_int_equal(sv_store_move_begin(sb, "P", "shard0000", &err), 0);
    assert_int_equal(sv_store_move_fence(sb, "P", "shard0000", 1000, &err), 0);
    writer w2 = {.st = sb};
    id_of_shard0(sb, w2.id, 3);
    assert_int_equal(pthread_create(&th, NULL, write_one, &w2), 0);
    sv_sleep_ms(100);
    assert_false(atomic_load(&w2.done));
    sv_store_move_end(sb, "P", "shard0000");
    pthread_join(th, NULL);
    assert_int_equal(w2.rc, 0);

    /* A placement record that names another owner refuses the switch; nothing changes. */
    const char *rec = "{\"format_version\":1,\"node\":\"a\"}";
    assert_int_equal(sv_catalog_put(cat, "shards/P/shard0000", rec, strlen(rec), 0, &err), 0);
    assert_int_equal(sv_store_move_begin(sb, "P", "shard0000", &err), 0);
    assert_int_equal(sv_store_move_switch(sb, "P", "shard0000", "a", &unknown, &err), SV_ECONFLICT);
    assert_false(unknown);
    bool sw = true;
    assert_int_equal(sv_store_move_resolve(sb, "P", "shard0000", "b", &sw, &err), 0); /* the record names a */
    assert_false(sw);
    assert_non_null(strstr(err.msg, "names node a"));
    sv_store_move_end(sb, "P", "shard0000");
    snprintf(obj, sizeof obj, "{\"id\":\"%s\",\"vector\":[3]}", y);
    assert_int_equal(sv_store_put_object(sb, "P", NULL, NULL, obj, strlen(obj), &buf, &err), 0);
    sv_buf_free(&buf);

    sv_cluster_close(ca);
    sv_cluster_close(cb);
    sv_store_close(sa);
    sv_store_close(sb);
    sv_catalog_close(cat);
}

int main(void)
{
    if (sv_test_root("cluster_move", g_root, sizeof g_root))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gate_and_switch),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        sv_rmtree(g_root, NULL);
    return rc;
}
