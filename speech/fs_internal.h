/* Internal to the FlashSpeech model (speech/fs_*.c, speech/model.c and its
 * tests): configuration, weights, the scratch arena and one entry point per
 * module. The math of each module is written out in
 * tools/reference/flashspeech/model.py; the C follows it function by
 * function.
 *
 * Layouts: transformer-side activations are [T, H] row-major (frame-major);
 * convolution-side ones (WaveNet, codec) are [C, T] (channel-major). Module
 * functions take the caller's input and output buffers and draw their
 * working memory from the arena, giving it back before they return. */
#ifndef FRT_SPEECH_FS_INTERNAL_H
#define FRT_SPEECH_FS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "backend.h"
#include "config.h"
#include "model.h"
#include "safetensors.h"

#define FS_MAX_STRIDES   8
#define FS_MAX_DILATIONS 8

typedef struct fs_config {
    int n_phonemes;
    char **phonemes;
    int hidden, heads, enc_layers, prompt_layers, ffn_filter, ffn_kernel;
    float ln_eps;
    int n_queries, prosody_heads, prosody_period;
    int dur_layers, dur_filters, dur_kernel;
    int pitch_layers, pitch_filters, pitch_kernel;
    int refiner_layers, refiner_channels;
    float alpha;
    int pitch_bins;
    float pitch_min_hz, pitch_max_hz;
    int wn_layers, wn_channels, wn_kernel, wn_dilation_cycle, film_period, film_heads;
    float time_embed_scale;
    int latent_dim;
    float latent_norm;
    int sample_rate;
    int n_strides, strides[FS_MAX_STRIDES], hop;
    int codec_enc_channels, codec_dec_channels, codec_kernel;
    int n_dilations, dilations[FS_MAX_DILATIONS];
    int n_quantizers, codebook_size; /* 0 quantizers: the dense feature */
    float sigma_data, sigma_min, sigma_max, sigma_inter;
    bool vocoder;      /* codec_type "vocoder": the signal-processing codec (fs_vocoder.c) */
    bool prompt_match; /* vocoder: output speech statistics matched to the prompt's */
} fs_config;

/* The signal-processing codec's parameters and tables (fs_vocoder.c). */
/* The vocoder equaliser's FIR filter ("vocoder_eq"): taps -FS_EQ_HALF..FS_EQ_HALF
 * (vocoder.py: EQ_HALF, eq_taps). */
#define FS_EQ_HALF 128

typedef struct fs_vocoder {
    int hop, win, n_fft, bands, yin_win, iters, tau_min, tau_max;
    uint64_t noise_seed;
    double floor;
    double noise_gain;      /* the noise's weight in voiced excitation */
    double *window;         /* [win] periodic Hann */
    double *mel;            /* [bands, n_fft / 2 + 1] triangles */
    double *mel_norm;       /* [n_fft / 2 + 1] their sum per bin */
    double *twiddle;        /* [n_fft / 2] (cos, -sin) pairs */
    float *mean, *scale;    /* [latent_dim] latent = (feature - mean) / scale */
    int *band_lo, *band_hi; /* [bands] each triangle's nonzero bins [lo, hi) */
    int *bin_band;          /* [n_fft / 2 + 1] the first band whose range reaches the bin */
    double *eq_taps;        /* [FS_EQ_HALF + 1] the equaliser's taps 0.. (symmetric), or NULL */
} fs_vocoder;

typedef struct fs_lin {
    frt_tensor w, b; /* [out, in], [out] */
} fs_lin;

typedef struct fs_conv {
    frt_tensor w, b; /* [cout, cin, k], [cout] */
    int cout, cin, k;
} fs_conv;

typedef struct fs_attn {
    fs_lin q, k, v, o;
} fs_attn;

/* Post-LN Transformer layer; conditional LayerNorm (scale/shift Linear of
 * the prompt vector) in the phoneme encoder, affine LN in the prompt one. */
typedef struct fs_enc_layer {
    fs_attn attn;
    fs_conv ffn1, ffn2;
    fs_lin n1_scale, n1_shift, n2_scale, n2_shift;
    frt_tensor n1_w, n1_b, n2_w, n2_b;
} fs_enc_layer;

typedef struct fs_pros_layer {
    fs_conv conv;
    frt_tensor norm_w, norm_b;
    bool has_attn;
    fs_attn attn;
} fs_pros_layer;

typedef struct fs_prosody {
    int layers, filters, kernel;
    fs_pros_layer *l;
    fs_lin out;
} fs_prosody;

typedef struct fs_wn_layer {
    fs_lin time;
    fs_conv conv, cond, out;
    bool film;
    fs_attn film_attn;
    fs_lin film_lin;
} fs_wn_layer;

typedef struct fs_wavenet {
    int layers, cin, ch, cout;
    fs_conv in_proj, skip_proj, out_proj;
    fs_lin t0, t2;
    fs_wn_layer *l;
} fs_wavenet;

