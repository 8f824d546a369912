/* FlashSpeech model: config, weights, buffers, and the synthesis pipeline.
 * The checkpoint format is in tools/reference/flashspeech/README.md. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "fs_internal.h"
#include "fs_lcm.h"
#include "threadpool.h"

/* ---- config ----------------------------------------------------------------- */

static frt_status get_int(const frt_config *c, const char *key, int64_t def, int64_t lo, int *out)
{
    int64_t v;
    FRT_TRY(frt_config_int(c, key, def, lo, 1 << 24, &v));
    *out = (int)v;
    return FRT_OK;
}

static frt_status get_pos(const frt_config *c, const char *path, const char *key, double def,
                          float *out)
{
    double v;
    FRT_TRY(frt_config_float(c, key, def, &v));
    if (!(v > 0) || !isfinite(v))
        return frt_error_at(FRT_ERR_FORMAT, path, key, -1, "%s must be positive and finite", key);
    *out = (float)v;
    return FRT_OK;
}

static frt_status need(bool ok, const char *path, const char *key, const char *what)
{
    return ok ? FRT_OK : frt_error_at(FRT_ERR_FORMAT, path, key, -1, "%s %s", key, what);
}

static frt_status load_phonemes(fs_config *cfg, const char *path, cJSON *root)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "phonemes");
    frt_status s = FRT_OK;
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
    if (n <= 0) {
        s = frt_error_at(FRT_ERR_FORMAT, path, "phonemes", -1,
                         "phonemes must be a non-empty array of strings");
        goto done;
    }
    cfg->phonemes = calloc((size_t)n, sizeof(char *));
    if (!cfg->phonemes) {
        s = frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory");
        goto done;
    }
    cfg->n_phonemes = n;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsString(e)) {
            s = frt_error_at(FRT_ERR_FORMAT, path, "phonemes", -1, "phonemes[%d] is not a string",
                             i);
            goto done;
        }
        cfg->phonemes[i] = strdup(e->valuestring);
        if (!cfg->phonemes[i]) {
            s = frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory");
            goto done;
        }
    }
done:
    return s;
}

