/* FlashSpeech model: every module and the whole pipeline against the goldens
 * of tools/make_tiny_speech.py (float64 PyTorch), preconditioning values,
 * the seeded generator, limits and failure paths.
 *
 * Error measure throughout: max_i |c_i - r_i| / max_i |r_i| (the largest
 * error relative to the largest reference magnitude), required <= 1e-4. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "fs_internal.h"
#include "safetensors.h"
#include "testutil.h"

#define TINY    FRT_TEST_DATA "/speech/flashspeech-tiny"
#define GOLDENS FRT_TEST_DATA "/speech/goldens/flashspeech-tiny.safetensors"
#define TOL     1e-4

static frt_fs_model *model;
static frt_st *gold;

static void setup(void)
{
    cr_assert_eq(frt_fs_model_open(TINY, NULL, &model), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_st_open(GOLDENS, &gold), FRT_OK, "%s", frt_last_error());
}

static void teardown(void)
{
    frt_fs_model_close(model);
    frt_st_close(gold);
}

static const float *g32(const char *name, int64_t *n)
{
    frt_tensor t;
    cr_assert_eq(frt_st_get(gold, name, &t), FRT_OK, "%s", frt_last_error());
    if (n) *n = frt_tensor_numel(&t);
    return t.data;
}

static const int32_t *gi32(const char *name, int64_t *n)
{
    return (const int32_t *)g32(name, n);
}

static double rel_err(const float *c, const float *r, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)c[i] - r[i]);
        if (!(d <= num)) num = d; /* NaN propagates */
        if (fabs(r[i]) > den) den = fabs(r[i]);
    }
    return num / (den > 0 ? den : 1);
}

static void check(const char *what, const float *c, const char *golden)
{
    int64_t n;
    const float *r = g32(golden, &n);
    double e = rel_err(c, r, n), mag = 0;
    for (int64_t i = 0; i < n; i++) mag = fmax(mag, fabs(r[i]));
    cr_assert(n > 0 && mag > 1e-6, "%s: the golden is empty or zero", what);
    cr_log_info("%s: rel err %.3g over %lld values", what, e, (long long)n);
    cr_assert(e <= TOL, "%s: rel err %.3g > %g", what, e, TOL);
}

/* The refiners add alpha * residual to an O(1) init: compare the residuals,
 * or the init would hide the network's error. */
static void check_residual(const char *what, const float *c, const float *init, const char *golden)
{
    int64_t n;
    const float *r = g32(golden, &n);
    float *dc = malloc((size_t)n * sizeof(float)), *dr = malloc((size_t)n * sizeof(float));
    cr_assert(dc && dr);
    for (int64_t i = 0; i < n; i++) dc[i] = c[i] - init[i], dr[i] = r[i] - init[i];
    double e = rel_err(dc, dr, n), mag = 0;
    for (int64_t i = 0; i < n; i++) mag = fmax(mag, fabs(dr[i]));
    cr_log_info("%s: residual rel err %.3g over %lld values (max |residual| %.3g)", what, e,
                (long long)n, mag);
    cr_assert(mag > 1e-3, "%s: residual too small to test", what);
    /* init - init in float32 loses the low bits of the residual */
    cr_assert(e <= TOL + 1e-6 / mag, "%s: residual rel err %.3g", what, e);
    free(dc);
    free(dr);
}

static float *buf(size_t n)
{
    float *p = frt_alloc(n * sizeof(float));
    cr_assert(p);
    tu_poison(p, n);
    return p;
}

TestSuite(fs_module, .init = setup, .fini = teardown);

Test(fs_module, preconditioning_values)
{
    const fs_config *c = &model->cfg;
    double skip, out, in, noise;
    fs_precond(c, 80.0, &skip, &out, &in, &noise);
    cr_assert(fabs(skip - 3.9e-5) < 1e-6, "c_skip(80) %g", skip);
    cr_assert(fabs(out - 0.49998) < 1e-5, "c_out(80) %g", out);
    cr_assert(fabs(in - 0.0125) < 1e-5, "c_in(80) %g", in);
    cr_assert(fabs(noise - log(80.0) / 4) < 1e-12);
    fs_precond(c, 2.0, &skip, &out, &in, &noise);
    cr_assert(fabs(skip - 0.0589) < 1e-4, "c_skip(2) %g", skip);
    cr_assert(fabs(out - 0.4846) < 1e-4, "c_out(2) %g", out);
    cr_assert(fabs(in - 0.4851) < 1e-4, "c_in(2) %g", in);
}

Test(fs_module, noise_generator_matches_python)
{
    int64_t n;
    const float *ref = g32("noise.seed42", &n);
    float v[7];
    uint64_t st = 42;
    frt_fs_noise_fill(&st, v, 7);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(v[i], ref[i], "value %d: %.9g vs %.9g", i, v[i], ref[i]);
    /* 7 values consume 8 draws; a fresh fill continues from there */
    cr_assert_eq(st, 42 + 8 * 0x9E3779B97F4A7C15ull);
    uint64_t a = 5, b = 5;
    float x[64], y[64];
    frt_fs_noise_fill(&a, x, 64);
    frt_fs_noise_fill(&b, y, 64);
    cr_assert_eq(memcmp(x, y, sizeof(x)), 0);
    double mean = 0, var = 0;
    for (int i = 0; i < 64; i++) mean += x[i] / 64.0;
    for (int i = 0; i < 64; i++) var += (x[i] - mean) * (x[i] - mean) / 63.0;
    cr_assert(fabs(mean) < 0.5 && var > 0.5 && var < 1.6, "mean %g var %g", mean, var);
}

Test(fs_module, codec_encoder)
{
    int64_t n;
    const float *pcm = g32("codec_encoder.pcm", &n);
    int hop = frt_fs_model_hop(model), d = model->cfg.latent_dim;
    int64_t frames = (n + hop - 1) / hop;
    float *x = buf((size_t)(frames * hop)), *lat = buf((size_t)(frames * d));
    memcpy(x, pcm, (size_t)n * sizeof(float));
    memset(x + n, 0, (size_t)(frames * hop - n) * sizeof(float));
    model->arena.used = 0;
    cr_assert_eq(fs_codec_encode(model, x, frames * hop, lat), FRT_OK, "%s", frt_last_error());
    check("codec encoder", lat, "codec_encoder.out");
    frt_free(x);
    frt_free(lat);
}

Test(fs_module, prompt_encoder)
{
    int64_t n;
    const float *lat = g32("prompt_encoder.latents", &n);
    float *spk = buf((size_t)model->cfg.n_queries * model->cfg.hidden);
    model->arena.used = 0;
    cr_assert_eq(fs_prompt_encoder(model, lat, n / model->cfg.latent_dim, spk), FRT_OK, "%s",
                 frt_last_error());
    check("prompt encoder", spk, "prompt_encoder.out");
    frt_free(spk);
}

Test(fs_module, phoneme_encoder_and_duration_predictor)
{
    int64_t n;
    const int32_t *ids = gi32("phoneme_encoder.ids", &n);
    const float *spk = g32("prompt_encoder.out", NULL);
    float *h = buf((size_t)(n * model->cfg.hidden)), *ld = buf((size_t)n);
    model->arena.used = 0;
    cr_assert_eq(fs_phoneme_encoder(model, ids, n, spk, h), FRT_OK, "%s", frt_last_error());
    check("phoneme encoder", h, "phoneme_encoder.out");
    /* the predictor from the golden input, so its error is its own */
    cr_assert_eq(
        fs_prosody_predict(model, &model->w.dur, g32("phoneme_encoder.out", NULL), n, spk, ld),
        FRT_OK, "%s", frt_last_error());
    check("duration predictor", ld, "duration_predictor.out");
    frt_free(h);
    frt_free(ld);
}

