/* libFuzzer: a config.json, parsed, then read by every model's config reader
 * (Llama, CLIP, projector, STAR memory, FlashSpeech) against an empty
 * checkpoint: whatever sizes it claims, each must refuse it cleanly (a bad
 * value, or the first missing tensor) without allocating for those sizes. */
#include "clip.h"
#include "config.h"
#include "fuzz_util.h"
#include "llama.h"
#include "memory.h"
#include "model.h"
#include "projector.h"

static frt_st *empty_st;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    if (frt_st_from_memory(NULL, 0, "empty", &empty_st) != FRT_OK) abort();
    return 0;
}

/* The getters, on keys the readers use and on shapes they do not. */
static void read_keys(const frt_config *c)
{
    static const char *const keys[] = {"hidden_size",
                                       "num_hidden_layers",
                                       "vocab_size",
                                       "rope_scaling.factor",
                                       "vision_config.image_size",
                                       "text_config.hidden_size",
                                       "a",
                                       "a.b",
                                       "a.b.c",
                                       "",
                                       "."};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        int64_t v, arr[8];
        double d;
        bool b;
        const char *s;
        int n;
        (void)frt_config_has(c, keys[i]);
        (void)frt_config_int(c, keys[i], 0, INT64_MIN, INT64_MAX, &v);
        (void)frt_config_int(c, keys[i], 1, 1, 1 << 20, &v);
        (void)frt_config_float(c, keys[i], 0, &d);
        (void)frt_config_bool(c, keys[i], false, &b);
        (void)frt_config_string(c, keys[i], NULL, &s);
        (void)frt_config_int_array(c, keys[i], arr, 8, &n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    frt_config *c = NULL;
    if (frt_config_parse(text, size, "fuzz.json", &c) == FRT_OK) {
        read_keys(c);

        frt_star_config sc;
        frt_star_config_default(&sc, 1024);
        if (frt_star_config_read(c, &sc) == FRT_OK && frt_star_config_check(&sc) == FRT_OK)
            (void)frt_star_tokens_after(&sc, INT64_MAX);

        frt_llama *lm = NULL;
        if (frt_llama_open(empty_st, c, NULL, NULL, &lm) == FRT_OK) frt_llama_close(lm);
        frt_clip *clip = NULL;
        if (frt_clip_open(empty_st, c, NULL, NULL, &clip) == FRT_OK) frt_clip_close(clip);
        frt_projector *pj = NULL;
        if (frt_projector_open(empty_st, c, NULL, 0, NULL, &pj) == FRT_OK) frt_projector_close(pj);
        frt_config_free(c);
    }
    frt_fs_model *fs = NULL;
    if (frt_fs_model_open_st(text, empty_st, NULL, &fs) == FRT_OK) frt_fs_model_close(fs);
    free(text);
    return 0;
}
