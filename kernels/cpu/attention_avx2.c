/* AVX2 + FMA + F16C instantiation of the attention block kernels
 * (attention_impl.h). */
#include <immintrin.h>

#include "attention_impl.h"

/* exp2 as in the AVX-512 file, with 2^n built in the exponent bits: x is
 * clamped to [-127, 127] and n = -127 gives the bit pattern of +0. */
static inline __m256 exp2_avx2(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-127.0f));
    x = _mm256_min_ps(x, _mm256_set1_ps(127.0f));
    __m256 n = _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_sub_ps(x, n);
    __m256 p = _mm256_set1_ps(1.525273380405984e-05f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.5403530393381606e-04f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3333558146428443e-03f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618129107628477e-03f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550410866482158e-02f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402265069591007e-01f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931471805599453e-01f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline float hsum_avx2(__m256 x)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax_avx2(__m256 x)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Lane x of the result is the sum of the lanes of acc[x] (transpose and add). */
static inline __m256 sum_lanes_avx2(const __m256 *acc)
{
    __m256 x[4], y[2];
    for (int i = 0; i < 4; i++)
        x[i] = _mm256_add_ps(_mm256_unpacklo_ps(acc[2 * i], acc[2 * i + 1]),
                             _mm256_unpackhi_ps(acc[2 * i], acc[2 * i + 1]));
    for (int i = 0; i < 2; i++) {
        __m256d a = _mm256_castps_pd(x[2 * i]), b = _mm256_castps_pd(x[2 * i + 1]);
        y[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(a, b)),
                             _mm256_castpd_ps(_mm256_unpackhi_pd(a, b)));
    }
    return _mm256_add_ps(_mm256_permute2f128_ps(y[0], y[1], 0x20),
                         _mm256_permute2f128_ps(y[0], y[1], 0x31));
}

#define V              __m256
#define VW             8
#define V_LOAD(p)      _mm256_loadu_ps(p)
#define V_STORE(p, x)  _mm256_storeu_ps((p), (x))
#define V_SET1(f)      _mm256_set1_ps(f)
#define V_ZERO()       _mm256_setzero_ps()
#define V_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define V_ADD(a, b)    _mm256_add_ps((a), (b))
#define V_SUB(a, b)    _mm256_sub_ps((a), (b))
#define V_MUL(a, b)    _mm256_mul_ps((a), (b))
#define V_MAX(a, b)    _mm256_max_ps((a), (b))
#define V_EXP2(x)      exp2_avx2(x)
#define V_IOTA()       _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7)
#define V_MASK_LT(a, b, x)                                                                         \
    _mm256_blendv_ps((x), _mm256_set1_ps(-INFINITY), _mm256_cmp_ps((a), (b), _CMP_LT_OQ))
#define V_HSUM(x)    hsum_avx2(x)
#define V_HMAX(x)    hmax_avx2(x)
#define V_CVT_F16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define V_CVT_BF16(p)                                                                              \
    _mm256_castsi256_ps(                                                                           \
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))), 16))
#define ATTN_QK_MR       3
#define ATTN_QK_NV       4
#define ATTN_PV_MR       3
#define ATTN_PV_NV       4
#define ATTN_PV_NV1      8
#define V_SUM_LANES(acc) sum_lanes_avx2(acc)
#define ATTN_FN(name)    attn256_##name
#define FRT_ATTN_TABLE   frt_attn_kernels_avx2
#define FRT_ATTN_BODY
#include "attention_impl.h"
