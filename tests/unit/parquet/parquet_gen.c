/* parquet_gen IN.json OUT.parquet — test tool: writes the rows described in
 * IN.json with the parquet writer, so independent readers can check them.
 *
 * IN.json: {"options": {"codec": "zstd"|"snappy"|"none", "level", "row_group_rows",
 *                       "row_group_bytes", "page_bytes", "dict_bytes", "kv": {k: v}},
 *           "schema": [field...], "rows": [{name: value}...]}
 * field: {"name", "optional": bool, "dict": bool, "len": n,
 *         "type": "boolean"|"int32"|"int64"|"float"|"double"|"string"|"json"|"uuid"|
 *                 "timestamp"|"bytes"|"fixed"    (a leaf)
 *         | "children": [field...]                (a group)
 *         | "element": field                       (a list; "len" = fixed list length)}
 * Values: int64/timestamp as decimal strings, bytes/fixed as hex, uuid canonical,
 * float/double numbers, null or absent = null.
 * Exit 0 on success; 1 with the writer's message on stderr otherwise. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parquet.h"

static sv_pq_writer *W;

/* Loaded with JSON_DECODE_INT_AS_REAL: doubles like 1e19 print as integers. */
static int64_t jnum(const json_t *j) { return (int64_t)json_number_value(j); }

static sv_err E;

#define DIE(...) do { fprintf(stderr, "parquet_gen: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)
#define CHECK(x) do { if ((x) < 0) DIE("%s", E.msg); } while (0)

