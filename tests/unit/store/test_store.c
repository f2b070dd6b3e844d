/* Store: capture (point in time across shards, inactive tenants from disk)
 * and adoption of captured shards as a new collection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "engine.h"
#include "store.h"
#include "store_internal.h"

static char base[512];
static sv_catalog *cat;
static sv_store *st;

static int setup(void **state)
{
    const char *tmp = getenv("SV_TEST_TMP") ? getenv("SV_TEST_TMP") : "/tmp";
    snprintf(base, sizeof base, "%s/store-%d", tmp, (int)getpid());
    sv_err err = {0};
    sv_rmtree(base, &err);
    char catdir[600];
    snprintf(catdir, sizeof catdir, "%s/catalog", base);
    assert_int_equal(sv_mkdirs(base, &err), 0);
    assert_int_equal(sv_catalog_open(catdir, &cat, &err), 0);
    sv_store_opts o = {.data_dir = base};
    assert_int_equal(sv_store_open(&o, cat, &st, &err), 0);
    return 0;
}

static int teardown(void **state)
{
    sv_store_close(st);
    sv_catalog_close(cat);
    sv_err err;
    sv_rmtree(base, &err);
    return 0;
}

static void put(const char *coll, const char *tenant, int i)
{
    char json[256], id[40];
    snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", i);
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"vector\":[%d,1],\"properties\":{\"n\":%d}}", id, i, i);
    sv_buf out = {0};
    sv_err err = {0};
    int rc = sv_store_put_object(st, coll, NULL, tenant, json, strlen(json), &out, &err);
    if (rc)
        fail_msg("put: %s", err.msg);
    sv_buf_free(&out);
}

static void reopen(void)
{
    sv_err err = {0};
    sv_store_close(st);
    sv_store_opts o = {.data_dir = base};
    if (sv_store_open(&o, cat, &st, &err) != 0)
        fail_msg("reopen: %s", err.msg);
}

static void create(const char *schema)
{
    sv_err err = {0};
    json_t *j = NULL;
    if (sv_store_create_collection(st, schema, strlen(schema), &j, &err) != 0)
        fail_msg("create: %s", err.msg);
    json_decref(j);
}

static int tenants_call(int (*fn)(sv_store *, const char *, json_t *, json_t **, sv_err *), const char *coll,
                        const char *body_json, sv_err *err)
{
    json_t *body = json_loads(body_json, 0, NULL);
    json_t *j = NULL;
    int rc = fn(st, coll, body, &j, err);
    json_decref(j);
    json_decref(body);
    return rc;
}

/* ---- a cluster snapshot's cut gate ----------------------------------------- */

typedef struct cut_writer {
    int i;
    int rc;
    int64_t done_ns;
} cut_writer;

static void *cut_write(void *arg)
{
    cut_writer *w = arg;
    char json[256], id[40];
    snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", w->i);
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"vector\":[1,1],\"properties\":{\"n\":1}}", id);
    sv_buf out = {0};
    sv_err err = {0};
    w->rc = sv_store_put_object(st, "Cut", NULL, NULL, json, strlen(json), &out, &err);
    w->done_ns = sv_mono_ns();
    sv_buf_free(&out);
    return NULL;
}

