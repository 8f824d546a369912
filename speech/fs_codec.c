/* FlashSpeech: the SoundStream/DAC-style codec encoder (reference audio ->
 * prompt latents, optionally residual-VQ'd) and decoder (latents -> 16 kHz
 * waveform). model.py: res_unit, codec_encode, quantize, codec_decode. */
#include <math.h>
#include <string.h>

#include "error.h"
#include "fs_internal.h"
#include "ops.h"
#include "threadpool.h"

/* x [c, len] += conv2(SiLU(conv1_dil(SiLU(x)))); a, y [c, len] scratch. */
static frt_status res_unit(frt_fs_model *m, const fs_res_unit *r, float *x, int64_t len, int dil,
                           float *a, float *y)
{
    size_t n = (size_t)(r->conv1.cin * len);
    FRT_TRY(fs_act(m->be, a, x, n, FRT_ACT_SILU));
    FRT_TRY(fs_conv_same(m->be, y, a, len, &r->conv1, dil));
    FRT_TRY(fs_act(m->be, a, y, n, FRT_ACT_SILU));
    FRT_TRY(fs_conv1d(m->be, y, a, len, &r->conv2, 1, 0, 1));
    frt_cpu_add(x, x, y, (int64_t)n, (int64_t)n, frt_pool_default());
    return FRT_OK;
}

/* Largest channels x length of any stage (encoder walks the strides from the
 * back with channels doubling; decoder from the front with them halving). */
static int64_t codec_peak(const fs_config *cfg, bool decoder, int64_t len)
{
    int64_t c = decoder ? cfg->codec_dec_channels : cfg->codec_enc_channels, peak = c * len;
    for (int b = 0; b < cfg->n_strides; b++) {
        int s = decoder ? cfg->strides[b] : cfg->strides[cfg->n_strides - 1 - b];
        if (decoder) {
            /* the transposed conv's column buffer: [len, (c / 2) * 2s] */
            if (c * s * len > peak) peak = c * s * len;
            c /= 2, len *= s;
        } else {
            c *= 2, len /= s;
        }
        if (c * len > peak) peak = c * len;
    }
    if ((int64_t)cfg->latent_dim * len > peak) peak = (int64_t)cfg->latent_dim * len;
    return peak;
}

size_t fs_codec_scratch(const fs_config *cfg, int64_t enc_samples, int64_t dec_frames)
{
    int64_t e = codec_peak(cfg, false, enc_samples), d = codec_peak(cfg, true, dec_frames);
    /* encoder: 3 buffers of its peak and the quantizer's; decoder 4 */
    int64_t frames = enc_samples / cfg->hop;
    e = 3 * e + frames * (2 * cfg->latent_dim + cfg->codebook_size);
    return (size_t)(e > d * 4 ? e : d * 4);
}

/* Residual VQ over x [t, D] in place: x becomes the sum of the chosen
 * codewords. Codeword k minimises ||C_k||^2 - 2 r.C_k (lowest k on ties). */
static frt_status quantize(frt_fs_model *m, float *x, int64_t t)
{
    const fs_config *cfg = &m->cfg;
    const fs_codec *cd = &m->w.enc;
    int64_t dd = cfg->latent_dim, k = cfg->codebook_size;
    fs_arena *ar = &m->arena;
    size_t mark = ar->used;
    float *r = fs_take(ar, (size_t)(t * dd)), *sc = fs_take(ar, (size_t)(t * k));
    if (!r || !sc) return FRT_ERR_INTERNAL;
    memcpy(r, x, (size_t)(t * dd) * sizeof(float));
    memset(x, 0, (size_t)(t * dd) * sizeof(float));
    for (int i = 0; i < cfg->n_quantizers; i++) {
        frt_tensor ts = fs_t2(sc, t, k), tr = fs_t2(r, t, dd);
        FRT_TRY(frt_linear(m->be, &ts, &tr, &cd->codebooks[i], NULL));
        const float *norms = cd->cb_norms + i * k, *cb = cd->codebooks[i].data;
        for (int64_t j = 0; j < t; j++) {
            int64_t best = 0;
            float bd = norms[0] - 2.0f * sc[j * k];
            for (int64_t c = 1; c < k; c++) {
                float dist = norms[c] - 2.0f * sc[j * k + c];
                if (dist < bd) bd = dist, best = c;
            }
            for (int64_t d = 0; d < dd; d++) {
                x[j * dd + d] += cb[best * dd + d];
                r[j * dd + d] -= cb[best * dd + d];
            }
        }
    }
    ar->used = mark;
    return FRT_OK;
}

