/* The store descriptor {location}/store.json, the store id in the catalog
 * (maintenance/store holds the descriptor's exact bytes), the write guard,
 * and the recovery kit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maintenance_internal.h"

static const char *const desc_names[] = {"unknown", "ok", "missing", "foreign", "invalid", "unadopted"};
const char *sv_maint_desc_name(int state) { return sv_enum_name(desc_names, 6, state); }

#define DESC_KEY "store.json"
#define LAYOUT "shardvault-1"

char *sv_maint_desc_text(const char *store_id, int64_t created_at)
{
    char *s = malloc(256);
    if (s)
        snprintf(s, 256, "{\"format_version\":%d,\"storeId\":\"%s\",\"createdAt\":%lld,\"layout\":\"%s\"}\n",
                 MAINT_FORMAT, store_id, (long long)created_at, LAYOUT);
    return s;
}

int sv_maint_desc_parse(const char *text, size_t len, char id[37], int64_t *created_at, sv_err *err)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    const char *sid = json_string_value(json_object_get(o, "storeId"));
    json_t *fv = json_object_get(o, "format_version"), *ca = json_object_get(o, "createdAt");
    sv_uuid u;
    int rc = 0;
    if (!o)
        rc = sv_fail(err, SV_ECORRUPT, "store.json is not JSON");
    else if (!sid || sv_uuid_parse(sid, strlen(sid), &u) || !json_is_integer(fv) || !json_is_integer(ca))
        rc = sv_fail(err, SV_ECORRUPT, "store.json lacks a valid storeId, format_version or createdAt");
    else if (json_integer_value(fv) != MAINT_FORMAT)
        rc = sv_fail(err, SV_ECORRUPT, "store.json has format_version %lld; this build reads %d",
                     (long long)json_integer_value(fv), MAINT_FORMAT);
    if (rc == 0) {
        snprintf(id, 37, "%s", sid);
        *created_at = json_integer_value(ca);
    }
    json_decref(o);
    return rc;
}

/* Conditional create; where the store cannot do it (s3rver has no
 * If-None-Match), HEAD then PUT — not atomic, documented. */
int sv_maint_create_descriptor(sv_location *loc, const char *text, sv_err *err)
{
    int rc = sv_location_create_if_absent(loc, DESC_KEY, text, strlen(text), err);
    if (rc != SV_EUNSUPPORTED)
        return rc;
    sv_location_info info;
    rc = sv_location_head(loc, DESC_KEY, &info, err);
    if (rc == 0)
        return sv_fail(err, SV_EEXIST, "store.json exists");
    if (rc != SV_ENOTFOUND)
        return rc;
    sv_warn("store.json: the location has no conditional create; HEAD then PUT (not atomic)", "location=\"%s\"",
            sv_location_describe(loc));
    return sv_location_put(loc, DESC_KEY, text, strlen(text), err);
}

static int stop_first(void *ctx, const sv_location_entry *e)
{
    *(bool *)ctx = true;
    return 1;
}

static int set_catalog_descriptor(sv_maintenance *m, const char *text, sv_err *err)
{
    char id[37];
    int64_t ca;
    int rc = sv_maint_desc_parse(text, strlen(text), id, &ca, err);
    if (rc == 0)
        rc = sv_catalog_put(m->cat, MAINT_STORE_KEY, text, strlen(text), 0, err);
    if (rc == 0) {
        char *dup = strdup(text);
        if (!dup)
            return sv_fail(err, SV_ENOMEM, "out of memory");
        free(m->descriptor);
        m->descriptor = dup;
        snprintf(m->store_id, sizeof m->store_id, "%s", id);
        snprintf(m->loc_store_id, sizeof m->loc_store_id, "%s", id);
        m->desc_state = DESC_OK;
        m->problem[0] = '\0';
    }
    return rc;
}

