"""Flash-VStream STAR memory, streaming form: the reference for vstream/memory.c.

One frame at a time: push(frame) with frame [p_spa^2, C] float32 (the
compress_size x compress_size map), then tokens() gives the memory fed to the
projector: abstract + temporal + retrieved + spatial.

The rules (the C implementation follows them exactly; see vstream/memory.h):
- Spatial: a FIFO of the newest n_spa frames. A frame pushed out of it enters
  the long-term memories (temporal, abstract, feature buffer), as in the
  released code, where the newest frame is excluded from them.
- Temporal: the frame pooled to p_tem x p_tem and flattened ([p_tem^2 * C]) is
  one point. While at most n_tem points exist they pass through with weight 1.
  Then each new point (weight 1) joins the n_tem centroids (their weights
  carried; compat: every weight 1) and the n_tem + 1 points are clustered
  back to n_tem by weighted k-means: initial centroids are a seeded random
  subset (a partial Fisher-Yates shuffle with splitmix64), or, with
  kmeans_init "ward" (config.json key, a flashrt extension), the points with
  the pair of least Ward cost merged (ward_init), then at most
  kmeans_iters iterations of assign (squared Euclidean, ties to the lower
  cluster) / update (weighted mean; an empty cluster is re-seeded with the
  point farthest from its assigned centroid, ties to the lower point, not
  reused; compat: a random point); the centroids always take the update, and
  the loop stops when the summed centroid movement is below kmeans_tol.
- Abstract: the frame pooled to p_abs x p_abs (p_abs^2 tokens). The first
  n_abs frames fill the memory; then M <- M (1 - rowsum W) + W e with
  W = alpha softmax_rows(q(M) k(e)^T / sqrt(hidden)). Compat: frames after the
  first n_abs are taken n_abs at a time (e = all their tokens), as the
  released attention_feature does; a partial group shows in tokens() without
  being committed.
- Retrieved: the min(n_ret, clusters) clusters of largest weight (ties to the
  lower index), each gives the buffered frame nearest its centroid in the
  p_tem-pooled space (ties to the newest); compat: the frame whose long-memory
  index is the cluster number (the first n_tem long-memory frames are kept).
- Feature buffer: the last n_buff frames that entered the long-term memories.

Arithmetic: state kept in float32 (centroids, pooled frames, M); every
reduction and intermediate in float64, rounded to float32 only when stored;
cluster weights in float64.
"""

import math

import torch

F32 = torch.float32
F64 = torch.float64
MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & MASK

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


DEFAULTS = dict(
    p_spa=8, p_tem=4, p_abs=1, n_spa=1, n_tem=25, n_abs=25, n_ret=3, n_buff=300, hidden=32,
    alpha=0.2, kmeans_iters=10, kmeans_tol=1e-4, compat=False, seed=0, kmeans_init="random",
)
KMEANS_INITS = ("random", "ward")


def config_from_json(cfg, **over):
    """The memory settings from a Flash-VStream config.json dict."""
    c = dict(DEFAULTS)
    keys = dict(
        p_spa="compress_size", p_tem="compress_long_memory_size",
        p_abs="compress_Turing_memory_size", n_spa="video_current_memory_length",
        n_tem="video_long_memory_length", n_abs="video_Turing_memory_length",
        hidden="compress_Turing_hidden_dim", alpha="compress_Turing_update_ratio",
    )
    for k, j in keys.items():
        if j in cfg:
            c[k] = cfg[j]
    if "kmeans_init" in cfg:
        if cfg["kmeans_init"] not in KMEANS_INITS:
            raise ValueError("kmeans_init %r: expected one of %s" % (cfg["kmeans_init"], KMEANS_INITS))
        c["kmeans_init"] = cfg["kmeans_init"]
    c["dim"] = cfg["mm_hidden_size"]
    c.update(over)
    return c


def pool(frame, p_in, p_out):
    """[p_in^2, C] f32 -> [p_out^2, C] f32, the mean of each square block
    (row-major grid), summed in float64."""
    c = frame.shape[1]
    k = p_in // p_out
    x = frame.to(F64).reshape(p_out, k, p_out, k, c)
    return x.sum(dim=(1, 3)).div(k * k).reshape(p_out * p_out, c).to(F32)


