/* The analyze agent (after Elasticsearch's repository analysis): tests the
 * location itself under analysis/{jobId}/ and removes what it wrote:
 *   - write / read back:   `blobs` objects of random sizes up to maxBlobBytes
 *                          (seeded), written `concurrency` at a time, read back whole
 *   - ranged reads:        one random range of each, compared byte for byte
 *   - multipart:           on s3://, one object just over the multipart threshold
 *   - overwrite:           readers of one key while a writer replaces it see the
 *                          old or the new object, never a mix
 *   - aborted upload:      never becomes visible
 *   - listing:             eventually shows every object written (10 s)
 *   - conditional create:  `concurrency` racing creates: exactly one wins, or
 *                          "unsupported" when the store cannot do it */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maintenance_internal.h"

int sv_maint_analyze_check(json_t *body, sv_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "blobs") && strcmp(k, "maxBlobBytes") && strcmp(k, "concurrency") && strcmp(k, "seed"))
            return sv_fail(err, SV_EINVAL,
                           "unknown field \"%s\" (analyze takes blobs, maxBlobBytes, concurrency, seed)", k);
    }
    json_t *b = json_object_get(body, "blobs"), *mb = json_object_get(body, "maxBlobBytes"),
           *c = json_object_get(body, "concurrency"), *s = json_object_get(body, "seed");
    int64_t size = 0;
    if (b && (!json_is_integer(b) || json_integer_value(b) < 1 || json_integer_value(b) > 100000))
        return sv_fail(err, SV_EINVAL, "\"blobs\" must be a whole number from 1 to 100000");
    if (mb && !(json_is_integer(mb) && json_integer_value(mb) >= 1) &&
        !(json_is_string(mb) && sv_parse_size(json_string_value(mb), &size) == 0 && size >= 1))
        return sv_fail(err, SV_EINVAL, "\"maxBlobBytes\" must be a size such as 10Mi or a number of bytes");
    if (mb && json_is_integer(mb))
        size = json_integer_value(mb);
    if (size > (int64_t)1 << 30)
        return sv_fail(err, SV_EINVAL, "\"maxBlobBytes\" must be at most 1Gi");
    if (c && (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > 64))
        return sv_fail(err, SV_EINVAL, "\"concurrency\" must be a whole number from 1 to 64");
    if (s && !json_is_integer(s))
        return sv_fail(err, SV_EINVAL, "\"seed\" must be an integer");
    return 0;
}

/* Deterministic content: byte j of object (seed, i). */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void fill(uint64_t seed, uint64_t obj, int64_t off, uint8_t *buf, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        uint64_t pos = (uint64_t)off + j;
        buf[j] = (uint8_t)(mix(seed ^ (obj << 40) ^ (pos >> 3)) >> ((pos & 7) * 8));
    }
}

typedef struct an {
    maint_agent *a;
    sv_location *loc;
    char prefix[128];
    uint64_t seed;
    int nblobs, conc;
    int64_t max_bytes;
    int64_t *sizes;
    json_t *issues;
    pthread_mutex_t mu;
    _Atomic int64_t written, read;
    /* overwrite test */
    char okey[200];
    char hex_a[65], hex_b[65];
    atomic_bool stop_readers;
    _Atomic int64_t reads_done;
    /* conditional create */
    _Atomic int wins, exists, unsupported, errors;
} an;

