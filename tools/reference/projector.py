"""Flash-VStream's spatial pooling and LLaVA's mlp2x_gelu projector."""

import torch


def pool_grid(features, out_side):
    """compress_spatial_features with compress_type 'mean': [T, g*g, C]
    patch tokens (row-major grid) -> [T, out_side^2, C], the average of each
    (g/out_side) x (g/out_side) block (avg_pool2d, kernel = stride).
    out_side 1 is the frame mean."""
    t, p, c = features.shape
    g = int(round(p**0.5))
    assert g * g == p and g % out_side == 0, (p, out_side)
    k = g // out_side
    x = features.reshape(t, out_side, k, out_side, k, c)
    return x.mean(dim=(2, 4)).reshape(t, out_side * out_side, c)


def gelu(x):
    """nn.GELU() default: the exact erf form."""
    return 0.5 * x * (1.0 + torch.erf(x * 0.7071067811865476))


def mlp2x_gelu(x, w, prefix="model.mm_projector."):
    """Sequential(Linear(mm_hidden, hidden), GELU(), Linear(hidden, hidden)):
    weights '0.*' and '2.*' under prefix."""
    h = x @ w[prefix + "0.weight"].t() + w[prefix + "0.bias"]
    return gelu(h) @ w[prefix + "2.weight"].t() + w[prefix + "2.bias"]
