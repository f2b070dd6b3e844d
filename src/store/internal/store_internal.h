/* store module internals: the in-memory view shared by store*.c. Private to
 * the module (not installed, not included outside src/store).
 *
 * Locking order: st->ddl_mu, then st->lock or c->tenants_lock, then s->use,
 * then s->write_mu. A collection pointer is valid while acquired
 * (store_coll_acquire / store_coll_get, released with store_coll_release).
 */
#ifndef SV_STORE_INTERNAL_H
#define SV_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "engine.h"
#include "store.h"

/* The object count of a shard lives under a bookkeeping key that sorts after
 * every 16-byte object key (see engine.h). It is updated in the same atomic
 * write batch as the objects, under the shard's write mutex, so it is exact. */
extern const char STORE_COUNT_KEY[];
#define STORE_COUNT_KEY_LEN (SV_DB_META_PREFIX_LEN + 5)

/* A shard's status. Fixed shards are always ACTIVE. A tenant moves between
 * ACTIVE and INACTIVE at once; offloading and onloading pass through a
 * persisted transitional status (see store_tenants.c, "offload protocol"). */
enum { SHARD_ACTIVE, SHARD_INACTIVE, SHARD_OFFLOADED, SHARD_OFFLOADING, SHARD_ONLOADING };

typedef struct shard {
    char name[72];
    char dir[1024];
    int status;
    int settle;               /* OFFLOADING: the status to go back to; ONLOADING: the status to reach */
    int move_rc;              /* the last offload/onload's failure (0: none), under ddl_mu */
    char move_reason[400];    /* its reason, for ?wait=true answers */
    bool copy;                /* the location holds its files (offloaded once; kept after an onload) */
    bool deleted;             /* tenant deleted; struct kept until the collection goes */
    sv_db *db;
    pthread_rwlock_t use;     /* read: using db; write: open / close */
    pthread_mutex_t write_mu; /* serializes writes so the count stays exact */
    int64_t objects;          /* cached count: exact while open, and after an idle close */
    bool bulk;                /* db is in bulk mode (engine.h); under write_mu, false after a close */
    struct store_fresh *fresh; /* bulk loads into an empty shard (store_objects.c); under write_mu */
    _Atomic uint64_t last_use; /* st->tick at the last enter: LRU order of idle closes */
    bool in_open;             /* listed in st->open (under st->open_mu) */
    char node[65];            /* the owner (placement); "" = this node */
    /* A move to another node (store_move.c), under the module's gate mutex:
     * moving while a move job runs; gate_closed while its catch-up holds
     * writes; writers counts writes inside the shard. */
    bool moving, gate_closed;
    int writers;
    /* A cluster snapshot's cut (store_move.c, same mutex): writes wait while
     * sv_mono_ns() < cut_until (0 = open); cut_token names the cut that
     * closed it, so a late release of an older cut opens nothing. */
    int64_t cut_until;
    uint64_t cut_token;
} shard;

typedef struct collection {
    char *name;
    char uid[17];
    int64_t created_at;
    sv_schema *schema;
    shard **shards; /* fixed shards, or tenants sorted by name */
    size_t nshards;
    size_t cap;
    shard **dead; /* deleted tenants: a request may still hold one (see route) */
    size_t ndead;
    pthread_rwlock_t tenants_lock; /* guards shards and dead of a multi-tenant collection */
    atomic_int refs;
    atomic_bool deleted;
} collection;

#define STORE_RECYCLE_SLOTS 8

struct sv_store {
    char data_dir[1024];
    char tmp_dir[1100];
    char node[64];
    bool sync;
    sv_catalog *cat;
    sv_engine *engine;
    pthread_rwlock_t lock; /* guards colls */
    collection **colls;
    size_t ncolls, capcolls;
    int64_t list_page_bytes; /* byte budget of one object listing page */
    pthread_mutex_t ddl_mu;  /* one schema change at a time */
    char **reserved;         /* collection names reserved by restores (ddl_mu) */
    sv_tenant_mover mover;   /* tenant offload / onload (set once, before requests) */
    pthread_mutex_t tenant_mu; /* with tenant_cv: waiting for a tenant to leave a transitional status */
    pthread_cond_t tenant_cv;
    int64_t acquire_timeout_ms; /* SHARDVAULT_ACQUIRE_TIMEOUT */
    size_t nreserved;
    atomic_llong objects_written, objects_deleted, shards_open;
    atomic_ullong bulk_seq; /* names of bulk-load table files under tmp_dir */
    /* Large buffers of ended batches kept for the next ones (store_batch.c
     * "recycling"); under recycle_mu. */
    pthread_mutex_t recycle_mu;
    struct store_block {
        void *p;
        size_t cap; /* bytes */
    } recycle[STORE_RECYCLE_SLOTS];
    /* Open shards are bounded (each RocksDB holds file handles): past
     * max_open, the least recently used idle shards are closed. */
    int64_t max_open;
    pthread_mutex_t open_mu; /* guards open / nopen (never held while waiting on a shard) */
    shard **open;
    size_t nopen, capopen;
    _Atomic uint64_t tick;
    atomic_llong idle_closes;
    /* Placement across nodes (store_placement.c): off on one node, where
     * every shard is this node's whatever its record says. */
    sv_store_placer placer;
    atomic_bool placement;
};

