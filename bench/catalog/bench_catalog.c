/* bench/catalog: catalog operations per second on the embedded driver, on
 * the etcd driver, and — the peer — the same requests to etcd's gateway
 * from a bare libcurl loop (prebuilt bodies, one kept-alive handle per
 * thread, no parsing beyond the status, no failover), all in one run
 * against one local etcd 3.4 started here. The gap between the etcd driver
 * and the bare loop is what the driver itself costs; the gap to embedded is
 * what going to etcd costs.
 *   bench_catalog [--ops N] [--threads T] [--out FILE]
 */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tests/unit/catalog/etcd_fixture.h"
#include "catalog.h"

static int g_ops = 2000;
static const char *g_val =
    "{\"format_version\":1,\"name\":\"node-17\",\"url\":\"http://10.0.0.17:8080\",\"startedAt\":1795911147276,"
    "\"version\":\"0.1.0\",\"shards\":120,\"objects\":1234567,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";

typedef struct job {
    sv_catalog *cat;
    const char *base; /* bare loop: http://127.0.0.1:port */
    int id, n;
    const char *what;
    int errors;
} job;

static size_t sink(char *p, size_t s, size_t n, void *ud) { return s * n; }

static void *run_driver(void *arg)
{
    job *j = arg;
    sv_err err = {0};
    char key[64];
    for (int i = 0; i < j->n; i++) {
        snprintf(key, sizeof key, "b/%d/%06d", j->id, i);
        int rc = 0;
        if (!strcmp(j->what, "put")) {
            rc = sv_catalog_put(j->cat, key, g_val, strlen(g_val), 0, &err);
        } else if (!strcmp(j->what, "get")) {
            char *v = NULL;
            size_t l;
            rc = sv_catalog_get(j->cat, key, &v, &l, NULL, &err);
            free(v);
        } else { /* cas: read the key's revision, write it back conditioned on it */
            char *v = NULL;
            size_t l;
            int64_t rev = 0;
            rc = sv_catalog_get(j->cat, key, &v, &l, &rev, &err);
            free(v);
            sv_catalog_cond c = {key, rev};
            sv_catalog_op op = {key, g_val, strlen(g_val), 0};
            if (rc == 0)
                rc = sv_catalog_txn(j->cat, &c, 1, &op, 1, &err);
        }
        if (rc)
            j->errors++;
    }
    return NULL;
}

static void *run_bare(void *arg)
{
    job *j = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    char url[128], key[64], kb[128], body[1024];
    unsigned char vb[512];
    EVP_EncodeBlock(vb, (const unsigned char *)g_val, (int)strlen(g_val));
    snprintf(url, sizeof url, "%s/v3/kv/%s", j->base, !strcmp(j->what, "put") ? "put" : "range");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    for (int i = 0; i < j->n; i++) {
        snprintf(key, sizeof key, "bare/%d/%06d", j->id, i);
        EVP_EncodeBlock((unsigned char *)kb, (const unsigned char *)key, (int)strlen(key));
        if (!strcmp(j->what, "put"))
            snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", kb, vb);
        else
            snprintf(body, sizeof body, "{\"key\":\"%s\"}", kb);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        long st = 0;
        if (curl_easy_perform(h) != CURLE_OK || (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st), st != 200))
            j->errors++;
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return NULL;
}

/* ops/s of what over T threads. */
static double measure(void *(*fn)(void *), sv_catalog *cat, const char *base, const char *what, int threads)
{
    pthread_t th[64];
    job jobs[64];
    int64_t t0 = sv_mono_ns();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (job){.cat = cat, .base = base, .id = i, .n = g_ops / threads, .what = what};
        pthread_create(&th[i], NULL, fn, &jobs[i]);
    }
    int errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        errors += jobs[i].errors;
    }
    double s = (double)(sv_mono_ns() - t0) / 1e9;
    if (errors)
        fprintf(stderr, "%s: %d errors\n", what, errors);
    return (double)(g_ops / threads * threads) / s;
}

