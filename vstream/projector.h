/* LLaVA's multimodal projector and Flash-VStream's spatial pooling.
 *
 * Projector (mm_projector_type): "linear" (one Linear, tensors
 * <prefix>weight / bias) or "mlp<N>x_gelu" (N Linears with exact-erf GELU
 * between them, an nn.Sequential: tensors <prefix>0.*, <prefix>2.*, ...).
 * Sizes from the config: mm_hidden_size -> hidden_size. Default prefix
 * "model.mm_projector.". Linear weights are used in place (F32/F16/BF16),
 * biases converted to f32 at open.
 *
 * Ownership and threads: frt_projector_open borrows st (it must outlive the
 * projector) and reads cfg only during the call. The projector owns its
 * working memory (max_rows rows, reused), so one projector must not run
 * from two threads at once. Host memory: the backend must be the CPU one (another is
 * FRT_ERR_UNSUPPORTED at open). */
#ifndef FRT_VSTREAM_PROJECTOR_H
#define FRT_VSTREAM_PROJECTOR_H

#include "backend.h"
#include "config.h"
#include "safetensors.h"

typedef struct frt_projector frt_projector;

/* prefix NULL: "model.mm_projector."; max_rows: rows per internal step (a
 * forward of more rows runs in steps), 0 for 1024. be NULL: CPU.
 * FRT_ERR_FORMAT for bad or missing sizes (naming the key) or a tensor of
 * the wrong shape, FRT_ERR_NOT_FOUND for a missing tensor, FRT_ERR_UNSUPPORTED
 * for another projector type, FRT_ERR_NOMEM. */
frt_status frt_projector_open(const frt_st *st, const frt_config *cfg, const char *prefix,
                              int64_t max_rows, frt_backend *be, frt_projector **out);
void frt_projector_close(frt_projector *p);

int64_t frt_projector_in_dim(const frt_projector *p);
int64_t frt_projector_out_dim(const frt_projector *p);

/* x [n, in_dim] -> out [n, out_dim] (both the caller's; must not overlap). */
frt_status frt_projector_forward(frt_projector *p, const float *x, int64_t n, float *out);

/* Flash-VStream's compress_spatial_features ("mean"): x [grid * grid, c]
 * patch tokens of a row-major grid -> out [side * side, c], the mean of each
 * (grid / side) x (grid / side) block. FRT_ERR_INVALID_ARG when side does
 * not divide grid. */
frt_status frt_grid_avg_pool(const float *x, int64_t grid, int64_t c, int64_t side, float *out);

#endif
