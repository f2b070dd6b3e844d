/* Streaming batch splitter: finds object boundaries by tracking strings and
 * bracket nesting only; the objects themselves are parsed later. Holds at
 * most one object (the one crossing a chunk boundary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record_internal.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_DEPTH 4096 /* bits in `stack` */

/* Bytes that matter outside strings, and inside them. Everything else
 * (digits of vectors, text) is skipped 16 bytes at a time. */
static const unsigned char out_stop[256] = {['"'] = 1, ['{'] = 1, ['}'] = 1, ['['] = 1, [']'] = 1, ['\n'] = 1};
static const unsigned char in_stop[256] = {['"'] = 1, ['\\'] = 1, ['\n'] = 1};

static inline size_t skip_plain(const char *d, size_t i, size_t len)
{
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), nl = _mm_set1_epi8('\n');
    const __m128i open = _mm_set1_epi8('{'), close = _mm_set1_epi8('}'), x20 = _mm_set1_epi8(0x20);
    while (i + 16 <= len) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
        __m128i lo = _mm_or_si128(v, x20); /* '[' -> '{', ']' -> '}' */
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, nl)),
                                 _mm_or_si128(_mm_cmpeq_epi8(lo, open), _mm_cmpeq_epi8(lo, close)));
        int mask = _mm_movemask_epi8(m);
        if (mask)
            return i + (size_t)__builtin_ctz((unsigned)mask);
        i += 16;
    }
#endif
    while (i < len && !out_stop[(unsigned char)d[i]])
        i++;
    return i;
}

static inline size_t skip_in_string(const char *d, size_t i, size_t len)
{
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'), nl = _mm_set1_epi8('\n');
    while (i + 16 <= len) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(d + i));
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)), _mm_cmpeq_epi8(v, nl));
        int mask = _mm_movemask_epi8(m);
        if (mask)
            return i + (size_t)__builtin_ctz((unsigned)mask);
        i += 16;
    }
#endif
    while (i < len && !in_stop[(unsigned char)d[i]])
        i++;
    return i;
}

enum {
    /* JSON envelope */
    E_START,
    E_KEY_OR_END, /* right after the opening '{' */
    E_KEY_START,  /* after ',' */
    E_KEY,
    E_COLON,
    E_VALUE,
    E_SKIP_SCALAR,
    E_SKIP_STRING,
    E_AFTER_VALUE,
    E_ARR_FIRST,
    E_ARR_ELEM,
    E_ARR_AFTER,
    E_DONE,
    /* NDJSON */
    N_LINE_START,
    N_AFTER_OBJ,
};

struct sv_batch_splitter {
    bool ndjson;
    size_t max;
    int st;
    int failed;
    uint64_t offset; /* bytes consumed before the current chunk */
    uint64_t line;   /* NDJSON line number (1-based) */
    /* the structure (object or skipped value) being scanned */
    bool in_obj, skipping, in_str, esc;
    uint32_t depth;
    uint64_t stack[MAX_DEPTH / 64]; /* bit set = '{', clear = '[' */
    uint64_t obj_start;              /* absolute offset of its first byte */
    uint64_t n_objects;
    sv_buf obj; /* bytes of an object that started in an earlier chunk */
    /* envelope key */
    char key[16];
    size_t key_len;
    bool key_esc, key_long;
    bool seen_objects;
};

sv_batch_splitter *sv_batch_splitter_new(bool ndjson, size_t max_object_bytes)
{
    sv_batch_splitter *sp = calloc(1, sizeof *sp);
    if (!sp)
        return NULL;
    sp->ndjson = ndjson;
    sp->max = max_object_bytes ? max_object_bytes : SIZE_MAX;
    sp->st = ndjson ? N_LINE_START : E_START;
    sp->line = 1;
    return sp;
}

void sv_batch_splitter_free(sv_batch_splitter *sp)
{
    if (!sp)
        return;
    sv_buf_free(&sp->obj);
    free(sp);
}

