#include "core.h"

#include <stdio.h>
#include <string.h>

int sv_fail(sv_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int sv_err_wrap(sv_err *err, const char *fmt, ...)
{
    if (!err)
        return SV_EINTERNAL;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    size_t plen = strlen(prefix);
    if (plen > sizeof err->msg - 3)
        plen = sizeof err->msg - 3;
    memcpy(err->msg, prefix, plen);
    memcpy(err->msg + plen, ": ", 2);
    size_t room = sizeof err->msg - plen - 3, olen = strnlen(old, room);
    memcpy(err->msg + plen + 2, old, olen);
    err->msg[plen + 2 + olen] = '\0';
    return err->code ? err->code : SV_EINTERNAL;
}

void sv_err_clear(sv_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *sv_strerror(int code)
{
    switch (code) {
    case SV_OK: return "ok";
    case SV_EINVAL: return "invalid input";
    case SV_EPARSE: return "malformed input";
    case SV_ENOTFOUND: return "not found";
    case SV_EEXIST: return "already exists";
    case SV_ECONFLICT: return "conflict";
    case SV_ESTATE: return "wrong state";
    case SV_ETOOBIG: return "too large";
    case SV_EUNAVAIL: return "unavailable";
    case SV_EIO: return "i/o error";
    case SV_ENOMEM: return "out of memory";
    case SV_ECORRUPT: return "corrupt data";
    case SV_ECANCELED: return "canceled";
    case SV_EUNSUPPORTED: return "unsupported";
    case SV_ETIMEOUT: return "timed out";
    case SV_EDENIED: return "denied";
    case SV_ENOSPACE: return "quota full";
    default: return "internal error";
    }
}
