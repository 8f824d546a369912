/* frt-bench llm: the Llama decoder of Flash-VStream-7b (vicuna-7b: 32
 * layers, hidden 4096, 32 heads and KV heads, FFN 11008, vocab 32000) on
 * random weights in memory, bf16 by default (13.5 GB).
 *
 * Prefill: one call of --prefill tokens (713: 681 visual + 32 text in the
 * real use) in a single step, after a short warm-up prefill; FLOPs = 2 x
 * layer matrix parameters x tokens + causal attention (2 n^2 d per head:
 * QK^T and PV over half the square) + lm_head for the last row; ratio
 * against the bf16 dot-product peak for bf16 weights (FMA peak for f32).
 * Decode: --decode greedy tokens after the prefill, one call each; figure
 * and ratio from the median token time (a token another process slows down
 * says nothing about the code; mean and best are in the row too); ratio =
 * the DRAM bound (weight bytes read per token / the read bandwidth measured
 * in this run) over that time. The KV cache read per
 * token is reported beside it, not counted in the bound. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bench.h"
#include "config.h"
#include "llama.h"
#include "threadpool.h"

typedef struct {
    bool json, quick;
    frt_dtype dtype, kv;
    int64_t layers, prefill, decode;
} llm_opts;

typedef struct {
    int64_t vocab, hidden, inter, layers, heads, kv_heads, max_pos;
} llm_dims;

static const llm_dims vicuna_7b = {32000, 4096, 11008, 32, 32, 32, 4096};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: frt-bench llm [--json] [--config vicuna-7b] [--dtype bf16|f16|f32] [--quick]\n"
            "                     [--layers N] [--prefill N] [--decode N] [--kv f16|f32]\n"
            "  Llama-2-7B decoder (vicuna-7b) on random weights in memory: prefill of\n"
            "  --prefill tokens in one step (default 713) vs the bf16 dot-product peak,\n"
            "  then --decode greedy tokens (default 16) vs the DRAM bandwidth bound.\n"
            "  --dtype         weights (default bf16; f32 needs 27 GB)\n"
            "  --kv            KV cache precision (default: f16 with bf16 or f16 weights,\n"
            "                  as a 16-bit Hugging Face model keeps its cache; f32 with\n"
            "                  f32 weights)\n"
            "  --layers N      run N of the 32 layers (same widths; named in the rows)\n"
            "  --quick         --layers 2 --prefill 128 --decode 8\n"
            "  Threads: FRT_THREADS. The full run needs ~15 GB of memory.\n");
}

static const char *dtype_label(frt_dtype t)
{
    return t == FRT_F32 ? "f32" : t == FRT_F16 ? "f16" : "bf16";
}

static bool add_model(bench_ckpt *c, frt_dtype dt, const llm_dims *v)
{
    const int64_t D = v->hidden, I = v->inter, V = v->vocab;
    const int64_t KD = v->kv_heads * (D / v->heads);
    /* Linear weights uniform with variance 1 / fan_in (unit gain), norms 1,
     * embeddings of the scale a real model's have (|x| ~ 0.02). */
    const float gd = sqrtf(3.0f / (float)D), gi = sqrtf(3.0f / (float)I);
    bool ok =
        bench_ckpt_add(c, dt, 2, (int64_t[]){V, D}, 0.03f, false, "model.embed_tokens.weight") &&
        bench_ckpt_add(c, dt, 1, &D, 1, true, "model.norm.weight") &&
        bench_ckpt_add(c, dt, 2, (int64_t[]){V, D}, gd, false, "lm_head.weight");
    for (int64_t i = 0; ok && i < v->layers; i++) {
        const long long l = (long long)i;
        ok = bench_ckpt_add(c, dt, 1, &D, 1, true, "model.layers.%lld.input_layernorm.weight", l) &&
             bench_ckpt_add(c, dt, 1, &D, 1, true,
                            "model.layers.%lld.post_attention_layernorm.weight", l) &&
             bench_ckpt_add(c, dt, 2, (int64_t[]){D, D}, gd, false,
                            "model.layers.%lld.self_attn.q_proj.weight", l) &&
             bench_ckpt_add(c, dt, 2, (int64_t[]){KD, D}, gd, false,
                            "model.layers.%lld.self_attn.k_proj.weight", l) &&
             bench_ckpt_add(c, dt, 2, (int64_t[]){KD, D}, gd, false,
                            "model.layers.%lld.self_attn.v_proj.weight", l) &&
             bench_ckpt_add(c, dt, 2, (int64_t[]){D, D}, gd, false,
                            "model.layers.%lld.self_attn.o_proj.weight", l) &&
             bench_ckpt_add(c, dt, 2, (int64_t[]){I, D}, gd, false,
                            "model.layers.%lld.mlp.gate_proj.weight", l) &&
             bench_ckpt_add(c, dt, 2, (int64_t[]){I, D}, gd, false,
                            "model.layers.%lld.mlp.up_proj.weight", l) &&
             bench_ckpt_add(c, dt, 2, (int64_t[]){D, I}, gi, false,
                            "model.layers.%lld.mlp.down_proj.weight", l);
    }
    return ok;
}

