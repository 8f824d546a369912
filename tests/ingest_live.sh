#!/usr/bin/env bash
# Live RTSP ingest: ffmpeg publishes testsrc to a local rtsp-server-perl
# (UDP transport only), test_ingest's ingest_live test reads it, and the
# publisher is restarted mid-stream so the reader must reconnect with its
# stream clock running on. Everything binds 127.0.0.1 and is killed on exit.
# Usage: ingest_live.sh BUILD_DIR SOURCE_DIR. Exit 77 (skip) without
# ffmpeg or rtsp-server-perl.
set -euo pipefail
build=$1
src=$2
command -v ffmpeg >/dev/null && command -v rtsp-server-perl >/dev/null || {
  echo "skip: needs ffmpeg and rtsp-server-perl"; exit 77; }
test -x "$build/tests/test_ingest" || { echo "skip: $build/tests/test_ingest not built"; exit 77; }

tmp=$(mktemp -d /tmp/frt-rtsp-XXXXXX)
reader=
cleanup() {
  for p in $reader $rtsp_pub $rtsp_server; do kill "$p" 2>/dev/null || true; done
  for p in $reader $rtsp_pub $rtsp_server; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

. "$src/tests/lib/rtsp.sh"
rtsp_ports
rtsp_start_server 120
rtsp_publish live 100
sleep 2

export FRT_TEST_RTSP_URL="rtsp://127.0.0.1:$rtsp_cport/live" FRT_TEST_RTSP_MARK="$tmp/mark"
timeout 100 "$build/tests/test_ingest" -j1 --filter 'ingest_live/*' >"$tmp/reader.log" 2>&1 &
reader=$!

# once the reader has frames, take the publisher away for a while
for _ in $(seq 300); do
  test -e "$tmp/mark" && break
  kill -0 "$reader" 2>/dev/null || break
  sleep 0.1
done
if test -e "$tmp/mark"; then
  RTSP_OUTAGE=2 rtsp_restart_publisher live 100 || echo "could not restart the publisher"
fi

status=0
wait "$reader" || status=$?
reader=
cat "$tmp/reader.log"
if [ $status -ne 0 ] || ! grep -q "Passing: 1 | Failing: 0" "$tmp/reader.log"; then
  echo "--- server log"; tail -n 30 "$tmp/server.log"
  echo "--- publisher log"; tail -n 30 "$tmp/publisher.log"
  echo "ingest_live: FAILED"
  exit 1
fi
echo "ingest_live: passed"
