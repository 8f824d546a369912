/* Public speech API (include/flashrt/speech.h) on the tiny random
 * checkpoint: streaming per sentence, determinism, stopping, options,
 * reference audio, files, bad input, threads. Random weights make the
 * audio noise, so these check the plumbing, not the sound. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashrt/speech.h"
#include "testutil.h"

#define MODEL FRT_TEST_DATA "/speech/flashspeech-tiny"

typedef struct {
    int calls;
    size_t samples;
    size_t sentences[64];
    size_t text_done[64];
    int last[64];
    int bad_rate;
    int nonfinite;
    float *pcm; /* everything, concatenated */
    size_t cap;
    int stop_after; /* return nonzero after this many calls (0: never) */
    frt_speech *cancel_sp;
} collect;

static int on_chunk(const frt_speech_chunk *c, void *user)
{
    collect *k = user;
    if (k->calls < 64) {
        k->sentences[k->calls] = c->sentence;
        k->text_done[k->calls] = c->text_done;
        k->last[k->calls] = c->last;
    }
    k->calls++;
    if (c->sample_rate != 16000) k->bad_rate++;
    for (size_t i = 0; i < c->n; i++)
        if (!isfinite(c->pcm[i])) k->nonfinite++;
    if (k->samples + c->n > k->cap) {
        k->cap = 2 * (k->samples + c->n);
        k->pcm = realloc(k->pcm, k->cap * sizeof *k->pcm);
    }
    if (c->n) memcpy(k->pcm + k->samples, c->pcm, c->n * sizeof *c->pcm);
    k->samples += c->n;
    if (k->cancel_sp) frt_speech_cancel(k->cancel_sp);
    return k->stop_after && k->calls >= k->stop_after;
}

static frt_speech *open_tiny(void)
{
    frt_speech *sp = NULL;
    cr_assert_eq(frt_speech_open(MODEL, &sp), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_speech_sample_rate(sp), 16000);
    return sp;
}

static frt_speech_options phoneme_opts(void)
{
    frt_speech_options o;
    frt_speech_options_init(&o);
#ifndef FRT_HAVE_ESPEAK
    o.phoneme_input = 1;
#endif
    return o;
}

#ifdef FRT_HAVE_ESPEAK
#define TWO_SENTENCES "Hello there. How are you today?"
#else
#define TWO_SENTENCES "h_ə_l_ˈoʊ ð_ˈɛɹ. h_ˈaʊ ɑːɹ j_uː?"
#endif

Test(speech_api, open_errors)
{
    frt_speech *sp = (frt_speech *)0x1;
    cr_assert_eq(frt_speech_open(FRT_TEST_DATA "/speech/no-such-model", &sp), FRT_ERR_NOT_FOUND);
    cr_assert(strstr(frt_last_error(), "no-such-model"));
    cr_assert_eq(sp, (frt_speech *)0x1, "*out untouched on failure");
    cr_assert_eq(frt_speech_open(NULL, &sp), FRT_ERR_INVALID_ARG);
    /* A directory without a model. */
    char *dir = tu_tmpdir();
    cr_assert_neq(frt_speech_open(dir, &sp), FRT_OK);
    tu_rmtree(dir);
    free(dir);
    frt_speech_close(NULL);
}

Test(speech_api, one_chunk_per_sentence_in_order)
{
    frt_speech *sp = open_tiny();
    frt_speech_options o = phoneme_opts();
    collect k = {0};
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &k), FRT_OK, "%s",
                 frt_last_error());
    cr_assert_geq(k.calls, 2);
    cr_assert_eq(k.bad_rate, 0);
    cr_assert_eq(k.nonfinite, 0);
    cr_assert_eq(k.sentences[0], 0);
    /* The first chunk came before the second sentence was consumed. */
    cr_assert_lt(k.text_done[0], strlen(TWO_SENTENCES));
    cr_assert_eq(k.text_done[k.calls - 1], strlen(TWO_SENTENCES));
    for (int i = 1; i < k.calls; i++) cr_assert_geq(k.sentences[i], k.sentences[i - 1]);
    for (int i = 0; i < k.calls; i++) cr_assert_eq(k.last[i], i == k.calls - 1, "chunk %d", i);
    cr_assert_eq(k.sentences[k.calls - 1], 1);
    cr_assert_gt(k.samples, 0);
    free(k.pcm);
    frt_speech_close(sp);
}

