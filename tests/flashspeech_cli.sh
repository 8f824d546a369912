#!/bin/bash
# flashspeech end to end on the tiny random checkpoint: streamed WAV that
# sox/ffprobe read, file formats, raw PCM, stdin and -f, bad input (clear
# error, non-zero exit, never a crash), a full disk, a reader that closes
# the pipe, --play on ALSA's null device, and the API example program.
# Random weights: the audio is noise, so format and plumbing are checked,
# not the sound. Usage: flashspeech_cli.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1
SRC=$2
FS=$BUILD/apps/flashspeech
EXAMPLE=$BUILD/apps/speech_example
MODEL=$SRC/tests/data/speech/flashspeech-tiny
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export FRT_LOG=error
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

# run NAME EXPECT_RC GREP_PATTERN CMD...: exit status and stderr message.
expect() {
    local name=$1 want=$2 pattern=$3
    shift 3
    "$@" >"$T/out" 2>"$T/err" </dev/null
    local rc=$?
    if [ "$rc" -ge 128 ]; then fail "$name: killed by a signal (rc $rc)"; cat "$T/err"; return; fi
    if [ "$want" = nonzero ] && [ "$rc" -eq 0 ]; then fail "$name: exit 0, want failure"; return; fi
    if [ "$want" != nonzero ] && [ "$rc" -ne "$want" ]; then
        fail "$name: exit $rc, want $want"
        cat "$T/err"
        return
    fi
    if [ -n "$pattern" ] && ! grep -qiE "$pattern" "$T/err"; then
        fail "$name: stderr lacks /$pattern/:"
        cat "$T/err"
    fi
}

# A build without espeak-ng (FRT_ESPEAK=OFF) speaks phoneme input only.
if grep -q '^FRT_ESPEAK:BOOL=OFF' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    HELLO="h_ə_l_ˈoʊ ð_ˈɛɹ."
    PH=--phonemes
else
    HELLO="Hello there."
    PH=
fi

for tool in sox soxi ffprobe; do
    command -v $tool >/dev/null || { echo "SKIP: $tool missing"; exit 77; }
done

# --- the bar: a streamed WAV on stdout that sox reads -----------------------
"$FS" -m "$MODEL" $PH "$HELLO" -o - 2>"$T/err" | sox -t wav - -n stat 2>"$T/stat"
st=("${PIPESTATUS[@]}")
[ "${st[0]}" -eq 0 ] || { fail "stream: flashspeech exit ${st[0]}"; cat "$T/err"; }
[ "${st[1]}" -eq 0 ] || { fail "stream: sox stat exit ${st[1]}"; cat "$T/stat"; }
grep -q WARN "$T/stat" && fail "stream: sox warns: $(cat "$T/stat")"
len=$(awk '/Length \(seconds\)/ {print $3}' "$T/stat")
awk -v l="${len:-0}" 'BEGIN { exit !(l > 0 && l < 60) }' || fail "stream: implausible length '$len'"

