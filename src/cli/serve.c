/* `shardvault serve`: configuration from flags and SHARDVAULT_* variables,
 * then catalog -> store -> server, and an orderly stop on SIGTERM/SIGINT;
 * SIGHUP reloads the TLS certificate and reopens the audit log. */
#include <malloc.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "cli.h"
#include "cluster.h"
#include "export.h"
#include "importer.h"
#include "auth.h"
#include "jobs.h"
#include "registry.h"
#include "maintenance.h"
#include "server.h"
#include "snapshot.h"
#include "store.h"

static const char serve_usage[] =
    "usage: shardvault serve [flags]\n"
    "\n"
    "Starts the shardvault server in the foreground on embedded defaults.\n"
    "Every flag can also be set with the environment variable shown.\n"
    "\n"
    "  --listen HOST:PORT        SHARDVAULT_LISTEN          default 127.0.0.1:8080\n"
    "  --data-dir DIR            SHARDVAULT_DATA_DIR        default ./data\n"
    "  --log-level LEVEL         SHARDVAULT_LOG_LEVEL       debug|info|warn|error, default info\n"
    "  --log-format FORMAT       SHARDVAULT_LOG_FORMAT      text|json, default text\n"
    "  --max-body-bytes N        SHARDVAULT_MAX_BODY_BYTES  default 64Mi (per object in batches)\n"
    "  --block-cache-bytes N     SHARDVAULT_BLOCK_CACHE_BYTES  shared RocksDB cache, default 256Mi\n"
    "  --sync-writes BOOL        SHARDVAULT_SYNC_WRITES     fsync every write, default false\n"
    "  --node-name NAME          SHARDVAULT_NODE_NAME       default node1\n"
    "  --advertise-url URL       SHARDVAULT_ADVERTISE_URL   how other nodes reach this one, default\n"
    "                            http(s)://<listen address> (see docs/cluster.md)\n"
    "  --node-ttl DURATION       SHARDVAULT_NODE_TTL        the node's lease: 10s (default), 2500ms, 30\n"
    "  --catalog URL             SHARDVAULT_CATALOG         default embedded://<data-dir>/catalog;\n"
    "                            etcd://host:2379[,host:2379...][/namespace/] (docs/catalog.md)\n"
    "  --location URL            SHARDVAULT_LOCATION        where snapshots and offloaded tenants (and later\n"
    "                            catalog checkpoints) live: file:///dir or s3://bucket/prefix,\n"
    "                            default file://<data-dir>/location (alias: --snapshot-location,\n"
    "                            SHARDVAULT_SNAPSHOT_LOCATION; more settings: docs/snapshot.md)\n"
    "  --jobs-keep N             SHARDVAULT_JOBS_KEEP       finished jobs kept per kind, default 1000\n"
    "  --jobs-keep-days N        SHARDVAULT_JOBS_KEEP_DAYS  finished jobs kept at most N days, default 30\n"
    "  --tls-cert FILE           SHARDVAULT_TLS_CERT        PEM certificate (+ chain): serve HTTPS (TLS 1.2/1.3)\n"
    "  --tls-key FILE            SHARDVAULT_TLS_KEY         its PEM private key (unencrypted); needs --tls-cert\n"
    "  --tls-client-ca FILE      SHARDVAULT_TLS_CLIENT_CA   PEM CA bundle: every client must present a certificate\n"
    "                            it verifies, else 403 (see docs/tls.md). SIGHUP re-reads all three files.\n"
    "\n"
    "Security (docs/security.md):\n"
    "  --auth MODE               SHARDVAULT_AUTH            off | apikey, default off\n"
    "  --allow-anonymous         SHARDVAULT_ALLOW_ANONYMOUS  with auth off, listen on a non-loopback address anyway\n"
    "  --root-key-file FILE      SHARDVAULT_ROOT_KEY_FILE   the admin key; default <data-dir>/root.key, created\n"
    "                            at the first start with auth on (its path is logged, never the key)\n"
    "  --rate-limit N            SHARDVAULT_RATE_LIMIT      requests/s per key (token bucket), default 0 = off\n"
    "  --audit-log FILE          SHARDVAULT_AUDIT_LOG       JSON lines: writes, lifecycle operations, key and\n"
    "                            role changes, denied requests; reopened on SIGHUP\n"
    "  --metrics-public BOOL     SHARDVAULT_METRICS_PUBLIC  /metrics without a key, default true\n"
    "\n"
    "\n"
    "Cluster (environment only; see docs/cluster.md):\n"
    "  SHARDVAULT_CLUSTER_SECRET  node-to-node secret (16-256 characters, the same on every node);\n"
    "                             without it this node neither forwards nor accepts forwarded requests\n"
    "\n"
    "Registry (environment only; see docs/registry.md):\n"
    "  SHARDVAULT_CACHE_DIR (<data-dir>/cache), SHARDVAULT_CACHE_BYTES (10% of its filesystem),\n"
    "  SHARDVAULT_MAX_CONCURRENT_HYDRATIONS (4), SHARDVAULT_RECOVER_ON_START (none|on-acquire|now),\n"
    "  SHARDVAULT_ACQUIRE_TIMEOUT (30 s)\n"
    "\n"
    "Storage (environment only; see docs/engine.md):\n"
    "  SHARDVAULT_DIRECT_IO (auto|off): flushes and compactions with O_DIRECT where the filesystem\n"
    "  takes it; SHARDVAULT_MAX_OPEN_SHARDS (open shards; idle ones past it close)\n"
    "\n"
    "Export (environment only; see docs/export.md):\n"
    "  EXPORT_ENABLED (true), EXPORT_DEFAULT_PATH (<data-dir>/exports; also the S3 prefix),\n"
    "  EXPORT_DEFAULT_BUCKET, EXPORT_PARALLELISM (cores), EXPORT_ROWS_PER_FILE (1000000),\n"
    "  EXPORT_RESERVATION_TIMEOUT_MS (120000), EXPORT_MAX_ROWS_PER_SECOND (0 = unlimited)\n"
    "\n"
    "Sizes accept suffixes: 64Mi, 2G, 512K. Acknowledged writes survive kill -9;\n"
    "--sync-writes adds an fsync per write for power loss.\n";

