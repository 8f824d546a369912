/* Internal to kernels/cpu/ops*.c: the per-ISA kernel tables that ops.c
 * dispatches to (frt_cpu() picks one per call), and the conv1d job. */
#ifndef FRT_OPS_IMPL_H
#define FRT_OPS_IMPL_H

#include <stdint.h>

#include "backend.h"

/* One PyTorch Conv1d call (batch 1), shapes as in ops.h. */
typedef struct frt_conv1d_job {
    float *y;
    const float *x, *w, *b;
    int64_t cin, tin, cout, tout, k;
    int64_t cin_g, cout_g; /* channels per group */
    int64_t stride, pad, dil;
} frt_conv1d_job;

/* Winograd F(m, k), (m, k) = (4, 3), (6, 3), (4, 5) or (2, 7) (stride 1, one
 * group): outputs in tiles of m steps spaced dil apart (the steps of one
 * phase t mod dil), each tile reading n = m + k - 1 inputs spaced dil
 * apart. Per transform point xi (n of them), Y_xi [cout, tiles] =
 * U_xi [cout, cin] V_xi [cin, tiles] with U = G w (per channel pair) and
 * V = B^T x (per input tile); y = A^T Y. */
enum { FRT_WINO_CO = 6, FRT_WINO_TV = 4 };
typedef struct frt_wino_job {
    float *y;
    const float *x, *w, *b;
    int64_t cin, tin, cout, tout, k, pad, dil;
    int64_t m;    /* outputs per tile */
    int64_t npad; /* tiles rounded up to 16 */
    /* per tile (npad entries): first input step (may be negative), first
     * output step, outputs in it (0 for the padding tiles) */
    const int32_t *tin0, *tout0, *count;
    float *v; /* [n][cin][npad] transformed inputs */
} frt_wino_job;
/* Floats of per-thread scratch that wino_blocks needs for n points. */
static inline int64_t frt_wino_scratch(int64_t n, int64_t cin)
{
    return n * FRT_WINO_CO * (cin + 16 * FRT_WINO_TV);
}
/* Floats of per-thread scratch that wino_chunks needs for n points. */
static inline int64_t frt_wino_chunk_scratch(int64_t n, int64_t cin)
{
    return n * (cin + FRT_WINO_CO) * 16 * FRT_WINO_TV;
}

/* Single-threaded kernels on one contiguous range or row. */
typedef struct frt_ops_isa {
    void (*add)(float *y, const float *a, const float *b, int64_t n);
    void (*mul)(float *y, const float *a, const float *b, int64_t n);
    void (*scale)(float *y, const float *x, float s, int64_t n);
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int64_t cols,
                      float eps);
    void (*rmsnorm)(float *y, const float *x, const float *w, int64_t cols, float eps);
    void (*act)(float *y, const float *x, int64_t n, frt_act kind);
    void (*gate)(float *y, const float *a, const float *b, int64_t n);
    void (*softmax)(float *y, const float *x, int64_t cols);
    /* (x1[i], x2[i]) <- (x1 c - x2 s, x2 c + x1 s) for i < n */
    void (*rope)(float *x1, float *x2, const float *c, const float *s, int64_t n);
    /* y[co0:co1, t0:t1] of the job */
    void (*conv1d)(const frt_conv1d_job *j, int64_t co0, int64_t co1, int64_t t0, int64_t t1);
    /* Winograd (NULL where the ISA has none): the input transform of
     * channels [ci0, ci1), then output blocks [b0, b1) of FRT_WINO_CO
     * channels with frt_wino_scratch() floats of scratch */
    void (*wino_in)(const frt_wino_job *j, int64_t ci0, int64_t ci1);
    void (*wino_blocks)(const frt_wino_job *j, int64_t b0, int64_t b1, float *scratch);
    /* the same over long inputs, whose V would not stay in cache: U of
     * output blocks [b0, b1) into u_all (n FRT_WINO_CO cin floats a block),
     * then chunks [c0, c1) of 16 FRT_WINO_TV tiles, each transformed into
     * frt_wino_chunk_scratch() floats and applied to every output block */
    void (*wino_u)(const frt_wino_job *j, int64_t b0, int64_t b1, float *u_all);
    void (*wino_chunks)(const frt_wino_job *j, int64_t c0, int64_t c1, const float *u_all,
                        float *scratch);
} frt_ops_isa;

extern const frt_ops_isa frt_ops_scalar, frt_ops_avx2, frt_ops_avx512;

#endif
