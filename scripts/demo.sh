#!/usr/bin/env bash
# The main job: a live RTSP camera feed of the synthetic world, questions
# asked while it flows, answers with their stream times checked against the
# world's own answers, and spoken into a WAV.
#
# 1. tools/vworld/make_streams.py renders a 3-minute stream (seed DEMO_SEED)
#    with its timestamped questions into demo-out/.
# 2. A local RTSP relay (rtsp-server-perl, loopback only) gets the stream
#    from an ffmpeg publisher at its own pace, as a camera would send it.
# 3. vstream-qa watches rtsp://127.0.0.1:PORT/world with the bundled model
#    (models/vstream-tiny) and asks about 5 of the stream's questions, one of
#    each kind, at their times. Over RTSP the reader joins a moment after
#    the publisher starts, so the questions picked are those whose answer
#    does not change from 3 s before to 12 s after their time.
# 4. Each answer is printed with its stream time, the expected answer and
#    whether they match; flashspeech speaks the answers into
#    demo-out/answers.wav.
# The relay and the publisher are stopped on exit, Ctrl-C included.
#
# Environment: BUILD (build directory), DEMO_OUT (output directory),
# DEMO_SEED (world seed, default 59), DEMO_MINUTES (stream length, 3),
# DEMO_MODEL (vstream model directory, default models/vstream-tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD:-build}
qa=$build/apps/vstream-qa
tts=$build/apps/flashspeech
out=${DEMO_OUT:-$root/demo-out}
seed=${DEMO_SEED:-59}
minutes=${DEMO_MINUTES:-3}
py=/usr/bin/python3

for p in "$qa" "$tts"; do
  test -x "$p" || { echo "demo: $p is not built (make build)"; exit 1; }
done
for c in ffmpeg perl; do
  command -v "$c" >/dev/null || { echo "demo: $c not found (make deps)"; exit 1; }
done

trained=1 vmodel=${DEMO_MODEL:-models/vstream-tiny} tok=""
if [ ! -f "$vmodel/config.json" ]; then
  trained=0
  echo "demo: $vmodel (the trained vstream model) is not there yet;"
  echo "demo: running the pipeline on the random-weight test checkpoint instead, with short"
  echo "demo: generic questions (its context is too small for the world's): the answers are noise."
  vmodel=tests/data/models/vstream-tiny
  tok=tests/data/tokenizer/ws.model
fi
smodel=models/flashspeech-tiny
if [ ! -f "$smodel/config.json" ]; then
  echo "demo: models/flashspeech-tiny (the trained speech model) is not bundled yet;"
  echo "demo: using the random-weight test checkpoint, so the speech is noise of the right length."
  smodel=tests/data/speech/flashspeech-tiny
fi

