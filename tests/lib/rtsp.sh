# Sourced helpers for scripts that run a local RTSP relay (rtsp-server-perl)
# and an ffmpeg publisher, on loopback only. The caller sets `tmp` (a scratch
# directory for logs) before use and kills $rtsp_server / $rtsp_pub on exit.
#
# rtsp_ports                 picks free ports: rtsp_cport (readers), rtsp_sport
#                            (publishers) and an RTP base rtsp_rtp
# rtsp_start_server [SECS]   starts the relay (bounded by SECS, default 120)
# rtsp_publish NAME [SECS] [LAVFI]   publishes a test pattern to NAME
# rtsp_restart_publisher NAME [SECS]  stops the publisher, waits, publishes
#                            again; restarts the relay if it refuses
#
# rtsp-server-perl's quirks handled here: with no stream mounted it falls
# back to RTP port 20000 whatever --rtp_start_port says, so two instances on
# one machine collide (the base is set through $RTSP::Server::RTP_START_PORT
# instead); and it unmounts a stream only on the publisher's TEARDOWN, so a
# publisher that dies without one leaves the mount taken and every later
# ANNOUNCE gets 403 (the relay is restarted on the same ports then).

rtsp_server= rtsp_pub=

rtsp_ports() {
  read -r rtsp_cport rtsp_sport < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  rtsp_rtp=$(( 30000 + (RANDOM % 3000) * 10 ))
}

rtsp_start_server() {
  timeout "${1:-120}" perl -e '
use AnyEvent; use RTSP::Server;
$RTSP::Server::RTP_START_PORT = shift @ARGV;
my $srv = RTSP::Server->new_with_options(); $srv->listen;
my $cv = AnyEvent->condvar; $SIG{INT} = $SIG{TERM} = sub { $cv->send }; $cv->recv;' -- \
    "$rtsp_rtp" --clientport "$rtsp_cport" --serverport "$rtsp_sport" \
    --client_listen_address 127.0.0.1 --source_listen_address 127.0.0.1 \
    --rtp_start_port "$rtsp_rtp" --loglevel 1 >>"$tmp/server.log" 2>&1 &
  rtsp_server=$!
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$rtsp_sport") 2>/dev/null && break
    sleep 0.1
  done
}

rtsp_publish() {
  local name=$1 secs=${2:-100}
  local src=${3:-testsrc=size=320x240:rate=10}
  timeout "$secs" ffmpeg -nostdin -loglevel error -re -f lavfi -i "$src" \
    -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -pix_fmt yuv420p \
    -f rtsp "rtsp://127.0.0.1:$rtsp_sport/$name" >>"$tmp/publisher.log" 2>&1 &
  rtsp_pub=$!
}

rtsp_restart_publisher() {
  local name=$1 secs=${2:-100}
  kill -INT "$rtsp_pub" 2>/dev/null || true # SIGINT: ffmpeg sends TEARDOWN
  wait "$rtsp_pub" 2>/dev/null || true
  sleep "${RTSP_OUTAGE:-3}"
  for try in 1 2 3 4 5; do
    rtsp_publish "$name" "$secs"
    sleep 1.5
    kill -0 "$rtsp_pub" 2>/dev/null && return 0
    echo "publisher restart refused (try $try)" >>"$tmp/publisher.log"
    if grep -q "403" "$tmp/publisher.log"; then
      kill "$rtsp_server" 2>/dev/null || true
      wait "$rtsp_server" 2>/dev/null || true
      rtsp_start_server
      echo "relay restarted" >>"$tmp/publisher.log"
    fi
  done
  return 1
}
