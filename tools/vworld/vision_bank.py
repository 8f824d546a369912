#!/usr/bin/python3
"""Pre-render frames for the vision stage of train.py (issue #7).

  /usr/bin/python3 tools/vworld/vision_bank.py --out data/vstream-train/bank --chunks 100 [--worker 0 --workers 2]

Each chunk is `chunk_NNNNN.npz`: CHUNK frames of random training-range
vision streams (seeds VISION_SEEDS + [0, 20000)), rendered, sent through the
streams' exact H.264 settings and decoded back (uint8 RGB), with their
frame_targets. Chunk k is drawn from its own seeded generator, so the bank is
the same whatever the number of workers or restarts; a chunk that exists is
skipped, so a killed run resumes. Rendering and H.264 cost about twice the
tower's forward and backward pass; with the bank the trainer does only the
latter (train.py --bank DIR).
"""

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import model as M  # noqa: E402
import train as T  # noqa: E402
from tools.vworld import world as W  # noqa: E402

FIELDS = ("cells", "quads", "whole", "cnt", "bg", "pat", "patch")


def make_chunk(k, size):
    rng = np.random.default_rng([T.SEED, 77, k])
    frames, tgs = [], []
    for _ in range(size):
        w = W.World(T.VISION_SEEDS + int(rng.integers(20_000)))
        i = int(rng.integers(w.duration_s))
        frames.append(w.frame(i))
        tgs.append(T.frame_targets(w, i))
    video = M.h264_roundtrip(np.stack(frames))
    cols = list(zip(*tgs))
    return {"frames": video, **{f: np.stack(c) if isinstance(c[0], np.ndarray) else np.array(c)
                                for f, c in zip(FIELDS, cols)}}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--chunks", type=int, default=100)
    p.add_argument("--chunk-size", type=int, default=480)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for k in range(a.worker, a.chunks, a.workers):
        path = os.path.join(a.out, "chunk_%05d.npz" % k)
        if os.path.exists(path):
            continue
        d = make_chunk(k, a.chunk_size)
        np.savez(path + ".tmp.npz", **d)
        os.replace(path + ".tmp.npz", path)
        print("chunk %d written" % k, flush=True)


if __name__ == "__main__":
    main()
