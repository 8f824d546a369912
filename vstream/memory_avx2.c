/* AVX2 kernels of the STAR memory (memory_simd.h). */
#include <immintrin.h>

#include "memory_simd.h"

static inline __m256d load4(const float *p)
{
    return _mm256_cvtps_pd(_mm_loadu_ps(p));
}

static inline double hsum(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

void frt_star_sqdist_multi_avx2(const float *x, const float *const *c, int nc, long n, double *out)
{
    __m256d s[4][2];
    for (int j = 0; j < 4; j++) s[j][0] = s[j][1] = _mm256_setzero_pd();
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d x0 = load4(x + i), x1 = load4(x + i + 4);
        for (int j = 0; j < nc; j++) {
            __m256d d0 = _mm256_sub_pd(x0, load4(c[j] + i));
            __m256d d1 = _mm256_sub_pd(x1, load4(c[j] + i + 4));
            s[j][0] = _mm256_fmadd_pd(d0, d0, s[j][0]);
            s[j][1] = _mm256_fmadd_pd(d1, d1, s[j][1]);
        }
    }
    for (int j = 0; j < nc; j++) {
        double t = hsum(_mm256_add_pd(s[j][0], s[j][1]));
        for (long r = i; r < n; r++) {
            double d = (double)x[r] - c[j][r];
            t += d * d;
        }
        out[j] = t;
    }
}

double frt_star_sqdist_avx2(const float *a, const float *b, long n)
{
    double d;
    frt_star_sqdist_multi_avx2(a, &b, 1, n, &d);
    return d;
}

void frt_star_wmean_avx2(const float *const *x, const double *w, int cnt, double ws, long n,
                         float *dst)
{
    const __m256d vws = _mm256_set1_pd(ws);
    long i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d acc = _mm256_setzero_pd();
        for (int k = 0; k < cnt; k++)
            acc = _mm256_add_pd(acc, _mm256_mul_pd(_mm256_set1_pd(w[k]), load4(x[k] + i)));
        _mm_storeu_ps(dst + i, _mm256_cvtpd_ps(_mm256_div_pd(acc, vws)));
    }
    for (; i < n; i++) {
        double acc = 0;
        for (int k = 0; k < cnt; k++) acc += w[k] * x[k][i];
        dst[i] = (float)(acc / ws);
    }
}