Test(fs_module, length_regulator_with_speed)
{
    int64_t n, t;
    const float *ld = g32("length_regulator.log_dur", &n);
    const int32_t *ref = gi32("length_regulator.durations", NULL);
    int32_t dur[64];
    int64_t total = fs_durations(ld, n, 1.3f, dur);
    int64_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(dur[i], ref[i], "phoneme %lld: %d frames, reference %d", (long long)i, dur[i],
                     ref[i]);
        sum += ref[i];
    }
    cr_assert_eq(total, sum);
    const float *e_ref = g32("length_regulator.out", &t);
    cr_assert_eq(t, sum * model->cfg.hidden);
    float *e = buf((size_t)t);
    fs_length_regulate(g32("phoneme_encoder.out", NULL), n, model->cfg.hidden, dur, e);
    cr_assert_eq(memcmp(e, e_ref, (size_t)t * sizeof(float)), 0);
    frt_free(e);

    /* speed scales the frames: x = log(d + 1) with d = 6 gives 6, 3 at speed 2,
     * 12 at 0.5; negative and huge values clamp */
    float x[4] = {logf(7.0f), -3.0f, 1e30f, NAN};
    int32_t d[4];
    fs_durations(x, 1, 1.0f, d);
    cr_assert_eq(d[0], 6);
    fs_durations(x, 1, 2.0f, d);
    cr_assert_eq(d[0], 3);
    fs_durations(x, 1, 0.5f, d);
    cr_assert_eq(d[0], 12);
    int64_t tot = fs_durations(x, 4, 1.0f, d);
    cr_assert_eq(d[1], 0);
    cr_assert_eq(d[2], INT32_MAX);
    cr_assert_eq(d[3], 0);
    cr_assert_eq(tot, 6 + (int64_t)INT32_MAX);
}

Test(fs_module, pitch_predictor_and_embedding)
{
    int64_t t;
    const float *e = g32("length_regulator.out", &t);
    t /= model->cfg.hidden;
    const float *spk = g32("prompt_encoder.out", NULL);
    float *lf0 = buf((size_t)t), *c = buf((size_t)(t * model->cfg.hidden));
    model->arena.used = 0;
    cr_assert_eq(fs_prosody_predict(model, &model->w.pitch, e, t, spk, lf0), FRT_OK, "%s",
                 frt_last_error());
    check("pitch predictor", lf0, "pitch_predictor.out");
    fs_pitch_embed(model, e, g32("pitch_embed.log_f0", NULL), t, c);
    check("pitch embedding", c, "pitch_embed.out");
    /* bins: 50 Hz -> 0, 1100 Hz -> last, outside clamps */
    cr_assert_eq(fs_pitch_bin(&model->cfg, logf(50.0f)), 0);
    cr_assert_eq(fs_pitch_bin(&model->cfg, logf(1100.0f)), model->cfg.pitch_bins - 1);
    cr_assert_eq(fs_pitch_bin(&model->cfg, 0.0f), 0);
    cr_assert_eq(fs_pitch_bin(&model->cfg, 30.0f), model->cfg.pitch_bins - 1);
    frt_free(lf0);
    frt_free(c);
}

Test(fs_module, prosody_refiners)
{
    int64_t n, t;
    const float *spk = g32("prompt_encoder.out", NULL);
    const float *h = g32("phoneme_encoder.out", &n);
    const float *e = g32("length_regulator.out", &t);
    n /= model->cfg.hidden, t /= model->cfg.hidden;
    float *o = buf((size_t)t);
    model->arena.used = 0;
    cr_assert_eq(fs_refine(model, &model->w.dur_ref, g32("duration_refiner.init", NULL),
                           g32("duration_refiner.eps", NULL), n, h, spk, o),
                 FRT_OK, "%s", frt_last_error());
    check_residual("duration refiner", o, g32("duration_refiner.init", NULL),
                   "duration_refiner.out");
    cr_assert_eq(fs_refine(model, &model->w.pitch_ref, g32("pitch_refiner.init", NULL),
                           g32("pitch_refiner.eps", NULL), t, e, spk, o),
                 FRT_OK, "%s", frt_last_error());
    check_residual("pitch refiner", o, g32("pitch_refiner.init", NULL), "pitch_refiner.out");
    frt_free(o);
}

Test(fs_module, lcm_consistency_function)
{
    int64_t n;
    const float *x = g32("lcm.x", &n);
    int d = model->cfg.latent_dim, hd = model->cfg.hidden;
    int64_t t = n / d;
    const float *c = g32("pitch_embed.out", NULL);
    float *ct = buf((size_t)(hd * t)), *xs = buf((size_t)n), *y = buf((size_t)n);
    fs_transpose(ct, c, t, hd);
    const double sig[2] = {80.0, 2.0};
    const char *names[2] = {"lcm.out_s80", "lcm.out_s2"};
    for (int k = 0; k < 2; k++) {
        for (int64_t j = 0; j < n; j++) xs[j] = (float)(x[j] * sig[k]);
        model->arena.used = 0;
        cr_assert_eq(fs_consistency(model, &model->w.lcm, xs, t, sig[k], ct,
                                    g32("prompt_encoder.out", NULL), y),
                     FRT_OK, "%s", frt_last_error());
        check(names[k], y, names[k]);
    }
    frt_free(ct);
    frt_free(xs);
    frt_free(y);
}

Test(fs_module, codec_decoder)
{
    int64_t n;
    const float *z = g32("codec_decoder.z", &n);
    int64_t t = n / model->cfg.latent_dim;
    float *zs = buf((size_t)n), *pcm = buf((size_t)(t * frt_fs_model_hop(model)));
    for (int64_t j = 0; j < n; j++) zs[j] = z[j] * model->cfg.latent_norm;
    model->arena.used = 0;
    cr_assert_eq(fs_codec_decode(model, zs, t, pcm), FRT_OK, "%s", frt_last_error());
    check("codec decoder", pcm, "codec_decoder.out");
    frt_free(zs);
    frt_free(pcm);
}

/* ---- the whole pipeline ------------------------------------------------------ */

static void run_pipeline(int steps, const char *noise, const char *durs, const char *pcm_name)
{
    int64_t n, tp, nn;
    const int32_t *ids = gi32("pipeline.ids", &n);
    const float *lat = g32("pipeline.prompt_latents", &tp);
    frt_fs_prompt *prompt;
    cr_assert_eq(
        frt_fs_prompt_from_latents(model, lat, (size_t)(tp / model->cfg.latent_dim), &prompt),
        FRT_OK, "%s", frt_last_error());
    frt_fs_synth_opts o;
    frt_fs_synth_opts_default(&o);
    o.steps = steps;
    o.noise = g32(noise, &nn);
    o.noise_len = (size_t)nn;
    float *pcm;
    size_t ns;
    cr_assert_eq(frt_fs_synthesize(model, ids, (size_t)n, prompt, &o, &pcm, &ns), FRT_OK, "%s",
                 frt_last_error());
    int64_t ref_n, nd;
    g32(pcm_name, &ref_n);
    const int32_t *d = gi32(durs, &nd);
    int64_t frames = 0;
    for (int64_t i = 0; i < nd; i++) frames += d[i];
    cr_assert_eq((int64_t)ns, ref_n, "%zu samples, reference %lld", ns, (long long)ref_n);
    cr_assert_eq((int64_t)ns, frames * frt_fs_model_hop(model));
    check(pcm_name, pcm, pcm_name);

    /* the seed that made the golden noise gives the same audio */
    o.noise = NULL;
    o.noise_len = 0;
    o.seed = 1234;
    float *pcm2;
    size_t ns2;
    cr_assert_eq(frt_fs_synthesize(model, ids, (size_t)n, prompt, &o, &pcm2, &ns2), FRT_OK);
    cr_assert_eq(ns2, ns);
    cr_assert_eq(memcmp(pcm, pcm2, ns * sizeof(float)), 0, "seeded run differs from its noise");
    frt_free(pcm);
    frt_free(pcm2);
    frt_fs_prompt_free(prompt);
}

