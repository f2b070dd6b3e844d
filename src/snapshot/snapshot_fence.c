/* The GC fence: blob writers on one node and snapshot GC on another never
 * overlap (a shared catalog only: etcd; with the embedded catalog one process
 * owns the location and the in-process protocol of snapshot_gc.c suffices).
 *
 * Why it is needed. A writer (a snapshot create, a cut's owner part, an
 * offload, a shard move: everything through create_announce) checks the
 * location for each blob and skips those already there. The in-process
 * protocol (create_op announced under s->mu, s->gc_deleting) protects them
 * from this process's GC only; the grace period protects only young blobs.
 * A GC on another node could delete an old, unreferenced blob that a writer
 * had just found present and was about to name in its manifest: the
 * snapshot then commits with a blob missing (found by a black-box review).
 *
 * The protocol (restic's: backups take shared locks, prune an exclusive
 * one), on two kinds of catalog keys:
 *   gcfence/writers/<node>/<boot>-<seq>  {node, boot, at}    one per writer op
 *   gcfence/gc                           {node, boot, expiresAt}  the GC's
 *
 *   writer: 1. put its key;  2. read gcfence/gc: held by another process and
 *           not expired -> poll until it is gone or expired (then go on);
 *           3. check the location, upload, write its manifest;  4. delete
 *           its key.
 *   GC:     1. take gcfence/gc (create if absent, or replace an expired one,
 *           by revision);  2. scan the writers' keys: one of another process
 *           that is not stale -> delete nothing this run ("deferred", and
 *           the key goes at once: writers waiting on it go on);
 *           3. list manifests and blobs, delete in batches, renewing the key
 *           (by revision) before each batch and stopping if its own clock
 *           says the key expired;  4. delete gcfence/gc.
 *
 * Invariants.
 *  - Each side writes its key before it reads the other's (etcd is
 *    linearizable), so of a writer and a GC that overlap at least one sees
 *    the other: the GC defers, or the writer waits until the GC has finished
 *    deleting and then finds the deleted blobs gone (and uploads them).
 *  - A writer's key outlives its manifest (deleted after it is written), so
 *    a GC that missed the key lists that manifest.
 *  - A GC that cannot renew, or overran its own expiry, deletes nothing more.
 *    Writers honour the key until expiresAt + FENCE_SKEW_MS (clock skew).
 *  - Keys of a crashed process: a GC deletes writer keys of its own node
 *    from another boot (that process is gone) and any older than the pending
 *    timeout; a crashed GC's key expires after FENCE_TTL_MS.
 *  - Keys of this process are ignored on both sides: the in-process protocol
 *    covers them.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot_internal.h"

#define FENCE_GC_KEY "gcfence/gc"
#define FENCE_WRITERS "gcfence/writers/"
#define FENCE_TTL_MS 120000
#define FENCE_SKEW_MS 30000
#define FENCE_POLL_MS 200

/* The GC key's holder, when held by another process and live. */
static bool gc_key_live(sv_snapshot *s, char holder[65])
{
    char *v = NULL;
    size_t len = 0;
    if (sv_catalog_get(s->cat, FENCE_GC_KEY, &v, &len, NULL, NULL) != 0)
        return false;
    json_t *o = json_loadb(v, len, 0, NULL);
    free(v);
    const char *boot = json_string_value(json_object_get(o, "boot"));
    int64_t exp = json_integer_value(json_object_get(o, "expiresAt"));
    bool live = o && boot && strcmp(boot, s->boot) != 0 && sv_now_ms() <= exp + FENCE_SKEW_MS;
    if (live)
        snprintf(holder, 65, "%s", json_string_value(json_object_get(o, "node")) ?: "?");
    json_decref(o);
    return live;
}

int sv_snap_fence_writer_begin(sv_snapshot *s, char key[200], sv_err *err)
{
    key[0] = '\0';
    if (!sv_catalog_shared(s->cat))
        return 0;
    static atomic_llong seq;
    char k[200];
    snprintf(k, sizeof k, FENCE_WRITERS "%s/%s-%lld", s->node[0] ? s->node : "-", s->boot,
             (long long)atomic_fetch_add(&seq, 1));
    json_t *o = json_pack("{s:s,s:s,s:I}", "node", s->node, "boot", s->boot, "at", (json_int_t)sv_now_ms());
    char *v = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!v)
        return sv_snap_oom(err);
    int rc = sv_catalog_put(s->cat, k, v, strlen(v), 0, err);
    free(v);
    if (rc)
        return sv_err_wrap(err, "announcing the blobs to the cluster's snapshot GC");
    snprintf(key, 200, "%s", k);
    char holder[65];
    while (gc_key_live(s, holder)) {
        if (sv_snap_stopping(s)) {
            sv_catalog_delete(s->cat, key, NULL);
            key[0] = '\0';
            return sv_fail(err, SV_ECANCELED, "stopped while snapshot GC on node %s was deleting blobs", holder);
        }
        sv_sleep_ms(FENCE_POLL_MS);
    }
    return 0;
}

void sv_snap_fence_writer_end(sv_snapshot *s, char key[200])
{
    if (!key[0])
        return;
    sv_err e = {0};
    if (sv_catalog_delete(s->cat, key, &e)) /* a GC defers on it until it is stale */
        sv_warn("snapshot GC fence: writer key not removed", "key=%s error=\"%s\"", key, e.msg);
    key[0] = '\0';
}

static char *gc_value(sv_snapshot *s, int64_t expires)
{
    json_t *o = json_pack("{s:s,s:s,s:I}", "node", s->node, "boot", s->boot, "expiresAt", (json_int_t)expires);
    char *v = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return v;
}

