#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs the whole test suite in release
# (debug builds of the numeric code are too slow). Extra arguments go to `swift test` (e.g. --filter X).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# OpenBLAS falls back to generic kernels on CPUs newer than itself; pick the right family for the test
# process (the cogflow binary does the same by itself). See Sources/Tensor/BLASCore.swift.
if [ -z "${OPENBLAS_CORETYPE+x}" ]; then
  core=$(bash scripts/blas-core.sh)
  if [ -n "$core" ]; then export OPENBLAS_CORETYPE="$core"; fi
fi
exec swift test -c release -Xswiftc -enable-testing "$@"
