#!/usr/bin/env bash
# Live RTSP ingest: ffmpeg publishes testsrc to a local rtsp-server-perl
# (UDP transport only), test_ingest's ingest_live test reads it, and the
# publisher is restarted mid-stream so the reader must reconnect with its
# stream clock running on. Everything binds 127.0.0.1 and is killed on exit.
# Usage: ingest_live.sh BUILD_DIR SOURCE_DIR. Exit 77 (skip) without
# ffmpeg or rtsp-server-perl.
set -euo pipefail
build=$1
command -v ffmpeg >/dev/null && command -v rtsp-server-perl >/dev/null || {
  echo "skip: needs ffmpeg and rtsp-server-perl"; exit 77; }
test -x "$build/tests/test_ingest" || { echo "skip: $build/tests/test_ingest not built"; exit 77; }

tmp=$(mktemp -d /tmp/frt-rtsp-XXXXXX)
server=; pub=; reader=
cleanup() {
  for p in $reader $pub $server; do kill "$p" 2>/dev/null || true; done
  for p in $reader $pub $server; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# two free TCP ports and an RTP range, chosen by the kernel
read -r cport sport < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
rtp=$(( 30000 + (RANDOM % 2000) * 10 ))

timeout 120 rtsp-server-perl --clientport "$cport" --serverport "$sport" \
  --client_listen_address 127.0.0.1 --source_listen_address 127.0.0.1 \
  --rtp_start_port "$rtp" --loglevel 1 >"$tmp/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/"$sport") 2>/dev/null && break
  sleep 0.1
done

publish() {
  timeout 100 ffmpeg -nostdin -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=10 \
    -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -pix_fmt yuv420p \
    -f rtsp "rtsp://127.0.0.1:$sport/live" >>"$tmp/publisher.log" 2>&1 &
  pub=$!
}
publish
sleep 2

export FRT_TEST_RTSP_URL="rtsp://127.0.0.1:$cport/live" FRT_TEST_RTSP_MARK="$tmp/mark"
timeout 100 "$build/tests/test_ingest" -j1 --filter 'ingest_live/*' >"$tmp/reader.log" 2>&1 &
reader=$!

# once the reader has frames, take the publisher away for a while
for _ in $(seq 300); do
  test -e "$tmp/mark" && break
  kill -0 "$reader" 2>/dev/null || break
  sleep 0.1
done
if test -e "$tmp/mark"; then
  kill "$pub"; wait "$pub" 2>/dev/null || true
  sleep 2
  publish
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
