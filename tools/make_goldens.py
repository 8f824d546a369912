#!/usr/bin/python3
"""Golden inputs and outputs for the C parity tests, computed by the
reference implementation from the tiny checkpoints (run
tools/make_tiny_models.py first). Writes tests/data/models/goldens/.

Every golden is computed in float64 from the weights as stored (bf16
checkpoints are upcast exactly) and saved as float32; token ids are int32.
manifest.json describes each file and tensor. Deterministic: re-running
rewrites the same bytes.
Run: /usr/bin/python3 tools/make_goldens.py
"""

import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import clip, llama, projector  # noqa: E402
from reference import safetensors_io as st  # noqa: E402
from reference.preprocess import clip_preprocess, pil_resize_bicubic, shortest_side_size, test_image  # noqa: E402

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "models")
OUT = os.path.join(MODELS, "goldens")
F64 = torch.float64

# (name, height, width, seed): one landscape image downscaled, one portrait
# image upscaled, so both resize branches and both crop axes are exercised.
IMAGES = [("image_a", 120, 160, 1), ("image_b", 76, 50, 2)]

PROMPT_LEN = 12
N_DECODE = 64
N_LOGIT_STEPS = 8  # greedy_logits keeps the first steps' logits (and the last one) to stay small
# Smallest top1 - top2 gap along a greedy path, relative to that step's max |logit|: float32
# recomputation errs by ~1e-6 relative, so every step's argmax is unambiguous in float32.
MIN_REL_MARGIN = 1e-3
MIN_DISTINCT = 8  # the tiny models fall into repeats; a path of one token would hide a stale cache


def load(name):
    w = st.load_checkpoint(os.path.join(MODELS, name))
    cfg = st.load_config(os.path.join(MODELS, name))
    return {k: (t.to(F64) if t.is_floating_point() else t) for k, t in w.items()}, cfg


def f32(t):
    return t.detach().to(torch.float32).contiguous()


def i32(x):
    return torch.as_tensor(x, dtype=torch.int32)


def margin(logits):
    top = torch.topk(logits, 2, dim=-1).values
    return float((top[..., 0] - top[..., 1]).min())


def rel_margins(logits):
    """Per step: top1 - top2 over the step's max |logit| (the C tests' error measure)."""
    top = torch.topk(logits, 2, dim=-1).values
    return (top[..., 0] - top[..., 1]) / logits.abs().amax(dim=-1)


def describe(tensors):
    return {
        k: {"dtype": "I32" if t.dtype == torch.int32 else "F32", "shape": list(t.shape)}
        for k, t in sorted(tensors.items())
    }


def images():
    out = {}
    for name, h, w, seed in IMAGES:
        img = test_image(h, w, seed)
        fn = "%s_%dx%d.rgb" % (name, w, h)
        with open(os.path.join(OUT, fn), "wb") as f:
            f.write(img.tobytes())
        out[name] = (img, fn)
    return out


def clip_goldens(imgs, manifest):
    w, cfg_d = load("clip-tiny")
    cfg = clip.CLIPVisionConfig(cfg_d)
    t, entry = {}, {"checkpoint": "clip-tiny", "images": {}}
    for name, (img, fn) in imgs.items():
        pv = torch.from_numpy(clip_preprocess(img, cfg.image_size))
        hs, pooled = clip.forward(pv[None].to(F64), w, cfg)
        feats = hs[-2][0, 1:]
        rh, rw = shortest_side_size(img.shape[0], img.shape[1], cfg.image_size)
        resized = "%s_resized_%dx%d.rgb" % (name, rw, rh)
        with open(os.path.join(OUT, resized), "wb") as f:
            f.write(pil_resize_bicubic(img, rw, rh).tobytes())
        t[name + ".pixel_values"] = f32(pv)
        t[name + ".hidden_states"] = f32(torch.stack([h[0] for h in hs]))
        t[name + ".pooler_output"] = f32(pooled[0])
        t[name + ".features"] = f32(feats)
        for side in (4, 2, 1):
            t["%s.pool%dx%d" % (name, side, side)] = f32(projector.pool_grid(feats[None], side)[0])
        entry["images"][name] = {
            "file": fn,
            "height": img.shape[0],
            "width": img.shape[1],
            "resized_file": resized,
            "resized_height": rh,
            "resized_width": rw,
            "format": "raw RGB uint8, row-major HxWx3; resized_file is the Pillow-bicubic "
            "shortest-side resize before the crop",
        }
    st.save_file(t, os.path.join(OUT, "clip-tiny.safetensors"))
    entry["tensors"] = describe(t)
    entry["notes"] = (
        "pixel_values [3,112,112]: CLIPImageProcessor (shortest side -> 112 with Pillow-style bicubic, "
        "centre crop, /255, CLIP mean/std). hidden_states [L+1, 65, 48]: transformers' hidden_states "
        "(0 = pre_layrnorm output, i = after layer i; token 0 is CLS). pooler_output: post_layernorm(CLS of the "
        "last layer). features [64, 48] = hidden_states[-2] without CLS (mm_vision_select_layer -2, patch). "
        "poolKxK: features averaged over (8/K)x(8/K) blocks of the 8x8 row-major patch grid."
    )
    manifest["clip-tiny.safetensors"] = entry