typedef struct serve_cfg {
    char host[256];
    int port;
    const char *data_dir;
    const char *log_level;
    const char *log_format;
    int64_t max_body;
    int64_t block_cache;
    bool sync;
    const char *node;
    const char *advertise_url, *node_ttl;
    int64_t node_ttl_ms;
    const char *catalog;
    const char *location;
    const char *jobs_keep, *jobs_keep_days;
    int64_t keep, keep_days;
    const char *auth, *allow_anonymous, *root_key_file, *rate_limit, *audit_log, *metrics_public;
    bool auth_on, anonymous_ok, metrics_pub;
    double rate;
    const char *tls_cert, *tls_key, *tls_client_ca;
} serve_cfg;

static int parse_listen(const char *s, serve_cfg *cfg)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof cfg->host)
        return -1;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1)
        return -1;
    memcpy(cfg->host, s, (size_t)(colon - s));
    cfg->host[colon - s] = '\0';
    if (strcmp(cfg->host, "localhost") == 0)
        strcpy(cfg->host, "127.0.0.1");
    cfg->port = (int)port;
    return 0;
}

static int bad(const char *flag, const char *value, const char *expect)
{
    fprintf(stderr, "shardvault serve: %s=%s is invalid: %s\n(see shardvault serve --help)\n", flag, value, expect);
    return 2;
}

/* Flags over SHARDVAULT_* variables over defaults. Returns -1 to go on, or
 * the exit code (0 after --help, 2 for a bad flag, message printed). */
