/* Internal: the Flash-VStream STAR memory (spatial, temporal, abstract,
 * retrieved) over a stream of frame feature maps, and the snapshots that
 * readers (questions) take of it while the stream goes on.
 *
 * Input: one frame at a time, [p_spa^2, dim] float32 (the compress_size x
 * compress_size map of the vision encoder's patch features, row-major grid).
 *
 * The rules (tools/reference/star_memory.py implements the same, and
 * tests/test_memory.c checks the two agree on recorded sequences):
 * - Spatial: a FIFO of the newest n_spa frames. A frame pushed out of it
 *   enters the long-term memories (temporal, abstract, feature buffer); as in
 *   the released code, the newest frame is in none of them.
 * - Temporal: each long-term frame pooled to p_tem x p_tem and flattened is a
 *   point. The first n_tem points pass through with weight 1. Then each new
 *   point (weight 1) joins the n_tem centroids, which keep their weights
 *   (compat: all weights 1), and the n_tem + 1 points are clustered back to
 *   n_tem by weighted k-means: initial centroids a seeded random subset (a
 *   partial Fisher-Yates shuffle drawing from splitmix64, one generator per
 *   memory that runs on with the stream), or with kmeans_init WARD the
 *   points themselves except that the pair of least Ward cost
 *   w_i w_l / (w_i + w_l) |x_i - x_l|^2 (ties to the lower i, then the lower
 *   l) is merged into its weighted mean in i's place: for n_tem + 1 points
 *   that partition is the k-means optimum, where a random subset drops a
 *   random point into its nearest centroid, which on long streams merges
 *   nearly every frame into one heavy centroid near the grand mean; at most
 *   kmeans_iters iterations of
 *   assignment (squared Euclidean, ties to the lower cluster) and update (the
 *   weighted mean of the members; an empty cluster takes the point farthest
 *   from its assigned centroid, ties to the lower point, each point once;
 *   compat: a random point); the centroids take every update and the loop
 *   stops once the summed centroid movement is below kmeans_tol (the
 *   released code keeps the previous centroids on that last step, a
 *   difference below kmeans_tol). A cluster's weight is the sum of its
 *   members' weights; labels are those of the last assignment.
 * - Abstract: the frame pooled to p_abs x p_abs (p_abs^2 tokens, the frame
 *   mean at p_abs 1). The first n_abs frames fill the n_abs * p_abs^2 slots;
 *   then, with the checkpoint's attention_model q/k projections,
 *   W = alpha * softmax_over_new_tokens(q(M) k(e)^T / sqrt(hidden)),
 *   M <- M * (1 - rowsum W) + W e, e the new frame's tokens. Compat (the
 *   released code, which recomputes the memory from all frames): the frames
 *   after the first n_abs are taken n_abs at a time, e being all their
 *   tokens (the softmax runs over them, so q/k matter even at p_abs 1); a
 *   partial group is applied to the snapshot without being committed.
 * - Retrieved: the min(n_ret, clusters) clusters of largest weight (ties to
 *   the lower cluster index), in that order; for each, the buffered frame
 *   nearest its centroid, compared in the p_tem-pooled space (ties to the
 *   newest frame; two clusters may retrieve the same frame). Compat (the
 *   released code): the frame whose long-term index is the cluster number,
 *   i.e. one of the first n_tem long-term frames, which are kept for it.
 * - Feature buffer: a ring of the last n_buff long-term frames (full
 *   p_spa^2 map plus its p_tem pooling): memory does not grow with the stream.
 *
 * Tokens, in order: abstract (slot order), temporal (cluster order, p_tem^2
 * each), retrieved (p_spa^2 each), spatial (oldest first, p_spa^2 each).
 * After F frames, with S = min(F, n_spa) and L = F - S long-term frames:
 *   min(L, n_abs) p_abs^2 + min(L, n_tem) p_tem^2
 *   + R p_spa^2 + S p_spa^2,  R = min(n_ret, min(L, n_tem)) (0 if n_buff = 0
 *   and not compat).
 * Defaults: 64 tokens after the first frame, 145 after the second, 681 from
 * frame 26 on (25 + 400 + 192 + 64).
 *
 * Arithmetic: the state (centroids, pooled frames, abstract slots) is float32;
 * every reduction and intermediate is float64, rounded once when stored;
 * cluster weights are float64. Distances are summed in an order that depends
 * on the kernel path (AVX-512, AVX2 or scalar: frt_cpu() at each push), so
 * two paths may break a rounding-level near tie differently; equal frames
 * tie exactly on every path, and means are the same bits on all.
 * Deterministic for a given seed and path.
 *
 * Cost (the bar: 5 ms per frame at dim 1024 on one core; frt-bench memory):
 * work whose inputs did not change is not redone. The clustering reuses
 * distances between points that are bit for bit points of the previous
 * clustering, and within one clustering recomputes only the distances to
 * centroids that moved and the means of clusters whose members changed;
 * retrieval keeps each surviving centroid's distances to the buffered
 * frames and computes only newly buffered frames and new centroids (one
 * pass over the buffer for all of them); with one new abstract token the
 * softmax is 1 (W = alpha), so q and k are not computed, and compat keeps
 * q(M) and each token's k until they change. push allocates nothing.
 *
 * Threads: one writer calls frt_star_push (and frt_star_inspect); any number
 * of readers call frt_star_acquire/release/copy at the same time. After each
 * push the writer publishes a complete snapshot into one of FRT_STAR_SLOTS
 * preallocated slots: it picks a slot that is neither the published one nor
 * pinned (refcount 0), fills it and publishes it with one atomic store. A
 * reader pins the published slot (increments its refcount and re-checks it is
 * still the published one, else retries), so it never sees a half-written
 * snapshot, and the writer never waits: if every slot is pinned it skips
 * publishing that frame (counted; the next push publishes the newer state). */
