/* Fault injection on whole models (issue #9, docs/RELIABILITY.md): every
 * allocation of a load failing in turn, a checkpoint truncated after it was
 * opened, audio written to a full disk. The component suites cover their own
 * pieces (test_llama, test_safetensors, test_speech_model, test_audio_io);
 * these go through the public entry points. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "flashrt/speech.h"
#include "flashrt/vstream.h"
#include "safetensors.h"
#include "testutil.h"

#define VSTREAM FRT_TEST_DATA "/models/vstream-tiny"
#define SPEECH  FRT_TEST_DATA "/speech/flashspeech-tiny"
#define TOK     FRT_TEST_DATA "/tokenizer/ws.model"
#define IPA     "h_ə_l_ˈoʊ ð_ˈɛɹ. h_ˈaʊ ɑːɹ j_uː?"

static void fini(void)
{
    tu_check_leaks();
}
TestSuite(faults, .fini = fini);
TestSuite(truncated, .fini = fini);
TestSuite(disk_full, .fini = fini);

/* ---- every allocation of a load failing in turn ------------------------------ */

/* cJSON allocates with malloc unless told otherwise; routed through frt_alloc here (not in
 * the library: the hooks are global, and an application may use cJSON itself), so the sweep
 * reaches the JSON parses too. A failed parse cannot say why, so the loader then reports the
 * file as malformed: allowed only when the failed allocation was cJSON's. */
static bool cjson_failed;
static long cjson_base;   /* frt_alloc_calls() when the open began */
static bool *cjson_marks; /* dry run: which allocation numbers (from 1) were cJSON's */
static long cjson_marks_cap;

static void *cjson_alloc(size_t n)
{
    long k = frt_alloc_calls() - cjson_base + 1;
    if (cjson_marks && k < cjson_marks_cap) cjson_marks[k] = true;
    void *p = frt_alloc(n);
    if (!p) cjson_failed = true;
    return p;
}

/* Under AddressSanitizer an open costs ~7 ms, and the speech checkpoint's header alone makes
 * ~9000 cJSON allocations: there every 4th of cJSON's is failed (all of flashrt's still are),
 * which keeps the test near a minute. */
#if defined(__SANITIZE_ADDRESS__)
#define CJSON_STRIDE 4
#else
#define CJSON_STRIDE 1
#endif

typedef frt_status (*open_fn)(void **out);
typedef void (*close_fn)(void *p);

static frt_status open_vstream(void **out)
{
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.tokenizer = TOK;
    return frt_vstream_open(VSTREAM, &o, (frt_vstream **)out);
}
static void close_vstream(void *p)
{
    frt_vstream_close(p);
}
static frt_status open_speech(void **out)
{
    return frt_speech_open(SPEECH, (frt_speech **)out);
}
static void close_speech(void *p)
{
    frt_speech_close(p);
}

/* Fail allocation n = 1, 2, ... of open in turn. Each failure must be a clean FRT_ERR_NOMEM
 * with a message and no object (ASan checks that nothing leaked); with allocation n + 1 armed
 * the open must succeed having made exactly n allocations, which proves the sweep covered
 * each of them (a failure absorbed somewhere would shift the count). */
static void sweep(const char *what, open_fn open, close_fn close)
{
    cJSON_InitHooks(&(cJSON_Hooks){cjson_alloc, frt_free});
    /* dry run: how many allocations, and which are cJSON's */
    cjson_marks_cap = 1 << 20;
    cjson_marks = calloc((size_t)cjson_marks_cap, 1);
    void *obj = NULL;
    cjson_base = frt_alloc_calls();
    cr_assert_eq(open(&obj), FRT_OK, "%s: %s", what, frt_last_error());
    long total = frt_alloc_calls() - cjson_base;
    close(obj);
    bool *is_json = cjson_marks;
    cjson_marks = NULL;
    cr_assert_lt(total, cjson_marks_cap);

    long tried = 0, via_json = 0, n_json = 0;
    for (long n = 1; n <= total + 1; n++) {
        if (n <= total && is_json[n] && n_json++ % CJSON_STRIDE != 0) continue;
        obj = NULL;
        cjson_failed = false;
        cjson_base = frt_alloc_calls();
        frt_alloc_fail_after(n);
        frt_status s = open(&obj);
        frt_alloc_fail_after(0);
        long calls = frt_alloc_calls() - cjson_base;
        if (n == total + 1) {
            cr_assert_eq(s, FRT_OK, "%s: %s", what, frt_last_error());
            cr_assert_eq(calls, total, "%s: %ld allocations, %ld in the dry run", what, calls,
                         total);
            close(obj);
            break;
        }
        tried++;
        cr_assert_neq(s, FRT_OK, "%s: allocation %ld of %ld failed, yet the open succeeded", what,
                      n, total);
        cr_assert_null(obj, "%s, allocation %ld: an object despite %s", what, n,
                       frt_status_name(s));
        cr_assert_neq(frt_last_error()[0], '\0', "%s, allocation %ld: no message", what, n);
        if (s == FRT_ERR_FORMAT && cjson_failed) {
            via_json++;
            continue;
        }
        cr_assert_eq(s, FRT_ERR_NOMEM, "%s, allocation %ld: %s (%s)", what, n, frt_status_name(s),
                     frt_last_error());
    }
    cJSON_InitHooks(NULL);
    free(is_json);
    cr_assert_gt(total, 10, "%s: the injection never hit", what);
    printf("%s: %ld allocations (%ld of them cJSON's); failed %ld of them in turn, each a clean "
           "error (%ld in cJSON reported as a malformed file)\n",
           what, total, n_json, tried, via_json);
}

