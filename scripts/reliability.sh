#!/usr/bin/env bash
# Reproduces docs/RELIABILITY.md: every fuzzer, fault and soak row, then a
# summary table. `make reliability` runs it. About 8 minutes on the 2-core
# build machine when the release, ASan and fuzz builds exist (building the
# fuzz harnesses first took 22 minutes more).
#
#   scripts/reliability.sh [BUILD_DIR] [ASAN_BUILD_DIR]   (default build, build-asan)
#
# Steps: the libFuzzer harnesses for FUZZ_SECS seconds each (default 20;
# `make fuzz` is the 10-minute run; 0 skips), the fault-injection tests on
# the release and the ASan build (RELIABILITY_ASAN=0 skips the latter), the
# failure-path tests of the component suites (bad and truncated files,
# limits, network errors; listed in the document), and the soaks shortened
# to 10 minutes of stream with 200 questions and 1000 sentences (`make soak`
# is the full length). Exits non-zero when any step failed.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build=${1:-build}
asan=${2:-build-asan}
fuzz_secs=${FUZZ_SECS:-20}
jobs=${JOBS:-2}
log=${RELIABILITY_LOG:-$here/data/reliability}
mkdir -p "$log"
failed=0
rows=()
step() { # NAME COMMAND...
  local name=$1 t0 rc=0; shift
  echo "=== $name: $*"
  t0=$(date +%s)
  "$@" 2>&1 | tee "$log/$name.log"
  rc=${PIPESTATUS[0]} # read before anything else: `|| true` here would reset it to 0
  local secs=$(( $(date +%s) - t0 )) verdict=passed
  [ $rc -eq 0 ] || { verdict="FAILED (exit $rc)"; failed=1; }
  rows+=("$(printf '%-26s %-18s %5d s' "$name" "$verdict" "$secs")")
}
configure() { # DIR [CMAKE FLAGS...]
  local dir=$1; shift
  [ -f "$dir/CMakeCache.txt" ] || cmake -S . -B "$dir" "$@" >/dev/null
  nice -n 5 cmake --build "$dir" -j "$jobs" >"$log/build-$(basename "$dir").log" 2>&1 ||
    { tail -n 30 "$log/build-$(basename "$dir").log"; return 1; }
}

start=$(date +%s)
step build configure "$build" -DCMAKE_BUILD_TYPE=Release
[ "$fuzz_secs" -gt 0 ] && step "fuzz (${fuzz_secs} s each)" bash scripts/fuzz.sh "$fuzz_secs"
step faults bash scripts/faults.sh "$build"
if [ "${RELIABILITY_ASAN:-1}" != 0 ]; then
  step build-asan configure "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRT_SANITIZE=address -DFRT_CUDA=OFF
  step faults-asan bash scripts/faults.sh "$asan"
fi
# the failure paths the component suites already test (docs/RELIABILITY.md lists them)
step failure-path-tests bash -c "cd '$build' && FRT_LOG=error ctest --output-on-failure -j1 -R \
  '^(test_safetensors|test_config|test_tokenizer|test_limits|test_audio_io|test_speech_api|test_speech_model|test_vstream_api|test_ingest|test_memory|vstream_e2e|ingest_live|flashspeech_cli)\$'"
step "soak-vstream (600 s, 200 q)" bash scripts/soak-vstream.sh "$build" 600 "$log/soak-vstream.progress" 200
step "soak-speech (1000)" bash scripts/soak-speech.sh "$build" 1000 "$log/soak-speech.progress"

echo
echo "reliability: $(( ($(date +%s) - start) / 60 )) min; logs in $log"
printf '  %s\n' "${rows[@]}"
exit $failed
