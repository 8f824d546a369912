/* Machine limits measured at start (FMA peak, bf16 peak, DRAM read
 * bandwidth), timing, resident memory, and the table / JSON output. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bench.h"
#include "cpu.h"
#include "machine_simd.h"
#include "threadpool.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double status_field_mb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen)) {
            kb = atof(line + klen);
            break;
        }
    fclose(f);
    return kb / 1024.0;
}

double bench_peak_rss_mb(void)
{
    return status_field_mb("VmHWM:");
}
double bench_rss_mb(void)
{
    return status_field_mb("VmRSS:");
}

bool bench_reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

void *bench_random_data(frt_dtype t, size_t n, uint64_t seed, float amplitude)
{
    float *f = frt_alloc(n * sizeof(float));
    if (!f) return NULL;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        f[i] = (float)((double)(s >> 40) / (double)(1ull << 23) - 1.0) * amplitude;
    }
    if (t == FRT_F32) return f;
    uint16_t *h = frt_alloc(n * sizeof(uint16_t));
    if (h) {
        if (t == FRT_F16)
            frt_f32_to_f16_row(f, h, n);
        else
            frt_f32_to_bf16_row(f, h, n);
    }
    frt_free(f);
    return h;
}

/* ---- calibration ---------------------------------------------------------- */

typedef enum { LOOP_FMA, LOOP_BF16 } loop_kind;

typedef struct {
    loop_kind kind;
    long iters;
    _Atomic double flops;
    _Atomic double gflops; /* sum over threads of each one's rate on its own CPU time */
} loop_job;

static double thread_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void atomic_add_double(_Atomic double *a, double v)
{
    double cur = atomic_load(a);
    while (!atomic_compare_exchange_weak(a, &cur, cur + v)) {
    }
}

static void loop_task(void *arg, int ith, int nth)
{
    loop_job *j = arg;
    const frt_cpu_info *cpu = frt_cpu();
    double f = 0, t0 = thread_cpu_seconds();
    if (j->kind == LOOP_BF16)
        f = bench_bf16_loop_avx512(j->iters);
    else if (cpu->avx512)
        f = bench_fma_loop_avx512(j->iters);
    else if (cpu->avx2)
        f = bench_fma_loop_avx2(j->iters);
    else {
        volatile float a = 1.0f, acc[8] = {0};
        for (long i = 0; i < j->iters; i++)
            for (int k = 0; k < 8; k++) acc[k] = acc[k] * a + 1e-7f;
        f = (double)j->iters * 16;
    }
    double dt = thread_cpu_seconds() - t0;
    atomic_add_double(&j->flops, f);
    if (dt > 0) atomic_add_double(&j->gflops, f / dt * 1e-9);
}

/* Best GFLOP/s of a few runs, each long enough (>= 50 ms) to be timed. Each
 * thread's rate is taken over its own CPU time, so a thread descheduled by
 * other load on the machine does not make the hardware limit look lower
 * (which would inflate every ratio); the run's wall time only decides the
 * calibration length. */
static double run_loop(loop_kind kind)
{
    frt_pool *pool = frt_pool_default();
    long iters = 1 << 16;
    double best = 0;
    for (int rep = 0; rep < 8; rep++) {
        loop_job j = {.kind = kind, .iters = iters};
        double t0 = bench_now();
        frt_pool_run(pool, loop_task, &j);
        double dt = bench_now() - t0;
        if (dt < 0.05) {
            iters *= 2;
            rep--;
            if (iters > (1L << 30)) break;
            continue;
        }
        double g = atomic_load(&j.gflops);
        if (g > best) best = g;
        if (rep >= 3) break;
    }
    return best;
}

typedef struct {
    const float *p;
    size_t n;
    _Atomic double bytes;
    _Atomic double gbps; /* per-thread rates on their own CPU time, summed */
    float sinks[64];
} read_job;

