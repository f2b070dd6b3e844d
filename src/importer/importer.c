/* importer — the service: requests, persisted records, the run thread of
 * each import, resume after restart, cancel. */
#include "importer_internal.h"

#include <fnmatch.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"
#include "jobs.h"
#include "location.h"

#define IMP_MAX_ERRORS 100
/* A row group is written in parts of about this many bytes of encoded
 * objects (one table file per shard each): what is held in memory is one
 * part being written and one being filled, whatever the row group's size. */
#define IMP_PART_BYTES (16u << 20)
/* The next row group is read while the current one is imported when it
 * decodes to at most this (parquet.h prefetch_bytes): two row groups in
 * memory only when both are small, so the import stays within its memory
 * bound (docs/import.md "Reading") whatever the file's row groups. */
#define IMP_PREFETCH_BYTES (64ll << 20)
#define IMP_MAX_FILES 100000

enum { ON_FAIL, ON_SKIP, ON_REPLACE };
static const char *const conflict_names[] = {"fail", "skip", "replace"};

typedef struct imp_file {
    char key[1100];
    int64_t rows, rows_imported, rows_read, size;
    int rg_done;        /* row groups committed */
    bool in_flight;     /* resumed: it was TRANSFERRING, so rows past rg_done may be written */
    char status[16];    /* PENDING TRANSFERRING SUCCESS FAILED CANCELED */
    char *error;
    char collection[129];
    char tenant[72];
} imp_file;

typedef struct imp_run {
    sv_importer *imp;
    char id[129], backend[16];
    json_t *request;
    int on_conflict;
    imp_file *files;
    size_t nfiles;
    int64_t imported, skipped, failed, bytes; /* under mu */
    int64_t rows_sum, rows_read_sum, size_sum; /* the files' rows, rows_read and size, summed (under mu) */
    json_t *errors;
    char status[16];
    char *error;
    int64_t started_ms, completed_ms;
    char job_id[64];
    sv_job *job;
    pthread_t thread;
    bool thread_started, done;
    atomic_bool cancel, shutdown;
    bool resumed; /* the in-flight row group of each file is imported again */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct imp_run *next;
} imp_run;

struct sv_importer {
    sv_importer_opts o;
    char node[128];
    pthread_mutex_t mu;
    imp_run *runs;
    bool shutting;
    atomic_llong m_rows, m_failed, m_started;
};

static int backend_ok(const char *b, sv_err *err)
{
    if (b && (!strcmp(b, "filesystem") || !strcmp(b, "s3")))
        return 0;
    return sv_fail(err, SV_EINVAL, "unknown backend '%.40s': filesystem or s3", b ? b : "");
}

static void record_key(char *out, size_t n, const char *backend, const char *id)
{
    snprintf(out, n, "imports/%s/%s", backend, id);
}

static void iso(int64_t ms, char out[40])
{
    if (ms <= 0) {
        out[0] = 0;
        return;
    }
    sv_format_time_ms(ms, out, 40);
}

/* ---- records -------------------------------------------------------------------- */

/* The full record (internal = true) or the API's status shape. Caller holds run->mu. */
static json_t *run_json(const imp_run *r, bool internal)
{
    json_t *files = json_array();
    for (size_t i = 0; i < r->nfiles; i++) {
        const imp_file *f = &r->files[i];
        json_t *fj = json_pack("{s:s,s:I,s:I,s:s,s:s?}", "name", f->key, "rows", (json_int_t)f->rows, "rowsImported",
                               (json_int_t)f->rows_imported, "status", f->status, "error", f->error);
        if (fj && f->collection[0])
            json_object_set_new(fj, "collection", json_string(f->collection));
        if (fj && f->tenant[0])
            json_object_set_new(fj, "tenant", json_string(f->tenant));
        if (fj && internal) {
            json_object_set_new(fj, "rowGroupsDone", json_integer(f->rg_done));
            json_object_set_new(fj, "rowsRead", json_integer(f->rows_read));
            json_object_set_new(fj, "size", json_integer(f->size));
        }
        json_array_append_new(files, fj);
    }
    char s[40], c[40];
    iso(r->started_ms, s);
    iso(r->completed_ms, c);
    int64_t took = r->completed_ms > 0 ? r->completed_ms - r->started_ms : 0;
    json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:O,s:s,s:s?,s:I,s:s?}", "id", r->id, "backend", r->backend,
                          "status", r->status, "files", files, "objectsImported", (json_int_t)r->imported,
                          "objectsSkipped", (json_int_t)r->skipped, "objectsFailed", (json_int_t)r->failed, "errors",
                          r->errors, "startedAt", s, "completedAt", c[0] ? c : NULL, "tookInMs", (json_int_t)took,
                          "error", r->error);
    if (!j)
        return NULL;
    json_object_set_new(j, "bytesRead", json_integer(r->bytes));
    json_t *req = r->request;
    json_t *src = json_object_get(req, "source");
    if (src)
        json_object_set(j, "source", src);
    if (json_is_string(json_object_get(req, "collection")))
        json_object_set(j, "collection", json_object_get(req, "collection"));
    json_object_set_new(j, "onConflict", json_string(conflict_names[r->on_conflict]));
    json_object_set_new(j, "node", json_string(r->imp->node)); /* the node that runs it */
    if (internal) {
        json_object_set_new(j, "format_version", json_integer(1));
        json_object_set(j, "request", r->request);
        json_object_set_new(j, "jobId", json_string(r->job_id));
        json_object_set_new(j, "startedAtMs", json_integer(r->started_ms));
        json_object_set_new(j, "completedAtMs", json_integer(r->completed_ms));
        json_object_set_new(j, "objectsBytes", json_integer(r->bytes));
    }
    return j;
}

/* Writes the record; create: only if no record of that id exists (a shared
 * catalog: two nodes taking one id at once, one wins). */
static int persist_ex(imp_run *r, bool create, sv_err *err)
{
    pthread_mutex_lock(&r->mu);
    json_t *j = run_json(r, true);
    pthread_mutex_unlock(&r->mu);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    char key[200];
    record_key(key, sizeof key, r->backend, r->id);
    int rc;
    if (create) {
        sv_catalog_cond c = {key, 0};
        sv_catalog_op op = {key, s, strlen(s), 0};
        rc = sv_catalog_txn(r->imp->o.catalog, &c, 1, &op, 1, err);
        if (rc == SV_ECONFLICT)
            rc = sv_fail(err, SV_EEXIST, "import '%s' already exists on backend %s (taken at the same moment by "
                         "another request)", r->id, r->backend);
    } else {
        rc = sv_catalog_put(r->imp->o.catalog, key, s, strlen(s), 0, err);
    }
    free(s);
    return rc;
}

static int persist(imp_run *r, sv_err *err) { return persist_ex(r, false, err); }

/* Public view of a stored record. */
static json_t *public_view(json_t *rec)
{
    json_t *j = json_deep_copy(rec);
    if (!j)
        return NULL;
    const char *drop[] = {"format_version", "request", "jobId", "startedAtMs", "completedAtMs", "objectsBytes"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
        json_object_del(j, drop[i]);
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(j, "files"), i, f)
    {
        json_object_del(f, "rowGroupsDone");
        json_object_del(f, "rowsRead");
    }
    return j;
}

static void run_free(imp_run *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nfiles; i++)
        free(r->files[i].error);
    free(r->files);
    json_decref(r->request);
    json_decref(r->errors);
    free(r->error);
    sv_job_release(r->job);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static imp_run *run_new(sv_importer *imp, const char *backend, const char *id)
{
    imp_run *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->imp = imp;
    snprintf(r->id, sizeof r->id, "%s", id);
    snprintf(r->backend, sizeof r->backend, "%s", backend);
    r->errors = json_array();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    snprintf(r->status, sizeof r->status, "STARTED");
    return r;
}

