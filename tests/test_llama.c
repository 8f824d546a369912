/* Llama decoder against the PyTorch goldens (tests/data/models/goldens, from
 * tools/make_goldens.py): prefill logits and the greedy path with its per-step logits for
 * llama-tiny (F32, GQA), llama-tiny-bf16, llama-tiny-sharded (tied embeddings, linear RoPE
 * scaling, theta 500000, MHA) and vstream-tiny (Flash-VStream names, spliced visual tokens);
 * chunked and rewound prefill, the f16 KV cache, unified-max decode, the context limit, load
 * failures, and a PyTorch .bin checkpoint (F16 weights) through tools/convert.
 * Error measure: max |c - ref| / max |ref| over the tensor. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "alloc.h"
#include "clip.h"
#include "config.h"
#include "cpu.h"
#include "error.h"
#include "llama.h"
#include "projector.h"
#include "safetensors.h"
#include "testutil.h"

#define MODELS  FRT_TEST_DATA "/models"
#define GOLDENS MODELS "/goldens"
#define V       1000
#define TOL     1e-4
/* greedy_ids holds 64 steps; greedy_logits the first 8 (greedy_final_logits the last) */
#define N_GREEDY        64
#define N_GREEDY_LOGITS 8
/* The AVX-512 BF16 GEMM rounds activations to bf16 for BF16 weights (prefill rows only; one
 * row takes the f32 GEMV). */
#define TOL_BF16_ACT 2e-2

static void teardown(void)
{
    frt_cpu_restrict(NULL);
    tu_check_leaks();
}

TestSuite(llama, .fini = teardown);

static frt_st *open_st(const char *path)
{
    frt_st *st = NULL;
    frt_status s = frt_st_open(path, &st);
    cr_assert_eq(s, FRT_OK, "open %s: %s", path, frt_last_error());
    return st;
}

static const void *golden(const frt_st *g, const char *name, int64_t numel)
{
    frt_tensor t;
    cr_assert_eq(frt_st_get(g, name, &t), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_tensor_numel(&t), numel, "%s: %lld elements", name,
                 (long long)frt_tensor_numel(&t));
    return t.data;
}

static double rel_err(const float *a, const float *ref, size_t n)
{
    double mx = 0.0, err = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i])) return INFINITY;
        mx = fmax(mx, fabs(ref[i]));
        err = fmax(err, fabs((double)a[i] - ref[i]));
    }
    return err / (mx > 0 ? mx : 1.0);
}

static int32_t argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static frt_llama *open_model(const char *name, const frt_llama_options *o)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", MODELS, name);
    frt_llama *m = NULL;
    frt_status s = frt_llama_open_dir(dir, o, &m);
    cr_assert_eq(s, FRT_OK, "open %s: %s", name, frt_last_error());
    return m;
}

/* Prefill the golden prompt (ids or embeddings), compare all logits, then follow the 64-token
 * greedy path fed with the golden ids: every step's argmax against greedy_ids, the logits of
 * the first 8 steps and the last against the goldens. A step is compared only if its golden
 * margin (top1 - top2 over the step's max |logit|) exceeds 2 tol, the most an error within
 * tol can move that gap: the goldens hold every margin >= 1e-3, so the f32 paths (tol 1e-4)
 * compare all 64 ids, while bf16 activations and F16 weights skip their close steps (the
 * path stays on the golden ids, so a skipped step does not derail the later ones). Returns
 * the worst error seen. */
