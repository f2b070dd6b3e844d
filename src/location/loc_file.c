/* file:// driver: a directory on a local filesystem. Objects are regular
 * files at <root>/<key>; writes go to "<dir>/.sv-tmp-<uuid>", are fsynced and
 * renamed, then the directory is fsynced, so readers never see half a file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include "location_internal.h"

typedef struct file_loc {
    sv_location base;
    char *root; /* absolute, no trailing slash */
} file_loc;

typedef struct file_writer {
    sv_location_writer base;
    int fd;
    char *tmp;   /* temp path */
    char *path;  /* final path */
} file_writer;

#define F(loc) ((file_loc *)(loc))

static char *key_path(sv_location *loc, const char *key)
{
    sv_buf b = {0};
    if (sv_buf_printf(&b, "%s/%s", F(loc)->root, key)) {
        sv_buf_free(&b);
        return NULL;
    }
    return sv_buf_cstr(&b);
}

static char *dir_of(const char *path)
{
    char *d = strdup(path);
    if (d) {
        char *s = strrchr(d, '/');
        if (s && s != d)
            *s = 0;
    }
    return d;
}

static char *tmp_path_in(const char *final_path)
{
    char *d = dir_of(final_path);
    if (!d)
        return NULL;
    sv_uuid u;
    sv_uuid_v4(&u);
    char us[37];
    sv_uuid_format(&u, us);
    sv_buf b = {0};
    int rc = sv_buf_printf(&b, "%s/.sv-tmp-%s", d, us);
    free(d);
    if (rc) {
        sv_buf_free(&b);
        return NULL;
    }
    return sv_buf_cstr(&b);
}

static int errno_code(int e)
{
    switch (e) {
    case ENOENT: return SV_ENOTFOUND;
    case EACCES: case EPERM: case EROFS: return SV_EDENIED;
    case ENOTDIR: case EISDIR: case EEXIST: return SV_ECONFLICT;
    case ENOSPC: case EDQUOT: return SV_EIO;
    default: return SV_EIO;
    }
}

static int fail_errno(sv_location *loc, sv_err *err, int e, const char *op, const char *key,
                      const char *what)
{
    int code = errno_code(e);
    if (e == ENOTDIR || e == EISDIR)
        return sv_fail(err, code,
                       "%s %s at %s: %s: %s (a key cannot be both an object and a prefix of another key "
                       "on file://)", op, key, loc->describe, what, strerror(e));
    return sv_fail(err, code, "%s %s at %s: %s: %s", op, key, loc->describe, what, strerror(e));
}

/* Creates the parent directories of path and a fresh temp file next to it.
 * Retries because a concurrent delete may rmdir an empty parent in between. */
static int open_tmp(sv_location *loc, const char *op, const char *key, const char *path,
                    char **tmp_out, int *fd_out, sv_err *err)
{
    char *dir = dir_of(path);
    if (!dir)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        sv_err e2 = {0};
        if (sv_mkdirs(dir, &e2)) {
            rc = sv_fail(err, errno == ENOTDIR || errno == EEXIST ? SV_ECONFLICT : SV_EIO,
                         "%s %s at %s: %s (a key cannot be both an object and a prefix of another key on "
                         "file://)", op, key, loc->describe, e2.msg);
            break;
        }
        char *tmp = tmp_path_in(path);
        if (!tmp) {
            rc = sv_fail(err, SV_ENOMEM, "out of memory");
            break;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            *tmp_out = tmp;
            *fd_out = fd;
            free(dir);
            return 0;
        }
        int e = errno;
        free(tmp);
        if (e != ENOENT || attempt == 4) {
            rc = fail_errno(loc, err, e, op, key, "cannot create a temporary file");
            break;
        }
    }
    free(dir);
    return rc;
}

static int sync_parent(sv_location *loc, const char *path, sv_err *err)
{
    if (loc->o.no_fsync)
        return 0;
    char *d = dir_of(path);
    if (!d)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = sv_fsync_dir(d, err);
    free(d);
    return rc;
}

