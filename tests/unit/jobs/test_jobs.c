#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../test_root.h"
#include "jobs.h"

static char g_root[1024];

static sv_catalog *open_cat(const char *name)
{
    char url[1200];
    snprintf(url, sizeof url, "embedded://%s/%s", g_root, name);
    sv_catalog *c = NULL;
    sv_err err = {0};
    if (sv_catalog_open(url, &c, &err))
        fail_msg("open %s: %s", url, err.msg);
    return c;
}

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

/* ---- cron --------------------------------------------------------------------- */

static int64_t next_of(const char *expr, int64_t after)
{
    sv_cron c;
    sv_err err = {0};
    if (sv_cron_parse(expr, &c, &err))
        fail_msg("parse '%s': %s", expr, err.msg);
    return sv_cron_next(&c, after);
}

static void cron_fields(void **state)
{
    int64_t t0 = utc(2026, 11, 28, 21, 54); /* a Saturday */
    assert_int_equal(next_of("* * * * *", t0), utc(2026, 11, 28, 21, 55));
    assert_int_equal(next_of("0 3 * * *", t0), utc(2026, 11, 29, 3, 0));
    /* lists and ranges */
    assert_int_equal(next_of("10,50 * * * *", t0), utc(2026, 11, 28, 22, 10));
    assert_int_equal(next_of("0 9-17 * * *", t0), utc(2026, 11, 29, 9, 0));
    /* steps: every 15 minutes, every 2 hours from 1, a/n */
    assert_int_equal(next_of("*/15 * * * *", t0), utc(2026, 11, 28, 22, 0));
    assert_int_equal(next_of("0 1-23/2 * * *", t0), utc(2026, 11, 28, 23, 0));
    assert_int_equal(next_of("5/20 * * * *", t0), utc(2026, 11, 28, 22, 5));
    /* month field (names too) and year wrap */
    assert_int_equal(next_of("0 0 1 jan *", t0), utc(2027, 1, 1, 0, 0));
    assert_int_equal(next_of("0 0 1 2,6 *", t0), utc(2027, 2, 1, 0, 0));
    /* weekday: Monday; 7 and 0 are both Sunday; names */
    assert_int_equal(next_of("30 8 * * 1", t0), utc(2026, 11, 30, 8, 30));
    assert_int_equal(next_of("0 12 * * 7", t0), utc(2026, 11, 29, 12, 0));
    assert_int_equal(next_of("0 12 * * 0", t0), utc(2026, 11, 29, 12, 0));
    assert_int_equal(next_of("0 12 * * mon-fri", t0), utc(2026, 11, 30, 12, 0));
    /* both day fields restricted: either matches (1st of month or a Friday) */
    assert_int_equal(next_of("0 0 1 * 5", t0), utc(2026, 12, 1, 0, 0));
    assert_int_equal(next_of("0 0 15 * 2", utc(2026, 12, 1, 1, 0)), utc(2026, 12, 8, 0, 0));
    /* Feb 29: next leap year; Feb 31: never */
    assert_int_equal(next_of("0 0 29 2 *", t0), utc(2028, 2, 29, 0, 0));
    assert_int_equal(next_of("0 0 31 2 *", t0), -1);
    /* strictly after: at the exact minute, the next one */
    assert_int_equal(next_of("0 3 * * *", utc(2026, 11, 29, 3, 0)), utc(2026, 11, 30, 3, 0));
}

static void cron_errors(void **state)
{
    sv_cron c;
    sv_err err = {0};
    const char *bad[] = {"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
                         "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "1,,2 * * * *", "1, * * * *",
                         "1-x * * * *", "* * * foo *"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sv_cron_parse(bad[i], &c, &err), SV_EINVAL);
        assert_non_null(strstr(err.msg, "cron"));
    }
    assert_int_equal(sv_cron_parse("60 * * * *", &c, &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "minute"));
    assert_int_equal(sv_cron_parse("* * * * 9", &c, &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "day-of-week"));
}

