/* The importer's row conversion: files written by the module's writer, read
 * by the reader, turned into object text through plans, checked field by
 * field — floats read back exactly, times, UUID ids, mappings and their
 * errors, bad rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "importer_internal.h"
#include "parquet.h"

typedef struct { sv_buf out; } msink;
static int mwrite(void *ud, const void *d, size_t n, sv_err *e) { (void)e; return sv_buf_append(&((msink *)ud)->out, d, n); }
typedef struct { const uint8_t *p; size_t n; } msrc;
static int mread(void *ud, uint64_t off, void *buf, size_t len, sv_err *err)
{
    (void)err;
    msrc *m = ud;
    memcpy(buf, m->p + off, len);
    return 0;
}

static const float FLOATS[] = {0.0f, -0.0f, 1.0f / 3, -2.5f, 3.4028235e38f, 1.17549435e-38f, 1.4e-45f, 16777217.0f,
                               123456789.0f, 1e-7f, -98765.4321f, 0.1f};
#define NF (sizeof FLOATS / sizeof *FLOATS)

/* rows: id (UUID bytes, null in row 2), vec list<float>, ts TIMESTAMP_MS, title STRING, n INT64 */
static sv_buf sample(void)
{
    sv_err err = {0};
    sv_pq_schema *s = sv_pq_schema_new();
    int id = sv_pq_schema_leaf(s, SV_PQ_ROOT, "uid", SV_PQ_FIXED_LEN_BYTE_ARRAY, SV_PQ_LT_UUID, 16, SV_PQ_OPTIONAL, &err);
    int vec = sv_pq_schema_list(s, SV_PQ_ROOT, "vec", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, vec, "element", SV_PQ_FLOAT, SV_PQ_LT_NONE, 0, 0, &err) > 0);
    int ts = sv_pq_schema_leaf(s, SV_PQ_ROOT, "ts", SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS, 0, SV_PQ_OPTIONAL, &err);
    int title = sv_pq_schema_leaf(s, SV_PQ_ROOT, "title", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, SV_PQ_OPTIONAL, &err);
    int n = sv_pq_schema_leaf(s, SV_PQ_ROOT, "n", SV_PQ_INT64, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
    msink ms = {0};
    sv_pq_sink sink = {mwrite, NULL, &ms};
    sv_pq_writer *w;
    assert_int_equal(sv_pq_writer_new(s, NULL, &sink, &w, &err), 0);
    for (int i = 0; i < 4; i++) {
        uint8_t u[16];
        for (int k = 0; k < 16; k++)
            u[k] = (uint8_t)(i * 16 + k);
        const void *up[1] = {i == 2 ? NULL : u};
        uint32_t ul[1] = {16};
        assert_int_equal(sv_pq_append_bytes(w, id, up, ul, 1, &err), 0);
        assert_int_equal(sv_pq_append_list(w, vec, FLOATS, NULL, NF, &err), 0);
        assert_int_equal(sv_pq_append_i64(w, ts, 1700000000000ll + i, &err), 0);
        if (i == 1) assert_int_equal(sv_pq_append_null(w, title, &err), 0);
        else assert_int_equal(sv_pq_append_str(w, title, "h\xC3\xA9llo \"q\"", 10, &err), 0);
        assert_int_equal(sv_pq_append_i64(w, n, -i, &err), 0);
        assert_int_equal(sv_pq_writer_end_row(w, &err), 0);
    }
    assert_int_equal(sv_pq_writer_close(w, &err), 0);
    sv_pq_writer_free(w);
    sv_pq_schema_free(s);
    return ms.out;
}

