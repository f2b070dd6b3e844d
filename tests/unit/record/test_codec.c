/* Binary encoding: random round trips (fixed seed), every truncation of a
 * valid encoding, bad versions and bit flips. */
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

static void roundtrip_random(void **st)
{
    (void)st;
    sv_schema *s = test_schema();
    sv_record *r = sv_record_new(), *r2 = sv_record_new();
    sv_buf in = {0}, enc = {0}, enc2 = {0}, j1 = {0}, j2 = {0};
    uint64_t seed = 0x5eed;
    for (int iter = 0; iter < 5000; iter++) {
        in.len = enc.len = enc2.len = j1.len = j2.len = 0;
        rnd_object(&seed, s, &in);
        sv_err err = {0};
        int rc = sv_record_parse_json(r, s, (char *)in.data, in.len, NULL, &err);
        if (rc)
            fprintf(stderr, "%.*s\n%s\n", (int)in.len, in.data, err.msg);
        assert_int_equal(rc, 0);
        r->creation_time = (int64_t)rnd_next(&seed);
        r->update_time = -(int64_t)rnd_below(&seed, 1000);
        for (int i = 0; i < 16; i++)
            r->id.b[i] = (uint8_t)rnd_next(&seed);
        assert_int_equal(sv_record_encode(r, s, &enc, &err), 0);
        r2->id = r->id;
        rc = sv_record_decode(r2, s, enc.data, enc.len, &err);
        if (rc)
            fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, 0);
        assert_int_equal(r2->creation_time, r->creation_time);
        assert_int_equal(r2->update_time, r->update_time);
        assert_int_equal(sv_record_encode(r2, s, &enc2, &err), 0);
        assert_int_equal(enc.len, enc2.len);
        assert_memory_equal(enc.data, enc2.data, enc.len);
        assert_int_equal(sv_record_to_json(r, s, NULL, "t", &j1), 0);
        assert_int_equal(sv_record_to_json(r2, s, NULL, "t", &j2), 0);
        assert_int_equal(j1.len, j2.len);
        assert_memory_equal(j1.data, j2.data, j1.len);
        assert_true(sv_json_valid((char *)j1.data, j1.len));
        /* the output parses back to the same record (server fields aside) */
        sv_record *r3 = sv_record_new();
        sv_object_route rt;
        rc = sv_record_parse_json(r3, s, (char *)j1.data, j1.len, &rt, &err);
        if (rc)
            fprintf(stderr, "%.*s\n%s\n", (int)j1.len, j1.data, err.msg);
        assert_int_equal(rc, 0);
        r3->creation_time = r->creation_time;
        r3->update_time = r->update_time;
        enc2.len = 0;
        assert_int_equal(sv_record_encode(r3, s, &enc2, &err), 0);
        assert_int_equal(enc.len, enc2.len);
        assert_memory_equal(enc.data, enc2.data, enc.len);
        sv_record_free(r3);
    }
    sv_buf_free(&in);
    sv_buf_free(&enc);
    sv_buf_free(&enc2);
    sv_buf_free(&j1);
    sv_buf_free(&j2);
    sv_record_free(r);
    sv_record_free(r2);
    sv_schema_free(s);
}

static void truncations(void **st)
{
    (void)st;
    sv_schema *s = test_schema();
    sv_record *r = sv_record_new(), *r2 = sv_record_new();
    sv_buf in = {0}, enc = {0};
    uint64_t seed = 99;
    for (int iter = 0; iter < 40; iter++) {
        in.len = enc.len = 0;
        rnd_object(&seed, s, &in);
        sv_err err;
        assert_int_equal(sv_record_parse_json(r, s, (char *)in.data, in.len, NULL, &err), 0);
        assert_int_equal(sv_record_encode(r, s, &enc, &err), 0);
        for (size_t n = 0; n < enc.len; n++) {
            /* an exact-size copy so ASan catches any read past n */
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, enc.data, n);
            assert_int_equal(sv_record_decode(r2, s, copy, n, &err), SV_ECORRUPT);
            free(copy);
        }
        assert_int_equal(sv_record_decode(r2, s, enc.data, enc.len, &err), 0);
        /* trailing garbage */
        sv_buf_putc(&enc, 0);
        assert_int_equal(sv_record_decode(r2, s, enc.data, enc.len, &err), SV_ECORRUPT);
        assert_non_null(strstr(err.msg, "trailing bytes"));
        /* unknown versions */
        for (int v = 0; v < 256; v++) {
            if (v == SV_RECORD_FORMAT_VERSION)
                continue;
            enc.data[0] = (uint8_t)v;
            assert_int_equal(sv_record_decode(r2, s, enc.data, enc.len - 1, &err), SV_ECORRUPT);
            assert_non_null(strstr(err.msg, "unknown format version"));
        }
    }
    sv_buf_free(&in);
    sv_buf_free(&enc);
    sv_record_free(r);
    sv_record_free(r2);
    sv_schema_free(s);
}

/* Decoding under a different schema: types and dimensions must match. */
static void schema_mismatch(void **st)
{
    (void)st;
    sv_schema *s = test_schema();
    const char *other = "{\"name\":\"Article\",\"vectors\":{\"default\":{\"dim\":5}},"
                        "\"properties\":[{\"name\":\"title\",\"type\":\"int\"}]}";
    sv_schema *s2;
    sv_err err;
    assert_int_equal(sv_schema_parse(other, strlen(other), &s2, &err), 0);
    sv_record *r = sv_record_new();
    sv_buf enc = {0};
    const char *o = "{\"vector\":[1,2,3,4]}";
    assert_int_equal(sv_record_parse_json(r, s, o, strlen(o), NULL, &err), 0);
    assert_int_equal(sv_record_encode(r, s, &enc, &err), 0);
    assert_int_equal(sv_record_decode(r, s2, enc.data, enc.len, &err), SV_ECORRUPT);
    assert_non_null(strstr(err.msg, "dimension"));
    o = "{\"properties\":{\"title\":\"x\"}}";
    enc.len = 0;
    assert_int_equal(sv_record_parse_json(r, s, o, strlen(o), NULL, &err), 0);
    assert_int_equal(sv_record_encode(r, s, &enc, &err), 0);
    assert_int_equal(sv_record_decode(r, s2, enc.data, enc.len, &err), SV_ECORRUPT);
    assert_non_null(strstr(err.msg, "type differs"));
    sv_buf_free(&enc);
    sv_record_free(r);
    sv_schema_free(s);
    sv_schema_free(s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip_random),
        cmocka_unit_test(truncations),
        cmocka_unit_test(schema_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
