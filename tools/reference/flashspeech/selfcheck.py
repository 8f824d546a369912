#!/usr/bin/python3
"""Checks the FlashSpeech reference against independent formulations and the
checked-in goldens. Exits 1 on any mismatch.

/usr/bin/python3 tools/reference/flashspeech/selfcheck.py
"""

import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
from reference import safetensors_io as st  # noqa: E402
from reference.flashspeech import model as fs  # noqa: E402
from reference.flashspeech import noise as fsn  # noqa: E402

DATA = os.path.join(HERE, "..", "..", "..", "tests", "data", "speech")
failures = []


def check(name, ok, detail=""):
    print("%-48s %s %s" % (name, "ok" if ok else "FAIL", detail))
    if not ok:
        failures.append(name)


def close(a, b, tol):
    d = float((a - b).abs().max() / max(float(b.abs().max()), 1e-30))
    return d <= tol, "rel %.2e" % d


def attention_vs_nn():
    g = torch.Generator().manual_seed(1)
    cq, ckv, c, heads, nq, nk = 32, 24, 32, 2, 7, 5
    W = {}
    for p, i in (("q", cq), ("k", ckv), ("v", ckv), ("o", c)):
        W["a.%s.weight" % p] = torch.randn(c, i, generator=g, dtype=torch.float64)
        W["a.%s.bias" % p] = torch.randn(c, generator=g, dtype=torch.float64)
    xq = torch.randn(nq, cq, generator=g, dtype=torch.float64)
    xkv = torch.randn(nk, ckv, generator=g, dtype=torch.float64)
    mha = torch.nn.MultiheadAttention(c, heads, kdim=ckv, vdim=ckv, dtype=torch.float64)
    with torch.no_grad():
        mha.q_proj_weight.copy_(W["a.q.weight"])
        mha.k_proj_weight.copy_(W["a.k.weight"])
        mha.v_proj_weight.copy_(W["a.v.weight"])
        mha.in_proj_bias.copy_(torch.cat([W["a.q.bias"], W["a.k.bias"], W["a.v.bias"]]))
        mha.out_proj.weight.copy_(W["a.o.weight"])
        mha.out_proj.bias.copy_(W["a.o.bias"])
        ref = mha(xq[:, None], xkv[:, None], xkv[:, None], need_weights=False)[0][:, 0]
    check("attention vs nn.MultiheadAttention", *close(fs.attention(W, "a", xq, xkv, heads), ref, 1e-12))


def layer_norm_vs_f():
    x = torch.randn(5, 16, dtype=torch.float64)
    check("layer_norm vs F.layer_norm", *close(fs.layer_norm(x, 1e-5), F.layer_norm(x, (16,), eps=1e-5), 1e-12))


