/* Restore jobs: one task per shard of the manifest, run by up to
 * s->workers threads, resumable across restarts (tasks are persisted in the
 * catalog by restore_meta.c); the target collection is adopted all at once
 * when every shard is laid out. See docs/snapshot.md. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot_internal.h"

/* Counts object keys (16-byte UUIDs; bookkeeping keys are longer). */
static int count_objects(sv_snapshot *s, const char *dir, int64_t *out, sv_err *err)
{
    sv_db *db = NULL;
    int rc = sv_db_open_readonly(s->engine, dir, &db, err);
    if (rc)
        return rc;
    sv_db_iter *it = sv_db_iter_new(db);
    int64_t n = 0;
    for (sv_db_iter_seek_first(it); sv_db_iter_valid(it); sv_db_iter_next(it)) {
        size_t kl;
        sv_db_iter_key(it, &kl);
        if (kl == 16)
            n++;
    }
    rc = sv_db_iter_status(it, err);
    sv_db_iter_free(it);
    sv_db_close(db);
    *out = n;
    return rc;
}

static job_run *run_get(sv_snapshot *s, const char *id)
{
    for (job_run *r = s->runs; r; r = r->next)
        if (!strcmp(r->id, id))
            return r;
    return NULL;
}

static json_t *job_api(sv_snapshot *s, const sv_restore_job *j)
{
    sv_restore_task *tasks = NULL;
    size_t nt = 0;
    int64_t copied = 0;
    json_t *tj = json_array();
    if (sv_restore_meta_tasks_of_job(s->meta, j->id, &tasks, &nt) == 0) {
        for (size_t i = 0; i < nt; i++) {
            if (tasks[i].state == SV_RESTORE_COMPLETED)
                copied += tasks[i].bytes_total;
            json_array_append_new(tj, json_pack("{s:s,s:s,s:I,s:I}", "shard", tasks[i].shard, "state",
                                                sv_restore_state_name(tasks[i].state), "bytes",
                                                (json_int_t)tasks[i].bytes_total, "objects",
                                                (json_int_t)tasks[i].objects));
        }
        free(tasks);
    }
    pthread_mutex_lock(&s->mu);
    job_run *r = run_get(s, j->id);
    if (r)
        copied += atomic_load(&r->bytes_running);
    pthread_mutex_unlock(&s->mu);
    if (j->state == SV_RESTORE_COMPLETED)
        copied = j->bytes_total;
    if (copied > j->bytes_total)
        copied = j->bytes_total;
    int progress = j->state == SV_RESTORE_COMPLETED ? 100
                   : j->bytes_total > 0         ? (int)(copied * 100 / j->bytes_total)
                                                : 0;
    if (progress > 99 && j->state != SV_RESTORE_COMPLETED)
        progress = 99;
    int64_t took = j->started_at ? (j->finished_at ? j->finished_at : sv_now_ms()) - j->started_at : 0;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:s,s:I,s:I,s:I,s:o}", "jobId", j->id, "snapshot",
                     j->snapshot, "collection", j->collection, "target", j->target, "state",
                     sv_restore_state_name(j->state), "progress", progress, "bytesCopied", (json_int_t)copied,
                     "bytesTotal", (json_int_t)j->bytes_total, "reason", j->reason, "startedAt",
                     (json_int_t)j->started_at, "tookInMs", (json_int_t)took, "createdAt", (json_int_t)j->created_at,
                     "tasks", tj);
}

int sv_snapshot_job_get(sv_snapshot *s, const char *id, json_t **out, sv_err *err)
{
    sv_uuid u;
    if (sv_uuid_parse(id, strlen(id), &u) != 0)
        return sv_fail(err, SV_EINVAL, "restore job id '%.64s' is not a UUID", id);
    char canon[37];
    sv_uuid_format(&u, canon);
    sv_restore_job j;
    if (sv_restore_meta_get_job(s->meta, canon, &j) != 0)
        return sv_fail(err, SV_ENOTFOUND, "restore job %s not found", canon);
    *out = job_api(s, &j);
    return *out ? 0 : sv_snap_oom(err);
}

int sv_snapshot_job_list(sv_snapshot *s, json_t **out, sv_err *err)
{
    sv_restore_job *jobs = NULL;
    size_t n = 0;
    if (sv_restore_meta_list_jobs(s->meta, &jobs, &n))
        return sv_snap_oom(err);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        json_array_append_new(arr, job_api(s, &jobs[i]));
    free(jobs);
    *out = arr ? json_pack("{s:o}", "jobs", arr) : NULL;
    return *out ? 0 : sv_snap_oom(err);
}

