/* The public vstream API (include/flashrt/vstream.h): a writer thread
 * (ingest -> preprocess -> CLIP -> 2x2 pool -> STAR memory) and answering
 * threads serving a bounded question queue from memory snapshots.
 *
 * Locking: vs->mu guards the queue, the per-worker "current question", the
 * counters and the ingest pointer. Nothing slow runs under it: encoding,
 * prefill and decoding run unlocked, and callbacks are never called with it
 * held (a callback may ask, cancel or read the status). The memory has its
 * own lock-free snapshot protocol (memory.h); a worker copies the snapshot
 * so the writer is never held up by an answer. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc.h"
#include "clip.h"
#include "config.h"
#include "error.h"
#include "flashrt/vstream.h"
#include "ingest.h"
#include "llama.h"
#include "log.h"
#include "memory.h"
#include "preprocess.h"
#include "projector.h"
#include "safetensors.h"
#include "sampling.h"
#include "tokenizer.h"

/* vicuna_v1 around <image>: the system text and "USER: " before it, the
 * question and "ASSISTANT:" after it (ALGORITHMS.md section 1). */
static const char PROMPT_HEAD[] =
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions. USER: ";
static const char PROMPT_QUESTION_PREFIX[] = "\n";
static const char PROMPT_TAIL[] = " ASSISTANT:";

typedef struct question {
    uint64_t id;
    char *text;
    int32_t *ids; /* the tokens after <image>: "\n{question} ASSISTANT:" */
    size_t n_ids;
    frt_vstream_answer_fn fn;
    void *user;
    double t_ask;
    /* frt_vstream_ask_at: the stream time it is about, and the memory the
     * writer copied for it (a file: snap valid when has_snap), or none */
    double at;
    float *mem;
    frt_star_snapshot snap;
    bool has_snap;
    bool cancelled; /* cancelled while the writer held it: answered as cancelled */
    struct question *next;
} question;

typedef struct worker {
    frt_vstream *vs;
    pthread_t thread;
    bool running;
    frt_llama *llm;
    frt_projector *proj;
    frt_sampler *sampler;
    float *mem;    /* [max_mem, dim]: the snapshot's tokens */
    float *vis;    /* [max_mem, hidden]: projected */
    float *embeds; /* [max_ctx, hidden]: the spliced prompt */
    int32_t *ids;  /* [max_ctx]: prompt ids with the placeholder */
    int32_t *gen;  /* [max_ctx]: generated ids (the sampler's history) */
    float *logits; /* [vocab] */
    char *answer;  /* the text so far */
    size_t answer_len, answer_cap;
    question *cur; /* being answered (under mu) */
    atomic_bool cancel;
} worker;

struct frt_vstream {
    frt_vstream_options o;
    frt_config *cfg;
    frt_st *st;
    frt_tokenizer *tok;
    frt_clip *clip;
    frt_image_proc *improc;
    frt_star *mem;
    frt_star_config mcfg;
    int dim, grid, max_mem;
    int64_t hidden, vocab, tok_vocab, max_ctx;
    int32_t eos;
    int32_t *head_ids; /* PROMPT_HEAD with BOS */
    size_t n_head;

    /* writer */
    frt_ingest *ing;
    pthread_t writer;
    bool writer_running;
    float *pixels, *feats, *pooled;

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a question is queued, or stopping */
    pthread_cond_t idle_cv; /* a question finished */
    question *head, *tail;
    /* ask_at questions not yet due, by time (ties in asking order), and
     * those whose memory the writer is copying */
    question *timed, *transit;
    /* ask_at's clock: the newest frame pushed, or on a file the one about
     * to be pushed (its questions are due before it goes in) */
    double passed;
    bool exact; /* a file read as fast as it decodes: ask_at pins the memory */
    int n_waiting, n_busy;
    atomic_bool stopping;
    uint64_t next_id;
    worker *workers;
    int n_workers;

