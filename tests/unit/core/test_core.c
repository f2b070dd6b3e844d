#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <unistd.h>
#include <stdbool.h>

#include "core.h"

static void uuid_roundtrip(void **state)
{
    sv_uuid u;
    const char *s = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
    assert_int_equal(sv_uuid_parse(s, strlen(s), &u), 0);
    char out[37];
    sv_uuid_format(&u, out);
    assert_string_equal(out, "6f9619ff-8b86-d011-b42d-00c04fc964ff");
    assert_int_equal(sv_uuid_parse("6f9619ff8b86-d011-b42d-00c04fc964ff0", 36, &u), SV_EINVAL);
    assert_int_equal(sv_uuid_parse("6f9619ff-8b86-d011-b42d-00c04fc964fg", 36, &u), SV_EINVAL);
    assert_int_equal(sv_uuid_parse("short", 5, &u), SV_EINVAL);
    /* every digit position refuses every byte that is not a hex digit */
    for (int pos = 0; pos < 36; pos++) {
        if (pos == 8 || pos == 13 || pos == 18 || pos == 23)
            continue;
        for (int c = 0; c < 256; c++) {
            char t[37];
            memcpy(t, "6f9619ff-8b86-d011-b42d-00c04fc964ff", 37);
            t[pos] = (char)c;
            bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            assert_int_equal(sv_uuid_parse(t, 36, &u), hex ? 0 : SV_EINVAL);
        }
    }
    sv_uuid a, b;
    sv_uuid_v4(&a);
    sv_uuid_v4(&b);
    assert_int_not_equal(sv_uuid_cmp(&a, &b), 0);
    assert_int_equal(a.b[6] >> 4, 4);
}

static void grow(void **state)
{
    int *v = NULL;
    size_t cap = 0, n = 0;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(sv_grow(&v, &cap, n + 1, sizeof *v), 0);
        assert_true(cap >= n + 1);
        v[n++] = i;
    }
    for (int i = 0; i < 1000; i++)
        assert_int_equal(v[i], i); /* contents kept across growth */
    assert_int_equal(cap, 1024);
    size_t before = cap;
    assert_int_equal(sv_grow(&v, &cap, 10, sizeof *v), 0); /* never shrinks */
    assert_int_equal(cap, before);
    assert_int_equal(sv_grow(&v, &cap, SIZE_MAX / 2, sizeof *v), SV_ENOMEM); /* overflow refused */
    assert_int_equal(cap, before);
    assert_int_equal(v[999], 999);
    free(v);
}

static void names(void **state)
{
    sv_err err = {0};
    assert_int_equal(sv_check_collection_name("Article_2", &err), 0);
    assert_int_equal(sv_check_collection_name("2Article", &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "first character"));
    assert_int_equal(sv_check_collection_name("../etc", &err), SV_EINVAL);
    assert_int_equal(sv_check_collection_name("", &err), SV_EINVAL);
    assert_int_equal(sv_check_export_id("my-export_1", &err), 0);
    assert_int_equal(sv_check_export_id("My", &err), SV_EINVAL);
    assert_int_equal(sv_check_tenant_name("tenant-1", &err), 0);
    assert_int_equal(sv_check_tenant_name("a/b", &err), SV_EINVAL);
    assert_int_equal(sv_check_snapshot_name("-x", &err), SV_EINVAL);
    assert_int_equal(sv_check_snapshot_name("snap-1", &err), 0);
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[199] = 0;
    assert_int_equal(sv_check_collection_name(longname, &err), SV_EINVAL);
}

static void buffers(void **state)
{
    sv_buf b = {0};
    for (int i = 0; i < 1000; i++)
        assert_int_equal(sv_buf_printf(&b, "%d,", i), 0);
    assert_true(b.len > 1000);
    assert_memory_equal(b.data, "0,1,2,", 6);
    assert_string_equal(sv_buf_cstr(&b) + b.len - 4, "999,");
    sv_buf_reset(&b);
    assert_int_equal(sv_buf_json_string(&b, "a\"b\\c\n\x01", 7), 0);
    assert_string_equal(sv_buf_cstr(&b), "\"a\\\"b\\\\c\\n\\u0001\"");
    /* valid UTF-8 stays; a lone lead byte, a stray continuation, an overlong
     * and a surrogate each become U+FFFD */
    sv_buf_reset(&b);
    const char *u = "\xC3\x84-\xC3-\x80-\xC0\xAF-\xED\xA0\x80-\xF0\x9F\x9A\x80";
    assert_int_equal(sv_buf_json_string(&b, u, strlen(u)), 0);
    assert_string_equal(sv_buf_cstr(&b), "\"\xC3\x84-\xEF\xBF\xBD-\xEF\xBF\xBD-\xEF\xBF\xBD\xEF\xBF\xBD-"
                                         "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD-\xF0\x9F\x9A\x80\"");
    sv_buf_free(&b);
    assert_null(b.data);
}

