/* `shardvault import-parquet create|status|cancel` — the import API with a
 * progress bar — and `shardvault import FILE.parquet`: the file is read here
 * (the Parquet reader), its rows turned into objects (the importer's row
 * conversion) and sent as NDJSON batches to POST /v1/batch/objects. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "importer.h"
#include "parquet.h"


/* A path segment of plain characters only (ids and backends are). */
static bool plain(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
              *s == '_'))
            return false;
    return true;
}

static json_t *get_json(void *cl, const char *path, long *status)
{
    sv_buf resp = {0};
    *status = sv_cli_request(cl, "GET", path, NULL, 0, NULL, &resp);
    json_t *j = *status == 200 ? json_loadb((const char *)resp.data, resp.len, 0, NULL) : NULL;
    if (*status != 200)
        sv_cli_finish(*status, &resp);
    sv_buf_free(&resp);
    return j;
}

static void bar(double frac, char b[31])
{
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        b[i] = i < fill ? '#' : '.';
    b[30] = 0;
}

/* One progress line: rows, MB, rate, ETA. */
static void show(bool tty, int64_t done, int64_t total, int64_t bytes, int64_t failed, double secs, bool final)
{
    double rate = secs > 0 ? (double)done / secs : 0;
    double frac = total > 0 ? (double)done / (double)total : 0;
    double eta = rate > 0 && total > done ? (double)(total - done) / rate : 0;
    if (tty) {
        char b[31];
        bar(frac, b);
        fprintf(stderr, "\r[%s] %5.1f%%  %lld/%lld rows  %.1f MB  %lld failed  %.0f rows/s  ETA %.0fs   ", b,
                frac * 100, (long long)done, (long long)total, (double)bytes / 1e6, (long long)failed, rate, eta);
        if (final)
            fputc('\n', stderr);
    } else if (final) {
        fprintf(stderr, "import: %lld/%lld rows, %.1f MB, %lld failed, %.0f rows/s\n", (long long)done,
                (long long)total, (double)bytes / 1e6, (long long)failed, rate);
    }
}

static int follow(void *cl, const char *backend, const char *id, bool wait)
{
    char path[400];
    snprintf(path, sizeof path, "/v1/import/%s/%s", backend, id);
    bool tty = isatty(2);
    int64_t t0 = sv_mono_ns();
    for (;;) {
        long st;
        json_t *j = get_json(cl, path, &st);
        if (!j)
            return 1;
        const char *status = json_string_value(json_object_get(j, "status"));
        bool running = status && (!strcmp(status, "STARTED") || !strcmp(status, "TRANSFERRING"));
        int64_t total = 0, read = 0;
        size_t i;
        json_t *f;
        json_array_foreach(json_object_get(j, "files"), i, f)
        {
            total += json_integer_value(json_object_get(f, "rows"));
            read += json_integer_value(json_object_get(f, "rowsImported"));
        }
        int64_t done = read + json_integer_value(json_object_get(j, "objectsSkipped")) +
                       json_integer_value(json_object_get(j, "objectsFailed"));
        if (!wait || !running) {
            if (wait)
                show(tty, done, total, json_integer_value(json_object_get(j, "bytesRead")),
                     json_integer_value(json_object_get(j, "objectsFailed")), (double)(sv_mono_ns() - t0) / 1e9, true);
            char *s = json_dumps(j, JSON_INDENT(2));
            if (s)
                printf("%s\n", s);
            free(s);
            bool ok = status && (!strcmp(status, "SUCCESS") || (!wait && running));
            json_decref(j);
            return ok ? 0 : 1;
        }
        show(tty, done, total, json_integer_value(json_object_get(j, "bytesRead")),
             json_integer_value(json_object_get(j, "objectsFailed")), (double)(sv_mono_ns() - t0) / 1e9, false);
        json_decref(j);
        sv_sleep_ms(250);
    }
}

static int usage(bool help)
{
    fprintf(help ? stdout : stderr,
            "usage: shardvault import-parquet create ID [--backend filesystem|s3] (--export EXPORT_ID | --files G1,G2)\n"
            "           [--collection C] [--create-collection] [--mapping JSON] [--on-conflict fail|skip|replace]\n"
            "           [--tenant T] [--wait]\n"
            "       shardvault import-parquet status ID [--backend B] [--wait]\n"
            "       shardvault import-parquet cancel ID [--backend B]\n"
            "Imports Parquet files from the server's export backend (docs/import.md). --wait follows the import\n"
            "with a progress bar (rows, MB, rate, ETA) and exits 0 on SUCCESS.\n");
    return help ? 0 : 2;
}

