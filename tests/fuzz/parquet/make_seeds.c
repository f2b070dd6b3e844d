/* Writes seed files for fuzz_reader with the module's own writer: flat
 * columns, optional ones, lists, nested lists, groups; each codec. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parquet.h"

typedef struct { FILE *f; } fsink;
static int w(void *ud, const void *d, size_t n, sv_err *e) { (void)e; return fwrite(d, 1, n, ((fsink *)ud)->f) == n ? 0 : SV_EIO; }
static int c(void *ud, sv_err *e) { (void)e; return fclose(((fsink *)ud)->f) ? SV_EIO : 0; }

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    sv_pq_codec codecs[] = {SV_PQ_CODEC_NONE, SV_PQ_CODEC_SNAPPY, SV_PQ_CODEC_ZSTD};
    for (int k = 0; k < 3; k++) {
        sv_err err;
        sv_pq_schema *s = sv_pq_schema_new();
        int id = sv_pq_schema_leaf(s, SV_PQ_ROOT, "id", SV_PQ_BYTE_ARRAY, SV_PQ_LT_STRING, 0, SV_PQ_DICT, &err);
        int n = sv_pq_schema_leaf(s, SV_PQ_ROOT, "n", SV_PQ_INT64, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
        int vec = sv_pq_schema_list(s, SV_PQ_ROOT, "vec", SV_PQ_OPTIONAL, 0, &err);
        sv_pq_schema_leaf(s, vec, "element", SV_PQ_FLOAT, SV_PQ_LT_NONE, 0, 0, &err);
        int g = sv_pq_schema_group(s, SV_PQ_ROOT, "g", SV_PQ_OPTIONAL, &err);
        int b = sv_pq_schema_leaf(s, g, "b", SV_PQ_BOOLEAN, SV_PQ_LT_NONE, 0, SV_PQ_OPTIONAL, &err);
        int mv = sv_pq_schema_list(s, g, "mv", SV_PQ_OPTIONAL, 0, &err);
        int inner = sv_pq_schema_list(s, mv, "element", SV_PQ_OPTIONAL, 0, &err);
        sv_pq_schema_leaf(s, inner, "element", SV_PQ_DOUBLE, SV_PQ_LT_NONE, 0, 0, &err);
        char path[512];
        snprintf(path, sizeof path, "%s/seed%d.parquet", argv[1], k);
        fsink fs = {fopen(path, "wb")};
        if (!fs.f) return 1;
        sv_pq_sink sink = {w, c, &fs};
        sv_pq_options o = {.codec = codecs[k], .row_group_rows = 5, .page_bytes = 64};
        sv_pq_writer *wr;
        if (sv_pq_writer_new(s, &o, &sink, &wr, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        for (int i = 0; i < 12; i++) {
            char t[16];
            snprintf(t, sizeof t, "row%d", i % 4);
            sv_pq_append_str(wr, id, t, strlen(t), &err);
            if (i % 3) sv_pq_append_i64(wr, n, i * 1000, &err); else sv_pq_append_null(wr, n, &err);
            float f[3] = {(float)i, 0.5f, -1};
            if (i % 4 == 1) sv_pq_append_null(wr, vec, &err); else sv_pq_append_list(wr, vec, f, NULL, (size_t)(i % 3), &err);
            if (i % 5 == 2) sv_pq_append_null(wr, g, &err);
            else {
                sv_pq_append_bool(wr, b, i & 1, &err);
                double d[4] = {1, 2, 3, 4};
                uint32_t lens[2] = {2, (uint32_t)(i % 3)};
                sv_pq_append_list2(wr, mv, d, lens, 2, &err);
            }
            if (sv_pq_writer_end_row(wr, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        }
        if (sv_pq_writer_close(wr, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        sv_pq_writer_free(wr);
        sv_pq_schema_free(s);
    }
    return 0;
}
