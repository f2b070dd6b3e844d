#include "core.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

/* ---- time ---- */

int64_t sv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sv_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void sv_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void sv_format_time_ms(int64_t ms, char *out, size_t outlen)
{
    /* Floor division, so times before 1970 keep a positive millisecond part. */
    int64_t frac = ms % 1000;
    if (frac < 0)
        frac += 1000;
    time_t secs = (time_t)((ms - frac) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", base, (int)frac);
}

/* ---- uuid ---- */

/* 0x10 | the value of a hex digit; 0 for anything else (so a parse ANDs
 * every digit's entry and checks bit 4 once, without a branch per digit:
 * branching per digit measured 8 times slower) */
static const unsigned char hexv[256] = {
    ['0'] = 0x10, ['1'] = 0x11, ['2'] = 0x12, ['3'] = 0x13, ['4'] = 0x14, ['5'] = 0x15, ['6'] = 0x16,
    ['7'] = 0x17, ['8'] = 0x18, ['9'] = 0x19, ['a'] = 0x1a, ['b'] = 0x1b, ['c'] = 0x1c, ['d'] = 0x1d,
    ['e'] = 0x1e, ['f'] = 0x1f, ['A'] = 0x1a, ['B'] = 0x1b, ['C'] = 0x1c, ['D'] = 0x1d, ['E'] = 0x1e,
    ['F'] = 0x1f,
};

int sv_uuid_parse(const char *s, size_t len, sv_uuid *out)
{
    /* byte i of the UUID is at text offset at[i] */
    static const unsigned char at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    if (len != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')
        return SV_EINVAL;
    const unsigned char *u = (const unsigned char *)s;
    unsigned all = 0x10;
    for (int i = 0; i < 16; i++) {
        unsigned hi = hexv[u[at[i]]], lo = hexv[u[at[i] + 1]];
        all &= hi & lo;
        out->b[i] = (uint8_t)((hi & 15) << 4 | (lo & 15));
    }
    return all ? 0 : SV_EINVAL;
}

void sv_uuid_format(const sv_uuid *u, char out[37])
{
    static const char hx[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hx[u->b[i] >> 4];
        out[o++] = hx[u->b[i] & 15];
    }
    out[o] = '\0';
}

void sv_uuid_v4(sv_uuid *out)
{
    size_t got = 0;
    while (got < sizeof out->b) {
        ssize_t n = getrandom(out->b + got, sizeof out->b - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR)
            break;
    }
    out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x40);
    out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80);
}

int sv_uuid_cmp(const sv_uuid *a, const sv_uuid *b) { return memcmp(a->b, b->b, 16); }

uint64_t sv_hash64(const void *data, size_t len) { return XXH3_64bits(data, len); }

/* ---- buffers ---- */