static void add_error(imp_run *r, const char *file, int64_t row, const char *id, const char *msg)
{
    pthread_mutex_lock(&r->mu);
    r->failed++;
    if (json_array_size(r->errors) < IMP_MAX_ERRORS) {
        json_t *e = json_pack("{s:s,s:I,s:s?,s:s}", "file", file, "row", (json_int_t)row, "id", id, "message", msg);
        if (e)
            json_array_append_new(r->errors, e);
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- reading through a location --------------------------------------------------- */

typedef struct loc_src {
    sv_location *loc;
    const char *key;
    imp_run *run;
} loc_src;

static int loc_read_at(void *ud, uint64_t off, void *buf, size_t len, sv_err *err)
{
    loc_src *s = ud;
    int rc = sv_location_read(s->loc, s->key, (int64_t)off, buf, len, err);
    if (rc == 0 && len && s->run) {
        pthread_mutex_lock(&s->run->mu);
        s->run->bytes += (int64_t)len;
        pthread_mutex_unlock(&s->run->mu);
    }
    return rc;
}

/* The job's figures from the run's (under r->mu): items are rows read,
 * counted from the committed row groups on after a restart (so a resumed
 * import ends with items = rows), their total the rows of the files whose
 * footers were read so far; bytes the files' sizes. */
static void job_progress(imp_run *r)
{
    if (!r->job)
        return;
    sv_job_set_totals(r->job, r->rows_sum, r->size_sum);
    /* bytes read count a resumed row group twice (before and after the
     * restart): the job's share of the files never passes their size */
    sv_job_set_done(r->job, r->rows_read_sum, r->size_sum > 0 && r->bytes > r->size_sum ? r->size_sum : r->bytes);
}

/* Sets a file's rows and rows read, keeping the run's sums (under r->mu,
 * or before the run is shared). */
static void file_rows(imp_run *r, imp_file *f, int64_t rows, int64_t rows_read)
{
    r->rows_sum += rows - f->rows;
    r->rows_read_sum += rows_read - f->rows_read;
    f->rows = rows;
    f->rows_read = rows_read;
}

static int open_reader(sv_importer *imp, sv_location *loc, const char *key, loc_src *src, sv_pq_reader **out,
                       sv_err *err)
{
    sv_location_info info;
    int rc = sv_location_head(loc, key, &info, err);
    if (rc)
        return rc;
    src->loc = loc;
    src->key = key;
    sv_pq_source ps = {loc_read_at, src, (uint64_t)info.size, key};
    sv_pq_read_options ro = {.max_row_group_bytes = imp->o.max_row_group_bytes, .prefetch_bytes = IMP_PREFETCH_BYTES,
                             .decode_threads = 2};
    return sv_pq_reader_open(&ps, &ro, out, err);
}

/* ---- the run ------------------------------------------------------------------------ */

typedef struct pending {
    int64_t row;
    sv_uuid id;
} pending;

typedef struct end_ctx {
    imp_run *r;
    imp_file *f;
    const pending *pend;
    size_t npend;
} end_ctx;

/* A failed object of a part. onConflict fail and skip are decided by the
 * write itself (sv_batch_conflict KEEP: the shard's own lookup, under its
 * write lock), which answers SV_BATCH_EXISTS for an id already held. */
static void end_result(void *ud, size_t idx, const char *id, const char *error)
{
    end_ctx *c = ud;
    (void)id;
    if (idx < c->npend) {
        char ids[37];
        sv_uuid_format(&c->pend[idx].id, ids);
        if (error == SV_BATCH_EXISTS) {
            if (c->r->on_conflict == ON_SKIP) {
                pthread_mutex_lock(&c->r->mu);
                c->r->skipped++;
                pthread_mutex_unlock(&c->r->mu);
            } else {
                add_error(c->r, c->f->key, c->pend[idx].row, ids,
                          "an object with this id already exists (onConflict: fail)");
            }
            return;
        }
        add_error(c->r, c->f->key, c->pend[idx].row, ids, error ? error : "not written");
    }
}

/* Ends one batch (one row group's objects) and counts its results. */
static int end_batch(imp_run *r, imp_file *f, sv_batch *b, pending *pend, size_t npend, sv_err *err)
{
    end_ctx c = {r, f, pend, npend};
    size_t okn = 0;
    int rc = sv_batch_end_results(b, end_result, &c, &okn, err);
    if (rc)
        return rc;
    int64_t ok = (int64_t)okn;
    pthread_mutex_lock(&r->mu);
    r->imported += ok;
    f->rows_imported += ok;
    pthread_mutex_unlock(&r->mu);
    atomic_fetch_add(&r->imp->m_rows, ok);
    return 0;
}

/* One worker's share of a row group: its own store batch. */
typedef struct imp_worker {
    sv_batch *b;
    pending *pend;
    size_t npend, cap;
    sv_buf line;
    imp_trow *trow; /* the typed path's record, NULL without it */
} imp_worker;

/* One step: rows [0, n) of the reader's batch, split across the workers. */
typedef struct imp_step {
    imp_run *r;
    imp_file *f;
    const imp_plan *plan;
    const imp_typed *typed; /* NULL: every row takes the text path */
    const char *tenant;
    imp_worker *ws;
    int nw;
    const sv_pq_value *rows;
    size_t n;
    int64_t base;
} imp_step;

static int step_slice(void *arg, size_t w, sv_err *err)
{
    imp_step *st = arg;
    imp_run *r = st->r;
    imp_worker *wk = &st->ws[w];
    size_t from = st->n * w / (size_t)st->nw, to = st->n * (w + 1) / (size_t)st->nw;
    for (size_t i = from; i < to; i++) {
        int64_t rownum = st->base + (int64_t)i;
        char why[400], id[37];
        sv_uuid idu;
        sv_record *rec = NULL;
        int tr = 1;
        if (st->typed && wk->trow) {
            tr = imp_row_record(st->typed, wk->trow, &st->rows[i], rownum, &rec, why, sizeof why);
            if (tr < 0) {
                add_error(r, st->f->key, rownum, NULL, why);
                continue;
            }
        }
        if (tr == 1) {
            sv_buf_reset(&wk->line);
            if (imp_row_text(st->plan, &st->rows[i], rownum, st->f->collection, st->tenant, &wk->line, id, why,
                             sizeof why)) {
                add_error(r, st->f->key, rownum, NULL, why);
                continue;
            }
            sv_uuid_parse(id, strlen(id), &idu); /* the text path's id is a formatted uuid */
        } else {
            idu = rec->id;
        }
        if (sv_grow(&wk->pend, &wk->cap, wk->npend + 1, sizeof *wk->pend))
            return sv_fail(err, SV_ENOMEM, "out of memory");
        wk->pend[wk->npend].row = rownum;
        wk->pend[wk->npend].id = idu;
        wk->npend++;
        if (tr == 0 ? sv_batch_add_record(wk->b, st->f->collection, st->tenant, imp_typed_schema(st->typed), rec)
                    : sv_batch_add(wk->b, (const char *)wk->line.data, wk->line.len))
            return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    return 0;
}

static int end_batch(imp_run *r, imp_file *f, sv_batch *b, pending *pend, size_t npend, sv_err *err);

/* Ends every worker's batch (the row group's objects are then durable). */
static int end_batches(imp_run *r, imp_file *f, imp_worker *ws, int nw, sv_err *err)
{
    int rc = 0;
    for (int w = 0; w < nw; w++) {
        int r2 = end_batch(r, f, ws[w].b, ws[w].pend, ws[w].npend, err);
        ws[w].b = NULL;
        ws[w].npend = 0;
        if (r2 && !rc)
            rc = r2;
    }
    return rc;
}

/* ---- the writer: parts written in order on one thread ----------------------
 * A row group is written in parts (IMP_PART_BYTES of encoded objects); the
 * writer thread of a file writes them one after the other, in the order
 * queued, while the import thread reads and converts the next ones. Up to
 * RG_DEPTH parts wait or are being written: a part's write has a tail that
 * uses little CPU (fsync, the ingest's MANIFEST sync), and a queue one part
 * deep left a core idle through it while the converted part waited.
 * Invariants: q[head .. head+n) are the parts not yet collected, the first
 * `written` of them written (their rc and err set); only the import thread
 * pushes and collects, only the writer writes; after a failed write the
 * writer aborts the parts behind it (nothing is written past a failure).
 * A row group is committed (rg_done, the record persisted) by the writer
 * right after its last part is written, before the next part is: so what
 * is written beyond the committed point always lies in the first row group
 * not committed, which a restart imports again with replace (onConflict
 * fail and skip would otherwise report rows this import wrote itself). */
#define RG_DEPTH 2

typedef struct rg_part {
    sv_batch *b;
    pending *pend;
    size_t npend;
    int rg;
    bool completes; /* the last part of row group rg: once written, rg is committed */
    int rc;
    sv_err err;
} rg_part;

typedef struct rg_writer {
    imp_run *r;
    imp_file *f;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rg_part q[RG_DEPTH];
    size_t head, n, written;
    bool failed, stop, thread; /* thread: the writer thread runs (else parts are written when pushed) */
    pthread_t th;
} rg_writer;

/* Writes part p and, when it completes its row group, commits that. */
static void part_write(rg_writer *w, rg_part *p)
{
    static atomic_int parts_written;
    p->rc = end_batch(w->r, w->f, p->b, p->pend, p->npend, &p->err);
    p->b = NULL;
    if (p->rc == 0 && atomic_fetch_add(&parts_written, 1) == 1)
        sv_crash_point("import:second-part-written"); /* tests: a kill -9 with a part written, its row group not committed */
    if (p->rc == 0 && p->completes) {
        pthread_mutex_lock(&w->r->mu);
        w->f->rg_done = p->rg + 1;
        pthread_mutex_unlock(&w->r->mu);
        p->rc = persist(w->r, &p->err);
    }
}

static void *rg_writer_main(void *arg)
{
    rg_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->written == w->n)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->written == w->n)
            break; /* stop, nothing left */
        rg_part *p = &w->q[(w->head + w->written) % RG_DEPTH];
        bool skip = w->failed;
        pthread_mutex_unlock(&w->mu);
        if (skip) {
            sv_batch_abort(p->b);
            p->b = NULL;
            p->rc = sv_fail(&p->err, SV_ECANCELED, "not written: an earlier part failed");
        } else {
            part_write(w, p);
        }
        pthread_mutex_lock(&w->mu);
        if (p->rc)
            w->failed = true;
        w->written++;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void rg_writer_init(rg_writer *w, imp_run *r, imp_file *f)
{
    *w = (rg_writer){.r = r, .f = f};
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->thread = pthread_create(&w->th, NULL, rg_writer_main, w) == 0;
}

/* Collects the written parts at the head, in order: the first error (its
 * part's; later parts were not written). Waits until at most `keep` parts
 * are left uncollected. */
static int rg_collect(rg_writer *w, size_t keep, sv_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->n > keep && w->written == 0)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->written == 0)
            break;
        rg_part p = w->q[w->head];
        w->head = (w->head + 1) % RG_DEPTH;
        w->n--;
        w->written--;
        pthread_mutex_unlock(&w->mu);
        free(p.pend);
        int r2 = p.rc;
        if (r2 && !rc) {
            rc = r2;
            *err = p.err;
        }
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

/* Every part queued written and collected. */
static int rg_drain(rg_writer *w, sv_err *err) { return rg_collect(w, 0, err); }

/* Ends the writer (after rg_drain: nothing is left to write). */
static void rg_writer_free(rg_writer *w)
{
    if (w->thread) {
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

/* Merges the workers' batches (a part of row group rg, its last when
 * completes) into one (one table file per shard) and queues it, once fewer
 * than RG_DEPTH parts are ahead of it. */
static int rg_write_start(rg_writer *w, imp_run *r, imp_file *f, imp_worker *ws, int nw, int rg, bool completes,
                          sv_err *err)
{
    int rc = 0;
    for (int k = 1; k < nw; k++) {
        if (rc) {
            sv_batch_abort(ws[k].b);
        } else if (sv_grow(&ws[0].pend, &ws[0].cap, ws[0].npend + ws[k].npend, sizeof *ws[0].pend)) {
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
            sv_batch_abort(ws[k].b);
        } else {
            if (ws[k].npend)
                memcpy(ws[0].pend + ws[0].npend, ws[k].pend, ws[k].npend * sizeof *ws[k].pend);
            ws[0].npend += ws[k].npend;
            rc = sv_batch_absorb(ws[0].b, ws[k].b, err);
        }
        ws[k].b = NULL;
        ws[k].npend = 0;
    }
    int r2 = rg_collect(w, RG_DEPTH - 1, err);
    if (rc || r2) {
        sv_batch_abort(ws[0].b);
        ws[0].b = NULL;
        ws[0].npend = 0;
        return rc ? rc : r2;
    }
    rg_part p = {.b = ws[0].b, .pend = ws[0].pend, .npend = ws[0].npend, .rg = rg, .completes = completes};
    ws[0].b = NULL;
    ws[0].pend = NULL;
    ws[0].npend = ws[0].cap = 0;
    if (!w->thread) {
        /* no writer thread could start: written here */
        part_write(w, &p);
    }
    pthread_mutex_lock(&w->mu);
    w->q[(w->head + w->n) % RG_DEPTH] = p;
    w->n++;
    if (!w->thread)
        w->written++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return w->thread ? 0 : rg_collect(w, 0, err);
}

static void set_file_status(imp_run *r, imp_file *f, const char *st, const char *error)
{
    pthread_mutex_lock(&r->mu);
    snprintf(f->status, sizeof f->status, "%s", st);
    free(f->error);
    f->error = error ? strdup(error) : NULL;
    pthread_mutex_unlock(&r->mu);
}

static bool stopping(imp_run *r) { return atomic_load(&r->cancel) || atomic_load(&r->shutdown); }

/* Imports one file from its first uncommitted row group. Returns 0 when the
 * file ended (SUCCESS or FAILED, recorded in f), SV_ECANCELED when stopped. */
static int import_file(imp_run *r, sv_location *loc, imp_file *f, json_t *mapping)
{
    sv_importer *imp = r->imp;
    sv_err err = {0};
    loc_src src = {.run = r};
    sv_pq_reader *rd = NULL;
    imp_plan *plan = NULL;
    int rc = open_reader(imp, loc, f->key, &src, &rd, &err);
    if (rc == 0)
        rc = imp_plan_new(sv_pq_reader_root(rd), mapping, f->key, &plan, &err);
    if (rc == 0 && f->rg_done > 0)
        rc = sv_pq_reader_seek_row_group(rd, f->rg_done > sv_pq_reader_num_row_groups(rd)
                                                 ? sv_pq_reader_num_row_groups(rd) : f->rg_done, &err);
    if (rc == 0) {
        /* rows read restart at the committed row groups (a resume reads
         * the rest again) */
        int64_t done = 0;
        for (int g = 0; g < f->rg_done && g < sv_pq_reader_num_row_groups(rd); g++)
            done += sv_pq_reader_row_group_rows(rd, g);
        pthread_mutex_lock(&r->mu);
        file_rows(r, f, sv_pq_reader_num_rows(rd), done);
        job_progress(r);
        pthread_mutex_unlock(&r->mu);
    }
    /* Target of the rows: the request's tenant, else the file's own. */
    const char *tenant = json_string_value(json_object_get(r->request, "tenant"));
    if (!tenant || !tenant[0])
        tenant = f->tenant[0] ? f->tenant : NULL;
    set_file_status(r, f, rc ? "FAILED" : "TRANSFERRING", rc ? err.msg : NULL);
    /* Durable before its first write: after a restart only a file recorded
     * TRANSFERRING may hold rows past its committed row groups (and has its
     * first row group imported again with replace); a file still PENDING
     * keeps the request's onConflict from its first row. */
    if (rc == 0 && (rc = persist(r, &err)) != 0) {
        set_file_status(r, f, "FAILED", err.msg);
        sv_pq_reader_free(rd);
        imp_plan_free(plan);
        return 0;
    }
    if (rc) {
        sv_pq_reader_free(rd);
        imp_plan_free(plan);
        return 0;
    }
    int nw = (int)(imp->o.workers > 0 ? imp->o.workers : 1);
    imp_worker *ws = calloc((size_t)nw, sizeof *ws);
    if (!ws) {
        set_file_status(r, f, "FAILED", "out of memory");
        sv_pq_reader_free(rd);
        imp_plan_free(plan);
        return 0;
    }
    bool open_batches = false;
    int cur_rg = -1;
    bool first_rg = true;
    int64_t batch_rows = imp->o.batch_rows > 0 ? imp->o.batch_rows : 1000;
    /* The typed path when the plan fits the collection's schema. */
    imp_typed *typed = NULL;
    {
        sv_schema *sch = NULL;
        sv_err e2 = {0};
        if (sv_store_schema(imp->o.store, f->collection, &sch, &e2) == 0) {
            if (imp_typed_new(plan, sch, &typed, &e2))
                typed = NULL;
            sv_schema_free(sch);
        }
        for (int w = 0; typed && w < nw; w++)
            ws[w].trow = imp_trow_new(typed);
    }
    imp_step st = {.r = r, .f = f, .plan = plan, .typed = typed, .tenant = tenant, .ws = ws, .nw = nw};
    /* the workers stay for the file: a step is a few milliseconds */
    sv_crew *crew = nw > 1 ? sv_crew_new(nw) : NULL;
    rg_writer wr;
    rg_writer_init(&wr, r, f);
    double per_object = 0; /* encoded bytes per object in the last row group */
    /* fail / skip: a part's writes check ids against the parts before it.
     * In bulk mode the writer writes parts one after the other, each
     * ingested before the next is looked up; without it, batches write as
     * they fill, on the convert threads, so a part waits for those ahead. */
    bool must_drain = r->on_conflict != ON_REPLACE && imp->o.bulk_min_objects <= 0;
    for (;;) {
        if (stopping(r)) {
            rc = SV_ECANCELED;
            break;
        }
        const sv_pq_value *rows;
        size_t n;
        int rg;
        int64_t at;
        rc = sv_pq_reader_next(rd, (size_t)batch_rows * (size_t)nw, &rows, &n, &rg, &at, &err);
        if (rc)
            break;
        if (open_batches && (n == 0 || rg != cur_rg)) {
            /* the row group is complete: write its last part (while the
             * next one is read), then record it */
            rc = rg_write_start(&wr, r, f, ws, nw, cur_rg, true, &err);
            open_batches = false;
            first_rg = false;
            if (rc == 0 && must_drain)
                rc = rg_drain(&wr, &err);
            if (rc)
                break;
        }
        if (n == 0)
            break;
        if (!open_batches) {
            /* room for a part's share at the last part's object size: the
             * batch does not grow (copy, fault pages) as it fills */
            int64_t part = sv_pq_reader_row_group_rows(rd, rg);
            if (per_object > 0 && (double)part * per_object > (double)IMP_PART_BYTES)
                part = (int64_t)((double)IMP_PART_BYTES / per_object) + batch_rows * nw;
            size_t share = (size_t)(part / nw + 1);
            for (int w = 0; w < nw; w++) {
                if (!(ws[w].b = sv_batch_begin(imp->o.store)))
                    rc = sv_fail(&err, SV_ENOMEM, "out of memory");
                else {
                    sv_batch_set_bulk(ws[w].b, imp->o.bulk_min_objects > 0 ? (size_t)imp->o.bulk_min_objects : 0);
                    /* a resumed import's first row group may be partly written: replaced */
                    sv_batch_set_conflict(ws[w].b, r->on_conflict == ON_REPLACE || (r->resumed && f->in_flight && first_rg)
                                                       ? SV_BATCH_REPLACE : SV_BATCH_KEEP);
                    /* the first batch receives the others' objects and results */
                    if (per_object > 0)
                        sv_batch_reserve(ws[w].b, w ? share : share * (size_t)nw,
                                         (size_t)(per_object * 1.05 * (double)share));
                }
            }
            open_batches = true;
            cur_rg = rg;
            if (rc)
                break;
        }
        st.base = at;
        for (int g = 0; g < rg; g++)
            st.base += sv_pq_reader_row_group_rows(rd, g);
        st.rows = rows;
        st.n = n;
        pthread_mutex_lock(&r->mu);
        file_rows(r, f, f->rows, f->rows_read + (int64_t)n);
        job_progress(r);
        pthread_mutex_unlock(&r->mu);
        rc = crew ? sv_crew_run(crew, (size_t)nw, step_slice, &st, NULL, &err) : step_slice(&st, 0, &err);
        if (rc)
            break;
        size_t bytes = 0, objs = 0;
        for (int w = 0; w < nw; w++) {
            bytes += sv_batch_bytes(ws[w].b);
            objs += ws[w].npend;
        }
        if (bytes >= IMP_PART_BYTES) {
            /* a part of the row group is written (not yet committed: that
             * waits for its last part) while the rest is read */
            per_object = (double)bytes / (double)objs;
            rc = rg_write_start(&wr, r, f, ws, nw, cur_rg, false, &err);
            open_batches = false;
            if (rc == 0 && must_drain)
                rc = rg_drain(&wr, &err);
            if (rc)
                break;
        }
    }
    {
        /* the parts queued are whole: they are written and recorded
         * whatever stopped the loop */
        sv_err e2 = {0};
        int r2 = rg_drain(&wr, &e2);
        if (r2 && rc == 0) {
            rc = r2;
            err = e2;
        }
        rg_writer_free(&wr);
    }
    bool shutdown_stop = rc == SV_ECANCELED && !atomic_load(&r->cancel);
    if (open_batches && !shutdown_stop) {
        /* canceled, or the file failed, inside a row group: what was added is
         * written and counted, so the counters say exactly what the
         * collection holds */
        sv_err e2 = {0};
        if (end_batches(r, f, ws, nw, &e2))
            sv_warn("import: the last batch before the stop failed", "id=%s error=\"%s\"", r->id, e2.msg);
    } else if (open_batches) {
        /* stopped by a shutdown inside a row group: the resume imports it again */
        for (int w = 0; w < nw; w++)
            sv_batch_abort(ws[w].b);
    }
    for (int w = 0; w < nw; w++) {
        free(ws[w].pend);
        sv_buf_free(&ws[w].line);
        imp_trow_free(ws[w].trow);
    }
    free(ws);
    sv_crew_free(crew);
    imp_typed_free(typed);
    sv_pq_reader_free(rd);
    imp_plan_free(plan);
    if (rc == SV_ECANCELED) {
        if (atomic_load(&r->cancel))
            set_file_status(r, f, "CANCELED", NULL);
        return SV_ECANCELED;
    }
    set_file_status(r, f, rc ? "FAILED" : "SUCCESS", rc ? err.msg : NULL);
    return 0;
}

/* The job ends first, then the import's own status: a client that sees
 * the import ended finds its job ended too. */
static void finish(imp_run *r, const char *status, const char *error)
{
    pthread_mutex_lock(&r->mu);
    r->completed_ms = sv_now_ms();
    json_t *res = r->job ? run_json(r, false) : NULL;
    pthread_mutex_unlock(&r->mu);
    if (r->job) {
        if (res) {
            json_object_set_new(res, "status", json_string(status));
            json_object_set_new(res, "error", error ? json_string(error) : json_null());
        }
        sv_job_state st = !strcmp(status, "SUCCESS") ? SV_JOB_SUCCEEDED
                          : !strcmp(status, "CANCELED") ? SV_JOB_CANCELED : SV_JOB_FAILED;
        sv_job_finish(r->job, st, error, res, NULL);
        json_decref(res);
    }
    pthread_mutex_lock(&r->mu);
    snprintf(r->status, sizeof r->status, "%s", status);
    free(r->error);
    r->error = error ? strdup(error) : NULL;
    pthread_mutex_unlock(&r->mu);
    sv_err e = {0};
    if (persist(r, &e))
        sv_error("import: cannot record the end", "id=%s error=\"%s\"", r->id, e.msg);
}

static void *run_main(void *arg)
{
    imp_run *r = arg;
    sv_importer *imp = r->imp;
    sv_err err = {0};
    sv_location *loc = NULL;
    pthread_mutex_lock(&r->mu);
    snprintf(r->status, sizeof r->status, "TRANSFERRING");
    pthread_mutex_unlock(&r->mu);
    if (r->job)
        sv_job_start(r->job, NULL);
    int rc = sv_export_backend_location(imp->o.export, r->backend, &loc, &err);
    if (rc == 0)
        persist(r, &err);
    json_t *mapping = json_object_get(r->request, "mapping");
    bool canceled = false;
    for (size_t i = 0; rc == 0 && i < r->nfiles; i++) {
        imp_file *f = &r->files[i];
        if (!strcmp(f->status, "SUCCESS") || !strcmp(f->status, "FAILED"))
            continue;
        if (import_file(r, loc, f, mapping) == SV_ECANCELED) {
            canceled = true;
            break;
        }
        persist(r, &err);
    }
    /* Bulk mode ends once per collection, after every write of the run
     * (the last batches of a stopped file included). */
    sv_strmap colls = {0};
    for (size_t i = 0; i < r->nfiles; i++)
        if (r->files[i].collection[0] && !sv_strmap_find(&colls, r->files[i].collection)) {
            sv_strmap_add(&colls, r->files[i].collection, &r->files[i]); /* no memory: ended twice, harmless */
            sv_store_bulk_done(imp->o.store, r->files[i].collection);
        }
    sv_strmap_free(&colls);
    if (rc) {
        finish(r, "FAILED", err.msg);
    } else if (canceled && atomic_load(&r->cancel)) {
        for (size_t i = 0; i < r->nfiles; i++)
            if (!strcmp(r->files[i].status, "PENDING") || !strcmp(r->files[i].status, "TRANSFERRING"))
                set_file_status(r, &r->files[i], "CANCELED", NULL);
        finish(r, "CANCELED", NULL);
    } else if (canceled) {
        /* shutting down: the record stays TRANSFERRING and resumes at the next start */
        persist(r, &err);
    } else {
        size_t nfailed = 0;
        const char *first = NULL, *fname = NULL;
        for (size_t i = 0; i < r->nfiles; i++)
            if (!strcmp(r->files[i].status, "FAILED")) {
                if (!nfailed++) {
                    first = r->files[i].error;
                    fname = r->files[i].key;
                }
            }
        if (nfailed) {
            char msg[700];
            snprintf(msg, sizeof msg, "%zu of %zu files failed; %.200s: %.400s", nfailed, r->nfiles, fname,
                     first ? first : "?");
            finish(r, "FAILED", msg);
        } else {
            finish(r, "SUCCESS", NULL);
        }
    }
    pthread_mutex_lock(&r->mu);
    r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static int start_run(sv_importer *imp, imp_run *r, sv_err *err)
{
    if (pthread_create(&r->thread, NULL, run_main, r) != 0)
        return sv_fail(err, SV_ENOMEM, "cannot start the import thread");
    r->thread_started = true;
    atomic_fetch_add(&imp->m_started, 1);
    return 0;
}

/* ---- file lists ---------------------------------------------------------------- */

typedef struct glob_ctx {
    const char *pattern;
    imp_run *r;
    size_t cap;
    int rc;
} glob_ctx;

static bool has_file(const imp_run *r, const char *key)
{
    for (size_t i = 0; i < r->nfiles; i++)
        if (!strcmp(r->files[i].key, key))
            return true;
    return false;
}

static int add_file(imp_run *r, size_t *cap, const char *key, int64_t size)
{
    if (has_file(r, key))
        return 0;
    if (r->nfiles >= IMP_MAX_FILES)
        return SV_ETOOBIG;
    if (sv_grow(&r->files, cap, r->nfiles + 1, sizeof *r->files))
        return SV_ENOMEM;
    imp_file *f = &r->files[r->nfiles++];
    memset(f, 0, sizeof *f);
    snprintf(f->key, sizeof f->key, "%s", key);
    snprintf(f->status, sizeof f->status, "PENDING");
    f->size = size;
    r->size_sum += size;
    return 0;
}

static int glob_fn(void *ctx, const sv_location_entry *e)
{
    glob_ctx *g = ctx;
    if (e->is_prefix)
        return 0;
    if (fnmatch(g->pattern, e->key, FNM_PATHNAME) == 0) {
        int rc = add_file(g->r, &g->cap, e->key, e->size);
        if (rc)
            return rc;
    }
    return 0;
}

/* A glob within the backend's root: relative, no "." or ".." segment. */
static int check_glob(const char *p, sv_err *err)
{
    size_t n = strlen(p);
    if (n == 0 || n > 1000)
        return sv_fail(err, SV_EINVAL, "source.files: a pattern must be 1 to 1000 characters");
    if (p[0] == '/')
        return sv_fail(err, SV_EINVAL, "source.files: '%s' must be relative to the backend's root (no leading '/')", p);
    if (p[n - 1] == '/')
        return sv_fail(err, SV_EINVAL, "source.files: '%s' names a folder: a pattern names files (e.g. '%.900s*.parquet')",
                       p, p);
    const char *s = p;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
            return sv_fail(err, SV_EINVAL, "source.files: '%s' may not contain empty, '.' or '..' segments", p);
        s += len + (e ? 1 : 0);
    }
    for (const char *q = p; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == '\\')
            return sv_fail(err, SV_EINVAL, "source.files: '%s' contains a control character or a backslash", p);
    return 0;
}

static int expand_glob(sv_location *loc, imp_run *r, size_t *cap, const char *pat, sv_err *err)
{
    int rc = check_glob(pat, err);
    if (rc)
        return rc;
    /* list from the literal directory prefix before the first wildcard */
    size_t lit = strcspn(pat, "*?[");
    char prefix[1100];
    snprintf(prefix, sizeof prefix, "%.*s", (int)lit, pat);
    char *slash = strrchr(prefix, '/');
    if (slash)
        slash[1] = 0;
    else
        prefix[0] = 0;
    if (lit == strlen(pat)) { /* no wildcard: one file */
        sv_location_info info;
        if ((rc = sv_location_head(loc, pat, &info, err)))
            return rc == SV_ENOTFOUND ? sv_fail(err, SV_EINVAL, "source.files: '%s' does not exist", pat) : rc;
        return add_file(r, cap, pat, info.size) ? sv_fail(err, SV_ENOMEM, "too many files") : 0;
    }
    glob_ctx g = {pat, r, *cap, 0};
    rc = sv_location_list(loc, prefix, NULL, NULL, glob_fn, &g, err);
    *cap = g.cap;
    if (rc > 0 || rc == SV_ETOOBIG)
        return sv_fail(err, SV_ETOOBIG, "source.files matches more than %d files", IMP_MAX_FILES);
    return rc;
}

/* Export file names: {collection}_{shard}_{range}.parquet with '_' escaped as '.'. */
static bool split_export_name(const char *key, char *coll, size_t cn, char *shard, size_t sn)
{
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    size_t len = strlen(base);
    if (len < 9 || strcmp(base + len - 8, ".parquet"))
        return false;
    char stem[300];
    if (len - 8 >= sizeof stem)
        return false;
    memcpy(stem, base, len - 8);
    stem[len - 8] = 0;
    char *a = strchr(stem, '_');
    char *c = strrchr(stem, '_');
    if (!a || a == c)
        return false;
    *a = 0;
    *c = 0;
    if (strlen(stem) >= cn || strlen(a + 1) >= sn)
        return false;
    memcpy(coll, stem, strlen(stem) + 1);
    memcpy(shard, a + 1, strlen(a + 1) + 1);
    for (char *p = coll; *p; p++)
        if (*p == '.')
            *p = '_';
    for (char *p = shard; *p; p++)
        if (*p == '.')
            *p = '_';
    return true;
}

typedef struct list_ctx {
    imp_run *r;
    size_t cap;
    const char *prefix;
} list_ctx;

static int export_list_fn(void *ctx, const sv_location_entry *e)
{
    list_ctx *l = ctx;
    size_t n = strlen(e->key);
    if (e->is_prefix || n < 9 || strcmp(e->key + n - 8, ".parquet"))
        return 0;
    if (strchr(e->key + strlen(l->prefix), '/'))
        return 0;
    return add_file(l->r, &l->cap, e->key, e->size);
}

/* Creates the target collection from a file's footer (shardvault.schema),
 * renamed to target. */
/* ---- createCollection for files: a schema from the mapping and the footer ---------- */

/* A property type for a leaf column (NULL when it has none). */
static const char *leaf_prop_type(const sv_pq_rnode *n)
{
    switch (n->lt) {
    case SV_PQ_RLT_STRING:
    case SV_PQ_RLT_ENUM:
    case SV_PQ_RLT_TIME: return "text";
    case SV_PQ_RLT_JSON: return "object";
    case SV_PQ_RLT_UUID: return "uuid";
    case SV_PQ_RLT_DATE:
    case SV_PQ_RLT_TIMESTAMP: return "date";
    case SV_PQ_RLT_DECIMAL: return n->scale == 0 && n->type != SV_PQ_FIXED_LEN_BYTE_ARRAY && n->type != SV_PQ_BYTE_ARRAY
                                       ? "int" : "number";
    case SV_PQ_RLT_FLOAT16: return "number";
    case SV_PQ_RLT_INT: return !n->is_signed && n->bits == 64 ? "number" : "int";
    default: break;
    }
    switch (n->type) {
    case SV_PQ_BOOLEAN: return "boolean";
    case SV_PQ_INT32:
    case SV_PQ_INT64: return "int";
    case SV_PQ_FLOAT:
    case SV_PQ_DOUBLE: return "number";
    default: return "text"; /* other bytes: base64 text */
    }
}

/* The property type of a mapped column; NULL + why when none fits. */
static const char *column_prop_type(const sv_pq_rnode *n, char *buf, size_t len)
{
    if (n->kind == SV_PQ_RGROUP)
        return "object";
    if (n->kind == SV_PQ_RLEAF)
        return leaf_prop_type(n);
    const sv_pq_rnode *el = n->children[0];
    if (el->kind != SV_PQ_RLEAF)
        return NULL; /* a list of lists or of groups */
    const char *t = leaf_prop_type(el);
    if (!strcmp(t, "object"))
        return NULL;
    snprintf(buf, len, "%s[]", t);
    return buf;
}

/* A vector's dimension from one value (-1: not a vector). */
static int64_t value_dim(const sv_pq_value *v)
{
    if (v->kind == SV_PQV_PACKED || v->kind == SV_PQV_LIST)
        return v->n;
    if (v->kind == SV_PQV_BYTES)
        return v->n % 4 ? -1 : (int64_t)(v->n / 4);
    return -1;
}

static int derive_schema(sv_pq_reader *rd, json_t *mapping, const char *key, const char *target, bool mt,
                         char **out, sv_err *err)
{
    *out = NULL;
    imp_plan *p = NULL;
    int rc = imp_plan_new(sv_pq_reader_root(rd), mapping, key, &p, err);
    if (rc) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        return sv_fail(err, rc, "createCollection: %s", m);
    }
    int64_t *dims = calloc((size_t)p->n + 1, sizeof *dims);
    if (!dims) {
        imp_plan_free(p);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    bool need_rows = false;
    for (int i = 0; i < p->n; i++) {
        const imp_map *m = &p->maps[i];
        dims[i] = -1;
        if (m->kind == IMP_T_VECTOR || m->kind == IMP_T_NAMED) {
            if (m->col.node->kind == SV_PQ_RLEAF && m->col.node->type == SV_PQ_FIXED_LEN_BYTE_ARRAY &&
                m->col.node->type_length > 0 && m->col.node->type_length % 4 == 0)
                dims[i] = m->col.node->type_length / 4;
            else
                need_rows = true;
        } else if (m->kind == IMP_T_MULTI) {
            need_rows = true;
        } else if (m->kind == IMP_T_NAMED_ALL || m->kind == IMP_T_MULTI_ALL) {
            rc = sv_fail(err, SV_EINVAL,
                         "createCollection: column %s holds vectors by name, whose names and dimensions the footer "
                         "does not give; map each one (namedVectors/multiVectors {name: column}) or create the "
                         "collection first", m->col.name);
            break;
        }
    }
    /* Dimensions of list columns: the first non-null value in the first row group. */
    const sv_pq_value *rows = NULL;
    size_t n = 0;
    if (rc == 0 && need_rows)
        rc = sv_pq_reader_next(rd, 4096, &rows, &n, NULL, NULL, err);
    for (int i = 0; rc == 0 && need_rows && i < p->n; i++) {
        const imp_map *m = &p->maps[i];
        if (dims[i] >= 0 || (m->kind != IMP_T_VECTOR && m->kind != IMP_T_NAMED && m->kind != IMP_T_MULTI))
            continue;
        for (size_t r = 0; r < n && dims[i] < 0; r++) {
            const sv_pq_value *v = imp_col_value(&m->col, &rows[r]);
            if (m->kind == IMP_T_MULTI) {
                for (uint32_t k = 0; v->kind == SV_PQV_LIST && k < v->n && dims[i] < 0; k++)
                    dims[i] = value_dim(&v->u.items[k]);
            } else {
                dims[i] = value_dim(v);
            }
        }
        if (dims[i] <= 0)
            rc = sv_fail(err, SV_EINVAL,
                         "createCollection: the dimension of vector column %s cannot be read from the first %zu rows "
                         "of %s (null, empty or not a vector); create the collection first", m->col.name, n, key);
    }
    json_t *coll = json_object(), *vectors = json_object(), *named = json_object(), *multi = json_object(),
           *props = json_array();
    for (int i = 0; rc == 0 && i < p->n; i++) {
        const imp_map *m = &p->maps[i];
        switch (m->kind) {
        case IMP_T_VECTOR: json_object_set_new(vectors, "default", json_pack("{s:I}", "dim", (json_int_t)dims[i])); break;
        case IMP_T_NAMED: json_object_set_new(named, m->name, json_pack("{s:I}", "dim", (json_int_t)dims[i])); break;
        case IMP_T_MULTI: json_object_set_new(multi, m->name, json_pack("{s:I}", "dim", (json_int_t)dims[i])); break;
        case IMP_T_PROP: {
            char tb[32];
            const char *t = column_prop_type(m->col.node, tb, sizeof tb);
            if (!t) {
                rc = sv_fail(err, SV_EINVAL,
                             "createCollection: column %s (a list of lists, groups or JSON) has no property type; map "
                             "it elsewhere or create the collection first", m->col.name);
                break;
            }
            /* a later mapping of the same name wins, as for the values */
            size_t k;
            json_t *e;
            json_array_foreach(props, k, e) if (!strcmp(json_string_value(json_object_get(e, "name")), m->name))
            {
                json_array_remove(props, k);
                break;
            }
            json_array_append_new(props, json_pack("{s:s,s:s}", "name", m->name, "type", t));
            break;
        }
        default: break; /* spread columns: undeclared properties */
        }
    }
    if (rc == 0) {
        json_object_set_new(coll, "name", json_string(target));
        if (mt)
            json_object_set_new(coll, "multiTenancy", json_true());
        if (json_object_size(named))
            json_object_set(vectors, "named", named);
        if (json_object_size(multi))
            json_object_set(vectors, "multi", multi);
        json_object_set(coll, "vectors", vectors);
        json_object_set(coll, "properties", props);
        if (!(*out = json_dumps(coll, JSON_COMPACT)))
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
    }
    json_decref(coll);
    json_decref(vectors);
    json_decref(named);
    json_decref(multi);
    json_decref(props);
    free(dims);
    imp_plan_free(p);
    return rc;
}

/* Creates target from key's footer: the collection schema a shardvault export
 * carries (shardvault.schema), else (files, derive) one derived from the
 * mapping and the file's schema. */
static int create_from_file(sv_importer *imp, sv_location *loc, const char *key, const char *target, bool derive,
                            json_t *mapping, bool mt, sv_err *err)
{
    loc_src src = {0};
    sv_pq_reader *rd;
    int rc = open_reader(imp, loc, key, &src, &rd, err);
    if (rc)
        return rc;
    const char *desc = sv_pq_reader_kv(rd, "shardvault.schema");
    json_t *d = desc ? json_loads(desc, 0, NULL) : NULL;
    json_t *coll = json_object_get(d, "collection");
    char *s = NULL;
    if (json_is_object(coll)) {
        json_object_set_new(coll, "name", json_string(target));
        s = json_dumps(coll, JSON_COMPACT);
    } else if (derive) {
        rc = derive_schema(rd, mapping, key, target, mt, &s, err);
    } else {
        rc = sv_fail(err, SV_EINVAL,
                     "createCollection: %s carries no collection schema (shardvault.schema); create collection "
                     "'%s' first", key, target);
    }
    json_decref(d);
    sv_pq_reader_free(rd);
    if (rc)
        return rc;
    if (!s)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    json_t *out = NULL;
    rc = sv_store_create_collection_ex(imp->o.store, s, strlen(s), SV_STORE_PLACE_HERE, &out, err);
    free(s);
    json_decref(out);
    if (rc == SV_EEXIST)
        rc = 0;
    return rc;
}

static bool collection_exists(sv_importer *imp, const char *name)
{
    sv_schema *s = NULL;
    int rc = sv_store_schema(imp->o.store, name, &s, NULL);
    if (rc == 0)
        sv_schema_free(s);
    return rc == 0;
}

/* In a cluster an import writes through this node's store, which holds only
 * the shards placed here: a target (its fixed shards, or the tenant) that
 * lives elsewhere is refused before anything is written, naming where, so
 * rows are never reported failed one by one behind an import that SUCCEEDS.
 * What the import creates is placed here (SV_STORE_PLACE_HERE): only an
 * existing target can be elsewhere.
 * (Imports across nodes are not built: docs/import.md "In a cluster".) */
static int target_local(sv_importer *imp, const char *collection, const char *tenant, sv_err *err)
{
    char(*nodes)[65] = NULL;
    size_t n = 0;
    int rc = sv_store_owner_nodes(imp->o.store, collection, tenant, &nodes, &n, err);
    if (rc)
        return rc;
    const char *me = sv_store_node(imp->o.store);
    char others[300] = "";
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(nodes[i], me) && len < sizeof others - 70)
            len += (size_t)snprintf(others + len, sizeof others - len, "%s%s", len ? ", " : "", nodes[i]);
    if (others[0] && tenant)
        rc = sv_fail(err, SV_EUNSUPPORTED,
                     "tenant '%s' of collection '%s' is on node %s, and an import writes only the shards of the "
                     "node that runs it: post the import to node %s",
                     tenant, collection, others, others);
    else if (others[0] && n == 1)
        rc = sv_fail(err, SV_EUNSUPPORTED,
                     "collection '%s' is on node %s, and an import writes only the shards of the node that runs "
                     "it: post the import to node %s",
                     collection, others, others);
    else if (others[0])
        rc = sv_fail(err, SV_EUNSUPPORTED,
                     "collection '%s' has shards on node(s) %s besides this one, and an import writes only the "
                     "shards of the node that runs it (imports across nodes are not built): import into a "
                     "collection whose shards are all on one node, or use POST /v1/batch/objects, which any node "
                     "forwards", collection, others);
    free(nodes);
    return rc;
}

static bool collection_mt(sv_importer *imp, const char *name)
{
    sv_schema *s = NULL;
    bool mt = sv_store_schema(imp->o.store, name, &s, NULL) == 0 && s->multi_tenancy;
    sv_schema_free(s);
    return mt;
}

static int ensure_tenant(sv_importer *imp, const char *coll, const char *tenant, sv_err *err)
{
    json_t *body = json_pack("{s:[{s:s}]}", "tenants", "name", tenant);
    json_t *out = NULL;
    /* a cluster: the tenant goes where the import runs (it writes only this node's shards) */
    int rc = sv_store_add_tenants_ex(imp->o.store, coll, body, SV_STORE_PLACE_HERE, &out, err);
    json_decref(body);
    json_decref(out);
    if (rc == SV_EEXIST || rc == SV_ECONFLICT)
        rc = 0;
    return rc;
}

static bool tenant_exists(sv_importer *imp, const char *coll, const char *tenant)
{
    sv_shard_info *sh = NULL;
    size_t n = 0;
    bool found = false;
    if (sv_store_shards_ex(imp->o.store, coll, 0, &sh, &n, NULL) == 0)
        for (size_t i = 0; i < n && !found; i++)
            found = sh[i].is_tenant && !strcmp(sh[i].name, tenant);
    free(sh);
    return found;
}

/* ---- API ------------------------------------------------------------------------------ */

static imp_run *find_run(sv_importer *imp, const char *backend, const char *id)
{
    for (imp_run *r = imp->runs; r; r = r->next)
        if (!strcmp(r->id, id) && !strcmp(r->backend, backend))
            return r;
    return NULL;
}

static int validate_body(json_t *body, sv_err *err)
{
    if (!json_is_object(body))
        return sv_fail(err, SV_EINVAL, "the body must be a JSON object");
    const char *allowed[] = {"id", "source", "collection", "createCollection", "mapping", "onConflict", "tenant"};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
            ok |= !strcmp(k, allowed[i]);
        if (!ok)
            return sv_fail(err, SV_EINVAL,
                           "unknown field '%.64s' (id, source, collection, createCollection, mapping, onConflict, "
                           "tenant); paths come from the server's backends", k);
    }
    json_t *id = json_object_get(body, "id");
    if (!json_is_string(id))
        return sv_fail(err, SV_EINVAL, "id is required: a string matching ^[a-z0-9_-]{1,128}$");
    if (sv_check_export_id(json_string_value(id), NULL))
        return sv_fail(err, SV_EINVAL, "id must match ^[a-z0-9_-]{1,128}$ (got '%.64s')", json_string_value(id));
    json_t *src = json_object_get(body, "source");
    json_t *ex = json_object_get(src, "export"), *files = json_object_get(src, "files");
    if (!json_is_object(src) || (!ex == !files) || json_object_size(src) != 1)
        return sv_fail(err, SV_EINVAL, "source must be {\"export\": id} or {\"files\": [glob, ...]}");
    if (ex && (!json_is_string(ex) || sv_check_export_id(json_string_value(ex), err)))
        return sv_fail(err, SV_EINVAL, "source.export must be an export id (^[a-z0-9_-]{1,128}$)");
    if (files && (!json_is_array(files) || json_array_size(files) == 0 || json_array_size(files) > 1000))
        return sv_fail(err, SV_EINVAL, "source.files must be a list of 1 to 1000 glob patterns");
    size_t i;
    json_array_foreach(files, i, v) if (!json_is_string(v)) return sv_fail(err, SV_EINVAL,
                                                                             "source.files[%zu] must be a string", i);
    json_t *c = json_object_get(body, "collection");
    if (c && (!json_is_string(c) || sv_check_collection_name(json_string_value(c), err)))
        return sv_fail(err, SV_EINVAL, "collection must be a collection name (^[A-Za-z][A-Za-z0-9_]{0,127}$)");
    if (files && !c)
        return sv_fail(err, SV_EINVAL, "collection is required with source.files");
    json_t *cc = json_object_get(body, "createCollection");
    if (cc && !json_is_boolean(cc))
        return sv_fail(err, SV_EINVAL, "createCollection must be true or false");
    int rc = imp_mapping_check(json_object_get(body, "mapping"), err);
    if (rc)
        return rc;
    json_t *oc = json_object_get(body, "onConflict");
    if (oc && (!json_is_string(oc) || sv_enum_parse(conflict_names, 3, json_string_value(oc)) < 0))
        return sv_fail(err, SV_EINVAL, "onConflict must be \"fail\", \"skip\" or \"replace\"");
    json_t *t = json_object_get(body, "tenant");
    if (t && (!json_is_string(t) || sv_check_tenant_name(json_string_value(t), err)))
        return sv_fail(err, SV_EINVAL, "tenant must be a tenant name");
    return 0;
}

int sv_importer_create(sv_importer *imp, const char *backend, json_t *body, json_t **out, sv_err *err)
{
    *out = NULL;
    int rc = backend_ok(backend, err);
    if (rc == 0)
        rc = validate_body(body, err);
    if (rc)
        return rc;
    const char *id = json_string_value(json_object_get(body, "id"));
    char key[200];
    record_key(key, sizeof key, backend, id);
    pthread_mutex_lock(&imp->mu);
    bool shutting = imp->shutting;
    bool taken = find_run(imp, backend, id) != NULL;
    pthread_mutex_unlock(&imp->mu);
    if (shutting)
        return sv_fail(err, SV_EUNAVAIL, "the server is shutting down");
    char *old = NULL;
    size_t oldlen;
    int64_t rev;
    if (!taken && sv_catalog_get(imp->o.catalog, key, &old, &oldlen, &rev, NULL) == 0) {
        taken = true;
        free(old);
    }
    if (taken)
        return sv_fail(err, SV_EEXIST, "import '%s' already exists on backend %s", id, backend);
    sv_location *loc;
    if ((rc = sv_export_backend_location(imp->o.export, backend, &loc, err)))
        return rc;
    imp_run *r = run_new(imp, backend, id);
    if (!r)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    r->request = json_deep_copy(body);
    json_t *oc = json_object_get(body, "onConflict");
    r->on_conflict = oc ? sv_enum_parse(conflict_names, 3, json_string_value(oc)) : ON_FAIL;
    json_t *src = json_object_get(body, "source");
    const char *target = json_string_value(json_object_get(body, "collection"));
    const char *tenant = json_string_value(json_object_get(body, "tenant"));
    bool create = json_is_true(json_object_get(body, "createCollection"));
    size_t cap = 0;
    if (json_object_get(src, "export")) {
        const char *eid = json_string_value(json_object_get(src, "export"));
        char mkey[300];
        snprintf(mkey, sizeof mkey, "%s/export_metadata.json", eid);
        sv_buf mb = {0};
        rc = sv_location_get_buf(loc, mkey, &mb, err);
        if (rc == SV_ENOTFOUND)
            rc = sv_fail(err, SV_EINVAL, "source.export: there is no export '%s' on backend %s", eid, backend);
        json_t *meta = rc == 0 ? json_loadb((const char *)mb.data, mb.len, 0, NULL) : NULL;
        sv_buf_free(&mb);
        const char *st = json_string_value(json_object_get(meta, "status"));
        if (rc == 0 && (!st || strcmp(st, "SUCCESS")))
            rc = sv_fail(err, SV_EINVAL, "source.export: export '%s' is %s, not SUCCESS: only a complete export "
                         "can be imported", eid, st ? st : "unreadable");
        json_decref(meta);
        if (rc == 0) {
            char prefix[200];
            snprintf(prefix, sizeof prefix, "%s/", eid);
            list_ctx l = {r, 0, prefix};
            rc = sv_location_list(loc, prefix, NULL, NULL, export_list_fn, &l, err);
            cap = l.cap;
        }
        for (size_t i = 0; rc == 0 && i < r->nfiles; i++) {
            imp_file *f = &r->files[i];
            char coll[200], shard[200];
            if (!split_export_name(f->key, coll, sizeof coll, shard, sizeof shard)) {
                rc = sv_fail(err, SV_EINVAL, "source.export: %s is not named {collection}_{shard}_{range}.parquet",
                             f->key);
                break;
            }
            if (!target && sv_check_collection_name(coll, NULL)) {
                rc = sv_fail(err, SV_EINVAL, "source.export: %s names no valid collection", f->key);
                break;
            }
            snprintf(f->collection, sizeof f->collection, "%.128s", target ? target : coll);
            /* shard names shard0000... are fixed shards; anything else is a tenant */
            bool fixed = strncmp(shard, "shard", 5) == 0 && strlen(shard) == 9 && strspn(shard + 5, "0123456789") == 4;
            if (!fixed && !tenant && sv_check_tenant_name(shard, NULL) == 0)
                snprintf(f->tenant, sizeof f->tenant, "%.64s", shard);
            if (tenant)
                snprintf(f->tenant, sizeof f->tenant, "%s", tenant);
        }
    } else {
        json_t *files = json_object_get(src, "files");
        size_t i;
        json_t *v;
        json_array_foreach(files, i, v)
        {
            if ((rc = expand_glob(loc, r, &cap, json_string_value(v), err)))
                break;
        }
        for (size_t k = 0; rc == 0 && k < r->nfiles; k++) {
            snprintf(r->files[k].collection, sizeof r->files[k].collection, "%s", target);
            if (tenant)
                snprintf(r->files[k].tenant, sizeof r->files[k].tenant, "%s", tenant);
        }
    }
    if (rc == 0 && r->nfiles == 0)
        rc = sv_fail(err, SV_EINVAL, json_object_get(src, "export") ? "the export holds no .parquet file on backend %s" : "source.files matches no file on backend %s", backend);
    /* Targets: exist, or created from the export's schema. */
    for (size_t i = 0; rc == 0 && i < r->nfiles; i++) {
        imp_file *f = &r->files[i];
        if (!collection_exists(imp, f->collection)) {
            if (!create)
                rc = sv_fail(err, SV_EINVAL, "collection '%s' does not exist (create it, or set createCollection: "
                             "true to create it from the files' schema)", f->collection);
            else
                rc = create_from_file(imp, loc, f->key, f->collection, !json_object_get(src, "export"),
                                      json_object_get(body, "mapping"), tenant != NULL, err);
        }
        bool mt = rc == 0 && collection_mt(imp, f->collection);
        if (rc == 0 && f->tenant[0] && !mt) {
            if (tenant)
                rc = sv_fail(err, SV_EINVAL, "collection '%s' is not multi-tenant: drop tenant", f->collection);
            else
                f->tenant[0] = 0; /* multi-tenant export into a single-tenant target */
        }
        if (rc == 0 && f->tenant[0] && !tenant)
            rc = ensure_tenant(imp, f->collection, f->tenant, err);
        if (rc == 0 && tenant && mt) {
            /* the request's tenant is added only with createCollection: a
             * misspelt name must not become a new tenant full of rows */
            if (create)
                rc = ensure_tenant(imp, f->collection, tenant, err);
            else if (!tenant_exists(imp, f->collection, tenant))
                rc = sv_fail(err, SV_EINVAL, "tenant '%s' does not exist in collection '%s' (add it with POST "
                             "/v1/collections/%s/tenants, or set createCollection: true to add it)", tenant,
                             f->collection, f->collection);
        }
        if (rc == 0 && !f->tenant[0] && mt)
            rc = sv_fail(err, SV_EINVAL, "collection '%s' is multi-tenant: name the tenant the rows of %s go to "
                         "(\"tenant\")", f->collection, f->key);
        if (rc == 0)
            rc = target_local(imp, f->collection, mt ? f->tenant : NULL, err);
    }
    if (rc) {
        run_free(r);
        return rc;
    }
    r->started_ms = sv_now_ms();
    if (imp->o.jobs) {
        char link[300];
        snprintf(link, sizeof link, "/v1/import/%s/%s", backend, id);
        sv_job_spec spec = {.kind = "import", .collection = target, .target = id, .backend = backend, .link = link};
        if ((rc = sv_jobs_create(imp->o.jobs, &spec, &r->job, err))) {
            run_free(r);
            return rc;
        }
        snprintf(r->job_id, sizeof r->job_id, "%s", sv_job_id(r->job));
    }
    if ((rc = persist_ex(r, true, err))) {
        if (r->job)
            sv_job_finish(r->job, SV_JOB_FAILED, err->msg, NULL, NULL);
        run_free(r);
        return rc;
    }
    pthread_mutex_lock(&imp->mu);
    r->next = imp->runs;
    imp->runs = r;
    rc = start_run(imp, r, err);
    pthread_mutex_unlock(&imp->mu);
    if (rc) {
        finish(r, "FAILED", err->msg);
        return rc;
    }
    *out = json_pack("{s:s,s:s,s:s}", "id", id, "backend", backend, "status", "STARTED");
    return *out ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
}

int sv_importer_status(sv_importer *imp, const char *backend, const char *id, json_t **out, sv_err *err)
{
    *out = NULL;
    int rc = backend_ok(backend, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&imp->mu);
    imp_run *r = find_run(imp, backend, id);
    if (r) {
        pthread_mutex_lock(&r->mu);
        *out = run_json(r, false);
        pthread_mutex_unlock(&r->mu);
    }
    pthread_mutex_unlock(&imp->mu);
    if (r)
        return *out ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
    char key[200];
    record_key(key, sizeof key, backend, id);
    char *val = NULL;
    size_t len;
    int64_t rev;
    rc = sv_catalog_get(imp->o.catalog, key, &val, &len, &rev, err);
    if (rc == SV_ENOTFOUND)
        return sv_fail(err, SV_ENOTFOUND, "no import '%.128s' on backend %s", id, backend);
    if (rc)
        return rc;
    json_t *rec = json_loadb(val, len, 0, NULL);
    free(val);
    if (!rec)
        return sv_fail(err, SV_ECORRUPT, "the record of import '%s' is not JSON", id);
    *out = public_view(rec);
    json_decref(rec);
    return *out ? 0 : sv_fail(err, SV_ENOMEM, "out of memory");
}

int sv_importer_cancel(sv_importer *imp, const char *backend, const char *id, sv_err *err)
{
    int rc = backend_ok(backend, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&imp->mu);
    imp_run *r = find_run(imp, backend, id);
    if (!r) {
        pthread_mutex_unlock(&imp->mu);
        json_t *st = NULL;
        rc = sv_importer_status(imp, backend, id, &st, err);
        const char *s = json_string_value(json_object_get(st, "status"));
        const char *node = json_string_value(json_object_get(st, "node"));
        if (rc == 0 && s && (!strcmp(s, "STARTED") || !strcmp(s, "TRANSFERRING")) && node && strcmp(node, imp->node))
            rc = sv_fail(err, SV_ECONFLICT, "import '%s' runs on node %s: cancel it through that node (an import and "
                         "its job live on the node it was posted to)", id, node);
        else if (rc == 0)
            rc = sv_fail(err, SV_ECONFLICT, "import '%s' has already finished (%s)", id, s ? s : "?");
        json_decref(st);
        return rc;
    }
    pthread_mutex_lock(&r->mu);
    bool done = r->done;
    pthread_mutex_unlock(&r->mu);
    if (done) {
        pthread_mutex_unlock(&imp->mu);
        return sv_fail(err, SV_ECONFLICT, "import '%s' has already finished (%s)", id, r->status);
    }
    atomic_store(&r->cancel, true);
    /* runs live until the service closes: wait without holding the service
     * lock, so other imports' status reads go on meanwhile */
    pthread_mutex_unlock(&imp->mu);
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    char st[16];
    snprintf(st, sizeof st, "%s", r->status);
    pthread_mutex_unlock(&r->mu);
    /* the last file may have ended before the flag was seen: then the
     * import is not canceled, and the caller must not be told it was */
    if (strcmp(st, "CANCELED"))
        return sv_fail(err, SV_ECONFLICT, "import '%s' finished (%s) before the cancel took effect", id, st);
    return 0;
}

/* ---- jobs ------------------------------------------------------------------------------ */

static void kind_cancel(void *self, sv_job *job)
{
    sv_importer *imp = self;
    pthread_mutex_lock(&imp->mu);
    for (imp_run *r = imp->runs; r; r = r->next)
        if (r->job && !strcmp(sv_job_id(r->job), sv_job_id(job)))
            atomic_store(&r->cancel, true);
    pthread_mutex_unlock(&imp->mu);
}

typedef struct resume_ctx {
    sv_importer *imp;
    json_t *recs;
} resume_ctx;

static int scan_fn(const char *key, const char *val, size_t len, int64_t rev, void *ud)
{
    resume_ctx *c = ud;
    json_t *rec = json_loadb(val, len, 0, NULL);
    if (rec)
        json_array_append_new(c->recs, rec);
    return 0;
}

static int resume_all(sv_importer *imp, sv_err *err)
{
    resume_ctx c = {imp, json_array()};
    int rc = sv_catalog_scan(imp->o.catalog, "imports/", scan_fn, &c, err);
    size_t i;
    json_t *rec;
    json_array_foreach(c.recs, i, rec)
    {
        if (rc)
            break;
        const char *st = json_string_value(json_object_get(rec, "status"));
        const char *node = json_string_value(json_object_get(rec, "node"));
        if (!st || (strcmp(st, "STARTED") && strcmp(st, "TRANSFERRING")) || !node || strcmp(node, imp->node))
            continue;
        const char *id = json_string_value(json_object_get(rec, "id"));
        const char *backend = json_string_value(json_object_get(rec, "backend"));
        if (!id || !backend)
            continue;
        imp_run *r = run_new(imp, backend, id);
        if (!r) {
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
            break;
        }
        r->request = json_incref(json_object_get(rec, "request"));
        json_t *oc = json_object_get(r->request, "onConflict");
        r->on_conflict = oc ? sv_enum_parse(conflict_names, 3, json_string_value(oc)) : ON_FAIL;
        if (r->on_conflict < 0)
            r->on_conflict = ON_FAIL;
        r->started_ms = json_integer_value(json_object_get(rec, "startedAtMs"));
        r->imported = json_integer_value(json_object_get(rec, "objectsImported"));
        r->skipped = json_integer_value(json_object_get(rec, "objectsSkipped"));
        r->failed = json_integer_value(json_object_get(rec, "objectsFailed"));
        r->bytes = json_integer_value(json_object_get(rec, "objectsBytes"));
        json_decref(r->errors);
        r->errors = json_deep_copy(json_object_get(rec, "errors"));
        if (!r->errors)
            r->errors = json_array();
        r->resumed = true;
        size_t cap = 0, k;
        json_t *fj;
        json_array_foreach(json_object_get(rec, "files"), k, fj)
        {
            const char *fname = json_string_value(json_object_get(fj, "name"));
            if (add_file(r, &cap, fname ? fname : "?", json_integer_value(json_object_get(fj, "size")))) {
                rc = sv_fail(err, SV_ENOMEM, "out of memory");
                break;
            }
            imp_file *f = &r->files[r->nfiles - 1];
            file_rows(r, f, json_integer_value(json_object_get(fj, "rows")),
                      json_integer_value(json_object_get(fj, "rowsRead")));
            f->rows_imported = json_integer_value(json_object_get(fj, "rowsImported"));
            f->rg_done = (int)json_integer_value(json_object_get(fj, "rowGroupsDone"));
            const char *fs = json_string_value(json_object_get(fj, "status"));
            f->in_flight = fs && !strcmp(fs, "TRANSFERRING");
            snprintf(f->status, sizeof f->status, "%s", fs && strcmp(fs, "TRANSFERRING") ? fs : "PENDING");
            const char *fe = json_string_value(json_object_get(fj, "error"));
            f->error = fe ? strdup(fe) : NULL;
            const char *fc = json_string_value(json_object_get(fj, "collection"));
            const char *ft = json_string_value(json_object_get(fj, "tenant"));
            snprintf(f->collection, sizeof f->collection, "%s", fc ? fc : "");
            snprintf(f->tenant, sizeof f->tenant, "%s", ft ? ft : "");
        }
        const char *jid = json_string_value(json_object_get(rec, "jobId"));
        if (jid && jid[0] && imp->o.jobs) {
            snprintf(r->job_id, sizeof r->job_id, "%s", jid);
            if (sv_jobs_claim(imp->o.jobs, jid, &r->job, NULL))
                r->job = NULL;
        }
        sv_info("import resumes", "id=%s backend=%s", id, backend);
        pthread_mutex_lock(&imp->mu);
        r->next = imp->runs;
        imp->runs = r;
        if (rc == 0)
            rc = start_run(imp, r, err);
        pthread_mutex_unlock(&imp->mu);
    }
    json_decref(c.recs);
    return rc;
}

int sv_importer_open(const sv_importer_opts *opts, sv_importer **out, sv_err *err)
{
    *out = NULL;
    if (!opts->store || !opts->catalog || !opts->export)
        return sv_fail(err, SV_EINVAL, "the importer needs the store, the catalog and the export backends");
    sv_importer *imp = calloc(1, sizeof *imp);
    if (!imp)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    imp->o = *opts;
    snprintf(imp->node, sizeof imp->node, "%s", opts->node_name ? opts->node_name : "node1");
    pthread_mutex_init(&imp->mu, NULL);
    int rc = 0;
    if (imp->o.max_row_group_bytes <= 0)
        rc = sv_env_int("SHARDVAULT_IMPORT_MAX_ROW_GROUP_BYTES", 1ll << 30, &imp->o.max_row_group_bytes, err);
    if (rc == 0 && imp->o.batch_rows <= 0)
        rc = sv_env_int("SHARDVAULT_IMPORT_BATCH_ROWS", 1000, &imp->o.batch_rows, err);
    if (rc == 0 && imp->o.workers <= 0) {
        int64_t cpus = sv_cpu_count();
        rc = sv_env_int("SHARDVAULT_IMPORT_WORKERS", cpus < 1 ? 1 : cpus > 8 ? 8 : cpus, &imp->o.workers, err);
        if (rc == 0 && (imp->o.workers < 1 || imp->o.workers > 64))
            rc = sv_fail(err, SV_EINVAL, "SHARDVAULT_IMPORT_WORKERS must be 1..64");
    }
    if (rc == 0 && imp->o.bulk_min_objects == 0) {
        rc = sv_env_int("SHARDVAULT_IMPORT_BULK_MIN_OBJECTS", 4096, &imp->o.bulk_min_objects, err);
        if (rc == 0 && imp->o.bulk_min_objects == 0)
            imp->o.bulk_min_objects = -1; /* 0 in the environment: off */
    }
    if (rc == 0 && imp->o.jobs) {
        sv_job_kind k = {.name = "import", .self = imp, .cancel = kind_cancel};
        rc = sv_jobs_register_kind(imp->o.jobs, &k, err);
    }
    if (rc == 0)
        rc = resume_all(imp, err);
    if (rc) {
        sv_importer_close(imp);
        return rc;
    }
    *out = imp;
    return 0;
}

void sv_importer_shutdown(sv_importer *imp)
{
    if (!imp)
        return;
    pthread_mutex_lock(&imp->mu);
    imp->shutting = true;
    for (imp_run *r = imp->runs; r; r = r->next)
        atomic_store(&r->shutdown, true);
    pthread_mutex_unlock(&imp->mu);
    for (imp_run *r = imp->runs; r; r = r->next)
        if (r->thread_started) {
            pthread_join(r->thread, NULL);
            r->thread_started = false;
        }
}

void sv_importer_close(sv_importer *imp)
{
    if (!imp)
        return;
    sv_importer_shutdown(imp);
    if (imp->o.jobs)
        sv_jobs_register_kind(imp->o.jobs, &(sv_job_kind){.name = "import"}, NULL);
    imp_run *r = imp->runs;
    while (r) {
        imp_run *n = r->next;
        run_free(r);
        r = n;
    }
    pthread_mutex_destroy(&imp->mu);
    free(imp);
}

void sv_importer_metrics(sv_buf *out, void *ud)
{
    sv_importer *imp = ud;
    if (!imp)
        return;
    sv_buf_printf(out,
                  "# TYPE shardvault_import_started_total counter\nshardvault_import_started_total %lld\n"
                  "# TYPE shardvault_import_objects_total counter\nshardvault_import_objects_total %lld\n",
                  (long long)atomic_load(&imp->m_started), (long long)atomic_load(&imp->m_rows));
}
