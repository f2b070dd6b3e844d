/* Rows of a Parquet file -> objects in the API's shape, through a plan
 * built once per file from its schema and the import's mapping. */
#include "importer_internal.h"

#include <math.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- columns ------------------------------------------------------------------ */

/* Resolves a dotted column path ("properties.title") to child indices. */
static int resolve(const sv_pq_rnode *root, const char *path, imp_col *c, sv_err *err)
{
    memset(c, 0, sizeof *c);
    /* a top-level column whose own name has dots ("x.y", Spark and pandas
     * write them) before a path into groups */
    if (strchr(path, '.') && root->kind == SV_PQ_RGROUP)
        for (int i = 0; i < root->n_children; i++)
            if (!strcmp(root->children[i]->name, path)) {
                c->idx[c->depth++] = i;
                c->node = root->children[i];
                snprintf(c->name, sizeof c->name, "%s", path);
                return 0;
            }
    const sv_pq_rnode *n = root;
    const char *p = path;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (n->kind != SV_PQ_RGROUP)
            return sv_fail(err, SV_EINVAL, "mapping: column '%s': '%.*s' is not inside a group", path, (int)len, p);
        int found = -1;
        for (int i = 0; i < n->n_children; i++)
            if (strlen(n->children[i]->name) == len && memcmp(n->children[i]->name, p, len) == 0) {
                found = i;
                break;
            }
        if (found < 0 || c->depth >= IMP_MAX_PATH)
            return sv_fail(err, SV_EINVAL, "mapping: the file has no column '%s'", path);
        c->idx[c->depth++] = found;
        n = n->children[found];
        p = dot ? dot + 1 : p + len;
    }
    if (c->depth == 0)
        return sv_fail(err, SV_EINVAL, "mapping: empty column name");
    c->node = n;
    snprintf(c->name, sizeof c->name, "%s", path);
    return 0;
}

const sv_pq_value *imp_col_value(const imp_col *c, const sv_pq_value *row)
{
    static const sv_pq_value null_value = {.kind = SV_PQV_NULL};
    const sv_pq_value *v = row;
    for (int i = 0; i < c->depth; i++) {
        if (v->kind != SV_PQV_GROUP || (uint32_t)c->idx[i] >= v->n)
            return &null_value;
        v = &v->u.items[c->idx[i]];
    }
    return v;
}

/* ---- values -> JSON ------------------------------------------------------------ */

