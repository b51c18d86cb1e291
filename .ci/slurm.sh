#!/usr/bin/env bash
# .ci/slurm.sh — a throw-away single-node SLURM cluster on localhost (CI / laptop).
#
#   .ci/slurm.sh up       install (if missing) + configure + start munged, slurmctld, slurmd;
#                         wait until the node is idle; print one summary line
#   .ci/slurm.sh status   one line per daemon + node state (exit 0 iff the node is idle)
#   .ci/slurm.sh down     stop exactly the daemons `up` started (by pid file), remove the pid files
#
# Needs root (or password-less sudo), Debian/Ubuntu apt, no systemd, no stdin.
# Facts behind every choice here: shared/notes/slurm-on-one-machine.md.
#
# Environment knobs (all optional):
#   SLURM_CI_PARTITION  partition name. Default: the `slurm_partition` default resource of the
#                       repo's `slurm/config.yaml` profile (so the profile works unchanged), else "main".
#   SLURM_CI_MEM_MB     RealMemory of the node. Default: 90 % of min(MemTotal, cgroup memory.max).
#   SLURM_CI_CPUS       CPUs of the node. Default: $(nproc).
#   SLURM_CI_TIMEOUT    seconds `up` waits for the node to become idle. Default: 60.
#   SLURM_CI_FORCE=1    overwrite an /etc/slurm/slurm.conf that this script did not write.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR=/run/ci-slurm                 # which daemons *we* started
CONF_DIR=/etc/slurm
CONF="$CONF_DIR/slurm.conf"
MARKER="# written by .ci/slurm.sh"
PKGS=(slurmctld slurmd slurm-client munge)
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid

log() { echo "[slurm.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ $EUID -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    exec sudo -n --preserve-env=SLURM_CI_PARTITION,SLURM_CI_MEM_MB,SLURM_CI_CPUS,SLURM_CI_TIMEOUT,SLURM_CI_FORCE \
      bash "${BASH_SOURCE[0]}" "$@"
  fi
  die "must run as root (or with password-less sudo)"
fi

# ---------------------------------------------------------------- helpers
pid_alive() {  # pid_alive PIDFILE COMM  -> 0 if the pid in PIDFILE runs a process named COMM
  local f=$1 comm=$2 pid
  [[ -s $f ]] || return 1
  pid=$(tr -dc '0-9' <"$f")
  [[ -n $pid && -r /proc/$pid/comm ]] || return 1
  [[ "$(cat "/proc/$pid/comm")" == "$comm" ]]
}

node_name() { hostname -s; }

partition_name() {
  if [[ -n ${SLURM_CI_PARTITION:-} ]]; then echo "$SLURM_CI_PARTITION"; return; fi
  local p=""
  if [[ -f $REPO_ROOT/slurm/config.yaml ]]; then
    # e.g.  `  slurm_partition: "'main'"`  ->  main
    p=$(sed -n 's/^[[:space:]]*slurm_partition:[[:space:]]*//p' "$REPO_ROOT/slurm/config.yaml" \
        | head -n1 | sed 's/[[:space:]]*#.*$//' | tr -d "\"' ")
  fi
  [[ $p =~ ^[A-Za-z0-9_.-]+$ ]] || p=main
  echo "$p"
}

real_memory_mb() {
  if [[ -n ${SLURM_CI_MEM_MB:-} ]]; then echo "$SLURM_CI_MEM_MB"; return; fi
  local total lim
  total=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
  lim=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || echo max)
  if [[ $lim =~ ^[0-9]+$ ]] && (( lim / 1048576 < total )); then total=$(( lim / 1048576 )); fi
  echo $(( total * 9 / 10 ))   # below the real total, else the node drains
}

install_packages() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get"
  log "installing ${missing[*]}"
  # Keep maintainer scripts from starting daemons (systemd or sysv): we start them ourselves.
  local own_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; own_policy=1
  fi
  local rc=0
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >/tmp/ci-slurm-apt.log 2>&1 || {
    log "apt-get install failed; running apt-get update and retrying"
    apt-get update -q </dev/null >>/tmp/ci-slurm-apt.log 2>&1 || true
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >>/tmp/ci-slurm-apt.log 2>&1 || rc=$?
  }
  ((own_policy)) && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || { tail -n 20 /tmp/ci-slurm-apt.log >&2; die "apt-get install failed (log: /tmp/ci-slurm-apt.log)"; }
}

write_conf() {  # prints "changed" on stdout if the file content changed
  local host cpus mem part tmp
  host=$(node_name); cpus=${SLURM_CI_CPUS:-$(nproc)}; mem=$(real_memory_mb); part=$(partition_name)
  if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF" && [[ ${SLURM_CI_FORCE:-0} != 1 ]]; then
    die "$CONF exists and was not written by this script (set SLURM_CI_FORCE=1 to overwrite)"
  fi
  mkdir -p "$CONF_DIR"
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
$MARKER — single-node localhost cluster for CI/laptops; do not use in production.
ClusterName=ci
SlurmctldHost=${host}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
# No accounting: sacct does not work here -> the Snakemake profile must use squeue.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
# Finished jobs stay visible to squeue this long. Keep >= 3 x slurm-init-seconds-before-status-checks
# and > 180 s (the plugin's longest polling interval), or squeue loses finished jobs.
MinJobAge=300
InactiveLimit=0
KillWait=5
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=${part} Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
  if [[ -f $CONF ]] && cmp -s "$tmp" "$CONF"; then rm -f "$tmp"; return 0; fi
  install -m 644 "$tmp" "$CONF"; rm -f "$tmp"
  echo changed
}

