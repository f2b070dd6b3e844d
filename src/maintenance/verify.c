/* The verify agent: every manifest parses, every blob it references exists
 * with its size, and (readData) hashes to its name; blobs no manifest names
 * are reported as orphans. Snapshots whose blobs are damaged are marked
 * ("damaged": true on GET); a later clean verify clears the mark (one the
 * readData check set, only a clean readData verify). Never
 * deletes anything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maintenance_internal.h"

int sv_maint_verify_check(json_t *body, sv_err *err)
{
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "readData") && strcmp(k, "subset") && strcmp(k, "parallelism"))
            return sv_fail(err, SV_EINVAL, "unknown field \"%s\" (verify takes readData, subset, parallelism)", k);
    }
    json_t *r = json_object_get(body, "readData"), *s = json_object_get(body, "subset"),
           *p = json_object_get(body, "parallelism");
    if (r && !json_is_boolean(r))
        return sv_fail(err, SV_EINVAL, "\"readData\" must be true or false");
    int a = 0, n = 0;
    char extra;
    if (s && (!json_is_string(s) || sscanf(json_string_value(s), "%d/%d%c", &a, &n, &extra) != 2 || n < 1 || a < 1 ||
              a > n))
        return sv_fail(err, SV_EINVAL, "\"subset\" must be \"k/n\" with 1 <= k <= n, e.g. \"1/10\"");
    if (p && (!json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 64))
        return sv_fail(err, SV_EINVAL, "\"parallelism\" must be a whole number from 1 to 64");
    return 0;
}

typedef struct ref {
    char hex[65];
    int64_t size;
    int owner; /* index into owners */
} ref;

typedef struct vf {
    maint_agent *a;
    sv_maintenance *m;
    bool read_data;
    int sub_k, sub_n;
    /* manifests */
    char (*owners)[300]; /* "Coll/name" or "tenants/Coll/tenant" */
    bool *is_snapshot;
    size_t nowners, cap_owners;
    ref *refs;
    size_t nrefs, cap_refs;
    int cur_owner;
    json_t *issues;
    pthread_mutex_t mu;
    /* per unique blob: index of its first ref, count */
    size_t *ustart;
    size_t nu;
    int *bad; /* per unique blob: 0 ok, else issue kind */
    _Atomic int64_t bytes_read, blobs_checked;
    char (*blob_keys)[80];
    size_t nblob_keys, cap_blob_keys;
} vf;

static const char *const kinds[] = {"ok", "missing-blob", "size-mismatch", "corrupt-blob"};

static int add_ref(void *ud, const char *hex, int64_t size)
{
    vf *v = ud;
    if (sv_grow(&v->refs, &v->cap_refs, v->nrefs + 1, sizeof *v->refs))
        return SV_ENOMEM;
    ref *r = &v->refs[v->nrefs++];
    memcpy(r->hex, hex, 65);
    r->size = size;
    r->owner = v->cur_owner;
    return 0;
}

static json_t *owners_of(vf *v, size_t u)
{
    json_t *arr = json_array();
    size_t end = u + 1 < v->nu ? v->ustart[u + 1] : v->nrefs;
    int last = -1;
    for (size_t i = v->ustart[u]; i < end; i++)
        if (v->refs[i].owner != last) {
            last = v->refs[i].owner;
            json_array_append_new(arr, json_string(v->owners[last]));
        }
    return arr;
}

static void issue(vf *v, const char *kind, const char *blob, json_t *snaps, const char *detail)
{
    json_t *o = json_pack("{s:s,s:o,s:s}", "kind", kind, "snapshots", snaps ? snaps : json_array(), "detail", detail);
    if (o && blob)
        json_object_set_new(o, "blob", json_string(blob));
    pthread_mutex_lock(&v->mu);
    json_array_append_new(v->issues, o);
    pthread_mutex_unlock(&v->mu);
}

typedef struct hash_sink {
    sv_sha256_ctx *c;
    vf *v;
    int64_t n;
} hash_sink;

