/* core — errors, logging, UUIDs, time, growable buffers, name validation,
 * hashing and environment configuration. Knows nothing of the rest of
 * shardvault; every other module may include it.
 *
 * Conventions used everywhere:
 *  - fallible functions return 0 or a negative SV_E* code and take
 *    `sv_err *err` last (may be NULL); the message says what to fix.
 *  - memory returned by a function named *_new / *_dup / *_take is owned by
 *    the caller and released with the matching *_free / free().
 */
#ifndef SV_CORE_H
#define SV_CORE_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define SV_VERSION "0.1.0"
#ifndef SV_GIT_SHA
#define SV_GIT_SHA "unknown"
#endif

/* ---- errors ------------------------------------------------------------ */

enum {
    SV_OK = 0,
    SV_EINVAL = -1,       /* the input is invalid: 422 (or 400 for syntax) */
    SV_EPARSE = -2,       /* malformed input that could not be parsed: 400 */
    SV_ENOTFOUND = -3,    /* 404 */
    SV_EEXIST = -4,       /* already exists: 409 */
    SV_ECONFLICT = -5,    /* state conflict (busy, already running): 409 */
    SV_ESTATE = -6,       /* valid request, wrong state (inactive tenant): 422 */
    SV_ETOOBIG = -7,      /* 413 */
    SV_EUNAVAIL = -8,     /* shutting down / not ready: 503 */
    SV_EIO = -9,          /* disk or network failure: 500 */
    SV_ENOMEM = -10,      /* 500 */
    SV_ECORRUPT = -11,    /* stored data failed a check: 500 */
    SV_ECANCELED = -12,   /* the operation was canceled */
    SV_EUNSUPPORTED = -13,/* the backend cannot do this: 422/501 */
    SV_ETIMEOUT = -14,    /* 504/500 */
    SV_EINTERNAL = -15,   /* a bug: 500 */
    SV_EDENIED = -16,     /* 403 */
    SV_ENOSPACE = -17,    /* a configured space quota is full (the registry's cache): 507 */
};

typedef struct sv_err {
    int code;
    char msg[512];
} sv_err;

/* Sets err (if non-NULL) and returns code, so `return sv_fail(err, ...)`. */
int sv_fail(sv_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefixes an existing message: "context: old message". Returns err->code. */
int sv_err_wrap(sv_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sv_err_clear(sv_err *err);
const char *sv_strerror(int code); /* short name of a code, e.g. "not found" */

/* ---- logging ------------------------------------------------------------ */
/* One line per event on stderr: `ts=... level=info msg="..." key=value`,
 * or JSON lines when format is "json". Thread-safe. */

typedef enum { SV_LOG_DEBUG, SV_LOG_INFO, SV_LOG_WARN, SV_LOG_ERROR, SV_LOG_OFF } sv_log_level;

int sv_log_set_level_name(const char *name); /* "debug"|"info"|"warn"|"error"|"off"; -EINVAL otherwise */
void sv_log_set_level(sv_log_level level);
void sv_log_set_json(bool json);
bool sv_log_enabled(sv_log_level level);
/* kv is a preformatted `key=value key2="x y"` string, may be NULL. */
void sv_log(sv_log_level level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));
#define sv_debug(msg, ...) sv_log(SV_LOG_DEBUG, msg, __VA_ARGS__)
#define sv_info(msg, ...) sv_log(SV_LOG_INFO, msg, __VA_ARGS__)
#define sv_warn(msg, ...) sv_log(SV_LOG_WARN, msg, __VA_ARGS__)
#define sv_error(msg, ...) sv_log(SV_LOG_ERROR, msg, __VA_ARGS__)

/* ---- time --------------------------------------------------------------- */

int64_t sv_now_ms(void);        /* wall clock, ms since epoch */
/* Test seam for crash tests: when SHARDVAULT_TEST_CRASH_AT names this point,
 * the process kills itself with SIGKILL here (a `kill -9` at an exact step).
 * Points are listed in docs/registry.md. No effect otherwise. */
void sv_crash_point(const char *name);
/* pthread_cond_timedwait for at most ms from now, on a condition variable of
 * the default (CLOCK_REALTIME) clock, with mu held. */
int sv_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms);
/* Starts fn(arg) on a detached thread: 0, or the pthread_create error. */
int sv_thread_detached(void *(*fn)(void *), void *arg);
int64_t sv_mono_ns(void);       /* monotonic, for durations */
void sv_sleep_ms(int64_t ms);
/* ISO-8601 UTC with milliseconds, "2026-11-21T16:18:15.123Z"; out >= 32 bytes. */
void sv_format_time_ms(int64_t ms, char *out, size_t outlen);

