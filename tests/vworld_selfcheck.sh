#!/usr/bin/env bash
# The synthetic streaming world (tools/vworld): same seed gives the same
# frames and questions; every answer is re-derived from a frame-by-frame scan
# of objects_at/background_at (not from the generator's event lists); the
# rendered pixels show what objects_at says; held-out and training seeds are
# disjoint; the mp4 writer's output decodes back to the right frames.
# Exit 77 (ctest: skipped) without numpy or ffmpeg.
set -euo pipefail
src=$2
if ! /usr/bin/python3 -c "import numpy" 2>/dev/null || ! command -v ffmpeg >/dev/null ||
  ! command -v ffprobe >/dev/null; then
  echo "numpy for /usr/bin/python3, ffmpeg or ffprobe missing: skipped"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export VW_SRC=$src VW_TMP=$tmp
exec /usr/bin/python3 - <<'EOF'
import hashlib, json, os, re, subprocess, sys
import numpy as np

src, tmp = os.environ["VW_SRC"], os.environ["VW_TMP"]
sys.path.insert(0, src)
from tools.vworld.world import (World, SIZE, FPS, SHAPES, COLOURS, TRAIN_SEED_MAX,
                                HELDOUT_SEED_BASE, normalize_answer)
from tools.vworld import world as W

failed = 0


def check(cond, msg):
    global failed
    if not cond:
        failed += 1
        print("FAIL:", msg)


GAP = 120
PATTERNS = []
for key, forms in W.TEMPLATES.items():
    for form in forms:
        rx = (re.escape(form).replace(r"\{shape\}", "(?P<shape>" + "|".join(SHAPES) + ")")
              .replace(r"\{colour\}", "(?P<colour>" + "|".join(COLOURS) + ")"))
        PATTERNS.append((key, re.compile("^" + rx + "$")))


def parse(question):
    hits = [(k, m.groupdict()) for k, rx in PATTERNS if (m := rx.match(question))]
    return hits


class History:
    """What a viewer saw, frame by frame, from the public accessors only."""

    def __init__(self, w):
        self.objs = [[(o["shape"], o["colour"], o["size"]) for o in w.objects_at(i)]
                     for i in range(w.duration_s)]
        self.bg = [w.background_at(i) for i in range(w.duration_s)]

    def visible(self, pred, i0, i1):
        return [o for i in range(max(0, i0), i1 + 1) for o in self.objs[i] if pred(o)]


def derive(h, t, key, p):
    """The answer implied by the history, or None when the question is not
    valid at t."""
    if key.startswith("cur_"):
        if t < 3 or any(sorted(h.objs[i]) != sorted(h.objs[t]) or h.bg[i] != h.bg[t] for i in range(t - 3, t)):
            return None
        on = h.objs[t]
        if key == "cur_shape":
            return on[0][0] if len(on) == 1 else None
        if key == "cur_count":
            return str(len(on))
        if key == "cur_background":
            return h.bg[t]
        field = {"cur_colour_of": 0, "cur_size_of": 0, "cur_shape_of": 1}[key]
        want = p["shape"] if field == 0 else p["colour"]
        match = [o for o in on if o[field] == want]
        if len(match) != 1:
            return None
        return {"cur_colour_of": match[0][1], "cur_size_of": match[0][2], "cur_shape_of": match[0][0]}[key]
    if key == "occ":
        if t < GAP:
            return None
        combo = lambda o: o[0] == p["shape"] and o[1] == p["colour"]
        if h.visible(combo, 0, t - GAP):
            return None if h.visible(combo, t - GAP + 1, t) else "yes"
        return None if h.visible(combo, 0, t) else "no"
    if key.startswith("rec_"):
        if t < GAP:
            return None
        if key == "rec_colour_of":
            pred, attr = (lambda o: o[0] == p["shape"]), 1
        else:
            pred, attr = (lambda o: o[1] == p["colour"]), 0
        if h.visible(pred, t - GAP + 1, t):
            return None
        vals = {o[attr] for o in h.visible(pred, 0, t)}
        return vals.pop() if len(vals) == 1 else None
    seen = h.visible(lambda o: True, 0, t)
    if key == "cnt_shapes":
        return str(len({o[0] for o in seen})) if seen else None
    if key == "cnt_colours":
        return str(len({o[1] for o in seen})) if seen else None
    if key == "lst_colours":
        got = {o[1] for o in seen}
        return " and ".join(c for c in COLOURS if c in got) if seen else None
    if key == "cnt_backgrounds":
        return str(len(set(h.bg[: t + 1])))
    raise AssertionError(key)