static void intervals(void **state)
{
    int64_t ms;
    sv_err err = {0};
    assert_int_equal(sv_interval_parse("30s", &ms, &err), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(sv_interval_parse("15m", &ms, &err), 0);
    assert_int_equal(ms, 900000);
    assert_int_equal(sv_interval_parse("6h", &ms, &err), 0);
    assert_int_equal(ms, 6 * 3600000LL);
    assert_int_equal(sv_interval_parse("1d", &ms, &err), 0);
    assert_int_equal(ms, 86400000LL);
    const char *bad[] = {"", "0s", "1", "s", "1x", "1.5h", "-1s", "1s ", "400d"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sv_interval_parse(bad[i], &ms, &err), SV_EINVAL);
        assert_non_null(strstr(err.msg, "every"));
    }
}

/* ---- retention ------------------------------------------------------------------ */

static void retention(void **state)
{
    /* one snapshot a day at 03:00 for 60 days, newest last */
    enum { N = 60 };
    int64_t t[N];
    bool keep[N];
    for (int i = 0; i < N; i++)
        t[i] = utc(2026, 1, 1, 3, 0) + (int64_t)i * 86400000;
    sv_retention r = {.keep_last = 3};
    sv_retention_apply(&r, t, N, keep);
    int kept = 0;
    for (int i = 0; i < N; i++)
        kept += keep[i];
    assert_int_equal(kept, 3);
    assert_true(keep[N - 1] && keep[N - 2] && keep[N - 3]);
    /* daily 7 + weekly 4 + monthly 12: a snapshot kept by any rule is kept */
    r = (sv_retention){.keep_daily = 7, .keep_weekly = 4, .keep_monthly = 12};
    sv_retention_apply(&r, t, N, keep);
    for (int i = N - 7; i < N; i++)
        assert_true(keep[i]);
    assert_true(keep[30]);  /* Jan 31: newest of January */
    assert_false(keep[29]); /* Jan 30 */
    assert_false(keep[0]);  /* Jan 1: neither January's newest nor in the last 4 weeks */
    kept = 0;
    for (int i = 0; i < N; i++)
        kept += keep[i];
    /* 7 days + older week-ends beyond those days (up to 4 weeks in all) + Jan 31 */
    assert_in_range(kept, 9, 11);
    /* no rule: keep everything */
    r = (sv_retention){0};
    sv_retention_apply(&r, t, N, keep);
    for (int i = 0; i < N; i++)
        assert_true(keep[i]);
    /* several in one hour: hourly keeps the newest of each */
    int64_t h[4] = {utc(2026, 1, 1, 1, 0), utc(2026, 1, 1, 1, 30), utc(2026, 1, 1, 2, 0), utc(2026, 1, 1, 2, 10)};
    bool hk[4];
    r = (sv_retention){.keep_hourly = 2};
    sv_retention_apply(&r, h, 4, hk);
    assert_false(hk[0]);
    assert_true(hk[1]);
    assert_false(hk[2]);
    assert_true(hk[3]);
}

/* ---- pool and deadlines ------------------------------------------------------------ */

static atomic_int g_ran;

static int pool_item(void *arg, size_t i, sv_err *err)
{
    atomic_fetch_add(&g_ran, 1);
    if (arg && i == 7)
        return sv_fail(err, SV_EIO, "item %zu failed", i);
    usleep(1000);
    return 0;
}

static void pool(void **state)
{
    sv_err err = {0};
    atomic_store(&g_ran, 0);
    assert_int_equal(sv_pool_run(4, 100, pool_item, NULL, NULL, &err), 0);
    assert_int_equal(atomic_load(&g_ran), 100);
    atomic_store(&g_ran, 0);
    assert_int_equal(sv_pool_run(3, 1000, pool_item, (void *)1, NULL, &err), SV_EIO);
    assert_string_equal(err.msg, "item 7 failed");
    assert_true(atomic_load(&g_ran) < 1000); /* the others stopped taking items */
    sv_deadline d = sv_deadline_in(50);
    assert_false(sv_deadline_passed(d));
    assert_true(sv_deadline_left_ms(d) <= 50);
    usleep(60000);
    assert_true(sv_deadline_passed(d));
    assert_false(sv_deadline_passed(sv_deadline_in(0)));
}

