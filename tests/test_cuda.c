/* CUDA backend: every op against its CPU reference twin (frt_ref_*, double
 * precision) on random inputs, for f32, f16 and bf16 operands.
 *
 * Inputs are rounded to the device dtype on the host first, so the reference
 * sees exactly what the GPU sees and the error left is the kernel's own
 * arithmetic plus the rounding of its output. Tolerances (relative):
 * - element-wise and row ops, per element (floor 1e-2): f32 1e-5, f16 1e-3
 *   (2^-11 output rounding), bf16 8e-3 (2^-8);
 * - linear and attention, relative to the largest |reference| value: f32
 *   output 1e-4 for linear; attention also rounds P to the input dtype
 *   before P V (as FlashAttention does): f16 2e-3, bf16 1.6e-2.
 * Without a GPU (or built with FRT_CUDA=OFF) frt_backend_cuda_create fails
 * with FRT_ERR_DEVICE and every test that needs the device is skipped. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "backend.h"
#include "error.h"
#include "gemm.h"
#include "ops.h"
#include "tensor.h"
#include "testutil.h"

static const frt_dtype float_types[] = {FRT_F32, FRT_F16, FRT_BF16};

static frt_backend *cuda_or_skip(void)
{
    frt_backend *be = NULL;
    frt_status s = frt_backend_cuda_create(0, &be);
    if (s == FRT_ERR_DEVICE) cr_skip_test("no CUDA GPU: %s", frt_last_error());
    cr_assert_eq(s, FRT_OK, "frt_backend_cuda_create: %s", frt_last_error());
    return be;
}

static double tol_elem(frt_dtype t)
{
    return t == FRT_F32 ? 1e-5 : t == FRT_F16 ? 1e-3 : 8e-3;
}

static float round_to(frt_dtype t, float x)
{
    if (t == FRT_F16) return frt_f16_to_f32(frt_f32_to_f16(x));
    if (t == FRT_BF16) return frt_bf16_to_f32(frt_f32_to_bf16(x));
    return x;
}

static void round_all(frt_dtype t, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = round_to(t, x[i]);
}

/* Host f32 values as raw dtype bits (malloc'ed). */
static void *to_bits(frt_dtype t, const float *x, size_t n)
{
    void *out = malloc(n * frt_dtype_size(t) + 1);
    cr_assert(out);
    for (size_t i = 0; i < n; i++) {
        if (t == FRT_F32)
            ((float *)out)[i] = x[i];
        else if (t == FRT_F16)
            ((uint16_t *)out)[i] = frt_f32_to_f16(x[i]);
        else
            ((uint16_t *)out)[i] = frt_f32_to_bf16(x[i]);
    }
    return out;
}

static void dev_alloc(frt_backend *be, frt_tensor *t, frt_dtype dt, int ndim, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    cr_assert_eq(be->ops->alloc(be, t), FRT_OK, "alloc: %s", frt_last_error());
}

/* Allocate on the device and upload x (rounded to dt in place first). */
static void dev_put(frt_backend *be, frt_tensor *t, frt_dtype dt, int ndim, const int64_t *shape,
                    float *x)
{
    dev_alloc(be, t, dt, ndim, shape);
    size_t n = (size_t)frt_tensor_numel(t);
    round_all(dt, x, n);
    void *bits = to_bits(dt, x, n);
    cr_assert_eq(be->ops->upload(be, t, bits, n * frt_dtype_size(dt)), FRT_OK, "upload: %s",
                 frt_last_error());
    free(bits);
}

/* Fill a device tensor with NaN so elements the op forgets to write show. */
static void dev_poison(frt_backend *be, frt_tensor *t)
{
    size_t n = (size_t)frt_tensor_numel(t);
    float *nan = malloc(n * sizeof(float) + 1);
    cr_assert(nan);
    tu_poison(nan, n);
    void *bits = to_bits(t->dtype, nan, n);
    cr_assert_eq(be->ops->upload(be, t, bits, n * frt_dtype_size(t->dtype)), FRT_OK);
    free(bits);
    free(nan);
}

