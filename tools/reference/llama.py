"""Llama decoder (Hugging Face LlamaForCausalLM), written out.

x = embed_tokens[ids] (or spliced inputs_embeds); per layer
x += o_proj(causal_attn(rope(q), rope(k), v)) on input_layernorm(x),
x += down(silu(gate(h)) * up(h)) on h = post_attention_layernorm(x);
logits = lm_head(norm(x)), lm_head tied to embed_tokens when
tie_word_embeddings. RMSNorm: x * rsqrt(mean(x^2) + eps) * w. RoPE is the
rotate-half form over the whole head: pairs (i, i + d/2) rotate by
pos / scale * theta^(-2i/d). Grouped-query attention: query head h reads
KV head h // (heads / kv_heads).
"""

import torch

DEFAULTS = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
}

IMAGE_TOKEN_INDEX = -200  # LLaVA's placeholder id for <image> in input_ids


class LlamaConfig:
    def __init__(self, d):
        for k, v in DEFAULTS.items():
            setattr(self, k, d.get(k, v))
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        assert self.hidden_act == "silu", self.hidden_act
        self.head_dim = self.hidden_size // self.num_attention_heads
        self.rope_factor = 1.0
        if self.rope_scaling:
            kind = self.rope_scaling.get("type", self.rope_scaling.get("rope_type"))
            assert kind == "linear", "only linear RoPE scaling is implemented: %r" % (self.rope_scaling,)
            self.rope_factor = float(self.rope_scaling["factor"])


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(positions, cfg, dtype):
    """cos, sin [T, head_dim] for integer positions (transformers' layout:
    the half-size frequency table repeated twice)."""
    d = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=dtype) / d))
    t = positions.to(dtype) / cfg.rope_factor
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, cos, sin):
    """x [heads, T, d]."""
    return x * cos + rotate_half(x) * sin


class KVCache:
    """Per layer K and V [kv_heads, T, head_dim], appended to by forward."""

    def __init__(self, n_layers):
        self.k = [None] * n_layers
        self.v = [None] * n_layers

    @property
    def length(self):
        return 0 if self.k[0] is None else self.k[0].shape[1]

    def append(self, i, k, v):
        self.k[i] = k if self.k[i] is None else torch.cat([self.k[i], k], dim=1)
        self.v[i] = v if self.v[i] is None else torch.cat([self.v[i], v], dim=1)
        return self.k[i], self.v[i]


def attention(h, w, p, cfg, cos, sin, cache, layer, start):
    t = h.shape[0]
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    q = (h @ w[p + "q_proj.weight"].t()).reshape(t, nh, hd).transpose(0, 1)
    k = (h @ w[p + "k_proj.weight"].t()).reshape(t, nkv, hd).transpose(0, 1)
    v = (h @ w[p + "v_proj.weight"].t()).reshape(t, nkv, hd).transpose(0, 1)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    if cache is not None:
        k, v = cache.append(layer, k, v)
    rep = nh // nkv
    k = k.repeat_interleave(rep, dim=0)
    v = v.repeat_interleave(rep, dim=0)
    s = (q @ k.transpose(-1, -2)) / (hd**0.5)
    qpos = torch.arange(start, start + t).unsqueeze(1)
    kpos = torch.arange(k.shape[1]).unsqueeze(0)
    s = s.masked_fill(kpos > qpos, float("-inf"))
    o = torch.softmax(s, dim=-1) @ v
    return o.transpose(0, 1).reshape(t, nh * hd) @ w[p + "o_proj.weight"].t()


def mlp(h, w, p):
    g = h @ w[p + "gate_proj.weight"].t()
    u = h @ w[p + "up_proj.weight"].t()
    return (torch.nn.functional.silu(g) * u) @ w[p + "down_proj.weight"].t()


def lm_head_weight(w, cfg, prefix="model."):
    if "lm_head.weight" in w:
        return w["lm_head.weight"]
    assert cfg.tie_word_embeddings, "no lm_head.weight and embeddings not tied"
    return w[prefix + "embed_tokens.weight"]


def embed(ids, w, prefix="model."):
    return w[prefix + "embed_tokens.weight"][ids]


def forward(x, w, cfg, cache=None, prefix="model.", hidden_states=None):
    """x: inputs_embeds [T, hidden] at positions cache.length .. + T - 1
    (0 .. T - 1 without a cache). Returns logits [T, vocab]. A list passed as
    hidden_states receives transformers' hidden_states: the input, the
    output of each layer but the last, and the last layer's output after
    the final norm."""
    start = cache.length if cache is not None else 0
    cos, sin = rope_cos_sin(torch.arange(start, start + x.shape[0]), cfg, x.dtype)
    eps = cfg.rms_norm_eps
    for i in range(cfg.num_hidden_layers):
        if hidden_states is not None:
            hidden_states.append(x)
        p = "%slayers.%d." % (prefix, i)
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        x = x + attention(h, w, p + "self_attn.", cfg, cos, sin, cache, i, start)
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + mlp(h, w, p + "mlp.")
    x = rms_norm(x, w[prefix + "norm.weight"], eps)
    if hidden_states is not None:
        hidden_states.append(x)
    return x @ lm_head_weight(w, cfg, prefix).t()


def splice_image_features(ids, image_features, w, prefix="model."):
    """LLaVA prepare_inputs_labels_for_multimodal for one sequence: text
    embeddings with each IMAGE_TOKEN_INDEX replaced by the next [N, hidden]
    block of image_features (a list, one per placeholder)."""
    ids = torch.as_tensor(ids)
    parts, img = [], 0
    cut = [-1] + torch.nonzero(ids == IMAGE_TOKEN_INDEX).flatten().tolist() + [ids.shape[0]]
    for a, b in zip(cut[:-1], cut[1:]):
        parts.append(embed(ids[a + 1 : b], w, prefix))
        if b < ids.shape[0]:
            parts.append(image_features[img].to(parts[-1].dtype))
            img += 1
    assert img == len(image_features), "one feature block per <image>"
    return torch.cat(parts, dim=0)


def greedy(x, w, cfg, n_new, prefix="model.", stop_at_eos=False):
    """Prefill inputs_embeds x with a KV cache, then decode n_new tokens by
    argmax, one position at a time. Returns (ids, per-step logits [n, V],
    prefill logits)."""
    cache = KVCache(cfg.num_hidden_layers)
    prefill = forward(x, w, cfg, cache, prefix)
    last = prefill[-1]
    ids, steps = [], []
    for _ in range(n_new):
        steps.append(last)
        tok = int(torch.argmax(last))
        ids.append(tok)
        if stop_at_eos and tok == cfg.eos_token_id:
            break
        last = forward(embed(torch.tensor([tok]), w, prefix), w, cfg, cache, prefix)[-1]
    return ids, torch.stack(steps), prefill