prepare_dirs_and_key() {
  id munge >/dev/null 2>&1 || die "user munge missing (package munge not installed?)"
  id slurm >/dev/null 2>&1 || die "user slurm missing (package slurmctld not installed?)"
  install -d -o munge -g munge -m 700 /etc/munge /var/lib/munge /var/log/munge
  install -d -o munge -g munge -m 755 /run/munge
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
  fi
  chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  install -d -o slurm -g slurm -m 755 /var/lib/slurm /var/lib/slurm/slurmctld /var/log/slurm
  install -d -o root -g root -m 755 /var/lib/slurm/slurmd
  mkdir -p "$STATE_DIR"
}

start_munged() {
  if pid_alive "$MUNGE_PID" munged; then return 0; fi
  if [[ -S /run/munge/munge.socket.2 ]] && munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "using an already running munged (not started by this script)"; return 0
  fi
  rm -f "$MUNGE_PID"
  runuser -u munge -- /usr/sbin/munged </dev/null || die "munged failed to start (see /var/log/munge/munged.log)"
  touch "$STATE_DIR/munged"
}

start_slurmctld() {
  if pid_alive "$CTLD_PID" slurmctld; then return 0; fi
  rm -f "$CTLD_PID"
  /usr/sbin/slurmctld </dev/null || die "slurmctld failed (see /var/log/slurm/slurmctld.log)"
  touch "$STATE_DIR/slurmctld"
}

start_slurmd() {
  if pid_alive "$SLURMD_PID" slurmd; then return 0; fi
  rm -f "$SLURMD_PID"
  /usr/sbin/slurmd -N "$(node_name)" </dev/null || die "slurmd failed (see /var/log/slurm/slurmd.log)"
  touch "$STATE_DIR/slurmd"
}

stop_one() {  # stop_one NAME PIDFILE COMM
  local name=$1 f=$2 comm=$3 pid i
  [[ -e $STATE_DIR/$name ]] || return 0          # not ours: leave it alone
  if pid_alive "$f" "$comm"; then
    pid=$(tr -dc '0-9' <"$f")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    if [[ -d /proc/$pid ]]; then log "$name ($pid) ignored SIGTERM; sending SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    log "stopped $name ($pid)"
  fi
  rm -f "$f" "$STATE_DIR/$name"
}

node_state() { sinfo -h -o %T 2>/dev/null | head -n1 | tr -d ' *~#$@'; }

cmd_up() {
  local t0=$SECONDS changed
  install_packages
  changed=$(write_conf)
  prepare_dirs_and_key
  if [[ $changed == changed ]] && { pid_alive "$CTLD_PID" slurmctld || pid_alive "$SLURMD_PID" slurmd; }; then
    log "slurm.conf changed: restarting our slurm daemons"
    stop_one slurmd "$SLURMD_PID" slurmd; stop_one slurmctld "$CTLD_PID" slurmctld
  fi
  start_munged
  start_slurmctld
  start_slurmd
  local deadline=$((SECONDS + ${SLURM_CI_TIMEOUT:-60})) state=""
  while ((SECONDS < deadline)); do
    state=$(node_state)
    [[ $state == idle || $state == mixed || $state == allocated ]] && break
    if [[ $state == drain* || $state == down* ]]; then
      scontrol update NodeName="$(node_name)" State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 0.5
  done
  if [[ $state != idle && $state != mixed && $state != allocated ]]; then
    log "node not idle after ${SLURM_CI_TIMEOUT:-60}s (state: '${state:-none}')"
    sinfo -R >&2 || true
    tail -n 15 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    exit 1
  fi
  local ver; ver=$(sinfo -V 2>/dev/null | awk '{print $2}')
  echo "slurm up: slurm ${ver:-?}, node $(node_name) cpus=${SLURM_CI_CPUS:-$(nproc)} mem=$(real_memory_mb)MB," \
       "partition $(partition_name) (default), state $state, $((SECONDS - t0))s"
}

cmd_down() {
  stop_one slurmd "$SLURMD_PID" slurmd
  stop_one slurmctld "$CTLD_PID" slurmctld
  stop_one munged "$MUNGE_PID" munged
  rmdir "$STATE_DIR" 2>/dev/null || true
  echo "slurm down"
}

cmd_status() {
  local d f c ours
  for d in munged:$MUNGE_PID slurmctld:$CTLD_PID slurmd:$SLURMD_PID; do
    c=${d%%:*}; f=${d#*:}; ours=""; [[ -e $STATE_DIR/$c ]] && ours=" (started by slurm.sh)"
    if pid_alive "$f" "$c"; then echo "$c: running pid $(tr -dc '0-9' <"$f")$ours"; else echo "$c: not running"; fi
  done
  local state; state=$(command -v sinfo >/dev/null && node_state || true)
  echo "node: ${state:-unreachable}"
  [[ $state == idle || $state == mixed || $state == allocated ]]
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
