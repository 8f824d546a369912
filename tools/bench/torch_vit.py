"""PyTorch timing of the repository's CLIP reference (tools/reference/clip.py)
for `frt-bench vit`: random f32 weights at the given dimensions, one image,
the layers LLaVA's select layer needs. Prints one JSON object on stdout:
{"sec": best seconds per frame, "cpu_sec": the process CPU seconds of
that frame (all threads), "reps": n, "threads": t, "torch": version}.

Run with Debian's python3 (/usr/bin/python3), which has torch.
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference import clip  # noqa: E402


def random_weights(cfg, layers, prefix):
    """Uniform weights with roughly unit gain per Linear, unit norms; the
    values do not matter for timing, only that activations stay finite."""
    g = torch.Generator().manual_seed(1)
    d, m, p = cfg.hidden_size, cfg.intermediate_size, cfg.patch_size

    def u(*shape, fan_in):
        a = (3.0 / fan_in) ** 0.5
        return (torch.rand(*shape, generator=g) * 2 - 1) * a

    e = prefix + "embeddings."
    w = {
        e + "patch_embedding.weight": u(d, cfg.num_channels, p, p, fan_in=cfg.num_channels * p * p),
        e + "class_embedding": u(d, fan_in=3),
        e + "position_embedding.weight": u(cfg.num_patches + 1, d, fan_in=3),
        prefix + "pre_layrnorm.weight": torch.ones(d),
        prefix + "pre_layrnorm.bias": torch.zeros(d),
    }
    for i in range(layers):
        q = "%sencoder.layers.%d." % (prefix, i)
        for n in ("layer_norm1", "layer_norm2"):
            w[q + n + ".weight"] = torch.ones(d)
            w[q + n + ".bias"] = torch.zeros(d)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[q + "self_attn." + n + ".weight"] = u(d, d, fan_in=d)
            w[q + "self_attn." + n + ".bias"] = torch.zeros(d)
        w[q + "mlp.fc1.weight"] = u(m, d, fan_in=d)
        w[q + "mlp.fc1.bias"] = torch.zeros(m)
        w[q + "mlp.fc2.weight"] = u(d, m, fan_in=m)
        w[q + "mlp.fc2.bias"] = torch.zeros(d)
    return w


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--patch-size", type=int, default=14)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=4096)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--layers", type=int, default=24, help="layers in the tower")
    ap.add_argument("--select-layer", type=int, default=-2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    cfg = clip.CLIPVisionConfig(
        {
            "image_size": a.image_size,
            "patch_size": a.patch_size,
            "hidden_size": a.width,
            "intermediate_size": a.intermediate,
            "num_hidden_layers": a.layers,
            "num_attention_heads": a.heads,
        }
    )
    run = a.select_layer if a.select_layer >= 0 else a.layers + 1 + a.select_layer
    prefix = "vision_model."
    w = random_weights(cfg, run, prefix)
    px = torch.rand(1, cfg.num_channels, a.image_size, a.image_size, generator=torch.Generator().manual_seed(2))
    best, best_cpu = None, None
    with torch.no_grad():
        for rep in range(a.reps + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            f = clip.select_features(px, w, cfg, a.select_layer, "patch", prefix)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if not torch.isfinite(f).all():
                raise SystemExit("torch_vit: non-finite features")
            if rep > 0 and (best is None or dt < best):
                best, best_cpu = dt, dc
    print(json.dumps({"sec": best, "cpu_sec": best_cpu, "reps": a.reps, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
