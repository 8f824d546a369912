/* Vision side against the PyTorch goldens (tests/data/models/goldens, written by
 * tools/make_goldens.py from tools/reference): Pillow-bicubic preprocessing, the CLIP tower at
 * several select layers, grid pooling and the mlp2x_gelu projector, for plain CLIP names
 * (clip-tiny, F32) and Flash-VStream names (vstream-tiny, BF16); and the load failures.
 * Error measure: max |c - ref| / max |ref| over the tensor. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "clip.h"
#include "config.h"
#include "cpu.h"
#include "error.h"
#include "preprocess.h"
#include "projector.h"
#include "safetensors.h"
#include "testutil.h"

#define MODELS  FRT_TEST_DATA "/models"
#define GOLDENS MODELS "/goldens"
/* float32 against float64 goldens through a few layers; see tools/README.md */
#define TOL 1e-4
/* The AVX-512 BF16 GEMM rounds activations to bf16 (8-bit mantissa, 2^-9
 * relative) for BF16 weights; errors stay a few 1e-3 through these layers. */
#define TOL_BF16_ACT 1.5e-2

static void teardown(void)
{
    frt_cpu_restrict(NULL);
    tu_check_leaks();
}

TestSuite(clip, .fini = teardown);
TestSuite(preprocess, .fini = tu_check_leaks);
TestSuite(projector, .fini = tu_check_leaks);

static frt_st *open_st(const char *path)
{
    frt_st *st = NULL;
    frt_status s = frt_st_open(path, &st);
    cr_assert_eq(s, FRT_OK, "open %s: %s", path, frt_last_error());
    return st;
}