int sv_buf_reserve(sv_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra) {
        if (cap > SIZE_MAX / 2)
            return SV_ENOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return SV_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int sv_buf_append(sv_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return 0;
    if (sv_buf_reserve(b, len))
        return SV_ENOMEM;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

int sv_buf_append_str(sv_buf *b, const char *s) { return sv_buf_append(b, s, strlen(s)); }

int sv_buf_putc(sv_buf *b, uint8_t c)
{
    if (b->len == b->cap && sv_buf_reserve(b, 1))
        return SV_ENOMEM;
    b->data[b->len++] = c;
    return 0;
}

int sv_buf_printf(sv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return SV_EINVAL;
    if (sv_buf_reserve(b, (size_t)n + 1))
        return SV_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void sv_buf_reset(sv_buf *b) { b->len = 0; }

void sv_buf_free(sv_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *sv_buf_cstr(sv_buf *b)
{
    if (sv_buf_reserve(b, 1))
        return NULL;
    b->data[b->len] = '\0';
    return (char *)b->data;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid:
 * no overlongs, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len < 2)
        return len;
    unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

int sv_buf_json_string(sv_buf *b, const char *s, size_t len)
{
    static const char hx[] = "0123456789abcdef";
    if (sv_buf_reserve(b, len + 2))
        return SV_ENOMEM;
    b->data[b->len++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) {
            /* a whole valid sequence as it is; an invalid byte (a name cut
             * mid-character, a client's header) as U+FFFD: always valid JSON */
            size_t k = utf8_seq((const unsigned char *)s + i, len - i);
            if (k ? sv_buf_append(b, s + i, k) : sv_buf_append_str(b, "\xEF\xBF\xBD"))
                return SV_ENOMEM;
            i += k ? k - 1 : 0;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            if (sv_buf_putc(b, c))
                return SV_ENOMEM;
            continue;
        }
        char esc[7] = {'\\', (char)c, 0};
        size_t n = 2;
        switch (c) {
        case '"': case '\\': break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0'; esc[4] = hx[c >> 4]; esc[5] = hx[c & 15];
            n = 6;
        }
        if (sv_buf_append(b, esc, n))
            return SV_ENOMEM;
    }
    return sv_buf_putc(b, '"');
}

/* ---- names ---- */

static int check_name(const char *what, const char *rule, const char *s, size_t maxlen,
                      int (*first_ok)(int), int (*rest_ok)(int), sv_err *err)
{
    if (!s || !*s)
        return sv_fail(err, SV_EINVAL, "%s must not be empty (allowed: %s)", what, rule);
    size_t n = strlen(s);
    if (n > maxlen)
        return sv_fail(err, SV_EINVAL, "%s is %zu characters long, at most %zu allowed", what, n, maxlen);
    if (!first_ok((unsigned char)s[0]))
        return sv_fail(err, SV_EINVAL, "%s '%.64s' has an invalid first character (allowed: %s)", what, s, rule);
    for (size_t i = 1; i < n; i++)
        if (!rest_ok((unsigned char)s[i]))
            return sv_fail(err, SV_EINVAL, "%s '%.64s' contains an invalid character at position %zu (allowed: %s)",
                           what, s, i, rule);
    return 0;
}

static int is_alpha(int c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static int is_alnum(int c) { return is_alpha(c) || (c >= '0' && c <= '9'); }
static int is_alnum_us(int c) { return is_alnum(c) || c == '_'; }
static int is_alnum_us_dash(int c) { return is_alnum_us(c) || c == '-'; }
static int is_export_char(int c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'; }

int sv_check_collection_name(const char *s, sv_err *err)
{
    return check_name("collection name", "^[A-Za-z][A-Za-z0-9_]{0,127}$", s, 128, is_alpha, is_alnum_us, err);
}

int sv_check_tenant_name(const char *s, sv_err *err)
{
    return check_name("tenant name", "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$", s, 64, is_alnum_us, is_alnum_us_dash, err);
}

int sv_check_property_name(const char *s, sv_err *err)
{
    return check_name("name", "^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$", s, 64, is_alnum_us, is_alnum_us_dash, err);
}

int sv_check_export_id(const char *s, sv_err *err)
{
    return check_name("export id", "^[a-z0-9_-]{1,128}$", s, 128, is_export_char, is_export_char, err);
}

int sv_check_snapshot_name(const char *s, sv_err *err)
{
    return check_name("snapshot name", "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$", s, 128, is_alnum, is_alnum_us_dash, err);
}

/* ---- files ---- */

int sv_mkdirs(const char *path, sv_err *err)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return sv_fail(err, SV_EINVAL, "path too long or empty: %.100s", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char saved = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return sv_fail(err, SV_EIO, "cannot create directory %s: %s", tmp, strerror(errno));
            tmp[i] = saved;
        }
    }
    return 0;
}

int sv_rmtree(const char *path, sv_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : sv_fail(err, SV_EIO, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT)
            return sv_fail(err, SV_EIO, "cannot remove %s: %s", path, strerror(errno));
        return 0;
    }
    DIR *d = opendir(path);
    if (!d)
        return sv_fail(err, SV_EIO, "cannot open directory %s: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char child[4096];
        if ((size_t)snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= sizeof child) {
            rc = sv_fail(err, SV_EIO, "path too long below %s", path);
            break;
        }
        rc = sv_rmtree(child, err);
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0 && errno != ENOENT)
        rc = sv_fail(err, SV_EIO, "cannot remove directory %s: %s", path, strerror(errno));
    return rc;
}

int sv_fsync_dir(const char *path, sv_err *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return sv_fail(err, SV_EIO, "cannot open directory %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? 0 : sv_fail(err, SV_EIO, "fsync of %s failed: %s", path, strerror(errno));
}

int sv_write_file_atomic(const char *path, const void *data, size_t len, sv_err *err)
{
    char tmp[4096], dir[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp)
        return sv_fail(err, SV_EINVAL, "path too long: %.100s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sv_fail(err, SV_EIO, "cannot create %s: %s", tmp, strerror(errno));
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return sv_fail(err, SV_EIO, "write to %s failed: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return sv_fail(err, SV_EIO, "fsync of %s failed: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return sv_fail(err, SV_EIO, "rename %s -> %s failed: %s", tmp, path, strerror(e));
    }
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    } else {
        strcpy(dir, ".");
    }
    return sv_fsync_dir(dir, err);
}

int sv_read_file(const char *path, char **data, size_t *len, sv_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sv_fail(err, errno == ENOENT ? SV_ENOTFOUND : SV_EIO, "cannot open %s: %s", path, strerror(errno));
    sv_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (sv_buf_append(&b, chunk, n)) {
            fclose(f);
            sv_buf_free(&b);
            return sv_fail(err, SV_ENOMEM, "out of memory reading %s", path);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || !sv_buf_cstr(&b)) {
        sv_buf_free(&b);
        return sv_fail(err, SV_EIO, "cannot read %s", path);
    }
    *data = (char *)b.data;
    if (len)
        *len = b.len;
    return 0;
}

int64_t sv_dir_bytes(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode))
        return S_ISREG(st.st_mode) ? (int64_t)st.st_size : 0;
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char child[4096];
        if ((size_t)snprintf(child, sizeof child, "%s/%s", path, e->d_name) >= sizeof child)
            continue;
        int64_t n = sv_dir_bytes(child);
        if (n > 0)
            total += n;
    }
    closedir(d);
    return total;
}

