/* STAR memory: parity with the PyTorch reference on recorded sequences
 * (tests/data/memory, tools/make_memory_goldens.py), token counts at every
 * stage, snapshots, bounded buffer, failure paths. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "memory.h"
#include "safetensors.h"
#include "testutil.h"

static const void *get(const frt_st *st, const char *name, frt_dtype dt, int64_t *numel)
{
    frt_tensor t;
    frt_status s = frt_st_get(st, name, &t);
    cr_assert_eq(s, FRT_OK, "%s: %s", name, frt_last_error());
    cr_assert_eq(t.dtype, dt, "%s dtype", name);
    if (numel) *numel = frt_tensor_numel(&t);
    return t.data;
}

/* Within 1e-5 of the reference (relative above magnitude 1). */
static void assert_close(const float *got, const float *ref, size_t n, const char *what, int frame)
{
    for (size_t i = 0; i < n; i++) {
        double tol = 1e-5 * fmax(1.0, fabs(ref[i]));
        cr_assert(fabs((double)got[i] - ref[i]) <= tol, "%s frame %d [%zu]: %.9g vs %.9g", what,
                  frame, i, got[i], ref[i]);
    }
}

static void config_from_golden(const frt_st *st, frt_star_config *c, int *frames)
{
    const int32_t *v = get(st, "config", FRT_I32, NULL);
    const float *alpha = get(st, "alpha", FRT_F32, NULL);
    frt_star_config_default(c, v[0]);
    c->p_spa = v[1];
    c->p_tem = v[2];
    c->p_abs = v[3];
    c->n_spa = v[4];
    c->n_tem = v[5];
    c->n_abs = v[6];
    c->n_ret = v[7];
    c->n_buff = v[8];
    c->hidden = v[9];
    c->compat = v[10] != 0;
    c->seed = (uint64_t)v[11];
    c->kmeans_iters = v[12];
    c->alpha = alpha[0];
    *frames = v[13];
}

/* Replays a golden sequence through m and checks every frame. */
static void replay(const frt_st *st, frt_star *m, const frt_star_config *c, int frames)
{
    const float *feat = get(st, "features", FRT_F32, NULL);
    const int32_t *ntok = get(st, "n_tokens", FRT_I32, NULL);
    const int32_t *labels = get(st, "labels", FRT_I32, NULL);
    const float *weights = get(st, "weights", FRT_F32, NULL);
    const int32_t *ret = get(st, "retrieved", FRT_I32, NULL);
    int64_t nchecked;
    const int32_t *checked = get(st, "checked", FRT_I32, &nchecked);
    const size_t fs = (size_t)c->p_spa * c->p_spa * c->dim;
    int ci = 0, clusterings = 0, compared = 0;
    for (int t = 0; t < frames; t++) {
        cr_assert_eq(frt_star_push(m, feat + t * fs, t * 0.5), FRT_OK);
        frt_star_state s;
        frt_star_inspect(m, &s);
        const frt_star_snapshot *sn = frt_star_acquire(m);
        cr_assert_eq(sn->n_tokens, ntok[t], "frame %d tokens %d vs %d", t, sn->n_tokens, ntok[t]);
        cr_assert_eq(sn->n_tokens, frt_star_tokens_after(c, t + 1));
        cr_assert_eq(sn->frames, t + 1);
        cr_assert_float_eq(sn->time_s, t * 0.5, 0);
        const int32_t *lab = labels + (size_t)t * (c->n_tem + 1);
        cr_assert_eq(s.n_labels ? s.n_labels : -1, lab[0] >= 0 ? c->n_tem + 1 : -1, "frame %d", t);
        for (int i = 0; i < s.n_labels; i++)
            cr_assert_eq(s.labels[i], lab[i], "frame %d label %d: %d vs %d", t, i, s.labels[i],
                         lab[i]);
        clusterings += s.n_labels > 0;
        for (int j = 0; j < c->n_tem; j++) {
            double w = j < s.n_clusters ? s.weights[j] : 0;
            cr_assert_float_eq(w, weights[(size_t)t * c->n_tem + j], 1e-9, "frame %d weight %d", t,
                               j);
        }
        const int32_t *r = ret + (size_t)t * c->n_ret;
        for (int i = 0; i < c->n_ret; i++)
            cr_assert_eq(i < sn->n_ret_frames ? sn->ret_index[i] : -1, r[i],
                         "frame %d retrieved %d", t, i);
        if (ci < nchecked && checked[ci] == t) {
            char name[32];
            snprintf(name, sizeof name, "tokens_%d", t);
            int64_t n;
            const float *ref = get(st, name, FRT_F32, &n);
            cr_assert_eq(n, (int64_t)sn->n_tokens * c->dim);
            assert_close(sn->tokens, ref, (size_t)n, "tokens", t);
            ci++;
            compared++;
        }
        frt_star_release(m, sn);
    }
    cr_assert_eq(ci, nchecked);
    cr_assert_gt(clusterings, 10, "the sequence must exercise the clustering");
    cr_assert_gt(compared, 3);
}