static frt_status parse_config(fs_config *cfg, const frt_config *c, const char *path)
{
    const char *type;
    FRT_TRY(frt_config_string(c, "model_type", "flashspeech", &type));
    FRT_TRY(need(strcmp(type, "flashspeech") == 0, path, "model_type", "is not \"flashspeech\""));
    FRT_TRY(frt_config_string(c, "codec_type", "neural", &type));
    FRT_TRY(need(strcmp(type, "neural") == 0 || strcmp(type, "vocoder") == 0, path, "codec_type",
                 "is not \"neural\" or \"vocoder\""));
    cfg->vocoder = strcmp(type, "vocoder") == 0;
    FRT_TRY(frt_config_bool(c, "prompt_match", false, &cfg->prompt_match));
    FRT_TRY(need(!cfg->prompt_match || cfg->vocoder, path, "prompt_match",
                 "needs codec_type \"vocoder\""));
    FRT_TRY(get_int(c, "hidden_size", 512, 2, &cfg->hidden));
    FRT_TRY(get_int(c, "num_heads", 8, 1, &cfg->heads));
    FRT_TRY(get_int(c, "encoder_layers", 6, 0, &cfg->enc_layers));
    FRT_TRY(get_int(c, "prompt_encoder_layers", 6, 0, &cfg->prompt_layers));
    FRT_TRY(get_int(c, "ffn_filter", 2048, 1, &cfg->ffn_filter));
    FRT_TRY(get_int(c, "ffn_kernel", 9, 1, &cfg->ffn_kernel));
    FRT_TRY(get_pos(c, path, "layer_norm_eps", 1e-5, &cfg->ln_eps));
    FRT_TRY(get_int(c, "n_speaker_queries", 32, 1, &cfg->n_queries));
    FRT_TRY(get_int(c, "prosody_heads", 8, 1, &cfg->prosody_heads));
    FRT_TRY(get_int(c, "prosody_attn_period", 3, 1, &cfg->prosody_period));
    FRT_TRY(get_int(c, "duration_layers", 30, 1, &cfg->dur_layers));
    FRT_TRY(get_int(c, "duration_filters", 512, 1, &cfg->dur_filters));
    FRT_TRY(get_int(c, "duration_kernel", 3, 1, &cfg->dur_kernel));
    FRT_TRY(get_int(c, "pitch_layers", 30, 1, &cfg->pitch_layers));
    FRT_TRY(get_int(c, "pitch_filters", 512, 1, &cfg->pitch_filters));
    FRT_TRY(get_int(c, "pitch_kernel", 5, 1, &cfg->pitch_kernel));
    FRT_TRY(get_int(c, "refiner_layers", 30, 1, &cfg->refiner_layers));
    FRT_TRY(get_int(c, "refiner_channels", 512, 2, &cfg->refiner_channels));
    double alpha;
    FRT_TRY(frt_config_float(c, "alpha", 0.2, &alpha));
    FRT_TRY(need(isfinite(alpha), path, "alpha", "must be finite"));
    cfg->alpha = (float)alpha;
    FRT_TRY(get_int(c, "pitch_bins", 512, 2, &cfg->pitch_bins));
    FRT_TRY(get_pos(c, path, "pitch_min_hz", 50, &cfg->pitch_min_hz));
    FRT_TRY(get_pos(c, path, "pitch_max_hz", 1100, &cfg->pitch_max_hz));
    FRT_TRY(need(cfg->pitch_max_hz > cfg->pitch_min_hz, path, "pitch_max_hz",
                 "must exceed pitch_min_hz"));
    FRT_TRY(get_int(c, "wavenet_layers", 40, 1, &cfg->wn_layers));
    FRT_TRY(get_int(c, "wavenet_channels", 512, 2, &cfg->wn_channels));
    FRT_TRY(get_int(c, "wavenet_kernel", 3, 1, &cfg->wn_kernel));
    FRT_TRY(get_int(c, "wavenet_dilation_cycle", 2, 1, &cfg->wn_dilation_cycle));
    FRT_TRY(need(cfg->wn_dilation_cycle <= 16, path, "wavenet_dilation_cycle", "must be <= 16"));
    FRT_TRY(get_int(c, "film_period", 3, 1, &cfg->film_period));
    FRT_TRY(get_int(c, "film_heads", 8, 1, &cfg->film_heads));
    FRT_TRY(get_pos(c, path, "time_embed_scale", 1000, &cfg->time_embed_scale));
    FRT_TRY(get_int(c, "latent_dim", 256, 1, &cfg->latent_dim));
    FRT_TRY(get_pos(c, path, "latent_norm", 3, &cfg->latent_norm));
    FRT_TRY(get_int(c, "sample_rate", 16000, 1, &cfg->sample_rate));
    FRT_TRY(get_int(c, "codec_encoder_channels", 32, 1, &cfg->codec_enc_channels));
    FRT_TRY(get_int(c, "codec_decoder_channels", 512, 1, &cfg->codec_dec_channels));
    FRT_TRY(get_int(c, "codec_kernel", 7, 1, &cfg->codec_kernel));
    FRT_TRY(get_pos(c, path, "sigma_data", 0.5, &cfg->sigma_data));
    FRT_TRY(get_pos(c, path, "sigma_min", 0.002, &cfg->sigma_min));
    FRT_TRY(get_pos(c, path, "sigma_max", 80, &cfg->sigma_max));
    FRT_TRY(get_pos(c, path, "sigma_inter", 2.0, &cfg->sigma_inter));
    FRT_TRY(need(cfg->sigma_max > cfg->sigma_min && cfg->sigma_inter > cfg->sigma_min, path,
                 "sigma_max", "and sigma_inter must exceed sigma_min"));

    int64_t v[FS_MAX_STRIDES];
    int n;
    if (frt_config_has(c, "codec_strides")) {
        FRT_TRY(frt_config_int_array(c, "codec_strides", v, FS_MAX_STRIDES, &n));
    } else {
        const int64_t def[4] = {8, 5, 4, 2};
        memcpy(v, def, sizeof(def));
        n = 4;
    }
    FRT_TRY(need(n > 0, path, "codec_strides", "must not be empty"));
    cfg->n_strides = n, cfg->hop = 1;
    for (int i = 0; i < n; i++) {
        FRT_TRY(need(v[i] >= 2 && v[i] <= 64, path, "codec_strides", "must lie in [2, 64]"));
        cfg->strides[i] = (int)v[i];
        cfg->hop *= (int)v[i];
    }
    FRT_TRY(need(cfg->hop <= 1 << 16, path, "codec_strides", "give a hop above 65536"));
    if (frt_config_has(c, "codec_dilations")) {
        FRT_TRY(frt_config_int_array(c, "codec_dilations", v, FS_MAX_DILATIONS, &n));
    } else {
        const int64_t def[3] = {1, 3, 9};
        memcpy(v, def, sizeof(def));
        n = 3;
    }
    FRT_TRY(get_int(c, "codec_quantizers", 0, 0, &cfg->n_quantizers));
    FRT_TRY(need(cfg->n_quantizers <= 64, path, "codec_quantizers", "must be <= 64"));
    FRT_TRY(get_int(c, "codec_codebook_size", 1024, 1, &cfg->codebook_size));
    cfg->n_dilations = n;
    for (int i = 0; i < n; i++) {
        FRT_TRY(need(v[i] >= 1 && v[i] <= 1024, path, "codec_dilations", "must lie in [1, 1024]"));
        cfg->dilations[i] = (int)v[i];
    }

    struct {
        int v;
        const char *key;
    } odd[] = {{cfg->ffn_kernel, "ffn_kernel"},
               {cfg->dur_kernel, "duration_kernel"},
               {cfg->pitch_kernel, "pitch_kernel"},
               {cfg->wn_kernel, "wavenet_kernel"},
               {cfg->codec_kernel, "codec_kernel"}};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        FRT_TRY(need(odd[i].v % 2 == 1, path, odd[i].key, "must be odd (same padding)"));
    FRT_TRY(need(cfg->hidden % 2 == 0 && cfg->hidden % cfg->heads == 0, path, "hidden_size",
                 "must be even and divisible by num_heads"));
    FRT_TRY(need(cfg->dur_filters % cfg->prosody_heads == 0 &&
                     cfg->pitch_filters % cfg->prosody_heads == 0,
                 path, "prosody_heads", "must divide the predictor filters"));
    FRT_TRY(need(cfg->wn_channels % 2 == 0 && cfg->refiner_channels % 2 == 0 &&
                     cfg->wn_channels % cfg->film_heads == 0 &&
                     cfg->refiner_channels % cfg->film_heads == 0,
                 path, "film_heads", "must divide the (even) WaveNet channels"));
    /* the CPU attention kernel takes head dims that are multiples of 16 */
    int hdims[4] = {cfg->hidden / cfg->heads, cfg->dur_filters / cfg->prosody_heads,
                    cfg->pitch_filters / cfg->prosody_heads, cfg->wn_channels / cfg->film_heads};
    for (int i = 0; i < 4; i++)
        if (hdims[i] % 16 != 0 || hdims[i] > 256)
            return frt_error_at(FRT_ERR_UNSUPPORTED, path, NULL, -1,
                                "attention head dim %d: must be a multiple of 16, at most 256",
                                hdims[i]);
    if ((cfg->refiner_channels / cfg->film_heads) % 16 != 0)
        return frt_error_at(FRT_ERR_UNSUPPORTED, path, "refiner_channels", -1,
                            "refiner head dim %d: must be a multiple of 16",
                            cfg->refiner_channels / cfg->film_heads);
    FRT_TRY(need(cfg->codec_dec_channels % (1 << cfg->n_strides) == 0, path,
                 "codec_decoder_channels", "must be divisible by 2^len(codec_strides)"));
    return FRT_OK;
}

/* ---- weights ---------------------------------------------------------------- */

typedef struct loader {
    frt_fs_model *m;
    char name[512];
} loader;

/* n floats of the block that holds converted and re-laid-out weights. */
static float *take_weights(frt_fs_model *m, size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    if (bytes > m->wcap - m->wused) {
        frt_error(FRT_ERR_INTERNAL, "flashspeech: converted-weight block too small");
        return NULL;
    }
    float *p = (float *)(m->wbuf + m->wused);
    m->wused += bytes;
    return p;
}

/* Bytes of f32 copies open will make: every F16/BF16 tensor, and the
 * re-laid-out transposed-conv weights. One block for all of them, so the
 * copy is one huge-page allocation rather than hundreds of small ones. */
static size_t converted_bytes(const frt_fs_model *m)
{
    size_t total = 0;
    for (int64_t i = 0; i < frt_st_count(m->st); i++) {
        frt_tensor t;
        if (frt_st_get(m->st, frt_st_name(m->st, i), &t) != FRT_OK) continue;
        if (t.dtype == FRT_F16 || t.dtype == FRT_BF16)
            total += ((size_t)frt_tensor_numel(&t) * sizeof(float) + 63) & ~(size_t)63;
    }
    frt_clear_error();
    const fs_config *c = &m->cfg;
    /* the folded FiLM linears (fold_film_out) of the refiners and the LCM */
    size_t rc = (size_t)c->refiner_channels, wc = (size_t)c->wn_channels;
    size_t fp = (size_t)c->film_period;
    total += 2 * ((size_t)c->refiner_layers / fp) *
             (((4 * rc * rc * sizeof(float) + 63) & ~(size_t)63) +
              ((4 * rc * sizeof(float) + 63) & ~(size_t)63));
    total += ((size_t)c->wn_layers / fp) * (((4 * wc * wc * sizeof(float) + 63) & ~(size_t)63) +
                                            ((4 * wc * sizeof(float) + 63) & ~(size_t)63));
    if (c->vocoder) return total;
    total +=
        ((size_t)c->n_quantizers * (size_t)c->codebook_size * sizeof(float) + 63) & ~(size_t)63;
    size_t ch = (size_t)c->codec_dec_channels;
    for (int b = 0; b < c->n_strides; b++, ch /= 2)
        total += (ch * (ch / 2) * 2 * (size_t)c->strides[b] * sizeof(float) + 63) & ~(size_t)63;
    return total;
}

