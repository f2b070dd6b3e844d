/* Export: key ranges, options, row layouts, and the participant's two-phase
 * commit (reservation timeout, single slot, abort) and crash recovery on a
 * real store with the filesystem backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "export_internal.h"

/* ---- key ranges ------------------------------------------------------------ */

static void ranges_cover_key_space(void **state)
{
    for (uint32_t n = 1; n <= 17; n++) {
        uint8_t prev_end[16] = {0};
        for (uint32_t i = 0; i < n; i++) {
            uint8_t s[16], e[16];
            bool has_end;
            sv_export_range_bounds(i, n, s, e, &has_end);
            /* contiguous: each range starts where the previous ended */
            assert_memory_equal(s, prev_end, 16);
            assert_int_equal(has_end, i + 1 < n);
            if (has_end)
                assert_true(memcmp(s, e, 16) < 0);
            memcpy(prev_end, e, 16);
        }
    }
    uint8_t s[16], e[16], zero[16] = {0};
    bool has_end;
    sv_export_range_bounds(0, 1, s, e, &has_end);
    assert_memory_equal(s, zero, 16);
    assert_false(has_end);
    sv_export_range_bounds(1, 2, s, e, &has_end);
    assert_int_equal(s[0], 0x80);
    assert_int_equal(s[1], 0);
}

static void random_uuids_spread_evenly(void **state)
{
    enum { N = 8, KEYS = 80000 };
    int counts[N] = {0};
    for (int k = 0; k < KEYS; k++) {
        sv_uuid u;
        sv_uuid_v4(&u);
        int found = -1;
        for (uint32_t i = 0; i < N; i++) {
            uint8_t s[16], e[16];
            bool has_end;
            sv_export_range_bounds(i, N, s, e, &has_end);
            if (memcmp(u.b, s, 16) >= 0 && (!has_end || memcmp(u.b, e, 16) < 0)) {
                assert_int_equal(found, -1); /* exactly one range */
                found = (int)i;
            }
        }
        assert_true(found >= 0);
        counts[found]++;
    }
    for (int i = 0; i < N; i++)
        assert_true(counts[i] > KEYS / N * 9 / 10 && counts[i] < KEYS / N * 11 / 10);
}

static void range_count(void **state)
{
    assert_int_equal(sv_export_range_count(0, 1000), 1);
    assert_int_equal(sv_export_range_count(-1, 1000), 1);
    assert_int_equal(sv_export_range_count(1000, 1000), 1);
    assert_int_equal(sv_export_range_count(1001, 1000), 2);
    assert_int_equal(sv_export_range_count(4000000, 1000000), 4);
    assert_int_equal(sv_export_range_count(INT64_MAX / 2, 1), 9999); /* four-digit file names */
}

/* ---- options ------------------------------------------------------------------ */

static int parse_opts(const char *json, sv_export_file_opts *o, sv_err *err)
{
    json_t *j = json ? json_loads(json, 0, NULL) : NULL;
    int rc = sv_export_file_opts_parse(j, o, err);
    json_decref(j);
    return rc;
}

static void options(void **state)
{
    sv_export_file_opts o;
    sv_err err = {0};
    assert_int_equal(parse_opts(NULL, &o, &err), 0);
    assert_int_equal(o.schema, SV_EXPORT_SCHEMA_TYPED);
    assert_int_equal(o.codec, SV_PQ_CODEC_ZSTD);
    assert_int_equal(parse_opts("{\"schema\":\"weaviate\",\"compression\":\"snappy\"}", &o, &err), 0);
    assert_int_equal(o.schema, SV_EXPORT_SCHEMA_WEAVIATE);
    assert_int_equal(o.codec, SV_PQ_CODEC_SNAPPY);
    assert_int_equal(parse_opts("{\"compression\":\"zstd\",\"compression_level\":19}", &o, &err), 0);
    assert_int_equal(o.level, 19);
    assert_int_equal(parse_opts("{\"compression\":\"none\"}", &o, &err), 0);
    assert_int_equal(o.codec, SV_PQ_CODEC_NONE);
    const char *bad[] = {"{\"schema\":\"arrow\"}", "{\"compression\":\"gzip\"}", "{\"compression_level\":0}",
                         "{\"compression_level\":23}", "{\"compression_level\":\"3\"}",
                         "{\"compression\":\"snappy\",\"compression_level\":3}", "{\"path\":\"/etc\"}", "[1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sv_err_clear(&err);
        assert_int_equal(parse_opts(bad[i], &o, &err), SV_EINVAL);
        assert_true(strlen(err.msg) > 10);
    }
    json_t *j = sv_export_file_opts_json(&(sv_export_file_opts){SV_EXPORT_SCHEMA_WEAVIATE, SV_PQ_CODEC_ZSTD, 7});
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"compression\":\"zstd\",\"compression_level\":7,\"schema\":\"weaviate\"}");
    free(s);
    json_decref(j);
}

