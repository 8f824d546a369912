/* CPU attention drivers: argument checks, the FlashAttention-2 query-block
 * loop, split-KV decode with its exact merge and the unified-max fast path,
 * the naive twin, and the scalar instantiation of the block kernels. The
 * SIMD block kernels live in attention_impl.h (instantiated by
 * attention_avx512.c and attention_avx2.c). */
#include "attention.h"

#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "attention_impl.h"
#include "cpu.h"
#include "error.h"

/* ---- scalar instantiation of the block kernels -------------------------- */

static inline float exp2_scalar(float x)
{
    return exp2f(fmaxf(x, -150.0f));
}

#define V                  float
#define VW                 1
#define V_LOAD(p)          (*(p))
#define V_STORE(p, x)      (*(p) = (x))
#define V_SET1(f)          (f)
#define V_ZERO()           0.0f
#define V_FMA(a, b, c)     ((a) * (b) + (c))
#define V_ADD(a, b)        ((a) + (b))
#define V_SUB(a, b)        ((a) - (b))
#define V_MUL(a, b)        ((a) * (b))
#define V_MAX(a, b)        fmaxf((a), (b))
#define V_EXP2(x)          exp2_scalar(x)
#define V_IOTA()           0.0f
#define V_MASK_LT(a, b, x) ((a) < (b) ? -INFINITY : (x))
#define V_HSUM(x)          (x)
#define V_HMAX(x)          (x)
#define V_CVT_F16(p)       frt_f16_to_f32(*(p))
#define V_CVT_BF16(p)      frt_bf16_to_f32(*(p))
#define ATTN_QK_MR         4
#define ATTN_QK_NV         4
#define ATTN_PV_MR         4
#define ATTN_PV_NV         4
#define ATTN_PV_NV1        4
#define V_SUM_LANES(acc)   ((acc)[0])
#define ATTN_FN(name)      attn1_##name
#define FRT_ATTN_TABLE     frt_attn_kernels_scalar
#define FRT_ATTN_BODY
#include "attention_impl.h"

static const frt_attn_kernels *attn_kernels(void)
{
    const frt_cpu_info *c = frt_cpu();
    if (c->avx512) return &frt_attn_kernels_avx512;
    if (c->avx2) return &frt_attn_kernels_avx2;
    return &frt_attn_kernels_scalar;
}

/* ---- argument checks ----------------------------------------------------- */

static frt_status check_args(const frt_attn_args *a, const char *fn)
{
    if (!a) return frt_error(FRT_ERR_INVALID_ARG, "%s: args is NULL", fn);
    if (a->nq < 0 || a->nk < 0 || a->h < 1 || a->h_kv < 1 || a->d < 1)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "%s: bad sizes nq %lld nk %lld h %lld h_kv %lld d %lld", fn,
                         (long long)a->nq, (long long)a->nk, (long long)a->h, (long long)a->h_kv,
                         (long long)a->d);
    if (a->h % a->h_kv)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: h %lld is not a multiple of h_kv %lld", fn,
                         (long long)a->h, (long long)a->h_kv);
    if (a->kv_dtype != FRT_F32 && a->kv_dtype != FRT_F16 && a->kv_dtype != FRT_BF16)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: K/V dtype %s is not F32, F16 or BF16", fn,
                         frt_dtype_name(a->kv_dtype));
    if (a->nq > 0 && (!a->q || !a->o))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: q or o is NULL", fn);
    if (a->nk > 0 && (!a->k || !a->v))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: k or v is NULL", fn);
    const frt_attn_params *p = &a->p;
    if (!isfinite(p->scale)) return frt_error(FRT_ERR_INVALID_ARG, "%s: scale is not finite", fn);
    if (p->kv_len < 0 || p->kv_len > a->nk)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: kv_len %lld outside [0, nk %lld]", fn,
                         (long long)p->kv_len, (long long)a->nk);
    if (p->causal && (p->q_pos0 < 0 || p->q_pos0 > INT64_MAX - a->nq))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: bad q_pos0 %lld", fn, (long long)p->q_pos0);
    if (p->mask && a->nq > 1 && p->mask_stride < a->nk)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: mask_stride %lld < nk %lld", fn,
                         (long long)p->mask_stride, (long long)a->nk);
    if (p->use_unified_max && !isfinite(p->phi))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: phi is not finite", fn);
    return FRT_OK;
}