/* A crew runs many pools on the same threads: every item of every run once,
 * the first error of a run returned, the next run unaffected by it. */
static atomic_int g_hits[64];

static int crew_item(void *arg, size_t i, sv_err *err)
{
    atomic_fetch_add(&g_hits[i], 1);
    if (arg && i == 3)
        return sv_fail(err, SV_EIO, "item %zu failed", i);
    return 0;
}

static void crew(void **state)
{
    sv_crew *c = sv_crew_new(3);
    assert_non_null(c);
    sv_err err = {0};
    for (int run = 0; run < 500; run++) {
        size_t n = (size_t)(run % 64) + 1;
        bool failing = run % 7 == 0 && n > 3;
        for (size_t i = 0; i < 64; i++)
            atomic_store(&g_hits[i], 0);
        int rc = sv_crew_run(c, n, crew_item, failing ? (void *)1 : NULL, NULL, &err);
        if (failing) {
            assert_int_equal(rc, SV_EIO);
            assert_string_equal(err.msg, "item 3 failed");
        } else {
            assert_int_equal(rc, 0);
            for (size_t i = 0; i < 64; i++)
                assert_int_equal(atomic_load(&g_hits[i]), i < n ? 1 : 0);
        }
    }
    assert_int_equal(sv_crew_run(c, 0, crew_item, NULL, NULL, &err), 0);
    sv_crew_free(c);
    sv_crew_free(NULL);
    /* one worker: the caller alone */
    c = sv_crew_new(1);
    assert_non_null(c);
    assert_int_equal(sv_crew_run(c, 5, crew_item, NULL, NULL, &err), 0);
    sv_crew_free(c);
}

/* ---- jobs ------------------------------------------------------------------------ */

static sv_jobs *open_jobs(sv_catalog *cat, int64_t keep)
{
    sv_jobs_opts o = {.node_name = "node1", .keep = keep, .keep_days = 30, .tick_ms = 50};
    sv_jobs *j = NULL;
    sv_err err = {0};
    if (sv_jobs_open(&o, cat, &j, &err))
        fail_msg("jobs open: %s", err.msg);
    return j;
}

