/* s3:// driver: libcurl, SigV4 via CURLOPT_AWS_SIGV4, path-style URLs.
 *
 * What curl 7.88 does not do for us and this file does:
 *  - x-amz-content-sha256 is always sent. Request bodies are always handed
 *    to curl in memory (CURLOPT_POSTFIELDS), because curl hashes exactly that
 *    buffer into the canonical request; the header carries the same hash.
 *  - the query string is built canonical (encoded, sorted) by
 *    sv_loc_canonical_query, because curl signs the query verbatim.
 *  - keys are percent-encoded once (RFC 3986, '/' kept), as S3 expects.
 *
 * Connections: finished easy handles go back to a per-location pool, and a
 * handle keeps its live connections across curl_easy_reset, so small
 * requests reuse TCP connections; a share handle shares DNS and TLS
 * sessions between all of them. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "location_internal.h"

#define POOL_MAX 64
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MAX_ERR_BODY (1 << 20)

typedef struct s3_loc {
    sv_location base;
    char *bucket;
    char *prefix;   /* "" or "a/b" (no trailing slash) */
    char *sigv4;    /* "aws:amz:<region>:s3" */
    char *userpwd;  /* "AK:SK" or NULL (anonymous) */
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
    pthread_mutex_t pool_mu;
    CURL *pool[POOL_MAX];
    int npool;
    pthread_mutex_t cond_mu;
    int cond_supported; /* -1 unknown (not probed), 0 no, 1 yes */
} s3_loc;

#define S(loc) ((s3_loc *)(loc))

/* ---- helpers -------------------------------------------------------------- */

static uint32_t rnd32(void)
{
    static __thread uint64_t s;
    if (!s)
        s = (uint64_t)sv_mono_ns() ^ ((uint64_t)(uintptr_t)&s << 17) ^ 0x9E3779B97F4A7C15ull;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return (uint32_t)(s >> 16);
}

static char *full_key(sv_location *loc, const char *key)
{
    sv_buf b = {0};
    int rc = *S(loc)->prefix ? sv_buf_printf(&b, "%s/%s", S(loc)->prefix, key) : sv_buf_append_str(&b, key);
    if (rc) {
        sv_buf_free(&b);
        return NULL;
    }
    return sv_buf_cstr(&b);
}

/* Escapes text for an XML element body. */
static int xml_escape(sv_buf *b, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        switch (*s) {
        case '&': rc = sv_buf_append_str(b, "&amp;"); break;
        case '<': rc = sv_buf_append_str(b, "&lt;"); break;
        case '>': rc = sv_buf_append_str(b, "&gt;"); break;
        case '"': rc = sv_buf_append_str(b, "&quot;"); break;
        case '\'': rc = sv_buf_append_str(b, "&apos;"); break;
        default: rc = sv_buf_putc(b, (uint8_t)*s);
        }
    }
    return rc;
}

/* ---- one HTTP request ------------------------------------------------------ */

typedef struct s3_req {
    const char *method;     /* GET HEAD PUT POST DELETE */
    const char *fkey;       /* full object key, NULL = the bucket */
    const char *query;      /* canonical query, NULL = none */
    const void *body;
    size_t body_len;
    const char *hdrs[6];    /* extra "Name: value" headers, NULL-terminated */
    const char *range;      /* "bytes=a-b" or NULL */
    sv_location_sink sink;  /* 2xx bodies stream here when set */
    void *sink_ctx;
    int64_t skip;           /* bytes of a 200 body to drop (server ignored Range) */
} s3_req;

typedef struct s3_resp {
    long status;
    CURLcode cc;
    char curl_msg[CURL_ERROR_SIZE];
    sv_buf body;
    int64_t delivered; /* bytes handed to the sink in this attempt */
    int sink_rc;
    int64_t content_length;
    char etag[80];
    int64_t mtime_ms;
    bool status_seen;
} s3_resp;

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    s3_resp *r = ud;
    size_t len = size * n;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) { /* new response (after 100 or a redirect) */
        r->etag[0] = 0;
        r->content_length = -1;
        r->mtime_ms = 0;
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1;
    const char *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t vl = (size_t)(end - v);
    char val[256];
    if (vl >= sizeof val)
        vl = sizeof val - 1;
    memcpy(val, v, vl);
    val[vl] = 0;
    if (nl == 4 && !strncasecmp(buf, "etag", 4)) {
        char *t = val;
        size_t tl = strlen(t);
        if (tl >= 2 && t[0] == '"' && t[tl - 1] == '"') {
            t[tl - 1] = 0;
            t++;
        }
        sv_loc_strlcpy(r->etag, sizeof r->etag, t);
    } else if (nl == 14 && !strncasecmp(buf, "content-length", 14)) {
        r->content_length = strtoll(val, NULL, 10);
    } else if (nl == 13 && !strncasecmp(buf, "last-modified", 13)) {
        time_t t = curl_getdate(val, NULL);
        if (t >= 0)
            r->mtime_ms = (int64_t)t * 1000;
    }
    return len;
}

typedef struct write_ctx {
    CURL *h;
    const s3_req *q;
    s3_resp *r;
} write_ctx;

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
    write_ctx *w = ud;
    size_t len = size * n;
    if (!w->r->status_seen) {
        curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &w->r->status);
        w->r->status_seen = true;
    }
    if (w->q->sink && w->r->status >= 200 && w->r->status < 300) {
        const char *p = buf;
        size_t l = len;
        if (w->q->skip > 0 && w->r->status == 200) {
            int64_t drop = w->q->skip - w->r->delivered;
            /* delivered counts dropped bytes too until skip is reached */
            if (drop > 0) {
                size_t d = (size_t)drop < l ? (size_t)drop : l;
                w->r->delivered += (int64_t)d;
                p += d;
                l -= d;
            }
        }
        if (l) {
            int rc = w->q->sink(w->q->sink_ctx, p, l);
            if (rc) {
                w->r->sink_rc = rc;
                return 0; /* makes curl stop with CURLE_WRITE_ERROR */
            }
            w->r->delivered += (int64_t)l;
        }
        return len;
    }
    if (w->r->body.len + len > MAX_ERR_BODY * 64)
        return 0;
    return sv_buf_append(&w->r->body, buf, len) ? 0 : len;
}

