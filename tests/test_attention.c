/* CPU attention: flash and decode against the naive twin (double, materialised
 * softmax) on random inputs, every ISA path, 1 and 3 threads.
 *
 * Error measure: per output row, max |o - ref| over the row divided by the
 * row's largest |ref| (floor 1e-20, so a row that must be zero has to be
 * zero). Bars: 1e-5 with f32 K/V, 3e-3 with f16/bf16 K/V (the naive twin
 * reads the same f16/bf16 values, so in practice both stay near 1e-6). */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "attention.h"
#include "cpu.h"
#include "testutil.h"
#include "threadpool.h"

typedef enum { RUN_FLASH, RUN_DECODE, RUN_AUTO } run_kind;

typedef struct {
    int64_t nq, nk, h, h_kv, d;
    frt_dtype dt;
    bool causal;
    int64_t q_pos0, kv_len;
    bool mask;
    int layout; /* 0 contiguous, 1 padded and misaligned rows, 2 head-major K/V */
    bool unified;
    float phi;
    float qmul;    /* spread of q, so some rows have peaked softmaxes */
    int hot_head;  /* >= 0: that head's q is scaled by 200 (far out of a unified range) */
    int mask_dead; /* >= 0: that query row is fully masked with -inf */
    double tol;    /* 0: the bar of the dtype */
} acase;

typedef struct {
    acase c;
    float *q, *o, *oref, *mask;
    void *k, *v;
    size_t q_n, kv_n, o_n;
    frt_attn_args a;
} abuf;

static const frt_cpu_info isa_scalar = {0}, isa_avx2 = {.avx2 = true},
                          isa_all = {true, true, true, true};
static const frt_cpu_info *const isas[] = {&isa_scalar, &isa_avx2, &isa_all};
static const char *const isa_names[] = {"scalar", "avx2", "avx512"};

static uint16_t to_half(frt_dtype dt, float x)
{
    return dt == FRT_F16 ? frt_f32_to_f16(x) : frt_f32_to_bf16(x);
}

static void fill_kv(tu_rng *r, frt_dtype dt, void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = tu_normal(r);
        if (dt == FRT_F32)
            ((float *)p)[i] = x;
        else
            ((uint16_t *)p)[i] = to_half(dt, x);
    }
}

static void build(abuf *b, const acase *c, tu_rng *r)
{
    memset(b, 0, sizeof *b);
    b->c = *c;
    frt_attn_args *a = &b->a;
    int64_t d = c->d, pad = c->layout == 1 ? 3 : 0, tpad = c->layout == 1 ? 5 : 0;
    a->nq = c->nq;
    a->nk = c->nk;
    a->h = c->h;
    a->h_kv = c->h_kv;
    a->d = d;
    a->kv_dtype = c->dt;
    a->q_sh = d + pad;
    a->q_st = c->h * a->q_sh + tpad;
    a->o_sh = d + pad;
    a->o_st = c->h * a->o_sh + tpad;
    if (c->layout == 2) {
        a->k_st = d;
        a->k_sh = c->nk * d;
    } else {
        a->k_sh = d + pad;
        a->k_st = c->h_kv * a->k_sh + tpad;
    }
    a->v_st = a->k_st;
    a->v_sh = a->k_sh;
    b->q_n = (size_t)(c->nq * a->q_st + 1);
    b->o_n = (size_t)(c->nq * a->o_st + 1);
    b->kv_n = (size_t)(c->layout == 2 ? c->h_kv * c->nk * d : c->nk * a->k_st) + 1;
    size_t es = c->dt == FRT_F32 ? 4 : 2;
    b->q = malloc(sizeof(float) * b->q_n);
    b->o = malloc(sizeof(float) * b->o_n);
    b->oref = malloc(sizeof(float) * b->o_n);
    b->k = malloc(es * b->kv_n);
    b->v = malloc(es * b->kv_n);
    cr_assert(b->q && b->o && b->oref && b->k && b->v);
    for (size_t i = 0; i < b->q_n; i++) b->q[i] = tu_normal(r) * c->qmul;
    if (c->hot_head >= 0)
        for (int64_t i = 0; i < c->nq; i++)
            for (int64_t x = 0; x < d; x++) b->q[i * a->q_st + c->hot_head * a->q_sh + x] *= 200.0f;
    fill_kv(r, c->dt, b->k, b->kv_n);
    fill_kv(r, c->dt, b->v, b->kv_n);
    tu_poison(b->o, b->o_n);
    tu_poison(b->oref, b->o_n);
    a->q = b->q;
    a->k = b->k;
    a->v = b->v;
    a->o = b->o;
    a->p.scale = 1.0f / sqrtf((float)d);
    a->p.causal = c->causal;
    a->p.q_pos0 = c->q_pos0;
    a->p.kv_len = c->kv_len;
    a->p.use_unified_max = c->unified;
    a->p.phi = c->phi;
    if (c->mask) {
        int64_t ms = c->nk + 7;
        b->mask = malloc(sizeof(float) * (size_t)(c->nq * ms + 1));
        cr_assert(b->mask);
        for (int64_t i = 0; i < c->nq * ms + 1; i++) {
            float u = tu_uniform(r, 0.0f, 1.0f);
            b->mask[i] = u < 0.15f ? -INFINITY : tu_uniform(r, -3.0f, 3.0f);
        }
        if (c->mask_dead >= 0 && c->mask_dead < c->nq)
            for (int64_t j = 0; j < c->nk; j++) b->mask[c->mask_dead * ms + j] = -INFINITY;
        a->p.mask = b->mask;
        a->p.mask_stride = ms;
    }
}

