/* Stress for the vstream API under ThreadSanitizer: the writer encodes a
 * lavfi test source while several threads ask (and cancel) questions, one
 * thread polls the status, two answering threads serve the queue (half the
 * questions are about given stream times: frt_vstream_ask_at), and the
 * stream is closed with questions still waiting and running. Checks that
 * every accepted question gets exactly one final callback, that a full
 * queue is reported (never a silent drop), and that every answer saw a
 * complete memory snapshot (its token count matches its frame count).
 * Prints "N passed, N failed"; exits non-zero on any failure. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "flashrt/vstream.h"
#include "memory.h"

#define ASKERS    4
#define PER_ASKER 30
#define MAX_ID    4096

static frt_vstream *vs;
static frt_star_config mcfg;
static atomic_int finals[MAX_ID];
static atomic_int bad_status, bad_tokens, bad_order, accepted, rejected_full, cancels;
static atomic_bool stop_status;
static int passed, failed;

static void check(int ok, const char *what)
{
    if (ok)
        passed++;
    else {
        failed++;
        fprintf(stderr, "FAILED: %s\n", what);
    }
}

static void on_answer(const frt_vstream_answer *a, void *user)
{
    (void)user;
    if (a->id >= MAX_ID) return;
    if (!a->final) {
        if (atomic_load(&finals[a->id]) != 0) atomic_fetch_add(&bad_order, 1);
        return;
    }
    atomic_fetch_add(&finals[a->id], 1);
    if (a->status != FRT_OK && a->status != FRT_ERR_CANCELLED) atomic_fetch_add(&bad_status, 1);
    if (a->status == FRT_OK && a->memory_tokens != frt_star_tokens_after(&mcfg, a->frames))
        atomic_fetch_add(&bad_tokens, 1);
}

static void *asker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
    for (int i = 0; i < PER_ASKER; i++) {
        char q[64];
        snprintf(q, sizeof q, "Question %d from thread %u?", i, (unsigned)(uintptr_t)arg);
        uint64_t id;
        frt_status s;
        if (i % 2) { /* about a moment near now: due already, soon, or in transit */
            frt_vstream_status st;
            frt_vstream_get_status(vs, &st);
            double t = st.stream_time + 0.2 * (double)(rand_r(&seed) % 4) - 0.2;
            s = frt_vstream_ask_at(vs, t > 0 ? t : 0, q, on_answer, NULL, &id);
        } else {
            s = frt_vstream_ask(vs, q, on_answer, NULL, &id);
        }
        if (s == FRT_ERR_LIMIT) { /* full: told so, and asked again */
            atomic_fetch_add(&rejected_full, 1);
            usleep(1000);
            i--;
            continue;
        }
        if (s != FRT_OK) {
            atomic_fetch_add(&bad_status, 1);
            continue;
        }
        atomic_fetch_add(&accepted, 1);
        if (rand_r(&seed) % 4 == 0 && frt_vstream_cancel(vs, id) == FRT_OK)
            atomic_fetch_add(&cancels, 1);
        usleep((useconds_t)(rand_r(&seed) % 3000));
    }
    return NULL;
}

static void *status_poller(void *arg)
{
    (void)arg;
    int64_t last_frames = 0;
    while (!atomic_load(&stop_status)) {
        frt_vstream_status st;
        frt_vstream_get_status(vs, &st);
        if (st.frames < last_frames) atomic_fetch_add(&bad_order, 1);
        last_frames = st.frames;
        usleep(1000);
    }
    return NULL;
}

int main(void)
{
    const char *data = FRT_TEST_DATA;
    char model[1024], tok[1024], cfgpath[1100];
    snprintf(model, sizeof model, "%s/models/vstream-tiny", data);
    snprintf(tok, sizeof tok, "%s/tokenizer/ws.model", data);
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", model);

    frt_config *cfg;
    if (frt_config_load(cfgpath, &cfg) != FRT_OK) {
        fprintf(stderr, "%s\n", frt_last_error());
        return 1;
    }
    frt_star_config_default(&mcfg, 48);
    frt_status s = frt_star_config_read(cfg, &mcfg);
    frt_config_free(cfg);
    check(s == FRT_OK, "memory config");

    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.tokenizer = tok;
    o.queue_len = 4;
    o.answer_threads = 2;
    o.max_new_tokens = 6;
    o.stream_tokens = 1;
    if (frt_vstream_open(model, &o, &vs) != FRT_OK) {
        fprintf(stderr, "open: %s\n", frt_last_error());
        return 1;
    }
    frt_vstream_source_options so;
    frt_vstream_source_options_init(&so);
    so.format = "lavfi";
    so.fps = 5;
    s = frt_vstream_start(vs, "testsrc=size=96x72:rate=25", &so);
    check(s == FRT_OK, "start on lavfi");
    if (s != FRT_OK) fprintf(stderr, "start: %s\n", frt_last_error());

    pthread_t th[ASKERS], poller;
    pthread_create(&poller, NULL, status_poller, NULL);
    for (int i = 0; i < ASKERS; i++) pthread_create(&th[i], NULL, asker, (void *)(uintptr_t)i);
    for (int i = 0; i < ASKERS; i++) pthread_join(th[i], NULL);
    check(frt_vstream_wait_idle(vs, 120000) == FRT_OK, "all questions finish");

    frt_vstream_status st;
    frt_vstream_get_status(vs, &st);
    check(st.frames > 0, "the writer encoded frames");
    check(st.questions_answered == atomic_load(&accepted), "answered == accepted");

    /* close with questions waiting and running */
    int late = 0;
    for (int i = 0; i < 8; i++)
        if (frt_vstream_ask(vs, "late question", on_answer, NULL, NULL) == FRT_OK) late++;
    for (int i = 0; i < 2; i++) /* never due: close cancels them */
        if (frt_vstream_ask_at(vs, 1e6, "far question", on_answer, NULL, NULL) == FRT_OK) late++;
    atomic_fetch_add(&accepted, late);
    atomic_store(&stop_status, true);
    pthread_join(poller, NULL);
    frt_vstream_close(vs);

    int total = 0, dup = 0;
    for (int i = 0; i < MAX_ID; i++) {
        int f = atomic_load(&finals[i]);
        total += f;
        if (f > 1) dup++;
    }
    check(total == atomic_load(&accepted), "one final callback per accepted question");
    check(dup == 0, "no question finished twice");
    check(atomic_load(&bad_status) == 0, "answers OK or cancelled");
    check(atomic_load(&bad_tokens) == 0, "snapshots complete (tokens match frames)");
    check(atomic_load(&bad_order) == 0, "no piece after a final; frames monotonic");
    check(atomic_load(&accepted) == ASKERS * PER_ASKER + late, "every question got in");
    check(atomic_load(&rejected_full) > 0, "a full queue was reported");
    fprintf(stderr,
            "stress_vstream: %d accepted, %d rejected (queue full), %d cancelled, %lld frames\n",
            atomic_load(&accepted), atomic_load(&rejected_full), atomic_load(&cancels),
            (long long)st.frames);
    fflush(stderr);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