Test(fs_module, pipeline_one_step)
{
    run_pipeline(1, "pipeline.noise1", "pipeline.durations1", "pipeline.pcm1");
}

Test(fs_module, pipeline_two_steps)
{
    run_pipeline(2, "pipeline.noise2", "pipeline.durations2", "pipeline.pcm2");
}

Test(fs_module, pipeline_zero_prompt_speed)
{
    int64_t n, ref_n;
    const int32_t *ids = gi32("pipeline.ids", &n);
    frt_fs_synth_opts o;
    frt_fs_synth_opts_default(&o);
    o.seed = 7;
    o.speed = 1.5f;
    float *pcm;
    size_t ns;
    cr_assert_eq(frt_fs_synthesize(model, ids, (size_t)n, NULL, &o, &pcm, &ns), FRT_OK, "%s",
                 frt_last_error());
    g32("pipeline.pcm_zero", &ref_n);
    cr_assert_eq((int64_t)ns, ref_n);
    check("pipeline zero prompt, speed 1.5", pcm, "pipeline.pcm_zero");
    frt_free(pcm);
}

Test(fs_module, encode_prompt_from_audio)
{
    int64_t n;
    const float *pcm = g32("codec_encoder.pcm", &n);
    frt_fs_prompt *a, *b;
    cr_assert_eq(frt_fs_encode_prompt(model, pcm, (size_t)n, &a), FRT_OK, "%s", frt_last_error());
    /* same as the codec golden fed to the prompt encoder */
    int64_t nl;
    const float *lat = g32("codec_encoder.out", &nl);
    cr_assert_eq(frt_fs_prompt_from_latents(model, lat, (size_t)(nl / model->cfg.latent_dim), &b),
                 FRT_OK);
    size_t q = (size_t)model->cfg.n_queries * model->cfg.hidden;
    double e = rel_err(a->spk, b->spk, (int64_t)q);
    cr_assert(e <= TOL, "prompt from audio vs from latents: %g", e);
    frt_fs_prompt_free(a);
    frt_fs_prompt_free(b);
}

/* ---- limits: buffers sized exactly for a request suffice --------------------- */

Test(fs_limits, exact_limits_suffice_and_one_less_fails)
{
    frt_st *g;
    cr_assert_eq(frt_st_open(GOLDENS, &g), FRT_OK);
    frt_tensor t_ids, t_d, t_lat, t_noise, t_pcm;
    cr_assert_eq(frt_st_get(g, "pipeline.ids", &t_ids), FRT_OK);
    cr_assert_eq(frt_st_get(g, "pipeline.durations2", &t_d), FRT_OK);
    cr_assert_eq(frt_st_get(g, "pipeline.prompt_latents", &t_lat), FRT_OK);
    cr_assert_eq(frt_st_get(g, "pipeline.noise2", &t_noise), FRT_OK);
    cr_assert_eq(frt_st_get(g, "codec_encoder.pcm", &t_pcm), FRT_OK);
    int n = (int)t_ids.shape[0], frames = 0;
    for (int i = 0; i < n; i++) frames += ((int32_t *)t_d.data)[i];
    /* the 9 prompt frames of latents bound the prompt; the audio has 8 */
    int hop = 320;
    frt_fs_limits lim = {.max_phonemes = n,
                         .max_frames = frames,
                         .max_prompt_samples = (size_t)t_lat.shape[0] * hop};
    frt_fs_model *m;
    cr_assert_eq(frt_fs_model_open(TINY, &lim, &m), FRT_OK, "%s", frt_last_error());
    frt_fs_prompt *p;
    cr_assert_eq(frt_fs_encode_prompt(m, t_pcm.data, (size_t)t_pcm.shape[0], &p), FRT_OK, "%s",
                 frt_last_error());
    frt_fs_prompt_free(p);
    cr_assert_eq(frt_fs_prompt_from_latents(m, t_lat.data, (size_t)t_lat.shape[0], &p), FRT_OK);
    frt_fs_synth_opts o;
    frt_fs_synth_opts_default(&o);
    o.steps = 2;
    o.noise = t_noise.data;
    o.noise_len = (size_t)t_noise.shape[0];
    float *pcm;
    size_t ns;
    cr_assert_eq(frt_fs_synthesize(m, t_ids.data, (size_t)n, p, &o, &pcm, &ns), FRT_OK, "%s",
                 frt_last_error());
    cr_log_info("arena: %zu of %zu bytes used at the limits", m->arena.peak, m->arena.cap);
    cr_assert(m->arena.peak + FS_ARENA_SLACK / 2 * sizeof(float) <= m->arena.cap,
              "the budget formulas undercount: %zu of %zu bytes", m->arena.peak, m->arena.cap);
    frt_free(pcm);
    /* fewer values than the streams need */
    o.noise_len -= 1;
    cr_assert_eq(frt_fs_synthesize(m, t_ids.data, (size_t)n, p, &o, &pcm, &ns),
                 FRT_ERR_INVALID_ARG);
    frt_fs_model_close(m);

    lim.max_frames = frames - 1;
    lim.max_prompt_samples = (size_t)t_pcm.shape[0] - 1;
    cr_assert_eq(frt_fs_model_open(TINY, &lim, &m), FRT_OK);
    o.noise_len += 1;
    pcm = NULL;
    /* a prompt made by another model of the same sizes is usable */
    cr_assert_eq(frt_fs_synthesize(m, t_ids.data, (size_t)n, p, &o, &pcm, &ns), FRT_ERR_LIMIT);
    cr_assert_null(pcm);
    cr_assert(strstr(frt_last_error(), "max_frames"));
    frt_fs_prompt_free(p);
    cr_assert_eq(frt_fs_encode_prompt(m, t_pcm.data, (size_t)t_pcm.shape[0], &p), FRT_ERR_LIMIT);
    cr_assert_eq(frt_fs_synthesize(m, t_ids.data, (size_t)n + 1, NULL, NULL, &pcm, &ns),
                 FRT_ERR_LIMIT);
    frt_fs_model_close(m);
    frt_st_close(g);
}

Test(fs_limits, bad_arguments)
{
    frt_fs_model *m;
    cr_assert_eq(frt_fs_model_open(TINY, NULL, &m), FRT_OK);
    int32_t ids[3] = {3, 10, 20};
    float *pcm = NULL;
    size_t ns;
    frt_fs_synth_opts o;
    frt_fs_synth_opts_default(&o);
    cr_assert_eq(frt_fs_synthesize(m, ids, 0, NULL, &o, &pcm, &ns), FRT_ERR_INVALID_ARG);
    o.steps = 3;
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, &o, &pcm, &ns), FRT_ERR_INVALID_ARG);
    o.steps = 2;
    o.speed = 0;
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, &o, &pcm, &ns), FRT_ERR_INVALID_ARG);
    o.speed = 1;
    o.sigma_inter = -1;
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, &o, &pcm, &ns), FRT_ERR_INVALID_ARG);
    o.sigma_inter = 0;
    ids[1] = 999;
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, &o, &pcm, &ns), FRT_ERR_INVALID_ARG);
    ids[1] = -1;
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, &o, &pcm, &ns), FRT_ERR_INVALID_ARG);
    cr_assert_null(pcm);
    ids[1] = 10;
    /* a configurable second sigma changes the audio; the default is config's 2.0 */
    float *a, *b, *c;
    size_t na, nb, nc;
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, &o, &a, &na), FRT_OK, "%s", frt_last_error());
    o.sigma_inter = 2.0f;
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, &o, &b, &nb), FRT_OK);
    o.sigma_inter = 2.5152f;
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, &o, &c, &nc), FRT_OK);
    cr_assert(na == nb && nb == nc && na > 0);
    cr_assert_eq(memcmp(a, b, na * sizeof(float)), 0);
    cr_assert_neq(memcmp(a, c, na * sizeof(float)), 0);
    /* every duration rounds to 0: no audio, still a pointer to free */
    o.speed = 1e6f;
    float *empty = NULL;
    size_t ne = 1;
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, &o, &empty, &ne), FRT_OK, "%s",
                 frt_last_error());
    cr_assert_eq(ne, 0);
    cr_assert_not_null(empty);
    frt_free(empty);
    float x = 0;
    frt_fs_prompt *p;
    cr_assert_eq(frt_fs_encode_prompt(m, &x, 0, &p), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_fs_prompt_from_latents(m, &x, 0, &p), FRT_ERR_INVALID_ARG);
    int np;
    const char *const *sym = frt_fs_model_phonemes(m, &np);
    cr_assert_eq(np, 76);
    cr_assert_str_eq(sym[0], "<pad>");
    cr_assert_str_eq(sym[3], " ");
    cr_assert_eq(frt_fs_model_sample_rate(m), 16000);
    cr_assert_eq(frt_fs_model_hop(m), 320);
    frt_free(a);
    frt_free(b);
    frt_free(c);
    frt_fs_model_close(m);
}

