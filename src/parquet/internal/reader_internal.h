/* parquet reader internals: Thrift compact decoding, the parsed footer, the
 * schema tree and the page decoders, shared by reader_meta.c, reader.c and
 * the module's unit tests. */
#ifndef SV_PQ_READER_INTERNAL_H
#define SV_PQ_READER_INTERNAL_H

#include <stdio.h>

#include "core.h"
#include "parquet.h"

enum {
    TT_TRUE = 1, TT_FALSE = 2, TT_BYTE = 3, TT_I16 = 4, TT_I32 = 5, TT_I64 = 6,
    TT_DOUBLE = 7, TT_BINARY = 8, TT_LIST = 9, TT_SET = 10, TT_MAP = 11, TT_STRUCT = 12,
};
#define TR_MAX_DEPTH 32
#define PQ_MAX_DEPTH 32

typedef struct tr {
    const uint8_t *p, *end;
    int depth;
    bool bad, nomem;
} tr;

void tr_init(tr *t, const uint8_t *p, size_t len);
uint64_t tr_varint(tr *t);
int64_t tr_zz(tr *t);
bool tr_field(tr *t, int16_t *last, int16_t *id, uint8_t *type);
bool tr_list(tr *t, uint8_t *etype, uint32_t *n);
void tr_skip(tr *t, uint8_t type);
int64_t tr_int(tr *t, uint8_t type);
bool tr_binary(tr *t, uint8_t type, const uint8_t **p, uint32_t *len);

typedef struct pq_selem {
    char *name;
    int type, type_length, rep, num_children, conv, scale, precision;
    bool has_children;
    int lt_id, lt_unit, lt_bits, lt_scale, lt_precision;
    bool lt_utc, lt_signed;
} pq_selem;

typedef struct pq_colmeta {
    int type, codec;
    int64_t num_values, total_uncompressed, total_compressed, data_off, dict_off;
    bool has_dict, has_meta, external;
} pq_colmeta;

typedef struct pq_rowgroup {
    pq_colmeta *cols;
    int ncols;
    int64_t num_rows;
} pq_rowgroup;

typedef struct pq_kv { char *key, *value; } pq_kv;

typedef struct pq_meta {
    pq_selem *elems;
    int nelems;
    int64_t num_rows;
    pq_rowgroup *rgs;
    int nrgs;
    pq_kv *kv;
    int nkv;
    char *created_by;
} pq_meta;

/* 0, -1 malformed, -2 out of memory. */
int pq_parse_footer(const uint8_t *p, size_t len, pq_meta *m);
void pq_meta_free(pq_meta *m);

typedef struct pq_page {
    int type, encoding, def_encoding, rep_encoding;
    int64_t uncompressed, compressed, num_values, num_nulls, num_rows, def_len, rep_len;
    bool v2_compressed;
} pq_page;
int pq_parse_page_header(const uint8_t *p, size_t len, pq_page *h, size_t *used);

typedef struct pq_raw {
    int elem, parent, nchildren, def, rep;
    int *children;
    bool leaf;
} pq_raw;

typedef struct pq_lnode {
    sv_pq_rnode pub;
    int def_at;    /* present when def >= def_at (optional nodes) */
    int rep_level; /* list: repetition level of its repeated node */
    int elem_def;  /* list: def >= elem_def means at least one element */
    int raw;       /* leaf: raw node index */
    bool int96;
    struct pq_lnode *child[1];  /* list element */
    const sv_pq_rnode *childp[1];
    struct pq_lnode **kids;     /* group children */
    const sv_pq_rnode **kidp;
} pq_lnode;

typedef struct pq_leafpath {
    int depth, raw, max_def, max_rep;
    pq_lnode *path[PQ_MAX_DEPTH * 2];
    int idx[PQ_MAX_DEPTH * 2];
} pq_leafpath;

typedef struct pq_schema {
    pq_raw *raw;
    int nraw;
    pq_lnode *lnodes;
    int nl, capl;
    pq_lnode *root;
    pq_leafpath *leaves;
    int nleaves, capleaves;
} pq_schema;

int pq_schema_build(pq_schema *s, const pq_meta *m, char *why, size_t whylen);
void pq_schema_free(pq_schema *s);

/* Page decoders (reader.c), exposed for the unit tests. Each returns 0 or -1
 * (malformed) and never reads outside [p, p+len). */
/* RLE/bit-packed hybrid: n values of width bits into out (each checked < limit when limit > 0). */
int pq_rle_decode(const uint8_t *p, size_t len, int width, uint32_t *out, size_t n, uint32_t limit);
/* DELTA_BINARY_PACKED: up to cap values; *n gets the count, *used the bytes. */
int pq_delta_decode(const uint8_t *p, size_t len, int64_t *out, size_t cap, size_t *n, size_t *used);

#endif
