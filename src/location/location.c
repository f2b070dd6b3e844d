/* location: URL parsing, option resolution, key checks and the calls that
 * are the same for every driver. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "location_internal.h"

#define MAX_KEY 1024

static int check_segments(const char *what, const char *s, bool allow_trailing_slash, sv_err *err)
{
    size_t n = strlen(s);
    if (n > MAX_KEY)
        return sv_fail(err, SV_EINVAL, "%s is %zu bytes; the limit is %d", what, n, MAX_KEY);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return sv_fail(err, SV_EINVAL, "%s \"%.200s\" contains control byte 0x%02x at %zu",
                           what, s, c, i);
    }
    const char *seg = s;
    while (*seg) {
        const char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
        if (len == 0)
            return sv_fail(err, SV_EINVAL,
                           "%s \"%.200s\" has an empty segment (leading, trailing or double '/')", what, s);
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return sv_fail(err, SV_EINVAL, "%s \"%.200s\" has a \".\" or \"..\" segment", what, s);
        if (len >= 4 && !memcmp(seg, ".sv-", 4))
            return sv_fail(err, SV_EINVAL,
                           "%s \"%.200s\" has a segment starting with \".sv-\" (reserved for temporary files)",
                           what, s);
        if (!slash)
            break;
        seg = slash + 1;
        if (!*seg && !allow_trailing_slash)
            return sv_fail(err, SV_EINVAL,
                           "%s \"%.200s\" has an empty segment (leading, trailing or double '/')", what, s);
    }
    return 0;
}

int sv_location_check_key(const char *key, sv_err *err)
{
    if (!key || !*key)
        return sv_fail(err, SV_EINVAL, "object key is empty");
    return check_segments("object key", key, false, err);
}

int sv_loc_check_prefix(const char *prefix, sv_err *err)
{
    if (!prefix || !*prefix)
        return 0;
    return check_segments("list prefix", prefix, true, err);
}

/* ---- options ------------------------------------------------------------ */

static int env_int(const char *name, int64_t cur, int64_t dflt, int64_t lo, int64_t hi,
                   int64_t *out, sv_err *err)
{
    if (cur) {
        *out = cur;
    } else {
        int rc = sv_env_int(name, dflt, out, err);
        if (rc)
            return rc;
    }
    if (*out < lo || *out > hi)
        return sv_fail(err, SV_EINVAL, "%s = %lld is out of range [%lld, %lld]", name,
                       (long long)*out, (long long)lo, (long long)hi);
    return 0;
}

static int dup_opt(char **dst, const char *given, const char *env1, const char *env2, const char *dflt)
{
    const char *v = given;
    if (!v || !*v)
        v = env1 ? sv_env_str(env1, NULL) : NULL;
    if ((!v || !*v) && env2)
        v = sv_env_str(env2, NULL);
    if (!v || !*v)
        v = dflt;
    *dst = v ? strdup(v) : NULL;
    return (v && !*dst) ? SV_ENOMEM : 0;
}

/* A credential from given, else $env, else the file named by $env_FILE
 * (trailing newline trimmed): secrets need not sit in the environment. */
static int dup_secret(char **dst, const char *given, const char *env, sv_err *err)
{
    int rc = dup_opt(dst, given, env, NULL, NULL);
    if (rc || *dst)
        return rc;
    char var[64];
    snprintf(var, sizeof var, "%s_FILE", env);
    const char *path = sv_env_str(var, NULL);
    if (!path || !*path)
        return 0;
    size_t len = 0;
    if (sv_read_file(path, dst, &len, NULL))
        return sv_fail(err, SV_EINVAL, "%s names %s, which cannot be read", var, path);
    while (len && ((*dst)[len - 1] == '\n' || (*dst)[len - 1] == '\r'))
        (*dst)[--len] = '\0';
    return 0;
}

void sv_loc_free_opts(sv_location_opts *o)
{
    free((char *)o->endpoint);
    free((char *)o->region);
    free((char *)o->access_key);
    free((char *)o->secret_key);
    free((char *)o->session_token);
    memset(o, 0, sizeof *o);
}

