/* Schema rules, object parsing rules and messages, JSON output. */
#include "test_util.h"

/* ---- schema ---- */

static void schema_ok(void **st)
{
    (void)st;
    sv_schema *s = test_schema();
    assert_string_equal(s->name, "Article");
    assert_int_equal(s->shards, 2);
    assert_false(s->multi_tenancy);
    assert_int_equal(s->vector_dim, 4);
    assert_int_equal(s->n_named, 1);
    assert_string_equal(s->named[0].name, "title");
    assert_int_equal(s->named[0].dim, 2);
    assert_int_equal(s->n_multi, 1);
    assert_int_equal(s->multi[0].dim, 3);
    assert_int_equal(s->n_props, 13);
    assert_int_equal(s->props[1].type, SV_TYPE_TEXT);
    assert_true(s->props[1].array);
    assert_int_equal(s->props[12].type, SV_TYPE_OBJECT);
    assert_int_equal(sv_schema_prop_index(s, "price", 5), 4);
    assert_int_equal(sv_schema_prop_index(s, "pric", 4), -1);
    assert_int_equal(sv_schema_named_index(s, "title", 5), 0);
    assert_int_equal(sv_schema_multi_index(s, "title", 5), -1);
    assert_string_equal(sv_prop_type_name(SV_TYPE_DATE, true), "date[]");
    assert_string_equal(sv_prop_type_name(SV_TYPE_OBJECT, false), "object");
    sv_schema_free(s);
}

static bool schema_equal(const sv_schema *a, const sv_schema *b)
{
    if (strcmp(a->name, b->name) || a->shards != b->shards || a->multi_tenancy != b->multi_tenancy ||
        a->vector_dim != b->vector_dim || a->n_named != b->n_named || a->n_multi != b->n_multi ||
        a->n_props != b->n_props)
        return false;
    for (uint32_t i = 0; i < a->n_named; i++)
        if (strcmp(a->named[i].name, b->named[i].name) || a->named[i].dim != b->named[i].dim)
            return false;
    for (uint32_t i = 0; i < a->n_multi; i++)
        if (strcmp(a->multi[i].name, b->multi[i].name) || a->multi[i].dim != b->multi[i].dim)
            return false;
    for (uint32_t i = 0; i < a->n_props; i++)
        if (strcmp(a->props[i].name, b->props[i].name) || a->props[i].type != b->props[i].type ||
            a->props[i].array != b->props[i].array)
            return false;
    return true;
}

static void schema_roundtrip(void **st)
{
    (void)st;
    const char *cases[] = {
        TEST_SCHEMA,
        "{\"name\":\"A\"}",
        "{\"name\":\"MT\",\"multiTenancy\":true,\"vectors\":{\"default\":{\"dim\":1}}}",
        "{\"name\":\"B\",\"shards\":1024,\"properties\":[]}",
        "{\"name\":\"C\",\"vectors\":{\"named\":{\"a\":{\"dim\":65536},\"b-c\":{\"dim\":1}}}}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sv_schema *s, *s2;
        sv_err err = {0};
        assert_int_equal(sv_schema_parse(cases[i], strlen(cases[i]), &s, &err), 0);
        char *j = sv_schema_to_json(s);
        assert_non_null(j);
        assert_int_equal(sv_schema_parse(j, strlen(j), &s2, &err), 0);
        assert_true(schema_equal(s, s2));
        sv_schema *d = sv_schema_dup(s);
        assert_true(schema_equal(s, d));
        char *j2 = sv_schema_to_json(s2);
        assert_string_equal(j, j2);
        free(j);
        free(j2);
        sv_schema_free(s);
        sv_schema_free(s2);
        sv_schema_free(d);
    }
    sv_schema *s;
    sv_err err;
    assert_int_equal(sv_schema_parse("{\"name\":\"A\"}", 12, &s, &err), 0);
    assert_int_equal(s->shards, 1); /* default */
    sv_schema_free(s);
    assert_int_equal(sv_schema_parse("{\"name\":\"A\",\"multiTenancy\":true}", 32, &s, &err), 0);
    assert_int_equal(s->shards, 0);
    assert_true(s->multi_tenancy);
    sv_schema_free(s);
}

static void expect_schema_error(const char *json, int code, const char *msg_part)
{
    sv_schema *s = (sv_schema *)1;
    sv_err err = {0};
    int rc = sv_schema_parse(json, strlen(json), &s, &err);
    if (rc != code || !strstr(err.msg, msg_part))
        fprintf(stderr, "input %s\n  rc=%d msg=%s\n  want %d containing '%s'\n", json, rc, err.msg, code, msg_part);
    assert_int_equal(rc, code);
    assert_non_null(strstr(err.msg, msg_part));
    assert_null(s);
}