/* ---- broken checkpoints ----------------------------------------------------- */

static char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    cr_assert(s && fread(s, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    s[len] = 0;
    *n = (size_t)len;
    return s;
}

/* A checkpoint dir (tu_rmtree and free it) with the tiny weights and a
 * config.json where `from` is replaced by `to` (literal text of the file). */
static char *edited_dir(const char *from, const char *to)
{
    size_t n;
    char *cfg = read_all(TINY "/config.json", &n);
    char *at = strstr(cfg, from);
    cr_assert(at, "config lacks %s", from);
    size_t out_n = n - strlen(from) + strlen(to);
    char *out = malloc(out_n + 1);
    size_t pre = (size_t)(at - cfg);
    memcpy(out, cfg, pre);
    memcpy(out + pre, to, strlen(to));
    strcpy(out + pre + strlen(to), at + strlen(from));
    char *dir = tu_tmpdir();
    free(tu_write_file(dir, "config.json", out, out_n));
    char link[4200];
    snprintf(link, sizeof(link), "%s/model.safetensors", dir);
    cr_assert_eq(
        symlink(FRT_SOURCE_DIR "/tests/data/speech/flashspeech-tiny/model.safetensors", link), 0);
    free(cfg);
    free(out);
    return dir;
}

static frt_status open_edited(const char *from, const char *to)
{
    char *dir = edited_dir(from, to);
    frt_fs_model *m = NULL;
    frt_status s = frt_fs_model_open(dir, NULL, &m);
    if (s == FRT_OK) frt_fs_model_close(m);
    tu_rmtree(dir);
    free(dir);
    return s;
}

/* The released code's quantized prompt latent: the tiny checkpoint carries
 * two codebooks its default (dense) config leaves unused. */
Test(fs_checkpoint, codec_encoder_quantized)
{
    char *dir = edited_dir("\"codec_quantizers\": 0", "\"codec_quantizers\": 2");
    frt_fs_model *m;
    cr_assert_eq(frt_fs_model_open(dir, NULL, &m), FRT_OK, "%s", frt_last_error());
    frt_st *g;
    cr_assert_eq(frt_st_open(GOLDENS, &g), FRT_OK);
    frt_tensor pcm, ref;
    cr_assert_eq(frt_st_get(g, "codec_encoder.pcm", &pcm), FRT_OK);
    cr_assert_eq(frt_st_get(g, "codec_encoder.quantized", &ref), FRT_OK);
    int64_t n = pcm.shape[0], hop = frt_fs_model_hop(m), frames = (n + hop - 1) / hop;
    float *x = calloc((size_t)(frames * hop), sizeof(float)),
          *lat = buf((size_t)frt_tensor_numel(&ref));
    memcpy(x, pcm.data, (size_t)n * sizeof(float));
    cr_assert_eq(fs_codec_encode(m, x, frames * hop, lat), FRT_OK, "%s", frt_last_error());
    double e = rel_err(lat, ref.data, frt_tensor_numel(&ref));
    cr_log_info("codec encoder, quantized: rel err %.3g", e);
    cr_assert(e <= TOL, "rel err %g", e);
    /* the quantized latents are sums of codewords, not the dense ones */
    frt_tensor dense;
    cr_assert_eq(frt_st_get(g, "codec_encoder.out", &dense), FRT_OK);
    cr_assert(rel_err(lat, dense.data, frt_tensor_numel(&dense)) > 0.05);
    free(x);
    frt_free(lat);
    frt_st_close(g);
    frt_fs_model_close(m);
    tu_rmtree(dir);
    free(dir);
}

Test(fs_checkpoint, unchanged_copy_opens)
{
    cr_assert_eq(open_edited("\"encoder_layers\": 2", "\"encoder_layers\": 2"), FRT_OK, "%s",
                 frt_last_error());
}

Test(fs_checkpoint, missing_tensor)
{
    cr_assert_eq(open_edited("\"encoder_layers\": 2", "\"encoder_layers\": 3"), FRT_ERR_NOT_FOUND);
    cr_assert(strstr(frt_last_error(), "phoneme_encoder.layers.2"), "%s", frt_last_error());
    cr_assert_eq(open_edited("\"codec_quantizers\": 0", "\"codec_quantizers\": 3"),
                 FRT_ERR_NOT_FOUND);
    cr_assert(strstr(frt_last_error(), "codec.quantizer.2.codebook"), "%s", frt_last_error());
}

Test(fs_checkpoint, wrong_shape)
{
    cr_assert_eq(open_edited("\"ffn_filter\": 48", "\"ffn_filter\": 40"), FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "ffn.conv1.weight"), "%s", frt_last_error());
    char *dir = edited_dir("\"codec_codebook_size\": 16", "\"codec_codebook_size\": 8");
    char *cfg_path = malloc(strlen(dir) + 16);
    sprintf(cfg_path, "%s/config.json", dir);
    size_t n;
    char *text = read_all(cfg_path, &n);
    char *at = strstr(text, "\"codec_quantizers\": 0");
    cr_assert(at);
    at[20] = '1';
    free(tu_write_file(dir, "config.json", text, n));
    frt_fs_model *m = NULL;
    cr_assert_eq(frt_fs_model_open(dir, NULL, &m), FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "codec.quantizer.0.codebook"), "%s", frt_last_error());
    free(text);
    free(cfg_path);
    tu_rmtree(dir);
    free(dir);
    cr_assert_eq(open_edited("\"codec_strides\": [\n    8,", "\"codec_strides\": [\n    4,"),
                 FRT_ERR_FORMAT);
}

Test(fs_checkpoint, bad_config)
{
    cr_assert_eq(open_edited("\"ffn_kernel\": 9", "\"ffn_kernel\": 8"), FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "ffn_kernel"));
    cr_assert_eq(open_edited("\"model_type\": \"flashspeech\"", "\"model_type\": \"llama\""),
                 FRT_ERR_FORMAT);
    cr_assert_eq(open_edited("\"phonemes\"", "\"phonemes_x\""), FRT_ERR_FORMAT);
    cr_assert_eq(open_edited("\"phoneme_vocab_size\": 76", "\"phoneme_vocab_size\": 77"),
                 FRT_ERR_FORMAT);
    cr_assert_eq(open_edited("\"num_heads\": 2", "\"num_heads\": 3"), FRT_ERR_FORMAT);
    cr_assert_eq(open_edited("\"num_heads\": 2", "\"num_heads\": 4"), FRT_ERR_UNSUPPORTED);
    cr_assert_eq(open_edited("\"sigma_max\": 80.0", "\"sigma_max\": -1"), FRT_ERR_FORMAT);
    cr_assert_eq(open_edited("\"codec_strides\": [\n    8,", "\"codec_strides\": [\n    1,"),
                 FRT_ERR_FORMAT);
    cr_assert_eq(open_edited("\"hidden_size\": 32", "\"hidden_size\": \"x\""), FRT_ERR_FORMAT);
    frt_fs_model *m;
    cr_assert_eq(frt_fs_model_open("/nonexistent/flashspeech", NULL, &m), FRT_ERR_NOT_FOUND);
}

