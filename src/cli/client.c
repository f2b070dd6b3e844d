/* Client commands: thin wrappers over the HTTP API. */
#include <curl/curl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

typedef struct client {
    const char *base;
    CURL *curl;
    const char *api_key; /* --api-key / SHARDVAULT_API_KEY, or NULL */
} client;

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    return sv_buf_append(ud, p, size * n) ? 0 : size * n;
}

/* Room for a request path with its query (user values percent-encoded). */
#define PATH_LEN 2048


/* Writes fmt at out + at; each %s argument is a user-supplied path segment or
 * query value and is percent-encoded (all but A-Z a-z 0-9 - . _ ~), so that
 * "a b", "x?y", "c/d" or "t&limit=1" reach the server as that one value and
 * never as another path or another parameter. Returns 0, or 2 (message
 * printed) when the path would not fit. */
static int vpathf(char *out, size_t cap, size_t at, const char *fmt, va_list ap)
{
    static const char hx[] = "0123456789ABCDEF";
    size_t n = at;
    for (const char *f = fmt; *f; f++) {
        if (f[0] == '%' && f[1] == 's') {
            f++;
            for (const unsigned char *v = (const unsigned char *)va_arg(ap, const char *); *v; v++) {
                bool plain = (*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') || (*v >= '0' && *v <= '9') ||
                             *v == '-' || *v == '.' || *v == '_' || *v == '~';
                if (n + 4 > cap)
                    goto too_long;
                if (plain) {
                    out[n++] = (char)*v;
                } else {
                    out[n++] = '%';
                    out[n++] = hx[*v >> 4];
                    out[n++] = hx[*v & 15];
                }
            }
        } else {
            if (n + 2 > cap)
                goto too_long;
            out[n++] = *f;
        }
    }
    out[n] = '\0';
    return 0;
too_long:
    out[at] = '\0';
    fprintf(stderr, "shardvault: an argument is too long for a request URL (over %zu bytes encoded)\n", cap);
    return 2;
}

static int pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vpathf(out, cap, 0, fmt, ap);
    va_end(ap);
    return rc;
}

/* Like pathf, appending to the path already in out. */
static int pathf_add(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vpathf(out, cap, strlen(out), fmt, ap);
    va_end(ap);
    return rc;
}

/* Sends one request; returns the HTTP status, or -1 when the server could not
 * be reached (message printed). */