    /* status, under mu */
    bool started, finished;
    frt_status source_status;
    char source_error[256];
    double stream_time, encode_ms;
    int64_t frames;
    int memory_tokens;
    int64_t answered;
    double last_total_ms, last_first_ms;
    double rate_t, ingest_fps, encode_fps;
    int64_t rate_decoded, rate_frames;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void frt_vstream_options_init(frt_vstream_options *o)
{
    memset(o, 0, sizeof *o);
    o->queue_len = 8;
    o->answer_threads = 1;
    o->max_question_bytes = 4096;
    o->max_new_tokens = 128;
    o->top_p = 1.0f;
    o->repetition_penalty = 1.0f;
    o->memory_parts = FRT_VSTREAM_MEM_ALL;
}

void frt_vstream_source_options_init(frt_vstream_source_options *o)
{
    memset(o, 0, sizeof *o);
    o->fps = 1.0;
    o->open_timeout_ms = 10000;
    o->read_timeout_ms = 10000;
    o->max_reconnects = -1;
    o->reconnect_max_ms = 8000;
    o->queue_len = 4;
}

/* ---- answering ------------------------------------------------------------ */

static void question_free(question *q)
{
    if (!q) return;
    free(q->text);
    frt_free(q->ids);
    frt_free(q->mem);
    free(q);
}

/* The final call for a question that never reached a worker. */
static void deliver_unanswered(question *q, frt_status st, const char *finish)
{
    frt_vstream_answer a;
    memset(&a, 0, sizeof a);
    a.id = q->id;
    a.question = q->text;
    a.piece = "";
    a.answer = "";
    a.final = 1;
    a.status = st;
    a.finish = finish;
    a.total_ms = a.queue_ms = (now_s() - q->t_ask) * 1e3;
    q->fn(&a, q->user);
}

static frt_status answer_append(worker *w, const char *s, size_t n)
{
    if (w->answer_len + n + 1 > w->answer_cap) {
        size_t cap =
            w->answer_cap * 2 > w->answer_len + n + 1 ? w->answer_cap * 2 : w->answer_len + n + 1;
        char *p = realloc(w->answer, cap);
        if (!p) return frt_error(FRT_ERR_NOMEM, "answer text of %zu bytes", cap);
        w->answer = p;
        w->answer_cap = cap;
    }
    memcpy(w->answer + w->answer_len, s, n);
    w->answer_len += n;
    w->answer[w->answer_len] = '\0';
    return FRT_OK;
}

static bool should_stop(worker *w)
{
    return atomic_load(&w->cancel) || atomic_load(&w->vs->stopping);
}

/* Answer q into *a (final fields set by the caller on return). */
static frt_status answer_question(worker *w, question *q, frt_vstream_answer *a)
{
    frt_vstream *vs = w->vs;
    double t0 = now_s();
    a->queue_ms = (t0 - q->t_ask) * 1e3;
    if (should_stop(w)) return FRT_ERR_CANCELLED;

    frt_star_snapshot info;
    float *mem = w->mem;
    if (q->has_snap) { /* copied by the writer */
        info = q->snap;
        mem = q->mem;
    } else {
        FRT_TRY(frt_star_copy(vs->mem, w->mem, vs->max_mem, &info));
    }
    if (vs->o.memory_parts != FRT_VSTREAM_MEM_ALL) frt_star_select(&info, mem, vs->o.memory_parts);
    double t1 = now_s();
    a->snapshot_ms = (t1 - t0) * 1e3;
    a->stream_time = info.time_s;
    a->frames = info.frames;
    a->memory_tokens = info.n_tokens;
    a->abstract_tokens = info.n_abstract;
    a->temporal_tokens = info.n_temporal;
    a->retrieved_tokens = info.n_retrieved;
    a->spatial_tokens = info.n_spatial;

    if (info.n_tokens > 0) FRT_TRY(frt_projector_forward(w->proj, mem, info.n_tokens, w->vis));
    size_t n_ids = 0;
    memcpy(w->ids, vs->head_ids, vs->n_head * sizeof(int32_t));
    n_ids += vs->n_head;
    w->ids[n_ids++] = FRT_IMAGE_TOKEN_ID;
    memcpy(w->ids + n_ids, q->ids, q->n_ids * sizeof(int32_t));
    n_ids += q->n_ids;
    const float *block = w->vis;
    int64_t rows = info.n_tokens, n_rows = 0;
    FRT_TRY(frt_llama_splice(w->llm, w->ids, (int64_t)n_ids, &block, &rows, 1, w->embeds,
                             vs->max_ctx, &n_rows));
    frt_llama_reset(w->llm);
    FRT_TRY(frt_llama_prefill(w->llm, NULL, w->embeds, n_rows, w->logits, 1));
    a->prompt_tokens = (int)n_rows;
    a->prefill_ms = (now_s() - t1) * 1e3;

    frt_detok dt;
    frt_detok_init_continuation(&dt, vs->tok);
    frt_sampler_reseed(w->sampler, vs->o.seed);
    int n_gen = 0;
    a->finish = "length";
    for (;;) {
        if (should_stop(w)) return FRT_ERR_CANCELLED;
        /* ids the tokenizer cannot spell (a model vocabulary padded past
         * the tokenizer's) are never chosen */
        for (int64_t i = vs->tok_vocab; i < vs->vocab; i++) w->logits[i] = -INFINITY;
        int32_t id;
        FRT_TRY(frt_sampler_sample(w->sampler, w->logits, w->gen, n_gen, &id));
        if (id == vs->eos) {
            a->finish = "stop";
            break;
        }
        w->gen[n_gen++] = id;
        const char *piece;
        size_t plen;
        FRT_TRY(frt_detok_push(&dt, id, &piece, &plen));
        FRT_TRY(answer_append(w, piece, plen));
        if (n_gen == 1) a->first_token_ms = (now_s() - q->t_ask) * 1e3;
        a->answer_tokens = n_gen;
        if (vs->o.stream_tokens && plen) {
            a->piece = piece;
            a->answer = w->answer;
            q->fn(a, q->user);
        }
        if (n_gen >= vs->o.max_new_tokens || frt_llama_pos(w->llm) >= vs->max_ctx) break;
        FRT_TRY(frt_llama_decode(w->llm, id, w->logits));
    }
    const char *tail;
    size_t tlen;
    frt_detok_flush(&dt, &tail, &tlen);
    FRT_TRY(answer_append(w, tail, tlen));
    if (vs->o.stream_tokens && tlen) {
        a->piece = tail;
        a->answer = w->answer;
        q->fn(a, q->user);
    }
    return FRT_OK;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    frt_vstream *vs = w->vs;
    for (;;) {
        pthread_mutex_lock(&vs->mu);
        while (!vs->head && !atomic_load(&vs->stopping)) pthread_cond_wait(&vs->work_cv, &vs->mu);
        if (atomic_load(&vs->stopping)) {
            pthread_mutex_unlock(&vs->mu);
            break;
        }
        question *q = vs->head;
        vs->head = q->next;
        if (!vs->head) vs->tail = NULL;
        vs->n_waiting--;
        vs->n_busy++;
        w->cur = q;
        atomic_store(&w->cancel, q->cancelled);
        pthread_mutex_unlock(&vs->mu);

        w->answer_len = 0;
        w->answer[0] = '\0';
        frt_vstream_answer a;
        memset(&a, 0, sizeof a);
        a.id = q->id;
        a.question = q->text;
        frt_status s = answer_question(w, q, &a);
        if (s == FRT_OK && should_stop(w)) s = FRT_ERR_CANCELLED;
        if (s == FRT_ERR_CANCELLED)
            a.finish = "cancelled";
        else if (s != FRT_OK) {
            frt_log(FRT_LOG_WARN, "vstream: question %llu failed: %s", (unsigned long long)q->id,
                    frt_last_error());
            a.finish = "error";
        }
        a.status = s;
        a.final = 1;
        a.piece = "";
        a.answer = w->answer;
        a.total_ms = (now_s() - q->t_ask) * 1e3;
        q->fn(&a, q->user);

        pthread_mutex_lock(&vs->mu);
        w->cur = NULL;
        vs->n_busy--;
        vs->answered++;
        if (s == FRT_OK) {
            vs->last_total_ms = a.total_ms;
            vs->last_first_ms = a.first_token_ms;
        }
        pthread_cond_broadcast(&vs->idle_cv);
        pthread_mutex_unlock(&vs->mu);
        question_free(q);
    }
    return NULL;
}

/* ---- writer --------------------------------------------------------------- */

static frt_status encode_frame(frt_vstream *vs, const frt_ingest_frame *f)
{
    FRT_TRY(frt_image_proc_run(vs->improc, f->rgb, f->width, f->height, f->width * 3, vs->pixels));
    FRT_TRY(frt_clip_encode(vs->clip, vs->pixels, vs->feats));
    return frt_grid_avg_pool(vs->feats, vs->grid, vs->dim, vs->mcfg.p_spa, vs->pooled);
}

/* Hand the ask_at questions due at stream time t to the answering queue:
 * on a file (copy) those before t, with a copy of the memory as it is now
 * (before the frame at t goes in); on a live source those at or before t,
 * answered from the memory as it is when answering starts. The end of the
 * stream passes t = INFINITY. Writer thread only. */
static void release_due(frt_vstream *vs, double t, bool copy)
{
    pthread_mutex_lock(&vs->mu);
    if (t > vs->passed) vs->passed = t;
    question **tail = &vs->transit;
    while (vs->timed && (vs->timed->at < t || (!copy && vs->timed->at <= t))) {
        *tail = vs->timed;
        vs->timed = vs->timed->next;
        tail = &(*tail)->next;
        *tail = NULL;
    }
    question *due = vs->transit;
    pthread_mutex_unlock(&vs->mu);
    if (!due) return;
    double now = now_s();
    for (question *q = due; q; q = q->next) q->t_ask = now; /* latencies count from here */
    /* the list is the writer's to walk: cancel only marks its questions */
    for (question *q = due; copy && q; q = q->next) {
        if (frt_star_copy_state(vs->mem, q->mem, vs->max_mem, &q->snap) == FRT_OK)
            q->has_snap = true;
        else
            frt_log(FRT_LOG_WARN, "vstream: question %llu gets the latest memory: %s",
                    (unsigned long long)q->id, frt_last_error());
    }
    pthread_mutex_lock(&vs->mu);
    if (vs->tail)
        vs->tail->next = due;
    else
        vs->head = due;
    for (vs->tail = due; vs->tail->next;) vs->tail = vs->tail->next;
    vs->transit = NULL;
    pthread_cond_broadcast(&vs->work_cv);
    pthread_mutex_unlock(&vs->mu);
}

static void *writer_main(void *arg)
{
    frt_vstream *vs = arg;
    frt_status end = FRT_OK;
    while (!atomic_load(&vs->stopping)) {
        frt_ingest_frame f;
        frt_status s = frt_ingest_next(vs->ing, &f, 200);
        if (s == FRT_ERR_TIMEOUT) continue;
        if (s == FRT_ERR_CANCELLED) break;
        if (s != FRT_OK || !f.rgb) {
            end = s;
            break;
        }
        double t0 = now_s();
        s = encode_frame(vs, &f);
        if (s == FRT_OK && vs->exact) release_due(vs, f.time_s, true);
        if (s == FRT_OK) s = frt_star_push(vs->mem, vs->pooled, f.time_s);
        if (s != FRT_OK) {
            end = s;
            break;
        }
        if (!vs->exact) release_due(vs, f.time_s, false);
        double t1 = now_s();
        pthread_mutex_lock(&vs->mu);
        vs->frames++;
        vs->stream_time = f.time_s;
        vs->encode_ms = (t1 - t0) * 1e3;
        vs->memory_tokens = frt_star_tokens_after(&vs->mcfg, vs->frames);
        pthread_mutex_unlock(&vs->mu);
    }
    /* the rest is asked about the final memory (close cancels them when stopping) */
    if (!atomic_load(&vs->stopping)) release_due(vs, INFINITY, vs->exact);
    pthread_mutex_lock(&vs->mu);
    vs->finished = true;
    vs->source_status = end;
    if (end != FRT_OK) snprintf(vs->source_error, sizeof vs->source_error, "%s", frt_last_error());
    pthread_cond_broadcast(&vs->idle_cv);
    pthread_mutex_unlock(&vs->mu);
    if (end != FRT_OK) frt_log(FRT_LOG_ERROR, "vstream: the source ended: %s", frt_last_error());
    return NULL;
}

/* ---- open / close --------------------------------------------------------- */

static frt_status check_options(const frt_vstream_options *o)
{
    if (o->queue_len < 1 || o->queue_len > 1 << 16)
        return frt_error(FRT_ERR_INVALID_ARG, "vstream: queue_len %d outside [1, 65536]",
                         o->queue_len);
    if (o->answer_threads < 1 || o->answer_threads > 64)
        return frt_error(FRT_ERR_INVALID_ARG, "vstream: answer_threads %d outside [1, 64]",
                         o->answer_threads);
    if (o->max_question_bytes < 1 || o->max_new_tokens < 1 || o->max_ctx < 0)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "vstream: max_question_bytes and max_new_tokens must be positive, "
                         "max_ctx not negative");
    if (o->memory_parts == 0 || (o->memory_parts & ~(unsigned)FRT_VSTREAM_MEM_ALL))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "vstream: memory_parts 0x%x is not a nonempty set of FRT_VSTREAM_MEM_* "
                         "bits",
                         o->memory_parts);
    return FRT_OK;
}