/* Frees every recycled batch buffer (store_batch.c). */
void store_recycle_clear(sv_store *st);

/* One object of a write group: its encoding is enc[enc_off, enc_off+enc_len). */
typedef struct pending {
    sv_uuid id;
    size_t result; /* index into the batch's results */
    size_t enc_off, enc_len;
} pending;

/* ---- test seam ---------------------------------------------------------- */

/* Tests set this to run code at named points (NULL in production): lets a
 * unit test order a concurrent operation or observe durability steps. Points:
 *   "update_tenants:before_lock"  arg = collection name
 *   "fsync_dir"                   arg = the directory being fsynced
 *   "adopt:before_commit"         arg = collection name */
extern void (*store_test_hook)(const char *point, const char *arg);
#define STORE_HOOK(point, arg)                                                                                         \
    do {                                                                                                               \
        if (store_test_hook)                                                                                           \
            store_test_hook(point, arg);                                                                               \
    } while (0)

/* ---- store.c: shards, the view, routing, catalog records ---------------- */

int store_oom(sv_err *err);
/* sv_fsync_dir, observable through the test seam. */
int store_fsync_dir(const char *path, sv_err *err);
/* The directory holding path ("." for a bare name); SV_EINVAL if out is too small. */
int store_parent_dir(const char *path, char *out, size_t n);
shard *store_shard_new(const char *dir_root, const char *name, int status);
void store_shard_close(sv_store *st, shard *s);
void store_shard_free(sv_store *st, shard *s);
void store_collection_free(sv_store *st, collection *c);
/* <data>/shards/<uid> */
void store_coll_dir(sv_store *st, const collection *c, char *out, size_t n);
/* NULL when absent; otherwise a reference the caller releases. */
collection *store_coll_acquire(sv_store *st, const char *name, size_t len);
void store_coll_release(sv_store *st, collection *c);
int store_coll_get(sv_store *st, const char *name, collection **out, sv_err *err);
int64_t store_read_count(sv_db *db);
/* Returns with s->use read-locked and s->db open, or an error (unlocked). */
int store_shard_enter(sv_store *st, const collection *c, shard *s, sv_err *err);
void store_shard_leave(shard *s);
/* tenants_lock held by the caller. */
shard *store_find_tenant(const collection *c, const char *name);
int store_insert_tenant(collection *c, shard *s);
int store_route(const collection *c, const sv_uuid *id, const char *tenant, size_t tenant_len, shard **out,
                sv_err *err);
char *store_coll_record(const collection *c);
/* {"format_version","name","status"[,"settle"][,"objects"][,"node"][,"locationCopy"]}; settle
 * and objects are written for the offload statuses only; node (the owner)
 * when non-empty. */
char *store_tenant_record(const char *name, int status, const char *node);
char *store_tenant_record_ex(const char *name, int status, int settle, int64_t objects, const char *node,
                             bool copy);
const char *store_status_word(int status); /* "ACTIVE", … */
int store_status_parse(const char *s);     /* -1 when unknown */
/* After the catalog load: settles tenants a crash left OFFLOADING or
 * ONLOADING and removes local files of OFFLOADED ones. */
int store_reconcile_tenants(sv_store *st, sv_err *err);
/* Called by store_shard_enter for a tenant that is offloaded or moving
 * (s->use not held): waits / onloads per the collection's
 * autoTenantActivation, or fails SV_ESTATE. 0 means "try again". */
int store_tenant_unavailable(sv_store *st, const collection *c, shard *s, int status, sv_err *err);
int store_add_collection_to_view(sv_store *st, collection *c);
collection *store_collection_new(sv_store *st, const char *name, const char *uid, int64_t created,
                                 sv_schema *schema);

