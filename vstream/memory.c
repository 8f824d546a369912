/* The Flash-VStream STAR memory: see memory.h for the rules, and
 * tools/reference/star_memory.py for the same in PyTorch. */
#include "memory.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "alloc.h"
#include "cpu.h"
#include "error.h"
#include "memory_simd.h"
#include "weights.h"

typedef struct {
    double (*sqdist)(const float *a, const float *b, long n);
    void (*sqdist_multi)(const float *x, const float *const *c, int nc, long n, double *out);
    void (*wmean)(const float *const *x, const double *w, int cnt, double ws, long n, float *dst);
} star_kern;

typedef struct {
    frt_star_snapshot snap;
    float *tokens; /* [max_tokens, dim] */
} star_slot;

struct frt_star {
    frt_star_config c;
    int fs; /* floats per input frame: p_spa^2 * dim */
    int pd; /* floats per temporal point: p_tem^2 * dim */
    int at; /* abstract tokens per frame: p_abs^2 */
    int max_tokens;
    float *q_w, *q_b, *k_w, *k_b;
    uint64_t rng;

    int64_t frames, long_frames;
    /* spatial FIFO */
    float *spa;
    int64_t *spa_idx;
    int spa_head, spa_count;
    /* feature buffer ring */
    float *buf, *buf_pool;
    int64_t *buf_idx;
    int buf_head, buf_count;
    int64_t writes; /* frames written to the ring: write w went to slot w % n_buff */
    /* retrieval: rc row j holds, for each buffer slot, centroid j's squared
     * distance to it (rx set) or a lower bound of it (rx clear), for the
     * writes before rc_stamp[j] (-1: none). A centroid that survives a
     * clustering unchanged keeps its row (m->origin); a new mean gets bounds
     * from a member's row by the triangle inequality. */
    double *rc, *rc_next;              /* [n_tem, n_buff] */
    unsigned char *rx, *rx_next;       /* [n_tem, n_buff] */
    int64_t *rc_stamp, *rc_stamp_next; /* [n_tem] */
    /* compat: the first n_tem long-term frames */
    float *early;
    int early_count;
    /* temporal; cent, pts and cen are [n_tem + 1, pd] each and trade places */
    float *cent;     /* [n_tem, pd] state */
    double *weights; /* [n_tem] */
    int n_clusters;
    float *pts;   /* [n_tem + 1, pd] points of one clustering */
    double *ptw;  /* [n_tem + 1] their weights */
    float *cen;   /* [n_tem, pd] centroids while clustering */
    float *newc;  /* [pd] one new centroid */
    double *wsum; /* [n_tem] */
    double *dist; /* [n_tem + 1, n_tem] */
    /* [n_tem + 1]^2: distances between the points of this clustering and of
     * the previous one */
    double *pair, *pair_prev;
    int *origin; /* [n_tem]: the previous clustering's point that centroid j
                    equals bit for bit, or -1 */
    int *labels, *prev_labels, *perm, *src_pt;
    unsigned char *used, *col_ok;
    unsigned char *is_mean; /* cen j: 0 a copy of point src_pt[j], 1 the mean of
                               its members, 2 both */
    const float **mptr;     /* [n_tem + 1] members of one cluster, and their weights */
    double *mw;
    int n_labels, iters_run;
    const star_kern *kern; /* picked at each push */
    /* abstract */
    float *abs_mem;   /* [n_abs * at, dim] */
    int abs_filled;   /* tokens */
    float *e;         /* [at, dim]; compat: [n_abs * at, dim], the pending chunk */
    int chunk_frames; /* compat: frames in the pending chunk */
    double *q, *k, *s, *acc;
    bool q_ok;  /* q holds q(abs_mem) */
    int k_rows; /* k holds k of the first k_rows tokens of e */
    /* scratch */
    float *pooled; /* [p_tem^2, dim] */
    /* retrieval result */
    int n_ret_frames;
    const float *ret_frame[16];
    int64_t ret_index[16];
    /* snapshots */
    star_slot slots[FRT_STAR_SLOTS];
    atomic_int ref[FRT_STAR_SLOTS];
    atomic_int current;
    int64_t skipped;
    double time_s; /* of the last push */
};

void frt_star_config_default(frt_star_config *c, int dim)
{
    *c = (frt_star_config){.dim = dim,
                           .p_spa = 8,
                           .p_tem = 4,
                           .p_abs = 1,
                           .n_spa = 1,
                           .n_tem = 25,
                           .n_abs = 25,
                           .n_ret = 3,
                           .n_buff = 300,
                           .hidden = 32,
                           .alpha = 0.2,
                           .kmeans_iters = 10,
                           .kmeans_tol = 1e-4,
                           .compat = false,
                           .seed = 0};
}