static int load_manifest(sv_snapshot *s, const char *collection, const char *name, sv_manifest **out, sv_err *err)
{
    char key[400];
    sv_manifest_key(collection, name, key);
    sv_buf b = {0};
    int rc = sv_location_get_buf(s->loc, key, &b, err);
    if (rc == 0) {
        rc = sv_manifest_parse((const char *)b.data, b.len, out, err);
        if (rc)
            sv_err_wrap(err, "manifest %s", key);
    }
    sv_buf_free(&b);
    return rc;
}

typedef struct job_ctx {
    sv_snapshot *s;
    job_run *run;
    sv_restore_job job;
    sv_manifest *m;
    sv_restore_task *tasks;
    size_t ntasks;
    char root[PATH_MAX + 128];
    pthread_mutex_t mu;
    sv_err err;
    int rc;
    long failed_task; /* index of the task whose error failed the job, -1 if none */
    sv_job *sjob;     /* the jobs service's record (may be NULL); released with the context */
    char (*nodes)[65]; /* a restore across nodes: each manifest shard's owner (NULL: all here) */
} job_ctx;

static void task_dirs(job_ctx *jc, const sv_restore_task *t, char *dir, char *part, size_t n)
{
    snprintf(dir, n, "%s/%s", jc->root, t->shard);
    snprintf(part, n, "%s/%s.part", jc->root, t->shard);
}

static int run_task(job_ctx *jc, sv_restore_task *t, sv_err *err)
{
    sv_snapshot *s = jc->s;
    if (t->index < 0 || (size_t)t->index >= jc->m->nshards || strcmp(jc->m->shards[t->index].name, t->shard))
        return sv_fail(err, SV_ECORRUPT, "restore task %s does not match the manifest", t->shard);
    const sv_manifest_shard *ms = &jc->m->shards[t->index];
    char dir[PATH_MAX + 300], part[PATH_MAX + 300];
    task_dirs(jc, t, dir, part, sizeof dir);
    t->state = SV_RESTORE_EXECUTING;
    int rc = sv_restore_meta_update_task(s->meta, t, err);
    if (rc)
        return rc;
    _Atomic int64_t copied = 0;
    int64_t t0 = sv_mono_ns();
    if ((rc = sv_rmtree(part, err)) != 0 || (rc = sv_rmtree(dir, err)) != 0 || (rc = sv_mkdirs(part, err)) != 0)
        return rc;
    for (size_t k = 0; rc == 0 && k < ms->nfiles; k++) {
        if (atomic_load(&jc->run->failed) || (jc->sjob && sv_job_canceled(jc->sjob)))
            return SV_ECANCELED;
        sv_snap_test_delay(s);
        if (sv_snap_stopping(s))
            return SV_ECANCELED;
        char path[PATH_MAX + 600];
        snprintf(path, sizeof path, "%s/%s", part, ms->files[k].name);
        int64_t before = atomic_load(&copied);
        rc = sv_snap_restore_blob(s, ms, &ms->files[k], path, &copied, err);
        atomic_fetch_add(&jc->run->bytes_running, atomic_load(&copied) - before);
    }
    if (rc == 0)
        rc = sv_fsync_dir(part, err);
    int64_t t_fetch = sv_mono_ns();
    int64_t objects = 0;
    if (rc == 0 && !ms->empty && !s->verify_count) {
        /* Every byte is already verified; opening checks the files form a
         * database. Objects are counted by the store after adoption. */
        sv_db *db = NULL;
        rc = sv_db_open_readonly(s->engine, part, &db, err);
        if (rc)
            sv_err_wrap(err, "opening restored shard %s", ms->name);
        sv_db_close(db);
        objects = ms->objects;
    } else if (rc == 0 && !ms->empty) {
        rc = count_objects(s, part, &objects, err);
        if (rc)
            sv_err_wrap(err, "opening restored shard %s", ms->name);
        else if (ms->objects >= 0 && objects != ms->objects)
            rc = sv_fail(err, SV_ECORRUPT, "restored shard %s holds %lld objects, the manifest says %lld", ms->name,
                         (long long)objects, (long long)ms->objects);
    }
    if (rc == 0 && rename(part, dir) != 0)
        rc = sv_fail(err, SV_EIO, "cannot rename %s: %s", part, strerror(errno));
    if (rc == 0)
        rc = sv_fsync_dir(jc->root, err);
    atomic_fetch_sub(&jc->run->bytes_running, atomic_load(&copied));
    if (rc)
        return rc;
    sv_debug("restore task done", "job=%s shard=%s bytes=%lld fetch_ms=%lld count_ms=%lld", t->job_id, t->shard,
             (long long)atomic_load(&copied), (long long)((t_fetch - t0) / 1000000),
             (long long)((sv_mono_ns() - t_fetch) / 1000000));
    t->state = SV_RESTORE_COMPLETED;
    t->objects = objects;
    return sv_restore_meta_update_task(s->meta, t, err);
}

