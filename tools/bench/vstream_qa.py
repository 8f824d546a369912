#!/usr/bin/python3
"""Streaming-QA benchmark of the C runtime on held-out vworld streams (issue #7).

  vstream_qa.py --streams DIR --model DIR [--qa build/apps/vstream-qa]
                [--modes full,spatial,no-temporal-retrieved,no-abstract]
                [--limit N] [--out data/vstream-bench] [--ref auto|yes|no]

For each stream DIR/<id>.mp4 with its questions DIR/<id>.json
(tools/vworld/make_streams.py) and each memory mode, runs the C program once:

  vstream-qa --model M --json --no-status --memory MODE --ask T:Q ... <id>.mp4

Each --ask is about the stream at time T, and on a file vstream-qa answers it
from exactly the frames 0..T, so the answers do not depend on how fast this
machine encodes. An answer is right when the world's normalize_answer of it
equals that of the canonical answer (exact match). Answers are kept per
stream and mode under OUT/raw/<model key>/ and reused on a rerun with the
same model, program and options, so an interrupted run resumes.

With tools/vworld/ref_answer.py present (and --ref auto or yes), the PyTorch
reference answers the same questions with the full memory, and the table
gains the agreement rate of the C answers with it.

Prints the table on stdout (progress on stderr) and writes OUT/results.json
(the table) and OUT/answers.jsonl (every question with its answer per mode).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)

from tools.vworld.world import normalize_answer  # noqa: E402

MODES = ("full", "spatial", "no-temporal-retrieved", "no-abstract")
KINDS = ("current", "occurrence", "recall", "count")
REF = os.path.join(ROOT, "tools", "vworld", "ref_answer.py")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def file_key(paths):
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def model_files(model):
    return sorted(os.path.join(model, f) for f in os.listdir(model)
                  if os.path.isfile(os.path.join(model, f)))


def load_streams(d, limit):
    ids = sorted(f[:-5] for f in os.listdir(d)
                 if f.endswith(".json") and os.path.exists(os.path.join(d, f[:-5] + ".mp4")))
    if not ids:
        sys.exit(f"vstream_qa: no <id>.mp4 + <id>.json streams in {d}")
    out = []
    for sid in ids[:limit] if limit else ids:
        with open(os.path.join(d, sid + ".json")) as f:
            meta = json.load(f)
        qs = meta.get("questions")
        if not isinstance(qs, list) or not all(
                isinstance(q, dict) and {"t", "kind", "question", "answer"} <= q.keys() for q in qs):
            sys.exit(f"vstream_qa: {sid}.json: 'questions' must be a list of "
                     "{t, kind, question, answer}")
        out.append((sid, os.path.join(d, sid + ".mp4"), qs))
    return out


def qa_env():
    """One kernel thread unless FRT_THREADS says otherwise: the bundled model's
    matrices are so small that a second thread costs more than it gives
    (about 3x slower per stream here with two, on a loaded machine)."""
    env = dict(os.environ)
    env.setdefault("FRT_THREADS", "1")
    return env


def run_c(a, mp4, qs, mode, path):
    """vstream-qa on one stream: one JSON answer per question, in asking order."""
    if os.path.exists(path):
        with open(path) as f:
            got = json.load(f)
        if len(got) == len(qs):
            return got, True
    cmd = [a.qa, "--model", a.model, "--json", "--no-status", "--memory", mode,
           "--max-tokens", str(a.max_tokens)]
    if a.tokenizer:
        cmd += ["--tokenizer", a.tokenizer]
    for q in qs:
        cmd += ["--ask", f"{q['t']}:{q['question']}"]
    cmd.append(mp4)
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=qa_env())
    if p.returncode != 0:
        sys.exit(f"vstream_qa: {' '.join(cmd[:8])} ... exited {p.returncode}:\n{p.stderr[-2000:]}")
    by_id = {}
    for line in p.stdout.splitlines():
        if line.strip():
            r = json.loads(line)
            by_id[r["id"]] = r
    # vstream-qa asks in argument order: ids 1..n
    got = [by_id.get(i + 1) for i in range(len(qs))]
    missing = [i for i, r in enumerate(got) if r is None or r["status"] != "ok"]
    if missing:
        sys.exit(f"vstream_qa: {mp4} ({mode}): no good answer to question(s) {missing}")
    for q, r in zip(qs, got):
        if r["question"] != q["question"]:
            sys.exit(f"vstream_qa: {mp4}: answer {r['id']} is for {r['question']!r}, "
                     f"expected {q['question']!r}")
        if r["frames"] != int(q["t"]) + 1:  # 1 fps from 0: frames 0..t
            sys.exit(f"vstream_qa: {mp4}: the answer at {q['t']} s saw {r['frames']} frames, "
                     f"not {int(q['t']) + 1}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "w") as f:
        json.dump(got, f)
    os.replace(path + ".part", path)
    got[0]["_wall_s"] = time.time() - t0
    return got, False


def run_ref(a, sid, mp4, meta_json, qs, path):
    """tools/vworld/ref_answer.py (full memory) on one stream: answers in question order."""
    if os.path.exists(path):
        with open(path) as f:
            got = json.load(f)
        if len(got) == len(qs):
            return got
    work = path + ".d"
    os.makedirs(work, exist_ok=True)
    for src, ext in ((meta_json, ".json"), (mp4, ".mp4")):
        link = os.path.join(work, sid + ext)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(src), link)
    cmd = ["/usr/bin/python3", REF, "--model", a.model, "--streams", work, "--memory", "full",
           "--out", os.path.join(work, "answers.jsonl")]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"vstream_qa: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-2000:]}")
    pending = {}
    with open(os.path.join(work, "answers.jsonl")) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                pending.setdefault((int(r["t"]), r["question"]), []).append(r["answer"])
    got = []
    for q in qs:
        left = pending.get((int(q["t"]), q["question"]))
        if not left:
            sys.exit(f"vstream_qa: ref_answer.py gave no answer to {q['question']!r} at "
                     f"{q['t']} s of {sid}")
        got.append(left.pop(0))
    with open(path, "w") as f:
        json.dump(got, f)
    return got


def summarize(rows):
    """rows: (kind, correct, answering ms). Accuracy per kind and overall, in %."""
    out = {"n": len(rows)}
    out["overall"] = 100.0 * sum(c for _, c, _ in rows) / len(rows) if rows else None
    for k in KINDS:
        ks = [c for kind, c, _ in rows if kind == k]
        out[k] = 100.0 * sum(ks) / len(ks) if ks else None
        out["n_" + k] = len(ks)
    out["answer_ms"] = sum(ms for _, _, ms in rows) / len(rows) if rows else None
    return out


def fmt(v, w=8):
    return f"{'-':>{w}}" if v is None else f"{v:{w}.1f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", default=os.path.join(ROOT, "data", "vstream-heldout"))
    p.add_argument("--model", default=os.path.join(ROOT, "models", "vstream-tiny"))
    p.add_argument("--tokenizer", help="tokenizer for the model (default: in --model)")
    p.add_argument("--qa", default=os.path.join(ROOT, "build", "apps", "vstream-qa"))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--limit", type=int, default=0, help="first N streams only (0: all)")
    p.add_argument("--max-tokens", type=int, default=16,
                   help="answer tokens at most (16, as tools/vworld/ref_answer.py decodes)")
    p.add_argument("--out", default=os.path.join(ROOT, "data", "vstream-bench"))
    p.add_argument("--ref", choices=("auto", "yes", "no"), default="auto",
                   help="PyTorch agreement (auto: when tools/vworld/ref_answer.py exists)")
    a = p.parse_args(argv)
    modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        p.error(f"--modes: {bad or 'none'} not among {', '.join(MODES)}")
    if a.limit < 0 or a.max_tokens < 1:
        p.error("--limit must be >= 0 and --max-tokens >= 1")
    for what, path in (("--model", os.path.join(a.model, "config.json")), ("--qa", a.qa)):
        if not os.path.exists(path):
            sys.exit(f"vstream_qa: {what}: {path} not found")
    use_ref = a.ref == "yes" or (a.ref == "auto" and os.path.exists(REF) and not a.tokenizer)
    if a.ref == "yes" and not os.path.exists(REF):
        sys.exit(f"vstream_qa: --ref yes but {REF} does not exist")
    if a.ref == "yes" and a.tokenizer:
        sys.exit("vstream_qa: --ref yes needs the model's own tokenizer (no --tokenizer)")

    streams = load_streams(a.streams, a.limit)
    key_files = model_files(a.model) + [a.qa] + ([a.tokenizer] if a.tokenizer else [])
    key = file_key(key_files) + f"-t{a.max_tokens}"
    raw = os.path.join(a.out, "raw", key)
    n_q = sum(len(qs) for _, _, qs in streams)
    log(f"vstream_qa: {len(streams)} streams, {n_q} questions, modes {', '.join(modes)}; "
        f"model {a.model}; answers cached in {raw}")

    per_mode, answers, details = {}, {m: {} for m in modes}, []
    for m in modes:
        rows = []
        t0 = time.time()
        for i, (sid, mp4, qs) in enumerate(streams, 1):
            got, cached = run_c(a, mp4, qs, m, os.path.join(raw, m, sid + ".json"))
            answers[m][sid] = got
            ok = 0
            for q, r in zip(qs, got):
                right = normalize_answer(r["answer"]) == normalize_answer(q["answer"])
                ok += right
                lat = r["latency_ms"]
                rows.append((q["kind"], right, lat["total"] - lat["queue"]))
                details.append({"mode": m, "stream": sid, "t": q["t"], "kind": q["kind"],
                                "question": q["question"], "expected": q["answer"],
                                "answer": r["answer"], "right": right,
                                "frames": r["frames"], "memory_tokens": r["memory_tokens"]})
            log(f"  [{m} {i}/{len(streams)}] {sid}: {ok}/{len(qs)} right"
                + (" (cached)" if cached else f", {got[0].get('_wall_s', 0):.1f} s"))
        per_mode[m] = summarize(rows)
        log(f"vstream_qa: {m}: {per_mode[m]['overall']:.1f}% of {len(rows)} "
            f"({time.time() - t0:.0f} s)")

    agreement = None
    if use_ref and "full" in modes:
        same = total = 0
        for i, (sid, mp4, qs) in enumerate(streams, 1):
            os.makedirs(os.path.join(raw, "ref"), exist_ok=True)
            ref = run_ref(a, sid, mp4, os.path.join(a.streams, sid + ".json"), qs,
                          os.path.join(raw, "ref", sid + ".json"))
            s = sum(normalize_answer(r) == normalize_answer(c["answer"])
                    for r, c in zip(ref, answers["full"][sid]))
            same += s
            total += len(qs)
            log(f"  [ref {i}/{len(streams)}] {sid}: {s}/{len(qs)} agree")
        agreement = {"same": same, "questions": total, "rate": 100.0 * same / total}

    header = (f"{'memory':<22} {'overall':>8} {'current':>8} {'occur.':>8} {'recall':>8} "
              f"{'count':>8} {'n':>5} {'answer ms':>10}")
    print(header)
    print("-" * len(header))
    for m in modes:
        r = per_mode[m]
        print(f"{m:<22} {fmt(r['overall'])} {fmt(r['current'])} {fmt(r['occurrence'])} "
              f"{fmt(r['recall'])} {fmt(r['count'])} {r['n']:>5} {fmt(r['answer_ms'], 10)}")
    print("(exact-match accuracy in %; answer ms: mean time from the start of answering "
          "to the final answer)")
    if agreement:
        print(f"C vs PyTorch reference (full memory): {agreement['same']}/"
              f"{agreement['questions']} answers agree ({agreement['rate']:.1f}%)")

    result = {"bench": "vstream-qa", "model": os.path.abspath(a.model),
              "streams": [sid for sid, _, _ in streams], "questions": n_q,
              "max_tokens": a.max_tokens, "modes": per_mode, "ref_agreement": agreement,
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, "answers.jsonl"), "w") as f:
        for d in details:
            f.write(json.dumps(d) + "\n")
    log(f"vstream_qa: wrote {os.path.join(a.out, 'results.json')} and answers.jsonl (every answer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