# --- the duration fits the text (#6, #8) -------------------------------------
# duration_ok MODEL MIN MAX: "$HELLO" streamed through sox stat lasts MIN-MAX
# s, in whole codec frames when the model's inventory has '.' (no pause is
# appended then).
duration_ok() {
    "$FS" -m "$1" $PH "$HELLO" -o - 2>"$T/err" | tee "$T/h.wav" | sox -t wav - -n stat 2>"$T/stat"
    local len hop
    len=$(awk '/Length \(seconds\)/ {print $3}' "$T/stat")
    awk -v l="${len:-0}" -v a="$2" -v b="$3" 'BEGIN { exit !(l >= a && l <= b) }' ||
        { fail "duration: '$HELLO' lasts '$len' s with $1, want $2-$3 s"; cat "$T/err"; }
    hop=$(python3 -c 'import json, math, sys
c = json.load(open(sys.argv[1]))
hop = c.get("vocoder_hop") or math.prod(c.get("codec_strides") or [0])
print(hop if "." in c["phonemes"] else 0)' "$1/config.json")
    [ "${hop:-0}" -eq 0 ] || [ $(($(soxi -s "$T/h.wav") % hop)) -eq 0 ] ||
        fail "duration: $(soxi -s "$T/h.wav") samples with $1, not whole $hop-sample frames"
}
# The test checkpoints' durations are random: a generous bound for two words.
duration_ok "$MODEL" 0.2 10
duration_ok "$SRC/tests/data/speech/flashspeech-tiny-vocoder" 0.2 10
# The trained model speaks two words in 0.4-3 s.
[ -f "$SRC/models/flashspeech-tiny/config.json" ] && duration_ok "$SRC/models/flashspeech-tiny" 0.4 3

"$FS" -m "$MODEL" $PH "$HELLO $HELLO" -o - >"$T/s.wav" 2>/dev/null ||
    fail "stream to a file descriptor"
[ "$(soxi -r "$T/s.wav")" = 16000 ] || fail "stream: rate $(soxi -r "$T/s.wav")"
[ "$(soxi -c "$T/s.wav")" = 1 ] || fail "stream: channels"
[ "$(soxi -b "$T/s.wav")" = 16 ] || fail "stream: bits"
probe=$(ffprobe -v error -show_entries stream=codec_name,sample_rate,channels -of csv=p=0 - <"$T/s.wav")
[ "$probe" = "pcm_s16le,16000,1" ] || fail "ffprobe on the stream: '$probe'"

# --- files by extension, raw PCM, stdin, -f ---------------------------------
for ext in wav flac ogg; do
    expect "file .$ext" 0 "" "$FS" -m "$MODEL" $PH "$HELLO" --seed 5 -o "$T/a.$ext"
    [ "$(soxi -r "$T/a.$ext" 2>/dev/null)" = 16000 ] || fail "file .$ext: not a 16 kHz file"
done
"$FS" -m "$MODEL" $PH "$HELLO" --seed 5 -o - --raw >"$T/a.raw" 2>/dev/null || fail "raw"
"$FS" -m "$MODEL" $PH "$HELLO" --seed 5 -o - >"$T/b.wav" 2>/dev/null
[ $(($(stat -c %s "$T/b.wav") - 44)) -eq "$(stat -c %s "$T/a.raw")" ] || fail "raw: size != WAV data"
cmp -s <(tail -c +45 "$T/b.wav") "$T/a.raw" || fail "raw: differs from the WAV's samples"
cmp -s "$T/b.wav" <("$FS" -m "$MODEL" $PH "$HELLO" --seed 5 -o - 2>/dev/null) ||
    fail "same seed, different audio"
[ "$(soxi -s "$T/a.wav")" -eq $(($(stat -c %s "$T/a.raw") / 2)) ] || fail "file and stream lengths differ"
echo "$HELLO" >"$T/in.txt"
"$FS" -m "$MODEL" $PH --seed 5 -o - <"$T/in.txt" 2>/dev/null | cmp -s - "$T/b.wav" || fail "stdin text"
"$FS" -m "$MODEL" $PH --seed 5 -f "$T/in.txt" -o - 2>/dev/null | cmp -s - "$T/b.wav" || fail "-f text"
expect "phoneme input" 0 "" "$FS" -m "$MODEL" $PH --phonemes "h_ə_l_ˈoʊ ð_ˈɛɹ." -o "$T/p.wav"
expect "options" 0 "" "$FS" -m "$MODEL" $PH --steps 2 --sigma-inter 2.5 --speed 1.5 --seed 9 \
    "$HELLO" -o "$T/o.wav"
sox -n -r 44100 -c 2 "$T/ref.flac" synth 1 pinknoise vol 0.3
expect "reference audio" 0 "" "$FS" -m "$MODEL" $PH --ref "$T/ref.flac" "$HELLO" -o "$T/r.wav"
expect "--help" 0 "" "$FS" --help

# --- bad input: a clear message, a non-zero exit, no crash --------------------
expect "steps 3" 2 "steps" "$FS" -m "$MODEL" $PH --steps 3 "Hi." -o "$T/x.wav"
expect "speed junk" 2 "speed" "$FS" -m "$MODEL" $PH --speed fast "Hi." -o "$T/x.wav"
expect "seed junk" 2 "seed" "$FS" -m "$MODEL" $PH --seed -1 "Hi." -o "$T/x.wav"
expect "unknown option" 2 "unknown option" "$FS" -m "$MODEL" $PH --frobnicate "Hi." -o "$T/x.wav"
expect "missing value" 2 "needs a value" "$FS" -m "$MODEL" $PH "Hi." -o
expect "missing model" 1 "not found" "$FS" -m "$T/nope" "Hi." -o "$T/x.wav"
expect "not a model" nonzero "model" "$FS" -m "$T" "Hi." -o "$T/x.wav"
printf 'abc \xff\xfe def' >"$T/bad.txt"
expect "invalid UTF-8" 1 "UTF-8" "$FS" -m "$MODEL" $PH -f "$T/bad.txt" -o "$T/x.wav"
printf '  \n ' >"$T/empty.txt"
expect "empty text" 1 "empty" "$FS" -m "$MODEL" $PH -f "$T/empty.txt" -o "$T/x.wav"
expect "missing text file" 1 "No such file" "$FS" -m "$MODEL" $PH -f "$T/none.txt" -o "$T/x.wav"
expect "missing reference" 1 "ref|audio" "$FS" -m "$MODEL" $PH --ref "$T/none.wav" "Hi." -o "$T/x.wav"
head -c 4000 /dev/urandom >"$T/junk.wav"
expect "corrupt reference" 1 "audio" "$FS" -m "$MODEL" $PH --ref "$T/junk.wav" "Hi." -o "$T/x.wav"
expect "unknown format" 1 "format" "$FS" -m "$MODEL" $PH "Hi." -o "$T/x.mp3"
expect "unwritable dir" 1 "cannot create" "$FS" -m "$MODEL" $PH "Hi." -o "$T/no/dir/x.wav"
expect "disk full" 1 "disk full" "$FS" -m "$MODEL" $PH "$HELLO" -o /dev/full
expect "disk full raw" 1 "disk full" "$FS" -m "$MODEL" $PH "$HELLO" --raw -o /dev/full
if [ ! -d "$SRC/models/flashspeech-tiny" ]; then
    env -u FRT_SPEECH_MODEL "$FS" "Hi." -o "$T/x.wav" </dev/null 2>"$T/err"
    [ $? -eq 1 ] && grep -q -- "--model" "$T/err" || fail "no default model: $(cat "$T/err")"
fi

# --- the reader goes away: stop quietly, no error storm -------------------------
python3 -c 'print("Hello there, how are you today? " * 3000)' >"$T/long.txt"
"$FS" -m "$MODEL" $PH -f "$T/long.txt" -o - 2>"$T/err" | head -c 100 >/dev/null
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || fail "closed pipe: exit $rc"
[ "$(wc -l <"$T/err")" -le 2 ] || { fail "closed pipe: noisy stderr"; head "$T/err"; }

# --- a 1 MB text streams from the start (stopped after a few seconds of audio) --
python3 -c '
import sys
s = "The quick brown fox jumps over the lazy dog. Is it not? "
sys.stdout.write((s * (1048576 // len(s) + 1))[:1048576])' >"$T/big.txt"
"$FS" -m "$MODEL" $PH -o - <"$T/big.txt" 2>"$T/err" | head -c 320044 | wc -c >"$T/n"
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || { fail "1 MB text: exit $rc"; cat "$T/err"; }
[ "$(cat "$T/n")" -eq 320044 ] || fail "1 MB text: only $(cat "$T/n") bytes came out"

# --- a pipe is spoken as it arrives, with the same audio as one call -----------
start=$(date +%s%N)
{ echo "$HELLO"; sleep 6; echo "$HELLO"; } | "$FS" -m "$MODEL" $PH -o - 2>/dev/null |
    { head -c 1044 >/dev/null; date +%s%N >"$T/t1"; cat >/dev/null; }
ms=$((($(cat "$T/t1") - start) / 1000000))
[ "$ms" -lt 5000 ] || fail "stdin: the first sentence waited for the rest (${ms} ms)"
printf '%s\n%s\n\n%s\n' "$HELLO" "$HELLO" "$HELLO" | "$FS" -m "$MODEL" $PH -o - 2>/dev/null >"$T/p1.wav"
"$FS" -m "$MODEL" $PH "$HELLO $HELLO $HELLO" -o - 2>/dev/null >"$T/p2.wav"
cmp -s "$T/p1.wav" "$T/p2.wav" || fail "stdin in pieces and one argument give different audio"
printf '%s\n\xff\n' "$HELLO" | "$FS" -m "$MODEL" $PH -o "$T/partial.wav" 2>"$T/err"
[ $? -eq 1 ] && grep -q "UTF-8 (byte" "$T/err" || fail "bad UTF-8 late in stdin: $(cat "$T/err")"
[ "$(soxi -s "$T/partial.wav" 2>/dev/null)" -gt 0 ] || fail "audio before the bad byte was lost"

# --- the sound card: ALSA's null device, or a clear error ----------------------
mkdir -p "$T/home"
printf 'pcm.!default { type null }\n' >"$T/home/.asoundrc"
HOME=$T/home "$FS" -m "$MODEL" $PH "$HELLO" --play >/dev/null 2>"$T/err" </dev/null
rc=$?
if [ $rc -ne 0 ]; then
    [ $rc -eq 1 ] && grep -qi "sound\|portaudio" "$T/err" || fail "--play: rc $rc: $(cat "$T/err")"
fi

# --- the example program from examples/ ----------------------------------------
if [ -z "$PH" ]; then
    expect "speech_example" 0 "sentence 0" "$EXAMPLE" "$MODEL" "Hello there. Goodbye." "$T/ex.wav"
    [ "$(soxi -r "$T/ex.wav" 2>/dev/null)" = 16000 ] || fail "speech_example: no WAV written"
else
    expect "speech_example without espeak-ng" 1 "espeak-ng" "$EXAMPLE" "$MODEL" "Hi." "$T/ex.wav"
    expect "text without espeak-ng" 1 "espeak-ng" "$FS" -m "$MODEL" "Hi." -o "$T/x.wav"
fi
expect "speech_example bad model" 1 "cannot open" "$EXAMPLE" "$T/nope" "Hi." "$T/ex.wav"

if [ $fails -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "flashspeech CLI: all checks passed"
