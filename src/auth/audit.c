/* auth/audit.c — the audit log: JSON lines appended to a 0600 file by one
 * background thread. sv_audit_write formats the record into a line and queues
 * it (bounded; a full queue drops and counts); the writer moves queued lines
 * into its buffer only once the previous batch is on disk, so a failing disk
 * makes the queue fill and drop instead of memory growing. fdatasync runs at
 * most every flush_ms, and at rotation and close. A reopen marks the queue:
 * lines queued before it go to the old file, lines after it to the new one;
 * bytes the old file refused carry over to the new one. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"

#define AUDIT_QUEUE 65536
#define AUDIT_RETRY_MS 1000 /* between retries of a failed write */
#define AUDIT_BATCH (1 << 20) /* bytes moved to the writer per turn */
#define AUDIT_CLOSE_TRIES 5 /* a write still failing at close then gives up (counted as dropped) */

struct sv_audit {
    char *path;
    int64_t flush_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    char **q;             /* ring of formatted lines: q[(taken + i) % cap], i < enq - taken */
    size_t cap;
    uint64_t enq, taken;  /* lines ever queued / moved to the writer */
    int new_fd;           /* from sv_audit_reopen, used once taken == reopen_at; -1 if none */
    uint64_t reopen_at;
    bool stop;
    _Atomic int64_t dropped;
    /* the writer thread's own */
    int fd;
    sv_buf out;
    size_t off;           /* out[0..off) is written */
    bool dirty, wfail, sfail;
    int64_t last_sync_ms;
};

static int64_t mono_ms(void) { return sv_mono_ns() / 1000000; }

/* ---- formatting ---------------------------------------------------------------- */

/* s as a JSON string (null for NULL); invalid UTF-8 bytes (a client's
 * header, say) become U+FFFD (sv_buf_json_string), so every line stays valid
 * JSON. */
static int put_str(sv_buf *b, const char *s)
{
    return s ? sv_buf_json_string(b, s, strlen(s)) : sv_buf_append_str(b, "null");
}

static int put_field(sv_buf *b, const char *key, const char *s)
{
    return sv_buf_printf(b, ",\"%s\":", key) || put_str(b, s) ? SV_ENOMEM : 0;
}

/* One line, with its '\n'. A ts_ms of 0 (or less) means now. */
static int format_line(const sv_audit_rec *r, sv_buf *b)
{
    char ts[32];
    sv_format_time_ms(r->ts_ms > 0 ? r->ts_ms : sv_now_ms(), ts, sizeof ts);
    int rc = sv_buf_printf(b, "{\"ts\":\"%s\"", ts);
    rc = rc ? rc : put_field(b, "requestId", r->request_id);
    rc = rc ? rc : put_field(b, "keyId", r->key_id);
    rc = rc ? rc : sv_buf_append_str(b, ",\"roles\":[");
    for (int i = 0; rc == 0 && r->roles && i < r->nroles; i++) {
        if (i > 0)
            rc = sv_buf_putc(b, ',');
        rc = rc ? rc : put_str(b, r->roles[i]);
    }
    rc = rc ? rc : sv_buf_putc(b, ']');
    rc = rc ? rc : put_field(b, "remoteAddr", r->remote_addr);
    rc = rc ? rc : put_field(b, "method", r->method);
    rc = rc ? rc : put_field(b, "route", r->route);
    rc = rc ? rc : put_field(b, "action", r->action);
    rc = rc ? rc : put_field(b, "collection", r->collection);
    rc = rc ? rc : put_field(b, "tenant", r->tenant);
    rc = rc ? rc : sv_buf_printf(b, ",\"status\":%d", r->status);
    rc = rc ? rc : put_field(b, "outcome", r->outcome);
    rc = rc ? rc : sv_buf_printf(b, ",\"durationMs\":%lld", (long long)r->duration_ms);
    rc = rc ? rc : put_field(b, "jobId", r->job_id);
    return rc ? rc : sv_buf_append_str(b, "}\n");
}

/* ---- the writer thread ------------------------------------------------------------ */

/* Logs the start of a failure episode once; ok ends it. */
static void episode(sv_audit *au, bool *failing, const char *what, bool ok, int e)
{
    if (ok && *failing)
        sv_info("audit log works again", "path=\"%s\" op=%s", au->path, what);
    else if (!ok && !*failing)
        sv_warn("audit log failing, retrying", "path=\"%s\" op=%s error=\"%s\"", au->path, what, strerror(e));
    *failing = !ok;
}

