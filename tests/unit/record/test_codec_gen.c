/* Random valid objects for the test schema (shared by codec and mutation tests). */
#include <math.h>

#include "test_util.h"

static void rnd_text(uint64_t *seed, sv_buf *b)
{
    static const char *pieces[] = {"a", "Z", " ", "\\\"", "\\\\", "\\n", "\\u00e9", "\\ud83d\\ude00", "\xc3\xa9",
                                   "\xe2\x82\xac", "{", "]", "\\/", "\\t", "\\u0001"};
    sv_buf_putc(b, '"');
    int n = (int)rnd_below(seed, 12);
    for (int i = 0; i < n; i++)
        sv_buf_append_str(b, pieces[rnd_below(seed, 15)]);
    sv_buf_putc(b, '"');
}

static void rnd_float(uint64_t *seed, sv_buf *b)
{
    switch (rnd_below(seed, 4)) {
    case 0: sv_buf_printf(b, "%d", (int)rnd_below(seed, 2000) - 1000); break;
    case 1: sv_buf_printf(b, "%.9g", ((double)(rnd_next(seed) >> 11) / 9007199254740992.0) * 2 - 1); break;
    case 2: sv_buf_printf(b, "%.17g", ((double)(rnd_next(seed) >> 11) / 9007199254740992.0) * 2 - 1); break;
    default: {
        uint32_t bits = (uint32_t)rnd_next(seed);
        float f;
        memcpy(&f, &bits, 4);
        if (!isfinite(f))
            f = 1.5f;
        sv_buf_printf(b, "%.9g", (double)f);
    }
    }
}

static void rnd_elem(uint64_t *seed, sv_prop_type t, sv_buf *b)
{
    switch (t) {
    case SV_TYPE_TEXT: rnd_text(seed, b); break;
    case SV_TYPE_INT: {
        int64_t v = (int64_t)rnd_next(seed) >> rnd_below(seed, 64);
        sv_buf_printf(b, "%lld", (long long)v);
        break;
    }
    case SV_TYPE_NUMBER: {
        uint64_t bits = rnd_next(seed);
        double d;
        memcpy(&d, &bits, 8);
        if (!isfinite(d))
            d = -0.0;
        sv_buf_printf(b, "%.17g", d);
        break;
    }
    case SV_TYPE_BOOLEAN: sv_buf_append_str(b, rnd_below(seed, 2) ? "true" : "false"); break;
    case SV_TYPE_DATE: {
        int64_t ms = SV_DATE_MIN_MS + (int64_t)(rnd_next(seed) % (uint64_t)(SV_DATE_MAX_MS - SV_DATE_MIN_MS));
        char d[32];
        sv_format_date_ms(ms, d);
        sv_buf_printf(b, "\"%.24s\"", d);
        break;
    }
    case SV_TYPE_UUID: {
        sv_uuid u;
        for (int i = 0; i < 16; i++)
            u.b[i] = (uint8_t)rnd_next(seed);
        char s[37];
        sv_uuid_format(&u, s);
        sv_buf_printf(b, "\"%s\"", s);
        break;
    }
    case SV_TYPE_OBJECT:
        sv_buf_append_str(b, "{\"k\":");
        rnd_text(seed, b);
        sv_buf_printf(b, ",\"n\":[%d,{\"z\":null}]}", (int)rnd_below(seed, 100));
        break;
    }
}

/* A random object JSON for the test schema. */
void rnd_object(uint64_t *seed, const sv_schema *s, sv_buf *b);
void rnd_object(uint64_t *seed, const sv_schema *s, sv_buf *b)
{
    sv_buf_append_str(b, "{");
    bool first = true;
#define SEP() (first ? (first = false, "") : ",")
    if (rnd_below(seed, 4)) {
        sv_buf_printf(b, "%s\"vector\":[", SEP());
        for (uint32_t i = 0; i < s->vector_dim; i++) {
            if (i)
                sv_buf_putc(b, ',');
            rnd_float(seed, b);
        }
        sv_buf_putc(b, ']');
    }
    if (rnd_below(seed, 2)) {
        sv_buf_printf(b, "%s\"namedVectors\":{\"title\":[", SEP());
        for (uint32_t i = 0; i < s->named[0].dim; i++) {
            if (i)
                sv_buf_putc(b, ',');
            rnd_float(seed, b);
        }
        sv_buf_append_str(b, "]}");
    }
    if (rnd_below(seed, 2)) {
        sv_buf_printf(b, "%s\"multiVectors\":{\"colbert\":[", SEP());
        uint32_t rows = 1 + rnd_below(seed, 4);
        for (uint32_t r = 0; r < rows; r++) {
            sv_buf_append_str(b, r ? ",[" : "[");
            for (uint32_t i = 0; i < s->multi[0].dim; i++) {
                if (i)
                    sv_buf_putc(b, ',');
                rnd_float(seed, b);
            }
            sv_buf_putc(b, ']');
        }
        sv_buf_append_str(b, "]}");
    }
    sv_buf_printf(b, "%s\"properties\":{", SEP());
    bool pfirst = true;
    for (uint32_t i = 0; i < s->n_props; i++) {
        uint32_t dice = rnd_below(seed, 4);
        if (dice == 0)
            continue;
        sv_buf_printf(b, "%s\"%s\":", pfirst ? "" : ",", s->props[i].name);
        pfirst = false;
        if (dice == 1) {
            sv_buf_append_str(b, "null");
            continue;
        }
        if (s->props[i].array) {
            sv_buf_putc(b, '[');
            uint32_t n = rnd_below(seed, 5);
            for (uint32_t j = 0; j < n; j++) {
                if (j)
                    sv_buf_putc(b, ',');
                rnd_elem(seed, s->props[i].type, b);
            }
            sv_buf_putc(b, ']');
        } else {
            rnd_elem(seed, s->props[i].type, b);
        }
    }
    if (rnd_below(seed, 2)) {
        sv_buf_printf(b, "%s\"undeclared\":", pfirst ? "" : ",");
        rnd_elem(seed, SV_TYPE_OBJECT, b);
        sv_buf_append_str(b, ",\"u2\":[true,1.5e300,\"x\"]");
    }
    sv_buf_append_str(b, "}}");
#undef SEP
}

