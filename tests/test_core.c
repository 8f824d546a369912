/* Core runtime: status and error records, logging, allocation, thread pool,
 * tensors and dtype conversion. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cpu.h"
#include "error.h"
#include "log.h"
#include "tensor.h"
#include "testutil.h"
#include "threadpool.h"

Test(status, names_and_last_error)
{
    cr_assert_str_eq(frt_status_name(FRT_OK), "FRT_OK");
    cr_assert_str_eq(frt_status_name(FRT_ERR_FORMAT), "FRT_ERR_FORMAT");
    cr_assert_str_eq(frt_status_name((frt_status)999), "FRT_ERR_UNKNOWN");
    frt_clear_error();
    cr_assert_str_eq(frt_last_error(), "");
    frt_status s = frt_error_at(FRT_ERR_FORMAT, "a.safetensors", "w.weight", 1234, "bad %s", "thing");
    cr_assert_eq(s, FRT_ERR_FORMAT);
    cr_assert_eq(frt_last_status(), FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "bad thing"));
    cr_assert(strstr(frt_last_error(), "a.safetensors"));
    cr_assert(strstr(frt_last_error(), "w.weight"));
    cr_assert(strstr(frt_last_error(), "1234"));
    const char *file, *tensor;
    int64_t off;
    frt_last_error_detail(&file, &tensor, &off);
    cr_assert_str_eq(file, "a.safetensors");
    cr_assert_str_eq(tensor, "w.weight");
    cr_assert_eq(off, 1234);
    frt_clear_error();
    frt_last_error_detail(&file, &tensor, &off);
    cr_assert_eq(off, -1);
    cr_assert_str_eq(file, "");
}

static void *other_thread_error(void *arg)
{
    (void)arg;
    frt_error(FRT_ERR_IO, "from the other thread");
    return NULL;
}

Test(status, error_is_thread_local)
{
    frt_error(FRT_ERR_LIMIT, "mine");
    pthread_t t;
    pthread_create(&t, NULL, other_thread_error, NULL);
    pthread_join(t, NULL);
    cr_assert_str_eq(frt_last_error(), "mine");
    cr_assert_eq(frt_last_status(), FRT_ERR_LIMIT);
}

typedef struct {
    int count;
    char last[256];
    frt_log_level level;
} log_capture;

static void capture_log(frt_log_level level, const char *msg, void *user)
{
    log_capture *c = user;
    c->count++;
    c->level = level;
    snprintf(c->last, sizeof c->last, "%s", msg);
}

Test(log, levels_and_callback)
{
    log_capture c = {0};
    frt_log_set_callback(capture_log, &c);
    frt_log_set_level(FRT_LOG_WARN);
    FRT_LOGI("hidden %d", 1);
    cr_assert_eq(c.count, 0);
    FRT_LOGW("shown %d", 2);
    cr_assert_eq(c.count, 1);
    cr_assert_str_eq(c.last, "shown 2");
    cr_assert_eq(c.level, FRT_LOG_WARN);
    frt_log_set_level(FRT_LOG_DEBUG);
    FRT_LOGD("debug");
    cr_assert_eq(c.count, 2);
    frt_log_set_level(FRT_LOG_OFF);
    FRT_LOGE("nothing");
    cr_assert_eq(c.count, 2);
    frt_log_set_callback(NULL, NULL);
    frt_log_set_level(FRT_LOG_ERROR);
}

Test(alloc, aligned_and_fault_injection)
{
    size_t sizes[] = {0, 1, 63, 64, 4097, 3u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = frt_alloc(sizes[i]);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % FRT_ALIGN, 0);
        if (sizes[i]) p[sizes[i] - 1] = 1;
        frt_free(p);
    }
    frt_alloc_fail_after(2);
    void *a = frt_alloc(10);
    cr_assert_not_null(a);
    void *b = frt_alloc(10);
    cr_assert_null(b);
    cr_assert_eq(frt_last_status(), FRT_ERR_NOMEM);
    void *c = frt_alloc(10);
    cr_assert_not_null(c);
    frt_free(a);
    frt_free(c);
    cr_assert_null(frt_calloc(SIZE_MAX / 2, 4));
    cr_assert_eq(frt_last_status(), FRT_ERR_NOMEM);
    size_t out;
    cr_assert_not(frt_mul_size(SIZE_MAX / 2 + 1, 2, &out));
    cr_assert(frt_mul_size(1000, 1000, &out) && out == 1000000);
}

typedef struct {
    atomic_int hits[64];
    atomic_int calls;
    int nth_seen;
} pool_probe;

static void probe_task(void *arg, int ith, int nth)
{
    pool_probe *p = arg;
    atomic_fetch_add(&p->hits[ith], 1);
    atomic_fetch_add(&p->calls, 1);
    p->nth_seen = nth;
}

Test(threadpool, every_worker_once_per_run)
{
    for (int n = 1; n <= 5; n++) {
        frt_pool *pool = frt_pool_create(n);
        cr_assert_not_null(pool);
        cr_assert_eq(frt_pool_size(pool), n);
        for (int run = 0; run < 200; run++) {
            pool_probe p = {0};
            frt_pool_run(pool, probe_task, &p);
            cr_assert_eq(atomic_load(&p.calls), n);
            for (int i = 0; i < n; i++) cr_assert_eq(atomic_load(&p.hits[i]), 1);
            cr_assert_eq(p.nth_seen, n);
        }
        frt_pool_free(pool);
    }
    cr_assert_null(frt_pool_create(0));
    cr_assert_eq(frt_last_status(), FRT_ERR_INVALID_ARG);
}

typedef struct {
    frt_pool *pool;
    atomic_int inner_calls;
} nest_probe;

static void inner_task(void *arg, int ith, int nth)
{
    nest_probe *p = arg;
    cr_assert_eq(nth, 1);
    cr_assert_eq(ith, 0);
    atomic_fetch_add(&p->inner_calls, 1);
}

static void outer_task(void *arg, int ith, int nth)
{
    nest_probe *p = arg;
    frt_pool_run(p->pool, inner_task, p);
}

Test(threadpool, nested_run_is_inline)
{
    nest_probe p = {.pool = frt_pool_create(3)};
    frt_pool_run(p.pool, outer_task, &p);
    cr_assert_eq(atomic_load(&p.inner_calls), 3);
    frt_pool_free(p.pool);
}

typedef struct {
    long n;
    atomic_long sum;
} range_probe;

static void range_task(void *arg, int ith, int nth)
{
    range_probe *p = arg;
    long b, e, s = 0;
    frt_split_range(p->n, ith, nth, &b, &e);
    for (long i = b; i < e; i++) s += i;
    atomic_fetch_add(&p->sum, s);
}

Test(threadpool, split_range_covers_everything)
{
    frt_pool *pool = frt_pool_default();
    cr_assert_geq(frt_pool_size(pool), 1);
    long ns[] = {0, 1, 2, 7, 1000, 12345};
    for (size_t i = 0; i < 6; i++) {
        range_probe p = {.n = ns[i]};
        frt_pool_run(pool, range_task, &p);
        cr_assert_eq(atomic_load(&p.sum), ns[i] * (ns[i] - 1) / 2);
    }
}

Test(threadpool, set_num_threads_rebuilds)
{
    cr_assert_eq(frt_set_num_threads(0), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_set_num_threads(3), FRT_OK);
    cr_assert_eq(frt_num_threads(), 3);
    cr_assert_eq(frt_pool_size(frt_pool_default()), 3);
    cr_assert_eq(frt_set_num_threads(2), FRT_OK);
    cr_assert_eq(frt_pool_size(frt_pool_default()), 2);
}

Test(tensor, alloc_view_contiguity)
{
    frt_tensor t;
    int64_t shape[3] = {2, 3, 5};
    cr_assert_eq(frt_tensor_alloc(&t, FRT_BF16, 3, shape), FRT_OK);
    cr_assert_eq(frt_tensor_numel(&t), 30);
    cr_assert_eq(frt_tensor_nbytes(&t), 60);
    cr_assert_eq(t.stride[0], 15);
    cr_assert_eq(t.stride[2], 1);
    cr_assert(frt_tensor_is_contiguous(&t));
    cr_assert_eq(frt_tensor_rows(&t), 6);
    cr_assert_eq(frt_tensor_cols(&t), 5);
    t.stride[0] = 16;
    cr_assert_not(frt_tensor_is_contiguous(&t));
    frt_tensor_free(&t);
    cr_assert_null(t.data);
    int64_t huge[2] = {INT64_MAX / 2, 4};
    cr_assert_eq(frt_tensor_alloc(&t, FRT_F32, 2, huge), FRT_ERR_INVALID_ARG);
    frt_dtype d;
    cr_assert(frt_dtype_parse("BF16", &d) && d == FRT_BF16);
    cr_assert_not(frt_dtype_parse("F64", &d));
    cr_assert_str_eq(frt_dtype_name(FRT_I8), "I8");
}

/* Independent f16 decoding: value = (-1)^s * 2^(e-15) * (1 + m/1024). */
static double f16_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31) return m ? NAN : (s ? -INFINITY : INFINITY);
    if (e == 0)
        v = ldexp(m, -24);
    else
        v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

