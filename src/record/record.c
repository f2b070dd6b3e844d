/* Record lifetime, the binary encoding and the API's JSON output.
 *
 * Encoding, format version 1 (all integers little-endian; "varint" is
 * LEB128, "zz" a zigzag varint):
 *   u8 version (= 1)
 *   zz creation_time, zz update_time
 *   sections, each starting with a tag byte:
 *     0x01 default vector   varint dim, dim x f32
 *     0x02 named vector     varint name_len, name, varint dim, dim x f32
 *     0x03 multi-vector     varint name_len, name, varint dim, varint rows, rows x dim x f32
 *     0x04 property         varint name_len, name, u8 type (| 0x80 for arrays),
 *                           [varint count if array], values:
 *                             text/object: varint len, bytes; int/date: zz;
 *                             number: f64; boolean: u8 0/1; uuid: 16 bytes
 *     0x05 extra json       varint len, bytes (a JSON object)
 *     0x00 end              (must be the last byte)
 * Names are stored (not schema indexes) so properties and vectors added to a
 * schema later never shift what old values mean. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "record_internal.h"

/* ---- arena ---- */

static sv_arena_chunk *chunk_new(size_t cap)
{
    sv_arena_chunk *c = malloc(sizeof *c + cap);
    if (!c)
        return NULL;
    c->next = NULL;
    c->cap = cap;
    c->used = 0;
    return c;
}

void *sv_arena_alloc(struct sv_record_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    sv_arena_chunk *c = a->head;
    if (c && c->cap - c->used >= n) {
        void *p = c->data + c->used;
        c->used += n;
        return p;
    }
    size_t cap = c ? c->cap * 2 : 4096;
    if (cap < n)
        cap = n;
    if (cap > SIZE_MAX / 2)
        return NULL;
    sv_arena_chunk *nc = chunk_new(cap);
    if (!nc)
        return NULL;
    nc->next = c;
    a->head = nc;
    a->total += cap;
    nc->used = n;
    return nc->data;
}

static void arena_clear(struct sv_record_arena *a)
{
    if (a->head && a->head->next) {
        /* Several chunks: replace them by one that fits them all, so a
         * steady stream of similar records allocates nothing. */
        size_t total = a->total;
        for (sv_arena_chunk *c = a->head, *n; c; c = n) {
            n = c->next;
            free(c);
        }
        a->head = chunk_new(total);
        a->total = a->head ? total : 0;
    }
    if (a->head)
        a->head->used = 0;
}

sv_record *sv_record_new(void)
{
    sv_record *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->arena = calloc(1, sizeof *r->arena);
    if (!r->arena) {
        free(r);
        return NULL;
    }
    return r;
}