int sv_loc_resolve_opts(const sv_location_opts *in, sv_location_opts *o, sv_err *err)
{
    sv_location_opts zero = {0};
    if (!in)
        in = &zero;
    memset(o, 0, sizeof *o);
    char *ep = NULL, *reg = NULL, *ak = NULL, *sk = NULL, *st = NULL;
    int rc = dup_opt(&reg, in->region, "AWS_REGION", "AWS_DEFAULT_REGION", "us-east-1");
    if (!rc)
        rc = dup_opt(&ep, in->endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", NULL);
    if (!rc)
        rc = dup_secret(&ak, in->access_key, "AWS_ACCESS_KEY_ID", err);
    if (!rc)
        rc = dup_secret(&sk, in->secret_key, "AWS_SECRET_ACCESS_KEY", err);
    if (!rc)
        rc = dup_secret(&st, in->session_token, "AWS_SESSION_TOKEN", err);
    o->region = reg;
    o->access_key = ak;
    o->secret_key = sk;
    o->session_token = st;
    if (!rc && !ep) {
        sv_buf b = {0};
        rc = sv_buf_printf(&b, "https://s3.%s.amazonaws.com", reg);
        ep = rc ? NULL : sv_buf_cstr(&b);
    }
    o->endpoint = ep;
    if (rc) {
        sv_loc_free_opts(o);
        return rc == SV_ENOMEM ? sv_fail(err, SV_ENOMEM, "out of memory resolving location options") : rc;
    }
    /* Strip trailing slashes so URLs join cleanly. */
    size_t el = strlen(ep);
    while (el > 0 && ep[el - 1] == '/')
        ep[--el] = 0;
    if (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8)) {
        sv_fail(err, SV_EINVAL, "S3 endpoint \"%s\" must start with http:// or https://", ep);
        sv_loc_free_opts(o);
        return SV_EINVAL;
    }
    int64_t v;
    const int64_t MiB = 1024 * 1024;
#define GET(field, name, dflt, lo, hi)                                          \
    do {                                                                        \
        if ((rc = env_int(name, in->field, dflt, lo, hi, &v, err))) {           \
            sv_loc_free_opts(o);                                                \
            return rc;                                                          \
        }                                                                       \
        o->field = v;                                                           \
    } while (0)
    /* Parts below 5 MiB are refused by AWS but accepted by test servers; the
     * 64 KiB floor only keeps the part count sane. */
    GET(part_size, "SHARDVAULT_S3_PART_SIZE", 16 * MiB, 64 * 1024, 5120 * MiB);
    GET(multipart_threshold, "SHARDVAULT_S3_MULTIPART_THRESHOLD", 16 * MiB, 64 * 1024, 5120 * MiB);
    GET(concurrency, "SHARDVAULT_S3_CONCURRENCY", 4, 1, 64);
    GET(connect_timeout_ms, "SHARDVAULT_S3_CONNECT_TIMEOUT_MS", 10000, 1, 600000);
    GET(request_timeout_ms, "SHARDVAULT_S3_REQUEST_TIMEOUT_MS", 0, 0, 86400000);
    GET(stall_timeout_ms, "SHARDVAULT_S3_STALL_TIMEOUT_MS", 30000, 1000, 3600000);
    GET(retry_base_ms, "SHARDVAULT_S3_RETRY_BASE_MS", 100, 1, 60000);
    GET(list_page_size, "SHARDVAULT_S3_LIST_PAGE_SIZE", 1000, 1, 1000);
#undef GET
    if (in->retries) {
        o->retries = in->retries < 0 ? 0 : in->retries;
    } else {
        if ((rc = env_int("SHARDVAULT_S3_RETRIES", 0, 5, -1, 100, &v, err))) {
            sv_loc_free_opts(o);
            return rc;
        }
        o->retries = v < 0 ? 0 : (int)v;
    }
    o->cond_mode = in->cond_mode;
    if (o->cond_mode == SV_LOC_COND_AUTO) {
        const char *m = sv_env_str("SHARDVAULT_S3_CONDITIONAL_WRITES", "auto");
        if (!strcmp(m, "auto")) o->cond_mode = SV_LOC_COND_AUTO;
        else if (!strcmp(m, "native")) o->cond_mode = SV_LOC_COND_NATIVE;
        else if (!strcmp(m, "best-effort")) o->cond_mode = SV_LOC_COND_BEST_EFFORT;
        else if (!strcmp(m, "off")) o->cond_mode = SV_LOC_COND_OFF;
        else {
            sv_loc_free_opts(o);
            return sv_fail(err, SV_EINVAL,
                           "SHARDVAULT_S3_CONDITIONAL_WRITES=\"%s\": use auto, native, best-effort or off", m);
        }
    }
    o->no_fsync = in->no_fsync;
    return 0;
}

/* ---- open / close --------------------------------------------------------- */

