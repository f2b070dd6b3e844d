/* Unit tests of the maintenance module: the recovery kit (round trip,
 * tampering), the descriptor, the write guard on a location of another
 * store, the exclusive lease, and checkpoints (write, read, prune). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maintenance_internal.h"
#include "store.h"
#include "../test_root.h"

static char root[PATH_MAX];

static void kit_round_trip_and_tampering(void **state)
{
    const char *id = "0b6f3c9e-1d2a-4e5f-8a7b-9c0d1e2f3a4b";
    char *desc = sv_maint_desc_text(id, 1764374400123);
    char hex[65];
    sv_sha256_ctx *c = sv_sha256_new();
    sv_sha256_update(c, desc, strlen(desc));
    sv_sha256_final_hex(c, hex);
    char *kit = sv_maint_kit_text(id, "s3://bucket/prefix", 1764374400123, hex);
    assert_non_null(kit);
    maint_kit k;
    sv_err err = {0};
    assert_int_equal(sv_maint_kit_parse(kit, &k, &err), 0);
    assert_string_equal(k.store_id, id);
    assert_int_equal(k.created_at, 1764374400123);
    assert_string_equal(k.descriptor_sha256, hex);
    assert_string_equal(k.location, "s3://bucket/prefix");
    /* Every byte before the checksum line counts. */
    char *bad = strdup(kit);
    char *p = strstr(bad, "store_id: ") + 10;
    *p = *p == 'a' ? 'b' : 'a';
    assert_int_equal(sv_maint_kit_parse(bad, &k, &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "checksum"));
    /* No checksum line at all. */
    *strstr(bad, "checksum:") = '\0';
    assert_int_equal(sv_maint_kit_parse(bad, &k, &err), SV_EINVAL);
    free(bad);
    /* The descriptor text is stable: the kit can rebuild it byte for byte. */
    char *again = sv_maint_desc_text(id, 1764374400123);
    assert_string_equal(again, desc);
    char pid[37];
    int64_t ca;
    assert_int_equal(sv_maint_desc_parse(desc, strlen(desc), pid, &ca, &err), 0);
    assert_string_equal(pid, id);
    assert_int_equal(ca, 1764374400123);
    assert_int_equal(sv_maint_desc_parse("{\"format_version\":2}", 20, pid, &ca, &err), SV_ECORRUPT);
    assert_int_equal(sv_maint_desc_parse("nope", 4, pid, &ca, &err), SV_ECORRUPT);
    free(again);
    free(kit);
    free(desc);
}

typedef struct node {
    sv_catalog *cat;
    sv_jobs *jobs;
    sv_store *st;
    sv_snapshot *snap;
    sv_maintenance *m;
} node;

static void node_open(node *n, const char *name, const char *loc)
{
    char dir[PATH_MAX + 64], url[PATH_MAX + 128];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    sv_err err = {0};
    assert_int_equal(sv_mkdirs(dir, &err), 0);
    snprintf(url, sizeof url, "embedded://%s/catalog", dir);
    assert_int_equal(sv_catalog_open(url, &n->cat, &err), 0);
    sv_jobs_opts jo = {0};
    assert_int_equal(sv_jobs_open(&jo, n->cat, &n->jobs, &err), 0);
    sv_store_opts so = {.data_dir = dir};
    assert_int_equal(sv_store_open(&so, n->cat, &n->st, &err), 0);
    sv_snapshot_opts o = {.data_dir = dir, .location_url = loc, .gc_interval_ms = -1, .jobs = n->jobs};
    if (sv_snapshot_open(&o, n->st, n->cat, &n->snap, &err))
        fail_msg("snapshot open: %s", err.msg);
    sv_maintenance_opts mo = {.jobs = n->jobs, .lease_ttl_ms = 600, .checkpoint_interval_ms = -1};
    if (sv_maintenance_open(&mo, n->cat, n->snap, &n->m, &err))
        fail_msg("maintenance open: %s", err.msg);
    assert_int_equal(sv_jobs_recover(n->jobs, &err), 0);
}