void sv_record_free(sv_record *r)
{
    if (!r)
        return;
    struct sv_record_arena *a = r->arena;
    for (sv_arena_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    sv_buf_free(&a->scratch);
    sv_buf_free(&a->extra);
    sv_buf_free(&a->keys);
    sv_buf_free(&a->tmp);
    free(a);
    free(r);
}

int sv_record_reset(sv_record *r, const sv_schema *s)
{
    struct sv_record_arena *a = r->arena;
    arena_clear(a);
    memset(r, 0, sizeof *r);
    r->arena = a;
    size_t need = sizeof(float *) * (s->n_named + s->n_multi) + sizeof(uint32_t) * s->n_multi +
                  sizeof(sv_prop_value) * s->n_props;
    unsigned char *m = sv_arena_alloc(a, need);
    if (!m)
        return SV_ENOMEM;
    memset(m, 0, need);
    r->props = (sv_prop_value *)m;
    m += sizeof(sv_prop_value) * s->n_props;
    r->named = (const float **)m;
    m += sizeof(float *) * s->n_named;
    r->multi = (const float **)m;
    m += sizeof(float *) * s->n_multi;
    r->multi_rows = (const uint32_t *)m;
    return 0;
}

/* ---- encode ---- */

enum { T_END = 0, T_VECTOR = 1, T_NAMED = 2, T_MULTI = 3, T_PROP = 4, T_EXTRA = 5 };

static inline uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

static size_t prop_size(const sv_prop_def *d, const sv_prop_value *v)
{
    size_t n = 1 + 10 + d->name_len + 1 + 10;
    switch (d->type) {
    case SV_TYPE_TEXT:
    case SV_TYPE_OBJECT:
        for (uint32_t i = 0; i < v->count; i++)
            n += 10 + v->str[i].len;
        return n;
    case SV_TYPE_INT:
    case SV_TYPE_DATE: return n + (size_t)v->count * 10;
    case SV_TYPE_NUMBER: return n + (size_t)v->count * 8;
    case SV_TYPE_BOOLEAN: return n + v->count;
    case SV_TYPE_UUID: return n + (size_t)v->count * 16;
    }
    return n;
}

int sv_record_encode(const sv_record *r, const sv_schema *s, sv_buf *out, sv_err *err)
{
    /* One reservation for the worst case, then raw writes. */
    size_t need = 1 + 20 + 1;
    if (r->vector)
        need += 11 + (size_t)s->vector_dim * 4;
    for (uint32_t i = 0; i < s->n_named; i++)
        if (r->named[i])
            need += 1 + 10 + s->named[i].name_len + 10 + (size_t)s->named[i].dim * 4;
    for (uint32_t i = 0; i < s->n_multi; i++)
        if (r->multi[i])
            need += 1 + 10 + s->multi[i].name_len + 20 + (size_t)r->multi_rows[i] * s->multi[i].dim * 4;
    for (uint32_t i = 0; i < s->n_props; i++)
        if (r->props[i].present)
            need += prop_size(&s->props[i], &r->props[i]);
    need += 11 + r->extra_json.len;
    if (sv_buf_reserve(out, need))
        return sv_fail(err, SV_ENOMEM, "out of memory encoding a record");
    uint8_t *p = out->data + out->len;
    *p++ = SV_RECORD_FORMAT_VERSION;
    p = put_varint(p, zigzag(r->creation_time));
    p = put_varint(p, zigzag(r->update_time));
    if (r->vector) {
        *p++ = T_VECTOR;
        p = put_varint(p, s->vector_dim);
        memcpy(p, r->vector, (size_t)s->vector_dim * 4);
        p += (size_t)s->vector_dim * 4;
    }
    for (uint32_t i = 0; i < s->n_named; i++) {
        if (!r->named[i])
            continue;
        size_t nl = s->named[i].name_len;
        *p++ = T_NAMED;
        p = put_varint(p, nl);
        memcpy(p, s->named[i].name, nl);
        p += nl;
        p = put_varint(p, s->named[i].dim);
        memcpy(p, r->named[i], (size_t)s->named[i].dim * 4);
        p += (size_t)s->named[i].dim * 4;
    }
    for (uint32_t i = 0; i < s->n_multi; i++) {
        if (!r->multi[i])
            continue;
        size_t nl = s->multi[i].name_len;
        *p++ = T_MULTI;
        p = put_varint(p, nl);
        memcpy(p, s->multi[i].name, nl);
        p += nl;
        p = put_varint(p, s->multi[i].dim);
        p = put_varint(p, r->multi_rows[i]);
        size_t nb = (size_t)r->multi_rows[i] * s->multi[i].dim * 4;
        memcpy(p, r->multi[i], nb);
        p += nb;
    }
    for (uint32_t i = 0; i < s->n_props; i++) {
        const sv_prop_value *v = &r->props[i];
        const sv_prop_def *d = &s->props[i];
        if (!v->present)
            continue;
        size_t nl = d->name_len;
        *p++ = T_PROP;
        p = put_varint(p, nl);
        memcpy(p, d->name, nl);
        p += nl;
        *p++ = (uint8_t)(d->type | (d->array ? 0x80 : 0));
        uint32_t cnt = d->array ? v->count : 1;
        if (d->array)
            p = put_varint(p, cnt);
        switch (d->type) {
        case SV_TYPE_TEXT:
        case SV_TYPE_OBJECT:
            for (uint32_t j = 0; j < cnt; j++) {
                p = put_varint(p, v->str[j].len);
                memcpy(p, v->str[j].ptr, v->str[j].len);
                p += v->str[j].len;
            }
            break;
        case SV_TYPE_INT:
        case SV_TYPE_DATE:
            for (uint32_t j = 0; j < cnt; j++)
                p = put_varint(p, zigzag(v->i64[j]));
            break;
        case SV_TYPE_NUMBER:
            memcpy(p, v->f64, (size_t)cnt * 8);
            p += (size_t)cnt * 8;
            break;
        case SV_TYPE_BOOLEAN:
            for (uint32_t j = 0; j < cnt; j++)
                *p++ = v->b[j] ? 1 : 0;
            break;
        case SV_TYPE_UUID:
            memcpy(p, v->uuid, (size_t)cnt * 16);
            p += (size_t)cnt * 16;
            break;
        }
    }
    if (r->extra_json.len) {
        *p++ = T_EXTRA;
        p = put_varint(p, r->extra_json.len);
        memcpy(p, r->extra_json.ptr, r->extra_json.len);
        p += r->extra_json.len;
    }
    *p++ = T_END;
    out->len = (size_t)(p - out->data);
    return 0;
}

/* ---- decode ---- */

typedef struct dec {
    const uint8_t *p, *end, *base;
    sv_err *err;
} dec;

static int corrupt(dec *D, const char *what)
{
    sv_fail(D->err, SV_ECORRUPT, "corrupt record: %s at byte %zu", what, (size_t)(D->p - D->base));
    return SV_ECORRUPT; /* a constant, so the compiler sees callers' outputs are set on 0 */
}

static inline int get_varint(dec *D, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (D->p >= D->end)
            return corrupt(D, "truncated varint");
        uint8_t b = *D->p++;
        if (shift == 63 && b > 1)
            return corrupt(D, "varint overflow");
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return corrupt(D, "varint too long");
}

static inline int get_u32(dec *D, uint32_t *v, const char *what)
{
    uint64_t x;
    int rc = get_varint(D, &x);
    if (rc)
        return rc;
    if (x > UINT32_MAX)
        return corrupt(D, what);
    *v = (uint32_t)x;
    return 0;
}

static int get_bytes(dec *D, size_t n, const uint8_t **out)
{
    if ((size_t)(D->end - D->p) < n)
        return corrupt(D, "truncated");
    *out = D->p;
    D->p += n;
    return 0;
}

static int get_name(dec *D, const char **name, uint32_t *len)
{
    int rc = get_u32(D, len, "name too long");
    if (rc)
        return rc;
    return get_bytes(D, *len, (const uint8_t **)name);
}

static bool floats_finite(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, p + 4 * i, 4);
        if ((b & 0x7F800000u) == 0x7F800000u)
            return false;
    }
    return true;
}

