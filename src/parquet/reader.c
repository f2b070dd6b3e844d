/* Reader, part 2: opening a file, decoding one row group's column chunks
 * (pages v1/v2, codecs, encodings, levels) and assembling rows. */
#include "reader_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lz4.h>
#include <pthread.h>
#include <stdatomic.h>
#include <snappy-c.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_d_stableOutBuffer */
#include <zstd.h>

/* One decoded column of the current row group. */
typedef struct pq_bytes { const uint8_t *p; uint32_t len; } pq_bytes;

typedef struct pq_col {
    uint8_t *def, *rep;     /* n levels (NULL when the max level is 0) */
    size_t n, cap_def, cap_rep;
    void *vals;             /* fixed width: native values; byte arrays: pq_bytes */
    size_t nv, cap_v;
    size_t vals_off;        /* bytes before the first value (a page decompressed in place: see load_column) */
    size_t pad;             /* where the next in-place page starts, to put its values aligned */
    int width;              /* bytes per entry of vals */
    uint8_t **bufs;         /* buffers the byte values point into, freed per row group */
    size_t nbufs, cap_bufs;
    /* the dictionary (values in the same representation as vals) */
    void *dict;
    size_t ndict;
    /* assembly cursor */
    size_t i, vi;
} pq_col;

struct sv_pq_reader {
    sv_pq_source src;
    int fd; /* open_file only */
    char *path;
    sv_pq_read_options opt;
    pq_meta meta;
    pq_schema schema;
    int64_t bytes_read;
    /* the window over a fixed-width column's compressed chunk (see
     * chunk_win: nothing points into it once a page is decoded), reused */
    uint8_t *chunk;
    size_t cap_chunk;
    uint8_t *pagebuf; /* decompressed pages of fixed-width columns, reused */
    size_t cap_pagebuf;
    /* current row group */
    int rg;           /* next row group to load, or the loaded one */
    bool loaded;
    int64_t row;      /* next row within the loaded row group */
    int64_t budget;   /* bytes allocated for the loaded row group */
    int64_t limit;    /* the caller's max_row_group_bytes, for messages (decoding threads each get a share) */
    pq_col *cols;
    int cur_col, cur_page; /* for messages */
    /* assembly */
    struct arena_chunk *arena;
    sv_pq_value *rows;
    size_t cap_rows;
    sv_pq_value *scratch[PQ_MAX_DEPTH * 2];
    size_t scratch_cap[PQ_MAX_DEPTH * 2];
    /* prefetch (opt.prefetch_bytes; see "prefetch" below): pf is a shadow reader
     * sharing src, meta and schema, whose own columns receive the next row
     * group on pf_th. A shadow has shadow set and no pf of its own. */
    struct sv_pq_reader *pf;
    struct sv_pq_reader *helper; /* decode_threads: decodes its columns (mine) of a row group */
    bool *mine;
    pthread_t pf_th;
    bool pf_running, shadow;
    int pf_rc;
    sv_err pf_err;
    atomic_bool pf_stop;
};

/* ---- errors ------------------------------------------------------------------ */

static int rfail(sv_pq_reader *r, int code, sv_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void col_name(sv_pq_reader *r, int c, char *out, size_t len)
{
    out[0] = 0;
    if (c < 0 || c >= r->schema.nleaves)
        return;
    /* dotted raw path */
    int chain[PQ_MAX_DEPTH + 2], n = 0;
    for (int i = r->schema.leaves[c].raw; i > 0 && n < PQ_MAX_DEPTH + 2; i = r->schema.raw[i].parent)
        chain[n++] = i;
    size_t o = 0;
    for (int k = n - 1; k >= 0 && o + 1 < len; k--) {
        int w = snprintf(out + o, len - o, "%s%s", k == n - 1 ? "" : ".", r->meta.elems[chain[k]].name);
        if (w < 0)
            break;
        o += (size_t)w;
    }
}

static int rfail(sv_pq_reader *r, int code, sv_err *err, const char *fmt, ...)
{
    char what[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char where[200] = "";
    if (r->loaded || r->cur_col >= 0) {
        char cn[120];
        col_name(r, r->cur_col, cn, sizeof cn);
        if (r->cur_col >= 0 && r->cur_page >= 0)
            snprintf(where, sizeof where, ": row group %d: column %s: page %d", r->rg, cn, r->cur_page);
        else if (r->cur_col >= 0)
            snprintf(where, sizeof where, ": row group %d: column %s", r->rg, cn);
        else
            snprintf(where, sizeof where, ": row group %d", r->rg);
    }
    return sv_fail(err, code, "parquet file %s%s: %s", r->src.name ? r->src.name : "?", where, what);
}

/* ---- memory accounting -------------------------------------------------------- */

static void *balloc(sv_pq_reader *r, size_t bytes, sv_err *err, int *rc)
{
    if (bytes > (size_t)INT64_MAX || r->budget + (int64_t)bytes > r->opt.max_row_group_bytes) {
        *rc = rfail(r, SV_ETOOBIG, err, "decoding needs more than %lld bytes for one row group "
                    "(raise the row group memory limit or write smaller row groups)",
                    (long long)r->limit);
        return NULL;
    }
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        *rc = rfail(r, SV_ENOMEM, err, "out of memory");
        return NULL;
    }
    r->budget += (int64_t)bytes;
    return p;
}

/* Grows *arr (elem bytes each, capacity *cap) to hold need, within budget. */
static int bgrow_to(sv_pq_reader *r, void *parr, size_t *cap, size_t need, size_t elem, bool exact, sv_err *err)
{
    if (need == 0)
        need = 1; /* callers index the array even for zero values */
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / elem)
            return rfail(r, SV_ETOOBIG, err, "too many values");
        nc *= 2;
    }
    if (exact)
        nc = need;
    size_t add = (nc - *cap) * elem;
    if (r->budget + (int64_t)add > r->opt.max_row_group_bytes)
        return rfail(r, SV_ETOOBIG, err, "decoding needs more than %lld bytes for one row group "
                     "(raise the row group memory limit or write smaller row groups)",
                     (long long)r->limit);
    void **pa = parr;
    void *n = realloc(*pa, nc * elem);
    if (!n)
        return rfail(r, SV_ENOMEM, err, "out of memory");
    *pa = n;
    r->budget += (int64_t)add;
    *cap = nc;
    return 0;
}

static int bgrow(sv_pq_reader *r, void *parr, size_t *cap, size_t need, size_t elem, sv_err *err)
{
    return bgrow_to(r, parr, cap, need, elem, false, err);
}

static int keep_buf(sv_pq_reader *r, pq_col *c, uint8_t *buf, sv_err *err)
{
    if (sv_grow(&c->bufs, &c->cap_bufs, c->nbufs + 1, sizeof *c->bufs)) {
        free(buf);
        return rfail(r, SV_ENOMEM, err, "out of memory");
    }
    c->bufs[c->nbufs++] = buf;
    return 0;
}

/* keep: the level and value arrays stay allocated for the next row group
 * (fresh pages for every row group cost more than decoding them). */
static void col_reset(pq_col *c, bool keep)
{
    if (!keep) {
        free(c->def);
        free(c->rep);
        free(c->vals);
    }
    free(c->dict);
    for (size_t i = 0; i < c->nbufs; i++)
        free(c->bufs[i]);
    free(c->bufs);
    pq_col k = {0};
    if (keep) {
        k.def = c->def;
        k.rep = c->rep;
        k.vals = c->vals;
        k.cap_def = c->cap_def;
        k.cap_rep = c->cap_rep;
        k.cap_v = c->cap_v;
        k.width = c->width;
        k.pad = c->pad;
    }
    *c = k;
}

static void unload(sv_pq_reader *r)
{
    /* what stays allocated counts against the next row group's budget */
    r->budget = (int64_t)(r->cap_chunk + r->cap_pagebuf);
    if (r->cols)
        for (int i = 0; i < r->schema.nleaves; i++) {
            pq_col *c = &r->cols[i];
            col_reset(c, true);
            r->budget += (int64_t)(c->cap_def + c->cap_rep + c->cap_v * (size_t)c->width);
        }
    r->loaded = false;
    r->row = 0;
}

/* ---- source -------------------------------------------------------------------- */

static int src_read(sv_pq_reader *r, uint64_t off, void *buf, size_t len, sv_err *err)
{
    if (off > r->src.size || len > r->src.size - off)
        return rfail(r, SV_ECORRUPT, err, "a read of %zu bytes at offset %llu runs past the end of the file (%llu bytes)",
                     len, (unsigned long long)off, (unsigned long long)r->src.size);
    int rc = r->src.read_at(r->src.ud, off, buf, len, err);
    if (rc)
        return rc;
    r->bytes_read += (int64_t)len;
    return 0;
}

