/* The streaming writer: per leaf column an open page (levels + values) and
 * the compressed pages of the current row group; row groups go to the sink
 * whole, the footer at close. */
#include "parquet_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>
#include <zstd.h>

#define STAT_MAX_BYTES 64 /* longer byte-array min/max are truncated (inexact) */

typedef struct pq_col {
    int node;
    int max_def, max_rep;
    int def_bw, rep_bw; /* bit widths of the levels */
    sv_pq_type type;
    sv_pq_logical lt;
    int width; /* bytes per value in the API / plain layout; 0 for BYTE_ARRAY */
    bool dict_on;
    /* the open page */
    sv_buf def, rep, vals;
    size_t page_levels;
    /* the current row group */
    int64_t rows;
    sv_buf chunk;
    int64_t chunk_values, chunk_uncompressed;
    bool dict_mode, used_dict, used_plain;
    sv_buf dict;        /* PLAIN-encoded dictionary values */
    uint32_t dict_n;
    uint32_t *ent_off;  /* per entry: offset of its bytes in dict */
    uint32_t *ent_len;
    uint32_t ent_cap;
    uint32_t *slots;    /* open addressing: entry + 1, 0 = empty */
    uint32_t nslots;
    /* statistics of the current row group */
    int64_t nulls;
    bool has_mm;
    union { int32_t i32; int64_t i64; float f; double d; uint8_t b; } mn, mx;
    sv_buf bmin, bmax;
} pq_col;

typedef struct pq_rgmeta {
    int64_t rows, bytes, compressed, offset;
} pq_rgmeta;

struct sv_pq_writer {
    sv_pq_schema s;
    pq_col *cols;
    int ncols;
    sv_pq_options opt;
    char **kv; /* 2 * n_kv strings */
    sv_pq_sink sink;
    ZSTD_CCtx *zctx;
    sv_buf page, comp, hdr, meta; /* meta: serialized RowGroup structs */
    int n_rg;
    int64_t rg_rows, total_rows, offset;
    int failed; /* sticky error code */
    char fail_msg[256];
    bool closed;
};

/* ---- small helpers ------------------------------------------------------ */

static int fail_sticky(sv_pq_writer *w, sv_err *err, int code, const char *msg)
{
    w->failed = code;
    snprintf(w->fail_msg, sizeof w->fail_msg, "%s", msg);
    return sv_fail(err, code, "parquet: %s", msg);
}

static int nomem(sv_pq_writer *w, sv_err *err)
{
    return fail_sticky(w, err, SV_ENOMEM, "out of memory");
}

static int check_usable(sv_pq_writer *w, sv_err *err)
{
    if (!w)
        return sv_fail(err, SV_EINVAL, "parquet: no writer");
    if (w->failed)
        return sv_fail(err, w->failed, "parquet: writer failed earlier (%s)", w->fail_msg);
    if (w->closed)
        return sv_fail(err, SV_ESTATE, "parquet: writer is closed");
    return 0;
}

