/* cli — the `shardvault` command: `serve` starts the server; every other
 * command is a client of the HTTP API (--url / SHARDVAULT_URL). Internal to
 * the executable; nothing else links it. */
#ifndef SV_CLI_H
#define SV_CLI_H

#include "core.h"

int sv_cli_serve(int argc, char **argv);
/* Client commands; argv[0] is the command name ("collections", "import", ...). */
int sv_cli_client(const char *url, int argc, char **argv);

/* For client commands in their own files (client.c owns the connection). */
struct client;
/* One request; answers the HTTP status (or -1 after printing why). */
long sv_cli_http(struct client *c, const char *method, const char *path, const char *body, sv_buf *resp);
/* Prints a response (pretty JSON, or the error message); 0 on success. */
int sv_cli_finish(long status, sv_buf *resp);
/* `shardvault maintenance ...` (maintenance.c). */
int sv_cli_maintenance(struct client *c, int argc, char **argv);

#endif
