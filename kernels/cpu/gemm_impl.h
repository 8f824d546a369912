/* Internal to the CPU GEMM: the per-ISA pieces (kernels/cpu/gemm_*.c) that
 * the blocked driver in gemm.c strings together.
 *
 * Packed layouts. A w panel holds NR consecutive output features over a
 * block of kc inputs as [kc / kpair][NR] 32-bit units: an f32 (f32 weights,
 * or f16/bf16 widened while packing), or, with kpair == 2, a pair of bf16
 * for two consecutive k (the vdpbf16ps operand). An x panel holds MR rows as
 * [kc / kpair][MR] units of the same kind (x rounded to bf16 pairs when
 * kpair == 2). Rows past the edge of a matrix and the odd k of a bf16 pair
 * past the end are packed as zeros, so micro-kernels never test bounds
 * inside their loop. */
#ifndef FRT_GEMM_IMPL_H
#define FRT_GEMM_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gemm.h"

/* Pack rows [n0, n0+nn) x cols [k0, k0+kc) of w into ceil(nn/NR) panels,
 * one after another (panel stride: units(kc) * NR). */
typedef void (*frt_gemm_pack_w_fn)(const void *w, frt_dtype wtype, int64_t ldw, int64_t n0,
                                   int64_t nn, int64_t k0, int64_t kc, void *dst);
/* Pack rows [0, mm) x cols [k0, k0+kc) of x into ceil(mm/MR) panels. */
typedef void (*frt_gemm_pack_x_fn)(const float *x, int64_t ldx, int64_t mm, int64_t k0, int64_t kc,
                                   void *dst);
/* y[mr, nr] (= or +=) xpanel * wpanel^T over kc (in k, not units), then
 * + y when load_y, + bias[0, nr) when bias. mr <= MR, nr <= NR. */
typedef void (*frt_gemm_ukr_fn)(int64_t kc, const void *xp, const void *wp, float *y, int64_t ldy,
                                int mr, int nr, const float *bias, bool load_y);
/* Small-M path: rows [n0, n1) of y for all a->M rows, streaming each weight
 * row once (bias and accumulate applied). xs: the calling thread's scratch
 * of the size the matching *_scratch function asks for. */
typedef void (*frt_gemm_gemv_fn)(const frt_gemm_args *a, int64_t n0, int64_t n1, float *xs);

typedef struct frt_gemm_kernel {
    const char *name;
    int mr, nr, kpair;
    frt_gemm_pack_w_fn pack_w;
    frt_gemm_pack_x_fn pack_x;
    frt_gemm_ukr_fn ukr;
} frt_gemm_kernel;

/* Kernel sets by ISA; which weight dtypes each handles is the ISA file's
 * business (bf16 uses the pair kernel only where the CPU has AVX512_BF16). */
const frt_gemm_kernel *frt_gemm_kernel_avx512(frt_dtype wtype, bool bf16_dot);
const frt_gemm_kernel *frt_gemm_kernel_avx2(frt_dtype wtype);
void frt_gemm_gemv_avx512(const frt_gemm_args *a, int64_t n0, int64_t n1, float *xs);
size_t frt_gemm_gemv_scratch_avx512(const frt_gemm_args *a);
void frt_gemm_gemv_avx2(const frt_gemm_args *a, int64_t n0, int64_t n1, float *xs);

#endif
