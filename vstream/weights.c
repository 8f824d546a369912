/* Weight loading helpers shared by the model files. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "weights.h"

#define NAME_MAX_LEN 512

static frt_status format_name(char *buf, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, NAME_MAX_LEN, fmt, ap);
    if (n < 0 || n >= NAME_MAX_LEN)
        return frt_error(FRT_ERR_INVALID_ARG, "tensor name too long (format %s)", fmt);
    return FRT_OK;
}

static frt_status get_float_shaped(const frt_st *st, const char *name, int ndim,
                                   const int64_t *shape, frt_tensor *out)
{
    frt_tensor t;
    FRT_TRY(frt_st_get_shaped(st, name, ndim, shape, &t));
    if (t.dtype != FRT_F32 && t.dtype != FRT_F16 && t.dtype != FRT_BF16)
        return frt_error_at(FRT_ERR_UNSUPPORTED, NULL, name, -1,
                            "weight has dtype %s; expected F32, F16 or BF16",
                            frt_dtype_name(t.dtype));
    *out = t;
    return FRT_OK;
}

frt_status frt_w_view(const frt_st *st, frt_tensor *out, int ndim, const int64_t *shape,
                      const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    frt_status s = format_name(name, fmt, ap);
    va_end(ap);
    if (s != FRT_OK) return s;
    return get_float_shaped(st, name, ndim, shape, out);
}

frt_status frt_w_f32(const frt_st *st, frt_tensor *out, int ndim, const int64_t *shape,
                     const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    frt_status s = format_name(name, fmt, ap);
    va_end(ap);
    if (s != FRT_OK) return s;
    frt_tensor view;
    FRT_TRY(get_float_shaped(st, name, ndim, shape, &view));
    return frt_st_get_f32(st, name, out);
}

bool frt_w_has(const frt_st *st, const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= NAME_MAX_LEN) return false;
    /* Look up by scanning names: frt_st_get would record a NOT_FOUND error. */
    for (int64_t i = 0; i < frt_st_count(st); i++) {
        const char *s = frt_st_name(st, i);
        if (s && strcmp(s, name) == 0) return true;
    }
    return false;
}

static frt_status key_name(char *buf, size_t cap, const char *prefix, const char *name)
{
    int n = snprintf(buf, cap, "%s%s", prefix ? prefix : "", name);
    if (n < 0 || (size_t)n >= cap) return frt_error(FRT_ERR_INVALID_ARG, "config key too long");
    return FRT_OK;
}

frt_status frt_cfg_int_req(const frt_config *c, const char *prefix, const char *name, int64_t lo,
                           int64_t hi, int64_t *out)
{
    char key[256];
    FRT_TRY(key_name(key, sizeof key, prefix, name));
    if (!frt_config_has(c, key))
        return frt_error_at(FRT_ERR_FORMAT, NULL, key, -1, "config key %s is missing", key);
    return frt_config_int(c, key, 0, lo, hi, out);
}

frt_status frt_cfg_int_def(const frt_config *c, const char *prefix, const char *name, int64_t def,
                           int64_t lo, int64_t hi, int64_t *out)
{
    char key[256];
    FRT_TRY(key_name(key, sizeof key, prefix, name));
    return frt_config_int(c, key, def, lo, hi, out);
}

frt_status frt_cfg_float_def(const frt_config *c, const char *prefix, const char *name, double def,
                             double *out)
{
    char key[256];
    FRT_TRY(key_name(key, sizeof key, prefix, name));
    return frt_config_float(c, key, def, out);
}