static int copy_floats(dec *D, struct sv_record_arena *a, size_t n, const float **out)
{
    const uint8_t *src;
    if (n > (size_t)(D->end - D->p) / 4)
        return corrupt(D, "truncated vector");
    int rc = get_bytes(D, n * 4, &src);
    if (rc)
        return rc;
    if (!floats_finite(src, n))
        return corrupt(D, "non-finite float in vector");
    float *f = sv_arena_alloc(a, n * 4);
    if (!f)
        return sv_fail(D->err, SV_ENOMEM, "out of memory"), SV_ENOMEM;
    memcpy(f, src, n * 4);
    *out = f;
    return 0;
}

static int decode_str(dec *D, struct sv_record_arena *a, sv_str *out, bool json)
{
    uint32_t len;
    const uint8_t *src;
    int rc = get_u32(D, &len, "string too long");
    if (rc || (rc = get_bytes(D, len, &src)))
        return rc;
    if (json) {
        if (len == 0 || src[0] != '{' || !sv_json_valid((const char *)src, len))
            return corrupt(D, "invalid JSON object");
    } else if (!sv_utf8_valid((const char *)src, len)) {
        return corrupt(D, "invalid UTF-8 in text");
    }
    char *d = sv_arena_alloc(a, (size_t)len + 1);
    if (!d)
        return sv_fail(D->err, SV_ENOMEM, "out of memory"), SV_ENOMEM;
    memcpy(d, src, len);
    d[len] = '\0';
    out->ptr = d;
    out->len = len;
    return 0;
}