static const char *field(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void cannot_cancel(void **state)
{
    sv_catalog *cat = open_cat("nocancel");
    sv_jobs *j = open_jobs(cat, 100);
    sv_err err = {0};
    assert_int_equal(sv_jobs_recover(j, &err), 0);
    /* a kind that cannot be canceled says so, and its job is left alone */
    assert_int_equal(sv_jobs_register_kind(j, &(sv_job_kind){.name = "onload", .no_cancel = "it ends on its own"}, &err),
                     0);
    sv_job *u = NULL;
    assert_int_equal(sv_jobs_create(j, &(sv_job_spec){.kind = "onload", .collection = "A", .target = "t"}, &u, &err), 0);
    assert_int_equal(sv_job_start(u, &err), 0);
    assert_int_equal(sv_jobs_cancel(j, sv_job_id(u), &err), SV_ECONFLICT);
    assert_non_null(strstr(err.msg, "cannot be canceled: it ends on its own"));
    assert_false(sv_job_canceled(u));
    assert_int_equal(sv_job_finish(u, SV_JOB_SUCCEEDED, NULL, NULL, &err), 0);
    sv_job_release(u);
    sv_jobs_close(j);
    sv_catalog_close(cat);
}

static void lifecycle_and_restart(void **state)
{
    sv_catalog *cat = open_cat("lifecycle");
    sv_jobs *j = open_jobs(cat, 100);
    sv_err err = {0};
    assert_int_equal(sv_jobs_recover(j, &err), 0);
    sv_job *a = NULL, *b = NULL, *c = NULL;
    sv_job_spec sa = {.kind = "restore", .collection = "A", .target = "B", .link = "/v1/restore-jobs/x"};
    assert_int_equal(sv_jobs_create(j, &sa, &a, &err), 0);
    sv_job_spec sb = {.kind = "export", .id = "fixed-id", .collection = "A"};
    assert_int_equal(sv_jobs_create(j, &sb, &b, &err), 0);
    assert_int_equal(sv_jobs_create(j, &sb, &c, &err), SV_EEXIST);
    assert_int_equal(sv_job_start(a, &err), 0);
    sv_job_set_totals(a, 10, 1000);
    sv_job_add_done(a, 4, 400);
    json_t *o = NULL;
    assert_int_equal(sv_jobs_get(j, sv_job_id(a), &o, &err), 0);
    assert_string_equal(field(o, "state"), "RUNNING");
    assert_int_equal(json_integer_value(json_object_get(o, "progress")), 40);
    assert_int_equal(json_integer_value(json_object_get(o, "bytesDone")), 400);
    assert_string_equal(field(o, "link"), "/v1/restore-jobs/x");
    json_decref(o);
    /* a finished job stays finished; cancel of it is a conflict */
    json_t *res = json_pack("{s:i}", "blobsDeleted", 3);
    assert_int_equal(sv_job_start(b, &err), 0);
    assert_int_equal(sv_job_finish(b, SV_JOB_SUCCEEDED, NULL, res, &err), 0);
    assert_int_equal(sv_job_finish(b, SV_JOB_FAILED, "late", NULL, &err), 0);
    json_decref(res);
    assert_int_equal(sv_jobs_get(j, "fixed-id", &o, &err), 0);
    assert_string_equal(field(o, "state"), "SUCCEEDED");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "result"), "blobsDeleted")), 3);
    json_decref(o);
    assert_int_equal(sv_jobs_cancel(j, "fixed-id", &err), SV_ECONFLICT);
    assert_int_equal(sv_jobs_cancel(j, "nope", &err), SV_ENOTFOUND);
    assert_int_equal(sv_jobs_cancel(j, sv_job_id(a), &err), 0);
    assert_true(sv_job_canceled(a));
    /* listing: newest first, filters, cursor */
    sv_jobs_filter f = {.limit = 1};
    assert_int_equal(sv_jobs_list(j, &f, &o, &err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "jobs")), 1);
    assert_string_equal(field(json_array_get(json_object_get(o, "jobs"), 0), "id"), "fixed-id");
    char next[64];
    snprintf(next, sizeof next, "%s", field(o, "next"));
    json_decref(o);
    f.after = next;
    assert_int_equal(sv_jobs_list(j, &f, &o, &err), 0);
    assert_string_equal(field(json_array_get(json_object_get(o, "jobs"), 0), "id"), sv_job_id(a));
    assert_true(json_is_null(json_object_get(o, "next")));
    json_decref(o);
    f = (sv_jobs_filter){.state = "RUNNING"};
    assert_int_equal(sv_jobs_list(j, &f, &o, &err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "jobs")), 1);
    json_decref(o);
    f = (sv_jobs_filter){.state = "DONE"};
    assert_int_equal(sv_jobs_list(j, &f, &o, &err), SV_EINVAL);
    char aid[64];
    snprintf(aid, sizeof aid, "%s", sv_job_id(a));
    sv_job_release(a);
    sv_job_release(b);
    /* "crash": close without finishing a; reopen */
    sv_jobs_close(j);
    j = open_jobs(cat, 100);
    assert_int_equal(sv_jobs_get(j, aid, &o, &err), 0);
    assert_string_equal(field(o, "state"), "RUNNING"); /* not yet decided */
    json_decref(o);
    assert_int_equal(sv_jobs_recover(j, &err), 0);
    assert_int_equal(sv_jobs_get(j, aid, &o, &err), 0);
    assert_string_equal(field(o, "state"), "FAILED");
    assert_string_equal(field(o, "reason"), "interrupted by restart");
    assert_int_equal(json_integer_value(json_object_get(o, "itemsDone")), 4);
    json_decref(o);
    sv_jobs_close(j);
    /* a claimed job is left to its service */
    j = open_jobs(cat, 100);
    sv_job *d = NULL;
    sv_job_spec sd = {.kind = "restore"};
    assert_int_equal(sv_jobs_create(j, &sd, &d, &err), 0);
    char did[64];
    snprintf(did, sizeof did, "%s", sv_job_id(d));
    sv_job_release(d);
    sv_jobs_close(j);
    j = open_jobs(cat, 100);
    assert_int_equal(sv_jobs_claim(j, did, &d, &err), 0);
    assert_int_equal(sv_jobs_recover(j, &err), 0);
    assert_int_equal(sv_jobs_get(j, did, &o, &err), 0);
    assert_string_equal(field(o, "state"), "PENDING");
    json_decref(o);
    sv_job_release(d);
    sv_jobs_close(j);
    sv_catalog_close(cat);
}

