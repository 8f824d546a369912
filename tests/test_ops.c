/* CPU ops (kernels/cpu/ops.h) against their naive double-precision twins:
 * every ISA path (scalar, AVX2, AVX-512 where the CPU has them), inline and
 * on a 3-thread pool, odd sizes, in-place aliasing, poisoned outputs.
 *
 * Tolerances, as max |fast - ref| / max(|ref|, floor):
 * - add, mul, scale: exact (both round the same exact result once);
 * - activations: 2e-6 (1 + |a| / 8) with floor 1e-30, a = ln |y / x| the
 *   exponent of a tail (see check_act); relative also deep in the tails,
 *   where outputs below FLT_MIN may flush to 0;
 * - layernorm, rmsnorm: 1e-5 with floor 0.1 (outputs are O(1) and w x + b
 *   may cancel); softmax: 1e-5 with floor 1e-30;
 * - RoPE: 1e-5 with floor 1 (inputs are O(1); the output of a rotation
 *   near 0 carries the rounding of its O(1) terms);
 * - conv1d: 1e-5 of the output's scale, sum |w| |x| + |b| (f32 accumulation
 *   of up to a few hundred terms). */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "ops.h"
#include "testutil.h"
#include "threadpool.h"

static const frt_cpu_info ISAS[] = {{0}, {.avx2 = true}, {.avx2 = true, .avx512 = true}};
static const char *const ISA_NAMES[] = {"scalar", "avx2", "avx512"};
#define N_ISAS 3

/* Restrict the CPU to ISAS[i]; false when this machine lacks it. */
static bool use_isa(int i)
{
    frt_cpu_restrict(&ISAS[i]);
    const frt_cpu_info *c = frt_cpu();
    return c->avx2 == ISAS[i].avx2 && c->avx512 == ISAS[i].avx512;
}

static frt_pool *g_pool;

static void setup(void)
{
    g_pool = frt_pool_create(3);
    cr_assert(g_pool);
}

static void teardown(void)
{
    frt_cpu_restrict(NULL);
    frt_pool_free(g_pool);
}

/* Exact-size heap buffers, so that ASan sees any read or write past a row. */
static float *fbuf(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p);
    return p;
}

static float *rand_buf(tu_rng *r, size_t n, float lo, float hi)
{
    float *p = fbuf(n);
    tu_fill_uniform(r, p, n, lo, hi);
    return p;
}

static float *copy_buf(const float *x, size_t n)
{
    float *p = fbuf(n);
    memcpy(p, x, n * sizeof *p);
    return p;
}

/* Run a check on every ISA x {no pool, 3-thread pool}, with fresh inputs
 * from one generator seeded by tu_seed(). */
typedef void (*path_fn)(tu_rng *r, int isa, frt_pool *pool);

static void for_each_path(path_fn fn)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    for (int isa = 0; isa < N_ISAS; isa++) {
        if (!use_isa(isa)) continue;
        fn(&r, isa, NULL);
        fn(&r, isa, g_pool);
    }
}

TestSuite(ops, .init = setup, .fini = teardown);

/* ---- element-wise ------------------------------------------------------- */

static const int64_t SIZES[] = {1, 15, 16, 17, 1000, 4097, 100003};
#define N_SIZES (sizeof SIZES / sizeof SIZES[0])

static void check_binary(tu_rng *r, int64_t n, int64_t bn, bool mul, int isa, frt_pool *pool)
{
    float *a = rand_buf(r, (size_t)n, -3, 3), *b = rand_buf(r, (size_t)bn, -3, 3);
    float *want = fbuf((size_t)n), *got = fbuf((size_t)n);
    tu_poison(got, (size_t)n);
    (mul ? frt_ref_mul : frt_ref_add)(want, a, b, n, bn);
    (mul ? frt_cpu_mul : frt_cpu_add)(got, a, b, n, bn, pool);
    cr_assert(!memcmp(got, want, (size_t)n * sizeof *got), "%s %s n=%lld bn=%lld pool=%d",
              mul ? "mul" : "add", ISA_NAMES[isa], (long long)n, (long long)bn, pool != NULL);
    /* in place: y == a */
    (mul ? frt_cpu_mul : frt_cpu_add)(a, a, b, n, bn, pool);
    cr_assert(!memcmp(a, want, (size_t)n * sizeof *a), "%s in place %s n=%lld", mul ? "mul" : "add",
              ISA_NAMES[isa], (long long)n);
    free(a), free(b), free(want), free(got);
}