static void free_buf(abuf *b)
{
    free(b->q);
    free(b->o);
    free(b->oref);
    free(b->k);
    free(b->v);
    free(b->mask);
}

/* Worst row error (see the top of the file); when written is non-NULL it
 * marks the output elements. */
static double row_error(const abuf *b, char *written)
{
    const frt_attn_args *a = &b->a;
    double worst = 0.0;
    for (int64_t i = 0; i < a->nq; i++)
        for (int64_t hh = 0; hh < a->h; hh++) {
            size_t off = (size_t)(i * a->o_st + hh * a->o_sh);
            const float *o = b->o + off, *r = b->oref + off;
            double mag = 0.0, diff = 0.0;
            for (int64_t x = 0; x < a->d; x++) {
                if (written) written[off + (size_t)x] = 1;
                mag = fmax(mag, fabs(r[x]));
                double e = fabs((double)o[x] - r[x]);
                if (!(e <= diff)) diff = isnan(e) ? INFINITY : e;
            }
            double e = diff / fmax(mag, 1e-20);
            if (!(e <= worst)) worst = e;
        }
    return worst;
}

/* Row error; also every element outside the output rows must still hold
 * the poison. */
static double compare(const abuf *b)
{
    char *written = calloc(b->o_n, 1);
    cr_assert(written);
    double worst = row_error(b, written);
    for (size_t i = 0; i < b->o_n; i++)
        if (!written[i])
            cr_assert(isnan(b->o[i]), "element %zu outside the output rows written", i);
    free(written);
    return worst;
}

static double tol_of(frt_dtype dt)
{
    return dt == FRT_F32 ? 1e-5 : 3e-3;
}

static void describe(const acase *c, char *buf, size_t n)
{
    snprintf(buf, n,
             "nq %lld nk %lld h %lld h_kv %lld d %lld %s causal %d q_pos0 %lld kv_len %lld "
             "mask %d layout %d unified %d phi %g",
             (long long)c->nq, (long long)c->nk, (long long)c->h, (long long)c->h_kv,
             (long long)c->d, frt_dtype_name(c->dt), c->causal, (long long)c->q_pos0,
             (long long)c->kv_len, c->mask, c->layout, c->unified, c->phi);
}

/* Runs one case through `kind` and the naive twin; returns the error. */
static double run_case(const acase *c, run_kind kind, frt_pool *pool, tu_rng *r,
                       frt_decode_stats *stats)
{
    abuf b;
    build(&b, c, r);
    frt_attn_args ref = b.a;
    ref.o = b.oref;
    cr_assert_eq(frt_ref_attn(&ref), FRT_OK, "%s", frt_last_error());
    frt_status s = kind == RUN_FLASH    ? frt_cpu_flash_attn(&b.a, pool)
                   : kind == RUN_DECODE ? frt_cpu_decode_attn(&b.a, pool, stats)
                                        : frt_cpu_attention(&b.a, pool);
    cr_assert_eq(s, FRT_OK, "%s", frt_last_error());
    double e = compare(&b);
    char desc[256];
    describe(c, desc, sizeof desc);
    cr_assert(e <= (c->tol > 0 ? c->tol : tol_of(c->dt)), "%s (%s, %s): row error %g", desc,
              kind == RUN_FLASH    ? "flash"
              : kind == RUN_DECODE ? "decode"
                                   : "auto",
              isa_names[frt_cpu()->avx512 ? 2
                        : frt_cpu()->avx2 ? 1
                                          : 0],
              e);
    free_buf(&b);
    return e;
}