static void fmt_time(char *out, size_t len, int64_t v, sv_pq_unit unit, bool date_only)
{
    int64_t per = unit == SV_PQ_MILLIS ? 1000 : unit == SV_PQ_MICROS ? 1000000 : 1000000000;
    int digits = unit == SV_PQ_MILLIS ? 3 : unit == SV_PQ_MICROS ? 6 : 9;
    int64_t secs = v / per, frac = v % per;
    if (frac < 0) {
        frac += per;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (date_only) {
        snprintf(out, len, "%04d-%02d-%02dT00:00:00Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        return;
    }
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%0*lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, digits, (long long)frac);
}

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

static json_t *num_json(double d, char *why, size_t whylen)
{
    if (!isfinite(d)) {
        snprintf(why, whylen, "%s is not representable in JSON", isnan(d) ? "NaN" : "an infinite number");
        return NULL;
    }
    return json_real(d);
}

static json_t *decimal_json(const sv_pq_rnode *n, const sv_pq_value *v, char *why, size_t whylen)
{
    double unscaled;
    if (v->kind == SV_PQV_INT) {
        if (n->scale == 0)
            return json_integer(v->u.i);
        unscaled = (double)v->u.i;
    } else {
        /* big-endian two's complement */
        if (v->n == 0 || v->n > 32) {
            snprintf(why, whylen, "DECIMAL of %u bytes", v->n);
            return NULL;
        }
        /* magnitude first (a negative value is negated in place), so
         * doubles never subtract two huge nearly equal numbers */
        uint8_t mag[32];
        bool neg = (v->u.bytes[0] & 0x80) != 0;
        memcpy(mag, v->u.bytes, v->n);
        if (neg) {
            int carry = 1;
            for (int i = (int)v->n - 1; i >= 0; i--) {
                int x = (uint8_t)~mag[i] + carry;
                mag[i] = (uint8_t)x;
                carry = x >> 8;
            }
        }
        double acc = 0;
        for (uint32_t i = 0; i < v->n; i++)
            acc = acc * 256.0 + mag[i];
        unscaled = neg ? -acc : acc;
    }
    return num_json(unscaled / pow(10.0, n->scale), why, whylen);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *base64_json(const uint8_t *p, uint32_t n)
{
    size_t olen = (size_t)(n + 2) / 3 * 4;
    char *o = malloc(olen + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    for (uint32_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        o[k++] = b64[v >> 18 & 63];
        o[k++] = b64[v >> 12 & 63];
        o[k++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        o[k++] = i + 2 < n ? b64[v & 63] : '=';
    }
    json_t *j = json_stringn(o, k);
    free(o);
    return j;
}

json_t *imp_value_json(const sv_pq_rnode *n, const sv_pq_value *v, char *why, size_t whylen)
{
    switch (v->kind) {
    case SV_PQV_NULL:
        return json_null();
    case SV_PQV_BOOL:
        return json_boolean(v->u.b);
    case SV_PQV_INT: {
        char buf[48];
        switch (n->lt) {
        case SV_PQ_RLT_DATE:
            fmt_time(buf, sizeof buf, v->u.i * 86400000ll, SV_PQ_MILLIS, true);
            return json_string(buf);
        case SV_PQ_RLT_TIMESTAMP:
            fmt_time(buf, sizeof buf, v->u.i, n->unit, false);
            return json_string(buf);
        case SV_PQ_RLT_TIME: {
            int64_t per = n->unit == SV_PQ_MILLIS ? 1000 : n->unit == SV_PQ_MICROS ? 1000000 : 1000000000;
            int digits = n->unit == SV_PQ_MILLIS ? 3 : n->unit == SV_PQ_MICROS ? 6 : 9;
            int64_t s = v->u.i / per, f = v->u.i % per;
            if (s < 0 || f < 0) {
                snprintf(why, whylen, "negative TIME");
                return NULL;
            }
            snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld.%0*lld", (long long)(s / 3600), (long long)(s / 60 % 60),
                     (long long)(s % 60), digits, (long long)f);
            return json_string(buf);
        }
        case SV_PQ_RLT_DECIMAL:
            return decimal_json(n, v, why, whylen);
        case SV_PQ_RLT_INT:
            if (!n->is_signed && n->bits == 64 && v->u.i < 0)
                return json_real((double)(uint64_t)v->u.i);
            return json_integer(v->u.i);
        default:
            return json_integer(v->u.i);
        }
    }
    case SV_PQV_FLOAT:
        return num_json((double)v->u.f, why, whylen);
    case SV_PQV_DOUBLE:
        return num_json(v->u.d, why, whylen);
    case SV_PQV_BYTES: {
        switch (n->lt) {
        case SV_PQ_RLT_STRING:
        case SV_PQ_RLT_ENUM: {
            json_t *j = json_stringn((const char *)v->u.bytes, v->n);
            if (!j)
                snprintf(why, whylen, "a STRING value that is not valid UTF-8");
            return j;
        }
        case SV_PQ_RLT_JSON: {
            json_error_t je;
            json_t *j = json_loadb((const char *)v->u.bytes, v->n, JSON_DECODE_ANY, &je);
            if (!j)
                snprintf(why, whylen, "a JSON value that does not parse: %s", je.text);
            return j;
        }
        case SV_PQ_RLT_UUID: {
            if (v->n != 16) {
                snprintf(why, whylen, "a UUID of %u bytes", v->n);
                return NULL;
            }
            sv_uuid u;
            memcpy(u.b, v->u.bytes, 16);
            char s[37];
            sv_uuid_format(&u, s);
            return json_string(s);
        }
        case SV_PQ_RLT_DECIMAL:
            return decimal_json(n, v, why, whylen);
        case SV_PQ_RLT_FLOAT16:
            if (v->n != 2) {
                snprintf(why, whylen, "a FLOAT16 of %u bytes", v->n);
                return NULL;
            }
            return num_json(half_to_double((uint16_t)(v->u.bytes[0] | v->u.bytes[1] << 8)), why, whylen);
        default:
            return base64_json(v->u.bytes, v->n);
        }
    }
    case SV_PQV_PACKED: {
        const sv_pq_rnode *el = n->children[0];
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < v->n; i++) {
            sv_pq_value e = {.kind = SV_PQV_NULL};
            switch (el->type) {
            case SV_PQ_FLOAT: e.kind = SV_PQV_FLOAT; memcpy(&e.u.f, (const uint8_t *)v->u.raw + 4 * i, 4); break;
            case SV_PQ_DOUBLE: e.kind = SV_PQV_DOUBLE; memcpy(&e.u.d, (const uint8_t *)v->u.raw + 8 * i, 8); break;
            case SV_PQ_INT32: {
                int32_t x;
                memcpy(&x, (const uint8_t *)v->u.raw + 4 * i, 4);
                e.kind = SV_PQV_INT;
                e.u.i = x;
                break;
            }
            default: e.kind = SV_PQV_INT; memcpy(&e.u.i, (const uint8_t *)v->u.raw + 8 * i, 8); break;
            }
            json_t *j = imp_value_json(el, &e, why, whylen);
            if (!j) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, j);
        }
        return a;
    }
    case SV_PQV_LIST: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < v->n; i++) {
            json_t *j = imp_value_json(n->children[0], &v->u.items[i], why, whylen);
            if (!j) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, j);
        }
        return a;
    }
    case SV_PQV_GROUP: {
        json_t *o = json_object();
        for (uint32_t i = 0; o && i < v->n && (int)i < n->n_children; i++) {
            json_t *j = imp_value_json(n->children[i], &v->u.items[i], why, whylen);
            if (!j) {
                json_decref(o);
                return NULL;
            }
            json_object_set_new(o, n->children[i]->name, j);
        }
        return o;
    }
    }
    snprintf(why, whylen, "a value of unknown kind");
    return NULL;
}