int sv_maint_desc_init(sv_maintenance *m, sv_err *err)
{
    /* The catalog's copy. */
    char *cv = NULL;
    size_t cl = 0;
    int rc = sv_catalog_get(m->cat, MAINT_STORE_KEY, &cv, &cl, NULL, err);
    if (rc && rc != SV_ENOTFOUND)
        return rc;
    m->store_id[0] = '\0';
    if (rc == 0) {
        int64_t ca;
        char *t = strndup(cv, cl);
        free(cv);
        if (!t)
            return sv_fail(err, SV_ENOMEM, "out of memory");
        if (sv_maint_desc_parse(t, strlen(t), m->store_id, &ca, NULL)) {
            free(t);
            return sv_fail(err, SV_ECORRUPT, "the catalog's store descriptor (%s) does not parse", MAINT_STORE_KEY);
        }
        free(m->descriptor);
        m->descriptor = t;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        sv_buf b = {0};
        sv_err e = {0};
        rc = sv_location_get_buf(m->loc, DESC_KEY, &b, &e);
        if (rc == 0) {
            int64_t ca;
            if (sv_maint_desc_parse((const char *)b.data, b.len, m->loc_store_id, &ca, &e)) {
                m->desc_state = DESC_INVALID;
                snprintf(m->problem, sizeof m->problem,
                         "the location's store.json is not valid (%s); run `shardvault maintenance rebuild "
                         "--recovery-kit FILE` to rewrite it from the recovery kit", e.msg);
            } else if (!m->store_id[0]) {
                m->desc_state = DESC_UNADOPTED;
                snprintf(m->problem, sizeof m->problem,
                         "the location belongs to store %s and this node's catalog has none; run `shardvault "
                         "maintenance rebuild` to adopt it (its snapshots become this node's)", m->loc_store_id);
            } else if (strcmp(m->store_id, m->loc_store_id)) {
                m->desc_state = DESC_FOREIGN;
                snprintf(m->problem, sizeof m->problem,
                         "the location belongs to store %s but this node's catalog is store %s: refusing to write "
                         "into another store's location; point the node at its own location, or run `shardvault "
                         "maintenance rebuild` on a fresh node to adopt this one", m->loc_store_id, m->store_id);
            } else {
                m->desc_state = DESC_OK;
                m->problem[0] = '\0';
            }
            sv_buf_free(&b);
            return 0;
        }
        sv_buf_free(&b);
        if (rc != SV_ENOTFOUND) {
            m->desc_state = DESC_UNKNOWN;
            snprintf(m->problem, sizeof m->problem, "cannot read the location's store.json: %s", e.msg);
            return 0; /* retried by the guard */
        }
        char *text = NULL;
        if (m->store_id[0]) {
            /* Ours, deleted: the catalog knows its exact bytes. */
            text = strdup(m->descriptor);
        } else {
            bool any = false;
            rc = sv_location_list(m->loc, "", NULL, NULL, stop_first, &any, &e);
            if (rc) {
                m->desc_state = DESC_UNKNOWN;
                snprintf(m->problem, sizeof m->problem, "cannot list the location: %s", e.msg);
                return 0;
            }
            /* A node from before store.json (its catalog has snapshot records)
             * owns the data it finds: it gets a descriptor. A fresh node does
             * not claim data it did not write. */
            json_t *recs = NULL;
            bool history = any && sv_snapshot_records(m->snap, &recs, NULL) == 0 && json_array_size(recs) > 0;
            json_decref(recs);
            if (any && !history) {
                m->desc_state = DESC_MISSING;
                snprintf(m->problem, sizeof m->problem,
                         "the location holds data but no store.json; run `shardvault maintenance rebuild "
                         "--recovery-kit FILE` with the store's recovery kit to adopt it");
                return 0;
            }
            sv_uuid u;
            char id[37];
            sv_uuid_v4(&u);
            sv_uuid_format(&u, id);
            text = sv_maint_desc_text(id, sv_now_ms());
        }
        if (!text)
            return sv_fail(err, SV_ENOMEM, "out of memory");
        rc = sv_maint_create_descriptor(m->loc, text, &e);
        if (rc == 0 && !m->store_id[0])
            rc = set_catalog_descriptor(m, text, &e);
        if (rc == 0) {
            snprintf(m->loc_store_id, sizeof m->loc_store_id, "%s", m->store_id);
            m->desc_state = DESC_OK;
            m->problem[0] = '\0';
            sv_info("store descriptor written", "store=%s location=\"%s\"", m->store_id,
                    sv_location_describe(m->loc));
        }
        free(text);
        if (rc == 0)
            return 0;
        if (rc != SV_EEXIST) { /* EEXIST: someone else won; read theirs */
            m->desc_state = DESC_UNKNOWN;
            snprintf(m->problem, sizeof m->problem, "cannot write the location's store.json: %s", e.msg);
            return 0;
        }
    }
    m->desc_state = DESC_UNKNOWN;
    snprintf(m->problem, sizeof m->problem, "store.json keeps changing under this node");
    return 0;
}

void sv_maint_desc_recheck_locked(sv_maintenance *m)
{
    if ((m->desc_state == DESC_UNADOPTED || m->desc_state == DESC_FOREIGN) && sv_now_ms() - m->desc_checked_ms >= 1000) {
        m->desc_checked_ms = sv_now_ms();
        sv_maint_desc_init(m, NULL);
    }
}

