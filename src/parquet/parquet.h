/* parquet — a streaming Parquet writer.
 *
 * Build a schema (sv_pq_schema_*), open a writer on a sink, append each
 * column's values for a row (or a batch of rows), then sv_pq_writer_end_rows.
 * Bytes go to the sink as row groups complete; sv_pq_writer_close writes the
 * footer and closes the sink. Memory stays bounded by one row group being
 * built (compressed pages) plus one open page per column.
 *
 * Ownership: sv_pq_schema_new / sv_pq_writer_new return objects owned by the
 * caller (sv_pq_schema_free / sv_pq_writer_free). The writer copies the
 * schema, so the schema may be freed once the writer exists. Pointers passed
 * to append functions are only read during the call.
 *
 * Appending: node ids come from the schema builders. An append on a node
 * assumes all of its ancestors are present; a null ancestor is written with
 * sv_pq_append_null on that ancestor (it writes the null to every leaf below).
 * A value that cannot be written (wrong type, not UTF-8 for a STRING or JSON
 * column, wrong length) is refused with SV_EINVAL and leaves the writer
 * unchanged, so the caller may append something else (e.g. a null) instead.
 * Any other failure (sink, memory) is sticky: every later call fails.
 *
 * Threads: writers share nothing; one writer must not be used by two
 * threads at once.
 */
#ifndef SV_PARQUET_H
#define SV_PARQUET_H

#include "core.h"

typedef enum {
    SV_PQ_BOOLEAN = 0,
    SV_PQ_INT32 = 1,
    SV_PQ_INT64 = 2,
    SV_PQ_FLOAT = 4,
    SV_PQ_DOUBLE = 5,
    SV_PQ_BYTE_ARRAY = 6,
    SV_PQ_FIXED_LEN_BYTE_ARRAY = 7,
} sv_pq_type;

typedef enum {
    SV_PQ_LT_NONE = 0,
    SV_PQ_LT_STRING,       /* BYTE_ARRAY, UTF-8 checked (also converted type UTF8) */
    SV_PQ_LT_JSON,         /* BYTE_ARRAY, UTF-8 checked, not parsed */
    SV_PQ_LT_UUID,         /* FIXED_LEN_BYTE_ARRAY(16) */
    SV_PQ_LT_TIMESTAMP_MS, /* INT64, TIMESTAMP(MILLIS, UTC) + TIMESTAMP_MILLIS */
} sv_pq_logical;

typedef enum { SV_PQ_CODEC_NONE = 0, SV_PQ_CODEC_SNAPPY = 1, SV_PQ_CODEC_ZSTD = 6 } sv_pq_codec;

/* Node flags. */
#define SV_PQ_OPTIONAL 1u /* the node may be null */
#define SV_PQ_DICT 2u     /* leaf: try RLE_DICTIONARY (falls back to PLAIN) */

#define SV_PQ_ROOT 0          /* parent id of top-level columns */
#define SV_PQ_NULL_LIST UINT32_MAX /* sv_pq_append_list2: this inner list is null */

typedef struct sv_pq_schema sv_pq_schema;
typedef struct sv_pq_writer sv_pq_writer;

sv_pq_schema *sv_pq_schema_new(void); /* NULL on ENOMEM */
void sv_pq_schema_free(sv_pq_schema *s);

/* Each builder returns the new node's id (> 0) or a negative SV_E* code.
 * A child of a list node is that list's element (its name is ignored, the
 * file says "element"), so list<list<float>> is list(list(leaf)).
 * type_length is for FIXED_LEN_BYTE_ARRAY (UUID forces 16), else 0. */
int sv_pq_schema_leaf(sv_pq_schema *s, int parent, const char *name, sv_pq_type type,
                      sv_pq_logical lt, int type_length, unsigned flags, sv_err *err);
int sv_pq_schema_group(sv_pq_schema *s, int parent, const char *name, unsigned flags,
                       sv_err *err);
/* A LIST in the standard three-level form. list_len > 0 makes every
 * non-null list of this node have exactly that many elements (a fixed
 * vector dimension); 0 allows any length. */
