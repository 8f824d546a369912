#!/usr/bin/python3
"""Train the test tokenizers and write the goldens the C tokenizer is checked against.

Regenerate everything (tokenizers + goldens) with one command from the repository root:

    /usr/bin/python3 tools/tokenizer/make_goldens.py

It needs Debian's `sentencepiece` (spm_train) and `python3-sentencepiece`, hence
/usr/bin/python3 (the first python3 on PATH may not see Debian's packages).

Outputs, in tests/data/tokenizer/:
  tokenizer.model      Llama-like SentencePiece BPE (byte fallback, identity normalization,
                       dummy prefix, whitespace kept, digits split, unk=0 bos=1 eos=2) plus
                       two user-defined symbols, trained on a corpus built here
  tokenizer.json       the same vocabulary in the Hugging Face Llama layout (see to_hf_json.py)
  ws.model             a small variant with remove_extra_whitespaces=true (normalizer path)
  noprefix.model       a small variant with add_dummy_prefix=false
  unused.model         tokenizer.model with every 5th multi-character piece marked UNUSED
                       (sentencepiece then splits them back into the pieces they came from)
  goldens.txt          expected ids and decoded text from python-sentencepiece

goldens.txt format, one case per line, fields separated by one space:
  M <name>                          following cases use tests/data/tokenizer/<name>
  E <input hex> <ids> <decoded hex> EncodeAsIds(input bytes), DecodeIds of those ids
  D <ids> <decoded hex>             DecodeIds of an arbitrary id sequence
<ids> is comma-separated, "-" when empty; hex is "-" for the empty string and "=" in
the decoded field when the decoded text equals the input.

The corpus is generated from text embedded in this file (not the repository's docs) so
that the tokenizer only changes when this script does. Everything is seeded.
"""
import os
import random
import subprocess
import sys
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")
sys.path.insert(0, HERE)
import to_hf_json  # noqa: E402

PROJECT_TEXT = """\
flashrt is a streaming multimodal inference runtime written in C11. It has two halves that
share one core and one set of kernels. Video frames decoded by FFmpeg from a file, RTSP,
HTTP/HLS or a V4L2 camera are encoded by a CLIP-style vision transformer and folded into the
Flash-VStream STAR memory, a fixed-size summary of an unbounded stream. Questions arrive at
any time, asynchronously; each is answered by a LLaVA-style language model from a consistent
snapshot of that memory while ingestion keeps running.
Text becomes phonemes, a FlashSpeech model (phoneme encoder, prompt encoder, prosody
generator, latent consistency model) produces codec latents in one or two sampling steps,
and a codec decoder turns them into a waveform that goes to a file, to stdout as a streaming
WAV for audio players, or to the sound card.
Flash attention (prefill, causal, grouped-query) and split-KV decode attention run on the
CPU with AVX-512 and AVX2 and on CUDA, plus the GEMM paths and the small fused ops: RMS norm,
layer norm, rotary position embeddings, SiLU, GELU and softmax.
The tokenizer reads tokenizer.model, a SentencePiece BPE model with byte fallback, and
turns text into token ids; the decoder turns ids back into text one token at a time.
Every fallible call returns a status and records a message; the library never exits.
Weights are memory-mapped from safetensors files and never copied when their dtype is usable.
Allocate working memory once and reuse it: the first touch of a page is expensive.
"""

WORDS = """the a an of to in and or for with on at by from as is are was be been frame frames
video stream memory token tokens model layer layers attention head heads query key value
kernel kernels thread threads buffer buffers tensor tensors weight weights shape stride dtype
float half bfloat integer byte bytes text speech audio sample samples rate second seconds
question answer answers camera file files network decoder encoder vision language prompt
cache batch row rows column columns matrix vector scale bias norm softmax rope position
runtime library function pointer status error message queue snapshot summary scene scenes
fast slow small large first last next previous every each many few one two three four five
read write open close load save start stop run runs running build test tests check checks
""".split()

