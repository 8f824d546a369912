"""The bundled vstream-tiny model: sizes, trainable weights under the exact
Flash-VStream checkpoint names, and the pieces training needs in batched,
differentiable form.

Everything that the C runtime computes at inference is either taken from
tools/reference/ as is (CLIP tower, pooling, projector, preprocessing) or
re-written here only for speed and checked against the reference
(`/usr/bin/python3 tools/vworld/model.py --check`): a batched Llama forward for training, a
vectorised STAR memory (same rules, same splitmix64 stream) for building the
training set, and Pillow-exact bicubic resizing as integer matrix products.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
from reference import clip as rclip  # noqa: E402
from reference import llama as rllama  # noqa: E402
from reference import preprocess as rpre  # noqa: E402
from reference import projector as rproj  # noqa: E402
from reference import star_memory as rstar  # noqa: E402

VIT = "model.vision_tower.vision_tower."
VISION = VIT + "vision_model."

# The vicuna_v1 prompt exactly as vstream/session.c assembles it.
PROMPT_HEAD = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions. USER: "
)
PROMPT_TAIL = " ASSISTANT:"

CLIP_CFG = {
    "model_type": "clip_vision_model",
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_channels": 3,
    "image_size": 128,
    "patch_size": 16,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "projection_dim": 64,
}

LLAMA_CFG = {
    "vocab_size": 512,
    "hidden_size": 256,
    "intermediate_size": 688,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "hidden_act": "silu",
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "initializer_range": 0.02,
    "pretraining_tp": 1,
    "use_cache": True,
}

# Flash-VStream's memory settings on the 8x8 patch grid: 8x8 -> 4x4
# (spatial and retrieved frames), -> 2x2 (temporal clusters), -> 1x1
# (abstract slots); the lengths are the paper's (N_spa 1, N_tem 25, N_abs 25).
MEMORY_CFG = {
    "compress_type": "mean",
    "compress_size": 4,
    "compress_long_memory_size": 2,
    "compress_Turing_memory_size": 1,
    "compress_Turing_update_ratio": 0.2,
    "compress_Turing_hidden_dim": 32,
    "video_current_memory_length": 1,
    "video_long_memory_length": 25,
    "video_Turing_memory_length": 25,
    "video_short_memory_length": 10,
    "video_max_frames": 300,
    "video_sample_type": "weighted_kmeans",
    "kmeans_init": "ward",
}


def full_config(vocab_size):
    """config.json of the exported model (Flash-VStream keys)."""
    c = {"architectures": ["VStreamLlamaForCausalLM"], "model_type": "vstream"}
    c.update(LLAMA_CFG)
    c["vocab_size"] = vocab_size
    c.update(
        torch_dtype="float32",
        mm_vision_tower="vstream-tiny-clip",
        mm_vision_select_layer=-2,
        mm_vision_select_feature="patch",
        mm_projector_type="mlp2x_gelu",
        mm_hidden_size=CLIP_CFG["hidden_size"],
        mm_use_im_start_end=False,
        mm_use_im_patch_token=False,
        mm_use_4_vision_tokens=False,
        use_mm_proj=True,
        tune_mm_mlp_adapter=False,
    )
    c.update(MEMORY_CFG)
    c["vision_config"] = dict(CLIP_CFG)
    return c


def preprocessor_config():
    s = CLIP_CFG["image_size"]
    return {
        "crop_size": {"height": s, "width": s},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(rpre.CLIP_MEAN),
        "image_processor_type": "CLIPImageProcessor",
        "image_std": list(rpre.CLIP_STD),
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": s},
    }


def memory_config(cfg, **over):
    return rstar.config_from_json(cfg, **over)


# ---- weights ------------------------------------------------------------------------------


def _normal(g, shape, std):
    return torch.randn(shape, generator=g) * std


def init_vision(g):
    c = CLIP_CFG
    d, m, p = c["hidden_size"], c["intermediate_size"], c["patch_size"]
    n_pos = (c["image_size"] // p) ** 2 + 1
    w = {}
    e = VISION + "embeddings."
    w[e + "patch_embedding.weight"] = _normal(g, (d, 3, p, p), (3 * p * p) ** -0.5)
    w[e + "class_embedding"] = _normal(g, (d,), 0.02)
    w[e + "position_embedding.weight"] = _normal(g, (n_pos, d), 0.02)
    for n in ("pre_layrnorm", "post_layernorm"):
        w[VISION + n + ".weight"] = torch.ones(d)
        w[VISION + n + ".bias"] = torch.zeros(d)
    for i in range(c["num_hidden_layers"]):
        pre = VISION + "encoder.layers.%d." % i
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[pre + "self_attn." + proj + ".weight"] = _normal(g, (d, d), d**-0.5)
            w[pre + "self_attn." + proj + ".bias"] = torch.zeros(d)
        for n in ("layer_norm1", "layer_norm2"):
            w[pre + n + ".weight"] = torch.ones(d)
            w[pre + n + ".bias"] = torch.zeros(d)
        w[pre + "mlp.fc1.weight"] = _normal(g, (m, d), d**-0.5)
        w[pre + "mlp.fc1.bias"] = torch.zeros(m)
        w[pre + "mlp.fc2.weight"] = _normal(g, (d, m), m**-0.5 / 2)
        w[pre + "mlp.fc2.bias"] = torch.zeros(d)
    return w


def init_language(g, vocab):
    c = LLAMA_CFG
    d, m, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    kv = c["num_key_value_heads"] * (d // c["num_attention_heads"])
    out_std = d**-0.5 / (2 * layers) ** 0.5
    w = {"model.embed_tokens.weight": _normal(g, (vocab, d), 0.02)}
    for i in range(layers):
        pre = "model.layers.%d." % i
        w[pre + "self_attn.q_proj.weight"] = _normal(g, (d, d), d**-0.5)
        w[pre + "self_attn.k_proj.weight"] = _normal(g, (kv, d), d**-0.5)
        w[pre + "self_attn.v_proj.weight"] = _normal(g, (kv, d), d**-0.5)
        w[pre + "self_attn.o_proj.weight"] = _normal(g, (d, d), out_std)
        w[pre + "mlp.gate_proj.weight"] = _normal(g, (m, d), d**-0.5)
        w[pre + "mlp.up_proj.weight"] = _normal(g, (m, d), d**-0.5)
        w[pre + "mlp.down_proj.weight"] = _normal(g, (d, m), m**-0.5 / (2 * layers) ** 0.5)
        w[pre + "input_layernorm.weight"] = torch.ones(d)
        w[pre + "post_attention_layernorm.weight"] = torch.ones(d)
    w["model.norm.weight"] = torch.ones(d)
    w["lm_head.weight"] = _normal(g, (vocab, d), d**-0.5)
    return w


def init_connector(g):
    """Projector (trained) and the abstract memory's attention_model (only
    q/k are ever used, and with one new frame per update not even those:
    the softmax over a single key is 1)."""
    mm, d, th = CLIP_CFG["hidden_size"], LLAMA_CFG["hidden_size"], MEMORY_CFG["compress_Turing_hidden_dim"]
    w = {
        "model.mm_projector.0.weight": _normal(g, (d, mm), mm**-0.5),
        "model.mm_projector.0.bias": torch.zeros(d),
        "model.mm_projector.2.weight": _normal(g, (d, d), d**-0.5),
        "model.mm_projector.2.bias": torch.zeros(d),
    }
    for proj in ("q_proj", "k_proj", "v_proj"):
        w["model.attention_model.%s.weight" % proj] = _normal(g, (th, mm), mm**-0.5)
        w["model.attention_model.%s.bias" % proj] = torch.zeros(th)
    w["model.attention_model.out_proj.weight"] = _normal(g, (mm, th), th**-0.5)
    w["model.attention_model.out_proj.bias"] = torch.zeros(mm)
    w["model.attention_model.out_ln.weight"] = torch.ones(mm)
    w["model.attention_model.out_ln.bias"] = torch.zeros(mm)
    return w


def clip_config():
    return rclip.CLIPVisionConfig(CLIP_CFG)


def llama_config(vocab):
    return rllama.LlamaConfig(dict(LLAMA_CFG, vocab_size=vocab))


# ---- forward pieces -----------------------------------------------------------------------


def vision_features(pixels, w):
    """[B, 3, S, S] -> [B, p_spa^2, C]: the layer -2 patch tokens pooled to
    compress_size x compress_size, what the C runtime pushes into memory."""
    f = rclip.select_features(pixels, w, clip_config(), -2, "patch", prefix=VISION)
    return rproj.pool_grid(f, MEMORY_CFG["compress_size"])


def project(tokens, w):
    return rproj.mlp2x_gelu(tokens, w)


def _rope(t, cfg):
    return rllama.rope_cos_sin(torch.arange(t), cfg, torch.float32)


def llama_batch(x, w, cfg):
    """Batched LlamaForCausalLM over right-padded inputs_embeds [B, T, H]
    (padding sits after every real position, so the causal mask alone keeps
    it out). Returns logits [B, T, V]."""
    b, t, _ = x.shape
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    cos, sin = _rope(t, cfg)
    mask = torch.full((t, t), float("-inf")).triu(1)
    eps = cfg.rms_norm_eps
    for i in range(cfg.num_hidden_layers):
        p = "model.layers.%d." % i
        h = rllama.rms_norm(x, w[p + "input_layernorm.weight"], eps)
        a = p + "self_attn."
        q = (h @ w[a + "q_proj.weight"].t()).view(b, t, nh, hd).transpose(1, 2)
        k = (h @ w[a + "k_proj.weight"].t()).view(b, t, nkv, hd).transpose(1, 2)
        v = (h @ w[a + "v_proj.weight"].t()).view(b, t, nkv, hd).transpose(1, 2)
        q, k = rllama.apply_rope(q, cos, sin), rllama.apply_rope(k, cos, sin)
        if nkv != nh:
            k = k.repeat_interleave(nh // nkv, dim=1)
            v = v.repeat_interleave(nh // nkv, dim=1)
        s = (q @ k.transpose(-1, -2)) / (hd**0.5) + mask
        o = torch.softmax(s, dim=-1) @ v
        x = x + o.transpose(1, 2).reshape(b, t, nh * hd) @ w[a + "o_proj.weight"].t()
        h = rllama.rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + rllama.mlp(h, w, p + "mlp.")
    x = rllama.rms_norm(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].t()


# ---- tokenizer ----------------------------------------------------------------------------

SPM_FLAGS = [
    "--model_type=bpe",
    "--byte_fallback=true",
    "--normalization_rule_name=identity",
    "--split_digits=true",
    "--allow_whitespace_only_pieces=true",
    "--remove_extra_whitespaces=false",
    "--add_dummy_prefix=true",
    "--unk_id=0",
    "--bos_id=1",
    "--eos_id=2",
    "--pad_id=-1",
    "--character_coverage=1.0",
    "--hard_vocab_limit=false",
    "--num_threads=1",
]


def train_tokenizer(lines, vocab_size, out_path):
    """A Llama-style SentencePiece BPE model (byte fallback, identity
    normalisation) trained with Debian's spm_train on lines."""
    with tempfile.TemporaryDirectory() as d:
        corpus = os.path.join(d, "corpus.txt")
        with open(corpus, "w") as f:
            for ln in lines:
                f.write(ln.replace("\n", " ") + "\n")
        cmd = ["spm_train", "--input=" + corpus, "--model_prefix=" + os.path.join(d, "m"),
               "--vocab_size=%d" % vocab_size] + SPM_FLAGS
        subprocess.run(cmd, check=True, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(d, "m.model"), "rb") as f:
            data = f.read()
    with open(out_path, "wb") as f:
        f.write(data)


