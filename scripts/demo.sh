#!/usr/bin/env bash
# The main job: a live RTSP camera feed, questions asked while it flows,
# answers with their stream times, spoken into a WAV.
#
# A local RTSP server (rtsp-server-perl, loopback only) relays a generated
# stream that ffmpeg publishes; vstream-qa watches it over RTSP/UDP and
# answers scripted questions; flashspeech speaks the answers into demo.wav.
# Everything it starts is stopped on exit, Ctrl-C included.
#
# The trained bundled models (models/vstream-tiny, models/flashspeech-tiny)
# do not exist yet. Until they do, the demo runs the same pipeline on the
# tiny random-weight test checkpoints and says so: the plumbing is real
# (decode, encode, STAR memory, answering, speech), the words are not.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${BUILD:-build}
qa=$build/apps/vstream-qa
tts=$build/apps/flashspeech
out=${DEMO_OUT:-$root/demo-out}

vmodel=models/vstream-tiny tok=""
if [ ! -f "$vmodel/config.json" ]; then
  echo "demo: models/vstream-tiny (the trained vstream model) is not bundled yet;"
  echo "demo: using the random-weight test checkpoint, so answers are not meaningful."
  vmodel=tests/data/models/vstream-tiny
  tok=tests/data/tokenizer/ws.model
fi
smodel=models/flashspeech-tiny
if [ ! -f "$smodel/config.json" ]; then
  echo "demo: models/flashspeech-tiny (the trained speech model) is not bundled yet;"
  echo "demo: using the random-weight test checkpoint, so the speech is noise of the right length."
  smodel=tests/data/speech/flashspeech-tiny
fi

mkdir -p "$out"
tmp=$out # logs of the relay and the publisher
. tests/lib/rtsp.sh
cleanup() {
  for p in $rtsp_pub $rtsp_server; do kill "$p" 2>/dev/null || true; done
  for p in $rtsp_pub $rtsp_server; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM
: >"$out/server.log"; : >"$out/publisher.log"

rtsp_ports
rtsp_start_server 300
# a scene that changes: a moving test pattern, then a colour field, then a fractal zoom
rtsp_publish camera 300 "testsrc2=size=640x360:rate=15:duration=6[a];\
color=c=royalblue:size=640x360:rate=15:duration=5[b];\
mandelbrot=size=640x360:rate=15[c];[a][b][c]concat=n=3:v=1"
sleep 1.5

url="rtsp://127.0.0.1:$rtsp_cport/camera"
echo "demo: vstream-qa watching $url (model $vmodel)"
args=(--model "$vmodel" --json --no-status --max-tokens 12 --rtsp-transport udp --timeout 10)
[ -n "$tok" ] && args+=(--tokenizer "$tok")
"$qa" "${args[@]}" \
  --ask "2:What is on the screen right now?" \
  --ask "7:What colour is the picture?" \
  --ask "12:Did the scene change since the start?" \
  "$url" >"$out/answers.jsonl" 2>"$out/vstream-qa.log" || {
    echo "demo: vstream-qa failed:"; tail -n 20 "$out/vstream-qa.log"; exit 1; }

echo
echo "stream time  frames  latency  question -> answer"
/usr/bin/python3 - "$out/answers.jsonl" "$out/answers.txt" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
with open(sys.argv[2], "w") as f:
    for a in lines:
        lat = a.get("latency_ms", {})
        total = lat.get("total", 0) if isinstance(lat, dict) else 0
        print(f"{a['stream_time']:9.1f} s {a['frames']:7d} {total:7.0f} ms  "
              f"{a['question']} -> {a['answer']!r}")
        f.write(f"At {a['stream_time']:.0f} seconds: {a['answer']}\n")
PY

echo
"$tts" --model "$smodel" -f "$out/answers.txt" -o "$out/answers.wav" -q
echo "demo: answers spoken into $out/answers.wav ($(soxi -D "$out/answers.wav" 2>/dev/null || echo '?') s)"
echo "demo: logs in $out/"