/* ---- layouts -------------------------------------------------------------------- */

static const char *FULL_SCHEMA =
    "{\"name\":\"Full\",\"shards\":1,\"vectors\":{\"default\":{\"dim\":3},\"named\":{\"a\":{\"dim\":2}},"
    "\"multi\":{\"m\":{\"dim\":2}}},\"properties\":[{\"name\":\"t\",\"type\":\"text\"},{\"name\":\"i\",\"type\":"
    "\"int\"},{\"name\":\"n\",\"type\":\"number\"},{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"d\",\"type\":"
    "\"date\"},{\"name\":\"u\",\"type\":\"uuid\"},{\"name\":\"ts\",\"type\":\"text[]\"},{\"name\":\"us\",\"type\":"
    "\"uuid[]\"},{\"name\":\"is\",\"type\":\"int[]\"},{\"name\":\"o\",\"type\":\"object\"}]}";

static int mem_write(void *ud, const void *data, size_t len, sv_err *err)
{
    return sv_buf_append(ud, data, len);
}

static void layout_rows(sv_export_schema_kind kind)
{
    sv_err err = {0};
    sv_schema *s = NULL;
    assert_int_equal(sv_schema_parse(FULL_SCHEMA, strlen(FULL_SCHEMA), &s, &err), 0);
    sv_export_layout *l = NULL;
    assert_int_equal(sv_export_layout_new(s, kind, &l, &err), 0);
    json_t *d = json_loads(sv_export_layout_description(l), 0, NULL);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "schema")),
                        kind == SV_EXPORT_SCHEMA_TYPED ? "typed" : "weaviate");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "collection"), "name")), "Full");
    assert_int_equal(json_array_size(json_object_get(d, "columns")), kind == SV_EXPORT_SCHEMA_TYPED ? 17 : 7);
    json_decref(d);

    sv_buf file = {0};
    sv_pq_sink sink = {mem_write, NULL, &file};
    sv_pq_writer *w = NULL;
    sv_pq_options o = {.codec = SV_PQ_CODEC_ZSTD};
    assert_int_equal(sv_pq_writer_new(sv_export_layout_pq(l), &o, &sink, &w, &err), 0);
    const char *objs[] = {
        "{\"id\":\"6b3f4c70-0000-4000-8000-000000000001\",\"vector\":[1,2,3],\"namedVectors\":{\"a\":[1,2]},"
        "\"multiVectors\":{\"m\":[[1,2],[3,4],[5,6]]},\"properties\":{\"t\":\"h\\u00e9llo\",\"i\":-5,\"n\":1.5,"
        "\"b\":true,\"d\":\"2024-01-02T03:04:05.678Z\",\"u\":\"6b3f4c70-0000-4000-8000-000000000009\","
        "\"ts\":[\"x\",\"\"],\"us\":[\"6b3f4c70-0000-4000-8000-00000000000a\"],\"is\":[1,2,3],"
        "\"o\":{\"k\":[1,null]},\"undeclared\":42}}",
        "{\"id\":\"6b3f4c70-0000-4000-8000-000000000002\",\"properties\":{}}",
        "{\"id\":\"6b3f4c70-0000-4000-8000-000000000003\",\"properties\":{\"ts\":[],\"us\":[],\"is\":[]}}",
    };
    sv_record *r = sv_record_new();
    sv_export_scratch x = {0};
    sv_buf enc = {0};
    for (size_t i = 0; i < 3; i++) {
        sv_object_route route;
        assert_int_equal(sv_record_parse_json(r, s, objs[i], strlen(objs[i]), &route, &err), 0);
        /* Through the binary encoding, as an export reads it. */
        sv_buf_reset(&enc);
        assert_int_equal(sv_record_encode(r, s, &enc, &err), 0);
        sv_uuid id = r->id;
        r->id = id;
        assert_int_equal(sv_record_decode(r, s, enc.data, enc.len, &err), 0);
        r->creation_time = r->update_time = 1700000000000 + (int64_t)i;
        if (sv_export_layout_append(l, &x, w, r, &err) != 0)
            fail_msg("append %zu: %s", i, err.msg);
    }
    assert_int_equal(sv_pq_writer_rows(w), 3);
    assert_int_equal(sv_pq_writer_close(w, &err), 0);
    assert_true(file.len > 8);
    assert_memory_equal(file.data, "PAR1", 4);
    assert_memory_equal(file.data + file.len - 4, "PAR1", 4);
    sv_pq_writer_free(w);
    sv_buf_free(&enc);
    sv_buf_free(&file);
    sv_export_scratch_free(&x);
    sv_record_free(r);
    sv_export_layout_free(l);
    sv_schema_free(s);
}

