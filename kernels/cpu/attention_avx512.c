/* AVX-512 instantiation of the attention block kernels (attention_impl.h). */
#include <immintrin.h>

#include "attention_impl.h"

/* exp2 by range reduction x = n + f, |f| <= 1/2, a degree-7 Taylor
 * polynomial of 2^f (truncation error < 4e-9 relative, so the result is
 * within about 1 ulp) and scalef for 2^n, which flushes x <= -150 to 0. */
static inline __m512 exp2_avx512(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-150.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(128.0f));
    __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_set1_ps(1.525273380405984e-05f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381606e-04f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Lane x of the result is the sum of the lanes of acc[x]: a transpose-and-add
 * tree, 45 instructions for 16 horizontal sums. */
static inline __m512 sum_lanes_avx512(const __m512 *acc)
{
    __m512 x[8], y[4], z[2];
    for (int i = 0; i < 8; i++)
        x[i] = _mm512_add_ps(_mm512_unpacklo_ps(acc[2 * i], acc[2 * i + 1]),
                             _mm512_unpackhi_ps(acc[2 * i], acc[2 * i + 1]));
    /* each 128-bit lane of y[i]: partial sums of keys 4i..4i+3 */
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(x[2 * i]), b = _mm512_castps_pd(x[2 * i + 1]);
        y[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    for (int i = 0; i < 2; i++)
        z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], 0x88),
                         _mm512_shuffle_f32x4(z[0], z[1], 0xdd));
}

#define V              __m512
#define VW             16
#define V_LOAD(p)      _mm512_loadu_ps(p)
#define V_STORE(p, x)  _mm512_storeu_ps((p), (x))
#define V_SET1(f)      _mm512_set1_ps(f)
#define V_ZERO()       _mm512_setzero_ps()
#define V_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define V_ADD(a, b)    _mm512_add_ps((a), (b))
#define V_SUB(a, b)    _mm512_sub_ps((a), (b))
#define V_MUL(a, b)    _mm512_mul_ps((a), (b))
#define V_MAX(a, b)    _mm512_max_ps((a), (b))
#define V_EXP2(x)      exp2_avx512(x)
#define V_IOTA()       _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define V_MASK_LT(a, b, x)                                                                         \
    _mm512_mask_blend_ps(_mm512_cmp_ps_mask((a), (b), _CMP_LT_OQ), (x), _mm512_set1_ps(-INFINITY))
#define V_HSUM(x)    _mm512_reduce_add_ps(x)
#define V_HMAX(x)    _mm512_reduce_max_ps(x)
#define V_CVT_F16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define V_CVT_BF16(p)                                                                              \
    _mm512_castsi512_ps(                                                                           \
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))), 16))
#define ATTN_QK_MR       6
#define ATTN_QK_NV       4
#define ATTN_PV_MR       4
#define ATTN_PV_NV       4
#define ATTN_PV_NV1      8
#define V_SUM_LANES(acc) sum_lanes_avx512(acc)
#define ATTN_FN(name)    attn512_##name
#define FRT_ATTN_TABLE   frt_attn_kernels_avx512
#define FRT_ATTN_BODY
#include "attention_impl.h"
