#!/usr/bin/env bash
# The fault-injection tests of docs/RELIABILITY.md in one command:
# tests/test_faults.c (every allocation of vstream and speech open failing in
# turn, a checkpoint truncated after open, audio to a full disk through the C
# API), tests/fault_rtsp.sh (relay and publisher stalled, killed, restarted;
# timeouts, reconnects, exit codes) and tests/fault_disk.sh (flashspeech on a
# full disk and under a file size limit). Prints one row per test and exits
# non-zero when any failed.
#
#   scripts/faults.sh [BUILD_DIR]      (default build; make faults)
#
# Run it on an AddressSanitizer build (-DFRT_SANITIZE=address) for the
# "nothing leaked" half: scripts/reliability.sh does both.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$here/build}" && pwd)
log=$(mktemp -d /tmp/frt-faults-XXXXXX)
trap 'rm -rf "$log"' EXIT
failed=0
rows=()
run() { # NAME COMMAND...
  local name=$1 t0 rc=0; shift
  t0=$(date +%s)
  FRT_LOG=error "$@" >"$log/$name.log" 2>&1 || rc=$?
  local secs=$(( $(date +%s) - t0 )) verdict=passed
  if [ $rc -eq 77 ]; then verdict=skipped
  elif [ $rc -ne 0 ]; then verdict="FAILED (exit $rc)"; failed=1
    echo "--- $name"; tail -n 40 "$log/$name.log"
  fi
  rows+=("$(printf '%-14s %-18s %4d s' "$name" "$verdict" "$secs")")
}
run test_faults "$build/tests/test_faults" -j1 --verbose
grep -h "allocations" "$log/test_faults.log" 2>/dev/null
run fault_rtsp bash "$here/tests/fault_rtsp.sh" "$build" "$here"
grep -h "^ok:" "$log/fault_rtsp.log" 2>/dev/null
run fault_disk bash "$here/tests/fault_disk.sh" "$build" "$here"
grep -h "^ok:" "$log/fault_disk.log" 2>/dev/null
echo "faults ($build):"
printf '  %s\n' "${rows[@]}"
exit $failed
