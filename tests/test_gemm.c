/* CPU GEMM: the packed and small-M paths on every ISA against the naive
 * double-accumulating twin, over odd shapes, every weight dtype, bias /
 * accumulate / leading-dimension variants, 1 and several threads; and the
 * argument checks.
 *
 * Error measure: per output, |y - ref| / (sum_k |x_k w_k| + |bias| + |y0|),
 * which cancellation cannot inflate. f32 and f16 weights (f16 widens
 * exactly) allow 1e-5. The AVX512_BF16 kernel rounds x to bf16 (round to
 * nearest even, relative error <= 2^-8) and multiplies exactly in f32, so
 * its error against the exact product is at most 2^-8 * sum_k |x_k w_k|
 * plus the f32 accumulation error; that bound is checked, and, since it is
 * too loose to catch a lost term, the result must also match (1e-5) either
 * the reference with x rounded to bf16 first or the exact one (the small-M
 * path and the other ISAs do not round x). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cpu.h"
#include "error.h"
#include "gemm.h"
#include "tensor.h"
#include "testutil.h"
#include "threadpool.h"

#define TOL    1e-5
#define BF16_U 0x1p-8

typedef struct {
    int64_t M, N, K;
    frt_dtype wtype;
    bool bias, accumulate, pad;
} gemm_case;

/* Relative errors of y against ref over the M x N outputs, scaled by mag. */
static double max_err(const float *y, const float *ref, const double *mag, int64_t M, int64_t N,
                      int64_t ldy)
{
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) {
            double e = fabs((double)y[i * ldy + n] - ref[i * ldy + n]) / (mag[i * N + n] + 1e-30);
            if (!(e <= worst)) worst = e; /* NaN (an unwritten output) wins */
        }
    return worst;
}

static float w_value(const void *w, frt_dtype t, int64_t i)
{
    if (t == FRT_F16) return frt_f16_to_f32(((const uint16_t *)w)[i]);
    if (t == FRT_BF16) return frt_bf16_to_f32(((const uint16_t *)w)[i]);
    return ((const float *)w)[i];
}

