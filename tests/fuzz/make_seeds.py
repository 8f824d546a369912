#!/usr/bin/python3
"""Write the hand-made seed files of tests/fuzz/corpus/ (run from anywhere;
the checked-in corpus is this script's output plus regression inputs the
fuzzers found). Small on purpose: libFuzzer mutates from here."""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "data")


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def st_file(tensors, metadata=None, pad=8, raw_header=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    hdr, blob = {}, b""
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape,
                     "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = raw_header if raw_header is not None else json.dumps(hdr).encode()
    while len(h) % pad:
        h += b" "
    return struct.pack("<Q", len(h)) + h + blob


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def safetensors():
    put("safetensors", "f32", st_file([("a", "F32", [2, 2], f32(1, 2, 3, 4))]))
    put("safetensors", "mixed", st_file([
        ("w", "F16", [3], struct.pack("<3e", 1, -2, 0.5)),
        ("b", "BF16", [2], b"\x80\x3f\x00\xc0"),
        ("i", "I32", [1], struct.pack("<i", 7)),
        ("q", "I8", [2, 1], b"\x01\xff"),
        ("s", "F32", [], f32(3.5)),
        ("e", "F32", [0, 4], b""),
        ("u", "U8", [2], b"\x01\x02"),
        ("l", "I64", [1], struct.pack("<q", -1)),
        ("d", "F64", [1], struct.pack("<d", math.pi)),
    ], metadata={"format": "pt"}))
    put("safetensors", "misaligned", st_file([
        ("a", "I8", [1], b"\x05"), ("b", "F32", [2], f32(1, 2))], pad=1))
    put("safetensors", "5d", st_file([("t", "F32", [1, 1, 1, 1, 2], f32(1, 2))]))
    put("safetensors", "nan_inf", st_file([("t", "F32", [3], f32(math.nan, math.inf, -0.0))]))
    put("safetensors", "overflow", st_file([], raw_header=json.dumps(
        {"t": {"dtype": "F32", "shape": [2**52, 2**52], "data_offsets": [0, 0]}}).encode()))
    put("safetensors", "overlap", st_file([], raw_header=json.dumps(
        {"a": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]},
         "b": {"dtype": "I8", "shape": [2], "data_offsets": [1, 3]}}).encode()) + b"xyz")
    put("safetensors", "f4", st_file([("t", "F4", [3], b"\x12\x30")]))
    put("safetensors", "bad_len", struct.pack("<Q", 2**40) + b"{}")
    put("safetensors", "empty_obj", st_file([]))


def st_index():
    def idx(m):
        return json.dumps({"metadata": {"total_size": 24}, "weight_map": m})
    put("st_index", "ok", idx({"x": "a.safetensors", "y": "a.safetensors", "z": "b.safetensors"}))
    put("st_index", "dup", idx({"x": "dup.safetensors", "z": "b.safetensors"}))
    put("st_index", "both", idx({"x": "a.safetensors", "y": "dup.safetensors"}))
    put("st_index", "escape", idx({"x": "../a.safetensors"}))
    put("st_index", "missing", idx({"x": "c.safetensors"}))
    put("st_index", "wrong", idx({"x": "b.safetensors"}))
    put("st_index", "empty", idx({}))


def configs():
    for d in ("models/llama-tiny", "models/clip-tiny", "models/vstream-tiny",
              "speech/flashspeech-tiny"):
        with open(os.path.join(DATA, d, "config.json"), "rb") as f:
            put("config", d.split("/")[1], f.read())
    put("config", "huge", json.dumps({"hidden_size": 2**40, "num_hidden_layers": 2**31,
                                      "vocab_size": -1, "num_attention_heads": 0}))
    put("config", "nested", '{"a": {"b": {"c": [1, 2.5, null, true, "x"]}}, "a.b": 1, '
                            '"rope_scaling": null, "x": 1e400}')
    put("config", "dup", '{"hidden_size": 1, "hidden_size": 2}')


