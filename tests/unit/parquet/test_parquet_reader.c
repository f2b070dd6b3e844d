/* The reader: decoders against hand-worked bytes, the module's own writer
 * read back value by value (every codec, nesting, nulls, dictionary), and
 * malformed files (every truncation, byte flips, limits) answered with an
 * error that names the file — never a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "parquet.h"
#include "reader_internal.h"

typedef struct { sv_buf out; } msink;
static int mwrite(void *ud, const void *d, size_t n, sv_err *e) { (void)e; return sv_buf_append(&((msink *)ud)->out, d, n); }

typedef struct { const uint8_t *p; size_t n; int reads; } msrc;
static int mread(void *ud, uint64_t off, void *buf, size_t len, sv_err *err)
{
    msrc *m = ud;
    if (off > m->n || len > m->n - off)
        return sv_fail(err, SV_EINTERNAL, "read past the end");
    memcpy(buf, m->p + off, len);
    m->reads++;
    return 0;
}

static void test_rle_decode(void **st)
{
    (void)st;
    /* run of 5 x value 3 (width 2): header 5<<1 = 0x0A, value 0x03;
       then one bit-packed group (1<<1|1 = 0x03) of 8 values 0..3,0..3 width 2:
       bits LSB first: 0,1,2,3 -> 0b11100100 = 0xE4, twice */
    const uint8_t in[] = {0x0A, 0x03, 0x03, 0xE4, 0xE4};
    uint32_t out[13];
    assert_int_equal(pq_rle_decode(in, sizeof in, 2, out, 13, 4), 0);
    const uint32_t want[13] = {3, 3, 3, 3, 3, 0, 1, 2, 3, 0, 1, 2, 3};
    assert_memory_equal(out, want, sizeof want);
    /* past the limit, past the end */
    assert_int_equal(pq_rle_decode(in, sizeof in, 2, out, 13, 3), -1);
    assert_int_equal(pq_rle_decode(in, 3, 2, out, 13, 4), -1);
    assert_int_equal(pq_rle_decode(in, sizeof in, 2, out, 14, 4), -1);
}

static void test_delta_decode(void **st)
{
    (void)st;
    /* 1,2,3,4,5: block 128, 4 miniblocks, 5 values, first 1 (zigzag 2);
       min delta 1 (zigzag 2), widths 0,0,0,0, no miniblock data. */
    const uint8_t in[] = {0x80, 0x01, 0x04, 0x05, 0x02, 0x02, 0, 0, 0, 0};
    int64_t out[8];
    size_t n, used;
    assert_int_equal(pq_delta_decode(in, sizeof in, out, 8, &n, &used), 0);
    assert_int_equal(n, 5);
    assert_int_equal(used, sizeof in);
    for (int i = 0; i < 5; i++)
        assert_int_equal(out[i], i + 1);
    /* 7,5,3,1,2,3,4,5 (spec example 2): deltas -2,-2,-2,1,1,1,1; min -2 ->
       adjusted 0,0,0,3,3,3,3 width 2 in miniblock 0 (32 values, 8 bytes). */
    uint8_t in2[64] = {0x80, 0x01, 0x04, 0x08, 0x0E /* zigzag 7 */, 0x03 /* zigzag -2 */, 2, 0, 0, 0};
    /* 0,0,0,3 -> 0b11000000 = 0xC0 ; 3,3,3,(0) -> 0b00111111 = 0x3F */
    in2[10] = 0xC0;
    in2[11] = 0x3F;
    assert_int_equal(pq_delta_decode(in2, 18, out, 8, &n, &used), 0);
    const int64_t want[8] = {7, 5, 3, 1, 2, 3, 4, 5};
    assert_int_equal(n, 8);
    assert_memory_equal(out, want, sizeof want);
    assert_int_equal(used, 18);
    /* too many values for the caller's room, truncated miniblock */
    assert_int_equal(pq_delta_decode(in2, 18, out, 7, &n, &used), -1);
    assert_int_equal(pq_delta_decode(in2, 15, out, 8, &n, &used), -1);
}

