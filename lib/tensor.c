/* dtypes, tensors and scalar / row-wise f16 and bf16 conversion. */
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "convert_simd.h"
#include "cpu.h"
#include "error.h"
#include "tensor.h"

static const struct {
    const char *name;
    size_t size;
} dtype_info[FRT_DTYPE_COUNT] = {
    [FRT_F32] = {"F32", 4}, [FRT_F16] = {"F16", 2}, [FRT_BF16] = {"BF16", 2},
    [FRT_I32] = {"I32", 4}, [FRT_I8] = {"I8", 1},
};

size_t frt_dtype_size(frt_dtype t) { return (unsigned)t < FRT_DTYPE_COUNT ? dtype_info[t].size : 0; }

const char *frt_dtype_name(frt_dtype t)
{
    return (unsigned)t < FRT_DTYPE_COUNT ? dtype_info[t].name : "?";
}

bool frt_dtype_parse(const char *s, frt_dtype *out)
{
    for (int i = 0; i < FRT_DTYPE_COUNT; i++)
        if (!strcmp(s, dtype_info[i].name)) {
            *out = (frt_dtype)i;
            return true;
        }
    return false;
}

frt_tensor frt_tensor_view(void *data, frt_dtype dtype, int ndim, const int64_t *shape)
{
    frt_tensor t = {.data = data, .dtype = dtype, .device = FRT_DEVICE_CPU, .ndim = ndim};
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = s;
        s *= shape[i];
    }
    return t;
}

frt_status frt_tensor_alloc(frt_tensor *t, frt_dtype dtype, int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > FRT_MAX_DIMS || (unsigned)dtype >= FRT_DTYPE_COUNT)
        return frt_error(FRT_ERR_INVALID_ARG, "tensor of %d dims / dtype %d not supported", ndim,
                         (int)dtype);
    size_t bytes = frt_dtype_size(dtype);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || !frt_mul_size(bytes, (size_t)shape[i], &bytes))
            return frt_error(FRT_ERR_INVALID_ARG, "tensor shape too large or negative");
    void *p = frt_alloc(bytes);
    if (!p) return FRT_ERR_NOMEM;
    *t = frt_tensor_view(p, dtype, ndim, shape);
    t->owns_data = true;
    return FRT_OK;
}

void frt_tensor_free(frt_tensor *t)
{
    if (t && t->owns_data && t->device == FRT_DEVICE_CPU) frt_free(t->data);
    if (t) {
        t->data = NULL;
        t->owns_data = false;
    }
}

int64_t frt_tensor_numel(const frt_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t frt_tensor_nbytes(const frt_tensor *t)
{
    return (size_t)frt_tensor_numel(t) * frt_dtype_size(t->dtype);
}

bool frt_tensor_is_contiguous(const frt_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

/* ---- scalar conversions --------------------------------------------------- */

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float frt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return u2f(sign | 0x7f800000 | (man << 13)); /* inf / nan */
    if (exp == 0) { /* zero / subnormal: man * 2^-24 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t frt_f32_to_f16(float f)
{
    uint32_t u = f2u(f), sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffff;
    if (a >= 0x7f800000) return (uint16_t)(sign | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0));
    if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* rounds past 65504: inf */
    if (a < 0x38800000) {                                   /* subnormal half or zero */
        /* adding 0.5 makes the FPU round the mantissa at the 2^-24 quantum */
        float v = u2f(a) + 0.5f;
        return (uint16_t)(sign | (f2u(v) - f2u(0.5f)));
    }
    uint32_t mant_odd = (a >> 13) & 1;
    a += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
    return (uint16_t)(sign | (a >> 13));
}

uint16_t frt_f32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---- row conversions ------------------------------------------------------ */

void frt_f16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    const frt_cpu_info *cpu = frt_cpu();
    size_t i = 0;
    if (cpu->avx512)
        i = frt_f16_to_f32_avx512(src, dst, n);
    else if (cpu->avx2)
        i = frt_f16_to_f32_avx2(src, dst, n);
    for (; i < n; i++) dst[i] = frt_f16_to_f32(src[i]);
}

void frt_f32_to_f16_row(const float *src, uint16_t *dst, size_t n)
{
    const frt_cpu_info *cpu = frt_cpu();
    size_t i = 0;
    if (cpu->avx512)
        i = frt_f32_to_f16_avx512(src, dst, n);
    else if (cpu->avx2)
        i = frt_f32_to_f16_avx2(src, dst, n);
    for (; i < n; i++) dst[i] = frt_f32_to_f16(src[i]);
}

void frt_bf16_to_f32_row(const uint16_t *src, float *dst, size_t n)
{
    const frt_cpu_info *cpu = frt_cpu();
    size_t i = 0;
    if (cpu->avx512)
        i = frt_bf16_to_f32_avx512(src, dst, n);
    else if (cpu->avx2)
        i = frt_bf16_to_f32_avx2(src, dst, n);
    for (; i < n; i++) dst[i] = frt_bf16_to_f32(src[i]);
}

void frt_f32_to_bf16_row(const float *src, uint16_t *dst, size_t n)
{
    const frt_cpu_info *cpu = frt_cpu();
    size_t i = 0;
    if (cpu->avx512)
        i = frt_f32_to_bf16_avx512(src, dst, n);
    else if (cpu->avx2)
        i = frt_f32_to_bf16_avx2(src, dst, n);
    for (; i < n; i++) dst[i] = frt_f32_to_bf16(src[i]);
}

void frt_to_f32_row(frt_dtype src_type, const void *src, float *dst, size_t n)
{
    switch (src_type) {
    case FRT_F16: frt_f16_to_f32_row(src, dst, n); break;
    case FRT_BF16: frt_bf16_to_f32_row(src, dst, n); break;
    default: memmove(dst, src, n * sizeof(float)); break;
    }
}
