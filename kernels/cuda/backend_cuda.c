/* The CUDA backend: device memory, one stream, cuBLAS for linear, and the
 * kernels of kernels/cuda for everything else.
 *
 * Dtypes: every tensor may be f32, f16 or bf16 unless an op says otherwise;
 * kernels compute in f32 and round once on the store, so a model may keep
 * its activations in f16/bf16 on the GPU while the CPU backend uses f32.
 * Attention needs k and v in f16 or bf16 (tensor cores) and d 64 or 128;
 * p->mask, when given, must point to device memory.
 *
 * All work is queued on the backend's stream; download and synchronize wait
 * for it. An error inside a kernel shows up at the next synchronisation
 * (download, synchronize) as FRT_ERR_DEVICE. One backend is not thread-safe:
 * use it from one thread at a time. */

/* CMake compiles this file only with FRT_CUDA=ON; lib/backend.c has the
 * stub frt_backend_cuda_create otherwise. */
#ifdef FRT_HAVE_CUDA

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdlib.h>

#include "alloc.h"
#include "backend.h"
#include "cuda/cuda_kernels.h"
#include "error.h"
#include "log.h"

typedef struct cuda_impl {
    int device;
    int num_sms;
    cudaStream_t stream;
    cublasHandle_t blas;
    /* Grow-only scratch for converted GEMM inputs and the decode workspace. */
    void *scratch;
    size_t scratch_bytes;
} cuda_impl;

static cuda_impl *impl_of(frt_backend *be)
{
    return be->impl;
}

static frt_status cuda_fail(cudaError_t e, const char *call)
{
    /* Clear a non-sticky error so the next call does not report it again. */
    (void)cudaGetLastError();
    frt_status s = e == cudaErrorMemoryAllocation ? FRT_ERR_NOMEM : FRT_ERR_DEVICE;
    return frt_error(s, "CUDA: %s failed: %s (%s)", call, cudaGetErrorString(e),
                     cudaGetErrorName(e));
}

static frt_status blas_fail(cublasStatus_t e, const char *call)
{
    frt_status s = e == CUBLAS_STATUS_ALLOC_FAILED ? FRT_ERR_NOMEM : FRT_ERR_DEVICE;
    return frt_error(s, "cuBLAS: %s failed: %s", call, cublasGetStatusString(e));
}

#define CU_TRY(call)                                                                               \
    do {                                                                                           \
        cudaError_t cu_e_ = (call);                                                                \
        if (cu_e_ != cudaSuccess) return cuda_fail(cu_e_, #call);                                  \
    } while (0)

#define BLAS_TRY(call)                                                                             \
    do {                                                                                           \
        cublasStatus_t blas_e_ = (call);                                                           \
        if (blas_e_ != CUBLAS_STATUS_SUCCESS) return blas_fail(blas_e_, #call);                    \
    } while (0)

/* Ops run on whichever device is current; make it ours first so several
 * backends on different GPUs can share a thread. */
static frt_status enter(frt_backend *be)
{
    CU_TRY(cudaSetDevice(impl_of(be)->device));
    return FRT_OK;
}

static frt_status scratch(cuda_impl *c, size_t bytes, void **out)
{
    if (bytes > c->scratch_bytes) {
        /* The old buffer may still be read by queued kernels. */
        CU_TRY(cudaStreamSynchronize(c->stream));
        CU_TRY(cudaFree(c->scratch));
        c->scratch = NULL;
        c->scratch_bytes = 0;
        CU_TRY(cudaMalloc(&c->scratch, bytes));
        c->scratch_bytes = bytes;
    }
    *out = c->scratch;
    return FRT_OK;
}

/* ---- validation ---------------------------------------------------------- */

static bool is_float(frt_dtype t)
{
    return t == FRT_F32 || t == FRT_F16 || t == FRT_BF16;
}

static frt_status check_dev(const char *op, const char *what, const frt_tensor *t)
{
    if (!t || !t->data)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %s is NULL or has no data", op, what);
    if (t->device != FRT_DEVICE_CUDA)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %s is not on the CUDA device", op, what);
    if (!is_float(t->dtype))
        return frt_error(FRT_ERR_UNSUPPORTED, "%s: %s has dtype %s (want F32, F16 or BF16)", op,
                         what, frt_dtype_name(t->dtype));
    return FRT_OK;
}

static frt_status check_rows(const char *op, const char *what, const frt_tensor *t)
{
    FRT_TRY(check_dev(op, what, t));
    if (!frt_tensor_is_contiguous(t))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %s must be contiguous", op, what);
    return FRT_OK;
}

static frt_status check_same(const char *op, const frt_tensor *y, const frt_tensor *x)
{
    if (frt_tensor_numel(y) != frt_tensor_numel(x) || frt_tensor_cols(y) != frt_tensor_cols(x))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "%s: output has %lld x %lld elements, input %lld x %lld", op,
                         (long long)frt_tensor_rows(y), (long long)frt_tensor_cols(y),
                         (long long)frt_tensor_rows(x), (long long)frt_tensor_cols(x));
    return FRT_OK;
}

/* A [cols] parameter vector of a row op. */
static frt_status check_vec(const char *op, const char *what, const frt_tensor *t, int64_t cols)
{
    FRT_TRY(check_rows(op, what, t));
    if (frt_tensor_numel(t) != cols)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %s has %lld elements, want %lld", op, what,
                         (long long)frt_tensor_numel(t), (long long)cols);
    return FRT_OK;
}