int sv_pq_schema_list(sv_pq_schema *s, int parent, const char *name, unsigned flags,
                      uint32_t list_len, sv_err *err);

typedef struct sv_pq_kv { const char *key, *value; } sv_pq_kv;

/* Zero fields take the defaults shown. */
typedef struct sv_pq_options {
    sv_pq_codec codec;        /* NONE */
    int level;                /* zstd level, 0 = 3 */
    int64_t row_group_bytes;  /* 64 MiB: close a row group past this (compressed) size */
    int64_t row_group_rows;   /* 1,000,000 */
    int64_t page_bytes;       /* 1 MiB: close a page past this (uncompressed) size */
    int64_t dict_bytes;       /* 1 MiB: past this, a column's chunk falls back to PLAIN */
    const sv_pq_kv *kv;       /* key-value metadata for the footer, copied */
    size_t n_kv;
} sv_pq_options;

/* The sink receives the file's bytes in order; close is called once by
 * sv_pq_writer_close after the footer (it may be NULL). If the writer is
 * freed without a successful close, close is never called: abort the
 * upload / remove the file yourself. Return 0 or a negative SV_E* code. */
typedef struct sv_pq_sink {
    int (*write)(void *ud, const void *data, size_t len, sv_err *err);
    int (*close)(void *ud, sv_err *err);
    void *ud;
} sv_pq_sink;

int sv_pq_writer_new(const sv_pq_schema *schema, const sv_pq_options *opt,
                     const sv_pq_sink *sink, sv_pq_writer **out, sv_err *err);
void sv_pq_writer_free(sv_pq_writer *w);

/* ---- appending: each call below appends rows to one column ------------- */

/* One null row at node (which must be optional): list, group or leaf. */
int sv_pq_append_null(sv_pq_writer *w, int node, sv_err *err);

/* n rows of a flat fixed-width leaf: BOOLEAN as uint8_t 0/1, INT32 int32_t,
 * INT64 (and timestamps) int64_t, FLOAT float, DOUBLE double. valid[i] == 0
 * makes row i null (valid may be NULL = all present). */
int sv_pq_append_values(sv_pq_writer *w, int node, const void *values, const uint8_t *valid,
                        size_t n, sv_err *err);
/* n rows of a flat BYTE_ARRAY / FIXED_LEN_BYTE_ARRAY leaf; ptrs[i] == NULL is null. */
int sv_pq_append_bytes(sv_pq_writer *w, int node, const void *const *ptrs,
                       const uint32_t *lens, size_t n, sv_err *err);

/* Single-row conveniences. */
int sv_pq_append_i32(sv_pq_writer *w, int node, int32_t v, sv_err *err);
int sv_pq_append_i64(sv_pq_writer *w, int node, int64_t v, sv_err *err);
int sv_pq_append_float(sv_pq_writer *w, int node, float v, sv_err *err);
int sv_pq_append_double(sv_pq_writer *w, int node, double v, sv_err *err);
int sv_pq_append_bool(sv_pq_writer *w, int node, bool v, sv_err *err);
int sv_pq_append_str(sv_pq_writer *w, int node, const void *s, size_t len, sv_err *err);

/* One row of a list node whose element is a fixed-width leaf: n values
 * (n == 0 is an empty list), same value layout as sv_pq_append_values.
 * valid may be NULL; valid[i] == 0 is a null element (element optional). */
int sv_pq_append_list(sv_pq_writer *w, int node, const void *values, const uint8_t *valid,
                      size_t n, sv_err *err);
/* One row of a list node whose element is a byte-array leaf. */
int sv_pq_append_list_bytes(sv_pq_writer *w, int node, const void *const *ptrs,
                            const uint32_t *lens, size_t n, sv_err *err);
/* One row of list<list<fixed-width>>: n_lists inner lists with lens[i]
 * values each (SV_PQ_NULL_LIST = a null inner list), values concatenated. */
