#!/usr/bin/python3
"""Train the bundled vstream-tiny model on the synthetic world (issue #7).

  /usr/bin/python3 tools/vworld/train.py --out data/vstream-train

Stages (each writes its result under --out and is skipped when that exists,
so a killed run resumes where it stopped; stage B also resumes from its last
checkpoint):
  tokenizer  SentencePiece BPE on the world's question/answer text + prompt
  vision     the CLIP tower on per-frame ground truth (objects, background)
             through linear heads on the pooled tokens (thrown away after)
  memory     per training stream: frames -> preprocess -> frozen tower ->
             pool -> STAR memory; the memory tokens cached at many times t
             with questions valid at t
  language   projector + Llama on (memory tokens, prompt, question) ->
             answer, cross-entropy on the answer tokens and </s>

Seeds: training streams and frames come from [0, TRAIN_SEED_MAX) only, in
ranges fixed below; validation uses its own training-range seeds. Held-out
seeds are never touched. Progress lines go to OUT/progress.txt.
"""

import argparse
import itertools
import math
import os
import random
import re
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import model as M  # noqa: E402
from tools.vworld import world as W  # noqa: E402

SEED = 1234
VISION_SEEDS = 300_000  # + k: frames for the vision stage
STREAM_SEEDS = 100_000  # + k: training streams for the language stage
VAL_SEEDS = 200_000  # + k: validation streams
assert max(VISION_SEEDS, STREAM_SEEDS, VAL_SEEDS) + 100_000 <= W.TRAIN_SEED_MAX

COMBOS = [(s, c) for s in W.SHAPES for c in W.COLOURS]
COMBO_SIZE = [(s, c, z) for s, c in COMBOS for z in W.SIZES]
CS_INDEX = {k: i for i, k in enumerate(COMBO_SIZE)}
N_CS = len(COMBO_SIZE)
N_BG, N_PAT, N_CNT = len(W.BACKGROUNDS), len(W.PATTERNS), W.BANDS + 1
NOISE = 1.0  # grey levels of Gaussian noise on top of the real H.264 round trip


class Log:
    def __init__(self, out):
        self.path = os.path.join(out, "progress.txt")

    def __call__(self, msg):
        line = "%s %s" % (time.strftime("%H:%M:%S", time.gmtime()), msg)
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def save_atomic(obj, path):
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


# ---- tokenizer ----------------------------------------------------------------------------


def stage_tokenizer(out, log):
    path = os.path.join(out, "tokenizer.model")
    if os.path.exists(path):
        return
    # The prompt head is in every sequence: repeated so BPE merges its words.
    lines = [M.PROMPT_HEAD + M.PROMPT_TAIL] * 500
    for key, tmpls in W.TEMPLATES.items():
        for t in tmpls:
            for s in W.SHAPES:
                for c in W.COLOURS:
                    lines.append(t.format(shape=s, colour=c) + M.PROMPT_TAIL)
    answers = list(W.SHAPES) + list(W.COLOURS) + list(W.SIZES) + list(W.BACKGROUNDS)
    answers += [str(i) for i in range(10)] + ["yes", "no"]
    for n in range(1, len(W.COLOURS) + 1):
        for sub in itertools.combinations(W.COLOURS, n):
            answers.append(W.colour_list(sub))
    rng = np.random.default_rng(SEED)
    for k in range(60):
        w = W.World(STREAM_SEEDS + k)
        for t in rng.integers(1, w.duration_s, 10):
            for q in w.sample_questions(int(t), rng, 8):
                lines.append(q["question"] + M.PROMPT_TAIL)
                answers.append(q["answer"])
    lines += answers * 3
    M.train_tokenizer(lines, 700, path)
    p = M.Prompt(path)
    log("tokenizer: %d pieces, head %d tokens" % (p.vocab, len(p.head)))


# ---- vision stage -------------------------------------------------------------------------


N_F = len(W.SHAPES) + len(W.COLOURS) + len(W.SIZES)


