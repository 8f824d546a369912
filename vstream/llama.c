/* Llama decoder: load weights, then one function per block, then the
 * forward pass. Shapes: n rows in a step, D = hidden, H heads and KV heads
 * of d = head_dim, I = intermediate, V = vocab. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "error.h"
#include "llama.h"
#include "weights.h"

#define DEFAULT_MAX_BATCH 256

typedef struct llama_layer {
    frt_tensor attn_norm, ffn_norm;  /* f32 [D] */
    frt_tensor wq, wk, wv, wo;       /* views [H d, D], [KV d, D] x2, [D, H d] */
    frt_tensor bq, bk, bv, bo;       /* f32, with attention_bias only */
    frt_tensor w_gate, w_up, w_down; /* views [I, D], [I, D], [D, I] */
    void *k_cache, *v_cache;         /* [max_ctx, KV, d] */
} llama_layer;

struct frt_llama {
    frt_llama_info info;
    frt_backend *be;
    frt_st *own_st; /* opened by frt_llama_open_dir */
    bool has_bias;
    frt_dtype kv_dtype;
    bool unified_max;
    float attn_phi;
    int64_t max_batch, pos;
    frt_tensor embed;   /* view [V, D] */
    frt_tensor norm;    /* f32 [D] */
    frt_tensor lm_head; /* view [V, D] (the embedding when tied) */
    llama_layer *layers;
    void *kv; /* every layer's K and V cache, one allocation */
    /* working memory for max_batch rows */
    float *x, *h;     /* [B, D] */
    float *q, *o;     /* [B, H d] */
    float *k, *v;     /* [B, KV d], staging for an f16 cache */
    float *gate, *up; /* [B, I] */
};

static frt_tensor mat(float *p, int64_t rows, int64_t cols)
{
    return frt_tensor_view(p, FRT_F32, 2, (int64_t[]){rows, cols});
}

/* ---- config -------------------------------------------------------------- */

static frt_status token_id(const frt_config *cfg, const char *kp, const char *name, int64_t def,
                           int64_t *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s%s", kp, name);
    int64_t vals[8];
    int n = 0;
    /* Some configs list several end tokens; the first is the main one. */
    if (frt_config_int_array(cfg, key, vals, 8, &n) == FRT_OK && n > 0) {
        *out = vals[0];
        return FRT_OK;
    }
    frt_clear_error();
    return frt_config_int(cfg, key, def, -1, INT32_MAX, out);
}

static frt_status read_rope_scaling(const frt_config *cfg, const char *kp, frt_llama_info *li)
{
    char key[128], tkey[128];
    li->rope_scale = 1.0f;
    snprintf(key, sizeof key, "%srope_scaling", kp);
    if (!frt_config_has(cfg, key)) return FRT_OK;
    const char *type;
    snprintf(tkey, sizeof tkey, "%srope_scaling.type", kp);
    if (!frt_config_has(cfg, tkey)) snprintf(tkey, sizeof tkey, "%srope_scaling.rope_type", kp);
    FRT_TRY(frt_config_string(cfg, tkey, "default", &type));
    if (strcmp(type, "default") == 0) return FRT_OK;
    if (strcmp(type, "linear") != 0)
        return frt_error_at(FRT_ERR_UNSUPPORTED, NULL, key, -1,
                            "RoPE scaling \"%s\" is not implemented (linear only)", type);
    double f;
    snprintf(tkey, sizeof tkey, "%srope_scaling.factor", kp);
    FRT_TRY(frt_config_float(cfg, tkey, 1.0, &f));
    if (!(f > 0) || !isfinite(f))
        return frt_error_at(FRT_ERR_FORMAT, NULL, tkey, -1, "RoPE factor must be positive");
    li->rope_scale = (float)f;
    return FRT_OK;
}

