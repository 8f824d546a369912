/* frt-bench attn: FlashAttention-2 prefill against the FMA peak and against
 * naive attention (OpenBLAS GEMMs around a materialised softmax), and
 * split-KV decode against the DRAM bandwidth, all measured in this run.
 *
 * Flash rows: d = 64 with 8 heads and d = 128 with 4 heads (d * h = 512 for
 * both, so both do the same FLOPs per N), Nq = Nk = N, f32 K/V; FLOPs =
 * 4 Nq Nk d per head, half with a causal mask (for both flash and naive,
 * although naive computes the full square). Decode rows: one query row, 32
 * heads x d = 128 (Llama-7B), the KV cache of the given length read once per
 * call; GB/s counts K and V bytes. rss_mb is the peak resident set during
 * the case; the JSON also gives the inputs and the peak beyond them. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "attention.h"
#include "attention_impl.h"
#include "bench.h"
#include "tensor.h"
#include "threadpool.h"

#ifdef FRT_HAVE_OPENBLAS
#include <cblas.h>
#endif

typedef struct {
    bool json, quick, sweep;
    int64_t max_n;
    double naive_max_mb; /* largest Nq x Nk f32 score matrix naive may allocate */
    const char *only;    /* run only the cases whose name contains this */
} attn_opts;

static bool wanted(const attn_opts *o, const char *name)
{
    return !o->only || strstr(name, o->only);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: frt-bench attn [--json] [--quick] [--max-n N] [--naive-max-mb MB]\n"
               "                      [--tiles BQxBK] [--sweep-tiles] [--only TEXT]\n"
               "  flash and naive prefill for d in {64, 128}, N in 512..16384 (Nq = Nk = N),\n"
               "  causal and not; decode with 32 heads x d=128 over KV caches of 1K..64K\n"
               "  tokens, f16 and f32, exact and unified max.\n"
               "  --quick          N <= 2048, KV <= 16K\n"
               "  --max-n N        largest prefill N (default 16384)\n"
               "  --naive-max-mb   skip naive rows whose score matrix exceeds this (default 512,\n"
               "                   so naive stops at N = 8192)\n"
               "  --only TEXT      only the cases whose name contains TEXT (e.g. 'n4096')\n"
               "  --tiles BQxBK    flash tile: query rows (multiple of 64) x keys per block\n"
               "  --sweep-tiles    only time N=4096 non-causal flash over a grid of tiles\n");
}

typedef struct {
    void *q, *k, *v, *o;
    frt_attn_args a;
    double inputs_mb;
} attn_bufs;

static bool bufs_make(attn_bufs *b, frt_dtype dt, int64_t nq, int64_t nk, int64_t h, int64_t h_kv,
                      int64_t d)
{
    memset(b, 0, sizeof *b);
    size_t es = frt_dtype_size(dt);
    b->q = bench_random_data(FRT_F32, (size_t)(nq * h * d), 1, 1.7f);
    b->k = bench_random_data(dt, (size_t)(nk * h_kv * d), 2, 1.7f);
    b->v = bench_random_data(dt, (size_t)(nk * h_kv * d), 3, 1.7f);
    b->o = frt_alloc((size_t)(nq * h * d) * sizeof(float));
    if (b->o) memset(b->o, 0, (size_t)(nq * h * d) * sizeof(float));
    if (!b->q || !b->k || !b->v || !b->o) return false;
    b->inputs_mb =
        ((double)(2 * nq * h * d) * 4 + (double)(2 * nk * h_kv * d) * (double)es) / 1048576.0;
    frt_attn_args *a = &b->a;
    *a = (frt_attn_args){.nq = nq,
                         .nk = nk,
                         .h = h,
                         .h_kv = h_kv,
                         .d = d,
                         .q = b->q,
                         .q_st = h * d,
                         .q_sh = d,
                         .k = b->k,
                         .k_st = h_kv * d,
                         .k_sh = d,
                         .v = b->v,
                         .v_st = h_kv * d,
                         .v_sh = d,
                         .kv_dtype = dt,
                         .o = b->o,
                         .o_st = h * d,
                         .o_sh = d};
    a->p.scale = 1.0f / sqrtf((float)d);
    return true;
}

