/* Internal: CPU features, detected once with cpuid (and the OS's xgetbv),
 * used to pick kernels at run time so one binary runs on any x86-64.
 *
 * Sources named *_avx512.c are compiled with AVX-512 (F/BW/VL/DQ/BF16/VNNI)
 * enabled and *_avx2.c with AVX2+FMA+F16C; only call into them when the
 * matching flag here is set. FRT_CPU=avx2|scalar caps the level (tests use
 * it to exercise every path on one machine). */
#ifndef FRT_CPU_H
#define FRT_CPU_H

#include <stdbool.h>

typedef struct frt_cpu_info {
    bool avx2;       /* AVX2 + FMA + F16C, OS-enabled */
    bool avx512;     /* AVX-512 F+BW+VL+DQ, OS-enabled */
    bool avx512bf16; /* AVX512_BF16 (vdpbf16ps) */
    bool avx512vnni;
} frt_cpu_info;

const frt_cpu_info *frt_cpu(void);

/* Tests: pretend the CPU has only these features (each must be a subset of
 * what it really has; extra flags are cleared). NULL restores detection.
 * Not thread-safe: call while no kernels run. */
void frt_cpu_restrict(const frt_cpu_info *mask);

#endif
