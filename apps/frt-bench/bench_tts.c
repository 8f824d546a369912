/* frt-bench tts: FlashSpeech synthesis speed at the paper's sizes (hidden
 * 512, 6-layer encoders, 30-layer prosody predictors and refiners, 40-layer
 * LCM WaveNet, codec strides [8, 5, 4, 2] with 512 decoder channels) with
 * random f32 weights built in memory, against the bars: real-time
 * factor <= 0.5 with 2 steps on the machine's threads, the first chunk of a
 * 10-word sentence, and >= 3x the PyTorch reference
 * (tools/reference/flashspeech through tools/bench/torch_tts.py) on the same
 * configuration, thread count and phoneme ids in the same run.
 *
 * The weights are drawn like tools/make_tiny_speech.py's (each Linear/conv
 * with the variance of 1/fan_in, the duration and pitch output biases at
 * ln 4 and ln 180), so the predicted durations, and with them the audio
 * length the real-time factor divides by, are in speech's range (about 4
 * frames of 20 ms per phoneme) on both sides. Values differ between the
 * two sides, so the PyTorch comparison is of real-time factors (seconds of
 * compute per second of audio), with both audio lengths reported. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "bench.h"
#include "frontend.h"
#include "model.h"
#include "threadpool.h"

#define TORCH_PYTHON "/usr/bin/python3"
#define RTF_BAR      0.5
#define TORCH_BAR    3.0

/* The sentence timed: 10 words. */
static const char SENTENCE[] = "The quick brown fox jumps over the lazy dog today.";
/* espeak-ng 1.51 en-us IPA of SENTENCE (espeak-ng -q --ipa -v en-us
 * --sep=_), used when the build has no espeak-ng, so the phoneme count is
 * the same (53 ids with word boundaries and stress marks). */
static const char SENTENCE_IPA[] = "ð_ə k_w_ˈɪ_k b_ɹ_ˈaʊ_n f_ˈɑː_k_s dʒ_ˈʌ_m_p_s ˌoʊ_v_ɚ ð_ə "
                                   "l_ˈeɪ_z_i d_ˈɑː_ɡ t_ə_d_ˈeɪ.";

/* The inventory of tools/make_tiny_speech.py (espeak-ng en-us IPA). */
static const char *const PHONEMES[] = {
    "<pad>", "<unk>", "<sil>", " ",  ",",  ".",  "?",  "!",  ";",  ":",  "ˈ",  "ˌ",  "ː",
    "a",     "b",     "d",     "e",  "f",  "h",  "i",  "j",  "k",  "l",  "m",  "n",  "o",
    "p",     "r",     "s",     "t",  "u",  "v",  "w",  "x",  "z",  "æ",  "ç",  "ð",  "ŋ",
    "ɐ",     "ɑ",     "ɒ",     "ɔ",  "ə",  "ɚ",  "ɛ",  "ɜ",  "ɡ",  "ɪ",  "ɹ",  "ɾ",  "ʃ",
    "ʊ",     "ʌ",     "ʒ",     "ʔ",  "θ",  "ᵻ",  "aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "tʃ", "dʒ",
    "iː",    "uː",    "ɑː",    "ɔː", "ɜː", "ɪə", "eə", "ʊə", "n̩",  "l̩",  "ɐ̃"};
#define N_PHONEMES ((int)(sizeof PHONEMES / sizeof PHONEMES[0]))

/* The sizes that differ between the two configurations; the rest are the
 * reference's defaults (tools/reference/flashspeech/README.md). */
typedef struct {
    const char *name;
    int hidden, heads, enc_layers, ffn_filter, ffn_kernel, queries, pheads, period;
    int dur_layers, dur_filters, dur_kernel, pitch_layers, pitch_filters, pitch_kernel;
    int ref_layers, ref_channels, pitch_bins, wn_layers, wn_channels, wn_kernel, film_period;
    int film_heads, latent, codec_enc, codec_dec, codec_kernel;
} tts_cfg;

