/* core — a string-keyed hash map whose keys each hold a small set of
 * pointers (see core.h). Chained buckets, doubled when the map is as full as
 * it has buckets. */
#include <stdlib.h>
#include <string.h>

#include "core.h"

static size_t slot_of(const sv_strmap *m, const char *k) { return (size_t)(sv_hash64(k, strlen(k)) % m->nb); }

sv_strmap_entry *sv_strmap_find(const sv_strmap *m, const char *k)
{
    if (!m->nb)
        return NULL;
    for (sv_strmap_entry *e = m->b[slot_of(m, k)]; e; e = e->next)
        if (!strcmp(e->key, k))
            return e;
    return NULL;
}

static int grow(sv_strmap *m)
{
    size_t nb = m->nb ? m->nb * 2 : 64;
    sv_strmap_entry **b = calloc(nb, sizeof *b);
    if (!b)
        return SV_ENOMEM;
    for (size_t i = 0; i < m->nb; i++) {
        for (sv_strmap_entry *e = m->b[i], *next; e; e = next) {
            next = e->next;
            size_t s = (size_t)(sv_hash64(e->key, strlen(e->key)) % nb);
            e->next = b[s];
            b[s] = e;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

int sv_strmap_add(sv_strmap *m, const char *k, void *p)
{
    sv_strmap_entry *e = sv_strmap_find(m, k);
    if (!e) {
        if (m->count >= m->nb && grow(m))
            return SV_ENOMEM;
        e = calloc(1, sizeof *e);
        if (!e || !(e->key = strdup(k))) {
            free(e);
            return SV_ENOMEM;
        }
        size_t s = slot_of(m, k);
        e->next = m->b[s];
        m->b[s] = e;
        m->count++;
    }
    for (size_t i = 0; i < e->n; i++)
        if (e->v[i] == p)
            return 0;
    if (sv_grow(&e->v, &e->cap, e->n + 1, sizeof *e->v))
        return SV_ENOMEM;
    e->v[e->n++] = p;
    return 0;
}

void sv_strmap_remove(sv_strmap *m, const char *k, void *p)
{
    if (!m->nb)
        return;
    sv_strmap_entry **pp = &m->b[slot_of(m, k)];
    for (sv_strmap_entry *e = *pp; e; pp = &e->next, e = e->next) {
        if (strcmp(e->key, k))
            continue;
        for (size_t i = 0; i < e->n; i++) {
            if (e->v[i] == p) {
                e->v[i] = e->v[--e->n];
                break;
            }
        }
        if (e->n == 0) {
            *pp = e->next;
            free(e->key);
            free(e->v);
            free(e);
            m->count--;
        }
        return;
    }
}

void sv_strmap_free(sv_strmap *m)
{
    for (size_t i = 0; i < m->nb; i++) {
        for (sv_strmap_entry *e = m->b[i], *next; e; e = next) {
            next = e->next;
            free(e->key);
            free(e->v);
            free(e);
        }
    }
    free(m->b);
    memset(m, 0, sizeof *m);
}

