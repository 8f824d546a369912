"""Analysis-resynthesis distortion of the vocoder codec alone: held-out
recordings analysed (vocoder.analyse) and decoded straight back
(vocoder.synthesise), MCD-DTW against the originals (measures.py's and
mcd.py's).

    /usr/bin/python3 tools/speechtrain/resynth.py [--model models/flashspeech-tiny]
        [--corpus data/speech-corpus] [--n 40]"""

import argparse
import json
import os
import random
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "speechcorpus"))
sys.path.insert(0, HERE)
import mcd  # noqa: E402
import measures as M  # noqa: E402
import wavio  # noqa: E402
from reference.flashspeech import vocoder as voc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/flashspeech-tiny")
    ap.add_argument("--corpus", default="data/speech-corpus")
    ap.add_argument("--n", type=int, default=40)
    a = ap.parse_args()
    with open(os.path.join(a.model, "config.json"), encoding="utf-8") as f:
        p = voc.Params(json.load(f))
    with open(os.path.join(a.corpus, "manifest.jsonl"), encoding="utf-8") as f:
        utts = [json.loads(line) for line in f if line.strip()]
    held = [u for u in utts if u["split"] != "train"]
    random.Random(1).shuffle(held)
    ours, theirs = [], []
    for u in held[: a.n]:
        x, _ = wavio.read(os.path.join(a.corpus, u["wav"]))
        x = np.concatenate([x, np.zeros((-x.shape[0]) % p.hop)])
        y = voc.synthesise(voc.analyse(x, p), p)
        y = np.round(np.clip(y, -1, 1) * 32767) / 32768.0  # as the 16-bit output file
        ours.append(mcd.mcd_dtw(x, y))
        theirs.append(M.mcd_dtw(M.Features(y), M.Features(x))[0])
    print("vocoder analysis-resynthesis, %d held-out recordings: MCD-DTW %.2f dB (measures.py), "
          "%.2f dB (mcd.py)" % (len(ours), float(np.mean(theirs)), float(np.mean(ours))))


if __name__ == "__main__":
    main()