int sv_location_open(const char *url, const sv_location_opts *opts, sv_location **out, sv_err *err)
{
    *out = NULL;
    if (!url || !*url)
        return sv_fail(err, SV_EINVAL, "location URL is empty; use file:///dir or s3://bucket/prefix");
    sv_location_opts o;
    int rc = sv_loc_resolve_opts(opts, &o, err);
    if (rc)
        return rc;
    if (!strncmp(url, "file://", 7)) {
        const char *path = url + 7;
        if (!*path) {
            rc = sv_fail(err, SV_EINVAL, "location \"%s\" has no path; use file:///abs/dir or file://./rel", url);
        } else if (path[0] != '/' && strncmp(path, "./", 2) && strcmp(path, ".") &&
                   strncmp(path, "../", 3)) {
            rc = sv_fail(err, SV_EINVAL,
                         "location \"%s\": a file URL needs an absolute path (file:///dir) or one starting "
                         "with ./ (file://./dir); \"file://host/...\" is not supported", url);
        } else {
            rc = sv_loc_file_open(path, &o, out, err);
        }
    } else if (!strncmp(url, "s3://", 5)) {
        const char *b = url + 5;
        const char *slash = strchr(b, '/');
        size_t bl = slash ? (size_t)(slash - b) : strlen(b);
        char bucket[64];
        bool ok = bl >= 3 && bl <= 63;
        for (size_t i = 0; ok && i < bl; i++) {
            char c = b[i];
            ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
        }
        if (!ok) {
            rc = sv_fail(err, SV_EINVAL,
                         "location \"%s\": bucket name must be 3-63 characters of a-z, 0-9, '-', '.'", url);
        } else {
            memcpy(bucket, b, bl);
            bucket[bl] = 0;
            char *prefix = strdup(slash ? slash + 1 : "");
            if (!prefix) {
                rc = sv_fail(err, SV_ENOMEM, "out of memory");
            } else {
                size_t pl = strlen(prefix);
                while (pl > 0 && prefix[pl - 1] == '/')
                    prefix[--pl] = 0;
                if (pl && check_segments("location prefix", prefix, false, err))
                    rc = SV_EINVAL;
                else
                    rc = sv_loc_s3_open(bucket, prefix, &o, out, err);
                free(prefix);
            }
        }
    } else {
        rc = sv_fail(err, SV_EINVAL, "location \"%s\": unsupported scheme; use file:// or s3://", url);
    }
    if (rc) {
        sv_loc_free_opts(&o);
        return rc;
    }
    /* Test hook: a slow store's deletes (retries, backoff), so tests can show
     * that callers do not hold their locks across a delete. */
    int64_t delay = 0;
    if (sv_env_int("SHARDVAULT_LOCATION_TEST_DELETE_DELAY_MS", 0, &delay, NULL) == 0 && delay > 0)
        (*out)->test_delete_delay_ms = delay;
    return 0;
}

void sv_location_close(sv_location *loc)
{
    if (!loc)
        return;
    loc->drv->close(loc); /* frees loc->describe and loc->o too */
}

const char *sv_location_describe(const sv_location *loc) { return loc->describe; }
const char *sv_location_scheme(const sv_location *loc) { return loc->drv->scheme; }

/* ---- dispatch ----------------------------------------------------------- */

#define CHECK_KEY(op, k)                                                         \
    do {                                                                         \
        int crc_ = sv_location_check_key(k, err);                                \
        if (crc_) {                                                              \
            sv_err_wrap(err, "%s at %s", op, loc->describe);                     \
            return crc_;                                                         \
        }                                                                        \
    } while (0)

int sv_location_writer_open(sv_location *loc, const char *key, sv_location_writer **w, sv_err *err)
{
    *w = NULL;
    CHECK_KEY("write", key);
    return loc->drv->writer_open(loc, key, w, err);
}

int sv_location_writer_write(sv_location_writer *w, const void *data, size_t len, sv_err *err)
{
    if (len == 0)
        return 0;
    int rc = w->ops->write(w, data, len, err);
    if (rc == 0)
        w->size += (int64_t)len;
    return rc;
}

int64_t sv_location_writer_size(const sv_location_writer *w) { return w->size; }

int sv_location_writer_commit(sv_location_writer *w, sv_err *err)
{
    return w->ops->commit(w, err);
}

void sv_location_writer_abort(sv_location_writer *w)
{
    if (w)
        w->ops->abort(w);
}