static void parity(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/memory/%s.safetensors", FRT_TEST_DATA, name);
    frt_st *st;
    cr_assert_eq(frt_st_open(path, &st), FRT_OK, "%s", frt_last_error());
    frt_star_config c;
    int frames;
    config_from_golden(st, &c, &frames);
    frt_star *m;
    cr_assert_eq(frt_star_create(&c, get(st, "q_w", FRT_F32, NULL), get(st, "q_b", FRT_F32, NULL),
                                 get(st, "k_w", FRT_F32, NULL), get(st, "k_b", FRT_F32, NULL), &m),
                 FRT_OK, "%s", frt_last_error());
    replay(st, m, &c, frames);
    frt_star_free(m);
    frt_st_close(st);
}

Test(memory_parity, tiny)
{
    parity("tiny");
}
Test(memory_parity, tiny_compat)
{
    parity("tiny_compat");
}
Test(memory_parity, grid8_abstract_2x2)
{
    parity("grid8_abs2");
}
Test(memory_parity, default_sizes)
{
    parity("default_sizes");
}
Test(memory_parity, default_sizes_compat)
{
    parity("default_sizes_compat");
}

/* vstream-tiny's config.json and checkpoint give the golden's settings and
 * q/k weights. */
Test(memory_parity, tiny_from_checkpoint)
{
    char path[512];
    snprintf(path, sizeof path, "%s/memory/tiny.safetensors", FRT_TEST_DATA);
    frt_st *gold, *ck;
    cr_assert_eq(frt_st_open(path, &gold), FRT_OK);
    frt_star_config g;
    int frames;
    config_from_golden(gold, &g, &frames);

    frt_config *json;
    snprintf(path, sizeof path, "%s/models/vstream-tiny/config.json", FRT_TEST_DATA);
    cr_assert_eq(frt_config_load(path, &json), FRT_OK);
    frt_star_config c;
    frt_star_config_default(&c, 1);
    cr_assert_eq(frt_star_config_read(json, &c), FRT_OK, "%s", frt_last_error());
    frt_config_free(json);
    cr_assert_eq(c.dim, g.dim);
    cr_assert_eq(c.p_spa, g.p_spa);
    cr_assert_eq(c.p_tem, g.p_tem);
    cr_assert_eq(c.p_abs, g.p_abs);
    cr_assert_eq(c.n_spa, g.n_spa);
    cr_assert_eq(c.n_tem, g.n_tem);
    cr_assert_eq(c.n_abs, g.n_abs);
    cr_assert_eq(c.hidden, g.hidden);
    cr_assert_float_eq(c.alpha, g.alpha, 1e-7);
    c.n_buff = g.n_buff;
    c.seed = g.seed;

    snprintf(path, sizeof path, "%s/models/vstream-tiny", FRT_TEST_DATA);
    cr_assert_eq(frt_st_open(path, &ck), FRT_OK);
    frt_star *m;
    cr_assert_eq(frt_star_create_from(&c, ck, "model.attention_model.", &m), FRT_OK, "%s",
                 frt_last_error());
    replay(gold, m, &c, frames);
    frt_star_free(m);

    /* a checkpoint without attention_model weights */
    cr_assert_eq(frt_star_create_from(&c, ck, "model.no_such_model.", &m), FRT_ERR_NOT_FOUND);
    cr_assert_null(m);
    c.hidden = 7; /* wrong shape */
    cr_assert_eq(frt_star_create_from(&c, ck, "model.attention_model.", &m), FRT_ERR_FORMAT);
    frt_st_close(ck);
    frt_st_close(gold);
}

