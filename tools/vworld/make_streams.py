"""Render vworld streams to H.264 mp4 files with their questions as JSON.

  make_streams.py --split heldout|train --count N [--first K] [--minutes MIN MAX] --out DIR
  make_streams.py --seed S [--minutes M] [--id NAME] --out DIR

Per stream: DIR/<id>.mp4 (H.264, yuv420p, 1 fps, a keyframe every 10 s,
crf 18, single-threaded x264 so the bytes are reproducible) and DIR/<id>.json.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from tools.vworld.world import (  # noqa: E402
    FPS, HELDOUT_SEED_BASE, SIZE, TRAIN_SEED_MAX, World)

FFMPEG_ENCODE = [
    "-c:v", "libx264", "-preset", "medium", "-crf", "18", "-g", "10",
    "-keyint_min", "10", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
    "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
    "-map_metadata", "-1", "-movflags", "+faststart",
]


def stream_duration(seed, minutes):
    """Duration in seconds: drawn by World when minutes is None, else from
    [MIN, MAX] minutes with a generator of its own so it depends on the seed
    only."""
    if minutes is None:
        return None
    lo, hi = minutes
    if lo == hi:
        return int(round(lo * 60))
    rng = np.random.Generator(np.random.PCG64([seed, 0xD0]))
    return int(rng.integers(int(round(lo * 60)), int(round(hi * 60)) + 1))


def write_mp4(world, path):
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIZE}x{SIZE}",
           "-r", str(FPS), "-i", "-"] + FFMPEG_ENCODE + [path]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    try:
        chunk = 60
        for i0 in range(0, world.duration_s, chunk):
            i1 = min(world.duration_s, i0 + chunk)
            proc.stdin.write(world.frames(i0, i1).tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed writing {path} (exit {proc.returncode})")


def write_stream(seed, sid, out, minutes):
    world = World(seed, stream_duration(seed, minutes))
    mp4 = os.path.join(out, sid + ".mp4")
    tmp = mp4 + ".part.mp4"
    write_mp4(world, tmp)
    os.replace(tmp, mp4)
    meta = {"id": sid, "seed": seed, "duration_s": world.duration_s, "fps": FPS,
            "width": SIZE, "height": SIZE, "questions": world.questions()}
    with open(os.path.join(out, sid + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    return world


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=("heldout", "train"))
    p.add_argument("--count", type=int)
    p.add_argument("--first", type=int, default=0, help="index of the first stream (default 0)")
    p.add_argument("--seed", type=int, help="one stream with this seed")
    p.add_argument("--id", help="file name stem for --seed (default seed-<S>)")
    p.add_argument("--minutes", type=float, nargs="+", metavar="MIN",
                   help="duration range MIN MAX in minutes, or one value M")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.minutes is not None:
        if len(a.minutes) > 2:
            p.error("--minutes takes one value M or two values MIN MAX")
        if len(a.minutes) == 1:
            a.minutes = [a.minutes[0], a.minutes[0]]
        lo, hi = a.minutes
        if not 1 <= lo <= hi <= 30:
            p.error(f"--minutes must satisfy 1 <= MIN <= MAX <= 30, got {lo:g} {hi:g}")
    if a.seed is not None:
        if a.split is not None or a.count is not None:
            p.error("--seed makes one stream: it excludes --split and --count")
        if a.seed < 0:
            p.error(f"--seed must be non-negative, got {a.seed}")
    else:
        if a.split is None or a.count is None:
            p.error("give --split and --count, or --seed and --minutes")
        if a.count < 1 or a.first < 0:
            p.error(f"--count must be >= 1 and --first >= 0, got {a.count} and {a.first}")
        if a.split == "train" and a.first + a.count > TRAIN_SEED_MAX:
            p.error(f"train seeds must stay below {TRAIN_SEED_MAX}")
        if a.id is not None:
            p.error("--id only applies to --seed")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    os.makedirs(a.out, exist_ok=True)
    if a.seed is not None:
        jobs = [(a.seed, a.id or f"seed-{a.seed}")]
    else:
        base = HELDOUT_SEED_BASE if a.split == "heldout" else 0
        jobs = [(base + k, f"{a.split}-{k:03d}") for k in range(a.first, a.first + a.count)]
    for n, (seed, sid) in enumerate(jobs, 1):
        t0 = time.time()
        w = write_stream(seed, sid, a.out, a.minutes)
        print(f"[{n}/{len(jobs)}] {sid}: seed {seed}, {w.duration_s} s, "
              f"{len(w.questions())} questions, {time.time() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
