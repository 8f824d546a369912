"""A seeded synthetic streaming world with timestamped questions (issue #7).

A stream is a sequence of scenes at 1 frame per second. Each scene has a
background (one named colour, drawn solid, as a gradient or as stripes of two
shades of it) and 1 to 3 objects (shape, colour, size) that appear, drift a
few pixels per second inside their own horizontal band, and disappear.
Everything, frames and questions, follows from the seed alone.

See tools/vworld/README.md for the design choices (scene counts, question
kinds and their validity rules, answer vocabulary).
"""

import re
import string

import numpy as np

SIZE = 128
FPS = 1
SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = ("red", "green", "blue", "yellow", "white")
SIZES = ("small", "large")
TRAIN_SEED_MAX = 1_000_000
HELDOUT_SEED_BASE = 1_000_000

# Object colours are saturated and bright; background colours are darker or
# greyish so that no background is ever mistaken for an object colour.
COLOUR_RGB = {
    "red": (230, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 90, 255),
    "yellow": (245, 220, 30),
    "white": (250, 250, 250),
}
BACKGROUNDS = ("black", "grey", "purple", "brown", "teal", "navy")
BACKGROUND_RGB = {
    "black": (12, 12, 12),
    "grey": (105, 105, 105),
    "purple": (105, 35, 130),
    "brown": (115, 70, 25),
    "teal": (0, 105, 110),
    "navy": (15, 25, 85),
}
PATTERNS = ("solid", "gradient", "stripes")

RADIUS = {"small": 9, "large": 17}
BANDS = 3  # one object per band, so objects never overlap
MEMORY_GAP_S = 120  # occurrence and recall look at least this far back
STABLE_S = 3  # current questions need this many seconds without change

MIN_DURATION_S = 10
MAX_DURATION_S = 7200

# Several paraphrases per question type; {shape}, {colour} are filled in.
TEMPLATES = {
    "cur_shape": (
        "What shape is on the screen?",
        "Which shape do you see now?",
        "What shape is shown right now?",
        "What is the shape on the screen now?",
    ),
    "cur_colour_of": (
        "What colour is the {shape}?",
        "Which colour is the {shape} on the screen?",
        "What is the colour of the {shape} right now?",
    ),
    "cur_shape_of": (
        "What shape is the {colour} object?",
        "Which shape is {colour} right now?",
        "What is the shape of the {colour} object on the screen?",
    ),
    "cur_size_of": (
        "Is the {shape} small or large?",
        "What size is the {shape}?",
        "How big is the {shape} on the screen, small or large?",
    ),
    "cur_count": (
        "How many objects are on the screen?",
        "How many objects do you see now?",
        "How many objects are shown right now?",
    ),
    "cur_background": (
        "What colour is the background?",
        "Which colour is the background now?",
        "What is the background colour right now?",
    ),
    "occ": (
        "Did you see a {colour} {shape}?",
        "Have you seen a {colour} {shape}?",
        "Was there a {colour} {shape} earlier?",
        "Did a {colour} {shape} appear before?",
    ),
    "rec_colour_of": (
        "What colour was the {shape}?",
        "Which colour did the {shape} have?",
        "Earlier there was a {shape}. What colour was it?",
    ),
    "rec_shape_of": (
        "What shape was the {colour} object?",
        "Which shape did the {colour} object have?",
        "Earlier there was a {colour} object. What shape was it?",
    ),
    "cnt_shapes": (
        "How many different shapes have you seen?",
        "How many kinds of shapes have appeared so far?",
        "Count the different shapes you have seen so far.",
    ),
    "cnt_colours": (
        "How many different object colours have you seen?",
        "How many colours of objects have appeared so far?",
        "Count the different object colours you have seen so far.",
    ),
    "cnt_backgrounds": (
        "How many different background colours have you seen?",
        "How many background colours have appeared so far?",
        "Count the different background colours you have seen so far.",
    ),
    "lst_colours": (
        "Which colours have you seen?",
        "Which object colours have appeared so far?",
        "List the colours of the objects you have seen.",
    ),
}
KINDS = ("current", "occurrence", "recall", "count")
KIND_OF = {k: ("current" if k.startswith("cur_") else "occurrence" if k == "occ"
               else "recall" if k.startswith("rec_") else "count")
           for k in TEMPLATES}

