#!/usr/bin/env bash
# The README's main job: installs what is missing, builds in release, and runs the official two-stage CogView3
# pipeline (Workflows/relay-1024.yaml) on the tiny random-weight model set at reduced size (base 256² → relay
# 512²), writing out/relay-1024-<seed>.png. The picture is structured noise: the tiny models have random
# weights (Tests/Fixtures/tiny-cogview3/README.md). With the official weights:
#   .build/release/cogflow run Workflows/relay-1024.yaml --models DIR
# Extra arguments go to `cogflow run` (e.g. --set seed=3, --set 'prompt=a red fox').
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release
exec .build/release/cogflow run Workflows/relay-1024.yaml --models Tests/Fixtures/tiny-cogview3 \
  --set size=256 --cache .build/demo-cache "$@"