static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) { /* ASCII fast path */
            uint64_t x;
            memcpy(&x, s + i, 8);
            if (x & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
        else return false;
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

/* ---- statistics --------------------------------------------------------- */

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int r = n ? memcmp(a, b, n) : 0; /* an empty buffer may have data == NULL */
    if (r)
        return r;
    return al < bl ? -1 : al > bl;
}

static int stat_bytes(pq_col *c, const uint8_t *p, size_t len)
{
    if (!c->has_mm) {
        c->bmin.len = c->bmax.len = 0;
        if (sv_buf_append(&c->bmin, p, len) || sv_buf_append(&c->bmax, p, len))
            return SV_ENOMEM;
        c->has_mm = true;
        return 0;
    }
    if (bytes_cmp(p, len, c->bmin.data, c->bmin.len) < 0) {
        c->bmin.len = 0;
        if (sv_buf_append(&c->bmin, p, len))
            return SV_ENOMEM;
    } else if (bytes_cmp(p, len, c->bmax.data, c->bmax.len) > 0) {
        c->bmax.len = 0;
        if (sv_buf_append(&c->bmax, p, len))
            return SV_ENOMEM;
    }
    return 0;
}

/* Min/max over n fixed-width values in API layout; NaN never counts. */
static void stat_fixed(pq_col *c, const uint8_t *p, size_t n)
{
    if (!n)
        return;
    switch (c->type) {
#define MM(T, F, SKIP)                                                   \
    {                                                                    \
        const T *v = (const T *)(const void *)p;                         \
        size_t i = 0;                                                    \
        if (!c->has_mm) {                                                \
            while (i < n && SKIP(v[i]))                                  \
                i++;                                                     \
            if (i == n)                                                  \
                return;                                                  \
            c->mn.F = c->mx.F = v[i];                                    \
            c->has_mm = true;                                            \
        }                                                                \
        T lo = c->mn.F, hi = c->mx.F;                                    \
        for (; i < n; i++) {                                             \
            T x = v[i];                                                  \
            lo = x < lo ? x : lo; /* NaN compares false: never taken */  \
            hi = x > hi ? x : hi;                                        \
        }                                                                \
        c->mn.F = lo;                                                    \
        c->mx.F = hi;                                                    \
        return;                                                          \
    }
#define NOSKIP(x) ((void)(x), 0)
#define ISNAN(x) isnan(x)
    case SV_PQ_INT32: MM(int32_t, i32, NOSKIP)
    case SV_PQ_INT64: MM(int64_t, i64, NOSKIP)
    case SV_PQ_FLOAT: MM(float, f, ISNAN)
    case SV_PQ_DOUBLE: MM(double, d, ISNAN)
    case SV_PQ_BOOLEAN: MM(uint8_t, b, NOSKIP)
#undef MM
    default:
        return;
    }
}

/* ---- dictionary --------------------------------------------------------- */

static void dict_reset(pq_col *c)
{
    c->dict.len = 0;
    c->dict_n = 0;
    if (c->slots)
        memset(c->slots, 0, c->nslots * sizeof *c->slots);
}

static int dict_grow(pq_col *c)
{
    uint32_t ns = c->nslots ? c->nslots * 2 : 1024;
    uint32_t *slots = calloc(ns, sizeof *slots);
    if (!slots)
        return SV_ENOMEM;
    for (uint32_t e = 0; e < c->dict_n; e++) {
        uint64_t h = sv_hash64(c->dict.data + c->ent_off[e], c->ent_len[e]);
        uint32_t i = (uint32_t)h & (ns - 1);
        while (slots[i])
            i = (i + 1) & (ns - 1);
        slots[i] = e + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->nslots = ns;
    return 0;
}

/* Index of the value in the dictionary, adding it if new (*added). */
static int dict_index(pq_col *c, const uint8_t *p, uint32_t len, uint32_t *idx, bool *added)
{
    if ((uint64_t)(c->dict_n + 1) * 2 > c->nslots && dict_grow(c))
        return SV_ENOMEM;
    uint64_t h = sv_hash64(p, len);
    uint32_t i = (uint32_t)h & (c->nslots - 1);
    while (c->slots[i]) {
        uint32_t e = c->slots[i] - 1;
        if (c->ent_len[e] == len && memcmp(c->dict.data + c->ent_off[e], p, len) == 0) {
            *idx = e;
            *added = false;
            return 0;
        }
        i = (i + 1) & (c->nslots - 1);
    }
    if (c->dict_n == c->ent_cap) {
        uint32_t nc = c->ent_cap ? c->ent_cap * 2 : 1024;
        uint32_t *o = realloc(c->ent_off, nc * sizeof *o);
        if (!o)
            return SV_ENOMEM;
        c->ent_off = o;
        uint32_t *l = realloc(c->ent_len, nc * sizeof *l);
        if (!l)
            return SV_ENOMEM;
        c->ent_len = l;
        c->ent_cap = nc;
    }
    if (c->type == SV_PQ_BYTE_ARRAY) {
        uint8_t le[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                         (uint8_t)(len >> 24)};
        if (sv_buf_append(&c->dict, le, 4))
            return SV_ENOMEM;
    }
    uint32_t off = (uint32_t)c->dict.len;
    if (sv_buf_append(&c->dict, p, len))
        return SV_ENOMEM;
    c->ent_off[c->dict_n] = off;
    c->ent_len[c->dict_n] = len;
    c->slots[i] = c->dict_n + 1;
    *idx = c->dict_n++;
    *added = true;
    return 0;
}

/* ---- values and levels -------------------------------------------------- */

static int put_level(pq_col *c, uint8_t def, uint8_t rep)
{
    if (c->max_def && sv_buf_putc(&c->def, def))
        return SV_ENOMEM;
    if (c->max_rep && sv_buf_putc(&c->rep, rep))
        return SV_ENOMEM;
    if (def < c->max_def)
        c->nulls++;
    c->page_levels++;
    return 0;
}

/* n levels: the first with rep0, the rest with rep, all with def. */
static int put_levels(pq_col *c, uint8_t def, uint8_t rep0, uint8_t rep, size_t n)
{
    if (!n)
        return 0;
    if (c->max_def) {
        if (sv_buf_reserve(&c->def, n))
            return SV_ENOMEM;
        memset(c->def.data + c->def.len, def, n);
        c->def.len += n;
    }
    if (c->max_rep) {
        if (sv_buf_reserve(&c->rep, n))
            return SV_ENOMEM;
        c->rep.data[c->rep.len] = rep0;
        memset(c->rep.data + c->rep.len + 1, rep, n - 1);
        c->rep.len += n;
    }
    if (def < c->max_def)
        c->nulls += (int64_t)n;
    c->page_levels += n;
    return 0;
}

static int put_fixed(pq_col *c, const uint8_t *p, size_t n)
{
    size_t w = (size_t)c->width;
    if (c->dict_mode) {
        if (sv_buf_reserve(&c->vals, n * 4))
            return SV_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            uint32_t idx;
            bool added;
            if (dict_index(c, p + i * w, (uint32_t)w, &idx, &added))
                return SV_ENOMEM;
            if (added)
                stat_fixed(c, p + i * w, 1);
            memcpy(c->vals.data + c->vals.len, &idx, 4);
            c->vals.len += 4;
        }
        return 0;
    }
    if (c->type == SV_PQ_BOOLEAN) {
        if (sv_buf_reserve(&c->vals, n))
            return SV_ENOMEM;
        for (size_t i = 0; i < n; i++)
            c->vals.data[c->vals.len + i] = p[i] != 0;
        stat_fixed(c, c->vals.data + c->vals.len, n);
        c->vals.len += n;
        return 0;
    }
    if (sv_buf_append(&c->vals, p, n * w))
        return SV_ENOMEM;
    stat_fixed(c, p, n);
    return 0;
}

static int put_bytes(pq_col *c, const uint8_t *p, uint32_t len)
{
    if (c->dict_mode) {
        uint32_t idx;
        bool added;
        if (dict_index(c, p, len, &idx, &added))
            return SV_ENOMEM;
        if (added && stat_bytes(c, p, len))
            return SV_ENOMEM;
        return sv_buf_append(&c->vals, &idx, 4);
    }
    if (c->type == SV_PQ_BYTE_ARRAY) {
        uint8_t le[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16),
                         (uint8_t)(len >> 24)};
        if (sv_buf_append(&c->vals, le, 4))
            return SV_ENOMEM;
    }
    if (sv_buf_append(&c->vals, p, len))
        return SV_ENOMEM;
    return stat_bytes(c, p, len);
}

/* ---- pages -------------------------------------------------------------- */

static int compress_into(sv_pq_writer *w, const sv_buf *src, sv_buf *dst, sv_err *err)
{
    dst->len = 0;
    switch (w->opt.codec) {
    case SV_PQ_CODEC_NONE:
        if (sv_buf_append(dst, src->data, src->len))
            return nomem(w, err);
        return 0;
    case SV_PQ_CODEC_ZSTD: {
        size_t bound = ZSTD_compressBound(src->len);
        if (sv_buf_reserve(dst, bound))
            return nomem(w, err);
        size_t r = ZSTD_compressCCtx(w->zctx, dst->data, bound, src->data, src->len,
                                     w->opt.level);
        if (ZSTD_isError(r))
            return fail_sticky(w, err, SV_EINTERNAL, ZSTD_getErrorName(r));
        dst->len = r;
        return 0;
    }
    case SV_PQ_CODEC_SNAPPY: {
        size_t bound = snappy_max_compressed_length(src->len);
        if (sv_buf_reserve(dst, bound))
            return nomem(w, err);
        size_t out = bound;
        if (snappy_compress((const char *)src->data, src->len, (char *)dst->data, &out) !=
            SNAPPY_OK)
            return fail_sticky(w, err, SV_EINTERNAL, "snappy compression failed");
        dst->len = out;
        return 0;
    }
    }
    return fail_sticky(w, err, SV_EINTERNAL, "unknown codec");
}