/* A golden F32 tensor's data (a view into g); checks its element count. */
static const float *golden(const frt_st *g, const char *name, int64_t numel)
{
    frt_tensor t;
    cr_assert_eq(frt_st_get(g, name, &t), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(t.dtype, FRT_F32);
    cr_assert_eq(frt_tensor_numel(&t), numel, "%s: %lld elements", name,
                 (long long)frt_tensor_numel(&t));
    return t.data;
}

static double rel_err(const float *a, const float *ref, size_t n)
{
    double mx = 0.0, err = 0.0;
    for (size_t i = 0; i < n; i++) {
        mx = fmax(mx, fabs(ref[i]));
        err = fmax(err, fabs((double)a[i] - ref[i]));
        if (isnan(a[i])) return INFINITY;
    }
    return err / (mx > 0 ? mx : 1.0);
}

static uint8_t *read_rgb(const char *name, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", GOLDENS, name);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    uint8_t *buf = malloc(n + 1);
    size_t got = fread(buf, 1, n + 1, f);
    fclose(f);
    cr_assert_eq(got, n, "%s: %zu bytes, expected %zu", path, got, n);
    return buf;
}

typedef struct image_case {
    const char *name, *file, *resized;
    int w, h, rw, rh;
} image_case;

static const image_case images[] = {
    {"image_a", "image_a_160x120.rgb", "image_a_resized_149x112.rgb", 160, 120, 149, 112},
    {"image_b", "image_b_50x76.rgb", "image_b_resized_112x170.rgb", 50, 76, 112, 170},
};

/* ---- preprocessing --------------------------------------------------------- */

Test(preprocess, pillow_bicubic_resize_matches_reference)
{
    frt_image_proc_config cfg = frt_image_proc_clip_default(112);
    frt_image_proc *p;
    cr_assert_eq(frt_image_proc_create(&cfg, &p), FRT_OK);
    for (size_t i = 0; i < 2; i++) {
        const image_case *c = &images[i];
        int rw, rh;
        frt_shortest_side_size(c->w, c->h, 112, &rw, &rh);
        cr_assert_eq(rw, c->rw);
        cr_assert_eq(rh, c->rh);
        uint8_t *src = read_rgb(c->file, (size_t)c->w * c->h * 3);
        uint8_t *ref = read_rgb(c->resized, (size_t)rw * rh * 3);
        uint8_t *out = malloc((size_t)rw * rh * 3);
        memset(out, 0xA5, (size_t)rw * rh * 3);
        cr_assert_eq(frt_image_resize_bicubic(p, src, c->w, c->h, c->w * 3, out, rw, rh), FRT_OK);
        int worst = 0;
        size_t off = 0;
        for (size_t j = 0; j < (size_t)rw * rh * 3; j++) {
            int d = abs((int)out[j] - (int)ref[j]);
            off += d != 0;
            if (d > worst) worst = d;
        }
        cr_log_info("%s resize %dx%d -> %dx%d: %zu values differ, max %d", c->name, c->w, c->h, rw,
                    rh, off, worst);
        cr_expect_leq(worst, 1, "%s: resize off by %d grey levels", c->name, worst);
        free(src);
        free(ref);
        free(out);
    }
    frt_image_proc_free(p);
}

Test(preprocess, pixel_values_match_reference)
{
    frt_image_proc_config cfg;
    cr_assert_eq(frt_image_proc_load(MODELS "/clip-tiny/preprocessor_config.json", 224, &cfg),
                 FRT_OK, "%s", frt_last_error());
    cr_assert_eq(cfg.shortest_edge, 112);
    cr_assert_eq(cfg.crop_w, 112);
    frt_image_proc *p;
    cr_assert_eq(frt_image_proc_create(&cfg, &p), FRT_OK);
    frt_st *g = open_st(GOLDENS "/clip-tiny.safetensors");
    const size_t n = 3 * 112 * 112;
    float *out = malloc(n * sizeof(float));
    for (size_t i = 0; i < 2; i++) {
        const image_case *c = &images[i];
        char name[64];
        snprintf(name, sizeof name, "%s.pixel_values", c->name);
        const float *ref = golden(g, name, (int64_t)n);
        uint8_t *src = read_rgb(c->file, (size_t)c->w * c->h * 3);
        int ow, oh;
        frt_image_proc_out_size(p, c->w, c->h, &ow, &oh);
        cr_assert_eq(ow, 112);
        cr_assert_eq(oh, 112);
        tu_poison(out, n);
        /* twice: the second run reuses the working memory */
        for (int rep = 0; rep < 2; rep++)
            cr_assert_eq(frt_image_proc_run(p, src, c->w, c->h, c->w * 3, out), FRT_OK, "%s",
                         frt_last_error());
        double worst = 0;
        for (size_t j = 0; j < n; j++) worst = fmax(worst, fabs((double)out[j] - ref[j]));
        /* one grey level, in normalised units (the smallest std is 0.2613) */
        double level = 1.0 / 255 / 0.26130258;
        cr_log_info("%s pixel_values: max abs error %.3g (one grey level = %.3g)", c->name, worst,
                    level);
        cr_expect_leq(worst, level, "%s: pixel values off by %g", c->name, worst);
        free(src);
    }
    free(out);
    frt_st_close(g);
    frt_image_proc_free(p);
}

Test(preprocess, bad_inputs)
{
    frt_image_proc_config cfg = frt_image_proc_clip_default(112);
    cfg.std[1] = 0;
    frt_image_proc *p;
    cr_expect_eq(frt_image_proc_create(&cfg, &p), FRT_ERR_INVALID_ARG);
    cfg = frt_image_proc_clip_default(112);
    cfg.crop_w = cfg.crop_h = 200; /* larger than the resized image */
    cr_assert_eq(frt_image_proc_create(&cfg, &p), FRT_OK);
    uint8_t img[8 * 8 * 3] = {0};
    float out[3];
    cr_expect_eq(frt_image_proc_run(p, img, 8, 8, 24, out), FRT_ERR_INVALID_ARG);
    cr_expect(strstr(frt_last_error(), "crop"));
    cr_expect_eq(frt_image_proc_run(p, img, 8, 8, 10, out), FRT_ERR_INVALID_ARG); /* stride */
    cr_expect_eq(frt_image_proc_run(p, img, 0, 8, 24, out), FRT_ERR_INVALID_ARG);
    frt_image_proc_free(p);
    cr_expect_eq(frt_image_proc_load(MODELS "/no-such/preprocessor_config.json", 224, &cfg),
                 FRT_ERR_NOT_FOUND);
}

/* ---- CLIP ------------------------------------------------------------------- */

static void check_clip_layer(frt_clip *clip, const frt_st *g, const char *img, int layer, bool cls)
{
    const frt_clip_info *ci = frt_clip_get_info(clip);
    char name[64];
    snprintf(name, sizeof name, "%s.pixel_values", img);
    const float *px = golden(g, name, 3 * 112 * 112);
    snprintf(name, sizeof name, "%s.hidden_states", img);
    const float *hs = golden(g, name, 5 * 65 * 48);
    size_t n = (size_t)(ci->n_out * ci->width);
    float *out = malloc(n * sizeof(float));
    tu_poison(out, n);
    cr_assert_eq(frt_clip_encode(clip, px, out), FRT_OK, "%s", frt_last_error());
    const float *ref = hs + (size_t)layer * 65 * 48 + (cls ? 0 : 48);
    double e = rel_err(out, ref, n);
    cr_log_info("clip-tiny %s hidden_states[%d]%s: rel err %.3g", img, layer, cls ? "" : "[1:]", e);
    cr_expect_leq(e, TOL, "%s layer %d: rel err %g", img, layer, e);
    free(out);
}

Test(clip, select_layers_match_hidden_states)
{
    frt_st *g = open_st(GOLDENS "/clip-tiny.safetensors");
    /* default (-2, patch tokens), the embeddings (0, with CLS) and the last layer (-1) */
    struct {
        int sel, keep_cls, index;
    } cases[] = {{FRT_CLIP_SELECT_DEFAULT, -1, 3}, {0, 1, 0}, {-1, 1, 4}, {2, 0, 2}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        frt_clip_options o = frt_clip_options_default();
        o.select_layer = cases[i].sel;
        o.keep_cls = cases[i].keep_cls;
        frt_clip *clip;
        cr_assert_eq(frt_clip_open_dir(MODELS "/clip-tiny", &o, &clip), FRT_OK, "%s",
                     frt_last_error());
        const frt_clip_info *ci = frt_clip_get_info(clip);
        cr_assert_eq(ci->select_index, cases[i].index);
        cr_assert_eq(ci->grid, 8);
        cr_assert_eq(ci->n_out, 64 + (ci->keep_cls ? 1 : 0));
        check_clip_layer(clip, g, "image_a", cases[i].index, ci->keep_cls);
        check_clip_layer(clip, g, "image_b", cases[i].index, ci->keep_cls);
        frt_clip_close(clip);
    }
    frt_st_close(g);
}

Test(clip, features_match_golden)
{
    frt_st *g = open_st(GOLDENS "/clip-tiny.safetensors");
    frt_clip *clip;
    cr_assert_eq(frt_clip_open_dir(MODELS "/clip-tiny", NULL, &clip), FRT_OK, "%s",
                 frt_last_error());
    float out[64 * 48];
    for (int rep = 0; rep < 2; rep++) { /* the second encode reuses every buffer */
        const float *px = golden(g, "image_b.pixel_values", 3 * 112 * 112);
        tu_poison(out, 64 * 48);
        cr_assert_eq(frt_clip_encode(clip, px, out), FRT_OK);
        double e = rel_err(out, golden(g, "image_b.features", 64 * 48), 64 * 48);
        cr_expect_leq(e, TOL, "features rel err %g", e);
    }
    frt_clip_close(clip);
    frt_st_close(g);
}

/* Flash-VStream names, nested vision_config, BF16 weights; then the pooling and projector. On
 * every ISA path (the BF16 weights take the bf16-activation GEMM on AVX-512 BF16). */
static void vstream_vision(frt_clip *clip, frt_projector *proj, const frt_st *g, const frt_st *gc,
                           const char *isa, double tol)
{
    float feats[64 * 48], pooled[2][16 * 48];
    for (int i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.pixel_values", images[i].name);
        tu_poison(feats, 64 * 48);
        cr_assert_eq(frt_clip_encode(clip, golden(gc, name, 3 * 112 * 112), feats), FRT_OK);
        snprintf(name, sizeof name, "%s.features", images[i].name);
        double e = rel_err(feats, golden(g, name, 64 * 48), 64 * 48);
        cr_log_info("%s: vstream-tiny %s features: rel err %.3g", isa, images[i].name, e);
        cr_expect_leq(e, tol, "%s: %s features rel err %g", isa, images[i].name, e);
        cr_assert_eq(frt_grid_avg_pool(feats, 8, 48, 4, pooled[i]), FRT_OK);
        snprintf(name, sizeof name, "%s.pooled", images[i].name);
        e = rel_err(pooled[i], golden(g, name, 16 * 48), 16 * 48);
        cr_expect_leq(e, tol, "%s: %s pooled rel err %g", isa, images[i].name, e);
    }
    float projected[32 * 64];
    tu_poison(projected, 32 * 64);
    cr_assert_eq(frt_projector_forward(proj, &pooled[0][0], 32, projected), FRT_OK);
    double e = rel_err(projected, golden(g, "projected", 32 * 64), 32 * 64);
    cr_log_info("%s: vstream-tiny projected (from C features): rel err %.3g", isa, e);
    cr_expect_leq(e, tol, "%s: projected rel err %g", isa, e);
    /* from the golden pooled tokens alone: the projector's own error */
    float in[32 * 48];
    memcpy(in, golden(g, "image_a.pooled", 16 * 48), sizeof in / 2);
    memcpy(in + 16 * 48, golden(g, "image_b.pooled", 16 * 48), sizeof in / 2);
    cr_assert_eq(frt_projector_forward(proj, in, 32, projected), FRT_OK);
    e = rel_err(projected, golden(g, "projected", 32 * 64), 32 * 64);
    cr_expect_leq(e, tol, "%s: projector alone rel err %g", isa, e);
}

Test(clip, vstream_tower_pool_and_projector)
{
    frt_st *g = open_st(GOLDENS "/vstream-tiny.safetensors");
    frt_st *gc = open_st(GOLDENS "/clip-tiny.safetensors");
    frt_clip *clip;
    cr_assert_eq(frt_clip_open_dir(MODELS "/vstream-tiny", NULL, &clip), FRT_OK, "%s",
                 frt_last_error());
    cr_assert_eq(frt_clip_get_info(clip)->select_index, 3);
    frt_config *cfg;
    cr_assert_eq(frt_config_load(MODELS "/vstream-tiny/config.json", &cfg), FRT_OK);
    frt_st *st = open_st(MODELS "/vstream-tiny");
    frt_projector *proj;
    /* 5 rows per step: the 32 rows run in several steps */
    cr_assert_eq(frt_projector_open(st, cfg, NULL, 5, NULL, &proj), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_projector_in_dim(proj), 48);
    cr_assert_eq(frt_projector_out_dim(proj), 64);
    for (int i = 0; i < TU_N_ISAS; i++) {
        if (!tu_use_isa(i)) continue;
        vstream_vision(clip, proj, g, gc, tu_isa_names[i],
                       tu_isas[i].avx512bf16 ? TOL_BF16_ACT : TOL);
    }
    frt_projector_close(proj);
    frt_st_close(st);
    frt_config_free(cfg);
    frt_clip_close(clip);
    frt_st_close(gc);
    frt_st_close(g);
}

Test(projector, grid_pool_matches_golden)
{
    frt_st *g = open_st(GOLDENS "/clip-tiny.safetensors");
    const float *feats = golden(g, "image_a.features", 64 * 48);
    const int sides[] = {4, 2, 1, 8};
    for (int i = 0; i < 4; i++) {
        int s = sides[i];
        float out[64 * 48];
        tu_poison(out, 64 * 48);
        cr_assert_eq(frt_grid_avg_pool(feats, 8, 48, s, out), FRT_OK);
        const float *ref = feats;
        char name[64];
        if (s != 8) {
            snprintf(name, sizeof name, "image_a.pool%dx%d", s, s);
            ref = golden(g, name, s * s * 48);
        }
        double e = rel_err(out, ref, (size_t)(s * s * 48));
        cr_expect_leq(e, 1e-6, "pool side %d rel err %g", s, e);
        cr_expect(s == 8 || isnan(out[s * s * 48]), "wrote past the output");
    }
    float out[48];
    cr_expect_eq(frt_grid_avg_pool(feats, 8, 48, 3, out), FRT_ERR_INVALID_ARG);
    frt_st_close(g);
}

Test(projector, bad_type_and_missing_tensor)
{
    frt_st *st = open_st(MODELS "/vstream-tiny");
    const char *bad[] = {
        "{\"mm_projector_type\": \"qformer\", \"mm_hidden_size\": 48, \"hidden_size\": 64}",
        "{\"mm_projector_type\": \"mlp3x_gelu\", \"mm_hidden_size\": 48, \"hidden_size\": 64}",
        "{\"mm_projector_type\": \"mlp2x_gelu\", \"mm_hidden_size\": 40, \"hidden_size\": 64}",
        "{\"mm_projector_type\": \"mlp2x_gelu\", \"hidden_size\": 64}",
    };
    frt_status want[] = {FRT_ERR_UNSUPPORTED, FRT_ERR_NOT_FOUND, FRT_ERR_FORMAT, FRT_ERR_FORMAT};
    const char *names[] = {"qformer", "model.mm_projector.4.weight", "model.mm_projector.0.weight",
                           "mm_hidden_size"};
    for (int i = 0; i < 4; i++) {
        frt_config *cfg;
        cr_assert_eq(frt_config_parse(bad[i], strlen(bad[i]), "test", &cfg), FRT_OK);
        frt_projector *p = NULL;
        cr_expect_eq(frt_projector_open(st, cfg, NULL, 0, NULL, &p), want[i], "case %d: %s", i,
                     frt_last_error());
        cr_expect(strstr(frt_last_error(), names[i]), "case %d: message \"%s\" lacks %s", i,
                  frt_last_error(), names[i]);
        cr_expect_null(p);
        frt_config_free(cfg);
    }
    frt_st_close(st);
}

/* ---- CLIP load failures ----------------------------------------------------- */

static frt_status open_clip_cfg(const char *json, frt_clip **out)
{
    frt_config *cfg;
    cr_assert_eq(frt_config_parse(json, strlen(json), "test", &cfg), FRT_OK);
    frt_st *st = open_st(MODELS "/clip-tiny");
    frt_status s = frt_clip_open(st, cfg, NULL, NULL, out);
    if (s == FRT_OK) frt_clip_close(*out);
    frt_st_close(st);
    frt_config_free(cfg);
    return s;
}

#define CLIP_CFG(extra)                                                                            \
    "{\"hidden_size\": 48, \"intermediate_size\": 192, \"num_hidden_layers\": 4,"                  \
    " \"num_attention_heads\": 3, \"image_size\": 112, \"patch_size\": 14" extra "}"

Test(clip, load_failures_name_the_problem)
{
    frt_clip *c = NULL;
    cr_assert_eq(open_clip_cfg(CLIP_CFG(""), &c), FRT_OK, "%s", frt_last_error());
    struct {
        const char *json;
        frt_status want;
        const char *needle;
    } cases[] = {
        /* a 6-layer config: layer 4 is needed for select -2 and is not there */
        {"{\"hidden_size\": 48, \"intermediate_size\": 192, \"num_hidden_layers\": 6,"
         " \"num_attention_heads\": 3, \"image_size\": 112, \"patch_size\": 14}",
         FRT_ERR_NOT_FOUND, "vision_model.encoder.layers.4."},
        {"{\"hidden_size\": 48, \"intermediate_size\": 100, \"num_hidden_layers\": 4,"
         " \"num_attention_heads\": 3, \"image_size\": 112, \"patch_size\": 14}",
         FRT_ERR_FORMAT, "vision_model.encoder.layers.0.mlp.fc1.weight"},
        {"{\"hidden_size\": 48, \"intermediate_size\": 192, \"num_hidden_layers\": 4,"
         " \"num_attention_heads\": 5, \"image_size\": 112, \"patch_size\": 14}",
         FRT_ERR_FORMAT, "num_attention_heads"},
        {"{\"hidden_size\": -48, \"intermediate_size\": 192, \"num_hidden_layers\": 4,"
         " \"num_attention_heads\": 3, \"image_size\": 112, \"patch_size\": 14}",
         FRT_ERR_FORMAT, "hidden_size"},
        {"{\"hidden_size\": 48, \"intermediate_size\": 192, \"num_hidden_layers\": 4,"
         " \"num_attention_heads\": 3, \"image_size\": 112, \"patch_size\": 15}",
         FRT_ERR_FORMAT, "patch_size"},
        {"{\"hidden_size\": 48, \"intermediate_size\": 192, \"num_hidden_layers\": 4,"
         " \"num_attention_heads\": 3, \"image_size\": 224, \"patch_size\": 14}",
         FRT_ERR_FORMAT, "position_embedding"},
        {CLIP_CFG(", \"hidden_act\": \"swish\""), FRT_ERR_UNSUPPORTED, "swish"},
        {CLIP_CFG(", \"mm_vision_select_layer\": -7"), FRT_ERR_INVALID_ARG, "select layer"},
        {CLIP_CFG(", \"layer_norm_eps\": 0"), FRT_ERR_FORMAT, "layer_norm_eps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        c = NULL;
        frt_status s = open_clip_cfg(cases[i].json, &c);
        cr_expect_eq(s, cases[i].want, "case %zu: %s (%s)", i, frt_status_name(s),
                     frt_last_error());
        cr_expect(strstr(frt_last_error(), cases[i].needle), "case %zu: \"%s\" lacks \"%s\"", i,
                  frt_last_error(), cases[i].needle);
    }
    /* a checkpoint without any vision tower */
    frt_st *st = open_st(MODELS "/llama-tiny");
    frt_config *cfg;
    cr_assert_eq(frt_config_parse(CLIP_CFG(""), strlen(CLIP_CFG("")), "test", &cfg), FRT_OK);
    cr_expect_eq(frt_clip_open(st, cfg, NULL, NULL, &c), FRT_ERR_NOT_FOUND);
    cr_expect(strstr(frt_last_error(), "vision_model"));
    frt_config_free(cfg);
    frt_st_close(st);
}

/* A LLaVA-style config without vision_config names its tower by mm_vision_tower: a directory
 * (its config; weights from this checkpoint when it has the tower, else the tower's own), or
 * openai/clip-vit-large-patch14 (built-in config). */
static frt_status open_with_tower(const char *weights, const char *tower, frt_clip **clip)
{
    char *dir = tu_tmpdir(), json[1024], link[1024];
    snprintf(json, sizeof json,
             "{\"mm_vision_tower\": \"%s\", \"mm_vision_select_layer\": -2,"
             " \"mm_vision_select_feature\": \"patch\"}",
             tower);
    free(tu_write_file(dir, "config.json", json, strlen(json)));
    snprintf(link, sizeof link, "%s/model.safetensors", dir);
    cr_assert_eq(symlink(weights, link), 0);
    frt_status s = frt_clip_open_dir(dir, NULL, clip);
    tu_rmtree(dir);
    free(dir);
    return s;
}

Test(clip, tower_named_by_mm_vision_tower)
{
    frt_st *g = open_st(GOLDENS "/clip-tiny.safetensors");
    frt_st *gv = open_st(GOLDENS "/vstream-tiny.safetensors");
    const char *weights[] = {MODELS "/vstream-tiny/model.safetensors",
                             MODELS "/llama-tiny/model.safetensors"};
    frt_cpu_restrict(&tu_isas[2]);
    for (int i = 0; i < 2; i++) {
        frt_clip *clip = NULL;
        cr_assert_eq(open_with_tower(weights[i], MODELS "/clip-tiny", &clip), FRT_OK, "%s",
                     frt_last_error());
        cr_expect_eq(frt_clip_get_info(clip)->select_index, 3);
        float out[64 * 48];
        cr_assert_eq(frt_clip_encode(clip, golden(g, "image_a.pixel_values", 3 * 112 * 112), out),
                     FRT_OK);
        /* vstream-tiny carries the tower in bf16 (its own goldens), clip-tiny in f32 */
        const frt_st *ref = i == 0 ? gv : g;
        double e = rel_err(out, golden(ref, "image_a.features", 64 * 48), 64 * 48);
        cr_expect_leq(e, TOL, "case %d: rel err %g", i, e);
        frt_clip_close(clip);
    }
    frt_clip *clip = NULL;
    cr_expect_eq(open_with_tower(weights[1], "openai/clip-vit-large-patch14", &clip),
                 FRT_ERR_NOT_FOUND, "built-in config, but no tower weights");
    cr_expect(strstr(frt_last_error(), "vision_model"), "%s", frt_last_error());
    cr_expect_eq(open_with_tower(weights[1], "no/such-tower", &clip), FRT_ERR_NOT_FOUND);
    cr_expect(strstr(frt_last_error(), "no/such-tower"), "%s", frt_last_error());
    frt_st_close(gv);
    frt_st_close(g);
}
