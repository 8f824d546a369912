#!/usr/bin/python3
"""Objective measures of synthesised speech against the espeak-ng corpus
(numpy only). Definitions (README.md, "Measures"):

- features: 16 kHz audio, 25 ms Blackman frames every 10 ms; leading and
  trailing frames more than 40 dB below the loudest frame are cut.
- mel-cepstrum: c1..c24 of the log amplitude spectrum (natural log, floored
  at -120 dB re a full-scale sine: 16-bit quantisation noise per bin)
  resampled on the all-pass warped frequency axis
  (alpha 0.42, the usual mel approximation at 16 kHz): the warped-FFT
  cepstrum, which SPTK's freqt of the FFT cepstrum approximates (SPTK's mcep
  fits the same cepstrum by UELS instead, so values are close, not equal).
- MCD-DTW (dB): 10/ln 10 * sqrt(2 sum_d (c_d - c'_d)^2) per frame pair,
  averaged over the dynamic time warping path (steps (1,1), (1,0), (0,1),
  minimum total distance).
- sentence identification: the output of sentence s in voice v is compared
  by MCD-DTW with the references of s and 19 other held-out sentences in v;
  correct when the reference of s is the nearest.
- F0: YIN (25 ms integration window, 60-500 Hz, threshold 0.15, parabolic
  interpolation); a frame is unvoiced without a dip under the threshold or
  when 40 dB below the loudest frame. F0 RMSE (Hz) over the DTW path's pairs
  voiced in both.
- prompt fidelity: an utterance's voice point is (median log2 F0 over its
  voiced frames, mean mel-cepstrum c1..c24 over its frames); a voice's
  centroid is the mean point of its corpus utterances; the distance of a
  point to a centroid is sum_d (d_d / s_d)^2 with s_d^2 the pooled
  within-voice variance of dimension d (nearest centroid under a shared
  diagonal covariance); correct when the nearest centroid is the prompt's
  voice. An output with no voiced frame is compared on the envelope alone.

    /usr/bin/python3 tools/speechcorpus/measures.py --selfcheck
    /usr/bin/python3 tools/speechcorpus/measures.py mcd A.wav B.wav
    /usr/bin/python3 tools/speechcorpus/measures.py f0 A.wav"""

import math
import sys
import wave

import numpy as np

SR = 16000
HOP = 160
WIN = 400
NFFT = 1024
ORDER = 24
ALPHA = 0.42
FLOOR_DB = -120.0
TRIM_DB = 40.0
F0_MIN, F0_MAX, YIN_THRESHOLD = 60.0, 500.0, 0.15
MCD_K = 10.0 / math.log(10.0) * math.sqrt(2.0)


def read_wav(path):
    """Mono float samples in [-1, 1) of a 16-bit PCM WAV at 16 kHz."""
    with wave.open(path) as w:
        if w.getsampwidth() != 2:
            raise ValueError("%s: not 16-bit PCM" % path)
        if w.getframerate() != SR:
            raise ValueError("%s: %d Hz, want %d" % (path, w.getframerate(), SR))
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768.0
        if w.getnchannels() > 1:
            x = x.reshape(-1, w.getnchannels()).mean(axis=1)
    return x


