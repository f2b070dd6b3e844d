/* record — a collection's schema and the object record: JSON in and out (the
 * API shapes), validation against the schema, and the versioned binary
 * encoding stored in RocksDB. Knows core and jansson only.
 *
 * The import hot path (parse JSON object -> validate -> encode) does not use a
 * JSON library: a streaming object reader with an exact float parser keeps it
 * fast. Control-plane JSON (schemas) uses jansson.
 *
 * Ownership: sv_schema is owned by whoever parsed it (sv_schema_free).
 * sv_record owns an arena; every pointer inside it stays valid until the next
 * parse/decode/reset on the same record, or sv_record_free.
 */
#ifndef SV_RECORD_H
#define SV_RECORD_H

#include "core.h"

/* ---- schema ------------------------------------------------------------- */

typedef enum {
    SV_TYPE_TEXT = 1,
    SV_TYPE_INT,     /* int64 */
    SV_TYPE_NUMBER,  /* double */
    SV_TYPE_BOOLEAN,
    SV_TYPE_DATE,    /* RFC 3339 text in JSON; int64 ms since epoch (UTC) inside */
    SV_TYPE_UUID,    /* canonical text in JSON; 16 bytes inside */
    SV_TYPE_OBJECT,  /* free JSON object; never an array type */
} sv_prop_type;

typedef struct sv_prop_def {
    char *name;
    size_t name_len; /* strlen(name), set with it */
    sv_prop_type type;
    bool array; /* "text[]" etc. */
} sv_prop_def;

typedef struct sv_vec_def {
    char *name;
    size_t name_len; /* strlen(name), set with it */
    uint32_t dim;
} sv_vec_def;

typedef struct sv_schema {
    char *name;
    uint32_t shards;     /* >= 1; 0 when multi_tenancy (one shard per tenant) */
    bool multi_tenancy;
    bool auto_tenant_activation; /* multi-tenant only: a read or write of an OFFLOADED tenant onloads it */
    uint32_t vector_dim; /* 0 = the collection has no default vector */
    sv_vec_def *named;
    uint32_t n_named;
    sv_vec_def *multi; /* multi-vectors: each row has `dim` floats */
    uint32_t n_multi;
    sv_prop_def *props;
    uint32_t n_props;
} sv_schema;

/* Parses and validates the collection JSON shape:
 * {"name":"Article","shards":2,"multiTenancy":false,
 *  "vectors":{"default":{"dim":128},"named":{"title":{"dim":64}},"multi":{"colbert":{"dim":32}}},
 *  "properties":[{"name":"title","type":"text"},{"name":"tags","type":"text[]"}]}
 * Errors (SV_EPARSE for bad JSON, SV_EINVAL otherwise) say which field is
 * wrong and what is allowed. */
int sv_schema_parse(const char *json, size_t len, sv_schema **out, sv_err *err);
/* Canonical JSON of the schema in the same shape (malloc'd, NUL-terminated). */
char *sv_schema_to_json(const sv_schema *s);
sv_schema *sv_schema_dup(const sv_schema *s);
void sv_schema_free(sv_schema *s);
int sv_schema_prop_index(const sv_schema *s, const char *name, size_t len);  /* -1 if undeclared */
int sv_schema_named_index(const sv_schema *s, const char *name, size_t len); /* -1 if undeclared */
int sv_schema_multi_index(const sv_schema *s, const char *name, size_t len); /* -1 if undeclared */
const char *sv_prop_type_name(sv_prop_type t, bool array); /* "text", "int[]", ... */

/* ---- record ------------------------------------------------------------- */

typedef struct sv_str {
    const char *ptr;
    uint32_t len;
} sv_str;

/* One declared property of one record. */
typedef struct sv_prop_value {
    bool present;         /* false: absent or JSON null */
    uint32_t count;       /* 1 for scalars; element count for arrays (may be 0) */
    const int64_t *i64;   /* INT, DATE (ms since epoch) */
    const double *f64;    /* NUMBER */
    const uint8_t *b;     /* BOOLEAN, 0 or 1 */
    const sv_str *str;    /* TEXT (UTF-8), OBJECT (compact JSON text) */
    const sv_uuid *uuid;  /* UUID */
} sv_prop_value;

/* The size of one element of a property of type t in a record's arrays, and
 * pointing the value's member for t at p (for code that fills records
 * without the parser, e.g. the importer's typed path). */
size_t sv_prop_elem_size(sv_prop_type t);
void sv_prop_value_point(sv_prop_value *v, sv_prop_type t, void *p);

