"""Vocoder analysis of the corpus, cached for training.

    /usr/bin/python3 tools/speechtrain/prep.py --corpus data/speech-corpus --out data/speech-train

Writes OUT/feats.npz: every utterance's features (vocoder.analyse, float32,
concatenated; offsets per utterance), phoneme ids, per-phoneme durations in
frames, voice index, split, and the inventory. Resumable: analysed
utterances are kept in OUT/feats-partial/ until the final file is written."""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
from reference.flashspeech import vocoder as voc  # noqa: E402

import wavio  # noqa: E402

# The C frontend's specials (speech/frontend.c): "<sil>" is the pause
# symbol for punctuation the inventory lacks; "<pad>" and "<unk>" keep
# ids 0 and 1 as in the tiny checkpoint.
SPECIALS = ["<pad>", "<unk>", "<sil>"]
VOCODER = {"vocoder_hop": 200, "vocoder_win": 400, "vocoder_n_fft": 512, "vocoder_bands": 40}


def inventory(corpus):
    with open(os.path.join(corpus, "inventory.json"), encoding="utf-8") as f:
        syms = json.load(f)["symbols"]
    return SPECIALS + [s for s in syms if s not in SPECIALS]


def durations(ends, frames, fps):
    """Phoneme end times (s) -> frames per phoneme summing to frames: end
    boundaries rounded to frames, the last phoneme taking the rest."""
    b = np.minimum(np.round(np.asarray(ends) * fps).astype(np.int64), frames)
    b = np.maximum.accumulate(b)
    b[-1] = frames
    return np.diff(np.concatenate([[0], b]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="data/speech-corpus")
    ap.add_argument("--out", default="data/speech-train")
    a = ap.parse_args()
    os.makedirs(os.path.join(a.out, "feats-partial"), exist_ok=True)
    p = voc.Params(VOCODER)
    inv = inventory(a.corpus)
    sym_id = {s: i for i, s in enumerate(inv)}
    with open(os.path.join(a.corpus, "manifest.jsonl"), encoding="utf-8") as f:
        utts = [json.loads(line) for line in f if line.strip()]
    voices = sorted({u["voice"] for u in utts})
    rec = {k: [] for k in ("id", "split", "voice", "ids", "dur", "feats")}
    t0 = time.time()
    for k, u in enumerate(utts):
        part = os.path.join(a.out, "feats-partial", u["id"] + ".npy")
        if os.path.exists(part):
            feats = np.load(part)
        else:
            x, sr = wavio.read(os.path.join(a.corpus, u["wav"]))
            if sr != p.sr:
                raise SystemExit("%s: %d Hz, want %d" % (u["wav"], sr, p.sr))
            x = np.concatenate([x, np.zeros((-x.shape[0]) % p.hop)])
            feats = voc.analyse(x, p).astype(np.float32)
            np.save(part, feats)
        rec["id"].append(u["id"])
        rec["split"].append(u["split"])
        rec["voice"].append(voices.index(u["voice"]))
        rec["ids"].append(np.array([sym_id[s] for s in u["phonemes"]], dtype=np.int32))
        rec["dur"].append(durations(u["ends"], feats.shape[0], p.sr / p.hop).astype(np.int32))
        rec["feats"].append(feats)
        if k % 200 == 0:
            print("prep %d/%d (%.0f s)" % (k, len(utts), time.time() - t0), flush=True)
    off = np.cumsum([0] + [f.shape[0] for f in rec["feats"]])
    poff = np.cumsum([0] + [i.shape[0] for i in rec["ids"]])
    np.savez(
        os.path.join(a.out, "feats.npz"),
        feats=np.concatenate(rec["feats"]),
        offsets=off,
        ids=np.concatenate(rec["ids"]),
        dur=np.concatenate(rec["dur"]),
        ph_offsets=poff,
        voice=np.array(rec["voice"]),
        split=np.array(rec["split"]),
        utt_id=np.array(rec["id"]),
        voices=np.array(voices),
        inventory=np.array(inv),
        vocoder=json.dumps(VOCODER),
    )
    print("prep done: %d utterances, %d frames (%.0f s)" % (len(utts), off[-1], time.time() - t0))


if __name__ == "__main__":
    main()