/* Writes out[off..]. true when all of it is on its way to the disk. */
static bool write_out(sv_audit *au)
{
    while (au->off < au->out.len) {
        ssize_t n = write(au->fd, au->out.data + au->off, au->out.len - au->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            episode(au, &au->wfail, "write", false, n < 0 ? errno : EIO);
            return false;
        }
        au->off += (size_t)n;
        au->dirty = true;
    }
    episode(au, &au->wfail, "write", true, 0);
    sv_buf_reset(&au->out);
    au->off = 0;
    return true;
}

static void sync_fd(sv_audit *au)
{
    if (!au->dirty)
        return;
    int e = fdatasync(au->fd) == 0 ? 0 : errno;
    /* EINVAL/EROFS: a pipe or a device (e.g. /dev/stderr) that cannot sync. */
    episode(au, &au->sfail, "fsync", e == 0 || e == EINVAL || e == EROFS, e);
    au->dirty = false;
    au->last_sync_ms = mono_ms();
}

/* Under the lock: moves the lines queued before the reopen mark (if any) into
 * out, once the previous batch is written, and hands over the new fd once the
 * mark is reached (else -1). */
static int take_lines(sv_audit *au)
{
    uint64_t until = au->new_fd >= 0 ? au->reopen_at : au->enq;
    if (au->off < au->out.len)
        until = au->taken; /* the last batch is not written yet */
    for (; au->taken < until && au->out.len < AUDIT_BATCH; au->taken++) {
        char **slot = &au->q[au->taken % au->cap];
        if (sv_buf_append_str(&au->out, *slot))
            break; /* out of memory: try again on the next turn */
        free(*slot);
        *slot = NULL;
    }
    int fd = -1;
    /* The old file refusing writes hands over at once: its unwritten batch
     * may hold the take loop back from ever reaching the mark, and what it
     * refused carries over to the new file anyway. */
    if (au->new_fd >= 0 && (au->taken == au->reopen_at || au->wfail)) {
        fd = au->new_fd;
        au->new_fd = -1;
    }
    return fd;
}

/* Under the lock, at close with the disk still failing: what is left is lost. */
static void give_up(sv_audit *au)
{
    int64_t lost = (int64_t)(au->enq - au->taken);
    for (size_t i = au->off; i < au->out.len; i++)
        lost += au->out.data[i] == '\n';
    for (; au->taken < au->enq; au->taken++) {
        free(au->q[au->taken % au->cap]);
        au->q[au->taken % au->cap] = NULL;
    }
    if (au->new_fd >= 0)
        close(au->new_fd);
    au->new_fd = -1;
    atomic_fetch_add(&au->dropped, lost);
    sv_error("audit log closed with records unwritten", "path=\"%s\" records=%lld", au->path, (long long)lost);
}

/* Under the lock: sleeps until there is work, a retry or an fsync is due. */
static void wait_turn(sv_audit *au, bool ok)
{
    if ((ok && (au->stop || au->enq > au->taken)) ||
        (au->new_fd >= 0 && (au->taken == au->reopen_at || au->wfail)))
        return;
    int64_t ms = ok ? -1 : au->stop ? 100 : AUDIT_RETRY_MS;
    if (au->dirty) {
        int64_t due = au->last_sync_ms + au->flush_ms - mono_ms();
        if (due <= 0)
            return;
        ms = ms < 0 || due < ms ? due : ms;
    }
    if (ms < 0) {
        pthread_cond_wait(&au->cv, &au->mu);
        return;
    }
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    int64_t ns = t.tv_nsec + (ms % 1000) * 1000000;
    t.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
    t.tv_nsec = (long)(ns % 1000000000);
    pthread_cond_timedwait(&au->cv, &au->mu, &t);
}

static void *writer_main(void *arg)
{
    sv_audit *au = arg;
    int tries = 0;
    pthread_mutex_lock(&au->mu);
    for (;;) {
        int new_fd = take_lines(au);
        bool stop = au->stop, drained = au->enq == au->taken && au->new_fd < 0;
        pthread_mutex_unlock(&au->mu);
        bool ok = write_out(au);
        if (new_fd >= 0 || stop || mono_ms() - au->last_sync_ms >= au->flush_ms)
            sync_fd(au);
        if (new_fd >= 0) {
            close(au->fd);
            au->fd = new_fd; /* what the old file refused carries over, from its line's start */
            while (au->off > 0 && au->out.data[au->off - 1] != '\n')
                au->off--;
            au->wfail = au->sfail = false;
        }
        pthread_mutex_lock(&au->mu);
        if (new_fd >= 0)
            continue; /* at once: anything carried over goes to the new file */
        if (stop && ok && drained)
            break;
        if (stop && !ok && ++tries >= AUDIT_CLOSE_TRIES) {
            give_up(au);
            break;
        }
        wait_turn(au, ok);
    }
    pthread_mutex_unlock(&au->mu);
    return NULL;
}