static frt_star *make(const frt_star_config *c, tu_rng *r)
{
    size_t hd = (size_t)c->hidden * c->dim;
    float *w = malloc((2 * hd + 2 * (size_t)c->hidden) * sizeof(float));
    tu_fill_uniform(r, w, 2 * hd + 2 * (size_t)c->hidden, -0.5f, 0.5f);
    frt_star *m;
    cr_assert_eq(frt_star_create(c, w, w + hd, w + hd + c->hidden, w + 2 * hd + c->hidden, &m),
                 FRT_OK, "%s", frt_last_error());
    free(w);
    return m;
}

static float *random_frames(tu_rng *r, const frt_star_config *c, int n)
{
    size_t fs = (size_t)c->p_spa * c->p_spa * c->dim;
    float *f = malloc(fs * n * sizeof(float));
    for (size_t i = 0; i < fs * n; i++) f[i] = tu_normal(r);
    return f;
}

/* Token count at every stage, each part's count, and the final layout:
 * the spatial tokens are the newest frame, the retrieved ones are copies of
 * frames that went by. */
static void check_stages(frt_star_config c, int frames)
{
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    frt_star *m = make(&c, &r);
    float *f = random_frames(&r, &c, frames);
    size_t fs = (size_t)c.p_spa * c.p_spa * c.dim;
    for (int t = 0; t < frames; t++) {
        frt_star_push(m, f + t * fs, t);
        const frt_star_snapshot *s = frt_star_acquire(m);
        int spa = t + 1 < c.n_spa ? t + 1 : c.n_spa, lng = t + 1 - spa;
        int tem = lng < c.n_tem ? lng : c.n_tem;
        cr_assert_eq(s->n_spatial, spa * c.p_spa * c.p_spa);
        cr_assert_eq(s->n_abstract, (lng < c.n_abs ? lng : c.n_abs) * c.p_abs * c.p_abs);
        cr_assert_eq(s->n_temporal, tem * c.p_tem * c.p_tem);
        cr_assert_eq(s->n_tokens, s->n_abstract + s->n_temporal + s->n_retrieved + s->n_spatial);
        cr_assert_eq(s->n_tokens, frt_star_tokens_after(&c, t + 1), "frame %d", t);
        /* the newest frame is the last p_spa^2 tokens */
        if (c.n_spa > 0)
            cr_assert_eq(memcmp(s->tokens + (size_t)(s->n_tokens - c.p_spa * c.p_spa) * c.dim,
                                f + t * fs, fs * sizeof(float)),
                         0);
        const float *ret = s->tokens + (size_t)(s->n_abstract + s->n_temporal) * c.dim;
        for (int i = 0; i < s->n_ret_frames; i++) {
            int64_t idx = s->ret_index[i];
            cr_assert(idx >= 0 && idx < t + 1 - spa, "retrieved frame %lld is long-term",
                      (long long)idx);
            if (!c.compat)
                cr_assert(idx >= lng - c.n_buff, "retrieved frame %lld left the buffer",
                          (long long)idx);
            cr_assert_eq(memcmp(ret + i * fs, f + idx * fs, fs * sizeof(float)), 0);
        }
        frt_star_state st;
        frt_star_inspect(m, &st);
        if (st.n_labels) {
            double sum = 0;
            for (int j = 0; j < st.n_clusters; j++) sum += st.weights[j];
            /* paper: weights carry every frame's mass; compat: n_tem + 1 unit points */
            cr_assert_float_eq(sum, c.compat ? c.n_tem + 1 : lng, 1e-9);
            cr_assert(st.kmeans_iters_run >= 1 && st.kmeans_iters_run <= c.kmeans_iters);
        }
        frt_star_release(m, s);
    }
    free(f);
    frt_star_free(m);
}

