/* Internal: choosing the next token from logits, as Hugging Face generate()
 * does: repetition penalty, then temperature, top-k, top-p, then a draw.
 *
 * - repetition_penalty p (1 = off): every distinct id in the history gets
 *   logit > 0 ? logit / p : logit * p (once, however often it occurs).
 * - temperature 0: greedy (argmax after the penalty; ties go to the lowest
 *   id). Otherwise logits / temperature.
 * - top_k (0 = off): tokens below the k-th largest logit are dropped (ties
 *   with it are kept).
 * - top_p (1 = off): after top-k, the tokens sorted by probability are kept
 *   while the mass before them is below top_p (at least one is kept).
 * - the draw: inverse CDF of the kept tokens' softmax with a uniform from a
 *   seeded xoshiro256** generator, so a seed reproduces a run (it is not
 *   PyTorch's generator: the same seed gives other tokens than HF).
 *
 * A frt_sampler owns its generator state and working memory (sized for the
 * vocabulary at create): not thread-safe, one per sequence. */
#ifndef FRT_SAMPLING_H
#define FRT_SAMPLING_H

#include <stdint.h>

#include "flashrt/core.h"

typedef struct frt_sampler_params {
    float temperature;        /* 0: greedy */
    int top_k;                /* 0: off */
    float top_p;              /* 1 (or 0): off */
    float repetition_penalty; /* 1 (or 0): off */
    uint64_t seed;
} frt_sampler_params;

typedef struct frt_sampler frt_sampler;

/* FRT_ERR_INVALID_ARG for vocab <= 0, a negative or non-finite temperature,
 * top_k < 0, top_p outside [0, 1], a negative penalty; FRT_ERR_NOMEM. */
frt_status frt_sampler_create(const frt_sampler_params *p, int64_t vocab, frt_sampler **out);
void frt_sampler_free(frt_sampler *s);

/* Restart the generator from seed. */
void frt_sampler_reseed(frt_sampler *s, uint64_t seed);

/* logits [vocab] (the caller's, read only); history [n_history] the ids seen
 * so far (prompt and generated; for the penalty; may be NULL when
 * n_history is 0). *out the chosen id. FRT_ERR_INVALID_ARG when no token
 * has a finite logit or a history id is outside the vocabulary. */
frt_status frt_sampler_sample(frt_sampler *s, const float *logits, const int32_t *history,
                              int64_t n_history, int32_t *out);

/* The logits the draw sees (penalty, temperature, top-k, top-p applied;
 * dropped tokens -INFINITY): in [vocab] -> out [vocab] (the caller's; may
 * alias). With temperature 0 only the penalty is applied. Errors as
 * frt_sampler_sample. */
frt_status frt_sampler_process(frt_sampler *s, const float *logits, const int32_t *history,
                               int64_t n_history, float *out);

#endif