def check_question(w, h, q, where):
    check(set(q) == {"t", "kind", "question", "answer"}, f"{where}: keys {sorted(q)}")
    check(isinstance(q["t"], int) and 1 <= q["t"] < w.duration_s, f"{where}: t {q['t']}")
    check(normalize_answer(q["answer"]) == q["answer"], f"{where}: answer {q['answer']!r} not canonical")
    hits = parse(q["question"])
    check(len(hits) == 1, f"{where}: question {q['question']!r} matches {len(hits)} templates")
    if len(hits) != 1:
        return None
    key, p = hits[0]
    check(W.KIND_OF[key] == q["kind"], f"{where}: kind {q['kind']} for {key}")
    ans = derive(h, q["t"], key, p)
    check(ans == q["answer"], f"{where}: {q['question']!r} at t={q['t']}: answer {q['answer']!r}, history says {ans!r}")
    return key


# Determinism: frames, questions and sampled questions, bit for bit.
for seed, dur in ((3, 300), (HELDOUT_SEED_BASE + 4, None)):
    a, b = World(seed, dur), World(seed, dur)
    check(a.duration_s == b.duration_s and 300 <= a.duration_s <= 1800, f"seed {seed}: duration {a.duration_s}")
    fa, fb = a.frames(0, a.duration_s), b.frames(0, b.duration_s)
    check(fa.dtype == np.uint8 and fa.shape == (a.duration_s, SIZE, SIZE, 3), f"seed {seed}: frames {fa.shape}")
    check(np.array_equal(fa, fb), f"seed {seed}: two renders differ")
    check(np.array_equal(a.frame(a.duration_s - 1), fa[-1]), f"seed {seed}: frame() != frames()")
    check(a.questions() == b.questions(), f"seed {seed}: questions differ")
    ra, rb = np.random.default_rng(9), np.random.default_rng(9)
    check(a.sample_questions(200, ra, 6) == b.sample_questions(200, rb, 6), f"seed {seed}: sample_questions differ")
check(not np.array_equal(World(1, 300).frames(0, 300), World(2, 300).frames(0, 300)), "seeds 1 and 2 render alike")

# The world is frozen: the bundled model was trained on it and the benchmark's
# held-out streams come from it, so any change to a draw (or a numpy whose
# Generator streams differ) must show here, not as a silent accuracy drop.
FROZEN = {(HELDOUT_SEED_BASE, None): "62340c0296fa81b96fe3b604dcd66707a0699dca1274808209c9493c1a31cd0b",
          (0, 300): "8573a6476711c2d568d1ef12842cf2e46ace23b063875ebb8a7f6b90a4b01bd9"}
for (seed, dur), want in FROZEN.items():
    w = World(seed, dur)
    digest = hashlib.sha256(w.frames(0, w.duration_s).tobytes())
    digest.update(json.dumps(w.questions()).encode())
    check(digest.hexdigest() == want, f"World({seed}, {dur}) changed: frames+questions sha256 {digest.hexdigest()}")

# Every answer re-derived; rendering agrees with objects_at.
kinds, yes_no, total = {}, {"yes": 0, "no": 0}, 0
rng = np.random.default_rng(123)
seeds = list(range(0, 12)) + [HELDOUT_SEED_BASE + k for k in range(12)]
for seed in seeds:
    w = World(seed)
    h = History(w)
    qs = w.questions()
    check(8 <= len(qs) <= 16, f"seed {seed}: {len(qs)} questions")
    check([q["t"] for q in qs] == sorted(q["t"] for q in qs), f"seed {seed}: questions not sorted by t")
    for q in qs:
        check_question(w, h, q, f"seed {seed}")
        kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
        if q["kind"] == "occurrence":
            yes_no[q["answer"]] += 1
        total += 1
    for t in rng.integers(1, w.duration_s, 6):
        for q in w.sample_questions(int(t), rng, 8):
            check_question(w, h, q, f"seed {seed} sample")
    for i in rng.integers(0, w.duration_s, 20):
        img = w.frame(int(i))
        bg = tuple(W.BACKGROUND_RGB[w.background_at(int(i))])
        for o in w.objects_at(int(i)):
            check(tuple(img[o["y"], o["x"]]) == W.COLOUR_RGB[o["colour"]], f"seed {seed} frame {i}: pixel at {o}")
        check(w.background_at(int(i)) not in COLOURS, f"seed {seed}: background named like an object colour")
