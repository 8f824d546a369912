"""FlashSpeech over padded batches, for training: the same math as
tools/reference/flashspeech/model.py (which works on one utterance), with
masks so that every real position computes what the single-utterance
reference computes (padded positions are zeroed before each convolution,
so a convolution sees zeros past an utterance's end as "same" padding does,
and attention ignores padded keys). Parameters carry the checkpoint names.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference.flashspeech import model as fs  # tools/ on sys.path


class Params(nn.Module):
    """Every checkpoint tensor as a parameter; W[name] by checkpoint name."""

    def __init__(self, shapes, init):
        super().__init__()
        self.names = sorted(shapes)
        self.p = nn.ParameterList([nn.Parameter(init(n, shapes[n])) for n in self.names])
        self.index = {n: i for i, n in enumerate(self.names)}

    def __getitem__(self, name):
        return self.p[self.index[name]]

    def state(self):
        return {n: self.p[i].detach().clone() for i, n in enumerate(self.names)}


def lin(W, p, x):
    return F.linear(x, W[p + ".weight"], W[p + ".bias"])


def conv(W, p, x, padding=0, dilation=1):
    return F.conv1d(x, W[p + ".weight"], W[p + ".bias"], 1, padding, dilation)


def layer_norm(x, eps):
    return F.layer_norm(x, x.shape[-1:], eps=eps)


def attention(W, p, xq, xkv, heads, key_mask=None):
    """xq [B, Nq, Cq], xkv [B, Nk, Ckv], key_mask [B, Nk] (True = real)."""
    q, k, v = lin(W, p + ".q", xq), lin(W, p + ".k", xkv), lin(W, p + ".v", xkv)
    b, nq, c = q.shape
    d = c // heads
    q = q.view(b, nq, heads, d).transpose(1, 2)
    k = k.view(b, -1, heads, d).transpose(1, 2)
    v = v.view(b, -1, heads, d).transpose(1, 2)
    s = q @ k.transpose(2, 3) / math.sqrt(d)
    if key_mask is not None:
        s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, nq, c)
    return lin(W, p + ".o", o)


def encoder_layer(W, p, x, m, cfg, g=None):
    """x [B, T, H], m [B, T] float mask; g [B, H] for conditional LN."""

    def norm(name, y):
        y = layer_norm(y, cfg.layer_norm_eps)
        if g is None:
            return y * W[p + "." + name + ".weight"] + W[p + "." + name + ".bias"]
        sc = lin(W, p + "." + name + ".scale", g)[:, None, :]
        sh = lin(W, p + "." + name + ".shift", g)[:, None, :]
        return y * sc + sh

    x = norm("norm1", x + attention(W, p + ".attn", x, x, cfg.num_heads, m > 0))
    xt = (x * m[..., None]).transpose(1, 2)
    k = W[p + ".ffn.conv1.weight"].shape[-1]
    y = torch.relu(conv(W, p + ".ffn.conv1", xt, padding=k // 2))
    y = conv(W, p + ".ffn.conv2", y).transpose(1, 2)
    return norm("norm2", x + y)


def positions(n, dim):
    return fs.sinusoid(torch.arange(n), dim).float()


def phoneme_encoder(W, cfg, ids, m, spk):
    x = W["phoneme_encoder.embed.weight"][ids] + positions(ids.shape[1], cfg.hidden_size)
    g = spk.mean(1)
    for i in range(cfg.encoder_layers):
        x = encoder_layer(W, "phoneme_encoder.layers.%d" % i, x, m, cfg, g)
    return x * m[..., None]


def prompt_encoder(W, cfg, lat):
    """lat [B, Tp, D] (no padding) -> [B, Q, H]."""
    x = lin(W, "prompt_encoder.in_proj", lat) + positions(lat.shape[1], cfg.hidden_size)
    m = torch.ones(lat.shape[:2])
    for i in range(cfg.prompt_encoder_layers):
        x = encoder_layer(W, "prompt_encoder.layers.%d" % i, x, m, cfg)
    q = W["prompt_encoder.queries"][None].expand(lat.shape[0], -1, -1)
    return attention(W, "prompt_encoder.query_attn", q, x, cfg.num_heads)


def prosody_predictor(W, p, cfg, x, m, spk, layers, kernel):
    mm = m[..., None]
    for i in range(layers):
        q = "%s.layers.%d" % (p, i)
        y = torch.relu(conv(W, q + ".conv", (x * mm).transpose(1, 2), padding=kernel // 2))
        y = layer_norm(y.transpose(1, 2), cfg.layer_norm_eps)
        y = y * W[q + ".norm.weight"] + W[q + ".norm.bias"]
        x = y if i == 0 else x + y
        if i % cfg.prosody_attn_period == cfg.prosody_attn_period - 1:
            x = x + attention(W, q + ".attn", x, spk, cfg.prosody_heads)
    return lin(W, p + ".out", x)[..., 0] * m


def length_regulate(h, dur, frames):
    """h [B, N, H], dur [B, N] int -> [B, frames, H] (zeros past each sum)."""
    out = h.new_zeros(h.shape[0], frames, h.shape[2])
    for b in range(h.shape[0]):
        e = torch.repeat_interleave(h[b], dur[b], dim=0)
        out[b, : e.shape[0]] = e
    return out


def wavenet(W, p, cfg, x, c_noise, cond, m, spk, layers):
    """x [B, Cin, T], c_noise [B], cond [B, Hc, T], m [B, T] -> [B, Cout, T]."""
    mm = m[:, None, :]
    h = torch.relu(conv(W, p + ".in_proj", x))
    ch = h.shape[1]
    temb = fs.sinusoid(c_noise.double() * cfg.time_embed_scale, ch).float()
    temb = lin(W, p + ".time_mlp.2", fs.mish(lin(W, p + ".time_mlp.0", temb)))
    skip = torch.zeros_like(h)
    k = cfg.wavenet_kernel
    for i in range(layers):
        q = "%s.layers.%d" % (p, i)
        u = (h + lin(W, q + ".time", temb)[:, :, None]) * mm
        dil = 2 ** (i % cfg.wavenet_dilation_cycle)
        z = conv(W, q + ".conv", u, dil * (k - 1) // 2, dil) + conv(W, q + ".cond", cond)
        if i % cfg.film_period == cfg.film_period - 1:
            a = attention(W, q + ".film_attn", u.transpose(1, 2), spk, cfg.film_heads)
            gb = lin(W, q + ".film", a).transpose(1, 2)
            z = z * (1.0 + gb[:, : 2 * ch]) + gb[:, 2 * ch :]
        g = torch.tanh(z[:, :ch]) * torch.sigmoid(z[:, ch:])
        o = conv(W, q + ".out", g)
        h = (h + o[:, :ch]) / math.sqrt(2.0)
        skip = skip + o[:, ch:]
    s = skip / math.sqrt(layers)
    return conv(W, p + ".out_proj", torch.relu(conv(W, p + ".skip_proj", s)))


def precond(cfg, s):
    """s [B] tensor -> c_skip, c_out, c_in, c_noise [B]."""
    sd, smin = cfg.sigma_data, cfg.sigma_min
    c_skip = sd * sd / ((s - smin) ** 2 + sd * sd)
    c_out = (s - smin) * sd / torch.sqrt(s * s + sd * sd)
    c_in = 1.0 / torch.sqrt(s * s + sd * sd)
    return c_skip, c_out, c_in, torch.log(s) / 4.0


def consistency(W, p, cfg, x, s, cond, m, spk, layers):
    c_skip, c_out, c_in, c_noise = precond(cfg, s)
    r = lambda v: v[:, None, None]  # noqa: E731
    y = wavenet(W, p, cfg, r(c_in) * x, c_noise, cond, m, spk, layers)
    return r(c_skip) * x + r(c_out) * y
