/* The CPU backend: validates tensors, then calls the kernels in kernels/cpu
 * on the default thread pool. Activations are f32; Linear weights may be
 * f32, f16 or bf16 (used in place); norm and conv weights are f32. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "attention.h"
#include "backend.h"
#include "error.h"
#include "gemm.h"
#include "ops.h"

static frt_status be_alloc(frt_backend *be, frt_tensor *t)
{
    frt_tensor n;
    FRT_TRY(frt_tensor_alloc(&n, t->dtype, t->ndim, t->shape));
    *t = n;
    return FRT_OK;
}

static void be_free(frt_backend *be, frt_tensor *t) { frt_tensor_free(t); }

static frt_status be_upload(frt_backend *be, frt_tensor *dst, const void *host, size_t bytes)
{
    if (bytes > frt_tensor_nbytes(dst))
        return frt_error(FRT_ERR_INVALID_ARG, "upload of %zu bytes into a %zu-byte tensor", bytes,
                         frt_tensor_nbytes(dst));
    memcpy(dst->data, host, bytes);
    return FRT_OK;
}

static frt_status be_download(frt_backend *be, void *host, const frt_tensor *src, size_t bytes)
{
    if (bytes > frt_tensor_nbytes(src))
        return frt_error(FRT_ERR_INVALID_ARG, "download of %zu bytes from a %zu-byte tensor", bytes,
                         frt_tensor_nbytes(src));
    memcpy(host, src->data, bytes);
    return FRT_OK;
}

static frt_status be_sync(frt_backend *be) { return FRT_OK; }

/* ---- validation ------------------------------------------------------------ */

static frt_status need_f32(const frt_tensor *t, const char *op, const char *what)
{
    if (!t || !t->data) return frt_error(FRT_ERR_INVALID_ARG, "%s: %s is missing", op, what);
    if (t->device != FRT_DEVICE_CPU)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %s is not in host memory", op, what);
    if (t->dtype != FRT_F32)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %s is %s, the CPU backend needs F32", op, what,
                         frt_dtype_name(t->dtype));
    if (!frt_tensor_is_contiguous(t))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %s is not contiguous", op, what);
    return FRT_OK;
}

static frt_status same_numel(const frt_tensor *a, const frt_tensor *b, const char *op)
{
    if (frt_tensor_numel(a) != frt_tensor_numel(b))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %lld elements in, %lld out", op,
                         (long long)frt_tensor_numel(b), (long long)frt_tensor_numel(a));
    return FRT_OK;
}

static frt_status need_vec(const frt_tensor *v, int64_t n, const char *op, const char *what)
{
    FRT_TRY(need_f32(v, op, what));
    if (frt_tensor_numel(v) != n)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: %s has %lld elements, expected %lld", op, what,
                         (long long)frt_tensor_numel(v), (long long)n);
    return FRT_OK;
}

/* ---- ops --------------------------------------------------------------------- */

static frt_status be_linear(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                            const frt_tensor *w, const frt_tensor *b)
{
    FRT_TRY(need_f32(x, "linear", "input"));
    FRT_TRY(need_f32(y, "linear", "output"));
    if (!w || !w->data || w->ndim != 2 || w->stride[1] != 1 || w->device != FRT_DEVICE_CPU)
        return frt_error(FRT_ERR_INVALID_ARG, "linear: weight must be a 2-D host tensor [out, in]");
    int64_t N = w->shape[0], K = w->shape[1];
    if (frt_tensor_cols(x) != K)
        return frt_error(FRT_ERR_INVALID_ARG, "linear: input has %lld features, weight expects %lld",
                         (long long)frt_tensor_cols(x), (long long)K);
    int64_t M = frt_tensor_rows(x);
    if (frt_tensor_cols(y) != N || frt_tensor_rows(y) != M)
        return frt_error(FRT_ERR_INVALID_ARG, "linear: output is [%lld, %lld], expected [%lld, %lld]",
                         (long long)frt_tensor_rows(y), (long long)frt_tensor_cols(y),
                         (long long)M, (long long)N);
    if (b) FRT_TRY(need_vec(b, N, "linear", "bias"));
    frt_gemm_args a = {.M = M, .N = N, .K = K, .x = x->data, .ldx = K, .w = w->data,
                       .wtype = w->dtype, .ldw = w->stride[0], .bias = b ? b->data : NULL,
                       .y = y->data, .ldy = N};
    return frt_cpu_gemm(&a, frt_pool_default());
}

static frt_status binary_check(frt_tensor *y, const frt_tensor *a, const frt_tensor *b,
                               const char *op, int64_t *bn)
{
    FRT_TRY(need_f32(a, op, "a"));
    FRT_TRY(need_f32(b, op, "b"));
    FRT_TRY(need_f32(y, op, "output"));
    FRT_TRY(same_numel(y, a, op));
    *bn = frt_tensor_numel(b);
    if (*bn != frt_tensor_numel(a) && *bn != frt_tensor_cols(a))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "%s: b has %lld elements: neither a's %lld nor one row of %lld", op,
                         (long long)*bn, (long long)frt_tensor_numel(a),
                         (long long)frt_tensor_cols(a));
    return FRT_OK;
}