static int decode_prop(dec *D, sv_record *r, const sv_prop_def *d, sv_prop_value *v)
{
    struct sv_record_arena *a = r->arena;
    const uint8_t *tb;
    int rc = get_bytes(D, 1, &tb);
    if (rc)
        return rc;
    if ((tb[0] & 0x7F) != d->type || ((tb[0] & 0x80) != 0) != d->array)
        return corrupt(D, "property type differs from the schema");
    uint32_t cnt = 1;
    if (d->array && (rc = get_u32(D, &cnt, "array too long")))
        return rc;
    /* Every element takes at least one byte: bounds the allocation. */
    if (cnt > (size_t)(D->end - D->p))
        return corrupt(D, "truncated array");
    switch (d->type) {
    case SV_TYPE_TEXT:
    case SV_TYPE_OBJECT: {
        sv_str *s = sv_arena_alloc(a, (size_t)cnt * sizeof(sv_str));
        if (!s)
            return sv_fail(D->err, SV_ENOMEM, "out of memory"), SV_ENOMEM;
        for (uint32_t j = 0; j < cnt; j++)
            if ((rc = decode_str(D, a, &s[j], d->type == SV_TYPE_OBJECT)))
                return rc;
        v->str = s;
        break;
    }
    case SV_TYPE_INT:
    case SV_TYPE_DATE: {
        int64_t *x = sv_arena_alloc(a, (size_t)cnt * 8);
        if (!x)
            return sv_fail(D->err, SV_ENOMEM, "out of memory"), SV_ENOMEM;
        for (uint32_t j = 0; j < cnt; j++) {
            uint64_t u;
            if ((rc = get_varint(D, &u)))
                return rc;
            x[j] = unzigzag(u);
            if (d->type == SV_TYPE_DATE && (x[j] < SV_DATE_MIN_MS || x[j] > SV_DATE_MAX_MS))
                return corrupt(D, "date out of range");
        }
        v->i64 = x;
        break;
    }
    case SV_TYPE_NUMBER: {
        const uint8_t *src;
        if (cnt > (size_t)(D->end - D->p) / 8 || (rc = get_bytes(D, (size_t)cnt * 8, &src)))
            return corrupt(D, "truncated numbers");
        double *x = sv_arena_alloc(a, (size_t)cnt * 8);
        if (!x)
            return sv_fail(D->err, SV_ENOMEM, "out of memory"), SV_ENOMEM;
        memcpy(x, src, (size_t)cnt * 8);
        for (uint32_t j = 0; j < cnt; j++)
            if (!isfinite(x[j]))
                return corrupt(D, "non-finite number");
        v->f64 = x;
        break;
    }
    case SV_TYPE_BOOLEAN: {
        const uint8_t *src;
        if ((rc = get_bytes(D, cnt, &src)))
            return rc;
        uint8_t *x = sv_arena_alloc(a, cnt);
        if (!x)
            return sv_fail(D->err, SV_ENOMEM, "out of memory"), SV_ENOMEM;
        for (uint32_t j = 0; j < cnt; j++) {
            if (src[j] > 1)
                return corrupt(D, "boolean not 0 or 1");
            x[j] = src[j];
        }
        v->b = x;
        break;
    }
    case SV_TYPE_UUID: {
        const uint8_t *src;
        if (cnt > (size_t)(D->end - D->p) / 16 || (rc = get_bytes(D, (size_t)cnt * 16, &src)))
            return corrupt(D, "truncated uuids");
        sv_uuid *x = sv_arena_alloc(a, (size_t)cnt * 16);
        if (!x)
            return sv_fail(D->err, SV_ENOMEM, "out of memory"), SV_ENOMEM;
        memcpy(x, src, (size_t)cnt * 16);
        v->uuid = x;
        break;
    }
    default: return corrupt(D, "unknown property type");
    }
    v->count = cnt;
    v->present = true;
    return 0;
}