print(f"{total} questions over {len(seeds)} streams: {kinds}, occurrence {yes_no}")
for k in W.KINDS:
    check(kinds.get(k, 0) >= total // 8, f"kind {k} underrepresented: {kinds.get(k, 0)} of {total}")
check(min(yes_no.values()) >= 0.35 * sum(yes_no.values()), f"occurrence yes/no unbalanced: {yes_no}")

# Short (demo) streams: only questions whose constraints fit.
for seed in (5, 6):
    w = World(seed, 90)
    h = History(w)
    for q in w.questions():
        check(q["kind"] in ("current", "count"), f"90 s stream has a {q['kind']} question")
        check_question(w, h, q, f"short seed {seed}")

check(normalize_answer(" The Red. ") == "red" and normalize_answer("An  circle!") == "circle"
      and normalize_answer("Blue and Red") == "blue and red" and normalize_answer("3") == "3", "normalize_answer")

# Bad input is refused with a clear error.
for args in ((-1,), (0, 5), (0, 1.5), ("x",)):
    try:
        World(*args)
        check(False, f"World{args} accepted")
    except ValueError:
        pass
try:
    World(0, 300).frame(300)
    check(False, "frame(300) of a 300 s stream accepted")
except ValueError:
    pass

# Seed ranges: disjoint, and the writer keeps to them.
check(TRAIN_SEED_MAX <= HELDOUT_SEED_BASE, "train and held-out seed ranges overlap")
tool = os.path.join(src, "tools", "vworld", "make_streams.py")
bad = subprocess.run([sys.executable, tool, "--split", "train", "--count", "2", "--first", str(TRAIN_SEED_MAX - 1),
                      "--out", tmp], capture_output=True, text=True)
check(bad.returncode != 0 and "train seeds" in bad.stderr, "train split beyond TRAIN_SEED_MAX accepted")

# The mp4 writer: reproducible bytes, right frame count, decodes back to the frames.
outs = []
for d in ("a", "b"):
    subprocess.run([sys.executable, tool, "--split", "heldout", "--count", "1", "--first", "3",
                    "--minutes", "1", "2", "--out", os.path.join(tmp, d)], check=True, capture_output=True)
    outs.append(open(os.path.join(tmp, d, "heldout-003.mp4"), "rb").read())
check(outs[0] == outs[1], "two writes of the same stream differ")
meta = json.load(open(os.path.join(tmp, "a", "heldout-003.json")))
w = World(HELDOUT_SEED_BASE + 3, meta["duration_s"])
check(meta["seed"] == HELDOUT_SEED_BASE + 3 and meta["id"] == "heldout-003" and meta["fps"] == FPS
      and meta["width"] == SIZE and meta["height"] == SIZE and 60 <= meta["duration_s"] <= 120, f"json {meta}")
check(meta["questions"] == w.questions(), "json questions != World.questions()")
mp4 = os.path.join(tmp, "a", "heldout-003.mp4")
probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                        "stream=codec_name,pix_fmt,width,height,r_frame_rate,nb_read_frames", "-of", "json", mp4],
                       check=True, capture_output=True, text=True)
st = json.loads(probe.stdout)["streams"][0]
check(st["codec_name"] == "h264" and st["pix_fmt"] == "yuv420p" and st["width"] == SIZE and st["r_frame_rate"] == "1/1",
      f"ffprobe {st}")
check(int(st["nb_read_frames"]) == w.duration_s, f"mp4 has {st['nb_read_frames']} frames, want {w.duration_s}")
keys = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pict_type",
                       "-of", "csv=p=0", mp4], check=True, capture_output=True, text=True).stdout.split()
check([i for i, k in enumerate(keys) if k.startswith("I")] == list(range(0, w.duration_s, 10)),
      "keyframes not every 10 s")
raw = subprocess.run(["ffmpeg", "-v", "error", "-i", mp4, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                     check=True, capture_output=True).stdout
dec = np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3)
ref = w.frames(0, w.duration_s)
err = np.abs(dec.astype(int) - ref.astype(int)).mean(axis=(1, 2, 3)) if dec.shape == ref.shape else None
check(err is not None and err.max() < 6.0,
      f"decoded frames differ from the render: shape {dec.shape}, per-frame mean |err| {err}")

print(f"vworld selfcheck: {'FAILED ' + str(failed) if failed else 'all passed'}")
sys.exit(1 if failed else 0)
EOF