static char g_seen[4][64];
static int g_nseen;

static void visit(void *ud, const char *id, const char *collection, const char *target, const char *backend)
{
    if (g_nseen < 4)
        snprintf(g_seen[g_nseen++], 64, "%s/%s", id, target);
}

/* What a previous process left unfinished, by kind: a service settles the
 * jobs whose work did finish; the rest end "interrupted by restart". */
static void unfinished_are_settled_or_failed(void **state)
{
    sv_catalog *cat = open_cat("unfinished");
    sv_jobs *j = open_jobs(cat, 100);
    sv_err err = {0};
    sv_job *done = NULL, *cut = NULL, *other = NULL, *fin = NULL;
    sv_job_spec a = {.kind = "snapshot", .target = "done"}, b = {.kind = "snapshot", .target = "cut"},
                c = {.kind = "gc"}, d = {.kind = "snapshot", .target = "finished"};
    assert_int_equal(sv_jobs_create(j, &a, &done, &err), 0);
    assert_int_equal(sv_jobs_create(j, &b, &cut, &err), 0);
    assert_int_equal(sv_jobs_create(j, &c, &other, &err), 0);
    assert_int_equal(sv_jobs_create(j, &d, &fin, &err), 0);
    assert_int_equal(sv_job_finish(fin, SV_JOB_SUCCEEDED, NULL, NULL, &err), 0);
    char done_id[64], cut_id[64], other_id[64];
    snprintf(done_id, sizeof done_id, "%s", sv_job_id(done));
    snprintf(cut_id, sizeof cut_id, "%s", sv_job_id(cut));
    snprintf(other_id, sizeof other_id, "%s", sv_job_id(other));
    sv_job_release(done);
    sv_job_release(cut);
    sv_job_release(other);
    sv_job_release(fin);
    sv_jobs_close(j); /* "crash" */
    j = open_jobs(cat, 100);
    g_nseen = 0;
    assert_int_equal(sv_jobs_unfinished(j, "snapshot", visit, NULL, &err), 0);
    assert_int_equal(g_nseen, 2); /* the two snapshot jobs left running, not the gc or the finished one */
    sv_job *h = NULL;
    assert_int_equal(sv_jobs_claim(j, done_id, &h, &err), 0); /* its work had finished */
    assert_int_equal(sv_job_finish(h, SV_JOB_SUCCEEDED, NULL, NULL, &err), 0);
    sv_job_release(h);
    assert_int_equal(sv_jobs_recover(j, &err), 0);
    json_t *o = NULL;
    assert_int_equal(sv_jobs_get(j, done_id, &o, &err), 0);
    assert_string_equal(field(o, "state"), "SUCCEEDED");
    json_decref(o);
    const char *failed_ids[2] = {cut_id, other_id};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sv_jobs_get(j, failed_ids[i], &o, &err), 0);
        assert_string_equal(field(o, "state"), "FAILED");
        assert_string_equal(field(o, "reason"), "interrupted by restart");
        json_decref(o);
    }
    sv_jobs_close(j);
    sv_catalog_close(cat);
}

