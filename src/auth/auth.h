/* auth — who may do what: API keys (stored as HMAC-SHA256 with a server
 * pepper), roles whose permissions are scoped by collection and tenant globs,
 * one authorization check per route, rate limits, and the audit log.
 *
 *   key:        "sv_<id>_<secret>", sent only as `Authorization: Bearer <key>`
 *   actions:    read | write | manage | operate
 *   roles:      admin, operator, writer, reader (built in) and custom ones
 *   globs:      literal [A-Za-z0-9_-] and '*', anchored; nothing else
 *
 * Keys and roles live in the catalog (`auth/keys/<id>`, `auth/roles/<name>`)
 * and are persisted before memory changes. The root key (role admin) comes
 * from a file. See docs/security.md.
 *
 * Thread-safe. Answers are jansson values in the API's shapes (caller owns).
 * Secrets never appear in messages, logs or answers other than the one that
 * creates or rotates a key.
 */
#ifndef SV_AUTH_H
#define SV_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "core.h"

typedef struct sv_auth sv_auth;

typedef enum { SV_ACT_READ = 1, SV_ACT_WRITE = 2, SV_ACT_MANAGE = 4, SV_ACT_OPERATE = 8 } sv_action;
const char *sv_action_name(sv_action a); /* "read", … */

typedef struct sv_auth_opts {
    const char *data_dir;      /* required: <data>/root.key and <data>/auth.pepper */
    const char *root_key_file; /* [SHARDVAULT_ROOT_KEY_FILE] default <data>/root.key (created if absent) */
    double rate_limit;         /* [SHARDVAULT_RATE_LIMIT] requests/s per key, 0 = off */
    /* A cluster (a catalog every node shares): the secret every node holds
     * (SHARDVAULT_CLUSTER_SECRET). The pepper is derived from it instead of
     * <data>/auth.pepper, so every node verifies every key, and keys and
     * roles written by other nodes are re-read every second. NULL = one node. */
    const char *shared_secret;
} sv_auth_opts;

/* cat is borrowed. Loads keys and roles, reads (or creates) the root key and
 * the pepper. */
int sv_auth_open(const sv_auth_opts *opts, sv_catalog *cat, sv_auth **out, sv_err *err);
void sv_auth_close(sv_auth *a);

/* ---- authentication ------------------------------------------------------ */

/* Who is calling: filled by sv_auth_authenticate, read by sv_auth_allowed. */
typedef struct sv_principal {
    char key_id[40];
    char roles[8][64];
    int nroles;
} sv_principal;

/* Checks the Authorization header's value (may be NULL): 0 and *who filled,
 * or SV_EDENIED for a missing, malformed, unknown, expired or revoked key
 * (err says which, for the server's log only: the API answers one 401). */
int sv_auth_authenticate(sv_auth *a, const char *authorization, sv_principal *who, sv_err *err);
/* Token bucket per key: true when the request may go on; else *retry_after_s
 * says when to come back. */
bool sv_auth_rate(sv_auth *a, const sv_principal *who, int *retry_after_s);

/* ---- authorization -------------------------------------------------------- */

/* May who do action on collection (NULL = the whole server, e.g. listing
 * everything or a cluster-wide operation) and tenant (NULL = the whole
 * collection: every tenant, so only a tenants glob of "*" allows it)? */
bool sv_auth_allowed(sv_auth *a, const sv_principal *who, sv_action action, const char *collection,
                     const char *tenant);

/* Glob rules: literal [A-Za-z0-9_-] and '*', anchored. SV_EINVAL otherwise. */
int sv_auth_glob_check(const char *glob, sv_err *err);
bool sv_auth_glob_match(const char *glob, const char *name);

/* ---- keys and roles (the /v1/authz API) --------------------------------------- */

/* body {"name","roles":[...],"expiresAt"?: ms}; the answer holds "key" (the
 * only time the secret is shown). who may grant only what it holds. */
int sv_auth_key_create(sv_auth *a, const sv_principal *who, json_t *body, json_t **out, sv_err *err);
int sv_auth_key_list(sv_auth *a, json_t **out, sv_err *err);
/* delete, rotate and set-roles act only on keys whose current roles who
 * holds (a manager cannot take over a more powerful key). */
int sv_auth_key_delete(sv_auth *a, const sv_principal *who, const char *id, sv_err *err);
/* body {"graceSeconds"?: n}: a new secret; the old one works for the grace. */
int sv_auth_key_rotate(sv_auth *a, const sv_principal *who, const char *id, json_t *body, json_t **out,
                       sv_err *err);
/* body {"roles":[...]} */
int sv_auth_key_set_roles(sv_auth *a, const sv_principal *who, const char *id, json_t *body, json_t **out,
                          sv_err *err);
/* body {"name","permissions":[{"actions":[...],"collections":"glob","tenants":"glob"}]} */
int sv_auth_role_create(sv_auth *a, const sv_principal *who, json_t *body, json_t **out, sv_err *err);
int sv_auth_role_get(sv_auth *a, const char *name, json_t **out, sv_err *err);
int sv_auth_role_list(sv_auth *a, json_t **out, sv_err *err);
int sv_auth_role_delete(sv_auth *a, const char *name, sv_err *err);
/* {"keyId","roles","permissions"} */
int sv_auth_me(sv_auth *a, const sv_principal *who, json_t **out, sv_err *err);

/* ---- audit log ---------------------------------------------------------------- */

/* One record per write, lifecycle operation, key or role change and denied
 * request, as a JSON line. Strings may be NULL (written as null). */
typedef struct sv_audit_rec {
    int64_t ts_ms;
    const char *request_id;
    const char *key_id;
    const char *const *roles;
    int nroles;
    const char *remote_addr;
    const char *method;
    const char *route;      /* the route template, never the raw URL */
    const char *action;
    const char *collection;
    const char *tenant;
    int status;
    const char *outcome;    /* "ok" | "denied" | "error" */
    int64_t duration_ms;
    const char *job_id;
} sv_audit_rec;

typedef struct sv_audit sv_audit;

/* Appends to path (created 0600 if absent). Records are written by a
 * background thread and fsynced in batches (at most every flush_ms). */
int sv_audit_open(const char *path, int64_t flush_ms, sv_audit **out, sv_err *err);
/* Never blocks on the disk: the record is queued (copied). Returns false when
 * the queue is full (the drop is counted). */
bool sv_audit_write(sv_audit *au, const sv_audit_rec *rec);
/* Reopens the file by name (after rotation; SIGHUP). */
int sv_audit_reopen(sv_audit *au, sv_err *err);
/* Flushes, fsyncs and closes. NULL is fine. */
void sv_audit_close(sv_audit *au);
int64_t sv_audit_dropped(const sv_audit *au);

#endif