bool sv_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- environment ---- */

const char *sv_env_str(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return (v && *v) ? v : dflt;
}

int sv_parse_size(const char *s, int64_t *out)
{
    if (!s || !*s)
        return SV_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s)
        return SV_EINVAL;
    int64_t mult = 1;
    if (*end) {
        if (!strcmp(end, "K") || !strcmp(end, "k") || !strcmp(end, "KB")) mult = 1000;
        else if (!strcmp(end, "M") || !strcmp(end, "MB")) mult = 1000000;
        else if (!strcmp(end, "G") || !strcmp(end, "GB")) mult = 1000000000;
        else if (!strcmp(end, "Ki") || !strcmp(end, "KiB")) mult = 1024;
        else if (!strcmp(end, "Mi") || !strcmp(end, "MiB")) mult = 1024 * 1024;
        else if (!strcmp(end, "Gi") || !strcmp(end, "GiB")) mult = 1024LL * 1024 * 1024;
        else return SV_EINVAL;
    }
    if (v != 0 && (v > INT64_MAX / mult || v < INT64_MIN / mult))
        return SV_EINVAL;
    *out = (int64_t)v * mult;
    return 0;
}

int sv_parse_bool(const char *s, bool *out)
{
    if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
        *out = true;
    else if (!strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
        *out = false;
    else
        return SV_EINVAL;
    return 0;
}

int sv_env_int(const char *name, int64_t dflt, int64_t *out, sv_err *err)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = dflt;
        return 0;
    }
    if (sv_parse_size(v, out))
        return sv_fail(err, SV_EINVAL, "%s=%s is not a number (examples: 100, 64Mi, 2G)", name, v);
    return 0;
}

int sv_env_bool(const char *name, bool dflt, bool *out, sv_err *err)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        *out = dflt;
        return 0;
    }
    if (sv_parse_bool(v, out))
        return sv_fail(err, SV_EINVAL, "%s=%s is not a boolean (use true or false)", name, v);
    return 0;
}

int sv_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int64_t sv_peak_rss_bytes(void)
{
    /* VmHWM, not getrusage's ru_maxrss: the latter survives execve, so a
     * process started by a large parent (node) would report the parent. */
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    int64_t kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %" SCNd64 " kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

int sv_grow(void *pdata, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem)
            return SV_ENOMEM;
        nc *= 2;
    }
    void *old;
    memcpy(&old, pdata, sizeof old);
    void *n = realloc(old, nc * elem);
    if (!n)
        return SV_ENOMEM;
    memcpy(pdata, &n, sizeof n);
    *cap = nc;
    return 0;
}

const char *sv_enum_name(const char *const *names, int n, int v) { return v >= 0 && v < n ? names[v] : "UNKNOWN"; }

int sv_enum_parse(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

void sv_crash_point(const char *name)
{
    static const char *at;
    static bool read;
    if (!read) { /* benign race: every thread reads the same value */
        at = getenv("SHARDVAULT_TEST_CRASH_AT");
        read = true;
    }
    if (at && *at && strcmp(at, name) == 0) {
        fprintf(stderr, "crash point %s: SIGKILL\n", name);
        raise(SIGKILL);
    }
}

int sv_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ms < 0)
        ms = 0;
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(cv, mu, &ts);
}

int sv_thread_detached(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    pthread_attr_t a;
    if (pthread_attr_init(&a))
        return -1;
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&th, &a, fn, arg);
    pthread_attr_destroy(&a);
    return e;
}
