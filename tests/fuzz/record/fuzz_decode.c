/* libFuzzer: sv_record_decode on arbitrary bytes; fails only with
 * SV_ECORRUPT, and what it accepts prints as valid JSON. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sv_record *r;
    if (!r)
        r = sv_record_new();
    const sv_schema *s = fuzz_schema();
    sv_err err;
    int rc = sv_record_decode(r, s, data, size, &err);
    if (rc) {
        if (rc != SV_ECORRUPT && rc != SV_ENOMEM)
            abort();
        return 0;
    }
    /* A fresh buffer with a varying prefix, so a short reservation lands on
     * the end of the heap block (where ASan sees it) rather than in slack. */
    sv_buf fresh = {0};
    for (size_t i = 0; i < size % 1024; i++)
        sv_buf_putc(&fresh, ' ');
    if (sv_record_to_json(r, s, NULL, NULL, &fresh))
        abort();
    must_be_json(&fresh);
    sv_buf_free(&fresh);
    return 0;
}
