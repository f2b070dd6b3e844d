/* cli — the `shardvault` command: `serve` starts the server; every other
 * command is a client of the HTTP API (--url / SHARDVAULT_URL). Internal to
 * the executable; nothing else links it. */
#ifndef SV_CLI_H
#define SV_CLI_H

#include "core.h"

int sv_cli_serve(int argc, char **argv);
/* Client commands; argv[0] is the command name ("collections", "import", ...). */
int sv_cli_client(const char *url, int argc, char **argv);

#endif
