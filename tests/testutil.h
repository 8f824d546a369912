/* Shared helpers for the Criterion tests. */
#ifndef FRT_TESTUTIL_H
#define FRT_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu.h"

/* A seed drawn fresh per run (printed, so a failure can be replayed with
 * FRT_TEST_SEED=N). */
uint64_t tu_seed(void);
/* xorshift-style generator */
typedef struct {
    uint64_t s;
} tu_rng;
void tu_rng_init(tu_rng *r, uint64_t seed);
uint64_t tu_next(tu_rng *r);
float tu_uniform(tu_rng *r, float lo, float hi);
float tu_normal(tu_rng *r);
void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi);
/* Largest |a-b| / max(|b|, floor) over n values; floor keeps near-zero
 * references from blowing the ratio up. */
double tu_max_rel_err(const float *a, const float *b, size_t n, double floor);
/* Fill with a NaN pattern so unwritten outputs are caught. */
void tu_poison(float *x, size_t n);
/* The kernel paths a test can force with frt_cpu_restrict: scalar, avx2,
 * avx512, avx512 with BF16 (and VNNI). tu_use_isa(i) restricts the CPU to
 * tu_isas[i] and returns false when this machine lacks that path; callers
 * restore with frt_cpu_restrict(NULL). */
#define TU_N_ISAS 4
extern const frt_cpu_info tu_isas[TU_N_ISAS];
extern const char *const tu_isa_names[TU_N_ISAS];
bool tu_use_isa(int i);
/* Under ASan: abort the test's worker if anything leaked so far. A leak
 * LeakSanitizer reports when the worker exits comes after Criterion took
 * its verdict (and an assertion in .fini is not counted), so a suite's .fini
 * calls this to make a leak fail the test. A no-op in other builds. */
void tu_check_leaks(void);
/* A fresh temporary directory (removed by tu_rmtree); caller frees. */
char *tu_tmpdir(void);
void tu_rmtree(const char *path);
/* Write bytes to dir/name; returns the malloc'ed full path. */
char *tu_write_file(const char *dir, const char *name, const void *data, size_t n);

#endif
