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
} frt_ops_isa;

extern const frt_ops_isa frt_ops_scalar, frt_ops_avx2, frt_ops_avx512;

#endif
