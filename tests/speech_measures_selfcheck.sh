#!/usr/bin/env bash
# The speech measures (tools/speechcorpus/measures.py) on known cases: YIN on
# tones and a synthetic vowel, MCD of a signal with itself and with noise,
# MCD-DTW and F0 RMSE of a time-stretched copy, sentence identification, the
# prompt-fidelity rule. Then a 5-utterance corpus: its phonemes must be what
# this build's C frontend logs for the same text and its phoneme times must
# tile the audio (tools/speechcorpus/check_alignment.py).
# Exit 77 (ctest: skipped) without numpy for /usr/bin/python3.
# Usage: speech_measures_selfcheck.sh BUILD_DIR SOURCE_DIR
set -u
build=$1
src=$2
if ! /usr/bin/python3 -c "import numpy" 2>/dev/null; then
  echo "python3-numpy not installed for /usr/bin/python3: skipped"
  exit 77
fi
/usr/bin/python3 "$src/tools/speechcorpus/measures.py" --selfcheck || exit 1

if [ ! -d /usr/share/wordnet ] || ! command -v sox >/dev/null; then
  echo "wordnet-base or sox missing (scripts/install-deps.sh): corpus check skipped"
  exit 0
fi
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
/usr/bin/python3 "$src/tools/speechcorpus/make_corpus.py" --out "$t/corpus" --limit 5 2>"$t/log" ||
  { cat "$t/log"; echo "FAIL: make_corpus.py"; exit 1; }
fs=()
if grep -q '^FRT_ESPEAK:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  fs=(--flashspeech "$build/apps/flashspeech" --model "$src/tests/data/speech/flashspeech-tiny")
fi
/usr/bin/python3 "$src/tools/speechcorpus/check_alignment.py" "$t/corpus" --n 5 "${fs[@]}"
