/* Internal: the backend interface. Models call these ops on a backend and do
 * not know whether it is the CPU or CUDA. A backend is a small vtable; an op a
 * backend lacks is NULL and the wrapper reports FRT_ERR_UNSUPPORTED.
 *
 * Conventions for every op:
 * - Tensors live on the backend's device (t->device); shapes outermost-first.
 * - Row ops (norms, activations, softmax, add/mul/scale) treat a contiguous
 *   tensor as [rows, cols] over its last dimension; y may alias x.
 * - Activations and outputs are f32 on the CPU backend; weights may be
 *   f32, f16 or bf16 and are accumulated in f32.
 * - Ops validate shapes and dtypes and return FRT_ERR_INVALID_ARG with a
 *   message naming the mismatch. */
#ifndef FRT_BACKEND_H
#define FRT_BACKEND_H

#include "tensor.h"

typedef enum frt_act {
    FRT_ACT_GELU_ERF = 0, /* x * Phi(x) (PyTorch nn.GELU default) */
    FRT_ACT_GELU_TANH,    /* tanh approximation */
    FRT_ACT_QUICK_GELU,   /* x * sigmoid(1.702 x) (CLIP) */
    FRT_ACT_SILU,
    FRT_ACT_MISH,
    FRT_ACT_RELU,
    FRT_ACT_COUNT
} frt_act;

/* Attention parameters shared by prefill and decode.
 * q [nq, h, d], k and v [nk, h_kv, d] (any strides on the first two dims,
 * last dim contiguous), o [nq, h, d] f32. h % h_kv == 0. Query i sits at
 * absolute position q_pos0 + i; with causal, it sees keys j <= q_pos0 + i.
 * kv_len (if > 0) masks keys j >= kv_len (padding). mask (if non-NULL) is
 * an additive f32 [nq, nk] bias with row stride mask_stride. */
typedef struct frt_attn_params {
    float scale;
    bool causal;
    int64_t q_pos0;
    int64_t kv_len;
    const float *mask;
    int64_t mask_stride;
    /* Decode only: FlashDecoding++ unified max. When use_unified_max, the
     * softmax uses the fixed phi instead of tracking the row max; rows whose
     * scores leave the safe range around phi (FRT_ATTN_UNIFIED_LO/HI in
     * kernels/cpu/attention.h) are recomputed exactly. */
    bool use_unified_max;
    float phi;
} frt_attn_params;

typedef struct frt_backend frt_backend;

typedef struct frt_backend_ops {
    const char *name;
    void (*destroy)(frt_backend *be);

    /* Memory: allocate t->data for t's dtype and shape (contiguous) on the device. */
    frt_status (*alloc)(frt_backend *be, frt_tensor *t);
    void (*free)(frt_backend *be, frt_tensor *t);
    frt_status (*upload)(frt_backend *be, frt_tensor *dst, const void *host, size_t bytes);
    frt_status (*download)(frt_backend *be, void *host, const frt_tensor *src, size_t bytes);
    frt_status (*synchronize)(frt_backend *be);

    /* y[M,N] = x[M,K] w[N,K]^T (+ b[N]); x, y f32; w f32/f16/bf16. */
    frt_status (*linear)(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                         const frt_tensor *w, const frt_tensor *b);
    /* y = a + b, y = a * b (b broadcast over rows when it has one row), y = x * s. */
    frt_status (*add)(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b);
    frt_status (*mul)(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b);
    frt_status (*scale)(frt_backend *be, frt_tensor *y, const frt_tensor *x, float s);
    /* Over the last dim; w, b of [cols] (b may be NULL). */
    frt_status (*layernorm)(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                            const frt_tensor *w, const frt_tensor *b, float eps);
    frt_status (*rmsnorm)(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                          const frt_tensor *w, float eps);
    frt_status (*act)(frt_backend *be, frt_tensor *y, const frt_tensor *x, frt_act kind);
    frt_status (*softmax)(frt_backend *be, frt_tensor *y, const frt_tensor *x);
    /* In place on x [T, H, d], rotate-half (GPT-NeoX / HF Llama) layout;
     * token t at position pos0 + t; theta base; positions divided by
     * linear_scale (1 = none). */
    frt_status (*rope)(frt_backend *be, frt_tensor *x, int64_t pos0, float theta,
                       float linear_scale);
    /* x [Cin, T] -> y [Cout, Tout]; w [Cout, Cin/groups, K]; b [Cout] or NULL. */
    frt_status (*conv1d)(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                         const frt_tensor *w, const frt_tensor *b, int stride, int padding,
                         int dilation, int groups);
    /* o = softmax(q k^T * scale + masks) v, see frt_attn_params. */
    frt_status (*attention)(frt_backend *be, frt_tensor *o, const frt_tensor *q,
                            const frt_tensor *k, const frt_tensor *v, const frt_attn_params *p);
} frt_backend_ops;

struct frt_backend {
    const frt_backend_ops *ops;
    void *impl;
};

/* The CPU backend (uses the default thread pool). Never fails. */
frt_backend *frt_backend_cpu(void);
/* The CUDA backend on device `device`, or NULL with FRT_ERR_DEVICE when
 * CUDA was not built in or no GPU is present. */
frt_status frt_backend_cuda_create(int device, frt_backend **out);
void frt_backend_free(frt_backend *be);

/* Op wrappers: check the op exists, then call it. */
frt_status frt_linear(frt_backend *be, frt_tensor *y, const frt_tensor *x, const frt_tensor *w,
                      const frt_tensor *b);
frt_status frt_add(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b);
frt_status frt_mul(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b);
frt_status frt_scale(frt_backend *be, frt_tensor *y, const frt_tensor *x, float s);
frt_status frt_layernorm(frt_backend *be, frt_tensor *y, const frt_tensor *x, const frt_tensor *w,
                         const frt_tensor *b, float eps);
frt_status frt_rmsnorm(frt_backend *be, frt_tensor *y, const frt_tensor *x, const frt_tensor *w,
                       float eps);
frt_status frt_act_apply(frt_backend *be, frt_tensor *y, const frt_tensor *x, frt_act kind);
frt_status frt_softmax(frt_backend *be, frt_tensor *y, const frt_tensor *x);
frt_status frt_rope(frt_backend *be, frt_tensor *x, int64_t pos0, float theta, float linear_scale);
frt_status frt_conv1d(frt_backend *be, frt_tensor *y, const frt_tensor *x, const frt_tensor *w,
                      const frt_tensor *b, int stride, int padding, int dilation, int groups);
frt_status frt_attention(frt_backend *be, frt_tensor *o, const frt_tensor *q, const frt_tensor *k,
                         const frt_tensor *v, const frt_attn_params *p);

#endif
