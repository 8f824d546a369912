/* Internal: a persistent thread pool with a parallel-for.
 *
 * frt_pool_run(pool, fn, arg) calls fn(arg, ith, nth) once for every ith in
 * [0, nth) -- the caller's thread runs ith == 0 -- and returns when all have
 * returned. Workers sleep between runs (no busy-waiting past a short spin).
 * One run at a time per pool: runs from several threads are serialised. A
 * run from inside a worker of the same pool executes inline with nth == 1. */
#ifndef FRT_THREADPOOL_H
#define FRT_THREADPOOL_H

#include "flashrt/core.h"

typedef struct frt_pool frt_pool;
typedef void (*frt_task_fn)(void *arg, int ith, int nth);

/* nthreads >= 1 (including the caller). NULL and FRT_ERR_NOMEM or
 * FRT_ERR_INTERNAL (thread creation) on failure. */
frt_pool *frt_pool_create(int nthreads);
void frt_pool_free(frt_pool *pool);
int frt_pool_size(const frt_pool *pool);
void frt_pool_run(frt_pool *pool, frt_task_fn fn, void *arg);

/* The process-wide pool, created on first use with frt_num_threads()
 * threads. Never NULL: falls back to a 1-thread pool that runs inline. */
frt_pool *frt_pool_default(void);

/* Split [0, n) into nth near-equal contiguous ranges; range of worker ith. */
static inline void frt_split_range(long n, int ith, int nth, long *begin, long *end)
{
    long base = n / nth, rem = n % nth;
    *begin = ith * base + (ith < rem ? ith : rem);
    *end = *begin + base + (ith < rem ? 1 : 0);
}

#endif