/* One task on the jobs pool. A real failure is recorded in jc (the first
 * one wins) and stops the others through run->failed; SV_ECANCELED alone
 * means stopping or a cancel request, told apart by the caller. */
static int task_one(void *arg, size_t i, sv_err *err)
{
    job_ctx *jc = arg;
    sv_restore_task *t = &jc->tasks[i];
    if (t->state == SV_RESTORE_COMPLETED)
        return 0;
    if (t->index >= 0 && !sv_snap_spread_here(jc->s, jc->nodes, (size_t)t->index))
        return 0; /* another node lays it out (restore_spread.c) */
    if (atomic_load(&jc->run->failed) || sv_snap_stopping(jc->s))
        return SV_ECANCELED;
    sv_err e = {0};
    int rc = run_task(jc, t, &e);
    if (rc == SV_ECANCELED && !atomic_load(&jc->run->failed))
        return rc;
    if (rc) {
        pthread_mutex_lock(&jc->mu);
        if (jc->rc == 0 || jc->rc == SV_ECANCELED) {
            jc->rc = rc;
            jc->err = e;
            jc->failed_task = (long)i;
            sv_err_wrap(&jc->err, "shard %s", t->shard);
        }
        pthread_mutex_unlock(&jc->mu);
        atomic_store(&jc->run->failed, true);
        if (err)
            *err = e;
        return rc;
    }
    if (jc->sjob)
        sv_job_add_done(jc->sjob, 1, t->bytes_total);
    return 0;
}

/* The restore's outcome in the jobs vocabulary (COMPLETED -> SUCCEEDED). */
static void sjob_finish(job_ctx *jc, sv_job_state st, const char *reason)
{
    if (!jc->sjob)
        return;
    /* A restore that succeeded says what it made: the target and what its
     * shards hold (the tasks' counts, checked against the manifest). */
    json_t *res = NULL;
    if (st == SV_JOB_SUCCEEDED) {
        int64_t objects = 0, bytes = 0;
        for (size_t i = 0; i < jc->ntasks; i++) {
            objects += jc->tasks[i].objects > 0 ? jc->tasks[i].objects : 0;
            bytes += jc->tasks[i].bytes_total;
        }
        res = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "collection", jc->job.target, "snapshot", jc->job.snapshot,
                        "sourceCollection", jc->job.collection, "shardsRestored", (json_int_t)jc->ntasks,
                        "objectsRestored", (json_int_t)objects, "bytesRestored", (json_int_t)bytes);
    }
    sv_err e = {0};
    if (sv_job_finish(jc->sjob, st, reason, res, &e))
        sv_warn("restore: job record not updated", "job=%s error=\"%s\"", jc->job.id, e.msg);
    json_decref(res);
}

static int job_fail(sv_snapshot *s, job_ctx *jc, const char *why)
{
    sv_restore_job *j = &jc->job;
    /* Rollback: everything the job laid out goes; no collection was created
     * (adoption is all or nothing). */
    sv_err ignored;
    sv_rmtree(jc->root, &ignored);
    for (size_t i = 0; i < jc->ntasks; i++) {
        if (jc->tasks[i].state != SV_RESTORE_FAILED) {
            jc->tasks[i].state = SV_RESTORE_FAILED;
            snprintf(jc->tasks[i].reason, sizeof jc->tasks[i].reason, "%s",
                     (long)i == jc->failed_task ? why : "the job failed");
            sv_restore_meta_update_task(s->meta, &jc->tasks[i], NULL);
        }
    }
    sv_store_unreserve_collection(s->st, j->target); /* the name is free again */
    j->state = SV_RESTORE_FAILED;
    snprintf(j->reason, sizeof j->reason, "%s", why);
    j->finished_at = sv_now_ms();
    if (!j->started_at)
        j->started_at = j->finished_at;
    sv_err e = {0};
    int rc = sv_restore_meta_update_job(s->meta, j, &e);
    if (rc)
        sv_error("cannot mark restore job FAILED", "job=%s error=\"%s\"", j->id, e.msg);
    sv_warn("restore failed", "job=%s snapshot=%s/%s target=%s reason=\"%s\"", j->id, j->collection, j->snapshot,
            j->target, why);
    atomic_fetch_add(&s->m_restore_failed, 1);
    bool canceled = jc->sjob && sv_job_canceled(jc->sjob) && jc->rc == 0;
    sjob_finish(jc, canceled ? SV_JOB_CANCELED : SV_JOB_FAILED, canceled ? NULL : why);
    return rc;
}

