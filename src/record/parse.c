/* The import hot path: one pass over an object's JSON, straight into the
 * record (no DOM). Every byte is bounds-checked against `end`; the text need
 * not be NUL-terminated. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record_internal.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

size_t sv_utf8_seq_len(const unsigned char *s, size_t avail);

typedef struct rd {
    const char *p, *end, *base;
    sv_record *r;
    const sv_schema *s;
    struct sv_record_arena *a;
    sv_err *err;
} rd;

/* Characters that stop the fast string scan: controls, '"', '\\' and
 * non-ASCII (validated as UTF-8 on the slow path). Constant tables, so no
 * initialization races between threads. */
static const unsigned char str_stop[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1,
};
static const unsigned char ws_tab[256] = {[' '] = 1, ['\t'] = 1, ['\n'] = 1, ['\r'] = 1};

/* First byte at or after p that ends the fast string scan (see str_stop). */
static inline const char *find_str_stop(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'), sp = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* signed compare: bytes >= 0x80 are negative, so < 0x20 too */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)), _mm_cmplt_epi8(v, sp));
        int mask = _mm_movemask_epi8(m);
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < end && !str_stop[(unsigned char)*p])
        p++;
    return p;
}

static inline void skip_ws(rd *R)
{
    while (R->p < R->end && ws_tab[(unsigned char)*R->p])
        R->p++;
}

static inline size_t off(const rd *R) { return (size_t)(R->p - R->base); }

static const char *kind_of(const rd *R)
{
    if (R->p >= R->end)
        return "end of input";
    switch (*R->p) {
    case '"': return "text";
    case '{': return "object";
    case '[': return "array";
    case 't':
    case 'f': return "boolean";
    case 'n': return "null";
    case '-': return "number";
    default: return (*R->p >= '0' && *R->p <= '9') ? "number" : "invalid JSON";
    }
}

static int syntax(rd *R, const char *what)
{
    if (R->p >= R->end)
        return sv_fail(R->err, SV_EPARSE, "invalid JSON: unexpected end of input, expected %s (byte %zu)", what,
                       off(R));
    unsigned char c = (unsigned char)*R->p;
    if (c >= 0x20 && c < 0x7f)
        return sv_fail(R->err, SV_EPARSE, "invalid JSON: expected %s at byte %zu, found '%c'", what, off(R), c);
    return sv_fail(R->err, SV_EPARSE, "invalid JSON: expected %s at byte %zu, found byte 0x%02x", what, off(R), c);
}

static inline int expect(rd *R, char c, const char *what)
{
    skip_ws(R);
    if (R->p < R->end && *R->p == c) {
        R->p++;
        return 0;
    }
    return syntax(R, what);
}

static int literal(rd *R, const char *lit, size_t n)
{
    if ((size_t)(R->end - R->p) < n || memcmp(R->p, lit, n) != 0)
        return syntax(R, "a JSON value");
    R->p += n;
    return 0;
}

static int hex4(const char *s, uint32_t *v)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return -1;
        x = x << 4 | d;
    }
    *v = x;
    return 0;
}

/* Decodes the string body [s, e) (escapes, UTF-8 check) into out, which has
 * room for e - s bytes. Returns the decoded length or -1 with R->p set to the
 * offending byte. */
static long decode_string(rd *R, const char *s, const char *e, char *out)
{
    char *o = out;
    const char *p = s;
    while (p < e) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\') {
            if (e - p < 2)
                goto bad;
            char x = p[1];
            p += 2;
            switch (x) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '/': *o++ = '/'; break;
            case 'b': *o++ = '\b'; break;
            case 'f': *o++ = '\f'; break;
            case 'n': *o++ = '\n'; break;
            case 'r': *o++ = '\r'; break;
            case 't': *o++ = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (e - p < 4 || hex4(p, &cp)) {
                    p -= 2;
                    R->p = p;
                    sv_fail(R->err, SV_EPARSE, "invalid JSON: bad \\u escape at byte %zu", off(R));
                    return -1;
                }
                p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (e - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                        R->p = p - 6;
                        sv_fail(R->err, SV_EPARSE,
                                "invalid JSON: unpaired UTF-16 surrogate \\u%04X at byte %zu (a high surrogate must "
                                "be followed by a \\uDC00-\\uDFFF escape)",
                                (unsigned)cp, off(R));
                        return -1;
                    }
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    R->p = p - 6;
                    sv_fail(R->err, SV_EPARSE, "invalid JSON: unpaired UTF-16 surrogate \\u%04X at byte %zu",
                            (unsigned)cp, off(R));
                    return -1;
                }
                if (cp < 0x80) {
                    *o++ = (char)cp;
                } else if (cp < 0x800) {
                    *o++ = (char)(0xC0 | cp >> 6);
                    *o++ = (char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    *o++ = (char)(0xE0 | cp >> 12);
                    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                    *o++ = (char)(0x80 | (cp & 0x3F));
                } else {
                    *o++ = (char)(0xF0 | cp >> 18);
                    *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                    *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                    *o++ = (char)(0x80 | (cp & 0x3F));
                }
                break;
            }
            default:
                p -= 2;
                goto bad;
            }
        } else if (c < 0x20) {
            R->p = p;
            sv_fail(R->err, SV_EPARSE,
                    "invalid JSON: control character 0x%02x in a string at byte %zu (escape it, e.g. \\n)", c,
                    off(R));
            return -1;
        } else if (c < 0x80) {
            *o++ = (char)c;
            p++;
        } else {
            size_t n = sv_utf8_seq_len((const unsigned char *)p, (size_t)(e - p));
            if (!n) {
                R->p = p;
                sv_fail(R->err, SV_EPARSE, "invalid UTF-8 in a string at byte %zu", off(R));
                return -1;
            }
            memcpy(o, p, n);
            o += n;
            p += n;
        }
    }
    return (long)(o - out);