static long http(client *c, const char *method, const char *path, const char *body, size_t len, const char *ctype,
                 sv_buf *resp)
{
    char url[PATH_LEN + 1024];
    if ((size_t)snprintf(url, sizeof url, "%s%s", c->base, path) >= sizeof url) {
        fprintf(stderr, "shardvault: the request URL is too long (over %zu bytes)\n", sizeof url);
        return -1;
    }
    curl_easy_reset(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, resp);
    /* https://: the server's certificate is always verified (curl's default,
     * never turned off), against --cacert / SHARDVAULT_CACERT when set. */
    const char *cacert = sv_env_str("SHARDVAULT_CACERT", NULL);
    if (cacert && *cacert)
        curl_easy_setopt(c->curl, CURLOPT_CAINFO, cacert);
    char tls_why[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, tls_why);
    struct curl_slist *h = NULL;
    char auth[300];
    if (c->api_key) { /* only ever in the header */
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->api_key);
        h = curl_slist_append(h, auth);
        explicit_bzero(auth, sizeof auth);
    }
    if (body) {
        char ct[128];
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
        h = curl_slist_append(h, ct);
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (h)
        curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
    CURLcode cc = curl_easy_perform(c->curl);
    curl_slist_free_all(h);
    if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE) {
        fprintf(stderr, "shardvault: cannot verify the TLS certificate of %s: %s (give the CA that issued it with "
                        "--cacert FILE or SHARDVAULT_CACERT)\n",
                c->base, tls_why[0] ? tls_why : curl_easy_strerror(cc));
        return -1;
    }
    if (cc != CURLE_OK) {
        fprintf(stderr, "shardvault: cannot reach %s: %s (is the server running? set --url or SHARDVAULT_URL)\n",
                c->base, curl_easy_strerror(cc));
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* Prints a response: pretty JSON on success, the error message otherwise. */
static int finish(long status, sv_buf *resp)
{
    if (status < 0)
        return 1;
    json_t *j = resp->len ? json_loadb((const char *)resp->data, resp->len, 0, NULL) : NULL;
    if (status >= 400) {
        json_t *e = j ? json_array_get(json_object_get(j, "error"), 0) : NULL;
        const char *msg = e ? json_string_value(json_object_get(e, "message")) : NULL;
        fprintf(stderr, "error (HTTP %ld): %s\n", status, msg ? msg : (resp->len ? sv_buf_cstr(resp) : "no message"));
        json_decref(j);
        return 1;
    }
    if (j) {
        char *s = json_dumps(j, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(j);
    } else if (resp->len) {
        fwrite(resp->data, 1, resp->len, stdout);
    }
    return 0;
}

static int simple(client *c, const char *method, const char *path, const char *body)
{
    sv_buf resp = {0};
    long st = http(c, method, path, body, body ? strlen(body) : 0, NULL, &resp);
    int rc = finish(st, &resp);
    sv_buf_free(&resp);
    return rc;
}

static char *read_all(const char *arg)
{
    /* "-" = stdin; a path to a file; otherwise the argument itself is JSON. */
    if (arg[0] == '{' || arg[0] == '[')
        return strdup(arg);
    FILE *f = strcmp(arg, "-") ? fopen(arg, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "shardvault: cannot open %s\n", arg);
        return NULL;
    }
    sv_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sv_buf_append(&b, chunk, n);
    if (f != stdin)
        fclose(f);
    return sv_buf_cstr(&b);
}

static int cmd_collections(client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    if (!strcmp(sub, "list"))
        return simple(c, "GET", "/v1/collections", NULL);
    if (!strcmp(sub, "create") && argc == 3) {
        char *body = read_all(argv[2]);
        int rc = body ? simple(c, "POST", "/v1/collections", body) : 1;
        free(body);
        return rc;
    }
    if ((!strcmp(sub, "get") || !strcmp(sub, "delete")) && argc == 3) {
        char path[PATH_LEN];
        if (pathf(path, sizeof path, "/v1/collections/%s", argv[2]))
            return 2;
        return simple(c, !strcmp(sub, "get") ? "GET" : "DELETE", path, NULL);
    }
    fputs("usage: shardvault collections create FILE|-|JSON\n"
          "       shardvault collections list\n"
          "       shardvault collections get NAME\n"
          "       shardvault collections delete NAME\n",
          strcmp(sub, "--help") ? stderr : stdout);
    return strcmp(sub, "--help") ? 2 : 0;
}

static int tenants_move(client *c, int argc, char **argv);
static bool wants_help(int argc, char **argv);

static int cmd_tenants(client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    if ((!strcmp(sub, "offload") || !strcmp(sub, "onload")) && argc >= 4 && !wants_help(argc, argv))
        return tenants_move(c, argc, argv);
    if (argc >= 3) {
        char path[PATH_LEN];
        if (pathf(path, sizeof path, "/v1/collections/%s/tenants", argv[2]))
            return 2;
        if (!strcmp(sub, "list"))
            return simple(c, "GET", path, NULL);
        if (argc >= 4) {
            json_t *arr = json_array();
            bool del = !strcmp(sub, "delete");
            const char *status = !strcmp(sub, "activate") ? "ACTIVE" : !strcmp(sub, "deactivate") ? "INACTIVE" : NULL;
            for (int i = 3; i < argc; i++)
                json_array_append_new(arr, del ? json_string(argv[i])
                                               : status ? json_pack("{s:s,s:s}", "name", argv[i], "status", status)
                                                        : json_pack("{s:s}", "name", argv[i]));
            json_t *body = json_pack("{s:o}", "tenants", arr);
            char *s = json_dumps(body, JSON_COMPACT);
            json_decref(body);
            const char *method = del ? "DELETE" : status ? "PUT" : !strcmp(sub, "add") ? "POST" : NULL;
            int rc = method ? simple(c, method, path, s) : 2;
            free(s);
            if (method)
                return rc;
        }
    }
    fputs("usage: shardvault tenants list COLLECTION\n"
          "       shardvault tenants add|activate|deactivate|delete COLLECTION TENANT...\n"
          "       shardvault tenants offload COLLECTION TENANT... [--no-wait]\n"
          "       shardvault tenants onload COLLECTION TENANT... [--inactive] [--no-wait]\n"
          "offload moves a tenant's files to the location (OFFLOADED); onload brings them back (ACTIVE,\n"
          "or INACTIVE with --inactive). Both follow the jobs with a progress bar unless --no-wait.\n",
          strcmp(sub, "--help") ? stderr : stdout);
    return strcmp(sub, "--help") ? 2 : 0;
}

/* Parses "--name value" options after the positional arguments. */
const char *sv_cli_opt(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

/* A subcommand's usage: on stdout with exit 0 when asked for (--help), else
 * on stderr with exit 2. */
static int usage(int argc, char **argv, const char *sub, const char *text)
{
    bool help = wants_help(argc, argv) || !strcmp(sub, "--help");
    fputs(text, help ? stdout : stderr);
    return help ? 0 : 2;
}

static int cmd_object(client *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    if (argc < 3 || wants_help(argc, argv)) {
        fprintf(wants_help(argc, argv) ? stdout : stderr, "usage: shardvault %s COLLECTION ID [--tenant T]\n", cmd);
        return wants_help(argc, argv) ? 0 : 2;
    }
    char path[PATH_LEN];
    const char *tenant = sv_cli_opt(argc, argv, "--tenant");
    if (pathf(path, sizeof path, "/v1/collections/%s/objects/%s", argv[1], argv[2]) ||
        (tenant && pathf_add(path, sizeof path, "?tenant=%s", tenant)))
        return 2;
    return simple(c, !strcmp(cmd, "get") ? "GET" : "DELETE", path, NULL);
}

static int cmd_list(client *c, int argc, char **argv)
{
    if (argc < 2 || wants_help(argc, argv)) {
        fprintf(wants_help(argc, argv) ? stdout : stderr,
                "usage: shardvault list COLLECTION [--limit N] [--after ID] [--tenant T]\n");
        return wants_help(argc, argv) ? 0 : 2;
    }
    char path[PATH_LEN];
    const char *limit = sv_cli_opt(argc, argv, "--limit"), *after = sv_cli_opt(argc, argv, "--after"),
               *tenant = sv_cli_opt(argc, argv, "--tenant");
    if (pathf(path, sizeof path, "/v1/collections/%s/objects?limit=%s", argv[1], limit ? limit : "100") ||
        (after && pathf_add(path, sizeof path, "&after=%s", after)) ||
        (tenant && pathf_add(path, sizeof path, "&tenant=%s", tenant)))
        return 2;
    return simple(c, "GET", path, NULL);
}

/* ---- import ------------------------------------------------------------- */

/* Fills b with a 30-column bar for frac (clamped to 0..1); returns frac as
 * clamped. Every progress display of the CLI draws with it. */
static double fill_bar(double frac, char b[31])
{
    if (frac < 0)
        frac = 0;
    if (frac > 1)
        frac = 1;
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        b[i] = i < fill ? '#' : '.';
    b[30] = '\0';
    return frac;
}

typedef struct progress {
    bool tty;
    int64_t total_bytes, done_bytes, ok, failed;
    int64_t start_ns, last_ns;
} progress;

static void progress_show(progress *p, bool final)
{
    int64_t now = sv_mono_ns();
    if (!final && now - p->last_ns < 200000000LL)
        return;
    p->last_ns = now;
    double secs = (double)(now - p->start_ns) / 1e9;
    double rate = secs > 0 ? (double)(p->ok + p->failed) / secs : 0;
    if (p->tty) {
        char bar[31];
        double frac = fill_bar(p->total_bytes > 0 ? (double)p->done_bytes / (double)p->total_bytes : 0, bar);
        double eta = frac > 0 ? secs / frac - secs : 0;
        fprintf(stderr, "\r[%s] %5.1f%%  %lld ok  %lld failed  %.0f obj/s  ETA %.0fs   ", bar, frac * 100,
                (long long)p->ok, (long long)p->failed, rate, eta);
        if (final)
            fputc('\n', stderr);
    } else if (final || now - p->start_ns > 0) {
        fprintf(stderr, "import: %lld ok, %lld failed, %.0f objects/s\n", (long long)p->ok, (long long)p->failed, rate);
    }
}

static int send_batch(client *c, sv_buf *body, progress *p, int *errors_shown)
{
    sv_buf resp = {0};
    long st = http(c, "POST", "/v1/batch/objects", (const char *)body->data, body->len, "application/x-ndjson", &resp);
    if (st != 200) {
        int rc = finish(st, &resp);
        sv_buf_free(&resp);
        return rc ? rc : 1;
    }
    json_t *j = json_loadb((const char *)resp.data, resp.len, 0, NULL);
    p->ok += json_integer_value(json_object_get(j, "ok"));
    int64_t failed = json_integer_value(json_object_get(j, "failed"));
    p->failed += failed;
    if (failed) {
        json_t *results = json_object_get(j, "results"), *r;
        size_t i;
        json_array_foreach(results, i, r)
        {
            const char *e = json_string_value(json_object_get(r, "error"));
            if (e && (*errors_shown)++ < 10)
                fprintf(stderr, "%sobject %s: %s\n", p->tty ? "\n" : "",
                        json_is_string(json_object_get(r, "id")) ? json_string_value(json_object_get(r, "id")) : "(no id)", e);
        }
    }
    json_decref(j);
    sv_buf_free(&resp);
    return 0;
}

/* For the subcommands that live in their own files (cli.h). */
long sv_cli_request(void *cl, const char *method, const char *path, const char *body, size_t len, const char *ctype,
                    sv_buf *resp)
{
    return http(cl, method, path, body, len, ctype, resp);
}
int sv_cli_finish(long status, sv_buf *resp) { return finish(status, resp); }

static int cmd_import(client *c, int argc, char **argv)
{
    size_t an = argc > 1 ? strlen(argv[1]) : 0;
    if (an > 8 && !strcmp(argv[1] + an - 8, ".parquet"))
        return sv_cli_import_parquet_local(c, argc, argv);
    const char *collection = sv_cli_opt(argc, argv, "--collection"), *tenant = sv_cli_opt(argc, argv, "--tenant"),
               *bs = sv_cli_opt(argc, argv, "--batch-size");
    if (argc < 2 || wants_help(argc, argv) || !collection || argv[1][0] == '-') {
        fprintf(wants_help(argc, argv) ? stdout : stderr,
                "usage: shardvault import FILE.ndjson|- --collection C [--tenant T] [--batch-size N]\n"
                "       shardvault import FILE.parquet --collection C [--tenant T] [--batch-size N] [--mapping JSON]\n"
                "Streams one JSON object per line to POST /v1/batch/objects in batches (default 1000).\n"
                "Lines without a \"collection\" get --collection (and --tenant) added.\n"
                "A .parquet file is read here, row group by row group, its rows sent the same way\n"
                "(--mapping as in POST /v1/import, docs/import.md). For files the server can reach\n"
                "(its export backends) use shardvault import-parquet create.\n");
        return wants_help(argc, argv) ? 0 : 2;
    }
    int64_t batch_size = 1000;
    if (bs && (sv_parse_size(bs, &batch_size) || batch_size < 1)) {
        fprintf(stderr, "shardvault import: --batch-size must be a positive integer\n");
        return 2;
    }
    FILE *f = strcmp(argv[1], "-") ? fopen(argv[1], "rb") : stdin;
    if (!f) {
        fprintf(stderr, "shardvault import: cannot open %s\n", argv[1]);
        return 1;
    }
    progress p = {.tty = isatty(2), .start_ns = sv_mono_ns()};
    struct stat sb;
    if (f != stdin && fstat(fileno(f), &sb) == 0)
        p.total_bytes = sb.st_size;
    /* {"collection":C[,"tenant":T], with both as JSON strings (escaped) */
    sv_buf prefix = {0};
    sv_buf_append_str(&prefix, "{\"collection\":");
    sv_buf_json_string(&prefix, collection, strlen(collection));
    if (tenant) {
        sv_buf_append_str(&prefix, ",\"tenant\":");
        sv_buf_json_string(&prefix, tenant, strlen(tenant));
    }
    sv_buf_putc(&prefix, ',');
    sv_buf body = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int64_t in_batch = 0;
    int rc = 0, errors_shown = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        p.done_bytes += n;
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\n' || *s == '\r' || *s == '\0')
            continue;
        if (*s == '{' && !strstr(s, "\"collection\"")) {
            const char *rest = s + 1;
            while (*rest == ' ')
                rest++;
            sv_buf_append(&body, prefix.data, *rest == '}' ? prefix.len - 1 : prefix.len); /* "{}" takes no comma */
            sv_buf_append_str(&body, rest);
        } else {
            sv_buf_append_str(&body, s);
        }
        if (body.len && body.data[body.len - 1] != '\n')
            sv_buf_putc(&body, '\n');
        if (++in_batch == batch_size) {
            rc = send_batch(c, &body, &p, &errors_shown);
            sv_buf_reset(&body);
            in_batch = 0;
            progress_show(&p, false);
        }
    }
    if (rc == 0 && in_batch)
        rc = send_batch(c, &body, &p, &errors_shown);
    free(line);
    sv_buf_free(&body);
    sv_buf_free(&prefix);
    if (f != stdin)
        fclose(f);
    p.done_bytes = p.total_bytes;
    progress_show(&p, true);
    double secs = (double)(sv_mono_ns() - p.start_ns) / 1e9;
    printf("imported %lld, failed %lld, %.0f objects/s (%.1f s)\n", (long long)p.ok, (long long)p.failed,
           secs > 0 ? (double)(p.ok + p.failed) / secs : 0, secs);
    return rc ? rc : (p.failed ? 1 : 0);
}


/* ---- export ------------------------------------------------------------- */

static json_t *split_names(const char *csv)
{
    json_t *arr = json_array();
    const char *p = csv;
    while (p && *p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n)
            json_array_append_new(arr, json_stringn(p, n));
        p = comma ? comma + 1 : NULL;
    }
    return arr;
}

