"""How often the C runtime's output is voiced, against the recordings, on
training sentences (never the held-out ones): the check that picks the
vocoder's "vocoder_noise_gain" (TRAINING.md). Each of --n seeded training
utterances is synthesised with another utterance of its voice as the
prompt; prints, per model directory, voiced frames of the outputs over
voiced frames of the recordings (measures.py's YIN) and the mean MCD-DTW.

    /usr/bin/python3 tools/speechtrain/voicing.py --bin build/apps/flashspeech \\
        [--corpus data/speech-corpus] [--n 40] MODEL_DIR [MODEL_DIR ...]"""

import argparse
import collections
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "speechcorpus"))
import measures as M  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--corpus", default="data/speech-corpus")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    with open(os.path.join(a.corpus, "manifest.jsonl"), encoding="utf-8") as f:
        utts = [json.loads(line) for line in f if line.strip()]
    train = sorted((u for u in utts if u["split"] == "train"), key=lambda u: u["id"])
    by_voice = collections.defaultdict(list)
    for u in train:
        by_voice[u["voice"]].append(u)
    picked = random.Random(5).sample(train, min(a.n, len(train)))
    refs = {u["id"]: M.Features(M.read_wav(os.path.join(a.corpus, u["wav"]))) for u in picked}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.wav")
        for model in a.models:
            v_out = v_ref = 0
            mcd = []
            for u in picked:
                prompt = next((p for p in by_voice[u["voice"]] if p["text"] != u["text"]), None)
                if prompt is None:
                    continue
                subprocess.run([a.bin, "-q", "-m", model, "--ref", os.path.join(a.corpus, prompt["wav"]),
                                "--seed", "0", u["text"], "-o", out], check=True)
                fo, fr = M.Features(M.read_wav(out)), refs[u["id"]]
                v_out += int((fo.f0 > 0).sum())
                v_ref += int((fr.f0 > 0).sum())
                mcd.append(M.mcd_dtw(fo, fr)[0])
            print("%s: %d training sentences, voiced frames output / recording %.2f, MCD-DTW %.2f dB"
                  % (model, len(mcd), v_out / max(v_ref, 1), float(np.mean(mcd))), flush=True)


if __name__ == "__main__":
    main()
