#!/usr/bin/python3
"""Checks the reference against independent formulations (torch.nn modules,
complex-number RoPE, per-head loops, torch's antialiased bicubic) and the
checked-in goldens against a fresh recompute. Exits non-zero on any mismatch.

Run: /usr/bin/python3 tools/reference/selfcheck.py
"""

import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference import clip, llama, projector  # noqa: E402
from reference import safetensors_io as st  # noqa: E402
from reference import preprocess as pp  # noqa: E402

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "models")
F64 = torch.float64
failures = []


def check(name, ok, detail=""):
    print("%-4s %s %s" % ("ok" if ok else "FAIL", name, detail))
    if not ok:
        failures.append(name)


def close(name, a, b, tol):
    err = float((a - b).abs().max() / (b.abs().max() + 1e-30))
    check(name, err <= tol, "rel max err %.2e (tol %.0e)" % (err, tol))


def rand(g, *shape, std=1.0):
    return torch.randn(*shape, generator=g, dtype=F64) * std


def check_clip_parts(g):
    b, n, d, heads = 2, 17, 48, 3
    x = rand(g, b, n, d)
    w = {}
    for p in ("q_proj", "k_proj", "v_proj", "out_proj"):
        w["a." + p + ".weight"] = rand(g, d, d, std=d**-0.5)
        w["a." + p + ".bias"] = rand(g, d, std=0.1)
    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True, dtype=F64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([w["a.%s_proj.weight" % c] for c in "qkv"]))
        mha.in_proj_bias.copy_(torch.cat([w["a.%s_proj.bias" % c] for c in "qkv"]))
        mha.out_proj.weight.copy_(w["a.out_proj.weight"])
        mha.out_proj.bias.copy_(w["a.out_proj.bias"])
        ref, _ = mha(x, x, x, need_weights=False)
    close("clip attention vs nn.MultiheadAttention", clip.attention(x, w, "a.", heads), ref, 1e-12)

    lw, lb = rand(g, d), rand(g, d)
    close("layer_norm vs F.layer_norm", clip.layer_norm(x, lw, lb, 1e-5), F.layer_norm(x, (d,), lw, lb, 1e-5), 1e-12)

    pix = rand(g, 2, 3, 28, 42)
    cw = rand(g, d, 3, 14, 14)
    conv = F.conv2d(pix, cw, stride=14).flatten(2).transpose(1, 2)
    close("patchify @ W vs F.conv2d", clip.patchify(pix, 14) @ cw.reshape(d, -1).t(), conv, 1e-12)