/* Sums objectsExported / bytesWritten over every shard of a status answer. */
static void export_totals(json_t *st, int64_t *objects, int64_t *bytes)
{
    *objects = *bytes = 0;
    const char *c, *sh;
    json_t *shards, *p;
    json_object_foreach(json_object_get(st, "shardStatus"), c, shards)
    {
        json_object_foreach(shards, sh, p)
        {
            *objects += json_integer_value(json_object_get(p, "objectsExported"));
            *bytes += json_integer_value(json_object_get(p, "bytesWritten"));
        }
    }
}

static void export_bar(json_t *st, int64_t start_ns, bool tty, bool final)
{
    int64_t objects, bytes;
    export_totals(st, &objects, &bytes);
    int64_t total = json_integer_value(json_object_get(st, "objectsTotal"));
    double secs = (double)(sv_mono_ns() - start_ns) / 1e9;
    double rate = secs > 0 ? (double)objects / secs : 0;
    char bar[31];
    double frac = fill_bar(total > 0 ? (double)objects / (double)total : 0, bar);
    char eta[32] = "-";
    if (rate > 0 && total > 0)
        snprintf(eta, sizeof eta, "%.0fs", (double)(total - objects) / rate);
    const char *status = json_string_value(json_object_get(st, "status"));
    if (tty) {
        fprintf(stderr, "\r[%s] %5.1f%%  %lld/%lld objects  %.1f MB  %.0f obj/s  ETA %s  %s   ", bar, frac * 100,
                (long long)objects, (long long)total, (double)bytes / 1e6, rate, eta, status ? status : "?");
        if (final)
            fputc('\n', stderr);
    } else if (final) {
        fprintf(stderr, "export: %s, %lld objects, %.1f MB, %.0f objects/s\n", status ? status : "?",
                (long long)objects, (double)bytes / 1e6, rate);
    }
}

static bool terminal(const char *s)
{
    return s && (!strcmp(s, "SUCCESS") || !strcmp(s, "FAILED") || !strcmp(s, "CANCELED"));
}