/* A tensor of the given shape as f32: a view when it is f32, else a copy. */
static frt_status get(loader *ld, int ndim, const int64_t *shape, frt_tensor *out)
{
    FRT_TRY(frt_st_get_shaped(ld->m->st, ld->name, ndim, shape, out));
    if (out->dtype == FRT_F32) return FRT_OK;
    if (out->dtype != FRT_F16 && out->dtype != FRT_BF16)
        return frt_error_at(FRT_ERR_FORMAT, NULL, ld->name, -1, "%s is %s, not a float dtype",
                            ld->name, frt_dtype_name(out->dtype));
    size_t n = (size_t)frt_tensor_numel(out);
    float *dst = take_weights(ld->m, n);
    if (!dst) return FRT_ERR_INTERNAL;
    frt_to_f32_row(out->dtype, out->data, dst, n);
    *out = frt_tensor_view(dst, FRT_F32, out->ndim, out->shape);
    return FRT_OK;
}

static frt_status get_vec(loader *ld, const char *p, const char *leaf, int64_t n, frt_tensor *out)
{
    snprintf(ld->name, sizeof(ld->name), "%s.%s", p, leaf);
    return get(ld, 1, &n, out);
}

static frt_status get_lin(loader *ld, const char *p, int64_t out, int64_t in, fs_lin *l)
{
    int64_t s[2] = {out, in};
    snprintf(ld->name, sizeof(ld->name), "%s.weight", p);
    FRT_TRY(get(ld, 2, s, &l->w));
    return get_vec(ld, p, "bias", out, &l->b);
}

static frt_status get_conv(loader *ld, const char *p, int cout, int cin, int k, fs_conv *c)
{
    int64_t s[3] = {cout, cin, k};
    snprintf(ld->name, sizeof(ld->name), "%s.weight", p);
    FRT_TRY(get(ld, 3, s, &c->w));
    c->cout = cout, c->cin = cin, c->k = k;
    return get_vec(ld, p, "bias", cout, &c->b);
}

static frt_status get_attn(loader *ld, const char *p, int cq, int ckv, int c, fs_attn *a)
{
    char q[200];
    snprintf(q, sizeof(q), "%s.q", p);
    FRT_TRY(get_lin(ld, q, c, cq, &a->q));
    snprintf(q, sizeof(q), "%s.k", p);
    FRT_TRY(get_lin(ld, q, c, ckv, &a->k));
    snprintf(q, sizeof(q), "%s.v", p);
    FRT_TRY(get_lin(ld, q, c, ckv, &a->v));
    snprintf(q, sizeof(q), "%s.o", p);
    return get_lin(ld, q, c, c, &a->o);
}

static void *zalloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

static frt_status load_encoder(loader *ld, const char *p, int layers, bool cond, fs_enc_layer **out)
{
    const fs_config *cfg = &ld->m->cfg;
    int hd = cfg->hidden;
    fs_enc_layer *ls = zalloc((size_t)layers, sizeof(*ls));
    if (!ls) return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory");
    *out = ls;
    char q[200];
    for (int i = 0; i < layers; i++) {
        fs_enc_layer *l = &ls[i];
        snprintf(q, sizeof(q), "%s.layers.%d.attn", p, i);
        FRT_TRY(get_attn(ld, q, hd, hd, hd, &l->attn));
        snprintf(q, sizeof(q), "%s.layers.%d.ffn.conv1", p, i);
        FRT_TRY(get_conv(ld, q, cfg->ffn_filter, hd, cfg->ffn_kernel, &l->ffn1));
        snprintf(q, sizeof(q), "%s.layers.%d.ffn.conv2", p, i);
        FRT_TRY(get_conv(ld, q, hd, cfg->ffn_filter, 1, &l->ffn2));
        if (cond) {
            snprintf(q, sizeof(q), "%s.layers.%d.norm1.scale", p, i);
            FRT_TRY(get_lin(ld, q, hd, hd, &l->n1_scale));
            snprintf(q, sizeof(q), "%s.layers.%d.norm1.shift", p, i);
            FRT_TRY(get_lin(ld, q, hd, hd, &l->n1_shift));
            snprintf(q, sizeof(q), "%s.layers.%d.norm2.scale", p, i);
            FRT_TRY(get_lin(ld, q, hd, hd, &l->n2_scale));
            snprintf(q, sizeof(q), "%s.layers.%d.norm2.shift", p, i);
            FRT_TRY(get_lin(ld, q, hd, hd, &l->n2_shift));
        } else {
            snprintf(q, sizeof(q), "%s.layers.%d.norm1", p, i);
            FRT_TRY(get_vec(ld, q, "weight", hd, &l->n1_w));
            FRT_TRY(get_vec(ld, q, "bias", hd, &l->n1_b));
            snprintf(q, sizeof(q), "%s.layers.%d.norm2", p, i);
            FRT_TRY(get_vec(ld, q, "weight", hd, &l->n2_w));
            FRT_TRY(get_vec(ld, q, "bias", hd, &l->n2_b));
        }
    }
    return FRT_OK;
}

static frt_status load_prosody(loader *ld, const char *p, int layers, int filters, int kernel,
                               fs_prosody *pr)
{
    const fs_config *cfg = &ld->m->cfg;
    pr->layers = layers, pr->filters = filters, pr->kernel = kernel;
    pr->l = zalloc((size_t)layers, sizeof(*pr->l));
    if (!pr->l) return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory");
    char q[200];
    for (int i = 0; i < layers; i++) {
        fs_pros_layer *l = &pr->l[i];
        snprintf(q, sizeof(q), "%s.layers.%d.conv", p, i);
        FRT_TRY(get_conv(ld, q, filters, i == 0 ? cfg->hidden : filters, kernel, &l->conv));
        snprintf(q, sizeof(q), "%s.layers.%d.norm", p, i);
        FRT_TRY(get_vec(ld, q, "weight", filters, &l->norm_w));
        FRT_TRY(get_vec(ld, q, "bias", filters, &l->norm_b));
        l->has_attn = i % cfg->prosody_period == cfg->prosody_period - 1;
        if (l->has_attn) {
            snprintf(q, sizeof(q), "%s.layers.%d.attn", p, i);
            FRT_TRY(get_attn(ld, q, filters, cfg->hidden, filters, &l->attn));
        }
    }
    snprintf(q, sizeof(q), "%s.out", p);
    return get_lin(ld, q, 1, filters, &pr->out);
}

