/* Internal: the element-wise and row kernels of ops.c, written once on the
 * width-generic primitives (vmath_avx512.h, vmath_avx2.h, or the one-lane
 * set in ops.c) and compiled once per ISA; each including source puts the
 * static k_* functions below into its frt_ops_isa table. Tails shorter than
 * a vector go through v_loadn / v_storen, which touch no memory past the
 * row. */
#ifndef FRT_OPS_SIMD_H
#define FRT_OPS_SIMD_H

#include <math.h>
#include <stdbool.h>

#include "ops_impl.h"

static void k_add(float *y, const float *a, const float *b, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL) v_store(y + i, v_add(v_load(a + i), v_load(b + i)));
    if (i < n) {
        vf z = v_set1(0.0f);
        v_storen(y + i, v_add(v_loadn(a + i, n - i, z), v_loadn(b + i, n - i, z)), n - i);
    }
}

static void k_mul(float *y, const float *a, const float *b, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL) v_store(y + i, v_mul(v_load(a + i), v_load(b + i)));
    if (i < n) {
        vf z = v_set1(0.0f);
        v_storen(y + i, v_mul(v_loadn(a + i, n - i, z), v_loadn(b + i, n - i, z)), n - i);
    }
}

static void k_scale(float *y, const float *x, float s, int64_t n)
{
    vf vs = v_set1(s);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) v_store(y + i, v_mul(v_load(x + i), vs));
    if (i < n) v_storen(y + i, v_mul(v_loadn(x + i, n - i, v_set1(0.0f)), vs), n - i);
}

/* Row sums for the norms: f32 vector partial sums over blocks of SUM_BLOCK
 * elements, blocks added in double, so the error stays that of a short sum
 * at any row length (and with one lane). */
#define SUM_BLOCK (16 * VL)

static double row_sum(const float *x, int64_t n)
{
    double s = 0;
    for (int64_t i0 = 0; i0 < n; i0 += SUM_BLOCK) {
        int64_t e = n - i0 < SUM_BLOCK ? n : i0 + SUM_BLOCK, i = i0;
        vf acc = v_set1(0.0f);
        for (; i + VL <= e; i += VL) acc = v_add(acc, v_load(x + i));
        if (i < e) acc = v_add(acc, v_loadn(x + i, e - i, v_set1(0.0f)));
        s += v_hsum(acc);
    }
    return s;
}

/* sum (x - m) and sum (x - m)^2 */
static void row_moments(const float *x, int64_t n, float m, double *sd, double *sdd)
{
    const vf mv = v_set1(m);
    *sd = *sdd = 0;
    for (int64_t i0 = 0; i0 < n; i0 += SUM_BLOCK) {
        int64_t e = n - i0 < SUM_BLOCK ? n : i0 + SUM_BLOCK, i = i0;
        vf a1 = v_set1(0.0f), a2 = a1;
        for (; i + VL <= e; i += VL) {
            vf d = v_sub(v_load(x + i), mv);
            a1 = v_add(a1, d);
            a2 = v_fma(d, d, a2);
        }
        if (i < e) {
            vf d = v_sub(v_loadn(x + i, e - i, mv), mv);
            a1 = v_add(a1, d);
            a2 = v_fma(d, d, a2);
        }
        *sd += v_hsum(a1);
        *sdd += v_hsum(a2);
    }
}

/* Corrected two-pass moments: the second pass sums d = x - m and d^2 about
 * the first-pass mean m, so a large mean costs no accuracy; d is exact when
 * x is near m. The output subtracts m and the small correction c = sum(d)/n
 * separately for the same reason. */
static void k_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n,
                        float eps)
{
    float m = (float)(row_sum(x, n) / (double)n);
    double sd, sdd;
    row_moments(x, n, m, &sd, &sdd);
    double c = sd / (double)n;
    double var = sdd / (double)n - c * c;
    if (var < 0) var = 0;
    vf rstd = v_set1((float)(1.0 / sqrt(var + (double)eps)));
    vf mv = v_set1(m), vc = v_set1((float)c), z = v_set1(0.0f);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf d = v_mul(v_sub(v_sub(v_load(x + i), mv), vc), rstd);
        vf o = b ? v_fma(d, v_load(w + i), v_load(b + i)) : v_mul(d, v_load(w + i));
        v_store(y + i, o);
    }
    if (i < n) {
        int64_t r = n - i;
        vf d = v_mul(v_sub(v_sub(v_loadn(x + i, r, z), mv), vc), rstd);
        vf o = b ? v_fma(d, v_loadn(w + i, r, z), v_loadn(b + i, r, z))
                 : v_mul(d, v_loadn(w + i, r, z));
        v_storen(y + i, o, r);
    }
}

static void k_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps)
{
    double ss = 0;
    for (int64_t i0 = 0; i0 < n; i0 += SUM_BLOCK) {
        int64_t e = n - i0 < SUM_BLOCK ? n : i0 + SUM_BLOCK, i = i0;
        vf acc = v_set1(0.0f);
        for (; i + VL <= e; i += VL) {
            vf a = v_load(x + i);
            acc = v_fma(a, a, acc);
        }
        if (i < e) {
            vf a = v_loadn(x + i, e - i, v_set1(0.0f));
            acc = v_fma(a, a, acc);
        }
        ss += v_hsum(acc);
    }
    vf r = v_set1((float)(1.0 / sqrt(ss / (double)n + (double)eps))), z = v_set1(0.0f);
    int64_t i = 0;
    for (; i + VL <= n; i += VL) v_store(y + i, v_mul(v_mul(v_load(x + i), r), v_load(w + i)));
    if (i < n)
        v_storen(y + i, v_mul(v_mul(v_loadn(x + i, n - i, z), r), v_loadn(w + i, n - i, z)), n - i);
}

