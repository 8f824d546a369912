/* Persistent thread pool. Workers spin briefly after a run (kernels are
 * often called back to back, and a condition-variable wake-up costs tens of
 * microseconds), then sleep on a condition variable.
 *
 * The parts ith of a run are claimed from a counter, by the workers and by
 * the caller once its own part is done: on a loaded machine a worker may not
 * get a core for milliseconds, and the caller then runs its part instead of
 * waiting for it. Every part still runs exactly once with the same (ith,
 * nth), so results do not depend on which thread ran it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc.h"
#include "error.h"
#include "log.h"
#include "threadpool.h"

#define SPIN_ITERS 4096

struct frt_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    pthread_mutex_t run_mu; /* one run at a time */
    atomic_uint_fast64_t gen;
    atomic_int next;    /* next unclaimed part; >= n: all claimed */
    atomic_int pending; /* parts 1..n-1 not finished yet */
    atomic_int sleepers;
    atomic_bool stop;
    frt_task_fn fn; /* published by the release of next and gen */
    void *arg;
};

static _Thread_local frt_pool *tl_inside; /* pool whose task this thread runs */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Runs unclaimed parts of the current run until none is left. A claim
 * (acquire) orders the reads of fn and arg after the caller's writes; a
 * worker late from an earlier run can only claim parts of the current
 * one, as next is reset before a run is published. */
static void run_parts(frt_pool *pool)
{
    for (;;) {
        int i = atomic_fetch_add(&pool->next, 1);
        if (i >= pool->n) return;
        pool->fn(pool->arg, i, pool->n);
        if (atomic_fetch_sub(&pool->pending, 1) == 1) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_broadcast(&pool->cv_done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
}

static void *worker_main(void *p)
{
    frt_pool *pool = p;
    tl_inside = pool;
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t g;
        int spins = 0;
        while ((g = atomic_load(&pool->gen)) == seen && !atomic_load(&pool->stop)) {
            if (++spins < SPIN_ITERS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv_work, &pool->mu);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop)) break;
        seen = g;
        run_parts(pool);
    }
    return NULL;
}

static void stop_workers(frt_pool *pool, int started)
{
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, true);
    pthread_cond_broadcast(&pool->cv_work);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < started; i++) pthread_join(pool->threads[i], NULL);
}

frt_pool *frt_pool_create(int nthreads)
{
    if (nthreads < 1) {
        frt_error(FRT_ERR_INVALID_ARG, "thread pool size %d: must be >= 1", nthreads);
        return NULL;
    }
    frt_pool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        frt_error(FRT_ERR_NOMEM, "out of memory creating a thread pool");
        return NULL;
    }
    pool->n = nthreads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_mutex_init(&pool->run_mu, NULL);
    pthread_cond_init(&pool->cv_work, NULL);
    pthread_cond_init(&pool->cv_done, NULL);
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->next, nthreads);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->stop, false);
    if (nthreads > 1) {
        pool->threads = calloc((size_t)nthreads - 1, sizeof *pool->threads);
        if (!pool->threads) {
            frt_pool_free(pool);
            frt_error(FRT_ERR_NOMEM, "out of memory creating a thread pool");
            return NULL;
        }
    }
    for (int i = 1; i < nthreads; i++) {
        if (pthread_create(&pool->threads[i - 1], NULL, worker_main, pool) != 0) {
            stop_workers(pool, i - 1);
            pool->n = 1; /* nothing left to join */
            frt_pool_free(pool);
            frt_error(FRT_ERR_INTERNAL, "could not start thread %d of %d", i, nthreads);
            return NULL;
        }
    }
    return pool;
}

void frt_pool_free(frt_pool *pool)
{
    if (!pool) return;
    if (pool->n > 1 && pool->threads) stop_workers(pool, pool->n - 1);
    free(pool->threads);
    pthread_mutex_destroy(&pool->mu);
    pthread_mutex_destroy(&pool->run_mu);
    pthread_cond_destroy(&pool->cv_work);
    pthread_cond_destroy(&pool->cv_done);
    free(pool);
}

int frt_pool_size(const frt_pool *pool) { return pool ? pool->n : 1; }

void frt_pool_run(frt_pool *pool, frt_task_fn fn, void *arg)
{
    if (!pool || pool->n == 1 || tl_inside == pool) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool->run_mu);
    pool->fn = fn;
    pool->arg = arg;
    atomic_store(&pool->pending, pool->n - 1);
    atomic_store(&pool->next, 1);
    atomic_fetch_add(&pool->gen, 1);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv_work);
        pthread_mutex_unlock(&pool->mu);
    }
    frt_pool *outer = tl_inside;
    tl_inside = pool;
    fn(arg, 0, pool->n);
    run_parts(pool);
    tl_inside = outer;
    for (int spins = 0; atomic_load(&pool->pending) != 0 && spins < SPIN_ITERS; spins++)
        cpu_relax();
    if (atomic_load(&pool->pending) != 0) {
        pthread_mutex_lock(&pool->mu);
        while (atomic_load(&pool->pending) != 0) pthread_cond_wait(&pool->cv_done, &pool->mu);
        pthread_mutex_unlock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->run_mu);
}

/* ---- the process-wide pool ---------------------------------------------- */

static pthread_mutex_t g_default_mu = PTHREAD_MUTEX_INITIALIZER;
static frt_pool *_Atomic g_default;
static int g_threads; /* 0: not decided yet */
static frt_pool g_inline_pool = {.n = 1};

static int threads_from_env(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    const char *e = getenv("FRT_THREADS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == '\0' && v >= 1 && v <= 1024) return (int)v;
        FRT_LOGW("FRT_THREADS='%s' is not a thread count in 1..1024; using %ld", e, cores);
    }
    return (int)cores;
}

int frt_num_threads(void)
{
    pthread_mutex_lock(&g_default_mu);
    if (g_threads == 0) g_threads = threads_from_env();
    int n = g_threads;
    pthread_mutex_unlock(&g_default_mu);
    return n;
}

frt_status frt_set_num_threads(int n)
{
    if (n < 1 || n > 1024) return frt_error(FRT_ERR_INVALID_ARG, "thread count %d not in 1..1024", n);
    pthread_mutex_lock(&g_default_mu);
    frt_pool *old = atomic_exchange(&g_default, NULL);
    if (old != &g_inline_pool) frt_pool_free(old);
    g_threads = n;
    pthread_mutex_unlock(&g_default_mu);
    return FRT_OK;
}

frt_pool *frt_pool_default(void)
{
    frt_pool *p = atomic_load(&g_default);
    if (p) return p;
    pthread_mutex_lock(&g_default_mu);
    p = atomic_load(&g_default);
    if (!p) {
        if (g_threads == 0) g_threads = threads_from_env();
        p = frt_pool_create(g_threads);
        if (!p) {
            FRT_LOGW("could not start %d threads (%s); running single-threaded", g_threads,
                     frt_last_error());
            p = &g_inline_pool;
        }
        atomic_store(&g_default, p);
    }
    pthread_mutex_unlock(&g_default_mu);
    return p;
}
