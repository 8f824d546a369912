/* AVX-512 pieces of the CPU GEMM: 16x16 transposing packers, register-
 * blocked micro-kernels (f32 FMA and bf16 vdpbf16ps), and the small-M
 * weight-streaming path. Compiled with -mavx512*; called only when the CPU
 * has them. */
#include <immintrin.h>

#include "gemm_impl.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Units ahead that the packer prefetches in each of its 16 row streams. */
#define PACK_PREFETCH 64

static ALWAYS_INLINE __mmask16 mask_upto(int64_t n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* In-register transpose of 16 rows of 16 32-bit units. */
static ALWAYS_INLINE void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}

/* 16 consecutive 32-bit units of one w row starting at unit u (f32, a
 * widened f16/bf16, or a bf16 pair), zero past `left` units. */
static ALWAYS_INLINE __m512 load_w_units(const void *row, frt_dtype wtype, bool pairs, int64_t u,
                                         int64_t left)
{
    __mmask16 m = mask_upto(left);
    if (wtype == FRT_F32 || pairs) return _mm512_maskz_loadu_ps(m, (const uint32_t *)row + u);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + u);
    if (wtype == FRT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Shared by every weight dtype: `pairs` means bf16 pairs of k as units
 * (the odd k past the end of an odd kc is zeroed). */
static ALWAYS_INLINE void pack_w_body(const void *w, frt_dtype wtype, int64_t ldw, int64_t n0,
                                      int64_t nn, int64_t k0, int64_t kc, void *dst, int NR,
                                      bool pairs)
{
    size_t esz = wtype == FRT_F32 ? 4 : 2;
    int64_t units = pairs ? (kc + 1) / 2 : kc;
    int64_t full = pairs ? kc / 2 : kc; /* units readable whole */
    float *out = dst;
    for (int64_t p = 0; p < nn; p += NR) {
        for (int g = 0; g < NR; g += 16) {
            const char *rows[16];
            int nrow = 0;
            for (int r = 0; r < 16; r++) {
                int64_t n = p + g + r;
                rows[r] = n < nn ? (const char *)w + ((n0 + n) * ldw + k0) * esz : NULL;
                nrow += n < nn;
            }
            for (int64_t u = 0; u < units; u += 16) {
                __m512 v[16];
                /* 16 row streams at once are more than the hardware
                 * prefetcher follows (small M reads w from DRAM here) */
                for (int r = 0; r < nrow; r++)
                    _mm_prefetch(rows[r] + (pairs ? 4 : esz) * (u + PACK_PREFETCH), _MM_HINT_T0);
                for (int r = 0; r < 16; r++) {
                    v[r] = r < nrow ? load_w_units(rows[r], wtype, pairs, u, full - u)
                                    : _mm512_setzero_ps();
                    if (pairs && full < units && u + 16 >= units && r < nrow) {
                        /* odd kc: the last unit holds k = kc-1 and a zero */
                        uint16_t last = ((const uint16_t *)rows[r])[kc - 1];
                        v[r] =
                            _mm512_mask_mov_ps(v[r], (__mmask16)(1u << (units - 1 - u)),
                                               _mm512_castsi512_ps(_mm512_set1_epi32((int)last)));
                    }
                }
                transpose16(v);
                /* a constant trip count keeps v in registers; the tail may
                 * index it by a variable */
                if (units - u >= 16)
                    for (int t = 0; t < 16; t++) _mm512_storeu_ps(out + (u + t) * NR + g, v[t]);
                else
                    for (int64_t t = 0; t < units - u; t++)
                        _mm512_storeu_ps(out + (u + t) * NR + g, v[t]);
            }
        }
        out += units * NR;
    }
}

/* x rows to [kc][MR] f32 units. */
static ALWAYS_INLINE void pack_x_f32_body(const float *x, int64_t ldx, int64_t mm, int64_t k0,
                                          int64_t kc, float *dst, int MR)
{
    for (int64_t p = 0; p < mm; p += MR) {
        for (int i = 0; i < MR; i++) {
            float *o = dst + i;
            if (p + i < mm) {
                const float *src = x + (p + i) * ldx + k0;
                for (int64_t k = 0; k < kc; k++) o[k * MR] = src[k];
            } else {
                for (int64_t k = 0; k < kc; k++) o[k * MR] = 0.0f;
            }
        }
        dst += kc * MR;
    }
}

/* x rows to [kc/2][MR] bf16 pairs, rounded to nearest even. */
static ALWAYS_INLINE void pack_x_bf16_body(const float *x, int64_t ldx, int64_t mm, int64_t k0,
                                           int64_t kc, uint32_t *dst, int MR)
{
    int64_t units = (kc + 1) / 2;
    for (int64_t p = 0; p < mm; p += MR) {
        for (int i = 0; i < MR; i++) {
            uint32_t *o = dst + i;
            if (p + i >= mm) {
                for (int64_t u = 0; u < units; u++) o[u * MR] = 0;
                continue;
            }
            const float *src = x + (p + i) * ldx + k0;
            for (int64_t k = 0; k < kc; k += 32) {
                __m512 lo = _mm512_maskz_loadu_ps(mask_upto(kc - k), src + k);
                __m512 hi = _mm512_maskz_loadu_ps(mask_upto(kc - k - 16), src + k + 16);
                uint32_t tmp[16];
                _mm512_storeu_si512(tmp, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
                int64_t nu = (kc - k + 1) / 2 < 16 ? (kc - k + 1) / 2 : 16;
                for (int64_t t = 0; t < nu; t++) o[(k / 2 + t) * MR] = tmp[t];
            }
        }
        dst += units * MR;
    }
}

/* Finish a tile: + y, + bias, masked store of the valid mr x nr part. */
static ALWAYS_INLINE void store_tile(__m512 *acc, int MR, int NV, float *y, int64_t ldy, int mr,
                                     int nr, const float *bias, bool load_y)
{
    __mmask16 m[8];
    __m512 b[8];
    for (int j = 0; j < NV; j++) {
        m[j] = mask_upto(nr - 16 * j);
        b[j] = bias ? _mm512_maskz_loadu_ps(m[j], bias + 16 * j) : _mm512_setzero_ps();
    }
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        float *yr = y + i * ldy;
        for (int j = 0; j < NV; j++) {
            __m512 v = acc[i * NV + j];
            if (bias) v = _mm512_add_ps(v, b[j]);
            if (load_y) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[j], yr + 16 * j));
            _mm512_mask_storeu_ps(yr + 16 * j, m[j], v);
        }
    }
}

