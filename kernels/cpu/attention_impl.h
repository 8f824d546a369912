/* Internal to kernels/cpu/attention*.c: the block kernels the attention
 * drivers (attention.c) call, one set per ISA, and their shared body.
 *
 * Scores live in the log2 domain: the drivers pre-scale q by
 * scale * log2(e), so the softmax is exp2 and one multiply per score is saved.
 *
 * Flash tiles use a transposed layout with query rows along the vector lanes:
 * qt [d][bq] (the Q tile, packed once per query block), st [jn][bq] (scores,
 * then probabilities, of jn keys). With queries along lanes, S^T = K Q^T
 * broadcasts K straight from its rows (no K transpose per block), the row
 * max/sum of the online softmax are vertical vector ops, and P V broadcasts
 * P and streams V rows as they are stored.
 *
 * The body below is written once against a small vector vocabulary (V, VW,
 * V_LOAD, ...) and instantiated by attention_avx512.c (16 lanes),
 * attention_avx2.c (8 lanes) and attention.c (1 lane, the scalar fallback):
 * each defines the vocabulary, FRT_ATTN_TABLE and the micro-tile shape, then
 * defines FRT_ATTN_BODY and includes this header. */
#ifndef FRT_ATTENTION_IMPL_H
#define FRT_ATTENTION_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor.h"

#define FRT_ATTN_LOG2E 1.4426950408889634

typedef struct frt_attn_kernels {
    /* st[j*bq + i] = sum_c qt[c*bq + i] * k[j*kst + c] for j < jn, i < bq;
     * bq a multiple of 64. */
    void (*qk)(const float *qt, int bq, const float *k, int64_t kst, int jn, int d, float *st);
    /* Online-softmax step over st [jn][bq] (scores in, probabilities out)
     * with per-row running max m and sum l; alpha gets the factor the rows'
     * previous output must be scaled by. diag: causal block, key j masked for
     * lane i when rel + j > i. A row with every score -inf so far keeps m =
     * -inf, l = 0 and gets p = 0. */
    void (*softmax)(float *st, int bq, int jn, bool diag, int rel, float *m, float *l,
                    float *alpha);
    /* o[r*od + c] = alpha[r] * o[r*od + c] + sum_j p[r*pr + j*pj] * v[j*vst + c]
     * for r < nr, c < d (d a multiple of 16); v in dtype t, converted as it
     * is loaded. */
    void (*pv)(frt_dtype t, const float *p, int64_t pr, int64_t pj, int nr, const void *v,
               int64_t vst, int jn, int d, float *o, int64_t od, const float *alpha);
    /* dst[j*d + c] = src row j (stride st elements) in dtype t as f32, j < n. */
    void (*convert)(frt_dtype t, const void *src, int64_t st, int n, int d, float *dst);
    /* s[r*sst + j] = sum_c q[r*d + c] * k[j*kst + c], r < nr, j < jn; k in
     * dtype t. */
    void (*dots)(frt_dtype t, const float *q, int nr, const void *k, int64_t kst, int jn, int d,
                 float *s, int64_t sst);
    /* max of x[0..n), n a multiple of 16. */
    float (*vmax)(const float *x, int n);
    /* x[i] = exp2(x[i] - m) for i < n (a multiple of 16); returns the sum. */
    float (*exp2_sum)(float *x, int n, float m);
} frt_attn_kernels;

extern const frt_attn_kernels frt_attn_kernels_avx512;
extern const frt_attn_kernels frt_attn_kernels_avx2;
extern const frt_attn_kernels frt_attn_kernels_scalar;

/* Benchmarks: override the flash tile (query rows bq, a multiple of 64, and
 * keys bk per block); 0, 0 restores the defaults. Not thread-safe. */
void frt_attn_set_tiles(int bq, int bk);

#endif

#ifdef FRT_ATTN_BODY
/* The vocabulary an instantiation provides:
 *   V, VW                 vector type and lanes
 *   V_LOAD(p) V_STORE(p, x) V_SET1(f) V_ZERO() V_FMA(a, b, c) = a*b+c
 *   V_ADD V_SUB V_MUL V_MAX V_EXP2(x) (exp2, 0 for x <= -127, NaN -> 0)
 *   V_IOTA()              lanes 0, 1, ..., VW-1
 *   V_MASK_LT(a, b, x)    lanes where a < b become -inf, others x
 *   V_HSUM(x) V_HMAX(x)   horizontal sum and max
 *   V_CVT_F16(p) V_CVT_BF16(p)  VW halves at p to f32
 *   V_SUM_LANES(acc)      of VW vectors acc[x], the vector of their sums
 *   ATTN_QK_MR, ATTN_QK_NV  S^T micro-tile: keys x query vectors
 *   ATTN_PV_MR, ATTN_PV_NV  P V micro-tile: rows x output vectors
 *   ATTN_PV_NV1           output vectors of the one-row P V tile (decode)
 *   ATTN_FN(name)         per-ISA static name
 */
