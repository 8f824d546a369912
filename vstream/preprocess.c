/* CLIPImageProcessor: Pillow bicubic resize, centre crop, rescale, normalise. */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "error.h"
#include "preprocess.h"

/* Pillow's fixed point: 32 bits minus 8 for the pixel and 2 for headroom. */
#define PRECISION_BITS  (32 - 8 - 2)
#define BICUBIC_SUPPORT 2.0
#define PIL_BICUBIC     3
#define MAX_SIDE        (1 << 15)

static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

struct frt_image_proc {
    frt_image_proc_config cfg;
    void *work; /* resampler coefficients and the between-passes image */
    size_t work_cap;
    void *resized; /* the resized image before the crop */
    size_t resized_cap;
};

frt_image_proc_config frt_image_proc_clip_default(int size)
{
    frt_image_proc_config c = {
        .shortest_edge = size,
        .crop_h = size,
        .crop_w = size,
        .do_rescale = true,
        .rescale_factor = 1.0 / 255.0,
        .do_normalize = true,
    };
    memcpy(c.mean, clip_mean, sizeof c.mean);
    memcpy(c.std, clip_std, sizeof c.std);
    return c;
}

/* An integer, or an object holding `field` (transformers writes both forms). */
static frt_status json_size(const cJSON *root, const char *key, const char *field, const char *path,
                            int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return FRT_OK;
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, field);
    if (!v || !cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > MAX_SIDE ||
        v->valuedouble != floor(v->valuedouble))
        return frt_error_at(FRT_ERR_FORMAT, path, key, -1,
                            "%s must be a positive integer or hold \"%s\"", key, field);
    *out = (int)v->valuedouble;
    return FRT_OK;
}

static frt_status json_bool(const cJSON *root, const char *key, const char *path, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return FRT_OK;
    if (!cJSON_IsBool(v))
        return frt_error_at(FRT_ERR_FORMAT, path, key, -1, "%s must be true or false", key);
    *out = cJSON_IsTrue(v);
    return FRT_OK;
}

static frt_status json_triple(const cJSON *root, const char *key, const char *path, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return FRT_OK;
    if (cJSON_IsNumber(v)) {
        for (int i = 0; i < 3; i++) out[i] = (float)v->valuedouble;
        return FRT_OK;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 3)
        return frt_error_at(FRT_ERR_FORMAT, path, key, -1, "%s must be 3 numbers", key);
    for (int i = 0; i < 3; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsNumber(e))
            return frt_error_at(FRT_ERR_FORMAT, path, key, -1, "%s must be 3 numbers", key);
        out[i] = (float)e->valuedouble;
    }
    return FRT_OK;
}

static frt_status parse_proc(const cJSON *root, const char *path, frt_image_proc_config *c)
{
    if (!cJSON_IsObject(root))
        return frt_error_at(FRT_ERR_FORMAT, path, NULL, -1, "not a JSON object");
    bool do_resize = true, do_crop = true;
    FRT_TRY(json_size(root, "size", "shortest_edge", path, &c->shortest_edge));
    FRT_TRY(json_size(root, "crop_size", "height", path, &c->crop_h));
    c->crop_w = c->crop_h;
    const cJSON *crop = cJSON_GetObjectItemCaseSensitive(root, "crop_size");
    if (cJSON_IsObject(crop)) FRT_TRY(json_size(root, "crop_size", "width", path, &c->crop_w));
    FRT_TRY(json_bool(root, "do_resize", path, &do_resize));
    FRT_TRY(json_bool(root, "do_center_crop", path, &do_crop));
    FRT_TRY(json_bool(root, "do_rescale", path, &c->do_rescale));
    FRT_TRY(json_bool(root, "do_normalize", path, &c->do_normalize));
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "rescale_factor");
    if (rf && !cJSON_IsNull(rf)) {
        if (!cJSON_IsNumber(rf))
            return frt_error_at(FRT_ERR_FORMAT, path, "rescale_factor", -1,
                                "rescale_factor must be a number");
        c->rescale_factor = rf->valuedouble;
    }
    FRT_TRY(json_triple(root, "image_mean", path, c->mean));
    FRT_TRY(json_triple(root, "image_std", path, c->std));
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "resample");
    if (rs && !cJSON_IsNull(rs) && (!cJSON_IsNumber(rs) || rs->valuedouble != PIL_BICUBIC))
        return frt_error_at(FRT_ERR_UNSUPPORTED, path, "resample", -1,
                            "only resample 3 (bicubic) is implemented");
    if (!do_resize) c->shortest_edge = 0;
    if (!do_crop) c->crop_h = c->crop_w = 0;
    return FRT_OK;
}