#ifndef FRT_VSTREAM_MEMORY_H
#define FRT_VSTREAM_MEMORY_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "safetensors.h"

#define FRT_STAR_SLOTS 8
/* Most memory one frt_star may take (frt_star_config_check: FRT_ERR_LIMIT);
 * the release's settings at dim 1024 take about 100 MiB. */
#define FRT_STAR_MAX_BYTES (8.0 * (1 << 30))

/* k-means initialisation (config.json "kmeans_init": "random" | "ward", a
 * flashrt extension; absent means random, as in the release). */
typedef enum frt_star_init { FRT_STAR_INIT_RANDOM = 0, FRT_STAR_INIT_WARD = 1 } frt_star_init;

typedef struct frt_star_config {
    int dim;           /* C, mm_hidden_size */
    int p_spa;         /* compress_size: side of the input map (8) */
    int p_tem;         /* compress_long_memory_size (4); divides p_spa */
    int p_abs;         /* compress_Turing_memory_size (1); divides p_spa */
    int n_spa;         /* video_current_memory_length (1) */
    int n_tem;         /* video_long_memory_length (25) */
    int n_abs;         /* video_Turing_memory_length (25) */
    int n_ret;         /* retrieved frames (3, fixed in the release) */
    int n_buff;        /* feature buffer frames (300) */
    int hidden;        /* compress_Turing_hidden_dim (32): q/k width */
    double alpha;      /* compress_Turing_update_ratio (0.2) */
    int kmeans_iters;  /* 10 */
    double kmeans_tol; /* 1e-4 */
    bool compat;       /* the released code: unweighted re-clustering,
                          retrieval by cluster index */
    frt_star_init kmeans_init; /* FRT_STAR_INIT_RANDOM (the release) */
    uint64_t seed;     /* k-means initialisation */
} frt_star_config;

/* The release's settings for feature width dim. */
void frt_star_config_default(frt_star_config *c, int dim);
/* Override from a Flash-VStream config.json: compress_size,
 * compress_long_memory_size, compress_Turing_memory_size,
 * video_current_memory_length, video_long_memory_length,
 * video_Turing_memory_length, compress_Turing_hidden_dim,
 * compress_Turing_update_ratio, mm_hidden_size (dim), kmeans_init;
 * video_sample_type must be "weighted_kmeans" when present. FRT_ERR_FORMAT naming the key on a bad
 * value; c is left unchanged on failure. */
frt_status frt_star_config_read(const frt_config *json, frt_star_config *c);
/* FRT_ERR_INVALID_ARG (saying which) unless every size is sane. */
frt_status frt_star_config_check(const frt_star_config *c);
/* Token count after `frames` pushes (formula above); the most is
 * frt_star_tokens_after(c, INT64_MAX). */