int sv_record_decode(sv_record *r, const sv_schema *s, const void *data, size_t len, sv_err *err)
{
    sv_uuid id = r->id;
    int rc = sv_record_reset(r, s);
    if (rc)
        return sv_fail(err, rc, "out of memory");
    r->id = id;
    r->has_id = true;
    dec D = {.p = data, .end = (const uint8_t *)data + len, .base = data, .err = err};
    if (len == 0)
        return corrupt(&D, "empty value");
    if (D.p[0] != SV_RECORD_FORMAT_VERSION)
        return sv_fail(err, SV_ECORRUPT, "corrupt record: unknown format version %u (this build reads %d)", D.p[0],
                       SV_RECORD_FORMAT_VERSION);
    D.p++;
    uint64_t u;
    if ((rc = get_varint(&D, &u)))
        return rc;
    r->creation_time = unzigzag(u);
    if ((rc = get_varint(&D, &u)))
        return rc;
    r->update_time = unzigzag(u);
    struct sv_record_arena *a = r->arena;
    uint32_t *rows_arr = (uint32_t *)r->multi_rows;
    for (;;) {
        const uint8_t *tag;
        if ((rc = get_bytes(&D, 1, &tag)))
            return rc;
        switch (tag[0]) {
        case T_END:
            if (D.p != D.end)
                return corrupt(&D, "trailing bytes");
            return 0;
        case T_VECTOR: {
            uint32_t dim;
            if ((rc = get_u32(&D, &dim, "bad dimension")))
                return rc;
            if (r->vector)
                return corrupt(&D, "vector twice");
            if (dim != s->vector_dim || dim == 0)
                return corrupt(&D, "vector dimension differs from the schema");
            if ((rc = copy_floats(&D, a, dim, &r->vector)))
                return rc;
            break;
        }
        case T_NAMED:
        case T_MULTI: {
            const char *name;
            uint32_t nl, dim, rows = 1;
            if ((rc = get_name(&D, &name, &nl)) || (rc = get_u32(&D, &dim, "bad dimension")))
                return rc;
            bool multi = tag[0] == T_MULTI;
            if (multi && (rc = get_u32(&D, &rows, "bad row count")))
                return rc;
            int idx = multi ? sv_schema_multi_index(s, name, nl) : sv_schema_named_index(s, name, nl);
            if (idx < 0)
                return corrupt(&D, "vector name not in the schema");
            const sv_vec_def *vd = multi ? &s->multi[idx] : &s->named[idx];
            const float **slot = multi ? &r->multi[idx] : &r->named[idx];
            if (*slot)
                return corrupt(&D, "vector twice");
            if (dim != vd->dim || rows == 0)
                return corrupt(&D, "vector dimension differs from the schema");
            if ((size_t)rows > (size_t)(D.end - D.p) / ((size_t)dim * 4))
                return corrupt(&D, "truncated vector");
            if ((rc = copy_floats(&D, a, (size_t)rows * dim, slot)))
                return rc;
            if (multi)
                rows_arr[idx] = rows;
            break;
        }
        case T_PROP: {
            const char *name;
            uint32_t nl;
            if ((rc = get_name(&D, &name, &nl)))
                return rc;
            int idx = sv_schema_prop_index(s, name, nl);
            if (idx < 0)
                return corrupt(&D, "property not in the schema");
            if (r->props[idx].present)
                return corrupt(&D, "property twice");
            if ((rc = decode_prop(&D, r, &s->props[idx], &r->props[idx])))
                return rc;
            break;
        }
        case T_EXTRA:
            if (r->extra_json.len)
                return corrupt(&D, "extra properties twice");
            if ((rc = decode_str(&D, a, &r->extra_json, true)))
                return rc;
            break;
        default: D.p--; return corrupt(&D, "unknown section tag");
        }
    }
}

/* ---- JSON output ---- */

static int put_floats(sv_buf *out, const float *f, size_t n)
{
    if (n > (SIZE_MAX - 2) / 24 || sv_buf_reserve(out, n * 24 + 2)) /* longest float: "-100000000000000000000," */
        return SV_ENOMEM;
    char *o = (char *)out->data + out->len;
    *o++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *o++ = ',';
        o += sv_format_float(f[i], o);
    }
    *o++ = ']';
    out->len = (size_t)(o - (char *)out->data);
    return 0;
}

static int put_lit(sv_buf *out, const char *s) { return sv_buf_append(out, s, strlen(s)); }

static int put_value(sv_buf *out, const sv_prop_def *d, const sv_prop_value *v, uint32_t j)
{
    char tmp[40];
    switch (d->type) {
    case SV_TYPE_TEXT: return sv_json_put_str(out, v->str[j].ptr, v->str[j].len);
    case SV_TYPE_OBJECT: return sv_buf_append(out, v->str[j].ptr, v->str[j].len);
    case SV_TYPE_INT: return sv_buf_append(out, tmp, sv_format_i64(v->i64[j], tmp));
    case SV_TYPE_NUMBER: return sv_buf_append(out, tmp, sv_format_double(v->f64[j], tmp));
    case SV_TYPE_BOOLEAN: return put_lit(out, v->b[j] ? "true" : "false");
    case SV_TYPE_DATE:
        tmp[0] = '"';
        sv_format_date_ms(v->i64[j], tmp + 1);
        tmp[25] = '"';
        return sv_buf_append(out, tmp, 26);
    case SV_TYPE_UUID:
        tmp[0] = '"';
        sv_uuid_format(&v->uuid[j], tmp + 1);
        tmp[37] = '"';
        return sv_buf_append(out, tmp, 38);
    }
    return SV_EINTERNAL;
}

