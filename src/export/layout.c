/* Parquet row layouts ("typed" and "weaviate"), request options, key ranges. */
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"

/* ---- options ------------------------------------------------------------- */

static const char *schema_name(sv_export_schema_kind k)
{
    return k == SV_EXPORT_SCHEMA_WEAVIATE ? "weaviate" : "typed";
}

static const char *codec_name(sv_pq_codec c)
{
    return c == SV_PQ_CODEC_ZSTD ? "zstd" : c == SV_PQ_CODEC_SNAPPY ? "snappy" : "none";
}

int sv_export_file_opts_parse(json_t *o, sv_export_file_opts *out, sv_err *err)
{
    *out = (sv_export_file_opts){.schema = SV_EXPORT_SCHEMA_TYPED, .codec = SV_PQ_CODEC_ZSTD, .level = 0};
    if (!o || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return sv_fail(err, SV_EINVAL, "\"options\" must be an object");
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (!strcmp(k, "schema")) {
            const char *s = json_string_value(v);
            if (s && !strcmp(s, "typed"))
                out->schema = SV_EXPORT_SCHEMA_TYPED;
            else if (s && !strcmp(s, "weaviate"))
                out->schema = SV_EXPORT_SCHEMA_WEAVIATE;
            else
                return sv_fail(err, SV_EINVAL, "options.schema must be \"typed\" or \"weaviate\"");
        } else if (!strcmp(k, "compression")) {
            const char *s = json_string_value(v);
            if (s && !strcmp(s, "zstd"))
                out->codec = SV_PQ_CODEC_ZSTD;
            else if (s && !strcmp(s, "snappy"))
                out->codec = SV_PQ_CODEC_SNAPPY;
            else if (s && !strcmp(s, "none"))
                out->codec = SV_PQ_CODEC_NONE;
            else
                return sv_fail(err, SV_EINVAL, "options.compression must be \"zstd\", \"snappy\" or \"none\"");
        } else if (!strcmp(k, "compression_level")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 22)
                return sv_fail(err, SV_EINVAL, "options.compression_level must be an integer from 1 to 22 (zstd)");
            out->level = (int)json_integer_value(v);
        } else {
            return sv_fail(err, SV_EINVAL,
                           "options.%.64s is not an option (known: schema, compression, compression_level)", k);
        }
    }
    if (out->level && out->codec != SV_PQ_CODEC_ZSTD)
        return sv_fail(err, SV_EINVAL, "options.compression_level applies to zstd only");
    return 0;
}

json_t *sv_export_file_opts_json(const sv_export_file_opts *o)
{
    json_t *j = json_pack("{s:s,s:s}", "schema", schema_name(o->schema), "compression", codec_name(o->codec));
    if (j && o->level)
        json_object_set_new(j, "compression_level", json_integer(o->level));
    return j;
}

/* ---- key ranges ----------------------------------------------------------- */

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

void sv_export_range_bounds(uint32_t i, uint32_t n, uint8_t start[16], uint8_t end[16], bool *has_end)
{
    /* Splitting on the top 64 bits is exact enough: ranges differ by at most
     * 2^64 keys out of 2^128. */
    memset(start, 0, 16);
    memset(end, 0, 16);
    if (n == 0)
        n = 1;
    be64(start, (uint64_t)(((unsigned __int128)i << 64) / n));
    *has_end = i + 1 < n;
    if (*has_end)
        be64(end, (uint64_t)(((unsigned __int128)(i + 1) << 64) / n));
}

uint32_t sv_export_range_count(int64_t objects, int64_t rows_per_file)
{
    if (objects <= 0 || rows_per_file <= 0)
        return 1;
    int64_t n = (objects + rows_per_file - 1) / rows_per_file;
    return n > 9999 ? 9999 : (uint32_t)n; /* the file name has four digits */
}

/* ---- layouts -------------------------------------------------------------- */

struct sv_export_layout {
    sv_export_schema_kind kind;
    const sv_schema *s; /* borrowed: the capture's schema outlives the layout */
    sv_pq_schema *pq;
    char *description;
    int id, ct, ut, vec, props_group, props_json;
    int *named, *multi, *props; /* node per declared name/property */
    int named_json, multi_json, props_blob; /* weaviate layout */
};

void sv_export_scratch_free(sv_export_scratch *x)
{
    sv_buf_free(&x->buf);
    free(x->ptrs);
    free(x->lens);
    memset(x, 0, sizeof *x);
}

