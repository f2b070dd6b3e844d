/* `shardvault maintenance rebuild|verify|recovery-kit|status`: starts an
 * agent, follows it with a progress bar and ETA, prints its report. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "usage: shardvault maintenance rebuild [--source auto|checkpoint|full-scan] [--parallelism N] [--dry-run]\n"
    "                                      [--recovery-kit FILE] [--no-wait]\n"
    "       shardvault maintenance verify [--read-data] [--subset K/N] [--parallelism N] [--no-wait]\n"
    "       shardvault maintenance move --target s3://bucket/prefix|file:///dir [--parallelism N]\n"
    "       shardvault maintenance analyze [--blobs 200] [--max-blob-bytes 10Mi] [--concurrency 10] [--seed N]\n"
    "       shardvault maintenance recovery-kit            print the kit (keep it offline)\n"
    "       shardvault maintenance status [--break-lease]  descriptor, lease, running agent\n"
    "\n"
    "rebuild: the catalog's snapshot records (and the store id) from the location: after losing the\n"
    "data directory, start a fresh node on the same location and run it. Without a valid store.json\n"
    "it needs the recovery kit. verify: every manifest parses and every blob exists with its size\n"
    "(--read-data: and its sha256); exits 1 when it found issues. move: copies the store to another\n"
    "location (writes wait meanwhile), then the node uses it; the old one is left intact. Agents run\n"
    "one at a time under an exclusive lease. analyze: tests the location itself (read-after-write,\n"
    "ranges, multipart, overwrite atomicity, aborted uploads, listing, conditional create); exits 1\n"
    "when it found issues. See docs/maintenance.md.\n";


static json_t *get(struct client *c, const char *path)
{
    sv_buf r = {0};
    long st = sv_cli_http(c, "GET", path, NULL, &r);
    json_t *j = st == 200 ? json_loadb((const char *)r.data, r.len, 0, NULL) : NULL;
    if (st != 200 && st > 0)
        sv_cli_finish(st, &r);
    sv_buf_free(&r);
    return j;
}

static void show(bool tty, const char *op, json_t *agent, int64_t start_ns, bool final)
{
    int64_t done = json_integer_value(json_object_get(agent, "manifestsScanned"));
    int64_t total = json_integer_value(json_object_get(agent, "manifestsTotal"));
    json_t *eta = json_object_get(agent, "etaMs");
    double frac = total > 0 ? (double)done / (double)total : final ? 1 : 0;
    if (frac > 1)
        frac = 1;
    char b[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        b[i] = i < fill ? '#' : '-';
    b[30] = '\0';
    double secs = (double)(sv_mono_ns() - start_ns) / 1e9;
    const char *unit = !strcmp(op, "verify") ? "blobs" : !strcmp(op, "rebuild") ? "manifests" : "objects";
    char etas[32] = "";
    if (json_is_integer(eta))
        snprintf(etas, sizeof etas, "  ETA %llds", (long long)(json_integer_value(eta) / 1000));
    if (json_is_true(json_object_get(agent, "waitingForLease")))
        snprintf(etas, sizeof etas, "  waiting for the lease");
    if (tty) {
        fprintf(stderr, "\r%-8s [%s] %5.1f%%  %lld/%lld %s  %.0f/s%s   ", op, b, frac * 100, (long long)done,
                (long long)total, unit, secs > 0 ? (double)done / secs : 0, etas);
        if (final)
            fputc('\n', stderr);
    } else if (final) {
        fprintf(stderr, "%s: %lld %s in %.1f s\n", op, (long long)done, unit, secs);
    }
}

/* Follows the agent until its job finishes; prints the job; 0 on SUCCEEDED. */
static int follow(struct client *c, const char *op, const char *id, bool issues_fail)
{
    bool tty = isatty(2);
    int64_t start = sv_mono_ns();
    char path[200];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    json_t *last = NULL;
    for (;;) {
        json_t *st = get(c, "/v1/maintenance/status");
        json_t *agent = st ? json_object_get(st, "agent") : NULL;
        if (agent && json_is_object(agent)) {
            json_decref(last);
            last = json_incref(agent);
            show(tty, op, agent, start, false);
        }
        json_decref(st);
        json_t *job = get(c, path);
        if (!job) {
            json_decref(last);
            return 1;
        }
        const char *state = json_string_value(json_object_get(job, "state"));
        if (state && (!strcmp(state, "SUCCEEDED") || !strcmp(state, "FAILED") || !strcmp(state, "CANCELED"))) {
            if (last) {
                json_t *r = json_object_get(job, "result");
                int64_t n = json_integer_value(json_object_get(r, "manifestsScanned"));
                if (!strcmp(op, "verify"))
                    n = json_integer_value(json_object_get(r, "blobsChecked"));
                if (!strcmp(op, "move") || !strcmp(op, "analyze"))
                    n = json_integer_value(json_object_get(last, "manifestsTotal"));
                json_object_set_new(last, "manifestsScanned", json_integer(n));
                json_object_set_new(last, "etaMs", json_integer(0));
                show(tty, op, last, start, true);
            }
            json_decref(last);
            char *s = json_dumps(job, JSON_INDENT(2));
            puts(s);
            free(s);
            int rc = strcmp(state, "SUCCEEDED") ? 1 : 0;
            if (rc) {
                const char *why = json_string_value(json_object_get(job, "reason"));
                fprintf(stderr, "%s %s: %s\n", op, state, why ? why : "(no reason)");
            }
            size_t ni = json_array_size(json_object_get(json_object_get(job, "result"), "issues"));
            if (rc == 0 && issues_fail && ni > 0) {
                fprintf(stderr, "%s found %zu issue(s)\n", op, ni);
                rc = 1;
            }
            json_decref(job);
            return rc;
        }
        json_decref(job);
        sv_sleep_ms(200);
    }
}