int sv_cli_import_parquet(void *cl, int argc, char **argv)
{
    if (argc < 3 || sv_cli_flag(argc, argv, "--help") || sv_cli_flag(argc, argv, "-h"))
        return usage(sv_cli_flag(argc, argv, "--help") || sv_cli_flag(argc, argv, "-h"));
    const char *sub = argv[1], *id = argv[2];
    const char *backend = sv_cli_opt(argc, argv, "--backend");
    if (!backend)
        backend = "filesystem";
    if (!plain(id) || !plain(backend)) {
        fprintf(stderr, "shardvault import-parquet: the id and backend are [A-Za-z0-9_-] names\n");
        return 2;
    }
    char path[400];
    if (!strcmp(sub, "create")) {
        json_t *body = json_pack("{s:s}", "id", id);
        const char *ex = sv_cli_opt(argc, argv, "--export"), *files = sv_cli_opt(argc, argv, "--files");
        if (!ex == !files) {
            json_decref(body);
            fprintf(stderr, "shardvault import-parquet create: give --export or --files\n");
            return 2;
        }
        if (ex) {
            json_object_set_new(body, "source", json_pack("{s:s}", "export", ex));
        } else {
            json_t *arr = json_array();
            const char *p = files;
            while (*p) {
                const char *c = strchr(p, ',');
                size_t n = c ? (size_t)(c - p) : strlen(p);
                if (n)
                    json_array_append_new(arr, json_stringn(p, n));
                p += n + (c ? 1 : 0);
            }
            json_object_set_new(body, "source", json_pack("{s:o}", "files", arr));
        }
        const char *coll = sv_cli_opt(argc, argv, "--collection"), *map = sv_cli_opt(argc, argv, "--mapping"),
                   *oc = sv_cli_opt(argc, argv, "--on-conflict"), *tenant = sv_cli_opt(argc, argv, "--tenant");
        if (coll)
            json_object_set_new(body, "collection", json_string(coll));
        if (sv_cli_flag(argc, argv, "--create-collection"))
            json_object_set_new(body, "createCollection", json_true());
        if (oc)
            json_object_set_new(body, "onConflict", json_string(oc));
        if (tenant)
            json_object_set_new(body, "tenant", json_string(tenant));
        if (map) {
            json_error_t je;
            json_t *m = json_loads(map, 0, &je);
            if (!m) {
                json_decref(body);
                fprintf(stderr, "shardvault import-parquet create: --mapping is not JSON: %s\n", je.text);
                return 2;
            }
            json_object_set_new(body, "mapping", m);
        }
        char *s = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        snprintf(path, sizeof path, "/v1/import/%s", backend);
        sv_buf resp = {0};
        long st = sv_cli_request(cl, "POST", path, s, strlen(s), NULL, &resp);
        free(s);
        if (st != 202 || sv_cli_flag(argc, argv, "--wait") == false) {
            int rc = sv_cli_finish(st, &resp);
            sv_buf_free(&resp);
            return rc;
        }
        sv_buf_free(&resp);
        return follow(cl, backend, id, true);
    }
    if (!strcmp(sub, "status"))
        return follow(cl, backend, id, sv_cli_flag(argc, argv, "--wait"));
    if (!strcmp(sub, "cancel")) {
        snprintf(path, sizeof path, "/v1/import/%s/%s", backend, id);
        sv_buf resp = {0};
        long st = sv_cli_request(cl, "DELETE", path, NULL, 0, NULL, &resp);
        int rc = sv_cli_finish(st, &resp);
        sv_buf_free(&resp);
        if (rc == 0)
            printf("import %s canceled\n", id);
        return rc;
    }
    return usage(false);
}

/* ---- import FILE.parquet ------------------------------------------------------ */

