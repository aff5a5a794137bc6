#!/usr/bin/env bash
# CogView3-mini: run every training stage in order, skipping the finished ones (each writes
# $MINI_CKPT/<stage>/DONE) and resuming an interrupted one from its last checkpoint.
#
#   nohup nice -n 19 bash Examples/cogview3-mini/train/run_all.sh >> /work/cogview3-mini-ckpt/run_all.out 2>&1 &
#
# Environment (defaults in the scripts): MINI_CKPT (/work/cogview3-mini-ckpt), VAE_STEPS, BASE_STEPS,
# RELAY_STEPS, DISTILL_STEPS, UNET_BATCH, MINI_THREADS, MINI_SAVE_MINUTES. A CUDA GPU is used when present.
# Stopping: kill the process; rerunning this script resumes. Finishing: python3 export.py writes the
# official folder layout from whatever stages are DONE.
set -euo pipefail
cd "$(dirname "$0")"
export MINI_CKPT="${MINI_CKPT:-/work/cogview3-mini-ckpt}"
mkdir -p "$MINI_CKPT"

run() {  # run STAGE CMD...
  local stage="$1"
  shift
  if [[ -f "$MINI_CKPT/$stage/DONE" ]]; then
    echo "$(date -u +%FT%TZ) [run_all] $stage: done, skipped"
    return
  fi
  echo "$(date -u +%FT%TZ) [run_all] $stage: start ($*)"
  "$@"
  echo "$(date -u +%FT%TZ) [run_all] $stage: finished"
}

run t5 python3 t5stage.py
run vae python3 vae.py
run base python3 diffusion.py base
run relay python3 diffusion.py relay
run distill-base-8 python3 distill.py base 8
run distill-base-4 python3 distill.py base 4
run distill-relay-2 python3 distill.py relay 2
run distill-relay-1 python3 distill.py relay 1
echo "$(date -u +%FT%TZ) [run_all] all stages done; next: python3 export.py"
