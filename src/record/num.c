/* Numbers, dates and strings for the JSON fast path.
 *
 * Float reading is exact (bit-identical to strtod): Clinger's fast path when
 * the decimal fits a double exactly, otherwise Eisel-Lemire on 128-bit
 * truncated powers of five (fast_float's algorithm and table), and strtod only
 * when more than 19 significant digits leave the answer ambiguous. Float
 * printing is Ryu (shortest digits that read back as the same float32). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "record_internal.h"

#if FLT_EVAL_METHOD != 0
#error "Clinger's fast path needs FLT_EVAL_METHOD == 0 (SSE2 doubles)"
#endif

static inline bool is_digit(unsigned char c) { return (unsigned)(c - '0') < 10; }

/* Eight ASCII digits at once (fast_float's SWAR trick): vector floats carry
 * 8-17 digits each, so this is most of the scanning work. */
static inline uint64_t load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline bool is_8digits(uint64_t v)
{
    return (((v & 0xF0F0F0F0F0F0F0F0ULL) | (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) ==
            0x3333333333333333ULL);
}
static inline uint32_t parse_8digits(uint64_t v)
{
    const uint64_t mask = 0x000000FF000000FFULL;
    const uint64_t mul1 = 0x000F424000000064ULL; /* 100 + (1000000 << 32) */
    const uint64_t mul2 = 0x0000271000000001ULL; /* 1 + (10000 << 32) */
    v -= 0x3030303030303030ULL;
    v = (v * 10) + (v >> 8);
    v = (((v & mask) * mul1) + (((v >> 16) & mask) * mul2)) >> 32;
    return (uint32_t)v;
}

static inline __attribute__((always_inline)) const char *scan_number(const char *p, const char *end, sv_jnum *n)
{
    n->start = p;
    n->neg = false;
    n->truncated = n->trunc_nonzero = false;
    if (p < end && *p == '-') {
        n->neg = true;
        p++;
    }
    if (p >= end || !is_digit((unsigned char)*p))
        return NULL;
    const char *int_start = p;
    uint64_t w = 0;
    if (*p == '0') {
        p++;
        if (p < end && is_digit((unsigned char)*p))
            return NULL; /* leading zeros are not JSON */
    } else {
        while (end - p >= 8 && is_8digits(load8(p))) {
            w = w * 100000000 + parse_8digits(load8(p)); /* may wrap; recomputed below */
            p += 8;
        }
        while (p < end && is_digit((unsigned char)*p)) {
            w = w * 10 + (uint64_t)(*p - '0');
            p++;
        }
    }
    const char *int_end = p;
    int64_t exp = 0;
    const char *frac_start = NULL, *frac_end = NULL;
    n->is_int_syntax = true;
    if (p < end && *p == '.') {
        p++;
        frac_start = p;
        while (end - p >= 8 && is_8digits(load8(p))) {
            w = w * 100000000 + parse_8digits(load8(p));
            p += 8;
        }
        while (p < end && is_digit((unsigned char)*p)) {
            w = w * 10 + (uint64_t)(*p - '0');
            p++;
        }
        frac_end = p;
        if (frac_end == frac_start)
            return NULL;
        exp = -(int64_t)(frac_end - frac_start);
        n->is_int_syntax = false;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }
        if (p >= end || !is_digit((unsigned char)*p))
            return NULL;
        int64_t e = 0;
        while (p < end && is_digit((unsigned char)*p)) {
            if (e < 100000000) /* saturate: anything this large is 0 or inf */
                e = e * 10 + (*p - '0');
            p++;
        }
        exp += eneg ? -e : e;
        n->is_int_syntax = false;
    }
    n->end = p;
    size_t ndig = (size_t)(int_end - int_start) + (frac_start ? (size_t)(frac_end - frac_start) : 0);
    if (ndig > 19) {
        /* Leading zeros (0.000123) do not count as significant digits. */
        const char *q = int_start;
        size_t lead = 0;
        while (q < int_end && *q == '0') {
            q++;
            lead++;
        }
        if (q == int_end && frac_start) {
            q = frac_start;
            while (q < frac_end && *q == '0') {
                q++;
                lead++;
            }
        }
        size_t sig = ndig - lead;
        if (sig > 19) {
            /* Keep the first 19 significant digits; the value is then
             * w * 10^(exp + dropped) plus something smaller. */
            w = 0;
            size_t taken = 0;
            for (; q < int_end && taken < 19; q++, taken++)
                w = w * 10 + (uint64_t)(*q - '0');
            if (taken < 19 && frac_start) {
                if (q >= int_end && q < frac_start)
                    q = frac_start;
                for (; q < frac_end && taken < 19; q++, taken++)
                    w = w * 10 + (uint64_t)(*q - '0');
            }
            n->truncated = true;
            for (; q < end && q < p; q++) {
                if (*q >= '1' && *q <= '9') {
                    n->trunc_nonzero = true;
                    break;
                }
                if (*q == 'e' || *q == 'E')
                    break;
            }
            exp += (int64_t)(sig - 19);
        }
    }
    n->w = w;
    n->exp10 = exp;
    return p;
}

