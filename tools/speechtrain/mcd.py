"""Mel-cepstral distortion with DTW, for quick self-evaluation during
training (the official measures are helper corpus's
tools/speechcorpus/measures.py when present).

Mel cepstrum: 80 HTK-mel bands of a 1024-point power spectrum (25 ms Hann,
10 ms hop), L_b = ln(E_b + 1e-6); c_d = (2 / N) sum_b (L_b / 2) cos(pi d
(b + 1/2) / N), the cepstrum of the log amplitude on the mel axis, d =
1..24. MCD = 10 / ln 10 * sqrt(2 * sum (c - c')^2), averaged over the DTW
path (or over frames for mcd_aligned)."""

import math

import numpy as np

SR = 16000
FLOOR = 1e-6


def _mel_matrix(n_fft=1024, bands=80, sr=SR):
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(0.0, mel(sr / 2.0), bands + 2))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    w = np.zeros((bands, freqs.shape[0]))
    for b in range(bands):
        lo, c, hi = edges[b], edges[b + 1], edges[b + 2]
        w[b] = np.maximum(0.0, np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)))
    return w


_MEL = _mel_matrix()
_DCT = None


def mcep(x, order=24):
    global _DCT
    x = np.asarray(x, dtype=np.float64)
    win, hop = 400, 160
    if x.shape[0] < win:
        x = np.concatenate([x, np.zeros(win - x.shape[0])])
    t = 1 + (x.shape[0] - win) // hop
    idx = np.arange(t)[:, None] * hop + np.arange(win)[None, :]
    w = 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(win) / win)
    spec = np.fft.rfft(x[idx] * w, n=1024, axis=1)
    lm = np.log((np.abs(spec) ** 2) @ _MEL.T + FLOOR)
    if _DCT is None:
        n = lm.shape[1]
        k = np.arange(n)
        _DCT = np.cos(math.pi * (k[:, None] + 0.5) * k[None, :] / n) / n
    return (lm @ _DCT)[:, 1 : order + 1]


def dtw_mean(a, b):
    """Mean frame distance along the optimal DTW path (steps (1,0),(0,1),(1,1))."""
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    n, m = d.shape
    acc = np.full((n + 1, m + 1), np.inf)
    ln = np.zeros((n + 1, m + 1))
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            best, bl = acc[i - 1, j - 1], ln[i - 1, j - 1]
            if acc[i - 1, j] < best:
                best, bl = acc[i - 1, j], ln[i - 1, j]
            if acc[i, j - 1] < best:
                best, bl = acc[i, j - 1], ln[i, j - 1]
            acc[i, j] = best + d[i - 1, j - 1]
            ln[i, j] = bl + 1
    return acc[n, m] / ln[n, m]


def mcd_dtw(ref, syn):
    k = 10.0 / math.log(10.0) * math.sqrt(2.0)
    return k * dtw_mean(mcep(ref), mcep(syn))


def mcd_aligned(ref, syn):
    a, b = mcep(ref), mcep(syn)
    n = min(a.shape[0], b.shape[0])
    k = 10.0 / math.log(10.0) * math.sqrt(2.0)
    return k * float(np.sqrt(((a[:n] - b[:n]) ** 2).sum(-1)).mean())
