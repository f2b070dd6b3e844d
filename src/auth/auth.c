/* auth — keys, roles, globs, the authorization check and rate limits.
 *
 * Invariants:
 *  1. A secret is never stored or logged: a key record holds
 *     HMAC-SHA256(pepper, secret) in hex; the pepper is a server file
 *     (<data>/auth.pepper, 0600), so a copy of the catalog alone cannot be
 *     used to test guesses. Comparison is constant time (CRYPTO_memcmp).
 *  2. Keys and roles are persisted to the catalog before memory changes;
 *     memory is rebuilt from the catalog at open.
 *  3. A glob is literal [A-Za-z0-9_-] plus '*', anchored at both ends, and is
 *     matched by a small backtracking matcher — never compiled into a regular
 *     expression, so no pattern can escape its collection or crash the check.
 *  4. A caller grants only what it holds: every permission of every role it
 *     assigns (or creates) must be covered by one of its own (see covers()).
 */
/* Before any OpenSSL header: key_hmac uses the plain SHA256_* calls. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth_internal.h"

static const char *const action_names[] = {"read", "write", "manage", "operate"};

const char *sv_action_name(sv_action a)
{
    for (int i = 0; i < 4; i++)
        if ((int)a == (1 << i))
            return action_names[i];
    return "?";
}

static int oom(sv_err *err) { return sv_fail(err, SV_ENOMEM, "out of memory"); }

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[b[i] >> 4];
        out[2 * i + 1] = hx[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int random_hex(size_t nbytes, char *out, sv_err *err)
{
    uint8_t b[64];
    if (nbytes > sizeof b || getrandom(b, nbytes, 0) != (ssize_t)nbytes)
        return sv_fail(err, SV_EIO, "no randomness available for a key");
    hex(b, nbytes, out);
    return 0;
}

/* ---- globs (invariant 3) ------------------------------------------------------ */

int sv_auth_glob_check(const char *g, sv_err *err)
{
    size_t n = g ? strlen(g) : 0;
    if (n == 0 || n > 128)
        return sv_fail(err, SV_EINVAL, "a glob is 1..128 characters of A-Z a-z 0-9 _ - and *");
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)g[i]) && g[i] != '_' && g[i] != '-' && g[i] != '*')
            return sv_fail(err, SV_EINVAL,
                           "glob '%.128s': '%c' is not allowed (only A-Z a-z 0-9 _ - and *; no regular expressions)",
                           g, g[i]);
    return 0;
}

bool sv_auth_glob_match(const char *g, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*g == '*') {
            star = g++;
            resume = s;
        } else if (*g == *s) {
            g++;
            s++;
        } else if (star) {
            g = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*g == '*')
        g++;
    return *g == '\0';
}

/* Does glob q match every name glob g matches? Exact for '*' and literals;
 * conservative otherwise (q's literal prefix before a single trailing star
 * must prefix g's literal prefix). */
static bool glob_covers(const char *q, const char *g)
{
    if (!strcmp(q, "*") || !strcmp(q, g))
        return true;
    const char *qs = strchr(q, '*');
    if (!qs || qs[1] != '\0')
        return false; /* q is a literal (only itself) or has inner stars: be strict */
    size_t qp = (size_t)(qs - q);
    const char *gs = strchr(g, '*');
    size_t gp = gs ? (size_t)(gs - g) : strlen(g);
    return gp >= qp && !strncmp(q, g, qp);
}

/* ---- permissions ---------------------------------------------------------------- */

static const sv_perm builtin_admin[] = {{SV_ACT_READ | SV_ACT_WRITE | SV_ACT_MANAGE | SV_ACT_OPERATE, "*", "*"}};
static const sv_perm builtin_operator[] = {{SV_ACT_READ | SV_ACT_OPERATE, "*", "*"}};
static const sv_perm builtin_writer[] = {{SV_ACT_READ | SV_ACT_WRITE, "*", "*"}};
static const sv_perm builtin_reader[] = {{SV_ACT_READ, "*", "*"}};

static const struct builtin {
    const char *name;
    const sv_perm *perms;
    int n;
} builtins[] = {
    {"admin", builtin_admin, 1},
    {"operator", builtin_operator, 1},
    {"writer", builtin_writer, 1},
    {"reader", builtin_reader, 1},
};

static const struct builtin *builtin_of(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (!strcmp(builtins[i].name, name))
            return &builtins[i];
    return NULL;
}

/* The permissions of a role name: a builtin's or a custom role's (under a->mu). */
static const sv_perm *role_perms_locked(sv_auth *a, const char *name, int *n)
{
    const struct builtin *b = builtin_of(name);
    if (b) {
        *n = b->n;
        return b->perms;
    }
    for (size_t i = 0; i < a->nroles; i++)
        if (!strcmp(a->roles[i].name, name)) {
            *n = a->roles[i].nperms;
            return a->roles[i].perms;
        }
    *n = 0;
    return NULL;
}

static bool perm_allows(const sv_perm *p, sv_action act, const char *collection, const char *tenant)
{
    if (!(p->actions & act))
        return false;
    /* No collection: the whole server, which only an unrestricted grant covers. */
    if (!collection)
        return !strcmp(p->collections, "*") && !strcmp(p->tenants, "*");
    if (!sv_auth_glob_match(p->collections, collection))
        return false;
    /* No tenant: the whole collection (every tenant), which only "*" covers. */
    return tenant ? sv_auth_glob_match(p->tenants, tenant) : !strcmp(p->tenants, "*");
}