static double check_golden_run(frt_llama *m, const frt_st *g, const int32_t *ids,
                               const float *embeds, int64_t n, const char *what, double tol)
{
    const float *ref_logits = golden(g, "logits", n * V);
    const int32_t *gids = golden(g, "greedy_ids", N_GREEDY);
    const float *gl = golden(g, "greedy_logits", N_GREEDY_LOGITS * V);
    const float *gfinal = golden(g, "greedy_final_logits", V);
    const float *gmargin = golden(g, "greedy_rel_margins", N_GREEDY);
    float *logits = malloc((size_t)(n * V) * sizeof(float));
    tu_poison(logits, (size_t)(n * V));
    frt_llama_reset(m);
    cr_assert_eq(frt_llama_prefill(m, ids, embeds, n, logits, n), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_llama_pos(m), n);
    double e = rel_err(logits, ref_logits, (size_t)(n * V)), worst = e;
    cr_expect_leq(e, tol, "%s: prefill logits rel err %g", what, e);
    float step[V];
    memcpy(step, logits + (n - 1) * V, sizeof step);
    double es = 0;
    int checked = 0;
    for (int i = 0; i < N_GREEDY; i++) {
        if (i < N_GREEDY_LOGITS) es = fmax(es, rel_err(step, gl + i * V, V));
        if (i == N_GREEDY - 1) es = fmax(es, rel_err(step, gfinal, V));
        int32_t tok = argmax(step, V);
        if (gmargin[i] > 2 * tol) {
            cr_expect_eq(tok, gids[i], "%s: greedy step %d chose %d, reference %d", what, i, tok,
                         gids[i]);
            checked++;
        }
        if (i < N_GREEDY - 1) {
            tu_poison(step, V);
            cr_assert_eq(frt_llama_decode(m, gids[i], step), FRT_OK, "%s", frt_last_error());
        }
    }
    cr_expect_leq(es, tol, "%s: decode logits rel err %g", what, es);
    cr_expect_eq(frt_llama_pos(m), n + N_GREEDY - 1);
    if (tol <= TOL) cr_expect_eq(checked, N_GREEDY, "%s: every greedy step is compared", what);
    cr_expect_geq(checked, N_GREEDY / 4, "%s: only %d greedy steps compared", what, checked);
    cr_log_info("%s: prefill logits rel err %.3g, decode steps %.3g, %d/%d greedy ids compared",
                what, e, es, checked, N_GREEDY);
    free(logits);
    return fmax(worst, es);
}

static void check_model(const char *name, bool bf16)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", GOLDENS, name);
    frt_st *g = open_st(path);
    frt_llama *m = open_model(name, NULL);
    const int32_t *ids = golden(g, "input_ids", 12);
    for (int i = 0; i < TU_N_ISAS; i++) {
        if (!tu_use_isa(i)) continue;
        char what[128];
        snprintf(what, sizeof what, "%s %s", name, tu_isa_names[i]);
        check_golden_run(m, g, ids, NULL, 12, what,
                         bf16 && tu_isas[i].avx512bf16 ? TOL_BF16_ACT : TOL);
    }
    frt_llama_close(m);
    frt_st_close(g);
}

Test(llama, tiny_f32_gqa)
{
    check_model("llama-tiny", false);
}
Test(llama, tiny_bf16)
{
    check_model("llama-tiny-bf16", true);
}
Test(llama, tiny_sharded_tied_linear_rope)
{
    frt_llama *m = open_model("llama-tiny-sharded", NULL);
    const frt_llama_info *li = frt_llama_get_info(m);
    cr_expect(li->tied);
    cr_expect_eq(li->rope_scale, 2.0f);
    cr_expect_eq(li->rope_theta, 500000.0f);
    cr_expect_eq(li->kv_heads, 4);
    frt_llama_close(m);
    check_model("llama-tiny-sharded", false);
}

Test(llama, info_from_config)
{
    frt_llama *m = open_model("llama-tiny", &(frt_llama_options){.max_ctx = 100000});
    const frt_llama_info *li = frt_llama_get_info(m);
    cr_expect_eq(li->vocab, 1000);
    cr_expect_eq(li->hidden, 64);
    cr_expect_eq(li->heads, 4);
    cr_expect_eq(li->kv_heads, 2);
    cr_expect_eq(li->head_dim, 16);
    cr_expect_eq(li->max_ctx, 256, "max_ctx is capped by max_position_embeddings");
    cr_expect_eq(li->eos_id, 2);
    cr_expect_eq(li->bos_id, 1);
    cr_expect_not(li->tied);
    frt_llama_close(m);
}

/* Several prefill calls, internal steps of a few rows, and a rewind all give one prefill's
 * logits (the same kernels on the same rows, so to float rounding of the split). */