static void bufs_free(attn_bufs *b)
{
    frt_free(b->q);
    frt_free(b->k);
    frt_free(b->v);
    frt_free(b->o);
}

typedef bool (*run_fn)(void *ctx);

/* Best wall time of at least min_reps runs (one when a run takes over 3 s),
 * more while under budget_s; *runs gets the count. */
static double time_best(run_fn fn, void *ctx, int min_reps, double budget_s, int *runs)
{
    double best = INFINITY, start = bench_now();
    int rep = 0;
    for (;; rep++) {
        if (rep >= min_reps && bench_now() - start > budget_s) break;
        if (rep >= 20 || (rep >= 1 && best > 3.0)) break;
        double t0 = bench_now();
        if (!fn(ctx)) return -1.0;
        double dt = bench_now() - t0;
        if (dt < best) best = dt;
    }
    if (runs) *runs = rep;
    return best;
}

typedef struct {
    attn_bufs *b;
    frt_pool *pool;
} flash_ctx;

static bool run_flash(void *ctx)
{
    flash_ctx *c = ctx;
    return frt_cpu_flash_attn(&c->b->a, c->pool) == FRT_OK;
}

static double attn_flops(int64_t n, int64_t d, int64_t h, bool causal)
{
    return 4.0 * (double)n * (double)n * (double)d * (double)h * (causal ? 0.5 : 1.0);
}

static void emit(bench_out *out, const char *name, double flops_or_bytes, bool bytes, double t,
                 double limit, double rss_peak, double rss0, double inputs_mb, const char *more)
{
    char extra[256];
    double fig = flops_or_bytes / t * 1e-9;
    snprintf(extra, sizeof extra, "\"inputs_mb\": %.1f, \"beyond_inputs_mb\": %.1f%s%s", inputs_mb,
             rss_peak - rss0 > 0 ? rss_peak - rss0 : 0.0, more ? ", " : "", more ? more : "");
    bench_out_row(out, name, bytes ? "GB/s" : "gflops", fig, t * 1e3, limit > 0 ? fig / limit : 0,
                  rss_peak, extra);
}

static void flash_case(bench_out *out, const bench_machine *m, frt_pool *pool, frt_dtype dt,
                       int64_t d, int64_t h, int64_t n, bool causal, const attn_opts *o)
{
    char name[96];
    snprintf(name, sizeof name, "flash %s d%lld n%lld %s",
             dt == FRT_F32 ? "f32" : frt_dtype_name(dt), (long long)d, (long long)n,
             causal ? "causal" : "noncausal");
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    if (!wanted(o, name)) return;
    attn_bufs b;
    if (!bufs_make(&b, dt, n, n, h, h, d)) {
        fprintf(stderr, "%s: out of memory, skipped\n", name);
        bufs_free(&b);
        return;
    }
    b.a.p.causal = causal;
    double rss0 = bench_rss_mb();
    bench_reset_peak_rss();
    flash_ctx c = {&b, pool};
    double t = time_best(run_flash, &c, 2, 0.5, NULL);
    double peak = bench_peak_rss_mb();
    if (t > 0)
        emit(out, name, attn_flops(n, d, h, causal), false, t, m->fma_peak_gflops, peak, rss0,
             b.inputs_mb, NULL);
    bufs_free(&b);
}

#ifdef FRT_HAVE_OPENBLAS
typedef struct {
    attn_bufs *b;
    frt_pool *pool;
    float *s;
} naive_ctx;

static void naive_softmax_rows(void *arg, int ith, int nth)
{
    naive_ctx *c = arg;
    const frt_attn_args *a = &c->b->a;
    int64_t n = a->nk;
    long r0, r1;
    frt_split_range((long)a->nq, ith, nth, &r0, &r1);
    for (long i = r0; i < r1; i++) {
        float *row = c->s + (int64_t)i * n;
        int64_t end = a->p.causal ? i + 1 : n;
        float mx = -INFINITY;
        for (int64_t j = 0; j < end; j++) mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (int64_t j = 0; j < end; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < end; j++) row[j] *= inv;
        for (int64_t j = end; j < n; j++) row[j] = 0.0f;
    }
}

