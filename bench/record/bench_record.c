/* bench_record: parse + validate + encode of API objects through the record
 * fast path, next to jansson (json_loadb + walking the DOM + the same
 * validation + the same encoder) on the same generated objects in the same
 * run; plus decode + to_json (the listing path) and the batch splitter.
 *
 *   bench_record [--objects N] [--rounds R] [--dim D] [--out PATH]
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "record.h"
#include "record_internal.h"

/* Thread CPU time: the machine may be shared, and objects/s per core is
 * what the ingest target is stated in. Wall time is reported next to it. */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t seed = 0x1234567;
static uint64_t rnd(void)
{
    seed ^= seed >> 12;
    seed ^= seed << 25;
    seed ^= seed >> 27;
    return seed * 0x2545F4914F6CDD1DULL;
}
static double unit(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

/* What Python's json.dumps prints for a float32 that went through
 * numpy.tolist(): the shortest repr of the double, usually 16-17 digits. */
static void py_float(sv_buf *b, float f)
{
    char tmp[40];
    double d = f;
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*g", p, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    sv_buf_append_str(b, tmp);
}

static const char *words[] = {"vector", "shard", "tenant", "export", "parquet", "snapshot", "object", "storage",
                              "rocksdb", "catalog", "lease",  "quorum", "replica", "segment", "index", "query"};

static void gen_object(sv_buf *b, int dim)
{
    sv_uuid id, author;
    for (int i = 0; i < 16; i++) {
        id.b[i] = (uint8_t)rnd();
        author.b[i] = (uint8_t)rnd();
    }
    char ids[37], as[37], date[32];
    sv_uuid_format(&id, ids);
    sv_uuid_format(&author, as);
    sv_format_date_ms(1600000000000LL + (int64_t)(rnd() % 200000000000ULL), date);
    date[24] = '\0';
    sv_buf_printf(b, "{\"id\":\"%s\",\"vector\":[", ids);
    for (int i = 0; i < dim; i++) {
        if (i)
            sv_buf_append_str(b, ", ");
        py_float(b, (float)(unit() * 2 - 1));
    }
    sv_buf_append_str(b, "],\"properties\":{\"title\":\"");
    for (int i = 0; i < 6; i++)
        sv_buf_printf(b, "%s%s", i ? " " : "", words[rnd() % 16]);
    sv_buf_append_str(b, "\",\"body\":\"");
    for (int i = 0; i < 20; i++)
        sv_buf_printf(b, "%s%s", i ? " " : "", words[rnd() % 16]);
    sv_buf_printf(b,
                  "\",\"tags\":[\"%s\",\"%s\",\"%s\"],\"count\":%d,\"price\":%.2f,\"published\":\"%s\","
                  "\"authorId\":\"%s\",\"active\":%s}}",
                  words[rnd() % 16], words[rnd() % 16], words[rnd() % 16], (int)(rnd() % 100000),
                  unit() * 1000, date, as, rnd() & 1 ? "true" : "false");
}

/* ---- the jansson peer: same checks, same record, same encoder ---- */

typedef struct peer {
    float *vec;
    sv_prop_value *props;
    void *vals; /* backing storage */
} peer;

static int jansson_one(const char *json, size_t len, const sv_schema *s, sv_record *r, float *vec,
                       sv_prop_value *props, sv_str *strs, int64_t *ints, double *dbls, uint8_t *bools, sv_uuid *uuids,
                       sv_buf *enc, sv_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (!root)
        return sv_fail(err, SV_EPARSE, "%s", je.text);
    int rc = 0;
    memset(r, 0, sizeof *r);
    memset(props, 0, sizeof(sv_prop_value) * s->n_props);
    r->props = props;
    const char *k;
    json_t *v;
    int ns = 0, ni = 0, nd = 0, nb = 0, nu = 0;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "id") == 0) {
            if (!json_is_string(v) || sv_uuid_parse(json_string_value(v), json_string_length(v), &r->id)) {
                rc = sv_fail(err, SV_EINVAL, "id");
                goto out;
            }
            r->has_id = true;
        } else if (strcmp(k, "vector") == 0) {
            if (!json_is_array(v) || json_array_size(v) != s->vector_dim) {
                rc = sv_fail(err, SV_EINVAL, "vector");
                goto out;
            }
            for (size_t i = 0; i < s->vector_dim; i++) {
                json_t *e = json_array_get(v, i);
                if (!json_is_number(e)) {
                    rc = sv_fail(err, SV_EINVAL, "vector[%zu]", i);
                    goto out;
                }
                float f = (float)json_number_value(e);
                if (!isfinite(f)) {
                    rc = sv_fail(err, SV_EINVAL, "vector[%zu]", i);
                    goto out;
                }
                vec[i] = f;
            }
            r->vector = vec;
        } else if (strcmp(k, "properties") == 0) {
            if (!json_is_object(v)) {
                rc = sv_fail(err, SV_EINVAL, "properties");
                goto out;
            }
            const char *pk;
            json_t *pv;
            json_object_foreach(v, pk, pv) {
                int idx = sv_schema_prop_index(s, pk, strlen(pk));
                if (idx < 0 || json_is_null(pv))
                    continue; /* the peer skips extra_json building */
                const sv_prop_def *d = &s->props[idx];
                sv_prop_value *pvv = &props[idx];
                size_t n = d->array ? json_array_size(pv) : 1;
                if (d->array && !json_is_array(pv)) {
                    rc = sv_fail(err, SV_EINVAL, "properties.%s", d->name);
                    goto out;
                }
                for (size_t i = 0; i < n; i++) {
                    json_t *e = d->array ? json_array_get(pv, i) : pv;
                    switch (d->type) {
                    case SV_TYPE_TEXT:
                        if (!json_is_string(e)) {
                            rc = sv_fail(err, SV_EINVAL, "properties.%s", d->name);
                            goto out;
                        }
                        strs[ns + (int)i].ptr = json_string_value(e);
                        strs[ns + (int)i].len = (uint32_t)json_string_length(e);
                        break;
                    case SV_TYPE_INT:
                        if (!json_is_integer(e)) {
                            rc = sv_fail(err, SV_EINVAL, "properties.%s", d->name);
                            goto out;
                        }
                        ints[ni + (int)i] = json_integer_value(e);
                        break;
                    case SV_TYPE_NUMBER:
                        if (!json_is_number(e)) {
                            rc = sv_fail(err, SV_EINVAL, "properties.%s", d->name);
                            goto out;
                        }
                        dbls[nd + (int)i] = json_number_value(e);
                        break;
                    case SV_TYPE_BOOLEAN:
                        if (!json_is_boolean(e)) {
                            rc = sv_fail(err, SV_EINVAL, "properties.%s", d->name);
                            goto out;
                        }
                        bools[nb + (int)i] = json_is_true(e);
                        break;
                    case SV_TYPE_DATE:
                        if (!json_is_string(e) ||
                            sv_parse_rfc3339(json_string_value(e), json_string_length(e), &ints[ni + (int)i])) {
                            rc = sv_fail(err, SV_EINVAL, "properties.%s", d->name);
                            goto out;
                        }
                        break;
                    case SV_TYPE_UUID:
                        if (!json_is_string(e) ||
                            sv_uuid_parse(json_string_value(e), json_string_length(e), &uuids[nu + (int)i])) {
                            rc = sv_fail(err, SV_EINVAL, "properties.%s", d->name);
                            goto out;
                        }
                        break;
                    default: break;
                    }
                }
                pvv->present = true;
                pvv->count = (uint32_t)n;
                switch (d->type) {
                case SV_TYPE_TEXT: pvv->str = strs + ns; ns += (int)n; break;
                case SV_TYPE_INT:
                case SV_TYPE_DATE: pvv->i64 = ints + ni; ni += (int)n; break;
                case SV_TYPE_NUMBER: pvv->f64 = dbls + nd; nd += (int)n; break;
                case SV_TYPE_BOOLEAN: pvv->b = bools + nb; nb += (int)n; break;
                case SV_TYPE_UUID: pvv->uuid = uuids + nu; nu += (int)n; break;
                default: break;
                }
            }
        }
    }
    enc->len = 0;
    rc = sv_record_encode(r, s, enc, err);
