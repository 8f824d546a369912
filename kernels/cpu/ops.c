/* CPU element-wise and row ops: dispatch to the widest kernel table the CPU
 * has (ops_avx512.c, ops_avx2.c, or the one-lane build of the same kernels
 * below), and split large inputs over the thread pool. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "ops.h"
#include "ops_impl.h"

/* ---- one-lane primitives: the scalar build of ops_simd.h ----------------- */

typedef float vf;
typedef bool vm;
#define VL 1

static inline vf v_load(const float *p)
{
    return *p;
}
static inline void v_store(float *p, vf v)
{
    *p = v;
}
/* Never reached with one lane (no partial vectors); here for ops_simd.h. */
static inline vf v_loadn(const float *p, int64_t n, vf fill)
{
    return n > 0 ? *p : fill;
}
static inline void v_storen(float *p, vf v, int64_t n)
{
    if (n > 0) *p = v;
}
static inline vf v_set1(float a)
{
    return a;
}
static inline vf v_add(vf a, vf b)
{
    return a + b;
}
static inline vf v_sub(vf a, vf b)
{
    return a - b;
}
static inline vf v_mul(vf a, vf b)
{
    return a * b;
}
static inline vf v_div(vf a, vf b)
{
    return a / b;
}
/* Same NaN rule as minps / maxps: the second operand wins. */
static inline vf v_min(vf a, vf b)
{
    return a < b ? a : b;
}
static inline vf v_max(vf a, vf b)
{
    return a > b ? a : b;
}
/* fmaf, not a * b + c: the exact product matters in the GELU tail */
static inline vf v_fma(vf a, vf b, vf c)
{
    return fmaf(a, b, c);
}
static inline vf v_fms(vf a, vf b, vf c)
{
    return fmaf(a, b, -c);
}
static inline vf v_fnma(vf a, vf b, vf c)
{
    return fmaf(-a, b, c);
}
static inline vf v_abs(vf a)
{
    return fabsf(a);
}
static inline vf v_round(vf a)
{
    return nearbyintf(a);
}
static inline vf v_pow2i(vf n)
{
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float r;
    memcpy(&r, &bits, sizeof r);
    return r;
}
static inline vm v_lt(vf a, vf b)
{
    return a < b;
}
static inline vm v_gt(vf a, vf b)
{
    return a > b;
}
static inline vf v_sel(vm m, vf a, vf b)
{
    return m ? a : b;
}
static inline float v_hsum(vf a)
{
    return a;
}
static inline float v_hmax(vf a)
{
    return a;
}

#include "ops_vmath.h"

#include "ops_simd.h"

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* Direct convolution, one output row at a time: for each (input channel,
 * tap), the output steps whose input falls inside [0, tin) get w * x. */
static void conv1d_scalar(const frt_conv1d_job *j, int64_t co0, int64_t co1, int64_t t0, int64_t t1)
{
    const int64_t s = j->stride;
    for (int64_t co = co0; co < co1; co++) {
        float *yr = j->y + co * j->tout;
        const float *xg = j->x + (co / j->cout_g) * j->cin_g * j->tin;
        const float *wr = j->w + co * j->cin_g * j->k;
        float bias = j->b ? j->b[co] : 0.0f;
        for (int64_t t = t0; t < t1; t++) yr[t] = bias;
        for (int64_t ci = 0; ci < j->cin_g; ci++) {
            const float *xr = xg + ci * j->tin;
            for (int64_t kk = 0; kk < j->k; kk++) {
                int64_t off = kk * j->dil - j->pad;
                if (j->tin - off <= 0) continue;
                int64_t ta = off >= 0 ? 0 : ceil_div(-off, s);
                int64_t tb = (j->tin - 1 - off) / s + 1;
                if (ta < t0) ta = t0;
                if (tb > t1) tb = t1;
                float w = wr[ci * j->k + kk];
                for (int64_t t = ta; t < tb; t++) yr[t] += w * xr[t * s + off];
            }
        }
    }
}

const frt_ops_isa frt_ops_scalar = {
    .add = k_add,
    .mul = k_mul,
    .scale = k_scale,
    .layernorm = k_layernorm,
    .rmsnorm = k_rmsnorm,
    .act = k_act,
    .gate = k_gate,
    .softmax = k_softmax,
    .rope = k_rope,
    .conv1d = conv1d_scalar,
};

/* ---- dispatch and threading ---------------------------------------------- */

/* Below this much work (elements, weighted by cost) the calling thread does
 * it alone: waking the pool costs microseconds. */
#define PAR_MIN_WORK 16384