/* One block per row: the grid's x dimension caps the row count. */
static frt_status check_row_count(const char *op, int64_t rows)
{
    if (rows > 0x7fffffff)
        return frt_error(FRT_ERR_LIMIT, "%s: %lld rows (at most 2^31 - 1)", op, (long long)rows);
    return FRT_OK;
}

static frt_status launched(cudaError_t e, const char *kernel)
{
    if (e != cudaSuccess) return cuda_fail(e, kernel);
    return FRT_OK;
}

/* ---- memory ---------------------------------------------------------------- */

static frt_status cuda_alloc(frt_backend *be, frt_tensor *t)
{
    if (!t || t->ndim < 1 || t->ndim > FRT_MAX_DIMS || (unsigned)t->dtype >= FRT_DTYPE_COUNT)
        return frt_error(FRT_ERR_INVALID_ARG, "cuda alloc: bad tensor");
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || (t->shape[i] > 0 && n > INT64_MAX / t->shape[i]))
            return frt_error(FRT_ERR_INVALID_ARG, "cuda alloc: bad shape");
        n *= t->shape[i];
    }
    size_t bytes;
    if (!frt_mul_size((size_t)n, frt_dtype_size(t->dtype), &bytes))
        return frt_error(FRT_ERR_LIMIT, "cuda alloc: %lld elements overflow", (long long)n);
    FRT_TRY(enter(be));
    void *p = NULL;
    /* cudaMalloc(0) returns NULL; keep a real pointer so data != NULL means allocated. */
    CU_TRY(cudaMalloc(&p, bytes ? bytes : 16));
    int64_t st = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = st;
        st *= t->shape[i];
    }
    t->data = p;
    t->device = FRT_DEVICE_CUDA;
    t->owns_data = true;
    return FRT_OK;
}

static void cuda_free(frt_backend *be, frt_tensor *t)
{
    if (!t || !t->data || t->device != FRT_DEVICE_CUDA) return;
    if (t->owns_data && enter(be) == FRT_OK) {
        cudaError_t e = cudaFree(t->data);
        if (e != cudaSuccess) FRT_LOGW("CUDA: cudaFree failed: %s", cudaGetErrorString(e));
    }
    t->data = NULL;
    t->owns_data = false;
}

static frt_status check_copy(const char *op, const frt_tensor *t, const void *host, size_t bytes)
{
    if (!t || !t->data || t->device != FRT_DEVICE_CUDA)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: tensor is not on the CUDA device", op);
    if (!host && bytes) return frt_error(FRT_ERR_INVALID_ARG, "%s: host pointer is NULL", op);
    if (bytes > frt_tensor_nbytes(t))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %zu bytes but the tensor holds %zu", op, bytes,
                         frt_tensor_nbytes(t));
    return FRT_OK;
}

static frt_status cuda_upload(frt_backend *be, frt_tensor *dst, const void *host, size_t bytes)
{
    cuda_impl *c = impl_of(be);
    FRT_TRY(check_copy("cuda upload", dst, host, bytes));
    FRT_TRY(enter(be));
    CU_TRY(cudaMemcpyAsync(dst->data, host, bytes, cudaMemcpyHostToDevice, c->stream));
    /* The caller may free or reuse host as soon as we return. */
    CU_TRY(cudaStreamSynchronize(c->stream));
    return FRT_OK;
}