Test(speech_api, seed_reproduces_and_options_change_audio)
{
    frt_speech *sp = open_tiny();
    frt_speech_options o = phoneme_opts();
    o.seed = 7;
    collect a = {0}, b = {0}, c = {0}, d = {0};
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &a), FRT_OK);
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &b), FRT_OK);
    cr_assert_eq(a.samples, b.samples);
    cr_assert_eq(memcmp(a.pcm, b.pcm, a.samples * sizeof *a.pcm), 0, "same seed, same audio");
    o.seed = 8;
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &c), FRT_OK);
    cr_assert(c.samples != a.samples || memcmp(a.pcm, c.pcm, a.samples * sizeof *a.pcm) != 0,
              "another seed, other audio");
    o.seed = 7;
    o.steps = 2;
    o.sigma_inter = 2.5f;
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &d), FRT_OK, "%s",
                 frt_last_error());
    cr_assert_eq(d.nonfinite, 0);
    free(a.pcm);
    free(b.pcm);
    free(c.pcm);
    free(d.pcm);
    frt_speech_close(sp);
}

Test(speech_api, stop_from_callback_and_cancel)
{
    frt_speech *sp = open_tiny();
    frt_speech_options o = phoneme_opts();
    collect k = {.stop_after = 1};
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &k), FRT_ERR_CANCELLED);
    cr_assert_eq(k.calls, 1, "no chunk after the callback said stop");
    free(k.pcm);
    collect c = {.cancel_sp = sp};
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &c), FRT_ERR_CANCELLED);
    cr_assert_eq(c.calls, 1);
    free(c.pcm);
    /* The next synthesis starts uncancelled. */
    collect n = {0};
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &n), FRT_OK);
    free(n.pcm);
    frt_speech_close(sp);
}

Test(speech_api, bad_input_is_an_error_not_a_crash)
{
    frt_speech *sp = open_tiny();
    frt_speech_options o = phoneme_opts();
    collect k = {0};
    cr_assert_eq(frt_speech_synthesize(sp, "ok \xC3\x28 no", &o, on_chunk, &k), FRT_ERR_FORMAT);
    int64_t off;
    frt_last_error_detail(NULL, NULL, &off);
    cr_assert_eq(off, 3);
    cr_assert_eq(frt_speech_synthesize(sp, "", &o, on_chunk, &k), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_speech_synthesize(sp, " \n\t ", &o, on_chunk, &k), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_speech_synthesize(sp, "...!?", &o, on_chunk, &k), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_speech_synthesize(sp, NULL, &o, on_chunk, &k), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_speech_synthesize(sp, "hi", &o, NULL, &k), FRT_ERR_INVALID_ARG);
    frt_speech_options bad = o;
    bad.steps = 3;
    cr_assert_eq(frt_speech_synthesize(sp, "hi", &bad, on_chunk, &k), FRT_ERR_INVALID_ARG);
    bad = o;
    bad.speed = 0;
    cr_assert_eq(frt_speech_synthesize(sp, "hi", &bad, on_chunk, &k), FRT_ERR_INVALID_ARG);
    bad = o;
    bad.sigma_inter = NAN;
    cr_assert_eq(frt_speech_synthesize(sp, "hi", &bad, on_chunk, &k), FRT_ERR_INVALID_ARG);
    bad = o;
    bad.ref_path = "/nonexistent/ref.wav";
    cr_assert_eq(frt_speech_synthesize(sp, "hi", &bad, on_chunk, &k), FRT_ERR_NOT_FOUND);
    cr_assert_eq(k.calls, 0);
    /* Symbols the inventory lacks are skipped; the rest is spoken. */
    o.phoneme_input = 1;
    cr_assert_eq(frt_speech_synthesize(sp, "ʘʘ h_ə_l_ˈoʊ", &o, on_chunk, &k), FRT_OK, "%s",
                 frt_last_error());
    cr_assert_gt(k.samples, 0);
    cr_assert_eq(frt_speech_synthesize(sp, "ʘʘ ǂ", &o, on_chunk, &k), FRT_ERR_INVALID_ARG);
    free(k.pcm);
    frt_speech_close(sp);
}

