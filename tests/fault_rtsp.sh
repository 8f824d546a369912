#!/usr/bin/env bash
# RTSP faults for vstream-qa (issue #9), beyond what vstream_e2e.sh (the
# publisher restarted, an unreachable server) and ingest_live.sh (reconnect
# with the stream clock running on) cover:
#   1. the relay stalled (SIGSTOP) while a question is being answered: the
#      answer completes from the memory snapshot; the read timeout fires, and
#      ingest recovers once the relay runs again
#   2. the relay killed and restarted on the same ports: reconnect, answers go on
#   3. SIGINT while the reader is blocked on a stalled publisher with a long
#      timeout: exit 130 at once (the blocking read is interrupted)
#   4. the publisher stalled (SIGSTOP) with a short timeout: timeouts fire,
#      reconnects are tried, and the stream resumes after SIGCONT
#   5. opening from a stalled relay: the open timeout fires, exit 4
#   6. the relay gone for good with --max-reconnects 2: exit 1 with the
#      reason, the question still due answered from what was seen
# Every process is bounded by timeout; the exit codes are those of
# vstream-qa --help. Usage: fault_rtsp.sh BUILD_DIR SOURCE_DIR. Exit 77
# (skip) without ffmpeg or rtsp-server-perl.
set -euo pipefail
build=$1
src=$2
command -v ffmpeg >/dev/null && command -v rtsp-server-perl >/dev/null || {
  echo "skip: needs ffmpeg and rtsp-server-perl"; exit 77; }
qa=$build/apps/vstream-qa
test -x "$qa" || { echo "skip: $qa not built"; exit 77; }
model=$src/tests/data/models/vstream-tiny
tok=$src/tests/data/tokenizer/ws.model
# the timeout checks read vstream-qa's warnings: a quieter FRT_LOG from the
# caller (scripts/faults.sh sets error) would hide them
export FRT_LOG=warn