/* "bf16" (when allowed), "f16" or "f32" */
static bool parse_dtype(const char *d, bool bf16, frt_dtype *out)
{
    if (bf16 && !strcmp(d, "bf16"))
        *out = FRT_BF16;
    else if (!strcmp(d, "f16"))
        *out = FRT_F16;
    else if (!strcmp(d, "f32"))
        *out = FRT_F32;
    else
        return false;
    return true;
}

static bool parse_args(int argc, char **argv, llm_opts *o, int *rc)
{
    *o = (llm_opts){.dtype = FRT_BF16, .kv = FRT_F32, .layers = 0, .prefill = 0, .decode = 0};
    bool kv_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
        } else if (!strcmp(a, "--config") && i + 1 < argc) {
            if (strcmp(argv[++i], "vicuna-7b") != 0) {
                fprintf(stderr, "frt-bench llm: unknown config '%s' (vicuna-7b)\n", argv[i]);
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            if (!parse_dtype(argv[++i], true, &o->dtype)) {
                fprintf(stderr, "frt-bench llm: --dtype takes bf16, f16 or f32\n");
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--kv") && i + 1 < argc) {
            if (!parse_dtype(argv[++i], false, &o->kv)) {
                fprintf(stderr, "frt-bench llm: --kv takes f16 or f32\n");
                *rc = 2;
                return false;
            }
            kv_given = true;
        } else if ((!strcmp(a, "--layers") || !strcmp(a, "--prefill") || !strcmp(a, "--decode")) &&
                   i + 1 < argc) {
            long long n = atoll(argv[++i]);
            if (n < 1 || n > 4096) {
                fprintf(stderr, "frt-bench llm: %s takes 1..4096\n", a);
                *rc = 2;
                return false;
            }
            *(a[2] == 'l' ? &o->layers : a[2] == 'p' ? &o->prefill : &o->decode) = n;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            *rc = 0;
            return false;
        } else {
            fprintf(stderr, "frt-bench llm: unknown option '%s'\n", a);
            usage(stderr);
            *rc = 2;
            return false;
        }
    }
    if (!o->layers) o->layers = o->quick ? 2 : vicuna_7b.layers;
    if (!o->prefill) o->prefill = o->quick ? 128 : 713;
    if (!o->decode) o->decode = o->quick ? 8 : 16;
    if (!kv_given) o->kv = o->dtype == FRT_F32 ? FRT_F32 : FRT_F16;
    if (o->layers > vicuna_7b.layers) {
        fprintf(stderr, "frt-bench llm: vicuna-7b has %lld layers\n", (long long)vicuna_7b.layers);
        *rc = 2;
        return false;
    }
    return true;
}

typedef struct {
    double prefill_s, prefill_cpu, decode_s, decode_cpu, decode_best_s, decode_median_s,
        weight_bytes, rss;
    bool ok;
} llm_result;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int32_t argmax(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return (int32_t)best;
}

