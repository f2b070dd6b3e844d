/* Binary encoding: random round trips (fixed seed), every truncation of a
 * valid encoding, bad versions and bit flips. */
#include <math.h>

#include "test_util.h"

void rnd_object(uint64_t *seed, const sv_schema *s, sv_buf *b);

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
