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
#include "cpu.h"
#include "memory.h"
#include "memory_simd.h"
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
    int64_t nv;
    const int32_t *v = get(st, "config", FRT_I32, &nv);
    cr_assert_eq(nv, 15, "config holds %lld values", (long long)nv);
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
    c->kmeans_init = v[14] ? FRT_STAR_INIT_WARD : FRT_STAR_INIT_RANDOM;
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
Test(memory_parity, tiny_ward)
{
    parity("tiny_ward");
}
Test(memory_parity, default_sizes_ward)
{
    parity("default_sizes_ward");
}

static const frt_cpu_info isa_scalar = {0}, isa_avx2 = {.avx2 = true},
                          isa_all = {true, true, true, true};
static const frt_cpu_info *const isas[] = {&isa_scalar, &isa_avx2, &isa_all};
static const char *const isa_names[] = {"scalar", "avx2", "avx512"};

/* The goldens again on each kernel path this CPU has (the tests above run
 * the best one). */
Test(memory_parity, every_isa)
{
    static const char *const names[] = {"tiny",          "tiny_compat",          "grid8_abs2",
                                        "default_sizes", "default_sizes_compat", "tiny_ward",
                                        "default_sizes_ward"};
    for (int isa = 0; isa < 3; isa++) {
        frt_cpu_restrict(isas[isa]);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            cr_log_info("%s %s", isa_names[isa], names[i]);
            parity(names[i]);
        }
    }
    frt_cpu_restrict(NULL);
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

/* Ablations: every nonempty set of parts keeps exactly those parts' rows of
 * the full snapshot, in order, with the counts to match. */
Test(memory, select_parts)
{
    frt_star_config c;
    frt_star_config_default(&c, 3);
    c.p_spa = 4;
    c.p_tem = 2;
    c.p_abs = 2;
    c.n_spa = 2;
    c.n_tem = 3;
    c.n_abs = 2;
    c.n_buff = 6;
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    frt_star *m = make(&c, &r);
    float *f = random_frames(&r, &c, 12);
    const size_t fs = (size_t)16 * 3;
    for (int t = 0; t < 12; t++) frt_star_push(m, f + t * fs, t);
    const int cap = frt_star_tokens_after(&c, 12);
    float *full = malloc((size_t)cap * 3 * sizeof(float));
    float *part = malloc((size_t)cap * 3 * sizeof(float));
    frt_star_snapshot all, sel;
    cr_assert_eq(frt_star_copy(m, full, cap, &all), FRT_OK);
    const int n[4] = {all.n_abstract, all.n_temporal, all.n_retrieved, all.n_spatial};
    cr_assert(n[0] == 2 * 4 && n[1] == 3 * 4 && n[2] == 3 * 16 && n[3] == 2 * 16, "%d %d %d %d",
              n[0], n[1], n[2], n[3]);
    for (unsigned parts = 1; parts <= FRT_STAR_PART_ALL; parts++) {
        cr_assert_eq(frt_star_copy(m, part, cap, &sel), FRT_OK);
        frt_star_select(&sel, part, parts);
        const int got[4] = {sel.n_abstract, sel.n_temporal, sel.n_retrieved, sel.n_spatial};
        int at = 0, from = 0;
        for (int p = 0; p < 4; p++) {
            bool keep = parts & (1u << p);
            cr_assert_eq(got[p], keep ? n[p] : 0, "parts %u part %d", parts, p);
            if (keep) {
                cr_assert_eq(memcmp(part + (size_t)at * 3, full + (size_t)from * 3,
                                    (size_t)n[p] * 3 * sizeof(float)),
                             0, "parts %u part %d rows", parts, p);
                at += n[p];
            }
            from += n[p];
        }
        cr_assert_eq(sel.n_tokens, at);
        cr_assert_eq(sel.tokens, part);
        cr_assert_eq(sel.frames, 12);
        cr_assert_eq(sel.n_ret_frames, parts & FRT_STAR_PART_RETRIEVED ? all.n_ret_frames : 0);
    }
    free(full);
    free(part);
    free(f);
    frt_star_free(m);
}

/* The writer's own copy is the state after the last push even when that
 * push could not publish (every slot pinned). */