static void layout_typed(void **state) { layout_rows(SV_EXPORT_SCHEMA_TYPED); }
static void layout_weaviate(void **state) { layout_rows(SV_EXPORT_SCHEMA_WEAVIATE); }

static void layout_minimal_schema(void **state)
{
    /* No vectors, no properties: no empty groups (Parquet has none). */
    const char *js = "{\"name\":\"Bare\",\"shards\":1,\"properties\":[]}";
    sv_err err = {0};
    sv_schema *s = NULL;
    assert_int_equal(sv_schema_parse(js, strlen(js), &s, &err), 0);
    sv_export_layout *l = NULL;
    assert_int_equal(sv_export_layout_new(s, SV_EXPORT_SCHEMA_TYPED, &l, &err), 0);
    json_t *d = json_loads(sv_export_layout_description(l), 0, NULL);
    assert_int_equal(json_array_size(json_object_get(d, "columns")), 5); /* id, 2 times, vector, properties_json */
    json_decref(d);
    sv_export_layout_free(l);
    sv_schema_free(s);
}

/* ---- file names ---------------------------------------------------------------- */

/* Inverse of sv_export_file_name, as a reader would do it: split the stem at
 * '_' (exactly three fields), then '.' -> '_'. A name that decodes back to
 * its inputs cannot be shared by two different inputs. */
static void decode_name(const char *file, char *coll, char *shard, unsigned *range)
{
    char stem[400];
    size_t n = strlen(file);
    assert_true(n > 8 && !strcmp(file + n - 8, ".parquet"));
    memcpy(stem, file, n - 8);
    stem[n - 8] = '\0';
    char *u1 = strchr(stem, '_');
    assert_non_null(u1);
    char *u2 = strchr(u1 + 1, '_');
    assert_non_null(u2);
    assert_null(strchr(u2 + 1, '_'));
    *u1 = *u2 = '\0';
    for (char *p = u2 + 1; *p; p++)
        assert_true(*p >= '0' && *p <= '9');
    assert_true(strlen(u2 + 1) >= 4);
    *range = (unsigned)strtoul(u2 + 1, NULL, 10);
    strcpy(coll, stem);
    strcpy(shard, u1 + 1);
    for (char *p = coll; *p; p++)
        if (*p == '.')
            *p = '_';
    for (char *p = shard; *p; p++)
        if (*p == '.')
            *p = '_';
}