/* Removes now-empty parent directories of path up to the root, so deleted
 * prefixes vanish from listings as they do on S3. */
static void prune_dirs(sv_location *loc, const char *path)
{
    char *d = dir_of(path);
    if (!d)
        return;
    size_t rl = strlen(F(loc)->root);
    while (strlen(d) > rl) {
        if (rmdir(d) != 0)
            break;
        char *s = strrchr(d, '/');
        if (!s)
            break;
        *s = 0;
    }
    free(d);
}

/* ---- writer --------------------------------------------------------------- */

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void fw_free(file_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp)
        unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    free(w->base.key);
    free(w);
}

static int fw_write(sv_location_writer *bw, const void *data, size_t len, sv_err *err)
{
    file_writer *w = (file_writer *)bw;
    if (write_all(w->fd, data, len))
        return fail_errno(bw->loc, err, errno, "write", bw->key, "write to temporary file");
    return 0;
}

/* fsync + close + (rename or link) + fsync dir. link is used for
 * create-if-absent: it fails with EEXIST instead of replacing. */
static int publish(sv_location *loc, const char *op, const char *key, int *fd, const char *tmp,
                   const char *path, bool exclusive, sv_err *err)
{
    if (!loc->o.no_fsync && fsync(*fd))
        return fail_errno(loc, err, errno, op, key, "fsync");
    int c = close(*fd);
    *fd = -1;
    if (c)
        return fail_errno(loc, err, errno, op, key, "close");
    if (exclusive) {
        if (link(tmp, path)) {
            if (errno == EEXIST)
                return sv_fail(err, SV_EEXIST, "%s %s at %s: the object already exists", op, key,
                               loc->describe);
            return fail_errno(loc, err, errno, op, key, "link into place");
        }
        unlink(tmp);
    } else if (rename(tmp, path)) {
        return fail_errno(loc, err, errno, op, key, "rename into place");
    }
    return sync_parent(loc, path, err);
}

static int fw_commit(sv_location_writer *bw, sv_err *err)
{
    file_writer *w = (file_writer *)bw;
    int rc = publish(bw->loc, "write", bw->key, &w->fd, w->tmp, w->path, false, err);
    if (rc == 0) {
        free(w->tmp);
        w->tmp = NULL; /* renamed: nothing to unlink */
    }
    fw_free(w);
    return rc;
}

static void fw_abort(sv_location_writer *bw) { fw_free((file_writer *)bw); }

static const sv_loc_writer_ops fw_ops = {fw_write, fw_commit, fw_abort};

