/* parquet internals shared by the writer and its unit tests: the Thrift
 * compact protocol encoder and the RLE/bit-packed hybrid encoder. */
#ifndef SV_PARQUET_INTERNAL_H
#define SV_PARQUET_INTERNAL_H

#include "core.h"
#include "parquet.h"

/* Thrift compact type ids. */
enum {
    SV_TC_TRUE = 1, SV_TC_FALSE = 2, SV_TC_BYTE = 3, SV_TC_I16 = 4, SV_TC_I32 = 5,
    SV_TC_I64 = 6, SV_TC_DOUBLE = 7, SV_TC_BINARY = 8, SV_TC_LIST = 9,
    SV_TC_STRUCT = 12,
};

#define SV_TC_MAX_DEPTH 16

/* Appends to buf; the first allocation failure sticks in `failed` so call
 * sites can encode a whole structure and check once. */
typedef struct sv_tc {
    sv_buf *buf;
    int16_t last[SV_TC_MAX_DEPTH];
    int depth;
    bool failed;
} sv_tc;

void sv_tc_init(sv_tc *t, sv_buf *buf);
void sv_tc_varint(sv_tc *t, uint64_t v);
void sv_tc_field(sv_tc *t, int16_t id, uint8_t type);
void sv_tc_i32(sv_tc *t, int16_t id, int32_t v);
void sv_tc_i64(sv_tc *t, int16_t id, int64_t v);
void sv_tc_bool(sv_tc *t, int16_t id, bool v);
void sv_tc_binary(sv_tc *t, int16_t id, const void *data, size_t len);
void sv_tc_struct_begin(sv_tc *t, int16_t id); /* a struct-typed field */
void sv_tc_struct_end(sv_tc *t);               /* writes STOP */
void sv_tc_list_begin(sv_tc *t, int16_t id, uint8_t elem_type, uint32_t n);
void sv_tc_list_header(sv_tc *t, uint8_t elem_type, uint32_t n); /* no field header */
void sv_tc_elem_struct_begin(sv_tc *t);        /* a struct element of a list */
void sv_tc_elem_i32(sv_tc *t, int32_t v);
void sv_tc_elem_binary(sv_tc *t, const void *data, size_t len);
void sv_tc_stop(sv_tc *t);                     /* STOP of the outermost struct */

/* RLE / bit-packed hybrid (without any length prefix), bit width 0..32.
 * Returns 0 or SV_ENOMEM. */
int sv_pq_rle_u8(sv_buf *out, const uint8_t *v, size_t n, int width);
int sv_pq_rle_u32(sv_buf *out, const uint32_t *v, size_t n, int width);
/* Levels as a v1 data page stores them: 4-byte little-endian length + hybrid. */
int sv_pq_levels_v1(sv_buf *out, const uint8_t *v, size_t n, int max_level);
int sv_pq_bit_width(uint32_t max_value);

/* ---- writer-side internals: the schema node array (was parquet_writer.h) ---- */

enum { PQ_ROOT, PQ_LEAF, PQ_GROUP, PQ_LIST };

typedef struct pq_node {
    char *name;
    int kind, parent, first_child, last_child, next, n_children;
    unsigned flags;
    sv_pq_type type;
    sv_pq_logical lt;
    int type_length;
    uint32_t list_len;
    /* Filled by the writer: definition level when this node is present (for
     * a list: the list is not null), repetition level (for a list: that of
     * its repeated level), leaf columns below [col, col_end), whether the
     * node sits inside a list. */
    int def, rep, col, col_end;
    bool in_list;
} pq_node;

struct sv_pq_schema {
    pq_node *nodes;
    int n, cap;
};

#endif
