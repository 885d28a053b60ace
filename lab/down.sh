#!/usr/bin/env bash
# Stop everything lab/up.sh (and lab/ctl.sh lag) started, newest first, by
# the pid files in the state dir. Idempotent: daemons that are not running are skipped.
#
# Before stopping Slurm, all jobs still in the queue are cancelled, so no job
# processes outlive slurmd and no pending job reappears on the next up.sh
# (they stay visible in sacct as CANCELLED).
#
#   lab/down.sh           stop daemons, remove $LAB_STATE/env.sh
#   lab/down.sh --purge   also delete $LAB_STATE and $LAB_BASE (keys, DB,
#                         logs, run dirs), the /etc/slurm/slurm.conf link and
#                         the Slurm command shims in /usr/local/bin.
#                         Users, packages and the munge key are kept.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lab/lib.sh
. "$LAB_DIR/lib.sh"

[[ "$(id -u)" -eq 0 ]] || die "must run as root"

PURGE=""
case "${1:-}" in
  "") ;;
  --purge) PURGE=1 ;;
  *) die "usage: $0 [--purge]" ;;
esac

if [[ -d "$LAB_STATE" ]]; then
  exec 9>"$LAB_STATE/lock"
  flock -w 600 9 || die "could not lock $LAB_STATE/lock"
  # tests sourcing lab/env.sh now see no lab and skip
  rm -f "$LAB_STATE/env.sh"
fi

# Cancel queued/running jobs while slurmctld is still there.
queued_jobs() { timeout 5 squeue -h -o %i 2>/dev/null; }
no_jobs() { [[ -z "$(queued_jobs)" ]]; }
if daemon_pid slurmctld >/dev/null && [[ -f "$LAB_SLURM_CONF" ]] && ! no_jobs; then
  log "cancelling remaining jobs"
  queued_jobs | xargs -r timeout 10 scancel 2>/dev/null || true
  # KillWait=5 in slurm.conf bounds this
  wait_until 20 no_jobs || log "WARNING: jobs still listed after scancel"
fi

# stop_daemon NAME: SIGTERM, wait up to 30 s (mysqld flushes InnoDB), SIGKILL.
stop_daemon() {
  local name="$1" pid i
  if ! pid="$(daemon_pid "$name")"; then
    rm -f "${PIDFILE[$name]}"
    return 0
  fi
  log "$name: stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    # a zombie counts as stopped: PID 1 here reaps re-parented daemons late
    pid_alive "$pid" || break
    sleep 0.2
  done
  if pid_alive "$pid"; then
    log "$name: still alive after 30 s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "${PIDFILE[$name]}"
}

# the latency proxy (lab/ctl.sh lag) sits in front of sshd: first
rm -f "$LAG_ENV"
stop_daemon lagproxy
for ((idx = ${#DAEMONS[@]} - 1; idx >= 0; idx--)); do
  stop_daemon "${DAEMONS[idx]}"
done

if [[ -n "$PURGE" ]]; then
  log "purging $LAB_STATE and $LAB_BASE"
  if [[ -L /etc/slurm/slurm.conf && "$(readlink /etc/slurm/slurm.conf)" == "$LAB_SLURM_CONF" ]]; then
    rm -f /etc/slurm/slurm.conf
  fi
  for c in "${SHIM_CMDS[@]}"; do
    if [[ -f "$SHIM_DIR/$c" ]] && grep -qF "$SHIM_MARK" "$SHIM_DIR/$c"; then rm -f "$SHIM_DIR/$c"; fi
  done
  rm -rf -- "$LAB_STATE" "$LAB_BASE"
  rmdir --ignore-fail-on-non-empty "$(dirname "$LAB_BASE")" 2>/dev/null || true
fi
log "lab is down"