static void cut_gate_holds_writes_until_open_or_hold(void **state)
{
    (void)state;
    create("{\"name\":\"Cut\",\"shards\":2,\"vectors\":{\"default\":{\"dim\":2}},"
           "\"properties\":[{\"name\":\"n\",\"type\":\"int\"}]}");
    for (int i = 0; i < 20; i++)
        put("Cut", NULL, i);
    sv_err err = {0};
    uint64_t tok = 0, tok2 = 0;
    size_t n = 0;
    assert_int_equal(sv_store_cut_close(st, "Nope", 100, &tok, &n, &err), SV_ENOTFOUND);
    assert_int_equal(sv_store_cut_close(st, "Cut", 1000, &tok, &n, &err), 0);
    assert_int_equal(n, 2);
    /* A write waits at the closed gate: the checkpoint taken meanwhile lacks it. */
    cut_writer w = {.i = 100};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cut_write, &w), 0);
    usleep(100000);
    assert_int_equal(w.done_ns, 0);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/tmp/cut1", base);
    sv_capture *cap = NULL;
    assert_int_equal(sv_store_capture_ex(st, "Cut", dir, SV_CAPTURE_LOCAL, &cap, &err), 0);
    int64_t objects = 0;
    for (size_t i = 0; i < cap->nshards; i++)
        objects += cap->shards[i].objects;
    assert_int_equal(objects, 20);
    sv_capture_free(cap);
    /* Another cut's token opens nothing; this one's opens, and the write goes on. */
    bool expired = true;
    assert_int_equal(sv_store_cut_open(st, "Cut", tok + 1000, &expired), 0);
    assert_false(expired);
    usleep(50000);
    assert_int_equal(w.done_ns, 0);
    int64_t opened = sv_mono_ns();
    assert_int_equal(sv_store_cut_open(st, "Cut", tok, &expired), 0);
    assert_false(expired);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    assert_true(w.done_ns >= opened);

    /* Nobody opens it: it opens by itself after the hold; the late open says so. */
    assert_int_equal(sv_store_cut_close(st, "Cut", 1000, &tok2, NULL, &err), 0);
    assert_true(tok2 != tok);
    int64_t closed = sv_mono_ns();
    cut_writer w2 = {.i = 101};
    assert_int_equal(pthread_create(&th, NULL, cut_write, &w2), 0);
    pthread_join(th, NULL);
    assert_int_equal(w2.rc, 0);
    assert_true(w2.done_ns - closed >= (int64_t)(SV_STORE_CUT_HOLD_MS - 50) * 1000000);
    assert_int_equal(sv_store_cut_open(st, "Cut", tok2, &expired), 0);
    assert_true(expired);
}

/* ---- update racing delete ----------------------------------------------- */

typedef struct race {
    pthread_barrier_t *bar;
    const char *tenant;
    int rc;
} race;

static void *race_delete(void *arg)
{
    race *r = arg;
    char body[128];
    snprintf(body, sizeof body, "{\"tenants\":[\"%s\"]}", r->tenant);
    json_t *b = json_loads(body, 0, NULL);
    sv_err err = {0};
    pthread_barrier_wait(r->bar);
    r->rc = sv_store_delete_tenants(st, "Race", b, &err);
    json_decref(b);
    return NULL;
}

static void *race_update(void *arg)
{
    race *r = arg;
    char body[128];
    snprintf(body, sizeof body, "{\"tenants\":[{\"name\":\"%s\",\"status\":\"INACTIVE\"}]}", r->tenant);
    json_t *b = json_loads(body, 0, NULL);
    json_t *j = NULL;
    sv_err err = {0};
    pthread_barrier_wait(r->bar);
    r->rc = sv_store_update_tenants(st, "Race", b, &j, &err);
    json_decref(j);
    json_decref(b);
    return NULL;
}

/* Deterministic order: the update has parsed its body, then a delete of the
 * same tenant runs to completion before the update takes the DDL lock. */
static void delete_in_hook(const char *point, const char *arg)
{
    if (strcmp(point, "update_tenants:before_lock") != 0)
        return;
    store_test_hook = NULL;
    sv_err err = {0};
    json_t *b = json_loads("{\"tenants\":[\"gone\"]}", 0, NULL);
    assert_int_equal(sv_store_delete_tenants(st, arg, b, &err), 0);
    json_decref(b);
}