static int file_read_at(void *ud, uint64_t off, void *buf, size_t len, sv_err *err)
{
    sv_pq_reader *r = ud;
    size_t done = 0;
    while (done < len) {
        ssize_t k = pread(r->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return sv_fail(err, SV_EIO, "read %s: %s", r->path, k < 0 ? strerror(errno) : "file shrank");
        done += (size_t)k;
    }
    return 0;
}

/* ---- open ---------------------------------------------------------------------- */

static int64_t dflt(int64_t v, int64_t d) { return v > 0 ? v : d; }

int sv_pq_reader_open(const sv_pq_source *src, const sv_pq_read_options *opt, sv_pq_reader **out, sv_err *err)
{
    *out = NULL;
    sv_pq_reader *r = calloc(1, sizeof *r);
    if (!r)
        return sv_fail(err, SV_ENOMEM, "out of memory");
    r->src = *src;
    r->fd = -1;
    r->cur_col = -1;
    r->cur_page = -1;
    if (opt)
        r->opt = *opt;
    r->opt.max_footer_bytes = dflt(r->opt.max_footer_bytes, 64ll << 20);
    r->opt.max_row_group_bytes = dflt(r->opt.max_row_group_bytes, 1ll << 30);
    r->limit = r->opt.max_row_group_bytes;
    r->opt.max_page_bytes = dflt(r->opt.max_page_bytes, 256ll << 20);
    int rc = 0;
    uint8_t tail[8], head[4];
    if (src->size < 12) {
        rc = rfail(r, SV_ECORRUPT, err, "not a Parquet file: %llu bytes is shorter than its magic and footer",
                   (unsigned long long)src->size);
        goto fail;
    }
    if ((rc = src_read(r, 0, head, 4, err)) || (rc = src_read(r, src->size - 8, tail, 8, err)))
        goto fail;
    if (memcmp(head, "PAR1", 4) || memcmp(tail + 4, "PAR1", 4)) {
        rc = rfail(r, SV_ECORRUPT, err, "not a Parquet file: the PAR1 magic is missing%s",
                   memcmp(tail + 4, "PARE", 4) == 0 ? " (encrypted footers are not supported)" : "");
        if (memcmp(tail + 4, "PARE", 4) == 0 && err)
            err->code = rc = SV_EUNSUPPORTED;
        goto fail;
    }
    uint32_t flen = (uint32_t)tail[0] | (uint32_t)tail[1] << 8 | (uint32_t)tail[2] << 16 | (uint32_t)tail[3] << 24;
    if ((uint64_t)flen > src->size - 12) {
        rc = rfail(r, SV_ECORRUPT, err, "the footer length %u is larger than the file (truncated file?)", flen);
        goto fail;
    }
    if ((int64_t)flen > r->opt.max_footer_bytes) {
        rc = rfail(r, SV_ETOOBIG, err, "the footer is %u bytes, more than the limit of %lld", flen,
                   (long long)r->opt.max_footer_bytes);
        goto fail;
    }
    uint8_t *foot = malloc(flen ? flen : 1);
    if (!foot) {
        rc = rfail(r, SV_ENOMEM, err, "out of memory");
        goto fail;
    }
    if ((rc = src_read(r, src->size - 8 - flen, foot, flen, err))) {
        free(foot);
        goto fail;
    }
    int prc = pq_parse_footer(foot, flen, &r->meta);
    free(foot);
    if (prc) {
        rc = rfail(r, prc == -2 ? SV_ENOMEM : SV_ECORRUPT, err, "%s",
                   prc == -2 ? "out of memory" : "the footer (FileMetaData) is malformed");
        goto fail;
    }
    if (!r->meta.elems) {
        rc = rfail(r, SV_ECORRUPT, err, "the footer has no schema");
        goto fail;
    }
    char why[256];
    prc = pq_schema_build(&r->schema, &r->meta, why, sizeof why);
    if (prc) {
        rc = rfail(r, prc == -2 ? SV_ENOMEM : SV_ECORRUPT, err, "schema: %s", why);
        goto fail;
    }
    int64_t total = 0;
    for (int g = 0; g < r->meta.nrgs; g++) {
        pq_rowgroup *rg = &r->meta.rgs[g];
        r->rg = g;
        if (rg->ncols != r->schema.nleaves) {
            rc = rfail(r, SV_ECORRUPT, err, "row group %d has %d column chunks, the schema has %d leaf columns", g,
                       rg->ncols, r->schema.nleaves);
            goto fail;
        }
        if (rg->num_rows < 0) {
            rc = rfail(r, SV_ECORRUPT, err, "row group %d has a negative row count", g);
            goto fail;
        }
        for (int c = 0; c < rg->ncols; c++) {
            pq_colmeta *cm = &rg->cols[c];
            const pq_selem *e = &r->meta.elems[r->schema.leaves[c].raw];
            r->cur_col = c;
            if (cm->external) {
                rc = rfail(r, SV_EUNSUPPORTED, err, "column chunks in other files are not supported");
                goto fail;
            }
            if (!cm->has_meta || cm->type != e->type) {
                rc = rfail(r, SV_ECORRUPT, err, "column chunk metadata is missing or its type %d is not the schema's %d",
                           cm->type, e->type);
                goto fail;
            }
            if (cm->num_values < 0 || cm->total_compressed < 0 || cm->data_off < 4 ||
                (uint64_t)cm->data_off >= src->size || (cm->has_dict && cm->dict_off < 0)) {
                rc = rfail(r, SV_ECORRUPT, err, "column chunk offsets or sizes are invalid");
                goto fail;
            }
        }
        r->cur_col = -1;
        if (rg->num_rows > INT64_MAX - total) {
            rc = rfail(r, SV_ECORRUPT, err, "row counts overflow");
            goto fail;
        }
        total += rg->num_rows;
    }
    r->rg = 0;
    r->cols = calloc((size_t)(r->schema.nleaves ? r->schema.nleaves : 1), sizeof *r->cols);
    if (!r->cols) {
        rc = rfail(r, SV_ENOMEM, err, "out of memory");
        goto fail;
    }
    *out = r;
    return 0;
fail:
    sv_pq_reader_free(r);
    return rc;
}

int sv_pq_reader_open_file(const char *path, const sv_pq_read_options *opt, sv_pq_reader **out, sv_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sv_fail(err, errno == ENOENT ? SV_ENOTFOUND : SV_EIO, "open %s: %s", path, strerror(errno));
    off_t size = lseek(fd, 0, SEEK_END);
    if (size < 0) {
        close(fd);
        return sv_fail(err, SV_EIO, "seek %s: %s", path, strerror(errno));
    }
    /* The reader is the ud of its own source: make a tiny holder first. */
    char *p = strdup(path);
    if (!p) {
        close(fd);
        return sv_fail(err, SV_ENOMEM, "out of memory");
    }
    sv_pq_reader tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.fd = fd;
    tmp.path = p;
    sv_pq_source src = {file_read_at, &tmp, (uint64_t)size, p};
    sv_pq_reader *r;
    int rc = sv_pq_reader_open(&src, opt, &r, err);
    if (rc) {
        close(fd);
        free(p);
        return rc;
    }
    r->fd = fd;
    r->path = p;
    r->src.ud = r;
    *out = r;
    return 0;
}

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) uint8_t data[];
};

static void arena_reset(sv_pq_reader *r)
{
    struct arena_chunk *c = r->arena;
    while (c) {
        struct arena_chunk *n = c->next;
        free(c);
        c = n;
    }
    r->arena = NULL;
}

static void pf_free(sv_pq_reader *r);
static void helper_free(sv_pq_reader *r);

void sv_pq_reader_free(sv_pq_reader *r)
{
    if (!r)
        return;
    pf_free(r);
    helper_free(r);
    unload(r);
    if (r->cols)
        for (int i = 0; i < r->schema.nleaves; i++)
            col_reset(&r->cols[i], false);
    free(r->cols);
    free(r->chunk);
    free(r->pagebuf);
    arena_reset(r);
    free(r->rows);
    for (int i = 0; i < PQ_MAX_DEPTH * 2; i++)
        free(r->scratch[i]);
    pq_schema_free(&r->schema);
    pq_meta_free(&r->meta);
    if (r->fd >= 0)
        close(r->fd);
    free(r->path);
    free(r);
}

const sv_pq_rnode *sv_pq_reader_root(const sv_pq_reader *r) { return &r->schema.root->pub; }
int64_t sv_pq_reader_num_rows(const sv_pq_reader *r)
{
    int64_t t = 0;
    for (int g = 0; g < r->meta.nrgs; g++)
        t += r->meta.rgs[g].num_rows;
    return t;
}
int sv_pq_reader_num_row_groups(const sv_pq_reader *r) { return r->meta.nrgs; }
int64_t sv_pq_reader_row_group_rows(const sv_pq_reader *r, int rg)
{
    return rg >= 0 && rg < r->meta.nrgs ? r->meta.rgs[rg].num_rows : 0;
}
const char *sv_pq_reader_kv(const sv_pq_reader *r, const char *key)
{
    for (int i = 0; i < r->meta.nkv; i++)
        if (r->meta.kv[i].key && strcmp(r->meta.kv[i].key, key) == 0)
            return r->meta.kv[i].value;
    return NULL;
}
const char *sv_pq_reader_created_by(const sv_pq_reader *r) { return r->meta.created_by; }
int64_t sv_pq_reader_bytes_read(const sv_pq_reader *r) { return r->bytes_read; }

/* ---- prefetch -------------------------------------------------------------------
 * The consumer's reader r never loads a row group itself: its shadow r->pf
 * loads row group k on pf_th while r assembles rows of k-1; taking k swaps
 * the two column sets (r gets k, pf gets k-1's arrays, unloaded, to reuse
 * their capacity) and starts k+1. Invariants: only pf_th touches pf and
 * the source while pf_running; r joins pf_th before touching either; pf's
 * rg is the row group its columns hold (pf->loaded) or are being loaded
 * with. A failed load keeps its error for the row group that asked. */

static void pf_join(sv_pq_reader *r)
{
    if (r->pf && r->pf_running) {
        pthread_join(r->pf_th, NULL);
        r->pf_running = false;
        r->bytes_read += r->pf->bytes_read;
        r->pf->bytes_read = 0;
    }
}

/* The shadow's arrays go (the next row group is not prefetched, or the
 * reader closes). */
static void pf_release(sv_pq_reader *r)
{
    sv_pq_reader *pf = r->pf;
    if (!pf)
        return;
    unload(pf);
    for (int i = 0; i < pf->schema.nleaves; i++)
        col_reset(&pf->cols[i], false);
    free(pf->chunk);
    free(pf->pagebuf);
    pf->chunk = pf->pagebuf = NULL;
    pf->cap_chunk = pf->cap_pagebuf = 0;
    pf->rg = -1;
}

static void pf_free(sv_pq_reader *r)
{
    if (!r->pf)
        return;
    atomic_store(&r->pf->pf_stop, true);
    pf_join(r);
    pf_release(r);
    helper_free(r->pf);
    free(r->pf->cols);
    free(r->pf);
    r->pf = NULL;
}

static int load_row_group(sv_pq_reader *r, sv_err *err);

static void *pf_main(void *arg)
{
    sv_pq_reader *pf = arg;
    pf->pf_rc = load_row_group(pf, &pf->pf_err);
    return NULL;
}

/* A copy of r that shares its source, footer, schema and options (read
 * only) and owns nothing yet: no buffers, no assembly state, no threads.
 * For a second thread that decodes (the prefetch shadow, the column
 * helper). NULL: no memory. */
static sv_pq_reader *reader_clone(const sv_pq_reader *r)
{
    sv_pq_reader *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    memcpy(c, r, sizeof *c);
    c->chunk = c->pagebuf = NULL;
    c->cap_chunk = c->cap_pagebuf = 0;
    c->arena = NULL;
    c->rows = NULL;
    c->cap_rows = 0;
    memset(c->scratch, 0, sizeof c->scratch);
    memset(c->scratch_cap, 0, sizeof c->scratch_cap);
    c->cols = NULL;
    c->loaded = false;
    c->bytes_read = 0;
    c->pf = c->helper = NULL;
    c->mine = NULL;
    c->pf_running = c->shadow = false;
    atomic_init(&c->pf_stop, false);
    return c;
}

/* Starts loading row group rg on the shadow (made on first use). false:
 * no thread (the caller loads itself). */
static bool pf_start(sv_pq_reader *r, int rg)
{
    if (!r->pf) {
        sv_pq_reader *pf = reader_clone(r);
        pq_col *cols = calloc((size_t)(r->schema.nleaves ? r->schema.nleaves : 1), sizeof *cols);
        if (!pf || !cols) {
            free(pf);
            free(cols);
            return false;
        }
        pf->cols = cols; /* its own column set, swapped with r's */
        pf->shadow = true;
        r->pf = pf;
    }
    unload(r->pf);
    r->pf->rg = rg;
    r->pf->pf_rc = 0;
    if (pthread_create(&r->pf_th, NULL, pf_main, r->pf) != 0)
        return false;
    r->pf_running = true;
    return true;
}