static void retention_of_jobs(void **state)
{
    sv_catalog *cat = open_cat("keep");
    sv_jobs *j = open_jobs(cat, 3);
    sv_err err = {0};
    assert_int_equal(sv_jobs_recover(j, &err), 0);
    char ids[6][64];
    for (int i = 0; i < 6; i++) {
        sv_job *x = NULL;
        sv_job_spec s = {.kind = i % 2 ? "gc" : "export"};
        assert_int_equal(sv_jobs_create(j, &s, &x, &err), 0);
        snprintf(ids[i], sizeof ids[i], "%s", sv_job_id(x));
        assert_int_equal(sv_job_finish(x, SV_JOB_SUCCEEDED, NULL, NULL, &err), 0);
        sv_job_release(x);
    }
    for (int k = 0; k < 5; k++) { /* 5 more gc jobs: only the newest 3 gc jobs stay */
        sv_job *x = NULL;
        sv_job_spec s = {.kind = "gc"};
        assert_int_equal(sv_jobs_create(j, &s, &x, &err), 0);
        assert_int_equal(sv_job_finish(x, SV_JOB_FAILED, "x", NULL, &err), 0);
        sv_job_release(x);
    }
    json_t *o = NULL;
    sv_jobs_filter f = {.kind = "gc"};
    assert_int_equal(sv_jobs_list(j, &f, &o, &err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "jobs")), 3);
    json_decref(o);
    f.kind = "export";
    assert_int_equal(sv_jobs_list(j, &f, &o, &err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "jobs")), 3);
    json_decref(o);
    assert_int_equal(sv_jobs_get(j, ids[1], &o, &err), SV_ENOTFOUND); /* the oldest gc */
    sv_jobs_close(j);
    /* and in the catalog too */
    j = open_jobs(cat, 1000);
    f.kind = "gc";
    assert_int_equal(sv_jobs_list(j, &f, &o, &err), 0);
    assert_int_equal(json_array_size(json_object_get(o, "jobs")), 3);
    json_decref(o);
    sv_jobs_close(j);
    sv_catalog_close(cat);
}

/* ---- schedules with a fake kind ------------------------------------------------------ */

typedef struct fake {
    sv_jobs *jobs;
    pthread_mutex_t mu;
    char names[64][160];
    int n;
    int runs;
    bool hold; /* leave jobs RUNNING */
} fake;

static int fake_run(void *self, const sv_schedule_run *run, char job_id[64], sv_err *err)
{
    fake *f = self;
    sv_job *job = NULL;
    sv_job_spec s = {.kind = "snapshot", .collection = run->collection, .target = run->name, .schedule = run->schedule};
    int rc = sv_jobs_create(f->jobs, &s, &job, err);
    if (rc)
        return rc;
    snprintf(job_id, 64, "%s", sv_job_id(job));
    pthread_mutex_lock(&f->mu);
    f->runs++;
    if (f->n < 64)
        snprintf(f->names[f->n++], 160, "%s", run->name);
    pthread_mutex_unlock(&f->mu);
    sv_job_start(job, NULL);
    if (!f->hold)
        sv_job_finish(job, SV_JOB_SUCCEEDED, NULL, NULL, NULL);
    sv_job_release(job);
    return 0;
}

static int fake_forget(void *self, const char *schedule, const char *collection, const char *backend,
                       const char *target, sv_err *err)
{
    fake *f = self;
    pthread_mutex_lock(&f->mu);
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->names[i], target)) {
            memmove(f->names[i], f->names[i + 1], (size_t)(f->n - i - 1) * sizeof f->names[0]);
            f->n--;
            break;
        }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static void register_fake(sv_jobs *j, fake *f)
{
    f->jobs = j;
    sv_job_kind k = {.name = "snapshot", .self = f, .run_scheduled = fake_run, .forget = fake_forget};
    sv_err err = {0};
    assert_int_equal(sv_jobs_register_kind(j, &k, &err), 0);
}

static json_t *body(const char *s)
{
    json_t *o = json_loads(s, 0, NULL);
    assert_non_null(o);
    return o;
}

