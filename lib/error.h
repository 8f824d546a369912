/* Internal: recording failures for frt_last_error(). */
#ifndef FRT_ERROR_H
#define FRT_ERROR_H

#include "flashrt/core.h"

#if defined(__GNUC__)
#define FRT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FRT_PRINTF(a, b)
#endif

/* Record a failure on this thread and return its status, so callers can
 * write `return frt_error(FRT_ERR_FORMAT, "...", ...);`. */
frt_status frt_error(frt_status s, const char *fmt, ...) FRT_PRINTF(2, 3);

/* Same, with the place: file (may be NULL), tensor or key (may be NULL),
 * byte offset in the file (-1 when not known). The message gets the place
 * appended ("... (file x.safetensors, tensor a.b, offset 123)"). */
frt_status frt_error_at(frt_status s, const char *file, const char *tensor, int64_t offset,
                        const char *fmt, ...) FRT_PRINTF(5, 6);

/* Propagate a failing status unchanged (the message already recorded). */
#define FRT_TRY(expr)                                                                              \
    do {                                                                                           \
        frt_status frt_try_s_ = (expr);                                                            \
        if (frt_try_s_ != FRT_OK) return frt_try_s_;                                               \
    } while (0)

#endif
