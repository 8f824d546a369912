/* CLIP vision tower: load weights, then one function per block, then the
 * forward pass. Shapes: T = grid^2 + 1 tokens, D = width, I = intermediate,
 * H heads of d = D / H. */
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "clip.h"
#include "error.h"
#include "weights.h"

static const char *const clip_prefixes[] = {
    "vision_model.",
    "model.vision_tower.vision_tower.vision_model.",
    "vision_tower.vision_model.",
};

typedef struct clip_layer {
    frt_tensor ln1_w, ln1_b, ln2_w, ln2_b;       /* f32 [D] */
    frt_tensor q_w, k_w, v_w, o_w, fc1_w, fc2_w; /* views [out, in] */
    frt_tensor q_b, k_b, v_b, o_b, fc1_b, fc2_b; /* f32 */
} clip_layer;

struct frt_clip {
    frt_clip_info info;
    frt_backend *be;
    frt_st *own_st;          /* opened by frt_clip_open_dir */
    frt_tensor patch_w;      /* view [D, C * p * p] */
    frt_tensor cls, pos;     /* f32 [D], [T, D] */
    frt_tensor pre_w, pre_b; /* f32 [D] */
    clip_layer *layers;      /* select_index of them */
    /* working memory for one image */
    float *patches;               /* [P, C p p] */
    float *x, *h, *q, *k, *v, *o; /* [T, D] */
    float *mlp;                   /* [T, I] */
};

frt_clip_options frt_clip_options_default(void)
{
    return (frt_clip_options){
        .prefix = NULL, .select_layer = FRT_CLIP_SELECT_DEFAULT, .keep_cls = -1};
}

static frt_tensor mat(float *p, int64_t rows, int64_t cols)
{
    return frt_tensor_view(p, FRT_F32, 2, (int64_t[]){rows, cols});
}

static frt_tensor heads3(float *p, int64_t t, int64_t h, int64_t d)
{
    return frt_tensor_view(p, FRT_F32, 3, (int64_t[]){t, h, d});
}

/* ---- config -------------------------------------------------------------- */

static frt_status parse_act(const char *s, frt_act *out)
{
    if (strcmp(s, "quick_gelu") == 0)
        *out = FRT_ACT_QUICK_GELU;
    else if (strcmp(s, "gelu") == 0)
        *out = FRT_ACT_GELU_ERF;
    else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0)
        *out = FRT_ACT_GELU_TANH;
    else
        return frt_error_at(FRT_ERR_UNSUPPORTED, NULL, "hidden_act", -1,
                            "CLIP hidden_act \"%s\" is not implemented", s);
    return FRT_OK;
}

/* Resolve the options left to the config: the select layer and feature are
 * the model's (LLaVA keys at its top level), even when the tower's config
 * is another file. */
static frt_status model_choices(const frt_config *cfg, frt_clip_options *o)
{
    if (o->select_layer == FRT_CLIP_SELECT_DEFAULT) {
        int64_t sel;
        FRT_TRY(frt_config_int(cfg, "mm_vision_select_layer", -2, -1025, 1024, &sel));
        o->select_layer = (int)sel;
    }
    if (o->keep_cls < 0) {
        const char *feat;
        FRT_TRY(frt_config_string(cfg, "mm_vision_select_feature", "patch", &feat));
        if (strcmp(feat, "patch") != 0 && strcmp(feat, "cls_patch") != 0)
            return frt_error_at(FRT_ERR_UNSUPPORTED, NULL, "mm_vision_select_feature", -1,
                                "mm_vision_select_feature \"%s\" is not implemented", feat);
        o->keep_cls = strcmp(feat, "cls_patch") == 0;
    }
    return FRT_OK;
}

