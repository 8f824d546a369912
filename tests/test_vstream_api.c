/* The public vstream API on the tiny checkpoint: open errors, answers on a
 * generated file (stream time, frames, memory sizes, latencies), the
 * bounded queue, cancel, close in the middle of an answer. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "flashrt/vstream.h"
#include "memory.h"
#include "testutil.h"

#define MODEL FRT_TEST_DATA "/models/vstream-tiny"
/* The tiny Llama has 1000 ids; this tokenizer 600 pieces (tokenizer.model
 * has 2000 and must be refused). */
#define TOKENIZER FRT_TEST_DATA "/tokenizer/ws.model"
#define MAX_REC   64

typedef struct rec {
    uint64_t id;
    frt_vstream_answer a; /* strings below */
    char answer[2048];
    int finals, pieces;
    pthread_t thread;
} rec;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static rec recs[MAX_REC];
static int n_recs;
static bool gate_closed; /* the first streamed piece waits here */
static bool gate_reached;

static void reset(void)
{
    pthread_mutex_lock(&mu);
    memset(recs, 0, sizeof recs);
    n_recs = 0;
    gate_closed = false;
    gate_reached = false;
    pthread_mutex_unlock(&mu);
}

static rec *find(uint64_t id)
{
    for (int i = 0; i < n_recs; i++)
        if (recs[i].id == id) return &recs[i];
    cr_assert(n_recs < MAX_REC);
    recs[n_recs].id = id;
    return &recs[n_recs++];
}

