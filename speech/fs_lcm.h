/* Internal to the FlashSpeech model: what the two consistency steps of a
 * synthesis share (fs_lcm.c), and the attention on keys and values
 * projected beforehand (fs_ops.c) that it uses. */
#ifndef FRT_SPEECH_FS_LCM_H
#define FRT_SPEECH_FS_LCM_H

#include "fs_internal.h"

/* The projections of a WaveNet pass that do not depend on the sampled
 * latent: the 1x1 convolution of the condition in the first `layers`
 * layers (as many as FS_WN_CACHE_COND floats hold) and every FiLM layer's
 * speaker keys and values. The first pass through it fills it (ready),
 * later passes with the same condition, speaker and length read it. It
 * lives in the arena, so its pages stay mapped from one synthesis to the
 * next. */
#define FS_WN_CACHE_COND ((size_t)8 << 20)

typedef struct fs_wn_cache {
    float *cond; /* [layers, 2 ch, t] */
    float *kv;   /* [FiLM layers, 2, n_queries, ch] */
    int64_t t;
    int layers;
    bool ready;
} fs_wn_cache;

/* Floats of arena the cache of the LCM over t frames takes at most. */
size_t fs_wn_cache_floats(const fs_config *c, int64_t t);
/* Takes the cache of wn over t frames from the arena. */
frt_status fs_wn_cache_init(frt_fs_model *m, const fs_wavenet *wn, int64_t t, fs_wn_cache *c);
/* fs_consistency through the cache c (NULL: none). */
frt_status fs_consistency_cached(frt_fs_model *m, const fs_wavenet *wn, const float *x, int64_t t,
                                 double sigma, const float *cond, const float *spk, float *y,
                                 fs_wn_cache *c);

/* The attention of fs_mha on keys and values already projected: k, v [nk, c].
 * An attention without output projection (a->o cleared: folded into the
 * FiLM linear at load) leaves the heads [nq, c] in y. */
frt_status fs_mha_kv(frt_backend *be, fs_arena *ar, float *y, const float *xq, int64_t nq,
                     const float *k, const float *v, int64_t nk, const fs_attn *a, int heads);

#endif
