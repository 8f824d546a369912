/* CPU GEMM: y[M,N] = x[M,K] w[N,K]^T (+ bias[N]) (+ y when accumulate).
 *
 * The weight layout is PyTorch's Linear [out, in], so a checkpoint's weight
 * is used in place (mmap'ed, never transposed or copied). x and y are f32;
 * w is f32, f16 or bf16, accumulated in f32. Leading dimensions are in
 * elements. Threads come from `pool` (NULL: the calling thread only). */
#ifndef FRT_KERNELS_CPU_GEMM_H
#define FRT_KERNELS_CPU_GEMM_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor.h"
#include "threadpool.h"

typedef struct frt_gemm_args {
    int64_t M, N, K;
    const float *x;
    int64_t ldx;
    const void *w;
    frt_dtype wtype; /* FRT_F32, FRT_F16 or FRT_BF16 */
    int64_t ldw;
    const float *bias; /* [N] or NULL */
    float *y;
    int64_t ldy;
    bool accumulate; /* y += ... instead of y = ... */
} frt_gemm_args;

/* Fast path: packed micro-kernels (AVX-512 / AVX2 / scalar by CPU), a
 * GEMV path for small M. FRT_ERR_INVALID_ARG on bad sizes or dtype. */
frt_status frt_cpu_gemm(const frt_gemm_args *a, frt_pool *pool);

/* Tests: the n-th growth of a per-thread packing buffer from now on fails
 * (0: off). The buffers come from the C allocator, not frt_alloc (see
 * gemm.c), so frt_alloc_fail_after does not reach them. */
void frt_gemm_scratch_fail_after(long n);

/* Naive twin for the tests: triple loop, double accumulation. */
void frt_ref_gemm(const frt_gemm_args *a);

#endif