static void node_close(node *n)
{
    sv_maintenance_close(n->m);
    sv_jobs_shutdown(n->jobs);
    sv_snapshot_close(n->snap);
    sv_jobs_close(n->jobs);
    sv_store_close(n->st);
    sv_catalog_close(n->cat);
}

static int count_ckpts(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".json.zst") && e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void guard_lease_checkpoints(void **state)
{
    char loc[PATH_MAX + 32], path[PATH_MAX + 64];
    snprintf(loc, sizeof loc, "file://%s/loc", root);
    node a = {0}, b = {0};
    node_open(&a, "a", loc);
    snprintf(path, sizeof path, "%s/loc/store.json", root);
    assert_true(sv_path_exists(path));
    sv_err err = {0};
    assert_int_equal(sv_maint_guard(a.m, &err), 0);
    json_t *st = NULL;
    assert_int_equal(sv_maintenance_status(a.m, &st, &err), 0);
    assert_string_equal(json_string_value(json_object_get(st, "descriptor")), "ok");
    json_decref(st);

    /* Another catalog on the same location: not its store, writes refused. */
    node_open(&b, "b", loc);
    assert_int_equal(sv_maint_guard(b.m, &err), SV_ECONFLICT);
    assert_non_null(strstr(err.msg, "maintenance rebuild"));
    char *kit = NULL;
    assert_int_equal(sv_maintenance_recovery_kit(b.m, &kit, &err), SV_ESTATE);
    assert_int_equal(sv_maintenance_recovery_kit(a.m, &kit, &err), 0);
    assert_non_null(strstr(kit, a.m->store_id));
    free(kit);

    /* The lease: exclusive, and lost once broken. */
    maint_lease l1, l2;
    assert_int_equal(sv_maint_lease_acquire(a.m, "job-1", "rebuild", &l1, &err), 0);
    assert_int_equal(sv_maint_lease_acquire(a.m, "job-2", "verify", &l2, &err), SV_ECONFLICT);
    assert_non_null(strstr(err.msg, "job-1"));
    sv_catalog_op op = {"maintenance/test", "x", 1, 0};
    assert_int_equal(sv_maint_lease_txn(&l1, &op, 1, &err), 0);
    sv_sleep_ms(900); /* longer than the TTL: renewal keeps it */
    assert_int_equal(sv_maint_lease_txn(&l1, &op, 1, &err), 0);
    json_t *o = NULL;
    assert_int_equal(sv_maintenance_lease_break(a.m, &o, &err), 0);
    assert_true(json_is_true(json_object_get(o, "revoked")));
    json_decref(o);
    assert_int_equal(sv_maint_lease_txn(&l1, &op, 1, &err), SV_ESTATE);
    assert_string_equal(err.msg, "lease lost");
    sv_maint_lease_release(&l1);
    assert_int_equal(sv_maint_lease_acquire(a.m, "job-3", "verify", &l2, &err), 0);
    sv_maint_lease_release(&l2);

    /* Checkpoints: written, read back, the newest 5 kept. */
    char key[128];
    for (int i = 0; i < 7; i++) {
        assert_int_equal(sv_maint_ckpt_write(a.m, key, &err), 0);
        sv_sleep_ms(3);
    }
    snprintf(path, sizeof path, "%s/loc/catalog", root);
    assert_int_equal(count_ckpts(path), 5);
    char newest[128];
    int64_t at = 0;
    json_t *doc = NULL;
    assert_int_equal(sv_maint_ckpt_newest(a.m, newest, &at, &doc, &err), 0);
    assert_string_equal(newest, key);
    assert_true(at > 0);
    assert_string_equal(json_string_value(json_object_get(doc, "storeId")), a.m->store_id);
    assert_true(json_is_array(json_object_get(doc, "snapshots")));
    json_decref(doc);
    /* b may not write checkpoints into a's location. */
    assert_int_equal(sv_maintenance_checkpoint(b.m, &o, &err), SV_ECONFLICT);
    node_close(&b);
    node_close(&a);
}

int main(void)
{
    if (sv_test_root("maintenance", root, sizeof root))
        return 1;
    sv_log_set_level(SV_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kit_round_trip_and_tampering),
        cmocka_unit_test(guard_lease_checkpoints),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sv_err err;
    sv_rmtree(root, &err);
    return rc;
}
