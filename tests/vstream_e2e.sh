#!/usr/bin/env bash
# vstream-qa end to end: ffmpeg publishes testsrc to a local rtsp-server-perl
# (UDP transport: the server refuses TCP readers), vstream-qa answers
# scripted questions with --json on the tiny model; the publisher is killed
# and restarted mid-stream, and the answers must go on (reconnect) with the
# stream clock jumping, never resetting. Then the error paths: truncated and
# garbage files, an unreachable server, a bad URL, a directory that is not a
# model. Everything binds 127.0.0.1 and is killed on exit; bounded to ~1 min.
# Usage: vstream_e2e.sh BUILD_DIR SOURCE_DIR. Exit 77 (skip) without ffmpeg
# or rtsp-server-perl.
set -euo pipefail
build=$1
src=$2
command -v ffmpeg >/dev/null && command -v rtsp-server-perl >/dev/null || {
  echo "skip: needs ffmpeg and rtsp-server-perl"; exit 77; }
qa=$build/apps/vstream-qa
test -x "$qa" || { echo "skip: $qa not built"; exit 77; }
model=$src/tests/data/models/vstream-tiny
tok=$src/tests/data/tokenizer/ws.model # the tiny Llama's 1000 ids hold its 600 pieces
export FRT_LOG=${FRT_LOG:-warn}