static frt_status read_config(const frt_config *cfg, frt_llama_info *li, bool *bias)
{
    const char *kp = frt_config_has(cfg, "text_config") ? "text_config." : "";
    const int64_t big = 1 << 24;
    FRT_TRY(frt_cfg_int_def(cfg, kp, "vocab_size", 32000, 1, big, &li->vocab));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "hidden_size", 4096, 1, big, &li->hidden));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "intermediate_size", 11008, 1, big, &li->intermediate));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "num_hidden_layers", 32, 1, 4096, &li->layers));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "num_attention_heads", 32, 1, 4096, &li->heads));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "num_key_value_heads", li->heads, 1, 4096, &li->kv_heads));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "max_position_embeddings", 2048, 1, big, &li->max_pos));
    char key[128];
    snprintf(key, sizeof key, "%shead_dim", kp);
    if (frt_config_has(cfg, key)) {
        FRT_TRY(frt_config_int(cfg, key, 0, 1, 4096, &li->head_dim));
    } else {
        if (li->hidden % li->heads != 0)
            return frt_error_at(FRT_ERR_FORMAT, NULL, "num_attention_heads", -1,
                                "num_attention_heads %lld does not divide hidden_size %lld",
                                (long long)li->heads, (long long)li->hidden);
        li->head_dim = li->hidden / li->heads;
    }
    if (li->head_dim % 2 != 0)
        return frt_error_at(FRT_ERR_FORMAT, NULL, "head_dim", -1,
                            "head_dim %lld must be even for RoPE", (long long)li->head_dim);
    if (li->heads % li->kv_heads != 0)
        return frt_error_at(FRT_ERR_FORMAT, NULL, "num_key_value_heads", -1,
                            "num_key_value_heads %lld does not divide num_attention_heads %lld",
                            (long long)li->kv_heads, (long long)li->heads);
    double eps, theta;
    FRT_TRY(frt_cfg_float_def(cfg, kp, "rms_norm_eps", 1e-6, &eps));
    FRT_TRY(frt_cfg_float_def(cfg, kp, "rope_theta", 10000.0, &theta));
    if (!(eps > 0) || !isfinite(eps))
        return frt_error_at(FRT_ERR_FORMAT, NULL, "rms_norm_eps", -1,
                            "rms_norm_eps must be positive");
    if (!(theta > 1) || !isfinite(theta))
        return frt_error_at(FRT_ERR_FORMAT, NULL, "rope_theta", -1, "rope_theta must exceed 1");
    li->eps = (float)eps;
    li->rope_theta = (float)theta;
    FRT_TRY(read_rope_scaling(cfg, kp, li));
    const char *act;
    snprintf(key, sizeof key, "%shidden_act", kp);
    FRT_TRY(frt_config_string(cfg, key, "silu", &act));
    if (strcmp(act, "silu") != 0)
        return frt_error_at(FRT_ERR_UNSUPPORTED, NULL, key, -1,
                            "Llama hidden_act \"%s\" is not implemented (silu)", act);
    snprintf(key, sizeof key, "%stie_word_embeddings", kp);
    FRT_TRY(frt_config_bool(cfg, key, false, &li->tied));
    snprintf(key, sizeof key, "%sattention_bias", kp);
    FRT_TRY(frt_config_bool(cfg, key, false, bias));
    FRT_TRY(token_id(cfg, kp, "bos_token_id", 1, &li->bos_id));
    return token_id(cfg, kp, "eos_token_id", 2, &li->eos_id);
}

/* ---- weights ------------------------------------------------------------- */

