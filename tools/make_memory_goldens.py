#!/usr/bin/python3
"""Goldens for the STAR memory parity test (tests/test_memory.c).

Regenerate: /usr/bin/python3 tools/make_memory_goldens.py
Writes tests/data/memory/<case>.safetensors; deterministic (same bytes on a
re-run). Each file holds one recorded feature sequence and the reference
memory's state after every frame:
  features [T, p_spa^2, C] F32     the input frames
  config   [15] I32                dim p_spa p_tem p_abs n_spa n_tem n_abs n_ret
                                   n_buff hidden compat seed kmeans_iters T
                                   kmeans_init (0 random, 1 ward)
  alpha    [1] F32
  q_w [hidden, C], q_b [hidden], k_w [hidden, C], k_b [hidden] F32
  n_tokens [T] I32                 token count after frame t
  labels   [T, n_tem + 1] I32      assignment of that frame's clustering, -1 if none
  weights  [T, n_tem] F32          cluster weights (0 past the cluster count)
  retrieved [T, n_ret] I32         stream indices of the retrieved frames, -1 pad
  tokens_<t> [n_tokens[t], C] F32  the full token sequence after frame t
                                   (0-based) for the frames listed in `checked`
  checked  [n] I32
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import safetensors_io as st  # noqa: E402
from reference.star_memory import KMEANS_INITS, StarMemory, config_from_json, token_count  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
OUT = os.path.join(ROOT, "memory")
CFG_ORDER = ["dim", "p_spa", "p_tem", "p_abs", "n_spa", "n_tem", "n_abs", "n_ret", "n_buff",
             "hidden", "compat", "seed", "kmeans_iters"]


def features(t, p, c, seed, scenes=4):
    """A stream with scene structure: each frame is one of a few scene
    prototypes plus noise, scenes switch every few frames, and some frames
    repeat exactly (a static camera) so ties and empty clusters occur."""
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(scenes, p * p, c, generator=g, dtype=torch.float64)
    out = []
    for i in range(t):
        s = (i // 5) % scenes
        if i % 7 == 3 and out:
            out.append(out[-1].clone())
            continue
        out.append(proto[s] + 0.3 * torch.randn(p * p, c, generator=g, dtype=torch.float64))
    return torch.stack(out).to(torch.float32)


def random_weights(hidden, c, seed):
    g = torch.Generator().manual_seed(seed)
    s = 1.0 / c**0.5
    return [
        (torch.randn(hidden, c, generator=g) * s).float(),
        (torch.randn(hidden, generator=g) * 0.1).float(),
        (torch.randn(hidden, c, generator=g) * s).float(),
        (torch.randn(hidden, generator=g) * 0.1).float(),
    ]


def run(name, cfg, weights, t, seed, checked):
    c = cfg
    feats = features(t, c["p_spa"], c["dim"], seed)
    mem = StarMemory(c, *weights)
    n_tok, labels, wts, ret, toks = [], [], [], [], {}
    for i in range(t):
        mem.push(feats[i])
        tk = mem.tokens()
        assert tk.shape[0] == token_count(c, i + 1), (tk.shape, token_count(c, i + 1))
        n_tok.append(tk.shape[0])
        labels.append(mem.labels + [-1] * (c["n_tem"] + 1 - len(mem.labels)))
        wts.append(mem.weights + [0.0] * (c["n_tem"] - len(mem.weights)))
        ret.append(mem.retrieved + [-1] * (c["n_ret"] - len(mem.retrieved)))
        if i in checked:
            toks["tokens_%d" % i] = tk.contiguous()
    cfg_vals = [int(c[k]) for k in CFG_ORDER] + [t, KMEANS_INITS.index(c.get("kmeans_init", "random"))]
    tensors = {
        "features": feats,
        "config": torch.tensor(cfg_vals, dtype=torch.int32),
        "alpha": torch.tensor([c["alpha"]], dtype=torch.float32),
        "q_w": weights[0].float(), "q_b": weights[1].float(),
        "k_w": weights[2].float(), "k_b": weights[3].float(),
        "n_tokens": torch.tensor(n_tok, dtype=torch.int32),
        "labels": torch.tensor(labels, dtype=torch.int32).reshape(t, c["n_tem"] + 1),
        "weights": torch.tensor(wts, dtype=torch.float32).reshape(t, c["n_tem"]),
        "retrieved": torch.tensor(ret, dtype=torch.int32).reshape(t, c["n_ret"]),
        "checked": torch.tensor(sorted(checked), dtype=torch.int32),
    }
    tensors.update(toks)
    st.save_file(tensors, os.path.join(OUT, name + ".safetensors"))
    clustered = sum(1 for row in labels if row[0] >= 0)
    print("%s: %d frames, %d clusterings, tokens %s" % (name, t, clustered, n_tok[-1]))


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    tiny_dir = os.path.join(ROOT, "models", "vstream-tiny")
    w = st.load_checkpoint(tiny_dir)
    pre = "model.attention_model."
    tiny_w = [w[pre + n].float() for n in ("q_proj.weight", "q_proj.bias", "k_proj.weight",
                                           "k_proj.bias")]
    tiny = config_from_json(st.load_config(tiny_dir), n_buff=12, seed=1234)
    every = set(range(0, 40, 3)) | {39}
    # vstream-tiny's own settings (4x4 maps -> 2x2 clusters, 6/6/3) with a
    # 12-frame buffer so the ring wraps.
    run("tiny", tiny, tiny_w, 40, 11, every)
    run("tiny_compat", dict(tiny, compat=True), tiny_w, 40, 11, every)
    run("tiny_ward", dict(tiny, kmeans_init="ward"), tiny_w, 40, 11, every)
    # An 8x8 grid with 2x2 abstract tokens, so the softmax runs over 4 keys
    # and the q/k projections matter.
    g8 = dict(dim=16, p_spa=8, p_tem=4, p_abs=2, n_spa=2, n_tem=5, n_abs=4, n_ret=3, n_buff=10,
              hidden=8, alpha=0.2, kmeans_iters=10, kmeans_tol=1e-4, compat=False, seed=77)
    run("grid8_abs2", g8, random_weights(8, 16, 5), 40, 12, every)
    # The release's sizes: 8x8 -> 4x4, 25/25/3/300, hidden 32, small width.
    full = dict(dim=16, p_spa=8, p_tem=4, p_abs=1, n_spa=1, n_tem=25, n_abs=25, n_ret=3,
                n_buff=300, hidden=32, alpha=0.2, kmeans_iters=10, kmeans_tol=1e-4,
                compat=False, seed=2024)
    run("default_sizes", full, random_weights(32, 16, 6), 60, 13, {0, 1, 2, 24, 25, 26, 27, 40, 59})
    # Ward-initialised k-means at the release's sizes, long enough for heavy clusters
    run("default_sizes_ward", dict(full, kmeans_init="ward"), random_weights(32, 16, 6), 90, 13,
        {0, 25, 26, 27, 50, 70, 89})
    # compat at the release's sizes: the abstract memory attends to 25 frames at a time
    run("default_sizes_compat", dict(full, compat=True), random_weights(32, 16, 6), 60, 13,
        {1, 26, 27, 45, 50, 51, 52, 59})


if __name__ == "__main__":
    main()