static frt_status read_config(const frt_config *cfg, const frt_clip_options *opt, frt_clip_info *ci)
{
    const char *kp = frt_config_has(cfg, "vision_config") ? "vision_config." : "";
    const int64_t big = 1 << 20;
    FRT_TRY(frt_cfg_int_def(cfg, kp, "image_size", 224, 1, 1 << 15, &ci->image_size));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "patch_size", 32, 1, 1 << 15, &ci->patch_size));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "hidden_size", 768, 1, big, &ci->width));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "intermediate_size", 3072, 1, big, &ci->intermediate));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "num_hidden_layers", 12, 1, 1024, &ci->layers));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "num_attention_heads", 12, 1, 4096, &ci->heads));
    FRT_TRY(frt_cfg_int_def(cfg, kp, "num_channels", 3, 1, 64, &ci->channels));
    double eps;
    FRT_TRY(frt_cfg_float_def(cfg, kp, "layer_norm_eps", 1e-5, &eps));
    if (!(eps > 0) || !isfinite(eps))
        return frt_error_at(FRT_ERR_FORMAT, NULL, "layer_norm_eps", -1,
                            "layer_norm_eps must be positive (got %g)", eps);
    ci->eps = (float)eps;
    char key[64];
    snprintf(key, sizeof key, "%shidden_act", kp);
    const char *act;
    FRT_TRY(frt_config_string(cfg, key, "quick_gelu", &act));
    FRT_TRY(parse_act(act, &ci->act));
    if (ci->width % ci->heads != 0)
        return frt_error_at(FRT_ERR_FORMAT, NULL, "num_attention_heads", -1,
                            "num_attention_heads %lld does not divide hidden_size %lld",
                            (long long)ci->heads, (long long)ci->width);
    if (ci->image_size % ci->patch_size != 0)
        return frt_error_at(FRT_ERR_FORMAT, NULL, "patch_size", -1,
                            "patch_size %lld does not divide image_size %lld",
                            (long long)ci->patch_size, (long long)ci->image_size);
    ci->grid = ci->image_size / ci->patch_size;
    if (ci->grid * ci->grid > big)
        return frt_error_at(FRT_ERR_FORMAT, NULL, "image_size", -1, "too many patches");

    frt_clip_options o = *opt;
    FRT_TRY(model_choices(cfg, &o));
    ci->select_index = o.select_layer < 0 ? ci->layers + 1 + o.select_layer : o.select_layer;
    if (ci->select_index < 0 || ci->select_index > ci->layers)
        return frt_error_at(FRT_ERR_INVALID_ARG, NULL, "mm_vision_select_layer", -1,
                            "select layer %d outside a %lld-layer tower", o.select_layer,
                            (long long)ci->layers);
    ci->keep_cls = o.keep_cls > 0;
    ci->n_out = ci->grid * ci->grid + (ci->keep_cls ? 1 : 0);
    return FRT_OK;
}

/* ---- weights ------------------------------------------------------------- */

static frt_status load_linear(const frt_st *st, frt_tensor *w, frt_tensor *b, int64_t out,
                              int64_t in, const char *p, const char *name)
{
    FRT_TRY(frt_w_view(st, w, 2, (int64_t[]){out, in}, "%s%s.weight", p, name));
    return frt_w_f32(st, b, 1, (int64_t[]){out}, "%s%s.bias", p, name);
}

