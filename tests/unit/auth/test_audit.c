/* The audit log: JSON lines, escaping, file mode, concurrency, drops,
 * rotation, close, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"

/* Test-only: sv_audit_open with the queue's capacity (audit.c). */
int sv_audit_open_cap(const char *path, int64_t flush_ms, size_t cap, sv_audit **out, sv_err *err);

static char g_root[1024];

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_root, name);
    unlink(out);
}

static sv_audit *open_log(const char *path, int64_t flush_ms, size_t cap)
{
    sv_audit *au = NULL;
    sv_err err = {0};
    if (sv_audit_open_cap(path, flush_ms, cap, &au, &err))
        fail_msg("open %s: %s", path, err.msg);
    return au;
}

static sv_audit_rec rec_id(const char *id)
{
    static const char *const roles[] = {"writer", "reader"};
    return (sv_audit_rec){.ts_ms = 1795796295123, .request_id = id, .key_id = "k1", .roles = roles, .nroles = 2,
                          .remote_addr = "10.0.0.7", .method = "POST", .route = "/v1/objects",
                          .action = "write", .collection = "Books", .tenant = "t1", .status = 200,
                          .outcome = "ok", .duration_ms = 12, .job_id = NULL};
}

/* The file's lines, parsed; the caller frees with json_decref. Fails the test
 * on a line that is not a JSON object. */
static json_t *read_lines(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    sv_err err = {0};
    if (sv_read_file(path, &data, &len, &err))
        fail_msg("read %s: %s", path, err.msg);
    json_t *arr = json_array();
    char *save = NULL;
    if (len > 0)
        assert_int_equal(data[len - 1], '\n');
    for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *v = json_loads(line, 0, &je);
        if (!json_is_object(v))
            fail_msg("%s: not a JSON object: %s (%s)", path, line, je.text);
        json_array_append_new(arr, v);
    }
    free(data);
    return arr;
}

