/* frt-bench gemm: frt_cpu_gemm on the models' shapes against the limits
 * measured in this run, and OpenBLAS sgemm on the same shapes.
 *
 * y[M,N] = x[M,K] w[N,K]^T with w in PyTorch Linear layout, as the models
 * call it. Rows with M >= 256 are compute-bound: ratio = GFLOP/s over the
 * FMA peak (bf16 rows also give it over the bf16 dot peak, and over the f32
 * row of the same shape). Rows with small M are weight-streaming: ratio =
 * weight bytes per second over the DRAM read bandwidth; several copies of
 * the weights are cycled so that together they are far larger than the
 * caches, and every byte is touched before timing. Each case is run once to
 * warm up, then the best of --reps runs is kept (machines here are shared,
 * and interference only ever slows a run down). Rows are printed at the
 * end, against the larger of the limits measured before and after them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bench.h"
#include "gemm.h"
#include "tensor.h"
#include "threadpool.h"

#ifdef FRT_HAVE_OPENBLAS
#include <cblas.h>
#endif

/* Weights of a streaming case, all copies together, at least this large:
 * three times the 32 MiB L3 of the build machines. */
#define STREAM_BYTES ((size_t)96 << 20)
#define MAX_COPIES   4

typedef struct {
    int64_t M, N, K;
} shape;

static const shape shapes[] = {
    {256, 1024, 1024}, /* ViT-sized block */
    {681, 4096, 4096}, /* prefill of the 681 visual tokens, 7B projection */
    {1, 4096, 4096},   /* decode, attention projection */
    {1, 11008, 4096},  /* decode, MLP up projection */
};

typedef struct {
    bool json, f16;
    int reps; /* 0: automatic */
    const char *filter;
} gemm_opts;

static void usage(FILE *f)
{
    fprintf(f, "usage: frt-bench gemm [--json] [--reps N] [--shapes SUBSTR] [--f16]\n"
               "  frt_cpu_gemm with f32 and bf16 weights (--f16: f16 too) and OpenBLAS sgemm\n"
               "  on MxNxK = 256x1024x1024, 681x4096x4096, 1x4096x4096, 1x11008x4096.\n"
               "  --reps N        timed runs per case after one warm-up (default: as many\n"
               "                  as fit in about 1.5 s, 5 to 30)\n"
               "  --shapes SUBSTR only shapes whose 'MxNxK' contains SUBSTR\n"
               "  Threads: FRT_THREADS (OpenBLAS is given the same number).\n");
}

typedef struct {
    frt_gemm_args a;
    void *w[MAX_COPIES];
    int copies;
    float *x, *y;
    bool blas;
    int next;
} gemm_case;

static void case_free(gemm_case *c)
{
    for (int i = 0; i < c->copies; i++) frt_free(c->w[i]);
    frt_free(c->x);
    frt_free(c->y);
}

static bool case_make(gemm_case *c, const shape *s, frt_dtype t, bool streaming)
{
    memset(c, 0, sizeof *c);
    size_t wbytes = (size_t)(s->N * s->K) * frt_dtype_size(t);
    c->copies = streaming ? (int)((STREAM_BYTES + wbytes - 1) / wbytes) : 1;
    if (c->copies > MAX_COPIES) c->copies = MAX_COPIES;
    int made = 0;
    for (; made < c->copies; made++)
        if (!(c->w[made] = bench_random_data(t, (size_t)(s->N * s->K), 7 + (uint64_t)made, 0.5f)))
            break;
    c->copies = made;
    c->x = bench_random_data(FRT_F32, (size_t)(s->M * s->K), 3, 0.5f);
    c->y = frt_alloc((size_t)(s->M * s->N) * sizeof(float));
    if (made == 0 || !c->x || !c->y) {
        case_free(c);
        return false;
    }
    memset(c->y, 0, (size_t)(s->M * s->N) * sizeof(float));
    c->a = (frt_gemm_args){s->M, s->N, s->K, c->x, s->K, c->w[0], t, s->K, NULL, c->y, s->N, false};
    return true;
}

/* One run on the next weight copy; seconds, or -1 on failure. */
static double run_once(gemm_case *c, frt_pool *pool)
{
    c->a.w = c->w[c->next];
    c->next = (c->next + 1) % c->copies;
    double t0 = bench_now();
#ifdef FRT_HAVE_OPENBLAS
    if (c->blas) {
        const frt_gemm_args *a = &c->a;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)a->M, (int)a->N, (int)a->K, 1.0f,
                    a->x, (int)a->ldx, a->w, (int)a->ldw, 0.0f, a->y, (int)a->ldy);
        return bench_now() - t0;
    }
#endif
    if (frt_cpu_gemm(&c->a, pool) != FRT_OK) return -1;
    return bench_now() - t0;
}

/* Warm-up, then the best of `reps` (0: about 1.5 s worth, 5 to 30: more
 * runs give a shared machine more chances of a quiet one). */
static double time_best(gemm_case *c, frt_pool *pool, int reps)
{
    double best = run_once(c, pool);
    if (best < 0) return -1;
    if (reps <= 0) {
        reps = best > 0 ? (int)(1.5 / best) : 30;
        reps = reps < 5 ? 5 : reps > 30 ? 30 : reps;
    }
    for (int i = 0; i < reps; i++) {
        double t = run_once(c, pool);
        if (t < 0) return -1;
        if (t < best) best = t;
    }
    return best;
}

