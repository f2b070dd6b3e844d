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
void imp_plan_free(imp_plan *p);
/* Appends one object's JSON text ({"id","collection","tenant"?,"vector"?,
 * "namedVectors"?,"multiVectors"?,"properties"}) to out and its id to id;
 * SV_EINVAL with why (out unchanged) for a row that cannot be an object. */
int imp_row_text(const imp_plan *p, const sv_pq_value *row, int64_t rownum, const char *collection,
                 const char *tenant, sv_buf *out, char id[37], char *why, size_t whylen);
json_t *imp_value_json(const sv_pq_rnode *n, const sv_pq_value *v, char *why, size_t whylen);
bool imp_is_export_layout(const sv_pq_rnode *root);
void imp_row_uuid(const char *file, int64_t row, char out[37]);

#endif
