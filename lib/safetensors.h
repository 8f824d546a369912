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
 * valid until frt_st_close. The mapping is read-only: never write through
 * a view.
 *
 * Policies:
 * - dtypes: F32, F16, BF16, I32, I8 are handed out. The other dtypes the
 *   format defines (F64, I64, U64, U32, I16, U16, U8, BOOL, F8_*, F6_*, F4,
 *   C64) load and have their byte spans validated like any other, and
 *   frt_st_get refuses them with FRT_ERR_UNSUPPORTED naming the dtype, so a
 *   checkpoint with an I64 buffer still opens. Any other dtype string is
 *   FRT_ERR_FORMAT at open.
 * - shapes: a scalar (shape []) is handed out as shape [1]; a tensor with
 *   more than FRT_MAX_DIMS dims loads, and frt_st_get refuses it with
 *   FRT_ERR_UNSUPPORTED. Element counts are checked left to right for
 *   overflow (FRT_ERR_FORMAT).
 * - offsets: gaps between tensors and trailing bytes after the last one are
 *   allowed; overlapping non-empty tensors are not. Empty tensors may share
 *   an offset.
 * - alignment: safetensors aligns only the data section, so a tensor whose
 *   data is not aligned to its element size is copied once at open (owned
 *   by the frt_st, logged as a warning) and handed out from the copy.
 * - shards: every shard name in the index's weight_map must be a plain file
 *   name in the index's directory (no '/' or '..'); shards are read in
 *   sorted name order, so frt_st_name lists shard 1 first. Tensors in a shard
 *   but not in the index are kept (with a warning).
 * - a header above 100 MiB is FRT_ERR_FORMAT (no checkpoint has one; it is
 *   nearly always a file that is not safetensors); the index is capped at
 *   16 MiB and a checkpoint at 2^20 tensors (FRT_ERR_LIMIT). A shape whose
 *   element count, byte count or strides (the product of its non-zero dims)
 *   overflow is FRT_ERR_FORMAT.
 * Statuses: FRT_ERR_NOT_FOUND for a missing path, shard or tensor,
 * FRT_ERR_IO for open/mmap failures, FRT_ERR_FORMAT for malformed files,
 * FRT_ERR_NOMEM; *out is written only on success. After open, every
 * function here only reads the frt_st: it is safe to share between threads.
 * Opening from several threads at once works, but cJSON records a parse
 * failure in a global (a race we never read; TSan may report it). */
#ifndef FRT_SAFETENSORS_H
#define FRT_SAFETENSORS_H

#include "tensor.h"

typedef struct frt_st frt_st;

frt_status frt_st_open(const char *path, frt_st **out);
void frt_st_close(frt_st *st);

/* A checkpoint over tensors already in memory (benchmarks with random
 * weights at real sizes, tests), looked up exactly like a file's. The names
 * are copied; the data is borrowed: it must stay valid, unchanged, until
 * frt_st_close. Each tensor's data must be aligned to its element size
 * (frt_alloc gives that). label names the checkpoint in messages.
 * FRT_ERR_INVALID_ARG for a NULL name or data (with elements), a dtype other
 * than F32/F16/BF16/I32/I8, ndim outside [1, FRT_MAX_DIMS], a negative dim
 * or misaligned data; FRT_ERR_FORMAT for a duplicate name; FRT_ERR_NOMEM. */
typedef struct frt_st_mem_tensor {
    const char *name;
    frt_dtype dtype;
    int ndim;
    int64_t shape[FRT_MAX_DIMS];
    const void *data;
} frt_st_mem_tensor;

frt_status frt_st_from_memory(const frt_st_mem_tensor *tensors, int64_t n, const char *label,
                              frt_st **out);

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
/* Copy a tensor of any float dtype (F32, F16, BF16) to a new f32 tensor
 * (owned: free with frt_tensor_free). Other dtypes: FRT_ERR_UNSUPPORTED. */
frt_status frt_st_get_f32(const frt_st *st, const char *name, frt_tensor *out);

#endif