static frt_status check_model_dir(const char *dir, char *path, size_t cap)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return frt_error(FRT_ERR_NOT_FOUND, "model directory %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return frt_error(FRT_ERR_NOT_FOUND, "%s is not a model directory (not a directory)", dir);
    snprintf(path, cap, "%s/config.json", dir);
    if (stat(path, &sb) != 0)
        return frt_error(FRT_ERR_NOT_FOUND, "%s is not a model directory: it has no config.json",
                         dir);
    return FRT_OK;
}

static frt_status worker_init(frt_vstream *vs, worker *w)
{
    w->vs = vs;
    atomic_init(&w->cancel, false);
    frt_llama_options lo;
    memset(&lo, 0, sizeof lo);
    lo.max_ctx = vs->o.max_ctx;
    /* A checkpoint stored in 16 bits (the released Flash-VStream-7b: bf16)
     * keeps its KV cache in 16 bits too, as PyTorch would (f16 here: the
     * cache type the attention kernels read); f32 checkpoints keep f32. */
    const char *td = "float32";
    if (frt_config_string(vs->cfg, "torch_dtype", "float32", &td) == FRT_OK &&
        (strcmp(td, "bfloat16") == 0 || strcmp(td, "float16") == 0))
        lo.kv_dtype = FRT_F16;
    FRT_TRY(frt_llama_open(vs->st, vs->cfg, &lo, NULL, &w->llm));
    FRT_TRY(frt_projector_open(vs->st, vs->cfg, NULL, vs->max_mem > 0 ? vs->max_mem : 1, NULL,
                               &w->proj));
    const frt_llama_info *li = frt_llama_get_info(w->llm);
    vs->hidden = li->hidden;
    vs->vocab = li->vocab;
    vs->max_ctx = li->max_ctx;
    if (frt_projector_in_dim(w->proj) != vs->dim || frt_projector_out_dim(w->proj) != li->hidden)
        return frt_error(FRT_ERR_FORMAT,
                         "vstream: projector %lld -> %lld does not join vision width %d to the "
                         "language model's %lld",
                         (long long)frt_projector_in_dim(w->proj),
                         (long long)frt_projector_out_dim(w->proj), vs->dim, (long long)li->hidden);
    frt_sampler_params sp = {vs->o.temperature, vs->o.top_k, vs->o.top_p, vs->o.repetition_penalty,
                             vs->o.seed};
    FRT_TRY(frt_sampler_create(&sp, li->vocab, &w->sampler));
    size_t m = (size_t)(vs->max_mem > 0 ? vs->max_mem : 1);
    w->mem = frt_alloc(m * (size_t)vs->dim * sizeof(float));
    w->vis = frt_alloc(m * (size_t)li->hidden * sizeof(float));
    w->embeds = frt_alloc((size_t)li->max_ctx * (size_t)li->hidden * sizeof(float));
    w->ids = frt_alloc((size_t)li->max_ctx * sizeof(int32_t));
    w->gen = frt_alloc((size_t)li->max_ctx * sizeof(int32_t));
    w->logits = frt_alloc((size_t)li->vocab * sizeof(float));
    w->answer_cap = 256;
    w->answer = malloc(w->answer_cap);
    if (!w->mem || !w->vis || !w->embeds || !w->ids || !w->gen || !w->logits || !w->answer)
        return frt_error(FRT_ERR_NOMEM, "vstream: answering buffers");
    return FRT_OK;
}