static frt_status cuda_download(frt_backend *be, void *host, const frt_tensor *src, size_t bytes)
{
    cuda_impl *c = impl_of(be);
    FRT_TRY(check_copy("cuda download", src, host, bytes));
    FRT_TRY(enter(be));
    CU_TRY(cudaMemcpyAsync(host, src->data, bytes, cudaMemcpyDeviceToHost, c->stream));
    CU_TRY(cudaStreamSynchronize(c->stream));
    return FRT_OK;
}

static frt_status cuda_synchronize(frt_backend *be)
{
    FRT_TRY(enter(be));
    CU_TRY(cudaStreamSynchronize(impl_of(be)->stream));
    CU_TRY(cudaGetLastError());
    return FRT_OK;
}

/* ---- linear (cuBLAS) --------------------------------------------------------- */

static cudaDataType_t cuda_type(frt_dtype t)
{
    return t == FRT_F16 ? CUDA_R_16F : t == FRT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static frt_status cuda_linear(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                              const frt_tensor *w, const frt_tensor *b)
{
    cuda_impl *c = impl_of(be);
    const char *op = "cuda linear";
    FRT_TRY(check_rows(op, "y", y));
    FRT_TRY(check_rows(op, "x", x));
    FRT_TRY(check_rows(op, "w", w));
    if (w->ndim != 2) return frt_error(FRT_ERR_INVALID_ARG, "%s: w must be 2-D [N, K]", op);
    int64_t N = w->shape[0], K = w->shape[1], M = frt_tensor_rows(x);
    if (frt_tensor_cols(x) != K || frt_tensor_cols(y) != N || frt_tensor_rows(y) != M)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "%s: x [%lld, %lld], w [%lld, %lld], y [%lld, %lld] do not match", op,
                         (long long)M, (long long)frt_tensor_cols(x), (long long)N, (long long)K,
                         (long long)frt_tensor_rows(y), (long long)frt_tensor_cols(y));
    if (M <= 0 || N <= 0 || K <= 0 || M > 0x7fffffff || N > 0x7fffffff || K > 0x7fffffff)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: sizes M %lld N %lld K %lld out of range", op,
                         (long long)M, (long long)N, (long long)K);
    if (b) FRT_TRY(check_vec(op, "b", b, N));
    /* cublasGemmEx wants A and B of one type, and C of that type or f32. */
    if (y->dtype != FRT_F32 && y->dtype != w->dtype)
        return frt_error(FRT_ERR_UNSUPPORTED, "%s: y is %s with %s weights (want F32 or %s)", op,
                         frt_dtype_name(y->dtype), frt_dtype_name(w->dtype),
                         frt_dtype_name(w->dtype));
    FRT_TRY(enter(be));

    const void *xa = x->data;
    if (x->dtype != w->dtype) {
        void *tmp;
        size_t bytes = (size_t)M * (size_t)K * frt_dtype_size(w->dtype);
        FRT_TRY(scratch(c, bytes, &tmp));
        FRT_TRY(launched(frt_cuda_copy(tmp, w->dtype, x->data, x->dtype, M * K, M * K, c->stream),
                         "convert kernel"));
        xa = tmp;
    }
    float alpha = 1.0f, beta = 0.0f;
    if (b) {
        /* Bias first, then the GEMM accumulates onto it (beta = 1). */
        FRT_TRY(launched(frt_cuda_copy(y->data, y->dtype, b->data, b->dtype, M * N, N, c->stream),
                         "bias kernel"));
        beta = 1.0f;
    }
    /* Row-major y[M,N] = x w^T is column-major y^T[N,M] = w[K,N]^T x^T[K,M]. */
    BLAS_TRY(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha,
                          w->data, cuda_type(w->dtype), (int)K, xa, cuda_type(w->dtype), (int)K,
                          &beta, y->data, cuda_type(y->dtype), (int)N, CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT));
    return FRT_OK;
}

/* ---- element-wise and row ops ------------------------------------------------ */

typedef cudaError_t (*binary_fn)(void *, int, const void *, int, const void *, int, int64_t,
                                 int64_t, cudaStream_t);

