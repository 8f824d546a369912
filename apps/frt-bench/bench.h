/* frt-bench internals: subcommands, machine limits, timing, output rows. */
#ifndef FRT_BENCH_H
#define FRT_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tensor.h"

#include "safetensors.h"

/* Limits measured at start in this run (never assumed). */
typedef struct bench_machine {
    int threads;
    double fma_peak_gflops;  /* calibrated f32 FMA loop on all threads */
    double bf16_peak_gflops; /* vdpbf16ps loop; 0 when the CPU has none */
    double dram_gbps;        /* streaming read of a buffer far larger than the caches */
} bench_machine;

void bench_measure_machine(bench_machine *m);

/* n values of dtype t (F32, F16 or BF16), uniform in [-amplitude, amplitude)
 * from a seeded generator, every page touched; frt_free it. NULL when out of
 * memory. */
void *bench_random_data(frt_dtype t, size_t n, uint64_t seed, float amplitude);

/* Monotonic seconds. */
double bench_now(void);
/* Peak resident set of this process so far, in MiB (VmHWM); and current (VmRSS). */
double bench_peak_rss_mb(void);
double bench_rss_mb(void);
/* Reset the peak (writes /proc/self/clear_refs); false if not possible. */
bool bench_reset_peak_rss(void);

/* Output: a readable table on stdout, or one JSON document with --json.
 * extra_json is a ready JSON fragment for the row ("\"vs\": \"naive\"") or NULL. */
typedef struct bench_out bench_out;
bench_out *bench_out_begin(const char *bench, const bench_machine *m, bool json);
void bench_out_row(bench_out *o, const char *case_name, const char *metric_name, double metric,
                   double ms, double ratio, double rss_mb, const char *extra_json);
void bench_out_end(bench_out *o);

/* A random checkpoint in memory at real sizes (bench_model.c): add the
 * tensors (uniform in [-scale, scale], or all equal to scale when
 * constant), then finish allocates and fills them on all threads and opens
 * them as a frt_st (owned by the bench_ckpt). */
typedef struct bench_ckpt bench_ckpt;
bench_ckpt *bench_ckpt_new(void);
bool bench_ckpt_add(bench_ckpt *c, frt_dtype dt, int ndim, const int64_t *shape, float scale,
                    bool constant, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
frt_status bench_ckpt_finish(bench_ckpt *c, const char *label, frt_st **out);
double bench_ckpt_bytes(const bench_ckpt *c);
/* CPU seconds this process has run, all threads: cpu / (wall x threads)
 * over a timed stretch is the share of the machine it actually got (other
 * load on a shared machine shows up here, not in the code's figures). */
double bench_cpu_seconds(void);
void bench_ckpt_free(bench_ckpt *c);

/* Subcommands: argv[0] is the subcommand name. Return a process exit code. */
int bench_gemm_main(int argc, char **argv);
int bench_attn_main(int argc, char **argv);
int bench_vit_main(int argc, char **argv);
int bench_llm_main(int argc, char **argv);
int bench_memory_main(int argc, char **argv);
int bench_tts_main(int argc, char **argv);

#endif