frt_status fs_codec_encode(frt_fs_model *m, const float *pcm, int64_t n, float *lat)
{
    const fs_config *cfg = &m->cfg;
    const fs_codec *cd = &m->w.enc;
    fs_arena *ar = &m->arena;
    size_t mark = ar->used, peak = (size_t)codec_peak(cfg, false, n);
    float *x = fs_take(ar, peak), *a = fs_take(ar, peak), *y = fs_take(ar, peak);
    if (!x || !a || !y) return FRT_ERR_INTERNAL;
    int64_t len = n;
    FRT_TRY(fs_conv_same(m->be, x, pcm, len, &cd->in_conv, 1));
    for (int b = 0; b < cfg->n_strides; b++) {
        const fs_codec_block *bl = &cd->blocks[b];
        FRT_TRY(fs_poll_cancel(m));
        for (int r = 0; r < cfg->n_dilations; r++)
            FRT_TRY(res_unit(m, &bl->res[r], x, len, cfg->dilations[r], a, y));
        FRT_TRY(fs_act(m->be, a, x, (size_t)(bl->resample.cin * len), FRT_ACT_SILU));
        FRT_TRY(fs_conv1d(m->be, x, a, len, &bl->resample, bl->stride, (bl->stride + 1) / 2, 1));
        len /= bl->stride;
    }
    FRT_TRY(fs_act(m->be, a, x, (size_t)(cd->out_conv.cin * len), FRT_ACT_SILU));
    FRT_TRY(fs_conv_same(m->be, y, a, len, &cd->out_conv, 1));
    fs_transpose(lat, y, cfg->latent_dim, len);
    if (cfg->n_quantizers > 0) FRT_TRY(quantize(m, lat, len));
    float inv = 1.0f / cfg->latent_norm;
    for (int64_t j = 0; j < len * cfg->latent_dim; j++) lat[j] *= inv;
    ar->used = mark;
    return FRT_OK;
}

/* The scatter of conv_transpose, output channels over the pool. */
typedef struct {
    float *y;
    const float *col, *bias;
    int64_t cout, k, len, s, pad;
} scatter_job;

static void scatter_task(void *arg, int ith, int nth)
{
    const scatter_job *j = arg;
    const int64_t k = j->k, cout = j->cout, tout = j->len * j->s;
    long c0, c1;
    frt_split_range((long)cout, ith, nth, &c0, &c1);
    for (int64_t co = c0; co < c1; co++) {
        float *yr = j->y + co * tout;
        for (int64_t i = 0; i < tout; i++) yr[i] = j->bias[co];
        for (int64_t t = 0; t < j->len; t++) {
            const float *cr = j->col + t * cout * k + co * k;
            for (int64_t kk = 0; kk < k; kk++) {
                int64_t o = t * j->s + kk - j->pad;
                if (o >= 0 && o < tout) yr[o] += cr[kk];
            }
        }
    }
}

/* ConvTranspose1d (padding ceil(s/2), output padding s % 2, so len * s
 * outputs) as a GEMM and a scatter: col [len, cout * k] = a^T w_r^T with
 * w_r [cout * k, cin], then y[co, t s + k - pad] += col[t, co k + k]. */
static frt_status conv_transpose(frt_fs_model *m, const fs_conv *c, int s, const float *a,
                                 int64_t len, float *at, float *col, float *y)
{
    int64_t k = c->k, cout = c->cout, tout = len * s, pad = (s + 1) / 2;
    fs_transpose(at, a, c->cin, len);
    frt_tensor tc = fs_t2(col, len, cout * k), ta = fs_t2(at, len, c->cin);
    FRT_TRY(frt_linear(m->be, &tc, &ta, &c->w, NULL));
    scatter_job sj = {y, col, c->b.data, cout, k, len, s, pad};
    frt_pool *pool = frt_pool_default();
    if (cout * tout < 16384)
        scatter_task(&sj, 0, 1);
    else
        frt_pool_run(pool, scatter_task, &sj);
    return FRT_OK;
}

frt_status fs_codec_decode(frt_fs_model *m, const float *z, int64_t t, float *pcm)
{
    const fs_config *cfg = &m->cfg;
    const fs_codec *cd = &m->w.dec;
    fs_arena *ar = &m->arena;
    size_t mark = ar->used, peak = (size_t)codec_peak(cfg, true, t);
    float *x = fs_take(ar, peak), *a = fs_take(ar, peak), *y = fs_take(ar, peak);
    float *col = fs_take(ar, peak);
    if (!x || !a || !y || !col) return FRT_ERR_INTERNAL;
    int64_t len = t;
    FRT_TRY(fs_conv_same(m->be, x, z, len, &cd->in_conv, 1));
    for (int b = 0; b < cfg->n_strides; b++) {
        const fs_codec_block *bl = &cd->blocks[b];
        FRT_TRY(fs_poll_cancel(m));
        FRT_TRY(fs_act(m->be, a, x, (size_t)(bl->resample.cin * len), FRT_ACT_SILU));
        FRT_TRY(conv_transpose(m, &bl->resample, bl->stride, a, len, y, col, x));
        len *= bl->stride;
        for (int r = 0; r < cfg->n_dilations; r++)
            FRT_TRY(res_unit(m, &bl->res[r], x, len, cfg->dilations[r], a, y));
    }
    FRT_TRY(fs_act(m->be, a, x, (size_t)(cd->out_conv.cin * len), FRT_ACT_SILU));
    FRT_TRY(fs_conv_same(m->be, pcm, a, len, &cd->out_conv, 1));
    for (int64_t j = 0; j < len; j++) pcm[j] = tanhf(pcm[j]);
    ar->used = mark;
    return FRT_OK;
}
