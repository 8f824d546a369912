/* frt-bench memory: the Flash-VStream STAR memory update per frame at the
 * release's sizes (1024-d features, 25 clusters of 4x4, 25 abstract slots,
 * 3 retrieved frames, a 300-frame buffer), against the bar of 5 ms
 * per frame on one core, plus what a reader pays to pin or copy a snapshot.
 *
 * The stream runs past the buffer's length and only the frames after the
 * buffer is full are summarised: before that, retrieval scans fewer frames
 * and the figures would flatter the steady state. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bench.h"
#include "memory.h"

#define BAR_MS 5.0

typedef struct {
    bool json;
    int frames;
    int dim;
    int reps;
} mem_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: frt-bench memory [--json] [--frames N] [--reps R] [--dim C]\n\n"
            "Pushes N random frames (default 400, at least the 300-frame buffer plus one)\n"
            "of [64, C] features (default C = 1024, the CLIP width before the projector)\n"
            "through the STAR memory with the release's settings, and reports the update\n"
            "time per frame once the feature buffer is full (mean, p50, p99, max), with\n"
            "ratio = %.0f ms / mean (>= 1 meets the bar), and a reader's snapshot pin and\n"
            "copy times. The memory update runs on the calling thread (FRT_THREADS does\n"
            "not matter). The stream runs R times (default 3) on fresh memories and the\n"
            "run with the lowest mean is reported: the machine is shared.\n",
            BAR_MS);
}

static bool parse_args(int argc, char **argv, mem_opts *o, int *rc)
{
    *o = (mem_opts){.frames = 400, .dim = 1024, .reps = 3};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--frames") && i + 1 < argc) {
            o->frames = atoi(argv[++i]);
        } else if (!strcmp(a, "--reps") && i + 1 < argc) {
            o->reps = atoi(argv[++i]);
            if (o->reps < 1) {
                fprintf(stderr, "frt-bench memory: --reps needs a positive count\n");
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--dim") && i + 1 < argc) {
            o->dim = atoi(argv[++i]);
            if (o->dim < 1 || o->dim > 16384) {
                fprintf(stderr, "frt-bench memory: --dim takes 1..16384\n");
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            *rc = 0;
            return false;
        } else {
            fprintf(stderr, "frt-bench memory: unknown option '%s'\n", a);
            usage(stderr);
            *rc = 2;
            return false;
        }
    }
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_uniform(float *x, size_t n, float scale, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * ((float)(splitmix(s) >> 40) * (1.0f / 8388608.0f) - 1.0f);
}

static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double mean, p50, p99, max, cpu_mean, iters, pin_ms, copy_ms;
    int n;
} mem_result;

/* One stream through a fresh memory; false (message printed) on failure. */
static bool run_stream(const mem_opts *o, const frt_star_config *c, const float *w, float *frame,
                       float *copy, double *ms, mem_result *res)
{
    const int warm = c->n_buff + c->n_spa, n = o->frames - warm;
    const size_t fs = (size_t)c->p_spa * c->p_spa * c->dim, hd = (size_t)c->hidden * c->dim;
    const int cap = frt_star_tokens_after(c, INT64_MAX / 2);
    frt_star *m;
    if (frt_star_create(c, w, w + hd, w + hd + c->hidden, w + 2 * hd + c->hidden, &m) != FRT_OK) {
        fprintf(stderr, "frt-bench memory: %s\n", frt_last_error());
        return false;
    }
    /* Features drift between frames with a cut every 50, so the clustering
     * sees both near and far frames, as in a video; the same every run. */
    uint64_t seed = 2;
    double iters = 0, pin_s = 0, copy_s = 0, cpu_s = 0;
    int pins = 0;
    for (int t = 0; t < o->frames; t++) {
        if (t % 50 == 0) {
            fill_uniform(frame, fs, 1.0f, &seed);
        } else {
            for (size_t i = 0; i < fs; i++)
                frame[i] = 0.9f * frame[i] +
                           0.3f * ((float)(splitmix(&seed) >> 40) * (1.0f / 8388608.0f) - 1.0f);
        }
        double c0 = thread_cpu_now(), t0 = bench_now();
        frt_status s = frt_star_push(m, frame, t * 0.5);
        double dt = bench_now() - t0, dc = thread_cpu_now() - c0;
        if (s != FRT_OK) {
            fprintf(stderr, "frt-bench memory: %s\n", frt_last_error());
            frt_star_free(m);
            return false;
        }
        if (t < warm) continue;
        ms[t - warm] = dt * 1e3;
        cpu_s += dc;
        frt_star_state st;
        frt_star_inspect(m, &st);
        iters += st.kmeans_iters_run;
        if (t % 10 == 0) {
            frt_star_snapshot info;
            t0 = bench_now();
            const frt_star_snapshot *sn = frt_star_acquire(m);
            frt_star_release(m, sn);
            double t1 = bench_now();
            frt_star_copy(m, copy, cap, &info);
            pin_s += t1 - t0;
            copy_s += bench_now() - t1;
            pins++;
        }
    }
    frt_star_free(m);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += ms[i];
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    *res = (mem_result){.mean = sum / n,
                        .p50 = ms[n / 2],
                        .p99 = ms[(int)floor(0.99 * (n - 1))],
                        .max = ms[n - 1],
                        .cpu_mean = cpu_s / n * 1e3,
                        .iters = iters / n,
                        .pin_ms = pin_s / pins * 1e3,
                        .copy_ms = copy_s / pins * 1e3,
                        .n = n};
    return true;
}

