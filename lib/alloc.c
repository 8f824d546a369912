/* Aligned allocation. Large buffers are advised as transparent huge pages:
 * on the build machines the first touch of a 4 KiB page costs ~11 us. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc.h"
#include "error.h"

#define FRT_HUGE_ALIGN (2u << 20)

static long g_fail_after; /* fault injection: 0 off, n: the n-th call fails */
static long g_calls;      /* atomic: answering and pool threads allocate too */

void frt_alloc_fail_after(long n) { g_fail_after = n; }

long frt_alloc_calls(void) { return __atomic_load_n(&g_calls, __ATOMIC_RELAXED); }

static bool injected_failure(void)
{
    if (g_fail_after <= 0) return false;
    return --g_fail_after == 0;
}

void *frt_alloc(size_t size)
{
    __atomic_fetch_add(&g_calls, 1, __ATOMIC_RELAXED);
    if (injected_failure()) {
        frt_error(FRT_ERR_NOMEM, "out of memory allocating %zu bytes (injected)", size);
        return NULL;
    }
    size_t align = size >= FRT_HUGE_ALIGN ? FRT_HUGE_ALIGN : FRT_ALIGN;
    size_t rounded;
    if (!frt_add_size(size ? size : 1, align - 1, &rounded)) {
        frt_error(FRT_ERR_NOMEM, "allocation of %zu bytes overflows", size);
        return NULL;
    }
    rounded &= ~(align - 1);
    void *p = aligned_alloc(align, rounded);
    if (!p) {
        frt_error(FRT_ERR_NOMEM, "out of memory allocating %zu bytes", size);
        return NULL;
    }
#ifdef MADV_HUGEPAGE
    if (align == FRT_HUGE_ALIGN) madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

void *frt_calloc(size_t count, size_t size)
{
    size_t total;
    if (!frt_mul_size(count, size, &total)) {
        frt_error(FRT_ERR_NOMEM, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = frt_alloc(total);
    if (p) memset(p, 0, total);
    return p;
}

void frt_free(void *p) { free(p); }