void sv_export_layout_free(sv_export_layout *l)
{
    if (!l)
        return;
    sv_pq_schema_free(l->pq);
    free(l->description);
    free(l->named);
    free(l->multi);
    free(l->props);
    free(l);
}

const sv_pq_schema *sv_export_layout_pq(const sv_export_layout *l) { return l->pq; }
const char *sv_export_layout_description(const sv_export_layout *l) { return l->description; }

static json_t *col(const char *name, const char *type) { return json_pack("{s:s,s:s}", "name", name, "type", type); }

static const char *typed_name(sv_prop_type t)
{
    switch (t) {
    case SV_TYPE_TEXT: return "STRING";
    case SV_TYPE_INT: return "INT64";
    case SV_TYPE_NUMBER: return "DOUBLE";
    case SV_TYPE_BOOLEAN: return "BOOLEAN";
    case SV_TYPE_DATE: return "TIMESTAMP_MILLIS_UTC";
    case SV_TYPE_UUID: return "STRING";
    case SV_TYPE_OBJECT: return "JSON";
    }
    return "?";
}

/* Adds the leaf for one value of a declared property under parent. */
static int prop_leaf(sv_pq_schema *pq, int parent, const char *name, sv_prop_type t, unsigned flags, sv_err *err)
{
    switch (t) {
    case SV_TYPE_TEXT:
        return sv_pq_schema_leaf(pq, parent, name, SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, flags | SV_PQ_DICT, err);
    case SV_TYPE_UUID:
        return sv_pq_schema_leaf(pq, parent, name, SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, flags, err);
    case SV_TYPE_INT: return sv_pq_schema_leaf(pq, parent, name, SV_PQ_INT64, SV_PQ_LT_NONE, 0, flags, err);
    case SV_TYPE_NUMBER: return sv_pq_schema_leaf(pq, parent, name, SV_PQ_DOUBLE, SV_PQ_LT_NONE, 0, flags, err);
    case SV_TYPE_BOOLEAN: return sv_pq_schema_leaf(pq, parent, name, SV_PQ_BOOLEAN, SV_PQ_LT_NONE, 0, flags, err);
    case SV_TYPE_DATE:
        return sv_pq_schema_leaf(pq, parent, name, SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS, 0, flags, err);
    case SV_TYPE_OBJECT:
        return sv_pq_schema_leaf(pq, parent, name, SV_PQ_BYTE_ARRAY, SV_PQ_LT_JSON, 0, flags, err);
    }
    return sv_fail(err, SV_EINTERNAL, "unknown property type %d", (int)t);
}

#define CHECK(expr)                                                                                                    \
    do {                                                                                                               \
        if ((rc = (expr)) < 0)                                                                                         \
            goto fail;                                                                                                 \
    } while (0)