/* ---- threads: calls on one model serialise on its lock ---------------------- */

typedef struct {
    frt_fs_model *m;
    float *pcm;
    size_t n;
    frt_status s;
} synth_job;

static void *synth_thread(void *arg)
{
    synth_job *j = arg;
    int32_t ids[5] = {3, 20, 30, 40, 3};
    frt_fs_synth_opts o;
    frt_fs_synth_opts_default(&o);
    o.steps = 2;
    o.seed = 99;
    for (int r = 0; r < 3 && j->s == FRT_OK; r++) {
        frt_free(j->pcm);
        j->pcm = NULL;
        j->s = frt_fs_synthesize(j->m, ids, 5, NULL, &o, &j->pcm, &j->n);
    }
    return NULL;
}

Test(fs_threads, one_model_two_threads)
{
    frt_fs_model *m;
    cr_assert_eq(frt_fs_model_open(TINY, NULL, &m), FRT_OK);
    synth_job a = {.m = m}, b = {.m = m}, solo = {.m = m};
    synth_thread(&solo);
    cr_assert_eq(solo.s, FRT_OK, "%s", frt_last_error());
    pthread_t ta, tb;
    pthread_create(&ta, NULL, synth_thread, &a);
    pthread_create(&tb, NULL, synth_thread, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert(a.s == FRT_OK && b.s == FRT_OK);
    cr_assert(a.n == solo.n && b.n == solo.n && solo.n > 0);
    cr_assert_eq(memcmp(a.pcm, solo.pcm, solo.n * sizeof(float)), 0);
    cr_assert_eq(memcmp(b.pcm, solo.pcm, solo.n * sizeof(float)), 0);
    frt_free(a.pcm);
    frt_free(b.pcm);
    frt_free(solo.pcm);
    frt_fs_model_close(m);
}

/* ---- a BF16 checkpoint: converted at open, same audio within bf16 error -- */

/* Write dir/model.safetensors holding every tensor of the tiny checkpoint
 * rounded to BF16, and its config.json. */
static void write_bf16_copy(const char *dir)
{
    frt_st *src;
    cr_assert_eq(frt_st_open(TINY, &src), FRT_OK);
    size_t cap = 1 << 20, len = 0, off = 0;
    char *hdr = malloc(cap);
    cr_assert(hdr);
    len += (size_t)snprintf(hdr + len, cap - len, "{");
    int64_t n = frt_st_count(src);
    for (int64_t i = 0; i < n; i++) {
        frt_tensor t;
        cr_assert_eq(frt_st_get(src, frt_st_name(src, i), &t), FRT_OK);
        size_t bytes = (size_t)frt_tensor_numel(&t) * 2;
        len += (size_t)snprintf(hdr + len, cap - len, "%s\"%s\":{\"dtype\":\"BF16\",\"shape\":[",
                                i ? "," : "", frt_st_name(src, i));
        for (int d = 0; d < t.ndim; d++)
            len += (size_t)snprintf(hdr + len, cap - len, "%s%lld", d ? "," : "",
                                    (long long)t.shape[d]);
        len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off,
                                off + bytes);
        off += bytes;
        cr_assert(len < cap - 256);
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while ((8 + len) % 8) hdr[len++] = ' ';
    char path[4200];
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    uint64_t hl = len;
    fwrite(&hl, 8, 1, f);
    fwrite(hdr, 1, len, f);
    for (int64_t i = 0; i < n; i++) {
        frt_tensor t;
        frt_st_get(src, frt_st_name(src, i), &t);
        int64_t k = frt_tensor_numel(&t);
        for (int64_t j = 0; j < k; j++) {
            uint16_t b = frt_f32_to_bf16(((const float *)t.data)[j]);
            fwrite(&b, 2, 1, f);
        }
    }
    fclose(f);
    size_t cn;
    char *cfg = read_all(TINY "/config.json", &cn);
    free(tu_write_file(dir, "config.json", cfg, cn));
    free(cfg);
    free(hdr);
    frt_st_close(src);
}

Test(fs_checkpoint, bf16_weights)
{
    char *dir = tu_tmpdir();
    write_bf16_copy(dir);
    frt_fs_model *m32, *m16;
    cr_assert_eq(frt_fs_model_open(TINY, NULL, &m32), FRT_OK);
    cr_assert_eq(frt_fs_model_open(dir, NULL, &m16), FRT_OK, "%s", frt_last_error());
    cr_assert(m16->wused > 0 && m16->wused <= m16->wcap);
    /* the zero-prompt codec decoder: same weights up to bf16 rounding */
    int d = m32->cfg.latent_dim, t = 4;
    float z[16 * 4];
    for (int i = 0; i < d * t; i++) z[i] = sinf(0.37f * (float)i);
    size_t ns = (size_t)t * frt_fs_model_hop(m32);
    float *a = buf(ns), *b = buf(ns);
    m32->arena.used = m16->arena.used = 0;
    cr_assert_eq(fs_codec_decode(m32, z, t, a), FRT_OK);
    cr_assert_eq(fs_codec_decode(m16, z, t, b), FRT_OK);
    double e = rel_err(b, a, (int64_t)ns);
    cr_log_info("bf16 vs f32 weights, codec decoder: rel err %.3g", e);
    cr_assert(e > 0 && e < 0.1, "rel err %g", e);
    frt_free(a);
    frt_free(b);
    frt_fs_model_close(m32);
    frt_fs_model_close(m16);
    tu_rmtree(dir);
    free(dir);
}

/* ---- cancellation ------------------------------------------------------------ */

static bool cancel_after(void *user)
{
    int *left = user;
    return --*left < 0;
}

Test(fs_threads, cancel_callback_stops_the_call)
{
    frt_fs_model *m;
    cr_assert_eq(frt_fs_model_open(TINY, NULL, &m), FRT_OK);
    int32_t ids[4] = {3, 20, 30, 3};
    frt_fs_synth_opts o;
    frt_fs_synth_opts_default(&o);
    o.cancel = cancel_after;
    int polls = 1 << 30;
    o.cancel_user = &polls;
    float *pcm = NULL;
    size_t ns;
    cr_assert_eq(frt_fs_synthesize(m, ids, 4, NULL, &o, &pcm, &ns), FRT_OK);
    int used = (1 << 30) - polls;
    cr_assert(used > 10, "only %d polls", used);
    frt_free(pcm);
    /* cancel at every poll position in turn: each stops cleanly */
    for (int k = 0; k < used; k += 7) {
        polls = k;
        pcm = NULL;
        cr_assert_eq(frt_fs_synthesize(m, ids, 4, NULL, &o, &pcm, &ns), FRT_ERR_CANCELLED);
        cr_assert_null(pcm);
    }
    /* the callback does not outlive its call */
    o.cancel = NULL;
    cr_assert_eq(frt_fs_synthesize(m, ids, 4, NULL, &o, &pcm, &ns), FRT_OK);
    frt_free(pcm);
    frt_fs_model_close(m);
}

/* ---- allocation failures: every one reported, nothing leaked (ASan) ---------- */

Test(fs_limits, allocation_failures)
{
    int opened = 0;
    for (long k = 1; k < 200 && !opened; k++) {
        frt_fs_model *m = NULL;
        frt_alloc_fail_after(k);
        frt_status s = frt_fs_model_open(TINY, NULL, &m);
        frt_alloc_fail_after(0);
        if (s == FRT_OK) {
            opened = 1;
            frt_fs_model_close(m);
        } else {
            cr_assert_eq(s, FRT_ERR_NOMEM, "k %ld: %s", k, frt_last_error());
            cr_assert_null(m);
        }
    }
    cr_assert(opened);
    frt_fs_model *m;
    cr_assert_eq(frt_fs_model_open(TINY, NULL, &m), FRT_OK);
    int32_t ids[3] = {3, 20, 3};
    float *pcm = NULL, x[400] = {0};
    size_t ns;
    frt_fs_prompt *p = NULL;
    frt_alloc_fail_after(1);
    cr_assert_eq(frt_fs_synthesize(m, ids, 3, NULL, NULL, &pcm, &ns), FRT_ERR_NOMEM);
    frt_alloc_fail_after(1);
    cr_assert_eq(frt_fs_encode_prompt(m, x, 400, &p), FRT_ERR_NOMEM);
    frt_alloc_fail_after(0);
    cr_assert_null(pcm);
    cr_assert_null(p);
    frt_fs_limits huge = {.max_prompt_samples = (size_t)-1};
    frt_fs_model *m2 = NULL;
    cr_assert_eq(frt_fs_model_open(TINY, &huge, &m2), FRT_ERR_LIMIT);
    frt_fs_model_close(m);
}

/* ---- the arena budget of each module against its measured peak -------------- */

static void reset_peak(frt_fs_model *m)
{
    m->arena.used = 0;
    m->arena.peak = 0;
}

/* peak bytes within the formula's floats, give or take the 64-byte rounding
 * of at most 64 takes */
static void within(const frt_fs_model *m, size_t floats, const char *what)
{
    cr_log_info("%s: %zu of %zu budgeted bytes", what, m->arena.peak, floats * sizeof(float));
    cr_assert(m->arena.peak <= floats * sizeof(float) + 64 * 64, "%s: %zu bytes, budget %zu", what,
              m->arena.peak, floats * sizeof(float));
}

Test(fs_module, scratch_budgets)
{
    const fs_config *c = &model->cfg;
    int64_t n, t;
    const float *spk = g32("prompt_encoder.out", NULL);
    const int32_t *ids = gi32("phoneme_encoder.ids", &n);
    const float *e = g32("length_regulator.out", &t);
    t /= c->hidden;
    float *out = buf((size_t)(t * c->hidden * 4 + 4096));
    reset_peak(model);
    cr_assert_eq(fs_phoneme_encoder(model, ids, n, spk, out), FRT_OK);
    within(model, fs_scratch_encoder(c, n), "phoneme encoder");
    int64_t tp;
    const float *lat = g32("prompt_encoder.latents", &tp);
    tp /= c->latent_dim;
    reset_peak(model);
    cr_assert_eq(fs_prompt_encoder(model, lat, tp, out), FRT_OK);
    within(model, fs_scratch_encoder(c, tp), "prompt encoder");
    reset_peak(model);
    cr_assert_eq(fs_prosody_predict(model, &model->w.pitch, e, t, spk, out), FRT_OK);
    within(model, fs_scratch_prosody(c, t), "pitch predictor");
    reset_peak(model);
    cr_assert_eq(fs_refine(model, &model->w.pitch_ref, g32("pitch_refiner.init", NULL),
                           g32("pitch_refiner.eps", NULL), t, e, spk, out),
                 FRT_OK);
    within(model, fs_scratch_wavenet(c, c->refiner_channels, 1, t, true), "pitch refiner");
    float *ct = buf((size_t)(t * c->hidden));
    fs_transpose(ct, g32("pitch_embed.out", NULL), t, c->hidden);
    reset_peak(model);
    cr_assert_eq(fs_consistency(model, &model->w.lcm, g32("lcm.x", NULL), t, 2.0, ct, spk, out),
                 FRT_OK);
    within(model, fs_scratch_wavenet(c, c->wn_channels, c->latent_dim, t, false), "LCM");
    reset_peak(model);
    cr_assert_eq(fs_codec_decode(model, g32("codec_decoder.z", NULL), 5, out), FRT_OK);
    within(model, fs_codec_scratch(c, 0, 5), "codec decoder");
    int64_t np;
    const float *pcm = g32("codec_encoder.pcm", &np);
    int64_t ns = np / c->hop * c->hop; /* whole frames: no padding needed */
    reset_peak(model);
    cr_assert_eq(fs_codec_encode(model, pcm, ns, out), FRT_OK);
    within(model, fs_codec_scratch(c, ns, 0), "codec encoder");
    frt_free(ct);
    frt_free(out);
}

/* frt_fs_model_open_st (config text + a checkpoint already open) builds the
 * same model as the directory open; st stays the caller's, also when the
 * config is refused. */
Test(fs_open, from_config_text_and_checkpoint)
{
    FILE *f = fopen(TINY "/config.json", "rb");
    cr_assert(f);
    static char text[1 << 16];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = '\0';
    frt_st *st;
    cr_assert_eq(frt_st_open(TINY, &st), FRT_OK, "%s", frt_last_error());
    frt_fs_model *a, *b = NULL;
    cr_assert_eq(frt_fs_model_open(TINY, NULL, &a), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_fs_model_open_st("{\"hidden_size\": ", st, NULL, &b), FRT_ERR_FORMAT);
    cr_assert_eq(frt_fs_model_open_st(NULL, st, NULL, &b), FRT_ERR_INVALID_ARG);
    cr_assert_null(b);
    cr_assert_eq(frt_fs_model_open_st(text, st, NULL, &b), FRT_OK, "%s", frt_last_error());
    const int32_t ids[] = {4, 20, 31, 3, 45, 13, 5};
    frt_fs_synth_opts o;
    frt_fs_synth_opts_default(&o);
    o.steps = 2;
    o.seed = 11;
    float *pa, *pb;
    size_t na, nb;
    cr_assert_eq(frt_fs_synthesize(a, ids, 7, NULL, &o, &pa, &na), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_fs_synthesize(b, ids, 7, NULL, &o, &pb, &nb), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(na, nb);
    cr_assert(na > 0);
    cr_assert_eq(memcmp(pa, pb, na * sizeof(float)), 0, "the two opens synthesise differently");
    frt_free(pa);
    frt_free(pb);
    frt_fs_model_close(b);
    frt_fs_model_close(a);
    frt_st_close(st);
}

/* ---- the vocoder codec ("codec_type": "vocoder") ------------------------------ */

#define TINY_VOC    FRT_TEST_DATA "/speech/flashspeech-tiny-vocoder"
#define GOLDENS_VOC FRT_TEST_DATA "/speech/goldens/flashspeech-tiny-vocoder.safetensors"

static void setup_vocoder(void)
{
    cr_assert_eq(frt_fs_model_open(TINY_VOC, NULL, &model), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_st_open(GOLDENS_VOC, &gold), FRT_OK, "%s", frt_last_error());
}

TestSuite(fs_vocoder, .init = setup_vocoder, .fini = teardown);

Test(fs_vocoder, config_and_hop)
{
    cr_assert(model->cfg.vocoder);
    cr_assert_eq(frt_fs_model_hop(model), 200);
    cr_assert_eq(model->voc.bands, 14);
    cr_assert_eq(model->cfg.latent_dim, 16);
}

/* the analysis, padding path included (the audio is not whole frames) */
Test(fs_vocoder, encoder)
{
    int64_t n;
    const float *pcm = g32("vocoder_encoder.pcm", &n);
    int hop = frt_fs_model_hop(model), d = model->cfg.latent_dim;
    int64_t frames = (n + hop - 1) / hop;
    cr_assert(frames * hop > n);
    float *x = buf((size_t)(frames * hop)), *lat = buf((size_t)(frames * d));
    memcpy(x, pcm, (size_t)n * sizeof(float));
    memset(x + n, 0, (size_t)(frames * hop - n) * sizeof(float));
    model->arena.used = 0;
    cr_assert_eq(fs_vocoder_encode(model, x, frames * hop, lat), FRT_OK, "%s", frt_last_error());
    check("vocoder encoder", lat, "vocoder_encoder.out");
    /* the tone is voiced at its F0, the noise and the silence are not */
    const fs_vocoder *v = &model->voc;
    float lf0 = lat[10 * d] * model->cfg.latent_norm * v->scale[0] + v->mean[0];
    float voiced = lat[10 * d + 1] * model->cfg.latent_norm * v->scale[1] + v->mean[1];
    float unvoiced = lat[(frames - 3) * d + 1] * model->cfg.latent_norm * v->scale[1] + v->mean[1];
    cr_assert(fabsf(expf(lf0) - 130.0f) < 5.0f, "F0 at frame 10: %g Hz", expf(lf0));
    cr_assert(voiced > 0.8f && fabsf(unvoiced) < 1e-6f, "voicing %g / %g", voiced, unvoiced);
    frt_free(x);
    frt_free(lat);
}

static void decode_check(const char *lf0_name, const char *golden)
{
    int64_t n;
    const float *z = g32("vocoder_decoder.z", &n);
    int64_t t = n / model->cfg.latent_dim;
    const float *lf0 = lf0_name ? g32(lf0_name, NULL) : NULL;
    float *pcm = buf((size_t)(t * frt_fs_model_hop(model)));
    model->arena.used = 0;
    cr_assert_eq(fs_vocoder_decode(model, z, lf0, t, pcm), FRT_OK, "%s", frt_last_error());
    check(golden, pcm, golden);
    frt_free(pcm);
}

Test(fs_vocoder, decoder_own_f0)
{
    decode_check(NULL, "vocoder_decoder.out");
}

Test(fs_vocoder, decoder_pitch_stream)
{
    decode_check("vocoder_decoder.log_f0", "vocoder_decoder.out_f0");
}

/* prompt from the test audio, seeded synthesis, 1 and 2 steps */
static void vocoder_pipeline(int steps, const char *pcm_name)
{
    int64_t n, np, ref_n;
    const int32_t *ids = gi32("pipeline.ids", &n);
    const float *audio = g32("vocoder_encoder.pcm", &np);
    frt_fs_prompt *prompt;
    cr_assert_eq(frt_fs_encode_prompt(model, audio, (size_t)np, &prompt), FRT_OK, "%s",
                 frt_last_error());
    frt_fs_synth_opts o;
    frt_fs_synth_opts_default(&o);
    o.steps = steps;
    o.seed = (uint64_t)gi32("pipeline.seed", NULL)[0];
    float *pcm;
    size_t ns;
    cr_assert_eq(frt_fs_synthesize(model, ids, (size_t)n, prompt, &o, &pcm, &ns), FRT_OK, "%s",
                 frt_last_error());
    g32(pcm_name, &ref_n);
    cr_assert_eq((int64_t)ns, ref_n, "%zu samples, reference %lld", ns, (long long)ref_n);
    check(pcm_name, pcm, pcm_name);
    frt_free(pcm);
    frt_fs_prompt_free(prompt);
}

Test(fs_vocoder, pipeline_one_step)
{
    vocoder_pipeline(1, "pipeline.pcm1");
}

Test(fs_vocoder, pipeline_two_steps)
{
    vocoder_pipeline(2, "pipeline.pcm2");
}

Test(fs_vocoder, scratch_budgets)
{
    const fs_config *c = &model->cfg;
    int64_t n, np;
    const float *z = g32("vocoder_decoder.z", &n);
    int64_t t = n / c->latent_dim;
    float *out = buf((size_t)(t * c->hop));
    reset_peak(model);
    cr_assert_eq(fs_vocoder_decode(model, z, NULL, t, out), FRT_OK);
    within(model, fs_vocoder_scratch(c, &model->voc, 0, t), "vocoder decoder");
    const float *pcm = g32("vocoder_encoder.pcm", &np);
    int64_t ns = np / c->hop * c->hop;
    reset_peak(model);
    cr_assert_eq(fs_vocoder_encode(model, pcm, ns, out), FRT_OK);
    within(model, fs_vocoder_scratch(c, &model->voc, ns, 0), "vocoder encoder");
    frt_free(out);
}

/* The vocoder config with `from` replaced by `to`, opened. */
static frt_status open_vocoder_edited(const char *from, const char *to)
{
    size_t n;
    char *cfg = read_all(TINY_VOC "/config.json", &n);
    char *at = strstr(cfg, from);
    cr_assert(at, "config lacks %s", from);
    size_t out_n = n - strlen(from) + strlen(to), pre = (size_t)(at - cfg);
    char *text = malloc(out_n + 1);
    cr_assert(text);
    memcpy(text, cfg, pre);
    memcpy(text + pre, to, strlen(to));
    strcpy(text + pre + strlen(to), at + strlen(from));
    frt_st *st;
    cr_assert_eq(frt_st_open(TINY_VOC, &st), FRT_OK, "%s", frt_last_error());
    frt_fs_model *m = NULL;
    frt_status s = frt_fs_model_open_st(text, st, NULL, &m);
    frt_fs_model_close(m);
    frt_st_close(st);
    free(text);
    free(cfg);
    return s;
}

Test(fs_checkpoint, vocoder_bad_config)
{
    cr_assert_eq(open_vocoder_edited("\"vocoder\"", "\"vocoder2\""), FRT_ERR_FORMAT);
    cr_assert_eq(open_vocoder_edited("\"vocoder\"", "\"neural\""), FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "prompt_match"), "%s", frt_last_error());
    cr_assert(strstr(frt_last_error(), "codec_type"), "%s", frt_last_error());
    cr_assert_eq(open_vocoder_edited("\"vocoder_bands\": 14", "\"vocoder_bands\": 13"),
                 FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "latent_dim"), "%s", frt_last_error());
    cr_assert_eq(open_vocoder_edited("\"vocoder_n_fft\": 512", "\"vocoder_n_fft\": 500"),
                 FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "power of two"), "%s", frt_last_error());
    cr_assert_eq(open_vocoder_edited("\"vocoder_n_fft\": 512", "\"vocoder_n_fft\": 256"),
                 FRT_ERR_FORMAT);
    cr_assert_eq(
        open_vocoder_edited("\"vocoder_scale\": [\n    0.5", "\"vocoder_scale\": [\n    0"),
        FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "vocoder_scale[0]"), "%s", frt_last_error());
    cr_assert_eq(open_vocoder_edited("\"vocoder_mean\": [", "\"vocoder_mean\": [1, "),
                 FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "vocoder_mean"), "%s", frt_last_error());
    cr_assert_eq(open_vocoder_edited("\"vocoder_mean\"", "\"vocoder_mean_\""), FRT_ERR_FORMAT);
    cr_assert_eq(open_vocoder_edited("\"vocoder_win\": 400", "\"vocoder_win\": 401"),
                 FRT_ERR_FORMAT);
}