static const tts_cfg CFG_BASE = {.name = "flashspeech-base",
                                 .hidden = 512,
                                 .heads = 8,
                                 .enc_layers = 6,
                                 .ffn_filter = 2048,
                                 .ffn_kernel = 9,
                                 .queries = 32,
                                 .pheads = 8,
                                 .period = 3,
                                 .dur_layers = 30,
                                 .dur_filters = 512,
                                 .dur_kernel = 3,
                                 .pitch_layers = 30,
                                 .pitch_filters = 512,
                                 .pitch_kernel = 5,
                                 .ref_layers = 30,
                                 .ref_channels = 512,
                                 .pitch_bins = 512,
                                 .wn_layers = 40,
                                 .wn_channels = 512,
                                 .wn_kernel = 3,
                                 .film_period = 3,
                                 .film_heads = 8,
                                 .latent = 256,
                                 .codec_enc = 32,
                                 .codec_dec = 512,
                                 .codec_kernel = 7};
/* tools/make_tiny_speech.py's TINY */
static const tts_cfg CFG_TINY = {.name = "tiny",
                                 .hidden = 32,
                                 .heads = 2,
                                 .enc_layers = 2,
                                 .ffn_filter = 48,
                                 .ffn_kernel = 9,
                                 .queries = 32,
                                 .pheads = 2,
                                 .period = 3,
                                 .dur_layers = 6,
                                 .dur_filters = 32,
                                 .dur_kernel = 3,
                                 .pitch_layers = 6,
                                 .pitch_filters = 32,
                                 .pitch_kernel = 5,
                                 .ref_layers = 6,
                                 .ref_channels = 32,
                                 .pitch_bins = 512,
                                 .wn_layers = 6,
                                 .wn_channels = 32,
                                 .wn_kernel = 3,
                                 .film_period = 3,
                                 .film_heads = 2,
                                 .latent = 16,
                                 .codec_enc = 4,
                                 .codec_dec = 32,
                                 .codec_kernel = 7};
static const int STRIDES[] = {8, 5, 4, 2};

typedef struct {
    bool json, quick, torch, ipa;
    int reps;
    const tts_cfg *cfg;
    const char *script;
} tts_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: frt-bench tts [--config flashspeech-base|tiny] [--json] [--quick]\n"
            "                     [--reps R] [--no-torch] [--torch-script PATH] [--ipa]\n\n"
            "Synthesises \"%s\" (10 words; phonemes\n"
            "from espeak-ng when the build has it, else, or with --ipa, its espeak-ng IPA\n"
            "checked in) with a FlashSpeech model of random f32 weights built in memory,\n"
            "with 1 and 2 steps, best of R runs (default 3; --quick 1) after a warm-up, on\n"
            "FRT_THREADS threads. Rows: tts rtf steps1/steps2 (rtf = synthesis time / audio\n"
            "duration, ratio = %.1f / rtf, >= 1 meets the bar), tts first_chunk (text to the\n"
            "first PCM of the sentence with 2 steps: G2P, mapping, synthesis), tts vs torch\n"
            "steps2 (ratio = the PyTorch reference's rtf / ours, same config, threads and\n"
            "ids, its best of 3 runs (--quick 1) after a warm-up; >= %.0f meets the bar; run\n"
            "with %s, skipped when it has no torch). Both sides' wall and CPU\n"
            "seconds are in the rows: the machine may be shared.\n",
            SENTENCE, RTF_BAR, TORCH_BAR, TORCH_PYTHON);
}

static bool parse_args(int argc, char **argv, tts_opts *o, int *rc)
{
    *o = (tts_opts){.torch = true, .cfg = &CFG_BASE};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
        } else if (!strcmp(a, "--no-torch")) {
            o->torch = false;
        } else if (!strcmp(a, "--ipa")) {
            o->ipa = true;
        } else if (!strcmp(a, "--torch-script") && i + 1 < argc) {
            o->script = argv[++i];
        } else if (!strcmp(a, "--reps") && i + 1 < argc) {
            o->reps = atoi(argv[++i]);
            if (o->reps < 1) {
                fprintf(stderr, "frt-bench tts: --reps needs a positive count\n");
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--config") && i + 1 < argc) {
            const char *c = argv[++i];
            if (!strcmp(c, CFG_BASE.name)) {
                o->cfg = &CFG_BASE;
            } else if (!strcmp(c, CFG_TINY.name)) {
                o->cfg = &CFG_TINY;
            } else {
                fprintf(stderr, "frt-bench tts: unknown config '%s' (flashspeech-base, tiny)\n", c);
                *rc = 2;
                return false;
            }
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            *rc = 0;
            return false;
        } else {
            fprintf(stderr, "frt-bench tts: unknown option '%s'\n", a);
            usage(stderr);
            *rc = 2;
            return false;
        }
    }
    if (!o->reps) o->reps = o->quick ? 1 : 3;
    return true;
}