frt_status frt_star_config_read(const frt_config *json, frt_star_config *c)
{
    frt_star_config n = *c;
    int64_t v;
    static const struct {
        const char *key;
        size_t off;
        int64_t lo, hi;
    } keys[] = {
        {"mm_hidden_size", offsetof(frt_star_config, dim), 1, 1 << 20},
        {"compress_size", offsetof(frt_star_config, p_spa), 1, 64},
        {"compress_long_memory_size", offsetof(frt_star_config, p_tem), 1, 64},
        {"compress_Turing_memory_size", offsetof(frt_star_config, p_abs), 1, 64},
        {"video_current_memory_length", offsetof(frt_star_config, n_spa), 0, 1024},
        {"video_long_memory_length", offsetof(frt_star_config, n_tem), 0, 4096},
        {"video_Turing_memory_length", offsetof(frt_star_config, n_abs), 0, 4096},
        {"compress_Turing_hidden_dim", offsetof(frt_star_config, hidden), 1, 1 << 16},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int *field = (int *)((char *)&n + keys[i].off);
        FRT_TRY(frt_config_int(json, keys[i].key, *field, keys[i].lo, keys[i].hi, &v));
        *field = (int)v;
    }
    FRT_TRY(frt_config_float(json, "compress_Turing_update_ratio", n.alpha, &n.alpha));
    if (!(n.alpha >= 0 && n.alpha <= 1))
        return frt_error(FRT_ERR_FORMAT, "compress_Turing_update_ratio %g is outside [0, 1]",
                         n.alpha);
    const char *type;
    FRT_TRY(frt_config_string(json, "video_sample_type", "weighted_kmeans", &type));
    if (strcmp(type, "weighted_kmeans") != 0)
        return frt_error(FRT_ERR_UNSUPPORTED,
                         "video_sample_type \"%s\": only weighted_kmeans is supported", type);
    const char *init;
    FRT_TRY(frt_config_string(json, "kmeans_init",
                              n.kmeans_init == FRT_STAR_INIT_WARD ? "ward" : "random", &init));
    if (strcmp(init, "random") == 0)
        n.kmeans_init = FRT_STAR_INIT_RANDOM;
    else if (strcmp(init, "ward") == 0)
        n.kmeans_init = FRT_STAR_INIT_WARD;
    else
        return frt_error(FRT_ERR_FORMAT, "kmeans_init \"%s\": expected \"random\" or \"ward\"",
                         init);
    if (n.p_spa % n.p_tem || n.p_spa % n.p_abs)
        return frt_error(FRT_ERR_FORMAT,
                         "compress_size %d is not a multiple of compress_long_memory_size %d and "
                         "compress_Turing_memory_size %d",
                         n.p_spa, n.p_tem, n.p_abs);
    *c = n;
    return FRT_OK;
}

frt_status frt_star_config_check(const frt_star_config *c)
{
    if (!c) return frt_error(FRT_ERR_INVALID_ARG, "star memory: config is NULL");
    if (c->dim < 1 || c->p_spa < 1 || c->p_tem < 1 || c->p_abs < 1 || c->hidden < 1)
        return frt_error(FRT_ERR_INVALID_ARG, "star memory: dim, sizes and hidden must be >= 1");
    if (c->p_spa % c->p_tem || c->p_spa % c->p_abs)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "star memory: p_tem %d and p_abs %d must divide p_spa %d", c->p_tem,
                         c->p_abs, c->p_spa);
    if (c->n_spa < 0 || c->n_tem < 0 || c->n_abs < 0 || c->n_buff < 0 || c->n_ret < 0 ||
        c->n_ret > 16 || c->n_spa > 4096 || c->n_tem > 4096 || c->n_abs > 4096 ||
        c->n_buff > 1 << 20)
        return frt_error(FRT_ERR_INVALID_ARG,
                         "star memory: lengths out of range (n_ret at most 16, others <= 4096, "
                         "n_buff <= 2^20)");
    if (c->kmeans_iters < 1 || !(c->kmeans_tol >= 0) || !(c->alpha >= 0 && c->alpha <= 1))
        return frt_error(FRT_ERR_INVALID_ARG,
                         "star memory: kmeans_iters >= 1, kmeans_tol >= 0, alpha in [0, 1]");
    double tokens = (double)c->n_abs * c->p_abs * c->p_abs +
                    (double)c->n_tem * c->p_tem * c->p_tem +
                    (double)(c->n_ret + c->n_spa) * c->p_spa * c->p_spa;
    if (tokens * c->dim > (double)(1 << 30))
        return frt_error(FRT_ERR_LIMIT, "star memory: %.0f tokens of %d floats is too large",
                         tokens, c->dim);
    /* A frame and q/k are counted in int, and everything frt_star_create allocates is sized
     * from these numbers (a config.json's): refuse what would overflow or not fit in memory,
     * whatever the token count. */
    double frame = (double)c->p_spa * c->p_spa * c->dim, qk = (double)c->hidden * c->dim;
    double pooled = (double)c->p_tem * c->p_tem * c->dim, K = c->n_tem;
    if (frame > (double)(1 << 30) || qk > (double)(1 << 30))
        return frt_error(FRT_ERR_LIMIT,
                         "star memory: a %d x %d x %d frame or %d x %d q/k is too large", c->p_spa,
                         c->p_spa, c->dim, c->hidden, c->dim);
    double bytes = 4 * (2 * qk + (c->n_spa + c->n_buff + (c->compat ? K : 0)) * frame +
                        (c->n_buff + 3 * (K + 1) + 1) * pooled + FRT_STAR_SLOTS * tokens * c->dim) +
                   18 * K * c->n_buff + 24 * (K + 1) * (K + 1);
    if (bytes > FRT_STAR_MAX_BYTES)
        return frt_error(FRT_ERR_LIMIT, "star memory: needs %.1f GiB, above the %.0f GiB cap",
                         bytes / (1 << 30), FRT_STAR_MAX_BYTES / (1 << 30));
    return FRT_OK;
}

int frt_star_tokens_after(const frt_star_config *c, int64_t frames)
{
    int64_t spa = frames < c->n_spa ? frames : c->n_spa;
    int64_t lng = frames - spa;
    int64_t tem = lng < c->n_tem ? lng : c->n_tem;
    int64_t abs_ = lng < c->n_abs ? lng : c->n_abs;
    int64_t ret = 0;
    if (c->compat || (c->n_buff > 0 && lng > 0)) ret = tem < c->n_ret ? tem : c->n_ret;
    return (int)(abs_ * c->p_abs * c->p_abs + tem * c->p_tem * c->p_tem +
                 (ret + spa) * c->p_spa * c->p_spa);
}

/* splitmix64: a tiny portable generator, the same in the Python reference. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Mean of each square block: [p_in^2, dim] -> [p_out^2, dim]; acc [dim]. */
static void pool(const float *in, int p_in, int p_out, int dim, double *acc, float *out)
{
    int k = p_in / p_out;
    for (int oy = 0; oy < p_out; oy++)
        for (int ox = 0; ox < p_out; ox++) {
            for (int c = 0; c < dim; c++) acc[c] = 0;
            for (int y = oy * k; y < oy * k + k; y++)
                for (int x = ox * k; x < ox * k + k; x++) {
                    const float *src = in + ((size_t)y * p_in + x) * dim;
                    for (int c = 0; c < dim; c++) acc[c] += src[c];
                }
            float *dst = out + ((size_t)oy * p_out + ox) * dim;
            for (int c = 0; c < dim; c++) dst[c] = (float)(acc[c] / (k * k));
        }
}

