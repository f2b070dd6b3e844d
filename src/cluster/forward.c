/* cluster forwarding: node-to-node HTTP calls with libcurl, in parallel (one
 * curl multi per call set), sharing one connection cache per process so
 * repeated forwards reuse their connections. docs/cluster.md "Forwarding". */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_internal.h"

#define CONNECT_TIMEOUT_MS 2000L
#define DEFAULT_TIMEOUT_MS 30000L

struct forward_state {
    CURLSH *share;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ud)
{
    (void)h;
    (void)access;
    struct forward_state *f = ud;
    pthread_mutex_lock(&f->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    (void)h;
    struct forward_state *f = ud;
    pthread_mutex_unlock(&f->locks[data]);
}

static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int cluster_forward_init(sv_cluster *c, sv_err *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, global_init);
    struct forward_state *f = calloc(1, sizeof *f);
    if (!f)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&f->locks[i], NULL);
    f->share = curl_share_init();
    if (!f->share) {
        free(f);
        return sv_fail(err, SV_ENOMEM, "cannot set up libcurl's connection cache");
    }
    curl_share_setopt(f->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(f->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(f->share, CURLSHOPT_USERDATA, f);
    curl_share_setopt(f->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(f->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    *cluster_forward_state(c) = f;
    return 0;
}

void cluster_forward_free(sv_cluster *c)
{
    struct forward_state *f = *cluster_forward_state(c);
    if (!f)
        return;
    curl_share_cleanup(f->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&f->locks[i]);
    free(f);
    *cluster_forward_state(c) = NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sv_buf *b = ud;
    return sv_buf_append(b, p, size * n) ? 0 : size * n;
}

typedef struct running {
    CURL *h;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    char url[1400];
} running;

void sv_cluster_forward(sv_cluster *c, sv_cluster_call *calls, size_t n)
{
    struct forward_state *f = *cluster_forward_state(c);
    running *r = calloc(n + 1, sizeof *r);
    CURLM *m = curl_multi_init();
    const char *secret = cluster_secret(c);
    size_t started = 0;
    for (size_t i = 0; i < n; i++) {
        sv_cluster_call *k = &calls[i];
        k->rc = 0;
        k->status = 0;
        memset(&k->err, 0, sizeof k->err);
        if (!r || !m) {
            k->rc = sv_fail(&k->err, SV_ENOMEM, "out of memory");
            continue;
        }
        char base[256];
        if (!secret[0]) {
            k->rc = sv_fail(&k->err, SV_EUNAVAIL,
                            "node %s serves this shard, and this node cannot forward to it: set "
                            "SHARDVAULT_CLUSTER_SECRET (the same on every node) or send the request to node %s",
                            k->node, k->node);
            continue;
        }
        if (cluster_node_url(c, k->node, base, sizeof base) != 0) {
            k->rc = sv_fail(&k->err, SV_EUNAVAIL,
                            "node %s, which serves this shard, is unreachable (it left the cluster: its lease lapsed "
                            "or was revoked); retry once it is back (GET /v1/nodes)",
                            k->node);
            continue;
        }
        running *x = &r[i];
        snprintf(x->url, sizeof x->url, "%s%s", base, k->target);
        x->h = curl_easy_init();
        char hdr[400];
        struct curl_slist *hl = NULL;
        snprintf(hdr, sizeof hdr, "Content-Type: %s", k->content_type ? k->content_type : "application/json");
        hl = curl_slist_append(hl, hdr);
        snprintf(hdr, sizeof hdr, "%s: %s", SV_CLUSTER_FORWARDED_HEADER, sv_cluster_name(c));
        hl = curl_slist_append(hl, hdr);
        snprintf(hdr, sizeof hdr, "%s: %s", SV_CLUSTER_SECRET_HEADER, secret);
        hl = curl_slist_append(hl, hdr);
        explicit_bzero(hdr, sizeof hdr);
        if (k->principal && *k->principal) {
            snprintf(hdr, sizeof hdr, "%s: %.64s", SV_CLUSTER_PRINCIPAL_HEADER, k->principal);
            hl = curl_slist_append(hl, hdr);
        }
        hl = curl_slist_append(hl, "Expect:");
        x->headers = hl;
        if (!x->h || !hl) {
            k->rc = sv_fail(&k->err, SV_ENOMEM, "out of memory");
            continue;
        }
        curl_easy_setopt(x->h, CURLOPT_URL, x->url);
        curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, k->method);
        curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(x->h, CURLOPT_SHARE, f->share);
        curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
        curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, k->timeout_ms > 0 ? (long)k->timeout_ms : DEFAULT_TIMEOUT_MS);
        curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
        curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(x->h, CURLOPT_WRITEDATA, &k->out);
        curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(x->h, CURLOPT_FOLLOWLOCATION, 0L);
        if (k->body) {
            curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, k->body);
            curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)k->len);
        } else if (!strcmp(k->method, "GET")) {
            curl_easy_setopt(x->h, CURLOPT_HTTPGET, 1L);
        } else {
            curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, 0L);
        }
        curl_easy_setopt(x->h, CURLOPT_PRIVATE, k);
        curl_multi_add_handle(m, x->h);
        started++;
    }
    int still = 0;
    while (started) {
        CURLMcode mc = curl_multi_perform(m, &still);
        if (mc != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            sv_cluster_call *k = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&k);
            size_t i = (size_t)(k - calls);
            if (msg->data.result != CURLE_OK) {
                char *q = strchr(r[i].url, '?');
                if (q)
                    *q = 0;
                k->rc = sv_fail(&k->err, SV_EUNAVAIL, "node %s did not answer (%s): %s",
                                k->node, r[i].url,
                                r[i].errbuf[0] ? r[i].errbuf : curl_easy_strerror(msg->data.result));
            } else {
                long status = 0;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
                k->status = (int)status;
            }
        }
        if (!still)
            break;
        curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    for (size_t i = 0; r && i < n; i++) {
        if (r[i].h && calls[i].rc == 0 && calls[i].status == 0)
            calls[i].rc = sv_fail(&calls[i].err, SV_EUNAVAIL, "node %s did not answer",
                                  calls[i].node);
        if (r[i].h) {
            curl_multi_remove_handle(m, r[i].h);
            curl_easy_cleanup(r[i].h);
        }
        curl_slist_free_all(r[i].headers);
    }
    if (m)
        curl_multi_cleanup(m);
    free(r);
}