static frt_status be_add(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b)
{
    int64_t bn;
    FRT_TRY(binary_check(y, a, b, "add", &bn));
    frt_cpu_add(y->data, a->data, b->data, frt_tensor_numel(a), bn, frt_pool_default());
    return FRT_OK;
}

static frt_status be_mul(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b)
{
    int64_t bn;
    FRT_TRY(binary_check(y, a, b, "mul", &bn));
    frt_cpu_mul(y->data, a->data, b->data, frt_tensor_numel(a), bn, frt_pool_default());
    return FRT_OK;
}

static frt_status be_scale(frt_backend *be, frt_tensor *y, const frt_tensor *x, float s)
{
    FRT_TRY(need_f32(x, "scale", "input"));
    FRT_TRY(need_f32(y, "scale", "output"));
    FRT_TRY(same_numel(y, x, "scale"));
    frt_cpu_scale(y->data, x->data, s, frt_tensor_numel(x), frt_pool_default());
    return FRT_OK;
}

static frt_status be_layernorm(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                               const frt_tensor *w, const frt_tensor *b, float eps)
{
    FRT_TRY(need_f32(x, "layernorm", "input"));
    FRT_TRY(need_f32(y, "layernorm", "output"));
    FRT_TRY(same_numel(y, x, "layernorm"));
    int64_t cols = frt_tensor_cols(x);
    FRT_TRY(need_vec(w, cols, "layernorm", "weight"));
    if (b) FRT_TRY(need_vec(b, cols, "layernorm", "bias"));
    frt_cpu_layernorm(y->data, x->data, w->data, b ? b->data : NULL, frt_tensor_rows(x), cols,
                      eps, frt_pool_default());
    return FRT_OK;
}

static frt_status be_rmsnorm(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                             const frt_tensor *w, float eps)
{
    FRT_TRY(need_f32(x, "rmsnorm", "input"));
    FRT_TRY(need_f32(y, "rmsnorm", "output"));
    FRT_TRY(same_numel(y, x, "rmsnorm"));
    int64_t cols = frt_tensor_cols(x);
    FRT_TRY(need_vec(w, cols, "rmsnorm", "weight"));
    frt_cpu_rmsnorm(y->data, x->data, w->data, frt_tensor_rows(x), cols, eps, frt_pool_default());
    return FRT_OK;
}

static frt_status be_act(frt_backend *be, frt_tensor *y, const frt_tensor *x, frt_act kind)
{
    FRT_TRY(need_f32(x, "act", "input"));
    FRT_TRY(need_f32(y, "act", "output"));
    FRT_TRY(same_numel(y, x, "act"));
    if ((unsigned)kind >= FRT_ACT_COUNT)
        return frt_error(FRT_ERR_INVALID_ARG, "act: unknown activation %d", (int)kind);
    frt_cpu_act(y->data, x->data, frt_tensor_numel(x), kind, frt_pool_default());
    return FRT_OK;
}

static frt_status be_softmax(frt_backend *be, frt_tensor *y, const frt_tensor *x)
{
    FRT_TRY(need_f32(x, "softmax", "input"));
    FRT_TRY(need_f32(y, "softmax", "output"));
    FRT_TRY(same_numel(y, x, "softmax"));
    frt_cpu_softmax(y->data, x->data, frt_tensor_rows(x), frt_tensor_cols(x), frt_pool_default());
    return FRT_OK;
}

static frt_status be_rope(frt_backend *be, frt_tensor *x, int64_t pos0, float theta,
                          float linear_scale)
{
    if (!x || !x->data || x->dtype != FRT_F32 || x->ndim != 3 || x->stride[2] != 1 ||
        x->device != FRT_DEVICE_CPU)
        return frt_error(FRT_ERR_INVALID_ARG, "rope: x must be a host F32 [T, H, d] tensor with a contiguous last dim");
    if (x->shape[2] % 2)
        return frt_error(FRT_ERR_INVALID_ARG, "rope: head dim %lld is odd", (long long)x->shape[2]);
    if (!(theta > 0) || !(linear_scale > 0) || pos0 < 0)
        return frt_error(FRT_ERR_INVALID_ARG, "rope: theta %g, scale %g, pos0 %lld out of range",
                         theta, linear_scale, (long long)pos0);
    frt_cpu_rope(x->data, x->shape[0], x->shape[1], x->shape[2], x->stride[0], x->stride[1], pos0,
                 theta, linear_scale, frt_pool_default());
    return FRT_OK;
}