static frt_status check_fast_args(const frt_attn_args *a, const char *fn)
{
    FRT_TRY(check_args(a, fn));
    if (a->d % 16 || a->d > FRT_ATTN_MAX_D)
        return frt_error(FRT_ERR_UNSUPPORTED, "%s: head dim %lld (needs a multiple of 16, <= %d)",
                         fn, (long long)a->d, FRT_ATTN_MAX_D);
    return FRT_OK;
}

static int64_t kv_end(const frt_attn_args *a)
{
    return a->p.kv_len > 0 ? a->p.kv_len : a->nk;
}

static int64_t min64(int64_t x, int64_t y)
{
    return x < y ? x : y;
}

/* ---- working memory ------------------------------------------------------
 * One cached buffer is reused across calls, because fresh pages cost more
 * than a small attention call; a concurrent caller that finds it taken gets
 * its own buffer for that call. */

static struct {
    atomic_flag busy;
    void *p;
    size_t n;
} scratch_cache = {ATOMIC_FLAG_INIT, NULL, 0};

static void *scratch_get(size_t n, bool *cached)
{
    *cached = !atomic_flag_test_and_set_explicit(&scratch_cache.busy, memory_order_acquire);
    if (!*cached) return frt_alloc(n);
    if (scratch_cache.n < n) {
        frt_free(scratch_cache.p);
        scratch_cache.n = 0;
        scratch_cache.p = frt_alloc(n);
        if (!scratch_cache.p) {
            atomic_flag_clear_explicit(&scratch_cache.busy, memory_order_release);
            return NULL;
        }
        scratch_cache.n = n;
    }
    return scratch_cache.p;
}

static void scratch_put(void *p, bool cached)
{
    if (cached)
        atomic_flag_clear_explicit(&scratch_cache.busy, memory_order_release);
    else
        frt_free(p);
}

static size_t round64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* ---- flash (prefill) ----------------------------------------------------- */

/* Tile sizes, measured on the Zen 5 build machine (one thread, CPU time,
 * N = 2048, GFLOP/s against an FMA peak of ~116 per core):
 *   d = 128, bq x bk:  64x32 101.8  64x64 103.5  64x128 99.8  64x256 100.2
 *                      128x64 97.5  128x128 100.3  128x256 101.3  256x128 100.1
 *   d = 64:            64x64 98.8  64x128 99.0  128x128 99.5  128x256 101.8
 * All within 5%: the S^T and P V micro-kernels alone run at ~110 GFLOP/s from
 * L1/L2 at any of these. 64 x 64 was best at d = 128 and has the smallest
 * per-thread scratch and the finest causal load balance. `frt-bench attn
 * --sweep-tiles` repeats the measurement. */
#define FLASH_BQ_DEFAULT 64
#define FLASH_BK_DEFAULT 64
static int flash_bq = FLASH_BQ_DEFAULT, flash_bk = FLASH_BK_DEFAULT;

void frt_attn_set_tiles(int bq, int bk)
{
    flash_bq = bq > 0 && bq % 64 == 0 && bq <= 1024 ? bq : FLASH_BQ_DEFAULT;
    flash_bk = bk > 0 && bk <= 1024 ? bk : FLASH_BK_DEFAULT;
}

typedef struct flash_job {
    const frt_attn_args *a;
    const frt_attn_kernels *kern;
    int bq, bk;
    int64_t nk_end, nqb, ntask, group;
    float qscale;
    char *scratch;
    size_t per_thread;
    atomic_llong next;
} flash_job;

static const void *kv_row(const frt_attn_args *a, const void *base, int64_t tok, int64_t st,
                          int64_t sh, int64_t head)
{
    size_t es = a->kv_dtype == FRT_F32 ? 4 : 2;
    return (const char *)base + (tok * st + head * sh) * (int64_t)es;
}

/* K or V rows [k0, k0 + jn) of one head as f32 rows: in place for f32,
 * else converted into buf. */
static const float *kv_block(const flash_job *j, const void *base, int64_t st, int64_t sh,
                             int64_t head, int64_t k0, int jn, float *buf, int64_t *rst)
{
    const frt_attn_args *a = j->a;
    const void *src = kv_row(a, base, k0, st, sh, head);
    if (a->kv_dtype == FRT_F32) {
        *rst = st;
        return src;
    }
    j->kern->convert(a->kv_dtype, src, st, jn, (int)a->d, buf);
    *rst = a->d;
    return buf;
}