static int export_wait(client *c, const char *backend, const char *id)
{
    char path[PATH_LEN];
    if (pathf(path, sizeof path, "/v1/export/%s/%s", backend, id))
        return 2;
    int64_t start = sv_mono_ns();
    bool tty = isatty(2);
    for (;;) {
        sv_buf resp = {0};
        long st = http(c, "GET", path, NULL, 0, NULL, &resp);
        if (st != 200) {
            int rc = finish(st, &resp);
            sv_buf_free(&resp);
            return rc ? rc : 1;
        }
        json_t *j = json_loadb((const char *)resp.data, resp.len, 0, NULL);
        sv_buf_free(&resp);
        if (!j) {
            fprintf(stderr, "shardvault: %s answered something that is not JSON; is --url a shardvault server?\n",
                    c->base);
            return 1;
        }
        const char *status = json_string_value(json_object_get(j, "status"));
        bool done = terminal(status);
        export_bar(j, start, tty, done);
        if (done) {
            char *s = json_dumps(j, JSON_INDENT(2));
            puts(s);
            free(s);
            int rc = !strcmp(status, "SUCCESS") ? 0 : 1;
            if (rc && json_string_value(json_object_get(j, "error")))
                fprintf(stderr, "export %s: %s\n", status, json_string_value(json_object_get(j, "error")));
            json_decref(j);
            return rc;
        }
        json_decref(j);
        sv_sleep_ms(250);
    }
}

static int cmd_export(client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    const char *backend = sv_cli_opt(argc, argv, "--backend");
    if (!backend)
        backend = "filesystem";
    bool help = wants_help(argc, argv);
    bool has_id = argc > 2 && argv[2][0] != '-';
    if (!help && !strcmp(sub, "create") && has_id) {
        const char *inc = sv_cli_opt(argc, argv, "--include"), *exc = sv_cli_opt(argc, argv, "--exclude"),
                   *schema = sv_cli_opt(argc, argv, "--schema"), *codec = sv_cli_opt(argc, argv, "--compression"),
                   *level = sv_cli_opt(argc, argv, "--compression-level");
        bool wait = false;
        for (int i = 3; i < argc; i++)
            wait |= !strcmp(argv[i], "--wait");
        json_t *body = json_pack("{s:s,s:s}", "id", argv[2], "file_format", "parquet");
        if (inc)
            json_object_set_new(body, "include", split_names(inc));
        if (exc)
            json_object_set_new(body, "exclude", split_names(exc));
        json_t *o = json_object();
        if (schema)
            json_object_set_new(o, "schema", json_string(schema));
        if (codec)
            json_object_set_new(o, "compression", json_string(codec));
        if (level)
            json_object_set_new(o, "compression_level", json_integer(strtoll(level, NULL, 10)));
        if (json_object_size(o))
            json_object_set_new(body, "options", o);
        else
            json_decref(o);
        char *s = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        char path[PATH_LEN];
        if (pathf(path, sizeof path, "/v1/export/%s", backend)) {
            free(s);
            return 2;
        }
        sv_buf resp = {0};
        long st = http(c, "POST", path, s, strlen(s), NULL, &resp);
        free(s);
        int rc;
        if (st == 200 && wait) {
            sv_buf_free(&resp);
            return export_wait(c, backend, argv[2]);
        }
        rc = finish(st, &resp);
        sv_buf_free(&resp);
        return rc;
    }
    if (!help && (!strcmp(sub, "status") || !strcmp(sub, "cancel")) && has_id) {
        char path[PATH_LEN];
        if (pathf(path, sizeof path, "/v1/export/%s/%s", backend, argv[2]))
            return 2;
        for (int i = 3; i < argc; i++)
            if (!strcmp(argv[i], "--wait") && !strcmp(sub, "status"))
                return export_wait(c, backend, argv[2]);
        int rc = simple(c, !strcmp(sub, "status") ? "GET" : "DELETE", path, NULL);
        if (rc == 0 && !strcmp(sub, "cancel"))
            printf("export %s canceled\n", argv[2]);
        return rc;
    }
    if (!help && !strcmp(sub, "list")) {
        char path[PATH_LEN];
        if (pathf(path, sizeof path, "/v1/export/%s", backend))
            return 2;
        return simple(c, "GET", path, NULL);
    }
    bool h = help || !strcmp(sub, "--help");
    fputs("usage: shardvault export create ID [--backend filesystem|s3] [--include C1,C2 | --exclude C1,C2]\n"
          "                                [--schema typed|weaviate] [--compression zstd|snappy|none]\n"
          "                                [--compression-level N] [--wait]\n"
          "       shardvault export status ID [--backend B] [--wait]\n"
          "       shardvault export cancel ID [--backend B]\n"
          "       shardvault export list [--backend B]\n"
          "Exports collections to Parquet at the point in time of the request (see docs/export.md).\n"
          "--wait follows the export with a progress bar (objects, MB, rate, ETA) and exits 0 on SUCCESS.\n",
          h ? stdout : stderr);
    return h ? 0 : 2;
}

/* ---- snapshots ------------------------------------------------------------ */

static json_t *get_json(client *c, const char *path, long *status)
{
    sv_buf resp = {0};
    *status = http(c, "GET", path, NULL, 0, NULL, &resp);
    json_t *j = *status == 200 ? json_loadb((const char *)resp.data, resp.len, 0, NULL) : NULL;
    if (*status != 200 && *status > 0)
        finish(*status, &resp);
    sv_buf_free(&resp);
    return j;
}

static void bar(bool tty, const char *what, int64_t done, int64_t total, const char *extra, int64_t start_ns,
                bool final)
{
    char b[31];
    double frac = fill_bar(total > 0 ? (double)done / (double)total : (final ? 1 : 0), b);
    double secs = (double)(sv_mono_ns() - start_ns) / 1e9;
    double mbs = secs > 0 ? (double)done / 1e6 / secs : 0;
    if (tty) {
        fprintf(stderr, "\r%-9s [%s] %5.1f%%  %.1f/%.1f MB  %.0f MB/s%s   ", what, b, frac * 100, (double)done / 1e6,
                (double)total / 1e6, mbs, extra);
        if (final)
            fputc('\n', stderr);
    } else if (final) {
        fprintf(stderr, "%s: %.1f MB in %.1f s%s\n", what, (double)done / 1e6, secs, extra);
    }
}

/* Polls a snapshot until it leaves PENDING, with a bar for bytes hashed and
 * uploaded. Returns the final record. */
