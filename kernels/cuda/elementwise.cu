/* CUDA element-wise ops: add, mul, scale, copy/convert, activations, RoPE.
 * Grid-stride loops, one element per thread per step; every operand is
 * read and written through its run-time dtype (common.cuh). */
#include <math.h>

#include "common.cuh"

enum { EW_ADD, EW_MUL };

static __global__ void binary_kernel(void *y, int ydt, const void *a, int adt, const void *b,
                                     int bdt, int64_t n, int64_t bn, int op)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float x = frt_ld(a, adt, i), z = frt_ld(b, bdt, bn == n ? i : i % bn);
        frt_st(y, ydt, i, op == EW_ADD ? x + z : x * z);
    }
}

static __global__ void scale_kernel(void *y, int ydt, const void *x, int xdt, float s, int64_t n)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        frt_st(y, ydt, i, frt_ld(x, xdt, i) * s);
}

static __global__ void copy_kernel(void *y, int ydt, const void *x, int xdt, int64_t n, int64_t bn)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        frt_st(y, ydt, i, frt_ld(x, xdt, bn == n ? i : i % bn));
}

/* Written as in the CPU twin to avoid cancellation in the negative tail:
 * 1 + erf(-z) = erfc(z), 1 + tanh(u) = 2 sigmoid(2u). An exp that
 * overflows to inf divides x down to -0, the correct limit. */
static __device__ __forceinline__ float act_one(float x, int kind)
{
    switch (kind) {
    case FRT_ACT_GELU_ERF: return 0.5f * x * erfcf(-x * 0.70710678118654752f);
    case FRT_ACT_GELU_TANH: {
        float u = 0.79788456080286536f * (x + 0.044715f * x * x * x);
        return x / (1.0f + expf(-2.0f * u));
    }
    case FRT_ACT_QUICK_GELU: return x / (1.0f + expf(-1.702f * x));
    case FRT_ACT_SILU: return x / (1.0f + expf(-x));
    case FRT_ACT_MISH: {
        /* softplus(x) = x to f32 precision past 20, where expf would overflow */
        float sp = x > 20.0f ? x : log1pf(expf(x));
        return x * tanhf(sp);
    }
    default: return x > 0.0f ? x : 0.0f;
    }
}

static __global__ void act_kernel(void *y, int ydt, const void *x, int xdt, int64_t n, int kind)
{
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        frt_st(y, ydt, i, act_one(frt_ld(x, xdt, i), kind));
}

/* One thread per rotated pair. The angle is formed in double: positions
 * reach 1e5 and more, where an f32 angle is off by ~1e-2 rad. */
static __global__ void rope_kernel(void *x, int xdt, int64_t T, int64_t H, int64_t d, int64_t st,
                                   int64_t sh, int64_t pos0, double log_theta, double inv_scale)
{
    int64_t half = d / 2, n = T * H * half;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t p = i % half, th = i / half, hh = th % H, t = th / H;
        double inv_freq = exp(-(double)(2 * p) / (double)d * log_theta);
        double ang = (double)(pos0 + t) * inv_scale * inv_freq;
        double sn, cs;
        sincos(ang, &sn, &cs);
        int64_t base = t * st + hh * sh + p;
        float x0 = frt_ld(x, xdt, base), x1 = frt_ld(x, xdt, base + half);
        frt_st(x, xdt, base, (float)(x0 * cs - x1 * sn));
        frt_st(x, xdt, base + half, (float)(x1 * cs + x0 * sn));
    }
}

enum { EW_THREADS = 256 };

extern "C" cudaError_t frt_cuda_add(void *y, int ydt, const void *a, int adt, const void *b,
                                    int bdt, int64_t n, int64_t bn, cudaStream_t stream)
{
    binary_kernel<<<frt_grid_for(n, EW_THREADS), EW_THREADS, 0, stream>>>(y, ydt, a, adt, b, bdt, n,
                                                                          bn, EW_ADD);
    return cudaGetLastError();
}

extern "C" cudaError_t frt_cuda_mul(void *y, int ydt, const void *a, int adt, const void *b,
                                    int bdt, int64_t n, int64_t bn, cudaStream_t stream)
{
    binary_kernel<<<frt_grid_for(n, EW_THREADS), EW_THREADS, 0, stream>>>(y, ydt, a, adt, b, bdt, n,
                                                                          bn, EW_MUL);
    return cudaGetLastError();
}

extern "C" cudaError_t frt_cuda_scale(void *y, int ydt, const void *x, int xdt, float s, int64_t n,
                                      cudaStream_t stream)
{
    scale_kernel<<<frt_grid_for(n, EW_THREADS), EW_THREADS, 0, stream>>>(y, ydt, x, xdt, s, n);
    return cudaGetLastError();
}

extern "C" cudaError_t frt_cuda_copy(void *y, int ydt, const void *x, int xdt, int64_t n,
                                     int64_t bn, cudaStream_t stream)
{
    copy_kernel<<<frt_grid_for(n, EW_THREADS), EW_THREADS, 0, stream>>>(y, ydt, x, xdt, n, bn);
    return cudaGetLastError();
}

extern "C" cudaError_t frt_cuda_act(void *y, int ydt, const void *x, int xdt, int64_t n,
                                    frt_act kind, cudaStream_t stream)
{
    act_kernel<<<frt_grid_for(n, EW_THREADS), EW_THREADS, 0, stream>>>(y, ydt, x, xdt, n,
                                                                       (int)kind);
    return cudaGetLastError();
}

extern "C" cudaError_t frt_cuda_rope(void *x, int xdt, int64_t T, int64_t H, int64_t d, int64_t st,
                                     int64_t sh, int64_t pos0, float theta, float linear_scale,
                                     cudaStream_t stream)
{
    int64_t n = T * H * (d / 2);
    rope_kernel<<<frt_grid_for(n, EW_THREADS), EW_THREADS, 0, stream>>>(
        x, xdt, T, H, d, st, sh, pos0, log((double)theta), 1.0 / (double)linear_scale);
    return cudaGetLastError();
}