/* The y tile is read after the k loop; start fetching it now. */
static ALWAYS_INLINE void prefetch_tile(const float *y, int64_t ldy, int MR, int NV)
{
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NV; j++)
            _mm_prefetch((const char *)(y + i * ldy + 16 * j), _MM_HINT_T0);
}

static ALWAYS_INLINE void ukr_f32_body(int64_t kc, const float *xp, const float *wp, float *y,
                                       int64_t ldy, int mr, int nr, const float *bias, bool load_y,
                                       int MR, int NV)
{
    __m512 acc[32];
    for (int i = 0; i < MR * NV; i++) acc[i] = _mm512_setzero_ps();
    if (load_y) prefetch_tile(y, ldy, MR, NV);
    for (int64_t k = 0; k < kc; k++) {
        __m512 wv[8];
        for (int j = 0; j < NV; j++) wv[j] = _mm512_load_ps(wp + 16 * j);
        for (int i = 0; i < MR; i++) {
            __m512 xb = _mm512_set1_ps(xp[i]);
            for (int j = 0; j < NV; j++)
                acc[i * NV + j] = _mm512_fmadd_ps(xb, wv[j], acc[i * NV + j]);
        }
        xp += MR;
        wp += 16 * NV;
    }
    store_tile(acc, MR, NV, y, ldy, mr, nr, bias, load_y);
}

static ALWAYS_INLINE void ukr_bf16_body(int64_t kc, const uint32_t *xp, const uint32_t *wp,
                                        float *y, int64_t ldy, int mr, int nr, const float *bias,
                                        bool load_y, int MR, int NV)
{
    __m512 acc[32];
    for (int i = 0; i < MR * NV; i++) acc[i] = _mm512_setzero_ps();
    if (load_y) prefetch_tile(y, ldy, MR, NV);
    for (int64_t u = 0; u < (kc + 1) / 2; u++) {
        __m512bh wv[8];
        for (int j = 0; j < NV; j++) wv[j] = (__m512bh)_mm512_load_si512(wp + 16 * j);
        for (int i = 0; i < MR; i++) {
            __m512bh xb = (__m512bh)_mm512_set1_epi32((int)xp[i]);
            for (int j = 0; j < NV; j++)
                acc[i * NV + j] = _mm512_dpbf16_ps(acc[i * NV + j], xb, wv[j]);
        }
        xp += MR;
        wp += 16 * NV;
    }
    store_tile(acc, MR, NV, y, ldy, mr, nr, bias, load_y);
}

