#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "location_internal.h"

static void keys(void **state)
{
    sv_err err = {0};
    assert_int_equal(sv_location_check_key("blobs/ab/abcdef", &err), 0);
    assert_int_equal(sv_location_check_key("a b/ü.parquet", &err), 0);
    assert_int_equal(sv_location_check_key("", &err), SV_EINVAL);
    assert_int_equal(sv_location_check_key("/abs", &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "empty segment"));
    assert_int_equal(sv_location_check_key("a//b", &err), SV_EINVAL);
    assert_int_equal(sv_location_check_key("a/", &err), SV_EINVAL);
    assert_int_equal(sv_location_check_key("a/../b", &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, ".."));
    assert_int_equal(sv_location_check_key("..", &err), SV_EINVAL);
    assert_int_equal(sv_location_check_key("./a", &err), SV_EINVAL);
    assert_int_equal(sv_location_check_key("a/..b", &err), 0);
    assert_int_equal(sv_location_check_key("a\nb", &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "control byte"));
    assert_int_equal(sv_location_check_key("a\x7f", &err), SV_EINVAL);
    assert_int_equal(sv_location_check_key("x/.sv-tmp-1", &err), SV_EINVAL);
    char big[1100];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(sv_location_check_key(big, &err), SV_EINVAL);
    assert_int_equal(sv_loc_check_prefix("", &err), 0);
    assert_int_equal(sv_loc_check_prefix("blobs/", &err), 0);
    assert_int_equal(sv_loc_check_prefix("blobs/a", &err), 0);
    assert_int_equal(sv_loc_check_prefix("blobs//", &err), SV_EINVAL);
    assert_int_equal(sv_loc_check_prefix("../", &err), SV_EINVAL);
}

static void encoding(void **state)
{
    sv_buf b = {0};
    const char *k = "a b/ü+=&~._-x";
    assert_int_equal(sv_loc_uri_encode(&b, k, strlen(k), true), 0);
    assert_string_equal(sv_buf_cstr(&b), "a%20b/%C3%BC%2B%3D%26~._-x");
    sv_buf_reset(&b);
    assert_int_equal(sv_loc_uri_encode(&b, "a/b", 3, false), 0);
    assert_string_equal(sv_buf_cstr(&b), "a%2Fb");
    sv_buf_free(&b);
}

static void canonical_query(void **state)
{
    sv_buf b = {0};
    const char *p[] = {"prefix", "a b/", "list-type", "2", "continuation-token", "x+y=", "delimiter", "/"};
    assert_int_equal(sv_loc_canonical_query(&b, p, 4), 0);
    assert_string_equal(sv_buf_cstr(&b),
                        "continuation-token=x%2By%3D&delimiter=%2F&list-type=2&prefix=a%20b%2F");
    sv_buf_reset(&b);
    const char *q[] = {"uploads", NULL};
    assert_int_equal(sv_loc_canonical_query(&b, q, 1), 0);
    assert_string_equal(sv_buf_cstr(&b), "uploads=");
    sv_buf_reset(&b);
    const char *r[] = {"uploadId", "abc", "partNumber", "10"};
    assert_int_equal(sv_loc_canonical_query(&b, r, 2), 0);
    assert_string_equal(sv_buf_cstr(&b), "partNumber=10&uploadId=abc");
    sv_buf_free(&b);
}

