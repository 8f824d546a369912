"""PyTorch timing of the repository's FlashSpeech reference
(tools/reference/flashspeech) for `frt-bench tts`: random float32 weights at
the paper's sizes (or the tiny test sizes), drawn like the tiny checkpoint's
(tools/make_tiny_speech.py, so durations and pitch land in the same range as
the C side's), the zero prompt, seeded noise. Times the whole synthesis
(phoneme ids -> PCM) after one warm-up, best of --reps. Prints one JSON
object on stdout: {"sec": best seconds, "cpu_sec": process CPU seconds of
that run (all threads), "samples": PCM samples, "frames": latent frames,
"steps": s, "reps": n, "threads": t, "torch": version}.

Run with Debian's python3 (/usr/bin/python3), which has torch.
"""

import argparse
import json
import os
import sys
import time

import torch

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOOLS)
import make_tiny_speech as mts  # noqa: E402
from reference.flashspeech import model as fs  # noqa: E402
from reference.flashspeech import noise as fsn  # noqa: E402


def config(name):
    if name == "tiny":
        return dict(mts.TINY)
    cfg = {"model_type": "flashspeech", "phoneme_vocab_size": len(mts.PHONEMES),
           "phonemes": mts.PHONEMES}
    cfg.update(fs.DEFAULTS)
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", choices=("flashspeech-base", "tiny"), default="flashspeech-base")
    ap.add_argument("--ids", required=True, help="comma-separated phoneme ids")
    ap.add_argument("--steps", type=int, choices=(1, 2), default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg_d = config(a.config)
    cfg = fs.Config(cfg_d)
    W = {n: mts.init_tensor(n, s) for n, s in mts.shapes(cfg_d).items()}
    ids = torch.tensor([int(x) for x in a.ids.split(",")], dtype=torch.long)
    spk = torch.zeros(cfg.n_speaker_queries, cfg.hidden_size, dtype=torch.float32)

    def run():
        g = fsn.Generator(a.seed)
        with torch.no_grad():
            return fs.synthesize(W, cfg, ids, spk, g, steps=a.steps)

    out = run()  # warm-up
    best, best_cpu = None, 0.0
    for _ in range(max(1, a.reps)):
        c0, t0 = time.process_time(), time.perf_counter()
        out = run()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if best is None or dt < best:
            best, best_cpu = dt, dc
    print(json.dumps({"sec": best, "cpu_sec": best_cpu, "samples": int(out["pcm"].numel()),
                      "frames": int(out["expanded"].shape[0]), "steps": a.steps,
                      "reps": a.reps, "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