static const char *str_of(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void round_trip(void **state)
{
    char path[1200];
    tmp_path(path, sizeof path, "rt.log");
    sv_audit *au = open_log(path, 10, 64);
    sv_audit_rec r = rec_id("req-1");
    r.job_id = "job-9";
    assert_true(sv_audit_write(au, &r));
    sv_audit_rec empty = {.ts_ms = 1, .status = 403};
    assert_true(sv_audit_write(au, &empty));
    sv_audit_close(au);

    json_t *lines = read_lines(path);
    assert_int_equal(json_array_size(lines), 2);
    json_t *a = json_array_get(lines, 0);
    static const char *const keys[] = {"ts", "requestId", "keyId", "roles", "remoteAddr", "method", "route",
                                       "action", "collection", "tenant", "status", "outcome", "durationMs", "jobId"};
    assert_int_equal(json_object_size(a), 14);
    for (size_t i = 0; i < 14; i++)
        assert_non_null(json_object_get(a, keys[i]));
    assert_string_equal(str_of(a, "ts"), "2026-11-27T16:18:15.123Z");
    assert_string_equal(str_of(a, "requestId"), "req-1");
    assert_string_equal(str_of(a, "keyId"), "k1");
    json_t *roles = json_object_get(a, "roles");
    assert_int_equal(json_array_size(roles), 2);
    assert_string_equal(json_string_value(json_array_get(roles, 1)), "reader");
    assert_string_equal(str_of(a, "remoteAddr"), "10.0.0.7");
    assert_string_equal(str_of(a, "method"), "POST");
    assert_string_equal(str_of(a, "route"), "/v1/objects");
    assert_string_equal(str_of(a, "action"), "write");
    assert_string_equal(str_of(a, "collection"), "Books");
    assert_string_equal(str_of(a, "tenant"), "t1");
    assert_int_equal(json_integer_value(json_object_get(a, "status")), 200);
    assert_string_equal(str_of(a, "outcome"), "ok");
    assert_int_equal(json_integer_value(json_object_get(a, "durationMs")), 12);
    assert_string_equal(str_of(a, "jobId"), "job-9");

    /* NULL strings are null, no roles is [] */
    json_t *b = json_array_get(lines, 1);
    assert_int_equal(json_object_size(b), 14);
    assert_string_equal(str_of(b, "ts"), "1970-01-01T00:00:00.001Z");
    for (size_t i = 1; i < 14; i++)
        if (strcmp(keys[i], "roles") && strcmp(keys[i], "status") && strcmp(keys[i], "durationMs"))
            assert_true(json_is_null(json_object_get(b, keys[i])));
    assert_true(json_is_array(json_object_get(b, "roles")));
    assert_int_equal(json_array_size(json_object_get(b, "roles")), 0);
    assert_int_equal(json_integer_value(json_object_get(b, "status")), 403);
    json_decref(lines);
}

static void escaping(void **state)
{
    char path[1200];
    tmp_path(path, sizeof path, "esc.log");
    sv_audit *au = open_log(path, 10, 64);
    const char *nasty = "a\"b\\c\nd\re\tf\x01g\x1fh/é日本🙂";
    const char *const roles[] = {"ro\"le\n", NULL};
    sv_audit_rec r = rec_id(nasty);
    r.roles = roles;
    r.route = "x\n{\"forged\":true}";
    r.key_id = "bad\xff\xc3(utf8\xed\xa0\x80.";
    assert_true(sv_audit_write(au, &r));
    sv_audit_close(au);

    json_t *lines = read_lines(path); /* one line: the newlines were escaped */
    assert_int_equal(json_array_size(lines), 1);
    json_t *a = json_array_get(lines, 0);
    assert_string_equal(str_of(a, "requestId"), nasty);
    assert_string_equal(str_of(a, "route"), "x\n{\"forged\":true}");
    assert_string_equal(json_string_value(json_array_get(json_object_get(a, "roles"), 0)), "ro\"le\n");
    assert_true(json_is_null(json_array_get(json_object_get(a, "roles"), 1)));
    /* invalid UTF-8 (a stray byte, a truncated sequence, a surrogate) becomes U+FFFD */
    assert_string_equal(str_of(a, "keyId"), "bad\xEF\xBF\xBD\xEF\xBF\xBD(utf8\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD.");
    json_decref(lines);
}

static void file_mode_and_append(void **state)
{
    char path[1200];
    tmp_path(path, sizeof path, "mode.log");
    sv_audit *au = open_log(path, 10, 64);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    sv_audit_rec r = rec_id("first");
    sv_audit_write(au, &r);
    sv_audit_close(au);
    /* reopened: appended to, mode unchanged */
    au = open_log(path, 10, 64);
    r = rec_id("second");
    sv_audit_write(au, &r);
    sv_audit_close(au);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    json_t *lines = read_lines(path);
    assert_int_equal(json_array_size(lines), 2);
    assert_string_equal(str_of(json_array_get(lines, 0), "requestId"), "first");
    assert_string_equal(str_of(json_array_get(lines, 1), "requestId"), "second");
    json_decref(lines);
}

/* ---- concurrency and drops --------------------------------------------------- */

#define NTHREADS 8
#define PER_THREAD 10000

typedef struct {
    sv_audit *au;
    int id;
    _Atomic int64_t *refused;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    for (int i = 0; i < PER_THREAD; i++) {
        char id[32];
        snprintf(id, sizeof id, "%d-%d", w->id, i);
        sv_audit_rec r = rec_id(id);
        if (!sv_audit_write(w->au, &r))
            atomic_fetch_add(w->refused, 1);
    }
    return NULL;
}

static int64_t run_writers(sv_audit *au)
{
    _Atomic int64_t refused = 0;
    pthread_t th[NTHREADS];
    writer_arg args[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        args[t] = (writer_arg){au, t, &refused};
        assert_int_equal(pthread_create(&th[t], NULL, writer, &args[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    return atomic_load(&refused);
}

static void threads_all_land(void **state)
{
    char path[1200];
    tmp_path(path, sizeof path, "threads.log");
    sv_audit *au = open_log(path, 5, NTHREADS * PER_THREAD);
    assert_int_equal(run_writers(au), 0);
    assert_int_equal(sv_audit_dropped(au), 0);
    sv_audit_close(au);

    json_t *lines = read_lines(path);
    assert_int_equal(json_array_size(lines), NTHREADS * PER_THREAD);
    /* each record exactly once */
    char *seen = calloc(NTHREADS * PER_THREAD, 1);
    size_t i;
    json_t *v;
    json_array_foreach(lines, i, v) {
        int t = -1, n = -1;
        assert_int_equal(sscanf(str_of(v, "requestId"), "%d-%d", &t, &n), 2);
        assert_in_range(t, 0, NTHREADS - 1);
        assert_in_range(n, 0, PER_THREAD - 1);
        assert_int_equal(seen[t * PER_THREAD + n]++, 0);
    }
    free(seen);
    json_decref(lines);
}

static size_t count_lines(const char *path)
{
    char *data = NULL;
    size_t len = 0, n = 0;
    if (sv_read_file(path, &data, &len, NULL))
        fail_msg("read %s", path);
    for (size_t i = 0; i < len; i++)
        n += data[i] == '\n';
    free(data);
    return n;
}

static void small_queue_counts_drops(void **state)
{
    char path[1200];
    tmp_path(path, sizeof path, "small.log");
    sv_audit *au = open_log(path, 5, 64);
    int64_t refused = run_writers(au);
    assert_int_equal(sv_audit_dropped(au), refused);
    sv_audit_close(au);
    assert_int_equal(count_lines(path) + (size_t)refused, NTHREADS * PER_THREAD);
}

/* A FIFO nobody reads stands for a stalled disk: writes must not block, the
 * queue fills and drops are counted; once it drains, what was queued lands. */
typedef struct {
    int fd;
    size_t lines;
} fifo_reader;

static void *read_fifo(void *p)
{
    fifo_reader *r = p;
    char buf[65536];
    ssize_t n;
    while ((n = read(r->fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        for (ssize_t i = 0; i < n; i++)
            r->lines += buf[i] == '\n';
    return NULL;
}

static void stalled_disk_drops(void **state)
{
    char path[1200];
    tmp_path(path, sizeof path, "stall.fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    fifo_reader rd = {.fd = open(path, O_RDONLY | O_NONBLOCK)};
    assert_true(rd.fd >= 0);
    sv_audit *au = open_log(path, 5, 16);
    fcntl(rd.fd, F_SETFL, fcntl(rd.fd, F_GETFL) & ~O_NONBLOCK);
    char route[400];
    memset(route, 'r', sizeof route - 1);
    route[sizeof route - 1] = 0;
    int total = 20000, refused = 0; /* ~9 MB: far more than a pipe and one batch hold */
    for (int i = 0; i < total; i++) {
        sv_audit_rec r = rec_id("stall");
        r.route = route;
        refused += !sv_audit_write(au, &r);
    }
    assert_true(refused > 0);
    assert_int_equal(sv_audit_dropped(au), refused);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_fifo, &rd), 0);
    sv_audit_close(au);
    pthread_join(th, NULL);
    close(rd.fd);
    assert_int_equal(rd.lines, (size_t)(total - refused));
    unlink(path);
}

/* ---- rotation, close, errors ------------------------------------------------------ */

static void write_n(sv_audit *au, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf(id, sizeof id, "%d", i);
        sv_audit_rec r = rec_id(id);
        assert_true(sv_audit_write(au, &r));
    }
}

static void rotation(void **state)
{
    char path[1200], old[1300];
    tmp_path(path, sizeof path, "rot.log");
    snprintf(old, sizeof old, "%s.1", path);
    unlink(old);
    sv_audit *au = open_log(path, 60000, 1024);
    write_n(au, 0, 500);
    assert_int_equal(rename(path, old), 0);
    sv_err err = {0};
    assert_int_equal(sv_audit_reopen(au, &err), 0);
    write_n(au, 500, 800);
    sv_audit_close(au);

    json_t *a = read_lines(old), *b = read_lines(path);
    assert_int_equal(json_array_size(a), 500);
    assert_int_equal(json_array_size(b), 300);
    for (int i = 0; i < 500; i++)
        assert_int_equal(atoi(str_of(json_array_get(a, (size_t)i), "requestId")), i);
    for (int i = 0; i < 300; i++)
        assert_int_equal(atoi(str_of(json_array_get(b, (size_t)i), "requestId")), 500 + i);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    json_decref(a);
    json_decref(b);
}

/* Rotation while another thread writes: nothing lost, nothing twice, and
 * everything written after sv_audit_reopen returned is in the new file. */
typedef struct {
    sv_audit *au;
    _Atomic int next;
    _Atomic bool stop;
    _Atomic int refused;
} rot_writer;

static void *rot_write(void *p)
{
    rot_writer *w = p;
    while (!atomic_load(&w->stop)) {
        int i = atomic_load(&w->next);
        char id[32];
        snprintf(id, sizeof id, "%d", i);
        sv_audit_rec r = rec_id(id);
        if (!sv_audit_write(w->au, &r))
            atomic_fetch_add(&w->refused, 1);
        atomic_store(&w->next, i + 1);
        if (i % 64 == 0)
            sv_sleep_ms(1);
    }
    return NULL;
}

static void rotation_under_load(void **state)
{
    char path[1200], old[1300];
    tmp_path(path, sizeof path, "rotl.log");
    snprintf(old, sizeof old, "%s.1", path);
    unlink(old);
    rot_writer w = {.au = open_log(path, 1, 1 << 16)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, rot_write, &w), 0);
    while (atomic_load(&w.next) < 500)
        sv_sleep_ms(1);
    assert_int_equal(rename(path, old), 0);
    sv_err err = {0};
    assert_int_equal(sv_audit_reopen(w.au, &err), 0);
    int after = atomic_load(&w.next) + 1; /* the one being written may be either side */
    while (atomic_load(&w.next) < after + 500)
        sv_sleep_ms(1);
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    int total = atomic_load(&w.next);
    sv_audit_close(w.au);

    assert_int_equal(atomic_load(&w.refused), 0);
    assert_true(after < total);
    json_t *a = read_lines(old), *b = read_lines(path);
    assert_int_equal(json_array_size(a) + json_array_size(b), (size_t)total);
    int expect = 0; /* in order: the old file, then the new one */
    for (size_t i = 0; i < json_array_size(a); i++, expect++)
        assert_int_equal(atoi(str_of(json_array_get(a, i), "requestId")), expect);
    assert_true(expect <= after);
    for (size_t i = 0; i < json_array_size(b); i++, expect++)
        assert_int_equal(atoi(str_of(json_array_get(b, i), "requestId")), expect);
    json_decref(a);
    json_decref(b);
}

/* The writer is held up (a FIFO nobody reads yet) with thousands of records
 * queued behind it: close still delivers every one. */
static void close_flushes_queued(void **state)
{
    char path[1200];
    tmp_path(path, sizeof path, "close.fifo");
    assert_int_equal(mkfifo(path, 0600), 0);
    fifo_reader rd = {.fd = open(path, O_RDONLY | O_NONBLOCK)};
    assert_true(rd.fd >= 0);
    sv_audit *au = open_log(path, 3600 * 1000, 1 << 16);
    fcntl(rd.fd, F_SETFL, fcntl(rd.fd, F_GETFL) & ~O_NONBLOCK);
    char route[400];
    memset(route, 'r', sizeof route - 1);
    route[sizeof route - 1] = 0;
    for (int i = 0; i < 20000; i++) {
        sv_audit_rec r = rec_id("queued");
        r.route = route;
        assert_true(sv_audit_write(au, &r));
    }
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_fifo, &rd), 0);
    sv_audit_close(au);
    pthread_join(th, NULL);
    close(rd.fd);
    assert_int_equal(rd.lines, 20000);
    unlink(path);
    sv_audit_close(NULL);
    assert_int_equal(sv_audit_dropped(NULL), 0);
}

static void missing_directory(void **state)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/no/such/dir/audit.log", g_root);
    sv_audit *au = (sv_audit *)1;
    sv_err err = {0};
    assert_int_equal(sv_audit_open(path, 1000, &au, &err), SV_EIO);
    assert_null(au);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "directory does not exist"));
    assert_int_equal(sv_audit_open("", 1000, &au, &err), SV_EINVAL);
    assert_int_equal(sv_audit_open(path, -1, &au, &err), SV_EINVAL);
}