static frt_status binary(frt_backend *be, const char *op, binary_fn fn, frt_tensor *y,
                         const frt_tensor *a, const frt_tensor *b)
{
    FRT_TRY(check_rows(op, "y", y));
    FRT_TRY(check_rows(op, "a", a));
    FRT_TRY(check_rows(op, "b", b));
    FRT_TRY(check_same(op, y, a));
    int64_t n = frt_tensor_numel(a), bn = frt_tensor_numel(b);
    if (bn != n && bn != frt_tensor_cols(a))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "%s: b has %lld elements, want %lld or one row of %lld", op, (long long)bn,
                         (long long)n, (long long)frt_tensor_cols(a));
    if (n == 0) return FRT_OK;
    FRT_TRY(enter(be));
    return launched(
        fn(y->data, y->dtype, a->data, a->dtype, b->data, b->dtype, n, bn, impl_of(be)->stream),
        op);
}

static frt_status cuda_add(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b)
{
    return binary(be, "cuda add", frt_cuda_add, y, a, b);
}

static frt_status cuda_mul(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b)
{
    return binary(be, "cuda mul", frt_cuda_mul, y, a, b);
}

static frt_status cuda_scale(frt_backend *be, frt_tensor *y, const frt_tensor *x, float s)
{
    const char *op = "cuda scale";
    FRT_TRY(check_rows(op, "y", y));
    FRT_TRY(check_rows(op, "x", x));
    FRT_TRY(check_same(op, y, x));
    int64_t n = frt_tensor_numel(x);
    if (n == 0) return FRT_OK;
    FRT_TRY(enter(be));
    return launched(frt_cuda_scale(y->data, y->dtype, x->data, x->dtype, s, n, impl_of(be)->stream),
                    op);
}

static frt_status cuda_act(frt_backend *be, frt_tensor *y, const frt_tensor *x, frt_act kind)
{
    const char *op = "cuda act";
    FRT_TRY(check_rows(op, "y", y));
    FRT_TRY(check_rows(op, "x", x));
    FRT_TRY(check_same(op, y, x));
    if ((unsigned)kind >= FRT_ACT_COUNT)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: unknown activation %d", op, (int)kind);
    int64_t n = frt_tensor_numel(x);
    if (n == 0) return FRT_OK;
    FRT_TRY(enter(be));
    return launched(
        frt_cuda_act(y->data, y->dtype, x->data, x->dtype, n, kind, impl_of(be)->stream), op);
}

static frt_status cuda_layernorm(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                                 const frt_tensor *w, const frt_tensor *b, float eps)
{
    const char *op = "cuda layernorm";
    FRT_TRY(check_rows(op, "y", y));
    FRT_TRY(check_rows(op, "x", x));
    FRT_TRY(check_same(op, y, x));
    int64_t rows = frt_tensor_rows(x), cols = frt_tensor_cols(x);
    FRT_TRY(check_vec(op, "w", w, cols));
    if (b) FRT_TRY(check_vec(op, "b", b, cols));
    FRT_TRY(check_row_count(op, rows));
    if (rows == 0 || cols == 0) return FRT_OK;
    FRT_TRY(enter(be));
    return launched(frt_cuda_layernorm(y->data, y->dtype, x->data, x->dtype, w->data, w->dtype,
                                       b ? b->data : NULL, b ? b->dtype : FRT_F32, rows, cols, eps,
                                       impl_of(be)->stream),
                    op);
}

static frt_status cuda_rmsnorm(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                               const frt_tensor *w, float eps)
{
    const char *op = "cuda rmsnorm";
    FRT_TRY(check_rows(op, "y", y));
    FRT_TRY(check_rows(op, "x", x));
    FRT_TRY(check_same(op, y, x));
    int64_t rows = frt_tensor_rows(x), cols = frt_tensor_cols(x);
    FRT_TRY(check_vec(op, "w", w, cols));
    FRT_TRY(check_row_count(op, rows));
    if (rows == 0 || cols == 0) return FRT_OK;
    FRT_TRY(enter(be));
    return launched(frt_cuda_rmsnorm(y->data, y->dtype, x->data, x->dtype, w->data, w->dtype, rows,
                                     cols, eps, impl_of(be)->stream),
                    op);
}

static frt_status cuda_softmax(frt_backend *be, frt_tensor *y, const frt_tensor *x)
{
    const char *op = "cuda softmax";
    FRT_TRY(check_rows(op, "y", y));
    FRT_TRY(check_rows(op, "x", x));
    FRT_TRY(check_same(op, y, x));
    int64_t rows = frt_tensor_rows(x), cols = frt_tensor_cols(x);
    FRT_TRY(check_row_count(op, rows));
    if (rows == 0 || cols == 0) return FRT_OK;
    FRT_TRY(enter(be));
    return launched(
        frt_cuda_softmax(y->data, y->dtype, x->data, x->dtype, rows, cols, impl_of(be)->stream),
        op);
}