int sv_pq_append_list2(sv_pq_writer *w, int node, const void *values, const uint32_t *lens,
                       size_t n_lists, sv_err *err);

/* Marks n complete rows: every leaf column must have received exactly n
 * more rows since the last call. May close pages and a row group (and so
 * write to the sink). */
int sv_pq_writer_end_rows(sv_pq_writer *w, size_t n, sv_err *err);
static inline int sv_pq_writer_end_row(sv_pq_writer *w, sv_err *err)
{
    return sv_pq_writer_end_rows(w, 1, err);
}
/* Closes the current row group now (if it has rows). */
int sv_pq_writer_flush(sv_pq_writer *w, sv_err *err);
/* Flushes, writes the footer, calls sink close. The writer must still be freed. */
int sv_pq_writer_close(sv_pq_writer *w, sv_err *err);

/* Rows and bytes handed to the sink so far. */
int64_t sv_pq_writer_rows(const sv_pq_writer *w);
int64_t sv_pq_writer_bytes(const sv_pq_writer *w);

/* ======================================================================== */
/* ---- reader ---------------------------------------------------------------
 *
 * Opens a file through a source (random reads: a local file, or ranged GETs
 * on S3 with the footer read first), exposes its schema as a tree of logical
 * nodes (LISTs in their one-, two- or three-level forms become list nodes
 * with one element child) and returns rows in batches, row group by row
 * group. Memory is bounded by one row group's column chunks (compressed and
 * decoded) plus one batch of assembled rows; every length read from the
 * file is checked against the file and the limits below before anything is
 * allocated. Errors (SV_ECORRUPT for a malformed file, SV_EUNSUPPORTED for a
 * feature this reader does not have, SV_ETOOBIG past a limit, the source's
 * own code for a failed read) say which file, row group, column and page,
 * and what is wrong.
 *
 * Values (sv_pq_value) point into the reader: valid until the next
 * sv_pq_reader_next / seek / free. One reader, one thread. */

typedef enum {
    SV_PQ_RLEAF = 0,
    SV_PQ_RGROUP,
    SV_PQ_RLIST, /* children[0] is the element */
} sv_pq_rkind;

typedef enum {
    SV_PQ_RLT_NONE = 0,
    SV_PQ_RLT_STRING,
    SV_PQ_RLT_JSON,
    SV_PQ_RLT_UUID,
    SV_PQ_RLT_ENUM,
    SV_PQ_RLT_BSON,
    SV_PQ_RLT_DATE,      /* INT32 days since 1970-01-01 */
    SV_PQ_RLT_TIME,      /* unit */
    SV_PQ_RLT_TIMESTAMP, /* unit, utc; INT96 is read as TIMESTAMP NANOS */
    SV_PQ_RLT_INT,       /* bits, is_signed */
    SV_PQ_RLT_DECIMAL,   /* scale, precision */
    SV_PQ_RLT_FLOAT16,
} sv_pq_rlogical;

typedef enum { SV_PQ_MILLIS = 0, SV_PQ_MICROS = 1, SV_PQ_NANOS = 2 } sv_pq_unit;

typedef struct sv_pq_rnode {
    const char *name;
    sv_pq_rkind kind;
    bool optional;   /* the value may be null */
    sv_pq_type type; /* leaf: physical type (INT96 is read as INT64, see above) */
    int type_length; /* FIXED_LEN_BYTE_ARRAY */
    sv_pq_rlogical lt;
    sv_pq_unit unit;
    bool utc, is_signed;
    int bits, scale, precision;
    int n_children;
    const struct sv_pq_rnode *const *children;
} sv_pq_rnode;