static int leaf_type(const char *t, sv_pq_type *pt, sv_pq_logical *lt)
{
    static const struct { const char *n; sv_pq_type p; sv_pq_logical l; } m[] = {
        {"boolean", SV_PQ_BOOLEAN, 0}, {"int32", SV_PQ_INT32, 0}, {"int64", SV_PQ_INT64, 0},
        {"float", SV_PQ_FLOAT, 0}, {"double", SV_PQ_DOUBLE, 0},
        {"string", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING}, {"json", SV_PQ_BYTE_ARRAY, SV_PQ_LT_JSON},
        {"uuid", SV_PQ_FIXED_LEN_BYTE_ARRAY, SV_PQ_LT_UUID},
        {"timestamp", SV_PQ_INT64, SV_PQ_LT_TIMESTAMP_MS}, {"bytes", SV_PQ_BYTE_ARRAY, 0},
        {"fixed", SV_PQ_FIXED_LEN_BYTE_ARRAY, 0}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (strcmp(t, m[i].n) == 0) {
            *pt = m[i].p;
            *lt = m[i].l;
            return 0;
        }
    return -1;
}

static void build(sv_pq_schema *s, int parent, json_t *f)
{
    const char *name = json_string_value(json_object_get(f, "name"));
    unsigned flags = (json_is_true(json_object_get(f, "optional")) ? SV_PQ_OPTIONAL : 0) |
                     (json_is_true(json_object_get(f, "dict")) ? SV_PQ_DICT : 0);
    int len = (int)jnum(json_object_get(f, "len"));
    json_t *kids = json_object_get(f, "children"), *el = json_object_get(f, "element");
    int id;
    if (kids) {
        CHECK(id = sv_pq_schema_group(s, parent, name, flags, &E));
        size_t i;
        json_t *k;
        json_array_foreach(kids, i, k) build(s, id, k);
    } else if (el) {
        CHECK(id = sv_pq_schema_list(s, parent, name, flags, (uint32_t)len, &E));
        build(s, id, el);
    } else {
        sv_pq_type pt;
        sv_pq_logical lt;
        const char *t = json_string_value(json_object_get(f, "type"));
        if (!t || leaf_type(t, &pt, &lt))
            DIE("field '%s': unknown type", name ? name : "?");
        CHECK(id = sv_pq_schema_leaf(s, parent, name, pt, lt, len, flags, &E));
    }
    json_object_set_new(f, "_id", json_real(id));
}

static int node_of(json_t *f) { return (int)jnum(json_object_get(f, "_id")); }

/* A leaf value as bytes: fixed-width in the API layout, or byte arrays. */
static size_t leaf_bytes(json_t *f, json_t *v, uint8_t *out, size_t cap)
{
    const char *t = json_string_value(json_object_get(f, "type"));
    if (!strcmp(t, "boolean")) { out[0] = json_is_true(v); return 1; }
    if (!strcmp(t, "int32")) { int32_t x = (int32_t)jnum(v); memcpy(out, &x, 4); return 4; }
    if (!strcmp(t, "int64") || !strcmp(t, "timestamp")) {
        int64_t x = json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : jnum(v);
        memcpy(out, &x, 8);
        return 8;
    }
    if (!strcmp(t, "float")) { float x = (float)json_number_value(v); memcpy(out, &x, 4); return 4; }
    if (!strcmp(t, "double")) { double x = json_number_value(v); memcpy(out, &x, 8); return 8; }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (!s)
        DIE("field '%s': expected a string value", json_string_value(json_object_get(f, "name")));
    if (!strcmp(t, "uuid")) {
        sv_uuid u;
        if (sv_uuid_parse(s, n, &u))
            DIE("bad uuid %s", s);
        memcpy(out, u.b, 16);
        return 16;
    }
    if (!strcmp(t, "bytes") || !strcmp(t, "fixed")) {
        if (n / 2 > cap)
            DIE("value too long");
        for (size_t i = 0; i < n / 2; i++) {
            unsigned x;
            sscanf(s + 2 * i, "%2x", &x);
            out[i] = (uint8_t)x;
        }
        return n / 2;
    }
    if (n > cap)
        DIE("value too long");
    memcpy(out, s, n);
    return n;
}

static bool is_fixed(json_t *f)
{
    const char *t = json_string_value(json_object_get(f, "type"));
    return t && strcmp(t, "string") && strcmp(t, "json") && strcmp(t, "uuid") &&
           strcmp(t, "bytes") && strcmp(t, "fixed");
}

static uint8_t *scratch;
static json_t *ZERO;
#define SCRATCH (64u << 20)

static void write_field(json_t *f, json_t *v)
{
    int node = node_of(f);
    if (!v || json_is_null(v)) {
        CHECK(sv_pq_append_null(W, node, &E));
        return;
    }
    json_t *kids = json_object_get(f, "children"), *el = json_object_get(f, "element");
    if (kids) {
        size_t i;
        json_t *k;
        json_array_foreach(kids, i, k)
            write_field(k, json_object_get(v, json_string_value(json_object_get(k, "name"))));
        return;
    }
    size_t n = json_array_size(v);
    if (el && json_object_get(el, "element")) { /* list<list<fixed>> */
        json_t *inner = json_object_get(el, "element");
        uint32_t *lens = malloc((n + 1) * sizeof *lens);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *l = json_array_get(v, i);
            if (json_is_null(l)) {
                lens[i] = SV_PQ_NULL_LIST;
                continue;
            }
            lens[i] = (uint32_t)json_array_size(l);
            for (size_t j = 0; j < lens[i]; j++)
                off += leaf_bytes(inner, json_array_get(l, j), scratch + off, SCRATCH - off);
        }
        CHECK(sv_pq_append_list2(W, node, scratch, lens, n, &E));
        free(lens);
        return;
    }
    if (el && is_fixed(el)) {
        uint8_t *valid = malloc(n + 1);
        size_t off = 0, w = 0;
        bool any_null = false;
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_array_get(v, i);
            valid[i] = !json_is_null(x);
            any_null |= !valid[i];
            uint8_t tmp[8] = {0};
            w = leaf_bytes(el, valid[i] ? x : ZERO, tmp, 8);
            memcpy(scratch + off, tmp, w);
            off += w;
        }
        CHECK(sv_pq_append_list(W, node, scratch, any_null ? valid : NULL, n, &E));
        free(valid);
        return;
    }
    if (el) {
        const void **ptrs = malloc((n + 1) * sizeof *ptrs);
        uint32_t *lens = malloc((n + 1) * sizeof *lens);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_array_get(v, i);
            if (json_is_null(x)) {
                ptrs[i] = NULL;
                lens[i] = 0;
                continue;
            }
            lens[i] = (uint32_t)leaf_bytes(el, x, scratch + off, SCRATCH - off);
            ptrs[i] = scratch + off;
            off += lens[i];
        }
        CHECK(sv_pq_append_list_bytes(W, node, ptrs, lens, n, &E));
        free(ptrs);
        free(lens);
        return;
    }
    size_t len = leaf_bytes(f, v, scratch, SCRATCH);
    if (is_fixed(f)) {
        CHECK(sv_pq_append_values(W, node, scratch, NULL, 1, &E));
    } else {
        const void *p = scratch;
        uint32_t l = (uint32_t)len;
        CHECK(sv_pq_append_bytes(W, node, &p, &l, 1, &E));
    }
}

static int file_write(void *ud, const void *d, size_t n, sv_err *err)
{
    if (fwrite(d, 1, n, ud) != n)
        return sv_fail(err, SV_EIO, "write failed");
    return 0;
}