static bool collection_exists(sv_snapshot *s, const char *name)
{
    json_t *cj = NULL;
    int rc = sv_store_get_collection(s->st, name, &cj, NULL);
    json_decref(cj);
    return rc == 0;
}

/* The adopted collection's exact per-shard counts (the store opens each
 * shard and reads its count) must equal the manifest's. */
static int check_counts(sv_snapshot *s, job_ctx *jc, sv_err *err)
{
    sv_shard_info *sh = NULL;
    size_t nsh = 0;
    int rc = sv_store_shards(s->st, jc->job.target, &sh, &nsh, err);
    if (rc)
        return rc;
    for (size_t i = 0; rc == 0 && i < jc->ntasks; i++) {
        const sv_manifest_shard *ms = &jc->m->shards[jc->tasks[i].index];
        int64_t got = -1;
        bool remote = false;
        for (size_t k = 0; k < nsh; k++)
            if (!strcmp(sh[k].name, ms->name)) {
                got = sh[k].objects;
                remote = !sh[k].local; /* its owner verified every file as it laid it out */
            }
        if (remote)
            continue;
        if (ms->objects >= 0 && got != ms->objects)
            rc = sv_fail(err, SV_ECORRUPT, "restored shard %s holds %lld objects, the manifest says %lld", ms->name,
                         (long long)got, (long long)ms->objects);
        else
            jc->tasks[i].objects = got;
    }
    free(sh);
    for (size_t i = 0; rc == 0 && i < jc->ntasks; i++)
        sv_restore_meta_update_task(s->meta, &jc->tasks[i], NULL);
    return rc;
}

