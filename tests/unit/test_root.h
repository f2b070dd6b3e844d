/* Unit tests: a fresh, absolute scratch directory per test program,
 * $SV_TEST_TMP/<name>-<pid> (default /tmp), so embedded://<root> is always an
 * absolute URL. Header-only; include from a test's main. */
#ifndef SV_TEST_ROOT_H
#define SV_TEST_ROOT_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core.h"

/* Fills root (n bytes) and creates it; 0, or 1 with the reason on stderr. */
static inline int sv_test_root(const char *name, char *root, size_t n)
{
    const char *base = getenv("SV_TEST_TMP");
    snprintf(root, n, "%s/%s-%d", base && *base ? base : "/tmp", name, (int)getpid());
    sv_err err = {0};
    if (sv_mkdirs(root, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    char *abs = realpath(root, NULL);
    if (!abs)
        return 1;
    snprintf(root, n, "%s", abs);
    free(abs);
    return 0;
}

#endif