/* A file with flat, optional, list, nested list and group columns. */
static void write_sample_pages(sv_buf *out, sv_pq_codec codec, int rows, int64_t rg_rows, int64_t page_bytes)
{
    sv_err err = {0};
    sv_pq_schema *s = sv_pq_schema_new();
    int id = sv_pq_schema_leaf(s, SV_PQ_ROOT, "id", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, SV_PQ_DICT, &err);
    int n = sv_pq_schema_leaf(s, SV_PQ_ROOT, "n", SV_PQ_INT64, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
    int ts = sv_pq_schema_leaf(s, SV_PQ_ROOT, "ts", SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS, 0, 0, &err);
    int vec = sv_pq_schema_list(s, SV_PQ_ROOT, "vec", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, vec, "element", SV_PQ_FLOAT, SV_PQ_LT_NONE, 0, 0, &err) > 0);
    int g = sv_pq_schema_group(s, SV_PQ_ROOT, "g", SV_PQ_OPTIONAL, &err);
    int b = sv_pq_schema_leaf(s, g, "b", SV_PQ_BOOLEAN, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
    int mv = sv_pq_schema_list(s, g, "mv", SV_PQ_OPTIONAL, 0, &err);
    int inner = sv_pq_schema_list(s, mv, "element", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, inner, "element", SV_PQ_DOUBLE, SV_PQ_LT_NONE, 0, 0, &err) > 0);
    int tags = sv_pq_schema_list(s, SV_PQ_ROOT, "tags", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, tags, "element", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, 0, &err) > 0);
    msink ms = {0};
    sv_pq_sink sink = {mwrite, NULL, &ms};
    sv_pq_options o = {.codec = codec, .row_group_rows = rg_rows, .page_bytes = page_bytes};
    sv_pq_writer *w;
    assert_int_equal(sv_pq_writer_new(s, &o, &sink, &w, &err), 0);
    for (int i = 0; i < rows; i++) {
        char t[16];
        snprintf(t, sizeof t, "row%d", i % 5);
        assert_int_equal(sv_pq_append_str(w, id, t, strlen(t), &err), 0);
        if (i % 3) assert_int_equal(sv_pq_append_i64(w, n, i * 1000ll - 7, &err), 0);
        else assert_int_equal(sv_pq_append_null(w, n, &err), 0);
        assert_int_equal(sv_pq_append_i64(w, ts, 1700000000000ll + i, &err), 0);
        float f[3] = {(float)i, 0.5f, -1.25f};
        if (i % 4 == 1) assert_int_equal(sv_pq_append_null(w, vec, &err), 0);
        else assert_int_equal(sv_pq_append_list(w, vec, f, NULL, (size_t)(i % 4), &err), 0);
        if (i % 5 == 2) {
            assert_int_equal(sv_pq_append_null(w, g, &err), 0);
        } else {
            if (i % 7 == 3) assert_int_equal(sv_pq_append_null(w, b, &err), 0);
            else assert_int_equal(sv_pq_append_bool(w, b, i & 1, &err), 0);
            double d[5] = {1, 2, 3, 4, (double)i};
            uint32_t lens[3] = {2, i % 3 ? (uint32_t)(i % 3) : SV_PQ_NULL_LIST, 1};
            assert_int_equal(sv_pq_append_list2(w, mv, d, lens, (size_t)(i % 4), &err), 0);
        }
        const void *tp[2] = {"x", "yz"};
        uint32_t tl[2] = {1, 2};
        assert_int_equal(sv_pq_append_list_bytes(w, tags, tp, tl, (size_t)(i % 3), &err), 0);
        assert_int_equal(sv_pq_writer_end_row(w, &err), 0);
    }
    assert_int_equal(sv_pq_writer_close(w, &err), 0);
    sv_pq_writer_free(w);
    sv_pq_schema_free(s);
    *out = ms.out;
}

static void write_sample(sv_buf *out, sv_pq_codec codec, int rows, int64_t rg_rows)
{
    write_sample_pages(out, codec, rows, rg_rows, 256);
}

static const sv_pq_value *kid(const sv_pq_value *g, int i) { return &g->u.items[i]; }