#include <float.h>
#include <math.h>

#define ATTN_INLINE static inline __attribute__((always_inline))

ATTN_INLINE void ATTN_FN(qk_tile)(const float *qt, int bq, const float *k, int64_t kst, int d,
                                  float *st, int j, int i0, const int mr, const int nv)
{
    V acc[ATTN_QK_MR][ATTN_QK_NV];
    const float *kr[ATTN_QK_MR];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        kr[r] = k + (int64_t)(j + r) * kst;
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) acc[r][v] = V_ZERO();
    }
    const float *q = qt + i0;
    for (int c = 0; c < d; c++, q += bq) {
        V qv[ATTN_QK_NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) qv[v] = V_LOAD(q + v * VW);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            V kb = V_SET1(kr[r][c]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) acc[r][v] = V_FMA(kb, qv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) V_STORE(st + (int64_t)(j + r) * bq + i0 + v * VW, acc[r][v]);
}

static void ATTN_FN(qk)(const float *qt, int bq, const float *k, int64_t kst, int jn, int d,
                        float *st)
{
    for (int i0 = 0; i0 < bq; i0 += VW * ATTN_QK_NV) {
        int j = 0;
        for (; j + ATTN_QK_MR <= jn; j += ATTN_QK_MR)
            ATTN_FN(qk_tile)(qt, bq, k, kst, d, st, j, i0, ATTN_QK_MR, ATTN_QK_NV);
        for (; j < jn; j++) ATTN_FN(qk_tile)(qt, bq, k, kst, d, st, j, i0, 1, ATTN_QK_NV);
    }
}

static void ATTN_FN(softmax)(float *st, int bq, int jn, bool diag, int rel, float *m, float *l,
                             float *alpha)
{
    for (int i0 = 0; i0 < bq; i0 += VW) {
        V mold = V_LOAD(m + i0), mv = mold;
        if (diag) {
            V lane = V_ADD(V_IOTA(), V_SET1((float)i0));
            for (int j = 0; j < jn; j++) {
                float *s = st + (int64_t)j * bq + i0;
                V x = V_MASK_LT(lane, V_SET1((float)(rel + j)), V_LOAD(s));
                V_STORE(s, x);
                mv = V_MAX(mv, x);
            }
        } else {
            for (int j = 0; j < jn; j++) mv = V_MAX(mv, V_LOAD(st + (int64_t)j * bq + i0));
        }
        /* -FLT_MAX instead of -inf keeps exp2(-inf - ms) = 0 rather than NaN. */
        V ms = V_MAX(mv, V_SET1(-FLT_MAX));
        V a = V_EXP2(V_SUB(mold, ms));
        V sum0 = V_ZERO(), sum1 = V_ZERO();
        int j = 0;
        for (; j + 2 <= jn; j += 2) {
            float *s = st + (int64_t)j * bq + i0;
            V p0 = V_EXP2(V_SUB(V_LOAD(s), ms)), p1 = V_EXP2(V_SUB(V_LOAD(s + bq), ms));
            V_STORE(s, p0);
            V_STORE(s + bq, p1);
            sum0 = V_ADD(sum0, p0);
            sum1 = V_ADD(sum1, p1);
        }
        if (j < jn) {
            float *s = st + (int64_t)j * bq + i0;
            V p0 = V_EXP2(V_SUB(V_LOAD(s), ms));
            V_STORE(s, p0);
            sum0 = V_ADD(sum0, p0);
        }
        V_STORE(l + i0, V_FMA(a, V_LOAD(l + i0), V_ADD(sum0, sum1)));
        V_STORE(m + i0, mv);
        V_STORE(alpha + i0, a);
    }
}

/* VW elements of a K or V row as f32; kind (0 f32, 1 f16, 2 bf16) is a
 * constant after inlining. */