static void check_round_trip(const char *c, const char *s, uint32_t r, char *out, size_t n)
{
    sv_err err = {0};
    if (sv_export_file_name(out, n, c, s, r, &err))
        fail_msg("%s / %s: %s", c, s, err.msg);
    char dc[200], ds[200];
    unsigned dr;
    decode_name(out, dc, ds, &dr);
    assert_string_equal(dc, c);
    assert_string_equal(ds, s);
    assert_int_equal(dr, r);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void file_names_injective(void **state)
{
    (void)state;
    char f[300];
    sv_err err = {0};
    /* Names that need no escaping keep Weaviate's layout. */
    assert_int_equal(sv_export_file_name(f, sizeof f, "Article", "shard0000", 0, &err), 0);
    assert_string_equal(f, "Article_shard0000_0000.parquet");
    assert_int_equal(sv_export_file_name(f, sizeof f, "Tenanted", "customer-42", 12, &err), 0);
    assert_string_equal(f, "Tenanted_customer-42_0012.parquet");
    assert_int_equal(sv_export_file_name(f, sizeof f, "C", "shard0001", 12345, &err), 0);
    assert_string_equal(f, "C_shard0001_12345.parquet");
    /* The collision: X + tenant y_shard0000 vs X_y + shard0000. */
    char a[300], b[300];
    assert_int_equal(sv_export_file_name(a, sizeof a, "X", "y_shard0000", 0, &err), 0);
    assert_int_equal(sv_export_file_name(b, sizeof b, "X_y", "shard0000", 0, &err), 0);
    assert_string_not_equal(a, b);
    assert_string_equal(a, "X_y.shard0000_0000.parquet");
    assert_string_equal(b, "X.y_shard0000_0000.parquet");
    /* Tricky pairs: leading / trailing / doubled '_', '-' runs, digit-only
     * tenants, names that look like ranges or whole file names. Every
     * (collection, shard, range) gets its own name, and decodes back. */
    static const char *const colls[] = {"X", "X_", "X__", "X_y", "X__y", "Xy", "X_y_shard0000", "X_y_shard0000_0000",
                                        "A_b_c", "A_b", "a", "A1_", "Z_0000", "X_y_"};
    static const char *const shards[] = {"y", "_y", "y_", "__y", "y__", "_", "__", "y_shard0000", "shard0000",
                                         "_shard0000", "shard0000_", "a-b", "a--b", "a-_b", "a_-b", "a_b", "ab-",
                                         "0000", "_0000", "x_0000", "0000_0000", "y-", "_-_", "b_c", "c"};
    static const uint32_t ranges[] = {0, 1, 10, 9999, 10000};
    size_t nc = sizeof colls / sizeof *colls, ns = sizeof shards / sizeof *shards, nr = sizeof ranges / sizeof *ranges;
    size_t total = nc * ns * nr, k = 0;
    char **names = calloc(total, sizeof *names);
    assert_non_null(names);
    for (size_t i = 0; i < nc; i++)
        for (size_t j = 0; j < ns; j++)
            for (size_t r = 0; r < nr; r++) {
                check_round_trip(colls[i], shards[j], ranges[r], f, sizeof f);
                names[k++] = strdup(f);
            }
    qsort(names, total, sizeof *names, cmp_str);
    for (size_t i = 1; i < total; i++)
        if (!strcmp(names[i - 1], names[i]))
            fail_msg("two inputs share the file name %s", names[i]);
    size_t x = 0, y = 0;
    assert_int_equal(sv_export_first_duplicate((const char *const *)names, total, &x, &y, &err), 0);
    for (size_t i = 0; i < total; i++)
        free(names[i]);
    free(names);
    /* Random names over the full alphabets, '_' and '-' frequent. */
    srand(7);
    const char *calpha = "aZ09____", *salpha = "aZ09___---";
    for (int it = 0; it < 20000; it++) {
        char c[129], s[65];
        int cl = 1 + rand() % 12, sl = 1 + rand() % 12;
        c[0] = 'A' + rand() % 26;
        for (int i = 1; i < cl; i++)
            c[i] = calpha[rand() % 8];
        c[cl] = '\0';
        for (int i = 0; i < sl; i++)
            s[i] = salpha[rand() % 10];
        if (s[0] == '-')
            s[0] = '_';
        s[sl] = '\0';
        check_round_trip(c, s, (uint32_t)(rand() % 20000), f, sizeof f);
    }
    /* Names outside the patterns are refused, not written ambiguously. */
    assert_int_equal(sv_export_file_name(f, sizeof f, "X.y", "shard0000", 0, &err), SV_EINVAL);
    assert_int_equal(sv_export_file_name(f, sizeof f, "X", "y.z", 0, &err), SV_EINVAL);
    assert_int_equal(sv_export_file_name(f, sizeof f, "X", "-y", 0, &err), SV_EINVAL);
    assert_int_equal(sv_export_file_name(f, sizeof f, "_X", "y", 0, &err), SV_EINVAL);
    assert_int_equal(sv_export_file_name(f, sizeof f, "X-y", "y", 0, &err), SV_EINVAL);
    assert_int_equal(sv_export_file_name(f, sizeof f, "X", "a/b", 0, &err), SV_EINVAL);
    assert_int_equal(sv_export_file_name(f, sizeof f, "", "y", 0, &err), SV_EINVAL);
    assert_int_equal(sv_export_file_name(f, sizeof f, "X", "", 0, &err), SV_EINVAL);
    assert_int_equal(sv_export_file_name(f, 10, "Article", "shard0000", 0, &err), SV_EINVAL);
}

static void first_duplicate(void **state)
{
    (void)state;
    sv_err err = {0};
    size_t a = 99, b = 99;
    const char *none[] = {"a", "b", "c"};
    assert_int_equal(sv_export_first_duplicate(none, 3, &a, &b, &err), 0);
    assert_int_equal(sv_export_first_duplicate(none, 0, &a, &b, &err), 0);
    const char *dup[] = {"x", "b", "c", "d", "b"};
    assert_int_equal(sv_export_first_duplicate(dup, 5, &a, &b, &err), 1);
    assert_int_equal(a, 1);
    assert_int_equal(b, 4);
}

/* ---- the service on a real store -------------------------------------------------- */

static char base[512];
static sv_catalog *cat;
static sv_store *st;

static int svc_setup(void **state)
{
    const char *tmp = getenv("SV_TEST_TMP") ? getenv("SV_TEST_TMP") : "/tmp";
    snprintf(base, sizeof base, "%s/export-%d", tmp, (int)getpid());
    sv_err err = {0};
    sv_rmtree(base, &err);
    char catdir[600];
    snprintf(catdir, sizeof catdir, "%s/catalog", base);
    assert_int_equal(sv_mkdirs(base, &err), 0);
    assert_int_equal(sv_catalog_open(catdir, &cat, &err), 0);
    sv_store_opts o = {.data_dir = base};
    assert_int_equal(sv_store_open(&o, cat, &st, &err), 0);
    const char *schema = "{\"name\":\"C\",\"shards\":2,\"vectors\":{\"default\":{\"dim\":2}},"
                         "\"properties\":[{\"name\":\"n\",\"type\":\"int\"}]}";
    json_t *j = NULL;
    assert_int_equal(sv_store_create_collection(st, schema, strlen(schema), &j, &err), 0);
    json_decref(j);
    for (int i = 0; i < 50; i++) {
        char json[200];
        snprintf(json, sizeof json, "{\"vector\":[%d,1],\"properties\":{\"n\":%d}}", i, i);
        sv_buf out = {0};
        assert_int_equal(sv_store_put_object(st, "C", NULL, NULL, json, strlen(json), &out, &err), 0);
        sv_buf_free(&out);
    }
    return 0;
}

static int svc_teardown(void **state)
{
    sv_store_close(st);
    sv_catalog_close(cat);
    sv_err err;
    sv_rmtree(base, &err);
    unsetenv("EXPORT_RESERVATION_TIMEOUT_MS");
    return 0;
}

static sv_export *open_svc(void)
{
    sv_export *ex = NULL;
    sv_err err = {0};
    sv_export_opts o = {.store = st, .catalog = cat, .data_dir = base, .node_name = "n1"};
    if (sv_export_open(&o, &ex, &err))
        fail_msg("open: %s", err.msg);
    return ex;
}

static json_t *wait_done(sv_export *ex, const char *id)
{
    for (int i = 0; i < 500; i++) {
        json_t *s = NULL;
        sv_err err = {0};
        assert_int_equal(sv_export_status(ex, "filesystem", id, &s, &err), 0);
        const char *v = json_string_value(json_object_get(s, "status"));
        if (!strcmp(v, "SUCCESS") || !strcmp(v, "FAILED") || !strcmp(v, "CANCELED"))
            return s;
        json_decref(s);
        sv_sleep_ms(10);
    }
    fail_msg("export %s did not finish", id);
    return NULL;
}

static json_t *prep_req(const char *id)
{
    return json_pack("{s:s,s:s,s:[s],s:{s:[s,s]},s:s,s:s}", "id", id, "backend", "filesystem", "classes", "C",
                     "shards", "C", "shard0000", "shard0001", "nodeName", "n1", "path", "/x");
}

static void create_and_status(void **state)
{
    sv_export *ex = open_svc();
    sv_err err = {0};
    json_t *body = json_pack("{s:s}", "id", "first"), *out = NULL;
    assert_int_equal(sv_export_create(ex, "filesystem", body, &out, &err), 0);
    assert_string_equal(json_string_value(json_object_get(out, "status")), "STARTED");
    json_decref(out);
    json_t *s = wait_done(ex, "first");
    assert_string_equal(json_string_value(json_object_get(s, "status")), "SUCCESS");
    json_t *ss = json_object_get(json_object_get(s, "shardStatus"), "C");
    int64_t n = json_integer_value(json_object_get(json_object_get(ss, "shard0000"), "objectsExported")) +
                json_integer_value(json_object_get(json_object_get(ss, "shard0001"), "objectsExported"));
    assert_int_equal(n, 50);
    json_decref(s);
    /* id reuse */
    assert_int_equal(sv_export_create(ex, "filesystem", body, &out, &err), SV_EEXIST);
    json_decref(body);
    /* checkpoints are gone */
    char dir[700];
    snprintf(dir, sizeof dir, "%s/tmp/export-first-1", base);
    assert_false(sv_path_exists(dir));
    sv_export_close(ex);
}

static void reservation_times_out(void **state)
{
    setenv("EXPORT_RESERVATION_TIMEOUT_MS", "200", 1);
    sv_export *ex = open_svc();
    sv_export_participant p = sv_export_local_participant(ex);
    sv_err err = {0};
    json_t *req = prep_req("r1");
    assert_int_equal(p.prepare(p.self, req, &err), 0);
    /* the single slot is taken */
    json_t *req2 = prep_req("r2");
    assert_int_equal(p.prepare(p.self, req2, &err), SV_ECONFLICT);
    assert_false(p.is_running(p.self, "r1"));
    sv_sleep_ms(700);
    /* released automatically: commit is refused, the slot is free again */
    assert_int_equal(p.commit(p.self, "r1", &err), SV_ENOTFOUND);
    assert_int_equal(p.prepare(p.self, req2, &err), 0);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/tmp/export-r1-1", base);
    assert_false(sv_path_exists(dir)); /* checkpoints removed */
    /* abort releases at once */
    p.abort(p.self, "r2", NULL);
    assert_int_equal(p.prepare(p.self, req, &err), 0);
    p.abort(p.self, "r1", NULL);
    json_decref(req);
    json_decref(req2);
    sv_export_close(ex);
}

static void crash_recovery(void **state)
{
    /* What a node that died mid-export leaves: metadata STARTED and the
     * running marker in the catalog. */
    sv_err err = {0};
    char dir[700], file[800];
    snprintf(dir, sizeof dir, "%s/exports/dead", base);
    assert_int_equal(sv_mkdirs(dir, &err), 0);
    snprintf(file, sizeof file, "%s/export_metadata.json", dir);
    const char *meta = "{\"format_version\":1,\"id\":\"dead\",\"backend\":\"filesystem\",\"status\":\"TRANSFERRING\","
                       "\"startedAtMs\":1700000000000,\"classes\":[\"C\"],\"nodeAssignments\":{\"n1\":{\"C\":["
                       "\"shard0000\",\"shard0001\"]}},\"shardStatus\":{\"C\":{\"shard0000\":{\"status\":\"SUCCESS\","
                       "\"objectsExported\":3,\"bytesWritten\":10}}}}";
    assert_int_equal(sv_write_file_atomic(file, meta, strlen(meta), &err), 0);
    const char *mark = "{\"id\":\"dead\",\"backend\":\"filesystem\",\"node\":\"n1\"}";
    assert_int_equal(sv_catalog_put(cat, "export/running/dead", mark, strlen(mark), 0, &err), 0);
    sv_export *ex = open_svc();
    json_t *s = NULL;
    assert_int_equal(sv_export_status(ex, "filesystem", "dead", &s, &err), 0);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "FAILED");
    assert_non_null(strstr(json_string_value(json_object_get(s, "error")), "crash"));
    json_t *ss = json_object_get(json_object_get(s, "shardStatus"), "C");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ss, "shard0000"), "status")), "SUCCESS");
    assert_string_equal(json_string_value(json_object_get(json_object_get(ss, "shard0001"), "status")), "FAILED");
    json_decref(s);
    char *v = NULL;
    size_t len;
    assert_int_equal(sv_catalog_get(cat, "export/running/dead", &v, &len, NULL, &err), SV_ENOTFOUND);
    sv_export_close(ex);
}