/* A vector: list<float|double|int>, FIXED_LEN_BYTE_ARRAY / BYTE_ARRAY of
 * little-endian float32. NULL + why when it is not one; json_null() for null. */
static json_t *vector_json(const sv_pq_rnode *n, const sv_pq_value *v, char *why, size_t whylen)
{
    if (v->kind == SV_PQV_NULL)
        return json_null();
    if (v->kind == SV_PQV_BYTES) {
        if (v->n % 4) {
            snprintf(why, whylen, "a float32 vector of %u bytes (not a multiple of 4)", v->n);
            return NULL;
        }
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < v->n / 4; i++) {
            float f;
            memcpy(&f, v->u.bytes + 4 * i, 4);
            json_t *j = num_json(f, why, whylen);
            if (!j) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, j);
        }
        return a;
    }
    if (v->kind != SV_PQV_PACKED && v->kind != SV_PQV_LIST) {
        snprintf(why, whylen, "not a list of numbers or float32 bytes");
        return NULL;
    }
    json_t *a = imp_value_json(n, v, why, whylen);
    if (!a)
        return NULL;
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) if (!json_is_number(e))
    {
        snprintf(why, whylen, "element %zu of the vector is not a number", i);
        json_decref(a);
        return NULL;
    }
    return a;
}

