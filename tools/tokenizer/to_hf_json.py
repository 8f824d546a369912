#!/usr/bin/python3
"""Write a Hugging Face Llama-style tokenizer.json for a SentencePiece BPE tokenizer.model.

    /usr/bin/python3 tools/tokenizer/to_hf_json.py tokenizer.model tokenizer.json

The `tokenizers` package is not available here, so this writes the layout of Hugging
Face's LlamaTokenizerFast by hand: model.type "BPE" with byte_fallback, the vocabulary in
id order, normalizer Prepend("▁") + Replace(" " -> "▁"), decoder Replace("▁" -> " ") +
ByteFallback + Fuse + Strip(1 leading space), control and user-defined pieces as
added_tokens.

SentencePiece BPE stores no merge list: it merges the adjacent pair whose concatenation
is the best-scoring piece. The merges written here are derived from the piece scores:
every split of a normal piece into two normal pieces becomes a merge, ranked by the score
of the merged piece (best first), ties by the ids of the two halves.
"""
import json
import sys

import sentencepiece as spm


def _varint(buf, pos):
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, pos


def _fields(buf):
    """(field number, wire type, value) of one protobuf message; value is the payload
    bytes for length-delimited fields, the integer otherwise."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError("unsupported wire type %d" % wire)
        yield field, wire, value


def piece_types(model_path):
    """SentencePiece.type of every piece (python-sentencepiece cannot tell user-defined
    pieces apart, and the protobuf module is not installed here)."""
    with open(model_path, "rb") as f:
        data = f.read()
    types = []
    for field, _, value in _fields(data):
        if field == 1:
            t = 1
            for sub, _, v in _fields(value):
                if sub == 3:
                    t = v
            types.append(t)
    return types


def build(model_path):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    vocab = {p: i for i, p in enumerate(pieces)}

    def normal(i):
        return not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i) or sp.is_unused(i)
                    or pieces[i] in user_defined)

    user_defined = {pieces[i] for i, t in enumerate(piece_types(model_path)) if t == 4}

    merges = []
    for i, piece in enumerate(pieces):
        if not normal(i) or len(piece) < 2:
            continue
        local = []
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab and normal(vocab[left]) and normal(vocab[right]):
                local.append((vocab[left], vocab[right]))
        local.sort()
        for left, right in local:
            merges.append((-sp.get_score(i), i, pieces[left] + " " + pieces[right]))
    merges.sort(key=lambda m: (m[0], m[1]))

    added = []
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i) or pieces[i] in user_defined:
            added.append({"id": i, "content": pieces[i], "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False,
                          "special": not pieces[i] in user_defined})
    bos = sp.bos_id()
    single = [{"Sequence": {"id": "A", "type_id": 0}}]
    pair = [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}]
    specials = {}
    if bos >= 0:
        single.insert(0, {"SpecialToken": {"id": pieces[bos], "type_id": 0}})
        pair.insert(0, {"SpecialToken": {"id": pieces[bos], "type_id": 0}})
        pair.insert(2, {"SpecialToken": {"id": pieces[bos], "type_id": 1}})
        specials[pieces[bos]] = {"id": pieces[bos], "ids": [bos], "tokens": [pieces[bos]]}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        "pre_tokenizer": None,
        "post_processor": {"type": "TemplateProcessing", "single": single, "pair": pair,
                           "special_tokens": specials},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": pieces[sp.unk_id()],
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [m[2] for m in merges]},
    }


def write(model_path, json_path):
    doc = build(model_path)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    write(sys.argv[1], sys.argv[2])
