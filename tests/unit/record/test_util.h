/* Shared helpers for the record tests. */
#ifndef SV_TEST_RECORD_UTIL_H
#define SV_TEST_RECORD_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "record.h"
#include "record_internal.h"

/* The schema most tests use. */
static const char *TEST_SCHEMA =
    "{\"name\":\"Article\",\"shards\":2,"
    "\"vectors\":{\"default\":{\"dim\":4},\"named\":{\"title\":{\"dim\":2}},\"multi\":{\"colbert\":{\"dim\":3}}},"
    "\"properties\":[{\"name\":\"title\",\"type\":\"text\"},{\"name\":\"tags\",\"type\":\"text[]\"},"
    "{\"name\":\"count\",\"type\":\"int\"},{\"name\":\"counts\",\"type\":\"int[]\"},"
    "{\"name\":\"price\",\"type\":\"number\"},{\"name\":\"prices\",\"type\":\"number[]\"},"
    "{\"name\":\"ok\",\"type\":\"boolean\"},{\"name\":\"oks\",\"type\":\"boolean[]\"},"
    "{\"name\":\"when\",\"type\":\"date\"},{\"name\":\"whens\",\"type\":\"date[]\"},"
    "{\"name\":\"ref\",\"type\":\"uuid\"},{\"name\":\"refs\",\"type\":\"uuid[]\"},"
    "{\"name\":\"meta\",\"type\":\"object\"}]}";

static inline sv_schema *test_schema(void)
{
    sv_schema *s = NULL;
    sv_err err = {0};
    int rc = sv_schema_parse(TEST_SCHEMA, strlen(TEST_SCHEMA), &s, &err);
    if (rc)
        fprintf(stderr, "schema: %s\n", err.msg);
    assert_int_equal(rc, 0);
    return s;
}

/* xorshift64*: deterministic across platforms. */
static inline uint64_t rnd_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static inline uint32_t rnd_below(uint64_t *s, uint32_t n) { return (uint32_t)(rnd_next(s) % n); }

#endif
