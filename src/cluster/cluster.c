/* cluster membership: a lease on nodes/{name}, a permanent members/{name},
 * a keepalive thread, a watch on nodes/ for the healthy set. docs/cluster.md. */
#include "cluster.h"
#include "cluster_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NAME_MAX_LEN 64

struct sv_cluster {
    sv_catalog *cat;
    sv_store *store;
    char name[NAME_MAX_LEN + 1];
    char url[256];
    char id[37];
    int64_t ttl_ms, started_at;

    pthread_mutex_t mu; /* lease, last stats, stop, healthy set */
    pthread_cond_t cv;
    int64_t lease;
    int64_t last_shards, last_objects;
    bool stop;
    pthread_t thread;
    bool thread_started;

    sv_catalog_watch *watch;
    struct healthy {
        char name[NAME_MAX_LEN + 1];
        char url[256];
        bool seen; /* during a re-list */
    } *healthy;
    size_t nhealthy, hcap;

    _Atomic int64_t renewals, renew_failures, lease_losses;

    /* placement and forwarding */
    bool placement;
    char secret[257];
    sv_catalog_watch *coll_watch, *tenant_watch;
    struct forward_state *fwd;
    /* keys seen during a watch's re-list (each used by its watch's thread only) */
    struct seen_keys {
        char **keys;
        size_t n, cap;
        bool relisting;
        int listings; /* re-lists so far (the first is the watch's start) */
    } coll_seen, tenant_seen;
};

/* ---- this node's record ------------------------------------------------------ */

static void local_stats(sv_cluster *c, int64_t *shards, int64_t *objects)
{
    *shards = *objects = 0;
    if (!c->store)
        return;
    sv_collection_name *names = NULL;
    size_t n = 0;
    if (sv_store_collection_names(c->store, &names, &n, NULL) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        sv_shard_info *sh = NULL;
        size_t ns = 0;
        if (sv_store_shards(c->store, names[i], &sh, &ns, NULL) != 0)
            continue;
        for (size_t k = 0; k < ns; k++) {
            if (!sh[k].local) /* placed on another node */
                continue;
            (*shards)++;
            if (sh[k].objects > 0)
                *objects += sh[k].objects;
        }
        free(sh);
    }
    free(names);
}

