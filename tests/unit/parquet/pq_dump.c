/* pq_dump FILE [BATCH]: prints the schema tree on stderr and every row as a
 * JSON line (physical values: ints as numbers, bytes as JSON strings with
 * \u escapes for non-UTF-8-safe bytes, lists as arrays, groups as objects).
 * A debugging tool and the reader's black-box driver in tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parquet.h"

static void put_bytes(const uint8_t *p, uint32_t n)
{
    putchar('"');
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void put_value(const sv_pq_rnode *n, const sv_pq_value *v)
{
    switch (v->kind) {
    case SV_PQV_NULL: fputs("null", stdout); break;
    case SV_PQV_BOOL: fputs(v->u.b ? "true" : "false", stdout); break;
    case SV_PQV_INT: printf("%lld", (long long)v->u.i); break;
    case SV_PQV_FLOAT: printf("%.9g", (double)v->u.f); break;
    case SV_PQV_DOUBLE: printf("%.17g", v->u.d); break;
    case SV_PQV_BYTES: put_bytes(v->u.bytes, v->n); break;
    case SV_PQV_PACKED: {
        const sv_pq_rnode *el = n->children[0];
        putchar('[');
        for (uint32_t i = 0; i < v->n; i++) {
            if (i) putchar(',');
            if (el->type == SV_PQ_FLOAT) printf("%.9g", (double)((const float *)v->u.raw)[i]);
            else if (el->type == SV_PQ_DOUBLE) printf("%.17g", ((const double *)v->u.raw)[i]);
            else if (el->type == SV_PQ_INT32) printf("%d", ((const int32_t *)v->u.raw)[i]);
            else printf("%lld", (long long)((const int64_t *)v->u.raw)[i]);
        }
        putchar(']');
        break;
    }
    case SV_PQV_LIST:
        putchar('[');
        for (uint32_t i = 0; i < v->n; i++) {
            if (i) putchar(',');
            put_value(n->children[0], &v->u.items[i]);
        }
        putchar(']');
        break;
    case SV_PQV_GROUP:
        putchar('{');
        for (uint32_t i = 0; i < v->n; i++) {
            if (i) putchar(',');
            printf("\"%s\":", n->children[i]->name);
            put_value(n->children[i], &v->u.items[i]);
        }
        putchar('}');
        break;
    default: fputs("\"?\"", stdout);
    }
}

static void put_schema(const sv_pq_rnode *n, int depth)
{
    static const char *kinds[] = {"leaf", "group", "list"};
    fprintf(stderr, "%*s%s %s%s type=%d lt=%d unit=%d\n", depth * 2, "", n->name, kinds[n->kind],
            n->optional ? " optional" : "", n->type, n->lt, n->unit);
    for (int i = 0; i < n->n_children; i++)
        put_schema(n->children[i], depth + 1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pq_dump FILE [BATCH]\n");
        return 2;
    }
    sv_err err = {0};
    sv_pq_reader *r;
    if (sv_pq_reader_open_file(argv[1], NULL, &r, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    put_schema(sv_pq_reader_root(r), 0);
    size_t batch = argc > 2 ? (size_t)atol(argv[2]) : 0;
    for (;;) {
        const sv_pq_value *rows;
        size_t n;
        if (sv_pq_reader_next(r, batch, &rows, &n, NULL, NULL, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            sv_pq_reader_free(r);
            return 1;
        }
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            put_value(sv_pq_reader_root(r), &rows[i]);
            putchar('\n');
        }
    }
    sv_pq_reader_free(r);
    return 0;
}