static void run_case(const gemm_case *c, frt_pool *pool, tu_rng *r)
{
    const frt_cpu_info *cpu = frt_cpu();
    int64_t M = c->M, N = c->N, K = c->K;
    int64_t ldx = K + (c->pad ? 3 : 0), ldw = K + (c->pad ? 5 : 0), ldy = N + (c->pad ? 2 : 0);
    size_t esz = frt_dtype_size(c->wtype);
    float *x = malloc(sizeof(float) * (size_t)(M * ldx + 1));
    float *xr = malloc(sizeof(float) * (size_t)(M * ldx + 1));
    void *w = malloc(esz * (size_t)(N * ldw + 1));
    float *bias = c->bias ? malloc(sizeof(float) * (size_t)N) : NULL;
    float *y = malloc(sizeof(float) * (size_t)(M * ldy + 1));
    float *ref = malloc(sizeof(float) * (size_t)(M * ldy + 1));
    float *refr = malloc(sizeof(float) * (size_t)(M * ldy + 1));
    double *mag = malloc(sizeof(double) * (size_t)(M * N + 1));
    tu_fill_uniform(r, x, (size_t)(M * ldx), -1.0f, 1.0f);
    for (int64_t i = 0; i < N * ldw; i++) {
        float v = tu_uniform(r, -1.0f, 1.0f);
        if (c->wtype == FRT_F32) ((float *)w)[i] = v;
        if (c->wtype == FRT_F16) ((uint16_t *)w)[i] = frt_f32_to_f16(v);
        if (c->wtype == FRT_BF16) ((uint16_t *)w)[i] = frt_f32_to_bf16(v);
    }
    if (bias) tu_fill_uniform(r, bias, (size_t)N, -1.0f, 1.0f);
    /* padding columns of y hold a sentinel that must survive */
    for (int64_t i = 0; i < M * ldy; i++) y[i] = (i % ldy) < N ? tu_uniform(r, -1, 1) : 1234.5f;
    if (!c->accumulate)
        for (int64_t i = 0; i < M; i++) tu_poison(y + i * ldy, (size_t)N);
    memcpy(ref, y, sizeof(float) * (size_t)(M * ldy));
    memcpy(refr, y, sizeof(float) * (size_t)(M * ldy));
    for (int64_t i = 0; i < M * ldx; i++) xr[i] = frt_bf16_to_f32(frt_f32_to_bf16(x[i]));
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) {
            double s = (bias ? fabs(bias[n]) : 0) + (c->accumulate ? fabs(y[i * ldy + n]) : 0);
            for (int64_t k = 0; k < K; k++)
                s += fabs(x[i * ldx + k] * w_value(w, c->wtype, n * ldw + k));
            mag[i * N + n] = s;
        }

    frt_gemm_args a = {M, N, K, x, ldx, w, c->wtype, ldw, bias, y, ldy, c->accumulate};
    cr_assert_eq(frt_cpu_gemm(&a, pool), FRT_OK, "%s", frt_last_error());
    a.y = ref;
    frt_ref_gemm(&a);
    a.y = refr;
    a.x = xr;
    frt_ref_gemm(&a);

    const char *isa = frt_cpu_features();
    int threads = pool ? frt_pool_size(pool) : 1;
    double e = max_err(y, ref, mag, M, N, ldy);
    if (c->wtype == FRT_BF16 && cpu->avx512bf16) {
        cr_assert_leq(e, BF16_U + TOL, "bf16 bound: %gx%gx%g err %g [%s] threads %d", (double)M,
                      (double)N, (double)K, e, isa, threads);
        double er = max_err(y, refr, mag, M, N, ldy);
        e = er < e ? er : e;
    }
    cr_assert_leq(e, TOL, "%lldx%lldx%lld %s bias %d acc %d pad %d: err %g [%s] threads %d",
                  (long long)M, (long long)N, (long long)K, frt_dtype_name(c->wtype), c->bias,
                  c->accumulate, c->pad, e, isa, threads);
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = N; n < ldy; n++)
            cr_assert_eq(y[i * ldy + n], 1234.5f, "padding of y written at %lld,%lld", (long long)i,
                         (long long)n);
    free(x);
    free(xr);
    free(w);
    free(bias);
    free(y);
    free(ref);
    free(refr);
    free(mag);
}

static const int64_t sizes[] = {1, 2, 3, 7, 15, 16, 17, 31, 33, 64, 100, 255, 257};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* ISA levels this machine can run: scalar, AVX2, AVX-512 without and with
 * the bf16 dot product. */
static int isa_masks(frt_cpu_info *out)
{
    frt_cpu_restrict(NULL);
    const frt_cpu_info have = *frt_cpu();
    int n = 0;
    out[n++] = (frt_cpu_info){0};
    if (have.avx2) out[n++] = (frt_cpu_info){.avx2 = true};
    if (have.avx512) out[n++] = (frt_cpu_info){.avx2 = true, .avx512 = true};
    if (have.avx512bf16)
        out[n++] = (frt_cpu_info){.avx2 = true, .avx512 = true, .avx512bf16 = true};
    return n;
}

static void random_cases(int count, int64_t max_work, frt_pool *pool)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    frt_cpu_info masks[4];
    int nmask = isa_masks(masks);
    for (int mi = 0; mi < nmask; mi++) {
        frt_cpu_restrict(&masks[mi]);
        for (int t = 0; t < 3; t++)
            for (int i = 0; i < count; i++) {
                gemm_case c = {.wtype = (frt_dtype[]){FRT_F32, FRT_F16, FRT_BF16}[t]};
                do {
                    c.M = sizes[tu_next(&r) % NSIZES];
                    c.N = sizes[tu_next(&r) % NSIZES];
                    c.K = sizes[tu_next(&r) % NSIZES];
                } while (c.M * c.N * c.K > max_work);
                c.bias = tu_next(&r) & 1;
                c.accumulate = tu_next(&r) & 1;
                c.pad = tu_next(&r) & 1;
                run_case(&c, pool, &r);
            }
    }
    frt_cpu_restrict(NULL);
}

Test(gemm, random_shapes_one_thread)
{
    random_cases(12, 1 << 20, NULL);
}