static frt_status load_layer(frt_llama *m, const frt_st *st, const char *prefix, int i,
                             llama_layer *l)
{
    const frt_llama_info *li = &m->info;
    const int64_t D = li->hidden, I = li->intermediate;
    const int64_t QD = li->heads * li->head_dim, KD = li->kv_heads * li->head_dim;
    char p[512];
    snprintf(p, sizeof p, "%slayers.%d.", prefix, i);
    FRT_TRY(frt_w_f32(st, &l->attn_norm, 1, &D, "%sinput_layernorm.weight", p));
    FRT_TRY(frt_w_view(st, &l->wq, 2, (int64_t[]){QD, D}, "%sself_attn.q_proj.weight", p));
    FRT_TRY(frt_w_view(st, &l->wk, 2, (int64_t[]){KD, D}, "%sself_attn.k_proj.weight", p));
    FRT_TRY(frt_w_view(st, &l->wv, 2, (int64_t[]){KD, D}, "%sself_attn.v_proj.weight", p));
    FRT_TRY(frt_w_view(st, &l->wo, 2, (int64_t[]){D, QD}, "%sself_attn.o_proj.weight", p));
    if (m->has_bias) {
        FRT_TRY(frt_w_f32(st, &l->bq, 1, &QD, "%sself_attn.q_proj.bias", p));
        FRT_TRY(frt_w_f32(st, &l->bk, 1, &KD, "%sself_attn.k_proj.bias", p));
        FRT_TRY(frt_w_f32(st, &l->bv, 1, &KD, "%sself_attn.v_proj.bias", p));
        FRT_TRY(frt_w_f32(st, &l->bo, 1, &D, "%sself_attn.o_proj.bias", p));
    }
    FRT_TRY(frt_w_f32(st, &l->ffn_norm, 1, &D, "%spost_attention_layernorm.weight", p));
    FRT_TRY(frt_w_view(st, &l->w_gate, 2, (int64_t[]){I, D}, "%smlp.gate_proj.weight", p));
    FRT_TRY(frt_w_view(st, &l->w_up, 2, (int64_t[]){I, D}, "%smlp.up_proj.weight", p));
    return frt_w_view(st, &l->w_down, 2, (int64_t[]){D, I}, "%smlp.down_proj.weight", p);
}

static frt_status detect_prefix(const frt_st *st, const char **out)
{
    static const char *const prefixes[] = {"model.", "language_model.model."};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (frt_w_has(st, "%sembed_tokens.weight", prefixes[i])) {
            *out = prefixes[i];
            return FRT_OK;
        }
    return frt_error_at(
        FRT_ERR_NOT_FOUND, NULL, "model.embed_tokens.weight", -1,
        "no Llama decoder in the checkpoint (looked for model.embed_tokens.weight)");
}

static frt_status load_weights(frt_llama *m, const frt_st *st, const char *prefix)
{
    const frt_llama_info *li = &m->info;
    const int64_t V = li->vocab, D = li->hidden;
    FRT_TRY(frt_w_view(st, &m->embed, 2, (int64_t[]){V, D}, "%sembed_tokens.weight", prefix));
    FRT_TRY(frt_w_f32(st, &m->norm, 1, &D, "%snorm.weight", prefix));
    /* lm_head sits beside the decoder: "model." -> "lm_head.weight". */
    char head[512];
    size_t plen = strlen(prefix), strip = strlen("model.");
    if (plen >= strip && strcmp(prefix + plen - strip, "model.") == 0) plen -= strip;
    snprintf(head, sizeof head, "%.*slm_head.weight", (int)plen, prefix);
    if (frt_w_has(st, "%s", head)) {
        FRT_TRY(frt_w_view(st, &m->lm_head, 2, (int64_t[]){V, D}, "%s", head));
    } else if (li->tied) {
        m->lm_head = m->embed;
    } else {
        return frt_error_at(FRT_ERR_NOT_FOUND, NULL, head, -1,
                            "%s is missing and tie_word_embeddings is false", head);
    }
    m->layers = frt_calloc((size_t)li->layers, sizeof *m->layers);
    if (!m->layers) return FRT_ERR_NOMEM;
    for (int i = 0; i < li->layers; i++) FRT_TRY(load_layer(m, st, prefix, i, &m->layers[i]));
    return FRT_OK;
}