/* Reopen fails (the directory went away): the current file stays in use. */
static void reopen_failure_keeps_file(void **state)
{
    char dir[1200], dir2[1300], path[1300], moved[1400];
    snprintf(dir, sizeof dir, "%s/rdir", g_root);
    snprintf(dir2, sizeof dir2, "%s.gone", dir);
    sv_rmtree(dir, NULL);
    sv_rmtree(dir2, NULL);
    assert_int_equal(sv_mkdirs(dir, NULL), 0);
    snprintf(path, sizeof path, "%s/a.log", dir);
    snprintf(moved, sizeof moved, "%s/a.log", dir2);
    sv_audit *au = open_log(path, 10, 64);
    write_n(au, 0, 10);
    assert_int_equal(rename(dir, dir2), 0);
    sv_err err = {0};
    assert_int_equal(sv_audit_reopen(au, &err), SV_EIO);
    assert_non_null(strstr(err.msg, "directory does not exist"));
    write_n(au, 10, 20);
    sv_audit_close(au);
    assert_int_equal(count_lines(moved), 20);
}

/* A disk that refuses writes: one warning per episode, retries, no crash,
 * and close gives up (saying so) rather than hanging. */
static void write_errors(void **state)
{
    if (access("/dev/full", W_OK) != 0)
        skip();
    char logpath[1200];
    tmp_path(logpath, sizeof logpath, "stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    sv_audit *au = open_log("/dev/full", 10, 64);
    write_n(au, 0, 5);
    sv_sleep_ms(2300); /* the first attempt and two retries */
    assert_int_equal(sv_audit_dropped(au), 0); /* held, not dropped, while retrying */
    int refused = 0;
    for (int i = 0; i < 100; i++) {
        sv_audit_rec r = rec_id("more");
        refused += !sv_audit_write(au, &r);
        sv_sleep_ms(2); /* time enough for the writer to take them, were it to */
    }
    /* held: the failed batch (0 to 5 lines: 0 if the writer has not run yet on a loaded
     * machine) and a full queue of 64; memory does not grow */
    assert_in_range(refused, 105 - 69, 105 - 64);
    assert_int_equal(sv_audit_dropped(au), refused);
    int64_t t0 = sv_mono_ns();
    sv_audit_close(au);
    int64_t close_ms = (sv_mono_ns() - t0) / 1000000;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_true(close_ms < 30000); /* gives up rather than hangs (no timing claim: CI machines are slow) */

    char *log = NULL;
    size_t len = 0;
    assert_int_equal(sv_read_file(logpath, &log, &len, NULL), 0);
    int warnings = 0;
    for (char *p = log; (p = strstr(p, "audit log failing")); p++)
        warnings++;
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(log, "No space left on device"));
    assert_non_null(strstr(log, "closed with records unwritten"));
    char *rec = strstr(log, "records=");
    assert_non_null(rec);
    assert_int_equal(atoi(rec + 8), 105 - refused);
    free(log);
}