static json_t *follow_snapshot(client *c, const char *path)
{
    bool tty = isatty(2);
    int64_t start = sv_mono_ns();
    for (;;) {
        long st;
        json_t *j = get_json(c, path, &st);
        if (!j)
            return NULL;
        const char *status = json_string_value(json_object_get(j, "status"));
        bool pending = status && !strcmp(status, "PENDING");
        char extra[64];
        snprintf(extra, sizeof extra, "  uploaded %.1f MB",
                 (double)json_integer_value(json_object_get(j, "bytesUploaded")) / 1e6);
        int64_t total = json_integer_value(json_object_get(j, "bytes"));
        int64_t hashed = pending ? json_integer_value(json_object_get(j, "bytesHashed")) : total;
        bar(tty, "snapshot", hashed, total, extra, start, !pending);
        if (!pending)
            return j;
        json_decref(j);
        sv_sleep_ms(200);
    }
}

static json_t *follow_job(client *c, const char *id)
{
    char path[PATH_LEN];
    if (pathf(path, sizeof path, "/v1/restore-jobs/%s", id))
        return NULL;
    bool tty = isatty(2);
    int64_t start = sv_mono_ns();
    for (;;) {
        long st;
        json_t *j = get_json(c, path, &st);
        if (!j)
            return NULL;
        const char *state = json_string_value(json_object_get(j, "state"));
        bool done = state && (!strcmp(state, "COMPLETED") || !strcmp(state, "FAILED"));
        bar(tty, "restore", json_integer_value(json_object_get(j, "bytesCopied")),
            json_integer_value(json_object_get(j, "bytesTotal")), "", start, done);
        if (done)
            return j;
        json_decref(j);
        sv_sleep_ms(200);
    }
}

static int print_final(json_t *j, const char *field, const char *ok)
{
    if (!j)
        return 1;
    char *s = json_dumps(j, JSON_INDENT(2));
    puts(s);
    free(s);
    const char *v = json_string_value(json_object_get(j, field));
    int rc = v && !strcmp(v, ok) ? 0 : 1;
    if (rc) {
        const char *why = json_string_value(json_object_get(j, !strcmp(field, "state") ? "reason" : "error"));
        fprintf(stderr, "failed: %s\n", why ? why : "(no reason)");
    }
    json_decref(j);
    return rc;
}

bool sv_cli_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], flag))
            return true;
    return false;
}

/* ---- tenant offload / onload, the registry, snapshot mounts -------------------- */

static int tenants_move(client *c, int argc, char **argv)
{
    bool off = !strcmp(argv[1], "offload");
    const char *target = off ? "OFFLOADED" : sv_cli_flag(argc, argv, "--inactive") ? "INACTIVE" : "ACTIVE";
    char path[PATH_LEN];
    if (pathf(path, sizeof path, "/v1/collections/%s/tenants", argv[2]))
        return 2;
    json_t *arr = json_array();
    for (int i = 3; i < argc; i++)
        if (argv[i][0] != '-')
            json_array_append_new(arr, json_pack("{s:s,s:s}", "name", argv[i], "status", target));
    json_t *body = json_pack("{s:o}", "tenants", arr);
    char *b = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    sv_buf resp = {0};
    int64_t asked_ms = sv_now_ms();
    long st = http(c, "PUT", path, b, strlen(b), NULL, &resp);
    free(b);
    if (st != 200 || sv_cli_flag(argc, argv, "--no-wait")) {
        int rc = finish(st, &resp);
        sv_buf_free(&resp);
        return rc;
    }
    sv_buf_free(&resp);
    /* Follow: the tenants settle out of OFFLOADING/ONLOADING; bytes from the jobs this run started. */
    bool tty = isatty(2);
    int64_t start = sv_mono_ns();
    char jobs[PATH_LEN];
    if (pathf(jobs, sizeof jobs, "/v1/jobs?kind=%s&collection=%s&limit=1000", off ? "offload" : "onload", argv[2]))
        return 2;
    for (;;) {
        json_t *t = get_json(c, path, &st);
        if (!t)
            return 1;
        json_t *j = get_json(c, jobs, &st);
        size_t i, n = 0, done = 0;
        json_t *e;
        json_array_foreach(json_object_get(t, "tenants"), i, e)
        {
            const char *name = json_string_value(json_object_get(e, "name"));
            const char *status = json_string_value(json_object_get(e, "status"));
            for (int k = 3; k < argc; k++)
                if (name && status && !strcmp(name, argv[k])) {
                    n++;
                    done += strcmp(status, "OFFLOADING") && strcmp(status, "ONLOADING");
                }
        }
        int64_t bytes = 0, total = 0;
        json_array_foreach(j ? json_object_get(j, "jobs") : NULL, i, e)
        {
            if (json_integer_value(json_object_get(e, "createdAt")) + 1000 < asked_ms)
                continue; /* an earlier run's */
            bytes += json_integer_value(json_object_get(e, "bytesDone"));
            total += json_integer_value(json_object_get(e, "bytesTotal"));
        }
        json_decref(j);
        char extra[64];
        snprintf(extra, sizeof extra, " %zu/%zu tenants", done, n);
        bool final = done == n;
        bar(tty, off ? "offload" : "onload", total ? bytes : (int64_t)done, total ? total : (int64_t)n, extra, start,
            final);
        if (final) {
            int rc = 0;
            json_array_foreach(json_object_get(t, "tenants"), i, e)
            {
                const char *name = json_string_value(json_object_get(e, "name"));
                const char *status = json_string_value(json_object_get(e, "status"));
                for (int k = 3; k < argc; k++)
                    if (name && status && !strcmp(name, argv[k])) {
                        printf("%s %s\n", name, status);
                        if (strcmp(status, target)) {
                            fprintf(stderr, "tenant %s is %s, not %s: see shardvault jobs list --kind %s\n", name,
                                    status, target, off ? "offload" : "onload");
                            rc = 1;
                        }
                    }
            }
            json_decref(t);
            return rc;
        }
        json_decref(t);
        sv_sleep_ms(200);
    }
}

/* Adds ?k=v&… for the options present. */
static int query_opts(char *path, size_t cap, int argc, char **argv, const char *const *names, size_t n)
{
    char sep = strchr(path, '?') ? '&' : '?';
    for (size_t i = 0; i < n; i++) {
        char flag[40];
        snprintf(flag, sizeof flag, "--%s", names[i]);
        const char *v = sv_cli_opt(argc, argv, flag);
        if (v) {
            if (pathf_add(path, cap, sep == '?' ? "?%s=%s" : "&%s=%s", names[i], v))
                return 2;
            sep = '&';
        }
    }
    return 0;
}