def ward_init(x64, w):
    """The n - 1 initial centroids for n weighted points: every point, except
    that the pair whose merge adds least to the weighted sum of squares
    (Ward's cost w_i w_l / (w_i + w_l) |x_i - x_l|^2, 0 when both weights
    are 0 (a re-seeded cluster that got no member carries weight 0); ties to
    the lower i, then the lower l) becomes its weighted mean (x_i when both
    weights are 0), in i's place. For k = n - 1
    this partition is the k-means optimum. Returns (centroids f32, i, l)."""
    n = x64.shape[0]
    best = None
    for i in range(n):
        for l in range(i + 1, n):
            d = float(((x64[i] - x64[l]) ** 2).sum())
            a, b = float(w[i]), float(w[l])
            cost = a * b / (a + b) * d if a + b > 0 else 0.0
            if best is None or cost < best[0]:
                best = (cost, i, l)
    _, i, l = best
    keep = [r for r in range(n) if r != l]
    cent = x64[keep].to(F32)
    if float(w[i] + w[l]) > 0:
        cent[i] = ((w[i] * x64[i] + w[l] * x64[l]) / (w[i] + w[l])).to(F32)
    return cent, i, l


def weighted_kmeans(x, w, k, iters, tol, rng, compat, init="random"):
    """x [n, D] f32 points, w [n] f64 weights, n > k. Returns centroids
    [k, D] f32, labels [n] (last assignment), cluster weights [k] f64.
    init "random": a seeded random subset of the points (draws from rng);
    "ward" (n = k + 1 only): ward_init, no draws."""
    n = x.shape[0]
    x64 = x.to(F64)
    if init == "ward":
        assert n == k + 1
        cent, _, _ = ward_init(x64, w)
    else:
        idx = list(range(n))
        for i in range(k):
            j = i + rng.next() % (n - i)
            idx[i], idx[j] = idx[j], idx[i]
        cent = x[idx[:k]].clone()
    labels = None
    wsum = None
    for _ in range(iters):
        d = ((x64[:, None, :] - cent.to(F64)[None, :, :]) ** 2).sum(dim=2)  # [n, k]
        labels = [min(range(k), key=lambda j, r=r: (float(d[r, j]), j)) for r in range(n)]
        lab = torch.tensor(labels)
        wsum = torch.zeros(k, dtype=F64)
        new = torch.zeros(k, x.shape[1], dtype=F32)
        empty = []
        for j in range(k):
            m = lab == j
            ws = float(w[m].sum()) if bool(m.any()) else 0.0
            wsum[j] = ws
            if ws > 0:
                new[j] = ((w[m][:, None] * x64[m]).sum(dim=0) / ws).to(F32)
            else:
                empty.append(j)
        used = set()
        for j in empty:
            if compat:
                r = rng.next() % n
            else:
                own = [float(d[r, labels[r]]) for r in range(n)]
                r = max((i for i in range(n) if i not in used), key=lambda i: (own[i], -i))
                used.add(r)
            new[j] = x[r]
        diff = float(((cent.to(F64) - new.to(F64)) ** 2).sum(dim=1).sqrt().sum())
        cent = new
        if diff < tol:
            break
    return cent, labels, wsum