/* Page header into w->hdr. dict_n >= 0 makes it a dictionary page. */
static int page_header(sv_pq_writer *w, size_t ulen, size_t clen, int64_t nvals, int enc,
                       bool dict_page, sv_err *err)
{
    if (ulen > INT32_MAX || clen > INT32_MAX || nvals > INT32_MAX)
        return fail_sticky(w, err, SV_ETOOBIG, "a page exceeds 2 GiB; lower page_bytes");
    sv_tc t;
    w->hdr.len = 0;
    sv_tc_init(&t, &w->hdr);
    sv_tc_i32(&t, 1, dict_page ? 2 : 0);
    sv_tc_i32(&t, 2, (int32_t)ulen);
    sv_tc_i32(&t, 3, (int32_t)clen);
    if (dict_page) {
        sv_tc_struct_begin(&t, 7);
        sv_tc_i32(&t, 1, (int32_t)nvals);
        sv_tc_i32(&t, 2, 0); /* PLAIN */
        sv_tc_struct_end(&t);
    } else {
        sv_tc_struct_begin(&t, 5);
        sv_tc_i32(&t, 1, (int32_t)nvals);
        sv_tc_i32(&t, 2, enc);
        sv_tc_i32(&t, 3, 3); /* RLE */
        sv_tc_i32(&t, 4, 3);
        sv_tc_struct_end(&t);
    }
    sv_tc_stop(&t);
    return t.failed ? nomem(w, err) : 0;
}

static int finish_page(sv_pq_writer *w, pq_col *c, sv_err *err)
{
    if (!c->page_levels)
        return 0;
    sv_buf *pg = &w->page;
    pg->len = 0;
    if (c->max_rep && sv_pq_levels_v1(pg, c->rep.data, c->rep.len, c->max_rep))
        return nomem(w, err);
    if (c->max_def && sv_pq_levels_v1(pg, c->def.data, c->def.len, c->max_def))
        return nomem(w, err);
    int enc = 0;
    if (c->dict_mode && c->vals.len) {
        enc = 8; /* RLE_DICTIONARY */
        int bw = sv_pq_bit_width(c->dict_n > 1 ? c->dict_n - 1 : 1);
        if (sv_buf_putc(pg, (uint8_t)bw) ||
            sv_pq_rle_u32(pg, (const uint32_t *)(const void *)c->vals.data, c->vals.len / 4, bw))
            return nomem(w, err);
        c->used_dict = true;
    } else if (c->type == SV_PQ_BOOLEAN) {
        size_t nb = (c->vals.len + 7) / 8;
        if (sv_buf_reserve(pg, nb))
            return nomem(w, err);
        uint8_t *o = pg->data + pg->len;
        memset(o, 0, nb);
        for (size_t i = 0; i < c->vals.len; i++)
            o[i >> 3] |= (uint8_t)(c->vals.data[i] << (i & 7));
        pg->len += nb;
        c->used_plain = true;
    } else {
        if (sv_buf_append(pg, c->vals.data, c->vals.len))
            return nomem(w, err);
        c->used_plain = true;
    }
    int rc = compress_into(w, pg, &w->comp, err);
    if (rc)
        return rc;
    rc = page_header(w, pg->len, w->comp.len, (int64_t)c->page_levels, enc, false, err);
    if (rc)
        return rc;
    if (sv_buf_append(&c->chunk, w->hdr.data, w->hdr.len) ||
        sv_buf_append(&c->chunk, w->comp.data, w->comp.len))
        return nomem(w, err);
    c->chunk_values += (int64_t)c->page_levels;
    c->chunk_uncompressed += (int64_t)(w->hdr.len + pg->len);
    c->page_levels = 0;
    c->def.len = c->rep.len = c->vals.len = 0;
    return 0;
}

/* Before a row: a dictionary past its limit ends the dictionary-encoded
 * pages of this chunk; the rest of the chunk is PLAIN. */
static int begin_row(sv_pq_writer *w, pq_col *c, sv_err *err)
{
    if (c->dict_mode && (int64_t)c->dict.len > w->opt.dict_bytes) {
        int rc = finish_page(w, c, err);
        if (rc)
            return rc;
        c->dict_mode = false;
        c->vals.len = 0;
    }
    return 0;
}

static int end_row(sv_pq_writer *w, pq_col *c, sv_err *err)
{
    c->rows++;
    /* levels counted at their bit width: what bit-packing would take, an
     * upper bound on the RLE hybrid, so a page is close to page_bytes */
    if ((int64_t)(c->vals.len + (c->def.len * (size_t)c->def_bw + c->rep.len * (size_t)c->rep_bw) / 8) >=
        w->opt.page_bytes)
        return finish_page(w, c, err);
    return 0;
}

/* ---- sink and metadata -------------------------------------------------- */

static int sink_write(sv_pq_writer *w, const void *p, size_t n, sv_err *err)
{
    if (w->offset == 0) {
        int rc = w->sink.write(w->sink.ud, "PAR1", 4, err);
        if (rc)
            goto failed;
        w->offset = 4;
    }
    if (n) {
        int rc = w->sink.write(w->sink.ud, p, n, err);
        if (rc)
            goto failed;
        w->offset += (int64_t)n;
    }
    return 0;
failed:
    w->failed = SV_EIO;
    snprintf(w->fail_msg, sizeof w->fail_msg, "sink write failed: %.200s",
             err && err->msg[0] ? err->msg : "?");
    return err && err->code ? err->code : SV_EIO;
}

static void put_le(uint8_t *o, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        o[i] = (uint8_t)(v >> (8 * i));
}

/* Byte-array statistics longer than STAT_MAX_BYTES become a shorter lower
 * bound (a prefix) and upper bound (a prefix with its last byte raised). For
 * STRING/JSON both stay valid UTF-8. Returns false if no upper bound fits. */
static bool truncate_stats(pq_col *c, size_t *minlen, uint8_t *maxbuf, size_t *maxlen)
{
    bool text = c->lt == SV_PQ_LT_STRING || c->lt == SV_PQ_LT_JSON;
    *minlen = c->bmin.len;
    if (*minlen > STAT_MAX_BYTES) {
        size_t k = STAT_MAX_BYTES;
        while (text && k > 0 && (c->bmin.data[k] & 0xC0) == 0x80)
            k--;
        *minlen = k;
    }
    *maxlen = c->bmax.len;
    if (*maxlen <= STAT_MAX_BYTES) {
        if (*maxlen)
            memcpy(maxbuf, c->bmax.data, *maxlen);
        return true;
    }
    for (size_t k = STAT_MAX_BYTES; k > 0; k--) {
        uint8_t b = c->bmax.data[k - 1];
        if (text ? b < 0x7F : b < 0xFF) {
            memcpy(maxbuf, c->bmax.data, k);
            maxbuf[k - 1]++;
            *maxlen = k;
            return true;
        }
    }
    return false;
}

