/* Schema builder: a tree of nodes kept in one array (node 0 is the root). */
#include "parquet_internal.h"

#include <stdlib.h>
#include <string.h>

sv_pq_schema *sv_pq_schema_new(void)
{
    sv_pq_schema *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cap = 16;
    s->nodes = calloc((size_t)s->cap, sizeof *s->nodes);
    if (!s->nodes) {
        free(s);
        return NULL;
    }
    s->n = 1;
    s->nodes[0].kind = PQ_ROOT;
    s->nodes[0].parent = -1;
    s->nodes[0].first_child = s->nodes[0].last_child = s->nodes[0].next = -1;
    return s;
}

void sv_pq_schema_free(sv_pq_schema *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        free(s->nodes[i].name);
    free(s->nodes);
    free(s);
}

static int add_node(sv_pq_schema *s, int parent, const char *name, int kind, unsigned flags,
                    sv_err *err)
{
    if (!s)
        return sv_fail(err, SV_EINVAL, "parquet schema: no schema");
    if (parent < 0 || parent >= s->n)
        return sv_fail(err, SV_EINVAL, "parquet schema: parent %d does not exist", parent);
    pq_node *p = &s->nodes[parent];
    if (p->kind == PQ_LEAF)
        return sv_fail(err, SV_EINVAL, "parquet schema: parent '%s' is a leaf, not a group",
                       p->name);
    if (p->kind == PQ_LIST) {
        if (p->first_child >= 0)
            return sv_fail(err, SV_EINVAL, "parquet schema: list '%s' already has an element",
                           p->name);
        if (kind == PQ_GROUP)
            return sv_fail(err, SV_EINVAL,
                           "parquet schema: list '%s': elements must be leaves or lists",
                           p->name);
        name = "element";
    }
    if (!name || !*name || strlen(name) > 255)
        return sv_fail(err, SV_EINVAL, "parquet schema: a column name must be 1..255 bytes");
    for (int c = p->first_child; c >= 0; c = s->nodes[c].next)
        if (strcmp(s->nodes[c].name, name) == 0)
            return sv_fail(err, SV_EINVAL, "parquet schema: duplicate column name '%s'", name);
    if (flags & ~(SV_PQ_OPTIONAL | SV_PQ_DICT))
        return sv_fail(err, SV_EINVAL, "parquet schema: '%s': unknown flags 0x%x", name, flags);
    if (s->n == s->cap) {
        pq_node *nn = realloc(s->nodes, (size_t)s->cap * 2 * sizeof *nn);
        if (!nn)
            return sv_fail(err, SV_ENOMEM, "parquet schema: out of memory");
        s->nodes = nn;
        s->cap *= 2;
    }
    int id = s->n;
    pq_node *n = &s->nodes[id];
    memset(n, 0, sizeof *n);
    n->name = strdup(name);
    if (!n->name)
        return sv_fail(err, SV_ENOMEM, "parquet schema: out of memory");
    n->kind = kind;
    n->parent = parent;
    n->flags = flags;
    n->first_child = n->last_child = n->next = -1;
    p = &s->nodes[parent];
    if (p->last_child >= 0)
        s->nodes[p->last_child].next = id;
    else
        p->first_child = id;
    p->last_child = id;
    p->n_children++;
    s->n++;
    return id;
}

int sv_pq_schema_leaf(sv_pq_schema *s, int parent, const char *name, sv_pq_type type,
                      sv_pq_logical lt, int type_length, unsigned flags, sv_err *err)
{
    const char *nm = name ? name : "?";
    switch (type) {
    case SV_PQ_BOOLEAN: case SV_PQ_INT32: case SV_PQ_INT64: case SV_PQ_FLOAT:
    case SV_PQ_DOUBLE: case SV_PQ_BYTE_ARRAY:
        type_length = 0;
        break;
    case SV_PQ_FIXED_LEN_BYTE_ARRAY:
        if (lt == SV_PQ_LT_UUID)
            type_length = 16;
        if (type_length <= 0 || type_length > (1 << 20))
            return sv_fail(err, SV_EINVAL,
                           "parquet schema: '%s': FIXED_LEN_BYTE_ARRAY needs a length 1..1Mi", nm);
        break;
    default:
        return sv_fail(err, SV_EINVAL, "parquet schema: '%s': unsupported physical type %d", nm,
                       (int)type);
    }
    bool ok;
    switch (lt) {
    case SV_PQ_LT_NONE: ok = true; break;
    case SV_PQ_LT_STRING: case SV_PQ_LT_JSON: ok = type == SV_PQ_BYTE_ARRAY; break;
    case SV_PQ_LT_UUID: ok = type == SV_PQ_FIXED_LEN_BYTE_ARRAY; break;
    case SV_PQ_LT_TIMESTAMP_MS: ok = type == SV_PQ_INT64; break;
    default:
        return sv_fail(err, SV_EINVAL, "parquet schema: '%s': unknown logical type %d", nm,
                       (int)lt);
    }
    if (!ok)
        return sv_fail(err, SV_EINVAL,
                       "parquet schema: '%s': logical type %d does not fit physical type %d "
                       "(STRING/JSON need BYTE_ARRAY, UUID FIXED_LEN_BYTE_ARRAY, TIMESTAMP INT64)",
                       nm, (int)lt, (int)type);
    int id = add_node(s, parent, name, PQ_LEAF, flags, err);
    if (id < 0)
        return id;
    s->nodes[id].type = type;
    s->nodes[id].lt = lt;
    s->nodes[id].type_length = type_length;
    return id;
}

int sv_pq_schema_group(sv_pq_schema *s, int parent, const char *name, unsigned flags,
                       sv_err *err)
{
    if (flags & SV_PQ_DICT)
        return sv_fail(err, SV_EINVAL, "parquet schema: '%s': SV_PQ_DICT is for leaves",
                       name ? name : "?");
    return add_node(s, parent, name, PQ_GROUP, flags, err);
}

int sv_pq_schema_list(sv_pq_schema *s, int parent, const char *name, unsigned flags,
                      uint32_t list_len, sv_err *err)
{
    if (flags & SV_PQ_DICT)
        return sv_fail(err, SV_EINVAL, "parquet schema: '%s': SV_PQ_DICT is for leaves",
                       name ? name : "?");
    int id = add_node(s, parent, name, PQ_LIST, flags, err);
    if (id >= 0)
        s->nodes[id].list_len = list_len;
    return id;
}