static acase base_case(int64_t nq, int64_t nk, int64_t h, int64_t h_kv, int64_t d)
{
    return (acase){.nq = nq,
                   .nk = nk,
                   .h = h,
                   .h_kv = h_kv,
                   .d = d,
                   .dt = FRT_F32,
                   .qmul = 1.0f,
                   .hot_head = -1,
                   .mask_dead = -1};
}

static int64_t irange(tu_rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(tu_next(r) % (uint64_t)(hi - lo + 1));
}

/* A random case: any mix of the features, sizes not multiples of the tiles. */
static acase random_case(tu_rng *r, int64_t d, int64_t max_nq, int64_t max_nk)
{
    static const frt_dtype dts[] = {FRT_F32, FRT_F16, FRT_BF16};
    int64_t h_kv = irange(r, 1, 2), g = irange(r, 1, 3);
    acase c = base_case(irange(r, 1, max_nq), irange(r, 1, max_nk), h_kv * g, h_kv, d);
    c.dt = dts[tu_next(r) % 3];
    c.causal = tu_next(r) % 2;
    if (c.causal) c.q_pos0 = c.nk > c.nq ? irange(r, 0, c.nk - c.nq) : 0;
    if (tu_next(r) % 3 == 0) c.kv_len = irange(r, 1, c.nk);
    c.mask = tu_next(r) % 3 == 0;
    c.layout = (int)(tu_next(r) % 3);
    c.qmul = tu_uniform(r, 0.5f, 3.0f);
    return c;
}

static tu_rng rng(void)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    return r;
}

Test(flash, random_cases_every_isa_and_head_dim)
{
    tu_rng r = rng();
    frt_pool *pool = frt_pool_create(3);
    cr_assert(pool);
    static const int64_t ds[] = {16, 64, 80, 128, 256};
    for (int isa = 0; isa < 3; isa++) {
        frt_cpu_restrict(isas[isa]);
        for (int di = 0; di < 5; di++)
            for (int rep = 0; rep < 2; rep++) {
                int64_t d = ds[di];
                acase c = random_case(&r, d, d >= 128 ? 90 : 150, d >= 128 ? 150 : 260);
                run_case(&c, RUN_FLASH, rep ? pool : NULL, &r, NULL);
            }
    }
    frt_cpu_restrict(NULL);
    frt_pool_free(pool);
}

Test(flash, causal_with_offset_kv_len_and_gqa)
{
    tu_rng r = rng();
    frt_pool *pool = frt_pool_create(3);
    for (int isa = 0; isa < 3; isa++) {
        frt_cpu_restrict(isas[isa]);
        /* Chunked prefill: 70 new queries after 130 cached keys. */
        acase c = base_case(70, 200, 4, 2, 64);
        c.causal = true;
        c.q_pos0 = 130;
        run_case(&c, RUN_FLASH, pool, &r, NULL);
        /* Plain causal self-attention, MQA, odd length, padded cache. */
        c = base_case(131, 160, 3, 1, 128);
        c.causal = true;
        c.kv_len = 140;
        c.dt = FRT_F16;
        run_case(&c, RUN_FLASH, pool, &r, NULL);
        /* A row whose mask is all -inf sees no key: it must be zeros. */
        c = base_case(67, 67, 2, 2, 80);
        c.causal = true;
        c.mask = true;
        c.mask_dead = 5;
        c.dt = FRT_BF16;
        c.layout = 1;
        run_case(&c, RUN_FLASH, NULL, &r, NULL);
    }
    frt_cpu_restrict(NULL);
    frt_pool_free(pool);
}

Test(flash, tiny_and_empty)
{
    tu_rng r = rng();
    for (int isa = 0; isa < 3; isa++) {
        frt_cpu_restrict(isas[isa]);
        acase c = base_case(1, 1, 1, 1, 16);
        run_case(&c, RUN_FLASH, NULL, &r, NULL);
        c = base_case(5, 1, 2, 1, 256);
        c.causal = true;
        run_case(&c, RUN_FLASH, NULL, &r, NULL);
        /* nk = 0: every row sees nothing and is zeros. */
        c = base_case(9, 0, 2, 2, 32);
        abuf b;
        build(&b, &c, &r);
        cr_assert_eq(frt_cpu_flash_attn(&b.a, NULL), FRT_OK);
        for (int64_t i = 0; i < c.nq; i++)
            for (int64_t x = 0; x < c.h * c.d; x++) cr_assert_eq(b.o[i * b.a.o_st + x], 0.0f);
        tu_poison(b.o, b.o_n);
        b.a.nq = 2;
        b.a.p.use_unified_max = true;
        frt_decode_stats st = {0};
        cr_assert_eq(frt_cpu_decode_attn(&b.a, NULL, &st), FRT_OK);
        for (int64_t i = 0; i < 2; i++)
            for (int64_t x = 0; x < c.h * c.d; x++) cr_assert_eq(b.o[i * b.a.o_st + x], 0.0f);
        cr_assert_eq(st.rows, 4);
        cr_assert_eq(st.rows_fallback, 0);
        free_buf(&b);
    }
    frt_cpu_restrict(NULL);
}