static frt_status load_layer(const frt_st *st, const frt_clip_info *ci, const char *prefix, int i,
                             clip_layer *l)
{
    char p[512];
    snprintf(p, sizeof p, "%sencoder.layers.%d.", prefix, i);
    const int64_t D = ci->width, I = ci->intermediate;
    FRT_TRY(frt_w_f32(st, &l->ln1_w, 1, &D, "%slayer_norm1.weight", p));
    FRT_TRY(frt_w_f32(st, &l->ln1_b, 1, &D, "%slayer_norm1.bias", p));
    FRT_TRY(load_linear(st, &l->q_w, &l->q_b, D, D, p, "self_attn.q_proj"));
    FRT_TRY(load_linear(st, &l->k_w, &l->k_b, D, D, p, "self_attn.k_proj"));
    FRT_TRY(load_linear(st, &l->v_w, &l->v_b, D, D, p, "self_attn.v_proj"));
    FRT_TRY(load_linear(st, &l->o_w, &l->o_b, D, D, p, "self_attn.out_proj"));
    FRT_TRY(frt_w_f32(st, &l->ln2_w, 1, &D, "%slayer_norm2.weight", p));
    FRT_TRY(frt_w_f32(st, &l->ln2_b, 1, &D, "%slayer_norm2.bias", p));
    FRT_TRY(load_linear(st, &l->fc1_w, &l->fc1_b, I, D, p, "mlp.fc1"));
    return load_linear(st, &l->fc2_w, &l->fc2_b, D, I, p, "mlp.fc2");
}

static void free_layer(clip_layer *l)
{
    frt_tensor *owned[] = {&l->ln1_w, &l->ln1_b, &l->ln2_w, &l->ln2_b, &l->q_b,
                           &l->k_b,   &l->v_b,   &l->o_b,   &l->fc1_b, &l->fc2_b};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) frt_tensor_free(owned[i]);
}

static frt_status detect_prefix(const frt_st *st, const char **out)
{
    for (size_t i = 0; i < sizeof clip_prefixes / sizeof *clip_prefixes; i++) {
        if (frt_w_has(st, "%sembeddings.patch_embedding.weight", clip_prefixes[i])) {
            *out = clip_prefixes[i];
            return FRT_OK;
        }
    }
    return frt_error_at(FRT_ERR_NOT_FOUND, NULL, "vision_model.embeddings.patch_embedding.weight",
                        -1,
                        "no CLIP vision tower in the checkpoint (looked for "
                        "vision_model.* and model.vision_tower.vision_tower.vision_model.*)");
}

static frt_status load_weights(frt_clip *c, const frt_st *st, const char *prefix)
{
    const frt_clip_info *ci = &c->info;
    const int64_t D = ci->width, C = ci->channels, p = ci->patch_size;
    const int64_t T = ci->grid * ci->grid + 1;
    frt_tensor pw;
    FRT_TRY(frt_w_view(st, &pw, 4, (int64_t[]){D, C, p, p}, "%sembeddings.patch_embedding.weight",
                       prefix));
    /* The conv weight [D, C, p, p] is, row by row, a Linear over patch
     * vectors flattened (c, ky, kx). */
    c->patch_w = frt_tensor_view(pw.data, pw.dtype, 2, (int64_t[]){D, C * p * p});
    FRT_TRY(frt_w_f32(st, &c->cls, 1, &D, "%sembeddings.class_embedding", prefix));
    FRT_TRY(frt_w_f32(st, &c->pos, 2, (int64_t[]){T, D}, "%sembeddings.position_embedding.weight",
                      prefix));
    FRT_TRY(frt_w_f32(st, &c->pre_w, 1, &D, "%spre_layrnorm.weight", prefix));
    FRT_TRY(frt_w_f32(st, &c->pre_b, 1, &D, "%spre_layrnorm.bias", prefix));
    c->layers = frt_calloc((size_t)ci->select_index + 1, sizeof *c->layers);
    if (!c->layers) return FRT_ERR_NOMEM;
    for (int i = 0; i < ci->select_index; i++)
        FRT_TRY(load_layer(st, ci, prefix, i, &c->layers[i]));
    return FRT_OK;
}

static frt_status alloc_work(frt_clip *c)
{
    const frt_clip_info *ci = &c->info;
    const size_t P = (size_t)(ci->grid * ci->grid), T = P + 1, D = (size_t)ci->width;
    const size_t pv = (size_t)(ci->channels * ci->patch_size * ci->patch_size);
    float **td[] = {&c->x, &c->h, &c->q, &c->k, &c->v, &c->o};
    for (size_t i = 0; i < sizeof td / sizeof *td; i++)
        if (!(*td[i] = frt_alloc(T * D * sizeof(float)))) return FRT_ERR_NOMEM;
    if (!(c->patches = frt_alloc(P * pv * sizeof(float)))) return FRT_ERR_NOMEM;
    if (!(c->mlp = frt_alloc(T * (size_t)ci->intermediate * sizeof(float)))) return FRT_ERR_NOMEM;
    return FRT_OK;
}