static const frt_ops_isa *isa(void)
{
    const frt_cpu_info *c = frt_cpu();
    return c->avx512 ? &frt_ops_avx512 : c->avx2 ? &frt_ops_avx2 : &frt_ops_scalar;
}

static void run(frt_pool *pool, int64_t work, frt_task_fn fn, void *arg)
{
    if (work < PAR_MIN_WORK)
        fn(arg, 0, 1);
    else
        frt_pool_run(pool, fn, arg);
}

/* Element range of worker ith, in whole cache lines so that workers never
 * write the same line. */
static void split_elems(int64_t n, int ith, int nth, int64_t *i0, int64_t *i1)
{
    long b, e;
    frt_split_range((long)ceil_div(n, 16), ith, nth, &b, &e);
    *i0 = b * 16;
    *i1 = e * 16 < n ? e * 16 : n;
}

typedef struct {
    const frt_ops_isa *k;
    float *y;
    const float *a, *b;
    int64_t n, bn;
    bool mul;
    float s;
    frt_act act;
} elem_job;

static void binary_task(void *arg, int ith, int nth)
{
    const elem_job *jb = arg;
    void (*f)(float *, const float *, const float *, int64_t) = jb->mul ? jb->k->mul : jb->k->add;
    int64_t i, i1;
    split_elems(jb->n, ith, nth, &i, &i1);
    if (jb->bn == jb->n) {
        if (i < i1) f(jb->y + i, jb->a + i, jb->b + i, i1 - i);
        return;
    }
    /* b repeats every bn elements: run the kernel on each stretch of one period */
    for (int64_t j = i % jb->bn; i < i1; j = 0) {
        int64_t len = jb->bn - j < i1 - i ? jb->bn - j : i1 - i;
        f(jb->y + i, jb->a + i, jb->b + j, len);
        i += len;
    }
}

static void binary(float *y, const float *a, const float *b, int64_t n, int64_t bn, bool mul,
                   frt_pool *pool)
{
    elem_job jb = {.k = isa(), .y = y, .a = a, .b = b, .n = n, .bn = bn, .mul = mul};
    run(pool, n, binary_task, &jb);
}

void frt_cpu_add(float *y, const float *a, const float *b, int64_t n, int64_t bn, frt_pool *pool)
{
    binary(y, a, b, n, bn, false, pool);
}

void frt_cpu_mul(float *y, const float *a, const float *b, int64_t n, int64_t bn, frt_pool *pool)
{
    binary(y, a, b, n, bn, true, pool);
}

static void scale_task(void *arg, int ith, int nth)
{
    const elem_job *jb = arg;
    int64_t i0, i1;
    split_elems(jb->n, ith, nth, &i0, &i1);
    if (i0 < i1) jb->k->scale(jb->y + i0, jb->a + i0, jb->s, i1 - i0);
}

void frt_cpu_scale(float *y, const float *x, float s, int64_t n, frt_pool *pool)
{
    elem_job jb = {.k = isa(), .y = y, .a = x, .n = n, .s = s};
    run(pool, n, scale_task, &jb);
}

static void act_task(void *arg, int ith, int nth)
{
    const elem_job *jb = arg;
    int64_t i0, i1;
    split_elems(jb->n, ith, nth, &i0, &i1);
    if (i0 < i1) jb->k->act(jb->y + i0, jb->a + i0, i1 - i0, jb->act);
}

void frt_cpu_act(float *y, const float *x, int64_t n, frt_act kind, frt_pool *pool)
{
    elem_job jb = {.k = isa(), .y = y, .a = x, .n = n, .act = kind};
    /* an exp and a division per element: worth threads sooner than an add */
    run(pool, kind == FRT_ACT_RELU ? n : 4 * n, act_task, &jb);
}

static void gate_task(void *arg, int ith, int nth)
{
    const elem_job *jb = arg;
    int64_t i0, i1;
    split_elems(jb->n, ith, nth, &i0, &i1);
    if (i0 < i1) jb->k->gate(jb->y + i0, jb->a + i0, jb->b + i0, i1 - i0);
}

void frt_cpu_gate(float *y, const float *a, const float *b, int64_t n, frt_pool *pool)
{
    elem_job jb = {.k = isa(), .y = y, .a = a, .b = b, .n = n};
    run(pool, 8 * n, gate_task, &jb);
}

typedef enum { ROW_LAYERNORM, ROW_RMSNORM, ROW_SOFTMAX } row_kind;

typedef struct {
    const frt_ops_isa *k;
    row_kind kind;
    float *y;
    const float *x, *w, *b;
    int64_t rows, cols;
    float eps;
} row_job;