/* ---- Eisel-Lemire ---- */

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                       1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Returns the IEEE bits (without sign) of w * 10^q, correctly rounded. */
static uint64_t eisel_lemire(int64_t q, uint64_t w)
{
    if (w == 0 || q < -342)
        return 0;
    if (q > 308)
        return 0x7FFULL << 52;
    int lz = __builtin_clzll(w);
    w <<= lz;
    const uint64_t *pw = sv_pow5_128[q + 342];
    sv_u128 first = (sv_u128)w * pw[0];
    uint64_t hi = (uint64_t)(first >> 64), lo = (uint64_t)first;
    const uint64_t precision_mask = 0xFFFFFFFFFFFFFFFFULL >> 55; /* 52 + 3 bits */
    if ((hi & precision_mask) == precision_mask) {
        sv_u128 second = (sv_u128)w * pw[1];
        uint64_t shi = (uint64_t)(second >> 64);
        lo += shi;
        if (shi > lo)
            hi++;
    }
    int upperbit = (int)(hi >> 63);
    int shift = upperbit + 64 - 52 - 3;
    uint64_t mant = hi >> shift;
    int32_t power2 = (int32_t)(((((152170 + 65536) * q) >> 16) + 63) + upperbit - lz + 1023);
    if (power2 <= 0) {
        if (-power2 + 1 >= 64)
            return 0;
        mant >>= -power2 + 1;
        mant += (mant & 1);
        mant >>= 1;
        power2 = (mant < (1ULL << 52)) ? 0 : 1;
        return (mant & ((1ULL << 52) - 1)) | ((uint64_t)power2 << 52);
    }
    /* Exactly halfway between two doubles is only possible for small q:
     * round to even instead of up. */
    if (lo <= 1 && q >= -4 && q <= 23 && (mant & 3) == 1) {
        if ((mant << shift) == hi)
            mant &= ~1ULL;
    }
    mant += (mant & 1);
    mant >>= 1;
    if (mant >= (2ULL << 52)) {
        mant = 1ULL << 52;
        power2++;
    }
    mant &= ~(1ULL << 52);
    if (power2 >= 0x7FF)
        return 0x7FFULL << 52;
    return mant | ((uint64_t)power2 << 52);
}

