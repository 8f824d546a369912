#!/usr/bin/python3
"""Generate the speech corpus: WordNet example sentences rendered by espeak-ng
with 24 voices, 16 kHz mono, with per-phoneme times from the synthesizer's
own phoneme events. See README.md.

    /usr/bin/python3 tools/speechcorpus/make_corpus.py --out data/speech-corpus
        [--limit N]   stop after N utterances (a sample; a later run resumes)

Fixed seed: the sentences, voices, splits and phonemes are the same on every
run; the audio and times nearly so (espeak-ng 1.51's timing varies by a few
ms from call to call; each WAV and its times come from the same call).
Resumable: utterances already in the manifest with their WAV on disk are kept."""

import argparse
import collections
import json
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import align as aligner  # noqa: E402
import espeak as es  # noqa: E402

SEED = 20261125
SR = 16000
WORDNET = "/usr/share/wordnet"
G2P_VOICE = "en-us"  # the C runtime's default G2P voice (speech/engine.c)
N_TRAIN_SENT = 4000
N_HELD_SENT = 210  # 5% of the sentences
HELD_SENT_PER_VOICE = 20  # heldout-sent: held-out sentences per train voice
HELD_VOICE_PER_VOICE = 50  # heldout-voice: held-out sentences per held-out voice
MIN_S, MAX_S = 1.0, 4.0

# espeak-ng en-us with a voice variant; pitch, range and rate are drawn per voice.
TRAIN_VARIANTS = ["m1", "m2", "m3", "m5", "m6", "m7", "f1", "f2", "f4", "f5", "klatt", "klatt3",
                  "klatt4", "Andy", "adam", "linda", "steph", "john", "robert", "paul"]
HELD_VARIANTS = ["m4", "f3", "klatt2", "Annie"]

# Example sentences about violence, bodily matters or slurs are left out.
BLOCK = set("""rape raped raping rapist kill killed kills killing murder murdered murderer
shot shoot suicide sex sexual sexually naked nude penis vagina breast breasts whore prostitute
nigger negro jew jews jewish nazi hitler slave slaves gun guns bomb bombs drunk drug drugs
cocaine heroin torture tortured corpse bastard bitch damn hell god christ jesus satan devil
pregnant abortion urine feces vomit bloody blood""".split())


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def wordnet_sentences():
    """Quoted example sentences from the WordNet glosses, as clean sentences."""
    seen, out = set(), []
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(WORDNET, "data." + pos), encoding="latin-1") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # licence header
                gloss = line.split("|", 1)
                if len(gloss) < 2:
                    continue
                for ex in re.findall(r'"([^"]+)"', gloss[1]):
                    ex = ex.strip()
                    if not re.fullmatch(r"[A-Za-z][A-Za-z ,'\-]*[A-Za-z]", ex):
                        continue
                    if ",," in ex or " ," in ex or "--" in ex or "''" in ex:
                        continue
                    words = re.findall(r"[A-Za-z']+", ex)
                    if not 3 <= len(words) <= 11 or any(w.lower() in BLOCK for w in words):
                        continue
                    s = ex[0].upper() + ex[1:] + "."
                    if s.lower() in seen:
                        continue
                    seen.add(s.lower())
                    out.append(s)
    return out


def make_voices(rng):
    voices = []
    for split, variants in (("train", TRAIN_VARIANTS), ("heldout", HELD_VARIANTS)):
        for v in variants:
            voices.append({"name": "en-us+" + v, "split": split,
                           "voice_params": {"variant": v, "pitch": rng.randint(30, 75),
                                            "range": rng.randint(30, 80),
                                            "rate": rng.randint(145, 205)}})
    return voices


def plan(sentences, voices, rng):
    """The (id, split, sentence index, voice) items, in a shuffled order so
    that any prefix is a sample of every split and voice."""
    train_v = [v for v in voices if v["split"] == "train"]
    held_v = [v for v in voices if v["split"] == "heldout"]
    idx = list(range(len(sentences)))
    rng.shuffle(idx)
    held = idx[:N_HELD_SENT]
    train = idx[N_HELD_SENT:N_HELD_SENT + N_TRAIN_SENT]
    items = []
    for k, s in enumerate(train):
        v = train_v[k % len(train_v)]
        items.append(("train", s, v))
    for v in train_v:
        for s in rng.sample(held, HELD_SENT_PER_VOICE):
            items.append(("heldout-sent", s, v))
    for v in held_v:
        for s in rng.sample(held, HELD_VOICE_PER_VOICE):
            items.append(("heldout-voice", s, v))
    rng.shuffle(items)
    return [("%s-%s-%05d" % (sp, v["voice_params"]["variant"], s), sp, s, v) for sp, s, v in items]


def resample_to_wav(pcm, rate, path):
    tmp = path + ".tmp.wav"
    # 3 dB of headroom: espeak-ng peaks near full scale and the resampler
    # overshoots; no dither, so a rerun writes the same bytes.
    subprocess.run(["sox", "-q", "-D", "-t", "raw", "-r", str(rate), "-e", "signed", "-b", "16",
                    "-c", "1", "-", "-b", "16", "-c", "1", tmp, "gain", "-3", "rate", "-h",
                    str(SR)], input=pcm, check=True)
    os.replace(tmp, path)
    return (os.path.getsize(path) - 44) // 2


