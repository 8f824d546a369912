/* One writer pushes frames into a STAR memory while readers pin and copy
 * snapshots. Every frame carries its index in its values, so a reader can
 * tell a torn snapshot (tokens of different frames, counts that do not fit
 * the frame count, time going backwards). The second round is the whole
 * writer side: frames come from an ingest thread (a fast live lavfi
 * source that drops), another thread polls the ingest counters. Run under
 * ThreadSanitizer in the tsan build (ctest -L tsan). Prints "N passed, N
 * failed". */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest.h"
#include "memory.h"

#define DIM     4
#define FRAMES  1500
#define READERS 4

static frt_star *g_mem;
static frt_star_config g_cfg;
static atomic_int g_done;
static atomic_long g_bad, g_reads;

static float value(int64_t frame, int i)
{
    return (float)frame + 0.001f * (float)(i % 13);
}

/* 0 when s is a consistent snapshot newer than or equal to *last. */
static int check(const frt_star_snapshot *s, int64_t *last)
{
    const int fs = 64 * DIM;
    if (s->frames < *last) return 1;
    *last = s->frames;
    if (s->n_tokens != frt_star_tokens_after(&g_cfg, s->frames)) return 2;
    if (s->frames == 0) return 0;
    if (s->time_s != (double)(s->frames - 1)) return 3;
    const float *spa = s->tokens + (size_t)(s->n_tokens - 64) * DIM;
    for (int i = 0; i < fs; i++)
        if (spa[i] != value(s->frames - 1, i)) return 4;
    const float *ret = s->tokens + (size_t)(s->n_abstract + s->n_temporal) * DIM;
    for (int r = 0; r < s->n_ret_frames; r++) {
        if (s->ret_index[r] < 0 || s->ret_index[r] >= s->frames - 1) return 5;
        for (int i = 0; i < fs; i++)
            if (ret[(size_t)r * fs + i] != value(s->ret_index[r], i)) return 6;
    }
    return 0;
}

static void *reader(void *arg)
{
    int id = (int)(intptr_t)arg;
    int64_t last = 0;
    float *buf = malloc((size_t)frt_star_tokens_after(&g_cfg, 1 << 30) * DIM * sizeof(float));
    while (!atomic_load(&g_done)) {
        int err;
        if (id % 2 == 0) {
            const frt_star_snapshot *s = frt_star_acquire(g_mem);
            err = check(s, &last);
            if (id == 0) { /* hold the pin a while, as a question being answered would */
                struct timespec ts = {0, 200000};
                nanosleep(&ts, NULL);
                if (!err) err = check(s, &last) ? 7 : 0;
            }
            frt_star_release(g_mem, s);
        } else {
            frt_star_snapshot info;
            if (frt_star_copy(g_mem, buf, frt_star_tokens_after(&g_cfg, 1 << 30), &info) != FRT_OK)
                err = 8;
            else
                err = check(&info, &last);
        }
        if (err) {
            if (atomic_fetch_add(&g_bad, 1) < 5) fprintf(stderr, "reader %d: check %d\n", id, err);
        }
        atomic_fetch_add(&g_reads, 1);
    }
    free(buf);
    return NULL;
}

typedef void (*writer_fn)(void);

static void push_synthetic(void)
{
    float frame[64 * DIM];
    for (int64_t t = 0; t < FRAMES; t++) {
        for (int i = 0; i < 64 * DIM; i++) frame[i] = value(t, i);
        frt_star_push(g_mem, frame, (double)t);
    }
}

static atomic_int g_ingest_done;
static atomic_long g_ingest_bad;

static void *poll_stats(void *arg)
{
    frt_ingest *ing = arg;
    int64_t last = 0;
    while (!atomic_load(&g_ingest_done)) {
        frt_ingest_stats st;
        frt_ingest_get_stats(ing, &st);
        if (st.sampled < last || st.delivered + st.dropped > st.sampled)
            atomic_fetch_add(&g_ingest_bad, 1);
        last = st.sampled;
    }
    return NULL;
}

/* Frames from the ingest thread; the features only carry the push count
 * (the vision encoder is not part of this program), the pixels are read. */