static double bits_to_double(uint64_t bits, bool neg)
{
    if (neg)
        bits |= 1ULL << 63;
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

static double slow_strtod(const sv_jnum *n)
{
    size_t len = (size_t)(n->end - n->start);
    char stackbuf[512];
    char *buf = len < sizeof stackbuf ? stackbuf : malloc(len + 1);
    if (!buf) {
        /* Out of memory for a >512-digit number: the 19-digit truncation is
         * within one ulp; better than failing an import. */
        return bits_to_double(eisel_lemire(n->exp10, n->w), n->neg);
    }
    memcpy(buf, n->start, len);
    buf[len] = '\0';
    double d = strtod(buf, NULL);
    if (buf != stackbuf)
        free(buf);
    return d;
}

static inline __attribute__((always_inline)) double jnum_to_double(const sv_jnum *n)
{
    if (!n->truncated) {
        /* Clinger only for non-negative powers: a division costs more than
         * Eisel-Lemire's multiplication, which is exact for <= 19 digits. */
        if (n->w <= (1ULL << 53) && n->exp10 >= 0 && n->exp10 <= 22) {
            double d = (double)n->w;
            d *= pow10_exact[n->exp10];
            return n->neg ? -d : d;
        }
        return bits_to_double(eisel_lemire(n->exp10, n->w), n->neg);
    }
    if (!n->trunc_nonzero)
        return bits_to_double(eisel_lemire(n->exp10, n->w), n->neg);
    uint64_t a = eisel_lemire(n->exp10, n->w), b = eisel_lemire(n->exp10, n->w + 1);
    if (a == b)
        return bits_to_double(a, n->neg);
    return slow_strtod(n);
}

const char *sv_scan_number(const char *p, const char *end, sv_jnum *n) { return scan_number(p, end, n); }
double sv_jnum_to_double(const sv_jnum *n) { return jnum_to_double(n); }

/* The vector hot path: one call per element. */
const char *sv_scan_double(const char *p, const char *end, double *out)
{
    sv_jnum n;
    const char *e = scan_number(p, end, &n);
    if (e)
        *out = jnum_to_double(&n);
    return e;
}

int sv_jnum_to_int64(const sv_jnum *n, int64_t *out)
{
    if (n->truncated && n->trunc_nonzero) {
        /* > 19 significant digits: either a fraction or beyond int64. */
        return n->exp10 < 0 ? SV_EINVAL : SV_ETOOBIG;
    }
    uint64_t w = n->w;
    int64_t e = n->exp10;
    if (w == 0) {
        *out = 0;
        return 0;
    }
    while (e < 0 && w % 10 == 0) {
        w /= 10;
        e++;
    }
    if (e < 0)
        return SV_EINVAL;
    while (e > 0) {
        if (w > UINT64_MAX / 10)
            return SV_ETOOBIG;
        w *= 10;
        e--;
    }
    if (n->neg) {
        if (w > (uint64_t)INT64_MAX + 1)
            return SV_ETOOBIG;
        *out = w == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)w;
    } else {
        if (w > (uint64_t)INT64_MAX)
            return SV_ETOOBIG;
        *out = (int64_t)w;
    }
    return 0;
}

int sv_parse_double(const char *s, size_t len, double *out)
{
    const char *e = sv_scan_double(s, s + len, out);
    if (!e || e != s + len)
        return SV_EINVAL;
    return 0;
}

/* ---- Ryu for float32 ---- */

static inline uint32_t pow5bits(int32_t e) { return (uint32_t)(((uint32_t)e * 1217359) >> 19) + 1; }
static inline uint32_t log10pow2(int32_t e) { return (uint32_t)(((uint32_t)e * 78913) >> 18); }
static inline uint32_t log10pow5(int32_t e) { return (uint32_t)(((uint32_t)e * 732923) >> 20); }

static inline uint32_t pow5factor(uint32_t v)
{
    uint32_t c = 0;
    for (;;) {
        uint32_t q = v / 5;
        if (v - 5 * q != 0)
            break;
        v = q;
        c++;
    }
    return c;
}

static inline uint32_t mulshift32(uint32_t m, uint64_t factor, int32_t shift)
{
    uint64_t b0 = (uint64_t)m * (uint32_t)factor;
    uint64_t b1 = (uint64_t)m * (uint32_t)(factor >> 32);
    uint64_t sum = (b0 >> 32) + b1;
    return (uint32_t)(sum >> (shift - 32));
}