def sinusoid_loop():
    pos = torch.tensor([0.0, 3.0, -0.4])
    dim = 8
    ref = torch.zeros(3, dim, dtype=torch.float64)
    for i in range(3):
        for j in range(dim // 2):
            w = 10000.0 ** (-j / (dim // 2))
            ref[i, j] = math.sin(float(pos[i]) * w)
            ref[i, dim // 2 + j] = math.cos(float(pos[i]) * w)
    check("sinusoid vs loop", *close(fs.sinusoid(pos, dim), ref, 1e-12))


def precond_values():
    cfg = fs.Config({"phonemes": ["a"]})
    s80 = fs.precond(cfg, 80.0)
    s2 = fs.precond(cfg, 2.0)
    ok = (
        abs(s80[0] - 3.9e-5) < 1e-6
        and abs(s80[1] - 0.49998) < 1e-5
        and abs(s80[2] - 0.0125) < 1e-5
        and abs(s2[0] - 0.0589) < 1e-4
        and abs(s2[1] - 0.4846) < 1e-4
        and abs(s2[2] - 0.4851) < 1e-4
    )
    check("preconditioning check values (ALGORITHMS.md)", ok, "%s %s" % (s80[:3], s2[:3]))


def noise_vectorised():
    """The generator against a numpy formulation of the same definition."""
    n, seed = 9, 123456789
    k = np.arange(1, 2 * ((n + 1) // 2) + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + k * np.uint64(fsn.GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = ((z >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53
    r = np.sqrt(-2 * np.log(u[0::2]))
    ref = np.stack([r * np.cos(2 * np.pi * u[1::2]), r * np.sin(2 * np.pi * u[1::2])], 1).reshape(-1)[:n]
    got = fsn.normal(seed, n)
    check("noise vs numpy splitmix64 + Box-Muller", bool(np.all(got == ref.astype(np.float32))))
    big = fsn.normal(7, 20000)
    check("noise moments", abs(big.mean()) < 0.03 and abs(big.std() - 1) < 0.03,
          "mean %.3f std %.3f" % (big.mean(), big.std()))


def rounding_rules():
    d = fs.durations(torch.log(torch.tensor([1.5 + 1, 2.5 + 1, 0.4 + 1, 0.2], dtype=torch.float64)), 1.0)
    check("durations round half up, clamp at 0", d.tolist() == [2, 3, 0, 0], str(d.tolist()))
    cfg = fs.Config({"phonemes": ["a"]})
    b = fs.pitch_bins(torch.tensor([math.log(50.0), math.log(1100.0), 0.0, 20.0], dtype=torch.float64), cfg)
    check("pitch bins at the ends and clamped", b.tolist() == [0, 511, 0, 511], str(b.tolist()))


def codec_lengths():
    cfg = fs.Config(st.load_config(os.path.join(DATA, "flashspeech-tiny")))
    W = {k: v.double() for k, v in st.load_checkpoint(os.path.join(DATA, "flashspeech-tiny")).items()}
    lat = fs.encode_prompt(W, cfg, torch.zeros(3 * cfg.hop + 1, dtype=torch.float64))
    pcm = fs.codec_decode(W, cfg, torch.zeros(cfg.latent_dim, 3, dtype=torch.float64))
    check("codec: ceil(n / hop) frames, t * hop samples", lat.shape[0] == 4 and pcm.shape[0] == 3 * cfg.hop)
    x = torch.randn(cfg.latent_dim, 6, dtype=torch.float64) * 0.2
    qcfg = fs.Config(dict(st.load_config(os.path.join(DATA, "flashspeech-tiny")), codec_quantizers=2))
    q = fs.quantize(W, qcfg, x)
    ref = torch.zeros_like(x)
    for t in range(6):
        r = x[:, t].clone()
        for i in range(2):
            cb = W["codec.quantizer.%d.codebook" % i]
            k = int(torch.argmin(((cb - r[None, :]) ** 2).sum(1)))
            ref[:, t] += cb[k]
            r -= cb[k]
    check("residual VQ vs direct distances", *close(q, ref, 1e-12))


def goldens_float32():
    """A float32 run of the reference lands within the C tolerance of the
    float64 goldens (so 1e-4 is neither loose nor out of reach)."""
    d = os.path.join(DATA, "flashspeech-tiny")
    cfg = fs.Config(st.load_config(d))
    W = st.load_checkpoint(d)
    g = st.load_file(os.path.join(DATA, "goldens", "flashspeech-tiny.safetensors"))
    spk = fs.prompt_encoder(W, cfg, g["pipeline.prompt_latents"])
    check("prompt encoder f32 vs golden", *close(spk, g["prompt_encoder.out"], 1e-4))
    for steps in (1, 2):
        r = fs.synthesize(W, cfg, g["pipeline.ids"].long(), spk, g["pipeline.noise%d" % steps], steps=steps)
        same = r["durations"].tolist() == g["pipeline.durations%d" % steps].tolist()
        check("pipeline %d step(s) f32: durations" % steps, same)
        check("pipeline %d step(s) f32: pcm" % steps, *close(r["pcm"], g["pipeline.pcm%d" % steps], 1e-4))
        r2 = fs.synthesize(W, cfg, g["pipeline.ids"].long(), spk, fsn.Generator(1234), steps=steps)
        check("pipeline %d step(s): seed 1234 = stored noise" % steps,
              bool(torch.equal(r2["noise"], g["pipeline.noise%d" % steps])))


def main():
    torch.set_num_threads(1)
    attention_vs_nn()
    layer_norm_vs_f()
    sinusoid_loop()
    precond_values()
    noise_vectorised()
    rounding_rules()
    codec_lengths()
    goldens_float32()
    if failures:
        print("FAILED:", ", ".join(failures))
        sys.exit(1)
    print("all flashspeech reference checks passed")


if __name__ == "__main__":
    main()