class Prompt:
    """Token ids exactly as vstream/session.c builds them: BOS + head,
    <image>, then "\\n{question} ASSISTANT:" encoded without BOS; the
    answer is what follows, closed by </s>."""

    def __init__(self, tokenizer_path):
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=tokenizer_path)
        self.head = [self.sp.bos_id()] + self.sp.encode(PROMPT_HEAD)
        self.eos = self.sp.eos_id()
        self.vocab = self.sp.get_piece_size()

    def tail(self, question):
        return self.sp.encode("\n" + question + PROMPT_TAIL)

    def answer(self, text):
        return self.sp.encode(text) + [self.eos]

    def decode(self, ids):
        return self.sp.decode(ids)


# ---- preprocessing ------------------------------------------------------------------------


def _resize_matrix(in_size, out_size):
    """Pillow's fixed-point bicubic filter as an [out, in] int64 matrix."""
    m = np.zeros((out_size, in_size), dtype=np.int64)
    for i, (xmin, wts) in enumerate(rpre.filter_weights(in_size, out_size)):
        k = rpre._fixed_point(wts)
        m[i, xmin : xmin + len(k)] = k
    return m


class FastPreprocess:
    """rpre.clip_preprocess for a batch of equal-size frames, bit-exact:
    each Pillow pass is an integer matrix product, rounded and clamped to
    uint8 as Pillow does."""

    def __init__(self, h, w, size=None):
        size = size or CLIP_CFG["image_size"]
        self.size = size
        self.nh, self.nw = rpre.shortest_side_size(h, w, size)
        self.h, self.w = h, w
        self.mw = _resize_matrix(w, self.nw) if self.nw != w else None
        self.mh = _resize_matrix(h, self.nh) if self.nh != h else None
        self.mean = np.array(rpre.CLIP_MEAN, dtype=np.float32)
        self.std = np.array(rpre.CLIP_STD, dtype=np.float32)

    def _round(self, acc):
        half = 1 << (rpre._PRECISION_BITS - 1)
        return np.clip((acc.astype(np.int64) + half) >> rpre._PRECISION_BITS, 0, 255).astype(np.float64)

    def resize_chw(self, frames):
        """[B, H, W, 3] uint8 -> [B, 3, nh, nw] float64 holding uint8 values.
        The products run in float64, exact here: every partial sum is an
        integer below 255 * 2^24, far from 2^53."""
        x = frames.transpose(0, 3, 1, 2).astype(np.float64)
        b, c, h, w = x.shape
        if self.mw is not None:
            x = self._round(x.reshape(-1, w) @ self.mw.T.astype(np.float64)).reshape(b, c, h, self.nw)
        if self.mh is not None:
            y = self.mh.astype(np.float64) @ x.transpose(2, 0, 1, 3).reshape(h, -1)
            x = self._round(y).reshape(self.nh, b, c, self.nw).transpose(1, 2, 0, 3)
        return x

    def __call__(self, frames, noise=0.0, rng=None):
        """[B, H, W, 3] uint8 -> [B, 3, S, S] float32 pixel values; noise > 0
        adds Gaussian noise (in grey levels) to the resized image, standing in
        for H.264 artefacts."""
        x = self.resize_chw(frames)
        top, left = (self.nh - self.size) // 2, (self.nw - self.size) // 2
        x = x[:, :, top : top + self.size, left : left + self.size]
        if noise > 0:
            x = np.clip(np.rint(x + rng.normal(0, noise, x.shape)), 0, 255)
        x = (x * (1 / 255)).astype(np.float32)
        x = (x - self.mean[:, None, None]) / self.std[:, None, None]
        return np.ascontiguousarray(x)


