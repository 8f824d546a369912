/* Token sampling: HF's logits processors, then a seeded draw. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "sampling.h"

typedef struct cand {
    float logit;
    int32_t id;
} cand;

struct frt_sampler {
    frt_sampler_params p;
    int64_t vocab;
    uint64_t rng[4];
    float *logits; /* [vocab] processed */
    uint8_t *seen; /* [vocab] history marks for the penalty */
    cand *cands;   /* [vocab] sorted candidates */
};

/* ---- generator: xoshiro256**, seeded through splitmix64 ------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(uint64_t *s)
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* uniform in [0, 1) with 53 random bits */
static double next_uniform(uint64_t *s)
{
    return (double)(next_u64(s) >> 11) * 0x1.0p-53;
}

void frt_sampler_reseed(frt_sampler *s, uint64_t seed)
{
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&seed);
}

/* ---- lifetime ------------------------------------------------------------ */

frt_status frt_sampler_create(const frt_sampler_params *p, int64_t vocab, frt_sampler **out)
{
    if (!p || !out || vocab <= 0 || vocab > INT32_MAX)
        return frt_error(FRT_ERR_INVALID_ARG, "frt_sampler_create: bad argument (vocab %lld)",
                         (long long)vocab);
    if (!(p->temperature >= 0) || !isfinite(p->temperature) || p->top_k < 0 ||
        !(p->top_p >= 0 && p->top_p <= 1) || !(p->repetition_penalty >= 0) ||
        !isfinite(p->repetition_penalty))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "sampler: temperature %g, top_k %d, top_p %g, repetition penalty %g "
                         "(need temperature >= 0, top_k >= 0, top_p in [0, 1], penalty >= 0)",
                         (double)p->temperature, p->top_k, (double)p->top_p,
                         (double)p->repetition_penalty);
    frt_sampler *s = frt_calloc(1, sizeof *s);
    if (!s) return FRT_ERR_NOMEM;
    s->p = *p;
    s->vocab = vocab;
    s->logits = frt_alloc((size_t)vocab * sizeof(float));
    s->seen = frt_calloc((size_t)vocab, 1);
    s->cands = frt_alloc((size_t)vocab * sizeof(cand));
    if (!s->logits || !s->seen || !s->cands) {
        frt_sampler_free(s);
        return FRT_ERR_NOMEM;
    }
    frt_sampler_reseed(s, p->seed);
    *out = s;
    return FRT_OK;
}

void frt_sampler_free(frt_sampler *s)
{
    if (!s) return;
    frt_free(s->logits);
    frt_free(s->seen);
    frt_free(s->cands);
    frt_free(s);
}

/* ---- processors ---------------------------------------------------------- */

/* HF RepetitionPenaltyLogitsProcessor: each distinct id once. */
static void repetition_penalty(frt_sampler *s, float *x, const int32_t *hist, int64_t n)
{
    const float p = s->p.repetition_penalty;
    for (int64_t i = 0; i < n; i++) {
        int32_t id = hist[i];
        if (s->seen[id]) continue;
        s->seen[id] = 1;
        x[id] = x[id] > 0 ? x[id] / p : x[id] * p;
    }
    for (int64_t i = 0; i < n; i++) s->seen[hist[i]] = 0;
}

