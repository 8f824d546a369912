/* FlashSpeech: thin wrappers that put raw buffers into backend tensors. */
#include <math.h>
#include <string.h>

#include "error.h"
#include "fs_internal.h"
#include "fs_lcm.h"

float *fs_take(fs_arena *a, size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    if (n > a->cap / sizeof(float) || bytes > a->cap - a->used) {
        frt_error(FRT_ERR_INTERNAL, "flashspeech: scratch budget of %zu bytes exceeded", a->cap);
        return NULL;
    }
    float *p = (float *)(a->base + a->used);
    a->used += bytes;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

frt_status fs_poll_cancel(const frt_fs_model *m)
{
    if (m->cancel && m->cancel(m->cancel_user))
        return frt_error(FRT_ERR_CANCELLED, "flashspeech: synthesis cancelled");
    return FRT_OK;
}

frt_tensor fs_t2(float *p, int64_t a, int64_t b)
{
    int64_t s[2] = {a, b};
    return frt_tensor_view(p, FRT_F32, 2, s);
}

frt_status fs_linear(frt_backend *be, float *y, const float *x, int64_t rows, const fs_lin *l)
{
    frt_tensor ty = fs_t2(y, rows, l->w.shape[0]);
    frt_tensor tx = fs_t2((float *)x, rows, l->w.shape[1]);
    return frt_linear(be, &ty, &tx, &l->w, &l->b);
}

frt_status fs_conv1d(frt_backend *be, float *y, const float *x, int64_t t, const fs_conv *c,
                     int stride, int padding, int dilation)
{
    int64_t tout = (t + 2 * padding - (int64_t)dilation * (c->k - 1) - 1) / stride + 1;
    frt_tensor ty = fs_t2(y, c->cout, tout);
    frt_tensor tx = fs_t2((float *)x, c->cin, t);
    return frt_conv1d(be, &ty, &tx, &c->w, &c->b, stride, padding, dilation, 1);
}

frt_status fs_conv_same(frt_backend *be, float *y, const float *x, int64_t t, const fs_conv *c,
                        int dilation)
{
    return fs_conv1d(be, y, x, t, c, 1, dilation * (c->k - 1) / 2, dilation);
}

frt_status fs_layernorm(frt_backend *be, float *y, const float *x, int64_t rows, int64_t cols,
                        const float *w, const float *b, float eps)
{
    int64_t n = cols;
    frt_tensor ty = fs_t2(y, rows, cols), tx = fs_t2((float *)x, rows, cols);
    frt_tensor tw = frt_tensor_view((float *)w, FRT_F32, 1, &n);
    frt_tensor tb = frt_tensor_view((float *)b, FRT_F32, 1, &n);
    return frt_layernorm(be, &ty, &tx, &tw, &tb, eps);
}

frt_status fs_act(frt_backend *be, float *y, const float *x, size_t n, frt_act kind)
{
    frt_tensor ty = fs_t2(y, 1, (int64_t)n), tx = fs_t2((float *)x, 1, (int64_t)n);
    return frt_act_apply(be, &ty, &tx, kind);
}

void fs_transpose(float *y, const float *x, int64_t rows, int64_t cols)
{
    /* Tiles keep both the reads and the writes within a few cache lines. */
    enum { B = 32 };
    for (int64_t r0 = 0; r0 < rows; r0 += B)
        for (int64_t c0 = 0; c0 < cols; c0 += B) {
            int64_t r1 = r0 + B < rows ? r0 + B : rows, c1 = c0 + B < cols ? c0 + B : cols;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) y[c * rows + r] = x[r * cols + c];
        }
}

frt_status fs_mha_kv(frt_backend *be, fs_arena *ar, float *y, const float *xq, int64_t nq,
                     const float *k, const float *v, int64_t nk, const fs_attn *a, int heads)
{
    int64_t c = a->q.w.shape[0], d = c / heads;
    size_t mark = ar->used;
    /* no output projection (folded into what follows): y takes the heads */
    const bool proj = a->o.w.data != NULL;
    float *q = fs_take(ar, (size_t)(nq * c)), *o = proj ? fs_take(ar, (size_t)(nq * c)) : y;
    if (!q || !o) return FRT_ERR_INTERNAL;
    FRT_TRY(fs_linear(be, q, xq, nq, &a->q));
    int64_t sq[3] = {nq, heads, d}, sk[3] = {nk, heads, d};
    frt_tensor tq = frt_tensor_view(q, FRT_F32, 3, sq), to = frt_tensor_view(o, FRT_F32, 3, sq);
    frt_tensor tk = frt_tensor_view((float *)k, FRT_F32, 3, sk);
    frt_tensor tv = frt_tensor_view((float *)v, FRT_F32, 3, sk);
    frt_attn_params p = {.scale = (float)(1.0 / sqrt((double)d))};
    FRT_TRY(frt_attention(be, &to, &tq, &tk, &tv, &p));
    if (proj) FRT_TRY(fs_linear(be, y, o, nq, &a->o));
    ar->used = mark;
    return FRT_OK;
}

frt_status fs_mha(frt_backend *be, fs_arena *ar, float *y, const float *xq, int64_t nq,
                  const float *xkv, int64_t nk, const fs_attn *a, int heads)
{
    int64_t c = a->q.w.shape[0];
    size_t mark = ar->used;
    float *k = fs_take(ar, (size_t)(nk * c)), *v = fs_take(ar, (size_t)(nk * c));
    if (!k || !v) return FRT_ERR_INTERNAL;
    FRT_TRY(fs_linear(be, k, xkv, nk, &a->k));
    FRT_TRY(fs_linear(be, v, xkv, nk, &a->v));
    FRT_TRY(fs_mha_kv(be, ar, y, xq, nq, k, v, nk, a, heads));
    ar->used = mark;
    return FRT_OK;
}

void fs_sinusoid(float *pe, const double *pos, int64_t n, int dim)
{
    int half = dim / 2;
    for (int j = 0; j < half; j++) {
        double w = exp(-log(10000.0) * j / half);
        for (int64_t i = 0; i < n; i++) {
            pe[i * dim + j] = (float)sin(pos[i] * w);
            pe[i * dim + half + j] = (float)cos(pos[i] * w);
        }
    }
}