int sv_record_properties_json(const sv_record *r, const sv_schema *s, sv_buf *out)
{
    int rc = 0;
    bool first = true;
    rc |= sv_buf_putc(out, '{');
    for (uint32_t i = 0; i < s->n_props && !rc; i++) {
        const sv_prop_value *v = &r->props[i];
        const sv_prop_def *d = &s->props[i];
        if (!v->present)
            continue;
        if (!first)
            rc |= sv_buf_putc(out, ',');
        first = false;
        rc |= sv_json_put_str(out, d->name, strlen(d->name));
        rc |= sv_buf_putc(out, ':');
        if (d->array) {
            rc |= sv_buf_putc(out, '[');
            for (uint32_t j = 0; j < v->count && !rc; j++) {
                if (j)
                    rc |= sv_buf_putc(out, ',');
                rc |= put_value(out, d, v, j);
            }
            rc |= sv_buf_putc(out, ']');
        } else {
            rc |= put_value(out, d, v, 0);
        }
    }
    if (!rc && r->extra_json.len > 2) {
        /* extra_json is our own compact object: {"k":v,...}. A key that the
         * schema declares (added after this record was written) is dropped
         * when the declared property is present, so keys stay unique. */
        const char *p = r->extra_json.ptr + 1, *end = r->extra_json.ptr + r->extra_json.len - 1;
        bool any_declared = false;
        for (uint32_t i = 0; i < s->n_props; i++)
            any_declared |= r->props[i].present;
        if (!any_declared) {
            if (!first)
                rc |= sv_buf_putc(out, ',');
            rc |= sv_buf_append(out, p, (size_t)(end - p));
        } else {
            while (p < end && !rc) {
                /* member: "key":value, with value spanning to the next
                 * top-level ','. */
                const char *m = p;
                int depth = 0;
                bool in_str = false, esc = false;
                const char *key_end = NULL;
                for (; p < end; p++) {
                    char c = *p;
                    if (in_str) {
                        if (esc)
                            esc = false;
                        else if (c == '\\')
                            esc = true;
                        else if (c == '"') {
                            in_str = false;
                            if (!key_end && depth == 0)
                                key_end = p;
                        }
                        continue;
                    }
                    if (c == '"')
                        in_str = true;
                    else if (c == '{' || c == '[')
                        depth++;
                    else if (c == '}' || c == ']')
                        depth--;
                    else if (c == ',' && depth == 0)
                        break;
                }
                bool skip = false;
                if (key_end && key_end > m) {
                    /* Declared names need no escaping, so the raw key compares. */
                    int idx = sv_schema_prop_index(s, m + 1, (size_t)(key_end - m - 1));
                    skip = idx >= 0 && r->props[idx].present;
                }
                if (!skip) {
                    if (!first)
                        rc |= sv_buf_putc(out, ',');
                    first = false;
                    rc |= sv_buf_append(out, m, (size_t)(p - m));
                }
                if (p < end)
                    p++; /* the ',' */
            }
        }
    }
    rc |= sv_buf_putc(out, '}');
    return rc ? SV_ENOMEM : 0;
}

static void sorted_order(const sv_vec_def *defs, uint32_t n, uint32_t *ord)
{
    for (uint32_t i = 0; i < n; i++) {
        uint32_t j = i;
        while (j > 0 && strcmp(defs[ord[j - 1]].name, defs[i].name) > 0) {
            ord[j] = ord[j - 1];
            j--;
        }
        ord[j] = i;
    }
}