/* The first row group from rg on with rows, or nrgs. */
static int next_nonempty(const sv_pq_reader *r, int rg)
{
    while (rg < r->meta.nrgs && r->meta.rgs[rg].num_rows == 0)
        rg++;
    return rg;
}

/* What row group rg decodes to, about: uncompressed chunks plus one byte
 * per repetition and definition level. */
static int64_t rg_decoded_bytes(const sv_pq_reader *r, int rg)
{
    const pq_rowgroup *g = &r->meta.rgs[rg];
    /* the footer's numbers, unchecked: negatives count 0, each term is
     * clamped below 2^62 and the sum stops at 2^63, so nothing wraps */
    const uint64_t big = (uint64_t)1 << 61;
    uint64_t t = 0;
    for (int i = 0; i < g->ncols && t < INT64_MAX; i++) {
        uint64_t u = g->cols[i].total_uncompressed > 0 ? (uint64_t)g->cols[i].total_uncompressed : 0;
        uint64_t v = g->cols[i].num_values > 0 ? (uint64_t)g->cols[i].num_values : 0;
        t += (u < big ? u : big) + 2 * (v < big / 2 ? v : big / 2);
    }
    return t < INT64_MAX ? (int64_t)t : INT64_MAX;
}


/* Makes r->rg (non-empty) loaded in r: the shadow's when it loaded it, else
 * loaded here; then the next one starts loading when it fits the budget. */
static int pf_take(sv_pq_reader *r, sv_err *err)
{
    pf_join(r);
    sv_pq_reader *pf = r->pf;
    if (pf && pf->rg == r->rg && pf->pf_rc) {
        int rc = pf->pf_rc;
        if (err)
            *err = pf->pf_err;
        pf->pf_rc = 0;
        pf_release(r);
        return rc;
    }
    if (pf && pf->rg == r->rg && pf->loaded) {
        /* swap the column sets: r takes the loaded one */
        pq_col *cols = r->cols;
        r->cols = pf->cols;
        pf->cols = cols;
        int64_t budget = r->budget;
        r->budget = pf->budget;
        pf->budget = budget;
        r->loaded = true;
        r->row = 0;
        r->cur_col = -1;
        r->cur_page = -1;
        pf->loaded = false;
    } else {
        int rc = load_row_group(r, err);
        if (rc)
            return rc;
    }
    int next = next_nonempty(r, r->rg + 1);
    if (next < r->meta.nrgs && rg_decoded_bytes(r, next) <= r->opt.prefetch_bytes)
        pf_start(r, next); /* without a thread it is loaded when asked */
    else
        pf_release(r);
    return 0;
}

int sv_pq_reader_seek_row_group(sv_pq_reader *r, int rg, sv_err *err)
{
    if (rg < 0 || rg > r->meta.nrgs)
        return sv_fail(err, SV_EINVAL, "row group %d does not exist (the file has %d)", rg, r->meta.nrgs);
    pf_join(r); /* what it loaded is taken if it is rg */
    unload(r);
    r->rg = rg;
    return 0;
}

/* ---- bit unpacking ------------------------------------------------------------- */

static inline uint64_t load_le(const uint8_t *p, const uint8_t *end)
{
    uint64_t v = 0;
    size_t avail = (size_t)(end - p);
    if (avail >= 8) {
        memcpy(&v, p, 8);
    } else {
        uint8_t tmp[8] = {0};
        memcpy(tmp, p, avail);
        memcpy(&v, tmp, 8);
    }
    return v; /* little-endian hosts only (x86-64, arm64) */
}

/* n values of width w (<= 64) bit-packed LSB first from p (which has
 * ceil(n*w/8) bytes, checked by the caller). */
static void unpack64(const uint8_t *p, const uint8_t *end, int w, uint64_t *out, size_t n)
{
    if (w == 0) {
        memset(out, 0, n * sizeof *out);
        return;
    }
    uint64_t mask = w == 64 ? ~0ull : ((1ull << w) - 1);
    size_t bit = 0;
    for (size_t i = 0; i < n; i++, bit += (size_t)w) {
        const uint8_t *q = p + bit / 8;
        int sh = (int)(bit % 8);
        uint64_t v = load_le(q, end) >> sh;
        if (sh + w > 64 && q + 8 < end)
            v |= (uint64_t)q[8] << (64 - sh);
        out[i] = v & mask;
    }
}

static void unpack32(const uint8_t *p, const uint8_t *end, int w, uint32_t *out, size_t n)
{
    if (w == 0) {
        memset(out, 0, n * sizeof *out);
        return;
    }
    uint64_t mask = (1ull << w) - 1;
    size_t bit = 0;
    for (size_t i = 0; i < n; i++, bit += (size_t)w) {
        const uint8_t *q = p + bit / 8;
        out[i] = (uint32_t)((load_le(q, end) >> (bit % 8)) & mask);
    }
}

/* One run of the RLE / bit-packed hybrid: either `packed` values
 * bit-packed at p (width bits each), or `count` copies of `value`. */
typedef struct rle_run {
    bool packed;
    const uint8_t *p;
    size_t count;
    uint32_t value;
} rle_run;

/* The next run of at most `left` values, its header and bounds checked
 * (a short final bit-packed group is tolerated: only as many bytes as values
 * needed). -1 on malformed input. A repeated run may hold 0 values (its
 * value is still checked by the caller). */
static int rle_next(tr *t, int width, size_t left, rle_run *r)
{
    uint64_t h = tr_varint(t);
    if (t->bad)
        return -1;
    if (h & 1) {
        uint64_t groups = h >> 1;
        if (groups == 0 || groups > (uint64_t)(t->end - t->p) + 1)
            return -1;
        size_t nvals = (size_t)groups * 8;
        size_t bytes = (size_t)groups * (size_t)width;
        if (bytes > (size_t)(t->end - t->p)) {
            size_t need = (left * (size_t)width + 7) / 8;
            if (need > (size_t)(t->end - t->p))
                return -1;
            bytes = (size_t)(t->end - t->p);
            nvals = width ? bytes * 8 / (size_t)width : left;
        }
        *r = (rle_run){.packed = true, .p = t->p, .count = nvals < left ? nvals : left};
        t->p += bytes;
        return 0;
    }
    uint64_t run = h >> 1;
    size_t vbytes = (size_t)(width + 7) / 8;
    if (vbytes > (size_t)(t->end - t->p))
        return -1;
    uint32_t v = 0;
    for (size_t b = 0; b < vbytes; b++)
        v |= (uint32_t)t->p[b] << (8 * b);
    t->p += vbytes;
    *r = (rle_run){.packed = false, .value = v, .count = run < left ? (size_t)run : left};
    return 0;
}

int pq_rle_decode(const uint8_t *p, size_t len, int width, uint32_t *out, size_t n, uint32_t limit)
{
    if (width < 0 || width > 32)
        return -1;
    tr t;
    tr_init(&t, p, len);
    for (size_t got = 0; got < n;) {
        rle_run r;
        if (rle_next(&t, width, n - got, &r))
            return -1;
        if (r.packed) {
            unpack32(r.p, t.end, width, out + got, r.count);
            if (limit)
                for (size_t i = 0; i < r.count; i++)
                    if (out[got + i] >= limit)
                        return -1;
        } else {
            if (limit && r.value >= limit)
                return -1;
            for (size_t i = 0; i < r.count; i++)
                out[got + i] = r.value;
        }
        got += r.count;
    }
    return 0;
}

/* spread[b]: the 8 bits of b, LSB first, one per byte (bit-packed levels
 * of width 1 into level bytes). */
#define SPREAD1(b)                                                                                                     \
    ((uint64_t)((b) & 1) | (uint64_t)(((b) >> 1) & 1) << 8 | (uint64_t)(((b) >> 2) & 1) << 16 |                       \
     (uint64_t)(((b) >> 3) & 1) << 24 | (uint64_t)(((b) >> 4) & 1) << 32 | (uint64_t)(((b) >> 5) & 1) << 40 |         \
     (uint64_t)(((b) >> 6) & 1) << 48 | (uint64_t)(((b) >> 7) & 1) << 56)
#define SPREAD4(b) SPREAD1(b), SPREAD1((b) + 1), SPREAD1((b) + 2), SPREAD1((b) + 3)
#define SPREAD16(b) SPREAD4(b), SPREAD4((b) + 4), SPREAD4((b) + 8), SPREAD4((b) + 12)
#define SPREAD64(b) SPREAD16(b), SPREAD16((b) + 16), SPREAD16((b) + 32), SPREAD16((b) + 48)
static const uint64_t spread[256] = {SPREAD64(0), SPREAD64(64), SPREAD64(128), SPREAD64(192)};

/* Set bits of x (SWAR: the build targets no popcount instruction). */
static inline size_t pop64(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
    return (size_t)((x * 0x0101010101010101ull) >> 56);
}

/* How many of p[0..n) equal v: 8 bytes at a time (a zero byte of p ^ v
 * sets its top bit in t; exact, no carries across bytes). */
static size_t count_eq(const uint8_t *p, size_t n, uint8_t v)
{
    const uint64_t ones = 0x0101010101010101ull, low7 = 0x7F7F7F7F7F7F7F7Full;
    size_t c = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        uint64_t x = w ^ (ones * v);
        uint64_t t = ~(((x & low7) + low7) | x | low7);
        c += (size_t)(((t >> 7) * ones) >> 56); /* sum of the 0/1 bytes */
    }
    for (; i < n; i++)
        c += p[i] == v;
    return c;
}

/* Levels (width <= 8) straight into bytes: the same runs as pq_rle_decode,
 * without a 32-bit array per page. Values >= limit are an error. *neq: how
 * many levels equal eq (the values present, the rows started), counted from
 * the runs rather than in a second pass over the levels. */
static int rle_decode_u8(const uint8_t *p, size_t len, int width, uint8_t *out, size_t n, uint32_t limit, uint8_t eq,
                         size_t *neq)
{
    if (width < 0 || width > 8)
        return -1;
    tr t;
    tr_init(&t, p, len);
    size_t k = 0;
    for (size_t got = 0; got < n;) {
        rle_run r;
        if (rle_next(&t, width, n - got, &r))
            return -1;
        if (!r.packed) {
            if (limit && r.value >= limit)
                return -1;
            memset(out + got, (int)r.value, r.count);
            k += r.value == eq ? r.count : 0;
            got += r.count;
            continue;
        }
        if (width == 1 && (limit == 0 || limit >= 2) && eq <= 1) {
            /* one bit per level (a list's repetition levels): each packed
             * byte spreads into 8 level bytes; every value is in range */
            size_t full = r.count / 8, ones = 0, i = 0;
            for (; i + 8 <= full; i += 8) {
                uint64_t w;
                memcpy(&w, r.p + i, 8);
                ones += pop64(w);
                for (size_t j = i; j < i + 8; j++)
                    memcpy(out + got + j * 8, &spread[r.p[j]], 8);
            }
            for (; i < full; i++) {
                memcpy(out + got + i * 8, &spread[r.p[i]], 8);
                ones += pop64(r.p[i]);
            }
            for (i = full * 8; i < r.count; i++) {
                out[got + i] = (uint8_t)((r.p[i / 8] >> (i % 8)) & 1);
                ones += out[got + i];
            }
            k += eq ? ones : r.count - ones;
        } else {
            /* straight into bytes: each 8 values use exactly width bytes */
            const uint64_t mask = (1ull << width) - 1;
            uint32_t bad = 0;
            size_t bit = 0;
            for (size_t i = 0; i < r.count; i++, bit += (size_t)width) {
                uint32_t v = width ? (uint32_t)((load_le(r.p + bit / 8, t.end) >> (bit % 8)) & mask) : 0;
                bad |= v >= limit;
                k += v == eq;
                out[got + i] = (uint8_t)v;
            }
            if (limit && bad)
                return -1;
        }
        got += r.count;
    }
    *neq = k;
    return 0;
}

