/* libFuzzer: sv_record_parse_json (+ peek_route); accepted objects must
 * encode, decode and print as valid JSON that parses back identically. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sv_record *r, *r2, *r3;
    static sv_buf enc, enc2;
    sv_buf out = {0};
    if (!r) {
        r = sv_record_new();
        r2 = sv_record_new();
        r3 = sv_record_new();
    }
    const sv_schema *s = fuzz_schema();
    sv_err err;
    sv_object_route peek, rt;
    int prc = sv_record_peek_route((const char *)data, size, &peek, &err);
    if (sv_record_parse_json(r, s, (const char *)data, size, &rt, &err))
        return 0;
    /* what the full parse accepts, the peek must route the same way */
    if (prc || peek.tenant.len != rt.tenant.len || peek.tenant.ptr != rt.tenant.ptr ||
        peek.collection.len != rt.collection.len || peek.collection.ptr != rt.collection.ptr) {
        fprintf(stderr, "peek_route disagrees with parse_json (rc %d)\n", prc);
        abort();
    }
    enc.len = enc2.len = 0;
    if (sv_record_encode(r, s, &enc, &err))
        abort();
    r2->id = r->id;
    if (sv_record_decode(r2, s, enc.data, enc.len, &err)) {
        fprintf(stderr, "decode of our own encoding failed: %s\n", err.msg);
        abort();
    }
    /* varying prefix: see fuzz_decode.c */
    for (size_t i = 0; i < size % 1024; i++)
        sv_buf_putc(&out, ' ');
    size_t pre = out.len;
    if (sv_record_to_json(r2, s, NULL, "t", &out))
        abort();
    memmove(out.data, out.data + pre, out.len - pre);
    out.len -= pre;
    must_be_json(&out);
    if (sv_record_parse_json(r3, s, (const char *)out.data, out.len, NULL, &err)) {
        fprintf(stderr, "output does not parse back: %s\n%.*s\n", err.msg, (int)out.len, out.data);
        abort();
    }
    if (sv_record_encode(r3, s, &enc2, &err) || enc2.len != enc.len || memcmp(enc.data, enc2.data, enc.len)) {
        fprintf(stderr, "round trip changed the record: %.*s\n", (int)out.len, out.data);
        abort();
    }
    sv_buf_free(&out);
    return 0;
}
