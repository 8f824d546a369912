/* Placeholder until the gemm benchmark lands. */
#include <stdio.h>

#include "bench.h"

int bench_gemm_main(int argc, char **argv)
{
    fprintf(stderr, "frt-bench gemm: not built yet\n");
    return 2;
}