static void elementwise_path(tu_rng *r, int isa, frt_pool *pool)
{
    /* rows x cols for the row broadcast */
    static const int64_t BCAST[][2] = {{1, 1}, {7, 1}, {1, 17}, {9, 33}, {5, 16}, {300, 129}};
    {
        for (int mul = 0; mul < 2; mul++) {
            for (size_t i = 0; i < N_SIZES; i++)
                check_binary(r, SIZES[i], SIZES[i], mul, isa, pool);
            for (size_t i = 0; i < sizeof BCAST / sizeof BCAST[0]; i++)
                check_binary(r, BCAST[i][0] * BCAST[i][1], BCAST[i][1], mul, isa, pool);
        }
        for (size_t i = 0; i < N_SIZES; i++) {
            int64_t n = SIZES[i];
            float s = tu_uniform(r, -2, 2);
            float *x = rand_buf(r, (size_t)n, -5, 5), *want = fbuf((size_t)n),
                  *got = fbuf((size_t)n);
            tu_poison(got, (size_t)n);
            frt_ref_scale(want, x, s, n);
            frt_cpu_scale(got, x, s, n, pool);
            cr_assert(!memcmp(got, want, (size_t)n * sizeof *got), "scale %s n=%lld",
                      ISA_NAMES[isa], (long long)n);
            frt_cpu_scale(x, x, s, n, pool);
            cr_assert(!memcmp(x, want, (size_t)n * sizeof *x), "scale in place %s", ISA_NAMES[isa]);
            free(x), free(want), free(got);
        }
    }
}

/* ---- activations -------------------------------------------------------- */

static const char *const ACT_NAMES[] = {"gelu_erf", "gelu_tanh", "quick_gelu",
                                        "silu",     "mish",      "relu"};

/* Values where naive formulas overflow, cancel or produce NaN. */
static const float EXTREMES[] = {
    0.0f,   -0.0f,  1e-30f, -1e-30f, 1e-6f,   -1e-6f, 0.5f,   -0.5f,  1.0f,   -1.0f,   3.0f,
    -3.0f,  5.0f,   -5.0f,  8.0f,    -8.0f,   10.0f,  -10.0f, 13.0f,  -13.0f, 15.0f,   -15.0f,
    20.0f,  -20.0f, 30.0f,  -30.0f,  44.0f,   -44.0f, 50.0f,  -50.0f, 87.0f,  -87.0f,  88.5f,
    -88.5f, 89.0f,  -89.0f, 100.0f,  -100.0f, 1e4f,   -1e4f,  1e30f,  -1e30f, FLT_MAX, -FLT_MAX};
#define N_EXTREMES (sizeof EXTREMES / sizeof EXTREMES[0])

static void check_act(const float *x, int64_t n, frt_act kind, int isa, frt_pool *pool)
{
    float *want = fbuf((size_t)n), *got = fbuf((size_t)n);
    tu_poison(got, (size_t)n);
    frt_ref_act(want, x, n, kind);
    frt_cpu_act(got, x, n, kind, pool);
    for (int64_t i = 0; i < n; i++) {
        double e = tu_max_rel_err(got + i, want + i, 1, 1e-30);
        /* In a tail y ~ x e^a, an f32 exponent a carries |a| 2^-24 of absolute
         * error, which becomes relative error of y (GELU-tanh at x = -9: a ~ -66). */
        double a = want[i] != 0 && x[i] != 0 ? fabs(log(fabs((double)want[i] / x[i]))) : 0;
        double tol = 2e-6 * (1 + a / 8);
        cr_assert(e <= tol, "%s %s n=%lld: x=%.9g got %.9g want %.9g (rel %.3g > %.3g)",
                  ACT_NAMES[kind], ISA_NAMES[isa], (long long)n, x[i], got[i], want[i], e, tol);
    }
    float *y = copy_buf(x, (size_t)n);
    frt_cpu_act(y, y, n, kind, pool);
    cr_assert(!memcmp(y, got, (size_t)n * sizeof *y), "%s in place %s", ACT_NAMES[kind],
              ISA_NAMES[isa]);
    free(want), free(got), free(y);
}

