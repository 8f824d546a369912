/* frt-bench vit: the CLIP vision tower of LLaVA / Flash-VStream
 * (clip-vit-large-patch14: 224 px, patch 14, width 1024, MLP 4096, 16 heads,
 * 24 layers of which select layer -2 runs 23) on random weights in memory,
 * one image per call.
 *
 * Ratio of a model row: GEMM FLOPs (patch embedding and the six Linear of
 * every layer, 2 per multiply-add) over the whole frame's time, against the
 * f32 FMA peak for f32 weights and the bf16 dot-product peak for bf16
 * weights; attention, norms and glue count as time, not FLOPs, so the ratio
 * is what the GEMMs get out of the frame. The PyTorch row runs the
 * repository's reference (tools/reference/clip.py through
 * tools/bench/torch_vit.py) with f32 weights on the same thread count in a
 * subprocess of this run; its ratio is PyTorch's time over ours (f32).
 * Each row also gives cpu_share (CPU seconds over wall x threads) and the
 * PyTorch row the CPU-time ratio: on a shared machine the two runs may get
 * different shares of it. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "bench.h"
#include "clip.h"
#include "config.h"
#include "threadpool.h"

#define TORCH_PYTHON "/usr/bin/python3"

typedef struct {
    bool json, quick, torch;
    int reps;
    int layers; /* tower layers (the select layer runs one fewer) */
    bool f32, bf16;
    const char *script;
} vit_opts;

typedef struct {
    int64_t image, patch, width, inter, heads, layers;
} vit_dims;

static const vit_dims clip_l14 = {224, 14, 1024, 4096, 16, 24};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: frt-bench vit [--json] [--config clip-vit-large-patch14] [--dtype f32|bf16|all]\n"
        "                     [--quick] [--reps N] [--no-torch] [--torch-script PATH]\n"
        "  CLIP ViT-L/14 at 224 px (select layer -2: 23 of 24 layers) on random weights\n"
        "  in memory; one image per frame; best of --reps frames after one warm-up.\n"
        "  --dtype         weights: f32, bf16 or all (default all)\n"
        "  --quick         a 4-layer tower (3 layers run), same widths\n"
        "  --reps N        timed frames (default 5; 2 with --quick)\n"
        "  --no-torch      skip the PyTorch reference row\n"
        "  --torch-script  tools/bench/torch_vit.py (default: found beside the binary's\n"
        "                  source tree); run with " TORCH_PYTHON "\n"
        "  Threads: FRT_THREADS (PyTorch is given the same number).\n");
}

static double gemm_flops(const vit_dims *v, int64_t run_layers)
{
    const double P = (double)((v->image / v->patch) * (v->image / v->patch)), T = P + 1;
    const double D = (double)v->width, I = (double)v->inter;
    return 2.0 * P * D * 3.0 * (double)(v->patch * v->patch) +
           (double)run_layers * 2.0 * T * (4.0 * D * D + 2.0 * D * I);
}

static double attn_flops(const vit_dims *v, int64_t run_layers)
{
    const double T = (double)((v->image / v->patch) * (v->image / v->patch) + 1);
    return (double)run_layers * 4.0 * T * T * (double)v->width;
}

/* Uniform weights with roughly unit gain per Linear (variance 1 / fan_in),
 * unit LayerNorm scales, zero biases: activations stay finite and
 * ordinary through every layer. */
static bool add_linear(bench_ckpt *c, frt_dtype dt, const char *p, const char *name, int64_t out,
                       int64_t in)
{
    return bench_ckpt_add(c, dt, 2, (int64_t[]){out, in}, sqrtf(3.0f / (float)in), false,
                          "%s%s.weight", p, name) &&
           bench_ckpt_add(c, FRT_F32, 1, &out, 0, true, "%s%s.bias", p, name);
}

static bool add_norm(bench_ckpt *c, const char *p, const char *name, int64_t d)
{
    return bench_ckpt_add(c, FRT_F32, 1, &d, 1, true, "%s%s.weight", p, name) &&
           bench_ckpt_add(c, FRT_F32, 1, &d, 0, true, "%s%s.bias", p, name);
}