static void dev_get(frt_backend *be, const frt_tensor *t, float *out)
{
    size_t n = (size_t)frt_tensor_numel(t);
    size_t bytes = n * frt_dtype_size(t->dtype);
    void *bits = malloc(bytes + 1);
    cr_assert(bits);
    cr_assert_eq(be->ops->download(be, bits, t, bytes), FRT_OK, "download: %s", frt_last_error());
    frt_to_f32_row(t->dtype, bits, out, n);
    free(bits);
}

static float *rand_buf(tu_rng *r, size_t n, float lo, float hi)
{
    float *x = malloc(n * sizeof(float) + 1);
    cr_assert(x);
    tu_fill_uniform(r, x, n, lo, hi);
    return x;
}

static double max_abs(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

Test(cuda, create_reports_missing_device)
{
    frt_backend *be = (frt_backend *)1;
    frt_status s = frt_backend_cuda_create(0, &be);
    if (s != FRT_OK) {
        /* The only acceptable failure, with a message that says why. */
        cr_assert_eq(s, FRT_ERR_DEVICE, "%s: %s", frt_status_name(s), frt_last_error());
        cr_assert_null(be);
        cr_assert(strlen(frt_last_error()) > 0);
        return;
    }
    cr_assert_str_eq(be->ops->name, "cuda");
    frt_backend *none = (frt_backend *)1;
    cr_assert_eq(frt_backend_cuda_create(1 << 20, &none), FRT_ERR_DEVICE);
    cr_assert_null(none);
    cr_assert(strstr(frt_last_error(), "does not exist"));

    /* Round trip through device memory. */
    frt_tensor t;
    int64_t shape[2] = {3, 5};
    dev_alloc(be, &t, FRT_F32, 2, shape);
    cr_assert_eq(t.device, FRT_DEVICE_CUDA);
    float in[15], out[15];
    for (int i = 0; i < 15; i++) in[i] = (float)i * 0.5f - 3.0f;
    cr_assert_eq(be->ops->upload(be, &t, in, sizeof in), FRT_OK);
    cr_assert_eq(be->ops->download(be, out, &t, sizeof out), FRT_OK);
    cr_assert_eq(memcmp(in, out, sizeof in), 0);
    cr_assert_eq(be->ops->upload(be, &t, in, sizeof in + 4), FRT_ERR_INVALID_ARG);
    cr_assert_eq(be->ops->synchronize(be), FRT_OK);
    be->ops->free(be, &t);
    cr_assert_null(t.data);
    frt_backend_free(be);
}

Test(cuda, bad_arguments)
{
    frt_backend *be = cuda_or_skip();
    frt_tensor a, b, y;
    int64_t s34[2] = {3, 4}, s5[1] = {5};
    dev_alloc(be, &a, FRT_F32, 2, s34);
    dev_alloc(be, &b, FRT_F32, 1, s5);
    dev_alloc(be, &y, FRT_F32, 2, s34);
    cr_assert_eq(frt_add(be, &y, &a, &b), FRT_ERR_INVALID_ARG);
    cr_assert(strstr(frt_last_error(), "add"));
    cr_assert_eq(frt_rmsnorm(be, &y, &a, &b, 1e-6f), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_linear(be, &y, &a, &b, NULL), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_conv1d(be, &y, &a, &a, NULL, 1, 0, 1, 1), FRT_ERR_UNSUPPORTED);
    /* A host tensor handed to a device op. */
    float host[12] = {0};
    frt_tensor h = frt_tensor_view(host, FRT_F32, 2, s34);
    cr_assert_eq(frt_scale(be, &y, &h, 2.0f), FRT_ERR_INVALID_ARG);
    cr_assert(strstr(frt_last_error(), "not on the CUDA device"));

    /* Attention: head dim 80 and f32 K/V are not supported on the GPU. */
    frt_tensor q, k;
    int64_t s80[3] = {2, 1, 80}, s64[3] = {2, 1, 64};
    dev_alloc(be, &q, FRT_F16, 3, s80);
    frt_attn_params p = {.scale = 0.1f};
    cr_assert_eq(frt_attention(be, &q, &q, &q, &q, &p), FRT_ERR_UNSUPPORTED);
    be->ops->free(be, &q);
    dev_alloc(be, &q, FRT_F16, 3, s64);
    dev_alloc(be, &k, FRT_F32, 3, s64);
    cr_assert_eq(frt_attention(be, &q, &q, &k, &k, &p), FRT_ERR_UNSUPPORTED);
    /* kv_len past the 2 keys there are */
    p.kv_len = 3;
    cr_assert_eq(frt_attention(be, &q, &q, &q, &q, &p), FRT_ERR_INVALID_ARG);
    frt_tensor *all[] = {&a, &b, &y, &q, &k};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) be->ops->free(be, all[i]);
    frt_backend_free(be);
}

