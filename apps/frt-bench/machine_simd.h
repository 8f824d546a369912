/* Calibration loops, one per ISA (machine_avx512.c, machine_avx2.c). Each
 * returns the FLOPs it performed; `iters` scales the work. */
#ifndef FRT_BENCH_MACHINE_SIMD_H
#define FRT_BENCH_MACHINE_SIMD_H

#include <stddef.h>
#include <stdint.h>

double bench_fma_loop_avx512(long iters);
double bench_bf16_loop_avx512(long iters);
double bench_read_avx512(const float *p, size_t n, float *sink);
double bench_fma_loop_avx2(long iters);
double bench_read_avx2(const float *p, size_t n, float *sink);

#endif
