"""The signal-processing codec ("codec_type": "vocoder"): analysis of 16 kHz
audio into per-frame features and a source-filter decoder back to audio.
No weights; speech/fs_vocoder.c follows it function by function (float64
here, double there).

Frames: hop samples apart, frame t centred on sample t * hop + hop / 2, so
T frames cover exactly T * hop samples. Features per frame, in order:

  0        log F0 (Hz), interpolated through unvoiced frames (log domain)
  1        voicing in [0, 1]: 1 - YIN aperiodicity on voiced frames, else 0
  2 .. 2+B log mel-band power, ln(E_b + floor), B triangular HTK-mel bands
           over 0..sr/2 on an n_fft-point power spectrum of a Hann window

The codec latent is (feature - mean) / scale per channel, the constants in
config.json ("vocoder_mean", "vocoder_scale").

Decoder: F0 and voicing are interpolated to samples between frame centres;
the excitation sqrt(v) * pulses + g sqrt(1 - v) * noise (g: "vocoder_noise_gain",
default 1) has pulses of height
sqrt(sr / f0) at the zero crossings of an F0 phase accumulator and unit
Gaussian noise from noise.Generator(noise_seed). Per frame the windowed
excitation's spectrum is scaled so its mel-band powers match the frame's
targets: the gain of band b is sqrt(max(exp(f_b) - floor, 0) / E_exc_b), spread over the bins by
the same triangles; windows overlap-add (Hann at half overlap sums to one).
With "vocoder_eq" in the config (n_fft / 2 + 1 log amplitudes, natural
log, over 0..sr/2), the output then goes through the zero-phase FIR filter
of that response (eq_taps: 257 taps): the codec's fixed equaliser, calibrated by tools/speechtrain/calibrate_eq.py so that decoded
audio has the mean log spectrum of the audio it was analysed from (the
band powers alone leave the spectrum's fine shape, e.g. the corpus
resampler's cut-off above 7.6 kHz, and the valleys between harmonics).
"""

import math

import numpy as np

from . import noise as fs_noise

# YIN's search range and thresholds, and the frame energy below which a
# frame is unvoiced whatever YIN finds.
F0_MIN, F0_MAX = 50.0, 600.0
YIN_THRESHOLD = 0.15
VOICED_MAX_APERIODICITY = 0.35
VOICED_MIN_RMS = 1e-3
DEFAULT_LOG_F0 = math.log(120.0)


class Params:
    def __init__(self, cfg):
        g = (lambda k, d: cfg.get(k, d)) if isinstance(cfg, dict) else (lambda k, d: getattr(cfg, k, d))
        self.sr = g("sample_rate", 16000)
        self.hop = g("vocoder_hop", 200)
        self.win = g("vocoder_win", 400)
        self.n_fft = g("vocoder_n_fft", 512)
        self.bands = g("vocoder_bands", 30)
        self.floor = g("vocoder_floor", 1e-6)
        self.noise_seed = g("vocoder_noise_seed", 0)
        self.yin_win = g("vocoder_yin_win", 512)
        self.iters = g("vocoder_iters", 4)
        self.noise_gain = g("vocoder_noise_gain", 1.0)
        assert 0.0 < self.noise_gain <= 1.0
        eq = g("vocoder_eq", None)
        self.eq = None if eq is None else np.asarray(eq, dtype=np.float64)
        if self.eq is not None:
            assert self.eq.shape == (self.n_fft // 2 + 1,) and np.isfinite(self.eq).all()
        self.dim = 2 + self.bands


def hann(n):
    """Periodic Hann: sums to one at half overlap."""
    return 0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(n) / n)


