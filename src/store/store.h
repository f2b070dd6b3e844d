/* store — collections, tenants, shards and objects.
 *
 * Collections, tenants and shard placement persist in the catalog before the
 * in-memory view changes; at open the view is rebuilt from the catalog. Each
 * shard is one RocksDB (engine) under <data>/shards/<collection uid>/<shard>.
 * Objects map to shards by a stable hash of the UUID, or to their tenant.
 *
 * Control-plane answers are jansson values in the API's JSON shapes (caller
 * owns them: json_decref). Object answers are appended to an sv_buf as JSON.
 * Thread-safe: any number of threads may call any function concurrently.
 */
#ifndef SV_STORE_H
#define SV_STORE_H

#include <jansson.h>

#include "catalog.h"
#include "core.h"
#include "record.h"

typedef struct sv_store sv_store;

typedef struct sv_store_opts {
    const char *data_dir;          /* required */
    int64_t block_cache_bytes;     /* 0 = engine default */
    int64_t write_buffer_bytes;    /* 0 = engine default */
    bool sync_writes;              /* fsync every write (power-loss durability) */
    const char *node_name;         /* shard placement; NULL = "node1" */
    /* Byte budget of one page of sv_store_list_objects (see there). 0 = the
     * SHARDVAULT_LIST_PAGE_BYTES environment variable, else 16 MiB. */
    int64_t list_page_bytes;
    /* Shards kept open at most; past it the least recently used idle ones
     * are closed (and reopened on their next use). 0 = the
     * SHARDVAULT_MAX_OPEN_SHARDS environment variable, else sized from the
     * process's file-handle limit: (soft limit - 256) / 16, at least 8. */
    int64_t max_open_shards;
} sv_store_opts;

#define SV_STORE_LIST_PAGE_BYTES_DEFAULT (16 << 20)

/* cat is borrowed and must outlive the store. */
int sv_store_open(const sv_store_opts *opts, sv_catalog *cat, sv_store **out, sv_err *err);
/* Flushes and closes every shard. NULL is fine. */
void sv_store_close(sv_store *st);

/* ---- collections -------------------------------------------------------- */

int sv_store_create_collection(sv_store *st, const char *json, size_t len, json_t **out, sv_err *err);
/* flags of the _ex calls: SV_STORE_PLACE_HERE puts the new shards (or
 * tenants) on this node instead of where placement would (a cluster's
 * import writes only its own node's shards); without placement it changes
 * nothing. */
#define SV_STORE_PLACE_HERE 1u
int sv_store_create_collection_ex(sv_store *st, const char *json, size_t len, unsigned flags, json_t **out,
                                  sv_err *err);
int sv_store_get_collection(sv_store *st, const char *name, json_t **out, sv_err *err);
int sv_store_list_collections(sv_store *st, json_t **out, sv_err *err);
int sv_store_delete_collection(sv_store *st, const char *name, sv_err *err);
/* Name reservation for restores (in memory only: a restore service reserves
 * again at start for the jobs it resumes). While a name is reserved,
 * sv_store_create_collection of it answers SV_EEXIST saying a restore is
 * creating it, and sv_store_adopt_collection of it is allowed (the restore
 * that reserved it adopts it; a successful adopt clears the reservation).
 * reserve: SV_EINVAL for an invalid name, SV_EEXIST if the collection exists
 * or the name is already reserved. unreserve: a name not reserved is fine. */
int sv_store_reserve_collection(sv_store *st, const char *name, sv_err *err);
void sv_store_unreserve_collection(sv_store *st, const char *name);
/* A copy of a collection's schema (caller frees with sv_schema_free). */
int sv_store_schema(sv_store *st, const char *name, sv_schema **out, sv_err *err);

/* ---- tenants and shards ------------------------------------------------- */

/* Tenant bodies are a list, bare or wrapped: [...] or {"tenants": [...]}.
 * The list in body (borrowed), NULL when it is neither. */
json_t *sv_store_tenants_body(json_t *body);
/* body: {"tenants":[{"name":"t1","status"?:"ACTIVE"|"INACTIVE"}]} */
int sv_store_add_tenants(sv_store *st, const char *collection, json_t *body, json_t **out, sv_err *err);
int sv_store_add_tenants_ex(sv_store *st, const char *collection, json_t *body, unsigned flags, json_t **out,
                            sv_err *err);
