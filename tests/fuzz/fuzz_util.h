/* Shared by the libFuzzer harnesses: quiet logging and a scratch file for
 * the readers that only take a path. */
#ifndef FRT_FUZZ_UTIL_H
#define FRT_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flashrt/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Warnings about malformed input are the expected outcome here: printing one
 * per run would cost more than the run. */
static inline void fuzz_quiet(void)
{
    frt_log_set_level(FRT_LOG_OFF);
}

static char fuzz_scratch[256];

static void fuzz_scratch_remove(void)
{
    if (fuzz_scratch[0]) unlink(fuzz_scratch);
}

/* A per-process scratch path ending in suffix, in a tmpfs when there is one
 * (a run writes it thousands of times a second); removed at exit. */
static inline const char *fuzz_scratch_path(const char *suffix)
{
    if (!fuzz_scratch[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_scratch, sizeof fuzz_scratch, "%s/frt-fuzz-%ld%s", dir, (long)getpid(),
                 suffix);
        atexit(fuzz_scratch_remove);
    }
    return fuzz_scratch;
}

/* Write data to path; false when that fails (the run is then skipped). */
static inline bool fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

#endif