static void run_job(sv_snapshot *s, job_ctx *jc)
{
    sv_restore_job *j = &jc->job;
    sv_err err = {0};
    snprintf(jc->root, sizeof jc->root, "%s/%s", s->staging, j->id);
    int rc = sv_restore_meta_tasks_of_job(s->meta, j->id, &jc->tasks, &jc->ntasks);
    if (rc) {
        sv_error("cannot load restore tasks", "job=%s", j->id);
        job_fail(s, jc, "cannot load the job's tasks (out of memory)");
        return;
    }
    /* Resumption: tasks COMPLETED before a restart keep their directories
     * (staging is outside <data>/tmp); one whose directory is gone redoes. */
    bool all_done = jc->ntasks > 0 || j->ntasks == 0;
    bool dirs_present = false;
    for (size_t i = 0; i < jc->ntasks; i++) {
        char dir[PATH_MAX + 300], part[PATH_MAX + 300];
        task_dirs(jc, &jc->tasks[i], dir, part, sizeof dir);
        bool present = sv_path_exists(dir);
        dirs_present |= present;
        if (jc->tasks[i].state != SV_RESTORE_COMPLETED)
            all_done = false;
    }
    if (all_done && jc->ntasks > 0 && !dirs_present && collection_exists(s, j->target)) {
        /* The previous process adopted the shards and stopped before it
         * could record COMPLETED. */
        j->state = SV_RESTORE_COMPLETED;
        j->finished_at = sv_now_ms();
        if (sv_restore_meta_update_job(s->meta, j, &err) == 0)
            atomic_fetch_add(&s->m_restored, 1);
        sjob_finish(jc, SV_JOB_SUCCEEDED, NULL);
        return;
    }
    for (size_t i = 0; i < jc->ntasks; i++) {
        char dir[PATH_MAX + 300], part[PATH_MAX + 300];
        task_dirs(jc, &jc->tasks[i], dir, part, sizeof dir);
        if (jc->tasks[i].state == SV_RESTORE_COMPLETED && !sv_path_exists(dir))
            jc->tasks[i].state = SV_RESTORE_PENDING;
    }
    if (j->state == SV_RESTORE_PENDING) {
        j->state = SV_RESTORE_EXECUTING;
        j->started_at = sv_now_ms();
        if ((rc = sv_restore_meta_update_job(s->meta, j, &err)) != 0) {
            sv_error("cannot start restore job", "job=%s error=\"%s\"", j->id, err.msg);
            job_fail(s, jc, err.msg); /* not left PENDING with nothing running it */
            return;
        }
    }
    if (jc->sjob) {
        int64_t items = 0, bytes = 0;
        for (size_t i = 0; i < jc->ntasks; i++)
            if (jc->tasks[i].state == SV_RESTORE_COMPLETED) {
                items++;
                bytes += jc->tasks[i].bytes_total;
            }
        sv_job_start(jc->sjob, NULL);
        sv_job_set_totals(jc->sjob, (int64_t)jc->ntasks, j->bytes_total);
        sv_job_set_done(jc->sjob, items, bytes);
    }
    if ((rc = load_manifest(s, j->collection, j->snapshot, &jc->m, &err)) != 0) {
        job_fail(s, jc, err.msg);
        return;
    }
    if (jc->m->nshards != jc->ntasks) {
        job_fail(s, jc, "the manifest no longer matches the job's tasks");
        return;
    }
    if ((rc = sv_mkdirs(jc->root, &err)) != 0) {
        job_fail(s, jc, err.msg);
        return;
    }
    if ((rc = sv_snap_spread_plan(s, jc->m, &jc->nodes, &err)) != 0) {
        job_fail(s, jc, err.msg);
        return;
    }
    sv_pool_run(s->workers, jc->ntasks, task_one, jc, NULL, NULL);
    if (jc->rc && jc->rc != SV_ECANCELED) {
        job_fail(s, jc, jc->err.msg);
        return;
    }
    if (jc->sjob && sv_job_canceled(jc->sjob) && !sv_snap_stopping(s)) {
        job_fail(s, jc, "canceled by request");
        return;
    }
    bool done = true;
    for (size_t i = 0; i < jc->ntasks; i++)
        done &= jc->tasks[i].state == SV_RESTORE_COMPLETED ||
                !sv_snap_spread_here(s, jc->nodes, (size_t)jc->tasks[i].index);
    if (!done || sv_snap_stopping(s)) {
        sv_info("restore paused; it resumes at the next start", "job=%s", j->id);
        return;
    }
    /* Across nodes: the target's uid is fixed now (from the job id, so a
     * resumed job lays out at the same place); the other owners lay out
     * their shards there. */
    char uid[17] = "";
    for (size_t i = 0, k = 0; jc->nodes && j->id[i] && k < 16; i++)
        if (j->id[i] != '-')
            uid[k++] = j->id[i];
    if (jc->nodes) {
        if ((rc = sv_snap_spread_lay(s, j->id, j->collection, j->snapshot, uid, jc->m, jc->nodes, &err)) != 0) {
            job_fail(s, jc, err.msg);
            return;
        }
        for (size_t i = 0; i < jc->ntasks; i++) /* laid out elsewhere: done as far as this job goes */
            if (!sv_snap_spread_here(s, jc->nodes, (size_t)jc->tasks[i].index)) {
                jc->tasks[i].state = SV_RESTORE_COMPLETED;
                jc->tasks[i].objects = jc->m->shards[jc->tasks[i].index].objects;
                sv_restore_meta_update_task(s->meta, &jc->tasks[i], NULL);
            }
    }
    /* Every shard is laid out: the target appears at once, or not at all. */
    json_t *schema = json_deep_copy(jc->m->schema);
    json_object_set_new(schema, "name", json_string(j->target));
    char *sj = json_dumps(schema, JSON_COMPACT);
    json_decref(schema);
    const char **names = calloc(jc->ntasks + 1, sizeof *names);
    const char **owners = calloc(jc->ntasks + 1, sizeof *owners);
    const char **dirs = calloc(jc->ntasks + 1, sizeof *dirs);
    char(*dirbuf)[PATH_MAX + 300] = calloc(jc->ntasks + 1, sizeof *dirbuf);
    if (!sj || !names || !owners || !dirs || !dirbuf) {
        rc = sv_snap_oom(&err);
    } else {
        for (size_t i = 0; i < jc->ntasks; i++) {
            char part[PATH_MAX + 300];
            task_dirs(jc, &jc->tasks[i], dirbuf[i], part, sizeof part);
            names[i] = jc->tasks[i].shard;
            dirs[i] = dirbuf[i];
            owners[i] = jc->nodes ? jc->nodes[jc->tasks[i].index] : "";
        }
        rc = sv_store_adopt_collection_placed(s->st, sj, strlen(sj), names, dirs, jc->nodes ? owners : NULL,
                                              jc->nodes ? uid : NULL, jc->ntasks, NULL, &err);
        if (rc && jc->nodes)
            sv_snap_spread_unlay(s, jc->nodes, jc->m->nshards, uid);
    }
    free(sj);
    free(owners);
    free(names);
    free(dirs);
    free(dirbuf);
    if (rc) {
        sv_err_wrap(&err, "creating collection '%s'", j->target);
        job_fail(s, jc, err.msg);
        return;
    }
    if (!s->verify_count && (rc = check_counts(s, jc, &err)) != 0) {
        sv_err e2 = {0};
        if (sv_store_delete_collection(s->st, j->target, &e2) != 0)
            sv_error("cannot roll back restored collection", "collection=%s error=\"%s\"", j->target, e2.msg);
        job_fail(s, jc, err.msg);
        return;
    }
    sv_err ignored;
    sv_rmtree(jc->root, &ignored);
    j->state = SV_RESTORE_COMPLETED;
    j->finished_at = sv_now_ms();
    if (sv_restore_meta_update_job(s->meta, j, &err) != 0)
        sv_error("cannot mark restore job COMPLETED", "job=%s error=\"%s\"", j->id, err.msg);
    atomic_fetch_add(&s->m_restored, 1);
    sjob_finish(jc, SV_JOB_SUCCEEDED, NULL);
    sv_info("restore completed", "job=%s snapshot=%s/%s target=%s ms=%lld", j->id, j->collection, j->snapshot,
            j->target, (long long)(j->finished_at - j->started_at));
}