/* The collection record at key (collections/<name>) into the view, with its
 * fixed shards' placement (shards/) and its tenants (tenants/) read from the
 * catalog. */
int store_load_collection(sv_store *st, const char *key, const char *val, size_t len, sv_err *err);

/* ---- store_placement.c -------------------------------------------------- */

/* True when this node serves the shard (always without placement). */
bool store_shard_local(const sv_store *st, const shard *s);
/* Chooses an owner for each of n new shards: this node without a placer or
 * with SV_STORE_PLACE_HERE in flags, else the placer's choice. */
int store_place(sv_store *st, size_t n, unsigned flags, char (*out)[65], sv_err *err);
/* A shard owned elsewhere: SV_EUNAVAIL naming the owner. */
int store_not_local(const sv_store *st, const collection *c, const shard *s, sv_err *err);

/* ---- store_move.c -------------------------------------------------------- */

/* A write's way in and out of a shard: waits while a move holds the shard's
 * writes (bounded, STORE_MOVE_HOLD_MS), then store_shard_enter. After a move
 * switched the shard to another node the enter fails SV_EUNAVAIL naming the
 * new owner (the server forwards the request there). */
int store_write_enter(sv_store *st, const collection *c, shard *s, sv_err *err);
void store_write_leave(shard *s);
/* With ddl_mu held: a shards/<c>/<shard> record (val NULL: deleted) into the
 * view: the fixed shard's owner. */
int store_apply_shard_record(sv_store *st, const char *key, const char *val, size_t len, sv_err *err);

/* ---- store_collections.c ------------------------------------------------ */

/* With ddl_mu held: takes a collection out of the view (its catalog records
 * are gone already): waits out its users, closes its shards, removes its
 * directory, drops the view's reference and the caller's (c acquired). */
void store_unview_collection(sv_store *st, collection *c);

json_t *store_collection_json(const collection *c);
/* One catalog transaction: the collection record, its fixed shards'
 * placement or its tenants; SV_EEXIST if the name is taken. */
int store_persist_new_collection(sv_store *st, collection *c, sv_err *err);
/* With ddl_mu held: a new collection object for schema (not yet persisted
 * nor in the view), or SV_EEXIST. Takes schema (frees it on failure). */
int store_new_collection_locked(sv_store *st, sv_schema *schema, collection **out, sv_err *err);
/* The same with the collection's uid given (16 lower-case hex digits). */
int store_new_collection_uid_locked(sv_store *st, sv_schema *schema, const char *uid, collection **out,
                                    sv_err *err);
/* With ddl_mu held: the index of a reserved name, or -1. */
ssize_t store_reserved_index(const sv_store *st, const char *name);
/* With ddl_mu held: drops the reservation at index i. */
void store_reserved_remove(sv_store *st, size_t i);

/* ---- store_objects.c ---------------------------------------------------- */

int store_write_objects(sv_store *st, const collection *c, shard *s, pending *items, size_t n, sv_buf *enc,
                        sv_record *scratch, sv_err *err);
/* try_lock: returns 1 at once, writing nothing, when another writer holds
 * the shard (a batch then writes its other shards first). */
/* The bulk form (a large sorted group, store_batch.c bulk mode): the same
 * result as store_write_objects, written as one table file ingested into the
 * shard (engine.h "bulk load") instead of through the memtable and WAL.
 * items must be sorted by id (equal ids in the order they were added: the
 * last one wins, or with kept the first); vals[i] is items[i]'s encoding
 * (enc_len bytes; enc_off is not used). Caller is inside the shard. */
int store_bulk_write_objects(sv_store *st, const collection *c, shard *s, const pending *items,
                             const uint8_t *const *vals, size_t n, sv_record *scratch, uint8_t *kept, sv_err *err);
/* s->moving, read under the gate's lock (store_move.c). */
bool store_shard_moving(shard *s);
/* Forgets a shard's bulk-load key filters (under write_mu, or closing). */
void store_fresh_drop(shard *s);
/* kept: NULL to replace held ids, else n flags set to 1 for each item not
 * written because its id is held (sv_batch_conflict KEEP; the first of equal
 * ids in the order added is written when it is new). The bulk form takes the
 * same argument. */
int store_write_objects_ex(sv_store *st, const collection *c, shard *s, pending *items, size_t n, sv_buf *enc,
                           sv_record *scratch, bool try_lock, uint8_t *kept, sv_err *err);
int store_parse_uuid_arg(const char *s, sv_uuid *u, sv_err *err);

#endif
