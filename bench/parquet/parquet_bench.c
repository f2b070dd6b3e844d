/* parquet_bench N OUT.parquet [zstd_level] — writes N rows of (uuid string,
 * two timestamps, 768-float vector, ~300-byte JSON) with ZSTD and prints one
 * JSON line: rows, seconds (writer calls only, not data generation), bytes,
 * peak RSS. Rows are generated one at a time from a fixed seed, so memory
 * does not depend on N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parquet.h"

#define DIM 768

static uint64_t S = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    S ^= S << 13;
    S ^= S >> 7;
    S ^= S << 17;
    return S;
}

static const char *WORDS[] = {"vector", "shard", "export", "parquet", "tenant", "snapshot",
                              "record", "index", "query", "object", "store", "column",
                              "stream", "upload", "lorem", "ipsum", "dolor", "amet"};

static int file_write(void *ud, const void *d, size_t n, sv_err *err)
{
    return fwrite(d, 1, n, ud) == n ? 0 : sv_fail(err, SV_EIO, "write failed");
}

static int file_close(void *ud, sv_err *err)
{
    return fclose(ud) == 0 ? 0 : sv_fail(err, SV_EIO, "close failed");
}

#define CHECK(x) do { if ((x) < 0) { fprintf(stderr, "parquet_bench: %s\n", err.msg); return 1; } } while (0)

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: parquet_bench N OUT.parquet [zstd_level]\n");
        return 2;
    }
    long n = strtol(argv[1], NULL, 10);
    int level = argc > 3 ? atoi(argv[3]) : 3;
    sv_err err = {0};
    sv_pq_schema *s = sv_pq_schema_new();
    int id, ct, ut, vec, js;
    CHECK(id = sv_pq_schema_leaf(s, SV_PQ_ROOT, "id", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, 0, &err));
    CHECK(ct = sv_pq_schema_leaf(s, SV_PQ_ROOT, "creation_time", SV_PQ_INT64,
                                 SV_PQ_LT_TIMESTAMP_MS, 0, 0, &err));
    CHECK(ut = sv_pq_schema_leaf(s, SV_PQ_ROOT, "update_time", SV_PQ_INT64,
                                 SV_PQ_LT_TIMESTAMP_MS, 0, 0, &err));
    CHECK(vec = sv_pq_schema_list(s, SV_PQ_ROOT, "vector", SV_PQ_OPTIONAL, DIM, &err));
    CHECK(sv_pq_schema_leaf(s, vec, "element", SV_PQ_FLOAT, 0, 0, 0, &err));
    CHECK(js = sv_pq_schema_leaf(s, SV_PQ_ROOT, "properties", SV_PQ_BYTE_ARRAY, SV_PQ_LT_JSON, 0,
                                 SV_PQ_OPTIONAL, &err));
    FILE *fp = fopen(argv[2], "wb");
    if (!fp) {
        perror(argv[2]);
        return 1;
    }
    sv_pq_sink sink = {file_write, file_close, fp};
    sv_pq_options opt = {.codec = SV_PQ_CODEC_ZSTD, .level = level};
    sv_pq_writer *w;
    CHECK(sv_pq_writer_new(s, &opt, &sink, &w, &err));
    sv_pq_schema_free(s);

    float v[DIM];
    char ids[37], json[512];
    int64_t t0 = 1700000000000, spent = 0;
    for (long r = 0; r < n; r++) {
        sv_uuid u;
        uint64_t a = rnd(), b = rnd();
        memcpy(u.b, &a, 8);
        memcpy(u.b + 8, &b, 8);
        sv_uuid_format(&u, ids);
        for (int i = 0; i < DIM; i++)
            v[i] = (float)((int64_t)(rnd() >> 11) - (1ll << 52)) / (float)(1ll << 52);
        int jl = snprintf(json, sizeof json, "{\"title\":\"row %ld\",\"count\":%ld,\"body\":\"", r,
                          (long)(rnd() % 100000));
        while (jl < 280) {
            const char *wd = WORDS[rnd() % (sizeof WORDS / sizeof WORDS[0])];
            jl += snprintf(json + jl, sizeof json - (size_t)jl, "%s ", wd);
        }
        jl += snprintf(json + jl, sizeof json - (size_t)jl, "\",\"ok\":%s}",
                       rnd() & 1 ? "true" : "false");
        int64_t created = t0 + r * 17, updated = created + (int64_t)(rnd() % 86400000);

        int64_t st = sv_mono_ns();
        CHECK(sv_pq_append_str(w, id, ids, 36, &err));
        CHECK(sv_pq_append_i64(w, ct, created, &err));
        CHECK(sv_pq_append_i64(w, ut, updated, &err));
        CHECK(sv_pq_append_list(w, vec, v, NULL, DIM, &err));
        CHECK(sv_pq_append_str(w, js, json, (size_t)jl, &err));
        CHECK(sv_pq_writer_end_row(w, &err));
        spent += sv_mono_ns() - st;
    }
    int64_t st = sv_mono_ns();
    CHECK(sv_pq_writer_close(w, &err));
    spent += sv_mono_ns() - st;
    int64_t bytes = sv_pq_writer_bytes(w);
    sv_pq_writer_free(w);
    printf("{\"rows\":%ld,\"seconds\":%.4f,\"bytes\":%lld,\"peak_rss\":%lld}\n", n, spent / 1e9,
           (long long)bytes, (long long)sv_peak_rss_bytes());
    return 0;
}
