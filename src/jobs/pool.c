/* jobs — the bounded worker pool ("first error wins", cancel) and deadlines. */
#include <pthread.h>
#include <stdatomic.h>
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
    pthread_mutex_destroy(&p.mu);
    int rc = atomic_load(&p.rc);
    if (rc && err)
        *err = p.err;
    return rc;
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