/* FiLM's linear after its attention's output projection as one linear:
 * film(o(a)) = (W_f W_o) a + (W_f b_o + b_f), 4 ch x ch in the converted
 * block; film_attn.o is cleared, which tells fs_lcm.c to feed the attention
 * straight into film_lin (a quarter fewer multiply-adds per FiLM). */
static frt_status fold_film_out(frt_fs_model *m, int64_t ch, fs_wn_layer *l)
{
    float *w = take_weights(m, (size_t)(4 * ch * ch)), *b = take_weights(m, (size_t)(4 * ch));
    float *ot = malloc((size_t)(ch * ch) * sizeof(float));
    if (!w || !b || !ot) {
        free(ot);
        return w && b ? frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory") : FRT_ERR_INTERNAL;
    }
    const float *wo = l->film_attn.o.w.data;
    fs_transpose(ot, wo, ch, ch);
    frt_tensor tw = fs_t2(w, 4 * ch, ch), tot = fs_t2(ot, ch, ch);
    frt_tensor tb = fs_t2(b, 1, 4 * ch), tbo = fs_t2(l->film_attn.o.b.data, 1, ch);
    /* W_fo = W_f (W_o^T)^T; b_fo = b_o W_f^T + b_f */
    frt_status s = frt_linear(m->be, &tw, &l->film_lin.w, &tot, NULL);
    if (s == FRT_OK) s = frt_linear(m->be, &tb, &tbo, &l->film_lin.w, &l->film_lin.b);
    free(ot);
    if (s != FRT_OK) return s;
    int64_t n = 4 * ch;
    l->film_lin.w = fs_t2(w, 4 * ch, ch);
    l->film_lin.b = frt_tensor_view(b, FRT_F32, 1, &n);
    l->film_attn.o = (fs_lin){0};
    return FRT_OK;
}

static frt_status load_wavenet(loader *ld, const char *p, int cin, int ch, int cout, int layers,
                               fs_wavenet *wn)
{
    const fs_config *cfg = &ld->m->cfg;
    wn->layers = layers, wn->cin = cin, wn->ch = ch, wn->cout = cout;
    wn->l = zalloc((size_t)layers, sizeof(*wn->l));
    if (!wn->l) return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory");
    char q[200];
    snprintf(q, sizeof(q), "%s.in_proj", p);
    FRT_TRY(get_conv(ld, q, ch, cin, 1, &wn->in_proj));
    snprintf(q, sizeof(q), "%s.time_mlp.0", p);
    FRT_TRY(get_lin(ld, q, 4 * ch, ch, &wn->t0));
    snprintf(q, sizeof(q), "%s.time_mlp.2", p);
    FRT_TRY(get_lin(ld, q, ch, 4 * ch, &wn->t2));
    for (int i = 0; i < layers; i++) {
        fs_wn_layer *l = &wn->l[i];
        snprintf(q, sizeof(q), "%s.layers.%d.time", p, i);
        FRT_TRY(get_lin(ld, q, ch, ch, &l->time));
        snprintf(q, sizeof(q), "%s.layers.%d.conv", p, i);
        FRT_TRY(get_conv(ld, q, 2 * ch, ch, cfg->wn_kernel, &l->conv));
        snprintf(q, sizeof(q), "%s.layers.%d.cond", p, i);
        FRT_TRY(get_conv(ld, q, 2 * ch, cfg->hidden, 1, &l->cond));
        snprintf(q, sizeof(q), "%s.layers.%d.out", p, i);
        FRT_TRY(get_conv(ld, q, 2 * ch, ch, 1, &l->out));
        l->film = i % cfg->film_period == cfg->film_period - 1;
        if (l->film) {
            snprintf(q, sizeof(q), "%s.layers.%d.film_attn", p, i);
            FRT_TRY(get_attn(ld, q, ch, cfg->hidden, ch, &l->film_attn));
            snprintf(q, sizeof(q), "%s.layers.%d.film", p, i);
            FRT_TRY(get_lin(ld, q, 4 * ch, ch, &l->film_lin));
            FRT_TRY(fold_film_out(ld->m, ch, l));
        }
    }
    snprintf(q, sizeof(q), "%s.skip_proj", p);
    FRT_TRY(get_conv(ld, q, ch, ch, 1, &wn->skip_proj));
    snprintf(q, sizeof(q), "%s.out_proj", p);
    return get_conv(ld, q, cout, ch, 1, &wn->out_proj);
}

static frt_status load_res_units(loader *ld, const char *p, int ch, fs_codec_block *bl)
{
    const fs_config *cfg = &ld->m->cfg;
    char q[200];
    for (int r = 0; r < cfg->n_dilations; r++) {
        snprintf(q, sizeof(q), "%s.res.%d.conv1", p, r);
        FRT_TRY(get_conv(ld, q, ch, ch, cfg->codec_kernel, &bl->res[r].conv1));
        snprintf(q, sizeof(q), "%s.res.%d.conv2", p, r);
        FRT_TRY(get_conv(ld, q, ch, ch, 1, &bl->res[r].conv2));
    }
    return FRT_OK;
}

/* ConvTranspose1d weight [cin, cout, k] -> [cout * k, cin] for the
 * GEMM in fs_codec.c. */
static frt_status load_conv_transpose(loader *ld, const char *p, int cin, int cout, int k,
                                      fs_conv *c)
{
    int64_t s[3] = {cin, cout, k};
    frt_tensor w;
    snprintf(ld->name, sizeof(ld->name), "%s.up.weight", p);
    FRT_TRY(get(ld, 3, s, &w));
    int64_t rs[2] = {(int64_t)cout * k, cin};
    float *dst = take_weights(ld->m, (size_t)cout * k * cin);
    if (!dst) return FRT_ERR_INTERNAL;
    c->w = frt_tensor_view(dst, FRT_F32, 2, rs);
    const float *src = w.data;
    for (int ci = 0; ci < cin; ci++)
        for (int co = 0; co < cout; co++)
            for (int kk = 0; kk < k; kk++)
                dst[((size_t)co * k + kk) * cin + ci] = src[((size_t)ci * cout + co) * k + kk];
    c->cin = cin, c->cout = cout, c->k = k;
    char q[256];
    snprintf(q, sizeof(q), "%s.up", p);
    return get_vec(ld, q, "bias", cout, &c->b);
}

