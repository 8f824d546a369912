/* Internal: the CUDA kernels' launchers, callable from C (backend_cuda.c).
 *
 * Every launcher enqueues its work on `stream` and returns the launch status
 * (cudaGetLastError after the launch); errors inside a kernel surface at the
 * next synchronisation. Pointers are device pointers. Dtypes are frt_dtype
 * values: element-wise and row ops accept f32, f16 and bf16 for each operand
 * independently and compute in f32. Sizes are validated by the caller. */
#ifndef FRT_KERNELS_CUDA_KERNELS_H
#define FRT_KERNELS_CUDA_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y[i] = a[i] (+|*) b[i % bn] */
cudaError_t frt_cuda_add(void *y, int ydt, const void *a, int adt, const void *b, int bdt,
                         int64_t n, int64_t bn, cudaStream_t stream);
cudaError_t frt_cuda_mul(void *y, int ydt, const void *a, int adt, const void *b, int bdt,
                         int64_t n, int64_t bn, cudaStream_t stream);
cudaError_t frt_cuda_scale(void *y, int ydt, const void *x, int xdt, float s, int64_t n,
                           cudaStream_t stream);
/* y[i] = x[i % bn]: dtype conversion (bn == n) or a row broadcast (bias). */
cudaError_t frt_cuda_copy(void *y, int ydt, const void *x, int xdt, int64_t n, int64_t bn,
                          cudaStream_t stream);
cudaError_t frt_cuda_act(void *y, int ydt, const void *x, int xdt, int64_t n, frt_act kind,
                         cudaStream_t stream);

/* Row ops over [rows, cols]; w (and b) of [cols], b may be NULL. */
cudaError_t frt_cuda_rmsnorm(void *y, int ydt, const void *x, int xdt, const void *w, int wdt,
                             int64_t rows, int64_t cols, float eps, cudaStream_t stream);
cudaError_t frt_cuda_layernorm(void *y, int ydt, const void *x, int xdt, const void *w, int wdt,
                               const void *b, int bdt, int64_t rows, int64_t cols, float eps,
                               cudaStream_t stream);
cudaError_t frt_cuda_softmax(void *y, int ydt, const void *x, int xdt, int64_t rows, int64_t cols,
                             cudaStream_t stream);
/* In place on x [T, H, d] (token stride st, head stride sh, elements), rotate-half. */
cudaError_t frt_cuda_rope(void *x, int xdt, int64_t T, int64_t H, int64_t d, int64_t st, int64_t sh,
                          int64_t pos0, float theta, float linear_scale, cudaStream_t stream);

/* Attention (ALGORITHMS.md section 3). q [nq, h, d] in f32/f16/bf16; k, v
 * [nk, h_kv, d] both in kv_dt (f16 or bf16); o [nq, h, d] in f32/f16/bf16;
 * d is 64 or 128. Strides in elements; the last dim is contiguous. mask is
 * a device pointer (additive f32 [nq, nk], row stride mask_stride) or NULL. */
typedef struct frt_cuda_attn_args {
    int64_t nq, nk, h, h_kv, d;
    const void *q;
    int q_dt;
    int64_t q_st, q_sh;
    const void *k;
    int64_t k_st, k_sh;
    const void *v;
    int64_t v_st, v_sh;
    int kv_dt;
    void *o;
    int o_dt;
    int64_t o_st, o_sh;
    float scale;
    bool causal;
    int64_t q_pos0;
    int64_t kv_len; /* > 0: keys j >= kv_len are padding */
    const float *mask;
    int64_t mask_stride;
} frt_cuda_attn_args;

/* Raise the kernels' dynamic shared memory limit; once per device before
 * the first frt_cuda_flash_attn. */
cudaError_t frt_cuda_attn_setup(void);
/* FlashAttention-2 forward on tensor cores (WMMA), 64-query tiles. */
cudaError_t frt_cuda_flash_attn(const frt_cuda_attn_args *a, cudaStream_t stream);
/* Split-KV decode (Flash-Decoding): nsplit chunks per (query row, head),
 * then a combine kernel. ws holds frt_cuda_decode_ws_floats() floats. */
int frt_cuda_decode_splits(const frt_cuda_attn_args *a, int num_sms);
size_t frt_cuda_decode_ws_floats(const frt_cuda_attn_args *a, int nsplit);
cudaError_t frt_cuda_decode_attn(const frt_cuda_attn_args *a, int nsplit, float *ws,
                                 cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
