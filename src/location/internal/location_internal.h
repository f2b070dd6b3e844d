/* location internals: the driver table and the signing-independent helpers
 * (exposed here so unit tests reach them). */
#ifndef SV_LOCATION_INTERNAL_H
#define SV_LOCATION_INTERNAL_H

#include <string.h>

#include "location.h"

typedef struct sv_loc_driver {
    const char *scheme;
    void (*close)(sv_location *loc);
    int (*writer_open)(sv_location *loc, const char *key, sv_location_writer **w, sv_err *err);
    int (*put_file)(sv_location *loc, const char *key, const char *path, sv_err *err);
    int (*create_if_absent)(sv_location *loc, const char *key, const void *data, size_t len, sv_err *err);
    int (*copy)(sv_location *loc, const char *src, const char *dst, sv_err *err);
    int (*get)(sv_location *loc, const char *key, int64_t off, int64_t len,
               sv_location_sink sink, void *ctx, sv_err *err);
    int (*head)(sv_location *loc, const char *key, sv_location_info *info, sv_err *err);
    int (*list)(sv_location *loc, const char *prefix, const char *delim, const char *start_after,
                sv_location_list_fn fn, void *ctx, sv_err *err);
    int (*del)(sv_location *loc, const char *key, sv_err *err);
    int (*delete_many)(sv_location *loc, const char *const *keys, size_t n, sv_err *err);
    /* Optional local fast path of sv_location_link_to_file; SV_EUNSUPPORTED
     * (or NULL) falls back to get_to_file. */
    int (*link_to_file)(sv_location *loc, const char *key, const char *local_path, sv_err *err);
    /* Optional: exactly len bytes at off straight into buf (else get). */
    int (*read_at)(sv_location *loc, const char *key, int64_t off, void *buf, size_t len, sv_err *err);
} sv_loc_driver;

typedef struct sv_loc_writer_ops {
    int (*write)(sv_location_writer *w, const void *data, size_t len, sv_err *err);
    int (*commit)(sv_location_writer *w, sv_err *err);  /* must free w */
    void (*abort)(sv_location_writer *w);                /* must free w */
} sv_loc_writer_ops;

/* Every driver's writer starts with this. */
struct sv_location_writer {
    const sv_loc_writer_ops *ops;
    sv_location *loc;
    char *key;
    int64_t size;
};

/* Every driver's location starts with this. */
struct sv_location {
    const sv_loc_driver *drv;
    char *describe;
    sv_location_opts o; /* resolved: no zero fields left, strings owned */
    int64_t test_delete_delay_ms; /* SHARDVAULT_LOCATION_TEST_DELETE_DELAY_MS (tests only) */
};

/* Resolves opts against the environment into out (strings duplicated). */
int sv_loc_resolve_opts(const sv_location_opts *in, sv_location_opts *out, sv_err *err);
void sv_loc_free_opts(sv_location_opts *o);

int sv_loc_file_open(const char *path, const sv_location_opts *o, sv_location **out, sv_err *err);
int sv_loc_s3_open(const char *bucket, const char *prefix, const sv_location_opts *o,
                   sv_location **out, sv_err *err);

/* Checks a list prefix: like a key but may be empty or end with '/'. */
int sv_loc_check_prefix(const char *prefix, sv_err *err);

/* ---- helpers (loc_util.c) ---------------------------------------------- */

/* RFC 3986 percent-encoding as SigV4 wants it: unreserved bytes stay, every
 * other byte becomes %XX (upper case); '/' stays if keep_slash. */
int sv_loc_uri_encode(sv_buf *out, const char *s, size_t len, bool keep_slash);

/* Builds a canonical query string: names and values encoded, pairs sorted by
 * encoded name then value, "name=value" joined by '&'. params is
 * name,value,name,value...; a NULL value is written as "name=". */
int sv_loc_canonical_query(sv_buf *out, const char *const *params, size_t npairs);

/* Tiny XML reader for S3 responses (no DTDs, no CDATA). Finds the first
 * <tag>...</tag> in [*pos, end) and returns its raw inner text span; *pos
 * moves past the close tag. Returns false if absent. */
bool sv_loc_xml_next(const char *doc, size_t len, size_t *pos, const char *tag,
                     const char **inner, size_t *inner_len);
/* Unescapes XML entities of [s, s+len) into out (appended, NUL-terminated). */
int sv_loc_xml_text(sv_buf *out, const char *s, size_t len);
/* Copies the unescaped text of the first <tag> in [s, s+len) into dst
 * (truncated to cap-1); returns false if the tag is absent. */
bool sv_loc_xml_get(const char *s, size_t len, const char *tag, char *dst, size_t cap);

/* Parses an S3 <Error> document anywhere in body (also inside a 200
 * CompleteMultipartUpload response). */
bool sv_loc_xml_error(const char *body, size_t len, char *code, size_t code_cap,
                      char *msg, size_t msg_cap);

typedef struct sv_loc_list_page {
    bool truncated;
    char *next_token; /* malloc'd or NULL */
    size_t n;
    sv_location_entry *entries; /* keys/etags malloc'd */
} sv_loc_list_page;
int sv_loc_parse_list_v2(const char *body, size_t len, sv_loc_list_page *page, sv_err *err);
void sv_loc_list_page_free(sv_loc_list_page *page);

/* "2026-11-21T16:18:15.123Z" -> ms since epoch; -1 if malformed. */
int64_t sv_loc_parse_iso8601(const char *s);

/* Backoff before retry `attempt` (0-based): full jitter in [d/2, d] where
 * d = min(cap, base << attempt); rnd is any 32-bit random number. */
int64_t sv_loc_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint32_t rnd);

/* Lower-case hex SHA-256 of data (65 bytes with NUL). */
void sv_loc_sha256_hex(const void *data, size_t len, char out[65]);

/* Copies src into dst (cap bytes), truncating; always NUL-terminates. */
static inline void sv_loc_strlcpy(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return;
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

#endif
