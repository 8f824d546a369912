/* AVX2 kernels of ops.c: the generic row kernels (ops_simd.h) at 8 lanes,
 * and conv1d. */
#include "vmath_avx2.h"

#include "ops_simd.h"

/* conv1d register tile: CO_T output channels x TV vectors of 8 output
 * steps = 12 accumulators of the 16 ymm registers. Masks of up to KC taps
 * are computed once per tile, outside the input-channel loop.
 * Successive input channels are a row (tin floats) apart, a stride the
 * hardware prefetcher misses: the row PF_ROWS channels ahead is prefetched
 * in software (2x the speed at 512 channels). */
enum { CO_T = 4, TV = 3, KC = 16, PF_ROWS = 8 };
/* Stride 1 away from the edges: plain loads; stride 1 near an edge: masked
 * loads (the zero padding); stride 2: two masked loads, even lanes picked
 * by shuffles; any other stride: masked gathers. */
enum { MODE_GATHER, MODE_S1, MODE_S1_INTERIOR, MODE_S2 };

/* Lanes l < 8 with 0 <= base + l * step < lim, as all-ones lanes. */
static inline __m256i lane_mask(__m256i idx, int64_t lim)
{
    return _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(-1)),
                            _mm256_cmpgt_epi32(_mm256_set1_epi32((int)lim), idx));
}

static inline __m256i lane_index(int64_t base, int64_t step)
{
    return _mm256_add_epi32(_mm256_set1_epi32((int)base),
                            _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                               _mm256_set1_epi32((int)step)));
}