/* ---- the checkpoint ---------------------------------------------------------- */

/* config.json's text: the sizes of c, the rest the reference's defaults. */
static char *config_json(const tts_cfg *c)
{
    size_t cap = 8192;
    char *s = malloc(cap);
    if (!s) return NULL;
    int n =
        snprintf(s, cap,
                 "{\"model_type\": \"flashspeech\", \"hidden_size\": %d, \"num_heads\": %d, "
                 "\"encoder_layers\": %d, \"prompt_encoder_layers\": %d, \"ffn_filter\": %d, "
                 "\"ffn_kernel\": %d, \"n_speaker_queries\": %d, \"prosody_heads\": %d, "
                 "\"prosody_attn_period\": %d, \"duration_layers\": %d, "
                 "\"duration_filters\": %d, \"duration_kernel\": %d, \"pitch_layers\": %d, "
                 "\"pitch_filters\": %d, \"pitch_kernel\": %d, \"refiner_layers\": %d, "
                 "\"refiner_channels\": %d, \"pitch_bins\": %d, \"wavenet_layers\": %d, "
                 "\"wavenet_channels\": %d, \"wavenet_kernel\": %d, \"film_period\": %d, "
                 "\"film_heads\": %d, \"latent_dim\": %d, \"codec_encoder_channels\": %d, "
                 "\"codec_decoder_channels\": %d, \"codec_kernel\": %d, "
                 "\"codec_strides\": [8, 5, 4, 2], \"codec_dilations\": [1, 3, 9], "
                 "\"phoneme_vocab_size\": %d, \"phonemes\": [",
                 c->hidden, c->heads, c->enc_layers, c->enc_layers, c->ffn_filter, c->ffn_kernel,
                 c->queries, c->pheads, c->period, c->dur_layers, c->dur_filters, c->dur_kernel,
                 c->pitch_layers, c->pitch_filters, c->pitch_kernel, c->ref_layers, c->ref_channels,
                 c->pitch_bins, c->wn_layers, c->wn_channels, c->wn_kernel, c->film_period,
                 c->film_heads, c->latent, c->codec_enc, c->codec_dec, c->codec_kernel, N_PHONEMES);
    for (int i = 0; i < N_PHONEMES && n > 0 && (size_t)n < cap; i++)
        n += snprintf(s + n, cap - (size_t)n, "%s\"%s\"", i ? ", " : "", PHONEMES[i]);
    if (n > 0 && (size_t)n < cap) n += snprintf(s + n, cap - (size_t)n, "]}");
    if (n <= 0 || (size_t)n >= cap) {
        free(s);
        return NULL;
    }
    return s;
}

/* Adds tensors to a bench_ckpt; ok turns false on the first failure. The
 * uniform scale sqrt(3 / fan_in) has the variance of randn / sqrt(fan_in). */
typedef struct {
    bench_ckpt *c;
    bool ok;
} adder;

static void put(adder *a, int ndim, const int64_t *shape, float scale, bool constant,
                const char *name, const char *leaf)
{
    if (a->ok)
        a->ok = bench_ckpt_add(a->c, FRT_F32, ndim, shape, scale, constant, "%s%s", name, leaf);
}

static void put_vec(adder *a, const char *p, const char *leaf, int64_t n, float v, bool constant)
{
    put(a, 1, &n, v, constant, p, leaf);
}

static float fan(int64_t fan_in)
{
    return sqrtf(3.0f / (float)fan_in);
}

static void bias(adder *a, const char *p, int64_t n)
{
    put_vec(a, p, ".bias", n, 0.05f * sqrtf(3.0f), false);
}