static bool run_naive(void *ctx)
{
    naive_ctx *c = ctx;
    const frt_attn_args *a = &c->b->a;
    int n = (int)a->nq, d = (int)a->d;
    for (int64_t hh = 0; hh < a->h; hh++) {
        const float *q = a->q + hh * a->q_sh, *k = (const float *)a->k + hh * a->k_sh;
        const float *v = (const float *)a->v + hh * a->v_sh;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, d, a->p.scale, q, (int)a->q_st,
                    k, (int)a->k_st, 0.0f, c->s, n);
        frt_pool_run(c->pool, naive_softmax_rows, c);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, n, 1.0f, c->s, n, v,
                    (int)a->v_st, 0.0f, a->o + hh * a->o_sh, (int)a->o_st);
    }
    return true;
}
#endif

static void naive_case(bench_out *out, const bench_machine *m, frt_pool *pool, int64_t d, int64_t h,
                       int64_t n, bool causal, const attn_opts *o)
{
#ifdef FRT_HAVE_OPENBLAS
    char name[96];
    snprintf(name, sizeof name, "naive f32 d%lld n%lld %s", (long long)d, (long long)n,
             causal ? "causal" : "noncausal");
    if (!wanted(o, name)) return;
    double smb = (double)n * (double)n * 4.0 / 1048576.0;
    if (smb > o->naive_max_mb) {
        if (!o->json)
            printf("%-40s skipped: its %.0f MiB score matrix is over --naive-max-mb %.0f\n", name,
                   smb, o->naive_max_mb);
        return;
    }
    attn_bufs b;
    if (!bufs_make(&b, FRT_F32, n, n, h, h, d)) {
        bufs_free(&b);
        return;
    }
    b.a.p.causal = causal;
    double rss0 = bench_rss_mb();
    bench_reset_peak_rss();
    naive_ctx c = {&b, pool, frt_alloc((size_t)n * (size_t)n * sizeof(float))};
    if (c.s) {
        double t = time_best(run_naive, &c, 2, 0.5, NULL);
        double peak = bench_peak_rss_mb();
        emit(out, name, attn_flops(n, d, h, causal), false, t, m->fma_peak_gflops, peak, rss0,
             b.inputs_mb, NULL);
    }
    frt_free(c.s);
    bufs_free(&b);
#else
    (void)out, (void)m, (void)pool, (void)d, (void)h, (void)n, (void)causal;
    if (!o->json) printf("naive rows skipped: built without OpenBLAS\n");
#endif
}

typedef struct {
    attn_bufs *b;
    frt_pool *pool;
    frt_decode_stats st;
} decode_ctx;

static bool run_decode(void *ctx)
{
    decode_ctx *c = ctx;
    return frt_cpu_decode_attn(&c->b->a, c->pool, &c->st) == FRT_OK;
}

static void decode_case(bench_out *out, const bench_machine *m, frt_pool *pool, frt_dtype dt,
                        int64_t kv, bool unified, const attn_opts *o)
{
    const int64_t h = 32, d = 128;
    char name[96];
    snprintf(name, sizeof name, "decode %s kv%lldk %s", dt == FRT_F32 ? "f32" : "f16",
             (long long)(kv / 1024), unified ? "unified" : "exact");
    if (!wanted(o, name)) return;
    attn_bufs b;
    if (!bufs_make(&b, dt, 1, kv, h, h, d)) {
        fprintf(stderr, "%s: out of memory, skipped\n", name);
        bufs_free(&b);
        return;
    }
    /* The one new token at the end of the cache. Scores here are ~N(0, 1),
     * so phi = 0 is inside the safe range and no row falls back. */
    b.a.p.causal = true;
    b.a.p.q_pos0 = kv - 1;
    b.a.p.use_unified_max = unified;
    b.a.p.phi = 0.0f;
    double rss0 = bench_rss_mb();
    bench_reset_peak_rss();
    decode_ctx c = {&b, pool, {0}};
    int runs = 1;
    double t = time_best(run_decode, &c, 5, 0.3, &runs);
    double peak = bench_peak_rss_mb();
    char more[96];
    snprintf(more, sizeof more, "\"rows\": %lld, \"fallback_rows\": %lld",
             (long long)c.st.rows / runs, (long long)c.st.rows_fallback / runs);
    double bytes = 2.0 * (double)(kv * h * d) * (double)frt_dtype_size(dt);
    if (t > 0) emit(out, name, bytes, true, t, m->dram_gbps, peak, rss0, b.inputs_mb, more);
    bufs_free(&b);
}

