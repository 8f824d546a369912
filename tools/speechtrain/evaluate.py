"""Quick held-out check of a FlashSpeech checkpoint with the PyTorch
reference: MCD-DTW (mcd.py) of synthesised held-out sentences against the
corpus recordings, prompted with another recording of the same voice.

    /usr/bin/python3 tools/speechtrain/evaluate.py --model models/flashspeech-tiny \\
        [--corpus data/speech-corpus] [--n 20] [--split heldout-sent] [--wavs DIR]
"""

import argparse
import json
import os
import random
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import mcd  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "speechcorpus"))
import measures as M  # noqa: E402
import wavio  # noqa: E402
from reference import safetensors_io as st  # noqa: E402
from reference.flashspeech import model as fs  # noqa: E402
from reference.flashspeech import noise as fsn  # noqa: E402


def load_model(d):
    with open(os.path.join(d, "config.json"), encoding="utf-8") as f:
        cfgd = json.load(f)
    w = st.load_file(os.path.join(d, "model.safetensors"))
    return {k: v.float() for k, v in w.items()}, fs.Config(cfgd)


def pick(corpus, split, n, seed=1):
    with open(os.path.join(corpus, "manifest.jsonl"), encoding="utf-8") as f:
        utts = [json.loads(line) for line in f if line.strip()]
    rng = random.Random(seed)
    held = [u for u in utts if u["split"] == split]
    rng.shuffle(held)
    prompts = {}
    for u in utts:
        if u["split"] != "train" or u["seconds"] < 2.0:
            prompts.setdefault(u["voice"], [])
            continue
        prompts.setdefault(u["voice"], []).append(u)
    out = []
    for u in held[:n]:
        cands = [p for p in prompts.get(u["voice"], []) if p["id"] != u["id"]]
        if not cands:  # held-out voices: another held-out recording
            cands = [p for p in utts if p["voice"] == u["voice"] and p["id"] != u["id"]]
        out.append((u, cands[rng.randrange(len(cands))]))
    return out


def voice_space(corpus, exclude):
    """Helper corpus's prompt-fidelity space (tools/speechcorpus/measures.py):
    centroids of 10 utterances per voice not in exclude."""
    with open(os.path.join(corpus, "manifest.jsonl"), encoding="utf-8") as f:
        utts = sorted((json.loads(line) for line in f if line.strip()), key=lambda u: u["id"])
    pts = {}
    for u in utts:
        if u["id"] in exclude or len(pts.get(u["voice"], [])) >= 10:
            continue
        x, _ = wavio.read(os.path.join(corpus, u["wav"]))
        pts.setdefault(u["voice"], []).append(M.voice_point(M.Features(x)))
    return M.VoiceSpace(pts)


def evaluate(W, cfg, corpus, pairs, steps=(1, 2), seed=0, wavs=None, space=None):
    """-> {steps: (mean MCD-DTW of mcd.py, of measures.py, prompt fidelity)}"""
    sym = {s: i for i, s in enumerate(cfg.phonemes)}
    res = {s: [] for s in steps}
    off = {s: [] for s in steps}
    hit = {s: [] for s in steps}
    with torch.no_grad():
        for u, p in pairs:
            ids = torch.tensor([sym.get(s, sym["<unk>"]) for s in u["phonemes"]])
            x, _ = wavio.read(os.path.join(corpus, p["wav"]))
            lat = fs.encode_prompt(W, cfg, torch.from_numpy(x).float())
            spk = fs.prompt_encoder(W, cfg, lat)
            stats = fs.prompt_stats(cfg, lat) if cfg.codec_type == "vocoder" else None
            ref, _ = wavio.read(os.path.join(corpus, u["wav"]))
            for s in steps:
                out = fs.synthesize(W, cfg, ids, spk, fsn.Generator(seed), steps=s, stats=stats)
                y = out["pcm"].double().numpy()
                res[s].append(mcd.mcd_dtw(ref, y))
                fy = M.Features(y)
                off[s].append(M.mcd_dtw(fy, M.Features(ref))[0])
                if space is not None:
                    hit[s].append(space.nearest(M.voice_point(fy)) == p["voice"])
                if wavs:
                    os.makedirs(wavs, exist_ok=True)
                    wavio.write(os.path.join(wavs, "%s-%d.wav" % (u["id"], s)), y)
    return {s: (float(np.mean(res[s])), float(np.mean(off[s])),
                float(np.mean(hit[s])) if hit[s] else float("nan")) for s in steps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/flashspeech-tiny")
    ap.add_argument("--corpus", default="data/speech-corpus")
    ap.add_argument("--split", default="heldout-sent")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--wavs", default=None)
    ap.add_argument("--prompt-match", type=int, default=None, help="override the config's")
    a = ap.parse_args()
    torch.set_num_threads(1)
    W, cfg = load_model(a.model)
    if a.prompt_match is not None:
        cfg.prompt_match = bool(a.prompt_match)
    pairs = pick(a.corpus, a.split, a.n)
    space = voice_space(a.corpus, {u["id"] for u, p in pairs} | {p["id"] for u, p in pairs})
    r = evaluate(W, cfg, a.corpus, pairs, wavs=a.wavs, space=space)
    for s, (v, o, fid) in r.items():
        print("%s: %d utterances, %d step(s): MCD-DTW %.2f dB (measures.py %.2f), prompt fidelity %.0f%%"
              % (a.split, a.n, s, v, o, 100 * fid))


if __name__ == "__main__":
    main()