static void lin(adder *a, const char *p, int64_t out, int64_t in)
{
    int64_t s[2] = {out, in};
    put(a, 2, s, fan(in), false, p, ".weight");
    bias(a, p, out);
}

static void cnv(adder *a, const char *p, int64_t out, int64_t in, int64_t k)
{
    int64_t s[3] = {out, in, k};
    put(a, 3, s, fan(in * k), false, p, ".weight");
    bias(a, p, out);
}

static void attn(adder *a, const char *p, int cq, int ckv, int cm)
{
    char q[256];
    snprintf(q, sizeof q, "%s.q", p);
    lin(a, q, cm, cq);
    snprintf(q, sizeof q, "%s.k", p);
    lin(a, q, cm, ckv);
    snprintf(q, sizeof q, "%s.v", p);
    lin(a, q, cm, ckv);
    snprintf(q, sizeof q, "%s.o", p);
    lin(a, q, cm, cm);
}

static void enc_layer(adder *a, const tts_cfg *c, const char *p, bool cond)
{
    char q[256];
    int h = c->hidden;
    snprintf(q, sizeof q, "%s.attn", p);
    attn(a, q, h, h, h);
    snprintf(q, sizeof q, "%s.ffn.conv1", p);
    cnv(a, q, c->ffn_filter, h, c->ffn_kernel);
    snprintf(q, sizeof q, "%s.ffn.conv2", p);
    cnv(a, q, h, c->ffn_filter, 1);
    for (int i = 1; i <= 2; i++) {
        if (cond) {
            /* conditional LayerNorm: scale's bias near 1, weights small */
            int64_t s[2] = {h, h};
            snprintf(q, sizeof q, "%s.norm%d.scale", p, i);
            put(a, 2, s, 0.3f * fan(h), false, q, ".weight");
            put_vec(a, q, ".bias", h, 1.0f, true);
            snprintf(q, sizeof q, "%s.norm%d.shift", p, i);
            put(a, 2, s, 0.3f * fan(h), false, q, ".weight");
            bias(a, q, h);
        } else {
            snprintf(q, sizeof q, "%s.norm%d", p, i);
            put_vec(a, q, ".weight", h, 1.0f, true);
            bias(a, q, h);
        }
    }
}

static void wavenet(adder *a, const tts_cfg *c, const char *p, int cin, int ch, int cout,
                    int layers)
{
    char q[256];
    snprintf(q, sizeof q, "%s.in_proj", p);
    cnv(a, q, ch, cin, 1);
    snprintf(q, sizeof q, "%s.time_mlp.0", p);
    lin(a, q, 4 * ch, ch);
    snprintf(q, sizeof q, "%s.time_mlp.2", p);
    lin(a, q, ch, 4 * ch);
    for (int i = 0; i < layers; i++) {
        snprintf(q, sizeof q, "%s.layers.%d.time", p, i);
        lin(a, q, ch, ch);
        snprintf(q, sizeof q, "%s.layers.%d.conv", p, i);
        cnv(a, q, 2 * ch, ch, c->wn_kernel);
        snprintf(q, sizeof q, "%s.layers.%d.cond", p, i);
        cnv(a, q, 2 * ch, c->hidden, 1);
        snprintf(q, sizeof q, "%s.layers.%d.out", p, i);
        cnv(a, q, 2 * ch, ch, 1);
        if (i % c->film_period == c->film_period - 1) {
            snprintf(q, sizeof q, "%s.layers.%d.film_attn", p, i);
            attn(a, q, ch, c->hidden, ch);
            snprintf(q, sizeof q, "%s.layers.%d.film", p, i);
            lin(a, q, 4 * ch, ch);
        }
    }
    snprintf(q, sizeof q, "%s.skip_proj", p);
    cnv(a, q, ch, ch, 1);
    snprintf(q, sizeof q, "%s.out_proj", p);
    cnv(a, q, cout, ch, 1);
}

