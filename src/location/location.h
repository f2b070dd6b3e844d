/* location — object storage behind one small interface, with two drivers:
 *
 *   file:///abs/dir  file://./rel/dir   a directory on a local filesystem
 *   s3://bucket/prefix                  an S3-compatible store (path-style URLs)
 *
 * Keys are relative to the location ("blobs/ab/<sha256>"), '/'-separated, and
 * checked by sv_location_check_key: 1..1024 bytes, no empty segment (so no
 * leading, trailing or doubled '/'), no "." or ".." segment, no control byte,
 * and no segment starting with ".sv-" (reserved for temporary files).
 *
 * Readers never see half an object: file:// writes a temporary name, fsyncs,
 * renames and fsyncs the directory; s3:// uploads whole objects or completes a
 * multipart upload.
 *
 * Thread safety: one sv_location may be used by any number of threads at once
 * (export runs parallel workers on one location). A writer belongs to one
 * thread at a time. sv_location_close must not race with other calls.
 *
 * Errors: every fallible call returns 0 or a negative SV_E* code and fills
 * err with "<operation> <key> at <location>: <reason>", where reason carries
 * the store's own error code and message (e.g. "NoSuchBucket: ...").
 * Absent objects are SV_ENOTFOUND; connection failures and 5xx after retries
 * SV_EIO; timeouts SV_ETIMEOUT; refused credentials SV_EDENIED.
 */
#ifndef SV_LOCATION_H
#define SV_LOCATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"

typedef struct sv_location sv_location;
typedef struct sv_location_writer sv_location_writer;

/* How create_if_absent works on s3:// (file:// is always atomic). */
typedef enum {
    SV_LOC_COND_AUTO = 0,    /* probe once whether the store honours If-None-Match:
                                use it if so, refuse (SV_EUNSUPPORTED) if not */
    SV_LOC_COND_NATIVE,      /* trust the store to honour If-None-Match: * */
    SV_LOC_COND_BEST_EFFORT, /* HEAD then PUT: NOT atomic; two racing writers can both win */
    SV_LOC_COND_OFF,         /* always refuse with SV_EUNSUPPORTED */
} sv_location_cond_mode;

/* Every field is optional: zero / NULL means "from the environment, else the
 * default" (variables in brackets; see docs/location.md). Strings are copied. */
typedef struct sv_location_opts {
    const char *endpoint;     /* [AWS_ENDPOINT_URL] default https://s3.<region>.amazonaws.com */
    const char *region;       /* [AWS_REGION, AWS_DEFAULT_REGION] default us-east-1 */
    const char *access_key;   /* [AWS_ACCESS_KEY_ID] */
    const char *secret_key;   /* [AWS_SECRET_ACCESS_KEY] */
    const char *session_token;/* [AWS_SESSION_TOKEN] */
    int64_t multipart_threshold; /* [SHARDVAULT_S3_MULTIPART_THRESHOLD] 16Mi: larger objects go multipart */
    int64_t part_size;        /* [SHARDVAULT_S3_PART_SIZE] 16Mi */
    int concurrency;          /* [SHARDVAULT_S3_CONCURRENCY] 4: parts in flight per writer */
    int connect_timeout_ms;   /* [SHARDVAULT_S3_CONNECT_TIMEOUT_MS] 10000 */
    int request_timeout_ms;   /* [SHARDVAULT_S3_REQUEST_TIMEOUT_MS] 0 = none: whole request */
    int stall_timeout_ms;     /* [SHARDVAULT_S3_STALL_TIMEOUT_MS] 30000: no byte moved for this long */
    int retries;              /* [SHARDVAULT_S3_RETRIES] 5; -1 = no retry */
    int retry_base_ms;        /* [SHARDVAULT_S3_RETRY_BASE_MS] 100: first backoff, doubles, cap 10 s */
    int list_page_size;       /* [SHARDVAULT_S3_LIST_PAGE_SIZE] 1000 */
    sv_location_cond_mode cond_mode; /* [SHARDVAULT_S3_CONDITIONAL_WRITES auto|native|best-effort|off] */
    bool no_fsync;            /* file://: skip fsync (tests and benchmarks only) */
} sv_location_opts;

/* Opens url. opts may be NULL (environment defaults). The file:// directory is
 * created if missing; an s3:// bucket must exist (it is not probed here, so
 * opening is cheap and offline). *out is freed with sv_location_close. */
int sv_location_open(const char *url, const sv_location_opts *opts,
                     sv_location **out, sv_err *err);
void sv_location_close(sv_location *loc);
/* "s3://bucket/prefix (endpoint http://127.0.0.1:9000, region us-east-1)" —
 * for messages; never contains credentials. Valid until close. */
const char *sv_location_describe(const sv_location *loc);
/* "file" or "s3". */
const char *sv_location_scheme(const sv_location *loc);

int sv_location_check_key(const char *key, sv_err *err);

typedef struct sv_location_info {
    int64_t size;
    int64_t mtime_ms;  /* last modification, ms since epoch */
    char etag[80];     /* store's ETag without quotes; file:// synthesizes one */
} sv_location_info;

/* ---- writing ------------------------------------------------------------ */

/* A streaming writer: bytes become visible under key only on commit. On
 * s3:// the first multipart_threshold bytes are buffered; beyond that the
 * object goes multipart, parts of part_size uploaded by up to concurrency
 * threads (memory: about (concurrency + 1) * part_size per writer). */
int sv_location_writer_open(sv_location *loc, const char *key,
                            sv_location_writer **w, sv_err *err);
