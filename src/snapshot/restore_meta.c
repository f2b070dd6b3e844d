/* Restore jobs and tasks: catalog-persisted, with an in-memory view indexed
 * by id, tasks by job, and jobs by collection (source and target). Every
 * change is written to the catalog first; memory changes only after the
 * catalog accepted it, so a crash never leaves memory ahead of the catalog
 * and a restart rebuilds exactly what was acknowledged. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot_internal.h"

static const char *const job_states[] = {"PENDING", "EXECUTING", "COMPLETED", "FAILED"};

const char *sv_restore_state_name(int state) { return state >= 0 && state <= 3 ? job_states[state] : "UNKNOWN"; }
bool sv_restore_state_final(int state) { return state == SV_RESTORE_COMPLETED || state == SV_RESTORE_FAILED; }

static int state_parse(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, job_states[i]))
            return i;
    return -1;
}

/* ---- the manager ----------------------------------------------------------- */

struct sv_restore_meta {
    pthread_mutex_t mu;
    sv_catalog *cat;
    sv_strmap jobs;      /* id -> job (primary) */
    sv_strmap tasks;     /* "<job>/<shard>" -> task (primary) */
    sv_strmap job_index; /* job id -> its tasks */
    sv_strmap coll_index;/* collection -> jobs reading it or writing it */
};

static void job_key(const char *id, char *key, size_t n) { snprintf(key, n, "restore-jobs/%s", id); }
static void task_key(const char *job, const char *shard, char *key, size_t n)
{
    snprintf(key, n, "restore-tasks/%s/%s", job, shard);
}