static int file_close(void *ud, sv_err *err)
{
    if (fclose(ud))
        return sv_fail(err, SV_EIO, "close failed");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        DIE("usage: parquet_gen IN.json OUT.parquet");
    json_error_t je;
    json_t *root = json_load_file(argv[1], JSON_DECODE_INT_AS_REAL, &je);
    if (!root)
        DIE("%s:%d: %s", argv[1], je.line, je.text);
    scratch = malloc(SCRATCH);
    ZERO = json_real(0);
    json_t *o = json_object_get(root, "options");
    sv_pq_options opt = {0};
    const char *codec = json_string_value(json_object_get(o, "codec"));
    opt.codec = !codec || !strcmp(codec, "none") ? SV_PQ_CODEC_NONE
              : !strcmp(codec, "zstd") ? SV_PQ_CODEC_ZSTD : SV_PQ_CODEC_SNAPPY;
    opt.level = (int)jnum(json_object_get(o, "level"));
    opt.row_group_rows = jnum(json_object_get(o, "row_group_rows"));
    opt.row_group_bytes = jnum(json_object_get(o, "row_group_bytes"));
    opt.page_bytes = jnum(json_object_get(o, "page_bytes"));
    opt.dict_bytes = jnum(json_object_get(o, "dict_bytes"));
    json_t *kv = json_object_get(o, "kv");
    sv_pq_kv kvs[32];
    const char *k;
    json_t *val;
    json_object_foreach(kv, k, val) {
        if (opt.n_kv < 32)
            kvs[opt.n_kv++] = (sv_pq_kv){k, json_string_value(val)};
    }
    opt.kv = kvs;

    sv_pq_schema *s = sv_pq_schema_new();
    json_t *fields = json_object_get(root, "schema"), *f;
    size_t i;
    json_array_foreach(fields, i, f) build(s, SV_PQ_ROOT, f);
    FILE *fp = fopen(argv[2], "wb");
    if (!fp)
        DIE("cannot open %s", argv[2]);
    sv_pq_sink sink = {file_write, file_close, fp};
    CHECK(sv_pq_writer_new(s, &opt, &sink, &W, &E));
    sv_pq_schema_free(s);
    json_t *rows = json_object_get(root, "rows"), *r;
    if (json_is_true(json_object_get(o, "batch"))) {
        /* Column by column: flat top-level leaves in one batch call each,
         * everything else row by row, then one end_rows for all rows. */
        size_t n = json_array_size(rows), j;
        json_array_foreach(fields, j, f) {
            const char *nm = json_string_value(json_object_get(f, "name"));
            if (json_object_get(f, "children") || json_object_get(f, "element")) {
                json_array_foreach(rows, i, r) write_field(f, json_object_get(r, nm));
                continue;
            }
            uint8_t *valid = calloc(n + 1, 1);
            const void **ptrs = calloc(n + 1, sizeof *ptrs);
            uint32_t *lens = calloc(n + 1, sizeof *lens);
            uint8_t *vals = calloc(n + 1, 8);
            size_t off = 0;
            json_array_foreach(rows, i, r) {
                json_t *v = json_object_get(r, nm);
                valid[i] = v && !json_is_null(v);
                if (is_fixed(f)) {
                    leaf_bytes(f, valid[i] ? v : ZERO, vals + i * 8, 8);
                } else if (valid[i]) {
                    lens[i] = (uint32_t)leaf_bytes(f, v, scratch + off, SCRATCH - off);
                    ptrs[i] = scratch + off;
                    off += lens[i];
                }
            }
            if (is_fixed(f)) { /* compact 8-byte slots to the column's width */
                const char *t = json_string_value(json_object_get(f, "type"));
                size_t w = !strcmp(t, "boolean") ? 1 : (!strcmp(t, "int32") || !strcmp(t, "float")) ? 4 : 8;
                for (size_t q = 0; q < n; q++)
                    memmove(vals + q * w, vals + q * 8, w);
                CHECK(sv_pq_append_values(W, node_of(f), vals, valid, n, &E));
            } else {
                CHECK(sv_pq_append_bytes(W, node_of(f), ptrs, lens, n, &E));
            }
            free(valid); free(ptrs); free(lens); free(vals);
        }
        CHECK(sv_pq_writer_end_rows(W, n, &E));
    } else {
        json_array_foreach(rows, i, r) {
            size_t j;
            json_array_foreach(fields, j, f)
                write_field(f, json_object_get(r, json_string_value(json_object_get(f, "name"))));
            CHECK(sv_pq_writer_end_row(W, &E));
        }
    }
    CHECK(sv_pq_writer_close(W, &E));
    sv_pq_writer_free(W);
    json_decref(root);
    json_decref(ZERO);
    free(scratch);
    return 0;
}
