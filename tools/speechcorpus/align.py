"""Give each frontend token a time span from espeak-ng's phoneme events.

The rule (README.md, "Alignment"):
- The sounding tokens (phonemes, stress marks stripped) are aligned to the
  non-empty phoneme events by edit distance. An aligned token starts at its
  event's sample.
- A word boundary or punctuation token, and a sounding token no event
  matched, starts where the previous sounding event ends (the next phoneme
  event, which is a pause event "" when espeak-ng paused there): it takes the
  pause, or nothing.
- Every token ends where the next one starts; the last ends at the end of the
  audio, so a final punctuation token holds the trailing silence. An event no
  token matched stays inside the token before it.
- Leading silence (before the first phoneme event) is cut from the audio.
So the durations tile the audio exactly."""

STRESS = "\u02c8\u02cc"  # ˈ ˌ


def _strip(tok):
    return "".join(c for c in tok if c not in STRESS)


def _edit_align(a, b):
    """Pairs (i, j) of a minimum edit-distance alignment of a and b."""
    n, m = len(a), len(b)
    inf = float("inf")
    d = [[inf] * (m + 1) for _ in range(n + 1)]
    d[0] = list(range(m + 1))
    for i in range(1, n + 1):
        d[i][0] = i
        ai = a[i - 1]
        row, prev = d[i], d[i - 1]
        for j in range(1, m + 1):
            sub = 0 if ai == b[j - 1] else (0.6 if ai[:1] == b[j - 1][:1] else 1.0)
            row[j] = min(prev[j - 1] + sub, prev[j] + 1, row[j - 1] + 1)
    pairs = []
    i, j = n, m
    while i > 0 and j > 0:
        ai = a[i - 1]
        sub = 0 if ai == b[j - 1] else (0.6 if ai[:1] == b[j - 1][:1] else 1.0)
        if d[i][j] == d[i - 1][j - 1] + sub:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    pairs.reverse()
    return pairs, d[n][m]


def align(toks, events, nsamples, is_sound):
    """toks: frontend tokens; events: [(sample, name)] phoneme events ('' =
    pause); nsamples: audio length. Returns (trim, starts, ends, stats) with
    starts/ends in samples after cutting `trim` leading samples."""
    sound_ev = [k for k, (_, name) in enumerate(events) if name]
    sound_tok = [i for i, t in enumerate(toks) if is_sound(t)]
    if not sound_ev or not sound_tok:
        raise ValueError("no phonemes to align")
    pairs, cost = _edit_align([_strip(toks[i]) for i in sound_tok],
                              [events[k][1] for k in sound_ev])
    ev_of_tok = {sound_tok[i]: sound_ev[j] for i, j in pairs}
    exact = sum(1 for i, j in pairs if _strip(toks[sound_tok[i]]) == events[sound_ev[j]][1])

    def ev_end(k):
        return events[k + 1][0] if k + 1 < len(events) else nsamples

    trim = events[sound_ev[0]][0]
    starts = []
    last_ev = None  # the event of the previous aligned sounding token
    for i, t in enumerate(toks):
        if i in ev_of_tok:
            k = ev_of_tok[i]
            s = events[k][0]
            last_ev = k
        elif last_ev is None:
            s = trim
        else:
            s = ev_end(last_ev)
        if starts and s < starts[-1]:
            s = starts[-1]
        starts.append(min(max(s, trim), nsamples))
    starts[0] = trim
    ends = starts[1:] + [nsamples]
    starts = [s - trim for s in starts]
    ends = [e - trim for e in ends]
    stats = {"sound_tokens": len(sound_tok), "sound_events": len(sound_ev),
             "matched": len(pairs), "exact": exact, "cost": cost}
    return trim, starts, ends, stats
