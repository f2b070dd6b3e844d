/* etcd catalog driver: etcd's v3 JSON gateway (grpc-gateway) over libcurl.
 * See docs/catalog.md for the semantics and the gateway's pitfalls.
 *
 *   etcd://host:port[,host:port...][/namespace/][?timeout_ms=N&retry_ms=N&dial_ms=N&watch_idle_ms=N]
 *
 * Gateway rules this file lives by:
 *  - keys and values are base64 in JSON; 64-bit integers are JSON strings;
 *  - fields holding a zero value are omitted: no "value" = empty value, no
 *    "succeeded" = false, no "type" in a watch event = PUT, no "TTL" in a
 *    keepalive answer = the lease is gone, no "more" = last page;
 *  - errors come back as {"error","message","code"} with the gRPC code.
 *
 * Availability: every call tries the preferred endpoint, then the others,
 * in rounds with a growing pause, for up to retry_ms. A request that
 * certainly did not reach etcd (connection refused, connect timeout) is
 * always safe to resend; one that might have been applied is resent only
 * when resending cannot change the outcome (reads, keepalives, unconditional
 * writes). A conditional txn whose first attempt may have been applied and
 * whose resend then fails its conditions reports SV_EUNAVAIL ("outcome
 * unknown") rather than a conflict it may have caused itself.
 */
#include "catalog_internal.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#define MAX_EPS 16
#define PAGE 500

typedef struct etcd {
    struct sv_catalog base;
    char *eps[MAX_EPS]; /* "http://host:port" */
    size_t neps;
    char *ns; /* namespace prepended to every key ("" = none) */
    size_t nslen;
    int64_t timeout_ms, retry_ms, dial_ms, watch_idle_ms;
    int64_t max_ops; /* etcd's --max-txn-ops (default 128) */

    pthread_mutex_t mu; /* pool, cur, down */
    CURL **pool;
    size_t npool, poolcap;
    size_t cur;  /* preferred endpoint */
    bool down;   /* no endpoint answered for retry_ms: calls fail after one round */
    int64_t down_since_ms;
    char version[32];
    struct etcd_watch *watches; /* under mu: stopped by close if still running */
} etcd;

static const sv_catalog_driver etcd_driver;

/* ---- small helpers ------------------------------------------------------------ */

static char *b64enc(const void *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* NUL-terminated result (not counted in *len); NULL on bad input or ENOMEM. */
static char *b64dec(const char *s, size_t *len)
{
    size_t n = s ? strlen(s) : 0;
    if (n % 4)
        return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    if (!out)
        return NULL;
    int r = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n) : 0;
    if (r < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes. */
    if (n && s[n - 1] == '=')
        r--;
    if (n > 1 && s[n - 2] == '=')
        r--;
    out[r] = 0;
    *len = (size_t)r;
    return out;
}

/* The gateway writes int64 as strings; accept numbers too. Absent = 0. */
static int64_t jint(json_t *o, const char *field)
{
    json_t *v = json_object_get(o, field);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    return 0;
}

static char *i64s(int64_t v, char buf[24])
{
    snprintf(buf, 24, "%lld", (long long)v);
    return buf;
}

/* ns + key, as base64. */
static char *full_key_b64(etcd *c, const char *key)
{
    size_t kl = strlen(key);
    char *tmp = malloc(c->nslen + kl + 1);
    if (!tmp)
        return NULL;
    memcpy(tmp, c->ns, c->nslen);
    memcpy(tmp + c->nslen, key, kl + 1);
    char *out = b64enc(tmp, c->nslen + kl);
    free(tmp);
    return out;
}

/* range_end for every key starting with ns + prefix, as base64: the prefix
 * with its last byte incremented (trailing 0xff bytes dropped); "\0" (every
 * key) when the prefix is empty. */
static char *prefix_end_b64(etcd *c, const char *prefix)
{
    size_t pl = strlen(prefix), n = c->nslen + pl;
    unsigned char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, c->ns, c->nslen);
    memcpy(p + c->nslen, prefix, pl);
    while (n && p[n - 1] == 0xff)
        n--;
    char *out;
    if (n == 0) {
        out = b64enc("", 1);
    } else {
        p[n - 1]++;
        out = b64enc(p, n);
    }
    free(p);
    return out;
}

/* Decodes a kv's key, strips the namespace. NULL when it is not ours. */
static char *kv_key(etcd *c, json_t *kv)
{
    size_t n = 0;
    char *k = b64dec(json_string_value(json_object_get(kv, "key")), &n);
    if (!k)
        return NULL;
    if (n < c->nslen || memcmp(k, c->ns, c->nslen) != 0) {
        free(k);
        return NULL;
    }
    memmove(k, k + c->nslen, n - c->nslen + 1);
    return k;
}

/* A kv's value ("value" omitted = empty). */
static char *kv_val(json_t *kv, size_t *len)
{
    json_t *v = json_object_get(kv, "value");
    *len = 0;
    if (!v)
        return calloc(1, 1);
    return b64dec(json_string_value(v), len);
}

/* ---- HTTP --------------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    return sv_buf_append(ud, p, sz * n) ? 0 : sz * n;
}

static CURL *take_handle(etcd *c)
{
    pthread_mutex_lock(&c->mu);
    CURL *h = c->npool ? c->pool[--c->npool] : NULL;
    pthread_mutex_unlock(&c->mu);
    return h ? h : curl_easy_init();
}

static void give_handle(etcd *c, CURL *h)
{
    pthread_mutex_lock(&c->mu);
    if (c->npool < 16 && sv_grow(&c->pool, &c->poolcap, c->npool + 1, sizeof *c->pool) == 0) {
        c->pool[c->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (h)
        curl_easy_cleanup(h);
}

enum { ATT_OK, ATT_FAIL, ATT_UNSENT, ATT_MAYBE };

typedef struct attempt {
    int kind;     /* ATT_* */
    long status;  /* HTTP status */
    char why[300];
} attempt;

/* One POST to one endpoint. On ATT_OK, *out holds the parsed body (any HTTP
 * status: the caller reads gRPC errors from it). */
