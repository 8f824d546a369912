/* FlashSpeech: the non-causal WaveNet, consistency-model preconditioning and
 * the prosody refinement. model.py: wavenet, precond, consistency, refine. */
#include <math.h>
#include <string.h>

#include "error.h"
#include "fs_internal.h"
#include "ops.h"
#include "threadpool.h"

void fs_precond(const fs_config *cfg, double s, double *c_skip, double *c_out, double *c_in,
                double *c_noise)
{
    double sd = cfg->sigma_data, smin = cfg->sigma_min;
    *c_skip = sd * sd / ((s - smin) * (s - smin) + sd * sd);
    *c_out = (s - smin) * sd / sqrt(s * s + sd * sd);
    *c_in = 1.0 / sqrt(s * s + sd * sd);
    *c_noise = log(s) / 4.0;
}

/* temb [C] = Linear(Mish(Linear(sinusoid(c_noise * scale)))) */
static frt_status time_embedding(frt_fs_model *m, const fs_wavenet *wn, double c_noise, float *temb)
{
    size_t mark = m->arena.used;
    float *s = fs_take(&m->arena, (size_t)wn->ch), *t1 = fs_take(&m->arena, (size_t)(4 * wn->ch));
    if (!s || !t1) return FRT_ERR_INTERNAL;
    double pos = c_noise * m->cfg.time_embed_scale;
    fs_sinusoid(s, &pos, 1, wn->ch);
    FRT_TRY(fs_linear(m->be, t1, s, 1, &wn->t0));
    FRT_TRY(fs_act(m->be, t1, t1, (size_t)(4 * wn->ch), FRT_ACT_MISH));
    FRT_TRY(fs_linear(m->be, temb, t1, 1, &wn->t2));
    m->arena.used = mark;
    return FRT_OK;
}

/* z [2C, t] = z * (1 + gamma^T) + beta^T, gamma | beta = film(MHA(u^T, spk)). */
static frt_status film(frt_fs_model *m, const fs_wn_layer *l, int64_t ch, const float *u, int64_t t,
                       const float *spk, float *z)
{
    fs_arena *ar = &m->arena;
    size_t mark = ar->used;
    float *ut = fs_take(ar, (size_t)(t * ch)), *att = fs_take(ar, (size_t)(t * ch));
    float *gb = fs_take(ar, (size_t)(t * 4 * ch));
    if (!ut || !att || !gb) return FRT_ERR_INTERNAL;
    fs_transpose(ut, u, ch, t);
    FRT_TRY(fs_mha(m->be, ar, att, ut, t, spk, m->cfg.n_queries, &l->film_attn, m->cfg.film_heads));
    FRT_TRY(fs_linear(m->be, gb, att, t, &l->film_lin));
    for (int64_t i = 0; i < t; i++) {
        const float *gamma = gb + i * 4 * ch, *beta = gamma + 2 * ch;
        for (int64_t c = 0; c < 2 * ch; c++)
            z[c * t + i] = z[c * t + i] * (1.0f + gamma[c]) + beta[c];
    }
    ar->used = mark;
    return FRT_OK;
}