/* ---- UUID --------------------------------------------------------------- */

typedef struct sv_uuid { uint8_t b[16]; } sv_uuid;

/* Accepts the canonical 8-4-4-4-12 hex form, either case. len = strlen. */
int sv_uuid_parse(const char *s, size_t len, sv_uuid *out);
void sv_uuid_format(const sv_uuid *u, char out[37]); /* lower case + NUL */
void sv_uuid_v4(sv_uuid *out);                        /* random (getrandom) */
int sv_uuid_cmp(const sv_uuid *a, const sv_uuid *b);

/* ---- hashing ------------------------------------------------------------ */

uint64_t sv_hash64(const void *data, size_t len); /* xxh3, stable across versions */

/* A blocked Bloom filter over 64-bit hashes (sv_hash64), sized at creation
 * for n keys: 24 bits per key, about 0.07% false positives at n. "No" is
 * certain; "maybe" is not. The caller owns it (sv_bloom_free). */
typedef struct sv_bloom {
    uint64_t *words; /* nblocks blocks of 8 words (512 bits, one cache line) */
    size_t nblocks;
} sv_bloom;
int sv_bloom_init(sv_bloom *b, size_t n); /* SV_ENOMEM */
void sv_bloom_add(sv_bloom *b, uint64_t h);
bool sv_bloom_maybe(const sv_bloom *b, uint64_t h);
/* Starts loading h's block into the cache (a sv_bloom_maybe of it soon). */
void sv_bloom_prefetch(const sv_bloom *b, uint64_t h);
void sv_bloom_free(sv_bloom *b); /* zeroed after; fine twice */

/* ---- growable buffer ---------------------------------------------------- */

typedef struct sv_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} sv_buf;