static void update_after_concurrent_delete(void **state)
{
    create("{\"name\":\"Race\",\"multiTenancy\":true,\"vectors\":{\"default\":{\"dim\":2}}}");
    sv_err err = {0};
    assert_int_equal(tenants_call(sv_store_add_tenants, "Race", "{\"tenants\":[{\"name\":\"gone\"}]}", &err), 0);
    put("Race", "gone", 1);
    store_test_hook = delete_in_hook;
    int rc = tenants_call(sv_store_update_tenants, "Race", "{\"tenants\":[{\"name\":\"gone\",\"status\":\"INACTIVE\"}]}",
                          &err);
    store_test_hook = NULL;
    assert_int_equal(rc, SV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "gone"));
    char *val = NULL;
    size_t len;
    assert_int_equal(sv_catalog_get(cat, "tenants/Race/gone", &val, &len, NULL, &err), SV_ENOTFOUND);
    reopen();
    json_t *j = NULL;
    assert_int_equal(sv_store_list_tenants(st, "Race", &j, &err), 0);
    assert_int_equal(json_array_size(json_object_get(j, "tenants")), 0);
    json_decref(j);
}

/* A delete running while an update of the same tenant is under way must not
 * be undone by the update: the tenant stays deleted, also after a restart. */
static void update_racing_delete_keeps_tenant_deleted(void **state)
{
    create("{\"name\":\"Race\",\"multiTenancy\":true,\"vectors\":{\"default\":{\"dim\":2}}}");
    enum { ROUNDS = 100 };
    sv_err err = {0};
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    for (int i = 0; i < ROUNDS; i++) {
        char name[32], body[128];
        snprintf(name, sizeof name, "t%d", i);
        snprintf(body, sizeof body, "{\"tenants\":[{\"name\":\"%s\"}]}", name);
        assert_int_equal(tenants_call(sv_store_add_tenants, "Race", body, &err), 0);
        race d = {&bar, name, -1}, u = {&bar, name, -1};
        pthread_t td, tu;
        pthread_create(&tu, NULL, race_update, &u);
        pthread_create(&td, NULL, race_delete, &d);
        pthread_join(tu, NULL);
        pthread_join(td, NULL);
        assert_int_equal(d.rc, 0);
        assert_true(u.rc == 0 || u.rc == SV_ENOTFOUND);
        /* Whatever the order, the catalog holds no record of the tenant. */
        char key[64], *val = NULL;
        size_t len;
        snprintf(key, sizeof key, "tenants/Race/%s", name);
        int g = sv_catalog_get(cat, key, &val, &len, NULL, &err);
        free(val);
        if (g != SV_ENOTFOUND)
            fail_msg("round %d: tenant %s deleted but its catalog record is back (update rc=%d)", i, name, u.rc);
    }
    pthread_barrier_destroy(&bar);
    reopen();
    json_t *j = NULL;
    assert_int_equal(sv_store_list_tenants(st, "Race", &j, &err), 0);
    assert_int_equal(json_array_size(json_object_get(j, "tenants")), 0);
    json_decref(j);
}

static int64_t count_keys(const char *dir)
{
    sv_engine *e;
    sv_db *db;
    sv_err err = {0};
    assert_int_equal(sv_engine_new(&(sv_engine_opts){0}, &e, &err), 0);
    assert_int_equal(sv_db_open_readonly(e, dir, &db, &err), 0);
    sv_db_iter *it = sv_db_iter_new(db);
    int64_t n = 0;
    for (sv_db_iter_seek_first(it); sv_db_iter_valid(it); sv_db_iter_next(it)) {
        size_t kl;
        sv_db_iter_key(it, &kl);
        n += kl == 16;
    }
    sv_db_iter_free(it);
    sv_db_close(db);
    sv_engine_free(e);
    return n;
}