_PUNCT = re.compile("[" + re.escape(string.punctuation) + "]")


def normalize_answer(s):
    """Canonical form for exact-match scoring of a free-text answer."""
    s = _PUNCT.sub(" ", str(s).lower())
    words = s.split()
    if words and words[0] in ("a", "an", "the"):
        words = words[1:]
    return " ".join(words)


def colour_list(colours):
    """Colours in the fixed COLOURS order, joined by ' and '."""
    return " and ".join(c for c in COLOURS if c in colours)


def _star_mask(yy, xx, r):
    # Regular 5-point star, one point up; inner radius 0.45 r. In polar form
    # the boundary within a 72-degree sector is the edge from the outer to
    # the inner vertex, folded around the sector's centre line.
    theta = np.arctan2(xx, -yy)  # 0 at the top, clockwise
    rho = np.hypot(xx, yy)
    sector = np.deg2rad(72.0)
    s = np.mod(theta, sector)
    s = np.minimum(s, sector - s)
    ri = 0.45 * r
    half = np.deg2rad(36.0)
    px, py = r, 0.0
    qx, qy = ri * np.cos(half), ri * np.sin(half)
    nx, ny = qy - py, px - qx  # normal of the edge P-Q
    c = nx * px + ny * py
    edge = c / (nx * np.cos(s) + ny * np.sin(s))
    return rho <= edge


def _shape_mask(shape, r):
    """Boolean mask of side 2r+1 centred on the object position."""
    ax = np.arange(-r, r + 1, dtype=np.float64)
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    if shape == "circle":
        return xx * xx + yy * yy <= r * r + 0.5
    if shape == "square":
        h = 0.82 * r
        return (np.abs(xx) <= h) & (np.abs(yy) <= h)
    if shape == "triangle":
        # Apex up at (0,-r), base at y = 0.8 r, half-width r.
        top, base, hw = -r, 0.8 * r, float(r)
        inside = yy <= base
        frac = (yy - top) / (base - top)
        return inside & (yy >= top) & (np.abs(xx) <= frac * hw)
    if shape == "star":
        return _star_mask(yy, xx, float(r))
    if shape == "cross":
        w = 0.32 * r
        return ((np.abs(xx) <= w) & (np.abs(yy) <= r)) | ((np.abs(yy) <= w) & (np.abs(xx) <= r))
    raise ValueError(f"unknown shape {shape!r}")


_MASKS = {(s, z): _shape_mask(s, RADIUS[z]) for s in SHAPES for z in SIZES}