static llm_result run_model(const llm_opts *o, const llm_dims *v)
{
    llm_result r = {0};
    bench_ckpt *c = bench_ckpt_new();
    frt_st *st = NULL;
    frt_config *cfg = NULL;
    frt_llama *m = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    double *tok_s = malloc((size_t)o->decode * sizeof *tok_s);
    char json[512];
    snprintf(json, sizeof json,
             "{\"vocab_size\": %lld, \"hidden_size\": %lld, \"intermediate_size\": %lld,"
             " \"num_hidden_layers\": %lld, \"num_attention_heads\": %lld,"
             " \"num_key_value_heads\": %lld, \"max_position_embeddings\": %lld,"
             " \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0}",
             (long long)v->vocab, (long long)v->hidden, (long long)v->inter, (long long)v->layers,
             (long long)v->heads, (long long)v->kv_heads, (long long)v->max_pos);
    double t0 = bench_now();
    frt_status s = c && add_model(c, o->dtype, v) ? FRT_OK : FRT_ERR_NOMEM;
    if (s == FRT_OK) s = bench_ckpt_finish(c, "random vicuna-7b", &st);
    if (s == FRT_OK) {
        fprintf(stderr, "frt-bench llm: %s weights %.2f GB filled in %.1f s\n",
                dtype_label(o->dtype), bench_ckpt_bytes(c) * 1e-9, bench_now() - t0);
        s = frt_config_parse(json, strlen(json), "vicuna-7b", &cfg);
    }
    const int64_t warm = 16;
    frt_llama_options lo = {.max_ctx = warm + o->prefill + o->decode + 1, .max_batch = o->prefill,
                            .kv_dtype = o->kv};
    if (s == FRT_OK) s = frt_llama_open(st, cfg, &lo, NULL, &m);
    if (s == FRT_OK) {
        ids = malloc((size_t)o->prefill * sizeof *ids);
        logits = frt_alloc((size_t)v->vocab * sizeof *logits);
        if (!ids || !logits || !tok_s) s = FRT_ERR_NOMEM;
        for (int64_t i = 0; ids && i < o->prefill; i++)
            ids[i] = (int32_t)((i * 7919 + 1) % v->vocab);
    }
    /* Warm-up: code paths, thread pool and every weight page once. */
    if (s == FRT_OK) s = frt_llama_prefill(m, ids, NULL, warm, logits, 1);
    if (s == FRT_OK) s = frt_llama_rewind(m, 0);
    if (s == FRT_OK) {
        fprintf(stderr, "frt-bench llm: prefill of %lld tokens...\n", (long long)o->prefill);
        double p0 = bench_now(), c0 = bench_cpu_seconds();
        s = frt_llama_prefill(m, ids, NULL, o->prefill, logits, 1);
        r.prefill_s = bench_now() - p0;
        r.prefill_cpu = bench_cpu_seconds() - c0;
        fprintf(stderr, "frt-bench llm: prefill %.2f s\n", r.prefill_s);
    }
    for (int64_t i = 0; s == FRT_OK && i < o->decode; i++) {
        int32_t next = argmax(logits, v->vocab);
        double d0 = bench_now(), c0 = bench_cpu_seconds();
        s = frt_llama_decode(m, next, logits);
        double dt = bench_now() - d0;
        r.decode_cpu += bench_cpu_seconds() - c0;
        r.decode_s += dt;
        tok_s[i] = dt;
    }
    if (s == FRT_OK) {
        fprintf(stderr, "frt-bench llm: %lld decode tokens in %.2f s\n", (long long)o->decode,
                r.decode_s);
        for (int64_t i = 0; i < v->vocab; i++)
            if (!isfinite(logits[i])) {
                fprintf(stderr, "frt-bench llm: non-finite logits\n");
                s = FRT_ERR_INTERNAL;
                break;
            }
    }
    if (s == FRT_OK) {
        qsort(tok_s, (size_t)o->decode, sizeof *tok_s, cmp_double);
        r.decode_best_s = tok_s[0];
        r.decode_median_s = tok_s[o->decode / 2];
        r.ok = true;
        r.rss = bench_peak_rss_mb();
    } else {
        fprintf(stderr, "frt-bench llm: %s\n", frt_last_error());
    }
    free(ids);
    free(tok_s);
    frt_free(logits);
    frt_llama_close(m);
    frt_config_free(cfg);
    bench_ckpt_free(c);
    return r;
}

