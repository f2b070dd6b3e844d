/* libFuzzer: the batch splitter. The first byte picks the shape, the limit
 * and the chunk sizes; every object handed out must be a balanced {...} and
 * the same objects must come out however the body is chunked. */
#include "fuzz_common.h"

typedef struct acc {
    sv_buf all;
} acc;

static int on_obj(const char *json, size_t len, void *ud)
{
    if (len < 2 || json[0] != '{' || json[len - 1] != '}')
        abort();
    acc *a = ud;
    sv_buf_append(&a->all, json, len);
    sv_buf_putc(&a->all, 0);
    return 0;
}

static int run(const uint8_t *data, size_t size, bool nd, size_t max, size_t chunk, acc *a)
{
    sv_batch_splitter *sp = sv_batch_splitter_new(nd, max);
    sv_err err;
    int rc = 0;
    for (size_t i = 0; i < size && !rc; i += chunk) {
        size_t n = size - i < chunk ? size - i : chunk;
        uint8_t *c = malloc(n);
        memcpy(c, data + i, n);
        rc = sv_batch_splitter_feed(sp, (const char *)c, n, on_obj, a, &err);
        free(c);
    }
    if (!rc)
        rc = sv_batch_splitter_finish(sp, on_obj, a, &err);
    sv_batch_splitter_free(sp);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    bool nd = ctl & 1;
    size_t max = (ctl & 2) ? 64 : 1 << 20;
    size_t chunk = 1 + (ctl >> 2);
    acc a = {{0}}, b = {{0}};
    int rc1 = run(data, size, nd, max, chunk, &a);
    int rc2 = run(data, size, nd, max, size ? size : 1, &b);
    if (rc1 != rc2 || a.all.len != b.all.len || (a.all.len && memcmp(a.all.data, b.all.data, a.all.len))) {
        fprintf(stderr, "chunking changed the result: %d vs %d\n", rc1, rc2);
        abort();
    }
    sv_buf_free(&a.all);
    sv_buf_free(&b.all);
    return 0;
}