static void worker_free(worker *w)
{
    frt_llama_close(w->llm);
    frt_projector_close(w->proj);
    frt_sampler_free(w->sampler);
    frt_free(w->mem);
    frt_free(w->vis);
    frt_free(w->embeds);
    frt_free(w->ids);
    frt_free(w->gen);
    frt_free(w->logits);
    free(w->answer);
}

static frt_status load_models(frt_vstream *vs, const char *dir)
{
    char path[PATH_MAX + 32];
    FRT_TRY(check_model_dir(dir, path, sizeof path));
    FRT_TRY(frt_config_load(path, &vs->cfg));
    const char *mtype = NULL;
    FRT_TRY(frt_config_string(vs->cfg, "model_type", "", &mtype));
    if (strcmp(mtype, "vstream") != 0 && !frt_config_has(vs->cfg, "mm_projector_type"))
        return frt_error(FRT_ERR_FORMAT,
                         "%s is not a Flash-VStream model (model_type \"%s\", no "
                         "mm_projector_type)",
                         dir, mtype);
    FRT_TRY(frt_st_open(dir, &vs->st));

    frt_clip_options co = frt_clip_options_default();
    co.keep_cls = 0;
    FRT_TRY(frt_clip_open_dir(dir, &co, &vs->clip));
    const frt_clip_info *ci = frt_clip_get_info(vs->clip);
    vs->dim = (int)ci->width;
    vs->grid = (int)ci->grid;

    frt_image_proc_config pc;
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    struct stat sb;
    if (stat(path, &sb) == 0)
        FRT_TRY(frt_image_proc_load(path, (int)ci->image_size, &pc));
    else
        pc = frt_image_proc_clip_default((int)ci->image_size);
    FRT_TRY(frt_image_proc_create(&pc, &vs->improc));
    int ow, oh;
    frt_image_proc_out_size(vs->improc, 640, 480, &ow, &oh);
    if (ow != ci->image_size || oh != ci->image_size)
        return frt_error(FRT_ERR_FORMAT,
                         "%s: the image processor makes %dx%d images, the vision tower takes %lld",
                         dir, ow, oh, (long long)ci->image_size);

    frt_star_config_default(&vs->mcfg, vs->dim);
    FRT_TRY(frt_star_config_read(vs->cfg, &vs->mcfg));
    vs->mcfg.compat = vs->o.compat;
    vs->mcfg.seed = vs->o.memory_seed;
    if (vs->mcfg.dim != vs->dim)
        return frt_error(FRT_ERR_FORMAT, "%s: mm_hidden_size %d differs from the vision width %d",
                         dir, vs->mcfg.dim, vs->dim);
    if (vs->grid % vs->mcfg.p_spa != 0)
        return frt_error(FRT_ERR_FORMAT,
                         "%s: compress_size %d does not divide the %dx%d patch grid", dir,
                         vs->mcfg.p_spa, vs->grid, vs->grid);
    FRT_TRY(frt_star_create_from(&vs->mcfg, vs->st, "model.attention_model.", &vs->mem));
    vs->max_mem = frt_star_tokens_after(&vs->mcfg, INT64_MAX);
    vs->pixels = frt_alloc((size_t)3 * (size_t)(ci->image_size * ci->image_size) * sizeof(float));
    vs->feats = frt_alloc((size_t)ci->n_out * (size_t)vs->dim * sizeof(float));
    vs->pooled = frt_alloc((size_t)vs->mcfg.p_spa * (size_t)vs->mcfg.p_spa * (size_t)vs->dim *
                           sizeof(float));
    if (!vs->pixels || !vs->feats || !vs->pooled)
        return frt_error(FRT_ERR_NOMEM, "vstream: encoder buffers");

    FRT_TRY(frt_tokenizer_load(vs->o.tokenizer ? vs->o.tokenizer : dir, &vs->tok));
    vs->tok_vocab = frt_tokenizer_vocab_size(vs->tok);

    vs->n_workers = vs->o.answer_threads;
    vs->workers = calloc((size_t)vs->n_workers, sizeof(worker));
    if (!vs->workers) return frt_error(FRT_ERR_NOMEM, "vstream: workers");
    for (int i = 0; i < vs->n_workers; i++) FRT_TRY(worker_init(vs, &vs->workers[i]));

    if (vs->tok_vocab > vs->vocab)
        return frt_error(FRT_ERR_FORMAT,
                         "vstream: the tokenizer has %lld pieces, the model only %lld",
                         (long long)vs->tok_vocab, (long long)vs->vocab);
    vs->eos = frt_tokenizer_eos(vs->tok);
    if (vs->eos < 0) vs->eos = (int32_t)frt_llama_get_info(vs->workers[0].llm)->eos_id;
    if (frt_tokenizer_bos(vs->tok) < 0)
        return frt_error(FRT_ERR_FORMAT, "vstream: the tokenizer has no BOS piece");
    FRT_TRY(frt_tokenizer_encode(vs->tok, PROMPT_HEAD, strlen(PROMPT_HEAD), true, false,
                                 &vs->head_ids, &vs->n_head));
    if ((int64_t)vs->n_head + vs->max_mem + 2 > vs->max_ctx)
        return frt_error(FRT_ERR_LIMIT,
                         "vstream: a context of %lld positions cannot hold the prompt (%zu) and "
                         "the memory (%d tokens)",
                         (long long)vs->max_ctx, vs->n_head, vs->max_mem);
    return FRT_OK;
}