def render(eng, item, sentence, ipa, toks, out):
    uid, split, _, v = item
    p = v["voice_params"]
    pcm, events = eng.synth(sentence, v["name"], p["pitch"], p["rate"], p["range"])
    n = len(pcm) // 2
    trim, starts, ends, stats = aligner.align(toks, events, n, es.is_sound)
    seconds_22k = (n - trim) / eng.rate
    if not MIN_S <= seconds_22k <= MAX_S:
        return None, stats
    rel = os.path.join("wavs", p["variant"], uid + ".wav")
    os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)
    nout = resample_to_wav(pcm[2 * trim:], eng.rate, os.path.join(out, rel))
    seconds = nout / SR
    st = [round(min(s / eng.rate, seconds), 5) for s in starts]
    en = [round(min(e / eng.rate, seconds), 5) for e in ends]
    en[-1] = round(seconds, 5)
    rec = {"id": uid, "split": split, "voice": v["name"], "voice_params": p, "text": sentence,
           "ipa": ipa, "phonemes": toks, "starts": st, "ends": en, "wav": rel,
           "seconds": round(seconds, 5)}
    return rec, stats


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="data/speech-corpus")
    ap.add_argument("--limit", type=int, default=0, help="stop after N utterances")
    a = ap.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)
    rng = random.Random(SEED)
    eng = es.Espeak()
    sentences = wordnet_sentences()
    log("corpus: %d candidate sentences from WordNet" % len(sentences))
    # Phonemise every candidate once; keep those of a plausible length.
    ipas = [eng.phonemize(s, G2P_VOICE) for s in sentences]
    toks = [es.tokens(i) for i in ipas]
    keep = [k for k in range(len(sentences)) if 14 <= sum(map(es.is_sound, toks[k])) <= 40]
    sentences = [sentences[k] for k in keep]
    ipas = [ipas[k] for k in keep]
    toks = [toks[k] for k in keep]
    log("corpus: %d sentences of 14-40 phonemes" % len(sentences))
    voices = make_voices(rng)
    write_json(os.path.join(out, "voices.json"), voices)
    items = plan(sentences, voices, rng)

    man_path = os.path.join(out, "manifest.jsonl")
    done = {}
    if os.path.exists(man_path):
        with open(man_path, encoding="utf-8") as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                if os.path.exists(os.path.join(out, r["wav"])):
                    done[r["id"]] = r
    skipped_path = os.path.join(out, "skipped.json")
    skipped = set(json.load(open(skipped_path)) if os.path.exists(skipped_path) else [])
    # Rewrite the manifest with only the complete lines, then append.
    with open(man_path + ".tmp", "w", encoding="utf-8") as f:
        for item in items:
            if item[0] in done:
                f.write(json.dumps(done[item[0]], ensure_ascii=False) + "\n")
    os.replace(man_path + ".tmp", man_path)
    log("corpus: %d of %d planned utterances already done" % (len(done), len(items)))

    t0 = time.time()
    mismatch = collections.Counter()
    made = len(done)
    with open(man_path, "a", encoding="utf-8") as man:
        for n, item in enumerate(items):
            if a.limit and made >= a.limit:
                break
            if item[0] in done or item[0] in skipped:
                continue
            s = item[2]
            rec, stats = render(eng, item, sentences[s], ipas[s], toks[s], out)
            mismatch["tokens"] += stats["sound_tokens"]
            mismatch["unmatched"] += stats["sound_tokens"] - stats["exact"]
            if rec is None:
                skipped.add(item[0])
                continue
            man.write(json.dumps(rec, ensure_ascii=False) + "\n")
            man.flush()
            done[item[0]] = rec
            made += 1
            if made % 200 == 0:
                log("corpus: %d/%d utterances (%.0f s); %.2f%% of sounding tokens not matched "
                    "exactly to an event" % (made, len(items), time.time() - t0,
                                             100.0 * mismatch["unmatched"] / mismatch["tokens"]))
    write_json(skipped_path, sorted(skipped))

    inv = collections.Counter()
    for r in done.values():
        inv.update(r["phonemes"])
    write_json(os.path.join(out, "inventory.json"),
               {"symbols": sorted(inv), "counts": {k: inv[k] for k in sorted(inv)}})
    complete = all(i[0] in done or i[0] in skipped for i in items)
    by_split = collections.Counter(r["split"] for r in done.values())
    secs = collections.Counter()
    for r in done.values():
        secs[r["split"]] += r["seconds"]
    stats = {"complete": complete, "utterances": len(done), "skipped_out_of_range": len(skipped),
             "hours": round(sum(secs.values()) / 3600, 3),
             "splits": {k: {"utterances": by_split[k], "hours": round(secs[k] / 3600, 3)}
                        for k in sorted(by_split)},
             "voices": len(voices), "sample_rate": SR, "g2p_voice": G2P_VOICE, "seed": SEED}
    write_json(os.path.join(out, "stats.json"), stats)
    log("corpus: %s" % json.dumps(stats))


if __name__ == "__main__":
    main()