static void schema_errors(void **st)
{
    (void)st;
    expect_schema_error("{", SV_EPARSE, "invalid JSON");
    expect_schema_error("[]", SV_EINVAL, "must be a JSON object");
    expect_schema_error("{}", SV_EINVAL, "name is required");
    expect_schema_error("{\"name\":\"1abc\"}", SV_EINVAL, "name:");
    expect_schema_error("{\"name\":\"A\",\"shards\":0}", SV_EINVAL, "shards must be an integer between 1 and 1024");
    expect_schema_error("{\"name\":\"A\",\"shards\":1025}", SV_EINVAL, "between 1 and 1024");
    expect_schema_error("{\"name\":\"A\",\"shards\":\"2\"}", SV_EINVAL, "shards must be an integer");
    expect_schema_error("{\"name\":\"A\",\"shards\":2,\"multiTenancy\":true}", SV_EINVAL,
                        "shards cannot be set when multiTenancy is true");
    expect_schema_error("{\"name\":\"A\",\"multiTenancy\":1}", SV_EINVAL, "multiTenancy must be true or false");
    expect_schema_error("{\"name\":\"A\",\"shard\":2}", SV_EINVAL, "unknown field \"shard\"");
    expect_schema_error("{\"name\":\"A\",\"vectors\":{\"named\":{\"title\":{\"dim\":0}}}}", SV_EINVAL,
                        "vectors.named.title.dim must be an integer between 1 and 65536");
    expect_schema_error("{\"name\":\"A\",\"vectors\":{\"named\":{\"title\":{\"dim\":65537}}}}", SV_EINVAL,
                        "vectors.named.title.dim must be an integer between 1 and 65536");
    expect_schema_error("{\"name\":\"A\",\"vectors\":{\"default\":{\"dim\":1.5}}}", SV_EINVAL,
                        "vectors.default.dim must be an integer");
    expect_schema_error("{\"name\":\"A\",\"vectors\":{\"default\":128}}", SV_EINVAL, "vectors.default must be an object");
    expect_schema_error("{\"name\":\"A\",\"vectors\":{\"multi\":{\"x y\":{\"dim\":2}}}}", SV_EINVAL,
                        "vectors.multi.x y: invalid vector name");
    expect_schema_error("{\"name\":\"A\",\"vectors\":{\"named\":{\"a\":{\"dim\":2}},\"multi\":{\"a\":{\"dim\":2}}}}",
                        SV_EINVAL, "already used");
    expect_schema_error("{\"name\":\"A\",\"vectors\":{\"defaults\":{}}}", SV_EINVAL, "unknown field \"defaults\"");
    expect_schema_error("{\"name\":\"A\",\"properties\":{}}", SV_EINVAL, "properties must be an array");
    expect_schema_error("{\"name\":\"A\",\"properties\":[{\"name\":\"a\",\"type\":\"string\"}]}", SV_EINVAL,
                        "properties.a.type must be one of text, int");
    expect_schema_error("{\"name\":\"A\",\"properties\":[{\"name\":\"a\",\"type\":\"object[]\"}]}", SV_EINVAL,
                        "properties.a.type must be one of");
    expect_schema_error("{\"name\":\"A\",\"properties\":[{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"a\",\"type\":"
                        "\"text\"}]}",
                        SV_EINVAL, "declared twice");
    expect_schema_error("{\"name\":\"A\",\"properties\":[{\"name\":\"\",\"type\":\"int\"}]}", SV_EINVAL,
                        "properties[0].name:");
    expect_schema_error("{\"name\":\"A\",\"properties\":[{\"type\":\"int\"}]}", SV_EINVAL,
                        "properties[0].name is required");
    expect_schema_error("{\"name\":\"A\",\"properties\":[{\"name\":\"a\",\"type\":\"int\",\"index\":true}]}",
                        SV_EINVAL, "properties[0]: unknown field \"index\"");
    expect_schema_error("{\"name\":\"A\",\"name\":\"B\"}", SV_EPARSE, "duplicate");

    /* 1024 properties are fine, 1025 are not. */
    sv_buf b = {0};
    for (int n = 1024; n <= 1025; n++) {
        b.len = 0;
        sv_buf_append_str(&b, "{\"name\":\"Many\",\"properties\":[");
        for (int i = 0; i < n; i++)
            sv_buf_printf(&b, "%s{\"name\":\"p%d\",\"type\":\"int\"}", i ? "," : "", i);
        sv_buf_append_str(&b, "]}");
        sv_schema *s = NULL;
        sv_err err;
        int rc = sv_schema_parse((char *)b.data, b.len, &s, &err);
        if (n == 1024) {
            assert_int_equal(rc, 0);
            sv_schema_free(s);
        } else {
            assert_int_equal(rc, SV_EINVAL);
            assert_non_null(strstr(err.msg, "at most 1024 properties"));
        }
    }
    sv_buf_free(&b);
}

/* ---- objects ---- */

static const char *FULL_OBJ =
    "{\"id\":\"6BA7B810-9DAD-11D1-80B4-00C04FD430C8\",\"collection\":\"Article\",\"tenant\":\"t1\","
    "\"vector\":[0.1, -2.5e-3, 3, 1E2],\"namedVectors\":{\"title\":[1,2]},"
    "\"multiVectors\":{\"colbert\":[[1,2,3],[4,5.5,6]]},"
    "\"properties\":{\"title\":\"h\\u00e9llo \\ud83d\\ude00 \\\"q\\\"\",\"tags\":[\"a\",\"b\"],\"count\":2.0,"
    "\"counts\":[-9223372036854775808, 9223372036854775807, 1e3],\"price\":1,\"prices\":[],"
    "\"ok\":true,\"oks\":[false,true],\"when\":\"2024-01-02T03:04:05.6789+02:00\","
    "\"whens\":[\"1970-01-01T00:00:00Z\",\"1969-12-31t23:59:59.999z\"],"
    "\"ref\":\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\",\"refs\":[],"
    "\"meta\":{\"a\": [1, {\"b\": null}], \"s\":\"x\\ny\"},"
    "\"extra\": {\"k\": 1}, \"gone\": null, \"z\": \"\\u0041\"},"
    "\"creationTime\":5,\"updateTime\":6}";

