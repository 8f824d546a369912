/* AVX-512 kernels of the STAR memory (memory_simd.h). */
#include <immintrin.h>

#include "memory_simd.h"

static inline __m512d load8(const float *p)
{
    return _mm512_cvtps_pd(_mm256_loadu_ps(p));
}

static inline __m512d load_tail(const float *p, long left)
{
    __mmask8 k = (__mmask8)((1u << left) - 1);
    return _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, p));
}

void frt_star_sqdist_multi_avx512(const float *x, const float *const *c, int nc, long n,
                                  double *out)
{
    __m512d s[4][2];
    for (int j = 0; j < 4; j++) s[j][0] = s[j][1] = _mm512_setzero_pd();
    const float *c0 = c[0], *c1 = c[nc > 1 ? 1 : 0], *c2 = c[nc > 2 ? 2 : 0],
                *c3 = c[nc > 3 ? 3 : 0];
    long i = 0;
#define STEP(u, xv, off, ld)                                                                       \
    do {                                                                                           \
        __m512d d;                                                                                 \
        d = _mm512_sub_pd(xv, ld(c0 + (off)));                                                     \
        s[0][u] = _mm512_fmadd_pd(d, d, s[0][u]);                                                  \
        if (nc > 1) {                                                                              \
            d = _mm512_sub_pd(xv, ld(c1 + (off)));                                                 \
            s[1][u] = _mm512_fmadd_pd(d, d, s[1][u]);                                              \
        }                                                                                          \
        if (nc > 2) {                                                                              \
            d = _mm512_sub_pd(xv, ld(c2 + (off)));                                                 \
            s[2][u] = _mm512_fmadd_pd(d, d, s[2][u]);                                              \
        }                                                                                          \
        if (nc > 3) {                                                                              \
            d = _mm512_sub_pd(xv, ld(c3 + (off)));                                                 \
            s[3][u] = _mm512_fmadd_pd(d, d, s[3][u]);                                              \
        }                                                                                          \
    } while (0)
    for (; i + 16 <= n; i += 16) {
        __m512d x0 = load8(x + i), x1 = load8(x + i + 8);
        STEP(0, x0, i, load8);
        STEP(1, x1, i + 8, load8);
    }
    for (; i + 8 <= n; i += 8) {
        __m512d x0 = load8(x + i);
        STEP(0, x0, i, load8);
    }
    if (i < n) {
        const long left = n - i;
        __m512d x1 = load_tail(x + i, left);
#define LT(p) load_tail(p, left)
        STEP(1, x1, i, LT);
#undef LT
    }
#undef STEP
    for (int j = 0; j < nc; j++) out[j] = _mm512_reduce_add_pd(_mm512_add_pd(s[j][0], s[j][1]));
}

double frt_star_sqdist_avx512(const float *a, const float *b, long n)
{
    double d;
    frt_star_sqdist_multi_avx512(a, &b, 1, n, &d);
    return d;
}

void frt_star_wmean_avx512(const float *const *x, const double *w, int cnt, double ws, long n,
                           float *dst)
{
    const __m512d vws = _mm512_set1_pd(ws);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d acc = _mm512_setzero_pd();
        for (int k = 0; k < cnt; k++)
            acc = _mm512_add_pd(acc, _mm512_mul_pd(_mm512_set1_pd(w[k]), load8(x[k] + i)));
        _mm256_storeu_ps(dst + i, _mm512_cvtpd_ps(_mm512_div_pd(acc, vws)));
    }
    if (i < n) {
        const long left = n - i;
        __m512d acc = _mm512_setzero_pd();
        for (int k = 0; k < cnt; k++)
            acc =
                _mm512_add_pd(acc, _mm512_mul_pd(_mm512_set1_pd(w[k]), load_tail(x[k] + i, left)));
        _mm256_mask_storeu_ps(dst + i, (__mmask8)((1u << left) - 1),
                              _mm512_cvtpd_ps(_mm512_div_pd(acc, vws)));
    }
}