static int start(struct client *c, const char *op, json_t *body, bool wait)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s)
        return 1;
    char path[64];
    snprintf(path, sizeof path, "/v1/maintenance/%s", op);
    sv_buf r = {0};
    long st = sv_cli_http(c, "POST", path, s, &r);
    free(s);
    if (st != 202 || !wait) {
        int rc = sv_cli_finish(st, &r);
        sv_buf_free(&r);
        return rc;
    }
    json_t *j = json_loadb((const char *)r.data, r.len, 0, NULL);
    sv_buf_free(&r);
    const char *id = json_string_value(json_object_get(j, "jobId"));
    int rc = id ? follow(c, op, id, !strcmp(op, "verify") || !strcmp(op, "analyze")) : 1;
    json_decref(j);
    return rc;
}

static char *read_file_arg(const char *p)
{
    char *d = NULL;
    size_t n = 0;
    sv_err e = {0};
    if (sv_read_file(p, &d, &n, &e)) {
        fprintf(stderr, "shardvault: %s\n", e.msg);
        return NULL;
    }
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, d, n);
        s[n] = '\0';
    }
    free(d);
    return s;
}

/* Every argument after the subcommand is one of its options (opts take a
 * value) or flags: a mistyped one must not start an agent with defaults.
 * 0 fine, 1 --help asked (printed), 2 wrong (said why). */
static int check_args(int argc, char **argv, const char *const *opts, const char *const *flags)
{
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(help, stdout);
            return 1;
        }
    }
    for (int i = 2; i < argc; i++) {
        bool ok = false;
        for (const char *const *o = opts; *o && !ok; o++)
            if (!strcmp(argv[i], *o)) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "shardvault maintenance %s: %s needs a value (see --help)\n", argv[1], argv[i]);
                    return 2;
                }
                ok = true;
                i++;
            }
        for (const char *const *f = flags; *f && !ok; f++)
            ok = !strcmp(argv[i], *f);
        if (!ok) {
            fprintf(stderr, "shardvault maintenance %s: unknown argument '%s' (see --help); nothing was started\n",
                    argv[1], argv[i]);
            return 2;
        }
    }
    return 0;
}