def decode_video(path, width, height):
    """All frames of a video file as [N, H, W, 3] uint8 RGB (ffmpeg CLI)."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path, "-f", "rawvideo",
           "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def h264_roundtrip(frames):
    """frames [N, H, W, 3] uint8 through the streams' exact H.264 settings
    (tools/vworld/make_streams.py) and back, so training sees the same
    codec artefacts and chroma subsampling as the runtime."""
    from tools.vworld.make_streams import FFMPEG_ENCODE

    n, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "v.mp4")
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", "%dx%d" % (w, h), "-r", "1", "-i", "-"] + FFMPEG_ENCODE + [path]
        subprocess.run(cmd, check=True, input=np.ascontiguousarray(frames).tobytes())
        out = decode_video(path, w, h)
    assert out.shape[0] == n, "decoded %d frames of %d" % (out.shape[0], n)
    return out


# ---- STAR memory, vectorised --------------------------------------------------------------

F32, F64 = torch.float32, torch.float64


class FastStar:
    """tools/reference/star_memory.py's StarMemory (paper mode) with the
    k-means and the retrieval vectorised: same rules, same order of random
    draws, same float64 arithmetic, so the same tokens (checked by
    selfcheck()). Only the default (non-compat) mode; abstract updates use
    the one-key softmax shortcut (W = alpha), which is exact there."""

    def __init__(self, c):
        self.c = dict(rstar.DEFAULTS)
        self.c.update(c)
        assert not self.c["compat"] and self.c["p_abs"] == 1
        self.dim = self.c["dim"]
        self.rng = rstar.SplitMix64(self.c["seed"])
        self.frames = 0
        self.spatial = []
        self.buf_pooled = []  # f64 rows, oldest first
        self.buf_frames = []
        self.cent = None  # [k, D] f32
        self.weights = None  # [k] f64
        self.abstract = []
        self.abs_full = None
        self.ret_frames = []

    def push(self, frame):
        c = self.c
        frame = frame.to(F32).contiguous()
        self.spatial.append(frame)
        self.frames += 1
        if len(self.spatial) > c["n_spa"]:
            self._long(self.spatial.pop(0))
        self._retrieve()

    def _kmeans(self, x, w):
        c = self.c
        k, n = c["n_tem"], x.shape[0]
        x64 = x.to(F64)
        if c["kmeans_init"] == "ward":
            # rstar.ward_init, vectorised: same costs, same tie order
            d2 = ((x64[:, None, :] - x64[None, :, :]) ** 2).sum(dim=2)
            ws = w[:, None] + w[None, :]
            cost = torch.where(ws > 0, (w[:, None] * w[None, :] / ws) * d2, torch.zeros_like(d2))
            cost = cost.masked_fill(~torch.ones(n, n, dtype=torch.bool).triu(1), float("inf"))
            flat = torch.nonzero(cost == cost.min()).tolist()[0]
            i, l = flat
            keep = [r for r in range(n) if r != l]
            cent = x64[keep].to(F32)
            if float(w[i] + w[l]) > 0:
                cent[i] = ((w[i] * x64[i] + w[l] * x64[l]) / (w[i] + w[l])).to(F32)
        else:
            idx = list(range(n))
            for i in range(k):
                j = i + self.rng.next() % (n - i)
                idx[i], idx[j] = idx[j], idx[i]
            cent = x[idx[:k]].clone()
        wsum = None
        for _ in range(c["kmeans_iters"]):
            d = ((x64[:, None, :] - cent.to(F64)[None, :, :]) ** 2).sum(dim=2)
            lab = torch.argmin(d, dim=1)
            wsum = torch.zeros(k, dtype=F64).index_add_(0, lab, w)
            acc = torch.zeros(k, x.shape[1], dtype=F64).index_add_(0, lab, w[:, None] * x64)
            new = torch.zeros(k, x.shape[1], dtype=F32)
            full = wsum > 0
            new[full] = (acc[full] / wsum[full][:, None]).to(F32)
            empty = torch.nonzero(~full).flatten().tolist()
            if empty:
                own = d[torch.arange(n), lab]
                used = set()
                for j in empty:
                    r = max((i for i in range(n) if i not in used), key=lambda i: (float(own[i]), -i))
                    used.add(r)
                    new[j] = x[r]
            diff = float(((cent.to(F64) - new.to(F64)) ** 2).sum(dim=1).sqrt().sum())
            cent = new
            if diff < c["kmeans_tol"]:
                break
        return cent, wsum

    def _long(self, frame):
        c = self.c
        pooled = rstar.pool(frame, c["p_spa"], c["p_tem"])
        self.buf_pooled.append(pooled.reshape(-1).to(F64))
        self.buf_frames.append(frame)
        if len(self.buf_pooled) > c["n_buff"]:
            self.buf_pooled.pop(0)
            self.buf_frames.pop(0)
        pt = pooled.reshape(1, -1)
        if self.cent is None or self.cent.shape[0] < c["n_tem"]:
            self.cent = pt.clone() if self.cent is None else torch.cat([self.cent, pt])
            self.weights = torch.ones(self.cent.shape[0], dtype=F64)
        else:
            x = torch.cat([self.cent, pt])
            w = torch.cat([self.weights, torch.ones(1, dtype=F64)])
            self.cent, self.weights = self._kmeans(x, w)
        e = rstar.pool(frame, c["p_spa"], 1)
        if self.abs_full is None:
            self.abstract.append(e)
            if len(self.abstract) == c["n_abs"]:
                self.abs_full = torch.cat(self.abstract)
        else:
            a = c["alpha"]
            m64 = self.abs_full.to(F64)
            self.abs_full = (m64 * (1 - a) + a * e.to(F64)).to(F32)

    def _retrieve(self):
        c = self.c
        self.ret_frames = []
        if self.cent is None or not self.buf_pooled:
            return
        k = self.cent.shape[0]
        wl = self.weights.tolist()
        order = sorted(range(k), key=lambda j: (-wl[j], j))[: c["n_ret"]]
        buf = torch.stack(self.buf_pooled)
        for j in order:
            d = ((buf - self.cent[j].to(F64)) ** 2).sum(dim=1)
            best = int(torch.nonzero(d == d.min()).flatten()[-1])
            self.ret_frames.append(self.buf_frames[best])

    def parts(self):
        """(abstract, temporal, retrieved, spatial) token tensors [n, C]."""
        z = torch.zeros(0, self.dim, dtype=F32)
        if self.abs_full is not None:
            ab = self.abs_full
        elif self.abstract:
            ab = torch.cat(self.abstract)
        else:
            ab = z
        tem = self.cent.reshape(-1, self.dim) if self.cent is not None else z
        ret = torch.cat(self.ret_frames) if self.ret_frames else z
        spa = torch.cat(self.spatial) if self.spatial else z
        return ab, tem, ret, spa

    def tokens(self):
        return torch.cat(self.parts())


def ablate(parts, mode):
    """The run-time memory ablations: full; spatial (spatial tokens only);
    no-temporal-retrieved (abstract + spatial); no-abstract (temporal +
    retrieved + spatial)."""
    ab, tem, ret, spa = parts
    if mode == "full":
        return torch.cat([ab, tem, ret, spa])
    if mode == "spatial":
        return spa
    if mode == "no-temporal-retrieved":
        return torch.cat([ab, spa])
    if mode == "no-abstract":
        return torch.cat([tem, ret, spa])
    raise ValueError("unknown memory mode %r" % mode)


def reference_parts(mem):
    """The same split for a reference StarMemory."""
    c = mem.c
    n_abs = 0
    if mem.abs_full is not None:
        n_abs = mem.abs_full.shape[0]
    elif mem.abstract:
        n_abs = sum(a.shape[0] for a in mem.abstract)
    t = mem.tokens()
    n_tem = len(mem.cent) * c["p_tem"] ** 2
    n_ret = len(mem.ret_frames) * c["p_spa"] ** 2
    return (t[:n_abs], t[n_abs : n_abs + n_tem], t[n_abs + n_tem : n_abs + n_tem + n_ret],
            t[n_abs + n_tem + n_ret :])


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def selfcheck():
    """The fast pieces against tools/reference/ on random data; raises on a
    mismatch."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    for size in (CLIP_CFG["image_size"], 64, 112):
        fast = FastPreprocess(128, 128, size)(frames)
        for i in range(3):
            ref = rpre.clip_preprocess(frames[i], size)
            assert np.array_equal(fast[i], ref), "FastPreprocess differs from clip_preprocess at %d" % size

    g = torch.Generator()
    g.manual_seed(1)
    w = init_language(g, 300)
    cfg = llama_config(300)
    x = torch.randn(2, 20, LLAMA_CFG["hidden_size"])
    got = llama_batch(x, w, cfg)
    for b in range(2):
        ref = rllama.forward(x[b], w, cfg)
        assert torch.allclose(got[b], ref, atol=1e-4, rtol=1e-4), "llama_batch differs"

    wc = init_connector(g)
    aw = "model.attention_model."
    for init in ("ward", "random"):
        c = memory_config(full_config(300), kmeans_init=init)
        ref = rstar.StarMemory(c, wc[aw + "q_proj.weight"], wc[aw + "q_proj.bias"],
                               wc[aw + "k_proj.weight"], wc[aw + "k_proj.bias"])
        fst = FastStar(c)
        # Few distinct scenes plus noise, so clusters merge, split and empty.
        scenes = torch.randn(6, c["p_spa"] ** 2, c["dim"])
        for i in range(90):
            f = scenes[(i // 7) % 6] + 0.05 * torch.randn(c["p_spa"] ** 2, c["dim"])
            ref.push(f)
            fst.push(f)
            a, b = ref.tokens(), fst.tokens()
            assert a.shape == b.shape and torch.equal(a, b), "FastStar (%s) differs at frame %d" % (init, i)
            for pa, pb in zip(reference_parts(ref), fst.parts()):
                assert torch.equal(pa, pb), "parts differ at frame %d (%s)" % (i, init)
    print("model.py selfcheck: ok")


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        selfcheck()
    else:
        sys.exit("usage: model.py --check")