static void predictor(adder *a, const tts_cfg *c, const char *p, int layers, int f, int k,
                      float out_bias)
{
    char q[256];
    for (int i = 0; i < layers; i++) {
        snprintf(q, sizeof q, "%s.layers.%d.conv", p, i);
        cnv(a, q, f, i == 0 ? c->hidden : f, k);
        snprintf(q, sizeof q, "%s.layers.%d.norm", p, i);
        put_vec(a, q, ".weight", f, 1.0f, true);
        bias(a, q, f);
        if (i % c->period == c->period - 1) {
            snprintf(q, sizeof q, "%s.layers.%d.attn", p, i);
            attn(a, q, f, c->hidden, f);
        }
    }
    int64_t s[2] = {1, f};
    snprintf(q, sizeof q, "%s.out", p);
    put(a, 2, s, 0.05f * fan(f), false, q, ".weight");
    put_vec(a, q, ".bias", 1, out_bias, true);
}

static void codec(adder *a, const tts_cfg *c)
{
    char q[256];
    int k = c->codec_kernel, ch = c->codec_enc;
    cnv(a, "codec.encoder.in_conv", ch, 1, k);
    for (int b = 0; b < 4; b++, ch *= 2) {
        for (int r = 0; r < 3; r++) {
            snprintf(q, sizeof q, "codec.encoder.blocks.%d.res.%d.conv1", b, r);
            cnv(a, q, ch, ch, k);
            snprintf(q, sizeof q, "codec.encoder.blocks.%d.res.%d.conv2", b, r);
            cnv(a, q, ch, ch, 1);
        }
        snprintf(q, sizeof q, "codec.encoder.blocks.%d.down", b);
        cnv(a, q, 2 * ch, ch, 2 * STRIDES[3 - b]);
    }
    cnv(a, "codec.encoder.out_conv", c->latent, ch, 3);
    ch = c->codec_dec;
    cnv(a, "codec.decoder.in_conv", ch, c->latent, k);
    for (int b = 0; b < 4; b++) {
        int64_t s[3] = {ch, ch / 2, 2 * STRIDES[b]};
        snprintf(q, sizeof q, "codec.decoder.blocks.%d.up", b);
        put(a, 3, s, fan((int64_t)ch * 2 * STRIDES[b] / 2), false, q, ".weight");
        bias(a, q, ch / 2);
        ch /= 2;
        for (int r = 0; r < 3; r++) {
            snprintf(q, sizeof q, "codec.decoder.blocks.%d.res.%d.conv1", b, r);
            cnv(a, q, ch, ch, k);
            snprintf(q, sizeof q, "codec.decoder.blocks.%d.res.%d.conv2", b, r);
            cnv(a, q, ch, ch, 1);
        }
    }
    cnv(a, "codec.decoder.out_conv", 1, ch, k);
}

/* Every tensor of the checkpoint format at c's sizes (the list of
 * tools/make_tiny_speech.py's shapes()). */
static bool add_tensors(bench_ckpt *ck, const tts_cfg *c)
{
    adder a = {ck, true};
    char q[256];
    int h = c->hidden;
    int64_t s[2] = {N_PHONEMES, h};
    put(&a, 2, s, sqrtf(3.0f), false, "phoneme_encoder.embed.weight", "");
    for (int i = 0; i < c->enc_layers; i++) {
        snprintf(q, sizeof q, "phoneme_encoder.layers.%d", i);
        enc_layer(&a, c, q, true);
    }
    lin(&a, "prompt_encoder.in_proj", h, c->latent);
    for (int i = 0; i < c->enc_layers; i++) {
        snprintf(q, sizeof q, "prompt_encoder.layers.%d", i);
        enc_layer(&a, c, q, false);
    }
    s[0] = c->queries;
    put(&a, 2, s, sqrtf(3.0f), false, "prompt_encoder.queries", "");
    attn(&a, "prompt_encoder.query_attn", h, h, h);
    predictor(&a, c, "duration_predictor", c->dur_layers, c->dur_filters, c->dur_kernel,
              logf(4.0f));
    predictor(&a, c, "pitch_predictor", c->pitch_layers, c->pitch_filters, c->pitch_kernel,
              logf(180.0f));
    s[0] = c->pitch_bins;
    put(&a, 2, s, sqrtf(3.0f), false, "pitch_embed.weight", "");
    wavenet(&a, c, "duration_refiner", 1, c->ref_channels, 1, c->ref_layers);
    wavenet(&a, c, "pitch_refiner", 1, c->ref_channels, 1, c->ref_layers);
    wavenet(&a, c, "lcm", c->latent, c->wn_channels, c->latent, c->wn_layers);
    codec(&a, c);
    return a.ok;
}

