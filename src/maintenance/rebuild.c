/* The rebuild agent: the catalog's snapshot records (and the store id) from
 * what the location holds. Listing is one pass in key order; manifests are
 * read and parsed on `parallelism` workers (sv_pool_run), one batch at a
 * time; each batch's records are written in one catalog transaction together
 * with the agent's cursor (the last key of the batch), conditional on the
 * lease. Memory is bounded by the batch (plus the checkpoint's records in the
 * auto/checkpoint sources). A restart resumes after the cursor, so at most
 * the one unfinished batch is read again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maintenance_internal.h"

static const char *const sources[] = {"auto", "checkpoint", "full-scan"};
enum { SRC_AUTO, SRC_CHECKPOINT, SRC_FULL };

int sv_maint_rebuild_check(json_t *body, sv_err *err)
{
    const char *known[] = {"source", "parallelism", "dryRun", "recoveryKit"};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < 4; i++)
            ok = ok || !strcmp(k, known[i]);
        if (!ok)
            return sv_fail(err, SV_EINVAL,
                           "unknown field \"%s\" (rebuild takes source, parallelism, dryRun, recoveryKit)", k);
    }
    json_t *s = json_object_get(body, "source"), *p = json_object_get(body, "parallelism");
    json_t *d = json_object_get(body, "dryRun"), *kit = json_object_get(body, "recoveryKit");
    if (s && (!json_is_string(s) || sv_enum_parse(sources, 3, json_string_value(s)) < 0))
        return sv_fail(err, SV_EINVAL, "\"source\" must be \"auto\", \"checkpoint\" or \"full-scan\"");
    if (p && (!json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 64))
        return sv_fail(err, SV_EINVAL, "\"parallelism\" must be a whole number from 1 to 64");
    if (d && !json_is_boolean(d))
        return sv_fail(err, SV_EINVAL, "\"dryRun\" must be true or false");
    if (kit && (!json_is_string(kit) || json_string_length(kit) > 16384))
        return sv_fail(err, SV_EINVAL, "\"recoveryKit\" must be the kit's text (at most 16 KiB)");
    maint_kit parsed;
    if (kit)
        return sv_maint_kit_parse(json_string_value(kit), &parsed, err);
    return 0;
}

enum { IT_SNAPSHOT, IT_TENANT };

typedef struct item {
    char key[400];
    int64_t mtime;
    int kind;
    char coll[129], name[129];
    /* results */
    char rkey[400];
    char *val;
    bool indexed, unreadable, from_ckpt;
    int64_t blobs;
} item;

typedef struct rb {
    maint_agent *a;
    sv_maintenance *m;
    int src;
    bool dry;
    int parallelism;
    json_t *ckpt;    /* "collection/name" -> record (auto, checkpoint) */
    int64_t since;   /* manifests at least this new are read even if the checkpoint has them */
    item *batch;
    size_t n;
    const char *prefix;
    bool counting;
    int64_t counted;
    sv_err err;
    /* counters (persisted) */
    int64_t scanned, indexed, skipped, blobs, tenants, unreadable, from_ckpt;
} rb;

/* snapshots/<c>/<n>/manifest.json or tenants/<c>/<t>/manifest.json */
static bool parse_key(const char *key, const char *prefix, char coll[129], char name[129])
{
    size_t pl = strlen(prefix);
    if (strncmp(key, prefix, pl))
        return false;
    const char *c = key + pl, *s1 = strchr(c, '/');
    if (!s1)
        return false;
    const char *n = s1 + 1, *s2 = strchr(n, '/');
    if (!s2 || strcmp(s2, "/manifest.json") || s1 - c > 128 || s2 - n > 128 || s1 == c || s2 == n)
        return false;
    snprintf(coll, 129, "%.*s", (int)(s1 - c), c);
    snprintf(name, 129, "%.*s", (int)(s2 - n), n);
    return true;
}

static int count_files(void *ud, const char *hex, int64_t size)
{
    (*(int64_t *)ud)++;
    return 0;
}

static int64_t record_files(json_t *rec)
{
    int64_t n = 0;
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(rec, "shards"), i, s) n += json_integer_value(json_object_get(s, "files"));
    return n;
}

