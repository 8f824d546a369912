"""CLIP vision tower (Hugging Face CLIPVisionModel), written out.

embeddings: patch conv (kernel = stride = patch, no bias) + class token +
learned position embedding -> pre_layrnorm -> L pre-LN encoder layers
(x += out_proj(attn(layer_norm1(x))); x += fc2(quick_gelu(fc1(layer_norm2(x)))))
-> post_layernorm (applied to the class token only, for pooler_output).

hidden_states follows transformers: hidden_states[0] is the pre_layrnorm
output and hidden_states[i] the output of encoder layer i, so
hidden_states[-2] (LLaVA / Flash-VStream's select layer) is the output of
layer L-1 and the last layer is never needed for it.
"""

import torch

DEFAULTS = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 32,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}


class CLIPVisionConfig:
    def __init__(self, d):
        # A CLIPConfig nests the vision part; a CLIPVisionConfig is flat.
        d = d.get("vision_config", d)
        for k, v in DEFAULTS.items():
            setattr(self, k, d.get(k, v))
        assert self.hidden_act == "quick_gelu", self.hidden_act
        self.head_dim = self.hidden_size // self.num_attention_heads
        self.grid = self.image_size // self.patch_size
        self.num_patches = self.grid * self.grid


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def linear(x, w, b=None):
    y = x @ w.t()
    return y if b is None else y + b


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def patchify(pixel_values, patch):
    """[B, C, H, W] -> [B, (H/p)*(W/p), C*p*p]; patches row-major over the
    grid, each flattened (c, ky, kx) like the conv weight [out, C, p, p]."""
    b, c, h, w = pixel_values.shape
    gh, gw = h // patch, w // patch
    x = pixel_values.reshape(b, c, gh, patch, gw, patch)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, c * patch * patch)


def attention(x, w, prefix, heads):
    """Bidirectional multi-head attention; q is scaled by head_dim^-0.5."""
    b, n, d = x.shape
    hd = d // heads

    def proj(name):
        y = linear(x, w[prefix + name + ".weight"], w[prefix + name + ".bias"])
        return y.reshape(b, n, heads, hd).transpose(1, 2)

    q = proj("q_proj") * (hd**-0.5)
    k, v = proj("k_proj"), proj("v_proj")
    p = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
    o = (p @ v).transpose(1, 2).reshape(b, n, d)
    return linear(o, w[prefix + "out_proj.weight"], w[prefix + "out_proj.bias"])


def encoder_layer(x, w, p, cfg):
    eps = cfg.layer_norm_eps
    h = layer_norm(x, w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], eps)
    x = x + attention(h, w, p + "self_attn.", cfg.num_attention_heads)
    h = layer_norm(x, w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"], eps)
    h = quick_gelu(linear(h, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"]))
    return x + linear(h, w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])


def embeddings(pixel_values, w, cfg, prefix="vision_model."):
    e = prefix + "embeddings."
    wp = w[e + "patch_embedding.weight"]
    x = patchify(pixel_values.to(wp.dtype), cfg.patch_size) @ wp.reshape(wp.shape[0], -1).t()
    cls = w[e + "class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1)
    return x + w[e + "position_embedding.weight"][: x.shape[1]]


def forward(pixel_values, w, cfg, prefix="vision_model.", num_layers=None):
    """Returns (hidden_states list, pooler_output). pixel_values [B, 3, S, S].
    num_layers stops early (hidden_states then has num_layers + 1 entries and
    pooler_output is None)."""
    x = embeddings(pixel_values, w, cfg, prefix)
    x = layer_norm(x, w[prefix + "pre_layrnorm.weight"], w[prefix + "pre_layrnorm.bias"], cfg.layer_norm_eps)
    hs = [x]
    n = cfg.num_hidden_layers if num_layers is None else num_layers
    for i in range(n):
        x = encoder_layer(x, w, "%sencoder.layers.%d." % (prefix, i), cfg)
        hs.append(x)
    pooled = None
    if n == cfg.num_hidden_layers:
        pooled = layer_norm(
            x[:, 0], w[prefix + "post_layernorm.weight"], w[prefix + "post_layernorm.bias"], cfg.layer_norm_eps
        )
    return hs, pooled


def select_features(pixel_values, w, cfg, select_layer=-2, select_feature="patch", prefix="vision_model."):
    """LLaVA's CLIPVisionTower.feature_select: hidden_states[select_layer],
    class token dropped for 'patch'. Runs only the layers it needs."""
    idx = select_layer if select_layer >= 0 else cfg.num_hidden_layers + 1 + select_layer
    hs, _ = forward(pixel_values, w, cfg, prefix, num_layers=idx)
    f = hs[idx]
    return f[:, 1:] if select_feature == "patch" else f


def flops_per_image(cfg, layers):
    """Multiply-adds x2 of the matmuls (patch embedding included)."""
    n, d, m = cfg.num_patches + 1, cfg.hidden_size, cfg.intermediate_size
    per_layer = 2 * n * (4 * d * d + 2 * d * m) + 4 * n * n * d
    return 2 * cfg.num_patches * d * 3 * cfg.patch_size**2 + layers * per_layer