static int fail(sv_batch_splitter *sp, sv_err *err, int code, uint64_t at, const char *what)
{
    sp->failed = code;
    if (sp->ndjson)
        return sv_fail(err, code, "batch body: %s at byte %llu (line %llu)", what, (unsigned long long)at,
                       (unsigned long long)sp->line);
    return sv_fail(err, code, "batch body: %s at byte %llu", what, (unsigned long long)at);
}

static int too_big(sv_batch_splitter *sp, sv_err *err)
{
    sp->failed = SV_ETOOBIG;
    return sv_fail(err, SV_ETOOBIG, "batch body: object starting at byte %llu is larger than the limit of %zu bytes",
                   (unsigned long long)sp->obj_start, sp->max);
}

static inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static void begin_struct(sv_batch_splitter *sp, char c, uint64_t at, bool skipping)
{
    sp->in_obj = true;
    sp->skipping = skipping;
    sp->in_str = sp->esc = false;
    sp->depth = 1;
    sp->stack[0] = c == '{' ? 1 : 0;
    sp->obj_start = at;
    sp->obj.len = 0;
}

/* Scans from data[i] while inside a structure. Returns the index after
 * its closing bracket, or len if the chunk ended first; -1 on error. */
static long scan_struct(sv_batch_splitter *sp, const char *data, size_t i, size_t len, sv_err *err)
{
    while (i < len) {
        char c;
        if (sp->in_str) {
            if (!sp->esc)
                i = skip_in_string(data, i, len);
            if (i >= len)
                break;
            c = data[i];
            if (c == '\n' && sp->ndjson) {
                fail(sp, err, SV_EPARSE, sp->offset + i, "line ends inside a string (objects must be on one line)");
                return -1;
            }
            if (sp->esc)
                sp->esc = false;
            else if (c == '\\')
                sp->esc = true;
            else if (c == '"')
                sp->in_str = false;
            i++;
            continue;
        }
        i = skip_plain(data, i, len);
        if (i >= len)
            break;
        c = data[i];
        switch (c) {
        case '"': sp->in_str = true; break;
        case '{':
        case '[':
            if (sp->depth >= MAX_DEPTH) {
                fail(sp, err, SV_EPARSE, sp->offset + i, "JSON nested too deeply");
                return -1;
            }
            if (c == '{')
                sp->stack[sp->depth / 64] |= 1ULL << (sp->depth % 64);
            else
                sp->stack[sp->depth / 64] &= ~(1ULL << (sp->depth % 64));
            sp->depth++;
            break;
        case '}':
        case ']': {
            uint32_t d = sp->depth - 1;
            bool is_obj = (sp->stack[d / 64] >> (d % 64)) & 1;
            if (is_obj != (c == '}')) {
                fail(sp, err, SV_EPARSE, sp->offset + i, c == '}' ? "'}' closes an array" : "']' closes an object");
                return -1;
            }
            sp->depth = d;
            if (d == 0) {
                sp->in_obj = false;
                return (long)(i + 1);
            }
            break;
        }
        case '\n':
            if (sp->ndjson) {
                fail(sp, err, SV_EPARSE, sp->offset + i,
                     "line ends before the object is closed (objects must be on one line)");
                return -1;
            }
            break;
        default: break;
        }
        i++;
    }
    return (long)len;
}

static int key_is_objects(const sv_batch_splitter *sp)
{
    return !sp->key_long && sp->key_len == 7 && memcmp(sp->key, "objects", 7) == 0;
}