bool sv_auth_allowed(sv_auth *a, const sv_principal *who, sv_action act, const char *collection, const char *tenant)
{
    bool ok = false;
    pthread_mutex_lock(&a->mu);
    for (int r = 0; r < who->nroles && !ok; r++) {
        int n;
        const sv_perm *p = role_perms_locked(a, who->roles[r], &n);
        for (int i = 0; i < n && !ok; i++)
            ok = perm_allows(&p[i], act, collection, tenant);
    }
    pthread_mutex_unlock(&a->mu);
    return ok;
}

/* Invariant 4: is permission p held by who (some permission of who has every
 * action of p over at least p's collections and tenants)? */
static bool covers_locked(sv_auth *a, const sv_principal *who, const sv_perm *p)
{
    for (int bit = 0; bit < 4; bit++) {
        int act = 1 << bit;
        if (!(p->actions & act))
            continue;
        bool held = false;
        for (int r = 0; r < who->nroles && !held; r++) {
            int n;
            const sv_perm *q = role_perms_locked(a, who->roles[r], &n);
            for (int i = 0; i < n && !held; i++)
                held = (q[i].actions & act) && glob_covers(q[i].collections, p->collections) &&
                       glob_covers(q[i].tenants, p->tenants);
        }
        if (!held)
            return false;
    }
    return true;
}

/* SV_EDENIED naming the first permission of role `name` who does not hold. */
static int check_grant_locked(sv_auth *a, const sv_principal *who, const char *name, sv_err *err)
{
    int n;
    const sv_perm *p = role_perms_locked(a, name, &n);
    if (!p)
        return sv_fail(err, SV_EINVAL, "role '%.64s' does not exist", name);
    for (int i = 0; i < n; i++)
        if (!covers_locked(a, who, &p[i]))
            return sv_fail(err, SV_EDENIED,
                           "you may grant only permissions you hold: role '%.64s' allows more on collections '%s' "
                           "tenants '%s' than your key does",
                           name, p[i].collections, p[i].tenants);
    return 0;
}

/* ---- secrets on disk -------------------------------------------------------------- */

/* Reads a small secret file, or creates it (0600) with fresh random hex when
 * absent and create is set. *created tells which. */
static int secret_file(const char *path, bool create, char *out, size_t outlen, bool *created, sv_err *err)
{
    *created = false;
    char *data = NULL;
    size_t len = 0;
    int rc = sv_read_file(path, &data, &len, NULL);
    if (rc == 0) {
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
            data[--len] = '\0';
        struct stat st;
        if (stat(path, &st) == 0 && (st.st_mode & 077))
            sv_warn("secret file is readable by others: chmod 600 it", "path=%s", path);
        if (len == 0 || len >= outlen) {
            free(data);
            return sv_fail(err, SV_EINVAL, "%s: expected one line holding the secret", path);
        }
        memcpy(out, data, len + 1);
        free(data);
        return 0;
    }
    if (!create)
        return sv_fail(err, SV_ENOTFOUND, "cannot read %s (SHARDVAULT_ROOT_KEY_FILE): %s", path, strerror(errno));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return sv_fail(err, SV_EIO, "cannot create %s: %s", path, strerror(errno));
    size_t n = strlen(out);
    bool ok = write(fd, out, n) == (ssize_t)n && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    close(fd);
    if (!ok)
        return sv_fail(err, SV_EIO, "cannot write %s", path);
    *created = true;
    return 0;
}

/* HMAC-SHA256(pepper, secret) from two SHA-256 states prepared once at open
 * (pepper ^ ipad, pepper ^ opad) and copied per call. OpenSSL 3's one-shot
 * HMAC() looks the algorithm up on every call (~20 us per request) and the
 * EVP copies allocate; the plain SHA256_CTX copy is a memcpy. */
static int hmac_prepare(sv_auth *a, sv_err *err)
{
    uint8_t ipad[64], opad[64];
    memset(ipad, 0x36, sizeof ipad);
    memset(opad, 0x5c, sizeof opad);
    for (size_t i = 0; i < sizeof a->pepper; i++) {
        ipad[i] ^= a->pepper[i];
        opad[i] ^= a->pepper[i];
    }
    bool ok = SHA256_Init(&a->inner) && SHA256_Update(&a->inner, ipad, sizeof ipad) && SHA256_Init(&a->outer) &&
              SHA256_Update(&a->outer, opad, sizeof opad);
    explicit_bzero(ipad, sizeof ipad);
    explicit_bzero(opad, sizeof opad);
    return ok ? 0 : sv_fail(err, SV_EINTERNAL, "cannot set up HMAC-SHA256 (OpenSSL)");
}

static void key_hmac(const sv_auth *a, const char *secret, char out[65])
{
    uint8_t ih[32], mac[32];
    SHA256_CTX c = a->inner;
    SHA256_Update(&c, secret, strlen(secret));
    SHA256_Final(ih, &c);
    c = a->outer;
    SHA256_Update(&c, ih, sizeof ih);
    SHA256_Final(mac, &c);
    explicit_bzero(&c, sizeof c);
    hex(mac, 32, out);
}

static bool hmac_equal(const char *x, const char *y) { return x[0] && CRYPTO_memcmp(x, y, 64) == 0; }

/* ---- records ------------------------------------------------------------------- */

static json_t *perm_json(const sv_perm *p)
{
    json_t *acts = json_array();
    for (int i = 0; i < 4; i++)
        if (p->actions & (1 << i))
            json_array_append_new(acts, json_string(action_names[i]));
    return json_pack("{s:o,s:s,s:s}", "actions", acts, "collections", p->collections, "tenants", p->tenants);
}

static json_t *roles_json(char (*roles)[64], int n)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++)
        json_array_append_new(arr, json_string(roles[i]));
    return arr;
}