def _frames(x, length):
    """Frames of `length` samples centred every HOP samples (zero-padded)."""
    n = 1 + len(x) // HOP
    pad = np.concatenate([np.zeros(length // 2), x, np.zeros(length)])
    idx = np.arange(n)[:, None] * HOP + np.arange(length)[None, :]
    return pad[idx]


def _frame_db(x):
    f = _frames(x, WIN)
    return 10 * np.log10(np.mean(f ** 2, axis=1) + 1e-20)


def _speech_span(db):
    """First and one-past-last frame within TRIM_DB of the loudest frame."""
    on = np.nonzero(db > db.max() - TRIM_DB)[0]
    return (int(on[0]), int(on[-1]) + 1) if len(on) else (0, len(db))


def _warp_grid():
    """Linear frequencies (radians) of a uniform grid on the warped axis."""
    wt = np.linspace(0, np.pi, NFFT // 2 + 1)
    return wt - 2 * np.arctan(ALPHA * np.sin(wt) / (1 + ALPHA * np.cos(wt)))


_WIN_FN = np.blackman(WIN)
_GRID = _warp_grid()
_LIN = np.linspace(0, np.pi, NFFT // 2 + 1)


def mel_cepstrum(x):
    """[frames, ORDER + 1] mel-cepstra c0..c24, every frame."""
    f = _frames(x, WIN) * _WIN_FN
    mag = np.abs(np.fft.rfft(f, NFFT, axis=1))
    floor = _WIN_FN.sum() / 2 * 10 ** (FLOOR_DB / 20)
    logmag = np.log(np.maximum(mag, floor))
    warped = np.empty_like(logmag)
    for i in range(len(logmag)):
        warped[i] = np.interp(_GRID, _LIN, logmag[i])
    return np.fft.irfft(warped, NFFT, axis=1)[:, :ORDER + 1]


def yin(x):
    """F0 in Hz per frame (0 when unvoiced), frames as mel_cepstrum's."""
    tmax = int(SR / F0_MIN) + 1
    tmin = int(SR / F0_MAX)
    f = _frames(x, WIN + tmax)
    n = 1
    while n < 2 * (WIN + tmax):
        n *= 2
    a = np.fft.rfft(f[:, :WIN], n, axis=1)
    b = np.fft.rfft(f, n, axis=1)
    r = np.fft.irfft(np.conj(a) * b, n, axis=1)[:, :tmax + 1]  # sum_j x[j] x[j + tau]
    sq = np.concatenate([np.zeros((len(f), 1)), np.cumsum(f ** 2, axis=1)], axis=1)
    taus = np.arange(tmax + 1)
    e0 = sq[:, WIN][:, None]
    et = sq[:, taus + WIN] - sq[:, taus]
    d = np.maximum(e0 + et - 2 * r, 0.0)
    cum = np.cumsum(d[:, 1:], axis=1)
    dn = np.ones_like(d)
    dn[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(cum, 1e-20)
    db = _frame_db(x)
    f0 = np.zeros(len(f))
    loud = db > db.max() - TRIM_DB
    for i in np.nonzero(loud)[0]:
        row = dn[i]
        below = np.nonzero(row[tmin:tmax] < YIN_THRESHOLD)[0]
        if not len(below):
            continue
        t = tmin + below[0]
        while t + 1 < tmax and row[t + 1] < row[t]:
            t += 1
        den = row[t - 1] - 2 * row[t] + row[t + 1]
        shift = 0.5 * (row[t - 1] - row[t + 1]) / den if den > 0 else 0.0
        f0[i] = SR / (t + max(-1.0, min(1.0, shift)))
    return f0


class Features:
    """The trimmed frames of one signal: mel-cepstrum and F0."""

    def __init__(self, x):
        mc = mel_cepstrum(x)
        f0 = yin(x)
        a, b = _speech_span(_frame_db(x))
        self.mc = mc[a:b, 1:]
        self.f0 = f0[a:b]


def dtw(cost):
    """Minimum-total-cost monotone path through cost [n, m] with steps
    (1,1), (1,0), (0,1); returns the path as two index arrays."""
    n, m = cost.shape
    acc = np.empty((n, m))
    s = np.cumsum(cost[0])
    acc[0] = s
    for i in range(1, n):
        c = cost[i]
        prev = acc[i - 1]
        a = c + np.minimum(prev, np.concatenate([[np.inf], prev[:-1]]))
        # acc[i, j] = min(a[j], acc[i, j-1] + c[j]): a min-plus scan.
        cs = np.cumsum(c)
        acc[i] = cs + np.minimum.accumulate(a - cs)
    i, j = n - 1, m - 1
    pi, pj = [i], [j]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            k = np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]])
            if k == 0:
                i, j = i - 1, j - 1
            elif k == 1:
                i -= 1
            else:
                j -= 1
        pi.append(i)
        pj.append(j)
    return np.array(pi[::-1]), np.array(pj[::-1])


def _frame_mcd(a, b):
    d = a[:, None, :] - b[None, :, :]
    return MCD_K * np.sqrt(np.sum(d * d, axis=2))


def mcd_dtw(fa, fb):
    """(MCD in dB averaged over the DTW path, the path)."""
    cost = _frame_mcd(fa.mc, fb.mc)
    pi, pj = dtw(cost)
    return float(cost[pi, pj].mean()), (pi, pj)


def f0_rmse(fa, fb, path):
    """RMSE in Hz over the path's frame pairs voiced in both (nan if none)
    and the number of such pairs."""
    pi, pj = path
    a, b = fa.f0[pi], fb.f0[pj]
    v = (a > 0) & (b > 0)
    if not v.any():
        return float("nan"), 0
    return float(np.sqrt(np.mean((a[v] - b[v]) ** 2))), int(v.sum())


def identify(out, ref, others):
    """True when ref is nearer to out by MCD-DTW than every one of others."""
    d0 = mcd_dtw(out, ref)[0]
    return all(mcd_dtw(out, o)[0] > d0 for o in others), d0


def voice_point(f):
    """[median log2 F0 (nan if nothing is voiced), mean c1..c24] of Features."""
    v = f.f0[f.f0 > 0]
    lf = float(np.median(np.log2(v))) if len(v) else float("nan")
    return np.concatenate([[lf], f.mc.mean(axis=0)])


class VoiceSpace:
    """Voice centroids and the distance of the prompt-fidelity rule, from
    {voice name: [voice points of its utterances]} (two or more each)."""

    def __init__(self, points):
        self.names = sorted(points)
        per = [np.stack(points[k]) for k in self.names]
        for k, p in zip(self.names, per):
            if len(p) < 2 or np.isnan(p[:, 0]).all():
                raise ValueError("voice %s needs two voiced utterances" % k)
        self.centroids = np.stack([np.nanmean(p, axis=0) for p in per])
        dev = np.concatenate([p - c for p, c in zip(per, self.centroids)])
        self.var = np.maximum(np.nanmean(dev ** 2, axis=0), 1e-12)

    def distances(self, point):
        d = (self.centroids - point) ** 2 / self.var
        if np.isnan(point[0]):
            d = d[:, 1:]
        return d.sum(axis=1)

    def nearest(self, point):
        return self.names[int(np.argmin(self.distances(point)))]


# ---- self-check on known cases ------------------------------------------------


def _vowel_signal(segments, seed=0):
    """A speech-like test signal: each (f0, formants, seconds) segment is a
    glottal pulse train through resonators; formants 0 = silence."""
    rng = np.random.default_rng(seed)
    out = []
    phase = 0.0
    for f0, formants, sec in segments:
        n = int(sec * SR)
        if not formants:
            out.append(np.zeros(n))
            continue
        t = phase + np.cumsum(np.full(n, f0 / SR))
        phase = t[-1]
        src = np.diff(np.floor(np.concatenate([[t[0] - f0 / SR], t]))).astype(float)
        y = src + 0.001 * rng.standard_normal(n)
        for fc, bw in formants:
            r = math.exp(-math.pi * bw / SR)
            a1, a2 = -2 * r * math.cos(2 * math.pi * fc / SR), r * r
            z = np.zeros(n)
            y1 = y2 = 0.0
            for i in range(n):
                v = y[i] - a1 * y1 - a2 * y2
                z[i] = v
                y2, y1 = y1, v
            y = z
        out.append(0.3 * y / (np.abs(y).max() + 1e-9))
    return np.concatenate(out)


VOWEL_FORMANTS = {"a": [(730, 90), (1090, 110), (2440, 170)], "i": [(270, 60), (2290, 100),
                                                                   (3010, 150)],
                  "u": [(300, 60), (870, 90), (2240, 150)], "e": [(530, 70), (1840, 100),
                                                                  (2480, 150)],
                  "o": [(570, 80), (840, 90), (2410, 150)]}


def _utterance(word, f0=120.0, scale=1.0, seed=0):
    segs = [(f0, [], 0.05)]
    for k, ch in enumerate(word):
        segs.append((f0 * (1 + 0.1 * math.sin(k)), VOWEL_FORMANTS[ch], 0.12 * scale))
    segs.append((f0, [], 0.05))
    return _vowel_signal(segs, seed)


def selfcheck():
    fails = []
    passed = 0

    def check(name, ok, detail):
        nonlocal passed
        print("%s: %s (%s)" % ("ok" if ok else "FAIL", name, detail))
        if ok:
            passed += 1
        else:
            fails.append(name)

    t = np.arange(SR) / SR
    for hz in (100.0, 200.0, 333.0):
        f0 = yin(0.5 * np.sin(2 * np.pi * hz * t))
        v = f0[f0 > 0]
        check("YIN on a %.0f Hz tone" % hz, len(v) > 0.9 * len(f0) and abs(np.median(v) - hz) < 1,
              "median %.2f Hz, %d/%d voiced" % (np.median(v) if len(v) else 0, len(v), len(f0)))
    pulses = _vowel_signal([(150.0, VOWEL_FORMANTS["a"], 1.0)])
    v = yin(pulses)
    v = v[v > 0]
    check("YIN on a 150 Hz vowel", len(v) and abs(np.median(v) - 150) < 1.5,
          "median %.2f Hz" % (np.median(v) if len(v) else 0))
    noise = np.random.default_rng(1).standard_normal(SR) * 0.3
    vn = yin(noise)
    check("YIN calls white noise unvoiced", np.mean(vn > 0) < 0.1,
          "%.0f%% voiced" % (100 * np.mean(vn > 0)))

    x = _utterance("aiueoa")
    fx = Features(x)
    d_self, _ = mcd_dtw(fx, fx)
    check("MCD of a signal with itself is 0", d_self == 0.0, "%.3g dB" % d_self)
    d_noise, _ = mcd_dtw(fx, Features(noise[:len(x)]))
    check("MCD against noise is large", d_noise > 6.5, "%.1f dB" % d_noise)
    stretched = Features(_utterance("aiueoa", scale=1.3, seed=2))
    d_str, path = mcd_dtw(fx, stretched)
    other = Features(_utterance("uoaeie", seed=3))
    d_other, _ = mcd_dtw(fx, other)
    check("MCD-DTW of a 1.3x time-stretched copy is small", d_str < 1.5 and d_str < d_other / 4,
          "%.2f dB; another vowel order %.2f dB" % (d_str, d_other))
    r, npair = f0_rmse(fx, stretched, path)
    check("F0 RMSE along the DTW path of the stretched copy is small", r < 3,
          "%.2f Hz over %d pairs" % (r, npair))
    words = ["aiueoa", "uoaeie", "eaouia", "oieaua", "iaoeua", "ueioae"]
    refs = [Features(_utterance(w, seed=10 + k)) for k, w in enumerate(words)]
    hits = 0
    for k, w in enumerate(words):
        out = Features(_utterance(w, scale=0.8, seed=20 + k))
        ok, _ = identify(out, refs[k], refs[:k] + refs[k + 1:])
        hits += ok
    check("sentence identification on stretched copies", hits == len(words),
          "%d/%d" % (hits, len(words)))
    voices = {"low": 90.0, "mid": 140.0, "high": 220.0}
    space = VoiceSpace({k: [voice_point(Features(_utterance(w, f0=f, seed=30 + j)))
                            for j, w in enumerate(("aeiou", "ieaou", "uoiea"))]
                        for k, f in voices.items()})
    nearest = [space.nearest(voice_point(Features(_utterance("ouaei", f0=f * 1.05, seed=40))))
               for f in voices.values()]
    check("prompt fidelity picks the voice of the nearest pitch", nearest == list(voices),
          ", ".join(nearest))
    print("%d passed, %d failed" % (passed, len(fails)))
    return 1 if fails else 0


def main(argv):
    if argv[:1] == ["--selfcheck"]:
        return selfcheck()
    if argv[:1] == ["mcd"] and len(argv) == 3:
        fa, fb = Features(read_wav(argv[1])), Features(read_wav(argv[2]))
        d, path = mcd_dtw(fa, fb)
        r, n = f0_rmse(fa, fb, path)
        print("MCD-DTW %.3f dB; F0 RMSE %.2f Hz over %d frame pairs" % (d, r, n))
        return 0
    if argv[:1] == ["f0"] and len(argv) == 2:
        f0 = yin(read_wav(argv[1]))
        v = f0[f0 > 0]
        print("%d/%d frames voiced, median F0 %.1f Hz" % (len(v), len(f0),
                                                          np.median(v) if len(v) else 0))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