tmp=$(mktemp -d /tmp/frt-fault-rtsp-XXXXXX)
reader=
cleanup() {
  for p in $rtsp_server $rtsp_pub; do resume "$p"; done
  for p in $reader $rtsp_pub $rtsp_server; do kill "$p" 2>/dev/null || true; done
  for p in $reader $rtsp_pub $rtsp_server; do wait "$p" 2>/dev/null || true; done
  [ -n "${FRT_KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "fault_rtsp: FAILED: $*"
  for f in server.log publisher.log qa.err qa.json; do
    test -e "$tmp/$f" && { echo "--- $f"; tail -n 20 "$tmp/$f"; }
  done
  exit 1
}

. "$src/tests/lib/rtsp.sh"
url() { echo "rtsp://127.0.0.1:$rtsp_cport/live"; }
# The relay and the publisher run under timeout(1): stop and continue the program itself.
child() { pgrep -P "$1" | head -n 1; }
stall() { kill -STOP "$(child "$1")"; }
resume() { kill -CONT "$(child "$1")" 2>/dev/null || true; }

# From the reader's status lines (--status): the newest stream time and reconnect count.
stream_time() { grep -a '^stream ' "$tmp/qa.err" | tail -n 1 | awk '{sub("s", "", $2); print $2 + 0}'; }
reconnects() { grep -a '^stream ' "$tmp/qa.err" | tail -n 1 | sed -E 's/.*reconnects ([0-9]+).*/\1/'; }
answers() { grep -c '"status":"ok"' "$tmp/qa.json" || true; }
# wait_until SECS COMMAND...: poll COMMAND every 0.1 s; false when SECS pass first
wait_until() {
  local n=$(($1 * 10)); shift
  for (( i = 0; i < n; i++ )); do
    "$@" && return 0
    kill -0 "$reader" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
time_above() { awk -v t="$(stream_time)" -v x="$1" 'BEGIN {exit !(t > x)}'; }
answers_are() { [ "$(answers)" -ge "$1" ]; }
reconnected() { [ "$(reconnects)" -ge "$1" ]; }
timed_out() { grep -q "read .* timed out after .* ms; reconnecting" "$tmp/qa.err"; }

# start_reader ARGS...: vstream-qa on the relay, questions from a FIFO (fd 5)
start_reader() {
  rm -f "$tmp/q"; mkfifo "$tmp/q"
  exec 5<>"$tmp/q"
  : >"$tmp/qa.json"; : >"$tmp/qa.err"
  timeout 120 "$qa" --model "$model" --tokenizer "$tok" --json --status --status-interval 0.2 \
    --max-tokens 8 --rtsp-transport udp "$@" "$(url)" <"$tmp/q" >"$tmp/qa.json" 2>"$tmp/qa.err" 5>&- &
  reader=$!
}
# finish_reader: end of questions; vstream-qa must exit 0 within 30 s
finish_reader() {
  exec 5>&-
  local rc=0
  wait_until 30 false || true
  wait "$reader" || rc=$?
  reader=
  [ $rc -eq 0 ] || fail "vstream-qa exited $rc at the end of its questions, expected 0"
}

rtsp_ports
rtsp_start_server 300
rtsp_publish live 280
sleep 2

# ---- 1. relay stalled while answering; 2. relay killed and restarted ------------
start_reader --timeout 5 --reconnect-max 0.5
wait_until 30 time_above 2 || fail "no frames from the relay"
echo "What is on the screen?" >&5
wait_until 30 answers_are 1 || fail "first answer"
stall "$rtsp_server"
t_stall=$(stream_time)
echo "Did the picture change?" >&5
wait_until 20 answers_are 2 || fail "no answer while the relay was stalled"
grep -q "State:.*stopped" "/proc/$(child "$rtsp_server")/status" || fail "the relay was not stopped during the answer"
echo "ok: answered during a relay stall (stream time $t_stall s)"
wait_until 20 timed_out || fail "the read timeout did not fire while the relay was stalled"
resume "$rtsp_server"
wait_until 40 time_above "$(awk -v t="$t_stall" 'BEGIN {print t + 2}')" ||
  fail "ingest did not recover after the relay resumed"
reconnected 1 || fail "no reconnect counted"
echo "ok: read timeout fired, ingest recovered after the stall ($(reconnects) reconnects)"

r_before=$(reconnects)
t_kill=$(stream_time)
kill -KILL "$(child "$rtsp_server")"; wait "$rtsp_server" 2>/dev/null || true
kill -INT "$rtsp_pub" 2>/dev/null || true; wait "$rtsp_pub" 2>/dev/null || true
sleep 2
rtsp_start_server 200 5>&- # the FIFO's writer must stay ours alone
rtsp_publish live 180 5>&-
wait_until 40 time_above "$(awk -v t="$t_kill" 'BEGIN {print t + 3}')" ||
  fail "no frames after the relay restarted"
[ "$(reconnects)" -gt "$r_before" ] || fail "no reconnect counted across the relay restart"
echo "What happened at the end?" >&5
wait_until 30 answers_are 3 || fail "no answer after the relay restart"
finish_reader
[ "$(answers)" -eq 3 ] || fail "expected 3 answers"
echo "ok: relay killed and restarted: reconnected, 3/3 answers, exit 0"

# ---- 3. SIGINT while blocked on a stalled publisher -----------------------------
start_reader --timeout 60
wait_until 30 time_above 1 || fail "no frames (3)"
stall "$rtsp_pub"
sleep 3 # the reader is now waiting in a read that would last 60 s
t0=$(date +%s.%N)
kill -INT "$reader"
rc=0
wait_until 5 false || true
kill -0 "$reader" 2>/dev/null && fail "vstream-qa still running 5 s after SIGINT"
wait "$reader" || rc=$?
reader=
exec 5>&-
resume "$rtsp_pub"
[ $rc -eq 130 ] || fail "SIGINT during a stalled read: exit $rc, expected 130"
echo "ok: SIGINT during a stalled read: exit 130 after" \
  "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.1f", a - b}') s"

# ---- 4. publisher stalled with a short timeout ----------------------------------
start_reader --timeout 5 --reconnect-max 0.5
wait_until 30 time_above 1 || fail "no frames (4)"
stall "$rtsp_pub"
t_stall=$(stream_time)
wait_until 20 timed_out || fail "no read timeout while the publisher was stalled"
resume "$rtsp_pub"
wait_until 40 time_above "$(awk -v t="$t_stall" 'BEGIN {print t + 2}')" ||
  fail "the stream did not resume after the publisher did"
echo "What is there now?" >&5
wait_until 30 answers_are 1 || fail "no answer after the publisher resumed"
finish_reader
echo "ok: publisher stalled: timeouts fired ($(reconnects) reconnects), stream resumed, exit 0"

# ---- 5. open from a stalled relay -------------------------------------------------
stall "$rtsp_server"
rc=0
t0=$(date +%s.%N)
timeout 30 "$qa" --model "$model" --tokenizer "$tok" --no-status --timeout 2 \
  --rtsp-transport udp "$(url)" </dev/null >/dev/null 2>"$tmp/open.err" || rc=$?
resume "$rtsp_server"
el=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.1f", a - b}')
[ $rc -eq 4 ] || { cat "$tmp/open.err"; fail "open from a stalled relay: exit $rc, expected 4"; }
grep -Eqi "timed out|timeout" "$tmp/open.err" || { cat "$tmp/open.err"; fail "open: no timeout in the message"; }
awk -v e="$el" 'BEGIN {exit !(e < 10)}' || fail "open timeout of 2 s took $el s"
echo "ok: open from a stalled relay: exit 4 after $el s: $(head -n 1 "$tmp/open.err")"

# ---- 6. relay gone for good ----------------------------------------------------------
: >"$tmp/qa.json"; : >"$tmp/qa.err"
timeout 120 "$qa" --model "$model" --tokenizer "$tok" --json --status --status-interval 0.2 \
  --max-tokens 8 --rtsp-transport udp --timeout 5 --reconnect-max 0.5 --max-reconnects 2 \
  --ask "100000:What was the last thing you saw?" "$(url)" </dev/null >"$tmp/qa.json" 2>"$tmp/qa.err" &
reader=$!
wait_until 30 time_above 1 || fail "no frames (6)"
kill -KILL "$(child "$rtsp_server")" "$(child "$rtsp_pub")"
wait "$rtsp_server" "$rtsp_pub" 2>/dev/null || true
rtsp_server= rtsp_pub=
rc=0
wait "$reader" || rc=$?
reader=
[ $rc -eq 1 ] || fail "relay gone with --max-reconnects 2: exit $rc, expected 1"
grep -q "vstream-qa: rtsp://" "$tmp/qa.err" || fail "no reason for the end of the source"
[ "$(answers)" -eq 1 ] || fail "the question due was not answered from what was seen"
echo "ok: relay gone: exit 1 after $(reconnects) reconnects: $(grep 'vstream-qa: rtsp://' "$tmp/qa.err" | head -n 1)"
echo "fault_rtsp: passed"
