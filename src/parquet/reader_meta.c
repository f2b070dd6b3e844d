/* Reader, part 1: the Thrift compact decoder, the footer (FileMetaData) and
 * the schema tree (raw Parquet nodes -> logical nodes with LISTs folded). */
#include "reader_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- Thrift compact decoding -------------------------------------------- */

void tr_init(tr *t, const uint8_t *p, size_t len)
{
    t->p = p;
    t->end = p + len;
    t->depth = 0;
    t->bad = false;
    t->nomem = false;
}

uint64_t tr_varint(tr *t)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (t->p >= t->end) {
            t->bad = true;
            return 0;
        }
        uint8_t b = *t->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    t->bad = true;
    return 0;
}

int64_t tr_zz(tr *t)
{
    uint64_t v = tr_varint(t);
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static uint8_t tr_byte(tr *t)
{
    if (t->p >= t->end) {
        t->bad = true;
        return 0;
    }
    return *t->p++;
}

/* Reads a field header. Returns false at STOP (or on error). *type TRUE/FALSE
 * carry a bool field's value. */
bool tr_field(tr *t, int16_t *last, int16_t *id, uint8_t *type)
{
    uint8_t b = tr_byte(t);
    if (t->bad || b == 0)
        return false;
    *type = b & 0x0f;
    int delta = b >> 4;
    if (delta)
        *id = (int16_t)(*last + delta);
    else
        *id = (int16_t)tr_zz(t);
    *last = *id;
    return !t->bad;
}

bool tr_list(tr *t, uint8_t *etype, uint32_t *n)
{
    uint8_t b = tr_byte(t);
    uint64_t size = b >> 4;
    *etype = b & 0x0f;
    if (size == 15)
        size = tr_varint(t);
    /* Every element takes at least one byte (bools in lists too). */
    if (t->bad || size > (uint64_t)(t->end - t->p)) {
        t->bad = true;
        return false;
    }
    *n = (uint32_t)size;
    return true;
}

void tr_skip(tr *t, uint8_t type)
{
    if (t->bad)
        return;
    if (++t->depth > TR_MAX_DEPTH) {
        t->bad = true;
        return;
    }
    switch (type) {
    case TT_TRUE:
    case TT_FALSE:
        break; /* a field's bool lives in its header */
    case TT_BYTE:
        tr_byte(t);
        break;
    case TT_I16:
    case TT_I32:
    case TT_I64:
        tr_varint(t);
        break;
    case TT_DOUBLE:
        if (t->end - t->p < 8)
            t->bad = true;
        else
            t->p += 8;
        break;
    case TT_BINARY: {
        uint64_t len = tr_varint(t);
        if (t->bad || len > (uint64_t)(t->end - t->p))
            t->bad = true;
        else
            t->p += len;
        break;
    }
    case TT_LIST:
    case TT_SET: {
        uint8_t et;
        uint32_t n;
        if (!tr_list(t, &et, &n))
            break;
        for (uint32_t i = 0; i < n && !t->bad; i++) {
            if (et == TT_TRUE || et == TT_FALSE)
                tr_byte(t);
            else
                tr_skip(t, et);
        }
        break;
    }
    case TT_MAP: {
        uint64_t n = tr_varint(t);
        if (t->bad || n > (uint64_t)(t->end - t->p)) {
            t->bad = true;
            break;
        }
        if (n == 0)
            break;
        uint8_t kv = tr_byte(t);
        for (uint64_t i = 0; i < n && !t->bad; i++) {
            uint8_t kt = kv >> 4, vt = kv & 0x0f;
            if (kt == TT_TRUE || kt == TT_FALSE) tr_byte(t); else tr_skip(t, kt);
            if (vt == TT_TRUE || vt == TT_FALSE) tr_byte(t); else tr_skip(t, vt);
        }
        break;
    }
    case TT_STRUCT: {
        int16_t last = 0, id;
        uint8_t ft;
        while (tr_field(t, &last, &id, &ft))
            tr_skip(t, ft);
        break;
    }
    default:
        t->bad = true;
    }
    t->depth--;
}

int64_t tr_int(tr *t, uint8_t type)
{
    if (type == TT_BYTE)
        return (int8_t)tr_byte(t);
    if (type != TT_I16 && type != TT_I32 && type != TT_I64) {
        t->bad = true;
        return 0;
    }
    return tr_zz(t);
}

bool tr_binary(tr *t, uint8_t type, const uint8_t **p, uint32_t *len)
{
    if (type != TT_BINARY) {
        t->bad = true;
        return false;
    }
    uint64_t l = tr_varint(t);
    if (t->bad || l > (uint64_t)(t->end - t->p)) {
        t->bad = true;
        return false;
    }
    *p = t->p;
    *len = (uint32_t)l;
    t->p += l;
    return true;
}

static char *tr_strdup(tr *t, uint8_t type)
{
    const uint8_t *p;
    uint32_t len;
    if (!tr_binary(t, type, &p, &len))
        return NULL;
    char *s = malloc((size_t)len + 1);
    if (!s) {
        t->bad = true;
        t->nomem = true;
        return NULL;
    }
    memcpy(s, p, len);
    s[len] = 0;
    return s;
}

/* ---- FileMetaData --------------------------------------------------------- */

static void parse_time_unit(tr *t, int *unit)
{
    int16_t last = 0, id;
    uint8_t ft;
    while (tr_field(t, &last, &id, &ft)) {
        if (ft == TT_STRUCT && id >= 1 && id <= 3)
            *unit = id - 1;
        tr_skip(t, ft);
    }
}

static void parse_logical(tr *t, pq_selem *e)
{
    int16_t last = 0, id;
    uint8_t ft;
    while (tr_field(t, &last, &id, &ft)) {
        if (ft != TT_STRUCT) {
            tr_skip(t, ft);
            continue;
        }
        e->lt_id = id;
        if (id == 5 || id == 7 || id == 8 || id == 10) {
            int16_t l2 = 0, id2;
            uint8_t t2;
            if (++t->depth > TR_MAX_DEPTH) {
                t->bad = true;
                return;
            }
            while (tr_field(t, &l2, &id2, &t2)) {
                if (id == 5 && id2 == 1) e->lt_scale = (int)tr_int(t, t2);
                else if (id == 5 && id2 == 2) e->lt_precision = (int)tr_int(t, t2);
                else if ((id == 7 || id == 8) && id2 == 1) e->lt_utc = t2 == TT_TRUE;
                else if ((id == 7 || id == 8) && id2 == 2 && t2 == TT_STRUCT) parse_time_unit(t, &e->lt_unit);
                else if (id == 10 && id2 == 1) e->lt_bits = (int)tr_int(t, t2);
                else if (id == 10 && id2 == 2) e->lt_signed = t2 == TT_TRUE;
                else tr_skip(t, t2);
            }
            t->depth--;
        } else {
            tr_skip(t, ft);
        }
    }
}

static void parse_selem(tr *t, pq_selem *e)
{
    int16_t last = 0, id;
    uint8_t ft;
    e->type = -1;
    e->rep = -1;
    e->conv = -1;
    while (tr_field(t, &last, &id, &ft)) {
        switch (id) {
        case 1: e->type = (int)tr_int(t, ft); break;
        case 2: e->type_length = (int)tr_int(t, ft); break;
        case 3: e->rep = (int)tr_int(t, ft); break;
        case 4: free(e->name); e->name = tr_strdup(t, ft); break;
        case 5: e->num_children = (int)tr_int(t, ft); e->has_children = true; break;
        case 6: e->conv = (int)tr_int(t, ft); break;
        case 7: e->scale = (int)tr_int(t, ft); break;
        case 8: e->precision = (int)tr_int(t, ft); break;
        case 10:
            if (ft == TT_STRUCT) parse_logical(t, e); else tr_skip(t, ft);
            break;
        default: tr_skip(t, ft);
        }
    }
}

static void parse_colmeta(tr *t, pq_colmeta *c)
{
    int16_t last = 0, id;
    uint8_t ft;
    while (tr_field(t, &last, &id, &ft)) {
        switch (id) {
        case 1: c->type = (int)tr_int(t, ft); break;
        case 4: c->codec = (int)tr_int(t, ft); break;
        case 5: c->num_values = tr_int(t, ft); break;
        case 6: c->total_uncompressed = tr_int(t, ft); break;
        case 7: c->total_compressed = tr_int(t, ft); break;
        case 9: c->data_off = tr_int(t, ft); break;
        case 11: c->dict_off = tr_int(t, ft); c->has_dict = true; break;
        default: tr_skip(t, ft);
        }
    }
}

static void parse_column(tr *t, pq_colmeta *c)
{
    int16_t last = 0, id;
    uint8_t ft;
    c->type = -1;
    while (tr_field(t, &last, &id, &ft)) {
        if (id == 1 && ft == TT_BINARY) {
            c->external = true;
            tr_skip(t, ft);
        } else if (id == 3 && ft == TT_STRUCT) {
            c->has_meta = true;
            parse_colmeta(t, c);
        } else {
            tr_skip(t, ft);
        }
    }
}

static void parse_rowgroup(tr *t, pq_rowgroup *g)
{
    int16_t last = 0, id;
    uint8_t ft;
    while (tr_field(t, &last, &id, &ft)) {
        if (id == 1 && ft == TT_LIST && !g->cols) {
            uint8_t et;
            uint32_t n;
            if (!tr_list(t, &et, &n) || et != TT_STRUCT) {
                t->bad = true;
                return;
            }
            g->cols = calloc(n ? n : 1, sizeof *g->cols);
            if (!g->cols) {
                t->bad = t->nomem = true;
                return;
            }
            g->ncols = (int)n;
            for (uint32_t i = 0; i < n && !t->bad; i++)
                parse_column(t, &g->cols[i]);
        } else if (id == 3) {
            g->num_rows = tr_int(t, ft);
        } else {
            tr_skip(t, ft);
        }
    }
}

int pq_parse_footer(const uint8_t *p, size_t len, pq_meta *m)
{
    tr t;
    tr_init(&t, p, len);
    int16_t last = 0, id;
    uint8_t ft;
    while (tr_field(&t, &last, &id, &ft)) {
        if (id == 2 && ft == TT_LIST && !m->elems) {
            uint8_t et;
            uint32_t n;
            if (!tr_list(&t, &et, &n) || et != TT_STRUCT || n == 0)
                return -1;
            m->elems = calloc(n, sizeof *m->elems);
            if (!m->elems)
                return -2;
            m->nelems = (int)n;
            for (uint32_t i = 0; i < n && !t.bad; i++)
                parse_selem(&t, &m->elems[i]);
        } else if (id == 3) {
            m->num_rows = tr_int(&t, ft);
        } else if (id == 4 && ft == TT_LIST && !m->rgs) {
            uint8_t et;
            uint32_t n;
            if (!tr_list(&t, &et, &n) || et != TT_STRUCT)
                return -1;
            m->rgs = calloc(n ? n : 1, sizeof *m->rgs);
            if (!m->rgs)
                return -2;
            m->nrgs = (int)n;
            for (uint32_t i = 0; i < n && !t.bad; i++)
                parse_rowgroup(&t, &m->rgs[i]);
        } else if (id == 5 && ft == TT_LIST && !m->kv) {
            uint8_t et;
            uint32_t n;
            if (!tr_list(&t, &et, &n) || et != TT_STRUCT)
                return -1;
            m->kv = calloc(n ? n : 1, sizeof *m->kv);
            if (!m->kv)
                return -2;
            m->nkv = (int)n;
            for (uint32_t i = 0; i < n && !t.bad; i++) {
                int16_t l2 = 0, id2;
                uint8_t t2;
                while (tr_field(&t, &l2, &id2, &t2)) {
                    if (id2 == 1 && !m->kv[i].key) m->kv[i].key = tr_strdup(&t, t2);
                    else if (id2 == 2 && !m->kv[i].value) m->kv[i].value = tr_strdup(&t, t2);
                    else tr_skip(&t, t2);
                }
            }
        } else if (id == 6 && ft == TT_BINARY && !m->created_by) {
            m->created_by = tr_strdup(&t, ft);
        } else {
            tr_skip(&t, ft);
        }
    }
    if (t.nomem)
        return -2;
    if (t.bad)
        return -1;
    return 0;
}

void pq_meta_free(pq_meta *m)
{
    for (int i = 0; i < m->nelems; i++)
        free(m->elems[i].name);
    free(m->elems);
    for (int i = 0; i < m->nrgs; i++)
        free(m->rgs[i].cols);
    free(m->rgs);
    for (int i = 0; i < m->nkv; i++) {
        free(m->kv[i].key);
        free(m->kv[i].value);
    }
    free(m->kv);
    free(m->created_by);
    memset(m, 0, sizeof *m);
}

/* ---- PageHeader ------------------------------------------------------------ */

int pq_parse_page_header(const uint8_t *p, size_t len, pq_page *h, size_t *used)
{
    tr t;
    tr_init(&t, p, len);
    memset(h, 0, sizeof *h);
    h->type = -1;
    h->v2_compressed = true;
    int16_t last = 0, id;
    uint8_t ft;
    while (tr_field(&t, &last, &id, &ft)) {
        if (id == 1) h->type = (int)tr_int(&t, ft);
        else if (id == 2) h->uncompressed = tr_int(&t, ft);
        else if (id == 3) h->compressed = tr_int(&t, ft);
        else if ((id == 5 || id == 7 || id == 8) && ft == TT_STRUCT) {
            int16_t l2 = 0, id2;
            uint8_t t2;
            while (tr_field(&t, &l2, &id2, &t2)) {
                if (id == 5) { /* DataPageHeader */
                    if (id2 == 1) h->num_values = tr_int(&t, t2);
                    else if (id2 == 2) h->encoding = (int)tr_int(&t, t2);
                    else if (id2 == 3) h->def_encoding = (int)tr_int(&t, t2);
                    else if (id2 == 4) h->rep_encoding = (int)tr_int(&t, t2);
                    else tr_skip(&t, t2);
                } else if (id == 7) { /* DictionaryPageHeader */
                    if (id2 == 1) h->num_values = tr_int(&t, t2);
                    else if (id2 == 2) h->encoding = (int)tr_int(&t, t2);
                    else tr_skip(&t, t2);
                } else { /* DataPageHeaderV2 */
                    if (id2 == 1) h->num_values = tr_int(&t, t2);
                    else if (id2 == 2) h->num_nulls = tr_int(&t, t2);
                    else if (id2 == 3) h->num_rows = tr_int(&t, t2);
                    else if (id2 == 4) h->encoding = (int)tr_int(&t, t2);
                    else if (id2 == 5) h->def_len = tr_int(&t, t2);
                    else if (id2 == 6) h->rep_len = tr_int(&t, t2);
                    else if (id2 == 7) h->v2_compressed = t2 == TT_TRUE;
                    else tr_skip(&t, t2);
                }
            }
        } else {
            tr_skip(&t, ft);
        }
    }
    if (t.bad)
        return -1;
    *used = (size_t)(t.p - p);
    return 0;
}

/* ---- schema ------------------------------------------------------------------ */

/* Raw tree from the flattened elements (depth-first with num_children). */
static int build_raw(pq_schema *s, const pq_meta *m, int *next, int parent, int depth, char *why,
                     size_t whylen)
{
    if (depth > PQ_MAX_DEPTH) {
        snprintf(why, whylen, "schema nested deeper than %d", PQ_MAX_DEPTH);
        return -1;
    }
    if (*next >= m->nelems) {
        snprintf(why, whylen, "schema elements run out inside a group (num_children too large)");
        return -1;
    }
    int me = (*next)++;
    const pq_selem *e = &m->elems[me];
    pq_raw *r = &s->raw[me];
    r->elem = me;
    r->parent = parent;
    if (!e->name) {
        snprintf(why, whylen, "schema element %d has no name", me);
        return -1;
    }
    bool group = e->has_children && e->num_children > 0;
    if (me == 0 && !group) {
        snprintf(why, whylen, "the schema root has no columns");
        return -1;
    }
    if (!group && (e->has_children || e->type < 0)) {
        snprintf(why, whylen, "schema element '%s' is a group without children or a leaf without type", e->name);
        return -1;
    }
    if (group) {
        if (e->num_children > m->nelems - *next) {
            snprintf(why, whylen, "schema element '%s' claims %d children, only %d elements follow", e->name,
                     e->num_children, m->nelems - *next);
            return -1;
        }
        r->children = calloc((size_t)e->num_children, sizeof *r->children);
        if (!r->children) {
            snprintf(why, whylen, "out of memory");
            return -2;
        }
        r->nchildren = e->num_children;
        for (int i = 0; i < e->num_children; i++) {
            r->children[i] = *next;
            int rc = build_raw(s, m, next, me, depth + 1, why, whylen);
            if (rc)
                return rc;
        }
    } else {
        if (e->type < 0 || e->type > 7) {
            snprintf(why, whylen, "column '%s' has unknown physical type %d", e->name, e->type);
            return -1;
        }
        if (e->type == 7 && (e->type_length <= 0 || e->type_length > (1 << 20))) {
            snprintf(why, whylen, "column '%s': FIXED_LEN_BYTE_ARRAY length %d", e->name, e->type_length);
            return -1;
        }
        r->leaf = true;
    }
    if (me != 0 && e->rep != 0 && e->rep != 1 && e->rep != 2 && e->rep != -1) {
        snprintf(why, whylen, "schema element '%s' has repetition %d", e->name, e->rep);
        return -1;
    }
    return 0;
}

static void fix_levels(pq_schema *s, const pq_meta *m, int me)
{
    pq_raw *r = &s->raw[me];
    const pq_selem *e = &m->elems[me];
    int pdef = r->parent >= 0 ? s->raw[r->parent].def : 0;
    int prep = r->parent >= 0 ? s->raw[r->parent].rep : 0;
    r->def = pdef;
    r->rep = prep;
    if (me != 0) {
        if (e->rep == 1) r->def++;
        else if (e->rep == 2) { r->def++; r->rep++; }
    }
    for (int i = 0; i < r->nchildren; i++)
        fix_levels(s, m, r->children[i]);
}

static pq_lnode *lnew(pq_schema *s)
{
    if (s->nl >= s->capl)
        return NULL;
    pq_lnode *n = &s->lnodes[s->nl++];
    memset(n, 0, sizeof *n);
    return n;
}

static void set_logical(pq_lnode *n, const pq_selem *e)
{
    sv_pq_rnode *p = &n->pub;
    switch (e->lt_id) {
    case 1: p->lt = SV_PQ_RLT_STRING; return;
    case 4: p->lt = SV_PQ_RLT_ENUM; return;
    case 5: p->lt = SV_PQ_RLT_DECIMAL; p->scale = e->lt_scale; p->precision = e->lt_precision; return;
    case 6: p->lt = SV_PQ_RLT_DATE; return;
    case 7: p->lt = SV_PQ_RLT_TIME; p->unit = (sv_pq_unit)e->lt_unit; p->utc = e->lt_utc; return;
    case 8: p->lt = SV_PQ_RLT_TIMESTAMP; p->unit = (sv_pq_unit)e->lt_unit; p->utc = e->lt_utc; return;
    case 10: p->lt = SV_PQ_RLT_INT; p->bits = e->lt_bits; p->is_signed = e->lt_signed; return;
    case 12: p->lt = SV_PQ_RLT_JSON; return;
    case 13: p->lt = SV_PQ_RLT_BSON; return;
    case 14: p->lt = SV_PQ_RLT_UUID; return;
    case 15: p->lt = SV_PQ_RLT_FLOAT16; return;
    default: break;
    }
    switch (e->conv) {
    case 0: p->lt = SV_PQ_RLT_STRING; break;
    case 4: p->lt = SV_PQ_RLT_ENUM; break;
    case 5: p->lt = SV_PQ_RLT_DECIMAL; p->scale = e->scale; p->precision = e->precision; break;
    case 6: p->lt = SV_PQ_RLT_DATE; break;
    case 7: p->lt = SV_PQ_RLT_TIME; p->unit = SV_PQ_MILLIS; p->utc = true; break;
    case 8: p->lt = SV_PQ_RLT_TIME; p->unit = SV_PQ_MICROS; p->utc = true; break;
    case 9: p->lt = SV_PQ_RLT_TIMESTAMP; p->unit = SV_PQ_MILLIS; p->utc = true; break;
    case 10: p->lt = SV_PQ_RLT_TIMESTAMP; p->unit = SV_PQ_MICROS; p->utc = true; break;
    case 11: case 12: case 13: case 14:
        p->lt = SV_PQ_RLT_INT; p->is_signed = false; p->bits = 8 << (e->conv - 11); break;
    case 15: case 16: case 17: case 18:
        p->lt = SV_PQ_RLT_INT; p->is_signed = true; p->bits = 8 << (e->conv - 15); break;
    case 19: p->lt = SV_PQ_RLT_JSON; break;
    case 20: p->lt = SV_PQ_RLT_BSON; break;
    default: break;
    }
}

static bool is_list_annot(const pq_selem *e) { return e->lt_id == 3 || e->conv == 3; }

/* Converts raw node ri into a logical node. rep_consumed: ri is repeated but
 * its repetition is already represented by the enclosing list node. */
static pq_lnode *convert(pq_schema *s, const pq_meta *m, int ri, bool rep_consumed, char *why, size_t whylen)
{
    const pq_raw *r = &s->raw[ri];
    const pq_selem *e = &m->elems[ri];
    pq_lnode *n = lnew(s);
    if (!n) {
        snprintf(why, whylen, "schema too large");
        return NULL;
    }
    n->pub.name = e->name;
    if (e->rep == 2 && !rep_consumed) {
        /* One-level list: a repeated field outside a LIST group. */
        n->pub.kind = SV_PQ_RLIST;
        n->pub.optional = false;
        n->def_at = r->def - 1;
        n->rep_level = r->rep;
        n->elem_def = r->def;
        pq_lnode *el = convert(s, m, ri, true, why, whylen);
        if (!el)
            return NULL;
        n->child[0] = el;
        n->pub.n_children = 1;
        return n;
    }
    n->pub.optional = e->rep == 1;
    n->def_at = r->def;
    if (r->leaf) {
        n->pub.kind = SV_PQ_RLEAF;
        n->pub.type = e->type == 3 ? SV_PQ_INT64 : (sv_pq_type)e->type;
        n->int96 = e->type == 3;
        n->pub.type_length = e->type_length;
        set_logical(n, e);
        if (n->int96) {
            n->pub.lt = SV_PQ_RLT_TIMESTAMP;
            n->pub.unit = SV_PQ_NANOS;
            n->pub.utc = true;
        }
        n->raw = ri;
        return n;
    }
    if (is_list_annot(e) && r->nchildren == 1 && m->elems[r->children[0]].rep == 2) {
        int ci = r->children[0];
        const pq_raw *rr = &s->raw[ci];
        const pq_selem *re = &m->elems[ci];
        n->pub.kind = SV_PQ_RLIST;
        n->rep_level = rr->rep;
        n->elem_def = rr->def;
        pq_lnode *el;
        char tuple[300];
        snprintf(tuple, sizeof tuple, "%s_tuple", e->name);
        if (rr->leaf || rr->nchildren != 1 || strcmp(re->name, "array") == 0 || strcmp(re->name, tuple) == 0)
            el = convert(s, m, ci, true, why, whylen); /* two-level */
        else
            el = convert(s, m, rr->children[0], false, why, whylen); /* three-level */
        if (!el)
            return NULL;
        n->child[0] = el;
        n->pub.n_children = 1;
        return n;
    }
    n->pub.kind = SV_PQ_RGROUP;
    n->kids = calloc((size_t)r->nchildren, sizeof *n->kids);
    if (!n->kids) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    n->pub.n_children = r->nchildren;
    for (int i = 0; i < r->nchildren; i++) {
        pq_lnode *c = convert(s, m, r->children[i], false, why, whylen);
        if (!c)
            return NULL;
        n->kids[i] = c;
    }
    return n;
}

static void wire_children(pq_lnode *n)
{
    if (n->pub.kind == SV_PQ_RLIST) {
        n->pub.children = (const sv_pq_rnode *const *)n->childp;
        n->childp[0] = &n->child[0]->pub;
        wire_children(n->child[0]);
    } else if (n->pub.kind == SV_PQ_RGROUP) {
        n->pub.children = (const sv_pq_rnode *const *)n->kidp;
        for (int i = 0; i < n->pub.n_children; i++) {
            n->kidp[i] = &n->kids[i]->pub;
            wire_children(n->kids[i]);
        }
    }
}

static int alloc_kidp(pq_lnode *n)
{
    if (n->pub.kind == SV_PQ_RGROUP) {
        n->kidp = calloc((size_t)n->pub.n_children, sizeof *n->kidp);
        if (!n->kidp)
            return -1;
        for (int i = 0; i < n->pub.n_children; i++)
            if (alloc_kidp(n->kids[i]))
                return -1;
    } else if (n->pub.kind == SV_PQ_RLIST) {
        return alloc_kidp(n->child[0]);
    }
    return 0;
}

/* Leaf paths: for each leaf (in column order) the logical nodes from a
 * top-level field down to it and the child index taken at each group. */
static int collect_paths(pq_schema *s, pq_lnode *n, int depth, pq_lnode **stack, int *idx, char *why, size_t whylen)
{
    stack[depth] = n;
    if (n->pub.kind == SV_PQ_RLEAF) {
        if (s->nleaves >= s->capleaves) {
            snprintf(why, whylen, "schema too large");
            return -1;
        }
        pq_leafpath *lp = &s->leaves[s->nleaves++];
        lp->depth = depth + 1;
        lp->raw = n->raw;
        for (int i = 0; i <= depth; i++) {
            lp->path[i] = stack[i];
            lp->idx[i] = idx[i];
        }
        return 0;
    }
    if (depth + 1 >= PQ_MAX_DEPTH * 2) {
        snprintf(why, whylen, "schema nested too deeply");
        return -1;
    }
    if (n->pub.kind == SV_PQ_RLIST) {
        idx[depth + 1] = 0;
        return collect_paths(s, n->child[0], depth + 1, stack, idx, why, whylen);
    }
    for (int i = 0; i < n->pub.n_children; i++) {
        idx[depth + 1] = i;
        if (collect_paths(s, n->kids[i], depth + 1, stack, idx, why, whylen))
            return -1;
    }
    return 0;
}

int pq_schema_build(pq_schema *s, const pq_meta *m, char *why, size_t whylen)
{
    memset(s, 0, sizeof *s);
    s->raw = calloc((size_t)m->nelems, sizeof *s->raw);
    s->nraw = m->nelems;
    /* a one-level list makes two logical nodes from one raw node */
    s->capl = 2 * m->nelems + 1;
    s->lnodes = calloc((size_t)s->capl, sizeof *s->lnodes);
    s->capleaves = m->nelems;
    s->leaves = calloc((size_t)s->capleaves, sizeof *s->leaves);
    if (!s->raw || !s->lnodes || !s->leaves) {
        snprintf(why, whylen, "out of memory");
        return -2;
    }
    int next = 0;
    int rc = build_raw(s, m, &next, -1, 0, why, whylen);
    if (rc)
        return rc;
    if (next != m->nelems) {
        snprintf(why, whylen, "schema has %d elements but the root's tree covers %d", m->nelems, next);
        return -1;
    }
    fix_levels(s, m, 0);
    for (int i = 0; i < s->nraw; i++)
        if (s->raw[i].def > 250 || s->raw[i].rep > 250) {
            snprintf(why, whylen, "schema levels too deep");
            return -1;
        }
    /* The root converts as a plain group. */
    pq_lnode *root = lnew(s);
    root->pub.name = m->elems[0].name;
    root->pub.kind = SV_PQ_RGROUP;
    const pq_raw *r0 = &s->raw[0];
    root->kids = calloc((size_t)r0->nchildren, sizeof *root->kids);
    if (!root->kids) {
        snprintf(why, whylen, "out of memory");
        return -2;
    }
    root->pub.n_children = r0->nchildren;
    for (int i = 0; i < r0->nchildren; i++) {
        pq_lnode *c = convert(s, m, r0->children[i], false, why, whylen);
        if (!c)
            return -1;
        root->kids[i] = c;
    }
    if (alloc_kidp(root)) {
        snprintf(why, whylen, "out of memory");
        return -2;
    }
    wire_children(root);
    s->root = root;
    pq_lnode *stack[PQ_MAX_DEPTH * 2];
    int idx[PQ_MAX_DEPTH * 2];
    for (int i = 0; i < root->pub.n_children; i++) {
        idx[0] = i;
        if (collect_paths(s, root->kids[i], 0, stack, idx, why, whylen))
            return -1;
    }
    /* Leaf columns in raw depth-first order are the chunk order; logical
     * traversal visits the same leaves in the same order. */
    for (int i = 0; i < s->nleaves; i++) {
        const pq_raw *lr = &s->raw[s->leaves[i].raw];
        s->leaves[i].max_def = lr->def;
        s->leaves[i].max_rep = lr->rep;
        if (i > 0 && s->leaves[i].raw <= s->leaves[i - 1].raw) {
            snprintf(why, whylen, "schema leaves out of order");
            return -1;
        }
    }
    return 0;
}

void pq_schema_free(pq_schema *s)
{
    for (int i = 0; i < s->nraw; i++)
        free(s->raw[i].children);
    free(s->raw);
    for (int i = 0; i < s->nl; i++) {
        free(s->lnodes[i].kids);
        free(s->lnodes[i].kidp);
    }
    free(s->lnodes);
    free(s->leaves);
    memset(s, 0, sizeof *s);
}