static void read_task(void *arg, int ith, int nth)
{
    read_job *j = arg;
    long b, e;
    /* split on 64-float (256 B) boundaries so each thread's loads stay aligned */
    frt_split_range((long)(j->n / 64), ith, nth, &b, &e);
    const float *p = j->p + (size_t)b * 64;
    size_t n = (size_t)(e - b) * 64;
    const frt_cpu_info *cpu = frt_cpu();
    double bytes, t0 = thread_cpu_seconds();
    float *sink = &j->sinks[ith % 64];
    if (cpu->avx512)
        bytes = bench_read_avx512(p, n, sink);
    else if (cpu->avx2)
        bytes = bench_read_avx2(p, n, sink);
    else {
        float s = 0;
        for (size_t i = 0; i < n; i++) s += p[i];
        *sink += s;
        bytes = (double)n * sizeof(float);
    }
    double dt = thread_cpu_seconds() - t0;
    atomic_add_double(&j->bytes, bytes);
    if (dt > 0) atomic_add_double(&j->gbps, bytes / dt * 1e-9);
}

/* 256 MiB: far past any cache here, touched once before timing. Rates are
 * taken over each thread's CPU time like the FMA loop's (see run_loop). */
static double measure_dram(void)
{
    size_t n = (size_t)64 << 20;
    float *p = frt_alloc(n * sizeof(float));
    if (!p) return 0;
    for (size_t i = 0; i < n; i++) p[i] = (float)(i & 1023);
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        read_job j = {.p = p, .n = n};
        frt_pool_run(frt_pool_default(), read_task, &j);
        double g = atomic_load(&j.gbps);
        if (g > best) best = g;
    }
    frt_free(p);
    return best;
}

void bench_measure_machine(bench_machine *m)
{
    memset(m, 0, sizeof *m);
    m->threads = frt_pool_size(frt_pool_default());
    m->fma_peak_gflops = run_loop(LOOP_FMA);
    m->bf16_peak_gflops = frt_cpu()->avx512bf16 ? run_loop(LOOP_BF16) : 0;
    m->dram_gbps = measure_dram();
}

/* ---- output -------------------------------------------------------------- */

struct bench_out {
    bool json;
    int rows;
};

bench_out *bench_out_begin(const char *bench, const bench_machine *m, bool json)
{
    bench_out *o = calloc(1, sizeof *o);
    if (!o) return NULL;
    o->json = json;
    if (json) {
        printf("{\"bench\": \"%s\",\n \"machine\": {\"threads\": %d, \"fma_peak_gflops\": %.1f, "
               "\"bf16_peak_gflops\": %.1f, \"dram_gbps\": %.1f, \"cpu\": \"%s\"},\n \"rows\": [",
               bench, m->threads, m->fma_peak_gflops, m->bf16_peak_gflops, m->dram_gbps,
               frt_cpu_features());
    } else {
        printf("frt-bench %s: %d threads, FMA peak %.1f GFLOP/s, bf16 peak %.1f GFLOP/s, "
               "DRAM read %.1f GB/s (measured now; CPU: %s)\n\n",
               bench, m->threads, m->fma_peak_gflops, m->bf16_peak_gflops, m->dram_gbps,
               frt_cpu_features());
        printf("%-40s %12s %10s %8s %9s  %s\n", "case", "figure", "ms", "ratio", "rss_mb", "notes");
    }
    fflush(stdout);
    return o;
}

void bench_out_row(bench_out *o, const char *case_name, const char *metric_name, double metric,
                   double ms, double ratio, double rss_mb, const char *extra_json)
{
    if (!o) return;
    if (o->json) {
        printf("%s\n  {\"case\": \"%s\", \"%s\": %.3f, \"ms\": %.4f, \"ratio\": %.4f, "
               "\"rss_mb\": %.1f%s%s}",
               o->rows ? "," : "", case_name, metric_name, metric, ms, ratio, rss_mb,
               extra_json ? ", " : "", extra_json ? extra_json : "");
    } else {
        char fig[48];
        snprintf(fig, sizeof fig, "%.1f %s", metric, metric_name);
        printf("%-40s %16s %10.3f %8.3f %9.1f  %s\n", case_name, fig, ms, ratio, rss_mb,
               extra_json ? extra_json : "");
    }
    o->rows++;
    fflush(stdout);
}

void bench_out_end(bench_out *o)
{
    if (!o) return;
    if (o->json) printf("\n ]}\n");
    fflush(stdout);
    free(o);
}