frt_status frt_vstream_open(const char *model_dir, const frt_vstream_options *opts,
                            frt_vstream **out)
{
    if (!model_dir || !out)
        return frt_error(FRT_ERR_INVALID_ARG, "frt_vstream_open: NULL argument");
    *out = NULL;
    frt_vstream_options o;
    if (opts)
        o = *opts;
    else
        frt_vstream_options_init(&o);
    FRT_TRY(check_options(&o));
    frt_vstream *vs = calloc(1, sizeof *vs);
    if (!vs) return frt_error(FRT_ERR_NOMEM, "vstream");
    vs->o = o;
    vs->o.tokenizer = NULL; /* borrowed during open only */
    pthread_mutex_init(&vs->mu, NULL);
    pthread_cond_init(&vs->work_cv, NULL);
    pthread_cond_init(&vs->idle_cv, NULL);
    atomic_init(&vs->stopping, false);
    vs->next_id = 1;
    vs->passed = -INFINITY;
    vs->o.tokenizer = o.tokenizer;
    frt_status s = load_models(vs, model_dir);
    vs->o.tokenizer = NULL;
    for (int i = 0; s == FRT_OK && i < vs->n_workers; i++) {
        if (pthread_create(&vs->workers[i].thread, NULL, worker_main, &vs->workers[i]) != 0)
            s = frt_error(FRT_ERR_INTERNAL, "vstream: cannot start an answering thread");
        else
            vs->workers[i].running = true;
    }
    if (s != FRT_OK) {
        frt_status keep = frt_last_status();
        char msg[512];
        snprintf(msg, sizeof msg, "%s", frt_last_error());
        frt_vstream_close(vs);
        return frt_error(keep != FRT_OK ? keep : s, "%s", msg);
    }
    *out = vs;
    return FRT_OK;
}