static int hash_bytes(void *ctx, const void *data, size_t len)
{
    hash_sink *h = ctx;
    sv_sha256_update(h->c, data, len);
    h->n += (int64_t)len;
    atomic_fetch_add(&h->v->bytes_read, (int64_t)len);
    return 0;
}

static int check_blob(void *arg, size_t u, sv_err *err)
{
    vf *v = arg;
    if (sv_maint_agent_stop(v->a))
        return sv_maint_stop_error(v->a, err);
    const ref *r = &v->refs[v->ustart[u]];
    char key[80], detail[300];
    sv_snapshot_blob_key(r->hex, key);
    sv_location_info info;
    sv_err e = {0};
    int rc = sv_location_head(v->m->loc, key, &info, &e);
    atomic_fetch_add(&v->blobs_checked, 1);
    atomic_store(&v->a->scanned, atomic_load(&v->blobs_checked));
    if (rc == SV_ENOTFOUND) {
        v->bad[u] = 1;
        snprintf(detail, sizeof detail, "%s is missing", key);
    } else if (rc) {
        *err = e;
        return rc;
    } else if (info.size != r->size) {
        v->bad[u] = 2;
        snprintf(detail, sizeof detail, "%s has %lld bytes, the manifests say %lld", key, (long long)info.size,
                 (long long)r->size);
    } else if (v->read_data) {
        hash_sink h = {sv_sha256_new(), v, 0};
        if (!h.c)
            return sv_fail(err, SV_ENOMEM, "out of memory");
        rc = sv_location_get(v->m->loc, key, 0, -1, hash_bytes, &h, &e);
        char hex[65];
        sv_sha256_final_hex(h.c, hex);
        if (rc == SV_ENOTFOUND) {
            v->bad[u] = 1;
            snprintf(detail, sizeof detail, "%s is missing", key);
        } else if (rc) {
            *err = e;
            return rc;
        } else if (strcmp(hex, r->hex)) {
            v->bad[u] = 3;
            snprintf(detail, sizeof detail, "%s hashes to %.16s…, not to its name", key, hex);
        }
    }
    if (v->bad[u])
        issue(v, kinds[v->bad[u]], r->hex, owners_of(v, u), detail);
    sv_job_add_done(v->a->job, 1, 0);
    return 0;
}

static int cmp_ref(const void *a, const void *b)
{
    int c = strcmp(((const ref *)a)->hex, ((const ref *)b)->hex);
    return c ? c : ((const ref *)a)->owner - ((const ref *)b)->owner;
}

static int collect_keys(void *ctx, const sv_location_entry *e)
{
    vf *v = ctx;
    size_t l = strlen(e->key);
    if (e->is_prefix || l < 4 || strlen(e->key) >= 80)
        return 0;
    if (sv_grow(&v->blob_keys, &v->cap_blob_keys, v->nblob_keys + 1, sizeof *v->blob_keys))
        return SV_ENOMEM;
    snprintf(v->blob_keys[v->nblob_keys++], 80, "%s", e->key);
    return 0;
}

typedef struct mkeys {
    char (*v)[400];
    size_t n, cap;
} mkeys;

static int collect_manifests(void *ctx, const sv_location_entry *e)
{
    mkeys *k = ctx;
    size_t l = strlen(e->key);
    if (e->is_prefix || l >= 400 || l < 15 || strcmp(e->key + l - 14, "/manifest.json"))
        return 0;
    if (sv_grow(&k->v, &k->cap, k->n + 1, sizeof *k->v))
        return SV_ENOMEM;
    snprintf(k->v[k->n++], 400, "%s", e->key);
    return 0;
}


