#!/usr/bin/env bash
# Installs every Debian 12 package that flashrt's build, tests and demo need.
# Idempotent: when everything is present it only checks (a second run takes
# about a second). Run as root, or with sudo available.
set -euo pipefail

PKGS=(
  # toolchain
  build-essential cmake pkg-config git clang llvm libclang-rt-14-dev clang-format
  # core libraries
  libcjson-dev libopenblas-dev libcriterion-dev
  # vstream
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev libavdevice-dev
  ffmpeg rtsp-server-perl
  # speech
  libsndfile1-dev portaudio19-dev libespeak-ng-dev espeak-ng libfftw3-dev sox
  # reference implementation, goldens and training
  python3 python3-numpy python3-torch python3-sentencepiece sentencepiece
  # speech corpus text (tools/speechcorpus)
  wordnet-base
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
