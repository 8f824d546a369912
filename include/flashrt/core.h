/*
 * flashrt core: status codes, error reporting, logging, threads.
 *
 * Every fallible call in flashrt returns an frt_status. On failure the
 * library also records a message for the calling thread; frt_last_error()
 * returns it. The library never calls exit() or abort() on bad input.
 */
#ifndef FLASHRT_CORE_H
#define FLASHRT_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FRT_VERSION_MAJOR 0
#define FRT_VERSION_MINOR 1
#define FRT_VERSION_PATCH 0

typedef enum frt_status {
    FRT_OK = 0,
    FRT_ERR_INVALID_ARG, /* the caller passed something invalid */
    FRT_ERR_NOMEM,       /* an allocation failed */
    FRT_ERR_IO,          /* open/read/write/mmap failed */
    FRT_ERR_FORMAT,      /* a file or text from outside is malformed */
    FRT_ERR_NOT_FOUND,   /* a file, tensor or key is missing */
    FRT_ERR_UNSUPPORTED, /* well-formed but not supported (dtype, op, CPU) */
    FRT_ERR_LIMIT,       /* a size or count cap was exceeded */
    FRT_ERR_DEVICE,      /* the accelerator failed or is absent */
    FRT_ERR_TIMEOUT,     /* an I/O deadline passed */
    FRT_ERR_CANCELLED,   /* stopped at the caller's request */
    FRT_ERR_INTERNAL     /* a bug in flashrt; please report */
} frt_status;

/* Short constant name of a status ("FRT_ERR_FORMAT"). Never NULL. */
const char *frt_status_name(frt_status s);

/* Human-readable message of the last failure on the calling thread, or ""
 * when none. The pointer stays valid until the next flashrt call on this
 * thread. Thread-safe (the record is thread-local). */
const char *frt_last_error(void);

/* Status of the last failure on the calling thread (FRT_OK when none). */
frt_status frt_last_status(void);

/* Where the last failure on this thread happened, when known: the file, the
 * tensor (or JSON key) and the byte offset in the file. Each out-pointer may
 * be NULL. Strings are "" and the offset -1 when unknown. The strings stay
 * valid until the next flashrt call on this thread. */
void frt_last_error_detail(const char **file, const char **tensor, int64_t *offset);

/* Forget the last failure on this thread. */
void frt_clear_error(void);

typedef enum frt_log_level {
    FRT_LOG_DEBUG = 0,
    FRT_LOG_INFO = 1,
    FRT_LOG_WARN = 2,
    FRT_LOG_ERROR = 3,
    FRT_LOG_OFF = 4
} frt_log_level;

/* The level starts from the environment variable FRT_LOG
 * (debug|info|warn|error|off; default warn). Thread-safe. */
void frt_log_set_level(frt_log_level level);
frt_log_level frt_log_get_level(void);

/* Route log lines to fn instead of stderr (NULL restores stderr). msg is
 * owned by the library and valid only during the call. fn may be called
 * from any flashrt thread, one call at a time. */
typedef void (*frt_log_fn)(frt_log_level level, const char *msg, void *user);
void frt_log_set_callback(frt_log_fn fn, void *user);

/* Threads used by the default thread pool: FRT_THREADS from the
 * environment, else all online cores. Changing it after the pool started
 * rebuilds the pool; not safe while another thread is running flashrt work. */
int frt_num_threads(void);
frt_status frt_set_num_threads(int n);

/* "0.1.0" */
const char *frt_version(void);

/* The CPU features flashrt detected and dispatches on, e.g.
 * "avx512f avx512bw avx512vl avx512bf16 avx2 fma f16c". Never NULL. */
const char *frt_cpu_features(void);

#ifdef __cplusplus
}
#endif

#endif