Test(memory, stages_default_sizes)
{
    frt_star_config c;
    frt_star_config_default(&c, 4);
    cr_assert_eq(frt_star_tokens_after(&c, 0), 0);
    cr_assert_eq(frt_star_tokens_after(&c, 1), 64);
    cr_assert_eq(frt_star_tokens_after(&c, 2), 1 + 16 + 64 + 64);
    cr_assert_eq(frt_star_tokens_after(&c, 3), 2 + 32 + 128 + 64);
    cr_assert_eq(frt_star_tokens_after(&c, 25), 24 + 24 * 16 + 192 + 64);
    cr_assert_eq(frt_star_tokens_after(&c, 26), 681);
    cr_assert_eq(frt_star_tokens_after(&c, 1000000), 681);
    check_stages(c, 40);
}

Test(memory, stages_other_shapes)
{
    frt_star_config c;
    frt_star_config_default(&c, 3);
    c.p_spa = 4;
    c.p_tem = 2;
    c.p_abs = 2;
    c.n_spa = 3;
    c.n_tem = 4;
    c.n_abs = 2;
    c.n_ret = 5;
    c.n_buff = 6;
    c.hidden = 5;
    check_stages(c, 30);
    c.compat = true;
    check_stages(c, 30);
    c.compat = false;
    c.n_spa = 0; /* every frame goes straight to the long-term memories */
    check_stages(c, 20);
    c.n_buff = 0; /* nothing to retrieve from */
    c.n_tem = 0;
    check_stages(c, 20);
}

/* The same seed replays the same memory; the released code's random
 * initialisation differs between runs, ours does not. */
Test(memory, deterministic)
{
    frt_star_config c;
    frt_star_config_default(&c, 5);
    c.n_tem = 4;
    c.n_abs = 3;
    c.n_buff = 7;
    c.seed = tu_seed();
    tu_rng r;
    tu_rng_init(&r, 5);
    frt_star *a = make(&c, &r);
    tu_rng_init(&r, 5);
    frt_star *b = make(&c, &r);
    float *f = random_frames(&r, &c, 30);
    size_t fs = (size_t)64 * 5;
    for (int t = 0; t < 30; t++) {
        frt_star_push(a, f + t * fs, t);
        frt_star_push(b, f + t * fs, t);
    }
    const frt_star_snapshot *sa = frt_star_acquire(a), *sb = frt_star_acquire(b);
    cr_assert_eq(sa->n_tokens, sb->n_tokens);
    cr_assert_eq(memcmp(sa->tokens, sb->tokens, (size_t)sa->n_tokens * 5 * sizeof(float)), 0);
    frt_star_release(a, sa);
    frt_star_release(b, sb);
    free(f);
    frt_star_free(a);
    frt_star_free(b);
}

/* A static camera: identical frames. Every clustering has ties and empty
 * clusters; weights still add up and nothing becomes NaN. */
Test(memory, identical_frames)
{
    frt_star_config c;
    frt_star_config_default(&c, 2);
    c.n_tem = 3;
    c.n_abs = 2;
    c.n_buff = 5;
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    frt_star *m = make(&c, &r);
    float *f = random_frames(&r, &c, 1);
    for (int t = 0; t < 20; t++) frt_star_push(m, f, t);
    const frt_star_snapshot *s = frt_star_acquire(m);
    cr_assert_eq(s->n_tokens, frt_star_tokens_after(&c, 20));
    for (int i = 0; i < s->n_tokens * 2; i++) cr_assert(isfinite(s->tokens[i]));
    /* ties go to the newest buffered frame */
    cr_assert_eq(s->ret_index[0], 18);
    frt_star_state st;
    frt_star_inspect(m, &st);
    cr_assert_float_eq(st.weights[0] + st.weights[1] + st.weights[2], 19.0, 1e-12);
    frt_star_release(m, s);
    free(f);
    frt_star_free(m);
}

/* A pinned snapshot does not change while the writer goes on; when every
 * slot is pinned the writer skips publishing instead of waiting. */
