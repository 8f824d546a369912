/* Internal: loading a model's weights from a checkpoint, for the model files
 * (clip.c, projector.c, llama.c). Names are printf formats so a loader reads
 * like the checkpoint ("%slayers.%d.mlp.up_proj.weight", prefix, i).
 *
 * Every failure names the tensor (missing: FRT_ERR_NOT_FOUND; wrong shape:
 * FRT_ERR_FORMAT with expected and found shapes; a dtype a float op cannot
 * use: FRT_ERR_UNSUPPORTED). Thread-safe: they only read the frt_st. */
#ifndef FRT_VSTREAM_WEIGHTS_H
#define FRT_VSTREAM_WEIGHTS_H

#include <stdbool.h>

#include "config.h"
#include "error.h"
#include "safetensors.h"

/* A view into the mapping (valid until frt_st_close) of a float tensor
 * (F32/F16/BF16) of exactly this shape; used in place, never copied. */
frt_status frt_w_view(const frt_st *st, frt_tensor *out, int ndim, const int64_t *shape,
                      const char *fmt, ...) FRT_PRINTF(5, 6);
/* An owned f32 copy (free with frt_tensor_free) of a float tensor of this
 * shape: norms and biases, which the CPU ops take in f32. */
frt_status frt_w_f32(const frt_st *st, frt_tensor *out, int ndim, const int64_t *shape,
                     const char *fmt, ...) FRT_PRINTF(5, 6);
/* Whether the checkpoint has this tensor (never records an error). */
bool frt_w_has(const frt_st *st, const char *fmt, ...) FRT_PRINTF(2, 3);

/* An integer config value in [lo, hi] that must be present (FRT_ERR_FORMAT
 * naming the key when absent); key is prefix + name. */
frt_status frt_cfg_int_req(const frt_config *c, const char *prefix, const char *name, int64_t lo,
                           int64_t hi, int64_t *out);
/* Same, with a default when absent. */
frt_status frt_cfg_int_def(const frt_config *c, const char *prefix, const char *name, int64_t def,
                           int64_t lo, int64_t hi, int64_t *out);
frt_status frt_cfg_float_def(const frt_config *c, const char *prefix, const char *name, double def,
                             double *out);

#endif
