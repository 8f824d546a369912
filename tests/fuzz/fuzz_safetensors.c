/* libFuzzer: a safetensors file (8-byte header length, JSON header, data),
 * opened, every tensor looked up, the small float ones converted to f32 and
 * summed so that every byte a view claims is read. */
#include "fuzz_util.h"
#include "safetensors.h"

/* Reads land here so the compiler cannot drop them. */
static volatile float fuzz_sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_path(".safetensors");
    if (!fuzz_write_file(path, data, size)) return 0;
    frt_st *st = NULL;
    if (frt_st_open(path, &st) != FRT_OK) return 0;
    for (int64_t i = 0; i < frt_st_count(st); i++) {
        const char *name = frt_st_name(st, i);
        frt_tensor t;
        if (frt_st_get(st, name, &t) != FRT_OK) continue;
        const uint8_t *b = t.data;
        size_t nb = frt_tensor_nbytes(&t);
        for (size_t k = 0; k < nb; k++) fuzz_sink += b[k];
        if (frt_st_get_f32(st, name, &t) == FRT_OK) {
            const float *f = t.data;
            for (int64_t k = 0; k < frt_tensor_numel(&t); k++) fuzz_sink += f[k];
            frt_tensor_free(&t);
        }
    }
    frt_st_close(st);
    return 0;
}