static int cmd_registry(client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    char path[PATH_LEN];
    if (wants_help(argc, argv))
        sub = "--help";
    if (!strcmp(sub, "status"))
        return simple(c, "GET", "/v1/registry", NULL);
    if (!strcmp(sub, "list")) {
        static const char *const f[] = {"collection", "state"};
        snprintf(path, sizeof path, "/v1/registry/shards");
        if (query_opts(path, sizeof path, argc, argv, f, 2))
            return 2;
        return simple(c, "GET", path, NULL);
    }
    if (!strcmp(sub, "gc"))
        return simple(c, "POST", "/v1/registry/gc", NULL);
    if (argc >= 4 && (!strcmp(sub, "get") || !strcmp(sub, "recover") || !strcmp(sub, "pin") || !strcmp(sub, "unpin"))) {
        if (pathf(path, sizeof path, "/v1/registry/shards/%s/%s", argv[2], argv[3]) ||
            (strcmp(sub, "get") && pathf_add(path, sizeof path, "/%s", sub)))
            return 2;
        return simple(c, strcmp(sub, "get") ? "POST" : "GET", path, NULL);
    }
    return usage(argc, argv, sub,
                 "usage: shardvault registry status\n"
                 "       shardvault registry list [--collection C] [--state STATE]\n"
                 "       shardvault registry get|recover|pin|unpin COLLECTION SHARD\n"
                 "       shardvault registry gc\n"
                 "Every shard this node can serve: local ones, offloaded tenants and shards of mounted\n"
                 "snapshots (\"SNAPSHOT@SHARD\"), with their state, cache bytes and hydration progress.\n");
}

/* snapshot mount|unmount|get|list-objects|restore-objects; -1 when sub is another one. */
static int snapshot_mounts(client *c, int argc, char **argv, const char *sub)
{
    char path[PATH_LEN];
    bool mount = !strcmp(sub, "mount"), unmount = !strcmp(sub, "unmount");
    bool get = !strcmp(sub, "get") && argc >= 5 && argv[4][0] != '-';
    bool list = !strcmp(sub, "list-objects"), restore = !strcmp(sub, "restore-objects") && argc >= 5;
    if (!mount && !unmount && !get && !list && !restore)
        return -1;
    if (pathf(path, sizeof path, "/v1/collections/%s/snapshots/%s", argv[2], argv[3]))
        return 2;
    if (mount || unmount)
        return pathf_add(path, sizeof path, "/mount") ? 2 : simple(c, mount ? "POST" : "DELETE", path, NULL);
    if (get) {
        static const char *const f[] = {"tenant"};
        if (pathf_add(path, sizeof path, "/objects/%s", argv[4]) || query_opts(path, sizeof path, argc, argv, f, 1))
            return 2;
        return simple(c, "GET", path, NULL);
    }
    if (list) {
        static const char *const f[] = {"limit", "after", "tenant"};
        if (pathf_add(path, sizeof path, "/objects") || query_opts(path, sizeof path, argc, argv, f, 3))
            return 2;
        return simple(c, "GET", path, NULL);
    }
    json_t *ids = json_array();
    for (int i = 4; i < argc && argv[i][0] != '-'; i++)
        json_array_append_new(ids, json_string(argv[i]));
    const char *oc = sv_cli_opt(argc, argv, "--on-conflict");
    json_t *body = json_pack("{s:o,s:s}", "ids", ids, "onConflict", oc ? oc : "replace");
    if (sv_cli_opt(argc, argv, "--tenant"))
        json_object_set_new(body, "tenant", json_string(sv_cli_opt(argc, argv, "--tenant")));
    char *b = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    int rc = pathf_add(path, sizeof path, "/objects/restore") ? 2 : simple(c, "POST", path, b);
    free(b);
    return rc;
}

static int cmd_snapshot(client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    bool wait = sv_cli_flag(argc, argv, "--wait");
    char path[PATH_LEN];
    if (argc >= 4 && argv[2][0] != '-' && argv[3][0] != '-' && !wants_help(argc, argv)) {
        int rc = snapshot_mounts(c, argc, argv, sub);
        if (rc >= 0)
            return rc;
    }
    if (!strcmp(sub, "list") && argc >= 3 && argv[2][0] != '-') {
        if (pathf(path, sizeof path, "/v1/collections/%s/snapshots", argv[2]))
            return 2;
        return simple(c, "GET", path, NULL);
    }
    if ((!strcmp(sub, "describe") || !strcmp(sub, "drop")) && argc >= 4 && argv[2][0] != '-' && argv[3][0] != '-') {
        if (pathf(path, sizeof path, "/v1/collections/%s/snapshots/%s", argv[2], argv[3]))
            return 2;
        return simple(c, !strcmp(sub, "drop") ? "DELETE" : "GET", path, NULL);
    }
    if (!strcmp(sub, "create") && argc >= 4 && argv[2][0] != '-' && argv[3][0] != '-') {
        const char *desc = sv_cli_opt(argc, argv, "--description");
        char follow[PATH_LEN];
        if (pathf(path, sizeof path, "/v1/collections/%s/snapshots", argv[2]) ||
            pathf(follow, sizeof follow, "/v1/collections/%s/snapshots/%s", argv[2], argv[3]))
            return 2;
        json_t *body = json_pack("{s:s,s:s}", "name", argv[3], "description", desc ? desc : "");
        char *b = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        sv_buf resp = {0};
        long st = http(c, "POST", path, b, strlen(b), NULL, &resp);
        free(b);
        if (st != 202 || !wait) {
            int rc = finish(st, &resp);
            sv_buf_free(&resp);
            return rc;
        }
        sv_buf_free(&resp);
        return print_final(follow_snapshot(c, follow), "status", "COMMITTED");
    }
    if (!strcmp(sub, "restore") && argc >= 4 && argv[2][0] != '-' && argv[3][0] != '-' && sv_cli_opt(argc, argv, "--target")) {
        json_t *body = json_pack("{s:s}", "target", sv_cli_opt(argc, argv, "--target"));
        if (pathf(path, sizeof path, "/v1/collections/%s/snapshots/%s/restore", argv[2], argv[3])) {
            json_decref(body);
            return 2;
        }
        char *b = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        sv_buf resp = {0};
        long st = http(c, "POST", path, b, strlen(b), NULL, &resp);
        free(b);
        if (st != 202 || !wait) {
            int rc = finish(st, &resp);
            sv_buf_free(&resp);
            return rc;
        }
        json_t *j = json_loadb((const char *)resp.data, resp.len, 0, NULL);
        sv_buf_free(&resp);
        const char *id = json_string_value(json_object_get(j, "jobId"));
        int rc = id ? print_final(follow_job(c, id), "state", "COMPLETED") : 1;
        json_decref(j);
        return rc;
    }
    if (!strcmp(sub, "job") && argc >= 3 && argv[2][0] != '-') {
        if (pathf(path, sizeof path, "/v1/restore-jobs/%s", argv[2]))
            return 2;
        if (wait)
            return print_final(follow_job(c, argv[2]), "state", "COMPLETED");
        return simple(c, "GET", path, NULL);
    }
    if (!strcmp(sub, "jobs"))
        return simple(c, "GET", "/v1/restore-jobs", NULL);
    if (!strcmp(sub, "gc"))
        return simple(c, "POST", "/v1/snapshots/gc", NULL);
    return usage(argc, argv, sub,
                 "usage: shardvault snapshot create COLLECTION NAME [--description TEXT] [--wait]\n"
          "       shardvault snapshot list COLLECTION\n"
          "       shardvault snapshot describe COLLECTION NAME\n"
          "       shardvault snapshot drop COLLECTION NAME\n"
          "       shardvault snapshot restore COLLECTION NAME --target NEW_COLLECTION [--wait]\n"
          "       shardvault snapshot job ID [--wait] | jobs | gc\n"
          "       shardvault snapshot mount|unmount COLLECTION NAME\n"
          "       shardvault snapshot get COLLECTION NAME ID [--tenant T]\n"
          "       shardvault snapshot list-objects COLLECTION NAME [--limit N] [--after ID] [--tenant T]\n"
          "       shardvault snapshot restore-objects COLLECTION NAME ID... [--tenant T]\n"
          "                                 [--on-conflict replace|skip]\n"
          "A mounted snapshot is read in place, as it was (docs/registry.md); restore-objects puts\n"
          "those objects back into the live collection.\n"
          "--wait follows the operation with a progress bar (bytes hashed/uploaded, bytes copied)\n"
          "and exits 1 if it ends FAILED.\n");
}

