/* Deterministic mutation fuzzing (no libFuzzer needed): random byte
 * mutations of valid objects, encodings and batch bodies. Whatever the
 * input, nothing may crash or read out of bounds (CI runs this under ASan),
 * and whatever is accepted must round-trip to valid JSON. */
#include "test_util.h"

void rnd_object(uint64_t *seed, const sv_schema *s, sv_buf *b);

static void mutate(uint64_t *seed, sv_buf *b)
{
    static const char *tokens[] = {"\"", "\\", "{", "}", "[", "]", ",", ":", "null", "1e999", "-0", "\\ud800",
                                   "\\u00", "\xff", "\xc3", "1.5", "\"x\"", "true", "9223372036854775808", "\n"};
    int n = rnd_below(seed, 2) ? 1 : 1 + (int)rnd_below(seed, 4);
    for (int k = 0; k < n; k++) {
        size_t len = b->len;
        size_t pos = len ? rnd_below(seed, (uint32_t)len) : 0;
        switch (rnd_below(seed, 6)) {
        case 0: /* flip a bit */
            if (len)
                b->data[pos] ^= (uint8_t)(1u << rnd_below(seed, 8));
            break;
        case 1: /* random byte */
            if (len)
                b->data[pos] = (uint8_t)rnd_next(seed);
            break;
        case 2: /* delete a span */
            if (len) {
                size_t span = 1 + rnd_below(seed, 8);
                if (span > len - pos)
                    span = len - pos;
                memmove(b->data + pos, b->data + pos + span, len - pos - span);
                b->len -= span;
            }
            break;
        case 3: /* truncate */
            b->len = pos;
            break;
        default: { /* insert a token */
            const char *t = tokens[rnd_below(seed, 20)];
            size_t tl = strlen(t);
            sv_buf_reserve(b, tl);
            memmove(b->data + pos + tl, b->data + pos, len - pos);
            memcpy(b->data + pos, t, tl);
            b->len += tl;
        }
        }
    }
}

/* Copies into an exact-size heap block so ASan sees any overread. */
static char *exact_copy(const sv_buf *b)
{
    char *p = malloc(b->len ? b->len : 1);
    memcpy(p, b->data, b->len);
    return p;
}

static int count_obj(const char *json, size_t len, void *ud)
{
    /* The pieces must be what the parser is then given: check the route
     * peek on them (full parsing is covered by the first case). */
    (void)ud;
    sv_err err;
    sv_object_route rt;
    sv_record_peek_route(json, len, &rt, &err);
    return 0;
}

/* to_json into a fresh buffer behind a random prefix, so a short
 * reservation ends at the heap block's end where ASan sees it; the result
 * (without the prefix) is left in out. */
static int to_json_fresh(const sv_record *r, const sv_schema *s, uint64_t *seed, sv_buf *out)
{
    sv_buf fresh = {0};
    size_t pre = rnd_below(seed, 1024);
    for (size_t i = 0; i < pre; i++)
        sv_buf_putc(&fresh, ' ');
    int rc = sv_record_to_json(r, s, NULL, "t", &fresh);
    out->len = 0;
    sv_buf_append(out, fresh.data + pre, fresh.len - pre);
    sv_buf_free(&fresh);
    return rc;
}

static void mutate_all(void **st)
{
    (void)st;
    sv_schema *s = test_schema();
    sv_record *r = sv_record_new(), *r2 = sv_record_new();
    sv_buf base = {0}, base_enc = {0}, m = {0}, enc = {0}, out = {0};
    uint64_t seed = 0xdecafbad;
    long accepted_json = 0, accepted_bin = 0;
    const int iters = 200000;
    for (int iter = 0; iter < iters; iter++) {
        sv_err err;
        if (iter % 64 == 0) {
            base.len = 0;
            rnd_object(&seed, s, &base);
            if (sv_record_parse_json(r, s, (char *)base.data, base.len, NULL, &err))
                fail();
            base_enc.len = 0;
            assert_int_equal(sv_record_encode(r, s, &base_enc, &err), 0);
        }
        m.len = 0;
        sv_buf_append(&m, base.data, base.len);
        switch (iter % 3) {
        case 0: { /* object JSON */
            mutate(&seed, &m);
            char *c = exact_copy(&m);
            sv_object_route rt;
            sv_record_peek_route(c, m.len, &rt, &err);
            if (sv_record_parse_json(r, s, c, m.len, &rt, &err) == 0) {
                accepted_json++;
                enc.len = out.len = 0;
                assert_int_equal(sv_record_encode(r, s, &enc, &err), 0);
                int rc = sv_record_decode(r2, s, enc.data, enc.len, &err);
                if (rc)
                    fprintf(stderr, "%.*s\n%s\n", (int)m.len, c, err.msg);
                assert_int_equal(rc, 0);
                assert_int_equal(to_json_fresh(r2, s, &seed, &out), 0);
                assert_true(sv_json_valid((char *)out.data, out.len));
            }
            free(c);
            break;
        }
        case 1: { /* binary encoding */
            enc.len = 0;
            sv_buf_append(&enc, base_enc.data, base_enc.len);
            mutate(&seed, &enc);
            char *c = exact_copy(&enc);
            if (sv_record_decode(r2, s, c, enc.len, &err) == 0) {
                accepted_bin++;
                assert_int_equal(to_json_fresh(r2, s, &seed, &out), 0);
                if (!sv_json_valid((char *)out.data, out.len)) {
                    fprintf(stderr, "invalid JSON from decoded record: %.*s\n", (int)out.len, out.data);
                    fail();
                }
            } else {
                assert_int_equal(err.code, SV_ECORRUPT);
            }
            free(c);
            break;
        }
        default: { /* batch bodies, both shapes */
            bool nd = rnd_below(&seed, 2);
            sv_buf body = {0};
            if (!nd)
                sv_buf_append_str(&body, "{\"objects\":[");
            sv_buf_append(&body, base.data, base.len);
            sv_buf_append_str(&body, nd ? "\n" : ",");
            sv_buf_append(&body, base.data, base.len);
            if (!nd)
                sv_buf_append_str(&body, "]}");
            mutate(&seed, &body);
            sv_batch_splitter *sp = sv_batch_splitter_new(nd, 1 + rnd_below(&seed, 4000));
            void *ud[2] = {r, s};
            size_t i = 0;
            int rc = 0;
            while (i < body.len && !rc) {
                size_t n = 1 + rnd_below(&seed, 300);
                if (n > body.len - i)
                    n = body.len - i;
                char *c = malloc(n);
                memcpy(c, body.data + i, n);
                rc = sv_batch_splitter_feed(sp, c, n, count_obj, ud, &err);
                free(c);
                i += n;
            }
            if (!rc)
                sv_batch_splitter_finish(sp, count_obj, ud, &err);
            sv_batch_splitter_free(sp);
            sv_buf_free(&body);
        }
        }
    }
    fprintf(stderr, "accepted: %ld json, %ld binary of %d each\n", accepted_json, accepted_bin, iters / 3);
    /* the mutations must leave a fair share valid, or this tests nothing */
    assert_true(accepted_json > iters / 3 / 50);
    assert_true(accepted_bin > iters / 3 / 50);
    sv_buf_free(&base);
    sv_buf_free(&base_enc);
    sv_buf_free(&m);
    sv_buf_free(&enc);
    sv_buf_free(&out);
    sv_record_free(r);
    sv_record_free(r2);
    sv_schema_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mutate_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