/* ---- timing ------------------------------------------------------------------- */

static double thread_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double sec, cpu_sec, thread_cpu_sec; /* best wall, its process and calling-thread CPU */
    size_t samples;
} synth_time;

static bool time_synth(frt_fs_model *m, const int32_t *ids, size_t n, int steps, int reps,
                       synth_time *best)
{
    frt_fs_synth_opts so;
    frt_fs_synth_opts_default(&so);
    so.steps = steps;
    *best = (synth_time){0};
    for (int r = 0; r < reps; r++) {
        float *pcm = NULL;
        size_t ns = 0;
        double c0 = bench_cpu_seconds(), tc0 = thread_cpu_now(), t0 = bench_now();
        frt_status s = frt_fs_synthesize(m, ids, n, NULL, &so, &pcm, &ns);
        double dt = bench_now() - t0;
        double dc = bench_cpu_seconds() - c0, dtc = thread_cpu_now() - tc0;
        frt_free(pcm);
        if (s != FRT_OK) {
            fprintf(stderr, "frt-bench tts: synthesis failed: %s\n", frt_last_error());
            return false;
        }
        if (r == 0 || dt < best->sec) *best = (synth_time){dt, dc, dtc, ns};
    }
    return true;
}

/* Text to ids as the speech engine does it: G2P (espeak-ng, else the
 * checked-in IPA), then the model's inventory. *g2p names what was used. */
static bool phonemize(const frt_phoneme_map *map, frt_g2p *g, frt_phoneme_seq *seq)
{
    frt_strbuf ipa = {0};
    frt_status s;
    if (g)
        s = g->phonemize(g, SENTENCE, strlen(SENTENCE), &ipa);
    else
        s = frt_strbuf_append(&ipa, SENTENCE_IPA, strlen(SENTENCE_IPA));
    if (s == FRT_OK) s = frt_phoneme_map_apply(map, ipa.s, ipa.len, seq);
    frt_strbuf_free(&ipa);
    if (s != FRT_OK) fprintf(stderr, "frt-bench tts: phonemes: %s\n", frt_last_error());
    return s == FRT_OK;
}

/* tools/bench/torch_tts.py in the source tree the binary was built from:
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
        snprintf(out, cap, "%s/tools/bench/torch_tts.py", exe);
        if (access(out, R_OK) == 0) return true;
    }
    return false;
}

static double json_num(const char *line, const char *key)
{
    const char *k = strstr(line, key);
    double v = 0;
    if (!k || sscanf(k + strlen(key), "%lf", &v) != 1) return 0;
    return v;
}

/* The PyTorch reference's time for the same synthesis, or false (reason in
 * note). */
static bool run_torch(const tts_opts *o, const frt_phoneme_seq *seq, int threads, synth_time *t,
                      char *note, size_t cap)
{
    char script[PATH_MAX];
    if (o->script)
        snprintf(script, sizeof script, "%s", o->script);
    else if (!find_script(script, sizeof script)) {
        snprintf(note, cap, "tools/bench/torch_tts.py not found (use --torch-script)");
        return false;
    }
    if (access(TORCH_PYTHON, X_OK) != 0) {
        snprintf(note, cap, "%s not found", TORCH_PYTHON);
        return false;
    }
    size_t ccap = PATH_MAX + 64 + seq->n * 12;
    char *cmd = malloc(ccap);
    if (!cmd) return false;
    int n = snprintf(cmd, ccap, "%s '%s' --config %s --steps 2 --threads %d --reps %d --ids ",
                     TORCH_PYTHON, script, o->cfg->name, threads, o->quick ? 1 : 3);
    for (size_t i = 0; i < seq->n; i++)
        n += snprintf(cmd + n, ccap - (size_t)n, "%s%d", i ? "," : "", (int)seq->ids[i]);
    fprintf(stderr, "frt-bench tts: running the PyTorch reference (%s --config %s, %zu ids)\n",
            script, o->cfg->name, seq->n);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p) {
        snprintf(note, cap, "could not start %s", TORCH_PYTHON);
        return false;
    }
    char line[1024], last[1024] = "";
    while (fgets(line, sizeof line, p)) snprintf(last, sizeof last, "%s", line);
    int rc = pclose(p);
    *t = (synth_time){.sec = json_num(last, "\"sec\":"),
                      .cpu_sec = json_num(last, "\"cpu_sec\":"),
                      .samples = (size_t)json_num(last, "\"samples\":")};
    if (rc != 0 || !(t->sec > 0) || !t->samples) {
        snprintf(note, cap, "PyTorch reference failed (exit %d; no torch in %s?)", rc,
                 TORCH_PYTHON);
        return false;
    }
    const char *ver = strstr(last, "\"torch\": \"");
    if (ver) {
        ver += 10;
        const char *end = strchr(ver, '"');
        snprintf(note, cap, "torch %.*s", end ? (int)(end - ver) : 0, ver);
    }
    return true;
}

