/* CUDA backend benchmark (run on a GPU machine by tools/cuda-check/run.sh):
 * flash attention (f16/bf16, d 64/128, causal and not) as TFLOP/s, split-KV
 * decode attention as GB/s of KV bytes against the device-to-device copy
 * bandwidth measured in the same run, and linear (cuBLAS) as TFLOP/s.
 * Prints one JSON object per line; torch_sdpa.py measures PyTorch's
 * scaled_dot_product_attention on the same shapes for the ratio. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "error.h"
#include "tensor.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define CHECK(x)                                                                                \
    do {                                                                                        \
        if ((x) != FRT_OK) {                                                                    \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, frt_last_error());               \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static void dev_tensor(frt_backend *be, frt_tensor *t, frt_dtype dt, int ndim, const int64_t *shape)
{
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    CHECK(be->ops->alloc(be, t));
    size_t n = (size_t)frt_tensor_numel(t), es = frt_dtype_size(dt);
    unsigned char *host = malloc(n * es);
    uint32_t s = 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float x = ((float)(s >> 8) / 16777216.0f - 0.5f);
        if (dt == FRT_F32)
            memcpy(host + i * 4, &x, 4);
        else {
            uint16_t b = dt == FRT_F16 ? frt_f32_to_f16(x) : frt_f32_to_bf16(x);
            memcpy(host + i * 2, &b, 2);
        }
    }
    CHECK(be->ops->upload(be, t, host, n * es));
    free(host);
}

/* Seconds per call: warm up, then repeat until >= 0.2 s. */
typedef frt_status (*call_fn)(void *ctx);
static double time_call(frt_backend *be, call_fn f, void *ctx)
{
    for (int i = 0; i < 3; i++) CHECK(f(ctx));
    CHECK(be->ops->synchronize(be));
    int reps = 0;
    double t0 = now(), t;
    do {
        CHECK(f(ctx));
        reps++;
        if (reps % 4 == 0) CHECK(be->ops->synchronize(be));
        t = now() - t0;
    } while (reps < 8 || t < 0.2);
    CHECK(be->ops->synchronize(be));
    return (now() - t0) / reps;
}

typedef struct {
    frt_backend *be;
    frt_tensor o, q, k, v, x, w, y;
    frt_attn_params p;
} ctx_t;

static frt_status call_attn(void *c_)
{
    ctx_t *c = c_;
    return c->be->ops->attention(c->be, &c->o, &c->q, &c->k, &c->v, &c->p);
}
static frt_status call_linear(void *c_)
{
    ctx_t *c = c_;
    return c->be->ops->linear(c->be, &c->y, &c->x, &c->w, NULL);
}

static double copy_bandwidth(void)
{
    size_t bytes = (size_t)1 << 30;
    void *a, *b;
    if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
    cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaDeviceSynchronize();
    double t0 = now();
    for (int i = 0; i < 10; i++) cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
    cudaDeviceSynchronize();
    double t = (now() - t0) / 10;
    cudaFree(a);
    cudaFree(b);
    return 2.0 * (double)bytes / t / 1e9; /* read + write */
}

int main(int argc, char **argv)
{
    /* optional argument: only this section (flash, decode or linear) */
    const char *only = argc > 1 ? argv[1] : NULL;
#define SECTION(name) (!only || !strcmp(only, name))
    frt_backend *be;
    CHECK(frt_backend_cuda_create(0, &be));
    ctx_t c = {.be = be};
    const int H = 16;
    const frt_dtype dts[2] = {FRT_F16, FRT_BF16};
    for (int di = 0; di < 2 && SECTION("flash"); di++)
        for (int dd = 64; dd <= 128; dd += 64)
            for (int64_t n = 1024; n <= 16384; n *= 2)
                for (int causal = 0; causal < 2; causal++) {
                    int64_t qs[3] = {n, H, dd};
                    dev_tensor(be, &c.q, dts[di], 3, qs);
                    dev_tensor(be, &c.k, dts[di], 3, qs);
                    dev_tensor(be, &c.v, dts[di], 3, qs);
                    dev_tensor(be, &c.o, dts[di], 3, qs);
                    c.p = (frt_attn_params){.scale = 1.0f / sqrtf((float)dd), .causal = causal};
                    double s = time_call(be, call_attn, &c);
                    double flops = 4.0 * (double)n * (double)n * dd * H * (causal ? 0.5 : 1.0);
                    printf("{\"case\": \"cuda flash %s d%d n%lld %s\", \"ms\": %.4f, \"tflops\": "
                           "%.2f}\n",
                           frt_dtype_name(dts[di]), dd, (long long)n,
                           causal ? "causal" : "noncausal", s * 1e3, flops / s / 1e12);
                    be->ops->free(be, &c.q);
                    be->ops->free(be, &c.k);
                    be->ops->free(be, &c.v);
                    be->ops->free(be, &c.o);
                }
    double bw = copy_bandwidth();
    printf("{\"case\": \"cuda d2d copy\", \"gbps\": %.1f}\n", bw);
    for (int64_t kv = 1024; kv <= 65536 && SECTION("decode"); kv *= 4) {
        const int h = 32, d = 128;
        int64_t qs[3] = {1, h, d}, ks[3] = {kv, h, d};
        dev_tensor(be, &c.q, FRT_F16, 3, qs);
        dev_tensor(be, &c.o, FRT_F16, 3, qs);
        dev_tensor(be, &c.k, FRT_F16, 3, ks);
        dev_tensor(be, &c.v, FRT_F16, 3, ks);
        c.p = (frt_attn_params){.scale = 1.0f / sqrtf((float)d)};
        double s = time_call(be, call_attn, &c);
        double bytes = 2.0 * (double)kv * h * d * 2;
        printf("{\"case\": \"cuda decode F16 kv%lld\", \"ms\": %.4f, \"gbps\": %.1f, \"ratio\": "
               "%.3f}\n",
               (long long)kv, s * 1e3, bytes / s / 1e9, bw > 0 ? bytes / s / 1e9 / bw : 0.0);
        be->ops->free(be, &c.q);
        be->ops->free(be, &c.o);
        be->ops->free(be, &c.k);
        be->ops->free(be, &c.v);
    }
    for (int wi = 0; wi < 2 && SECTION("linear"); wi++) {
        int64_t M = 4096, K = 4096, N = 4096;
        int64_t xs[2] = {M, K}, ws[2] = {N, K}, ys[2] = {M, N};
        dev_tensor(be, &c.x, FRT_F32, 2, xs);
        dev_tensor(be, &c.w, dts[wi], 2, ws);
        dev_tensor(be, &c.y, FRT_F32, 2, ys);
        double s = time_call(be, call_linear, &c);
        printf("{\"case\": \"cuda linear f32 x %s w %lldx%lldx%lld\", \"ms\": %.4f, \"tflops\": "
               "%.2f}\n",
               frt_dtype_name(dts[wi]), (long long)M, (long long)K, (long long)N, s * 1e3,
               2.0 * M * K * N / s / 1e12);
        be->ops->free(be, &c.x);
        be->ops->free(be, &c.w);
        be->ops->free(be, &c.y);
    }
    frt_backend_free(be);
    return 0;
}