int sv_maint_verify_run(maint_agent *a, json_t **result, sv_err *err)
{
    sv_maintenance *m = a->m;
    json_t *b = a->body;
    vf v = {.a = a, .m = m, .read_data = json_is_true(json_object_get(b, "readData")), .sub_k = 1, .sub_n = 1};
    const char *sub = json_string_value(json_object_get(b, "subset"));
    if (sub)
        sscanf(sub, "%d/%d", &v.sub_k, &v.sub_n);
    int par = (int)sv_maint_int(b, "parallelism", 8);
    pthread_mutex_init(&v.mu, NULL);
    v.issues = json_array();
    mkeys mk = {0};
    int rc = sv_location_list(m->loc, "snapshots/", NULL, NULL, collect_manifests, &mk, err);
    if (rc == 0)
        rc = sv_location_list(m->loc, "tenants/", NULL, NULL, collect_manifests, &mk, err);
    if (rc == SV_ENOMEM)
        rc = sv_fail(err, rc, "out of memory");
    int64_t manifests = 0;
    v.owners = calloc(mk.n + 1, sizeof *v.owners);
    v.is_snapshot = calloc(mk.n + 1, sizeof *v.is_snapshot);
    if (rc == 0 && (!v.owners || !v.is_snapshot))
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    atomic_store(&a->total, (int64_t)mk.n);
    for (size_t i = 0; rc == 0 && i < mk.n; i++) {
        if (v.sub_n > 1 && (int)(sv_hash64(mk.v[i], strlen(mk.v[i])) % (uint64_t)v.sub_n) != v.sub_k - 1)
            continue;
        if (sv_maint_agent_stop(a)) {
            rc = sv_maint_stop_error(a, err);
            break;
        }
        const char *key = mk.v[i];
        bool snap = !strncmp(key, "snapshots/", 10);
        /* "Coll/name" for snapshots (as the API names them), the key's middle for tenants */
        size_t kl = strlen(key);
        snprintf(v.owners[v.nowners], 300, "%.*s", (int)(kl - 14 - (snap ? 10 : 0)), key + (snap ? 10 : 0));
        v.is_snapshot[v.nowners] = snap;
        manifests++;
        struct sv_manifest *mf = NULL;
        sv_err e = {0};
        int lrc = sv_snapshot_manifest_load(m->snap, key, &mf, NULL, &e);
        if (lrc == SV_ENOTFOUND)
            continue;
        if (lrc) {
            json_t *o = json_array();
            json_array_append_new(o, json_string(v.owners[v.nowners]));
            issue(&v, "unreadable-manifest", NULL, o, e.msg);
            if (snap) {
                char c[300];
                snprintf(c, sizeof c, "%s", v.owners[v.nowners]);
                char *slash = strchr(c, '/');
                if (slash) {
                    *slash = '\0';
                    sv_snapshot_mark_damaged(m->snap, c, slash + 1, true, e.msg, NULL);
                }
            }
            v.nowners++;
            continue;
        }
        v.cur_owner = (int)v.nowners++;
        rc = sv_snapshot_manifest_blobs(mf, add_ref, &v);
        sv_snapshot_manifest_free(mf);
        if (rc)
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
    }
    if (rc == 0 && v.nrefs) {
        qsort(v.refs, v.nrefs, sizeof *v.refs, cmp_ref);
        v.ustart = malloc(v.nrefs * sizeof *v.ustart);
        v.bad = v.ustart ? calloc(v.nrefs, sizeof *v.bad) : NULL;
        if (!v.bad)
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
        for (size_t i = 0; rc == 0 && i < v.nrefs; i++)
            if (i == 0 || strcmp(v.refs[i].hex, v.refs[i - 1].hex))
                v.ustart[v.nu++] = i;
        atomic_store(&a->total, (int64_t)v.nu);
        sv_job_set_totals(a->job, (int64_t)v.nu, 0);
        if (rc == 0)
            rc = sv_pool_run(par, v.nu, check_blob, &v, a->job, err);
    }
    /* Orphans: only over the whole store (a subset does not see every
     * reference) and only when every manifest was read (the blobs of an
     * unreadable one would look unreferenced). */
    bool unreadable_any = false;
    {
        size_t i;
        json_t *is;
        json_array_foreach(v.issues, i, is) unreadable_any =
            unreadable_any || !strcmp(json_string_value(json_object_get(is, "kind")), "unreadable-manifest");
    }
    bool orphans_checked = rc == 0 && v.sub_n == 1 && !unreadable_any;
    if (orphans_checked) {
        rc = sv_location_list(m->loc, "blobs/", NULL, NULL, collect_keys, &v, err);
        for (size_t i = 0; rc == 0 && i < v.nblob_keys; i++) {
            const char *hex = strrchr(v.blob_keys[i], '/');
            hex = hex ? hex + 1 : v.blob_keys[i];
            ref probe = {.owner = 0};
            snprintf(probe.hex, sizeof probe.hex, "%s", hex);
            bool found = false;
            if (v.nrefs) {
                /* refs are sorted by hex */
                size_t lo = 0, hi = v.nrefs;
                while (lo < hi) {
                    size_t mid = (lo + hi) / 2;
                    int c = strcmp(v.refs[mid].hex, probe.hex);
                    if (c == 0) {
                        found = true;
                        break;
                    }
                    if (c < 0)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
            }
            if (!found) {
                char d[200];
                snprintf(d, sizeof d, "%s is referenced by no manifest (garbage collection frees it after its grace "
                                      "period)", v.blob_keys[i]);
                issue(&v, "orphan-blob", hex, NULL, d);
            }
        }
    }
    /* Damage marks: set on snapshots with a bad blob, cleared on clean ones. */
    if (rc == 0) {
        bool *damaged = calloc(v.nowners + 1, sizeof *damaged);
        for (size_t u = 0; damaged && u < v.nu; u++) {
            if (!v.bad[u])
                continue;
            size_t end = u + 1 < v.nu ? v.ustart[u + 1] : v.nrefs;
            for (size_t i = v.ustart[u]; i < end; i++)
                damaged[v.refs[i].owner] = true;
        }
        for (size_t o = 0; damaged && o < v.nowners; o++) {
            if (!v.is_snapshot[o])
                continue;
            char c[300];
            snprintf(c, sizeof c, "%s", v.owners[o]);
            char *slash = strchr(c, '/');
            if (!slash)
                continue;
            *slash = '\0';
            json_t *cur = NULL;
            bool was = sv_snapshot_get(m->snap, c, slash + 1, &cur, NULL) == 0 &&
                       json_is_true(json_object_get(cur, "damaged"));
            /* a mark a readData verify set (a blob's content) is cleared
             * only by one that reads the data again: sizes cannot see it */
            const char *why = json_string_value(json_object_get(cur, "damage"));
            bool deep_mark = why && strstr(why, "(readData)");
            json_decref(cur);
            if (damaged[o] && !was)
                sv_snapshot_mark_damaged(m->snap, c, slash + 1, true,
                                         v.read_data ? "verify (readData) found damaged blobs"
                                                     : "verify found damaged blobs", NULL);
            else if (!damaged[o] && was && (v.read_data || !deep_mark)) {
                /* an unreadable manifest marked it above: keep that */
                bool unreadable = false;
                size_t i;
                json_t *is;
                json_array_foreach(v.issues, i, is)
                {
                    if (!strcmp(json_string_value(json_object_get(is, "kind")), "unreadable-manifest") &&
                        !strcmp(json_string_value(json_array_get(json_object_get(is, "snapshots"), 0)), v.owners[o]))
                        unreadable = true;
                }
                if (!unreadable)
                    sv_snapshot_mark_damaged(m->snap, c, slash + 1, false, NULL, NULL);
            }
        }
        free(damaged);
    }
    if (rc == 0)
        *result = json_pack("{s:I,s:I,s:I,s:O,s:b,s:s,s:I,s:b}", "manifestsChecked", (json_int_t)manifests,
                            "blobsChecked", (json_int_t)atomic_load(&v.blobs_checked), "bytesRead",
                            (json_int_t)atomic_load(&v.bytes_read), "issues", v.issues, "readData", v.read_data,
                            "subset", sub ? sub : "1/1", "durationMs", (json_int_t)(sv_now_ms() - a->started_ms),
                            "orphansChecked", orphans_checked);
    json_decref(v.issues);
    free(mk.v);
    free(v.owners);
    free(v.is_snapshot);
    free(v.refs);
    free(v.ustart);
    free(v.bad);
    free(v.blob_keys);
    pthread_mutex_destroy(&v.mu);
    return rc;
}
