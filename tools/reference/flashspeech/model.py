"""FlashSpeech, written out as plain functions over a dict of weights.

Every function computes in the dtype of its inputs (the goldens use float64).
Layouts: transformer-side tensors are [T, H] (frame-major); convolution-side
tensors (WaveNet, codec) are [C, T] (channel-major), as in speech/*.c.
The checkpoint format and every choice the paper leaves open are listed in
README.md next to this file.
"""

import math

import torch
import torch.nn.functional as F

from . import vocoder

DEFAULTS = {
    "hidden_size": 512,
    "num_heads": 8,
    "encoder_layers": 6,
    "prompt_encoder_layers": 6,
    "ffn_filter": 2048,
    "ffn_kernel": 9,
    "layer_norm_eps": 1e-5,
    "n_speaker_queries": 32,
    "prosody_heads": 8,
    "prosody_attn_period": 3,
    "duration_layers": 30,
    "duration_filters": 512,
    "duration_kernel": 3,
    "pitch_layers": 30,
    "pitch_filters": 512,
    "pitch_kernel": 5,
    "refiner_layers": 30,
    "refiner_channels": 512,
    "alpha": 0.2,
    "pitch_bins": 512,
    "pitch_min_hz": 50.0,
    "pitch_max_hz": 1100.0,
    "wavenet_layers": 40,
    "wavenet_channels": 512,
    "wavenet_kernel": 3,
    "wavenet_dilation_cycle": 2,
    "film_period": 3,
    "film_heads": 8,
    "time_embed_scale": 1000.0,
    "latent_dim": 256,
    "latent_norm": 3.0,
    "sample_rate": 16000,
    "codec_strides": [8, 5, 4, 2],
    "codec_encoder_channels": 32,
    "codec_decoder_channels": 512,
    "codec_kernel": 7,
    "codec_dilations": [1, 3, 9],
    "codec_quantizers": 0,
    "codec_codebook_size": 1024,
    "sigma_data": 0.5,
    "sigma_min": 0.002,
    "sigma_max": 80.0,
    "sigma_inter": 2.0,
    "codec_type": "neural",
    "prompt_match": False,
}


class Config:
    def __init__(self, d):
        for k, v in DEFAULTS.items():
            setattr(self, k, d.get(k, v))
        self.phonemes = list(d["phonemes"])
        assert d.get("phoneme_vocab_size", len(self.phonemes)) == len(self.phonemes)
        self.hop = 1
        for s in self.codec_strides:
            self.hop *= s
        assert self.codec_type in ("neural", "vocoder")
        if self.codec_type == "vocoder":
            self.vocoder = vocoder.Params(d)
            self.hop = self.vocoder.hop
            self.vocoder_mean = list(d["vocoder_mean"])
            self.vocoder_scale = list(d["vocoder_scale"])
            assert self.latent_dim == self.vocoder.dim == len(self.vocoder_mean)


# ---- building blocks ---------------------------------------------------------


def linear(x, w, b=None):
    y = x @ w.t()
    return y if b is None else y + b


def lin(W, p, x):
    return linear(x, W[p + ".weight"], W[p + ".bias"])


def layer_norm(x, eps):
    """Normalisation over the last dim, no affine."""
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps)


def conv(W, p, x, stride=1, padding=0, dilation=1):
    """x [Cin, T] -> [Cout, T']; weight [Cout, Cin, K]."""
    return F.conv1d(x[None], W[p + ".weight"], W[p + ".bias"], stride, padding, dilation)[0]