/* ---- jobs and schedules ----------------------------------------------------------- */

static int cmd_jobs(client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    char path[PATH_LEN];
    if (!strcmp(sub, "list") && !wants_help(argc, argv)) {
        static const char *const filters[] = {"kind", "state", "collection", "limit", "after"};
        snprintf(path, sizeof path, "/v1/jobs");
        char sep = '?';
        for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
            char flag[32];
            snprintf(flag, sizeof flag, "--%s", filters[i]);
            const char *v = sv_cli_opt(argc, argv, flag);
            if (!v)
                continue;
            char fmt[48];
            snprintf(fmt, sizeof fmt, "%c%s=%%s", sep, filters[i]);
            if (pathf_add(path, sizeof path, fmt, v))
                return 2;
            sep = '&';
        }
        return simple(c, "GET", path, NULL);
    }
    if ((!strcmp(sub, "get") || !strcmp(sub, "cancel")) && argc >= 3 && argv[2][0] != '-') {
        if (pathf(path, sizeof path, !strcmp(sub, "get") ? "/v1/jobs/%s" : "/v1/jobs/%s/cancel", argv[2]))
            return 2;
        return simple(c, !strcmp(sub, "get") ? "GET" : "POST", path, NULL);
    }
    return usage(argc, argv, sub,
                 "usage: shardvault jobs list [--kind K] [--state S] [--collection C] [--limit N] [--after ID]\n"
          "       shardvault jobs get ID\n"
          "       shardvault jobs cancel ID\n"
          "Every long operation (export, snapshot, restore, gc) is a job; states are PENDING, RUNNING,\n"
          "SUCCEEDED, FAILED and CANCELED. Lists are newest first; --after takes the previous page's next.\n");
}

/* schedules create NAME --kind K (--cron EXPR | --every D) [--collection C] [--backend B]
 * [--include C,..] [--keep-last N] [--keep-daily N] ... */
static int schedule_create(client *c, int argc, char **argv)
{
    json_t *b = json_pack("{s:s}", "name", argv[2]);
    static const char *const strs[][2] = {{"--kind", "kind"}, {"--cron", "cron"}, {"--every", "every"},
                                          {"--collection", "collection"}, {"--backend", "backend"}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const char *v = sv_cli_opt(argc, argv, strs[i][0]);
        if (v)
            json_object_set_new(b, strs[i][1], json_string(v));
    }
    const char *inc = sv_cli_opt(argc, argv, "--include");
    if (inc)
        json_object_set_new(b, "include", split_names(inc));
    static const char *const keeps[][2] = {{"--keep-last", "keepLast"},     {"--keep-hourly", "keepHourly"},
                                           {"--keep-daily", "keepDaily"},   {"--keep-weekly", "keepWeekly"},
                                           {"--keep-monthly", "keepMonthly"}, {"--keep-yearly", "keepYearly"}};
    json_t *ret = json_object();
    for (size_t i = 0; i < sizeof keeps / sizeof keeps[0]; i++) {
        const char *v = sv_cli_opt(argc, argv, keeps[i][0]);
        if (!v)
            continue;
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 0) {
            fprintf(stderr, "shardvault: %s needs a whole number, got '%s'\n", keeps[i][0], v);
            json_decref(ret);
            json_decref(b);
            return 2;
        }
        json_object_set_new(ret, keeps[i][1], json_integer(n));
    }
    json_object_set_new(b, "retention", ret);
    char *txt = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    int rc = simple(c, "POST", "/v1/schedules", txt);
    free(txt);
    return rc;
}

static int cmd_schedules(client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    char path[PATH_LEN];
    bool named = argc >= 3 && argv[2][0] != '-';
    if (!strcmp(sub, "list") && !wants_help(argc, argv))
        return simple(c, "GET", "/v1/schedules", NULL);
    if (!strcmp(sub, "create") && named && !wants_help(argc, argv))
        return schedule_create(c, argc, argv);
    if (named && (!strcmp(sub, "get") || !strcmp(sub, "delete") || !strcmp(sub, "pause") || !strcmp(sub, "resume"))) {
        if (pathf(path, sizeof path, "/v1/schedules/%s", argv[2]))
            return 2;
        if (!strcmp(sub, "get"))
            return simple(c, "GET", path, NULL);
        if (!strcmp(sub, "delete"))
            return simple(c, "DELETE", path, NULL);
        return simple(c, "PUT", path, !strcmp(sub, "pause") ? "{\"paused\":true}" : "{\"paused\":false}");
    }
    return usage(argc, argv, sub,
                 "usage: shardvault schedules create NAME --kind snapshot|export (--cron 'M H DOM MON DOW' | --every 6h)\n"
          "                 [--collection C] [--backend filesystem|s3] [--include C,..]\n"
          "                 [--keep-last N] [--keep-hourly N] [--keep-daily N] [--keep-weekly N]\n"
          "                 [--keep-monthly N] [--keep-yearly N]\n"
          "       shardvault schedules list | get NAME | pause NAME | resume NAME | delete NAME\n"
          "A schedule creates a snapshot (of --collection) or an export (of --include, to --backend) at\n"
          "each cron slot (UTC) or interval, then keeps what the --keep-* rules keep (a snapshot kept by\n"
          "any rule is kept) and deletes the rest of what it created. Deleting a schedule keeps them.\n");
}

/* ---- keys, roles, whoami ------------------------------------------------------------- */