Test(gemm, random_shapes_three_threads)
{
    frt_pool *pool = frt_pool_create(3);
    cr_assert(pool);
    random_cases(8, 1 << 21, pool);
    frt_pool_free(pool);
}

/* Shapes that cross the blocking: several k blocks (also for bf16 pairs,
 * with an odd K), several weight-row blocks per thread, several row blocks
 * of x, the small-M path around its threshold, and fewer column panels
 * than threads (rows split instead). */
Test(gemm, blocking_edges)
{
    static const int64_t shapes[][3] = {
        {17, 70, 1301}, {40, 450, 33}, {530, 9, 40},  {8, 130, 77}, {9, 130, 77}, {12, 31, 600},
        {3, 40, 1001},  {200, 1, 70},  {16, 130, 77}, {17, 99, 80}, {1, 1, 1},    {64, 64, 513}};
    tu_rng r;
    tu_rng_init(&r, tu_seed() + 1);
    frt_pool *pool = frt_pool_create(3);
    cr_assert(pool);
    frt_cpu_info masks[4];
    int nmask = isa_masks(masks);
    for (int mi = 0; mi < nmask; mi++) {
        frt_cpu_restrict(&masks[mi]);
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int t = 0; t < 3; t++) {
                gemm_case c = {.M = shapes[s][0],
                               .N = shapes[s][1],
                               .K = shapes[s][2],
                               .wtype = (frt_dtype[]){FRT_F32, FRT_F16, FRT_BF16}[t]};
                c.bias = s & 1;
                c.accumulate = (s >> 1) & 1;
                c.pad = t == 1;
                run_case(&c, (s + t) & 1 ? pool : NULL, &r);
            }
    }
    frt_cpu_restrict(NULL);
    frt_pool_free(pool);
}

/* The derivation above on one long dot product: rounding x to bf16 stays
 * within 2^-8 of the magnitude sum, while losing one product (a packing
 * bug) moves the result by far more than TOL, so the tight check sees it. */
Test(gemm, bf16_tolerance_derivation)
{
    enum { K = 1000 };
    tu_rng r;
    tu_rng_init(&r, tu_seed() + 2);
    double mag = 0, exact = 0, rounded = 0, largest = 0;
    for (int k = 0; k < K; k++) {
        float x = tu_uniform(&r, -1, 1);
        float w = frt_bf16_to_f32(frt_f32_to_bf16(tu_uniform(&r, -1, 1)));
        mag += fabs((double)x * w);
        exact += (double)x * w;
        rounded += (double)frt_bf16_to_f32(frt_f32_to_bf16(x)) * w;
        largest = fmax(largest, fabs((double)x * w));
    }
    cr_assert_leq(fabs(rounded - exact), BF16_U * mag);
    cr_assert_gt(largest / mag, 10 * TOL);
}