static int work_one(void *arg, size_t i, sv_err *err)
{
    rb *r = arg;
    item *it = &r->batch[i];
    if (sv_maint_agent_stop(r->a))
        return sv_maint_stop_error(r->a, err);
    if (it->kind == IT_TENANT) {
        struct sv_manifest *mf = NULL;
        sv_err e = {0};
        if (sv_snapshot_manifest_load(r->m->snap, it->key, &mf, NULL, &e)) {
            it->unreadable = true;
            sv_warn("rebuild: unreadable tenant manifest", "key=%s error=\"%s\"", it->key, e.msg);
            return 0;
        }
        sv_snapshot_manifest_blobs(mf, count_files, &it->blobs);
        sv_snapshot_manifest_free(mf);
        pthread_mutex_lock(&r->m->mu);
        sv_maintenance_tenant_fn fn = r->m->tenant_fn;
        void *ud = r->m->tenant_ud;
        pthread_mutex_unlock(&r->m->mu);
        if (fn && !r->dry) {
            int rc = fn(ud, it->coll, it->name, it->key, err);
            if (rc)
                return rc;
            it->indexed = true;
        }
        return 0;
    }
    if (sv_snapshot_record_exists(r->m->snap, it->coll, it->name))
        return 0; /* the catalog has it: skipped */
    char ck[300];
    snprintf(ck, sizeof ck, "%s/%s", it->coll, it->name);
    json_t *rec = r->ckpt ? json_object_get(r->ckpt, ck) : NULL;
    if (rec && (it->mtime < r->since || r->src == SRC_CHECKPOINT)) {
        sv_err e = {0};
        if (sv_snapshot_record_kv(rec, it->rkey, &it->val, &e) == 0) {
            it->indexed = it->from_ckpt = true;
            it->blobs = record_files(rec);
            return 0;
        }
    }
    if (r->src == SRC_CHECKPOINT)
        return 0; /* only what the checkpoint has */
    struct sv_manifest *mf = NULL;
    sv_err e = {0};
    int rc = sv_snapshot_manifest_load(r->m->snap, it->key, &mf, NULL, &e);
    if (rc == SV_ENOTFOUND)
        return 0; /* dropped since the listing */
    if (rc == 0) {
        sv_snapshot_manifest_info info;
        sv_snapshot_manifest_info_of(mf, &info);
        if (strcmp(info.collection, it->coll) || strcmp(info.name, it->name)) {
            rc = sv_fail(&e, SV_ECORRUPT, "it describes %s/%s", info.collection, info.name);
        } else {
            sv_snapshot_manifest_blobs(mf, count_files, &it->blobs);
            rc = sv_snapshot_record_of_manifest(r->m->snap, mf, it->rkey, &it->val, &e);
            if (rc == SV_ENOMEM) {
                sv_snapshot_manifest_free(mf);
                *err = e;
                return rc;
            }
        }
    }
    sv_snapshot_manifest_free(mf);
    if (rc) {
        it->unreadable = true;
        sv_warn("rebuild: manifest skipped", "key=%s error=\"%s\"", it->key, e.msg);
        return 0;
    }
    it->indexed = true;
    return 0;
}

static int flush_batch(rb *r)
{
    if (r->n == 0)
        return 0;
    int rc = sv_pool_run(r->parallelism, r->n, work_one, r, r->a->job, &r->err);
    sv_catalog_op *ops = rc == 0 ? calloc(r->n + 1, sizeof *ops) : NULL;
    if (rc == 0 && !ops)
        rc = sv_fail(&r->err, SV_ENOMEM, "out of memory");
    size_t nops = 0;
    int64_t scanned = r->scanned, indexed = r->indexed, skipped = r->skipped, blobs = r->blobs, tenants = r->tenants,
            unreadable = r->unreadable, from_ckpt = r->from_ckpt;
    for (size_t i = 0; rc == 0 && i < r->n; i++) {
        item *it = &r->batch[i];
        scanned++;
        if (it->kind == IT_TENANT)
            tenants++;
        if (it->unreadable)
            unreadable++;
        if (it->indexed) {
            indexed++;
            blobs += it->blobs;
            from_ckpt += it->from_ckpt;
            if (it->val && !r->dry)
                ops[nops++] = (sv_catalog_op){it->rkey, it->val, strlen(it->val), 0};
        } else {
            skipped++; /* scanned == indexed + skipped */
        }
    }
    if (rc == 0) {
        json_t *cnt = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "scanned", (json_int_t)scanned, "indexed",
                                (json_int_t)indexed, "skipped", (json_int_t)skipped, "blobs", (json_int_t)blobs,
                                "tenants", (json_int_t)tenants, "unreadable", (json_int_t)unreadable,
                                "fromCheckpoint", (json_int_t)from_ckpt);
        json_object_set_new(r->a->state, "counters", cnt);
        json_object_set_new(r->a->state, "cursor",
                            json_pack("{s:s,s:s}", "prefix", r->prefix, "after", r->batch[r->n - 1].key));
        rc = sv_maint_agent_save(r->a, ops, nops, &r->err);
    }
    if (rc == 0) {
        r->scanned = scanned;
        r->indexed = indexed;
        r->skipped = skipped;
        r->blobs = blobs;
        r->tenants = tenants;
        r->unreadable = unreadable;
        r->from_ckpt = from_ckpt;
        atomic_store(&r->a->scanned, scanned);
        atomic_store(&r->a->indexed, indexed);
        atomic_store(&r->a->blobs, blobs);
        sv_job_set_done(r->a->job, scanned, 0);
    }
    for (size_t i = 0; i < r->n; i++)
        free(r->batch[i].val);
    free(ops);
    r->n = 0;
    if (rc == 0)
        sv_maint_test_delay(r->m);
    return rc;
}

