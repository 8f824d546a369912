/* Backend-independent op wrappers and the backend lifetime. */
#include "backend.h"
#include "error.h"

#define FRT_CALL(be, op, ...)                                                                      \
    do {                                                                                           \
        if (!(be)) return frt_error(FRT_ERR_INVALID_ARG, "%s: backend is NULL", #op);               \
        if (!(be)->ops->op)                                                                        \
            return frt_error(FRT_ERR_UNSUPPORTED, "op %s is not available on the %s backend", #op,  \
                             (be)->ops->name);                                                     \
        return (be)->ops->op((be), __VA_ARGS__);                                                   \
    } while (0)

frt_status frt_linear(frt_backend *be, frt_tensor *y, const frt_tensor *x, const frt_tensor *w,
                      const frt_tensor *b)
{
    FRT_CALL(be, linear, y, x, w, b);
}

frt_status frt_add(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b)
{
    FRT_CALL(be, add, y, a, b);
}

frt_status frt_mul(frt_backend *be, frt_tensor *y, const frt_tensor *a, const frt_tensor *b)
{
    FRT_CALL(be, mul, y, a, b);
}

frt_status frt_scale(frt_backend *be, frt_tensor *y, const frt_tensor *x, float s)
{
    FRT_CALL(be, scale, y, x, s);
}

frt_status frt_layernorm(frt_backend *be, frt_tensor *y, const frt_tensor *x, const frt_tensor *w,
                         const frt_tensor *b, float eps)
{
    FRT_CALL(be, layernorm, y, x, w, b, eps);
}

frt_status frt_rmsnorm(frt_backend *be, frt_tensor *y, const frt_tensor *x, const frt_tensor *w,
                       float eps)
{
    FRT_CALL(be, rmsnorm, y, x, w, eps);
}

frt_status frt_act_apply(frt_backend *be, frt_tensor *y, const frt_tensor *x, frt_act kind)
{
    FRT_CALL(be, act, y, x, kind);
}

frt_status frt_softmax(frt_backend *be, frt_tensor *y, const frt_tensor *x)
{
    FRT_CALL(be, softmax, y, x);
}

frt_status frt_rope(frt_backend *be, frt_tensor *x, int64_t pos0, float theta, float linear_scale)
{
    FRT_CALL(be, rope, x, pos0, theta, linear_scale);
}

frt_status frt_conv1d(frt_backend *be, frt_tensor *y, const frt_tensor *x, const frt_tensor *w,
                      const frt_tensor *b, int stride, int padding, int dilation, int groups)
{
    FRT_CALL(be, conv1d, y, x, w, b, stride, padding, dilation, groups);
}

frt_status frt_attention(frt_backend *be, frt_tensor *o, const frt_tensor *q, const frt_tensor *k,
                         const frt_tensor *v, const frt_attn_params *p)
{
    FRT_CALL(be, attention, o, q, k, v, p);
}

void frt_backend_free(frt_backend *be)
{
    if (be && be->ops->destroy) be->ops->destroy(be);
}

#ifndef FRT_HAVE_CUDA
frt_status frt_backend_cuda_create(int device, frt_backend **out)
{
    if (out) *out = NULL;
    return frt_error(FRT_ERR_DEVICE,
                     "CUDA backend not built in (configure with -DFRT_CUDA=ON where nvcc exists)");
}
#endif