static void write_stats(sv_tc *t, pq_col *c)
{
    sv_tc_struct_begin(t, 12);
    sv_tc_i64(t, 3, c->nulls);
    if (c->has_mm) {
        uint8_t mn[STAT_MAX_BYTES + 8], mx[STAT_MAX_BYTES + 8];
        size_t mnl = 0, mxl = 0;
        bool exact_min = true, exact_max = true, ok = true;
        const uint8_t *mnp = mn;
        switch (c->type) {
        case SV_PQ_BOOLEAN: mn[0] = c->mn.b; mx[0] = c->mx.b; mnl = mxl = 1; break;
        case SV_PQ_INT32:
            put_le(mn, (uint32_t)c->mn.i32, 4); put_le(mx, (uint32_t)c->mx.i32, 4);
            mnl = mxl = 4;
            break;
        case SV_PQ_INT64:
            put_le(mn, (uint64_t)c->mn.i64, 8); put_le(mx, (uint64_t)c->mx.i64, 8);
            mnl = mxl = 8;
            break;
        case SV_PQ_FLOAT: {
            /* the spec: a zero min is written -0.0, a zero max +0.0 */
            float lo = c->mn.f == 0.0f ? -0.0f : c->mn.f, hi = c->mx.f == 0.0f ? 0.0f : c->mx.f;
            memcpy(mn, &lo, 4); memcpy(mx, &hi, 4);
            mnl = mxl = 4;
            break;
        }
        case SV_PQ_DOUBLE: {
            double lo = c->mn.d == 0.0 ? -0.0 : c->mn.d, hi = c->mx.d == 0.0 ? 0.0 : c->mx.d;
            memcpy(mn, &lo, 8); memcpy(mx, &hi, 8);
            mnl = mxl = 8;
            break;
        }
        default:
            ok = truncate_stats(c, &mnl, mx, &mxl);
            mnp = c->bmin.data;
            exact_min = mnl == c->bmin.len;
            exact_max = mxl == c->bmax.len;
            break;
        }
        if (ok) {
            sv_tc_binary(t, 5, mx, mxl);
            sv_tc_binary(t, 6, mnp, mnl);
            sv_tc_bool(t, 7, exact_max);
            sv_tc_bool(t, 8, exact_min);
        }
    }
    sv_tc_struct_end(t);
}

static int flush_row_group(sv_pq_writer *w, sv_err *err)
{
    if (w->rg_rows == 0)
        return 0;
    int rc;
    for (int i = 0; i < w->ncols; i++)
        if ((rc = finish_page(w, &w->cols[i], err)))
            return rc;
    if ((rc = sink_write(w, NULL, 0, err)))
        return rc;
    sv_tc t;
    sv_tc_init(&t, &w->meta);
    int64_t rg_start = w->offset, rg_bytes = 0;
    sv_tc_elem_struct_begin(&t); /* RowGroup */
    sv_tc_list_begin(&t, 1, SV_TC_STRUCT, (uint32_t)w->ncols);
    for (int i = 0; i < w->ncols; i++) {
        pq_col *c = &w->cols[i];
        int64_t start = w->offset, dict_off = -1, uncompressed = c->chunk_uncompressed;
        if (c->used_dict) {
            if ((rc = compress_into(w, &c->dict, &w->comp, err)) ||
                (rc = page_header(w, c->dict.len, w->comp.len, c->dict_n, 0, true, err)))
                return rc;
            dict_off = w->offset;
            if ((rc = sink_write(w, w->hdr.data, w->hdr.len, err)) ||
                (rc = sink_write(w, w->comp.data, w->comp.len, err)))
                return rc;
            uncompressed += (int64_t)(w->hdr.len + c->dict.len);
        }
        int64_t data_off = w->offset;
        if ((rc = sink_write(w, c->chunk.data, c->chunk.len, err)))
            return rc;
        int64_t compressed = w->offset - start;
        rg_bytes += uncompressed;

        const pq_node *n = &w->s.nodes[c->node];
        sv_tc_elem_struct_begin(&t); /* ColumnChunk */
        sv_tc_i64(&t, 2, start);
        sv_tc_struct_begin(&t, 3); /* ColumnMetaData */
        sv_tc_i32(&t, 1, (int32_t)c->type);
        sv_tc_list_begin(&t, 2, SV_TC_I32, c->used_dict ? 3 : 2);
        sv_tc_elem_i32(&t, 0);
        sv_tc_elem_i32(&t, 3);
        if (c->used_dict)
            sv_tc_elem_i32(&t, 8);
        /* path_in_schema: the node's names from the top, list levels included */
        const char *path[64];
        int np = 0;
        for (int id = c->node; id > 0 && np < 64; id = w->s.nodes[id].parent) {
            const pq_node *x = &w->s.nodes[id];
            if (x->parent > 0 && w->s.nodes[x->parent].kind == PQ_LIST) {
                path[np++] = "element";
                path[np++] = "list";
            } else {
                path[np++] = x->name;
            }
        }
        (void)n;
        sv_tc_list_begin(&t, 3, SV_TC_BINARY, (uint32_t)np);
        for (int k = np - 1; k >= 0; k--)
            sv_tc_elem_binary(&t, path[k], strlen(path[k]));
        sv_tc_i32(&t, 4, (int32_t)w->opt.codec);
        sv_tc_i64(&t, 5, c->chunk_values);
        sv_tc_i64(&t, 6, uncompressed);
        sv_tc_i64(&t, 7, compressed);
        sv_tc_i64(&t, 9, data_off);
        if (dict_off >= 0)
            sv_tc_i64(&t, 11, dict_off);
        write_stats(&t, c);
        sv_tc_struct_end(&t); /* ColumnMetaData */
        sv_tc_struct_end(&t); /* ColumnChunk */

        /* reset the column for the next row group */
        c->chunk.len = 0;
        c->chunk_values = c->chunk_uncompressed = 0;
        c->used_dict = c->used_plain = false;
        c->dict_mode = c->dict_on;
        dict_reset(c);
        c->rows = 0;
        c->nulls = 0;
        c->has_mm = false;
    }
    sv_tc_i64(&t, 2, rg_bytes);
    sv_tc_i64(&t, 3, w->rg_rows);
    sv_tc_i64(&t, 5, rg_start);
    sv_tc_i64(&t, 6, w->offset - rg_start);
    sv_tc_struct_end(&t);
    if (t.failed)
        return nomem(w, err);
    w->n_rg++;
    w->rg_rows = 0;
    return 0;
}

/* ---- schema walk -------------------------------------------------------- */

static int assign_levels(sv_pq_writer *w, int id, int def, int rep, bool in_list, sv_err *err)
{
    pq_node *n = &w->s.nodes[id];
    bool opt = (n->flags & SV_PQ_OPTIONAL) != 0;
    n->in_list = in_list;
    n->col = w->ncols;
    if (n->kind == PQ_ROOT) {
        n->def = n->rep = 0;
    } else {
        n->def = def + opt;
        n->rep = rep;
    }
    if (n->kind == PQ_LIST) {
        n->rep = rep + 1;
        if (n->first_child < 0)
            return sv_fail(err, SV_EINVAL, "parquet schema: list '%s' has no element", n->name);
    } else if (n->kind != PQ_LEAF && n->first_child < 0) {
        return sv_fail(err, SV_EINVAL, "parquet schema: group '%s' has no columns",
                       n->kind == PQ_ROOT ? "(root)" : n->name);
    }
    if (n->def > 250 || n->rep > 250)
        return sv_fail(err, SV_EINVAL, "parquet schema: '%s' is nested too deeply", n->name);
    if (n->kind == PQ_LEAF) {
        w->ncols++;
    } else {
        int cdef = n->kind == PQ_LIST ? n->def + 1 : n->def;
        for (int c = n->first_child; c >= 0; c = w->s.nodes[c].next) {
            int rc = assign_levels(w, c, cdef, n->rep, in_list || n->kind == PQ_LIST, err);
            if (rc)
                return rc;
        }
    }
    w->s.nodes[id].col_end = w->ncols;
    return 0;
}