mkdir -p "$out"
tmp=$out # logs of the relay and the publisher
. tests/lib/rtsp.sh
reader=
cleanup() {
  for p in $reader $rtsp_pub $rtsp_server; do kill -INT "$p" 2>/dev/null || true; done
  for p in $reader $rtsp_pub $rtsp_server; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM
: >"$out/server.log"; : >"$out/publisher.log"

echo "demo: rendering a ${minutes}-minute world stream (seed $seed) into $out/"
"$py" tools/vworld/make_streams.py --seed "$seed" --minutes "$minutes" --id world --out "$out" \
  >"$out/make_streams.log" || { cat "$out/make_streams.log"; exit 1; }

# the scripted questions: TIME<TAB>KIND<TAB>QUESTION<TAB>ANSWER, by time
"$py" - "$out/world.json" "$trained" >"$out/questions.tsv" <<'PY'
import json, sys
sys.path.insert(0, ".")
from tools.vworld.world import World
meta = json.load(open(sys.argv[1]))
trained = sys.argv[2] == "1"
w = World(meta["seed"], meta["duration_s"])
def state(t):
    return (sorted((o["shape"], o["colour"], o["size"]) for o in w.objects_at(t)), w.background_at(t))
def stable(t, before=3, after=12):
    if t - before < 0 or t + after >= w.duration_s - 5:
        return False
    s = state(t)
    return all(state(u) == s for u in range(t - before, t + after + 1))
qs = [q for q in meta["questions"] if stable(q["t"])] or meta["questions"][:5]
picked = []
for kind in ("current", "occurrence", "recall", "count"):  # one of each kind first
    for q in qs:
        if q["kind"] == kind and q not in picked:
            picked.append(q)
            break
for q in qs:  # then the earliest others, up to 5
    if len(picked) >= 5:
        break
    if q not in picked:
        picked.append(q)
for q in sorted(picked, key=lambda q: q["t"]):
    text = q["question"] if trained else "What?"
    print(f"{q['t']}\t{q['kind']}\t{text}\t{q['answer'] if trained else '-'}")
PY
asks=()
while IFS=$'\t' read -r t _ q _; do asks+=(--ask "$t:$q"); done <"$out/questions.tsv"
[ ${#asks[@]} -gt 0 ] || { echo "demo: the stream has no questions"; exit 1; }
duration=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["duration_s"])' "$out/world.json")

rtsp_ports
rtsp_start_server $((duration + 60))
# the file at its own pace, repeated at 10 fps with a keyframe a second so a
# reader can start decoding at once
rtsp_publish world $((duration + 30)) "movie=$out/world.mp4,fps=10"
sleep 1.5
kill -0 "$rtsp_pub" 2>/dev/null || { echo "demo: the publisher failed:"; cat "$out/publisher.log"; exit 1; }

url="rtsp://127.0.0.1:$rtsp_cport/world"
echo "demo: vstream-qa watching $url (model $vmodel); $((${#asks[@]} / 2)) questions over $duration s"
echo "demo: (the stream plays in real time: answers come as the stream reaches each question)"
args=(--model "$vmodel" --json --no-status --max-tokens 16 --rtsp-transport udp --timeout 10)
[ -n "$tok" ] && args+=(--tokenizer "$tok")
"$qa" "${args[@]}" "${asks[@]}" "$url" >"$out/answers.jsonl" 2>"$out/vstream-qa.log" &
reader=$!
status=0
wait "$reader" || status=$?
reader=
[ $status -eq 0 ] || { echo "demo: vstream-qa failed ($status):"; tail -n 20 "$out/vstream-qa.log"; exit 1; }

echo
"$py" - "$out/answers.jsonl" "$out/questions.tsv" "$out/answers.txt" "$trained" <<'PY'
import json, sys
sys.path.insert(0, ".")
from tools.vworld.world import normalize_answer
answers = {}
for line in open(sys.argv[1]):
    if line.strip():
        a = json.loads(line)
        answers[a["id"]] = a
qs = [l.rstrip("\n").split("\t") for l in open(sys.argv[2]) if l.strip()]
trained = sys.argv[4] == "1"
right = 0
print(f"{'asked at':>8} {'stream':>8}  {'kind':<10} question -> answer (expected)")
with open(sys.argv[3], "w") as f:
    for i, (t, kind, q, want) in enumerate(qs, 1):  # vstream-qa numbers them in asking order
        a = answers.get(i)
        if a is None:
            print(f"{t:>7}s {'-':>8}  {kind:<10} {q} -> (no answer)")
            continue
        text = a["answer"].strip()
        ok = trained and normalize_answer(text) == normalize_answer(want)
        right += ok
        mark = ("right" if ok else "WRONG") if trained else "untrained"
        print(f"{t:>7}s {a['stream_time']:7.1f}s  {kind:<10} {q} -> {text!r} "
              f"(expected {want!r}: {mark}; {a['latency_ms']['total']:.0f} ms)")
        f.write(f"At {a['stream_time']:.0f} seconds: {q} {text}.\n")
if trained:
    print(f"\ndemo: {right} of {len(qs)} answers match the world's")
PY

echo
"$tts" --model "$smodel" -f "$out/answers.txt" -o "$out/answers.wav" -q
echo "demo: answers spoken into $out/answers.wav ($(soxi -D "$out/answers.wav" 2>/dev/null || echo '?') s)"
echo "demo: logs in $out/"