static inline uint32_t decimal_len9(uint32_t v)
{
    if (v >= 100000000) return 9;
    if (v >= 10000000) return 8;
    if (v >= 1000000) return 7;
    if (v >= 100000) return 6;
    if (v >= 10000) return 5;
    if (v >= 1000) return 4;
    if (v >= 100) return 3;
    if (v >= 10) return 2;
    return 1;
}

/* Shortest (digits, exponent) with digits * 10^exponent reading back as f. */
static void f2d(uint32_t ieee_m, uint32_t ieee_e, uint32_t *digits, int32_t *exponent)
{
    int32_t e2;
    uint32_t m2;
    if (ieee_e == 0) {
        e2 = 1 - 127 - 23 - 2;
        m2 = ieee_m;
    } else {
        e2 = (int32_t)ieee_e - 127 - 23 - 2;
        m2 = (1u << 23) | ieee_m;
    }
    const bool accept_bounds = (m2 & 1) == 0;
    const uint32_t mv = 4 * m2, mp = 4 * m2 + 2;
    const uint32_t mm_shift = ieee_m != 0 || ieee_e <= 1;
    const uint32_t mm = 4 * m2 - 1 - mm_shift;
    uint32_t vr, vp, vm;
    int32_t e10;
    bool vm_tz = false, vr_tz = false;
    uint8_t last = 0;
    if (e2 >= 0) {
        const uint32_t q = log10pow2(e2);
        e10 = (int32_t)q;
        const int32_t k = 59 + (int32_t)pow5bits((int32_t)q) - 1;
        const int32_t i = -e2 + (int32_t)q + k;
        vr = mulshift32(mv, sv_ryu_f_pow5_inv[q], i);
        vp = mulshift32(mp, sv_ryu_f_pow5_inv[q], i);
        vm = mulshift32(mm, sv_ryu_f_pow5_inv[q], i);
        if (q != 0 && (vp - 1) / 10 <= vm / 10) {
            const int32_t l = 59 + (int32_t)pow5bits((int32_t)(q - 1)) - 1;
            last = (uint8_t)(mulshift32(mv, sv_ryu_f_pow5_inv[q - 1], -e2 + (int32_t)q - 1 + l) % 10);
        }
        if (q <= 9) {
            if (mv % 5 == 0)
                vr_tz = pow5factor(mv) >= q;
            else if (accept_bounds)
                vm_tz = pow5factor(mm) >= q;
            else
                vp -= pow5factor(mp) >= q;
        }
    } else {
        const uint32_t q = log10pow5(-e2);
        e10 = (int32_t)q + e2;
        const int32_t i = -e2 - (int32_t)q;
        const int32_t k = (int32_t)pow5bits(i) - 61;
        int32_t j = (int32_t)q - k;
        vr = mulshift32(mv, sv_ryu_f_pow5[i], j);
        vp = mulshift32(mp, sv_ryu_f_pow5[i], j);
        vm = mulshift32(mm, sv_ryu_f_pow5[i], j);
        if (q != 0 && (vp - 1) / 10 <= vm / 10) {
            j = (int32_t)q - 1 - ((int32_t)pow5bits(i + 1) - 61);
            last = (uint8_t)(mulshift32(mv, sv_ryu_f_pow5[i + 1], j) % 10);
        }
        if (q <= 1) {
            vr_tz = true;
            if (accept_bounds)
                vm_tz = mm_shift == 1;
            else
                --vp;
        } else if (q < 31) {
            vr_tz = (mv & ((1u << (q - 1)) - 1)) == 0;
        }
    }
    int32_t removed = 0;
    uint32_t output;
    if (vm_tz || vr_tz) {
        while (vp / 10 > vm / 10) {
            vm_tz &= vm % 10 == 0;
            vr_tz &= last == 0;
            last = (uint8_t)(vr % 10);
            vr /= 10;
            vp /= 10;
            vm /= 10;
            ++removed;
        }
        if (vm_tz) {
            while (vm % 10 == 0) {
                vr_tz &= last == 0;
                last = (uint8_t)(vr % 10);
                vr /= 10;
                vp /= 10;
                vm /= 10;
                ++removed;
            }
        }
        if (vr_tz && last == 5 && vr % 2 == 0)
            last = 4;
        output = vr + ((vr == vm && (!accept_bounds || !vm_tz)) || last >= 5);
    } else {
        while (vp / 10 > vm / 10) {
            last = (uint8_t)(vr % 10);
            vr /= 10;
            vp /= 10;
            vm /= 10;
            ++removed;
        }
        output = vr + (vr == vm || last >= 5);
    }
    *digits = output;
    *exponent = e10 + removed;
}