static void *job_thread(void *arg)
{
    job_ctx *jc = arg;
    sv_snapshot *s = jc->s;
    run_job(s, jc);
    pthread_mutex_lock(&s->mu);
    for (job_run **pp = &s->runs; *pp; pp = &(*pp)->next) {
        if (*pp == jc->run) {
            *pp = jc->run->next;
            break;
        }
    }
    s->threads--;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    free(jc->run);
    free(jc->tasks);
    sv_job_release(jc->sjob);
    sv_manifest_free(jc->m);
    free(jc->nodes);
    pthread_mutex_destroy(&jc->mu);
    free(jc);
    return NULL;
}

/* The jobs service's record of a restore job: a new one, or the one a
 * previous process left (claimed, so start-up recovery leaves it to us). */
static sv_job *restore_sjob(sv_snapshot *s, const sv_restore_job *j, bool resume)
{
    if (!s->jobs)
        return NULL;
    sv_job *h = NULL;
    if (resume && sv_jobs_claim(s->jobs, j->id, &h, NULL) == 0)
        return h;
    char link[128];
    snprintf(link, sizeof link, "/v1/restore-jobs/%s", j->id);
    sv_job_spec spec = {.kind = "restore", .id = j->id, .collection = j->collection, .target = j->target,
                        .link = link};
    sv_err e = {0};
    if (sv_jobs_create(s->jobs, &spec, &h, &e))
        sv_warn("restore: no job record", "job=%s error=\"%s\"", j->id, e.msg);
    return h;
}

/* Takes sjob (may be NULL) whatever the outcome. */
static int start_job(sv_snapshot *s, const sv_restore_job *j, sv_job *sjob, sv_err *err)
{
    job_ctx *jc = calloc(1, sizeof *jc);
    job_run *r = calloc(1, sizeof *r);
    if (!jc || !r) {
        free(jc);
        free(r);
        if (sjob)
            sv_job_finish(sjob, SV_JOB_FAILED, "out of memory", NULL, NULL);
        sv_job_release(sjob);
        return sv_snap_oom(err);
    }
    jc->sjob = sjob;
    jc->s = s;
    jc->job = *j;
    jc->run = r;
    jc->failed_task = -1;
    pthread_mutex_init(&jc->mu, NULL);
    snprintf(r->id, sizeof r->id, "%s", j->id);
    pthread_mutex_lock(&s->mu);
    r->next = s->runs;
    s->runs = r;
    pthread_mutex_unlock(&s->mu);
    int rc = sv_snap_spawn(s, job_thread, jc, err);
    if (rc) {
        pthread_mutex_lock(&s->mu);
        for (job_run **pp = &s->runs; *pp; pp = &(*pp)->next) {
            if (*pp == r) {
                *pp = r->next;
                break;
            }
        }
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_destroy(&jc->mu);
        free(r);
        free(jc);
        if (sjob)
            sv_job_finish(sjob, SV_JOB_FAILED, err ? err->msg : "could not start", NULL, NULL);
        sv_job_release(sjob);
        /* The job is persisted: leave it FAILED, not PENDING, or it would
         * run at the next start after the caller was told it failed. */
        sv_restore_job failed = *j;
        failed.state = SV_RESTORE_FAILED;
        failed.finished_at = sv_now_ms();
        snprintf(failed.reason, sizeof failed.reason, "could not start: %.400s", err ? err->msg : "no thread");
        sv_store_unreserve_collection(s->st, j->target);
        sv_err e2 = {0};
        if (sv_restore_meta_update_job(s->meta, &failed, &e2))
            sv_error("cannot mark restore job FAILED", "job=%s error=\"%s\"", j->id, e2.msg);
    }
    return rc;
}