static const char *js(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static json_t *ms_or_null(int64_t ms) { return ms ? json_integer(ms) : json_null(); }

/* stored: with the hmacs (catalog); else the API's shape (no secrets). */
static json_t *key_json(const auth_key *k, bool stored)
{
    json_t *o = json_pack("{s:s,s:s,s:o,s:I,s:o,s:o}", "id", k->id, "name", k->name, "roles",
                          roles_json((char(*)[64])k->roles, k->nroles), "createdAt", (json_int_t)k->created_at,
                          "expiresAt", ms_or_null(k->expires_at), "lastUsedAt", ms_or_null(k->last_used_at));
    if (o && stored) {
        json_object_set_new(o, "format_version", json_integer(AUTH_FORMAT));
        json_object_set_new(o, "hmac", json_string(k->hmac));
        json_object_set_new(o, "prevHmac", json_string(k->prev_hmac));
        json_object_set_new(o, "prevUntil", json_integer(k->prev_until));
    }
    return o;
}

static json_t *role_json(const char *name, const sv_perm *p, int n, bool builtin)
{
    json_t *perms = json_array();
    for (int i = 0; perms && i < n; i++)
        json_array_append_new(perms, perm_json(&p[i]));
    return json_pack("{s:s,s:o,s:b}", "name", name, "permissions", perms, "builtin", builtin);
}

static int put_json(sv_auth *a, const char *key, json_t *o, sv_err *err)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s)
        return oom(err);
    int rc = sv_catalog_put(a->cat, key, s, strlen(s), 0, err);
    free(s);
    return rc;
}

static int key_persist(sv_auth *a, const auth_key *k, sv_err *err)
{
    char key[80];
    snprintf(key, sizeof key, "auth/keys/%s", k->id);
    return put_json(a, key, key_json(k, true), err);
}

static int check_name(const char *what, const char *s, sv_err *err)
{
    size_t n = s ? strlen(s) : 0;
    bool ok = n >= 1 && n <= 64 && (islower((unsigned char)s[0]) || isdigit((unsigned char)s[0]));
    for (size_t i = 1; ok && i < n; i++)
        ok = islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' || s[i] == '-';
    if (!ok)
        return sv_fail(err, SV_EINVAL, "%s: '%.80s' must match ^[a-z0-9][a-z0-9_-]{0,63}$", what, s ? s : "");
    return 0;
}

/* Parses one permission object; every error names the field. */
static int perm_parse(json_t *o, int idx, sv_perm *p, sv_err *err)
{
    memset(p, 0, sizeof *p);
    json_t *acts = json_object_get(o, "actions");
    if (!json_is_object(o) || !json_is_array(acts) || json_array_size(acts) == 0)
        return sv_fail(err, SV_EINVAL, "permissions[%d].actions: a non-empty array of read, write, manage, operate",
                       idx);
    size_t i;
    json_t *v;
    json_array_foreach(acts, i, v) {
        int bit = -1;
        for (int k = 0; k < 4 && json_is_string(v); k++)
            if (!strcmp(json_string_value(v), action_names[k]))
                bit = k;
        if (bit < 0)
            return sv_fail(err, SV_EINVAL, "permissions[%d].actions[%zu]: use read, write, manage or operate", idx, i);
        p->actions |= 1 << bit;
    }
    const char *c = json_string_value(json_object_get(o, "collections"));
    const char *t = json_object_get(o, "tenants") ? json_string_value(json_object_get(o, "tenants")) : "*";
    if (!c || !t || sv_auth_glob_check(c, err) || sv_auth_glob_check(t, err)) {
        if (!c || !t)
            sv_fail(err, SV_EINVAL, "a glob is required");
        sv_err_wrap(err, "permissions[%d].%s", idx, !c || sv_auth_glob_check(c, NULL) ? "collections" : "tenants");
        return SV_EINVAL;
    }
    snprintf(p->collections, sizeof p->collections, "%s", c);
    snprintf(p->tenants, sizeof p->tenants, "%s", t);
    return 0;
}

/* Validates a roles array against known roles (under a->mu). */
static int roles_parse_locked(sv_auth *a, json_t *arr, char (*out)[64], int *n, sv_err *err)
{
    *n = 0;
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > 8)
        return sv_fail(err, SV_EINVAL, "roles: an array of 1 to 8 role names (admin, operator, writer, reader or "
                                       "a custom role)");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        const char *r = json_string_value(v);
        int np;
        if (!r || strlen(r) >= 64 || !role_perms_locked(a, r, &np))
            return sv_fail(err, SV_EINVAL, "roles[%zu]: '%.64s' is not a role", i, r ? r : "");
        snprintf(out[(*n)++], 64, "%s", r);
    }
    return 0;
}

static int load_key(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    sv_auth *a = ud;
    json_t *o = json_loadb(val, len, 0, NULL);
    if (!o || sv_grow(&a->keys, &a->capkeys, a->nkeys + 1, sizeof *a->keys)) {
        json_decref(o);
        return o ? SV_ENOMEM : 0;
    }
    auth_key *k = &a->keys[a->nkeys];
    memset(k, 0, sizeof *k);
    snprintf(k->id, sizeof k->id, "%s", js(o, "id"));
    snprintf(k->name, sizeof k->name, "%s", js(o, "name"));
    snprintf(k->hmac, sizeof k->hmac, "%s", js(o, "hmac"));
    snprintf(k->prev_hmac, sizeof k->prev_hmac, "%s", js(o, "prevHmac"));
    k->prev_until = json_integer_value(json_object_get(o, "prevUntil"));
    k->created_at = json_integer_value(json_object_get(o, "createdAt"));
    k->expires_at = json_integer_value(json_object_get(o, "expiresAt"));
    k->last_used_at = k->last_used_persisted = json_integer_value(json_object_get(o, "lastUsedAt"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "roles"), i, v) if (k->nroles < 8 && json_is_string(v))
        snprintf(k->roles[k->nroles++], 64, "%s", json_string_value(v));
    json_decref(o);
    if (k->id[0] && strlen(k->hmac) == 64)
        a->nkeys++;
    return 0;
}