frt_status frt_vstream_start(frt_vstream *vs, const char *url,
                             const frt_vstream_source_options *opts)
{
    if (!vs || !url) return frt_error(FRT_ERR_INVALID_ARG, "frt_vstream_start: NULL argument");
    pthread_mutex_lock(&vs->mu);
    bool started = vs->started || vs->ing;
    pthread_mutex_unlock(&vs->mu);
    if (started) return frt_error(FRT_ERR_INVALID_ARG, "frt_vstream_start: already started");
    frt_vstream_source_options so;
    if (opts)
        so = *opts;
    else
        frt_vstream_source_options_init(&so);
    frt_ingest_opts io;
    frt_ingest_opts_default(&io);
    io.fps = so.fps;
    io.realtime = so.realtime;
    io.rtsp_transport = so.rtsp_transport;
    io.format = so.format;
    io.open_timeout_ms = so.open_timeout_ms;
    io.read_timeout_ms = so.read_timeout_ms;
    io.max_reconnects = so.max_reconnects;
    if (so.reconnect_max_ms > 0) io.reconnect_max_ms = so.reconnect_max_ms;
    io.queue_len = so.queue_len > 0 ? so.queue_len : 4;
    frt_ingest *ing;
    FRT_TRY(frt_ingest_open(url, &io, &ing));
    frt_ingest_stats is;
    frt_ingest_get_stats(ing, &is);
    pthread_mutex_lock(&vs->mu);
    vs->exact = !is.live && !so.realtime;
    vs->ing = ing;
    vs->started = true;
    vs->rate_t = now_s();
    pthread_mutex_unlock(&vs->mu);
    if (pthread_create(&vs->writer, NULL, writer_main, vs) != 0) {
        pthread_mutex_lock(&vs->mu);
        vs->started = false;
        vs->finished = true;
        pthread_mutex_unlock(&vs->mu);
        return frt_error(FRT_ERR_INTERNAL, "vstream: cannot start the writer thread");
    }
    vs->writer_running = true;
    return FRT_OK;
}

