#!/usr/bin/env bash
# The README's main job: installs what is missing, builds in release, runs `cogflow bench kernels`
# (until the CogView3 workflow nodes exist, the main job measures this machine's kernels).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release
exec .build/release/cogflow bench kernels "$@"
