/* FlashSpeech: phoneme encoder (conditional LayerNorm on the prompt) and
 * prompt encoder (latents -> 32 speaker tokens). model.py: phoneme_encoder,
 * prompt_encoder. */
#include <math.h>
#include <string.h>

#include "error.h"
#include "fs_internal.h"

/* x [len, H] += conv2(ReLU(conv1(x^T)))^T, the FFN of a layer. */
static frt_status conv_ffn(frt_fs_model *m, const fs_enc_layer *l, float *x, int64_t len)
{
    fs_arena *ar = &m->arena;
    int64_t hd = m->cfg.hidden, fd = m->cfg.ffn_filter;
    size_t mark = ar->used;
    float *xt = fs_take(ar, (size_t)(hd * len)), *f = fs_take(ar, (size_t)(fd * len));
    if (!xt || !f) return FRT_ERR_INTERNAL;
    fs_transpose(xt, x, len, hd);
    FRT_TRY(fs_conv_same(m->be, f, xt, len, &l->ffn1, 1));
    FRT_TRY(fs_act(m->be, f, f, (size_t)(fd * len), FRT_ACT_RELU));
    FRT_TRY(fs_conv1d(m->be, xt, f, len, &l->ffn2, 1, 0, 1));
    for (int64_t c = 0; c < hd; c++)
        for (int64_t t = 0; t < len; t++) x[t * hd + c] += xt[c * len + t];
    ar->used = mark;
    return FRT_OK;
}

/* One post-LN layer over x [len, H] in place. With g (the prompt vector),
 * the norms are conditional: LN(x) * scale(g) + shift(g). */
static frt_status encoder_layer(frt_fs_model *m, const fs_enc_layer *l, float *x, int64_t len,
                                const float *g)
{
    fs_arena *ar = &m->arena;
    const fs_config *cfg = &m->cfg;
    int64_t hd = cfg->hidden;
    FRT_TRY(fs_poll_cancel(m));
    size_t mark = ar->used;
    float *a = fs_take(ar, (size_t)(len * hd)), *ss = fs_take(ar, (size_t)(4 * hd));
    if (!a || !ss) return FRT_ERR_INTERNAL;
    const float *w1 = l->n1_w.data, *b1 = l->n1_b.data, *w2 = l->n2_w.data, *b2 = l->n2_b.data;
    if (g) {
        FRT_TRY(fs_linear(m->be, ss, g, 1, &l->n1_scale));
        FRT_TRY(fs_linear(m->be, ss + hd, g, 1, &l->n1_shift));
        FRT_TRY(fs_linear(m->be, ss + 2 * hd, g, 1, &l->n2_scale));
        FRT_TRY(fs_linear(m->be, ss + 3 * hd, g, 1, &l->n2_shift));
        w1 = ss, b1 = ss + hd, w2 = ss + 2 * hd, b2 = ss + 3 * hd;
    }
    FRT_TRY(fs_mha(m->be, ar, a, x, len, x, len, &l->attn, cfg->heads));
    for (int64_t i = 0; i < len * hd; i++) x[i] += a[i];
    FRT_TRY(fs_layernorm(m->be, x, x, len, hd, w1, b1, cfg->ln_eps));
    FRT_TRY(conv_ffn(m, l, x, len));
    FRT_TRY(fs_layernorm(m->be, x, x, len, hd, w2, b2, cfg->ln_eps));
    ar->used = mark;
    return FRT_OK;
}

static void add_positions(float *x, float *pe, int64_t len, int hidden)
{
    for (int64_t t = 0; t < len; t++) {
        double pos = (double)t;
        fs_sinusoid(pe, &pos, 1, hidden);
        for (int j = 0; j < hidden; j++) x[t * hidden + j] += pe[j];
    }
}

frt_status fs_phoneme_encoder(frt_fs_model *m, const int32_t *ids, int64_t n, const float *spk,
                              float *h)
{
    const fs_config *cfg = &m->cfg;
    int hd = cfg->hidden;
    size_t mark = m->arena.used;
    float *g = fs_take(&m->arena, (size_t)hd), *pe = fs_take(&m->arena, (size_t)hd);
    if (!g || !pe) return FRT_ERR_INTERNAL;
    for (int j = 0; j < hd; j++) {
        double s = 0;
        for (int q = 0; q < cfg->n_queries; q++) s += spk[(size_t)q * hd + j];
        g[j] = (float)(s / cfg->n_queries);
    }
    const float *emb = m->w.embed.data;
    for (int64_t i = 0; i < n; i++)
        memcpy(h + i * hd, emb + (size_t)ids[i] * hd, hd * sizeof(float));
    add_positions(h, pe, n, hd);
    for (int i = 0; i < cfg->enc_layers; i++)
        FRT_TRY(encoder_layer(m, &m->w.ph_layers[i], h, n, g));
    m->arena.used = mark;
    return FRT_OK;
}

frt_status fs_prompt_encoder(frt_fs_model *m, const float *lat, int64_t tp, float *spk)
{
    const fs_config *cfg = &m->cfg;
    int hd = cfg->hidden;
    size_t mark = m->arena.used;
    float *x = fs_take(&m->arena, (size_t)(tp * hd)), *pe = fs_take(&m->arena, (size_t)hd);
    if (!x || !pe) return FRT_ERR_INTERNAL;
    FRT_TRY(fs_linear(m->be, x, lat, tp, &m->w.pr_in));
    add_positions(x, pe, tp, hd);
    for (int i = 0; i < cfg->prompt_layers; i++)
        FRT_TRY(encoder_layer(m, &m->w.pr_layers[i], x, tp, NULL));
    FRT_TRY(fs_mha(m->be, &m->arena, spk, m->w.queries.data, cfg->n_queries, x, tp,
                   &m->w.query_attn, cfg->heads));
    m->arena.used = mark;
    return FRT_OK;
}
