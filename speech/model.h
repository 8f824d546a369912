/* Internal: the FlashSpeech acoustic model (speech engine side).
 *
 * phoneme ids -> phoneme encoder (conditional LayerNorm on the prompt) ->
 * duration predictor + one-step consistency refinement -> length regulator
 * (speed factor) -> pitch predictor + refinement -> pitch embedding ->
 * latent consistency model (1 or 2 steps) -> x latent_norm -> codec decoder
 * -> 16 kHz mono float PCM in [-1, 1].
 * reference audio -> codec encoder (-> residual VQ when the config has
 * codec_quantizers) -> / latent_norm -> prompt encoder -> 32 speaker tokens
 * (a frt_fs_prompt).
 *
 * The checkpoint is a directory with config.json and model.safetensors; the
 * format (every key and tensor name) is documented in
 * tools/reference/flashspeech/README.md, and tools/reference/flashspeech is
 * the PyTorch twin this code is checked against.
 *
 * Ownership and threads: a frt_fs_model owns its mmap'ed weights and one set
 * of activation buffers sized at open for the limits below, so a call never
 * allocates big buffers. Every call that runs the network takes the model's
 * lock: calls on one model from several threads are safe and run one at a
 * time; open one model per thread for parallel synthesis. The model runs on
 * the CPU backend (its glue loops touch activations in host memory). A
 * frt_fs_prompt is immutable after it is made and may be shared between
 * threads and used with the model that made it (or another model with the
 * same hidden size and query count). Getters are lock-free and thread-safe. */
#ifndef FRT_SPEECH_MODEL_H
#define FRT_SPEECH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashrt/core.h"

typedef struct frt_fs_model frt_fs_model;
typedef struct frt_fs_prompt frt_fs_prompt;

/* Limits the activation buffers are sized for. A request past one is
 * FRT_ERR_LIMIT (message names the limit). 0 in a field takes the default. */
typedef struct frt_fs_limits {
    int max_phonemes;          /* default 1024 */
    int max_frames;            /* latent frames after length regulation; default 1500 (30 s) */
    size_t max_prompt_samples; /* reference audio; default 10 s at the model's rate (the
                                 paper prompts with 3 s) */
} frt_fs_limits;

/* Open dir (config.json + model.safetensors). limits may be NULL (defaults).
 * FRT_ERR_NOT_FOUND (missing file or tensor), FRT_ERR_FORMAT (bad config
 * value, wrong tensor shape), FRT_ERR_UNSUPPORTED (an attention head dim
 * that is not a multiple of 16), FRT_ERR_LIMIT (limits above 2^20),
 * FRT_ERR_NOMEM; *out written only on success. F16/BF16 weights are
 * converted to f32 once here; F32 ones are used in place from the mapping. */
frt_status frt_fs_model_open(const char *dir, const frt_fs_limits *limits, frt_fs_model **out);
void frt_fs_model_close(frt_fs_model *m); /* NULL is fine */
/* The same from config.json's text (NUL-terminated) and a checkpoint
 * already open (frt_st_from_memory: benchmarks at real sizes with random
 * weights). st stays the caller's: close it after the model. */
typedef struct frt_st frt_st;
frt_status frt_fs_model_open_st(const char *config_json, frt_st *st, const frt_fs_limits *limits,
                                frt_fs_model **out);

/* The phoneme inventory from config.json: symbols[i] is the symbol of id i
 * (UTF-8; owned by the model, valid until close). *n gets the count. */
const char *const *frt_fs_model_phonemes(const frt_fs_model *m, int *n);
int frt_fs_model_sample_rate(const frt_fs_model *m); /* 16000 */
int frt_fs_model_hop(const frt_fs_model *m);         /* samples per latent frame (320) */

/* Reference audio (mono float PCM at the model's rate, n samples, the
 * caller's) -> speaker prompt. n is padded with zeros to a multiple of the
 * hop; n == 0 or n > max_prompt_samples is FRT_ERR_INVALID_ARG /
 * FRT_ERR_LIMIT. *out is freed with frt_fs_prompt_free. */
frt_status frt_fs_encode_prompt(frt_fs_model *m, const float *pcm, size_t n, frt_fs_prompt **out);
/* Same from prompt latents already divided by latent_norm: lat [t, latent_dim]
 * row-major (frame-major), the caller's. For tests and cached prompts. */
frt_status frt_fs_prompt_from_latents(frt_fs_model *m, const float *lat, size_t t,
                                      frt_fs_prompt **out);
void frt_fs_prompt_free(frt_fs_prompt *p); /* NULL is fine */

typedef struct frt_fs_synth_opts {
    int steps;         /* 1 or 2 consistency steps; default 1 */
    float sigma_inter; /* the second step's sigma; 0 = config's sigma_inter (2.0) */
    float speed;       /* > 0; durations are divided by it; default 1 */
    uint64_t seed;     /* noise generator seed (frt_fs_noise_fill); default 0 */
    /* Explicit noise instead of the generator (parity tests): noise_len
     * standard-normal values consumed in this order: duration refinement
     * [n phonemes], pitch refinement [frames], LCM step 1 [latent_dim,
     * frames], LCM step 2 [latent_dim, frames] (only with steps 2). Too few
     * values is FRT_ERR_INVALID_ARG. NULL: the seeded generator draws the
     * same streams in the same order, each from the same running generator. */
    const float *noise;
    size_t noise_len;
    /* Polled on the calling thread between modules and between layers
     * (a few ms apart on the full model); returning true stops the call
     * with FRT_ERR_CANCELLED. NULL: never cancelled. */
    bool (*cancel)(void *user);
    void *cancel_user;
} frt_fs_synth_opts;

void frt_fs_synth_opts_default(frt_fs_synth_opts *o);

/* ids [n] phoneme ids (the caller's; each in [0, n_phonemes) else
 * FRT_ERR_INVALID_ARG); prompt NULL means the zero prompt (32 speaker
 * tokens of zeros: the conditional LayerNorm falls back to its biases).
 * opts NULL = defaults. On success *pcm (allocated with frt_alloc, freed by
 * the caller with frt_free) holds *n_samples = frames * hop samples; when
 * every duration rounds to 0 it is a valid pointer with *n_samples 0.
 * n == 0 is FRT_ERR_INVALID_ARG; n > max_phonemes or frames > max_frames is
 * FRT_ERR_LIMIT. On failure *pcm and *n_samples are untouched. */
frt_status frt_fs_synthesize(frt_fs_model *m, const int32_t *ids, size_t n,
                             const frt_fs_prompt *prompt, const frt_fs_synth_opts *opts,
                             float **pcm, size_t *n_samples);

/* The seeded standard-normal generator (same numbers as the Python
 * reference's flashspeech.noise.normal(seed, ...)): splitmix64 over a
 * counter, u = ((x >> 11) + 0.5) / 2^53, Box-Muller in double on pairs
 * (u1, u2): sqrt(-2 ln u1) cos(2 pi u2), then sin; an odd count drops the
 * last sin. *state starts as the seed and advances; not thread-safe on one
 * state. */
void frt_fs_noise_fill(uint64_t *state, float *dst, size_t n);

#endif
