/* Internal: the STAR memory's vector kernels (memory_avx512.c,
 * memory_avx2.c; memory.c holds the scalar twins and picks one with
 * frt_cpu()). Every reduction is float64, as in the scalar code.
 *
 * sqdist: sum over n of (a - b)^2. sqdist_multi: the same for one x against
 * nc <= 4 vectors c[0..nc), reading x once. wmean: dst = (float)((0 + w[0]
 * x[0] + w[1] x[1] + ...) / ws) elementwise, each product and sum rounded
 * separately in the order given, so every ISA gives the scalar code's bits.
 * Within one ISA, sqdist(a, b) is bit for bit sqdist_multi's value for the
 * same pair (the memory mixes them, and equal frames must tie exactly). */
#ifndef FRT_VSTREAM_MEMORY_SIMD_H
#define FRT_VSTREAM_MEMORY_SIMD_H

double frt_star_sqdist_avx512(const float *a, const float *b, long n);
void frt_star_sqdist_multi_avx512(const float *x, const float *const *c, int nc, long n,
                                  double *out);
void frt_star_wmean_avx512(const float *const *x, const double *w, int cnt, double ws, long n,
                           float *dst);

double frt_star_sqdist_avx2(const float *a, const float *b, long n);
void frt_star_sqdist_multi_avx2(const float *x, const float *const *c, int nc, long n, double *out);
void frt_star_wmean_avx2(const float *const *x, const double *w, int cnt, double ws, long n,
                         float *dst);

#endif