#define DEFINE_KERNEL(MR, NV)                                                                      \
    static void pack_w_f32_##MR##x##NV(const void *w, frt_dtype wtype, int64_t ldw, int64_t n0,    \
                                       int64_t nn, int64_t k0, int64_t kc, void *dst)              \
    {                                                                                              \
        pack_w_body(w, wtype, ldw, n0, nn, k0, kc, dst, 16 * NV, false);                           \
    }                                                                                              \
    static void pack_w_pair_##MR##x##NV(const void *w, frt_dtype wtype, int64_t ldw, int64_t n0,   \
                                        int64_t nn, int64_t k0, int64_t kc, void *dst)             \
    {                                                                                              \
        pack_w_body(w, wtype, ldw, n0, nn, k0, kc, dst, 16 * NV, true);                            \
    }                                                                                              \
    static void pack_x_f32_##MR##x##NV(const float *x, int64_t ldx, int64_t mm, int64_t k0,        \
                                       int64_t kc, void *dst)                                      \
    {                                                                                              \
        pack_x_f32_body(x, ldx, mm, k0, kc, dst, MR);                                              \
    }                                                                                              \
    static void pack_x_pair_##MR##x##NV(const float *x, int64_t ldx, int64_t mm, int64_t k0,       \
                                        int64_t kc, void *dst)                                     \
    {                                                                                              \
        pack_x_bf16_body(x, ldx, mm, k0, kc, dst, MR);                                             \
    }                                                                                              \
    static void ukr_f32_##MR##x##NV(int64_t kc, const void *xp, const void *wp, float *y,          \
                                    int64_t ldy, int mr, int nr, const float *bias, bool load_y)   \
    {                                                                                              \
        ukr_f32_body(kc, xp, wp, y, ldy, mr, nr, bias, load_y, MR, NV);                            \
    }                                                                                              \
    static void ukr_bf16_##MR##x##NV(int64_t kc, const void *xp, const void *wp, float *y,         \
                                     int64_t ldy, int mr, int nr, const float *bias, bool load_y)  \
    {                                                                                              \
        ukr_bf16_body(kc, xp, wp, y, ldy, mr, nr, bias, load_y, MR, NV);                           \
    }                                                                                              \
    static const frt_gemm_kernel k_f32_##MR##x##NV = {                                             \
        "avx512 f32 " #MR "x" #NV, MR, 16 * NV, 1, pack_w_f32_##MR##x##NV, pack_x_f32_##MR##x##NV, \
        ukr_f32_##MR##x##NV};                                                                      \
    static const frt_gemm_kernel k_bf16_##MR##x##NV = {"avx512 bf16 " #MR "x" #NV,                 \
                                                       MR,                                         \
                                                       16 * NV,                                    \
                                                       2,                                          \
                                                       pack_w_pair_##MR##x##NV,                    \
                                                       pack_x_pair_##MR##x##NV,                    \
                                                       ukr_bf16_##MR##x##NV};

/* 6 rows x 64 columns: 24 accumulators, 4 weight loads and 6 broadcasts per
 * k (or k pair). Measured on the build machine (681x1024x4096, one thread)
 * against 8x48, 14x32, 12x32 and 4x96: best for f32 (0.87 of the FMA loop's
 * peak, others 0.82-0.86) and for bf16 (4x96 fell to 2/3). */
DEFINE_KERNEL(6, 4)

const frt_gemm_kernel *frt_gemm_kernel_avx512(frt_dtype wtype, bool bf16_dot)
{
    return wtype == FRT_BF16 && bf16_dot ? &k_bf16_6x4 : &k_f32_6x4;
}

/* ---- small M: stream each weight row once --------------------------------- */