Test(memory, copy_state_exact_when_publishing_skipped)
{
    frt_star_config c;
    frt_star_config_default(&c, 3);
    c.n_tem = 3;
    c.n_abs = 3;
    c.n_buff = 4;
    tu_rng r;
    tu_rng_init(&r, 11);
    frt_star *a = make(&c, &r);
    tu_rng_init(&r, 11);
    frt_star *b = make(&c, &r);
    const int frames = FRT_STAR_SLOTS + 3;
    float *f = random_frames(&r, &c, frames);
    const size_t fs = (size_t)64 * 3;
    const frt_star_snapshot *pins[FRT_STAR_SLOTS];
    for (int t = 0; t < frames; t++) {
        frt_star_push(a, f + t * fs, t + 0.25);
        frt_star_push(b, f + t * fs, t + 0.25);
        if (t < FRT_STAR_SLOTS) pins[t] = frt_star_acquire(a);
    }
    frt_star_state st;
    frt_star_inspect(a, &st);
    cr_assert_eq(st.skipped_publish, frames - FRT_STAR_SLOTS);
    const int cap = frt_star_tokens_after(&c, frames);
    float *got = malloc((size_t)cap * 3 * sizeof(float));
    float *want = malloc((size_t)cap * 3 * sizeof(float));
    frt_star_snapshot gi, wi;
    cr_assert_eq(frt_star_copy_state(a, got, cap, &gi), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(frt_star_copy(b, want, cap, &wi), FRT_OK);
    cr_assert_eq(gi.frames, frames);
    cr_assert_float_eq(gi.time_s, frames - 0.75, 0);
    cr_assert_eq(gi.tokens, got);
    cr_assert_eq(gi.n_tokens, wi.n_tokens);
    cr_assert_eq(gi.n_abstract, wi.n_abstract);
    cr_assert_eq(gi.n_temporal, wi.n_temporal);
    cr_assert_eq(gi.n_retrieved, wi.n_retrieved);
    cr_assert_eq(gi.n_spatial, wi.n_spatial);
    cr_assert_eq(gi.n_ret_frames, wi.n_ret_frames);
    cr_assert_eq(memcmp(got, want, (size_t)wi.n_tokens * 3 * sizeof(float)), 0);
    /* what readers still get is older */
    frt_star_snapshot old;
    cr_assert_eq(frt_star_copy(a, want, cap, &old), FRT_OK);
    cr_assert_eq(old.frames, FRT_STAR_SLOTS);
    cr_assert_eq(frt_star_copy_state(a, got, cap - 1, &gi), FRT_ERR_LIMIT);
    cr_assert_eq(frt_star_copy_state(a, NULL, cap, &gi), FRT_ERR_INVALID_ARG);
    for (int p = 0; p < FRT_STAR_SLOTS; p++) frt_star_release(a, pins[p]);
    free(got);
    free(want);
    free(f);
    frt_star_free(a);
    frt_star_free(b);
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
           a->kmeans_tol == b->kmeans_tol && a->compat == b->compat && a->seed == b->seed &&
           a->kmeans_init == b->kmeans_init;
}

Test(memory, config_errors)
{
    static const char *bad[] = {
        "{\"video_sample_type\": \"kmeans\"}",
        "{\"compress_size\": 8, \"compress_long_memory_size\": 3}",
        "{\"compress_Turing_update_ratio\": 1.5}",
        "{\"video_long_memory_length\": -1}",
        "{\"compress_size\": \"8\"}",
        "{\"kmeans_init\": \"kmeans++\"}",
        "{\"kmeans_init\": 1}",
    };
    static const frt_status want[] = {FRT_ERR_UNSUPPORTED, FRT_ERR_FORMAT, FRT_ERR_FORMAT,
                                      FRT_ERR_FORMAT,      FRT_ERR_FORMAT, FRT_ERR_FORMAT,
                                      FRT_ERR_FORMAT};
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
    cr_assert_eq(c.kmeans_init, FRT_STAR_INIT_RANDOM, "the release's config means random init");
    frt_config_free(j);
    const char *ward = "{\"kmeans_init\": \"ward\"}";
    cr_assert_eq(frt_config_parse(ward, strlen(ward), "config.json", &j), FRT_OK);
    cr_assert_eq(frt_star_config_read(j, &c), FRT_OK, "%s", frt_last_error());
    cr_assert_eq(c.kmeans_init, FRT_STAR_INIT_WARD);
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

static double naive_sqdist(const float *a, const float *b, long n)
{
    double s = 0;
    for (long i = 0; i < n; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return s;
}

/* The vector kernels against naive twins at odd lengths (tails, single
 * blocks): distances to 1e-12, sqdist bit for bit sqdist_multi's value for
 * each vector, and means bit for bit the scalar formula, nothing written
 * past n. */
Test(memory_kernels, vector_twins)
{
    typedef struct {
        const char *name;
        bool have;
        double (*sqdist)(const float *, const float *, long);
        void (*multi)(const float *, const float *const *, int, long, double *);
        void (*wmean)(const float *const *, const double *, int, double, long, float *);
    } kern;
    const frt_cpu_info *cpu = frt_cpu();
    const kern ks[] = {
        {"avx2", cpu->avx2, frt_star_sqdist_avx2, frt_star_sqdist_multi_avx2, frt_star_wmean_avx2},
        {"avx512", cpu->avx512, frt_star_sqdist_avx512, frt_star_sqdist_multi_avx512,
         frt_star_wmean_avx512},
    };
    static const long ns[] = {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 100, 1023, 4097};
    const long maxn = 4097;
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    float *x[6], *dst = malloc((maxn + 1) * sizeof(float)), *ref = malloc(maxn * sizeof(float));
    for (int i = 0; i < 6; i++) {
        x[i] = malloc(maxn * sizeof(float));
        tu_fill_uniform(&r, x[i], maxn, -3.0f, 3.0f);
    }
    int ran = 0;
    for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
        if (!ks[k].have) continue;
        ran++;
        for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
            const long n = ns[ni];
            double d = ks[k].sqdist(x[0], x[1], n), want = naive_sqdist(x[0], x[1], n);
            cr_assert(fabs(d - want) <= 1e-12 * want, "%s n %ld: %.17g vs %.17g", ks[k].name, n, d,
                      want);
            cr_assert_eq(ks[k].sqdist(x[2], x[2], n), 0.0);
            for (int nc = 1; nc <= 4; nc++) {
                const float *c[4] = {x[1], x[2], x[3], x[4]};
                double out[4];
                ks[k].multi(x[0], c, nc, n, out);
                for (int j = 0; j < nc; j++)
                    cr_assert(out[j] == ks[k].sqdist(x[0], c[j], n), "%s n %ld nc %d [%d]",
                              ks[k].name, n, nc, j);
            }
            for (int cnt = 1; cnt <= 5; cnt++) {
                const float *m[5] = {x[0], x[1], x[2], x[3], x[4]};
                double w[5], ws = 0;
                for (int j = 0; j < cnt; j++)
                    ws += w[j] = j % 2 ? (double)(1 + tu_next(&r) % 7) : tu_uniform(&r, 0.1f, 3);
                for (long i = 0; i < n; i++) {
                    double acc = 0;
                    for (int j = 0; j < cnt; j++) acc += w[j] * m[j][i];
                    ref[i] = (float)(acc / ws);
                }
                tu_poison(dst, (size_t)n + 1);
                float guard = dst[n];
                ks[k].wmean(m, w, cnt, ws, n, dst);
                cr_assert_eq(memcmp(dst, ref, (size_t)n * sizeof(float)), 0, "%s n %ld cnt %d",
                             ks[k].name, n, cnt);
                cr_assert_eq(memcmp(&dst[n], &guard, sizeof guard), 0);
            }
        }
    }
    cr_log_info("%d vector kernel sets checked", ran);
    for (int i = 0; i < 6; i++) free(x[i]);
    free(dst);
    free(ref);
}

/* [p_in^2, dim] -> [p_out^2, dim] block means, as the memory computes them. */
static void pool_ref(const float *in, int p_in, int p_out, int dim, float *out)
{
    const int k = p_in / p_out;
    for (int oy = 0; oy < p_out; oy++)
        for (int ox = 0; ox < p_out; ox++)
            for (int c = 0; c < dim; c++) {
                double acc = 0;
                for (int y = oy * k; y < oy * k + k; y++)
                    for (int x = ox * k; x < ox * k + k; x++)
                        acc += in[((size_t)y * p_in + x) * dim + c];
                out[((size_t)oy * p_out + ox) * dim + c] = (float)(acc / (k * k));
            }
}

/* Retrieval keeps distances between pushes: over a long stream with scene
 * changes, repeated frames (exact ties) and a wrapping buffer, every
 * retrieved frame must be the buffered frame nearest its centroid by brute
 * force (ties to the newest), and each centroid the weighted mean of its
 * members. On every kernel path. */
Test(memory, retrieval_and_clusters_match_brute_force_every_isa)
{
    frt_star_config c;
    frt_star_config_default(&c, 13);
    c.p_spa = 4;
    c.p_tem = 2;
    c.n_tem = 5;
    c.n_abs = 3;
    c.n_buff = 17;
    const int frames = 150, scenes = 4;
    const size_t fs = (size_t)c.p_spa * c.p_spa * c.dim, pd = (size_t)c.p_tem * c.p_tem * c.dim;
    tu_rng r;
    tu_rng_init(&r, tu_seed());
    float *proto = random_frames(&r, &c, scenes), *f = malloc(fs * frames * sizeof(float));
    for (int t = 0; t < frames; t++) {
        float *x = f + t * fs;
        if (t >= 10 && t % 7 == 0) {
            memcpy(x, f + (t - 1 - (int)(tu_next(&r) % 9)) * fs, fs * sizeof(float));
            continue;
        }
        const float *p = proto + (size_t)((t / 12 + (int)(tu_next(&r) % 3 == 0)) % scenes) * fs;
        for (size_t i = 0; i < fs; i++) x[i] = p[i] + 0.3f * tu_normal(&r);
    }
    float *pooled = malloc(pd * frames * sizeof(float));
    for (int t = 0; t < frames; t++) pool_ref(f + t * fs, c.p_spa, c.p_tem, c.dim, pooled + t * pd);
    float *prev = malloc(pd * (c.n_tem + 1) * sizeof(float));
    double *prevw = malloc((c.n_tem + 1) * sizeof(double));
    for (int isa = 0; isa < 3; isa++) {
        frt_cpu_restrict(isas[isa]);
        frt_star *m = make(&c, &r);
        int prev_k = 0, ties = 0;
        for (int t = 0; t < frames; t++) {
            cr_assert_eq(frt_star_push(m, f + t * fs, t), FRT_OK);
            frt_star_state st;
            frt_star_inspect(m, &st);
            const frt_star_snapshot *sn = frt_star_acquire(m);
            const int lng = t; /* n_spa 1: frames 0..t-1 went long-term */
            if (st.n_labels) {
                /* points: the previous centroids, then the newest long-term frame */
                memcpy(prev + (size_t)c.n_tem * pd, pooled + (size_t)(lng - 1) * pd,
                       pd * sizeof(float));
                prevw[c.n_tem] = 1;
                for (int j = 0; j < st.n_clusters; j++) {
                    double ws = 0;
                    for (int i = 0; i <= c.n_tem; i++)
                        if (st.labels[i] == j) ws += prevw[i];
                    cr_assert_float_eq(st.weights[j], ws, 1e-9, "isa %s frame %d", isa_names[isa],
                                       t);
                    for (size_t e = 0; ws > 0 && e < pd; e++) {
                        double acc = 0;
                        for (int i = 0; i <= c.n_tem; i++)
                            if (st.labels[i] == j) acc += prevw[i] * prev[i * pd + e];
                        cr_assert_float_eq(st.centroids[j * pd + e], acc / ws,
                                           1e-5 * (1 + fabs(acc / ws)), "isa %s frame %d",
                                           isa_names[isa], t);
                    }
                }
            }
            prev_k = st.n_clusters;
            memcpy(prev, st.centroids, (size_t)prev_k * pd * sizeof(float));
            memcpy(prevw, st.weights, (size_t)prev_k * sizeof(double));

            int chosen[3], nc = 0;
            for (int q = 0; q < c.n_ret && q < st.n_clusters; q++) {
                int best = -1;
                for (int j = 0; j < st.n_clusters; j++) {
                    bool taken = false;
                    for (int u = 0; u < nc; u++) taken |= chosen[u] == j;
                    if (!taken && (best < 0 || st.weights[j] > st.weights[best])) best = j;
                }
                chosen[nc++] = best;
            }
            cr_assert_eq(sn->n_ret_frames, nc);
            const int first = lng > c.n_buff ? lng - c.n_buff : 0;
            for (int q = 0; q < nc; q++) {
                const float *cen = st.centroids + (size_t)chosen[q] * pd;
                int best = -1;
                double bd = 0;
                for (int b = first; b < lng; b++) {
                    double d = naive_sqdist(pooled + (size_t)b * pd, cen, (long)pd);
                    if (best < 0 || d <= bd) {
                        best = b;
                        bd = d;
                    }
                }
                const int64_t got = sn->ret_index[q];
                cr_assert(got >= first && got < lng, "isa %s frame %d: %lld outside the buffer",
                          isa_names[isa], t, (long long)got);
                double gd = naive_sqdist(pooled + (size_t)got * pd, cen, (long)pd);
                if (got != best) /* only a rounding-level near tie may differ */
                    cr_assert(fabs(gd - bd) <= 1e-12 * bd &&
                                  !(memcmp(pooled + (size_t)got * pd, pooled + (size_t)best * pd,
                                           pd * sizeof(float)) == 0 &&
                                    got < best),
                              "isa %s frame %d retrieved %d: %lld (%.17g) vs %d (%.17g)",
                              isa_names[isa], t, q, (long long)got, gd, best, bd);
                for (int b = first; b < lng; b++)
                    ties += b != best && bd == naive_sqdist(pooled + (size_t)b * pd, cen, (long)pd);
            }
            frt_star_release(m, sn);
        }
        cr_assert_gt(ties, 0, "the stream must retrieve a repeated frame (ties)");
        frt_star_free(m);
    }
    frt_cpu_restrict(NULL);
    free(prev);
    free(prevw);
    free(pooled);
    free(f);
    free(proto);
}
