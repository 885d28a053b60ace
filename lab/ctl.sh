#!/usr/bin/env bash
# Control the running lab, for fault and latency tests:
#
#   lab/ctl.sh stop|start|restart sshd|slurmctld|slurmdbd
#   lab/ctl.sh lag DELAY|off
#   lab/ctl.sh slow sbatch|squeue|sacct|scancel DURATION|hang|off
#   lab/ctl.sh slow off
#   lab/ctl.sh count on|off|show
#
# stop/start/restart: idempotent: stopping a stopped daemon and starting a
# running one do nothing. start (and restart) return only when the daemon
# answers: sshd listens on $LAB_SSH_PORT, slurmctld answers `scontrol ping`
# and the node is usable again, slurmdbd answers `sacctmgr show cluster`.
# stop returns when the process is gone (SIGTERM, SIGKILL after 30 s).
# The daemons are started exactly as lab/up.sh starts them, with the config
# up.sh wrote; run up.sh first. Stopping sshd stops its listener only:
# sessions already open keep running, as with `systemctl stop ssh`.
#
# lag DELAY (e.g. 25ms): run the latency proxy (lab/lagproxy) on
# 127.0.0.1:$LAB_LAG_PORT (2223) in front of sshd, adding DELAY each way (so
# 2*DELAY per round trip). Idempotent; a different DELAY restarts it (open
# connections drop). lab/env.sh then exports WESGATE_LAB_LAG_ADDR.
# lag off: stop it.
#
# slow CMD DURATION (3s, 500ms, 1.5s, 2m): the lab's shim for CMD sleeps that
# long before running it, for every caller (ssh sessions too). slow CMD hang:
# CMD never answers (until `slow CMD off`/`slow off`, then it fails).
# slow CMD off / slow off: back to full speed for CMD / for all.
#
# count on: start a fresh log of every shimmed Slurm command (time, user,
# command) and remember where the sshd log is. count show: commands per
# user since then, and the ssh sessions sshd started per user. count off:
# stop logging (the log is kept until the next `count on`).
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lab/lib.sh
. "$LAB_DIR/lib.sh"