static void check_rows(sv_pq_reader *r, int rows)
{
    const sv_pq_rnode *root = sv_pq_reader_root(r);
    assert_int_equal(root->n_children, 6);
    assert_string_equal(root->children[3]->name, "vec");
    assert_int_equal(root->children[3]->kind, SV_PQ_RLIST);
    assert_int_equal(root->children[2]->lt, SV_PQ_RLT_TIMESTAMP);
    assert_int_equal(root->children[2]->unit, SV_PQ_MILLIS);
    assert_int_equal(root->children[0]->lt, SV_PQ_RLT_STRING);
    int seen = 0;
    sv_err err = {0};
    for (;;) {
        const sv_pq_value *v;
        size_t n;
        int rg;
        int64_t at;
        assert_int_equal(sv_pq_reader_next(r, 7, &v, &n, &rg, &at, &err), 0);
        if (n == 0)
            break;
        for (size_t k = 0; k < n; k++, seen++) {
            int i = seen;
            const sv_pq_value *row = &v[k];
            char t[16];
            snprintf(t, sizeof t, "row%d", i % 5);
            assert_int_equal(kid(row, 0)->kind, SV_PQV_BYTES);
            assert_int_equal(kid(row, 0)->n, strlen(t));
            assert_memory_equal(kid(row, 0)->u.bytes, t, strlen(t));
            if (i % 3) assert_int_equal(kid(row, 1)->u.i, i * 1000ll - 7);
            else assert_int_equal(kid(row, 1)->kind, SV_PQV_NULL);
            assert_int_equal(kid(row, 2)->u.i, 1700000000000ll + i);
            const sv_pq_value *vec = kid(row, 3);
            if (i % 4 == 1) {
                assert_int_equal(vec->kind, SV_PQV_NULL);
            } else if (i % 4 == 0) {
                assert_int_equal(vec->kind, SV_PQV_LIST);
                assert_int_equal(vec->n, 0);
            } else {
                assert_int_equal(vec->kind, SV_PQV_PACKED);
                assert_int_equal(vec->n, i % 4);
                const float *f = vec->u.raw;
                assert_true(f[0] == (float)i);
                if (vec->n > 1) assert_true(f[1] == 0.5f);
            }
            const sv_pq_value *g = kid(row, 4);
            if (i % 5 == 2) {
                assert_int_equal(g->kind, SV_PQV_NULL);
            } else {
                assert_int_equal(g->kind, SV_PQV_GROUP);
                if (i % 7 == 3) assert_int_equal(kid(g, 0)->kind, SV_PQV_NULL);
                else assert_int_equal(kid(g, 0)->u.b, (bool)(i & 1));
                const sv_pq_value *mv = kid(g, 1);
                assert_int_equal(mv->kind, SV_PQV_LIST);
                assert_int_equal(mv->n, i % 4);
                size_t off = 0;
                uint32_t lens[3] = {2, i % 3 ? (uint32_t)(i % 3) : SV_PQ_NULL_LIST, 1};
                double d[5] = {1, 2, 3, 4, (double)i};
                for (uint32_t j = 0; j < mv->n; j++) {
                    const sv_pq_value *in = &mv->u.items[j];
                    if (lens[j] == SV_PQ_NULL_LIST) {
                        assert_int_equal(in->kind, SV_PQV_NULL);
                        continue;
                    }
                    assert_int_equal(in->kind, SV_PQV_PACKED);
                    assert_int_equal(in->n, lens[j]);
                    for (uint32_t q = 0; q < in->n; q++)
                        assert_true(((const double *)in->u.raw)[q] == d[off + q]);
                    off += lens[j];
                }
            }
            const sv_pq_value *tg = kid(row, 5);
            assert_int_equal(tg->kind, SV_PQV_LIST);
            assert_int_equal(tg->n, i % 3);
            if (tg->n == 2)
                assert_memory_equal(tg->u.items[1].u.bytes, "yz", 2);
        }
    }
    assert_int_equal(seen, rows);
}

