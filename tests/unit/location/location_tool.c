/* location_tool — drives the location module from the command line for the
 * black-box tests and the benchmark.
 *
 *   location_tool [options] URL COMMAND ARGS...
 *
 * Commands: put KEY [FILE|-], put-abort KEY [FILE|-] (write, then abort), put-file KEY PATH, create KEY [FILE|-],
 * get KEY [OFFSET LENGTH], get-file KEY PATH, head KEY,
 * list [PREFIX] [--delim /] [--start-after KEY], delete KEY,
 * delete-many KEY... (or "-" = keys on stdin), copy SRC DST,
 * check-key KEY, bench-put PREFIX COUNT SIZE THREADS, bench-get PREFIX COUNT THREADS,
 * sync-up DIR PREFIX THREADS (put_file every regular file of DIR, flat),
 * sync-down PREFIX DIR THREADS (get_to_file every object under PREFIX/).
 *
 * Exit status: 0, or 10 + (-SV_E code) with "error[<name>]: <message>" on stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "location.h"

static int fail(int rc, const sv_err *err)
{
    fprintf(stderr, "error[%s]: %s\n", sv_strerror(rc), err->msg[0] ? err->msg : "(no message)");
    return 10 - rc;
}

static int read_all(int fd, sv_buf *b)
{
    char tmp[65536];
    for (;;) {
        ssize_t n = read(fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return SV_EIO;
        if (n == 0)
            return 0;
        if (sv_buf_append(b, tmp, (size_t)n))
            return SV_ENOMEM;
    }
}

static int out_sink(void *ctx, const void *data, size_t len)
{
    return fwrite(data, 1, len, stdout) == len ? 0 : SV_EIO;
}

static int list_print(void *ctx, const sv_location_entry *e)
{
    if (e->is_prefix)
        printf("%s\t-\n", e->key);
    else
        printf("%s\t%lld\t%s\t%lld\n", e->key, (long long)e->size, e->etag ? e->etag : "",
               (long long)e->mtime_ms);
    return 0;
}

typedef struct bench {
    sv_location *loc;
    const char *prefix;
    long count, size;
    int threads;
    long next;
    pthread_mutex_t mu;
    int rc;
    sv_err err;
    char *payload;
    int64_t bytes;
} bench;

static int count_sink(void *ctx, const void *data, size_t len)
{
    *(int64_t *)ctx += (int64_t)len;
    return 0;
}

static void *bench_worker(void *arg)
{
    bench *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        long i = b->rc ? b->count : b->next++;
        pthread_mutex_unlock(&b->mu);
        if (i >= b->count)
            break;
        char key[512];
        snprintf(key, sizeof key, "%s/%08ld", b->prefix, i);
        sv_err e = {0};
        int rc;
        int64_t got = 0;
        if (b->payload)
            rc = sv_location_put(b->loc, key, b->payload, (size_t)b->size, &e);
        else
            rc = sv_location_get(b->loc, key, 0, -1, count_sink, &got, &e);
        pthread_mutex_lock(&b->mu);
        b->bytes += b->payload ? b->size : got;
        if (rc && !b->rc) {
            b->rc = rc;
            b->err = e;
        }
        pthread_mutex_unlock(&b->mu);
    }
    return NULL;
}

static int run_bench(sv_location *loc, bool put, char **a, int n, sv_err *err)
{
    if (n < (put ? 4 : 3)) {
        fprintf(stderr, "usage: bench-put PREFIX COUNT SIZE THREADS | bench-get PREFIX COUNT THREADS\n");
        return 2;
    }
    bench b = {.loc = loc, .prefix = a[0], .count = atol(a[1])};
    b.size = put ? atol(a[2]) : 0;
    b.threads = atoi(a[put ? 3 : 2]);
    if (b.threads < 1 || b.threads > 256)
        b.threads = 1;
    pthread_mutex_init(&b.mu, NULL);
    if (put) {
        b.payload = malloc((size_t)b.size + 1);
        if (!b.payload)
            return fail(SV_ENOMEM, err);
        for (long i = 0; i < b.size; i++)
            b.payload[i] = (char)(i * 131 + 7);
    }
    pthread_t th[256];
    int64_t t0 = sv_mono_ns();
    for (int i = 0; i < b.threads; i++)
        pthread_create(&th[i], NULL, bench_worker, &b);
    for (int i = 0; i < b.threads; i++)
        pthread_join(th[i], NULL);
    double s = (double)(sv_mono_ns() - t0) / 1e9;
    free(b.payload);
    if (b.rc) {
        *err = b.err;
        return fail(b.rc, err);
    }
    printf("{\"objects\":%ld,\"bytes\":%lld,\"seconds\":%.3f}\n", b.count, (long long)b.bytes, s);
    return 0;
}

/* ---- sync-up / sync-down: many files with a thread pool (benchmark peer of
 * `aws s3 sync`) ---- */