#undef SUM_BLOCK

/* One loop per activation so that each body inlines into its own loop. */
#define ACT_LOOP(EXPR)                                                                             \
    do {                                                                                           \
        int64_t i = 0;                                                                             \
        for (; i + VL <= n; i += VL) {                                                             \
            vf v = v_load(x + i);                                                                  \
            v_store(y + i, EXPR);                                                                  \
        }                                                                                          \
        if (i < n) {                                                                               \
            vf v = v_loadn(x + i, n - i, v_set1(0.0f));                                            \
            v_storen(y + i, EXPR, n - i);                                                          \
        }                                                                                          \
    } while (0)

static void k_act(float *y, const float *x, int64_t n, frt_act kind)
{
    switch (kind) {
    case FRT_ACT_GELU_ERF: ACT_LOOP(v_gelu_erf(v)); break;
    case FRT_ACT_GELU_TANH: ACT_LOOP(v_gelu_tanh(v)); break;
    case FRT_ACT_QUICK_GELU: ACT_LOOP(v_x_sigmoid(v, 1.702f)); break;
    case FRT_ACT_SILU: ACT_LOOP(v_x_sigmoid(v, 1.0f)); break;
    case FRT_ACT_MISH: ACT_LOOP(v_mish(v)); break;
    /* max(0, v) rather than max(v, 0): the second operand wins on NaN, so NaN stays NaN */
    case FRT_ACT_RELU: ACT_LOOP(v_max(v_set1(0.0f), v)); break;
    case FRT_ACT_COUNT: break;
    }
}

#undef ACT_LOOP

/* WaveNet's gated activation y = tanh(a) sigmoid(b), with tanh(a) =
 * 1 - 2 / (1 + exp(2a)) (absolute error a few ulps of 1, also near 0);
 * exp overflowing to inf gives the limits 1 and 0 exactly. */
static inline vf v_gate(vf a, vf b)
{
    const vf one = v_set1(1.0f);
    vf t = v_sub(one, v_div(v_set1(2.0f), v_add(one, v_exp(v_add(a, a)))));
    return v_div(t, v_add(one, v_exp(v_sub(v_set1(0.0f), b))));
}

static void k_gate(float *y, const float *a, const float *b, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL) v_store(y + i, v_gate(v_load(a + i), v_load(b + i)));
    if (i < n) {
        vf z = v_set1(0.0f);
        v_storen(y + i, v_gate(v_loadn(a + i, n - i, z), v_loadn(b + i, n - i, z)), n - i);
    }
}

/* A row of -inf only has no defined softmax; it gives zeros (no NaN leaks
 * into the next op). A +inf or NaN entry makes the row NaN, as in PyTorch. */
static void k_softmax(float *y, const float *x, int64_t n)
{
    const vf ninf = v_set1(-INFINITY);
    vf mx = ninf;
    int64_t i = 0;
    for (; i + VL <= n; i += VL) mx = v_max(mx, v_load(x + i));
    if (i < n) mx = v_max(mx, v_loadn(x + i, n - i, ninf));
    float m = v_hmax(mx);
    /* the max may have dropped a NaN; only a true -inf row gives zeros, a
     * NaN goes on below with m = -inf and turns the row into NaN */
    bool all_ninf = m == -INFINITY;
    for (i = 0; all_ninf && i < n; i++) all_ninf = x[i] == -INFINITY;
    if (all_ninf) {
        for (i = 0; i < n; i++) y[i] = 0.0f;
        return;
    }
    vf vmx = v_set1(m), s = v_set1(0.0f);
    for (i = 0; i + VL <= n; i += VL) {
        vf e = v_exp(v_sub(v_load(x + i), vmx));
        s = v_add(s, e);
        v_store(y + i, e);
    }
    if (i < n) {
        vf e = v_exp(v_sub(v_loadn(x + i, n - i, ninf), vmx));
        s = v_add(s, e);
        v_storen(y + i, e, n - i);
    }
    k_scale(y, y, 1.0f / v_hsum(s), n);
}

static void k_rope(float *x1, float *x2, const float *c, const float *s, int64_t n)
{
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf a = v_load(x1 + i), b = v_load(x2 + i), vc = v_load(c + i), vs = v_load(s + i);
        v_store(x1 + i, v_fms(a, vc, v_mul(b, vs)));
        v_store(x2 + i, v_fma(b, vc, v_mul(a, vs)));
    }
    if (i < n) {
        int64_t r = n - i;
        vf z = v_set1(0.0f);
        vf a = v_loadn(x1 + i, r, z), b = v_loadn(x2 + i, r, z);
        vf vc = v_loadn(c + i, r, z), vs = v_loadn(s + i, r, z);
        v_storen(x1 + i, v_fms(a, vc, v_mul(b, vs)), r);
        v_storen(x2 + i, v_fma(b, vc, v_mul(a, vs)), r);
    }
}

#endif
