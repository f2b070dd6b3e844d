/* maintenance — the location's own records and the agents that work on the
 * whole store under one exclusive lease (after scrinium's maintenance agents):
 *
 *   {location}/store.json                 the store descriptor (id, format, layout)
 *   {location}/catalog/{timestamp}.json.zst  catalog checkpoints (newest 5 kept)
 *
 * A node refuses to write into a location whose descriptor names another
 * store than its catalog (or a location that holds data but no descriptor)
 * until `maintenance rebuild` adopts it. Agents (rebuild, verify) are jobs of
 * kind "maintenance", one at a time under the catalog lease
 * `maintenance/lease`; a rebuild persists its cursor per batch and resumes
 * after a restart. See docs/maintenance.md.
 *
 * Every answer is a jansson value in the API's JSON shape (caller owns it).
 * Thread-safe.
 */
#ifndef SV_MAINTENANCE_H
#define SV_MAINTENANCE_H

#include <jansson.h>

#include "catalog.h"
#include "core.h"
#include "jobs.h"
#include "snapshot.h"

typedef struct sv_maintenance sv_maintenance;

typedef struct sv_maintenance_opts {
    const char *node_name;          /* NULL = "node1" */
    sv_jobs *jobs;                  /* required (agents are jobs) */
    int64_t lease_ttl_ms;           /* [SHARDVAULT_MAINTENANCE_LEASE_TTL] 30 s */
    int64_t checkpoint_interval_ms; /* [SHARDVAULT_CATALOG_CHECKPOINT_INTERVAL] 60 s; <0 = never */
} sv_maintenance_opts;

/* Reads (or, on an empty location, creates) the store descriptor, installs
 * the write guard and checkpoint notice on snap, and resumes an unfinished
 * rebuild. cat, snap and the jobs service are borrowed and must outlive it. */
int sv_maintenance_open(const sv_maintenance_opts *opts, sv_catalog *cat, sv_snapshot *snap, sv_maintenance **out,
                        sv_err *err);
/* Stops a running agent (a rebuild resumes at the next open), writes a due
 * checkpoint and frees. NULL is fine. */
void sv_maintenance_close(sv_maintenance *m);

/* The recovery kit as plain text (malloc'd). SV_ESTATE while the node has no
 * store id (adopt the location with a rebuild first). */
int sv_maintenance_recovery_kit(sv_maintenance *m, char **text, sv_err *err);
/* {storeId, location, descriptor: "ok"|"missing"|"foreign"|"invalid"|"unknown", problem?,
 *  lease: {...}|null, agent: {jobId, op, counters, etaMs}|null, lastCheckpoint}. */
int sv_maintenance_status(sv_maintenance *m, json_t **out, sv_err *err);
/* Agents: answer {jobId} (SV_ECONFLICT while another agent holds the lease). */
int sv_maintenance_rebuild(sv_maintenance *m, json_t *body, json_t **out, sv_err *err);
int sv_maintenance_verify(sv_maintenance *m, json_t *body, json_t **out, sv_err *err);
/* body {"target": "s3://bucket/prefix" | "file:///dir"}: copies descriptor,
 * blobs, manifests and checkpoints there (skipping what is there, verifying
 * each copy; writes wait meanwhile), then switches the node's location in one
 * catalog write. The old location is left intact. */
int sv_maintenance_move(sv_maintenance *m, json_t *body, json_t **out, sv_err *err);
/* body {"blobs": 200, "maxBlobBytes": "10Mi", "concurrency": 10, "seed"?}:
 * tests the location itself under analysis/{jobId}/ (write/read back, ranged
 * reads, multipart, overwrite atomicity, aborted uploads, listing,
 * conditional create) and removes what it wrote. */
int sv_maintenance_analyze(sv_maintenance *m, json_t *body, json_t **out, sv_err *err);
/* Revokes the lease whoever holds it: its agent stops within TTL/3 and ends
 * FAILED "lease lost". {revoked: bool}. */
int sv_maintenance_lease_break(sv_maintenance *m, json_t **out, sv_err *err);
/* Writes a checkpoint now (when the descriptor is ours): {key}. */
int sv_maintenance_checkpoint(sv_maintenance *m, json_t **out, sv_err *err);

/* The hook for offloaded tenants found by a rebuild
 * ({location}/tenants/{collection}/{tenant}/manifest.json): the registry
 * installs it to re-create its tenant record. Without it a rebuild only
 * counts them ("tenantsFound"). Called from rebuild workers, not in dry runs;
 * a non-zero return fails the batch. */
typedef int (*sv_maintenance_tenant_fn)(void *ud, const char *collection, const char *tenant,
                                        const char *manifest_key, sv_err *err);
void sv_maintenance_set_tenant_adopter(sv_maintenance *m, sv_maintenance_tenant_fn fn, void *ud);

/* Prometheus text (signature of sv_metrics_fn). */
void sv_maintenance_metrics(sv_buf *out, void *m);

#endif