static json_t *csv_array(const char *csv)
{
    json_t *arr = json_array();
    for (const char *p = csv; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n)
            json_array_append_new(arr, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    return arr;
}

static int send_json(client *c, const char *method, const char *path, json_t *body)
{
    char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    int rc = simple(c, method, path, b);
    free(b);
    return rc;
}

static int cmd_keys(client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    const char *roles = sv_cli_opt(argc, argv, "--roles");
    char path[PATH_LEN];
    bool named = argc >= 3 && argv[2][0] != '-';
    if (!strcmp(sub, "list") && !wants_help(argc, argv))
        return simple(c, "GET", "/v1/authz/keys", NULL);
    if (!strcmp(sub, "create") && named && roles) {
        json_t *b = json_pack("{s:s,s:o}", "name", argv[2], "roles", csv_array(roles));
        const char *exp = sv_cli_opt(argc, argv, "--expires-at");
        if (exp)
            json_object_set_new(b, "expiresAt", json_integer(strtoll(exp, NULL, 10)));
        return send_json(c, "POST", "/v1/authz/keys", b);
    }
    if (named && !strcmp(sub, "delete"))
        return pathf(path, sizeof path, "/v1/authz/keys/%s", argv[2]) ? 2 : simple(c, "DELETE", path, NULL);
    if (named && !strcmp(sub, "rotate")) {
        const char *g = sv_cli_opt(argc, argv, "--grace-seconds");
        if (pathf(path, sizeof path, "/v1/authz/keys/%s/rotate", argv[2]))
            return 2;
        return send_json(c, "POST", path, json_pack("{s:I}", "graceSeconds", (json_int_t)(g ? atoll(g) : 0)));
    }
    if (named && !strcmp(sub, "set-roles") && roles) {
        if (pathf(path, sizeof path, "/v1/authz/keys/%s", argv[2]))
            return 2;
        return send_json(c, "PUT", path, json_pack("{s:o}", "roles", csv_array(roles)));
    }
    return usage(argc, argv, sub,
                 "usage: shardvault keys create NAME --roles R1,R2 [--expires-at MS]   (prints the key once)\n"
          "       shardvault keys list | delete ID | rotate ID [--grace-seconds N] | set-roles ID --roles R1,R2\n"
          "Roles: admin, operator, writer, reader, or one made with 'shardvault roles create'.\n"
          "Every command sends --api-key / SHARDVAULT_API_KEY as 'Authorization: Bearer'.\n");
}

static int cmd_roles(client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    char path[PATH_LEN];
    bool named = argc >= 3 && argv[2][0] != '-';
    if (!strcmp(sub, "list") && !wants_help(argc, argv))
        return simple(c, "GET", "/v1/authz/roles", NULL);
    if (named && (!strcmp(sub, "get") || !strcmp(sub, "delete"))) {
        if (pathf(path, sizeof path, "/v1/authz/roles/%s", argv[2]))
            return 2;
        return simple(c, !strcmp(sub, "get") ? "GET" : "DELETE", path, NULL);
    }
    const char *acts = sv_cli_opt(argc, argv, "--actions");
    if (named && !strcmp(sub, "create") && acts) {
        const char *coll = sv_cli_opt(argc, argv, "--collections"), *ten = sv_cli_opt(argc, argv, "--tenants");
        json_t *perm = json_pack("{s:o,s:s,s:s}", "actions", csv_array(acts), "collections", coll ? coll : "*",
                                 "tenants", ten ? ten : "*");
        return send_json(c, "POST", "/v1/authz/roles", json_pack("{s:s,s:[o]}", "name", argv[2], "permissions", perm));
    }
    return usage(argc, argv, sub,
                 "usage: shardvault roles create NAME --actions read,write[,manage,operate] [--collections GLOB]\n"
          "                                    [--tenants GLOB]\n"
          "       shardvault roles list | get NAME | delete NAME\n"
          "Globs are letters, digits, _ - and * (e.g. 'Art*'); no regular expressions.\n");
}

long sv_cli_http(client *c, const char *method, const char *path, const char *body, sv_buf *resp)
{
    return sv_cli_request(c, method, path, body, body ? strlen(body) : 0, NULL, resp);
}

int sv_cli_client(const char *url, int argc, char **argv)
{
    client c = {.base = url, .api_key = sv_env_str("SHARDVAULT_API_KEY", NULL)};
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c.curl = curl_easy_init();
    if (!c.curl)
        return 1;
    const char *cmd = argv[0];
    int rc;
    /* --help anywhere asks for the command's usage and runs nothing (a
     * subcommand that parsed its own arguments first could start work) */
    char *help_argv[] = {argv[0], "--help", NULL};
    if (wants_help(argc, argv) && strcmp(cmd, "maintenance")) {
        argc = 2;
        argv = help_argv;
    }
    if (!strcmp(cmd, "collections"))
        rc = cmd_collections(&c, argc, argv);
    else if (!strcmp(cmd, "tenants"))
        rc = cmd_tenants(&c, argc, argv);
    else if (!strcmp(cmd, "import"))
        rc = cmd_import(&c, argc, argv);
    else if (!strcmp(cmd, "import-parquet"))
        rc = sv_cli_import_parquet(&c, argc, argv);
    else if (!strcmp(cmd, "get") || !strcmp(cmd, "delete"))
        rc = cmd_object(&c, argc, argv);
    else if (!strcmp(cmd, "list"))
        rc = cmd_list(&c, argc, argv);
    else if (!strcmp(cmd, "export"))
        rc = cmd_export(&c, argc, argv);
    else if (!strcmp(cmd, "snapshot"))
        rc = cmd_snapshot(&c, argc, argv);
    else if (!strcmp(cmd, "jobs"))
        rc = cmd_jobs(&c, argc, argv);
    else if (!strcmp(cmd, "registry"))
        rc = cmd_registry(&c, argc, argv);
    else if (!strcmp(cmd, "maintenance"))
        rc = sv_cli_maintenance(&c, argc, argv);
    else if (!strcmp(cmd, "schedules"))
        rc = cmd_schedules(&c, argc, argv);
    else if (!strcmp(cmd, "keys"))
        rc = cmd_keys(&c, argc, argv);
    else if (!strcmp(cmd, "roles"))
        rc = cmd_roles(&c, argc, argv);
    else if (!strcmp(cmd, "whoami"))
        rc = simple(&c, "GET", "/v1/authz/me", NULL);
    else if (!strcmp(cmd, "meta"))
        rc = simple(&c, "GET", "/v1/meta", NULL);
    else if (!strcmp(cmd, "nodes"))
        rc = argc > 1 ? usage(argc, argv, argv[1],
                              "usage: shardvault nodes\n"
                              "Every node that joined the cluster, HEALTHY (its lease is alive) or UNREACHABLE.\n")
                      : simple(&c, "GET", "/v1/nodes", NULL);
    else {
        fprintf(stderr, "shardvault: unknown command '%s' (see shardvault --help)\n", cmd);
        rc = 2;
    }
    curl_easy_cleanup(c.curl);
    curl_global_cleanup();
    return rc;
}