int sv_location_put(sv_location *loc, const char *key, const void *data, size_t len, sv_err *err)
{
    sv_location_writer *w;
    int rc = sv_location_writer_open(loc, key, &w, err);
    if (rc)
        return rc;
    rc = sv_location_writer_write(w, data, len, err);
    if (rc) {
        sv_location_writer_abort(w);
        return rc;
    }
    return sv_location_writer_commit(w, err);
}

int sv_location_put_file(sv_location *loc, const char *key, const char *local_path, sv_err *err)
{
    CHECK_KEY("put_file", key);
    return loc->drv->put_file(loc, key, local_path, err);
}

int sv_location_create_if_absent(sv_location *loc, const char *key, const void *data, size_t len,
                                 sv_err *err)
{
    CHECK_KEY("create_if_absent", key);
    return loc->drv->create_if_absent(loc, key, data, len, err);
}

int sv_location_copy(sv_location *loc, const char *src_key, const char *dst_key, sv_err *err)
{
    CHECK_KEY("copy", src_key);
    CHECK_KEY("copy", dst_key);
    return loc->drv->copy(loc, src_key, dst_key, err);
}

int sv_location_get(sv_location *loc, const char *key, int64_t offset, int64_t length,
                    sv_location_sink sink, void *ctx, sv_err *err)
{
    CHECK_KEY("get", key);
    if (offset < 0 || length < -1)
        return sv_fail(err, SV_EINVAL, "get %s at %s: bad range offset=%lld length=%lld", key,
                       loc->describe, (long long)offset, (long long)length);
    return loc->drv->get(loc, key, offset, length, sink, ctx, err);
}

static int buf_sink(void *ctx, const void *data, size_t len)
{
    return sv_buf_append(ctx, data, len);
}

typedef struct mem_sink_ctx {
    uint8_t *dst;
    size_t want, got;
} mem_sink_ctx;

static int mem_sink(void *ctx, const void *data, size_t len)
{
    mem_sink_ctx *m = ctx;
    if (len > m->want - m->got)
        return SV_EIO;
    memcpy(m->dst + m->got, data, len);
    m->got += len;
    return 0;
}

int sv_location_read(sv_location *loc, const char *key, int64_t offset, void *buf, size_t len, sv_err *err)
{
    CHECK_KEY("read", key);
    if (offset < 0 || len > INT64_MAX)
        return sv_fail(err, SV_EINVAL, "read %s at %s: bad range offset=%lld", key, loc->describe,
                       (long long)offset);
    if (len == 0)
        return 0;
    if (loc->drv->read_at)
        return loc->drv->read_at(loc, key, offset, buf, len, err);
    mem_sink_ctx m = {buf, len, 0};
    int rc = loc->drv->get(loc, key, offset, (int64_t)len, mem_sink, &m, err);
    if (rc == 0 && m.got != len)
        rc = sv_fail(err, SV_EIO, "read %s at %s: got %zu of %zu bytes at offset %lld", key, loc->describe, m.got,
                     len, (long long)offset);
    return rc;
}

int sv_location_get_buf(sv_location *loc, const char *key, sv_buf *out, sv_err *err)
{
    return sv_location_get(loc, key, 0, -1, buf_sink, out, err);
}

typedef struct fd_sink_ctx { int fd; } fd_sink_ctx;