static double sqdist(const float *a, const float *b, long n)
{
    double s[4] = {0, 0, 0, 0};
    long i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) {
            double d = (double)a[i + j] - b[i + j];
            s[j] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)a[i] - b[i];
        s[0] += d * d;
    }
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static void sqdist_multi(const float *x, const float *const *c, int nc, long n, double *out)
{
    for (int j = 0; j < nc; j++) out[j] = sqdist(x, c[j], n);
}

static void wmean(const float *const *x, const double *w, int cnt, double ws, long n, float *dst)
{
    for (long i = 0; i < n; i++) {
        double acc = 0;
        for (int k = 0; k < cnt; k++) acc += w[k] * x[k][i];
        dst[i] = (float)(acc / ws);
    }
}

static const star_kern *pick_kernels(void)
{
    static const star_kern k512 = {frt_star_sqdist_avx512, frt_star_sqdist_multi_avx512,
                                   frt_star_wmean_avx512},
                           k2 = {frt_star_sqdist_avx2, frt_star_sqdist_multi_avx2,
                                 frt_star_wmean_avx2},
                           k1 = {sqdist, sqdist_multi, wmean};
    const frt_cpu_info *cpu = frt_cpu();
    return cpu->avx512 ? &k512 : cpu->avx2 ? &k2 : &k1;
}

/* Weighted k-means of m->pts (n = n_tem + 1 points, weights m->ptw) back to
 * k = n_tem clusters; result in m->cent, m->weights, m->labels.
 *
 * The distances dominate, and most are known already: the first assignment
 * compares points with points (the initial centroids are points), and most
 * old centroids are bit for bit points of the previous clustering (a
 * cluster of one point is that point), whose pairwise distances that
 * clustering computed (m->origin, m->pair_prev). Later assignments only
 * recompute the distances to centroids that moved, and a cluster whose
 * members did not change keeps its centroid without recomputing the mean:
 * every skipped value would have come out the same (for finite data, up to
 * the sign of a zero). */
static void kmeans(frt_star *m)
{
    const star_kern *kn = m->kern;
    const int k = m->c.n_tem, n = k + 1;
    const long pd = m->pd;
    double *pair = m->pair, *dist = m->dist;
    for (int i = 0; i < n; i++) {
        pair[(size_t)i * n + i] = 0;
        const int oi = i < k ? m->origin[i] : -1;
        for (int l = i + 1; l < n; l++) {
            const int ol = l < k ? m->origin[l] : -1;
            double d = oi >= 0 && ol >= 0
                           ? m->pair_prev[(size_t)oi * n + ol]
                           : kn->sqdist(m->pts + (size_t)i * pd, m->pts + (size_t)l * pd, pd);
            pair[(size_t)i * n + l] = pair[(size_t)l * n + i] = d;
        }
    }

    int wi = -1, wl = -1; /* ward: the merged pair */
    for (int i = 0; i < n; i++) m->perm[i] = i;
    if (m->c.kmeans_init == FRT_STAR_INIT_WARD) {
        double best = 0;
        for (int i = 0; i < n; i++)
            for (int l = i + 1; l < n; l++) {
                const double a = m->ptw[i], b = m->ptw[l];
                const double cost = a + b > 0 ? a * b / (a + b) * pair[(size_t)i * n + l] : 0.0;
                if (wi < 0 || cost < best) {
                    best = cost;
                    wi = i;
                    wl = l;
                }
            }
        for (int j = wl; j < k; j++) m->perm[j] = j + 1;
    } else {
        for (int i = 0; i < k; i++) {
            int j = i + (int)(next_rand(&m->rng) % (uint64_t)(n - i));
            int t = m->perm[i];
            m->perm[i] = m->perm[j];
            m->perm[j] = t;
        }
    }
    for (int j = 0; j < k; j++) {
        memcpy(m->cen + (size_t)j * pd, m->pts + (size_t)m->perm[j] * pd,
               (size_t)pd * sizeof(float));
        m->src_pt[j] = m->perm[j];
        m->is_mean[j] = 0;
        for (int i = 0; i < n; i++) dist[(size_t)i * k + j] = pair[(size_t)i * n + m->perm[j]];
        m->col_ok[j] = 1;
    }
    if (wi >= 0 && m->ptw[wi] + m->ptw[wl] > 0) {
        /* cluster wi (perm[wi] == wi) starts as the pair's weighted mean (two
         * weight-0 points: x_wi itself); the first assignment finds which
         * members it still has */
        m->mptr[0] = m->pts + (size_t)wi * pd;
        m->mptr[1] = m->pts + (size_t)wl * pd;
        m->mw[0] = m->ptw[wi];
        m->mw[1] = m->ptw[wl];
        kn->wmean(m->mptr, m->mw, 2, m->ptw[wi] + m->ptw[wl], pd, m->cen + (size_t)wi * pd);
        m->is_mean[wi] = 1;
        m->col_ok[wi] = 0;
        for (int i = 0; i < n; i++) m->prev_labels[i] = i < wl ? i : i == wl ? wi : i - 1;
    }

    m->iters_run = 0;
    for (int it = 0; it < m->c.kmeans_iters; it++) {
        m->iters_run = it + 1;
        for (int j = 0; j < k; j++) {
            if (m->col_ok[j]) continue;
            for (int i = 0; i < n; i++)
                dist[(size_t)i * k + j] =
                    kn->sqdist(m->pts + (size_t)i * pd, m->cen + (size_t)j * pd, pd);
            m->col_ok[j] = 1;
        }
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int j = 1; j < k; j++)
                if (dist[(size_t)i * k + j] < dist[(size_t)i * k + best]) best = j;
            m->labels[i] = best;
        }
        memset(m->used, 0, (size_t)n);
        double diff = 0;
        for (int j = 0; j < k; j++) {
            double ws = 0;
            int cnt = 0;
            bool same = m->is_mean[j];
            for (int i = 0; i < n; i++) {
                same &= (m->labels[i] == j) == (m->prev_labels[i] == j);
                if (m->labels[i] != j) continue;
                ws += m->ptw[i];
                m->mptr[cnt] = m->pts + (size_t)i * pd;
                m->mw[cnt++] = m->ptw[i];
            }
            m->wsum[j] = ws;
            float *cj = m->cen + (size_t)j * pd;
            const float *next;
            if (ws > 0) {
                if (same) continue; /* the mean of the same members */
                if (!m->is_mean[j] && cnt == 1 &&
                    m->mptr[0] == m->pts + (size_t)m->src_pt[j] * pd &&
                    m->mw[0] == floor(m->mw[0]) && m->mw[0] >= 1 && m->mw[0] <= 16777216.0) {
                    /* its own point alone: w x / w is x again (w x is exact
                     * for an integer w up to 2^24), so it does not move */
                    m->is_mean[j] = 2;
                    continue;
                }
                kn->wmean(m->mptr, m->mw, cnt, ws, pd, m->newc);
                next = m->newc;
                m->is_mean[j] = 1;
            } else {
                int r;
                if (m->c.compat) {
                    r = (int)(next_rand(&m->rng) % (uint64_t)n);
                } else {
                    r = -1;
                    double far = 0;
                    for (int i = 0; i < n; i++) {
                        double own = dist[(size_t)i * k + m->labels[i]];
                        if (m->used[i]) continue;
                        if (r < 0 || own > far) {
                            r = i;
                            far = own;
                        }
                    }
                    m->used[r] = 1;
                }
                next = m->pts + (size_t)r * pd;
                m->src_pt[j] = r;
                m->is_mean[j] = 0;
            }
            /* no movement: the same values (at most a zero's sign differs) */
            double mv = kn->sqdist(cj, next, pd);
            if (mv != 0) {
                memcpy(cj, next, (size_t)pd * sizeof(float));
                m->col_ok[j] = 0;
            }
            diff += sqrt(mv);
        }
        memcpy(m->prev_labels, m->labels, (size_t)n * sizeof(int));
        if (diff < m->c.kmeans_tol) break;
    }
    /* which final centroids are exactly a point, for the next clustering */
    for (int j = 0; j < k; j++) {
        int p = -1;
        if (m->is_mean[j] != 1) {
            p = m->src_pt[j];
        } else {
            int cnt = 0;
            for (int i = 0; i < n; i++)
                if (m->labels[i] == j) {
                    p = i;
                    cnt++;
                }
            if (cnt != 1 || memcmp(m->cen + (size_t)j * pd, m->pts + (size_t)p * pd,
                                   (size_t)pd * sizeof(float)) != 0)
                p = -1;
        }
        m->origin[j] = p;
    }
    float *t = m->cent;
    m->cent = m->cen;
    m->cen = t;
    double *tp = m->pair;
    m->pair = m->pair_prev;
    m->pair_prev = tp;
    memcpy(m->weights, m->wsum, (size_t)k * sizeof(double));
    m->n_labels = n;
}

