#!/usr/bin/env bash
# Soak test for vstream-qa: DURATION seconds of stream (default 7200, two
# hours) of an H.264 testsrc stream piped through stdin and decoded as fast
# as it comes, QUESTIONS scripted questions spread evenly over the stream
# (default one per minute of stream), resident memory sampled ten times a
# second. Passes when every question is answered and the RSS at the end is
# within 5% of the RSS at half time.
#
# Usage: scripts/soak-vstream.sh [BUILD_DIR] [DURATION_S] [PROGRESS_FILE] [QUESTIONS]
#   (make soak runs two hours and 1000 questions; e.g. 600 200 for a 10-minute check)
# Progress lines "wall_s stream_s rss_kib" go to PROGRESS_FILE
# (default soak-vstream.progress in the current directory); answers to
# PROGRESS_FILE.json. Not part of make test.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
duration=${2:-7200}
progress=${3:-$PWD/soak-vstream.progress}
questions=${4:-$((duration / 60))}
[ "$questions" -ge 1 ] || questions=1
qa=$build/apps/vstream-qa
model=$here/tests/data/models/vstream-tiny
tok=$here/tests/data/tokenizer/ws.model
command -v ffmpeg >/dev/null || { echo "soak: needs ffmpeg"; exit 1; }
test -x "$qa" || { echo "soak: $qa not built"; exit 1; }

tmp=$(mktemp -d /tmp/frt-soak-XXXXXX)
qa_pid=
cleanup() {
  [ -n "$qa_pid" ] && kill "$qa_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# question i at stream time i * duration / questions, the last one just before the end;
# four wordings, so the prompt length varies
qs=("What has happened in the last minute?" "What colour is the square?"
  "Is anything moving on the screen right now, and which way?" "Describe the picture.")
asks=()
n_asks=0
for (( i = 1; i < questions; i++ )); do
  t=$(awk -v i="$i" -v d="$duration" -v q="$questions" 'BEGIN {printf "%.2f", i * d / q}')
  asks+=(--ask "$t:${qs[i % 4]}")
  n_asks=$((n_asks + 1))
done
asks+=(--ask "$((duration - 2)):What happened overall?")
n_asks=$((n_asks + 1))

: >"$progress"
start=$(date +%s.%N)
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc=size=160x120:rate=10:duration=$duration" \
  -c:v libx264 -preset ultrafast -g 50 -pix_fmt yuv420p -f mpegts - 2>"$tmp/ffmpeg.log" |
  "$qa" --model "$model" --tokenizer "$tok" --json --status --status-interval 0.1 --max-tokens 16 "${asks[@]}" - \
    >"$progress.json" 2>"$tmp/qa.err" &
qa_pid=$!

half_rss=; end_rss=; last_t=0
while kill -0 "$qa_pid" 2>/dev/null; do
  sleep 0.1
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$qa_pid/status" 2>/dev/null || true)
  [ -n "$rss" ] || break
  t=$(grep -a '^stream ' "$tmp/qa.err" | tail -n 1 | awk '{sub("s", "", $2); print $2}' || true)
  t=${t:-0}
  wall=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {printf "%.1f", a - b}')
  echo "$wall $t $rss" >>"$progress"
  if [ -z "$half_rss" ] && awk -v t="$t" -v d="$duration" 'BEGIN {exit !(t >= d / 2)}'; then
    half_rss=$rss
  fi
  if awk -v t="$t" -v d="$duration" 'BEGIN {exit !(t >= 0.9 * d)}'; then end_rss=$rss; fi
  last_t=$t
done
status=0
wait "$qa_pid" || status=$?
qa_pid=
answers=$(grep -c '"status":"ok"' "$progress.json" || true)
echo "soak: stream ${last_t}s in $(tail -n 1 "$progress" | cut -d' ' -f1)s wall, exit $status," \
  "$answers/$n_asks answers, RSS at half time ${half_rss:-?} KiB, at the end ${end_rss:-?} KiB"
[ "$status" -eq 0 ] || { tail -n 20 "$tmp/qa.err"; echo "soak: FAILED (vstream-qa exited $status)"; exit 1; }
[ "$answers" -eq "$n_asks" ] || { echo "soak: FAILED (answers)"; exit 1; }
[ -n "$half_rss" ] && [ -n "$end_rss" ] || { echo "soak: FAILED (no RSS samples)"; exit 1; }
awk -v h="$half_rss" -v e="$end_rss" 'BEGIN {exit !(e <= h * 1.05)}' ||
  { echo "soak: FAILED (RSS grew more than 5%)"; exit 1; }
echo "soak: passed"