static int build_typed(sv_export_layout *l, json_t *cols, sv_err *err)
{
    const sv_schema *s = l->s;
    sv_pq_schema *pq = l->pq;
    int rc, n;
    CHECK(l->id = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "id", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, 0, err));
    CHECK(l->ct = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "creation_time", SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS, 0, 0, err));
    CHECK(l->ut = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "update_time", SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS, 0, 0, err));
    CHECK(l->vec = sv_pq_schema_list(pq, SV_PQ_ROOT, "vector", SV_PQ_OPTIONAL, s->vector_dim, err));
    CHECK(sv_pq_schema_leaf(pq, l->vec, "element", SV_PQ_FLOAT, SV_PQ_LT_NONE, 0, 0, err));
    json_array_append_new(cols, col("id", "STRING"));
    json_array_append_new(cols, col("creation_time", "TIMESTAMP_MILLIS_UTC"));
    json_array_append_new(cols, col("update_time", "TIMESTAMP_MILLIS_UTC"));
    json_t *vc = col("vector", "LIST<FLOAT>");
    json_object_set_new(vc, "dim", json_integer(s->vector_dim));
    json_array_append_new(cols, vc);
    /* Groups exist only when something is declared: Parquet has no empty
     * groups. They are required; their members are optional. */
    if (s->n_named) {
        CHECK(n = sv_pq_schema_group(pq, SV_PQ_ROOT, "named_vectors", 0, err));
        for (uint32_t i = 0; i < s->n_named; i++) {
            CHECK(l->named[i] = sv_pq_schema_list(pq, n, s->named[i].name, SV_PQ_OPTIONAL, s->named[i].dim, err));
            CHECK(sv_pq_schema_leaf(pq, l->named[i], "element", SV_PQ_FLOAT, SV_PQ_LT_NONE, 0, 0, err));
            char name[128];
            snprintf(name, sizeof name, "named_vectors.%s", s->named[i].name);
            json_t *c = col(name, "LIST<FLOAT>");
            json_object_set_new(c, "dim", json_integer(s->named[i].dim));
            json_array_append_new(cols, c);
        }
    }
    if (s->n_multi) {
        CHECK(n = sv_pq_schema_group(pq, SV_PQ_ROOT, "multi_vectors", 0, err));
        for (uint32_t i = 0; i < s->n_multi; i++) {
            CHECK(l->multi[i] = sv_pq_schema_list(pq, n, s->multi[i].name, SV_PQ_OPTIONAL, 0, err));
            int inner;
            CHECK(inner = sv_pq_schema_list(pq, l->multi[i], "element", 0, s->multi[i].dim, err));
            CHECK(sv_pq_schema_leaf(pq, inner, "element", SV_PQ_FLOAT, SV_PQ_LT_NONE, 0, 0, err));
            char name[128];
            snprintf(name, sizeof name, "multi_vectors.%s", s->multi[i].name);
            json_t *c = col(name, "LIST<LIST<FLOAT>>");
            json_object_set_new(c, "dim", json_integer(s->multi[i].dim));
            json_array_append_new(cols, c);
        }
    }
    if (s->n_props) {
        CHECK(l->props_group = sv_pq_schema_group(pq, SV_PQ_ROOT, "properties", 0, err));
        for (uint32_t i = 0; i < s->n_props; i++) {
            const sv_prop_def *d = &s->props[i];
            char name[128], type[64];
            snprintf(name, sizeof name, "properties.%s", d->name);
            if (d->array) {
                CHECK(l->props[i] = sv_pq_schema_list(pq, l->props_group, d->name, SV_PQ_OPTIONAL, 0, err));
                CHECK(prop_leaf(pq, l->props[i], "element", d->type, 0, err));
                snprintf(type, sizeof type, "LIST<%s>", typed_name(d->type));
            } else {
                CHECK(l->props[i] = prop_leaf(pq, l->props_group, d->name, d->type, SV_PQ_OPTIONAL, err));
                snprintf(type, sizeof type, "%s", typed_name(d->type));
            }
            json_t *c = col(name, type);
            json_object_set_new(c, "property_type", json_string(sv_prop_type_name(d->type, d->array)));
            json_array_append_new(cols, c);
        }
    }
    CHECK(l->props_json = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "properties_json", SV_PQ_BYTE_ARRAY, SV_PQ_LT_JSON, 0,
                                            SV_PQ_OPTIONAL, err));
    json_array_append_new(cols, col("properties_json", "JSON"));
    return 0;
fail:
    return rc;
}

static int build_weaviate(sv_export_layout *l, json_t *cols, sv_err *err)
{
    sv_pq_schema *pq = l->pq;
    int rc;
    /* Exactly Weaviate's ParquetRow: raw bytes, no logical types but id's. */
    CHECK(l->id = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "id", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, SV_PQ_DICT, err));
    CHECK(l->ct = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "creation_time", SV_PQ_INT64, SV_PQ_LT_NONE, 0, 0, err));
    CHECK(l->ut = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "update_time", SV_PQ_INT64, SV_PQ_LT_NONE, 0, 0, err));
    CHECK(l->vec =
              sv_pq_schema_leaf(pq, SV_PQ_ROOT, "vector", SV_PQ_BYTE_ARRAY, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, err));
    CHECK(l->named_json = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "named_vectors", SV_PQ_BYTE_ARRAY, SV_PQ_LT_NONE, 0,
                                            SV_PQ_OPTIONAL, err));
    CHECK(l->multi_json = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "multi_vectors", SV_PQ_BYTE_ARRAY, SV_PQ_LT_NONE, 0,
                                            SV_PQ_OPTIONAL, err));
    CHECK(l->props_blob = sv_pq_schema_leaf(pq, SV_PQ_ROOT, "properties", SV_PQ_BYTE_ARRAY, SV_PQ_LT_NONE, 0,
                                            SV_PQ_OPTIONAL, err));
    json_array_append_new(cols, col("id", "STRING"));
    json_array_append_new(cols, col("creation_time", "INT64 (ms since epoch)"));
    json_array_append_new(cols, col("update_time", "INT64 (ms since epoch)"));
    json_array_append_new(cols, col("vector", "BYTE_ARRAY (little-endian float32)"));
    json_array_append_new(cols, col("named_vectors", "BYTE_ARRAY (JSON {name:[float]})"));
    json_array_append_new(cols, col("multi_vectors", "BYTE_ARRAY (JSON {name:[[float]]})"));
    json_array_append_new(cols, col("properties", "BYTE_ARRAY (JSON object)"));
    return 0;
