#!/usr/bin/python3
"""Write the tiny random FlashSpeech checkpoint (tests/data/speech/flashspeech-tiny/)
and the goldens the C model is checked against (tests/data/speech/goldens/).

Deterministic: every tensor comes from a torch.Generator seeded by its name,
goldens are computed on one thread in float64 from float32 weights and
inputs and stored as float32, so re-running rewrites the same bytes.
Run with Debian's interpreter: /usr/bin/python3 tools/make_tiny_speech.py
"""

import json
import math
import os
import sys
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import safetensors_io as st  # noqa: E402
from reference.flashspeech import model as fs  # noqa: E402
from reference.flashspeech import noise as fsn  # noqa: E402
from reference.flashspeech import vocoder as voc  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "speech")

# espeak-ng en-us style IPA; ids 0..3 are the specials.
PHONEMES = (
    ["<pad>", "<unk>", "<sil>", " ", ",", ".", "?", "!", ";", ":", "ˈ", "ˌ", "ː"]
    + list("abdefhijklmnoprstuvwxz")
    + ["æ", "ç", "ð", "ŋ", "ɐ", "ɑ", "ɒ", "ɔ", "ə", "ɚ", "ɛ", "ɜ", "ɡ", "ɪ", "ɹ", "ɾ"]
    + ["ʃ", "ʊ", "ʌ", "ʒ", "ʔ", "θ", "ᵻ", "aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "tʃ", "dʒ"]
    + ["iː", "uː", "ɑː", "ɔː", "ɜː", "ɪə", "eə", "ʊə", "n̩", "l̩", "ɐ̃"]
)

TINY = {
    "architectures": ["FlashSpeech"],
    "model_type": "flashspeech",
    "phoneme_vocab_size": len(PHONEMES),
    "phonemes": PHONEMES,
    "hidden_size": 32,
    "num_heads": 2,
    "encoder_layers": 2,
    "prompt_encoder_layers": 2,
    "ffn_filter": 48,
    "ffn_kernel": 9,
    "layer_norm_eps": 1e-5,
    "n_speaker_queries": 32,
    "prosody_heads": 2,
    "prosody_attn_period": 3,
    "duration_layers": 6,
    "duration_filters": 32,
    "duration_kernel": 3,
    "pitch_layers": 6,
    "pitch_filters": 32,
    "pitch_kernel": 5,
    "refiner_layers": 6,
    "refiner_channels": 32,
    "alpha": 0.2,
    "pitch_bins": 512,
    "pitch_min_hz": 50.0,
    "pitch_max_hz": 1100.0,
    "wavenet_layers": 6,
    "wavenet_channels": 32,
    "wavenet_kernel": 3,
    "wavenet_dilation_cycle": 2,
    "film_period": 3,
    "film_heads": 2,
    "time_embed_scale": 1000.0,
    "latent_dim": 16,
    "latent_norm": 3.0,
    "sample_rate": 16000,
    "codec_strides": [8, 5, 4, 2],
    "codec_encoder_channels": 4,
    "codec_decoder_channels": 32,
    "codec_kernel": 7,
    "codec_dilations": [1, 3, 9],
    "codec_quantizers": 0,
    "codec_codebook_size": 16,
    "sigma_data": 0.5,
    "sigma_min": 0.002,
    "sigma_max": 80.0,
    "sigma_inter": 2.0,
    "torch_dtype": "float32",
}


def shapes(cfg):
    """Every tensor name -> shape (the checkpoint format)."""
    c = fs.Config(cfg)
    H, V, Fd = c.hidden_size, len(c.phonemes), c.ffn_filter
    out = {}

    def lin(p, o, i):
        out[p + ".weight"] = [o, i]
        out[p + ".bias"] = [o]

    def cnv(p, o, i, k):
        out[p + ".weight"] = [o, i, k]
        out[p + ".bias"] = [o]

    def attn(p, cq, ckv, cm):
        lin(p + ".q", cm, cq)
        lin(p + ".k", cm, ckv)
        lin(p + ".v", cm, ckv)
        lin(p + ".o", cm, cm)

    def enc_layer(p, cond):
        attn(p + ".attn", H, H, H)
        cnv(p + ".ffn.conv1", Fd, H, c.ffn_kernel)
        cnv(p + ".ffn.conv2", H, Fd, 1)
        for n in ("norm1", "norm2"):
            if cond:
                lin(p + "." + n + ".scale", H, H)
                lin(p + "." + n + ".shift", H, H)
            else:
                out[p + "." + n + ".weight"] = [H]
                out[p + "." + n + ".bias"] = [H]

    out["phoneme_encoder.embed.weight"] = [V, H]
    for i in range(c.encoder_layers):
        enc_layer("phoneme_encoder.layers.%d" % i, True)
    lin("prompt_encoder.in_proj", H, c.latent_dim)
    for i in range(c.prompt_encoder_layers):
        enc_layer("prompt_encoder.layers.%d" % i, False)
    out["prompt_encoder.queries"] = [c.n_speaker_queries, H]
    attn("prompt_encoder.query_attn", H, H, H)

    for p, layers, f, k in (
        ("duration_predictor", c.duration_layers, c.duration_filters, c.duration_kernel),
        ("pitch_predictor", c.pitch_layers, c.pitch_filters, c.pitch_kernel),
    ):
        for i in range(layers):
            q = "%s.layers.%d" % (p, i)
            cnv(q + ".conv", f, H if i == 0 else f, k)
            out[q + ".norm.weight"] = [f]
            out[q + ".norm.bias"] = [f]
            if i % c.prosody_attn_period == c.prosody_attn_period - 1:
                attn(q + ".attn", f, H, f)
        lin(p + ".out", 1, f)
    out["pitch_embed.weight"] = [c.pitch_bins, H]

    def wavenet(p, cin, ch, cout, layers):
        cnv(p + ".in_proj", ch, cin, 1)
        lin(p + ".time_mlp.0", 4 * ch, ch)
        lin(p + ".time_mlp.2", ch, 4 * ch)
        for i in range(layers):
            q = "%s.layers.%d" % (p, i)
            lin(q + ".time", ch, ch)
            cnv(q + ".conv", 2 * ch, ch, c.wavenet_kernel)
            cnv(q + ".cond", 2 * ch, H, 1)
            cnv(q + ".out", 2 * ch, ch, 1)
            if i % c.film_period == c.film_period - 1:
                attn(q + ".film_attn", ch, H, ch)
                lin(q + ".film", 4 * ch, ch)
        cnv(p + ".skip_proj", ch, ch, 1)
        cnv(p + ".out_proj", cout, ch, 1)

    wavenet("duration_refiner", 1, c.refiner_channels, 1, c.refiner_layers)
    wavenet("pitch_refiner", 1, c.refiner_channels, 1, c.refiner_layers)
    wavenet("lcm", c.latent_dim, c.wavenet_channels, c.latent_dim, c.wavenet_layers)

    if c.codec_type == "vocoder":  # signal processing: no codec weights
        return out
    ck = c.codec_kernel
    ch = c.codec_encoder_channels
    cnv("codec.encoder.in_conv", ch, 1, ck)
    for b, s in enumerate(reversed(c.codec_strides)):
        q = "codec.encoder.blocks.%d" % b
        for r in range(len(c.codec_dilations)):
            cnv("%s.res.%d.conv1" % (q, r), ch, ch, ck)
            cnv("%s.res.%d.conv2" % (q, r), ch, ch, 1)
        cnv(q + ".down", 2 * ch, ch, 2 * s)
        ch *= 2
    cnv("codec.encoder.out_conv", c.latent_dim, ch, 3)
    for i in range(max(c.codec_quantizers, cfg.get("test_codebooks", 0))):
        out["codec.quantizer.%d.codebook" % i] = [c.codec_codebook_size, c.latent_dim]
    ch = c.codec_decoder_channels
    cnv("codec.decoder.in_conv", ch, c.latent_dim, ck)
    for b, s in enumerate(c.codec_strides):
        q = "codec.decoder.blocks.%d" % b
        out[q + ".up.weight"] = [ch, ch // 2, 2 * s]  # ConvTranspose1d: [Cin, Cout, K]
        out[q + ".up.bias"] = [ch // 2]
        ch //= 2
        for r in range(len(c.codec_dilations)):
            cnv("%s.res.%d.conv1" % (q, r), ch, ch, ck)
            cnv("%s.res.%d.conv2" % (q, r), ch, ch, 1)
    cnv("codec.decoder.out_conv", 1, ch, ck)
    return out


def gen(name):
    g = torch.Generator()
    g.manual_seed(zlib.crc32(name.encode()))
    return g


def init_tensor(name, shape):
    """Random weights scaled so activations stay O(1) through the tiny net;
    a few biases set so durations and pitch land in a useful range."""
    g = gen(name)
    x = torch.randn(shape, generator=g, dtype=torch.float32)
    leaf = name.rsplit(".", 1)[-1]
    if name.endswith("embed.weight") or name.endswith("queries"):
        return x
    if name.endswith(".codebook"):
        return x * 0.1
    if leaf == "bias":
        x = x * 0.05
        if name.endswith(".scale.bias"):
            x = x + 1.0
        if name == "duration_predictor.out.bias":
            x = torch.full(shape, math.log(4.0))
        if name == "pitch_predictor.out.bias":
            x = torch.full(shape, math.log(180.0))
        return x
    if len(shape) == 1:  # LayerNorm weight
        return 1.0 + 0.1 * x
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    if name.endswith(".up.weight"):
        fan_in = shape[0] * shape[2] // 2
    scale = 1.0 / math.sqrt(fan_in)
    if name.endswith(".scale.weight") or name.endswith(".shift.weight"):
        scale *= 0.3
    if name in ("duration_predictor.out.weight", "pitch_predictor.out.weight"):
        scale *= 0.05
    return x * scale


# The tiny checkpoint speaks with the paper's dense prompt latent (the
# default) and carries two codebooks, so the released-code quantizer mode
# (codec_quantizers 2) is tested from the same weights.
QUANTIZED = 2


def make_checkpoint(d):
    os.makedirs(d, exist_ok=True)
    w = {n: init_tensor(n, s) for n, s in shapes(dict(TINY, test_codebooks=QUANTIZED)).items()}
    st.save_file(w, os.path.join(d, "model.safetensors"))
    with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as f:
        json.dump(TINY, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return w


def rnd(name, shape, scale=1.0):
    return torch.randn(shape, generator=gen("golden." + name), dtype=torch.float32) * scale


def check_margin(log_dur, log_f0, cfg, speed):
    """Durations and pitch bins are rounded: a value near a rounding boundary
    could round the other way in float32, so the goldens avoid them."""
    v = (torch.exp(log_dur) - 1.0) / speed + 0.5
    lo, hi = math.log(cfg.pitch_min_hz), math.log(cfg.pitch_max_hz)
    b = (log_f0 - lo) / (hi - lo) * (cfg.pitch_bins - 1) + 0.5
    for x in (v, b):
        frac = x - torch.floor(x)
        assert float(torch.min(torch.minimum(frac, 1.0 - frac))) > 1e-3, "rounding too close"


def make_goldens(w32, d):
    """Per-module inputs/outputs and two whole-pipeline runs."""
    os.makedirs(d, exist_ok=True)
    cfg = fs.Config(TINY)
    W = {k: v.double() for k, v in w32.items()}
    H, D = cfg.hidden_size, cfg.latent_dim
    g = {}

    def put(k, v):
        g[k] = v.float() if v.is_floating_point() else v.to(torch.int32)

    def f64(k):
        return g[k].double()

    # codec encoder: 1.3 hops short of 8 frames, so the padding path runs
    n_pcm = 7 * cfg.hop + 130
    put("codec_encoder.pcm", 0.5 * torch.sin(torch.arange(n_pcm) * 0.07) + rnd("pcm", [n_pcm], 0.1))
    put("codec_encoder.out", fs.encode_prompt(W, cfg, f64("codec_encoder.pcm")))
    qcfg = fs.Config(dict(TINY, codec_quantizers=QUANTIZED))
    put("codec_encoder.quantized", fs.encode_prompt(W, qcfg, f64("codec_encoder.pcm")))
    gap = fs.quantizer_margin(W, qcfg, f64("codec_encoder.out").t() * cfg.latent_norm)
    assert gap > 1e-4, "a codeword choice is too close to call: %g" % gap
    # prompt encoder on 9 frames of latents
    put("prompt_encoder.latents", rnd("lat", [9, D]))
    put("prompt_encoder.out", fs.prompt_encoder(W, cfg, f64("prompt_encoder.latents")))
    spk = f64("prompt_encoder.out")
    ids = torch.tensor([3, 10, 20, 30, 40, 50, 5, 60, 13, 3, 7], dtype=torch.int64)
    put("phoneme_encoder.ids", ids)
    put("phoneme_encoder.out", fs.phoneme_encoder(W, cfg, ids, spk))
    h = f64("phoneme_encoder.out")
    put("duration_predictor.out", fs.duration_predictor(W, cfg, h, spk))
    # length regulator with speed 1.3
    put("length_regulator.log_dur", rnd("logdur", [11], 0.8) + 1.2)
    dur = fs.durations(f64("length_regulator.log_dur"), 1.3)
    put("length_regulator.durations", dur)
    put("length_regulator.out", fs.length_regulate(h, dur))
    e = f64("length_regulator.out")
    put("pitch_predictor.out", fs.pitch_predictor(W, cfg, e, spk))
    put("pitch_embed.log_f0", rnd("lf0", [e.shape[0]], 1.0) + 5.0)
    put("pitch_embed.out", fs.pitch_embed(W, cfg, e, f64("pitch_embed.log_f0")))
    check_margin(f64("length_regulator.log_dur"), f64("pitch_embed.log_f0"), cfg, 1.3)
    # refiners
    put("duration_refiner.init", rnd("dinit", [11]))
    put("duration_refiner.eps", rnd("deps", [11]))
    put(
        "duration_refiner.out",
        fs.refine(
            W, "duration_refiner", cfg, f64("duration_refiner.init"), f64("duration_refiner.eps"), h, spk
        ),
    )
    t = e.shape[0]
    put("pitch_refiner.init", rnd("pinit", [t]))  # O(1): an init near 5 would hide the residual in float32
    put("pitch_refiner.eps", rnd("peps", [t]))
    put(
        "pitch_refiner.out",
        fs.refine(W, "pitch_refiner", cfg, f64("pitch_refiner.init"), f64("pitch_refiner.eps"), e, spk),
    )
    # one consistency-function evaluation at sigma_max and at 2
    c = f64("pitch_embed.out")
    put("lcm.x", rnd("lcmx", [D, t]))
    for s, tag in ((cfg.sigma_max, "s80"), (2.0, "s2")):
        x = f64("lcm.x") * s
        put("lcm.out_" + tag, fs.consistency(W, "lcm", cfg, x, s, c.t(), spk, cfg.wavenet_layers))
    # codec decoder on 5 frames
    put("codec_decoder.z", rnd("z", [D, 5]))
    put("codec_decoder.out", fs.codec_decode(W, cfg, f64("codec_decoder.z") * cfg.latent_norm))

    # whole pipeline: ids + prompt latents + seeded noise (stored) -> waveform
    put("pipeline.ids", ids)
    put("pipeline.prompt_latents", g["prompt_encoder.latents"])
    for steps in (1, 2):
        r = fs.synthesize(W, cfg, ids, spk, fsn.Generator(1234), steps=steps)
        check_margin(r["log_dur"], r["log_f0"], cfg, 1.0)
        put("pipeline.noise%d" % steps, r["noise"])
        put("pipeline.durations%d" % steps, r["durations"])
        put("pipeline.latent%d" % steps, r["latent"])
        put("pipeline.pcm%d" % steps, r["pcm"])
    # zero prompt and speed 1.5, one step, seed 7
    r = fs.synthesize(W, cfg, ids, torch.zeros(cfg.n_speaker_queries, H, dtype=torch.float64),
                      fsn.Generator(7), steps=1, speed=1.5)
    check_margin(r["log_dur"], r["log_f0"], cfg, 1.5)
    put("pipeline.noise_zero", r["noise"])
    put("pipeline.durations_zero", r["durations"])
    put("pipeline.pcm_zero", r["pcm"])
    put("noise.seed42", torch.from_numpy(fsn.normal(42, 7)))
    st.save_file(g, os.path.join(d, "flashspeech-tiny.safetensors"))
    return g


# The same tiny network over the signal-processing codec: 14 mel bands
# (latent_dim 2 + 14), normalisation constants of a plausible scale.
VOC_BANDS = 14
TINY_VOCODER = dict(
    TINY,
    codec_type="vocoder",
    prompt_match=True,
    latent_norm=1.5,
    vocoder_hop=200,
    vocoder_win=400,
    vocoder_n_fft=512,
    vocoder_bands=VOC_BANDS,
    vocoder_mean=[math.log(150.0), 0.5] + [-4.0 - 0.2 * b for b in range(VOC_BANDS)],
    vocoder_scale=[0.5, 1.0] + [4.0 + 0.1 * b for b in range(VOC_BANDS)],
)
for _k in ("codec_strides", "codec_encoder_channels", "codec_decoder_channels", "codec_kernel",
           "codec_dilations", "codec_quantizers", "codec_codebook_size"):
    del TINY_VOCODER[_k]


def vocoder_test_audio(sr):
    """0.6 s of a harmonic tone gliding 120 -> 190 Hz, 0.2 s of noise, 0.2 s
    of silence, 0.05 s short of a whole frame (the padding path)."""
    n1, n2, n3 = int(0.6 * sr), int(0.2 * sr), int(0.2 * sr) - 50
    t = torch.arange(n1, dtype=torch.float64) / sr
    f0 = 120.0 + 70.0 * t / 0.6
    ph = 2.0 * math.pi * torch.cumsum(f0, 0) / sr
    tone = sum(0.3 / k * torch.sin(k * ph) for k in range(1, 12))
    noise = rnd("vocnoise", [n2], 0.05).double()
    return torch.cat([tone, noise, torch.zeros(n3, dtype=torch.float64)])


def check_vocoder_margins(pcm, p):
    """The encoder's voicing decisions and YIN's threshold crossings must not
    be within float32 reach of their thresholds."""
    x = pcm.numpy()
    x = np.concatenate([x, np.zeros((-x.shape[0]) % p.hop)])
    t = x.shape[0] // p.hop
    seg = voc.frames_of(x, p, p.win, t) * voc.hann(p.win)[None, :]
    rms = np.sqrt((seg * seg).sum(1) / (voc.hann(p.win) ** 2).sum())
    tmax = int(math.ceil(p.sr / voc.F0_MIN))
    f0, ap = voc.yin(voc.frames_of(x, p, p.yin_win + tmax + 2, t), p)
    loud = rms > 1e-6
    assert np.all(np.abs(ap[loud] - voc.VOICED_MAX_APERIODICITY) > 1e-3), "aperiodicity at threshold"
    assert np.all(np.abs(rms[loud] - voc.VOICED_MIN_RMS) > 1e-4), "frame level at threshold"


def pulse_margin(log_f0, p):
    """Smallest distance (in samples) of an excitation pulse from the next
    sample boundary: float32 F0 could move a pulse by a sample when small."""
    f0 = np.exp(voc.frame_to_samples(log_f0.numpy(), p))
    phase, worst = 0.0, 1.0
    for j in range(f0.shape[0]):
        inc = f0[j] / p.sr
        phase += inc
        if phase >= 1.0:
            over = (phase - 1.0) / inc
            worst = min(worst, over, 1.0 - over)
            phase -= math.floor(phase)
    return worst


def match_margin(cfg, z):
    """prompt_match's decisions on latents z [D, T] (x latent_norm): how far
    the voicing and the frame levels lie from their thresholds."""
    f = z.t() * torch.tensor(cfg.vocoder_scale, dtype=z.dtype) + torch.tensor(cfg.vocoder_mean, dtype=z.dtype)
    level = f[:, 2:].mean(1)
    loud = (level - (level.max() - fs.LOUD_RANGE)).abs().min()
    return float(min(loud, (f[:, 1] - fs.VOICED).abs().min()))


def make_vocoder(d_model, d_gold, w32):
    """The vocoder variant: checkpoint (the tiny weights minus the neural
    codec) and goldens of its encoder, decoder and pipeline."""
    os.makedirs(d_model, exist_ok=True)
    w = {k: v for k, v in w32.items() if not k.startswith("codec.")}
    st.save_file(w, os.path.join(d_model, "model.safetensors"))
    with open(os.path.join(d_model, "config.json"), "w", encoding="utf-8") as f:
        json.dump(TINY_VOCODER, f, indent=2, ensure_ascii=False)
        f.write("\n")
    cfg = fs.Config(TINY_VOCODER)
    W = {k: v.double() for k, v in w.items()}
    g = {}

    def put(k, v):
        g[k] = v.float() if v.is_floating_point() else v.to(torch.int32)

    def f64(k):
        return g[k].double()

    put("vocoder_encoder.pcm", vocoder_test_audio(cfg.sample_rate))
    check_vocoder_margins(f64("vocoder_encoder.pcm"), cfg.vocoder)
    put("vocoder_encoder.out", fs.encode_prompt(W, cfg, f64("vocoder_encoder.pcm")))
    # decoder: the encoder's latents (x latent_norm), once with its own F0
    # channel and once with a separate pitch stream
    z = f64("vocoder_encoder.out").t() * cfg.latent_norm
    put("vocoder_decoder.z", z)
    t = z.shape[1]
    put("vocoder_decoder.log_f0", math.log(140.0) + 0.2 * torch.sin(torch.arange(t) * 0.3))
    assert pulse_margin(f64("vocoder_decoder.log_f0"), cfg.vocoder) > 1e-3
    assert pulse_margin(f64("vocoder_decoder.z")[0], cfg.vocoder) > 1e-3
    put("vocoder_decoder.out", fs.vocoder_decode(cfg, f64("vocoder_decoder.z")))
    put("vocoder_decoder.out_f0",
        fs.vocoder_decode(cfg, f64("vocoder_decoder.z"), f64("vocoder_decoder.log_f0")))
    # whole pipeline, prompted with the test audio, 1 and 2 steps
    spk = fs.prompt_encoder(W, cfg, f64("vocoder_encoder.out"))
    ids = torch.tensor([3, 10, 20, 30, 40, 50, 5, 60, 13, 3, 7], dtype=torch.int64)
    put("pipeline.ids", ids)
    # a seed whose pulses all lie clear of sample boundaries (the C pitch
    # stream is float32: a pulse near one could land a sample away)
    seed = 99
    stats = fs.prompt_stats(cfg, f64("vocoder_encoder.out"))
    assert match_margin(cfg, f64("vocoder_encoder.out").t() * cfg.latent_norm) > 1e-3
    while True:
        r = [fs.synthesize(W, cfg, ids, spk, fsn.Generator(seed), steps=s, stats=stats) for s in (1, 2)]
        if all(pulse_margin(x["decoder_log_f0"], cfg.vocoder) > 0.03 and
               match_margin(cfg, x["latent"] * cfg.latent_norm) > 1e-3 for x in r):
            break
        seed += 1
    put("pipeline.seed", torch.tensor([seed]))
    for steps in (1, 2):
        r = fs.synthesize(W, cfg, ids, spk, fsn.Generator(seed), steps=steps, stats=stats)
        check_margin(r["log_dur"], r["log_f0"], cfg, 1.0)
        put("pipeline.durations%d" % steps, r["durations"])
        put("pipeline.log_f0%d" % steps, r["log_f0"])
        put("pipeline.latent%d" % steps, r["latent"])
        put("pipeline.pcm%d" % steps, r["pcm"])
    st.save_file(g, os.path.join(d_gold, "flashspeech-tiny-vocoder.safetensors"))
    return g


def make_full(d):
    """A random checkpoint at the default (paper) sizes, bf16, for timing
    only: python3 tools/make_tiny_speech.py --full DIR (about 0.9 GB)."""
    os.makedirs(d, exist_ok=True)
    cfg = {"architectures": ["FlashSpeech"], "model_type": "flashspeech",
           "phoneme_vocab_size": len(PHONEMES), "phonemes": PHONEMES}
    cfg.update(fs.DEFAULTS)
    cfg["torch_dtype"] = "bfloat16"
    w = {n: init_tensor(n, s).to(torch.bfloat16) for n, s in shapes(cfg).items()}
    st.save_file(w, os.path.join(d, "model.safetensors"))
    with open(os.path.join(d, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--full":
        make_full(sys.argv[2])
        return
    torch.set_num_threads(1)
    w = make_checkpoint(os.path.join(ROOT, "flashspeech-tiny"))
    g = make_goldens(w, os.path.join(ROOT, "goldens"))
    gv = make_vocoder(os.path.join(ROOT, "flashspeech-tiny-vocoder"), os.path.join(ROOT, "goldens"), w)
    print("vocoder pipeline seed", int(gv["pipeline.seed"][0]), "durations",
          gv["pipeline.durations1"].tolist())
    for k in ("pipeline.durations1", "pipeline.durations2", "pipeline.durations_zero"):
        print(k, g[k].tolist())


if __name__ == "__main__":
    main()
