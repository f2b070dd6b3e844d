/* importer — Parquet back into collections, as jobs: shardvault's own
 * exports (typed and weaviate schemas, files in Weaviate's export layout)
 * and Parquet written by other tools through a column mapping.
 *
 *   POST   /v1/import/{backend}       sv_importer_create  -> 202 {id, status: "STARTED"}
 *   GET    /v1/import/{backend}/{id}  sv_importer_status
 *   DELETE /v1/import/{backend}/{id}  sv_importer_cancel
 *
 * backend is one of the export backends (filesystem | s3); files are read
 * from that backend's root only, through the location interface (ranged
 * reads, footer first). Each import is also a job of kind "import". An
 * import's record (catalog key imports/{backend}/{id}) is rewritten after
 * every row group whose objects are durably written, so after a restart it
 * resumes at the row group after the last committed one.
 *
 * Answers are jansson values in the API's shapes (caller owns them).
 * Thread-safe. */
#ifndef SV_IMPORTER_H
#define SV_IMPORTER_H

#include <jansson.h>

#include "catalog.h"
#include "core.h"
#include "parquet.h"
#include "store.h"

struct sv_jobs;
struct sv_export;
struct sv_location;

typedef struct sv_importer sv_importer;

typedef struct sv_importer_opts {
    sv_store *store;          /* borrowed */
    sv_catalog *catalog;      /* borrowed */
    struct sv_jobs *jobs;     /* borrowed, may be NULL */
    struct sv_export *export; /* borrowed: the backends' locations */
    const char *node_name;    /* NULL = "node1" */
    /* Rows per object batch within a row group (0 = 1000) and the reader's
     * memory bound per row group (0 = SHARDVAULT_IMPORT_MAX_ROW_GROUP_BYTES, else 1 GiB). */
    int64_t batch_rows;
    int64_t max_row_group_bytes;
    /* Threads turning rows into objects and writing them (0 =
     * SHARDVAULT_IMPORT_WORKERS, else the CPU count, at most 8). */
    int64_t workers;
    /* A shard's share of a part of a row group (about 16 MiB of objects) of
     * at least this many objects is written as one table file ingested
     * whole (store.h, bulk mode); fewer
     * go through the normal write path (0 = SHARDVAULT_IMPORT_BULK_MIN_OBJECTS,
     * else 4096; a negative value turns bulk writes off). */
    int64_t bulk_min_objects;
} sv_importer_opts;

/* Opens the service and resumes the imports this node was running. */
int sv_importer_open(const sv_importer_opts *opts, sv_importer **out, sv_err *err);
/* Stops running imports where they are (their records stay resumable). */
void sv_importer_shutdown(sv_importer *imp);
void sv_importer_close(sv_importer *imp); /* NULL is fine */

int sv_importer_create(sv_importer *imp, const char *backend, json_t *body, json_t **out, sv_err *err);
int sv_importer_status(sv_importer *imp, const char *backend, const char *id, json_t **out, sv_err *err);
/* Stops a running import (it ends CANCELED; objects already written stay)
 * and returns once it has stopped. SV_ECONFLICT if finished. */
int sv_importer_cancel(sv_importer *imp, const char *backend, const char *id, sv_err *err);

/* Prometheus text (sv_metrics_fn); ud is the importer. */
void sv_importer_metrics(sv_buf *out, void *ud);

/* ---- rows to objects (also used by the CLI's local import) --------------- */

/* Turns the rows of one file into objects in the API's shape
 * ({"id","vector"?,"namedVectors"?,"multiVectors"?,"properties"}).
 * mapping NULL: shardvault's export layouts are recognised; otherwise "id"
 * and "vector" columns by name and every other column a property. file names
 * the file in messages and seeds generated ids. */
typedef struct sv_import_rows sv_import_rows;
int sv_import_rows_new(const sv_pq_rnode *root, json_t *mapping, const char *file, sv_import_rows **out,
                       sv_err *err);
void sv_import_rows_free(sv_import_rows *p);
/* Appends one row's object as JSON text, with "collection" (and "tenant"
 * when not NULL), to out, and its id to id (rownum: the row's number in
 * the file, for generated ids). A row that cannot become an object answers
 * SV_EINVAL with why naming the column, out unchanged. */
int sv_import_row(const sv_import_rows *p, const sv_pq_value *row, int64_t rownum, const char *collection,
                  const char *tenant, sv_buf *out, char id[37], char *why, size_t whylen);

#endif