static int configure(int argc, char **argv, serve_cfg *cfg)
{
    const char *listen = sv_env_str("SHARDVAULT_LISTEN", "127.0.0.1:8080");
    cfg->data_dir = sv_env_str("SHARDVAULT_DATA_DIR", "./data");
    cfg->log_level = sv_env_str("SHARDVAULT_LOG_LEVEL", "info");
    cfg->log_format = sv_env_str("SHARDVAULT_LOG_FORMAT", "text");
    cfg->node = sv_env_str("SHARDVAULT_NODE_NAME", "node1");
    cfg->catalog = sv_env_str("SHARDVAULT_CATALOG", NULL);
    cfg->advertise_url = sv_env_str("SHARDVAULT_ADVERTISE_URL", NULL);
    cfg->node_ttl = sv_env_str("SHARDVAULT_NODE_TTL", "10s");
    cfg->location = sv_env_str("SHARDVAULT_LOCATION", sv_env_str("SHARDVAULT_SNAPSHOT_LOCATION", NULL));
    cfg->jobs_keep = sv_env_str("SHARDVAULT_JOBS_KEEP", "1000");
    cfg->jobs_keep_days = sv_env_str("SHARDVAULT_JOBS_KEEP_DAYS", "30");
    cfg->auth = sv_env_str("SHARDVAULT_AUTH", "off");
    cfg->allow_anonymous = sv_env_str("SHARDVAULT_ALLOW_ANONYMOUS", "false");
    cfg->root_key_file = sv_env_str("SHARDVAULT_ROOT_KEY_FILE", NULL);
    cfg->rate_limit = sv_env_str("SHARDVAULT_RATE_LIMIT", "0");
    cfg->audit_log = sv_env_str("SHARDVAULT_AUDIT_LOG", NULL);
    cfg->metrics_public = sv_env_str("SHARDVAULT_METRICS_PUBLIC", "true");
    const char *max_body = sv_env_str("SHARDVAULT_MAX_BODY_BYTES", "64Mi");
    const char *cache = sv_env_str("SHARDVAULT_BLOCK_CACHE_BYTES", "256Mi");
    const char *sync = sv_env_str("SHARDVAULT_SYNC_WRITES", "false");
    cfg->tls_cert = sv_env_str("SHARDVAULT_TLS_CERT", NULL);
    cfg->tls_key = sv_env_str("SHARDVAULT_TLS_KEY", NULL);
    cfg->tls_client_ca = sv_env_str("SHARDVAULT_TLS_CLIENT_CA", NULL);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(serve_usage, stdout);
            return 0;
        }
        const char **slot = NULL;
        if (!strcmp(a, "--listen")) slot = &listen;
        else if (!strcmp(a, "--data-dir")) slot = &cfg->data_dir;
        else if (!strcmp(a, "--log-level")) slot = &cfg->log_level;
        else if (!strcmp(a, "--log-format")) slot = &cfg->log_format;
        else if (!strcmp(a, "--max-body-bytes")) slot = &max_body;
        else if (!strcmp(a, "--block-cache-bytes")) slot = &cache;
        else if (!strcmp(a, "--sync-writes")) slot = &sync;
        else if (!strcmp(a, "--node-name")) slot = &cfg->node;
        else if (!strcmp(a, "--catalog")) slot = &cfg->catalog;
        else if (!strcmp(a, "--advertise-url")) slot = &cfg->advertise_url;
        else if (!strcmp(a, "--node-ttl")) slot = &cfg->node_ttl;
        else if (!strcmp(a, "--location") || !strcmp(a, "--snapshot-location")) slot = &cfg->location;
        else if (!strcmp(a, "--jobs-keep")) slot = &cfg->jobs_keep;
        else if (!strcmp(a, "--jobs-keep-days")) slot = &cfg->jobs_keep_days;
        else if (!strcmp(a, "--auth")) slot = &cfg->auth;
        else if (!strcmp(a, "--root-key-file")) slot = &cfg->root_key_file;
        else if (!strcmp(a, "--rate-limit")) slot = &cfg->rate_limit;
        else if (!strcmp(a, "--audit-log")) slot = &cfg->audit_log;
        else if (!strcmp(a, "--metrics-public")) slot = &cfg->metrics_public;
        else if (!strcmp(a, "--tls-cert")) slot = &cfg->tls_cert;
        else if (!strcmp(a, "--tls-key")) slot = &cfg->tls_key;
        else if (!strcmp(a, "--tls-client-ca")) slot = &cfg->tls_client_ca;
        if (!strcmp(a, "--allow-anonymous")) { /* a switch, no value */
            cfg->allow_anonymous = "true";
            continue;
        }
        if (!slot) {
            fprintf(stderr, "shardvault serve: unknown flag '%s'\n\n%s", a, serve_usage);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "shardvault serve: %s needs a value\n", a);
            return 2;
        }
        *slot = argv[++i];
    }
    if (parse_listen(listen, cfg))
        return bad("listen", listen, "expected HOST:PORT, e.g. 127.0.0.1:8080");
    if (sv_log_set_level_name(cfg->log_level))
        return bad("log-level", cfg->log_level, "expected debug, info, warn or error");
    if (strcmp(cfg->log_format, "text") && strcmp(cfg->log_format, "json"))
        return bad("log-format", cfg->log_format, "expected text or json");
    sv_log_set_json(strcmp(cfg->log_format, "json") == 0);
    if (sv_parse_size(max_body, &cfg->max_body) || cfg->max_body < 1024)
        return bad("max-body-bytes", max_body, "expected a size of at least 1024, e.g. 64Mi");
    if (sv_parse_size(cache, &cfg->block_cache) || cfg->block_cache < (1 << 20))
        return bad("block-cache-bytes", cache, "expected a size of at least 1Mi, e.g. 256Mi");
    if (sv_parse_bool(sync, &cfg->sync))
        return bad("sync-writes", sync, "expected true or false");
    if (sv_parse_size(cfg->jobs_keep, &cfg->keep) || cfg->keep < 1)
        return bad("jobs-keep", cfg->jobs_keep, "expected a whole number of at least 1");
    if (sv_parse_size(cfg->jobs_keep_days, &cfg->keep_days) || cfg->keep_days < 1)
        return bad("jobs-keep-days", cfg->jobs_keep_days, "expected a whole number of days, at least 1");
    if (strcmp(cfg->auth, "off") && strcmp(cfg->auth, "apikey"))
        return bad("auth", cfg->auth, "expected off or apikey");
    cfg->auth_on = !strcmp(cfg->auth, "apikey");
    if (sv_parse_bool(cfg->allow_anonymous, &cfg->anonymous_ok))
        return bad("allow-anonymous", cfg->allow_anonymous, "expected true or false");
    if (sv_parse_bool(cfg->metrics_public, &cfg->metrics_pub))
        return bad("metrics-public", cfg->metrics_public, "expected true or false");
    char *end;
    cfg->rate = strtod(cfg->rate_limit, &end);
    if (*end || end == cfg->rate_limit || cfg->rate < 0 || cfg->rate > 1e6)
        return bad("rate-limit", cfg->rate_limit, "expected requests per second per key, 0 = off");
    /* Anonymous access beyond this machine must be asked for. */
    if (!cfg->auth_on && strncmp(cfg->host, "127.", 4)) {
        if (!cfg->anonymous_ok) {
            fprintf(stderr, "shardvault serve: refusing to listen on %s without authentication: start with --auth "
                            "apikey, or with --allow-anonymous if every client on the network may do anything\n",
                    cfg->host);
            return 2;
        }
        sv_warn("authentication is off on a non-loopback address (--allow-anonymous)", "address=%s", cfg->host);
    }
    if (sv_check_property_name(cfg->node, NULL))
        return bad("node-name", cfg->node, "expected letters, digits, _ or -");
    {
        char *unit;
        double v = strtod(cfg->node_ttl, &unit);
        double ms = !strcmp(unit, "ms") ? v : (!*unit || !strcmp(unit, "s")) ? v * 1000 : -1;
        if (unit == cfg->node_ttl || ms < 1000 || ms > 3600000)
            return bad("node-ttl", cfg->node_ttl, "expected a duration from 1s to 3600s, e.g. 10s or 2500ms");
        cfg->node_ttl_ms = (int64_t)ms;
    }
    if (cfg->advertise_url && !*cfg->advertise_url)
        cfg->advertise_url = NULL;
    if (cfg->tls_cert && !*cfg->tls_cert) cfg->tls_cert = NULL;
    if (cfg->tls_key && !*cfg->tls_key) cfg->tls_key = NULL;
    if (cfg->tls_client_ca && !*cfg->tls_client_ca) cfg->tls_client_ca = NULL;
    if (!cfg->tls_cert != !cfg->tls_key)
        return bad(cfg->tls_cert ? "tls-cert" : "tls-key", cfg->tls_cert ? cfg->tls_cert : cfg->tls_key,
                   cfg->tls_cert ? "--tls-key (SHARDVAULT_TLS_KEY) is missing: HTTPS needs both"
                                 : "--tls-cert (SHARDVAULT_TLS_CERT) is missing: HTTPS needs both");
    if (cfg->tls_client_ca && !cfg->tls_cert)
        return bad("tls-client-ca", cfg->tls_client_ca,
                   "client certificates need HTTPS: set --tls-cert and --tls-key too");
    return -1;
}