Test(flash, peaked_softmax_large_scores)
{
    /* Scores spanning hundreds: the online max must rescale without
     * overflow, and rows are nearly one-hot. Rounding the f32 scores costs
     * |s| * 6e-8 each, hence the wider bar. */
    tu_rng r = rng();
    acase c = base_case(100, 333, 2, 2, 64);
    c.qmul = 40.0f;
    c.tol = 2e-4;
    for (int isa = 0; isa < 3; isa++) {
        frt_cpu_restrict(isas[isa]);
        run_case(&c, RUN_FLASH, NULL, &r, NULL);
    }
    frt_cpu_restrict(NULL);
}

Test(decode, exact_matches_ref)
{
    tu_rng r = rng();
    frt_pool *pool = frt_pool_create(3);
    static const int64_t ds[] = {16, 64, 80, 128, 256};
    for (int isa = 0; isa < 3; isa++) {
        frt_cpu_restrict(isas[isa]);
        for (int di = 0; di < 5; di++) {
            acase c = random_case(&r, ds[di], 4, 2500);
            run_case(&c, RUN_DECODE, di % 2 ? pool : NULL, &r, NULL);
        }
        /* The usual decode step: one new token at the end of the cache. */
        acase c = base_case(1, 3001, 8, 2, 128);
        c.causal = true;
        c.q_pos0 = 3000;
        c.dt = FRT_F16;
        run_case(&c, RUN_DECODE, pool, &r, NULL);
        c = base_case(3, 1500, 4, 4, 64);
        c.causal = true;
        c.q_pos0 = 1000;
        c.kv_len = 1200;
        c.mask = true;
        c.mask_dead = 1;
        c.layout = 2;
        run_case(&c, RUN_DECODE, pool, &r, NULL);
    }
    frt_cpu_restrict(NULL);
    frt_pool_free(pool);
}

Test(decode, unified_max_and_fallback)
{
    tu_rng r = rng();
    frt_pool *pool = frt_pool_create(3);
    for (int isa = 0; isa < 3; isa++) {
        frt_cpu_restrict(isas[isa]);
        /* Scores ~ N(0, 1): phi = 0 is safe, no fallback. */
        acase c = base_case(2, 2100, 4, 2, 128);
        c.unified = true;
        c.phi = 0.0f;
        c.dt = FRT_BF16;
        frt_decode_stats st = {0};
        run_case(&c, RUN_DECODE, pool, &r, &st);
        cr_assert_eq(st.rows, 8);
        cr_assert_eq(st.rows_fallback, 0);
        /* phi far above the scores: everything would underflow. */
        c.phi = 200.0f;
        memset(&st, 0, sizeof st);
        run_case(&c, RUN_DECODE, pool, &r, &st);
        cr_assert_eq(st.rows_fallback, 8);
        /* phi far below: exp would overflow. */
        c.phi = -100.0f;
        c.dt = FRT_F32;
        memset(&st, 0, sizeof st);
        run_case(&c, RUN_DECODE, NULL, &r, &st);
        cr_assert_eq(st.rows_fallback, 8);
        /* One hot head (scores in the hundreds): only its rows fall back;
         * plus a fully masked row, which is zeros and no fallback. */
        c = base_case(3, 900, 4, 4, 64);
        c.unified = true;
        c.hot_head = 2;
        c.tol = 3e-4; /* scores in the hundreds, see peaked_softmax_large_scores */
        c.mask = true;
        c.mask_dead = 0;
        memset(&st, 0, sizeof st);
        run_case(&c, RUN_DECODE, pool, &r, &st);
        cr_assert_eq(st.rows, 12);
        cr_assert_eq(st.rows_fallback, 2, "fallbacks %lld", (long long)st.rows_fallback);
    }
    frt_cpu_restrict(NULL);
    frt_pool_free(pool);
}

