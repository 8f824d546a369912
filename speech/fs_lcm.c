/* FlashSpeech: the non-causal WaveNet, consistency-model preconditioning and
 * the prosody refinement. model.py: wavenet, precond, consistency, refine. */
#include <math.h>
#include <string.h>

#include "error.h"
#include "fs_internal.h"
#include "fs_lcm.h"
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

/* Below this many elements the element-wise steps here run on the calling
 * thread alone (the tiny test models). */
#define WN_PAR_MIN 16384

static void run_split(frt_pool *pool, int64_t n, frt_task_fn fn, void *arg)
{
    if (n < WN_PAR_MIN)
        fn(arg, 0, 1);
    else
        frt_pool_run(pool, fn, arg);
}

/* u [ch, t] = h + tl (one value per channel), channels over the pool. */
typedef struct {
    float *u;
    const float *h, *tl;
    int64_t ch, t;
} bias_job;

static void bias_task(void *arg, int ith, int nth)
{
    const bias_job *b = arg;
    long c0, c1;
    frt_split_range((long)b->ch, ith, nth, &c0, &c1);
    for (int64_t c = c0; c < c1; c++)
        frt_cpu_add(b->u + c * b->t, b->h + c * b->t, b->tl + c, b->t, 1, NULL);
}

/* A layer's residual and skip: h = (h + o_res) / sqrt(2), skip += o_skip, in
 * chunks that stay in cache between the three passes, over the pool. */
typedef struct {
    float *h, *skip;
    const float *ores, *oskip;
    float s;
    int64_t n;
} resid_job;

static void resid_task(void *arg, int ith, int nth)
{
    const resid_job *r = arg;
    enum { CHUNK = 2048 };
    long b0, b1;
    frt_split_range((long)((r->n + CHUNK - 1) / CHUNK), ith, nth, &b0, &b1);
    for (int64_t i = (int64_t)b0 * CHUNK; i < (int64_t)b1 * CHUNK && i < r->n; i += CHUNK) {
        int64_t len = r->n - i < CHUNK ? r->n - i : CHUNK;
        frt_cpu_add(r->h + i, r->h + i, r->ores + i, len, len, NULL);
        frt_cpu_scale(r->h + i, r->h + i, r->s, len, NULL);
        frt_cpu_add(r->skip + i, r->skip + i, r->oskip + i, len, len, NULL);
    }
}

/* z [2C, t] = z * (1 + gamma^T) + beta^T from gb [t, 4C]: blocks of 16
 * channels over the pool (each step reads a line of gb, writes 16 rows). */
typedef struct {
    float *z;
    const float *gb;
    int64_t ch, t;
} film_job;

static void film_task(void *arg, int ith, int nth)
{
    const film_job *f = arg;
    const int64_t c2 = 2 * f->ch, t = f->t;
    long b0, b1;
    frt_split_range((long)((c2 + 15) / 16), ith, nth, &b0, &b1);
    const int64_t c0 = 16 * (int64_t)b0, c1 = 16 * (int64_t)b1 < c2 ? 16 * (int64_t)b1 : c2;
    for (int64_t i = 0; i < t; i++) {
        const float *gamma = f->gb + i * 2 * c2, *beta = gamma + c2;
        for (int64_t c = c0; c < c1; c++) f->z[c * t + i] = f->z[c * t + i] * (1.0f + gamma[c]) + beta[c];
    }
}

/* z [2C, t] = z * (1 + gamma^T) + beta^T, gamma | beta = film(MHA(u^T, spk));
 * kv: the layer's speaker keys and values [2, Q, C], NULL: projected here. */
static frt_status film(frt_fs_model *m, const fs_wn_layer *l, int64_t ch, const float *u, int64_t t,
                       const float *spk, const float *kv, float *z)
{
    fs_arena *ar = &m->arena;
    size_t mark = ar->used;
    float *ut = fs_take(ar, (size_t)(t * ch)), *att = fs_take(ar, (size_t)(t * ch));
    float *gb = fs_take(ar, (size_t)(t * 4 * ch));
    if (!ut || !att || !gb) return FRT_ERR_INTERNAL;
    fs_transpose(ut, u, ch, t);
    int64_t nq = m->cfg.n_queries;
    if (kv)
        FRT_TRY(fs_mha_kv(m->be, ar, att, ut, t, kv, kv + nq * ch, nq, &l->film_attn,
                          m->cfg.film_heads));
    else
        FRT_TRY(fs_mha(m->be, ar, att, ut, t, spk, nq, &l->film_attn, m->cfg.film_heads));
    FRT_TRY(fs_linear(m->be, gb, att, t, &l->film_lin));
    film_job fj = {z, gb, ch, t};
    run_split(frt_pool_default(), 2 * ch * t, film_task, &fj);
    ar->used = mark;
    return FRT_OK;
}

static int64_t film_layers(const fs_wavenet *wn)
{
    int64_t n = 0;
    for (int i = 0; i < wn->layers; i++) n += wn->l[i].film;
    return n;
}

size_t fs_wn_cache_floats(const fs_config *c, int64_t t)
{
    size_t cond = (size_t)c->wn_layers * 2 * (size_t)c->wn_channels * (size_t)t;
    if (cond > FS_WN_CACHE_COND) cond = FS_WN_CACHE_COND;
    return cond + (size_t)c->wn_layers * 2 * (size_t)c->n_queries * (size_t)c->wn_channels;
}