typedef struct sync_job {
    sv_location *loc;
    bool up;
    const char *dir, *prefix;
    char **names;
    size_t n, next;
    pthread_mutex_t mu;
    int rc;
    sv_err err;
} sync_job;

static void *sync_worker(void *arg)
{
    sync_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t i = j->rc ? j->n : j->next++;
        pthread_mutex_unlock(&j->mu);
        if (i >= j->n)
            break;
        char key[1200], path[1200];
        snprintf(key, sizeof key, "%s/%s", j->prefix, j->names[i]);
        snprintf(path, sizeof path, "%s/%s", j->dir, j->names[i]);
        sv_err e = {0};
        int rc = j->up ? sv_location_put_file(j->loc, key, path, &e) : sv_location_get_to_file(j->loc, key, path, &e);
        if (rc) {
            pthread_mutex_lock(&j->mu);
            if (!j->rc) {
                j->rc = rc;
                j->err = e;
            }
            pthread_mutex_unlock(&j->mu);
        }
    }
    return NULL;
}

static int name_collect(void *ctx, const sv_location_entry *e)
{
    sync_job *j = ctx;
    if (e->is_prefix)
        return 0;
    const char *base = e->key + strlen(j->prefix) + 1;
    if ((j->n & 1023) == 0)
        j->names = realloc(j->names, (j->n + 1024) * sizeof *j->names);
    j->names[j->n++] = strdup(base);
    return 0;
}

static int run_sync(sv_location *loc, bool up, char **a, int n, sv_err *err)
{
    if (n < 3) {
        fprintf(stderr, "usage: sync-up DIR PREFIX THREADS | sync-down PREFIX DIR THREADS\n");
        return 2;
    }
    sync_job j = {.loc = loc, .up = up, .dir = up ? a[0] : a[1], .prefix = up ? a[1] : a[0]};
    pthread_mutex_init(&j.mu, NULL);
    int threads = atoi(a[2]);
    if (threads < 1 || threads > 256)
        threads = 1;
    int64_t t0 = sv_mono_ns();
    if (up) {
        DIR *d = opendir(j.dir);
        if (!d) {
            perror(j.dir);
            return 2;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.' || de->d_type != DT_REG)
                continue;
            if ((j.n & 1023) == 0)
                j.names = realloc(j.names, (j.n + 1024) * sizeof *j.names);
            j.names[j.n++] = strdup(de->d_name);
        }
        closedir(d);
    } else {
        char pfx[1100];
        snprintf(pfx, sizeof pfx, "%s/", j.prefix);
        int rc = sv_location_list(loc, pfx, "/", NULL, name_collect, &j, err);
        if (rc)
            return fail(rc, err);
        sv_mkdirs(j.dir, NULL);
    }
    pthread_t th[256];
    for (int i = 0; i < threads; i++)
        pthread_create(&th[i], NULL, sync_worker, &j);
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
    double s = (double)(sv_mono_ns() - t0) / 1e9;
    for (size_t i = 0; i < j.n; i++)
        free(j.names[i]);
    free(j.names);
    if (j.rc) {
        *err = j.err;
        return fail(j.rc, err);
    }
    printf("{\"objects\":%zu,\"seconds\":%.3f}\n", j.n, s);
    return 0;
}