static void test_rows_to_text(void **st)
{
    (void)st;
    sv_buf f = sample();
    msrc m = {f.data, f.len};
    sv_pq_source src = {mread, &m, f.len, "sample.parquet"};
    sv_pq_reader *r;
    sv_err err = {0};
    assert_int_equal(sv_pq_reader_open(&src, NULL, &r, &err), 0);
    json_t *mapping = json_pack("{s:s,s:s,s:{s:s,s:s}}", "id", "uid", "vector", "vec", "properties", "*", "rest", "when",
                                "ts");
    imp_plan *p;
    assert_int_equal(imp_plan_new(sv_pq_reader_root(r), mapping, "sample.parquet", &p, &err), 0);
    const sv_pq_value *rows;
    size_t n;
    assert_int_equal(sv_pq_reader_next(r, 0, &rows, &n, NULL, NULL, &err), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        sv_buf out = {0};
        char id[37], why[400];
        int rc = imp_row_text(p, &rows[i], (int64_t)i, "Coll", i == 3 ? "t1" : NULL, &out, id, why, sizeof why);
        if (i == 2) { /* null id */
            assert_int_equal(rc, SV_EINVAL);
            assert_non_null(strstr(why, "column uid"));
            assert_int_equal(out.len, 0);
            continue;
        }
        assert_int_equal(rc, 0);
        json_error_t je;
        json_t *o = json_loadb((const char *)out.data, out.len, 0, &je);
        assert_non_null(o);
        char want_id[37];
        sv_uuid u;
        for (int k = 0; k < 16; k++)
            u.b[k] = (uint8_t)(i * 16 + k);
        sv_uuid_format(&u, want_id);
        assert_string_equal(json_string_value(json_object_get(o, "id")), want_id);
        assert_string_equal(id, want_id);
        assert_string_equal(json_string_value(json_object_get(o, "collection")), "Coll");
        if (i == 3) assert_string_equal(json_string_value(json_object_get(o, "tenant")), "t1");
        else assert_null(json_object_get(o, "tenant"));
        json_t *vec = json_object_get(o, "vector");
        assert_int_equal(json_array_size(vec), NF);
        for (size_t k = 0; k < NF; k++) {
            double d = json_number_value(json_array_get(vec, k));
            assert_true((float)d == FLOATS[k]); /* reads back as the same float32 */
        }
        json_t *props = json_object_get(o, "properties");
        assert_string_equal(json_string_value(json_object_get(props, "when")), i == 0 ? "2023-11-14T22:13:20.000Z"
                            : i == 1 ? "2023-11-14T22:13:20.001Z" : "2023-11-14T22:13:20.003Z");
        assert_null(json_object_get(props, "ts")); /* mapped as "when", not again by "rest" */
        if (i == 1) assert_null(json_object_get(props, "title"));
        else assert_string_equal(json_string_value(json_object_get(props, "title")), "h\xC3\xA9llo \"q\"");
        assert_int_equal(json_integer_value(json_object_get(props, "n")), -(json_int_t)i);
        json_decref(o);
        sv_buf_free(&out);
    }
    imp_plan_free(p);
    json_decref(mapping);
    /* mapping errors name what is wrong */
    const char *bad[][2] = {
        {"{\"vector\":\"nope\"}", "no column 'nope'"},
        {"{\"colour\":\"x\"}", "unknown field 'colour'"},
        {"{\"properties\":{\"*\":\"elsewhere\"}}", "no column 'elsewhere'"},
        {"{\"properties\":{\"bad name!\":\"n\"}}", "bad name!"},
        {"{\"id\":5}", "mapping.id"},
        {"{\"vector\":\"title.x\"}", "not inside a group"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        json_t *mj = json_loads(bad[k][0], 0, NULL);
        assert_non_null(mj);
        memset(&err, 0, sizeof err);
        assert_int_equal(imp_plan_new(sv_pq_reader_root(r), mj, "sample.parquet", &p, &err), SV_EINVAL);
        if (!strstr(err.msg, bad[k][1]))
            fail_msg("mapping %s: message '%s' lacks '%s'", bad[k][0], err.msg, bad[k][1]);
        json_decref(mj);
    }
    /* no mapping: every column a property; ids generated from file and row, stable */
    assert_int_equal(imp_plan_new(sv_pq_reader_root(r), NULL, "sample.parquet", &p, &err), 0);
    sv_buf a = {0}, b = {0};
    char ida[37], idb[37], why[400];
    assert_int_equal(imp_row_text(p, &rows[0], 0, "C", NULL, &a, ida, why, sizeof why), 0);
    assert_int_equal(imp_row_text(p, &rows[0], 0, "C", NULL, &b, idb, why, sizeof why), 0);
    assert_string_equal(ida, idb);
    char idc[37];
    imp_row_uuid("sample.parquet", 1, idc);
    assert_string_not_equal(ida, idc);
    json_t *o = json_loadb((const char *)a.data, a.len, 0, NULL);
    assert_non_null(json_object_get(json_object_get(o, "properties"), "vec"));
    assert_non_null(json_object_get(json_object_get(o, "properties"), "uid"));
    json_decref(o);
    sv_buf_free(&a);
    sv_buf_free(&b);
    imp_plan_free(p);
    sv_pq_reader_free(r);
    sv_buf_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_to_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
