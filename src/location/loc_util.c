/* Signing-independent helpers for the s3 driver: encoding, canonical query,
 * a minimal XML reader for S3 responses, time parsing, backoff. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "location_internal.h"

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

int sv_loc_uri_encode(sv_buf *out, const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    if (sv_buf_reserve(out, len * 3 + 1))
        return SV_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            out->data[out->len++] = c;
        } else {
            out->data[out->len++] = '%';
            out->data[out->len++] = (uint8_t)hex[c >> 4];
            out->data[out->len++] = (uint8_t)hex[c & 15];
        }
    }
    return 0;
}

typedef struct qpair { char *k, *v; } qpair;

static int qpair_cmp(const void *a, const void *b)
{
    const qpair *x = a, *y = b;
    int c = strcmp(x->k, y->k);
    return c ? c : strcmp(x->v, y->v);
}

static char *enc_dup(const char *s)
{
    sv_buf b = {0};
    if (sv_loc_uri_encode(&b, s ? s : "", s ? strlen(s) : 0, false))
        return NULL;
    char *r = sv_buf_cstr(&b);
    if (!r)
        sv_buf_free(&b);
    return r;
}

int sv_loc_canonical_query(sv_buf *out, const char *const *params, size_t npairs)
{
    if (npairs == 0)
        return 0;
    qpair *p = calloc(npairs, sizeof *p);
    if (!p)
        return SV_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < npairs; i++) {
        p[i].k = enc_dup(params[2 * i]);
        p[i].v = enc_dup(params[2 * i + 1]);
        if (!p[i].k || !p[i].v)
            rc = SV_ENOMEM;
    }
    if (rc == 0) {
        qsort(p, npairs, sizeof *p, qpair_cmp);
        for (size_t i = 0; i < npairs && rc == 0; i++)
            rc = sv_buf_printf(out, "%s%s=%s", i ? "&" : "", p[i].k, p[i].v);
    }
    for (size_t i = 0; i < npairs; i++) {
        free(p[i].k);
        free(p[i].v);
    }
    free(p);
    return rc;
}

static const char *memfind(const char *h, size_t hlen, const char *n, size_t nlen)
{
    if (nlen == 0 || hlen < nlen)
        return NULL;
    return memmem(h, hlen, n, nlen);
}

bool sv_loc_xml_next(const char *doc, size_t len, size_t *pos, const char *tag,
                     const char **inner, size_t *inner_len)
{
    char open[96], close[96];
    size_t tl = strlen(tag);
    if (tl + 4 > sizeof open)
        return false;
    int ol = snprintf(open, sizeof open, "<%s", tag);
    int cl = snprintf(close, sizeof close, "</%s>", tag);
    size_t p = *pos;
    while (p < len) {
        const char *o = memfind(doc + p, len - p, open, (size_t)ol);
        if (!o)
            return false;
        size_t after = (size_t)(o - doc) + (size_t)ol;
        if (after >= len)
            return false;
        char c = doc[after];
        if (c != '>' && c != ' ' && c != '/' && c != '\t' && c != '\n' && c != '\r') {
            p = after; /* a longer tag name sharing the prefix */
            continue;
        }
        const char *gt = memchr(doc + after, '>', len - after);
        if (!gt)
            return false;
        size_t body = (size_t)(gt - doc) + 1;
        if (gt[-1] == '/') { /* <Tag/> */
            *inner = doc + body;
            *inner_len = 0;
            *pos = body;
            return true;
        }
        const char *cend = memfind(doc + body, len - body, close, (size_t)cl);
        if (!cend)
            return false;
        *inner = doc + body;
        *inner_len = (size_t)(cend - (doc + body));
        *pos = (size_t)(cend - doc) + (size_t)cl;
        return true;
    }
    return false;
}

static int put_utf8(sv_buf *out, unsigned long cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) { b[0] = (uint8_t)cp; n = 1; }
    else if (cp < 0x800) { b[0] = (uint8_t)(0xC0 | (cp >> 6)); b[1] = (uint8_t)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) { b[0] = (uint8_t)(0xE0 | (cp >> 12)); b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); b[2] = (uint8_t)(0x80 | (cp & 0x3F)); n = 3; }
    else if (cp < 0x110000) { b[0] = (uint8_t)(0xF0 | (cp >> 18)); b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F)); b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); b[3] = (uint8_t)(0x80 | (cp & 0x3F)); n = 4; }
    else return SV_EPARSE;
    return sv_buf_append(out, b, n);
}