def _background_image(colour, pattern, vertical):
    base = np.array(BACKGROUND_RGB[colour], dtype=np.float64)
    img = np.empty((SIZE, SIZE, 3), dtype=np.float64)
    if pattern == "solid":
        img[:] = base
    elif pattern == "gradient":
        ramp = np.linspace(0.65, 1.25, SIZE)
        img[:] = (ramp[:, None, None] if vertical else ramp[None, :, None]) * base
    else:
        band = (np.arange(SIZE) // 8) % 2
        shade = np.where(band == 0, 1.0, 0.72)
        img[:] = (shade[:, None, None] if vertical else shade[None, :, None]) * base
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _reflect(p, lo, hi):
    # Position after bouncing between lo and hi (a triangle wave).
    span = hi - lo
    if span <= 0:
        return lo
    q = np.mod(p - lo, 2.0 * span)
    return lo + (2.0 * span - q if q > span else q)


class World:
    """One stream: scenes, objects and questions, all drawn from the seed."""

    def __init__(self, seed, duration_s=None):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        rng = np.random.Generator(np.random.PCG64(self.seed))
        if duration_s is None:
            duration_s = int(rng.integers(300, 1801))
        if isinstance(duration_s, bool) or not isinstance(duration_s, (int, np.integer)):
            raise ValueError(f"duration_s must be an integer, got {duration_s!r}")
        if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration_s must be in [{MIN_DURATION_S}, {MAX_DURATION_S}], got {duration_s}")
        self.duration_s = int(duration_s)
        self._build(rng)
        self._qrng_seed = [self.seed, 0x51]
        self._questions = None

    # -- generation --------------------------------------------------------

    def _scene_bounds(self, rng):
        d = self.duration_s
        if d >= 300:
            # ~1 scene per 110 s: 6 scenes at 5 min, 16 at 30 min, always well
            # under the 25 temporal clusters of the STAR memory.
            n = int(np.clip(round(d / 110) + rng.integers(-1, 2), 6, 16))
        else:
            n = int(np.clip(round(d / 40), 1, 6))
        min_len = max(5, d // (2 * n))
        extra = d - n * min_len
        w = rng.dirichlet(np.full(n, 4.0))
        lens = min_len + np.floor(w * extra).astype(int)
        lens[rng.integers(n)] += d - int(lens.sum())
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        return [(int(s), int(s + l)) for s, l in zip(starts, lens)]

    def _build(self, rng):
        bounds = self._scene_bounds(rng)
        n_scenes = len(bounds)
        # Each stream uses 3 to 5 shapes, each with a usual colour; 1 or 2 of
        # them are rare (shown once), which is what recall questions need.
        k = int(rng.integers(3, 6))
        shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))[:k]]
        usual = dict(zip(SHAPES, (COLOURS[i] for i in rng.permutation(len(COLOURS)))))
        n_rare = int(min(rng.integers(1, 3), k - 1, max(0, n_scenes - 1)))
        rare = shapes[:n_rare]
        common = shapes[n_rare:]
        rare_scene = {s: int(rng.integers(n_scenes)) for s in rare}

        self.scenes = []
        self.objects = []
        prev_bg = None
        for si, (s0, s1) in enumerate(bounds):
            bg = str(rng.choice([b for b in BACKGROUNDS if b != prev_bg]))
            prev_bg = bg
            pattern = str(rng.choice(PATTERNS))
            vertical = bool(rng.integers(2))
            length = s1 - s0
            forced = [s for s in rare if rare_scene[s] == si]
            n_obj = max(len(forced), int(rng.integers(1, BANDS + 1)))
            pool = [s for s in common if s not in forced]
            picked = forced + [str(x) for x in rng.permutation(pool)[: n_obj - len(forced)]]
            bands = rng.permutation(BANDS)
            used_colours = set()
            objs = []
            for oi, shape in enumerate(picked):
                colour = usual[shape]
                if colour in used_colours or (shape in common and rng.random() < 0.12):
                    colour = str(rng.choice([c for c in COLOURS if c not in used_colours and c != usual[shape]]))
                used_colours.add(colour)
                size = SIZES[int(rng.integers(2))]
                if oi == 0 or rng.random() < 0.5:
                    appear = s0
                else:
                    appear = s0 + int(rng.integers(0, max(1, length // 2)))
                if rng.random() < 0.55 or length < 8:
                    disappear = s1
                else:
                    lo = appear + max(1, (s1 - appear) // 3)
                    disappear = int(rng.integers(lo, s1)) if lo < s1 else s1
                r = RADIUS[size]
                band = int(bands[oi])
                top = band * SIZE / BANDS
                bot = (band + 1) * SIZE / BANDS
                ylo, yhi = top + r + 1, bot - r - 2
                xlo, xhi = r + 1.0, SIZE - r - 2.0
                speed = rng.uniform(1.0, 3.5)
                objs.append({
                    "shape": shape, "colour": colour, "size": size,
                    "appear": appear, "disappear": disappear, "scene": si,
                    "x0": rng.uniform(xlo, xhi), "y0": rng.uniform(ylo, yhi),
                    "vx": speed * (1 if rng.random() < 0.5 else -1),
                    "vy": rng.uniform(-0.3, 0.3),
                    "xlim": (xlo, xhi), "ylim": (ylo, yhi),
                })
            self.scenes.append({"start": s0, "end": s1, "background": bg,
                                "pattern": pattern, "vertical": vertical,
                                "objects": objs})
            self.objects.extend(objs)
        self._scene_starts = np.array([s["start"] for s in self.scenes])
        self._bg_cache = {}

    # -- frames ------------------------------------------------------------

    def _check_frame(self, i):
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise ValueError(f"frame index must be an integer, got {i!r}")
        if not 0 <= i < self.duration_s:
            raise ValueError(f"frame {i} outside [0, {self.duration_s})")
        return int(i)

    def _scene_index(self, i):
        return int(np.searchsorted(self._scene_starts, i, side="right")) - 1

    def _position(self, o, i):
        t = i - o["appear"]
        x = _reflect(o["x0"] + o["vx"] * t, *o["xlim"])
        y = _reflect(o["y0"] + o["vy"] * t, *o["ylim"])
        return int(np.floor(x + 0.5)), int(np.floor(y + 0.5))

    def objects_at(self, i):
        i = self._check_frame(i)
        out = []
        for o in self.scenes[self._scene_index(i)]["objects"]:
            if o["appear"] <= i < o["disappear"]:
                x, y = self._position(o, i)
                out.append({"shape": o["shape"], "colour": o["colour"],
                            "size": o["size"], "x": x, "y": y})
        return out

    def background_at(self, i):
        i = self._check_frame(i)
        return self.scenes[self._scene_index(i)]["background"]

    def frame(self, i):
        i = self._check_frame(i)
        si = self._scene_index(i)
        sc = self.scenes[si]
        bg = self._bg_cache.get(si)
        if bg is None:
            bg = _background_image(sc["background"], sc["pattern"], sc["vertical"])
            self._bg_cache[si] = bg
        img = bg.copy()
        for ob in self.objects_at(i):
            r = RADIUS[ob["size"]]
            m = _MASKS[(ob["shape"], ob["size"])]
            x, y = ob["x"], ob["y"]
            region = img[y - r:y + r + 1, x - r:x + r + 1]
            region[m] = COLOUR_RGB[ob["colour"]]
        return img

    def frames(self, i0, i1):
        ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (i0, i1))
        if not ints or not 0 <= i0 <= i1 <= self.duration_s:
            raise ValueError(f"frame range [{i0!r}, {i1!r}) outside [0, {self.duration_s}]")
        out = np.empty((int(i1) - int(i0), SIZE, SIZE, 3), dtype=np.uint8)
        for k in range(out.shape[0]):
            out[k] = self.frame(int(i0) + k)
        return out

    # -- questions ---------------------------------------------------------

    def _stable(self, t):
        if t < STABLE_S:
            return False
        lo = t - STABLE_S
        if self._scene_index(lo) != self._scene_index(t):
            return False
        return not any(lo < o["appear"] <= t or lo < o["disappear"] <= t for o in self.objects)

    def _candidates(self, t):
        """All valid (template, params, answer) at time t, per kind."""
        cand = {k: [] for k in KINDS}
        if self._stable(t):
            on = self.objects_at(t)
            cur = cand["current"]
            if len(on) == 1:
                cur.append(("cur_shape", {}, on[0]["shape"]))
            for o in on:
                cur.append(("cur_colour_of", {"shape": o["shape"]}, o["colour"]))
                cur.append(("cur_shape_of", {"colour": o["colour"]}, o["shape"]))
                cur.append(("cur_size_of", {"shape": o["shape"]}, o["size"]))
            cur.append(("cur_count", {}, str(len(on))))
            cur.append(("cur_background", {}, self.background_at(t)))

        seen = [o for o in self.objects if o["appear"] <= t]  # shown at frame <= t
        if t >= MEMORY_GAP_S:
            cut = t - MEMORY_GAP_S  # frames <= cut are "at least 2 minutes back"
            recent = [o for o in seen if o["disappear"] > cut + 1]  # visible in (cut, t]
            old = [o for o in seen if o["appear"] <= cut]
            recent_combos = {(o["shape"], o["colour"]) for o in recent}
            seen_combos = {(o["shape"], o["colour"]) for o in seen}
            yes = sorted({(o["shape"], o["colour"]) for o in old} - recent_combos)
            no = [(s, c) for s in SHAPES for c in COLOURS if (s, c) not in seen_combos]
            cand["occurrence"] = ([("occ", {"shape": s, "colour": c}, "yes") for s, c in yes]
                                  + [("occ", {"shape": s, "colour": c}, "no") for s, c in no])
            rec = cand["recall"]
            for shape in SHAPES:
                objs = [o for o in seen if o["shape"] == shape]
                colours = {o["colour"] for o in objs}
                if objs and len(colours) == 1 and all(o["disappear"] <= cut + 1 for o in objs):
                    rec.append(("rec_colour_of", {"shape": shape}, colours.pop()))
            for colour in COLOURS:
                objs = [o for o in seen if o["colour"] == colour]
                shapes = {o["shape"] for o in objs}
                if objs and len(shapes) == 1 and all(o["disappear"] <= cut + 1 for o in objs):
                    rec.append(("rec_shape_of", {"colour": colour}, shapes.pop()))

        if seen:
            cnt = cand["count"]
            cnt.append(("cnt_shapes", {}, str(len({o["shape"] for o in seen}))))
            cnt.append(("cnt_colours", {}, str(len({o["colour"] for o in seen}))))
            cnt.append(("lst_colours", {}, colour_list({o["colour"] for o in seen})))
        bgs = {self.scenes[j]["background"] for j in range(self._scene_index(t) + 1)}
        cand["count"].append(("cnt_backgrounds", {}, str(len(bgs))))
        return cand

    @staticmethod
    def _render(t, cand, rng):
        key, params, answer = cand
        tmpl = TEMPLATES[key][int(rng.integers(len(TEMPLATES[key])))]
        return {"t": int(t), "kind": KIND_OF[key], "question": tmpl.format(**params), "answer": answer}

    @staticmethod
    def _pick_occurrence(pool, rng, want_yes):
        yes = [c for c in pool if c[2] == "yes"]
        no = [c for c in pool if c[2] == "no"]
        side = yes if (want_yes and yes) or not no else no
        return side[int(rng.integers(len(side)))]

    def questions(self):
        """8 to 16 questions spread over the stream, mixed kinds, sorted by t."""
        if self._questions is not None:
            return [dict(q) for q in self._questions]
        rng = np.random.Generator(np.random.PCG64(self._qrng_seed))
        d = self.duration_s
        n = int(rng.integers(8, 17))
        edges = np.linspace(1, d, n + 1)
        counts = {k: 0 for k in KINDS}
        yes_no = [0, 0]
        out = []
        for b in range(n):
            lo, hi = int(edges[b]), max(int(edges[b]) + 1, int(edges[b + 1]))
            for _ in range(12):
                t = int(rng.integers(lo, hi))
                if not 1 <= t < d:
                    continue
                cand = self._candidates(t)
                kinds = [k for k in KINDS if cand[k]]
                if not kinds:
                    continue
                low = min(counts[k] for k in kinds)
                kinds = [k for k in kinds if counts[k] == low]
                kind = kinds[int(rng.integers(len(kinds)))]
                if kind == "occurrence":
                    c = self._pick_occurrence(cand[kind], rng, yes_no[0] <= yes_no[1])
                    yes_no[0 if c[2] == "yes" else 1] += 1
                else:
                    c = cand[kind][int(rng.integers(len(cand[kind])))]
                out.append(self._render(t, c, rng))
                counts[kind] += 1
                break
        out.sort(key=lambda q: q["t"])
        self._questions = out
        return [dict(q) for q in out]

    def sample_questions(self, t, rng, n):
        """Up to n distinct valid questions at time t, kinds drawn evenly."""
        t = self._check_frame(t)
        cand = self._candidates(t)
        out = []
        asked = set()
        for _ in range(4 * n):
            if len(out) >= n:
                break
            kinds = [k for k in KINDS if cand[k]]
            if not kinds:
                break
            kind = kinds[int(rng.integers(len(kinds)))]
            if kind == "occurrence":
                c = self._pick_occurrence(cand[kind], rng, rng.random() < 0.5)
            else:
                c = cand[kind][int(rng.integers(len(cand[kind])))]
            cand[kind].remove(c)
            key = (c[0], tuple(sorted(c[1].items())))
            if key in asked:
                continue
            asked.add(key)
            out.append(self._render(t, c, rng))
        return out