/* The file refuses writes (a link to /dev/full); the operator points the name
 * at a good file and reopens: what was held and what was queued lands there. */
static void rotation_after_write_errors(void **state)
{
    if (access("/dev/full", W_OK) != 0)
        skip();
    char link[1200], tmp[1300], real[1200];
    tmp_path(link, sizeof link, "flaky.log");
    tmp_path(real, sizeof real, "good.log");
    snprintf(tmp, sizeof tmp, "%s.new", link);
    unlink(tmp);
    assert_int_equal(symlink("/dev/full", link), 0);
    sv_audit *au = open_log(link, 10, 64);
    write_n(au, 0, 10);
    sv_sleep_ms(100); /* the writer has tried, and failed */
    assert_int_equal(symlink(real, tmp), 0);
    assert_int_equal(rename(tmp, link), 0);
    sv_err err = {0};
    assert_int_equal(sv_audit_reopen(au, &err), 0);
    write_n(au, 10, 20);
    sv_audit_close(au);
    json_t *lines = read_lines(real);
    assert_int_equal(json_array_size(lines), 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(atoi(str_of(json_array_get(lines, (size_t)i), "requestId")), i);
    json_decref(lines);
    unlink(link);
}

int main(void)
{
    const char *base = getenv("SV_TEST_TMP");
    snprintf(g_root, sizeof g_root, "%s/audit-%d", base && *base ? base : "/tmp", (int)getpid());
    sv_err err = {0};
    if (sv_mkdirs(g_root, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    sv_log_set_level(SV_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),          cmocka_unit_test(escaping),
        cmocka_unit_test(file_mode_and_append), cmocka_unit_test(threads_all_land),
        cmocka_unit_test(small_queue_counts_drops), cmocka_unit_test(stalled_disk_drops),
        cmocka_unit_test(rotation),            cmocka_unit_test(rotation_under_load),
        cmocka_unit_test(close_flushes_queued), cmocka_unit_test(missing_directory),
        cmocka_unit_test(reopen_failure_keeps_file), cmocka_unit_test(write_errors),
        cmocka_unit_test(rotation_after_write_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (rc == 0)
        sv_rmtree(g_root, NULL);
    return rc;
}