static frt_status be_conv1d(frt_backend *be, frt_tensor *y, const frt_tensor *x,
                            const frt_tensor *w, const frt_tensor *b, int stride, int padding,
                            int dilation, int groups)
{
    FRT_TRY(need_f32(x, "conv1d", "input"));
    FRT_TRY(need_f32(y, "conv1d", "output"));
    FRT_TRY(need_f32(w, "conv1d", "weight"));
    if (x->ndim != 2 || w->ndim != 3 || y->ndim != 2)
        return frt_error(FRT_ERR_INVALID_ARG, "conv1d: expects x [Cin, T], w [Cout, Cin/groups, K], y [Cout, Tout]");
    if (stride < 1 || padding < 0 || dilation < 1 || groups < 1)
        return frt_error(FRT_ERR_INVALID_ARG, "conv1d: stride %d, padding %d, dilation %d, groups %d out of range",
                         stride, padding, dilation, groups);
    int64_t cin = x->shape[0], tin = x->shape[1], cout = w->shape[0], k = w->shape[2];
    if (cin % groups || cout % groups || w->shape[1] != cin / groups)
        return frt_error(FRT_ERR_INVALID_ARG, "conv1d: Cin %lld, Cout %lld, weight in-channels %lld do not fit %d groups",
                         (long long)cin, (long long)cout, (long long)w->shape[1], groups);
    int64_t tout = frt_conv1d_out_len(tin, k, stride, padding, dilation);
    if (tout < 1 || y->shape[0] != cout || y->shape[1] != tout)
        return frt_error(FRT_ERR_INVALID_ARG, "conv1d: output is [%lld, %lld], expected [%lld, %lld]",
                         (long long)y->shape[0], (long long)y->shape[1], (long long)cout,
                         (long long)tout);
    if (b) FRT_TRY(need_vec(b, cout, "conv1d", "bias"));
    frt_cpu_conv1d(y->data, x->data, w->data, b ? b->data : NULL, cin, tin, cout, k, stride,
                   padding, dilation, groups, frt_pool_default());
    return FRT_OK;
}

static frt_status attn_tensor(const frt_tensor *t, const char *what, bool f32_only)
{
    if (!t || !t->data || t->ndim != 3 || t->stride[2] != 1 || t->device != FRT_DEVICE_CPU)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "attention: %s must be a host [tokens, heads, d] tensor, last dim contiguous", what);
    if (f32_only ? t->dtype != FRT_F32
                 : t->dtype != FRT_F32 && t->dtype != FRT_F16 && t->dtype != FRT_BF16)
        return frt_error(FRT_ERR_INVALID_ARG, "attention: %s has dtype %s", what,
                         frt_dtype_name(t->dtype));
    return FRT_OK;
}

static frt_status be_attention(frt_backend *be, frt_tensor *o, const frt_tensor *q,
                               const frt_tensor *k, const frt_tensor *v, const frt_attn_params *p)
{
    FRT_TRY(attn_tensor(q, "q", true));
    FRT_TRY(attn_tensor(o, "o", true));
    FRT_TRY(attn_tensor(k, "k", false));
    FRT_TRY(attn_tensor(v, "v", false));
    if (!p) return frt_error(FRT_ERR_INVALID_ARG, "attention: parameters are NULL");
    if (k->dtype != v->dtype)
        return frt_error(FRT_ERR_INVALID_ARG, "attention: k is %s but v is %s",
                         frt_dtype_name(k->dtype), frt_dtype_name(v->dtype));
    int64_t d = q->shape[2];
    if (k->shape[2] != d || v->shape[2] != d || o->shape[2] != d ||
        k->shape[0] != v->shape[0] || k->shape[1] != v->shape[1] ||
        o->shape[0] != q->shape[0] || o->shape[1] != q->shape[1])
        return frt_error(FRT_ERR_INVALID_ARG, "attention: q/k/v/o shapes do not agree");
    frt_attn_args a = {
        .nq = q->shape[0], .nk = k->shape[0], .h = q->shape[1], .h_kv = k->shape[1], .d = d,
        .q = q->data, .q_st = q->stride[0], .q_sh = q->stride[1],
        .k = k->data, .k_st = k->stride[0], .k_sh = k->stride[1],
        .v = v->data, .v_st = v->stride[0], .v_sh = v->stride[1],
        .kv_dtype = k->dtype,
        .o = o->data, .o_st = o->stride[0], .o_sh = o->stride[1],
        .p = *p,
    };
    return frt_cpu_attention(&a, frt_pool_default());
}

static void be_destroy(frt_backend *be) {}

static const frt_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = be_destroy,
    .alloc = be_alloc,
    .free = be_free,
    .upload = be_upload,
    .download = be_download,
    .synchronize = be_sync,
    .linear = be_linear,
    .add = be_add,
    .mul = be_mul,
    .scale = be_scale,
    .layernorm = be_layernorm,
    .rmsnorm = be_rmsnorm,
    .act = be_act,
    .softmax = be_softmax,
    .rope = be_rope,
    .conv1d = be_conv1d,
    .attention = be_attention,
};

static frt_backend cpu_backend = {&cpu_ops, NULL};

frt_backend *frt_backend_cpu(void) { return &cpu_backend; }
