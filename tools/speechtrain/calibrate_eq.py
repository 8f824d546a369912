"""Calibrate the vocoder's fixed equaliser ("vocoder_eq" in config.json,
tools/reference/flashspeech/vocoder.py): training recordings are analysed
and decoded back; per frequency bin, the mean log spectrum of the originals
minus that of the decodes (measures.py's frames and trimming: the domain of
the mel-cepstra that MCD and prompt fidelity read, sampled at the vocoder's
n_fft / 2 + 1 bins) is added to the equaliser; repeated --iters times.
Training utterances only: held-out sentences and voices are never read.

    /usr/bin/python3 tools/speechtrain/calibrate_eq.py [--config models/flashspeech-tiny/config.json]
        [--corpus data/speech-corpus] [--n 200] [--iters 4]

Writes "vocoder_eq" into --config (run after export.py, which writes the
config from the training run's)."""

import argparse
import json
import math
import os
import random
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "speechcorpus"))
import measures as M  # noqa: E402
from reference.flashspeech import vocoder as voc  # noqa: E402

# The deepest cut: 80 dB (log amplitude), below the 16-bit output's noise.
EQ_MIN = math.log(1e-4)


def mean_log_power(x, bins):
    """Mean over measures.py's trimmed frames of the log power spectrum
    (floored as there), at `bins` bins over 0..sr/2."""
    f = M._frames(x, M.WIN) * M._WIN_FN
    mag = np.abs(np.fft.rfft(f, M.NFFT, axis=1))
    floor = M._WIN_FN.sum() / 2 * 10 ** (M.FLOOR_DB / 20)
    a, b = M._speech_span(M._frame_db(x))
    lm = 2.0 * np.log(np.maximum(mag, floor))[a:b].mean(0)
    grid = np.linspace(0.0, 1.0, M.NFFT // 2 + 1)
    return np.interp(np.linspace(0.0, 1.0, bins), grid, lm)


def as_output(y):
    """The 16-bit output file's samples."""
    return np.round(np.clip(y, -1.0, 1.0) * 32767.0) / 32768.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="models/flashspeech-tiny/config.json")
    ap.add_argument("--corpus", default="data/speech-corpus")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--iters", type=int, default=4)
    a = ap.parse_args()
    with open(a.config, encoding="utf-8") as f:
        cfg = json.load(f)
    cfg.pop("vocoder_eq", None)
    p = voc.Params(cfg)
    bins = p.n_fft // 2 + 1
    with open(os.path.join(a.corpus, "manifest.jsonl"), encoding="utf-8") as f:
        utts = [json.loads(line) for line in f if line.strip()]
    train = sorted((u for u in utts if u["split"] == "train"), key=lambda u: u["id"])
    random.Random(3).shuffle(train)
    clips = []
    for u in train[: a.n]:
        x = M.read_wav(os.path.join(a.corpus, u["wav"]))
        x = np.concatenate([x, np.zeros((-x.shape[0]) % p.hop)])
        clips.append((voc.analyse(x, p), mean_log_power(x, bins)))
    eq = np.zeros(bins)
    for it in range(a.iters + 1):
        p.eq = eq
        diff = np.mean([ref - mean_log_power(as_output(voc.synthesise(f, p)), bins)
                        for f, ref in clips], axis=0)
        print("iteration %d: mean |log power difference| %.3f (max %.2f)" % (
            it, float(np.abs(diff).mean()), float(np.abs(diff).max())), flush=True)
        if it == a.iters:
            break
        eq = np.maximum(eq + 0.5 * diff, EQ_MIN)  # power -> amplitude
    cfg["vocoder_eq"] = [round(float(v), 5) for v in eq]
    with open(a.config, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote vocoder_eq (%d bins, %.1f to %.1f dB) to %s" % (
        bins, 20 * eq.min() / math.log(10), 20 * eq.max() / math.log(10), a.config))


if __name__ == "__main__":
    main()
