#!/usr/bin/python3
"""The speech benchmark (`make bench-speech`, scripts/bench-speech.sh): the C
flashspeech on the held-out items of the corpus, 1 and 2 steps, each with
another utterance of the same voice as the prompt; the measures of
measures.py; a table on stdout and data/speech-bench/results.json.

    /usr/bin/python3 tools/speechcorpus/bench.py --flashspeech build/apps/flashspeech \
        --model models/flashspeech-tiny [--items 100] [--quick] [--steps 1 2]

--oracle F renders each item with espeak-ng itself (the item's voice, its
rate times F) instead of flashspeech: the scores of a model that got the
words and the voice right with other durations, to read the table against.

Progress goes to stderr."""

import argparse
import collections
import json
import math
import os
import random
import re
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measures as M  # noqa: E402

SPLITS = ("heldout-sent", "heldout-voice")
CANDIDATES = 20
CENTROID_UTTS = 10
SUMMARY = re.compile(r"([0-9.]+) s of audio at \d+ Hz in ([0-9.]+) s")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def load(corpus):
    with open(os.path.join(corpus, "manifest.jsonl"), encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    if not recs:
        raise SystemExit("bench: %s has no utterances" % corpus)
    return recs


def choose(recs, n):
    """n items per held-out split (seeded), each with its prompt: the next
    utterance of the same voice and split with another sentence."""
    items = []
    for split in SPLITS:
        pool = sorted((r for r in recs if r["split"] == split), key=lambda r: r["id"])
        if not pool:
            raise SystemExit("bench: the corpus has no '%s' utterances" % split)
        by_voice = collections.defaultdict(list)
        for r in pool:
            by_voice[r["voice"]].append(r)
        picked = random.Random(7).sample(pool, min(n, len(pool)))
        for r in sorted(picked, key=lambda r: r["id"]):
            same = by_voice[r["voice"]]
            k = same.index(r)
            prompt = next((same[(k + d) % len(same)] for d in range(1, len(same))
                           if same[(k + d) % len(same)]["text"] != r["text"]), None)
            if prompt is None:
                raise SystemExit("bench: voice %s has one utterance in %s" % (r["voice"], split))
            items.append((r, prompt))
    return items


def voice_space(recs, items, features):
    """The voice centroids of prompt fidelity, each from up to CENTROID_UTTS
    utterances of its voice that the items (and their prompts) do not use;
    features(rec) -> measures.Features."""
    used = {r["id"] for r, _ in items} | {p["id"] for _, p in items}
    by_voice = collections.defaultdict(list)
    for r in sorted(recs, key=lambda r: r["id"]):
        by_voice[r["voice"]].append(r)
    points = {}
    for v, rs in sorted(by_voice.items()):
        free = [r for r in rs if r["id"] not in used] or rs
        points[v] = [M.voice_point(features(r)) for r in free[:CENTROID_UTTS]]
    return M.VoiceSpace(points)


def synthesize(fs, model, text, prompt, steps, out):
    cmd = [fs, "-m", model, "--ref", prompt, "--steps", str(steps), "--seed", "0", text, "-o", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("bench: %s failed (exit %d):\n%s" % (" ".join(cmd), r.returncode,
                                                            r.stderr))
    m = SUMMARY.search(r.stderr)
    if not m:
        raise SystemExit("bench: no summary line on flashspeech's stderr:\n%s" % r.stderr)
    return float(m.group(1)), float(m.group(2))


class Oracle:
    """espeak-ng as the synthesizer, at another rate."""

    def __init__(self, factor):
        import espeak
        import make_corpus
        self.eng = espeak.Espeak()
        self.factor = factor
        self.to_wav = make_corpus.resample_to_wav

    def __call__(self, rec, out):
        p = rec["voice_params"]
        t = time.time()
        pcm, _ = self.eng.synth(rec["text"], rec["voice"], p["pitch"], int(p["rate"] * self.factor),
                                p["range"])
        n = self.to_wav(pcm, self.eng.rate, out)
        return n / M.SR, time.time() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flashspeech", default="build/apps/flashspeech")
    ap.add_argument("--model", default="models/flashspeech-tiny")
    ap.add_argument("--corpus", default="data/speech-corpus")
    ap.add_argument("--out", default="data/speech-bench")
    ap.add_argument("--items", type=int, default=100, help="items per held-out split")
    ap.add_argument("--quick", action="store_true", help="8 items per split")
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--oracle", type=float, metavar="F", help="espeak-ng at F times the rate")
    a = ap.parse_args()
    oracle = Oracle(a.oracle) if a.oracle else None
    if oracle:
        a.steps = [0]
    n = 8 if a.quick else a.items
    recs = load(a.corpus)
    items = choose(recs, n)
    wav = lambda r: os.path.join(a.corpus, r["wav"])  # noqa: E731
    cache = {}

    def feats(path):
        if path not in cache:
            cache[path] = M.Features(M.read_wav(path))
        return cache[path]

    space = voice_space(recs, items, lambda r: feats(wav(r)))
    log("bench: %d items, %d voice centroids, model %s" % (len(items), len(space.names), a.model))

    # Candidates for sentence identification: same voice and split, other sentences.
    pool = collections.defaultdict(list)
    for r in recs:
        if r["split"] in SPLITS:
            pool[(r["split"], r["voice"])].append(r)

    rows, per_item = [], []
    for steps in a.steps:
        odir = os.path.join(a.out, "steps%d" % steps)
        os.makedirs(odir, exist_ok=True)
        acc = collections.defaultdict(lambda: collections.defaultdict(list))
        t0 = time.time()
        for k, (r, prompt) in enumerate(items):
            out = os.path.join(odir, r["id"] + ".wav")
            if oracle:
                audio_s, synth_s = oracle(r, out)
            else:
                audio_s, synth_s = synthesize(a.flashspeech, a.model, r["text"], wav(prompt),
                                              steps, out)
            fo, fr = feats(out), feats(wav(r))
            mcd, path = M.mcd_dtw(fo, fr)
            rmse, pairs = M.f0_rmse(fo, fr, path)
            others = sorted((c for c in pool[(r["split"], r["voice"])] if c["text"] != r["text"]),
                            key=lambda c: c["id"])
            others = random.Random(r["id"]).sample(others, min(CANDIDATES - 1, len(others)))
            hit, _ = M.identify(fo, fr, [feats(wav(c)) for c in others])
            near = space.nearest(M.voice_point(fo))
            s = acc[r["split"]]
            s["mcd"].append(mcd)
            s["id"].append(hit)
            if pairs:
                s["f0"].append(rmse)
            s["fid"].append(near == r["voice"])
            s["audio"].append(audio_s)
            s["synth"].append(synth_s)
            s["candidates"].append(len(others) + 1)
            per_item.append({"steps": steps, "id": r["id"], "split": r["split"],
                             "voice": r["voice"], "prompt": prompt["id"], "mcd_dtw_db": mcd,
                             "identified": hit, "candidates": len(others) + 1,
                             "f0_rmse_hz": rmse if pairs else None, "f0_pairs": pairs,
                             "nearest_voice": near, "audio_s": audio_s, "synth_s": synth_s})
            if (k + 1) % 10 == 0 or k + 1 == len(items):
                log("bench: steps %d: %d/%d items (%.0f s)" % (steps, k + 1, len(items),
                                                              time.time() - t0))
        for split in SPLITS:
            s = acc[split]
            if not s["mcd"]:
                continue
            rows.append({"steps": steps, "split": split, "items": len(s["mcd"]),
                         "mcd_dtw_db": float(np.mean(s["mcd"])),
                         "sentence_id_pct": 100.0 * float(np.mean(s["id"])),
                         "candidates_min": int(min(s["candidates"])),
                         "f0_rmse_hz": float(np.mean(s["f0"])) if s["f0"] else None,
                         "f0_items": len(s["f0"]),
                         "prompt_fidelity_pct": 100.0 * float(np.mean(s["fid"])),
                         "rtf": float(sum(s["synth"]) / sum(s["audio"]))})

    what = "espeak-ng at %g x rate (oracle; steps 0)" % a.oracle if oracle else a.model
    print("model: %s (%d items per split, seed 0)" % (what, n))
    print("| steps | split | items | MCD-DTW dB | sentence id % | F0 RMSE Hz | prompt fidelity % "
          "| RTF |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for w in rows:
        f0 = "%.1f" % w["f0_rmse_hz"] if w["f0_rmse_hz"] is not None else "n/a"
        print("| %d | %s | %d | %.2f | %.1f | %s | %.1f | %.4f |" % (
            w["steps"], w["split"], w["items"], w["mcd_dtw_db"], w["sentence_id_pct"], f0,
            w["prompt_fidelity_pct"], w["rtf"]))
    res = {"model": what, "flashspeech": a.flashspeech, "corpus": a.corpus,
           "items_per_split": n, "rows": rows, "items": per_item,
           "nproc": os.cpu_count(), "loadavg": os.getloadavg(),
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=lambda o: None if isinstance(o, float) and
                  math.isnan(o) else o)
        f.write("\n")
    log("bench: wrote %s" % os.path.join(a.out, "results.json"))


if __name__ == "__main__":
    main()
