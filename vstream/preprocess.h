/* Image preprocessing as Hugging Face's CLIPImageProcessor does it:
 * resize the shortest side (Pillow's 8-bit bicubic), centre crop, rescale
 * (x * 1/255 in double, stored as float), normalise ((x - mean) / std in
 * float), channels first. The resampler reproduces Pillow's
 * libImaging/Resample.c: two separable passes (horizontal first), each
 * rounded and clamped to uint8, a = -0.5 cubic kernel stretched by the scale
 * factor when downscaling, weights in 22-bit fixed point.
 *
 * Images are packed RGB uint8, row-major, `stride` bytes between rows. */
#ifndef FRT_VSTREAM_PREPROCESS_H
#define FRT_VSTREAM_PREPROCESS_H

#include <stdbool.h>
#include <stdint.h>

#include "flashrt/core.h"

typedef struct frt_image_proc_config {
    int shortest_edge;  /* resize target of the shorter side; 0: no resize */
    int crop_h, crop_w; /* centre crop; 0: no crop */
    bool do_rescale;
    double rescale_factor;
    bool do_normalize;
    float mean[3], std[3];
} frt_image_proc_config;

/* CLIP's defaults for a square model input of `size` pixels. */
frt_image_proc_config frt_image_proc_clip_default(int size);

/* Read a preprocessor_config.json (CLIPImageProcessor keys: size
 * {"shortest_edge"} or an integer, crop_size {"height","width"} or an
 * integer, do_resize, do_center_crop, do_rescale, rescale_factor,
 * do_normalize, image_mean, image_std; resample must be 3, bicubic).
 * Missing keys take CLIP's defaults for `default_size`. FRT_ERR_NOT_FOUND
 * for a missing file, FRT_ERR_FORMAT (naming the key) for bad values,
 * FRT_ERR_UNSUPPORTED for another resampling filter. */
frt_status frt_image_proc_load(const char *path, int default_size, frt_image_proc_config *out);

/* A preprocessor: the config plus working memory, grown to the largest
 * image seen and reused. Not thread-safe: one per thread. */
typedef struct frt_image_proc frt_image_proc;

/* FRT_ERR_INVALID_ARG for non-positive sizes or a zero std. */
frt_status frt_image_proc_create(const frt_image_proc_config *cfg, frt_image_proc **out);
void frt_image_proc_free(frt_image_proc *p);

/* Output size of frt_image_proc_run for a w x h input (after resize and crop). */
void frt_image_proc_out_size(const frt_image_proc *p, int w, int h, int *out_w, int *out_h);

/* rgb (caller's, read only) -> out [3, out_h, out_w] f32 (caller's).
 * FRT_ERR_INVALID_ARG for sizes <= 0, stride < 3 w, or a crop larger than
 * the resized image; FRT_ERR_NOMEM. */
frt_status frt_image_proc_run(frt_image_proc *p, const uint8_t *rgb, int w, int h, int stride,
                              float *out);

/* The resize alone: Pillow's Image.resize((ow, oh), BICUBIC) of an RGB image
 * into dst (ow * 3 bytes per row). Uses p's working memory. */
frt_status frt_image_resize_bicubic(frt_image_proc *p, const uint8_t *src, int w, int h, int stride,
                                    uint8_t *dst, int ow, int oh);

/* The shortest-side resize target (transformers' get_resize_output_image_size
 * with default_to_square false): the short side becomes `size`, the long
 * side int(size * long / short). */
void frt_shortest_side_size(int w, int h, int size, int *out_w, int *out_h);

#endif