static int count_cb(const char *k, const char *v, size_t l, int64_t r, void *ud)
{
    ++*(long *)ud;
    return 0;
}

static double scan_rate(sv_catalog *cat)
{
    long n = 0;
    sv_err err = {0};
    int64_t t0 = sv_mono_ns();
    for (int i = 0; i < 5; i++)
        sv_catalog_scan(cat, "b/", count_cb, &n, &err);
    return (double)n / ((double)(sv_mono_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    int threads = 4;
    const char *out = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ops")) g_ops = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
    }
    if (threads < 1 || threads > 64 || g_ops < threads)
        return 2;
    sv_log_set_level(SV_LOG_WARN);
    char root[] = "/tmp/sv-bench-catalog-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    etcd_proc e;
    if (etcd_start(root, &e)) {
        fprintf(stderr, "cannot start etcd (scripts/deps.sh --test installs it)\n");
        return 1;
    }
    char url[1200], base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", e.client_port);
    const char *names[] = {"embedded", "etcd driver", "bare gateway loop (peer)"};
    const char *ops[] = {"put", "get", "cas"};
    double r[3][2][4] = {{{0}}}; /* driver x {1 thread, T threads} x {put,get,cas,scan} */
    for (int d = 0; d < 2; d++) {
        if (d == 0)
            snprintf(url, sizeof url, "embedded://%s/emb", root);
        else
            snprintf(url, sizeof url, "etcd://127.0.0.1:%d/bench/", e.client_port);
        for (int t = 0; t < 2; t++) {
            sv_catalog *cat = NULL;
            sv_err err = {0};
            char u2[1300];
            snprintf(u2, sizeof u2, "%s%s%d", url, d == 0 ? "-" : "", t); /* fresh embedded dir per pass */
            if (sv_catalog_open(d == 0 ? u2 : url, &cat, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            for (int o = 0; o < 3; o++)
                r[d][t][o] = measure(run_driver, cat, NULL, ops[o], t ? threads : 1);
            r[d][t][3] = scan_rate(cat);
            sv_catalog_close(cat);
        }
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int t = 0; t < 2; t++) {
        r[2][t][0] = measure(run_bare, NULL, base, "put", t ? threads : 1);
        r[2][t][1] = measure(run_bare, NULL, base, "get", t ? threads : 1);
    }
    etcd_stop(&e);
    sv_rmtree(root, NULL);

    printf("catalog ops/s (%d ops per cell; etcd 3.4 on loopback, one member; embedded fsyncs every write)\n", g_ops);
    printf("%-26s %9s %9s %9s %9s %9s %9s %12s\n", "", "put x1", "get x1", "cas x1", "put xT", "get xT", "cas xT",
           "scan keys/s");
    for (int d = 0; d < 3; d++) {
        printf("%-26s", names[d]);
        for (int t = 0; t < 2; t++)
            for (int o = 0; o < 3; o++)
                r[d][t][o] > 0 ? printf(" %9.0f", r[d][t][o]) : printf(" %9s", "-");
        r[d][1][3] > 0 ? printf(" %12.0f\n", r[d][1][3]) : printf(" %12s\n", "-");
    }
    printf("(xT = %d threads)\n", threads);
    if (out) {
        FILE *f = fopen(out, "w");
        if (!f)
            return 1;
        fprintf(f, "{\"bench\":\"catalog\",\"ops\":%d,\"threads\":%d,\"results\":[", g_ops, threads);
        for (int d = 0; d < 3; d++)
            fprintf(f,
                    "%s{\"name\":\"%s\",\"put_1\":%.0f,\"get_1\":%.0f,\"cas_1\":%.0f,\"put_T\":%.0f,\"get_T\":%.0f,"
                    "\"cas_T\":%.0f,\"scan_keys_per_s\":%.0f}",
                    d ? "," : "", names[d], r[d][0][0], r[d][0][1], r[d][0][2], r[d][1][0], r[d][1][1], r[d][1][2],
                    r[d][1][3]);
        fprintf(f, "]}\n");
        fclose(f);
    }
    return 0;
}
