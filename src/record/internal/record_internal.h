/* record internals shared by the files of src/record/ (and its tests). */
#ifndef SV_RECORD_INTERNAL_H
#define SV_RECORD_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#include "record.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* The encoding stores floats as raw little-endian IEEE-754; a big-endian port
 * needs byte swaps in codec.c. */
#error "record: little-endian hosts only"
#endif

__extension__ typedef unsigned __int128 sv_u128;

/* ---- arena: bump allocator owned by a record ---------------------------- */

typedef struct sv_arena_chunk {
    struct sv_arena_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} sv_arena_chunk;

struct sv_record_arena {
    sv_arena_chunk *head; /* current chunk; older chunks follow via next */
    size_t total;         /* sum of chunk capacities */
    sv_buf scratch;       /* growable arrays while their length is unknown */
    sv_buf extra;         /* undeclared properties being compacted */
    sv_buf keys;          /* (offset,len) pairs of undeclared keys, for duplicates */
    sv_buf tmp;           /* decoded strings inside free JSON */
};

void *sv_arena_alloc(struct sv_record_arena *a, size_t n);
/* Drops everything; keeps one chunk as large as everything was. */
int sv_record_reset(sv_record *r, const sv_schema *s);

/* ---- numbers ----------------------------------------------------------- */

/* A JSON number token decomposed: value = (neg ? -1 : 1) * w * 10^exp10,
 * exactly when !truncated. */
typedef struct sv_jnum {
    const char *start, *end; /* the token */
    uint64_t w;              /* first 19 significant digits */
    int64_t exp10;
    bool neg;
    bool truncated;          /* more than 19 significant digits... */
    bool trunc_nonzero;      /* ...and some dropped digit is not 0 */
    bool is_int_syntax;      /* no '.', no exponent */
} sv_jnum;

/* Scans a JSON number (RFC 8259 grammar) at p; returns the end or NULL. */
const char *sv_scan_number(const char *p, const char *end, sv_jnum *n);
/* Exactly strtod's result for the token. */
double sv_jnum_to_double(const sv_jnum *n);
/* 0, or SV_EINVAL (not integral) / SV_ETOOBIG (outside int64). */
int sv_jnum_to_int64(const sv_jnum *n, int64_t *out);
/* Scans a number and converts it exactly; returns the end or NULL. */
const char *sv_scan_double(const char *p, const char *end, double *out);
/* Convenience for tests: parses a whole string as a JSON number. */
int sv_parse_double(const char *s, size_t len, double *out);

/* Shortest text that reads back as the same float32 / double. Writes at
 * most 32 bytes (no NUL); returns the length. Finite values only. */
size_t sv_format_float(float f, char *out);
size_t sv_format_double(double d, char *out);
size_t sv_format_i64(int64_t v, char *out);

/* ---- dates --------------------------------------------------------------- */

/* RFC 3339 date-time -> ms since epoch (UTC). SV_EINVAL if malformed. */
int sv_parse_rfc3339(const char *s, size_t len, int64_t *ms);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes, no NUL). */
size_t sv_format_date_ms(int64_t ms, char *out);
#define SV_DATE_MIN_MS (-62167219200000LL) /* 0000-01-01T00:00:00Z */
#define SV_DATE_MAX_MS (253402300799999LL) /* 9999-12-31T23:59:59.999Z */

/* ---- strings and JSON ------------------------------------------------- */

/* sv_utf8_valid: record.h. Appends s as a JSON string (quotes included), escaping as needed. */
int sv_json_put_str(sv_buf *out, const char *s, size_t len);
/* Checks that text is exactly one valid JSON value (used on stored free
 * JSON before it is printed). */
bool sv_json_valid(const char *s, size_t len);

/* ---- tables (tables.c) ---------------------------------------------------- */

extern const uint64_t sv_pow5_128[651][2];
extern const uint64_t sv_ryu_f_pow5_inv[31];
extern const uint64_t sv_ryu_f_pow5[47];

#define SV_RECORD_FORMAT_VERSION 1
#define SV_MAX_JSON_DEPTH 128
#define SV_MAX_EXTRA_PROPS 1024

#endif