static frt_status load_codec(loader *ld)
{
    const fs_config *cfg = &ld->m->cfg;
    fs_codec *e = &ld->m->w.enc, *d = &ld->m->w.dec;
    int k = cfg->codec_kernel, ch = cfg->codec_enc_channels;
    char q[200];
    FRT_TRY(get_conv(ld, "codec.encoder.in_conv", ch, 1, k, &e->in_conv));
    for (int b = 0; b < cfg->n_strides; b++) {
        int s = cfg->strides[cfg->n_strides - 1 - b];
        snprintf(q, sizeof(q), "codec.encoder.blocks.%d", b);
        FRT_TRY(load_res_units(ld, q, ch, &e->blocks[b]));
        snprintf(q, sizeof(q), "codec.encoder.blocks.%d.down", b);
        FRT_TRY(get_conv(ld, q, 2 * ch, ch, 2 * s, &e->blocks[b].resample));
        e->blocks[b].stride = s;
        ch *= 2;
    }
    FRT_TRY(get_conv(ld, "codec.encoder.out_conv", cfg->latent_dim, ch, 3, &e->out_conv));
    if (cfg->n_quantizers > 0) {
        int64_t kc = cfg->codebook_size, shape[2] = {kc, cfg->latent_dim};
        e->codebooks = zalloc((size_t)cfg->n_quantizers, sizeof(*e->codebooks));
        e->cb_norms = take_weights(ld->m, (size_t)(cfg->n_quantizers * kc));
        if (!e->codebooks || !e->cb_norms)
            return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory");
        for (int i = 0; i < cfg->n_quantizers; i++) {
            snprintf(ld->name, sizeof(ld->name), "codec.quantizer.%d.codebook", i);
            FRT_TRY(get(ld, 2, shape, &e->codebooks[i]));
            const float *cb = e->codebooks[i].data;
            for (int64_t j = 0; j < kc; j++) {
                double s2 = 0;
                for (int c = 0; c < cfg->latent_dim; c++)
                    s2 += (double)cb[j * cfg->latent_dim + c] * cb[j * cfg->latent_dim + c];
                e->cb_norms[i * kc + j] = (float)s2;
            }
        }
    }
    ch = cfg->codec_dec_channels;
    FRT_TRY(get_conv(ld, "codec.decoder.in_conv", ch, cfg->latent_dim, k, &d->in_conv));
    for (int b = 0; b < cfg->n_strides; b++) {
        int s = cfg->strides[b];
        snprintf(q, sizeof(q), "codec.decoder.blocks.%d", b);
        FRT_TRY(load_conv_transpose(ld, q, ch, ch / 2, 2 * s, &d->blocks[b].resample));
        d->blocks[b].stride = s;
        ch /= 2;
        FRT_TRY(load_res_units(ld, q, ch, &d->blocks[b]));
    }
    return get_conv(ld, "codec.decoder.out_conv", 1, ch, k, &d->out_conv);
}

static frt_status load_weights(frt_fs_model *m)
{
    const fs_config *cfg = &m->cfg;
    fs_weights *w = &m->w;
    loader ld = {.m = m};
    int64_t s[2] = {cfg->n_phonemes, cfg->hidden};
    snprintf(ld.name, sizeof(ld.name), "phoneme_encoder.embed.weight");
    FRT_TRY(get(&ld, 2, s, &w->embed));
    FRT_TRY(load_encoder(&ld, "phoneme_encoder", cfg->enc_layers, true, &w->ph_layers));
    FRT_TRY(get_lin(&ld, "prompt_encoder.in_proj", cfg->hidden, cfg->latent_dim, &w->pr_in));
    FRT_TRY(load_encoder(&ld, "prompt_encoder", cfg->prompt_layers, false, &w->pr_layers));
    s[0] = cfg->n_queries;
    snprintf(ld.name, sizeof(ld.name), "prompt_encoder.queries");
    FRT_TRY(get(&ld, 2, s, &w->queries));
    FRT_TRY(get_attn(&ld, "prompt_encoder.query_attn", cfg->hidden, cfg->hidden, cfg->hidden,
                     &w->query_attn));
    FRT_TRY(load_prosody(&ld, "duration_predictor", cfg->dur_layers, cfg->dur_filters,
                         cfg->dur_kernel, &w->dur));
    FRT_TRY(load_prosody(&ld, "pitch_predictor", cfg->pitch_layers, cfg->pitch_filters,
                         cfg->pitch_kernel, &w->pitch));
    s[0] = cfg->pitch_bins;
    snprintf(ld.name, sizeof(ld.name), "pitch_embed.weight");
    FRT_TRY(get(&ld, 2, s, &w->pitch_embed));
    FRT_TRY(load_wavenet(&ld, "duration_refiner", 1, cfg->refiner_channels, 1, cfg->refiner_layers,
                         &w->dur_ref));
    FRT_TRY(load_wavenet(&ld, "pitch_refiner", 1, cfg->refiner_channels, 1, cfg->refiner_layers,
                         &w->pitch_ref));
    FRT_TRY(load_wavenet(&ld, "lcm", cfg->latent_dim, cfg->wn_channels, cfg->latent_dim,
                         cfg->wn_layers, &w->lcm));
    return cfg->vocoder ? FRT_OK : load_codec(&ld);
}

/* ---- buffers ---------------------------------------------------------------- */

