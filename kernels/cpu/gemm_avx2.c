/* AVX2+FMA pieces of the CPU GEMM: an 8x8 transposing w packer (f16 and
 * bf16 widened to f32 while packing), a 6x16 FMA micro-kernel, and the
 * small-M weight-streaming path. Compiled with -mavx2 -mfma -mf16c; called
 * only when the CPU has them. */
#include <immintrin.h>
#include <string.h>

#include "gemm_impl.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define MR            6
#define NR            16

static ALWAYS_INLINE float w_scalar(const void *row, frt_dtype wtype, int64_t k)
{
    if (wtype == FRT_F32) return ((const float *)row)[k];
    uint16_t h = ((const uint16_t *)row)[k];
    if (wtype == FRT_F16) return _cvtsh_ss(h);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* 8 consecutive weights of one row as f32, zero past `left`. */
static ALWAYS_INLINE __m256 load_w8(const void *row, frt_dtype wtype, int64_t k, int64_t left)
{
    if (left >= 8) {
        if (wtype == FRT_F32) return _mm256_loadu_ps((const float *)row + k);
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
        if (wtype == FRT_F16) return _mm256_cvtph_ps(h);
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    float t[8] = {0};
    for (int64_t i = 0; i < left; i++) t[i] = w_scalar(row, wtype, k + i);
    return _mm256_loadu_ps(t);
}

static ALWAYS_INLINE void transpose8(__m256 r[8])
{
    __m256 t[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x20);
        t[i + 4] = _mm256_permute2f128_ps(r[i], r[i + 4], 0x31);
    }
    for (int i = 0; i < 8; i++) r[i] = t[i];
}

static ALWAYS_INLINE void pack_w_body(const void *w, frt_dtype wtype, int64_t ldw, int64_t n0,
                                      int64_t nn, int64_t k0, int64_t kc, float *out)
{
    size_t esz = wtype == FRT_F32 ? 4 : 2;
    for (int64_t p = 0; p < nn; p += NR, out += kc * NR)
        for (int g = 0; g < NR; g += 8) {
            const char *rows[8];
            int nrow = 0;
            for (int r = 0; r < 8; r++) {
                int64_t n = p + g + r;
                rows[r] = n < nn ? (const char *)w + ((n0 + n) * ldw + k0) * esz : NULL;
                nrow += n < nn;
            }
            for (int64_t k = 0; k < kc; k += 8) {
                __m256 v[8];
                for (int r = 0; r < 8; r++)
                    v[r] = r < nrow ? load_w8(rows[r], wtype, k, kc - k) : _mm256_setzero_ps();
                transpose8(v);
                int64_t nk = kc - k < 8 ? kc - k : 8;
                for (int64_t t = 0; t < nk; t++) _mm256_storeu_ps(out + (k + t) * NR + g, v[t]);
            }
        }
}

static void pack_w(const void *w, frt_dtype wtype, int64_t ldw, int64_t n0, int64_t nn, int64_t k0,
                   int64_t kc, void *dst)
{
    switch (wtype) {
    case FRT_F16: pack_w_body(w, FRT_F16, ldw, n0, nn, k0, kc, dst); break;
    case FRT_BF16: pack_w_body(w, FRT_BF16, ldw, n0, nn, k0, kc, dst); break;
    default: pack_w_body(w, FRT_F32, ldw, n0, nn, k0, kc, dst); break;
    }
}

static void pack_x(const float *x, int64_t ldx, int64_t mm, int64_t k0, int64_t kc, void *dst)
{
    float *out = dst;
    for (int64_t p = 0; p < mm; p += MR, out += kc * MR)
        for (int i = 0; i < MR; i++) {
            float *o = out + i;
            if (p + i < mm) {
                const float *src = x + (p + i) * ldx + k0;
                for (int64_t k = 0; k < kc; k++) o[k * MR] = src[k];
            } else {
                for (int64_t k = 0; k < kc; k++) o[k * MR] = 0.0f;
            }
        }
}

static void ukr(int64_t kc, const void *xpv, const void *wpv, float *y, int64_t ldy, int mr, int nr,
                const float *bias, bool load_y)
{
    const float *xp = xpv, *wp = wpv;
    __m256 acc[MR][2];
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++, xp += MR, wp += NR) {
        __m256 w0 = _mm256_load_ps(wp), w1 = _mm256_load_ps(wp + 8);
        for (int i = 0; i < MR; i++) {
            __m256 xb = _mm256_broadcast_ss(xp + i);
            acc[i][0] = _mm256_fmadd_ps(xb, w0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(xb, w1, acc[i][1]);
        }
    }
    /* one spill after the loop: indexing acc by a variable row anywhere
     * below would make GCC keep it in memory inside the loop too */
    float t[MR][NR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(t[i], acc[i][0]);
        _mm256_storeu_ps(t[i] + 8, acc[i][1]);
    }
    if (nr == NR) {
        __m256 b0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
        __m256 b1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
        for (int i = 0; i < mr; i++) {
            float *yr = y + i * ldy;
            __m256 v0 = _mm256_add_ps(_mm256_loadu_ps(t[i]), b0);
            __m256 v1 = _mm256_add_ps(_mm256_loadu_ps(t[i] + 8), b1);
            if (load_y) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(yr));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(yr + 8));
            }
            _mm256_storeu_ps(yr, v0);
            _mm256_storeu_ps(yr + 8, v1);
        }
        return;
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float v = t[i][j] + (bias ? bias[j] : 0.0f);
            y[i * ldy + j] = load_y ? y[i * ldy + j] + v : v;
        }
}