/* ---- the vocoder's fixed equaliser ("vocoder_eq") ------------------------------ */

/* The tiny vocoder model with `extra` (JSON members) after its
 * "vocoder_bands", opened into *out. */
static frt_status open_vocoder_with(const char *extra, frt_fs_model **out)
{
    size_t n;
    char *cfg = read_all(TINY_VOC "/config.json", &n);
    const char *key = "\"vocoder_bands\": 14";
    char *at = strstr(cfg, key);
    cr_assert(at, "config lacks %s", key);
    size_t pre = (size_t)(at - cfg) + strlen(key);
    char *text = malloc(n + strlen(extra) + 1);
    cr_assert(text);
    memcpy(text, cfg, pre);
    strcpy(text + pre, extra);
    strcat(text, cfg + pre);
    frt_st *st;
    cr_assert_eq(frt_st_open(TINY_VOC, &st), FRT_OK, "%s", frt_last_error());
    *out = NULL;
    frt_status s = frt_fs_model_open_st(text, st, NULL, out);
    frt_st_close(st);
    free(text);
    free(cfg);
    return s;
}

/* ... with "vocoder_eq": eq_of(k) for every bin k (neither: the config as
 * it is), or the raw JSON value `raw` when given. */
static frt_status open_vocoder_eq(double (*eq_of)(int), const char *raw, frt_fs_model **out)
{
    char *extra = malloc(64 * 257 + (raw ? strlen(raw) : 0) + 64);
    cr_assert(extra);
    size_t len = 0;
    extra[0] = 0;
    if (raw)
        len += (size_t)sprintf(extra, ", \"vocoder_eq\": %s", raw);
    else if (eq_of) {
        len += (size_t)sprintf(extra, ", \"vocoder_eq\": [");
        for (int k = 0; k < 257; k++)
            len += (size_t)sprintf(extra + len, "%s%.17g", k ? ", " : "", eq_of(k));
        sprintf(extra + len, "]");
    }
    frt_status s = open_vocoder_with(extra, out);
    free(extra);
    return s;
}