bad:
    R->p = p;
    sv_fail(R->err, SV_EPARSE, "invalid JSON: bad escape sequence in a string at byte %zu", off(R));
    return -1;
}

/* Finds the closing quote of the string whose body starts at s; NULL if the
 * input ends first. */
static const char *string_end(const char *s, const char *end)
{
    const char *p = s;
    while (p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return NULL;
        size_t bs = 0;
        while (q - bs > s && q[-1 - (long)bs] == '\\')
            bs++;
        if ((bs & 1) == 0)
            return q;
        p = q + 1;
    }
    return NULL;
}

/* Reads a string at R->p (which must be '"'). When copy is false and the
 * string has no escapes, out points into the input; otherwise into the
 * arena. */
static int read_string(rd *R, sv_str *out, bool copy)
{
    if (R->p >= R->end || *R->p != '"')
        return syntax(R, "a string");
    const char *s = R->p + 1, *q = find_str_stop(s, R->end);
    if (q < R->end && *q == '"') {
        size_t n = (size_t)(q - s);
        if (n > UINT32_MAX)
            return sv_fail(R->err, SV_ETOOBIG, "string too long at byte %zu", off(R));
        if (copy) {
            char *d = sv_arena_alloc(R->a, n + 1);
            if (!d)
                return sv_fail(R->err, SV_ENOMEM, "out of memory");
            memcpy(d, s, n);
            d[n] = '\0';
            out->ptr = d;
        } else {
            out->ptr = s;
        }
        out->len = (uint32_t)n;
        R->p = q + 1;
        return 0;
    }
    const char *e = string_end(q, R->end);
    if (!e) {
        R->p = R->end;
        return sv_fail(R->err, SV_EPARSE, "invalid JSON: unterminated string starting at byte %zu",
                       (size_t)(s - 1 - R->base));
    }
    if ((size_t)(e - s) > UINT32_MAX)
        return sv_fail(R->err, SV_ETOOBIG, "string too long at byte %zu", off(R));
    char *d = sv_arena_alloc(R->a, (size_t)(e - s) + 1);
    if (!d)
        return sv_fail(R->err, SV_ENOMEM, "out of memory");
    long n = decode_string(R, s, e, d);
    if (n < 0)
        return SV_EPARSE;
    d[n] = '\0';
    out->ptr = d;
    out->len = (uint32_t)n;
    R->p = e + 1;
    return 0;
}

/* ---- free JSON (object properties, undeclared properties) ---- */

static int compact_value(rd *R, sv_buf *out, int depth);

/* Copies a string in canonical escaping. */
static int compact_string(rd *R, sv_buf *out)
{
    const char *s = R->p + 1, *q = find_str_stop(s, R->end);
    if (q < R->end && *q == '"') {
        if (sv_buf_append(out, s - 1, (size_t)(q - s) + 2))
            return sv_fail(R->err, SV_ENOMEM, "out of memory");
        R->p = q + 1;
        return 0;
    }
    const char *e = string_end(q, R->end);
    if (!e) {
        R->p = R->end;
        return sv_fail(R->err, SV_EPARSE, "invalid JSON: unterminated string starting at byte %zu",
                       (size_t)(s - 1 - R->base));
    }
    sv_buf *tmp = &R->a->tmp;
    tmp->len = 0;
    if (sv_buf_reserve(tmp, (size_t)(e - s) + 1))
        return sv_fail(R->err, SV_ENOMEM, "out of memory");
    long n = decode_string(R, s, e, (char *)tmp->data);
    if (n < 0)
        return SV_EPARSE;
    if (sv_json_put_str(out, (const char *)tmp->data, (size_t)n))
        return sv_fail(R->err, SV_ENOMEM, "out of memory");
    R->p = e + 1;
    return 0;
}

static int compact_value(rd *R, sv_buf *out, int depth)
{
    skip_ws(R);
    if (R->p >= R->end)
        return syntax(R, "a JSON value");
    int rc;
    const char *lit;
    switch (*R->p) {
    case '{':
    case '[': {
        if (depth >= SV_MAX_JSON_DEPTH)
            return sv_fail(R->err, SV_EPARSE, "JSON nested deeper than %d levels at byte %zu", SV_MAX_JSON_DEPTH,
                           off(R));
        bool obj = *R->p == '{';
        char close = obj ? '}' : ']';
        R->p++;
        if (sv_buf_putc(out, (uint8_t)(obj ? '{' : '[')))
            return sv_fail(R->err, SV_ENOMEM, "out of memory");
        skip_ws(R);
        if (R->p < R->end && *R->p == close) {
            R->p++;
            return sv_buf_putc(out, (uint8_t)close) ? sv_fail(R->err, SV_ENOMEM, "out of memory") : 0;
        }
        for (;;) {
            if (obj) {
                skip_ws(R);
                if (R->p >= R->end || *R->p != '"')
                    return syntax(R, "a string key");
                if ((rc = compact_string(R, out)))
                    return rc;
                if ((rc = expect(R, ':', "':'")))
                    return rc;
                if (sv_buf_putc(out, ':'))
                    return sv_fail(R->err, SV_ENOMEM, "out of memory");
            }
            if ((rc = compact_value(R, out, depth + 1)))
                return rc;
            skip_ws(R);
            if (R->p < R->end && *R->p == ',') {
                R->p++;
                if (sv_buf_putc(out, ','))
                    return sv_fail(R->err, SV_ENOMEM, "out of memory");
                continue;
            }
            if (R->p < R->end && *R->p == close) {
                R->p++;
                return sv_buf_putc(out, (uint8_t)close) ? sv_fail(R->err, SV_ENOMEM, "out of memory") : 0;
            }
            return syntax(R, obj ? "',' or '}'" : "',' or ']'");
        }
    }
    case '"': return compact_string(R, out);
    case 't': rc = literal(R, "true", 4); lit = "true"; break;
    case 'f': rc = literal(R, "false", 5); lit = "false"; break;
    case 'n': rc = literal(R, "null", 4); lit = "null"; break;
    default: {
        sv_jnum n;
        const char *s = R->p;
        const char *e = sv_scan_number(R->p, R->end, &n);
        if (!e)
            return syntax(R, "a JSON value");
        R->p = e;
        return sv_buf_append(out, s, (size_t)(e - s)) ? sv_fail(R->err, SV_ENOMEM, "out of memory") : 0;
    }
    }
    if (rc)
        return rc;
    return sv_buf_append_str(out, lit) ? sv_fail(R->err, SV_ENOMEM, "out of memory") : 0;
}