int bench_memory_main(int argc, char **argv)
{
    mem_opts o;
    int rc = 0;
    if (!parse_args(argc, argv, &o, &rc)) return rc;
    frt_star_config c;
    frt_star_config_default(&c, o.dim);
    const int warm = c.n_buff + c.n_spa;
    if (o.frames <= warm) {
        fprintf(stderr, "frt-bench memory: --frames must exceed %d (the buffer fills first)\n",
                warm);
        return 2;
    }
    const size_t fs = (size_t)c.p_spa * c.p_spa * c.dim, hd = (size_t)c.hidden * c.dim;
    const int tokens = frt_star_tokens_after(&c, INT64_MAX / 2);
    float *w = malloc((2 * hd + 2 * (size_t)c.hidden) * sizeof(float));
    float *frame = frt_alloc(fs * sizeof(float));
    double *ms = malloc((size_t)(o.frames - warm) * sizeof(double));
    float *copy = frt_alloc((size_t)tokens * c.dim * sizeof(float));
    if (!w || !frame || !ms || !copy) {
        fprintf(stderr, "frt-bench memory: out of memory\n");
        rc = 1;
        goto done;
    }
    uint64_t seed = 1;
    fill_uniform(w, 2 * hd + 2 * (size_t)c.hidden, 0.05f, &seed);
    bench_machine mach;
    bench_measure_machine(&mach);
    mem_result best = {0};
    for (int rep = 0; rep < o.reps; rep++) {
        mem_result r;
        if (!run_stream(&o, &c, w, frame, copy, ms, &r)) {
            rc = 1;
            goto done;
        }
        if (rep == 0 || r.mean < best.mean) best = r;
    }

    bench_out *out = bench_out_begin("memory", &mach, o.json);
    char name[96], extra[640];
    snprintf(name, sizeof name, "memory update c%d threads1", c.dim);
    snprintf(extra, sizeof extra,
             "\"vs\": \"%.0f ms per frame on one core\", \"frames_measured\": %d, \"reps\": %d, "
             "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, \"cpu_ms\": %.3f, "
             "\"kmeans_iters_mean\": %.2f, \"n_tem\": %d, \"n_abs\": %d, \"n_ret\": %d, "
             "\"n_buff\": %d",
             BAR_MS, best.n, o.reps, best.p50, best.p99, best.max, best.cpu_mean, best.iters,
             c.n_tem, c.n_abs, c.n_ret, c.n_buff);
    bench_out_row(out, name, "frames_per_s", 1e3 / best.mean, best.mean, BAR_MS / best.mean,
                  bench_rss_mb(), extra);
    snprintf(name, sizeof name, "memory snapshot pin c%d", c.dim);
    bench_out_row(out, name, "pins_per_s", 1e3 / best.pin_ms, best.pin_ms, BAR_MS / best.pin_ms,
                  bench_rss_mb(), "\"vs\": \"5 ms\"");
    snprintf(name, sizeof name, "memory snapshot copy c%d", c.dim);
    snprintf(extra, sizeof extra, "\"vs\": \"5 ms\", \"tokens\": %d, \"gbps\": %.2f", tokens,
             (double)tokens * c.dim * sizeof(float) / best.copy_ms * 1e-6);
    bench_out_row(out, name, "copies_per_s", 1e3 / best.copy_ms, best.copy_ms,
                  BAR_MS / best.copy_ms, bench_rss_mb(), extra);
    bench_out_end(out);
    if (!o.json)
        printf("update per frame (best of %d runs): mean %.3f ms (thread CPU %.3f), p50 %.3f, "
               "p99 %.3f, max %.3f over %d frames; k-means %.2f iterations on average\n",
               o.reps, best.mean, best.cpu_mean, best.p50, best.p99, best.max, best.n, best.iters);
done:
    frt_free(copy);
    free(ms);
    frt_free(frame);
    free(w);
    return rc;
}