int sv_loc_xml_text(sv_buf *out, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] != '&') {
            const char *amp = memchr(s + i, '&', len - i);
            size_t n = amp ? (size_t)(amp - (s + i)) : len - i;
            if (sv_buf_append(out, s + i, n))
                return SV_ENOMEM;
            i += n;
            continue;
        }
        const char *semi = memchr(s + i, ';', len - i);
        if (!semi || semi - (s + i) > 12)
            return SV_EPARSE;
        size_t el = (size_t)(semi - (s + i)) - 1; /* entity name length */
        const char *e = s + i + 1;
        int rc;
        if (el == 3 && !memcmp(e, "amp", 3)) rc = sv_buf_putc(out, '&');
        else if (el == 2 && !memcmp(e, "lt", 2)) rc = sv_buf_putc(out, '<');
        else if (el == 2 && !memcmp(e, "gt", 2)) rc = sv_buf_putc(out, '>');
        else if (el == 4 && !memcmp(e, "quot", 4)) rc = sv_buf_putc(out, '"');
        else if (el == 4 && !memcmp(e, "apos", 4)) rc = sv_buf_putc(out, '\'');
        else if (el >= 2 && e[0] == '#') {
            char num[16];
            memcpy(num, e + 1, el - 1);
            num[el - 1] = 0;
            char *endp;
            unsigned long cp = (num[0] == 'x' || num[0] == 'X') ? strtoul(num + 1, &endp, 16)
                                                                : strtoul(num, &endp, 10);
            if (*endp || endp == num)
                return SV_EPARSE;
            rc = put_utf8(out, cp);
        } else
            return SV_EPARSE;
        if (rc)
            return rc;
        i = (size_t)(semi - s) + 1;
    }
    if (sv_buf_reserve(out, 1))
        return SV_ENOMEM;
    out->data[out->len] = 0;
    return 0;
}

bool sv_loc_xml_get(const char *s, size_t len, const char *tag, char *dst, size_t cap)
{
    size_t pos = 0;
    const char *in;
    size_t il;
    if (!sv_loc_xml_next(s, len, &pos, tag, &in, &il))
        return false;
    sv_buf b = {0};
    if (sv_loc_xml_text(&b, in, il) || !sv_buf_cstr(&b)) {
        sv_buf_free(&b);
        return false;
    }
    if (cap) {
        size_t n = b.len < cap - 1 ? b.len : cap - 1;
        memcpy(dst, b.data, n);
        dst[n] = 0;
    }
    sv_buf_free(&b);
    return true;
}

bool sv_loc_xml_error(const char *body, size_t len, char *code, size_t code_cap,
                      char *msg, size_t msg_cap)
{
    size_t pos = 0;
    const char *in;
    size_t il;
    if (!body || !sv_loc_xml_next(body, len, &pos, "Error", &in, &il))
        return false;
    if (!sv_loc_xml_get(in, il, "Code", code, code_cap))
        snprintf(code, code_cap, "UnknownError");
    if (!sv_loc_xml_get(in, il, "Message", msg, msg_cap) && msg_cap)
        msg[0] = 0;
    return true;
}

static char *xml_dup(const char *s, size_t len)
{
    sv_buf b = {0};
    if (sv_loc_xml_text(&b, s, len)) {
        sv_buf_free(&b);
        return NULL;
    }
    char *r = sv_buf_cstr(&b);
    if (!r)
        sv_buf_free(&b);
    return r;
}

void sv_loc_list_page_free(sv_loc_list_page *page)
{
    for (size_t i = 0; i < page->n; i++) {
        free((char *)page->entries[i].key);
        free((char *)page->entries[i].etag);
    }
    free(page->entries);
    free(page->next_token);
    memset(page, 0, sizeof *page);
}

