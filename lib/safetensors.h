/* Internal: safetensors checkpoints, mmap'ed and validated.
 *
 * frt_st_open accepts a single .safetensors file, a sharded checkpoint's
 * model.safetensors.index.json, or a model directory (index preferred,
 * then model.safetensors). Every header is validated before any tensor is
 * handed out: header length within the file and a cap, valid JSON object,
 * known dtype, shape product * dtype size == byte span, offsets in bounds,
 * ordered and not overlapping, no duplicate names (also across shards),
 * every shard named by the index present and every indexed tensor found in
 * its shard. Errors carry the file, tensor and byte offset
 * (frt_last_error_detail). Tensors are views into the mapping: they stay
 * valid until frt_st_close. */
#ifndef FRT_SAFETENSORS_H
#define FRT_SAFETENSORS_H

#include "tensor.h"

typedef struct frt_st frt_st;

frt_status frt_st_open(const char *path, frt_st **out);
void frt_st_close(frt_st *st);

/* Number of tensors and the i-th name (insertion order of the files). */
int64_t frt_st_count(const frt_st *st);
const char *frt_st_name(const frt_st *st, int64_t i);

/* Look a tensor up by name: a CPU view (owns_data false). FRT_ERR_NOT_FOUND
 * (message names the tensor) when absent. */
frt_status frt_st_get(const frt_st *st, const char *name, frt_tensor *out);
/* Same, also checking dtype-independent shape: ndim and each dim must match
 * (FRT_ERR_FORMAT naming tensor, expected and found shape). */
frt_status frt_st_get_shaped(const frt_st *st, const char *name, int ndim, const int64_t *shape,
                             frt_tensor *out);
/* Copy a tensor of any float dtype to a new f32 tensor (owned). */
frt_status frt_st_get_f32(const frt_st *st, const char *name, frt_tensor *out);

#endif
