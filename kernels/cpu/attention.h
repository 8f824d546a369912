/* CPU attention: FlashAttention-2 forward (prefill) and split-KV decode
 * (Flash-Decoding, with the FlashDecoding++ unified-max variant), plus the
 * naive twin (materialised softmax in double) the tests compare with.
 * What they compute: shared ALGORITHMS.md section 3; masks: frt_attn_params
 * in backend.h. */
#ifndef FRT_KERNELS_CPU_ATTENTION_H
#define FRT_KERNELS_CPU_ATTENTION_H

#include <stdint.h>

#include "backend.h"
#include "threadpool.h"

/* q [nq, h, d] f32, k/v [nk, h_kv, d] in kv_dtype (f32/f16/bf16), o [nq, h, d]
 * f32. Strides in elements: *_st between tokens, *_sh between heads; the
 * last dim is contiguous. */
typedef struct frt_attn_args {
    int64_t nq, nk, h, h_kv, d;
    const float *q;
    int64_t q_st, q_sh;
    const void *k;
    int64_t k_st, k_sh;
    const void *v;
    int64_t v_st, v_sh;
    frt_dtype kv_dtype;
    float *o;
    int64_t o_st, o_sh;
    frt_attn_params p;
} frt_attn_args;

/* Fast kernels (flash, decode): head dim a multiple of 16 up to this;
 * others give FRT_ERR_UNSUPPORTED (frt_ref_attn takes any d). */
#define FRT_ATTN_MAX_D 256
/* frt_cpu_attention uses decode for nq up to this, flash above. */
#define FRT_ATTN_DECODE_MAX_NQ 4
/* Unified max (p.use_unified_max): scores s = scale q.k + mask are
 * exponentiated as exp(s - phi) without max tracking or rescaling. A row is
 * recomputed with the exact method when its largest score m leaves
 * [phi + FRT_ATTN_UNIFIED_LO, phi + FRT_ATTN_UNIFIED_HI]: above, exp(m - phi)
 * (up to e^30 ~ 1e13 per key, summed over the cache) could overflow the f32
 * sums; below, the largest terms (e^-60 ~ 1e-26) approach the f32 underflow
 * and the smaller ones would lose precision as denormals. Scores below the
 * row max may be anything (masked keys are -inf). A row that sees no key at
 * all outputs zeros and is not a fallback. */
#define FRT_ATTN_UNIFIED_HI 30.0
#define FRT_ATTN_UNIFIED_LO (-60.0)

typedef struct frt_decode_stats {
    int64_t rows;          /* query rows computed */
    int64_t rows_fallback; /* of which recomputed exactly (unified max out of range) */
} frt_decode_stats;

/* All of these: the caller owns every buffer; o must not overlap q, k, v or
 * the mask. pool NULL runs on the calling thread. A query row that sees no
 * key at all (causal, kv_len and -inf mask entries leave none) gets zeros.
 * FRT_ERR_INVALID_ARG on bad sizes, a NULL q, k, v or o, h % h_kv,
 * kv_len outside [0, nk], q_pos0 < 0 with causal, mask_stride < nk (nq > 1),
 * a non-finite scale or phi, or a K/V dtype other than F32/F16/BF16. Working
 * memory is cached between calls (FRT_ERR_NOMEM if it cannot be had). Safe
 * to call from several threads at once (calls sharing a pool are serialised
 * by it). */

/* Chooses decode for nq <= FRT_ATTN_DECODE_MAX_NQ, flash otherwise. */
frt_status frt_cpu_attention(const frt_attn_args *a, frt_pool *pool);
/* FlashAttention-2: query blocks of 64 rows over (head, block) tasks,
 * online softmax over key blocks; ignores p.use_unified_max. */
frt_status frt_cpu_flash_attn(const frt_attn_args *a, frt_pool *pool);
/* Split-KV decode (Flash-Decoding): the threads take (KV chunk, block of
 * K/V heads) units, each returning per row (m, l, unnormalised O), merged
 * exactly; with p.use_unified_max the FlashDecoding++ fast path (see above).
 * stats may be NULL; otherwise its counters are incremented. */
frt_status frt_cpu_decode_attn(const frt_attn_args *a, frt_pool *pool, frt_decode_stats *stats);
/* Naive twin; returns FRT_ERR_NOMEM if it cannot allocate its score row. */
frt_status frt_ref_attn(const frt_attn_args *a);

#endif