int sv_snapshot_restore(sv_snapshot *s, const char *collection, const char *name, json_t *body, json_t **out,
                        sv_err *err)
{
    int rc = sv_snap_check_names(collection, name, err);
    if (rc)
        return rc;
    json_t *tj = json_is_object(body) ? json_object_get(body, "target") : NULL;
    if (!json_is_string(tj))
        return sv_fail(err, SV_EINVAL, "the body needs {\"target\": \"NewCollection\"}: the collection to create");
    const char *target = json_string_value(tj);
    if ((rc = sv_check_collection_name(target, err)) != 0)
        return sv_err_wrap(err, "target");
    pthread_mutex_lock(&s->ddl_mu);
    json_t *rec = NULL;
    sv_manifest *m = NULL;
    sv_restore_task *tasks = NULL;
    sv_restore_job *others = NULL;
    size_t nothers = 0;
    rc = sv_snap_record_load(s, collection, name, &rec, NULL, err);
    if (rc == 0 && sv_snap_record_state(rec) != SNAP_COMMITTED)
        rc = sv_fail(err, SV_ECONFLICT, "snapshot '%s' of collection '%s' is %s; only COMMITTED snapshots can be restored",
                     name, collection, json_string_value(json_object_get(rec, "status")));
    /* The target name is reserved from here until the restore adopts it or
     * fails: a create of that name meanwhile gets 409. */
    bool reserved = false;
    if (rc == 0 && collection_exists(s, target))
        rc = sv_fail(err, SV_EEXIST, "target collection '%s' already exists; restore into a new name", target);
    if (rc == 0 && sv_restore_meta_jobs_of_collection(s->meta, target, &others, &nothers) != 0)
        rc = sv_snap_oom(err);
    for (size_t i = 0; rc == 0 && i < nothers; i++)
        if (!sv_restore_state_final(others[i].state) && !strcmp(others[i].target, target))
            rc = sv_fail(err, SV_ECONFLICT, "restore job %s is already restoring into '%s'", others[i].id, target);
    if (rc == 0 && sv_snap_stopping(s))
        rc = sv_fail(err, SV_EUNAVAIL, "the server is shutting down");
    if (rc == 0 && (rc = sv_store_reserve_collection(s->st, target, err)) == 0)
        reserved = true;
    if (rc == 0)
        rc = load_manifest(s, collection, name, &m, err);
    sv_restore_job job = {0};
    if (rc == 0) {
        sv_uuid u;
        sv_uuid_v4(&u);
        sv_uuid_format(&u, job.id);
        snprintf(job.collection, sizeof job.collection, "%s", collection);
        snprintf(job.snapshot, sizeof job.snapshot, "%s", name);
        snprintf(job.target, sizeof job.target, "%s", target);
        job.state = SV_RESTORE_PENDING;
        job.created_at = sv_now_ms();
        job.ntasks = (int)m->nshards;
        tasks = calloc(m->nshards + 1, sizeof *tasks);
        if (!tasks)
            rc = sv_snap_oom(err);
        for (size_t i = 0; rc == 0 && i < m->nshards; i++) {
            sv_restore_task *t = &tasks[i];
            snprintf(t->job_id, sizeof t->job_id, "%s", job.id);
            snprintf(t->shard, sizeof t->shard, "%s", m->shards[i].name);
            snprintf(t->collection, sizeof t->collection, "%s", target);
            t->index = (int)i;
            t->state = SV_RESTORE_PENDING;
            t->objects = -1;
            t->bytes_total = m->shards[i].bytes;
            job.bytes_total += t->bytes_total;
        }
    }
    if (rc == 0)
        rc = sv_restore_meta_add_job(s->meta, &job, tasks, m->nshards, err);
    if (rc && reserved)
        sv_store_unreserve_collection(s->st, target);
    pthread_mutex_unlock(&s->ddl_mu);
    if (rc == 0)
        rc = start_job(s, &job, restore_sjob(s, &job, false), err);
    if (rc == 0) {
        sv_info("restore started", "job=%s snapshot=%s/%s target=%s bytes=%lld", job.id, collection, name, target,
                (long long)job.bytes_total);
        *out = json_pack("{s:s}", "jobId", job.id);
    }
    free(others);
    free(tasks);
    sv_manifest_free(m);
    json_decref(rec);
    return rc;
}

/* Checks that the catalog gave back every task of the job, each once and
 * consistent with it; writes what is wrong into why. */