Test(llama, chunked_prefill_equals_one_prefill)
{
    frt_st *g = open_st(GOLDENS "/llama-tiny.safetensors");
    const int32_t *ids = golden(g, "input_ids", 12);
    frt_llama *m = open_model("llama-tiny", NULL);
    float full[12 * V], part[12 * V];
    cr_assert_eq(frt_llama_prefill(m, ids, NULL, 12, full, 12), FRT_OK);

    frt_llama_reset(m);
    tu_poison(part, 12 * V);
    cr_assert_eq(frt_llama_prefill(m, ids, NULL, 5, part, 5), FRT_OK);
    cr_assert_eq(frt_llama_prefill(m, ids + 5, NULL, 7, part + 5 * V, 7), FRT_OK);
    double e = rel_err(part, full, 12 * V);
    cr_log_info("two prefill calls vs one: rel err %.3g", e);
    cr_expect_leq(e, 1e-5, "two prefill calls: rel err %g", e);

    /* rewind to 6 and redo the tail: only the last row's logits asked for */
    cr_assert_eq(frt_llama_rewind(m, 6), FRT_OK);
    float last[V];
    cr_assert_eq(frt_llama_prefill(m, ids + 6, NULL, 6, last, 1), FRT_OK);
    e = rel_err(last, full + 11 * V, V);
    cr_expect_leq(e, 1e-5, "rewound prefill: rel err %g", e);
    cr_expect_eq(frt_llama_rewind(m, 13), FRT_ERR_INVALID_ARG);
    frt_llama_close(m);

    /* steps of 5 rows inside one call; logits of the last 9 rows cross step borders */
    m = open_model("llama-tiny", &(frt_llama_options){.max_batch = 5});
    tu_poison(part, 12 * V);
    cr_assert_eq(frt_llama_prefill(m, ids, NULL, 12, part, 9), FRT_OK);
    e = rel_err(part, full + 3 * V, 9 * V);
    cr_expect_leq(e, 1e-5, "max_batch 5: rel err %g", e);
    cr_expect(isnan(part[9 * V]), "wrote logits past n_logits rows");
    frt_llama_close(m);
    frt_st_close(g);
}

Test(llama, f16_kv_cache)
{
    frt_st *g = open_st(GOLDENS "/llama-tiny.safetensors");
    const int32_t *ids = golden(g, "input_ids", 12);
    frt_llama *m = open_model("llama-tiny", &(frt_llama_options){.kv_dtype = FRT_F16});
    /* f16 K and V carry 11 bits: about 1e-3 relative on the logits */
    double e = check_golden_run(m, g, ids, NULL, 12, "llama-tiny f16 KV", 5e-3);
    cr_expect_gt(e, 0.0);
    frt_llama_close(m);
    frt_st_close(g);
}

/* FlashDecoding++ unified max in decode: exact to rounding for any phi, as rows outside the
 * safe range fall back to the exact method (phi 0 suits these scores; phi 100 forces the
 * fallback on every row). */
Test(llama, decode_with_unified_max)
{
    frt_st *g = open_st(GOLDENS "/llama-tiny.safetensors");
    const int32_t *ids = golden(g, "input_ids", 12);
    const float phis[] = {0.0f, 100.0f};
    for (int i = 0; i < 2; i++) {
        frt_llama *m = open_model("llama-tiny",
                                  &(frt_llama_options){.unified_max = true, .attn_phi = phis[i]});
        char what[64];
        snprintf(what, sizeof what, "llama-tiny unified max phi %g", (double)phis[i]);
        check_golden_run(m, g, ids, NULL, 12, what, TOL);
        frt_llama_close(m);
    }
    frt_st_close(g);
}

Test(llama, context_limit_is_a_clear_error)
{
    frt_st *g = open_st(GOLDENS "/llama-tiny.safetensors");
    const int32_t *ids = golden(g, "input_ids", 12);
    frt_llama *m = open_model("llama-tiny", &(frt_llama_options){.max_ctx = 14});
    cr_assert_eq(frt_llama_get_info(m)->max_ctx, 14);
    float logits[V];
    cr_assert_eq(frt_llama_prefill(m, ids, NULL, 12, logits, 1), FRT_OK);
    cr_assert_eq(frt_llama_decode(m, 5, logits), FRT_OK);
    cr_assert_eq(frt_llama_decode(m, 6, logits), FRT_OK);
    cr_expect_eq(frt_llama_decode(m, 7, logits), FRT_ERR_LIMIT);
    cr_expect(strstr(frt_last_error(), "max_ctx 14"), "%s", frt_last_error());
    cr_expect_eq(frt_llama_pos(m), 14, "a refused call leaves the position");
    frt_llama_reset(m);
    cr_expect_eq(frt_llama_prefill(m, ids, NULL, 12, logits, 1), FRT_OK);
    cr_expect_eq(frt_llama_prefill(m, ids, NULL, 3, logits, 1), FRT_ERR_LIMIT);
    frt_llama_close(m);
    frt_st_close(g);
}