static void test_round_trip(void **st)
{
    (void)st;
    sv_pq_codec codecs[] = {SV_PQ_CODEC_NONE, SV_PQ_CODEC_SNAPPY, SV_PQ_CODEC_ZSTD};
    /* pages of 256 bytes, and one page per column chunk: compressed number
     * columns are then decompressed in place, their values wherever the
     * levels (of varying length, with nulls) leave them */
    for (int c = 0; c < 6; c++) {
        sv_buf f;
        write_sample_pages(&f, codecs[c % 3], 1000, 300, c < 3 ? 256 : (1 << 20));
        msrc m = {f.data, f.len, 0};
        sv_pq_source src = {mread, &m, f.len, "sample.parquet"};
        sv_pq_reader *r;
        sv_err err = {0};
        assert_int_equal(sv_pq_reader_open(&src, NULL, &r, &err), 0);
        assert_int_equal(sv_pq_reader_num_rows(r), 1000);
        assert_int_equal(sv_pq_reader_num_row_groups(r), 4);
        check_rows(r, 1000);
        /* seek back to row group 3: 100 rows left */
        assert_int_equal(sv_pq_reader_seek_row_group(r, 3, &err), 0);
        const sv_pq_value *v;
        size_t n;
        int rg;
        int64_t at;
        assert_int_equal(sv_pq_reader_next(r, 1000, &v, &n, &rg, &at, &err), 0);
        assert_int_equal(n, 100);
        assert_int_equal(rg, 3);
        assert_int_equal(at, 0);
        assert_int_equal(sv_pq_reader_seek_row_group(r, 5, &err), SV_EINVAL);
        sv_pq_reader_free(r);
        sv_buf_free(&f);
    }
}

/* Reads everything; returns the first error code (0 when the whole file reads). */
static int read_all(const uint8_t *p, size_t len, const sv_pq_read_options *opt, sv_err *err)
{
    msrc m = {p, len, 0};
    sv_pq_source src = {mread, &m, len, "bad.parquet"};
    sv_pq_reader *r;
    int rc = sv_pq_reader_open(&src, opt, &r, err);
    if (rc)
        return rc;
    for (;;) {
        const sv_pq_value *v;
        size_t n;
        rc = sv_pq_reader_next(r, 64, &v, &n, NULL, NULL, err);
        if (rc || n == 0)
            break;
    }
    sv_pq_reader_free(r);
    return rc;
}

static void test_truncated_and_flipped(void **st)
{
    (void)st;
    sv_buf f;
    write_sample(&f, SV_PQ_CODEC_SNAPPY, 60, 25);
    sv_err err;
    assert_int_equal(read_all(f.data, f.len, NULL, &err), 0);
    /* Every truncation fails, with the file's name in the message. */
    for (size_t cut = 0; cut < f.len; cut++) {
        uint8_t *copy = malloc(cut + 1);
        memcpy(copy, f.data, cut);
        memset(&err, 0, sizeof err);
        int rc = read_all(copy, cut, NULL, &err);
        assert_true(rc < 0);
        assert_non_null(strstr(err.msg, "bad.parquet"));
        free(copy);
    }
    /* Every single-byte change either reads or fails cleanly. */
    uint8_t *copy = malloc(f.len);
    for (size_t i = 0; i < f.len; i++) {
        memcpy(copy, f.data, f.len);
        copy[i] ^= (uint8_t)(0x5A + i);
        read_all(copy, f.len, NULL, &err);
    }
    /* A corrupt page header names the row group and the column. */
    memcpy(copy, f.data, f.len);
    copy[4] = 0xFF; /* the first page header of row group 0, column id */
    copy[5] = 0xFF;
    assert_int_equal(read_all(copy, f.len, NULL, &err), SV_ECORRUPT);
    assert_non_null(strstr(err.msg, "row group 0"));
    assert_non_null(strstr(err.msg, "column id"));
    free(copy);
    sv_buf_free(&f);
}

static void test_limits(void **st)
{
    (void)st;
    sv_buf f;
    write_sample(&f, SV_PQ_CODEC_ZSTD, 2000, 2000);
    sv_err err;
    sv_pq_read_options small = {.max_row_group_bytes = 4096};
    assert_int_equal(read_all(f.data, f.len, &small, &err), SV_ETOOBIG);
    assert_non_null(strstr(err.msg, "row group 0"));
    sv_pq_read_options foot = {.max_footer_bytes = 16};
    assert_int_equal(read_all(f.data, f.len, &foot, &err), SV_ETOOBIG);
    assert_non_null(strstr(err.msg, "footer"));
    /* Not Parquet at all. */
    assert_int_equal(read_all((const uint8_t *)"hello world, not parquet", 24, NULL, &err), SV_ECORRUPT);
    assert_non_null(strstr(err.msg, "PAR1"));
    sv_buf_free(&f);
}

/* A float list column written as one zstd page per row group of several MB
 * (as DuckDB writes vectors): read as it is decompressed (stream_zstd),
 * every value back; the same file with a byte of the page flipped, or cut
 * inside it, answers an error. */
