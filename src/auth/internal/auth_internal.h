/* Internal to the auth module: the service struct, key and role records. */
#ifndef SV_AUTH_INTERNAL_H
#define SV_AUTH_INTERNAL_H

/* The SHA256_* calls are deprecated in OpenSSL 3 in favour of EVP, which is
 * several times slower for one short message per request (see key_hmac). */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#define OPENSSL_SUPPRESS_DEPRECATED
#endif
#include <openssl/sha.h>
#include <pthread.h>

#include "auth.h"

#define AUTH_FORMAT 1
#define MAX_PERMS 32

typedef struct sv_perm {
    int actions;          /* sv_action bits */
    char collections[129];
    char tenants[129];
} sv_perm;

typedef struct auth_role {
    char name[65];
    sv_perm perms[MAX_PERMS];
    int nperms;
    int64_t created_at;
} auth_role;

typedef struct auth_key {
    char id[40];
    char name[129];
    char roles[8][64];
    int nroles;
    char hmac[65];       /* HMAC-SHA256(pepper, secret), hex */
    char prev_hmac[65];  /* the secret before the last rotation */
    int64_t prev_until;  /* ms: the previous secret works until then */
    int64_t created_at, expires_at; /* 0 = never expires */
    int64_t last_used_at, last_used_persisted;
    /* rate limit: a token bucket */
    double tokens;
    int64_t refill_ns;
} auth_key;

struct sv_auth {
    sv_catalog *cat;
    uint8_t pepper[32];
    SHA256_CTX inner, outer; /* HMAC states after the padded pepper (read-only after open) */
    char root_hmac[65];
    double rate; /* requests/s per key, 0 = off */
    pthread_mutex_t wmu; /* serializes every key and role write from its read to its publish (before mu) */
    pthread_mutex_t mu;
    auth_key *keys;
    size_t nkeys, capkeys;
    auth_role *roles;
    size_t nroles, caproles;
    auth_key root; /* the root key's bucket and last use */
    /* cluster: the refresher re-reads keys and roles from the shared catalog */
    pthread_t refresher;
    bool refreshing, stopping; /* stopping: under mu */
    pthread_cond_t stop_cv;
};

#endif