#ifndef FRT_HAVE_ESPEAK
Test(speech_api, text_without_espeak_is_unsupported)
{
    frt_speech *sp = open_tiny();
    collect k = {0};
    cr_assert_eq(frt_speech_synthesize(sp, "Hello.", NULL, on_chunk, &k), FRT_ERR_UNSUPPORTED);
    cr_assert(strstr(frt_last_error(), "espeak-ng"));
    frt_speech_close(sp);
}
#endif

static char *write_ref(const char *dir, const char *name, int format, int rate, int ch)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
    SF_INFO info = {.samplerate = rate, .channels = ch, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    cr_assert(sf);
    size_t n = (size_t)rate; /* 1 s */
    float *x = malloc(n * (size_t)ch * sizeof *x);
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    tu_fill_uniform(&r, x, n * (size_t)ch, -0.3f, 0.3f);
    sf_writef_float(sf, x, (sf_count_t)n);
    sf_close(sf);
    free(x);
    return path;
}

Test(speech_api, reference_audio)
{
    frt_speech *sp = open_tiny();
    char *dir = tu_tmpdir();
    char *wav = write_ref(dir, "ref.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2);
    char *ogg = write_ref(dir, "ref.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 22050, 1);
    frt_speech_options o = phoneme_opts();
    collect none = {0}, a = {0}, b = {0};
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &none), FRT_OK);
    o.ref_path = wav;
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &a), FRT_OK, "%s",
                 frt_last_error());
    cr_assert(a.samples != none.samples || memcmp(a.pcm, none.pcm, a.samples * sizeof *a.pcm) != 0,
              "the reference must change the output");
    o.ref_path = ogg;
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &b), FRT_OK, "%s",
                 frt_last_error());
    /* Back to the first reference: the engine's cached prompt must follow. */
    collect a2 = {0};
    o.ref_path = wav;
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &a2), FRT_OK);
    cr_assert_eq(a2.samples, a.samples);
    cr_assert_eq(memcmp(a2.pcm, a.pcm, a.samples * sizeof *a.pcm), 0);
    cr_assert(b.samples != a.samples || memcmp(a.pcm, b.pcm, a.samples * sizeof *a.pcm) != 0,
              "another reference, other audio");
    free(a2.pcm);
    /* In memory, at another rate. */
    float pcm[8000];
    for (int i = 0; i < 8000; i++) pcm[i] = 0.2f * sinf((float)i * 0.05f);
    o.ref_path = NULL;
    o.ref_pcm = pcm;
    o.ref_len = 8000;
    o.ref_rate = 8000;
    collect c = {0};
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &c), FRT_OK, "%s",
                 frt_last_error());
    o.ref_rate = 0;
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &c), FRT_ERR_INVALID_ARG);
    /* Not audio. */
    char *junk = tu_write_file(dir, "junk.wav", "RIFF....WAVEjunkjunk", 20);
    o.ref_pcm = NULL;
    o.ref_path = junk;
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &c), FRT_ERR_FORMAT);
    free(none.pcm);
    free(a.pcm);
    free(b.pcm);
    free(c.pcm);
    free(wav);
    free(ogg);
    free(junk);
    tu_rmtree(dir);
    free(dir);
    frt_speech_close(sp);
}