Test(llama, bad_calls)
{
    frt_llama *m = open_model("llama-tiny", NULL);
    float logits[2 * V], emb[64];
    int32_t ids[2] = {1, V};
    cr_expect_eq(frt_llama_prefill(m, ids, NULL, 2, logits, 1), FRT_ERR_INVALID_ARG);
    cr_expect(strstr(frt_last_error(), "vocabulary"));
    ids[1] = -3;
    cr_expect_eq(frt_llama_embed(m, ids, 2, logits), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_llama_prefill(m, NULL, NULL, 1, logits, 1), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_llama_prefill(m, ids, emb, 1, logits, 1), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_llama_prefill(m, ids, NULL, 1, logits, 2), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_llama_prefill(m, ids, NULL, 0, logits, 1), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_llama_pos(m), 0);
    frt_llama_close(m);
    /* another backend (here a stand-in) is refused at open, not at the first op */
    static const frt_backend_ops other_ops = {.name = "other"};
    frt_backend other = {.ops = &other_ops};
    frt_st *st = open_st(MODELS "/llama-tiny");
    frt_config *cfg;
    cr_assert_eq(frt_config_load(MODELS "/llama-tiny/config.json", &cfg), FRT_OK);
    cr_expect_eq(frt_llama_open(st, cfg, NULL, &other, &m), FRT_ERR_UNSUPPORTED);
    cr_expect(strstr(frt_last_error(), "CPU backend"));
    frt_config_free(cfg);
    frt_st_close(st);
    cr_expect_eq(
        frt_llama_open_dir(MODELS "/llama-tiny", &(frt_llama_options){.kv_dtype = FRT_I8}, &m),
        FRT_ERR_INVALID_ARG);
}

/* ---- Flash-VStream checkpoint: splice and logits ---------------------------- */

Test(llama, vstream_splice_and_logits)
{
    frt_st *g = open_st(GOLDENS "/vstream-tiny.safetensors");
    frt_llama *m = open_model("vstream-tiny", NULL);
    const int32_t *ids = golden(g, "input_ids", 13);
    const float *proj = golden(g, "projected", 32 * 64);
    const float *ref = golden(g, "inputs_embeds", 44 * 64);
    float emb[45 * 64];
    tu_poison(emb, 45 * 64);
    int64_t rows = 0, nb = 32;
    const float *blocks[] = {proj};
    cr_assert_eq(frt_llama_splice(m, ids, 13, blocks, &nb, 1, emb, 45, &rows), FRT_OK, "%s",
                 frt_last_error());
    cr_assert_eq(rows, 44);
    cr_expect_eq(rel_err(emb, ref, 44 * 64), 0.0, "splice is a copy of bf16 rows and features");
    cr_expect(isnan(emb[44 * 64]));
    /* placeholders and blocks must agree; the result must fit */
    cr_expect_eq(frt_llama_splice(m, ids, 13, blocks, &nb, 0, emb, 45, &rows), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_llama_splice(m, ids, 5, blocks, &nb, 1, emb, 45, &rows), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_llama_splice(m, ids, 13, blocks, &nb, 1, emb, 43, &rows), FRT_ERR_LIMIT);

    for (int i = 0; i < TU_N_ISAS; i++) {
        if (!tu_use_isa(i)) continue;
        char what[64];
        snprintf(what, sizeof what, "vstream-tiny %s", tu_isa_names[i]);
        check_golden_run(m, g, NULL, emb, 44, what, tu_isas[i].avx512bf16 ? TOL_BF16_ACT : TOL);
    }
    frt_llama_close(m);
    frt_st_close(g);
}

/* The whole vision-language path in C from the golden pixels: CLIP (Flash-VStream names),
 * 2x2 pooling, projector, splice, prefill and greedy decode. */
