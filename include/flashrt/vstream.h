/*
 * flashrt vstream: questions about a live video stream (Flash-VStream).
 *
 *     frt_vstream *vs;
 *     if (frt_vstream_open("models/flash-vstream-7b", NULL, &vs) != FRT_OK) ... frt_last_error()
 *     frt_vstream_start(vs, "rtsp://camera/stream", NULL);
 *     uint64_t id;
 *     frt_vstream_ask(vs, "What is the person holding?", on_answer, user, &id);
 *     ...
 *     frt_vstream_close(vs);
 *
 * One writer thread reads the source (FFmpeg), samples frames, encodes them
 * (CLIP, 2x2 pooling) and pushes them into the STAR memory, which publishes
 * a complete snapshot after every frame. Questions go into a bounded queue;
 * answering threads take them in order, pin the latest snapshot (a copy of
 * the memory tokens, so the writer never waits for an answer), project all
 * memory tokens in one call, build the vicuna_v1 prompt with the memory in
 * place of <image>, prefill and decode until </s> or the token limit. Every
 * question gets exactly one final callback (answered, cancelled, or failed).
 *
 * Failures return an frt_status; frt_last_error() (flashrt/core.h) says why.
 */
#ifndef FLASHRT_VSTREAM_H
#define FLASHRT_VSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashrt/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct frt_vstream frt_vstream;

/* Parts of the STAR memory handed to the language model
 * (frt_vstream_options.memory_parts), as bits. */
enum {
    FRT_VSTREAM_MEM_ABSTRACT = 1,
    FRT_VSTREAM_MEM_TEMPORAL = 2,
    FRT_VSTREAM_MEM_RETRIEVED = 4,
    FRT_VSTREAM_MEM_SPATIAL = 8,
    FRT_VSTREAM_MEM_ALL = 15
};

typedef struct frt_vstream_options {
    /* tokenizer.model / tokenizer.json file or a directory holding one;
     * NULL: the model directory. Its vocabulary must not exceed the
     * model's; ids the tokenizer lacks are never generated. */
    const char *tokenizer;
    int queue_len;          /* questions waiting at most (8); ask beyond: FRT_ERR_LIMIT */
    int answer_threads;     /* answering threads, each with its own KV cache (1) */
    int max_question_bytes; /* longer questions: FRT_ERR_LIMIT (4096) */
    int max_new_tokens;     /* answer tokens at most (128); also bounded by the context */
    int64_t max_ctx;        /* KV cache positions; 0: the model's max_position_embeddings */
    /* Decoding: temperature 0 is greedy (default); otherwise as lib/sampling.h. */
    float temperature;
    int top_k;
    float top_p;
    float repetition_penalty;
    uint64_t seed;
    bool compat;          /* the released code's memory (unweighted, retrieval by index) */
    uint64_t memory_seed; /* k-means initialisation (0) */
    /* Nonzero: the callback also gets each piece of text as it is decoded
     * (final == 0), before the final call. */
    int stream_tokens;
    /* FRT_VSTREAM_MEM_* bits (FRT_VSTREAM_MEM_ALL), for ablations: the
     * memory keeps every part up to date; only the tokens of the parts
     * named here reach the language model, in the usual order (abstract,
     * temporal, retrieved, spatial). 0 or unknown bits: FRT_ERR_INVALID_ARG. */
    unsigned memory_parts;
} frt_vstream_options;

/* Fill o with the defaults above. */
void frt_vstream_options_init(frt_vstream_options *o);

typedef struct frt_vstream_source_options {
    double fps;                 /* frames sampled per second of stream (1); <= 0: all */
    bool realtime;              /* pace a file by its timestamps, dropping like a live source */
    const char *rtsp_transport; /* "tcp", "udp", or NULL (FFmpeg's choice) */
    const char *format;         /* FFmpeg input format ("lavfi", "v4l2") or NULL: probe */
    int open_timeout_ms;        /* 10000; 0: none */
    int read_timeout_ms;        /* 10000; 0: none */
    int max_reconnects;         /* failed tries in a row before a live source ends (-1: never) */
    int reconnect_max_ms;       /* cap of the doubling wait between reconnect tries (8000) */
    int queue_len;              /* sampled frames between decoder and encoder (4) */
} frt_vstream_source_options;