static void issue(an *x, const char *kind, const char *key, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void issue(an *x, const char *kind, const char *key, const char *fmt, ...)
{
    char d[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d, sizeof d, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&x->mu);
    json_array_append_new(x->issues, json_pack("{s:s,s:s,s:s}", "kind", kind, "key", key, "detail", d));
    pthread_mutex_unlock(&x->mu);
}

static void key_of(an *x, int i, char key[200]) { snprintf(key, 200, "%sblob-%06d", x->prefix, i); }

static int write_obj(an *x, const char *key, uint64_t obj, int64_t size, sv_err *err)
{
    sv_location_writer *w = NULL;
    int rc = sv_location_writer_open(x->loc, key, &w, err);
    uint8_t buf[65536];
    for (int64_t off = 0; rc == 0 && off < size; off += (int64_t)sizeof buf) {
        size_t n = (size_t)(size - off < (int64_t)sizeof buf ? size - off : (int64_t)sizeof buf);
        fill(x->seed, obj, off, buf, n);
        rc = sv_location_writer_write(w, buf, n, err);
    }
    if (rc) {
        sv_location_writer_abort(w);
        return rc;
    }
    rc = sv_location_writer_commit(w, err);
    if (rc == 0)
        atomic_fetch_add(&x->written, size);
    return rc;
}

typedef struct cmp_sink {
    an *x;
    uint64_t obj;
    int64_t off;
    bool bad;
    sv_sha256_ctx *sha;
} cmp_sink;

static int compare_bytes(void *ctx, const void *data, size_t len)
{
    cmp_sink *c = ctx;
    uint8_t buf[65536];
    const uint8_t *d = data;
    if (c->sha) {
        sv_sha256_update(c->sha, data, len);
        c->off += (int64_t)len;
    }
    for (size_t done = 0; done < len && !c->bad && !c->sha;) {
        size_t n = len - done < sizeof buf ? len - done : sizeof buf;
        fill(c->x->seed, c->obj, c->off, buf, n);
        if (memcmp(buf, d + done, n))
            c->bad = true;
        c->off += (int64_t)n;
        done += n;
    }
    atomic_fetch_add(&c->x->read, (int64_t)len);
    return 0;
}

static int stop_check(an *x, sv_err *err)
{
    if (sv_maint_agent_stop(x->a))
        return sv_maint_stop_error(x->a, err);
    return 0;
}

static int write_one(void *arg, size_t i, sv_err *err)
{
    an *x = arg;
    int rc = stop_check(x, err);
    char key[200];
    key_of(x, (int)i, key);
    if (rc == 0)
        rc = write_obj(x, key, i + 1, x->sizes[i], err);
    atomic_fetch_add(&x->a->scanned, 1);
    sv_job_add_done(x->a->job, 1, 0);
    return rc;
}

static int read_one(void *arg, size_t i, sv_err *err)
{
    an *x = arg;
    int rc = stop_check(x, err);
    if (rc)
        return rc;
    char key[200];
    key_of(x, (int)i, key);
    sv_location_info info;
    sv_err e = {0};
    rc = sv_location_head(x->loc, key, &info, &e);
    if (rc) {
        issue(x, "read-after-write", key, "HEAD after the write answered: %s", e.msg);
        return 0;
    }
    if (info.size != x->sizes[i])
        issue(x, "read-after-write", key, "HEAD says %lld bytes, %lld were written", (long long)info.size,
              (long long)x->sizes[i]);
    cmp_sink c = {x, i + 1, 0, false, NULL};
    rc = sv_location_get(x->loc, key, 0, -1, compare_bytes, &c, &e);
    if (rc || c.bad || c.off != x->sizes[i])
        issue(x, "read-mismatch", key, "%s", rc ? e.msg : "the bytes read back differ from those written");
    /* A ranged read. */
    uint64_t r = mix(x->seed ^ (i * 7919));
    int64_t off = x->sizes[i] > 1 ? (int64_t)(r % (uint64_t)x->sizes[i]) : 0;
    int64_t len = (int64_t)((r >> 20) % (uint64_t)(x->sizes[i] - off)) + 1;
    c = (cmp_sink){x, i + 1, off, false, NULL};
    rc = sv_location_get(x->loc, key, off, len, compare_bytes, &c, &e);
    if (rc || c.bad || c.off != off + len)
        issue(x, "range-mismatch", key, "bytes [%lld, %lld): %s", (long long)off, (long long)(off + len),
              rc ? e.msg : "differ from those written");
    atomic_fetch_add(&x->a->scanned, 1);
    sv_job_add_done(x->a->job, 1, 0);
    return 0;
}

/* Overwrite: worker 0 replaces the object (versions A and B alternately),
 * the others read it whole and hash what they got. */
static int overwrite_worker(void *arg, size_t i, sv_err *err)
{
    an *x = arg;
    int64_t size = x->max_bytes < (1 << 20) ? x->max_bytes : (1 << 20);
    if (i == 0) {
        int rc = 0;
        for (int k = 0; rc == 0 && k < 8; k++)
            rc = write_obj(x, x->okey, k % 2 ? 0xB : 0xA, size, err);
        atomic_store(&x->stop_readers, true);
        return rc;
    }
    while (!atomic_load(&x->stop_readers)) {
        cmp_sink c = {x, 0, 0, false, sv_sha256_new()};
        sv_err e = {0};
        int rc = sv_location_get(x->loc, x->okey, 0, -1, compare_bytes, &c, &e);
        char hex[65];
        sv_sha256_final_hex(c.sha, hex);
        if (rc == 0 && strcmp(hex, x->hex_a) && strcmp(hex, x->hex_b))
            issue(x, "torn-read", x->okey,
                  "a read during an overwrite returned neither the old nor the new object (%lld bytes read, "
                  "%lld written)",
                  (long long)c.off, (long long)size);
        else if (rc)
            issue(x, "overwrite-read-failed", x->okey, "%s", e.msg);
        atomic_fetch_add(&x->reads_done, 1);
    }
    return 0;
}

static int cond_worker(void *arg, size_t i, sv_err *err)
{
    an *x = arg;
    char key[200], val[32];
    snprintf(key, sizeof key, "%sconditional", x->prefix);
    snprintf(val, sizeof val, "writer %zu", i);
    sv_err e = {0};
    int rc = sv_location_create_if_absent(x->loc, key, val, strlen(val), &e);
    if (rc == 0)
        atomic_fetch_add(&x->wins, 1);
    else if (rc == SV_EEXIST)
        atomic_fetch_add(&x->exists, 1);
    else if (rc == SV_EUNSUPPORTED)
        atomic_fetch_add(&x->unsupported, 1);
    else
        atomic_fetch_add(&x->errors, 1);
    return 0;
}

static int count_listed(void *ctx, const sv_location_entry *e)
{
    (*(int64_t *)ctx)++;
    return 0;
}

static void hash_version(an *x, uint64_t obj, int64_t size, char hex[65])
{
    sv_sha256_ctx *c = sv_sha256_new();
    uint8_t buf[65536];
    for (int64_t off = 0; c && off < size; off += (int64_t)sizeof buf) {
        size_t n = (size_t)(size - off < (int64_t)sizeof buf ? size - off : (int64_t)sizeof buf);
        fill(x->seed, obj, off, buf, n);
        sv_sha256_update(c, buf, n);
    }
    if (c)
        sv_sha256_final_hex(c, hex);
}

int sv_maint_analyze_run(maint_agent *a, json_t **result, sv_err *err)
{
    sv_maintenance *m = a->m;
    json_t *b = a->body;
    an x = {.a = a, .loc = m->loc};
    x.nblobs = (int)sv_maint_int(b, "blobs", 200);
    x.conc = (int)sv_maint_int(b, "concurrency", 10);
    x.max_bytes = 10 << 20;
    json_t *mb = json_object_get(b, "maxBlobBytes");
    if (json_is_integer(mb))
        x.max_bytes = json_integer_value(mb);
    else if (json_is_string(mb))
        sv_parse_size(json_string_value(mb), &x.max_bytes);
    x.seed = (uint64_t)sv_maint_int(b, "seed", sv_now_ms());
    snprintf(x.prefix, sizeof x.prefix, "analysis/%s/", a->job_id);
    int rc = sv_maint_guard(m, err);
    if (rc)
        return rc;
    pthread_mutex_init(&x.mu, NULL);
    x.issues = json_array();
    x.sizes = calloc((size_t)x.nblobs, sizeof *x.sizes);
    if (!x.sizes || !x.issues)
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    /* Sizes: mostly small, some up to the maximum (log-uniform). */
    for (int i = 0; rc == 0 && i < x.nblobs; i++) {
        uint64_t r = mix(x.seed + (uint64_t)i);
        double f = (double)(r >> 11) / (double)(1ULL << 53);
        int64_t s = (int64_t)(1.0 * exp(f * log((double)x.max_bytes)));
        x.sizes[i] = s < 1 ? 1 : s > x.max_bytes ? x.max_bytes : s;
    }
    atomic_store(&a->total, 2 * (int64_t)x.nblobs);
    sv_job_set_totals(a->job, 2 * (int64_t)x.nblobs, 0);
    if (rc == 0)
        rc = sv_pool_run(x.conc, (size_t)x.nblobs, write_one, &x, a->job, err);
    if (rc == 0)
        rc = sv_pool_run(x.conc, (size_t)x.nblobs, read_one, &x, a->job, err);
    /* Multipart (s3:// only): one object just over the threshold. */
    const char *multipart = "not-applicable";
    if (rc == 0 && !strcmp(sv_location_scheme(x.loc), "s3")) {
        int64_t thr = 16 << 20;
        const char *e = sv_env_str("SHARDVAULT_S3_MULTIPART_THRESHOLD", NULL);
        if (e)
            sv_parse_size(e, &thr);
        char key[200];
        snprintf(key, sizeof key, "%smultipart", x.prefix);
        int64_t size = thr + (1 << 20);
        rc = write_obj(&x, key, 0x3333, size, err);
        if (rc == 0) {
            cmp_sink c = {&x, 0x3333, 0, false, NULL};
            sv_err e2 = {0};
            int grc = sv_location_get(x.loc, key, 0, -1, compare_bytes, &c, &e2);
            if (grc || c.bad || c.off != size)
                issue(&x, "multipart-mismatch", key, "%s", grc ? e2.msg : "the bytes read back differ");
            multipart = grc || c.bad || c.off != size ? "failed" : "ok";
        }
    }
    /* Overwrite while reading. */
    int64_t osize = x.max_bytes < (1 << 20) ? x.max_bytes : (1 << 20);
    snprintf(x.okey, sizeof x.okey, "%soverwrite", x.prefix);
    hash_version(&x, 0xA, osize, x.hex_a);
    hash_version(&x, 0xB, osize, x.hex_b);
    if (rc == 0)
        rc = write_obj(&x, x.okey, 0xA, osize, err);
    if (rc == 0)
        rc = sv_pool_run(x.conc < 2 ? 2 : x.conc, (size_t)(x.conc < 2 ? 2 : x.conc), overwrite_worker, &x, NULL, err);
    /* Aborted upload. */
    if (rc == 0) {
        char key[200];
        snprintf(key, sizeof key, "%saborted", x.prefix);
        sv_location_writer *w = NULL;
        uint8_t buf[4096];
        fill(x.seed, 0xDEAD, 0, buf, sizeof buf);
        rc = sv_location_writer_open(x.loc, key, &w, err);
        if (rc == 0)
            rc = sv_location_writer_write(w, buf, sizeof buf, err);
        sv_location_writer_abort(w);
        sv_location_info info;
        if (rc == 0 && sv_location_head(x.loc, key, &info, NULL) != SV_ENOTFOUND)
            issue(&x, "aborted-upload-visible", key, "an aborted upload is visible");
    }
    /* Listing eventually shows every object. */
    int64_t expect = x.nblobs + 1 + (strcmp(multipart, "not-applicable") ? 1 : 0), listed = 0;
    for (int t = 0; rc == 0 && t < 100; t++) {
        listed = 0;
        rc = sv_location_list(x.loc, x.prefix, NULL, NULL, count_listed, &listed, err);
        if (listed >= expect)
            break;
        sv_sleep_ms(100);
    }
    if (rc == 0 && listed < expect)
        issue(&x, "listing-incomplete", x.prefix, "after 10 s the listing shows %lld of %lld objects",
              (long long)listed, (long long)expect);
    /* Conditional create. */
    const char *cond = "exclusive";
    if (rc == 0) {
        int n = x.conc < 2 ? 2 : x.conc;
        rc = sv_pool_run(n, (size_t)n, cond_worker, &x, NULL, err);
        if (atomic_load(&x.unsupported) > 0)
            cond = "unsupported";
        else if (atomic_load(&x.wins) != 1) {
            cond = "not-exclusive";
            issue(&x, "conditional-create-not-exclusive", "conditional", "%d of %d racing creates succeeded",
                  atomic_load(&x.wins), n);
        }
        if (atomic_load(&x.errors) > 0)
            issue(&x, "conditional-create-failed", "conditional", "%d racing creates failed with an error",
                  atomic_load(&x.errors));
    }
    /* Clean up, whatever happened. */
    sv_err ce = {0};
    int crc = sv_location_delete_prefix(x.loc, x.prefix, &ce);
    if (crc)
        sv_warn("analyze: cleanup failed", "prefix=%s error=\"%s\"", x.prefix, ce.msg);
    if (rc == 0)
        *result = json_pack("{s:i,s:I,s:I,s:I,s:s,s:s,s:I,s:O,s:I,s:b,s:I}", "blobs", x.nblobs, "maxBlobBytes",
                            (json_int_t)x.max_bytes, "bytesWritten", (json_int_t)atomic_load(&x.written), "bytesRead",
                            (json_int_t)atomic_load(&x.read), "multipart", multipart, "conditionalCreate", cond,
                            "overwriteReads", (json_int_t)atomic_load(&x.reads_done), "issues", x.issues, "seed",
                            (json_int_t)x.seed, "cleanedUp", crc == 0, "durationMs",
                            (json_int_t)(sv_now_ms() - a->started_ms));
    json_decref(x.issues);
    free(x.sizes);
    pthread_mutex_destroy(&x.mu);
    return rc;
}
