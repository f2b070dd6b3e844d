/* jobs — the bounded worker pool ("first error wins", cancel) and deadlines. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_internal.h"

typedef struct pool {
    sv_pool_fn fn;
    void *arg;
    const sv_job *job;
    size_t n;
    atomic_size_t next;
    atomic_int rc;
    pthread_mutex_t mu;
    sv_err err;
} pool;

static void fail_once(pool *p, int rc, const sv_err *e)
{
    int zero = 0;
    if (atomic_compare_exchange_strong(&p->rc, &zero, rc)) {
        pthread_mutex_lock(&p->mu);
        p->err = *e;
        p->err.code = rc;
        pthread_mutex_unlock(&p->mu);
    }
}

static void *worker(void *arg)
{
    pool *p = arg;
    for (;;) {
        if (atomic_load(&p->rc))
            break;
        if (p->job && sv_job_canceled(p->job)) {
            sv_err e = {0};
            sv_fail(&e, SV_ECANCELED, "canceled");
            fail_once(p, SV_ECANCELED, &e);
            break;
        }
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n)
            break;
        sv_err e = {0};
        int rc = p->fn(p->arg, i, &e);
        if (rc)
            fail_once(p, rc, &e);
    }
    return NULL;
}

/* A run's end, once no thread is inside p: its first error. */
static int pool_end(pool *p, sv_err *err)
{
    pthread_mutex_destroy(&p->mu);
    int rc = atomic_load(&p->rc);
    if (rc && err)
        *err = p->err;
    return rc;
}

int sv_pool_run(int workers, size_t n, sv_pool_fn fn, void *arg, const sv_job *job, sv_err *err)
{
    if (n == 0)
        return 0;
    if (workers < 1)
        workers = 1;
    if ((size_t)workers > n)
        workers = (int)n;
    pool p = {.fn = fn, .arg = arg, .job = job, .n = n};
    pthread_mutex_init(&p.mu, NULL);
    pthread_t th[64];
    if (workers > 64)
        workers = 64;
    int started = 0;
    for (int i = 1; i < workers; i++) /* the caller is worker 0 */
        if (pthread_create(&th[started], NULL, worker, &p) == 0)
            started++;
    worker(&p);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    return pool_end(&p, err);
}

/* ---- crew ----------------------------------------------------------------
 * Invariants: run is the pool being run while busy > 0 (threads still inside
 * it), else NULL; gen counts runs, and a thread takes part in run gen once.
 * The caller of sv_crew_run waits for busy == 0 before its pool (on its
 * stack) goes away. */
struct sv_crew {
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    pool *run;
    uint64_t gen;
    int busy;
    bool stop;
    int nth;
    pthread_t th[64];
};

static void *crew_main(void *arg)
{
    sv_crew *c = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && (c->gen == seen || !c->run))
            pthread_cond_wait(&c->go, &c->mu);
        if (c->stop)
            break;
        seen = c->gen;
        pool *p = c->run;
        pthread_mutex_unlock(&c->mu);
        worker(p);
        pthread_mutex_lock(&c->mu);
        if (--c->busy == 0)
            pthread_cond_signal(&c->done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

sv_crew *sv_crew_new(int workers)
{
    sv_crew *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->go, NULL);
    pthread_cond_init(&c->done, NULL);
    if (workers > 64)
        workers = 64;
    for (int i = 1; i < workers; i++)
        if (pthread_create(&c->th[c->nth], NULL, crew_main, c) == 0)
            c->nth++;
    return c;
}

int sv_crew_run(sv_crew *c, size_t n, sv_pool_fn fn, void *arg, const sv_job *job, sv_err *err)
{
    if (n == 0)
        return 0;
    pool p = {.fn = fn, .arg = arg, .job = job, .n = n};
    pthread_mutex_init(&p.mu, NULL);
    pthread_mutex_lock(&c->mu);
    c->run = &p;
    c->gen++;
    c->busy = c->nth;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
    worker(&p);
    pthread_mutex_lock(&c->mu);
    while (c->busy > 0)
        pthread_cond_wait(&c->done, &c->mu);
    c->run = NULL;
    pthread_mutex_unlock(&c->mu);
    return pool_end(&p, err);
}

void sv_crew_free(sv_crew *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->nth; i++)
        pthread_join(c->th[i], NULL);
    pthread_cond_destroy(&c->go);
    pthread_cond_destroy(&c->done);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

sv_deadline sv_deadline_in(int64_t ms)
{
    sv_deadline d = {0};
    if (ms > 0)
        d.at_ns = sv_mono_ns() + ms * 1000000;
    return d;
}

bool sv_deadline_passed(sv_deadline d) { return d.at_ns && sv_mono_ns() >= d.at_ns; }

int64_t sv_deadline_left_ms(sv_deadline d)
{
    if (!d.at_ns)
        return INT64_MAX;
    int64_t left = (d.at_ns - sv_mono_ns()) / 1000000;
    return left > 0 ? left : 0;
}