typedef enum {
    SV_PQV_NULL = 0,
    SV_PQV_BOOL,   /* u.b */
    SV_PQV_INT,    /* u.i: INT32 / INT64 (unsigned 32-bit ones zero-extended; UINT64 as its bits) */
    SV_PQV_FLOAT,  /* u.f */
    SV_PQV_DOUBLE, /* u.d */
    SV_PQV_BYTES,  /* u.bytes, n bytes: BYTE_ARRAY and FIXED_LEN_BYTE_ARRAY */
    SV_PQV_LIST,   /* u.items, n values */
    SV_PQV_GROUP,  /* u.items, one per child of the node, in order */
    SV_PQV_PACKED, /* a list of n non-null values of the element leaf's type
                      (INT32 int32_t, INT64 int64_t, FLOAT float, DOUBLE
                      double), contiguous at u.raw (aligned) */
} sv_pq_vkind;

typedef struct sv_pq_value {
    uint8_t kind;
    uint32_t n;
    union {
        bool b;
        int64_t i;
        float f;
        double d;
        const uint8_t *bytes;
        const struct sv_pq_value *items;
        const void *raw;
    } u;
} sv_pq_value;

/* Random reads: read_at fills exactly len bytes at off (the reader never asks
 * past size); with decode_threads > 1 it must allow calls from two threads at
 * once. name appears in error messages. */
typedef struct sv_pq_source {
    int (*read_at)(void *ud, uint64_t off, void *buf, size_t len, sv_err *err);
    void *ud;
    uint64_t size;
    const char *name;
} sv_pq_source;

/* Zero fields take the defaults shown. */
typedef struct sv_pq_read_options {
    int64_t max_footer_bytes;    /* 64 MiB */
    int64_t max_row_group_bytes; /* 1 GiB: compressed chunks + decoded columns of one row group */
    int64_t max_page_bytes;      /* 256 MiB: one page, uncompressed */
    /* 0 = off. Otherwise the next row group, when it decodes to at most
     * this many bytes (estimated from the footer: uncompressed chunk sizes
     * plus a byte per level), is loaded on a thread of its own while rows
     * of the current one are read (sv_pq_reader_next): two row groups in
     * memory then. The source is read from that thread too. */
    int64_t prefetch_bytes;
    /* 2: a row group's columns are decoded by two threads, split by size
     * (each within half of max_row_group_bytes); 0 or 1: one. The source's
     * read_at is then called from two threads at once. */
    int decode_threads;
} sv_pq_read_options;

typedef struct sv_pq_reader sv_pq_reader;

/* Reads and checks the footer and schema. The source struct is copied; ud
 * and name must outlive the reader. */
int sv_pq_reader_open(const sv_pq_source *src, const sv_pq_read_options *opt, sv_pq_reader **out,
                      sv_err *err);
/* A local file through pread (closed by sv_pq_reader_free). */
int sv_pq_reader_open_file(const char *path, const sv_pq_read_options *opt, sv_pq_reader **out,
                           sv_err *err);
void sv_pq_reader_free(sv_pq_reader *r); /* NULL is fine */

/* The root group: its children are the file's top-level columns. */
const sv_pq_rnode *sv_pq_reader_root(const sv_pq_reader *r);
int64_t sv_pq_reader_num_rows(const sv_pq_reader *r);
int sv_pq_reader_num_row_groups(const sv_pq_reader *r);
int64_t sv_pq_reader_row_group_rows(const sv_pq_reader *r, int rg);
/* Footer key-value metadata, NULL when absent (valid while r lives). */
const char *sv_pq_reader_kv(const sv_pq_reader *r, const char *key);
const char *sv_pq_reader_created_by(const sv_pq_reader *r);

/* The next row group read is rg (0 <= rg <= count; count = at the end). */
int sv_pq_reader_seek_row_group(sv_pq_reader *r, int rg, sv_err *err);
/* Up to max rows (0 = 1024), never crossing a row group: *rows is an array
 * of *n GROUP values of the root; *n == 0 at the end of the file.
 * *rg / *row_in_rg (may be NULL) say where the first row of the batch is. */
int sv_pq_reader_next(sv_pq_reader *r, size_t max, const sv_pq_value **rows, size_t *n, int *rg,
                      int64_t *row_in_rg, sv_err *err);

/* Bytes read from the source so far. */
int64_t sv_pq_reader_bytes_read(const sv_pq_reader *r);

#endif