static frt_status cuda_rope(frt_backend *be, frt_tensor *x, int64_t pos0, float theta,
                            float linear_scale)
{
    const char *op = "cuda rope";
    FRT_TRY(check_dev(op, "x", x));
    if (x->ndim != 3 || x->stride[2] != 1 || x->shape[2] % 2 != 0)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "%s: x must be [T, H, d] with d even and the last dim contiguous", op);
    if (!(theta > 0.0f) || !(linear_scale > 0.0f))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: theta %g and linear_scale %g must be > 0", op,
                         (double)theta, (double)linear_scale);
    if (x->shape[0] * x->shape[1] * x->shape[2] == 0) return FRT_OK;
    FRT_TRY(enter(be));
    return launched(frt_cuda_rope(x->data, x->dtype, x->shape[0], x->shape[1], x->shape[2],
                                  x->stride[0], x->stride[1], pos0, theta, linear_scale,
                                  impl_of(be)->stream),
                    op);
}

/* ---- attention ------------------------------------------------------------- */

/* Below this many query rows the 64-row tiles of the flash kernel would be
 * mostly padding; the decode kernel gives each row its own blocks. */
#define DECODE_MAX_ROWS 8

static frt_status check_heads(const char *op, const char *what, const frt_tensor *t, int64_t d)
{
    FRT_TRY(check_dev(op, what, t));
    if (t->ndim != 3 || t->shape[2] != d || t->stride[2] != 1)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "%s: %s must be 3-D [n, heads, %lld], last dim "
                         "contiguous",
                         op, what, (long long)d);
    return FRT_OK;
}

static frt_status cuda_attention(frt_backend *be, frt_tensor *o, const frt_tensor *q,
                                 const frt_tensor *k, const frt_tensor *v, const frt_attn_params *p)
{
    cuda_impl *c = impl_of(be);
    const char *op = "cuda attention";
    if (!p) return frt_error(FRT_ERR_INVALID_ARG, "%s: params are NULL", op);
    FRT_TRY(check_dev(op, "q", q));
    int64_t d = q->ndim == 3 ? q->shape[2] : 0;
    FRT_TRY(check_heads(op, "q", q, d));
    FRT_TRY(check_heads(op, "k", k, d));
    FRT_TRY(check_heads(op, "v", v, d));
    FRT_TRY(check_heads(op, "o", o, d));
    int64_t nq = q->shape[0], h = q->shape[1], nk = k->shape[0], h_kv = k->shape[1];
    if (d != 64 && d != 128)
        return frt_error(FRT_ERR_UNSUPPORTED, "%s: head dim %lld (CUDA supports 64 and 128)", op,
                         (long long)d);
    if (k->dtype != v->dtype || k->dtype == FRT_F32)
        return frt_error(FRT_ERR_UNSUPPORTED, "%s: k %s and v %s must be both F16 or both BF16", op,
                         frt_dtype_name(k->dtype), frt_dtype_name(v->dtype));
    if (v->shape[0] != nk || v->shape[1] != h_kv || o->shape[0] != nq || o->shape[1] != h ||
        h_kv <= 0 || h % h_kv != 0)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "%s: q [%lld, %lld], k/v [%lld, %lld], o [%lld, %lld] do not match", op,
                         (long long)nq, (long long)h, (long long)nk, (long long)h_kv,
                         (long long)o->shape[0], (long long)o->shape[1]);
    if (h > 65535 || nq > 0x7fffffffLL * 64)
        return frt_error(FRT_ERR_LIMIT, "%s: %lld heads, %lld queries too many", op, (long long)h,
                         (long long)nq);
    /* The same rules as the CPU kernels (kernels/cpu/attention.h). */
    if (!isfinite(p->scale) || p->kv_len < 0 || p->kv_len > nk || (p->causal && p->q_pos0 < 0) ||
        (p->mask && nq > 1 && p->mask_stride < nk))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "%s: bad params (scale %g, kv_len %lld of %lld keys, q_pos0 %lld, "
                         "mask_stride %lld)",
                         op, (double)p->scale, (long long)p->kv_len, (long long)nk,
                         (long long)p->q_pos0, (long long)p->mask_stride);
    if (nq == 0) return FRT_OK;

    frt_cuda_attn_args a = {
        .nq = nq,
        .nk = nk,
        .h = h,
        .h_kv = h_kv,
        .d = d,
        .q = q->data,
        .q_dt = q->dtype,
        .q_st = q->stride[0],
        .q_sh = q->stride[1],
        .k = k->data,
        .k_st = k->stride[0],
        .k_sh = k->stride[1],
        .v = v->data,
        .v_st = v->stride[0],
        .v_sh = v->stride[1],
        .kv_dt = k->dtype,
        .o = o->data,
        .o_dt = o->dtype,
        .o_st = o->stride[0],
        .o_sh = o->stride[1],
        .scale = p->scale,
        .causal = p->causal,
        .q_pos0 = p->q_pos0,
        .kv_len = p->kv_len,
        .mask = p->mask,
        .mask_stride = p->mask_stride,
    };
    FRT_TRY(enter(be));
    if (nq > DECODE_MAX_ROWS) return launched(frt_cuda_flash_attn(&a, c->stream), "flash kernel");

    int nsplit = frt_cuda_decode_splits(&a, c->num_sms);
    void *ws;
    FRT_TRY(scratch(c, frt_cuda_decode_ws_floats(&a, nsplit) * sizeof(float), &ws));
    return launched(frt_cuda_decode_attn(&a, nsplit, ws, c->stream), "decode kernels");
}