static void act_path(tu_rng *r, int isa, frt_pool *pool)
{
    {
        for (int kind = 0; kind < FRT_ACT_COUNT; kind++) {
            check_act(EXTREMES, N_EXTREMES, kind, isa, pool);
            for (size_t i = 0; i < N_SIZES; i++) {
                float *x = rand_buf(r, (size_t)SIZES[i], -30, 30);
                check_act(x, SIZES[i], kind, isa, pool);
                free(x);
            }
            float *x = fbuf(4097);
            for (int i = 0; i < 4097; i++) x[i] = tu_normal(r) * 2;
            check_act(x, 4097, kind, isa, pool);
            free(x);
        }
    }
}

/* tanh(a) sigmoid(b): absolute error within 1e-6 of the output's scale (1;
 * tanh as 1 - 2 / (1 + e^2a) loses relative accuracy near a = 0 only), and
 * relative 2e-6 where the output is not tiny; in place on a gives the same. */
static void gate_path(tu_rng *r, int isa, frt_pool *pool)
{
    for (size_t i = 0; i <= N_SIZES; i++) {
        int64_t n = i < N_SIZES ? SIZES[i] : 4097;
        float *a = rand_buf(r, (size_t)n, -12, 12), *b = rand_buf(r, (size_t)n, -12, 12);
        if (n >= 4) a[0] = 100, b[1] = -100, a[2] = -100, b[3] = 100;
        float *want = fbuf((size_t)n), *got = fbuf((size_t)n);
        tu_poison(got, (size_t)n);
        frt_ref_gate(want, a, b, n);
        frt_cpu_gate(got, a, b, n, pool);
        for (int64_t j = 0; j < n; j++) {
            double d = fabs((double)got[j] - want[j]);
            cr_assert(d <= 1e-6 + 2e-6 * fabs((double)want[j]),
                      "gate %s n=%lld: a=%.9g b=%.9g got %.9g want %.9g", ISA_NAMES[isa],
                      (long long)n, a[j], b[j], got[j], want[j]);
        }
        frt_cpu_gate(a, a, b, n, pool);
        cr_assert(!memcmp(a, got, (size_t)n * sizeof *a), "gate in place %s", ISA_NAMES[isa]);
        free(a), free(b), free(want), free(got);
    }
}

/* ---- norms and softmax -------------------------------------------------- */

static const int64_t SHAPES[][2] = {{1, 1},    {3, 15},   {5, 16},  {7, 17},
                                    {2, 1000}, {3, 4097}, {67, 768}};
#define N_SHAPES (sizeof SHAPES / sizeof SHAPES[0])

static void check_close(const float *got, const float *want, int64_t n, double tol, double floor,
                        const char *what, int isa, int64_t rows, int64_t cols, frt_pool *pool)
{
    double e = tu_max_rel_err(got, want, (size_t)n, floor);
    cr_assert(e <= tol, "%s %s %lldx%lld pool=%d: rel err %.3g > %.3g", what, ISA_NAMES[isa],
              (long long)rows, (long long)cols, pool != NULL, e, tol);
}