static int fd_sink(void *ctx, const void *data, size_t len)
{
    fd_sink_ctx *c = ctx;
    const char *p = data;
    while (len) {
        ssize_t n = write(c->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return SV_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sv_location_get_to_file(sv_location *loc, const char *key, const char *local_path, sv_err *err)
{
    CHECK_KEY("get_to_file", key);
    sv_buf tmp = {0};
    sv_uuid u;
    sv_uuid_v4(&u);
    char us[37];
    sv_uuid_format(&u, us);
    if (sv_buf_printf(&tmp, "%s.sv-tmp-%s", local_path, us) || !sv_buf_cstr(&tmp)) {
        sv_buf_free(&tmp);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    const char *tp = (const char *)tmp.data;
    fd_sink_ctx c = {.fd = open(tp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)};
    if (c.fd < 0) {
        int e = errno;
        sv_buf_free(&tmp);
        return sv_fail(err, SV_EIO, "get %s at %s: cannot create %s: %s", key, loc->describe,
                       local_path, strerror(e));
    }
    int rc = sv_location_get(loc, key, 0, -1, fd_sink, &c, err);
    if (rc == SV_EIO && err && !err->msg[0])
        sv_fail(err, rc, "get %s: writing %s failed", key, local_path);
    if (rc == 0 && !loc->o.no_fsync && fsync(c.fd))
        rc = sv_fail(err, SV_EIO, "get %s: fsync %s: %s", key, local_path, strerror(errno));
    if (close(c.fd) && rc == 0)
        rc = sv_fail(err, SV_EIO, "get %s: close %s: %s", key, local_path, strerror(errno));
    if (rc == 0 && rename(tp, local_path))
        rc = sv_fail(err, SV_EIO, "get %s: rename to %s: %s", key, local_path, strerror(errno));
    if (rc)
        unlink(tp);
    sv_buf_free(&tmp);
    return rc;
}

int sv_location_link_to_file(sv_location *loc, const char *key, const char *local_path, sv_err *err)
{
    CHECK_KEY("link_to_file", key);
    if (loc->drv->link_to_file) {
        int rc = loc->drv->link_to_file(loc, key, local_path, err);
        if (rc != SV_EUNSUPPORTED)
            return rc;
    }
    return sv_location_get_to_file(loc, key, local_path, err);
}

int sv_location_head(sv_location *loc, const char *key, sv_location_info *info, sv_err *err)
{
    CHECK_KEY("head", key);
    sv_location_info dummy;
    memset(info ? info : &dummy, 0, sizeof dummy);
    return loc->drv->head(loc, key, info ? info : &dummy, err);
}

int sv_location_list(sv_location *loc, const char *prefix, const char *delimiter,
                     const char *start_after, sv_location_list_fn fn, void *ctx, sv_err *err)
{
    if (!prefix)
        prefix = "";
    int prc = sv_loc_check_prefix(prefix, err);
    if (prc) {
        sv_err_wrap(err, "list at %s", loc->describe);
        return prc;
    }
    if (delimiter && !*delimiter)
        delimiter = NULL;
    if (delimiter && strcmp(delimiter, "/"))
        return sv_fail(err, SV_EINVAL, "list at %s: only \"/\" is supported as a delimiter", loc->describe);
    if (start_after && !*start_after)
        start_after = NULL;
    return loc->drv->list(loc, prefix, delimiter, start_after, fn, ctx, err);
}

int sv_location_delete(sv_location *loc, const char *key, sv_err *err)
{
    CHECK_KEY("delete", key);
    if (loc->test_delete_delay_ms)
        sv_sleep_ms(loc->test_delete_delay_ms);
    return loc->drv->del(loc, key, err);
}

int sv_location_delete_many(sv_location *loc, const char *const *keys, size_t n, sv_err *err)
{
    for (size_t i = 0; i < n; i++)
        CHECK_KEY("delete_many", keys[i]);
    if (n == 0)
        return 0;
    if (loc->test_delete_delay_ms)
        sv_sleep_ms(loc->test_delete_delay_ms);
    return loc->drv->delete_many(loc, keys, n, err);
}

/* ---- delete by prefix -------------------------------------------------------- */

typedef struct prefix_batch {
    sv_location *loc;
    char *keys[1000];
    size_t n;
    sv_err *err;
} prefix_batch;

static int flush_batch(prefix_batch *pb)
{
    int rc = pb->n ? sv_location_delete_many(pb->loc, (const char *const *)pb->keys, pb->n, pb->err) : 0;
    for (size_t i = 0; i < pb->n; i++)
        free(pb->keys[i]);
    pb->n = 0;
    return rc;
}

static int collect_for_delete(void *ctx, const sv_location_entry *e)
{
    prefix_batch *pb = ctx;
    if (e->is_prefix)
        return 0;
    if (!(pb->keys[pb->n] = strdup(e->key)))
        return sv_fail(pb->err, SV_ENOMEM, "out of memory");
    return ++pb->n == sizeof pb->keys / sizeof pb->keys[0] ? flush_batch(pb) : 0;
}

int sv_location_delete_prefix(sv_location *loc, const char *prefix, sv_err *err)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (n < 2 || prefix[n - 1] != '/')
        return sv_fail(err, SV_EINVAL, "delete_prefix needs a prefix ending with '/', not '%.200s'",
                       prefix ? prefix : "");
    prefix_batch *pb = calloc(1, sizeof *pb);
    if (!pb)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    pb->loc = loc;
    pb->err = err;
    int rc = sv_location_list(loc, prefix, NULL, NULL, collect_for_delete, pb, err);
    int rc2 = flush_batch(pb);
    free(pb);
    return rc ? rc : rc2;
}
