"""Train the bundled FlashSpeech model (models/flashspeech-tiny) on the
espeak-ng corpus. See TRAINING.md.

    /usr/bin/python3 tools/speechtrain/train.py --corpus data/speech-corpus --out data/speech-train

One core (torch.set_num_threads(1)), fixed seed, resumable: OUT/ckpt.pt is
written every few minutes and a rerun continues from it. Progress lines go
to OUT/progress.txt. The vocoder analysis of the corpus is cached in
OUT/feats.npz (prep.py, run first when missing)."""

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import net  # noqa: E402
from make_tiny_speech import shapes  # noqa: E402
from reference.flashspeech import model as fs  # noqa: E402

SEED = 8
PROMPT_FRAMES = 120  # 1.5 s prompt crops from another utterance of the voice
ZERO_PROMPT_P = 0.3  # of the default voice's batches: trained with no prompt
DEFAULT_VOICE = "en-us+m3"
LCM_CROP = 96

ARCH = {
    "model_type": "flashspeech",
    "codec_type": "vocoder",
    "hidden_size": 128,
    "num_heads": 2,
    "encoder_layers": 3,
    "prompt_encoder_layers": 2,
    "ffn_filter": 256,
    "ffn_kernel": 5,
    "layer_norm_eps": 1e-5,
    "n_speaker_queries": 8,
    "prosody_heads": 2,
    "prosody_attn_period": 3,
    "duration_layers": 5,
    "duration_filters": 128,
    "duration_kernel": 3,
    "pitch_layers": 5,
    "pitch_filters": 128,
    "pitch_kernel": 5,
    "refiner_layers": 3,
    "refiner_channels": 32,
    "alpha": 0.2,
    "pitch_bins": 512,
    "pitch_min_hz": 50.0,
    "pitch_max_hz": 1100.0,
    "wavenet_layers": 10,
    "wavenet_channels": 128,
    "wavenet_kernel": 3,
    "wavenet_dilation_cycle": 4,
    "film_period": 3,
    "film_heads": 2,
    "time_embed_scale": 1000.0,
    "latent_norm": 1.0,
    "sample_rate": 16000,
    "sigma_data": 0.5,
    "sigma_min": 0.002,
    "sigma_max": 80.0,
    "sigma_inter": 2.0,
    "torch_dtype": "float32",
}


def log(out, msg):
    line = time.strftime("%H:%M:%S ") + msg
    print(line, flush=True)
    with open(os.path.join(out, "progress.txt"), "a", encoding="utf-8") as f:
        f.write(line + "\n")


class Corpus:
    def __init__(self, path):
        z = np.load(path)
        self.feats_raw = z["feats"]
        self.off = z["offsets"]
        self.ids = z["ids"]
        self.dur = z["dur"]
        self.poff = z["ph_offsets"]
        self.voice = z["voice"]
        self.split = z["split"]
        self.utt_id = z["utt_id"]
        self.voices = [str(v) for v in z["voices"]]
        self.inventory = [str(s) for s in z["inventory"]]
        self.vocoder = json.loads(str(z["vocoder"]))
        self.n = len(self.split)
        self.train = [i for i in range(self.n) if self.split[i] == "train"]
        tr = np.concatenate([self.feats_raw[self.off[i] : self.off[i + 1]] for i in self.train])
        self.mean = tr.mean(0)
        # latents get the consistency model's sigma_data (0.5) as their spread
        self.scale = 2.0 * np.maximum(tr.std(0), 1e-3)
        self.lat = ((self.feats_raw - self.mean) / self.scale).astype(np.float32)
        self.by_voice = {}
        for i in self.train:
            if self.frames(i) >= PROMPT_FRAMES:
                self.by_voice.setdefault(int(self.voice[i]), []).append(i)

    def frames(self, i):
        return int(self.off[i + 1] - self.off[i])

    def utt(self, i):
        a, b = self.off[i], self.off[i + 1]
        p, q = self.poff[i], self.poff[i + 1]
        return self.ids[p:q], self.dur[p:q], self.lat[a:b], self.feats_raw[a:b, 0]

    def prompt(self, i, rng):
        """Latents of a PROMPT_FRAMES crop of another utterance of i's voice."""
        cands = self.by_voice[int(self.voice[i])]
        j = cands[rng.randrange(len(cands))]
        if j == i and len(cands) > 1:
            j = cands[(cands.index(j) + 1) % len(cands)]
        s = rng.randrange(self.frames(j) - PROMPT_FRAMES + 1)
        return self.lat[self.off[j] + s : self.off[j] + s + PROMPT_FRAMES]