/* ---- node-to-node calls over the cluster's forwarding client (which adds
 * the cluster secret) ---- */

/* One call's outcome: rc and status as sent, err also for an answer >= 300
 * (its {"error":[{"message"}]}), *reply (may be NULL) its JSON when < 300. */
static void call_outcome(sv_cluster_call *c, int *rc, int *status, sv_err *err, json_t **reply)
{
    memset(err, 0, sizeof *err);
    *rc = c->rc;
    *status = c->status;
    if (reply)
        *reply = NULL;
    if (c->rc) {
        *err = c->err;
    } else if (c->status >= 300) {
        json_t *j = json_loadb((const char *)c->out.data, c->out.len, 0, NULL);
        const char *m = json_string_value(json_object_get(json_array_get(json_object_get(j, "error"), 0), "message"));
        sv_fail(err, SV_EUNAVAIL, "%s", m ? m : "no reason given");
        json_decref(j);
    } else if (reply) {
        *reply = json_loadb((const char *)c->out.data, c->out.len, 0, NULL);
    }
    sv_buf_free(&c->out);
}

/* One node-to-node POST of a service's call, pointing into its own call
 * struct (the services know no cluster type). */
typedef struct node_post {
    const char *node, *path;
    json_t *body; /* NULL = {} */
    int *rc, *status;
    sv_err *err;
    json_t **reply; /* NULL: the answer's body is not wanted */
} node_post;

