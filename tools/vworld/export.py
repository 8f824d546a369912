#!/usr/bin/python3
"""Export the trained vstream-tiny model in the Hugging Face layout the C
runtime loads (config.json with the Flash-VStream keys, model.safetensors
with the checkpoint's prefixed names, tokenizer.model, preprocessor_config.json)
plus the training log.

  /usr/bin/python3 tools/vworld/export.py [--train data/vstream-train] [--out models/vstream-tiny]
                                          [--latest]

--latest exports the newest language-stage checkpoint of a run still going
(language_latest.pt) instead of the finished language.pt.
"""

import argparse
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import model as M  # noqa: E402

sys.path.insert(0, os.path.join(HERE, ".."))
from reference import safetensors_io as st  # noqa: E402


def build(train_dir, latest):
    vision = torch.load(os.path.join(train_dir, "vision.pt"))
    name = "language_latest.pt" if latest else "language.pt"
    lang = torch.load(os.path.join(train_dir, name))
    prompt = M.Prompt(os.path.join(train_dir, "tokenizer.model"))
    cfg = M.full_config(prompt.vocab)
    g = torch.Generator()
    g.manual_seed(M.rstar.DEFAULTS["seed"] + 7)
    # The abstract memory's attention_model is never trained: with one new
    # frame per update its softmax is over a single key (the weight is alpha
    # whatever q and k are); it is written because the checkpoint has it.
    w = {k: v for k, v in M.init_connector(g).items() if k.startswith("model.attention_model.")}
    w.update(vision)
    w.update(lang)
    missing = [k for k in expected_names(prompt.vocab) if k not in w]
    if missing:
        raise SystemExit("export: missing tensors %s" % missing[:5])
    w = {k: v.detach().float().contiguous() for k, v in w.items()}
    return w, cfg


def expected_names(vocab):
    g = torch.Generator()
    names = set(M.init_vision(g)) | set(M.init_language(g, vocab)) | set(M.init_connector(g))
    return sorted(names)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default="data/vstream-train")
    p.add_argument("--out", default="models/vstream-tiny")
    p.add_argument("--latest", action="store_true")
    a = p.parse_args()
    w, cfg = build(a.train, a.latest)
    os.makedirs(a.out, exist_ok=True)
    M.write_json(os.path.join(a.out, "config.json"), cfg)
    M.write_json(os.path.join(a.out, "preprocessor_config.json"), M.preprocessor_config())
    st.save_file(w, os.path.join(a.out, "model.safetensors"))
    shutil.copyfile(os.path.join(a.train, "tokenizer.model"), os.path.join(a.out, "tokenizer.model"))
    log = os.path.join(a.train, "progress.txt")
    if os.path.exists(log):
        shutil.copyfile(log, os.path.join(a.out, "training_log.txt"))
    n = sum(t.numel() for t in w.values())
    size = os.path.getsize(os.path.join(a.out, "model.safetensors"))
    print("exported %s: %d tensors, %.2f M parameters, %.1f MB" % (a.out, len(w), n / 1e6, size / 1e6))


if __name__ == "__main__":
    main()