Test(cuda, add_mul_scale)
{
    frt_backend *be = cuda_or_skip();
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    const int64_t rows = 37, cols = 333, n = rows * cols;
    int64_t shape[2] = {rows, cols}, bshape[1] = {cols};
    for (size_t ti = 0; ti < 3; ti++) {
        frt_dtype dt = float_types[ti];
        for (int bcast = 0; bcast < 2; bcast++) {
            int64_t bn = bcast ? cols : n;
            float *ha = rand_buf(&r, (size_t)n, -2, 2), *hb = rand_buf(&r, (size_t)bn, -2, 2);
            float *out = malloc(sizeof(float) * (size_t)n),
                  *ref = malloc(sizeof(float) * (size_t)n);
            frt_tensor a, b, y;
            dev_put(be, &a, dt, 2, shape, ha);
            /* b stays f32 to exercise mixed dtypes. */
            dev_put(be, &b, FRT_F32, bcast ? 1 : 2, bcast ? bshape : shape, hb);
            dev_alloc(be, &y, dt, 2, shape);
            for (int op = 0; op < 3; op++) {
                dev_poison(be, &y);
                frt_status s = op == 0   ? frt_add(be, &y, &a, &b)
                               : op == 1 ? frt_mul(be, &y, &a, &b)
                                         : frt_scale(be, &y, &a, -1.75f);
                cr_assert_eq(s, FRT_OK, "%s", frt_last_error());
                dev_get(be, &y, out);
                if (op == 0) frt_ref_add(ref, ha, hb, n, bn);
                if (op == 1) frt_ref_mul(ref, ha, hb, n, bn);
                if (op == 2) frt_ref_scale(ref, ha, -1.75f, n);
                double e = tu_max_rel_err(out, ref, (size_t)n, 1e-2);
                cr_assert(e <= tol_elem(dt), "op %d dtype %s bcast %d: err %g", op,
                          frt_dtype_name(dt), bcast, e);
            }
            /* In place: y aliases a. */
            cr_assert_eq(frt_add(be, &a, &a, &b), FRT_OK);
            dev_get(be, &a, out);
            frt_ref_add(ref, ha, hb, n, bn);
            cr_assert(tu_max_rel_err(out, ref, (size_t)n, 1e-2) <= tol_elem(dt));
            be->ops->free(be, &a);
            be->ops->free(be, &b);
            be->ops->free(be, &y);
            free(ha);
            free(hb);
            free(out);
            free(ref);
        }
    }
    frt_backend_free(be);
}

Test(cuda, activations)
{
    frt_backend *be = cuda_or_skip();
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    const int64_t n = 4099;
    int64_t shape[1] = {n};
    float *hx = rand_buf(&r, (size_t)n, -8, 8);
    /* Far tails too: exp overflow in softplus / sigmoid must not give NaN. */
    hx[0] = -100.0f;
    hx[1] = 100.0f;
    hx[2] = 0.0f;
    float *out = malloc(sizeof(float) * (size_t)n), *ref = malloc(sizeof(float) * (size_t)n);
    for (size_t ti = 0; ti < 3; ti++) {
        frt_dtype dt = float_types[ti];
        frt_tensor x, y;
        float *xc = malloc(sizeof(float) * (size_t)n);
        memcpy(xc, hx, sizeof(float) * (size_t)n);
        dev_put(be, &x, dt, 1, shape, xc);
        dev_alloc(be, &y, dt, 1, shape);
        for (int k = 0; k < FRT_ACT_COUNT; k++) {
            dev_poison(be, &y);
            cr_assert_eq(frt_act_apply(be, &y, &x, (frt_act)k), FRT_OK, "%s", frt_last_error());
            dev_get(be, &y, out);
            frt_ref_act(ref, xc, n, (frt_act)k);
            double e = tu_max_rel_err(out, ref, (size_t)n, 1e-2);
            cr_assert(e <= tol_elem(dt) + 2e-6, "act %d dtype %s: err %g", k, frt_dtype_name(dt),
                      e);
        }
        be->ops->free(be, &x);
        be->ops->free(be, &y);
        free(xc);
    }
    free(hx);
    free(out);
    free(ref);
    frt_backend_free(be);
}