static void project(const frt_star *m, const float *x, const float *w, const float *b, double *y)
{
    const int dim = m->c.dim;
    for (int o = 0; o < m->c.hidden; o++) {
        double acc = 0;
        for (int c = 0; c < dim; c++) acc += (double)x[c] * w[(size_t)o * dim + c];
        y[o] = acc + b[o];
    }
}

/* out <- M (1 - rowsum W) + W e, W = alpha softmax_rows(q(M) k(e)^T / sqrt(hidden)),
 * M = m->abs_mem, over the first ntok tokens of e = m->e; out may be M.
 * q(M) and k of each token are kept until M or the token changes (compat
 * attends to a growing chunk at every push), and with one token the softmax
 * is 1 whatever the scores, so then neither is computed. */
static void attend(frt_star *m, float *out, int ntok)
{
    const int rows = m->c.n_abs * m->at, dim = m->c.dim, h = m->c.hidden;
    const float *mem = m->abs_mem, *e = m->e;
    const bool one = ntok == 1;
    if (!one && !m->q_ok) {
        for (int r = 0; r < rows; r++)
            project(m, mem + (size_t)r * dim, m->q_w, m->q_b, m->q + (size_t)r * h);
        m->q_ok = true;
    }
    for (; !one && m->k_rows < ntok; m->k_rows++)
        project(m, e + (size_t)m->k_rows * dim, m->k_w, m->k_b, m->k + (size_t)m->k_rows * h);
    double scale = 1.0 / sqrt((double)h);
    for (int r = 0; r < rows; r++) {
        double *s = m->s + (size_t)r * ntok, mx = -INFINITY, sum = 0, decay = 0;
        if (one) {
            decay += (s[0] = m->c.alpha);
        } else {
            for (int p = 0; p < ntok; p++) {
                double d = 0;
                for (int o = 0; o < h; o++) d += m->q[(size_t)r * h + o] * m->k[(size_t)p * h + o];
                s[p] = d * scale;
                if (s[p] > mx) mx = s[p];
            }
            for (int p = 0; p < ntok; p++) sum += (s[p] = exp(s[p] - mx));
            for (int p = 0; p < ntok; p++) decay += (s[p] = s[p] / sum * m->c.alpha);
        }
        const float *in = mem + (size_t)r * dim;
        float *row = out + (size_t)r * dim;
        for (int c = 0; c < dim; c++) {
            double v = 0;
            for (int p = 0; p < ntok; p++) v += s[p] * e[(size_t)p * dim + c];
            row[c] = (float)((double)in[c] * (1 - decay) + v);
        }
    }
    if (out == mem) m->q_ok = false;
}

/* Carry each surviving centroid's retrieval row to its new index; give a
 * new mean lower bounds from its nearest member that had a row:
 * d(b, c) >= d(b, x) - d(x, c), shrunk well past rounding (1e-9) so a bound
 * never exceeds the distance sqdist would compute. */