Test(speech_api, whole_file_helper)
{
    frt_speech *sp = open_tiny();
    char *dir = tu_tmpdir();
    frt_speech_options o = phoneme_opts();
    o.seed = 3;
    collect k = {0};
    cr_assert_eq(frt_speech_synthesize(sp, TWO_SENTENCES, &o, on_chunk, &k), FRT_OK);
    const char *names[] = {"a.wav", "a.flac", "a.ogg"};
    for (int i = 0; i < 3; i++) {
        char *path = NULL;
        cr_assert(asprintf(&path, "%s/%s", dir, names[i]) > 0);
        cr_assert_eq(frt_speech_synthesize_to_file(sp, TWO_SENTENCES, &o, path), FRT_OK, "%s",
                     frt_last_error());
        SF_INFO info = {0};
        SNDFILE *sf = sf_open(path, SFM_READ, &info);
        cr_assert(sf, "%s", names[i]);
        cr_assert_eq(info.samplerate, 16000);
        cr_assert_eq(info.channels, 1);
        cr_assert_eq((size_t)info.frames, k.samples, "%s", names[i]);
        sf_close(sf);
        free(path);
    }
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/a.mp3", dir) > 0);
    cr_assert_eq(frt_speech_synthesize_to_file(sp, TWO_SENTENCES, &o, path), FRT_ERR_UNSUPPORTED);
    free(path);
    cr_assert_eq(frt_speech_synthesize_to_file(sp, TWO_SENTENCES, &o, "/nonexistent/a.wav"),
                 FRT_ERR_IO);
    free(k.pcm);
    tu_rmtree(dir);
    free(dir);
    frt_speech_close(sp);
}

Test(speech_api, long_text_streams_sentence_by_sentence)
{
    /* Many sentences: chunks keep coming in order and the last is marked;
     * stop after a few so the test stays short. */
    frt_speech *sp = open_tiny();
    frt_speech_options o = phoneme_opts();
    size_t reps = 2000, unit = strlen(TWO_SENTENCES) + 1;
    char *text = malloc(reps * unit + 1);
    for (size_t i = 0; i < reps; i++) {
        memcpy(text + i * unit, TWO_SENTENCES, unit - 1);
        text[i * unit + unit - 1] = ' ';
    }
    text[reps * unit] = 0;
    collect k = {.stop_after = 6};
    cr_assert_eq(frt_speech_synthesize(sp, text, &o, on_chunk, &k), FRT_ERR_CANCELLED);
    cr_assert_eq(k.calls, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(k.sentences[i], (size_t)i);
        cr_assert_lt(k.text_done[i], strlen(text) / 100);
        cr_assert_eq(k.last[i], 0);
    }
    free(k.pcm);
    free(text);
    frt_speech_close(sp);
}

typedef struct {
    frt_speech *sp;
    frt_speech_options o;
    frt_status st;
    collect k;
} job;

static void *synth_job(void *arg)
{
    job *j = arg;
    j->st = frt_speech_synthesize(j->sp, TWO_SENTENCES, &j->o, on_chunk, &j->k);
    return NULL;
}

Test(speech_api, threads_share_an_engine_or_use_two)
{
    frt_speech *sp1 = open_tiny(), *sp2 = open_tiny();
    job ref = {.sp = sp1, .o = phoneme_opts()};
    ref.o.seed = 11;
    synth_job(&ref);
    cr_assert_eq(ref.st, FRT_OK);
    job j[3] = {{.sp = sp1, .o = ref.o}, {.sp = sp1, .o = ref.o}, {.sp = sp2, .o = ref.o}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, synth_job, &j[i]);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(j[i].st, FRT_OK, "thread %d", i);
        cr_assert_eq(j[i].k.samples, ref.k.samples);
        cr_assert_eq(memcmp(j[i].k.pcm, ref.k.pcm, ref.k.samples * sizeof(float)), 0,
                     "thread %d: same seed, same audio", i);
        free(j[i].k.pcm);
    }
    free(ref.k.pcm);
    frt_speech_close(sp1);
    frt_speech_close(sp2);
}