static int value_width(sv_pq_type t, int type_length)
{
    switch (t) {
    case SV_PQ_BOOLEAN: return 1;
    case SV_PQ_INT32: case SV_PQ_FLOAT: return 4;
    case SV_PQ_INT64: case SV_PQ_DOUBLE: return 8;
    case SV_PQ_FIXED_LEN_BYTE_ARRAY: return type_length;
    default: return 0;
    }
}

int sv_pq_writer_new(const sv_pq_schema *schema, const sv_pq_options *opt,
                     const sv_pq_sink *sink, sv_pq_writer **out, sv_err *err)
{
    *out = NULL;
    if (!schema || !sink || !sink->write)
        return sv_fail(err, SV_EINVAL, "parquet: writer needs a schema and a sink with write()");
    sv_pq_writer *w = calloc(1, sizeof *w);
    if (!w)
        return sv_fail(err, SV_ENOMEM, "parquet: out of memory");
    int rc = SV_ENOMEM;
    w->sink = *sink;
    if (opt)
        w->opt = *opt;
    w->opt.kv = NULL;
    if (w->opt.codec != SV_PQ_CODEC_NONE && w->opt.codec != SV_PQ_CODEC_ZSTD &&
        w->opt.codec != SV_PQ_CODEC_SNAPPY) {
        rc = sv_fail(err, SV_EINVAL, "parquet: unknown codec %d (NONE, SNAPPY or ZSTD)",
                     (int)w->opt.codec);
        goto fail;
    }
    if (!w->opt.level)
        w->opt.level = 3;
    if (w->opt.level < ZSTD_minCLevel() || w->opt.level > ZSTD_maxCLevel()) {
        rc = sv_fail(err, SV_EINVAL, "parquet: zstd level %d outside %d..%d", w->opt.level,
                     ZSTD_minCLevel(), ZSTD_maxCLevel());
        goto fail;
    }
    if (w->opt.row_group_bytes <= 0)
        w->opt.row_group_bytes = 64ll << 20;
    if (w->opt.row_group_rows <= 0)
        w->opt.row_group_rows = 1000000;
    if (w->opt.page_bytes <= 0)
        w->opt.page_bytes = 1ll << 20;
    if (w->opt.dict_bytes <= 0)
        w->opt.dict_bytes = 1ll << 20;
    if (w->opt.codec == SV_PQ_CODEC_ZSTD && !(w->zctx = ZSTD_createCCtx()))
        goto nomem;
    if (opt && opt->n_kv) {
        if (!(w->kv = calloc(opt->n_kv * 2, sizeof *w->kv)))
            goto nomem;
        w->opt.n_kv = opt->n_kv;
        for (size_t i = 0; i < opt->n_kv; i++) {
            if (!opt->kv[i].key) {
                rc = sv_fail(err, SV_EINVAL, "parquet: key-value metadata %zu has no key", i);
                goto fail;
            }
            if (!(w->kv[2 * i] = strdup(opt->kv[i].key)) ||
                (opt->kv[i].value && !(w->kv[2 * i + 1] = strdup(opt->kv[i].value))))
                goto nomem;
        }
    }
    /* copy the schema */
    w->s.n = w->s.cap = schema->n;
    if (!(w->s.nodes = calloc((size_t)schema->n, sizeof *w->s.nodes)))
        goto nomem;
    for (int i = 0; i < schema->n; i++) {
        w->s.nodes[i] = schema->nodes[i];
        w->s.nodes[i].name = NULL;
        if (schema->nodes[i].name && !(w->s.nodes[i].name = strdup(schema->nodes[i].name)))
            goto nomem;
    }
    if ((rc = assign_levels(w, 0, 0, 0, false, err)))
        goto fail;
    if (!(w->cols = calloc((size_t)w->ncols, sizeof *w->cols)))
        goto nomem;
    for (int i = 1; i < w->s.n; i++) {
        pq_node *n = &w->s.nodes[i];
        if (n->kind != PQ_LEAF)
            continue;
        pq_col *c = &w->cols[n->col];
        c->node = i;
        c->max_def = n->def;
        c->max_rep = n->rep;
        c->def_bw = sv_pq_bit_width((uint32_t)n->def);
        c->rep_bw = sv_pq_bit_width((uint32_t)n->rep);
        c->type = n->type;
        c->lt = n->lt;
        c->width = value_width(n->type, n->type_length);
        c->dict_on = c->dict_mode = (n->flags & SV_PQ_DICT) && n->type != SV_PQ_BOOLEAN;
    }
    *out = w;
    return 0;
nomem:
    rc = sv_fail(err, SV_ENOMEM, "parquet: out of memory");
fail:
    sv_pq_writer_free(w);
    return rc;
}

void sv_pq_writer_free(sv_pq_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->ncols; i++) {
        pq_col *c = &w->cols[i];
        sv_buf_free(&c->def); sv_buf_free(&c->rep); sv_buf_free(&c->vals);
        sv_buf_free(&c->chunk); sv_buf_free(&c->dict);
        sv_buf_free(&c->bmin); sv_buf_free(&c->bmax);
        free(c->ent_off); free(c->ent_len); free(c->slots);
    }
    free(w->cols);
    if (w->s.nodes)
        for (int i = 0; i < w->s.n; i++)
            free(w->s.nodes[i].name);
    free(w->s.nodes);
    if (w->kv)
        for (size_t i = 0; i < 2 * w->opt.n_kv; i++)
            free(w->kv[i]);
    free(w->kv);
    ZSTD_freeCCtx(w->zctx);
    sv_buf_free(&w->page); sv_buf_free(&w->comp); sv_buf_free(&w->hdr); sv_buf_free(&w->meta);
    free(w);
}

/* ---- appends ------------------------------------------------------------ */

static const char *kind_name(const pq_node *n)
{
    return n->kind == PQ_LIST ? "list" : n->kind == PQ_GROUP ? "group" : "leaf";
}