tmp=$(mktemp -d /tmp/frt-vstream-e2e-XXXXXX)
reader=
cleanup() {
  for p in $reader $rtsp_pub $rtsp_server; do kill "$p" 2>/dev/null || true; done
  for p in $reader $rtsp_pub $rtsp_server; do wait "$p" 2>/dev/null || true; done
  [ -n "${FRT_KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "vstream_e2e: FAILED: $*"
  for f in server.log publisher.log qa.err qa.json; do
    test -e "$tmp/$f" && { echo "--- $f"; tail -n 30 "$tmp/$f"; }
  done
  exit 1
}

. "$src/tests/lib/rtsp.sh"
rtsp_ports
rtsp_start_server 110
rtsp_publish live 90
sleep 2

# scripted questions: two before the outage, two after it
timeout 100 "$qa" --model "$model" --tokenizer "$tok" --json --status --max-tokens 16 \
  --rtsp-transport udp --timeout 5 --reconnect-max 1 \
  --ask "1:What is on the screen?" --ask "3:What colours do you see?" \
  --ask "9:Did the picture change?" --ask "12:What happened at the end?" \
  "rtsp://127.0.0.1:$rtsp_cport/live" >"$tmp/qa.json" 2>"$tmp/qa.err" &
reader=$!

# once two answers are in, take the publisher away for a while
for _ in $(seq 300); do
  [ "$(wc -l <"$tmp/qa.json")" -ge 2 ] && break
  kill -0 "$reader" 2>/dev/null || break
  sleep 0.1
done
[ "$(wc -l <"$tmp/qa.json")" -ge 2 ] || fail "no answers before the outage"
RTSP_OUTAGE=3 rtsp_restart_publisher live 90 || fail "could not restart the publisher"

status=0
wait "$reader" || status=$?
reader=
[ $status -eq 0 ] || fail "vstream-qa exited $status"
kill "$rtsp_pub" 2>/dev/null || true; wait "$rtsp_pub" 2>/dev/null || true; rtsp_pub=

/usr/bin/python3 - "$tmp/qa.json" "$model/config.json" <<'EOF' || fail "answers"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
cfg = json.load(open(sys.argv[2]))
asked = {"What is on the screen?": 1, "What colours do you see?": 3,
         "Did the picture change?": 9, "What happened at the end?": 12}
assert len(lines) == 4, "expected 4 answers, got %d" % len(lines)
p_spa, p_tem, p_abs = cfg["compress_size"], cfg["compress_long_memory_size"], cfg["compress_Turing_memory_size"]
n_spa, n_tem, n_abs = cfg["video_current_memory_length"], cfg["video_long_memory_length"], cfg["video_Turing_memory_length"]
def tokens(f):  # vstream/memory.h
    s = min(f, n_spa); l = f - s; r = min(3, min(l, n_tem))
    return min(l, n_abs) * p_abs ** 2 + min(l, n_tem) * p_tem ** 2 + r * p_spa ** 2 + s * p_spa ** 2
prev_t, prev_f = -1.0, 0
for line in lines:
    a = json.loads(line)
    for k in ("id", "question", "answer", "status", "finish", "stream_time", "frames",
              "memory_tokens", "prompt_tokens", "answer_tokens", "latency_ms"):
        assert k in a, "missing %s in %s" % (k, line)
    for k in ("queue", "snapshot", "prefill", "first_token", "total"):
        assert a["latency_ms"][k] >= 0, line
    assert a["status"] == "ok", line
    assert a["finish"] in ("stop", "length"), line
    assert isinstance(a["answer"], str)
    assert a["stream_time"] >= asked[a["question"]], line
    assert a["stream_time"] >= prev_t and a["frames"] >= prev_f, line
    assert a["frames"] >= 1 and a["memory_tokens"] == tokens(a["frames"]), line
    assert a["prompt_tokens"] > a["memory_tokens"] and a["answer_tokens"] <= 16, line
    assert a["latency_ms"]["total"] >= a["latency_ms"]["queue"], line
    prev_t, prev_f = a["stream_time"], a["frames"]
# 1 fps: a frame per second of stream, except across the outage, where the
# clock jumps by the time lost (it never resets)
last = json.loads(lines[-1])
assert last["frames"] + 2 <= last["stream_time"], "no jump across the outage: " + lines[-1]
print("answers: ok (%d)" % len(lines))
EOF
grep -Eq "reconnects [1-9]" "$tmp/qa.err" || fail "no reconnect in the status lines"
grep -q "stream .* | ingest .* fps | encode .* fps .* | dropped .* | memory .*/.* | last answer" \
  "$tmp/qa.err" || fail "status line"

# error paths: clear message, non-zero exit, quickly
expect_fail() { # CODE PATTERN ARGS...
  local code=$1 pat=$2; shift 2
  local rc=0
  timeout 30 "$qa" --no-status "$@" >"$tmp/err.out" 2>"$tmp/err.log" || rc=$?
  [ $rc -eq "$code" ] || { cat "$tmp/err.log"; fail "$* exited $rc, expected $code"; }
  grep -Eq -- "$pat" "$tmp/err.log" || { cat "$tmp/err.log"; fail "$*: message lacks '$pat'"; }
  echo "ok ($rc): $(head -n 1 "$tmp/err.log")"
}
ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=size=160x120:rate=10 -t 6 \
  -c:v libx264 -preset ultrafast -pix_fmt yuv420p "$tmp/whole.mp4"
size=$(stat -c %s "$tmp/whole.mp4")
head -c $(( size / 2 )) "$tmp/whole.mp4" >"$tmp/truncated.mp4" # the moov atom is at the end
head -c 200000 /dev/urandom >"$tmp/garbage.mp4"
closed=$(/usr/bin/python3 -c '
import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect_fail 4 "truncated.mp4" --model "$model" --tokenizer "$tok" --ask "1:q" "$tmp/truncated.mp4"
expect_fail 4 "garbage.mp4" --model "$model" --tokenizer "$tok" --ask "1:q" "$tmp/garbage.mp4"
expect_fail 4 "no-such-file.mp4" --model "$model" --tokenizer "$tok" "$tmp/no-such-file.mp4"
expect_fail 4 "127.0.0.1:$closed" --model "$model" --tokenizer "$tok" --timeout 3 \
  --rtsp-transport udp "rtsp://127.0.0.1:$closed/live"
expect_fail 4 "bogus://" --model "$model" --tokenizer "$tok" "bogus://nowhere/x"
expect_fail 3 "not a model directory" --model "$tmp" --tokenizer "$tok" "$tmp/whole.mp4"
expect_fail 3 "not a Flash-VStream model" --model "$src/tests/data/models/llama-tiny" \
  --tokenizer "$tok" "$tmp/whole.mp4"
expect_fail 2 "--model" "$tmp/whole.mp4"
expect_fail 2 "T:QUESTION" --model "$model" --ask "no time" "$tmp/whole.mp4"

# a whole file answers scripted questions, the last one past its end
timeout 60 "$qa" --model "$model" --tokenizer "$tok" --json --no-status \
  --ask "2:first" --ask "100:after the end" "$tmp/whole.mp4" >"$tmp/file.json" \
  || fail "file run"
[ "$(wc -l <"$tmp/file.json")" -eq 2 ] || fail "file answers"
grep -q '"frames":6,' "$tmp/file.json" || fail "the answer after the end has all 6 frames"
grep -q '"frames":3,' "$tmp/file.json" || fail "the answer at 2 s sees exactly frames 0, 1, 2"

# memory ablations: the language model sees only the spatial part
timeout 60 "$qa" --model "$model" --tokenizer "$tok" --json --no-status --memory spatial \
  --ask "4:only now" "$tmp/whole.mp4" >"$tmp/spatial.json" || fail "--memory spatial run"
grep -q '"frames":5,"memory_tokens":16,"visual_tokens":{"abstract":0,"temporal":0,"retrieved":0,"spatial":16}' \
  "$tmp/spatial.json" || { cat "$tmp/spatial.json"; fail "--memory spatial tokens"; }
expect_fail 2 "--memory" --model "$model" --memory most "$tmp/whole.mp4"

# the benchmark's plumbing (tools/bench/vstream_qa.py) on a 1-minute world
# stream: every mode answers every question from exactly the frames up to
# its time (the tiny model's context only holds short questions)
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  mkdir -p "$tmp/streams"
  /usr/bin/python3 "$src/tools/vworld/make_streams.py" --seed 5 --minutes 1 --id w \
    --out "$tmp/streams" >/dev/null || fail "make_streams"
  /usr/bin/python3 - "$tmp/streams/w.json" <<'EOF2' || fail "short questions"
import json, sys
m = json.load(open(sys.argv[1]))
for q in m["questions"]:
    q["question"] = "What?"
json.dump(m, open(sys.argv[1], "w"))
EOF2
  timeout 120 /usr/bin/python3 "$src/tools/bench/vstream_qa.py" --streams "$tmp/streams" \
    --model "$model" --tokenizer "$tok" --qa "$qa" --out "$tmp/bench" --max-tokens 2 --ref no \
    >"$tmp/bench.out" 2>"$tmp/bench.err" || { cat "$tmp/bench.err"; fail "vstream_qa.py"; }
  /usr/bin/python3 - "$tmp/bench" "$tmp/streams/w.json" <<'EOF2' || fail "benchmark results"
import json, sys
res = json.load(open(sys.argv[1] + "/results.json"))
n = len(json.load(open(sys.argv[2]))["questions"])
modes = ("full", "spatial", "no-temporal-retrieved", "no-abstract")
assert sorted(res["modes"]) == sorted(modes), res["modes"].keys()
assert all(res["modes"][m]["n"] == n for m in modes), res
rows = [json.loads(l) for l in open(sys.argv[1] + "/answers.jsonl")]
assert len(rows) == 4 * n
for r in rows:
    assert r["frames"] == r["t"] + 1, r  # 1 fps: frames 0..t
    if r["mode"] == "spatial":
        assert r["memory_tokens"] == 16, r
print("benchmark plumbing: ok (%d questions x 4 modes)" % n)
EOF2
  grep -q "^no-temporal-retrieved " "$tmp/bench.out" || fail "benchmark table"
fi
echo "vstream_e2e: passed"
