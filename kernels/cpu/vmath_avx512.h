/* Internal: 16-lane AVX-512 primitives for the width-generic kernels
 * (ops_vmath.h, ops_simd.h). Include only from sources compiled with
 * -mavx512f/dq (files named *_avx512.c). */
#ifndef FRT_VMATH_AVX512_H
#define FRT_VMATH_AVX512_H

#include <immintrin.h>
#include <stdint.h>

typedef __m512 vf;
typedef __mmask16 vm;
#define VL 16

static inline __mmask16 v_first_n(int64_t n)
{
    return (__mmask16)((1u << n) - 1u);
}

static inline vf v_load(const float *p)
{
    return _mm512_loadu_ps(p);
}
static inline void v_store(float *p, vf v)
{
    _mm512_storeu_ps(p, v);
}
/* The first n (< VL) lanes from p, the rest from fill; nothing past p + n is read. */
static inline vf v_loadn(const float *p, int64_t n, vf fill)
{
    return _mm512_mask_loadu_ps(fill, v_first_n(n), p);
}
static inline void v_storen(float *p, vf v, int64_t n)
{
    _mm512_mask_storeu_ps(p, v_first_n(n), v);
}
static inline vf v_set1(float a)
{
    return _mm512_set1_ps(a);
}
static inline vf v_add(vf a, vf b)
{
    return _mm512_add_ps(a, b);
}
static inline vf v_sub(vf a, vf b)
{
    return _mm512_sub_ps(a, b);
}
static inline vf v_mul(vf a, vf b)
{
    return _mm512_mul_ps(a, b);
}
static inline vf v_div(vf a, vf b)
{
    return _mm512_div_ps(a, b);
}
static inline vf v_min(vf a, vf b)
{
    return _mm512_min_ps(a, b);
}
static inline vf v_max(vf a, vf b)
{
    return _mm512_max_ps(a, b);
}
static inline vf v_fma(vf a, vf b, vf c)
{
    return _mm512_fmadd_ps(a, b, c);
}
static inline vf v_fms(vf a, vf b, vf c)
{
    return _mm512_fmsub_ps(a, b, c);
}
static inline vf v_fnma(vf a, vf b, vf c)
{
    return _mm512_fnmadd_ps(a, b, c);
}
static inline vf v_abs(vf a)
{
    return _mm512_abs_ps(a);
}
static inline vf v_xor(vf a, vf b)
{
    return _mm512_xor_ps(a, b);
}
static inline vf v_and(vf a, vf b)
{
    return _mm512_and_ps(a, b);
}
static inline vf v_round(vf a)
{
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* 2^n for integral n in [-126, 127]. */
static inline vf v_pow2i(vf n)
{
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
static inline vm v_lt(vf a, vf b)
{
    return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ);
}
static inline vm v_gt(vf a, vf b)
{
    return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ);
}
/* m ? a : b, lane by lane */
static inline vf v_sel(vm m, vf a, vf b)
{
    return _mm512_mask_blend_ps(m, b, a);
}
static inline float v_hsum(vf a)
{
    return _mm512_reduce_add_ps(a);
}
static inline float v_hmax(vf a)
{
    return _mm512_reduce_max_ps(a);
}

#include "ops_vmath.h"

#endif