Test(llama, vstream_end_to_end_from_pixels)
{
    frt_st *g = open_st(GOLDENS "/vstream-tiny.safetensors");
    frt_st *gc = open_st(GOLDENS "/clip-tiny.safetensors");
    frt_st *st = open_st(MODELS "/vstream-tiny");
    frt_config *cfg;
    cr_assert_eq(frt_config_load(MODELS "/vstream-tiny/config.json", &cfg), FRT_OK);
    frt_clip *clip;
    frt_projector *proj;
    frt_llama *m;
    cr_assert_eq(frt_clip_open(st, cfg, NULL, NULL, &clip), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_projector_open(st, cfg, NULL, 0, NULL, &proj), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_llama_open(st, cfg, NULL, NULL, &m), FRT_OK, "%s", frt_last_error());
    frt_cpu_restrict(&tu_isas[2]); /* f32 arithmetic everywhere (no bf16 activations) */
    float feats[64 * 48], pooled[32 * 48], projected[32 * 64], emb[44 * 64];
    const char *px[] = {"image_a.pixel_values", "image_b.pixel_values"};
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(frt_clip_encode(clip, golden(gc, px[i], 3 * 112 * 112), feats), FRT_OK);
        cr_assert_eq(frt_grid_avg_pool(feats, 8, 48, 4, pooled + i * 16 * 48), FRT_OK);
    }
    cr_assert_eq(frt_projector_forward(proj, pooled, 32, projected), FRT_OK);
    int64_t rows, nb = 32;
    const float *blocks[] = {projected};
    cr_assert_eq(
        frt_llama_splice(m, golden(g, "input_ids", 13), 13, blocks, &nb, 1, emb, 44, &rows),
        FRT_OK);
    double e = check_golden_run(m, g, NULL, emb, rows, "vstream-tiny from pixels", TOL);
    cr_log_info("vstream-tiny end to end from pixels: worst logits rel err %.3g", e);
    frt_llama_close(m);
    frt_projector_close(proj);
    frt_clip_close(clip);
    frt_config_free(cfg);
    frt_st_close(st);
    frt_st_close(gc);
    frt_st_close(g);
}

/* ---- load failures ------------------------------------------------------------ */

/* A llama-tiny config with some values replaced (NULL keeps llama-tiny's). */
typedef struct cfg_vals {
    const char *hidden, *inter, *layers, *heads, *kv, *vocab, *extra;
} cfg_vals;

static void cfg_json(char *buf, size_t cap, cfg_vals v)
{
    snprintf(buf, cap,
             "{\"vocab_size\": %s, \"hidden_size\": %s, \"intermediate_size\": %s,"
             " \"num_hidden_layers\": %s, \"num_attention_heads\": %s,"
             " \"num_key_value_heads\": %s, \"max_position_embeddings\": 256%s}",
             v.vocab ? v.vocab : "1000", v.hidden ? v.hidden : "64", v.inter ? v.inter : "172",
             v.layers ? v.layers : "2", v.heads ? v.heads : "4", v.kv ? v.kv : "2",
             v.extra ? v.extra : "");
}

static frt_status open_cfg(const char *model, cfg_vals v)
{
    char dir[512], json[1024];
    cfg_json(json, sizeof json, v);
    snprintf(dir, sizeof dir, "%s/%s", MODELS, model);
    frt_config *cfg;
    cr_assert_eq(frt_config_parse(json, strlen(json), "test", &cfg), FRT_OK, "%s", json);
    frt_st *st = open_st(dir);
    frt_llama *m = NULL;
    frt_status s = frt_llama_open(st, cfg, NULL, NULL, &m);
    if (s == FRT_OK)
        frt_llama_close(m);
    else
        cr_expect_null(m);
    frt_st_close(st);
    frt_config_free(cfg);
    return s;
}