static int load_role(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    sv_auth *a = ud;
    json_t *o = json_loadb(val, len, 0, NULL);
    if (!o || sv_grow(&a->roles, &a->caproles, a->nroles + 1, sizeof *a->roles)) {
        json_decref(o);
        return o ? SV_ENOMEM : 0;
    }
    auth_role *r = &a->roles[a->nroles];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", js(o, "name"));
    r->created_at = json_integer_value(json_object_get(o, "createdAt"));
    size_t i;
    json_t *v;
    bool ok = r->name[0];
    json_array_foreach(json_object_get(o, "permissions"), i, v) if (ok && r->nperms < MAX_PERMS)
        ok = perm_parse(v, (int)i, &r->perms[r->nperms++], NULL) == 0;
    json_decref(o);
    if (ok)
        a->nroles++;
    else
        sv_warn("auth: unreadable role skipped", "key=%s", key);
    return 0;
}

/* ---- the service ------------------------------------------------------------------- */

/* A cluster: keys and roles other nodes wrote (created, rotated, re-roled,
 * revoked) reach this one within a second. Each pass reads both prefixes
 * whole, then swaps them in under wmu (no local write in between) and mu,
 * keeping this node's rate buckets and last-use times. A pass that cannot
 * read the catalog changes nothing. */
static void refresh_once(sv_auth *a, bool *warned)
{
    sv_auth fresh;
    memset(&fresh, 0, sizeof fresh);
    sv_err e = {0};
    int rc = sv_catalog_scan(a->cat, "auth/keys/", load_key, &fresh, &e);
    if (rc == 0)
        rc = sv_catalog_scan(a->cat, "auth/roles/", load_role, &fresh, &e);
    if (rc) {
        if (!*warned)
            sv_warn("auth: keys not refreshed from the catalog (the last ones read stay in force)", "error=\"%s\"",
                    e.msg[0] ? e.msg : sv_strerror(rc));
        *warned = true;
        free(fresh.keys);
        free(fresh.roles);
        return;
    }
    *warned = false;
    pthread_mutex_lock(&a->wmu);
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < fresh.nkeys; i++) {
        auth_key *k = &fresh.keys[i];
        for (size_t j = 0; j < a->nkeys; j++) {
            const auth_key *o = &a->keys[j];
            if (strcmp(o->id, k->id))
                continue;
            k->tokens = o->tokens;
            k->refill_ns = o->refill_ns;
            if (o->last_used_at > k->last_used_at)
                k->last_used_at = o->last_used_at;
            if (o->last_used_persisted > k->last_used_persisted)
                k->last_used_persisted = o->last_used_persisted;
            break;
        }
    }
    auth_key *old_keys = a->keys;
    auth_role *old_roles = a->roles;
    a->keys = fresh.keys;
    a->nkeys = fresh.nkeys;
    a->capkeys = fresh.capkeys;
    a->roles = fresh.roles;
    a->nroles = fresh.nroles;
    a->caproles = fresh.caproles;
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_unlock(&a->wmu);
    free(old_keys);
    free(old_roles);
}