static int f_writer_open(sv_location *loc, const char *key, sv_location_writer **out, sv_err *err)
{
    file_writer *w = calloc(1, sizeof *w);
    if (!w)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    w->fd = -1;
    w->base.ops = &fw_ops;
    w->base.loc = loc;
    w->base.key = strdup(key);
    w->path = key_path(loc, key);
    if (!w->base.key || !w->path) {
        fw_free(w);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    int rc = open_tmp(loc, "write", key, w->path, &w->tmp, &w->fd, err);
    if (rc) {
        fw_free(w);
        return rc;
    }
    *out = &w->base;
    return 0;
}

/* ---- copy helpers ------------------------------------------------------- */

/* Copies src_fd into dst_fd: reflink if the filesystem can, else
 * copy_file_range (in-kernel, may also reflink), else read/write. */
static int copy_fd(int src_fd, int dst_fd, int64_t size)
{
    if (ioctl(dst_fd, FICLONE, src_fd) == 0)
        return 0;
    int64_t left = size;
    bool fallback = false;
    while (left > 0 && !fallback) {
        ssize_t n = copy_file_range(src_fd, NULL, dst_fd, NULL, (size_t)(left > (1 << 30) ? (1 << 30) : left), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
                if (left != size)
                    return -1; /* partial progress, then refusal: give up */
                fallback = true;
                break;
            }
            return -1;
        }
        if (n == 0)
            break;
        left -= n;
    }
    if (!fallback)
        return left == 0 ? 0 : (errno = EIO, -1);
    static __thread char buf[1 << 16];
    for (;;) {
        ssize_t n = read(src_fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            return 0;
        if (write_all(dst_fd, buf, (size_t)n))
            return -1;
    }
}

/* Places the file at src as key: hard link when possible, else a copy. */
static int place_file(sv_location *loc, const char *op, const char *key, const char *src,
                      bool src_is_object, sv_err *err)
{
    char *path = key_path(loc, key);
    if (!path)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int sfd = open(src, O_RDONLY | O_CLOEXEC);
    if (sfd < 0) {
        int e = errno;
        free(path);
        if (e == ENOENT)
            return sv_fail(err, SV_ENOTFOUND, "%s %s at %s: source %s does not exist", op, key,
                           loc->describe, src_is_object ? "object" : src);
        return fail_errno(loc, err, e, op, key, src);
    }
    struct stat st;
    if (fstat(sfd, &st) || !S_ISREG(st.st_mode)) {
        close(sfd);
        free(path);
        return sv_fail(err, src_is_object ? SV_ENOTFOUND : SV_EINVAL, "%s %s at %s: source %s is not a regular file",
                       op, key, loc->describe, src);
    }
    /* The caller's file may never have been synced; a link would publish
     * whatever is still only in the page cache. */
    if (!src_is_object && !loc->o.no_fsync && fsync(sfd)) {
        int e = errno;
        close(sfd);
        free(path);
        return fail_errno(loc, err, e, op, key, "fsync of the source file");
    }
    char *tmp = NULL;
    int fd = -1;
    int rc = open_tmp(loc, op, key, path, &tmp, &fd, err);
    if (rc) {
        close(sfd);
        free(path);
        return rc;
    }
    close(fd);
    fd = -1;
    unlink(tmp);
    if (link(src, tmp) == 0) {
        close(sfd);
        if (rename(tmp, path)) {
            rc = fail_errno(loc, err, errno, op, key, "rename into place");
        } else {
            rc = sync_parent(loc, path, err);
        }
        /* rename() between two links of one inode (the key already holds
         * this very file) succeeds without removing tmp. */
        unlink(tmp);
        free(tmp);
        free(path);
        return rc;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = fail_errno(loc, err, errno, op, key, "cannot create a temporary file");
    } else if (copy_fd(sfd, fd, st.st_size)) {
        rc = fail_errno(loc, err, errno, op, key, "copy");
    } else {
        rc = publish(loc, op, key, &fd, tmp, path, false, err);
    }
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    close(sfd);
    free(tmp);
    free(path);
    return rc;
}

static int stat_object(sv_location *loc, const char *key, const char *what, struct stat *st, sv_err *err);

static int f_put_file(sv_location *loc, const char *key, const char *local, sv_err *err)
{
    return place_file(loc, "put_file", key, local, false, err);
}

static int f_copy(sv_location *loc, const char *src, const char *dst, sv_err *err)
{
    struct stat st;
    int orc = stat_object(loc, src, "copy", &st, err);
    if (orc)
        return orc;
    char *sp = key_path(loc, src);
    if (!sp)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = place_file(loc, "copy", dst, sp, true, err);
    if (rc == SV_ENOTFOUND && err)
        sv_fail(err, rc, "copy %s -> %s at %s: source object does not exist", src, dst, loc->describe);
    free(sp);
    return rc;
}

static int f_create_if_absent(sv_location *loc, const char *key, const void *data, size_t len, sv_err *err)
{
    char *path = key_path(loc, key);
    if (!path)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    char *tmp = NULL;
    int fd = -1;
    int rc = open_tmp(loc, "create_if_absent", key, path, &tmp, &fd, err);
    if (rc == 0) {
        if (write_all(fd, data, len))
            rc = fail_errno(loc, err, errno, "create_if_absent", key, "write");
        else
            rc = publish(loc, "create_if_absent", key, &fd, tmp, path, true, err);
        if (fd >= 0)
            close(fd);
        unlink(tmp);
        free(tmp);
    }
    free(path);
    return rc;
}

/* ---- reading ------------------------------------------------------------- */

static void fill_info(const struct stat *st, sv_location_info *info)
{
    info->size = st->st_size;
    info->mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
    snprintf(info->etag, sizeof info->etag, "%llx-%llx-%llx", (unsigned long long)st->st_ino,
             (unsigned long long)st->st_size,
             (unsigned long long)st->st_mtim.tv_sec * 1000000000ull + (unsigned long long)st->st_mtim.tv_nsec);
}

/* Opens key beneath the root for reading without following a symbolic
 * link anywhere below the root (the root itself was resolved when the
 * location opened): a link placed inside the root would otherwise lead
 * reads, lists and imports to files outside it. Keys are already checked
 * (location.c: no empty, "." or ".." segments). The last component is
 * opened O_NONBLOCK, so a FIFO does not hang the open (fstat then refuses
 * it). -1 with errno: ELOOP for a link on the way. */
static int open_beneath_root(const char *root, const char *key, bool dir)
{
    int dfd = open(root[0] ? root : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || !*key)
        return dfd;
    for (const char *p = key;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char comp[NAME_MAX + 1];
        if (n == 0 || n > NAME_MAX) {
            close(dfd);
            errno = n ? ENAMETOOLONG : ENOENT;
            return -1;
        }
        memcpy(comp, p, n);
        comp[n] = 0;
        int fd = openat(dfd, comp, (slash || dir ? O_DIRECTORY : O_NONBLOCK) | O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        if (fd < 0 && (slash || dir) && e == ENOTDIR) {
            /* O_DIRECTORY | O_NOFOLLOW on a link says ENOTDIR: tell links apart */
            struct stat ls;
            if (fstatat(dfd, comp, &ls, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(ls.st_mode))
                e = ELOOP;
        }
        close(dfd);
        if (fd < 0) {
            errno = e;
            return -1;
        }
        if (!slash || !slash[1])
            return fd;
        dfd = fd;
        p = slash + 1;
    }
}

static int open_beneath(sv_location *loc, const char *key) { return open_beneath_root(F(loc)->root, key, false); }

/* Opens key's file for reading (a regular file) into *fd, *st. */
static int open_object(sv_location *loc, const char *key, const char *what, int *fd, struct stat *st, sv_err *err)
{
    *fd = open_beneath(loc, key);
    int e = errno;
    if (*fd < 0 || fstat(*fd, st) || !S_ISREG(st->st_mode)) {
        bool opened = *fd >= 0;
        if (opened)
            close(*fd);
        *fd = -1;
        if (!opened && e == ELOOP)
            return sv_fail(err, SV_ENOTFOUND, "%s %s at %s: the path is or passes a symbolic link, which this "
                           "backend does not follow (place the file itself under the root)", what, key,
                           loc->describe);
        if (!opened && e != ENOENT && e != ENOTDIR && e != EISDIR)
            return fail_errno(loc, err, e, what, key, "open");
        return sv_fail(err, SV_ENOTFOUND, "%s %s at %s: no such object", what, key, loc->describe);
    }
    return 0;
}

/* open_object's checks, closed again: *st of a regular file under the root. */
static int stat_object(sv_location *loc, const char *key, const char *what, struct stat *st, sv_err *err)
{
    int fd;
    int rc = open_object(loc, key, what, &fd, st, err);
    if (rc == 0)
        close(fd);
    return rc;
}

static int f_head(sv_location *loc, const char *key, sv_location_info *info, sv_err *err)
{
    struct stat st;
    int rc = stat_object(loc, key, "head", &st, err);
    if (rc == 0)
        fill_info(&st, info);
    return rc;
}

static int f_read_at(sv_location *loc, const char *key, int64_t off, void *buf, size_t len, sv_err *err)
{
    int fd;
    struct stat st;
    int orc = open_object(loc, key, "read", &fd, &st, err);
    if (orc)
        return orc;
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + (int64_t)done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? fail_errno(loc, err, errno, "read", key, "read")
                       : sv_fail(err, SV_EIO, "read %s at %s: got %zu of %zu bytes at offset %lld (the object is "
                                 "shorter)", key, loc->describe, done, len, (long long)off);
            break;
        }
        done += (size_t)n;
    }
    close(fd);
    return rc;
}

static int f_get(sv_location *loc, const char *key, int64_t off, int64_t len,
                 sv_location_sink sink, void *ctx, sv_err *err)
{
    int fd;
    struct stat st;
    int orc = open_object(loc, key, "get", &fd, &st, err);
    if (orc)
        return orc;
    if (off > st.st_size) {
        close(fd);
        return sv_fail(err, SV_EINVAL, "get %s at %s: range starts at %lld, beyond the object's %lld bytes",
                       key, loc->describe, (long long)off, (long long)st.st_size);
    }
    int64_t end = (len < 0 || off + len > st.st_size) ? st.st_size : off + len;
    size_t bufsz = 1 << 20;
    if (end - off < (int64_t)bufsz)
        bufsz = (size_t)(end - off) + 1;
    char *buf = malloc(bufsz);
    if (!buf) {
        close(fd);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    posix_fadvise(fd, off, end - off, POSIX_FADV_SEQUENTIAL);
    int rc = 0;
    int64_t pos = off;
    while (pos < end) {
        size_t want = (size_t)(end - pos) < bufsz ? (size_t)(end - pos) : bufsz;
        ssize_t n = pread(fd, buf, want, pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? fail_errno(loc, err, errno, "get", key, "read")
                       : sv_fail(err, SV_EIO, "get %s at %s: object shrank while reading", key, loc->describe);
            break;
        }
        rc = sink(ctx, buf, (size_t)n);
        if (rc) {
            if (err && !err->msg[0])
                sv_fail(err, rc, "get %s at %s: the receiver stopped the transfer (%s)", key,
                        loc->describe, sv_strerror(rc));
            break;
        }
        pos += n;
    }
    free(buf);
    close(fd);
    return rc;
}

/* ---- listing -------------------------------------------------------------- */

typedef struct keyvec { char **v; size_t n, cap; } keyvec;

static int kv_push(keyvec *kv, char *s)
{
    if (!s)
        return SV_ENOMEM;
    if (kv->n == kv->cap) {
        size_t nc = kv->cap ? kv->cap * 2 : 256;
        char **nv = realloc(kv->v, nc * sizeof *nv);
        if (!nv) {
            free(s);
            return SV_ENOMEM;
        }
        kv->v = nv;
        kv->cap = nc;
    }
    kv->v[kv->n++] = s;
    return 0;
}

/* Collects keys below rel (relative dir, "" = root) that start with prefix,
 * reading the directory open at dfd (walk closes it). No symbolic link is
 * followed: the start was opened by open_beneath_root, each subdirectory is
 * opened O_NOFOLLOW from its parent, and links are skipped. With a
 * delimiter, directories one level below the prefix are not entered: they
 * become common prefixes ("dir/"). */
static int walk(int dfd, const char *rel, const char *prefix, bool delim, keyvec *kv, int depth)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return SV_EIO;
    }
    if (depth > 128) {
        closedir(d);
        return 0;
    }
    size_t plen = strlen(prefix);
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        const char *n = de->d_name;
        if (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2]) || !strncmp(n, ".sv-", 4)))
            continue;
        if (de->d_type == DT_LNK)
            continue; /* links are not followed (open_beneath_root) */
        bool isdir = de->d_type == DT_DIR;
        if (de->d_type != DT_DIR && de->d_type != DT_REG) {
            struct stat st;
            if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                isdir = S_ISDIR(st.st_mode);
                if (!isdir && !S_ISREG(st.st_mode))
                    continue; /* a link, a FIFO, a socket: not an object */
            }
        }
        sv_buf k = {0};
        if (sv_buf_printf(&k, "%s%s%s", rel, *rel ? "/" : "", n) || !sv_buf_cstr(&k)) {
            sv_buf_free(&k);
            rc = SV_ENOMEM;
            break;
        }
        char *key = (char *)k.data;
        size_t kl = k.len;
        /* Prune: only descend where the key can still match the prefix. */
        size_t cmp = kl < plen ? kl : plen;
        if (memcmp(key, prefix, cmp)) {
            sv_buf_free(&k);
            continue;
        }
        if (isdir) {
            if (delim && kl >= plen) {
                sv_buf_putc(&k, '/');
                char *cp = sv_buf_cstr(&k);
                rc = kv_push(kv, cp);
                if (rc == 0)
                    continue;
                break;
            }
            int cfd = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd >= 0)
                rc = walk(cfd, key, prefix, delim, kv, depth + 1);
            else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP)
                rc = SV_EIO; /* gone or a link meanwhile: nothing to list */
            sv_buf_free(&k);
            continue;
        }
        if (kl < plen) {
            sv_buf_free(&k);
            continue;
        }
        rc = kv_push(kv, key);
    }
    closedir(d);
    return rc;
}

