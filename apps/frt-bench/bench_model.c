/* Random checkpoints in memory for the model benchmarks: every tensor is
 * allocated (huge pages), filled on all threads with a cheap generator and
 * handed to the models through frt_st_from_memory, so real dimensions cost
 * no file and no copy. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "bench.h"
#include "threadpool.h"

/* Fill work is cut into chunks of this many elements, dealt to the threads
 * in turn: tensors range from a few KiB to 250 MiB. */
#define FILL_CHUNK ((int64_t)1 << 20)

typedef struct {
    char *name;
    float scale; /* uniform in [-scale, scale], or the constant `scale` */
    bool constant;
    int64_t numel;
} ckpt_spec;

struct bench_ckpt {
    frt_st_mem_tensor *t;
    ckpt_spec *spec;
    int64_t n, cap;
    double bytes;
    frt_st *st;
};

bench_ckpt *bench_ckpt_new(void)
{
    return calloc(1, sizeof(bench_ckpt));
}

bool bench_ckpt_add(bench_ckpt *c, frt_dtype dt, int ndim, const int64_t *shape, float scale,
                    bool constant, const char *fmt, ...)
{
    if (c->n == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 64;
        frt_st_mem_tensor *t = realloc(c->t, (size_t)cap * sizeof *t);
        if (t) c->t = t;
        ckpt_spec *s = realloc(c->spec, (size_t)cap * sizeof *s);
        if (s) c->spec = s;
        if (!t || !s) return false;
        c->cap = cap;
    }
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    frt_st_mem_tensor *t = &c->t[c->n];
    ckpt_spec *s = &c->spec[c->n];
    memset(t, 0, sizeof *t);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= t->shape[i] = shape[i];
    t->dtype = dt;
    t->ndim = ndim;
    *s = (ckpt_spec){strdup(name), scale, constant, numel};
    t->name = s->name;
    if (!s->name) return false;
    c->n++;
    return true;
}

typedef struct {
    bench_ckpt *c;
    int64_t *chunk_start; /* per tensor: index of its first chunk */
    int64_t chunks;
} fill_job;

static void fill_chunk(const frt_st_mem_tensor *t, const ckpt_spec *s, int64_t b, int64_t e,
                       uint64_t seed)
{
    uint64_t r = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    /* 16 random bits per element: plenty for weights nobody reads back. */
    const float step = s->scale / 32768.0f;
    if (t->dtype == FRT_F32) {
        float *p = (float *)t->data;
        if (s->constant) {
            for (int64_t i = b; i < e; i++) p[i] = s->scale;
            return;
        }
        for (int64_t i = b; i < e; i += 4) {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            for (int k = 0; k < 4 && i + k < e; k++)
                p[i + k] = (float)(int16_t)(uint16_t)(r >> (16 * k)) * step;
        }
        return;
    }
    uint16_t *p = (uint16_t *)t->data;
    uint16_t one = t->dtype == FRT_F16 ? frt_f32_to_f16(s->scale) : frt_f32_to_bf16(s->scale);
    if (s->constant) {
        for (int64_t i = b; i < e; i++) p[i] = one;
        return;
    }
    for (int64_t i = b; i < e; i += 4) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        for (int k = 0; k < 4 && i + k < e; k++) {
            float v = (float)(int16_t)(uint16_t)(r >> (16 * k)) * step;
            if (t->dtype == FRT_F16) {
                p[i + k] = frt_f32_to_f16(v);
            } else {
                /* truncation: rounding does not matter for random weights */
                uint32_t bits;
                memcpy(&bits, &v, sizeof bits);
                p[i + k] = (uint16_t)(bits >> 16);
            }
        }
    }
}

static void fill_task(void *arg, int ith, int nth)
{
    fill_job *j = arg;
    int64_t ti = 0;
    for (int64_t ch = ith; ch < j->chunks; ch += nth) {
        while (ti + 1 < j->c->n && j->chunk_start[ti + 1] <= ch) ti++;
        const ckpt_spec *s = &j->c->spec[ti];
        int64_t b = (ch - j->chunk_start[ti]) * FILL_CHUNK;
        int64_t e = b + FILL_CHUNK < s->numel ? b + FILL_CHUNK : s->numel;
        fill_chunk(&j->c->t[ti], s, b, e, (uint64_t)ch);
    }
}

frt_status bench_ckpt_finish(bench_ckpt *c, const char *label, frt_st **out)
{
    c->bytes = 0;
    for (int64_t i = 0; i < c->n; i++) {
        size_t bytes = (size_t)c->spec[i].numel * frt_dtype_size(c->t[i].dtype);
        c->t[i].data = frt_alloc(bytes);
        if (!c->t[i].data) return FRT_ERR_NOMEM;
        c->bytes += (double)bytes;
    }
    fill_job j = {.c = c, .chunk_start = malloc((size_t)(c->n + 1) * sizeof(int64_t))};
    if (!j.chunk_start) return FRT_ERR_NOMEM;
    for (int64_t i = 0; i < c->n; i++) {
        j.chunk_start[i] = j.chunks;
        j.chunks += (c->spec[i].numel + FILL_CHUNK - 1) / FILL_CHUNK;
    }
    frt_pool_run(frt_pool_default(), fill_task, &j);
    free(j.chunk_start);
    frt_status s = frt_st_from_memory(c->t, c->n, label, &c->st);
    if (s == FRT_OK) *out = c->st;
    return s;
}

double bench_ckpt_bytes(const bench_ckpt *c)
{
    return c->bytes;
}

void bench_ckpt_free(bench_ckpt *c)
{
    if (!c) return;
    frt_st_close(c->st);
    for (int64_t i = 0; i < c->n; i++) {
        frt_free((void *)(uintptr_t)c->t[i].data);
        free(c->spec[i].name);
    }
    free(c->t);
    free(c->spec);
    free(c);
}

double bench_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
