/* Writer-side internals: the schema node array. */
#ifndef SV_PARQUET_WRITER_H
#define SV_PARQUET_WRITER_H

#include "parquet.h"
#include "parquet_internal.h"

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