static ALWAYS_INLINE __m512 load_w16(const void *row, frt_dtype wtype, int64_t k, __mmask16 m)
{
    if (wtype == FRT_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k);
    if (wtype == FRT_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* sum[i * R + r] into y[m0 + i, n + r], with bias and accumulate. */
static ALWAYS_INLINE void store_sums(const frt_gemm_args *a, int64_t m0, int64_t n, int R, int MB,
                                     const float *sum)
{
    for (int i = 0; i < MB; i++) {
        float *y = a->y + (m0 + i) * a->ldy + n;
        for (int r = 0; r < R; r++) {
            float v = sum[i * R + r] + (a->bias ? a->bias[n + r] : 0.0f);
            y[r] = a->accumulate ? y[r] + v : v;
        }
    }
}

/* acc[i * R + r] += x row i . w row r over k .. k+16 (lanes in m). */
static ALWAYS_INLINE void gemv_step(__m512 *acc, const char *const *wr, const float *const *xr,
                                    int R, int MB, frt_dtype wtype, int64_t k, __mmask16 m,
                                    int64_t ahead)
{
    int64_t esz = wtype == FRT_F32 ? 4 : 2;
    __m512 wv[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        wv[r] = load_w16(wr[r], wtype, k, m);
        _mm_prefetch(wr[r] + ahead + k * esz, _MM_HINT_T1);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; i++) {
        __m512 xv = _mm512_maskz_loadu_ps(m, xr[i] + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) acc[i * R + r] = _mm512_fmadd_ps(xv, wv[r], acc[i * R + r]);
    }
}

/* R weight rows against MB (<= 4) x rows: each x load feeds R FMAs and each
 * weight load MB, so both streams stay cheap next to the DRAM stream. */
static ALWAYS_INLINE void gemv_block(const frt_gemm_args *a, int64_t m0, int64_t n, int R, int MB,
                                     frt_dtype wtype)
{
    size_t esz = wtype == FRT_F32 ? 4 : 2;
    const char *wr[4];
    for (int r = 0; r < R; r++) wr[r] = (const char *)a->w + (n + r) * a->ldw * esz;
    const float *xr[4];
    for (int i = 0; i < MB; i++) xr[i] = a->x + (m0 + i) * a->ldx;
    __m512 acc[16];
    for (int i = 0; i < R * MB; i++) acc[i] = _mm512_setzero_ps();
    /* Rows follow each other in memory, so the hardware prefetcher sees R
     * streams that stop every row; fetching the next block of rows into L2
     * alongside keeps DRAM busy across those seams (bf16 rows, half as long,
     * gained the most: 38 -> 46 GB/s on 2 cores). */
    const int64_t ahead = R * a->ldw * (int64_t)esz;
    int64_t K = a->K, k = 0;
    /* whole vectors, then one masked step (the mask would cost every step) */
    for (; k + 16 <= K; k += 16) gemv_step(acc, wr, xr, R, MB, wtype, k, 0xffff, ahead);
    if (k < K) gemv_step(acc, wr, xr, R, MB, wtype, k, mask_upto(K - k), ahead);
    float sum[16];
#pragma GCC unroll 16
    for (int t = 0; t < R * MB; t++) sum[t] = _mm512_reduce_add_ps(acc[t]);
    store_sums(a, m0, n, R, MB, sum);
}

/* acc[(i * R + r) * 2 + {0, 1}] += the even / odd products of x row i and
 * w row r over k .. k+32 (weights in m). */
static ALWAYS_INLINE void gemv_step_bf16(__m512 *acc, const uint16_t *const *wr,
                                         const float *const *xr, int R, int MB, int64_t k,
                                         __mmask32 m, int64_t ahead)
{
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    __m512 we[4], wo[4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        __m512i v = _mm512_maskz_loadu_epi16(m, wr[r] + k);
        _mm_prefetch((const char *)(wr[r] + k) + ahead, _MM_HINT_T1);
        we[r] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        wo[r] = _mm512_castsi512_ps(_mm512_and_si512(v, hi));
    }
#pragma GCC unroll 4
    for (int i = 0; i < MB; i++) {
        __m512 xe = _mm512_loadu_ps(xr[i] + k), xo = _mm512_loadu_ps(xr[i] + k + 16);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            acc[(i * R + r) * 2] = _mm512_fmadd_ps(xe, we[r], acc[(i * R + r) * 2]);
            acc[(i * R + r) * 2 + 1] = _mm512_fmadd_ps(xo, wo[r], acc[(i * R + r) * 2 + 1]);
        }
    }
}

/* bf16 weights: a 64-byte load holds 32 weights; the even ones become f32
 * by a shift, the odd ones by masking off the low half, so no lane crossing
 * is needed if x is split the same way beforehand (xs: per block of 32,
 * the 16 even then the 16 odd values). */
static ALWAYS_INLINE void gemv_block_bf16(const frt_gemm_args *a, const float *xs, int64_t kp,
                                          int64_t m0, int64_t n, int R, int MB)
{
    const uint16_t *wr[4];
    for (int r = 0; r < R; r++) wr[r] = (const uint16_t *)a->w + (n + r) * a->ldw;
    const float *xr[4];
    for (int i = 0; i < MB; i++) xr[i] = xs + (m0 + i) * kp;
    __m512 acc[16];
    for (int i = 0; i < 2 * R * MB; i++) acc[i] = _mm512_setzero_ps();
    const int64_t ahead = R * a->ldw * 2; /* bytes to the next block, as in gemv_block */
    int64_t K = a->K, k = 0;
    for (; k + 32 <= K; k += 32) gemv_step_bf16(acc, wr, xr, R, MB, k, 0xffffffffu, ahead);
    if (k < K) gemv_step_bf16(acc, wr, xr, R, MB, k, (__mmask32)((1u << (K - k)) - 1), ahead);
    float sum[16];
#pragma GCC unroll 8
    for (int t = 0; t < R * MB; t++)
        sum[t] = _mm512_reduce_add_ps(_mm512_add_ps(acc[2 * t], acc[2 * t + 1]));
    store_sums(a, m0, n, R, MB, sum);
}

/* R weight rows against every row of x, four x rows at a time (two for
 * bf16, whose even/odd split doubles the accumulators). */
static ALWAYS_INLINE void gemv_all_m(const frt_gemm_args *a, int64_t n, int R, frt_dtype wtype,
                                     const float *xs, int64_t kp)
{
    if (wtype == FRT_BF16) {
        for (int64_t m0 = 0; m0 < a->M; m0 += 2) {
            if (a->M - m0 >= 2)
                gemv_block_bf16(a, xs, kp, m0, n, R, 2);
            else
                gemv_block_bf16(a, xs, kp, m0, n, R, 1);
        }
        return;
    }
    for (int64_t m0 = 0; m0 < a->M; m0 += 4) {
        switch (a->M - m0 < 4 ? a->M - m0 : 4) {
        case 4: gemv_block(a, m0, n, R, 4, wtype); break;
        case 3: gemv_block(a, m0, n, R, 3, wtype); break;
        case 2: gemv_block(a, m0, n, R, 2, wtype); break;
        default: gemv_block(a, m0, n, R, 1, wtype); break;
        }
    }
}

/* Rows [n0, n1): four weight rows at a time (each x load feeds four FMAs,
 * and four streams keep more DRAM requests in flight), then the rest. */
static ALWAYS_INLINE void gemv_rows(const frt_gemm_args *a, int64_t n0, int64_t n1, frt_dtype wtype,
                                    const float *xs, int64_t kp)
{
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) gemv_all_m(a, n, 4, wtype, xs, kp);
    for (; n < n1; n++) gemv_all_m(a, n, 1, wtype, xs, kp);
}

