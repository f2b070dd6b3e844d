/* GET /console and /console/{asset}: the web console's embedded static
 * assets (src/console, docs/console.md). The headers every console answer
 * carries (CSP, nosniff, Cache-Control) are added in server.c's
 * send_response. */
#include <stdio.h>
#include <string.h>

#include "console.h"
#include "server_internal.h"

int sv_route_console(request *rq)
{
    const char *name = rq->nparams > 0 ? rq->params[0] : "index.html";
    const unsigned char *data;
    size_t len;
    const char *type;
    if (sv_console_asset(name, &data, &len, &type)) {
        char msg[320];
        snprintf(msg, sizeof msg, "no console asset '%s': the console is at /console", name);
        return sv_reply_error(rq, 404, msg);
    }
    rq->status = 200;
    rq->content_type = type;
    return sv_buf_append(&rq->out, data, len) ? SV_ENOMEM : 0;
}