def greedy_tensors(out, steps):
    return {
        "greedy_ids": i32(out),
        "greedy_logits": f32(steps[:N_LOGIT_STEPS]),
        "greedy_final_logits": f32(steps[-1]),
        "greedy_rel_margins": f32(rel_margins(steps)),
    }


def greedy_notes():
    return (
        "greedy_ids: %d tokens by argmax after the prompt, no EOS stop; greedy_logits [%d, vocab] are "
        "the logits that chose greedy_ids[0..%d] (row 0 = last prefill row), greedy_final_logits those "
        "that chose the last one; greedy_rel_margins[i]: top1 - top2 of step i over its max |logit| "
        "(>= %g on every step)." % (N_DECODE, N_LOGIT_STEPS, N_LOGIT_STEPS - 1, MIN_REL_MARGIN)
    )


def pick_prompt(w, cfg, seed, make_embeds):
    """A deterministic prompt whose greedy path has no near-ties, so a
    float32 runtime follows the same tokens as this float64 reference."""
    for attempt in range(1000):
        g = torch.Generator()
        g.manual_seed(seed * 1000 + attempt)
        ids = [cfg.bos_token_id] + torch.randint(3, cfg.vocab_size, (PROMPT_LEN - 1,), generator=g).tolist()
        x = make_embeds(ids)
        out, steps, prefill = llama.greedy(x, w, cfg, N_DECODE)
        # No EOS and several distinct tokens: a runtime that stops at EOS or
        # repeats a stale cache entry must still be caught.
        if (
            float(rel_margins(steps).min()) >= MIN_REL_MARGIN
            and len(set(out)) >= MIN_DISTINCT
            and cfg.eos_token_id not in out
        ):
            return ids, out, steps, prefill
    raise RuntimeError("no prompt with a clear greedy path")


def llama_goldens(name, seed, manifest):
    w, cfg_d = load(name)
    cfg = llama.LlamaConfig(cfg_d)
    ids, out, steps, prefill = pick_prompt(w, cfg, seed, lambda ids: llama.embed(torch.tensor(ids), w))
    hs = []
    full = llama.forward(llama.embed(torch.tensor(ids + out[:-1]), w), w, cfg, hidden_states=hs)
    # The cached decode must equal a fresh prefill over prompt + generated.
    assert torch.allclose(full[PROMPT_LEN - 1 :], steps, atol=1e-9, rtol=0), name
    t = {
        "input_ids": i32(ids),
        "logits": f32(prefill),
        "hidden_states": f32(torch.stack(hs)[:, :PROMPT_LEN]),
    }
    t.update(greedy_tensors(out, steps))
    fn = name + ".safetensors"
    st.save_file(t, os.path.join(OUT, fn))
    dtype = cfg_d.get("torch_dtype", "float32")
    manifest[fn] = {
        "checkpoint": name,
        "tensors": describe(t),
        "greedy_min_margin": round(margin(steps), 6),
        "greedy_min_rel_margin": round(float(rel_margins(steps).min()), 6),
        "notes": (
            "logits [12, vocab]: prefill of input_ids at positions 0..11. hidden_states [layers + 1, 12, hidden]: "
            "transformers' hidden_states of that prefill (0 = embeddings, i = after layer i, the last one after "
            "the final RMSNorm). %s Weights %s; computed in float64%s."
            % (greedy_notes(), dtype, ", bf16 weights upcast exactly" if dtype == "bfloat16" else "")
        ),
    }