Test(cuda, norms_and_softmax)
{
    frt_backend *be = cuda_or_skip();
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    const int64_t dims[][2] = {{19, 1000}, {3, 4097}, {70, 7}};
    for (size_t di = 0; di < 3; di++) {
        int64_t rows = dims[di][0], cols = dims[di][1], n = rows * cols;
        int64_t shape[2] = {rows, cols}, vshape[1] = {cols};
        for (size_t ti = 0; ti < 3; ti++) {
            frt_dtype dt = float_types[ti];
            float *hx = rand_buf(&r, (size_t)n, -3, 5), *hw = rand_buf(&r, (size_t)cols, 0.5, 1.5);
            float *hb = rand_buf(&r, (size_t)cols, -1, 1);
            float *out = malloc(sizeof(float) * (size_t)n),
                  *ref = malloc(sizeof(float) * (size_t)n);
            frt_tensor x, w, b, y;
            dev_put(be, &x, dt, 2, shape, hx);
            dev_put(be, &w, dt, 1, vshape, hw);
            dev_put(be, &b, FRT_F32, 1, vshape, hb);
            dev_alloc(be, &y, dt, 2, shape);
            for (int op = 0; op < 4; op++) {
                dev_poison(be, &y);
                frt_status s;
                if (op == 0) {
                    s = frt_rmsnorm(be, &y, &x, &w, 1e-6f);
                    frt_ref_rmsnorm(ref, hx, hw, rows, cols, 1e-6f);
                } else if (op == 1) {
                    s = frt_layernorm(be, &y, &x, &w, &b, 1e-5f);
                    frt_ref_layernorm(ref, hx, hw, hb, rows, cols, 1e-5f);
                } else if (op == 2) {
                    s = frt_layernorm(be, &y, &x, &w, NULL, 1e-5f);
                    frt_ref_layernorm(ref, hx, hw, NULL, rows, cols, 1e-5f);
                } else {
                    s = frt_softmax(be, &y, &x);
                    frt_ref_softmax(ref, hx, rows, cols);
                }
                cr_assert_eq(s, FRT_OK, "%s", frt_last_error());
                dev_get(be, &y, out);
                /* softmax outputs are ~1/cols: compare against their own scale,
                 * but not below f16's smallest normal (6.1e-5): under it an f16
                 * output keeps only 2^-25 absolute precision (first GPU run:
                 * err 3e-3 at the 1e-5 floor of 1000 columns). */
                double floor = op == 3 ? 1e-2 / (double)cols : 1e-2;
                if (op == 3 && dt == FRT_F16 && floor < 6.1e-5) floor = 6.1e-5;
                double e = tu_max_rel_err(out, ref, (size_t)n, floor);
                cr_assert(e <= 2 * tol_elem(dt), "op %d %lldx%lld dtype %s: err %g", op,
                          (long long)rows, (long long)cols, frt_dtype_name(dt), e);
            }
            frt_tensor *all[] = {&x, &w, &b, &y};
            for (size_t i = 0; i < 4; i++) be->ops->free(be, all[i]);
            free(hx);
            free(hw);
            free(hb);
            free(out);
            free(ref);
        }
    }
    frt_backend_free(be);
}

