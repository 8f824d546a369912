/* The public speech API (include/flashrt/speech.h) over the frontend, the
 * FlashSpeech model and the audio sinks. One sentence at a time: text ->
 * G2P -> ids -> model -> callback, so audio flows while the rest waits. */
#include "flashrt/speech.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "audio_io.h"
#include "error.h"
#include "frontend.h"
#include "log.h"
#include "model.h"

/* Reference audio beyond this is not used (the model's default limit). */
#define PROMPT_MAX_SECONDS 30

struct frt_speech {
    frt_fs_model *model;
    frt_phoneme_map *map;
    int rate;
    pthread_mutex_t lock; /* one synthesis at a time per engine */
    atomic_int cancel;
    /* G2P backends; espeak-ng may be missing (phoneme input still works)
     * and is reopened when a synthesis asks for another voice. */
    frt_g2p *espeak;
    char voice[64];
    frt_g2p *ipa;
    /* Working memory reused from sentence to sentence. */
    frt_strbuf phon;
    frt_phoneme_seq seq;
    float *out;
    size_t out_cap;
    /* The last reference's prompt and the hash and length of its samples. */
    frt_fs_prompt *prompt;
    uint64_t prompt_key;
    size_t prompt_len;
};

void frt_speech_options_init(frt_speech_options *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 1;
    o->speed = 1.0f;
}

