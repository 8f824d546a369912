#!/usr/bin/env bash
# Disk full and file size limits while flashspeech writes audio (issue #9):
# each a clear message and exit status 1, never a crash or a signal. Beyond
# flashspeech_cli.sh's "-o /dev/full" and "--raw -o /dev/full": the WAV and
# raw streams on stdout into /dev/full, .flac/.ogg files that lead to
# /dev/full, and a file that hits `ulimit -f` mid-way (the audio before the
# limit stays a readable WAV). The C API side is tests/test_faults.c
# (disk_full suite). Usage: fault_disk.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
fs=$build/apps/flashspeech
test -x "$fs" || { echo "skip: $fs not built"; exit 77; }
model=$src/tests/data/speech/flashspeech-tiny
ipa="h_ə_l_ˈoʊ ð_ˈɛɹ. h_ˈaʊ ɑːɹ j_uː? h_ə_l_ˈoʊ ð_ˈɛɹ. h_ˈaʊ ɑːɹ j_uː?"
export FRT_LOG=${FRT_LOG:-warn}
sanitized=
grep -Eq '^FRT_SANITIZE:[A-Z]+=.+' "$build/CMakeCache.txt" 2>/dev/null && sanitized=1

tmp=$(mktemp -d /tmp/frt-fault-disk-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failed=0
# check NAME PATTERN RC: the last run's exit status and message
check() {
  if [ "$3" -eq 1 ] && grep -Eq "$2" "$tmp/err"; then
    echo "ok: $1: exit 1: $(grep -E "$2" "$tmp/err" | head -n 1)"
  else
    echo "FAILED: $1: exit $3 (expected 1), message:"; cat "$tmp/err"; failed=1
  fi
}

rc=0; "$fs" -m "$model" --phonemes "$ipa" -o - >/dev/full 2>"$tmp/err" || rc=$?
check "WAV stream on stdout into /dev/full" "disk full" $rc
rc=0; "$fs" -m "$model" --phonemes --raw "$ipa" -o - >/dev/full 2>"$tmp/err" || rc=$?
check "raw stream on stdout into /dev/full" "disk full" $rc
exts="wav flac ogg"
# libsndfile's Vorbis writer leaks its encoder state after a failed write (docs/RELIABILITY.md)
[ -n "$sanitized" ] && exts="wav flac"
for ext in $exts; do
  ln -s /dev/full "$tmp/full.$ext"
  rc=0; "$fs" -m "$model" --phonemes "$ipa" -o "$tmp/full.$ext" 2>"$tmp/err" || rc=$?
  check ".$ext file on a full disk" "disk full|No space" $rc
done

# ulimit -f counts 1024-byte blocks: 40 KiB is ~1.2 s of 16 kHz PCM16, the text ~4 s
rc=0; (ulimit -f 40; exec "$fs" -m "$model" --phonemes "$ipa" -o "$tmp/limited.wav") 2>"$tmp/err" || rc=$?
check "file size limit mid-way" "flashspeech: .*File too large" $rc
/usr/bin/python3 - "$tmp/limited.wav" <<'EOF' || { echo "FAILED: the audio before the limit"; failed=1; }
import sys, wave
w = wave.open(sys.argv[1])
n = w.getnframes()
assert w.getframerate() == 16000 and n > 8000, n
print("ok: the %.2f s written before the limit are a valid WAV" % (n / 16000))
EOF
[ $failed -eq 0 ] || { echo "fault_disk: FAILED"; exit 1; }
echo "fault_disk: passed"