def conv_same(W, p, x, dilation=1):
    k = W[p + ".weight"].shape[-1]
    return conv(W, p, x, 1, dilation * (k - 1) // 2, dilation)


def mish(x):
    return x * torch.tanh(F.softplus(x))


def sinusoid(pos, dim):
    """pos [T] -> [T, dim]: sin(pos w_j) in the first half, cos in the second,
    w_j = 10000^(-j / (dim / 2))."""
    half = dim // 2
    j = torch.arange(half, dtype=torch.float64)
    w = torch.exp(-math.log(10000.0) * j / half)
    a = pos.to(torch.float64)[:, None] * w[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


def attention(W, p, xq, xkv, heads):
    """Multi-head attention, no mask: xq [Nq, Cq], xkv [Nk, Ckv] -> [Nq, C]
    with q/k/v/o Linear layers (biases) under p."""
    q, k, v = lin(W, p + ".q", xq), lin(W, p + ".k", xkv), lin(W, p + ".v", xkv)
    nq, c = q.shape
    d = c // heads
    q = q.view(nq, heads, d).transpose(0, 1)
    k = k.view(-1, heads, d).transpose(0, 1)
    v = v.view(-1, heads, d).transpose(0, 1)
    a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(d), dim=-1)
    o = (a @ v).transpose(0, 1).reshape(nq, c)
    return lin(W, p + ".o", o)


# ---- encoders ------------------------------------------------------------------


def conv_ffn(W, p, x):
    """[T, H] -> conv (H->F, kernel K, same padding), ReLU, conv (F->H, 1) -> [T, H]."""
    y = torch.relu(conv_same(W, p + ".conv1", x.t()))
    return conv(W, p + ".conv2", y).t()


def cond_layer_norm(W, p, x, g, eps):
    """Conditional LayerNorm: LN(x) * scale(g) + shift(g), scale and shift
    Linear(H->H) of the global prompt vector g [H]."""
    return layer_norm(x, eps) * lin(W, p + ".scale", g) + lin(W, p + ".shift", g)


def plain_layer_norm(W, p, x, eps):
    return layer_norm(x, eps) * W[p + ".weight"] + W[p + ".bias"]


def encoder_layer(W, p, x, cfg, g=None):
    """Post-LN Transformer layer: x = LN(x + MHA(x)); x = LN(x + FFN(x)).
    LN is conditional on g when g is given (phoneme encoder)."""

    def norm(name, y):
        if g is None:
            return plain_layer_norm(W, p + "." + name, y, cfg.layer_norm_eps)
        return cond_layer_norm(W, p + "." + name, y, g, cfg.layer_norm_eps)

    x = norm("norm1", x + attention(W, p + ".attn", x, x, cfg.num_heads))
    return norm("norm2", x + conv_ffn(W, p + ".ffn", x))


def positions(n, dim, dtype):
    return sinusoid(torch.arange(n), dim).to(dtype)


def phoneme_encoder(W, cfg, ids, spk):
    """ids [N] -> h [N, H]; spk [Q, H] speaker tokens, g = their mean."""
    p = "phoneme_encoder"
    emb = W[p + ".embed.weight"]
    x = emb[ids] + positions(len(ids), cfg.hidden_size, emb.dtype)
    g = spk.mean(0)
    for i in range(cfg.encoder_layers):
        x = encoder_layer(W, "%s.layers.%d" % (p, i), x, cfg, g)
    return x


def prompt_encoder(W, cfg, lat):
    """Prompt latents [Tp, D] (already / latent_norm) -> speaker tokens [Q, H]:
    Linear(D->H) + positions, Transformer layers, then the Q learned queries
    attend (num_heads heads) over the result."""
    p = "prompt_encoder"
    x = lin(W, p + ".in_proj", lat)
    x = x + positions(x.shape[0], cfg.hidden_size, x.dtype)
    for i in range(cfg.prompt_encoder_layers):
        x = encoder_layer(W, "%s.layers.%d" % (p, i), x, cfg)
    return attention(W, p + ".query_attn", W[p + ".queries"], x, cfg.num_heads)


# ---- prosody ---------------------------------------------------------------------


def prosody_predictor(W, p, cfg, x, spk, layers, kernel):
    """x [L, H] -> [L]: layer i: y = LN(ReLU(conv_k(x))) (affine LN over
    channels); x = y (i = 0) or x + y; every period-th layer (i % period ==
    period - 1) x += MHA(x, spk). Then Linear(F->1)."""
    for i in range(layers):
        q = "%s.layers.%d" % (p, i)
        y = torch.relu(conv(W, q + ".conv", x.t(), padding=kernel // 2)).t()
        y = plain_layer_norm(W, q + ".norm", y, cfg.layer_norm_eps)
        x = y if i == 0 else x + y
        if i % cfg.prosody_attn_period == cfg.prosody_attn_period - 1:
            x = x + attention(W, q + ".attn", x, spk, cfg.prosody_heads)
    return lin(W, p + ".out", x)[:, 0]


def duration_predictor(W, cfg, h, spk):
    return prosody_predictor(
        W, "duration_predictor", cfg, h, spk, cfg.duration_layers, cfg.duration_kernel
    )


def pitch_predictor(W, cfg, e, spk):
    return prosody_predictor(W, "pitch_predictor", cfg, e, spk, cfg.pitch_layers, cfg.pitch_kernel)


def durations(log_d, speed):
    """log(d + 1) [N] -> frames [N] int: max(0, floor((exp(x) - 1) / speed + 0.5))."""
    d = torch.floor((torch.exp(log_d) - 1.0) / speed + 0.5)
    return torch.clamp(d, min=0).to(torch.int64)


def length_regulate(h, dur):
    """h [N, H], dur [N] -> [sum dur, H], row i repeated dur[i] times."""
    return torch.repeat_interleave(h, dur, dim=0)


def pitch_bins(log_f0, cfg):
    """Frame log f0 -> bin: round((lf0 - ln fmin) / (ln fmax - ln fmin) *
    (bins - 1)) (half up), clamped to [0, bins - 1]."""
    lo, hi = math.log(cfg.pitch_min_hz), math.log(cfg.pitch_max_hz)
    b = torch.floor((log_f0 - lo) / (hi - lo) * (cfg.pitch_bins - 1) + 0.5)
    return torch.clamp(b, 0, cfg.pitch_bins - 1).to(torch.int64)


def pitch_embed(W, cfg, e, log_f0):
    """Condition c = expanded hidden [T, H] + pitch_embed[bin(lf0)]."""
    return e + W["pitch_embed.weight"][pitch_bins(log_f0, cfg)]


# ---- WaveNet and consistency-model preconditioning -----------------------------------


def precond(cfg, s):
    sd, smin = cfg.sigma_data, cfg.sigma_min
    c_skip = sd * sd / ((s - smin) ** 2 + sd * sd)
    c_out = (s - smin) * sd / math.sqrt(s * s + sd * sd)
    c_in = 1.0 / math.sqrt(s * s + sd * sd)
    c_noise = math.log(s) / 4.0
    return c_skip, c_out, c_in, c_noise


def wavenet(W, p, cfg, x, c_noise, cond, spk, layers):
    """Non-causal WaveNet F: x [Cin, T], cond [Hc, T], spk [Q, H] -> [Cout, T].

    h = ReLU(in_proj(x)); temb = MLP(sinusoid(c_noise * time_embed_scale))
    (Linear C->4C, Mish, Linear 4C->C). Layer i (dilation
    2^(i % dilation_cycle)):
      u = h + time_i(temb)                       (per-layer Linear C->C)
      z = conv_dil(u) + cond_i(cond)              [2C, T]
      FiLM layers (i % film_period == film_period - 1):
        a = MHA(u^T, spk) [T, C]; gamma | beta = film_i(a) [T, 2C | 2C]
        z = z * (1 + gamma^T) + beta^T
      g = tanh(z[:C]) * sigmoid(z[C:]); o = out_i(g) [2C, T]
      h = (h + o[:C]) / sqrt(2); skip += o[C:]
    y = out_proj(ReLU(skip_proj(skip / sqrt(layers))))."""
    h = torch.relu(conv(W, p + ".in_proj", x))
    ch = h.shape[0]
    t = torch.tensor([c_noise * cfg.time_embed_scale], dtype=torch.float64)
    temb = sinusoid(t, ch).to(x.dtype)[0]
    temb = lin(W, p + ".time_mlp.2", mish(lin(W, p + ".time_mlp.0", temb)))
    skip = torch.zeros_like(h)
    for i in range(layers):
        q = "%s.layers.%d" % (p, i)
        u = h + lin(W, q + ".time", temb)[:, None]
        dil = 2 ** (i % cfg.wavenet_dilation_cycle)
        z = conv_same(W, q + ".conv", u, dil) + conv(W, q + ".cond", cond)
        if i % cfg.film_period == cfg.film_period - 1:
            a = attention(W, q + ".film_attn", u.t(), spk, cfg.film_heads)
            gb = lin(W, q + ".film", a)
            z = z * (1.0 + gb[:, : 2 * ch].t()) + gb[:, 2 * ch :].t()
        g = torch.tanh(z[:ch]) * torch.sigmoid(z[ch:])
        o = conv(W, q + ".out", g)
        h = (h + o[:ch]) / math.sqrt(2.0)
        skip = skip + o[ch:]
    s = skip / math.sqrt(layers)
    return conv(W, p + ".out_proj", torch.relu(conv(W, p + ".skip_proj", s)))


def consistency(W, p, cfg, x, s, cond, spk, layers):
    """f(x, s) = c_skip x + c_out F(c_in x, c_noise, cond, spk)."""
    c_skip, c_out, c_in, c_noise = precond(cfg, s)
    return c_skip * x + c_out * wavenet(W, p, cfg, c_in * x, c_noise, cond, spk, layers)


def refine(W, p, cfg, init, eps, cond, spk):
    """Prosody refinement: one consistency step on the residual.
    init [L], eps [L], cond [L, H] -> init + alpha * f(sigma_max eps, sigma_max)."""
    x = (cfg.sigma_max * eps)[None, :]
    r = consistency(W, p, cfg, x, cfg.sigma_max, cond.t(), spk, cfg.refiner_layers)
    return init + cfg.alpha * r[0]


def lcm_sample(W, cfg, cond, spk, eps1, eps2=None, sigma_inter=None):
    """cond [T, H]; eps [D, T]. One step: z = f(sigma_max eps1, sigma_max);
    two: z = f(z + sigma_inter eps2, sigma_inter). Returns z [D, T]."""
    c = cond.t()
    z = consistency(W, "lcm", cfg, cfg.sigma_max * eps1, cfg.sigma_max, c, spk, cfg.wavenet_layers)
    if eps2 is not None:
        si = cfg.sigma_inter if sigma_inter is None else sigma_inter
        z = consistency(W, "lcm", cfg, z + si * eps2, si, c, spk, cfg.wavenet_layers)
    return z


# ---- codec ------------------------------------------------------------------------------


def res_unit(W, p, x, dil):
    y = conv_same(W, p + ".conv1", F.silu(x), dil)
    return x + conv(W, p + ".conv2", F.silu(y))


def codec_encode(W, cfg, pcm):
    """pcm [n] (a multiple of hop) -> latents [D, n / hop] (not yet / latent_norm).
    Blocks use the strides reversed (smallest first): res units, SiLU,
    conv (C->2C, kernel 2s, stride s, padding ceil(s/2))."""
    p = "codec.encoder"
    x = conv_same(W, p + ".in_conv", pcm[None, :])
    for b, s in enumerate(reversed(cfg.codec_strides)):
        q = "%s.blocks.%d" % (p, b)
        for r, d in enumerate(cfg.codec_dilations):
            x = res_unit(W, "%s.res.%d" % (q, r), x, d)
        x = conv(W, q + ".down", F.silu(x), stride=s, padding=(s + 1) // 2)
    return conv_same(W, p + ".out_conv", F.silu(x))


def codec_decode(W, cfg, z):
    """z [D, T] (already x latent_norm) -> pcm [T * hop]: in_conv; per stride
    s (in order): SiLU, ConvTranspose (C->C/2, kernel 2s, stride s, padding
    ceil(s/2), output_padding s % 2), res units; SiLU, out_conv, tanh."""
    p = "codec.decoder"
    x = conv_same(W, p + ".in_conv", z)
    for b, s in enumerate(cfg.codec_strides):
        q = "%s.blocks.%d" % (p, b)
        x = F.conv_transpose1d(
            F.silu(x)[None],
            W[q + ".up.weight"],
            W[q + ".up.bias"],
            stride=s,
            padding=(s + 1) // 2,
            output_padding=s % 2,
        )[0]
        for r, d in enumerate(cfg.codec_dilations):
            x = res_unit(W, "%s.res.%d" % (q, r), x, d)
    return torch.tanh(conv_same(W, p + ".out_conv", F.silu(x)))[0]


def quantize(W, cfg, x):
    """Residual VQ (the released code's prompt latent; codec_quantizers 0,
    the paper's dense feature, skips it): x [D, T] -> sum of the chosen
    codewords. Per quantizer i, codeword k = argmin ||r - C_k||^2 computed as
    ||C_k||^2 - 2 r.C_k (lowest k on ties), r -= C_k."""
    r = x.t()
    q = torch.zeros_like(r)
    for i in range(cfg.codec_quantizers):
        cb = W["codec.quantizer.%d.codebook" % i]
        dist = (cb * cb).sum(1)[None, :] - 2.0 * (r @ cb.t())
        c = cb[torch.argmin(dist, dim=1)]
        q = q + c
        r = r - c
    return q.t()


def quantizer_margin(W, cfg, x):
    """Smallest gap between the best and second-best distance over all
    choices, relative to the distance scale (for the goldens)."""
    r = x.t()
    gap = float("inf")
    for i in range(cfg.codec_quantizers):
        cb = W["codec.quantizer.%d.codebook" % i]
        dist = (cb * cb).sum(1)[None, :] - 2.0 * (r @ cb.t())
        two = torch.topk(dist, 2, dim=1, largest=False).values
        scale = (r * r).sum(1) + (cb * cb).sum(1).max()
        gap = min(gap, float(((two[:, 1] - two[:, 0]) / scale).min()))
        r = r - cb[torch.argmin(dist, dim=1)]
    return gap


def vocoder_encode(cfg, pcm):
    """codec_type "vocoder": pcm [n] (a multiple of hop) -> latents [D, T]
    (not yet / latent_norm): the analysis features, normalised."""
    f = vocoder.analyse(pcm.double().numpy(), cfg.vocoder)
    lat = vocoder.normalise(f, cfg.vocoder_mean, cfg.vocoder_scale)
    return torch.from_numpy(lat.T.copy()).to(pcm.dtype)


def vocoder_decode(cfg, z, log_f0=None):
    """codec_type "vocoder": z [D, T] (already x latent_norm) -> pcm [T * hop];
    log_f0 [T] (the pitch stream) replaces the latent's F0 channel."""
    f = vocoder.denormalise(z.double().numpy().T, cfg.vocoder_mean, cfg.vocoder_scale)
    lf0 = None if log_f0 is None else log_f0.double().numpy()
    return torch.from_numpy(vocoder.synthesise(f, cfg.vocoder, lf0)).to(z.dtype)


# prompt_match: frames within this much (natural log of power, 40 dB) of
# the loudest frame's mean band level are speech; voicing above this is voiced.
LOUD_RANGE = math.log(1e4)
VOICED = 0.5


def _speech_stats(feat, lf0):
    """feat [T, 2 + B] vocoder features, lf0 [T] -> (median log F0 over
    voiced frames or None, mean band levels [B] over speech frames)."""
    level = feat[:, 2:].mean(1)
    loud = level >= level.max() - LOUD_RANGE
    voiced = feat[:, 1] > VOICED
    med = None
    if voiced.any():  # the middle value, or the mean of the middle two
        v = torch.sort(lf0[voiced]).values
        k = v.shape[0] // 2
        med = float(v[k]) if v.shape[0] % 2 else float((v[k - 1] + v[k]) / 2)
    return med, feat[loud, 2:].mean(0)


def prompt_stats(cfg, lat):
    """prompt_match: the prompt's speech statistics from its latents [Tp, D]
    (/ latent_norm): (median log F0 or None, mean band levels [B])."""
    f = torch.from_numpy(
        vocoder.denormalise(lat.double().numpy() * cfg.latent_norm, cfg.vocoder_mean, cfg.vocoder_scale)
    )
    return _speech_stats(f, f[:, 0])


def match_prompt(cfg, z, lf0, stats):
    """prompt_match: shift the output's band levels and pitch stream so
    their speech statistics equal the prompt's: z [D, T] (x latent_norm),
    lf0 [T] -> (z, lf0). The learned prompt encoder, trained on 20
    voices, does not carry an unseen voice's pitch and timbre far enough."""
    mean = torch.tensor(cfg.vocoder_mean, dtype=torch.float64)
    scale = torch.tensor(cfg.vocoder_scale, dtype=torch.float64)
    f = z.double().t() * scale + mean
    med, bands = _speech_stats(f, lf0.double())
    pmed, pbands = stats
    f[:, 2:] += (pbands - bands)[None, :]
    lf0 = lf0.double()
    if med is not None and pmed is not None:
        lf0 = lf0 + (pmed - med)
    z = ((f - mean) / scale).t()
    return z.to(lf0.dtype), lf0


def encode_prompt(W, cfg, pcm, dense=False):
    """Reference audio -> prompt latents [Tp, D] (/ latent_norm), zero-padded
    on the right to a multiple of hop; quantized when codec_quantizers > 0
    (dense=True: the pre-quantizer feature regardless)."""
    n = pcm.shape[0]
    pad = (-n) % cfg.hop
    if pad:
        pcm = torch.cat([pcm, torch.zeros(pad, dtype=pcm.dtype)])
    if cfg.codec_type == "vocoder":
        return (vocoder_encode(cfg, pcm) / cfg.latent_norm).t()
    x = codec_encode(W, cfg, pcm)
    if cfg.codec_quantizers > 0 and not dense:
        x = quantize(W, cfg, x)
    return (x / cfg.latent_norm).t()


# ---- the whole pipeline -------------------------------------------------------------------------


def synthesize(W, cfg, ids, spk, noise, steps=1, sigma_inter=None, speed=1.0, stats=None):
    """ids [N] int64, spk [Q, H] (zeros for no prompt), noise: flat float
    consumed in the order dur-refiner [N], pitch-refiner [T], LCM step 1
    [D, T], step 2 [D, T]; or a noise.Generator drawing those streams in turn.
    stats: prompt_stats of the prompt (prompt_match; None: no matching).
    Returns a dict of the intermediates and "pcm"."""
    out = {}
    pos = 0
    drawn = []

    def take(n):
        nonlocal pos
        if isinstance(noise, torch.Tensor):
            v = noise[pos : pos + n]
            assert v.shape[0] == n, "not enough noise"
        else:
            v = torch.from_numpy(noise.normal(n))
        drawn.append(v)
        pos += n
        return v

    dt = spk.dtype
    h = phoneme_encoder(W, cfg, ids, spk)
    ld0 = duration_predictor(W, cfg, h, spk)
    ld = refine(W, "duration_refiner", cfg, ld0, take(len(ids)).to(dt), h, spk)
    dur = durations(ld, speed)
    e = length_regulate(h, dur)
    t = e.shape[0]
    out.update(hidden=h, log_dur_init=ld0, log_dur=ld, durations=dur, expanded=e)
    if t == 0:  # every duration rounded to 0: no audio
        out.update(pcm=torch.zeros(0, dtype=dt), noise=torch.cat(drawn))
        return out
    lf0_init = pitch_predictor(W, cfg, e, spk)
    lf0 = refine(W, "pitch_refiner", cfg, lf0_init, take(t).to(dt), e, spk)
    c = pitch_embed(W, cfg, e, lf0)
    d = cfg.latent_dim
    eps1 = take(d * t).to(dt).view(d, t)
    eps2 = take(d * t).to(dt).view(d, t) if steps == 2 else None
    z = lcm_sample(W, cfg, c, spk, eps1, eps2, sigma_inter)
    if cfg.codec_type == "vocoder":
        zd, lf0d = z * cfg.latent_norm, lf0
        if cfg.prompt_match and stats is not None:
            zd, lf0d = match_prompt(cfg, zd, lf0, stats)
        pcm = vocoder_decode(cfg, zd, lf0d)
        out["decoder_log_f0"] = lf0d
    else:
        pcm = codec_decode(W, cfg, z * cfg.latent_norm)
    out.update(
        log_f0_init=lf0_init,
        log_f0=lf0,
        cond=c,
        latent=z,
        pcm=pcm,
        noise=torch.cat(drawn),
    )
    return out
