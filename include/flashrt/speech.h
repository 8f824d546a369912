/*
 * flashrt speech: FlashSpeech text-to-speech from C.
 *
 *     frt_speech *sp;
 *     if (frt_speech_open("models/flashspeech-tiny", &sp) != FRT_OK) ... frt_last_error()
 *     frt_speech_options o;
 *     frt_speech_options_init(&o);
 *     frt_speech_synthesize(sp, "Hello there.", &o, on_chunk, user);
 *     frt_speech_close(sp);
 *
 * Text is split into sentences; each sentence goes through grapheme-to-
 * phoneme conversion (espeak-ng when the library was built with it), the
 * model and the codec decoder, and its audio reaches the callback as soon as
 * it is ready, so the first chunk never waits for the rest of the text.
 * Audio is mono float PCM in [-1, 1] at frt_speech_sample_rate().
 *
 * Failures return an frt_status; frt_last_error() (flashrt/core.h) says why.
 */
#ifndef FLASHRT_SPEECH_H
#define FLASHRT_SPEECH_H

#include <stddef.h>
#include <stdint.h>

#include "flashrt/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct frt_speech frt_speech;

typedef struct frt_speech_options {
    int steps;         /* sampling steps, 1 or 2 (default 1) */
    float sigma_inter; /* noise level of the second step; 0 = the model's (2.0) */
    float speed;       /* speaking rate; 2 is twice as fast (default 1.0, range 0.25..4) */
    /* Noise seed (default 0). A sentence's noise derives from the seed and
     * the sentence's text, so the same seed and text give the same audio
     * however the text is divided between calls. */
    uint64_t seed;
    /* Reference audio for the voice: a file (WAV/FLAC/OGG, any rate and
     * channel count; downmixed and resampled) or samples in memory. When
     * both are set the file wins; when neither, the model's default voice.
     * Borrowed: read during the call only. */
    const char *ref_path;
    const float *ref_pcm; /* mono, ref_len samples at ref_rate Hz */
    size_t ref_len;
    int ref_rate;
    /* Nonzero: the text is already phonemes (IPA symbols of the model's
     * inventory, words separated by spaces, symbols optionally by '_'), so
     * no grapheme-to-phoneme step runs. Works without espeak-ng. */
    int phoneme_input;
    const char *voice; /* espeak-ng voice (default "en-us") */
} frt_speech_options;

/* Fill o with the defaults above. */
void frt_speech_options_init(frt_speech_options *o);

/* One piece of audio handed to the callback. */
typedef struct frt_speech_chunk {
    const float *pcm; /* n mono samples; owned by the library, valid during the callback only */
    size_t n;
    int sample_rate;  /* Hz */
    size_t sentence;  /* 0-based index of the sentence this audio belongs to */
    size_t text_done; /* bytes of the text consumed so far (for progress) */
    size_t text_len;  /* total bytes of the text */
    int last;         /* nonzero on the final chunk of the text */
} frt_speech_chunk;

/* Return 0 to go on, nonzero to stop: synthesis then returns
 * FRT_ERR_CANCELLED (without producing more chunks). Called on the thread
 * that called frt_speech_synthesize. */
typedef int (*frt_speech_chunk_fn)(const frt_speech_chunk *chunk, void *user);

/* Load the model in model_dir (config.json + *.safetensors) and prepare the
 * text frontend. *out is owned by the caller: free it with frt_speech_close.
 * Missing directory or files: FRT_ERR_NOT_FOUND; malformed: FRT_ERR_FORMAT.
 * Thread-safe (engines are independent). */
frt_status frt_speech_open(const char *model_dir, frt_speech **out);

/* Free the engine (NULL is fine). Not while a synthesis on it is running. */
void frt_speech_close(frt_speech *sp);

/* Output sample rate of the engine in Hz (16000 for FlashSpeech). */
int frt_speech_sample_rate(const frt_speech *sp);

/* Longest text one synthesis call takes, in bytes (about 3 hours of speech;
 * a longer text is FRT_ERR_LIMIT: split it, or stream it sentence by
 * sentence as the flashspeech CLI does). */
#define FRT_SPEECH_MAX_TEXT (1 << 24)

/* Synthesise NUL-terminated UTF-8 text, calling fn with each chunk (at least
 * one per sentence that produces sound) before working on the next. opt may
 * be NULL for the defaults; text and opt are borrowed for the call.
 * Errors: invalid UTF-8 FRT_ERR_FORMAT (with its byte offset); text with
 * nothing to say FRT_ERR_INVALID_ARG; text over FRT_SPEECH_MAX_TEXT
 * FRT_ERR_LIMIT; unreadable reference audio
 * FRT_ERR_NOT_FOUND / FRT_ERR_FORMAT; no G2P available FRT_ERR_UNSUPPORTED;
 * stopped by fn or frt_speech_cancel FRT_ERR_CANCELLED. Chunks delivered
 * before a failure stay valid output.
 * Thread-safety: calls on one engine are serialised (a second caller waits);
 * different engines run in parallel (only their espeak-ng step is
 * serialised, espeak-ng having global state). */
frt_status frt_speech_synthesize(frt_speech *sp, const char *text, const frt_speech_options *opt,
                                 frt_speech_chunk_fn fn, void *user);

/* Ask a running synthesis on sp to stop at the next sentence boundary; it
 * then returns FRT_ERR_CANCELLED. Safe from any thread and from signal
 * handlers. Each synthesis starts uncancelled, so a cancel sent while none
 * runs has no effect. */
void frt_speech_cancel(frt_speech *sp);

/* Synthesise text into an audio file whose format follows the extension of
 * path: .wav (PCM16), .flac, .ogg (Vorbis). Audio synthesised before a
 * failure is flushed and the file closed properly when possible. Errors as
 * frt_speech_synthesize, plus FRT_ERR_IO when writing fails (disk full) and
 * FRT_ERR_UNSUPPORTED for an unknown extension. Thread-safety as
 * frt_speech_synthesize. */
frt_status frt_speech_synthesize_to_file(frt_speech *sp, const char *text,
                                         const frt_speech_options *opt, const char *path);

#ifdef __cplusplus
}
#endif

#endif
