/* frt-bench: performance measurements of flashrt, one subcommand per area.
 * Every figure is reported with its ratio to a limit measured in the same
 * run, because absolute times on shared machines are noisy. */
#include <stdio.h>
#include <string.h>

#include "bench.h"

typedef struct {
    const char *name;
    int (*main)(int, char **);
    const char *help;
} bench_cmd;

static const bench_cmd cmds[] = {
    {"gemm", bench_gemm_main, "GEMM GFLOP/s on the models' shapes vs FMA peak, DRAM, OpenBLAS"},
    {"attn", bench_attn_main, "flash and decode attention vs FMA peak, DRAM, naive attention"},
    {"vit", bench_vit_main, "CLIP ViT-L/14 frames/s vs FMA peak and the PyTorch reference"},
    {"llm", bench_llm_main, "Llama-7B prefill vs bf16 peak, decode vs DRAM bandwidth"},
    {"memory", bench_memory_main, "STAR memory update per frame vs the 5 ms bar"},
    {"tts", bench_tts_main, "FlashSpeech real-time factor, first chunk, vs PyTorch"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: frt-bench <subcommand> [--json] [options]\n\nsubcommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        fprintf(f, "  %-6s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\n'frt-bench <subcommand> --help' lists its options. Threads: FRT_THREADS.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].main(argc - 1, argv + 1);
    fprintf(stderr, "frt-bench: unknown subcommand '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