int frt_star_tokens_after(const frt_star_config *c, int64_t frames);

typedef struct frt_star frt_star;

/* Create a memory. q_w, k_w [hidden, dim] and q_b, k_b [hidden] are copied
 * (the caller keeps its buffers). All working memory is allocated here;
 * push allocates nothing. FRT_ERR_INVALID_ARG, FRT_ERR_NOMEM. */
frt_status frt_star_create(const frt_star_config *c, const float *q_w, const float *q_b,
                           const float *k_w, const float *k_b, frt_star **out);
/* Same, with q/k from a checkpoint (prefix + "q_proj.weight", ..., prefix
 * usually "model.attention_model."), any float dtype. */
frt_status frt_star_create_from(const frt_star_config *c, const frt_st *st, const char *prefix,
                                frt_star **out);
/* Free a memory. No reader may hold a snapshot any more. */
void frt_star_free(frt_star *m);

/* Writer: add one frame [p_spa^2, dim] (read only during the call) at stream
 * time time_s, and publish the new snapshot. */
frt_status frt_star_push(frt_star *m, const float *frame, double time_s);

typedef struct frt_star_snapshot {
    const float *tokens; /* [n_tokens, dim], owned by the memory */
    int n_tokens;
    int n_abstract, n_temporal, n_retrieved, n_spatial; /* tokens of each part */
    int dim;
    int64_t frames;        /* frames pushed when it was made */
    double time_s;         /* stream time of the newest frame (0 before any) */
    int n_ret_frames;      /* retrieved frames */
    int64_t ret_index[16]; /* their stream indices (0-based), first n_ret_frames */
} frt_star_snapshot;

/* Reader: pin the latest published snapshot (never NULL: before the first
 * push it has 0 tokens). Valid until frt_star_release; the writer goes on
 * meanwhile. Hold it briefly (or copy): FRT_STAR_SLOTS - 2 pins at once are
 * always honoured without stalling publication. Thread-safe. */
const frt_star_snapshot *frt_star_acquire(frt_star *m);
void frt_star_release(frt_star *m, const frt_star_snapshot *s);
/* Reader: copy the latest snapshot's tokens into dst (room for cap_tokens
 * rows of dim) and its description into *info (tokens pointing at dst).
 * FRT_ERR_LIMIT when cap_tokens is too small. Thread-safe. */
frt_status frt_star_copy(frt_star *m, float *dst, int cap_tokens, frt_star_snapshot *info);
/* Writer: the same copy of the state after the last push, made from the
 * state itself, so it is exact even when that push's snapshot was not
 * published (every slot pinned). Writer thread only. */
frt_status frt_star_copy_state(frt_star *m, float *dst, int cap_tokens, frt_star_snapshot *info);

/* The memory's parts, as bits (ablations hand only some of them on). */
enum {
    FRT_STAR_PART_ABSTRACT = 1,
    FRT_STAR_PART_TEMPORAL = 2,
    FRT_STAR_PART_RETRIEVED = 4,
    FRT_STAR_PART_SPATIAL = 8,
    FRT_STAR_PART_ALL = 15
};
/* Keep only the parts in `parts` of a copied snapshot (tokens: its rows,
 * as frt_star_copy wrote them), moving the kept rows together in their
 * order and updating the counts in *s (a dropped retrieved part also drops
 * ret_index). */
void frt_star_select(frt_star_snapshot *s, float *tokens, unsigned parts);

/* Writer-side view of the state after the last push, for tests and tools.
 * Valid until the next push; writer thread only. */
typedef struct frt_star_state {
    int n_clusters;         /* temporal points / clusters so far */
    const float *centroids; /* [n_clusters, p_tem^2 * dim] */
    const double *weights;  /* [n_clusters] */
    int n_labels;           /* n_tem + 1 when the last push clustered, else 0 */
    const int *labels;      /* [n_labels]: centroids first, the new point last */
    int kmeans_iters_run;   /* iterations the last clustering ran */
    int n_abstract_slots;   /* filled abstract tokens */
    const float *abstract;  /* [n_abstract_slots, dim] */
    int64_t frames, long_frames;
    int64_t skipped_publish; /* pushes whose snapshot was not published */
} frt_star_state;
void frt_star_inspect(const frt_star *m, frt_star_state *out);

#endif