/* larger logit first, then lower id: a total order, so runs repeat */
static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static inline void swap_cand(cand *a, cand *b)
{
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Reorder c[0, n) so that its m best (cand_cmp order) come first, in any
 * order: quickselect, O(n) expected. The order is total, so the m best are
 * one well-defined set. */
static void select_best(cand *c, int64_t n, int64_t m)
{
    int64_t lo = 0, hi = n;
    while (hi - lo > 1 && m > lo && m < hi) {
        /* median of three as pivot, parked at hi - 1 */
        int64_t mid = lo + (hi - lo) / 2;
        if (cand_cmp(&c[mid], &c[lo]) < 0) swap_cand(&c[mid], &c[lo]);
        if (cand_cmp(&c[hi - 1], &c[lo]) < 0) swap_cand(&c[hi - 1], &c[lo]);
        if (cand_cmp(&c[mid], &c[hi - 1]) < 0) swap_cand(&c[mid], &c[hi - 1]);
        int64_t i = lo;
        for (int64_t j = lo; j < hi - 1; j++)
            if (cand_cmp(&c[j], &c[hi - 1]) < 0) swap_cand(&c[i++], &c[j]);
        swap_cand(&c[i], &c[hi - 1]);
        /* [lo, i) beat the pivot at i; (i, hi) lose to it */
        if (m <= i)
            hi = i;
        else
            lo = i + 1;
    }
}

/* The m best of c[0, n) sorted best first at the front. */
static void sort_best(cand *c, int64_t n, int64_t m)
{
    select_best(c, n, m);
    qsort(c, (size_t)m, sizeof(cand), cand_cmp);
}

/* HF's top-k (ties with the k-th logit kept), then top-p on what is left
 * (kept while the probability mass sorted before a token is below top_p).
 * Only as many candidates as needed are sorted. Drops the rest in x. */
static void top_k_top_p(frt_sampler *s, float *x)
{
    cand *c = s->cands;
    int64_t n = 0;
    float mx = -INFINITY;
    for (int64_t i = 0; i < s->vocab; i++)
        if (isfinite(x[i])) {
            c[n++] = (cand){x[i], (int32_t)i};
            mx = x[i] > mx ? x[i] : mx;
        }
    int64_t keep = n, sorted = 0;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        const int64_t k = s->p.top_k;
        sort_best(c, n, k);
        keep = k;
        for (int64_t i = k; i < n; i++)
            if (c[i].logit == c[k - 1].logit) swap_cand(&c[keep++], &c[i]);
        qsort(c + k, (size_t)(keep - k), sizeof(cand), cand_cmp);
        sorted = keep;
    }
    if (s->p.top_p > 0 && s->p.top_p < 1 && keep > 1) {
        double total = 0.0, before = 0.0;
        for (int64_t i = 0; i < keep; i++) total += exp((double)c[i].logit - mx);
        /* sort a prefix, growing it until the mass before a token reaches top_p */
        int64_t kept = 0, want = 64;
        for (;;) {
            if (sorted < keep) {
                int64_t m = want < keep ? want : keep;
                sort_best(c + sorted, keep - sorted, m - sorted);
                sorted = m;
            }
            while (kept < sorted && (kept == 0 || before / total < s->p.top_p))
                before += exp((double)c[kept++].logit - mx);
            if (kept < sorted || sorted == keep) break;
            want *= 4;
        }
        keep = kept;
    }
    for (int64_t i = keep; i < n; i++) x[c[i].id] = -INFINITY;
}

static frt_status check(const frt_sampler *s, const float *logits, const int32_t *hist, int64_t n,
                        const void *out)
{
    if (!s || !logits || !out || n < 0 || (n && !hist))
        return frt_error(FRT_ERR_INVALID_ARG, "sampler: bad argument");
    for (int64_t i = 0; i < n; i++)
        if (hist[i] < 0 || hist[i] >= s->vocab)
            return frt_error(FRT_ERR_INVALID_ARG, "sampler: history id %d outside the vocabulary",
                             hist[i]);
    return FRT_OK;
}

frt_status frt_sampler_process(frt_sampler *s, const float *logits, const int32_t *history,
                               int64_t n_history, float *out)
{
    FRT_TRY(check(s, logits, history, n_history, out));
    int64_t finite = 0;
    for (int64_t i = 0; i < s->vocab; i++) {
        float v = logits[i];
        finite += isfinite(v);
        out[i] = isnan(v) ? -INFINITY : v;
    }
    if (!finite) return frt_error(FRT_ERR_INVALID_ARG, "sampler: no token has a finite logit");
    if (s->p.repetition_penalty > 0 && s->p.repetition_penalty != 1)
        repetition_penalty(s, out, history, n_history);
    if (s->p.temperature == 0) return FRT_OK;
    for (int64_t i = 0; i < s->vocab; i++) out[i] /= s->p.temperature;
    bool filter = (s->p.top_k > 0 && s->p.top_k < s->vocab) || (s->p.top_p > 0 && s->p.top_p < 1);
    if (filter) top_k_top_p(s, out);
    return FRT_OK;
}

static int32_t argmax(const float *x, int64_t n)
{
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i]) && (best < 0 || x[i] > x[best])) best = i;
    return (int32_t)best;
}

frt_status frt_sampler_sample(frt_sampler *s, const float *logits, const int32_t *history,
                              int64_t n_history, int32_t *out)
{
    FRT_TRY(check(s, logits, history, n_history, out));
    float *x = s->logits;
    FRT_TRY(frt_sampler_process(s, logits, history, n_history, x));
    int32_t best = argmax(x, s->vocab);
    if (s->p.temperature == 0) {
        *out = best;
        return FRT_OK;
    }
    /* inverse CDF over the kept tokens in id order */
    const double mx = x[best];
    double total = 0.0;
    for (int64_t i = 0; i < s->vocab; i++)
        if (isfinite(x[i])) total += exp((double)x[i] - mx);
    double u = next_uniform(s->rng) * total, acc = 0.0;
    int32_t last = best;
    for (int64_t i = 0; i < s->vocab; i++) {
        if (!isfinite(x[i])) continue;
        acc += exp((double)x[i] - mx);
        last = (int32_t)i;
        if (u < acc) break;
    }
    *out = last;
    return FRT_OK;
}