def init_tensor(name, shape, g):
    x = torch.randn(shape, generator=g)
    leaf = name.rsplit(".", 1)[-1]
    if name.endswith("embed.weight") or name.endswith("queries"):
        return x * (0.3 if name.startswith("pitch") else 1.0)
    if leaf == "bias":
        if name.endswith(".scale.bias"):
            return torch.ones(shape)
        if name == "duration_predictor.out.bias":
            return torch.full(shape, 1.8)
        if name == "pitch_predictor.out.bias":
            return torch.full(shape, math.log(140.0))
        return torch.zeros(shape)
    if len(shape) == 1:
        return torch.ones(shape)
    if name.endswith(".scale.weight") or name.endswith(".shift.weight"):
        return torch.zeros(shape)
    if name.endswith(".film.weight"):  # FiLM starts as the identity
        return torch.zeros(shape)
    fan_in = 1
    for d in shape[1:]:
        fan_in *= d
    return x / math.sqrt(fan_in)


def config(corpus):
    cfg = dict(ARCH)
    cfg.update(corpus.vocoder)
    cfg["phonemes"] = corpus.inventory
    cfg["latent_dim"] = 2 + corpus.vocoder["vocoder_bands"]
    cfg["vocoder_mean"] = [float(v) for v in corpus.mean]
    cfg["vocoder_scale"] = [float(v) for v in corpus.scale]
    return cfg


def batches(corpus, rng, max_frames):
    """Length-bucketed batches of train utterances, about max_frames padded
    frames each, in random order."""
    order = sorted(corpus.train, key=lambda i: corpus.frames(i) + rng.random() * 20)
    out, cur, longest = [], [], 0
    for i in order:
        f = corpus.frames(i)
        if cur and max(longest, f) * (len(cur) + 1) > max_frames:
            out.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, f)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(corpus, idx, rng, default_voice, zero_p):
    items = [corpus.utt(i) for i in idx]
    b = len(idx)
    n = max(len(it[0]) for it in items)
    t = max(it[2].shape[0] for it in items)
    d = items[0][2].shape[1]
    ids = torch.zeros(b, n, dtype=torch.int64)
    dur = torch.zeros(b, n, dtype=torch.int64)
    pm = torch.zeros(b, n)
    lat = torch.zeros(b, d, t)
    lf0 = torch.zeros(b, t)
    fm = torch.zeros(b, t)
    for k, (pi, pd, pl, pf) in enumerate(items):
        ids[k, : len(pi)] = torch.from_numpy(pi.astype(np.int64))
        # punctuation sometimes as the frontend's "<sil>" (its stand-in for
        # marks the inventory lacks), so that symbol is trained too
        for j in range(len(pi)):
            if corpus.inventory[pi[j]] in (".", ",") and rng.random() < 0.15:
                ids[k, j] = corpus.inventory.index("<sil>")
        dur[k, : len(pd)] = torch.from_numpy(pd.astype(np.int64))
        pm[k, : len(pi)] = 1
        lat[k, :, : pl.shape[0]] = torch.from_numpy(pl.T)
        lf0[k, : pf.shape[0]] = torch.from_numpy(pf)
        fm[k, : pl.shape[0]] = 1
    prompt = torch.from_numpy(np.stack([corpus.prompt(i, rng) for i in idx]))
    zero = torch.tensor(
        [int(corpus.voice[i]) == default_voice and rng.random() < zero_p for i in idx]
    )
    return ids, dur, pm, lat, lf0, fm, prompt, zero