Test(attention, dispatch_picks_both_paths)
{
    tu_rng r = rng();
    frt_pool *pool = frt_pool_create(3);
    acase c = base_case(3, 700, 4, 2, 64);
    c.causal = true;
    c.q_pos0 = 697;
    run_case(&c, RUN_AUTO, pool, &r, NULL);
    c = base_case(40, 300, 4, 2, 64);
    c.causal = true;
    c.q_pos0 = 260;
    run_case(&c, RUN_AUTO, pool, &r, NULL);
    frt_pool_free(pool);
}

typedef struct {
    acase c;
    uint64_t seed;
    double err;
} thread_arg;

static void *concurrent_call(void *p)
{
    thread_arg *t = p;
    tu_rng r;
    tu_rng_init(&r, t->seed);
    abuf b;
    build(&b, &t->c, &r);
    frt_attn_args ref = b.a;
    ref.o = b.oref;
    t->err = INFINITY;
    if (frt_ref_attn(&ref) != FRT_OK) return NULL;
    for (int it = 0; it < 20; it++)
        if (frt_cpu_flash_attn(&b.a, NULL) != FRT_OK) return NULL;
    t->err = row_error(&b, NULL);
    free_buf(&b);
    return NULL;
}

Test(flash, concurrent_callers_share_nothing)
{
    thread_arg t[2] = {{.c = base_case(80, 90, 2, 1, 64), .seed = tu_seed()},
                       {.c = base_case(70, 130, 3, 3, 128), .seed = tu_seed() + 1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, concurrent_call, &t[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) cr_assert(t[i].err <= 1e-5, "thread %d error %g", i, t[i].err);
}

Test(attention, invalid_arguments)
{
    tu_rng r = rng();
    acase c = base_case(4, 10, 4, 2, 64);
    abuf b;
    build(&b, &c, &r);
    frt_attn_args a;
    frt_decode_stats st = {0};
#define EXPECT_ALL(status)                                                                         \
    do {                                                                                           \
        cr_assert_eq(frt_cpu_flash_attn(&a, NULL), status);                                        \
        cr_assert_eq(frt_cpu_decode_attn(&a, NULL, &st), status);                                  \
        cr_assert_eq(frt_cpu_attention(&a, NULL), status);                                         \
        cr_assert_eq(frt_ref_attn(&a), status);                                                    \
    } while (0)
    cr_assert_eq(frt_cpu_flash_attn(NULL, NULL), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_cpu_decode_attn(NULL, NULL, NULL), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_ref_attn(NULL), FRT_ERR_INVALID_ARG);
    a = b.a, a.h_kv = 3;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.d = 0;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.nq = -1;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.p.kv_len = 11;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.kv_dtype = FRT_I8;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.k = NULL;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.o = NULL;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.p.scale = NAN;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.p.causal = true, a.p.q_pos0 = -1;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.p.mask = b.q, a.p.mask_stride = 9;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    a = b.a, a.p.use_unified_max = true, a.p.phi = INFINITY;
    EXPECT_ALL(FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_last_status(), FRT_ERR_INVALID_ARG);
    cr_assert(strstr(frt_last_error(), "phi"));
    /* A head dim the fast kernels do not take: unsupported, the twin still works. */
    a = b.a, a.d = 40;
    cr_assert_eq(frt_cpu_flash_attn(&a, NULL), FRT_ERR_UNSUPPORTED);
    cr_assert_eq(frt_cpu_decode_attn(&a, NULL, NULL), FRT_ERR_UNSUPPORTED);
    cr_assert_eq(frt_ref_attn(&a), FRT_OK);
    a = b.a, a.d = 272, a.q_sh = a.o_sh = a.k_sh = a.v_sh = 0;
    cr_assert_eq(frt_cpu_flash_attn(&a, NULL), FRT_ERR_UNSUPPORTED);
    cr_assert_eq(st.rows, 0);
#undef EXPECT_ALL
    free_buf(&b);
}

Test(attention, out_of_memory_is_reported)
{
    tu_rng r = rng();
    acase c = base_case(20, 30, 2, 2, 64);
    abuf b;
    build(&b, &c, &r);
    frt_alloc_fail_after(1);
    cr_assert_eq(frt_cpu_flash_attn(&b.a, NULL), FRT_ERR_NOMEM);
    frt_alloc_fail_after(1);
    cr_assert_eq(frt_cpu_decode_attn(&b.a, NULL, NULL), FRT_ERR_NOMEM);
    frt_alloc_fail_after(0);
    cr_assert_eq(frt_cpu_flash_attn(&b.a, NULL), FRT_OK);
    free_buf(&b);
}