static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                     "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                     "8081828384858687888990919293949596979899";

/* Writes v (n digits) right-aligned ending at out + n. */
static inline void put_digits(char *out, uint32_t v, uint32_t n)
{
    char *p = out + n;
    while (v >= 100) {
        uint32_t r = v % 100;
        v /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
}

/* Lays out digits * 10^exp like JavaScript does: plain decimal for
 * 1e-6 <= |x| < 1e21, exponent form otherwise. */
static size_t layout(char *out, bool neg, uint64_t digits, uint32_t nd, int32_t exp)
{
    char d[24];
    /* digits has at most 17 decimal digits here; float32 needs at most 9. */
    if (digits <= UINT32_MAX) {
        put_digits(d, (uint32_t)digits, nd);
    } else {
        char *p = d + nd;
        uint64_t v = digits;
        for (uint32_t i = 0; i < nd; i++) {
            *--p = (char)('0' + v % 10);
            v /= 10;
        }
    }
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    int32_t point = (int32_t)nd + exp; /* digits before the decimal point */
    if (point > 0 && point <= 21) {
        if (exp >= 0) {
            memcpy(out + o, d, nd);
            o += nd;
            for (int32_t i = 0; i < exp; i++)
                out[o++] = '0';
        } else {
            memcpy(out + o, d, (size_t)point);
            o += (size_t)point;
            out[o++] = '.';
            memcpy(out + o, d + point, nd - (uint32_t)point);
            o += nd - (uint32_t)point;
        }
    } else if (point <= 0 && point > -6) {
        out[o++] = '0';
        out[o++] = '.';
        for (int32_t i = 0; i < -point; i++)
            out[o++] = '0';
        memcpy(out + o, d, nd);
        o += nd;
    } else {
        out[o++] = d[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, d + 1, nd - 1);
            o += nd - 1;
        }
        out[o++] = 'e';
        int32_t e = point - 1;
        if (e < 0) {
            out[o++] = '-';
            e = -e;
        } else {
            out[o++] = '+';
        }
        char eb[8];
        int k = 0;
        do {
            eb[k++] = (char)('0' + e % 10);
            e /= 10;
        } while (e);
        while (k)
            out[o++] = eb[--k];
    }
    return o;
}

size_t sv_format_float(float f, char *out)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bool neg = bits >> 31;
    uint32_t ieee_m = bits & ((1u << 23) - 1), ieee_e = (bits >> 23) & 0xFF;
    if (ieee_e == 0 && ieee_m == 0) {
        if (neg) {
            memcpy(out, "-0", 2);
            return 2;
        }
        out[0] = '0';
        return 1;
    }
    /* Small integers (common in tests and quantized vectors) skip Ryu. */
    if (ieee_e >= 127 && ieee_e < 127 + 24) {
        uint32_t shift = 127 + 23 - ieee_e;
        uint32_t m = ieee_m | (1u << 23);
        if ((m & ((1u << shift) - 1)) == 0) {
            uint32_t v = m >> shift;
            size_t o = 0;
            if (neg)
                out[o++] = '-';
            uint32_t n = decimal_len9(v);
            put_digits(out + o, v, n);
            return o + n;
        }
    }
    uint32_t digits;
    int32_t exp;
    f2d(ieee_m, ieee_e, &digits, &exp);
    return layout(out, neg, digits, decimal_len9(digits), exp);
}