int pq_delta_decode(const uint8_t *p, size_t len, int64_t *out, size_t cap, size_t *n, size_t *used)
{
    tr t;
    tr_init(&t, p, len);
    uint64_t block = tr_varint(&t), mini = tr_varint(&t), total = tr_varint(&t);
    int64_t first = tr_zz(&t);
    if (t.bad || block == 0 || block % 128 || mini == 0 || block % mini || (block / mini) % 32 || block > (1u << 20) ||
        total > cap)
        return -1;
    size_t per_mini = (size_t)(block / mini);
    size_t got = 0;
    uint64_t last = (uint64_t)first;
    if (total > 0)
        out[got++] = first;
    uint64_t buf[1024];
    while (got < total) {
        int64_t min_delta = tr_zz(&t);
        if (t.bad || mini > (uint64_t)(t.end - t.p))
            return -1;
        const uint8_t *widths = t.p;
        t.p += mini;
        for (uint64_t m = 0; m < mini && got < total; m++) {
            int w = widths[m];
            if (w > 64)
                return -1;
            size_t bytes = per_mini * (size_t)w / 8;
            if (bytes > (size_t)(t.end - t.p))
                return -1;
            size_t done = 0;
            while (done < per_mini && got < total) {
                size_t k = per_mini - done < 1024 ? per_mini - done : 1024;
                /* k values starting at bit done*w */
                size_t bitoff = done * (size_t)w;
                if (bitoff % 8 == 0) {
                    unpack64(t.p + bitoff / 8, t.p + bytes, w, buf, k);
                } else {
                    /* k is a multiple of 8 in practice (per_mini % 32 == 0) */
                    return -1;
                }
                for (size_t i = 0; i < k && got < total; i++) {
                    last = last + (uint64_t)min_delta + buf[i];
                    out[got++] = (int64_t)last;
                }
                done += k;
            }
            t.p += bytes;
        }
    }
    *n = got;
    *used = (size_t)(t.p - p);
    return 0;
}

/* ---- decompression ------------------------------------------------------------ */

static int decompress(sv_pq_reader *r, int codec, const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen,
                      sv_err *err)
{
    switch (codec) {
    case 0:
        if (inlen != outlen)
            return rfail(r, SV_ECORRUPT, err, "uncompressed page: sizes %zu and %zu differ", inlen, outlen);
        memcpy(out, in, inlen);
        return 0;
    case 1: {
        size_t ulen;
        if (snappy_uncompressed_length((const char *)in, inlen, &ulen) != SNAPPY_OK || ulen != outlen)
            return rfail(r, SV_ECORRUPT, err, "snappy: the page does not decompress to its stated %zu bytes", outlen);
        size_t o = outlen;
        if (snappy_uncompress((const char *)in, inlen, (char *)out, &o) != SNAPPY_OK || o != outlen)
            return rfail(r, SV_ECORRUPT, err, "snappy: corrupt compressed page");
        return 0;
    }
    case 2: {
        z_stream z;
        memset(&z, 0, sizeof z);
        if (inflateInit2(&z, 15 + 32) != Z_OK)
            return rfail(r, SV_ENOMEM, err, "gzip: cannot start");
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)(inlen > UINT_MAX ? UINT_MAX : inlen);
        z.next_out = out;
        z.avail_out = (uInt)(outlen > UINT_MAX ? UINT_MAX : outlen);
        int zr = inflate(&z, Z_FINISH);
        size_t total = z.total_out;
        inflateEnd(&z);
        if (zr != Z_STREAM_END || total != outlen)
            return rfail(r, SV_ECORRUPT, err, "gzip: corrupt page or wrong size (%zu of %zu bytes)", total, outlen);
        return 0;
    }
    case 6: {
        size_t z = ZSTD_decompress(out, outlen, in, inlen);
        if (ZSTD_isError(z) || z != outlen)
            return rfail(r, SV_ECORRUPT, err, "zstd: %s",
                         ZSTD_isError(z) ? ZSTD_getErrorName(z) : "the page decompresses to another size");
        return 0;
    }
    case 7: {
        if (inlen > INT_MAX || outlen > INT_MAX)
            return rfail(r, SV_ETOOBIG, err, "lz4: page too large");
        int k = LZ4_decompress_safe((const char *)in, (char *)out, (int)inlen, (int)outlen);
        if (k < 0 || (size_t)k != outlen)
            return rfail(r, SV_ECORRUPT, err, "lz4: corrupt page or wrong size");
        return 0;
    }
    case 5: {
        /* Deprecated LZ4: Hadoop framing (big-endian sizes + raw blocks), else raw. */
        size_t ip = 0, op = 0;
        bool ok = true;
        while (ip + 8 <= inlen && op < outlen) {
            uint32_t dsz = (uint32_t)in[ip] << 24 | (uint32_t)in[ip + 1] << 16 | (uint32_t)in[ip + 2] << 8 | in[ip + 3];
            uint32_t csz = (uint32_t)in[ip + 4] << 24 | (uint32_t)in[ip + 5] << 16 | (uint32_t)in[ip + 6] << 8 | in[ip + 7];
            ip += 8;
            if (csz > inlen - ip || dsz > outlen - op || csz > INT_MAX) {
                ok = false;
                break;
            }
            int k = LZ4_decompress_safe((const char *)in + ip, (char *)out + op, (int)csz, (int)dsz);
            if (k < 0 || (uint32_t)k != dsz) {
                ok = false;
                break;
            }
            ip += csz;
            op += dsz;
        }
        if (ok && ip == inlen && op == outlen)
            return 0;
        if (inlen <= INT_MAX && outlen <= INT_MAX) {
            int k = LZ4_decompress_safe((const char *)in, (char *)out, (int)inlen, (int)outlen);
            if (k >= 0 && (size_t)k == outlen)
                return 0;
        }
        return rfail(r, SV_ECORRUPT, err, "lz4: corrupt page");
    }
    default:
        return rfail(r, SV_EUNSUPPORTED, err, "compression codec %d is not supported (none, snappy, gzip, zstd, lz4_raw are)",
                     codec);
    }
}

/* ---- values --------------------------------------------------------------------- */

static int type_width(int type, int type_length)
{
    switch (type) {
    case 0: return 1;  /* bool as uint8 */
    case 1: return 4;
    case 2: return 8;
    case 3: return 8;  /* INT96 -> int64 ns */
    case 4: return 4;
    case 5: return 8;
    default: (void)type_length; return (int)sizeof(pq_bytes);
    }
}

static int64_t int96_ns(const uint8_t *p)
{
    uint64_t nanos;
    uint32_t jd;
    memcpy(&nanos, p, 8);
    memcpy(&jd, p + 8, 4);
    /* 2440588 = Julian day of 1970-01-01 */
    return ((int64_t)jd - 2440588) * 86400000000000ll + (int64_t)nanos;
}

/* Decodes nv PLAIN values into dst (representation of vals). p/len: input.
 * *used: bytes consumed. */
static int plain_decode(sv_pq_reader *r, int type, int tlen, const uint8_t *p, size_t len, void *dst, size_t nv,
                        size_t *used, sv_err *err)
{
    switch (type) {
    case 0: {
        if ((nv + 7) / 8 > len)
            return rfail(r, SV_ECORRUPT, err, "PLAIN booleans: %zu values need %zu bytes, the page has %zu", nv,
                         (nv + 7) / 8, len);
        uint8_t *o = dst;
        for (size_t i = 0; i < nv; i++)
            o[i] = (p[i / 8] >> (i % 8)) & 1;
        *used = (nv + 7) / 8;
        return 0;
    }
    case 1: case 2: case 4: case 5: {
        size_t w = type == 1 || type == 4 ? 4 : 8;
        if (nv > len / w)
            return rfail(r, SV_ECORRUPT, err, "PLAIN: %zu values of %zu bytes do not fit in %zu bytes", nv, w, len);
        memcpy(dst, p, nv * w);
        *used = nv * w;
        return 0;
    }
    case 3: {
        if (nv > len / 12)
            return rfail(r, SV_ECORRUPT, err, "PLAIN INT96: %zu values do not fit in %zu bytes", nv, len);
        int64_t *o = dst;
        for (size_t i = 0; i < nv; i++)
            o[i] = int96_ns(p + 12 * i);
        *used = nv * 12;
        return 0;
    }
    case 6: {
        pq_bytes *o = dst;
        size_t off = 0;
        for (size_t i = 0; i < nv; i++) {
            if (len - off < 4)
                return rfail(r, SV_ECORRUPT, err, "PLAIN BYTE_ARRAY value %zu: its length runs past the page", i);
            uint32_t l;
            memcpy(&l, p + off, 4);
            off += 4;
            if (l > len - off)
                return rfail(r, SV_ECORRUPT, err, "PLAIN BYTE_ARRAY value %zu: length %u runs past the page", i, l);
            o[i].p = p + off;
            o[i].len = l;
            off += l;
        }
        *used = off;
        return 0;
    }
    case 7: {
        pq_bytes *o = dst;
        size_t w = (size_t)tlen;
        if (nv > len / w)
            return rfail(r, SV_ECORRUPT, err, "PLAIN FIXED_LEN_BYTE_ARRAY: %zu values of %zu bytes do not fit in %zu",
                         nv, w, len);
        for (size_t i = 0; i < nv; i++) {
            o[i].p = p + i * w;
            o[i].len = (uint32_t)w;
        }
        *used = nv * w;
        return 0;
    }
    }
    return rfail(r, SV_ECORRUPT, err, "unknown physical type %d", type);
}

/* Decodes the values section of a data page: nv non-null values appended to
 * the column. buf is kept alive by the caller (byte arrays point into it). */
