#!/usr/bin/env bash
# A one-host SLURM cluster of its own, for the tests: munged, slurmctld and slurmd, every file under DIR.
#
#   bash tests/slurm/cluster.sh start DIR CTLD_PORT SLURMD_PORT   # prints the SLURM_CONF to export
#   bash tests/slurm/cluster.sh stop DIR                          # stops the three daemons by their pid files
#
# Nothing outside DIR is touched: its own munge key and socket (AuthInfo=socket=...), its own ports,
# state and spool directories, so it runs beside any other SLURM or munge on the machine. Needs root
# (slurmd runs jobs as the submitting user) and slurm-wlm + munge (deploy/system-deps.sh installs them).
set -euo pipefail

cmd=${1:?usage: cluster.sh start|stop DIR ...}
dir=$(realpath -m "${2:?usage: cluster.sh start|stop DIR ...}")

stop() {
  for name in slurmd slurmctld munged; do
    pidfile="$dir/$name.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}

if [ "$cmd" = stop ]; then
  stop
  exit 0
fi
[ "$cmd" = start ] || { echo "cluster.sh: unknown command $cmd" >&2; exit 2; }
ctld_port=${3:?CTLD_PORT}
slurmd_port=${4:?SLURMD_PORT}

host=$(hostname -s)
mkdir -p "$dir"/{state,spool,log}
chmod 700 "$dir"
dd if=/dev/urandom bs=1 count=1024 of="$dir/munge.key" status=none
chmod 400 "$dir/munge.key"
munged --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" --pid-file="$dir/munged.pid" \
  --log-file="$dir/log/munged.log" --seed-file="$dir/munged.seed"

mem=$(awk '/MemTotal/ {print int($2 / 1024 / 2)}' /proc/meminfo)
cat >"$dir/slurm.conf" <<CONF
ClusterName=gossiptest
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
NodeName=$host CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
export SLURM_CONF="$dir/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 1 100); do
  state=$(sinfo -h -o %t 2>/dev/null || true)
  case "$state" in idle*|mix*|alloc*) echo "$SLURM_CONF"; exit 0 ;; esac
  sleep 0.2
done
echo "cluster.sh: the node did not come up (sinfo: ${state:-no answer}); logs in $dir/log" >&2
stop
exit 1