/* body: {"tenants":[{"name":"t1","status":"INACTIVE"}]} */
int sv_store_update_tenants(sv_store *st, const char *collection, json_t *body, json_t **out, sv_err *err);
/* body: {"tenants":["t1","t2"]} */
int sv_store_delete_tenants(sv_store *st, const char *collection, json_t *body, sv_err *err);
int sv_store_list_tenants(sv_store *st, const char *collection, json_t **out, sv_err *err);
/* The API's JSON shape of sv_store_shards (plus each shard's node). */
int sv_store_list_shards(sv_store *st, const char *collection, json_t **out, sv_err *err);

/* ---- typed introspection (for other services) --------------------------- */

/* A shard's activity status. The store itself reports ACTIVE and INACTIVE;
 * the others are the registry's transitional and offloaded states. */
typedef enum {
    SV_SHARD_ACTIVE,
    SV_SHARD_INACTIVE,
    SV_SHARD_OFFLOADED,
    SV_SHARD_OFFLOADING,
    SV_SHARD_ONLOADING,
} sv_shard_status;

/* "ACTIVE", "INACTIVE", … (a static string). */
const char *sv_shard_status_name(sv_shard_status status);

typedef struct sv_shard_info {
    char name[72];          /* "shard0000"… or the tenant name */
    char node[65];          /* its owner (placement) */
    bool local;             /* served by this node (else objects -1, bytes 0) */
    bool is_tenant;
    sv_shard_status status;
    int64_t objects;        /* exact count; -1 when not loaded (INACTIVE shards are never opened to count) */
    int64_t bytes;          /* on disk */
} sv_shard_info;

/* The names of every collection, in creation order: a malloc'd array of *n
 * names the caller frees with free() (non-NULL even when *n is 0). */
typedef char sv_collection_name[129];
int sv_store_collection_names(sv_store *st, sv_collection_name **out, size_t *n, sv_err *err);

/* Every shard of a collection, in order (fixed shards by index, tenants by
 * name), at one instant of the shard set. ACTIVE shards not yet open are
 * opened to count them; INACTIVE tenants are not opened. On success *out is a
 * malloc'd array of *n entries the caller frees with free() (non-NULL even
 * when *n is 0); on failure *out is NULL and *n 0. SV_ENOTFOUND if there is
 * no such collection. */
int sv_store_shards(sv_store *st, const char *collection, sv_shard_info **out, size_t *n, sv_err *err);
/* As sv_store_shards, doing only the work flags ask for: without
 * SV_SHARDS_COUNT no shard is opened (objects is -1 for one not open), and
 * without SV_SHARDS_BYTES bytes is 0 (no directory walk). */
enum { SV_SHARDS_COUNT = 1, SV_SHARDS_BYTES = 2 };
int sv_store_shards_ex(sv_store *st, const char *collection, unsigned flags, sv_shard_info **out, size_t *n,
                       sv_err *err);

/* ---- tenant offload (the store keeps the statuses; a mover moves bytes) ---
 *
 * PUT tenants with "OFFLOADED" on an ACTIVE or INACTIVE tenant persists it
 * OFFLOADING (remembering the status to go back to), closes its shard and
 * calls mover.offload; "ACTIVE"/"INACTIVE" on an OFFLOADED tenant persists it
 * ONLOADING and calls mover.onload. The mover works in the background and
 * reports exactly once with sv_store_offload_done / sv_store_onload_done.
 * While OFFLOADING or ONLOADING, reads and writes of the tenant wait (with
 * autoTenantActivation) or fail SV_ESTATE; an OFFLOADED tenant is onloaded
 * by its first read or write with autoTenantActivation, else SV_ESTATE says
 * how to bring it back. After a crash, open settles OFFLOADING tenants back
 * to their previous status and ONLOADING ones back to OFFLOADED. */
typedef struct sv_tenant_mover {
    void *self;
    /* dir: the tenant's closed RocksDB directory (absent for a tenant that
     * never held data); objects: its exact count. Starts the work, returns. */
    int (*offload)(void *self, const char *collection, const char *tenant, const char *dir, int64_t objects,
                   sv_err *err);
    /* Lays the tenant's files out at dir (which does not exist) in the
     * background. */
    int (*onload)(void *self, const char *collection, const char *tenant, const char *dir, sv_err *err);
    /* Synchronously lays an OFFLOADED tenant's files out at dst (which does
     * not exist) for a capture (snapshot, export). */
    int (*materialize)(void *self, const char *collection, const char *tenant, const char *dst, sv_err *err);
    /* The tenant (OFFLOADED, OFFLOADING or ONLOADING) was deleted, or its
     * collection: drop what the mover keeps of it. Called after the delete
     * is persisted, with the store's DDL lock held: it must not call the
     * store. */
    void (*forget)(void *self, const char *collection, const char *tenant);
} sv_tenant_mover;

