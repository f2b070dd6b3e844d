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
#include <unistd.h>

#include "engine.h"
#include "store.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(capture_and_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(capture_inactive_tenant_from_disk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
