#!/usr/bin/env bash
# The FlashSpeech PyTorch reference against torch.nn and independent
# formulations, and the checked-in speech goldens against a float32 recompute.
# Exit 77 (ctest: skipped) when Debian's torch is not installed.
set -euo pipefail
src=$2
if ! /usr/bin/python3 -c "import torch, numpy" 2>/dev/null; then
  echo "python3-torch/python3-numpy not installed for /usr/bin/python3: skipped"
  exit 77
fi
exec /usr/bin/python3 "$src/tools/reference/flashspeech/selfcheck.py"
