/* Llama decoder (Hugging Face LlamaForCausalLM; Vicuna, LLaVA's and
 * Flash-VStream's language model) with a preallocated KV cache.
 *
 * Per layer: x += o_proj(attn(rope(q), rope(k), v)) on rmsnorm(x), then
 * x += down(silu(gate(h)) * up(h)) on h = rmsnorm(x); logits =
 * lm_head(rmsnorm(x)). Grouped-query attention; rotate-half RoPE with
 * rope_theta and linear rope_scaling; lm_head tied to embed_tokens when the
 * checkpoint has none and tie_word_embeddings is set.
 *
 * Config (LlamaConfig keys, top level or nested under "text_config"):
 * vocab_size, hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads, num_key_value_heads, head_dim, max_position_embeddings,
 * rms_norm_eps, rope_theta, rope_scaling ({"type": "linear", "factor": f}),
 * tie_word_embeddings, attention_bias, hidden_act (silu), bos/eos_token_id.
 * Tensor names: "model.*" + "lm_head.weight" (Llama, LLaVA, Flash-VStream),
 * or "language_model.model.*" + "language_model.lm_head.weight" (detected).
 * Weights F32/F16/BF16 as stored: matrices used in place in the mapping,
 * norms converted to f32 at open; activations are f32.
 *
 * KV cache: [max_ctx, kv_heads, head_dim] per layer for K and for V (f32 or
 * f16), allocated at open. Prefill runs flash attention over the cache with
 * a causal mask offset by the current position; a single token goes to the
 * same entry, which picks the split-KV decode kernel for a few rows.
 * Working memory is sized at open for max_batch rows; longer inputs run in
 * steps of max_batch.
 *
 * Ownership and threads: frt_llama_open borrows st (it must outlive the
 * model) and reads cfg only during the call. A frt_llama holds one
 * sequence's state and its own working memory: calls on one frt_llama must
 * not overlap (several frt_llama may share one frt_st). Host memory: the
 * backend must be the CPU one (another is FRT_ERR_UNSUPPORTED at open). */
#ifndef FRT_VSTREAM_LLAMA_H
#define FRT_VSTREAM_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "safetensors.h"

/* LLaVA's placeholder id for <image> in input ids (frt_llama_splice). */
#define FRT_IMAGE_TOKEN_ID (-200)

typedef struct frt_llama_options {
    int64_t max_ctx;    /* KV cache positions; 0 or above max_position_embeddings:
                           max_position_embeddings */
    int64_t max_batch;  /* rows per internal step; 0: 256 */
    frt_dtype kv_dtype; /* FRT_F32 (0, default) or FRT_F16 */
    const char *prefix; /* decoder tensor prefix ("model."); NULL: detect */
    /* Decode attention with FlashDecoding++'s unified max: softmax against
     * the fixed attn_phi instead of a tracked row max (rows whose scores
     * leave the safe range are recomputed exactly, so results stay exact
     * to rounding). Pick phi from the model's score statistics. */
    bool unified_max;
    float attn_phi;
} frt_llama_options;

typedef struct frt_llama_info {
    int64_t vocab, hidden, intermediate, layers, heads, kv_heads, head_dim;
    int64_t max_pos, max_ctx;
    float eps, rope_theta, rope_scale;
    bool tied;
    int64_t bos_id, eos_id;
} frt_llama_info;

typedef struct frt_llama frt_llama;

/* opt may be NULL (defaults); be NULL is the CPU backend. Failures:
 * FRT_ERR_FORMAT for bad config values (naming the key: non-positive sizes,
 * heads not dividing hidden, kv heads not dividing heads, an odd head_dim)
 * or a tensor of the wrong shape (named), FRT_ERR_NOT_FOUND for a missing
 * tensor (named; also a missing lm_head without tied embeddings),
 * FRT_ERR_UNSUPPORTED for another activation, RoPE scaling or dtype,
 * FRT_ERR_INVALID_ARG for bad options, FRT_ERR_NOMEM. */
frt_status frt_llama_open(const frt_st *st, const frt_config *cfg, const frt_llama_options *opt,
                          frt_backend *be, frt_llama **out);
/* A model directory (config.json + *.safetensors); the model owns them. */
frt_status frt_llama_open_dir(const char *dir, const frt_llama_options *opt, frt_llama **out);
void frt_llama_close(frt_llama *m);

const frt_llama_info *frt_llama_get_info(const frt_llama *m);

/* Tokens in the cache (the next token's position). */
int64_t frt_llama_pos(const frt_llama *m);
/* Forget the sequence (keeps the first `pos` tokens; 0 for all).
 * FRT_ERR_INVALID_ARG if pos is negative or beyond the current position. */
frt_status frt_llama_rewind(frt_llama *m, int64_t pos);
void frt_llama_reset(frt_llama *m);

/* Append n tokens at positions pos .. pos + n - 1: either ids [n] or
 * embeds [n, hidden] (exactly one non-NULL; the caller's). logits: NULL, or
 * [n_logits, vocab] (caller's) receiving the logits of the last n_logits
 * tokens, 1 <= n_logits <= n. FRT_ERR_LIMIT (nothing done) when pos + n
 * exceeds max_ctx; FRT_ERR_INVALID_ARG for an id outside the vocabulary or
 * bad sizes. On any failure the position is unchanged. */
frt_status frt_llama_prefill(frt_llama *m, const int32_t *ids, const float *embeds, int64_t n,
                             float *logits, int64_t n_logits);
/* One token; logits [vocab] (caller's). */
frt_status frt_llama_decode(frt_llama *m, int32_t id, float *logits);

/* Token embeddings: out [n, hidden] (caller's). */
frt_status frt_llama_embed(const frt_llama *m, const int32_t *ids, int64_t n, float *out);

/* LLaVA's splice: the embeddings of ids [n_ids], where each
 * FRT_IMAGE_TOKEN_ID is replaced by the next block of visual tokens
 * (blocks[i] [block_rows[i], hidden], the caller's). out [cap, hidden];
 * *n_out the rows written. FRT_ERR_INVALID_ARG when the placeholders and
 * n_blocks differ, FRT_ERR_LIMIT when the result exceeds cap rows. */
frt_status frt_llama_splice(const frt_llama *m, const int32_t *ids, int64_t n_ids,
                            const float *const *blocks, const int64_t *block_rows, int64_t n_blocks,
                            float *out, int64_t cap, int64_t *n_out);

#endif