frt_status frt_clip_open(const frt_st *st, const frt_config *cfg, const frt_clip_options *opt,
                         frt_backend *be, frt_clip **out)
{
    if (!st || !cfg || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_clip_open: NULL argument");
    if (be && be != frt_backend_cpu())
        return frt_error(FRT_ERR_UNSUPPORTED,
                         "frt_clip_open: only the CPU backend is supported (weights "
                         "and glue steps live in host memory)");
    frt_clip_options o = opt ? *opt : frt_clip_options_default();
    frt_clip *c = frt_calloc(1, sizeof *c);
    if (!c) return FRT_ERR_NOMEM;
    c->be = be ? be : frt_backend_cpu();
    frt_status s = read_config(cfg, &o, &c->info);
    const char *prefix = o.prefix;
    if (s == FRT_OK && !prefix) s = detect_prefix(st, &prefix);
    if (s == FRT_OK) s = load_weights(c, st, prefix);
    if (s == FRT_OK) s = alloc_work(c);
    if (s != FRT_OK) {
        frt_clip_close(c);
        return s;
    }
    *out = c;
    return FRT_OK;
}

void frt_clip_close(frt_clip *c)
{
    if (!c) return;
    if (c->layers)
        for (int64_t i = 0; i < c->info.select_index; i++) free_layer(&c->layers[i]);
    frt_free(c->layers);
    frt_tensor *owned[] = {&c->cls, &c->pos, &c->pre_w, &c->pre_b};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++) frt_tensor_free(owned[i]);
    float *bufs[] = {c->patches, c->x, c->h, c->q, c->k, c->v, c->o, c->mlp};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) frt_free(bufs[i]);
    frt_st_close(c->own_st);
    frt_free(c);
}

const frt_clip_info *frt_clip_get_info(const frt_clip *c)
{
    return c ? &c->info : NULL;
}

/* ---- opening a model directory -------------------------------------------- */

/* openai/clip-vit-large-patch14's vision config, for Flash-VStream / LLaVA
 * configs that name it instead of carrying it. */
static const char clip_vit_l14[] =
    "{\"vision_config\": {\"image_size\": 224, \"patch_size\": 14, \"hidden_size\": 1024,"
    " \"intermediate_size\": 4096, \"num_hidden_layers\": 24, \"num_attention_heads\": 16,"
    " \"hidden_act\": \"quick_gelu\", \"layer_norm_eps\": 1e-5}}";

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Where a config's mm_vision_tower lives as a directory: absolute, inside
 * dir, or beside dir. Empty when none of them has a config.json. */
static void tower_dir(const char *dir, const char *tower, char *out, size_t cap)
{
    char cand[2 * PATH_MAX + 2], parent[PATH_MAX], file[2 * PATH_MAX + 16];
    snprintf(parent, sizeof parent, "%s", dir);
    const char *up = dirname(parent);
    const char *forms[3][2] = {{"", tower}, {dir, tower}, {up, tower}};
    out[0] = '\0';
    for (int i = 0; i < 3; i++) {
        if (i == 0 && tower[0] != '/') continue;
        snprintf(cand, sizeof cand, "%s%s%s", forms[i][0], i ? "/" : "", forms[i][1]);
        snprintf(file, sizeof file, "%s/config.json", cand);
        size_t len = strlen(cand);
        if (len < cap && is_file(file)) {
            memcpy(out, cand, len + 1);
            return;
        }
    }
}

