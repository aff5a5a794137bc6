#!/usr/bin/env bash
# Sets up the peer benchmark's Python environment outside the repository (default /work/venv-peer; override with
# PEER_VENV=/path). Pinned versions. By default the venv sees the system site-packages, so a system-wide
# torch 2.15.0 (+ diffusers/transformers) is reused when its version matches the pin; anything missing or at another
# version is installed into the venv from PyPI. PEER_ISOLATED=1 makes a venv without system packages (downloads
# torch, ~1 GB; use the CPU wheel index with PIP_INDEX_URL=https://download.pytorch.org/whl/cpu if you want it).
set -euo pipefail
VENV=${PEER_VENV:-/work/venv-peer}
PINS=(torch==2.15.0 diffusers==0.42.1 transformers==5.23.0 openvino==2026.4.0 safetensors numpy)
if [[ ! -x "$VENV/bin/python" ]]; then
  if [[ "${PEER_ISOLATED:-0}" == 1 ]]; then python3 -m venv "$VENV"; else python3 -m venv --system-site-packages "$VENV"; fi
fi
missing=()
for pin in "${PINS[@]}"; do
  name=${pin%%==*}
  want=${pin#*==}
  have=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
  if [[ "$pin" != *==* ]]; then [[ -n "$have" ]] || missing+=("$pin"); continue; fi
  # A local build tag (2.15.0+cpu, +cu132) counts as the pinned release.
  [[ "${have%%+*}" == "$want" ]] || missing+=("$pin")
done
if ((${#missing[@]})); then
  echo "installing into $VENV: ${missing[*]}"
  "$VENV/bin/pip" install --quiet "${missing[@]}"
fi
"$VENV/bin/python" -c "import torch, diffusers, transformers, openvino as ov; \
print('torch', torch.__version__, '| diffusers', diffusers.__version__, '| transformers', transformers.__version__, \
'| openvino', ov.__version__)"