def masked_mse(a, b, m):
    return (((a - b) ** 2) * m).sum() / m.sum().clamp(min=1)


def sample_sigmas(b, cfg, g):
    """Per utterance: sigma_max (the one-step sampler's), sigma_inter (the
    second step's) or log-normal in between."""
    u = torch.rand(b, generator=g)
    ln = torch.exp(torch.randn(b, generator=g) * 1.4 - 0.4)
    s = torch.where(u < 0.3, torch.full((b,), cfg.sigma_max), ln)
    s = torch.where((u >= 0.3) & (u < 0.5), torch.full((b,), cfg.sigma_inter), s)
    return s.clamp(cfg.sigma_min * 2, cfg.sigma_max)


def step_losses(W, cfg, batch, g):
    ids, dur, pm, lat, lf0, fm, prompt, zero = batch
    b, t = lf0.shape
    spk = net.prompt_encoder(W, cfg, prompt)
    spk = torch.where(zero[:, None, None], torch.zeros_like(spk), spk)
    h = net.phoneme_encoder(W, cfg, ids, pm, spk)
    ld_gt = torch.log(dur.float() + 1.0)
    ld0 = net.prosody_predictor(
        W, "duration_predictor", cfg, h, pm, spk, cfg.duration_layers, cfg.duration_kernel
    )
    l_dur = masked_mse(ld0, ld_gt, pm)
    e = net.length_regulate(h, dur, t)
    lf0_0 = net.prosody_predictor(
        W, "pitch_predictor", cfg, e, fm, spk, cfg.pitch_layers, cfg.pitch_kernel
    )
    l_pitch = masked_mse(lf0_0, lf0, fm)

    s80 = torch.full((b,), cfg.sigma_max)
    ref = {}
    for name, init, tgt, cond, m in (
        ("duration_refiner", ld0, ld_gt, h, pm),
        ("pitch_refiner", lf0_0, lf0, e, fm),
    ):
        x = cfg.sigma_max * torch.randn(init.shape, generator=g)[:, None, :] * m[:, None, :]
        r = net.consistency(
            W, name, cfg, x, s80, cond.detach().transpose(1, 2), m, spk.detach(),
            cfg.refiner_layers,
        )[:, 0]
        ref[name] = masked_mse(r, (tgt - init.detach()) / cfg.alpha, m)

    bins = fs.pitch_bins(lf0, cfg)
    c = (e + W["pitch_embed.weight"][bins]) * fm[..., None]
    # the LCM sees a random LCM_CROP-frame window of each utterance (its
    # receptive field is far shorter): a third of the cost of whole ones
    if t > LCM_CROP:
        lens = fm.sum(1).long()
        starts = [int(torch.randint(0, max(1, int(n) - LCM_CROP + 1), (1,), generator=g)) for n in lens]
        c = torch.stack([c[k, s0 : s0 + LCM_CROP] for k, s0 in enumerate(starts)])
        lat = torch.stack([lat[k, :, s0 : s0 + LCM_CROP] for k, s0 in enumerate(starts)])
        fm = torch.stack([fm[k, s0 : s0 + LCM_CROP] for k, s0 in enumerate(starts)])
    sig = sample_sigmas(b, cfg, g)
    eps = torch.randn(lat.shape, generator=g) * fm[:, None, :]
    x = lat + sig[:, None, None] * eps
    den = net.consistency(
        W, "lcm", cfg, x, sig, c.transpose(1, 2), fm, spk, cfg.wavenet_layers
    )
    _, c_out, _, _ = net.precond(cfg, sig)
    err = ((den - lat) ** 2).mean(1) * fm / (c_out[:, None] ** 2)
    l_lcm = err.sum() / fm.sum()
    return {
        "dur": l_dur,
        "pitch": l_pitch,
        "dref": ref["duration_refiner"],
        "pref": ref["pitch_refiner"],
        "lcm": l_lcm,
    }