static bool tasks_consistent(const sv_restore_job *j, const sv_restore_task *t, size_t nt, char *why, size_t n)
{
    if (j->ntasks < 0 || nt != (size_t)j->ntasks) {
        snprintf(why, n,
                 "cannot load the job's tasks from the catalog: %zu of its %d task records (restore-tasks/%s/) are "
                 "there and readable",
                 nt, j->ntasks, j->id);
        return false;
    }
    for (size_t i = 0; i < nt; i++) {
        bool dup = false;
        for (size_t k = 0; k < i && !dup; k++)
            dup = t[k].index == t[i].index;
        if (t[i].index < 0 || t[i].index >= j->ntasks || dup) {
            snprintf(why, n,
                     "cannot load the job's tasks from the catalog: task record restore-tasks/%s/%s has index %d, "
                     "%s",
                     j->id, t[i].shard, t[i].index, dup ? "which another task has" : "outside the job's tasks");
            return false;
        }
        if (strcmp(t[i].collection, j->target)) {
            snprintf(why, n,
                     "cannot load the job's tasks from the catalog: task record restore-tasks/%s/%s restores into "
                     "'%s', not the job's target '%s'",
                     j->id, t[i].shard, t[i].collection, j->target);
            return false;
        }
    }
    return true;
}

/* A job whose tasks cannot be loaded, or do not fit it, can neither run nor
 * resume: it is marked FAILED (with what could not be loaded) instead of
 * staying PENDING or EXECUTING for ever. Returns true if it was. */
static bool fail_if_tasks_unloadable(sv_snapshot *s, const sv_restore_job *j)
{
    job_ctx jc = {.s = s, .job = *j, .failed_task = -1};
    if (sv_restore_meta_tasks_of_job(s->meta, j->id, &jc.tasks, &jc.ntasks) != 0) {
        sv_error("cannot load restore tasks (out of memory); the job resumes at the next start", "job=%s", j->id);
        return true;
    }
    char why[512];
    bool ok = tasks_consistent(j, jc.tasks, jc.ntasks, why, sizeof why);
    if (!ok) {
        snprintf(jc.root, sizeof jc.root, "%s/%s", s->staging, j->id);
        job_fail(s, &jc, why);
    }
    free(jc.tasks);
    return !ok;
}

void sv_snap_resume_jobs(sv_snapshot *s)
{
    /* Staging directories of jobs that are gone (finished or removed). */
    DIR *d = opendir(s->staging);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        sv_restore_job j;
        if (e->d_name[0] == '.' || sv_restore_meta_get_job(s->meta, e->d_name, &j) == 0)
            continue;
        char p[PATH_MAX + 400];
        snprintf(p, sizeof p, "%s/%s", s->staging, e->d_name);
        sv_rmtree(p, NULL);
    }
    if (d)
        closedir(d);
    /* Resume unfinished jobs. */
    sv_restore_job *jobs = NULL;
    size_t nj = 0;
    if (sv_restore_meta_list_jobs(s->meta, &jobs, &nj) == 0) {
        for (size_t i = 0; i < nj; i++) {
            if (sv_restore_state_final(jobs[i].state))
                continue;
            if (fail_if_tasks_unloadable(s, &jobs[i]))
                continue;
            sv_info("resuming restore job", "job=%s target=%s", jobs[i].id, jobs[i].target);
            /* Reservations live in memory: take the name again (an adopted
             * target exists already, which the job itself detects). */
            sv_store_reserve_collection(s->st, jobs[i].target, NULL);
            sv_job *sj = restore_sjob(s, &jobs[i], true); /* claimed now: start-up recovery leaves it */
            if (s->defer_resume) {
                sv_restore_job *dr = realloc(s->deferred, (s->ndeferred + 1) * sizeof *dr);
                sv_job **dj = dr ? realloc(s->deferred_jobs, (s->ndeferred + 1) * sizeof *dj) : NULL;
                if (dr)
                    s->deferred = dr;
                if (dj) {
                    s->deferred_jobs = dj;
                    s->deferred[s->ndeferred] = jobs[i];
                    s->deferred_jobs[s->ndeferred++] = sj;
                    continue;
                }
            }
            sv_err e2 = {0};
            if (start_job(s, &jobs[i], sj, &e2))
                sv_error("cannot resume restore job", "job=%s error=\"%s\"", jobs[i].id, e2.msg);
        }
        free(jobs);
    }
}

void sv_snapshot_resume(sv_snapshot *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ndeferred; i++) {
        sv_err e2 = {0};
        if (start_job(s, &s->deferred[i], s->deferred_jobs[i], &e2))
            sv_error("cannot resume restore job", "job=%s error=\"%s\"", s->deferred[i].id, e2.msg);
    }
    free(s->deferred);
    free(s->deferred_jobs);
    s->deferred = NULL;
    s->deferred_jobs = NULL;
    s->ndeferred = 0;
}