static char *record(sv_cluster *c, int64_t lease, int64_t shards, int64_t objects)
{
    char lb[24];
    snprintf(lb, sizeof lb, "%lld", (long long)lease);
    json_t *j = json_pack("{s:i,s:s,s:s,s:s,s:I,s:s,s:I,s:I,s:s}", "format_version", 1, "name", c->name, "id", c->id,
                          "url", c->url, "startedAt", (json_int_t)c->started_at, "version", SV_VERSION, "shards",
                          (json_int_t)shards, "objects", (json_int_t)objects, "lease", lb);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static void keys(const sv_cluster *c, char nk[96], char mk[96])
{
    snprintf(nk, 96, "nodes/%s", c->name);
    snprintf(mk, 96, "members/%s", c->name);
}

/* Writes nodes/{name} (under lease) and members/{name} under cond. */
static int put_records(sv_cluster *c, const sv_catalog_cond *cond, int64_t lease, int64_t shards, int64_t objects,
                       sv_err *err)
{
    char nk[96], mk[96];
    keys(c, nk, mk);
    char *rec = record(c, lease, shards, objects);
    if (!rec)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    sv_catalog_op ops[] = {{nk, rec, strlen(rec), lease}, {mk, rec, strlen(rec), 0}};
    int rc = sv_catalog_txn(c->cat, cond, cond ? 1 : 0, ops, 2, err);
    free(rec);
    return rc;
}

/* Takes nodes/{name} under a new lease: at once when it is free or held by
 * an earlier process of this data directory (same id); otherwise waits up to
 * TTL + 2 s for the other holder's lease to lapse. */
static int register_node(sv_cluster *c, sv_err *err)
{
    char nk[96], mk[96];
    keys(c, nk, mk);
    int64_t deadline = sv_mono_ns() / 1000000 + c->ttl_ms + 2000;
    int64_t shards, objects;
    local_stats(c, &shards, &objects);
    for (;;) {
        int64_t lease = 0;
        int rc = sv_catalog_lease_grant(c->cat, c->ttl_ms, &lease, err);
        if (rc)
            return rc;
        sv_catalog_cond absent = {nk, 0};
        rc = put_records(c, &absent, lease, shards, objects, err);
        char *v = NULL;
        int64_t rev = 0;
        if (rc == SV_ECONFLICT) {
            size_t n = 0;
            rc = sv_catalog_get(c->cat, nk, &v, &n, &rev, err);
            if (rc == SV_ENOTFOUND) { /* it lapsed just now */
                sv_catalog_lease_revoke(c->cat, lease, NULL);
                continue;
            }
        } else if (rc == 0) {
            goto registered;
        }
        if (rc) {
            sv_catalog_lease_revoke(c->cat, lease, NULL);
            free(v);
            return rc;
        }
        json_t *j = json_loads(v, 0, NULL);
        free(v);
        const char *id = json_string_value(json_object_get(j, "id"));
        if (id && !strcmp(id, c->id)) {
            /* Our own earlier process (a crash or kill -9): take over now. */
            const char *old = json_string_value(json_object_get(j, "lease"));
            int64_t old_lease = old ? strtoll(old, NULL, 10) : 0;
            sv_catalog_cond same = {nk, rev};
            rc = put_records(c, &same, lease, shards, objects, err);
            json_decref(j);
            if (rc == SV_ECONFLICT) {
                sv_catalog_lease_revoke(c->cat, lease, NULL);
                continue;
            }
            if (rc) {
                sv_catalog_lease_revoke(c->cat, lease, NULL);
                return rc;
            }
            if (old_lease > 0 && old_lease != lease)
                sv_catalog_lease_revoke(c->cat, old_lease, NULL); /* detached already; frees etcd's lease */
            goto registered;
        }
        const char *ourl = json_string_value(json_object_get(j, "url"));
        char other[300];
        snprintf(other, sizeof other, "%s", ourl ? ourl : "unknown");
        json_decref(j);
        sv_catalog_lease_revoke(c->cat, lease, NULL);
        if (sv_mono_ns() / 1000000 >= deadline)
            return sv_fail(err, SV_ECONFLICT,
                           "node name %s is held by another live node (url %s, another data directory); choose "
                           "another --node-name or stop that node",
                           c->name, other);
        sv_info("node name held by another node; waiting for its lease to lapse", "node=%s other_url=%s", c->name,
                other);
        sv_sleep_ms(500);
        continue;
    registered:
        pthread_mutex_lock(&c->mu);
        c->lease = lease;
        c->last_shards = shards;
        c->last_objects = objects;
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
}

/* ---- keepalive -------------------------------------------------------------------- */

static void *keepalive_main(void *arg)
{
    sv_cluster *c = arg;
    int64_t period = c->ttl_ms / 3 > 100 ? c->ttl_ms / 3 : 100;
    bool failing = false;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait = failing ? period / 3 + 1 : period;
        int64_t ns = ts.tv_nsec + (wait % 1000) * 1000000LL;
        ts.tv_sec += wait / 1000 + ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        if (c->stop)
            break;
        int64_t lease = c->lease;
        pthread_mutex_unlock(&c->mu);

        sv_err err = {0};
        int rc = sv_catalog_lease_keepalive(c->cat, lease, &err);
        if (rc == SV_ENOTFOUND) {
            /* The lease lapsed (the catalog was unreachable for longer than
             * the TTL): others already see this node UNREACHABLE. Join again. */
            atomic_fetch_add(&c->lease_losses, 1);
            sv_warn("node lease lost; registering again", "node=%s", c->name);
            rc = register_node(c, &err);
            if (rc == 0)
                sv_info("node registered again", "node=%s", c->name);
        } else if (rc == 0) {
            atomic_fetch_add(&c->renewals, 1);
            int64_t shards, objects;
            local_stats(c, &shards, &objects);
            pthread_mutex_lock(&c->mu);
            bool changed = shards != c->last_shards || objects != c->last_objects;
            pthread_mutex_unlock(&c->mu);
            if (changed) {
                char nk[96], mk[96];
                keys(c, nk, mk);
                sv_catalog_cond ours = {nk, -1};
                if (put_records(c, &ours, lease, shards, objects, &err) == 0) {
                    pthread_mutex_lock(&c->mu);
                    c->last_shards = shards;
                    c->last_objects = objects;
                    pthread_mutex_unlock(&c->mu);
                }
            }
        }
        if (rc) {
            atomic_fetch_add(&c->renew_failures, 1);
            if (!failing)
                sv_warn("node lease renewal failing; retrying", "node=%s error=\"%s\"", c->name, err.msg);
        } else if (failing) {
            sv_info("node lease renewed again", "node=%s", c->name);
        }
        failing = rc != 0;
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- the healthy set (watch on nodes/) ------------------------------------------ */

static long find_healthy(sv_cluster *c, const char *name)
{
    for (size_t i = 0; i < c->nhealthy; i++)
        if (!strcmp(c->healthy[i].name, name))
            return (long)i;
    return -1;
}

static void remove_healthy(sv_cluster *c, size_t i)
{
    c->healthy[i] = c->healthy[--c->nhealthy];
}

static void on_nodes(const sv_catalog_event *e, void *ud)
{
    sv_cluster *c = ud;
    pthread_mutex_lock(&c->mu);
    const char *name = e->key ? e->key + 6 : NULL; /* after "nodes/" */
    switch (e->type) {
    case SV_CATALOG_EV_RESET:
        for (size_t i = 0; i < c->nhealthy; i++)
            c->healthy[i].seen = false;
        break;
    case SV_CATALOG_EV_PUT: {
        long i = find_healthy(c, name);
        if (i < 0 && strlen(name) <= NAME_MAX_LEN &&
            sv_grow(&c->healthy, &c->hcap, c->nhealthy + 1, sizeof *c->healthy) == 0) {
            i = (long)c->nhealthy++;
            snprintf(c->healthy[i].name, sizeof c->healthy[0].name, "%s", name);
            sv_info("node joined", "node=%s", name);
        }
        if (i >= 0) {
            c->healthy[i].seen = true;
            json_t *j = json_loadb(e->val, e->len, 0, NULL);
            const char *url = json_string_value(json_object_get(j, "url"));
            snprintf(c->healthy[i].url, sizeof c->healthy[i].url, "%s", url ? url : "");
            json_decref(j);
        }
        break;
    }
    case SV_CATALOG_EV_DELETE: {
        long i = find_healthy(c, name);
        if (i >= 0) {
            remove_healthy(c, (size_t)i);
            sv_warn("node left the cluster (its lease lapsed or was revoked)", "node=%s", name);
        }
        break;
    }
    case SV_CATALOG_EV_SYNCED:
        for (size_t i = 0; i < c->nhealthy;) {
            if (!c->healthy[i].seen) {
                sv_warn("node left the cluster (its lease lapsed or was revoked)", "node=%s", c->healthy[i].name);
                remove_healthy(c, i);
            } else {
                i++;
            }
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
}

int cluster_node_url(sv_cluster *c, const char *node, char *url, size_t n)
{
    pthread_mutex_lock(&c->mu);
    long i = find_healthy(c, node);
    if (i >= 0)
        snprintf(url, n, "%s", c->healthy[i].url);
    pthread_mutex_unlock(&c->mu);
    return i >= 0 && url[0] ? 0 : SV_ENOTFOUND;
}

bool sv_cluster_node_healthy(sv_cluster *c, const char *node)
{
    if (!c || !node)
        return false;
    pthread_mutex_lock(&c->mu);
    bool ok = find_healthy(c, node) >= 0;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

const char *cluster_secret(const sv_cluster *c) { return c->secret; }
struct forward_state **cluster_forward_state(sv_cluster *c) { return &c->fwd; }
bool sv_cluster_placement(const sv_cluster *c) { return c && c->placement; }
const char *sv_cluster_name(const sv_cluster *c) { return c->name; }

int sv_cluster_check_secret(const sv_cluster *c, const char *presented, sv_err *err)
{
    size_t n = strlen(c->secret), m = presented ? strlen(presented) : 0;
    unsigned char diff = (unsigned char)(n != m || n == 0);
    for (size_t i = 0; i < n; i++) /* constant time in the secret's length */
        diff |= (unsigned char)(c->secret[i] ^ (i < m ? presented[i] : 0));
    if (diff)
        return sv_fail(err, SV_EDENIED,
                       n ? "forwarded request refused: its cluster secret is not this node's "
                           "(SHARDVAULT_CLUSTER_SECRET must be the same on every node)"
                         : "forwarded request refused: this node has no SHARDVAULT_CLUSTER_SECRET");
    return 0;
}

/* ---- placement (docs/cluster.md "Placement") ---------------------------------- */

typedef struct live_list {
    char (*v)[65];
    size_t n, cap;
} live_list;

static int add_live(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    live_list *l = ud;
    const char *name = key + 6; /* after "nodes/" */
    if (strlen(name) > NAME_MAX_LEN || sv_grow(&l->v, &l->cap, l->n + 1, sizeof *l->v))
        return 0;
    snprintf(l->v[l->n++], sizeof l->v[0], "%s", name);
    return 0;
}

int sv_cluster_live_nodes(sv_cluster *c, char (**out)[65], size_t *n, sv_err *err)
{
    live_list l = {0};
    int rc = sv_catalog_scan(c->cat, "nodes/", add_live, &l, err);
    if (rc) {
        free(l.v);
        l.v = NULL;
        l.n = 0;
    }
    *out = l.v;
    *n = l.n;
    return rc;
}

/* Each new shard to the HEALTHY node holding the fewest shards (fixed shards
 * and tenants alike), ties by name. The healthy set is read from the catalog
 * (nodes/, one key per node); the counts from this node's view (memory), so
 * placing costs no scan of the placement records. A view lagging behind
 * another node's create only skews the balance, never correctness. */
static int place(void *self, size_t n, char (*out)[65], sv_err *err)
{
    sv_cluster *c = self;
    char (*names)[65] = NULL;
    size_t nn = 0;
    int rc = sv_cluster_live_nodes(c, &names, &nn, err);
    if (rc)
        return sv_err_wrap(err, "placing %zu shard%s", n, n == 1 ? "" : "s");
    int64_t *counts = calloc(nn + 1, sizeof *counts);
    if (!counts) {
        free(names);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    sv_store_count_placed(c->store, (const char(*)[65])names, counts, nn);
    for (size_t k = 0; k < n; k++) {
        size_t best = nn;
        for (size_t i = 0; i < nn; i++)
            if (best == nn || counts[i] < counts[best] ||
                (counts[i] == counts[best] && strcmp(names[i], names[best]) < 0))
                best = i;
        if (best == nn) { /* nobody registered yet (this node is joining): here */
            snprintf(out[k], 65, "%s", c->name);
            continue;
        }
        snprintf(out[k], 65, "%s", names[best]);
        counts[best]++;
    }
    free(names);
    free(counts);
    return 0;
}

static void seen_clear(struct seen_keys *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->keys[i]);
    s->n = 0;
}

static int cmp_key(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* s sorted (qsort with cmp_key) */
static bool seen_has(const struct seen_keys *s, const char *key)
{
    return s->n && bsearch(&key, s->keys, s->n, sizeof *s->keys, cmp_key) != NULL;
}

/* After a re-list: a key this view has that the listing did not show was
 * deleted meanwhile (its DELETE event was compacted away) — unless it was
 * created since, so the catalog decides. */
static void drop_unseen(sv_cluster *c, bool tenants)
{
    sv_collection_name *names = NULL;
    size_t n = 0;
    if (sv_store_collection_names(c->store, &names, &n, NULL) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char key[300];
        if (!tenants) {
            snprintf(key, sizeof key, "collections/%s", names[i]);
            if (!seen_has(&c->coll_seen, key))
                sv_store_sync_collection(c->store, names[i], NULL); /* drops it if the catalog has none */
            continue;
        }
        sv_shard_info *sh = NULL;
        size_t ns = 0;
        if (sv_store_shards(c->store, names[i], &sh, &ns, NULL) != 0)
            continue;
        for (size_t k = 0; k < ns; k++) {
            snprintf(key, sizeof key, "tenants/%s/%s", names[i], sh[k].name);
            char *v = NULL;
            size_t len = 0;
            if (sh[k].is_tenant && !seen_has(&c->tenant_seen, key) &&
                sv_catalog_get(c->cat, key, &v, &len, NULL, NULL) == SV_ENOTFOUND)
                sv_store_apply_record(c->store, key, NULL, 0, NULL);
            free(v);
        }
        free(sh);
    }
    free(names);
}

/* Tenant records written before placement existed carry no node: the node
 * that joins first with placement on claims them (the one node there was
 * holds their files), each with a txn conditioned on the revision read. */
typedef struct claim {
    char *key, *val;
    int64_t rev;
} claim;

typedef struct claim_list {
    claim *v;
    size_t n, cap;
    const char *node;
} claim_list;

static int find_unplaced(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    claim_list *l = ud;
    json_t *j = json_loadb(val, len, 0, NULL);
    if (json_is_object(j) && !json_object_get(j, "node") && sv_grow(&l->v, &l->cap, l->n + 1, sizeof *l->v) == 0) {
        json_object_set_new(j, "node", json_string(l->node));
        char *nv = json_dumps(j, JSON_COMPACT);
        char *nk = strdup(key);
        if (nv && nk)
            l->v[l->n++] = (claim){nk, nv, rev};
        else {
            free(nv);
            free(nk);
        }
    }
    json_decref(j);
    return 0;
}

static void claim_unplaced(sv_cluster *c)
{
    claim_list l = {.node = c->name};
    sv_err err = {0};
    if (sv_catalog_scan(c->cat, "tenants/", find_unplaced, &l, &err) != 0)
        sv_warn("cannot look for tenants placed before placement existed", "error=\"%s\"", err.msg);
    size_t claimed = 0;
    for (size_t i = 0; i < l.n; i++) {
        sv_catalog_cond cond = {l.v[i].key, l.v[i].rev};
        sv_catalog_op op = {l.v[i].key, l.v[i].val, strlen(l.v[i].val), 0};
        if (sv_catalog_txn(c->cat, &cond, 1, &op, 1, NULL) == 0) {
            claimed++;
            sv_store_apply_record(c->store, l.v[i].key, l.v[i].val, strlen(l.v[i].val), NULL);
        }
        free(l.v[i].key);
        free(l.v[i].val);
    }
    free(l.v);
    if (claimed)
        sv_info("tenants from before placement claimed by this node", "node=%s tenants=%zu", c->name, claimed);
}

/* Collections and tenants created, changed or dropped by other nodes. */
static void on_store_record(sv_cluster *c, struct seen_keys *seen, bool tenants, const sv_catalog_event *e)
{
    if (e->type == SV_CATALOG_EV_RESET) {
        seen_clear(seen);
        seen->relisting = true;
        return;
    }
    if (e->type == SV_CATALOG_EV_SYNCED) {
        /* The first listing follows the store's own load at start: for
         * tenants (costly to compare: every shard) it is skipped. */
        if (seen->relisting && (!tenants || seen->listings > 0)) {
            if (seen->n)
                qsort(seen->keys, seen->n, sizeof *seen->keys, cmp_key);
            drop_unseen(c, tenants);
        }
        if (seen->relisting)
            seen->listings++;
        seen_clear(seen);
        seen->relisting = false;
        return;
    }
    if (e->type == SV_CATALOG_EV_PUT && seen->relisting &&
        sv_grow(&seen->keys, &seen->cap, seen->n + 1, sizeof *seen->keys) == 0 &&
        (seen->keys[seen->n] = strdup(e->key)) != NULL)
        seen->n++;
    sv_err err = {0};
    if (sv_store_apply_record(c->store, e->key, e->type == SV_CATALOG_EV_PUT ? e->val : NULL, e->len, &err) != 0)
        sv_warn("cannot apply a catalog change to this node's view; it is read again on use", "key=%s error=\"%s\"",
                e->key, err.msg);
}

static void on_collections(const sv_catalog_event *e, void *ud)
{
    sv_cluster *c = ud;
    on_store_record(c, &c->coll_seen, false, e);
}

static void on_tenants(const sv_catalog_event *e, void *ud)
{
    sv_cluster *c = ud;
    on_store_record(c, &c->tenant_seen, true, e);
}

int sv_cluster_healthy_count(sv_cluster *c)
{
    pthread_mutex_lock(&c->mu);
    int n = (int)c->nhealthy;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* ---- GET /v1/nodes ------------------------------------------------------------------ */

static int collect_json(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    json_t *obj = ud;
    json_t *j = json_loadb(val, len, 0, NULL);
    if (json_is_object(j))
        json_object_set_new(obj, strchr(key, '/') + 1, j);
    else
        json_decref(j);
    return 0;
}

static json_int_t jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

int sv_cluster_nodes(sv_cluster *c, json_t **out, sv_err *err)
{
    *out = NULL;
    json_t *members = json_object(), *live = json_object(), *arr = json_array();
    int rc = (members && live && arr) ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
    if (rc == 0)
        rc = sv_catalog_scan(c->cat, "members/", collect_json, members, err);
    if (rc == 0)
        rc = sv_catalog_scan(c->cat, "nodes/", collect_json, live, err);
    if (rc == 0) {
        /* members/ is in name order; a live node without a member record
         * (written in the same txn, so only if deleted by hand) is listed
         * from its lease record. */
        json_t *all = json_copy(members);
        const char *name;
        json_t *rec;
        json_object_foreach(live, name, rec) if (!json_object_get(all, name)) json_object_set(all, name, rec);
        const char **names = calloc(json_object_size(all) + 1, sizeof *names);
        size_t n = 0;
        json_object_foreach(all, name, rec) names[n++] = name;
        for (size_t i = 1; i < n; i++) /* small: insertion sort by name */
            for (size_t k = i; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
                const char *t = names[k];
                names[k] = names[k - 1];
                names[k - 1] = t;
            }
        for (size_t i = 0; names && i < n; i++) {
            json_t *lv = json_object_get(live, names[i]);
            json_t *r = lv ? lv : json_object_get(all, names[i]);
            json_int_t shards = jnum(r, "shards"), objects = jnum(r, "objects");
            if (!strcmp(names[i], c->name) && lv) {
                int64_t s, o;
                local_stats(c, &s, &o);
                shards = s;
                objects = o;
            }
            const char *url = json_string_value(json_object_get(r, "url"));
            const char *ver = json_string_value(json_object_get(r, "version"));
            json_t *node = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "name", names[i], "url", url ? url : "",
                                     "status", lv ? "HEALTHY" : "UNREACHABLE", "shards", shards, "objects", objects,
                                     "startedAt", jnum(r, "startedAt"), "version", ver ? ver : "");
            if (!node || json_array_append_new(arr, node)) {
                rc = sv_fail(err, SV_ENOMEM, "out of memory");
                break;
            }
        }
        free(names);
        json_decref(all);
    }
    json_decref(members);
    json_decref(live);
    if (rc == 0 && !(*out = json_pack("{s:o}", "nodes", arr)))
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    if (rc && !*out)
        json_decref(arr);
    return rc;
}

void sv_cluster_metrics(sv_buf *o, void *ud)
{
    sv_cluster *c = ud;
    sv_buf_printf(o,
                  "# HELP shardvault_cluster_nodes_healthy Nodes whose lease is alive, as this node's watch sees.\n"
                  "# TYPE shardvault_cluster_nodes_healthy gauge\nshardvault_cluster_nodes_healthy %d\n"
                  "# HELP shardvault_cluster_lease_renewals_total Node lease keepalives that succeeded.\n"
                  "# TYPE shardvault_cluster_lease_renewals_total counter\nshardvault_cluster_lease_renewals_total "
                  "%lld\n"
                  "# HELP shardvault_cluster_lease_renewal_failures_total Node lease keepalives that failed.\n"
                  "# TYPE shardvault_cluster_lease_renewal_failures_total counter\n"
                  "shardvault_cluster_lease_renewal_failures_total %lld\n"
                  "# HELP shardvault_cluster_lease_losses_total Times this node's lease lapsed and it joined again.\n"
                  "# TYPE shardvault_cluster_lease_losses_total counter\nshardvault_cluster_lease_losses_total %lld\n",
                  sv_cluster_healthy_count(c), (long long)atomic_load(&c->renewals),
                  (long long)atomic_load(&c->renew_failures), (long long)atomic_load(&c->lease_losses));
}

/* ---- open / close ----------------------------------------------------------------- */

static int check_url(const char *u, sv_err *err)
{
    size_t n = u ? strlen(u) : 0;
    const char *rest = n > 7 && !strncmp(u, "http://", 7) ? u + 7 : n > 8 && !strncmp(u, "https://", 8) ? u + 8 : NULL;
    if (!rest || !*rest || n > 200 || strchr(u, '@'))
        return sv_fail(err, SV_EINVAL,
                       "the advertise URL must be http://host:port or https://host:port (how other nodes reach "
                       "this one; no user:password@), at most 200 characters%s",
                       u && strchr(u, '@') ? "" : " (it is not)");
    for (const char *p = rest; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr(".-_:[]", *p) ||
              (*p == '/' && p[1] == 0))) {
            /* the URL is never echoed (an '@', and what precedes it, was refused above) */
            return sv_fail(err, SV_EINVAL, "the advertise URL may hold only a scheme, a host and a port (no path, "
                                           "query or user:password@); it has a '%c' at character %d",
                           *p < 32 || *p > 126 ? '?' : *p, (int)(p - u) + 1);
        }
    return 0;
}

static int node_id(const char *data_dir, char id[37], sv_err *err)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/node.id", data_dir);
    char *s = NULL;
    size_t n = 0;
    if (sv_read_file(path, &s, &n, NULL) == 0) {
        while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
            s[--n] = 0;
        sv_uuid u;
        int ok = sv_uuid_parse(s, n, &u) == 0;
        free(s);
        if (!ok)
            return sv_fail(err, SV_ECORRUPT, "%s is not a UUID; remove it to give this node a new identity", path);
        sv_uuid_format(&u, id);
        return 0;
    }
    sv_uuid u;
    sv_uuid_v4(&u);
    sv_uuid_format(&u, id);
    char line[40];
    snprintf(line, sizeof line, "%s\n", id);
    return sv_write_file_atomic(path, line, strlen(line), err);
}

int sv_cluster_open(const sv_cluster_opts *o, sv_catalog *cat, sv_cluster **out, sv_err *err)
{
    *out = NULL;
    if (sv_check_tenant_name(o->node_name, NULL))
        return sv_fail(err, SV_EINVAL, "node name '%s' must match ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$",
                       o->node_name ? o->node_name : "");
    if (o->ttl_ms < 0 || (o->ttl_ms > 0 && o->ttl_ms < 1000) || o->ttl_ms > 3600000)
        return sv_fail(err, SV_EINVAL, "node TTL %lld ms: use 1000..3600000 ms (default 10000)", (long long)o->ttl_ms);
    sv_cluster *c = calloc(1, sizeof *c);
    if (!c)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    c->cat = cat;
    c->store = o->store;
    snprintf(c->name, sizeof c->name, "%s", o->node_name);
    c->ttl_ms = o->ttl_ms ? o->ttl_ms : 10000;
    c->started_at = sv_now_ms();
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->placement = o->placement && o->store;
    int rc = 0;
    if (o->secret && *o->secret) {
        if (strlen(o->secret) < 16 || strlen(o->secret) > 256)
            rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_CLUSTER_SECRET must be 16 to 256 characters (e.g. the output of "
                                         "`openssl rand -hex 32`), the same on every node");
        else
            snprintf(c->secret, sizeof c->secret, "%s", o->secret);
    }
    if (rc == 0)
        rc = cluster_forward_init(c, err);
    if (rc == 0)
        rc = node_id(o->data_dir, c->id, err);
    if (rc == 0 && c->placement) {
        sv_store_placer p = {c, place};
        sv_store_set_placer(o->store, &p);
    }
    if (rc) {
        sv_cluster_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

int sv_cluster_join(sv_cluster *c, const char *advertise_url, sv_err *err)
{
    int rc = check_url(advertise_url, err);
    if (rc)
        return rc;
    if (c->thread_started)
        return sv_fail(err, SV_ESTATE, "node %s has joined already", c->name);
    snprintf(c->url, sizeof c->url, "%s", advertise_url);
    if (c->url[strlen(c->url) - 1] == '/')
        c->url[strlen(c->url) - 1] = 0;
    rc = register_node(c, err);
    if (rc == 0 && pthread_create(&c->thread, NULL, keepalive_main, c) != 0)
        rc = sv_fail(err, SV_EINTERNAL, "cannot start the node lease thread");
    if (rc == 0) {
        c->thread_started = true;
        rc = sv_catalog_watch_start(c->cat, "nodes/", 0, on_nodes, c, &c->watch, err);
    }
    if (rc == 0 && c->placement)
        claim_unplaced(c);
    if (rc == 0 && c->placement)
        rc = sv_catalog_watch_start(c->cat, "collections/", 0, on_collections, c, &c->coll_watch, err);
    if (rc == 0 && c->placement)
        rc = sv_catalog_watch_start(c->cat, "tenants/", 0, on_tenants, c, &c->tenant_watch, err);
    if (rc)
        return rc;
    sv_info("node registered", "node=%s url=%s ttl_ms=%lld catalog=%s", c->name, c->url, (long long)c->ttl_ms,
            sv_catalog_driver_name(c->cat));
    return 0;
}

void sv_cluster_close(sv_cluster *c)
{
    if (!c)
        return;
    sv_catalog_watch_stop(c->tenant_watch);
    sv_catalog_watch_stop(c->coll_watch);
    sv_catalog_watch_stop(c->watch);
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    if (c->lease > 0) {
        sv_err err = {0};
        if (sv_catalog_lease_revoke(c->cat, c->lease, &err) != 0 && err.code != SV_ENOTFOUND)
            sv_warn("cannot revoke the node lease; it lapses after its TTL", "node=%s error=\"%s\"", c->name, err.msg);
    }
    free(c->healthy);
    seen_clear(&c->coll_seen);
    free(c->coll_seen.keys);
    seen_clear(&c->tenant_seen);
    free(c->tenant_seen.keys);
    cluster_forward_free(c);
    explicit_bzero(c->secret, sizeof c->secret);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
