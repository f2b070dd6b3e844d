/* Shared by the libFuzzer harnesses: the schema they parse against. */
#ifndef SV_FUZZ_RECORD_COMMON_H
#define SV_FUZZ_RECORD_COMMON_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"
#include "record_internal.h"

static const char *FUZZ_SCHEMA =
    "{\"name\":\"Article\",\"shards\":2,"
    "\"vectors\":{\"default\":{\"dim\":4},\"named\":{\"title\":{\"dim\":2}},\"multi\":{\"colbert\":{\"dim\":3}}},"
    "\"properties\":[{\"name\":\"title\",\"type\":\"text\"},{\"name\":\"tags\",\"type\":\"text[]\"},"
    "{\"name\":\"count\",\"type\":\"int\"},{\"name\":\"counts\",\"type\":\"int[]\"},"
    "{\"name\":\"price\",\"type\":\"number\"},{\"name\":\"prices\",\"type\":\"number[]\"},"
    "{\"name\":\"ok\",\"type\":\"boolean\"},{\"name\":\"oks\",\"type\":\"boolean[]\"},"
    "{\"name\":\"when\",\"type\":\"date\"},{\"name\":\"whens\",\"type\":\"date[]\"},"
    "{\"name\":\"ref\",\"type\":\"uuid\"},{\"name\":\"refs\",\"type\":\"uuid[]\"},"
    "{\"name\":\"meta\",\"type\":\"object\"}]}";

static sv_schema *fuzz_schema(void)
{
    static sv_schema *s;
    if (!s) {
        sv_err err;
        if (sv_schema_parse(FUZZ_SCHEMA, strlen(FUZZ_SCHEMA), &s, &err)) {
            fprintf(stderr, "schema: %s\n", err.msg);
            abort();
        }
    }
    return s;
}

/* Output we produced must be valid JSON: anything else is a bug. */
static void must_be_json(const sv_buf *b)
{
    if (!sv_json_valid((const char *)b->data, b->len)) {
        fprintf(stderr, "invalid JSON produced: %.*s\n", (int)b->len, b->data);
        abort();
    }
}
#endif