static void schedule_validation(void **state)
{
    sv_catalog *cat = open_cat("schedval");
    sv_jobs *j = open_jobs(cat, 100);
    fake f = {0};
    pthread_mutex_init(&f.mu, NULL);
    register_fake(j, &f);
    sv_err err = {0};
    json_t *out = NULL;
    struct { const char *body, *field; } bad[] = {
        {"{\"name\":\"Bad\",\"kind\":\"snapshot\",\"collection\":\"A\",\"every\":\"1s\"}", "name"},
        {"{\"name\":\"a\",\"kind\":\"nope\",\"collection\":\"A\",\"every\":\"1s\"}", "kind"},
        {"{\"name\":\"a\",\"kind\":\"snapshot\",\"every\":\"1s\"}", "collection"},
        {"{\"name\":\"a\",\"kind\":\"snapshot\",\"collection\":\"A\",\"every\":\"0s\"}", "every"},
        {"{\"name\":\"a\",\"kind\":\"snapshot\",\"collection\":\"A\",\"cron\":\"61 * * * *\"}", "cron"},
        {"{\"name\":\"a\",\"kind\":\"snapshot\",\"collection\":\"A\",\"cron\":\"* * * * *\",\"every\":\"1s\"}", "cron"},
        {"{\"name\":\"a\",\"kind\":\"snapshot\",\"collection\":\"A\"}", "cron or every"},
        {"{\"name\":\"a\",\"kind\":\"snapshot\",\"collection\":\"A\",\"every\":\"1s\",\"retention\":{\"keepAll\":1}}",
         "retention.keepAll"},
        {"{\"name\":\"a\",\"kind\":\"snapshot\",\"collection\":\"A\",\"every\":\"1s\",\"retention\":{\"keepLast\":-1}}",
         "retention.keepLast"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = body(bad[i].body);
        assert_int_equal(sv_schedules_create(j, b, &out, &err), SV_EINVAL);
        if (!strstr(err.msg, bad[i].field))
            fail_msg("%s: '%s' does not name %s", bad[i].body, err.msg, bad[i].field);
        json_decref(b);
    }
    json_t *b = body("{\"name\":\"n1\",\"kind\":\"snapshot\",\"collection\":\"A\",\"cron\":\"0 3 * * *\","
                     "\"retention\":{\"keepDaily\":7}}");
    assert_int_equal(sv_schedules_create(j, b, &out, &err), 0);
    assert_string_equal(field(out, "cron"), "0 3 * * *");
    assert_true(json_is_null(json_object_get(out, "lastRun")));
    assert_int_equal(json_integer_value(json_object_get(out, "nextRunAt")) % 86400000, 3 * 3600000);
    json_decref(out);
    assert_int_equal(sv_schedules_create(j, b, &out, &err), SV_EEXIST);
    json_decref(b);
    sv_jobs_close(j);
    pthread_mutex_destroy(&f.mu);
    sv_catalog_close(cat);
}

static int fake_count(fake *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->n;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static void schedule_runs_and_retention(void **state)
{
    sv_catalog *cat = open_cat("schedrun");
    sv_jobs *j = open_jobs(cat, 1000);
    fake f = {0};
    pthread_mutex_init(&f.mu, NULL);
    register_fake(j, &f);
    sv_err err = {0};
    assert_int_equal(sv_jobs_recover(j, &err), 0);
    json_t *out = NULL, *b = body("{\"name\":\"every\",\"kind\":\"snapshot\",\"collection\":\"A\",\"every\":\"1s\","
                                  "\"retention\":{\"keepLast\":2}}");
    assert_int_equal(sv_schedules_create(j, b, &out, &err), 0);
    json_decref(out);
    json_decref(b);
    usleep(4500 * 1000);
    assert_true(f.runs >= 3);
    /* pause, let retention catch up, then exactly the 2 newest remain */
    b = body("{\"paused\":true}");
    assert_int_equal(sv_schedules_update(j, "every", b, &out, &err), 0);
    json_decref(b);
    assert_true(json_is_true(json_object_get(out, "paused")));
    json_decref(out);
    usleep(300 * 1000);
    assert_int_equal(fake_count(&f), 2);
    pthread_mutex_lock(&f.mu);
    for (int i = 0; i < f.n; i++)
        assert_int_equal(strncmp(f.names[i], "every-2", 7), 0); /* every-YYYYMMDDTHHMMSSZ */
    assert_int_equal(strlen(f.names[0]), strlen("every-") + 16);
    pthread_mutex_unlock(&f.mu);
    assert_int_equal(sv_schedules_get(j, "every", &out, &err), 0);
    assert_string_equal(field(json_object_get(out, "lastRun"), "state"), "SUCCEEDED");
    json_decref(out);
    /* the schedule survives a restart; a run missed while down is caught up once */
    int runs_before = f.runs;
    sv_jobs_close(j);
    j = open_jobs(cat, 1000);
    register_fake(j, &f);
    b = body("{\"paused\":false}");
    assert_int_equal(sv_schedules_update(j, "every", b, &out, &err), 0);
    json_decref(out);
    json_decref(b);
    sv_jobs_close(j);
    /* edit the stored record: the next run was due 10 s ago (10 missed slots) */
    char *v = NULL;
    size_t n = 0;
    assert_int_equal(sv_catalog_get(cat, "schedules/every", &v, &n, NULL, &err), 0);
    json_t *rec = json_loadb(v, n, 0, NULL);
    free(v);
    json_object_set_new(rec, "nextRunAt", json_integer(sv_now_ms() - 10000));
    json_object_set_new(rec, "every", json_string("1h"));
    char *txt = json_dumps(rec, JSON_COMPACT);
    assert_int_equal(sv_catalog_put(cat, "schedules/every", txt, strlen(txt), 0, &err), 0);
    free(txt);
    json_decref(rec);
    j = open_jobs(cat, 1000);
    register_fake(j, &f);
    assert_int_equal(sv_jobs_recover(j, &err), 0);
    usleep(500 * 1000);
    assert_int_equal(f.runs, runs_before + 1);
    assert_int_equal(sv_schedules_get(j, "every", &out, &err), 0);
    assert_true(json_integer_value(json_object_get(out, "nextRunAt")) > sv_now_ms() + 3000000);
    json_decref(out);
    assert_int_equal(sv_schedules_delete(j, "every", &err), 0);
    assert_int_equal(sv_schedules_get(j, "every", &out, &err), SV_ENOTFOUND);
    assert_int_equal(fake_count(&f), 2); /* delete keeps what it created */
    sv_jobs_close(j);
    pthread_mutex_destroy(&f.mu);
    sv_catalog_close(cat);
}

static void schedule_skips_busy_run(void **state)
{
    sv_catalog *cat = open_cat("schedskip");
    sv_jobs *j = open_jobs(cat, 1000);
    fake f = {.hold = true};
    pthread_mutex_init(&f.mu, NULL);
    register_fake(j, &f);
    sv_err err = {0};
    assert_int_equal(sv_jobs_recover(j, &err), 0);
    json_t *out = NULL, *b = body("{\"name\":\"busy\",\"kind\":\"snapshot\",\"collection\":\"A\",\"every\":\"1s\"}");
    assert_int_equal(sv_schedules_create(j, b, &out, &err), 0);
    json_decref(out);
    json_decref(b);
    usleep(2600 * 1000);
    assert_int_equal(f.runs, 1);
    assert_int_equal(sv_schedules_get(j, "busy", &out, &err), 0);
    json_t *skip = json_object_get(out, "lastSkipped");
    assert_non_null(strstr(field(skip, "reason"), "still RUNNING"));
    json_decref(out);
    sv_jobs_close(j);
    pthread_mutex_destroy(&f.mu);
    sv_catalog_close(cat);
}

int main(void)
{
    if (sv_test_root("jobs", g_root, sizeof g_root))
        return 1;
    sv_log_set_level(SV_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cron_fields),         cmocka_unit_test(cron_errors),
        cmocka_unit_test(intervals),           cmocka_unit_test(retention),
        cmocka_unit_test(pool),
        cmocka_unit_test(crew),
        cmocka_unit_test(lifecycle_and_restart), cmocka_unit_test(cannot_cancel),
        cmocka_unit_test(retention_of_jobs),   cmocka_unit_test(unfinished_are_settled_or_failed),   cmocka_unit_test(schedule_validation),
        cmocka_unit_test(schedule_runs_and_retention), cmocka_unit_test(schedule_skips_busy_run),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        sv_rmtree(g_root, NULL);
    return rc;
}