static CURL *pool_get(s3_loc *l)
{
    CURL *h = NULL;
    pthread_mutex_lock(&l->pool_mu);
    if (l->npool)
        h = l->pool[--l->npool];
    pthread_mutex_unlock(&l->pool_mu);
    if (h)
        curl_easy_reset(h); /* keeps live connections and caches */
    else
        h = curl_easy_init();
    return h;
}

static void pool_put(s3_loc *l, CURL *h)
{
    pthread_mutex_lock(&l->pool_mu);
    if (l->npool < POOL_MAX) {
        l->pool[l->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&l->pool_mu);
    if (h)
        curl_easy_cleanup(h);
}

static void resp_reset(s3_resp *r)
{
    sv_buf_reset(&r->body);
    r->status = 0;
    r->cc = CURLE_OK;
    r->curl_msg[0] = 0;
    r->delivered = 0;
    r->sink_rc = 0;
    r->content_length = -1;
    r->etag[0] = 0;
    r->mtime_ms = 0;
    r->status_seen = false;
}

/* Performs one attempt. Returns 0 when a response (any status) was received,
 * else SV_ENOMEM/SV_EIO with r->cc set. */
static int s3_once(sv_location *loc, const s3_req *q, s3_resp *r)
{
    s3_loc *l = S(loc);
    const sv_location_opts *o = &loc->o;
    resp_reset(r);
    sv_buf url = {0};
    int rc = sv_buf_printf(&url, "%s/%s", o->endpoint, l->bucket);
    if (!rc && q->fkey) {
        rc = sv_buf_putc(&url, '/');
        if (!rc)
            rc = sv_loc_uri_encode(&url, q->fkey, strlen(q->fkey), true);
    } else if (!rc && !q->fkey) {
        rc = sv_buf_putc(&url, '/');
    }
    if (!rc && q->query && *q->query)
        rc = sv_buf_printf(&url, "?%s", q->query);
    if (rc || !sv_buf_cstr(&url)) {
        sv_buf_free(&url);
        return SV_ENOMEM;
    }
    CURL *h = pool_get(l);
    if (!h) {
        sv_buf_free(&url);
        return SV_ENOMEM;
    }
    struct curl_slist *hl = NULL;
    char sha[65];
    char shah[96];
    if (q->body && q->body_len)
        sv_loc_sha256_hex(q->body, q->body_len, sha);
    else
        memcpy(sha, EMPTY_SHA256, 65);
    snprintf(shah, sizeof shah, "x-amz-content-sha256: %s", sha);
    hl = curl_slist_append(hl, shah);
    hl = curl_slist_append(hl, "Expect:"); /* no 100-continue round trip */
    char rangeh[96];
    if (q->range) {
        snprintf(rangeh, sizeof rangeh, "Range: %s", q->range);
        hl = curl_slist_append(hl, rangeh);
    }
    sv_buf tokh = {0};
    if (o->session_token && *o->session_token && l->userpwd) {
        sv_buf_printf(&tokh, "x-amz-security-token: %s", o->session_token);
        if (sv_buf_cstr(&tokh))
            hl = curl_slist_append(hl, (char *)tokh.data);
    }
    for (int i = 0; i < 6 && q->hdrs[i]; i++)
        hl = curl_slist_append(hl, q->hdrs[i]);
    bool has_body = !strcmp(q->method, "PUT") || !strcmp(q->method, "POST");
    if (has_body)
        hl = curl_slist_append(hl, "Content-Type: application/octet-stream");

    curl_easy_setopt(h, CURLOPT_URL, (char *)url.data);
    curl_easy_setopt(h, CURLOPT_SHARE, l->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    if (o->request_timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)o->request_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)((o->stall_timeout_ms + 999) / 1000));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_msg);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    write_ctx wc = {h, q, r};
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &wc);
    if (l->userpwd) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, l->sigv4);
        curl_easy_setopt(h, CURLOPT_USERPWD, l->userpwd);
    }
    if (!strcmp(q->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (has_body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body ? (const char *)q->body : "");
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    } else if (strcmp(q->method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    r->cc = curl_easy_perform(h);
    if (!r->status_seen)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    if (r->cc != CURLE_OK && !r->curl_msg[0])
        sv_loc_strlcpy(r->curl_msg, sizeof r->curl_msg, curl_easy_strerror(r->cc));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hl);
    sv_buf_free(&url);
    sv_buf_free(&tokh);
    if (r->cc != CURLE_OK) {
        /* A failed connection may be half-dead: do not pool it. */
        curl_easy_cleanup(h);
        return SV_EIO;
    }
    pool_put(l, h);
    return 0;
}

static bool retryable_code(const char *code)
{
    return !strcmp(code, "InternalError") || !strcmp(code, "SlowDown") ||
           !strcmp(code, "ServiceUnavailable") || !strcmp(code, "RequestTimeout");
}

static int status_code(long st, const char *code)
{
    if (st == 404) return SV_ENOTFOUND;
    if (st == 401 || st == 403) return SV_EDENIED;
    if (st == 412) return SV_EEXIST;
    if (st == 409) return SV_ECONFLICT;
    if (st == 405 || st == 501) return SV_EUNSUPPORTED;
    if (st == 400 || st == 416) return SV_EINVAL;
    if (code && !strcmp(code, "RequestTimeout")) return SV_ETIMEOUT;
    return SV_EIO;
}

/* Describes a response (or transport failure) as "HTTP 404 NoSuchKey: msg". */
static int describe_failure(const s3_resp *r, char *out, size_t cap, char *code_out, size_t code_cap)
{
    if (r->cc != CURLE_OK) {
        snprintf(out, cap, "%s (curl error %d)", r->curl_msg, (int)r->cc);
        if (code_cap)
            code_out[0] = 0;
        return r->cc == CURLE_OPERATION_TIMEDOUT ? SV_ETIMEOUT : SV_EIO;
    }
    char code[64] = "", msg[256] = "";
    if (!sv_loc_xml_error((const char *)r->body.data, r->body.len, code, sizeof code, msg, sizeof msg)) {
        sv_loc_strlcpy(code, sizeof code, r->status == 404 ? "NoSuchKey" : "");
        sv_loc_strlcpy(msg, sizeof msg, r->status == 404 ? "not found" : "no error document");
    }
    snprintf(out, cap, "HTTP %ld %s%s%s", r->status, code, *code ? ": " : "", msg);
    if (code_cap)
        sv_loc_strlcpy(code_out, code_cap, code);
    return status_code(r->status, code);
}

/* Runs a request with retries: connection errors, timeouts, 429, 5xx and
 * (when check_body) a 200 whose body is an <Error> are retried with
 * exponential backoff and jitter; other 4xx are not. On failure err reads
 * "<op> <key> at <loc>: <reason>[ after N attempts]". code_out (optional)
 * gets the store's error code. */
static int s3_call(sv_location *loc, const char *op, const char *key, const s3_req *q, s3_resp *r,
                   bool check_body, char *code_out, size_t code_cap, sv_err *err)
{
    const sv_location_opts *o = &loc->o;
    int attempts = o->retries + 1;
    char why[600];
    int code = SV_EIO;
    if (code_cap)
        code_out[0] = 0;
    for (int a = 0; a < attempts; a++) {
        if (a > 0)
            sv_sleep_ms(sv_loc_backoff_ms(a - 1, o->retry_base_ms, 10000, rnd32()));
        int rc = s3_once(loc, q, r);
        if (rc == SV_ENOMEM)
            return sv_fail(err, SV_ENOMEM, "%s %s at %s: out of memory", op, key, loc->describe);
        if (r->sink_rc)
            return sv_fail(err, r->sink_rc, "%s %s at %s: the receiver stopped the transfer (%s)", op, key,
                           loc->describe, sv_strerror(r->sink_rc));
        bool retry;
        if (rc == 0 && r->status >= 200 && r->status < 300) {
            char ecode[64], emsg[256];
            if (!check_body ||
                !sv_loc_xml_error((const char *)r->body.data, r->body.len, ecode, sizeof ecode, emsg, sizeof emsg))
                return 0;
            snprintf(why, sizeof why, "HTTP %ld with error %s: %s", r->status, ecode, emsg);
            if (code_cap)
                sv_loc_strlcpy(code_out, code_cap, ecode);
            code = SV_EIO;
            retry = retryable_code(ecode);
        } else {
            code = describe_failure(r, why, sizeof why, code_out, code_cap);
            retry = rc != 0 || r->status == 429 || r->status >= 500;
        }
        if (!retry || a + 1 == attempts) {
            if (a > 0)
                return sv_fail(err, code, "%s %s at %s: %s (after %d attempts)", op, key, loc->describe, why, a + 1);
            return sv_fail(err, code, "%s %s at %s: %s", op, key, loc->describe, why);
        }
        sv_debug("s3 retry", "op=%s key=\"%s\" attempt=%d reason=\"%s\"", op, key, a + 1, why);
    }
    return sv_fail(err, code, "%s %s at %s: %s", op, key, loc->describe, why);
}

/* ---- simple operations ---------------------------------------------------- */

static int s3_put_bytes(sv_location *loc, const char *op, const char *key, const void *data, size_t len,
                        const char *extra_hdr, sv_err *err)
{
    char *fk = full_key(loc, key);
    if (!fk)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    s3_req q = {.method = "PUT", .fkey = fk, .body = data, .body_len = len, .hdrs = {extra_hdr}};
    s3_resp r = {0};
    int rc = s3_call(loc, op, key, &q, &r, false, NULL, 0, err);
    sv_buf_free(&r.body);
    free(fk);
    return rc;
}

static int s3_head_full(sv_location *loc, const char *op, const char *key, sv_location_info *info, sv_err *err)
{
    char *fk = full_key(loc, key);
    if (!fk)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    s3_req q = {.method = "HEAD", .fkey = fk};
    s3_resp r = {0};
    int rc = s3_call(loc, op, key, &q, &r, false, NULL, 0, err);
    if (rc == SV_ENOTFOUND)
        rc = sv_fail(err, SV_ENOTFOUND, "%s %s at %s: no such object", op, key, loc->describe);
    if (rc == 0) {
        info->size = r.content_length < 0 ? 0 : r.content_length;
        info->mtime_ms = r.mtime_ms;
        sv_loc_strlcpy(info->etag, sizeof info->etag, r.etag);
    }
    sv_buf_free(&r.body);
    free(fk);
    return rc;
}

static int s3_head(sv_location *loc, const char *key, sv_location_info *info, sv_err *err)
{
    return s3_head_full(loc, "head", key, info, err);
}

static int s3_del(sv_location *loc, const char *key, sv_err *err)
{
    char *fk = full_key(loc, key);
    if (!fk)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    s3_req q = {.method = "DELETE", .fkey = fk};
    s3_resp r = {0};
    int rc = s3_call(loc, "delete", key, &q, &r, false, NULL, 0, err);
    if (rc == SV_ENOTFOUND && r.status == 404) {
        /* NoSuchKey is success (as S3 itself answers 204); NoSuchBucket is not. */
        char code[64] = "", msg[8];
        sv_loc_xml_error((const char *)r.body.data, r.body.len, code, sizeof code, msg, sizeof msg);
        if (strcmp(code, "NoSuchBucket"))
            rc = 0;
    }
    if (rc == 0 && err)
        sv_err_clear(err);
    sv_buf_free(&r.body);
    free(fk);
    return rc;
}

static int md5_base64(const void *data, size_t len, char out[32])
{
    unsigned char md[16];
    unsigned int ml = 0;
    if (!EVP_Digest(data, len, md, &ml, EVP_md5(), NULL))
        return SV_EINTERNAL;
    EVP_EncodeBlock((unsigned char *)out, md, 16);
    return 0;
}

static int s3_delete_many(sv_location *loc, const char *const *keys, size_t n, sv_err *err)
{
    size_t failed = 0;
    int first_rc = 0;
    char first[512] = "";
    for (size_t at = 0; at < n; at += 1000) {
        size_t cnt = n - at < 1000 ? n - at : 1000;
        sv_buf b = {0};
        int rc = sv_buf_append_str(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                                       "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
        for (size_t i = 0; i < cnt && rc == 0; i++) {
            char *fk = full_key(loc, keys[at + i]);
            rc = fk ? sv_buf_append_str(&b, "<Object><Key>") : SV_ENOMEM;
            if (!rc)
                rc = xml_escape(&b, fk);
            if (!rc)
                rc = sv_buf_append_str(&b, "</Key></Object>");
            free(fk);
        }
        if (!rc)
            rc = sv_buf_append_str(&b, "</Delete>");
        if (rc) {
            sv_buf_free(&b);
            return sv_fail(err, SV_ENOMEM, "out of memory");
        }
        char md5[32], md5h[64];
        md5_base64(b.data, b.len, md5);
        snprintf(md5h, sizeof md5h, "Content-MD5: %s", md5);
        s3_req q = {.method = "POST", .query = "delete=", .body = b.data, .body_len = b.len, .hdrs = {md5h}};
        s3_resp r = {0};
        char what[64];
        snprintf(what, sizeof what, "(%zu keys from #%zu)", cnt, at);
        rc = s3_call(loc, "delete_many", what, &q, &r, false, NULL, 0, err);
        sv_buf_free(&b);
        if (rc) {
            sv_buf_free(&r.body);
            return rc;
        }
        /* Quiet mode: the result lists only the keys that failed. */
        size_t pos = 0;
        const char *in;
        size_t il;
        while (sv_loc_xml_next((const char *)r.body.data, r.body.len, &pos, "Error", &in, &il)) {
            if (!failed) {
                char k[256] = "", c[64] = "", m[128] = "";
                sv_loc_xml_get(in, il, "Key", k, sizeof k);
                sv_loc_xml_get(in, il, "Code", c, sizeof c);
                sv_loc_xml_get(in, il, "Message", m, sizeof m);
                snprintf(first, sizeof first, "%s: %s: %s", k, c, m);
                first_rc = status_code(!strcmp(c, "AccessDenied") ? 403 : 500, c);
            }
            failed++;
        }
        sv_buf_free(&r.body);
    }
    if (failed)
        return sv_fail(err, first_rc, "delete_many at %s: %zu of %zu keys failed; first: %s", loc->describe,
                       failed, n, first);
    return 0;
}

static int s3_copy(sv_location *loc, const char *src, const char *dst, sv_err *err)
{
    char *fs = full_key(loc, src), *fd = full_key(loc, dst);
    sv_buf h = {0};
    int rc = (fs && fd) ? sv_buf_printf(&h, "x-amz-copy-source: /%s/", S(loc)->bucket) : SV_ENOMEM;
    if (!rc)
        rc = sv_loc_uri_encode(&h, fs, strlen(fs), true);
    if (rc || !sv_buf_cstr(&h)) {
        free(fs);
        free(fd);
        sv_buf_free(&h);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    s3_req q = {.method = "PUT", .fkey = fd, .hdrs = {(char *)h.data}};
    s3_resp r = {0};
    char what[600];
    snprintf(what, sizeof what, "%s -> %s", src, dst);
    char code[64];
    rc = s3_call(loc, "copy", what, &q, &r, true, code, sizeof code, err);
    if (rc == SV_ENOTFOUND && !strcmp(code, "NoSuchKey"))
        rc = sv_fail(err, SV_ENOTFOUND, "copy %s at %s: source object does not exist", what, loc->describe);
    sv_buf_free(&r.body);
    sv_buf_free(&h);
    free(fs);
    free(fd);
    return rc;
}

/* ---- get: ranged, streaming, resumable ------------------------------------ */

typedef struct get_ctx {
    sv_location_sink sink;
    void *ctx;
    int64_t total; /* delivered across attempts */
} get_ctx;

static int get_sink(void *c, const void *data, size_t len)
{
    get_ctx *g = c;
    int rc = g->sink(g->ctx, data, len);
    if (rc == 0)
        g->total += (int64_t)len;
    return rc;
}

static int s3_get(sv_location *loc, const char *key, int64_t off, int64_t len,
                  sv_location_sink sink, void *ctx, sv_err *err)
{
    if (len == 0) {
        sv_location_info info;
        int rc = s3_head_full(loc, "get", key, &info, err);
        if (rc == 0 && off > info.size)
            rc = sv_fail(err, SV_EINVAL, "get %s at %s: range starts at %lld, beyond the object's %lld bytes", key,
                         loc->describe, (long long)off, (long long)info.size);
        return rc;
    }
    char *fk = full_key(loc, key);
    if (!fk)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    const sv_location_opts *o = &loc->o;
    get_ctx g = {sink, ctx, 0};
    char etag[80] = "";
    char ifmatch[128];
    char range[80];
    s3_resp r = {0};
    int rc = SV_EIO;
    int attempts = o->retries + 1;
    char why[600] = "";
    for (int a = 0; a < attempts; a++) {
        if (a > 0)
            sv_sleep_ms(sv_loc_backoff_ms(a - 1, o->retry_base_ms, 10000, rnd32()));
        int64_t start = off + g.total;
        s3_req q = {.method = "GET", .fkey = fk, .sink = get_sink, .sink_ctx = &g};
        if (start > 0 || len > 0) {
            if (len > 0)
                snprintf(range, sizeof range, "bytes=%lld-%lld", (long long)start, (long long)(off + len - 1));
            else
                snprintf(range, sizeof range, "bytes=%lld-", (long long)start);
            q.range = range;
            q.skip = start;
        }
        if (etag[0]) {
            snprintf(ifmatch, sizeof ifmatch, "If-Match: \"%s\"", etag);
            q.hdrs[0] = ifmatch;
        }
        int orc = s3_once(loc, &q, &r);
        if (orc == SV_ENOMEM) {
            rc = sv_fail(err, SV_ENOMEM, "get %s at %s: out of memory", key, loc->describe);
            break;
        }
        if (r.sink_rc) {
            rc = sv_fail(err, r.sink_rc, "get %s at %s: the receiver stopped the transfer (%s)", key,
                         loc->describe, sv_strerror(r.sink_rc));
            break;
        }
        if (!etag[0] && r.etag[0] && r.status >= 200 && r.status < 300)
            sv_loc_strlcpy(etag, sizeof etag, r.etag);
        if (orc == 0 && r.status >= 200 && r.status < 300) {
            rc = 0;
            break;
        }
        if (orc == 0 && r.status == 416) {
            /* Empty remainder: fine when the range starts exactly at the end. */
            sv_location_info info;
            sv_err e2 = {0};
            if (s3_head_full(loc, "get", key, &info, &e2) == 0 && start == info.size) {
                rc = 0;
            } else {
                rc = sv_fail(err, SV_EINVAL, "get %s at %s: range starts at %lld, beyond the object's end", key,
                             loc->describe, (long long)start);
            }
            break;
        }
        if (orc == 0 && r.status == 412 && etag[0]) {
            rc = sv_fail(err, SV_ECONFLICT, "get %s at %s: the object was replaced while being read", key,
                         loc->describe);
            break;
        }
        rc = describe_failure(&r, why, sizeof why, NULL, 0);
        bool retry = orc != 0 || r.status == 429 || r.status >= 500;
        if (!retry || a + 1 == attempts) {
            if (rc == SV_ENOTFOUND)
                rc = sv_fail(err, rc, "get %s at %s: no such object (%s)", key, loc->describe, why);
            else if (a > 0)
                rc = sv_fail(err, rc, "get %s at %s: %s (after %d attempts, %lld bytes delivered)", key,
                             loc->describe, why, a + 1, (long long)g.total);
            else
                rc = sv_fail(err, rc, "get %s at %s: %s", key, loc->describe, why);
            break;
        }
    }
    sv_buf_free(&r.body);
    free(fk);
    return rc;
}

/* ---- list ------------------------------------------------------------------ */

static int s3_list(sv_location *loc, const char *prefix, const char *delim, const char *start_after,
                   sv_location_list_fn fn, void *ctx, sv_err *err)
{
    s3_loc *l = S(loc);
    size_t lp = strlen(l->prefix);
    char *fprefix = NULL, *fstart = NULL;
    sv_buf b1 = {0}, b2 = {0};
    if (lp)
        sv_buf_printf(&b1, "%s/%s", l->prefix, prefix);
    else
        sv_buf_append_str(&b1, prefix);
    fprefix = sv_buf_cstr(&b1);
    if (start_after) {
        if (lp)
            sv_buf_printf(&b2, "%s/%s", l->prefix, start_after);
        else
            sv_buf_append_str(&b2, start_after);
        fstart = sv_buf_cstr(&b2);
    }
    if (!fprefix || (start_after && !fstart)) {
        sv_buf_free(&b1);
        sv_buf_free(&b2);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    size_t strip = lp ? lp + 1 : 0;
    char *token = NULL;
    int rc = 0;
    char maxkeys[16];
    snprintf(maxkeys, sizeof maxkeys, "%d", loc->o.list_page_size);
    bool stop = false;
    while (!stop && rc == 0) {
        const char *params[12];
        size_t np = 0;
        params[2 * np] = "list-type", params[2 * np + 1] = "2", np++;
        params[2 * np] = "prefix", params[2 * np + 1] = fprefix, np++;
        params[2 * np] = "max-keys", params[2 * np + 1] = maxkeys, np++;
        if (delim)
            params[2 * np] = "delimiter", params[2 * np + 1] = delim, np++;
        if (token)
            params[2 * np] = "continuation-token", params[2 * np + 1] = token, np++;
        else if (fstart)
            params[2 * np] = "start-after", params[2 * np + 1] = fstart, np++;
        sv_buf qs = {0};
        if (sv_loc_canonical_query(&qs, params, np) || !sv_buf_cstr(&qs)) {
            sv_buf_free(&qs);
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
            break;
        }
        s3_req q = {.method = "GET", .query = (char *)qs.data};
        s3_resp r = {0};
        rc = s3_call(loc, "list", prefix, &q, &r, false, NULL, 0, err);
        sv_buf_free(&qs);
        if (rc) {
            sv_buf_free(&r.body);
            break;
        }
        sv_loc_list_page page;
        rc = sv_loc_parse_list_v2((const char *)r.body.data, r.body.len, &page, err);
        sv_buf_free(&r.body);
        if (rc) {
            sv_err_wrap(err, "list %s at %s", prefix, loc->describe);
            break;
        }
        for (size_t i = 0; i < page.n && !stop; i++) {
            sv_location_entry e = page.entries[i];
            if (strlen(e.key) < strip)
                continue;
            e.key += strip;
            /* The store applies start-after itself; a common prefix that
             * sorts before it is still listed when it holds later keys. */
            if (start_after && !e.is_prefix && strcmp(e.key, start_after) <= 0)
                continue;
            int cr = fn(ctx, &e);
            if (cr > 0)
                stop = true;
            else if (cr < 0) {
                rc = sv_fail(err, cr, "list %s at %s: stopped by the caller (%s)", prefix, loc->describe,
                             sv_strerror(cr));
                stop = true;
            }
        }
        free(token);
        token = NULL;
        if (page.truncated && page.next_token) {
            token = page.next_token;
            page.next_token = NULL;
        } else if (page.truncated) {
            rc = sv_fail(err, SV_EIO, "list %s at %s: truncated page without NextContinuationToken", prefix,
                         loc->describe);
        } else {
            stop = true;
        }
        sv_loc_list_page_free(&page);
    }
    free(token);
    sv_buf_free(&b1);
    sv_buf_free(&b2);
    return rc;
}

/* ---- multipart writer ------------------------------------------------------ */

typedef struct s3_part {
    struct s3_part *next;
    int no;
    sv_buf data;
} s3_part;

typedef struct s3_writer {
    sv_location_writer base;
    char *fkey;
    sv_buf cur;
    char *upload_id;
    int next_no;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s3_part *qhead, *qtail;
    int inflight;    /* queued + uploading */
    int nthreads;
    pthread_t threads[64];
    bool closing;
    int fail_rc;
    sv_err fail_err;
    char (*etags)[80];
    int etag_cap;
} s3_writer;

static int upload_part(s3_writer *w, s3_part *p, char etag[80], sv_err *err)
{
    sv_location *loc = w->base.loc;
    const char *params[4] = {"partNumber", NULL, "uploadId", w->upload_id};
    char no[16];
    snprintf(no, sizeof no, "%d", p->no);
    params[1] = no;
    sv_buf qs = {0};
    if (sv_loc_canonical_query(&qs, params, 2) || !sv_buf_cstr(&qs)) {
        sv_buf_free(&qs);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    s3_req q = {.method = "PUT", .fkey = w->fkey, .query = (char *)qs.data, .body = p->data.data,
                .body_len = p->data.len};
    s3_resp r = {0};
    char what[300];
    snprintf(what, sizeof what, "%s (part %d)", w->base.key, p->no);
    int rc = s3_call(loc, "write", what, &q, &r, false, NULL, 0, err);
    if (rc == 0 && !r.etag[0])
        rc = sv_fail(err, SV_EIO, "write %s at %s: UploadPart answered without an ETag", what, loc->describe);
    if (rc == 0)
        sv_loc_strlcpy(etag, 80, r.etag);
    sv_buf_free(&r.body);
    sv_buf_free(&qs);
    return rc;
}

static void *part_worker(void *arg)
{
    s3_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->qhead && !w->closing)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->qhead)
            break;
        s3_part *p = w->qhead;
        w->qhead = p->next;
        if (!w->qhead)
            w->qtail = NULL;
        bool skip = w->fail_rc != 0;
        pthread_mutex_unlock(&w->mu);
        char etag[80] = "";
        sv_err e = {0};
        int rc = skip ? 0 : upload_part(w, p, etag, &e);
        pthread_mutex_lock(&w->mu);
        if (rc && !w->fail_rc) {
            w->fail_rc = rc;
            w->fail_err = e;
        } else if (!skip && rc == 0) {
            sv_loc_strlcpy(w->etags[p->no - 1], 80, etag);
        }
        w->inflight--;
        pthread_cond_broadcast(&w->cv);
        sv_buf_free(&p->data);
        free(p);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static int start_multipart(s3_writer *w, sv_err *err)
{
    sv_location *loc = w->base.loc;
    s3_req q = {.method = "POST", .fkey = w->fkey, .query = "uploads="};
    s3_resp r = {0};
    int rc = s3_call(loc, "write", w->base.key, &q, &r, true, NULL, 0, err);
    if (rc == 0) {
        char id[1024];
        if (!sv_loc_xml_get((const char *)r.body.data, r.body.len, "UploadId", id, sizeof id) || !*id)
            rc = sv_fail(err, SV_EIO, "write %s at %s: CreateMultipartUpload answered without an UploadId",
                         w->base.key, loc->describe);
        else if (!(w->upload_id = strdup(id)))
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
    }
    sv_buf_free(&r.body);
    w->next_no = 1;
    return rc;
}

/* Hands a full part to the workers; blocks while `concurrency` parts are in
 * flight, which bounds the writer's memory. */
static int enqueue_part(s3_writer *w, sv_buf *data, sv_err *err)
{
    const sv_location_opts *o = &w->base.loc->o;
    if (w->next_no > 10000)
        return sv_fail(err, SV_ETOOBIG, "write %s at %s: more than 10000 parts; raise SHARDVAULT_S3_PART_SIZE "
                       "(now %lld bytes)", w->base.key, w->base.loc->describe, (long long)o->part_size);
    s3_part *p = calloc(1, sizeof *p);
    if (!p)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    pthread_mutex_lock(&w->mu);
    if (w->next_no > w->etag_cap) {
        int nc = w->etag_cap ? w->etag_cap * 2 : 64;
        void *ne = realloc(w->etags, (size_t)nc * sizeof *w->etags);
        if (!ne) {
            pthread_mutex_unlock(&w->mu);
            free(p);
            return sv_fail(err, SV_ENOMEM, "out of memory");
        }
        w->etags = ne;
        w->etag_cap = nc;
    }
    while (w->inflight >= o->concurrency && !w->fail_rc)
        pthread_cond_wait(&w->cv, &w->mu);
    if (w->fail_rc) {
        int rc = w->fail_rc;
        if (err)
            *err = w->fail_err;
        pthread_mutex_unlock(&w->mu);
        free(p);
        return rc;
    }
    p->no = w->next_no++;
    w->etags[p->no - 1][0] = 0;
    p->data = *data;
    memset(data, 0, sizeof *data);
    if (w->qtail)
        w->qtail->next = p;
    else
        w->qhead = p;
    w->qtail = p;
    w->inflight++;
    int rc = 0;
    if (w->nthreads < o->concurrency && w->nthreads < w->inflight) {
        if (pthread_create(&w->threads[w->nthreads], NULL, part_worker, w) == 0)
            w->nthreads++;
        else if (w->nthreads == 0)
            rc = sv_fail(err, SV_EIO, "write %s: cannot start an upload thread", w->base.key);
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Moves full part_size chunks from cur to the workers. */
static int flush_parts(s3_writer *w, bool all, sv_err *err)
{
    const sv_location_opts *o = &w->base.loc->o;
    size_t ps = (size_t)o->part_size;
    while (w->cur.len >= ps || (all && w->cur.len > 0)) {
        sv_buf part = {0};
        if (w->cur.len <= ps) {
            part = w->cur;
            memset(&w->cur, 0, sizeof w->cur);
        } else {
            if (sv_buf_append(&part, w->cur.data, ps))
                return sv_fail(err, SV_ENOMEM, "out of memory");
            memmove(w->cur.data, w->cur.data + ps, w->cur.len - ps);
            w->cur.len -= ps;
        }
        int rc = enqueue_part(w, &part, err);
        sv_buf_free(&part);
        if (rc)
            return rc;
    }
    return 0;
}

static int sw_write(sv_location_writer *bw, const void *data, size_t len, sv_err *err)
{
    s3_writer *w = (s3_writer *)bw;
    const sv_location_opts *o = &bw->loc->o;
    const char *p = data;
    while (len) {
        size_t limit = w->upload_id ? (size_t)o->part_size : (size_t)o->multipart_threshold;
        if (w->cur.len >= limit) {
            /* More bytes beyond a full buffer: the object goes multipart. */
            int rc = w->upload_id ? 0 : start_multipart(w, err);
            if (!rc)
                rc = flush_parts(w, false, err);
            if (rc)
                return rc;
            continue;
        }
        size_t n = limit - w->cur.len < len ? limit - w->cur.len : len;
        /* Grow with the data (small objects stay small); a multipart part
         * buffer is sized once. */
        size_t want = w->upload_id ? limit - w->cur.len : n;
        if (sv_buf_reserve(&w->cur, want))
            return sv_fail(err, SV_ENOMEM, "write %s: out of memory for a %zu-byte buffer", bw->key, limit);
        memcpy(w->cur.data + w->cur.len, p, n);
        w->cur.len += n;
        p += n;
        len -= n;
    }
    return 0;
}

static void abort_upload(s3_writer *w)
{
    if (!w->upload_id)
        return;
    sv_location *loc = w->base.loc;
    const char *params[2] = {"uploadId", w->upload_id};
    sv_buf qs = {0};
    if (sv_loc_canonical_query(&qs, params, 1) || !sv_buf_cstr(&qs)) {
        sv_buf_free(&qs);
        return;
    }
    s3_req q = {.method = "DELETE", .fkey = w->fkey, .query = (char *)qs.data};
    s3_resp r = {0};
    sv_err e = {0};
    int rc = s3_call(loc, "abort", w->base.key, &q, &r, false, NULL, 0, &e);
    /* Stores without AbortMultipartUpload (s3rver: 405) keep the parts but
     * never show an object under the key; a lifecycle rule cleans up. */
    if (rc && rc != SV_EUNSUPPORTED && rc != SV_ENOTFOUND)
        sv_warn("multipart abort failed", "key=\"%s\" error=\"%s\"", w->base.key, e.msg);
    else if (rc)
        sv_debug("multipart abort not supported", "key=\"%s\" error=\"%s\"", w->base.key, e.msg);
    sv_buf_free(&r.body);
    sv_buf_free(&qs);
}

static void stop_workers(s3_writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->closing = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->nthreads = 0;
}

static void sw_free(s3_writer *w)
{
    stop_workers(w);
    while (w->qhead) {
        s3_part *p = w->qhead;
        w->qhead = p->next;
        sv_buf_free(&p->data);
        free(p);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    sv_buf_free(&w->cur);
    free(w->etags);
    free(w->upload_id);
    free(w->fkey);
    free(w->base.key);
    free(w);
}

static void sw_abort(sv_location_writer *bw)
{
    s3_writer *w = (s3_writer *)bw;
    pthread_mutex_lock(&w->mu);
    if (!w->fail_rc)
        w->fail_rc = SV_ECANCELED; /* workers skip queued parts */
    pthread_mutex_unlock(&w->mu);
    stop_workers(w);
    abort_upload(w);
    sw_free(w);
}

static int complete_upload(s3_writer *w, sv_err *err)
{
    sv_location *loc = w->base.loc;
    sv_buf b = {0};
    int rc = sv_buf_append_str(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                                   "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (int i = 1; i < w->next_no && rc == 0; i++) {
        rc = sv_buf_printf(&b, "<Part><PartNumber>%d</PartNumber><ETag>&quot;", i);
        if (!rc)
            rc = xml_escape(&b, w->etags[i - 1]);
        if (!rc)
            rc = sv_buf_append_str(&b, "&quot;</ETag></Part>");
    }
    if (!rc)
        rc = sv_buf_append_str(&b, "</CompleteMultipartUpload>");
    const char *params[2] = {"uploadId", w->upload_id};
    sv_buf qs = {0};
    if (rc || sv_loc_canonical_query(&qs, params, 1) || !sv_buf_cstr(&qs)) {
        sv_buf_free(&b);
        sv_buf_free(&qs);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    s3_req q = {.method = "POST", .fkey = w->fkey, .query = (char *)qs.data, .body = b.data, .body_len = b.len};
    s3_resp r = {0};
    char code[64];
    rc = s3_call(loc, "write", w->base.key, &q, &r, true, code, sizeof code, err);
    if (rc == SV_ENOTFOUND && !strcmp(code, "NoSuchUpload")) {
        /* A retried Complete whose first attempt succeeded finds no upload:
         * accept it when an object of exactly our size is in place. */
        sv_location_info info;
        sv_err e2 = {0};
        if (s3_head_full(loc, "write", w->base.key, &info, &e2) == 0 && info.size == w->base.size) {
            rc = 0;
            sv_err_clear(err);
        }
    }
    sv_buf_free(&r.body);
    sv_buf_free(&qs);
    sv_buf_free(&b);
    return rc;
}

static int sw_commit(sv_location_writer *bw, sv_err *err)
{
    s3_writer *w = (s3_writer *)bw;
    int rc;
    if (!w->upload_id) {
        rc = s3_put_bytes(bw->loc, "write", bw->key, w->cur.data, w->cur.len, NULL, err);
        sw_free(w);
        return rc;
    }
    rc = flush_parts(w, true, err);
    pthread_mutex_lock(&w->mu);
    while (w->inflight > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    if (rc == 0 && w->fail_rc) {
        rc = w->fail_rc;
        if (err)
            *err = w->fail_err;
    }
    pthread_mutex_unlock(&w->mu);
    stop_workers(w);
    if (rc == 0)
        rc = complete_upload(w, err);
    if (rc)
        abort_upload(w);
    sw_free(w);
    return rc;
}

static const sv_loc_writer_ops sw_ops = {sw_write, sw_commit, sw_abort};

static int s3_writer_open(sv_location *loc, const char *key, sv_location_writer **out, sv_err *err)
{
    s3_writer *w = calloc(1, sizeof *w);
    if (!w)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    w->base.ops = &sw_ops;
    w->base.loc = loc;
    w->base.key = strdup(key);
    w->fkey = full_key(loc, key);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (!w->base.key || !w->fkey) {
        sw_free(w);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    *out = &w->base;
    return 0;
}

static int s3_put_file(sv_location *loc, const char *key, const char *path, sv_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sv_fail(err, errno == ENOENT ? SV_ENOTFOUND : SV_EIO, "put_file %s at %s: cannot open %s: %s", key,
                       loc->describe, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= loc->o.multipart_threshold) {
        /* Small file: one exact-size buffer, one PUT. */
        size_t sz = (size_t)st.st_size;
        char *data = malloc(sz ? sz : 1);
        size_t got = 0;
        while (data && got < sz) {
            ssize_t n = pread(fd, data + got, sz - got, (off_t)got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        close(fd);
        int rc;
        if (!data)
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
        else if (got != sz)
            rc = sv_fail(err, SV_EIO, "put_file %s at %s: reading %s: short read", key, loc->describe, path);
        else
            rc = s3_put_bytes(loc, "put_file", key, data, sz, NULL, err);
        free(data);
        return rc;
    }
    sv_location_writer *w;
    int rc = sv_location_writer_open(loc, key, &w, err);
    if (rc) {
        close(fd);
        return rc;
    }
    size_t bs = 1 << 20;
    char *buf = malloc(bs);
    if (!buf)
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    while (rc == 0) {
        ssize_t n = read(fd, buf, bs);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = sv_fail(err, SV_EIO, "put_file %s at %s: reading %s: %s", key, loc->describe, path, strerror(errno));
        if (n <= 0)
            break;
        rc = sv_location_writer_write(w, buf, (size_t)n, err);
    }
    free(buf);
    close(fd);
    if (rc) {
        sv_location_writer_abort(w);
        return rc;
    }
    return sv_location_writer_commit(w, err);
}

/* ---- create-if-absent -------------------------------------------------------- */

/* Does the store honour If-None-Match: *? Put a probe object twice; a store
 * that implements it answers the second PUT with 412. */
static int probe_conditional(sv_location *loc, sv_err *err)
{
    s3_loc *l = S(loc);
    pthread_mutex_lock(&l->cond_mu);
    int known = l->cond_supported;
    pthread_mutex_unlock(&l->cond_mu);
    if (known >= 0)
        return known;
    sv_uuid u;
    sv_uuid_v4(&u);
    char us[37], key[64];
    sv_uuid_format(&u, us);
    snprintf(key, sizeof key, ".sv-probe-%s", us);
    int rc = s3_put_bytes(loc, "create_if_absent (probe)", key, "p", 1, "If-None-Match: *", err);
    if (rc)
        return rc;
    sv_err e2 = {0};
    int rc2 = s3_put_bytes(loc, "create_if_absent (probe)", key, "p", 1, "If-None-Match: *", &e2);
    int supported = rc2 == SV_EEXIST ? 1 : 0;
    sv_err e3 = {0};
    s3_del(loc, key, &e3);
    pthread_mutex_lock(&l->cond_mu);
    l->cond_supported = supported;
    pthread_mutex_unlock(&l->cond_mu);
    sv_info("s3 conditional write probe", "location=\"%s\" if_none_match=%s", loc->describe,
            supported ? "supported" : "ignored");
    return supported;
}

static int s3_create_if_absent(sv_location *loc, const char *key, const void *data, size_t len, sv_err *err)
{
    sv_location_cond_mode m = loc->o.cond_mode;
    if (m == SV_LOC_COND_OFF)
        return sv_fail(err, SV_EUNSUPPORTED,
                       "create_if_absent %s at %s: conditional writes are disabled "
                       "(SHARDVAULT_S3_CONDITIONAL_WRITES=off)", key, loc->describe);
    if (m == SV_LOC_COND_AUTO) {
        int s = probe_conditional(loc, err);
        if (s < 0)
            return s;
        if (s == 0)
            return sv_fail(err, SV_EUNSUPPORTED,
                           "create_if_absent %s at %s: this store ignores If-None-Match on PUT, so an atomic "
                           "create-if-absent is impossible; set SHARDVAULT_S3_CONDITIONAL_WRITES=best-effort to "
                           "accept a racy HEAD-then-PUT", key, loc->describe);
        m = SV_LOC_COND_NATIVE;
    }
    if (m == SV_LOC_COND_BEST_EFFORT) {
        sv_location_info info;
        sv_err e2 = {0};
        int rc = s3_head_full(loc, "create_if_absent", key, &info, &e2);
        if (rc == 0)
            return sv_fail(err, SV_EEXIST, "create_if_absent %s at %s: the object already exists", key,
                           loc->describe);
        if (rc != SV_ENOTFOUND) {
            if (err)
                *err = e2;
            return rc;
        }
        return s3_put_bytes(loc, "create_if_absent", key, data, len, NULL, err);
    }
    int rc = s3_put_bytes(loc, "create_if_absent", key, data, len, "If-None-Match: *", err);
    if (rc == SV_EEXIST)
        return sv_fail(err, SV_EEXIST, "create_if_absent %s at %s: the object already exists", key, loc->describe);
    return rc;
}

/* ---- open / close ------------------------------------------------------------ */

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
    s3_loc *l = ud;
    pthread_mutex_lock(&l->share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ud)
{
    s3_loc *l = ud;
    pthread_mutex_unlock(&l->share_mu[d]);
}

static void s3_close(sv_location *loc)
{
    s3_loc *l = S(loc);
    for (int i = 0; i < l->npool; i++)
        curl_easy_cleanup(l->pool[i]);
    if (l->share)
        curl_share_cleanup(l->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&l->share_mu[i]);
    pthread_mutex_destroy(&l->pool_mu);
    pthread_mutex_destroy(&l->cond_mu);
    free(l->bucket);
    free(l->prefix);
    free(l->sigv4);
    if (l->userpwd) {
        memset(l->userpwd, 0, strlen(l->userpwd));
        free(l->userpwd);
    }
    free(loc->describe);
    sv_loc_free_opts(&loc->o);
    free(l);
}

static const sv_loc_driver s3_driver = {
    .scheme = "s3",
    .close = s3_close,
    .writer_open = s3_writer_open,
    .put_file = s3_put_file,
    .create_if_absent = s3_create_if_absent,
    .copy = s3_copy,
    .get = s3_get,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .delete_many = s3_delete_many,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int sv_loc_s3_open(const char *bucket, const char *prefix, const sv_location_opts *o,
                   sv_location **out, sv_err *err)
{
    pthread_once(&curl_once, curl_init_once);
    bool has_ak = o->access_key && *o->access_key, has_sk = o->secret_key && *o->secret_key;
    if (has_ak != has_sk)
        return sv_fail(err, SV_EINVAL, "s3://%s: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither",
                       bucket);
    s3_loc *l = calloc(1, sizeof *l);
    if (!l)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&l->share_mu[i], NULL);
    pthread_mutex_init(&l->pool_mu, NULL);
    pthread_mutex_init(&l->cond_mu, NULL);
    l->cond_supported = -1;
    l->base.drv = &s3_driver;
    l->base.o = *o;
    l->bucket = strdup(bucket);
    l->prefix = strdup(prefix);
    sv_buf sig = {0}, up = {0}, d = {0};
    sv_buf_printf(&sig, "aws:amz:%s:s3", o->region);
    l->sigv4 = sv_buf_cstr(&sig);
    if (has_ak) {
        sv_buf_printf(&up, "%s:%s", o->access_key, o->secret_key);
        l->userpwd = sv_buf_cstr(&up);
    }
    sv_buf_printf(&d, "s3://%s%s%s (endpoint %s, region %s)", bucket, *prefix ? "/" : "", prefix, o->endpoint,
                  o->region);
    l->base.describe = sv_buf_cstr(&d);
    l->share = curl_share_init();
    if (!l->bucket || !l->prefix || !l->sigv4 || (has_ak && !l->userpwd) || !l->base.describe || !l->share) {
        l->base.o = (sv_location_opts){0}; /* the caller still owns o on failure */
        s3_close(&l->base);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    curl_share_setopt(l->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(l->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(l->share, CURLSHOPT_USERDATA, l);
    curl_share_setopt(l->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(l->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    *out = &l->base;
    return 0;
}
