/* Snapshot module: the restore-job metadata manager (persisted before memory,
 * rebuilt at open, indexes), the manifest (round trip, everything later used
 * as a key or path is checked), SHA-256 and the hash cache, and the service
 * in-process: multi-tenant snapshot with an INACTIVE tenant, restore, GC. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapshot.h"
#include "snapshot_internal.h"

static char base[512];
static sv_catalog *cat;

static int setup(void **state)
{
    const char *tmp = getenv("SV_TEST_TMP") ? getenv("SV_TEST_TMP") : "/tmp";
    snprintf(base, sizeof base, "%s/snapshot-%d", tmp, (int)getpid());
    sv_err err = {0};
    sv_rmtree(base, &err);
    char catdir[600];
    snprintf(catdir, sizeof catdir, "%s/catalog", base);
    assert_int_equal(sv_mkdirs(base, &err), 0);
    assert_int_equal(sv_catalog_open(catdir, &cat, &err), 0);
    return 0;
}

static int teardown(void **state)
{
    sv_catalog_close(cat);
    sv_err err;
    sv_rmtree(base, &err);
    return 0;
}

static int count_prefix_fn(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    (*(int *)ud)++;
    return 0;
}

static int count_prefix(const char *prefix)
{
    int n = 0;
    assert_int_equal(sv_catalog_scan(cat, prefix, count_prefix_fn, &n, NULL), 0);
    return n;
}

static sv_restore_job mkjob(const char *id, const char *src, const char *target, int ntasks)
{
    sv_restore_job j = {0};
    snprintf(j.id, sizeof j.id, "%s", id);
    snprintf(j.collection, sizeof j.collection, "%s", src);
    snprintf(j.snapshot, sizeof j.snapshot, "snap");
    snprintf(j.target, sizeof j.target, "%s", target);
    j.state = SV_RESTORE_PENDING;
    j.created_at = sv_now_ms();
    j.ntasks = ntasks;
    return j;
}

static void meta_persist_reload_indexes(void **state)
{
    sv_err err = {0};
    sv_restore_meta *m = NULL;
    assert_int_equal(sv_restore_meta_open(cat, &m, &err), 0);
    const char *id1 = "11111111-1111-4111-8111-111111111111", *id2 = "22222222-2222-4222-8222-222222222222";
    sv_restore_job j1 = mkjob(id1, "Src", "Dst1", 3), j2 = mkjob(id2, "Src", "Dst2", 1);
    j2.created_at = j1.created_at + 1;
    sv_restore_task t[3];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 3; i++) {
        snprintf(t[i].job_id, sizeof t[i].job_id, "%s", id1);
        snprintf(t[i].shard, sizeof t[i].shard, "shard%04d", 2 - i); /* out of order on purpose */
        snprintf(t[i].collection, sizeof t[i].collection, "Dst1");
        t[i].index = 2 - i;
        t[i].objects = -1;
        t[i].bytes_total = 100 * (i + 1);
    }
    assert_int_equal(sv_restore_meta_add_job(m, &j1, t, 3, &err), 0);
    assert_int_equal(sv_restore_meta_add_job(m, &j1, t, 3, &err), SV_EEXIST);
    assert_int_equal(sv_restore_meta_add_job(m, &j2, t, 0, &err), 0);
    assert_int_equal(count_prefix("restore-jobs/"), 2);
    assert_int_equal(count_prefix("restore-tasks/"), 3);

    /* Updates land in the catalog, so a fresh manager sees them. */
    t[1].state = SV_RESTORE_COMPLETED;
    t[1].objects = 42;
    assert_int_equal(sv_restore_meta_update_task(m, &t[1], &err), 0);
    j1.state = SV_RESTORE_EXECUTING;
    j1.started_at = 1234;
    assert_int_equal(sv_restore_meta_update_job(m, &j1, &err), 0);
    sv_restore_job unknown = mkjob("33333333-3333-4333-8333-333333333333", "A", "B", 0);
    assert_int_equal(sv_restore_meta_update_job(m, &unknown, &err), SV_ENOTFOUND);
    assert_int_equal(count_prefix("restore-jobs/33333333"), 0);
    sv_restore_meta_free(m);

    assert_int_equal(sv_restore_meta_open(cat, &m, &err), 0);
    sv_restore_job got;
    assert_int_equal(sv_restore_meta_get_job(m, id1, &got), 0);
    assert_int_equal(got.state, SV_RESTORE_EXECUTING);
    assert_int_equal(got.started_at, 1234);
    assert_string_equal(got.target, "Dst1");
    sv_restore_task *tasks = NULL;
    size_t n = 0;
    assert_int_equal(sv_restore_meta_tasks_of_job(m, id1, &tasks, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tasks[i].index, (int)i); /* ordered by index */
    assert_int_equal(tasks[1].state, SV_RESTORE_COMPLETED);
    assert_int_equal(tasks[1].objects, 42);
    assert_int_equal(tasks[0].state, SV_RESTORE_PENDING);
    free(tasks);

    /* Collection index: by source and by target. */
    sv_restore_job *jobs = NULL;
    assert_int_equal(sv_restore_meta_jobs_of_collection(m, "Src", &jobs, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(jobs[0].id, id1);
    free(jobs);
    assert_int_equal(sv_restore_meta_jobs_of_collection(m, "Dst2", &jobs, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(jobs[0].id, id2);
    free(jobs);
    assert_int_equal(sv_restore_meta_jobs_of_collection(m, "Other", &jobs, &n), 0);
    assert_int_equal(n, 0);
    free(jobs);

    /* Removal: catalog and every index. */
    assert_int_equal(sv_restore_meta_remove_job(m, id1, &err), 0);
    assert_int_equal(sv_restore_meta_remove_job(m, id1, &err), SV_ENOTFOUND);
    assert_int_equal(count_prefix("restore-tasks/"), 0);
    assert_int_equal(count_prefix("restore-jobs/"), 1);
    assert_int_equal(sv_restore_meta_tasks_of_job(m, id1, &tasks, &n), 0);
    assert_int_equal(n, 0);
    free(tasks);
    assert_int_equal(sv_restore_meta_jobs_of_collection(m, "Dst1", &jobs, &n), 0);
    assert_int_equal(n, 0);
    free(jobs);
    assert_int_equal(sv_restore_meta_list_jobs(m, &jobs, &n), 0);
    assert_int_equal(n, 1);
    free(jobs);
    sv_restore_meta_free(m);
}

static void meta_many_jobs(void **state)
{
    /* Enough jobs to make the hash maps grow several times. */
    sv_err err = {0};
    sv_restore_meta *m = NULL;
    assert_int_equal(sv_restore_meta_open(cat, &m, &err), 0);
    for (int i = 0; i < 300; i++) {
        char id[37];
        snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", i);
        sv_restore_job j = mkjob(id, "Src", i % 2 ? "Odd" : "Even", 1);
        j.created_at = i;
        sv_restore_task t = {0};
        snprintf(t.job_id, sizeof t.job_id, "%s", id);
        snprintf(t.shard, sizeof t.shard, "shard0000");
        assert_int_equal(sv_restore_meta_add_job(m, &j, &t, 1, &err), 0);
    }
    sv_restore_job *jobs;
    size_t n;
    assert_int_equal(sv_restore_meta_jobs_of_collection(m, "Odd", &jobs, &n), 0);
    assert_int_equal(n, 150);
    free(jobs);
    assert_int_equal(sv_restore_meta_list_jobs(m, &jobs, &n), 0);
    assert_int_equal(n, 300);
    for (size_t i = 1; i < n; i++)
        assert_true(jobs[i - 1].created_at < jobs[i].created_at);
    free(jobs);
    for (int i = 0; i < 300; i += 2) {
        char id[37];
        snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", i);
        assert_int_equal(sv_restore_meta_remove_job(m, id, &err), 0);
    }
    assert_int_equal(sv_restore_meta_jobs_of_collection(m, "Even", &jobs, &n), 0);
    assert_int_equal(n, 0);
    free(jobs);
    assert_int_equal(sv_restore_meta_jobs_of_collection(m, "Src", &jobs, &n), 0);
    assert_int_equal(n, 150);
    free(jobs);
    sv_restore_meta_free(m);
}

static const char *HEX_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

static char *manifest_with(const char *shard, const char *file, const char *blob, int version)
{
    char *s = malloc(2048);
    snprintf(s, 2048,
             "{\"format_version\":%d,\"collection\":\"C\",\"name\":\"s1\",\"schema\":{\"name\":\"C\"},"
             "\"shards\":[{\"name\":\"%s\",\"status\":\"OK\",\"objects\":3,\"bytes\":10,"
             "\"files\":[{\"name\":\"%s\",\"blob\":\"%s\",\"size\":10}]}]}",
             version, shard, file, blob);
    return s;
}

static void manifest_roundtrip_and_checks(void **state)
{
    sv_err err = {0};
    sv_manifest *m = NULL;
    char *ok = manifest_with("shard0000", "000012.sst", HEX_A, 1);
    assert_int_equal(sv_manifest_parse(ok, strlen(ok), &m, &err), 0);
    assert_int_equal(m->nshards, 1);
    assert_int_equal(m->shards[0].nfiles, 1);
    assert_string_equal(m->shards[0].files[0].blob, HEX_A);
    char *again = sv_manifest_to_json(m);
    sv_manifest *m2 = NULL;
    assert_int_equal(sv_manifest_parse(again, strlen(again), &m2, &err), 0);
    assert_string_equal(m2->shards[0].files[0].name, "000012.sst");
    assert_int_equal(m2->shards[0].objects, 3);
    json_t *j = json_loads(again, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "format_version")), SV_MANIFEST_FORMAT);
    json_decref(j);
    free(again);
    sv_manifest_free(m);
    sv_manifest_free(m2);
    free(ok);

    struct {
        const char *shard, *file, *blob;
        int version;
    } bad[] = {
        {"shard0000", "../../etc/passwd", HEX_A, 1},
        {"shard0000", "a/b", HEX_A, 1},
        {"shard0000", "..", HEX_A, 1},
        {"shard0000", "000012.sst", "AAAA", 1},
        {"shard0000", "000012.sst", "../../../aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1},
        {"a/b", "000012.sst", HEX_A, 1},
        {"..", "000012.sst", HEX_A, 1},
        {"shard0000", "000012.sst", HEX_A, 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = manifest_with(bad[i].shard, bad[i].file, bad[i].blob, bad[i].version);
        m = NULL;
        int rc = sv_manifest_parse(s, strlen(s), &m, &err);
        if (rc != SV_ECORRUPT)
            fail_msg("case %zu accepted (rc %d)", i, rc);
        assert_null(m);
        free(s);
    }
    assert_int_equal(sv_manifest_parse("{", 1, &m, &err), SV_ECORRUPT);
}

static void sha256_and_hash_cache(void **state)
{
    sv_err err = {0};
    char path[700];
    snprintf(path, sizeof path, "%s/abc", base);
    assert_int_equal(sv_write_file_atomic(path, "abc", 3, &err), 0);
    char hex[65];
    int64_t size = 0;
    _Atomic int64_t progress = 0;
    assert_int_equal(sv_sha256_file(path, hex, &size, &progress, &err), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(size, 3);
    assert_int_equal(progress, 3);
    assert_true(sv_sha256_valid_hex(hex));
    assert_false(sv_sha256_valid_hex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    char key[80];
    sv_blob_key(hex, key);
    assert_string_equal(key, "blobs/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    sv_file_id id;
    assert_int_equal(sv_file_id_of(path, &id, &err), 0);
    char *val = sv_hash_cache_value(&id, hex);
    char got[65] = "";
    assert_true(sv_hash_cache_match(val, strlen(val), &id, got));
    assert_string_equal(got, hex);
    /* A hard link is the same file: still a hit. Replaced content is not. */
    char link_path[800];
    snprintf(link_path, sizeof link_path, "%s.link", path);
    assert_int_equal(link(path, link_path), 0);
    sv_file_id lid;
    assert_int_equal(sv_file_id_of(link_path, &lid, &err), 0);
    assert_true(sv_hash_cache_match(val, strlen(val), &lid, got));
    assert_int_equal(sv_write_file_atomic(path, "abd", 3, &err), 0);
    sv_file_id nid;
    assert_int_equal(sv_file_id_of(path, &nid, &err), 0);
    assert_false(sv_hash_cache_match(val, strlen(val), &nid, got));
    assert_false(sv_hash_cache_match("garbage", 7, &id, got));
    free(val);
    assert_int_equal(sv_sha256_file("/nonexistent/x", hex, NULL, NULL, &err), SV_ENOTFOUND);
}

/* ---- the service, in process -------------------------------------------------- */

static void put(sv_store *st, const char *coll, const char *tenant, int i)
{
    char json[256], id[40];
    snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", i);
    snprintf(json, sizeof json, "{\"id\":\"%s\",\"vector\":[%d,1],\"properties\":{\"n\":%d}}", id, i, i);
    sv_buf out = {0};
    sv_err err = {0};
    if (sv_store_put_object(st, coll, NULL, tenant, json, strlen(json), &out, &err))
        fail_msg("put: %s", err.msg);
    sv_buf_free(&out);
}

static json_t *wait_job(sv_snapshot *s, const char *id)
{
    for (int i = 0; i < 2000; i++) {
        json_t *j = NULL;
        sv_err err = {0};
        assert_int_equal(sv_snapshot_job_get(s, id, &j, &err), 0);
        const char *st = json_string_value(json_object_get(j, "state"));
        if (!strcmp(st, "COMPLETED") || !strcmp(st, "FAILED"))
            return j;
        json_decref(j);
        sv_sleep_ms(10);
    }
    fail_msg("job %s did not finish", id);
    return NULL;
}

static void service_multi_tenant_inactive(void **state)
{
    sv_err err = {0};
    sv_store *st = NULL;
    sv_store_opts so = {.data_dir = base};
    assert_int_equal(sv_store_open(&so, cat, &st, &err), 0);
    sv_snapshot *s = NULL;
    sv_snapshot_opts o = {.data_dir = base, .gc_interval_ms = -1, .gc_grace_ms = -1};
    if (sv_snapshot_open(&o, st, cat, &s, &err))
        fail_msg("open: %s", err.msg);

    const char *schema = "{\"name\":\"Mt\",\"multiTenancy\":true,\"vectors\":{\"default\":{\"dim\":2}},"
                         "\"properties\":[{\"name\":\"n\",\"type\":\"int\"}]}";
    json_t *j = NULL;
    assert_int_equal(sv_store_create_collection(st, schema, strlen(schema), &j, &err), 0);
    json_decref(j);
    json_t *body = json_loads("{\"tenants\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"never\"}]}", 0, NULL);
    assert_int_equal(sv_store_add_tenants(st, "Mt", body, &j, &err), 0);
    json_decref(j);
    json_decref(body);
    for (int i = 0; i < 40; i++) {
        put(st, "Mt", "a", i);
        put(st, "Mt", "b", 1000 + i);
    }
    body = json_loads("{\"tenants\":[{\"name\":\"b\",\"status\":\"INACTIVE\"}]}", 0, NULL);
    assert_int_equal(sv_store_update_tenants(st, "Mt", body, &j, &err), 0);
    json_decref(j);
    json_decref(body);

    body = json_loads("{\"name\":\"s1\"}", 0, NULL);
    json_t *snap = NULL;
    if (sv_snapshot_create(s, "Mt", body, true, &snap, &err))
        fail_msg("create: %s", err.msg);
    json_decref(body);
    assert_string_equal(json_string_value(json_object_get(snap, "status")), "COMMITTED");
    assert_int_equal(json_integer_value(json_object_get(snap, "objects")), 80); /* b counted from disk */
    json_t *shards = json_object_get(snap, "shards");
    assert_int_equal(json_array_size(shards), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(shards, 2), "files")), 0); /* "never" */
    json_decref(snap);
    /* Still INACTIVE: the snapshot did not load it. */
    sv_buf out = {0};
    assert_int_equal(sv_store_get_object(st, "Mt", "b", "00000000-0000-4000-8000-000000001000", &out, &err), SV_ESTATE);

    body = json_loads("{\"target\":\"MtCopy\"}", 0, NULL);
    json_t *r = NULL;
    if (sv_snapshot_restore(s, "Mt", "s1", body, &r, &err))
        fail_msg("restore: %s", err.msg);
    json_decref(body);
    json_t *job = wait_job(s, json_string_value(json_object_get(r, "jobId")));
    json_decref(r);
    assert_string_equal(json_string_value(json_object_get(job, "state")), "COMPLETED");
    json_decref(job);
    sv_buf_reset(&out);
    assert_int_equal(sv_store_get_object(st, "MtCopy", "b", "00000000-0000-4000-8000-000000001039", &out, &err), 0);
    assert_non_null(strstr(sv_buf_cstr(&out), "\"n\":1039"));
    sv_buf_reset(&out);
    assert_int_equal(sv_store_get_object(st, "MtCopy", "a", "00000000-0000-4000-8000-000000000007", &out, &err), 0);
    sv_buf_free(&out);
    assert_int_equal(sv_store_list_tenants(st, "MtCopy", &j, &err), 0);
    assert_int_equal(json_array_size(json_object_get(j, "tenants")), 3);
    json_decref(j);

    /* GC with nothing dropped deletes nothing; after the drop, everything. */
    json_t *gc = NULL;
    assert_int_equal(sv_snapshot_gc(s, &gc, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(gc, "blobsDeleted")), 0);
    assert_true(json_integer_value(json_object_get(gc, "blobsKept")) > 0);
    json_decref(gc);
    assert_int_equal(sv_snapshot_drop(s, "Mt", "s1", &err), 0);
    assert_int_equal(sv_snapshot_drop(s, "Mt", "s1", &err), SV_ENOTFOUND);
    assert_int_equal(sv_snapshot_gc(s, &gc, &err), 0);
    assert_true(json_integer_value(json_object_get(gc, "blobsDeleted")) > 0);
    assert_int_equal(json_integer_value(json_object_get(gc, "blobsKept")), 0);
    json_decref(gc);

    /* GC fails closed: an unreadable manifest stops it before any delete. */
    body = json_loads("{\"name\":\"s2\"}", 0, NULL);
    assert_int_equal(sv_snapshot_create(s, "Mt", body, true, &snap, &err), 0);
    json_decref(body);
    json_decref(snap);
    assert_int_equal(sv_snapshot_drop(s, "Mt", "s2", &err), 0); /* its blobs are garbage now... */
    char mpath[800];
    snprintf(mpath, sizeof mpath, "%s/location/snapshots/Other/x/manifest.json", base);
    char mdir[800];
    snprintf(mdir, sizeof mdir, "%s/location/snapshots/Other/x", base);
    assert_int_equal(sv_mkdirs(mdir, &err), 0);
    assert_int_equal(sv_write_file_atomic(mpath, "{not json", 9, &err), 0);
    assert_int_equal(sv_snapshot_gc(s, &gc, &err), SV_ECORRUPT); /* ...but one manifest is unreadable */
    assert_non_null(strstr(err.msg, "nothing was deleted"));
    unlink(mpath);
    assert_int_equal(sv_snapshot_gc(s, &gc, &err), 0);
    assert_true(json_integer_value(json_object_get(gc, "blobsDeleted")) > 0);
    json_decref(gc);

    sv_snapshot_close(s);
    sv_store_close(st);
}

/* ---- GC deletes without the service lock ------------------------------------ */

typedef struct gc_run {
    sv_snapshot *s;
    int rc;
    json_t *out;
    atomic_bool done;
} gc_run;

static void *gc_thread(void *arg)
{
    gc_run *g = arg;
    sv_err err = {0};
    g->rc = sv_snapshot_gc(g->s, &g->out, &err);
    atomic_store(&g->done, true);
    return NULL;
}

static void make_collection(sv_store *st, const char *name, int n)
{
    char schema[300];
    snprintf(schema, sizeof schema,
             "{\"name\":\"%s\",\"vectors\":{\"default\":{\"dim\":2}},\"properties\":[{\"name\":\"n\",\"type\":\"int\"}]}",
             name);
    json_t *j = NULL;
    sv_err err = {0};
    assert_int_equal(sv_store_create_collection(st, schema, strlen(schema), &j, &err), 0);
    json_decref(j);
    for (int i = 0; i < n; i++)
        put(st, name, NULL, i);
}

static json_t *create_wait(sv_snapshot *s, const char *coll, const char *name)
{
    char b[200];
    snprintf(b, sizeof b, "{\"name\":\"%s\"}", name);
    json_t *body = json_loads(b, 0, NULL), *snap = NULL;
    sv_err err = {0};
    if (sv_snapshot_create(s, coll, body, true, &snap, &err))
        fail_msg("create: %s", err.msg);
    json_decref(body);
    return snap;
}

static char *restore_start(sv_snapshot *s, const char *coll, const char *name, const char *target)
{
    char b[200];
    snprintf(b, sizeof b, "{\"target\":\"%s\"}", target);
    json_t *body = json_loads(b, 0, NULL), *r = NULL;
    sv_err err = {0};
    if (sv_snapshot_restore(s, coll, name, body, &r, &err))
        fail_msg("restore: %s", err.msg);
    json_decref(body);
    char *id = strdup(json_string_value(json_object_get(r, "jobId")));
    json_decref(r);
    return id;
}

/* A GC deleting from a slow location (every delete call takes 1.5 s here)
 * must not hold the lock status calls need: a restore job's GET answers at
 * once while the delete is under way. And a create that starts during the
 * delete, needing the very blobs being deleted, still ends with all of them
 * stored (it waits for the delete, then uploads them again). */
static int64_t blobs_on_disk(void)
{
    char dir[700];
    snprintf(dir, sizeof dir, "%s/location/blobs", base);
    return sv_dir_bytes(dir);
}

/* One directory as blobs + a manifest, and back: what offload and shard moves
 * use. An unchanged directory uploads nothing; the layout is verified and
 * opens; GC treats tenants/ manifests as references. */
static void put_and_get_dir(void **state)
{
    sv_err err = {0};
    sv_store *st = NULL;
    sv_store_opts so = {.data_dir = base};
    assert_int_equal(sv_store_open(&so, cat, &st, &err), 0);
    sv_snapshot *s = NULL;
    sv_snapshot_opts o = {.data_dir = base, .gc_interval_ms = -1, .gc_grace_ms = -1};
    if (sv_snapshot_open(&o, st, cat, &s, &err))
        fail_msg("open: %s", err.msg);
    make_collection(st, "Dir", 50);
    char cap_dir[700], out_dir[700];
    snprintf(cap_dir, sizeof cap_dir, "%s/cap", base);
    snprintf(out_dir, sizeof out_dir, "%s/laid-out", base);
    sv_capture *cap = NULL;
    assert_int_equal(sv_store_capture(st, "Dir", cap_dir, &cap, &err), 0);
    const char *key = "tenants/Dir/shard0000/manifest.json";
    sv_dir_stats a = {0}, b = {0}, c = {0};
    int rc = sv_snapshot_put_dir(s, cap->shards[0].dir, "Dir", "shard0000", cap->shards[0].objects, key, NULL, &a, &err);
    if (rc)
        fail_msg("put_dir: %s", err.msg);
    assert_true(a.files > 0 && a.bytes > 0);
    assert_int_equal(a.bytes_uploaded, a.bytes);
    assert_int_equal(sv_snapshot_put_dir(s, cap->shards[0].dir, "Dir", "shard0000", cap->shards[0].objects, key, NULL,
                                         &b, &err), 0);
    assert_int_equal(b.bytes_uploaded, 0); /* unchanged: nothing sent again */
    assert_int_equal(sv_snapshot_put_dir(s, cap->shards[0].dir, "Dir", "shard0000", 0,
                                         "snapshots/Dir/x/manifest.json", NULL, &b, &err), SV_EINVAL);
    rc = sv_snapshot_get_dir(s, key, NULL, out_dir, NULL, NULL, &c, &err);
    if (rc)
        fail_msg("get_dir: %s", err.msg);
    assert_int_equal(c.files, a.files);
    assert_int_equal(sv_snapshot_get_dir(s, key, NULL, out_dir, NULL, NULL, &c, &err), SV_EEXIST); /* never overwrites */
    sv_db *db = NULL;
    assert_int_equal(sv_db_open_readonly(sv_store_engine(st), out_dir, &db, &err), 0);
    sv_db_close(db);

    /* A lay-out reusing an earlier one (shard moves): its files as the manifest lists them ... */
    sv_dir_file *files = NULL;
    size_t nfiles = 0;
    assert_int_equal(sv_snapshot_dir_files(s, key, NULL, &files, &nfiles, &err), 0);
    assert_int_equal((int64_t)nfiles, a.files);
    int64_t sst_bytes = 0;
    for (size_t i = 0; i < nfiles; i++)
        if (strstr(files[i].name, ".sst"))
            sst_bytes += files[i].size;
    assert_true(sst_bytes > 0); /* the checkpoint flushed the memtable */
    /* ... trusted when known: only the mutable files are fetched */
    char again[700], bad[700], third[700], cmd[2200];
    snprintf(again, sizeof again, "%s/again", base);
    sv_dir_stats d = {0};
    assert_int_equal(sv_snapshot_get_dir_reusing(s, key, NULL, again, out_dir, files, nfiles, NULL, NULL, &d, &err), 0);
    assert_int_equal(d.files, a.files);
    assert_int_equal(d.bytes_uploaded, a.bytes - sst_bytes);
    assert_int_equal(sv_db_open_readonly(sv_store_engine(st), again, &db, &err), 0);
    sv_db_close(db);
    /* ... and without that list a reused file is hashed first: a corrupt copy is fetched instead */
    snprintf(bad, sizeof bad, "%s/bad", base);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", out_dir, bad);
    assert_int_equal(system(cmd), 0);
    for (size_t i = 0; i < nfiles; i++)
        if (strstr(files[i].name, ".sst")) { /* same size, other bytes */
            char p[1000];
            snprintf(p, sizeof p, "%s/%s", bad, files[i].name);
            FILE *f = fopen(p, "r+b");
            assert_non_null(f);
            fputc('X', f);
            fclose(f);
            break;
        }
    snprintf(third, sizeof third, "%s/third", base);
    assert_int_equal(sv_snapshot_get_dir_reusing(s, key, NULL, third, bad, NULL, 0, NULL, NULL, &d, &err), 0);
    assert_true(d.bytes_uploaded > a.bytes - sst_bytes); /* the corrupt one was fetched */
    assert_int_equal(sv_db_open_readonly(sv_store_engine(st), third, &db, &err), 0);
    sv_db_close(db);
    free(files);
    sv_rmtree(again, NULL);
    sv_rmtree(bad, NULL);
    sv_rmtree(third, NULL);
    /* GC keeps blobs a tenants/ manifest names, and frees them once it is gone */
    int64_t before = blobs_on_disk();
    json_t *g = NULL;
    assert_int_equal(sv_snapshot_gc(s, &g, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(g, "blobsDeleted")), 0);
    json_decref(g);
    assert_int_equal(blobs_on_disk(), before);
    char mpath[800];
    snprintf(mpath, sizeof mpath, "%s/location/%s", base, key);
    assert_int_equal(unlink(mpath), 0);
    assert_int_equal(sv_snapshot_gc(s, &g, &err), 0);
    assert_true(json_integer_value(json_object_get(g, "blobsDeleted")) > 0);
    json_decref(g);
    sv_rmtree(cap_dir, NULL);
    sv_capture_free(cap);
    sv_snapshot_close(s);
    sv_store_close(st);
}

static void gc_delete_does_not_block_status(void **state)
{
    setenv("SHARDVAULT_LOCATION_TEST_DELETE_DELAY_MS", "1500", 1);
    sv_err err = {0};
    sv_store *st = NULL;
    sv_store_opts so = {.data_dir = base};
    assert_int_equal(sv_store_open(&so, cat, &st, &err), 0);
    sv_snapshot *s = NULL;
    sv_snapshot_opts o = {.data_dir = base, .gc_interval_ms = -1, .gc_grace_ms = -1};
    if (sv_snapshot_open(&o, st, cat, &s, &err))
        fail_msg("open: %s", err.msg);
    make_collection(st, "Gc", 30);
    json_decref(create_wait(s, "Gc", "s1"));
    char *job = restore_start(s, "Gc", "s1", "GcCopy");
    json_t *j = wait_job(s, job);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "COMPLETED");
    json_decref(j);
    assert_int_equal(sv_snapshot_drop(s, "Gc", "s1", &err), 0); /* its blobs are garbage now */

    gc_run g = {.s = s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, gc_thread, &g), 0);
    sv_sleep_ms(400); /* listing is instant on file://: GC is in its delete now */
    assert_false(atomic_load(&g.done));
    int64_t t0 = sv_mono_ns();
    assert_int_equal(sv_snapshot_job_get(s, job, &j, &err), 0);
    int64_t took_ms = (sv_mono_ns() - t0) / 1000000;
    json_decref(j);
    assert_false(atomic_load(&g.done)); /* answered while GC was still deleting */
    if (took_ms > 300)
        fail_msg("GET of a restore job took %lld ms while GC deleted", (long long)took_ms);

    /* Same data, same blobs: this create needs what GC is deleting. */
    json_t *snap = create_wait(s, "Gc", "s2");
    assert_string_equal(json_string_value(json_object_get(snap, "status")), "COMMITTED");
    json_decref(snap);
    pthread_join(t, NULL);
    assert_int_equal(g.rc, 0);
    assert_true(json_integer_value(json_object_get(g.out, "blobsDeleted")) > 0);
    json_decref(g.out);
    free(job);
    job = restore_start(s, "Gc", "s2", "GcCopy2");
    j = wait_job(s, job);
    if (strcmp(json_string_value(json_object_get(j, "state")), "COMPLETED"))
        fail_msg("restore of the snapshot created during GC: %s", json_string_value(json_object_get(j, "reason")));
    json_decref(j);
    free(job);
    sv_snapshot_close(s);
    sv_store_close(st);
    unsetenv("SHARDVAULT_LOCATION_TEST_DELETE_DELAY_MS");
}

/* ---- jobs whose tasks cannot be loaded ---------------------------------------------- */

static void open_with_damaged_tasks(const char *id, bool corrupt)
{
    sv_err err = {0};
    sv_restore_meta *m = NULL;
    assert_int_equal(sv_restore_meta_open(cat, &m, &err), 0);
    sv_restore_job jb = mkjob(id, "Src", "Dst", 2);
    sv_restore_task t[2];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 2; i++) {
        snprintf(t[i].job_id, sizeof t[i].job_id, "%s", id);
        snprintf(t[i].shard, sizeof t[i].shard, "shard%d", i);
        snprintf(t[i].collection, sizeof t[i].collection, "Dst");
        t[i].index = i;
        t[i].objects = -1;
    }
    assert_int_equal(sv_restore_meta_add_job(m, &jb, t, 2, &err), 0);
    sv_restore_meta_free(m);
    char key[200];
    snprintf(key, sizeof key, "restore-tasks/%s/shard1", id);
    if (corrupt)
        assert_int_equal(sv_catalog_put(cat, key, "{not json", 9, 0, &err), 0);
    else
        assert_int_equal(sv_catalog_delete(cat, key, &err), 0);

    sv_store *st = NULL;
    sv_store_opts so = {.data_dir = base};
    assert_int_equal(sv_store_open(&so, cat, &st, &err), 0);
    sv_snapshot *s = NULL;
    sv_snapshot_opts o = {.data_dir = base, .gc_interval_ms = -1};
    if (sv_snapshot_open(&o, st, cat, &s, &err))
        fail_msg("open: %s", err.msg);
    json_t *j = NULL;
    assert_int_equal(sv_snapshot_job_get(s, id, &j, &err), 0); /* decided at open: no waiting */
    assert_string_equal(json_string_value(json_object_get(j, "state")), "FAILED");
    const char *reason = json_string_value(json_object_get(j, "reason"));
    char want[100];
    snprintf(want, sizeof want, "restore-tasks/%s/", id);
    if (!strstr(reason, want) || !strstr(reason, "1 of its 2 task records"))
        fail_msg("reason does not name the task records: %s", reason);
    json_decref(j);
    sv_snapshot_close(s);
    sv_store_close(st);
    /* Persisted: a second open finds it FAILED and leaves it. */
    assert_int_equal(sv_restore_meta_open(cat, &m, &err), 0);
    sv_restore_job got;
    assert_int_equal(sv_restore_meta_get_job(m, id, &got), 0);
    assert_int_equal(got.state, SV_RESTORE_FAILED);
    sv_restore_meta_free(m);
}

static void job_with_missing_task_fails_at_open(void **state)
{
    open_with_damaged_tasks("33333333-3333-4333-8333-333333333333", false);
}

static void job_with_corrupt_task_fails_at_open(void **state)
{
    open_with_damaged_tasks("44444444-4444-4444-8444-444444444444", true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(meta_persist_reload_indexes, setup, teardown),
        cmocka_unit_test_setup_teardown(meta_many_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(manifest_roundtrip_and_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(sha256_and_hash_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(service_multi_tenant_inactive, setup, teardown),
        cmocka_unit_test_setup_teardown(gc_delete_does_not_block_status, setup, teardown),
        cmocka_unit_test_setup_teardown(put_and_get_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(job_with_missing_task_fails_at_open, setup, teardown),
        cmocka_unit_test_setup_teardown(job_with_corrupt_task_fails_at_open, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
