/* Collection schemas: the control plane, parsed with jansson. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "record_internal.h"

#define MAX_PROPS 1024
#define MAX_VECS 1024
#define MAX_DIM 65536
#define MAX_SHARDS 1024

static const char *const type_names[] = {NULL, "text", "int", "number", "boolean", "date", "uuid", "object"};
static const char *const array_names[] = {NULL, "text[]", "int[]", "number[]", "boolean[]", "date[]", "uuid[]", NULL};

const char *sv_prop_type_name(sv_prop_type t, bool array)
{
    if (t < SV_TYPE_TEXT || t > SV_TYPE_OBJECT)
        return "unknown";
    const char *n = array ? array_names[t] : type_names[t];
    return n ? n : "unknown";
}

void sv_schema_free(sv_schema *s)
{
    if (!s)
        return;
    free(s->name);
    for (uint32_t i = 0; i < s->n_named; i++)
        free(s->named[i].name);
    for (uint32_t i = 0; i < s->n_multi; i++)
        free(s->multi[i].name);
    for (uint32_t i = 0; i < s->n_props; i++)
        free(s->props[i].name);
    free(s->named);
    free(s->multi);
    free(s->props);
    free(s);
}

static int find(const char *const *base, size_t stride, uint32_t n, const char *name, size_t len)
{
    for (uint32_t i = 0; i < n; i++) {
        const char *s = *(const char *const *)((const char *)base + i * stride);
        if (strncmp(s, name, len) == 0 && s[len] == '\0')
            return (int)i;
    }
    return -1;
}

int sv_schema_prop_index(const sv_schema *s, const char *name, size_t len)
{
    if (!s->n_props || memchr(name, '\0', len))
        return -1;
    return find((const char *const *)&s->props[0].name, sizeof(sv_prop_def), s->n_props, name, len);
}

int sv_schema_named_index(const sv_schema *s, const char *name, size_t len)
{
    if (!s->n_named || memchr(name, '\0', len))
        return -1;
    return find((const char *const *)&s->named[0].name, sizeof(sv_vec_def), s->n_named, name, len);
}

int sv_schema_multi_index(const sv_schema *s, const char *name, size_t len)
{
    if (!s->n_multi || memchr(name, '\0', len))
        return -1;
    return find((const char *const *)&s->multi[0].name, sizeof(sv_vec_def), s->n_multi, name, len);
}

static int check_keys(json_t *obj, const char *where, const char *const *allowed, sv_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(k, *a) == 0;
        if (!ok) {
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++) {
                if (a != allowed)
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, *a, sizeof list - strlen(list) - 1);
            }
            return sv_fail(err, SV_EINVAL, "%s: unknown field \"%.100s\" (allowed: %s)", where, k, list);
        }
    }
    return 0;
}

static int get_dim(json_t *def, const char *where, uint32_t *dim, sv_err *err)
{
    static const char *const allowed[] = {"dim", NULL};
    if (!json_is_object(def))
        return sv_fail(err, SV_EINVAL, "%s must be an object like {\"dim\": 128}", where);
    int rc = check_keys(def, where, allowed, err);
    if (rc)
        return rc;
    json_t *d = json_object_get(def, "dim");
    if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > MAX_DIM)
        return sv_fail(err, SV_EINVAL, "%s.dim must be an integer between 1 and %d", where, MAX_DIM);
    *dim = (uint32_t)json_integer_value(d);
    return 0;
}

static bool name_taken(const sv_schema *s, const char *name)
{
    return sv_schema_named_index(s, name, strlen(name)) >= 0 || sv_schema_multi_index(s, name, strlen(name)) >= 0;
}

static int parse_vec_map(json_t *m, const char *where, sv_schema *s, bool multi, sv_err *err)
{
    if (!json_is_object(m))
        return sv_fail(err, SV_EINVAL, "%s must be an object like {\"name\": {\"dim\": 64}}", where);
    size_t n = json_object_size(m);
    if (n > MAX_VECS)
        return sv_fail(err, SV_EINVAL, "%s: at most %d vectors", where, MAX_VECS);
    sv_vec_def *defs = calloc(n ? n : 1, sizeof *defs);
    if (!defs)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    if (multi)
        s->multi = defs;
    else
        s->named = defs;
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        char w[200];
        snprintf(w, sizeof w, "%s.%.100s", where, k);
        sv_err e2;
        if (sv_check_property_name(k, &e2))
            return sv_fail(err, SV_EINVAL, "%s: invalid vector name: %s", w, e2.msg);
        if (name_taken(s, k))
            return sv_fail(err, SV_EINVAL, "%s: the name is already used by another named or multi vector", w);
        uint32_t *cnt = multi ? &s->n_multi : &s->n_named;
        sv_vec_def *d = &defs[*cnt];
        int rc = get_dim(v, w, &d->dim, err);
        if (rc)
            return rc;
        d->name = strdup(k);
        if (!d->name)
            return sv_fail(err, SV_ENOMEM, "out of memory");
        d->name_len = strlen(k);
        (*cnt)++;
    }
    return 0;
}

static int parse_type(const char *t, sv_prop_def *d)
{
    for (int i = SV_TYPE_TEXT; i <= SV_TYPE_OBJECT; i++) {
        if (strcmp(t, type_names[i]) == 0) {
            d->type = (sv_prop_type)i;
            d->array = false;
            return 0;
        }
        if (array_names[i] && strcmp(t, array_names[i]) == 0) {
            d->type = (sv_prop_type)i;
            d->array = true;
            return 0;
        }
    }
    return -1;
}

static int schema_from_json(json_t *root, sv_schema *s, sv_err *err)
{
    static const char *const top[] = {"name", "shards", "multiTenancy", "autoTenantActivation", "vectors", "properties", NULL};
    static const char *const vkeys[] = {"default", "named", "multi", NULL};
    static const char *const pkeys[] = {"name", "type", NULL};
    int rc;
    if (!json_is_object(root))
        return sv_fail(err, SV_EINVAL, "collection must be a JSON object");
    if ((rc = check_keys(root, "collection", top, err)))
        return rc;
    json_t *name = json_object_get(root, "name");
    if (!json_is_string(name))
        return sv_fail(err, SV_EINVAL, "name is required: a string like \"Article\"");
    sv_err e2;
    if (sv_check_collection_name(json_string_value(name), &e2))
        return sv_fail(err, SV_EINVAL, "name: %s", e2.msg);
    if (!(s->name = strdup(json_string_value(name))))
        return sv_fail(err, SV_ENOMEM, "out of memory");

    json_t *mt = json_object_get(root, "multiTenancy");
    if (mt && !json_is_boolean(mt))
        return sv_fail(err, SV_EINVAL, "multiTenancy must be true or false");
    s->multi_tenancy = mt && json_is_true(mt);
    json_t *ata = json_object_get(root, "autoTenantActivation");
    if (ata && !json_is_boolean(ata))
        return sv_fail(err, SV_EINVAL, "autoTenantActivation must be true or false");
    if (ata && json_is_true(ata) && !s->multi_tenancy)
        return sv_fail(err, SV_EINVAL,
                       "autoTenantActivation applies to tenants: set \"multiTenancy\": true, or remove it");
    s->auto_tenant_activation = ata && json_is_true(ata);
    json_t *sh = json_object_get(root, "shards");
    if (s->multi_tenancy) {
        if (sh)
            return sv_fail(err, SV_EINVAL,
                           "shards cannot be set when multiTenancy is true (each tenant is its own shard); remove "
                           "\"shards\"");
        s->shards = 0;
    } else if (sh) {
        if (!json_is_integer(sh) || json_integer_value(sh) < 1 || json_integer_value(sh) > MAX_SHARDS)
            return sv_fail(err, SV_EINVAL, "shards must be an integer between 1 and %d", MAX_SHARDS);
        s->shards = (uint32_t)json_integer_value(sh);
    } else {
        s->shards = 1;
    }

    json_t *vecs = json_object_get(root, "vectors");
    if (vecs && !json_is_null(vecs)) {
        if (!json_is_object(vecs))
            return sv_fail(err, SV_EINVAL,
                           "vectors must be an object like {\"default\": {\"dim\": 128}, \"named\": {...}, "
                           "\"multi\": {...}}");
        if ((rc = check_keys(vecs, "vectors", vkeys, err)))
            return rc;
        json_t *dv = json_object_get(vecs, "default");
        if (dv && (rc = get_dim(dv, "vectors.default", &s->vector_dim, err)))
            return rc;
        json_t *nv = json_object_get(vecs, "named");
        if (nv && (rc = parse_vec_map(nv, "vectors.named", s, false, err)))
            return rc;
        json_t *mv = json_object_get(vecs, "multi");
        if (mv && (rc = parse_vec_map(mv, "vectors.multi", s, true, err)))
            return rc;
    }

    json_t *props = json_object_get(root, "properties");
    if (props && !json_is_null(props)) {
        if (!json_is_array(props))
            return sv_fail(err, SV_EINVAL,
                           "properties must be an array like [{\"name\": \"title\", \"type\": \"text\"}]");
        size_t n = json_array_size(props);
        if (n > MAX_PROPS)
            return sv_fail(err, SV_EINVAL, "properties: at most %d properties, got %zu", MAX_PROPS, n);
        s->props = calloc(n ? n : 1, sizeof *s->props);
        if (!s->props)
            return sv_fail(err, SV_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            json_t *p = json_array_get(props, i);
            char w[64];
            snprintf(w, sizeof w, "properties[%zu]", i);
            if (!json_is_object(p))
                return sv_fail(err, SV_EINVAL, "%s must be an object like {\"name\": \"title\", \"type\": \"text\"}",
                               w);
            if ((rc = check_keys(p, w, pkeys, err)))
                return rc;
            json_t *pn = json_object_get(p, "name"), *pt = json_object_get(p, "type");
            if (!json_is_string(pn))
                return sv_fail(err, SV_EINVAL, "%s.name is required (a string)", w);
            const char *pname = json_string_value(pn);
            if (sv_check_property_name(pname, &e2))
                return sv_fail(err, SV_EINVAL, "%s.name: %s", w, e2.msg);
            if (sv_schema_prop_index(s, pname, strlen(pname)) >= 0)
                return sv_fail(err, SV_EINVAL, "%s.name: property \"%s\" is declared twice", w, pname);
            sv_prop_def *d = &s->props[s->n_props];
            if (!json_is_string(pt) || parse_type(json_string_value(pt), d))
                return sv_fail(err, SV_EINVAL,
                               "properties.%s.type must be one of text, int, number, boolean, date, uuid, object, "
                               "text[], int[], number[], boolean[], date[], uuid[]",
                               pname);
            if (!(d->name = strdup(pname)))
                return sv_fail(err, SV_ENOMEM, "out of memory");
            d->name_len = strlen(pname);
            s->n_props++;
        }
    }
    return 0;
}

int sv_schema_parse(const char *json, size_t len, sv_schema **out, sv_err *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return sv_fail(err, SV_EPARSE, "collection: invalid JSON at line %d column %d: %s", je.line, je.column,
                       je.text);
    sv_schema *s = calloc(1, sizeof *s);
    if (!s) {
        json_decref(root);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    int rc = schema_from_json(root, s, err);
    json_decref(root);
    if (rc) {
        sv_schema_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static json_t *vec_map(const sv_vec_def *d, uint32_t n)
{
    json_t *m = json_object();
    for (uint32_t i = 0; i < n; i++)
        json_object_set_new(m, d[i].name, json_pack("{s:I}", "dim", (json_int_t)d[i].dim));
    return m;
}

char *sv_schema_to_json(const sv_schema *s)
{
    json_t *root = json_object();
    if (!root)
        return NULL;
    json_object_set_new(root, "name", json_string(s->name));
    if (!s->multi_tenancy)
        json_object_set_new(root, "shards", json_integer(s->shards));
    json_object_set_new(root, "multiTenancy", json_boolean(s->multi_tenancy));
    if (s->auto_tenant_activation)
        json_object_set_new(root, "autoTenantActivation", json_true());
    if (s->vector_dim || s->n_named || s->n_multi) {
        json_t *v = json_object();
        if (s->vector_dim)
            json_object_set_new(v, "default", json_pack("{s:I}", "dim", (json_int_t)s->vector_dim));
        if (s->n_named)
            json_object_set_new(v, "named", vec_map(s->named, s->n_named));
        if (s->n_multi)
            json_object_set_new(v, "multi", vec_map(s->multi, s->n_multi));
        json_object_set_new(root, "vectors", v);
    }
    json_t *props = json_array();
    for (uint32_t i = 0; i < s->n_props; i++)
        json_array_append_new(props, json_pack("{s:s,s:s}", "name", s->props[i].name, "type",
                                               sv_prop_type_name(s->props[i].type, s->props[i].array)));
    json_object_set_new(root, "properties", props);
    char *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    return out;
}

sv_schema *sv_schema_dup(const sv_schema *s)
{
    sv_schema *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    *d = *s;
    d->name = NULL;
    d->named = d->multi = NULL;
    d->props = NULL;
    d->n_named = d->n_multi = d->n_props = 0;
    if (!(d->name = strdup(s->name)))
        goto fail;
    d->named = calloc(s->n_named ? s->n_named : 1, sizeof *d->named);
    d->multi = calloc(s->n_multi ? s->n_multi : 1, sizeof *d->multi);
    d->props = calloc(s->n_props ? s->n_props : 1, sizeof *d->props);
    if (!d->named || !d->multi || !d->props)
        goto fail;
    for (; d->n_named < s->n_named; d->n_named++) {
        d->named[d->n_named] = s->named[d->n_named];
        if (!(d->named[d->n_named].name = strdup(s->named[d->n_named].name)))
            goto fail;
    }
    for (; d->n_multi < s->n_multi; d->n_multi++) {
        d->multi[d->n_multi] = s->multi[d->n_multi];
        if (!(d->multi[d->n_multi].name = strdup(s->multi[d->n_multi].name)))
            goto fail;
    }
    for (; d->n_props < s->n_props; d->n_props++) {
        d->props[d->n_props] = s->props[d->n_props];
        if (!(d->props[d->n_props].name = strdup(s->props[d->n_props].name)))
            goto fail;
    }
    return d;
fail:
    sv_schema_free(d);
    return NULL;
}
