/* Per-thread record of the last failure (frt_last_error and friends). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "log.h"

#define FRT_ERR_MSG 1024
#define FRT_ERR_NAME 256

typedef struct {
    frt_status status;
    char msg[FRT_ERR_MSG];
    char file[FRT_ERR_NAME];
    char tensor[FRT_ERR_NAME];
    int64_t offset;
} err_record;

static _Thread_local err_record g_err = {FRT_OK, "", "", "", -1};

static const char *const status_names[] = {
    "FRT_OK",          "FRT_ERR_INVALID_ARG", "FRT_ERR_NOMEM",   "FRT_ERR_IO",
    "FRT_ERR_FORMAT",  "FRT_ERR_NOT_FOUND",   "FRT_ERR_UNSUPPORTED",
    "FRT_ERR_LIMIT",   "FRT_ERR_DEVICE",      "FRT_ERR_TIMEOUT", "FRT_ERR_CANCELLED",
    "FRT_ERR_INTERNAL"};

const char *frt_status_name(frt_status s)
{
    if ((unsigned)s < sizeof status_names / sizeof status_names[0]) return status_names[s];
    return "FRT_ERR_UNKNOWN";
}

const char *frt_last_error(void) { return g_err.msg; }
frt_status frt_last_status(void) { return g_err.status; }

void frt_last_error_detail(const char **file, const char **tensor, int64_t *offset)
{
    if (file) *file = g_err.file;
    if (tensor) *tensor = g_err.tensor;
    if (offset) *offset = g_err.offset;
}

void frt_clear_error(void)
{
    g_err.status = FRT_OK;
    g_err.msg[0] = g_err.file[0] = g_err.tensor[0] = '\0';
    g_err.offset = -1;
}

static void copy_name(char *dst, const char *src)
{
    if (!src) src = "";
    snprintf(dst, FRT_ERR_NAME, "%s", src);
}

static frt_status record(frt_status s, const char *file, const char *tensor, int64_t offset,
                         const char *fmt, va_list ap)
{
    char msg[FRT_ERR_MSG];
    vsnprintf(msg, sizeof msg, fmt, ap);
    copy_name(g_err.file, file);
    copy_name(g_err.tensor, tensor);
    g_err.offset = offset;
    g_err.status = s;
    size_t n = (size_t)snprintf(g_err.msg, sizeof g_err.msg, "%s", msg);
    if ((file || tensor || offset >= 0) && n < sizeof g_err.msg) {
        const char *sep = " (";
        char *p = g_err.msg + n;
        size_t left = sizeof g_err.msg - n;
        int k;
        if (file && *file && left > 1) {
            k = snprintf(p, left, "%sfile %s", sep, file);
            if (k > 0 && (size_t)k < left) p += k, left -= (size_t)k;
            sep = ", ";
        }
        if (tensor && *tensor && left > 1) {
            k = snprintf(p, left, "%stensor %s", sep, tensor);
            if (k > 0 && (size_t)k < left) p += k, left -= (size_t)k;
            sep = ", ";
        }
        if (offset >= 0 && left > 1) {
            k = snprintf(p, left, "%soffset %lld", sep, (long long)offset);
            if (k > 0 && (size_t)k < left) p += k, left -= (size_t)k;
            sep = ", ";
        }
        if (sep[0] == ',' && left > 1) snprintf(p, left, ")");
    }
    FRT_LOGD("%s: %s", frt_status_name(s), g_err.msg);
    return s;
}

frt_status frt_error(frt_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(s, NULL, NULL, -1, fmt, ap);
    va_end(ap);
    return s;
}

frt_status frt_error_at(frt_status s, const char *file, const char *tensor, int64_t offset,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record(s, file, tensor, offset, fmt, ap);
    va_end(ap);
    return s;
}