static int strp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int f_list(sv_location *loc, const char *prefix, const char *delim, const char *start_after,
                  sv_location_list_fn fn, void *ctx, sv_err *err)
{
    /* Start at the deepest directory the prefix names, not at the root. */
    char *start = strdup(prefix);
    if (!start)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    char *s = strrchr(start, '/');
    if (s)
        *s = 0;
    else
        start[0] = 0;
    keyvec kv = {0};
    /* With start_after, a rolled-up prefix is listed only if it holds a key
     * after start_after, so walk every key and roll up afterwards. */
    bool shortcut = delim && !start_after;
    int dfd = open_beneath_root(F(loc)->root, start, true);
    int rc = dfd >= 0                                               ? walk(dfd, start, prefix, shortcut, &kv, 0)
             : errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 /* nothing there, or a link */
                                                                     : SV_EIO;
    free(start);
    if (rc) {
        for (size_t i = 0; i < kv.n; i++)
            free(kv.v[i]);
        free(kv.v);
        return sv_fail(err, rc, "list %s at %s: cannot read directory: %s", prefix, loc->describe, sv_strerror(rc));
    }
    if (kv.n)
        qsort(kv.v, kv.n, sizeof *kv.v, strp_cmp);
    size_t plen = strlen(prefix);
    char *last_prefix = NULL;
    for (size_t i = 0; i < kv.n && rc == 0; i++) {
        char *k = kv.v[i];
        if (start_after && strcmp(k, start_after) <= 0)
            continue;
        if (delim && !shortcut) {
            char *slash = strchr(k + plen, '/');
            if (slash) {
                slash[1] = 0; /* roll up in place: keys are sorted, so the
                                 first key of a prefix marks its position */
                if (last_prefix && !strcmp(last_prefix, k))
                    continue;
                last_prefix = k;
            }
        }
        sv_location_entry e = {.key = k};
        size_t kl = strlen(k);
        e.is_prefix = kl && k[kl - 1] == '/';
        sv_location_info info = {0};
        if (!e.is_prefix) {
            char *path = key_path(loc, k);
            struct stat st;
            if (!path || stat(path, &st)) {
                free(path);
                continue; /* deleted while listing */
            }
            free(path);
            fill_info(&st, &info);
            e.size = info.size;
            e.mtime_ms = info.mtime_ms;
            e.etag = info.etag;
        }
        int r = fn(ctx, &e);
        if (r > 0)
            break;
        if (r < 0)
            rc = sv_fail(err, r, "list %s at %s: stopped by the caller (%s)", prefix, loc->describe, sv_strerror(r));
    }
    for (size_t i = 0; i < kv.n; i++)
        free(kv.v[i]);
    free(kv.v);
    return rc;
}