/* ---- lifetime ---------------------------------------------------------------- */

static void cuda_destroy(frt_backend *be)
{
    cuda_impl *c = impl_of(be);
    if (cudaSetDevice(c->device) != cudaSuccess) {
        (void)cudaGetLastError();
    } else {
        if (c->stream) cudaStreamSynchronize(c->stream);
        cudaFree(c->scratch);
        if (c->blas) cublasDestroy(c->blas);
        if (c->stream) cudaStreamDestroy(c->stream);
    }
    free(c);
    free(be);
}

static const frt_backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .synchronize = cuda_synchronize,
    .linear = cuda_linear,
    .add = cuda_add,
    .mul = cuda_mul,
    .scale = cuda_scale,
    .layernorm = cuda_layernorm,
    .rmsnorm = cuda_rmsnorm,
    .act = cuda_act,
    .softmax = cuda_softmax,
    .rope = cuda_rope,
    .conv1d = NULL,
    .attention = cuda_attention,
};

static frt_status init_impl(cuda_impl *c, int device)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return frt_error(FRT_ERR_DEVICE, "cudaGetDeviceCount failed: %s (no usable CUDA GPU)",
                         cudaGetErrorString(e));
    }
    if (n == 0) return frt_error(FRT_ERR_DEVICE, "cudaGetDeviceCount found no CUDA GPU");
    if (device < 0 || device >= n)
        return frt_error(FRT_ERR_DEVICE, "CUDA device %d does not exist (%d present)", device, n);
    struct cudaDeviceProp prop;
    CU_TRY(cudaGetDeviceProperties(&prop, device));
    /* The kernels are built for sm_80 and newer (bf16 tensor cores). */
    if (prop.major < 8)
        return frt_error(FRT_ERR_DEVICE, "CUDA device %d (%s) is sm_%d%d; flashrt needs sm_80+",
                         device, prop.name, prop.major, prop.minor);
    c->device = device;
    c->num_sms = prop.multiProcessorCount;
    CU_TRY(cudaSetDevice(device));
    CU_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    BLAS_TRY(cublasCreate(&c->blas));
    BLAS_TRY(cublasSetStream(c->blas, c->stream));
    CU_TRY(frt_cuda_attn_setup());
    FRT_LOGI("CUDA backend on device %d: %s, sm_%d%d, %d SMs", device, prop.name, prop.major,
             prop.minor, c->num_sms);
    return FRT_OK;
}

frt_status frt_backend_cuda_create(int device, frt_backend **out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "frt_backend_cuda_create: out is NULL");
    *out = NULL;
    frt_backend *be = calloc(1, sizeof *be);
    cuda_impl *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return frt_error(FRT_ERR_NOMEM, "frt_backend_cuda_create: out of memory");
    }
    be->ops = &cuda_ops;
    be->impl = c;
    c->device = device;
    frt_status s = init_impl(c, device);
    if (s != FRT_OK) {
        cuda_destroy(be);
        return s;
    }
    *out = be;
    return FRT_OK;
}

#endif