/* y[co : co + nc, t0 : min(t0 + 8 nv, t1)], all rows in one group. */
static inline __attribute__((always_inline)) void conv_tile(const frt_conv1d_job *j, int64_t co,
                                                            int64_t t0, int64_t t1, const int nc,
                                                            const int nv, const int mode)
{
    const int64_t cin_g = j->cin_g, k = j->k, tin = j->tin, s = j->stride;
    const int64_t wstride = cin_g * k;
    const float *xg = j->x + (co / j->cout_g) * cin_g * tin;
    const float *wc = j->w + co * wstride;
    __m256 acc[CO_T][TV];
    __m256i om[TV];
#pragma GCC unroll 8
    for (int v = 0; v < nv; v++) om[v] = lane_mask(lane_index(t0 + 8 * v, 1), t1);
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++) {
        __m256 bias = _mm256_set1_ps(j->b ? j->b[co + c] : 0.0f);
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) acc[c][v] = bias;
    }
    for (int64_t k0 = 0; k0 < k; k0 += KC) {
        const int kn = (int)(k - k0 < KC ? k - k0 : KC);
        int64_t off[KC];
        __m256i lm[KC][2 * TV], gidx[KC][TV];
        /* input steps this batch of taps reads from each row */
        const int64_t first = t0 * s + k0 * j->dil - j->pad;
        const int64_t span = (8 * nv - 1) * s + (kn - 1) * j->dil + 1;
        for (int kk = 0; kk < kn; kk++) {
            int64_t in = t0 * s + (k0 + kk) * j->dil - j->pad;
            off[kk] = in;
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) {
                if (mode == MODE_S1) {
                    lm[kk][v] = _mm256_and_si256(om[v], lane_mask(lane_index(in + 8 * v, 1), tin));
                } else if (mode == MODE_S2) {
                    int64_t valid = t1 - t0 - 8 * v, need = 2 * (valid < 0 ? 0 : valid);
                    for (int h = 0; h < 2; h++)
                        lm[kk][2 * v + h] =
                            _mm256_and_si256(lane_mask(lane_index(in + 16 * v + 8 * h, 1), tin),
                                             lane_mask(lane_index(8 * h, 1), need));
                } else if (mode == MODE_GATHER) {
                    gidx[kk][v] = lane_index(in + 8 * v * s, s);
                    lm[kk][v] = _mm256_and_si256(om[v], lane_mask(gidx[kk][v], tin));
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
                __m256 xv[TV];
#pragma GCC unroll 8
                for (int v = 0; v < nv; v++) {
                    if (mode == MODE_S1_INTERIOR)
                        xv[v] = _mm256_loadu_ps(xr + off[kk] + 8 * v);
                    else if (mode == MODE_S1)
                        xv[v] = _mm256_maskload_ps(xr + off[kk] + 8 * v, lm[kk][v]);
                    else if (mode == MODE_S2) {
                        const float *p = xr + off[kk] + 16 * v;
                        __m256 e = _mm256_shuffle_ps(_mm256_maskload_ps(p, lm[kk][2 * v]),
                                                     _mm256_maskload_ps(p + 8, lm[kk][2 * v + 1]),
                                                     _MM_SHUFFLE(2, 0, 2, 0));
                        xv[v] = _mm256_castpd_ps(
                            _mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
                    } else
                        xv[v] = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), xr, gidx[kk][v],
                                                         _mm256_castsi256_ps(lm[kk][v]), 4);
                }
#pragma GCC unroll 8
                for (int c = 0; c < nc; c++) {
                    __m256 wv = _mm256_set1_ps(wr[c * wstride + kk]);
#pragma GCC unroll 8
                    for (int v = 0; v < nv; v++) acc[c][v] = _mm256_fmadd_ps(wv, xv[v], acc[c][v]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < nc; c++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            _mm256_maskstore_ps(j->y + (co + c) * j->tout + t0 + 8 * v, om[v], acc[c][v]);
}

#define CONV_TILE_NC(NV, MODE)                                                                     \
    switch (nc) {                                                                                  \
    case 1: conv_tile(j, co, t, t1, 1, NV, MODE); break;                                           \
    case 2: conv_tile(j, co, t, t1, 2, NV, MODE); break;                                           \
    default: conv_tile(j, co, t, t1, CO_T, NV, MODE); break;                                       \
    }

/* Rows co .. co + nc (nc = CO_T, 2 or 1, one group) over [t0, t1). */
static void conv_rows_s1(const frt_conv1d_job *j, int64_t co, int nc, int64_t t0, int64_t t1)
{
    const int64_t reach = (j->k - 1) * j->dil - j->pad; /* last tap's offset */
    for (int64_t t = t0; t < t1;) {
        if (t1 - t >= 8 * TV && t - j->pad >= 0 && t + 8 * TV - 1 + reach < j->tin) {
            CONV_TILE_NC(TV, MODE_S1_INTERIOR)
            t += 8 * TV;
        } else if (t1 - t > 8 * (TV - 1)) {
            CONV_TILE_NC(TV, MODE_S1)
            t += 8 * TV;
        } else {
            CONV_TILE_NC(1, MODE_S1)
            t += 8;
        }
    }
}

static inline __attribute__((always_inline)) void
conv_rows(const frt_conv1d_job *j, int64_t co, int nc, int64_t t0, int64_t t1, const int mode)
{
    for (int64_t t = t0; t < t1;) {
        if (t1 - t > 8 * (TV - 1)) {
            CONV_TILE_NC(TV, mode)
            t += 8 * TV;
        } else {
            CONV_TILE_NC(1, mode)
            t += 8;
        }
    }
}

#undef CONV_TILE_NC

/* Depthwise (one input channel per group) at stride 1: a k-tap filter per
 * row, 8 steps at a time, plain loads away from the edges. */
static void conv_depthwise_s1(const frt_conv1d_job *j, int64_t co0, int64_t co1, int64_t t0,
                              int64_t t1)
{
    const int64_t k = j->k, tin = j->tin, dil = j->dil, pad = j->pad;
    const int64_t reach = (k - 1) * dil - pad; /* last tap's offset */
    for (int64_t co = co0; co < co1; co++) {
        const float *xr = j->x + co / j->cout_g * tin;
        const float *wr = j->w + co * k;
        float *yr = j->y + co * j->tout;
        const __m256 bias = _mm256_set1_ps(j->b ? j->b[co] : 0.0f);
        for (int64_t t = t0; t < t1; t += 8) {
            __m256 a = bias;
            if (t + 8 <= t1 && t - pad >= 0 && t + 7 + reach < tin) {
                for (int64_t kk = 0; kk < k; kk++)
                    a = _mm256_fmadd_ps(_mm256_set1_ps(wr[kk]),
                                        _mm256_loadu_ps(xr + t + kk * dil - pad), a);
                _mm256_storeu_ps(yr + t, a);
                continue;
            }
            __m256i om = lane_mask(lane_index(t, 1), t1);
            for (int64_t kk = 0; kk < k; kk++) {
                int64_t in = t + kk * dil - pad;
                __m256i m = _mm256_and_si256(om, lane_mask(lane_index(in, 1), tin));
                a = _mm256_fmadd_ps(_mm256_set1_ps(wr[kk]), _mm256_maskload_ps(xr + in, m), a);
            }
            _mm256_maskstore_ps(yr + t, om, a);
        }
    }
}

static void conv1d_avx2(const frt_conv1d_job *j, int64_t co0, int64_t co1, int64_t t0, int64_t t1)
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
            conv_rows_s1(j, co, nc, t0, t1);
        else if (j->stride == 2)
            conv_rows(j, co, nc, t0, t1, MODE_S2);
        else
            conv_rows(j, co, nc, t0, t1, MODE_GATHER);
        co += nc;
    }
}

const frt_ops_isa frt_ops_avx2 = {
    .add = k_add,
    .mul = k_mul,
    .scale = k_scale,
    .layernorm = k_layernorm,
    .rmsnorm = k_rmsnorm,
    .act = k_act,
    .gate = k_gate,
    .softmax = k_softmax,
    .rope = k_rope,
    .conv1d = conv1d_avx2,
};
