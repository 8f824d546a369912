"""The C runtime against the PyTorch reference on the trained model: the
same held-out sentences (their IPA, through the C frontend with
--phonemes), the same prompt recording and seed, 1 and 2 steps.

    /usr/bin/python3 tools/speechtrain/parity.py --bin build/apps/flashspeech \\
        [--model models/flashspeech-tiny] [--corpus data/speech-corpus] [--n 5]

The engine seeds each sentence from the seed and the sentence's text
(sentence_seed below). Prints per utterance the two lengths, the largest sample difference
relative to the reference's peak, and the MCD between the two outputs.
Exit status 1 when a length differs or an MCD exceeds 0.5 dB (float32
against float64 can move an excitation pulse by a sample, so the samples
are not compared exactly)."""

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import evaluate  # noqa: E402
import mcd  # noqa: E402
import wavio  # noqa: E402
from reference.flashspeech import model as fs  # noqa: E402
from reference.flashspeech import noise as fsn  # noqa: E402


M64 = (1 << 64) - 1


def sentence_seed(seed, text):
    """speech/engine.c: each sentence's noise seed, from the option's seed
    and the sentence's bytes (FNV-1a, then a splitmix64 finaliser)."""
    h = 0xCBF29CE484222325 ^ seed
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & M64
    h = (h + 0x9E3779B97F4A7C15) & M64
    h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & M64
    h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & M64
    return h ^ (h >> 31)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", default="models/flashspeech-tiny")
    ap.add_argument("--corpus", default="data/speech-corpus")
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    W, cfg = evaluate.load_model(a.model)
    W = {k: v.double() for k, v in W.items()}
    sym = {s: i for i, s in enumerate(cfg.phonemes)}
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for u, p in evaluate.pick(a.corpus, "heldout-sent", a.n, seed=7):
            ids = torch.tensor([sym[s] for s in u["phonemes"]])
            x, _ = wavio.read(os.path.join(a.corpus, p["wav"]))
            lat = fs.encode_prompt(W, cfg, torch.from_numpy(x))
            spk = fs.prompt_encoder(W, cfg, lat)
            stats = fs.prompt_stats(cfg, lat)
            for steps in (1, 2):
                out = os.path.join(tmp, "c.wav")
                subprocess.run(
                    [a.bin, "-q", "-m", a.model, "--phonemes", "-r", os.path.join(a.corpus, p["wav"]),
                     "--seed", str(a.seed), "--steps", str(steps), "-o", out, u["ipa"]],
                    check=True,
                )
                c, _ = wavio.read(out)
                with torch.no_grad():
                    r = fs.synthesize(W, cfg, ids, spk, fsn.Generator(sentence_seed(a.seed, u["ipa"])),
                                      steps=steps, stats=stats)
                ref = r["pcm"].numpy()
                same = c.shape[0] == ref.shape[0]
                m = mcd.mcd_aligned(ref, c) if same else float("inf")
                err = np.abs(c - ref).max() / np.abs(ref).max() if same else float("inf")
                print("%s steps %d: %d / %d samples, max diff %.3g of peak, MCD %.3f dB" % (
                    u["id"], steps, c.shape[0], ref.shape[0], err, m))
                bad += not same or m > 0.5
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
