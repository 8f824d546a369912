/* Runner for the Criterion stand-in (criterion/criterion.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "criterion/criterion.h"

enum { MAX_TESTS = 256 };
static struct {
    const char *suite, *name;
    void (*fn)(void);
} tests[MAX_TESTS];
static int n_tests;
static jmp_buf env;

void shim_register(const char *suite, const char *name, void (*fn)(void))
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "criterion shim: more than %d tests\n", MAX_TESTS);
        exit(2);
    }
    tests[n_tests].suite = suite;
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

void shim_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "  %s:%d: assertion failed: %s", file, line, expr);
    if (fmt[0]) {
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    longjmp(env, 1);
}

void shim_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("  skipped: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    longjmp(env, 2);
}

int main(int argc, char **argv)
{
    const char *only = argc > 1 ? argv[1] : NULL;
    int pass = 0, fail = 0, skip = 0;
    for (int i = 0; i < n_tests; i++) {
        if (only && !strstr(tests[i].name, only)) continue;
        fprintf(stderr, "[RUN ] %s::%s\n", tests[i].suite, tests[i].name);
        int r = setjmp(env);
        if (r == 0) {
            tests[i].fn();
            pass++;
            fprintf(stderr, "[PASS] %s::%s\n", tests[i].suite, tests[i].name);
        } else if (r == 1) {
            fail++;
            fprintf(stderr, "[FAIL] %s::%s\n", tests[i].suite, tests[i].name);
        } else {
            skip++;
            fprintf(stderr, "[SKIP] %s::%s\n", tests[i].suite, tests[i].name);
        }
    }
    fprintf(stderr, "Synthesis: Tested: %d | Passing: %d | Failing: %d | Skipped: %d\n",
            pass + fail + skip, pass, fail, skip);
    return fail ? 1 : 0;
}