/* The node must exist, be of `kind`, and not sit inside a list. */
static int get_node(sv_pq_writer *w, int node, int kind, pq_node **out, sv_err *err)
{
    int rc = check_usable(w, err);
    if (rc)
        return rc;
    if (node <= 0 || node >= w->s.n)
        return sv_fail(err, SV_EINVAL, "parquet: node %d does not exist", node);
    pq_node *n = &w->s.nodes[node];
    if (n->in_list)
        return sv_fail(err, SV_EINVAL,
                       "parquet: '%s' is a list element; append through its list", n->name);
    if (kind >= 0 && n->kind != kind)
        return sv_fail(err, SV_EINVAL, "parquet: '%s' is a %s, not a %s", n->name,
                       kind_name(n), kind == PQ_LIST ? "list" : "leaf");
    *out = n;
    return 0;
}

static int check_fixed(const pq_node *n, const char *what, sv_err *err)
{
    if (n->type == SV_PQ_BYTE_ARRAY || n->type == SV_PQ_FIXED_LEN_BYTE_ARRAY)
        return sv_fail(err, SV_EINVAL, "parquet: '%s' holds byte arrays; use %s_bytes", n->name,
                       what);
    return 0;
}

static int check_bytes(const pq_node *n, const void *const *ptrs, const uint32_t *lens,
                       size_t cnt, bool nullable, sv_err *err)
{
    if (n->type != SV_PQ_BYTE_ARRAY && n->type != SV_PQ_FIXED_LEN_BYTE_ARRAY)
        return sv_fail(err, SV_EINVAL, "parquet: '%s' does not hold byte arrays", n->name);
    bool text = n->lt == SV_PQ_LT_STRING || n->lt == SV_PQ_LT_JSON;
    for (size_t i = 0; i < cnt; i++) {
        if (!ptrs[i]) {
            if (!nullable)
                return sv_fail(err, SV_EINVAL, "parquet: '%s' is required; value %zu is null",
                               n->name, i);
            continue;
        }
        if (n->type == SV_PQ_FIXED_LEN_BYTE_ARRAY && lens[i] != (uint32_t)n->type_length)
            return sv_fail(err, SV_EINVAL, "parquet: '%s' holds %d-byte values, got %u bytes",
                           n->name, n->type_length, lens[i]);
        if (text && !utf8_valid(ptrs[i], lens[i]))
            return sv_fail(err, SV_EINVAL, "parquet: '%s': value %zu is not valid UTF-8",
                           n->name, i);
    }
    return 0;
}

int sv_pq_append_null(sv_pq_writer *w, int node, sv_err *err)
{
    pq_node *n;
    int rc = get_node(w, node, -1, &n, err);
    if (rc)
        return rc;
    if (!(n->flags & SV_PQ_OPTIONAL))
        return sv_fail(err, SV_EINVAL, "parquet: '%s' is required and cannot be null", n->name);
    for (int i = n->col; i < n->col_end; i++) {
        pq_col *c = &w->cols[i];
        if ((rc = begin_row(w, c, err)))
            return rc;
        if (put_level(c, (uint8_t)(n->def - 1), 0))
            return nomem(w, err);
        if ((rc = end_row(w, c, err)))
            return rc;
    }
    return 0;
}

int sv_pq_append_values(sv_pq_writer *w, int node, const void *values, const uint8_t *valid,
                        size_t cnt, sv_err *err)
{
    pq_node *n;
    int rc = get_node(w, node, PQ_LEAF, &n, err);
    if (rc || (rc = check_fixed(n, "sv_pq_append", err)))
        return rc;
    if (valid && !(n->flags & SV_PQ_OPTIONAL))
        for (size_t i = 0; i < cnt; i++)
            if (!valid[i])
                return sv_fail(err, SV_EINVAL, "parquet: '%s' is required; value %zu is null",
                               n->name, i);
    pq_col *c = &w->cols[n->col];
    const uint8_t *p = values;
    for (size_t i = 0; i < cnt; i++) {
        if ((rc = begin_row(w, c, err)))
            return rc;
        bool present = !valid || valid[i];
        if (put_level(c, (uint8_t)(present ? n->def : n->def - 1), 0) ||
            (present && put_fixed(c, p + i * (size_t)c->width, 1)))
            return nomem(w, err);
        if ((rc = end_row(w, c, err)))
            return rc;
    }
    return 0;
}

int sv_pq_append_bytes(sv_pq_writer *w, int node, const void *const *ptrs,
                       const uint32_t *lens, size_t cnt, sv_err *err)
{
    pq_node *n;
    int rc = get_node(w, node, PQ_LEAF, &n, err);
    if (rc || (rc = check_bytes(n, ptrs, lens, cnt, n->flags & SV_PQ_OPTIONAL, err)))
        return rc;
    pq_col *c = &w->cols[n->col];
    for (size_t i = 0; i < cnt; i++) {
        if ((rc = begin_row(w, c, err)))
            return rc;
        if (put_level(c, (uint8_t)(ptrs[i] ? n->def : n->def - 1), 0) ||
            (ptrs[i] && put_bytes(c, ptrs[i], lens[i])))
            return nomem(w, err);
        if ((rc = end_row(w, c, err)))
            return rc;
    }
    return 0;
}

static int append_one(sv_pq_writer *w, int node, sv_pq_type want, const void *v, sv_err *err)
{
    if (w && node > 0 && node < w->s.n && w->s.nodes[node].kind == PQ_LEAF &&
        w->s.nodes[node].type != want) {
        static const char *names[] = {"BOOLEAN", "INT32", "INT64", "INT96", "FLOAT",
                                      "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"};
        return sv_fail(err, SV_EINVAL, "parquet: '%s' is %s, not %s", w->s.nodes[node].name,
                       names[w->s.nodes[node].type], names[want]);
    }
    return sv_pq_append_values(w, node, v, NULL, 1, err);
}

int sv_pq_append_i32(sv_pq_writer *w, int node, int32_t v, sv_err *err)
{
    return append_one(w, node, SV_PQ_INT32, &v, err);
}
int sv_pq_append_i64(sv_pq_writer *w, int node, int64_t v, sv_err *err)
{
    return append_one(w, node, SV_PQ_INT64, &v, err);
}
int sv_pq_append_float(sv_pq_writer *w, int node, float v, sv_err *err)
{
    return append_one(w, node, SV_PQ_FLOAT, &v, err);
}
int sv_pq_append_double(sv_pq_writer *w, int node, double v, sv_err *err)
{
    return append_one(w, node, SV_PQ_DOUBLE, &v, err);
}
int sv_pq_append_bool(sv_pq_writer *w, int node, bool v, sv_err *err)
{
    uint8_t b = v;
    return append_one(w, node, SV_PQ_BOOLEAN, &b, err);
}
int sv_pq_append_str(sv_pq_writer *w, int node, const void *s, size_t len, sv_err *err)
{
    if (len > UINT32_MAX)
        return sv_fail(err, SV_ETOOBIG, "parquet: a value exceeds 4 GiB");
    const void *p = s ? s : "";
    uint32_t l = (uint32_t)len;
    return sv_pq_append_bytes(w, node, &p, &l, 1, err);
}

