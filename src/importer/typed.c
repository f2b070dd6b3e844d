/* The typed path: Parquet rows straight into records (no JSON text), for
 * the values it converts exactly as the text path (convert.c, then the
 * record parser) would. Anything else - an undeclared property, a value of
 * another type, a non-finite number, a wrong dimension, invalid UTF-8 - is
 * handed back (1) and that row takes the text path, which gives the same
 * object or the same error message. */
#include "importer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct tmap {
    const imp_map *m;
    int idx; /* property / named / multi index in the schema */
} tmap;

struct imp_typed {
    const imp_plan *p;
    sv_schema *s;
    tmap *maps;
    int n;
};

/* A bump allocator reset for every row; blocks are kept. */
typedef struct ablock {
    uint8_t *mem;
    size_t cap, used;
} ablock;

struct imp_trow {
    sv_record rec;
    const float **named;
    const float **multi;
    uint32_t *multi_rows;
    sv_prop_value *props;
    ablock *blocks;
    size_t nblocks, cur;
};

/* RFC 3339 years 0000..9999 in ms since the epoch: what the text path's
 * date strings can say. */
#define MS_MIN (-62167219200000ll)
#define MS_MAX (253402300799999ll)

int imp_typed_new(const imp_plan *p, const sv_schema *s, imp_typed **out, sv_err *err)
{
    *out = NULL;
    imp_typed *t = calloc(1, sizeof *t);
    if (!t || !(t->s = sv_schema_dup(s)) || !(t->maps = calloc((size_t)p->n + 1, sizeof *t->maps))) {
        imp_typed_free(t);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    t->p = p;
    for (int i = 0; i < p->n; i++) {
        const imp_map *m = &p->maps[i];
        int idx = 0;
        switch (m->kind) {
        case IMP_T_VECTOR: idx = t->s->vector_dim ? 0 : -1; break;
        case IMP_T_NAMED: idx = sv_schema_named_index(t->s, m->name, strlen(m->name)); break;
        case IMP_T_MULTI: idx = sv_schema_multi_index(t->s, m->name, strlen(m->name)); break;
        case IMP_T_PROP:
            idx = sv_schema_prop_index(t->s, m->name, strlen(m->name)); /* object: typed only when null */
            break;
        case IMP_T_NAMED_ALL:
        case IMP_T_MULTI_ALL:
        case IMP_T_PROPS_SPREAD: idx = 0; break; /* typed only when null */
        }
        if (idx < 0) { /* the text path for this file */
            imp_typed_free(t);
            return 0;
        }
        t->maps[t->n++] = (tmap){m, idx};
    }
    *out = t;
    return 0;
}

void imp_typed_free(imp_typed *t)
{
    if (!t)
        return;
    sv_schema_free(t->s);
    free(t->maps);
    free(t);
}

const sv_schema *imp_typed_schema(const imp_typed *t) { return t->s; }

imp_trow *imp_trow_new(const imp_typed *t)
{
    imp_trow *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    const sv_schema *s = t->s;
    w->named = calloc(s->n_named + 1, sizeof *w->named);
    w->multi = calloc(s->n_multi + 1, sizeof *w->multi);
    w->multi_rows = calloc(s->n_multi + 1, sizeof *w->multi_rows);
    w->props = calloc(s->n_props + 1, sizeof *w->props);
    if (!w->named || !w->multi || !w->multi_rows || !w->props) {
        imp_trow_free(w);
        return NULL;
    }
    w->rec.named = w->named;
    w->rec.multi = w->multi;
    w->rec.multi_rows = w->multi_rows;
    w->rec.props = w->props;
    return w;
}

void imp_trow_free(imp_trow *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nblocks; i++)
        free(w->blocks[i].mem);
    free(w->blocks);
    free(w->named);
    free(w->multi);
    free(w->multi_rows);
    free(w->props);
    free(w);
}

/* n bytes aligned to 8 from the row's memory; NULL when out of memory. */
static void *talloc(imp_trow *w, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    while (w->cur < w->nblocks) {
        ablock *b = &w->blocks[w->cur];
        if (b->cap - b->used >= n) {
            void *p = b->mem + b->used;
            b->used += n;
            return p;
        }
        w->cur++;
    }
    size_t cap = n > (64u << 10) ? n : (64u << 10);
    ablock *nb = realloc(w->blocks, (w->nblocks + 1) * sizeof *nb);
    if (!nb)
        return NULL;
    w->blocks = nb;
    uint8_t *mem = malloc(cap);
    if (!mem)
        return NULL;
    w->blocks[w->nblocks] = (ablock){mem, cap, n};
    w->cur = w->nblocks++;
    return mem;
}

static void treset(imp_trow *w)
{
    for (size_t i = 0; i < w->nblocks; i++)
        w->blocks[i].used = 0;
    w->cur = 0;
}

/* A vector of dim float32s from a list<float|double> or float32 bytes into
 * *out; 1 for anything else (including a wrong dimension or a value that is
 * not a finite float32: the text path says what is wrong). */
