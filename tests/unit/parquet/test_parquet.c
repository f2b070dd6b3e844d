/* Thrift compact and level encoders against bytes worked out by hand from
 * the specs, plus the writer's refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "parquet.h"
#include "parquet_internal.h"

#define EXPECT_BYTES(buf, ...)                                                     \
    do {                                                                           \
        const uint8_t want_[] = {__VA_ARGS__};                                     \
        assert_int_equal((buf).len, sizeof want_);                                 \
        assert_memory_equal((buf).data, want_, sizeof want_);                      \
    } while (0)

static void test_thrift_fields(void **st)
{
    (void)st;
    sv_buf b = {0};
    sv_tc t;
    sv_tc_init(&t, &b);
    sv_tc_i32(&t, 1, 1);      /* delta 1, type I32 (5) = 0x15; zigzag(1) = 2 */
    sv_tc_i64(&t, 3, -1);     /* delta 2, type I64 (6) = 0x26; zigzag(-1) = 1 */
    sv_tc_i32(&t, 20, 300);   /* delta 17 > 15: long form 0x05, zigzag i16 20 = 40 = 0x28;
                                 zigzag(300) = 600 = 0xD8 0x04 */
    sv_tc_binary(&t, 4, "ab", 2); /* negative delta: 0x08, zigzag(4) = 0x08, len 2 */
    sv_tc_bool(&t, 5, true);  /* 0x11 */
    sv_tc_bool(&t, 6, false); /* 0x12 */
    sv_tc_stop(&t);
    assert_false(t.failed);
    EXPECT_BYTES(b, 0x15, 0x02, 0x26, 0x01, 0x05, 0x28, 0xD8, 0x04, 0x08, 0x08, 0x02, 'a',
                 'b', 0x11, 0x12, 0x00);
    sv_buf_free(&b);
}

static void test_thrift_nested(void **st)
{
    (void)st;
    sv_buf b = {0};
    sv_tc t;
    sv_tc_init(&t, &b);
    sv_tc_i32(&t, 1, 0);
    sv_tc_struct_begin(&t, 5);  /* 0x4C; inner field ids restart at 0 */
    sv_tc_i32(&t, 1, -2);       /* 0x15, zigzag(-2) = 3 */
    sv_tc_struct_end(&t);       /* 0x00 */
    sv_tc_i64(&t, 6, 1ll << 40); /* back at last id 5: delta 1 = 0x16; zigzag = 2^41 */
    sv_tc_list_begin(&t, 7, SV_TC_I32, 3); /* 0x19, list header 0x35 */
    sv_tc_elem_i32(&t, 0);
    sv_tc_elem_i32(&t, 3);
    sv_tc_elem_i32(&t, 8);
    sv_tc_list_begin(&t, 8, SV_TC_STRUCT, 20); /* 0x19, 0xFC then varint 20 */
    sv_tc_stop(&t);
    assert_false(t.failed);
    /* 2^41 as varint: 41 zero bits then 1 -> 7-bit groups: 0x80 x5, then 2^(41-35)=0x40 */
    EXPECT_BYTES(b, 0x15, 0x00, 0x4C, 0x15, 0x03, 0x00, 0x16, 0x80, 0x80, 0x80, 0x80, 0x80,
                 0x40, 0x19, 0x35, 0x00, 0x06, 0x10, 0x19, 0xFC, 0x14, 0x00);
    sv_buf_free(&b);
}

static void test_rle_run(void **st)
{
    (void)st;
    sv_buf b = {0};
    uint8_t ones[10];
    memset(ones, 1, sizeof ones);
    /* ten 1s, width 1: RLE header 10 << 1 = 0x14, value in one byte */
    assert_int_equal(sv_pq_rle_u8(&b, ones, 10, 1), 0);
    EXPECT_BYTES(b, 0x14, 0x01);
    b.len = 0;
    /* 300 values of 2, width 2: header 600 = varint 0xD8 0x04 */
    uint8_t twos[300];
    memset(twos, 2, sizeof twos);
    assert_int_equal(sv_pq_rle_u8(&b, twos, 300, 2), 0);
    EXPECT_BYTES(b, 0xD8, 0x04, 0x02);
    sv_buf_free(&b);
}