static frt_status alloc_state(frt_llama *m)
{
    const frt_llama_info *li = &m->info;
    const size_t B = (size_t)m->max_batch, D = (size_t)li->hidden, I = (size_t)li->intermediate;
    const size_t QD = (size_t)(li->heads * li->head_dim),
                 KD = (size_t)(li->kv_heads * li->head_dim);
    size_t per, all;
    if (!frt_mul_size((size_t)li->max_ctx, KD * frt_dtype_size(m->kv_dtype), &per) ||
        !frt_mul_size(per, 2 * (size_t)li->layers, &all))
        return frt_error(FRT_ERR_LIMIT, "KV cache size overflows");
    if (!(m->kv = frt_alloc(all))) return FRT_ERR_NOMEM;
    for (int64_t i = 0; i < li->layers; i++) {
        m->layers[i].k_cache = (char *)m->kv + (size_t)(2 * i) * per;
        m->layers[i].v_cache = (char *)m->kv + (size_t)(2 * i + 1) * per;
    }
    struct {
        float **p;
        size_t cols;
    } bufs[] = {{&m->x, D},  {&m->h, D},  {&m->q, QD},   {&m->o, QD},
                {&m->k, KD}, {&m->v, KD}, {&m->gate, I}, {&m->up, I}};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        if (!(*bufs[i].p = frt_alloc(B * bufs[i].cols * sizeof(float)))) return FRT_ERR_NOMEM;
    return FRT_OK;
}

frt_status frt_llama_open(const frt_st *st, const frt_config *cfg, const frt_llama_options *opt,
                          frt_backend *be, frt_llama **out)
{
    if (!st || !cfg || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_llama_open: NULL argument");
    if (be && be != frt_backend_cpu())
        return frt_error(FRT_ERR_UNSUPPORTED,
                         "frt_llama_open: only the CPU backend is supported (weights "
                         "and glue steps live in host memory)");
    frt_llama_options o = opt ? *opt : (frt_llama_options){0};
    if (o.max_ctx < 0 || o.max_batch < 0 || (o.kv_dtype != FRT_F32 && o.kv_dtype != FRT_F16) ||
        !isfinite(o.attn_phi))
        return frt_error(FRT_ERR_INVALID_ARG, "frt_llama_open: max_ctx and max_batch must be >= 0, "
                                              "kv_dtype F32 or F16, attn_phi finite");
    frt_llama *m = frt_calloc(1, sizeof *m);
    if (!m) return FRT_ERR_NOMEM;
    m->be = be ? be : frt_backend_cpu();
    m->kv_dtype = o.kv_dtype;
    m->unified_max = o.unified_max;
    m->attn_phi = o.attn_phi;
    m->max_batch = o.max_batch ? o.max_batch : DEFAULT_MAX_BATCH;
    frt_status s = read_config(cfg, &m->info, &m->has_bias);
    if (s == FRT_OK) {
        frt_llama_info *li = &m->info;
        li->max_ctx = o.max_ctx && o.max_ctx < li->max_pos ? o.max_ctx : li->max_pos;
        const char *prefix = o.prefix;
        if (!prefix) s = detect_prefix(st, &prefix);
        if (s == FRT_OK) s = load_weights(m, st, prefix);
    }
    if (s == FRT_OK) s = alloc_state(m);
    if (s != FRT_OK) {
        frt_llama_close(m);
        return s;
    }
    *out = m;
    return FRT_OK;
}

frt_status frt_llama_open_dir(const char *dir, const frt_llama_options *opt, frt_llama **out)
{
    if (!dir || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_llama_open_dir: NULL argument");
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/config.json", dir);
    frt_config *cfg;
    FRT_TRY(frt_config_load(path, &cfg));
    frt_st *st;
    frt_status s = frt_st_open(dir, &st);
    if (s == FRT_OK) {
        s = frt_llama_open(st, cfg, opt, NULL, out);
        if (s == FRT_OK)
            (*out)->own_st = st;
        else
            frt_st_close(st);
    }
    frt_config_free(cfg);
    return s;
}

void frt_llama_close(frt_llama *m)
{
    if (!m) return;
    for (int64_t i = 0; m->layers && i < m->info.layers; i++) {
        llama_layer *l = &m->layers[i];
        frt_tensor *owned[] = {&l->attn_norm, &l->ffn_norm, &l->bq, &l->bk, &l->bv, &l->bo};
        for (size_t j = 0; j < sizeof owned / sizeof *owned; j++) frt_tensor_free(owned[j]);
    }
    frt_free(m->layers);
    frt_tensor_free(&m->norm);
    frt_free(m->kv);
    float *bufs[] = {m->x, m->h, m->q, m->o, m->k, m->v, m->gate, m->up};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) frt_free(bufs[i]);
    frt_st_close(m->own_st);
    frt_free(m);
}

const frt_llama_info *frt_llama_get_info(const frt_llama *m)
{
    return m ? &m->info : NULL;
}
int64_t frt_llama_pos(const frt_llama *m)
{
    return m ? m->pos : 0;
}
void frt_llama_reset(frt_llama *m)
{
    if (m) m->pos = 0;
}

frt_status frt_llama_rewind(frt_llama *m, int64_t pos)
{
    if (!m || pos < 0 || pos > m->pos)
        return frt_error(FRT_ERR_INVALID_ARG, "frt_llama_rewind: position %lld outside [0, %lld]",
                         (long long)pos, m ? (long long)m->pos : 0LL);
    m->pos = pos;
    return FRT_OK;
}

/* ---- embeddings ---------------------------------------------------------- */

frt_status frt_llama_embed(const frt_llama *m, const int32_t *ids, int64_t n, float *out)
{
    if (!m || (!ids && n) || (!out && n) || n < 0)
        return frt_error(FRT_ERR_INVALID_ARG, "frt_llama_embed: bad argument");
    const int64_t D = m->info.hidden;
    const size_t row = (size_t)D * frt_dtype_size(m->embed.dtype);
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->info.vocab)
            return frt_error(FRT_ERR_INVALID_ARG,
                             "token id %d at %lld outside the vocabulary (%lld)", ids[i],
                             (long long)i, (long long)m->info.vocab);
    for (int64_t i = 0; i < n; i++)
        frt_to_f32_row(m->embed.dtype, (const char *)m->embed.data + (size_t)ids[i] * row,
                       out + i * D, (size_t)D);
    return FRT_OK;
}