static void remap_rows(frt_star *m)
{
    const int k = m->c.n_tem, nb = m->c.n_buff;
    const long pd = m->pd;
    if (m->c.compat || nb == 0) return;
    for (int j = 0; j < k; j++) {
        const int o = m->origin[j];
        double *row = m->rc_next + (size_t)j * nb;
        unsigned char *rx = m->rx_next + (size_t)j * nb;
        m->rc_stamp_next[j] = -1;
        if (o >= 0 && o < k) {
            if ((m->rc_stamp_next[j] = m->rc_stamp[o]) >= 0) {
                memcpy(row, m->rc + (size_t)o * nb, (size_t)nb * sizeof(double));
                memcpy(rx, m->rx + (size_t)o * nb, (size_t)nb);
            }
            continue;
        }
        if (o >= 0) continue;
        int ref = -1;
        double dref = 0;
        for (int i = 0; i < k; i++) {
            if (m->labels[i] != j || m->rc_stamp[i] < 0) continue;
            double d = m->kern->sqdist(m->pts + (size_t)i * pd, m->cent + (size_t)j * pd, pd);
            if (ref < 0 || d < dref) {
                ref = i;
                dref = d;
            }
        }
        if (ref < 0) continue;
        const double r = sqrt(dref) * (1 + 1e-9), *src = m->rc + (size_t)ref * nb;
        for (int b = 0; b < nb; b++) {
            double g = sqrt(src[b]) * (1 - 1e-9) - r;
            row[b] = g > 0 ? g * g * (1 - 1e-9) : 0;
        }
        memset(rx, 0, (size_t)nb);
        m->rc_stamp_next[j] = m->rc_stamp[ref];
    }
    double *t = m->rc;
    m->rc = m->rc_next;
    m->rc_next = t;
    unsigned char *tx = m->rx;
    m->rx = m->rx_next;
    m->rx_next = tx;
    int64_t *ts = m->rc_stamp;
    m->rc_stamp = m->rc_stamp_next;
    m->rc_stamp_next = ts;
}

static void enter_long(frt_star *m, const float *frame, int64_t idx)
{
    const frt_star_config *c = &m->c;
    const int fs = m->fs, pd = m->pd;
    pool(frame, c->p_spa, c->p_tem, c->dim, m->acc, m->pooled);
    if (c->n_buff > 0) {
        int pos;
        if (m->buf_count < c->n_buff) {
            pos = (m->buf_head + m->buf_count) % c->n_buff;
            m->buf_count++;
        } else {
            pos = m->buf_head;
            m->buf_head = (m->buf_head + 1) % c->n_buff;
        }
        memcpy(m->buf + (size_t)pos * fs, frame, (size_t)fs * sizeof(float));
        memcpy(m->buf_pool + (size_t)pos * pd, m->pooled, (size_t)pd * sizeof(float));
        m->buf_idx[pos] = idx;
        m->writes++;
    }
    if (c->compat && m->early_count < c->n_tem)
        memcpy(m->early + (size_t)m->early_count++ * fs, frame, (size_t)fs * sizeof(float));
    m->long_frames++;

    if (c->n_tem > 0) {
        if (m->n_clusters < c->n_tem) {
            memcpy(m->cent + (size_t)m->n_clusters * pd, m->pooled, (size_t)pd * sizeof(float));
            m->rc_stamp[m->n_clusters] = -1;
            m->weights[m->n_clusters++] = 1.0;
        } else {
            float *t = m->pts; /* the old centroids become the points */
            m->pts = m->cent;
            m->cent = t;
            memcpy(m->pts + (size_t)c->n_tem * pd, m->pooled, (size_t)pd * sizeof(float));
            for (int i = 0; i <= c->n_tem; i++)
                m->ptw[i] = c->compat || i == c->n_tem ? 1.0 : m->weights[i];
            kmeans(m);
            remap_rows(m);
        }
    }
    if (c->n_abs > 0) {
        int per = m->at;
        if (m->abs_filled < c->n_abs * per) {
            pool(frame, c->p_spa, c->p_abs, c->dim, m->acc,
                 m->abs_mem + (size_t)m->abs_filled * c->dim);
            m->abs_filled += per;
            m->q_ok = false;
        } else if (!c->compat) {
            pool(frame, c->p_spa, c->p_abs, c->dim, m->acc, m->e);
            m->k_rows = 0;
            attend(m, m->abs_mem, per);
        } else {
            /* the released code attends to n_abs frames at a time */
            pool(frame, c->p_spa, c->p_abs, c->dim, m->acc,
                 m->e + (size_t)m->chunk_frames++ * per * c->dim);
            if (m->chunk_frames == c->n_abs) {
                attend(m, m->abs_mem, c->n_abs * per);
                m->chunk_frames = 0;
                m->k_rows = 0;
            }
        }
    }
}