size_t sv_format_double(double d, char *out)
{
    /* Doubles are rare (number properties): binary-search the fewest %.*g
     * digits that read back identically (round-tripping is monotonic in the
     * precision, and 17 always works). */
    char buf[400]; /* %g of a double never exceeds ~25 bytes; sized for the compiler's bound */
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(buf, sizeof buf, "%.*g", mid, d);
        if (strtod(buf, NULL) == d)
            hi = mid;
        else
            lo = mid + 1;
    }
    {
        int prec = lo;
        int n = snprintf(buf, sizeof buf, "%.*g", prec, d);
        {
            /* Re-layout via the decimal digits so the style matches floats. */
            bool neg = buf[0] == '-';
            uint64_t digits = 0;
            uint32_t nd = 0;
            int32_t exp = 0;
            bool seen_point = false;
            const char *p = buf + neg;
            for (; *p && *p != 'e'; p++) {
                if (*p == '.') {
                    seen_point = true;
                    continue;
                }
                if (nd == 0 && *p == '0') {
                    if (seen_point)
                        exp--;
                    continue;
                }
                digits = digits * 10 + (uint64_t)(*p - '0');
                nd++;
                if (seen_point)
                    exp--;
            }
            if (*p == 'e')
                exp += (int32_t)strtol(p + 1, NULL, 10);
            if (nd == 0) {
                if (neg) {
                    memcpy(out, "-0", 2);
                    return 2;
                }
                out[0] = '0';
                return 1;
            }
            while (nd > 1 && digits % 10 == 0) {
                digits /= 10;
                nd--;
                exp++;
            }
            (void)n;
            return layout(out, neg, digits, nd, exp);
        }
    }
}

size_t sv_format_i64(int64_t v, char *out)
{
    size_t o = 0;
    uint64_t u;
    if (v < 0) {
        out[o++] = '-';
        u = (uint64_t)0 - (uint64_t)v;
    } else {
        u = (uint64_t)v;
    }
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (k)
        out[o++] = tmp[--k];
    return o;
}

/* ---- dates ---- */

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t yy = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static int dig2(const char *s, int *v)
{
    if (!is_digit((unsigned char)s[0]) || !is_digit((unsigned char)s[1]))
        return -1;
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return 0;
}

int sv_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    int Y1, Y2, M, D, h, mi, sec;
    if (len < 20)
        return SV_EINVAL;
    if (dig2(s, &Y1) || dig2(s + 2, &Y2) || s[4] != '-' || dig2(s + 5, &M) || s[7] != '-' || dig2(s + 8, &D))
        return SV_EINVAL;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return SV_EINVAL;
    if (dig2(s + 11, &h) || s[13] != ':' || dig2(s + 14, &mi) || s[16] != ':' || dig2(s + 17, &sec))
        return SV_EINVAL;
    int Y = Y1 * 100 + Y2;
    static const unsigned char mdays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M])
        return SV_EINVAL;
    bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M == 2 && D == 29 && !leap)
        return SV_EINVAL;
    if (h > 23 || mi > 59 || sec > 59) /* leap second 60 is not accepted */
        return SV_EINVAL;
    size_t i = 19;
    int frac = 0;
    if (i < len && s[i] == '.') {
        i++;
        size_t fs = i;
        int nd = 0;
        while (i < len && is_digit((unsigned char)s[i])) {
            if (nd < 3) {
                frac = frac * 10 + (s[i] - '0');
                nd++;
            }
            i++;
        }
        if (i == fs)
            return SV_EINVAL;
        while (nd < 3) {
            frac *= 10;
            nd++;
        }
    }
    int64_t off_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (len - i < 6 || dig2(s + i + 1, &oh) || s[i + 3] != ':' || dig2(s + i + 4, &om) || oh > 23 || om > 59)
            return SV_EINVAL;
        off_min = (int64_t)(oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return SV_EINVAL;
    }
    if (i != len)
        return SV_EINVAL;
    int64_t days = days_from_civil(Y, (unsigned)M, (unsigned)D);
    int64_t v = ((days * 24 + h) * 60 + mi) * 60 + sec;
    v = v * 1000 + frac - off_min * 60000;
    if (v < SV_DATE_MIN_MS || v > SV_DATE_MAX_MS)
        return SV_EINVAL;
    *ms = v;
    return 0;
}