frt_status frt_llama_splice(const frt_llama *m, const int32_t *ids, int64_t n_ids,
                            const float *const *blocks, const int64_t *block_rows, int64_t n_blocks,
                            float *out, int64_t cap, int64_t *n_out)
{
    if (!m || (!ids && n_ids) || n_ids < 0 || n_blocks < 0 ||
        (n_blocks && (!blocks || !block_rows)) || !out || !n_out)
        return frt_error(FRT_ERR_INVALID_ARG, "frt_llama_splice: bad argument");
    const int64_t D = m->info.hidden;
    int64_t rows = 0, used = 0;
    for (int64_t i = 0; i < n_ids; i++) {
        if (ids[i] != FRT_IMAGE_TOKEN_ID) {
            rows++;
            continue;
        }
        if (used == n_blocks)
            return frt_error(FRT_ERR_INVALID_ARG,
                             "more image placeholders than feature blocks (%lld)",
                             (long long)n_blocks);
        if (block_rows[used] < 0 || (block_rows[used] && !blocks[used]))
            return frt_error(FRT_ERR_INVALID_ARG, "feature block %lld is invalid", (long long)used);
        rows += block_rows[used++];
    }
    if (used != n_blocks)
        return frt_error(FRT_ERR_INVALID_ARG, "%lld feature blocks for %lld image placeholders",
                         (long long)n_blocks, (long long)used);
    if (rows > cap)
        return frt_error(FRT_ERR_LIMIT, "spliced sequence of %lld rows exceeds %lld",
                         (long long)rows, (long long)cap);
    int64_t r = 0, b = 0;
    for (int64_t i = 0; i < n_ids;) {
        if (ids[i] == FRT_IMAGE_TOKEN_ID) {
            memcpy(out + r * D, blocks[b], (size_t)(block_rows[b] * D) * sizeof(float));
            r += block_rows[b++];
            i++;
            continue;
        }
        int64_t j = i;
        while (j < n_ids && ids[j] != FRT_IMAGE_TOKEN_ID) j++;
        FRT_TRY(frt_llama_embed(m, ids + i, j - i, out + r * D));
        r += j - i;
        i = j;
    }
    *n_out = r;
    return FRT_OK;
}

