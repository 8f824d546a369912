#!/usr/bin/env bash
# The whole test suite: the release build through ctest, then the same suite
# in an AddressSanitizer + UndefinedBehaviorSanitizer build, then the thread
# stress programs in a ThreadSanitizer build, then each libFuzzer harness
# briefly (a crash fails the suite). Assumes scripts/install-deps.sh
# ran (make test does it). Ends with one "N passed, N failed" line over all
# four steps.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)
start=$(date +%s)

ran=0
count() { # LOG: add the ctest run's test count to $ran
  local n
  n=$(grep -oE "tests passed, 0 tests failed out of [0-9]+" "$1" | grep -oE "[0-9]+$" | tail -n 1)
  ran=$((ran + ${n:-0}))
}

echo "== release build: ctest =="
rel_log=build/ctest-release.log
(cd build && ctest --output-on-failure -j1) 2>&1 | tee "$rel_log"
count "$rel_log"

echo "== sanitizer build (address+undefined): ctest =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRT_SANITIZE=address -DFRT_CUDA=OFF >/dev/null
cmake --build build-asan -j "$JOBS"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# A leak found by LeakSanitizer when a Criterion worker exits does not change
# the test's verdict, so the log is also searched for any sanitizer report.
asan_log=build-asan/ctest-asan.log
(cd build-asan && ctest --output-on-failure -V -j1 -LE no-asan) > "$asan_log" 2>&1 || {
  tail -n 200 "$asan_log"; echo "sanitizer build: tests failed (full log: $asan_log)"; exit 1; }
grep -E "^[0-9]+% tests passed|Synthesis:" "$asan_log" | tail -n 40
count "$asan_log"
if grep -nE "ERROR: (LeakSanitizer|AddressSanitizer)|runtime error:" "$asan_log" | head -n 20; then
  echo "sanitizer build: a sanitizer reported errors (full log: $asan_log)"
  exit 1
fi

echo "== sanitizer build (thread): the tests where threads meet =="
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRT_SANITIZE=thread -DFRT_CUDA=OFF >/dev/null
cmake --build build-tsan -j "$JOBS"
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
tsan_log=build-tsan/ctest-tsan.log
(cd build-tsan && ctest --output-on-failure -j1 -L tsan) 2>&1 | tee "$tsan_log"
count "$tsan_log"

echo "== fuzzing: every libFuzzer harness for 15 s (scripts/fuzz.sh) =="
FUZZ_NICE=0 bash scripts/fuzz.sh 15
ran=$((ran + $(grep -c "	ok$" data/fuzz/results-15.tsv)))

echo "== all tests passed in $(( $(date +%s) - start )) s =="
echo "$ran passed, 0 failed"