static void capture_and_adopt(void **state)
{
    sv_err err = {0};
    const char *schema = "{\"name\":\"Cap\",\"shards\":3,\"vectors\":{\"default\":{\"dim\":2}},"
                         "\"properties\":[{\"name\":\"n\",\"type\":\"int\"}]}";
    json_t *j = NULL;
    assert_int_equal(sv_store_create_collection(st, schema, strlen(schema), &j, &err), 0);
    json_decref(j);
    for (int i = 0; i < 300; i++)
        put("Cap", NULL, i);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/tmp/cap1", base);
    sv_capture *cap = NULL;
    assert_int_equal(sv_store_capture(st, "Cap", dir, &cap, &err), 0);
    /* Writes after the capture are not in it. */
    for (int i = 300; i < 400; i++)
        put("Cap", NULL, i);
    assert_int_equal(cap->nshards, 3);
    int64_t total = 0, counted = 0;
    for (size_t i = 0; i < cap->nshards; i++) {
        assert_int_equal(cap->shards[i].status, SV_CAPTURE_OK);
        assert_true(cap->shards[i].was_active);
        total += cap->shards[i].objects;
        counted += count_keys(cap->shards[i].dir);
    }
    assert_int_equal(total, 300);
    assert_int_equal(counted, 300);
    assert_int_equal(sv_store_capture(st, "Cap", dir, &cap, &err), SV_EEXIST);

    /* Adopt the captured shards as a new collection. */
    const char *names[3];
    const char *dirs[3];
    for (size_t i = 0; i < 3; i++) {
        names[i] = cap->shards[i].name;
        dirs[i] = cap->shards[i].dir;
    }
    const char *target = "{\"name\":\"Copy\",\"shards\":3,\"vectors\":{\"default\":{\"dim\":2}},"
                         "\"properties\":[{\"name\":\"n\",\"type\":\"int\"}]}";
    const char *bad_names[3] = {"shard0000", "shard0001", "shard0007"};
    assert_int_equal(sv_store_adopt_collection(st, target, strlen(target), bad_names, dirs, 3, NULL, &err), SV_EINVAL);
    assert_int_equal(sv_store_adopt_collection(st, schema, strlen(schema), names, dirs, 3, NULL, &err), SV_EEXIST);
    assert_int_equal(sv_store_adopt_collection(st, target, strlen(target), names, dirs, 3, NULL, &err), 0);
    sv_capture_free(cap);
    sv_buf out = {0};
    assert_int_equal(sv_store_get_object(st, "Copy", NULL, "00000000-0000-4000-8000-000000000299", &out, &err), 0);
    assert_non_null(strstr(sv_buf_cstr(&out), "\"n\":299"));
    sv_buf_reset(&out);
    assert_int_equal(sv_store_get_object(st, "Copy", NULL, "00000000-0000-4000-8000-000000000300", &out, &err),
                     SV_ENOTFOUND);
    assert_int_equal(sv_store_list_shards(st, "Copy", &j, &err), 0);
    json_t *sh;
    size_t i;
    int64_t sum = 0;
    json_array_foreach(json_object_get(j, "shards"), i, sh) sum += json_integer_value(json_object_get(sh, "objects"));
    json_decref(j);
    assert_int_equal(sum, 300);
    sv_buf_free(&out);
}

static void capture_inactive_tenant_from_disk(void **state)
{
    sv_err err = {0};
    const char *schema = "{\"name\":\"Mt\",\"multiTenancy\":true,\"vectors\":{\"default\":{\"dim\":2}}}";
    json_t *j = NULL;
    assert_int_equal(sv_store_create_collection(st, schema, strlen(schema), &j, &err), 0);
    json_decref(j);
    json_t *body = json_loads("{\"tenants\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"never\"}]}", 0, NULL);
    assert_int_equal(sv_store_add_tenants(st, "Mt", body, &j, &err), 0);
    json_decref(j);
    json_decref(body);
    for (int i = 0; i < 50; i++) {
        put("Mt", "a", i);
        put("Mt", "b", 1000 + i);
    }
    body = json_loads("{\"tenants\":[{\"name\":\"b\",\"status\":\"INACTIVE\"}]}", 0, NULL);
    assert_int_equal(sv_store_update_tenants(st, "Mt", body, &j, &err), 0);
    json_decref(j);
    json_decref(body);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/tmp/cap2", base);
    sv_capture *cap = NULL;
    assert_int_equal(sv_store_capture(st, "Mt", dir, &cap, &err), 0);
    assert_int_equal(cap->nshards, 3);
    assert_string_equal(cap->shards[0].name, "a");
    assert_true(cap->shards[0].was_active);
    assert_string_equal(cap->shards[1].name, "b");
    assert_false(cap->shards[1].was_active);
    assert_int_equal(count_keys(cap->shards[1].dir), 50);
    assert_int_equal(cap->shards[2].status, SV_CAPTURE_EMPTY);
    /* b stayed INACTIVE: capturing did not load it. */
    assert_int_equal(sv_store_get_object(st, "Mt", "b", "00000000-0000-4000-8000-000000001000", &(sv_buf){0}, &err),
                     SV_ESTATE);
    sv_capture_free(cap);
}

