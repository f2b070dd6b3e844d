/* The web console's static assets, embedded in the binary at build time
 * (docs/console.md). */
#ifndef SV_CONSOLE_H
#define SV_CONSOLE_H

#include <stddef.h>

/* Looks up an asset by its name under /console/ ("" or "index.html" is the
 * page, "app.js", "app.css"). 0 with data, len and content_type set, or
 * SV_ENOTFOUND when there is no such asset. The data is static. */
int sv_console_asset(const char *path, const unsigned char **data, size_t *len, const char **content_type);

#endif