static int decode_values(sv_pq_reader *r, pq_col *c, int type, int tlen, int enc, const uint8_t *p, size_t len,
                         size_t nv, sv_err *err)
{
    int rc;
    if ((rc = bgrow(r, &c->vals, &c->cap_v, c->nv + nv, (size_t)c->width, err)))
        return rc;
    uint8_t *dst = (uint8_t *)c->vals + c->vals_off + c->nv * (size_t)c->width;
    size_t used;
    switch (enc) {
    case 0: /* PLAIN */
        if ((rc = plain_decode(r, type, tlen, p, len, dst, nv, &used, err)))
            return rc;
        break;
    case 2: case 8: { /* PLAIN_DICTIONARY, RLE_DICTIONARY */
        if (!c->dict)
            return rfail(r, SV_ECORRUPT, err, "a dictionary-encoded page without a dictionary page");
        if (nv == 0)
            break;
        if (c->ndict == 0)
            return rfail(r, SV_ECORRUPT, err, "dictionary indices into an empty dictionary");
        if (len < 1)
            return rfail(r, SV_ECORRUPT, err, "dictionary indices: empty page");
        int w = p[0];
        if (w > 32)
            return rfail(r, SV_ECORRUPT, err, "dictionary indices: bit width %d", w);
        uint32_t *idx;
        idx = balloc(r, nv * sizeof *idx, err, &rc);
        if (!idx)
            return rc;
        if (pq_rle_decode(p + 1, len - 1, w, idx, nv, (uint32_t)(c->ndict > UINT32_MAX ? UINT32_MAX : c->ndict))) {
            free(idx);
            r->budget -= (int64_t)(nv * sizeof *idx);
            return rfail(r, SV_ECORRUPT, err, "dictionary indices are malformed or past the dictionary's %zu entries",
                         c->ndict);
        }
        for (size_t i = 0; i < nv; i++)
            memcpy(dst + i * (size_t)c->width, (uint8_t *)c->dict + (size_t)idx[i] * (size_t)c->width, (size_t)c->width);
        free(idx);
        r->budget -= (int64_t)(nv * sizeof *idx);
        break;
    }
    case 3: { /* RLE: booleans (4-byte length prefix) */
        if (type != 0)
            return rfail(r, SV_EUNSUPPORTED, err, "RLE encoding for a non-boolean column");
        if (len < 4)
            return rfail(r, SV_ECORRUPT, err, "RLE booleans: missing length");
        uint32_t l;
        memcpy(&l, p, 4);
        if (l > len - 4)
            return rfail(r, SV_ECORRUPT, err, "RLE booleans: length %u runs past the page", l);
        uint32_t *tmp = balloc(r, nv * sizeof *tmp, err, &rc);
        if (!tmp)
            return rc;
        int bad = pq_rle_decode(p + 4, l, 1, tmp, nv, 2);
        for (size_t i = 0; !bad && i < nv; i++)
            dst[i] = (uint8_t)tmp[i];
        free(tmp);
        r->budget -= (int64_t)(nv * sizeof *tmp);
        if (bad)
            return rfail(r, SV_ECORRUPT, err, "RLE booleans are malformed");
        break;
    }
    case 5: { /* DELTA_BINARY_PACKED */
        if (type != 1 && type != 2)
            return rfail(r, SV_ECORRUPT, err, "DELTA_BINARY_PACKED for a column that is not INT32/INT64");
        int64_t *tmp = balloc(r, (nv ? nv : 1) * sizeof *tmp, err, &rc);
        if (!tmp)
            return rc;
        size_t got, u;
        int bad = pq_delta_decode(p, len, tmp, nv, &got, &u) || got != nv;
        if (!bad) {
            if (type == 1)
                for (size_t i = 0; i < nv; i++) {
                    int32_t v = (int32_t)(uint32_t)tmp[i];
                    memcpy(dst + 4 * i, &v, 4);
                }
            else
                memcpy(dst, tmp, nv * 8);
        }
        free(tmp);
        r->budget -= (int64_t)((nv ? nv : 1) * sizeof(int64_t));
        if (bad)
            return rfail(r, SV_ECORRUPT, err, "DELTA_BINARY_PACKED values are malformed");
        break;
    }
    case 6: case 7: { /* DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY */
        if (type != 6 && !(enc == 7 && type == 7))
            return rfail(r, SV_ECORRUPT, err, "%s for a column that is not BYTE_ARRAY",
                         enc == 6 ? "DELTA_LENGTH_BYTE_ARRAY" : "DELTA_BYTE_ARRAY");
        size_t nn = nv ? nv : 1;
        int64_t *pre = NULL, *lens = balloc(r, nn * sizeof *lens, err, &rc);
        if (!lens)
            return rc;
        size_t off = 0, got, u;
        int bad = 0;
        if (enc == 7) {
            pre = balloc(r, nn * sizeof *pre, err, &rc);
            if (!pre) {
                free(lens);
                return rc;
            }
            bad = pq_delta_decode(p, len, pre, nv, &got, &u) || got != nv;
            off = u;
        }
        if (!bad) {
            bad = pq_delta_decode(p + off, len - off, lens, nv, &got, &u) || got != nv;
            off += u;
        }
        size_t total = 0;
        for (size_t i = 0; !bad && i < nv; i++) {
            if (lens[i] < 0 || (uint64_t)lens[i] > len - off - total || (pre && (pre[i] < 0 || pre[i] > (1ll << 30))))
                bad = 1;
            else
                total += (size_t)lens[i];
        }
        pq_bytes *o = (pq_bytes *)dst;
        if (!bad && !pre) {
            const uint8_t *q = p + off;
            for (size_t i = 0; i < nv; i++) {
                o[i].p = q;
                o[i].len = (uint32_t)lens[i];
                q += lens[i];
            }
        } else if (!bad) {
            /* values = prefix of the previous + suffix: built in a new buffer */
            size_t need = 0;
            uint64_t prev = 0;
            for (size_t i = 0; i < nv && !bad; i++) {
                if ((uint64_t)pre[i] > prev)
                    bad = 1;
                prev = (uint64_t)pre[i] + (uint64_t)lens[i];
                if (prev > UINT32_MAX || need > SIZE_MAX - prev)
                    bad = 1;
                need += prev;
            }
            uint8_t *vb = NULL;
            if (!bad) {
                vb = balloc(r, need ? need : 1, err, &rc);
                if (!vb) {
                    free(lens);
                    free(pre);
                    return rc;
                }
                size_t w = 0;
                const uint8_t *q = p + off;
                const uint8_t *last = NULL;
                for (size_t i = 0; i < nv; i++) {
                    if (pre[i])
                        memcpy(vb + w, last, (size_t)pre[i]);
                    memcpy(vb + w + pre[i], q, (size_t)lens[i]);
                    q += lens[i];
                    o[i].p = vb + w;
                    o[i].len = (uint32_t)(pre[i] + lens[i]);
                    last = vb + w;
                    w += o[i].len;
                }
                if ((rc = keep_buf(r, c, vb, err))) {
                    free(lens);
                    free(pre);
                    return rc;
                }
            }
        }
        free(lens);
        free(pre);
        if (bad)
            return rfail(r, SV_ECORRUPT, err, "%s values are malformed",
                         enc == 6 ? "DELTA_LENGTH_BYTE_ARRAY" : "DELTA_BYTE_ARRAY");
        break;
    }
    case 9: { /* BYTE_STREAM_SPLIT */
        size_t k;
        if (type == 1 || type == 4) k = 4;
        else if (type == 2 || type == 5) k = 8;
        else if (type == 7) k = (size_t)tlen;
        else return rfail(r, SV_ECORRUPT, err, "BYTE_STREAM_SPLIT for an unsupported type");
        if (nv > len / k)
            return rfail(r, SV_ECORRUPT, err, "BYTE_STREAM_SPLIT: %zu values of %zu bytes do not fit in %zu", nv, k, len);
        if (type == 7) {
            uint8_t *vb = balloc(r, nv * k + 1, err, &rc);
            if (!vb)
                return rc;
            for (size_t i = 0; i < nv; i++)
                for (size_t b = 0; b < k; b++)
                    vb[i * k + b] = p[b * nv + i];
            pq_bytes *o = (pq_bytes *)dst;
            for (size_t i = 0; i < nv; i++) {
                o[i].p = vb + i * k;
                o[i].len = (uint32_t)k;
            }
            if ((rc = keep_buf(r, c, vb, err)))
                return rc;
        } else {
            for (size_t i = 0; i < nv; i++)
                for (size_t b = 0; b < k; b++)
                    dst[i * k + b] = p[b * nv + i];
        }
        break;
    }
    default:
        return rfail(r, SV_EUNSUPPORTED, err, "encoding %d is not supported", enc);
    }
    c->nv += nv;
    return 0;
}

/* Levels: v1 RLE (4-byte length prefix) or BIT_PACKED, v2 raw hybrid. */
/* *neq: how many of the n levels equal eq. */
static int decode_levels(sv_pq_reader *r, uint8_t *dst, size_t n, int max, int enc, bool v1, const uint8_t *p,
                         size_t len, size_t *used, uint8_t eq, size_t *neq, const char *what, sv_err *err)
{
    int w = 0;
    while ((1 << w) <= max)
        w++;
    int bad = 0;
    if (v1 && enc == 4) { /* BIT_PACKED: MSB first, no length */
        size_t bytes = (n * (size_t)w + 7) / 8;
        if (bytes > len)
            bad = 1;
        for (size_t i = 0; !bad && i < n; i++) {
            uint32_t v = 0;
            for (int b = 0; b < w; b++) {
                size_t bit = i * (size_t)w + (size_t)b;
                v = v << 1 | ((p[bit / 8] >> (7 - bit % 8)) & 1);
            }
            if (v > (uint32_t)max)
                bad = 1;
            dst[i] = (uint8_t)v;
        }
        *used = bytes;
        *neq = count_eq(dst, n, eq);
    } else if (v1) {
        if (enc != 3)
            bad = 2;
        else if (len < 4)
            bad = 1;
        else {
            uint32_t l;
            memcpy(&l, p, 4);
            if (l > len - 4)
                bad = 1;
            else {
                bad = rle_decode_u8(p + 4, l, w, dst, n, (uint32_t)max + 1, eq, neq) ? 1 : 0;
                *used = 4 + (size_t)l;
            }
        }
    } else {
        bad = rle_decode_u8(p, len, w, dst, n, (uint32_t)max + 1, eq, neq) ? 1 : 0;
        *used = len;
    }
    if (bad == 2)
        return rfail(r, SV_EUNSUPPORTED, err, "%s levels: encoding %d is not supported", what, enc);
    if (bad)
        return rfail(r, SV_ECORRUPT, err, "%s levels are malformed or above the maximum %d", what, max);
    return 0;
}

/* A decompressed data page: byte values point into it, so it is kept for
 * the row group; fixed-width values are copied out at once, so those pages
 * share one buffer of the reader, reused (a 128-d float column has hundreds
 * of pages per row group: fresh memory for each costs more than decoding). */