/* ---- the API -------------------------------------------------------------------- */

static void audit_free(sv_audit *au)
{
    pthread_cond_destroy(&au->cv);
    pthread_mutex_destroy(&au->mu);
    sv_buf_free(&au->out);
    free(au->q);
    free(au->path);
    free(au);
}

static int open_file(const char *path, int *fd, sv_err *err)
{
    *fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0 && errno == ENOENT)
        return sv_fail(err, SV_EIO, "audit log %s: its directory does not exist; create it or choose another path",
                       path);
    if (*fd < 0)
        return sv_fail(err, SV_EIO, "audit log %s: cannot open it for appending: %s", path, strerror(errno));
    struct stat st;
    if (fstat(*fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077))
        sv_warn("audit log is readable by others; chmod 600 it", "path=\"%s\" mode=%03o", path,
                (unsigned)(st.st_mode & 0777));
    return 0;
}

/* sv_audit_open with the queue's capacity: for tests (which declare it), not in auth.h. */
int sv_audit_open_cap(const char *path, int64_t flush_ms, size_t cap, sv_audit **out, sv_err *err)
{
    *out = NULL;
    if (!path || !*path || flush_ms < 0 || cap == 0)
        return sv_fail(err, SV_EINVAL, "audit log: a path, a flush interval >= 0 ms and a queue size > 0 are needed");
    sv_audit *au = calloc(1, sizeof *au);
    if (!au)
        return sv_fail(err, SV_ENOMEM, "audit log: out of memory");
    *au = (sv_audit){.path = strdup(path), .q = calloc(cap, sizeof *au->q), .cap = cap, .flush_ms = flush_ms,
                     .new_fd = -1, .fd = -1, .last_sync_ms = mono_ms()};
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&au->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&au->mu, NULL);
    int rc = au->path && au->q ? open_file(path, &au->fd, err) : sv_fail(err, SV_ENOMEM, "audit log: out of memory");
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the writer takes no signals */
    if (rc == 0 && pthread_create(&au->thread, NULL, writer_main, au) != 0) {
        close(au->fd);
        rc = sv_fail(err, SV_ENOMEM, "audit log: cannot start its writer thread");
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        audit_free(au);
    else
        *out = au;
    return rc;
}

int sv_audit_open(const char *path, int64_t flush_ms, sv_audit **out, sv_err *err)
{
    return sv_audit_open_cap(path, flush_ms, AUDIT_QUEUE, out, err);
}

bool sv_audit_write(sv_audit *au, const sv_audit_rec *rec)
{
    if (!au || !rec)
        return false;
    sv_buf b = {0};
    char *line = format_line(rec, &b) == 0 ? sv_buf_cstr(&b) : NULL;
    pthread_mutex_lock(&au->mu);
    bool ok = line && au->enq - au->taken < au->cap;
    if (ok) {
        au->q[au->enq++ % au->cap] = line;
        if (au->enq - au->taken == 1)
            pthread_cond_signal(&au->cv);
    }
    pthread_mutex_unlock(&au->mu);
    if (!ok) {
        sv_buf_free(&b);
        atomic_fetch_add(&au->dropped, 1);
    }
    return ok;
}

int sv_audit_reopen(sv_audit *au, sv_err *err)
{
    if (!au)
        return sv_fail(err, SV_EINVAL, "audit log: not open");
    int fd;
    int rc = open_file(au->path, &fd, err);
    if (rc)
        return rc; /* the current file stays in use */
    pthread_mutex_lock(&au->mu);
    if (au->new_fd >= 0)
        close(au->new_fd); /* an earlier reopen not reached yet: this one replaces it */
    au->new_fd = fd;
    au->reopen_at = au->enq;
    pthread_cond_signal(&au->cv);
    pthread_mutex_unlock(&au->mu);
    return 0;
}

void sv_audit_close(sv_audit *au)
{
    if (!au)
        return;
    pthread_mutex_lock(&au->mu);
    au->stop = true;
    pthread_cond_signal(&au->cv);
    pthread_mutex_unlock(&au->mu);
    pthread_join(au->thread, NULL);
    close(au->fd);
    audit_free(au);
}

int64_t sv_audit_dropped(const sv_audit *au)
{
    return au ? atomic_load(&au->dropped) : 0;
}
