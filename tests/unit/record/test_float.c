/* The exact float reader against strtod (~1M strings), and the shortest
 * float printer against strtof. */
#include <math.h>

#include "test_util.h"

static uint64_t dbits(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

static long n_checked;

static void check_one(const char *s)
{
    double got;
    int rc = sv_parse_double(s, strlen(s), &got);
    if (rc) {
        fprintf(stderr, "rejected valid number '%s'\n", s);
        fail();
    }
    double want = strtod(s, NULL);
    if (dbits(got) != dbits(want)) {
        fprintf(stderr, "'%s': got %a want %a\n", s, got, want);
        fail();
    }
    float gf = (float)got, wf = (float)want;
    assert_memory_equal(&gf, &wf, 4);
    n_checked++;
}

static void edge_cases(void **st)
{
    (void)st;
    const char *ok[] = {
        "0", "-0", "0.0", "-0.0", "0e0", "0E+5", "0e-999999999999", "1", "-1", "1e-400", "-1e-400", "1e400", "-1e400",
        "1e308", "1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308",
        "2.2250738585072011e-308", "2.2250738585072014e-308", "4.9406564584124654e-324", "5e-324",
        "2.4703282292062327e-324", "2.4703282292062328e-324", "2.4703282292062327208828439643411068618252990130716238221279284125033775363510437593264991818081799618989828234772285886546332835517796989819938739800539093906315035659515570226392290858392449105184435931802849936536152500319370457678249219365623669863658480757001585769269903706311928279558551332927834338409351978015531246597263579574622766465272827220056374006485499977096599470454020828166226237857393450736339007967761930577506740176324673600968951340535537458516661134223766678604162159680461914467291840300530057530849048765391711386591646239524912623653881879636239373280423891018672348497668235089863388587925628302755995657524455507255189313690836254779186948667994968324049705821028513185451396213837722826145437693412532098591327667236328125e-324",
        "9007199254740992", "9007199254740993", "9007199254740993.0000000001", "9007199254740995", "123456789012345678901234567890",
        "0.1", "0.2", "0.3", "3.14159265358979323846264338327950288419716939937510", "1e22", "1e23", "8.98846567431158e307",
        "0.000000000000000000000000000000000000000000001", "1.00000000000000011102230246251565404236316680908203125",
        "1.00000000000000011102230246251565404236316680908203124", "1.00000000000000011102230246251565404236316680908203126",
        "7.038531e-26", "3.4028235677973366e38", "3.4028236e38", "1.4e-45", "7e-46", "7.1e-46", "1.17549435e-38",
        "18446744073709551615", "18446744073709551616", "9999999999999999999", "10000000000000000000",
        "99999999999999999999", "0.00000000000000000001e20", "1e-2147483648", "1e2147483648", "123e-20000000000",
        "100000000000000000000000000000000000000000000000000e-50",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        check_one(ok[i]);
    const char *bad[] = {"",   "1e",  ".",  "01",   "-",     "+1",   "1.",   ".5",    "1e+", "--1", "0x1", "inf",
                         "nan", "1.e5", "00", "-01", " 1",   "1 ",   "1e5.", "1ee5", "-.5", "e5",  "1,5", "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double d;
        if (sv_parse_double(bad[i], strlen(bad[i]), &d) == 0) {
            fprintf(stderr, "accepted invalid number '%s'\n", bad[i]);
            fail();
        }
    }
}

static void random_strings(void **st)
{
    (void)st;
    uint64_t seed = 0xf10a7;
    char s[128];
    for (int iter = 0; iter < 1000000; iter++) {
        size_t o = 0;
        uint32_t shape = rnd_below(&seed, 8);
        if (rnd_below(&seed, 2))
            s[o++] = '-';
        if (shape == 0) {
            /* a random double, printed with random precision */
            uint64_t b = rnd_next(&seed);
            double d;
            memcpy(&d, &b, 8);
            if (!isfinite(d))
                d = 1;
            snprintf(s, sizeof s, "%.*e", (int)rnd_below(&seed, 25), fabs(d));
            check_one(s);
            continue;
        }
        if (shape == 1) {
            /* a random float32 as Python would print it for a vector */
            uint32_t b = (uint32_t)rnd_next(&seed);
            float f;
            memcpy(&f, &b, 4);
            if (!isfinite(f))
                f = 0.5f;
            snprintf(s, sizeof s, "%.17g", (double)fabsf(f));
            check_one(s);
            continue;
        }
        if (shape == 2) {
            /* halfway cases: odd mantissa + 1/2 ulp in many digits */
            uint64_t m = (rnd_next(&seed) >> 11) | 1;
            int e = (int)rnd_below(&seed, 2000) - 1075;
            double d = ldexp((double)m, e) + ldexp(1.0, e - 1);
            if (!isfinite(d) || d == 0)
                continue;
            snprintf(s, sizeof s, "%.40e", d);
            check_one(s);
            continue;
        }
        /* digits, optional fraction, optional exponent */
        uint32_t nd = 1 + rnd_below(&seed, shape == 3 ? 30 : 19);
        if (rnd_below(&seed, 4) == 0) {
            s[o++] = '0';
        } else {
            s[o++] = (char)('1' + rnd_below(&seed, 9));
            for (uint32_t i = 1; i < nd && o < 60; i++)
                s[o++] = (char)('0' + rnd_below(&seed, 10));
        }
        if (rnd_below(&seed, 2)) {
            s[o++] = '.';
            uint32_t nf = 1 + rnd_below(&seed, 20);
            for (uint32_t i = 0; i < nf && o < 90; i++)
                s[o++] = (char)('0' + rnd_below(&seed, 10));
        }
        if (rnd_below(&seed, 2)) {
            s[o++] = rnd_below(&seed, 2) ? 'e' : 'E';
            uint32_t sgn = rnd_below(&seed, 3);
            if (sgn == 1)
                s[o++] = '-';
            else if (sgn == 2)
                s[o++] = '+';
            o += (size_t)snprintf(s + o, sizeof s - o, "%u", rnd_below(&seed, shape == 4 ? 30 : 360));
        }
        s[o] = '\0';
        check_one(s);
    }
    assert_true(n_checked > 900000);
}

static void print_shortest(void **st)
{
    (void)st;
    uint64_t seed = 0xabc;
    char out[48], g[48];
    for (int iter = 0; iter < 300000; iter++) {
        uint32_t b = (uint32_t)rnd_next(&seed);
        if (iter < 2000)
            b = (uint32_t)iter; /* subnormals */
        else if (iter < 4000)
            b = 0x7F7FFFFFu - (uint32_t)(iter - 2000); /* near FLT_MAX */
        float f;
        memcpy(&f, &b, 4);
        if (!isfinite(f))
            continue;
        size_t n = sv_format_float(f, out);
        out[n] = '\0';
        /* valid JSON number that reads back to the same float */
        double d;
        if (sv_parse_double(out, n, &d)) {
            fprintf(stderr, "not a JSON number: %s\n", out);
            fail();
        }
        float back = (float)d;
        if (memcmp(&back, &f, 4) != 0) {
            fprintf(stderr, "%a printed as %s reads back as %a\n", (double)f, out, (double)back);
            fail();
        }
        /* no more significant digits than the shortest %g that works */
        if (iter % 8 == 0) {
            int prec;
            for (prec = 1; prec <= 9; prec++) {
                snprintf(g, sizeof g, "%.*g", prec, (double)f);
                if (strtof(g, NULL) == f)
                    break;
            }
            int sig = 0;
            bool lead = true;
            int trailing = 0;
            for (const char *p = out; *p && *p != 'e'; p++) {
                if (*p < '0' || *p > '9')
                    continue;
                if (lead && *p == '0')
                    continue;
                lead = false;
                sig++;
                trailing = *p == '0' ? trailing + 1 : 0;
            }
            /* integers like 100 print their zeros but are still shortest */
            if (sig - trailing > prec) {
                fprintf(stderr, "%s has more digits than %%.%dg (%s)\n", out, prec, g);
                fail();
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(edge_cases),
        cmocka_unit_test(random_strings),
        cmocka_unit_test(print_shortest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
