#!/usr/bin/env bash
# Real-time ingest check: a 1080p30 H.264 stream published over RTSP
# (rtsp-server-perl on loopback, UDP transport) is read by vstream-qa with
# the tiny model at 1 fps sampling for DURATION seconds (default 600);
# passes when no sampled frame was dropped. The stream is encoded once
# beforehand and published with -c copy, so the publisher costs no CPU.
# Usage: scripts/vstream-1080p.sh [BUILD_DIR] [DURATION_S]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
duration=${2:-600}
qa=$build/apps/vstream-qa
command -v ffmpeg >/dev/null && command -v rtsp-server-perl >/dev/null ||
  { echo "needs ffmpeg and rtsp-server-perl"; exit 1; }
test -x "$qa" || { echo "$qa not built"; exit 1; }

tmp=$(mktemp -d /tmp/frt-1080p-XXXXXX)
server=; pub=; reader=
cleanup() {
  for p in $reader $pub $server; do kill "$p" 2>/dev/null || true; done
  for p in $reader $pub $server; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "encoding $((duration + 20)) s of 1080p30 H.264..."
ffmpeg -nostdin -loglevel error -f lavfi -i "testsrc2=size=1920x1080:rate=30" \
  -t $((duration + 20)) -c:v libx264 -preset ultrafast -g 30 -pix_fmt yuv420p "$tmp/in.mp4"

read -r cport sport < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
rtp=$(( 40000 + (RANDOM % 1000) * 10 ))
perl -e '
use AnyEvent; use RTSP::Server;
$RTSP::Server::RTP_START_PORT = shift @ARGV;
my $srv = RTSP::Server->new_with_options(); $srv->listen;
my $cv = AnyEvent->condvar; $SIG{INT} = $SIG{TERM} = sub { $cv->send }; $cv->recv;' -- \
  "$rtp" --clientport "$cport" --serverport "$sport" \
  --client_listen_address 127.0.0.1 --source_listen_address 127.0.0.1 \
  --rtp_start_port "$rtp" --loglevel 1 >"$tmp/server.log" 2>&1 &
server=$!
sleep 1
ffmpeg -nostdin -loglevel error -re -i "$tmp/in.mp4" -c copy -f rtsp \
  "rtsp://127.0.0.1:$sport/live" >"$tmp/publisher.log" 2>&1 &
pub=$!
sleep 2
"$qa" --model "$here/tests/data/models/vstream-tiny" \
  --tokenizer "$here/tests/data/tokenizer/ws.model" --json --status --status-interval 10 \
  --rtsp-transport udp --ask "$((duration / 2)):What is on the screen?" \
  --ask "$duration:And now?" "rtsp://127.0.0.1:$cport/live" >"$tmp/qa.json" 2>"$tmp/qa.err" &
reader=$!
status=0
wait "$reader" || status=$?
reader=
grep -a "^stream " "$tmp/qa.err" | tail -n 1
cat "$tmp/qa.json"
last=$(grep -a '^stream ' "$tmp/qa.err" | tail -n 1)
dropped=$(echo "$last" | sed -n 's/.*dropped \([0-9]*\).*/\1/p')
echo "1080p30 over RTSP/UDP, $duration s: exit $status, dropped ${dropped:-?}"
[ "$status" -eq 0 ] && [ "${dropped:-1}" -eq 0 ] && echo "passed" || { echo "FAILED"; exit 1; }
