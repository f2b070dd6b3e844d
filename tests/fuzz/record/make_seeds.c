/* Writes seed inputs for one fuzz target into a directory. */
#include "fuzz_common.h"

static const char *OBJS[] = {
    "{\"id\":\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\",\"vector\":[0.1,-2.5e-3,3,1E2],"
    "\"namedVectors\":{\"title\":[1,2]},\"multiVectors\":{\"colbert\":[[1,2,3],[4,5.5,6]]},"
    "\"properties\":{\"title\":\"h\\u00e9llo \\ud83d\\ude00\",\"tags\":[\"a\",\"b\"],\"count\":2,"
    "\"counts\":[-1,1e3],\"price\":1.5,\"prices\":[],\"ok\":true,\"oks\":[false],"
    "\"when\":\"2024-01-02T03:04:05.6789+02:00\",\"whens\":[\"1970-01-01T00:00:00Z\"],"
    "\"ref\":\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\",\"refs\":[],\"meta\":{\"a\":[1,{\"b\":null}]},"
    "\"extra\":{\"k\":1},\"gone\":null},\"tenant\":\"t1\",\"collection\":\"Article\"}",
    "{\"properties\":{\"title\":\"x\",\"other\":[1,\"2\",{\"3\":4}]}}",
    "{\"vector\":[1.0000000000000002,3.4028235e38,-1e-45,0.30000000000000004]}",
    "{}",
};

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    const sv_schema *s = fuzz_schema();
    sv_record *r = sv_record_new();
    for (size_t i = 0; i < sizeof OBJS / sizeof *OBJS; i++) {
        sv_buf b = {0};
        sv_err err;
        if (!strcmp(argv[1], "fuzz_parse")) {
            sv_buf_append_str(&b, OBJS[i]);
        } else if (!strcmp(argv[1], "fuzz_decode")) {
            if (sv_record_parse_json(r, s, OBJS[i], strlen(OBJS[i]), NULL, &err) || sv_record_encode(r, s, &b, &err))
                return 1;
        } else {
            sv_buf_putc(&b, (uint8_t)(i * 37));
            if (i & 1) {
                sv_buf_printf(&b, "%s\n%s\r\n\n%s", OBJS[i], OBJS[0], OBJS[i]);
            } else {
                sv_buf_printf(&b, "{\"x\":[\"]\"],\"objects\":[%s,%s]}", OBJS[i], OBJS[3]);
            }
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/seed%zu", argv[2], i);
        FILE *f = fopen(path, "wb");
        if (!f)
            return 1;
        fwrite(b.data, 1, b.len, f);
        fclose(f);
        sv_buf_free(&b);
    }
    sv_record_free(r);
    return 0;
}