Test(cuda, rope)
{
    frt_backend *be = cuda_or_skip();
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    const int64_t T = 13, H = 5;
    for (int64_t d = 64; d <= 128; d += 64) {
        for (size_t ti = 0; ti < 3; ti++) {
            frt_dtype dt = float_types[ti];
            /* x is the q part of a fused [T, 3H, d] qkv buffer: strided rows. */
            int64_t full[3] = {T, 3 * H, d}, n = T * 3 * H * d;
            float *hx = rand_buf(&r, (size_t)n, -2, 2), *out = malloc(sizeof(float) * (size_t)n);
            frt_tensor buf;
            dev_put(be, &buf, dt, 3, full, hx);
            frt_tensor x = buf;
            x.shape[1] = H;
            x.owns_data = false;
            const int64_t pos0 = d == 64 ? 0 : 4000;
            cr_assert_eq(frt_rope(be, &x, pos0, 10000.0f, d == 64 ? 4.0f : 1.0f), FRT_OK, "%s",
                         frt_last_error());
            dev_get(be, &buf, out);
            frt_ref_rope(hx, T, H, d, 3 * H * d, d, pos0, 10000.0f, d == 64 ? 4.0f : 1.0f);
            /* hx was rounded to dt by dev_put: the k and v parts must come back as they were. */
            double e = tu_max_rel_err(out, hx, (size_t)n, 1e-2);
            cr_assert(e <= tol_elem(dt) + 1e-5, "d %lld dtype %s: err %g", (long long)d,
                      frt_dtype_name(dt), e);
            be->ops->free(be, &buf);
            free(hx);
            free(out);
        }
    }
    frt_backend_free(be);
}

static void check_linear(frt_backend *be, tu_rng *r, int64_t M, int64_t K, int64_t N, frt_dtype wt,
                         frt_dtype xt, frt_dtype yt, bool bias)
{
    int64_t xs[2] = {M, K}, ws[2] = {N, K}, ys[2] = {M, N}, bs[1] = {N};
    float *hx = rand_buf(r, (size_t)(M * K), -1, 1), *hw = rand_buf(r, (size_t)(N * K), -1, 1);
    float *hb = rand_buf(r, (size_t)N, -1, 1);
    float *out = malloc(sizeof(float) * (size_t)(M * N)),
          *ref = malloc(sizeof(float) * (size_t)(M * N));
    frt_tensor x, w, b, y;
    dev_put(be, &x, xt, 2, xs, hx);
    dev_put(be, &w, wt, 2, ws, hw);
    dev_put(be, &b, FRT_F32, 1, bs, hb);
    dev_alloc(be, &y, yt, 2, ys);
    dev_poison(be, &y);
    cr_assert_eq(frt_linear(be, &y, &x, &w, bias ? &b : NULL), FRT_OK, "%s", frt_last_error());
    dev_get(be, &y, out);
    /* The GPU multiplies x converted to the weights' dtype. */
    round_all(wt, hx, (size_t)(M * K));
    void *wbits = to_bits(wt, hw, (size_t)(N * K));
    frt_gemm_args g = {.M = M,
                       .N = N,
                       .K = K,
                       .x = hx,
                       .ldx = K,
                       .w = wbits,
                       .wtype = wt,
                       .ldw = K,
                       .bias = bias ? hb : NULL,
                       .y = ref,
                       .ldy = N};
    frt_ref_gemm(&g);
    double tol = yt == FRT_F32 ? 1e-4 : tol_elem(yt);
    double e = tu_max_rel_err(out, ref, (size_t)(M * N), max_abs(ref, (size_t)(M * N)));
    cr_assert(e <= tol, "linear M %lld K %lld N %lld w %s x %s y %s bias %d: err %g", (long long)M,
              (long long)K, (long long)N, frt_dtype_name(wt), frt_dtype_name(xt),
              frt_dtype_name(yt), bias, e);
    frt_tensor *all[] = {&x, &w, &b, &y};
    for (size_t i = 0; i < 4; i++) be->ops->free(be, all[i]);
    free(wbits);
    free(hx);
    free(hw);
    free(hb);
    free(out);
    free(ref);
}

Test(cuda, linear)
{
    frt_backend *be = cuda_or_skip();
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    const int64_t sizes[][3] = {{1, 256, 129}, {7, 301, 65}, {65, 128, 384}};
    for (size_t si = 0; si < 3; si++) {
        for (size_t ti = 0; ti < 3; ti++) {
            frt_dtype wt = float_types[ti];
            int64_t M = sizes[si][0], K = sizes[si][1], N = sizes[si][2];
            /* x in the weights' dtype and in f32 (converted on the GPU);
             * y in f32 and in the weights' dtype. */
            check_linear(be, &r, M, K, N, wt, wt, FRT_F32, si != 1);
            check_linear(be, &r, M, K, N, wt, FRT_F32, wt, si != 0);
        }
    }
    frt_backend_free(be);
}