static void norms_path(tu_rng *r, int isa, frt_pool *pool)
{
    for (size_t si = 0; si < N_SHAPES; si++) {
        int64_t rows = SHAPES[si][0], cols = SHAPES[si][1], n = rows * cols;
        /* a mean far from 0 next to a small spread: the case a one-pass variance gets wrong */
        float offset = tu_uniform(r, -100, 100), spread = tu_uniform(r, 0.1f, 3);
        float *x = rand_buf(r, (size_t)n, offset - spread, offset + spread);
        float *w = rand_buf(r, (size_t)cols, -2, 2), *b = rand_buf(r, (size_t)cols, -1, 1);
        float *want = fbuf((size_t)n), *got = fbuf((size_t)n);
        float eps = 1e-5f;
        for (int with_b = 0; with_b < 2; with_b++) {
            const float *bb = with_b ? b : NULL;
            tu_poison(got, (size_t)n);
            frt_ref_layernorm(want, x, w, bb, rows, cols, eps);
            frt_cpu_layernorm(got, x, w, bb, rows, cols, eps, pool);
            check_close(got, want, n, 1e-5, 0.1, "layernorm", isa, rows, cols, pool);
            float *y = copy_buf(x, (size_t)n);
            frt_cpu_layernorm(y, y, w, bb, rows, cols, eps, pool);
            cr_assert(!memcmp(y, got, (size_t)n * sizeof *y), "layernorm in place");
            free(y);
        }
        tu_fill_uniform(r, x, (size_t)n, -4, 4);
        tu_poison(got, (size_t)n);
        frt_ref_rmsnorm(want, x, w, rows, cols, 1e-6f);
        frt_cpu_rmsnorm(got, x, w, rows, cols, 1e-6f, pool);
        check_close(got, want, n, 1e-5, 0.1, "rmsnorm", isa, rows, cols, pool);
        float *y = copy_buf(x, (size_t)n);
        frt_cpu_rmsnorm(y, y, w, rows, cols, 1e-6f, pool);
        cr_assert(!memcmp(y, got, (size_t)n * sizeof *y), "rmsnorm in place");
        free(x), free(w), free(b), free(want), free(got), free(y);
    }
}

static void softmax_path(tu_rng *r, int isa, frt_pool *pool)
{
    for (size_t si = 0; si < N_SHAPES; si++) {
        int64_t rows = SHAPES[si][0], cols = SHAPES[si][1], n = rows * cols;
        float *x = rand_buf(r, (size_t)n, -20, 20);
        /* masked entries as attention writes them, and a fully masked row */
        for (int64_t i = 0; i < n; i++)
            if (tu_next(r) % 4 == 0) x[i] = -INFINITY;
        if (rows > 1)
            for (int64_t i = 0; i < cols; i++) x[cols + i] = -INFINITY;
        float *want = fbuf((size_t)n), *got = fbuf((size_t)n);
        tu_poison(got, (size_t)n);
        frt_ref_softmax(want, x, rows, cols);
        frt_cpu_softmax(got, x, rows, cols, pool);
        check_close(got, want, n, 1e-5, 1e-30, "softmax", isa, rows, cols, pool);
        for (int64_t i = 0; rows > 1 && i < cols; i++)
            cr_assert(got[cols + i] == 0.0f, "softmax of a -inf row must be 0");
        frt_cpu_softmax(x, x, rows, cols, pool);
        cr_assert(!memcmp(x, got, (size_t)n * sizeof *x), "softmax in place");
        /* a NaN or +inf entry poisons its row only */
        tu_fill_uniform(r, x, (size_t)n, -5, 5);
        x[tu_next(r) % cols] = tu_next(r) % 2 ? NAN : INFINITY;
        frt_cpu_softmax(got, x, rows, cols, pool);
        for (int64_t i = 0; i < n; i++)
            cr_assert(i < cols ? isnan(got[i]) : isfinite(got[i]), "softmax NaN row, %lld",
                      (long long)i);
        free(x), free(want), free(got);
    }
}

/* ---- RoPE ----------------------------------------------------------------- */

