"""Where prompt fidelity is lost: for bench.py's items (same choice, same
voice centroids), the voice point of the recording itself, of its vocoder
analysis-resynthesis (the codec alone, the model's config) and of each
given output folder (bench.py's steps1/, steps2/ ...), split into the
pitch and the envelope part of the distance to the item's own voice
centroid (sum over dimensions of (d / s)^2, measures.py), the share whose
nearest centroid is their voice, and the mean offset from the centroid per
dimension in within-voice standard deviations (the systematic bias).

    /usr/bin/python3 tools/speechtrain/fidelity.py [--model models/flashspeech-tiny]
        [--items 40] [--corpus data/speech-corpus] [OUTPUT_DIR ...]"""

import argparse
import collections
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "speechcorpus"))
import bench as B  # noqa: E402
import measures as M  # noqa: E402
from reference.flashspeech import vocoder as voc  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/flashspeech-tiny")
    ap.add_argument("--corpus", default="data/speech-corpus")
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("outputs", nargs="*")
    a = ap.parse_args()
    with open(os.path.join(a.model, "config.json"), encoding="utf-8") as f:
        p = voc.Params(json.load(f))
    recs = B.load(a.corpus)
    items = B.choose(recs, a.items)
    wav = lambda r: os.path.join(a.corpus, r["wav"])  # noqa: E731
    space = B.voice_space(recs, items, lambda r: M.Features(M.read_wav(wav(r))))
    sd = np.sqrt(space.var)
    acc = collections.defaultdict(list)
    for r, _ in items:
        x = M.read_wav(wav(r))
        xp = np.concatenate([x, np.zeros((-x.shape[0]) % p.hop)])
        y = voc.synthesise(voc.analyse(xp, p), p)
        y = np.round(np.clip(y, -1, 1) * 32767) / 32768.0
        sources = [("recording", x), ("resynthesis", y)]
        sources += [(o, M.read_wav(os.path.join(o, r["id"] + ".wav"))) for o in a.outputs]
        c = space.centroids[space.names.index(r["voice"])]
        for name, sig in sources:
            pt = M.voice_point(M.Features(sig))
            d = (pt - c) ** 2 / space.var
            acc[(r["split"], name)].append((space.nearest(pt) == r["voice"], d[0], d[1:].sum(),
                                            (pt - c) / sd))
    print("| split | audio | fidelity % | pitch part | envelope part |")
    print("| --- | --- | --- | --- | --- |")
    for (split, name), rows in acc.items():
        pitch = [q[1] for q in rows if not np.isnan(q[1])]
        print("| %s | %s | %.1f | %.2f | %.2f |" % (split, name, 100 * np.mean([q[0] for q in rows]),
                                                   np.mean(pitch) if pitch else float("nan"),
                                                   np.mean([q[2] for q in rows])))
    for (split, name), rows in acc.items():
        bias = np.nanmean(np.stack([q[3] for q in rows]), axis=0)
        print("%s %s: mean offset / sd (log2 F0, c1..c24): %s" % (
            split, name, " ".join("%.2f" % b for b in bias)))


if __name__ == "__main__":
    main()