static void retrieve(frt_star *m)
{
    const frt_star_config *c = &m->c;
    int k = m->n_clusters, chosen[16], nc = 0;
    /* the n_ret heaviest clusters, ties to the lower index */
    for (int r = 0; r < c->n_ret && r < k; r++) {
        int best = -1;
        for (int j = 0; j < k; j++) {
            int taken = 0;
            for (int t = 0; t < nc; t++) taken |= chosen[t] == j;
            if (taken) continue;
            if (best < 0 || m->weights[j] > m->weights[best]) best = j;
        }
        chosen[nc++] = best;
    }
    m->n_ret_frames = 0;
    if (c->compat) {
        for (int t = 0; t < nc; t++) {
            m->ret_frame[m->n_ret_frames] = m->early + (size_t)chosen[t] * m->fs;
            m->ret_index[m->n_ret_frames++] = chosen[t];
        }
        return;
    }
    if (m->buf_count == 0 || nc == 0) return;
    /* bring the chosen rows up to date: the slots written since a row was
     * complete, or, for new rows, one pass over the buffer for all of them
     * (the buffer is the largest thing read) */
    const long pd = m->pd;
    const int nb = c->n_buff;
    const float *cp[16];
    int full[16], nf = 0;
    for (int t = 0; t < nc; t++) {
        const int j = chosen[t];
        const int64_t st = m->rc_stamp[j];
        if (st < 0 || m->writes - st >= nb) {
            full[nf] = j;
            cp[nf++] = m->cent + (size_t)j * pd;
            continue;
        }
        for (int64_t w = st; w < m->writes; w++) {
            int pos = (int)(w % nb);
            m->rc[(size_t)j * nb + pos] =
                m->kern->sqdist(m->buf_pool + (size_t)pos * pd, m->cent + (size_t)j * pd, pd);
            m->rx[(size_t)j * nb + pos] = 1;
        }
        m->rc_stamp[j] = m->writes;
    }
    for (int b = 0; b < m->buf_count && nf > 0; b++) {
        const int pos = (m->buf_head + b) % nb;
        double d[16];
        for (int g = 0; g < nf; g += 4)
            m->kern->sqdist_multi(m->buf_pool + (size_t)pos * pd, cp + g, nf - g < 4 ? nf - g : 4,
                                  pd, d + g);
        for (int f = 0; f < nf; f++) {
            m->rc[(size_t)full[f] * nb + pos] = d[f];
            m->rx[(size_t)full[f] * nb + pos] = 1;
        }
    }
    for (int f = 0; f < nf; f++) m->rc_stamp[full[f]] = m->writes;
    for (int t = 0; t < nc; t++) {
        const int j = chosen[t];
        double *row = m->rc + (size_t)j * nb;
        unsigned char *rx = m->rx + (size_t)j * nb;
        const float *cj = m->cent + (size_t)j * pd;
        /* until the smallest entry is a distance, compute the smallest bound;
         * then a bound equal to it might still tie (the ring fills from slot
         * 0, so slots below buf_count are the buffered ones) */
        double low;
        for (;;) {
            int s = -1;
            for (int b = 0; b < m->buf_count; b++)
                if (s < 0 || row[b] < row[s]) s = b;
            low = row[s];
            if (rx[s]) break;
            row[s] = m->kern->sqdist(m->buf_pool + (size_t)s * pd, cj, pd);
            rx[s] = 1;
        }
        for (int b = 0; b < m->buf_count; b++)
            if (!rx[b] && row[b] <= low) {
                row[b] = m->kern->sqdist(m->buf_pool + (size_t)b * pd, cj, pd);
                rx[b] = 1;
            }
        /* oldest first, so ties go to the newest */
        int best = -1;
        for (int b = 0; b < m->buf_count; b++) {
            const int pos = (m->buf_head + b) % nb;
            if (rx[pos] && (best < 0 || row[pos] <= row[best])) best = pos;
        }
        m->ret_frame[m->n_ret_frames] = m->buf + (size_t)best * m->fs;
        m->ret_index[m->n_ret_frames++] = m->buf_idx[best];
    }
}

static void put(float **dst, const float *src, size_t n)
{
    memcpy(*dst, src, n * sizeof(float));
    *dst += n;
}

/* Write the current state's tokens to dst (room for max_tokens rows) and
 * describe them in *sn. */
static void fill(frt_star *m, float *dst, frt_star_snapshot *sn)
{
    const frt_star_config *c = &m->c;
    const int dim = c->dim, fs = m->fs;
    sn->tokens = dst;
    sn->dim = dim;
    if (m->chunk_frames > 0) /* compat: the partial chunk counts, uncommitted */
        attend(m, dst, m->chunk_frames * m->at);
    else
        memcpy(dst, m->abs_mem, (size_t)m->abs_filled * dim * sizeof(float));
    dst += (size_t)m->abs_filled * dim;
    sn->n_abstract = m->abs_filled;
    put(&dst, m->cent, (size_t)m->n_clusters * m->pd);
    sn->n_temporal = m->n_clusters * c->p_tem * c->p_tem;
    for (int r = 0; r < m->n_ret_frames; r++) {
        put(&dst, m->ret_frame[r], (size_t)fs);
        sn->ret_index[r] = m->ret_index[r];
    }
    sn->n_ret_frames = m->n_ret_frames;
    sn->n_retrieved = m->n_ret_frames * c->p_spa * c->p_spa;
    int oldest = (m->spa_head - m->spa_count + c->n_spa) % (c->n_spa ? c->n_spa : 1);
    for (int i = 0; i < m->spa_count; i++)
        put(&dst, m->spa + (size_t)((oldest + i) % c->n_spa) * fs, (size_t)fs);
    sn->n_spatial = m->spa_count * c->p_spa * c->p_spa;
    sn->n_tokens = sn->n_abstract + sn->n_temporal + sn->n_retrieved + sn->n_spatial;
    sn->frames = m->frames;
    sn->time_s = m->time_s;
}

/* Fill a free slot with the current state and publish it; skip (and count)
 * when every other slot is pinned. */
static void publish(frt_star *m)
{
    int cur = atomic_load(&m->current), slot = -1;
    for (int i = 0; i < FRT_STAR_SLOTS; i++)
        if (i != cur && atomic_load(&m->ref[i]) == 0) {
            slot = i;
            break;
        }
    if (slot < 0) {
        m->skipped++;
        return;
    }
    fill(m, m->slots[slot].tokens, &m->slots[slot].snap);
    atomic_store(&m->current, slot);
}

frt_status frt_star_push(frt_star *m, const float *frame, double time_s)
{
    if (!m || !frame) return frt_error(FRT_ERR_INVALID_ARG, "star push: NULL memory or frame");
    const frt_star_config *c = &m->c;
    const int fs = m->fs;
    m->kern = pick_kernels();
    m->n_labels = 0;
    int64_t idx = m->frames++;
    if (c->n_spa == 0) {
        enter_long(m, frame, idx);
    } else {
        float *slot = m->spa + (size_t)m->spa_head * fs;
        if (m->spa_count == c->n_spa)
            enter_long(m, slot, m->spa_idx[m->spa_head]);
        else
            m->spa_count++;
        memcpy(slot, frame, (size_t)fs * sizeof(float));
        m->spa_idx[m->spa_head] = idx;
        m->spa_head = (m->spa_head + 1) % c->n_spa;
    }
    retrieve(m);
    m->time_s = time_s;
    publish(m);
    return FRT_OK;
}