static int check_list(sv_pq_writer *w, int node, size_t cnt, pq_node **ln, pq_node **en,
                      sv_err *err)
{
    int rc = get_node(w, node, PQ_LIST, ln, err);
    if (rc)
        return rc;
    *en = &w->s.nodes[(*ln)->first_child];
    if ((*ln)->list_len && cnt != (*ln)->list_len)
        return sv_fail(err, SV_EINVAL, "parquet: '%s' holds lists of %u elements, got %zu",
                       (*ln)->name, (*ln)->list_len, cnt);
    return 0;
}

int sv_pq_append_list(sv_pq_writer *w, int node, const void *values, const uint8_t *valid,
                      size_t cnt, sv_err *err)
{
    pq_node *ln, *en;
    int rc = check_list(w, node, cnt, &ln, &en, err);
    if (rc)
        return rc;
    if (en->kind != PQ_LEAF)
        return sv_fail(err, SV_EINVAL, "parquet: '%s' is a list of lists; use sv_pq_append_list2",
                       ln->name);
    if ((rc = check_fixed(en, "sv_pq_append_list", err)))
        return rc;
    bool eopt = en->flags & SV_PQ_OPTIONAL;
    if (valid && !eopt)
        for (size_t i = 0; i < cnt; i++)
            if (!valid[i])
                return sv_fail(err, SV_EINVAL,
                               "parquet: '%s' has required elements; element %zu is null",
                               ln->name, i);
    pq_col *c = &w->cols[en->col];
    if ((rc = begin_row(w, c, err)))
        return rc;
    if (!cnt) {
        if (put_level(c, (uint8_t)ln->def, 0))
            return nomem(w, err);
    } else if (!valid) {
        if (put_levels(c, (uint8_t)en->def, 0, (uint8_t)ln->rep, cnt) ||
            put_fixed(c, values, cnt))
            return nomem(w, err);
    } else {
        const uint8_t *p = values;
        for (size_t i = 0; i < cnt; i++) {
            if (put_level(c, (uint8_t)(valid[i] ? en->def : en->def - 1),
                          (uint8_t)(i ? ln->rep : 0)) ||
                (valid[i] && put_fixed(c, p + i * (size_t)c->width, 1)))
                return nomem(w, err);
        }
    }
    return end_row(w, c, err);
}

int sv_pq_append_list_bytes(sv_pq_writer *w, int node, const void *const *ptrs,
                            const uint32_t *lens, size_t cnt, sv_err *err)
{
    pq_node *ln, *en;
    int rc = check_list(w, node, cnt, &ln, &en, err);
    if (rc)
        return rc;
    if (en->kind != PQ_LEAF)
        return sv_fail(err, SV_EINVAL, "parquet: '%s' is a list of lists", ln->name);
    if ((rc = check_bytes(en, ptrs, lens, cnt, en->flags & SV_PQ_OPTIONAL, err)))
        return rc;
    pq_col *c = &w->cols[en->col];
    if ((rc = begin_row(w, c, err)))
        return rc;
    if (!cnt && put_level(c, (uint8_t)ln->def, 0))
        return nomem(w, err);
    for (size_t i = 0; i < cnt; i++)
        if (put_level(c, (uint8_t)(ptrs[i] ? en->def : en->def - 1),
                      (uint8_t)(i ? ln->rep : 0)) ||
            (ptrs[i] && put_bytes(c, ptrs[i], lens[i])))
            return nomem(w, err);
    return end_row(w, c, err);
}

int sv_pq_append_list2(sv_pq_writer *w, int node, const void *values, const uint32_t *lens,
                       size_t n_lists, sv_err *err)
{
    pq_node *ln, *in;
    int rc = check_list(w, node, n_lists, &ln, &in, err);
    if (rc)
        return rc;
    if (in->kind != PQ_LIST || w->s.nodes[in->first_child].kind != PQ_LEAF)
        return sv_fail(err, SV_EINVAL, "parquet: '%s' is not a list of lists of values",
                       ln->name);
    pq_node *en = &w->s.nodes[in->first_child];
    if ((rc = check_fixed(en, "sv_pq_append_list2", err)))
        return rc;
    for (size_t i = 0; i < n_lists; i++) {
        if (lens[i] == SV_PQ_NULL_LIST) {
            if (!(in->flags & SV_PQ_OPTIONAL))
                return sv_fail(err, SV_EINVAL,
                               "parquet: '%s' has required inner lists; list %zu is null",
                               ln->name, i);
        } else if (in->list_len && lens[i] != in->list_len) {
            return sv_fail(err, SV_EINVAL,
                           "parquet: '%s' holds inner lists of %u elements, list %zu has %u",
                           ln->name, in->list_len, i, lens[i]);
        }
    }
    pq_col *c = &w->cols[en->col];
    if ((rc = begin_row(w, c, err)))
        return rc;
    if (!n_lists && put_level(c, (uint8_t)ln->def, 0))
        return nomem(w, err);
    const uint8_t *p = values;
    for (size_t i = 0; i < n_lists; i++) {
        uint8_t r = (uint8_t)(i ? ln->rep : 0);
        int e;
        if (lens[i] == SV_PQ_NULL_LIST)
            e = put_level(c, (uint8_t)(in->def - 1), r);
        else if (lens[i] == 0)
            e = put_level(c, (uint8_t)in->def, r);
        else {
            e = put_levels(c, (uint8_t)en->def, r, (uint8_t)in->rep, lens[i]) ||
                put_fixed(c, p, lens[i]);
            p += (size_t)lens[i] * (size_t)c->width;
        }
        if (e)
            return nomem(w, err);
    }
    return end_row(w, c, err);
}

/* ---- rows, flush, close ------------------------------------------------- */

int sv_pq_writer_end_rows(sv_pq_writer *w, size_t n, sv_err *err)
{
    int rc = check_usable(w, err);
    if (rc)
        return rc;
    int64_t want = w->rg_rows + (int64_t)n, bytes = 0;
    for (int i = 0; i < w->ncols; i++) {
        pq_col *c = &w->cols[i];
        if (c->rows != want)
            return sv_fail(err, SV_EINVAL,
                           "parquet: column '%s' has %lld rows in this row group, expected %lld",
                           w->s.nodes[c->node].name, (long long)c->rows, (long long)want);
        bytes += (int64_t)(c->chunk.len + c->vals.len + c->def.len + c->rep.len + c->dict.len);
    }
    w->rg_rows = want;
    w->total_rows += (int64_t)n;
    if (w->rg_rows >= w->opt.row_group_rows || bytes >= w->opt.row_group_bytes)
        return flush_row_group(w, err);
    return 0;
}

