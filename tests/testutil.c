#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
void tu_check_leaks(void)
{
    if (__lsan_do_recoverable_leak_check()) {
        fprintf(stderr, "memory leaked (report above)\n");
        abort();
    }
}
#else
void tu_check_leaks(void) {}
#endif

const frt_cpu_info tu_isas[TU_N_ISAS] = {
    {0},
    {.avx2 = true},
    {.avx2 = true, .avx512 = true},
    {.avx2 = true, .avx512 = true, .avx512bf16 = true, .avx512vnni = true}};
const char *const tu_isa_names[TU_N_ISAS] = {"scalar", "avx2", "avx512", "avx512bf16"};

bool tu_use_isa(int i)
{
    frt_cpu_restrict(&tu_isas[i]);
    const frt_cpu_info *c = frt_cpu();
    return c->avx2 == tu_isas[i].avx2 && c->avx512 == tu_isas[i].avx512 &&
           c->avx512bf16 == tu_isas[i].avx512bf16;
}

uint64_t tu_seed(void)
{
    static uint64_t seed;
    if (!seed) {
        const char *e = getenv("FRT_TEST_SEED");
        if (e && *e)
            seed = strtoull(e, NULL, 10);
        else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            seed = ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)getpid()) | 1;
        }
        fprintf(stderr, "test seed: FRT_TEST_SEED=%llu\n", (unsigned long long)seed);
    }
    return seed;
}

void tu_rng_init(tu_rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ull + 1;
}

uint64_t tu_next(tu_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float tu_uniform(tu_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((tu_next(r) >> 40) * 0x1p-24);
}

float tu_normal(tu_rng *r)
{
    double u1 = ((tu_next(r) >> 11) + 1) * 0x1p-53, u2 = (tu_next(r) >> 11) * 0x1p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

void tu_fill_uniform(tu_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = tu_uniform(r, lo, hi);
}

double tu_max_rel_err(const float *a, const float *b, size_t n, double floor)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double m = fabs((double)b[i]);
        double e = d / (m > floor ? m : floor);
        if (!(e <= worst)) worst = e; /* NaN propagates as the worst */
        if (isnan(e)) return INFINITY;
    }
    return worst;
}

void tu_poison(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = NAN;
}

char *tu_tmpdir(void)
{
    char tmpl[] = "/tmp/frt-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

void tu_rmtree(const char *path)
{
    char cmd[4200];
    if (!path || strncmp(path, "/tmp/frt-test-", 14) != 0) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

char *tu_write_file(const char *dir, const char *name, const void *data, size_t n)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (!p) return NULL;
    snprintf(p, len, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        if (f) fclose(f);
        free(p);
        return NULL;
    }
    fclose(f);
    return p;
}
