#!/usr/bin/env bash
# Stops what scripts/slurm-up.sh started: slurmd, slurmctld and munged, by their pid files.
set -uo pipefail
state=${COGFLOW_SLURM_STATE:-/tmp/cogflow-slurm}
for pidfile in "$state/slurmd.pid" "$state/slurmctld.pid" "$state/munge/munged.pid"; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
echo "slurm-down: stopped"
