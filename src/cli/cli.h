/* cli — the `shardvault` command: `serve` starts the server; every other
 * command is a client of the HTTP API (--url / SHARDVAULT_URL). Internal to
 * the executable; nothing else links it. */
#ifndef SV_CLI_H
#define SV_CLI_H

#include "core.h"

int sv_cli_serve(int argc, char **argv);
/* Client commands; argv[0] is the command name ("collections", "import", ...). */
int sv_cli_client(const char *url, int argc, char **argv);
/* For every command: the value after "--name" among argv[1..], or NULL; and
 * whether a flag is present. */
const char *sv_cli_opt(int argc, char **argv, const char *name);
bool sv_cli_flag(int argc, char **argv, const char *flag);

/* import_parquet.c: `import-parquet create|status|cancel` (server-side
 * imports) and `import FILE.parquet` (read here, sent as batches). cl is the
 * client of client.c, used through sv_cli_request / sv_cli_finish. */
int sv_cli_import_parquet(void *cl, int argc, char **argv);
int sv_cli_import_parquet_local(void *cl, int argc, char **argv);
long sv_cli_request(void *cl, const char *method, const char *path, const char *body, size_t len, const char *ctype,
                    sv_buf *resp);
/* Prints an error answer (>= 400) or the JSON answer; 0 for 2xx. */
int sv_cli_finish(long status, sv_buf *resp);
/* For client commands in their own files (client.c owns the connection). */
struct client;
/* One request; answers the HTTP status (or -1 after printing why). */
long sv_cli_http(struct client *c, const char *method, const char *path, const char *body, sv_buf *resp);
/* `shardvault maintenance ...` (maintenance.c). */
int sv_cli_maintenance(struct client *c, int argc, char **argv);

#endif