int sv_pq_writer_flush(sv_pq_writer *w, sv_err *err)
{
    int rc = check_usable(w, err);
    if (rc)
        return rc;
    for (int i = 0; i < w->ncols; i++)
        if (w->cols[i].rows != w->rg_rows)
            return sv_fail(err, SV_EINVAL,
                           "parquet: column '%s' has rows not ended by sv_pq_writer_end_rows",
                           w->s.nodes[w->cols[i].node].name);
    return flush_row_group(w, err);
}

static void schema_element(sv_tc *t, const pq_node *n, const char *name, int rep_type,
                           int n_children)
{
    sv_tc_elem_struct_begin(t);
    if (n && n->kind == PQ_LEAF) {
        sv_tc_i32(t, 1, (int32_t)n->type);
        if (n->type == SV_PQ_FIXED_LEN_BYTE_ARRAY)
            sv_tc_i32(t, 2, n->type_length);
    }
    if (rep_type >= 0)
        sv_tc_i32(t, 3, rep_type);
    sv_tc_binary(t, 4, name, strlen(name));
    if (n_children >= 0)
        sv_tc_i32(t, 5, n_children);
    if (n && n->kind == PQ_LIST) {
        sv_tc_i32(t, 6, 3); /* LIST */
        sv_tc_struct_begin(t, 10);
        sv_tc_struct_begin(t, 3);
        sv_tc_struct_end(t);
        sv_tc_struct_end(t);
    } else if (n && n->kind == PQ_LEAF && n->lt != SV_PQ_LT_NONE) {
        static const int converted[] = {-1, 0 /* UTF8 */, 19 /* JSON */, -1, 9 /* TS_MILLIS */};
        if (converted[n->lt] >= 0)
            sv_tc_i32(t, 6, converted[n->lt]);
        sv_tc_struct_begin(t, 10);
        switch (n->lt) {
        case SV_PQ_LT_STRING: sv_tc_struct_begin(t, 1); sv_tc_struct_end(t); break;
        case SV_PQ_LT_JSON: sv_tc_struct_begin(t, 12); sv_tc_struct_end(t); break;
        case SV_PQ_LT_UUID: sv_tc_struct_begin(t, 14); sv_tc_struct_end(t); break;
        case SV_PQ_LT_TIMESTAMP_MS:
            sv_tc_struct_begin(t, 8);
            sv_tc_bool(t, 1, true);
            sv_tc_struct_begin(t, 2);
            sv_tc_struct_begin(t, 1);
            sv_tc_struct_end(t);
            sv_tc_struct_end(t);
            sv_tc_struct_end(t);
            break;
        default: break;
        }
        sv_tc_struct_end(t);
    }
    sv_tc_struct_end(t);
}

static int count_elements(const sv_pq_schema *s, int id)
{
    const pq_node *n = &s->nodes[id];
    int k = n->kind == PQ_LIST ? 2 : 1;
    for (int c = n->first_child; c >= 0; c = s->nodes[c].next)
        k += count_elements(s, c);
    return k;
}

static void write_schema(sv_tc *t, const sv_pq_schema *s, int id, const char *name_override)
{
    const pq_node *n = &s->nodes[id];
    int rt = (n->flags & SV_PQ_OPTIONAL) ? 1 : 0;
    const char *name = name_override ? name_override : n->name;
    switch (n->kind) {
    case PQ_ROOT: schema_element(t, NULL, "schema", -1, n->n_children); break;
    case PQ_LEAF: schema_element(t, n, name, rt, -1); break;
    case PQ_GROUP: schema_element(t, n, name, rt, n->n_children); break;
    case PQ_LIST:
        schema_element(t, n, name, rt, 1);
        schema_element(t, NULL, "list", 2, 1);
        write_schema(t, s, n->first_child, "element");
        return;
    }
    for (int c = n->first_child; c >= 0; c = s->nodes[c].next)
        write_schema(t, s, c, NULL);
}

int sv_pq_writer_close(sv_pq_writer *w, sv_err *err)
{
    int rc = sv_pq_writer_flush(w, err);
    if (rc)
        return rc;
    sv_buf f = {0};
    sv_tc t;
    sv_tc_init(&t, &f);
    sv_tc_i32(&t, 1, 1);
    sv_tc_list_begin(&t, 2, SV_TC_STRUCT, (uint32_t)count_elements(&w->s, 0));
    write_schema(&t, &w->s, 0, NULL);
    sv_tc_i64(&t, 3, w->total_rows);
    sv_tc_list_begin(&t, 4, SV_TC_STRUCT, (uint32_t)w->n_rg);
    if (!t.failed && sv_buf_append(&f, w->meta.data, w->meta.len))
        t.failed = true;
    if (w->opt.n_kv) {
        sv_tc_list_begin(&t, 5, SV_TC_STRUCT, (uint32_t)w->opt.n_kv);
        for (size_t i = 0; i < w->opt.n_kv; i++) {
            sv_tc_elem_struct_begin(&t);
            sv_tc_binary(&t, 1, w->kv[2 * i], strlen(w->kv[2 * i]));
            if (w->kv[2 * i + 1])
                sv_tc_binary(&t, 2, w->kv[2 * i + 1], strlen(w->kv[2 * i + 1]));
            sv_tc_struct_end(&t);
        }
    }
    char created[128];
    snprintf(created, sizeof created, "shardvault version %s (build %s)", SV_VERSION, SV_GIT_SHA);
    sv_tc_binary(&t, 6, created, strlen(created));
    sv_tc_list_begin(&t, 7, SV_TC_STRUCT, (uint32_t)w->ncols);
    for (int i = 0; i < w->ncols; i++) {
        sv_tc_elem_struct_begin(&t); /* ColumnOrder */
        sv_tc_struct_begin(&t, 1);   /* TYPE_ORDER */
        sv_tc_struct_end(&t);
        sv_tc_struct_end(&t);
    }
    sv_tc_stop(&t);
    uint8_t tail[8];
    put_le(tail, f.len, 4);
    memcpy(tail + 4, "PAR1", 4);
    if (t.failed || sv_buf_append(&f, tail, 8)) {
        sv_buf_free(&f);
        return nomem(w, err);
    }
    rc = sink_write(w, f.data, f.len, err);
    sv_buf_free(&f);
    if (rc)
        return rc;
    w->closed = true;
    if (w->sink.close && (rc = w->sink.close(w->sink.ud, err))) {
        w->failed = rc;
        snprintf(w->fail_msg, sizeof w->fail_msg, "sink close failed");
        return rc;
    }
    return 0;
}

int64_t sv_pq_writer_rows(const sv_pq_writer *w) { return w ? w->total_rows : 0; }
int64_t sv_pq_writer_bytes(const sv_pq_writer *w) { return w ? w->offset : 0; }