def tokenizers():
    # decode seeds: mode 2 (first byte = tokenizer + 3 * mode)
    for t in range(3):
        put("tokenizer", "text%d" % t, bytes([t]) + "Hello world, <image> ünïcödé \xff 12".encode("latin-1"))
        put("tokenizer", "bos%d" % t, bytes([t + 3]) + b"  two  spaces\n\tTab")
        ids = [1, 15043, 3186, 29892, 13, 259, 0, 2, 3, 300, 0xFFF8, 0xFFF9]
        put("tokenizer", "ids%d" % t, bytes([t + 6]) + b"".join(struct.pack("<H", i) for i in ids))
        put("tokenizer", "cont%d" % t, bytes([t + 9]) + b"".join(struct.pack("<H", i) for i in ids))
        # byte pieces <0x..> are ids 3..258 in Llama-style vocabularies: a split character
        put("tokenizer", "bytes%d" % t, bytes([t + 6]) + b"".join(
            struct.pack("<H", 3 + b) for b in (0xE2, 0x96, 0x81, 0xF0, 0x9F)))
    for name in ("tokenizer.model", "noprefix.model", "ws.model", "unused.model"):
        with open(os.path.join(DATA, "tokenizer", name), "rb") as f:
            put("tokenizer_load", name, b"\x00" + f.read())
    with open(os.path.join(DATA, "tokenizer", "tokenizer.json"), "rb") as f:
        put("tokenizer_load", "tokenizer.json", b"\x01" + f.read())
    put("tokenizer_load", "min.json", b"\x01" + json.dumps({
        "model": {"type": "BPE", "vocab": {"<unk>": 0, "a": 1, "b": 2, "ab": 3, "\u2581": 4},
                  "merges": ["a b"], "byte_fallback": False},
        "added_tokens": [{"id": 0, "content": "<unk>", "special": True}],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None, "decoder": None}).encode())


def frontend():
    put("frontend", "text", b"\x00Hello there. Mr. Smith went to Washington! Did he? Yes\xe2\x80\xa6\n\nNew paragraph")
    put("frontend", "ipa", b"\x00h_\xc9\x99_l_\xcb\x88o\xca\x8a  \xc3\xb0_\xcb\x88\xc9\x9b\xc9\xb9, ts.")
    put("frontend", "cjk", "\x00你好。世界！「引用」。".encode())
    put("frontend", "own_inv", b"\x01<sil>\n \n,\na\nb\nab\n\x00ab a_b, ba.")
    put("frontend", "espeak", b"\x02The quick brown fox, 42 times. J. R. R. Tolkien (e.g. him).")
    put("frontend", "long", b"\x00" + b"word " * 200 + b"!!!!" + b"x" * 700)
    put("frontend", "stops", b"\x00Go" + b"!" * 2000 + b" end")  # regression: one 2 kB sentence
    put("frontend", "invalid", b"\x00ok \xc0\xaf \xed\xa0\x80")


def audio():
    tmp = tempfile.mkdtemp()
    specs = [("s16_mono.wav", ["-r", "16000", "-c", "1", "-b", "16"]),
             ("s16_stereo_44k.wav", ["-r", "44100", "-c", "2", "-b", "16"]),
             ("u8_8k.wav", ["-r", "8000", "-c", "1", "-b", "8", "-e", "unsigned-integer"]),
             ("f32.wav", ["-r", "22050", "-c", "1", "-b", "32", "-e", "floating-point"]),
             ("mono.flac", ["-r", "16000", "-c", "1", "-b", "16"]),
             ("stereo.ogg", ["-r", "24000", "-c", "2"]),
             ("mono.aiff", ["-r", "11025", "-c", "1", "-b", "16"])]
    for name, fmt in specs:
        out = os.path.join(tmp, name)
        subprocess.run(["sox", "-R", "-n"] + fmt + [out, "synth", "0.02", "sine", "440"], check=True)
        with open(out, "rb") as f:
            put("audio", name, f.read())
        os.unlink(out)
    os.rmdir(tmp)


def memory():
    # byte 0: mode (bit 0 compat, bits 1..6 frames - 1, bit 7 the raw-value check)
    cfg = bytes([3, 1, 1, 0, 2, 3, 3, 3, 8, 3, 10, 40, 1, 7])
    put("memory", "small", bytes([0x10]) + cfg + f32(*[math.sin(i) for i in range(64)]))
    put("memory", "compat", bytes([0x21]) + cfg + f32(*[i % 5 for i in range(32)]))
    put("memory", "nan", bytes([0x0C]) + cfg + f32(math.nan, math.inf, -math.inf, 1, 0, -0.0))
    put("memory", "equal", bytes([0x40]) + cfg + f32(1.0))
    put("memory", "wild", bytes([0x80, 7, 3, 1]) + struct.pack("<I", 1 << 16) + bytes([0]) +
        struct.pack("<I", 1 << 16) + bytes([4]) + struct.pack("<I", 0) + bytes([7]) +
        struct.pack("<I", 0))


if __name__ == "__main__":
    for f in (safetensors, st_index, configs, tokenizers, frontend, audio, memory):
        f()
    sys.exit(0)