/* Sends every call in parallel; each gets its outcome. */
static void post_all(sv_cluster *c, node_post *p, size_t n, int64_t timeout_ms)
{
    sv_cluster_call *cc = calloc(n + 1, sizeof *cc);
    char **bodies = calloc(n + 1, sizeof *bodies);
    bool ok = cc && bodies;
    for (size_t i = 0; ok && i < n; i++) {
        bodies[i] = p[i].body ? json_dumps(p[i].body, JSON_COMPACT) : strdup("{}");
        ok = bodies[i] != NULL;
        cc[i] = (sv_cluster_call){.node = p[i].node, .method = "POST", .target = p[i].path, .body = bodies[i],
                                  .len = ok ? strlen(bodies[i]) : 0, .timeout_ms = timeout_ms};
    }
    if (ok)
        sv_cluster_forward(c, cc, n);
    for (size_t i = 0; i < n; i++) {
        if (ok)
            call_outcome(&cc[i], p[i].rc, p[i].status, p[i].err, p[i].reply);
        else
            *p[i].rc = sv_fail(p[i].err, SV_ENOMEM, "out of memory");
        if (bodies)
            free(bodies[i]);
    }
    free(bodies);
    free(cc);
}

/* The export service's node-to-node calls. */
static void export_send(void *self, sv_export_rpc *calls, size_t n, int64_t timeout_ms)
{
    node_post *p = calloc(n + 1, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        if (p)
            p[i] = (node_post){calls[i].node, calls[i].path, calls[i].body, &calls[i].rc, &calls[i].status,
                               &calls[i].err, NULL};
        else
            calls[i].rc = sv_fail(&calls[i].err, SV_ENOMEM, "out of memory");
    }
    if (p)
        post_all(self, p, n, timeout_ms);
    free(p);
}

/* The snapshot service's (a cluster-wide snapshot's cut), with the answers. */
static void snapshot_send(void *self, sv_snapshot_rpc *calls, size_t n, int64_t timeout_ms)
{
    node_post *p = calloc(n + 1, sizeof *p);
    for (size_t i = 0; i < n; i++) {
        calls[i].reply = NULL;
        if (p)
            p[i] = (node_post){calls[i].node, calls[i].path, calls[i].body, &calls[i].rc, &calls[i].status,
                               &calls[i].err, &calls[i].reply};
        else
            calls[i].rc = sv_fail(&calls[i].err, SV_ENOMEM, "out of memory");
    }
    if (p)
        post_all(self, p, n, timeout_ms);
    free(p);
}

/* The healthy members, for a restore across nodes. */
static int snapshot_healthy_nodes(void *self, char (**out)[65], size_t *n, sv_err *err)
{
    return sv_cluster_live_nodes(self, out, n, err);
}

static bool export_healthy(void *self, const char *node) { return sv_cluster_node_healthy(self, node); }

/* The registry and its transient cache, configured from the environment
 * (docs/registry.md): SHARDVAULT_CACHE_DIR (<data>/cache),
 * SHARDVAULT_CACHE_BYTES (10% of the cache's filesystem),
 * SHARDVAULT_MAX_CONCURRENT_HYDRATIONS (4), SHARDVAULT_RECOVER_ON_START
 * (none | on-acquire | now). */