ATTN_INLINE V ATTN_FN(ld)(const void *p, int64_t i, const int kind)
{
    if (kind == 1) return V_CVT_F16((const uint16_t *)p + i);
    if (kind == 2) return V_CVT_BF16((const uint16_t *)p + i);
    return V_LOAD((const float *)p + i);
}

#define ATTN_PV_NVMAX (ATTN_PV_NV1 > ATTN_PV_NV ? ATTN_PV_NV1 : ATTN_PV_NV)

ATTN_INLINE void ATTN_FN(pv_tile)(const float *p, int64_t pr, int64_t pj, const void *v,
                                  int64_t vst, int jn, float *o, int64_t od, const float *alpha,
                                  int r0, int c0, const int mr, const int nv, const int kind)
{
    V acc[ATTN_PV_MR][ATTN_PV_NVMAX];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        V a = V_SET1(alpha[r0 + r]);
        const float *orow = o + (int64_t)(r0 + r) * od + c0;
#pragma GCC unroll 16
        for (int x = 0; x < nv; x++) acc[r][x] = V_MUL(a, V_LOAD(orow + x * VW));
    }
    const float *pp = p + (int64_t)r0 * pr;
    int64_t vo = c0;
    for (int j = 0; j < jn; j++, pp += pj, vo += vst) {
        V vx[ATTN_PV_NVMAX];
#pragma GCC unroll 16
        for (int x = 0; x < nv; x++) vx[x] = ATTN_FN(ld)(v, vo + x * VW, kind);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            V pb = V_SET1(pp[r * pr]);
#pragma GCC unroll 16
            for (int x = 0; x < nv; x++) acc[r][x] = V_FMA(pb, vx[x], acc[r][x]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 16
        for (int x = 0; x < nv; x++) V_STORE(o + (int64_t)(r0 + r) * od + c0 + x * VW, acc[r][x]);
}

/* One row block of P V over every output column panel: panels of nvb
 * vectors, then narrower ones for the rest of d / VW. */
ATTN_INLINE void ATTN_FN(pv_rows)(const float *p, int64_t pr, int64_t pj, const void *v,
                                  int64_t vst, int jn, int d, float *o, int64_t od,
                                  const float *alpha, int r0, const int mr, const int nvb,
                                  const int kind)
{
    int nvec = d / VW, c = 0;
#define ATTN_PV_TILE(nv)                                                                           \
    ATTN_FN(pv_tile)(p, pr, pj, v, vst, jn, o, od, alpha, r0, c * VW, mr, nv, kind)
    for (; c + nvb <= nvec; c += nvb) ATTN_PV_TILE(nvb);
    if (nvb > 4 && nvec - c >= 4) {
        ATTN_PV_TILE(4);
        c += 4;
    }
    switch (nvec - c) {
    case 0: break;
    case 3: ATTN_PV_TILE(3); break;
    case 2: ATTN_PV_TILE(2); break;
    default: ATTN_PV_TILE(1); break;
    }
#undef ATTN_PV_TILE
}

ATTN_INLINE void ATTN_FN(pv_kind)(const float *p, int64_t pr, int64_t pj, int nr, const void *v,
                                  int64_t vst, int jn, int d, float *o, int64_t od,
                                  const float *alpha, const int kind)
{
    int r = 0;
    for (; r + ATTN_PV_MR <= nr; r += ATTN_PV_MR)
        ATTN_FN(pv_rows)(p, pr, pj, v, vst, jn, d, o, od, alpha, r, ATTN_PV_MR, ATTN_PV_NV, kind);
    for (; r < nr; r++)
        ATTN_FN(pv_rows)(p, pr, pj, v, vst, jn, d, o, od, alpha, r, 1, ATTN_PV_NV1, kind);
}

static void ATTN_FN(pv)(frt_dtype t, const float *p, int64_t pr, int64_t pj, int nr, const void *v,
                        int64_t vst, int jn, int d, float *o, int64_t od, const float *alpha)
{
    if (t == FRT_F16)
        ATTN_FN(pv_kind)(p, pr, pj, nr, v, vst, jn, d, o, od, alpha, 1);
    else if (t == FRT_BF16)
        ATTN_FN(pv_kind)(p, pr, pj, nr, v, vst, jn, d, o, od, alpha, 2);
    else
        ATTN_FN(pv_kind)(p, pr, pj, nr, v, vst, jn, d, o, od, alpha, 0);
}

static void ATTN_FN(convert)(frt_dtype t, const void *src, int64_t st, int n, int d, float *dst)
{
    for (int j = 0; j < n; j++, dst += d) {
        const uint16_t *h = (const uint16_t *)src + (int64_t)j * st;
        const float *f = (const float *)src + (int64_t)j * st;
        if (t == FRT_F16)
            for (int c = 0; c < d; c += VW) V_STORE(dst + c, V_CVT_F16(h + c));
        else if (t == FRT_BF16)
            for (int c = 0; c < d; c += VW) V_STORE(dst + c, V_CVT_BF16(h + c));
        else
            for (int c = 0; c < d; c += VW) V_STORE(dst + c, V_LOAD(f + c));
    }
}

/* VW keys at once: one accumulator per key, reduced together by
 * V_SUM_LANES into one vector of VW scores. */
ATTN_INLINE void ATTN_FN(dots_vw)(const float *q, int nr, const void *k, int64_t kst, int j, int d,
                                  float *s, int64_t sst, const int kind)
{
    for (int r = 0; r < nr; r++) {
        const float *qr = q + (int64_t)r * d;
        V acc[VW];
#pragma GCC unroll 16
        for (int x = 0; x < VW; x++) acc[x] = V_ZERO();
        for (int c = 0; c < d; c += VW) {
            V qv = V_LOAD(qr + c);
#pragma GCC unroll 16
            for (int x = 0; x < VW; x++)
                acc[x] = V_FMA(qv, ATTN_FN(ld)(k, (int64_t)(j + x) * kst + c, kind), acc[x]);
        }
        V_STORE(s + (int64_t)r * sst + j, V_SUM_LANES(acc));
    }
}

ATTN_INLINE void ATTN_FN(dots_1)(const float *q, int nr, const void *k, int64_t kst, int j, int d,
                                 float *s, int64_t sst, const int kind)
{
    for (int r = 0; r < nr; r++) {
        const float *qr = q + (int64_t)r * d;
        V acc = V_ZERO();
        for (int c = 0; c < d; c += VW)
            acc = V_FMA(V_LOAD(qr + c), ATTN_FN(ld)(k, (int64_t)j * kst + c, kind), acc);
        s[(int64_t)r * sst + j] = V_HSUM(acc);
    }
}

ATTN_INLINE void ATTN_FN(dots_kind)(const float *q, int nr, const void *k, int64_t kst, int jn,
                                    int d, float *s, int64_t sst, const int kind)
{
    int j = 0;
    for (; j + VW <= jn; j += VW) ATTN_FN(dots_vw)(q, nr, k, kst, j, d, s, sst, kind);
    for (; j < jn; j++) ATTN_FN(dots_1)(q, nr, k, kst, j, d, s, sst, kind);
}

static void ATTN_FN(dots)(frt_dtype t, const float *q, int nr, const void *k, int64_t kst, int jn,
                          int d, float *s, int64_t sst)
{
    if (t == FRT_F16)
        ATTN_FN(dots_kind)(q, nr, k, kst, jn, d, s, sst, 1);
    else if (t == FRT_BF16)
        ATTN_FN(dots_kind)(q, nr, k, kst, jn, d, s, sst, 2);
    else
        ATTN_FN(dots_kind)(q, nr, k, kst, jn, d, s, sst, 0);
}

static float ATTN_FN(vmax)(const float *x, int n)
{
    V m = V_SET1(-INFINITY);
    for (int i = 0; i < n; i += VW) m = V_MAX(m, V_LOAD(x + i));
    return V_HMAX(m);
}

static float ATTN_FN(exp2_sum)(float *x, int n, float m)
{
    V mv = V_SET1(m), sum = V_ZERO();
    for (int i = 0; i < n; i += VW) {
        V p = V_EXP2(V_SUB(V_LOAD(x + i), mv));
        V_STORE(x + i, p);
        sum = V_ADD(sum, p);
    }
    return V_HSUM(sum);
}

const frt_attn_kernels FRT_ATTN_TABLE = {
    .qk = ATTN_FN(qk),
    .softmax = ATTN_FN(softmax),
    .pv = ATTN_FN(pv),
    .convert = ATTN_FN(convert),
    .dots = ATTN_FN(dots),
    .vmax = ATTN_FN(vmax),
    .exp2_sum = ATTN_FN(exp2_sum),
};

#undef ATTN_INLINE
#endif