static const frt_gemm_kernel k_f32 = {"avx2 f32 6x16", MR, NR, 1, pack_w, pack_x, ukr};

const frt_gemm_kernel *frt_gemm_kernel_avx2(frt_dtype wtype)
{
    (void)wtype;
    return &k_f32;
}

/* ---- small M: stream each weight row once --------------------------------- */

static ALWAYS_INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* R (<= 4) weight rows against MB (<= 4) x rows. */
static ALWAYS_INLINE void gemv_block(const frt_gemm_args *a, int64_t m0, int64_t n, int R, int MB,
                                     frt_dtype wtype)
{
    size_t esz = wtype == FRT_F32 ? 4 : 2;
    const char *wr[4];
    for (int r = 0; r < R; r++) wr[r] = (const char *)a->w + (n + r) * a->ldw * esz;
    const float *xr[4];
    for (int i = 0; i < MB; i++) xr[i] = a->x + (m0 + i) * a->ldx;
    __m256 acc[16];
    for (int i = 0; i < R * MB; i++) acc[i] = _mm256_setzero_ps();
    int64_t K = a->K, k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv[4];
        for (int r = 0; r < R; r++) wv[r] = load_w8(wr[r], wtype, k, 8);
        for (int i = 0; i < MB; i++) {
            __m256 xv = _mm256_loadu_ps(xr[i] + k);
            for (int r = 0; r < R; r++) acc[i * R + r] = _mm256_fmadd_ps(xv, wv[r], acc[i * R + r]);
        }
    }
    for (int i = 0; i < MB; i++) {
        float *y = a->y + (m0 + i) * a->ldy + n;
        for (int r = 0; r < R; r++) {
            float s = hsum8(acc[i * R + r]);
            for (int64_t kk = k; kk < K; kk++) s += xr[i][kk] * w_scalar(wr[r], wtype, kk);
            if (a->bias) s += a->bias[n + r];
            y[r] = a->accumulate ? y[r] + s : s;
        }
    }
}

/* Four weight rows against two x rows at a time: 8 accumulators, 4 weight
 * vectors and an x vector fit the 16 ymm registers (4 x rows spilled). */
static ALWAYS_INLINE void gemv_rows(const frt_gemm_args *a, int64_t n0, int64_t n1, frt_dtype wtype)
{
    int64_t n = n0;
    for (; n + 4 <= n1; n += 4) {
        int64_t m0 = 0;
        for (; m0 + 2 <= a->M; m0 += 2) gemv_block(a, m0, n, 4, 2, wtype);
        if (m0 < a->M) gemv_block(a, m0, n, 4, 1, wtype);
    }
    for (; n < n1; n++)
        for (int64_t m0 = 0; m0 < a->M; m0++) gemv_block(a, m0, n, 1, 1, wtype);
}

void frt_gemm_gemv_avx2(const frt_gemm_args *a, int64_t n0, int64_t n1, float *xs)
{
    (void)xs;
    switch (a->wtype) {
    case FRT_F16: gemv_rows(a, n0, n1, FRT_F16); break;
    case FRT_BF16: gemv_rows(a, n0, n1, FRT_BF16); break;
    default: gemv_rows(a, n0, n1, FRT_F32); break;
    }
}
