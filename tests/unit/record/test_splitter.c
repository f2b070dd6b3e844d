/* Batch splitter: boundaries anywhere, strings with braces, errors. */
#include "test_util.h"

typedef struct collect {
    sv_buf all; /* objects joined by '\n' */
    int n;
    int stop_after;
} collect;

static int on_obj(const char *json, size_t len, void *ud)
{
    collect *c = ud;
    sv_buf_append(&c->all, json, len);
    sv_buf_putc(&c->all, '\n');
    c->n++;
    if (c->stop_after && c->n == c->stop_after)
        return 42;
    return 0;
}

/* Feeds body in chunks chosen by mode (0 whole, 1 byte by byte, 2 random). */
static int run(bool ndjson, const char *body, size_t len, size_t max, int mode, uint64_t *seed, collect *c,
               sv_err *err)
{
    sv_batch_splitter *sp = sv_batch_splitter_new(ndjson, max);
    assert_non_null(sp);
    int rc = 0;
    size_t i = 0;
    while (i < len && !rc) {
        size_t n = mode == 0 ? len : mode == 1 ? 1 : 1 + rnd_below(seed, 17);
        if (n > len - i)
            n = len - i;
        /* a private copy, so reading past the chunk would trip ASan */
        char *chunk = malloc(n);
        memcpy(chunk, body + i, n);
        rc = sv_batch_splitter_feed(sp, chunk, n, on_obj, c, err);
        free(chunk);
        i += n;
    }
    if (!rc)
        rc = sv_batch_splitter_finish(sp, on_obj, c, err);
    sv_batch_splitter_free(sp);
    return rc;
}

static void check_all_modes(bool ndjson, const char *body, const char *want, int nwant)
{
    uint64_t seed = 7;
    for (int mode = 0; mode < 3; mode++) {
        for (int rep = 0; rep < (mode == 2 ? 50 : 1); rep++) {
            collect c = {0};
            sv_err err = {0};
            int rc = run(ndjson, body, strlen(body), 1 << 20, mode, &seed, &c, &err);
            if (rc)
                fprintf(stderr, "mode %d: %s\n", mode, err.msg);
            assert_int_equal(rc, 0);
            assert_int_equal(c.n, nwant);
            sv_buf_cstr(&c.all);
            assert_string_equal((char *)c.all.data, want);
            sv_buf_free(&c.all);
        }
    }
}

static void ndjson_ok(void **st)
{
    (void)st;
    check_all_modes(true, "{\"a\":1}\n{\"b\":\"}{\\\"\"}\r\n\n  \n{\"c\":[{}]}", "{\"a\":1}\n{\"b\":\"}{\\\"\"}\n{\"c\":[{}]}\n",
                    3);
    check_all_modes(true, "", "", 0);
    check_all_modes(true, "\n\r\n \t\n", "", 0);
    check_all_modes(true, "{\"s\":\"a\\\\\"}\n{}\n", "{\"s\":\"a\\\\\"}\n{}\n", 2);
    check_all_modes(true, "  {\"x\":\"[[[\"}  \t\r\n", "{\"x\":\"[[[\"}\n", 1);
}

static void json_ok(void **st)
{
    (void)st;
    check_all_modes(false, "{\"objects\":[{\"a\":1},{\"b\":\"}]\\\"\"}]}", "{\"a\":1}\n{\"b\":\"}]\\\"\"}\n", 2);
    check_all_modes(false, " \r\n{ \"objects\" : [ ] } \n", "", 0);
    check_all_modes(false,
                    "{\"consistency\":\"ALL\",\"n\":-1.5e3,\"t\":true,\"o\":{\"objects\":[1]},\"a\":[\"]\"],"
                    "\"objects\":[ {\"x\":{}} ,\n{\"y\":[]}],\"z\":null}",
                    "{\"x\":{}}\n{\"y\":[]}\n", 2);
    check_all_modes(false, "{\"objec\\u0074s\":1,\"objects\":[{}]}", "{}\n", 1);
}

static void expect_err(bool ndjson, const char *body, size_t max, int code, const char *msg_part)
{
    uint64_t seed = 3;
    for (int mode = 0; mode < 3; mode++) {
        collect c = {0};
        sv_err err = {0};
        int rc = run(ndjson, body, strlen(body), max, mode, &seed, &c, &err);
        if (rc != code || !strstr(err.msg, msg_part))
            fprintf(stderr, "body %s mode %d\n  rc=%d msg=%s\n  want %d containing '%s'\n", body, mode, rc, err.msg,
                    code, msg_part);
        assert_int_equal(rc, code);
        assert_non_null(strstr(err.msg, msg_part));
        sv_buf_free(&c.all);
    }
}

