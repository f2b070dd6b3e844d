/* Internal to the registry module: the shard record and the registry struct.
 * Not installed, not seen by other modules. */
#ifndef SV_REGISTRY_INTERNAL_H
#define SV_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "registry.h"

#define REG_FORMAT 1
#define REG_PREFIX "registry/shards/"
#define REG_TXN_MAX 128
#define REG_DONE_MARKER ".sv-complete"
#define REG_TMP_PREFIX ".tmp-"

typedef struct shard shard;

/* One shard. Fields change under reg->mu. A state change is made by the one
 * thread that holds `busy` (claimed under mu); it persists the record with mu
 * dropped, then applies it under mu. */
struct shard {
    char collection[129];
    char name[200]; /* a tenant or shard name, or "<snapshot>@<shard>" for a mounted snapshot's */
    char key[340];  /* "<collection>/<shard>" in reg->map */
    sv_shard_source source;
    sv_shard_state state;
    bool pinned;
    char last_error[512];
    int64_t last_transition_at; /* wall ms */
    int64_t local_bytes;        /* present in the cache (counted in reg->held) */
    int64_t remote_bytes;       /* what the mount announced, 0 until known */
    int64_t last_use_ns;        /* monotonic; LRU order of eviction */
    int refs;                   /* sv_shard_ref handles */
    int waiters;                /* acquirers parked on a hydration */
    int mrefs;                  /* memory holders: map, queue/worker, waiters, refs */
    bool busy;                  /* a transition is being persisted */
    bool queued;                /* a hydration is queued or running */
    bool background;            /* that hydration runs with nobody waiting (recovery) */
    bool waiting_room;          /* that hydration waits for cache room */
    bool destroyed;             /* removed from the map and the catalog */
    bool recover_pending;       /* policy NOW: recover once its mount is set */
    uint64_t hyd_gen;           /* bumped when a hydration ends */
    int hyd_code;               /* its outcome, 0 or SV_E* */
    char hyd_msg[512];          /* and its message */
    _Atomic int64_t progress;   /* bytes fetched by the running hydration */
    pthread_cond_t cv;          /* busy cleared, hydration ended, destroyed */
    shard *qnext;               /* hydration queue */
};

struct sv_shard_ref {
    sv_registry *reg;
    shard *s;
    char dir[1300];
};

/* One hydration waiting for cache room, in FIFO order. */
typedef struct room_wait {
    struct room_wait *next;
} room_wait;

struct sv_registry {
    sv_catalog *cat;
    char prefix[120]; /* REG_PREFIX, or registry/nodes/<node>/shards/ in a cluster */
    char cache_dir[900];
    int64_t quota;
    int nworkers;
    sv_registry_recover_policy policy;
    sv_registry_mount mounts[SV_SHARD_NSOURCES];
    bool has_mount[SV_SHARD_NSOURCES];

    pthread_mutex_t mu;
    sv_strmap map; /* key -> shard */
    int64_t held;  /* reserved + present bytes: never above quota */
    int64_t reserved;
    shard *qhead, *qtail; /* hydrations not yet started */
    int64_t nqueued, nrunning;
    pthread_cond_t work_cv; /* queue not empty, or closing */
    pthread_cond_t room_cv; /* bytes freed, or a room waiter left */
    room_wait *room_head, *room_tail;
    bool closing;
    int inflight;            /* acquirers inside sv_registry_acquire */
    pthread_cond_t idle_cv;  /* inflight dropped to 0 */
    pthread_t *workers;
    int nstarted;
    uint64_t tmp_seq;

    /* counters (under mu unless atomic) */
    int64_t hits, misses, hydrated_bytes, hydrations_failed, evictions, evicted_bytes, hydration_ns;

    /* the event ring: its own lock, never held with a wait */
    pthread_mutex_t ev_mu;
    sv_registry_event *ring;
    size_t ring_cap;
    uint64_t ev_seq; /* last published */
    _Atomic uint64_t ev_dropped;

    struct sv_registry_svc *svc; /* tenants.c: set by sv_registry_attach */
    struct sv_mounts *mcache;    /* mounts.c: what reads keep open */
};

/* tenants.c: waits for offload/onload threads, detaches from the store. */
void sv__registry_svc_close(sv_registry *r);
/* mounts.c: releases what reads keep open, stops the sweeper. */
void sv__mounts_close(sv_registry *r);

/* registry.c, shared with open.c */
int sv__check_shard_name(const char *name, sv_err *err); /* a tenant name, or "<snapshot>@<shard>" */
shard *sv__shard_new(const char *collection, const char *name, sv_shard_source src); /* mrefs = 1 */
void sv__shard_put_locked(shard *s); /* frees at the last memory holder */
void *sv__registry_worker(void *arg); /* a hydration thread */
/* A shard's hydration as it goes: bytes fetched (while queued or running;
 * else what the cache holds) of the bytes its mount announced (0 until a
 * hydration asked). Both 0 for an unknown shard. */
void sv__registry_hydration(sv_registry *r, const char *collection, const char *name, int64_t *done, int64_t *total);
/* Waited for by an acquirer parked on its hydration (one that holds no
 * reference yet). */
bool sv__registry_awaited(sv_registry *r, const char *collection, const char *name);
/* tenants.c: adds the store's local shards to shards[state] (what
 * /v1/registry and /metrics count besides the registered ones). */
int sv__registry_add_local(sv_registry *r, int64_t *shards, sv_err *err);
/* Puts a transition into the event ring (never blocks on a reader). */
void sv__registry_publish(sv_registry *r, const shard *s, sv_shard_state from, sv_shard_state to, int64_t ts);

#endif