static int conv_vector(imp_trow *w, const sv_pq_rnode *n, const sv_pq_value *v, uint32_t dim, const float **out)
{
    if (v->kind == SV_PQV_PACKED && n->kind == SV_PQ_RLIST && v->n == dim) {
        const sv_pq_rnode *el = n->children[0];
        if (el->type == SV_PQ_FLOAT) {
            /* finite: the exponent bits are not all ones (a reduction
             * without an early exit: the compiler vectorizes it) */
            const uint8_t *raw = v->u.raw;
            uint32_t bad = 0;
            for (uint32_t i = 0; i < dim; i++) {
                uint32_t b;
                memcpy(&b, raw + (size_t)i * 4, 4);
                bad |= (b & 0x7f800000u) == 0x7f800000u;
            }
            if (bad)
                return 1;
            *out = v->u.raw; /* the reader's packed values are aligned */
            return 0;
        }
        if (el->type == SV_PQ_DOUBLE) {
            float *f = talloc(w, (size_t)dim * 4);
            if (!f)
                return 1;
            const double *d = v->u.raw;
            for (uint32_t i = 0; i < dim; i++) {
                f[i] = (float)d[i];
                if (!isfinite(f[i]))
                    return 1;
            }
            *out = f;
            return 0;
        }
        return 1;
    }
    if (v->kind == SV_PQV_BYTES && v->n == (uint64_t)dim * 4) {
        float *f = talloc(w, (size_t)dim * 4);
        if (!f)
            return 1;
        memcpy(f, v->u.bytes, (size_t)dim * 4);
        for (uint32_t i = 0; i < dim; i++)
            if (!isfinite(f[i]))
                return 1;
        *out = f;
        return 0;
    }
    return 1;
}

/* A multi vector: a non-empty list of vectors of dim each, concatenated. */
static int conv_multi(imp_trow *w, const sv_pq_rnode *n, const sv_pq_value *v, uint32_t dim, const float **out,
                      uint32_t *rows)
{
    if (v->kind != SV_PQV_LIST || n->kind != SV_PQ_RLIST || v->n == 0)
        return 1;
    float *f = talloc(w, (size_t)v->n * dim * 4);
    if (!f)
        return 1;
    for (uint32_t r = 0; r < v->n; r++) {
        const float *row;
        if (conv_vector(w, n->children[0], &v->u.items[r], dim, &row))
            return 1;
        memcpy(f + (size_t)r * dim, row, (size_t)dim * 4);
    }
    *out = f;
    *rows = v->n;
    return 0;
}

/* A plain integer column (no logical type but INT; unsigned 64-bit only
 * when it fits int64): what the text path writes as a JSON integer. */
static bool plain_int(const sv_pq_rnode *n, const sv_pq_value *v)
{
    if (v->kind != SV_PQV_INT)
        return false;
    if (n->lt == SV_PQ_RLT_NONE)
        return true;
    return n->lt == SV_PQ_RLT_INT && (n->is_signed || n->bits < 64 || v->u.i >= 0);
}

/* One non-null value of a property of type t into slot; 1 when the typed
 * path does not take it. */
static int conv_elem(const sv_pq_rnode *n, const sv_pq_value *v, sv_prop_type t, void *slot)
{
    switch (t) {
    case SV_TYPE_TEXT:
        if (v->kind != SV_PQV_BYTES || (n->lt != SV_PQ_RLT_STRING && n->lt != SV_PQ_RLT_ENUM) ||
            !sv_utf8_valid((const char *)v->u.bytes, v->n))
            return 1;
        ((sv_str *)slot)->ptr = (const char *)v->u.bytes;
        ((sv_str *)slot)->len = v->n;
        return 0;
    case SV_TYPE_INT:
        if (!plain_int(n, v))
            return 1;
        *(int64_t *)slot = v->u.i;
        return 0;
    case SV_TYPE_NUMBER:
        if (v->kind == SV_PQV_DOUBLE && isfinite(v->u.d))
            *(double *)slot = v->u.d;
        else if (v->kind == SV_PQV_FLOAT && isfinite(v->u.f))
            *(double *)slot = (double)v->u.f;
        else if (plain_int(n, v))
            *(double *)slot = (double)v->u.i;
        else
            return 1;
        return 0;
    case SV_TYPE_BOOLEAN:
        if (v->kind != SV_PQV_BOOL)
            return 1;
        *(uint8_t *)slot = v->u.b ? 1 : 0;
        return 0;
    case SV_TYPE_DATE: {
        if (v->kind != SV_PQV_INT)
            return 1;
        int64_t ms;
        if (n->lt == SV_PQ_RLT_TIMESTAMP && n->unit == SV_PQ_MILLIS)
            ms = v->u.i;
        else if (n->lt == SV_PQ_RLT_DATE && v->u.i > MS_MIN / 86400000 - 1 && v->u.i < MS_MAX / 86400000 + 1)
            ms = v->u.i * 86400000ll;
        else
            return 1;
        if (ms < MS_MIN || ms > MS_MAX)
            return 1;
        *(int64_t *)slot = ms;
        return 0;
    }
    case SV_TYPE_UUID:
        if (v->kind == SV_PQV_BYTES && n->lt == SV_PQ_RLT_UUID && v->n == 16) {
            memcpy(((sv_uuid *)slot)->b, v->u.bytes, 16);
            return 0;
        }
        if (v->kind == SV_PQV_BYTES && (n->lt == SV_PQ_RLT_STRING || n->lt == SV_PQ_RLT_ENUM) &&
            sv_uuid_parse((const char *)v->u.bytes, v->n, slot) == 0)
            return 0;
        return 1;
    case SV_TYPE_OBJECT:
        return 1;
    }
    return 1;
}