/* frt_vstream_ask (timed false) and frt_vstream_ask_at. */
static frt_status ask_common(frt_vstream *vs, const char *fname, bool timed, double at,
                             const char *question_text, frt_vstream_answer_fn fn, void *user,
                             uint64_t *id)
{
    if (!vs || !question_text || !fn)
        return frt_error(FRT_ERR_INVALID_ARG, "%s: NULL argument", fname);
    if (timed && !(at >= 0 && isfinite(at)))
        return frt_error(FRT_ERR_INVALID_ARG, "%s: stream time %g is not a finite time >= 0", fname,
                         at);
    size_t len = strnlen(question_text, (size_t)vs->o.max_question_bytes + 1);
    if (len == 0) return frt_error(FRT_ERR_INVALID_ARG, "%s: empty question", fname);
    if (len > (size_t)vs->o.max_question_bytes)
        return frt_error(FRT_ERR_LIMIT, "question longer than %d bytes", vs->o.max_question_bytes);
    question *q = calloc(1, sizeof *q);
    char *tail = malloc(len + sizeof PROMPT_QUESTION_PREFIX + sizeof PROMPT_TAIL);
    if (q && timed)
        q->mem = frt_alloc((size_t)(vs->max_mem > 0 ? vs->max_mem : 1) * (size_t)vs->dim *
                           sizeof(float));
    if (!q || !tail || !(q->text = strdup(question_text)) || (timed && !q->mem)) {
        free(tail);
        question_free(q);
        return frt_error(FRT_ERR_NOMEM, "%s", fname);
    }
    int n = snprintf(tail, len + sizeof PROMPT_QUESTION_PREFIX + sizeof PROMPT_TAIL, "%s%s%s",
                     PROMPT_QUESTION_PREFIX, question_text, PROMPT_TAIL);
    frt_status s = frt_tokenizer_encode(vs->tok, tail, (size_t)n, false, false, &q->ids, &q->n_ids);
    free(tail);
    if (s != FRT_OK) {
        question_free(q);
        return s;
    }
    if ((int64_t)(vs->n_head + 1 + q->n_ids) + vs->max_mem + 1 > vs->max_ctx) {
        size_t nq = q->n_ids;
        question_free(q);
        return frt_error(FRT_ERR_LIMIT,
                         "question of %zu tokens does not fit the context (%lld positions, "
                         "%d memory tokens, %zu prompt tokens)",
                         nq, (long long)vs->max_ctx, vs->max_mem, vs->n_head);
    }
    q->fn = fn;
    q->user = user;
    q->t_ask = now_s();
    q->at = at;
    pthread_mutex_lock(&vs->mu);
    if (atomic_load(&vs->stopping)) {
        pthread_mutex_unlock(&vs->mu);
        question_free(q);
        return frt_error(FRT_ERR_CANCELLED, "%s: the stream is closing", fname);
    }
    if (vs->n_waiting >= vs->o.queue_len) {
        int ql = vs->o.queue_len;
        pthread_mutex_unlock(&vs->mu);
        question_free(q);
        return frt_error(FRT_ERR_LIMIT, "question queue full (%d waiting)", ql);
    }
    q->id = vs->next_id++;
    /* not yet due: wait for the writer (release_due's rule); else asked now */
    if (timed && (vs->exact ? at >= vs->passed : at > vs->passed)) {
        question **pp = &vs->timed;
        while (*pp && (*pp)->at <= at) pp = &(*pp)->next;
        q->next = *pp;
        *pp = q;
    } else {
        if (vs->tail)
            vs->tail->next = q;
        else
            vs->head = q;
        vs->tail = q;
        pthread_cond_signal(&vs->work_cv);
    }
    vs->n_waiting++;
    if (id) *id = q->id;
    pthread_mutex_unlock(&vs->mu);
    return FRT_OK;
}

frt_status frt_vstream_ask(frt_vstream *vs, const char *question_text, frt_vstream_answer_fn fn,
                           void *user, uint64_t *id)
{
    return ask_common(vs, "frt_vstream_ask", false, 0, question_text, fn, user, id);
}

frt_status frt_vstream_ask_at(frt_vstream *vs, double t_s, const char *question_text,
                              frt_vstream_answer_fn fn, void *user, uint64_t *id)
{
    return ask_common(vs, "frt_vstream_ask_at", true, t_s, question_text, fn, user, id);
}

frt_status frt_vstream_cancel(frt_vstream *vs, uint64_t id)
{
    if (!vs) return frt_error(FRT_ERR_INVALID_ARG, "frt_vstream_cancel: NULL argument");
    pthread_mutex_lock(&vs->mu);
    question **pp = &vs->head, *prev = NULL;
    while (*pp && (*pp)->id != id) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) { /* not in the queue: maybe not yet due */
        for (pp = &vs->timed; *pp && (*pp)->id != id;) pp = &(*pp)->next;
        prev = NULL;
    }
    question *q = *pp;
    if (q) {
        *pp = q->next;
        if (vs->tail == q) vs->tail = prev;
        vs->n_waiting--;
        vs->n_busy++; /* idle waiters must not return before its callback ran */
        pthread_mutex_unlock(&vs->mu);
        deliver_unanswered(q, FRT_ERR_CANCELLED, "cancelled");
        question_free(q);
        pthread_mutex_lock(&vs->mu);
        vs->n_busy--;
        vs->answered++;
        pthread_cond_broadcast(&vs->idle_cv);
        pthread_mutex_unlock(&vs->mu);
        return FRT_OK;
    }
    for (q = vs->transit; q; q = q->next)
        if (q->id == id) { /* the writer is copying its memory: the worker cancels it */
            q->cancelled = true;
            pthread_mutex_unlock(&vs->mu);
            return FRT_OK;
        }
    for (int i = 0; i < vs->n_workers; i++) {
        worker *w = &vs->workers[i];
        if (w->cur && w->cur->id == id) {
            atomic_store(&w->cancel, true);
            pthread_mutex_unlock(&vs->mu);
            return FRT_OK;
        }
    }
    pthread_mutex_unlock(&vs->mu);
    return frt_error(FRT_ERR_NOT_FOUND, "no waiting or running question %llu",
                     (unsigned long long)id);
}

