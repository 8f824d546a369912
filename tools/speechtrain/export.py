"""Write the trained checkpoint as the bundled model directory.

    /usr/bin/python3 tools/speechtrain/export.py [--train data/speech-train]
        [--out models/flashspeech-tiny]

config.json (the training run's, with the vocoder's normalisation
constants, prompt_match and the decoder's noise gain; an existing
config's "vocoder_eq" is kept when its noise gain is the same, else
calibrate_eq.py must run after), model.safetensors (float32) and
training_log.txt (the run's progress lines)."""

import argparse
import json
import os
import shutil
import sys

import torch

# The noise's weight in voiced excitation: the decoded training sentences
# are then voiced (measures.py's YIN) as often as their recordings
# (TRAINING.md, "The decoder's noise gain and equaliser").
NOISE_GAIN = 0.15

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
    cfg["vocoder_noise_gain"] = NOISE_GAIN
    old_path = os.path.join(a.out, "config.json")
    old = {}
    if os.path.exists(old_path):
        with open(old_path, encoding="utf-8") as f:
            old = json.load(f)
    if "vocoder_eq" in old and old.get("vocoder_noise_gain") == NOISE_GAIN:
        cfg["vocoder_eq"] = old["vocoder_eq"]
    else:
        print("no vocoder_eq for this noise gain: run tools/speechtrain/calibrate_eq.py")
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