MULTILINGUAL = [
    "Der schnelle braune Fuchs springt über den faulen Hund. Größe, Straße, Äpfel, Öl.",
    "Le modèle répond à la question pendant que la vidéo continue. Où est la caméra ?",
    "El modelo responde preguntas sobre el vídeo en tiempo real. ¿Dónde está la cámara?",
    "Привет, мир! Модель отвечает на вопросы о видео, пока поток продолжается.",
    "Γειά σου κόσμε. Το μοντέλο απαντά σε ερωτήσεις για το βίντεο.",
    "こんにちは世界。モデルはビデオについての質問に答えます。",
    "你好，世界。模型在视频流继续时回答关于视频的问题。",
    "안녕하세요 세계. 모델이 비디오에 대한 질문에 답합니다.",
    "مرحبا بالعالم. النموذج يجيب على الأسئلة.",
    "שלום עולם. המודל עונה על שאלות.",
    "नमस्ते दुनिया। मॉडल वीडियो के बारे में सवालों के जवाब देता है।",
    "Emoji: 😀 🎉 👍 🚀 ❤️ 🙂",
]

USER_DEFINED = ["<image>", "<video>"]

# Llama's SentencePiece settings (identity normalization, spaces kept, digits split,
# byte fallback, unk/bos/eos = 0/1/2).
LLAMA_FLAGS = [
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
    "--num_threads=1",
    "--minloglevel=2",
]


def build_corpus(rng):
    lines = [line for line in PROJECT_TEXT.splitlines() if line]
    for _ in range(6000):
        n = rng.randint(3, 18)
        s = " ".join(rng.choice(WORDS) for _ in range(n))
        r = rng.random()
        if r < 0.15:
            s += " %d" % rng.randint(0, 100000)
        elif r < 0.25:
            s = s.capitalize() + "."
        elif r < 0.3:
            s = "  " + s + "\t" + rng.choice(WORDS)
        elif r < 0.35:
            s += " " + rng.choice(USER_DEFINED)
        lines.append(s)
    for _ in range(20):
        lines.extend(MULTILINGUAL)
    return "\n".join(lines) + "\n"


def train(workdir, prefix, vocab_size, extra):
    # Relative paths: the model records its input and prefix, and must not depend on
    # the temporary directory's name.
    cmd = ["spm_train", "--input=corpus.txt", "--model_prefix=" + prefix,
           "--vocab_size=%d" % vocab_size] + LLAMA_FLAGS + extra
    subprocess.run(cmd, check=True, cwd=workdir)


# ---- test strings ------------------------------------------------------------------------

SCRIPTS = [
    (0x41, 0x7A), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
    (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0xAC00, 0xD7A3), (0x3040, 0x30FF),
    (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0x2000, 0x206F), (0x10000, 0x1007F),
    (0x20000, 0x2A6DF), (0xE000, 0xF8FF),
]
EMOJI = [
    "😀", "🎉", "👍", "🚀", "❤️", "👍🏽", "👋🏿", "👨‍👩‍👧‍👦", "🧑🏾‍💻", "🏳️‍🌈", "🇩🇪", "🇯🇵",
    "1️⃣", "#️⃣", "🤷‍♀️", "👩🏻‍❤️‍💋‍👨🏼", "🫠", "🦀",
]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "Z\u0351\u0334\u0317\u0347", "\u0915\u094d\u0937",
             "\u05e9\u05c1", "A\u20dd"]
WHITESPACE = [" ", "  ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2581", "\u2003",
              " \t ", "\n\n\n", "\u2028", "\v", "\f"]
CONTROLS = ["\x00", "\x01", "\x07", "\x1b", "\x1f", "\x7f", "\u0085", "\u009f", "\u200b",
            "\u200d", "\ufeff", "\ufffd", "\uffff", "\U0010ffff", "\u202e"]
LITERALS = ["<s>", "</s>", "<unk>", "<0x41>", "<image>", "<video>", "<image><image>",
            "x<image>y", " <video> ", "\u2581\u2581", "<0xFF>"]
