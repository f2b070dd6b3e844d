/* libFuzzer: sv_record_decode on arbitrary bytes; fails only with
 * SV_ECORRUPT, and what it accepts prints as valid JSON. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sv_record *r;
    static sv_buf out;
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
    out.len = 0;
    if (sv_record_to_json(r, s, NULL, NULL, &out))
        abort();
    must_be_json(&out);
    return 0;
}
