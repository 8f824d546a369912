#!/usr/bin/env bash
# Streaming-QA benchmark of the C runtime (issue #7): held-out vworld
# streams, exact-match accuracy per question kind for the full STAR memory
# and its ablations, answer latency, and agreement with the PyTorch
# reference when tools/vworld/ref_answer.py exists.
#
#   scripts/bench-vstream.sh [--quick] [options of tools/bench/vstream_qa.py]
#
# --quick: the first 3 streams only. Other options (--limit N, --modes ...,
# --model DIR, --out DIR) go to tools/bench/vstream_qa.py. The held-out
# streams are generated into data/vstream-heldout when missing. Environment:
# BUILD (build directory, default build), BENCH_STREAMS (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
streams=data/vstream-heldout
count=${BENCH_STREAMS:-20}
args=()
for a in "$@"; do
  if [ "$a" = --quick ]; then args+=(--limit 3); else args+=("$a"); fi
done

if [ ! -f models/vstream-tiny/config.json ]; then
  echo "bench-vstream: models/vstream-tiny is not there yet (the trained model, issue #7);" >&2
  echo "bench-vstream: pass --model DIR to benchmark another Flash-VStream model." >&2
  case " ${args[*]-} " in *" --model "*) ;; *) exit 1 ;; esac
fi
test -x "$build/apps/vstream-qa" || { echo "bench-vstream: $build/apps/vstream-qa not built (make build)" >&2; exit 1; }

have=$(ls "$streams"/heldout-*.json 2>/dev/null | wc -l)
if [ "$have" -lt "$count" ]; then
  echo "bench-vstream: generating $count held-out streams into $streams" >&2
  /usr/bin/python3 tools/vworld/make_streams.py --split heldout --count "$count" --out "$streams" >&2
fi
exec /usr/bin/python3 tools/bench/vstream_qa.py --streams "$streams" --qa "$build/apps/vstream-qa" \
  --out data/vstream-bench "${args[@]}"