static double eq_half(int k)
{
    (void)k;
    return log(0.5);
}

/* -80 dB above 4 kHz (bin 128 of 512 at 16 kHz) */
static double eq_lowpass(int k)
{
    return k > 128 ? log(1e-4) : 0.0;
}

static float *decode_with(frt_fs_model *m, int64_t *samples)
{
    int64_t n;
    const float *z = g32("vocoder_decoder.z", &n);
    int64_t t = n / m->cfg.latent_dim;
    float *pcm = buf((size_t)(t * m->cfg.hop));
    m->arena.used = 0;
    cr_assert_eq(fs_vocoder_decode(m, z, NULL, t, pcm), FRT_OK, "%s", frt_last_error());
    *samples = t * m->cfg.hop;
    return pcm;
}

/* Power of x [n] above and below bin `split` of an n_fft 512 spectrum,
 * summed over 512-sample blocks (naive DFT: the test's own arithmetic). */
static void split_power(const float *x, int64_t n, int split, double *lo, double *hi)
{
    *lo = *hi = 0;
    for (int64_t s = 0; s + 512 <= n; s += 512)
        for (int k = 1; k < 256; k++) {
            if (k >= split - 8 && k <= split + 8) continue; /* the edge's leakage */
            double re = 0, im = 0, tau = 6.283185307179586;
            for (int j = 0; j < 512; j++) {
                double w = 0.5 - 0.5 * cos(tau * j / 512), a = tau * k * j / 512;
                re += w * x[s + j] * cos(a), im -= w * x[s + j] * sin(a);
            }
            *(k < split ? lo : hi) += re * re + im * im;
        }
}

