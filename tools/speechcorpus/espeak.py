"""libespeak-ng through ctypes: the C frontend's phonemisation and synthesis
with the synthesizer's own phoneme events.

espeak-ng keeps its state in globals, so this module is a process-wide
singleton (initialise once, select a voice only on a change)."""

import ctypes

LIB = "libespeak-ng.so.1"
AUDIO_OUTPUT_SYNCHRONOUS = 2
INIT_PHONEME_EVENTS = 0x0001
INIT_PHONEME_IPA = 0x0002
INIT_DONT_EXIT = 0x8000
CHARS_UTF8 = 1
PHONEMES_IPA = 0x02
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))

# The punctuation speech/g2p_espeak.c cuts clauses at (and keeps).
CLAUSE_PUNCT = [",", ";", ":", ".", "!", "?", "\u2026", "\u2014", "\u3002", "\u3001",
                "\uff0c", "\uff01", "\uff1f"]
# speech/frontend.c punct_pause_ms: the characters that become pause tokens.
PAUSE_PUNCT = set(".!?\u2026\u3002\uff01\uff1f\uff0e,;:\u2014\u2013\u3001\uff0c\uff1b\uff1a")
BLANKS = set(" \t\n\r\v\f\u00a0\u3000")


class Espeak:
    def __init__(self):
        self.lib = ctypes.CDLL(LIB)
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                                   ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint,
                                          ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_void_p, ctypes.c_void_p]
        self.rate = self.lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
            INIT_PHONEME_EVENTS | INIT_PHONEME_IPA | INIT_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise (is espeak-ng-data installed?)")
        self.voice = None
        self._chunks = []
        self._events = []
        self._cb = _CALLBACK(self._collect)
        self.lib.espeak_SetSynthCallback(self._cb)

    def _collect(self, wav, n, ev):
        if n > 0:
            self._chunks.append(ctypes.string_at(wav, n * 2))
        i = 0
        while ev[i].type != EVENT_LIST_TERMINATED:
            e = ev[i]
            if e.type == EVENT_PHONEME:
                name = bytes(e.id).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((e.sample, name))
            i += 1
        return 0

    def select(self, voice):
        if voice == self.voice:
            return
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            self.voice = None
            raise ValueError("espeak-ng has no voice '%s'" % voice)
        self.voice = voice

    def _clause_phonemes(self, clause, out):
        buf = ctypes.create_string_buffer(clause.encode("utf-8"))
        p = ctypes.c_void_p(ctypes.addressof(buf))
        mode = PHONEMES_IPA | (ord("_") << 8)
        while p.value:
            r = self.lib.espeak_TextToPhonemes(ctypes.byref(p), CHARS_UTF8, mode)
            if not r:
                continue
            ph = r.decode("utf-8")
            if not ph:
                continue
            if out and out[-1] != " ":
                out.append(" ")
            ph = ph.lstrip("_")
            # Language-switch markers "(en-us)" are not phonemes.
            while ph:
                o = ph.find("(")
                if o < 0:
                    out.append(ph)
                    break
                out.append(ph[:o])
                c = ph.find(")", o)
                ph = ph[c + 1:] if c >= 0 else ""

    def phonemize(self, text, voice="en-us"):
        """IPA text exactly as speech/g2p_espeak.c writes it for one sentence."""
        self.select(voice)
        out = []
        start = 0
        i = 0
        n = len(text)
        while i < n:
            pl = 0
            for p in CLAUSE_PUNCT:
                if text.startswith(p, i):
                    pl = len(p)
                    break
            if not pl or not _ends_clause(text, i + pl):
                i += 1
                continue
            if i > start:
                self._clause_phonemes(text[start:i], out)
            out.append(text[i:i + pl])
            i += pl
            start = i
        if start < n:
            self._clause_phonemes(text[start:], out)
        return "".join(out)

    def synth(self, text, voice, pitch=50, rate=175, prange=50):
        """16-bit samples at self.rate and the phoneme events [(sample, ipa name)]
        ('' names are pauses)."""
        self.select(voice)
        self.lib.espeak_SetParameter(PARAM_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)
        self.lib.espeak_SetParameter(PARAM_RANGE, int(prange), 0)
        self._chunks, self._events = [], []
        b = text.encode("utf-8")
        err = self.lib.espeak_Synth(b, len(b) + 1, 0, 0, 0, CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError("espeak_Synth failed (%d)" % err)
        self.lib.espeak_Synchronize()
        return b"".join(self._chunks), list(self._events)


def _ends_clause(text, j):
    # Byte-level test of speech/g2p_espeak.c ends_clause (">= 0x80" is any non-ASCII).
    return j >= len(text) or text[j] in " \t\n\r\"')" or ord(text[j]) >= 0x80


def tokens(ipa):
    """The symbol sequence speech/frontend.c frt_phoneme_map_apply produces from
    IPA text when the inventory holds every whole token, " " and the punctuation."""
    seq = []
    boundary_ok = False
    i, n = 0, len(ipa)
    while i < n:
        c = ipa[i]
        if c in BLANKS:
            if boundary_ok:
                seq.append(" ")
            boundary_ok = False
            i += 1
            continue
        if c == "_":
            i += 1
            continue
        if c in PAUSE_PUNCT:
            if seq and seq[-1] == " ":
                seq.pop()
            seq.append(c)
            boundary_ok = False
            i += 1
            continue
        j = i
        while j < n and ipa[j] not in BLANKS and ipa[j] != "_" and ipa[j] not in PAUSE_PUNCT:
            j += 1
        seq.append(ipa[i:j])
        boundary_ok = True
        i = j
    if seq and seq[-1] == " ":
        seq.pop()
    return seq


def is_sound(tok):
    return tok != " " and tok not in PAUSE_PUNCT


PAUSE_NAMES = ["<sil>", "sil", "sp", "<pause>", "SIL"]
MODIFIERS = set("\u02c8\u02cc")  # stress marks: no sound of their own


def split_durations(phonemes, starts, ends, symbols):
    """Map whole tokens onto an inventory the way speech/frontend.c does (whole
    symbol, else the longest inventory symbols in turn; punctuation the
    inventory lacks becomes its pause symbol) and share each token's time
    among its pieces: stress marks get 0, the other pieces equal parts.
    Returns (symbols, starts, ends); the time of a dropped token goes to the
    symbol before it."""
    inv = set(s for s in symbols if s)
    by_len = sorted(inv, key=len, reverse=True)
    pause = next((p for p in PAUSE_NAMES if p in inv), None)
    space = next((p for p in (" ", "<space>", "|") if p in inv), None)
    out_s, out_a, out_b = [], [], []

    def push(sym, a, b):
        out_s.append(sym)
        out_a.append(a)
        out_b.append(b)

    for tok, a, b in zip(phonemes, starts, ends):
        if tok == " " or tok in PAUSE_PUNCT:
            sym = space if tok == " " else (tok if tok in inv else pause)
            if sym is not None:
                push(sym, a, b)
            elif out_b:
                out_b[-1] = b
            continue
        if tok in inv:
            push(tok, a, b)
            continue
        pieces, i = [], 0
        while i < len(tok):
            m = next((s for s in by_len if tok.startswith(s, i)), None)
            if m is None:
                i += 1
                continue
            pieces.append(m)
            i += len(m)
        if not pieces:
            if out_b:
                out_b[-1] = b
            continue
        sounding = [p for p in pieces if not all(c in MODIFIERS for c in p)] or pieces
        share = (b - a) / len(sounding)
        t = a
        for p in pieces:
            d = share if p in sounding else 0.0
            push(p, t, t + d)
            t += d
        out_b[-1] = b
    return out_s, out_a, out_b