static void *refresher(void *arg)
{
    sv_auth *a = arg;
    bool warned = false;
    pthread_mutex_lock(&a->mu);
    while (!a->stopping) {
        sv_cond_wait_ms(&a->stop_cv, &a->mu, 1000);
        if (a->stopping)
            break;
        pthread_mutex_unlock(&a->mu);
        refresh_once(a, &warned);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

int sv_auth_open(const sv_auth_opts *opts, sv_catalog *cat, sv_auth **out, sv_err *err)
{
    *out = NULL;
    if (!opts || !opts->data_dir)
        return sv_fail(err, SV_EINVAL, "auth needs the data directory");
    sv_auth *a = calloc(1, sizeof *a);
    if (!a)
        return oom(err);
    a->cat = cat;
    a->rate = opts->rate_limit;
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->wmu, NULL);
    pthread_cond_init(&a->stop_cv, NULL);
    snprintf(a->root.id, sizeof a->root.id, "root");
    snprintf(a->root.name, sizeof a->root.name, "root");
    snprintf(a->root.roles[0], 64, "admin");
    a->root.nroles = 1;
    /* The pepper: never in the catalog (invariant 1). */
    char path[4200], pep[80] = "";
    snprintf(path, sizeof path, "%s/auth.pepper", opts->data_dir);
    bool created;
    int rc = random_hex(32, pep, err);
    if (rc == 0 && opts->shared_secret) {
        /* a cluster: one pepper on every node, from the secret they share
         * (never stored, never sent) */
        sv_sha256_ctx *c = sv_sha256_new();
        if (!c) {
            rc = oom(err);
        } else {
            sv_sha256_update(c, "shardvault auth pepper v1", 26);
            sv_sha256_update(c, opts->shared_secret, strlen(opts->shared_secret));
            sv_sha256_final_hex(c, pep);
        }
    } else if (rc == 0) {
        rc = secret_file(path, true, pep, sizeof pep, &created, err);
    }
    for (size_t i = 0; rc == 0 && i < 32; i++) {
        unsigned v;
        if (strlen(pep) != 64 || sscanf(pep + 2 * i, "%2x", &v) != 1) {
            rc = sv_fail(err, SV_ECORRUPT, "%s is not 64 hex digits: restore it from a backup or remove it (every "
                                           "key but the root key then stops working)", path);
            break;
        }
        a->pepper[i] = (uint8_t)v;
    }
    if (rc == 0)
        rc = hmac_prepare(a, err);
    /* The root key: from SHARDVAULT_ROOT_KEY_FILE, else <data>/root.key (created once). */
    const char *rk = opts->root_key_file ? opts->root_key_file : sv_env_str("SHARDVAULT_ROOT_KEY_FILE", NULL);
    char root[200] = "sv_root_", rpath[4200];
    snprintf(rpath, sizeof rpath, "%s", rk ? rk : "");
    if (!rk)
        snprintf(rpath, sizeof rpath, "%s/root.key", opts->data_dir);
    if (rc == 0)
        rc = random_hex(32, root + 8, err);
    if (rc == 0)
        rc = secret_file(rpath, rk == NULL, root, sizeof root, &created, err);
    if (rc == 0 && (strncmp(root, "sv_root_", 8) || strlen(root) < 8 + 32))
        rc = sv_fail(err, SV_EINVAL, "%s: the root key must look like sv_root_<at least 32 characters>", rpath);
    if (rc == 0) {
        key_hmac(a, root + 8, a->root_hmac);
        explicit_bzero(root, sizeof root);
        if (created)
            sv_info("root API key created; keep it safe", "path=%s", rpath);
    }
    if (rc == 0)
        rc = sv_catalog_scan(cat, "auth/keys/", load_key, a, err);
    if (rc == 0)
        rc = sv_catalog_scan(cat, "auth/roles/", load_role, a, err);
    if (rc == SV_ENOMEM)
        oom(err);
    if (rc) {
        sv_auth_close(a);
        return rc;
    }
    if (opts->shared_secret && pthread_create(&a->refresher, NULL, refresher, a) == 0)
        a->refreshing = true;
    else if (opts->shared_secret)
        sv_warn("auth: no refresher thread: keys written by other nodes are seen after a restart", "error=\"cannot start a thread\"");
    *out = a;
    return 0;
}

void sv_auth_close(sv_auth *a)
{
    if (!a)
        return;
    if (a->refreshing) {
        pthread_mutex_lock(&a->mu);
        a->stopping = true;
        pthread_cond_broadcast(&a->stop_cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->refresher, NULL);
    }
    pthread_cond_destroy(&a->stop_cv);
    explicit_bzero(a->pepper, sizeof a->pepper);
    explicit_bzero(&a->inner, sizeof a->inner);
    explicit_bzero(&a->outer, sizeof a->outer);
    free(a->keys);
    free(a->roles);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->wmu);
    free(a);
}

static auth_key *key_find_locked(sv_auth *a, const char *id)
{
    for (size_t i = 0; i < a->nkeys; i++)
        if (!strcmp(a->keys[i].id, id))
            return &a->keys[i];
    return NULL;
}

/* ---- authentication ------------------------------------------------------------------ */

/* "Bearer sv_<id>_<secret>" -> id, secret (pointers into buf). */
static bool parse_bearer(const char *h, char *buf, size_t n, char **id, char **secret)
{
    if (!h || strncasecmp(h, "Bearer ", 7))
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    if (strncmp(h, "sv_", 3) || strlen(h) >= n)
        return false;
    snprintf(buf, n, "%s", h + 3);
    char *us = strchr(buf, '_');
    if (!us || us == buf || us - buf > 32 || strlen(us + 1) < 32)
        return false;
    *us = '\0';
    *id = buf;
    *secret = us + 1;
    for (char *p = *secret; *p; p++)
        if (!isalnum((unsigned char)*p))
            return false;
    return true;
}

/* lastUsedAt into the stored record, and nothing else: only if the record
 * is still there with the secret this request used, by its revision. A
 * delayed write never brings back a revoked or rotated-out key, nor undoes
 * a change another node made meanwhile (a cluster shares the records). */
static void persist_last_used(sv_auth *a, const auth_key *used, int64_t now)
{
    char key[80], *v = NULL;
    size_t len = 0;
    int64_t rev = 0;
    snprintf(key, sizeof key, "auth/keys/%s", used->id);
    pthread_mutex_lock(&a->wmu);
    if (sv_catalog_get(a->cat, key, &v, &len, &rev, NULL) == 0) {
        json_t *o = json_loadb(v, len, 0, NULL);
        const char *h = json_string_value(json_object_get(o, "hmac"));
        const char *ph = json_string_value(json_object_get(o, "prevHmac"));
        bool same = h && (!strcmp(h, used->hmac) || (ph && !strcmp(ph, used->hmac)));
        char *nv = NULL;
        if (same && json_object_set_new(o, "lastUsedAt", json_integer(now)) == 0)
            nv = json_dumps(o, JSON_COMPACT);
        if (nv) {
            sv_catalog_cond c = {key, rev};
            sv_catalog_op op = {key, nv, strlen(nv), 0};
            (void)sv_catalog_txn(a->cat, &c, 1, &op, 1, NULL); /* lost a race: the next use writes it */
        }
        free(nv);
        json_decref(o);
    }
    free(v);
    pthread_mutex_unlock(&a->wmu);
}

