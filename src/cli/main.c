#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "shardvault " SV_VERSION " — a sharded object store for vector-database records\n"
    "\n"
    "usage: shardvault [--url URL] [--api-key KEY] [--cacert FILE] COMMAND [ARGS]\n"
    "\n"
    "Server:\n"
    "  serve                          start the server in the foreground (serve --help)\n"
    "\n"
    "Client (talks to a running server at --url or $SHARDVAULT_URL, default http://127.0.0.1:8080):\n"
    "  collections create FILE|-|JSON  create a collection from its JSON definition\n"
    "  collections list | get NAME | delete NAME\n"
    "  tenants list C | add C T... | activate C T... | deactivate C T... | delete C T...\n"
    "  tenants offload C T... | onload C T...   move tenants to the location and back (progress bar)\n"
    "  import FILE.ndjson|FILE.parquet --collection C [--tenant T] [--batch-size N] [--mapping JSON]\n"
    "                                 stream objects in batches, with a progress bar on a terminal\n"
    "  get C ID [--tenant T]          print one object\n"
    "  delete C ID [--tenant T]       delete one object\n"
    "  list C [--limit N] [--after ID] [--tenant T]\n"
    "  snapshot create|list|describe|drop|restore|job|jobs|gc|mount|unmount|get|list-objects|\n"
    "           restore-objects\n"
    "                                 collection snapshots and restore jobs (snapshot --help)\n"
    "  export create ID [--backend B] [--include C,..|--exclude C,..] [--wait]\n"
    "  export status ID | cancel ID | list      point-in-time export to Parquet (export --help)\n"
    "  import-parquet create ID (--export E | --files G,..) [--collection C] [--wait] ...\n"
    "  import-parquet status ID [--wait] | cancel ID   server-side Parquet import (import-parquet --help)\n"
    "  maintenance rebuild|verify|move|analyze|recovery-kit|status\n"
    "                                 rebuild the catalog from the location, verify it (maintenance --help)\n"
    "  jobs list|get|cancel           every long operation as a job (jobs --help)\n"
    "  registry status|list|get|recover|pin|unpin|gc\n"
    "                                 shards, the transient cache and hydrations (registry --help)\n"
    "  schedules create|list|get|pause|resume|delete\n"
    "                                 snapshots and exports on a cron or interval, with retention\n"
    "  keys create|list|delete|rotate|set-roles, roles create|list|get|delete, whoami\n"
    "                                 API keys and roles (with --auth apikey on the server)\n"
    "  meta                           server version\n"
    "  nodes                          the cluster's nodes: HEALTHY or UNREACHABLE (docs/cluster.md)\n"
    "\n"
    "--cacert FILE (or $SHARDVAULT_CACERT): PEM CA bundle to verify an https:// server with\n"
    "(default: the system's CAs; verification is never turned off; docs/tls.md).\n"
    "\n"
    "Every command accepts --help. Docs: README.md and docs/.\n";

int main(int argc, char **argv)
{
    const char *url = sv_env_str("SHARDVAULT_URL", "http://127.0.0.1:8080");
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("shardvault %s (build %s)\n", SV_VERSION, SV_GIT_SHA);
            return 0;
        }
        if (!strcmp(argv[i], "--api-key") && i + 1 < argc) { /* prefer SHARDVAULT_API_KEY: argv is visible to ps */
            setenv("SHARDVAULT_API_KEY", argv[i + 1], 1);
            i += 2;
            continue;
        }
        if (!strcmp(argv[i], "--cacert") && i + 1 < argc) {
            /* The client reads SHARDVAULT_CACERT; the flag wins over the environment. */
            setenv("SHARDVAULT_CACERT", argv[i + 1], 1);
            i += 2;
            continue;
        }
        if (!strcmp(argv[i], "--url") && i + 1 < argc) {
            url = argv[i + 1];
            i += 2;
            continue;
        }
        fprintf(stderr, "shardvault: unknown option '%s'\n\n%s", argv[i], usage);
        return 2;
    }
    if (i >= argc) {
        fputs(usage, stderr);
        return 2;
    }
    if (!strcmp(argv[i], "serve"))
        return sv_cli_serve(argc - i - 1, argv + i + 1);
    return sv_cli_client(url, argc - i, argv + i);
}