static size_t wide(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Arena floats per module call (each counts the fs_take calls of the module
 * at its peak, before the 64-byte rounding that FS_ARENA_SLACK covers).
 * tests/test_speech_model.c checks each against a measured peak. */
size_t fs_scratch_encoder(const fs_config *c, int64_t len)
{
    /* layer: attention out, cond-LN vectors, q k v o, FFN x^T and filter;
     * around it x, positions, g; after it the query attention */
    size_t l = (size_t)len, h = (size_t)c->hidden, q = (size_t)c->n_queries;
    return l * (7 * h + (size_t)c->ffn_filter) + 8 * h + 2 * q * h;
}

size_t fs_scratch_prosody(const fs_config *c, int64_t len)
{
    /* cur, x^T, conv out, normed (4 L pf), attention q, o (2 L pf), k, v */
    size_t pf = wide(wide((size_t)c->dur_filters, (size_t)c->pitch_filters), (size_t)c->hidden);
    return (size_t)len * 6 * pf + 2 * (size_t)c->n_queries * pf;
}

size_t fs_scratch_wavenet(const fs_config *c, int ch, int cin, int64_t len, bool refine)
{
    /* peak inside FiLM's attention: h, skip, u, z, o (7 C L), FiLM's u^T,
     * attention out, gamma|beta (6 C L), q and o (2 C L), k and v (2 Q C),
     * the time vectors (8 C); the scaled input (cin L); a refiner's x, r
     * and cond^T (2 L + H L) */
    size_t l = (size_t)len, cc = (size_t)ch;
    size_t s = l * (15 * cc + (size_t)cin) + 8 * cc + 2 * (size_t)c->n_queries * cc;
    return refine ? s + l * (2 + (size_t)c->hidden) : s;
}

/* Floats of arena for the largest module call at the limits, plus what the
 * pipeline keeps across modules. */
static size_t arena_floats(const frt_fs_model *m)
{
    const fs_config *c = &m->cfg;
    size_t n = (size_t)m->max_phonemes, t = (size_t)m->max_frames, p = (size_t)m->max_prompt_frames;
    size_t h = (size_t)c->hidden, q = (size_t)c->n_queries, d = (size_t)c->latent_dim;
    int64_t nt = (int64_t)wide(n, t);
    size_t enc = fs_scratch_encoder(c, (int64_t)wide(n, p));
    size_t pros = fs_scratch_prosody(c, nt);
    size_t wn_ref = fs_scratch_wavenet(c, c->refiner_channels, 1, nt, true);
    size_t wn_lcm = fs_scratch_wavenet(c, c->wn_channels, c->latent_dim, (int64_t)t, false);
    size_t codec = c->vocoder
                       ? fs_vocoder_scratch(c, &m->voc, (int64_t)(p * (size_t)c->hop), (int64_t)t)
                       : fs_codec_scratch(c, (int64_t)(p * (size_t)c->hop), (int64_t)t);
    size_t scratch = wide(wide(enc, pros), wide(wide(wn_ref, wn_lcm), codec));
    /* kept by synthesize: the zero prompt, h, log-durations, durations,
     * noise, expanded/condition, pitch, condition^T, latents, noise, the
     * LCM's cache */
    size_t keep = q * h + n * (h + 4) + t * (2 * h + 3) + 3 * d * t +
                  fs_wn_cache_floats(c, (int64_t)t);
    /* kept by encode_prompt: padded audio and latents */
    size_t keep_prompt = p * (size_t)c->hop + p * d;
    return wide(keep, keep_prompt) + scratch + FS_ARENA_SLACK;
}

/* ---- open / close ----------------------------------------------------------- */

static void free_model(frt_fs_model *m)
{
    fs_weights *w = &m->w;
    free(w->ph_layers);
    free(w->pr_layers);
    free(w->dur.l);
    free(w->pitch.l);
    free(w->dur_ref.l);
    free(w->pitch_ref.l);
    free(w->lcm.l);
    free(w->enc.codebooks);
    fs_vocoder_free(&m->voc);
    frt_free(m->wbuf);
    for (int i = 0; i < m->cfg.n_phonemes; i++) free(m->cfg.phonemes[i]);
    free(m->cfg.phonemes);
    frt_free(m->arena.base);
    if (!m->st_borrowed) frt_st_close(m->st);
    free(m);
}

/* Config, phoneme list and weights of m from a parsed config (c, root; path
 * names them in messages) and the checkpoint m->st, opened from dir when
 * m->st is NULL (after the config is checked, so a bad config is reported
 * first). */
static frt_status open_model(frt_fs_model *m, const frt_config *c, cJSON *root, const char *path,
                             const char *dir, const frt_fs_limits *limits)
{
    frt_status s;
    if ((s = parse_config(&m->cfg, c, path)) != FRT_OK) return s;
    if ((s = load_phonemes(&m->cfg, path, root)) != FRT_OK) return s;
    if (m->cfg.vocoder && (s = fs_vocoder_open(&m->voc, &m->cfg, c, root, path)) != FRT_OK)
        return s;
    int vocab;
    if ((s = get_int(c, "phoneme_vocab_size", m->cfg.n_phonemes, 1, &vocab)) != FRT_OK) return s;
    if (vocab != m->cfg.n_phonemes)
        return frt_error_at(FRT_ERR_FORMAT, path, "phoneme_vocab_size", -1,
                            "phoneme_vocab_size %d but %d phonemes listed", vocab,
                            m->cfg.n_phonemes);
    if (!m->st && (s = frt_st_open(dir, &m->st)) != FRT_OK) return s;
    m->be = frt_backend_cpu();
    m->wcap = converted_bytes(m);
    if (!(m->wbuf = frt_alloc(m->wcap))) return FRT_ERR_NOMEM;
    if ((s = load_weights(m)) != FRT_OK) return s;

    frt_fs_limits lim = limits ? *limits : (frt_fs_limits){0};
    m->max_phonemes = lim.max_phonemes > 0 ? lim.max_phonemes : 1024;
    m->max_frames = lim.max_frames > 0 ? lim.max_frames : 1500;
    m->max_prompt_samples =
        lim.max_prompt_samples > 0 ? lim.max_prompt_samples : (size_t)10 * m->cfg.sample_rate;
    if (m->max_phonemes > 1 << 20 || m->max_frames > 1 << 20 ||
        m->max_prompt_samples / (size_t)m->cfg.hop >= 1 << 20)
        return frt_error(FRT_ERR_LIMIT, "flashspeech: limits above 2^20 phonemes/frames");
    m->max_prompt_frames = (int)((m->max_prompt_samples + m->cfg.hop - 1) / m->cfg.hop);
    size_t floats = arena_floats(m);
    m->arena.cap = floats * sizeof(float);
    m->arena.base = frt_alloc(m->arena.cap);
    if (!m->arena.base) return FRT_ERR_NOMEM;
    /* Start the pool's threads here rather than in the first synthesis. */
    frt_pool_default();
    pthread_mutex_init(&m->lock, NULL);
    return FRT_OK;
}

frt_status frt_fs_model_open(const char *dir, const frt_fs_limits *limits, frt_fs_model **out)
{
    if (!dir || !out) return frt_error(FRT_ERR_INVALID_ARG, "flashspeech: dir or out is NULL");
    frt_fs_model *m = calloc(1, sizeof(*m));
    if (!m) return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory");
    char path[4096];
    frt_config *c = NULL;
    cJSON *root = NULL;
    frt_status s;
    if ((size_t)snprintf(path, sizeof(path), "%s/config.json", dir) >= sizeof(path)) {
        s = frt_error(FRT_ERR_INVALID_ARG, "flashspeech: path too long");
        goto fail;
    }
    if ((s = frt_config_load(path, &c)) != FRT_OK) goto fail;
    if ((s = frt_json_load(path, 16u << 20, &root)) != FRT_OK) goto fail;
    if ((s = open_model(m, c, root, path, dir, limits)) != FRT_OK) goto fail;
    cJSON_Delete(root);
    frt_config_free(c);
    *out = m;
    return FRT_OK;
fail:
    cJSON_Delete(root);
    frt_config_free(c);
    free_model(m);
    return s;
}

frt_status frt_fs_model_open_st(const char *config_json, frt_st *st, const frt_fs_limits *limits,
                                frt_fs_model **out)
{
    if (!config_json || !st || !out)
        return frt_error(FRT_ERR_INVALID_ARG, "flashspeech: config, checkpoint or out is NULL");
    frt_fs_model *m = calloc(1, sizeof(*m));
    if (!m) return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory");
    m->st = st;
    m->st_borrowed = true;
    frt_config *c = NULL;
    cJSON *root = NULL;
    frt_status s;
    if ((s = frt_config_parse(config_json, strlen(config_json), "config", &c)) != FRT_OK) goto fail;
    if (!(root = cJSON_Parse(config_json))) {
        s = frt_error(FRT_ERR_FORMAT, "flashspeech: config is not valid JSON");
        goto fail;
    }
    if ((s = open_model(m, c, root, "config", NULL, limits)) != FRT_OK) goto fail;
    cJSON_Delete(root);
    frt_config_free(c);
    *out = m;
    return FRT_OK;
fail:
    cJSON_Delete(root);
    frt_config_free(c);
    free_model(m);
    return s;
}

void frt_fs_model_close(frt_fs_model *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->lock);
    free_model(m);
}