typedef struct fs_res_unit {
    fs_conv conv1, conv2;
} fs_res_unit;

typedef struct fs_codec_block {
    fs_res_unit res[FS_MAX_DILATIONS];
    fs_conv resample; /* encoder: strided conv; decoder: transposed conv with
                         w re-laid out to [cout * k, cin] (in wbuf) */
    int stride;
} fs_codec_block;

typedef struct fs_codec {
    fs_conv in_conv, out_conv;
    fs_codec_block blocks[FS_MAX_STRIDES];
    frt_tensor *codebooks; /* encoder only: [n_quantizers] of [K, D] */
    float *cb_norms;       /* [n_quantizers, K]: ||C_k||^2, in wbuf */
} fs_codec;

typedef struct fs_weights {
    frt_tensor embed; /* [V, H] */
    fs_enc_layer *ph_layers, *pr_layers;
    fs_lin pr_in;
    frt_tensor queries; /* [Q, H] */
    fs_attn query_attn;
    fs_prosody dur, pitch;
    frt_tensor pitch_embed; /* [bins, H] */
    fs_wavenet dur_ref, pitch_ref, lcm;
    fs_codec enc, dec;
} fs_weights;

/* Bump allocator over one buffer allocated at open. */
typedef struct fs_arena {
    char *base;
    size_t cap, used, peak;
} fs_arena;

/* Floats the arena holds beyond the budget formulas (model.c), for the
 * 64-byte rounding of each take; the formulas alone must suffice for the
 * rest, which the tests check by using less than half of this. */
#define FS_ARENA_SLACK (1 << 18)

/* n floats, 64-byte aligned; NULL (and FRT_ERR_INTERNAL recorded) when the
 * budget computed at open is exceeded, which is a bug in the budget. */
float *fs_take(fs_arena *a, size_t n);

struct frt_fs_model {
    fs_config cfg;
    fs_weights w;
    fs_vocoder voc; /* cfg.vocoder only */
    frt_st *st;
    bool st_borrowed; /* frt_fs_model_open_st: the caller closes st */
    frt_backend *be;
    int max_phonemes, max_frames, max_prompt_frames;
    size_t max_prompt_samples;
    fs_arena arena;
    char *wbuf; /* f32 copies of F16/BF16 weights and re-laid-out ones */
    size_t wcap, wused;
    pthread_mutex_t lock;
    bool (*cancel)(void *user); /* of the call in progress, under lock */
    void *cancel_user;
};

/* A prompt's speech statistics (prompt_match): median log F0 over voiced
 * frames (has_f0 false when none is voiced) and mean band levels over
 * speech frames. */
typedef struct fs_speech_stats {
    bool has_f0;
    double f0;
    int n_bands;
    double *bands; /* [n_bands] */
} fs_speech_stats;

struct frt_fs_prompt {
    int n_queries, hidden;
    float *spk;            /* [Q, H] */
    fs_speech_stats stats; /* bands NULL unless the model has prompt_match */
};

/* ---- helpers shared by the module files (fs_ops.c) ------------------------- */

/* FRT_ERR_CANCELLED (recorded) when the call's cancel callback says so. */
frt_status fs_poll_cancel(const frt_fs_model *m);

frt_tensor fs_t2(float *p, int64_t a, int64_t b);
frt_status fs_linear(frt_backend *be, float *y, const float *x, int64_t rows, const fs_lin *l);
/* x [cin, t] -> y [cout, tout] */
frt_status fs_conv1d(frt_backend *be, float *y, const float *x, int64_t t, const fs_conv *c,
                     int stride, int padding, int dilation);
/* "Same" padding for an odd kernel. */
frt_status fs_conv_same(frt_backend *be, float *y, const float *x, int64_t t, const fs_conv *c,
                        int dilation);
frt_status fs_layernorm(frt_backend *be, float *y, const float *x, int64_t rows, int64_t cols,
                        const float *w, const float *b, float eps);
frt_status fs_act(frt_backend *be, float *y, const float *x, size_t n, frt_act kind);
/* y [cols, rows] = x [rows, cols]^T */
void fs_transpose(float *y, const float *x, int64_t rows, int64_t cols);
/* Multi-head attention without mask: xq [nq, cq], xkv [nk, ckv] -> y [nq, c]
 * where c = a->q.w rows. */
frt_status fs_mha(frt_backend *be, fs_arena *ar, float *y, const float *xq, int64_t nq,
                  const float *xkv, int64_t nk, const fs_attn *a, int heads);
/* pe [n, dim]: sin(pos_i w_j) | cos(pos_i w_j), w_j = 10000^(-j/(dim/2)). */
void fs_sinusoid(float *pe, const double *pos, int64_t n, int dim);

/* ---- modules ------------------------------------------------------------------ */

/* ids [n] -> h [n, H]; spk [Q, H] (g = their mean). */
frt_status fs_phoneme_encoder(frt_fs_model *m, const int32_t *ids, int64_t n, const float *spk,
                              float *h);