static void errors(void **st)
{
    (void)st;
    expect_err(true, "{}\nhello\n", 100, SV_EPARSE, "expected '{' (each NDJSON line must be one JSON object) at byte 3 (line 2)");
    expect_err(true, "{}{}\n", 100, SV_EPARSE, "expected a newline after the object (one object per line) at byte 2");
    expect_err(true, "{\"a\":1\n}\n", 100, SV_EPARSE, "line ends before the object is closed");
    expect_err(true, "{\"a\":\"x\ny\"}\n", 100, SV_EPARSE, "line ends inside a string");
    expect_err(true, "{\"a\":1", 100, SV_EPARSE, "body ends inside an object");
    expect_err(true, "{\"a\":[1}\n", 100, SV_EPARSE, "'}' closes an array at byte 7");
    expect_err(true, "{}\n{\"a\":\"0123456789\"}\n", 10, SV_ETOOBIG,
               "object starting at byte 3 is larger than the limit of 10 bytes");
    expect_err(false, "", 100, SV_EPARSE, "empty body");
    expect_err(false, "[{}]", 100, SV_EPARSE, "expected '{' (body must be {\"objects\": [...]}) at byte 0");
    expect_err(false, "{\"objects\":{}}", 100, SV_EPARSE, "\"objects\" must be an array of objects at byte 11");
    expect_err(false, "{\"objects\":[{},1]}", 100, SV_EPARSE, "objects[1] is not a JSON object at byte 15");
    expect_err(false, "{\"objects\":[{} {}]}", 100, SV_EPARSE, "expected ',' or ']' in \"objects\" at byte 15");
    expect_err(false, "{\"other\":[]}", 100, SV_EPARSE, "no \"objects\" key");
    expect_err(false, "{\"objects\":[{}]", 100, SV_EPARSE, "body ends before the closing '}'");
    expect_err(false, "{\"objects\":[{}]}x", 100, SV_EPARSE, "unexpected data after the body's closing '}' at byte 16");
    expect_err(false, "{\"objects\":[],\"objects\":[]}", 100, SV_EPARSE, "\"objects\" given twice");
    expect_err(false, "{\"objects\":[{\"a\":\"0123456789\"}]}", 10, SV_ETOOBIG, "object starting at byte 12");
    expect_err(false, "{\"objects\" [] }", 100, SV_EPARSE, "expected ':'");
    expect_err(false, "{\"objects\":[{\"a\":1}]", 100, SV_EPARSE, "body ends");
    /* the first problem in byte order wins, however the body is chunked
     * (found by fuzz_splitter) */
    expect_err(true, "{\"a\":\"0123456789\n\"}", 8, SV_ETOOBIG, "larger than the limit of 8 bytes");
    expect_err(true, "{\"a\":\"0123456789\n\"}", 100, SV_EPARSE, "line ends inside a string (objects must be on one line) at byte 16");
    expect_err(true, "{\"a\":1}\n{", 1, SV_ETOOBIG, "object starting at byte 0");
    /* the callback's code stops the feed */
    collect c = {.stop_after = 2};
    sv_err err;
    uint64_t seed = 1;
    assert_int_equal(run(true, "{}\n{}\n{}\n", 9, 100, 0, &seed, &c, &err), 42);
    assert_int_equal(c.n, 2);
    sv_buf_free(&c.all);
}

/* Many random objects, random chunking: every object comes out intact. */
static void random_bodies(void **st)
{
    (void)st;
    uint64_t seed = 12345;
    const char *frag[] = {"\"x\"", "\"}\"", "\"{\"", "\"\\\"}\"", "\"\\\\\"", "[1,2]", "{\"k\":{}}", "-1.5e3", "null",
                          "\"]\"", "\"\\u005d\""};
    for (int iter = 0; iter < 200; iter++) {
        bool ndjson = iter & 1;
        sv_buf body = {0}, want = {0};
        int n = (int)rnd_below(&seed, 20);
        if (!ndjson)
            sv_buf_append_str(&body, "{\"objects\":[");
        for (int i = 0; i < n; i++) {
            size_t start = want.len;
            sv_buf_append_str(&want, "{");
            int m = (int)rnd_below(&seed, 5);
            for (int j = 0; j < m; j++)
                sv_buf_printf(&want, "%s\"f%d\":%s", j ? "," : "", j, frag[rnd_below(&seed, 11)]);
            sv_buf_append_str(&want, "}");
            if (!ndjson && i)
                sv_buf_append_str(&body, rnd_below(&seed, 2) ? "," : " ,\n ");
            sv_buf_append(&body, want.data + start, want.len - start);
            if (ndjson)
                sv_buf_append_str(&body, rnd_below(&seed, 2) ? "\n" : " \r\n\n");
            sv_buf_putc(&want, '\n');
        }
        if (!ndjson)
            sv_buf_append_str(&body, "]}");
        sv_buf_cstr(&body);
        sv_buf_cstr(&want);
        check_all_modes(ndjson, (char *)body.data, n ? (char *)want.data : "", n);
        sv_buf_free(&body);
        sv_buf_free(&want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ndjson_ok),
        cmocka_unit_test(json_ok),
        cmocka_unit_test(errors),
        cmocka_unit_test(random_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