static int page_buf(sv_pq_reader *r, pq_col *c, bool fixed, size_t len, uint8_t **ub, sv_err *err)
{
    int rc = 0;
    if (fixed) {
        if ((rc = bgrow_to(r, &r->pagebuf, &r->cap_pagebuf, len, 1, false, err)))
            return rc;
        *ub = r->pagebuf;
        return 0;
    }
    if (!(*ub = balloc(r, len, err, &rc)))
        return rc;
    return keep_buf(r, c, *ub, err);
}

/* A column chunk as the page loop sees it. Byte-array chunks are read
 * whole (values may point into them: base). A fixed-width chunk is read
 * through a window of the reader's chunk buffer, PQ_WINDOW bytes or one
 * page when larger: its values are copied out page by page, so only the
 * page being decoded needs to be in memory (a 128-d float column's chunk
 * is tens of MB per row group). Positions only move forward. */
#define PQ_WINDOW (8u << 20)

typedef struct chunk_win {
    bool fixed;
    const uint8_t *base; /* !fixed: the whole chunk */
    size_t beg, end;     /* chunk bytes [beg, end) are in the buffer */
    uint64_t off;        /* the chunk's offset in the file */
    size_t clen;
} chunk_win;

/* *p = chunk bytes [pos, pos + n) (the caller keeps pos + n <= clen). */
static int win_get(sv_pq_reader *r, chunk_win *w, size_t pos, size_t n, const uint8_t **p, sv_err *err)
{
    if (!w->fixed) {
        *p = w->base + pos;
        return 0;
    }
    if (pos >= w->beg && pos + n <= w->end) {
        *p = r->chunk + (pos - w->beg);
        return 0;
    }
    size_t keep = pos >= w->beg && pos < w->end ? w->end - pos : 0;
    if (keep)
        memmove(r->chunk, r->chunk + (pos - w->beg), keep);
    size_t want = n > PQ_WINDOW ? n : PQ_WINDOW;
    if (want > w->clen - pos)
        want = w->clen - pos;
    int rc = bgrow_to(r, &r->chunk, &r->cap_chunk, want, 1, true, err);
    if (rc == 0 && want > keep)
        rc = src_read(r, w->off + pos + keep, r->chunk + keep, want - keep, err);
    if (rc) {
        w->beg = w->end = 0;
        return rc;
    }
    w->beg = pos;
    w->end = pos + want;
    *p = r->chunk;
    return 0;
}

/* A big zstd page decompressed as it is read: the bytes of it the window
 * holds first, then PQ_STREAM_PIECE at a time through the window's buffer
 * (read, then at once decompressed while in the cache), straight into out
 * (a stable output buffer: zstd writes it in place). Reading such a page
 * whole took a buffer of its size (58 MB for the bench's vector column) and
 * a trip through memory on the way to zstd. The window is empty after. */
#define PQ_STREAM_MIN (4u << 20)
#define PQ_STREAM_PIECE (1u << 20)

static int stream_zstd(sv_pq_reader *r, chunk_win *w, size_t pos, size_t inlen, uint8_t *out, size_t outlen,
                       sv_err *err)
{
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return rfail(r, SV_ENOMEM, err, "out of memory");
    int rc = 0;
    size_t zr = ZSTD_DCtx_setParameter(d, ZSTD_d_stableOutBuffer, 1), last = 1;
    if (ZSTD_isError(zr))
        rc = rfail(r, SV_EUNSUPPORTED, err, "zstd: %s", ZSTD_getErrorName(zr));
    ZSTD_outBuffer ob = {out, outlen, 0};
    size_t done = 0;
    while (rc == 0 && done < inlen) {
        const uint8_t *p;
        size_t n;
        if (pos + done >= w->beg && pos + done < w->end) {
            p = r->chunk + (pos + done - w->beg);
            n = w->end - (pos + done);
            if (n > inlen - done)
                n = inlen - done;
        } else {
            w->beg = w->end = 0; /* the buffer is overwritten */
            n = inlen - done < PQ_STREAM_PIECE ? inlen - done : PQ_STREAM_PIECE;
            if ((rc = bgrow_to(r, &r->chunk, &r->cap_chunk, n, 1, true, err)) ||
                (rc = src_read(r, w->off + pos + done, r->chunk, n, err)))
                break;
            p = r->chunk;
        }
        ZSTD_inBuffer ib = {p, n, 0};
        while (ib.pos < ib.size) {
            last = ZSTD_decompressStream(d, &ob, &ib);
            if (ZSTD_isError(last)) {
                rc = rfail(r, SV_ECORRUPT, err, "zstd: %s", ZSTD_getErrorName(last));
                break;
            }
            if (ob.pos == ob.size && ib.pos < ib.size && last != 0) {
                rc = rfail(r, SV_ECORRUPT, err, "zstd: the page decompresses to another size");
                break;
            }
        }
        done += n;
    }
    if (rc == 0 && (last != 0 || ob.pos != outlen))
        rc = rfail(r, SV_ECORRUPT, err, "zstd: %s",
                   last != 0 ? "the page ends inside a frame" : "the page decompresses to another size");
    w->beg = w->end = 0;
    ZSTD_freeDCtx(d);
    return rc;
}