class StarMemory:
    def __init__(self, cfg, q_w, q_b, k_w, k_b):
        self.c = dict(DEFAULTS)
        self.c.update(cfg)
        c = self.c
        self.dim = c["dim"]
        self.qw, self.qb = q_w.to(F64), q_b.to(F64)
        self.kw, self.kb = k_w.to(F64), k_b.to(F64)
        self.rng = SplitMix64(c["seed"])
        self.frames = 0  # pushed
        self.long_frames = 0  # entered the long-term memories
        self.spatial = []  # newest last
        self.buffer = []  # (stream index, frame, pooled), oldest first
        self.early = []  # compat: the first n_tem long-memory frames
        self.cent = []  # [p_tem^2 * C] f32 each
        self.weights = []  # float
        self.abstract = []  # [p_abs^2, C] f32 per slot until full, then one tensor
        self.abs_full = None
        self.pending = []  # compat: frames of the current group
        self.labels = []  # last clustering's assignment ([] when none this frame)
        self.retrieved = []  # stream frame indices

    def push(self, frame):
        c = self.c
        frame = frame.to(F32).contiguous()
        self.spatial.append((self.frames, frame))
        self.frames += 1
        self.labels = []
        if len(self.spatial) > c["n_spa"]:
            idx, old = self.spatial.pop(0)
            self._long(idx, old)
        self._retrieve()

    def _long(self, idx, frame):
        c = self.c
        pooled = pool(frame, c["p_spa"], c["p_tem"])
        if c["n_buff"] > 0:
            self.buffer.append((idx, frame, pooled))
            if len(self.buffer) > c["n_buff"]:
                self.buffer.pop(0)
        if c["compat"] and len(self.early) < c["n_tem"]:
            self.early.append((idx, frame))
        self.long_frames += 1
        if c["n_tem"] > 0:
            pt = pooled.reshape(-1)
            if len(self.cent) < c["n_tem"]:
                self.cent.append(pt)
                self.weights.append(1.0)
            else:
                x = torch.stack(self.cent + [pt])
                if c["compat"]:
                    w = torch.ones(len(self.cent) + 1, dtype=F64)
                else:
                    w = torch.tensor(self.weights + [1.0], dtype=F64)
                cent, labels, wsum = weighted_kmeans(
                    x, w, c["n_tem"], c["kmeans_iters"], c["kmeans_tol"], self.rng, c["compat"],
                    c["kmeans_init"],
                )
                self.cent = [cent[j] for j in range(c["n_tem"])]
                self.weights = [float(v) for v in wsum]
                self.labels = labels
        if c["n_abs"] > 0:
            e = pool(frame, c["p_spa"], c["p_abs"])
            if self.abs_full is None:
                self.abstract.append(e)
                if len(self.abstract) == c["n_abs"]:
                    self.abs_full = torch.cat(self.abstract)
            elif not c["compat"]:
                self.abs_full = self._attend(self.abs_full, e)
            else:
                self.pending.append(e)
                if len(self.pending) == c["n_abs"]:
                    self.abs_full = self._attend(self.abs_full, torch.cat(self.pending))
                    self.pending = []

    def _attend(self, m, e):
        c = self.c
        m64, e64 = m.to(F64), e.to(F64)
        q = m64 @ self.qw.t() + self.qb
        k = e64 @ self.kw.t() + self.kb
        s = q @ k.t() / math.sqrt(c["hidden"])
        w = torch.softmax(s, dim=1) * c["alpha"]
        decay = w.sum(dim=1, keepdim=True)
        return (m64 * (1 - decay) + w @ e64).to(F32)

    def _retrieve(self):
        c = self.c
        k = len(self.cent)
        order = sorted(range(k), key=lambda j: (-self.weights[j], j))[: c["n_ret"]]
        self.retrieved = []
        self.ret_frames = []
        for j in order:
            if c["compat"]:
                idx, fr = self.early[j]
            else:
                if not self.buffer:
                    continue
                c64 = self.cent[j].to(F64)
                best = None
                for idx_b, fr_b, pooled in self.buffer:
                    d = float(((pooled.reshape(-1).to(F64) - c64) ** 2).sum())
                    if best is None or d <= best[0]:
                        best = (d, idx_b, fr_b)
                _, idx, fr = best
            self.retrieved.append(idx)
            self.ret_frames.append(fr)

    def tokens(self):
        """[n_tokens, C] f32 in the order abstract, temporal, retrieved, spatial."""
        c = self.c
        parts = []
        if self.abs_full is not None and self.pending:
            parts.append(self._attend(self.abs_full, torch.cat(self.pending)))
        elif self.abs_full is not None:
            parts.append(self.abs_full)
        elif self.abstract:
            parts.append(torch.cat(self.abstract))
        parts += [t.reshape(-1, self.dim) for t in self.cent]
        parts += self.ret_frames
        parts += [f for _, f in self.spatial]
        if not parts:
            return torch.zeros(0, self.dim, dtype=F32)
        return torch.cat(parts).to(F32)


def token_count(c, frames):
    """Tokens after `frames` pushes (see vstream/memory.h)."""
    c = dict(DEFAULTS, **c)
    spa = min(frames, c["n_spa"])
    long = frames - spa
    tem = min(long, c["n_tem"])
    ret = min(c["n_ret"], tem) if (c["compat"] or min(long, c["n_buff"]) > 0) else 0
    return (min(long, c["n_abs"]) * c["p_abs"] ** 2 + tem * c["p_tem"] ** 2
            + ret * c["p_spa"] ** 2 + spa * c["p_spa"] ** 2)