frt_status frt_image_proc_load(const char *path, int default_size, frt_image_proc_config *out)
{
    if (!path || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_image_proc_load: NULL argument");
    cJSON *root;
    FRT_TRY(frt_json_load(path, 1u << 20, &root));
    frt_image_proc_config c = frt_image_proc_clip_default(default_size);
    frt_status s = parse_proc(root, path, &c);
    cJSON_Delete(root);
    if (s == FRT_OK) *out = c;
    return s;
}

frt_status frt_image_proc_create(const frt_image_proc_config *cfg, frt_image_proc **out)
{
    if (!cfg || !out) return frt_error(FRT_ERR_INVALID_ARG, "frt_image_proc_create: NULL argument");
    if (cfg->shortest_edge < 0 || cfg->crop_h < 0 || cfg->crop_w < 0 ||
        cfg->shortest_edge > MAX_SIDE || cfg->crop_h > MAX_SIDE || cfg->crop_w > MAX_SIDE ||
        (cfg->crop_h == 0) != (cfg->crop_w == 0))
        return frt_error(FRT_ERR_INVALID_ARG, "image preprocessing: bad resize or crop size");
    for (int i = 0; cfg->do_normalize && i < 3; i++)
        if (!(cfg->std[i] != 0.0f) || !isfinite(cfg->mean[i]) || !isfinite(cfg->std[i]))
            return frt_error(FRT_ERR_INVALID_ARG, "image preprocessing: bad mean or std");
    frt_image_proc *p = frt_calloc(1, sizeof *p);
    if (!p) return FRT_ERR_NOMEM;
    p->cfg = *cfg;
    *out = p;
    return FRT_OK;
}

void frt_image_proc_free(frt_image_proc *p)
{
    if (!p) return;
    frt_free(p->work);
    frt_free(p->resized);
    frt_free(p);
}

/* Grow-only buffers: frames of one stream have one size, so after the
 * first frame nothing is allocated. */
static frt_status reserve(void **buf, size_t *cap, size_t bytes)
{
    if (bytes <= *cap) return FRT_OK;
    void *w = frt_alloc(bytes);
    if (!w) return FRT_ERR_NOMEM;
    frt_free(*buf);
    *buf = w;
    *cap = bytes;
    return FRT_OK;
}

void frt_shortest_side_size(int w, int h, int size, int *out_w, int *out_h)
{
    int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    int new_long = (int)((double)size * longer / shorter);
    *out_w = w <= h ? size : new_long;
    *out_h = w <= h ? new_long : size;
}

static double bicubic(double x)
{
    const double a = -0.5;
    if (x < 0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static int coeff_ksize(int in_size, int out_size)
{
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    return (int)ceil(BICUBIC_SUPPORT * filterscale) * 2 + 1;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc, step for step (the
 * float expressions in the same order, so the rounding agrees). */
static void coeffs(int in_size, int out_size, int ksize, int *bounds, int32_t *kk, double *tmp)
{
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = BICUBIC_SUPPORT * filterscale, ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            tmp[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += tmp[x];
        }
        int32_t *k = kk + (size_t)xx * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? tmp[x] / ww : tmp[x]) : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS))
                         : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
}

static inline uint8_t clip8(int32_t v)
{
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* One pass along rows (horizontal) of an RGB image. */
static void pass_h(const uint8_t *src, int h, int stride, uint8_t *dst, int ow, int dst_stride,
                   const int *bounds, const int32_t *kk, int ksize)
{
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src + (size_t)y * stride;
        uint8_t *o = dst + (size_t)y * dst_stride;
        for (int xx = 0; xx < ow; xx++) {
            int xmin = bounds[2 * xx], n = bounds[2 * xx + 1];
            const int32_t *k = kk + (size_t)xx * ksize;
            for (int c = 0; c < 3; c++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int x = 0; x < n; x++) ss += row[(xmin + x) * 3 + c] * k[x];
                o[xx * 3 + c] = clip8(ss);
            }
        }
    }
}

/* One pass along columns (vertical). */
static void pass_v(const uint8_t *src, int w, int stride, uint8_t *dst, int oh, int dst_stride,
                   const int *bounds, const int32_t *kk, int ksize)
{
    for (int yy = 0; yy < oh; yy++) {
        int ymin = bounds[2 * yy], n = bounds[2 * yy + 1];
        const int32_t *k = kk + (size_t)yy * ksize;
        uint8_t *o = dst + (size_t)yy * dst_stride;
        for (int x = 0; x < w * 3; x++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < n; y++) ss += src[(size_t)(ymin + y) * stride + x] * k[y];
            o[x] = clip8(ss);
        }
    }
}