static double audio_sec(size_t samples)
{
    return (double)samples / 16000.0;
}

int bench_tts_main(int argc, char **argv)
{
    tts_opts o;
    int rc = 0;
    if (!parse_args(argc, argv, &o, &rc)) return rc;
    const int threads = frt_pool_size(frt_pool_default());
    bench_machine mach;
    bench_measure_machine(&mach);

    char *cfg_text = config_json(o.cfg);
    bench_ckpt *ck = bench_ckpt_new();
    frt_fs_model *m = NULL;
    frt_phoneme_map *map = NULL;
    frt_g2p *g2p = NULL;
    frt_phoneme_seq seq = {0};
    rc = 1;
    if (!cfg_text || !ck || !add_tensors(ck, o.cfg)) {
        fprintf(stderr, "frt-bench tts: out of memory\n");
        goto done;
    }
    double t0 = bench_now();
    frt_st *st;
    if (bench_ckpt_finish(ck, o.cfg->name, &st) != FRT_OK ||
        frt_fs_model_open_st(cfg_text, st, NULL, &m) != FRT_OK) {
        fprintf(stderr, "frt-bench tts: model: %s\n", frt_last_error());
        goto done;
    }
    double open_s = bench_now() - t0;
    if (frt_phoneme_map_create(PHONEMES, N_PHONEMES, &map) != FRT_OK) {
        fprintf(stderr, "frt-bench tts: %s\n", frt_last_error());
        goto done;
    }
    const char *g2p_name = "espeak-ng";
    if (o.ipa) {
        g2p_name = "checked-in espeak-ng IPA (--ipa)";
    } else if (frt_g2p_espeak_open("en-us", &g2p) != FRT_OK) {
        g2p = NULL;
        g2p_name = "checked-in espeak-ng IPA (no espeak-ng in this build)";
        frt_clear_error();
    }
    if (!phonemize(map, g2p, &seq)) goto done;

    /* warm-up: first touch of the arena and the weights */
    synth_time warm, st1, st2;
    if (!time_synth(m, seq.ids, seq.n, 1, 1, &warm) ||
        !time_synth(m, seq.ids, seq.n, 1, o.reps, &st1) ||
        !time_synth(m, seq.ids, seq.n, 2, o.reps, &st2))
        goto done;
    if (!st1.samples || !st2.samples) {
        fprintf(stderr, "frt-bench tts: the random model produced no audio\n");
        goto done;
    }

    /* first chunk: text in, the sentence's PCM out (2 steps), best of reps */
    double first = 0, first_g2p = 0;
    for (int r = 0; r < o.reps; r++) {
        frt_phoneme_seq s2 = {0};
        frt_fs_synth_opts so;
        frt_fs_synth_opts_default(&so);
        so.steps = 2;
        float *pcm = NULL;
        size_t ns = 0;
        double f0 = bench_now();
        bool ok = phonemize(map, g2p, &s2);
        double g = bench_now() - f0;
        ok = ok && frt_fs_synthesize(m, s2.ids, s2.n, NULL, &so, &pcm, &ns) == FRT_OK;
        double dt = bench_now() - f0;
        frt_free(pcm);
        frt_phoneme_seq_free(&s2);
        if (!ok) {
            fprintf(stderr, "frt-bench tts: first chunk: %s\n", frt_last_error());
            goto done;
        }
        if (r == 0 || dt < first) first = dt, first_g2p = g;
    }

    synth_time tt = {0};
    char note[256] = "skipped (--no-torch)";
    bool have_torch = o.torch && run_torch(&o, &seq, threads, &tt, note, sizeof note);

    bench_out *out = bench_out_begin("tts", &mach, o.json);
    char name[96], extra[768];
    const synth_time *r[2] = {&st1, &st2};
    for (int s = 0; s < 2; s++) {
        double rtf = r[s]->sec / audio_sec(r[s]->samples);
        snprintf(name, sizeof name, "tts rtf steps%d %s", s + 1, o.cfg->name);
        snprintf(extra, sizeof extra,
                 "\"rtf\": %.4f, \"vs\": \"rtf %.1f\", \"audio_s\": %.3f, \"phonemes\": %zu, "
                 "\"threads\": %d, \"reps\": %d, \"cpu_s\": %.3f, \"thread_cpu_s\": %.3f, "
                 "\"cpu_share\": %.2f, \"open_s\": %.2f, \"g2p\": \"%s\"",
                 rtf, RTF_BAR, audio_sec(r[s]->samples), seq.n, threads, o.reps, r[s]->cpu_sec,
                 r[s]->thread_cpu_sec, r[s]->cpu_sec / (r[s]->sec * threads), open_s, g2p_name);
        bench_out_row(out, name, "rtf", rtf, r[s]->sec * 1e3, RTF_BAR / rtf, bench_rss_mb(), extra);
    }
    snprintf(name, sizeof name, "tts first_chunk steps2 %s", o.cfg->name);
    snprintf(extra, sizeof extra,
             "\"words\": 10, \"phonemes\": %zu, \"audio_s\": %.3f, \"includes\": \"g2p, phoneme "
             "map, synthesis\", \"g2p_ms\": %.2f, \"vs\": \"audio duration\"",
             seq.n, audio_sec(st2.samples), first_g2p * 1e3);
    bench_out_row(out, name, "first_chunk_ms", first * 1e3, first * 1e3,
                  audio_sec(st2.samples) / first, bench_rss_mb(), extra);
    snprintf(name, sizeof name, "tts vs torch steps2 %s", o.cfg->name);
    if (have_torch) {
        double rtf_c = st2.sec / audio_sec(st2.samples);
        double rtf_t = tt.sec / audio_sec(tt.samples);
        snprintf(extra, sizeof extra,
                 "\"vs\": \"%s\", \"torch_rtf\": %.4f, \"rtf\": %.4f, \"torch_ms\": %.1f, "
                 "\"torch_audio_s\": %.3f, \"audio_s\": %.3f, \"torch_cpu_s\": %.3f, "
                 "\"cpu_s\": %.3f, \"threads\": %d, \"bar\": %.0f",
                 note, rtf_t, rtf_c, tt.sec * 1e3, audio_sec(tt.samples), audio_sec(st2.samples),
                 tt.cpu_sec, st2.cpu_sec, threads, TORCH_BAR);
        bench_out_row(out, name, "speedup", rtf_t / rtf_c, st2.sec * 1e3, rtf_t / rtf_c,
                      bench_rss_mb(), extra);
    } else {
        snprintf(extra, sizeof extra, "\"skipped\": \"%s\"", note);
        bench_out_row(out, name, "speedup", 0, 0, 0, bench_rss_mb(), extra);
    }
    bench_out_end(out);
    if (!o.json)
        printf("model open %.2f s; %zu phonemes (%s); steps2 %.3f s wall, %.3f s CPU on %d "
               "threads (calling thread %.3f s) for %.2f s of audio\n",
               open_s, seq.n, g2p_name, st2.sec, st2.cpu_sec, threads, st2.thread_cpu_sec,
               audio_sec(st2.samples));
    rc = 0;
done:
    frt_phoneme_seq_free(&seq);
    frt_g2p_free(g2p);
    frt_phoneme_map_free(map);
    frt_fs_model_close(m);
    bench_ckpt_free(ck);
    free(cfg_text);
    return rc;
}