void frt_vstream_source_options_init(frt_vstream_source_options *o);

/* What the callback receives. Everything is owned by the library and valid
 * during the call only. */
typedef struct frt_vstream_answer {
    uint64_t id;          /* from frt_vstream_ask */
    const char *question; /* as asked */
    const char *piece;    /* stream_tokens: the text this call adds ("" on the final call) */
    const char *answer;   /* the answer so far (whole on the final call) */
    int final;            /* nonzero on the last call for this question */
    /* On the final call: FRT_OK (answered), FRT_ERR_CANCELLED (frt_vstream_cancel
     * or close; answer holds what was decoded), or why it failed. */
    frt_status status;
    const char *finish; /* "stop" (</s>), "length" (token or context limit), "cancelled", "error" */
    /* The memory snapshot the answer used. */
    double stream_time; /* stream time of its newest frame, seconds */
    int64_t frames;     /* frames in it */
    int memory_tokens;  /* visual tokens spliced into the prompt */
    int prompt_tokens;  /* prompt length in positions, memory tokens included */
    int answer_tokens;  /* tokens generated (</s> not counted) */
    /* Latency, milliseconds. queue: ask to the start of answering;
     * snapshot: pinning and copying the memory; prefill: projecting the
     * memory and the prompt's prefill; first_token: ask to the first answer
     * token; total: ask to this (final) call. For frt_vstream_ask_at, "ask"
     * is when the stream reached its time. */
    double queue_ms, snapshot_ms, prefill_ms, first_token_ms, total_ms;
    /* memory_tokens by part (0 for a part memory_parts leaves out) */
    int abstract_tokens, temporal_tokens, retrieved_tokens, spatial_tokens;
} frt_vstream_answer;

/* Called on an answering thread (or, for questions cancelled while
 * waiting, on the thread that cancels or closes). Must not call
 * frt_vstream_close; may call frt_vstream_ask, cancel and status. */
typedef void (*frt_vstream_answer_fn)(const frt_vstream_answer *a, void *user);

typedef struct frt_vstream_status {
    bool started;             /* frt_vstream_start succeeded */
    bool finished;            /* the source ended (end of file, or a live source gave up) */
    frt_status source_status; /* why it ended: FRT_OK at end of stream */
    char source_error[256];   /* the message when source_status is not FRT_OK */
    double stream_time;       /* of the newest frame in memory */
    int64_t frames;           /* frames pushed into memory */
    int64_t decoded, dropped, reconnects;
    double gap_s;                  /* stream time lost to reconnects */
    double ingest_fps, encode_fps; /* decoded and encoded frames per second, recent */
    double encode_ms;              /* wall time of the last frame's encode + memory update */
    int memory_tokens, memory_max_tokens;
    int questions_waiting;                     /* in the queue */
    int64_t questions_answered;                /* final callbacks so far */
    double last_total_ms, last_first_token_ms; /* of the last answered question (0: none) */
} frt_vstream_status;

/* Load the model in model_dir (config.json + *.safetensors: CLIP tower, or
 * the directory mm_vision_tower names beside it, projector, Llama, the
 * memory's attention weights) and the tokenizer; start the answering
 * threads. opts may be NULL (defaults); it is read during the call only.
 * Errors: FRT_ERR_NOT_FOUND (no such directory, no config.json, a missing
 * tensor or tokenizer), FRT_ERR_FORMAT (not a Flash-VStream model, bad
 * values), FRT_ERR_INVALID_ARG (bad options), FRT_ERR_NOMEM. *out is owned
 * by the caller: free it with frt_vstream_close. Thread-safe. */
