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
    sv_uuid uc;
    imp_row_uuid("sample.parquet", 1, &uc);
    sv_uuid_format(&uc, idc);
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


/* The typed path (rows straight into records) gives, byte for byte, the
 * record the text path and the record parser give; rows it does not take
 * (a NaN, a wrong dimension, a value of another type) are handed back. */
static void test_typed_equals_text(void **st)
{
    (void)st;
    sv_err err = {0};
    sv_pq_schema *s = sv_pq_schema_new();
    int uid = sv_pq_schema_leaf(s, SV_PQ_ROOT, "uid", SV_PQ_FIXED_LEN_BYTE_ARRAY, SV_PQ_LT_UUID, 16, 0, &err);
    int vec = sv_pq_schema_list(s, SV_PQ_ROOT, "vec", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, vec, "element", SV_PQ_FLOAT, SV_PQ_LT_NONE, 0, 0, &err) > 0);
    int tv = sv_pq_schema_list(s, SV_PQ_ROOT, "tv", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, tv, "element", SV_PQ_DOUBLE, SV_PQ_LT_NONE, 0, 0, &err) > 0);
    int title = sv_pq_schema_leaf(s, SV_PQ_ROOT, "title", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, SV_PQ_OPTIONAL, &err);
    int n = sv_pq_schema_leaf(s, SV_PQ_ROOT, "n", SV_PQ_INT64, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
    int i32 = sv_pq_schema_leaf(s, SV_PQ_ROOT, "i32", SV_PQ_INT32, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
    int x = sv_pq_schema_leaf(s, SV_PQ_ROOT, "x", SV_PQ_DOUBLE, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
    int f = sv_pq_schema_leaf(s, SV_PQ_ROOT, "f", SV_PQ_FLOAT, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
    int nn = sv_pq_schema_leaf(s, SV_PQ_ROOT, "nn", SV_PQ_INT64, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
    int b = sv_pq_schema_leaf(s, SV_PQ_ROOT, "b", SV_PQ_BOOLEAN, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
    int when = sv_pq_schema_leaf(s, SV_PQ_ROOT, "when", SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS, 0, SV_PQ_OPTIONAL, &err);
    int tags = sv_pq_schema_list(s, SV_PQ_ROOT, "tags", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, tags, "element", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, 0, &err) > 0);
    int ints = sv_pq_schema_list(s, SV_PQ_ROOT, "ints", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, ints, "element", SV_PQ_INT64, SV_PQ_LT_NONE, 0, 0, &err) > 0);
    int nums = sv_pq_schema_list(s, SV_PQ_ROOT, "nums", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, nums, "element", SV_PQ_DOUBLE, SV_PQ_LT_NONE, 0, 0, &err) > 0);
    int u = sv_pq_schema_leaf(s, SV_PQ_ROOT, "u", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, SV_PQ_OPTIONAL, &err);
    int wrong = sv_pq_schema_leaf(s, SV_PQ_ROOT, "wrong", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, SV_PQ_OPTIONAL, &err);
    msink ms = {0};
    sv_pq_sink sink = {mwrite, NULL, &ms};
    sv_pq_writer *w;
    assert_int_equal(sv_pq_writer_new(s, NULL, &sink, &w, &err), 0);
    enum { NROWS = 7 };
    for (int i = 0; i < NROWS; i++) {
        uint8_t id[16];
        for (int k = 0; k < 16; k++)
            id[k] = (uint8_t)(i * 7 + k);
        const void *up[1] = {id};
        uint32_t ul[1] = {16};
        assert_int_equal(sv_pq_append_bytes(w, uid, up, ul, 1, &err), 0);
        bool nulls = i == 1; /* row 1: every optional column null */
        float v[4] = {FLOATS[i % NF], FLOATS[(i + 3) % NF], -1.5f, 1e-30f};
        if (i == 2)
            v[1] = NAN; /* the text path refuses it */
        if (nulls) assert_int_equal(sv_pq_append_null(w, vec, &err), 0);
        else assert_int_equal(sv_pq_append_list(w, vec, v, NULL, i == 3 ? 3 : 4, &err), 0); /* row 3: 3 dims */
        double t2[2] = {0.1 * i, 1.0 / 3};
        if (nulls) assert_int_equal(sv_pq_append_null(w, tv, &err), 0);
        else assert_int_equal(sv_pq_append_list(w, tv, t2, NULL, 2, &err), 0);
        if (nulls) {
            int cols[] = {title, n, i32, x, f, nn, b, when, tags, ints, nums, u};
            for (size_t k = 0; k < sizeof cols / sizeof *cols; k++)
                assert_int_equal(sv_pq_append_null(w, cols[k], &err), 0);
        } else {
            assert_int_equal(sv_pq_append_str(w, title, "h\xC3\xA9llo \"q\"\n\x01", 12, &err), 0);
            assert_int_equal(sv_pq_append_i64(w, n, i == 4 ? INT64_MIN : -i * 1000000007ll, &err), 0);
            assert_int_equal(sv_pq_append_i32(w, i32, i == 5 ? INT32_MIN : i, &err), 0);
            assert_int_equal(sv_pq_append_double(w, x, i == 5 ? 1e308 : 0.1 * i + 1e-17, &err), 0);
            assert_int_equal(sv_pq_append_float(w, f, FLOATS[(i + 5) % NF], &err), 0);
            assert_int_equal(sv_pq_append_i64(w, nn, (1ll << 53) + 1 + i, &err), 0);
            assert_int_equal(sv_pq_append_bool(w, b, i % 2, &err), 0);
            assert_int_equal(sv_pq_append_i64(w, when, i == 6 ? -86400001ll : 1700000000123ll + i, &err), 0);
            const void *tp[3] = {"a", "b\xC3\xA9", ""};
            uint32_t tl[3] = {1, 3, 0};
            assert_int_equal(sv_pq_append_list_bytes(w, tags, tp, tl, i == 5 ? 0 : 3, &err), 0);
            int64_t iv[2] = {INT64_MAX, -7};
            assert_int_equal(sv_pq_append_list(w, ints, iv, NULL, 2, &err), 0);
            double dv[3] = {-0.0, 2.5e-300, 7};
            assert_int_equal(sv_pq_append_list(w, nums, dv, NULL, 3, &err), 0);
            assert_int_equal(sv_pq_append_str(w, u, "6ba7b811-9dad-11d1-80b4-00c04fd430c8", 36, &err), 0);
        }
        if (i == 4) assert_int_equal(sv_pq_append_str(w, wrong, "abc", 3, &err), 0); /* not an int */
        else assert_int_equal(sv_pq_append_null(w, wrong, &err), 0);
        assert_int_equal(sv_pq_writer_end_row(w, &err), 0);
    }
    assert_int_equal(sv_pq_writer_close(w, &err), 0);
    sv_pq_writer_free(w);
    sv_pq_schema_free(s);

    const char *sj = "{\"name\":\"T\",\"shards\":1,\"vectors\":{\"default\":{\"dim\":4},\"named\":{\"t\":{\"dim\":2}}},"
                     "\"properties\":[{\"name\":\"title\",\"type\":\"text\"},{\"name\":\"n\",\"type\":\"int\"},"
                     "{\"name\":\"i32\",\"type\":\"int\"},{\"name\":\"x\",\"type\":\"number\"},"
                     "{\"name\":\"f\",\"type\":\"number\"},{\"name\":\"nn\",\"type\":\"number\"},"
                     "{\"name\":\"b\",\"type\":\"boolean\"},{\"name\":\"when\",\"type\":\"date\"},"
                     "{\"name\":\"tags\",\"type\":\"text[]\"},{\"name\":\"ints\",\"type\":\"int[]\"},"
                     "{\"name\":\"nums\",\"type\":\"number[]\"},{\"name\":\"u\",\"type\":\"uuid\"},"
                     "{\"name\":\"wrong\",\"type\":\"int\"}]}";
    sv_schema *sch;
    assert_int_equal(sv_schema_parse(sj, strlen(sj), &sch, &err), 0);
    msrc m = {ms.out.data, ms.out.len};
    sv_pq_source src = {mread, &m, ms.out.len, "typed.parquet"};
    sv_pq_reader *r;
    assert_int_equal(sv_pq_reader_open(&src, NULL, &r, &err), 0);
    json_t *mapping = json_pack("{s:s,s:s,s:{s:s}}", "id", "uid", "vector", "vec", "namedVectors", "t", "tv");
    imp_plan *p;
    assert_int_equal(imp_plan_new(sv_pq_reader_root(r), mapping, "typed.parquet", &p, &err), 0);
    imp_typed *t;
    assert_int_equal(imp_typed_new(p, sch, &t, &err), 0);
    assert_non_null(t);
    imp_trow *tw = imp_trow_new(t);
    assert_non_null(tw);
    sv_record *parsed = sv_record_new();
    const sv_pq_value *rows;
    size_t nr;
    assert_int_equal(sv_pq_reader_next(r, 0, &rows, &nr, NULL, NULL, &err), 0);
    assert_int_equal(nr, NROWS);
    int typed_rows = 0;
    for (size_t i = 0; i < nr; i++) {
        char id1[37], id2[37], why[400];
        sv_record *rec = NULL;
        int trc = imp_row_record(t, tw, &rows[i], (int64_t)i, &rec, why, sizeof why);
        sv_buf text = {0};
        int xrc = imp_row_text(p, &rows[i], (int64_t)i, "T", NULL, &text, id2, why, sizeof why);
        sv_object_route ro = {0};
        sv_err perr = {0};
        int prc = xrc ? xrc : sv_record_parse_json(parsed, sch, (const char *)text.data, text.len, &ro, &perr);
        if (i >= 2 && i <= 4) {
            /* a NaN, 3 dimensions, "abc" for an int: handed to the text path, which refuses the row */
            assert_int_equal(trc, 1);
            assert_int_not_equal(prc, 0);
            sv_buf_free(&text);
            continue;
        }
        if (trc == 1) {
            sv_buf_free(&text);
            fail_msg("row %zu: the typed path handed back a row it takes", i);
        }
        if (prc)
            fail_msg("row %zu: the text path refused it: %s", i, perr.msg);
        assert_int_equal(trc, 0);
        typed_rows++;
        sv_uuid_format(&rec->id, id1);
        assert_string_equal(id1, id2);
        assert_memory_equal(rec->id.b, parsed->id.b, 16);
        rec->creation_time = rec->update_time = parsed->creation_time = parsed->update_time = 42;
        sv_buf e1 = {0}, e2 = {0};
        assert_int_equal(sv_record_encode(rec, sch, &e1, &err), 0);
        assert_int_equal(sv_record_encode(parsed, sch, &e2, &err), 0);
        if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len))
            fail_msg("row %zu: the typed record differs from the parsed one (%zu vs %zu bytes): %.*s", i, e1.len,
                     e2.len, (int)text.len, (const char *)text.data);
        sv_buf_free(&e1);
        sv_buf_free(&e2);
        sv_buf_free(&text);
    }
    assert_int_equal(typed_rows, 4); /* rows 0, 1, 5, 6 */
    /* a mapping onto an undeclared property: the whole file takes the text path */
    json_t *m2 = json_pack("{s:s,s:{s:s}}", "id", "uid", "properties", "nope", "title");
    imp_plan *p2;
    assert_int_equal(imp_plan_new(sv_pq_reader_root(r), m2, "typed.parquet", &p2, &err), 0);
    imp_typed *t2 = (imp_typed *)1;
    assert_int_equal(imp_typed_new(p2, sch, &t2, &err), 0);
    assert_null(t2);
    imp_plan_free(p2);
    json_decref(m2);
    sv_record_free(parsed);
    imp_trow_free(tw);
    imp_typed_free(t);
    imp_plan_free(p);
    json_decref(mapping);
    sv_pq_reader_free(r);
    sv_schema_free(sch);
    sv_buf_free(&ms.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_to_text),
        cmocka_unit_test(test_typed_equals_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
