#!/usr/bin/env bash
# The vstream soak (scripts/soak-vstream.sh) at its full two hours of
# stream: decoded as fast as it comes it takes well under a minute with the
# tiny model, so it runs with the suite. Skipped (77) in sanitizer builds,
# whose allocator quarantine makes RSS meaningless, and without ffmpeg.
# Usage: vstream_soak.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
command -v ffmpeg >/dev/null || { echo "skip: needs ffmpeg"; exit 77; }
test -x "$build/apps/vstream-qa" || { echo "skip: vstream-qa not built"; exit 77; }
if grep -Eq '^FRT_SANITIZE:[A-Z]+=.+' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "skip: sanitizer build"; exit 77
fi
progress=$(mktemp /tmp/frt-soak-progress-XXXXXX)
trap 'rm -f "$progress" "$progress.json"' EXIT
timeout 600 bash "$src/scripts/soak-vstream.sh" "$build" 7200 "$progress"