/* Skips one JSON value, validating it. */
static int skip_value(rd *R)
{
    /* Reusing the compactor keeps one validator; the copy is cheap and rare
     * (only ignored fields are skipped). */
    sv_buf scratch = {0};
    int rc = compact_value(R, &scratch, 0);
    sv_buf_free(&scratch);
    return rc;
}

/* Skips one value without validating or copying it (route peeking only
 * needs to find the next key; the full parse validates later). Containers
 * are skipped by counting brackets outside strings. */
static const unsigned char skip_stop[256] = {['"'] = 1, ['{'] = 1, ['}'] = 1, ['['] = 1, [']'] = 1};

static inline const char *find_struct(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), open = _mm_set1_epi8('{'), close = _mm_set1_epi8('}');
    const __m128i x20 = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i lo = _mm_or_si128(v, x20); /* '[' -> '{', ']' -> '}' */
        __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_or_si128(_mm_cmpeq_epi8(lo, open), _mm_cmpeq_epi8(lo, close)));
        int mask = _mm_movemask_epi8(m);
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < end && !skip_stop[(unsigned char)*p])
        p++;
    return p;
}

static int skip_fast(rd *R)
{
    skip_ws(R);
    if (R->p >= R->end)
        return syntax(R, "a JSON value");
    char c = *R->p;
    if (c == '"') {
        const char *e = string_end(R->p + 1, R->end);
        if (!e) {
            R->p = R->end;
            return syntax(R, "the end of the string");
        }
        R->p = e + 1;
        return 0;
    }
    if (c != '{' && c != '[') {
        /* scalar: up to the next delimiter */
        const char *p = R->p;
        while (p < R->end && *p != ',' && *p != '}' && *p != ']' && !ws_tab[(unsigned char)*p])
            p++;
        if (p == R->p)
            return syntax(R, "a JSON value");
        R->p = p;
        return 0;
    }
    size_t depth = 0;
    const char *p = R->p;
    while (p < R->end) {
        p = find_struct(p, R->end);
        if (p >= R->end)
            break;
        c = *p;
        if (c == '"') {
            const char *e = string_end(p + 1, R->end);
            if (!e)
                break;
            p = e + 1;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (--depth == 0) {
            R->p = p + 1;
            return 0;
        }
        p++;
    }
    R->p = R->end;
    return syntax(R, "the end of an object or array");
}

bool sv_json_valid(const char *s, size_t len)
{
    struct sv_record_arena a;
    memset(&a, 0, sizeof a);
    rd R = {.p = s, .end = s + len, .base = s, .a = &a, .err = NULL};
    sv_buf out = {0};
    int rc = compact_value(&R, &out, 0);
    sv_buf_free(&out);
    sv_buf_free(&a.tmp);
    if (rc)
        return false;
    skip_ws(&R);
    return R.p == R.end;
}

/* ---- paths in messages ---- */

static void path_fmt(char *buf, size_t n, const char *sect, const char *name, long i, long j)
{
    int k = snprintf(buf, n, "%s%s%s", sect, name ? "." : "", name ? name : "");
    if (k < 0 || (size_t)k >= n)
        return;
    if (i >= 0)
        k += snprintf(buf + k, n - (size_t)k, "[%ld]", i);
    if (j >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, "[%ld]", j);
}

/* ---- vectors ---- */

static inline int read_float(rd *R, float *out, const char *sect, const char *name, long i, long j)
{
    double d;
    const char *e = sv_scan_double(R->p, R->end, &d);
    if (!e) {
        char path[200];
        path_fmt(path, sizeof path, sect, name, i, j);
        if (R->p < R->end && (*R->p == '-' || (*R->p >= '0' && *R->p <= '9')))
            return sv_fail(R->err, SV_EPARSE, "%s: invalid JSON number at byte %zu", path, off(R));
        return sv_fail(R->err, SV_EINVAL, "%s: expected a number, got %s", path, kind_of(R));
    }
    float f = (float)d;
    if (!isfinite(f)) {
        char path[200];
        path_fmt(path, sizeof path, sect, name, i, j);
        return sv_fail(R->err, SV_EINVAL, "%s: %.*s is outside the float32 range", path, (int)(e - R->p), R->p);
    }
    *out = f;
    R->p = e;
    return 0;
}

/* Reads [f, f, ...] of exactly dim floats into dst (dst may be NULL to
 * only count into *got when the array is empty). */
static int read_vec(rd *R, float *dst, uint32_t dim, uint32_t *got, const char *sect, const char *name, long row)
{
    int rc;
    if ((rc = expect(R, '[', "'['")))
        return rc;
    skip_ws(R);
    uint32_t i = 0;
    if (R->p < R->end && *R->p == ']') {
        R->p++;
        *got = 0;
        return 0;
    }
    float extra;
    for (;;) {
        skip_ws(R);
        /* Past dim the numbers are still read (and checked), only to say how
         * many were given: the array is bounded by the request body. */
        float *slot = i < dim ? &dst[i] : &extra;
        if ((rc = read_float(R, slot, sect, name, row >= 0 ? row : (long)i, row >= 0 ? (long)i : -1)))
            return rc;
        if (i == UINT32_MAX) {
            char path[200];
            path_fmt(path, sizeof path, sect, name, row, -1);
            return sv_fail(R->err, SV_EINVAL, "%s: expected %u dimensions, got more than %u", path, dim, i);
        }
        i++;
        /* Inline the common ", " separator. */
        if (R->p < R->end && *R->p == ',') {
            R->p++;
            continue;
        }
        skip_ws(R);
        if (R->p < R->end && *R->p == ',') {
            R->p++;
            continue;
        }
        if (R->p < R->end && *R->p == ']') {
            R->p++;
            break;
        }
        return syntax(R, "',' or ']'");
    }
    if (i != dim) {
        char path[200];
        path_fmt(path, sizeof path, sect, name, row, -1);
        return sv_fail(R->err, SV_EINVAL, "%s: expected %u dimensions, got %u", path, dim, i);
    }
    *got = i;
    return 0;
}

static int parse_default_vector(rd *R)
{
    skip_ws(R);
    if (R->p < R->end && *R->p == 'n')
        return literal(R, "null", 4);
    if (R->p >= R->end || *R->p != '[')
        return sv_fail(R->err, SV_EINVAL, "vector: expected an array of numbers, got %s", kind_of(R));
    uint32_t dim = R->s->vector_dim;
    if (dim == 0) {
        /* [] is harmless; anything else has nowhere to go. */
        const char *save = R->p;
        R->p++;
        skip_ws(R);
        if (R->p < R->end && *R->p == ']') {
            R->p++;
            return 0;
        }
        R->p = save;
        return sv_fail(R->err, SV_EINVAL, "vector: collection %s has no default vector (declare vectors.default.dim)",
                       R->s->name);
    }
    float *v = sv_arena_alloc(R->a, (size_t)dim * sizeof(float));
    if (!v)
        return sv_fail(R->err, SV_ENOMEM, "out of memory");
    uint32_t got;
    int rc = read_vec(R, v, dim, &got, "vector", NULL, -1);
    if (rc)
        return rc;
    R->r->vector = got ? v : NULL;
    return 0;
}

static int read_key(rd *R, sv_str *k)
{
    skip_ws(R);
    return read_string(R, k, false);
}

static int parse_named_vectors(rd *R)
{
    int rc;
    skip_ws(R);
    if (R->p < R->end && *R->p == 'n')
        return literal(R, "null", 4);
    if (R->p >= R->end || *R->p != '{')
        return sv_fail(R->err, SV_EINVAL, "namedVectors: expected an object {\"name\": [numbers]}, got %s",
                       kind_of(R));
    R->p++;
    skip_ws(R);
    if (R->p < R->end && *R->p == '}') {
        R->p++;
        return 0;
    }
    for (;;) {
        sv_str k;
        if ((rc = read_key(R, &k)) || (rc = expect(R, ':', "':'")))
            return rc;
        int idx = sv_schema_named_index(R->s, k.ptr, k.len);
        if (idx < 0)
            return sv_fail(R->err, SV_EINVAL, "namedVectors.%.*s: collection %s declares no such named vector",
                           (int)(k.len > 100 ? 100 : k.len), k.ptr, R->s->name);
        const sv_vec_def *vd = &R->s->named[idx];
        if (R->r->named[idx])
            return sv_fail(R->err, SV_EINVAL, "namedVectors.%s: given twice", vd->name);
        skip_ws(R);
        if (R->p < R->end && *R->p == 'n') {
            if ((rc = literal(R, "null", 4)))
                return rc;
        } else {
            if (R->p >= R->end || *R->p != '[')
                return sv_fail(R->err, SV_EINVAL, "namedVectors.%s: expected an array of %u numbers, got %s",
                               vd->name, vd->dim, kind_of(R));
            float *v = sv_arena_alloc(R->a, (size_t)vd->dim * sizeof(float));
            if (!v)
                return sv_fail(R->err, SV_ENOMEM, "out of memory");
            uint32_t got;
            if ((rc = read_vec(R, v, vd->dim, &got, "namedVectors", vd->name, -1)))
                return rc;
            R->r->named[idx] = got ? v : NULL;
        }
        skip_ws(R);
        if (R->p < R->end && *R->p == ',') {
            R->p++;
            continue;
        }
        return expect(R, '}', "',' or '}'");
    }
}

static int parse_multi_vectors(rd *R)
{
    int rc;
    skip_ws(R);
    if (R->p < R->end && *R->p == 'n')
        return literal(R, "null", 4);
    if (R->p >= R->end || *R->p != '{')
        return sv_fail(R->err, SV_EINVAL, "multiVectors: expected an object {\"name\": [[numbers], ...]}, got %s",
                       kind_of(R));
    R->p++;
    skip_ws(R);
    if (R->p < R->end && *R->p == '}') {
        R->p++;
        return 0;
    }
    uint32_t *rows_arr = (uint32_t *)R->r->multi_rows;
    for (;;) {
        sv_str k;
        if ((rc = read_key(R, &k)) || (rc = expect(R, ':', "':'")))
            return rc;
        int idx = sv_schema_multi_index(R->s, k.ptr, k.len);
        if (idx < 0)
            return sv_fail(R->err, SV_EINVAL, "multiVectors.%.*s: collection %s declares no such multi-vector",
                           (int)(k.len > 100 ? 100 : k.len), k.ptr, R->s->name);
        const sv_vec_def *vd = &R->s->multi[idx];
        if (R->r->multi[idx])
            return sv_fail(R->err, SV_EINVAL, "multiVectors.%s: given twice", vd->name);
        skip_ws(R);
        if (R->p < R->end && *R->p == 'n') {
            if ((rc = literal(R, "null", 4)))
                return rc;
        } else {
            if (R->p >= R->end || *R->p != '[')
                return sv_fail(R->err, SV_EINVAL,
                               "multiVectors.%s: expected an array of rows of %u numbers, got %s", vd->name, vd->dim,
                               kind_of(R));
            R->p++;
            sv_buf *sc = &R->a->scratch;
            sc->len = 0;
            uint32_t rows = 0;
            skip_ws(R);
            if (R->p < R->end && *R->p == ']') {
                R->p++;
            } else {
                for (;;) {
                    skip_ws(R);
                    if (R->p >= R->end || *R->p != '[')
                        return sv_fail(R->err, SV_EINVAL,
                                       "multiVectors.%s[%u]: expected an array of %u numbers, got %s", vd->name,
                                       rows, vd->dim, kind_of(R));
                    if (sv_buf_reserve(sc, (size_t)vd->dim * sizeof(float)))
                        return sv_fail(R->err, SV_ENOMEM, "out of memory");
                    uint32_t got;
                    if ((rc = read_vec(R, (float *)(sc->data + sc->len), vd->dim, &got, "multiVectors", vd->name,
                                       rows)))
                        return rc;
                    if (got == 0)
                        return sv_fail(R->err, SV_EINVAL, "multiVectors.%s[%u]: expected %u dimensions, got 0",
                                       vd->name, rows, vd->dim);
                    sc->len += (size_t)vd->dim * sizeof(float);
                    if (rows == UINT32_MAX)
                        return sv_fail(R->err, SV_ETOOBIG, "multiVectors.%s: too many rows", vd->name);
                    rows++;
                    skip_ws(R);
                    if (R->p < R->end && *R->p == ',') {
                        R->p++;
                        continue;
                    }
                    if ((rc = expect(R, ']', "',' or ']'")))
                        return rc;
                    break;
                }
            }
            if (rows) {
                float *v = sv_arena_alloc(R->a, sc->len);
                if (!v)
                    return sv_fail(R->err, SV_ENOMEM, "out of memory");
                memcpy(v, sc->data, sc->len);
                R->r->multi[idx] = v;
                rows_arr[idx] = rows;
            }
        }
        skip_ws(R);
        if (R->p < R->end && *R->p == ',') {
            R->p++;
            continue;
        }
        return expect(R, '}', "',' or '}'");
    }
}

/* ---- properties ---- */

static int type_error(rd *R, const sv_prop_def *d, long i, const char *expected)
{
    if (i >= 0)
        return sv_fail(R->err, SV_EINVAL, "properties.%s[%ld]: expected %s, got %s", d->name, i, expected,
                       kind_of(R));
    return sv_fail(R->err, SV_EINVAL, "properties.%s: expected %s, got %s", d->name, expected, kind_of(R));
}

static const char *elem_name(sv_prop_type t) { return sv_prop_type_name(t, false); }

/* Parses one element of type t into slot (int64_t/double/uint8_t/sv_str/
 * sv_uuid). */
static int parse_elem(rd *R, const sv_prop_def *d, long i, void *slot)
{
    int rc;
    skip_ws(R);
    if (R->p >= R->end)
        return syntax(R, "a JSON value");
    char c = *R->p;
    if (c == 'n' && i >= 0) {
        return sv_fail(R->err, SV_EINVAL, "properties.%s[%ld]: null is not allowed inside arrays (remove the element)",
                       d->name, i);
    }
    char ib[24]; /* "[i]" for messages, formatted only on the error paths */
#define IB() (i >= 0 ? (snprintf(ib, sizeof ib, "[%ld]", i), ib) : "")
    switch (d->type) {
    case SV_TYPE_TEXT:
        if (c != '"')
            return type_error(R, d, i, "text");
        return read_string(R, (sv_str *)slot, true);
    case SV_TYPE_INT:
    case SV_TYPE_NUMBER: {
        sv_jnum n;
        const char *e = (c == '-' || (c >= '0' && c <= '9')) ? sv_scan_number(R->p, R->end, &n) : NULL;
        if (!e) {
            if (c == '-' || (c >= '0' && c <= '9'))
                return sv_fail(R->err, SV_EPARSE, "properties.%s%s: invalid JSON number at byte %zu", d->name, IB(),
                               off(R));
            return type_error(R, d, i, elem_name(d->type));
        }
        int tl = (int)(e - R->p > 40 ? 40 : e - R->p);
        if (d->type == SV_TYPE_INT) {
            rc = sv_jnum_to_int64(&n, (int64_t *)slot);
            if (rc == SV_EINVAL)
                return sv_fail(R->err, SV_EINVAL, "properties.%s%s: expected int, got %.*s (not an integer)",
                               d->name, IB(), tl, R->p);
            if (rc)
                return sv_fail(R->err, SV_EINVAL, "properties.%s%s: %.*s is outside the int64 range", d->name, IB(),
                               tl, R->p);
        } else {
            double v = sv_jnum_to_double(&n);
            if (!isfinite(v))
                return sv_fail(R->err, SV_EINVAL, "properties.%s%s: %.*s is outside the double range", d->name, IB(),
                               tl, R->p);
            *(double *)slot = v;
        }
        R->p = e;
        return 0;
    }
    case SV_TYPE_BOOLEAN:
        if (c == 't') {
            *(uint8_t *)slot = 1;
            return literal(R, "true", 4);
        }
        if (c == 'f') {
            *(uint8_t *)slot = 0;
            return literal(R, "false", 5);
        }
        return type_error(R, d, i, "boolean");
    case SV_TYPE_DATE: {
        if (c != '"')
            return type_error(R, d, i, "date (an RFC 3339 string)");
        sv_str s;
        if ((rc = read_string(R, &s, false)))
            return rc;
        if (sv_parse_rfc3339(s.ptr, s.len, (int64_t *)slot))
            return sv_fail(R->err, SV_EINVAL,
                           "properties.%s%s: \"%.*s\" is not an RFC 3339 date-time between years 0000 and 9999 "
                           "(e.g. 2024-01-02T03:04:05.678Z or 2024-01-02T03:04:05+02:00)",
                           d->name, IB(), (int)(s.len > 60 ? 60 : s.len), s.ptr);
        return 0;
    }
    case SV_TYPE_UUID: {
        if (c != '"')
            return type_error(R, d, i, "uuid (a string)");
        sv_str s;
        if ((rc = read_string(R, &s, false)))
            return rc;
        if (sv_uuid_parse(s.ptr, s.len, (sv_uuid *)slot))
            return sv_fail(R->err, SV_EINVAL,
                           "properties.%s%s: \"%.*s\" is not a UUID (8-4-4-4-12 hex digits)", d->name, IB(),
                           (int)(s.len > 60 ? 60 : s.len), s.ptr);
        return 0;
    }
    case SV_TYPE_OBJECT: {
        if (c != '{')
            return type_error(R, d, i, "object");
        sv_buf *t = &R->a->scratch;
        size_t start = t->len;
        if ((rc = compact_value(R, t, 1)))
            return rc;
        size_t n = t->len - start;
        if (n > UINT32_MAX)
            return sv_fail(R->err, SV_ETOOBIG, "properties.%s: object too large", d->name);
        char *dst = sv_arena_alloc(R->a, n + 1);
        if (!dst)
            return sv_fail(R->err, SV_ENOMEM, "out of memory");
        memcpy(dst, t->data + start, n);
        dst[n] = '\0';
        t->len = start;
        ((sv_str *)slot)->ptr = dst;
        ((sv_str *)slot)->len = (uint32_t)n;
        return 0;
    }
    }
    return sv_fail(R->err, SV_EINTERNAL, "properties.%s: unknown type in schema", d->name);
#undef IB
}

static int parse_prop(rd *R, const sv_prop_def *d, sv_prop_value *v)
{
    int rc;
    skip_ws(R);
    if (R->p < R->end && *R->p == 'n') {
        if ((rc = literal(R, "null", 4)))
            return rc;
        v->present = false;
        return 0;
    }
    size_t es = sv_prop_elem_size(d->type);
    if (!d->array) {
        void *slot = sv_arena_alloc(R->a, es);
        if (!slot)
            return sv_fail(R->err, SV_ENOMEM, "out of memory");
        if ((rc = parse_elem(R, d, -1, slot)))
            return rc;
        sv_prop_value_point(v, d->type, slot);
        v->count = 1;
        v->present = true;
        return 0;
    }
    if (R->p >= R->end || *R->p != '[')
        return type_error(R, d, -1, sv_prop_type_name(d->type, true));
    R->p++;
    /* Object elements compact through scratch too, so collect elements in
     * a separate region: the arena, grown by doubling. */
    size_t cap = 8, n = 0;
    unsigned char *arr = sv_arena_alloc(R->a, cap * es);
    if (!arr)
        return sv_fail(R->err, SV_ENOMEM, "out of memory");
    skip_ws(R);
    if (R->p < R->end && *R->p == ']') {
        R->p++;
    } else {
        for (;;) {
            if (n == cap) {
                if (cap > UINT32_MAX / 2)
                    return sv_fail(R->err, SV_ETOOBIG, "properties.%s: too many elements", d->name);
                unsigned char *na = sv_arena_alloc(R->a, cap * 2 * es);
                if (!na)
                    return sv_fail(R->err, SV_ENOMEM, "out of memory");
                memcpy(na, arr, cap * es);
                arr = na;
                cap *= 2;
            }
            if ((rc = parse_elem(R, d, (long)n, arr + n * es)))
                return rc;
            n++;
            skip_ws(R);
            if (R->p < R->end && *R->p == ',') {
                R->p++;
                continue;
            }
            if ((rc = expect(R, ']', "',' or ']'")))
                return rc;
            break;
        }
    }
    sv_prop_value_point(v, d->type, arr);
    v->count = (uint32_t)n;
    v->present = true;
    return 0;
}

static int parse_properties(rd *R)
{
    int rc;
    skip_ws(R);
    if (R->p < R->end && *R->p == 'n')
        return literal(R, "null", 4);
    if (R->p >= R->end || *R->p != '{')
        return sv_fail(R->err, SV_EINVAL, "properties: expected a JSON object, got %s", kind_of(R));
    R->p++;
    const sv_schema *s = R->s;
    uint8_t *seen = NULL;
    if (s->n_props) {
        seen = sv_arena_alloc(R->a, s->n_props);
        if (!seen)
            return sv_fail(R->err, SV_ENOMEM, "out of memory");
        memset(seen, 0, s->n_props);
    }
    sv_buf *ex = &R->a->extra, *keys = &R->a->keys;
    ex->len = 0;
    keys->len = 0;
    size_t n_extra = 0;
    int hint = 0;
    skip_ws(R);
    if (R->p < R->end && *R->p == '}') {
        R->p++;
        return 0;
    }
    for (;;) {
        sv_str k;
        skip_ws(R);
        if (R->p >= R->end || *R->p != '"')
            return syntax(R, "a property name (string)");
        if ((rc = read_string(R, &k, false)) || (rc = expect(R, ':', "':'")))
            return rc;
        int idx = -1;
        if (hint < (int)s->n_props && strlen(s->props[hint].name) == k.len &&
            memcmp(s->props[hint].name, k.ptr, k.len) == 0)
            idx = hint;
        else
            idx = sv_schema_prop_index(s, k.ptr, k.len);
        if (idx >= 0) {
            hint = idx + 1;
            if (seen[idx])
                return sv_fail(R->err, SV_EINVAL, "properties.%s: given twice (duplicate key)", s->props[idx].name);
            seen[idx] = 1;
            if ((rc = parse_prop(R, &s->props[idx], &R->r->props[idx])))
                return rc;
        } else {
            if (k.len == 0)
                return sv_fail(R->err, SV_EINVAL, "properties: empty property name at byte %zu", off(R));
            skip_ws(R);
            if (R->p < R->end && *R->p == 'n') { /* null = absent */
                if ((rc = literal(R, "null", 4)))
                    return rc;
            } else {
                /* Undeclared keys are compared decoded: check duplicates. */
                size_t kstart = ex->len + 1;
                if (sv_buf_putc(ex, ','))
                    return sv_fail(R->err, SV_ENOMEM, "out of memory");
                if (sv_json_put_str(ex, k.ptr, k.len))
                    return sv_fail(R->err, SV_ENOMEM, "out of memory");
                size_t klen = ex->len - kstart;
                const size_t *kk = (const size_t *)keys->data;
                for (size_t j = 0; j < n_extra; j++) {
                    if (kk[2 * j + 1] == klen && memcmp(ex->data + kk[2 * j], ex->data + kstart, klen) == 0)
                        return sv_fail(R->err, SV_EINVAL, "properties.%.*s: given twice (duplicate key)",
                                       (int)(k.len > 100 ? 100 : k.len), k.ptr);
                }
                if (n_extra >= SV_MAX_EXTRA_PROPS)
                    return sv_fail(R->err, SV_EINVAL,
                                   "properties: more than %d undeclared properties (declare them in the schema)",
                                   SV_MAX_EXTRA_PROPS);
                size_t pair[2] = {kstart, klen};
                if (sv_buf_append(keys, pair, sizeof pair) || sv_buf_putc(ex, ':'))
                    return sv_fail(R->err, SV_ENOMEM, "out of memory");
                if ((rc = compact_value(R, ex, 1)))
                    return rc;
                n_extra++;
            }
        }
        skip_ws(R);
        if (R->p < R->end && *R->p == ',') {
            R->p++;
            continue;
        }
        if ((rc = expect(R, '}', "',' or '}'")))
            return rc;
        break;
    }
    if (n_extra) {
        if (ex->len > UINT32_MAX)
            return sv_fail(R->err, SV_ETOOBIG, "properties: undeclared properties too large");
        char *d = sv_arena_alloc(R->a, ex->len + 2);
        if (!d)
            return sv_fail(R->err, SV_ENOMEM, "out of memory");
        d[0] = '{';
        memcpy(d + 1, ex->data + 1, ex->len - 1);
        d[ex->len] = '}';
        d[ex->len + 1] = '\0';
        R->r->extra_json.ptr = d;
        R->r->extra_json.len = (uint32_t)ex->len + 1;
    }
    return 0;
}

/* ---- top level ---- */

enum { F_ID = 1, F_VECTOR = 2, F_NAMED = 4, F_MULTI = 8, F_PROPS = 16, F_TENANT = 32, F_COLL = 64, F_CT = 128,
       F_UT = 256 };

static int read_route_name(rd *R, sv_str *out, const char *field)
{
    skip_ws(R);
    if (R->p < R->end && *R->p == 'n') {
        out->ptr = NULL;
        out->len = 0;
        return literal(R, "null", 4);
    }
    if (R->p >= R->end || *R->p != '"')
        return sv_fail(R->err, SV_EINVAL, "%s: expected a string, got %s", field, kind_of(R));
    const char *s = R->p;
    int rc = read_string(R, out, false);
    if (rc)
        return rc;
    if ((size_t)(R->p - s) - 2 != out->len) /* escapes always shorten: it had some */
        return sv_fail(R->err, SV_EINVAL, "%s: must be a plain name without escapes", field);
    return 0;
}

static int match_key(const sv_str *k, const char *lit)
{
    size_t n = strlen(lit);
    return k->len == n && memcmp(k->ptr, lit, n) == 0;
}

int sv_record_parse_json(sv_record *r, const sv_schema *s, const char *json, size_t len, sv_object_route *route,
                         sv_err *err)
{
    int rc = sv_record_reset(r, s);
    if (rc)
        return sv_fail(err, rc, "out of memory");
    sv_object_route rt = {{NULL, 0}, {NULL, 0}};
    rd R = {.p = json, .end = json + len, .base = json, .r = r, .s = s, .a = r->arena, .err = err};
    unsigned seen = 0;
    if ((rc = expect(&R, '{', "'{' (an object)")))
        goto out;
    skip_ws(&R);
    if (R.p < R.end && *R.p == '}') {
        R.p++;
    } else {
        for (;;) {
            sv_str k;
            skip_ws(&R);
            if (R.p >= R.end || *R.p != '"') {
                rc = syntax(&R, "a field name (string)");
                goto out;
            }
            if ((rc = read_string(&R, &k, false)) || (rc = expect(&R, ':', "':'")))
                goto out;
            unsigned f = 0;
            if (match_key(&k, "vector"))
                f = F_VECTOR;
            else if (match_key(&k, "properties"))
                f = F_PROPS;
            else if (match_key(&k, "id"))
                f = F_ID;
            else if (match_key(&k, "namedVectors"))
                f = F_NAMED;
            else if (match_key(&k, "multiVectors"))
                f = F_MULTI;
            else if (match_key(&k, "tenant"))
                f = F_TENANT;
            else if (match_key(&k, "collection") || match_key(&k, "class"))
                f = F_COLL;
            else if (match_key(&k, "creationTime"))
                f = F_CT;
            else if (match_key(&k, "updateTime"))
                f = F_UT;
            else {
                rc = sv_fail(err, SV_EINVAL,
                             "unknown field \"%.*s\" in object (allowed: id, vector, namedVectors, multiVectors, "
                             "properties, tenant, collection)",
                             (int)(k.len > 100 ? 100 : k.len), k.ptr);
                goto out;
            }
            if (seen & f) {
                rc = sv_fail(err, SV_EINVAL, "field \"%.*s\" given twice", (int)k.len, k.ptr);
                goto out;
            }
            seen |= f;
            switch (f) {
            case F_ID: {
                skip_ws(&R);
                if (R.p < R.end && *R.p == 'n') {
                    rc = literal(&R, "null", 4);
                    break;
                }
                if (R.p >= R.end || *R.p != '"') {
                    rc = sv_fail(err, SV_EINVAL, "id: expected a UUID string, got %s", kind_of(&R));
                    break;
                }
                sv_str v;
                if ((rc = read_string(&R, &v, false)))
                    break;
                if (sv_uuid_parse(v.ptr, v.len, &r->id)) {
                    rc = sv_fail(err, SV_EINVAL, "id: \"%.*s\" is not a UUID (8-4-4-4-12 hex digits)",
                                 (int)(v.len > 60 ? 60 : v.len), v.ptr);
                    break;
                }
                r->has_id = true;
                break;
            }
            case F_VECTOR: rc = parse_default_vector(&R); break;
            case F_NAMED: rc = parse_named_vectors(&R); break;
            case F_MULTI: rc = parse_multi_vectors(&R); break;
            case F_PROPS: rc = parse_properties(&R); break;
            case F_TENANT: rc = read_route_name(&R, &rt.tenant, "tenant"); break;
            case F_COLL: rc = read_route_name(&R, &rt.collection, "collection"); break;
            default: rc = skip_value(&R); break; /* server-assigned times */
            }
            if (rc)
                goto out;
            skip_ws(&R);
            if (R.p < R.end && *R.p == ',') {
                R.p++;
                continue;
            }
            if ((rc = expect(&R, '}', "',' or '}'")))
                goto out;
            break;
        }
    }
    skip_ws(&R);
    if (R.p != R.end) {
        rc = sv_fail(err, SV_EPARSE, "invalid JSON: unexpected data after the object at byte %zu", off(&R));
        goto out;
    }
    if (route)
        *route = rt;
    return 0;
out:
    if (rc == SV_ENOMEM && err)
        err->code = SV_ENOMEM;
    return rc;
}

/* ---- route peek ---- */

int sv_record_peek_route(const char *json, size_t len, sv_object_route *route, sv_err *err)
{
    struct sv_record_arena a;
    memset(&a, 0, sizeof a);
    rd R = {.p = json, .end = json + len, .base = json, .a = &a, .err = err};
    sv_object_route rt = {{NULL, 0}, {NULL, 0}};
    int rc;
    if ((rc = expect(&R, '{', "'{' (an object)")))
        goto out;
    skip_ws(&R);
    if (R.p < R.end && *R.p == '}') {
        R.p++;
        goto done;
    }
    for (;;) {
        sv_str k;
        skip_ws(&R);
        if (R.p >= R.end || *R.p != '"') {
            rc = syntax(&R, "a field name (string)");
            goto out;
        }
        /* keys are compared unescaped, exactly as the full parse does */
        if ((rc = read_string(&R, &k, false)) || (rc = expect(&R, ':', "':'")))
            goto out;
        if (match_key(&k, "tenant"))
            rc = read_route_name(&R, &rt.tenant, "tenant");
        else if (match_key(&k, "collection") || match_key(&k, "class"))
            rc = read_route_name(&R, &rt.collection, "collection");
        else
            rc = skip_fast(&R);
        if (rc)
            goto out;
        skip_ws(&R);
        if (R.p < R.end && *R.p == ',') {
            R.p++;
            continue;
        }
        if ((rc = expect(&R, '}', "',' or '}'")))
            goto out;
        break;
    }
done:
    *route = rt;
out:
    sv_buf_free(&a.tmp);
    /* Strings with escapes were decoded into a throwaway arena. */
    for (sv_arena_chunk *c = a.head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    return rc;
}