static size_t align_up(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

frt_status frt_image_resize_bicubic(frt_image_proc *p, const uint8_t *src, int w, int h, int stride,
                                    uint8_t *dst, int ow, int oh)
{
    if (!p || !src || !dst) return frt_error(FRT_ERR_INVALID_ARG, "resize: NULL argument");
    if (w <= 0 || h <= 0 || ow <= 0 || oh <= 0 || w > MAX_SIDE || h > MAX_SIDE || ow > MAX_SIDE ||
        oh > MAX_SIDE || stride < 3 * w)
        return frt_error(FRT_ERR_INVALID_ARG, "resize: bad size %dx%d (stride %d) -> %dx%d", w, h,
                         stride, ow, oh);
    bool need_h = ow != w, need_v = oh != h;
    int ks_h = coeff_ksize(w, ow), ks_v = coeff_ksize(h, oh);
    size_t sz_bh = align_up(2 * sizeof(int) * (size_t)ow);
    size_t sz_kh = align_up(sizeof(int32_t) * (size_t)ow * ks_h);
    size_t sz_bv = align_up(2 * sizeof(int) * (size_t)oh);
    size_t sz_kv = align_up(sizeof(int32_t) * (size_t)oh * ks_v);
    size_t sz_tmp = align_up(sizeof(double) * (size_t)(ks_h > ks_v ? ks_h : ks_v));
    size_t sz_mid = need_h && need_v ? align_up((size_t)h * ow * 3) : 0;
    FRT_TRY(reserve(&p->work, &p->work_cap, sz_bh + sz_kh + sz_bv + sz_kv + sz_tmp + sz_mid));
    char *base = p->work;
    int *bh = (int *)base;
    int32_t *kh = (int32_t *)(base + sz_bh);
    int *bv = (int *)(base + sz_bh + sz_kh);
    int32_t *kv = (int32_t *)(base + sz_bh + sz_kh + sz_bv);
    double *tmp = (double *)(base + sz_bh + sz_kh + sz_bv + sz_kv);
    uint8_t *mid = (uint8_t *)(base + sz_bh + sz_kh + sz_bv + sz_kv + sz_tmp);

    if (!need_h && !need_v) {
        for (int y = 0; y < h; y++)
            memcpy(dst + (size_t)y * ow * 3, src + (size_t)y * stride, (size_t)w * 3);
        return FRT_OK;
    }
    if (need_h) coeffs(w, ow, ks_h, bh, kh, tmp);
    if (need_v) coeffs(h, oh, ks_v, bv, kv, tmp);
    if (need_h && need_v) {
        pass_h(src, h, stride, mid, ow, ow * 3, bh, kh, ks_h);
        pass_v(mid, ow, ow * 3, dst, oh, ow * 3, bv, kv, ks_v);
    } else if (need_h) {
        pass_h(src, h, stride, dst, ow, ow * 3, bh, kh, ks_h);
    } else {
        pass_v(src, w, stride, dst, oh, ow * 3, bv, kv, ks_v);
    }
    return FRT_OK;
}

void frt_image_proc_out_size(const frt_image_proc *p, int w, int h, int *out_w, int *out_h)
{
    int rw = w, rh = h;
    if (p->cfg.shortest_edge > 0) frt_shortest_side_size(w, h, p->cfg.shortest_edge, &rw, &rh);
    *out_w = p->cfg.crop_w > 0 ? p->cfg.crop_w : rw;
    *out_h = p->cfg.crop_h > 0 ? p->cfg.crop_h : rh;
}

frt_status frt_image_proc_run(frt_image_proc *p, const uint8_t *rgb, int w, int h, int stride,
                              float *out)
{
    if (!p || !rgb || !out) return frt_error(FRT_ERR_INVALID_ARG, "preprocess: NULL argument");
    if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE || stride < 3 * w)
        return frt_error(FRT_ERR_INVALID_ARG, "preprocess: bad image size %dx%d (stride %d)", w, h,
                         stride);
    const frt_image_proc_config *c = &p->cfg;
    int rw = w, rh = h;
    if (c->shortest_edge > 0) frt_shortest_side_size(w, h, c->shortest_edge, &rw, &rh);
    if (rw <= 0 || rh <= 0 || rw > MAX_SIDE || rh > MAX_SIDE)
        return frt_error(FRT_ERR_INVALID_ARG, "preprocess: %dx%d resizes to %dx%d", w, h, rw, rh);
    int cw = c->crop_w > 0 ? c->crop_w : rw, ch = c->crop_h > 0 ? c->crop_h : rh;
    if (cw > rw || ch > rh)
        return frt_error(FRT_ERR_INVALID_ARG, "preprocess: crop %dx%d larger than the image %dx%d",
                         cw, ch, rw, rh);

    const uint8_t *img = rgb;
    int img_stride = stride;
    if (rw != w || rh != h) {
        FRT_TRY(reserve(&p->resized, &p->resized_cap, (size_t)rw * rh * 3));
        FRT_TRY(frt_image_resize_bicubic(p, rgb, w, h, stride, p->resized, rw, rh));
        img = p->resized;
        img_stride = rw * 3;
    }
    int top = (rh - ch) / 2, left = (rw - cw) / 2;
    for (int y = 0; y < ch; y++) {
        const uint8_t *row = img + (size_t)(top + y) * img_stride + (size_t)left * 3;
        for (int x = 0; x < cw; x++) {
            for (int k = 0; k < 3; k++) {
                /* transformers rescales in double and stores float; the
                 * normalisation then runs in float. */
                float v = c->do_rescale ? (float)(row[x * 3 + k] * c->rescale_factor)
                                        : (float)row[x * 3 + k];
                if (c->do_normalize) v = (v - c->mean[k]) / c->std[k];
                out[((size_t)k * ch + y) * cw + x] = v;
            }
        }
    }
    return FRT_OK;
}