static uint64_t xs = 0x9E3779B97F4A7C15ull;
static float rnd_float(void)
{
    xs ^= xs << 13;
    xs ^= xs >> 7;
    xs ^= xs << 17;
    return (float)((double)(xs >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void write_big_pages(sv_buf *out, int rows, int64_t rg_rows)
{
    sv_err err = {0};
    sv_pq_schema *s = sv_pq_schema_new();
    int vec = sv_pq_schema_list(s, SV_PQ_ROOT, "vec", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, vec, "element", SV_PQ_FLOAT, SV_PQ_LT_NONE, 0, 0, &err) > 0);
    msink ms = {0};
    sv_pq_sink sink = {mwrite, NULL, &ms};
    sv_pq_options o = {.codec = SV_PQ_CODEC_ZSTD, .row_group_rows = rg_rows, .page_bytes = 256 << 20};
    sv_pq_writer *w;
    assert_int_equal(sv_pq_writer_new(s, &o, &sink, &w, &err), 0);
    xs = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < rows; i++) {
        float f[32];
        for (int k = 0; k < 32; k++)
            f[k] = rnd_float();
        if (i % 1000 == 7)
            assert_int_equal(sv_pq_append_null(w, vec, &err), 0);
        else
            assert_int_equal(sv_pq_append_list(w, vec, f, NULL, 32 - (size_t)(i % 3), &err), 0);
        assert_int_equal(sv_pq_writer_end_row(w, &err), 0);
    }
    assert_int_equal(sv_pq_writer_close(w, &err), 0);
    sv_pq_writer_free(w);
    sv_pq_schema_free(s);
    *out = ms.out;
}

static void test_big_zstd_page(void **st)
{
    (void)st;
    const int rows = 90000; /* about 11 MB of floats, two row groups */
    sv_buf f;
    write_big_pages(&f, rows, 50000);
    msrc m = {f.data, f.len, 0};
    sv_pq_source src = {mread, &m, f.len, "big.parquet"};
    sv_pq_reader *r;
    sv_err err = {0};
    assert_int_equal(sv_pq_reader_open(&src, NULL, &r, &err), 0);
    xs = 0x9E3779B97F4A7C15ull;
    int seen = 0;
    for (;;) {
        const sv_pq_value *v;
        size_t n;
        assert_int_equal(sv_pq_reader_next(r, 4096, &v, &n, NULL, NULL, &err), 0);
        if (n == 0)
            break;
        for (size_t k = 0; k < n; k++, seen++) {
            const sv_pq_value *vec = &v[k].u.items[0];
            float want[32];
            for (int q = 0; q < 32; q++)
                want[q] = rnd_float();
            if (seen % 1000 == 7) {
                assert_int_equal(vec->kind, SV_PQV_NULL);
                continue;
            }
            assert_int_equal(vec->kind, SV_PQV_PACKED);
            assert_int_equal(vec->n, 32 - seen % 3);
            assert_memory_equal(vec->u.raw, want, vec->n * sizeof(float));
        }
    }
    assert_int_equal(seen, rows);
    sv_pq_reader_free(r);
    /* each row group's zstd frame with its magic number broken: an error
     * naming the file and column, in the first row group and after one read
     * (a flipped byte inside a raw block is no error: Parquet's zstd pages
     * carry no checksum) */
    for (int which = 0; which < 2; which++) {
        uint8_t *bad = malloc(f.len);
        assert_non_null(bad);
        memcpy(bad, f.data, f.len);
        const uint8_t magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
        int found = -1;
        for (size_t at = 0; at + 4 <= f.len; at++)
            if (memcmp(bad + at, magic, 4) == 0 && ++found == which) {
                bad[at + 1] ^= 0xFF;
                break;
            }
        assert_int_equal(found, which);
        int rc = read_all(bad, f.len, NULL, &err);
        assert_int_equal(rc, SV_ECORRUPT);
        assert_non_null(strstr(err.msg, "bad.parquet"));
        assert_non_null(strstr(err.msg, "zstd"));
        free(bad);
    }
    sv_buf_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rle_decode),
        cmocka_unit_test(test_delta_decode),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_big_zstd_page),
        cmocka_unit_test(test_truncated_and_flipped),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
