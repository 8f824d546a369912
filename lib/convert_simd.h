/* Internal: SIMD bodies of the row conversions (lib/convert_*.c). Each
 * converts a prefix of the row and returns how many elements it did; the
 * caller finishes the tail with the scalar code. */
#ifndef FRT_CONVERT_SIMD_H
#define FRT_CONVERT_SIMD_H

#include <stddef.h>
#include <stdint.h>

size_t frt_f16_to_f32_avx512(const uint16_t *src, float *dst, size_t n);
size_t frt_f32_to_f16_avx512(const float *src, uint16_t *dst, size_t n);
size_t frt_bf16_to_f32_avx512(const uint16_t *src, float *dst, size_t n);
size_t frt_f32_to_bf16_avx512(const float *src, uint16_t *dst, size_t n);
size_t frt_f16_to_f32_avx2(const uint16_t *src, float *dst, size_t n);
size_t frt_f32_to_f16_avx2(const float *src, uint16_t *dst, size_t n);
size_t frt_bf16_to_f32_avx2(const uint16_t *src, float *dst, size_t n);
size_t frt_f32_to_bf16_avx2(const float *src, uint16_t *dst, size_t n);

#endif