const frt_star_snapshot *frt_star_acquire(frt_star *m)
{
    for (;;) {
        int cur = atomic_load(&m->current);
        atomic_fetch_add(&m->ref[cur], 1);
        if (atomic_load(&m->current) == cur) return &m->slots[cur].snap;
        atomic_fetch_sub(&m->ref[cur], 1);
    }
}

void frt_star_release(frt_star *m, const frt_star_snapshot *s)
{
    if (!m || !s) return;
    for (int i = 0; i < FRT_STAR_SLOTS; i++)
        if (s == &m->slots[i].snap) {
            atomic_fetch_sub(&m->ref[i], 1);
            return;
        }
}

frt_status frt_star_copy(frt_star *m, float *dst, int cap_tokens, frt_star_snapshot *info)
{
    if (!m || !info || (!dst && cap_tokens > 0))
        return frt_error(FRT_ERR_INVALID_ARG, "star copy: NULL argument");
    const frt_star_snapshot *s = frt_star_acquire(m);
    if (s->n_tokens > cap_tokens) {
        int need = s->n_tokens;
        frt_star_release(m, s);
        return frt_error(FRT_ERR_LIMIT, "star copy: %d tokens do not fit in %d", need, cap_tokens);
    }
    *info = *s;
    memcpy(dst, s->tokens, (size_t)s->n_tokens * s->dim * sizeof(float));
    info->tokens = dst;
    frt_star_release(m, s);
    return FRT_OK;
}

frt_status frt_star_copy_state(frt_star *m, float *dst, int cap_tokens, frt_star_snapshot *info)
{
    if (!m || !info || !dst)
        return frt_error(FRT_ERR_INVALID_ARG, "star copy_state: NULL argument");
    int need = frt_star_tokens_after(&m->c, m->frames);
    if (need > cap_tokens)
        return frt_error(FRT_ERR_LIMIT, "star copy_state: %d tokens do not fit in %d", need,
                         cap_tokens);
    fill(m, dst, info);
    return FRT_OK;
}

void frt_star_select(frt_star_snapshot *s, float *tokens, unsigned parts)
{
    const int n[4] = {s->n_abstract, s->n_temporal, s->n_retrieved, s->n_spatial};
    const size_t row = (size_t)s->dim;
    int from = 0, to = 0, kept[4];
    for (int p = 0; p < 4; p++) {
        kept[p] = parts & (1u << p) ? n[p] : 0;
        if (kept[p] && from != to)
            memmove(tokens + (size_t)to * row, tokens + (size_t)from * row,
                    (size_t)n[p] * row * sizeof(float));
        from += n[p];
        to += kept[p];
    }
    s->n_abstract = kept[0];
    s->n_temporal = kept[1];
    s->n_retrieved = kept[2];
    s->n_spatial = kept[3];
    s->n_tokens = to;
    if (!kept[2]) s->n_ret_frames = 0;
    s->tokens = tokens;
}

void frt_star_inspect(const frt_star *m, frt_star_state *out)
{
    *out = (frt_star_state){.n_clusters = m->n_clusters,
                            .centroids = m->cent,
                            .weights = m->weights,
                            .n_labels = m->n_labels,
                            .labels = m->labels,
                            .kmeans_iters_run = m->n_labels ? m->iters_run : 0,
                            .n_abstract_slots = m->abs_filled,
                            .abstract = m->abs_mem,
                            .frames = m->frames,
                            .long_frames = m->long_frames,
                            .skipped_publish = m->skipped};
}

static void *zalloc(size_t count, size_t size, bool *ok)
{
    void *p = frt_calloc(count ? count : 1, size);
    if (!p) *ok = false;
    return p;
}