Test(faults, every_allocation_of_vstream_open, .timeout = 600)
{
    sweep("frt_vstream_open", open_vstream, close_vstream);
}

Test(faults, every_allocation_of_speech_open, .timeout = 600)
{
    sweep("frt_speech_open", open_speech, close_speech);
}

/* ---- a checkpoint truncated after open ----------------------------------------- */

static char *copy_model(const char *src, const char *dir)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp -r '%s'/. '%s'/", src, dir);
    cr_assert_eq(system(cmd), 0);
    char *st = NULL;
    cr_assert(asprintf(&st, "%s/model.safetensors", dir) > 0);
    return st;
}

static uint64_t checksum(const frt_st *st)
{
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < frt_st_count(st); i++) {
        frt_tensor t;
        if (frt_st_get(st, frt_st_name(st, i), &t) != FRT_OK) continue;
        size_t bytes = frt_dtype_size(t.dtype);
        for (int d = 0; d < t.ndim; d++) bytes *= (size_t)t.shape[d];
        for (size_t b = 0; b < bytes; b++) h = (h ^ ((const uint8_t *)t.data)[b]) * 1099511628211u;
    }
    return h;
}

Test(truncated, tensors_stay_readable)
{
    char *dir = tu_tmpdir();
    char *path = copy_model(VSTREAM, dir);
    frt_st *st;
    cr_assert_eq(frt_st_open(path, &st), FRT_OK, "%s", frt_last_error());
    uint64_t before = checksum(st);
    cr_assert_eq(truncate(path, 0), 0);
    cr_assert_eq(checksum(st), before, "the tensors changed with the file");
    frt_st_close(st);
    /* and a file that is already cut short is refused at open */
    cr_assert_eq(frt_st_open(path, &st), FRT_ERR_FORMAT);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* FRT_MMAP=1 maps the file instead: the documented risk, shown. Not under ASan, whose SIGBUS
 * handler turns the signal into a report. */
#if defined(__SANITIZE_ADDRESS__)
#define EXPECT_SIGBUS 0
#else
#define EXPECT_SIGBUS SIGBUS
#endif
Test(truncated, mapped_file_raises_sigbus, .signal = EXPECT_SIGBUS)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip_test("AddressSanitizer reports SIGBUS itself");
#endif
    char *dir = tu_tmpdir();
    char *path = copy_model(VSTREAM, dir);
    setenv("FRT_MMAP", "1", 1);
    frt_st *st;
    cr_assert_eq(frt_st_open(path, &st), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(truncate(path, 0), 0);
    tu_rmtree(dir);
    checksum(st); /* dies here */
    cr_assert_fail("touching a truncated mapping did not raise SIGBUS");
}

typedef struct {
    pthread_mutex_t mu;
    int answers, ok;
} tally;

static void on_answer(const frt_vstream_answer *a, void *user)
{
    tally *t = user;
    if (!a->final) return;
    pthread_mutex_lock(&t->mu);
    t->answers++;
    t->ok += a->status == FRT_OK;
    pthread_mutex_unlock(&t->mu);
}

Test(truncated, vstream_answers_after_its_file_is_cut, .timeout = 120)
{
    char *dir = tu_tmpdir();
    char *path = copy_model(VSTREAM, dir);
    frt_vstream_options o;
    frt_vstream_options_init(&o);
    o.tokenizer = TOK;
    o.max_new_tokens = 8;
    frt_vstream *vs;
    cr_assert_eq(frt_vstream_open(dir, &o, &vs), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(truncate(path, 0), 0);
    frt_vstream_source_options so;
    frt_vstream_source_options_init(&so);
    so.format = "lavfi";
    so.fps = 2;
    cr_assert_eq(frt_vstream_start(vs, "testsrc=size=160x120:rate=10:duration=3", &so), FRT_OK,
                 "%s", frt_last_error());
    tally t = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    frt_vstream_status s;
    do {
        frt_vstream_get_status(vs, &s);
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    } while (!s.finished);
    cr_assert_eq(s.source_status, FRT_OK, "%s", s.source_error);
    cr_assert_eq(frt_vstream_ask(vs, "What is on the screen?", on_answer, &t, NULL), FRT_OK);
    cr_assert_eq(frt_vstream_wait_idle(vs, 60000), FRT_OK);
    frt_vstream_close(vs);
    cr_assert_eq(t.answers, 1);
    cr_assert_eq(t.ok, 1);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

static int count_chunk(const frt_speech_chunk *c, void *user)
{
    *(size_t *)user += c->n;
    return 0;
}

static frt_speech_options ipa_opts(void)
{
    frt_speech_options o;
    frt_speech_options_init(&o);
    o.phoneme_input = 1;
    return o;
}

Test(truncated, speech_synthesises_after_its_file_is_cut)
{
    char *dir = tu_tmpdir();
    char *path = copy_model(SPEECH, dir);
    frt_speech *sp;
    cr_assert_eq(frt_speech_open(dir, &sp), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(truncate(path, 0), 0);
    frt_speech_options o = ipa_opts();
    size_t n = 0;
    cr_assert_eq(frt_speech_synthesize(sp, IPA, &o, count_chunk, &n), FRT_OK, "%s",
                 frt_last_error());
    cr_assert_gt(n, 0);
    frt_speech_close(sp);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* ---- disk full ------------------------------------------------------------------ */

/* A .wav, .flac or .ogg name that leads to /dev/full: every write fails with ENOSPC. Not .ogg
 * under ASan: libsndfile's Vorbis writer leaks its encoder state (~29 KiB, in libogg and
 * libvorbis) when a write has failed, though sf_close is called (docs/RELIABILITY.md). */
#if defined(__SANITIZE_ADDRESS__)
#define N_FORMATS 2
#else
#define N_FORMATS 3
#endif
Test(disk_full, speech_to_file_returns_io_error)
{
    frt_speech *sp;
    cr_assert_eq(frt_speech_open(SPEECH, &sp), FRT_OK, "%s", frt_last_error());
    char *dir = tu_tmpdir();
    frt_speech_options o = ipa_opts();
    const char *names[] = {"full.wav", "full.flac", "full.ogg"};
    for (int i = 0; i < N_FORMATS; i++) {
        char *link = NULL;
        cr_assert(asprintf(&link, "%s/%s", dir, names[i]) > 0);
        cr_assert_eq(symlink("/dev/full", link), 0);
        frt_status s = frt_speech_synthesize_to_file(sp, IPA, &o, link);
        cr_assert_eq(s, FRT_ERR_IO, "%s: %s (%s)", names[i], frt_status_name(s), frt_last_error());
        cr_log_info("%s: %s", names[i], frt_last_error());
        free(link);
    }
    frt_speech_close(sp);
    tu_rmtree(dir);
    free(dir);
}

/* A regular file that hits the file size limit mid-way (EFBIG): the same clean error, and the
 * audio before the limit stays in the file. */
Test(disk_full, speech_to_file_hits_the_size_limit)
{
    frt_speech *sp;
    cr_assert_eq(frt_speech_open(SPEECH, &sp), FRT_OK, "%s", frt_last_error());
    char *dir = tu_tmpdir();
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/limited.wav", dir) > 0);
    frt_speech_options o = ipa_opts();
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    cr_assert_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    frt_status s = frt_speech_synthesize_to_file(sp, IPA " " IPA " " IPA, &o, path);
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &old), 0);
    cr_assert_eq(s, FRT_ERR_IO, "%s (%s)", frt_status_name(s), frt_last_error());
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_leq(sb.st_size, 4096);
    frt_speech_close(sp);
    free(path);
    tu_rmtree(dir);
    free(dir);
}

/* ---- the cost of reading instead of mapping ------------------------------------ */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t g_sink;

static void touch(const frt_st *st)
{
    uint64_t sum = 0;
    for (int64_t i = 0; i < frt_st_count(st); i++) {
        frt_tensor t;
        if (frt_st_get(st, frt_st_name(st, i), &t) != FRT_OK) continue;
        size_t bytes = frt_dtype_size(t.dtype);
        for (int d = 0; d < t.ndim; d++) bytes *= (size_t)t.shape[d];
        const uint8_t *p = t.data;
        for (size_t b = 0; b + 8 <= bytes; b += 8) {
            uint64_t w;
            memcpy(&w, p + b, 8);
            sum += w;
        }
    }
    g_sink += sum;
}

/* FRT_ST_BENCH=file.safetensors test_faults --filter bench/st_load: open, read every byte of
 * every tensor, close: read into memory vs FRT_MMAP=1, best of 3 (the file is in the page cache
 * after the first). Not part of the suite's verdicts. */
Test(bench, st_load)
{
    const char *path = getenv("FRT_ST_BENCH");
    if (!path) cr_skip_test("set FRT_ST_BENCH to a .safetensors file");
    for (int mode = 0; mode < 2; mode++) {
        if (mode)
            setenv("FRT_MMAP", "1", 1);
        else
            unsetenv("FRT_MMAP");
        double best_open = 1e30, best_all = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now_s();
            frt_st *st;
            cr_assert_eq(frt_st_open(path, &st), FRT_OK, "%s", frt_last_error());
            double t1 = now_s();
            touch(st);
            frt_st_close(st);
            double t2 = now_s();
            if (t1 - t0 < best_open) best_open = t1 - t0;
            if (t2 - t0 < best_all) best_all = t2 - t0;
        }
        printf("%s: %s: open %.2f ms, open + read every byte + close %.2f ms\n", path,
               mode ? "FRT_MMAP=1" : "read (default)", best_open * 1e3, best_all * 1e3);
    }
    unsetenv("FRT_MMAP");
}
