/* Where threads meet: several application threads drive flashrt at once
 * (the default pool serialises their runs), pools are created and freed
 * while others run, and the default pool is resized between runs. Checked
 * for data races by the ThreadSanitizer build (ctest -L tsan). Prints
 * "N passed, N failed". */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "threadpool.h"

typedef struct {
    long n;
    long *out; /* one slot per element: written by exactly one worker */
} fill_job;

static void fill_task(void *arg, int ith, int nth)
{
    fill_job *j = arg;
    long b, e;
    frt_split_range(j->n, ith, nth, &b, &e);
    for (long i = b; i < e; i++) j->out[i] = i * 3 + 1;
}

static int check_fill(frt_pool *pool, long n)
{
    long *out = calloc((size_t)n, sizeof *out);
    if (!out) return 0;
    fill_job j = {n, out};
    frt_pool_run(pool, fill_task, &j);
    int ok = 1;
    for (long i = 0; i < n; i++) ok &= out[i] == i * 3 + 1;
    free(out);
    return ok;
}

static atomic_int g_failures;

static void *app_thread(void *arg)
{
    long seed = (long)(intptr_t)arg;
    for (int r = 0; r < 200; r++)
        if (!check_fill(frt_pool_default(), 1000 + (seed * 7919 + r * 31) % 5000))
            atomic_fetch_add(&g_failures, 1);
    frt_pool *own = frt_pool_create(3);
    if (!own) {
        atomic_fetch_add(&g_failures, 1);
        return NULL;
    }
    for (int r = 0; r < 100; r++)
        if (!check_fill(own, 777 + r)) atomic_fetch_add(&g_failures, 1);
    frt_pool_free(own);
    return NULL;
}

int main(void)
{
    int passed = 0, failed = 0;

    /* 1: four application threads share the default pool */
    pthread_t th[4];
    for (long i = 0; i < 4; i++) pthread_create(&th[i], NULL, app_thread, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    if (atomic_load(&g_failures) == 0)
        passed++;
    else {
        failed++;
        fprintf(stderr, "shared default pool: %d wrong results\n", atomic_load(&g_failures));
    }

    /* 2: resizing the default pool between runs */
    int ok = 1;
    for (int n = 1; n <= 4; n++) {
        frt_set_num_threads(n);
        ok &= frt_pool_size(frt_pool_default()) == n && check_fill(frt_pool_default(), 4321);
    }
    ok ? passed++ : failed++;
    if (!ok) fprintf(stderr, "resizing the default pool gave wrong results\n");

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