static bool add_tower(bench_ckpt *c, frt_dtype dt, const vit_dims *v, int64_t run_layers)
{
    const int64_t D = v->width, g = v->image / v->patch, T = g * g + 1;
    const char *pre = "vision_model.";
    bool ok = bench_ckpt_add(c, dt, 4, (int64_t[]){D, 3, v->patch, v->patch},
                             sqrtf(3.0f / (float)(3 * v->patch * v->patch)), false,
                             "%sembeddings.patch_embedding.weight", pre) &&
              bench_ckpt_add(c, FRT_F32, 1, &D, 1, false, "%sembeddings.class_embedding", pre) &&
              bench_ckpt_add(c, FRT_F32, 2, (int64_t[]){T, D}, 1, false,
                             "%sembeddings.position_embedding.weight", pre) &&
              add_norm(c, pre, "pre_layrnorm", D);
    for (int64_t i = 0; ok && i < run_layers; i++) {
        char p[128];
        snprintf(p, sizeof p, "%sencoder.layers.%lld.", pre, (long long)i);
        ok = add_norm(c, p, "layer_norm1", D) && add_norm(c, p, "layer_norm2", D) &&
             add_linear(c, dt, p, "self_attn.q_proj", D, D) &&
             add_linear(c, dt, p, "self_attn.k_proj", D, D) &&
             add_linear(c, dt, p, "self_attn.v_proj", D, D) &&
             add_linear(c, dt, p, "self_attn.out_proj", D, D) &&
             add_linear(c, dt, p, "mlp.fc1", v->inter, D) &&
             add_linear(c, dt, p, "mlp.fc2", D, v->inter);
    }
    return ok;
}

typedef struct {
    double sec, cpu_sec, cpu_share, rss, weight_mb;
    bool ok;
} vit_result;

/* Opens the tower on a fresh random checkpoint of dtype dt and times
 * frames. Progress goes to stderr. */
static vit_result run_model(const vit_opts *o, const vit_dims *v, frt_dtype dt)
{
    vit_result r = {0};
    const int64_t run_layers = v->layers - 1;
    bench_reset_peak_rss();
    bench_ckpt *c = bench_ckpt_new();
    frt_st *st = NULL;
    frt_config *cfg = NULL;
    frt_clip *clip = NULL;
    float *px = NULL, *feat = NULL;
    char json[512];
    snprintf(json, sizeof json,
             "{\"image_size\": %lld, \"patch_size\": %lld, \"hidden_size\": %lld,"
             " \"intermediate_size\": %lld, \"num_hidden_layers\": %lld,"
             " \"num_attention_heads\": %lld, \"hidden_act\": \"quick_gelu\","
             " \"layer_norm_eps\": 1e-5}",
             (long long)v->image, (long long)v->patch, (long long)v->width, (long long)v->inter,
             (long long)v->layers, (long long)v->heads);
    double t0 = bench_now();
    frt_status s = c && add_tower(c, dt, v, run_layers) ? FRT_OK : FRT_ERR_NOMEM;
    if (s == FRT_OK) s = bench_ckpt_finish(c, "random clip", &st);
    if (s == FRT_OK) {
        r.weight_mb = bench_ckpt_bytes(c) / (1 << 20);
        fprintf(stderr, "frt-bench vit: %s weights %.0f MiB filled in %.1f s\n",
                dt == FRT_F32 ? "f32" : "bf16", r.weight_mb, bench_now() - t0);
        s = frt_config_parse(json, strlen(json), "clip-vit-large-patch14", &cfg);
    }
    frt_clip_options co = frt_clip_options_default();
    co.select_layer = -2;
    co.keep_cls = 0;
    if (s == FRT_OK) s = frt_clip_open(st, cfg, &co, NULL, &clip);
    if (s == FRT_OK) {
        const frt_clip_info *ci = frt_clip_get_info(clip);
        size_t npx = (size_t)(3 * v->image * v->image);
        px = frt_alloc(npx * sizeof(float));
        feat = frt_alloc((size_t)(ci->n_out * ci->width) * sizeof(float));
        if (!px || !feat) s = FRT_ERR_NOMEM;
        for (size_t i = 0; px && i < npx; i++)
            px[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1;
    }
    for (int rep = 0; s == FRT_OK && rep <= o->reps; rep++) {
        double f0 = bench_now(), c0 = bench_cpu_seconds();
        s = frt_clip_encode(clip, px, feat);
        double dt_s = bench_now() - f0, cpu = bench_cpu_seconds() - c0;
        fprintf(stderr, "frt-bench vit: %s frame %d: %.3f s%s\n", dt == FRT_F32 ? "f32" : "bf16",
                rep, dt_s, rep ? "" : " (warm-up)");
        if (rep > 0 && (r.sec == 0 || dt_s < r.sec)) {
            r.sec = dt_s;
            r.cpu_sec = cpu;
            r.cpu_share = cpu / (dt_s * frt_pool_size(frt_pool_default()));
        }
    }
    if (s == FRT_OK) {
        const frt_clip_info *ci = frt_clip_get_info(clip);
        size_t n = (size_t)(ci->n_out * ci->width);
        for (size_t i = 0; i < n; i++)
            if (!isfinite(feat[i])) {
                fprintf(stderr, "frt-bench vit: non-finite features\n");
                r.sec = 0;
                break;
            }
        r.ok = r.sec > 0;
        r.rss = bench_peak_rss_mb();
    } else {
        fprintf(stderr, "frt-bench vit: %s\n", frt_last_error());
    }
    frt_free(px);
    frt_free(feat);
    frt_clip_close(clip);
    frt_config_free(cfg);
    bench_ckpt_free(c);
    return r;
}

/* tools/bench/torch_vit.py in the source tree the binary was built from:
 * walk up from the executable's directory. */
static bool find_script(char *out, size_t cap)
{
    char exe[PATH_MAX - 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    for (int up = 0; up < 5; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) return false;
        *slash = '\0';
        snprintf(out, cap, "%s/tools/bench/torch_vit.py", exe);
        if (access(out, R_OK) == 0) return true;
    }
    return false;
}

/* Seconds per frame of the PyTorch reference, or 0 (reason in note);
 * *cpu_sec the process CPU seconds of that frame. */
static double run_torch(const vit_opts *o, const vit_dims *v, int threads, char *note, size_t cap,
                        double *cpu_sec)
{
    char script[PATH_MAX];
    if (o->script)
        snprintf(script, sizeof script, "%s", o->script);
    else if (!find_script(script, sizeof script)) {
        snprintf(note, cap, "tools/bench/torch_vit.py not found (use --torch-script)");
        return 0;
    }
    if (access(TORCH_PYTHON, X_OK) != 0) {
        snprintf(note, cap, "%s not found", TORCH_PYTHON);
        return 0;
    }
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof cmd,
             "%s '%s' --image-size %lld --patch-size %lld --width %lld --intermediate %lld"
             " --heads %lld --layers %lld --threads %d --reps %d",
             TORCH_PYTHON, script, (long long)v->image, (long long)v->patch, (long long)v->width,
             (long long)v->inter, (long long)v->heads, (long long)v->layers, threads,
             o->reps < 2 ? 2 : o->reps);
    fprintf(stderr, "frt-bench vit: running the PyTorch reference: %s\n", cmd);
    FILE *p = popen(cmd, "r");
    if (!p) {
        snprintf(note, cap, "could not start %s", TORCH_PYTHON);
        return 0;
    }
    char line[1024], last[1024] = "";
    while (fgets(line, sizeof line, p)) snprintf(last, sizeof last, "%s", line);
    int rc = pclose(p);
    const char *k = strstr(last, "\"sec\":");
    double sec = 0;
    if (rc != 0 || !k || sscanf(k + 6, "%lf", &sec) != 1 || !(sec > 0)) {
        snprintf(note, cap, "PyTorch reference failed (exit %d; no torch in %s?)", rc,
                 TORCH_PYTHON);
        return 0;
    }
    const char *kc = strstr(last, "\"cpu_sec\":");
    if (!kc || sscanf(kc + 10, "%lf", cpu_sec) != 1) *cpu_sec = 0;
    const char *ver = strstr(last, "\"torch\": \"");
    if (ver) {
        ver += 10;
        const char *end = strchr(ver, '"');
        snprintf(note, cap, "torch %.*s", end ? (int)(end - ver) : 0, ver);
    }
    return sec;
}