static int vec_map_json(const sv_record *r, const sv_schema *s, sv_buf *out, bool multi)
{
    const sv_vec_def *defs = multi ? s->multi : s->named;
    uint32_t n = multi ? s->n_multi : s->n_named;
    const float *const *vals = multi ? r->multi : r->named;
    bool any = false;
    for (uint32_t i = 0; i < n; i++)
        any |= vals[i] != NULL;
    if (!any)
        return 0;
    uint32_t stack_ord[32];
    uint32_t *ord = n <= 32 ? stack_ord : malloc(n * sizeof *ord);
    if (!ord)
        return SV_ENOMEM;
    sorted_order(defs, n, ord);
    int rc = sv_buf_putc(out, '{');
    bool first = true;
    for (uint32_t k = 0; k < n && !rc; k++) {
        uint32_t i = ord[k];
        if (!vals[i])
            continue;
        if (!first)
            rc |= sv_buf_putc(out, ',');
        first = false;
        rc |= sv_json_put_str(out, defs[i].name, strlen(defs[i].name));
        rc |= sv_buf_putc(out, ':');
        if (!multi) {
            rc |= put_floats(out, vals[i], defs[i].dim);
        } else {
            rc |= sv_buf_putc(out, '[');
            for (uint32_t row = 0; row < r->multi_rows[i] && !rc; row++) {
                if (row)
                    rc |= sv_buf_putc(out, ',');
                rc |= put_floats(out, vals[i] + (size_t)row * defs[i].dim, defs[i].dim);
            }
            rc |= sv_buf_putc(out, ']');
        }
    }
    rc |= sv_buf_putc(out, '}');
    if (ord != stack_ord)
        free(ord);
    return rc ? SV_ENOMEM : 0;
}

int sv_record_named_json(const sv_record *r, const sv_schema *s, sv_buf *out) { return vec_map_json(r, s, out, false); }
int sv_record_multi_json(const sv_record *r, const sv_schema *s, sv_buf *out) { return vec_map_json(r, s, out, true); }

int sv_record_to_json(const sv_record *r, const sv_schema *s, const char *collection, const char *tenant,
                      sv_buf *out)
{
    int rc = 0;
    char tmp[48];
    rc |= put_lit(out, "{\"id\":\"");
    sv_uuid_format(&r->id, tmp);
    rc |= sv_buf_append(out, tmp, 36);
    rc |= put_lit(out, "\",\"collection\":");
    rc |= sv_json_put_str(out, collection ? collection : s->name, strlen(collection ? collection : s->name));
    if (tenant && *tenant) {
        rc |= put_lit(out, ",\"tenant\":");
        rc |= sv_json_put_str(out, tenant, strlen(tenant));
    }
    rc |= put_lit(out, ",\"creationTime\":");
    rc |= sv_buf_append(out, tmp, sv_format_i64(r->creation_time, tmp));
    rc |= put_lit(out, ",\"updateTime\":");
    rc |= sv_buf_append(out, tmp, sv_format_i64(r->update_time, tmp));
    if (r->vector) {
        rc |= put_lit(out, ",\"vector\":");
        rc |= put_floats(out, r->vector, s->vector_dim);
    }
    size_t mark = out->len;
    rc |= put_lit(out, ",\"namedVectors\":");
    size_t before = out->len;
    rc |= sv_record_named_json(r, s, out);
    if (out->len == before)
        out->len = mark;
    mark = out->len;
    rc |= put_lit(out, ",\"multiVectors\":");
    before = out->len;
    rc |= sv_record_multi_json(r, s, out);
    if (out->len == before)
        out->len = mark;
    rc |= put_lit(out, ",\"properties\":");
    rc |= sv_record_properties_json(r, s, out);
    rc |= sv_buf_putc(out, '}');
    return rc ? SV_ENOMEM : 0;
}

size_t sv_prop_elem_size(sv_prop_type t)
{
    switch (t) {
    case SV_TYPE_INT:
    case SV_TYPE_DATE: return sizeof(int64_t);
    case SV_TYPE_NUMBER: return sizeof(double);
    case SV_TYPE_BOOLEAN: return 1;
    case SV_TYPE_UUID: return sizeof(sv_uuid);
    default: return sizeof(sv_str);
    }
}

void sv_prop_value_point(sv_prop_value *v, sv_prop_type t, void *p)
{
    switch (t) {
    case SV_TYPE_INT:
    case SV_TYPE_DATE: v->i64 = p; break;
    case SV_TYPE_NUMBER: v->f64 = p; break;
    case SV_TYPE_BOOLEAN: v->b = p; break;
    case SV_TYPE_UUID: v->uuid = p; break;
    default: v->str = p; break;
    }
}