/* Copies *m; call once before serving requests. Without a mover OFFLOADED is
 * refused (SV_EUNSUPPORTED). */
void sv_store_set_tenant_mover(sv_store *st, const sv_tenant_mover *m);
/* result 0: OFFLOADING -> OFFLOADED (then the local files are removed); else
 * back to the previous status, reason logged. SV_ESTATE if the tenant is not
 * OFFLOADING (deleted meanwhile, …). */
int sv_store_offload_done(sv_store *st, const char *collection, const char *tenant, int result, const char *reason,
                          sv_err *err);
/* result 0: ONLOADING -> its target status (the files at dir are made
 * durable first); else back to OFFLOADED (whatever is at dir is removed). */
int sv_store_onload_done(sv_store *st, const char *collection, const char *tenant, int result, const char *reason,
                         sv_err *err);
/* As sv_store_update_tenants; with wait_ms > 0 answers once every tenant of
 * the body left OFFLOADING/ONLOADING (SV_ETIMEOUT past wait_ms), with their
 * final statuses. */
int sv_store_update_tenants_wait(sv_store *st, const char *collection, json_t *body, int64_t wait_ms, json_t **out,
                                 sv_err *err);
/* Records a tenant whose files are only in the location (a catalog rebuilt
 * from the bucket): OFFLOADED, with its object count. 0 if it is already
 * OFFLOADED; SV_EEXIST if a tenant of that name exists otherwise (the live
 * one wins); SV_ENOTFOUND / SV_EINVAL for a missing or not multi-tenant
 * collection. */
int sv_store_adopt_offloaded_tenant(sv_store *st, const char *collection, const char *tenant, int64_t objects,
                                    sv_err *err);
/* SHARDVAULT_ACQUIRE_TIMEOUT (ms), as parsed at open: how long a read waits
 * for a tenant or shard to become readable. */
int64_t sv_store_acquire_timeout_ms(const sv_store *st);
/* A tenant's status (SV_ENOTFOUND if unknown). */
int sv_store_tenant_status(sv_store *st, const char *collection, const char *tenant, sv_shard_status *out,
                           sv_err *err);

/* ---- objects ------------------------------------------------------------ */

/* Creates or replaces one object (the API shape). path_id, when non-NULL,
 * is the id from the URL and must match the body's id if it has one.
 * query_tenant (may be NULL) is ?tenant=. Appends the stored object's JSON. */
int sv_store_put_object(sv_store *st, const char *collection, const char *path_id, const char *query_tenant,
                        const char *json, size_t len, sv_buf *out, sv_err *err);
int sv_store_get_object(sv_store *st, const char *collection, const char *tenant, const char *id, sv_buf *out,
                        sv_err *err);
/* Writes one object already encoded for this collection's current schema
 * (read from a snapshot of it whose schema is the same — the caller checks
 * with sv_store_schema): its creation and update times are kept as encoded.
 * An existing object is replaced. */
int sv_store_put_encoded(sv_store *st, const char *collection, const char *tenant, const sv_uuid *id, const void *val,
                         size_t len, sv_err *err);
int sv_store_delete_object(sv_store *st, const char *collection, const char *tenant, const char *id, sv_err *err);
/* Appends {"objects":[...],"next":<uuid>|null}: objects ordered by id across
 * the collection's shards (a merge of their ordered scans), those after
 * `after` (may be NULL). A page ends after `limit` objects or once it holds
 * the store's page byte budget (opts.list_page_bytes; it always holds at least
 * one object, so it may pass the budget by one object). `next` is the id of
 * the last object on the page when more follow, else null; see docs/api.md. */
int sv_store_list_objects(sv_store *st, const char *collection, const char *tenant, const char *after, int limit,
                          sv_buf *out, sv_err *err);
/* That budget (a cluster's merged pages end by the same rule). */
int64_t sv_store_list_page_bytes(const sv_store *st);