/* x rows into the even/odd split gemv_row_bf16 reads (zero padded). */
static void split_x(const frt_gemm_args *a, float *xs, int64_t kp)
{
    const __m512i ev = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    for (int64_t i = 0; i < a->M; i++) {
        const float *x = a->x + i * a->ldx;
        for (int64_t k = 0; k < kp; k += 32) {
            __m512 lo = _mm512_maskz_loadu_ps(mask_upto(a->K - k), x + k);
            __m512 hi = _mm512_maskz_loadu_ps(mask_upto(a->K - k - 16), x + k + 16);
            _mm512_storeu_ps(xs + i * kp + k, _mm512_permutex2var_ps(lo, ev, hi));
            _mm512_storeu_ps(xs + i * kp + k + 16, _mm512_permutex2var_ps(lo, od, hi));
        }
    }
}

size_t frt_gemm_gemv_scratch_avx512(const frt_gemm_args *a)
{
    return a->wtype == FRT_BF16 ? (size_t)(a->M * ((a->K + 31) / 32 * 32)) * sizeof(float) : 0;
}

void frt_gemm_gemv_avx512(const frt_gemm_args *a, int64_t n0, int64_t n1, float *xs)
{
    int64_t kp = (a->K + 31) / 32 * 32;
    switch (a->wtype) {
    case FRT_F16: gemv_rows(a, n0, n1, FRT_F16, NULL, 0); break;
    case FRT_BF16:
        split_x(a, xs, kp);
        gemv_rows(a, n0, n1, FRT_BF16, xs, kp);
        break;
    default: gemv_rows(a, n0, n1, FRT_F32, NULL, 0); break;
    }
}