static const char *dtype_label(frt_dtype t)
{
    return t == FRT_F32 ? "f32" : t == FRT_F16 ? "f16" : "bf16";
}

typedef struct {
    char name[96];
    frt_dtype t;
    bool streaming, blas;
    double sec, gflops, gbps, rss, f32_gflops;
    int copies;
} gemm_row;

/* Times one case into *r. Returns GFLOP/s (0 if skipped). */
static double bench_case(gemm_row *r, const gemm_opts *o, frt_pool *pool, const shape *s,
                         frt_dtype t, bool blas, double f32_gflops)
{
    memset(r, 0, sizeof *r);
    r->t = t;
    r->blas = blas;
    r->streaming = s->M < 256;
    r->f32_gflops = f32_gflops;
    snprintf(r->name, sizeof r->name, "%s %s %lldx%lldx%lld", blas ? "openblas" : "gemm",
             dtype_label(t), (long long)s->M, (long long)s->N, (long long)s->K);
    bench_reset_peak_rss();
    gemm_case c;
    if (!case_make(&c, s, t, r->streaming)) {
        fprintf(stderr, "frt-bench gemm: %s: out of memory, skipped\n", r->name);
        return 0;
    }
    c.blas = blas;
    r->copies = c.copies;
    r->sec = time_best(&c, pool, o->reps);
    r->rss = bench_peak_rss_mb();
    case_free(&c);
    if (r->sec <= 0) {
        fprintf(stderr, "frt-bench gemm: %s failed: %s\n", r->name, frt_last_error());
        return 0;
    }
    r->gflops = 2.0 * (double)s->M * (double)s->N * (double)s->K / r->sec * 1e-9;
    r->gbps = (double)(s->N * s->K) * (double)frt_dtype_size(t) / r->sec * 1e-9;
    return r->gflops;
}

static void print_row(bench_out *out, const bench_machine *m, const gemm_row *r)
{
    double ratio = r->streaming ? (m->dram_gbps > 0 ? r->gbps / m->dram_gbps : 0)
                                : (m->fma_peak_gflops > 0 ? r->gflops / m->fma_peak_gflops : 0);
    char extra[256];
    int n = snprintf(extra, sizeof extra, "\"vs\": \"%s\", \"gbps\": %.2f, \"weight_copies\": %d",
                     r->streaming ? "dram" : "fma_peak", r->gbps, r->copies);
    if (r->t == FRT_BF16 && !r->streaming && m->bf16_peak_gflops > 0)
        n += snprintf(extra + n, sizeof extra - (size_t)n, ", \"bf16_peak_ratio\": %.3f",
                      r->gflops / m->bf16_peak_gflops);
    if (r->t != FRT_F32 && r->f32_gflops > 0)
        n += snprintf(extra + n, sizeof extra - (size_t)n, ", \"over_f32\": %.3f",
                      r->gflops / r->f32_gflops);
    if (r->blas && r->f32_gflops > 0)
        snprintf(extra + n, sizeof extra - (size_t)n, ", \"frt_over_openblas\": %.3f",
                 r->f32_gflops / r->gflops);
    bench_out_row(out, r->name, "gflops", r->gflops, r->sec * 1e3, ratio, r->rss, extra);
}

int bench_gemm_main(int argc, char **argv)
{
    gemm_opts o = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            o.json = true;
        } else if (!strcmp(argv[i], "--f16")) {
            o.f16 = true;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            o.reps = atoi(argv[++i]);
            if (o.reps < 1) {
                fprintf(stderr, "frt-bench gemm: --reps needs a positive count\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--shapes") && i + 1 < argc) {
            o.filter = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "frt-bench gemm: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    frt_pool *pool = frt_pool_default();
#ifdef FRT_HAVE_OPENBLAS
    openblas_set_num_threads(frt_pool_size(pool));
#endif
    /* The limits are measured before and after the cases and the larger
     * kept: other load on a shared machine only ever lowers them. */
    bench_machine m, m2;
    bench_measure_machine(&m);
    gemm_row rows[4 * sizeof shapes / sizeof shapes[0]];
    int nrows = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        char dims[64];
        snprintf(dims, sizeof dims, "%lldx%lldx%lld", (long long)s->M, (long long)s->N,
                 (long long)s->K);
        if (o.filter && !strstr(dims, o.filter)) continue;
        double f32 = bench_case(&rows[nrows++], &o, pool, s, FRT_F32, false, 0);
        bench_case(&rows[nrows++], &o, pool, s, FRT_BF16, false, f32);
        if (o.f16) bench_case(&rows[nrows++], &o, pool, s, FRT_F16, false, f32);
#ifdef FRT_HAVE_OPENBLAS
        bench_case(&rows[nrows++], &o, pool, s, FRT_F32, true, f32);
#endif
    }
    bench_measure_machine(&m2);
    m.fma_peak_gflops =
        m2.fma_peak_gflops > m.fma_peak_gflops ? m2.fma_peak_gflops : m.fma_peak_gflops;
    m.bf16_peak_gflops =
        m2.bf16_peak_gflops > m.bf16_peak_gflops ? m2.bf16_peak_gflops : m.bf16_peak_gflops;
    m.dram_gbps = m2.dram_gbps > m.dram_gbps ? m2.dram_gbps : m.dram_gbps;
    bench_out *out = bench_out_begin("gemm", &m, o.json);
    for (int i = 0; i < nrows; i++)
        if (rows[i].gflops > 0) print_row(out, &m, &rows[i]);
    bench_out_end(out);
    return 0;
}
