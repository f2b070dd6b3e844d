/* Internal to the export module (and its unit tests): Parquet row layouts,
 * key ranges, request options. */
#ifndef SV_EXPORT_INTERNAL_H
#define SV_EXPORT_INTERNAL_H

#include <jansson.h>

#include "core.h"
#include "parquet.h"
#include "record.h"

typedef enum { EXP_SCHEMA_TYPED = 0, EXP_SCHEMA_WEAVIATE = 1 } exp_schema_kind;

typedef struct exp_options {
    exp_schema_kind schema;
    sv_pq_codec codec;
    int level; /* 0 = codec default */
} exp_options;

/* Parses the request's "options" (may be NULL). SV_EINVAL names the field. */
int exp_options_parse(json_t *opts, exp_options *out, sv_err *err);
json_t *exp_options_json(const exp_options *o);
const char *exp_schema_name(exp_schema_kind k);
const char *exp_codec_name(sv_pq_codec c);

/* ---- row layout ---------------------------------------------------------- */

/* The Parquet schema of one collection in one layout, and how a record maps
 * onto it. Owned by the caller (exp_layout_free). */
typedef struct exp_layout exp_layout;

int exp_layout_new(const sv_schema *s, exp_schema_kind kind, exp_layout **out, sv_err *err);
void exp_layout_free(exp_layout *l);
const sv_pq_schema *exp_layout_pq(const exp_layout *l);
/* The JSON description stored as "shardvault.schema" (NUL-terminated). */
const char *exp_layout_description(const exp_layout *l);
/* Per-thread scratch space for appending (a layout is shared by the workers
 * of a collection and never written after exp_layout_new). Zeroed = empty. */
typedef struct exp_scratch {
    sv_buf buf;
    const void **ptrs;
    uint32_t *lens;
    size_t cap;
} exp_scratch;
void exp_scratch_free(exp_scratch *x);
/* Appends one record as one row (including sv_pq_writer_end_row). */
int exp_layout_append(const exp_layout *l, exp_scratch *x, sv_pq_writer *w, const sv_record *r, sv_err *err);

/* ---- key ranges ---------------------------------------------------------- */

/* Range i of n splits the 128-bit UUID key space evenly: [start, end), with
 * has_end false for the last range (it runs to the end of the keys). Random
 * (v4) UUIDs therefore spread evenly over ranges. */
void exp_range_bounds(uint32_t i, uint32_t n, uint8_t start[16], uint8_t end[16], bool *has_end);
/* Number of ranges for a shard of `objects` objects (>= 1). */
uint32_t exp_range_count(int64_t objects, int64_t rows_per_file);

#endif