/* ---- forward ------------------------------------------------------------- */

/* Where this step's K or V rows [n, KV d] are computed: straight into an f32
 * cache, or into f32 scratch that f16_store then converts into the cache. */
static float *kv_rows(const frt_llama *m, void *cache, float *scratch, int64_t pos)
{
    if (m->kv_dtype != FRT_F32) return scratch;
    return (float *)cache + pos * m->info.kv_heads * m->info.head_dim;
}

static void f16_store(const frt_llama *m, void *cache, const float *src, int64_t pos, int64_t n)
{
    if (m->kv_dtype != FRT_F16) return;
    const int64_t kd = m->info.kv_heads * m->info.head_dim;
    frt_f32_to_f16_row(src, (uint16_t *)cache + pos * kd, (size_t)(n * kd));
}

/* x [n, D] += o_proj(attention(rope(q), rope(k), v)) over the cache */
static frt_status attention_block(frt_llama *m, llama_layer *l, int64_t pos, int64_t n)
{
    const frt_llama_info *li = &m->info;
    const int64_t D = li->hidden, H = li->heads, KV = li->kv_heads, d = li->head_dim;
    frt_tensor x = mat(m->x, n, D), h = mat(m->h, n, D);
    float *krows = kv_rows(m, l->k_cache, m->k, pos), *vrows = kv_rows(m, l->v_cache, m->v, pos);
    frt_tensor q = mat(m->q, n, H * d), k = mat(krows, n, KV * d), v = mat(vrows, n, KV * d);
    FRT_TRY(frt_rmsnorm(m->be, &h, &x, &l->attn_norm, li->eps));
    FRT_TRY(frt_linear(m->be, &q, &h, &l->wq, m->has_bias ? &l->bq : NULL));
    FRT_TRY(frt_linear(m->be, &k, &h, &l->wk, m->has_bias ? &l->bk : NULL));
    FRT_TRY(frt_linear(m->be, &v, &h, &l->wv, m->has_bias ? &l->bv : NULL));
    /* [n, H d] -> [n, H, d]; positions pos .. pos + n - 1 */
    frt_tensor qh = frt_tensor_view(m->q, FRT_F32, 3, (int64_t[]){n, H, d});
    frt_tensor kh = frt_tensor_view(krows, FRT_F32, 3, (int64_t[]){n, KV, d});
    FRT_TRY(frt_rope(m->be, &qh, pos, li->rope_theta, li->rope_scale));
    FRT_TRY(frt_rope(m->be, &kh, pos, li->rope_theta, li->rope_scale));
    f16_store(m, l->k_cache, krows, pos, n);
    f16_store(m, l->v_cache, vrows, pos, n);
    /* queries at pos + i see cache rows 0 .. pos + i */
    const int64_t nk = pos + n;
    frt_tensor kc = frt_tensor_view(l->k_cache, m->kv_dtype, 3, (int64_t[]){nk, KV, d});
    frt_tensor vc = frt_tensor_view(l->v_cache, m->kv_dtype, 3, (int64_t[]){nk, KV, d});
    frt_tensor oh = frt_tensor_view(m->o, FRT_F32, 3, (int64_t[]){n, H, d});
    frt_attn_params ap = {.scale = 1.0f / sqrtf((float)d),
                          .causal = true,
                          .q_pos0 = pos,
                          .use_unified_max = m->unified_max,
                          .phi = m->attn_phi};
    FRT_TRY(frt_attention(m->be, &oh, &qh, &kc, &vc, &ap));
    frt_tensor o = mat(m->o, n, H * d);
    FRT_TRY(frt_linear(m->be, &h, &o, &l->wo, m->has_bias ? &l->bo : NULL));
    return frt_add(m->be, &x, &x, &h);
}

