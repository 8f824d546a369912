#!/usr/bin/env bash
# The main job. Until the bundled vstream model exists (issue: the bundled
# vstream model), this runs what exists and says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "flashrt $(git describe --always 2>/dev/null || echo dev): CPU features: see below"
if [ ! -d models/vstream-tiny ]; then
  echo "demo: models/vstream-tiny is not bundled yet, so vstream-qa cannot run."
  echo "demo: running the kernel benchmarks instead (what exists today)."
fi
build/apps/frt-bench gemm || echo "demo: frt-bench gemm not available yet"