/* ---- batch import ------------------------------------------------------- */

/* A batch accumulates objects from one request and writes them shard by
 * shard in groups; each object gets its own result, so one bad object does
 * not fail the others. An object's result is final (and its write durable
 * per the store's durability) once sv_batch_flush or sv_batch_end returned. */
typedef struct sv_batch sv_batch;

sv_batch *sv_batch_begin(sv_store *st);
/* Adds one object's JSON (with "collection"); never fails the batch: a bad
 * object is recorded as an error result. Returns SV_ENOMEM only. */
int sv_batch_add(sv_batch *b, const char *json, size_t len);
/* An object-level permission check, asked before an object's collection is
 * looked up: false refuses that object (its result says it is forbidden). */
typedef bool (*sv_batch_check_fn)(void *ud, const char *collection, const char *tenant);
void sv_batch_set_check(sv_batch *b, sv_batch_check_fn fn, void *ud);
/* Adds one object already built as a record (the typed path: no JSON). rec
 * must have been filled against schema, a copy of the collection's schema
 * (sv_store_schema); if the collection's schema no longer has the same
 * shape the object fails with a message saying so. rec->id is used when
 * has_id, else one is generated; times are set here. The record is encoded
 * before the call returns (it may be reused at once). tenant may be NULL.
 * Never fails the batch; returns SV_ENOMEM only. */
int sv_batch_add_record(sv_batch *b, const char *collection, const char *tenant, const sv_schema *schema,
                        sv_record *rec);
/* A move (docs/cluster.md "Shard moves") switched an object's shard to
 * another node while the object waited at the shard's write gate: fn gets
 * the object's JSON (as a GET answers it, which the batch parser reads back)
 * and its result index, during the write; the object's result stays an
 * error naming the node. Without fn that error is all. */
typedef void (*sv_batch_moved_fn)(void *ud, size_t result, const char *node, const char *json, size_t len);
void sv_batch_set_moved(sv_batch *b, sv_batch_moved_fn fn, void *ud);
/* Appends {"results":[...],"ok":n,"failed":m} and frees the batch. */
int sv_batch_end(sv_batch *b, sv_buf *out, sv_err *err);
/* Writes what is pending, calls fn for each failed object (idx: its order of
 * adding; id "" when it had none) and frees the batch; *ok = objects written. */
typedef void (*sv_batch_result_fn)(void *ud, size_t idx, const char *id, const char *error);
int sv_batch_end_results(sv_batch *b, sv_batch_result_fn fn, void *ud, size_t *ok, sv_err *err);
void sv_batch_abort(sv_batch *b); /* frees without writing pending objects */
/* Bulk mode (set before the first add; min_objects 0 = off): nothing is
 * written until the end, and then each shard's objects (when there are at
 * least min_objects of them) go in as one table file ingested whole
 * (engine.h "bulk load"): no memtable, WAL, flush or compaction on the way.
 * Same results and counts as the normal path; durable (fsynced) once
 * sv_batch_end* returns. The shards stay in bulk mode (no automatic
 * compaction) until sv_store_bulk_done. For imports of many objects. */
void sv_batch_set_bulk(sv_batch *b, size_t min_objects);
/* What a write does with an id its shard already holds (set before the
 * first add): SV_BATCH_REPLACE, the default, writes over it (keeping its
 * creation time); SV_BATCH_KEEP writes nothing for it and gives the object
 * the error SV_BATCH_EXISTS. In KEEP, an id added twice to one batch is
 * written once at most (the first in the batch's order, when it is new;
 * absorbed batches come after the absorbing one's objects). The
 * check is the write's own lookup, under the shard's write lock: nothing can
 * come in between. */
typedef enum { SV_BATCH_REPLACE, SV_BATCH_KEEP } sv_batch_conflict;
void sv_batch_set_conflict(sv_batch *b, sv_batch_conflict c);
/* "an object with this id already exists": a held object's error is this
 * very string (result callbacks may compare the pointer). */
extern const char SV_BATCH_EXISTS[];
/* Room for this many more objects and bytes of their encodings, so a
 * large batch does not grow (and copy) as it fills. SV_ENOMEM. */
int sv_batch_reserve(sv_batch *b, size_t objects, size_t bytes);
/* Bytes of encoded objects pending. */
size_t sv_batch_bytes(const sv_batch *b);
/* Moves o's pending objects and results into b (o's result i becomes b's
 * result nresults(b)+i) and frees o. Both begun, neither ended. */