void frt_vstream_get_status(frt_vstream *vs, frt_vstream_status *out)
{
    memset(out, 0, sizeof *out);
    if (!vs) return;
    pthread_mutex_lock(&vs->mu);
    frt_ingest_stats is;
    memset(&is, 0, sizeof is);
    if (vs->ing) frt_ingest_get_stats(vs->ing, &is);
    double t = now_s();
    /* rates over at least a second, so a status line once a second shows
     * that second */
    if (vs->started && t - vs->rate_t >= 1.0) {
        vs->ingest_fps = (double)(is.decoded - vs->rate_decoded) / (t - vs->rate_t);
        vs->encode_fps = (double)(vs->frames - vs->rate_frames) / (t - vs->rate_t);
        vs->rate_t = t;
        vs->rate_decoded = is.decoded;
        vs->rate_frames = vs->frames;
    }
    out->started = vs->started;
    out->finished = vs->finished;
    out->source_status = vs->source_status;
    snprintf(out->source_error, sizeof out->source_error, "%s", vs->source_error);
    out->stream_time = vs->stream_time;
    out->frames = vs->frames;
    out->decoded = is.decoded;
    out->dropped = is.dropped;
    out->reconnects = is.reconnects;
    out->gap_s = is.gap_s;
    out->ingest_fps = vs->ingest_fps;
    out->encode_fps = vs->encode_fps;
    out->encode_ms = vs->encode_ms;
    out->memory_tokens = vs->memory_tokens;
    out->memory_max_tokens = vs->max_mem;
    out->questions_waiting = vs->n_waiting;
    out->questions_answered = vs->answered;
    out->last_total_ms = vs->last_total_ms;
    out->last_first_token_ms = vs->last_first_ms;
    pthread_mutex_unlock(&vs->mu);
}

frt_status frt_vstream_wait_idle(frt_vstream *vs, int timeout_ms)
{
    if (!vs) return frt_error(FRT_ERR_INVALID_ARG, "frt_vstream_wait_idle: NULL argument");
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
    }
    frt_status s = FRT_OK;
    pthread_mutex_lock(&vs->mu);
    while (vs->n_waiting + vs->n_busy > 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&vs->idle_cv, &vs->mu);
        } else if (pthread_cond_timedwait(&vs->idle_cv, &vs->mu, &dl) == ETIMEDOUT) {
            s = FRT_ERR_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&vs->mu);
    return s == FRT_OK ? FRT_OK : frt_error(s, "frt_vstream_wait_idle: questions still pending");
}

/* Closing: the final call for every question waiting or not yet due. */
static void cancel_waiting(frt_vstream *vs)
{
    pthread_mutex_lock(&vs->mu);
    question *lists[2] = {vs->head, vs->timed};
    vs->head = vs->tail = vs->timed = NULL;
    vs->n_waiting = 0;
    pthread_mutex_unlock(&vs->mu);
    for (int l = 0; l < 2; l++)
        while (lists[l]) {
            question *next = lists[l]->next;
            deliver_unanswered(lists[l], FRT_ERR_CANCELLED, "cancelled");
            question_free(lists[l]);
            lists[l] = next;
        }
}

void frt_vstream_close(frt_vstream *vs)
{
    if (!vs) return;
    pthread_mutex_lock(&vs->mu);
    atomic_store(&vs->stopping, true);
    frt_ingest *ing = vs->ing;
    pthread_cond_broadcast(&vs->work_cv);
    pthread_mutex_unlock(&vs->mu);
    if (ing) frt_ingest_stop(ing);
    cancel_waiting(vs);
    if (vs->writer_running) pthread_join(vs->writer, NULL);
    for (int i = 0; vs->workers && i < vs->n_workers; i++)
        if (vs->workers[i].running) pthread_join(vs->workers[i].thread, NULL);
    cancel_waiting(vs); /* what the writer queued meanwhile */
    frt_ingest_close(vs->ing);
    for (int i = 0; vs->workers && i < vs->n_workers; i++) worker_free(&vs->workers[i]);
    free(vs->workers);
    frt_star_free(vs->mem);
    frt_image_proc_free(vs->improc);
    frt_clip_close(vs->clip);
    frt_tokenizer_free(vs->tok);
    frt_free(vs->head_ids);
    frt_free(vs->pixels);
    frt_free(vs->feats);
    frt_free(vs->pooled);
    frt_st_close(vs->st);
    frt_config_free(vs->cfg);
    pthread_cond_destroy(&vs->work_cv);
    pthread_cond_destroy(&vs->idle_cv);
    pthread_mutex_destroy(&vs->mu);
    free(vs);
}