static void rope_path(tu_rng *r, int isa, frt_pool *pool)
{
    /* T, H, d, extra token stride, extra head stride, pos0 */
    static const int64_t CASES[][6] = {
        {1, 1, 2, 0, 0, 0},       {5, 3, 64, 0, 0, 7},       {7, 4, 34, 5, 3, 60000},
        {3, 2, 128, 0, 130, 123}, {64, 8, 128, 0, 0, 0},     {2, 2, 520, 1, 0, 100000},
        {33, 5, 80, 16, 8, 4095}, {200, 1, 64, 0, 0, 60000},
    };
    static const float THETAS[] = {10000.0f, 500000.0f}, SCALES[] = {1.0f, 4.0f, 0.5f};
    for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
        int64_t T = CASES[ci][0], H = CASES[ci][1], d = CASES[ci][2], pos0 = CASES[ci][5];
        /* heads laid out with gaps (sh > d, st > H sh) that the op must leave alone */
        int64_t sh = d + CASES[ci][4], st = H * sh + CASES[ci][3], n = T * st;
        for (int ti = 0; ti < 2; ti++) {
            for (int si = 0; si < 3; si++) {
                float *x = rand_buf(r, (size_t)n, -2, 2);
                float *want = copy_buf(x, (size_t)n), *got = copy_buf(x, (size_t)n);
                frt_ref_rope(want, T, H, d, st, sh, pos0, THETAS[ti], SCALES[si]);
                frt_cpu_rope(got, T, H, d, st, sh, pos0, THETAS[ti], SCALES[si], pool);
                double e = tu_max_rel_err(got, want, (size_t)n, 1.0);
                cr_assert(e <= 1e-5,
                          "rope %s T=%lld H=%lld d=%lld pos0=%lld theta=%g scale=%g: %.3g",
                          ISA_NAMES[isa], (long long)T, (long long)H, (long long)d, (long long)pos0,
                          THETAS[ti], SCALES[si], e);
                for (int64_t t = 0; t < T; t++)
                    for (int64_t j = H * sh - (sh - d); j < st; j++)
                        cr_assert(got[t * st + j] == x[t * st + j], "rope wrote a gap");
                free(x), free(want), free(got);
            }
        }
    }
}

/* ---- conv1d --------------------------------------------------------------- */

static void check_conv(tu_rng *r, int64_t cin, int64_t tin, int64_t cout, int64_t k, int stride,
                       int pad, int dil, int groups, bool bias, int isa, frt_pool *pool)
{
    int64_t tout = frt_conv1d_out_len(tin, k, stride, pad, dil);
    if (tout <= 0) return;
    float *x = rand_buf(r, (size_t)(cin * tin), -1, 1);
    float *w = rand_buf(r, (size_t)(cout * (cin / groups) * k), -1, 1);
    float *b = bias ? rand_buf(r, (size_t)cout, -1, 1) : NULL;
    float *want = fbuf((size_t)(cout * tout)), *got = fbuf((size_t)(cout * tout));
    tu_poison(got, (size_t)(cout * tout));
    frt_ref_conv1d(want, x, w, b, cin, tin, cout, k, stride, pad, dil, groups);
    frt_cpu_conv1d(got, x, w, b, cin, tin, cout, k, stride, pad, dil, groups, pool);
    /* the scale of each output: the same sum over |x|, |w|, |b| */
    float *mag = fbuf((size_t)(cout * tout));
    for (int64_t i = 0; i < cin * tin; i++) x[i] = fabsf(x[i]);
    for (int64_t i = 0; i < cout * (cin / groups) * k; i++) w[i] = fabsf(w[i]);
    for (int64_t i = 0; bias && i < cout; i++) b[i] = fabsf(b[i]);
    frt_ref_conv1d(mag, x, w, b, cin, tin, cout, k, stride, pad, dil, groups);
    double e = 0;
    for (int64_t i = 0; i < cout * tout; i++) {
        double d = fabs((double)got[i] - want[i]) / (mag[i] > 1e-3f ? mag[i] : 1e-3f);
        if (!(d <= e)) e = d;
    }
    cr_assert(e <= 1e-5,
              "conv1d %s cin=%lld tin=%lld cout=%lld k=%lld stride=%d pad=%d dil=%d groups=%d "
              "bias=%d pool=%d: err %.3g of the output's scale",
              ISA_NAMES[isa], (long long)cin, (long long)tin, (long long)cout, (long long)k, stride,
              pad, dil, groups, bias, pool != NULL, e);
    free(mag);
    free(x), free(w), free(b), free(want), free(got);
}