/* The vision config of a LLaVA-style config that names its tower instead of
 * nesting it; *tdir gets the tower's directory ("" for a built-in config). */
static frt_status tower_config(const char *dir, const char *tower, char *tdir, size_t cap,
                               frt_config **out)
{
    tower_dir(dir, tower, tdir, cap);
    if (tdir[0]) {
        char path[2 * PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/config.json", tdir);
        return frt_config_load(path, out);
    }
    if (strcmp(tower, "openai/clip-vit-large-patch14") == 0)
        return frt_config_parse(clip_vit_l14, sizeof clip_vit_l14 - 1, tower, out);
    return frt_error_at(FRT_ERR_NOT_FOUND, dir, "mm_vision_tower", -1,
                        "vision tower \"%s\": no such directory and no built-in config", tower);
}

static frt_status open_dir(const char *dir, frt_clip_options *o, frt_config **cfg,
                           frt_config **vcfg, frt_st **st, frt_clip **out)
{
    char path[PATH_MAX + 16], tdir[2 * PATH_MAX + 2];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FRT_TRY(frt_config_load(path, cfg));
    FRT_TRY(frt_st_open(dir, st));
    const char *tower = NULL;
    if (!frt_config_has(*cfg, "vision_config") && frt_config_has(*cfg, "mm_vision_tower"))
        FRT_TRY(frt_config_string(*cfg, "mm_vision_tower", NULL, &tower));
    if (tower) {
        FRT_TRY(tower_config(dir, tower, tdir, sizeof tdir, vcfg));
        FRT_TRY(model_choices(*cfg, o));
        const char *prefix;
        if (!o->prefix && tdir[0] && detect_prefix(*st, &prefix) != FRT_OK) {
            /* The tower's weights are not in this checkpoint: use its own. */
            frt_clear_error();
            frt_st_close(*st);
            *st = NULL;
            FRT_TRY(frt_st_open(tdir, st));
        }
    }
    return frt_clip_open(*st, *vcfg ? *vcfg : *cfg, o, NULL, out);
}

frt_status frt_clip_open_dir(const char *dir, const frt_clip_options *opt, frt_clip **out)
{
    if (!dir || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_clip_open_dir: NULL argument");
    frt_clip_options o = opt ? *opt : frt_clip_options_default();
    frt_config *cfg = NULL, *vcfg = NULL;
    frt_st *st = NULL;
    frt_status s = open_dir(dir, &o, &cfg, &vcfg, &st, out);
    frt_config_free(vcfg);
    frt_config_free(cfg);
    if (s != FRT_OK) {
        frt_st_close(st);
        return s;
    }
    (*out)->own_st = st;
    return FRT_OK;
}

/* ---- forward ------------------------------------------------------------- */

/* [C, S, S] -> [P, C p p]: patches row-major over the grid, each flattened
 * (c, ky, kx) like the conv weight. */
static void patchify(const frt_clip_info *ci, const float *px, float *out)
{
    const int64_t g = ci->grid, p = ci->patch_size, S = ci->image_size, C = ci->channels;
    for (int64_t gy = 0; gy < g; gy++)
        for (int64_t gx = 0; gx < g; gx++) {
            float *o = out + (gy * g + gx) * C * p * p;
            for (int64_t c = 0; c < C; c++)
                for (int64_t ky = 0; ky < p; ky++) {
                    memcpy(o, px + (c * S + gy * p + ky) * S + gx * p, (size_t)p * sizeof(float));
                    o += p;
                }
        }
}

/* x [T, D] = [cls; patches W^T] + pos */
static frt_status embeddings(frt_clip *c, const float *pixels)
{
    const frt_clip_info *ci = &c->info;
    const int64_t P = ci->grid * ci->grid, T = P + 1, D = ci->width;
    const int64_t pv = ci->channels * ci->patch_size * ci->patch_size;
    patchify(ci, pixels, c->patches);
    frt_tensor patches = mat(c->patches, P, pv), rows = mat(c->x + D, P, D);
    FRT_TRY(frt_linear(c->be, &rows, &patches, &c->patch_w, NULL));
    memcpy(c->x, c->cls.data, (size_t)D * sizeof(float));
    frt_tensor x = mat(c->x, T, D);
    return frt_add(c->be, &x, &x, &c->pos);
}

/* x += out_proj(attn(ln1(x))) */
static frt_status attention_block(frt_clip *c, const clip_layer *l)
{
    const frt_clip_info *ci = &c->info;
    const int64_t T = ci->grid * ci->grid + 1, D = ci->width, H = ci->heads, d = D / H;
    frt_tensor x = mat(c->x, T, D), h = mat(c->h, T, D);
    frt_tensor q = mat(c->q, T, D), k = mat(c->k, T, D), v = mat(c->v, T, D);
    FRT_TRY(frt_layernorm(c->be, &h, &x, &l->ln1_w, &l->ln1_b, ci->eps));
    FRT_TRY(frt_linear(c->be, &q, &h, &l->q_w, &l->q_b));
    FRT_TRY(frt_linear(c->be, &k, &h, &l->k_w, &l->k_b));
    FRT_TRY(frt_linear(c->be, &v, &h, &l->v_w, &l->v_b));
    /* [T, D] -> [T, H, d]: every token sees every token */
    frt_tensor qh = heads3(c->q, T, H, d), kh = heads3(c->k, T, H, d), vh = heads3(c->v, T, H, d);
    frt_tensor oh = heads3(c->o, T, H, d);
    frt_attn_params ap = {.scale = 1.0f / sqrtf((float)d)};
    FRT_TRY(frt_attention(c->be, &oh, &qh, &kh, &vh, &ap));
    frt_tensor o = mat(c->o, T, D);
    FRT_TRY(frt_linear(c->be, &h, &o, &l->o_w, &l->o_b));
    return frt_add(c->be, &x, &x, &h);
}

/* x += fc2(act(fc1(ln2(x)))) */
static frt_status mlp_block(frt_clip *c, const clip_layer *l)
{
    const frt_clip_info *ci = &c->info;
    const int64_t T = ci->grid * ci->grid + 1, D = ci->width;
    frt_tensor x = mat(c->x, T, D), h = mat(c->h, T, D), m = mat(c->mlp, T, ci->intermediate);
    FRT_TRY(frt_layernorm(c->be, &h, &x, &l->ln2_w, &l->ln2_b, ci->eps));
    FRT_TRY(frt_linear(c->be, &m, &h, &l->fc1_w, &l->fc1_b)); /* [T, I] */
    FRT_TRY(frt_act_apply(c->be, &m, &m, ci->act));
    FRT_TRY(frt_linear(c->be, &h, &m, &l->fc2_w, &l->fc2_b)); /* [T, D] */
    return frt_add(c->be, &x, &x, &h);
}

frt_status frt_clip_encode(frt_clip *c, const float *pixels, float *out)
{
    if (!c || !pixels || !out)
        return frt_error(FRT_ERR_INVALID_ARG, "frt_clip_encode: NULL argument");
    const frt_clip_info *ci = &c->info;
    const int64_t T = ci->grid * ci->grid + 1, D = ci->width;
    FRT_TRY(embeddings(c, pixels));
    frt_tensor x = mat(c->x, T, D);
    FRT_TRY(frt_layernorm(c->be, &x, &x, &c->pre_w, &c->pre_b, ci->eps));
    for (int64_t i = 0; i < ci->select_index; i++) {
        FRT_TRY(attention_block(c, &c->layers[i]));
        FRT_TRY(mlp_block(c, &c->layers[i]));
    }
    /* [T, D] -> [n_out, D] */
    const float *src = ci->keep_cls ? c->x : c->x + D;
    memcpy(out, src, (size_t)(ci->n_out * D) * sizeof(float));
    return FRT_OK;
}