static void row_task(void *arg, int ith, int nth)
{
    const row_job *jb = arg;
    long r0, r1;
    frt_split_range((long)jb->rows, ith, nth, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
        float *y = jb->y + r * jb->cols;
        const float *x = jb->x + r * jb->cols;
        switch (jb->kind) {
        case ROW_LAYERNORM: jb->k->layernorm(y, x, jb->w, jb->b, jb->cols, jb->eps); break;
        case ROW_RMSNORM: jb->k->rmsnorm(y, x, jb->w, jb->cols, jb->eps); break;
        case ROW_SOFTMAX: jb->k->softmax(y, x, jb->cols); break;
        }
    }
}

void frt_cpu_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows,
                       int64_t cols, float eps, frt_pool *pool)
{
    row_job jb = {isa(), ROW_LAYERNORM, y, x, w, b, rows, cols, eps};
    run(pool, rows * cols, row_task, &jb);
}

void frt_cpu_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t cols,
                     float eps, frt_pool *pool)
{
    row_job jb = {isa(), ROW_RMSNORM, y, x, w, NULL, rows, cols, eps};
    run(pool, rows * cols, row_task, &jb);
}

void frt_cpu_softmax(float *y, const float *x, int64_t rows, int64_t cols, frt_pool *pool)
{
    row_job jb = {isa(), ROW_SOFTMAX, y, x, NULL, NULL, rows, cols, 0.0f};
    run(pool, 4 * rows * cols, row_task, &jb);
}

/* ---- RoPE ------------------------------------------------------------------ */

/* Frequencies handled per pass; the tables of this size live on the stack. */
#define ROPE_CHUNK 256
/* Steps between exact sincos calls; in between, angles advance by a
 * rotation in double, whose error (~1e-16 a step) stays far below f32. */
#define ROPE_RESYNC 64

typedef struct {
    const frt_ops_isa *k;
    float *x;
    int64_t T, H, d, st, sh, pos0;
    double theta, linear_scale;
} rope_job;

/* Angles in double: at position 60000 an f32 angle would be off by ~4e-3. */
static void rope_task(void *arg, int ith, int nth)
{
    const rope_job *jb = arg;
    const int64_t half = jb->d / 2;
    /* whole resync blocks per worker: the same angles for any thread count */
    long b0, b1;
    frt_split_range((long)ceil_div(jb->T, ROPE_RESYNC), ith, nth, &b0, &b1);
    const int64_t t0 = b0 * ROPE_RESYNC, t1 = b1 * ROPE_RESYNC < jb->T ? b1 * ROPE_RESYNC : jb->T;
    double inv[ROPE_CHUNK], c[ROPE_CHUNK], s[ROPE_CHUNK], cstep[ROPE_CHUNK], sstep[ROPE_CHUNK];
    float cs[ROPE_CHUNK], sn[ROPE_CHUNK];
    for (int64_t i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
        int64_t n = half - i0 < ROPE_CHUNK ? half - i0 : ROPE_CHUNK;
        /* theta^(-2i/d) as a running product: relative error ~i 1e-16 */
        const double ratio = pow(jb->theta, -2.0 / (double)jb->d);
        inv[0] = pow(jb->theta, -2.0 * (double)i0 / (double)jb->d);
        for (int64_t i = 1; i < n; i++) inv[i] = inv[i - 1] * ratio;
        for (int64_t i = 0; t1 - t0 > 1 && i < n; i++)
            sincos(inv[i] / jb->linear_scale, &sstep[i], &cstep[i]);
        for (int64_t t = t0; t < t1; t++) {
            if (t % ROPE_RESYNC == 0) {
                double p = (double)(jb->pos0 + t) / jb->linear_scale;
                for (int64_t i = 0; i < n; i++) sincos(p * inv[i], &s[i], &c[i]);
            } else {
                for (int64_t i = 0; i < n; i++) {
                    double cn = c[i] * cstep[i] - s[i] * sstep[i];
                    s[i] = s[i] * cstep[i] + c[i] * sstep[i];
                    c[i] = cn;
                }
            }
            for (int64_t i = 0; i < n; i++) {
                cs[i] = (float)c[i];
                sn[i] = (float)s[i];
            }
            for (int64_t h = 0; h < jb->H; h++) {
                float *row = jb->x + t * jb->st + h * jb->sh;
                jb->k->rope(row + i0, row + half + i0, cs, sn, n);
            }
        }
    }
}