int sv_batch_absorb(sv_batch *b, sv_batch *o, sv_err *err);
/* Ends bulk mode on the collection's open shards: compaction catches up in
 * the background. Harmless when none is in bulk mode. */
void sv_store_bulk_done(sv_store *st, const char *collection);
/* Objects written so far (a batch writes in groups while it is filled). */
size_t sv_batch_written(const sv_batch *b);

/* ---- point-in-time capture and adoption (export, snapshots, restore) ---- */

/* UNAVAILABLE: an offloaded tenant whose files could not be laid out (the
 * reason says why); export skips it, a snapshot fails. */
typedef enum { SV_CAPTURE_OK, SV_CAPTURE_EMPTY, SV_CAPTURE_UNAVAILABLE } sv_capture_status;

typedef struct sv_shard_capture {
    char name[72];            /* "shard0000"… or the tenant name */
    bool is_tenant;
    bool was_active;          /* false: captured from disk without loading */
    sv_capture_status status; /* EMPTY: the shard never held data (no directory) */
    char dir[1200];           /* the checkpoint: a RocksDB directory (when OK) */
    int64_t objects;          /* exact count at capture */
    char reason[512];         /* UNAVAILABLE: why */
} sv_shard_capture;

typedef struct sv_capture {
    char collection[129];
    sv_schema *schema;
    sv_shard_capture *shards;
    size_t nshards;
    int64_t captured_at; /* ms since epoch */
} sv_capture;

/* Captures every shard of a collection (INACTIVE tenants from disk, without
 * loading them) as RocksDB checkpoints under dst_dir/<shard>/, which must not
 * exist and should be on the data dir's filesystem so files are hard links.
 * Writes to the collection are held for the duration, so the capture is one
 * consistent point in time across all its shards. The caller owns the
 * directories (removes them when done) and frees the capture. */
int sv_store_capture(sv_store *st, const char *collection, const char *dst_dir, sv_capture **out, sv_err *err);
void sv_capture_free(sv_capture *cap); /* does not touch the directories */
/* The same with flags. SV_CAPTURE_LOCAL: capture only the shards placed on
 * this node (a cluster export's participant); the others are left out of
 * the capture instead of refusing it. */
#define SV_CAPTURE_LOCAL 1u
int sv_store_capture_ex(sv_store *st, const char *collection, const char *dst_dir, unsigned flags, sv_capture **out,
                        sv_err *err);

/* Creates a collection from complete shard directories (e.g. restored from
 * a snapshot). schema_json names the new collection; names[i] is a fixed
 * shard name ("shard0000"…, all of them) or a tenant name, dirs[i] its
 * RocksDB directory on the data dir's filesystem. Each directory gets a fresh
 * RocksDB identity and is moved into the store, and the moves are made
 * durable (directories fsynced) before the catalog records the collection;
 * it appears only when everything is in place. SV_EEXIST if the name is
 * taken; a name reserved with sv_store_reserve_collection may be adopted (and
 * is no longer reserved after). On failure nothing is created, the
 * directories are left where they were and a reservation stays. */
int sv_store_adopt_collection(sv_store *st, const char *schema_json, size_t len, const char *const *names,
                              const char *const *dirs, size_t n, json_t **out, sv_err *err);
/* A restore across nodes (docs/cluster.md "Restore of a cluster-wide
 * snapshot"): the same, with each shard's owner (nodes may be NULL: all
 * here; nodes[i] "" or this node: dirs[i] is moved in; another node: it laid
 * the shard out first with sv_store_place_shard under uid, and dirs[i] is
 * not used) and the collection's uid (16 lower-case hex digits; NULL: a new
 * one). The record and every shard's placement go in one transaction. */
int sv_store_adopt_collection_placed(sv_store *st, const char *schema_json, size_t len, const char *const *names,
                                     const char *const *dirs, const char *const *nodes, const char *uid, size_t n,
                                     json_t **out, sv_err *err);
/* On an owner, before the adoption: moves the complete shard directory dir
 * to where shard `name` of the collection with that uid lives on this node
 * (a fresh RocksDB identity, made durable). */
int sv_store_place_shard(sv_store *st, const char *uid, const char *name, const char *dir, sv_err *err);
/* Removes what sv_store_place_shard laid out under uid (an adoption that did
 * not happen); never the directory of a collection in this node's view. */