/* What a crash really leaves: the metadata as created (STARTED, no shard
 * progress: it is rewritten only at the end) and the node status file last
 * flushed while running. Shards that had finished stay SUCCESS with their
 * rows and bytes. */
static void crash_recovery_keeps_finished_shards(void **state)
{
    sv_err err = {0};
    char dir[700], file[800];
    snprintf(dir, sizeof dir, "%s/exports/dead2", base);
    assert_int_equal(sv_mkdirs(dir, &err), 0);
    snprintf(file, sizeof file, "%s/export_metadata.json", dir);
    const char *meta = "{\"format_version\":1,\"id\":\"dead2\",\"backend\":\"filesystem\",\"status\":\"STARTED\","
                       "\"startedAtMs\":1700000000000,\"classes\":[\"C\"],\"nodeAssignments\":{\"n1\":{\"C\":["
                       "\"shard0000\",\"shard0001\"]}},\"shardStatus\":{}}";
    assert_int_equal(sv_write_file_atomic(file, meta, strlen(meta), &err), 0);
    snprintf(file, sizeof file, "%s/node_n1_status.json", dir);
    const char *node = "{\"format_version\":1,\"nodeName\":\"n1\",\"status\":\"TRANSFERRING\",\"shardProgress\":{\"C\":{"
                       "\"shard0000\":{\"status\":\"SUCCESS\",\"objectsExported\":3,\"bytesWritten\":1234},"
                       "\"shard0001\":{\"status\":\"TRANSFERRING\",\"objectsExported\":1,\"bytesWritten\":50}}}}";
    assert_int_equal(sv_write_file_atomic(file, node, strlen(node), &err), 0);
    const char *mark = "{\"id\":\"dead2\",\"backend\":\"filesystem\",\"node\":\"n1\"}";
    assert_int_equal(sv_catalog_put(cat, "export/running/dead2", mark, strlen(mark), 0, &err), 0);
    sv_export *ex = open_svc();
    json_t *s = NULL;
    assert_int_equal(sv_export_status(ex, "filesystem", "dead2", &s, &err), 0);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "FAILED");
    json_t *ss = json_object_get(json_object_get(s, "shardStatus"), "C");
    json_t *s0 = json_object_get(ss, "shard0000"), *s1 = json_object_get(ss, "shard0001");
    assert_string_equal(json_string_value(json_object_get(s0, "status")), "SUCCESS");
    assert_int_equal(json_integer_value(json_object_get(s0, "objectsExported")), 3);
    assert_int_equal(json_integer_value(json_object_get(s0, "bytesWritten")), 1234);
    assert_string_equal(json_string_value(json_object_get(s1, "status")), "FAILED");
    assert_non_null(strstr(json_string_value(json_object_get(s1, "error")), "crash"));
    json_decref(s);
    sv_export_close(ex);
}