static char *job_json(const sv_restore_job *j)
{
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:i}", "format_version", 1, "jobId", j->id,
                          "collection", j->collection, "snapshot", j->snapshot, "target", j->target, "state",
                          sv_restore_state_name(j->state), "reason", j->reason, "createdAt", (json_int_t)j->created_at,
                          "startedAt", (json_int_t)j->started_at, "finishedAt", (json_int_t)j->finished_at,
                          "bytesTotal", (json_int_t)j->bytes_total, "tasks", j->ntasks);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static char *task_json(const sv_restore_task *t)
{
    json_t *o = json_pack("{s:i,s:s,s:s,s:s,s:i,s:s,s:I,s:I,s:s}", "format_version", 1, "jobId", t->job_id, "shard",
                          t->shard, "collection", t->collection, "index", t->index, "state",
                          sv_restore_state_name(t->state), "bytesTotal", (json_int_t)t->bytes_total, "objects",
                          (json_int_t)t->objects, "reason", t->reason);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static void copy_str(char *dst, size_t n, json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    snprintf(dst, n, "%s", v ? v : "");
}

static int job_parse(const char *val, size_t len, sv_restore_job *j)
{
    json_t *o = json_loadb(val, len, 0, NULL);
    if (!o)
        return SV_ECORRUPT;
    memset(j, 0, sizeof *j);
    copy_str(j->id, sizeof j->id, o, "jobId");
    copy_str(j->collection, sizeof j->collection, o, "collection");
    copy_str(j->snapshot, sizeof j->snapshot, o, "snapshot");
    copy_str(j->target, sizeof j->target, o, "target");
    copy_str(j->reason, sizeof j->reason, o, "reason");
    j->state = state_parse(json_string_value(json_object_get(o, "state")));
    j->created_at = json_integer_value(json_object_get(o, "createdAt"));
    j->started_at = json_integer_value(json_object_get(o, "startedAt"));
    j->finished_at = json_integer_value(json_object_get(o, "finishedAt"));
    j->bytes_total = json_integer_value(json_object_get(o, "bytesTotal"));
    j->ntasks = (int)json_integer_value(json_object_get(o, "tasks"));
    json_decref(o);
    return j->id[0] && j->state >= 0 ? 0 : SV_ECORRUPT;
}

static int task_parse(const char *val, size_t len, sv_restore_task *t)
{
    json_t *o = json_loadb(val, len, 0, NULL);
    if (!o)
        return SV_ECORRUPT;
    memset(t, 0, sizeof *t);
    copy_str(t->job_id, sizeof t->job_id, o, "jobId");
    copy_str(t->shard, sizeof t->shard, o, "shard");
    copy_str(t->collection, sizeof t->collection, o, "collection");
    copy_str(t->reason, sizeof t->reason, o, "reason");
    t->index = (int)json_integer_value(json_object_get(o, "index"));
    t->state = state_parse(json_string_value(json_object_get(o, "state")));
    t->bytes_total = json_integer_value(json_object_get(o, "bytesTotal"));
    t->objects = json_integer_value(json_object_get(o, "objects"));
    json_decref(o);
    return t->job_id[0] && t->shard[0] && t->state >= 0 ? 0 : SV_ECORRUPT;
}

/* Memory-only insertions; the caller holds mu and has persisted already. */
static int mem_add_job(sv_restore_meta *m, sv_restore_job *j)
{
    if (sv_strmap_add(&m->jobs, j->id, j) || sv_strmap_add(&m->coll_index, j->collection, j) ||
        sv_strmap_add(&m->coll_index, j->target, j))
        return SV_ENOMEM;
    return 0;
}

static int mem_add_task(sv_restore_meta *m, sv_restore_task *t)
{
    char k[200];
    snprintf(k, sizeof k, "%s/%s", t->job_id, t->shard);
    if (sv_strmap_add(&m->tasks, k, t) || sv_strmap_add(&m->job_index, t->job_id, t))
        return SV_ENOMEM;
    return 0;
}

static sv_restore_job *mem_job(sv_restore_meta *m, const char *id)
{
    sv_strmap_entry *e = sv_strmap_find(&m->jobs, id);
    return e && e->n ? e->v[0] : NULL;
}

static sv_restore_task *mem_task(sv_restore_meta *m, const char *job, const char *shard)
{
    char k[200];
    snprintf(k, sizeof k, "%s/%s", job, shard);
    sv_strmap_entry *e = sv_strmap_find(&m->tasks, k);
    return e && e->n ? e->v[0] : NULL;
}

typedef struct load_ctx {
    sv_restore_meta *m;
    int rc;
} load_ctx;

static int load_job(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    load_ctx *lc = ud;
    sv_restore_job *j = malloc(sizeof *j);
    if (!j)
        return SV_ENOMEM;
    if (job_parse(val, len, j)) {
        /* A damaged record must not stop the server: report and skip it. */
        sv_warn("skipping unreadable restore job record", "key=%s", key);
        free(j);
        return 0;
    }
    if (mem_add_job(lc->m, j)) {
        free(j);
        return SV_ENOMEM;
    }
    return 0;
}

static int load_task(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    load_ctx *lc = ud;
    sv_restore_task *t = malloc(sizeof *t);
    if (!t)
        return SV_ENOMEM;
    if (task_parse(val, len, t) || !mem_job(lc->m, t->job_id)) {
        sv_warn("skipping unreadable or orphaned restore task record", "key=%s", key);
        free(t);
        return 0;
    }
    if (mem_add_task(lc->m, t)) {
        free(t);
        return SV_ENOMEM;
    }
    return 0;
}

int sv_restore_meta_open(sv_catalog *cat, sv_restore_meta **out, sv_err *err)
{
    sv_restore_meta *m = calloc(1, sizeof *m);
    if (!m)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    m->cat = cat;
    load_ctx lc = {m, 0};
    int rc = sv_catalog_scan(cat, "restore-jobs/", load_job, &lc, err);
    if (rc == 0)
        rc = sv_catalog_scan(cat, "restore-tasks/", load_task, &lc, err);
    if (rc) {
        if (rc == SV_ENOMEM)
            sv_fail(err, rc, "out of memory loading restore jobs");
        sv_restore_meta_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static void free_values(sv_strmap *m)
{
    for (size_t i = 0; i < m->nb; i++)
        for (sv_strmap_entry *e = m->b[i]; e; e = e->next)
            for (size_t k = 0; k < e->n; k++)
                free(e->v[k]);
}

void sv_restore_meta_free(sv_restore_meta *m)
{
    if (!m)
        return;
    free_values(&m->jobs);
    free_values(&m->tasks);
    sv_strmap_free(&m->jobs);
    sv_strmap_free(&m->tasks);
    sv_strmap_free(&m->job_index);
    sv_strmap_free(&m->coll_index);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int sv_restore_meta_add_job(sv_restore_meta *m, const sv_restore_job *job, const sv_restore_task *tasks, size_t n,
                            sv_err *err)
{
    sv_catalog_op *ops = calloc(n + 1, sizeof *ops);
    char **vals = calloc(n + 1, sizeof *vals);
    char (*keys)[300] = calloc(n + 1, sizeof *keys);
    int rc = 0;
    if (!ops || !vals || !keys) {
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
        goto done;
    }
    job_key(job->id, keys[0], sizeof keys[0]);
    vals[0] = job_json(job);
    for (size_t i = 0; i < n; i++) {
        task_key(job->id, tasks[i].shard, keys[i + 1], sizeof keys[i + 1]);
        vals[i + 1] = task_json(&tasks[i]);
    }
    for (size_t i = 0; i <= n; i++) {
        if (!vals[i]) {
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
            goto done;
        }
        ops[i] = (sv_catalog_op){keys[i], vals[i], strlen(vals[i]), 0};
    }
    sv_catalog_cond cond = {keys[0], 0};
    pthread_mutex_lock(&m->mu);
    rc = sv_catalog_txn(m->cat, &cond, 1, ops, n + 1, err);
    if (rc == SV_ECONFLICT)
        rc = sv_fail(err, SV_EEXIST, "restore job %s already exists", job->id);
    if (rc == 0) {
        sv_restore_job *j = malloc(sizeof *j);
        if (!j || (*j = *job, mem_add_job(m, j))) {
            free(j);
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
        }
        for (size_t i = 0; rc == 0 && i < n; i++) {
            sv_restore_task *t = malloc(sizeof *t);
            if (!t || (*t = tasks[i], mem_add_task(m, t))) {
                free(t);
                rc = sv_fail(err, SV_ENOMEM, "out of memory");
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
done:
    for (size_t i = 0; vals && i <= n; i++)
        free(vals[i]);
    free(vals);
    free(keys);
    free(ops);
    return rc;
}

int sv_restore_meta_update_job(sv_restore_meta *m, const sv_restore_job *job, sv_err *err)
{
    char key[300];
    job_key(job->id, key, sizeof key);
    char *val = job_json(job);
    if (!val)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    pthread_mutex_lock(&m->mu);
    sv_restore_job *cur = mem_job(m, job->id);
    int rc = cur ? sv_catalog_put(m->cat, key, val, strlen(val), 0, err)
                 : sv_fail(err, SV_ENOTFOUND, "restore job %s not found", job->id);
    if (rc == 0) {
        /* Source and target never change, so the collection index holds. */
        *cur = *job;
    }
    pthread_mutex_unlock(&m->mu);
    free(val);
    return rc;
}

int sv_restore_meta_update_task(sv_restore_meta *m, const sv_restore_task *task, sv_err *err)
{
    char key[300];
    task_key(task->job_id, task->shard, key, sizeof key);
    char *val = task_json(task);
    if (!val)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    pthread_mutex_lock(&m->mu);
    sv_restore_task *cur = mem_task(m, task->job_id, task->shard);
    int rc = cur ? sv_catalog_put(m->cat, key, val, strlen(val), 0, err)
                 : sv_fail(err, SV_ENOTFOUND, "restore task %s/%s not found", task->job_id, task->shard);
    if (rc == 0)
        *cur = *task;
    pthread_mutex_unlock(&m->mu);
    free(val);
    return rc;
}

int sv_restore_meta_get_job(sv_restore_meta *m, const char *id, sv_restore_job *out)
{
    pthread_mutex_lock(&m->mu);
    sv_restore_job *j = mem_job(m, id);
    if (j)
        *out = *j;
    pthread_mutex_unlock(&m->mu);
    return j ? 0 : SV_ENOTFOUND;
}

static int cmp_job(const void *a, const void *b)
{
    const sv_restore_job *x = a, *y = b;
    if (x->created_at != y->created_at)
        return x->created_at < y->created_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp_task(const void *a, const void *b)
{
    const sv_restore_task *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

int sv_restore_meta_list_jobs(sv_restore_meta *m, sv_restore_job **out, size_t *n)
{
    pthread_mutex_lock(&m->mu);
    size_t k = 0;
    sv_restore_job *arr = malloc((m->jobs.count + 1) * sizeof *arr);
    for (size_t i = 0; arr && i < m->jobs.nb; i++)
        for (sv_strmap_entry *e = m->jobs.b[i]; e; e = e->next)
            arr[k++] = *(sv_restore_job *)e->v[0];
    pthread_mutex_unlock(&m->mu);
    if (!arr)
        return SV_ENOMEM;
    qsort(arr, k, sizeof *arr, cmp_job);
    *out = arr;
    *n = k;
    return 0;
}

int sv_restore_meta_tasks_of_job(sv_restore_meta *m, const char *id, sv_restore_task **out, size_t *n)
{
    pthread_mutex_lock(&m->mu);
    sv_strmap_entry *e = sv_strmap_find(&m->job_index, id);
    size_t k = e ? e->n : 0;
    sv_restore_task *arr = malloc((k + 1) * sizeof *arr);
    for (size_t i = 0; arr && i < k; i++)
        arr[i] = *(sv_restore_task *)e->v[i];
    pthread_mutex_unlock(&m->mu);
    if (!arr)
        return SV_ENOMEM;
    qsort(arr, k, sizeof *arr, cmp_task);
    *out = arr;
    *n = k;
    return 0;
}

int sv_restore_meta_jobs_of_collection(sv_restore_meta *m, const char *collection, sv_restore_job **out, size_t *n)
{
    pthread_mutex_lock(&m->mu);
    sv_strmap_entry *e = sv_strmap_find(&m->coll_index, collection);
    size_t k = e ? e->n : 0;
    sv_restore_job *arr = malloc((k + 1) * sizeof *arr);
    for (size_t i = 0; arr && i < k; i++)
        arr[i] = *(sv_restore_job *)e->v[i];
    pthread_mutex_unlock(&m->mu);
    if (!arr)
        return SV_ENOMEM;
    qsort(arr, k, sizeof *arr, cmp_job);
    *out = arr;
    *n = k;
    return 0;
}

int sv_restore_meta_remove_job(sv_restore_meta *m, const char *id, sv_err *err)
{
    pthread_mutex_lock(&m->mu);
    sv_restore_job *j = mem_job(m, id);
    if (!j) {
        pthread_mutex_unlock(&m->mu);
        return sv_fail(err, SV_ENOTFOUND, "restore job %s not found", id);
    }
    sv_strmap_entry *e = sv_strmap_find(&m->job_index, id);
    size_t n = e ? e->n : 0;
    sv_catalog_op *ops = calloc(n + 1, sizeof *ops);
    char (*keys)[300] = calloc(n + 1, sizeof *keys);
    int rc = 0;
    if (!ops || !keys) {
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
    } else {
        job_key(id, keys[0], sizeof keys[0]);
        ops[0] = (sv_catalog_op){keys[0], NULL, 0, 0};
        for (size_t i = 0; i < n; i++) {
            sv_restore_task *t = e->v[i];
            task_key(t->job_id, t->shard, keys[i + 1], sizeof keys[i + 1]);
            ops[i + 1] = (sv_catalog_op){keys[i + 1], NULL, 0, 0};
        }
        rc = sv_catalog_txn(m->cat, NULL, 0, ops, n + 1, err);
    }
    if (rc == 0) {
        while (e && e->n) {
            /* sv_strmap_remove frees the entry with its last element, so re-find. */
            sv_restore_task *t = e->v[0];
            char k[200];
            snprintf(k, sizeof k, "%s/%s", t->job_id, t->shard);
            sv_strmap_remove(&m->tasks, k, t);
            sv_strmap_remove(&m->job_index, id, t);
            free(t);
            e = sv_strmap_find(&m->job_index, id);
        }
        sv_strmap_remove(&m->coll_index, j->collection, j);
        sv_strmap_remove(&m->coll_index, j->target, j);
        sv_strmap_remove(&m->jobs, id, j);
        free(j);
    }
    pthread_mutex_unlock(&m->mu);
    free(ops);
    free(keys);
    return rc;
}
