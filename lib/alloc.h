/* Internal: aligned allocation and overflow-checked size arithmetic. */
#ifndef FRT_ALLOC_H
#define FRT_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashrt/core.h"

/* Alignment of every buffer flashrt allocates: one AVX-512 register / cache line. */
#define FRT_ALIGN 64

/* Allocate size bytes aligned to FRT_ALIGN (size 0 gives a valid unique
 * pointer). Returns NULL and records FRT_ERR_NOMEM on failure. Buffers of
 * 2 MiB or more are advised as huge pages (first touch of 4 KiB pages is
 * expensive on the build machines). Free with frt_free. */
void *frt_alloc(size_t size);
/* Same, zero-filled. */
void *frt_calloc(size_t count, size_t size);
void frt_free(void *p);

/* Test hook: make the n-th allocation from now fail (n >= 1); 0 disables.
 * Used by the fault-injection tests. Not thread-safe. */
void frt_alloc_fail_after(long n);
/* Test hook: frt_alloc calls so far, from every thread (the fault-injection
 * tests check that a sweep failed each allocation of a load in turn). */
long frt_alloc_calls(void);

/* a*b and a+b into *out; false on overflow (nothing is written then). */
static inline bool frt_mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool frt_add_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
static inline bool frt_mul_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}

#endif