fail:
    return rc;
}

int sv_export_layout_new(const sv_schema *s, sv_export_schema_kind kind, sv_export_layout **out, sv_err *err)
{
    *out = NULL;
    sv_export_layout *l = calloc(1, sizeof *l);
    if (!l)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    l->kind = kind;
    l->s = s;
    l->pq = sv_pq_schema_new();
    l->named = calloc(s->n_named + 1, sizeof *l->named);
    l->multi = calloc(s->n_multi + 1, sizeof *l->multi);
    l->props = calloc(s->n_props + 1, sizeof *l->props);
    json_t *cols = json_array();
    if (!l->pq || !l->named || !l->multi || !l->props || !cols) {
        json_decref(cols);
        sv_export_layout_free(l);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    int rc = kind == SV_EXPORT_SCHEMA_TYPED ? build_typed(l, cols, err) : build_weaviate(l, cols, err);
    if (rc == 0) {
        char *sj = sv_schema_to_json(s);
        json_t *coll = sj ? json_loads(sj, 0, NULL) : NULL;
        free(sj);
        json_t *d = json_pack("{s:i,s:s,s:o,s:o*}", "format_version", 1, "schema", schema_name(kind), "columns",
                              cols, "collection", coll);
        cols = NULL;
        l->description = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(d);
        if (!l->description)
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
    }
    json_decref(cols);
    if (rc) {
        sv_export_layout_free(l);
        return rc < 0 ? rc : SV_EINTERNAL;
    }
    *out = l;
    return 0;
}

/* ---- appending ------------------------------------------------------------- */

static int grow_ptrs(sv_export_scratch *l, size_t n)
{
    if (n <= l->cap)
        return 0;
    size_t cap = l->cap ? l->cap : 16;
    while (cap < n)
        cap *= 2;
    const void **p = realloc(l->ptrs, cap * sizeof *p);
    if (!p)
        return SV_ENOMEM;
    l->ptrs = p;
    uint32_t *q = realloc(l->lens, cap * sizeof *q);
    if (!q)
        return SV_ENOMEM;
    l->lens = q;
    l->cap = cap;
    return 0;
}

static int append_prop(sv_export_scratch *l, sv_pq_writer *w, int node, const sv_prop_def *d, const sv_prop_value *v,
                       sv_err *err)
{
    if (!v->present)
        return sv_pq_append_null(w, node, err);
    if (!d->array) {
        switch (d->type) {
        case SV_TYPE_TEXT:
        case SV_TYPE_OBJECT: return sv_pq_append_str(w, node, v->str[0].ptr, v->str[0].len, err);
        case SV_TYPE_INT:
        case SV_TYPE_DATE: return sv_pq_append_i64(w, node, v->i64[0], err);
        case SV_TYPE_NUMBER: return sv_pq_append_double(w, node, v->f64[0], err);
        case SV_TYPE_BOOLEAN: return sv_pq_append_bool(w, node, v->b[0] != 0, err);
        case SV_TYPE_UUID: {
            char u[37];
            sv_uuid_format(&v->uuid[0], u);
            return sv_pq_append_str(w, node, u, 36, err);
        }
        }
        return sv_fail(err, SV_EINTERNAL, "unknown property type");
    }
    switch (d->type) {
    case SV_TYPE_INT:
    case SV_TYPE_DATE: return sv_pq_append_list(w, node, v->i64, NULL, v->count, err);
    case SV_TYPE_NUMBER: return sv_pq_append_list(w, node, v->f64, NULL, v->count, err);
    case SV_TYPE_BOOLEAN: return sv_pq_append_list(w, node, v->b, NULL, v->count, err);
    case SV_TYPE_TEXT:
    case SV_TYPE_OBJECT:
        if (grow_ptrs(l, v->count))
            return sv_fail(err, SV_ENOMEM, "out of memory");
        for (uint32_t i = 0; i < v->count; i++) {
            l->ptrs[i] = v->str[i].ptr;
            l->lens[i] = v->str[i].len;
        }
        return sv_pq_append_list_bytes(w, node, l->ptrs, l->lens, v->count, err);
    case SV_TYPE_UUID:
        if (grow_ptrs(l, v->count))
            return sv_fail(err, SV_ENOMEM, "out of memory");
        sv_buf_reset(&l->buf);
        if (sv_buf_reserve(&l->buf, (size_t)v->count * 37 + 1))
            return sv_fail(err, SV_ENOMEM, "out of memory");
        for (uint32_t i = 0; i < v->count; i++) {
            char *p = (char *)l->buf.data + (size_t)i * 37;
            sv_uuid_format(&v->uuid[i], p);
            l->ptrs[i] = p;
            l->lens[i] = 36;
        }
        return sv_pq_append_list_bytes(w, node, l->ptrs, l->lens, v->count, err);
    }
    return sv_fail(err, SV_EINTERNAL, "unknown property type");
}

static int append_typed(const sv_export_layout *l, sv_export_scratch *x, sv_pq_writer *w, const sv_record *r,
                        sv_err *err)
{
    const sv_schema *s = l->s;
    int rc = 0;
    if (r->vector && s->vector_dim)
        CHECK(sv_pq_append_list(w, l->vec, r->vector, NULL, s->vector_dim, err));
    else
        CHECK(sv_pq_append_null(w, l->vec, err));
    for (uint32_t i = 0; i < s->n_named; i++) {
        if (r->named[i])
            CHECK(sv_pq_append_list(w, l->named[i], r->named[i], NULL, s->named[i].dim, err));
        else
            CHECK(sv_pq_append_null(w, l->named[i], err));
    }
    for (uint32_t i = 0; i < s->n_multi; i++) {
        if (r->multi[i]) {
            uint32_t rows = r->multi_rows[i];
            if (grow_ptrs(x, rows))
                return sv_fail(err, SV_ENOMEM, "out of memory");
            for (uint32_t k = 0; k < rows; k++)
                x->lens[k] = s->multi[i].dim;
            CHECK(sv_pq_append_list2(w, l->multi[i], r->multi[i], x->lens, rows, err));
        } else {
            CHECK(sv_pq_append_null(w, l->multi[i], err));
        }
    }
    for (uint32_t i = 0; i < s->n_props; i++)
        CHECK(append_prop(x, w, l->props[i], &s->props[i], &r->props[i], err));
    if (r->extra_json.len > 2) /* "{}" carries nothing */
        CHECK(sv_pq_append_str(w, l->props_json, r->extra_json.ptr, r->extra_json.len, err));
    else
        CHECK(sv_pq_append_null(w, l->props_json, err));
    return 0;
fail:
    return rc;
}

static int append_blob(sv_pq_writer *w, int node, sv_buf *b, size_t from, sv_err *err)
{
    if (b->len == from)
        return sv_pq_append_null(w, node, err);
    return sv_pq_append_str(w, node, b->data + from, b->len - from, err);
}

static int append_weaviate(const sv_export_layout *l, sv_export_scratch *x, sv_pq_writer *w, const sv_record *r,
                           sv_err *err)
{
    const sv_schema *s = l->s;
    int rc = 0;
    if (r->vector && s->vector_dim) {
        /* float32 is little-endian on every platform shardvault builds for
         * (x86-64, aarch64), so the array's bytes are the wire format. */
        CHECK(sv_pq_append_str(w, l->vec, r->vector, (size_t)s->vector_dim * 4, err));
    } else {
        CHECK(sv_pq_append_null(w, l->vec, err));
    }
    sv_buf *b = &x->buf;
    sv_buf_reset(b);
    if (sv_record_named_json(r, s, b))
        return sv_fail(err, SV_ENOMEM, "out of memory");
    CHECK(append_blob(w, l->named_json, b, 0, err));
    sv_buf_reset(b);
    if (sv_record_multi_json(r, s, b))
        return sv_fail(err, SV_ENOMEM, "out of memory");
    CHECK(append_blob(w, l->multi_json, b, 0, err));
    sv_buf_reset(b);
    if (sv_record_properties_json(r, s, b))
        return sv_fail(err, SV_ENOMEM, "out of memory");
    CHECK(append_blob(w, l->props_blob, b, 0, err));
    return 0;
fail:
    return rc;
}

int sv_export_layout_append(const sv_export_layout *l, sv_export_scratch *x, sv_pq_writer *w, const sv_record *r,
                            sv_err *err)
{
    char id[37];
    sv_uuid_format(&r->id, id);
    int rc = 0;
    CHECK(sv_pq_append_str(w, l->id, id, 36, err));
    CHECK(sv_pq_append_i64(w, l->ct, r->creation_time, err));
    CHECK(sv_pq_append_i64(w, l->ut, r->update_time, err));
    CHECK(l->kind == SV_EXPORT_SCHEMA_TYPED ? append_typed(l, x, w, r, err) : append_weaviate(l, x, w, r, err));
    return sv_pq_writer_end_row(w, err);
fail:
    return rc;
}
