/* A real, single-member etcd for tests: started from the test on free
 * loopback ports with its data under a scratch directory, stopped and
 * restarted on the same ports and data. etcd missing is a failure, not a
 * skip (scripts/deps.sh --test installs Debian's etcd-server).
 * Header-only; include from one test program. */
#ifndef SV_ETCD_FIXTURE_H
#define SV_ETCD_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"

typedef struct etcd_proc {
    pid_t pid;
    int client_port, peer_port;
    char dir[1300];
    char log[1400];
    char name[16];
    char cluster[512]; /* --initial-cluster; empty = a one-member cluster */
} etcd_proc;

/* A port nobody listens on right now, and not one this process handed out
 * before (the kernel may give a just-closed port again: two members of one
 * cluster must not share one). Another process may still take it before
 * etcd binds it: the start functions retry with new ports. */
static inline int etcd_free_port(void)
{
    static int given[256];
    static int ngiven;
    for (int attempt = 0; attempt < 64; attempt++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t l = sizeof a;
        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || getsockname(s, (struct sockaddr *)&a, &l)) {
            if (s >= 0)
                close(s);
            return -1;
        }
        close(s);
        int port = ntohs(a.sin_port), seen = 0;
        for (int i = 0; i < ngiven && !seen; i++)
            seen = given[i] == port;
        if (seen)
            continue;
        given[ngiven++ % 256] = port;
        return port;
    }
    return -1;
}

static inline int etcd_tcp_open(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    if (s >= 0)
        close(s);
    return ok;
}

static inline int etcd_wait(etcd_proc *p);

/* Starts (or restarts) etcd without waiting. 0 or -1. */
static inline int etcd_spawn(etcd_proc *p)
{
    char client[64], peer[64], cluster[600], data[1400];
    const char *name = p->name[0] ? p->name : "t";
    snprintf(client, sizeof client, "http://127.0.0.1:%d", p->client_port);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", p->peer_port);
    if (p->cluster[0])
        snprintf(cluster, sizeof cluster, "%s", p->cluster);
    else
        snprintf(cluster, sizeof cluster, "%s=%s", name, peer);
    snprintf(data, sizeof data, "%s/data", p->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec: the test is
         * multi-threaded (watch and curl threads), and a lock another thread
         * held at the fork (malloc's, under ASan the allocator's) stays held
         * here for ever: fopen or fprintf could hang the child. */
        int lf = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (lf >= 0) {
            dup2(lf, 1);
            dup2(lf, 2);
        }
        execlp("etcd", "etcd", "--name", name, "--data-dir", data, "--listen-client-urls", client,
               "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", cluster, "--heartbeat-interval", "10", "--election-timeout", "100",
               "--experimental-watch-progress-notify-interval", "1s", "--log-level", "warn", (char *)NULL);
        static const char msg[] = "cannot run etcd (install Debian's etcd-server: scripts/deps.sh --test)\n";
        ssize_t ignored = write(2, msg, sizeof msg - 1);
        (void)ignored;
        _exit(127);
    }
    p->pid = pid;
    return 0;
}

/* Waits until the member answers as healthy (a cluster needs its quorum). */
static inline int etcd_wait(etcd_proc *p)
{
    pid_t pid = p->pid;
    for (int i = 0; i < 300; i++) { /* up to 30 s on a loaded machine */
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "etcd exited at start (status %d); see %s\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1,
                    p->log);
            p->pid = 0;
            return -1;
        }
        if (etcd_tcp_open(p->client_port)) {
            char cmd[300];
            snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:%d endpoint health >/dev/null 2>&1",
                     p->client_port);
            if (system(cmd) == 0)
                return 0;
        }
        sv_sleep_ms(100);
    }
    fprintf(stderr, "etcd did not become healthy; see %s\n", p->log);
    return -1;
}

/* Starts (or restarts) etcd and waits until it is healthy. 0, or -1 with
 * the reason on stderr. */
static inline int etcd_run(etcd_proc *p)
{
    return etcd_spawn(p) ? -1 : etcd_wait(p);
}

static inline void etcd_kill(etcd_proc *p);

/* A cluster of n members (n <= 5) under root/m<i>, started together. */
static inline int etcd_cluster_start_once(const char *root, etcd_proc *m, int n);
static inline int etcd_cluster_start(const char *root, etcd_proc *m, int n)
{
    /* A port taken by another process between the choice and etcd's bind
     * makes a member exit at start: try again with new ports. */
    for (int attempt = 0; attempt < 4; attempt++) {
        if (etcd_cluster_start_once(root, m, n) == 0)
            return 0;
        for (int i = 0; i < n; i++)
            if (m[i].pid > 0)
                etcd_kill(&m[i]);
        sv_err e = {0};
        sv_rmtree(root, &e);
        fprintf(stderr, "etcd cluster did not start (attempt %d); trying again with other ports\n", attempt + 1);
    }
    return -1;
}

static inline int etcd_cluster_start_once(const char *root, etcd_proc *m, int n)
{
    char cluster[512] = "";
    for (int i = 0; i < n; i++) {
        memset(&m[i], 0, sizeof m[i]);
        snprintf(m[i].name, sizeof m[i].name, "m%d", i);
        snprintf(m[i].dir, sizeof m[i].dir, "%s/m%d", root, i);
        snprintf(m[i].log, sizeof m[i].log, "%s/m%d.log", root, i);
        sv_err err = {0};
        if (sv_mkdirs(m[i].dir, &err))
            return -1;
        m[i].client_port = etcd_free_port();
        do
            m[i].peer_port = etcd_free_port();
        while (m[i].peer_port == m[i].client_port);
        size_t l = strlen(cluster);
        snprintf(cluster + l, sizeof cluster - l, "%sm%d=http://127.0.0.1:%d", i ? "," : "", i, m[i].peer_port);
    }
    for (int i = 0; i < n; i++) {
        snprintf(m[i].cluster, sizeof m[i].cluster, "%s", cluster);
        if (etcd_spawn(&m[i]))
            return -1;
    }
    for (int i = 0; i < n; i++)
        if (etcd_wait(&m[i]))
            return -1;
    return 0;
}

static inline int etcd_start(const char *root, etcd_proc *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s/etcd", root);
    snprintf(p->log, sizeof p->log, "%s/etcd.log", root);
    sv_err err = {0};
    if (sv_mkdirs(p->dir, &err))
        return -1;
    for (int attempt = 0; attempt < 4; attempt++) { /* a port taken meanwhile: try others */
        p->client_port = etcd_free_port();
        p->peer_port = etcd_free_port();
        if (p->client_port <= 0 || p->peer_port <= 0 || p->client_port == p->peer_port)
            return -1;
        if (etcd_run(p) == 0)
            return 0;
        char data[1400];
        snprintf(data, sizeof data, "%s/data", p->dir);
        sv_rmtree(data, &err);
    }
    return -1;
}

static inline void etcd_stop(etcd_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

static inline void etcd_kill(etcd_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

/* etcdctl against the fixture, e.g. "compact 42". */
static inline int etcd_ctl(etcd_proc *p, const char *args)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:%d %s >/dev/null 2>&1", p->client_port,
             args);
    return system(cmd);
}

#endif
