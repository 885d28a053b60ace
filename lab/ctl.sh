#!/usr/bin/env bash
# Stop, start or restart one daemon of the running lab, for fault tests:
#
#   lab/ctl.sh stop|start|restart sshd|slurmctld|slurmdbd
#
# Idempotent: stopping a stopped daemon and starting a running one do
# nothing. start (and restart) return only when the daemon answers:
# sshd listens on $LAB_SSH_PORT, slurmctld answers `scontrol ping` and the
# node is usable again, slurmdbd answers `sacctmgr show cluster`. stop
# returns when the process is gone (SIGTERM, SIGKILL after 30 s).
#
# The daemons are started exactly as lab/up.sh starts them, with the config
# up.sh wrote; run up.sh first. Stopping sshd stops its listener only:
# sessions already open keep running, as with `systemctl stop ssh`.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lab/lib.sh
. "$LAB_DIR/lib.sh"

usage() { die "usage: $0 stop|start|restart sshd|slurmctld|slurmdbd"; }
(($# == 2)) || usage
ACTION="$1" NAME="$2"
case "$ACTION" in stop | start | restart) ;; *) usage ;; esac
case "$NAME" in sshd | slurmctld | slurmdbd) ;; *) usage ;; esac

[[ "$(id -u)" -eq 0 ]] || die "must run as root"
[[ -f "$LAB_SLURM_CONF" && -f "$SSH_DIR/sshd_config" ]] || die "the lab is not set up: run lab/up.sh first"

# Serialise with up.sh/down.sh (and other ctl.sh runs) on the lab's lock.
# Daemons are started with fd 9 closed (9>&-) so they do not keep it.
exec 9>"$LAB_STATE/lock"
flock -w 120 9 || die "could not lock $LAB_STATE/lock"

# The checks lab/up.sh waits on.
port_listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
dbd_up() { timeout 5 sacctmgr -n -P show cluster format=cluster; }
ctld_up() { timeout 5 scontrol ping | grep -q 'is UP'; }
NODE="$(hostname -s)"
node_state() { timeout 5 sinfo -h -n "$NODE" -o '%T' | head -n 1; }
node_ready() { [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing) ]]; }

# stop NAME: SIGTERM, wait up to 30 s, SIGKILL (as lab/down.sh does).
stop() {
  local name="$1" pid i
  if ! pid="$(daemon_pid "$name")"; then
    rm -f "${PIDFILE[$name]}"
    log "$name: not running"
    return 0
  fi
  log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    pid_alive "$pid" || break # a zombie counts as stopped
    sleep 0.2
  done
  if pid_alive "$pid"; then
    log "$name: still alive after 30 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "${PIDFILE[$name]}"
  if [[ "$name" == sshd ]]; then
    wait_until 10 not port_listening "$LAB_SSH_PORT" || die "sshd: port $LAB_SSH_PORT still listening"
  fi
}
not() { ! "$@"; }

fail_with_logs() {
  printf '[lab] ERROR: %s\n' "$*" >&2
  show_logs
  exit 1
}

# start NAME: the commands of lab/up.sh, then wait until the daemon answers.
start() {
  local name="$1" pid
  if pid="$(daemon_pid "$name")"; then
    log "$name: running (pid $pid)"
  else
    log "$name: starting"
    case "$name" in
      sshd)
        port_listening "$LAB_SSH_PORT" && die "port $LAB_SSH_PORT in use by something else"
        install -d -m 0755 /run/sshd
        /usr/sbin/sshd -t -f "$SSH_DIR/sshd_config" || die "sshd config test failed"
        /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "${LOGFILE[sshd]}" </dev/null >/dev/null 2>&1 9>&- \
          || fail_with_logs "sshd failed to start"
        ;;
      slurmdbd)
        /usr/sbin/slurmdbd </dev/null >>"$LOG_DIR/slurmdbd.stderr" 2>&1 9>&- || fail_with_logs "slurmdbd failed to start"
        ;;
      slurmctld)
        /usr/sbin/slurmctld </dev/null >>"$LOG_DIR/slurmctld.stderr" 2>&1 9>&- || fail_with_logs "slurmctld failed to start"
        ;;
    esac
    wait_until 15 daemon_pid "$name" || fail_with_logs "$name did not write its pid file"
  fi
  case "$name" in
    sshd) wait_until 10 port_listening "$LAB_SSH_PORT" || fail_with_logs "sshd not listening on $LAB_SSH_PORT" ;;
    slurmdbd) wait_until 30 dbd_up || fail_with_logs "slurmdbd not answering (sacctmgr show cluster)" ;;
    slurmctld)
      wait_until 30 ctld_up || fail_with_logs "slurmctld not answering (scontrol ping)"
      wait_until 30 node_ready || fail_with_logs "node $NODE not ready after slurmctld started (state: $(node_state || true))"
      ;;
  esac
  log "$name: up"
}

case "$ACTION" in
  stop) stop "$NAME" ;;
  start) start "$NAME" ;;
  restart) stop "$NAME" && start "$NAME" ;;
esac