size_t sv_format_date_ms(int64_t ms, char *out)
{
    if (ms < SV_DATE_MIN_MS)
        ms = SV_DATE_MIN_MS;
    if (ms > SV_DATE_MAX_MS)
        ms = SV_DATE_MAX_MS;
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86400000 - 1) / 86400000);
    int64_t rem = ms - days * 86400000;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned msec = (unsigned)(rem % 1000), t = (unsigned)(rem / 1000);
    unsigned sec = t % 60, mi = (t / 60) % 60, h = t / 3600;
    out[0] = (char)('0' + (y / 1000) % 10);
    out[1] = (char)('0' + (y / 100) % 10);
    out[2] = (char)('0' + (y / 10) % 10);
    out[3] = (char)('0' + y % 10);
    out[4] = '-';
    memcpy(out + 5, digit_pairs + 2 * m, 2);
    out[7] = '-';
    memcpy(out + 8, digit_pairs + 2 * d, 2);
    out[10] = 'T';
    memcpy(out + 11, digit_pairs + 2 * h, 2);
    out[13] = ':';
    memcpy(out + 14, digit_pairs + 2 * mi, 2);
    out[16] = ':';
    memcpy(out + 17, digit_pairs + 2 * sec, 2);
    out[19] = '.';
    out[20] = (char)('0' + msec / 100);
    memcpy(out + 21, digit_pairs + 2 * (msec % 100), 2);
    out[23] = 'Z';
    return 24;
}

/* ---- UTF-8 and JSON strings ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static inline size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        if (avail >= 2 && (s[1] & 0xC0) == 0x80)
            return 2;
        return 0;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && s[1] >= 0xA0)
            return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0;
        if (c == 0xF4 && s[1] >= 0x90)
            return 0;
        return 4;
    }
    return 0;
}

size_t sv_utf8_seq_len(const unsigned char *s, size_t avail);
size_t sv_utf8_seq_len(const unsigned char *s, size_t avail) { return utf8_seq(s, avail); }

bool sv_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + len;
    while (p < e) {
        /* ASCII, 8 bytes at a time (most text is) */
        while (e - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ull)
                break;
            p += 8;
        }
        if (p >= e)
            break;
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t n = utf8_seq(p, (size_t)(e - p));
        if (!n)
            return false;
        p += n;
    }
    return true;
}

/* 0: copy as is; 1: needs an escape. */
static const unsigned char json_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

int sv_json_put_str(sv_buf *out, const char *s, size_t len)
{
    /* Worst case every byte becomes \u00XX. */
    if (len > (SIZE_MAX - 2) / 6 || sv_buf_reserve(out, len * 6 + 2))
        return SV_ENOMEM;
    char *o = (char *)out->data + out->len;
    *o++ = '"';
    const unsigned char *p = (const unsigned char *)s, *e = p + len;
    while (p < e) {
        unsigned char c = *p++;
        if (!json_esc[c]) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = "0123456789abcdef"[c >> 4];
            *o++ = "0123456789abcdef"[c & 15];
        }
    }
    *o++ = '"';
    out->len = (size_t)(o - (char *)out->data);
    return 0;
}
