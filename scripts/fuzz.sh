#!/usr/bin/env bash
# Build the libFuzzer harnesses (tests/fuzz, clang, own build dir build-fuzz)
# and run each for SECONDS (default 600) one after another, then print one
# row per target: runs, exec/s, coverage, result. Exits non-zero when any
# harness crashed, leaked, hit a sanitizer report, a timeout or the memory
# limit; the input that did it is left under data/fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Each target mutates a working copy of its checked-in seeds
# (data/fuzz/corpus/<target>, kept between runs, so a later run goes on
# where the last stopped); tests/fuzz/corpus stays as checked in.
# FUZZ_RESUME=1 skips targets that already have a row for SECONDS in
# data/fuzz/results-SECONDS.tsv (a long series killed halfway goes on).
# FUZZ_NICE (default 10) is the niceness the harnesses run at.
set -euo pipefail

# One function, read whole before it runs: editing this file during a long
# series does not change the series.
main() {
  cd "$(dirname "$0")/.."
  secs=${1:-600}
  shift || true
  build=${FUZZ_BUILD:-build-fuzz}
  out=data/fuzz
  nice_n=${FUZZ_NICE:-10}
  cc=${FUZZ_CC:-$(command -v clang-14 || command -v clang || true)}
  [ -n "$cc" ] || { echo "fuzz.sh: clang is needed (scripts/install-deps.sh)"; exit 1; }

  if [ ! -f "$build/CMakeCache.txt" ]; then
    CC="$cc" cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRT_CUDA=OFF \
      -DFRT_FUZZ=ON -DFRT_BUILD_TESTS=OFF >/dev/null
  fi
  nice -n 5 cmake --build "$build" -j2 --target fuzz_all >/dev/null

  if [ $# -gt 0 ]; then
    targets=("$@")
  else
    targets=()
    for f in tests/fuzz/fuzz_*.c; do t=$(basename "$f" .c); targets+=("${t#fuzz_}"); done
  fi

  mkdir -p "$out"
  results="$out/results-$secs.tsv"
  [ "${FUZZ_RESUME:-0}" = 1 ] && [ -f "$results" ] || : >"$results"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  for t in "${targets[@]}"; do
    if [ "${FUZZ_RESUME:-0}" = 1 ] && grep -q "^$t	" "$results"; then continue; fi
    corpus="$out/corpus/$t" art="$out/artifacts/$t" log="$out/$t-$secs.log"
    mkdir -p "$corpus" "$art"
    cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
    dict=()
    [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
    echo "fuzz.sh: $t for $secs s (log $log)" >&2
    rc=0
    nice -n "$nice_n" "$build/tests/fuzz/fuzz_$t" "${dict[@]}" -max_total_time="$secs" \
      -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$art/" "$corpus" tests/fuzz/corpus/"$t" >"$log" 2>&1 || rc=$?
    runs=$(grep -oE "stat::number_of_executed_units: +[0-9]+" "$log" | grep -oE "[0-9]+$" || true)
    eps=$(grep -oE "stat::average_exec_per_sec: +[0-9]+" "$log" | grep -oE "[0-9]+$" || true)
    cov=$(grep -oE "cov: [0-9]+" "$log" | tail -n 1 | grep -oE "[0-9]+" || true)
    if [ "$rc" = 0 ] && ! grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:" "$log"; then
      result=ok
    else
      result="FAIL (rc $rc: $(grep -m1 -oE "ERROR: [A-Za-z]+: [a-z -]+|runtime error: .{0,60}|deadly signal" "$log" || echo see log))"
    fi
    printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$t" "$secs" "${runs:-?}" "${eps:-?}" "${cov:-?}" "$result" >>"$results"
  done

  printf "\n%-16s %8s %12s %8s %8s  %s\n" target seconds runs exec/s cov result
  fail=0
  while IFS=$'\t' read -r t s runs eps cov result; do
    printf "%-16s %8s %12s %8s %8s  %s\n" "$t" "$s" "$runs" "$eps" "$cov" "$result"
    [ "$result" = ok ] || fail=1
  done <"$results"
  if [ "$fail" != 0 ]; then
    echo "fuzz.sh: a harness failed; inputs under $out/artifacts/, logs $out/<target>-$secs.log"
    exit 1
  fi
}
main "$@"