out:
    json_decref(root);
    return rc;
}

static int on_obj(const char *json, size_t len, void *ud)
{
    (void)json;
    *(size_t *)ud += len;
    return 0;
}

typedef struct row {
    const char *name;
    double objs_per_s, mb_per_s, secs, wall_objs_per_s;
} row;

int main(int argc, char **argv)
{
    int n = 20000, rounds = 5, dim = 128;
    const char *out_path = "bench/out/record.json";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--objects"))
            n = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim"))
            dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--out"))
            out_path = argv[i + 1];
    }
    char sj[1024];
    snprintf(sj, sizeof sj,
             "{\"name\":\"Bench\",\"vectors\":{\"default\":{\"dim\":%d}},\"properties\":["
             "{\"name\":\"title\",\"type\":\"text\"},{\"name\":\"body\",\"type\":\"text\"},"
             "{\"name\":\"tags\",\"type\":\"text[]\"},{\"name\":\"count\",\"type\":\"int\"},"
             "{\"name\":\"price\",\"type\":\"number\"},{\"name\":\"published\",\"type\":\"date\"},"
             "{\"name\":\"authorId\",\"type\":\"uuid\"},{\"name\":\"active\",\"type\":\"boolean\"}]}",
             dim);
    sv_schema *s;
    sv_err err = {0};
    if (sv_schema_parse(sj, strlen(sj), &s, &err)) {
        fprintf(stderr, "schema: %s\n", err.msg);
        return 1;
    }
    sv_buf all = {0}, body = {0};
    size_t *offs = malloc(sizeof(size_t) * ((size_t)n + 1));
    for (int i = 0; i < n; i++) {
        offs[i] = all.len;
        gen_object(&all, dim);
    }
    offs[n] = all.len;
    for (int i = 0; i < n; i++) {
        sv_buf_append(&body, all.data + offs[i], offs[i + 1] - offs[i]);
        sv_buf_putc(&body, '\n');
    }
    size_t props_bytes = 0;
    {
        /* average size of the properties part, for the record */
        const char *p = strstr((char *)all.data, "\"properties\"");
        const char *e = (char *)all.data + offs[1];
        props_bytes = (size_t)(e - p);
    }
    double mb = (double)all.len / 1e6;
    sv_record *r = sv_record_new();
    sv_buf enc = {0}, encs = {0}, js = {0};
    size_t *eoffs = malloc(sizeof(size_t) * ((size_t)n + 1));
    row rows[8];
    int nrows = 0;

    /* fast path */
    double best = 1e30, best_wall = 0;
    for (int rd = 0; rd < rounds; rd++) {
        int64_t t0 = cpu_ns(), w0 = sv_mono_ns();
        for (int i = 0; i < n; i++) {
            if (sv_record_parse_json(r, s, (char *)all.data + offs[i], offs[i + 1] - offs[i], NULL, &err)) {
                fprintf(stderr, "parse: %s\n", err.msg);
                return 1;
            }
            enc.len = 0;
            sv_record_encode(r, s, &enc, &err);
        }
        double t = (double)(cpu_ns() - t0) / 1e9;
        double w = (double)(sv_mono_ns() - w0) / 1e9;
        if (t < best) {
            best = t;
            best_wall = w;
        }
    }
    rows[nrows++] = (row){"record fast path: parse+validate+encode", n / best, mb / best, best, n / best_wall};

    /* jansson peer */
    float *vec = malloc(sizeof(float) * (size_t)dim);
    sv_prop_value *props = calloc(s->n_props, sizeof *props);
    sv_str strs[64];
    int64_t ints[64];
    double dbls[64];
    uint8_t bools[64];
    sv_uuid uuids[64];
    sv_record pr;
    best = 1e30;
    for (int rd = 0; rd < rounds; rd++) {
        int64_t t0 = cpu_ns(), w0 = sv_mono_ns();
        for (int i = 0; i < n; i++) {
            if (jansson_one((char *)all.data + offs[i], offs[i + 1] - offs[i], s, &pr, vec, props, strs, ints, dbls,
                            bools, uuids, &enc, &err)) {
                fprintf(stderr, "jansson: %s\n", err.msg);
                return 1;
            }
        }
        double t = (double)(cpu_ns() - t0) / 1e9;
        double w = (double)(sv_mono_ns() - w0) / 1e9;
        if (t < best) {
            best = t;
            best_wall = w;
        }
    }
    rows[nrows++] = (row){"jansson peer: json_loadb+walk+validate+encode", n / best, mb / best, best, n / best_wall};

    /* listing path: decode + to_json */
    for (int i = 0; i < n; i++) {
        eoffs[i] = encs.len;
        sv_record_parse_json(r, s, (char *)all.data + offs[i], offs[i + 1] - offs[i], NULL, &err);
        sv_record_encode(r, s, &encs, &err);
    }
    eoffs[n] = encs.len;
    best = 1e30;
    size_t out_bytes = 0;
    for (int rd = 0; rd < rounds; rd++) {
        int64_t t0 = cpu_ns(), w0 = sv_mono_ns();
        out_bytes = 0;
        for (int i = 0; i < n; i++) {
            if (sv_record_decode(r, s, encs.data + eoffs[i], eoffs[i + 1] - eoffs[i], &err)) {
                fprintf(stderr, "decode: %s\n", err.msg);
                return 1;
            }
            js.len = 0;
            sv_record_to_json(r, s, NULL, NULL, &js);
            out_bytes += js.len;
        }
        double t = (double)(cpu_ns() - t0) / 1e9;
        double w = (double)(sv_mono_ns() - w0) / 1e9;
        if (t < best) {
            best = t;
            best_wall = w;
        }
    }
    rows[nrows++] = (row){"record listing path: decode+to_json", n / best, (double)out_bytes / 1e6 / best, best, n / best_wall};

    /* route peek (batch import runs it before the parse) */
    best = 1e30;
    for (int rd = 0; rd < rounds; rd++) {
        int64_t t0 = cpu_ns(), w0 = sv_mono_ns();
        for (int i = 0; i < n; i++) {
            sv_object_route rt;
            if (sv_record_peek_route((char *)all.data + offs[i], offs[i + 1] - offs[i], &rt, &err)) {
                fprintf(stderr, "peek: %s\n", err.msg);
                return 1;
            }
        }
        double t = (double)(cpu_ns() - t0) / 1e9;
        double w = (double)(sv_mono_ns() - w0) / 1e9;
        if (t < best) {
            best = t;
            best_wall = w;
        }
    }
    rows[nrows++] = (row){"record route peek", n / best, mb / best, best, n / best_wall};

    /* splitter over an NDJSON body in 64 KiB chunks */
    best = 1e30;
    for (int rd = 0; rd < rounds; rd++) {
        int64_t t0 = cpu_ns(), w0 = sv_mono_ns();
        sv_batch_splitter *sp = sv_batch_splitter_new(true, 1 << 20);
        size_t got = 0;
        for (size_t o = 0; o < body.len; o += 65536) {
            size_t c = body.len - o < 65536 ? body.len - o : 65536;
            sv_batch_splitter_feed(sp, (char *)body.data + o, c, on_obj, &got, &err);
        }
        sv_batch_splitter_finish(sp, on_obj, &got, &err);
        sv_batch_splitter_free(sp);
        double t = (double)(cpu_ns() - t0) / 1e9;
        double w = (double)(sv_mono_ns() - w0) / 1e9;
        if (t < best) {
            best = t;
            best_wall = w;
        }
    }
    rows[nrows++] = (row){"batch splitter (NDJSON, 64 KiB chunks)", n / best, (double)body.len / 1e6 / best, best, n / best_wall};

    printf("record benchmark: %d objects x %d rounds (best round), %d-d vector, %.0f bytes/object "
           "(~%zu bytes of properties), 1 thread; rates from thread CPU time\n\n",
           n, rounds, dim, (double)all.len / n, props_bytes);
    printf("%-48s %14s %10s %11s %16s\n", "path", "objects/s/core", "MB/s", "vs jansson", "objects/s (wall)");
    for (int i = 0; i < nrows; i++)
        printf("%-48s %14.0f %10.1f %10.2fx %16.0f\n", rows[i].name, rows[i].objs_per_s, rows[i].mb_per_s,
               rows[i].objs_per_s / rows[1].objs_per_s, rows[i].wall_objs_per_s);
    FILE *f = fopen(out_path, "w");
    if (f) {
        fprintf(f, "{\"benchmark\":\"record\",\"objects\":%d,\"rounds\":%d,\"dim\":%d,\"bytes_per_object\":%.0f,"
                   "\"results\":[",
                n, rounds, dim, (double)all.len / n);
        for (int i = 0; i < nrows; i++)
            fprintf(f, "%s{\"path\":\"%s\",\"objects_per_s\":%.0f,\"mb_per_s\":%.2f,\"seconds\":%.4f}", i ? "," : "",
                    rows[i].name, rows[i].objs_per_s, rows[i].mb_per_s, rows[i].secs);
        fprintf(f, "]}\n");
        fclose(f);
        printf("\nwrote %s\n", out_path);
    } else {
        fprintf(stderr, "cannot write %s\n", out_path);
    }
    free(vec);
    free(props);
    free(offs);
    free(eoffs);
    sv_buf_free(&all);
    sv_buf_free(&body);
    sv_buf_free(&enc);
    sv_buf_free(&encs);
    sv_buf_free(&js);
    sv_record_free(r);
    sv_schema_free(s);
    return 0;
}