def _factor(o):
    """Indices of an object's shape, colour and size in the factor vector."""
    return (W.SHAPES.index(o["shape"]), len(W.SHAPES) + W.COLOURS.index(o["colour"]),
            len(W.SHAPES) + len(W.COLOURS) + W.SIZES.index(o["size"]))


def frame_targets(world, i):
    """Per-frame ground truth for the vision heads: per 4x4 cell and per 2x2
    quadrant, which (shape, colour, size) cover it, both as combinations and
    factor by factor; per frame the same, object count, background and its
    pattern."""
    side = M.MEMORY_CFG["compress_size"]
    cell = W.SIZE // side
    cells = np.zeros((side * side, N_CS + N_F), np.float32)
    quads = np.zeros((4, N_CS + N_F), np.float32)
    whole = np.zeros(N_CS + N_F, np.float32)
    grid = M.CLIP_CFG["image_size"] // M.CLIP_CFG["patch_size"]
    pcell = W.SIZE // grid
    best = np.zeros(grid * grid)
    patch = np.zeros((grid * grid, 3), np.int64)  # shape, colour, size of the main object; 0 none
    objs = world.objects_at(i)
    for o in objs:
        r = W.RADIUS[o["size"]]
        m = W._MASKS[(o["shape"], o["size"])]
        cov = np.zeros((W.SIZE, W.SIZE), bool)
        cov[o["y"] - r : o["y"] + r + 1, o["x"] - r : o["x"] + r + 1] = m
        ks = [CS_INDEX[(o["shape"], o["colour"], o["size"])]] + [N_CS + f for f in _factor(o)]
        per_cell = cov.reshape(side, cell, side, cell).sum(axis=(1, 3)).reshape(-1)
        per_quad = cov.reshape(2, W.SIZE // 2, 2, W.SIZE // 2).sum(axis=(1, 3)).reshape(-1)
        per_patch = cov.reshape(grid, pcell, grid, pcell).sum(axis=(1, 3)).reshape(-1)
        take = (per_patch >= 24) & (per_patch > best)
        best[take] = per_patch[take]
        patch[take] = [W.SHAPES.index(o["shape"]) + 1, W.COLOURS.index(o["colour"]) + 1,
                       W.SIZES.index(o["size"]) + 1]
        for k in ks:
            cells[per_cell >= 6, k] = 1
            quads[per_quad >= 6, k] = 1
            whole[k] = 1
    si = world._scene_index(i)
    sc = world.scenes[si]
    return (cells, quads, whole, len(objs), W.BACKGROUNDS.index(sc["background"]),
            W.PATTERNS.index(sc["pattern"]), patch)


class VisionHeads(torch.nn.Module):
    """Linear probes on the pooled tokens: linear so that what the memory
    averages (cluster centroids, pooled maps) stays readable. Positives are
    weighted up: most cells are empty, and without it the tower first
    learns to say 'nothing' everywhere."""

    def __init__(self, dim):
        super().__init__()
        n = N_CS + N_F
        self.cell = torch.nn.Linear(dim, n + N_BG)
        self.quad = torch.nn.Linear(dim, n)
        self.frame = torch.nn.Linear(dim, n + N_CNT + N_BG + N_PAT)
        self.patch = torch.nn.Linear(dim, len(W.SHAPES) + len(W.COLOURS) + len(W.SIZES) + 3)
        self.register_buffer("pos_w", torch.tensor([6.0] * N_CS + [3.0] * N_F))

    def loss(self, patches, tg):
        """patches: the tower's layer -2 patch tokens [B, grid^2, C]."""
        cells, quads, whole, cnt, bg, pat, plab = tg
        feats = M.rproj.pool_grid(patches, M.MEMORY_CFG["compress_size"])
        n = N_CS + N_F

        def bce(x, y):
            return torch.nn.functional.binary_cross_entropy_with_logits(x, y, pos_weight=self.pos_w) * 4

        ce = torch.nn.functional.cross_entropy
        b = feats.shape[0]
        lc = self.cell(feats)  # [B, 16, n + N_BG]
        q = M.rproj.pool_grid(feats, 2)
        lq = self.quad(q)
        lf = self.frame(feats.mean(dim=1))
        loss = bce(lc[..., :n], cells) + bce(lq, quads) + bce(lf[:, :n], whole)
        loss = loss + ce(lc[..., n:].reshape(-1, N_BG), bg.repeat_interleave(lc.shape[1]))
        loss = loss + ce(lf[:, n : n + N_CNT], cnt) + ce(lf[:, n + N_CNT : n + N_CNT + N_BG], bg)
        loss = loss + ce(lf[:, n + N_CNT + N_BG :], pat)
        # Dense per-patch labels (the object covering most of each patch):
        # the signal that teaches the tower shapes; cell labels alone did not.
        lp = self.patch(patches)
        o = 0
        for j, k in enumerate((len(W.SHAPES), len(W.COLOURS), len(W.SIZES))):
            loss = loss + 2 * ce(lp[..., o : o + k + 1].reshape(-1, k + 1), plab[..., j].reshape(-1))
            o += k + 1
        with torch.no_grad():
            on = plab[..., 0] > 0
            acc_cell = (lp[..., : len(W.SHAPES) + 1].argmax(-1) == plab[..., 0])[on].float().mean()
            acc_frame = ((lf[:, :N_CS] > 0).float() == whole[:, :N_CS]).all(dim=-1).float().mean()
            acc_bg = (lf[:, n + N_CNT : n + N_CNT + N_BG].argmax(-1) == bg).float().mean()
        return loss, (float(acc_cell), float(acc_frame), float(acc_bg), b)


def patch_tokens(px, w):
    return M.rclip.select_features(px, w, M.clip_config(), -2, "patch", prefix=M.VISION)


def vision_batch(seed_base, n_streams, batch, rng, pp):
    frames, tgs = [], []
    for _ in range(batch):
        w = W.World(seed_base + int(rng.integers(n_streams)))
        i = int(rng.integers(w.duration_s))
        frames.append(w.frame(i))
        tgs.append(frame_targets(w, i))
    px = torch.from_numpy(pp(M.h264_roundtrip(np.stack(frames)), NOISE, rng))
    cols = list(zip(*tgs))
    tg = (torch.from_numpy(np.stack(cols[0])), torch.from_numpy(np.stack(cols[1])),
          torch.from_numpy(np.stack(cols[2])), torch.tensor(cols[3]), torch.tensor(cols[4]),
          torch.tensor(cols[5]), torch.from_numpy(np.stack(cols[6])))
    return px, tg


class Bank:
    """Frames pre-rendered by vision_bank.py (H.264 round trip done), with
    their targets; chunks are picked up as the generator writes them."""

    def __init__(self, d):
        self.d, self.chunks, self.names = d, [], set()
        mean = torch.tensor(M.rpre.CLIP_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(M.rpre.CLIP_STD, dtype=torch.float32).view(1, 3, 1, 1)
        self.mean, self.std = mean, std
        assert M.CLIP_CFG["image_size"] == W.SIZE, "bank preprocessing assumes no resize"
        self.refresh()

    def refresh(self):
        for fn in sorted(os.listdir(self.d)):
            if fn.startswith("chunk_") and fn.endswith(".npz") and ".tmp" not in fn and fn not in self.names:
                z = np.load(os.path.join(self.d, fn))
                self.chunks.append({k: z[k] for k in z.files})
                self.names.add(fn)
        return len(self.chunks)

    def batch(self, n, rng):
        """n frames drawn uniformly from the chunks loaded so far: the same
        pixels FastPreprocess gives (identity resize, rounded noise, CLIP
        normalisation), done in torch."""
        sizes = [c["frames"].shape[0] for c in self.chunks]
        ci = rng.integers(len(self.chunks), size=n)
        fi = [int(rng.integers(sizes[c])) for c in ci]
        pick = lambda k: np.stack([self.chunks[c][k][f] for c, f in zip(ci, fi)])  # noqa: E731
        x = torch.from_numpy(pick("frames")).permute(0, 3, 1, 2).to(torch.float64)
        x = torch.clamp(torch.round(x + torch.from_numpy(rng.normal(0, NOISE, tuple(x.shape)))), 0, 255)
        px = ((x * (1 / 255)).float() - self.mean) / self.std
        tg = tuple(torch.from_numpy(pick(k)) for k in ("cells", "quads", "whole"))
        tg += tuple(torch.from_numpy(pick(k)).long() for k in ("cnt", "bg", "pat", "patch"))
        return px.contiguous(), tg


def stage_vision(out, log, steps, batch, bank_dir=None, init=None, lr_max=2e-3):
    path = os.path.join(out, "vision.pt")
    if os.path.exists(path):
        return
    g = torch.Generator()
    g.manual_seed(SEED)
    torch.manual_seed(SEED)
    w = M.init_vision(g)
    if init:
        w.update(torch.load(init))
        log("vision: tower initialised from %s" % init)
    w = {k: v.requires_grad_() for k, v in w.items()}
    bank = Bank(bank_dir) if bank_dir else None
    heads = VisionHeads(M.CLIP_CFG["hidden_size"])
    params = list(w.values()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=lr_max, weight_decay=0.01)
    rng = np.random.default_rng(SEED + 1)
    vrng = np.random.default_rng(SEED + 2)
    pp = M.FastPreprocess(W.SIZE, W.SIZE)
    val = [vision_batch(VAL_SEEDS, 20, 64, vrng, pp) for _ in range(2)]
    ck = os.path.join(out, "vision_ckpt.pt")
    step = 0
    if os.path.exists(ck):
        s = torch.load(ck)
        for k in w:
            w[k].data.copy_(s["w"][k])
        if set(s["heads"]) == set(heads.state_dict()):
            heads.load_state_dict(s["heads"])
            opt.load_state_dict(s["opt"])
            step = s["step"]
            log("vision: resumed at step %d" % step)
        else:
            heads.load_state_dict(s["heads"], strict=False)
            log("vision: heads changed: tower warm-started from step %d, schedule restarted" % s["step"])
        rng = s["rng"]
    t0 = time.time()
    while step < steps:
        lr = lr_max * min(1.0, (step + 1) / 30) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for gr in opt.param_groups:
            gr["lr"] = lr
        if bank is not None:
            if step % 100 == 0:
                bank.refresh()
            px, tg = bank.batch(batch, rng)
        else:
            px, tg = vision_batch(VISION_SEEDS, 20_000, batch, rng, pp)
        loss, acc = heads.loss(patch_tokens(px, w), tg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step == steps:
            with torch.no_grad():
                va = [heads.loss(patch_tokens(px_, w), tg_)[1] for px_, tg_ in val]
            log("vision step %d loss %.4f train patch-shape/frame-combos/bg %.3f/%.3f/%.3f  val %.3f/%.3f/%.3f  (%.0f s)"
                % (step, float(loss), acc[0], acc[1], acc[2],
                   np.mean([a[0] for a in va]), np.mean([a[1] for a in va]), np.mean([a[2] for a in va]),
                   time.time() - t0))
            save_atomic({"w": {k: v.detach() for k, v in w.items()}, "heads": heads.state_dict(),
                         "opt": opt.state_dict(), "step": step, "rng": rng}, ck)
    save_atomic({k: v.detach().clone() for k, v in w.items()}, path)


# ---- memory stage -------------------------------------------------------------------------


def stream_snapshots(seed, vis, every, n_questions, rng, pp):
    """Run one stream through tower and memory; return the snapshots taken
    after frame t for t on a grid of about `every` seconds (each with the
    memory tokens and questions valid at t)."""
    world = W.World(seed)
    cfg = M.memory_config(M.full_config(512))
    star = M.FastStar(cfg)
    d = world.duration_s
    times = set(int(t) for t in np.arange(1 + int(rng.integers(every)), d, every))
    times |= set(int(t) for t in rng.integers(1, min(d, 60), 3))  # a few early ones
    snaps = []
    chunk = 120
    video = M.h264_roundtrip(world.frames(0, d))
    with torch.no_grad():
        for i0 in range(0, d, chunk):
            i1 = min(d, i0 + chunk)
            px = torch.from_numpy(pp(video[i0:i1], NOISE, rng))
            feats = M.vision_features(px, vis)
            for i in range(i0, i1):
                star.push(feats[i - i0])
                if i in times:
                    qs = world.sample_questions(i, rng, n_questions)
                    if qs:
                        snaps.append({"t": i, "tokens": star.tokens().to(torch.float16),
                                      "questions": [(q["kind"], q["question"], q["answer"]) for q in qs]})
    return snaps


def stage_memory(out, log, seed_base, count, tag, every, reverse=False):
    vis = torch.load(os.path.join(out, "vision.pt"))
    pp = M.FastPreprocess(W.SIZE, W.SIZE)
    d = os.path.join(out, tag)
    os.makedirs(d, exist_ok=True)
    t0 = time.time()
    # reverse: a second process can fill the cache from the other end (each
    # stream's file depends only on its seed, so a race writes it twice).
    for k in (range(count - 1, -1, -1) if reverse else range(count)):
        path = os.path.join(d, "%d.pt" % (seed_base + k))
        if os.path.exists(path):
            continue
        rng = np.random.default_rng([SEED, seed_base + k])
        snaps = stream_snapshots(seed_base + k, vis, every, 16, rng, pp)
        save_atomic(snaps, path)
        log("memory %s %d/%d: seed %d, %d snapshots (%.0f s)"
            % (tag, k + 1, count, seed_base + k, len(snaps), time.time() - t0))


def load_snaps(out, tag):
    d = os.path.join(out, tag)
    snaps = []
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".pt"):
            snaps.extend(torch.load(os.path.join(d, fn)))
    return snaps


# ---- language stage -----------------------------------------------------------------------


def pack(snap_list, prompt, lang_cfg):
    """Batch of sequences [BOS head, memory, (tail_j, answer_j)...]: every
    question block sees the head and memory but not the other blocks, and
    starts at the position right after the memory (as if asked alone).
    A question is (kind, text, answer[, loss weight]); its answer tokens get
    the weight (default 1). Returns ids, block ids, positions, targets, the
    memory parts and the per-target loss weights."""
    seqs = []
    for tokens, qas in snap_list:
        head = prompt.head
        n_mem = tokens.shape[0]
        ids, blk, pos, tgt = list(head), [0] * len(head), list(range(len(head))), [-100] * len(head)
        wt = [0.0] * len(head)
        ids += [-1] * n_mem
        blk += [0] * n_mem
        pos += list(range(len(head), len(head) + n_mem))
        tgt += [-100] * n_mem
        wt += [0.0] * n_mem
        start = len(head) + n_mem
        for j, (_, q, a, *qw) in enumerate(qas):
            tail = prompt.tail(q)
            ans = prompt.answer(a)
            seq = tail + ans[:-1]
            ids += seq
            blk += [j + 1] * len(seq)
            pos += list(range(start, start + len(seq)))
            tgt += [-100] * (len(tail) - 1) + ans
            wt += [0.0] * (len(tail) - 1) + [qw[0] if qw else 1.0] * len(ans)
        seqs.append((ids, blk, pos, tgt, len(head), n_mem, tokens, wt))
    t = max(len(s[0]) for s in seqs)
    b = len(seqs)
    ids = torch.zeros(b, t, dtype=torch.long)
    blk = torch.full((b, t), -1, dtype=torch.long)
    pos = torch.zeros(b, t, dtype=torch.long)
    tgt = torch.full((b, t), -100, dtype=torch.long)
    wts = torch.zeros(b, t)
    for i, (a, bl, p, tg, nh, nm, _, wt) in enumerate(seqs):
        n = len(a)
        ids[i, :n] = torch.tensor([max(x, 0) for x in a])
        blk[i, :n] = torch.tensor(bl)
        pos[i, :n] = torch.tensor(p)
        pos[i, n:] = torch.arange(p[-1] + 1, p[-1] + 1 + t - n)
        tgt[i, :n] = torch.tensor(tg)
        wts[i, :n] = torch.tensor(wt)
    return ids, blk, pos, tgt, [(s[4], s[5], s[6]) for s in seqs], wts


def llama_packed(x, pos, blk, w, cfg):
    """llama_batch with explicit positions and block masking (see pack)."""
    b, t, _ = x.shape
    nh, hd = cfg.num_attention_heads, cfg.head_dim
    cos, sin = M.rllama.rope_cos_sin(pos.reshape(-1), cfg, torch.float32)
    cos, sin = cos.view(b, 1, t, hd), sin.view(b, 1, t, hd)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    same = (blk[:, None, :] == 0) | (blk[:, None, :] == blk[:, :, None])
    mask = torch.zeros(b, 1, t, t).masked_fill(~(causal & same)[:, None], float("-inf"))
    eps = cfg.rms_norm_eps
    for i in range(cfg.num_hidden_layers):
        p = "model.layers.%d." % i
        h = M.rllama.rms_norm(x, w[p + "input_layernorm.weight"], eps)
        a = p + "self_attn."
        q = (h @ w[a + "q_proj.weight"].t()).view(b, t, nh, hd).transpose(1, 2)
        k = (h @ w[a + "k_proj.weight"].t()).view(b, t, nh, hd).transpose(1, 2)
        v = (h @ w[a + "v_proj.weight"].t()).view(b, t, nh, hd).transpose(1, 2)
        q, k = M.rllama.apply_rope(q, cos, sin), M.rllama.apply_rope(k, cos, sin)
        s = (q @ k.transpose(-1, -2)) / (hd**0.5) + mask
        o = torch.softmax(s, dim=-1) @ v
        x = x + o.transpose(1, 2).reshape(b, t, nh * hd) @ w[a + "o_proj.weight"].t()
        h = M.rllama.rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + M.rllama.mlp(h, w, p + "mlp.")
    x = M.rllama.rms_norm(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].t()


def forward_batch(batch, prompt, w, cfg):
    ids, blk, pos, tgt, mems, wts = pack(batch, prompt, cfg)
    x = w["model.embed_tokens.weight"][ids]
    rows = []
    for i, (nh, nm, tokens) in enumerate(mems):
        proj = M.project(tokens.float(), w)
        rows.append(torch.cat([x[i, :nh], proj, x[i, nh + nm :]]))
    x = torch.stack(rows)
    logits = llama_packed(x, pos, blk, w, cfg)
    return logits, tgt, blk, wts


def batch_loss(batch, prompt, w, cfg):
    logits, tgt, blk, wts = forward_batch(batch, prompt, w, cfg)
    # pack() stores targets at the input positions shifted already: tgt[p]
    # is the token after position p. Weighted mean over the answer tokens.
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                           ignore_index=-100, reduction="none")
    wts = wts.reshape(-1)
    loss = (ce * wts).sum() / wts.sum()
    return loss, logits, tgt, blk


def exact_by_block(logits, tgt, blk, batch):
    """Per question: True when greedy decoding gives exactly the answer (the
    argmax matches every answer token and </s> under teacher forcing)."""
    pred = logits.argmax(-1)
    res = []
    for i, (_, qas) in enumerate(batch):
        for j, (kind, *_) in enumerate(qas):
            m = (blk[i] == j + 1) & (tgt[i] != -100)
            res.append((kind, bool((pred[i][m] == tgt[i][m]).all())))
    return res


def evaluate(val, prompt, w, cfg, per_snap=4):
    acc = {}
    with torch.no_grad():
        for i in range(0, len(val), 16):
            chunk = [(s["tokens"], s["questions"][:per_snap]) for s in val[i : i + 16]]
            logits, tgt, blk, _ = forward_batch(chunk, prompt, w, cfg)
            for kind, ok in exact_by_block(logits, tgt, blk, chunk):
                acc.setdefault(kind, []).append(ok)
    allv = [x for v in acc.values() for x in v]
    out = {k: float(np.mean(v)) for k, v in sorted(acc.items())}
    out["overall"] = float(np.mean(allv))
    return out


def fmt_acc(a):
    return " ".join("%s %.3f" % (k, v) for k, v in a.items())


def question_type(q):
    """The world's template type ("cnt_backgrounds", ...) of a question text."""
    if not hasattr(question_type, "pats"):
        question_type.pats = [(re.compile("^" + re.escape(para).replace(r"\{shape\}", r"\w+")
                                          .replace(r"\{colour\}", r"\w+") + "$"), t)
                              for t, paras in W.TEMPLATES.items() for para in paras]
        # exact texts before patterns ("What colour is the background?" is
        # not cur_colour_of's "What colour is the {shape}?")
        question_type.pats.sort(key=lambda pt: pt[0].pattern.count(r"\w+"))
    for pat, t in question_type.pats:
        if pat.match(q):
            return t
    raise ValueError("question matches no template: %r" % q)


def stage_language(out, log, steps, batch, per_snap, lr_max, init=None, kind_balance=False, type_weight=None):
    type_weight = type_weight or {}
    path = os.path.join(out, "language.pt")
    if os.path.exists(path):
        return
    prompt = M.Prompt(os.path.join(out, "tokenizer.model"))
    cfg = M.llama_config(prompt.vocab)
    train = load_snaps(out, "streams")
    val = load_snaps(out, "val")
    vr = random.Random(SEED)
    val = vr.sample(val, min(len(val), 192))
    log("language: %d training snapshots, %d validation snapshots, vocab %d"
        % (len(train), len(val), prompt.vocab))
    # Occurrence answers are "no" more often than "yes" in the snapshots (a
    # "yes" needs an object gone for 2 minutes); without balancing, the model
    # learns the prior. "no" questions are kept with probability n_yes / n_no.
    occ = [a for s in train for (k, _, a) in s["questions"] if k == "occurrence"]
    n_yes = sum(1 for a in occ if a == "yes")
    keep_no = min(1.0, n_yes / max(1, len(occ) - n_yes))
    log("language: occurrence yes %d, no %d: 'no' kept with p %.3f" % (n_yes, len(occ) - n_yes, keep_no))
    kind_weight = {k: 1.0 for k in W.KINDS}
    if kind_balance:
        # Every kind weighs the same in the loss: recall questions (valid
        # only once an object has been gone 2 minutes) are the rarest in the
        # snapshots and the hardest. Counts after the occurrence balancing.
        cnt = {}
        for s in train:
            for (k, _, a) in s["questions"]:
                cnt[k] = cnt.get(k, 0.0) + (keep_no if (k == "occurrence" and a == "no") else 1.0)
        total = sum(cnt.values())
        kind_weight = {k: total / len(cnt) / v for k, v in sorted(cnt.items())}
        log("language: kind weights %s" % " ".join("%s %.2f" % kv for kv in kind_weight.items()))
    if type_weight:
        log("language: type weights %s" % " ".join("%s x%.2f" % kv for kv in type_weight.items()))
    if kind_balance or type_weight:
        # Each question carries its loss weight (pack()): its kind's, times
        # its template type's when that type is up-weighted.
        def weight(k, q):
            return kind_weight[k] * (type_weight.get(question_type(q), 1.0) if type_weight else 1.0)

        for s in train:
            s["questions"] = [(k, q, a, weight(k, q)) for (k, q, a) in s["questions"]]
    g = torch.Generator()
    g.manual_seed(SEED + 3)
    w = M.init_language(g, prompt.vocab)
    w.update({k: v for k, v in M.init_connector(g).items() if k.startswith("model.mm_projector.")})
    if init:
        # continue from another run's language.pt (fresh optimiser and schedule)
        prev = torch.load(init)
        for k in w:
            w[k] = prev[k].clone()
        log("language: weights from %s" % init)
    w = {k: v.requires_grad_() for k, v in w.items()}
    params = list(w.values())
    decay = [v for k, v in w.items() if v.dim() == 2]
    nodecay = [v for k, v in w.items() if v.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=lr_max, betas=(0.9, 0.98))
    ck = os.path.join(out, "language_ckpt.pt")
    step = 0
    rng = random.Random(SEED + 4)
    if os.path.exists(ck):
        s = torch.load(ck)
        for k in w:
            w[k].data.copy_(s["w"][k])
        opt.load_state_dict(s["opt"])
        step = s["step"]
        rng.setstate(s["rng"])
        log("language: resumed at step %d" % step)
    t0 = time.time()
    ema = None
    warm = 100
    while step < steps:
        lr = lr_max * min(1.0, (step + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for gr in opt.param_groups:
            gr["lr"] = lr
        b = []
        for _ in range(batch):
            s = train[rng.randrange(len(train))]
            qs = [q for q in s["questions"]
                  if not (q[0] == "occurrence" and q[2] == "no" and rng.random() >= keep_no)]
            qs = qs or s["questions"][:1]
            b.append((s["tokens"], rng.sample(qs, min(per_snap, len(qs)))))
        loss, _, _, _ = batch_loss(b, prompt, w, cfg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        ema = float(loss) if ema is None else 0.98 * ema + 0.02 * float(loss)
        if step % 50 == 0:
            log("language step %d loss %.4f (ema %.4f) lr %.2e (%.0f s)" % (step, float(loss), ema, lr, time.time() - t0))
        if step % 100 == 0 or step == steps:
            if step % 200 == 0 or step == steps:
                log("language step %d validation: %s" % (step, fmt_acc(evaluate(val, prompt, w, cfg))))
            save_atomic({"w": {k: v.detach() for k, v in w.items()}, "opt": opt.state_dict(), "step": step,
                         "rng": rng.getstate()}, ck)
            save_atomic({k: v.detach().clone() for k, v in w.items()}, os.path.join(out, "language_latest.pt"))
    save_atomic({k: v.detach().clone() for k, v in w.items()}, path)
    log("language: done, final validation: %s" % fmt_acc(evaluate(val, prompt, w, cfg, per_snap=16)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="data/vstream-train")
    p.add_argument("--vision-steps", type=int, default=400)
    p.add_argument("--vision-batch", type=int, default=48)
    p.add_argument("--bank", help="frames pre-rendered by vision_bank.py (default: render on the fly)")
    p.add_argument("--vision-init", help="start the tower from this vision.pt")
    p.add_argument("--vision-lr", type=float, default=2e-3)
    p.add_argument("--streams", type=int, default=40)
    p.add_argument("--val-streams", type=int, default=3)
    p.add_argument("--every", type=int, default=6, help="seconds between cached memory snapshots")
    p.add_argument("--memory-reverse", action="store_true", help="fill the memory cache last stream first")
    p.add_argument("--memory-only", action="store_true", help="stop after the memory stage (a helper process)")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=6)
    p.add_argument("--per-snap", type=int, default=10, help="questions packed per sequence")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--language-init", help="start the language stage from this language.pt")
    p.add_argument("--kind-balance", action="store_true",
                   help="weigh the four question kinds equally in the language loss")
    p.add_argument("--type-weight", action="append", default=[], metavar="TYPE=F",
                   help="multiply the loss weight of one question type (world.TEMPLATES key), e.g. cnt_backgrounds=4")
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    os.makedirs(a.out, exist_ok=True)
    log = Log(a.out)
    log("train.py %s" % " ".join(sys.argv[1:]))
    stage_tokenizer(a.out, log)
    stage_vision(a.out, log, a.vision_steps, a.vision_batch, a.bank, a.vision_init, a.vision_lr)
    stage_memory(a.out, log, VAL_SEEDS, a.val_streams, "val", a.every, a.memory_reverse)
    stage_memory(a.out, log, STREAM_SEEDS, a.streams, "streams", a.every, a.memory_reverse)
    if a.memory_only:
        log("memory stage done (--memory-only)")
        return
    type_weight = {}
    for tw in a.type_weight:
        t, _, f = tw.partition("=")
        if t not in W.TEMPLATES or not f:
            p.error("--type-weight %r: want TYPE=F with TYPE one of %s" % (tw, ", ".join(W.TEMPLATES)))
        type_weight[t] = float(f)
    stage_language(a.out, log, a.steps, a.batch, a.per_snap, a.lr, a.language_init, a.kind_balance, type_weight)
    log("all stages done")


if __name__ == "__main__":
    main()