int sv_location_writer_write(sv_location_writer *w, const void *data, size_t len, sv_err *err);
/* Bytes written so far. */
int64_t sv_location_writer_size(const sv_location_writer *w);
/* Publishes the object and frees w, whatever the outcome (on failure nothing
 * appears under key and any multipart upload is aborted). */
int sv_location_writer_commit(sv_location_writer *w, sv_err *err);
/* Discards everything written and frees w. NULL is fine. */
void sv_location_writer_abort(sv_location_writer *w);

/* Whole-object put (replaces an existing object). */
int sv_location_put(sv_location *loc, const char *key, const void *data, size_t len, sv_err *err);
/* Stores a local file as key. On file:// within one filesystem this is a hard
 * link (O(1)); the caller must then never modify local_path in place
 * (RocksDB SST files and checkpoints never are). Otherwise the file is copied
 * (reflink / copy_file_range) or uploaded (multipart above the threshold). */
int sv_location_put_file(sv_location *loc, const char *key, const char *local_path, sv_err *err);
/* Writes data only if key does not exist: SV_EEXIST if it does. Atomic on
 * file:// (link(2)) and on s3:// stores honouring If-None-Match; see
 * sv_location_cond_mode for the others. */
int sv_location_create_if_absent(sv_location *loc, const char *key,
                                 const void *data, size_t len, sv_err *err);
/* Server-side copy within this location (file://: hard link or reflink;
 * s3://: CopyObject, objects up to 5 GiB). dst is replaced if present. */
int sv_location_copy(sv_location *loc, const char *src_key, const char *dst_key, sv_err *err);

/* ---- reading ------------------------------------------------------------ */

/* Receives object bytes in order; returns 0 to continue or a negative SV_E*
 * code to stop (that code is returned by the get call). */
typedef int (*sv_location_sink)(void *ctx, const void *data, size_t len);

/* Streams bytes [offset, offset+length) of key into sink; length -1 = to the
 * end. A range starting beyond the end is SV_EINVAL. On s3:// a broken
 * transfer is resumed from the last delivered byte (If-Match on the ETag),
 * so the sink sees every byte exactly once. */
int sv_location_get(sv_location *loc, const char *key, int64_t offset, int64_t length,
                    sv_location_sink sink, void *ctx, sv_err *err);
/* Exactly len bytes at offset into buf (SV_EIO when the object is shorter):
 * on file:// one pread into buf, elsewhere through get. For readers of
 * random ranges (the Parquet importer). */
int sv_location_read(sv_location *loc, const char *key, int64_t offset, void *buf, size_t len, sv_err *err);
/* Whole object into out (appended). */
int sv_location_get_buf(sv_location *loc, const char *key, sv_buf *out, sv_err *err);
/* Whole object into local_path, atomically (temp file, fsync, rename). */
int sv_location_get_to_file(sv_location *loc, const char *key, const char *local_path, sv_err *err);
/* Like sv_location_get_to_file, with a local fast path: on file:// within
 * one filesystem local_path becomes a hard link of the stored object (O(1),
 * no bytes copied); otherwise (another filesystem, s3://) the object is
 * copied / downloaded as by sv_location_get_to_file. local_path is replaced
 * if present; SV_ENOTFOUND if the object is absent.
 * Contract: the local file may share its inode with the stored object, so
 * it must NEVER be modified in place (no write, truncate or append; only
 * read, rename or unlink). Use it for immutable files (RocksDB SST and blob
 * files), never for files a program appends to. */
int sv_location_link_to_file(sv_location *loc, const char *key, const char *local_path, sv_err *err);
/* SV_ENOTFOUND if absent (err is filled then too). */
int sv_location_head(sv_location *loc, const char *key, sv_location_info *info, sv_err *err);

typedef struct sv_location_entry {
    const char *key;      /* full key relative to the location; for a common
                             prefix it ends with the delimiter */
    bool is_prefix;       /* a "directory" rolled up by the delimiter */
    int64_t size;         /* objects only */
    int64_t mtime_ms;
    const char *etag;
} sv_location_entry;

/* Returns 0 to continue, 1 to stop early (list returns 0), or a negative code. */
typedef int (*sv_location_list_fn)(void *ctx, const sv_location_entry *e);

/* Calls fn for every key starting with prefix ("" = all), in ascending byte
 * order, fetching pages (list_page_size) as needed. With delimiter "/" keys
 * below the next '/' after prefix are rolled up into one is_prefix entry.
 * start_after (NULL = none) resumes after that key. The entry is valid only
 * during the call. */
int sv_location_list(sv_location *loc, const char *prefix, const char *delimiter,
                     const char *start_after, sv_location_list_fn fn, void *ctx, sv_err *err);

/* ---- deleting ----------------------------------------------------------- */

/* Deleting an absent key succeeds (as on S3). */
int sv_location_delete(sv_location *loc, const char *key, sv_err *err);
/* Deletes n keys (DeleteObjects in batches of 1000 on s3://). On failure err
 * names the first key that failed and how many did. */
int sv_location_delete_many(sv_location *loc, const char *const *keys, size_t n, sv_err *err);

/* Deletes every object whose key starts with prefix (which must end with
 * '/', so "a/" never touches "ab/..."), in batches as it lists. Listing and
 * deleting are not one atomic step: an object written under prefix
 * meanwhile may survive; calling it again finishes the job. */
int sv_location_delete_prefix(sv_location *loc, const char *prefix, sv_err *err);

#endif