def mel_filters(p):
    """[B, n_fft / 2 + 1] triangles on the HTK mel scale over 0..sr/2."""

    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(0.0, mel(p.sr / 2.0), p.bands + 2))
    freqs = np.arange(p.n_fft // 2 + 1) * p.sr / p.n_fft
    w = np.zeros((p.bands, freqs.shape[0]))
    for b in range(p.bands):
        lo, c, hi = edges[b], edges[b + 1], edges[b + 2]
        up = (freqs - lo) / (c - lo)
        down = (hi - freqs) / (hi - c)
        w[b] = np.maximum(0.0, np.minimum(up, down))
    return w


def frames_of(x, p, length, t):
    """[t, length] segments centred on the frame centres, zeros outside x."""
    n = x.shape[0]
    pad = length
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    starts = np.arange(t) * p.hop + p.hop // 2 - length // 2 + pad
    idx = starts[:, None] + np.arange(length)[None, :]
    assert idx.min() >= 0 and idx.max() < n + 2 * pad
    return xp[idx]


def yin(seg, p):
    """seg [T, yin_win + tau_max + 2] -> (f0 [T], aperiodicity [T]).
    d(tau) = sum_{j < W} (x_j - x_{j+tau})^2; cmnd(tau) = d(tau) tau /
    sum_{1..tau} d; the first tau in range with cmnd below the threshold,
    followed down to its local minimum, else the range's minimum; parabolic
    refinement of tau on cmnd (shift clamped to half a sample)."""
    w = p.yin_win
    tmin = int(math.floor(p.sr / F0_MAX))
    tmax = int(math.ceil(p.sr / F0_MIN))
    t, n = seg.shape
    head = seg[:, :w]
    nf = 1 << int(math.ceil(math.log2(n + w)))
    r = np.fft.irfft(np.conj(np.fft.rfft(head, nf, axis=1)) * np.fft.rfft(seg, nf, axis=1), nf, axis=1)
    sq = np.concatenate([np.zeros((t, 1)), np.cumsum(seg * seg, axis=1)], axis=1)
    taus = np.arange(tmax + 2)
    e_tau = sq[:, taus + w] - sq[:, taus]
    d = np.maximum(e_tau[:, :1] + e_tau - 2.0 * r[:, : tmax + 2], 0.0)
    cs = np.cumsum(d[:, 1:], axis=1)
    cm = np.ones_like(d)
    cm[:, 1:] = d[:, 1:] * taus[None, 1:] / np.maximum(cs, 1e-300)
    rng = cm[:, tmin : tmax + 1]
    below = rng < YIN_THRESHOLD
    rising = np.concatenate([rng[:, 1:] >= rng[:, :-1], np.ones((t, 1), bool)], axis=1)
    first = np.argmax(below, axis=1)
    after = rising & (np.arange(rng.shape[1])[None, :] >= first[:, None])
    walk = np.argmax(after, axis=1)
    best = np.where(below.any(axis=1), walk, np.argmin(rng, axis=1)) + tmin
    i = np.arange(t)
    a, b, c = cm[i, best - 1], cm[i, best], cm[i, best + 1]
    den = a - 2.0 * b + c
    shift = np.where(den > 0, 0.5 * (a - c) / np.where(den > 0, den, 1.0), 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    return p.sr / (best + shift), np.clip(b, 0.0, 1.0)


def analyse(pcm, p):
    """pcm [n] (a multiple of hop) -> features [T, 2 + B] (float64)."""
    x = np.asarray(pcm, dtype=np.float64)
    assert x.shape[0] % p.hop == 0
    t = x.shape[0] // p.hop
    seg = frames_of(x, p, p.win, t) * hann(p.win)[None, :]
    spec = np.fft.rfft(seg, n=p.n_fft, axis=1)
    power = spec.real**2 + spec.imag**2
    logmel = np.log(power @ mel_filters(p).T + p.floor)

    tmax = int(math.ceil(p.sr / F0_MIN))
    yseg = frames_of(x, p, p.yin_win + tmax + 2, t)
    f0, ap = yin(yseg, p)
    rms = np.sqrt((seg * seg).sum(1) / (hann(p.win) ** 2).sum())
    voiced = (ap < VOICED_MAX_APERIODICITY) & (rms > VOICED_MIN_RMS)
    v = np.where(voiced, 1.0 - ap, 0.0)
    lf0 = interp_log_f0(np.log(f0), voiced)
    return np.concatenate([lf0[:, None], v[:, None], logmel], axis=1)


def interp_log_f0(lf0, voiced):
    """Unvoiced frames take the linear interpolation (in log F0) between the
    nearest voiced frames, the nearest one's value at the edges, and
    DEFAULT_LOG_F0 when no frame is voiced."""
    t = lf0.shape[0]
    idx = np.nonzero(voiced)[0]
    if idx.shape[0] == 0:
        return np.full(t, DEFAULT_LOG_F0)
    return np.interp(np.arange(t), idx, lf0[idx])


def frame_to_samples(v, p):
    """[T] frame values -> [T * hop] samples, linear between frame centres,
    held beyond the first and last."""
    t = v.shape[0]
    centres = np.arange(t) * p.hop + p.hop / 2.0
    return np.interp(np.arange(t * p.hop) + 0.0, centres, v)


def excitation(lf0, v, p):
    n = lf0.shape[0] * p.hop
    f0 = np.exp(frame_to_samples(lf0, p))
    vs = np.clip(frame_to_samples(v, p), 0.0, 1.0)
    pulses = np.zeros(n)
    phase = 0.0
    for j in range(n):
        phase += f0[j] / p.sr
        if phase >= 1.0:
            phase -= math.floor(phase)
            pulses[j] = math.sqrt(p.sr / f0[j])
    noise = fs_noise.Generator(p.noise_seed).normal(n)
    return np.sqrt(vs) * pulses + p.noise_gain * np.sqrt(1.0 - vs) * noise


def synthesise(feat, p, lf0=None):
    """features [T, 2 + B] -> pcm [T * hop] (float64). lf0 [T], when given,
    replaces feature 0 (the model's pitch stream)."""
    feat = np.asarray(feat, dtype=np.float64)
    t = feat.shape[0]
    f0ch = feat[:, 0] if lf0 is None else np.asarray(lf0, dtype=np.float64)
    exc = excitation(f0ch, feat[:, 1], p)
    w = hann(p.win)
    mel = mel_filters(p)
    norm = mel.sum(0)
    seg = frames_of(exc, p, p.win, t) * w[None, :]
    spec = np.fft.rfft(seg, n=p.n_fft, axis=1)
    target = np.maximum(np.exp(feat[:, 2:]) - p.floor, 0.0)
    pw = spec.real**2 + spec.imag**2
    log_target = np.log(target + 1e-30)
    log_gain_b = 0.5 * (log_target - np.log(pw @ mel.T + 1e-30))
    spread = mel / np.where(norm > 0, norm, 1.0)[None, :]
    for _ in range(p.iters):
        gain = np.exp(2.0 * (log_gain_b @ spread))
        log_gain_b += 0.5 * (log_target - np.log((pw * gain) @ mel.T + 1e-30))
    gain = np.where(norm > 0, np.exp(log_gain_b @ spread), 0.0)
    y = np.fft.irfft(spec * gain, n=p.n_fft, axis=1)
    n = t * p.hop
    out = np.zeros(n + 2 * p.n_fft)
    for i in range(t):
        s = i * p.hop + p.hop // 2 - p.win // 2 + p.n_fft
        out[s : s + p.n_fft] += y[i]
    out = out[p.n_fft : p.n_fft + n]
    if p.eq is not None:
        out = np.convolve(out, eq_taps(p))[EQ_HALF : EQ_HALF + n]
    return out


# The equaliser's FIR filter: 2 EQ_HALF + 1 taps, zero phase.
EQ_HALF = 128


def eq_taps(p):
    """[2 EQ_HALF + 1] taps of the zero-phase FIR filter whose response
    is exp(eq) (eq [n_fft / 2 + 1] log amplitudes over 0..sr/2): the
    inverse real DFT of exp(eq), taps -EQ_HALF..EQ_HALF, Blackman-windowed."""
    n = p.n_fft
    assert 2 * EQ_HALF < n
    h = np.fft.irfft(np.exp(p.eq), n)
    j = np.arange(-EQ_HALF, EQ_HALF + 1)
    a = math.pi * j / (EQ_HALF + 1)
    w = 0.42 + 0.5 * np.cos(a) + 0.08 * np.cos(2.0 * a)
    return h[j % n] * w


def normalise(feat, mean, scale):
    return (feat - np.asarray(mean)) / np.asarray(scale)


def denormalise(lat, mean, scale):
    return lat * np.asarray(scale) + np.asarray(mean)
