# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts sourcing this
# Shared settings and helpers for lab/up.sh and lab/down.sh. Not meant to be
# run directly; both scripts source it after `set -euo pipefail`.
#
# Every path the lab generates lives under $LAB_STATE (never inside the repo),
# except the run base ($LAB_BASE), the test users' homes/authorized_keys, the
# munge key (/etc/munge/munge.key) and the /etc/slurm/slurm.conf symlink that
# lets plain `sbatch` (e.g. over ssh) find the lab's config.

# daemons and admin tools live in sbin; callers (e.g. CI) may not have it
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

LAB_STATE="${LAB_STATE:-/var/lib/wesgate-lab}"
LAB_BASE="${LAB_BASE:-/srv/wesgate-lab/runs}"
LAB_SSH_PORT="${LAB_SSH_PORT:-2222}"      # non-standard port, loopback only
LAB_MYSQL_PORT="${LAB_MYSQL_PORT:-3307}"  # own MariaDB instance, not the distro's 3306
LAB_WAIT="${LAB_WAIT:-60}"                # seconds to wait for the smoke job
LAB_CLUSTER="${LAB_CLUSTER:-wesgate-lab}"
LAB_LAG_PORT="${LAB_LAG_PORT:-2223}"      # lab/ctl.sh lag: the latency proxy in front of sshd

LAB_USER1=wesuser1
LAB_USER2=wesuser2
LAB_SVC_USER=wesgate-svc
LAB_USERS=("$LAB_USER1" "$LAB_USER2" "$LAB_SVC_USER")

RUN_DIR="$LAB_STATE/run"      # pid files (root-owned daemons)
LOG_DIR="$LAB_STATE/log"
SLURM_DIR="$LAB_STATE/slurm"
SSH_DIR="$LAB_STATE/ssh"
KEY_DIR="$LAB_STATE/keys"
MYSQL_DIR="$LAB_STATE/mysql"
MUNGE_DIR="$LAB_STATE/munge"
BIN_DIR="$LAB_STATE/bin"      # lagproxy, built from lab/lagproxy
SLOW_DIR="$LAB_STATE/slow"    # lab/ctl.sh slow: one file per slowed command
COUNT_DIR="$LAB_STATE/count"  # lab/ctl.sh count: the shims' command log
LAG_ENV="$LAB_STATE/lag.env"  # WESGATE_LAB_LAG_* while the proxy runs

# Slurm commands that get a shim in $SHIM_DIR (first in PATH, also in ssh
# sessions: sshd's default PATH starts with /usr/local/bin), for lab/ctl.sh
# slow and count. Each shim execs /usr/bin/NAME.
SHIM_DIR=/usr/local/bin
SHIM_CMDS=(sbatch squeue sacct scancel)
SHIM_MARK="wesgate-lab shim"  # in every shim; up.sh overwrites only files with it

LAB_SLURM_CONF="$SLURM_DIR/slurm.conf"
# Daemons get SLURM_CONF explicitly; slurmdbd looks for slurmdbd.conf in the
# same directory as slurm.conf.
export SLURM_CONF="$LAB_SLURM_CONF"

# name -> pid file. munged and mysqld drop privileges before writing theirs,
# so those live in directories owned by their users.
declare -A PIDFILE=(
  [munged]="$MUNGE_DIR/munged.pid"
  [mysqld]="$MYSQL_DIR/run/mysqld.pid"
  [slurmdbd]="$RUN_DIR/slurmdbd.pid"
  [slurmctld]="$RUN_DIR/slurmctld.pid"
  [slurmd]="$RUN_DIR/slurmd.pid"
  [sshd]="$RUN_DIR/sshd.pid"
  [lagproxy]="$RUN_DIR/lagproxy.pid"
)
# name -> log file (for the failure report)
declare -A LOGFILE=(
  [munged]="$LOG_DIR/munged.log"
  [mysqld]="$LOG_DIR/mysqld.log"
  [slurmdbd]="$LOG_DIR/slurmdbd.log"
  [slurmctld]="$LOG_DIR/slurmctld.log"
  [slurmd]="$LOG_DIR/slurmd.log"
  [sshd]="$LOG_DIR/sshd.log"
  [lagproxy]="$LOG_DIR/lagproxy.log"
)
# start order; down.sh stops in reverse. (lagproxy is not started by up.sh
# but by `ctl.sh lag`; down.sh stops it first.)
DAEMONS=(munged mysqld slurmdbd slurmctld slurmd sshd)

log() { printf '[lab] %s\n' "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

# pid_alive PID: true if PID exists and is not a zombie. PID 1 on this kind of
# machine reaps exited (daemonized, re-parented) processes late, so a stopped
# daemon can linger as a zombie: count that as stopped.
pid_alive() {
  local pid="$1" state
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/stat" ]] || return 1
  # field 3 of /proc/PID/stat is the state; strip "pid (comm) " first since
  # comm may contain spaces.
  state="$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# daemon_pid NAME: print the pid from NAME's pid file if that process is alive
# and really is NAME (guards against pid reuse); else fail.
daemon_pid() {
  local name="$1" f pid comm
  f="${PIDFILE[$name]}"
  [[ -s "$f" ]] || return 1
  pid="$(tr -dc '0-9' <"$f")"
  pid_alive "$pid" || return 1
  comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
  # mysqld may show up as "mariadbd"
  case "$name:$comm" in
    mysqld:mysqld|mysqld:mariadbd) ;;
    "$name:$name") ;;
    *) return 1 ;;
  esac
  printf '%s\n' "$pid"
}

# wait_until SECONDS CMD...: poll CMD every 0.2 s until it succeeds.
wait_until() {
  local secs="$1"; shift
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# tails of every daemon log, for failure reports
show_logs() {
  local n f
  for n in "${DAEMONS[@]}"; do
    f="${LOGFILE[$n]}"
    [[ -s "$f" ]] || continue
    printf '\n===== tail %s =====\n' "$f" >&2
    tail -n 25 "$f" >&2 || true
  done
}

# build_lagproxy: go build lab/lagproxy's command into $BIN_DIR/lagproxy when
# it is missing or older than its sources. Needs go (PATH or /usr/local/go).
build_lagproxy() {
  local src bin="$BIN_DIR/lagproxy" gobin
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lagproxy"
  if [[ -x "$bin" ]] && [[ -z "$(find "$src" -name '*.go' -newer "$bin" -print -quit)" ]]; then
    return 0
  fi
  gobin="$(command -v go || true)"
  [[ -n "$gobin" ]] || gobin=/usr/local/go/bin/go
  [[ -x "$gobin" ]] || { log "lagproxy: no go toolchain found; cannot build $bin"; return 1; }
  install -d -m 0755 "$BIN_DIR"
  log "lagproxy: building $bin"
  (cd "$src/../.." && "$gobin" build -o "$bin.new" ./lab/lagproxy/cmd/lagproxy) || return 1
  mv -f "$bin.new" "$bin"
}
