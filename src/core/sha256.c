/* SHA-256 over OpenSSL's EVP: streaming, and of a whole local file. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

struct sv_sha256_ctx {
    EVP_MD_CTX *md;
};

sv_sha256_ctx *sv_sha256_new(void)
{
    sv_sha256_ctx *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    c->md = EVP_MD_CTX_new();
    if (!c->md || EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c->md);
        free(c);
        return NULL;
    }
    return c;
}

void sv_sha256_update(sv_sha256_ctx *c, const void *data, size_t len) { EVP_DigestUpdate(c->md, data, len); }

void sv_sha256_final_hex(sv_sha256_ctx *c, char hex[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(c->md, d, &n);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    sv_sha256_free(c);
}

void sv_sha256_free(sv_sha256_ctx *c)
{
    if (!c)
        return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

int sv_sha256_file(const char *path, char hex[65], int64_t *size, _Atomic int64_t *progress, sv_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sv_fail(err, errno == ENOENT ? SV_ENOTFOUND : SV_EIO, "cannot open %s: %s", path, strerror(errno));
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    sv_sha256_ctx *c = sv_sha256_new();
    size_t bufsz = 1 << 20;
    char *buf = malloc(bufsz);
    int rc = 0;
    int64_t total = 0;
    if (!c || !buf) {
        rc = sv_fail(err, SV_ENOMEM, "out of memory");
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, buf, bufsz);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = sv_fail(err, SV_EIO, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        sv_sha256_update(c, buf, (size_t)n);
        total += n;
        if (progress)
            atomic_fetch_add(progress, n);
    }
    sv_sha256_final_hex(c, hex);
    c = NULL;
    if (size)
        *size = total;
done:
    sv_sha256_free(c);
    free(buf);
    close(fd);
    return rc;
}

bool sv_sha256_valid_hex(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}