int main(int argc, char **argv)
{
    sv_location_opts o = {0};
    int i = 1;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t n = 0;
        if (!strcmp(f, "--no-fsync")) {
            o.no_fsync = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "option %s needs a value\n", f);
            return 2;
        }
        i++;
        if (!strcmp(f, "--endpoint")) { o.endpoint = v; continue; }
        if (!strcmp(f, "--cond")) {
            o.cond_mode = !strcmp(v, "native") ? SV_LOC_COND_NATIVE
                        : !strcmp(v, "best-effort") ? SV_LOC_COND_BEST_EFFORT
                        : !strcmp(v, "off") ? SV_LOC_COND_OFF : SV_LOC_COND_AUTO;
            continue;
        }
        if (sv_parse_size(v, &n)) {
            fprintf(stderr, "option %s: \"%s\" is not a number\n", f, v);
            return 2;
        }
        if (!strcmp(f, "--part-size")) o.part_size = n;
        else if (!strcmp(f, "--threshold")) o.multipart_threshold = n;
        else if (!strcmp(f, "--concurrency")) o.concurrency = (int)n;
        else if (!strcmp(f, "--retries")) o.retries = n == 0 ? -1 : (int)n;
        else if (!strcmp(f, "--retry-base-ms")) o.retry_base_ms = (int)n;
        else if (!strcmp(f, "--timeout-ms")) o.request_timeout_ms = (int)n;
        else if (!strcmp(f, "--connect-timeout-ms")) o.connect_timeout_ms = (int)n;
        else if (!strcmp(f, "--stall-ms")) o.stall_timeout_ms = (int)n;
        else if (!strcmp(f, "--page")) o.list_page_size = (int)n;
        else {
            fprintf(stderr, "unknown option %s\n", f);
            return 2;
        }
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: location_tool [options] URL COMMAND ARGS...\n");
        return 2;
    }
    const char *url = argv[i], *cmd = argv[i + 1];
    char **a = argv + i + 2;
    int n = argc - i - 2;
    sv_err err = {0};
    if (!strcmp(cmd, "check-key")) {
        int rc = sv_location_check_key(n ? a[0] : "", &err);
        return rc ? fail(rc, &err) : 0;
    }
    sv_location *loc;
    int rc = sv_location_open(url, &o, &loc, &err);
    if (rc)
        return fail(rc, &err);
    int status = 0;