typedef struct attn_case {
    int64_t nq, nk, h, h_kv, d;
    bool causal;
    int64_t q_pos0, kv_len;
    bool mask, q_f32, o_f32, misaligned;
} attn_case;

static void check_attention(frt_backend *be, tu_rng *r, frt_dtype dt, const attn_case *c)
{
    const int64_t nq = c->nq, nk = c->nk, h = c->h, hk = c->h_kv, d = c->d;
    size_t nqe = (size_t)(nq * h * d), nke = (size_t)(nk * hk * d);
    float *hq = malloc(sizeof(float) * nqe), *hk_ = malloc(sizeof(float) * nke),
          *hv = malloc(sizeof(float) * nke);
    for (size_t i = 0; i < nqe; i++) hq[i] = tu_normal(r);
    for (size_t i = 0; i < nke; i++) hk_[i] = tu_normal(r);
    tu_fill_uniform(r, hv, nke, -1, 1);
    /* Rounded to dt even when uploaded as f32: the flash kernel multiplies
     * Q in dt on the tensor cores. */
    round_all(dt, hq, nqe);

    frt_tensor q, kbuf, vbuf, o, mask = {0};
    int64_t qs[3] = {nq, h, d}, os[3] = {nq, h, d};
    dev_put(be, &q, c->q_f32 ? FRT_F32 : dt, 3, qs, hq);
    /* K and V as views into larger buffers: offset by one element when
     * misaligned (no 16-byte loads), else with one spare token row. */
    int64_t kvs[1] = {(int64_t)nke + d * hk};
    float *pad_k = calloc(nke + (size_t)(d * hk), sizeof(float)),
          *pad_v = calloc(nke + (size_t)(d * hk), sizeof(float));
    int64_t off = c->misaligned ? 1 : d * hk;
    memcpy(pad_k + off, hk_, sizeof(float) * nke);
    memcpy(pad_v + off, hv, sizeof(float) * nke);
    dev_put(be, &kbuf, dt, 1, kvs, pad_k);
    dev_put(be, &vbuf, dt, 1, kvs, pad_v);
    memcpy(hk_, pad_k + off, sizeof(float) * nke);
    memcpy(hv, pad_v + off, sizeof(float) * nke);
    int64_t kshape[3] = {nk, hk, d};
    frt_tensor k =
        frt_tensor_view((char *)kbuf.data + off * (int64_t)frt_dtype_size(dt), dt, 3, kshape);
    frt_tensor v =
        frt_tensor_view((char *)vbuf.data + off * (int64_t)frt_dtype_size(dt), dt, 3, kshape);
    k.device = v.device = FRT_DEVICE_CUDA;
    dev_alloc(be, &o, c->o_f32 ? FRT_F32 : dt, 3, os);
    dev_poison(be, &o);

    float *hmask = NULL;
    frt_attn_params p = {.scale = 1.0f / sqrtf((float)d),
                         .causal = c->causal,
                         .q_pos0 = c->q_pos0,
                         .kv_len = c->kv_len};
    if (c->mask) {
        int64_t ms[2] = {nq, nk};
        hmask = rand_buf(r, (size_t)(nq * nk), -2, 1);
        /* Some keys blocked outright, and one row with every key blocked. */
        for (int64_t i = 0; i < nq * nk; i += 7) hmask[i] = -INFINITY;
        for (int64_t j = 0; j < nk; j++) hmask[(nq / 2) * nk + j] = -INFINITY;
        dev_put(be, &mask, FRT_F32, 2, ms, hmask);
        p.mask = mask.data;
        p.mask_stride = nk;
    }
    cr_assert_eq(frt_attention(be, &o, &q, &k, &v, &p), FRT_OK, "%s", frt_last_error());
    float *out = malloc(sizeof(float) * nqe), *ref = malloc(sizeof(float) * nqe);
    dev_get(be, &o, out);

    void *kb = to_bits(dt, hk_, nke), *vb = to_bits(dt, hv, nke);
    frt_attn_args a = {.nq = nq,
                       .nk = nk,
                       .h = h,
                       .h_kv = hk,
                       .d = d,
                       .q = hq,
                       .q_st = h * d,
                       .q_sh = d,
                       .k = kb,
                       .k_st = hk * d,
                       .k_sh = d,
                       .v = vb,
                       .v_st = hk * d,
                       .v_sh = d,
                       .kv_dtype = dt,
                       .o = ref,
                       .o_st = h * d,
                       .o_sh = d,
                       .p = p};
    a.p.mask = hmask;
    cr_assert_eq(frt_ref_attn(&a), FRT_OK, "%s", frt_last_error());
    double tol = dt == FRT_F16 ? 2e-3 : 1.6e-2;
    double e = tu_max_rel_err(out, ref, nqe, fmax(max_abs(ref, nqe), 1e-3));
    cr_assert(e <= tol,
              "attention %s nq %lld nk %lld h %lld/%lld d %lld causal %d pos0 %lld kv_len %lld "
              "mask %d: err %g",
              frt_dtype_name(dt), (long long)nq, (long long)nk, (long long)h, (long long)hk,
              (long long)d, c->causal, (long long)c->q_pos0, (long long)c->kv_len, c->mask, e);
    if (c->mask) {
        /* The fully blocked row is zero. */
        for (int64_t i = 0; i < h * d; i++) cr_assert_eq(out[(nq / 2) * h * d + i], 0.0f);
        be->ops->free(be, &mask);
    }
    be->ops->free(be, &q);
    be->ops->free(be, &kbuf);
    be->ops->free(be, &vbuf);
    be->ops->free(be, &o);
    free(kb);
    free(vb);
    free(pad_k);
    free(pad_v);
    free(hq);
    free(hk_);
    free(hv);
    free(hmask);
    free(out);
    free(ref);
}