static void conv_options_path(tu_rng *r, int isa, frt_pool *pool)
{
    static const int STRIDES[] = {1, 2, 3}, PADS[] = {0, 1, 4}, DILS[] = {1, 2, 3};
    static const int64_t KS[] = {1, 3, 5, 9};
    const int64_t cin = 4, cout = 8;
    const int GROUPS[] = {1, 2, (int)cin};
    for (int si = 0; si < 3; si++)
        for (int pi = 0; pi < 3; pi++)
            for (int di = 0; di < 3; di++)
                for (int gi = 0; gi < 3; gi++)
                    for (int ki = 0; ki < 4; ki++)
                        for (int bias = 0; bias < 2; bias++) {
                            /* lengths around the 16-lane and 64-step tiles */
                            int64_t tin = 1 + (int64_t)(tu_next(r) % 100);
                            check_conv(r, cin, tin, cout, KS[ki], STRIDES[si], PADS[pi], DILS[di],
                                       GROUPS[gi], bias, isa, pool);
                        }
}

static void conv_shapes_path(tu_rng *r, int isa, frt_pool *pool)
{
    /* output channels not a multiple of the register tile, a long kernel (more
     * taps than one mask batch), depthwise with a channel multiplier, and sizes
     * large enough to be split over the pool */
    check_conv(r, 6, 77, 14, 3, 1, 1, 1, 2, true, isa, pool);
    check_conv(r, 3, 150, 5, 17, 1, 8, 1, 1, true, isa, pool);
    check_conv(r, 3, 150, 5, 31, 2, 15, 1, 1, false, isa, pool);
    check_conv(r, 8, 129, 16, 5, 1, 2, 1, 8, true, isa, pool);
    check_conv(r, 64, 300, 64, 3, 1, 1, 1, 1, true, isa, pool);
    check_conv(r, 48, 257, 40, 1, 1, 0, 1, 1, false, isa, pool);
    check_conv(r, 32, 500, 32, 3, 2, 1, 1, 1, true, isa, pool);
    check_conv(r, 64, 333, 64, 9, 1, 8, 2, 64, true, isa, pool);
    check_conv(r, 5, 1000, 7, 3, 1, 1, 1, 1, true, isa, pool);
    /* full-height rows with a tail of 3 and of 2 vectors after the 64-step tiles */
    check_conv(r, 24, 172, 18, 3, 1, 1, 2, 1, true, isa, pool);
    check_conv(r, 24, 150, 12, 1, 1, 0, 1, 1, true, isa, pool);
    /* large enough for Winograd F(m, k) on AVX-512 (k = 3, 5 and 7, stride
     * 1, one group, at least 128 output channels): rows not a multiple of
     * its 6-row blocks, tiles not a multiple of 16, no padding, dilations 2
     * and 3 (tiles per phase), more padding than the taps reach (outputs
     * of zeros and bias), and inputs long enough to go in chunks */
    check_conv(r, 64, 200, 130, 3, 1, 1, 1, 1, true, isa, pool);
    check_conv(r, 64, 203, 128, 3, 1, 0, 1, 1, false, isa, pool);
    check_conv(r, 40, 197, 140, 5, 1, 4, 2, 1, true, isa, pool);
    check_conv(r, 48, 150, 128, 5, 1, 7, 3, 1, true, isa, pool);
    check_conv(r, 256, 53, 128, 3, 1, 2, 2, 1, true, isa, pool);
    /* 172 steps: F(6, 3) (29 tiles, 32 padded) beats F(4, 3) (43, 48) */
    check_conv(r, 64, 172, 134, 3, 1, 1, 1, 1, true, isa, pool);
    check_conv(r, 64, 172, 128, 3, 1, 2, 2, 1, false, isa, pool);
    check_conv(r, 32, 160, 130, 7, 1, 3, 1, 1, true, isa, pool);
    check_conv(r, 64, 1100, 128, 7, 1, 9, 3, 1, true, isa, pool);
    check_conv(r, 64, 4000, 128, 3, 1, 1, 1, 1, true, isa, pool);
}

