/* CUDA row ops: RMSNorm, LayerNorm, softmax. One block per row; the row is
 * read once per reduction (two passes for LayerNorm's variance, which is
 * more accurate than E[x^2] - E[x]^2) and once more to write. */
#include <math.h>

#include "common.cuh"

enum { ROW_THREADS = 256 };

/* red holds 33 floats; the leading barrier lets callers reduce twice in a row. */
static __device__ float block_sum(float v, float *red)
{
    v = frt_warp_sum(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
        v = frt_warp_sum(v);
        if (threadIdx.x == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}

static __device__ float block_max(float v, float *red)
{
    v = frt_warp_max(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : -INFINITY;
        v = frt_warp_max(v);
        if (threadIdx.x == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}

static __global__ void rmsnorm_kernel(void *y, int ydt, const void *x, int xdt, const void *w,
                                      int wdt, int64_t cols, float eps)
{
    __shared__ float red[33];
    int64_t off = blockIdx.x * cols;
    float ss = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = frt_ld(x, xdt, off + c);
        ss += v * v;
    }
    float r = rsqrtf(block_sum(ss, red) / (float)cols + eps);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        frt_st(y, ydt, off + c, frt_ld(x, xdt, off + c) * r * frt_ld(w, wdt, c));
}

static __global__ void layernorm_kernel(void *y, int ydt, const void *x, int xdt, const void *w,
                                        int wdt, const void *b, int bdt, int64_t cols, float eps)
{
    __shared__ float red[33];
    int64_t off = blockIdx.x * cols;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) s += frt_ld(x, xdt, off + c);
    float mean = block_sum(s, red) / (float)cols;
    float sd = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = frt_ld(x, xdt, off + c) - mean;
        sd += v * v;
    }
    float r = rsqrtf(block_sum(sd, red) / (float)cols + eps);
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = (frt_ld(x, xdt, off + c) - mean) * r * frt_ld(w, wdt, c);
        if (b) v += frt_ld(b, bdt, c);
        frt_st(y, ydt, off + c, v);
    }
}

static __global__ void softmax_kernel(void *y, int ydt, const void *x, int xdt, int64_t cols)
{
    __shared__ float red[33];
    int64_t off = blockIdx.x * cols;
    float m = -INFINITY;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, frt_ld(x, xdt, off + c));
    m = block_max(m, red);
    /* A row of -inf (fully masked) gives zeros instead of NaN. */
    float base = m == -INFINITY ? 0.0f : m;
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        s += expf(frt_ld(x, xdt, off + c) - base);
    s = block_sum(s, red);
    float inv = s > 0.0f ? 1.0f / s : 0.0f;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        frt_st(y, ydt, off + c, expf(frt_ld(x, xdt, off + c) - base) * inv);
}

extern "C" cudaError_t frt_cuda_rmsnorm(void *y, int ydt, const void *x, int xdt, const void *w,
                                        int wdt, int64_t rows, int64_t cols, float eps,
                                        cudaStream_t stream)
{
    rmsnorm_kernel<<<(unsigned)rows, ROW_THREADS, 0, stream>>>(y, ydt, x, xdt, w, wdt, cols, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t frt_cuda_layernorm(void *y, int ydt, const void *x, int xdt, const void *w,
                                          int wdt, const void *b, int bdt, int64_t rows,
                                          int64_t cols, float eps, cudaStream_t stream)
{
    layernorm_kernel<<<(unsigned)rows, ROW_THREADS, 0, stream>>>(y, ydt, x, xdt, w, wdt, b, bdt,
                                                                 cols, eps);
    return cudaGetLastError();
}

extern "C" cudaError_t frt_cuda_softmax(void *y, int ydt, const void *x, int xdt, int64_t rows,
                                        int64_t cols, cudaStream_t stream)
{
    softmax_kernel<<<(unsigned)rows, ROW_THREADS, 0, stream>>>(y, ydt, x, xdt, cols);
    return cudaGetLastError();
}