def vstream_goldens(imgs, manifest):
    w, cfg_d = load("vstream-tiny")
    vcfg = clip.CLIPVisionConfig(cfg_d["vision_config"])
    lcfg = llama.LlamaConfig(cfg_d)
    vprefix = "model.vision_tower.vision_tower.vision_model."
    side = cfg_d["compress_size"]
    t = {}
    frames = []
    for name, (img, _) in imgs.items():
        pv = torch.from_numpy(clip_preprocess(img, vcfg.image_size))[None].to(F64)
        feats = clip.select_features(
            pv, w, vcfg, cfg_d["mm_vision_select_layer"], cfg_d["mm_vision_select_feature"], vprefix
        )
        pooled = projector.pool_grid(feats, side)[0]
        t[name + ".features"] = f32(feats[0])
        t[name + ".pooled"] = f32(pooled)
        frames.append(pooled)
    visual = torch.cat(frames, dim=0)
    proj = projector.mlp2x_gelu(visual, w)
    t["projected"] = f32(proj)

    def make_embeds(ids):
        # BOS + 4 text tokens, <image>, then the rest of the prompt.
        spliced = ids[:5] + [llama.IMAGE_TOKEN_INDEX] + ids[5:]
        make_embeds.ids = spliced
        return llama.splice_image_features(spliced, [proj], w)

    ids, out, steps, prefill = pick_prompt(w, lcfg, 7, make_embeds)
    spliced_ids = make_embeds.ids
    x = llama.splice_image_features(spliced_ids, [proj], w)
    t["input_ids"] = i32(spliced_ids)
    t["inputs_embeds"] = f32(x)
    t["logits"] = f32(prefill)
    t.update(greedy_tensors(out, steps))
    st.save_file(t, os.path.join(OUT, "vstream-tiny.safetensors"))
    manifest["vstream-tiny.safetensors"] = {
        "checkpoint": "vstream-tiny",
        "tensors": describe(t),
        "greedy_min_margin": round(margin(steps), 6),
        "greedy_min_rel_margin": round(float(rel_margins(steps).min()), 6),
        "notes": (
            "Weights bf16, upcast exactly; computed in float64. <name>.features [64, 48]: the embedded CLIP "
            "(model.vision_tower.vision_tower.vision_model.*) at mm_vision_select_layer, patch tokens, from the "
            "same pixel_values as clip-tiny.safetensors. <name>.pooled [16, 48]: compress_size 4 mean pooling "
            "(2x2 blocks). projected [32, 64]: mm_projector (mlp2x_gelu) of image_a.pooled then image_b.pooled. "
            "input_ids: LLaVA style, -200 (IMAGE_TOKEN_INDEX) marks where the 32 projected tokens are spliced; "
            "inputs_embeds [%d, 64] is the result; logits are its prefill at positions 0..%d. %s"
            % (x.shape[0], x.shape[0] - 1, greedy_notes())
        ),
    }


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for fn in os.listdir(OUT):
        os.remove(os.path.join(OUT, fn))
    manifest = {}
    imgs = images()
    clip_goldens(imgs, manifest)
    llama_goldens("llama-tiny", 1, manifest)
    llama_goldens("llama-tiny-bf16", 1, manifest)
    llama_goldens("llama-tiny-sharded", 2, manifest)
    vstream_goldens(imgs, manifest)
    manifest = {
        "about": "Goldens for tests/data/models/*, written by tools/make_goldens.py (see tools/README.md). "
        "Tensors are float32 unless listed I32. Regenerate: /usr/bin/python3 tools/make_tiny_models.py && "
        "/usr/bin/python3 tools/make_goldens.py",
        "files": manifest,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
