/* Internal: width-generic vector math on the primitives of vmath_avx512.h,
 * vmath_avx2.h or the one-lane set in ops.c (vf, vm, v_add, ...). Included
 * once per ISA by the primitives header, so each source gets its own copy.
 *
 * Accuracy against double precision: v_exp within 1e-7 relative over
 * [-87, 88.7]; the activations within 2e-6 relative, also in their tails,
 * where the textbook formulas cancel or produce inf/inf (GELU-tanh's far
 * tail excepted: there the rounding of its f32 exponent dominates, see
 * tests/test_ops.c). */
#ifndef FRT_OPS_VMATH_H
#define FRT_OPS_VMATH_H

#include <math.h>

/* exp(a + b), with b small next to a's magnitude: b joins after the range
 * reduction, so a may carry more bits than a + b rounded to float would.
 * Results below FLT_MIN flush to 0; above FLT_MAX give inf. */
static inline vf v_exp2(vf a, vf b)
{
    /* ln 2 split so that n * LN2_HI is exact for |n| < 512 */
    const float LN2_HI = 0.693145751953125f, LN2_LO = 1.42860682030941723212e-6f;
    vf x = v_add(a, b);
    vf n = v_round(v_mul(x, v_set1(1.44269504088896341f)));
    n = v_max(v_min(n, v_set1(127.0f)), v_set1(-126.0f));
    vf r = v_fnma(n, v_set1(LN2_HI), a);
    r = v_add(v_fnma(n, v_set1(LN2_LO), r), b);
    /* Taylor to r^7: the r^8 term is below 6e-9 for |r| <= ln2 / 2 */
    vf p = v_set1(1.0f / 5040);
    p = v_fma(p, r, v_set1(1.0f / 720));
    p = v_fma(p, r, v_set1(1.0f / 120));
    p = v_fma(p, r, v_set1(1.0f / 24));
    p = v_fma(p, r, v_set1(1.0f / 6));
    p = v_fma(p, r, v_set1(0.5f));
    p = v_fma(p, r, v_set1(1.0f));
    p = v_fma(p, r, v_set1(1.0f));
    vf y = v_mul(p, v_pow2i(n));
    y = v_sel(v_lt(x, v_set1(-87.33654f)), v_set1(0.0f), y);
    return v_sel(v_gt(x, v_set1(88.72284f)), v_set1(INFINITY), y);
}

static inline vf v_exp(vf x)
{
    return v_exp2(x, v_set1(0.0f));
}

/* x * Phi(x), Phi the standard normal CDF, as 0.5 erfc(-x / sqrt 2) so
 * that the negative tail keeps its relative accuracy (1 + erf cancels).
 * erfc(z) = t exp(P(t) - z^2) with t = 1 / (1 + z / 2), P a degree-10
 * Chebyshev fit (error 1e-8) over z in [0, 10] in the variable
 * s = 2.4 t - 1.4; z^2 = x^2 / 2 enters exactly through an fma split. */
static inline vf v_gelu_erf(vf x)
{
    vf xc = v_max(v_min(x, v_set1(20.0f)), v_set1(-20.0f));
    vf z = v_mul(v_abs(xc), v_set1(0.70710678118654752f));
    vf t = v_div(v_set1(2.0f), v_add(v_set1(2.0f), z));
    vf s = v_max(v_fma(t, v_set1(2.4f), v_set1(-1.4f)), v_set1(-1.0f));
    vf p = v_set1(-2.413217427368678e-5f);
    p = v_fma(p, s, v_set1(5.4884887168668065e-5f));
    p = v_fma(p, s, v_set1(0.00013307192820894621f));
    p = v_fma(p, s, v_set1(-0.00053437717477856679f));
    p = v_fma(p, s, v_set1(-0.00027877876096313991f));
    p = v_fma(p, s, v_set1(0.0037075203040264327f));
    p = v_fma(p, s, v_set1(-0.0010445386717747515f));
    p = v_fma(p, s, v_set1(-0.02947034941254784f));
    p = v_fma(p, s, v_set1(0.015744946212647393f));
    p = v_fma(p, s, v_set1(0.57030710397115317f));
    p = v_fma(p, s, v_set1(-0.55859535113381531f));
    vf hi = v_mul(xc, xc);
    vf lo = v_fms(xc, xc, hi);
    vf half = v_set1(0.5f);
    vf erfc = v_mul(t, v_exp2(v_mul(hi, v_set1(-0.5f)), v_fnma(lo, half, p)));
    vf tail = v_mul(half, erfc);
    vf phi = v_sel(v_lt(xc, v_set1(0.0f)), tail, v_sub(v_set1(1.0f), tail));
    return v_mul(x, phi);
}

/* 0.5 x (1 + tanh(u)) written as x / (1 + exp(-2u)): no cancellation for
 * x < 0 and no inf / inf for large |x|. */
static inline vf v_gelu_tanh(vf x)
{
    const float c = 0.79788456080286536f; /* sqrt(2 / pi) */
    vf x3 = v_mul(v_mul(x, x), x);
    vf u = v_fma(x3, v_set1(0.044715f), x);
    return v_div(x, v_add(v_set1(1.0f), v_exp(v_mul(u, v_set1(-2.0f * c)))));
}

/* x * sigmoid(k x) = x / (1 + exp(-k x)): exp overflows to inf for very
 * negative x, which gives the right limit (-0) instead of NaN. */
static inline vf v_x_sigmoid(vf x, float k)
{
    return v_div(x, v_add(v_set1(1.0f), v_exp(v_mul(x, v_set1(-k)))));
}

/* x tanh(softplus(x)) = x n / (n + 2) with n = e^x (e^x + 2); for x >= 20
 * the ratio is 1 in float, so x is clamped there before exp overflows. */
static inline vf v_mish(vf x)
{
    vf e = v_exp(v_min(x, v_set1(20.0f)));
    vf n = v_mul(e, v_add(e, v_set1(2.0f)));
    return v_mul(x, v_div(n, v_add(n, v_set1(2.0f))));
}

#endif