const char *const *frt_fs_model_phonemes(const frt_fs_model *m, int *n)
{
    if (n) *n = m->cfg.n_phonemes;
    return (const char *const *)m->cfg.phonemes;
}

int frt_fs_model_sample_rate(const frt_fs_model *m)
{
    return m->cfg.sample_rate;
}
int frt_fs_model_hop(const frt_fs_model *m)
{
    return m->cfg.hop;
}

/* ---- noise ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void frt_fs_noise_fill(uint64_t *state, float *dst, size_t n)
{
    const double two_pi = 6.283185307179586476925286766559;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(splitmix64(state) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = ((double)(splitmix64(state) >> 11) + 0.5) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        dst[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n) dst[i + 1] = (float)(r * sin(two_pi * u2));
    }
}

/* ---- prompts ----------------------------------------------------------------- */

static frt_status new_prompt(const frt_fs_model *m, frt_fs_prompt **out)
{
    frt_fs_prompt *p = calloc(1, sizeof(*p));
    if (!p) return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory");
    p->n_queries = m->cfg.n_queries, p->hidden = m->cfg.hidden;
    p->spk = frt_alloc((size_t)p->n_queries * p->hidden * sizeof(float));
    if (m->cfg.prompt_match) {
        p->stats.n_bands = m->voc.bands;
        p->stats.bands = frt_alloc((size_t)m->voc.bands * sizeof(double));
    }
    if (!p->spk || (m->cfg.prompt_match && !p->stats.bands)) {
        frt_free(p->spk);
        frt_free(p->stats.bands);
        free(p);
        return frt_error(FRT_ERR_NOMEM, "flashspeech: out of memory (prompt)");
    }
    *out = p;
    return FRT_OK;
}

void frt_fs_prompt_free(frt_fs_prompt *p)
{
    if (!p) return;
    frt_free(p->spk);
    frt_free(p->stats.bands);
    free(p);
}

static frt_status prompt_locked(frt_fs_model *m, const float *lat, size_t t, frt_fs_prompt **out)
{
    frt_fs_prompt *p = NULL;
    FRT_TRY(new_prompt(m, &p));
    frt_status s = fs_prompt_encoder(m, lat, (int64_t)t, p->spk);
    if (s == FRT_OK && p->stats.bands) s = fs_vocoder_prompt_stats(m, lat, (int64_t)t, &p->stats);
    if (s != FRT_OK) {
        frt_fs_prompt_free(p);
        return s;
    }
    *out = p;
    return FRT_OK;
}

frt_status frt_fs_prompt_from_latents(frt_fs_model *m, const float *lat, size_t t,
                                      frt_fs_prompt **out)
{
    if (!m || !lat || !out || t == 0)
        return frt_error(FRT_ERR_INVALID_ARG, "flashspeech: prompt latents are empty or NULL");
    if (t > (size_t)m->max_prompt_frames)
        return frt_error(FRT_ERR_LIMIT,
                         "flashspeech: %zu prompt frames, max_prompt_samples allows %d", t,
                         m->max_prompt_frames);
    pthread_mutex_lock(&m->lock);
    m->arena.used = 0;
    frt_status s = prompt_locked(m, lat, t, out);
    pthread_mutex_unlock(&m->lock);
    return s;
}

static frt_status encode_locked(frt_fs_model *m, const float *pcm, size_t n, frt_fs_prompt **out)
{
    size_t hop = (size_t)m->cfg.hop, frames = (n + hop - 1) / hop;
    float *buf = fs_take(&m->arena, frames * hop);
    float *lat = fs_take(&m->arena, frames * (size_t)m->cfg.latent_dim);
    if (!buf || !lat) return FRT_ERR_INTERNAL;
    memcpy(buf, pcm, n * sizeof(float));
    memset(buf + n, 0, (frames * hop - n) * sizeof(float));
    if (m->cfg.vocoder)
        FRT_TRY(fs_vocoder_encode(m, buf, (int64_t)(frames * hop), lat));
    else
        FRT_TRY(fs_codec_encode(m, buf, (int64_t)(frames * hop), lat));
    return prompt_locked(m, lat, frames, out);
}

frt_status frt_fs_encode_prompt(frt_fs_model *m, const float *pcm, size_t n, frt_fs_prompt **out)
{
    if (!m || !pcm || !out || n == 0)
        return frt_error(FRT_ERR_INVALID_ARG, "flashspeech: reference audio is empty or NULL");
    if (n > m->max_prompt_samples)
        return frt_error(FRT_ERR_LIMIT,
                         "flashspeech: %zu reference samples, max_prompt_samples is %zu", n,
                         m->max_prompt_samples);
    pthread_mutex_lock(&m->lock);
    m->arena.used = 0;
    frt_status s = encode_locked(m, pcm, n, out);
    pthread_mutex_unlock(&m->lock);
    return s;
}

/* ---- synthesis ---------------------------------------------------------------- */

void frt_fs_synth_opts_default(frt_fs_synth_opts *o)
{
    *o = (frt_fs_synth_opts){.steps = 1, .speed = 1.0f};
}

/* Hands out the noise streams in order: from the caller's array or the
 * generator. */
typedef struct noise_src {
    const float *given;
    size_t len, pos;
    uint64_t state;
} noise_src;

static frt_status draw(noise_src *ns, float *dst, size_t n)
{
    if (!ns->given) {
        frt_fs_noise_fill(&ns->state, dst, n);
        return FRT_OK;
    }
    if (n > ns->len - ns->pos)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "flashspeech: explicit noise has %zu values, needs more", ns->len);
    memcpy(dst, ns->given + ns->pos, n * sizeof(float));
    ns->pos += n;
    return FRT_OK;
}