static void xml_list(void **state)
{
    const char *doc =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>b</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>2</MaxKeys>"
        "<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken>"
        "<Contents><Key>p/b&amp;c</Key><LastModified>2026-11-21T16:18:15.123Z</LastModified>"
        "<ETag>&quot;abc&quot;</ETag><Size>42</Size><StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>p/a&#x3C;</Key><LastModified>2026-11-21T16:18:15Z</LastModified>"
        "<ETag>\"d-2\"</ETag><Size>0</Size></Contents>"
        "<CommonPrefixes><Prefix>p/ab/</Prefix></CommonPrefixes>"
        "</ListBucketResult>";
    sv_loc_list_page page;
    sv_err err = {0};
    assert_int_equal(sv_loc_parse_list_v2(doc, strlen(doc), &page, &err), 0);
    assert_true(page.truncated);
    assert_string_equal(page.next_token, "tok&1");
    assert_int_equal(page.n, 3);
    assert_string_equal(page.entries[0].key, "p/a<");
    assert_string_equal(page.entries[0].etag, "d-2");
    assert_string_equal(page.entries[1].key, "p/ab/");
    assert_true(page.entries[1].is_prefix);
    assert_string_equal(page.entries[2].key, "p/b&c");
    assert_int_equal(page.entries[2].size, 42);
    assert_string_equal(page.entries[2].etag, "abc");
    assert_int_equal(page.entries[2].mtime_ms, 1795277895123LL);
    sv_loc_list_page_free(&page);

    const char *empty = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
    assert_int_equal(sv_loc_parse_list_v2(empty, strlen(empty), &page, &err), 0);
    assert_int_equal(page.n, 0);
    assert_false(page.truncated);
    sv_loc_list_page_free(&page);
    assert_int_equal(sv_loc_parse_list_v2("<html/>", 7, &page, &err), SV_EPARSE);
}

static void xml_errors(void **state)
{
    const char *ok = "<?xml version=\"1.0\"?><CompleteMultipartUploadResult><Location>x</Location>"
                     "<ETag>\"e-2\"</ETag></CompleteMultipartUploadResult>";
    char code[64], msg[256];
    assert_false(sv_loc_xml_error(ok, strlen(ok), code, sizeof code, msg, sizeof msg));
    const char *bad = "<?xml version=\"1.0\"?>\n\n<Error><Code>InternalError</Code>"
                      "<Message>We encountered an internal error. Please try again.</Message>"
                      "<RequestId>1</RequestId></Error>";
    assert_true(sv_loc_xml_error(bad, strlen(bad), code, sizeof code, msg, sizeof msg));
    assert_string_equal(code, "InternalError");
    assert_string_equal(msg, "We encountered an internal error. Please try again.");
    /* A tag name that only shares a prefix must not match. */
    const char *tricky = "<Errors><Code>X</Code></Errors>";
    assert_false(sv_loc_xml_error(tricky, strlen(tricky), code, sizeof code, msg, sizeof msg));
    char id[64];
    const char *init = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                       "<UploadId>abc-123</UploadId></InitiateMultipartUploadResult>";
    assert_true(sv_loc_xml_get(init, strlen(init), "UploadId", id, sizeof id));
    assert_string_equal(id, "abc-123");
    sv_buf b = {0};
    assert_int_equal(sv_loc_xml_text(&b, "a&lt;&gt;&quot;&apos;&#233;", 27), 0);
    assert_string_equal((char *)b.data, "a<>\"'\xc3\xa9");
    sv_buf_reset(&b);
    assert_int_equal(sv_loc_xml_text(&b, "a&bogus;", 8), SV_EPARSE);
    sv_buf_free(&b);
}

