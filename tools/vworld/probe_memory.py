#!/usr/bin/env python3
"""What the STAR memory holds, independently of the language model.

Linear max-probes on cached memory snapshots (train.py's memory stage): a
linear map from each 128-d memory token to one logit per class, max over
the tokens of a memory part, sigmoid. Targets are sets over the stream up
to the snapshot's time t:

  backgrounds  which of the 6 background colours have been shown
  combos       which (colour, shape) pairs have been shown (occurrence)

Trained on training streams, scored on the validation streams: the exact
set, its size (what the count questions ask) and per-class accuracy. When a
linear probe reads a set off the memory but the language model miscounts
it, the language model is what fails, not the memory.

  /usr/bin/python3 tools/vworld/probe_memory.py --train data/vstream-train6
"""
import argparse
import glob
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from tools.vworld import model as M, world as W  # noqa: E402

COMBOS = [(c, s) for c in W.COLOURS for s in W.SHAPES]


def memory_parts():
    """Slices of the full memory (FastStar.tokens(): abstract, temporal,
    retrieved, spatial) for the sizes train.py uses, and the total."""
    c = M.memory_config(M.full_config(512))
    sizes = [("abstract", c["n_abs"] * c["p_abs"] ** 2), ("temporal", c["n_tem"] * c["p_tem"] ** 2),
             ("retrieved", c["n_ret"] * c["p_spa"] ** 2), ("spatial", c["n_spa"] * c["p_spa"] ** 2)]
    parts, at = {}, 0
    for name, n in sizes:
        parts[name] = slice(at, at + n)
        at += n
    return dict(all=slice(0, at), **parts), at


def seen_sets(world, times, what):
    """The target set at each time in `times` (ascending)."""
    out, seen, i = [], set(), 0
    for t in times:
        if what == "backgrounds":
            seen = {world.scenes[j]["background"] for j in range(world._scene_index(t) + 1)}
            out.append([float(b in seen) for b in W.BACKGROUNDS])
            continue
        while i <= t:
            seen |= {(o["colour"], o["shape"]) for o in world.objects_at(i)}
            i += 1
        out.append([float(c in seen) for c in COMBOS])
    return out


def load(files, every, what, full):
    xs, ys = [], []
    for f in files:
        world = W.World(int(os.path.basename(f)[:-3]))
        snaps = [s for s in torch.load(f)[::every] if s["tokens"].shape[0] == full]  # memory filled
        xs += [s["tokens"].float() for s in snaps]
        ys += [torch.tensor(y) for y in seen_sets(world, [s["t"] for s in snaps], what)]
    return torch.stack(xs), torch.stack(ys)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default="data/vstream-train6", help="a train.py output directory")
    p.add_argument("--streams", type=int, default=120, help="training streams for the probe")
    p.add_argument("--every", type=int, default=4, help="use every k-th training snapshot")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--what", default="backgrounds,combos")
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    tr = sorted(glob.glob(os.path.join(a.train, "streams", "*.pt")))[: a.streams]
    va = sorted(glob.glob(os.path.join(a.train, "val", "*.pt")))
    if not tr or not va:
        sys.exit("probe_memory: no cached snapshots under %s/streams and %s/val" % (a.train, a.train))
    parts, full = memory_parts()
    for what in a.what.split(","):
        xt, yt = load(tr, a.every, what, full)
        xv, yv = load(va, 1, what, full)
        mu, sd = xt.mean((0, 1)), xt.std((0, 1)) + 1e-4
        xt, xv = (xt - mu) / sd, (xv - mu) / sd
        print("%s: %d training snapshots (%d streams), %d validation snapshots" % (what, len(xt), len(tr), len(xv)))
        for part, sl in parts.items():
            lin = torch.nn.Linear(xt.shape[-1], yt.shape[1])
            opt = torch.optim.Adam(lin.parameters(), 3e-3)
            for _ in range(a.steps):
                idx = torch.randint(0, len(xt), (256,))
                z = lin(xt[idx, sl]).max(1).values
                loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                pv = (lin(xv[:, sl]).max(1).values > 0).float()
            print("  %-9s validation: set exact %.3f, set size exact %.3f, per class %.3f"
                  % (part, (pv == yv).all(1).float().mean(), (pv.sum(1) == yv.sum(1)).float().mean(),
                     (pv == yv).float().mean()))


if __name__ == "__main__":
    main()