static int page_add(sv_loc_list_page *page, size_t *cap, sv_location_entry *e)
{
    if (page->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        sv_location_entry *ne = realloc(page->entries, nc * sizeof *ne);
        if (!ne)
            return SV_ENOMEM;
        page->entries = ne;
        *cap = nc;
    }
    page->entries[page->n++] = *e;
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const sv_location_entry *)a)->key, ((const sv_location_entry *)b)->key);
}

int sv_loc_parse_list_v2(const char *body, size_t len, sv_loc_list_page *page, sv_err *err)
{
    memset(page, 0, sizeof *page);
    size_t pos = 0, cap = 0;
    const char *in;
    size_t il;
    if (!sv_loc_xml_next(body, len, &pos, "ListBucketResult", &in, &il))
        return sv_fail(err, SV_EPARSE, "ListObjectsV2 response has no <ListBucketResult>");
    char tmp[16];
    page->truncated = sv_loc_xml_get(in, il, "IsTruncated", tmp, sizeof tmp) && !strcmp(tmp, "true");
    size_t p = 0;
    const char *tin;
    size_t tl;
    if (sv_loc_xml_next(in, il, &p, "NextContinuationToken", &tin, &tl)) {
        page->next_token = xml_dup(tin, tl);
        if (!page->next_token)
            goto nomem;
    }
    p = 0;
    const char *c;
    size_t cl;
    while (sv_loc_xml_next(in, il, &p, "Contents", &c, &cl)) {
        sv_location_entry e = {0};
        size_t q = 0;
        const char *v;
        size_t vl;
        if (!sv_loc_xml_next(c, cl, &q, "Key", &v, &vl)) {
            sv_loc_list_page_free(page);
            return sv_fail(err, SV_EPARSE, "ListObjectsV2 <Contents> without <Key>");
        }
        e.key = xml_dup(v, vl);
        char num[32] = "", etag[96] = "", lm[48] = "";
        sv_loc_xml_get(c, cl, "Size", num, sizeof num);
        e.size = strtoll(num, NULL, 10);
        sv_loc_xml_get(c, cl, "LastModified", lm, sizeof lm);
        e.mtime_ms = sv_loc_parse_iso8601(lm);
        sv_loc_xml_get(c, cl, "ETag", etag, sizeof etag);
        char *t = etag;
        size_t n = strlen(t);
        if (n >= 2 && t[0] == '"' && t[n - 1] == '"') {
            t[n - 1] = 0;
            t++;
        }
        e.etag = strdup(t);
        if (!e.key || !e.etag || page_add(page, &cap, &e)) {
            free((char *)e.key);
            free((char *)e.etag);
            goto nomem;
        }
    }
    p = 0;
    while (sv_loc_xml_next(in, il, &p, "CommonPrefixes", &c, &cl)) {
        sv_location_entry e = {0};
        size_t q = 0;
        const char *v;
        size_t vl;
        if (!sv_loc_xml_next(c, cl, &q, "Prefix", &v, &vl))
            continue;
        e.key = xml_dup(v, vl);
        e.is_prefix = true;
        if (!e.key || page_add(page, &cap, &e)) {
            free((char *)e.key);
            goto nomem;
        }
    }
    /* Contents and CommonPrefixes come as two sorted runs: merge them. */
    if (page->n > 1)
        qsort(page->entries, page->n, sizeof *page->entries, entry_cmp);
    return 0;
nomem:
    sv_loc_list_page_free(page);
    return sv_fail(err, SV_ENOMEM, "out of memory parsing ListObjectsV2 response");
}

int64_t sv_loc_parse_iso8601(const char *s)
{
    int Y, M, D, h, m, sec, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6)
        return -1;
    int ms = 0;
    const char *p = s + n;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3) {
                ms = ms * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        while (digits++ < 3)
            ms *= 10;
    }
    if (*p != 'Z' || p[1])
        return -1;
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D,
                    .tm_hour = h, .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    return (int64_t)t * 1000 + ms;
}

int64_t sv_loc_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t rnd)
{
    if (attempt < 0)
        attempt = 0;
    int64_t d = base_ms;
    for (int i = 0; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    int64_t half = d / 2;
    return half + (int64_t)(rnd % (uint32_t)(d - half + 1));
}

void sv_loc_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = 0;
}
