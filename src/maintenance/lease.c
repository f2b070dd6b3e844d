/* The exclusive lease maintenance/lease: a catalog key attached to a catalog
 * lease with TTL SHARDVAULT_MAINTENANCE_LEASE_TTL, renewed every TTL/3 by a
 * thread. Every batch an agent writes is a transaction conditional on the
 * key's revision being the one it created; a failed renewal or condition
 * marks the lease lost and the agent stops. A crashed holder's key goes when
 * its catalog lease expires (the TTL), so another agent can then take it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maintenance_internal.h"

static void *renew_loop(void *arg)
{
    maint_lease *l = arg;
    sv_maintenance *m = l->m;
    int64_t period = m->lease_ttl_ms / 3;
    if (period < 50)
        period = 50;
    while (!atomic_load(&l->stop) && !atomic_load(&l->lost)) {
        for (int64_t left = period; left > 0 && !atomic_load(&l->stop); left -= 20)
            sv_sleep_ms(left < 20 ? left : 20);
        if (atomic_load(&l->stop))
            break;
        sv_err e = {0};
        int rc = sv_catalog_lease_keepalive(m->cat, l->lease_id, &e);
        int64_t rev = 0;
        char *v = NULL;
        size_t len = 0;
        if (rc == 0)
            rc = sv_catalog_get(m->cat, MAINT_LEASE_KEY, &v, &len, &rev, &e);
        free(v);
        if (rc == 0 && rev != l->rev)
            rc = SV_ECONFLICT;
        if (rc) {
            sv_warn("maintenance lease lost", "error=\"%s\"", e.msg[0] ? e.msg : sv_strerror(rc));
            atomic_store(&l->lost, true);
        }
    }
    return NULL;
}

int sv_maint_lease_acquire(sv_maintenance *m, const char *job_id, const char *op, maint_lease *l, sv_err *err)
{
    memset(l, 0, sizeof *l);
    l->m = m;
    int rc = sv_catalog_lease_grant(m->cat, m->lease_ttl_ms, &l->lease_id, err);
    if (rc)
        return rc;
    char val[400];
    snprintf(val, sizeof val, "{\"jobId\":\"%s\",\"op\":\"%s\",\"node\":\"%s\",\"leaseId\":%lld,\"acquiredAt\":%lld}",
             job_id, op, m->node, (long long)l->lease_id, (long long)sv_now_ms());
    sv_catalog_cond c = {MAINT_LEASE_KEY, 0};
    sv_catalog_op o = {MAINT_LEASE_KEY, val, strlen(val), l->lease_id};
    sv_err e = {0};
    rc = sv_catalog_txn(m->cat, &c, 1, &o, 1, &e);
    if (rc) {
        sv_catalog_lease_revoke(m->cat, l->lease_id, NULL);
        l->lease_id = 0;
        if (rc != SV_ECONFLICT)
            return sv_fail(err, rc, "cannot take the maintenance lease: %s", e.msg);
        char *v = NULL;
        size_t len = 0;
        sv_catalog_get(m->cat, MAINT_LEASE_KEY, &v, &len, NULL, NULL);
        json_t *h = v ? json_loadb(v, len, 0, NULL) : NULL;
        free(v);
        rc = sv_fail(err, SV_ECONFLICT,
                     "another maintenance agent holds the lease (%s job %s on node %s); wait for it to finish, or "
                     "break the lease with `shardvault maintenance status --break-lease` if its holder is gone "
                     "(a crashed holder's lease expires after SHARDVAULT_MAINTENANCE_LEASE_TTL)",
                     h ? json_string_value(json_object_get(h, "op")) : "?",
                     h ? json_string_value(json_object_get(h, "jobId")) : "?",
                     h ? json_string_value(json_object_get(h, "node")) : "?");
        json_decref(h);
        return rc;
    }
    char *v = NULL;
    size_t len = 0;
    rc = sv_catalog_get(m->cat, MAINT_LEASE_KEY, &v, &len, &l->rev, err);
    free(v);
    if (rc == 0 && pthread_create(&l->renewer, NULL, renew_loop, l) == 0)
        l->renewing = true;
    else if (rc == 0)
        rc = sv_fail(err, SV_EIO, "cannot start the lease renewer");
    if (rc) {
        sv_catalog_lease_revoke(m->cat, l->lease_id, NULL);
        l->lease_id = 0;
    }
    return rc;
}

void sv_maint_lease_release(maint_lease *l)
{
    if (!l->lease_id)
        return;
    atomic_store(&l->stop, true);
    if (l->renewing)
        pthread_join(l->renewer, NULL);
    l->renewing = false;
    if (!atomic_load(&l->lost))
        sv_catalog_lease_revoke(l->m->cat, l->lease_id, NULL);
    l->lease_id = 0;
}

int sv_maint_lease_check(maint_lease *l, sv_err *err)
{
    return atomic_load(&l->lost) ? sv_fail(err, SV_ESTATE, "lease lost") : 0;
}

int sv_maint_lease_txn(maint_lease *l, const sv_catalog_op *ops, size_t nops, sv_err *err)
{
    int rc = sv_maint_lease_check(l, err);
    if (rc)
        return rc;
    sv_catalog_cond c = {MAINT_LEASE_KEY, l->rev};
    sv_err e = {0};
    rc = sv_catalog_txn(l->m->cat, &c, 1, ops, nops, &e);
    if (rc == SV_ECONFLICT) {
        atomic_store(&l->lost, true);
        return sv_fail(err, SV_ESTATE, "lease lost");
    }
    if (rc)
        *err = e;
    return rc;
}

int sv_maintenance_lease_break(sv_maintenance *m, json_t **out, sv_err *err)
{
    char *v = NULL;
    size_t len = 0;
    int rc = sv_catalog_get(m->cat, MAINT_LEASE_KEY, &v, &len, NULL, err);
    if (rc == SV_ENOTFOUND) {
        *out = json_pack("{s:b}", "revoked", false);
        return 0;
    }
    if (rc)
        return rc;
    json_t *h = json_loadb(v, len, 0, NULL);
    free(v);
    int64_t id = json_integer_value(json_object_get(h, "leaseId"));
    json_decref(h);
    rc = id ? sv_catalog_lease_revoke(m->cat, id, err) : 0;
    if (rc == SV_ENOTFOUND)
        rc = 0;
    if (rc == 0)
        rc = sv_catalog_delete(m->cat, MAINT_LEASE_KEY, err);
    if (rc == 0) {
        sv_warn("maintenance lease broken by request", "lease=%lld", (long long)id);
        *out = json_pack("{s:b}", "revoked", true);
    }
    return rc;
}
