#!/usr/bin/python3
"""Write the tiny random checkpoints under tests/data/models/ in the exact
Hugging Face layouts and tensor names (see tools/README.md for the list).

Deterministic: every tensor comes from a torch.Generator seeded by the model
and the tensor's name, so re-running rewrites the same bytes.
Run with Debian's interpreter: /usr/bin/python3 tools/make_tiny_models.py
"""

import json
import os
import shutil
import sys
import zlib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import safetensors_io as st  # noqa: E402
from reference.preprocess import CLIP_MEAN, CLIP_STD  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "models")

CLIP = {
    "architectures": ["CLIPVisionModel"],
    "model_type": "clip_vision_model",
    "hidden_size": 48,
    "intermediate_size": 192,
    "num_hidden_layers": 4,
    "num_attention_heads": 3,
    "num_channels": 3,
    "image_size": 112,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "attention_dropout": 0.0,
    "dropout": 0.0,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "projection_dim": 32,
    "torch_dtype": "float32",
}

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 1000,
    "hidden_size": 64,
    "intermediate_size": 172,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 256,
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
    "torch_dtype": "float32",
}

# Same weights layout, other options: MHA, tied embeddings, linear RoPE
# scaling, a large theta and another eps, so a loader that ignores any of
# them gets different logits.
LLAMA_SHARDED = dict(
    LLAMA,
    num_key_value_heads=4,
    tie_word_embeddings=True,
    rope_scaling={"type": "linear", "factor": 2.0},
    rope_theta=500000.0,
    rms_norm_eps=1e-06,
)

# Flash-VStream's memory settings, scaled to the tiny 8x8 patch grid: the
# release pools 16x16 -> 8x8 (compress_size 8) and -> 4x4 for the temporal
# memory; here 8x8 -> 4x4 (compress_size 4) and -> 2x2. Memory lengths are
# shortened (25 -> 6) so tests reach a full memory after a few frames.
VSTREAM_MEMORY = {
    "compress_type": "mean",
    "compress_size": 4,
    "compress_long_memory_size": 2,
    "compress_Turing_memory_size": 1,
    "compress_Turing_update_ratio": 0.2,
    "compress_Turing_hidden_dim": 8,
    "video_current_memory_length": 1,
    "video_long_memory_length": 6,
    "video_Turing_memory_length": 6,
    "video_short_memory_length": 10,
    "video_max_frames": 50,
    "video_sample_type": "weighted_kmeans",
}

PREPROCESSOR = {
    "crop_size": {"height": CLIP["image_size"], "width": CLIP["image_size"]},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": list(CLIP_MEAN),
    "image_processor_type": "CLIPImageProcessor",
    "image_std": list(CLIP_STD),
    "resample": 3,
    "rescale_factor": 1 / 255,
    "size": {"shortest_edge": CLIP["image_size"]},
}


def _gen(model, name):
    g = torch.Generator()
    g.manual_seed(zlib.crc32(("%s/%s" % (model, name)).encode()))
    return g


def randn(model, name, shape, std, mean=0.0):
    return mean + std * torch.randn(shape, generator=_gen(model, name), dtype=torch.float32)


def linear(w, model, name, n_out, n_in, bias):
    w[name + ".weight"] = randn(model, name + ".weight", (n_out, n_in), n_in**-0.5)
    if bias:
        w[name + ".bias"] = randn(model, name + ".bias", (n_out,), 0.1)


def norm(w, model, name, n, bias):
    w[name + ".weight"] = randn(model, name + ".weight", (n,), 0.1, mean=1.0)
    if bias:
        w[name + ".bias"] = randn(model, name + ".bias", (n,), 0.1)