frt_status frt_star_create(const frt_star_config *c, const float *q_w, const float *q_b,
                           const float *k_w, const float *k_b, frt_star **out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "star create: out is NULL");
    *out = NULL;
    FRT_TRY(frt_star_config_check(c));
    if (!q_w || !q_b || !k_w || !k_b)
        return frt_error(FRT_ERR_INVALID_ARG, "star create: q/k weights are NULL");
    frt_star *m = frt_calloc(1, sizeof *m);
    if (!m) return FRT_ERR_NOMEM;
    m->c = *c;
    m->fs = c->p_spa * c->p_spa * c->dim;
    m->pd = c->p_tem * c->p_tem * c->dim;
    m->at = c->p_abs * c->p_abs;
    m->max_tokens = frt_star_tokens_after(c, INT64_MAX / 2);
    m->rng = c->seed;
    const size_t hd = (size_t)c->hidden * c->dim, K = (size_t)c->n_tem;
    size_t accn = (size_t)(m->pd > c->dim ? m->pd : c->dim);
    bool ok = true;
    m->q_w = zalloc(hd, sizeof(float), &ok);
    m->k_w = zalloc(hd, sizeof(float), &ok);
    m->q_b = zalloc((size_t)c->hidden, sizeof(float), &ok);
    m->k_b = zalloc((size_t)c->hidden, sizeof(float), &ok);
    m->spa = zalloc((size_t)c->n_spa * m->fs, sizeof(float), &ok);
    m->spa_idx = zalloc((size_t)c->n_spa, sizeof(int64_t), &ok);
    m->buf = zalloc((size_t)c->n_buff * m->fs, sizeof(float), &ok);
    m->buf_pool = zalloc((size_t)c->n_buff * m->pd, sizeof(float), &ok);
    m->buf_idx = zalloc((size_t)c->n_buff, sizeof(int64_t), &ok);
    if (c->compat) m->early = zalloc(K * m->fs, sizeof(float), &ok);
    m->cent = zalloc((K + 1) * m->pd, sizeof(float), &ok);
    m->weights = zalloc(K, sizeof(double), &ok);
    m->pts = zalloc((K + 1) * m->pd, sizeof(float), &ok);
    m->ptw = zalloc(K + 1, sizeof(double), &ok);
    m->cen = zalloc((K + 1) * m->pd, sizeof(float), &ok);
    m->newc = zalloc((size_t)m->pd, sizeof(float), &ok);
    m->wsum = zalloc(K, sizeof(double), &ok);
    m->dist = zalloc((K + 1) * K, sizeof(double), &ok);
    m->pair = zalloc((K + 1) * (K + 1), sizeof(double), &ok);
    m->pair_prev = zalloc((K + 1) * (K + 1), sizeof(double), &ok);
    m->origin = zalloc(K, sizeof(int), &ok);
    m->rc = zalloc(K * c->n_buff, sizeof(double), &ok);
    m->rc_next = zalloc(K * c->n_buff, sizeof(double), &ok);
    m->rx = zalloc(K * c->n_buff, 1, &ok);
    m->rx_next = zalloc(K * c->n_buff, 1, &ok);
    m->rc_stamp = zalloc(K, sizeof(int64_t), &ok);
    m->rc_stamp_next = zalloc(K, sizeof(int64_t), &ok);
    m->labels = zalloc(K + 1, sizeof(int), &ok);
    m->prev_labels = zalloc(K + 1, sizeof(int), &ok);
    m->perm = zalloc(K + 1, sizeof(int), &ok);
    m->src_pt = zalloc(K + 1, sizeof(int), &ok);
    m->used = zalloc(K + 1, 1, &ok);
    m->col_ok = zalloc(K + 1, 1, &ok);
    m->is_mean = zalloc(K + 1, 1, &ok);
    m->mptr = zalloc(K + 1, sizeof(float *), &ok);
    m->mw = zalloc(K + 1, sizeof(double), &ok);
    m->abs_mem = zalloc((size_t)c->n_abs * m->at * c->dim, sizeof(float), &ok);
    const size_t keys = (size_t)m->at * (c->compat ? (size_t)c->n_abs : 1);
    m->e = zalloc(keys * c->dim, sizeof(float), &ok);
    m->q = zalloc((size_t)c->n_abs * m->at * c->hidden, sizeof(double), &ok);
    m->k = zalloc(keys * c->hidden, sizeof(double), &ok);
    m->s = zalloc((size_t)c->n_abs * m->at * keys, sizeof(double), &ok);
    m->acc = zalloc(accn, sizeof(double), &ok);
    m->pooled = zalloc((size_t)m->pd, sizeof(float), &ok);
    for (int i = 0; i < FRT_STAR_SLOTS; i++) {
        m->slots[i].tokens = zalloc((size_t)m->max_tokens * c->dim, sizeof(float), &ok);
        m->slots[i].snap.tokens = m->slots[i].tokens;
        m->slots[i].snap.dim = c->dim;
        atomic_init(&m->ref[i], 0);
    }
    atomic_init(&m->current, 0);
    if (!ok) {
        frt_star_free(m);
        return frt_error(FRT_ERR_NOMEM, "star create: out of memory");
    }
    for (size_t j = 0; j < K; j++) m->origin[j] = -1;
    memcpy(m->q_w, q_w, hd * sizeof(float));
    memcpy(m->k_w, k_w, hd * sizeof(float));
    memcpy(m->q_b, q_b, (size_t)c->hidden * sizeof(float));
    memcpy(m->k_b, k_b, (size_t)c->hidden * sizeof(float));
    *out = m;
    return FRT_OK;
}

frt_status frt_star_create_from(const frt_star_config *c, const frt_st *st, const char *prefix,
                                frt_star **out)
{
    if (!out) return frt_error(FRT_ERR_INVALID_ARG, "star create: out is NULL");
    *out = NULL;
    FRT_TRY(frt_star_config_check(c));
    if (!st || !prefix) return frt_error(FRT_ERR_INVALID_ARG, "star create: NULL checkpoint");
    const int64_t ws[2] = {c->hidden, c->dim}, bs[1] = {c->hidden};
    frt_tensor t[4] = {{0}};
    frt_status s = frt_w_f32(st, &t[0], 2, ws, "%sq_proj.weight", prefix);
    if (s == FRT_OK) s = frt_w_f32(st, &t[1], 1, bs, "%sq_proj.bias", prefix);
    if (s == FRT_OK) s = frt_w_f32(st, &t[2], 2, ws, "%sk_proj.weight", prefix);
    if (s == FRT_OK) s = frt_w_f32(st, &t[3], 1, bs, "%sk_proj.bias", prefix);
    if (s == FRT_OK) s = frt_star_create(c, t[0].data, t[1].data, t[2].data, t[3].data, out);
    for (int i = 0; i < 4; i++) frt_tensor_free(&t[i]);
    return s;
}

void frt_star_free(frt_star *m)
{
    if (!m) return;
    void *ptrs[] = {m->q_w,
                    m->k_w,
                    m->q_b,
                    m->k_b,
                    m->spa,
                    m->spa_idx,
                    m->buf,
                    m->buf_pool,
                    m->buf_idx,
                    m->early,
                    m->cent,
                    m->weights,
                    m->pts,
                    m->ptw,
                    m->cen,
                    m->newc,
                    m->wsum,
                    m->dist,
                    m->labels,
                    m->perm,
                    m->used,
                    m->abs_mem,
                    m->e,
                    m->q,
                    m->k,
                    m->s,
                    m->acc,
                    m->pooled,
                    m->pair,
                    m->pair_prev,
                    m->origin,
                    m->prev_labels,
                    m->src_pt,
                    m->col_ok,
                    m->is_mean,
                    (void *)m->mptr,
                    m->mw,
                    m->rc,
                    m->rc_next,
                    m->rc_stamp,
                    m->rc_stamp_next,
                    m->rx,
                    m->rx_next};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++) frt_free(ptrs[i]);
    for (int i = 0; i < FRT_STAR_SLOTS; i++) frt_free(m->slots[i].tokens);
    frt_free(m);
}