static void parse_full(void **st)
{
    (void)st;
    sv_schema *s = test_schema();
    sv_record *r = sv_record_new();
    sv_err err = {0};
    sv_object_route rt;
    int rc = sv_record_parse_json(r, s, FULL_OBJ, strlen(FULL_OBJ), &rt, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(r->has_id);
    char id[37];
    sv_uuid_format(&r->id, id);
    assert_string_equal(id, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    assert_int_equal(rt.tenant.len, 2);
    assert_memory_equal(rt.tenant.ptr, "t1", 2);
    assert_int_equal(rt.collection.len, 7);
    assert_int_equal(r->creation_time, 0);
    assert_true(r->vector[0] == 0.1f && r->vector[1] == -2.5e-3f && r->vector[3] == 100.0f);
    assert_true(r->named[0][1] == 2.0f);
    assert_int_equal(r->multi_rows[0], 2);
    assert_true(r->multi[0][4] == 5.5f);
    assert_string_equal(r->props[0].str[0].ptr, "h\xc3\xa9llo \xf0\x9f\x98\x80 \"q\"");
    assert_int_equal(r->props[1].count, 2);
    assert_int_equal(r->props[2].i64[0], 2);
    assert_true(r->props[3].i64[0] == INT64_MIN && r->props[3].i64[1] == INT64_MAX && r->props[3].i64[2] == 1000);
    assert_true(r->props[4].f64[0] == 1.0);
    assert_true(r->props[5].present);
    assert_int_equal(r->props[5].count, 0);
    assert_int_equal(r->props[6].b[0], 1);
    assert_int_equal(r->props[8].i64[0], 1704157445678LL);
    assert_int_equal(r->props[9].i64[1], -1);
    assert_string_equal(r->props[12].str[0].ptr, "{\"a\":[1,{\"b\":null}],\"s\":\"x\\ny\"}");
    assert_int_equal(r->extra_json.len, strlen("{\"extra\":{\"k\":1},\"z\":\"A\"}"));
    assert_memory_equal(r->extra_json.ptr, "{\"extra\":{\"k\":1},\"z\":\"A\"}", r->extra_json.len);

    sv_buf out = {0};
    assert_int_equal(sv_record_to_json(r, s, NULL, "t1", &out), 0);
    const char *want =
        "{\"id\":\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\",\"collection\":\"Article\",\"tenant\":\"t1\","
        "\"creationTime\":0,\"updateTime\":0,\"vector\":[0.1,-0.0025,3,100],\"namedVectors\":{\"title\":[1,2]},"
        "\"multiVectors\":{\"colbert\":[[1,2,3],[4,5.5,6]]},\"properties\":{\"title\":\"h\xc3\xa9llo \xf0\x9f\x98\x80 "
        "\\\"q\\\"\",\"tags\":[\"a\",\"b\"],\"count\":2,\"counts\":[-9223372036854775808,9223372036854775807,1000],"
        "\"price\":1,\"prices\":[],\"ok\":true,\"oks\":[false,true],\"when\":\"2024-01-02T01:04:05.678Z\","
        "\"whens\":[\"1970-01-01T00:00:00.000Z\",\"1969-12-31T23:59:59.999Z\"],"
        "\"ref\":\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\",\"refs\":[],\"meta\":{\"a\":[1,{\"b\":null}],"
        "\"s\":\"x\\ny\"},\"extra\":{\"k\":1},\"z\":\"A\"}}";
    sv_buf_cstr(&out);
    assert_string_equal((char *)out.data, want);
    assert_true(sv_json_valid((char *)out.data, out.len));
    sv_buf_free(&out);
    sv_record_free(r);
    sv_schema_free(s);
}

static void expect_obj_error(const sv_schema *s, const char *json, int code, const char *msg_part)
{
    sv_record *r = sv_record_new();
    sv_err err = {0};
    int rc = sv_record_parse_json(r, s, json, strlen(json), NULL, &err);
    if (rc != code || !strstr(err.msg, msg_part))
        fprintf(stderr, "input %s\n  rc=%d msg=%s\n  want %d containing '%s'\n", json, rc, err.msg, code, msg_part);
    assert_int_equal(rc, code);
    assert_non_null(strstr(err.msg, msg_part));
    sv_record_free(r);
}

static void parse_errors(void **st)
{
    (void)st;
    sv_schema *s = test_schema();
#define E(json, code, msg) expect_obj_error(s, json, code, msg)
    E("", SV_EPARSE, "unexpected end of input");
    E("[]", SV_EPARSE, "expected '{'");
    E("{\"id\":1}", SV_EINVAL, "id: expected a UUID string, got number");
    E("{\"id\":\"6ba7b810-9dad-11d1-80b4-00c04fd430c\"}", SV_EINVAL, "is not a UUID");
    E("{\"id\":\"6ba7b810x9dad-11d1-80b4-00c04fd430c8\"}", SV_EINVAL, "is not a UUID");
    E("{\"foo\":1}", SV_EINVAL, "unknown field \"foo\"");
    E("{\"vector\":[1,2,3,4],\"vector\":[1,2,3,4]}", SV_EINVAL, "given twice");
    E("{\"vector\":[1,2,3]}", SV_EINVAL, "vector: expected 4 dimensions, got 3");
    E("{\"vector\":[1,2,3,4,5]}", SV_EINVAL, "vector: expected 4 dimensions, got 5");
    E("{\"vector\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}", SV_EINVAL, "vector: expected 4 dimensions, got 17");
    E("{\"vector\":[1,2,3,4,5,\"x\"]}", SV_EINVAL, "vector[5]: expected a number");
    E("{\"namedVectors\":{\"title\":[1,2,3]}}", SV_EINVAL, "namedVectors.title: expected 2 dimensions, got 3");
    E("{\"multiVectors\":{\"colbert\":[[1,2,3],[1,2,3,4,5,6]]}}", SV_EINVAL,
      "multiVectors.colbert[1]: expected 3 dimensions, got 6");
    E("{\"vector\":[1,2,\"3\",4]}", SV_EINVAL, "vector[2]: expected a number, got text");
    E("{\"vector\":[1,2,null,4]}", SV_EINVAL, "vector[2]: expected a number, got null");
    E("{\"vector\":[1,2,1e39,4]}", SV_EINVAL, "vector[2]: 1e39 is outside the float32 range");
    E("{\"vector\":[1,2,NaN,4]}", SV_EINVAL, "vector[2]: expected a number");
    E("{\"vector\":[1,2,01,4]}", SV_EPARSE, "vector[2]: invalid JSON number at byte 15");
    E("{\"vector\":[1,2,.5,4]}", SV_EINVAL, "vector[2]: expected a number");
    E("{\"vector\":[1,2,1.,4]}", SV_EPARSE, "invalid JSON number");
    E("{\"vector\":[1,2,3,4}", SV_EPARSE, "expected ',' or ']'");
    E("{\"vector\":{}}", SV_EINVAL, "vector: expected an array of numbers, got object");
    E("{\"namedVectors\":{\"body\":[1,2]}}", SV_EINVAL, "namedVectors.body: collection Article declares no such");
    E("{\"namedVectors\":{\"title\":[1]}}", SV_EINVAL, "namedVectors.title: expected 2 dimensions, got 1");
    E("{\"namedVectors\":{\"title\":[1,2],\"title\":[1,2]}}", SV_EINVAL, "namedVectors.title: given twice");
    E("{\"namedVectors\":[]}", SV_EINVAL, "namedVectors: expected an object");
    E("{\"multiVectors\":{\"colbert\":[[1,2,3],[1,2]]}}", SV_EINVAL, "multiVectors.colbert[1]: expected 3 dimensions");
    E("{\"multiVectors\":{\"colbert\":[[1,2,3],[]]}}", SV_EINVAL, "multiVectors.colbert[1]: expected 3 dimensions, got 0");
    E("{\"multiVectors\":{\"colbert\":[1,2,3]}}", SV_EINVAL, "multiVectors.colbert[0]: expected an array");
    E("{\"multiVectors\":{\"colbert\":[[1,2,\"x\"]]}}", SV_EINVAL, "multiVectors.colbert[0][2]: expected a number");
    E("{\"multiVectors\":{\"title\":[[1,2]]}}", SV_EINVAL, "declares no such multi-vector");
    E("{\"properties\":[]}", SV_EINVAL, "properties: expected a JSON object, got array");
    E("{\"properties\":\"x\"}", SV_EINVAL, "properties: expected a JSON object, got text");
    E("{\"properties\":{\"title\":1}}", SV_EINVAL, "properties.title: expected text, got number");
    E("{\"properties\":{\"tags\":\"a\"}}", SV_EINVAL, "properties.tags: expected text[], got text");
    E("{\"properties\":{\"tags\":[\"a\",\"b\",3]}}", SV_EINVAL, "properties.tags[2]: expected text, got number");
    E("{\"properties\":{\"tags\":[\"a\",null]}}", SV_EINVAL, "properties.tags[1]: null is not allowed inside arrays");
    E("{\"properties\":{\"count\":1.5}}", SV_EINVAL, "properties.count: expected int, got 1.5 (not an integer)");
    E("{\"properties\":{\"count\":1e-1}}", SV_EINVAL, "not an integer");
    E("{\"properties\":{\"count\":9223372036854775808}}", SV_EINVAL, "outside the int64 range");
    E("{\"properties\":{\"count\":-9223372036854775809}}", SV_EINVAL, "outside the int64 range");
    E("{\"properties\":{\"count\":1e19}}", SV_EINVAL, "outside the int64 range");
    E("{\"properties\":{\"count\":\"1\"}}", SV_EINVAL, "properties.count: expected int, got text");
    E("{\"properties\":{\"counts\":[1,true]}}", SV_EINVAL, "properties.counts[1]: expected int, got boolean");
    E("{\"properties\":{\"price\":1e309}}", SV_EINVAL, "outside the double range");
    E("{\"properties\":{\"price\":true}}", SV_EINVAL, "properties.price: expected number, got boolean");
    E("{\"properties\":{\"ok\":1}}", SV_EINVAL, "properties.ok: expected boolean, got number");
    E("{\"properties\":{\"ok\":tru}}", SV_EPARSE, "invalid JSON");
    E("{\"properties\":{\"when\":\"2024-01-02\"}}", SV_EINVAL, "properties.when: \"2024-01-02\" is not an RFC 3339");
    E("{\"properties\":{\"when\":\"2023-02-29T00:00:00Z\"}}", SV_EINVAL, "is not an RFC 3339");
    E("{\"properties\":{\"when\":\"2024-01-02T03:04:05\"}}", SV_EINVAL, "is not an RFC 3339");
    E("{\"properties\":{\"when\":\"2024-01-02T24:00:00Z\"}}", SV_EINVAL, "is not an RFC 3339");
    E("{\"properties\":{\"when\":\"2024-01-02T03:04:05.Z\"}}", SV_EINVAL, "is not an RFC 3339");
    E("{\"properties\":{\"when\":\"2024-01-02T03:04:05+0200\"}}", SV_EINVAL, "is not an RFC 3339");
    E("{\"properties\":{\"when\":\"0000-01-01T00:00:00+00:01\"}}", SV_EINVAL, "between years 0000 and 9999");
    E("{\"properties\":{\"when\":1}}", SV_EINVAL, "properties.when: expected date");
    E("{\"properties\":{\"whens\":[\"2024-01-02T03:04:05Z\",\"x\"]}}", SV_EINVAL, "properties.whens[1]: \"x\"");
    E("{\"properties\":{\"ref\":\"nope\"}}", SV_EINVAL, "properties.ref: \"nope\" is not a UUID");
    E("{\"properties\":{\"refs\":[\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\",\"1\"]}}", SV_EINVAL, "properties.refs[1]");
    E("{\"properties\":{\"meta\":[1]}}", SV_EINVAL, "properties.meta: expected object, got array");
    E("{\"properties\":{\"meta\":{\"a\":}}}", SV_EPARSE, "invalid JSON");
    E("{\"properties\":{\"title\":\"a\",\"title\":\"b\"}}", SV_EINVAL, "properties.title: given twice");
    E("{\"properties\":{\"x\":1,\"x\":2}}", SV_EINVAL, "properties.x: given twice");
    E("{\"properties\":{\"title\":\"\\ud800\"}}", SV_EPARSE, "unpaired UTF-16 surrogate");
    E("{\"properties\":{\"title\":\"\\udc00\"}}", SV_EPARSE, "unpaired UTF-16 surrogate");
    E("{\"properties\":{\"title\":\"\\ud800\\u0041\"}}", SV_EPARSE, "unpaired UTF-16 surrogate");
    E("{\"properties\":{\"title\":\"\\uZZZZ\"}}", SV_EPARSE, "bad \\u escape");
    E("{\"properties\":{\"title\":\"\\x\"}}", SV_EPARSE, "bad escape");
    E("{\"properties\":{\"title\":\"a\nb\"}}", SV_EPARSE, "control character");
    E("{\"properties\":{\"title\":\"\xff\"}}", SV_EPARSE, "invalid UTF-8");
    E("{\"properties\":{\"title\":\"\xc0\xaf\"}}", SV_EPARSE, "invalid UTF-8");     /* overlong */
    E("{\"properties\":{\"title\":\"\xed\xa0\x80\"}}", SV_EPARSE, "invalid UTF-8"); /* surrogate */
    E("{\"properties\":{\"title\":\"\xf4\x90\x80\x80\"}}", SV_EPARSE, "invalid UTF-8"); /* > U+10FFFF */
    E("{\"properties\":{\"x\":\"\xe2\x82\"}}", SV_EPARSE, "invalid UTF-8");
    E("{\"properties\":{\"title\":\"abc}}", SV_EPARSE, "unterminated string");
    E("{\"tenant\":\"t\\u0031\"}", SV_EINVAL, "tenant: must be a plain name");
    E("{\"tenant\":1}", SV_EINVAL, "tenant: expected a string");
    E("{} x", SV_EPARSE, "unexpected data after the object");
    E("{\"id\":\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\",}", SV_EPARSE, "a field name");
#undef E
    /* A deeply nested free object is refused, not a stack overflow. */
    sv_buf b = {0};
    sv_buf_append_str(&b, "{\"properties\":{\"meta\":");
    for (int i = 0; i < 1000; i++)
        sv_buf_putc(&b, '[');
    sv_buf_cstr(&b);
    expect_obj_error(s, (char *)b.data, SV_EINVAL, "expected object, got array");
    b.len = 0;
    sv_buf_append_str(&b, "{\"properties\":{\"x\":");
    for (int i = 0; i < 1000; i++)
        sv_buf_putc(&b, '[');
    sv_buf_cstr(&b);
    expect_obj_error(s, (char *)b.data, SV_EPARSE, "nested deeper");
    sv_buf_free(&b);
    sv_schema_free(s);
}

static void parse_edge_ok(void **st)
{
    (void)st;
    sv_schema *s = test_schema();
    sv_record *r = sv_record_new();
    sv_err err = {0};
    const char *ok[] = {
        "{}",
        " \r\n\t{ } \n",
        "{\"vector\":null,\"namedVectors\":null,\"multiVectors\":null,\"properties\":null,\"id\":null}",
        "{\"vector\":[],\"namedVectors\":{\"title\":[]},\"multiVectors\":{\"colbert\":[]},\"properties\":{}}",
        "{\"class\":\"Article\",\"creationTime\":{\"x\":[1]},\"updateTime\":\"whenever\"}",
        "{\"properties\":{\"title\":null,\"tags\":[],\"count\":-0,\"price\":-0.0,\"meta\":{}}}",
        "{\"properties\":{\"count\":12345678901234567890e-1}}",
        "{\"properties\":{\"count\":1.000000000000000000000000}}",
        "{\"properties\":{\"when\":\"9999-12-31T23:59:59.999999Z\",\"whens\":[\"2024-02-29 12:00:00-11:30\"]}}",
        "{\"properties\":{\"weird key \\u00e9\":[1,{\"a\":\"\\/\"}]}}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        int rc = sv_record_parse_json(r, s, ok[i], strlen(ok[i]), NULL, &err);
        if (rc)
            fprintf(stderr, "%s: %s\n", ok[i], err.msg);
        assert_int_equal(rc, 0);
    }
    assert_int_equal(r->extra_json.len, strlen("{\"weird key \xc3\xa9\":[1,{\"a\":\"/\"}]}"));
    const char *j = "{\"vector\":[],\"properties\":{\"count\":1.000000000000000000000000,\"x\":null}}";
    assert_int_equal(sv_record_parse_json(r, s, j, strlen(j), NULL, &err), 0);
    assert_null(r->vector);
    assert_int_equal(r->props[2].i64[0], 1);
    assert_int_equal(r->extra_json.len, 0);
    assert_false(r->has_id);
    /* Not NUL-terminated: the parser must stop at len. */
    char buf[8] = {'{', '}', 'x', 'x', 'x', 'x', 'x', 'x'};
    assert_int_equal(sv_record_parse_json(r, s, buf, 2, NULL, &err), 0);
    assert_int_equal(sv_record_parse_json(r, s, buf, 1, NULL, &err), SV_EPARSE);
    sv_record_free(r);
    sv_schema_free(s);
}

static void no_vectors_schema(void **st)
{
    (void)st;
    const char *sj = "{\"name\":\"Plain\",\"multiTenancy\":true}";
    sv_schema *s;
    sv_err err;
    assert_int_equal(sv_schema_parse(sj, strlen(sj), &s, &err), 0);
    expect_obj_error(s, "{\"vector\":[1]}", SV_EINVAL, "vector: collection Plain has no default vector");
    expect_obj_error(s, "{\"namedVectors\":{\"a\":[1]}}", SV_EINVAL, "namedVectors.a: collection Plain declares no such");
    sv_record *r = sv_record_new();
    const char *o = "{\"vector\":[ ],\"properties\":{\"x\":\"y\"},\"tenant\":\"t-1\"}";
    sv_object_route rt;
    assert_int_equal(sv_record_parse_json(r, s, o, strlen(o), &rt, &err), 0);
    assert_null(r->vector);
    assert_int_equal(rt.tenant.len, 3);
    sv_buf out = {0};
    assert_int_equal(sv_record_to_json(r, s, NULL, "t-1", &out), 0);
    sv_buf_cstr(&out);
    assert_string_equal((char *)out.data, "{\"id\":\"00000000-0000-0000-0000-000000000000\",\"collection\":\"Plain\","
                                          "\"tenant\":\"t-1\",\"creationTime\":0,\"updateTime\":0,"
                                          "\"properties\":{\"x\":\"y\"}}");
    sv_buf_free(&out);
    sv_record_free(r);
    sv_schema_free(s);
}

/* The longest float texts ("-123456790000000000000") must fit what
 * to_json reserves (a heap overflow before the fix; ASan build catches it). */
static void long_float_texts(void **st)
{
    (void)st;
    const char *sj = "{\"name\":\"Wide\",\"vectors\":{\"default\":{\"dim\":1000}}}";
    sv_schema *s;
    sv_err err;
    assert_int_equal(sv_schema_parse(sj, strlen(sj), &s, &err), 0);
    sv_buf in = {0}, out = {0};
    sv_buf_append_str(&in, "{\"vector\":[");
    for (int i = 0; i < 1000; i++)
        sv_buf_append_str(&in, i ? ",-1.2345679e20" : "-1.2345679e20");
    sv_buf_append_str(&in, "]}");
    sv_record *r = sv_record_new();
    assert_int_equal(sv_record_parse_json(r, s, (char *)in.data, in.len, NULL, &err), 0);
    for (size_t pre = 15000; pre < 17000; pre += 500) {
        out.len = 0;
        for (size_t i = 0; i < pre; i++)
            sv_buf_putc(&out, ' ');
        assert_int_equal(sv_record_to_json(r, s, NULL, NULL, &out), 0);
        assert_true(sv_json_valid((char *)out.data + pre, out.len - pre));
        assert_non_null(memmem(out.data, out.len, "[-123456790000000000000,", 24));
    }
    sv_buf_free(&in);
    sv_buf_free(&out);
    sv_record_free(r);
    sv_schema_free(s);
}

static void peek_route(void **st)
{
    (void)st;
    sv_object_route rt;
    sv_err err;
    const char *j = "{\"properties\":{\"tenant\":\"no\",\"a\":[{}]},\"class\":\"C1\",\"tenant\":\"t9\"}";
    assert_int_equal(sv_record_peek_route(j, strlen(j), &rt, &err), 0);
    assert_int_equal(rt.collection.len, 2);
    assert_memory_equal(rt.collection.ptr, "C1", 2);
    assert_memory_equal(rt.tenant.ptr, "t9", 2);
    j = "{\"id\":\"x\"}";
    assert_int_equal(sv_record_peek_route(j, strlen(j), &rt, &err), 0);
    assert_int_equal(rt.collection.len, 0);
    assert_int_equal(rt.tenant.len, 0);
    j = "{\"\\u0074enant\":\"t2\",\"cl\\u0061ss\":\"C\"}"; /* escaped keys count, like in the parse */
    assert_int_equal(sv_record_peek_route(j, strlen(j), &rt, &err), 0);
    assert_int_equal(rt.tenant.len, 2);
    assert_int_equal(rt.collection.len, 1);
    j = "{\"tenant\":}";
    assert_int_equal(sv_record_peek_route(j, strlen(j), &rt, &err), SV_EINVAL);
    j = "{\"a\":[}";
    assert_int_equal(sv_record_peek_route(j, strlen(j), &rt, &err), SV_EPARSE);
}

/* A schema added a property after records stored it as undeclared. */
static void extra_shadowed_by_schema(void **st)
{
    (void)st;
    const char *s1j = "{\"name\":\"A\",\"properties\":[{\"name\":\"a\",\"type\":\"int\"}]}";
    const char *s2j = "{\"name\":\"A\",\"properties\":[{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"b\",\"type\":\"int\"}]}";
    sv_schema *s1, *s2;
    sv_err err;
    assert_int_equal(sv_schema_parse(s1j, strlen(s1j), &s1, &err), 0);
    assert_int_equal(sv_schema_parse(s2j, strlen(s2j), &s2, &err), 0);
    sv_record *r = sv_record_new();
    const char *o = "{\"properties\":{\"a\":1,\"b\":{\"x\":\"y,z\"},\"c\":[1,2]}}";
    assert_int_equal(sv_record_parse_json(r, s1, o, strlen(o), NULL, &err), 0);
    sv_buf enc = {0}, out = {0};
    assert_int_equal(sv_record_encode(r, s1, &enc, &err), 0);
    /* decoded with the newer schema: b is declared but absent, extra holds it */
    assert_int_equal(sv_record_decode(r, s2, enc.data, enc.len, &err), 0);
    assert_int_equal(sv_record_properties_json(r, s2, &out), 0);
    sv_buf_cstr(&out);
    assert_string_equal((char *)out.data, "{\"a\":1,\"b\":{\"x\":\"y,z\"},\"c\":[1,2]}");
    /* a record with both: the declared value wins */
    const char *o2 = "{\"properties\":{\"a\":1,\"b\":7}}";
    sv_record *r2 = sv_record_new();
    assert_int_equal(sv_record_parse_json(r2, s2, o2, strlen(o2), NULL, &err), 0);
    r2->extra_json = r->extra_json;
    out.len = 0;
    assert_int_equal(sv_record_properties_json(r2, s2, &out), 0);
    sv_buf_cstr(&out);
    assert_string_equal((char *)out.data, "{\"a\":1,\"b\":7,\"c\":[1,2]}");
    sv_buf_free(&enc);
    sv_buf_free(&out);
    sv_record_free(r);
    sv_record_free(r2);
    sv_schema_free(s1);
    sv_schema_free(s2);
}

static void vector_maps_sorted(void **st)
{
    (void)st;
    const char *sj = "{\"name\":\"A\",\"vectors\":{\"named\":{\"zeta\":{\"dim\":1},\"alpha\":{\"dim\":1}},"
                     "\"multi\":{\"m2\":{\"dim\":1},\"m1\":{\"dim\":2}}}}";
    sv_schema *s;
    sv_err err;
    assert_int_equal(sv_schema_parse(sj, strlen(sj), &s, &err), 0);
    sv_record *r = sv_record_new();
    const char *o = "{\"namedVectors\":{\"zeta\":[1],\"alpha\":[0.5]},\"multiVectors\":{\"m2\":[[1],[2]],\"m1\":[[1,2]]}}";
    assert_int_equal(sv_record_parse_json(r, s, o, strlen(o), NULL, &err), 0);
    sv_buf out = {0};
    assert_int_equal(sv_record_named_json(r, s, &out), 0);
    sv_buf_cstr(&out);
    assert_string_equal((char *)out.data, "{\"alpha\":[0.5],\"zeta\":[1]}");
    out.len = 0;
    assert_int_equal(sv_record_multi_json(r, s, &out), 0);
    sv_buf_cstr(&out);
    assert_string_equal((char *)out.data, "{\"m1\":[[1,2]],\"m2\":[[1],[2]]}");
    o = "{}";
    assert_int_equal(sv_record_parse_json(r, s, o, 2, NULL, &err), 0);
    out.len = 0;
    assert_int_equal(sv_record_named_json(r, s, &out), 0);
    assert_int_equal(sv_record_multi_json(r, s, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(sv_record_to_json(r, s, "Other", NULL, &out), 0);
    sv_buf_cstr(&out);
    assert_string_equal((char *)out.data, "{\"id\":\"00000000-0000-0000-0000-000000000000\",\"collection\":\"Other\","
                                          "\"creationTime\":0,\"updateTime\":0,\"properties\":{}}");
    sv_buf_free(&out);
    sv_record_free(r);
    sv_schema_free(s);
}

static void dates(void **st)
{
    (void)st;
    struct {
        const char *in;
        int64_t ms;
        const char *out;
    } c[] = {
        {"1970-01-01T00:00:00Z", 0, "1970-01-01T00:00:00.000Z"},
        {"1970-01-01T00:00:00.1Z", 100, "1970-01-01T00:00:00.100Z"},
        {"1970-01-01T00:00:00.123456789Z", 123, "1970-01-01T00:00:00.123Z"},
        {"1970-01-01T01:00:00+01:00", 0, "1970-01-01T00:00:00.000Z"},
        {"1969-12-31T19:00:00-05:00", 0, "1970-01-01T00:00:00.000Z"},
        {"1969-12-31T23:59:59.999Z", -1, "1969-12-31T23:59:59.999Z"},
        {"2000-02-29T12:34:56.789Z", 951827696789LL, "2000-02-29T12:34:56.789Z"},
        {"0000-01-01T00:00:00Z", SV_DATE_MIN_MS, "0000-01-01T00:00:00.000Z"},
        {"9999-12-31T23:59:59.999Z", SV_DATE_MAX_MS, "9999-12-31T23:59:59.999Z"},
        {"1900-03-01t00:00:00z", -2203891200000LL, "1900-03-01T00:00:00.000Z"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        int64_t ms;
        assert_int_equal(sv_parse_rfc3339(c[i].in, strlen(c[i].in), &ms), 0);
        assert_int_equal(ms, c[i].ms);
        char b[32] = {0};
        assert_int_equal(sv_format_date_ms(ms, b), 24);
        assert_string_equal(b, c[i].out);
    }
    const char *bad[] = {"1900-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-00-01T00:00:00Z", "2024-04-31T00:00:00Z",
                         "2024-01-01T00:60:00Z", "2024-01-01T00:00:60Z", "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00Zx",
                         "2024-01-01X00:00:00Z", "+2024-01-01T00:00:00Z", "", "2024-01-01T00:00:00.Z"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms;
        assert_int_equal(sv_parse_rfc3339(bad[i], strlen(bad[i]), &ms), SV_EINVAL);
    }
    /* every day of a 400-year cycle round-trips */
    for (int64_t d = -146097; d < 146097 * 2; d += 1) {
        int64_t ms = d * 86400000LL + 12345;
        char b[32];
        sv_format_date_ms(ms, b);
        int64_t back;
        assert_int_equal(sv_parse_rfc3339(b, 24, &back), 0);
        assert_int_equal(back, ms);
    }
}

static void floats_print(void **st)
{
    (void)st;
    struct {
        float f;
        const char *s;
    } c[] = {{0.1f, "0.1"},       {-0.0f, "-0"},          {1.0f, "1"},           {100.0f, "100"},
             {1e-7f, "1e-7"},     {1.5e-6f, "0.0000015"}, {3.4028235e38f, "3.4028235e+38"},
             {1e21f, "1e+21"},    {1.4e-45f, "1e-45"},    {16777216.0f, "16777216"},
             {0.3333333f, "0.3333333"}, {123456.79f, "123456.79"}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        char b[40] = {0};
        sv_format_float(c[i].f, b);
        assert_string_equal(b, c[i].s);
    }
    char b[40] = {0};
    sv_format_double(0.1, b);
    assert_string_equal(b, "0.1");
    memset(b, 0, sizeof b);
    sv_format_double(1.0 / 3, b);
    assert_string_equal(b, "0.3333333333333333");
    memset(b, 0, sizeof b);
    sv_format_double(-1e300, b);
    assert_string_equal(b, "-1e+300");
    memset(b, 0, sizeof b);
    sv_format_double(5e-324, b);
    assert_string_equal(b, "5e-324");
    memset(b, 0, sizeof b);
    sv_format_i64(INT64_MIN, b);
    assert_string_equal(b, "-9223372036854775808");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(schema_ok),      cmocka_unit_test(schema_roundtrip),  cmocka_unit_test(schema_errors),
        cmocka_unit_test(parse_full),     cmocka_unit_test(parse_errors),      cmocka_unit_test(parse_edge_ok),
        cmocka_unit_test(peek_route),     cmocka_unit_test(no_vectors_schema),
        cmocka_unit_test(long_float_texts),     cmocka_unit_test(extra_shadowed_by_schema),
        cmocka_unit_test(vector_maps_sorted), cmocka_unit_test(dates),       cmocka_unit_test(floats_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