int sv_auth_authenticate(sv_auth *a, const char *authorization, sv_principal *who, sv_err *err)
{
    memset(who, 0, sizeof *who);
    char buf[256], *id, *secret, mac[65];
    if (!parse_bearer(authorization, buf, sizeof buf, &id, &secret))
        return sv_fail(err, SV_EDENIED, authorization ? "malformed Authorization header" : "no API key");
    key_hmac(a, secret, mac);
    char idbuf[40];
    snprintf(idbuf, sizeof idbuf, "%.39s", id); /* ids are at most 32 (parse_bearer) */
    id = idbuf;
    explicit_bzero(buf, sizeof buf); /* the secret goes; the id stays */
    int64_t now = sv_now_ms();
    int rc = 0;
    auth_key persist = {0};
    pthread_mutex_lock(&a->mu);
    auth_key *k = !strcmp(id, "root") ? &a->root : key_find_locked(a, id);
    bool ok = k == &a->root ? hmac_equal(a->root_hmac, mac)
              : k ? hmac_equal(k->hmac, mac) || (k->prev_until > now && hmac_equal(k->prev_hmac, mac))
                  : false;
    if (!k || !ok)
        rc = sv_fail(err, SV_EDENIED, k ? "wrong secret for key %.40s" : "unknown key %.40s", id);
    else if (k->expires_at && k->expires_at <= now)
        rc = sv_fail(err, SV_EDENIED, "key %.40s expired", id);
    if (rc == 0) {
        snprintf(who->key_id, sizeof who->key_id, "%s", k->id);
        for (int i = 0; i < k->nroles; i++)
            snprintf(who->roles[who->nroles++], sizeof who->roles[0], "%s", k->roles[i]);
        k->last_used_at = now;
        if (k != &a->root && now - k->last_used_persisted > 60000) { /* at most once a minute */
            k->last_used_persisted = now;
            persist = *k;
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (persist.id[0])
        persist_last_used(a, &persist, now);
    return rc;
}

bool sv_auth_rate(sv_auth *a, const sv_principal *who, int *retry_after_s)
{
    if (a->rate <= 0)
        return true;
    int64_t now = sv_mono_ns();
    bool ok;
    pthread_mutex_lock(&a->mu);
    auth_key *k = !strcmp(who->key_id, "root") ? &a->root : key_find_locked(a, who->key_id);
    if (!k) {
        pthread_mutex_unlock(&a->mu);
        return true;
    }
    double burst = a->rate < 1 ? 1 : a->rate; /* a second's worth */
    if (!k->refill_ns) {
        k->tokens = burst;
        k->refill_ns = now;
    }
    k->tokens += (double)(now - k->refill_ns) / 1e9 * a->rate;
    if (k->tokens > burst)
        k->tokens = burst;
    k->refill_ns = now;
    ok = k->tokens >= 1;
    if (ok)
        k->tokens -= 1;
    else
        *retry_after_s = (int)((1 - k->tokens) / a->rate) + 1;
    pthread_mutex_unlock(&a->mu);
    return ok;
}

/* ---- keys ----------------------------------------------------------------------------- */

static json_t *key_reply(const auth_key *k, const char *secret)
{
    json_t *o = key_json(k, false);
    char full[160];
    snprintf(full, sizeof full, "sv_%s_%s", k->id, secret);
    json_object_set_new(o, "key", json_string(full));
    explicit_bzero(full, sizeof full);
    return o;
}

int sv_auth_key_create(sv_auth *a, const sv_principal *who, json_t *body, json_t **out, sv_err *err)
{
    *out = NULL;
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!json_is_object(body) || !name || !*name || strlen(name) > 128)
        return sv_fail(err, SV_EINVAL, "name: required, 1..128 characters");
    json_t *exp = json_object_get(body, "expiresAt");
    if (exp && !json_is_null(exp) && (!json_is_integer(exp) || json_integer_value(exp) <= sv_now_ms()))
        return sv_fail(err, SV_EINVAL, "expiresAt: a time in the future, in ms since the epoch");
    auth_key k = {0};
    snprintf(k.name, sizeof k.name, "%s", name);
    k.created_at = sv_now_ms();
    k.expires_at = json_integer_value(exp);
    char secret[65];
    int rc = random_hex(6, k.id, err);
    if (rc == 0)
        rc = random_hex(32, secret, err);
    if (rc)
        return rc;
    key_hmac(a, secret, k.hmac);
    pthread_mutex_lock(&a->wmu);
    pthread_mutex_lock(&a->mu);
    rc = roles_parse_locked(a, json_object_get(body, "roles"), k.roles, &k.nroles, err);
    for (int i = 0; rc == 0 && i < k.nroles; i++)
        rc = check_grant_locked(a, who, k.roles[i], err);
    if (rc == 0 && sv_grow(&a->keys, &a->capkeys, a->nkeys + 1, sizeof *a->keys))
        rc = oom(err);
    pthread_mutex_unlock(&a->mu);
    if (rc == 0)
        rc = key_persist(a, &k, err);
    if (rc == 0) {
        pthread_mutex_lock(&a->mu);
        a->keys[a->nkeys++] = k; /* room was made above */
        pthread_mutex_unlock(&a->mu);
        *out = key_reply(&k, secret);
        sv_info("API key created", "key_id=%s name=\"%s\"", k.id, k.name);
    }
    pthread_mutex_unlock(&a->wmu);
    explicit_bzero(secret, sizeof secret);
    return rc ? rc : *out ? 0 : oom(err);
}

int sv_auth_key_list(sv_auth *a, json_t **out, sv_err *err)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; arr && i < a->nkeys; i++)
        json_array_append_new(arr, key_json(&a->keys[i], false));
    pthread_mutex_unlock(&a->mu);
    *out = arr ? json_pack("{s:o}", "keys", arr) : NULL;
    return *out ? 0 : oom(err);
}

