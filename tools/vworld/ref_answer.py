#!/usr/bin/python3
"""Answer the questions of rendered vworld streams with the PyTorch reference.

  ref_answer.py --model models/vstream-tiny --streams DIR
                [--memory full|spatial|no-temporal-retrieved|no-abstract]
                [--reference-memory] [--frames FILE.jsonl] --out FILE.jsonl

For every DIR/<id>.json (written by make_streams.py) the frames of
DIR/<id>.mp4 are decoded with the ffmpeg CLI to rgb24, preprocessed as
CLIPImageProcessor does, encoded by the CLIP tower (layer -2 patch tokens),
pooled and pushed into the STAR memory one by one. A question at time t is
answered from the memory after frame t (frames 0..t at 1 fps), with the
vicuna_v1 prompt of vstream/session.c and greedy decoding up to </s> or 16
tokens (--frames: a JSONL of {"id", "t", "question", "frames"}, e.g. the
C runtime's answers with "id" replaced by the stream id, makes a question
see exactly that many frames instead, for a like-for-like comparison with a
run whose file ingest ran ahead of the question). One JSON line per question: {"id", "t", "question", "answer"} plus
"kind" and "truth" (the world's answer); a per-kind exact-match summary
(normalize_answer) goes to stderr.

Memory ablations (what the benchmark applies in C): spatial = only the
spatial tokens; no-temporal-retrieved = abstract + spatial; no-abstract =
temporal + retrieved + spatial. The memory is tools/vworld/model.py's
FastStar, which gives the same tokens as tools/reference/star_memory.py
(model.py --check); --reference-memory runs the reference itself (slower).
"""

import argparse
import glob
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import model as M  # noqa: E402
from model import rclip, rllama, rpre, rproj, rstar  # noqa: E402
from tools.vworld.world import normalize_answer  # noqa: E402

sys.path.insert(0, os.path.join(HERE, ".."))
from reference import safetensors_io as st  # noqa: E402

MODES = ("full", "spatial", "no-temporal-retrieved", "no-abstract")
MAX_NEW = 16


class Model:
    def __init__(self, d):
        self.cfg = st.load_config(d)
        self.w = {k: v.float() for k, v in st.load_checkpoint(d).items()}
        self.vcfg = rclip.CLIPVisionConfig(self.cfg["vision_config"])
        self.lcfg = rllama.LlamaConfig(self.cfg)
        self.mcfg = rstar.config_from_json(self.cfg)
        self.prompt = M.Prompt(os.path.join(d, "tokenizer.model"))
        self.size = self.vcfg.image_size

    def features(self, frames):
        """[N, H, W, 3] uint8 -> [N, p_spa^2, C] pooled patch features."""
        pp = M.FastPreprocess(frames.shape[1], frames.shape[2], self.size)
        out = []
        with torch.no_grad():
            for i in range(0, frames.shape[0], 128):
                px = torch.from_numpy(pp(frames[i : i + 128]))
                f = rclip.select_features(px, self.w, self.vcfg, self.cfg.get("mm_vision_select_layer", -2),
                                          "patch", prefix=M.VISION)
                out.append(rproj.pool_grid(f, self.mcfg["p_spa"]))
        return torch.cat(out)

    def memory(self, reference):
        if not reference:
            return M.FastStar(self.mcfg)
        a = "model.attention_model."
        w = self.w
        return rstar.StarMemory(self.mcfg, w[a + "q_proj.weight"], w[a + "q_proj.bias"],
                                w[a + "k_proj.weight"], w[a + "k_proj.bias"])

    def answer(self, tokens, question):
        p = self.prompt
        ids = p.head + [rllama.IMAGE_TOKEN_INDEX] + p.tail(question)
        with torch.no_grad():
            vis = rproj.mlp2x_gelu(tokens, self.w)
            x = rllama.splice_image_features(ids, [vis], self.w)
            out, _, _ = rllama.greedy(x, self.w, self.lcfg, MAX_NEW, stop_at_eos=True)
        if out and out[-1] == p.eos:
            out = out[:-1]
        return p.decode(out)


def parts_of(mem):
    if isinstance(mem, M.FastStar):
        return mem.parts()
    return M.reference_parts(mem)


def answer_stream(model, meta, video, mode, reference, frames_at=None):
    frames = M.decode_video(video, meta["width"], meta["height"])
    feats = model.features(frames)
    mem = model.memory(reference)
    frames_at = frames_at or {}

    def last_frame(q):
        n = frames_at.get((meta["id"], int(q["t"]), q["question"]), int(q["t"]) + 1)
        return min(n, feats.shape[0]) - 1

    qs = sorted(meta["questions"], key=last_frame)
    out, pushed = [], 0
    for q in qs:
        t = last_frame(q)
        while pushed <= t:
            mem.push(feats[pushed])
            pushed += 1
        tokens = M.ablate(parts_of(mem), mode)
        a = model.answer(tokens, q["question"])
        out.append({"id": meta["id"], "t": q["t"], "question": q["question"], "answer": a,
                    "kind": q.get("kind"), "truth": q.get("answer"), "frames": t + 1})
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--streams", required=True)
    p.add_argument("--memory", choices=MODES, default="full")
    p.add_argument("--reference-memory", action="store_true")
    p.add_argument("--frames", help="JSONL of {id, t, question, frames}: answer after that many frames")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    frames_at = {}
    if a.frames:
        with open(a.frames) as fh:
            for ln in fh:
                r = json.loads(ln)
                frames_at[(r["id"], int(r["t"]), r["question"])] = int(r["frames"])
    torch.set_num_threads(1)
    model = Model(a.model)
    metas = sorted(glob.glob(os.path.join(a.streams, "*.json")))
    if not metas:
        sys.exit("ref_answer: no *.json in %s" % a.streams)
    score = {}
    with open(a.out, "w") as f:
        for mp in metas:
            with open(mp) as fh:
                meta = json.load(fh)
            video = mp[: -len(".json")] + ".mp4"
            for r in answer_stream(model, meta, video, a.memory, a.reference_memory, frames_at):
                f.write(json.dumps({k: r[k] for k in ("id", "t", "question", "answer", "kind", "truth", "frames")}) + "\n")
                if r["truth"] is not None:
                    ok = normalize_answer(r["answer"]) == normalize_answer(r["truth"])
                    score.setdefault(r["kind"], []).append(ok)
            f.flush()
    allv = [x for v in score.values() for x in v]
    if allv:
        line = " ".join("%s %.3f (%d)" % (k, np.mean(v), len(v)) for k, v in sorted(score.items()))
        print("ref_answer %s: overall %.3f (%d) %s" % (a.memory, np.mean(allv), len(allv), line), file=sys.stderr)


if __name__ == "__main__":
    main()
