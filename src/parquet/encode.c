/* Thrift compact protocol and RLE/bit-packed hybrid encoders. */
#include "parquet_internal.h"

#include <string.h>

void sv_tc_init(sv_tc *t, sv_buf *buf)
{
    memset(t, 0, sizeof *t);
    t->buf = buf;
}

static void tc_put(sv_tc *t, const void *p, size_t n)
{
    if (!t->failed && sv_buf_append(t->buf, p, n) != 0)
        t->failed = true;
}

void sv_tc_varint(sv_tc *t, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    tc_put(t, tmp, n);
}

static uint64_t zigzag64(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }

void sv_tc_field(sv_tc *t, int16_t id, uint8_t type)
{
    int16_t delta = (int16_t)(id - t->last[t->depth]);
    if (delta > 0 && delta <= 15) {
        uint8_t b = (uint8_t)((delta << 4) | type);
        tc_put(t, &b, 1);
    } else {
        tc_put(t, &type, 1);
        sv_tc_varint(t, zigzag64(id));
    }
    t->last[t->depth] = id;
}

void sv_tc_i32(sv_tc *t, int16_t id, int32_t v)
{
    sv_tc_field(t, id, SV_TC_I32);
    sv_tc_varint(t, zigzag64(v));
}

void sv_tc_i64(sv_tc *t, int16_t id, int64_t v)
{
    sv_tc_field(t, id, SV_TC_I64);
    sv_tc_varint(t, zigzag64(v));
}

void sv_tc_bool(sv_tc *t, int16_t id, bool v)
{
    sv_tc_field(t, id, v ? SV_TC_TRUE : SV_TC_FALSE);
}

void sv_tc_binary(sv_tc *t, int16_t id, const void *data, size_t len)
{
    sv_tc_field(t, id, SV_TC_BINARY);
    sv_tc_elem_binary(t, data, len);
}

static void tc_push(sv_tc *t)
{
    if (t->depth + 1 >= SV_TC_MAX_DEPTH) {
        t->failed = true;
        return;
    }
    t->last[++t->depth] = 0;
}

void sv_tc_struct_begin(sv_tc *t, int16_t id)
{
    sv_tc_field(t, id, SV_TC_STRUCT);
    tc_push(t);
}

void sv_tc_elem_struct_begin(sv_tc *t) { tc_push(t); }

void sv_tc_struct_end(sv_tc *t)
{
    uint8_t z = 0;
    tc_put(t, &z, 1);
    if (t->depth > 0)
        t->depth--;
}

void sv_tc_stop(sv_tc *t)
{
    uint8_t z = 0;
    tc_put(t, &z, 1);
}

void sv_tc_list_header(sv_tc *t, uint8_t elem_type, uint32_t n)
{
    if (n < 15) {
        uint8_t b = (uint8_t)((n << 4) | elem_type);
        tc_put(t, &b, 1);
    } else {
        uint8_t b = (uint8_t)(0xF0 | elem_type);
        tc_put(t, &b, 1);
        sv_tc_varint(t, n);
    }
}

void sv_tc_list_begin(sv_tc *t, int16_t id, uint8_t elem_type, uint32_t n)
{
    sv_tc_field(t, id, SV_TC_LIST);
    sv_tc_list_header(t, elem_type, n);
}

void sv_tc_elem_i32(sv_tc *t, int32_t v) { sv_tc_varint(t, zigzag64(v)); }

void sv_tc_elem_binary(sv_tc *t, const void *data, size_t len)
{
    sv_tc_varint(t, len);
    tc_put(t, data, len);
}

/* ---- RLE / bit-packed hybrid ------------------------------------------- */

int sv_pq_bit_width(uint32_t max_value)
{
    int w = 0;
    while (max_value) {
        w++;
        max_value >>= 1;
    }
    return w;
}

static int put_varint(sv_buf *out, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    return sv_buf_append(out, tmp, n);
}

/* Runs of 8 or more equal values become RLE runs; everything else goes out
 * in bit-packed groups of exactly 8 (only the last group of the whole
 * sequence may be padded, because a reader stops at num_values). */
#define SV_RLE_IMPL(NAME, T)                                                          \
    int NAME(sv_buf *out, const T *v, size_t n, int width)                            \
    {                                                                                 \
        size_t i = 0, lit_start = 0, lit_n = 0;                                       \
        int vbytes = (width + 7) / 8;                                                 \
        for (;;) {                                                                    \
            size_t run = 0;                                                           \
            if (i < n) {                                                              \
                run = 1;                                                              \
                while (i + run < n && v[i + run] == v[i])                             \
                    run++;                                                            \
            }                                                                         \
            bool flush = i >= n || run >= 8;                                          \
            if (flush && lit_n) {                                                     \
                size_t groups = (lit_n + 7) / 8;                                      \
                if (put_varint(out, (groups << 1) | 1))                               \
                    return SV_ENOMEM;                                                 \
                size_t nbytes = groups * (size_t)width;                               \
                if (sv_buf_reserve(out, nbytes))                                      \
                    return SV_ENOMEM;                                                 \
                uint8_t *p = out->data + out->len;                                    \
                uint64_t acc = 0, mask = width < 32 ? (1ull << width) - 1 : 0xFFFFFFFFull; \
                int nbits = 0;                                                        \
                size_t o = 0;                                                         \
                for (size_t k = 0; k < groups * 8; k++) {                             \
                    uint64_t x = k < lit_n ? (uint64_t)v[lit_start + k] & mask : 0;   \
                    acc |= x << nbits;                                                \
                    nbits += width;                                                   \
                    while (nbits >= 8) {                                              \
                        p[o++] = (uint8_t)acc;                                        \
                        acc >>= 8;                                                    \
                        nbits -= 8;                                                   \
                    }                                                                 \
                }                                                                     \
                out->len += nbytes;                                                   \
                lit_n = 0;                                                            \
            }                                                                         \
            if (i >= n)                                                               \
                break;                                                                \
            if (run >= 8) {                                                           \
                if (put_varint(out, (uint64_t)run << 1))                              \
                    return SV_ENOMEM;                                                 \
                uint32_t x = (uint32_t)v[i];                                          \
                uint8_t le[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16),   \
                                 (uint8_t)(x >> 24)};                                 \
                if (sv_buf_append(out, le, (size_t)vbytes))                           \
                    return SV_ENOMEM;                                                 \
                i += run;                                                             \
            } else {                                                                  \
                if (!lit_n)                                                           \
                    lit_start = i;                                                    \
                size_t take = n - i < 8 ? n - i : 8;                                  \
                lit_n += take;                                                        \
                i += take;                                                            \
            }                                                                         \
        }                                                                             \
        return 0;                                                                     \
    }

SV_RLE_IMPL(sv_pq_rle_u8, uint8_t)
SV_RLE_IMPL(sv_pq_rle_u32, uint32_t)

int sv_pq_levels_v1(sv_buf *out, const uint8_t *v, size_t n, int max_level)
{
    if (sv_buf_reserve(out, 4))
        return SV_ENOMEM;
    size_t at = out->len;
    out->len += 4;
    int rc = sv_pq_rle_u8(out, v, n, sv_pq_bit_width((uint32_t)max_level));
    if (rc)
        return rc;
    uint32_t len = (uint32_t)(out->len - at - 4);
    for (int k = 0; k < 4; k++)
        out->data[at + k] = (uint8_t)(len >> (8 * k));
    return 0;
}