static void on_answer(const frt_vstream_answer *a, void *user)
{
    (void)user;
    pthread_mutex_lock(&mu);
    rec *r = find(a->id);
    if (!a->final) {
        r->pieces++;
        gate_reached = true;
        pthread_cond_broadcast(&cv);
        while (gate_closed) pthread_cond_wait(&cv, &mu);
    } else {
        r->finals++;
        r->a = *a;
        snprintf(r->answer, sizeof r->answer, "%s", a->answer);
        r->thread = pthread_self();
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
}

static void open_tiny(frt_vstream_options *o, frt_vstream **vs)
{
    o->tokenizer = TOKENIZER;
    frt_status s = frt_vstream_open(MODEL, o, vs);
    cr_assert_eq(s, FRT_OK, "open: %s", frt_last_error());
}

static int finals_of(uint64_t id)
{
    pthread_mutex_lock(&mu);
    int n = 0;
    for (int i = 0; i < n_recs; i++)
        if (recs[i].id == id) n = recs[i].finals;
    pthread_mutex_unlock(&mu);
    return n;
}

static rec get(uint64_t id)
{
    rec out;
    memset(&out, 0, sizeof out);
    pthread_mutex_lock(&mu);
    for (int i = 0; i < n_recs; i++)
        if (recs[i].id == id) out = recs[i];
    pthread_mutex_unlock(&mu);
    return out;
}

static void wait_gate(void)
{
    pthread_mutex_lock(&mu);
    while (!gate_reached) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void open_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_closed = false;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* A 160x120 testsrc file of `seconds` seconds at 10 fps, or NULL (skip)
 * without ffmpeg. */
static char *make_video(const char *dir, int seconds)
{
    if (system("command -v ffmpeg >/dev/null 2>&1") != 0) return NULL;
    char *path = malloc(strlen(dir) + 16);
    sprintf(path, "%s/in.mp4", dir);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc=size=160x120:rate=10 -t %d "
             "-c:v libx264 -preset ultrafast -pix_fmt yuv420p %s",
             seconds, path);
    cr_assert_eq(system(cmd), 0, "ffmpeg failed");
    return path;
}

static int tokens_after(int64_t frames)
{
    frt_config *cfg;
    cr_assert_eq(frt_config_load(MODEL "/config.json", &cfg), FRT_OK);
    frt_star_config c;
    frt_star_config_default(&c, 48);
    cr_assert_eq(frt_star_config_read(cfg, &c), FRT_OK);
    frt_config_free(cfg);
    return frt_star_tokens_after(&c, frames);
}

Test(vstream_api, open_errors)
{
    frt_vstream *vs = (frt_vstream *)1;
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.tokenizer = TOKENIZER;
    cr_expect_eq(frt_vstream_open(FRT_TEST_DATA "/models/no-such-model", &o, &vs),
                 FRT_ERR_NOT_FOUND);
    cr_expect_null(vs);
    cr_expect(strstr(frt_last_error(), "no-such-model"), "%s", frt_last_error());
    cr_expect_eq(frt_vstream_open(MODEL "/config.json", &o, &vs), FRT_ERR_NOT_FOUND);
    cr_expect(strstr(frt_last_error(), "not a model directory"), "%s", frt_last_error());
    cr_expect_eq(frt_vstream_open(FRT_TEST_DATA "/tokenizer", &o, &vs), FRT_ERR_NOT_FOUND);
    cr_expect(strstr(frt_last_error(), "no config.json"), "%s", frt_last_error());
    cr_expect_eq(frt_vstream_open(FRT_TEST_DATA "/models/llama-tiny", &o, &vs), FRT_ERR_FORMAT);
    cr_expect(strstr(frt_last_error(), "not a Flash-VStream model"), "%s", frt_last_error());
    /* the model ships no tokenizer */
    o.tokenizer = NULL;
    cr_expect_eq(frt_vstream_open(MODEL, &o, &vs), FRT_ERR_NOT_FOUND);
    o.tokenizer = FRT_TEST_DATA "/tokenizer/tokenizer.model";
    cr_expect_eq(frt_vstream_open(MODEL, &o, &vs), FRT_ERR_FORMAT);
    cr_expect(strstr(frt_last_error(), "2000 pieces"), "%s", frt_last_error());
    frt_vstream_options_init(&o);
    o.tokenizer = TOKENIZER;
    o.queue_len = 0;
    cr_expect_eq(frt_vstream_open(MODEL, &o, &vs), FRT_ERR_INVALID_ARG);
    frt_vstream_options_init(&o);
    o.max_ctx = 100; /* the prompt and a full memory need more */
    o.tokenizer = TOKENIZER;
    cr_expect_eq(frt_vstream_open(MODEL, &o, &vs), FRT_ERR_LIMIT);
    cr_expect_eq(frt_vstream_open(NULL, &o, &vs), FRT_ERR_INVALID_ARG);
    frt_vstream_close(NULL);
}

Test(vstream_api, ask_errors_and_start_errors)
{
    reset();
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.max_question_bytes = 64;
    frt_vstream *vs;
    open_tiny(&o, &vs);
    char big[200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    uint64_t id = 0;
    cr_expect_eq(frt_vstream_ask(vs, big, on_answer, NULL, &id), FRT_ERR_LIMIT);
    cr_expect_eq(frt_vstream_ask(vs, "", on_answer, NULL, &id), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_vstream_ask(vs, "x", NULL, NULL, &id), FRT_ERR_INVALID_ARG);
    cr_expect_eq(id, 0);
    cr_expect_eq(frt_vstream_cancel(vs, 12345), FRT_ERR_NOT_FOUND);
    cr_expect_eq(frt_vstream_start(vs, "/no/such/video.mp4", NULL), FRT_ERR_NOT_FOUND);
    /* before any frame: an answer from an empty memory */
    cr_assert_eq(frt_vstream_ask(vs, "Anything?", on_answer, NULL, &id), FRT_OK);
    cr_expect_eq(id, 1);
    cr_assert_eq(frt_vstream_wait_idle(vs, 30000), FRT_OK);
    rec r = get(id);
    cr_expect_eq(r.finals, 1);
    cr_expect_eq(r.a.status, FRT_OK);
    cr_expect_eq(r.a.frames, 0);
    cr_expect_eq(r.a.memory_tokens, 0);
    cr_expect_gt(r.a.prompt_tokens, 0);
    frt_vstream_close(vs);
}

Test(vstream_api, answers_on_a_file)
{
    reset();
    char *dir = tu_tmpdir();
    char *video = make_video(dir, 12);
    if (!video) {
        tu_rmtree(dir);
        free(dir);
        cr_skip_test("ffmpeg not found");
    }
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.max_new_tokens = 8;
    frt_vstream *vs;
    open_tiny(&o, &vs);
    frt_vstream_source_options so;
    frt_vstream_source_options_init(&so);
    cr_assert_eq(frt_vstream_start(vs, video, &so), FRT_OK, "%s", frt_last_error());
    cr_expect_eq(frt_vstream_start(vs, video, &so), FRT_ERR_INVALID_ARG);

    /* questions while the writer runs, then after the end */
    uint64_t ids[8];
    int n = 0;
    frt_vstream_status st;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(frt_vstream_ask(vs, "What is on the screen?", on_answer, NULL, &ids[n++]),
                     FRT_OK, "%s", frt_last_error());
        usleep(5000);
    }
    for (int i = 0; i < 3000; i++) {
        frt_vstream_get_status(vs, &st);
        if (st.finished) break;
        usleep(10000);
    }
    cr_assert(st.finished);
    cr_expect_eq(st.source_status, FRT_OK, "%s", st.source_error);
    cr_expect_eq(st.frames, 12);
    cr_expect_float_eq(st.stream_time, 11.0, 1e-6);
    cr_expect_eq(st.dropped, 0);
    cr_expect_eq(st.memory_tokens, tokens_after(12));
    cr_expect_eq(st.memory_max_tokens, tokens_after(INT64_MAX));
    cr_assert_eq(frt_vstream_ask(vs, "And now?", on_answer, NULL, &ids[n++]), FRT_OK);
    cr_assert_eq(frt_vstream_wait_idle(vs, 60000), FRT_OK);
    for (int i = 0; i < n; i++) {
        rec r = get(ids[i]);
        cr_expect_eq(r.finals, 1, "question %d", i);
        cr_expect_eq(r.a.status, FRT_OK, "question %d", i);
        cr_expect(r.a.frames >= 0 && r.a.frames <= 12);
        if (r.a.frames > 0) /* 1 fps from 0: frame k at k seconds */
            cr_expect_float_eq(r.a.stream_time, (double)(r.a.frames - 1), 1e-6);
        cr_expect_eq(r.a.memory_tokens, tokens_after(r.a.frames), "frames %lld",
                     (long long)r.a.frames);
        cr_expect_gt(r.a.prompt_tokens, r.a.memory_tokens);
        cr_expect(r.a.answer_tokens >= 0 && r.a.answer_tokens <= 8);
        cr_expect(strcmp(r.a.finish, "stop") == 0 || strcmp(r.a.finish, "length") == 0);
        cr_expect(r.a.snapshot_ms >= 0 && r.a.prefill_ms > 0 && r.a.queue_ms >= 0);
        cr_expect_leq(r.a.queue_ms, r.a.total_ms);
        if (r.a.answer_tokens > 0) {
            cr_expect_leq(r.a.first_token_ms, r.a.total_ms);
            cr_expect_geq(r.a.first_token_ms, r.a.queue_ms);
        }
    }
    rec last = get(ids[n - 1]);
    cr_expect_eq(last.a.frames, 12);
    cr_expect_eq(last.a.memory_tokens, tokens_after(INT64_MAX));
    frt_vstream_get_status(vs, &st);
    cr_expect_eq(st.questions_answered, n);
    cr_expect_gt(st.last_total_ms, 0);
    frt_vstream_close(vs);
    tu_rmtree(dir);
    free(dir);
    free(video);
}

/* Same questions, same memory: greedy answers agree. */
Test(vstream_api, deterministic)
{
    reset();
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.max_new_tokens = 12;
    frt_vstream *vs;
    open_tiny(&o, &vs);
    uint64_t a, b;
    cr_assert_eq(frt_vstream_ask(vs, "Who?", on_answer, NULL, &a), FRT_OK);
    cr_assert_eq(frt_vstream_ask(vs, "Who?", on_answer, NULL, &b), FRT_OK);
    cr_assert_eq(frt_vstream_wait_idle(vs, 30000), FRT_OK);
    rec ra = get(a), rb = get(b);
    cr_expect_str_eq(ra.answer, rb.answer);
    cr_expect_eq(ra.a.answer_tokens, rb.a.answer_tokens);
    frt_vstream_close(vs);
}

Test(vstream_api, queue_full_and_cancel)
{
    reset();
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.queue_len = 2;
    o.stream_tokens = 1;
    o.max_new_tokens = 4;
    frt_vstream *vs;
    open_tiny(&o, &vs);
    pthread_mutex_lock(&mu);
    gate_closed = true;
    pthread_mutex_unlock(&mu);
    uint64_t q1, q2, q3, q4 = 0;
    cr_assert_eq(frt_vstream_ask(vs, "one", on_answer, NULL, &q1), FRT_OK);
    wait_gate(); /* q1 is being answered, held in its first piece */
    cr_assert_eq(frt_vstream_ask(vs, "two", on_answer, NULL, &q2), FRT_OK);
    cr_assert_eq(frt_vstream_ask(vs, "three", on_answer, NULL, &q3), FRT_OK);
    cr_expect_eq(frt_vstream_ask(vs, "four", on_answer, NULL, &q4), FRT_ERR_LIMIT);
    cr_expect(strstr(frt_last_error(), "queue full"), "%s", frt_last_error());
    cr_expect_eq(q4, 0);
    frt_vstream_status st;
    frt_vstream_get_status(vs, &st);
    cr_expect_eq(st.questions_waiting, 2);

    /* a waiting question: its callback runs here, before cancel returns */
    cr_expect_eq(frt_vstream_cancel(vs, q2), FRT_OK);
    rec r2 = get(q2);
    cr_expect_eq(r2.finals, 1);
    cr_expect_eq(r2.a.status, FRT_ERR_CANCELLED);
    cr_expect_str_eq(r2.a.finish, "cancelled");
    cr_expect(pthread_equal(r2.thread, pthread_self()));
    cr_expect_eq(frt_vstream_cancel(vs, q2), FRT_ERR_NOT_FOUND);
    /* the running one stops after its current token */
    cr_expect_eq(frt_vstream_cancel(vs, q1), FRT_OK);
    open_gate();
    cr_assert_eq(frt_vstream_wait_idle(vs, 30000), FRT_OK);
    rec r1 = get(q1), r3 = get(q3);
    cr_expect_eq(r1.finals, 1);
    cr_expect_eq(r1.a.status, FRT_ERR_CANCELLED);
    cr_expect_eq(r1.a.answer_tokens, 1);
    cr_expect_eq(r3.finals, 1);
    cr_expect_eq(r3.a.status, FRT_OK);
    cr_expect_eq(finals_of(q4), 0);
    frt_vstream_close(vs);
}

static void *release_later(void *arg)
{
    (void)arg;
    usleep(100000);
    open_gate();
    return NULL;
}

Test(vstream_api, close_mid_answer)
{
    reset();
    char *dir = tu_tmpdir();
    char *video = make_video(dir, 30);
    if (!video) {
        tu_rmtree(dir);
        free(dir);
        cr_skip_test("ffmpeg not found");
    }
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.stream_tokens = 1;
    frt_vstream *vs;
    open_tiny(&o, &vs);
    frt_vstream_source_options so;
    frt_vstream_source_options_init(&so);
    so.realtime = true; /* the writer is mid-stream when we close */
    cr_assert_eq(frt_vstream_start(vs, video, &so), FRT_OK, "%s", frt_last_error());
    pthread_mutex_lock(&mu);
    gate_closed = true;
    pthread_mutex_unlock(&mu);
    uint64_t q1, q2;
    cr_assert_eq(frt_vstream_ask(vs, "one", on_answer, NULL, &q1), FRT_OK);
    wait_gate();
    cr_assert_eq(frt_vstream_ask(vs, "two", on_answer, NULL, &q2), FRT_OK);
    pthread_t t;
    pthread_create(&t, NULL, release_later, NULL);
    frt_vstream_close(vs);
    pthread_join(t, NULL);
    rec r1 = get(q1), r2 = get(q2);
    cr_expect_eq(r1.finals, 1);
    cr_expect_eq(r1.a.status, FRT_ERR_CANCELLED);
    cr_expect_eq(r2.finals, 1);
    cr_expect_eq(r2.a.status, FRT_ERR_CANCELLED);
    tu_rmtree(dir);
    free(dir);
    free(video);
}

/* Questions about given stream times on a file: each answer sees exactly
 * the frames up to its time, however far the writer has run ahead while
 * the answering thread was held up. */
Test(vstream_api, ask_at_sees_exactly_its_frames)
{
    reset();
    char *dir = tu_tmpdir();
    char *video = make_video(dir, 12);
    if (!video) {
        tu_rmtree(dir);
        free(dir);
        cr_skip_test("ffmpeg not found");
    }
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.stream_tokens = 1;
    o.max_new_tokens = 6;
    o.queue_len = 12;
    frt_vstream *vs;
    open_tiny(&o, &vs);
    uint64_t id;
    cr_expect_eq(frt_vstream_ask_at(vs, -1, "q", on_answer, NULL, &id), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_vstream_ask_at(vs, NAN, "q", on_answer, NULL, &id), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_vstream_ask_at(vs, INFINITY, "q", on_answer, NULL, &id), FRT_ERR_INVALID_ARG);
    cr_expect_eq(frt_vstream_ask_at(vs, 1, "", on_answer, NULL, &id), FRT_ERR_INVALID_ARG);

    /* hold the answering thread in its first answer */
    pthread_mutex_lock(&mu);
    gate_closed = true;
    pthread_mutex_unlock(&mu);
    uint64_t hold;
    cr_assert_eq(frt_vstream_ask(vs, "one", on_answer, NULL, &hold), FRT_OK);
    wait_gate();

    static const double at[] = {5, 0, 2, 5.5, 11, 7.25, 50};
    static const int64_t want[] = {6, 1, 3, 6, 12, 8, 12}; /* frames up to each time */
    enum { N = sizeof at / sizeof at[0] };
    uint64_t ids[N], gone;
    for (int i = 0; i < N; i++)
        cr_assert_eq(
            frt_vstream_ask_at(vs, at[i], "What is on the screen?", on_answer, NULL, &ids[i]),
            FRT_OK, "%s", frt_last_error());
    /* a question not yet due can be cancelled: its callback runs here */
    cr_assert_eq(frt_vstream_ask_at(vs, 3, "never", on_answer, NULL, &gone), FRT_OK);
    cr_expect_eq(frt_vstream_cancel(vs, gone), FRT_OK);
    cr_expect_eq(get(gone).a.status, FRT_ERR_CANCELLED);
    cr_expect_eq(frt_vstream_cancel(vs, gone), FRT_ERR_NOT_FOUND);

    cr_assert_eq(frt_vstream_start(vs, video, NULL), FRT_OK, "%s", frt_last_error());
    frt_vstream_status st;
    for (int i = 0; i < 3000; i++) {
        frt_vstream_get_status(vs, &st);
        if (st.finished) break;
        usleep(10000);
    }
    cr_assert(st.finished);
    cr_expect_eq(st.frames, 12);
    cr_expect_eq(st.questions_waiting, N); /* all due, none answered yet */
    /* past its time once the file has ended: the latest memory */
    uint64_t late;
    cr_assert_eq(frt_vstream_ask_at(vs, 3, "What is on the screen?", on_answer, NULL, &late),
                 FRT_OK);
    open_gate();
    cr_assert_eq(frt_vstream_wait_idle(vs, 60000), FRT_OK);
    for (int i = 0; i < N; i++) {
        rec r = get(ids[i]);
        cr_expect_eq(r.finals, 1, "t %g", at[i]);
        cr_expect_eq(r.a.status, FRT_OK, "t %g", at[i]);
        cr_expect_eq(r.a.frames, want[i], "t %g: %lld frames", at[i], (long long)r.a.frames);
        cr_expect_float_eq(r.a.stream_time, (double)(want[i] - 1), 1e-6, "t %g", at[i]);
        cr_expect_eq(r.a.memory_tokens, tokens_after(want[i]), "t %g", at[i]);
        cr_expect_leq(r.a.queue_ms, r.a.total_ms);
    }
    /* the same memory, the same answer */
    cr_expect_str_eq(get(ids[0]).answer, get(ids[3]).answer);
    cr_expect_str_eq(get(ids[4]).answer, get(ids[6]).answer);
    rec rl = get(late);
    cr_expect_eq(rl.a.frames, 12);
    cr_expect_str_eq(rl.answer, get(ids[4]).answer);
    frt_vstream_close(vs);
    tu_rmtree(dir);
    free(dir);
    free(video);
}

/* Questions about times the stream never reaches are cancelled by close. */
Test(vstream_api, ask_at_cancelled_by_close)
{
    reset();
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    frt_vstream *vs;
    open_tiny(&o, &vs);
    uint64_t a, b;
    cr_assert_eq(frt_vstream_ask_at(vs, 10, "a", on_answer, NULL, &a), FRT_OK);
    cr_assert_eq(frt_vstream_ask_at(vs, 20, "b", on_answer, NULL, &b), FRT_OK);
    cr_expect_eq(frt_vstream_wait_idle(vs, 50), FRT_ERR_TIMEOUT);
    frt_vstream_close(vs);
    cr_expect_eq(get(a).finals, 1);
    cr_expect_eq(get(a).a.status, FRT_ERR_CANCELLED);
    cr_expect_eq(get(b).finals, 1);
    cr_expect_eq(get(b).a.status, FRT_ERR_CANCELLED);
}

/* Memory ablations: the memory goes on as usual, the language model sees
 * only the chosen parts. */
Test(vstream_api, memory_parts)
{
    char *dir = tu_tmpdir();
    char *video = make_video(dir, 12);
    if (!video) {
        tu_rmtree(dir);
        free(dir);
        cr_skip_test("ffmpeg not found");
    }
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    cr_expect_eq(o.memory_parts, FRT_VSTREAM_MEM_ALL);
    frt_vstream *vs;
    o.tokenizer = TOKENIZER;
    o.memory_parts = 0;
    cr_expect_eq(frt_vstream_open(MODEL, &o, &vs), FRT_ERR_INVALID_ARG);
    cr_expect(strstr(frt_last_error(), "memory_parts"), "%s", frt_last_error());
    o.memory_parts = 16;
    cr_expect_eq(frt_vstream_open(MODEL, &o, &vs), FRT_ERR_INVALID_ARG);

    /* the parts after 12 frames of the tiny model (vstream/memory.h):
     * abstract 6 x 1, temporal 6 x 2^2, retrieved 3 x 4^2, spatial 1 x 4^2 */
    const int abs_ = 6, tem = 24, ret = 48, spa = 16;
    cr_assert_eq(abs_ + tem + ret + spa, tokens_after(12));
    static const unsigned modes[] = {FRT_VSTREAM_MEM_ALL, FRT_VSTREAM_MEM_SPATIAL,
                                     FRT_VSTREAM_MEM_ABSTRACT | FRT_VSTREAM_MEM_SPATIAL,
                                     FRT_VSTREAM_MEM_TEMPORAL | FRT_VSTREAM_MEM_RETRIEVED |
                                         FRT_VSTREAM_MEM_SPATIAL};
    int prompt_full = 0;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        reset();
        frt_vstream_options_init(&o);
        o.max_new_tokens = 4;
        o.memory_parts = modes[m];
        open_tiny(&o, &vs);
        uint64_t id;
        cr_assert_eq(frt_vstream_ask_at(vs, 11, "What?", on_answer, NULL, &id), FRT_OK);
        cr_assert_eq(frt_vstream_start(vs, video, NULL), FRT_OK, "%s", frt_last_error());
        cr_assert_eq(frt_vstream_wait_idle(vs, 60000), FRT_OK);
        frt_vstream_status st;
        frt_vstream_get_status(vs, &st);
        cr_expect_eq(st.memory_tokens, tokens_after(st.frames)); /* kept in full */
        rec r = get(id);
        cr_assert_eq(r.a.status, FRT_OK);
        cr_expect_eq(r.a.frames, 12);
        cr_expect_eq(r.a.abstract_tokens, modes[m] & FRT_VSTREAM_MEM_ABSTRACT ? abs_ : 0);
        cr_expect_eq(r.a.temporal_tokens, modes[m] & FRT_VSTREAM_MEM_TEMPORAL ? tem : 0);
        cr_expect_eq(r.a.retrieved_tokens, modes[m] & FRT_VSTREAM_MEM_RETRIEVED ? ret : 0);
        cr_expect_eq(r.a.spatial_tokens, spa);
        cr_expect_eq(r.a.memory_tokens, r.a.abstract_tokens + r.a.temporal_tokens +
                                            r.a.retrieved_tokens + r.a.spatial_tokens);
        if (m == 0) prompt_full = r.a.prompt_tokens;
        cr_expect_eq(r.a.prompt_tokens, prompt_full - tokens_after(12) + r.a.memory_tokens,
                     "mode %zu", m);
        frt_vstream_close(vs);
    }
    tu_rmtree(dir);
    free(dir);
    free(video);
}
