/* A minimal stand-in for the parts of Criterion that tests/test_cuda.c uses,
 * so the CUDA tests build on a GPU machine that has nvcc but not Criterion
 * (tools/cuda-check/run.sh). Tests register themselves at load time and run
 * in order in one process; a failed assertion or a skip ends that test. */
#ifndef FRT_CRITERION_SHIM_H
#define FRT_CRITERION_SHIM_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void shim_register(const char *suite, const char *name, void (*fn)(void));
void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));
void shim_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#define Test(suite, name)                                                                       \
    static void suite##_##name##_body(void);                                                    \
    __attribute__((constructor)) static void suite##_##name##_reg(void)                         \
    {                                                                                           \
        shim_register(#suite, #name, suite##_##name##_body);                                    \
    }                                                                                           \
    static void suite##_##name##_body(void)

#define cr_assert(cond, ...)                                                                    \
    do {                                                                                        \
        if (!(cond)) shim_fail(__FILE__, __LINE__, #cond, "" __VA_ARGS__);                      \
    } while (0)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_null(p, ...) cr_assert((p) == NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)
#define cr_skip_test(...) shim_skip("" __VA_ARGS__)

#endif