void frt_cpu_rope(float *x, int64_t T, int64_t H, int64_t d, int64_t st, int64_t sh, int64_t pos0,
                  float theta, float linear_scale, frt_pool *pool)
{
    rope_job jb = {isa(), x, T, H, d, st, sh, pos0, theta, linear_scale};
    /* the angles of a token cost about as much as rotating one head */
    run(pool, T * (H + 1) * d, rope_task, &jb);
}

/* ---- conv1d ------------------------------------------------------------- */

/* Work items: blocks of CONV_CO_BLOCK output channels (a multiple of every
 * ISA's register tile) times, when there are too few of those to keep the
 * threads busy, blocks of CONV_T_BLOCK output steps. */
#define CONV_CO_BLOCK 12
#define CONV_T_BLOCK  192

typedef struct {
    const frt_ops_isa *k;
    frt_conv1d_job j;
    int64_t nt; /* time blocks per channel block */
    int64_t tb; /* steps per time block */
} conv_task_arg;

static void conv_task(void *arg, int ith, int nth)
{
    const conv_task_arg *a = arg;
    const frt_conv1d_job *j = &a->j;
    long i0, i1;
    frt_split_range((long)(ceil_div(j->cout, CONV_CO_BLOCK) * a->nt), ith, nth, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
        int64_t co0 = i / a->nt * CONV_CO_BLOCK, t0 = i % a->nt * a->tb;
        int64_t co1 = co0 + CONV_CO_BLOCK < j->cout ? co0 + CONV_CO_BLOCK : j->cout;
        int64_t t1 = t0 + a->tb < j->tout ? t0 + a->tb : j->tout;
        a->k->conv1d(j, co0, co1, t0, t1);
    }
}

/* ---- Winograd conv1d ------------------------------------------------------- */

/* Worth it from this many multiply-adds of the direct form: below, the
 * transforms and the scratch cost more than the halved arithmetic saves. */
#define WINO_MIN_WORK (1 << 22)

typedef struct {
    const frt_ops_isa *k;
    frt_wino_job j;
    float *scratch; /* per thread, `per` floats each */
    int64_t per;
    float *u_all; /* long inputs: U of every output block */
    int64_t nblk, nchunk;
} wino_arg;

static void wino_in_task(void *arg, int ith, int nth)
{
    const wino_arg *a = arg;
    long c0, c1;
    frt_split_range((long)a->j.cin, ith, nth, &c0, &c1);
    if (c0 < c1) a->k->wino_in(&a->j, c0, c1);
}

static void wino_blk_task(void *arg, int ith, int nth)
{
    const wino_arg *a = arg;
    long b0, b1;
    frt_split_range((long)a->nblk, ith, nth, &b0, &b1);
    if (b0 < b1) a->k->wino_blocks(&a->j, b0, b1, a->scratch + ith * a->per);
}

static void wino_u_task(void *arg, int ith, int nth)
{
    const wino_arg *a = arg;
    long b0, b1;
    frt_split_range((long)a->nblk, ith, nth, &b0, &b1);
    if (b0 < b1) a->k->wino_u(&a->j, b0, b1, a->u_all);
}

static void wino_chunk_task(void *arg, int ith, int nth)
{
    const wino_arg *a = arg;
    long c0, c1;
    frt_split_range((long)a->nchunk, ith, nth, &c0, &c1);
    if (c0 < c1) a->k->wino_chunks(&a->j, c0, c1, a->u_all, a->scratch + ith * a->per);
}

/* Tiles of m outputs: per phase p < dil, the outputs p, p + dil, ... */
static int64_t wino_tiles(int64_t tout, int64_t dil, int64_t m)
{
    int64_t n = 0;
    for (int64_t p = 0; p < dil && p < tout; p++) n += ceil_div(ceil_div(tout - p, dil), m);
    return n;
}

/* Transformed inputs beyond this many bytes would not stay in a core's
 * L2: longer inputs go through in chunks of tiles (wino_chunks). */
#define WINO_V_BYTES (1 << 20)

/* Stride-1 convolutions with 3, 5 or 7 taps and enough channels as
 * Winograd: F(4, 5) (2.5x fewer multiplies), F(2, 7) (1.75x), F(4, 3) or
 * F(6, 3) (2x, 2.25x: the one with less work once the tiles are padded to
 * whole vectors). Below 128 output channels the input transform costs
 * about what the multiplies save (64 channels, 7 taps: 0.97x the time). False (nothing written) where it does not apply or its
 * scratch cannot be had. */