/* ---- adopt: directory durability before the catalog commit -------------- */

static char events[64][700];
static int nevents;

static void record_event(const char *point, const char *arg)
{
    if (nevents < 64)
        snprintf(events[nevents++], sizeof events[0], "%s %s", point, arg);
}

static int find_event(const char *text)
{
    for (int i = 0; i < nevents; i++)
        if (strcmp(events[i], text) == 0)
            return i;
    return -1;
}

/* The renamed shard directories are only durable once their new and old
 * parent directories are fsynced; that must happen before the catalog names
 * the collection, or a power loss leaves a catalog pointing at empty shards. */
static void adopt_fsyncs_directories_before_commit(void **state)
{
    sv_err err = {0};
    const char *schema = "{\"name\":\"Src\",\"shards\":2,\"vectors\":{\"default\":{\"dim\":2}}}";
    create(schema);
    for (int i = 0; i < 20; i++)
        put("Src", NULL, i);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/tmp/cap3", base);
    sv_capture *cap = NULL;
    assert_int_equal(sv_store_capture(st, "Src", dir, &cap, &err), 0);
    const char *names[2] = {cap->shards[0].name, cap->shards[1].name};
    const char *dirs[2] = {cap->shards[0].dir, cap->shards[1].dir};
    const char *target = "{\"name\":\"Dst\",\"shards\":2,\"vectors\":{\"default\":{\"dim\":2}}}";
    nevents = 0;
    store_test_hook = record_event;
    int rc = sv_store_adopt_collection(st, target, strlen(target), names, dirs, 2, NULL, &err);
    store_test_hook = NULL;
    sv_capture_free(cap);
    assert_int_equal(rc, 0);
    int commit = find_event("adopt:before_commit Dst");
    assert_true(commit >= 0);
    char want[800];
    snprintf(want, sizeof want, "fsync_dir %s", dir); /* the source parent */
    int src = find_event(want);
    snprintf(want, sizeof want, "fsync_dir %s/shards", base); /* holds the new collection directory */
    int shards = find_event(want);
    int root = -1; /* the destination parent: <data>/shards/<uid> */
    snprintf(want, sizeof want, "fsync_dir %s/shards/", base);
    for (int i = 0; i < nevents && root < 0; i++)
        if (strncmp(events[i], want, strlen(want)) == 0 && strlen(events[i]) == strlen(want) + 16)
            root = i;
    if (src < 0 || shards < 0 || root < 0)
        fail_msg("missing fsyncs: source parent %d, shards %d, destination parent %d", src, shards, root);
    assert_true(src < commit);
    assert_true(shards < commit);
    assert_true(root < commit);
    sv_buf out = {0};
    assert_int_equal(sv_store_get_object(st, "Dst", NULL, "00000000-0000-4000-8000-000000000007", &out, &err), 0);
    sv_buf_free(&out);
}

/* ---- typed introspection ------------------------------------------------ */

