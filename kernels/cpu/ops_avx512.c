/* AVX-512 kernels of ops.c: the generic row kernels (ops_simd.h) at 16
 * lanes, and conv1d. */
#include "vmath_avx512.h"

#include "ops_simd.h"

/* conv1d register tile: CO_T output channels x TV vectors of 16 output
 * steps = 24 accumulators; each (input channel, tap) step loads TV input
 * vectors and CO_T broadcast weights for 24 FMAs. Masks of up to KC taps
 * are computed once per tile, outside the input-channel loop.
 * Successive input channels are a row (tin floats) apart, a stride the
 * hardware prefetcher misses: the row PF_ROWS channels ahead is prefetched
 * in software (2x the speed at 512 channels). */
enum { CO_T = 6, TV = 4, KC = 16, PF_ROWS = 8 };
/* How an input vector is fetched: stride 1 (one masked load), stride 2
 * (two loads, even lanes picked by a permute), any other stride (gather). */
enum { MODE_GATHER, MODE_S1, MODE_S2 };

/* Lanes l < 16 with 0 <= base + l < lim. */
static inline __mmask16 range_mask(int64_t base, int64_t lim)
{
    int64_t lo = base < 0 ? -base : 0, hi = lim - base;
    if (hi > 16) hi = 16;
    if (lo >= hi) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

static inline int64_t clamp16(int64_t v)
{
    return v < 0 ? 0 : v > 16 ? 16 : v;
}

/* y[co : co + nc, t0 : min(t0 + 16 nv, t1)], all rows in one group. Lanes
 * past t1 or reading outside [0, tin) (the zero padding) are masked off:
 * masked lanes are neither read nor faulted on. */
static inline __attribute__((always_inline)) void conv_tile(const frt_conv1d_job *j, int64_t co,
                                                            int64_t t0, int64_t t1, const int nc,
                                                            const int nv, const int mode)
{
    const int64_t cin_g = j->cin_g, k = j->k, tin = j->tin, s = j->stride;
    const int64_t wstride = cin_g * k;
    const float *xg = j->x + (co / j->cout_g) * cin_g * tin;
    const float *wc = j->w + co * wstride;
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 acc[CO_T][TV];
    __mmask16 om[TV];
#pragma GCC unroll 8
    for (int v = 0; v < nv; v++) om[v] = range_mask(t0 + 16 * v, t1);
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++) {
        __m512 bias = _mm512_set1_ps(j->b ? j->b[co + c] : 0.0f);
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) acc[c][v] = bias;
    }
    for (int64_t k0 = 0; k0 < k; k0 += KC) {
        const int kn = (int)(k - k0 < KC ? k - k0 : KC);
        int64_t off[KC];
        __mmask16 lm[KC][2 * TV];
        __m512i gidx[KC][TV];
        /* input steps this batch of taps reads from each row */
        const int64_t first = t0 * s + k0 * j->dil - j->pad;
        const int64_t span = (16 * nv - 1) * s + (kn - 1) * j->dil + 1;
        for (int kk = 0; kk < kn; kk++) {
            int64_t in = t0 * s + (k0 + kk) * j->dil - j->pad;
            off[kk] = in;
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) {
                if (mode == MODE_S1) {
                    lm[kk][v] = om[v] & range_mask(in + 16 * v, tin);
                } else if (mode == MODE_S2) {
                    int64_t need = 2 * clamp16(t1 - t0 - 16 * v);
                    for (int h = 0; h < 2; h++)
                        lm[kk][2 * v + h] =
                            range_mask(in + 32 * v + 16 * h, tin) & range_mask(16 * h, need);
                } else {
                    __m512i idx =
                        _mm512_add_epi32(_mm512_set1_epi32((int)(in + 16 * v * s)),
                                         _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)s)));
                    gidx[kk][v] = idx;
                    lm[kk][v] = om[v] & _mm512_cmpge_epi32_mask(idx, _mm512_setzero_si512()) &
                                _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32((int)tin));
                }
            }
        }
        for (int64_t ci = 0; ci < cin_g; ci++) {
            const float *xr = xg + ci * tin;
            const float *wr = wc + ci * k + k0;
            if (ci + PF_ROWS < cin_g)
                for (int64_t p = 0; p < span; p += 16)
                    _mm_prefetch((const char *)(xr + PF_ROWS * tin + first + p), _MM_HINT_T0);
            for (int kk = 0; kk < kn; kk++) {
                __m512 xv[TV];
#pragma GCC unroll 8
                for (int v = 0; v < nv; v++) {
                    if (mode == MODE_S1) {
                        xv[v] = _mm512_maskz_loadu_ps(lm[kk][v], xr + off[kk] + 16 * v);
                    } else if (mode == MODE_S2) {
                        const float *p = xr + off[kk] + 32 * v;
                        xv[v] = _mm512_permutex2var_ps(
                            _mm512_maskz_loadu_ps(lm[kk][2 * v], p), even,
                            _mm512_maskz_loadu_ps(lm[kk][2 * v + 1], p + 16));
                    } else {
                        xv[v] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lm[kk][v],
                                                         gidx[kk][v], xr, 4);
                    }
                }
#pragma GCC unroll 8
                for (int c = 0; c < nc; c++) {
                    __m512 wv = _mm512_set1_ps(wr[c * wstride + kk]);
#pragma GCC unroll 8
                    for (int v = 0; v < nv; v++) acc[c][v] = _mm512_fmadd_ps(wv, xv[v], acc[c][v]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(j->y + (co + c) * j->tout + t0 + 16 * v, om[v], acc[c][v]);
}

#define CONV_TILE_NC(NV)                                                                           \
    switch (nc) {                                                                                  \
    case 1: conv_tile(j, co, t, t1, 1, NV, mode); break;                                           \
    case 2: conv_tile(j, co, t, t1, 2, NV, mode); break;                                           \
    default: conv_tile(j, co, t, t1, CO_T, NV, mode); break;                                       \
    }

/* Rows co .. co + nc (nc = CO_T, 2 or 1, one group) over [t0, t1): full-width
 * tiles, then the tail of up to 48 steps: in one tile of 2 or 3 vectors for
 * full-height rows (single vectors there load a weight per FMA: a third of
 * the speed, which cost 1.5x on the 172-step convs of speech), else in
 * single vectors. */
static inline __attribute__((always_inline)) void
conv_rows(const frt_conv1d_job *j, int64_t co, int nc, int64_t t0, int64_t t1, const int mode)
{
    for (int64_t t = t0; t < t1;) {
        if (t1 - t > 16 * (TV - 1)) {
            CONV_TILE_NC(TV)
            t += 16 * TV;
        } else if (nc == CO_T && t1 - t > 32) {
            conv_tile(j, co, t, t1, CO_T, 3, mode);
            t = t1;
        } else if (nc == CO_T && t1 - t > 16) {
            conv_tile(j, co, t, t1, CO_T, 2, mode);
            t = t1;
        } else {
            CONV_TILE_NC(1)
            t += 16;
        }
    }
}

#undef CONV_TILE_NC

/* Depthwise (one input channel per group) at stride 1: a k-tap filter per
 * row, 64 steps at a time; the register tile above would spend more on its
 * masks than on this one input channel. */
static void conv_depthwise_s1(const frt_conv1d_job *j, int64_t co0, int64_t co1, int64_t t0,
                              int64_t t1)
{
    const int64_t k = j->k, tin = j->tin, dil = j->dil, pad = j->pad;
    const int64_t reach = (k - 1) * dil - pad; /* last tap's offset */
    for (int64_t co = co0; co < co1; co++) {
        const float *xr = j->x + co / j->cout_g * tin;
        const float *wr = j->w + co * k;
        float *yr = j->y + co * j->tout;
        const __m512 bias = _mm512_set1_ps(j->b ? j->b[co] : 0.0f);
        for (int64_t t = t0; t < t1; t += 64) {
            if (t + 64 <= t1 && t - pad >= 0 && t + 63 + reach < tin) {
                __m512 a0 = bias, a1 = bias, a2 = bias, a3 = bias;
                for (int64_t kk = 0; kk < k; kk++) {
                    const float *p = xr + t + kk * dil - pad;
                    __m512 w = _mm512_set1_ps(wr[kk]);
                    a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p), a0);
                    a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p + 16), a1);
                    a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p + 32), a2);
                    a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p + 48), a3);
                }
                _mm512_storeu_ps(yr + t, a0);
                _mm512_storeu_ps(yr + t + 16, a1);
                _mm512_storeu_ps(yr + t + 32, a2);
                _mm512_storeu_ps(yr + t + 48, a3);
                continue;
            }
            for (int64_t tv = t; tv < t + 64 && tv < t1; tv += 16) {
                __mmask16 om = range_mask(tv, t1);
                __m512 a = bias;
                if (om == 0xffff && tv - pad >= 0 && tv + 15 + reach < tin) {
                    for (int64_t kk = 0; kk < k; kk++)
                        a = _mm512_fmadd_ps(_mm512_set1_ps(wr[kk]),
                                            _mm512_loadu_ps(xr + tv + kk * dil - pad), a);
                } else {
                    for (int64_t kk = 0; kk < k; kk++) {
                        int64_t in = tv + kk * dil - pad;
                        __m512 x = _mm512_maskz_loadu_ps(om & range_mask(in, tin), xr + in);
                        a = _mm512_fmadd_ps(_mm512_set1_ps(wr[kk]), x, a);
                    }
                }
                _mm512_mask_storeu_ps(yr + tv, om, a);
            }
        }
    }
}