/* A request naming the same shard twice (a scheduler bug, or any future name
 * clash) would write the same files twice: the export fails before writing
 * anything instead of reporting SUCCESS for rows its files do not hold. */
static void colliding_files_fail(void **state)
{
    sv_export *ex = open_svc();
    sv_export_participant p = sv_export_local_participant(ex);
    sv_err err = {0};
    json_t *req = json_pack("{s:s,s:s,s:[s],s:{s:[s,s]},s:s,s:s,s:I,s:{s:{s:[s]}},s:{s:s,s:s}}", "id", "dup",
                            "backend", "filesystem", "classes", "C", "shards", "C", "shard0000", "shard0000",
                            "nodeName", "n1", "path", "/x", "startedAtMs", (json_int_t)sv_now_ms(), "nodeAssignments",
                            "n1", "C", "shard0000", "options", "schema", "typed", "compression", "zstd");
    assert_non_null(req);
    assert_int_equal(p.prepare(p.self, req, &err), 0);
    assert_int_equal(p.commit(p.self, "dup", &err), 0);
    json_t *s = wait_done(ex, "dup");
    assert_string_equal(json_string_value(json_object_get(s, "status")), "FAILED");
    const char *why = json_string_value(json_object_get(s, "error"));
    assert_non_null(why);
    assert_non_null(strstr(why, "would collide"));
    assert_non_null(strstr(why, "C_shard0000"));
    json_decref(s);
    char f[800];
    snprintf(f, sizeof f, "%s/exports/dup/C_shard0000_0000.parquet", base);
    assert_false(sv_path_exists(f)); /* nothing was written */
    json_decref(req);
    sv_export_close(ex);
}