Test(llama, load_failures_name_the_problem)
{
    cr_assert_eq(open_cfg("llama-tiny", (cfg_vals){0}), FRT_OK, "%s", frt_last_error());
    struct {
        const char *model;
        cfg_vals v;
        frt_status want;
        const char *needle;
    } cases[] = {
        {"llama-tiny", {.layers = "3"}, FRT_ERR_NOT_FOUND, "model.layers.2.input_layernorm.weight"},
        {"llama-tiny", {.inter = "100"}, FRT_ERR_FORMAT, "model.layers.0.mlp.gate_proj.weight"},
        {"llama-tiny", {.vocab = "999"}, FRT_ERR_FORMAT, "model.embed_tokens.weight"},
        {"llama-tiny", {.hidden = "-64"}, FRT_ERR_FORMAT, "hidden_size"},
        {"llama-tiny", {.inter = "0"}, FRT_ERR_FORMAT, "intermediate_size"},
        {"llama-tiny", {.heads = "6"}, FRT_ERR_FORMAT, "num_attention_heads"},
        {"llama-tiny", {.kv = "3"}, FRT_ERR_FORMAT, "num_key_value_heads"},
        {"llama-tiny", {.kv = "0"}, FRT_ERR_FORMAT, "num_key_value_heads"},
        {"llama-tiny", {.extra = ", \"rms_norm_eps\": -1"}, FRT_ERR_FORMAT, "rms_norm_eps"},
        {"llama-tiny", {.extra = ", \"hidden_act\": \"gelu\""}, FRT_ERR_UNSUPPORTED, "gelu"},
        {"llama-tiny",
         {.extra = ", \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4}"},
         FRT_ERR_UNSUPPORTED,
         "yarn"},
        {"llama-tiny",
         {.extra = ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 0}"},
         FRT_ERR_FORMAT,
         "factor"},
        {"llama-tiny", {.extra = ", \"head_dim\": 15"}, FRT_ERR_FORMAT, "head_dim"},
        /* no lm_head.weight and embeddings not tied */
        {"llama-tiny-sharded", {.kv = "4"}, FRT_ERR_NOT_FOUND, "lm_head.weight"},
        {"clip-tiny", {0}, FRT_ERR_NOT_FOUND, "embed_tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        frt_status s = open_cfg(cases[i].model, cases[i].v);
        cr_expect_eq(s, cases[i].want, "case %zu: %s (%s)", i, frt_status_name(s),
                     frt_last_error());
        cr_expect(strstr(frt_last_error(), cases[i].needle), "case %zu: \"%s\" lacks \"%s\"", i,
                  frt_last_error(), cases[i].needle);
    }
}

/* ---- tools/convert: a PyTorch .bin checkpoint becomes one the C loader reads -------- */

static const char make_bin[] =
    "import json, os, shutil, sys, torch\n"
    "sys.path.insert(0, sys.argv[1] + '/tools')\n"
    "from reference import safetensors_io as st\n"
    "src, out = sys.argv[2], sys.argv[3]\n"
    "w = st.load_checkpoint(src)\n"
    "w = {n: t.half() if n.endswith('proj.weight') or 'embed' in n else t for n, t in w.items()}\n"
    "names = sorted(w)\n"
    "os.makedirs(out)\n"
    "wm = {}\n"
    "for i, part in enumerate((names[::2], names[1::2])):\n"
    "    fn = 'pytorch_model-%05d-of-00002.bin' % (i + 1)\n"
    "    torch.save({n: w[n] for n in part}, os.path.join(out, fn))\n"
    "    wm.update({n: fn for n in part})\n"
    "json.dump({'metadata': {}, 'weight_map': wm},\n"
    "          open(os.path.join(out, 'pytorch_model.bin.index.json'), 'w'))\n"
    "shutil.copy(os.path.join(src, 'config.json'), out)\n"
    "torch.save({'x': torch.zeros(2), 'step': 3}, os.path.join(out, '..', 'bad.bin'))\n";

static int run(const char *cmd)
{
    int rc = system(cmd);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

Test(llama, converted_bin_checkpoint_loads)
{
    if (run("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
        cr_skip_test("/usr/bin/python3 with torch is not available");
    char *dir = tu_tmpdir();
    char *script = tu_write_file(dir, "make_bin.py", make_bin, sizeof make_bin - 1);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s %s/llama-tiny %s/bin", script, FRT_SOURCE_DIR,
             MODELS, dir);
    cr_assert_eq(run(cmd), 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tools/convert %s/bin %s/st >/dev/null",
             FRT_SOURCE_DIR, dir, dir);
    cr_assert_eq(run(cmd), 0, "%s", cmd);
    /* names, dtypes and shapes kept: the matrices and embeddings F16, the norms F32 */
    char path[1024];
    snprintf(path, sizeof path, "%s/st", dir);
    frt_st *st = open_st(path);
    frt_tensor t;
    cr_assert_eq(frt_st_get(st, "model.layers.1.mlp.down_proj.weight", &t), FRT_OK);
    cr_expect_eq(t.dtype, FRT_F16);
    cr_expect_eq(t.shape[0], 64);
    cr_expect_eq(t.shape[1], 172);
    cr_assert_eq(frt_st_get(st, "model.norm.weight", &t), FRT_OK);
    cr_expect_eq(t.dtype, FRT_F32);
    frt_st_close(st);
    /* the model runs from it: the llama-tiny goldens up to the f16 rounding of the weights
     * (2^-11 relative), the greedy path exactly where its margins exceed that error */
    frt_llama *m = NULL;
    cr_assert_eq(frt_llama_open_dir(path, NULL, &m), FRT_OK, "%s", frt_last_error());
    frt_st *g = open_st(GOLDENS "/llama-tiny.safetensors");
    for (int i = 0; i < TU_N_ISAS; i++) {
        if (!tu_use_isa(i)) continue;
        char what[64];
        snprintf(what, sizeof what, "converted llama-tiny, F16 weights, %s", tu_isa_names[i]);
        double e = check_golden_run(m, g, golden(g, "input_ids", 12), NULL, 12, what, 5e-3);
        cr_expect_gt(e, 1e-5, "F16 weights must show their rounding");
    }
    frt_st_close(g);
    frt_llama_close(m);
    /* a pickle holding anything but tensors is refused */
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tools/convert %s/bad.bin %s/bad 2>/dev/null",
             FRT_SOURCE_DIR, dir, dir);
    cr_expect_eq(run(cmd), 1, "a non-tensor entry must be refused");
    tu_rmtree(dir);
    free(script);
    free(dir);
}

/* ---- allocation failures: every open path fails cleanly (no leak, no crash) ---------- */

typedef frt_status (*open_fn)(void **out);
static frt_status open_llama(void **out)
{
    return frt_llama_open_dir(MODELS "/llama-tiny-sharded",
                              &(frt_llama_options){.kv_dtype = FRT_F16}, (frt_llama **)out);
}
static frt_status open_clip(void **out)
{
    return frt_clip_open_dir(MODELS "/vstream-tiny", NULL, (frt_clip **)out);
}
static void close_llama(void *p)
{
    frt_llama_close(p);
}
static void close_clip(void *p)
{
    frt_clip_close(p);
}

Test(llama, allocation_failures_on_open)
{
    struct {
        open_fn open;
        void (*close)(void *);
        const char *what;
    } cases[] = {{open_llama, close_llama, "llama"}, {open_clip, close_clip, "clip"}};
    for (size_t c = 0; c < 2; c++) {
        int n;
        for (n = 1; n < 1000; n++) {
            void *obj = NULL;
            frt_alloc_fail_after(n);
            frt_status s = cases[c].open(&obj);
            frt_alloc_fail_after(0);
            if (s == FRT_OK) {
                cases[c].close(obj);
                break;
            }
            cr_assert_eq(s, FRT_ERR_NOMEM, "%s, allocation %d: %s (%s)", cases[c].what, n,
                         frt_status_name(s), frt_last_error());
            cr_assert_null(obj);
        }
        cr_log_info("%s: open survives a failure at each of its %d allocations", cases[c].what,
                    n - 1);
        cr_expect_gt(n, 5, "%s: the injection never hit", cases[c].what);
    }
    /* a failure inside a forward pass leaves the position; the next call works */
    frt_llama *m = open_model("llama-tiny", NULL);
    int32_t ids[3] = {1, 5, 9};
    float logits[V];
    frt_alloc_fail_after(1);
    frt_status s = frt_llama_prefill(m, ids, NULL, 3, logits, 1);
    frt_alloc_fail_after(0);
    cr_expect(s == FRT_OK || s == FRT_ERR_NOMEM);
    cr_expect_eq(frt_llama_pos(m), s == FRT_OK ? 3 : 0);
    frt_llama_reset(m);
    cr_expect_eq(frt_llama_prefill(m, ids, NULL, 3, logits, 1), FRT_OK);
    frt_llama_close(m);
}