static int load_column(sv_pq_reader *r, int ci, sv_err *err)
{
    pq_rowgroup *g = &r->meta.rgs[r->rg];
    pq_colmeta *cm = &g->cols[ci];
    pq_col *c = &r->cols[ci];
    const pq_leafpath *lp = &r->schema.leaves[ci];
    const pq_selem *e = &r->meta.elems[lp->raw];
    int type = e->type, tlen = e->type_length;
    int rc;
    r->cur_col = ci;
    r->cur_page = -1;
    c->width = type_width(type, tlen);
    int64_t start = cm->data_off;
    if (cm->has_dict && cm->dict_off > 0 && cm->dict_off < start)
        start = cm->dict_off;
    int64_t clen = cm->total_compressed;
    if ((uint64_t)start > r->src.size || (uint64_t)clen > r->src.size - (uint64_t)start)
        return rfail(r, SV_ECORRUPT, err, "the column chunk (%lld bytes at %lld) runs past the end of the file "
                     "(truncated file?)", (long long)clen, (long long)start);
    bool fixed = type != 6 && type != 7;
    uint8_t *chunk = NULL;
    chunk_win w = {.off = (uint64_t)start, .clen = (size_t)clen};
    if (fixed) {
        w.fixed = true; /* read through the window as pages come */
    } else {
        if (!(chunk = balloc(r, (size_t)clen, err, &rc)))
            return rc;
        if ((rc = keep_buf(r, c, chunk, err)))
            return rc;
        if ((rc = src_read(r, (uint64_t)start, chunk, (size_t)clen, err)))
            return rc;
        w.base = chunk;
        w.end = (size_t)clen;
    }
    /* Room for the chunk's levels and values at once, exactly: grown by
     * doubling page after page they would hold up to twice what is decoded.
     * Past 64Mi values the pages grow them as they come. */
    if (cm->num_values > 0 && cm->num_values <= (64ll << 20)) {
        size_t want = (size_t)cm->num_values;
        if ((lp->max_rep > 0 && (rc = bgrow_to(r, &c->rep, &c->cap_rep, want, 1, true, err))) ||
            (lp->max_def > 0 && (rc = bgrow_to(r, &c->def, &c->cap_def, want, 1, true, err))) ||
            (rc = bgrow_to(r, &c->vals, &c->cap_v, want, (size_t)c->width, true, err)))
            return rc;
    }
    size_t pos = 0;
    int64_t values_seen = 0, rows = 0; /* rows in this column */
    int page = 0;
    bool have_dict = false, chunk_ref = false;
    while (values_seen < cm->num_values) {
        r->cur_page = page;
        if (pos >= (size_t)clen)
            return rfail(r, SV_ECORRUPT, err, "the chunk ends after %lld of its %lld values",
                         (long long)values_seen, (long long)cm->num_values);
        pq_page h;
        size_t hl;
        /* the header: 64 KiB of the chunk first, more if it is longer */
        size_t hn = (size_t)clen - pos < (64u << 10) ? (size_t)clen - pos : (64u << 10);
        const uint8_t *hp;
        for (;;) {
            if ((rc = win_get(r, &w, pos, hn, &hp, err)))
                return rc;
            if (!pq_parse_page_header(hp, hn, &h, &hl))
                break;
            if (hn == (size_t)clen - pos)
                return rfail(r, SV_ECORRUPT, err, "malformed page header");
            hn = (size_t)clen - pos < hn * 8 ? (size_t)clen - pos : hn * 8;
        }
        pos += hl;
        if (h.compressed < 0 || h.uncompressed < 0 || (uint64_t)h.compressed > (uint64_t)clen - pos)
            return rfail(r, SV_ECORRUPT, err, "page size %lld runs past the column chunk", (long long)h.compressed);
        if (h.uncompressed > r->opt.max_page_bytes)
            return rfail(r, SV_ETOOBIG, err, "page of %lld bytes is larger than the limit of %lld",
                         (long long)h.uncompressed, (long long)r->opt.max_page_bytes);
        /* In place: a compressed v1 page that holds the whole chunk of 4- or
         * 8-byte PLAIN numbers (DuckDB writes a vector column's row group as
         * one page of tens of MB) is decompressed into the value array
         * itself, its levels first: the values stay where they land
         * (vals_off), no page buffer and no copy. pad places them aligned
         * when the levels take as many bytes as the last row group's did;
         * otherwise they move to the front (the copy the usual path makes).
         * A big zstd one is also read as it is decompressed (stream_zstd). */
        bool in_place = h.type == 0 && fixed && h.encoding == 0 && cm->codec != 0 && !have_dict &&
                        (type == 1 || type == 2 || type == 4 || type == 5) && c->nv == 0 && c->n == 0 &&
                        h.num_values == cm->num_values;
        bool stream = in_place && cm->codec == 6 && (size_t)h.compressed >= PQ_STREAM_MIN;
        size_t page_pos = pos;
        const uint8_t *pp = NULL;
        if (!stream && (rc = win_get(r, &w, pos, (size_t)h.compressed, &pp, err)))
            return rc;
        size_t plen = (size_t)h.compressed;
        pos += plen;
        page++;
        if (h.type == 2) { /* dictionary */
            if (have_dict)
                return rfail(r, SV_ECORRUPT, err, "a second dictionary page");
            if (h.encoding != 0 && h.encoding != 2)
                return rfail(r, SV_EUNSUPPORTED, err, "dictionary page encoding %d", h.encoding);
            if (h.num_values < 0 || h.num_values > h.uncompressed + 1)
                return rfail(r, SV_ECORRUPT, err, "dictionary of %lld values in %lld bytes", (long long)h.num_values,
                             (long long)h.uncompressed);
            uint8_t *ub = balloc(r, (size_t)h.uncompressed, err, &rc);
            if (!ub)
                return rc;
            if ((rc = keep_buf(r, c, ub, err)))
                return rc;
            if ((rc = decompress(r, cm->codec, pp, plen, ub, (size_t)h.uncompressed, err)))
                return rc;
            size_t nd = (size_t)h.num_values;
            c->dict = balloc(r, (nd ? nd : 1) * (size_t)c->width, err, &rc);
            if (!c->dict)
                return rc;
            size_t used;
            if ((rc = plain_decode(r, type, tlen, ub, (size_t)h.uncompressed, c->dict, nd, &used, err)))
                return rc;
            c->ndict = nd;
            have_dict = true;
            continue;
        }
        if (h.type != 0 && h.type != 3)
            continue; /* index pages and unknown pages are skipped */
        if (h.num_values < 0 || h.num_values > cm->num_values - values_seen)
            return rfail(r, SV_ECORRUPT, err, "page has %lld values, the chunk only %lld left", (long long)h.num_values,
                         (long long)(cm->num_values - values_seen));
        size_t n = (size_t)h.num_values;
        /* levels storage */
        if (lp->max_rep > 0 && (rc = bgrow(r, &c->rep, &c->cap_rep, c->n + n, 1, err)))
            return rc;
        if (lp->max_def > 0 && (rc = bgrow(r, &c->def, &c->cap_def, c->n + n, 1, err)))
            return rc;
        const uint8_t *vp;
        size_t vlen;
        uint8_t *ub = NULL;
        size_t nv = n, starts = n; /* values present, rows started (levels equal to max_def, to 0) */
        if (h.type == 0) {
            if (in_place) {
                size_t vw = (size_t)c->width;
                if ((rc = bgrow_to(r, &c->vals, &c->cap_v, (c->pad + (size_t)h.uncompressed + vw - 1) / vw, vw, true,
                                   err)))
                    return rc;
                ub = (uint8_t *)c->vals + c->pad;
            } else if ((rc = page_buf(r, c, fixed, (size_t)h.uncompressed, &ub, err))) {
                return rc;
            }
            if ((rc = stream ? stream_zstd(r, &w, page_pos, plen, ub, (size_t)h.uncompressed, err)
                             : decompress(r, cm->codec, pp, plen, ub, (size_t)h.uncompressed, err)))
                return rc;
            size_t off = 0, used = 0;
            if (lp->max_rep > 0) {
                if ((rc = decode_levels(r, c->rep + c->n, n, lp->max_rep, h.rep_encoding, true, ub, (size_t)h.uncompressed,
                                        &used, 0, &starts, "repetition", err)))
                    return rc;
                off += used;
            }
            if (lp->max_def > 0) {
                if ((rc = decode_levels(r, c->def + c->n, n, lp->max_def, h.def_encoding, true, ub + off,
                                        (size_t)h.uncompressed - off, &used, (uint8_t)lp->max_def, &nv, "definition",
                                        err)))
                    return rc;
                off += used;
            }
            vp = ub + off;
            vlen = (size_t)h.uncompressed - off;
        } else {
            if (h.rep_len < 0 || h.def_len < 0 || (uint64_t)h.rep_len + (uint64_t)h.def_len > plen ||
                h.rep_len + h.def_len > h.uncompressed)
                return rfail(r, SV_ECORRUPT, err, "v2 page level lengths run past the page");
            size_t used;
            if (lp->max_rep > 0 &&
                (rc = decode_levels(r, c->rep + c->n, n, lp->max_rep, 3, false, pp, (size_t)h.rep_len, &used, 0,
                                    &starts, "repetition", err)))
                return rc;
            if (lp->max_def > 0 &&
                (rc = decode_levels(r, c->def + c->n, n, lp->max_def, 3, false, pp + h.rep_len, (size_t)h.def_len,
                                    &used, (uint8_t)lp->max_def, &nv, "definition", err)))
                return rc;
            const uint8_t *cp = pp + h.rep_len + h.def_len;
            size_t clen2 = plen - (size_t)(h.rep_len + h.def_len);
            size_t ulen = (size_t)(h.uncompressed - h.rep_len - h.def_len);
            if (h.v2_compressed && cm->codec != 0) {
                if ((rc = page_buf(r, c, fixed, ulen, &ub, err)))
                    return rc;
                if ((rc = decompress(r, cm->codec, cp, clen2, ub, ulen, err)))
                    return rc;
                vp = ub;
                vlen = ulen;
            } else {
                vp = cp;
                vlen = clen2;
                chunk_ref = true; /* byte values may point into the chunk */
            }
        }
        if (lp->max_rep > 0 && c->n == 0 && n > 0 && c->rep[0] != 0)
            return rfail(r, SV_ECORRUPT, err, "the first repetition level of the chunk is not 0");
        if (in_place) {
            size_t vw = (size_t)c->width, at = (size_t)(vp - (const uint8_t *)c->vals), lev = at - c->pad;
            if (nv > vlen / vw)
                return rfail(r, SV_ECORRUPT, err, "PLAIN: %zu values of %zu bytes do not fit in %zu bytes", nv, vw,
                             vlen);
            if (at % vw) {
                memmove(c->vals, vp, nv * vw);
                at = 0;
            }
            c->vals_off = at;
            c->pad = (vw - lev % vw) % vw; /* the next row group's levels likely take as many bytes */
            c->nv = nv;
        } else if ((rc = decode_values(r, c, type, tlen, h.encoding, vp, vlen, nv, err))) {
            return rc;
        }
        c->n += n;
        rows += (int64_t)starts;
        values_seen += (int64_t)n;
    }

    if (!fixed && !chunk_ref) {
        /* every value points into a decompressed page: the chunk goes now */
        for (size_t i = 0; i < c->nbufs; i++)
            if (c->bufs[i] == chunk) {
                free(chunk);
                c->bufs[i] = c->bufs[--c->nbufs];
                r->budget -= clen;
                break;
            }
    }
    r->cur_page = -1;
    if (rows != g->num_rows)
        return rfail(r, SV_ECORRUPT, err, "the column holds %lld rows, the row group says %lld", (long long)rows,
                     (long long)g->num_rows);
    return 0;
}

/* ---- decoding a row group --------------------------------------------------------
 * With decode_threads > 1 the columns are split in two groups of about equal
 * uncompressed size (from the footer, biggest first to the lighter group);
 * the helper - a copy of the reader with its own window, page buffer and
 * budget, writing only the pq_col of its columns - decodes one group on a
 * thread while the caller decodes the other. Each side is held to half of
 * what the row group may still allocate, so max_row_group_bytes bounds the
 * two together; only when the footer's estimate fits that half. Errors: the
 * caller's if it has one, else the helper's (each names its column). */

static void helper_free(sv_pq_reader *r)
{
    sv_pq_reader *h = r->helper;
    if (!h)
        return;
    free(h->chunk);
    free(h->pagebuf);
    free(h);
    free(r->mine);
    r->helper = NULL;
    r->mine = NULL;
}

static int load_columns(sv_pq_reader *r, const bool *skip, sv_err *err)
{
    for (int ci = 0; ci < r->schema.nleaves; ci++) {
        if (skip && skip[ci])
            continue;
        int rc = r->shadow && atomic_load(&r->pf_stop) ? sv_fail(err, SV_ECANCELED, "reader closed")
                                                        : load_column(r, ci, err);
        if (rc)
            return rc;
    }
    return 0;
}

static void *helper_main(void *arg)
{
    sv_pq_reader *h = arg;
    bool *theirs = h->mine; /* the helper's copy points at the owner's: decode where mine is set */
    for (int ci = 0; ci < h->schema.nleaves && h->pf_rc == 0; ci++)
        if (theirs[ci])
            h->pf_rc = load_column(h, ci, &h->pf_err);
    return NULL;
}

/* The helper ready for row group r->rg, its columns chosen; NULL: decode
 * alone. */
static sv_pq_reader *helper_for(sv_pq_reader *r)
{
    int n = r->schema.nleaves;
    if (r->opt.decode_threads < 2 || n < 2)
        return NULL;
    int64_t room = (r->opt.max_row_group_bytes - r->budget) / 2;
    if (room <= 0 || rg_decoded_bytes(r, r->rg) > room)
        return NULL;
    if (!r->helper) {
        sv_pq_reader *h = reader_clone(r);
        bool *mine = calloc((size_t)n, sizeof *mine);
        if (!h || !mine) {
            free(h);
            free(mine);
            return NULL;
        }
        r->helper = h;
        r->mine = mine;
    }
    sv_pq_reader *h = r->helper;
    /* split: each column, biggest first, to the side with fewer bytes */
    const pq_rowgroup *g = &r->meta.rgs[r->rg];
    int64_t side[2] = {0, 0};
    memset(r->mine, 0, (size_t)n * sizeof *r->mine);
    bool *placed = calloc((size_t)n, sizeof *placed);
    if (!placed)
        return NULL;
    for (int k = 0; k < n; k++) {
        int best = -1;
        for (int ci = 0; ci < n; ci++)
            if (!placed[ci] && (best < 0 || g->cols[ci].total_uncompressed > g->cols[best].total_uncompressed))
                best = ci;
        placed[best] = true;
        int to = side[1] < side[0];
        r->mine[best] = to == 1;
        side[to] += g->cols[best].total_uncompressed;
    }
    free(placed);
    h->cols = r->cols;
    h->rg = r->rg;
    h->mine = r->mine;
    h->loaded = true;
    h->cur_col = h->cur_page = -1;
    h->bytes_read = 0;
    h->budget = (int64_t)(h->cap_chunk + h->cap_pagebuf);
    h->opt.max_row_group_bytes = h->budget + room;
    h->pf_rc = 0;
    return h;
}

static int load_row_group(sv_pq_reader *r, sv_err *err)
{
    unload(r);
    r->loaded = true;
    sv_pq_reader *h = helper_for(r);
    int rc = 0;
    if (h) {
        pthread_t th;
        bool threaded = pthread_create(&th, NULL, helper_main, h) == 0;
        if (!threaded)
            helper_main(h);
        int64_t max = r->opt.max_row_group_bytes;
        r->opt.max_row_group_bytes = r->budget + (max - r->budget) / 2;
        rc = load_columns(r, r->mine, err);
        r->opt.max_row_group_bytes = max;
        if (threaded)
            pthread_join(th, NULL);
        r->bytes_read += h->bytes_read;
        r->budget += h->budget;
        if (rc == 0 && h->pf_rc) {
            rc = h->pf_rc;
            if (err)
                *err = h->pf_err;
        }
    } else {
        rc = load_columns(r, NULL, err);
    }
    if (rc) {
        unload(r);
        r->loaded = false;
        r->cur_col = -1;
        r->cur_page = -1;
        return rc;
    }
    r->cur_col = -1;
    return 0;
}

/* ---- assembly ------------------------------------------------------------------- */

#define PQV_UNSET 0xff

