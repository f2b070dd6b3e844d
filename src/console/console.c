#include "console.h"

#include <string.h>

#include "core.h"

struct sv_console_embedded {
    const char *name;
    const unsigned char *data;
    size_t len;
};
/* console_assets.c, generated from assets/ by embed.cmake */
extern const struct sv_console_embedded sv_console_embedded[];

static const char *content_type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    if (!strcmp(dot, ".png"))
        return "image/png";
    return "application/octet-stream";
}

int sv_console_asset(const char *path, const unsigned char **data, size_t *len, const char **content_type)
{
    if (!path || !*path)
        path = "index.html";
    for (const struct sv_console_embedded *e = sv_console_embedded; e->name; e++) {
        if (strcmp(e->name, path))
            continue;
        *data = e->data;
        *len = e->len;
        *content_type = content_type_of(e->name);
        return 0;
    }
    return SV_ENOTFOUND;
}