Test(memory, snapshots_pin_and_copy)
{
    frt_star_config c;
    frt_star_config_default(&c, 3);
    c.n_tem = 3;
    c.n_abs = 3;
    c.n_buff = 4;
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    frt_star *m = make(&c, &r);
    const frt_star_snapshot *empty = frt_star_acquire(m);
    cr_assert_eq(empty->n_tokens, 0);
    cr_assert_eq(empty->frames, 0);
    frt_star_release(m, empty);

    float *f = random_frames(&r, &c, 40);
    size_t fs = (size_t)64 * 3;
    const frt_star_snapshot *pins[FRT_STAR_SLOTS];
    float *copies[FRT_STAR_SLOTS];
    int t = 0;
    for (int p = 0; p < FRT_STAR_SLOTS; p++) {
        frt_star_push(m, f + t * fs, t);
        t++;
        pins[p] = frt_star_acquire(m);
        cr_assert_eq(pins[p]->frames, t);
        size_t n = (size_t)pins[p]->n_tokens * 3;
        copies[p] = malloc(n * sizeof(float) + 1);
        memcpy(copies[p], pins[p]->tokens, n * sizeof(float));
    }
    /* every slot is pinned now: this push cannot publish, and readers keep
     * getting the newest published snapshot */
    frt_star_push(m, f + t * fs, t);
    t++;
    frt_star_state st;
    frt_star_inspect(m, &st);
    cr_assert_eq(st.skipped_publish, 1);
    const frt_star_snapshot *again = frt_star_acquire(m);
    cr_assert_eq(again, pins[FRT_STAR_SLOTS - 1]);
    frt_star_release(m, again);
    for (int p = 0; p < FRT_STAR_SLOTS; p++) {
        cr_assert_eq(
            memcmp(copies[p], pins[p]->tokens, (size_t)pins[p]->n_tokens * 3 * sizeof(float)), 0,
            "pinned snapshot %d changed", p);
        frt_star_release(m, pins[p]);
        free(copies[p]);
    }
    frt_star_push(m, f + t * fs, t);
    t++;
    float *dst = malloc((size_t)frt_star_tokens_after(&c, t) * 3 * sizeof(float));
    frt_star_snapshot info;
    cr_assert_eq(frt_star_copy(m, dst, frt_star_tokens_after(&c, t), &info), FRT_OK);
    cr_assert_eq(info.frames, t);
    cr_assert_eq(info.tokens, dst);
    cr_assert_eq(
        memcmp(dst + (size_t)(info.n_tokens - 64) * 3, f + (t - 1) * fs, fs * sizeof(float)), 0);
    cr_assert_eq(frt_star_copy(m, dst, info.n_tokens - 1, &info), FRT_ERR_LIMIT);
    free(dst);
    free(f);
    frt_star_free(m);
}

/* Memory stays bounded: a long stream through a small buffer retrieves only
 * recent frames, and the state counts every frame. */
Test(memory, long_stream_bounded)
{
    frt_star_config c;
    frt_star_config_default(&c, 2);
    c.p_spa = 2;
    c.p_tem = 1;
    c.n_tem = 4;
    c.n_abs = 4;
    c.n_buff = 8;
    c.hidden = 3;
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    frt_star *m = make(&c, &r);
    float frame[8];
    for (int t = 0; t < 3000; t++) {
        for (int i = 0; i < 8; i++) frame[i] = tu_normal(&r) + (float)((t / 50) % 3);
        frt_star_push(m, frame, t);
    }
    const frt_star_snapshot *s = frt_star_acquire(m);
    for (int i = 0; i < s->n_ret_frames; i++) cr_assert_geq(s->ret_index[i], 2999 - 8);
    frt_star_state st;
    frt_star_inspect(m, &st);
    cr_assert_eq(st.frames, 3000);
    cr_assert_eq(st.long_frames, 2999);
    frt_star_release(m, s);
    frt_star_free(m);
}