void sv_store_unplace(sv_store *st, const char *uid);

/* The process's one RocksDB engine (one block cache, one write-buffer
 * budget): the store creates it and other services open their read-only
 * databases (checkpoints, restored shards) through it. Valid until the store
 * closes. */
struct sv_engine *sv_store_engine(const sv_store *st);

/* <data-dir>/tmp: scratch space on the data dir's filesystem, emptied at start. */
const char *sv_store_tmp_dir(const sv_store *st);

/* ---- placement across nodes (docs/cluster.md) ----------------------------
 * Every node keeps every collection and tenant in its view (kept current by
 * sv_store_apply_record from a catalog watch, and sv_store_sync_collection on
 * a miss) but serves only the shards placed on it. Off by default: on one
 * node every shard is this node's, whatever its record says. */
typedef struct sv_store_placer {
    void *self;
    /* Fills out[i] with the owner of each of n new shards. */
    int (*place)(void *self, size_t n, char (*out)[65], sv_err *err);
} sv_store_placer;

/* Turns placement on (call once, before requests). */
void sv_store_set_placer(sv_store *st, const sv_store_placer *p);
bool sv_store_placement_on(const sv_store *st);
/* This node's name. */
const char *sv_store_node(const sv_store *st);
/* The owner of the shard object id (may be NULL for a tenant's shard) of
 * collection (and tenant) goes to; shard_out (may be NULL) its name. A
 * collection or tenant this view does not know is looked up in the catalog
 * first (another node may just have created it). */
int sv_store_owner(sv_store *st, const char *collection, const char *tenant, const char *id, char node[65],
                   char shard_out[72], sv_err *err);
/* The distinct owners of a listing's shards (every fixed shard, or the
 * tenant's), in name order: *out malloc'd (free()), *n entries. */
int sv_store_owner_nodes(sv_store *st, const char *collection, const char *tenant, char (**out)[65], size_t *n,
                         sv_err *err);
/* The distinct owners of every shard of a collection (fixed shards or
 * tenants), in name order: *out malloc'd (free()), *n entries (0 for a
 * multi-tenant collection without tenants). */
int sv_store_collection_nodes(sv_store *st, const char *collection, char (**out)[65], size_t *n, sv_err *err);
/* Adds to counts[i] the shards (fixed shards and tenants) this view places on
 * nodes[i], for placement: read from memory, as current as the view. */
void sv_store_count_placed(sv_store *st, const char (*nodes)[65], int64_t *counts, size_t n);
/* Applies a catalog change under collections/ or tenants/ made by another
 * node (val NULL: deleted) to the view; a no-op when the view has it. */
int sv_store_apply_record(sv_store *st, const char *key, const char *val, size_t len, sv_err *err);
/* Reads collection name (and its tenants) from the catalog into the view,
 * or drops it from the view when the catalog no longer has it. */
int sv_store_sync_collection(sv_store *st, const char *name, sv_err *err);

/* ---- shard moves (store_move.c; docs/cluster.md "Shard moves") -----------
 * The store's part of moving a shard (a fixed shard or a tenant) to another
 * node: a per-shard write gate and the ownership switch. The mover (cluster
 * module) copies the files. Writes that meet a closed gate wait up to
 * SV_STORE_MOVE_HOLD_MS, then go on: here if the move was abandoned, or fail
 * SV_EUNAVAIL naming the new owner if it switched (the server forwards). */
#define SV_STORE_MOVE_HOLD_MS 35000

/* ---- a cluster snapshot's cut (store_move.c; docs/cluster.md "Cluster-wide
 * snapshot") ----
 * Closes the write gate of every shard of the collection placed on this
 * node and returns once the writes inside have finished (SV_ETIMEOUT, gates
 * open again, after drain_ms). Writes that meet the closed gate wait (they do
 * not fail); the gates open at sv_store_cut_open(token) or by themselves
 * SV_STORE_CUT_HOLD_MS after the close. *nshards (may be NULL): the shards
 * closed. Take the checkpoints (sv_store_capture_ex, SV_CAPTURE_LOCAL) while
 * they are closed. */
#define SV_STORE_CUT_HOLD_MS 2000
int sv_store_cut_close(sv_store *st, const char *collection, int64_t drain_ms, uint64_t *token, size_t *nshards,
                       sv_err *err);
