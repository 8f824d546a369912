#!/usr/bin/env bash
# Soak test for speech: SENTENCES sentences (default 10000, one per line of a
# generated text file) through one engine (flashspeech -f FILE, the tiny test
# model, audio streamed to /dev/null), resident memory sampled twice a
# second. Passes when flashspeech exits 0 having synthesised every sentence
# and the RSS at the end is within 5% of the RSS at the half-way sentence.
#
# Usage: scripts/soak-speech.sh [BUILD_DIR] [SENTENCES] [PROGRESS_FILE]
# G2P=espeak (default when flashspeech was built with espeak-ng) sends
# English text through espeak-ng; G2P=phonemes sends IPA (--phonemes).
# Progress lines "wall_s sentences rss_kib" go to PROGRESS_FILE (default
# soak-speech.progress in the current directory). 10,000 sentences take
# ~5 min on the build machine, so a run is cheap to repeat rather than resume.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
n=${2:-10000}
progress=${3:-$PWD/soak-speech.progress}
fs=$build/apps/flashspeech
model=$here/tests/data/speech/flashspeech-tiny
test -x "$fs" || { echo "soak-speech: $fs not built"; exit 1; }
g2p=${G2P:-}
if [ -z "$g2p" ]; then
  g2p=phonemes
  grep -q '^FRT_ESPEAK:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null && g2p=espeak
fi

tmp=$(mktemp -d /tmp/frt-soak-speech-XXXXXX)
fs_pid=
cleanup() {
  [ -n "$fs_pid" ] && kill "$fs_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Sentences of 2 to 8 words, varied so the engine's buffers see many lengths.
if [ "$g2p" = espeak ]; then
  words="the quick brown fox jumps over a lazy dog while seven bright birds sing softly near old river stones today"
  opts=()
else
  words="h_ə_l_ˈoʊ ð_ˈɛɹ h_ˈaʊ ɑːɹ j_uː ð_ə l_ˈoʊ h_ˈɛɹ j_ˈaʊ"
  opts=(--phonemes)
fi
awk -v n="$n" -v words="$words" 'BEGIN {
  nw = split(words, w, " "); seed = 12345
  for (i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648
    len = 2 + seed % 7; line = ""
    for (k = 0; k < len; k++) {
      seed = (seed * 1103515245 + 12345) % 2147483648
      line = line (k ? " " : "") w[1 + seed % nw]
    }
    print line (i % 3 == 2 ? "?" : ".")
  }
}' >"$tmp/text.txt"

: >"$progress"
start=$(date +%s.%N)
FRT_LOG=debug "$fs" -m "$model" "${opts[@]}" -v -f "$tmp/text.txt" -o - >/dev/null 2>"$tmp/fs.err" &
fs_pid=$!

half_rss=; end_rss=; done_n=0
while kill -0 "$fs_pid" 2>/dev/null; do
  sleep 0.05 # a 1000-sentence run takes ~2 s: sample often enough to see its last tenth
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$fs_pid/status" 2>/dev/null || true)
  [ -n "$rss" ] || break
  done_n=$(grep -c 'speech: sentence ' "$tmp/fs.err" || true)
  wall=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {printf "%.1f", a - b}')
  echo "$wall $done_n $rss" >>"$progress"
  [ -z "$half_rss" ] && [ "$done_n" -ge $((n / 2)) ] && half_rss=$rss
  [ "$done_n" -ge $((n * 9 / 10)) ] && end_rss=$rss
done
status=0
wait "$fs_pid" || status=$?
fs_pid=
done_n=$(grep -c 'speech: sentence ' "$tmp/fs.err" || true)
echo "soak-speech ($g2p): $done_n/$n sentences in $(tail -n 1 "$progress" | cut -d' ' -f1)s wall," \
  "exit $status, RSS at half way ${half_rss:-?} KiB, at the end ${end_rss:-?} KiB"
grep -v 'speech: sentence ' "$tmp/fs.err" | tail -n 3
[ "$status" -eq 0 ] || { echo "soak-speech: FAILED (flashspeech exited $status)"; exit 1; }
[ "$done_n" -eq "$n" ] || { echo "soak-speech: FAILED (sentences)"; exit 1; }
[ -n "$half_rss" ] && [ -n "$end_rss" ] || { echo "soak-speech: FAILED (no RSS samples)"; exit 1; }
awk -v h="$half_rss" -v e="$end_rss" 'BEGIN {exit !(e <= h * 1.05)}' ||
  { echo "soak-speech: FAILED (RSS grew more than 5%)"; exit 1; }
echo "soak-speech: passed"
