"""Minimal safetensors reader and writer (the format, not the package).

File layout: 8-byte little-endian header length N, N bytes of JSON header
{"__metadata__": {...}, name: {"dtype", "shape", "data_offsets": [begin, end]}},
then the raw little-endian tensor data. The header is padded with spaces so
the data section starts 8-byte aligned. Tensors are laid out like the
official writer does: larger element sizes first, then by name, so every
tensor's data is aligned to its element size.
"""

import json
import os
import struct
import sys

import numpy as np
import torch

assert sys.byteorder == "little", "raw tensor bytes are written in host order"

_TORCH_TO_ST = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
_ST_TO_TORCH = {v: k for k, v in _TORCH_TO_ST.items()}

# numpy has no bfloat16: its bytes travel through int16.
_NUMPY_CARRIER = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.int16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def _as_torch(t):
    if isinstance(t, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(t))
    return t


def _tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def _layout(tensors):
    names = sorted(tensors, key=lambda n: (-tensors[n].element_size(), n))
    entries, blobs, off = {}, [], 0
    for n in names:
        t = tensors[n]
        b = _tensor_bytes(t)
        entries[n] = {
            "dtype": _TORCH_TO_ST[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [off, off + len(b)],
        }
        blobs.append(b)
        off += len(b)
    return entries, blobs


def save_file(tensors, path, metadata=None):
    """Write a dict name -> torch.Tensor / numpy array to one .safetensors file."""
    tensors = {k: _as_torch(v) for k, v in tensors.items()}
    entries, blobs = _layout(tensors)
    header = {"__metadata__": metadata if metadata is not None else {"format": "pt"}}
    header.update(entries)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((-(8 + len(hb))) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def save_sharded(tensors, directory, nshards, metadata=None):
    """Split a checkpoint into nshards files plus model.safetensors.index.json,
    named and indexed as transformers' save_pretrained does."""
    tensors = {k: _as_torch(v) for k, v in tensors.items()}
    names = sorted(tensors)
    total = sum(tensors[n].numel() * tensors[n].element_size() for n in names)
    shards, cur, cur_bytes = [], [], 0
    for n in names:
        nb = tensors[n].numel() * tensors[n].element_size()
        if cur and cur_bytes + nb > total / nshards and len(shards) < nshards - 1:
            shards.append(cur)
            cur, cur_bytes = [], 0
        cur.append(n)
        cur_bytes += nb
    shards.append(cur)
    assert len(shards) == nshards, "tensors too few or too uneven for the shard count"
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, nshards)
        save_file({n: tensors[n] for n in shard}, os.path.join(directory, fname), metadata)
        for n in shard:
            weight_map[n] = fname
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


def load_file(path):
    """Read one .safetensors file into a dict name -> torch.Tensor (copies)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        st = e["dtype"]
        arr = np.frombuffer(data[base + b : base + end], dtype=_NUMPY_CARRIER[st]).copy()
        t = torch.from_numpy(arr.reshape(e["shape"]))
        if st == "BF16":
            t = t.view(torch.bfloat16)
        out[name] = t
    return out


def load_checkpoint(directory):
    """Read a model directory: the sharded index if present, else every
    .safetensors file in it."""
    index = os.path.join(directory, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = sorted(p for p in os.listdir(directory) if p.endswith(".safetensors"))
    out = {}
    for fn in files:
        part = load_file(os.path.join(directory, fn))
        dup = set(part) & set(out)
        assert not dup, "tensor in two shards: %s" % sorted(dup)[:3]
        out.update(part)
    return out


def load_config(directory):
    with open(os.path.join(directory, "config.json")) as f:
        return json.load(f)


def strip_prefix(weights, prefix):
    """The sub-dict of weights under prefix, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