static void *arena_alloc(sv_pq_reader *r, size_t bytes)
{
    bytes = (bytes + 15) & ~(size_t)15;
    struct arena_chunk *c = r->arena;
    if (!c || c->cap - c->used < bytes) {
        size_t cap = bytes > (256u << 10) ? bytes : (256u << 10);
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = r->arena;
        r->arena = c;
    }
    void *p = c->data + c->used;
    c->used += bytes;
    return p;
}

static void leaf_value(const pq_col *c, const pq_lnode *n, size_t vi, sv_pq_value *v)
{
    const uint8_t *base = (const uint8_t *)c->vals + c->vals_off + vi * (size_t)c->width;
    v->n = 0;
    switch (n->pub.type) {
    case SV_PQ_BOOLEAN: v->kind = SV_PQV_BOOL; v->u.b = *base != 0; break;
    case SV_PQ_INT32: {
        int32_t x;
        memcpy(&x, base, 4);
        v->kind = SV_PQV_INT;
        v->u.i = (n->pub.lt == SV_PQ_RLT_INT && !n->pub.is_signed) ? (int64_t)(uint32_t)x : x;
        break;
    }
    case SV_PQ_INT64: v->kind = SV_PQV_INT; memcpy(&v->u.i, base, 8); break;
    case SV_PQ_FLOAT: v->kind = SV_PQV_FLOAT; memcpy(&v->u.f, base, 4); break;
    case SV_PQ_DOUBLE: v->kind = SV_PQV_DOUBLE; memcpy(&v->u.d, base, 8); break;
    default: {
        pq_bytes b;
        memcpy(&b, base, sizeof b);
        v->kind = SV_PQV_BYTES;
        v->u.bytes = b.p;
        v->n = b.len;
    }
    }
}

typedef struct asm_ctx {
    sv_pq_reader *r;
    pq_col *c;
    const pq_leafpath *lp;
    sv_err *err;
} asm_ctx;

static int mismatch(asm_ctx *a)
{
    return rfail(a->r, SV_ECORRUPT, a->err, "the columns' repetition and definition levels disagree");
}

static int fill(asm_ctx *a, int depth, sv_pq_value *slot)
{
    pq_col *c = a->c;
    const pq_lnode *n = a->lp->path[depth];
    if (c->i >= c->n)
        return rfail(a->r, SV_ECORRUPT, a->err, "levels end inside a row");
    int d = c->def ? c->def[c->i] : 0;
    if (n->pub.optional && d < n->def_at) {
        if (slot->kind == PQV_UNSET)
            slot->kind = SV_PQV_NULL;
        else if (slot->kind != SV_PQV_NULL)
            return mismatch(a);
        c->i++;
        return 0;
    }
    if (slot->kind == SV_PQV_NULL)
        return mismatch(a);
    switch (n->pub.kind) {
    case SV_PQ_RLEAF:
        if (d < a->lp->max_def)
            return mismatch(a);
        if (c->vi >= c->nv)
            return mismatch(a);
        leaf_value(c, n, c->vi++, slot);
        c->i++;
        return 0;
    case SV_PQ_RGROUP: {
        if (slot->kind == PQV_UNSET) {
            sv_pq_value *kids = arena_alloc(a->r, (size_t)n->pub.n_children * sizeof *kids);
            if (!kids)
                return rfail(a->r, SV_ENOMEM, a->err, "out of memory");
            for (int i = 0; i < n->pub.n_children; i++)
                kids[i].kind = PQV_UNSET;
            slot->kind = SV_PQV_GROUP;
            slot->n = (uint32_t)n->pub.n_children;
            slot->u.items = kids;
        } else if (slot->kind != SV_PQV_GROUP) {
            return mismatch(a);
        }
        return fill(a, depth + 1, (sv_pq_value *)&slot->u.items[a->lp->idx[depth + 1]]);
    }
    case SV_PQ_RLIST: {
        if (d < n->elem_def) {
            if (slot->kind == PQV_UNSET) {
                slot->kind = SV_PQV_LIST;
                slot->n = 0;
                slot->u.items = NULL;
            } else if (slot->kind != SV_PQV_LIST || slot->n != 0) {
                return mismatch(a);
            }
            c->i++;
            return 0;
        }
        const pq_lnode *el = a->lp->path[depth + 1];
        if (slot->kind == PQV_UNSET && el->pub.kind == SV_PQ_RLEAF && !el->int96 &&
            (el->pub.type == SV_PQ_FLOAT || el->pub.type == SV_PQ_DOUBLE || el->pub.type == SV_PQ_INT64 ||
             (el->pub.type == SV_PQ_INT32 && !(el->pub.lt == SV_PQ_RLT_INT && !el->pub.is_signed)))) {
            /* packed fast path: all elements present */
            size_t k = 0;
            bool all = true;
            if ((c->def ? c->def[c->i] : 0) != a->lp->max_def)
                all = false;
            else
                k = 1;
            /* the rest of the list: 8 levels at a time while every one
             * continues it (rep) with a value present (def), then one by one */
            const uint64_t rw8 = 0x0101010101010101ull * (uint8_t)n->rep_level;
            const uint64_t dw8 = 0x0101010101010101ull * (uint8_t)a->lp->max_def;
            for (size_t j = c->i + 1; all && j + 8 <= c->n; j += 8, k += 8) {
                uint64_t rw, dw = dw8;
                memcpy(&rw, c->rep + j, 8);
                if (c->def)
                    memcpy(&dw, c->def + j, 8);
                if (rw != rw8 || dw != dw8)
                    break;
            }
            for (size_t j = c->i + k; all && j < c->n; j++) {
                if (c->rep[j] != n->rep_level)
                    break;
                if ((c->def ? c->def[j] : 0) != a->lp->max_def) {
                    all = false;
                    break;
                }
                k++;
            }
            if (all) {
                if (c->vi + k > c->nv || k > UINT32_MAX)
                    return mismatch(a);
                slot->kind = SV_PQV_PACKED;
                slot->n = (uint32_t)k;
                slot->u.raw = (const uint8_t *)c->vals + c->vals_off + c->vi * (size_t)c->width;
                c->vi += k;
                c->i += k;
                if (c->i < c->n && c->rep[c->i] > n->rep_level)
                    return mismatch(a);
                return 0;
            }
        }
        if (slot->kind == PQV_UNSET) {
            sv_pq_reader *r = a->r;
            int sd = depth;
            size_t j = 0;
            for (;;) {
                if (sv_grow(&r->scratch[sd], &r->scratch_cap[sd], j + 1, sizeof(sv_pq_value)))
                    return rfail(r, SV_ENOMEM, a->err, "out of memory");
                r->scratch[sd][j].kind = PQV_UNSET;
                int rc = fill(a, depth + 1, &r->scratch[sd][j]);
                if (rc)
                    return rc;
                j++;
                if (c->i >= c->n || c->rep[c->i] < n->rep_level)
                    break;
                if (c->rep[c->i] > n->rep_level || j >= UINT32_MAX)
                    return mismatch(a);
            }
            sv_pq_value *items = arena_alloc(r, j * sizeof *items);
            if (!items)
                return rfail(r, SV_ENOMEM, a->err, "out of memory");
            memcpy(items, r->scratch[sd], j * sizeof *items);
            slot->kind = SV_PQV_LIST;
            slot->n = (uint32_t)j;
            slot->u.items = items;
            return 0;
        }
        if (slot->kind != SV_PQV_LIST)
            return mismatch(a);
        size_t j = 0;
        for (;;) {
            if (j >= slot->n)
                return mismatch(a);
            int rc = fill(a, depth + 1, (sv_pq_value *)&slot->u.items[j]);
            if (rc)
                return rc;
            j++;
            if (c->i >= c->n || c->rep[c->i] < n->rep_level)
                break;
            if (c->rep[c->i] > n->rep_level)
                return mismatch(a);
        }
        if (j != slot->n)
            return mismatch(a);
        return 0;
    }
    }
    return mismatch(a);
}

/* Unset slots left by malformed input become nulls. */
static void settle(sv_pq_value *v)
{
    if (v->kind == PQV_UNSET) {
        v->kind = SV_PQV_NULL;
        return;
    }
    if (v->kind == SV_PQV_GROUP || v->kind == SV_PQV_LIST)
        for (uint32_t i = 0; i < v->n; i++)
            settle((sv_pq_value *)&v->u.items[i]);
}

int sv_pq_reader_next(sv_pq_reader *r, size_t max, const sv_pq_value **rows, size_t *n, int *rgp, int64_t *row_in_rg,
                      sv_err *err)
{
    *rows = NULL;
    *n = 0;
    if (max == 0)
        max = 1024;
    while (!r->loaded || r->row >= r->meta.rgs[r->rg].num_rows) {
        if (r->loaded) {
            unload(r);
            r->rg++;
        }
        if (r->rg >= r->meta.nrgs)
            return 0;
        if (r->meta.rgs[r->rg].num_rows == 0) {
            r->rg++;
            continue;
        }
        int rc = r->opt.prefetch_bytes > 0 ? pf_take(r, err) : load_row_group(r, err);
        if (rc)
            return rc;
    }
    arena_reset(r);
    int64_t left = r->meta.rgs[r->rg].num_rows - r->row;
    size_t k = (int64_t)max < left ? max : (size_t)left;
    if (sv_grow(&r->rows, &r->cap_rows, k, sizeof *r->rows))
        return rfail(r, SV_ENOMEM, err, "out of memory");
    int nt = r->schema.root->pub.n_children;
    for (size_t i = 0; i < k; i++) {
        sv_pq_value *kids = arena_alloc(r, (size_t)nt * sizeof *kids);
        if (!kids)
            return rfail(r, SV_ENOMEM, err, "out of memory");
        for (int j = 0; j < nt; j++)
            kids[j].kind = PQV_UNSET;
        r->rows[i].kind = SV_PQV_GROUP;
        r->rows[i].n = (uint32_t)nt;
        r->rows[i].u.items = kids;
    }
    for (int ci = 0; ci < r->schema.nleaves; ci++) {
        asm_ctx a = {r, &r->cols[ci], &r->schema.leaves[ci], err};
        r->cur_col = ci;
        for (size_t i = 0; i < k; i++) {
            pq_col *c = a.c;
            if (c->i >= c->n || (c->rep && c->rep[c->i] != 0)) {
                int rc = rfail(r, SV_ECORRUPT, err, "row %lld does not start where expected",
                               (long long)(r->row + (int64_t)i));
                unload(r);
                r->cur_col = -1;
                return rc;
            }
            int rc = fill(&a, 0, (sv_pq_value *)&r->rows[i].u.items[a.lp->idx[0]]);
            if (rc) {
                unload(r);
                r->cur_col = -1;
                return rc;
            }
        }
    }
    r->cur_col = -1;
    for (size_t i = 0; i < k; i++)
        settle(&r->rows[i]);
    if (rgp)
        *rgp = r->rg;
    if (row_in_rg)
        *row_in_rg = r->row;
    r->row += (int64_t)k;
    *rows = r->rows;
    *n = k;
    return 0;
}