Test(gemm, empty_and_k0)
{
    float y[6] = {1, 2, 3, 4, 5, 6}, bias[3] = {10, 20, 30};
    float x[2] = {0}, w[2] = {0};
    /* M or N zero: nothing is read or written, NULL allowed */
    frt_gemm_args a = {0, 3, 5, NULL, 5, w, FRT_F32, 5, NULL, NULL, 3, false};
    cr_assert_eq(frt_cpu_gemm(&a, NULL), FRT_OK);
    a = (frt_gemm_args){2, 0, 5, x, 5, NULL, FRT_F32, 5, NULL, NULL, 0, false};
    cr_assert_eq(frt_cpu_gemm(&a, NULL), FRT_OK);
    /* K zero: y = bias, y = 0, y += bias */
    a = (frt_gemm_args){2, 3, 0, NULL, 0, NULL, FRT_BF16, 0, bias, y, 3, false};
    cr_assert_eq(frt_cpu_gemm(&a, NULL), FRT_OK);
    cr_assert(y[0] == 10 && y[4] == 20 && y[5] == 30);
    a.bias = NULL;
    cr_assert_eq(frt_cpu_gemm(&a, NULL), FRT_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(y[i], 0.0f);
    for (int i = 0; i < 6; i++) y[i] = (float)i;
    a.bias = bias;
    a.accumulate = true;
    cr_assert_eq(frt_cpu_gemm(&a, NULL), FRT_OK);
    cr_assert(y[0] == 10 && y[1] == 21 && y[5] == 35);
    a.bias = NULL;
    cr_assert_eq(frt_cpu_gemm(&a, NULL), FRT_OK);
    cr_assert(y[0] == 10 && y[1] == 21 && y[5] == 35);
}

Test(gemm, invalid_arguments)
{
    float x[16] = {0}, w[16] = {0}, y[16] = {0};
    const frt_gemm_args ok = {2, 2, 4, x, 4, w, FRT_F32, 4, NULL, y, 2, false};
    cr_assert_eq(frt_cpu_gemm(&ok, NULL), FRT_OK);
    frt_gemm_args bad[12];
    int n = 0;
    bad[n] = ok, bad[n++].M = -1;
    bad[n] = ok, bad[n++].N = -2;
    bad[n] = ok, bad[n++].K = -3;
    bad[n] = ok, bad[n++].ldx = 3;
    bad[n] = ok, bad[n++].ldw = 3;
    bad[n] = ok, bad[n++].ldy = 1;
    bad[n] = ok, bad[n++].wtype = FRT_I32;
    bad[n] = ok, bad[n++].wtype = (frt_dtype)77;
    bad[n] = ok, bad[n++].x = NULL;
    bad[n] = ok, bad[n++].w = NULL;
    bad[n] = ok, bad[n++].y = NULL;
    for (int i = 0; i < n; i++) {
        frt_clear_error();
        cr_assert_eq(frt_cpu_gemm(&bad[i], NULL), FRT_ERR_INVALID_ARG, "case %d", i);
        cr_assert_eq(frt_last_status(), FRT_ERR_INVALID_ARG);
        cr_assert(strstr(frt_last_error(), "gemm"), "case %d: '%s'", i, frt_last_error());
    }
    cr_assert_eq(frt_cpu_gemm(NULL, NULL), FRT_ERR_INVALID_ARG);
    for (int i = 0; i < 16; i++) cr_assert_eq(y[i], 0.0f, "y written by a rejected call");
}

/* The default pool (FRT_THREADS or all cores) on a size that takes the
 * threaded packed path, and the same call twice (scratch reuse). */
Test(gemm, default_pool_repeat)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed() + 3);
    gemm_case c = {150, 300, 270, FRT_BF16, true, false, false};
    run_case(&c, frt_pool_default(), &r);
    run_case(&c, frt_pool_default(), &r);
    c.wtype = FRT_F32;
    run_case(&c, frt_pool_default(), &r);
}

/* A packing buffer that cannot be allocated is reported, nothing crashes,
 * and the next call (memory back) works. */
Test(gemm, out_of_memory_is_reported)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed() + 4);
    static float x[64 * 64], w[64 * 64], y[64 * 64];
    static uint16_t wb[64 * 64];
    tu_fill_uniform(&r, x, 64 * 64, -1, 1);
    tu_fill_uniform(&r, w, 64 * 64, -1, 1);
    /* the small-M bf16 path needs a scratch row only on AVX-512; first, so
     * that this thread's scratch is still empty */
    if (frt_cpu()->avx512) {
        frt_gemm_args g = {2, 64, 64, x, 64, wb, FRT_BF16, 64, NULL, y, 64, false};
        frt_gemm_scratch_fail_after(1);
        cr_assert_eq(frt_cpu_gemm(&g, NULL), FRT_ERR_NOMEM);
        frt_gemm_scratch_fail_after(0);
        cr_assert_eq(frt_cpu_gemm(&g, NULL), FRT_OK);
    }
    frt_gemm_args a = {64, 64, 64, x, 64, w, FRT_F32, 64, NULL, y, 64, false};
    frt_gemm_scratch_fail_after(1);
    cr_assert_eq(frt_cpu_gemm(&a, NULL), FRT_ERR_NOMEM);
    cr_assert_eq(frt_last_status(), FRT_ERR_NOMEM);
    frt_gemm_scratch_fail_after(0);
    gemm_case c = {64, 64, 64, FRT_F32, true, true, true};
    run_case(&c, NULL, &r);
}
