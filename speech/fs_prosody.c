/* FlashSpeech: duration and pitch predictors, length regulator, pitch
 * embedding. model.py: prosody_predictor, durations, length_regulate,
 * pitch_bins, pitch_embed. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "fs_internal.h"

frt_status fs_prosody_predict(frt_fs_model *m, const fs_prosody *p, const float *x, int64_t len,
                              const float *spk, float *out)
{
    const fs_config *cfg = &m->cfg;
    fs_arena *ar = &m->arena;
    int64_t f = p->filters, wide = f > cfg->hidden ? f : cfg->hidden;
    size_t mark = ar->used;
    float *cur = fs_take(ar, (size_t)(len * f)), *xt = fs_take(ar, (size_t)(len * wide));
    float *y = fs_take(ar, (size_t)(len * f)), *a = fs_take(ar, (size_t)(len * f));
    if (!cur || !xt || !y || !a) return FRT_ERR_INTERNAL;
    for (int i = 0; i < p->layers; i++) {
        const fs_pros_layer *l = &p->l[i];
        FRT_TRY(fs_poll_cancel(m));
        const float *in = i == 0 ? x : cur;
        fs_transpose(xt, in, len, l->conv.cin);
        FRT_TRY(fs_conv_same(m->be, y, xt, len, &l->conv, 1));
        FRT_TRY(fs_act(m->be, y, y, (size_t)(f * len), FRT_ACT_RELU));
        fs_transpose(a, y, f, len);
        FRT_TRY(fs_layernorm(m->be, a, a, len, f, l->norm_w.data, l->norm_b.data, cfg->ln_eps));
        if (i == 0)
            memcpy(cur, a, (size_t)(len * f) * sizeof(float));
        else
            for (int64_t j = 0; j < len * f; j++) cur[j] += a[j];
        if (l->has_attn) {
            FRT_TRY(
                fs_mha(m->be, ar, a, cur, len, spk, cfg->n_queries, &l->attn, cfg->prosody_heads));
            for (int64_t j = 0; j < len * f; j++) cur[j] += a[j];
        }
    }
    FRT_TRY(fs_linear(m->be, out, cur, len, &p->out));
    ar->used = mark;
    return FRT_OK;
}

int64_t fs_durations(const float *log_dur, int64_t n, float speed, int32_t *dur)
{
    int64_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = floor((exp((double)log_dur[i]) - 1.0) / speed + 0.5);
        /* Clamp before the cast: a huge or NaN log-duration must not be UB. */
        if (!(v > 0)) v = 0;
        if (v > INT32_MAX) v = INT32_MAX;
        dur[i] = (int32_t)v;
        total = total > INT64_MAX - dur[i] ? INT64_MAX : total + dur[i];
    }
    return total;
}

void fs_length_regulate(const float *h, int64_t n, int hidden, const int32_t *dur, float *e)
{
    int64_t t = 0;
    for (int64_t i = 0; i < n; i++)
        for (int32_t k = 0; k < dur[i]; k++, t++)
            memcpy(e + t * hidden, h + i * hidden, (size_t)hidden * sizeof(float));
}

int fs_pitch_bin(const fs_config *cfg, float log_f0)
{
    double lo = log((double)cfg->pitch_min_hz), hi = log((double)cfg->pitch_max_hz);
    double b = floor(((double)log_f0 - lo) / (hi - lo) * (cfg->pitch_bins - 1) + 0.5);
    if (!(b > 0)) return 0;
    return b > cfg->pitch_bins - 1 ? cfg->pitch_bins - 1 : (int)b;
}

void fs_pitch_embed(const frt_fs_model *m, const float *e, const float *log_f0, int64_t t, float *c)
{
    int hd = m->cfg.hidden;
    const float *tab = m->w.pitch_embed.data;
    for (int64_t i = 0; i < t; i++) {
        const float *row = tab + (size_t)fs_pitch_bin(&m->cfg, log_f0[i]) * hd;
        for (int j = 0; j < hd; j++) c[i * hd + j] = e[i * hd + j] + row[j];
    }
}
