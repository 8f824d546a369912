/* Placeholder until the attn benchmark lands. */
#include <stdio.h>

#include "bench.h"

int bench_attn_main(int argc, char **argv)
{
    fprintf(stderr, "frt-bench attn: not built yet\n");
    return 2;
}