static void shutdown_refuses(void **state)
{
    sv_export *ex = open_svc();
    sv_export_shutdown(ex);
    sv_err err = {0};
    json_t *body = json_pack("{s:s}", "id", "late"), *out = NULL;
    assert_int_equal(sv_export_create(ex, "filesystem", body, &out, &err), SV_EUNAVAIL);
    assert_non_null(strstr(err.msg, "shutting down"));
    sv_export_participant p = sv_export_local_participant(ex);
    json_t *req = prep_req("late");
    assert_int_equal(p.prepare(p.self, req, &err), SV_EUNAVAIL);
    /* status still answers (from the location) */
    assert_int_equal(sv_export_status(ex, "filesystem", "late", &out, &err), SV_ENOTFOUND);
    json_decref(req);
    json_decref(body);
    sv_export_close(ex);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ranges_cover_key_space),
        cmocka_unit_test(random_uuids_spread_evenly),
        cmocka_unit_test(range_count),
        cmocka_unit_test(options),
        cmocka_unit_test(layout_typed),
        cmocka_unit_test(layout_weaviate),
        cmocka_unit_test(layout_minimal_schema),
        cmocka_unit_test(file_names_injective),
        cmocka_unit_test(first_duplicate),
        cmocka_unit_test_setup_teardown(create_and_status, svc_setup, svc_teardown),
        cmocka_unit_test_setup_teardown(reservation_times_out, svc_setup, svc_teardown),
        cmocka_unit_test_setup_teardown(crash_recovery, svc_setup, svc_teardown),
        cmocka_unit_test_setup_teardown(crash_recovery_keeps_finished_shards, svc_setup, svc_teardown),
        cmocka_unit_test_setup_teardown(colliding_files_fail, svc_setup, svc_teardown),
        cmocka_unit_test_setup_teardown(shutdown_refuses, svc_setup, svc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