int bench_llm_main(int argc, char **argv)
{
    llm_opts o;
    int rc = 0;
    if (!parse_args(argc, argv, &o, &rc)) return rc;
    llm_dims v = vicuna_7b;
    v.layers = o.layers;
    char scope[96];
    if (v.layers == vicuna_7b.layers)
        snprintf(scope, sizeof scope, "vicuna-7b %s", dtype_label(o.dtype));
    else
        snprintf(scope, sizeof scope, "vicuna-7b %s (%lld of 32 layers)", dtype_label(o.dtype),
                 (long long)v.layers);

    bench_machine m, m2;
    bench_measure_machine(&m);
    llm_result r = run_model(&o, &v);
    bench_measure_machine(&m2);
    m.fma_peak_gflops = fmax(m.fma_peak_gflops, m2.fma_peak_gflops);
    m.bf16_peak_gflops = fmax(m.bf16_peak_gflops, m2.bf16_peak_gflops);
    m.dram_gbps = fmax(m.dram_gbps, m2.dram_gbps);
    if (!r.ok) return 1;

    const double D = (double)v.hidden, I = (double)v.inter, V = (double)v.vocab;
    const double d = D / (double)v.heads, KD = (double)v.kv_heads * d;
    const double layer_params = 2 * D * D + 2 * KD * D + 3 * D * I;
    const double esize = (double)frt_dtype_size(o.dtype);
    const double n = (double)o.prefill, L = (double)v.layers;
    /* causal: query i sees i + 1 keys; QK^T and PV are 2 FLOPs per MAC each */
    const double attn = L * (double)v.heads * 4.0 * d * (n * (n + 1) / 2);
    const double prefill_flops = 2 * L * layer_params * n + attn + 2 * V * D;
    /* per decode token: every layer matrix, lm_head, one embedding row */
    const double wbytes = (L * layer_params + V * D + D) * esize;
    const double ctx = n + (double)o.decode / 2; /* mean cache length while decoding */
    const double kv_bytes = L * 2 * ctx * KD * (double)frt_dtype_size(o.kv);

    bench_out *out = bench_out_begin("llm", &m, o.json);
    const bool f32 = o.dtype == FRT_F32;
    const double peak = f32 ? m.fma_peak_gflops : m.bf16_peak_gflops;
    double gflops = prefill_flops / r.prefill_s * 1e-9;
    char name[160], extra[512];
    snprintf(name, sizeof name, "prefill %s %lld tokens", scope, (long long)o.prefill);
    snprintf(extra, sizeof extra,
             "\"vs\": \"%s\", \"gflops\": %.2f, \"gflop\": %.1f, \"attn_gflop\": %.1f,"
             " \"fma_peak_ratio\": %.3f, \"layers\": %lld, \"cpu_share\": %.2f",
             f32 ? "fma_peak" : "bf16_peak", gflops, prefill_flops * 1e-9, attn * 1e-9,
             gflops / m.fma_peak_gflops, (long long)v.layers,
             r.prefill_cpu / (r.prefill_s * m.threads));
    bench_out_row(out, name, "tokens_per_s", n / r.prefill_s, r.prefill_s * 1e3,
                  peak > 0 ? gflops / peak : 0, r.rss, extra);

    double per_tok = r.decode_median_s;
    double bound = wbytes / (m.dram_gbps * 1e9);
    snprintf(name, sizeof name, "decode %s after %lld tokens", scope, (long long)o.prefill);
    snprintf(extra, sizeof extra,
             "\"vs\": \"dram\", \"weight_gb_per_token\": %.3f, \"gbps\": %.2f,"
             " \"bound_ms\": %.2f, \"kv_gb_per_token\": %.3f, \"best_token_ms\": %.2f,"
             " \"mean_token_ms\": %.2f, \"ratio_with_kv\": %.3f, \"tokens\": %lld,"
             " \"kv\": \"%s\", \"cpu_share\": %.2f",
             wbytes * 1e-9, wbytes / per_tok * 1e-9, bound * 1e3, kv_bytes * 1e-9,
             r.decode_best_s * 1e3, r.decode_s / (double)o.decode * 1e3,
             (wbytes + kv_bytes) / (m.dram_gbps * 1e9) / per_tok, (long long)o.decode,
             dtype_label(o.kv), r.decode_cpu / (r.decode_s * m.threads));
    bench_out_row(out, name, "tokens_per_s", 1.0 / per_tok, per_tok * 1e3, bound / per_tok, r.rss,
                  extra);
    bench_out_end(out);
    return 0;
}
