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

typedef struct frt_decode_stats {
    int64_t rows;          /* query rows computed */
    int64_t rows_fallback; /* of which recomputed exactly (unified max out of range) */
} frt_decode_stats;

/* Chooses decode for few query rows, flash otherwise. */
frt_status frt_cpu_attention(const frt_attn_args *a, frt_pool *pool);
frt_status frt_cpu_flash_attn(const frt_attn_args *a, frt_pool *pool);
/* stats may be NULL. */
frt_status frt_cpu_decode_attn(const frt_attn_args *a, frt_pool *pool, frt_decode_stats *stats);
/* Naive twin; returns FRT_ERR_NOMEM if it cannot allocate its score row. */
frt_status frt_ref_attn(const frt_attn_args *a);

#endif