static const attn_case prefill_cases[] = {
    /* self-attention prefill, causal, GQA 4:2 */
    {.nq = 100, .nk = 100, .h = 4, .h_kv = 2, .d = 64, .causal = true},
    {.nq = 100, .nk = 100, .h = 4, .h_kv = 2, .d = 128, .causal = true, .o_f32 = true},
    /* chunked prefill: 70 new tokens after 230 cached */
    {.nq = 70,
     .nk = 300,
     .h = 2,
     .h_kv = 1,
     .d = 128,
     .causal = true,
     .q_pos0 = 230,
     .q_f32 = true},
    /* encoder style: no causality, additive mask, padding past kv_len */
    {.nq = 33, .nk = 150, .h = 3, .h_kv = 3, .d = 64, .kv_len = 140, .mask = true, .o_f32 = true},
    /* K/V rows not 16-byte aligned: the element-wise load path */
    {.nq = 40,
     .nk = 90,
     .h = 2,
     .h_kv = 2,
     .d = 64,
     .causal = true,
     .q_pos0 = 50,
     .misaligned = true},
};

static const attn_case decode_cases[] = {
    /* one new token against a long cache, MQA-ish 8:2 */
    {.nq = 1, .nk = 1500, .h = 8, .h_kv = 2, .d = 128, .causal = true, .q_pos0 = 1499},
    {.nq = 1,
     .nk = 777,
     .h = 4,
     .h_kv = 4,
     .d = 64,
     .causal = true,
     .q_pos0 = 776,
     .o_f32 = true,
     .q_f32 = true},
    /* three tokens (speculative decode), cache padded past kv_len */
    {.nq = 3,
     .nk = 1024,
     .h = 4,
     .h_kv = 1,
     .d = 128,
     .causal = true,
     .q_pos0 = 600,
     .kv_len = 603},
    {.nq = 2, .nk = 300, .h = 2, .h_kv = 1, .d = 64, .mask = true, .misaligned = true},
};

Test(cuda, flash_attention)
{
    frt_backend *be = cuda_or_skip();
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    for (size_t i = 0; i < sizeof prefill_cases / sizeof *prefill_cases; i++) {
        check_attention(be, &r, FRT_F16, &prefill_cases[i]);
        check_attention(be, &r, FRT_BF16, &prefill_cases[i]);
    }
    frt_backend_free(be);
}

Test(cuda, decode_attention)
{
    frt_backend *be = cuda_or_skip();
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    for (size_t i = 0; i < sizeof decode_cases / sizeof *decode_cases; i++) {
        check_attention(be, &r, FRT_F16, &decode_cases[i]);
        check_attention(be, &r, FRT_BF16, &decode_cases[i]);
    }
    frt_backend_free(be);
}