static bool conv1d_wino(const frt_ops_isa *k, float *y, const float *x, const float *w,
                        const float *b, int64_t cin, int64_t tin, int64_t cout, int64_t kw,
                        int stride, int pad, int dil, int groups, int64_t tout, frt_pool *pool)
{
    if (!k->wino_in || stride != 1 || groups != 1 || (kw != 3 && kw != 5 && kw != 7) ||
        cin < 32 || cout < 128 || tout < 32 || cout * cin * kw * tout < WINO_MIN_WORK ||
        tin > (1 << 28) || pad > (1 << 20) || dil > (1 << 20))
        return false;
    int64_t m = kw == 7 ? 2 : 4, ntiles = wino_tiles(tout, dil, m);
    if (kw == 3) {
        int64_t n6 = wino_tiles(tout, dil, 6);
        if (8 * ceil_div(n6, 16) < 6 * ceil_div(ntiles, 16)) m = 6, ntiles = n6;
    }
    /* a wide dilation leaves the tiles part-empty */
    if (m * ntiles > tout + tout / 4) return false;
    const int64_t npt = m + kw - 1; /* transform points */
    const int64_t np = ceil_div(ntiles, 16) * 16, nblk = ceil_div(cout, FRT_WINO_CO);
    const int nth = frt_pool_size(pool);
    const bool chunked = npt * cin * np * (int64_t)sizeof(float) > WINO_V_BYTES;
    /* floats: V (whole) or U of every block, then per-thread scratch */
    const int64_t big = chunked ? nblk * npt * FRT_WINO_CO * cin : npt * cin * np;
    const int64_t per = chunked ? frt_wino_chunk_scratch(npt, cin) : frt_wino_scratch(npt, cin);
    /* tables padded to whole chunks (the chunks read them in vectors) */
    const int64_t ntab = ceil_div(np, 16 * FRT_WINO_TV) * 16 * FRT_WINO_TV;
    size_t bytes = (size_t)(big + nth * per) * sizeof(float) + 3 * (size_t)ntab * sizeof(int32_t);
    void *mem = NULL;
    if (posix_memalign(&mem, 64, bytes) != 0) return false;
    float *big_buf = mem, *scratch = big_buf + big;
    int32_t *t_in = (int32_t *)(scratch + nth * per), *t_out = t_in + ntab, *cnt = t_out + ntab;
    int64_t n = 0;
    for (int64_t p = 0; p < dil && p < tout; p++) {
        int64_t mp = ceil_div(tout - p, dil);
        for (int64_t q = 0; q < mp; q += m, n++) {
            t_out[n] = (int32_t)(p + q * dil);
            t_in[n] = (int32_t)(p + q * dil - pad);
            cnt[n] = (int32_t)(mp - q < m ? mp - q : m);
        }
    }
    for (; n < ntab; n++) t_in[n] = t_out[n] = cnt[n] = 0;
    wino_arg a = {
        .k = k,
        .j = {y, x, w, b, cin, tin, cout, tout, kw, pad, dil, m, np, t_in, t_out, cnt,
              chunked ? NULL : big_buf},
        .scratch = scratch,
        .per = per,
        .u_all = chunked ? big_buf : NULL,
        .nblk = nblk,
        .nchunk = ceil_div(np, 16 * FRT_WINO_TV),
    };
    if (chunked) {
        run(pool, nblk * FRT_WINO_CO * cin * kw * 4, wino_u_task, &a);
        run(pool, cout * cin * kw * tout / 8, wino_chunk_task, &a);
    } else {
        run(pool, cin * np * 16, wino_in_task, &a);
        run(pool, cout * cin * kw * tout / 8, wino_blk_task, &a);
    }
    free(mem);
    return true;
}

void frt_cpu_conv1d(float *y, const float *x, const float *w, const float *b, int64_t cin,
                    int64_t tin, int64_t cout, int64_t k, int stride, int pad, int dil, int groups,
                    frt_pool *pool)
{
    int64_t tout = frt_conv1d_out_len(tin, k, stride, pad, dil);
    if (tout <= 0 || cout <= 0) return;
    if (conv1d_wino(isa(), y, x, w, b, cin, tin, cout, k, stride, pad, dil, groups, tout, pool))
        return;
    conv_task_arg a = {
        .k = isa(),
        .j = {y, x, w, b, cin, tin, cout, tout, k, cin / groups, cout / groups, stride, pad, dil},
    };
    int nth = frt_pool_size(pool);
    bool few_rows = ceil_div(cout, CONV_CO_BLOCK) < 4 * nth;
    a.tb = few_rows ? CONV_T_BLOCK : tout;
    a.nt = ceil_div(tout, a.tb);
    run(pool, cout * (cin / groups) * k * tout / 8, conv_task, &a);
}
