#!/usr/bin/env bash
# Starts a one-node Slurm (slurmctld + slurmd on this machine, munge for auth) without systemd, for the
# Slurm tests (Tests/CLITests/SlurmTests.swift) and CI (.ci/run). Needs root and Debian's slurm-wlm + munge.
# State, logs and pid files go under $COGFLOW_SLURM_STATE (default /tmp/cogflow-slurm); the config is written to
# /etc/slurm/slurm.conf (where sbatch/squeue/scontrol look) unless one is already there that we did not write.
# scripts/slurm-down.sh stops what this started.
set -euo pipefail
state=${COGFLOW_SLURM_STATE:-/tmp/cogflow-slurm}
conf=/etc/slurm/slurm.conf
marker="# written by cogflow scripts/slurm-up.sh"

for tool in munged slurmctld slurmd sinfo; do
  command -v "$tool" >/dev/null || { echo "slurm-up: $tool not found (apt-get install slurm-wlm munge)" >&2; exit 1; }
done
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  echo "slurm-up: $conf exists and was not written by this script; not touching a real cluster's config" >&2
  exit 1
fi

if [ -f "$conf" ] && [ -f "$state/slurmctld.pid" ] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null \
  && sinfo -h -N -o '%t' 2>/dev/null | grep -qx 'idle'; then
  echo "slurm-up: already up (state in $state)"
  exit 0
fi

mkdir -p "$state/ctld" "$state/d" "$state/munge"
host=$(hostname -s)
cpus=$(nproc)
# Slurm drains a node that reports less memory than configured: announce 90% of what is there.
mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
user=$(id -un)

mkdir -p /etc/slurm
cat >"$conf" <<CONF
$marker
ClusterName=cogflow
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
# Finished jobs stay visible to scontrol (there is no accounting database for sacct) for an hour.
MinJobAge=3600
SchedulerParameters=sched_interval=2
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

# munge: Debian's package makes /etc/munge/munge.key at install; make one if it is missing.
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null; then mungekey --create --force; else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; fi
  chown munge:munge /etc/munge/munge.key 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge
# munged runs as the munge user, which must be able to write its pid file.
chown munge:munge /run/munge "$state/munge" 2>/dev/null || true
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- munged --pid-file="$state/munge/munged.pid" 2>/dev/null || munged --force --pid-file="$state/munge/munged.pid"
  else
    munged --force --pid-file="$state/munge/munged.pid"
  fi
fi

slurmctld -f "$conf" -i
slurmd -f "$conf"

for _ in $(seq 1 60); do
  if sinfo -h -N -o '%t' 2>/dev/null | grep -qx 'idle'; then
    echo "slurm-up: one-node Slurm ready ($host, $cpus CPUs, $mem MB); state in $state"
    exit 0
  fi
  sleep 1
done
echo "slurm-up: the node did not become idle in 60 s; logs: $state/slurmctld.log $state/slurmd.log" >&2
sinfo -N -l >&2 || true
exit 1