/* ---- deleting ------------------------------------------------------------ */

static int f_del(sv_location *loc, const char *key, sv_err *err)
{
    char *path = key_path(loc, key);
    if (!path)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    int rc = 0;
    if (unlink(path)) {
        if (errno != ENOENT && errno != ENOTDIR && errno != EISDIR)
            rc = fail_errno(loc, err, errno, "delete", key, "unlink");
    } else {
        prune_dirs(loc, path);
        if (!loc->o.no_fsync) {
            char *d = dir_of(path);
            /* The parent may have been pruned: best effort. */
            int dfd = d ? open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            free(d);
        }
    }
    free(path);
    return rc;
}

static int f_delete_many(sv_location *loc, const char *const *keys, size_t n, sv_err *err)
{
    size_t failed = 0;
    int first = 0;
    sv_err e1 = {0};
    for (size_t i = 0; i < n; i++) {
        sv_err e = {0};
        int rc = f_del(loc, keys[i], &e);
        if (rc) {
            if (!failed) {
                first = rc;
                e1 = e;
            }
            failed++;
        }
    }
    if (failed)
        return sv_fail(err, first, "delete_many at %s: %zu of %zu keys failed; first: %s", loc->describe,
                       failed, n, e1.msg);
    return 0;
}

static void f_close(sv_location *loc)
{
    free(F(loc)->root);
    free(loc->describe);
    sv_loc_free_opts(&loc->o);
    free(loc);
}