static void post_once(etcd *c, size_t ep, const char *path, const char *body, json_t **out, attempt *a)
{
    *out = NULL;
    memset(a, 0, sizeof *a);
    CURL *h = take_handle(c);
    if (!h) {
        a->kind = ATT_UNSENT;
        snprintf(a->why, sizeof a->why, "out of memory");
        return;
    }
    char url[600];
    snprintf(url, sizeof url, "%s%s", c->eps[ep], path);
    sv_buf resp = {0};
    char cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->dial_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    long sent = 0;
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &sent);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hl);
    if (cc != CURLE_OK) {
        a->kind = sent > 0 && cc != CURLE_COULDNT_CONNECT && cc != CURLE_COULDNT_RESOLVE_HOST ? ATT_MAYBE : ATT_UNSENT;
        snprintf(a->why, sizeof a->why, "%s: %s", c->eps[ep], *cerr ? cerr : curl_easy_strerror(cc));
        curl_easy_cleanup(h); /* its connection may be half-used */
        sv_buf_free(&resp);
        return;
    }
    give_handle(c, h);
    json_error_t je;
    json_t *j = resp.len ? json_loadb((const char *)resp.data, resp.len, 0, &je) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        a->kind = a->status == 200 ? ATT_MAYBE : ATT_FAIL;
        snprintf(a->why, sizeof a->why, "%s: HTTP %ld with %s", c->eps[ep], a->status,
                 resp.len ? "a body that is not JSON (is this etcd's v3 gateway?)" : "no body");
        sv_buf_free(&resp);
        return;
    }
    sv_buf_free(&resp);
    /* A stream (keepalive) wraps its answer in "result" or "error". */
    json_t *e = json_object_get(j, "error");
    int code = (int)jint(j, "code");
    if (json_is_object(e)) {
        code = (int)jint(e, "grpc_code") ? (int)jint(e, "grpc_code") : (int)jint(e, "http_code");
        e = json_object_get(e, "message");
    }
    if (a->status == 200 && !e) {
        a->kind = ATT_OK;
        *out = j;
        return;
    }
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (!msg)
        msg = json_string_value(e);
    snprintf(a->why, sizeof a->why, "%s", msg ? msg : "error without a message");
    /* gRPC Unavailable (no leader, stopping) and DeadlineExceeded (request
     * timed out) are worth another endpoint; they may have been applied. */
    if (code == 14 || code == 4 || a->status == 503 || a->status == 504) {
        a->kind = ATT_MAYBE;
        snprintf(a->why, sizeof a->why, "%s: %s", c->eps[ep], msg ? msg : "unavailable");
        json_decref(j);
        return;
    }
    a->kind = ATT_OK; /* a definite answer: the caller maps the error */
    *out = j;
}

static int gateway_error(json_t *j, const char *what, sv_err *err)
{
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (!msg)
        msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    int code = (int)jint(j, "code");
    int rc = SV_EIO;
    if (code == 5)
        rc = SV_ENOTFOUND;
    else if (code == 3 && msg && (strstr(msg, "too many") || strstr(msg, "too large")))
        rc = SV_ETOOBIG;
    else if (code == 3)
        rc = SV_EINVAL;
    else if (code == 11)
        rc = SV_ECONFLICT; /* compacted */
    else if (code == 7 || code == 16)
        rc = SV_EDENIED;
    return sv_fail(err, rc, "catalog %s: etcd says: %s", what, msg ? msg : "unknown error");
}

/* POSTs body to path, failing over between endpoints for up to retry_ms.
 * idem: resending cannot change the outcome. *ambiguous (may be NULL) is set
 * when an earlier attempt may have been applied. *out holds the answer,
 * which may be a definite gRPC error (check "code"). */
/* A read changes nothing: its failure is not "not applied". */
static bool is_read(const char *what)
{
    return !strcmp(what, "get") || !strcmp(what, "scan") || !strcmp(what, "watch listing") ||
           !strcmp(what, "status check");
}

static int call(etcd *c, const char *path, json_t *req, bool idem, json_t **out, bool *ambiguous, const char *what,
                sv_err *err)
{
    *out = NULL;
    if (ambiguous)
        *ambiguous = false;
    char *body = json_dumps(req, JSON_COMPACT);
    if (!body)
        return sv_fail(err, SV_ENOMEM, "out of memory building an etcd request");
    int64_t start = sv_mono_ns(), pause = 50;
    attempt a = {0};
    char last[600] = "";
    int rc = SV_EUNAVAIL;
    bool maybe = false;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        size_t first = c->cur;
        bool known_down = c->down;
        int64_t since = c->down_since_ms;
        pthread_mutex_unlock(&c->mu);
        bool done = false;
        for (size_t k = 0; k < c->neps && !done; k++) {
            size_t ep = (first + k) % c->neps;
            post_once(c, ep, path, body, out, &a);
            atomic_fetch_add(&c->base.m_requests, 1);
            if (a.kind == ATT_OK) {
                pthread_mutex_lock(&c->mu);
                c->cur = ep;
                bool was_down = c->down;
                c->down = false;
                atomic_store(&c->base.m_down, 0);
                pthread_mutex_unlock(&c->mu);
                if (was_down)
                    sv_info("catalog etcd reachable again", "endpoint=%s", c->eps[ep]);
                rc = 0;
                done = true;
                break;
            }
            snprintf(last, sizeof last, "%s", a.why);
            atomic_fetch_add(&c->base.m_failed_attempts, 1);
            if (a.kind == ATT_MAYBE) {
                maybe = true;
                if (ambiguous)
                    *ambiguous = true;
                if (!idem) {
                    rc = sv_fail(err, SV_EUNAVAIL,
                                 "catalog %s: the outcome is unknown: etcd failed after the request was sent (%s); "
                                 "re-read before retrying",
                                 what, a.why);
                    done = true;
                }
            }
            if (a.kind == ATT_FAIL) {
                rc = sv_fail(err, SV_EIO, "catalog %s: %s", what, a.why);
                done = true;
            }
        }
        if (done)
            break;
        if (known_down) {
            atomic_fetch_add(&c->base.m_unavailable, 1);
            /* Already known to be down: one round, no waiting, so requests
             * do not pile up behind an outage; the first answer clears it. */
            char when[40];
            sv_format_time_ms(since, when, sizeof when);
            rc = sv_fail(err, SV_EUNAVAIL,
                         "catalog unavailable: no etcd endpoint has answered since %s (%zu endpoint%s; last error: "
                         "%s); the %s %s%s",
                         when, c->neps, c->neps == 1 ? "" : "s", last, what,
                         is_read(what) ? "was not made" : "was not applied",
                         maybe ? " (or its outcome is unknown)" : "");
            break;
        }
        int64_t spent = (sv_mono_ns() - start) / 1000000;
        if (spent >= c->retry_ms) {
            pthread_mutex_lock(&c->mu);
            bool was_down = c->down;
            c->down = true;
            if (!was_down)
                c->down_since_ms = sv_now_ms() - spent;
            atomic_store(&c->base.m_down, 1);
            atomic_fetch_add(&c->base.m_unavailable, 1);
            pthread_mutex_unlock(&c->mu);
            if (!was_down)
                sv_warn("catalog etcd unavailable: writes fail with 503 until it is back", "error=\"%s\"", last);
            rc = sv_fail(err, SV_EUNAVAIL,
                         "catalog unavailable: no etcd endpoint answered the %s for %.1f s (%zu endpoint%s; last "
                         "error: %s)%s",
                         what, (double)spent / 1000, c->neps, c->neps == 1 ? "" : "s", last,
                         maybe ? "; an earlier attempt may have been applied" : "");
            break;
        }
        int64_t left = c->retry_ms - spent;
        sv_sleep_ms(pause < left ? pause : left);
        pause = pause * 2 > 1000 ? 1000 : pause * 2;
    }
    free(body);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* call() plus: a gRPC error in the answer becomes the return code. */
