#!/usr/bin/python3
"""Check the corpus's phoneme times on N utterances (default 50, seeded):

1. the IPA and symbols are what the C frontend gives: espeak.py recomputes
   them, and with --flashspeech the C program logs its IPA for the same text;
   synthesised again, every sounding symbol matches its phoneme event exactly
   (how far the times move is printed, not checked: espeak-ng 1.51's timing
   varies a little from call to call, see README.md);
2. the spans tile the audio: first start 0, each end the next start, the
   last end = the WAV's length (within one 20 ms model frame; in fact 1 sample);
3. they look right: frames inside a pause (a comma or the final stop, at least
   30 ms) are at least 20 dB quieter than vowels, and sibilants (s z ʃ) cross
   zero far more often than vowels.

    /usr/bin/python3 tools/speechcorpus/check_alignment.py data/speech-corpus \
        [--n 50] [--flashspeech build/apps/flashspeech --model DIR]
Exit status 1 when a check fails."""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import align as aligner  # noqa: E402
import espeak as es  # noqa: E402

VOWELS = set("aeiouæɐɑɒɔəɚɛɜɝɪʊʌ")
SIBILANTS = {"s", "z", "ʃ"}
FRAME = 0.02


def read_wav(path):
    with wave.open(path) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768.0, \
            w.getframerate()


def c_ipa(fs, model, text):
    env = dict(os.environ, FRT_LOG="debug")
    r = subprocess.run([fs, "-m", model, text, "-o", "/dev/null"], env=env, capture_output=True,
                       text=True)
    m = re.search(r'speech: sentence 0: ".*" -> (.*) \(\d+ ids\)', r.stderr)
    return m.group(1) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--flashspeech")
    ap.add_argument("--model", default="tests/data/speech/flashspeech-tiny")
    a = ap.parse_args()
    with open(os.path.join(a.corpus, "manifest.jsonl"), encoding="utf-8") as f:
        recs = [json.loads(line) for line in f]
    recs = random.Random(1).sample(recs, min(a.n, len(recs)))
    eng = es.Espeak()
    bad = []
    pause_db, vowel_db, sib_zcr, vowel_zcr, worst_tile = [], [], [], [], 0.0
    tokens_total = tokens_exact = 0
    worst_drift = 0.0
    for r in recs:
        ipa = eng.phonemize(r["text"])
        if ipa != r["ipa"] or es.tokens(ipa) != r["phonemes"]:
            bad.append("%s: IPA/symbols differ from espeak.py's" % r["id"])
        if a.flashspeech:
            cipa = c_ipa(a.flashspeech, a.model, r["text"])
            if cipa != r["ipa"]:
                bad.append("%s: the C frontend gives %r, the corpus %r" % (r["id"], cipa, r["ipa"]))
        p = r["voice_params"]
        pcm, events = eng.synth(r["text"], r["voice"], p["pitch"], p["rate"], p["range"])
        trim, st2, _, stats = aligner.align(r["phonemes"], events, len(pcm) // 2, es.is_sound)
        tokens_total += stats["sound_tokens"]
        tokens_exact += stats["exact"]
        if stats["exact"] != stats["sound_tokens"]:
            bad.append("%s: %d of %d sounding symbols differ from the events"
                       % (r["id"], stats["sound_tokens"] - stats["exact"], stats["sound_tokens"]))
        drift = max(abs(u / eng.rate - v) for u, v in zip(st2, r["starts"]))
        worst_drift = max(worst_drift, drift)
        x, sr = read_wav(os.path.join(a.corpus, r["wav"]))
        st, en = r["starts"], r["ends"]
        if st[0] != 0 or any(abs(en[i] - st[i + 1]) > 1e-9 for i in range(len(st) - 1)):
            bad.append("%s: spans do not tile" % r["id"])
        tile = abs(en[-1] - len(x) / sr)
        worst_tile = max(worst_tile, tile)
        if tile > FRAME or abs(sum(e - s for s, e in zip(st, en)) - len(x) / sr) > FRAME:
            bad.append("%s: durations sum to %.4f s, audio %.4f s" % (r["id"], en[-1], len(x) / sr))
        for p, s, e in zip(r["phonemes"], st, en):
            seg = x[int(s * sr):int(e * sr)]
            if len(seg) < int(0.03 * sr):
                continue
            db = 10 * np.log10(np.mean(seg ** 2) + 1e-12)
            zcr = np.mean(np.abs(np.diff(np.sign(seg))) > 0)
            core = p.lstrip("ˈˌ").rstrip("ː")
            if p in ",.":
                pause_db.append(db)
            elif len(core) == 1 and core in VOWELS:
                vowel_db.append(db)
                vowel_zcr.append(zcr)
            elif core in SIBILANTS:
                sib_zcr.append(zcr)
    vdb = float(np.median(vowel_db))
    pdb = float(np.median(pause_db)) if pause_db else float("nan")
    print("checked %d utterances; spans tile the audio to %.2g s at worst"
          % (len(recs), worst_tile))
    print("sounding symbols matching their phoneme event exactly: %d of %d"
          % (tokens_exact, tokens_total))
    print("synthesised again, the times move by %.4f s at worst" % worst_drift)
    print("median level: vowels %.1f dB, pauses %.1f dB (%d pauses >= 30 ms)"
          % (vdb, pdb, len(pause_db)))
    if sib_zcr:
        print("median zero-crossing rate: sibilants %.3f, vowels %.3f"
              % (np.median(sib_zcr), np.median(vowel_zcr)))
    if pause_db and not pdb < vdb - 20:
        bad.append("pauses are not 20 dB below vowels")
    if sib_zcr and not np.median(sib_zcr) > 2 * np.median(vowel_zcr):
        bad.append("sibilants do not cross zero twice as often as vowels")
    for b in bad:
        print("FAIL:", b)
    print("%d passed, %d failed" % (len(recs) + 2 - min(len(bad), len(recs) + 2), len(bad)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