static int conv_prop(imp_trow *w, const sv_prop_def *d, const sv_pq_rnode *n, const sv_pq_value *v,
                     sv_prop_value *pv)
{
    size_t es = sv_prop_elem_size(d->type);
    if (!d->array) {
        void *slot = talloc(w, es);
        if (!slot || conv_elem(n, v, d->type, slot))
            return 1;
        sv_prop_value_point(pv, d->type, slot);
        pv->count = 1;
        pv->present = true;
        return 0;
    }
    if (n->kind != SV_PQ_RLIST || (v->kind != SV_PQV_LIST && v->kind != SV_PQV_PACKED))
        return 1;
    const sv_pq_rnode *el = n->children[0];
    uint8_t *arr = talloc(w, es * v->n + 1);
    if (!arr)
        return 1;
    for (uint32_t i = 0; i < v->n; i++) {
        sv_pq_value e = {.kind = SV_PQV_NULL};
        if (v->kind == SV_PQV_LIST) {
            e = v->u.items[i];
        } else {
            const uint8_t *raw = v->u.raw;
            switch (el->type) {
            case SV_PQ_FLOAT: e.kind = SV_PQV_FLOAT; memcpy(&e.u.f, raw + 4 * (size_t)i, 4); break;
            case SV_PQ_DOUBLE: e.kind = SV_PQV_DOUBLE; memcpy(&e.u.d, raw + 8 * (size_t)i, 8); break;
            case SV_PQ_INT32: {
                int32_t x;
                memcpy(&x, raw + 4 * (size_t)i, 4);
                e.kind = SV_PQV_INT;
                e.u.i = x;
                break;
            }
            default: e.kind = SV_PQV_INT; memcpy(&e.u.i, raw + 8 * (size_t)i, 8); break;
            }
        }
        if (e.kind == SV_PQV_NULL || conv_elem(el, &e, d->type, arr + es * i))
            return 1;
    }
    sv_prop_value_point(pv, d->type, arr);
    pv->count = v->n;
    pv->present = true;
    return 0;
}

int imp_row_record(const imp_typed *t, imp_trow *w, const sv_pq_value *row, int64_t rownum, sv_record **rec,
                   char *why, size_t whylen)
{
    const sv_schema *s = t->s;
    sv_record *r = &w->rec;
    treset(w);
    r->vector = NULL;
    memset(w->named, 0, s->n_named * sizeof *w->named);
    memset(w->multi, 0, s->n_multi * sizeof *w->multi);
    memset(w->multi_rows, 0, s->n_multi * sizeof *w->multi_rows);
    memset(w->props, 0, s->n_props * sizeof *w->props);
    r->extra_json.ptr = NULL;
    r->extra_json.len = 0;
    int rc = imp_row_id(t->p, row, rownum, &r->id, NULL, why, whylen);
    if (rc)
        return rc;
    r->has_id = true;
    for (int i = 0; i < t->n; i++) {
        const imp_map *m = t->maps[i].m;
        int idx = t->maps[i].idx;
        const sv_pq_value *v = imp_col_value(&m->col, row);
        if (v->kind == SV_PQV_NULL) {
            /* a null leaves the value absent (or as an earlier column set it) */
            if (m->kind == IMP_T_VECTOR)
                r->vector = NULL;
            else if (m->kind == IMP_T_NAMED)
                w->named[idx] = NULL;
            else if (m->kind == IMP_T_MULTI)
                w->multi[idx] = NULL;
            continue;
        }
        switch (m->kind) {
        case IMP_T_VECTOR:
            if (conv_vector(w, m->col.node, v, s->vector_dim, &r->vector))
                return 1;
            break;
        case IMP_T_NAMED:
            if (conv_vector(w, m->col.node, v, s->named[idx].dim, &w->named[idx]))
                return 1;
            break;
        case IMP_T_MULTI:
            if (conv_multi(w, m->col.node, v, s->multi[idx].dim, &w->multi[idx], &w->multi_rows[idx]))
                return 1;
            break;
        case IMP_T_PROP:
            if (conv_prop(w, &s->props[idx], m->col.node, v, &w->props[idx]))
                return 1;
            break;
        case IMP_T_NAMED_ALL:
        case IMP_T_MULTI_ALL:
        case IMP_T_PROPS_SPREAD:
            return 1; /* a non-null object column: the text path */
        }
    }
    *rec = r;
    return 0;
}
