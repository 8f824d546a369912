/* Internal: leveled logging (FRT_LOG=debug|info|warn|error|off). */
#ifndef FRT_LOG_H
#define FRT_LOG_H

#include "error.h"

void frt_log(frt_log_level level, const char *fmt, ...) FRT_PRINTF(2, 3);

#define FRT_LOGD(...) frt_log(FRT_LOG_DEBUG, __VA_ARGS__)
#define FRT_LOGI(...) frt_log(FRT_LOG_INFO, __VA_ARGS__)
#define FRT_LOGW(...) frt_log(FRT_LOG_WARN, __VA_ARGS__)
#define FRT_LOGE(...) frt_log(FRT_LOG_ERROR, __VA_ARGS__)

#endif