static frt_status synth_locked(frt_fs_model *m, const int32_t *ids, int64_t n, const float *spk,
                               const frt_fs_prompt *prompt, const frt_fs_synth_opts *o, float **pcm,
                               size_t *n_samples)
{
    const fs_config *cfg = &m->cfg;
    fs_arena *ar = &m->arena;
    int64_t hd = cfg->hidden, dd = cfg->latent_dim;
    noise_src ns = {.given = o->noise, .len = o->noise_len, .state = o->seed};

    float *h = fs_take(ar, (size_t)(n * hd)), *ld0 = fs_take(ar, (size_t)n);
    float *ldur = fs_take(ar, (size_t)n), *eps = fs_take(ar, (size_t)n);
    int32_t *dur = (int32_t *)fs_take(ar, (size_t)n);
    if (!h || !ld0 || !ldur || !eps || !dur) return FRT_ERR_INTERNAL;
    FRT_TRY(fs_phoneme_encoder(m, ids, n, spk, h));
    FRT_TRY(fs_prosody_predict(m, &m->w.dur, h, n, spk, ld0));
    FRT_TRY(draw(&ns, eps, (size_t)n));
    FRT_TRY(fs_refine(m, &m->w.dur_ref, ld0, eps, n, h, spk, ldur));
    int64_t t = fs_durations(ldur, n, o->speed, dur);
    if (t > m->max_frames)
        return frt_error(FRT_ERR_LIMIT, "flashspeech: %lld frames, max_frames is %d", (long long)t,
                         m->max_frames);
    size_t samples = (size_t)t * (size_t)cfg->hop;
    float *out = frt_alloc(samples * sizeof(float));
    if (!out) return FRT_ERR_NOMEM;
    if (t == 0) {
        *pcm = out, *n_samples = 0;
        return FRT_OK;
    }

    /* frame level: e [t, H] -> condition c [t, H] (in place) */
    float *e = fs_take(ar, (size_t)(t * hd)), *lf0i = fs_take(ar, (size_t)t);
    float *lf0 = fs_take(ar, (size_t)t), *peps = fs_take(ar, (size_t)t);
    float *ct = fs_take(ar, (size_t)(hd * t)), *z = fs_take(ar, (size_t)(dd * t));
    float *zn = fs_take(ar, (size_t)(dd * t)), *zeps = fs_take(ar, (size_t)(dd * t));
    frt_status s = FRT_ERR_INTERNAL;
    if (!e || !lf0i || !lf0 || !peps || !ct || !z || !zn || !zeps) goto fail;
    fs_length_regulate(h, n, (int)hd, dur, e);
    if ((s = fs_prosody_predict(m, &m->w.pitch, e, t, spk, lf0i)) != FRT_OK) goto fail;
    if ((s = draw(&ns, peps, (size_t)t)) != FRT_OK) goto fail;
    if ((s = fs_refine(m, &m->w.pitch_ref, lf0i, peps, t, e, spk, lf0)) != FRT_OK) goto fail;
    fs_pitch_embed(m, e, lf0, t, e);
    fs_transpose(ct, e, t, hd);

    /* consistency sampling: z = f(sigma_max eps, sigma_max) [, f(z + si eps', si)];
     * two steps share the projections of the condition and the speaker */
    fs_wn_cache wc = {0};
    if (o->steps == 2 && (s = fs_wn_cache_init(m, &m->w.lcm, t, &wc)) != FRT_OK) goto fail;
    fs_wn_cache *cache = o->steps == 2 ? &wc : NULL;
    if ((s = draw(&ns, zeps, (size_t)(dd * t))) == FRT_OK) {
        for (int64_t j = 0; j < dd * t; j++) zn[j] = cfg->sigma_max * zeps[j];
        s = fs_consistency_cached(m, &m->w.lcm, zn, t, cfg->sigma_max, ct, spk, z, cache);
    }
    if (s == FRT_OK && o->steps == 2) {
        float si = o->sigma_inter > 0 ? o->sigma_inter : cfg->sigma_inter;
        if ((s = draw(&ns, zeps, (size_t)(dd * t))) == FRT_OK) {
            for (int64_t j = 0; j < dd * t; j++) zn[j] = z[j] + si * zeps[j];
            s = fs_consistency_cached(m, &m->w.lcm, zn, t, si, ct, spk, z, cache);
        }
    }
    if (s != FRT_OK) goto fail;
    for (int64_t j = 0; j < dd * t; j++) z[j] *= cfg->latent_norm;
    if (cfg->prompt_match && prompt && prompt->stats.bands &&
        prompt->stats.n_bands == m->voc.bands &&
        (s = fs_vocoder_match(m, z, lf0, t, &prompt->stats)) != FRT_OK)
        goto fail;
    s = cfg->vocoder ? fs_vocoder_decode(m, z, lf0, t, out) : fs_codec_decode(m, z, t, out);
    if (s != FRT_OK) goto fail;
    *pcm = out, *n_samples = samples;
    return FRT_OK;
fail:
    frt_free(out);
    return s;
}

frt_status frt_fs_synthesize(frt_fs_model *m, const int32_t *ids, size_t n,
                             const frt_fs_prompt *prompt, const frt_fs_synth_opts *opts,
                             float **pcm, size_t *n_samples)
{
    if (!m || !ids || !pcm || !n_samples || n == 0)
        return frt_error(FRT_ERR_INVALID_ARG, "flashspeech: no phonemes or a NULL argument");
    frt_fs_synth_opts o;
    if (opts)
        o = *opts;
    else
        frt_fs_synth_opts_default(&o);
    if (o.steps != 1 && o.steps != 2)
        return frt_error(FRT_ERR_INVALID_ARG, "flashspeech: steps must be 1 or 2, not %d", o.steps);
    if (!(o.speed > 0) || !isfinite(o.speed))
        return frt_error(FRT_ERR_INVALID_ARG, "flashspeech: speed must be positive");
    if (!(o.sigma_inter >= 0) || !isfinite(o.sigma_inter) ||
        (o.sigma_inter > 0 && o.sigma_inter <= m->cfg.sigma_min))
        return frt_error(FRT_ERR_INVALID_ARG, "flashspeech: sigma_inter must exceed sigma_min");
    if (n > (size_t)m->max_phonemes)
        return frt_error(FRT_ERR_LIMIT, "flashspeech: %zu phonemes, max_phonemes is %d", n,
                         m->max_phonemes);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.n_phonemes)
            return frt_error(FRT_ERR_INVALID_ARG,
                             "flashspeech: phoneme id %d at %zu outside [0, %d)", ids[i], i,
                             m->cfg.n_phonemes);
    if (prompt && (prompt->hidden != m->cfg.hidden || prompt->n_queries != m->cfg.n_queries))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "flashspeech: prompt is [%d, %d], model wants [%d, %d]", prompt->n_queries,
                         prompt->hidden, m->cfg.n_queries, m->cfg.hidden);
    pthread_mutex_lock(&m->lock);
    m->arena.used = 0;
    m->cancel = o.cancel, m->cancel_user = o.cancel_user;
    frt_status s = FRT_ERR_INTERNAL;
    const float *spk = prompt ? prompt->spk : NULL;
    float *zero = NULL;
    if (!spk) {
        zero = fs_take(&m->arena, (size_t)m->cfg.n_queries * m->cfg.hidden);
        if (!zero) goto done;
        memset(zero, 0, (size_t)m->cfg.n_queries * m->cfg.hidden * sizeof(float));
        spk = zero;
    }
    s = synth_locked(m, ids, (int64_t)n, spk, prompt, &o, pcm, n_samples);
done:
    m->cancel = NULL, m->cancel_user = NULL;
    pthread_mutex_unlock(&m->lock);
    return s;
}