frt_status frt_vstream_open(const char *model_dir, const frt_vstream_options *opts,
                            frt_vstream **out);

/* Open url (a file, rtsp://, http(s)://, HLS, /dev/videoN, "-" for stdin)
 * on the calling thread and start the writer thread. opts may be NULL.
 * Errors as the source opens (FRT_ERR_NOT_FOUND, FRT_ERR_FORMAT,
 * FRT_ERR_IO, FRT_ERR_TIMEOUT, FRT_ERR_UNSUPPORTED, with the url and
 * FFmpeg's reason), FRT_ERR_INVALID_ARG when already started. Once per
 * frt_vstream; call from one thread (not concurrently with close). */
frt_status frt_vstream_start(frt_vstream *vs, const char *url,
                             const frt_vstream_source_options *opts);

/* Ask a question (NUL-terminated UTF-8, copied) about the stream so far;
 * it is answered from the memory as it is when answering starts. fn (not
 * NULL) gets the answer with user. *id (may be NULL) gets its id (from 1).
 * Errors: FRT_ERR_INVALID_ARG (NULL or empty question), FRT_ERR_LIMIT
 * (question too long for max_question_bytes or the context, or the queue
 * is full: nothing is queued, fn is not called), FRT_ERR_CANCELLED (closing).
 * Thread-safe. */
frt_status frt_vstream_ask(frt_vstream *vs, const char *question, frt_vstream_answer_fn fn,
                           void *user, uint64_t *id);

/* Ask a question about the stream as it was at stream time t_s (finite,
 * >= 0), otherwise as frt_vstream_ask. It may be asked before
 * frt_vstream_start; it waits (counted in queue_len) until the stream gets
 * there:
 * - a file (not realtime), where decoding and encoding may run far ahead of
 *   the answers: the answer uses exactly the memory after the frames with
 *   stream time <= t_s (none: before the first frame), however late it is
 *   answered. The writer copies that memory for the question as it passes
 *   t_s (memory_max_tokens x the vision width floats per question, held
 *   until it is answered), so it never waits for an answer;
 * - a live or realtime source: the question is asked once a frame at or
 *   after t_s is in memory, and answered from the memory as it is then.
 * If the writer is already past t_s, or the source ends before it, the
 * question is answered from the latest memory (the answer's stream_time
 * and frames say which). Thread-safe. */
frt_status frt_vstream_ask_at(frt_vstream *vs, double t_s, const char *question,
                              frt_vstream_answer_fn fn, void *user, uint64_t *id);

/* Cancel a question: a waiting one is removed and its callback gets
 * FRT_ERR_CANCELLED (on this thread) before this returns; one being
 * answered stops after the current token and gets FRT_ERR_CANCELLED on its
 * answering thread (unless it had already produced its last token: its
 * final call then says so, FRT_OK). FRT_ERR_NOT_FOUND when id is unknown or
 * already finished. Thread-safe. */
frt_status frt_vstream_cancel(frt_vstream *vs, uint64_t id);

/* A consistent snapshot of the counters. Thread-safe. */
void frt_vstream_get_status(frt_vstream *vs, frt_vstream_status *out);

/* Block until no question is waiting or being answered, or timeout_ms
 * passes (< 0: no limit): FRT_OK or FRT_ERR_TIMEOUT. Thread-safe. */
frt_status frt_vstream_wait_idle(frt_vstream *vs, int timeout_ms);

/* Stop everything and free vs (NULL is a no-op): the source is interrupted,
 * the question being answered stops after its current token, and every
 * unfinished question gets its final callback with FRT_ERR_CANCELLED;
 * threads are joined. Not from a callback; no other call on vs may run or
 * follow. */
void frt_vstream_close(frt_vstream *vs);

#ifdef __cplusplus
}
#endif

#endif