Test(tensor, f16_all_values_roundtrip)
{
    for (uint32_t h = 0; h < 65536; h++) {
        double want = f16_value((uint16_t)h);
        float got = frt_f16_to_f32((uint16_t)h);
        if (isnan(want)) {
            cr_assert(isnan(got));
            continue;
        }
        cr_assert_eq((double)got, want, "f16 %04x: %g vs %g", h, got, want);
        cr_assert_eq(frt_f32_to_f16(got), h, "f16 %04x does not round-trip", h);
    }
}

static void check_rows(const frt_cpu_info *mask)
{
    frt_cpu_restrict(mask);
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    enum { N = 1003 };
    float src[N], back[N], ref[N];
    uint16_t h[N], h_ref[N];
    for (int i = 0; i < N; i++) src[i] = tu_normal(&r) * (i % 7 == 0 ? 1e4f : 1.0f);
    src[5] = NAN;
    src[6] = INFINITY;
    src[7] = 1e-7f;
    frt_f32_to_f16_row(src, h, N);
    for (int i = 0; i < N; i++) h_ref[i] = frt_f32_to_f16(src[i]);
    for (int i = 0; i < N; i++)
        if (i != 5) cr_assert_eq(h[i], h_ref[i], "f16 row %d: %04x vs %04x (%s)", i, h[i], h_ref[i], frt_cpu_features());
    frt_f16_to_f32_row(h, back, N);
    for (int i = 0; i < N; i++) ref[i] = frt_f16_to_f32(h[i]);
    cr_assert_eq(memcmp(back, ref, sizeof back), 0);
    frt_f32_to_bf16_row(src, h, N);
    for (int i = 0; i < N; i++) cr_assert_eq(h[i], frt_f32_to_bf16(src[i]), "bf16 row %d", i);
    frt_bf16_to_f32_row(h, back, N);
    for (int i = 0; i < N; i++) {
        if (i == 5) {
            cr_assert(isnan(back[i]));
            continue;
        }
        if (isinf(src[i])) {
            cr_assert_eq(back[i], src[i]);
            continue;
        }
        /* bf16 keeps 8 significant bits: rounding error <= half an ulp <= 2^-8 |x| */
        double e = fabs((double)back[i] - src[i]);
        cr_assert_leq(e, fabs(src[i]) * 0x1p-8 + 1e-38, "bf16 %d: %g -> %g", i, src[i], back[i]);
    }
    frt_cpu_restrict(NULL);
}

Test(tensor, row_conversions_match_scalar_on_every_isa)
{
    frt_cpu_info scalar = {0}, avx2 = {.avx2 = true}, all = {true, true, true, true};
    check_rows(&scalar);
    check_rows(&avx2);
    check_rows(&all);
}

Test(tensor, bf16_rounding)
{
    cr_assert_eq(frt_f32_to_bf16(1.0f), 0x3f80);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0) */
    cr_assert_eq(frt_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    cr_assert_eq(frt_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    cr_assert_eq(frt_bf16_to_f32(0xc000), -2.0f);
}

Test(cpu, features_string)
{
    const char *f = frt_cpu_features();
    cr_assert_not_null(f);
    cr_assert_gt(strlen(f), 0);
    if (frt_cpu()->avx512) cr_assert(frt_cpu()->avx2);
}
