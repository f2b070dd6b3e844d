/* libFuzzer: the Parquet reader on arbitrary bytes as a whole file. It must
 * answer every input with rows or an error (never crash, never read or
 * allocate outside its limits), and every value it returns must be walkable. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "parquet.h"

typedef struct { const uint8_t *p; size_t n; } mem;

static int mem_read(void *ud, uint64_t off, void *buf, size_t len, sv_err *err)
{
    mem *m = ud;
    if (off > m->n || len > m->n - off)
        abort(); /* the reader promised never to ask past size */
    memcpy(buf, m->p + off, len);
    return 0;
}

static uint64_t walk(const sv_pq_rnode *n, const sv_pq_value *v, int depth)
{
    uint64_t h = v->kind;
    if (depth > 100)
        abort();
    switch (v->kind) {
    case SV_PQV_NULL: case SV_PQV_BOOL: case SV_PQV_INT: case SV_PQV_FLOAT: case SV_PQV_DOUBLE: break;
    case SV_PQV_BYTES:
        for (uint32_t i = 0; i < v->n; i++) h = h * 31 + v->u.bytes[i];
        break;
    case SV_PQV_PACKED: {
        if (n->kind != SV_PQ_RLIST) abort();
        const sv_pq_rnode *el = n->children[0];
        size_t w = el->type == SV_PQ_INT32 || el->type == SV_PQ_FLOAT ? 4 : 8;
        const uint8_t *p = v->u.raw;
        for (size_t i = 0; i < (size_t)v->n * w; i++) h = h * 31 + p[i];
        break;
    }
    case SV_PQV_LIST:
        if (n->kind != SV_PQ_RLIST) abort();
        for (uint32_t i = 0; i < v->n; i++) h += walk(n->children[0], &v->u.items[i], depth + 1);
        break;
    case SV_PQV_GROUP:
        if (n->kind != SV_PQ_RGROUP || (int)v->n != n->n_children) abort();
        for (uint32_t i = 0; i < v->n; i++) h += walk(n->children[i], &v->u.items[i], depth + 1);
        break;
    default:
        abort();
    }
    return h;
}

/* One pass over the file; threaded: the next row group prefetched and each
 * row group's columns decoded by two threads. */
static void read_all(const uint8_t *data, size_t size, bool threaded)
{
    mem m = {data, size};
    sv_pq_source src = {mem_read, &m, size, "fuzz.parquet"};
    sv_pq_read_options opt = {.max_footer_bytes = 1 << 20, .max_row_group_bytes = 64 << 20,
                              .max_page_bytes = 8 << 20, .prefetch_bytes = threaded ? 32 << 20 : 0,
                              .decode_threads = threaded ? 2 : 0};
    sv_pq_reader *r;
    sv_err err;
    if (sv_pq_reader_open(&src, &opt, &r, &err))
        return;
    volatile uint64_t sink = 0;
    for (int guard = 0; guard < 100000; guard++) {
        const sv_pq_value *rows;
        size_t n;
        if (sv_pq_reader_next(r, 64, &rows, &n, NULL, NULL, &err) || n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            sink += walk(sv_pq_reader_root(r), &rows[i], 0);
    }
    (void)sink;
    sv_pq_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_all(data, size, false);
    read_all(data, size, true);
    return 0;
}