int sv_cli_maintenance(struct client *c, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "--help";
    static const char *const none[] = {NULL};
    static const char *const rebuild_o[] = {"--source", "--parallelism", "--recovery-kit", NULL};
    static const char *const rebuild_f[] = {"--dry-run", "--no-wait", NULL};
    static const char *const verify_o[] = {"--subset", "--parallelism", NULL};
    static const char *const verify_f[] = {"--read-data", "--no-wait", NULL};
    static const char *const move_o[] = {"--target", "--parallelism", NULL};
    static const char *const wait_f[] = {"--no-wait", NULL};
    static const char *const analyze_o[] = {"--blobs", "--max-blob-bytes", "--concurrency", "--seed", NULL};
    static const char *const status_f[] = {"--break-lease", NULL};
    int ck = !strcmp(sub, "rebuild")        ? check_args(argc, argv, rebuild_o, rebuild_f)
             : !strcmp(sub, "verify")       ? check_args(argc, argv, verify_o, verify_f)
             : !strcmp(sub, "move")         ? check_args(argc, argv, move_o, wait_f)
             : !strcmp(sub, "analyze")      ? check_args(argc, argv, analyze_o, wait_f)
             : !strcmp(sub, "recovery-kit") ? check_args(argc, argv, none, none)
             : !strcmp(sub, "status")       ? check_args(argc, argv, none, status_f)
                                            : 0;
    if (ck)
        return ck == 1 ? 0 : 2;
    bool wait = !sv_cli_flag(argc, argv, "--no-wait");
    if (!strcmp(sub, "rebuild")) {
        json_t *b = json_object();
        const char *src = sv_cli_opt(argc, argv, "--source"), *par = sv_cli_opt(argc, argv, "--parallelism");
        const char *kit = sv_cli_opt(argc, argv, "--recovery-kit");
        if (src)
            json_object_set_new(b, "source", json_string(src));
        if (par)
            json_object_set_new(b, "parallelism", json_integer(strtoll(par, NULL, 10)));
        if (sv_cli_flag(argc, argv, "--dry-run"))
            json_object_set_new(b, "dryRun", json_true());
        if (kit) {
            char *t = read_file_arg(kit);
            if (!t) {
                json_decref(b);
                return 2;
            }
            json_object_set_new(b, "recoveryKit", json_string(t));
            free(t);
        }
        return start(c, "rebuild", b, wait);
    }
    if (!strcmp(sub, "verify")) {
        json_t *b = json_object();
        const char *subset = sv_cli_opt(argc, argv, "--subset"), *par = sv_cli_opt(argc, argv, "--parallelism");
        if (sv_cli_flag(argc, argv, "--read-data"))
            json_object_set_new(b, "readData", json_true());
        if (subset)
            json_object_set_new(b, "subset", json_string(subset));
        if (par)
            json_object_set_new(b, "parallelism", json_integer(strtoll(par, NULL, 10)));
        return start(c, "verify", b, wait);
    }
    if (!strcmp(sub, "move")) {
        const char *t = sv_cli_opt(argc, argv, "--target"), *par = sv_cli_opt(argc, argv, "--parallelism");
        if (!t) {
            fputs("usage: shardvault maintenance move --target s3://bucket/prefix|file:///dir [--parallelism N]\n",
                  stderr);
            return 2;
        }
        json_t *b = json_pack("{s:s}", "target", t);
        if (par)
            json_object_set_new(b, "parallelism", json_integer(strtoll(par, NULL, 10)));
        return start(c, "move", b, wait);
    }
    if (!strcmp(sub, "analyze")) {
        json_t *b = json_object();
        const char *n = sv_cli_opt(argc, argv, "--blobs"), *mb = sv_cli_opt(argc, argv, "--max-blob-bytes");
        const char *cc = sv_cli_opt(argc, argv, "--concurrency"), *seed = sv_cli_opt(argc, argv, "--seed");
        if (n)
            json_object_set_new(b, "blobs", json_integer(strtoll(n, NULL, 10)));
        if (mb)
            json_object_set_new(b, "maxBlobBytes", json_string(mb));
        if (cc)
            json_object_set_new(b, "concurrency", json_integer(strtoll(cc, NULL, 10)));
        if (seed)
            json_object_set_new(b, "seed", json_integer(strtoll(seed, NULL, 10)));
        return start(c, "analyze", b, wait);
    }
    if (!strcmp(sub, "recovery-kit")) {
        sv_buf r = {0};
        long st = sv_cli_http(c, "GET", "/v1/maintenance/recovery-kit", NULL, &r);
        int rc = sv_cli_finish(st, &r);
        sv_buf_free(&r);
        return rc;
    }
    if (!strcmp(sub, "status")) {
        sv_buf r = {0};
        long st = sv_cli_flag(argc, argv, "--break-lease") ? sv_cli_http(c, "DELETE", "/v1/maintenance/lease", NULL, &r)
                                                    : sv_cli_http(c, "GET", "/v1/maintenance/status", NULL, &r);
        int rc = sv_cli_finish(st, &r);
        sv_buf_free(&r);
        return rc;
    }
    bool h = !strcmp(sub, "--help") || !strcmp(sub, "-h");
    fputs(help, h ? stdout : stderr);
    return h ? 0 : 2;
}
