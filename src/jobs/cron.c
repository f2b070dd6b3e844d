/* jobs — the pure parts of schedules: cron expressions (5 fields, UTC),
 * intervals, and restic-style retention. No I/O, no locks. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs_internal.h"

/* ---- cron ------------------------------------------------------------------------ */

typedef struct field_spec {
    const char *name;
    int lo, hi;
    const char *const *names; /* 3-letter names for lo.. (may be NULL) */
} field_spec;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_spec fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, dow_names},
};

/* Reads a number or a name at *p; -1 when neither. */
static int read_value(const char **p, const field_spec *f)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        int v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        *p = s;
        return v;
    }
    for (int i = 0; f->names && f->names[i]; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *p = s + 3;
            return f->lo + i;
        }
    }
    return -1;
}

/* One comma-separated item: a star, a star with a step (every n), a, a-b, a-b with a step, a with a step. */
static int parse_item(const char *s, size_t len, const field_spec *f, uint64_t *bits, sv_err *err)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return sv_fail(err, SV_EINVAL, "cron: %s field has an empty or too long item", f->name);
    memcpy(buf, s, len);
    buf[len] = '\0';
    const char *p = buf;
    int lo, hi, step = 1;
    if (*p == '*') {
        lo = f->lo;
        hi = f->hi == 7 ? 6 : f->hi;
        p++;
    } else {
        lo = read_value(&p, f);
        if (lo < 0)
            return sv_fail(err, SV_EINVAL, "cron: %s field: '%s' is not a number", f->name, buf);
        hi = lo;
        if (*p == '-') {
            p++;
            hi = read_value(&p, f);
            if (hi < 0)
                return sv_fail(err, SV_EINVAL, "cron: %s field: '%s' has a range without an end", f->name, buf);
        }
    }
    if (*p == '/') {
        p++;
        const char *q = p;
        step = read_value(&p, &(field_spec){f->name, 0, 0, NULL});
        if (step <= 0 || p == q)
            return sv_fail(err, SV_EINVAL, "cron: %s field: '%s' needs a step of at least 1", f->name, buf);
        if (buf[0] != '*' && !strchr(buf, '-'))
            hi = f->hi == 7 ? 6 : f->hi; /* a/n means a, a+n, … to the end */
    }
    if (*p)
        return sv_fail(err, SV_EINVAL, "cron: %s field: unexpected '%s' in '%s'", f->name, p, buf);
    if (lo < f->lo || hi > f->hi || lo > hi)
        return sv_fail(err, SV_EINVAL, "cron: %s field: '%s' is outside %d-%d", f->name, buf, f->lo, f->hi);
    for (int v = lo; v <= hi; v += step)
        *bits |= 1ULL << (f->hi == 7 && v == 7 ? 0 : v);
    return 0;
}

int sv_cron_parse(const char *expr, sv_cron *out, sv_err *err)
{
    memset(out, 0, sizeof *out);
    if (!expr)
        return sv_fail(err, SV_EINVAL, "cron: missing expression");
    const char *p = expr;
    uint64_t bits[5] = {0};
    bool any[5] = {0};
    for (int fi = 0; fi < 5; fi++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return sv_fail(err, SV_EINVAL, "cron: '%.100s' has %d fields, expected 5 (minute hour day-of-month month "
                                            "day-of-week)", expr, fi);
        const char *end = p;
        while (*end && *end != ' ' && *end != '\t')
            end++;
        any[fi] = *p == '*';
        const char *item = p;
        while (item < end) {
            const char *comma = memchr(item, ',', (size_t)(end - item));
            const char *stop = comma ? comma : end;
            int rc = parse_item(item, (size_t)(stop - item), &fields[fi], &bits[fi], err);
            if (rc)
                return rc;
            item = comma ? comma + 1 : end;
            if (comma && item == end)
                return sv_fail(err, SV_EINVAL, "cron: %s field ends with ','", fields[fi].name);
        }
        p = end;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return sv_fail(err, SV_EINVAL, "cron: '%.100s' has more than 5 fields", expr);
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint32_t)bits[3];
    out->dow = (uint8_t)bits[4];
    out->dom_any = any[2];
    out->dow_any = any[4];
    return 0;
}

