/* Export file names: {collection}_{shard}_{range:04d}.parquet, with every '_'
 * inside a collection or shard name written as '.'.
 *
 * Why it is injective: collection names match ^[A-Za-z][A-Za-z0-9_]{0,127}$
 * and shard names are shard0000… or tenant names ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$,
 * so neither ever holds '.'. Mapping '_' to '.' is then one-to-one on each
 * name and leaves no '_' in it: in a file name the only '_' are the two
 * separators, so splitting the stem at '_' gives back exactly the escaped
 * collection, the escaped shard and the range (decimal, at least 4 digits,
 * no other leading zeros), and un-escaping ('.' -> '_') gives back the names.
 * Names without '_' are written as they are: Weaviate's layout. */
#include <stdlib.h>
#include <string.h>

#include "export_internal.h"

static bool alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

/* Appends the escaped name; false if it holds a byte outside [A-Za-z0-9_]
 * (plus '-' when dash) or is empty. */
static bool put_escaped(char *out, size_t n, size_t *pos, const char *name, bool dash)
{
    if (!*name)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (c == '_')
            c = '.';
        else if (!alnum(c) && !(dash && c == '-'))
            return false;
        if (*pos + 1 >= n)
            return false;
        out[(*pos)++] = c;
    }
    out[*pos] = '\0';
    return true;
}

int sv_export_file_stem(char *out, size_t n, const char *collection, const char *shard, sv_err *err)
{
    size_t pos = 0;
    if (n)
        out[0] = '\0';
    bool ok = n > 0 && collection && shard && alnum(collection[0]) && put_escaped(out, n, &pos, collection, false);
    if (ok && pos + 1 < n) {
        out[pos++] = '_';
        out[pos] = '\0';
    } else {
        ok = false;
    }
    ok = ok && shard[0] != '-' && put_escaped(out, n, &pos, shard, true);
    if (!ok)
        return sv_fail(err, SV_EINVAL,
                       "cannot name the export file of collection '%.128s' shard '%.64s': collection names match "
                       "^[A-Za-z][A-Za-z0-9_]*$ and shard names ^[A-Za-z0-9_][A-Za-z0-9_-]*$",
                       collection ? collection : "", shard ? shard : "");
    return 0;
}

int sv_export_file_name(char *out, size_t n, const char *collection, const char *shard, uint32_t range, sv_err *err)
{
    char stem[SV_EXPORT_STEM_MAX];
    int rc = sv_export_file_stem(stem, sizeof stem, collection, shard, err);
    if (rc)
        return rc;
    if ((size_t)snprintf(out, n, "%s_%04u.parquet", stem, range) >= n)
        return sv_fail(err, SV_EINVAL, "export file name of collection '%.128s' shard '%.64s' is too long",
                       collection, shard);
    return 0;
}

typedef struct {
    const char *s;
    size_t i;
} idx_name;

static int by_name(const void *a, const void *b)
{
    const idx_name *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

int sv_export_first_duplicate(const char *const *names, size_t n, size_t *a, size_t *b, sv_err *err)
{
    if (n < 2)
        return 0;
    idx_name *v = malloc(n * sizeof *v);
    if (!v)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        v[i] = (idx_name){names[i], i};
    qsort(v, n, sizeof *v, by_name);
    int found = 0;
    for (size_t i = 1; i < n && !found; i++) {
        if (!strcmp(v[i - 1].s, v[i].s)) {
            *a = v[i - 1].i;
            *b = v[i].i;
            found = 1;
        }
    }
    free(v);
    return found;
}
