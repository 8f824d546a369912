/* Sampling: greedy = argmax, HF's top-k / top-p / repetition-penalty definitions on hand-built
 * distributions, seeded reproducibility, and draw frequencies (chi-square) for temperature,
 * top-k and top-p sampling. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "sampling.h"
#include "testutil.h"

TestSuite(sampling, .fini = tu_check_leaks);

static frt_sampler *make(frt_sampler_params p, int64_t vocab)
{
    frt_sampler *s = NULL;
    cr_assert_eq(frt_sampler_create(&p, vocab, &s), FRT_OK, "%s", frt_last_error());
    return s;
}

Test(sampling, greedy_is_argmax)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    enum { N = 1001 };
    float x[N];
    frt_sampler *s = make((frt_sampler_params){.temperature = 0, .top_k = 5, .top_p = 0.5f}, N);
    for (int t = 0; t < 50; t++) {
        tu_fill_uniform(&r, x, N, -10, 10);
        int best = 0;
        for (int i = 1; i < N; i++)
            if (x[i] > x[best]) best = i;
        int32_t id = -1;
        cr_assert_eq(frt_sampler_sample(s, x, NULL, 0, &id), FRT_OK);
        cr_assert_eq(id, best);
    }
    /* ties go to the lowest id; -inf and NaN never win */
    for (int i = 0; i < N; i++) x[i] = -INFINITY;
    x[7] = NAN;
    x[300] = 2.0f;
    x[200] = 2.0f;
    int32_t id;
    cr_assert_eq(frt_sampler_sample(s, x, NULL, 0, &id), FRT_OK);
    cr_expect_eq(id, 200);
    for (int i = 0; i < N; i++) x[i] = -INFINITY;
    cr_expect_eq(frt_sampler_sample(s, x, NULL, 0, &id), FRT_ERR_INVALID_ARG);
    frt_sampler_free(s);
}

Test(sampling, repetition_penalty_hf_definition)
{
    /* logit > 0 ? logit / p : logit * p, once per distinct id in the history */
    float x[6] = {2.0f, -2.0f, 1.0f, 0.5f, 0.0f, 3.0f}, y[6];
    const int32_t hist[] = {0, 1, 1, 4, 0};
    frt_sampler *s = make((frt_sampler_params){.temperature = 0, .repetition_penalty = 2.0f}, 6);
    cr_assert_eq(frt_sampler_process(s, x, hist, 5, y), FRT_OK);
    const float want[6] = {1.0f, -4.0f, 1.0f, 0.5f, 0.0f, 3.0f};
    for (int i = 0; i < 6; i++) cr_expect_eq(y[i], want[i], "id %d: %g, want %g", i, y[i], want[i]);
    /* the penalty turns greedy away from a repeated token */
    frt_sampler *s3 = make((frt_sampler_params){.temperature = 0, .repetition_penalty = 2.0f}, 3);
    float z[3] = {3.0f, 2.0f, -1.0f};
    int32_t id;
    cr_assert_eq(frt_sampler_sample(s3, z, (const int32_t[]){0}, 1, &id), FRT_OK);
    cr_expect_eq(id, 1);
    frt_sampler_free(s3);
    /* a second call sees no stale marks: without history, nothing changes */
    cr_assert_eq(frt_sampler_process(s, x, NULL, 0, y), FRT_OK);
    for (int i = 0; i < 6; i++) cr_expect_eq(y[i], x[i]);
    const int32_t bad[] = {6};
    cr_expect_eq(frt_sampler_process(s, x, bad, 1, y), FRT_ERR_INVALID_ARG);
    frt_sampler_free(s);
}

static int count_finite(const float *y, int n)
{
    int c = 0;
    for (int i = 0; i < n; i++) c += isfinite(y[i]);
    return c;
}

Test(sampling, top_k_mask)
{
    float x[8] = {0.1f, 3.0f, -1.0f, 2.0f, 2.0f, 5.0f, -7.0f, 1.0f}, y[8];
    frt_sampler *s = make((frt_sampler_params){.temperature = 1, .top_k = 3, .top_p = 1}, 8);
    cr_assert_eq(frt_sampler_process(s, x, NULL, 0, y), FRT_OK);
    /* 5, 3 and the tie 2, 2 at the k-th place: HF drops only logits below the k-th */
    const bool keep[8] = {0, 1, 0, 1, 1, 1, 0, 0};
    for (int i = 0; i < 8; i++) {
        cr_expect_eq(isfinite(y[i]) != 0, keep[i], "id %d", i);
        if (keep[i]) cr_expect_eq(y[i], x[i]);
    }
    frt_sampler_free(s);
    s = make((frt_sampler_params){.temperature = 2, .top_k = 1}, 8);
    cr_assert_eq(frt_sampler_process(s, x, NULL, 0, y), FRT_OK);
    cr_expect_eq(count_finite(y, 8), 1);
    cr_expect_eq(y[5], 2.5f, "temperature divides the logits");
    frt_sampler_free(s);
}