/* F(x, c_noise, cond, spk): x [cin, t], cond [H, t] -> y [cout, t]. */
static frt_status wavenet(frt_fs_model *m, const fs_wavenet *wn, const float *x, int64_t t,
                          double c_noise, const float *cond, const float *spk, float *y)
{
    fs_arena *ar = &m->arena;
    int64_t ch = wn->ch, n = ch * t;
    size_t mark = ar->used;
    float *h = fs_take(ar, (size_t)n), *skip = fs_take(ar, (size_t)n);
    float *u = fs_take(ar, (size_t)n), *z = fs_take(ar, (size_t)(2 * n));
    float *o = fs_take(ar, (size_t)(2 * n)), *temb = fs_take(ar, (size_t)ch);
    float *tl = fs_take(ar, (size_t)ch);
    if (!h || !skip || !u || !z || !o || !temb || !tl) return FRT_ERR_INTERNAL;

    FRT_TRY(fs_conv1d(m->be, h, x, t, &wn->in_proj, 1, 0, 1));
    FRT_TRY(fs_act(m->be, h, h, (size_t)n, FRT_ACT_RELU));
    FRT_TRY(time_embedding(m, wn, c_noise, temb));
    memset(skip, 0, (size_t)n * sizeof(float));
    const float inv_sqrt2 = (float)(1.0 / sqrt(2.0));
    frt_pool *pool = frt_pool_default();
    for (int i = 0; i < wn->layers; i++) {
        const fs_wn_layer *l = &wn->l[i];
        FRT_TRY(fs_poll_cancel(m));
        FRT_TRY(fs_linear(m->be, tl, temb, 1, &l->time));
        /* the element-wise steps go through the vector kernels (this file
         * is built for the baseline ISA), the large ones split over the pool */
        for (int64_t c = 0; c < ch; c++) frt_cpu_add(u + c * t, h + c * t, tl + c, t, 1, NULL);
        int dil = 1 << (i % m->cfg.wn_dilation_cycle);
        FRT_TRY(fs_conv_same(m->be, z, u, t, &l->conv, dil));
        FRT_TRY(fs_conv1d(m->be, o, cond, t, &l->cond, 1, 0, 1));
        frt_cpu_add(z, z, o, 2 * n, 2 * n, pool);
        if (l->film) FRT_TRY(film(m, l, ch, u, t, spk, z));
        /* u is free again: it takes the gate; vectorised exp, split over the
         * pool (libm's tanhf and expf cost about as much as a small conv) */
        frt_cpu_gate(u, z, z + n, n, pool);
        FRT_TRY(fs_conv1d(m->be, o, u, t, &l->out, 1, 0, 1));
        frt_cpu_add(h, h, o, n, n, pool);
        frt_cpu_scale(h, h, inv_sqrt2, n, pool);
        frt_cpu_add(skip, skip, o + n, n, n, pool);
    }
    float s = (float)(1.0 / sqrt((double)wn->layers));
    frt_cpu_scale(skip, skip, s, n, pool);
    FRT_TRY(fs_conv1d(m->be, h, skip, t, &wn->skip_proj, 1, 0, 1));
    FRT_TRY(fs_act(m->be, h, h, (size_t)n, FRT_ACT_RELU));
    FRT_TRY(fs_conv1d(m->be, y, h, t, &wn->out_proj, 1, 0, 1));
    ar->used = mark;
    return FRT_OK;
}

frt_status fs_consistency(frt_fs_model *m, const fs_wavenet *wn, const float *x, int64_t t,
                          double sigma, const float *cond, const float *spk, float *y)
{
    double c_skip, c_out, c_in, c_noise;
    fs_precond(&m->cfg, sigma, &c_skip, &c_out, &c_in, &c_noise);
    size_t mark = m->arena.used;
    int64_t n = wn->cin * t;
    float *xin = fs_take(&m->arena, (size_t)n);
    if (!xin) return FRT_ERR_INTERNAL;
    for (int64_t j = 0; j < n; j++) xin[j] = (float)(c_in * x[j]);
    FRT_TRY(wavenet(m, wn, xin, t, c_noise, cond, spk, y));
    for (int64_t j = 0; j < wn->cout * t; j++) y[j] = (float)(c_skip * x[j] + c_out * y[j]);
    m->arena.used = mark;
    return FRT_OK;
}

frt_status fs_refine(frt_fs_model *m, const fs_wavenet *wn, const float *init, const float *eps,
                     int64_t len, const float *cond, const float *spk, float *out)
{
    const fs_config *cfg = &m->cfg;
    size_t mark = m->arena.used;
    float *x = fs_take(&m->arena, (size_t)len), *r = fs_take(&m->arena, (size_t)len);
    float *ct = fs_take(&m->arena, (size_t)(len * cfg->hidden));
    if (!x || !r || !ct) return FRT_ERR_INTERNAL;
    for (int64_t j = 0; j < len; j++) x[j] = cfg->sigma_max * eps[j];
    fs_transpose(ct, cond, len, cfg->hidden);
    FRT_TRY(fs_consistency(m, wn, x, len, cfg->sigma_max, ct, spk, r));
    for (int64_t j = 0; j < len; j++) out[j] = init[j] + cfg->alpha * r[j];
    m->arena.used = mark;
    return FRT_OK;
}