frt_status fs_wn_cache_init(frt_fs_model *m, const fs_wavenet *wn, int64_t t, fs_wn_cache *c)
{
    *c = (fs_wn_cache){0};
    size_t per = 2 * (size_t)wn->ch * (size_t)t;
    size_t layers = t > 0 ? FS_WN_CACHE_COND / per : 0;
    if (layers > (size_t)wn->layers) layers = (size_t)wn->layers;
    size_t kv = (size_t)film_layers(wn) * 2 * (size_t)m->cfg.n_queries * (size_t)wn->ch;
    c->kv = fs_take(&m->arena, kv);
    c->cond = layers ? fs_take(&m->arena, layers * per) : NULL;
    if (!c->kv || (layers && !c->cond)) return FRT_ERR_INTERNAL;
    c->layers = (int)layers;
    c->t = t;
    return FRT_OK;
}

/* The speaker keys and values of FiLM layer l into kv [2, Q, C]. */
static frt_status film_kv(frt_fs_model *m, const fs_wn_layer *l, const float *spk, int64_t ch,
                          float *kv)
{
    int64_t nq = m->cfg.n_queries;
    FRT_TRY(fs_linear(m->be, kv, spk, nq, &l->film_attn.k));
    return fs_linear(m->be, kv + nq * ch, spk, nq, &l->film_attn.v);
}

/* F(x, c_noise, cond, spk): x [cin, t], cond [H, t] -> y [cout, t]. */
static frt_status wavenet(frt_fs_model *m, const fs_wavenet *wn, const float *x, int64_t t,
                          double c_noise, const float *cond, const float *spk, float *y,
                          fs_wn_cache *cache)
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
    const bool fill = cache && !cache->ready, use = cache && cache->ready;
    int64_t nq = m->cfg.n_queries, f = 0;
    for (int i = 0; i < wn->layers; i++) {
        const fs_wn_layer *l = &wn->l[i];
        FRT_TRY(fs_poll_cancel(m));
        FRT_TRY(fs_linear(m->be, tl, temb, 1, &l->time));
        bias_job bj = {u, h, tl, ch, t};
        run_split(pool, n, bias_task, &bj);
        int dil = 1 << (i % m->cfg.wn_dilation_cycle);
        FRT_TRY(fs_conv_same(m->be, z, u, t, &l->conv, dil));
        /* the condition's projection: the same in every pass over a cache */
        const bool in_cache = cache && i < cache->layers;
        float *oc = in_cache ? cache->cond + (size_t)i * 2 * (size_t)n : o;
        if (!(use && in_cache)) FRT_TRY(fs_conv1d(m->be, oc, cond, t, &l->cond, 1, 0, 1));
        frt_cpu_add(z, z, oc, 2 * n, 2 * n, pool);
        if (l->film) {
            float *kv = cache ? cache->kv + f * 2 * nq * ch : NULL;
            if (fill) FRT_TRY(film_kv(m, l, spk, ch, kv));
            FRT_TRY(film(m, l, ch, u, t, spk, kv, z));
            f++;
        }
        /* u is free again: it takes the gate; vectorised exp, split over the
         * pool (libm's tanhf and expf cost about as much as a small conv) */
        frt_cpu_gate(u, z, z + n, n, pool);
        FRT_TRY(fs_conv1d(m->be, o, u, t, &l->out, 1, 0, 1));
        resid_job rj = {h, skip, o, o + n, inv_sqrt2, n};
        run_split(pool, n, resid_task, &rj);
    }
    if (fill) cache->ready = true;
    float s = (float)(1.0 / sqrt((double)wn->layers));
    frt_cpu_scale(skip, skip, s, n, pool);
    FRT_TRY(fs_conv1d(m->be, h, skip, t, &wn->skip_proj, 1, 0, 1));
    FRT_TRY(fs_act(m->be, h, h, (size_t)n, FRT_ACT_RELU));
    FRT_TRY(fs_conv1d(m->be, y, h, t, &wn->out_proj, 1, 0, 1));
    ar->used = mark;
    return FRT_OK;
}

frt_status fs_consistency_cached(frt_fs_model *m, const fs_wavenet *wn, const float *x, int64_t t,
                                 double sigma, const float *cond, const float *spk, float *y,
                                 fs_wn_cache *c)
{
    if (c && (c->t != t || !c->kv))
        return frt_error(FRT_ERR_INTERNAL, "flashspeech: WaveNet cache of %lld frames, not %lld",
                         (long long)c->t, (long long)t);
    double c_skip, c_out, c_in, c_noise;
    fs_precond(&m->cfg, sigma, &c_skip, &c_out, &c_in, &c_noise);
    size_t mark = m->arena.used;
    int64_t n = wn->cin * t;
    float *xin = fs_take(&m->arena, (size_t)n);
    if (!xin) return FRT_ERR_INTERNAL;
    for (int64_t j = 0; j < n; j++) xin[j] = (float)(c_in * x[j]);
    FRT_TRY(wavenet(m, wn, xin, t, c_noise, cond, spk, y, c));
    for (int64_t j = 0; j < wn->cout * t; j++) y[j] = (float)(c_skip * x[j] + c_out * y[j]);
    m->arena.used = mark;
    return FRT_OK;
}

frt_status fs_consistency(frt_fs_model *m, const fs_wavenet *wn, const float *x, int64_t t,
                          double sigma, const float *cond, const float *spk, float *y)
{
    return fs_consistency_cached(m, wn, x, t, sigma, cond, spk, y, NULL);
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