INVALID = [b"\xff", b"\xc3", b"\xc0\x80", b"\xe2\x96", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
           b"\xf5", b"\x80\x80", b"\xf0\x9f\x98", b"\xe0\x80\xaf", b"\xc2", b"\xfe\xff"]


def random_char(rng):
    lo, hi = rng.choice(SCRIPTS)
    while True:
        c = rng.randint(lo, hi)
        if not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def sentence(rng, n=None):
    n = n or rng.randint(1, 12)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def fragment(rng):
    k = rng.randrange(10)
    if k == 0:
        return sentence(rng)
    if k == 1:
        return str(rng.choice([rng.randint(0, 9), rng.randint(0, 10 ** 9),
                               rng.uniform(-1e6, 1e6)]))
    if k == 2:
        return "".join(random_char(rng) for _ in range(rng.randint(1, 8)))
    if k == 3:
        return rng.choice(EMOJI)
    if k == 4:
        return rng.choice(COMBINING)
    if k == 5:
        return rng.choice(WHITESPACE)
    if k == 6:
        return rng.choice(CONTROLS)
    if k == 7:
        return rng.choice(LITERALS)
    if k == 8:
        return rng.choice(MULTILINGUAL)[: rng.randint(1, 40)]
    return rng.choice(WORDS)


def test_strings(rng, count):
    """Deterministic list of `count` byte strings covering the cases the brief names."""
    out = [b"", b" ", b"  ", b"\t", b"\n", b"a", b" a", b"a ", b"  hello  world  ",
           b"\x00", "\u2581".encode(), " \u2581 ".encode(), b"12345678901234567890",
           "naïve café".encode(), "👨‍👩‍👧‍👦".encode(), b"<s>hello</s>", b"<unk>",
           "x\u0301\u0302\u0303".encode(), ("\U0001f600" * 20).encode()]
    for s in MULTILINGUAL:
        out.append(s.encode())
    for s in EMOJI + COMBINING + WHITESPACE + CONTROLS + LITERALS:
        out.append(s.encode())
        out.append((" " + s + " ").encode())
    for b in INVALID:
        out.append(b)
        out.append(b"ab" + b + b"cd")
    while len(out) < count - 8:
        parts = []
        for _ in range(rng.randint(1, 8)):
            parts.append(fragment(rng))
            if rng.random() < 0.5:
                parts.append(rng.choice(["", " ", " ", "  ", "\n", "\t"]))
        s = "".join(parts)
        if rng.random() < 0.1:
            s = " " * rng.randint(1, 4) + s
        if rng.random() < 0.1:
            s = s + " " * rng.randint(1, 4)
        b = s.encode()
        if rng.random() < 0.04:
            pos = rng.randint(0, len(b))
            b = b[:pos] + rng.choice(INVALID) + b[pos:]
        out.append(b)
    # A few long texts: whole paragraphs and whitespace runs.
    for i in range(8):
        if i < 4:
            s = " ".join(sentence(rng, 20) + "." for _ in range(20 + 10 * i))
        elif i < 6:
            s = (" " * rng.randint(5, 40) + sentence(rng)) * 10
        else:
            s = "".join(fragment(rng) for _ in range(150))
        out.append(s.encode())
    return out[:count]


def random_ids(rng, sp, n):
    """Id sequences that exercise decode's corners: byte runs cut anywhere, control and
    unknown tokens between them, pieces starting with the space marker."""
    size = sp.get_piece_size()
    byte_ids = [i for i in range(size) if sp.is_byte(i)]
    ctrl = [i for i in range(size) if sp.is_control(i)]
    unk = [i for i in range(size) if sp.is_unknown(i)]
    space = [i for i in range(size) if sp.id_to_piece(i).startswith("\u2581")]
    utf8_bytes = list("\u2581é€😀".encode())
    seqs = []
    for _ in range(n):
        seq = []
        for _ in range(rng.randint(0, 16)):
            k = rng.randrange(8)
            if k == 0:
                seq.append(rng.choice(ctrl))
            elif k == 1:
                seq.append(rng.choice(unk))
            elif k == 2:
                seq.append(rng.choice(byte_ids))
            elif k == 3:
                seq.append(sp.piece_to_id("<0x%02X>" % rng.choice(utf8_bytes)))
            elif k == 4:
                seq.append(rng.choice(space))
            else:
                seq.append(rng.randrange(size))
        seqs.append(seq)
    return seqs