static void sizes(void **state)
{
    int64_t v;
    assert_int_equal(sv_parse_size("64Mi", &v), 0);
    assert_int_equal(v, 64 * 1024 * 1024);
    assert_int_equal(sv_parse_size("2G", &v), 0);
    assert_int_equal(v, 2000000000LL);
    assert_int_equal(sv_parse_size("12x", &v), SV_EINVAL);
    assert_int_equal(sv_parse_size("", &v), SV_EINVAL);
    bool b;
    assert_int_equal(sv_parse_bool("false", &b), 0);
    assert_false(b);
    assert_int_equal(sv_parse_bool("nah", &b), SV_EINVAL);
}

static void times(void **state)
{
    char out[40];
    sv_format_time_ms(0, out, sizeof out);
    assert_string_equal(out, "1970-01-01T00:00:00.000Z");
    sv_format_time_ms(1700000000123LL, out, sizeof out);
    assert_string_equal(out, "2023-11-14T22:13:20.123Z");
    sv_format_time_ms(-1, out, sizeof out);
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
}

static void errors(void **state)
{
    sv_err err = {0};
    assert_int_equal(sv_fail(&err, SV_ENOTFOUND, "collection %s", "X"), SV_ENOTFOUND);
    assert_int_equal(sv_err_wrap(&err, "get"), SV_ENOTFOUND);
    assert_string_equal(err.msg, "get: collection X");
    assert_int_equal(sv_fail(NULL, SV_EIO, "ignored"), SV_EIO);
}

static void files(void **state)
{
    const char *base = getenv("SV_TEST_TMP") ? getenv("SV_TEST_TMP") : "/tmp";
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/core_files/a/b", base);
    sv_err err = {0};
    assert_int_equal(sv_mkdirs(dir, &err), 0);
    snprintf(path, sizeof path, "%s/x.json", dir);
    assert_int_equal(sv_write_file_atomic(path, "{\"a\":1}", 7, &err), 0);
    char *data;
    size_t len;
    assert_int_equal(sv_read_file(path, &data, &len, &err), 0);
    assert_int_equal(len, 7);
    assert_string_equal(data, "{\"a\":1}");
    free(data);
    assert_int_equal(sv_dir_bytes(dir), 7);
    snprintf(dir, sizeof dir, "%s/core_files", base);
    assert_int_equal(sv_rmtree(dir, &err), 0);
    assert_false(sv_path_exists(dir));
    assert_int_equal(sv_read_file(path, &data, &len, &err), SV_ENOTFOUND);
}

/* SHA-256: the FIPS 180-2 "abc" vector, streaming in pieces, a file. */
static void sha256(void **state)
{
    const char *abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    char hex[65];
    sv_sha256_ctx *c = sv_sha256_new();
    assert_non_null(c);
    sv_sha256_update(c, "a", 1);
    sv_sha256_update(c, "bc", 2);
    sv_sha256_final_hex(c, hex);
    assert_string_equal(hex, abc);
    assert_true(sv_sha256_valid_hex(abc));
    assert_false(sv_sha256_valid_hex("BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_false(sv_sha256_valid_hex("ba78"));
    assert_false(sv_sha256_valid_hex(NULL));
    sv_sha256_free(NULL);
    const char *base = getenv("SV_TEST_TMP") ? getenv("SV_TEST_TMP") : "/tmp";
    char path[600];
    snprintf(path, sizeof path, "%s/core_sha256_%d", base, (int)getpid());
    sv_err err = {0};
    assert_int_equal(sv_write_file_atomic(path, "abc", 3, &err), 0);
    int64_t size = 0;
    _Atomic int64_t progress = 0;
    assert_int_equal(sv_sha256_file(path, hex, &size, &progress, &err), 0);
    assert_string_equal(hex, abc);
    assert_int_equal(size, 3);
    assert_int_equal(progress, 3);
    unlink(path);
    assert_int_equal(sv_sha256_file(path, hex, NULL, NULL, &err), SV_ENOTFOUND);
}

/* The Bloom filter: no false negative ever; false positives near the
 * documented 0.1% at its sized load (asserted < 1%). */
static void bloom(void **state)
{
    (void)state;
    sv_bloom b;
    assert_int_equal(sv_bloom_init(&b, 100000), 0);
    for (uint64_t i = 0; i < 100000; i++)
        sv_bloom_add(&b, sv_hash64(&i, sizeof i));
    for (uint64_t i = 0; i < 100000; i++)
        assert_true(sv_bloom_maybe(&b, sv_hash64(&i, sizeof i)));
    size_t fp = 0;
    for (uint64_t i = 100000; i < 200000; i++)
        fp += sv_bloom_maybe(&b, sv_hash64(&i, sizeof i));
    assert_true(fp < 1000);
    sv_bloom_free(&b);
    sv_bloom_free(&b); /* twice is fine */
    assert_false(sv_bloom_maybe(&b, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uuid_roundtrip), cmocka_unit_test(names), cmocka_unit_test(buffers),
        cmocka_unit_test(sizes), cmocka_unit_test(times),          cmocka_unit_test(errors), cmocka_unit_test(files),
        cmocka_unit_test(sha256), cmocka_unit_test(grow), cmocka_unit_test(bloom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