int sv_maint_guard(void *ud, sv_err *err)
{
    sv_maintenance *m = ud;
    pthread_mutex_lock(&m->mu);
    if (m->desc_state == DESC_UNKNOWN)
        sv_maint_desc_init(m, NULL);
    sv_maint_desc_recheck_locked(m);
    int rc = 0;
    if (m->moving) {
        rc = sv_fail(err, SV_EUNAVAIL, "the store is moving to another location (maintenance move); retry when "
                                       "it has finished");
    } else if (m->desc_state != DESC_OK) {
        rc = sv_fail(err, m->desc_state == DESC_UNKNOWN ? SV_EUNAVAIL : SV_ECONFLICT, "location %s: %s",
                     sv_location_describe(m->loc), m->problem);
        atomic_fetch_add(&m->m_refused, 1);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ---- the recovery kit ------------------------------------------------------ */

char *sv_maint_kit_text(const char *store_id, const char *location, int64_t created_at, const char *desc_sha)
{
    char when[64];
    sv_format_time_ms(created_at, when, sizeof when);
    sv_buf b = {0};
    sv_buf_printf(&b,
                  "# shardvault recovery kit. Keep it offline (print it). If {location}/store.json is lost,\n"
                  "# a fresh node rebuilds the catalog with it:\n"
                  "#   shardvault maintenance rebuild --recovery-kit kit.txt\n"
                  "# Any change to the lines below (except comments) invalidates the checksum.\n"
                  "format_version: %d\nstore_id: %s\nlocation: %s\ncreated_at: %lld (%s)\nlayout: %s\n"
                  "descriptor_sha256: %s\n",
                  MAINT_FORMAT, store_id, location, (long long)created_at, when, LAYOUT, desc_sha);
    char hex[65];
    sv_sha256_ctx *c = sv_sha256_new();
    if (!c) {
        sv_buf_free(&b);
        return NULL;
    }
    sv_sha256_update(c, b.data, b.len);
    sv_sha256_final_hex(c, hex);
    sv_buf_printf(&b, "checksum: sha256:%s\n", hex);
    return sv_buf_cstr(&b);
}

static const char *field(const char *text, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    for (const char *p = text; p && p < text + len;) {
        const char *eol = memchr(p, '\n', (size_t)(text + len - p));
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(text + len - p);
        if (ll > nl + 1 && !strncmp(p, name, nl) && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            size_t vl = (size_t)(p + ll - v);
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            snprintf(out, outlen, "%.*s", (int)vl, v);
            return out;
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

int sv_maint_kit_parse(const char *text, maint_kit *out, sv_err *err)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(text);
    const char *ck = strstr(text, "\nchecksum:");
    if (!ck)
        return sv_fail(err, SV_EINVAL, "the recovery kit has no checksum line; pass the kit exactly as printed");
    size_t body_len = (size_t)(ck - text) + 1;
    char sum[128];
    if (!field(ck + 1, len - body_len, "checksum", sum, sizeof sum) || strncmp(sum, "sha256:", 7) ||
        !sv_sha256_valid_hex(sum + 7))
        return sv_fail(err, SV_EINVAL,
                       "the recovery kit's checksum line is malformed (expected checksum: sha256:<hex>)");
    char hex[65];
    sv_sha256_ctx *c = sv_sha256_new();
    if (!c)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    sv_sha256_update(c, text, body_len);
    sv_sha256_final_hex(c, hex);
    if (strcmp(hex, sum + 7))
        return sv_fail(err, SV_EINVAL,
                       "the recovery kit's checksum does not match its contents (it was altered or mistyped); "
                       "use the kit exactly as printed by `shardvault maintenance recovery-kit`");
    char v[4200];
    sv_uuid u;
    int64_t fv = 0;
    if (!field(text, body_len, "format_version", v, sizeof v) || sv_parse_size(v, &fv) || fv != MAINT_FORMAT)
        return sv_fail(err, SV_EINVAL, "the recovery kit's format_version is missing or not %d", MAINT_FORMAT);
    if (!field(text, body_len, "store_id", v, sizeof v) || sv_uuid_parse(v, strlen(v), &u))
        return sv_fail(err, SV_EINVAL, "the recovery kit's store_id is missing or not a UUID");
    sv_uuid_format(&u, out->store_id);
    if (!field(text, body_len, "created_at", v, sizeof v))
        return sv_fail(err, SV_EINVAL, "the recovery kit has no created_at");
    out->created_at = strtoll(v, NULL, 10);
    if (!field(text, body_len, "descriptor_sha256", v, sizeof v) || !sv_sha256_valid_hex(v))
        return sv_fail(err, SV_EINVAL, "the recovery kit's descriptor_sha256 is missing or not a sha256");
    memcpy(out->descriptor_sha256, v, 64); /* valid hex: 64 characters */
    out->descriptor_sha256[64] = '\0';
    if (field(text, body_len, "location", v, sizeof v))
        snprintf(out->location, sizeof out->location, "%s", v);
    return 0;
}

int sv_maintenance_recovery_kit(sv_maintenance *m, char **text, sv_err *err)
{
    pthread_mutex_lock(&m->mu);
    int rc = 0;
    if (!m->store_id[0] || !m->descriptor) {
        rc = sv_fail(err, SV_ESTATE, "this node has no store id yet (%s)",
                     m->problem[0] ? m->problem : "its location has no descriptor");
    } else {
        char id[37], hex[65];
        int64_t ca = 0;
        sv_maint_desc_parse(m->descriptor, strlen(m->descriptor), id, &ca, NULL);
        sv_sha256_ctx *c = sv_sha256_new();
        if (c) {
            sv_sha256_update(c, m->descriptor, strlen(m->descriptor));
            sv_sha256_final_hex(c, hex);
            *text = sv_maint_kit_text(m->store_id, m->url, ca, hex);
        }
        if (!c || !*text)
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int sv_maint_desc_adopt(sv_maintenance *m, const char *kit_text, bool dry_run, bool *rewritten, sv_err *err)
{
    *rewritten = false;
    maint_kit kit;
    if (kit_text) {
        int rc = sv_maint_kit_parse(kit_text, &kit, err);
        if (rc)
            return rc;
    }
    sv_buf b = {0};
    sv_err e = {0};
    int rc = sv_location_get_buf(m->loc, DESC_KEY, &b, &e);
    char id[37];
    int64_t ca;
    bool valid = rc == 0 && sv_maint_desc_parse((const char *)b.data, b.len, id, &ca, &e) == 0;
    if (rc && rc != SV_ENOTFOUND) {
        sv_buf_free(&b);
        return sv_fail(err, rc, "cannot read store.json: %s", e.msg);
    }
    char *text = NULL;
    if (valid) {
        if (kit_text && strcmp(kit.store_id, id)) {
            sv_buf_free(&b);
            return sv_fail(err, SV_EINVAL, "the recovery kit is for store %s but the location holds store %s",
                           kit.store_id, id);
        }
        text = strndup((const char *)b.data, b.len);
    } else if (!kit_text) {
        sv_buf_free(&b);
        return sv_fail(err, SV_ESTATE,
                       "the location has %s store.json (%s): a rebuild needs the store's recovery kit to rewrite it; "
                       "pass \"recoveryKit\" (shardvault maintenance rebuild --recovery-kit FILE)",
                       rc == SV_ENOTFOUND ? "no" : "an invalid",
                       rc == SV_ENOTFOUND ? "deleted or never written" : e.msg);
    } else {
        text = sv_maint_desc_text(kit.store_id, kit.created_at);
        char hex[65];
        sv_sha256_ctx *c = text ? sv_sha256_new() : NULL;
        if (c) {
            sv_sha256_update(c, text, strlen(text));
            sv_sha256_final_hex(c, hex);
        }
        if (c && strcmp(hex, kit.descriptor_sha256)) {
            free(text);
            sv_buf_free(&b);
            return sv_fail(err, SV_EINVAL,
                           "the recovery kit's descriptor_sha256 does not match the descriptor it describes");
        }
        if (text && !dry_run) {
            int wrc = rc == SV_ENOTFOUND ? sv_maint_create_descriptor(m->loc, text, err)
                                         : sv_location_put(m->loc, DESC_KEY, text, strlen(text), err);
            if (wrc) {
                free(text);
                sv_buf_free(&b);
                return wrc;
            }
            *rewritten = true;
            sv_info("store.json rewritten from the recovery kit", "store=%s", kit.store_id);
        }
    }
    sv_buf_free(&b);
    if (!text)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    rc = 0;
    char new_id[37] = "";
    int64_t new_ca;
    sv_maint_desc_parse(text, strlen(text), new_id, &new_ca, NULL);
    pthread_mutex_lock(&m->mu);
    if (m->store_id[0] && strcmp(m->store_id, new_id))
        rc = sv_fail(err, SV_ECONFLICT,
                     "this node's catalog belongs to store %s, the location to store %s: adopt a location on a "
                     "fresh node (empty data directory), never into another store's catalog",
                     m->store_id, new_id);
    pthread_mutex_unlock(&m->mu);
    if (rc == 0 && !dry_run) {
        pthread_mutex_lock(&m->mu);
        rc = set_catalog_descriptor(m, text, err);
        pthread_mutex_unlock(&m->mu);
        if (rc == 0)
            sv_info("location adopted", "store=%s location=\"%s\"", m->store_id, sv_location_describe(m->loc));
    }
    free(text);
    return rc;
}