/* Puts our GC key on condition that the key is at revision rev (0: absent);
 * f->rev becomes its new revision. */
static int gc_put(sv_snapshot *s, sv_snap_fence *f, int64_t rev, sv_err *err)
{
    int64_t exp = sv_now_ms() + FENCE_TTL_MS;
    char *v = gc_value(s, exp);
    if (!v)
        return sv_snap_oom(err);
    sv_catalog_cond c = {FENCE_GC_KEY, rev};
    sv_catalog_op op = {FENCE_GC_KEY, v, strlen(v), 0};
    int rc = sv_catalog_txn(s->cat, &c, 1, &op, 1, err);
    free(v);
    char *got = NULL;
    size_t len = 0;
    if (rc == 0 && (rc = sv_catalog_get(s->cat, FENCE_GC_KEY, &got, &len, &f->rev, err)) == 0) {
        json_t *o = json_loadb(got, len, 0, NULL);
        const char *boot = json_string_value(json_object_get(o, "boot"));
        if (!boot || strcmp(boot, s->boot)) /* taken over in between */
            rc = sv_fail(err, SV_ECONFLICT, "snapshot GC fence taken by another node");
        json_decref(o);
    }
    free(got);
    if (rc == 0)
        f->expires = exp;
    return rc;
}

typedef struct writers_scan {
    sv_snapshot *s;
    int64_t now;
    int live;
    char first[200];
    char (*stale)[200];
    size_t nstale, cap;
} writers_scan;

static int scan_writer(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    (void)rev;
    writers_scan *w = ud;
    json_t *o = json_loadb(val, len, 0, NULL);
    const char *boot = json_string_value(json_object_get(o, "boot"));
    const char *node = json_string_value(json_object_get(o, "node"));
    int64_t at = json_integer_value(json_object_get(o, "at"));
    bool ours = boot && !strcmp(boot, w->s->boot);
    bool dead = !o || !boot || (node && !strcmp(node, w->s->node) && !ours) ||
                w->now - at >= w->s->pending_timeout_ms;
    if (dead && strlen(key) < 200 && sv_grow(&w->stale, &w->cap, w->nstale + 1, sizeof *w->stale) == 0)
        snprintf(w->stale[w->nstale++], 200, "%s", key);
    else if (!dead && !ours && w->live++ == 0)
        snprintf(w->first, sizeof w->first, "node %s", node ? node : "?");
    json_decref(o);
    return 0;
}

int sv_snap_fence_gc_begin(sv_snapshot *s, sv_snap_fence *f, sv_err *err)
{
    *f = (sv_snap_fence){0};
    if (!sv_catalog_shared(s->cat))
        return 0;
    char *v = NULL;
    size_t len = 0;
    int64_t rev = 0;
    int rc = sv_catalog_get(s->cat, FENCE_GC_KEY, &v, &len, &rev, err);
    if (rc == SV_ENOTFOUND) {
        rc = 0;
        rev = 0;
    } else if (rc == 0) {
        json_t *o = json_loadb(v, len, 0, NULL);
        int64_t exp = json_integer_value(json_object_get(o, "expiresAt"));
        const char *node = json_string_value(json_object_get(o, "node"));
        if (o && sv_now_ms() <= exp + FENCE_SKEW_MS)
            rc = sv_fail(err, SV_ECONFLICT, "snapshot GC is running on node %s; try again when it ends",
                         node ? node : "?");
        json_decref(o);
    }
    free(v);
    if (rc == 0 && (rc = gc_put(s, f, rev, err)) == SV_ECONFLICT)
        sv_fail(err, SV_ECONFLICT, "snapshot GC started on another node meanwhile; try again when it ends");
    if (rc)
        return rc;
    f->held = true;
    writers_scan w = {.s = s, .now = sv_now_ms()};
    rc = sv_catalog_scan(s->cat, FENCE_WRITERS, scan_writer, &w, err);
    for (size_t i = 0; rc == 0 && i < w.nstale; i++) /* their processes are gone */
        sv_catalog_delete(s->cat, w.stale[i], NULL);
    free(w.stale);
    if (rc == 0 && w.live)
        snprintf(f->deferred, sizeof f->deferred, "%d snapshot, offload or move writer(s) storing blobs (%s first)",
                 w.live, w.first);
    /* A deferred run deletes nothing: the fence goes at once, so writers
     * that came meanwhile wait no longer than this scan. */
    if (rc || f->deferred[0])
        sv_snap_fence_gc_end(s, f);
    return rc;
}

int sv_snap_fence_gc_renew(sv_snapshot *s, sv_snap_fence *f, sv_err *err)
{
    if (!f->held)
        return 0;
    if (sv_now_ms() >= f->expires)
        return sv_fail(err, SV_ETIMEOUT, "garbage collection stopped: it overran its fence (%d s) on the cluster's "
                                          "catalog; run it again", FENCE_TTL_MS / 1000);
    int rc = gc_put(s, f, f->rev, err);
    if (rc)
        sv_err_wrap(err, "garbage collection stopped: its fence on the cluster's catalog was lost");
    return rc;
}

void sv_snap_fence_gc_end(sv_snapshot *s, sv_snap_fence *f)
{
    if (!f->held)
        return;
    sv_catalog_cond c = {FENCE_GC_KEY, f->rev};
    sv_catalog_op op = {FENCE_GC_KEY, NULL, 0, 0};
    sv_err e = {0};
    if (sv_catalog_txn(s->cat, &c, 1, &op, 1, &e) && e.code != SV_ECONFLICT)
        sv_warn("snapshot GC fence not released (it expires)", "error=\"%s\"", e.msg);
    f->held = false;
}