usage() {
  die "usage: $0 stop|start|restart sshd|slurmctld|slurmdbd
       $0 lag DELAY|off
       $0 slow $(IFS='|'; echo "${SHIM_CMDS[*]}") DURATION|hang|off
       $0 slow off
       $0 count on|off|show"
}
(($# >= 1)) || usage
ACTION="$1"
NAME="${2:-}"
case "$ACTION" in
  stop | start | restart)
    (($# == 2)) || usage
    case "$NAME" in sshd | slurmctld | slurmdbd) ;; *) usage ;; esac
    ;;
  lag) (($# == 2)) || usage ;;
  slow)
    if [[ "$NAME" == off ]]; then (($# == 2)) || usage; else (($# == 3)) || usage; fi
    ;;
  count)
    (($# == 2)) || usage
    case "$NAME" in on | off | show) ;; *) usage ;; esac
    ;;
  *) usage ;;
esac

[[ "$(id -u)" -eq 0 ]] || die "must run as root"
[[ -f "$LAB_SLURM_CONF" && -f "$SSH_DIR/sshd_config" ]] || die "the lab is not set up: run lab/up.sh first"
install -d -m 0755 "$RUN_DIR" "$LOG_DIR"

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

# ---------------------------------------------------------------------------
# lag: the latency proxy
# ---------------------------------------------------------------------------
lag_on() {
  local delay="$1" pid want
  [[ "$delay" =~ ^[0-9]+(\.[0-9]+)?(ns|us|ms|s|m)$ ]] || die "lag: bad delay '$delay' (e.g. 25ms, 0.1s)"
  want="export WESGATE_LAB_LAG_ADDR='127.0.0.1:$LAB_LAG_PORT'
export WESGATE_LAB_LAG_DELAY='$delay'"
  if pid="$(daemon_pid lagproxy)"; then
    if [[ -f "$LAG_ENV" && "$(cat "$LAG_ENV")" == "$want" ]]; then
      log "lagproxy: running (pid $pid, 127.0.0.1:$LAB_LAG_PORT, delay $delay)"
      return 0
    fi
    lag_off
  fi
  build_lagproxy || die "lagproxy: build failed"
  port_listening "$LAB_LAG_PORT" && die "port $LAB_LAG_PORT in use by something else"
  log "lagproxy: starting on 127.0.0.1:$LAB_LAG_PORT -> 127.0.0.1:$LAB_SSH_PORT, delay $delay each way"
  # setsid: own session, so it outlives this shell and its terminal
  setsid "$BIN_DIR/lagproxy" -listen "127.0.0.1:$LAB_LAG_PORT" -target "127.0.0.1:$LAB_SSH_PORT" \
    -delay "$delay" </dev/null >>"${LOGFILE[lagproxy]}" 2>&1 9>&- &
  echo "$!" >"${PIDFILE[lagproxy]}"
  if ! wait_until 10 port_listening "$LAB_LAG_PORT" || ! daemon_pid lagproxy >/dev/null; then
    tail -n 20 "${LOGFILE[lagproxy]}" >&2
    die "lagproxy did not come up on 127.0.0.1:$LAB_LAG_PORT (log above, ${LOGFILE[lagproxy]})"
  fi
  printf '%s\n' "$want" >"$LAG_ENV"
  chmod 0644 "$LAG_ENV"
}

# lag_off: stop the proxy, whichever port it was started on (stop waits
# until the process is gone, and with it its listener).
lag_off() {
  rm -f "$LAG_ENV"
  stop lagproxy
}

# ---------------------------------------------------------------------------
# slow: the shims' per-command delay
# ---------------------------------------------------------------------------
# seconds DURATION: print DURATION (N, Ns, Nms, Nm; decimals allowed) in seconds
seconds() {
  [[ "$1" =~ ^([0-9]+(\.[0-9]+)?)(ms|s|m)?$ ]] || return 1
  awk -v n="${BASH_REMATCH[1]}" -v u="${BASH_REMATCH[3]}" \
    'BEGIN { f = (u == "ms") ? 0.001 : (u == "m") ? 60 : 1; printf "%.3f\n", n * f }'
}

slow() {
  local cmd="$1" value="${2:-}" c secs
  install -d -m 0755 "$SLOW_DIR"
  if [[ "$cmd" == off ]]; then
    rm -f "$SLOW_DIR"/*
    log "slow: off for all commands"
    return 0
  fi
  for c in "${SHIM_CMDS[@]}"; do [[ "$c" == "$cmd" ]] && break; done
  [[ "$c" == "$cmd" ]] || usage
  [[ -x "$SHIM_DIR/$cmd" ]] && grep -qF "$SHIM_MARK" "$SHIM_DIR/$cmd" \
    || die "no lab shim at $SHIM_DIR/$cmd: run lab/up.sh first"
  case "$value" in
    off) rm -f "$SLOW_DIR/$cmd"; log "slow: $cmd off" ;;
    hang) printf 'hang\n' >"$SLOW_DIR/$cmd.tmp"; mv -f "$SLOW_DIR/$cmd.tmp" "$SLOW_DIR/$cmd"; log "slow: $cmd hangs" ;;
    *)
      secs="$(seconds "$value")" || die "slow: bad duration '$value' (e.g. 3s, 500ms, hang, off)"
      printf '%s\n' "$secs" >"$SLOW_DIR/$cmd.tmp"
      mv -f "$SLOW_DIR/$cmd.tmp" "$SLOW_DIR/$cmd"
      log "slow: $cmd sleeps ${secs}s first"
      ;;
  esac
}

# ---------------------------------------------------------------------------
# count: which remote commands each account runs
# ---------------------------------------------------------------------------
count() {
  install -d -m 0755 "$COUNT_DIR"
  case "$1" in
    on)
      rm -f "$COUNT_DIR/on"
      # the lab users' shims append to it
      : >"$COUNT_DIR/log"
      chmod 0666 "$COUNT_DIR/log"
      stat -c %s "${LOGFILE[sshd]}" 2>/dev/null >"$COUNT_DIR/sshd.mark" || echo 0 >"$COUNT_DIR/sshd.mark"
      : >"$COUNT_DIR/on"
      log "count: on (fresh log $COUNT_DIR/log)"
      ;;
    off)
      rm -f "$COUNT_DIR/on"
      log "count: off"
      ;;
    show)
      [[ -f "$COUNT_DIR/log" ]] || die "count: never turned on (lab/ctl.sh count on)"
      printf '%-14s %-22s %s\n' USER COMMAND COUNT
      awk '{ n[$2 " " $3]++ } END { for (k in n) { split(k, a, " "); printf "%-14s %-22s %d\n", a[1], a[2], n[k] } }' \
        "$COUNT_DIR/log" | sort
      # sshd (LogLevel VERBOSE) logs one line per session:
      # "Starting session: command for USER from ..." (or subsystem 'sftp', shell)
      tail -c +"$(($(cat "$COUNT_DIR/sshd.mark" 2>/dev/null || echo 0) + 1))" "${LOGFILE[sshd]}" 2>/dev/null |
        sed -nE "s/^.*Starting session: (command|shell|subsystem '([^']*)'|forced-command.*) for ([^ ]+) from .*/\3 ssh:\1/p" |
        sed -E "s/ssh:subsystem '([^']*)'/ssh:subsystem:\1/; s/ssh:forced-command.*/ssh:forced-command/" |
        awk '{ n[$1 " " $2]++ } END { for (k in n) { split(k, a, " "); printf "%-14s %-22s %d\n", a[1], a[2], n[k] } }' | sort
      ;;
  esac
}

case "$ACTION" in
  stop) stop "$NAME" ;;
  start) start "$NAME" ;;
  restart) stop "$NAME" && start "$NAME" ;;
  lag)
    if [[ "$NAME" == off ]]; then lag_off; else lag_on "$NAME"; fi
    ;;
  slow) slow "$NAME" "${3:-}" ;;
  count) count "$NAME" ;;
esac