static bool day_matches(const sv_cron *c, const struct tm *t)
{
    bool dom = c->dom >> t->tm_mday & 1, dow = c->dow >> t->tm_wday & 1;
    if (c->dom_any && c->dow_any)
        return true;
    if (c->dom_any)
        return dow;
    if (c->dow_any)
        return dom;
    return dom || dow; /* both restricted: either (as Vixie cron) */
}

int64_t sv_cron_next(const sv_cron *c, int64_t after_ms)
{
    time_t t = (time_t)(after_ms / 60000 + 1) * 60;
    if (after_ms < 0)
        t = 0;
    for (int guard = 0; guard < 200000; guard++) { /* > 5 years of day steps */
        struct tm tm;
        gmtime_r(&t, &tm);
        if (!(c->month >> (tm.tm_mon + 1) & 1)) {
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!day_matches(c, &tm)) {
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!(c->hour >> tm.tm_hour & 1)) {
            tm.tm_hour++;
            tm.tm_min = tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!(c->minute >> tm.tm_min & 1)) {
            t += 60;
            continue;
        }
        return (int64_t)t * 1000;
    }
    return -1; /* e.g. "0 0 31 2 *": never */
}

int sv_interval_parse(const char *s, int64_t *ms, sv_err *err)
{
    const char *p = s;
    int64_t v = 0;
    while (p && isdigit((unsigned char)*p) && v < 100000000)
        v = v * 10 + (*p++ - '0');
    int64_t unit = 0;
    if (p && p != s && p[0] && !p[1]) {
        switch (*p) {
        case 's': unit = 1000; break;
        case 'm': unit = 60000; break;
        case 'h': unit = 3600000; break;
        case 'd': unit = 86400000; break;
        }
    }
    if (!unit)
        return sv_fail(err, SV_EINVAL, "every: '%.40s' is not an interval: use a number and s, m, h or d (30s, 15m, "
                                       "6h, 1d)", s ? s : "");
    if (v < 1 || v * unit > 366LL * 86400000)
        return sv_fail(err, SV_EINVAL, "every: '%.40s' must be between 1s and 366d", s);
    *ms = v * unit;
    return 0;
}

/* ---- retention --------------------------------------------------------------------- */

typedef struct ent { int64_t t; size_t i; } ent;

static int cmp_desc(const void *a, const void *b)
{
    const ent *x = a, *y = b;
    return x->t > y->t ? -1 : x->t < y->t ? 1 : (x->i < y->i ? -1 : 1);
}

static int64_t bucket(int rule, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    int64_t y = tm.tm_year + 1900;
    switch (rule) {
    case 1: return ((y * 100 + tm.tm_mon + 1) * 100 + tm.tm_mday) * 100 + tm.tm_hour; /* hourly */
    case 2: return (y * 100 + tm.tm_mon + 1) * 100 + tm.tm_mday;                     /* daily */
    case 3: {                                                                          /* weekly (ISO) */
        char buf[16];
        strftime(buf, sizeof buf, "%G%V", &tm);
        return atoll(buf);
    }
    case 4: return y * 100 + tm.tm_mon + 1; /* monthly */
    default: return y;                      /* yearly */
    }
}

void sv_retention_apply(const sv_retention *r, const int64_t *times, size_t n, bool *keep)
{
    int limits[6] = {r->keep_last, r->keep_hourly, r->keep_daily, r->keep_weekly, r->keep_monthly, r->keep_yearly};
    bool any = false;
    for (int k = 0; k < 6; k++)
        any |= limits[k] > 0;
    for (size_t i = 0; i < n; i++)
        keep[i] = !any;
    if (!any || n == 0)
        return;
    ent *e = malloc(n * sizeof *e);
    if (!e) { /* fail closed: keep everything */
        for (size_t i = 0; i < n; i++)
            keep[i] = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        e[i] = (ent){times[i], i};
    qsort(e, n, sizeof *e, cmp_desc);
    for (size_t i = 0; i < n && (int)i < limits[0]; i++)
        keep[e[i].i] = true;
    for (int rule = 1; rule < 6; rule++) {
        int left = limits[rule];
        bool have_last = false;
        int64_t last = 0;
        for (size_t i = 0; i < n && left > 0; i++) {
            int64_t b = bucket(rule, e[i].t);
            if (have_last && b == last)
                continue;
            keep[e[i].i] = true; /* the newest in a new period */
            last = b;
            have_last = true;
            left--;
        }
    }
    free(e);
}