def check_projector(g):
    f = rand(g, 3, 64, 40)
    for side in (4, 2, 1):
        grid = f.reshape(3, 8, 8, 40).permute(0, 3, 1, 2)
        ref = F.avg_pool2d(grid, 8 // side).permute(0, 2, 3, 1).reshape(3, side * side, 40)
        close("pool_grid %dx%d vs F.avg_pool2d" % (side, side), projector.pool_grid(f, side), ref, 1e-12)
    x = rand(g, 100) * 4
    close("gelu vs F.gelu", projector.gelu(x), F.gelu(x), 1e-12)


def rope_complex(x, positions, d, theta, factor):
    """x [heads, T, d], rotate-half layout: element i pairs with i + d/2 as
    the complex number x_i + j x_{i+d/2}, rotated by pos/factor * theta^(-2i/d)."""
    h = d // 2
    z = torch.complex(x[..., :h], x[..., h:])
    ang = torch.outer(positions.to(F64) / factor, theta ** (-torch.arange(h, dtype=F64) * 2 / d))
    r = z * torch.polar(torch.ones_like(ang), ang)
    return torch.cat([r.real, r.imag], dim=-1)


def check_llama_parts(g):
    for theta, scaling in ((10000.0, None), (500000.0, {"type": "linear", "factor": 2.0})):
        cfg = llama.LlamaConfig(
            {"hidden_size": 64, "num_attention_heads": 4, "rope_theta": theta, "rope_scaling": scaling}
        )
        pos = torch.tensor([0, 1, 5, 17, 100, 1000])
        x = rand(g, 4, len(pos), 16)
        cos, sin = llama.rope_cos_sin(pos, cfg, F64)
        ref = rope_complex(x, pos, 16, theta, cfg.rope_factor)
        close("rope vs complex rotation (theta %g, %s)" % (theta, scaling), llama.apply_rope(x, cos, sin), ref, 1e-12)

    x = rand(g, 4, 64)
    rw = rand(g, 64)
    ref = (x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5)) * rw
    close("rms_norm", llama.rms_norm(x, rw, 1e-5), ref, 1e-12)

    # Attention (GQA, causal, with a cache offset) against per-head loops.
    cfg = llama.LlamaConfig({"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2})
    t_prev, t = 5, 4
    w = {}
    for p, rows in (("q_proj", 64), ("k_proj", 32), ("v_proj", 32), ("o_proj", 64)):
        w["a." + p + ".weight"] = rand(g, rows, 64, std=0.125)
    h_prev, h = rand(g, t_prev, 64), rand(g, t, 64)
    cache = llama.KVCache(1)
    cp, sp = llama.rope_cos_sin(torch.arange(t_prev), cfg, F64)
    llama.attention(h_prev, w, "a.", cfg, cp, sp, cache, 0, 0)
    c, s = llama.rope_cos_sin(torch.arange(t_prev, t_prev + t), cfg, F64)
    got = llama.attention(h, w, "a.", cfg, c, s, cache, 0, t_prev)
    allh = torch.cat([h_prev, h])
    pos = torch.arange(t_prev + t)
    q = (allh @ w["a.q_proj.weight"].t()).reshape(-1, 4, 16)
    k = (allh @ w["a.k_proj.weight"].t()).reshape(-1, 2, 16)
    v = (allh @ w["a.v_proj.weight"].t()).reshape(-1, 2, 16)
    out = torch.zeros(t, 64, dtype=F64)
    for hd in range(4):
        qh = rope_complex(q[:, hd][None], pos, 16, 10000.0, 1.0)[0]
        kh = rope_complex(k[:, hd // 2][None], pos, 16, 10000.0, 1.0)[0]
        for i in range(t):
            qi = t_prev + i
            sc = torch.tensor([float(qh[qi] @ kh[j]) / 4.0 for j in range(qi + 1)], dtype=F64)
            p = torch.exp(sc - sc.max())
            p = p / p.sum()
            out[i, hd * 16 : (hd + 1) * 16] = p @ v[: qi + 1, hd // 2]
    close("llama attention (GQA, causal, cached) vs per-head loop", got, out @ w["a.o_proj.weight"].t(), 1e-12)


def naive_llama(ids, w, c):
    """A second Llama written from the config dict alone: complex RoPE,
    explicit tril mask, heads mapped to KV heads by integer division."""
    d, nh = c["hidden_size"], c["num_attention_heads"]
    nkv = c.get("num_key_value_heads") or nh
    hd, eps = d // nh, c["rms_norm_eps"]
    sc = c.get("rope_scaling") or {}
    factor = sc.get("factor", 1.0)
    t = len(ids)
    pos = torch.arange(t)
    mask = torch.tril(torch.ones(t, t, dtype=torch.bool))

    def norm(x, wt):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * wt

    x = w["model.embed_tokens.weight"][ids]
    for i in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % i
        h = norm(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].t()).reshape(t, nh, hd)
        k = (h @ w[p + "self_attn.k_proj.weight"].t()).reshape(t, nkv, hd)
        v = (h @ w[p + "self_attn.v_proj.weight"].t()).reshape(t, nkv, hd)
        heads = []
        for j in range(nh):
            kv = j // (nh // nkv)
            qj = rope_complex(q[:, j][None], pos, hd, c["rope_theta"], factor)[0]
            kj = rope_complex(k[:, kv][None], pos, hd, c["rope_theta"], factor)[0]
            s = (qj @ kj.t()) / math.sqrt(hd)
            heads.append(torch.softmax(s.masked_fill(~mask, -1e300), -1) @ v[:, kv])
        x = x + torch.cat(heads, -1) @ w[p + "self_attn.o_proj.weight"].t()
        h = norm(x, w[p + "post_attention_layernorm.weight"])
        gate = h @ w[p + "mlp.gate_proj.weight"].t()
        act = gate / (1 + torch.exp(-gate)) * (h @ w[p + "mlp.up_proj.weight"].t())
        x = x + act @ w[p + "mlp.down_proj.weight"].t()
    x = norm(x, w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if c.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.t()


class ModuleCLIP(torch.nn.Module):
    """A second CLIP vision tower built from torch.nn modules."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg.hidden_size
        self.cfg = cfg
        self.patch = torch.nn.Conv2d(3, d, cfg.patch_size, cfg.patch_size, bias=False)
        self.cls = torch.nn.Parameter(torch.zeros(d))
        self.pos = torch.nn.Embedding(cfg.num_patches + 1, d)
        self.pre = torch.nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.layers = torch.nn.ModuleList()
        for _ in range(cfg.num_hidden_layers):
            m = torch.nn.Module()
            m.ln1 = torch.nn.LayerNorm(d, eps=cfg.layer_norm_eps)
            m.attn = torch.nn.MultiheadAttention(d, cfg.num_attention_heads, batch_first=True)
            m.ln2 = torch.nn.LayerNorm(d, eps=cfg.layer_norm_eps)
            m.fc1 = torch.nn.Linear(d, cfg.intermediate_size)
            m.fc2 = torch.nn.Linear(cfg.intermediate_size, d)
            self.layers.append(m)

    def load(self, w):
        pre = "vision_model."
        with torch.no_grad():
            self.patch.weight.copy_(w[pre + "embeddings.patch_embedding.weight"])
            self.cls.copy_(w[pre + "embeddings.class_embedding"])
            self.pos.weight.copy_(w[pre + "embeddings.position_embedding.weight"])
            self.pre.weight.copy_(w[pre + "pre_layrnorm.weight"])
            self.pre.bias.copy_(w[pre + "pre_layrnorm.bias"])
            for i, m in enumerate(self.layers):
                p = "%sencoder.layers.%d." % (pre, i)
                named = ((m.ln1, "layer_norm1"), (m.ln2, "layer_norm2"), (m.fc1, "mlp.fc1"), (m.fc2, "mlp.fc2"))
                for mod, name in named:
                    mod.weight.copy_(w[p + name + ".weight"])
                    mod.bias.copy_(w[p + name + ".bias"])
                a = p + "self_attn."
                m.attn.in_proj_weight.copy_(torch.cat([w[a + c + "_proj.weight"] for c in "qkv"]))
                m.attn.in_proj_bias.copy_(torch.cat([w[a + c + "_proj.bias"] for c in "qkv"]))
                m.attn.out_proj.weight.copy_(w[a + "out_proj.weight"])
                m.attn.out_proj.bias.copy_(w[a + "out_proj.bias"])
        return self

    def forward(self, pix):
        x = self.patch(pix).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], dim=1) + self.pos.weight
        x = self.pre(x)
        hs = [x]
        for m in self.layers:
            h = m.ln1(x)
            x = x + m.attn(h, h, h, need_weights=False)[0]
            h = m.fc1(m.ln2(x))
            x = x + m.fc2(h * torch.sigmoid(1.702 * h))
            hs.append(x)
        return hs


def check_whole_models(g):
    w = st.load_checkpoint(os.path.join(MODELS, "clip-tiny"))
    cfg = clip.CLIPVisionConfig(st.load_config(os.path.join(MODELS, "clip-tiny")))
    w = {k: v.to(F64) if v.is_floating_point() else v for k, v in w.items()}
    pix = rand(g, 2, 3, cfg.image_size, cfg.image_size)
    mine, _ = clip.forward(pix, w, cfg)
    with torch.no_grad():
        ref = ModuleCLIP(cfg).to(F64).load(w)(pix)
    close("clip-tiny forward vs nn.Module CLIP (all hidden states)", torch.stack(mine), torch.stack(ref), 1e-10)
    sel = clip.select_features(pix, w, cfg)
    close("select_features == hidden_states[-2][:, 1:]", sel, mine[-2][:, 1:], 0)

    # float32 vs float64 of the same model: the goldens' precision margin.
    w32 = {k: v.float() if v.is_floating_point() else v for k, v in w.items()}
    close("clip-tiny float32 vs float64", clip.forward(pix.float(), w32, cfg)[0][-1].double(), mine[-1], 1e-4)

    for name in ("llama-tiny", "llama-tiny-sharded"):
        lw = st.load_checkpoint(os.path.join(MODELS, name))
        lw = {k: v.to(F64) for k, v in lw.items()}
        cfg = llama.LlamaConfig(st.load_config(os.path.join(MODELS, name)))
        ids = torch.randint(0, cfg.vocab_size, (9,), generator=g)
        x = llama.embed(ids, lw)
        full = llama.forward(x, lw, cfg)
        cache = llama.KVCache(cfg.num_hidden_layers)
        parts = [llama.forward(x[a:b], lw, cfg, cache) for a, b in ((0, 4), (4, 5), (5, 9))]
        naive = naive_llama(ids, lw, st.load_config(os.path.join(MODELS, name)))
        close("%s: forward vs naive Llama from the config dict" % name, full, naive, 1e-12)
        close("%s: chunked cached forward vs one prefill" % name, torch.cat(parts), full, 1e-12)
        # A causal model's first k logits ignore everything after position k.
        close("%s: causality" % name, llama.forward(x[:5], lw, cfg), full[:5], 1e-12)


def check_safetensors(g):
    ts = {
        "b.f32": rand(g, 3, 5).float(),
        "a.bf16": rand(g, 7).to(torch.bfloat16),
        "c.f16": rand(g, 2, 2).half(),
        "d.i64": torch.arange(5, dtype=torch.int64)[None],
        "e.i32": torch.tensor([-200, 1, 2], dtype=torch.int32),
        "f.scalar": torch.tensor(3.5, dtype=torch.float32),
        "g.empty": torch.zeros(0, 4),
    }
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.safetensors")
        st.save_file(ts, p)
        back = st.load_file(p)
        ok = set(back) == set(ts) and all(back[k].dtype == v.dtype and torch.equal(back[k], v) for k, v in ts.items())
        check("safetensors round trip (F32 BF16 F16 I64 I32, scalar, empty)", ok)
        raw = open(p, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        hdr = json.loads(raw[8 : 8 + n])
        aligned = (8 + n) % 8 == 0 and all(
            e["data_offsets"][0] % back[k].element_size() == 0 for k, e in hdr.items() if k != "__metadata__"
        )
        check("safetensors data section and tensors aligned", aligned)
        st.save_sharded({k: v for k, v in ts.items() if k != "g.empty"}, d, 2)
        back = st.load_checkpoint(d)
        check("sharded round trip", all(torch.equal(back[k], ts[k]) for k in back) and len(back) == len(ts) - 1)


def check_preprocess(g):
    img = pp.test_image(120, 160, 1)
    check("resize to the same size is the identity", np.array_equal(pp.pil_resize_bicubic(img, 160, 120), img))
    flat = np.full((50, 70, 3), 77, np.uint8)
    check("flat image stays flat", np.all(pp.pil_resize_bicubic(flat, 31, 113) == 77))
    sizes = pp.shortest_side_size(120, 160, 112), pp.shortest_side_size(76, 50, 112)
    check("shortest side sizes", sizes == ((112, 149), (170, 112)), str(sizes))
    # Filter weights against torch's Pillow-compatible antialiased bicubic,
    # both passes in float (no intermediate uint8 rounding).
    x = torch.from_numpy(img).permute(2, 0, 1)[None].to(F64)
    for oh, ow in ((112, 149), (30, 40), (217, 300), (77, 160)):
        tmp = torch.zeros(1, 3, 120, ow, dtype=F64)
        for i, (xmin, w) in enumerate(pp.filter_weights(160, ow)):
            tmp[..., i] = x[..., xmin : xmin + len(w)] @ torch.tensor(w, dtype=F64)
        out = torch.zeros(1, 3, oh, ow, dtype=F64)
        for i, (ymin, w) in enumerate(pp.filter_weights(120, oh)):
            out[:, :, i] = torch.einsum("bcyx,y->bcx", tmp[:, :, ymin : ymin + len(w)], torch.tensor(w, dtype=F64))
        ref = F.interpolate(x, size=(oh, ow), mode="bicubic", align_corners=False, antialias=True)
        err = float((out - ref).abs().max())
        check("bicubic weights vs torch antialias 160x120 -> %dx%d" % (ow, oh), err < 1e-9, "max abs %.1e" % err)
    # The uint8 two-pass result stays within a grey level of the float one on
    # a smooth image (no clipping of the overshoot between passes).
    y, xg = np.mgrid[0:120, 0:160]
    smooth = np.stack([xg * 1.5, y * 2.0, 100 + 50 * np.sin(xg / 9.0 + y / 13.0)], -1).astype(np.uint8)
    a = pp.pil_resize_bicubic(smooth, 149, 112).astype(np.int32)
    ref = F.interpolate(
        torch.from_numpy(smooth).permute(2, 0, 1)[None].double(),
        size=(112, 149),
        mode="bicubic",
        antialias=True,
        align_corners=False,
    )
    ref = ref.round().clamp(0, 255)[0].permute(1, 2, 0).numpy().astype(np.int32)
    diff = int(np.abs(a - ref).max())
    check("uint8 resize within 1 level of float on a smooth image", diff <= 1, "max %d" % diff)
    pv = pp.clip_preprocess(img, 112)
    crop = pp.center_crop(pp.pil_resize_bicubic(img, 149, 112), 112) / 255.0
    manual = ((crop - np.array(pp.CLIP_MEAN)) / np.array(pp.CLIP_STD)).transpose(2, 0, 1)
    check("clip_preprocess vs float64 formula", pv.shape == (3, 112, 112) and np.abs(pv - manual).max() < 1e-5)


def check_goldens():
    gd = os.path.join(MODELS, "goldens")
    if not os.path.isdir(gd):
        check("goldens present", False, "run tools/make_goldens.py")
        return
    gold = st.load_file(os.path.join(gd, "clip-tiny.safetensors"))
    img = np.fromfile(os.path.join(gd, "image_a_160x120.rgb"), np.uint8).reshape(120, 160, 3)
    pv = torch.from_numpy(pp.clip_preprocess(img, 112))
    check("golden pixel_values recompute", torch.equal(pv, gold["image_a.pixel_values"]))
    w = st.load_checkpoint(os.path.join(MODELS, "clip-tiny"))
    cfg = clip.CLIPVisionConfig(st.load_config(os.path.join(MODELS, "clip-tiny")))
    w32 = {k: v.float() if v.is_floating_point() else v for k, v in w.items()}
    f = clip.select_features(gold["image_a.pixel_values"][None], w32, cfg)[0]
    close("golden clip features vs float32 recompute", f, gold["image_a.features"], 1e-4)
    for name in ("llama-tiny", "llama-tiny-bf16", "llama-tiny-sharded"):
        gold = st.load_file(os.path.join(gd, name + ".safetensors"))
        lw = {k: v.float() for k, v in st.load_checkpoint(os.path.join(MODELS, name)).items()}
        cfg = llama.LlamaConfig(st.load_config(os.path.join(MODELS, name)))
        ids, _, _ = llama.greedy(llama.embed(gold["input_ids"].long(), lw), lw, cfg, len(gold["greedy_ids"]))
        check("golden %s greedy path reproduced in float32" % name, ids == gold["greedy_ids"].tolist())


def main():
    torch.set_num_threads(1)
    g = torch.Generator()
    g.manual_seed(1234)
    check_clip_parts(g)
    check_projector(g)
    check_llama_parts(g)
    check_whole_models(g)
    check_safetensors(g)
    check_preprocess(g)
    check_goldens()
    if failures:
        print("%d check(s) failed: %s" % (len(failures), ", ".join(failures)))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