static void shards_typed_introspection(void **state)
{
    sv_err err = {0};
    create("{\"name\":\"Fixed\",\"shards\":2,\"vectors\":{\"default\":{\"dim\":2}}}");
    for (int i = 0; i < 40; i++)
        put("Fixed", NULL, i);
    sv_shard_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sv_store_shards(st, "Fixed", &info, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(info[0].name, "shard0000");
    assert_string_equal(info[1].name, "shard0001");
    assert_false(info[0].is_tenant);
    assert_int_equal(info[0].status, SV_SHARD_ACTIVE);
    assert_int_equal(info[0].objects + info[1].objects, 40);
    assert_true(info[0].bytes > 0);
    free(info);

    create("{\"name\":\"Mt2\",\"multiTenancy\":true,\"vectors\":{\"default\":{\"dim\":2}}}");
    assert_int_equal(
        tenants_call(sv_store_add_tenants, "Mt2", "{\"tenants\":[{\"name\":\"a\"},{\"name\":\"b\"}]}", &err), 0);
    for (int i = 0; i < 5; i++)
        put("Mt2", "b", i);
    assert_int_equal(
        tenants_call(sv_store_update_tenants, "Mt2", "{\"tenants\":[{\"name\":\"b\",\"status\":\"INACTIVE\"}]}", &err),
        0);
    reopen(); /* nothing open */
    sv_store_stats stats;
    assert_int_equal(sv_store_shards(st, "Mt2", &info, &n, &err), 0);
    sv_store_get_stats(st, &stats);
    assert_int_equal(n, 2);
    assert_string_equal(info[0].name, "a");
    assert_true(info[0].is_tenant);
    assert_int_equal(info[0].status, SV_SHARD_ACTIVE);
    assert_int_equal(info[0].objects, 0);
    assert_string_equal(info[1].name, "b");
    assert_int_equal(info[1].status, SV_SHARD_INACTIVE);
    assert_int_equal(info[1].objects, -1); /* not opened to count */
    assert_true(info[1].bytes > 0);        /* measured on disk */
    assert_int_equal(stats.shards_open, 1);  /* only the ACTIVE tenant was opened */
    assert_string_equal(sv_shard_status_name(info[1].status), "INACTIVE");
    free(info);

    /* The JSON listing says the same. */
    json_t *j = NULL;
    assert_int_equal(sv_store_list_shards(st, "Mt2", &j, &err), 0);
    json_t *b = json_array_get(json_object_get(j, "shards"), 1);
    assert_string_equal(json_string_value(json_object_get(b, "name")), "b");
    assert_string_equal(json_string_value(json_object_get(b, "status")), "INACTIVE");
    assert_true(json_is_null(json_object_get(b, "objects")));
    assert_true(json_integer_value(json_object_get(b, "bytes")) > 0);
    assert_string_equal(json_string_value(json_object_get(b, "node")), "node1");
    json_decref(j);

    info = (sv_shard_info *)1;
    assert_int_equal(sv_store_shards(st, "Nope", &info, &n, &err), SV_ENOTFOUND);
    assert_null(info);
    assert_int_equal(n, 0);
}

/* ---- name reservation for restores -------------------------------------- */

/* At most max_open_shards RocksDBs are open: idle ones close least recently
 * used first and reopen on their next use, counts staying exact. */
static void open_shards_bounded(void **state)
{
    sv_err err = {0};
    sv_store_close(st);
    sv_store_opts o = {.data_dir = base, .max_open_shards = 4};
    assert_int_equal(sv_store_open(&o, cat, &st, &err), 0);
    create("{\"name\":\"Many\",\"shards\":16,\"vectors\":{\"default\":{\"dim\":2}},"
           "\"properties\":[{\"name\":\"n\",\"type\":\"int\"}]}");
    sv_store_stats stats;
    for (int i = 0; i < 300; i++) {
        put("Many", NULL, i);
        sv_store_get_stats(st, &stats);
        assert_true(stats.shards_open <= 4);
    }
    assert_int_equal(stats.shards_open_max, 4);
    assert_true(stats.shards_idle_closed > 0);
    for (int i = 0; i < 300; i++) { /* every object readable after its shard was closed */
        char id[40];
        snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", i);
        sv_buf out = {0};
        assert_int_equal(sv_store_get_object(st, "Many", NULL, id, &out, &err), 0);
        sv_buf_free(&out);
        sv_store_get_stats(st, &stats);
        assert_true(stats.shards_open <= 4);
    }
    sv_shard_info *sh = NULL;
    size_t n = 0;
    assert_int_equal(sv_store_shards(st, "Many", &sh, &n, &err), 0);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += sh[i].objects;
    free(sh);
    assert_int_equal(n, 16);
    assert_int_equal(total, 300);
}

static void reserve_collection_names(void **state)
{
    sv_err err = {0};
    const char *schema = "{\"name\":\"Restored\",\"shards\":1,\"vectors\":{\"default\":{\"dim\":2}}}";
    create("{\"name\":\"Taken\",\"shards\":1,\"vectors\":{\"default\":{\"dim\":2}}}");
    assert_int_equal(sv_store_reserve_collection(st, "Taken", &err), SV_EEXIST);
    assert_non_null(strstr(err.msg, "already exists"));
    assert_int_equal(sv_store_reserve_collection(st, "bad name!", &err), SV_EINVAL);

    assert_int_equal(sv_store_reserve_collection(st, "Restored", &err), 0);
    assert_int_equal(sv_store_reserve_collection(st, "Restored", &err), SV_EEXIST);
    assert_non_null(strstr(err.msg, "reserved"));
    /* A create of the reserved name is refused, saying why. */
    json_t *j = NULL;
    assert_int_equal(sv_store_create_collection(st, schema, strlen(schema), &j, &err), SV_EEXIST);
    assert_non_null(strstr(err.msg, "restore"));
    assert_null(j);
    /* Unreserving frees the name. */
    sv_store_unreserve_collection(st, "Restored");
    sv_store_unreserve_collection(st, "Restored"); /* not reserved: nothing happens */
    assert_int_equal(sv_store_create_collection(st, schema, strlen(schema), &j, &err), 0);
    json_decref(j);
    assert_int_equal(sv_store_delete_collection(st, "Restored", &err), 0);

    /* The restore that reserved a name adopts it, which clears the reservation. */
    create("{\"name\":\"Origin\",\"shards\":1,\"vectors\":{\"default\":{\"dim\":2}}}");
    put("Origin", NULL, 1);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/tmp/cap4", base);
    sv_capture *cap = NULL;
    assert_int_equal(sv_store_capture(st, "Origin", dir, &cap, &err), 0);
    const char *names[1] = {cap->shards[0].name};
    const char *dirs[1] = {cap->shards[0].dir};
    assert_int_equal(sv_store_reserve_collection(st, "Restored", &err), 0);
    assert_int_equal(sv_store_adopt_collection(st, schema, strlen(schema), names, dirs, 1, NULL, &err), 0);
    sv_capture_free(cap);
    assert_int_equal(sv_store_delete_collection(st, "Restored", &err), 0);
    /* No reservation left: the name can be created and reserved again. */
    assert_int_equal(sv_store_reserve_collection(st, "Restored", &err), 0);
    sv_store_unreserve_collection(st, "Restored");
    assert_int_equal(sv_store_create_collection(st, schema, strlen(schema), &j, &err), 0);
    json_decref(j);

    /* Reservations live in memory only. */
    assert_int_equal(sv_store_reserve_collection(st, "Later", &err), 0);
    reopen();
    create("{\"name\":\"Later\",\"shards\":1,\"vectors\":{\"default\":{\"dim\":2}}}");
}


typedef struct failed_ctx {
    size_t idx[8];
    char msg[8][300];
    size_t n;
} failed_ctx;

static void on_failed(void *ud, size_t idx, const char *id, const char *error)
{
    failed_ctx *f = ud;
    (void)id;
    if (f->n < 8) {
        f->idx[f->n] = idx;
        snprintf(f->msg[f->n], sizeof f->msg[f->n], "%s", error);
        f->n++;
    }
}

/* sv_batch_add_record: records built by the caller are written like parsed
 * ones (count, replace in the same batch counted once, readable as JSON);
 * a record built for another schema shape, or for a missing collection, is
 * an error result and the others are written; mixed with JSON objects. */
static void batch_typed_records(void **state)
{
    (void)state;
    sv_err err = {0};
    const char *sj = "{\"name\":\"Typed\",\"shards\":2,\"vectors\":{\"default\":{\"dim\":2}},"
                     "\"properties\":[{\"name\":\"n\",\"type\":\"int\"},{\"name\":\"t\",\"type\":\"text\"}]}";
    create(sj);
    sv_schema *sch = NULL;
    assert_int_equal(sv_store_schema(st, "Typed", &sch, &err), 0);
    sv_prop_value props[2];
    sv_record rec = {0};
    rec.props = props;
    sv_batch *b = sv_batch_begin(st);
    assert_non_null(b);
    for (int i = 0; i < 30; i++) {
        float v[2] = {(float)i, 0.5f};
        int64_t n = i;
        sv_str t = {"hello", 5};
        memset(props, 0, sizeof props);
        props[0] = (sv_prop_value){.present = true, .count = 1, .i64 = &n};
        props[1] = (sv_prop_value){.present = i % 2 == 0, .count = 1, .str = &t};
        rec.vector = v;
        rec.has_id = true;
        char id[40];
        snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", i % 25); /* 25..29 replace 0..4 */
        assert_int_equal(sv_uuid_parse(id, 36, &rec.id), 0);
        assert_int_equal(sv_batch_add_record(b, "Typed", NULL, sch, &rec), 0);
    }
    /* a JSON object in the same batch */
    const char *js = "{\"collection\":\"Typed\",\"id\":\"00000000-0000-4000-8000-000000000100\",\"vector\":[1,2],"
                     "\"properties\":{\"n\":100}}";
    assert_int_equal(sv_batch_add(b, js, strlen(js)), 0);
    /* built for another shape (t an int) */
    sv_schema *other = sv_schema_dup(sch);
    other->props[1].type = SV_TYPE_INT;
    assert_int_equal(sv_batch_add_record(b, "Typed", NULL, other, &rec), 0);
    sv_schema_free(other);
    /* no such collection */
    assert_int_equal(sv_batch_add_record(b, "Nope", NULL, sch, &rec), 0);
    failed_ctx f = {0};
    size_t ok = 0;
    assert_int_equal(sv_batch_end_results(b, on_failed, &f, &ok, &err), 0);
    assert_int_equal(ok, 31);
    assert_int_equal(f.n, 2);
    assert_int_equal(f.idx[0], 31);
    assert_non_null(strstr(f.msg[0], "schema differs"));
    assert_int_equal(f.idx[1], 32);
    assert_non_null(strstr(f.msg[1], "'Nope' not found"));
    sv_shard_info *info = NULL;
    size_t n = 0;
    assert_int_equal(sv_store_shards(st, "Typed", &info, &n, &err), 0);
    assert_int_equal(info[0].objects + info[1].objects, 26); /* 25 distinct + the JSON one */
    free(info);
    sv_buf out = {0};
    assert_int_equal(sv_store_get_object(st, "Typed", NULL, "00000000-0000-4000-8000-000000000004", &out, &err), 0);
    /* the later record (i = 29: t absent) replaced the first (i = 4, t present) */
    sv_buf_putc(&out, '\0');
    if (!strstr((const char *)out.data, "\"n\":29") || strstr((const char *)out.data, "hello"))
        fail_msg("unexpected object: %.*s", (int)out.len, (const char *)out.data);
    sv_buf_free(&out);
    sv_schema_free(sch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(batch_typed_records, setup, teardown),
        cmocka_unit_test_setup_teardown(capture_and_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(capture_inactive_tenant_from_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(update_after_concurrent_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(adopt_fsyncs_directories_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(shards_typed_introspection, setup, teardown),
        cmocka_unit_test_setup_teardown(reserve_collection_names, setup, teardown),
        cmocka_unit_test_setup_teardown(open_shards_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(update_racing_delete_keeps_tenant_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(cut_gate_holds_writes_until_open_or_hold, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