static int open_registry(const char *data_dir, const char *node, sv_catalog *cat, sv_store *st, sv_snapshot *snap,
                         sv_jobs *jobs, sv_registry **out, sv_err *err)
{
    char dflt_dir[1100];
    snprintf(dflt_dir, sizeof dflt_dir, "%s/cache", data_dir);
    const char *dir = sv_env_str("SHARDVAULT_CACHE_DIR", dflt_dir);
    int rc = sv_mkdirs(dir, err);
    if (rc)
        return rc;
    struct statvfs fs;
    int64_t tenth = statvfs(dir, &fs) == 0 ? (int64_t)((double)fs.f_blocks * (double)fs.f_frsize / 10) : (1LL << 30);
    int64_t quota = 0, hyd = 0;
    if ((rc = sv_env_int("SHARDVAULT_CACHE_BYTES", tenth > 0 ? tenth : (1LL << 30), &quota, err)) != 0 ||
        (rc = sv_env_int("SHARDVAULT_MAX_CONCURRENT_HYDRATIONS", 4, &hyd, err)) != 0)
        return rc;
    if (quota <= 0)
        return sv_fail(err, SV_EINVAL, "SHARDVAULT_CACHE_BYTES must be a positive size (e.g. 10Gi)");
    if (hyd < 1 || hyd > 1024)
        return sv_fail(err, SV_EINVAL, "SHARDVAULT_MAX_CONCURRENT_HYDRATIONS must be between 1 and 1024");
    const char *pol = sv_env_str("SHARDVAULT_RECOVER_ON_START", "on-acquire");
    sv_registry_recover_policy p = SV_REGISTRY_RECOVER_ON_ACQUIRE;
    if (!strcmp(pol, "none"))
        p = SV_REGISTRY_RECOVER_NONE;
    else if (!strcmp(pol, "now"))
        p = SV_REGISTRY_RECOVER_NOW;
    else if (strcmp(pol, "on-acquire"))
        return sv_fail(err, SV_EINVAL, "SHARDVAULT_RECOVER_ON_START must be none, on-acquire or now (got '%.40s')",
                       pol);
    /* a cluster: each node's registry records apart (its cache and mounts are its own) */
    sv_registry_opts o = {.cache_dir = dir, .cache_quota_bytes = quota, .max_concurrent_hydrations = (int)hyd,
                          .recover_on_start = p,
                          .node = sv_catalog_shared(cat) ? node : NULL};
    if ((rc = sv_registry_open(&o, cat, out, err)) == 0 && (rc = sv_registry_attach(*out, st, snap, jobs, err)) != 0) {
        sv_registry_close(*out);
        *out = NULL;
    }
    return rc;
}