static bool parse_args(int argc, char **argv, vit_opts *o, int *rc)
{
    *o = (vit_opts){.torch = true, .reps = 0, .f32 = true, .bf16 = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
        } else if (!strcmp(a, "--no-torch")) {
            o->torch = false;
        } else if (!strcmp(a, "--torch-script") && i + 1 < argc) {
            o->script = argv[++i];
        } else if (!strcmp(a, "--config") && i + 1 < argc) {
            if (strcmp(argv[++i], "clip-vit-large-patch14") != 0) {
                fprintf(stderr, "frt-bench vit: unknown config '%s' (clip-vit-large-patch14)\n",
                        argv[i]);
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--dtype") && i + 1 < argc) {
            const char *d = argv[++i];
            o->f32 = !strcmp(d, "f32") || !strcmp(d, "all");
            o->bf16 = !strcmp(d, "bf16") || !strcmp(d, "all");
            if (!o->f32 && !o->bf16) {
                fprintf(stderr, "frt-bench vit: --dtype takes f32, bf16 or all\n");
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--reps") && i + 1 < argc) {
            o->reps = atoi(argv[++i]);
            if (o->reps < 1) {
                fprintf(stderr, "frt-bench vit: --reps needs a positive count\n");
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            *rc = 0;
            return false;
        } else {
            fprintf(stderr, "frt-bench vit: unknown option '%s'\n", a);
            usage(stderr);
            *rc = 2;
            return false;
        }
    }
    if (!o->reps) o->reps = o->quick ? 2 : 5;
    return true;
}

int bench_vit_main(int argc, char **argv)
{
    vit_opts o;
    int rc = 0;
    if (!parse_args(argc, argv, &o, &rc)) return rc;
    vit_dims v = clip_l14;
    if (o.quick) v.layers = 4;
    const int64_t run_layers = v.layers - 1;
    char scope[64];
    if (o.quick)
        snprintf(scope, sizeof scope, "clip-vit-large-patch14 (%lld of 23 layers)",
                 (long long)run_layers);
    else
        snprintf(scope, sizeof scope, "clip-vit-large-patch14");

    /* The limits are measured before, between and after the models and the
     * largest kept: other load on a shared machine only ever lowers them. */
    bench_machine m, m2;
    bench_measure_machine(&m);
    vit_result f32 = {0}, bf16 = {0};
    if (o.f32) f32 = run_model(&o, &v, FRT_F32);
    bench_measure_machine(&m2);
    m.fma_peak_gflops = fmax(m.fma_peak_gflops, m2.fma_peak_gflops);
    m.bf16_peak_gflops = fmax(m.bf16_peak_gflops, m2.bf16_peak_gflops);
    m.dram_gbps = fmax(m.dram_gbps, m2.dram_gbps);
    if (o.bf16) bf16 = run_model(&o, &v, FRT_BF16);
    double torch_sec = 0, torch_cpu = 0;
    char note[256] = "";
    if (o.torch && o.f32 && f32.ok)
        torch_sec = run_torch(&o, &v, m.threads, note, sizeof note, &torch_cpu);
    else if (o.torch)
        snprintf(note, sizeof note, "needs the f32 row");
    else
        snprintf(note, sizeof note, "--no-torch");
    bench_measure_machine(&m2);
    m.fma_peak_gflops = fmax(m.fma_peak_gflops, m2.fma_peak_gflops);
    m.bf16_peak_gflops = fmax(m.bf16_peak_gflops, m2.bf16_peak_gflops);
    m.dram_gbps = fmax(m.dram_gbps, m2.dram_gbps);

    const double gf = gemm_flops(&v, run_layers), af = attn_flops(&v, run_layers);
    bench_out *out = bench_out_begin("vit", &m, o.json);
    const vit_result *res[2] = {&f32, &bf16};
    for (int i = 0; i < 2; i++) {
        const vit_result *r = res[i];
        if (!r->ok) continue;
        bool is_bf16 = i == 1;
        double peak = is_bf16 ? m.bf16_peak_gflops : m.fma_peak_gflops;
        double gemm_gflops = gf / r->sec * 1e-9;
        char name[128], extra[512];
        snprintf(name, sizeof name, "vit %s %s", is_bf16 ? "bf16" : "f32", scope);
        snprintf(extra, sizeof extra,
                 "\"vs\": \"%s\", \"dtype\": \"%s\", \"layers_run\": %lld, \"gemm_gflop\": %.3f,"
                 " \"gemm_gflops\": %.2f, \"attn_gflop\": %.3f, \"total_gflops\": %.2f,"
                 " \"fma_peak_ratio\": %.3f, \"weights_mb\": %.1f, \"cpu_share\": %.2f",
                 is_bf16 ? "bf16_peak" : "fma_peak", is_bf16 ? "bf16" : "f32",
                 (long long)run_layers, gf * 1e-9, gemm_gflops, af * 1e-9,
                 (gf + af) / r->sec * 1e-9, gemm_gflops / m.fma_peak_gflops, r->weight_mb,
                 r->cpu_share);
        bench_out_row(out, name, "frames_per_s", 1.0 / r->sec, r->sec * 1e3,
                      peak > 0 ? gemm_gflops / peak : 0, r->rss, extra);
    }
    if (o.torch || o.f32) {
        char name[128], extra[512];
        snprintf(name, sizeof name, "vit vs torch f32 %s", scope);
        if (torch_sec > 0 && f32.ok) {
            snprintf(extra, sizeof extra,
                     "\"vs\": \"pytorch reference (tools/reference/clip.py)\", \"torch_ms\": %.2f,"
                     " \"torch_frames_per_s\": %.3f, \"cpu_ms\": %.1f, \"torch_cpu_ms\": %.1f,"
                     " \"cpu_time_ratio\": %.3f, \"note\": \"%s\"",
                     torch_sec * 1e3, 1.0 / torch_sec, f32.cpu_sec * 1e3, torch_cpu * 1e3,
                     torch_cpu > 0 && f32.cpu_sec > 0 ? torch_cpu / f32.cpu_sec : 0, note);
            bench_out_row(out, name, "frames_per_s", 1.0 / f32.sec, f32.sec * 1e3,
                          torch_sec / f32.sec, 0, extra);
        } else {
            fprintf(stderr, "frt-bench vit: PyTorch row skipped: %s\n", note);
            snprintf(extra, sizeof extra, "\"skipped\": true, \"note\": \"%s\"", note);
            bench_out_row(out, name, "frames_per_s", 0, 0, 0, 0, extra);
        }
    }
    bench_out_end(out);
    return (o.f32 && !f32.ok) || (o.bf16 && !bf16.ok) ? 1 : 0;
}