/* All return 0 or SV_ENOMEM. A zeroed sv_buf is a valid empty buffer. */
int sv_buf_reserve(sv_buf *b, size_t extra);
int sv_buf_append(sv_buf *b, const void *data, size_t len);
int sv_buf_append_str(sv_buf *b, const char *s);
int sv_buf_printf(sv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sv_buf_putc(sv_buf *b, uint8_t c);
void sv_buf_reset(sv_buf *b);  /* len = 0, keeps memory */
void sv_buf_free(sv_buf *b);   /* releases memory, leaves b zeroed */
/* NUL-terminates (not counted in len) and returns data; NULL on ENOMEM. */
char *sv_buf_cstr(sv_buf *b);
/* Appends s as a quoted JSON string, escaping quotes, backslashes and
 * control bytes; valid UTF-8 is copied as it is, an invalid byte becomes
 * U+FFFD (the result is always valid JSON). */
int sv_buf_json_string(sv_buf *b, const char *s, size_t len);

/* ---- growable arrays ------------------------------------------------------ */

/* Makes the array *pdata (of elem-byte elements, capacity *cap) hold at least
 * need elements: grows by doubling from 16, keeping the contents. pdata is the
 * address of the array pointer (e.g. &v). 0, or SV_ENOMEM with the array
 * unchanged. The usual push:
 *     if (sv_grow(&v, &cap, n + 1, sizeof *v)) return SV_ENOMEM;
 *     v[n++] = x;                                                          */
int sv_grow(void *pdata, size_t *cap, size_t need, size_t elem);

/* ---- enumerations as words --------------------------------------------------- */
/* names[v] for 0 <= v < n, else "UNKNOWN"; and the index of s in names, or -1. */
const char *sv_enum_name(const char *const *names, int n, int v);
int sv_enum_parse(const char *const *names, int n, const char *s);

/* ---- string map ------------------------------------------------------------ */
/* Keys (copied) each hold a set of pointers (borrowed): one for a primary
 * index, several for a secondary one. A zeroed sv_strmap is empty. Not
 * thread-safe. Iterate with
 *     for (size_t i = 0; i < m->nb; i++)
 *         for (sv_strmap_entry *e = m->b[i]; e; e = e->next) ... e->v[0..e->n)  */
typedef struct sv_strmap_entry {
    char *key;
    void **v; /* the pointers under key, in no particular order */
    size_t n, cap;
    struct sv_strmap_entry *next;
} sv_strmap_entry;

typedef struct sv_strmap {
    sv_strmap_entry **b;
    size_t nb, count;
} sv_strmap;

/* NULL when absent. Valid until the map changes. */
sv_strmap_entry *sv_strmap_find(const sv_strmap *m, const char *key);
/* Adds p under key (a pointer already there is not added twice). 0 or SV_ENOMEM. */
int sv_strmap_add(sv_strmap *m, const char *key, void *p);
/* Removes p from key; the key goes with its last pointer. */
void sv_strmap_remove(sv_strmap *m, const char *key, void *p);
/* Frees the map's memory (not what the pointers point to) and empties it. */
void sv_strmap_free(sv_strmap *m);

/* ---- names -------------------------------------------------------------- */
/* Every externally supplied name is checked before it touches a key or a
 * path. Each returns 0 or SV_EINVAL with a message naming the rule. */

/* Collection: ^[A-Za-z][A-Za-z0-9_]{0,127}$ (as Weaviate classes). */
int sv_check_collection_name(const char *s, sv_err *err);
/* Tenant / property / vector name: ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$ */
int sv_check_tenant_name(const char *s, sv_err *err);
int sv_check_property_name(const char *s, sv_err *err);
/* Export id: ^[a-z0-9_-]{1,128}$ */
int sv_check_export_id(const char *s, sv_err *err);
/* Snapshot name: ^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$ */
int sv_check_snapshot_name(const char *s, sv_err *err);

/* ---- files -------------------------------------------------------------- */

int sv_mkdirs(const char *path, sv_err *err);           /* mkdir -p, 0755 */
int sv_rmtree(const char *path, sv_err *err);           /* rm -rf; missing is fine */
int sv_fsync_dir(const char *path, sv_err *err);
/* Writes data to path atomically: temp file, fsync, rename, fsync dir. */
int sv_write_file_atomic(const char *path, const void *data, size_t len, sv_err *err);
/* Reads a whole file (NUL-terminated, *len excludes the NUL). Caller frees. */
int sv_read_file(const char *path, char **data, size_t *len, sv_err *err);
int64_t sv_dir_bytes(const char *path); /* total size of regular files below path, <0 on error */
bool sv_path_exists(const char *path);

/* ---- configuration from the environment --------------------------------- */

const char *sv_env_str(const char *name, const char *dflt);
/* Parses an integer with optional K/M/G/Ki/Mi/Gi suffix; dflt if unset.
 * Returns SV_EINVAL (with message naming the variable) if set but malformed. */
int sv_env_int(const char *name, int64_t dflt, int64_t *out, sv_err *err);
int sv_env_bool(const char *name, bool dflt, bool *out, sv_err *err);
/* Same parsing for flag values: "64Mi", "1000", "2G". */
int sv_parse_size(const char *s, int64_t *out);
int sv_parse_bool(const char *s, bool *out);

/* ---- SHA-256 (sha256.c, OpenSSL) ------------------------------------------ */

typedef struct sv_sha256_ctx sv_sha256_ctx;
sv_sha256_ctx *sv_sha256_new(void); /* NULL when out of memory */
void sv_sha256_update(sv_sha256_ctx *c, const void *data, size_t len);
void sv_sha256_final_hex(sv_sha256_ctx *c, char hex[65]); /* lowercase; also frees c */
void sv_sha256_free(sv_sha256_ctx *c);                    /* NULL is fine */
/* Hashes a local file; *size (may be NULL) gets its length, *progress (may be
 * NULL) is incremented atomically as bytes are read. */
int sv_sha256_file(const char *path, char hex[65], int64_t *size, _Atomic int64_t *progress, sv_err *err);
/* 64 lowercase hex digits. */
bool sv_sha256_valid_hex(const char *s);

/* ---- misc --------------------------------------------------------------- */

int sv_cpu_count(void);
/* Peak resident set size of this process image in bytes (VmHWM), -1 if unknown. */
int64_t sv_peak_rss_bytes(void);

#endif
