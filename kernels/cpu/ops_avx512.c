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

/* ---- Winograd F(4, 3), F(6, 3), F(4, 5), F(2, 7) ------------------------------- */

/* Points 0, 1, -1, 2, -2 (and 1/2, -1/2 for 8 points) and infinity; B^T,
 * G and A^T checked exactly in rational arithmetic (y = A^T ((G g) .
 * (B^T d)) is the correlation of the k taps g with the m + k - 1 inputs d). */
static const float W3_BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                                  {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const float W3_G[6][3] = {{1.0f / 4, 0, 0},
                                 {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                 {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                 {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                 {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                 {0, 0, 1}};
static const float W3_AT[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
static const float W8_BT[8][8] = {{-1, 0, 5.25f, 0, -5.25f, 0, 1, 0},
                                  {0, 1, 1, -4.25f, -4.25f, 1, 1, 0},
                                  {0, -1, 1, 4.25f, -4.25f, -1, 1, 0},
                                  {0, 0.5f, 0.25f, -2.5f, -1.25f, 2, 1, 0},
                                  {0, -0.5f, 0.25f, 2.5f, -1.25f, -2, 1, 0},
                                  {0, 2, 4, -2.5f, -5, 0.5f, 1, 0},
                                  {0, -2, 4, 2.5f, -5, -0.5f, 1, 0},
                                  {0, -1, 0, 5.25f, 0, -5.25f, 0, 1}};
static const float W5_G[8][5] = {
    {-1, 0, 0, 0, 0},
    {-2.0f / 9, -2.0f / 9, -2.0f / 9, -2.0f / 9, -2.0f / 9},
    {-2.0f / 9, 2.0f / 9, -2.0f / 9, 2.0f / 9, -2.0f / 9},
    {1.0f / 90, 1.0f / 45, 2.0f / 45, 4.0f / 45, 8.0f / 45},
    {1.0f / 90, -1.0f / 45, 2.0f / 45, -4.0f / 45, 8.0f / 45},
    {32.0f / 45, 16.0f / 45, 8.0f / 45, 4.0f / 45, 2.0f / 45},
    {32.0f / 45, -16.0f / 45, 8.0f / 45, -4.0f / 45, 2.0f / 45},
    {0, 0, 0, 0, 1}};
static const float W5_AT[4][8] = {{1, 1, 1, 1, 1, 1, 1, 0},
                                  {0, 1, -1, 2, -2, 0.5f, -0.5f, 0},
                                  {0, 1, 1, 4, 4, 0.25f, 0.25f, 0},
                                  {0, 1, -1, 8, -8, 0.125f, -0.125f, 1}};
static const float W63_G[8][3] = {{-1, 0, 0},
                                  {-2.0f / 9, -2.0f / 9, -2.0f / 9},
                                  {-2.0f / 9, 2.0f / 9, -2.0f / 9},
                                  {1.0f / 90, 1.0f / 45, 2.0f / 45},
                                  {1.0f / 90, -1.0f / 45, 2.0f / 45},
                                  {32.0f / 45, 16.0f / 45, 8.0f / 45},
                                  {32.0f / 45, -16.0f / 45, 8.0f / 45},
                                  {0, 0, 1}};
static const float W27_G[8][7] = {
    {-1, 0, 0, 0, 0, 0, 0},
    {-2.0f / 9, -2.0f / 9, -2.0f / 9, -2.0f / 9, -2.0f / 9, -2.0f / 9, -2.0f / 9},
    {-2.0f / 9, 2.0f / 9, -2.0f / 9, 2.0f / 9, -2.0f / 9, 2.0f / 9, -2.0f / 9},
    {1.0f / 90, 1.0f / 45, 2.0f / 45, 4.0f / 45, 8.0f / 45, 16.0f / 45, 32.0f / 45},
    {1.0f / 90, -1.0f / 45, 2.0f / 45, -4.0f / 45, 8.0f / 45, -16.0f / 45, 32.0f / 45},
    {32.0f / 45, 16.0f / 45, 8.0f / 45, 4.0f / 45, 2.0f / 45, 1.0f / 45, 1.0f / 90},
    {32.0f / 45, -16.0f / 45, 8.0f / 45, -4.0f / 45, 2.0f / 45, -1.0f / 45, 1.0f / 90},
    {0, 0, 0, 0, 0, 0, 1}};
static const float W27_AT[2][8] = {{1, 1, 1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0.5f, -0.5f, 1}};
static const float W63_AT[6][8] = {{1, 1, 1, 1, 1, 1, 1, 0},
                                   {0, 1, -1, 2, -2, 0.5f, -0.5f, 0},
                                   {0, 1, 1, 4, 4, 0.25f, 0.25f, 0},
                                   {0, 1, -1, 8, -8, 0.125f, -0.125f, 0},
                                   {0, 1, 1, 16, 16, 0.0625f, 0.0625f, 0},
                                   {0, 1, -1, 32, -32, 0.03125f, -0.03125f, 1}};

/* a + c x, skipping the zero coefficients of the tables (constants after
 * unrolling) */
static inline __attribute__((always_inline)) __m512 wmad(float c, __m512 x, __m512 a)
{
    if (c == 0.0f) return a;
    if (c == 1.0f) return _mm512_add_ps(a, x);
    if (c == -1.0f) return _mm512_sub_ps(a, x);
    return _mm512_fmadd_ps(_mm512_set1_ps(c), x, a);
}

/* st[q] = xr[off[q]] for q < cnt, as scalar loads: a 16-lane gather costs
 * about 60 cycles on the build machine (AMD), 4x these copies. Kept out of
 * line and unvectorised, so that the compiler does not make it a gather. */
__attribute__((noinline, optimize("no-tree-vectorize"))) static void
wino_stage(float *restrict st, const float *restrict xr, const int32_t *restrict off, int cnt)
{
    for (int q = 0; q < cnt; q++) st[q] = xr[off[q]];
}

/* V for tiles [tt0, tt1) (whole vectors) and channels [ci0, ci1): point xi
 * of channel ci, tile tt at v[(xi cin + ci) ldv + tt - tt0]. */
static inline __attribute__((always_inline)) void wino_in_n(const frt_wino_job *j, int64_t ci0,
                                                            int64_t ci1, float *vout, int64_t ldv,
                                                            int64_t tt0, int64_t tt1, const int n)
{
    const float *bt = n == 6 ? &W3_BT[0][0] : &W8_BT[0][0];
    const int64_t cin = j->cin;
    const __m512i tin = _mm512_set1_epi32((int)j->tin), zero = _mm512_setzero_si512();
    for (int64_t t = tt0; t < tt1; t += 16) {
        const __m512i base = _mm512_loadu_si512(j->tin0 + t);
        const __mmask16 live =
            _mm512_cmpgt_epi32_mask(_mm512_loadu_si512(j->count + t), _mm512_setzero_si512());
        __m512i idx[8];
        __mmask16 msk[8];
        int32_t off[8 * 16];
        bool full = true; /* every lane of every input in range: scalar copies */
#pragma GCC unroll 8
        for (int i = 0; i < n; i++) {
            idx[i] = _mm512_add_epi32(base, _mm512_set1_epi32((int)(i * j->dil)));
            msk[i] = live & _mm512_cmpge_epi32_mask(idx[i], zero) &
                     _mm512_cmplt_epi32_mask(idx[i], tin);
            full = full && msk[i] == 0xffff;
            _mm512_storeu_si512(off + 16 * i, idx[i]);
        }
        for (int64_t ci = ci0; ci < ci1; ci++) {
            const float *xr = j->x + ci * j->tin;
            __m512 d[8];
            if (full) {
                float st[8 * 16];
                wino_stage(st, xr, off, 16 * n);
#pragma GCC unroll 8
                for (int i = 0; i < n; i++) d[i] = _mm512_loadu_ps(st + 16 * i);
            } else {
#pragma GCC unroll 8
                for (int i = 0; i < n; i++)
                    d[i] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), msk[i], idx[i], xr, 4);
            }
#pragma GCC unroll 8
            for (int xi = 0; xi < n; xi++) {
                __m512 a = _mm512_setzero_ps();
#pragma GCC unroll 8
                for (int i = 0; i < n; i++) a = wmad(bt[xi * n + i], d[i], a);
                _mm512_storeu_ps(vout + (xi * cin + ci) * ldv + t - tt0, a);
            }
        }
    }
}

static void wino_in_avx512(const frt_wino_job *j, int64_t ci0, int64_t ci1)
{
    if (j->m + j->k == 7)
        wino_in_n(j, ci0, ci1, j->v, j->npad, 0, j->npad, 6);
    else
        wino_in_n(j, ci0, ci1, j->v, j->npad, 0, j->npad, 8);
}

/* M [FRT_WINO_CO][64] = U [FRT_WINO_CO][cin] V [cin][16 nv] for one point. */
static inline __attribute__((always_inline)) void wino_gemm(const float *v, int64_t ldv,
                                                            const float *u, int64_t cin, float *m,
                                                            const int nv)
{
    __m512 acc[FRT_WINO_CO][FRT_WINO_TV];
#pragma GCC unroll 8
    for (int c = 0; c < FRT_WINO_CO; c++)
#pragma GCC unroll 8
        for (int t = 0; t < nv; t++) acc[c][t] = _mm512_setzero_ps();
    for (int64_t ci = 0; ci < cin; ci++) {
        __m512 xv[FRT_WINO_TV];
#pragma GCC unroll 8
        for (int t = 0; t < nv; t++) xv[t] = _mm512_loadu_ps(v + ci * ldv + 16 * t);
#pragma GCC unroll 8
        for (int c = 0; c < FRT_WINO_CO; c++) {
            __m512 w = _mm512_set1_ps(u[c * cin + ci]);
#pragma GCC unroll 8
            for (int t = 0; t < nv; t++) acc[c][t] = _mm512_fmadd_ps(w, xv[t], acc[c][t]);
        }
    }
#pragma GCC unroll 8
    for (int c = 0; c < FRT_WINO_CO; c++)
#pragma GCC unroll 8
        for (int t = 0; t < nv; t++) _mm512_storeu_ps(m + c * 64 + 16 * t, acc[c][t]);
}

static inline __attribute__((always_inline)) const float *wino_g(const int m, const int k)
{
    return k == 7 ? &W27_G[0][0] : k == 5 ? &W5_G[0][0] : m == 4 ? &W3_G[0][0] : &W63_G[0][0];
}

static inline __attribute__((always_inline)) const float *wino_at(const int m, const int k)
{
    return k == 7 ? &W27_AT[0][0] : k == 5 ? &W5_AT[0][0] : m == 4 ? &W3_AT[0][0] : &W63_AT[0][0];
}

/* U [n][FRT_WINO_CO][cin] of output block b (rows past cout are zeros): 16
 * input channels' taps are k contiguous vectors, dealt out to one vector
 * per tap by k - 1 two-source permutes (gathers cost 3x as much here). */
static inline __attribute__((always_inline)) void wino_u_n(const frt_wino_job *j, int64_t b,
                                                           float *u, const int m, const int k)
{
    const int n = m + k - 1;
    const float *g = wino_g(m, k);
    const int64_t cin = j->cin, co0 = b * FRT_WINO_CO;
    const int nc = (int)(j->cout - co0 < FRT_WINO_CO ? j->cout - co0 : FRT_WINO_CO);
    /* pidx[kk][0] picks lane l's tap kk (element l k + kk of the 16 k) from
     * vectors 0 and 1, pidx[kk][r - 1] from the result so far and vector r */
    __m512i pidx[7][6];
    for (int kk = 0; kk < k; kk++)
        for (int r = 1; r < k; r++) {
            int32_t ix[16];
            for (int l = 0; l < 16; l++) {
                int src = l * k + kk;
                if (r == 1)
                    ix[l] = src < 32 ? src : l;
                else
                    ix[l] = src >= 16 * r && src < 16 * (r + 1) ? 16 + src - 16 * r : l;
            }
            pidx[kk][r - 1] = _mm512_loadu_si512(ix);
        }
    for (int c = 0; c < FRT_WINO_CO; c++) {
        const float *wr = j->w + (co0 + (c < nc ? c : 0)) * cin * k;
        for (int64_t ci = 0; ci < cin; ci += 16) {
            __m512 raw[7], gv[7];
#pragma GCC unroll 8
            for (int r = 0; r < k; r++)
                raw[r] = _mm512_maskz_loadu_ps(range_mask(ci * k + 16 * r, c < nc ? cin * k : 0),
                                               wr + ci * k + 16 * r);
#pragma GCC unroll 8
            for (int kk = 0; kk < k; kk++) {
                gv[kk] = _mm512_permutex2var_ps(raw[0], pidx[kk][0], raw[1]);
#pragma GCC unroll 8
                for (int r = 2; r < k; r++)
                    gv[kk] = _mm512_permutex2var_ps(gv[kk], pidx[kk][r - 1], raw[r]);
            }
#pragma GCC unroll 8
            for (int xi = 0; xi < n; xi++) {
                __m512 a = _mm512_setzero_ps();
#pragma GCC unroll 8
                for (int kk = 0; kk < k; kk++) a = wmad(g[xi * k + kk], gv[kk], a);
                _mm512_mask_storeu_ps(u + (xi * FRT_WINO_CO + c) * cin + ci, range_mask(ci, cin),
                                      a);
            }
        }
    }
}

/* Output block b over tiles [tt0, tt1) (whole vectors) from its U and the
 * tiles' V (as in wino_in_n); mm: [n][FRT_WINO_CO][64] scratch. */
static inline __attribute__((always_inline)) void
wino_mul_n(const frt_wino_job *j, int64_t b, const float *u, const float *vin, int64_t ldv,
           int64_t tt0, int64_t tt1, float *mm, const int m, const int k)
{
    const int n = m + k - 1;
    const float *at = wino_at(m, k);
    const int64_t cin = j->cin, co0 = b * FRT_WINO_CO;
    const int nc = (int)(j->cout - co0 < FRT_WINO_CO ? j->cout - co0 : FRT_WINO_CO);
    for (int64_t t0 = tt0; t0 < tt1; t0 += 16 * FRT_WINO_TV) {
        const int nv = (int)((tt1 - t0) / 16 < FRT_WINO_TV ? (tt1 - t0) / 16 : FRT_WINO_TV);
        for (int xi = 0; xi < n; xi++) {
            const float *v = vin + xi * cin * ldv + t0 - tt0;
            const float *ux = u + xi * FRT_WINO_CO * cin;
            float *mx = mm + xi * FRT_WINO_CO * 64;
            switch (nv) {
            case 1: wino_gemm(v, ldv, ux, cin, mx, 1); break;
            case 2: wino_gemm(v, ldv, ux, cin, mx, 2); break;
            case 3: wino_gemm(v, ldv, ux, cin, mx, 3); break;
            default: wino_gemm(v, ldv, ux, cin, mx, 4); break;
            }
        }
        /* y = A^T M (+ bias), scattered to the tiles' output steps */
        for (int t = 0; t < nv; t++) {
            const __m512i ob = _mm512_loadu_si512(j->tout0 + t0 + 16 * t);
            const __m512i cnt = _mm512_loadu_si512(j->count + t0 + 16 * t);
            for (int c = 0; c < nc; c++) {
                __m512 mv[8];
#pragma GCC unroll 8
                for (int xi = 0; xi < n; xi++)
                    mv[xi] = _mm512_loadu_ps(mm + (xi * FRT_WINO_CO + c) * 64 + 16 * t);
                const __m512 bias = _mm512_set1_ps(j->b ? j->b[co0 + c] : 0.0f);
                float *yr = j->y + (co0 + c) * j->tout;
#pragma GCC unroll 8
                for (int i = 0; i < m; i++) {
                    __m512 a = bias;
#pragma GCC unroll 8
                    for (int xi = 0; xi < n; xi++) a = wmad(at[i * n + xi], mv[xi], a);
                    __mmask16 om = _mm512_cmpgt_epi32_mask(cnt, _mm512_set1_epi32(i));
                    __m512i oi = _mm512_add_epi32(ob, _mm512_set1_epi32((int)(i * j->dil)));
                    _mm512_mask_i32scatter_ps(yr, om, oi, a, 4);
                }
            }
        }
    }
}

/* The (m, k) pairs, each its own build of the inlined kernels above. */
#define WINO_CASES(CALL)                                                                           \
    if (j->k == 7) {                                                                               \
        CALL(2, 7)                                                                                 \
    } else if (j->k == 5) {                                                                        \
        CALL(4, 5)                                                                                 \
    } else if (j->m == 6) {                                                                        \
        CALL(6, 3)                                                                                 \
    } else {                                                                                       \
        CALL(4, 3)                                                                                 \
    }

static void wino_blocks_avx512(const frt_wino_job *j, int64_t b0, int64_t b1, float *scr)
{
    float *u = scr, *mm = scr + (j->m + j->k - 1) * FRT_WINO_CO * j->cin;
#define BLOCKS(M, K)                                                                               \
    for (int64_t b = b0; b < b1; b++) {                                                            \
        wino_u_n(j, b, u, M, K);                                                                   \
        wino_mul_n(j, b, u, j->v, j->npad, 0, j->npad, mm, M, K);                                  \
    }
    WINO_CASES(BLOCKS)
#undef BLOCKS
}

static void wino_u_avx512(const frt_wino_job *j, int64_t b0, int64_t b1, float *u_all)
{
    const int64_t per = (j->m + j->k - 1) * FRT_WINO_CO * j->cin;
#define US(M, K)                                                                                   \
    for (int64_t b = b0; b < b1; b++) wino_u_n(j, b, u_all + b * per, M, K);
    WINO_CASES(US)
#undef US
}

static void wino_chunks_avx512(const frt_wino_job *j, int64_t c0, int64_t c1, const float *u_all,
                               float *scr)
{
    const int64_t n = j->m + j->k - 1, per = n * FRT_WINO_CO * j->cin;
    const int64_t nblk = (j->cout + FRT_WINO_CO - 1) / FRT_WINO_CO, tc = 16 * FRT_WINO_TV;
    float *v = scr, *mm = scr + n * j->cin * tc;
#define CHUNKS(M, K)                                                                               \
    for (int64_t c = c0; c < c1; c++) {                                                            \
        int64_t tt0 = c * tc, tt1 = tt0 + tc < j->npad ? tt0 + tc : j->npad;                       \
        wino_in_n(j, 0, j->cin, v, tc, tt0, tt1, M + K - 1);                                       \
        for (int64_t b = 0; b < nblk; b++)                                                         \
            wino_mul_n(j, b, u_all + b * per, v, tc, tt0, tt1, mm, M, K);                          \
    }
    WINO_CASES(CHUNKS)
#undef CHUNKS
}

#undef WINO_CASES

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
    .wino_in = wino_in_avx512,
    .wino_blocks = wino_blocks_avx512,
    .wino_u = wino_u_avx512,
    .wino_chunks = wino_chunks_avx512,
};