static void backoff(void **state)
{
    for (uint32_t r = 0; r < 1000; r += 7) {
        int64_t d0 = sv_loc_backoff_ms(0, 100, 10000, r);
        assert_true(d0 >= 50 && d0 <= 100);
        int64_t d3 = sv_loc_backoff_ms(3, 100, 10000, r * 2654435761u);
        assert_true(d3 >= 400 && d3 <= 800);
        int64_t d20 = sv_loc_backoff_ms(20, 100, 10000, r);
        assert_true(d20 >= 5000 && d20 <= 10000);
    }
    assert_int_equal(sv_loc_parse_iso8601("1970-01-01T00:00:01.5Z"), 1500);
    assert_int_equal(sv_loc_parse_iso8601("garbage"), -1);
    char hex[65];
    sv_loc_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static int buf_sink(void *ctx, const void *data, size_t len)
{
    return sv_buf_append(ctx, data, len);
}

/* ---- file:// driver --------------------------------------------------------- */

static char root[512];

static int setup_dir(void **state)
{
    const char *base = getenv("SV_TEST_TMP");
    if (!base)
        base = "/tmp";
    sv_mkdirs(base, NULL);
    snprintf(root, sizeof root, "%s/location-unit-%d", base, (int)getpid());
    sv_rmtree(root, NULL);
    return 0;
}

static int teardown_dir(void **state)
{
    sv_rmtree(root, NULL);
    return 0;
}

static sv_location *open_root(void)
{
    char url[600];
    snprintf(url, sizeof url, "file://%s", root);
    sv_location *loc = NULL;
    sv_err err = {0};
    sv_location_opts o = {.no_fsync = false};
    assert_int_equal(sv_location_open(url, &o, &loc, &err), 0);
    return loc;
}

typedef struct names { char buf[4096]; int n; } names;

static int collect(void *ctx, const sv_location_entry *e)
{
    names *c = ctx;
    size_t l = strlen(c->buf);
    snprintf(c->buf + l, sizeof c->buf - l, "%s%s", c->n++ ? "," : "", e->key);
    return 0;
}

static void delete_prefix(void **state)
{
    sv_location *loc = open_root();
    sv_err err = {0};
    char key[64];
    for (int i = 0; i < 1203; i++) { /* more than one delete batch */
        snprintf(key, sizeof key, "dp/x/%04d", i);
        assert_int_equal(sv_location_put(loc, key, "v", 1, &err), 0);
    }
    assert_int_equal(sv_location_put(loc, "dp/xy/keep", "k", 1, &err), 0);
    assert_int_equal(sv_location_put(loc, "dp/keep", "k", 1, &err), 0);
    assert_int_equal(sv_location_delete_prefix(loc, "dp/x", &err), SV_EINVAL); /* no trailing slash */
    assert_int_equal(sv_location_delete_prefix(loc, "dp/x/", &err), 0);
    names c = {{0}, 0};
    assert_int_equal(sv_location_list(loc, "dp/", NULL, NULL, collect, &c, &err), 0);
    assert_string_equal(c.buf, "dp/keep,dp/xy/keep");
    assert_int_equal(sv_location_delete_prefix(loc, "dp/x/", &err), 0); /* nothing left: fine */
    assert_int_equal(sv_location_delete_prefix(loc, "dp/", &err), 0);
    c = (names){{0}, 0};
    assert_int_equal(sv_location_list(loc, "dp/", NULL, NULL, collect, &c, &err), 0);
    assert_int_equal(c.n, 0);
    sv_location_close(loc);
}

static void file_roundtrip(void **state)
{
    sv_location *loc = open_root();
    sv_err err = {0};
    assert_string_equal(sv_location_scheme(loc), "file");
    assert_non_null(strstr(sv_location_describe(loc), "file:///"));
    assert_int_equal(sv_location_put(loc, "a/b/c.txt", "hello world", 11, &err), 0);
    sv_buf b = {0};
    assert_int_equal(sv_location_get_buf(loc, "a/b/c.txt", &b, &err), 0);
    assert_int_equal(b.len, 11);
    assert_memory_equal(b.data, "hello world", 11);
    sv_buf_reset(&b);
    /* ranged */
    assert_int_equal(sv_location_get(loc, "a/b/c.txt", 6, 3, buf_sink, &b, &err), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "wor", 3);
    sv_buf_reset(&b);
    assert_int_equal(sv_location_get(loc, "a/b/c.txt", 6, 100, buf_sink, &b, &err), 0);
    assert_int_equal(b.len, 5);
    assert_int_equal(sv_location_get(loc, "a/b/c.txt", 12, -1, buf_sink, &b, &err), SV_EINVAL);
    assert_int_equal(sv_location_get(loc, "nope", 0, -1, buf_sink, &b, &err), SV_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nope"));
    sv_buf_free(&b);

    sv_location_info info;
    assert_int_equal(sv_location_head(loc, "a/b/c.txt", &info, &err), 0);
    assert_int_equal(info.size, 11);
    assert_true(info.mtime_ms > 0);
    assert_true(info.etag[0] != 0);
    assert_int_equal(sv_location_head(loc, "a/b", &info, &err), SV_ENOTFOUND);

    /* streaming writer: invisible until commit; abort leaves nothing */
    sv_location_writer *w;
    assert_int_equal(sv_location_writer_open(loc, "w/obj", &w, &err), 0);
    assert_int_equal(sv_location_writer_write(w, "abc", 3, &err), 0);
    assert_int_equal(sv_location_head(loc, "w/obj", &info, &err), SV_ENOTFOUND);
    assert_int_equal(sv_location_writer_commit(w, &err), 0);
    assert_int_equal(sv_location_head(loc, "w/obj", &info, &err), 0);
    assert_int_equal(sv_location_writer_open(loc, "w/aborted", &w, &err), 0);
    assert_int_equal(sv_location_writer_write(w, "abc", 3, &err), 0);
    sv_location_writer_abort(w);
    assert_int_equal(sv_location_head(loc, "w/aborted", &info, &err), SV_ENOTFOUND);

    /* create-if-absent is atomic on file:// */
    assert_int_equal(sv_location_create_if_absent(loc, "lock/x", "1", 1, &err), 0);
    assert_int_equal(sv_location_create_if_absent(loc, "lock/x", "2", 1, &err), SV_EEXIST);
    assert_non_null(strstr(err.msg, "already exists"));

    /* copy = hard link or reflink; replacing the source later leaves the copy */
    assert_int_equal(sv_location_copy(loc, "a/b/c.txt", "copy/c", &err), 0);
    assert_int_equal(sv_location_put(loc, "a/b/c.txt", "changed", 7, &err), 0);
    sv_buf c = {0};
    assert_int_equal(sv_location_get_buf(loc, "copy/c", &c, &err), 0);
    assert_int_equal(c.len, 11);
    sv_buf_free(&c);
    assert_int_equal(sv_location_copy(loc, "missing", "copy/d", &err), SV_ENOTFOUND);

    /* put_file hard-links */
    char local[700];
    snprintf(local, sizeof local, "%s-local.sst", root);
    assert_int_equal(sv_write_file_atomic(local, "sst-bytes", 9, &err), 0);
    assert_int_equal(sv_location_put_file(loc, "blobs/ab/abcd", local, &err), 0);
    struct stat st;
    assert_int_equal(stat(local, &st), 0);
    assert_int_equal(st.st_nlink, 2);
    /* Putting the very same file again must not leave a temp link behind. */
    assert_int_equal(sv_location_put_file(loc, "blobs/ab/abcd", local, &err), 0);
    assert_int_equal(stat(local, &st), 0);
    assert_int_equal(st.st_nlink, 2);
    char out[700];
    snprintf(out, sizeof out, "%s-out.sst", root);
    assert_int_equal(sv_location_get_to_file(loc, "blobs/ab/abcd", out, &err), 0);
    char *data;
    size_t dl;
    assert_int_equal(sv_read_file(out, &data, &dl, &err), 0);
    assert_int_equal(dl, 9);
    free(data);
    unlink(local);
    unlink(out);

    /* list: sorted, prefix, delimiter, start_after */
    names n = {0};
    assert_int_equal(sv_location_list(loc, "", NULL, NULL, collect, &n, &err), 0);
    assert_string_equal(n.buf, "a/b/c.txt,blobs/ab/abcd,copy/c,lock/x,w/obj");
    memset(&n, 0, sizeof n);
    assert_int_equal(sv_location_list(loc, "", "/", NULL, collect, &n, &err), 0);
    assert_string_equal(n.buf, "a/,blobs/,copy/,lock/,w/");
    memset(&n, 0, sizeof n);
    assert_int_equal(sv_location_list(loc, "a/", "/", NULL, collect, &n, &err), 0);
    assert_string_equal(n.buf, "a/b/");
    memset(&n, 0, sizeof n);
    assert_int_equal(sv_location_list(loc, "b", NULL, NULL, collect, &n, &err), 0);
    assert_string_equal(n.buf, "blobs/ab/abcd");
    memset(&n, 0, sizeof n);
    assert_int_equal(sv_location_list(loc, "", NULL, "copy/c", collect, &n, &err), 0);
    assert_string_equal(n.buf, "lock/x,w/obj");
    memset(&n, 0, sizeof n);
    assert_int_equal(sv_location_list(loc, "", "/", "blobs/ab/a", collect, &n, &err), 0);
    assert_string_equal(n.buf, "blobs/,copy/,lock/,w/");
    memset(&n, 0, sizeof n);
    assert_int_equal(sv_location_list(loc, "", "/", "blobs/ab/abcd", collect, &n, &err), 0);
    assert_string_equal(n.buf, "copy/,lock/,w/");

    /* a key cannot be both object and prefix on file:// */
    assert_int_equal(sv_location_put(loc, "w/obj/sub", "x", 1, &err), SV_ECONFLICT);

    /* delete: idempotent, prunes empty directories; batch */
    assert_int_equal(sv_location_delete(loc, "a/b/c.txt", &err), 0);
    assert_int_equal(sv_location_delete(loc, "a/b/c.txt", &err), 0);
    const char *ks[] = {"copy/c", "lock/x", "w/obj", "never"};
    assert_int_equal(sv_location_delete_many(loc, ks, 4, &err), 0);
    memset(&n, 0, sizeof n);
    assert_int_equal(sv_location_list(loc, "", "/", NULL, collect, &n, &err), 0);
    assert_string_equal(n.buf, "blobs/");
    assert_int_equal(sv_location_delete(loc, "../etc/passwd", &err), SV_EINVAL);
    sv_location_close(loc);
}

/* Many threads on one location: writers replace one key while readers read
 * it; a reader must always see one writer's complete content. */
typedef struct race { sv_location *loc; int id; int bad; } race;

static void *race_writer(void *arg)
{
    race *r = arg;
    char buf[8192];
    memset(buf, 'A' + r->id, sizeof buf);
    for (int i = 0; i < 40; i++) {
        sv_err err = {0};
        if (sv_location_put(r->loc, "race/key", buf, sizeof buf, &err))
            r->bad++;
        char k[32];
        snprintf(k, sizeof k, "race/own-%d-%d", r->id, i);
        if (sv_location_put(r->loc, k, buf, 10, &err))
            r->bad++;
    }
    return NULL;
}

static void *race_reader(void *arg)
{
    race *r = arg;
    for (int i = 0; i < 80; i++) {
        sv_buf b = {0};
        sv_err err = {0};
        int rc = sv_location_get_buf(r->loc, "race/key", &b, &err);
        if (rc == 0) {
            if (b.len != 8192)
                r->bad++;
            for (size_t j = 1; j < b.len; j++)
                if (b.data[j] != b.data[0]) {
                    r->bad++;
                    break;
                }
        } else if (rc != SV_ENOTFOUND) {
            r->bad++;
        }
        sv_buf_free(&b);
    }
    return NULL;
}

static int count_fn(void *ctx, const sv_location_entry *e)
{
    (*(int *)ctx)++;
    return 0;
}

static void file_threads(void **state)
{
    sv_location *loc = open_root();
    pthread_t th[8];
    race rs[8];
    for (int i = 0; i < 8; i++) {
        rs[i] = (race){.loc = loc, .id = i};
        pthread_create(&th[i], NULL, i < 4 ? race_writer : race_reader, &rs[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rs[i].bad, 0);
    }
    int n = 0;
    sv_err err = {0};
    assert_int_equal(sv_location_list(loc, "race/", NULL, NULL, count_fn, &n, &err), 0);
    assert_int_equal(n, 1 + 4 * 40); /* no temp files listed */
    sv_location_close(loc);
}

static void bad_urls(void **state)
{
    sv_location *loc;
    sv_err err = {0};
    assert_int_equal(sv_location_open("ftp://x", NULL, &loc, &err), SV_EINVAL);
    assert_non_null(strstr(err.msg, "unsupported scheme"));
    assert_int_equal(sv_location_open("file://host/x", NULL, &loc, &err), SV_EINVAL);
    assert_int_equal(sv_location_open("s3://B_ad/x", NULL, &loc, &err), SV_EINVAL);
    assert_int_equal(sv_location_open("s3://bucket/../x", NULL, &loc, &err), SV_EINVAL);
    sv_location_opts o = {.endpoint = "ftp://x"};
    assert_int_equal(sv_location_open("s3://bucket/x", &o, &loc, &err), SV_EINVAL);
    sv_location_opts o2 = {.endpoint = "http://127.0.0.1:9/", .region = "eu-west-1",
                           .access_key = "AK", .secret_key = "SK"};
    assert_int_equal(sv_location_open("s3://bucket/pre/fix/", &o2, &loc, &err), 0);
    assert_string_equal(sv_location_describe(loc),
                        "s3://bucket/pre/fix (endpoint http://127.0.0.1:9, region eu-west-1)");
    assert_null(strstr(sv_location_describe(loc), "SK"));
    sv_location_close(loc);
}

/* ---- fsync failures and the local fast path ------------------------------------ */

/* This executable's fsync replaces libc's for the statically linked driver:
 * with fail_fsync set it fails as a dying disk does. */
static volatile int fail_fsync;

int fsync(int fd)
{
    if (fail_fsync) {
        errno = EIO;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

static void file_put_file_fsync_fails(void **state)
{
    sv_location *loc = open_root();
    sv_err err = {0};
    char src[700];
    snprintf(src, sizeof src, "%s/src.bin", root);
    assert_int_equal(sv_write_file_atomic(src, "payload", 7, &err), 0);
    fail_fsync = 1;
    int rc = sv_location_put_file(loc, "k/put", src, &err);
    fail_fsync = 0;
    assert_int_equal(rc, SV_EIO);
    assert_non_null(strstr(err.msg, "fsync"));
    sv_location_info info;
    assert_int_equal(sv_location_head(loc, "k/put", &info, NULL), SV_ENOTFOUND); /* nothing published */
    assert_int_equal(sv_location_put_file(loc, "k/put", src, &err), 0);
    sv_location_close(loc);
}

static void file_link_to_file(void **state)
{
    sv_location *loc = open_root();
    sv_err err = {0};
    assert_int_equal(sv_location_put(loc, "blobs/ab/obj", "immutable bytes", 15, &err), 0);
    char local[700], stored[700];
    snprintf(local, sizeof local, "%s/local.sst", root);
    snprintf(stored, sizeof stored, "%s/blobs/ab/obj", root);
    assert_int_equal(sv_write_file_atomic(local, "old", 3, &err), 0); /* replaced */
    assert_int_equal(sv_location_link_to_file(loc, "blobs/ab/obj", local, &err), 0);
    struct stat a, b;
    assert_int_equal(stat(local, &a), 0);
    assert_int_equal(stat(stored, &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev); /* a link, no copy */
    assert_int_equal(a.st_size, 15);
    assert_int_equal(sv_location_link_to_file(loc, "blobs/ab/none", local, &err), SV_ENOTFOUND);
    assert_int_equal(stat(local, &a), 0); /* untouched by the failed call */
    assert_int_equal(a.st_ino, b.st_ino);
    assert_int_equal(sv_location_link_to_file(loc, "../x", local, &err), SV_EINVAL);
    sv_location_close(loc);
}

/* sv_location_read: exact ranges straight into the caller's buffer; a
 * range past the end and a missing object are errors, never short reads. */
static void file_read(void **state)
{
    sv_location *loc = open_root();
    sv_err err = {0};
    char data[5000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7);
    assert_int_equal(sv_location_put(loc, "r/obj", data, sizeof data, &err), 0);
    char got[1200];
    assert_int_equal(sv_location_read(loc, "r/obj", 3000, got, sizeof got, &err), 0);
    assert_memory_equal(got, data + 3000, sizeof got);
    assert_int_equal(sv_location_read(loc, "r/obj", 0, got, 0, &err), 0);
    assert_int_equal(sv_location_read(loc, "r/obj", 4500, got, 600, &err), SV_EIO);
    assert_non_null(strstr(err.msg, "shorter"));
    assert_int_equal(sv_location_read(loc, "r/none", 0, got, 10, &err), SV_ENOTFOUND);
    assert_int_equal(sv_location_read(loc, "../escape", 0, got, 10, &err), SV_EINVAL);
    sv_location_close(loc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys),
        cmocka_unit_test(encoding),
        cmocka_unit_test(canonical_query),
        cmocka_unit_test(xml_list),
        cmocka_unit_test(xml_errors),
        cmocka_unit_test(backoff),
        cmocka_unit_test_setup_teardown(file_roundtrip, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(file_threads, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(file_put_file_fsync_fails, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(file_link_to_file, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(file_read, setup_dir, teardown_dir),
        cmocka_unit_test(bad_urls),
        cmocka_unit_test(delete_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