static int sweep_tiles(bench_out *out, const bench_machine *m, frt_pool *pool)
{
    static const int bqs[] = {64, 128, 256}, bks[] = {32, 48, 64, 96, 128, 192, 256};
    for (int di = 0; di < 2; di++) {
        int64_t d = di ? 128 : 64, h = di ? 4 : 8, n = 4096;
        attn_bufs b;
        if (!bufs_make(&b, FRT_F32, n, n, h, h, d)) return 1;
        for (size_t i = 0; i < sizeof bqs / sizeof bqs[0]; i++)
            for (size_t k = 0; k < sizeof bks / sizeof bks[0]; k++) {
                frt_attn_set_tiles(bqs[i], bks[k]);
                flash_ctx c = {&b, pool};
                double t = time_best(run_flash, &c, 2, 0.3, NULL);
                char name[96];
                snprintf(name, sizeof name, "flash f32 d%lld n%lld noncausal bq%d bk%d",
                         (long long)d, (long long)n, bqs[i], bks[k]);
                emit(out, name, attn_flops(n, d, h, false), false, t, m->fma_peak_gflops,
                     bench_peak_rss_mb(), bench_rss_mb(), b.inputs_mb, NULL);
            }
        bufs_free(&b);
    }
    frt_attn_set_tiles(0, 0);
    return 0;
}

int bench_attn_main(int argc, char **argv)
{
    attn_opts o = {.max_n = 16384, .naive_max_mb = 512};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            o.json = true;
        else if (!strcmp(argv[i], "--quick"))
            o.quick = true;
        else if (!strcmp(argv[i], "--sweep-tiles"))
            o.sweep = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--max-n") && i + 1 < argc)
            o.max_n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            o.only = argv[++i];
        else if (!strcmp(argv[i], "--naive-max-mb") && i + 1 < argc)
            o.naive_max_mb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--tiles") && i + 1 < argc) {
            int bq = 0, bk = 0;
            if (sscanf(argv[++i], "%dx%d", &bq, &bk) != 2 || bq % 64 || bq <= 0 || bk <= 0) {
                fprintf(stderr, "frt-bench attn: --tiles wants BQxBK, BQ a multiple of 64\n");
                return 2;
            }
            frt_attn_set_tiles(bq, bk);
        } else {
            fprintf(stderr, "frt-bench attn: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (o.quick && o.max_n > 2048) o.max_n = 2048;
    bench_machine m;
    bench_measure_machine(&m);
    frt_pool *pool = frt_pool_default();
    bench_out *out = bench_out_begin("attn", &m, o.json);
    if (o.sweep) {
        int rc = sweep_tiles(out, &m, pool);
        bench_out_end(out);
        return rc;
    }
    for (int di = 0; di < 2; di++) {
        int64_t d = di ? 128 : 64, h = di ? 4 : 8;
        for (int64_t n = 512; n <= o.max_n && n <= 16384; n *= 2)
            for (int causal = 0; causal < 2; causal++) {
                flash_case(out, &m, pool, FRT_F32, d, h, n, causal, &o);
                naive_case(out, &m, pool, d, h, n, causal, &o);
            }
    }
    int64_t nh = o.max_n < 4096 ? o.max_n : 4096;
    flash_case(out, &m, pool, FRT_F16, 128, 4, nh, false, &o);
    flash_case(out, &m, pool, FRT_BF16, 128, 4, nh, false, &o);
    static const int64_t kvs[] = {1024, 4096, 16384, 32768, 65536};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof kvs / sizeof kvs[0]; i++) {
            if (o.quick && kvs[i] > 16384) break;
            for (int u = 0; u < 2; u++)
                decode_case(out, &m, pool, dt ? FRT_F32 : FRT_F16, kvs[i], u, &o);
        }
    bench_out_end(out);
    return 0;
}