/* An object-valued column: a group, or JSON / JSON-looking text. */
static json_t *object_json(const sv_pq_rnode *n, const sv_pq_value *v, char *why, size_t whylen)
{
    if (v->kind == SV_PQV_NULL)
        return json_null();
    json_t *j;
    if (v->kind == SV_PQV_BYTES && n->lt != SV_PQ_RLT_JSON) {
        json_error_t je;
        j = json_loadb((const char *)v->u.bytes, v->n, 0, &je);
        if (!j)
            snprintf(why, whylen, "not a JSON object: %s", je.text);
    } else {
        j = imp_value_json(n, v, why, whylen);
    }
    if (j && !json_is_object(j)) {
        snprintf(why, whylen, "not an object");
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- UUIDs -------------------------------------------------------------------- */

/* RFC 4122 version 5 (SHA-1) in namespace ns. */
static void uuid_v5(const sv_uuid *ns, const void *name, size_t len, sv_uuid *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c) {
        EVP_DigestInit_ex(c, EVP_sha1(), NULL);
        EVP_DigestUpdate(c, ns->b, 16);
        EVP_DigestUpdate(c, name, len);
        EVP_DigestFinal_ex(c, md, &mdlen);
        EVP_MD_CTX_free(c);
    }
    if (mdlen < 16)
        memset(md, 0, 16);
    memcpy(out->b, md, 16);
    out->b[6] = (uint8_t)((out->b[6] & 0x0f) | 0x50);
    out->b[8] = (uint8_t)((out->b[8] & 0x3f) | 0x80);
}

/* The URL namespace of RFC 4122 (6ba7b811-9dad-11d1-80b4-00c04fd430c8). */
static const sv_uuid NS_URL = {{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
                                0x30, 0xc8}};

void imp_row_uuid(const char *file, int64_t row, sv_uuid *u)
{
    char name[1200];
    int n = snprintf(name, sizeof name, "shardvault-import:%s#%lld", file, (long long)row);
    uuid_v5(&NS_URL, name, (size_t)n < sizeof name ? (size_t)n : sizeof name - 1, u);
}

/* ---- plans ---------------------------------------------------------------------- */

/* What a vector column may be: a list of numbers, or float32 bytes
 * (FIXED_LEN_BYTE_ARRAY, or BYTE_ARRAY, without a logical type: a UUID,
 * DECIMAL or text column holds no floats). NULL: fine, else what it is. */
static const char *not_a_vector(const sv_pq_rnode *n)
{
    if (n->kind == SV_PQ_RLIST) {
        const sv_pq_rnode *el = n->children[0];
        if (el->kind == SV_PQ_RLEAF && (el->type == SV_PQ_FLOAT || el->type == SV_PQ_DOUBLE ||
                                        ((el->type == SV_PQ_INT32 || el->type == SV_PQ_INT64) &&
                                         (el->lt == SV_PQ_RLT_NONE || el->lt == SV_PQ_RLT_INT))))
            return NULL;
        return "a list of something other than numbers";
    }
    if (n->kind == SV_PQ_RGROUP)
        return "a group";
    if (n->type != SV_PQ_BYTE_ARRAY && n->type != SV_PQ_FIXED_LEN_BYTE_ARRAY)
        return "a single number or boolean, not a list";
    switch (n->lt) {
    case SV_PQ_RLT_NONE:
        return n->type == SV_PQ_FIXED_LEN_BYTE_ARRAY && n->type_length % 4 ? "fixed-length bytes not a multiple of 4"
                                                                           : NULL;
    case SV_PQ_RLT_STRING:
    case SV_PQ_RLT_ENUM:
    case SV_PQ_RLT_JSON:
        return "text";
    case SV_PQ_RLT_UUID:
        return "a UUID";
    case SV_PQ_RLT_DECIMAL:
        return "a DECIMAL";
    default:
        return "not float32 bytes";
    }
}

static int add_map(imp_plan *p, const sv_pq_rnode *root, imp_target kind, const char *name, const char *col,
                   sv_err *err)
{
    if (p->n >= IMP_MAX_MAPS)
        return sv_fail(err, SV_EINVAL, "mapping: too many entries (at most %d)", IMP_MAX_MAPS);
    imp_map *m = &p->maps[p->n];
    memset(m, 0, sizeof *m);
    int rc = resolve(root, col, &m->col, err);
    if (rc)
        return rc;
    const sv_pq_rnode *vn = m->col.node;
    if (kind == IMP_T_MULTI)
        vn = vn->kind == SV_PQ_RLIST ? vn->children[0] : NULL;
    const char *what = kind == IMP_T_VECTOR || kind == IMP_T_NAMED || kind == IMP_T_MULTI
                           ? (vn ? not_a_vector(vn) : "not a list of vectors")
                           : NULL;
    if (what)
        return sv_fail(err, SV_EINVAL, "mapping: column '%s' cannot hold %s: it is %s (a vector column is a list of "
                       "floats or doubles, or FIXED_LEN_BYTE_ARRAY of float32)", col,
                       kind == IMP_T_MULTI ? "multi-vectors" : "vectors", what);
    m->kind = kind;
    snprintf(m->name, sizeof m->name, "%s", name ? name : "");
    p->n++;
    return 0;
}

static bool col_used(const imp_plan *p, int top)
{
    for (int i = 0; i < p->n; i++)
        if (p->maps[i].col.idx[0] == top)
            return true;
    if (p->id_col.depth && p->id_col.idx[0] == top)
        return true;
    if (p->key_col.depth && p->key_col.idx[0] == top)
        return true;
    return false;
}

static const sv_pq_rnode *child(const sv_pq_rnode *n, const char *name)
{
    for (int i = 0; i < n->n_children; i++)
        if (!strcmp(n->children[i]->name, name))
            return n->children[i];
    return NULL;
}

/* Plans for shardvault's own layouts, recognised from the file's columns. */
static int plan_export_layout(imp_plan *p, const sv_pq_rnode *root, sv_err *err)
{
    const sv_pq_rnode *props = child(root, "properties"), *vec = child(root, "vector");
    int rc = resolve(root, "id", &p->id_col, err);
    if (rc)
        return rc;
    p->id_required = true;
    if (props && props->kind == SV_PQ_RLEAF) {
        /* weaviate: JSON texts in plain byte arrays */
        p->layout = IMP_LAYOUT_WEAVIATE;
        if (vec && (rc = add_map(p, root, IMP_T_VECTOR, NULL, "vector", err)))
            return rc;
        if (child(root, "named_vectors") && (rc = add_map(p, root, IMP_T_NAMED_ALL, NULL, "named_vectors", err)))
            return rc;
        if (child(root, "multi_vectors") && (rc = add_map(p, root, IMP_T_MULTI_ALL, NULL, "multi_vectors", err)))
            return rc;
        return add_map(p, root, IMP_T_PROPS_SPREAD, NULL, "properties", err);
    }
    p->layout = IMP_LAYOUT_TYPED;
    if (vec && (rc = add_map(p, root, IMP_T_VECTOR, NULL, "vector", err)))
        return rc;
    const sv_pq_rnode *g;
    char col[300];
    if ((g = child(root, "named_vectors")) && g->kind == SV_PQ_RGROUP)
        for (int i = 0; i < g->n_children; i++) {
            snprintf(col, sizeof col, "named_vectors.%s", g->children[i]->name);
            if ((rc = add_map(p, root, IMP_T_NAMED, g->children[i]->name, col, err)))
                return rc;
        }
    if ((g = child(root, "multi_vectors")) && g->kind == SV_PQ_RGROUP)
        for (int i = 0; i < g->n_children; i++) {
            snprintf(col, sizeof col, "multi_vectors.%s", g->children[i]->name);
            if ((rc = add_map(p, root, IMP_T_MULTI, g->children[i]->name, col, err)))
                return rc;
        }
    if (props && props->kind == SV_PQ_RGROUP)
        for (int i = 0; i < props->n_children; i++) {
            snprintf(col, sizeof col, "properties.%s", props->children[i]->name);
            if ((rc = add_map(p, root, IMP_T_PROP, props->children[i]->name, col, err)))
                return rc;
        }
    if (child(root, "properties_json") && (rc = add_map(p, root, IMP_T_PROPS_SPREAD, NULL, "properties_json", err)))
        return rc;
    return 0;
}

bool imp_is_export_layout(const sv_pq_rnode *root)
{
    return child(root, "id") && child(root, "creation_time") && child(root, "update_time") &&
           (child(root, "properties") || child(root, "properties_json"));
}

int imp_mapping_check(json_t *mapping, sv_err *err)
{
    if (!mapping)
        return 0;
    if (!json_is_object(mapping))
        return sv_fail(err, SV_EINVAL, "mapping must be an object");
    if (json_object_get(mapping, "id") && json_object_get(mapping, "idKey"))
        return sv_fail(err, SV_EINVAL, "mapping: give id (a column of UUIDs) or idKey (a column to derive UUIDv5 "
                       "ids from), not both");
    const char *key;
    json_t *v;
    json_object_foreach(mapping, key, v)
    {
        if (!strcmp(key, "id") || !strcmp(key, "idKey") || !strcmp(key, "vector")) {
            if (!json_is_string(v) || !json_string_length(v))
                return sv_fail(err, SV_EINVAL, "mapping.%s must be a column name", key);
        } else if (!strcmp(key, "namedVectors") || !strcmp(key, "multiVectors")) {
            if (json_is_string(v) && json_string_length(v))
                continue;
            if (!json_is_object(v))
                return sv_fail(err, SV_EINVAL, "mapping.%s must be an object {name: column} or a column name", key);
            const char *k2;
            json_t *c2;
            json_object_foreach(v, k2, c2)
            {
                if (!json_is_string(c2) || !json_string_length(c2))
                    return sv_fail(err, SV_EINVAL, "mapping.%s.%s must be a column name", key, k2);
                if (sv_check_property_name(k2, NULL))
                    return sv_fail(err, SV_EINVAL, "mapping.%s: '%.64s' is not a vector name "
                                   "(^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$)", key, k2);
            }
        } else if (!strcmp(key, "properties")) {
            if (!json_is_object(v))
                return sv_fail(err, SV_EINVAL, "mapping.properties must be an object {property: column}");
            const char *k2;
            json_t *c2;
            json_object_foreach(v, k2, c2)
            {
                if (!json_is_string(c2) || !json_string_length(c2))
                    return sv_fail(err, SV_EINVAL, "mapping.properties.%s must be a column name", k2);
                if (strcmp(k2, "*") && sv_check_property_name(k2, NULL))
                    return sv_fail(err, SV_EINVAL, "mapping.properties: '%.64s' is not a property name "
                                   "(^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$, or \"*\")", k2);
            }
        } else {
            return sv_fail(err, SV_EINVAL,
                           "mapping: unknown field '%.64s' (id, idKey, vector, namedVectors, multiVectors, properties)",
                           key);
        }
    }
    return 0;
}

/* Top-level column i as the property of its own name (no mapping, or
 * "rest"): the name must be one a property can have. */
static int add_rest(imp_plan *p, const sv_pq_rnode *root, int i, sv_err *err)
{
    const char *name = root->children[i]->name;
    if (sv_check_property_name(name, NULL))
        return sv_fail(err, SV_EINVAL, "mapping: column '%s' cannot be a property of that name (^[A-Za-z0-9_][A-Za-z0-9_-]"
                       "{0,63}$): map it to one, e.g. \"properties\": {\"p\": \"%s\", \"*\": \"rest\"}, or leave it "
                       "out by listing the properties", name, name);
    return add_map(p, root, IMP_T_PROP, name, name, err);
}

int imp_plan_new(const sv_pq_rnode *root, json_t *mapping, const char *file, imp_plan **out, sv_err *err)
{
    *out = NULL;
    int rc = imp_mapping_check(mapping, err); /* shapes and names: only columns are looked at here */
    if (rc)
        return rc;
    imp_plan *p = calloc(1, sizeof *p);
    if (!p)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    p->root = root;
    snprintf(p->file, sizeof p->file, "%s", file);
    if (!mapping || json_object_size(mapping) == 0) {
        if (imp_is_export_layout(root)) {
            rc = plan_export_layout(p, root, err);
        } else {
            /* Default: "id" and "vector" columns by name, every other column a property. */
            const sv_pq_rnode *idn = child(root, "id");
            if (idn && (rc = resolve(root, "id", &p->id_col, err)) == 0)
                p->id_required = true;
            if (rc == 0 && child(root, "vector"))
                rc = add_map(p, root, IMP_T_VECTOR, NULL, "vector", err);
            for (int i = 0; rc == 0 && i < root->n_children; i++)
                if (!col_used(p, i))
                    rc = add_rest(p, root, i, err);
        }
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(mapping, key, v)
        {
            if (rc)
                break;
            if (!strcmp(key, "id") || !strcmp(key, "idKey")) {
                imp_col *c = !strcmp(key, "id") ? &p->id_col : &p->key_col;
                rc = resolve(root, json_string_value(v), c, err);
                if (rc == 0 && !strcmp(key, "id"))
                    p->id_required = true;
            } else if (!strcmp(key, "vector")) {
                rc = add_map(p, root, IMP_T_VECTOR, NULL, json_string_value(v), err);
            } else if (!strcmp(key, "namedVectors") || !strcmp(key, "multiVectors")) {
                bool named = key[0] == 'n';
                if (json_is_string(v)) {
                    rc = add_map(p, root, named ? IMP_T_NAMED_ALL : IMP_T_MULTI_ALL, NULL, json_string_value(v), err);
                } else {
                    const char *k2;
                    json_t *c2;
                    json_object_foreach(v, k2, c2)
                    {
                        if (rc)
                            break;
                        rc = add_map(p, root, named ? IMP_T_NAMED : IMP_T_MULTI, k2, json_string_value(c2), err);
                    }
                }
            } else { /* properties (imp_mapping_check allows nothing else) */
                const char *k2;
                json_t *c2;
                json_object_foreach(v, k2, c2)
                {
                    if (rc)
                        break;
                    if (!strcmp(k2, "*")) {
                        const char *cn = json_string_value(c2);
                        imp_col probe;
                        sv_err e2;
                        if (resolve(root, cn, &probe, &e2) == 0)
                            rc = add_map(p, root, IMP_T_PROPS_SPREAD, NULL, cn, err);
                        else if (!strcmp(cn, "rest"))
                            p->rest = true;
                        else
                            rc = sv_fail(err, SV_EINVAL,
                                         "mapping.properties.*: the file has no column '%s' (use a column holding an "
                                         "object, or \"rest\" for every column not mapped otherwise)", cn);
                    } else {
                        rc = add_map(p, root, IMP_T_PROP, k2, json_string_value(c2), err);
                    }
                }
            }
        }
        if (rc == 0 && !json_object_get(mapping, "properties"))
            p->rest = true;
        if (rc == 0 && p->rest)
            for (int i = 0; rc == 0 && i < root->n_children; i++)
                if (!col_used(p, i))
                    rc = add_rest(p, root, i, err);
    }
    if (rc) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void imp_plan_free(imp_plan *p) { free(p); }

static int row_fail(char *why, size_t whylen, const char *col, const char *msg)
{
    snprintf(why, whylen, "column %.200s: %.300s", col, msg);
    return SV_EINVAL;
}

/* ---- text output --------------------------------------------------------------- */

/* Powers of ten 1e-64 .. 1e64 for put_num9 (filled once). */
static double P10[129];
static pthread_once_t p10_once = PTHREAD_ONCE_INIT;
static void p10_init(void)
{
    for (int i = 0; i < 129; i++)
        P10[i] = pow(10.0, i - 64);
}

/* A number with 9 significant digits (enough for any float32 to read back
 * as itself), without printf on the hot path: integers as integers, the rest
 * as d.dddddddde±X with trailing zeros dropped. Writes at most 24 bytes at
 * tmp and returns how many. */
static size_t fmt_num9(char *tmp, double d)
{
    size_t n = 0;
    if (d == 0) {
        tmp[0] = '0';
        return 1;
    }
    if (d < 0) {
        tmp[n++] = '-';
        d = -d;
    }
    if (d < 1e9 && d == (double)(int64_t)d) {
        char dig[20];
        int k = 0;
        int64_t v = (int64_t)d;
        while (v) {
            dig[k++] = (char)('0' + v % 10);
            v /= 10;
        }
        while (k)
            tmp[n++] = dig[--k];
        return n;
    }
    if (d < 1e-55 || d >= 1e55) /* outside the table: rare, printf */
        return n + (size_t)snprintf(tmp + n, 24 - n, "%.9g", d);
    pthread_once(&p10_once, p10_init);
    int ex;
    frexp(d, &ex);
    int e = (int)floor((ex - 1) * 0.30102999566398120);
    while (e + 1 <= 55 && P10[e + 1 + 64] <= d)
        e++;
    while (e > -56 && P10[e + 64] > d)
        e--;
    uint32_t m = (uint32_t)(d * P10[8 - e + 64] + 0.5);
    if (m >= 1000000000u) { /* rounding carried into a tenth digit */
        m = (m + 5) / 10;
        e++;
    }
    static const char D2[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                             "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                             "8081828384858687888990919293949596979899";
    char dig[9];
    uint32_t hi = m / 10000, lo = m % 10000; /* hi: 5 digits, lo: 4 */
    memcpy(dig + 5, D2 + 2 * (lo / 100), 2);
    memcpy(dig + 7, D2 + 2 * (lo % 100), 2);
    dig[0] = (char)('0' + hi / 10000);
    hi %= 10000;
    memcpy(dig + 1, D2 + 2 * (hi / 100), 2);
    memcpy(dig + 3, D2 + 2 * (hi % 100), 2);
    int last = 8;
    while (last > 0 && dig[last] == '0')
        last--;
    tmp[n++] = dig[0];
    if (last > 0) {
        tmp[n++] = '.';
        memcpy(tmp + n, dig + 1, (size_t)last);
        n += (size_t)last;
    }
    tmp[n++] = 'e';
    if (e < 0) {
        tmp[n++] = '-';
        e = -e;
    }
    if (e >= 10)
        tmp[n++] = (char)('0' + e / 10);
    tmp[n++] = (char)('0' + e % 10);
    return n;
}

static void put_num9(sv_buf *b, double d)
{
    if (sv_buf_reserve(b, 32))
        return;
    b->len += fmt_num9((char *)b->data + b->len, d);
}

static int put_json(sv_buf *b, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return SV_ENOMEM;
    int rc = sv_buf_append_str(b, s);
    free(s);
    return rc;
}

/* A vector's text; 1 when the value is null (nothing appended). */
static int put_vector(sv_buf *b, const sv_pq_rnode *n, const sv_pq_value *v, char *why, size_t whylen)
{
    if (v->kind == SV_PQV_NULL)
        return 1;
    if (v->kind == SV_PQV_PACKED && n->kind == SV_PQ_RLIST) {
        const sv_pq_rnode *el = n->children[0];
        if (sv_buf_reserve(b, (size_t)v->n * 26 + 2))
            return SV_ENOMEM;
        char *o = (char *)b->data + b->len;
        *o++ = '[';
        for (uint32_t i = 0; i < v->n; i++) {
            if (i)
                *o++ = ',';
            const uint8_t *p = (const uint8_t *)v->u.raw;
            double d;
            if (el->type == SV_PQ_FLOAT) {
                float f;
                memcpy(&f, p + 4 * i, 4);
                d = f;
            } else if (el->type == SV_PQ_DOUBLE) {
                memcpy(&d, p + 8 * i, 8);
            } else if (el->type == SV_PQ_INT32) {
                int32_t x;
                memcpy(&x, p + 4 * i, 4);
                d = x;
            } else {
                int64_t x;
                memcpy(&x, p + 8 * i, 8);
                d = (double)x;
            }
            if (!isfinite(d)) {
                snprintf(why, whylen, "element %u of the vector is not a finite number", i);
                return SV_EINVAL;
            }
            o += fmt_num9(o, d);
        }
        *o++ = ']';
        b->len = (size_t)(o - (char *)b->data);
        return 0;
    }
    if (v->kind == SV_PQV_BYTES) {
        if (v->n % 4) {
            snprintf(why, whylen, "a float32 vector of %u bytes (not a multiple of 4)", v->n);
            return SV_EINVAL;
        }
        sv_buf_putc(b, '[');
        for (uint32_t i = 0; i < v->n / 4; i++) {
            float f;
            memcpy(&f, v->u.bytes + 4 * i, 4);
            if (!isfinite(f)) {
                snprintf(why, whylen, "element %u of the vector is not a finite number", i);
                return SV_EINVAL;
            }
            if (i)
                sv_buf_putc(b, ',');
            put_num9(b, f);
        }
        return sv_buf_putc(b, ']');
    }
    json_t *j = vector_json(n, v, why, whylen);
    if (!j)
        return SV_EINVAL;
    int rc = put_json(b, j);
    json_decref(j);
    return rc;
}

static int put_multi(sv_buf *b, const sv_pq_rnode *n, const sv_pq_value *v, char *why, size_t whylen)
{
    if (v->kind == SV_PQV_NULL)
        return 1;
    if (v->kind != SV_PQV_LIST || n->kind != SV_PQ_RLIST) {
        snprintf(why, whylen, "not a list of vectors");
        return SV_EINVAL;
    }
    sv_buf_putc(b, '[');
    for (uint32_t i = 0; i < v->n; i++) {
        if (i)
            sv_buf_putc(b, ',');
        int rc = put_vector(b, n->children[0], &v->u.items[i], why, whylen);
        if (rc == 1) {
            snprintf(why, whylen, "vector %u of the multi-vector is null", i);
            return SV_EINVAL;
        }
        if (rc)
            return rc;
    }
    return sv_buf_putc(b, ']');
}

static void put_key(sv_buf *b, bool *first, const char *k)
{
    if (!*first)
        sv_buf_putc(b, ',');
    *first = false;
    sv_buf_json_string(b, k, strlen(k));
    sv_buf_putc(b, ':');
}

/* The row's id (see imp_row_id in importer_internal.h). */
int imp_row_id(const imp_plan *p, const sv_pq_value *row, int64_t rownum, sv_uuid *idu, char ids[37], char *why,
               size_t whylen)
{
    char msg[300];
    int rc = 0;
    if (ids)
        ids[0] = '\0';
    if (p->id_col.depth) {
        const sv_pq_value *v = imp_col_value(&p->id_col, row);
        sv_uuid u;
        if (v->kind == SV_PQV_BYTES && v->n == 16 && p->id_col.node->type == SV_PQ_FIXED_LEN_BYTE_ARRAY)
            memcpy(u.b, v->u.bytes, 16);
        else if (v->kind == SV_PQV_NULL)
            rc = row_fail(why, whylen, p->id_col.name, "the id is null");
        else if (v->kind != SV_PQV_BYTES || sv_uuid_parse((const char *)v->u.bytes, v->n, &u) != 0)
            rc = row_fail(why, whylen, p->id_col.name, "the id is not a UUID (map it as idKey to derive one)");
        if (rc == 0)
            *idu = u;
    } else if (p->key_col.depth) {
        const sv_pq_value *v = imp_col_value(&p->key_col, row);
        json_t *kj = imp_value_json(p->key_col.node, v, msg, sizeof msg);
        char *ks = kj ? json_dumps(kj, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        if (!kj || json_is_null(kj)) {
            rc = row_fail(why, whylen, p->key_col.name, kj ? "the key is null" : msg);
        } else if (ks) {
            sv_uuid u;
            uuid_v5(&NS_URL, ks, strlen(ks), &u);
            *idu = u;
        } else {
            rc = row_fail(why, whylen, p->key_col.name, "out of memory");
        }
        free(ks);
        json_decref(kj);
    } else {
        imp_row_uuid(p->file, rownum, idu);
    }
    if (rc == 0 && ids)
        sv_uuid_format(idu, ids);
    return rc;
}

int imp_row_text(const imp_plan *p, const sv_pq_value *row, int64_t rownum, const char *collection,
                 const char *tenant, sv_buf *out, char id_out[37], char *why, size_t whylen)
{
    size_t start = out->len;
    char msg[300];
    int rc = 0;
    char ids[37] = "";
    sv_uuid idu;
    rc = imp_row_id(p, row, rownum, &idu, ids, why, whylen);
    if (rc)
        return rc;
    memcpy(id_out, ids, 37);
    sv_buf_append_str(out, "{\"id\":\"");
    sv_buf_append_str(out, ids);
    sv_buf_append_str(out, "\",\"collection\":");
    sv_buf_json_string(out, collection, strlen(collection));
    if (tenant && tenant[0]) {
        sv_buf_append_str(out, ",\"tenant\":");
        sv_buf_json_string(out, tenant, strlen(tenant));
    }
    json_t *props = json_object(), *named_all = NULL, *multi_all = NULL;
    sv_buf named = {0}, multi = {0};
    bool named_first = true, multi_first = true;
    for (int i = 0; rc == 0 && i < p->n; i++) {
        const imp_map *m = &p->maps[i];
        const sv_pq_value *v = imp_col_value(&m->col, row);
        int r2 = 0;
        json_t *j = NULL;
        switch (m->kind) {
        case IMP_T_VECTOR: {
            size_t mark = out->len;
            sv_buf_append_str(out, ",\"vector\":");
            r2 = put_vector(out, m->col.node, v, msg, sizeof msg);
            if (r2 == 1) {
                out->len = mark;
                r2 = 0;
            }
            break;
        }
        case IMP_T_NAMED:
        case IMP_T_MULTI: {
            sv_buf *t = m->kind == IMP_T_NAMED ? &named : &multi;
            bool *first = m->kind == IMP_T_NAMED ? &named_first : &multi_first;
            size_t mark = t->len;
            bool was_first = *first;
            put_key(t, first, m->name);
            r2 = m->kind == IMP_T_NAMED ? put_vector(t, m->col.node, v, msg, sizeof msg)
                                        : put_multi(t, m->col.node, v, msg, sizeof msg);
            if (r2 == 1) {
                t->len = mark;
                *first = was_first;
                r2 = 0;
            }
            break;
        }
        case IMP_T_NAMED_ALL:
        case IMP_T_MULTI_ALL:
            j = object_json(m->col.node, v, msg, sizeof msg);
            if (!j)
                r2 = SV_EINVAL;
            else if (json_object_size(j)) {
                json_t **t = m->kind == IMP_T_NAMED_ALL ? &named_all : &multi_all;
                json_decref(*t);
                *t = json_incref(j);
            }
            break;
        case IMP_T_PROP:
            j = imp_value_json(m->col.node, v, msg, sizeof msg);
            if (!j)
                r2 = SV_EINVAL;
            else if (!json_is_null(j))
                json_object_set(props, m->name, j);
            break;
        case IMP_T_PROPS_SPREAD:
            j = object_json(m->col.node, v, msg, sizeof msg);
            if (!j)
                r2 = SV_EINVAL;
            else if (json_is_object(j))
                json_object_update_missing(props, j);
            break;
        }
        json_decref(j);
        if (r2)
            rc = row_fail(why, whylen, m->col.name, msg);
    }
    if (rc == 0) {
        if (named.len) {
            sv_buf_append_str(out, ",\"namedVectors\":{");
            sv_buf_append(out, named.data, named.len);
            sv_buf_putc(out, '}');
        } else if (named_all) {
            sv_buf_append_str(out, ",\"namedVectors\":");
            rc = put_json(out, named_all);
        }
        if (multi.len) {
            sv_buf_append_str(out, ",\"multiVectors\":{");
            sv_buf_append(out, multi.data, multi.len);
            sv_buf_putc(out, '}');
        } else if (multi_all && rc == 0) {
            sv_buf_append_str(out, ",\"multiVectors\":");
            rc = put_json(out, multi_all);
        }
        sv_buf_append_str(out, ",\"properties\":");
        if (rc == 0 && (rc = put_json(out, props)) == 0)
            rc = sv_buf_putc(out, '}');
        if (rc)
            snprintf(why, whylen, "out of memory");
    }
    json_decref(props);
    json_decref(named_all);
    json_decref(multi_all);
    sv_buf_free(&named);
    sv_buf_free(&multi);
    if (rc)
        out->len = start;
    return rc;
}

/* ---- public wrappers ------------------------------------------------------------ */

struct sv_import_rows { imp_plan *p; };

int sv_import_rows_new(const sv_pq_rnode *root, json_t *mapping, const char *file, sv_import_rows **out, sv_err *err)
{
    *out = NULL;
    sv_import_rows *r = calloc(1, sizeof *r);
    if (!r)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = imp_plan_new(root, mapping, file, &r->p, err);
    if (rc) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void sv_import_rows_free(sv_import_rows *r)
{
    if (!r)
        return;
    imp_plan_free(r->p);
    free(r);
}

int sv_import_row(const sv_import_rows *r, const sv_pq_value *row, int64_t rownum, const char *collection,
                  const char *tenant, sv_buf *out, char id[37], char *why, size_t whylen)
{
    return imp_row_text(r->p, row, rownum, collection, tenant, out, id, why, whylen);
}