Test(sampling, top_p_mask)
{
    /* probabilities 0.05, 0.5, 0.15, 0.3 (shuffled ids) */
    const float p[4] = {0.05f, 0.5f, 0.15f, 0.3f};
    float x[4], y[4];
    for (int i = 0; i < 4; i++) x[i] = logf(p[i]);
    /* HF keeps a token while the mass sorted before it is below top_p:
     * 0.4 -> {0.5}; 0.75 -> {0.5, 0.3}; 0.85 -> {0.5, 0.3, 0.15}; 0.99 -> all */
    const struct {
        float top_p;
        bool keep[4];
    } cases[] = {
        {0.4f, {0, 1, 0, 0}}, {0.75f, {0, 1, 0, 1}}, {0.85f, {0, 1, 1, 1}}, {0.99f, {1, 1, 1, 1}}};
    for (int c = 0; c < 4; c++) {
        frt_sampler *s = make((frt_sampler_params){.temperature = 1, .top_p = cases[c].top_p}, 4);
        cr_assert_eq(frt_sampler_process(s, x, NULL, 0, y), FRT_OK);
        for (int i = 0; i < 4; i++)
            cr_expect_eq(isfinite(y[i]) != 0, cases[c].keep[i], "top_p %g id %d",
                         (double)cases[c].top_p, i);
        frt_sampler_free(s);
    }
    /* top-k first, then top-p on the renormalised rest: top_k 2 leaves {0.5, 0.3} = {0.625,
     * 0.375}; top_p 0.6 then keeps only the first */
    frt_sampler *s = make((frt_sampler_params){.temperature = 1, .top_k = 2, .top_p = 0.6f}, 4);
    cr_assert_eq(frt_sampler_process(s, x, NULL, 0, y), FRT_OK);
    cr_expect_eq(count_finite(y, 4), 1);
    cr_expect(isfinite(y[1]));
    frt_sampler_free(s);
}

Test(sampling, seeded_runs_repeat)
{
    enum { N = 50, DRAWS = 200 };
    float x[N];
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    tu_fill_uniform(&r, x, N, -2, 2);
    frt_sampler_params p = {.temperature = 0.8f, .top_k = 20, .top_p = 0.95f, .seed = 1234};
    frt_sampler *a = make(p, N), *b = make(p, N);
    p.seed = 1235;
    frt_sampler *c = make(p, N);
    int32_t ia[DRAWS], ib[DRAWS], ic[DRAWS];
    for (int i = 0; i < DRAWS; i++) {
        cr_assert_eq(frt_sampler_sample(a, x, NULL, 0, &ia[i]), FRT_OK);
        cr_assert_eq(frt_sampler_sample(b, x, NULL, 0, &ib[i]), FRT_OK);
        cr_assert_eq(frt_sampler_sample(c, x, NULL, 0, &ic[i]), FRT_OK);
    }
    cr_expect_arr_eq(ia, ib, sizeof ia, "same seed, same draws");
    cr_expect_neq(memcmp(ia, ic, sizeof ia), 0, "another seed, other draws");
    frt_sampler_reseed(b, 1234);
    for (int i = 0; i < DRAWS; i++) {
        cr_assert_eq(frt_sampler_sample(b, x, NULL, 0, &ib[i]), FRT_OK);
        cr_assert_eq(ib[i], ia[i]);
    }
    frt_sampler_free(a);
    frt_sampler_free(b);
    frt_sampler_free(c);
}

/* Draw `n` tokens and compare counts with the expected probabilities (those with expected
 * zero must never come up). Chi-square with k - 1 degrees of freedom against its 0.1%
 * critical value: a fixed seed makes this deterministic, and a wrong distribution (off by a
 * few per cent on one token) fails it. */
static void check_frequencies(frt_sampler_params p, const float *logits, const double *want, int k,
                              int n, double critical)
{
    frt_sampler *s = make(p, k);
    int counts[16] = {0};
    for (int i = 0; i < n; i++) {
        int32_t id;
        cr_assert_eq(frt_sampler_sample(s, logits, NULL, 0, &id), FRT_OK);
        cr_assert(id >= 0 && id < k);
        counts[id]++;
    }
    double chi2 = 0;
    int dof = -1;
    for (int i = 0; i < k; i++) {
        if (want[i] == 0) {
            cr_expect_eq(counts[i], 0, "token %d is masked but was drawn %d times", i, counts[i]);
            continue;
        }
        double e = want[i] * n;
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        dof++;
    }
    cr_log_info("chi-square %.2f with %d dof (critical %.2f)", chi2, dof, critical);
    cr_expect_lt(chi2, critical, "chi-square %g >= %g: draws do not follow the distribution", chi2,
                 critical);
    frt_sampler_free(s);
}