frt_status frt_speech_open(const char *model_dir, frt_speech **out)
{
    if (!model_dir || !out) return frt_error(FRT_ERR_INVALID_ARG, "speech: NULL argument");
    struct stat st;
    if (stat(model_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return frt_error_at(FRT_ERR_NOT_FOUND, model_dir, NULL, -1,
                            "speech model directory not found");
    frt_speech *sp = calloc(1, sizeof *sp);
    if (!sp) return frt_error(FRT_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&sp->lock, NULL);
    atomic_init(&sp->cancel, 0);
    frt_status s = frt_fs_model_open(model_dir, NULL, &sp->model);
    if (s == FRT_OK) {
        int n = 0;
        const char *const *sym = frt_fs_model_phonemes(sp->model, &n);
        s = frt_phoneme_map_create(sym, n, &sp->map);
        sp->rate = frt_fs_model_sample_rate(sp->model);
    }
    if (s == FRT_OK) s = frt_g2p_ipa_open(&sp->ipa);
    /* espeak-ng takes ~25 ms to start: do it here rather than on the first
     * sentence. Failing is not fatal (phoneme input still works); the
     * first text synthesis tries again and reports why. */
    if (s == FRT_OK) {
        if (frt_g2p_espeak_open("en-us", &sp->espeak) == FRT_OK) strcpy(sp->voice, "en-us");
        frt_clear_error();
    }
    if (s != FRT_OK) {
        frt_speech_close(sp);
        return s;
    }
    *out = sp;
    return FRT_OK;
}

void frt_speech_close(frt_speech *sp)
{
    if (!sp) return;
    frt_fs_prompt_free(sp->prompt);
    frt_fs_model_close(sp->model);
    frt_phoneme_map_free(sp->map);
    frt_g2p_free(sp->espeak);
    frt_g2p_free(sp->ipa);
    frt_strbuf_free(&sp->phon);
    frt_phoneme_seq_free(&sp->seq);
    free(sp->out);
    pthread_mutex_destroy(&sp->lock);
    free(sp);
}

int frt_speech_sample_rate(const frt_speech *sp)
{
    return sp ? sp->rate : 0;
}

void frt_speech_cancel(frt_speech *sp)
{
    if (sp) atomic_store(&sp->cancel, 1);
}

static frt_status check_options(const frt_speech_options *o)
{
    if (o->steps != 1 && o->steps != 2)
        return frt_error(FRT_ERR_INVALID_ARG, "steps must be 1 or 2 (got %d)", o->steps);
    if (!(o->speed >= 0.25f && o->speed <= 4.0f))
        return frt_error(FRT_ERR_INVALID_ARG, "speed must be in 0.25..4 (got %g)", o->speed);
    if (!(o->sigma_inter >= 0 && o->sigma_inter <= 80))
        return frt_error(FRT_ERR_INVALID_ARG, "sigma_inter must be in 0..80 (got %g)",
                         o->sigma_inter);
    if (!o->ref_path && o->ref_pcm && (o->ref_rate <= 0 || o->ref_len == 0))
        return frt_error(FRT_ERR_INVALID_ARG, "reference audio needs a rate and samples");
    if (o->voice && strlen(o->voice) >= 64)
        return frt_error(FRT_ERR_INVALID_ARG, "voice name too long");
    return FRT_OK;
}

static frt_status get_g2p(frt_speech *sp, const frt_speech_options *o, frt_g2p **g)
{
    if (o->phoneme_input) {
        *g = sp->ipa;
        return FRT_OK;
    }
    const char *voice = o->voice && o->voice[0] ? o->voice : "en-us";
    if (!sp->espeak || strcmp(sp->voice, voice) != 0) {
        frt_g2p_free(sp->espeak);
        sp->espeak = NULL;
        FRT_TRY(frt_g2p_espeak_open(voice, &sp->espeak));
        strcpy(sp->voice, voice);
    }
    *g = sp->espeak;
    return FRT_OK;
}

/* The speaker prompt for o's reference audio (NULL when there is none),
 * owned by the engine: the last one is kept, keyed by the samples, so
 * calls that reuse a reference (a pipe spoken piece by piece) encode it
 * once. */
static frt_status get_prompt(frt_speech *sp, const frt_speech_options *o,
                             const frt_fs_prompt **prompt)
{
    *prompt = NULL;
    if (!o->ref_path && !o->ref_pcm) return FRT_OK;
    float *pcm = NULL;
    size_t n = 0;
    if (o->ref_path)
        FRT_TRY(frt_audio_read(o->ref_path, sp->rate, &pcm, &n));
    else
        FRT_TRY(frt_resample(o->ref_pcm, o->ref_len, o->ref_rate, sp->rate, &pcm, &n));
    size_t cap = (size_t)PROMPT_MAX_SECONDS * (size_t)sp->rate;
    if (n > cap) {
        FRT_LOGI("speech: reference audio cut to its first %d s", PROMPT_MAX_SECONDS);
        n = cap;
    }
    uint64_t key = 0xcbf29ce484222325u ^ n;
    const unsigned char *b = (const unsigned char *)pcm;
    for (size_t i = 0; i < n * sizeof *pcm; i++) key = (key ^ b[i]) * 0x100000001b3u;
    frt_status s = FRT_OK;
    if (!sp->prompt || key != sp->prompt_key || n != sp->prompt_len) {
        frt_fs_prompt_free(sp->prompt);
        sp->prompt = NULL;
        s = n ? frt_fs_encode_prompt(sp->model, pcm, n, &sp->prompt)
              : frt_error(FRT_ERR_INVALID_ARG, "reference audio is empty");
        sp->prompt_key = key;
        sp->prompt_len = n;
    }
    free(pcm);
    if (s == FRT_OK) *prompt = sp->prompt;
    return s;
}

/* The noise of a sentence comes from the seed and the sentence itself, so
 * a text gives the same audio whether it arrives in one call or in pieces
 * (flashspeech reading a pipe line by line). FNV-1a, then a splitmix64
 * finaliser to spread it. */
static uint64_t sentence_seed(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u ^ seed;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
    h += 0x9e3779b97f4a7c15u;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9u;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebu;
    return h ^ (h >> 31);
}

typedef struct run {
    frt_speech *sp;
    const frt_speech_options *o;
    const frt_fs_prompt *prompt;
    frt_speech_chunk_fn fn;
    void *user;
    frt_speech_chunk chunk;
    uint64_t seed;
} run;

static frt_status deliver(run *r, const float *pcm, size_t n, int pause_ms, int last)
{
    frt_speech *sp = r->sp;
    size_t pad = (size_t)pause_ms * (size_t)sp->rate / 1000, total = n + pad;
    if (total > sp->out_cap) {
        float *p = realloc(sp->out, total * sizeof *p);
        if (!p) return frt_error(FRT_ERR_NOMEM, "out of memory (%zu samples)", total);
        sp->out = p;
        sp->out_cap = total;
    }
    if (n) memcpy(sp->out, pcm, n * sizeof *pcm);
    memset(sp->out + n, 0, pad * sizeof *sp->out);
    r->chunk.pcm = sp->out;
    r->chunk.n = total;
    r->chunk.last = last;
    if (r->fn(&r->chunk, r->user) != 0)
        return frt_error(FRT_ERR_CANCELLED, "stopped by the caller");
    return FRT_OK;
}

/* Synthesise ids and deliver the audio. A piece too long for the model's
 * buffers (FRT_ERR_LIMIT) is halved at the word boundary nearest its
 * middle and each half spoken in turn. */
static frt_status speak_ids(run *r, const int32_t *ids, size_t n, int pause_ms, int last)
{
    frt_speech *sp = r->sp;
    frt_fs_synth_opts so;
    frt_fs_synth_opts_default(&so);
    so.steps = r->o->steps;
    so.sigma_inter = r->o->sigma_inter;
    so.speed = r->o->speed;
    so.seed = r->seed++;
    float *pcm = NULL;
    size_t ns = 0;
    frt_status s = frt_fs_synthesize(sp->model, ids, n, r->prompt, &so, &pcm, &ns);
    if (s == FRT_ERR_LIMIT && n >= 2) {
        int nsym = 0;
        const char *const *sym = frt_fs_model_phonemes(sp->model, &nsym);
        size_t cut = n / 2;
        for (size_t d = 0; d < n / 2; d++) {
            size_t a = n / 2 - d, b = n / 2 + d;
            if (a > 0 && sym[ids[a]] && strcmp(sym[ids[a]], " ") == 0) {
                cut = a;
                break;
            }
            if (b < n && sym[ids[b]] && strcmp(sym[ids[b]], " ") == 0) {
                cut = b;
                break;
            }
        }
        FRT_LOGD("speech: %zu phonemes too long for one pass; split at %zu", n, cut);
        frt_clear_error();
        FRT_TRY(speak_ids(r, ids, cut, 0, 0));
        return speak_ids(r, ids + cut, n - cut, pause_ms, last);
    }
    FRT_TRY(s);
    s = deliver(r, pcm, ns, pause_ms, last);
    frt_free(pcm);
    return s;
}

frt_status frt_speech_synthesize(frt_speech *sp, const char *text, const frt_speech_options *opt,
                                 frt_speech_chunk_fn fn, void *user)
{
    if (!sp || !text || !fn) return frt_error(FRT_ERR_INVALID_ARG, "speech: NULL argument");
    frt_speech_options defaults;
    frt_speech_options_init(&defaults);
    const frt_speech_options *o = opt ? opt : &defaults;
    FRT_TRY(check_options(o));
    size_t len = strnlen(text, (size_t)FRT_SPEECH_MAX_TEXT + 1), bad = 0;
    if (len > FRT_SPEECH_MAX_TEXT)
        return frt_error(FRT_ERR_LIMIT, "speech: text longer than %d bytes in one call",
                         FRT_SPEECH_MAX_TEXT);
    if (!frt_utf8_valid(text, len, &bad))
        return frt_error_at(FRT_ERR_FORMAT, NULL, NULL, (int64_t)bad,
                            "the text is not valid UTF-8");
    size_t pos = 0, a, b;
    if (!frt_sentence_next(text, len, &pos, &a, &b))
        return frt_error(FRT_ERR_INVALID_ARG, "the text is empty: nothing to say");

    pthread_mutex_lock(&sp->lock);
    atomic_store(&sp->cancel, 0);
    run r = {.sp = sp, .o = o, .fn = fn, .user = user};
    r.chunk.sample_rate = sp->rate;
    r.chunk.text_len = len;
    const frt_fs_prompt *prompt = NULL;
    frt_g2p *g2p = NULL;
    frt_status s = get_g2p(sp, o, &g2p);
    if (s == FRT_OK) s = get_prompt(sp, o, &prompt);
    r.prompt = prompt;
    size_t spoken = 0, unknown = 0, index = 0;
    bool delivered_last = false;
    for (bool more = true; s == FRT_OK && more; index++) {
        size_t sa = a, sb = b;
        more = frt_sentence_next(text, len, &pos, &a, &b);
        if (atomic_load(&sp->cancel)) {
            s = frt_error(FRT_ERR_CANCELLED, "speech: cancelled");
            break;
        }
        frt_strbuf_clear(&sp->phon);
        s = g2p->phonemize(g2p, text + sa, sb - sa, &sp->phon);
        if (s != FRT_OK) break;
        sp->seq.n = 0;
        sp->seq.unknown = 0;
        sp->seq.sounds = 0;
        if (sp->phon.len) s = frt_phoneme_map_apply(sp->map, sp->phon.s, sp->phon.len, &sp->seq);
        if (s != FRT_OK) break;
        unknown += sp->seq.unknown;
        FRT_LOGD("speech: sentence %zu: \"%.*s\" -> %s (%zu ids)", index, (int)(sb - sa), text + sa,
                 sp->phon.s ? sp->phon.s : "", sp->seq.n);
        if (sp->seq.sounds == 0) continue; /* punctuation only: nothing to say */
        r.chunk.sentence = index;
        r.seed = sentence_seed(o->seed, text + sa, sb - sa);
        r.chunk.text_done = more ? a : len;
        s = speak_ids(&r, sp->seq.ids, sp->seq.n, sp->seq.trailing_pause, !more);
        spoken++;
        delivered_last = !more;
    }
    if (s == FRT_OK && spoken == 0)
        s = frt_error(FRT_ERR_INVALID_ARG, "nothing to say: the text has no speakable words%s",
                      unknown ? " (its phonemes are not in the model's inventory)" : "");
    else if (s == FRT_OK && !delivered_last) {
        r.chunk.text_done = len;
        s = deliver(&r, NULL, 0, 0, 1);
    }
    pthread_mutex_unlock(&sp->lock);
    return s;
}

typedef struct file_job {
    frt_audio_sink *sink;
    frt_status status;
    char msg[512];
} file_job;

static int write_chunk(const frt_speech_chunk *c, void *user)
{
    file_job *j = user;
    j->status = frt_audio_sink_write(j->sink, c->pcm, c->n);
    if (j->status == FRT_OK) return 0;
    snprintf(j->msg, sizeof j->msg, "%s", frt_last_error());
    return 1;
}

frt_status frt_speech_synthesize_to_file(frt_speech *sp, const char *text,
                                         const frt_speech_options *opt, const char *path)
{
    if (!sp || !text || !path) return frt_error(FRT_ERR_INVALID_ARG, "speech: NULL argument");
    file_job j = {.status = FRT_OK};
    FRT_TRY(frt_audio_sink_file(path, sp->rate, &j.sink));
    frt_status s = frt_speech_synthesize(sp, text, opt, write_chunk, &j);
    /* A failed write stops synthesis as a cancel; report the write. */
    if (j.status != FRT_OK) s = frt_error(j.status, "%s", j.msg);
    frt_status c = frt_audio_sink_close(j.sink);
    return s != FRT_OK ? s : c;
}