/* Empty shapes are no-ops on every path: nothing is read or written. */
static void empty_path(tu_rng *r, int isa, frt_pool *pool)
{
    float in[4] = {1, 2, 3, 4}, out[4];
    tu_poison(out, 4);
    frt_cpu_add(out, in, in, 0, 0, pool);
    frt_cpu_mul(out, in, in, 0, 0, pool);
    frt_cpu_scale(out, in, 2.0f, 0, pool);
    frt_cpu_act(out, in, 0, FRT_ACT_GELU_ERF, pool);
    frt_cpu_layernorm(out, in, in, in, 0, 4, 1e-5f, pool);
    frt_cpu_rmsnorm(out, in, in, 0, 4, 1e-5f, pool);
    frt_cpu_softmax(out, in, 0, 4, pool);
    frt_cpu_rope(out, 0, 1, 4, 4, 4, 0, 10000.0f, 1.0f, pool);
    /* k = 5 over 4 steps without padding: no output step */
    frt_cpu_conv1d(out, in, in, NULL, 1, 4, 1, 5, 1, 0, 1, 1, pool);
    for (int i = 0; i < 4; i++) cr_assert(isnan(out[i]), "%s: an empty op wrote", ISA_NAMES[isa]);
    (void)r;
}

/* The pool splits work without changing any result: every op gives the same
 * bits inline and on 3 threads (sizes large enough to be split). */
static void threads_path(tu_rng *r, int isa, frt_pool *pool)
{
    if (!pool) return;
    const int64_t rows = 77, cols = 1031, n = rows * cols;
    float *x = rand_buf(r, (size_t)n, -8, 8), *w = rand_buf(r, (size_t)cols, -2, 2);
    float *a = fbuf((size_t)n), *b = fbuf((size_t)n);
    for (int kind = 0; kind < FRT_ACT_COUNT; kind++) {
        frt_cpu_act(a, x, n, kind, NULL);
        frt_cpu_act(b, x, n, kind, pool);
        cr_assert(!memcmp(a, b, (size_t)n * sizeof *a), "%s %s", ACT_NAMES[kind], ISA_NAMES[isa]);
    }
    frt_cpu_layernorm(a, x, w, w, rows, cols, 1e-5f, NULL);
    frt_cpu_layernorm(b, x, w, w, rows, cols, 1e-5f, pool);
    cr_assert(!memcmp(a, b, (size_t)n * sizeof *a), "layernorm %s", ISA_NAMES[isa]);
    frt_cpu_softmax(a, x, rows, cols, NULL);
    frt_cpu_softmax(b, x, rows, cols, pool);
    cr_assert(!memcmp(a, b, (size_t)n * sizeof *a), "softmax %s", ISA_NAMES[isa]);
    /* RoPE over 1000 tokens of 1 head of d 64 (n = 77 * 1031 >= 64000) */
    memcpy(a, x, (size_t)n * sizeof *a);
    memcpy(b, x, (size_t)n * sizeof *b);
    frt_cpu_rope(a, 1000, 1, 64, 64, 64, 59000, 500000.0f, 2.0f, NULL);
    frt_cpu_rope(b, 1000, 1, 64, 64, 64, 59000, 500000.0f, 2.0f, pool);
    cr_assert(!memcmp(a, b, (size_t)n * sizeof *a), "rope %s", ISA_NAMES[isa]);
    /* conv1d with few output channels, so that time is split as well */
    const int64_t cin = 16, tin = 1031, cout = 10, k = 5;
    int64_t tout = frt_conv1d_out_len(tin, k, 1, 2, 1);
    frt_cpu_conv1d(a, x, w, w, cin, tin, cout, k, 1, 2, 1, 1, NULL);
    frt_cpu_conv1d(b, x, w, w, cin, tin, cout, k, 1, 2, 1, 1, pool);
    cr_assert(!memcmp(a, b, (size_t)(cout * tout) * sizeof *a), "conv1d %s", ISA_NAMES[isa]);
    free(x), free(w), free(a), free(b);
}

Test(ops, add_mul_scale)
{
    for_each_path(elementwise_path);
}
Test(ops, activations)
{
    for_each_path(act_path);
}
Test(ops, norms)
{
    for_each_path(norms_path);
}
Test(ops, gate)
{
    for_each_path(gate_path);
}
Test(ops, softmax)
{
    for_each_path(softmax_path);
}
Test(ops, rope)
{
    for_each_path(rope_path);
}
Test(ops, conv1d_options)
{
    for_each_path(conv_options_path);
}
Test(ops, conv1d_shapes)
{
    for_each_path(conv_shapes_path);
}
Test(ops, empty)
{
    for_each_path(empty_path);
}
Test(ops, thread_count_invariance)
{
    for_each_path(threads_path);
}