static void push_from_ingest(void)
{
    frt_ingest_opts o;
    frt_ingest_opts_default(&o);
    o.format = "lavfi";
    o.live = 1;
    o.fps = 0;
    o.queue_len = 3;
    frt_ingest *ing;
    if (frt_ingest_open("testsrc=size=64x48:rate=1000", &o, &ing) != FRT_OK) {
        fprintf(stderr, "ingest: %s\n", frt_last_error());
        atomic_fetch_add(&g_ingest_bad, 1);
        return;
    }
    pthread_t th;
    pthread_create(&th, NULL, poll_stats, ing);
    float frame[64 * DIM];
    double last_t = -1;
    for (int64_t t = 0; t < FRAMES / 5; t++) {
        frt_ingest_frame f;
        if (frt_ingest_next(ing, &f, 10000) != FRT_OK || !f.rgb || f.time_s <= last_t) {
            atomic_fetch_add(&g_ingest_bad, 1);
            break;
        }
        last_t = f.time_s;
        long sum = 0;
        for (int i = 0; i < f.width * f.height * 3; i++) sum += f.rgb[i];
        for (int i = 0; i < 64 * DIM; i++) frame[i] = value(t, i);
        frame[0] += sum > 0 ? 0.0f : 1.0f; /* a black testsrc frame breaks the check */
        frt_star_push(g_mem, frame, (double)t);
    }
    atomic_store(&g_ingest_done, 1);
    pthread_join(th, NULL);
    frt_ingest_close(ing);
}

/* One round: a fresh memory, READERS readers, the writer; 0 on success. */
static int run_round(writer_fn writer, int64_t frames)
{
    float w[32 * DIM * 2 + 64];
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) w[i] = (float)((i * 37) % 11) * 0.05f;
    if (frt_star_create(&g_cfg, w, w + 32 * DIM, w + 32 * DIM + 32, w + 32, &g_mem) != FRT_OK) {
        fprintf(stderr, "create: %s\n", frt_last_error());
        return 1;
    }
    atomic_store(&g_done, 0);
    atomic_store(&g_bad, 0);
    atomic_store(&g_reads, 0);
    pthread_t th[READERS];
    for (int i = 0; i < READERS; i++) pthread_create(&th[i], NULL, reader, (void *)(intptr_t)i);
    writer();
    atomic_store(&g_done, 1);
    for (int i = 0; i < READERS; i++) pthread_join(th[i], NULL);
    int bad = 0;
    if (atomic_load(&g_bad) != 0 || atomic_load(&g_reads) <= READERS) {
        fprintf(stderr, "%ld bad of %ld reads\n", atomic_load(&g_bad), atomic_load(&g_reads));
        bad = 1;
    }
    /* the last snapshot is the last frame (nothing is pinned any more) */
    int64_t last = 0;
    const frt_star_snapshot *s = frt_star_acquire(g_mem);
    frt_star_state st;
    frt_star_inspect(g_mem, &st);
    if (check(s, &last) != 0 || s->frames != frames) {
        fprintf(stderr, "final snapshot: frames %lld, want %lld\n", (long long)s->frames,
                (long long)frames);
        bad = 1;
    }
    frt_star_release(g_mem, s);
    fprintf(stderr, "%ld reads, %lld publishes skipped\n", atomic_load(&g_reads),
            (long long)st.skipped_publish);
    frt_star_free(g_mem);
    return bad;
}

int main(void)
{
    int passed = 0, failed = 0;
    frt_star_config_default(&g_cfg, DIM);
    g_cfg.n_buff = 40;
    g_cfg.seed = 3;
    /* 1: synthetic frames, readers pinning and copying */
    run_round(push_synthetic, FRAMES) ? failed++ : passed++;
    /* 2: the ingest thread feeding the writer */
    int bad = run_round(push_from_ingest, FRAMES / 5) || atomic_load(&g_ingest_bad) != 0;
    if (atomic_load(&g_ingest_bad)) fprintf(stderr, "ingest round: bad frames or counters\n");
    bad ? failed++ : passed++;
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