Test(memory, bad_arguments)
{
    frt_star_config c;
    frt_star_config_default(&c, 4);
    float w[32 * 4] = {0};
    frt_star *m = (frt_star *)1;
    c.p_tem = 3;
    cr_assert_eq(frt_star_create(&c, w, w, w, w, &m), FRT_ERR_INVALID_ARG);
    cr_assert_null(m);
    cr_assert(strstr(frt_last_error(), "divide"));
    frt_star_config_default(&c, 4);
    c.n_ret = 17;
    cr_assert_eq(frt_star_create(&c, w, w, w, w, &m), FRT_ERR_INVALID_ARG);
    frt_star_config_default(&c, 4);
    cr_assert_eq(frt_star_create(&c, NULL, w, w, w, &m), FRT_ERR_INVALID_ARG);
    cr_assert_eq(frt_star_create(NULL, w, w, w, w, &m), FRT_ERR_INVALID_ARG);
    c.kmeans_iters = 0;
    cr_assert_eq(frt_star_create(&c, w, w, w, w, &m), FRT_ERR_INVALID_ARG);
    frt_star_config_default(&c, 4);
    cr_assert_eq(frt_star_create(&c, w, w, w, w, &m), FRT_OK);
    cr_assert_eq(frt_star_push(m, NULL, 0), FRT_ERR_INVALID_ARG);
    frt_star_free(m);
    frt_star_free(NULL);
}

static bool same_config(const frt_star_config *a, const frt_star_config *b)
{
    return a->dim == b->dim && a->p_spa == b->p_spa && a->p_tem == b->p_tem &&
           a->p_abs == b->p_abs && a->n_spa == b->n_spa && a->n_tem == b->n_tem &&
           a->n_abs == b->n_abs && a->n_ret == b->n_ret && a->n_buff == b->n_buff &&
           a->hidden == b->hidden && a->alpha == b->alpha && a->kmeans_iters == b->kmeans_iters &&
           a->kmeans_tol == b->kmeans_tol && a->compat == b->compat && a->seed == b->seed;
}

Test(memory, config_errors)
{
    static const char *bad[] = {
        "{\"video_sample_type\": \"kmeans\"}",
        "{\"compress_size\": 8, \"compress_long_memory_size\": 3}",
        "{\"compress_Turing_update_ratio\": 1.5}",
        "{\"video_long_memory_length\": -1}",
        "{\"compress_size\": \"8\"}",
    };
    static const frt_status want[] = {FRT_ERR_UNSUPPORTED, FRT_ERR_FORMAT, FRT_ERR_FORMAT,
                                      FRT_ERR_FORMAT, FRT_ERR_FORMAT};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        frt_config *j;
        cr_assert_eq(frt_config_parse(bad[i], strlen(bad[i]), "config.json", &j), FRT_OK);
        frt_star_config c, before;
        frt_star_config_default(&c, 16);
        before = c;
        cr_assert_eq(frt_star_config_read(j, &c), want[i], "%s: %s", bad[i], frt_last_error());
        cr_assert(same_config(&c, &before), "config changed on failure");
        frt_config_free(j);
    }
    /* the release's keys and values */
    const char *rel = "{\"mm_hidden_size\": 1024, \"compress_size\": 8, "
                      "\"compress_long_memory_size\": 4, \"compress_Turing_memory_size\": 1, "
                      "\"video_current_memory_length\": 1, \"video_long_memory_length\": 25, "
                      "\"video_Turing_memory_length\": 25, \"compress_Turing_update_ratio\": 0.2, "
                      "\"compress_Turing_hidden_dim\": 32, \"video_sample_type\": "
                      "\"weighted_kmeans\"}";
    frt_config *j;
    cr_assert_eq(frt_config_parse(rel, strlen(rel), "config.json", &j), FRT_OK);
    frt_star_config c, d;
    frt_star_config_default(&c, 1);
    frt_star_config_default(&d, 1024);
    cr_assert_eq(frt_star_config_read(j, &c), FRT_OK);
    cr_assert(same_config(&c, &d));
    cr_assert_eq(frt_star_tokens_after(&c, 100), 681);
    frt_config_free(j);
}

Test(memory, allocation_failures)
{
    frt_star_config c;
    frt_star_config_default(&c, 4);
    float w[32 * 4] = {0};
    int failed = 0;
    for (long n = 1; n < 60; n++) {
        frt_star *m = NULL;
        frt_alloc_fail_after(n);
        frt_status s = frt_star_create(&c, w, w, w, w, &m);
        frt_alloc_fail_after(0);
        if (s == FRT_OK) {
            frt_star_free(m);
            break;
        }
        cr_assert_eq(s, FRT_ERR_NOMEM);
        cr_assert_null(m);
        failed++;
    }
    cr_assert_gt(failed, 10);
}