/* lat [tp, D] -> spk [Q, H] */
frt_status fs_prompt_encoder(frt_fs_model *m, const float *lat, int64_t tp, float *spk);
/* x [L, H] -> out [L] */
frt_status fs_prosody_predict(frt_fs_model *m, const fs_prosody *p, const float *x, int64_t len,
                              const float *spk, float *out);
/* log(d+1) [n] -> dur [n]: max(0, floor((exp(x) - 1) / speed + 0.5)); returns
 * the total (saturating at INT64_MAX). */
int64_t fs_durations(const float *log_dur, int64_t n, float speed, int32_t *dur);
/* h [n, H] -> e [sum dur, H] */
void fs_length_regulate(const float *h, int64_t n, int hidden, const int32_t *dur, float *e);
/* c [t, H] = e + pitch_embed[bin(log_f0)] (c may alias e) */
void fs_pitch_embed(const frt_fs_model *m, const float *e, const float *log_f0, int64_t t,
                    float *c);
int fs_pitch_bin(const fs_config *cfg, float log_f0);

void fs_precond(const fs_config *cfg, double s, double *c_skip, double *c_out, double *c_in,
                double *c_noise);
/* The consistency function f(x, s): x [cin, t], cond [H, t] -> y [cout, t]
 * (y may not alias x). */
frt_status fs_consistency(frt_fs_model *m, const fs_wavenet *wn, const float *x, int64_t t,
                          double sigma, const float *cond, const float *spk, float *y);
/* Prosody refinement: out [len] = init + alpha f(sigma_max eps, sigma_max);
 * cond [len, H] (frame-major). */
frt_status fs_refine(frt_fs_model *m, const fs_wavenet *wn, const float *init, const float *eps,
                     int64_t len, const float *cond, const float *spk, float *out);

/* Floats of arena one call needs: either encoder over len tokens, a
 * predictor over len, a WaveNet of ch channels and cin inputs over len
 * (refine: through fs_refine). */
size_t fs_scratch_encoder(const fs_config *c, int64_t len);
size_t fs_scratch_prosody(const fs_config *c, int64_t len);
size_t fs_scratch_wavenet(const fs_config *c, int ch, int cin, int64_t len, bool refine);
/* Floats of arena the codec needs for enc_samples of reference audio or
 * dec_frames of latents. */
size_t fs_codec_scratch(const fs_config *cfg, int64_t enc_samples, int64_t dec_frames);
/* pcm [n] (a multiple of hop) -> lat [n / hop, D]: the encoder output,
 * residual-VQ'd when codec_quantizers > 0, divided by latent_norm. */
frt_status fs_codec_encode(frt_fs_model *m, const float *pcm, int64_t n, float *lat);
/* z [D, t] (already times latent_norm) -> pcm [t * hop] */
frt_status fs_codec_decode(frt_fs_model *m, const float *z, int64_t t, float *pcm);

/* ---- the vocoder codec (fs_vocoder.c) ------------------------------------------ */

struct cJSON;
/* Reads the vocoder_* keys of config c (root: the same JSON, for the float
 * arrays; path names it in messages), checks them against cfg and builds
 * the tables; sets cfg->hop. FRT_ERR_FORMAT / FRT_ERR_NOMEM; v is freed by
 * fs_vocoder_free either way. */
frt_status fs_vocoder_open(fs_vocoder *v, fs_config *cfg, const frt_config *c, struct cJSON *root,
                           const char *path);
void fs_vocoder_free(fs_vocoder *v);
size_t fs_vocoder_scratch(const fs_config *cfg, const fs_vocoder *v, int64_t enc_samples,
                          int64_t dec_frames);
/* pcm [n] (a multiple of hop) -> lat [n / hop, D]: normalised features
 * divided by latent_norm. */
frt_status fs_vocoder_encode(frt_fs_model *m, const float *pcm, int64_t n, float *lat);
/* z [D, t] (already times latent_norm) -> pcm [t * hop]; log_f0 [t], when
 * not NULL, replaces the latent's F0 channel (the model's pitch stream). */
frt_status fs_vocoder_decode(frt_fs_model *m, const float *z, const float *log_f0, int64_t t,
                             float *pcm);
/* prompt_match (model.py: prompt_stats, match_prompt). The statistics of
 * prompt latents lat [t, D] (/ latent_norm) into st (st->bands holds
 * vocoder bands doubles); and the shift of z [D, t] (x latent_norm) and
 * log_f0 [t], in place, to the prompt's statistics. Arena scratch: t
 * doubles (fs_vocoder_scratch covers it). */
frt_status fs_vocoder_prompt_stats(frt_fs_model *m, const float *lat, int64_t t,
                                   fs_speech_stats *st);
frt_status fs_vocoder_match(frt_fs_model *m, float *z, float *log_f0, int64_t t,
                            const fs_speech_stats *prompt);

#endif