static int on_entry(void *ctx, const sv_location_entry *e)
{
    rb *r = ctx;
    char coll[129], name[129];
    if (e->is_prefix || !parse_key(e->key, r->prefix, coll, name))
        return 0;
    if (r->counting) {
        r->counted++;
        return 0;
    }
    item *it = &r->batch[r->n++];
    memset(it, 0, sizeof *it);
    snprintf(it->key, sizeof it->key, "%s", e->key);
    snprintf(it->coll, sizeof it->coll, "%s", coll);
    snprintf(it->name, sizeof it->name, "%s", name);
    it->mtime = e->mtime_ms;
    it->kind = !strcmp(r->prefix, "tenants/") ? IT_TENANT : IT_SNAPSHOT;
    if (r->n < (size_t)r->m->batch)
        return 0;
    int rc = flush_batch(r);
    return rc ? rc : 0;
}

int sv_maint_rebuild_run(maint_agent *a, json_t **result, sv_err *err)
{
    sv_maintenance *m = a->m;
    json_t *b = a->body;
    rb r = {.a = a, .m = m};
    r.src = json_is_string(json_object_get(b, "source"))
                ? sv_enum_parse(sources, 3, json_string_value(json_object_get(b, "source")))
                : SRC_AUTO;
    r.dry = json_is_true(json_object_get(b, "dryRun"));
    r.parallelism = (int)sv_maint_int(b, "parallelism", 16);
    const char *kit = json_string_value(json_object_get(b, "recoveryKit"));
    json_t *st = a->state;
    bool resumed = json_is_true(json_object_get(st, "resumed"));
    json_t *cnt = json_object_get(st, "counters");
    r.scanned = json_integer_value(json_object_get(cnt, "scanned"));
    r.indexed = json_integer_value(json_object_get(cnt, "indexed"));
    r.skipped = json_integer_value(json_object_get(cnt, "skipped"));
    r.blobs = json_integer_value(json_object_get(cnt, "blobs"));
    r.tenants = json_integer_value(json_object_get(cnt, "tenants"));
    r.unreadable = json_integer_value(json_object_get(cnt, "unreadable"));
    r.from_ckpt = json_integer_value(json_object_get(cnt, "fromCheckpoint"));

    /* 1. The descriptor: adopt the location (rewritten from the kit if lost). */
    bool rewritten = json_is_true(json_object_get(st, "descriptorRewritten"));
    if (!json_object_get(st, "adopted")) {
        bool rw = false;
        int rc = sv_maint_desc_adopt(m, kit, r.dry, &rw, err);
        if (rc)
            return rc;
        rewritten = rw;
        json_object_set_new(st, "adopted", json_true());
        json_object_set_new(st, "descriptorRewritten", json_boolean(rewritten));
        if ((rc = sv_maint_agent_save(a, NULL, 0, err)))
            return rc;
    }

    /* 2. The checkpoint (auto, checkpoint). */
    char ckey[128] = "";
    int64_t cat_ms = 0;
    if (r.src != SRC_FULL) {
        json_t *doc = NULL;
        sv_err e = {0};
        int rc = sv_maint_ckpt_newest(m, ckey, &cat_ms, &doc, &e);
        if (rc && r.src == SRC_CHECKPOINT) {
            *err = e;
            return rc;
        }
        if (rc) {
            sv_warn("rebuild: newest checkpoint unusable, scanning every manifest", "error=\"%s\"", e.msg);
            ckey[0] = '\0';
        }
        if (!ckey[0] && r.src == SRC_CHECKPOINT)
            return sv_fail(err, SV_ENOTFOUND, "the location has no catalog checkpoint (catalog/*.json.zst); use "
                                              "\"source\": \"full-scan\"");
        if (doc) {
            r.ckpt = json_object();
            size_t i;
            json_t *rec;
            json_array_foreach(json_object_get(doc, "snapshots"), i, rec)
            {
                char k[300];
                snprintf(k, sizeof k, "%s/%s", json_string_value(json_object_get(rec, "collection")),
                         json_string_value(json_object_get(rec, "name")));
                json_object_set(r.ckpt, k, rec);
            }
            json_decref(doc);
            int64_t overlap = 120000;
            sv_env_int("SHARDVAULT_MAINTENANCE_CHECKPOINT_OVERLAP_MS", 120000, &overlap, NULL);
            r.since = cat_ms - overlap;
        }
    }

    /* 3. Count (for progress and ETA), then list from the cursor in batches. */
    static const char *const prefixes[] = {"snapshots/", "tenants/"};
    r.counting = true;
    int rc = 0;
    for (int p = 0; rc == 0 && p < 2; p++) {
        r.prefix = prefixes[p];
        rc = sv_location_list(m->loc, r.prefix, NULL, NULL, on_entry, &r, err);
    }
    r.counting = false;
    atomic_store(&a->total, r.counted);
    sv_job_set_totals(a->job, r.counted, 0);
    atomic_store(&a->scanned, r.scanned);
    r.batch = rc == 0 ? calloc((size_t)m->batch, sizeof *r.batch) : NULL;
    if (rc == 0 && !r.batch)
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    json_t *cur = json_object_get(st, "cursor");
    /* Copies: each batch replaces the state's cursor object. */
    char cur_prefix_buf[32] = "";
    snprintf(cur_prefix_buf, sizeof cur_prefix_buf, "%s",
             json_is_string(json_object_get(cur, "prefix")) ? json_string_value(json_object_get(cur, "prefix")) : "");
    const char *cur_prefix = cur_prefix_buf[0] ? cur_prefix_buf : NULL;
    char after[400] = "";
    snprintf(after, sizeof after, "%s",
             json_is_string(json_object_get(cur, "after")) ? json_string_value(json_object_get(cur, "after")) : "");
    for (int p = 0; rc == 0 && p < 2; p++) {
        if (cur_prefix && !strcmp(cur_prefix, "tenants/") && p == 0)
            continue;
        r.prefix = prefixes[p];
        bool here = cur_prefix && !strcmp(cur_prefix, r.prefix) && after[0];
        rc = sv_location_list(m->loc, r.prefix, NULL, here ? after : NULL, on_entry, &r, err);
        if (rc == 0)
            rc = flush_batch(&r);
        else if (r.err.code)
            *err = r.err;
    }
    free(r.batch);
    json_decref(r.ckpt);
    if (rc)
        return rc;
    if (!r.dry)
        sv_maint_ckpt_changed(m); /* the rebuilt catalog gets its own checkpoint */
    pthread_mutex_lock(&m->mu);
    const char *sid = m->store_id[0] ? m->store_id : m->loc_store_id;
    *result = json_pack("{s:s,s:s?,s:I,s:I,s:I,s:I,s:b,s:I,s:I,s:I,s:I,s:b,s:b,s:s?,s:i}", "source",
                        sources[r.src], "checkpointUsed", ckey[0] ? ckey : NULL, "manifestsScanned",
                        (json_int_t)r.scanned, "manifestsIndexed", (json_int_t)r.indexed, "manifestsSkipped",
                        (json_int_t)r.skipped, "blobsReferenced", (json_int_t)r.blobs, "descriptorRewritten",
                        rewritten, "durationMs", (json_int_t)(sv_now_ms() - a->started_ms), "tenantsFound",
                        (json_int_t)r.tenants, "manifestsUnreadable", (json_int_t)r.unreadable,
                        "manifestsFromCheckpoint", (json_int_t)r.from_ckpt, "dryRun", r.dry, "resumed", resumed,
                        "storeId", sid[0] ? sid : NULL, "parallelism", r.parallelism);
    pthread_mutex_unlock(&m->mu);
    return *result ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
}
