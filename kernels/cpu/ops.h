/* CPU element-wise and row ops on contiguous f32 data, with naive twins
 * (frt_ref_*, double precision, plain loops) that the tests compare with.
 *
 * Rows ops see data as [rows, cols]. y may alias x (and a) everywhere.
 * `pool` may be NULL (calling thread only). None of these can fail: the
 * backend validates shapes before calling them. */
#ifndef FRT_KERNELS_CPU_OPS_H
#define FRT_KERNELS_CPU_OPS_H

#include <stdint.h>

#include "backend.h"
#include "threadpool.h"

/* y[i] = a[i] + b[i % bn] (bn == n: plain element-wise; bn == cols: a row
 * vector broadcast over rows). Same for mul. */
void frt_cpu_add(float *y, const float *a, const float *b, int64_t n, int64_t bn, frt_pool *pool);
void frt_cpu_mul(float *y, const float *a, const float *b, int64_t n, int64_t bn, frt_pool *pool);
void frt_cpu_scale(float *y, const float *x, float s, int64_t n, frt_pool *pool);

/* w, b of [cols]; b may be NULL (LayerNorm) */
void frt_cpu_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                       int64_t cols, float eps, frt_pool *pool);
void frt_cpu_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t cols,
                     float eps, frt_pool *pool);
void frt_cpu_act(float *y, const float *x, int64_t n, frt_act kind, frt_pool *pool);
/* WaveNet's gated activation y = tanh(a) * sigmoid(b) (y may alias a or b). */
void frt_cpu_gate(float *y, const float *a, const float *b, int64_t n, frt_pool *pool);
/* Numerically safe (max-subtracted) softmax over each row. A row of only
 * -inf (fully masked) gives zeros; a +inf or NaN entry makes its row NaN. */
void frt_cpu_softmax(float *y, const float *x, int64_t rows, int64_t cols, frt_pool *pool);
/* x [T, H, d] with token stride st and head stride sh (elements), last dim
 * contiguous, d even. Rotate-half layout: pairs (i, i + d/2), angle
 * (pos0 + t) / linear_scale * theta^(-2i/d). */
void frt_cpu_rope(float *x, int64_t T, int64_t H, int64_t d, int64_t st, int64_t sh, int64_t pos0,
                  float theta, float linear_scale, frt_pool *pool);
/* PyTorch Conv1d, batch 1: x [cin, tin], w [cout, cin/groups, k], b [cout]
 * or NULL, y [cout, tout] with tout = (tin + 2 pad - dil (k - 1) - 1) / stride + 1. */
void frt_cpu_conv1d(float *y, const float *x, const float *w, const float *b, int64_t cin,
                    int64_t tin, int64_t cout, int64_t k, int stride, int pad, int dil, int groups,
                    frt_pool *pool);
static inline int64_t frt_conv1d_out_len(int64_t tin, int64_t k, int stride, int pad, int dil)
{
    return (tin + 2 * (int64_t)pad - (int64_t)dil * (k - 1) - 1) / stride + 1;
}

void frt_ref_add(float *y, const float *a, const float *b, int64_t n, int64_t bn);
void frt_ref_mul(float *y, const float *a, const float *b, int64_t n, int64_t bn);
void frt_ref_scale(float *y, const float *x, float s, int64_t n);
void frt_ref_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                       int64_t cols, float eps);
void frt_ref_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t cols,
                     float eps);
void frt_ref_act(float *y, const float *x, int64_t n, frt_act kind);
void frt_ref_gate(float *y, const float *a, const float *b, int64_t n);
void frt_ref_softmax(float *y, const float *x, int64_t rows, int64_t cols);
void frt_ref_rope(float *x, int64_t T, int64_t H, int64_t d, int64_t st, int64_t sh, int64_t pos0,
                  float theta, float linear_scale);
void frt_ref_conv1d(float *y, const float *x, const float *w, const float *b, int64_t cin,
                    int64_t tin, int64_t cout, int64_t k, int stride, int pad, int dil, int groups);

#endif
