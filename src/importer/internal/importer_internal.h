/* importer internals: the row conversion plan (convert.c). */
#ifndef SV_IMPORTER_INTERNAL_H
#define SV_IMPORTER_INTERNAL_H

#include <jansson.h>

#include "core.h"
#include "importer.h"
#include "parquet.h"

#define IMP_MAX_PATH 8
#define IMP_MAX_MAPS 512

typedef struct imp_col {
    int depth;
    int idx[IMP_MAX_PATH];
    const sv_pq_rnode *node;
    char name[200];
} imp_col;

typedef enum {
    IMP_T_VECTOR,
    IMP_T_NAMED,       /* one named vector */
    IMP_T_MULTI,       /* one multi vector */
    IMP_T_NAMED_ALL,   /* an object column {name: vector} */
    IMP_T_MULTI_ALL,   /* an object column {name: [[...]]} */
    IMP_T_PROP,        /* one property */
    IMP_T_PROPS_SPREAD /* an object column whose members become properties */
} imp_target;

typedef struct imp_map {
    imp_target kind;
    char name[72];
    imp_col col;
} imp_map;

typedef enum { IMP_LAYOUT_OTHER, IMP_LAYOUT_TYPED, IMP_LAYOUT_WEAVIATE } imp_layout;

typedef struct imp_plan {
    const sv_pq_rnode *root;
    char file[1100];
    imp_layout layout;
    imp_col id_col, key_col;
    bool id_required, rest;
    int n;
    imp_map maps[IMP_MAX_MAPS];
} imp_plan;

int imp_plan_new(const sv_pq_rnode *root, json_t *mapping, const char *file, imp_plan **out, sv_err *err);
/* What of a mapping can be checked without a file (fields, their types,
 * property names): the request's 422, before any file is read. */
int imp_mapping_check(json_t *mapping, sv_err *err);
void imp_plan_free(imp_plan *p);
/* Appends one object's JSON text ({"id","collection","tenant"?,"vector"?,
 * "namedVectors"?,"multiVectors"?,"properties"}) to out and its id to id;
 * SV_EINVAL with why (out unchanged) for a row that cannot be an object. */
int imp_row_text(const imp_plan *p, const sv_pq_value *row, int64_t rownum, const char *collection,
                 const char *tenant, sv_buf *out, char id[37], char *why, size_t whylen);
/* The row's id: from the id column (a 16-byte FIXED_LEN_BYTE_ARRAY or a
 * UUID string), v5 of the key column's JSON text, else v5 of file#row.
 * SV_EINVAL with why naming the column when it cannot be one. ids: the
 * id as text too, or NULL. */
int imp_row_id(const imp_plan *p, const sv_pq_value *row, int64_t rownum, sv_uuid *idu, char ids[37], char *why,
               size_t whylen);
/* The value of column c in row (a null value when an enclosing group is null). */
const sv_pq_value *imp_col_value(const imp_col *c, const sv_pq_value *row);
json_t *imp_value_json(const sv_pq_rnode *n, const sv_pq_value *v, char *why, size_t whylen);
bool imp_is_export_layout(const sv_pq_rnode *root);
void imp_row_uuid(const char *file, int64_t row, sv_uuid *u);

/* ---- the typed path (typed.c): rows straight into records ---------------- */

/* A plan checked against the target collection's schema: which property,
 * vector or multi-vector each mapped column fills. NULL from imp_typed_new
 * (and 0) when the plan has an entry the typed path does not take (an
 * undeclared property, named or multi vector, or no default vector for a
 * vector column): the file then goes through the text path. */
typedef struct imp_typed imp_typed;
int imp_typed_new(const imp_plan *p, const sv_schema *s, imp_typed **out, sv_err *err);
void imp_typed_free(imp_typed *t);
const sv_schema *imp_typed_schema(const imp_typed *t);

/* One thread's record and scratch memory. */
typedef struct imp_trow imp_trow;
imp_trow *imp_trow_new(const imp_typed *t);
void imp_trow_free(imp_trow *w);
/* Fills the thread's record from row: 0 (the record is ready, id set,
 * valid until the next call), 1 when a value is not one the typed path
 * converts exactly as the text path would (the caller uses imp_row_text for
 * this row: same result, same messages), or SV_EINVAL with why (the id). */
int imp_row_record(const imp_typed *t, imp_trow *w, const sv_pq_value *row, int64_t rownum, sv_record **rec,
                   char *why, size_t whylen);

#endif
