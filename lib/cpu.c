/* CPU feature detection with cpuid + xgetbv (the OS must save the wide
 * registers, not only the CPU have them). */
#include <cpuid.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "flashrt/core.h"
#include "log.h"

static frt_cpu_info g_detected, g_active;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_desc[128];

static unsigned long long xgetbv0(void)
{
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static void describe(void)
{
    snprintf(g_desc, sizeof g_desc, "%s%s%s%s", g_active.avx512 ? "avx512f avx512bw avx512vl avx512dq " : "",
             g_active.avx512bf16 ? "avx512bf16 " : "", g_active.avx512vnni ? "avx512vnni " : "",
             g_active.avx2 ? "avx2 fma f16c" : "");
    size_t n = strlen(g_desc);
    while (n && g_desc[n - 1] == ' ') g_desc[--n] = '\0';
    if (!n) snprintf(g_desc, sizeof g_desc, "scalar");
}

static void detect(void)
{
    unsigned a, b, c, d;
    frt_cpu_info f = {0};
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        bool osxsave = c & bit_OSXSAVE, avx = c & bit_AVX, fma = c & bit_FMA, f16c = c & bit_F16C;
        unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
        bool ymm_ok = (xcr0 & 0x6) == 0x6, zmm_ok = (xcr0 & 0xe6) == 0xe6;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
            f.avx2 = avx && fma && f16c && ymm_ok && (b & bit_AVX2);
            f.avx512 = f.avx2 && zmm_ok && (b & bit_AVX512F) && (b & bit_AVX512BW) &&
                       (b & bit_AVX512VL) && (b & bit_AVX512DQ);
            f.avx512vnni = f.avx512 && (c & bit_AVX512VNNI);
            unsigned a1, b1, c1, d1;
            if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1))
                f.avx512bf16 = f.avx512 && (a1 & bit_AVX512BF16);
        }
    }
    g_detected = f;
    const char *cap = getenv("FRT_CPU");
    if (cap && *cap) {
        if (!strcmp(cap, "scalar"))
            f = (frt_cpu_info){0};
        else if (!strcmp(cap, "avx2"))
            f = (frt_cpu_info){.avx2 = f.avx2};
        else if (strcmp(cap, "native") != 0)
            FRT_LOGW("FRT_CPU='%s' not understood (scalar|avx2|native); ignored", cap);
    }
    g_active = f;
    describe();
}

const frt_cpu_info *frt_cpu(void)
{
    pthread_once(&g_once, detect);
    return &g_active;
}

void frt_cpu_restrict(const frt_cpu_info *mask)
{
    pthread_once(&g_once, detect);
    if (!mask) {
        g_active = g_detected;
    } else {
        g_active.avx2 = g_detected.avx2 && mask->avx2;
        g_active.avx512 = g_detected.avx512 && mask->avx512;
        g_active.avx512bf16 = g_detected.avx512bf16 && mask->avx512bf16;
        g_active.avx512vnni = g_detected.avx512vnni && mask->avx512vnni;
    }
    describe();
}

const char *frt_cpu_features(void)
{
    pthread_once(&g_once, detect);
    return g_desc;
}

const char *frt_version(void) { return "0.1.0"; }