static int send(void *cl, sv_buf *body, int64_t *ok, int64_t *failed, int *shown)
{
    sv_buf resp = {0};
    long st = sv_cli_request(cl, "POST", "/v1/batch/objects", (const char *)body->data, body->len,
                             "application/x-ndjson", &resp);
    if (st != 200) {
        int rc = sv_cli_finish(st, &resp);
        sv_buf_free(&resp);
        return rc ? rc : 1;
    }
    json_t *j = json_loadb((const char *)resp.data, resp.len, 0, NULL);
    *ok += json_integer_value(json_object_get(j, "ok"));
    int64_t f = json_integer_value(json_object_get(j, "failed"));
    *failed += f;
    size_t i;
    json_t *r;
    if (f)
        json_array_foreach(json_object_get(j, "results"), i, r)
        {
            const char *e = json_string_value(json_object_get(r, "error"));
            if (e && (*shown)++ < 10)
                fprintf(stderr, "\nobject %s: %s\n", json_is_string(json_object_get(r, "id")) ? json_string_value(json_object_get(r, "id")) : "(no id)", e);
        }
    json_decref(j);
    sv_buf_free(&resp);
    return 0;
}

int sv_cli_import_parquet_local(void *cl, int argc, char **argv)
{
    const char *collection = sv_cli_opt(argc, argv, "--collection"), *tenant = sv_cli_opt(argc, argv, "--tenant"),
               *bs = sv_cli_opt(argc, argv, "--batch-size"), *map = sv_cli_opt(argc, argv, "--mapping");
    if (!collection) {
        fprintf(stderr, "usage: shardvault import FILE.parquet --collection C [--tenant T] [--batch-size N] "
                        "[--mapping JSON]\n");
        return 2;
    }
    int64_t batch = 1000;
    if (bs && (sv_parse_size(bs, &batch) || batch < 1)) {
        fprintf(stderr, "shardvault import: --batch-size must be a positive integer\n");
        return 2;
    }
    json_t *mapping = NULL;
    if (map) {
        json_error_t je;
        if (!(mapping = json_loads(map, 0, &je))) {
            fprintf(stderr, "shardvault import: --mapping is not JSON: %s\n", je.text);
            return 2;
        }
    }
    sv_err err = {0};
    sv_pq_reader *rd = NULL;
    sv_import_rows *conv = NULL;
    int rc = sv_pq_reader_open_file(argv[1], NULL, &rd, &err);
    if (rc == 0)
        rc = sv_import_rows_new(sv_pq_reader_root(rd), mapping, argv[1], &conv, &err);
    if (rc) {
        fprintf(stderr, "shardvault import: %s\n", err.msg);
        sv_pq_reader_free(rd);
        json_decref(mapping);
        return 1;
    }
    bool tty = isatty(2);
    int64_t total = sv_pq_reader_num_rows(rd), ok = 0, failed = 0, rownum = 0, t0 = sv_mono_ns(), last = 0;
    int shown = 0;
    sv_buf body = {0};
    size_t in_batch = 0;
    for (;;) {
        const sv_pq_value *rows;
        size_t n;
        if ((rc = sv_pq_reader_next(rd, (size_t)batch, &rows, &n, NULL, NULL, &err))) {
            fprintf(stderr, "\nshardvault import: %s\n", err.msg);
            rc = 1;
            break;
        }
        for (size_t i = 0; i < n; i++, rownum++) {
            char why[400], id[37];
            if (sv_import_row(conv, &rows[i], rownum, collection, tenant, &body, id, why, sizeof why)) {
                failed++;
                if (shown++ < 10)
                    fprintf(stderr, "\nrow %lld: %s\n", (long long)rownum, why);
                continue;
            }
            sv_buf_putc(&body, '\n');
            in_batch++;
        }
        if (in_batch >= (size_t)batch || (n == 0 && in_batch)) {
            rc = send(cl, &body, &ok, &failed, &shown);
            sv_buf_reset(&body);
            in_batch = 0;
            if (rc)
                break;
        }
        int64_t now = sv_mono_ns();
        if (now - last > 200000000ll) {
            show(tty, ok + failed, total, sv_pq_reader_bytes_read(rd), failed, (double)(now - t0) / 1e9, false);
            last = now;
        }
        if (n == 0)
            break;
    }
    double secs = (double)(sv_mono_ns() - t0) / 1e9;
    show(tty, ok + failed, total, sv_pq_reader_bytes_read(rd), failed, secs, true);
    printf("imported %lld, failed %lld, %.0f objects/s (%.1f s)\n", (long long)ok, (long long)failed,
           secs > 0 ? (double)(ok + failed) / secs : 0, secs);
    sv_buf_free(&body);
    sv_import_rows_free(conv);
    sv_pq_reader_free(rd);
    json_decref(mapping);
    return rc ? rc : (failed ? 1 : 0);
}
