/* server — the HTTP API (libmicrohttpd + jansson). Maps routes to service
 * calls and service errors to status codes in one table each; holds no
 * business logic. Every route names the permission it needs (read, write,
 * manage, operate) so authentication can be enforced in one place later.
 *
 * Ownership: the services passed in are borrowed and must outlive the server.
 */
#ifndef SV_SERVER_H
#define SV_SERVER_H

#include "core.h"
#include "store.h"

typedef struct sv_server sv_server;

/* The services the API fronts (borrowed; NULL for a service not running). */
struct sv_export;

typedef struct sv_services {
    sv_store *store;
    struct sv_export *export;
    struct sv_importer *importer; /* NULL: /v1/import answers 503 */
    struct sv_snapshot *snapshot;
    struct sv_jobs *jobs;
    struct sv_maintenance *maintenance; /* NULL: maintenance routes answer 503 */
    struct sv_auth *auth;   /* NULL: authentication is off */
    struct sv_audit *audit; /* NULL: no audit log */
    struct sv_registry *registry;
    struct sv_cluster *cluster;
    struct sv_cluster_moves *moves; /* NULL: move routes answer 422 */
} sv_services;

typedef struct sv_server_opts {
    const char *host;       /* "127.0.0.1" */
    int port;               /* 0 = any free port (see sv_server_port) */
    int64_t max_body_bytes; /* buffered (non-batch) bodies and each batch object; 0 = 64 MiB */
    const char *node_name;
    bool metrics_private;   /* /metrics needs a key with operate (when auth is on) */
    /* HTTPS (TLS 1.2 and 1.3 only) when both are set: PEM files, read by the
     * server at start and again by sv_server_reload_tls. */
    const char *tls_cert_file; /* the certificate, optionally followed by its chain */
    const char *tls_key_file;  /* its private key (unencrypted PEM) */
    /* PEM CA bundle (needs TLS): every request must come over a connection
     * whose client certificate verifies against it, else 403. */
    const char *tls_client_ca_file;
} sv_server_opts;

/* Extra /metrics text from a service (Prometheus exposition format). */
typedef void (*sv_metrics_fn)(sv_buf *out, void *ud);

int sv_server_start(const sv_server_opts *opts, const sv_services *svc, sv_server **out, sv_err *err);
int sv_server_port(const sv_server *srv);
/* Registers a metrics writer; call before requests arrive. */
int sv_server_add_metrics(sv_server *srv, sv_metrics_fn fn, void *ud);
/* Stops accepting connections; /ready answers 503 from now on. */
void sv_server_quiesce(sv_server *srv);
/* Waits (up to timeout_ms) for in-flight requests, then stops and frees. */
void sv_server_stop(sv_server *srv, int64_t timeout_ms);

/* Re-reads the TLS files named at start (certificate, key, client CA); new
 * connections use them, open ones keep what they negotiated, the listening
 * socket stays. On failure the current credentials stay and err says why.
 * SV_ESTATE when the server runs without TLS. Thread-safe. */
int sv_server_reload_tls(sv_server *srv, sv_err *err);

/* Maps an SV_E* code to the HTTP status the API answers with. */
int sv_http_status(int code);

#endif