static void conv1d_avx512(const frt_conv1d_job *j, int64_t co0, int64_t co1, int64_t t0, int64_t t1)
{
    if (j->cin_g == 1 && j->stride == 1) {
        conv_depthwise_s1(j, co0, co1, t0, t1);
        return;
    }
    for (int64_t co = co0; co < co1;) {
        int64_t end = (co / j->cout_g + 1) * j->cout_g;
        if (end > co1) end = co1;
        /* remainders of a group go two rows or one at a time: fewer tile
         * shapes to compile, at little cost next to the full tiles */
        int nc = end - co >= CO_T ? CO_T : end - co >= 2 ? 2 : 1;
        if (j->stride == 1)
            conv_rows(j, co, nc, t0, t1, MODE_S1);
        else if (j->stride == 2)
            conv_rows(j, co, nc, t0, t1, MODE_S2);
        else
            conv_rows(j, co, nc, t0, t1, MODE_GATHER);
        co += nc;
    }
}

const frt_ops_isa frt_ops_avx512 = {
    .add = k_add,
    .mul = k_mul,
    .scale = k_scale,
    .layernorm = k_layernorm,
    .rmsnorm = k_rmsnorm,
    .act = k_act,
    .gate = k_gate,
    .softmax = k_softmax,
    .rope = k_rope,
    .conv1d = conv1d_avx512,
};