int sv_cli_serve(int argc, char **argv)
{
    serve_cfg cfg = {0};
    int code = configure(argc, argv, &cfg);
    if (code >= 0)
        return code;
    /* malloc arenas: glibc's default (8 per CPU) lets buffers freed by one
     * thread and needed by another pile up in separate arenas; an import
     * (reader, converter, writer and helper threads) peaked 90-100 MB
     * higher for it (measured, docs/import.md "Reading"). One per CPU, unless
     * MALLOC_ARENA_MAX says otherwise. */
    if (!getenv("MALLOC_ARENA_MAX")) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        mallopt(M_ARENA_MAX, cpus < 2 ? 2 : (int)cpus);
    }
    sv_err err = {0};
    if (sv_mkdirs(cfg.data_dir, &err)) {
        fprintf(stderr, "shardvault serve: %s\n", err.msg);
        return 1;
    }
    char catalog_url[1200];
    if (cfg.catalog)
        snprintf(catalog_url, sizeof catalog_url, "%s", cfg.catalog);
    else
        snprintf(catalog_url, sizeof catalog_url, "%s/catalog", cfg.data_dir);

    /* Signals are taken synchronously by this thread; every other thread
     * (MHD, RocksDB) inherits the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    sv_catalog *cat = NULL;
    sv_store *st = NULL;
    sv_server *srv = NULL;
    sv_export *ex = NULL;
    sv_importer *imp = NULL;
    sv_snapshot *snap = NULL;
    sv_maintenance *maint = NULL;
    sv_jobs *jobs = NULL;
    sv_auth *auth = NULL;
    sv_audit *audit = NULL;
    sv_registry *reg = NULL;
    sv_cluster *cluster = NULL;
    sv_cluster_moves *moves = NULL;
    int rc = sv_catalog_open(catalog_url, &cat, &err);
    if (rc == 0 && cfg.auth_on) {
        /* a cluster shares its keys: one pepper from the cluster secret */
        sv_auth_opts ao = {.data_dir = cfg.data_dir, .root_key_file = cfg.root_key_file, .rate_limit = cfg.rate,
                           .shared_secret = sv_catalog_shared(cat) ? getenv("SHARDVAULT_CLUSTER_SECRET") : NULL};
        rc = sv_auth_open(&ao, cat, &auth, &err);
    }
    if (rc == 0 && cfg.audit_log)
        rc = sv_audit_open(cfg.audit_log, 1000, &audit, &err);
    if (rc == 0) {
        sv_jobs_opts jo = {.node_name = cfg.node, .keep = cfg.keep, .keep_days = cfg.keep_days};
        rc = sv_jobs_open(&jo, cat, &jobs, &err);
    }
    if (rc == 0) {
        sv_store_opts so = {.data_dir = cfg.data_dir, .block_cache_bytes = cfg.block_cache, .sync_writes = cfg.sync,
                            .node_name = cfg.node};
        rc = sv_store_open(&so, cat, &st, &err);
    }
    if (rc == 0) {
        sv_export_opts eo = {.store = st, .catalog = cat, .jobs = jobs, .data_dir = cfg.data_dir,
                             .node_name = cfg.node};
        rc = sv_export_open(&eo, &ex, &err);
    }
    if (rc == 0) {
        sv_importer_opts io = {.store = st, .catalog = cat, .jobs = jobs, .export = ex, .node_name = cfg.node};
        rc = sv_importer_open(&io, &imp, &err);
    }
    if (rc == 0) {
        /* On a shared catalog a resumed restore may place shards on other
         * nodes: it starts once this node knows the cluster (after join). */
        sv_snapshot_opts so = {.data_dir = cfg.data_dir, .location_url = cfg.location, .node_name = cfg.node,
                               .jobs = jobs, .defer_resume = !strcmp(sv_catalog_driver_name(cat), "etcd")};
        rc = sv_snapshot_open(&so, st, cat, &snap, &err);
    }
    if (rc == 0) {
        sv_maintenance_opts mo = {.node_name = cfg.node, .jobs = jobs};
        rc = sv_maintenance_open(&mo, cat, snap, &maint, &err);
    }
    if (rc == 0)
        rc = open_registry(cfg.data_dir, cfg.node, cat, st, snap, jobs, &reg, &err);
    /* A rebuild records the offloaded tenants it finds in the location. */
    if (rc == 0)
        sv_maintenance_set_tenant_adopter(maint, sv_registry_adopt_tenant, reg);
    if (rc == 0) {
        /* Placement and forwarding on a shared (etcd) catalog only; the
         * secret comes from the environment, never a flag (command lines
         * are visible to every user of the host). */
        sv_cluster_opts co = {.node_name = cfg.node, .data_dir = cfg.data_dir, .ttl_ms = cfg.node_ttl_ms,
                              .store = st, .placement = !strcmp(sv_catalog_driver_name(cat), "etcd"),
                              .secret = getenv("SHARDVAULT_CLUSTER_SECRET")};
        rc = sv_cluster_open(&co, cat, &cluster, &err);
    }
    if (rc == 0 && sv_cluster_placement(cluster))
        sv_export_set_cluster(ex, &(sv_export_cluster){.self = cluster, .send = export_send, .healthy = export_healthy});
    if (rc == 0 && sv_cluster_placement(cluster))
        sv_snapshot_set_cluster(snap, &(sv_snapshot_cluster){.self = cluster, .send = snapshot_send,
                                                          .healthy_nodes = snapshot_healthy_nodes});
    /* Shard moves: settles the moves a previous process left (a job claim). */
    if (rc == 0)
        rc = sv_cluster_moves_open(cluster, st, snap, jobs, cat, &moves, &err);
    /* Every service has claimed the jobs it resumes: the rest end FAILED. */
    if (rc == 0)
        rc = sv_jobs_recover(jobs, &err);
    if (rc == 0) {
        sv_server_opts o = {.host = cfg.host, .port = cfg.port, .max_body_bytes = cfg.max_body, .node_name = cfg.node,
                            .metrics_private = !cfg.metrics_pub, .tls_cert_file = cfg.tls_cert,
                            .tls_key_file = cfg.tls_key, .tls_client_ca_file = cfg.tls_client_ca};
        sv_services svc = {.store = st, .export = ex, .snapshot = snap, .jobs = jobs, .maintenance = maint, .auth = auth,
                           .audit = audit, .registry = reg, .cluster = cluster, .importer = imp,
                           .moves = moves};
        rc = sv_server_start(&o, &svc, &srv, &err);
    }
    if (rc == 0)
        rc = sv_server_add_metrics(srv, sv_export_metrics, ex);
    if (rc == 0)
        rc = sv_server_add_metrics(srv, sv_snapshot_metrics, snap);
    if (rc == 0)
        rc = sv_server_add_metrics(srv, sv_importer_metrics, imp);
    if (rc == 0)
        rc = sv_server_add_metrics(srv, sv_jobs_metrics, jobs);
    if (rc == 0)
        rc = sv_server_add_metrics(srv, sv_maintenance_metrics, maint);
    if (rc == 0)
        rc = sv_server_add_metrics(srv, sv_registry_metrics, reg);
    if (rc == 0)
        rc = sv_server_add_metrics(srv, sv_cluster_metrics, cluster);
    if (rc == 0)
        rc = sv_server_add_metrics(srv, sv_catalog_metrics, cat);
    /* Membership once the port is known: the node is reachable from here. */
    if (rc == 0) {
        char adv[300];
        if (cfg.advertise_url)
            snprintf(adv, sizeof adv, "%s", cfg.advertise_url);
        else
            snprintf(adv, sizeof adv, "%s://%s:%d", cfg.tls_cert ? "https" : "http", cfg.host, sv_server_port(srv));
        rc = sv_cluster_join(cluster, adv, &err);
    }
    if (rc == 0) /* restores open claimed: the cluster (and this node in it) is known now */
        sv_snapshot_resume(snap);
    if (rc) {
        sv_error("cannot start", "error=\"%s\"", err.msg);
        fprintf(stderr, "shardvault serve: %s\n", err.msg);
        sv_server_stop(srv, 0);
        sv_export_shutdown(ex); /* its ticker calls the cluster: stopped first */
        sv_cluster_moves_close(moves);
        sv_cluster_close(cluster);
        sv_importer_close(imp);
        sv_export_close(ex);
        sv_jobs_shutdown(jobs);
        sv_maintenance_close(maint);
        sv_registry_close(reg);
        sv_snapshot_close(snap);
        sv_jobs_close(jobs);
        sv_store_close(st);
        sv_audit_close(audit);
        sv_auth_close(auth);
        sv_catalog_close(cat);
        return 1;
    }
    int port = sv_server_port(srv);
    const char *scheme = cfg.tls_cert ? "https" : "http";
    sv_info("listening", "address=%s:%d scheme=%s data_dir=%s version=%s build=%s", cfg.host, port, scheme,
            cfg.data_dir, SV_VERSION, SV_GIT_SHA);
    printf("shardvault %s listening on %s://%s:%d (data in %s)\n"
           "  quickstart:\n"
           "    curl -X POST %s://%s:%d/v1/collections -d '{\"name\":\"Article\",\"vectors\":{\"default\":{\"dim\":3}},"
           "\"properties\":[{\"name\":\"title\",\"type\":\"text\"}]}'\n"
           "    curl -X POST %s://%s:%d/v1/collections/Article/objects -d '{\"vector\":[0.1,0.2,0.3],"
           "\"properties\":{\"title\":\"hello\"}}'\n"
           "    curl '%s://%s:%d/v1/collections/Article/objects?limit=10'\n",
           SV_VERSION, scheme, cfg.host, port, cfg.data_dir, scheme, cfg.host, port, scheme, cfg.host, port, scheme,
           cfg.host, port);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
        if (cfg.tls_cert) {
            if (sv_server_reload_tls(srv, &err) == 0)
                sv_info("TLS certificate reloaded", "cert=%s", cfg.tls_cert);
            else
                sv_error("TLS reload failed: the previous certificate stays in use", "error=\"%s\"", err.msg);
        }
        if (audit) { /* log rotation: the file is reopened by name */
            sv_err e2 = {0};
            if (sv_audit_reopen(audit, &e2) == 0)
                sv_info("audit log reopened", "path=%s", cfg.audit_log);
            else
                sv_error("audit log reopen failed: the previous file stays in use", "error=\"%s\"", e2.msg);
        }
    }
    sv_info("stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    /* New writes and exports get 503 from here on; a running export ends
     * FAILED "shutting down" (final status written, slot released) before the
     * store it reads from closes. */
    sv_server_quiesce(srv);
    sv_jobs_shutdown(jobs); /* no new scheduled runs */
    sv_importer_shutdown(imp);
    sv_export_shutdown(ex);
    sv_server_stop(srv, 30000);
    sv_cluster_moves_close(moves); /* a running move ends FAILED, the shard staying here */
    sv_cluster_close(cluster); /* revokes the lease: UNREACHABLE at once */
    sv_importer_close(imp);
    sv_export_close(ex);
    sv_maintenance_close(maint);
    sv_registry_close(reg); /* before the snapshot and store its jobs use */
    sv_snapshot_close(snap);
    sv_jobs_close(jobs);
    sv_store_close(st);
    sv_audit_close(audit);
    sv_auth_close(auth);
    sv_catalog_close(cat);
    sv_info("stopped", "%s", "");
    return 0;
}