static void test_rle_bitpacked(void **st)
{
    (void)st;
    sv_buf b = {0};
    /* the spec's example: 0..7 at width 3 -> 10001000 11000110 11111010 */
    uint8_t v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    assert_int_equal(sv_pq_rle_u8(&b, v, 8, 3), 0);
    EXPECT_BYTES(b, 0x03, 0x88, 0xC6, 0xFA);
    b.len = 0;
    /* a short tail is padded to a group of 8: [0,1,0] width 1 -> 0b010 */
    uint8_t t3[3] = {0, 1, 0};
    assert_int_equal(sv_pq_rle_u8(&b, t3, 3, 1), 0);
    EXPECT_BYTES(b, 0x03, 0x02);
    b.len = 0;
    /* literal group of 8 then a run of 9 zeros then a tail of one 1:
       group [1,0,1,0,1,0,1,0] -> 0x55; run 9<<1 = 0x12, 0x00; literal [1] -> 0x01 */
    uint8_t m[18] = {1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(sv_pq_rle_u8(&b, m, 18, 1), 0);
    EXPECT_BYTES(b, 0x03, 0x55, 0x12, 0x00, 0x03, 0x01);
    b.len = 0;
    /* u32 dictionary indices, width 9: 256 then 1 -> bits 0..8 = 1 0000 0000 (256),
       9..17 = 1 -> byte0 0x00, byte1 0x01 | (1<<1) = 0x03, rest zero; 9 bytes per group */
    uint32_t d[2] = {256, 1};
    assert_int_equal(sv_pq_rle_u32(&b, d, 2, 9), 0);
    EXPECT_BYTES(b, 0x03, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0);
    sv_buf_free(&b);
}

static void test_levels_v1(void **st)
{
    (void)st;
    sv_buf b = {0};
    /* list<float> rows [a,b,c] then [] : rep 0,1,1,0 (max 1), def 3,3,3,1 (max 3) */
    uint8_t rep[4] = {0, 1, 1, 0}, def[4] = {3, 3, 3, 1};
    assert_int_equal(sv_pq_levels_v1(&b, rep, 4, 1), 0);
    /* length 2, literal header 0x03, bits 0,1,1,0 -> 0b0110 */
    EXPECT_BYTES(b, 0x02, 0x00, 0x00, 0x00, 0x03, 0x06);
    b.len = 0;
    assert_int_equal(sv_pq_levels_v1(&b, def, 4, 3), 0);
    /* width 2: 3,3,3,1 -> 11 11 11 01 from bit 0 -> 0b01111111 = 0x7F, 0x00 */
    EXPECT_BYTES(b, 0x03, 0x00, 0x00, 0x00, 0x03, 0x7F, 0x00);
    assert_int_equal(sv_pq_bit_width(0), 0);
    assert_int_equal(sv_pq_bit_width(1), 1);
    assert_int_equal(sv_pq_bit_width(3), 2);
    assert_int_equal(sv_pq_bit_width(4), 3);
    sv_buf_free(&b);
}

/* ---- writer ------------------------------------------------------------- */

typedef struct { sv_buf out; int closed; } mem_sink;

static int mem_write(void *ud, const void *d, size_t n, sv_err *err)
{
    (void)err;
    return sv_buf_append(&((mem_sink *)ud)->out, d, n);
}

static int mem_close(void *ud, sv_err *err)
{
    (void)err;
    ((mem_sink *)ud)->closed++;
    return 0;
}

static void test_writer_refusals(void **st)
{
    (void)st;
    sv_err err = {0};
    sv_pq_schema *s = sv_pq_schema_new();
    int id = sv_pq_schema_leaf(s, SV_PQ_ROOT, "id", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, 0, &err);
    int ts = sv_pq_schema_leaf(s, SV_PQ_ROOT, "t", SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS, 0,
                               SV_PQ_OPTIONAL, &err);
    int vec = sv_pq_schema_list(s, SV_PQ_ROOT, "vector", SV_PQ_OPTIONAL, 3, &err);
    assert_true(id > 0 && ts > 0 && vec > 0);
    assert_true(sv_pq_schema_leaf(s, vec, "element", SV_PQ_FLOAT, 0, 0, 0, &err) > 0);
    assert_int_equal(sv_pq_schema_leaf(s, SV_PQ_ROOT, "id", SV_PQ_INT32, 0, 0, 0, &err),
                     SV_EINVAL); /* duplicate */
    assert_int_equal(sv_pq_schema_leaf(s, SV_PQ_ROOT, "x", SV_PQ_INT32, SV_PQ_LT_STRING, 0, 0,
                                       &err), SV_EINVAL); /* STRING on INT32 */
    assert_int_equal(sv_pq_schema_leaf(s, vec, "e2", SV_PQ_FLOAT, 0, 0, 0, &err), SV_EINVAL);

    mem_sink ms = {0};
    sv_pq_sink sink = {mem_write, mem_close, &ms};
    sv_pq_writer *w;
    assert_int_equal(sv_pq_writer_new(s, NULL, &sink, &w, &err), 0);
    sv_pq_schema_free(s); /* the writer holds its own copy */

    assert_int_equal(sv_pq_append_str(w, id, "\xC3\x28", 2, &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "UTF-8"));
    assert_int_equal(sv_pq_append_str(w, id, "\xED\xA0\x80", 3, &err), SV_EINVAL); /* surrogate */
    assert_int_equal(sv_pq_append_i32(w, ts, 5, &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "INT64"));
    float v[4] = {1, 2, 3, 4};
    assert_int_equal(sv_pq_append_list(w, vec, v, NULL, 4, &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "3 elements"));
    assert_int_equal(sv_pq_append_null(w, id, &err), SV_EINVAL); /* required */

    /* refusals left nothing behind: one clean row */
    assert_int_equal(sv_pq_append_str(w, id, "h\xC3\xA9llo", 6, &err), 0);
    assert_int_equal(sv_pq_append_i64(w, ts, 1700000000000, &err), 0);
    assert_int_equal(sv_pq_writer_end_row(w, &err), SV_EINVAL); /* vector missing */
    assert_non_null(strstr(err.msg, "element"));
    assert_int_equal(sv_pq_append_list(w, vec, v, NULL, 3, &err), 0);
    assert_int_equal(sv_pq_writer_end_row(w, &err), 0);
    assert_int_equal(sv_pq_writer_close(w, &err), 0);
    assert_int_equal(ms.closed, 1);
    assert_true(ms.out.len > 12);
    assert_memory_equal(ms.out.data, "PAR1", 4);
    assert_memory_equal(ms.out.data + ms.out.len - 4, "PAR1", 4);
    uint32_t flen = (uint32_t)ms.out.data[ms.out.len - 8] |
                    (uint32_t)ms.out.data[ms.out.len - 7] << 8 |
                    (uint32_t)ms.out.data[ms.out.len - 6] << 16 |
                    (uint32_t)ms.out.data[ms.out.len - 5] << 24;
    assert_true(flen + 12 < ms.out.len);
    assert_int_equal(sv_pq_append_i64(w, ts, 1, &err), SV_ESTATE); /* closed */
    sv_pq_writer_free(w);
    sv_buf_free(&ms.out);
}

static int fail_write(void *ud, const void *d, size_t n, sv_err *err)
{
    (void)ud; (void)d; (void)n;
    return sv_fail(err, SV_EIO, "disk full");
}

static void test_writer_sink_failure_sticks(void **st)
{
    (void)st;
    sv_err err = {0};
    sv_pq_schema *s = sv_pq_schema_new();
    int a = sv_pq_schema_leaf(s, SV_PQ_ROOT, "a", SV_PQ_INT32, 0, 0, 0, &err);
    sv_pq_sink sink = {fail_write, NULL, NULL};
    sv_pq_options o = {.row_group_rows = 1};
    sv_pq_writer *w;
    assert_int_equal(sv_pq_writer_new(s, &o, &sink, &w, &err), 0);
    assert_int_equal(sv_pq_append_i32(w, a, 1, &err), 0);
    assert_int_equal(sv_pq_writer_end_row(w, &err), SV_EIO);
    assert_int_equal(sv_pq_append_i32(w, a, 1, &err), SV_EIO);
    assert_int_equal(sv_pq_writer_close(w, &err), SV_EIO);
    sv_pq_writer_free(w);
    sv_pq_schema_free(s);
}


/* The docs/parquet.md example, compiled: the export's typed row shape. */
static void test_typed_row_example(void **st)
{
    (void)st;
    sv_err err = {0};
    sv_pq_schema *s = sv_pq_schema_new();
    int id  = sv_pq_schema_leaf(s, SV_PQ_ROOT, "id", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, 0, &err);
    int ct  = sv_pq_schema_leaf(s, SV_PQ_ROOT, "creation_time", SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS, 0, 0, &err);
    int ut  = sv_pq_schema_leaf(s, SV_PQ_ROOT, "update_time", SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS, 0, 0, &err);
    int vec = sv_pq_schema_list(s, SV_PQ_ROOT, "vector", SV_PQ_OPTIONAL, 768, &err);
    assert_true(sv_pq_schema_leaf(s, vec, "element", SV_PQ_FLOAT, 0, 0, 0, &err) > 0);
    int nv = sv_pq_schema_group(s, SV_PQ_ROOT, "named_vectors", SV_PQ_OPTIONAL, &err);
    int nv_title = sv_pq_schema_list(s, nv, "title", SV_PQ_OPTIONAL, 384, &err);
    assert_true(sv_pq_schema_leaf(s, nv_title, "element", SV_PQ_FLOAT, 0, 0, 0, &err) > 0);
    int mv = sv_pq_schema_group(s, SV_PQ_ROOT, "multi_vectors", SV_PQ_OPTIONAL, &err);
    int colbert = sv_pq_schema_list(s, mv, "colbert", SV_PQ_OPTIONAL, 0, &err);
    int tok = sv_pq_schema_list(s, colbert, "element", 0, 128, &err);
    assert_true(sv_pq_schema_leaf(s, tok, "element", SV_PQ_FLOAT, 0, 0, 0, &err) > 0);
    int props = sv_pq_schema_group(s, SV_PQ_ROOT, "properties", SV_PQ_OPTIONAL, &err);
    int title = sv_pq_schema_leaf(s, props, "title", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0,
                                  SV_PQ_OPTIONAL | SV_PQ_DICT, &err);
    int count = sv_pq_schema_leaf(s, props, "count", SV_PQ_INT64, 0, 0, SV_PQ_OPTIONAL, &err);
    int tags  = sv_pq_schema_list(s, props, "tags", SV_PQ_OPTIONAL, 0, &err);
    assert_true(sv_pq_schema_leaf(s, tags, "element", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, 0, &err) > 0);
    int pj = sv_pq_schema_leaf(s, SV_PQ_ROOT, "properties_json", SV_PQ_BYTE_ARRAY, SV_PQ_LT_JSON, 0,
                               SV_PQ_OPTIONAL, &err);
    assert_true(id > 0 && ct > 0 && ut > 0 && vec > 0 && nv > 0 && nv_title > 0 && mv > 0 &&
                colbert > 0 && tok > 0 && props > 0 && title > 0 && count > 0 && tags > 0 && pj > 0);

    mem_sink ms = {0};
    sv_pq_sink sink = {mem_write, mem_close, &ms};
    sv_pq_options o = {.codec = SV_PQ_CODEC_ZSTD, .row_group_rows = 3};
    sv_pq_writer *w;
    assert_int_equal(sv_pq_writer_new(s, &o, &sink, &w, &err), 0);
    sv_pq_schema_free(s);
    static float v768[768], v384[384], colb[3 * 128];
    const void *tag_ptrs[2] = {"a", "bé"};
    uint32_t tag_lens[2] = {1, 3}, lens[3] = {128, 128, 128};
    for (int r = 0; r < 10; r++) {
        bool odd = r & 1;
        assert_int_equal(sv_pq_append_str(w, id, "0f0e0d0c-0b0a-0908-0706-050403020100", 36, &err), 0);
        assert_int_equal(sv_pq_append_i64(w, ct, 1700000000000 + r, &err), 0);
        assert_int_equal(sv_pq_append_i64(w, ut, 1700000000000 + r, &err), 0);
        assert_int_equal(odd ? sv_pq_append_null(w, vec, &err)
                             : sv_pq_append_list(w, vec, v768, NULL, 768, &err), 0);
        assert_int_equal(odd ? sv_pq_append_null(w, nv_title, &err)
                             : sv_pq_append_list(w, nv_title, v384, NULL, 384, &err), 0);
        assert_int_equal(sv_pq_append_list2(w, colbert, colb, lens, odd ? 0 : 3, &err), 0);
        if (!odd) {
            assert_int_equal(sv_pq_append_str(w, title, "t", 1, &err), 0);
            assert_int_equal(sv_pq_append_i64(w, count, r, &err), 0);
            assert_int_equal(sv_pq_append_list_bytes(w, tags, tag_ptrs, tag_lens, 2, &err), 0);
        } else {
            assert_int_equal(sv_pq_append_null(w, props, &err), 0);
        }
        assert_int_equal(sv_pq_append_str(w, pj, "{}", 2, &err), 0);
        assert_int_equal(sv_pq_writer_end_row(w, &err), 0);
    }
    /* row groups of 3 rows went to the sink as they closed, before close */
    assert_true(ms.out.len > 4);
    assert_int_equal(ms.closed, 0);
    /* a wrongly sized token vector is refused */
    uint32_t bad[1] = {127};
    assert_int_equal(sv_pq_append_list2(w, colbert, colb, bad, 1, &err), SV_EINVAL);
    assert_int_equal(sv_pq_writer_close(w, &err), 0);
    assert_int_equal(sv_pq_writer_rows(w), 10);
    assert_int_equal(sv_pq_writer_bytes(w), (int64_t)ms.out.len);
    sv_pq_writer_free(w);
    sv_buf_free(&ms.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thrift_fields),
        cmocka_unit_test(test_thrift_nested),
        cmocka_unit_test(test_rle_run),
        cmocka_unit_test(test_rle_bitpacked),
        cmocka_unit_test(test_levels_v1),
        cmocka_unit_test(test_writer_refusals),
        cmocka_unit_test(test_writer_sink_failure_sticks),
        cmocka_unit_test(test_typed_row_example),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
