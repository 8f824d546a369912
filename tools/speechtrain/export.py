"""Write the trained checkpoint as the bundled model directory.

    /usr/bin/python3 tools/speechtrain/export.py [--train data/speech-train]
        [--out models/flashspeech-tiny]

config.json (the training run's, with the vocoder's normalisation
constants), model.safetensors (float32) and training_log.txt (the run's
progress lines)."""

import argparse
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from reference import safetensors_io as st  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", default="data/speech-train")
    ap.add_argument("--out", default="models/flashspeech-tiny")
    a = ap.parse_args()
    ck = torch.load(os.path.join(a.train, "ckpt.pt"))
    with open(os.path.join(a.train, "config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    # the prompt encoder alone does not carry unseen voices (TRAINING.md)
    cfg["prompt_match"] = True
    os.makedirs(a.out, exist_ok=True)
    w = {k: v.float().contiguous() for k, v in ck["params"].items()}
    st.save_file(w, os.path.join(a.out, "model.safetensors"))
    with open(os.path.join(a.out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)
        f.write("\n")
    shutil.copyfile(os.path.join(a.train, "progress.txt"), os.path.join(a.out, "training_log.txt"))
    s = ck["state"]
    n = sum(v.numel() for v in w.values())
    print("exported step %d (%.1f min): %d parameters to %s" % (s["step"], s["elapsed"] / 60, n, a.out))


if __name__ == "__main__":
    main()
