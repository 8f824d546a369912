/* Internal: dtypes, tensors and f16/bf16 <-> f32 conversion.
 *
 * Shapes are outermost-first like PyTorch (a Linear weight is [out, in]);
 * strides are in elements, not bytes. A tensor either owns its data (freed
 * by frt_tensor_free) or is a view into memory owned elsewhere (an mmap'ed
 * checkpoint, another tensor, the caller's buffer). */
#ifndef FRT_TENSOR_H
#define FRT_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashrt/core.h"

typedef enum frt_dtype {
    FRT_F32 = 0,
    FRT_F16,
    FRT_BF16,
    FRT_I32,
    FRT_I8,
    FRT_DTYPE_COUNT
} frt_dtype;

#define FRT_MAX_DIMS 4

typedef enum frt_device { FRT_DEVICE_CPU = 0, FRT_DEVICE_CUDA = 1 } frt_device;

typedef struct frt_tensor {
    void *data;
    frt_dtype dtype;
    frt_device device;
    int ndim;
    int64_t shape[FRT_MAX_DIMS];
    int64_t stride[FRT_MAX_DIMS]; /* elements */
    bool owns_data;
} frt_tensor;

size_t frt_dtype_size(frt_dtype t);
/* "F32", "F16", "BF16", "I32", "I8" (safetensors spelling); "?" if invalid. */
const char *frt_dtype_name(frt_dtype t);
/* Parse a safetensors dtype string; false if unknown. */
bool frt_dtype_parse(const char *s, frt_dtype *out);

/* Fill shape and contiguous strides. ndim in [1, FRT_MAX_DIMS]. */
frt_tensor frt_tensor_view(void *data, frt_dtype dtype, int ndim, const int64_t *shape);
/* Allocate a contiguous host tensor (uninitialised); FRT_ERR_* on failure. */
frt_status frt_tensor_alloc(frt_tensor *t, frt_dtype dtype, int ndim, const int64_t *shape);
/* Frees owned data; views are left alone. Safe on a zeroed tensor. */
void frt_tensor_free(frt_tensor *t);

int64_t frt_tensor_numel(const frt_tensor *t);
size_t frt_tensor_nbytes(const frt_tensor *t); /* of a contiguous tensor */
bool frt_tensor_is_contiguous(const frt_tensor *t);
/* Rows and columns when seen as 2-D [numel/last, last]. */
static inline int64_t frt_tensor_cols(const frt_tensor *t) { return t->shape[t->ndim - 1]; }
static inline int64_t frt_tensor_rows(const frt_tensor *t)
{
    int64_t r = 1;
    for (int i = 0; i < t->ndim - 1; i++) r *= t->shape[i];
    return r;
}

/* Scalar conversions (round-to-nearest-even on the way down; NaN kept). */
float frt_f16_to_f32(uint16_t h);
uint16_t frt_f32_to_f16(float f);
static inline float frt_bf16_to_f32(uint16_t b)
{
    union {
        uint32_t u;
        float f;
    } v = {(uint32_t)b << 16};
    return v.f;
}
uint16_t frt_f32_to_bf16(float f);

/* Row conversions, vectorised (AVX-512 / AVX2+F16C / scalar by CPU). */
void frt_f16_to_f32_row(const uint16_t *src, float *dst, size_t n);
void frt_f32_to_f16_row(const float *src, uint16_t *dst, size_t n);
void frt_bf16_to_f32_row(const uint16_t *src, float *dst, size_t n);
void frt_f32_to_bf16_row(const float *src, uint16_t *dst, size_t n);
/* Any of f32/f16/bf16 to f32 (f32 is a copy). */
void frt_to_f32_row(frt_dtype src_type, const void *src, float *dst, size_t n);

#endif