static void flash_task(flash_job *j, float *ws, int64_t task)
{
    const frt_attn_args *a = j->a;
    const frt_attn_kernels *kern = j->kern;
    const frt_attn_params *p = &a->p;
    const int bq = j->bq, bk = j->bk, d = (int)a->d;
    /* Heaviest query blocks first (the last ones under a causal mask), and
     * the heads sharing a K/V head next to each other. */
    int64_t qb = j->nqb - 1 - task / a->h, hh = task % a->h, kvh = hh / j->group;
    int64_t q0 = qb * bq;
    int nr = (int)min64(bq, a->nq - q0);
    float *qt = ws, *st = qt + bq * d, *ob = st + bq * bk, *kc = ob + bq * d, *vc = kc + bk * d;
    float *m = vc + bk * d, *l = m + bq, *alpha = l + bq;

    for (int i = 0; i < nr; i++) {
        const float *qr = a->q + (q0 + i) * a->q_st + hh * a->q_sh;
        for (int c = 0; c < d; c++) qt[c * bq + i] = qr[c] * j->qscale;
    }
    for (int c = 0; c < d; c++)
        for (int i = nr; i < bq; i++) qt[c * bq + i] = 0.0f;
    for (int i = 0; i < bq; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    memset(ob, 0, sizeof(float) * bq * d);

    int64_t kend = j->nk_end;
    if (p->causal) kend = min64(kend, p->q_pos0 + q0 + nr);
    for (int64_t k0 = 0; k0 < kend; k0 += bk) {
        int jn = (int)min64(bk, kend - k0);
        int64_t kst, vst;
        const float *kp = kv_block(j, a->k, a->k_st, a->k_sh, kvh, k0, jn, kc, &kst);
        kern->qk(qt, bq, kp, kst, jn, d, st);
        if (p->mask)
            for (int i = 0; i < nr; i++) {
                const float *mr = p->mask + (q0 + i) * p->mask_stride + k0;
                for (int x = 0; x < jn; x++) st[x * bq + i] += mr[x] * (float)FRT_ATTN_LOG2E;
            }
        /* Only blocks crossing the diagonal need the causal mask. */
        bool diag = p->causal && k0 + jn - 1 > p->q_pos0 + q0;
        kern->softmax(st, bq, jn, diag, diag ? (int)(k0 - p->q_pos0 - q0) : 0, m, l, alpha);
        const float *vp = kv_block(j, a->v, a->v_st, a->v_sh, kvh, k0, jn, vc, &vst);
        kern->pv(FRT_F32, st, 1, bq, bq, vp, vst, jn, d, ob, d, alpha);
    }
    for (int i = 0; i < nr; i++) {
        float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f;
        float *orow = a->o + (q0 + i) * a->o_st + hh * a->o_sh;
        for (int c = 0; c < d; c++) orow[c] = ob[i * d + c] * inv;
    }
}

static void flash_worker(void *arg, int ith, int nth)
{
    (void)nth;
    flash_job *j = arg;
    float *ws = (float *)(j->scratch + (size_t)ith * j->per_thread);
    for (;;) {
        long long t = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (t >= j->ntask) break;
        flash_task(j, ws, t);
    }
}

frt_status frt_cpu_flash_attn(const frt_attn_args *a, frt_pool *pool)
{
    FRT_TRY(check_fast_args(a, "frt_cpu_flash_attn"));
    if (a->nq == 0) return FRT_OK;
    flash_job j = {.a = a, .kern = attn_kernels(), .bq = flash_bq, .bk = flash_bk};
    j.nk_end = kv_end(a);
    j.group = a->h / a->h_kv;
    j.qscale = (float)(a->p.scale * FRT_ATTN_LOG2E);
    j.nqb = (a->nq + j.bq - 1) / j.bq;
    if (!frt_mul_i64(j.nqb, a->h, &j.ntask))
        return frt_error(FRT_ERR_INVALID_ARG, "frt_cpu_flash_attn: too many query blocks");
    size_t d = (size_t)a->d, bq = (size_t)j.bq, bk = (size_t)j.bk;
    j.per_thread = round64(sizeof(float) * (2 * bq * d + bq * bk + 2 * bk * d + 3 * bq));
    int nth = pool ? frt_pool_size(pool) : 1;
    bool cached;
    j.scratch = scratch_get(j.per_thread * (size_t)nth, &cached);
    if (!j.scratch) return FRT_ERR_NOMEM;
    atomic_init(&j.next, 0);
    if (pool)
        frt_pool_run(pool, flash_worker, &j);
    else
        flash_worker(&j, 0, 1);
    scratch_put(j.scratch, cached);
    return FRT_OK;
}

/* ---- decode (split KV) ---------------------------------------------------- */

/* Keys per block. A unit walks its key chunk block by block and, within a
 * block, head by head, so with the usual [token][head][d] cache layout it
 * streams one contiguous region. The rows of the (block, head) step
 * DEC_AHEAD steps later are prefetched while a step computes: far enough
 * ahead to hide the DRAM latency, near enough (64 KiB at d = 128 in f16)
 * that nothing prefetched is evicted from L2 before its use. */
#define DEC_BK        32
#define DEC_AHEAD     4
#define DEC_RG        16 /* query rows per pass over a block */
#define DEC_SUB       16 /* keys per slice of a block between prefetches */
#define DEC_MIN_CHUNK 512

/* Rows of one K/V head: r = qi * group + head-in-group; the ones to compute
 * are list[kvh * rows + t], t < count[kvh]. Each (chunk, head, row) keeps
 * its partial result (m, l, O[d]) in part, O unnormalised, in the log2
 * domain; unified chunks accumulate exp2(s - phi) and keep their true max in
 * m only for the range check. */
typedef struct decode_job {
    const frt_attn_args *a;
    const frt_attn_kernels *kern;
    int64_t nk_end, group, rows, nchunk, chunk, nhb, hpb, nunit;
    float phi2;
    bool unified;
    const int32_t *list;
    const int64_t *count;
    const float *qs; /* [h_kv][rows][d]: q rows of the list, scaled */
    float *part;     /* [h_kv][nchunk][rows][d + 2] */
    char *scratch;
    size_t per_thread;
    atomic_llong next;
} decode_job;

static void prefetch_rows(const frt_attn_args *a, const void *base, int64_t st, int64_t sh,
                          int64_t head, int64_t k0, int64_t n)
{
    size_t bytes = (size_t)a->d * (a->kv_dtype == FRT_F32 ? 4 : 2);
    for (int64_t x = 0; x < n; x++) {
        const char *row = kv_row(a, base, k0 + x, st, sh, head);
        for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(row + off, 0, 2);
    }
}

static void decode_unit(decode_job *j, float *ws, int64_t u)
{
    const frt_attn_args *a = j->a;
    const frt_attn_params *p = &a->p;
    const frt_attn_kernels *kern = j->kern;
    const int d = (int)a->d;
    const int64_t od = d + 2;
    int64_t ci = u / j->nhb, hb = u % j->nhb;
    int64_t c0 = ci * j->chunk, c1 = min64(j->nk_end, c0 + j->chunk);
    int64_t h0 = hb * j->hpb, h1 = min64(a->h_kv, h0 + j->hpb);
    float *s = ws, *kc = s + DEC_RG * DEC_BK;
    float alpha[DEC_RG], ones[DEC_RG];
    for (int t = 0; t < DEC_RG; t++) ones[t] = 1.0f;

    for (int64_t kvh = h0; kvh < h1; kvh++)
        for (int64_t t = 0; t < j->count[kvh]; t++) {
            float *pp = j->part + ((kvh * j->nchunk + ci) * j->rows + t) * od;
            pp[0] = -INFINITY;
            memset(pp + 1, 0, sizeof(float) * (size_t)(d + 1));
        }
    for (int64_t k0 = c0; k0 < c1; k0 += DEC_BK) {
        int jn = (int)min64(DEC_BK, c1 - k0), jnp = (jn + 15) & ~15;
        for (int64_t kvh = h0; kvh < h1; kvh++) {
            /* The step to prefetch for: DEC_AHEAD heads on, wrapping into
             * the following blocks. */
            int64_t pk0 = k0, ph = kvh + DEC_AHEAD;
            while (ph >= h1) {
                ph -= h1 - h0;
                pk0 += DEC_BK;
            }
            int64_t pn = pk0 < c1 ? min64(DEC_BK, c1 - pk0) : 0;
            const int32_t *list = j->list + kvh * j->rows;
            int64_t cnt = j->count[kvh];
            if (!cnt) continue;
            /* Causal: the block may lie past every listed row. */
            if (p->causal && k0 > p->q_pos0 + list[cnt - 1] / j->group) continue;
            /* Rows a cache line apart in the same L1 set (a stride of 8 KiB
             * with 32 heads) would thrash while the score kernel reads 16
             * of them at once: K is converted (or copied) once into
             * contiguous f32 rows. The prefetches go out a slice at a time
             * between the kernels, so the memory stays busy while they
             * compute. */
            for (int x = 0; x < jn; x += DEC_SUB) {
                prefetch_rows(a, a->k, a->k_st, a->k_sh, ph, pk0 + x, min64(DEC_SUB, pn - x));
                kern->convert(a->kv_dtype, kv_row(a, a->k, k0 + x, a->k_st, a->k_sh, kvh), a->k_st,
                              (int)min64(DEC_SUB, jn - x), d, kc + x * d);
            }
            for (int64_t t0 = 0; t0 < cnt; t0 += DEC_RG) {
                int nr = (int)min64(DEC_RG, cnt - t0);
                float *prow = j->part + ((kvh * j->nchunk + ci) * j->rows + t0) * od;
                kern->dots(FRT_F32, j->qs + (kvh * j->rows + t0) * d, nr, kc, d, jn, d, s, DEC_BK);
                for (int t = 0; t < nr; t++) {
                    float *sr = s + t * DEC_BK, *pp = prow + t * od;
                    int64_t qi = list[t0 + t] / j->group;
                    if (p->mask) {
                        const float *mr = p->mask + qi * p->mask_stride + k0;
                        for (int x = 0; x < jn; x++) sr[x] += mr[x] * (float)FRT_ATTN_LOG2E;
                    }
                    int64_t lim = p->causal ? min64(jn, p->q_pos0 + qi + 1 - k0) : jn;
                    for (int64_t x = lim > 0 ? lim : 0; x < jnp; x++) sr[x] = -INFINITY;
                    float bm = kern->vmax(sr, jnp);
                    if (j->unified) {
                        pp[0] = fmaxf(pp[0], bm);
                        pp[1] += kern->exp2_sum(sr, jnp, j->phi2);
                        alpha[t] = 1.0f;
                    } else {
                        float mn = fmaxf(pp[0], bm), ms = fmaxf(mn, -FLT_MAX);
                        alpha[t] = exp2f(pp[0] - ms);
                        pp[1] = alpha[t] * pp[1] + kern->exp2_sum(sr, jnp, ms);
                        pp[0] = mn;
                    }
                }
                for (int x = 0; x < jn; x += DEC_SUB) {
                    if (t0 == 0)
                        prefetch_rows(a, a->v, a->v_st, a->v_sh, ph, pk0 + x,
                                      min64(DEC_SUB, pn - x));
                    kern->pv(a->kv_dtype, s + x, DEC_BK, 1, nr,
                             kv_row(a, a->v, k0 + x, a->v_st, a->v_sh, kvh), a->v_st,
                             (int)min64(DEC_SUB, jn - x), d, prow + 2, od, x ? ones : alpha);
                }
            }
        }
    }
}

static void decode_worker(void *arg, int ith, int nth)
{
    (void)nth;
    decode_job *j = arg;
    float *ws = (float *)(j->scratch + (size_t)ith * j->per_thread);
    for (;;) {
        long long u = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (u >= j->nunit) break;
        decode_unit(j, ws, u);
    }
}

/* Scaled q rows of every head's list, in list order. */
static void decode_gather_q(decode_job *j, float *qs, float qscale)
{
    const frt_attn_args *a = j->a;
    for (int64_t kvh = 0; kvh < a->h_kv; kvh++)
        for (int64_t t = 0; t < j->count[kvh]; t++) {
            int64_t r = j->list[kvh * j->rows + t];
            int64_t qi = r / j->group, hh = kvh * j->group + r % j->group;
            const float *qr = a->q + qi * a->q_st + hh * a->q_sh;
            float *dst = qs + (kvh * j->rows + t) * a->d;
            for (int64_t c = 0; c < a->d; c++) dst[c] = qr[c] * qscale;
        }
}

static void decode_run(decode_job *j, float *qs, float qscale, frt_pool *pool)
{
    decode_gather_q(j, qs, qscale);
    atomic_init(&j->next, 0);
    if (pool)
        frt_pool_run(pool, decode_worker, j);
    else
        decode_worker(j, 0, 1);
}

/* Merge the chunks of every listed row and write its output row. Unified:
 * rows out of the safe range are not written but moved to the front of
 * their list for the exact pass; returns how many. */
static int64_t decode_merge(decode_job *j, int32_t *list, int64_t *count)
{
    const frt_attn_args *a = j->a;
    const int d = (int)a->d;
    const float hi = (float)(FRT_ATTN_UNIFIED_HI * FRT_ATTN_LOG2E);
    const float lo = (float)(FRT_ATTN_UNIFIED_LO * FRT_ATTN_LOG2E);
    int64_t nfall = 0;
    for (int64_t kvh = 0; kvh < a->h_kv; kvh++) {
        int32_t *lst = list + kvh * j->rows;
        int64_t keep = 0;
        for (int64_t t = 0; t < count[kvh]; t++) {
            int64_t r = lst[t], qi = r / j->group, hh = kvh * j->group + r % j->group;
            float M = -INFINITY;
            for (int64_t c = 0; c < j->nchunk; c++)
                M = fmaxf(M, j->part[((kvh * j->nchunk + c) * j->rows + t) * (d + 2)]);
            if (j->unified && M != -INFINITY && (M - j->phi2 > hi || M - j->phi2 < lo)) {
                lst[keep++] = (int32_t)r;
                continue;
            }
            float ms = fmaxf(M, -FLT_MAX), L = 0.0f;
            float *orow = a->o + qi * a->o_st + hh * a->o_sh;
            for (int c = 0; c < d; c++) orow[c] = 0.0f;
            for (int64_t c = 0; c < j->nchunk; c++) {
                const float *pp = j->part + ((kvh * j->nchunk + c) * j->rows + t) * (d + 2);
                float w = j->unified ? 1.0f : exp2f(pp[0] - ms);
                L += w * pp[1];
                for (int x = 0; x < d; x++) orow[x] += w * pp[2 + x];
            }
            float inv = L > 0.0f ? 1.0f / L : 0.0f;
            for (int x = 0; x < d; x++) orow[x] *= inv;
        }
        count[kvh] = keep;
        nfall += keep;
    }
    return nfall;
}

frt_status frt_cpu_decode_attn(const frt_attn_args *a, frt_pool *pool, frt_decode_stats *stats)
{
    FRT_TRY(check_fast_args(a, "frt_cpu_decode_attn"));
    if (a->nq == 0) return FRT_OK;
    decode_job j = {.a = a, .kern = attn_kernels(), .unified = a->p.use_unified_max};
    j.nk_end = kv_end(a);
    j.group = a->h / a->h_kv;
    j.rows = j.group * a->nq;
    if (j.rows > INT32_MAX)
        return frt_error(FRT_ERR_INVALID_ARG, "frt_cpu_decode_attn: too many query rows");
    float qscale = (float)(a->p.scale * FRT_ATTN_LOG2E);
    j.phi2 = (float)(a->p.phi * FRT_ATTN_LOG2E);
    /* Units: key chunks (of at least DEC_MIN_CHUNK keys) times blocks of
     * heads, enough that every thread gets several. */
    int nth = pool ? frt_pool_size(pool) : 1;
    int64_t want = 8 * (int64_t)nth;
    j.nchunk = min64(want, (j.nk_end + DEC_MIN_CHUNK - 1) / DEC_MIN_CHUNK);
    if (j.nchunk < 1) j.nchunk = 1;
    j.chunk = (j.nk_end + j.nchunk - 1) / j.nchunk;
    j.nhb = min64((want + j.nchunk - 1) / j.nchunk, a->h_kv);
    j.hpb = (a->h_kv + j.nhb - 1) / j.nhb;
    j.nhb = (a->h_kv + j.hpb - 1) / j.hpb;
    j.nunit = j.nchunk * j.nhb;

    size_t d = (size_t)a->d, nrows = (size_t)(a->h_kv * j.rows), part_n, qs_n;
    if (!frt_mul_size(nrows * (size_t)j.nchunk, (d + 2) * sizeof(float), &part_n) ||
        !frt_mul_size(nrows, d * sizeof(float), &qs_n))
        return frt_error(FRT_ERR_INVALID_ARG, "frt_cpu_decode_attn: too many query rows");
    j.per_thread = round64(sizeof(float) * (DEC_RG * DEC_BK + DEC_BK * d));
    size_t off_qs = round64(part_n), off_list = off_qs + round64(qs_n);
    size_t off_count = off_list + round64(nrows * sizeof(int32_t));
    size_t off_ws = off_count + round64((size_t)a->h_kv * sizeof(int64_t));
    bool cached;
    char *mem = scratch_get(off_ws + j.per_thread * (size_t)nth, &cached);
    if (!mem) return FRT_ERR_NOMEM;
    j.part = (float *)mem;
    float *qs = (float *)(mem + off_qs);
    int32_t *list = (int32_t *)(mem + off_list);
    int64_t *count = (int64_t *)(mem + off_count);
    j.qs = qs;
    j.list = list;
    j.count = count;
    j.scratch = mem + off_ws;
    for (int64_t kvh = 0; kvh < a->h_kv; kvh++) {
        count[kvh] = j.rows;
        for (int64_t r = 0; r < j.rows; r++) list[kvh * j.rows + r] = (int32_t)r;
    }

    decode_run(&j, qs, qscale, pool);
    int64_t nfall = decode_merge(&j, list, count);
    if (nfall > 0) {
        j.unified = false;
        decode_run(&j, qs, qscale, pool);
        decode_merge(&j, list, count);
    }
    scratch_put(mem, cached);
    if (stats) {
        stats->rows += a->nq * a->h;
        stats->rows_fallback += nfall;
    }
    return FRT_OK;
}

frt_status frt_cpu_attention(const frt_attn_args *a, frt_pool *pool)
{
    FRT_TRY(check_fast_args(a, "frt_cpu_attention"));
    if (a->nq <= FRT_ATTN_DECODE_MAX_NQ) return frt_cpu_decode_attn(a, pool, NULL);
    return frt_cpu_flash_attn(a, pool);
}

/* ---- naive twin ------------------------------------------------------------ */

static double kv_at(const frt_attn_args *a, const void *base, int64_t tok, int64_t st, int64_t sh,
                    int64_t head, int64_t c)
{
    const void *row = kv_row(a, base, tok, st, sh, head);
    switch (a->kv_dtype) {
    case FRT_F16: return frt_f16_to_f32(((const uint16_t *)row)[c]);
    case FRT_BF16: return frt_bf16_to_f32(((const uint16_t *)row)[c]);
    default: return ((const float *)row)[c];
    }
}

frt_status frt_ref_attn(const frt_attn_args *a)
{
    FRT_TRY(check_args(a, "frt_ref_attn"));
    if (a->nq == 0) return FRT_OK;
    const frt_attn_params *p = &a->p;
    int64_t nk_end = kv_end(a), group = a->h / a->h_kv;
    double *s = malloc(sizeof(double) * (size_t)(a->nk > 0 ? a->nk : 1));
    double *acc = malloc(sizeof(double) * (size_t)a->d);
    if (!s || !acc) {
        free(s);
        free(acc);
        return frt_error(FRT_ERR_NOMEM, "frt_ref_attn: no memory for a score row");
    }
    for (int64_t qi = 0; qi < a->nq; qi++)
        for (int64_t hh = 0; hh < a->h; hh++) {
            int64_t kvh = hh / group;
            const float *qr = a->q + qi * a->q_st + hh * a->q_sh;
            double mx = -INFINITY;
            for (int64_t j = 0; j < a->nk; j++) {
                s[j] = -INFINITY;
                if (j >= nk_end || (p->causal && j > p->q_pos0 + qi)) continue;
                double dot = 0.0;
                for (int64_t c = 0; c < a->d; c++)
                    dot += (double)qr[c] * kv_at(a, a->k, j, a->k_st, a->k_sh, kvh, c);
                s[j] = dot * p->scale;
                if (p->mask) s[j] += p->mask[qi * p->mask_stride + j];
                if (s[j] > mx) mx = s[j];
            }
            float *orow = a->o + qi * a->o_st + hh * a->o_sh;
            if (mx == -INFINITY) {
                for (int64_t c = 0; c < a->d; c++) orow[c] = 0.0f;
                continue;
            }
            double sum = 0.0;
            for (int64_t c = 0; c < a->d; c++) acc[c] = 0.0;
            for (int64_t j = 0; j < a->nk; j++) {
                if (s[j] == -INFINITY) continue;
                double e = exp(s[j] - mx);
                sum += e;
                for (int64_t c = 0; c < a->d; c++)
                    acc[c] += e * kv_at(a, a->v, j, a->v_st, a->v_sh, kvh, c);
            }
            for (int64_t c = 0; c < a->d; c++) orow[c] = (float)(acc[c] / sum);
        }
    free(s);
    free(acc);
    return FRT_OK;
}
