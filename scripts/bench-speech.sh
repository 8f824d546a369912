#!/usr/bin/env bash
# The speech benchmark of issue #8 (make bench-speech): the C flashspeech on
# the held-out items of the espeak-ng corpus, 1 and 2 steps, prompted with
# another utterance of the same voice; MCD-DTW, sentence identification, F0
# RMSE, prompt fidelity, real-time factor. Table on stdout, JSON in
# data/speech-bench/results.json, progress on stderr.
#   scripts/bench-speech.sh [--quick] [--items N] [--steps 1 2]
# BUILD (default build) names the build directory. The corpus is generated
# first when data/speech-corpus is not complete (a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
FS=$BUILD/apps/flashspeech
CORPUS=data/speech-corpus
[ -x "$FS" ] || { echo "bench-speech: $FS is not built (make build)" >&2; exit 1; }
grep -q '^FRT_ESPEAK:BOOL=ON' "$BUILD/CMakeCache.txt" ||
  { echo "bench-speech: $BUILD is built without espeak-ng (FRT_ESPEAK=OFF): it cannot read text" >&2; exit 1; }
MODEL=models/flashspeech-tiny
if [ ! -f "$MODEL/config.json" ]; then
  MODEL=tests/data/speech/flashspeech-tiny
  echo "bench-speech: WARNING: models/flashspeech-tiny not found; using the test checkpoint" \
       "$MODEL (random weights: the scores measure noise)" >&2
fi
if ! grep -q '"complete": true' "$CORPUS/stats.json" 2>/dev/null; then
  echo "bench-speech: generating the corpus in $CORPUS" >&2
  /usr/bin/python3 tools/speechcorpus/make_corpus.py --out "$CORPUS"
fi
exec /usr/bin/python3 tools/speechcorpus/bench.py --flashspeech "$FS" --model "$MODEL" \
  --corpus "$CORPUS" --out data/speech-bench "$@"