def clip_weights(cfg, model="clip-tiny"):
    d, m, p = cfg["hidden_size"], cfg["intermediate_size"], cfg["patch_size"]
    n_pos = (cfg["image_size"] // p) ** 2 + 1
    w = {}
    e = "vision_model.embeddings."
    w[e + "patch_embedding.weight"] = randn(model, e + "patch_embedding", (d, 3, p, p), (3 * p * p) ** -0.5)
    w[e + "class_embedding"] = randn(model, e + "class_embedding", (d,), 0.5)
    w[e + "position_embedding.weight"] = randn(model, e + "position_embedding", (n_pos, d), 0.2)
    norm(w, model, "vision_model.pre_layrnorm", d, True)
    for i in range(cfg["num_hidden_layers"]):
        pre = "vision_model.encoder.layers.%d." % i
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            linear(w, model, pre + "self_attn." + proj, d, d, True)
        norm(w, model, pre + "layer_norm1", d, True)
        norm(w, model, pre + "layer_norm2", d, True)
        linear(w, model, pre + "mlp.fc1", m, d, True)
        linear(w, model, pre + "mlp.fc2", d, m, True)
    norm(w, model, "vision_model.post_layernorm", d, True)
    return w


def llama_weights(cfg, model):
    d, m, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * (d // cfg["num_attention_heads"])
    # Tied embeddings double as the output head: at unit scale the logit of the
    # current token dominates and greedy decoding repeats it forever.
    embed_std = d**-0.5 if cfg["tie_word_embeddings"] else 1.0
    w = {"model.embed_tokens.weight": randn(model, "model.embed_tokens", (v, d), embed_std)}
    for i in range(cfg["num_hidden_layers"]):
        pre = "model.layers.%d." % i
        linear(w, model, pre + "self_attn.q_proj", d, d, False)
        linear(w, model, pre + "self_attn.k_proj", kv, d, False)
        linear(w, model, pre + "self_attn.v_proj", kv, d, False)
        linear(w, model, pre + "self_attn.o_proj", d, d, False)
        linear(w, model, pre + "mlp.gate_proj", m, d, False)
        linear(w, model, pre + "mlp.up_proj", m, d, False)
        linear(w, model, pre + "mlp.down_proj", d, m, False)
        norm(w, model, pre + "input_layernorm", d, False)
        norm(w, model, pre + "post_attention_layernorm", d, False)
    norm(w, model, "model.norm", d, False)
    if not cfg["tie_word_embeddings"]:
        linear(w, model, "lm_head", v, d, False)
    return w


def vstream_weights(clip_w, llama_w, mm_hidden, hidden, turing_dim, model="vstream-tiny"):
    w = dict(llama_w)
    for k, t in clip_w.items():
        w["model.vision_tower.vision_tower." + k] = t
    linear(w, model, "model.mm_projector.0", hidden, mm_hidden, True)
    linear(w, model, "model.mm_projector.2", hidden, hidden, True)
    for proj in ("q_proj", "k_proj", "v_proj"):
        linear(w, model, "model.attention_model." + proj, turing_dim, mm_hidden, True)
    linear(w, model, "model.attention_model.out_proj", mm_hidden, turing_dim, True)
    norm(w, model, "model.attention_model.out_ln", mm_hidden, True)
    return w


def bf16(w):
    return {k: t.to(torch.bfloat16) for k, t in w.items()}


def write_dir(name, config, extra_files=None):
    path = os.path.join(ROOT, name)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    write_json(os.path.join(path, "config.json"), config)
    for fn, obj in (extra_files or {}).items():
        write_json(os.path.join(path, fn), obj)
    return path


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main():
    torch.manual_seed(0)
    os.makedirs(ROOT, exist_ok=True)

    clip_w = clip_weights(CLIP)
    # Older transformers saved this buffer; real CLIP checkpoints carry it.
    clip_w_file = dict(clip_w)
    n_pos = clip_w["vision_model.embeddings.position_embedding.weight"].shape[0]
    clip_w_file["vision_model.embeddings.position_ids"] = torch.arange(n_pos, dtype=torch.int64)[None]
    p = write_dir("clip-tiny", CLIP, {"preprocessor_config.json": PREPROCESSOR})
    st.save_file(clip_w_file, os.path.join(p, "model.safetensors"))

    llama_w = llama_weights(LLAMA, "llama-tiny")
    p = write_dir("llama-tiny", LLAMA)
    st.save_file(llama_w, os.path.join(p, "model.safetensors"))

    p = write_dir("llama-tiny-bf16", dict(LLAMA, torch_dtype="bfloat16"))
    st.save_file(bf16(llama_w), os.path.join(p, "model.safetensors"))

    p = write_dir("llama-tiny-sharded", LLAMA_SHARDED)
    st.save_sharded(llama_weights(LLAMA_SHARDED, "llama-tiny-sharded"), p, 2)

    vcfg = dict(LLAMA)
    vcfg.update(
        architectures=["VStreamLlamaForCausalLM"],
        model_type="vstream",
        torch_dtype="bfloat16",
        mm_vision_tower="clip-tiny",
        mm_vision_select_layer=-2,
        mm_vision_select_feature="patch",
        mm_projector_type="mlp2x_gelu",
        mm_hidden_size=CLIP["hidden_size"],
        mm_use_im_start_end=False,
        mm_use_im_patch_token=False,
        mm_use_4_vision_tokens=False,
        use_mm_proj=True,
        tune_mm_mlp_adapter=False,
        **VSTREAM_MEMORY,
    )
    vcfg["vision_config"] = {k: v for k, v in CLIP.items() if k not in ("architectures", "torch_dtype")}
    vw = vstream_weights(
        clip_w, llama_w, CLIP["hidden_size"], LLAMA["hidden_size"], VSTREAM_MEMORY["compress_Turing_hidden_dim"]
    )
    p = write_dir("vstream-tiny", vcfg, {"preprocessor_config.json": PREPROCESSOR})
    st.save_file(bf16(vw), os.path.join(p, "model.safetensors"))


if __name__ == "__main__":
    main()
