/* Leveled logging to stderr or a user callback. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static atomic_int g_level = -1; /* -1: not yet read from FRT_LOG */
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static frt_log_fn g_cb;
static void *g_cb_user;

static int level_from_env(void)
{
    const char *e = getenv("FRT_LOG");
    if (!e || !*e) return FRT_LOG_WARN;
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (!strcasecmp(e, names[i])) return i;
    if (!strcasecmp(e, "warning")) return FRT_LOG_WARN;
    fprintf(stderr, "flashrt: FRT_LOG='%s' not understood (debug|info|warn|error|off); using warn\n", e);
    return FRT_LOG_WARN;
}

frt_log_level frt_log_get_level(void)
{
    int l = atomic_load(&g_level);
    if (l < 0) {
        int want = level_from_env(), expected = -1;
        atomic_compare_exchange_strong(&g_level, &expected, want);
        l = atomic_load(&g_level);
    }
    return (frt_log_level)l;
}

void frt_log_set_level(frt_log_level level)
{
    if ((int)level < FRT_LOG_DEBUG) level = FRT_LOG_DEBUG;
    if ((int)level > FRT_LOG_OFF) level = FRT_LOG_OFF;
    atomic_store(&g_level, (int)level);
}

void frt_log_set_callback(frt_log_fn fn, void *user)
{
    pthread_mutex_lock(&g_log_mu);
    g_cb = fn;
    g_cb_user = user;
    pthread_mutex_unlock(&g_log_mu);
}

void frt_log(frt_log_level level, const char *fmt, ...)
{
    if (level < frt_log_get_level() || level >= FRT_LOG_OFF) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    static const char *const tags[] = {"debug", "info", "warn", "error"};
    pthread_mutex_lock(&g_log_mu);
    if (g_cb)
        g_cb(level, msg, g_cb_user);
    else
        fprintf(stderr, "flashrt %s: %s\n", tags[level], msg);
    pthread_mutex_unlock(&g_log_mu);
}