/* who must hold every role the key has now (invariant 4 for changes). */
static int check_key_roles_locked(sv_auth *a, const sv_principal *who, const auth_key *k, sv_err *err)
{
    for (int i = 0; i < k->nroles; i++) {
        int n;
        if (!role_perms_locked(a, k->roles[i], &n))
            continue; /* a role deleted since grants nothing */
        if (check_grant_locked(a, who, k->roles[i], err))
            return sv_fail(err, SV_EDENIED, "key %s holds role '%s', which allows more than your key does", k->id,
                           k->roles[i]);
    }
    return 0;
}

int sv_auth_key_delete(sv_auth *a, const sv_principal *who, const char *id, sv_err *err)
{
    if (!strcmp(id, "root"))
        return sv_fail(err, SV_EINVAL, "the root key lives in its file (SHARDVAULT_ROOT_KEY_FILE), not in the API");
    pthread_mutex_lock(&a->wmu);
    pthread_mutex_lock(&a->mu);
    auth_key *k = key_find_locked(a, id);
    int rc = k ? check_key_roles_locked(a, who, k, err) : sv_fail(err, SV_ENOTFOUND, "key %.40s not found", id);
    pthread_mutex_unlock(&a->mu);
    if (rc == 0) {
        char key[80];
        snprintf(key, sizeof key, "auth/keys/%s", id);
        rc = sv_catalog_delete(a->cat, key, err);
    }
    if (rc == 0) {
        pthread_mutex_lock(&a->mu);
        if ((k = key_find_locked(a, id)))
            *k = a->keys[--a->nkeys];
        pthread_mutex_unlock(&a->mu);
        sv_info("API key revoked", "key_id=%s", id);
    }
    pthread_mutex_unlock(&a->wmu);
    return rc;
}

/* Changes one key under the lock through fn, persists, then publishes. */
static int key_update(sv_auth *a, const sv_principal *who, const char *id,
                      int (*fn)(sv_auth *, auth_key *, void *, sv_err *), void *ud, auth_key *result, sv_err *err)
{
    if (!strcmp(id, "root"))
        return sv_fail(err, SV_EINVAL, "the root key lives in its file (SHARDVAULT_ROOT_KEY_FILE), not in the API");
    pthread_mutex_lock(&a->wmu); /* invariant 2: read, persist and publish as one */
    pthread_mutex_lock(&a->mu);
    auth_key *k = key_find_locked(a, id), copy;
    int rc = k ? check_key_roles_locked(a, who, k, err) : sv_fail(err, SV_ENOTFOUND, "key %.40s not found", id);
    if (rc == 0) {
        copy = *k;
        rc = fn(a, &copy, ud, err);
    }
    pthread_mutex_unlock(&a->mu);
    if (rc == 0)
        rc = key_persist(a, &copy, err);
    if (rc == 0) {
        pthread_mutex_lock(&a->mu);
        if ((k = key_find_locked(a, id)))
            *k = copy;
        pthread_mutex_unlock(&a->mu);
        *result = copy;
    }
    pthread_mutex_unlock(&a->wmu);
    return rc;
}

typedef struct rotate_arg {
    int64_t grace_s;
    char secret[65];
} rotate_arg;

static int do_rotate(sv_auth *a, auth_key *k, void *ud, sv_err *err)
{
    rotate_arg *r = ud;
    memcpy(k->prev_hmac, k->hmac, sizeof k->hmac);
    k->prev_until = r->grace_s > 0 ? sv_now_ms() + r->grace_s * 1000 : 0;
    key_hmac(a, r->secret, k->hmac);
    return 0;
}

int sv_auth_key_rotate(sv_auth *a, const sv_principal *who, const char *id, json_t *body, json_t **out,
                       sv_err *err)
{
    *out = NULL;
    json_t *g = json_object_get(body, "graceSeconds");
    if (g && (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > 30 * 86400))
        return sv_fail(err, SV_EINVAL, "graceSeconds: an integer from 0 to 2592000");
    rotate_arg r = {.grace_s = json_integer_value(g)};
    auth_key k;
    int rc = random_hex(32, r.secret, err);
    if (rc == 0)
        rc = key_update(a, who, id, do_rotate, &r, &k, err);
    if (rc == 0) {
        *out = key_reply(&k, r.secret);
        sv_info("API key rotated", "key_id=%s grace_s=%lld", id, (long long)r.grace_s);
    }
    explicit_bzero(&r, sizeof r);
    return rc ? rc : *out ? 0 : oom(err);
}

typedef struct roles_arg {
    const sv_principal *who;
    json_t *roles;
} roles_arg;

static int do_set_roles(sv_auth *a, auth_key *k, void *ud, sv_err *err)
{
    roles_arg *r = ud;
    int rc = roles_parse_locked(a, r->roles, k->roles, &k->nroles, err);
    for (int i = 0; rc == 0 && i < k->nroles; i++)
        rc = check_grant_locked(a, r->who, k->roles[i], err);
    return rc;
}

int sv_auth_key_set_roles(sv_auth *a, const sv_principal *who, const char *id, json_t *body, json_t **out,
                          sv_err *err)
{
    roles_arg r = {who, json_object_get(body, "roles")};
    auth_key k;
    int rc = key_update(a, who, id, do_set_roles, &r, &k, err);
    *out = rc ? NULL : key_json(&k, false);
    return rc ? rc : *out ? 0 : oom(err);
}

/* ---- roles ------------------------------------------------------------------------------ */