int sv_batch_splitter_feed(sv_batch_splitter *sp, const char *data, size_t len, sv_batch_object_fn fn, void *ud,
                           sv_err *err)
{
    if (sp->failed)
        return sv_fail(err, sp->failed, "batch body: the splitter already failed");
    size_t i = 0;
    while (i < len) {
        if (sp->in_obj) {
            /* The opening bracket was consumed by the state machine: copy
             * from it when the object started in this chunk. */
            size_t start = sp->obj_start >= sp->offset ? (size_t)(sp->obj_start - sp->offset) : i;
            /* Scan no further than the limit allows, so the first problem
             * in byte order is reported however the body is chunked. */
            size_t lim = len;
            if (!sp->skipping && sp->max <= UINT64_MAX - sp->obj_start) {
                uint64_t lim_abs = sp->obj_start + sp->max; /* first byte past the limit */
                if (lim_abs - sp->offset < lim)
                    lim = (size_t)(lim_abs - sp->offset);
            }
            long e = scan_struct(sp, data, i, lim, err);
            if (e < 0)
                return sp->failed;
            size_t end = (size_t)e;
            uint64_t total = sp->offset + end - sp->obj_start;
            if (sp->in_obj && end < len)
                return too_big(sp, err);
            if (!sp->skipping && total > sp->max)
                return too_big(sp, err);
            if (sp->in_obj) { /* chunk ended inside */
                if (!sp->skipping && sv_buf_append(&sp->obj, data + start, end - start)) {
                    sp->failed = SV_ENOMEM;
                    return sv_fail(err, SV_ENOMEM, "batch body: out of memory");
                }
                i = end;
                break;
            }
            if (!sp->skipping) {
                const char *p;
                size_t n;
                if (sp->obj.len == 0 && sp->obj_start >= sp->offset) {
                    p = data + (sp->obj_start - sp->offset); /* whole object in this chunk */
                    n = (size_t)total;
                } else {
                    if (sv_buf_append(&sp->obj, data + start, end - start)) {
                        sp->failed = SV_ENOMEM;
                        return sv_fail(err, SV_ENOMEM, "batch body: out of memory");
                    }
                    p = (const char *)sp->obj.data;
                    n = sp->obj.len;
                }
                sp->n_objects++;
                int rc = fn(p, n, ud);
                sp->obj.len = 0;
                if (rc) {
                    sp->failed = rc;
                    return rc;
                }
                sp->st = sp->ndjson ? N_AFTER_OBJ : E_ARR_AFTER;
            } else {
                sp->st = E_AFTER_VALUE;
            }
            i = end;
            continue;
        }
        char c = data[i];
        uint64_t at = sp->offset + i;
        switch (sp->st) {
        case N_LINE_START:
            if (c == '\n') {
                sp->line++;
                break;
            }
            if (is_ws(c))
                break;
            if (c != '{')
                return fail(sp, err, SV_EPARSE, at, "expected '{' (each NDJSON line must be one JSON object)");
            begin_struct(sp, c, at, false);
            break;
        case N_AFTER_OBJ:
            if (c == '\n') {
                sp->line++;
                sp->st = N_LINE_START;
                break;
            }
            if (c == ' ' || c == '\t' || c == '\r')
                break;
            return fail(sp, err, SV_EPARSE, at, "expected a newline after the object (one object per line)");
        case E_START:
            if (is_ws(c))
                break;
            if (c != '{')
                return fail(sp, err, SV_EPARSE, at, "expected '{' (body must be {\"objects\": [...]})");
            sp->st = E_KEY_OR_END;
            break;
        case E_KEY_OR_END:
        case E_KEY_START:
            if (is_ws(c))
                break;
            if (c == '}' && sp->st == E_KEY_OR_END) {
                sp->st = E_DONE;
                break;
            }
            if (c != '"')
                return fail(sp, err, SV_EPARSE, at, "expected a key string");
            sp->key_len = 0;
            sp->key_long = sp->key_esc = false;
            sp->st = E_KEY;
            break;
        case E_KEY:
            if (sp->key_esc) {
                sp->key_esc = false;
                sp->key_long = true; /* escaped keys never match "objects" */
            } else if (c == '\\') {
                sp->key_esc = true;
            } else if (c == '"') {
                sp->st = E_COLON;
            } else if (sp->key_len < sizeof sp->key) {
                sp->key[sp->key_len++] = c;
            } else {
                sp->key_long = true;
            }
            break;
        case E_COLON:
            if (is_ws(c))
                break;
            if (c != ':')
                return fail(sp, err, SV_EPARSE, at, "expected ':'");
            sp->st = E_VALUE;
            break;
        case E_VALUE:
            if (is_ws(c))
                break;
            if (key_is_objects(sp)) {
                if (sp->seen_objects)
                    return fail(sp, err, SV_EPARSE, at, "\"objects\" given twice");
                sp->seen_objects = true;
                if (c != '[')
                    return fail(sp, err, SV_EPARSE, at, "\"objects\" must be an array of objects");
                sp->st = E_ARR_FIRST;
            } else if (c == '{' || c == '[') {
                begin_struct(sp, c, at, true);
            } else if (c == '"') {
                sp->in_str = sp->esc = false;
                sp->st = E_SKIP_STRING;
            } else if ((c >= '0' && c <= '9') || c == '-' || c == 't' || c == 'f' || c == 'n') {
                sp->st = E_SKIP_SCALAR;
            } else {
                return fail(sp, err, SV_EPARSE, at, "expected a JSON value");
            }
            break;
        case E_SKIP_STRING:
            if (sp->esc)
                sp->esc = false;
            else if (c == '\\')
                sp->esc = true;
            else if (c == '"')
                sp->st = E_AFTER_VALUE;
            break;
        case E_SKIP_SCALAR:
            if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' || c == '.' || c == 'E')
                break;
            sp->st = E_AFTER_VALUE;
            continue; /* re-read c as the delimiter */
        case E_AFTER_VALUE:
            if (is_ws(c))
                break;
            if (c == ',') {
                sp->st = E_KEY_START;
                break;
            }
            if (c == '}') {
                sp->st = E_DONE;
                break;
            }
            return fail(sp, err, SV_EPARSE, at, "expected ',' or '}'");
        case E_ARR_FIRST:
        case E_ARR_ELEM:
            if (is_ws(c))
                break;
            if (c == ']' && sp->st == E_ARR_FIRST) {
                sp->st = E_AFTER_VALUE;
                break;
            }
            if (c != '{') {
                char msg[96];
                snprintf(msg, sizeof msg, "objects[%llu] is not a JSON object", (unsigned long long)sp->n_objects);
                return fail(sp, err, SV_EPARSE, at, msg);
            }
            begin_struct(sp, c, at, false);
            break;
        case E_ARR_AFTER:
            if (is_ws(c))
                break;
            if (c == ',') {
                sp->st = E_ARR_ELEM;
                break;
            }
            if (c == ']') {
                sp->st = E_AFTER_VALUE;
                break;
            }
            return fail(sp, err, SV_EPARSE, at, "expected ',' or ']' in \"objects\"");
        case E_DONE:
            if (is_ws(c))
                break;
            return fail(sp, err, SV_EPARSE, at, "unexpected data after the body's closing '}'");
        }
        i++;
    }
    if (sp->in_obj && !sp->skipping && sp->obj.len == 0 && sp->obj_start >= sp->offset) {
        /* the chunk ended right after an opening '{' */
        if (sv_buf_append(&sp->obj, data + (sp->obj_start - sp->offset), len - (size_t)(sp->obj_start - sp->offset))) {
            sp->failed = SV_ENOMEM;
            return sv_fail(err, SV_ENOMEM, "batch body: out of memory");
        }
    }
    sp->offset += len;
    return 0;
}

int sv_batch_splitter_finish(sv_batch_splitter *sp, sv_batch_object_fn fn, void *ud, sv_err *err)
{
    (void)fn;
    (void)ud;
    if (sp->failed)
        return sv_fail(err, sp->failed, "batch body: the splitter already failed");
    if (sp->in_obj && !sp->skipping)
        return fail(sp, err, SV_EPARSE, sp->offset, "body ends inside an object (it started at an earlier byte)");
    if (sp->ndjson)
        return 0;
    switch (sp->st) {
    case E_DONE:
        if (!sp->seen_objects)
            return fail(sp, err, SV_EPARSE, sp->offset, "no \"objects\" key (body must be {\"objects\": [...]})");
        return 0;
    case E_START:
        return fail(sp, err, SV_EPARSE, sp->offset, "empty body (expected {\"objects\": [...]})");
    case E_SKIP_SCALAR: /* "{"a":1" then EOF: still unclosed */
    default: return fail(sp, err, SV_EPARSE, sp->offset, "body ends before the closing '}' of {\"objects\": [...]}");
    }
}
