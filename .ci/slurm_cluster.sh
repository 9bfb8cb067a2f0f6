#!/usr/bin/env bash
# A real single-node SLURM cluster for the tests (Debian 12: slurm 22.05 + munge), as root.
#
#   .ci/slurm_cluster.sh install   apt-get install slurmctld slurmd slurm-client munge (only if missing)
#   .ci/slurm_cluster.sh up        start munged, slurmctld, slurmd; wait until the node is idle;
#                                  prints `export SLURM_CONF=...` (eval it, or the tests find this
#                                  checkout's state dir themselves)
#   .ci/slurm_cluster.sh env       print that `export SLURM_CONF=...` line
#   .ci/slurm_cluster.sh down      stop the three daemons by the PIDs recorded at `up`
#   .ci/slurm_cluster.sh running   exit status 0 if the cluster is up and answers
#   .ci/slurm_cluster.sh status    daemons and node state
#
# Everything lives in one private state dir ($LORA_LAB_SLURM_DIR, default /tmp/lora_lab_slurm-<key>,
# key = the first 8 hex digits of sha1(repository path)): slurm.conf, a fresh munge key and socket,
# spool/state dirs, logs, pid files. The ports are derived from the same key, so checkouts on one
# machine (several worktrees, several CI runs) get separate clusters. Nothing under /etc is touched,
# so a system SLURM on the same machine is left alone. One node `localhost` with
# proctrack/linuxproc, task/none and no accounting (sacct does not work; submitit tolerates that
# and waits for result files). CPUs are declared oversubscribed (LORA_LAB_SLURM_CPUS, default 8)
# so parallel test jobs fit on a 2-core machine. Two partitions share the node: `debug` (default)
# and `urgent` (higher priority tier, PreemptMode=REQUEUE) so a job in `urgent` preempts and
# requeues jobs in `debug`, as on a preemptible cluster partition.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
KEY=$(printf %s "$ROOT" | sha1sum | cut -c1-8)
STATE=${LORA_LAB_SLURM_DIR:-/tmp/lora_lab_slurm-$KEY}
PORT_BASE=$(( 20000 + (16#$KEY % 10000) * 2 ))
CTLD_PORT=${LORA_LAB_SLURMCTLD_PORT:-$PORT_BASE}
SLURMD_PORT=${LORA_LAB_SLURMD_PORT:-$((PORT_BASE + 1))}
CPUS=${LORA_LAB_SLURM_CPUS:-8}
CONF=$STATE/slurm.conf

die() { echo "slurm_cluster: $*" >&2; exit 1; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "installing slurm needs root (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null || die "apt-get install slurmctld slurmd slurm-client munge failed"
}

write_conf() {
  local mem
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat >"$CONF" <<EOF
ClusterName=loralab
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge.socket,cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
PlugStackConfig=$STATE/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=30
MinJobAge=300
SchedulerParameters=sched_interval=2,bf_interval=2
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=localhost CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE
PartitionName=urgent Nodes=localhost Default=NO MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
  : >"$STATE/plugstack.conf"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

fail_up() {  # stop whatever `up` started, then fail with the reason and the daemons' last words
  local why=$1
  for log in munged slurmctld slurmd; do
    [ -s "$STATE/$log.log" ] && { echo "--- $STATE/$log.log" >&2; tail -15 "$STATE/$log.log" >&2; }
  done
  down >/dev/null 2>&1 || true
  die "$why"
}

up() {
  [ "$(id -u)" = 0 ] || die "the test cluster runs its daemons as root"
  for bin in munged mungekey slurmctld slurmd sinfo; do command -v $bin >/dev/null || die "$bin not found (run: $0 install)"; done
  if pid_alive "$STATE/slurmctld.pid"; then die "a cluster is already up in $STATE (run: $0 down)"; fi
  rm -rf "$STATE"
  mkdir -p "$STATE/ctld" "$STATE/slurmd" "$STATE/munge"
  chmod 700 "$STATE/munge"
  write_conf
  mungekey --create --keyfile="$STATE/munge/munge.key" --force >/dev/null 2>&1 \
    || dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1 count=1024 status=none
  chmod 400 "$STATE/munge/munge.key"
  munged --force --socket="$STATE/munge.socket" --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munged.pid" --log-file="$STATE/munged.log" --seed-file="$STATE/munge/munged.seed" \
    || fail_up "munged failed to start"
  export SLURM_CONF=$CONF
  slurmctld -f "$CONF" -c -i || fail_up "slurmctld failed to start"
  slurmd -f "$CONF" -N localhost || fail_up "slurmd failed to start"
  local state=""
  for _ in $(seq 1 100); do
    state=$(sinfo -h -N -n localhost -o %T 2>/dev/null | head -1 || true)
    case "$state" in idle*|mixed*|allocated*) break ;; esac
    sleep 0.2
  done
  case "$state" in
    idle*|mixed*|allocated*) ;;
    *) fail_up "node localhost did not become idle within 20 s (state: '${state:-none}')" ;;
  esac
  echo "export SLURM_CONF=$CONF"
}

stop_pid() {  # stop_pid NAME PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL
  local name=$1 file=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then echo "slurm_cluster: $name ($pid) ignored SIGTERM; killing" >&2; kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$file"
}

down() {
  [ -f "$CONF" ] && SLURM_CONF=$CONF scancel --full --quiet -u root 2>/dev/null || true
  stop_pid slurmd "$STATE/slurmd.pid"
  stop_pid slurmctld "$STATE/slurmctld.pid"
  stop_pid munged "$STATE/munged.pid"
}

running() {
  pid_alive "$STATE/munged.pid" && pid_alive "$STATE/slurmctld.pid" && pid_alive "$STATE/slurmd.pid" \
    && SLURM_CONF=$CONF sinfo -h >/dev/null 2>&1
}

status() {
  for d in munged slurmctld slurmd; do
    if pid_alive "$STATE/$d.pid"; then echo "$d: running (pid $(cat "$STATE/$d.pid"))"; else echo "$d: stopped"; fi
  done
  [ -f "$CONF" ] && SLURM_CONF=$CONF sinfo -N 2>/dev/null || true
}

case "${1:-}" in
  install) install_packages ;;
  up) up ;;
  down) down ;;
  running) running ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  status) status ;;
  *) echo "usage: $0 install|up|down|running|env|status" >&2; exit 2 ;;
esac
