"""CLIP image preprocessing as CLIPImageProcessor does it.

resize (shortest side to image_size, PIL bicubic) -> centre crop ->
x * (1/255) -> (x - mean) / std, channels first.

Pillow is not installed for /usr/bin/python3 here, so pil_resize_bicubic
re-implements Pillow's 8-bit resampler (libImaging/Resample.c) step by step:
a separable two-pass convolution (horizontal, then vertical, each rounded to
uint8) with the a = -0.5 cubic kernel stretched by the scale factor when
downscaling (this is Pillow's antialiasing; torch's interpolate(bicubic,
antialias=False) uses a = -0.75 and no stretching, and differs by several
grey levels), coefficients normalised to sum 1 and quantised to 22-bit fixed
point. It follows Pillow's published source and has not been compared
byte-for-byte against Pillow on this machine.
"""

import math

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_PRECISION_BITS = 32 - 8 - 2


def _bicubic(x):
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def filter_weights(in_size, out_size):
    """Per output index: (first input index, float weights summing to 1)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    rows = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [_bicubic((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = sum(w)
        if ww != 0.0:
            w = [v / ww for v in w]
        rows.append((xmin, w))
    return rows


def _fixed_point(w):
    # C's (int) truncates toward zero, so this rounds half away from zero.
    one = 1 << _PRECISION_BITS
    return np.array([int(-0.5 + v * one) if v < 0 else int(0.5 + v * one) for v in w], dtype=np.int64)


def _pass(img, out_size, axis):
    """Resample a uint8 array along axis (0 rows, 1 columns), rounding and
    clamping to uint8 as Pillow does after each pass."""
    src = np.moveaxis(img.astype(np.int64), axis, 0)
    out = np.empty((out_size,) + src.shape[1:], dtype=np.uint8)
    for i, (xmin, w) in enumerate(filter_weights(src.shape[0], out_size)):
        acc = np.full(src.shape[1:], 1 << (_PRECISION_BITS - 1), dtype=np.int64)
        for j, kj in enumerate(_fixed_point(w)):
            acc += src[xmin + j] * kj
        out[i] = np.clip(acc >> _PRECISION_BITS, 0, 255)
    return np.moveaxis(out, 0, axis)


def pil_resize_bicubic(img, out_w, out_h):
    """Pillow Image.resize((out_w, out_h), BICUBIC) of an HxWx3 uint8 array."""
    assert img.dtype == np.uint8 and img.ndim == 3
    h, w, _ = img.shape
    if out_w != w:
        img = _pass(img, out_w, 1)
    if out_h != h:
        img = _pass(img, out_h, 0)
    return np.ascontiguousarray(img)


def shortest_side_size(h, w, size):
    """transformers' get_resize_output_image_size(default_to_square=False)."""
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def center_crop(img, crop):
    h, w, _ = img.shape
    assert h >= crop and w >= crop, "shortest-side resize guarantees the crop fits"
    top, left = (h - crop) // 2, (w - crop) // 2
    return img[top : top + crop, left : left + crop]


def clip_preprocess(img, image_size, crop_size=None, mean=CLIP_MEAN, std=CLIP_STD):
    """HxWx3 uint8 RGB -> [3, crop, crop] float32 pixel values."""
    crop_size = crop_size or image_size
    h, w, _ = img.shape
    nh, nw = shortest_side_size(h, w, image_size)
    x = center_crop(pil_resize_bicubic(img, nw, nh), crop_size)
    # transformers rescales in float64 then casts; normalize runs in float32.
    x = (x * (1 / 255)).astype(np.float32)
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def test_image(h, w, seed):
    """A deterministic synthetic RGB image: gradients, a disc, a bar, and
    hashed noise, so resizing has edges and texture to get wrong."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 127.5 + 127.5 * np.sin(2 * math.pi * (x + 2 * y) / (0.37 * w + 3))
    disc = (x - 0.6 * w) ** 2 + (y - 0.4 * h) ** 2 < (0.22 * min(h, w)) ** 2
    bar = (np.abs(x - 0.25 * w) < 0.06 * w + 1) & (y > 0.3 * h)
    img = np.stack([r, g, b], axis=-1)
    img[disc] = (240, 40, 30)
    img[bar] = (20, 30, 200)
    noise = ((x * 73856093 + y * 19349663 + seed * 83492791) % 1000003) % 41 - 20
    img = img + noise[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