Test(fs_vocoder, eq_scales_the_output)
{
    frt_fs_model *flat, *half;
    cr_assert_eq(open_vocoder_eq(NULL, NULL, &flat), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(open_vocoder_eq(eq_half, NULL, &half), FRT_OK, "%s", frt_last_error());
    cr_assert_not_null(half->voc.eq_taps);
    cr_assert_null(flat->voc.eq_taps);
    int64_t n, n2;
    float *a = decode_with(flat, &n), *b = decode_with(half, &n2);
    cr_assert_eq(n, n2);
    double peak = 0, err = 0;
    for (int64_t s = 0; s < n; s++) {
        peak = fmax(peak, fabs(a[s]));
        err = fmax(err, fabs(0.5 * a[s] - b[s]));
    }
    cr_assert(peak > 1e-3 && err < 1e-6 * peak, "peak %g, |0.5 a - b| %g", peak, err);
    frt_free(a);
    frt_free(b);
    frt_fs_model_close(half);
    frt_fs_model_close(flat);
}

Test(fs_vocoder, eq_shapes_the_spectrum)
{
    frt_fs_model *flat, *lp;
    cr_assert_eq(open_vocoder_eq(NULL, NULL, &flat), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(open_vocoder_eq(eq_lowpass, NULL, &lp), FRT_OK, "%s", frt_last_error());
    int64_t n;
    float *a = decode_with(flat, &n), *b = decode_with(lp, &n);
    double alo, ahi, blo, bhi;
    split_power(a, n, 128, &alo, &ahi);
    split_power(b, n, 128, &blo, &bhi);
    /* below 4 kHz nearly as it was, above it ~80 dB down (the 257-tap
     * Blackman-windowed filter's stop band: at least 50 dB) */
    cr_assert(ahi > 0 && alo > 0, "flat: %g / %g", alo, ahi);
    cr_assert(fabs(10 * log10(blo / alo)) < 1.0, "low band %g -> %g", alo, blo);
    cr_assert(10 * log10(ahi / bhi) > 50.0, "high band %g -> %g", ahi, bhi);
    frt_free(a);
    frt_free(b);
    frt_fs_model_close(lp);
    frt_fs_model_close(flat);
}

Test(fs_checkpoint, vocoder_bad_eq)
{
    frt_fs_model *m;
    cr_assert_eq(open_vocoder_eq(NULL, "[0, 0]", &m), FRT_ERR_FORMAT);
    cr_assert(strstr(frt_last_error(), "vocoder_eq"), "%s", frt_last_error());
    cr_assert_eq(open_vocoder_eq(NULL, "{}", &m), FRT_ERR_FORMAT);
    cr_assert_eq(open_vocoder_eq(NULL, "\"flat\"", &m), FRT_ERR_FORMAT);
    /* 257 entries, one of them out of range / not a number */
    char raw[257 * 8 + 16], *p = raw;
    for (int bad = 0; bad < 3; bad++) {
        p = raw + sprintf(raw, "[");
        for (int k = 0; k < 257; k++)
            p += sprintf(p, "%s%s", k ? ", " : "",
                         k != 100 ? "0" : bad == 0 ? "12" : bad == 1 ? "-9.3" : "null");
        sprintf(p, "]");
        cr_assert_eq(open_vocoder_eq(NULL, raw, &m), FRT_ERR_FORMAT, "bad %d", bad);
        cr_assert(strstr(frt_last_error(), "vocoder_eq[100]"), "%s", frt_last_error());
    }
    cr_assert_eq(open_vocoder_eq(NULL, "null", &m), FRT_OK, "%s", frt_last_error());
    cr_assert_null(m->voc.eq_taps);
    frt_fs_model_close(m);
}

/* ---- the noise's weight in voiced excitation ("vocoder_noise_gain") --------------- */

static frt_status open_vocoder_gain(const char *gain, frt_fs_model **out)
{
    char extra[64];
    snprintf(extra, sizeof extra, ", \"vocoder_noise_gain\": %s", gain);
    return open_vocoder_with(extra, out);
}

Test(fs_vocoder, noise_gain)
{
    frt_fs_model *plain, *one, *low;
    cr_assert_eq(open_vocoder_eq(NULL, NULL, &plain), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(open_vocoder_gain("1", &one), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(open_vocoder_gain("0.15", &low), FRT_OK, "%s", frt_last_error());
    int64_t n;
    float *a = decode_with(plain, &n), *b = decode_with(one, &n), *c = decode_with(low, &n);
    /* 1 is the default; less noise changes the voiced frames' output */
    cr_assert(memcmp(a, b, (size_t)n * sizeof(float)) == 0);
    double diff = 0, peak = 0;
    for (int64_t s = 0; s < n; s++) {
        diff = fmax(diff, fabs(a[s] - c[s]));
        peak = fmax(peak, fabs(a[s]));
    }
    cr_assert(diff > 0.05 * peak, "max difference %g of peak %g", diff, peak);
    frt_free(a);
    frt_free(b);
    frt_free(c);
    frt_fs_model_close(low);
    frt_fs_model_close(one);
    frt_fs_model_close(plain);
    const char *bad[] = {"0", "-0.5", "1.5", "\"x\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        frt_fs_model *m;
        cr_assert_eq(open_vocoder_gain(bad[i], &m), FRT_ERR_FORMAT, "%s", bad[i]);
        cr_assert(strstr(frt_last_error(), "vocoder_noise_gain"), "%s", frt_last_error());
    }
}