def save(out, state):
    tmp = os.path.join(out, "ckpt.pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(out, "ckpt.pt"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default="data/speech-corpus")
    ap.add_argument("--out", default="data/speech-train")
    ap.add_argument("--minutes", type=float, default=70.0, help="training time budget")
    ap.add_argument("--batch-frames", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--measure", type=int, default=0, help="time N steps and exit")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    feats = os.path.join(a.out, "feats.npz")
    if not os.path.exists(feats):
        subprocess.run(
            [sys.executable, os.path.join(HERE, "prep.py"), "--corpus", a.corpus, "--out", a.out],
            check=True,
        )
    corpus = Corpus(feats)
    cfgd = config(corpus)
    cfg = fs.Config(cfgd)
    default_voice = corpus.voices.index(DEFAULT_VOICE)

    g = torch.Generator().manual_seed(SEED)
    W = net.Params(shapes(cfgd), lambda n, s: init_tensor(n, s, g))
    nparam = sum(p.numel() for p in W.parameters())
    opt = torch.optim.AdamW(W.parameters(), lr=a.lr, betas=(0.9, 0.98), weight_decay=1e-4)
    rng = random.Random(SEED)
    state = {"step": 0, "epoch": 0, "pos": 0, "elapsed": 0.0, "order": None}
    ck = os.path.join(a.out, "ckpt.pt")
    if os.path.exists(ck) and not a.measure:
        st = torch.load(ck)
        for n, v in st["params"].items():
            W[n].data.copy_(v)
        opt.load_state_dict(st["opt"])
        state = st["state"]
        rng.setstate(st["rng"])
        g.set_state(st["g"])
        log(a.out, "resumed at step %d (%.1f min trained)" % (state["step"], state["elapsed"] / 60))
    else:
        log(a.out, "start: %d parameters, %d train utterances, %d voices, D=%d" % (
            nparam, len(corpus.train), len(corpus.voices), cfg.latent_dim))
    with open(os.path.join(a.out, "config.json"), "w", encoding="utf-8") as f:
        json.dump(cfgd, f, indent=1, ensure_ascii=False)

    budget = a.minutes * 60.0
    t_save = time.time()
    acc, nacc = {}, 0
    while state["elapsed"] < budget:
        if state["order"] is None or state["pos"] >= len(state["order"]):
            state["order"] = batches(corpus, rng, a.batch_frames)
            state["pos"] = 0
            state["epoch"] += 1
        t0 = time.time()
        idx = state["order"][state["pos"]]
        batch = collate(corpus, idx, rng, default_voice, ZERO_PROMPT_P)
        frac = state["elapsed"] / budget
        warm = min(1.0, (state["step"] + 1) / 200.0)
        lr = a.lr * warm * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(frac, 1.0))))
        for pg in opt.param_groups:
            pg["lr"] = lr
        losses = step_losses(W, cfg, batch, g)
        total = losses["dur"] + losses["pitch"] + 0.1 * (losses["dref"] + losses["pref"]) + losses["lcm"]
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(W.parameters(), 1.0)
        opt.step()
        dt = time.time() - t0
        state["elapsed"] += dt
        state["step"] += 1
        state["pos"] += 1
        for k, v in losses.items():
            acc[k] = acc.get(k, 0.0) + float(v)
        nacc += 1
        if a.measure:
            print("step %d: %d utts, %.2f s" % (state["step"], len(idx), dt), flush=True)
            if state["step"] >= a.measure:
                return
            continue
        if state["step"] % 50 == 0:
            log(a.out, "step %d epoch %d %.1f min lr %.2e | %s" % (
                state["step"], state["epoch"], state["elapsed"] / 60, lr,
                " ".join("%s %.4f" % (k, v / nacc) for k, v in acc.items())))
            acc, nacc = {}, 0
        if time.time() - t_save > 240:
            save(a.out, {"params": W.state(), "opt": opt.state_dict(), "state": state,
                         "rng": rng.getstate(), "g": g.get_state()})
            t_save = time.time()
    save(a.out, {"params": W.state(), "opt": opt.state_dict(), "state": state,
                 "rng": rng.getstate(), "g": g.get_state()})
    log(a.out, "done: step %d, %.1f min" % (state["step"], state["elapsed"] / 60))


if __name__ == "__main__":
    main()