#define NEED(k)                                                   \
    if (n < (k)) {                                                \
        fprintf(stderr, "%s: missing arguments\n", cmd);          \
        status = 2;                                               \
        goto out;                                                 \
    }
    if (!strcmp(cmd, "put") || !strcmp(cmd, "put-abort")) {
        NEED(1);
        bool abort_at_end = !strcmp(cmd, "put-abort"); /* tests: writer abort */
        int fd = (n < 2 || !strcmp(a[1], "-")) ? 0 : open(a[1], O_RDONLY);
        if (fd < 0) {
            perror(a[1]);
            status = 2;
            goto out;
        }
        sv_location_writer *w;
        rc = sv_location_writer_open(loc, a[0], &w, &err);
        if (rc == 0) {
            static char buf[1 << 16];
            for (;;) {
                ssize_t r = read(fd, buf, sizeof buf);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0) {
                    rc = sv_fail(&err, SV_EIO, "reading input: %s", strerror(errno));
                    break;
                }
                if (r == 0)
                    break;
                if ((rc = sv_location_writer_write(w, buf, (size_t)r, &err)))
                    break;
            }
            if (rc || abort_at_end)
                sv_location_writer_abort(w);
            else
                rc = sv_location_writer_commit(w, &err);
        }
        if (fd > 0)
            close(fd);
    } else if (!strcmp(cmd, "put-file")) {
        NEED(2);
        rc = sv_location_put_file(loc, a[0], a[1], &err);
    } else if (!strcmp(cmd, "create")) {
        NEED(1);
        sv_buf b = {0};
        int fd = (n < 2 || !strcmp(a[1], "-")) ? 0 : open(a[1], O_RDONLY);
        rc = fd < 0 ? sv_fail(&err, SV_EIO, "cannot open %s", a[1]) : read_all(fd, &b);
        if (rc == 0)
            rc = sv_location_create_if_absent(loc, a[0], b.data, b.len, &err);
        if (fd > 0)
            close(fd);
        sv_buf_free(&b);
    } else if (!strcmp(cmd, "get")) {
        NEED(1);
        int64_t off = n >= 3 ? atoll(a[1]) : 0, len = n >= 3 ? atoll(a[2]) : -1;
        rc = sv_location_get(loc, a[0], off, len, out_sink, NULL, &err);
        fflush(stdout);
    } else if (!strcmp(cmd, "get-file")) {
        NEED(2);
        rc = sv_location_get_to_file(loc, a[0], a[1], &err);
    } else if (!strcmp(cmd, "head")) {
        NEED(1);
        sv_location_info info;
        rc = sv_location_head(loc, a[0], &info, &err);
        if (rc == 0)
            printf("{\"size\":%lld,\"etag\":\"%s\",\"mtime_ms\":%lld}\n", (long long)info.size, info.etag,
                   (long long)info.mtime_ms);
    } else if (!strcmp(cmd, "list")) {
        const char *prefix = "", *delim = NULL, *after = NULL;
        for (int k = 0; k < n; k++) {
            if (!strcmp(a[k], "--delim") && k + 1 < n)
                delim = a[++k];
            else if (!strcmp(a[k], "--start-after") && k + 1 < n)
                after = a[++k];
            else
                prefix = a[k];
        }
        rc = sv_location_list(loc, prefix, delim, after, list_print, NULL, &err);
    } else if (!strcmp(cmd, "delete")) {
        NEED(1);
        rc = sv_location_delete(loc, a[0], &err);
    } else if (!strcmp(cmd, "delete-many")) {
        sv_buf in = {0};
        const char **keys = NULL;
        size_t nk = 0;
        if (n == 1 && !strcmp(a[0], "-")) {
            rc = read_all(0, &in);
            char *s = rc ? NULL : sv_buf_cstr(&in);
            size_t cap = 0;
            for (char *line = s ? strtok(s, "\n") : NULL; line; line = strtok(NULL, "\n")) {
                if (nk == cap) {
                    cap = cap ? cap * 2 : 1024;
                    keys = realloc(keys, cap * sizeof *keys);
                }
                keys[nk++] = line;
            }
            rc = sv_location_delete_many(loc, keys, nk, &err);
        } else {
            rc = sv_location_delete_many(loc, (const char *const *)a, (size_t)n, &err);
        }
        free(keys);
        sv_buf_free(&in);
    } else if (!strcmp(cmd, "copy")) {
        NEED(2);
        rc = sv_location_copy(loc, a[0], a[1], &err);
    } else if (!strcmp(cmd, "describe")) {
        printf("%s\n", sv_location_describe(loc));
    } else if (!strcmp(cmd, "sync-up") || !strcmp(cmd, "sync-down")) {
        status = run_sync(loc, !strcmp(cmd, "sync-up"), a, n, &err);
        goto out;
    } else if (!strcmp(cmd, "bench-put") || !strcmp(cmd, "bench-get")) {
        status = run_bench(loc, !strcmp(cmd, "bench-put"), a, n, &err);
        goto out;
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        status = 2;
        goto out;
    }
    if (rc)
        status = fail(rc, &err);
out:
    sv_location_close(loc);
    if (getenv("LOCATION_TOOL_RSS")) { /* tests: bounded writer memory */
        /* VmHWM, not getrusage: ru_maxrss survives execve and would report
         * the spawning process's size. */
        long long kb = -1;
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (!strncmp(line, "VmHWM:", 6))
                kb = atoll(line + 6);
        if (f)
            fclose(f);
        fprintf(stderr, "peak_rss_bytes=%lld\n", kb * 1024);
    }
    return status;
}