typedef struct sv_record {
    sv_uuid id;
    bool has_id;                   /* false after parse when the JSON had no id */
    int64_t creation_time;         /* ms since epoch; server-assigned */
    int64_t update_time;
    const float *vector;           /* NULL = absent; else schema->vector_dim floats */
    const float **named;           /* [schema->n_named]; NULL entry = absent; dim floats */
    const float **multi;           /* [schema->n_multi]; NULL entry = absent */
    const uint32_t *multi_rows;    /* [schema->n_multi]; rows of dim floats (>= 1 when present) */
    sv_prop_value *props;          /* [schema->n_props] */
    sv_str extra_json;             /* undeclared properties: compact JSON object, len 0 = none */
    struct sv_record_arena *arena; /* private */
} sv_record;

sv_record *sv_record_new(void);
void sv_record_free(sv_record *r);

/* What an object's JSON says about where it goes. Pointers point into the
 * parsed text (not unescaped: names are validated to need no escaping). */
typedef struct sv_object_route {
    sv_str collection; /* "collection" (or Weaviate's "class"); len 0 if absent */
    sv_str tenant;     /* len 0 if absent */
} sv_object_route;

/* Finds "collection"/"class" and "tenant" at the top level of an object
 * without parsing the rest (batch import needs the schema before parsing). */
int sv_record_peek_route(const char *json, size_t len, sv_object_route *route, sv_err *err);

/* Parses one object in the API shape into r and validates it against s:
 * {"id","vector","namedVectors","multiVectors","properties","tenant","collection"}
 * ("class", "creationTime", "updateTime" accepted and ignored where they
 * carry no data; any other top-level field is an error). UUID format, vector
 * dimensions and property types are checked; undeclared properties go to
 * extra_json. Times are left 0 (the store assigns them). Messages name the
 * field: "properties.tags[2]: expected text, got number". */
int sv_record_parse_json(sv_record *r, const sv_schema *s, const char *json, size_t len, sv_object_route *route,
                         sv_err *err);

/* Binary encoding (versioned; the first byte is the format version). Appends
 * to out. */
int sv_record_encode(const sv_record *r, const sv_schema *s, sv_buf *out, sv_err *err);
/* Decodes data into r. The id is not part of the encoding (it is the key):
 * the caller sets r->id. SV_ECORRUPT on malformed data. */
int sv_record_decode(sv_record *r, const sv_schema *s, const void *data, size_t len, sv_err *err);

/* The API's JSON for one object (appended to out):
 * {"id","collection","tenant"?,"creationTime","updateTime","vector"?,
 *  "namedVectors"?,"multiVectors"?,"properties"}. Floats are printed in the
 * shortest form that reads back as the same float32. tenant may be NULL. */
int sv_record_to_json(const sv_record *r, const sv_schema *s, const char *collection, const char *tenant,
                      sv_buf *out);
/* Pieces used by export's "weaviate" schema (appended to out):
 * all properties, declared and undeclared, as one JSON object; */
int sv_record_properties_json(const sv_record *r, const sv_schema *s, sv_buf *out);
/* named vectors as {"name":[...]} with keys sorted; nothing appended if none; */
int sv_record_named_json(const sv_record *r, const sv_schema *s, sv_buf *out);
/* multi vectors as {"name":[[...],[...]]} with keys sorted; nothing if none. */
int sv_record_multi_json(const sv_record *r, const sv_schema *s, sv_buf *out);

/* True when s[0..len) is well-formed UTF-8 (what a text value must be). */
bool sv_utf8_valid(const char *s, size_t len);

/* ---- batch bodies ------------------------------------------------------- */

/* Splits a streamed request body into object texts without buffering it
 * whole: NDJSON (one object per line, blank lines skipped) or the JSON shape
 * {"objects":[{...},{...}]}. Memory is bounded by the largest object. */
typedef struct sv_batch_splitter sv_batch_splitter;
typedef int (*sv_batch_object_fn)(const char *json, size_t len, void *ud);

sv_batch_splitter *sv_batch_splitter_new(bool ndjson, size_t max_object_bytes);
/* Calls fn for every complete object; a non-zero return from fn stops and is
 * returned. Structural errors (not an object, missing "objects", object
 * larger than the limit -> SV_ETOOBIG) are reported with the byte offset. */
int sv_batch_splitter_feed(sv_batch_splitter *sp, const char *data, size_t len, sv_batch_object_fn fn, void *ud,
                           sv_err *err);
/* Call at end of body: flushes a last NDJSON line without newline, checks the
 * JSON shape was closed. */
int sv_batch_splitter_finish(sv_batch_splitter *sp, sv_batch_object_fn fn, void *ud, sv_err *err);
void sv_batch_splitter_free(sv_batch_splitter *sp);

#endif