/* x [n, D] += down(silu(gate(h)) * up(h)), h = rmsnorm(x) */
static frt_status mlp_block(frt_llama *m, llama_layer *l, int64_t n)
{
    const frt_llama_info *li = &m->info;
    const int64_t D = li->hidden, I = li->intermediate;
    frt_tensor x = mat(m->x, n, D), h = mat(m->h, n, D);
    frt_tensor g = mat(m->gate, n, I), u = mat(m->up, n, I);
    FRT_TRY(frt_rmsnorm(m->be, &h, &x, &l->ffn_norm, li->eps));
    FRT_TRY(frt_linear(m->be, &g, &h, &l->w_gate, NULL)); /* [n, I] */
    FRT_TRY(frt_linear(m->be, &u, &h, &l->w_up, NULL));
    FRT_TRY(frt_act_apply(m->be, &g, &g, FRT_ACT_SILU));
    FRT_TRY(frt_mul(m->be, &g, &g, &u));
    FRT_TRY(frt_linear(m->be, &h, &g, &l->w_down, NULL)); /* [n, D] */
    return frt_add(m->be, &x, &x, &h);
}

/* One step of n <= max_batch rows at pos; the last n_logits rows' logits
 * go to logits [n_logits, V]. */
static frt_status forward_step(frt_llama *m, const int32_t *ids, const float *embeds, int64_t pos,
                               int64_t n, float *logits, int64_t n_logits)
{
    const frt_llama_info *li = &m->info;
    const int64_t D = li->hidden;
    if (ids)
        FRT_TRY(frt_llama_embed(m, ids, n, m->x));
    else
        memcpy(m->x, embeds, (size_t)(n * D) * sizeof(float));
    for (int64_t i = 0; i < li->layers; i++) {
        FRT_TRY(attention_block(m, &m->layers[i], pos, n));
        FRT_TRY(mlp_block(m, &m->layers[i], n));
    }
    if (n_logits == 0) return FRT_OK;
    /* only the rows whose logits are wanted: [n_logits, D] -> [n_logits, V] */
    frt_tensor xs = mat(m->x + (n - n_logits) * D, n_logits, D), hs = mat(m->h, n_logits, D);
    FRT_TRY(frt_rmsnorm(m->be, &hs, &xs, &m->norm, li->eps));
    frt_tensor y = mat(logits, n_logits, li->vocab);
    return frt_linear(m->be, &y, &hs, &m->lm_head, NULL);
}

frt_status frt_llama_prefill(frt_llama *m, const int32_t *ids, const float *embeds, int64_t n,
                             float *logits, int64_t n_logits)
{
    if (!m || (!ids == !embeds) || n <= 0 || (logits && (n_logits < 1 || n_logits > n)))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "frt_llama_prefill: need ids or embeds, n > 0, 1 <= n_logits <= n");
    if (n > m->info.max_ctx - m->pos)
        return frt_error(FRT_ERR_LIMIT,
                         "context limit: %lld tokens in the cache + %lld new exceed max_ctx %lld",
                         (long long)m->pos, (long long)n, (long long)m->info.max_ctx);
    if (ids)
        for (int64_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= m->info.vocab)
                return frt_error(FRT_ERR_INVALID_ARG,
                                 "token id %d at %lld outside the vocabulary (%lld)", ids[i],
                                 (long long)i, (long long)m->info.vocab);
    const int64_t D = m->info.hidden, V = m->info.vocab;
    const int64_t first_logit = logits ? n - n_logits : n;
    for (int64_t r0 = 0; r0 < n; r0 += m->max_batch) {
        int64_t rows = n - r0 < m->max_batch ? n - r0 : m->max_batch;
        int64_t from = first_logit > r0 ? first_logit : r0;
        int64_t nl = from < r0 + rows ? r0 + rows - from : 0;
        FRT_TRY(forward_step(m, ids ? ids + r0 : NULL, embeds ? embeds + r0 * D : NULL, m->pos + r0,
                             rows, nl ? logits + (from - first_logit) * V : NULL, nl));
    }
    m->pos += n;
    return FRT_OK;
}

frt_status frt_llama_decode(frt_llama *m, int32_t id, float *logits)
{
    if (!logits) return frt_error(FRT_ERR_INVALID_ARG, "frt_llama_decode: NULL logits");
    return frt_llama_prefill(m, &id, NULL, 1, logits, 1);
}