Test(sampling, temperature_frequencies)
{
    const double p[4] = {0.1, 0.2, 0.3, 0.4};
    float x[4];
    for (int i = 0; i < 4; i++) x[i] = (float)log(p[i]);
    /* temperature 1: the distribution itself (3 dof, 0.1% critical value 16.27) */
    check_frequencies((frt_sampler_params){.temperature = 1, .seed = 7}, x, p, 4, 20000, 16.27);
    /* temperature 2: p^(1/2), renormalised */
    double q[4], z = 0;
    for (int i = 0; i < 4; i++) z += q[i] = sqrt(p[i]);
    for (int i = 0; i < 4; i++) q[i] /= z;
    check_frequencies((frt_sampler_params){.temperature = 2, .seed = 8}, x, q, 4, 20000, 16.27);
    /* top-k 2: 0.3 and 0.4 renormalised (1 dof, 10.83) */
    const double k2[4] = {0, 0, 3.0 / 7, 4.0 / 7};
    check_frequencies((frt_sampler_params){.temperature = 1, .top_k = 2, .seed = 9}, x, k2, 4,
                      20000, 10.83);
    /* top-p 0.65: 0.4 and 0.3 (mass before 0.2 is 0.7) */
    check_frequencies((frt_sampler_params){.temperature = 1, .top_p = 0.65f, .seed = 10}, x, k2, 4,
                      20000, 10.83);
}

Test(sampling, bad_params)
{
    frt_sampler *s = NULL;
    const frt_sampler_params bad[] = {
        {.temperature = -1}, {.temperature = NAN}, {.top_k = -1},
        {.top_p = 1.5f},     {.top_p = -0.1f},     {.repetition_penalty = -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(frt_sampler_create(&bad[i], 10, &s), FRT_ERR_INVALID_ARG, "case %zu", i);
    cr_expect_eq(frt_sampler_create(&(frt_sampler_params){0}, 0, &s), FRT_ERR_INVALID_ARG);
    cr_expect_null(s);
}

/* The processors against a naive twin (sort everything, apply HF's rules) on random logits
 * with many ties, random top-k / top-p and vocabularies around the sizes where the partial
 * sort grows its prefix. Cases where a cumulative mass lies within 1e-9 of top_p are skipped:
 * there the two sums may round to different sides. */
typedef struct {
    float logit;
    int id;
} ref_cand;

static int ref_cmp(const void *a, const void *b)
{
    const ref_cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id - y->id;
}

/* returns false when the case sits on a top_p boundary */
static bool naive_mask(const float *x, int n, int top_k, float top_p, bool *keep)
{
    ref_cand *c = malloc((size_t)n * sizeof *c);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) c[m++] = (ref_cand){x[i], i};
    qsort(c, (size_t)m, sizeof *c, ref_cmp);
    int k = m;
    if (top_k > 0 && top_k < m) {
        k = top_k;
        while (k < m && c[k].logit == c[top_k - 1].logit) k++;
    }
    bool ok = true;
    if (top_p > 0 && top_p < 1 && k > 1) {
        double total = 0, before = 0;
        for (int i = 0; i < k; i++) total += exp((double)c[i].logit - c[0].logit);
        int kept = 0;
        while (kept < k && (kept == 0 || before / total < top_p)) {
            before += exp((double)c[kept++].logit - c[0].logit);
            if (fabs(before / total - top_p) < 1e-9) ok = false;
        }
        k = kept;
    }
    for (int i = 0; i < n; i++) keep[i] = false;
    for (int i = 0; i < k; i++) keep[c[i].id] = true;
    free(c);
    return ok;
}

Test(sampling, processors_match_naive_twin)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    const int sizes[] = {1, 2, 7, 63, 64, 65, 300, 1000, 5003};
    float *x = malloc(5003 * sizeof *x), *y = malloc(5003 * sizeof *y);
    bool *keep = malloc(5003);
    int checked = 0;
    for (int t = 0; t < 300; t++) {
        int n = sizes[tu_next(&r) % 9];
        float scale = tu_uniform(&r, 0.5f, 8.0f);
        for (int i = 0; i < n; i++) {
            /* quantised, so ties are common; a few tokens masked already */
            x[i] = roundf(tu_normal(&r) * scale * 4) / 4;
            if (tu_next(&r) % 50 == 0) x[i] = -INFINITY;
        }
        x[tu_next(&r) % n] = 1.0f; /* at least one finite */
        int top_k = (int)(tu_next(&r) % 4 == 0 ? 0 : tu_next(&r) % (n + 2));
        float top_p = tu_next(&r) % 4 == 0 ? 1.0f : tu_uniform(&r, 0.05f, 0.999f);
        if (!naive_mask(x, n, top_k, top_p, keep)) continue;
        frt_sampler *s =
            make((frt_sampler_params){.temperature = 1, .top_k = top_k, .top_p = top_p}, n);
        cr_assert_eq(frt_sampler_process(s, x, NULL, 0, y), FRT_OK);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(isfinite(y[i]) != 0, keep[i], "n %d top_k %d top_p %g: id %d (logit %g)",
                         n, top_k, (double)top_p, i, (double)x[i]);
            if (keep[i]) cr_assert_eq(y[i], x[i]);
        }
        frt_sampler_free(s);
        checked++;
    }
    cr_log_info("%d random cases checked", checked);
    cr_expect_gt(checked, 250);
    free(x);
    free(y);
    free(keep);
}