/* Hard-links the object at key to local_path (replacing it): the local
 * file then shares the object's inode. SV_EUNSUPPORTED when no link can be
 * made (another filesystem, no hard links): the caller copies instead. */
static int f_link_to_file(sv_location *loc, const char *key, const char *local, sv_err *err)
{
    struct stat st;
    int orc = stat_object(loc, key, "link_to_file", &st, err);
    if (orc)
        return orc;
    char *path = key_path(loc, key);
    if (!path)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    sv_uuid u;
    sv_uuid_v4(&u);
    char us[37];
    sv_uuid_format(&u, us);
    size_t n = strlen(local) + 64;
    char *tmp = malloc(n);
    if (!tmp) {
        free(path);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    snprintf(tmp, n, "%s.sv-tmp-%s", local, us);
    int rc = 0;
    if (link(path, tmp)) {
        rc = SV_EUNSUPPORTED;
    } else if (rename(tmp, local)) {
        rc = sv_fail(err, SV_EIO, "link_to_file %s at %s: rename to %s: %s", key, loc->describe, local,
                     strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    free(path);
    return rc;
}

static const sv_loc_driver file_driver = {
    .scheme = "file",
    .close = f_close,
    .writer_open = f_writer_open,
    .put_file = f_put_file,
    .create_if_absent = f_create_if_absent,
    .copy = f_copy,
    .get = f_get,
    .read_at = f_read_at,
    .head = f_head,
    .list = f_list,
    .del = f_del,
    .delete_many = f_delete_many,
    .link_to_file = f_link_to_file,
};

int sv_loc_file_open(const char *path, const sv_location_opts *o, sv_location **out, sv_err *err)
{
    int mrc = sv_mkdirs(path, err);
    if (mrc) {
        sv_err_wrap(err, "open file://%s", path);
        return mrc;
    }
    char *real = realpath(path, NULL);
    if (!real)
        return sv_fail(err, SV_EIO, "open file://%s: %s", path, strerror(errno));
    struct stat st;
    if (stat(real, &st) || !S_ISDIR(st.st_mode)) {
        free(real);
        return sv_fail(err, SV_EINVAL, "open file://%s: not a directory", path);
    }
    file_loc *l = calloc(1, sizeof *l);
    sv_buf d = {0};
    if (!l || sv_buf_printf(&d, "file://%s", real) || !sv_buf_cstr(&d)) {
        free(l);
        free(real);
        sv_buf_free(&d);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    l->root = real;
    if (!strcmp(real, "/"))
        real[0] = 0; /* keys join as "/key" */
    l->base.drv = &file_driver;
    l->base.describe = (char *)d.data;
    l->base.o = *o;
    *out = &l->base;
    return 0;
}