int sv_auth_role_create(sv_auth *a, const sv_principal *who, json_t *body, json_t **out, sv_err *err)
{
    *out = NULL;
    auth_role r = {0};
    const char *name = json_string_value(json_object_get(body, "name"));
    int rc = check_name("name", name, err);
    if (rc)
        return rc;
    snprintf(r.name, sizeof r.name, "%s", name);
    json_t *perms = json_object_get(body, "permissions");
    if (!json_is_array(perms) || json_array_size(perms) == 0 || json_array_size(perms) > MAX_PERMS)
        return sv_fail(err, SV_EINVAL, "permissions: an array of 1 to %d permissions", MAX_PERMS);
    size_t i;
    json_t *v;
    json_array_foreach(perms, i, v) {
        if ((rc = perm_parse(v, (int)i, &r.perms[r.nperms++], err)))
            return rc;
    }
    r.created_at = sv_now_ms();
    pthread_mutex_lock(&a->wmu);
    pthread_mutex_lock(&a->mu);
    int n;
    if (role_perms_locked(a, name, &n))
        rc = sv_fail(err, SV_EEXIST, "role '%s' exists%s", name, builtin_of(name) ? " (built in)" : "");
    for (int p = 0; rc == 0 && p < r.nperms; p++)
        if (!covers_locked(a, who, &r.perms[p]))
            rc = sv_fail(err, SV_EDENIED, "you may grant only permissions you hold: permissions[%d] allows more than "
                                          "your key does", p);
    if (rc == 0 && sv_grow(&a->roles, &a->caproles, a->nroles + 1, sizeof *a->roles))
        rc = oom(err);
    pthread_mutex_unlock(&a->mu);
    if (rc == 0) {
        char key[100];
        snprintf(key, sizeof key, "auth/roles/%s", name);
        json_t *o = role_json(r.name, r.perms, r.nperms, false);
        json_object_set_new(o, "format_version", json_integer(AUTH_FORMAT));
        json_object_set_new(o, "createdAt", json_integer(r.created_at));
        rc = put_json(a, key, o, err);
    }
    if (rc == 0) {
        pthread_mutex_lock(&a->mu);
        a->roles[a->nroles++] = r;
        pthread_mutex_unlock(&a->mu);
        *out = role_json(r.name, r.perms, r.nperms, false);
    }
    pthread_mutex_unlock(&a->wmu);
    return rc ? rc : *out ? 0 : oom(err);
}

int sv_auth_role_get(sv_auth *a, const char *name, json_t **out, sv_err *err)
{
    pthread_mutex_lock(&a->mu);
    int n;
    const sv_perm *p = role_perms_locked(a, name, &n);
    *out = p ? role_json(name, p, n, builtin_of(name) != NULL) : NULL;
    pthread_mutex_unlock(&a->mu);
    if (!p)
        return sv_fail(err, SV_ENOTFOUND, "role '%.64s' not found", name);
    return *out ? 0 : oom(err);
}

int sv_auth_role_list(sv_auth *a, json_t **out, sv_err *err)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; arr && i < sizeof builtins / sizeof builtins[0]; i++)
        json_array_append_new(arr, role_json(builtins[i].name, builtins[i].perms, builtins[i].n, true));
    for (size_t i = 0; arr && i < a->nroles; i++)
        json_array_append_new(arr, role_json(a->roles[i].name, a->roles[i].perms, a->roles[i].nperms, false));
    pthread_mutex_unlock(&a->mu);
    *out = arr ? json_pack("{s:o}", "roles", arr) : NULL;
    return *out ? 0 : oom(err);
}

int sv_auth_role_delete(sv_auth *a, const char *name, sv_err *err)
{
    if (builtin_of(name))
        return sv_fail(err, SV_EINVAL, "role '%s' is built in and cannot be deleted", name);
    /* Held from the check to the unlink, so no key is granted it meanwhile. */
    pthread_mutex_lock(&a->wmu);
    pthread_mutex_lock(&a->mu);
    int n, users = 0;
    bool found = role_perms_locked(a, name, &n) != NULL;
    for (size_t i = 0; i < a->nkeys; i++)
        for (int r = 0; r < a->keys[i].nroles; r++)
            users += !strcmp(a->keys[i].roles[r], name);
    pthread_mutex_unlock(&a->mu);
    int rc = !found  ? sv_fail(err, SV_ENOTFOUND, "role '%.64s' not found", name)
             : users ? sv_fail(err, SV_ECONFLICT, "role '%s' is held by %d key(s): change their roles first", name,
                               users)
                     : 0;
    if (rc == 0) {
        char key[100];
        snprintf(key, sizeof key, "auth/roles/%s", name);
        rc = sv_catalog_delete(a->cat, key, err);
    }
    if (rc == 0) {
        pthread_mutex_lock(&a->mu);
        for (size_t i = 0; i < a->nroles; i++)
            if (!strcmp(a->roles[i].name, name)) {
                a->roles[i] = a->roles[--a->nroles];
                break;
            }
        pthread_mutex_unlock(&a->mu);
    }
    pthread_mutex_unlock(&a->wmu);
    return rc;
}

int sv_auth_me(sv_auth *a, const sv_principal *who, json_t **out, sv_err *err)
{
    json_t *perms = json_array();
    pthread_mutex_lock(&a->mu);
    for (int r = 0; perms && r < who->nroles; r++) {
        int n;
        const sv_perm *p = role_perms_locked(a, who->roles[r], &n);
        for (int i = 0; i < n; i++)
            json_array_append_new(perms, perm_json(&p[i]));
    }
    pthread_mutex_unlock(&a->mu);
    *out = perms ? json_pack("{s:s,s:o,s:o}", "keyId", who->key_id, "roles",
                             roles_json((char(*)[64])who->roles, who->nroles), "permissions", perms)
                 : NULL;
    return *out ? 0 : oom(err);
}
