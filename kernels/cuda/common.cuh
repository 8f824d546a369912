/* Internal: helpers shared by the CUDA kernels. */
#ifndef FRT_KERNELS_CUDA_COMMON_CUH
#define FRT_KERNELS_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "cuda_kernels.h"

/* Operands carry their dtype at run time: one kernel serves every mix of
 * f32/f16/bf16, and the branch is uniform across the grid, so it costs
 * little next to the memory traffic of these bandwidth-bound ops. */
static __device__ __forceinline__ float frt_ld(const void *p, int dt, int64_t i)
{
    switch (dt) {
    case FRT_F16: return __half2float(static_cast<const __half *>(p)[i]);
    case FRT_BF16: return __bfloat162float(static_cast<const __nv_bfloat16 *>(p)[i]);
    default: return static_cast<const float *>(p)[i];
    }
}

static __device__ __forceinline__ void frt_st(void *p, int dt, int64_t i, float v)
{
    switch (dt) {
    case FRT_F16: static_cast<__half *>(p)[i] = __float2half_rn(v); break;
    case FRT_BF16: static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float *>(p)[i] = v; break;
    }
}

/* Typed conversions for the templated attention kernels. */
template <typename T> __device__ __forceinline__ T frt_from_f32(float v);
template <> __device__ __forceinline__ __half frt_from_f32<__half>(float v)
{
    return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 frt_from_f32<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}
static __device__ __forceinline__ float frt_to_f32(__half v)
{
    return __half2float(v);
}
static __device__ __forceinline__ float frt_to_f32(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}

static __device__ __forceinline__ float frt_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float frt_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Grid size for a grid-stride loop over n elements. */
static inline unsigned frt_grid_for(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    if (b > 65535 * 8) b = 65535 * 8;
    return b < 1 ? 1u : (unsigned)b;
}

#endif