def hexs(b):
    return b.hex() if b else "-"


def idstr(ids):
    return ",".join(str(i) for i in ids) if ids else "-"


def goldens(model_path, strings, id_seqs):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    lines = ["M " + os.path.basename(model_path)]
    for s in strings:
        ids = sp.encode(s)
        dec = sp.decode(ids).encode()
        lines.append("E %s %s %s" % (hexs(s), idstr(ids), "=" if dec == s else hexs(dec)))
    for ids in id_seqs:
        lines.append("D %s %s" % (idstr(ids), hexs(sp.decode(ids).encode())))
    return lines


def _varint_bytes(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def mark_unused(data):
    """Re-serialize a ModelProto with some normal pieces' type set to UNUSED (5)."""
    out = bytearray()
    index = 0
    for field, wire, value in to_hf_json._fields(data):
        if field == 1:
            piece, score, ptype = b"", None, 1
            for sub, _, v in to_hf_json._fields(value):
                if sub == 1:
                    piece = v
                elif sub == 2:
                    score = v
                elif sub == 3:
                    ptype = v
            if ptype == 1 and len(piece.decode()) >= 3:
                if index % 5 == 0:
                    ptype = 5
                index += 1
            msg = b"\x0a" + _varint_bytes(len(piece)) + piece
            if score is not None:
                msg += b"\x15" + score
            if ptype != 1:
                msg += b"\x18" + _varint_bytes(ptype)
            out += b"\x0a" + _varint_bytes(len(msg)) + msg
        elif wire == 2:
            out += _varint_bytes(field << 3 | 2) + _varint_bytes(len(value)) + value
        else:
            raise ValueError("unexpected top-level field %d" % field)
    return bytes(out)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(20261125)
    corpus = build_corpus(rng)
    with tempfile.TemporaryDirectory() as tmp:
        cpath = os.path.join(tmp, "corpus.txt")
        with open(cpath, "w", encoding="utf-8") as f:
            f.write(corpus)
        train(tmp, "tokenizer", 2000, ["--user_defined_symbols=" + ",".join(USER_DEFINED)])
        train(tmp, "ws", 600, ["--remove_extra_whitespaces=true", "--character_coverage=0.999"])
        train(tmp, "noprefix", 600, ["--add_dummy_prefix=false", "--character_coverage=0.999"])
        for name in ("tokenizer", "ws", "noprefix"):
            with open(os.path.join(tmp, name + ".model"), "rb") as f:
                data = f.read()
            with open(os.path.join(OUT, name + ".model"), "wb") as f:
                f.write(data)

    main_model = os.path.join(OUT, "tokenizer.model")
    with open(main_model, "rb") as f:
        unused = mark_unused(f.read())
    with open(os.path.join(OUT, "unused.model"), "wb") as f:
        f.write(unused)
    to_hf_json.write(main_model, os.path.join(OUT, "tokenizer.json"))

    srng = random.Random(7)
    strings = test_strings(srng, 1000)
    main_sp = spm.SentencePieceProcessor(model_file=main_model)
    lines = goldens(main_model, strings, random_ids(srng, main_sp, 300))
    small = strings[:120] + strings[-40:-8]
    for name in ("ws.model", "noprefix.model", "unused.model"):
        path = os.path.join(OUT, name)
        sp = spm.SentencePieceProcessor(model_file=path)
        lines += goldens(path, small, random_ids(srng, sp, 60))
    with open(os.path.join(OUT, "goldens.txt"), "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d golden lines to %s" % (len(lines), OUT))


if __name__ == "__main__":
    main()