/* Opens the gates that cut closed; *expired (may be NULL) = one had opened by
 * itself already (the hold ran out: the cut no longer holds). */
int sv_store_cut_open(sv_store *st, const char *collection, uint64_t token, bool *expired);
/* Every shard named is this collection's, still held by the cut `token`
 * (taken under it, its gate not yet reopened). */
bool sv_store_cut_covers(sv_store *st, const char *collection, uint64_t token, const char *const *names, size_t n);

/* The owner of shard `name` of a collection (a fixed shard's name such as
 * "shard0001", or a tenant's name for a multi-tenant collection); *is_tenant
 * (may be NULL) says which. A collection or tenant this view lacks is read
 * from the catalog first. SV_ENOTFOUND naming what is missing. */
int sv_store_shard_node(sv_store *st, const char *collection, const char *name, char node[65], bool *is_tenant,
                        sv_err *err);
/* Marks this node's shard as moving (SV_ECONFLICT if it already is;
 * SV_ESTATE for a tenant that is not ACTIVE; SV_EUNAVAIL if another node owns
 * it). Every sv_store_move_begin is ended by sv_store_move_end or a
 * successful sv_store_move_switch. */
int sv_store_move_begin(sv_store *st, const char *collection, const char *name, sv_err *err);
/* A RocksDB checkpoint of the live shard at dst (which must not exist; on
 * the data dir's filesystem: hard links). *objects gets its exact count. An
 * empty shard (never opened) gives an empty directory. */
int sv_store_move_checkpoint(sv_store *st, const char *collection, const char *name, const char *dst,
                             int64_t *objects, sv_err *err);
/* Closes the shard's write gate: new writes wait; returns once the writes
 * inside have finished (SV_ETIMEOUT, gate open again, after drain_ms). */
int sv_store_move_fence(sv_store *st, const char *collection, const char *name, int64_t drain_ms, sv_err *err);
/* The switch: one catalog transaction conditioned on the placement record's
 * revision (shards/<c>/<shard>, or the tenant's record) puts `to` as the
 * owner, and this view follows (this node's copy is closed; reads fail over).
 * The gate stays closed: sv_store_move_finish opens it (the held writes
 * then fail over to `to`) and removes the copy. A failed transaction leaves
 * everything as it was (gate still closed: call sv_store_move_end); one
 * whose outcome is unknown (the catalog did not answer) is decided by
 * reading the record. */
int sv_store_move_switch(sv_store *st, const char *collection, const char *name, const char *to, bool *unknown,
                         sv_err *err);
/* After a switch whose outcome is unknown (*unknown: neither the transaction
 * nor the read-back answered): reads the record again. 0 once the catalog
 * answered, *switched saying whether it names `to` (this view then follows,
 * as after a switch); the catalog's error otherwise. Until it answers, the
 * gate must stay closed: the shard may already be the target's. */
int sv_store_move_resolve(sv_store *st, const char *collection, const char *name, const char *to, bool *switched,
                          sv_err *err);
/* After a successful switch: opens the gate and removes this node's copy. */
void sv_store_move_finish(sv_store *st, const char *collection, const char *name);
/* Abandons a move: the gate opens, the shard stays here. */
void sv_store_move_end(sv_store *st, const char *collection, const char *name);
/* On a move's target: the directory the shard's files go to (the shard must
 * not be this node's yet). */
int sv_store_move_target_dir(sv_store *st, const char *collection, const char *name, char dir[1024], sv_err *err);
/* Opens the RocksDB at dir read-only (a move's lay-out on its target, not
 * served yet) and reads its exact object count. */
int sv_store_dir_objects(sv_store *st, const char *dir, int64_t *objects, sv_err *err);
/* Reads the shard's placement record from the catalog into this view (the
 * watch may not have delivered a switch yet). */
int sv_store_refresh_shard(sv_store *st, const char *collection, const char *name, sv_err *err);

/* ---- introspection (metrics) -------------------------------------------- */

typedef struct sv_store_stats {
    int64_t collections;
    int64_t shards_open;
    int64_t shards_open_max;   /* the bound */
    int64_t shards_idle_closed; /* closed to stay under it, since start */
    int64_t objects_written; /* since start */
    int64_t objects_deleted;
} sv_store_stats;
void sv_store_get_stats(sv_store *st, sv_store_stats *out);

#endif