static int call_ok(etcd *c, const char *path, json_t *req, bool idem, json_t **out, const char *what, sv_err *err)
{
    int rc = call(c, path, req, idem, out, NULL, what, err);
    if (rc == 0 && json_object_get(*out, "code") && jint(*out, "code") != 0) {
        rc = gateway_error(*out, what, err);
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- reads ---------------------------------------------------------------------- */

static int etcd_get(sv_catalog *cat, const char *key, char **val, size_t *len, int64_t *rev, sv_err *err)
{
    etcd *c = (etcd *)cat;
    char *k = full_key_b64(c, key);
    json_t *req = k ? json_pack("{s:s}", "key", k) : NULL;
    free(k);
    if (!req)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    json_t *resp = NULL;
    int rc = call_ok(c, "/v3/kv/range", req, true, &resp, "get", err);
    json_decref(req);
    if (rc)
        return rc;
    json_t *kv = json_array_get(json_object_get(resp, "kvs"), 0);
    if (!kv) {
        json_decref(resp);
        return sv_fail(err, SV_ENOTFOUND, "catalog key %s not found", key);
    }
    size_t n = 0;
    char *v = kv_val(kv, &n);
    if (!v) {
        json_decref(resp);
        return sv_fail(err, SV_ECORRUPT, "catalog key %s: etcd sent a value that is not base64", key);
    }
    *val = v;
    if (len)
        *len = n;
    if (rev)
        *rev = jint(kv, "mod_revision");
    json_decref(resp);
    return 0;
}

/* Pages through ns + prefix at one revision (the first page's). fn gets the
 * key without the namespace. *at_rev (may be NULL) receives that revision. */
static int scan_at(etcd *c, const char *prefix, sv_catalog_scan_fn fn, void *ud, int64_t *at_rev, sv_err *err)
{
    char *start = full_key_b64(c, prefix), *end = prefix_end_b64(c, prefix);
    int64_t rev = 0;
    int rc = (start && end) ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
    while (rc == 0) {
        char rb[24];
        json_t *req = json_pack("{s:s,s:s,s:s}", "key", start, "range_end", end, "limit", i64s(PAGE, rb));
        if (req && rev)
            json_object_set_new(req, "revision", json_string(i64s(rev, rb)));
        if (!req) {
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
            break;
        }
        json_t *resp = NULL;
        rc = call_ok(c, "/v3/kv/range", req, true, &resp, "scan", err);
        json_decref(req);
        if (rc) {
            if (rc == SV_ECONFLICT)
                sv_err_wrap(err, "the catalog was compacted during a long scan; retry it");
            break;
        }
        if (!rev)
            rev = jint(json_object_get(resp, "header"), "revision");
        json_t *kvs = json_object_get(resp, "kvs");
        size_t i;
        json_t *kv;
        char *lastkey = NULL;
        size_t lastlen = 0;
        json_array_foreach(kvs, i, kv)
        {
            char *k = kv_key(c, kv);
            size_t vl = 0;
            char *v = k ? kv_val(kv, &vl) : NULL;
            if (!k || !v) {
                free(k);
                free(v);
                rc = sv_fail(err, SV_ECORRUPT, "catalog scan: etcd sent a key or value that is not base64");
                break;
            }
            rc = fn(k, v, vl, jint(kv, "mod_revision"), ud);
            free(v);
            if (rc) {
                free(k);
                break;
            }
            free(lastkey);
            lastkey = k;
            lastlen = strlen(k);
        }
        bool more = json_is_true(json_object_get(resp, "more")) && lastkey;
        json_decref(resp);
        if (rc || !more) {
            free(lastkey);
            break;
        }
        /* next page: just after the last key */
        char *nk = malloc(c->nslen + lastlen + 2);
        if (!nk) {
            free(lastkey);
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
            break;
        }
        memcpy(nk, c->ns, c->nslen);
        memcpy(nk + c->nslen, lastkey, lastlen);
        nk[c->nslen + lastlen] = 0;
        free(lastkey);
        free(start);
        start = b64enc(nk, c->nslen + lastlen + 1);
        free(nk);
        if (!start)
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
    }
    free(start);
    free(end);
    if (at_rev)
        *at_rev = rev;
    return rc;
}

static int etcd_scan(sv_catalog *cat, const char *prefix, sv_catalog_scan_fn fn, void *ud, sv_err *err)
{
    return scan_at((etcd *)cat, prefix, fn, ud, NULL, err);
}

/* ---- txn ---------------------------------------------------------------------- */

/* Names the first condition that fails against the failure branch's reads
 * (taken at the txn's revision). */
static int name_failed(const sv_catalog_cond *conds, size_t nconds, json_t *resp, sv_err *err)
{
    json_t *rs = json_object_get(resp, "responses");
    for (size_t i = 0; i < nconds; i++) {
        json_t *kv = json_array_get(json_object_get(json_object_get(json_array_get(rs, i), "response_range"), "kvs"), 0);
        bool found = kv != NULL;
        int64_t rev = found ? jint(kv, "mod_revision") : 0, want = conds[i].expect_rev;
        if (want == 0 && found)
            return sv_fail(err, SV_ECONFLICT, "condition failed: %s exists (revision %lld) but must be absent",
                           conds[i].key, (long long)rev);
        if (want == -1 && !found)
            return sv_fail(err, SV_ECONFLICT, "condition failed: %s is absent but must exist", conds[i].key);
        if (want > 0 && !found)
            return sv_fail(err, SV_ECONFLICT, "condition failed: %s is absent, expected revision %lld", conds[i].key,
                           (long long)want);
        if (want > 0 && rev != want)
            return sv_fail(err, SV_ECONFLICT, "condition failed: %s has revision %lld, expected %lld", conds[i].key,
                           (long long)rev, (long long)want);
    }
    return sv_fail(err, SV_ECONFLICT, "condition failed (the catalog changed while it was checked)");
}

static int txn_once(etcd *c, const sv_catalog_cond *conds, size_t nconds, const sv_catalog_op *ops, size_t nops,
                    sv_err *err)
{
    json_t *req = json_object(), *cmp = json_array(), *succ = json_array(), *fail = json_array();
    int rc = 0;
    if (!req || !cmp || !succ || !fail) {
        rc = SV_ENOMEM;
        goto built;
    }
    char nb[24];
    for (size_t i = 0; i < nconds && rc == 0; i++) {
        char *k = full_key_b64(c, conds[i].key);
        json_t *o = NULL;
        if (k && conds[i].expect_rev == 0)
            o = json_pack("{s:s,s:s,s:s,s:s}", "key", k, "target", "CREATE", "result", "EQUAL", "create_revision", "0");
        else if (k && conds[i].expect_rev < 0)
            o = json_pack("{s:s,s:s,s:s,s:s}", "key", k, "target", "CREATE", "result", "GREATER", "create_revision",
                          "0");
        else if (k)
            o = json_pack("{s:s,s:s,s:s,s:s}", "key", k, "target", "MOD", "result", "EQUAL", "mod_revision",
                          i64s(conds[i].expect_rev, nb));
        json_t *rd = k ? json_pack("{s:{s:s}}", "request_range", "key", k) : NULL;
        free(k);
        if (!o || !rd || json_array_append_new(cmp, o) || json_array_append_new(fail, rd))
            rc = SV_ENOMEM;
    }
    for (size_t i = 0; i < nops && rc == 0; i++) {
        char *k = full_key_b64(c, ops[i].key), *v = NULL;
        json_t *o = NULL;
        if (k && ops[i].val && (v = b64enc(ops[i].val, ops[i].len))) {
            o = json_pack("{s:{s:s,s:s}}", "request_put", "key", k, "value", v);
            if (o && ops[i].lease_id)
                json_object_set_new(json_object_get(o, "request_put"), "lease",
                                    json_string(i64s(ops[i].lease_id, nb)));
        } else if (k && !ops[i].val) {
            o = json_pack("{s:{s:s}}", "request_delete_range", "key", k);
        }
        free(k);
        free(v);
        if (!o || json_array_append_new(succ, o))
            rc = SV_ENOMEM;
    }
built:
    if (rc == 0 && (json_object_set(req, "compare", cmp) || json_object_set(req, "success", succ) ||
                    json_object_set(req, "failure", fail)))
        rc = SV_ENOMEM;
    json_decref(cmp);
    json_decref(succ);
    json_decref(fail);
    if (rc) {
        json_decref(req);
        return sv_fail(err, SV_ENOMEM, "out of memory building an etcd txn");
    }
    json_t *resp = NULL;
    bool ambiguous = false;
    rc = call(c, "/v3/kv/txn", req, true, &resp, &ambiguous, "txn", err);
    json_decref(req);
    if (rc)
        return rc;
    if (jint(resp, "code") != 0) {
        const char *msg = json_string_value(json_object_get(resp, "message"));
        if (jint(resp, "code") == 5 && msg && strstr(msg, "lease")) {
            for (size_t i = 0; i < nops; i++)
                if (ops[i].val && ops[i].lease_id) {
                    rc = sv_fail(err, SV_ENOTFOUND, "lease %lld for key %s not found or expired",
                                 (long long)ops[i].lease_id, ops[i].key);
                    break;
                }
        }
        if (!rc)
            rc = gateway_error(resp, "txn", err);
    } else if (!json_is_true(json_object_get(resp, "succeeded"))) {
        /* "succeeded" is omitted when false. */
        if (ambiguous && nops)
            rc = sv_fail(err, SV_EUNAVAIL,
                         "catalog txn: the outcome is unknown: an attempt that etcd may have applied was cut off, "
                         "and the retry found its conditions no longer hold; re-read before retrying");
        else
            rc = name_failed(conds, nconds, resp, err);
    }
    json_decref(resp);
    return rc;
}

/* A lone unconditional op: plain /v3/kv/put or /v3/kv/deleterange (lighter
 * for etcd than a txn). */
static int single_op(etcd *c, const sv_catalog_op *op, sv_err *err)
{
    char *k = full_key_b64(c, op->key), *v = op->val ? b64enc(op->val, op->len) : NULL;
    json_t *req = NULL;
    if (k && op->val && v) {
        req = json_pack("{s:s,s:s}", "key", k, "value", v);
        char nb[24];
        if (req && op->lease_id)
            json_object_set_new(req, "lease", json_string(i64s(op->lease_id, nb)));
    } else if (k && !op->val) {
        req = json_pack("{s:s}", "key", k);
    }
    free(k);
    free(v);
    if (!req)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    json_t *resp = NULL;
    int rc = call(c, op->val ? "/v3/kv/put" : "/v3/kv/deleterange", req, true, &resp, NULL,
                  op->val ? "put" : "delete", err);
    json_decref(req);
    if (rc)
        return rc;
    if (jint(resp, "code") == 5 && op->val && op->lease_id)
        rc = sv_fail(err, SV_ENOTFOUND, "lease %lld for key %s not found or expired", (long long)op->lease_id, op->key);
    else if (jint(resp, "code") != 0)
        rc = gateway_error(resp, op->val ? "put" : "delete", err);
    json_decref(resp);
    return rc;
}

static int etcd_txn(sv_catalog *cat, const sv_catalog_cond *conds, size_t nconds, const sv_catalog_op *ops,
                    size_t nops, sv_err *err)
{
    etcd *c = (etcd *)cat;
    if (nconds == 0 && nops == 1)
        return single_op(c, ops, err);
    size_t max = (size_t)c->max_ops;
    if (nconds > max || (nconds && nops > max))
        return sv_fail(err, SV_ETOOBIG,
                       "catalog txn with %zu conditions and %zu ops: etcd applies at most %zu of each in one atomic "
                       "step (its --max-txn-ops) and this request needs more (e.g. a collection of more than %zu "
                       "shards, or more than %zu tenants at once): make it smaller, or raise --max-txn-ops on etcd "
                       "and max_txn_ops in the catalog URL to match",
                       nconds, nops, max, max - 1, max - 1);
    if (nconds == 0 && nops == 0)
        return 0;
    if (nops <= max)
        return txn_once(c, conds, nconds, ops, nops, err);
    /* No conditions: chunks in op order, each atomic. */
    for (size_t at = 0; at < nops; at += max) {
        size_t n = nops - at < max ? nops - at : max;
        int rc = txn_once(c, NULL, 0, ops + at, n, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- leases ------------------------------------------------------------------- */

static int etcd_lease_grant(sv_catalog *cat, int64_t ttl_ms, int64_t *lease_id, sv_err *err)
{
    etcd *c = (etcd *)cat;
    char nb[24];
    json_t *req = json_pack("{s:s}", "TTL", i64s((ttl_ms + 999) / 1000, nb));
    json_t *resp = NULL;
    int rc = req ? call_ok(c, "/v3/lease/grant", req, true, &resp, "lease grant", err)
                 : sv_fail(err, SV_ENOMEM, "out of memory");
    json_decref(req);
    if (rc)
        return rc;
    const char *e = json_string_value(json_object_get(resp, "error"));
    int64_t id = jint(resp, "ID");
    if (e || id <= 0)
        rc = sv_fail(err, SV_EIO, "catalog lease grant: etcd says: %s", e ? e : "no lease id in the answer");
    else
        *lease_id = id;
    json_decref(resp);
    return rc;
}

static int etcd_lease_keepalive(sv_catalog *cat, int64_t id, sv_err *err)
{
    etcd *c = (etcd *)cat;
    char nb[24];
    json_t *req = json_pack("{s:s}", "ID", i64s(id, nb));
    json_t *resp = NULL;
    int rc = req ? call_ok(c, "/v3/lease/keepalive", req, true, &resp, "lease keepalive", err)
                 : sv_fail(err, SV_ENOMEM, "out of memory");
    json_decref(req);
    if (rc)
        return rc;
    /* A stream: the answer is under "result"; no TTL = the lease is gone. */
    json_t *r = json_object_get(resp, "result");
    if (!r || jint(r, "TTL") <= 0)
        rc = sv_fail(err, SV_ENOTFOUND, "lease %lld not found or expired", (long long)id);
    json_decref(resp);
    return rc;
}

static int etcd_lease_revoke(sv_catalog *cat, int64_t id, sv_err *err)
{
    etcd *c = (etcd *)cat;
    char nb[24];
    json_t *req = json_pack("{s:s}", "ID", i64s(id, nb));
    json_t *resp = NULL;
    bool ambiguous = false;
    int rc = req ? call(c, "/v3/lease/revoke", req, true, &resp, &ambiguous, "lease revoke", err)
                 : sv_fail(err, SV_ENOMEM, "out of memory");
    json_decref(req);
    if (rc)
        return rc;
    if (jint(resp, "code") == 5)
        rc = ambiguous ? 0 /* our first attempt did it */
                       : sv_fail(err, SV_ENOTFOUND, "lease %lld not found or expired", (long long)id);
    else if (jint(resp, "code") != 0)
        rc = gateway_error(resp, "lease revoke", err);
    json_decref(resp);
    return rc;
}

/* ---- watch -------------------------------------------------------------------- */

typedef struct etcd_watch {
    struct sv_catalog_watch base;
    etcd *c;
    char *prefix; /* without the namespace */
    sv_catalog_watch_fn fn;
    void *ud;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu; /* with cv: interruptible pauses */
    pthread_cond_t cv;
    CURLM *multi; /* under mu while set */
    _Atomic int64_t next; /* the next revision to ask for; 0 = re-list first */
    sv_buf line;   /* a partial stream message */
    bool relist;   /* set by the stream: compacted */
    bool created;
    int64_t stream_start; /* the start_revision this stream asked for */
    int64_t last_data_ns;
    struct etcd_watch *next_watch; /* in etcd.watches */
} etcd_watch;

static void pause_ms(etcd_watch *w, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000LL;
    ts.tv_sec += ms / 1000 + ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    pthread_mutex_lock(&w->mu);
    if (!atomic_load(&w->stop))
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    pthread_mutex_unlock(&w->mu);
}

static int relist_put(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    etcd_watch *w = ud;
    if (atomic_load(&w->stop))
        return 1;
    sv_catalog_event e = {.type = SV_CATALOG_EV_PUT, .key = key, .val = val, .len = len, .rev = rev};
    w->fn(&e, w->ud);
    return 0;
}

/* Handles one stream message. Returns false to end the stream. */
static bool on_message(etcd_watch *w, json_t *m)
{
    json_t *r = json_object_get(m, "result");
    if (!r) {
        json_t *e = json_object_get(m, "error");
        sv_warn("catalog watch stream error; reconnecting", "prefix=%s error=\"%s\"", w->prefix,
                json_string_value(json_object_get(e, "message")) ? json_string_value(json_object_get(e, "message"))
                                                                    : "unknown");
        return false;
    }
    if (json_is_true(json_object_get(r, "canceled"))) {
        if (jint(r, "compact_revision") > 0) {
            sv_info("catalog watch: its revision was compacted; re-listing", "prefix=%s compact_revision=%lld",
                    w->prefix, (long long)jint(r, "compact_revision"));
            w->relist = true;
        } else {
            const char *why = json_string_value(json_object_get(r, "cancel_reason"));
            sv_warn("catalog watch canceled by etcd; reconnecting", "prefix=%s reason=\"%s\"", w->prefix,
                    why ? why : "");
        }
        return false;
    }
    if (json_is_true(json_object_get(r, "created"))) {
        w->created = true;
        return true;
    }
    json_t *evs = json_object_get(r, "events");
    if (json_array_size(evs) == 0) {
        /* A progress notification: every change up to this revision has
         * been delivered. */
        int64_t rev = jint(json_object_get(r, "header"), "revision");
        if (rev + 1 > w->next)
            w->next = rev + 1;
        return true;
    }
    int64_t top = 0; /* the message's events are all delivered before next moves */
    size_t i;
    json_t *ev;
    json_array_foreach(evs, i, ev)
    {
        if (atomic_load(&w->stop))
            return false;
        json_t *kv = json_object_get(ev, "kv");
        const char *type = json_string_value(json_object_get(ev, "type")); /* omitted = PUT */
        bool del = type && !strcmp(type, "DELETE");
        char *k = kv_key(w->c, kv);
        size_t vl = 0;
        char *v = (k && !del) ? kv_val(kv, &vl) : NULL;
        int64_t rev = jint(kv, "mod_revision");
        if (rev < w->stream_start) {
            /* Older than asked for (etcd#20221: a watch from a future
             * revision can be handed older events): already delivered. */
            free(k);
            free(v);
            continue;
        }
        if (k && (del || v)) {
            sv_catalog_event e = {.type = del ? SV_CATALOG_EV_DELETE : SV_CATALOG_EV_PUT, .key = k, .val = v,
                                  .len = vl, .rev = rev};
            w->fn(&e, w->ud);
        } else {
            sv_warn("catalog watch: skipped an event that is not base64", "prefix=%s", w->prefix);
        }
        free(k);
        free(v);
        if (rev > top)
            top = rev;
    }
    if (top + 1 > w->next)
        w->next = top + 1;
    return true;
}

typedef struct stream_ctx {
    etcd_watch *w;
    bool end;
} stream_ctx;

static size_t on_stream(char *p, size_t sz, size_t n, void *ud)
{
    stream_ctx *s = ud;
    etcd_watch *w = s->w;
    size_t len = sz * n;
    w->last_data_ns = sv_mono_ns();
    if (sv_buf_append(&w->line, p, len))
        return 0;
    for (;;) {
        uint8_t *nl = memchr(w->line.data, '\n', w->line.len);
        if (!nl)
            break;
        size_t ml = (size_t)(nl - w->line.data);
        json_error_t je;
        json_t *m = ml ? json_loadb((const char *)w->line.data, ml, 0, &je) : NULL;
        memmove(w->line.data, nl + 1, w->line.len - ml - 1);
        w->line.len -= ml + 1;
        if (ml && !m) {
            sv_warn("catalog watch: a stream message is not JSON; reconnecting", "prefix=%s", w->prefix);
            s->end = true;
        } else if (m && !on_message(w, m)) {
            s->end = true;
        }
        json_decref(m);
        if (s->end)
            return 0; /* aborts the transfer */
    }
    return len;
}

/* One streaming watch on one endpoint until it ends. true when it got as
 * far as "created" (the endpoint works). */
static bool stream_once(etcd_watch *w, size_t ep)
{
    etcd *c = w->c;
    char *k = full_key_b64(c, w->prefix), *e = prefix_end_b64(c, w->prefix);
    char nb[24];
    json_t *req = (k && e) ? json_pack("{s:{s:s,s:s,s:s,s:b}}", "create_request", "key", k, "range_end", e,
                                       "start_revision", i64s(w->next, nb), "progress_notify", 1)
                           : NULL;
    free(k);
    free(e);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    CURL *h = body ? curl_easy_init() : NULL;
    if (!h) {
        free(body);
        return false;
    }
    char url[600];
    snprintf(url, sizeof url, "%s/v3/watch", c->eps[ep]);
    stream_ctx s = {.w = w};
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 2L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->dial_ms);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    CURLM *m = curl_multi_init();
    curl_multi_add_handle(m, h);
    pthread_mutex_lock(&w->mu);
    w->multi = m;
    pthread_mutex_unlock(&w->mu);
    w->created = false;
    w->stream_start = w->next;
    w->line.len = 0;
    w->last_data_ns = sv_mono_ns();
    int running = 1;
    while (running && !atomic_load(&w->stop) && !s.end) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (!running || s.end)
            break;
        if ((sv_mono_ns() - w->last_data_ns) / 1000000 > c->watch_idle_ms) {
            /* Nothing, not even a progress notification: start afresh from
             * the last known revision (cheap; finds a dead stream). */
            sv_debug("catalog watch idle; reconnecting", "prefix=%s", w->prefix);
            break;
        }
        curl_multi_poll(m, NULL, 0, 500, NULL);
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    pthread_mutex_lock(&w->mu);
    w->multi = NULL;
    pthread_mutex_unlock(&w->mu);
    curl_multi_remove_handle(m, h);
    curl_multi_cleanup(m);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    free(body);
    return w->created;
}

static void *watch_main(void *arg)
{
    etcd_watch *w = arg;
    etcd *c = w->c;
    int64_t pause = 100;
    size_t ep = 0;
    pthread_mutex_lock(&c->mu);
    ep = c->cur;
    pthread_mutex_unlock(&c->mu);
    while (!atomic_load(&w->stop)) {
        if (w->next == 0 || w->relist) {
            w->relist = false;
            /* RESET goes out only once etcd answers, so an outage does not
             * wipe the consumer's view; a listing cut short is followed by
             * another RESET and listing. */
            sv_err err = {0};
            int64_t rev = 0;
            json_t *probe = json_pack("{s:s,s:s}", "key", "AA==", "limit", "1");
            json_t *resp = NULL;
            int rc = probe ? call_ok(c, "/v3/kv/range", probe, true, &resp, "watch listing", &err) : SV_ENOMEM;
            json_decref(probe);
            json_decref(resp);
            sv_catalog_event e = {.type = SV_CATALOG_EV_RESET};
            w->next = 0;
            atomic_fetch_add(&c->base.m_relists, 1);
            if (rc == 0) {
                w->fn(&e, w->ud);
                rc = scan_at(c, w->prefix, relist_put, w, &rev, &err);
            }
            if (atomic_load(&w->stop))
                break;
            if (rc) {
                sv_warn("catalog watch cannot list; retrying", "prefix=%s error=\"%s\"", w->prefix, err.msg);
                w->next = 0;
                pause_ms(w, pause);
                pause = pause * 2 > 1000 ? 1000 : pause * 2;
                continue;
            }
            e = (sv_catalog_event){.type = SV_CATALOG_EV_SYNCED, .rev = rev};
            w->fn(&e, w->ud);
            w->next = rev + 1;
        }
        bool ok = stream_once(w, ep);
        if (atomic_load(&w->stop))
            break;
        if (w->relist)
            continue;
        if (ok) {
            pause = 100;
            continue; /* ended after working (idle, canceled): again at once */
        }
        /* This endpoint did not take the watch: the next one, after a pause. */
        ep = (ep + 1) % c->neps;
        pause_ms(w, pause);
        pause = pause * 2 > 1000 ? 1000 : pause * 2;
    }
    return NULL;
}

static int etcd_watch_start(sv_catalog *cat, const char *prefix, int64_t after_rev, sv_catalog_watch_fn fn, void *ud,
                            sv_catalog_watch **out, sv_err *err)
{
    etcd *c = (etcd *)cat;
    etcd_watch *w = calloc(1, sizeof *w);
    if (!w || !(w->prefix = strdup(prefix))) {
        free(w);
        return sv_fail(err, SV_ENOMEM, "out of memory starting a catalog watch");
    }
    w->c = c;
    w->fn = fn;
    w->ud = ud;
    w->next = after_rev ? after_rev + 1 : 0;
    atomic_init(&w->stop, false);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w->prefix);
        free(w);
        return sv_fail(err, SV_EINTERNAL, "cannot start a catalog watch thread: %s", strerror(errno));
    }
    pthread_mutex_lock(&c->mu);
    w->next_watch = c->watches;
    c->watches = w;
    pthread_mutex_unlock(&c->mu);
    *out = &w->base;
    return 0;
}

static int64_t etcd_watch_revision(const sv_catalog_watch *base)
{
    const etcd_watch *w = (const etcd_watch *)base;
    int64_t next = atomic_load(&w->next);
    return next > 0 ? next - 1 : 0;
}

static void etcd_watch_stop(sv_catalog_watch *base)
{
    etcd_watch *w = (etcd_watch *)base;
    pthread_mutex_lock(&w->c->mu);
    for (etcd_watch **pp = &w->c->watches; *pp; pp = &(*pp)->next_watch)
        if (*pp == w) {
            *pp = w->next_watch;
            break;
        }
    pthread_mutex_unlock(&w->c->mu);
    atomic_store(&w->stop, true);
    pthread_mutex_lock(&w->mu);
    if (w->multi)
        curl_multi_wakeup(w->multi);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    sv_buf_free(&w->line);
    free(w->prefix);
    free(w);
}

/* ---- open / close -------------------------------------------------------------- */

static void etcd_watch_stop(sv_catalog_watch *base);

static void etcd_close(sv_catalog *cat)
{
    etcd *c = (etcd *)cat;
    while (c->watches) {
        sv_warn("catalog closed with a watch still running; stopping it", "prefix=%s", c->watches->prefix);
        etcd_watch_stop(&c->watches->base);
    }
    for (size_t i = 0; i < c->neps; i++)
        free(c->eps[i]);
    for (size_t i = 0; i < c->npool; i++)
        curl_easy_cleanup(c->pool[i]);
    free(c->pool);
    free(c->ns);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* A whole number in lo..hi (what: "milliseconds", "ops"). */
static int parse_opt(const char *spec, const char *name, size_t nlen, const char *val, size_t vlen, long long lo,
                     long long hi, const char *what, int64_t *out, sv_err *err)
{
    char buf[32];
    long long v = 0;
    char *end = NULL;
    if (vlen > 0 && vlen < sizeof buf) {
        memcpy(buf, val, vlen);
        buf[vlen] = 0;
        v = strtoll(buf, &end, 10);
    }
    if (!end || *end || v < lo || v > hi)
        return sv_fail(err, SV_EINVAL, "catalog URL etcd://%s: %.*s needs a number of %s in %lld..%lld", spec,
                       (int)nlen, name, what, lo, hi);
    *out = v;
    return 0;
}

static int parse_spec(etcd *c, const char *spec, sv_err *err)
{
    const char *q = strchr(spec, '?');
    const char *slash = strchr(spec, '/');
    if (slash && q && slash > q)
        slash = NULL;
    const char *hosts_end = slash ? slash : q ? q : spec + strlen(spec);
    /* endpoints */
    const char *p = spec;
    while (p < hosts_end) {
        const char *comma = memchr(p, ',', (size_t)(hosts_end - p));
        const char *e = comma ? comma : hosts_end;
        size_t n = (size_t)(e - p);
        const char *colon = memchr(p, ':', n);
        if (n == 0 || !colon || colon == p || colon + 1 == e)
            return sv_fail(err, SV_EINVAL, "catalog URL etcd://%s: each endpoint must be host:port (e.g. etcd://10.0.0.1:2379,10.0.0.2:2379)", spec);
        for (const char *x = p; x < e; x++)
            if (!(isalnum((unsigned char)*x) || *x == '.' || *x == '-' || *x == ':' || *x == '_'))
                return sv_fail(err, SV_EINVAL, "catalog URL etcd://%s: bad character '%c' in an endpoint", spec, *x);
        if (c->neps == MAX_EPS)
            return sv_fail(err, SV_EINVAL, "catalog URL etcd://%s: at most %d endpoints", spec, MAX_EPS);
        char *ep = malloc(n + 8);
        if (!ep)
            return sv_fail(err, SV_ENOMEM, "out of memory");
        snprintf(ep, n + 8, "http://%.*s", (int)n, p);
        c->eps[c->neps++] = ep;
        if (comma && comma + 1 == hosts_end)
            return sv_fail(err, SV_EINVAL, "catalog URL etcd://%s ends its endpoint list with a comma", spec);
        p = comma ? comma + 1 : e;
    }
    if (c->neps == 0)
        return sv_fail(err, SV_EINVAL, "catalog URL etcd://%s names no endpoint; use etcd://host:2379", spec);
    /* namespace: "/a/b/" -> "a/b/" */
    const char *ns_end = q ? q : spec + strlen(spec);
    if (slash && slash + 1 < ns_end) {
        size_t n = (size_t)(ns_end - slash - 1);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)slash[1 + i] < 0x21)
                return sv_fail(err, SV_EINVAL, "catalog URL etcd://%s: the namespace has a blank or control byte", spec);
        c->ns = strndup(slash + 1, n);
    } else {
        c->ns = strdup("");
    }
    if (!c->ns)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    c->nslen = strlen(c->ns);
    /* options */
    for (p = q ? q + 1 : NULL; p && *p;) {
        const char *amp = strchr(p, '&'), *e = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (!eq)
            return sv_fail(err, SV_EINVAL, "catalog URL etcd://%s: option '%.*s' has no value", spec, (int)(e - p), p);
        size_t kl = (size_t)(eq - p);
        int64_t *slot = NULL;
        if (kl == 10 && !strncmp(p, "timeout_ms", kl))
            slot = &c->timeout_ms;
        else if (kl == 8 && !strncmp(p, "retry_ms", kl))
            slot = &c->retry_ms;
        else if (kl == 7 && !strncmp(p, "dial_ms", kl))
            slot = &c->dial_ms;
        else if (kl == 13 && !strncmp(p, "watch_idle_ms", kl))
            slot = &c->watch_idle_ms;
        else if (kl == 11 && !strncmp(p, "max_txn_ops", kl))
            slot = &c->max_ops;
        else
            return sv_fail(err, SV_EINVAL,
                           "catalog URL etcd://%s: unknown option '%.*s' (known: timeout_ms, retry_ms, dial_ms, "
                           "watch_idle_ms, max_txn_ops)",
                           spec, (int)kl, p);
        bool ops = slot == &c->max_ops;
        int rc = parse_opt(spec, p, kl, eq + 1, (size_t)(e - eq - 1), ops ? 1 : 1, ops ? 1000000 : 3600000,
                           ops ? "ops" : "milliseconds", slot, err);
        if (rc)
            return rc;
        p = amp ? amp + 1 : e;
    }
    return 0;
}

int sv_catalog_etcd_open(const char *spec, sv_catalog **out, sv_err *err)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    etcd *c = calloc(1, sizeof *c);
    if (!c)
        return sv_fail(err, SV_ENOMEM, "out of memory opening the catalog");
    c->base.drv = &etcd_driver;
    pthread_mutex_init(&c->mu, NULL);
    c->dial_ms = 1000;
    c->timeout_ms = 2000;
    c->retry_ms = 5000;
    c->watch_idle_ms = 30000;
    c->max_ops = SV_CATALOG_MAX_TXN_OPS;
    int rc = parse_spec(c, spec, err);
    if (rc == 0) {
        json_t *req = json_object(), *resp = NULL;
        rc = req ? call_ok(c, "/v3/maintenance/status", req, true, &resp, "status check", err)
                 : sv_fail(err, SV_ENOMEM, "out of memory");
        json_decref(req);
        if (rc == 0) {
            const char *v = json_string_value(json_object_get(resp, "version"));
            snprintf(c->version, sizeof c->version, "%s", v ? v : "unknown");
            if (!v || strncmp(v, "3.", 2) != 0)
                rc = sv_fail(err, SV_EUNSUPPORTED, "catalog etcd://%s: etcd version %s is not 3.x", spec, c->version);
        }
        json_decref(resp);
        if (rc)
            sv_err_wrap(err, "catalog etcd://%s", spec);
    }
    if (rc) {
        etcd_close(&c->base);
        return rc;
    }
    sv_info("catalog on etcd", "endpoints=%zu first=%s namespace=\"%s\" version=%s timeout_ms=%lld retry_ms=%lld",
            c->neps, c->eps[0], c->ns, c->version, (long long)c->timeout_ms, (long long)c->retry_ms);
    *out = &c->base;
    return 0;
}

static const sv_catalog_driver etcd_driver = {
    .name = "etcd",
    .close = etcd_close,
    .get = etcd_get,
    .scan = etcd_scan,
    .txn = etcd_txn,
    .lease_grant = etcd_lease_grant,
    .lease_keepalive = etcd_lease_keepalive,
    .lease_revoke = etcd_lease_revoke,
    .watch_start = etcd_watch_start,
    .watch_stop = etcd_watch_stop,
    .watch_revision = etcd_watch_revision,
};
