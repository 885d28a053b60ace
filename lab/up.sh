#!/usr/bin/env bash
# Bring up the wesgate integration lab on this machine: a real single-node
# Slurm cluster (munged, MariaDB, slurmdbd, slurmctld, slurmd) and a real sshd
# on 127.0.0.1:$LAB_SSH_PORT, plus test users, keys and an SSH user CA.
#
# Idempotent: packages are installed only when missing, state is generated
# only when missing, and daemons already running (per their pid files) are
# left alone. Every run ends by submitting a trivial job as a test user over
# ssh and waiting until sacct reports it COMPLETED; exit 0 only then.
#
# Environment: LAB_STATE (default /var/lib/wesgate-lab), LAB_BASE (default
# /srv/wesgate-lab/runs), LAB_SSH_PORT (2222), LAB_MYSQL_PORT (3307),
# LAB_LAG_PORT (2223, for known_hosts), LAB_WAIT (60). See lab/README.md.
set -euo pipefail

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lab/lib.sh
. "$LAB_DIR/lib.sh"

[[ "$(id -u)" -eq 0 ]] || die "must run as root"

T_START="$EPOCHREALTIME"
elapsed() { # seconds since $1 (an EPOCHREALTIME value), 2 decimals
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'
}

install -d -m 0755 "$LAB_STATE"
# Serialise concurrent up/down runs (several engineers share the machine).
# Daemons are started with fd 9 closed (9>&-) so they do not keep the lock.
exec 9>"$LAB_STATE/lock"
flock -w 600 9 || die "could not lock $LAB_STATE/lock"

# ---------------------------------------------------------------------------
# 1. Packages (Debian 12: slurm-wlm 22.05, MariaDB 10.11, OpenSSH 9.2)
# ---------------------------------------------------------------------------
PKGS=(munge mariadb-server slurmctld slurmd slurm-client slurmdbd openssh-server)

install_packages() {
  local p missing=() own_policy=""
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
      || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  log "installing: ${missing[*]}"
  # Keep package postinst scripts from starting distro services (sshd on :22,
  # mysqld on :3306, ...): we start our own instances. There is no systemd,
  # so invoke-rc.d honours policy-rc.d.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  local rc=0
  export DEBIAN_FRONTEND=noninteractive
  # Try with the current package lists first; refresh them only if needed.
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$LOG_DIR/apt.log" 2>&1; then
    log "apt-get install failed; running apt-get update and retrying"
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
      >>"$LOG_DIR/apt.log" 2>&1 || rc=$?
  fi
  [[ -n "$own_policy" ]] && rm -f /usr/sbin/policy-rc.d
  if ((rc != 0)); then
    tail -n 30 "$LOG_DIR/apt.log" >&2
    die "package installation failed (see $LOG_DIR/apt.log)"
  fi
}

install -d -m 0755 "$LOG_DIR" "$RUN_DIR" "$SLURM_DIR" "$SSH_DIR"
install -d -m 0700 "$KEY_DIR"
install_packages
getent passwd slurm >/dev/null || useradd --system --user-group --home-dir /nonexistent \
  --no-create-home --shell /usr/sbin/nologin slurm
# Slurm daemons chdir to their log file's directory and insist that it is
# writable ("error: chdir(...): Permission denied" otherwise).
chown root:slurm "$LOG_DIR"
chmod 0775 "$LOG_DIR"

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
CONFIG_CHANGED=()
WAS_RUNNING=""   # set when some daemon was already up at the start

# write_file PATH MODE OWNER: write stdin to PATH only if content differs.
write_file() {
  local path="$1" mode="$2" owner="$3" tmp
  tmp="$(mktemp "$path.XXXXXX")"
  cat >"$tmp"
  if [[ -f "$path" ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
  else
    # remember changed daemon configs (a running daemon keeps its old one)
    case "$path" in
      *.conf | *.cnf | */sshd_config) [[ -f "$path" ]] && CONFIG_CHANGED+=("$path") ;;
    esac
    mv -f "$tmp" "$path"
  fi
  chmod "$mode" "$path"
  chown "$owner" "$path"
}

# touch_owned PATH OWNER: make sure a (log) file exists and is owned by OWNER,
# for daemons that open their log after dropping privileges.
touch_owned() {
  [[ -e "$1" ]] || : >"$1"
  chown "$2" "$1"
  chmod 0640 "$1"
}

port_listening() { # port_listening PORT: something listens on 127.0.0.1:PORT
  ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

fail_with_logs() {
  printf '[lab] ERROR: %s\n' "$*" >&2
  show_logs
  exit 1
}

# ---------------------------------------------------------------------------
# 2. System accounts, keys, CA
# ---------------------------------------------------------------------------
getent passwd munge >/dev/null || die "munge user missing after install"
getent passwd mysql >/dev/null || die "mysql user missing after install"

ensure_user() {
  local u="$1" home pw
  if ! getent passwd "$u" >/dev/null; then
    useradd --create-home --user-group --shell /bin/bash --comment "wesgate lab" "$u"
  fi
  # With UsePAM no, sshd refuses key logins to an account whose password
  # field is "!" (locked; useradd's default). "*" = no password, not locked.
  pw="$(getent shadow "$u" | cut -d: -f2)"
  [[ "$pw" == '*' ]] || usermod -p '*' "$u"

  # ed25519 key pair in the state dir, public half in authorized_keys
  [[ -s "$KEY_DIR/$u" ]] || ssh-keygen -q -t ed25519 -N '' -C "$u@wesgate-lab" -f "$KEY_DIR/$u"
  home="$(getent passwd "$u" | cut -d: -f6)"
  [[ -d "$home" ]] || install -d -m 0755 -o "$u" -g "$u" "$home"
  install -d -m 0700 -o "$u" -g "$u" "$home/.ssh"
  write_file "$home/.ssh/authorized_keys" 0600 "$u:$u" <"$KEY_DIR/$u.pub"
}
for u in "${LAB_USERS[@]}"; do ensure_user "$u"; done

# SSH user CA: sshd trusts certificates it signed (TrustedUserCAKeys); a cert
# whose principal equals the login name is accepted without further config.
[[ -s "$SSH_DIR/user_ca" ]] || ssh-keygen -q -t ed25519 -N '' -C "wesgate-lab user CA" -f "$SSH_DIR/user_ca"
# the lab's own sshd host key
[[ -s "$SSH_DIR/ssh_host_ed25519_key" ]] \
  || ssh-keygen -q -t ed25519 -N '' -C "wesgate-lab host" -f "$SSH_DIR/ssh_host_ed25519_key"
chmod 0600 "$SSH_DIR/user_ca" "$SSH_DIR/ssh_host_ed25519_key"
# known_hosts for golang.org/x/crypto/ssh/knownhosts: non-22 ports are written
# as [host]:port. The same key is also accepted at the latency proxy's port
# (lab/ctl.sh lag), which forwards to this sshd.
write_file "$SSH_DIR/known_hosts" 0644 root:root <<EOF
[127.0.0.1]:$LAB_SSH_PORT,[localhost]:$LAB_SSH_PORT,[127.0.0.1]:$LAB_LAG_PORT,[localhost]:$LAB_LAG_PORT $(cut -d' ' -f1,2 "$SSH_DIR/ssh_host_ed25519_key.pub")
EOF

# Run base for wesgate run dirs: sticky 1777 (like /tmp) plus a per-user
# subdirectory owned by each test user.
install -d -m 0755 "$(dirname "$LAB_BASE")"
install -d -m 1777 "$LAB_BASE"
for u in "${LAB_USERS[@]}"; do install -d -m 0755 -o "$u" -g "$u" "$LAB_BASE/$u"; done

# ---------------------------------------------------------------------------
# 3. munge (auth for every Slurm RPC)
# ---------------------------------------------------------------------------
MUNGE_KEY=/etc/munge/munge.key
if [[ ! -s "$MUNGE_KEY" ]]; then
  log "creating $MUNGE_KEY"
  install -d -m 0700 -o munge -g munge /etc/munge
  dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
fi
chown munge:munge "$MUNGE_KEY"
chmod 0400 "$MUNGE_KEY"
install -d -m 0700 -o munge -g munge "$MUNGE_DIR"
# default socket dir, so clients (sbatch run by any user) need no config
install -d -m 0755 -o munge -g munge /run/munge
touch_owned "${LOGFILE[munged]}" munge:munge

munge_works() { { munge -n </dev/null | unmunge; } >/dev/null 2>&1; }

start_munged() {
  local pid
  if pid="$(daemon_pid munged)"; then
    log "munged: running (pid $pid)"; WAS_RUNNING=1
  elif munge_works; then
    log "munged: a munged not started by the lab already serves /run/munge; using it"
  else
    log "munged: starting"
    # --force: start even if a stale socket from an earlier run is left over
    runuser -u munge -- /usr/sbin/munged --force \
      --pid-file="${PIDFILE[munged]}" --log-file="${LOGFILE[munged]}" \
      --seed-file="$MUNGE_DIR/munged.seed" </dev/null >/dev/null 2>&1 9>&- \
      || fail_with_logs "munged failed to start"
  fi
  wait_until 15 munge_works || fail_with_logs "munge -n | unmunge does not work"
}
start_munged

# ---------------------------------------------------------------------------
# 4. MariaDB for slurmdbd: an own instance (datadir, socket, port) in the
#    state dir, bound to 127.0.0.1:$LAB_MYSQL_PORT.
# ---------------------------------------------------------------------------
MYCNF="$MYSQL_DIR/my.cnf"
install -d -m 0755 "$MYSQL_DIR"
install -d -m 0750 -o mysql -g mysql "$MYSQL_DIR/data" "$MYSQL_DIR/run"
touch_owned "${LOGFILE[mysqld]}" mysql:mysql
write_file "$MYCNF" 0644 root:root <<EOF
# generated by lab/up.sh
[mysqld]
user                     = mysql
datadir                  = $MYSQL_DIR/data
socket                   = $MYSQL_DIR/run/mysqld.sock
pid-file                 = ${PIDFILE[mysqld]}
log-error                = ${LOGFILE[mysqld]}
port                     = $LAB_MYSQL_PORT
bind-address             = 127.0.0.1
skip-name-resolve
# slurmdbd warns unless these are at least this large
innodb_buffer_pool_size  = 1024M
innodb_lock_wait_timeout = 900

[client]
socket                   = $MYSQL_DIR/run/mysqld.sock
EOF

DB_PASS_FILE="$MYSQL_DIR/slurm.pass"
if [[ ! -s "$DB_PASS_FILE" ]]; then
  (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$DB_PASS_FILE")
fi
chmod 0600 "$DB_PASS_FILE"
DB_PASS="$(cat "$DB_PASS_FILE")"

mysql_ping() { mariadb-admin --defaults-file="$MYCNF" -uroot ping; }

start_mysqld() {
  local pid
  if pid="$(daemon_pid mysqld)"; then
    log "mysqld: running (pid $pid)"; WAS_RUNNING=1
  else
    if [[ ! -d "$MYSQL_DIR/data/mysql" ]]; then
      log "mysqld: initialising datadir"
      mariadb-install-db --defaults-file="$MYCNF" --user=mysql \
        --auth-root-authentication-method=socket --skip-test-db \
        >>"$LOG_DIR/mysql-install.log" 2>&1 \
        || { tail -n 30 "$LOG_DIR/mysql-install.log" >&2; die "mariadb-install-db failed"; }
    fi
    port_listening "$LAB_MYSQL_PORT" && die "port $LAB_MYSQL_PORT in use by something else"
    log "mysqld: starting"
    # mysqld stays in the foreground: detach it from this shell entirely.
    setsid /usr/sbin/mariadbd --defaults-file="$MYCNF" </dev/null >>"${LOGFILE[mysqld]}" 2>&1 9>&- &
  fi
  wait_until 60 mysql_ping || fail_with_logs "mysqld did not come up"
  wait_until 10 daemon_pid mysqld || fail_with_logs "mysqld pid file missing"
  # database + user for slurmdbd (idempotent; re-applies the password)
  mariadb --defaults-file="$MYCNF" -uroot <<SQL || fail_with_logs "creating slurm_acct_db failed"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
}
start_mysqld

# ---------------------------------------------------------------------------
# 5. Slurm configuration
# ---------------------------------------------------------------------------
NODE="$(hostname -s)"
install -d -m 0755 -o slurm -g slurm "$SLURM_DIR/state"   # StateSaveLocation
install -d -m 0755 "$SLURM_DIR/spool"                     # SlurmdSpoolDir (root)
for n in slurmdbd slurmctld; do touch_owned "${LOGFILE[$n]}" slurm:slurm; done
touch_owned "${LOGFILE[slurmd]}" root:root

# Node hardware line as slurmd itself sees it (sockets/cores/threads/memory),
# so the node never drains for "low socket*core*thread count" or "low memory".
HW="$(slurmd -C 2>/dev/null | sed -n 's/^NodeName=[^ ]* //p' | head -n 1)"
[[ -n "$HW" ]] || die "slurmd -C printed no node line"

write_file "$LAB_SLURM_CONF" 0644 root:root <<EOF
# generated by lab/up.sh -- wesgate integration lab, single node on loopback
ClusterName=$LAB_CLUSTER
# loopback only: the controller is this host at 127.0.0.1
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
# bind to the configured addresses (127.0.0.1), never to INADDR_ANY
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=${PIDFILE[slurmctld]}
SlurmdPidFile=${PIDFILE[slurmd]}
SlurmctldLogFile=${LOGFILE[slurmctld]}
SlurmdLogFile=${LOGFILE[slurmd]}
SlurmctldDebug=info
SlurmdDebug=info
# no usable cgroups on this machine kind
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
# sacct needs slurmdbd; slurmctld registers the cluster itself.
# AccountingStorageEnforce deliberately unset: no associations required.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# schedule batch jobs immediately (sbatch -> COMPLETED in ~1 s)
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
# no mail on this box
MailProg=/bin/true
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE $HW State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=$NODE Default=NO MaxTime=INFINITE State=UP
EOF

# slurmdbd refuses a config that is not 0600 and owned by SlurmUser.
write_file "$SLURM_DIR/slurmdbd.conf" 0600 slurm:slurm <<EOF
# generated by lab/up.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
# slurmdbd also binds INADDR_ANY unless told not to
CommunicationParameters=NoInAddrAny
SlurmUser=slurm
LogFile=${LOGFILE[slurmdbd]}
PidFile=${PIDFILE[slurmdbd]}
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$LAB_MYSQL_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF

# Clients (sbatch/squeue/sacct run by the test users over ssh) read the
# default /etc/slurm/slurm.conf: point it at ours.
install -d -m 0755 /etc/slurm
if [[ -e /etc/slurm/slurm.conf && ! -L /etc/slurm/slurm.conf ]]; then
  die "/etc/slurm/slurm.conf exists and is not the lab's symlink; move it away first"
fi
ln -sfn "$LAB_SLURM_CONF" /etc/slurm/slurm.conf

# ---------------------------------------------------------------------------
# 5b. Shims for sbatch/squeue/sacct/scancel in $SHIM_DIR (first in PATH, for
#     ssh sessions too), for lab/ctl.sh slow and count. Without a file in
#     $SLOW_DIR and without $COUNT_DIR/on they only exec /usr/bin/NAME (with
#     argv[0] NAME), so exit code, stdout, stderr and stdin are its own.
# ---------------------------------------------------------------------------
install -d -m 0755 "$SLOW_DIR" "$COUNT_DIR"
# a (re)started lab answers at full speed: drop slow settings left over
# (this also releases shims hanging on "hang")
rm -f "$SLOW_DIR"/*

install_shim() { # install_shim NAME
  local name="$1" path="$SHIM_DIR/$1"
  [[ -x "/usr/bin/$name" ]] || die "/usr/bin/$name missing"
  if [[ -e "$path" ]] && ! grep -qF "$SHIM_MARK" "$path"; then
    die "$path exists and is not the lab's shim; move it away first"
  fi
  write_file "$path" 0755 root:root <<EOF
#!/bin/bash
# $SHIM_MARK for $name, written by lab/up.sh (see lab/README.md).
# If $COUNT_DIR/on exists, append "UNIXTIME USER $name" to $COUNT_DIR/log.
# If $SLOW_DIR/$name exists, first sleep that many seconds, or, if it says
# "hang", never answer: wait until the file changes or the caller is gone,
# then fail as if slurmctld never replied. Then exec /usr/bin/$name.
if [ -e "$COUNT_DIR/on" ]; then
  printf '%s %s %s\n' "\$EPOCHREALTIME" "\$(id -un)" $name >>"$COUNT_DIR/log" 2>/dev/null
fi
if [ -e "$SLOW_DIR/$name" ]; then
  d=
  read -r d 2>/dev/null <"$SLOW_DIR/$name" || :
  if [ "\$d" = hang ]; then
    while [ "\$d" = hang ] && kill -0 "\$PPID" 2>/dev/null; do
      sleep 0.2
      d=
      read -r d 2>/dev/null <"$SLOW_DIR/$name" || :
    done
    echo "$name: error: Socket timed out on send/recv operation (lab: hang)" >&2
    exit 1
  fi
  [ -z "\$d" ] || sleep "\$d" 2>/dev/null || :
fi
# exec -a: the command sees argv[0] "$name", as without the shim (messages)
exec -a $name /usr/bin/$name "\$@"
EOF
}
for c in "${SHIM_CMDS[@]}"; do install_shim "$c"; done
hash -r

# the latency proxy for lab/ctl.sh lag (not started here); a missing Go
# toolchain only disables `ctl.sh lag`
build_lagproxy || log "WARNING: could not build lagproxy; lab/ctl.sh lag will not work"

# ---------------------------------------------------------------------------
# 6. Slurm daemons
# ---------------------------------------------------------------------------
dbd_up() { timeout 5 sacctmgr -n -P show cluster format=cluster; }
ctld_up() { timeout 5 scontrol ping | grep -q 'is UP'; }
node_state() { timeout 5 sinfo -h -n "$NODE" -o '%T' | head -n 1; }
node_ready() { [[ "$(node_state)" =~ ^(idle|mixed|allocated|completing) ]]; }

start_slurm_daemon() { # NAME ARGS...: start a self-daemonizing Slurm daemon
  local name="$1" pid; shift
  if pid="$(daemon_pid "$name")"; then
    log "$name: running (pid $pid)"; WAS_RUNNING=1
    return 0
  fi
  log "$name: starting"
  "$@" </dev/null >>"$LOG_DIR/$name.stderr" 2>&1 9>&- || fail_with_logs "$name failed to start"
  wait_until 15 daemon_pid "$name" || fail_with_logs "$name did not write its pid file"
}

start_slurm_daemon slurmdbd /usr/sbin/slurmdbd
wait_until 30 dbd_up || fail_with_logs "slurmdbd not answering (sacctmgr show cluster)"

start_slurm_daemon slurmctld /usr/sbin/slurmctld
wait_until 30 ctld_up || fail_with_logs "slurmctld not answering (scontrol ping)"

start_slurm_daemon slurmd /usr/sbin/slurmd -N "$NODE"
if ! wait_until 30 node_ready; then
  # e.g. DOWN/DRAIN left over from an unclean stop: resume once and retry
  log "node $NODE is '$(node_state || true)'; resuming it"
  scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
  wait_until 20 node_ready || fail_with_logs "node $NODE not ready (state: $(node_state || true))"
fi

# ---------------------------------------------------------------------------
# 7. sshd on 127.0.0.1:$LAB_SSH_PORT with its own config and host key
# ---------------------------------------------------------------------------
write_file "$SSH_DIR/sshd_config" 0644 root:root <<EOF
# generated by lab/up.sh -- the lab's own sshd (loopback, non-standard port)
Port $LAB_SSH_PORT
ListenAddress 127.0.0.1
HostKey $SSH_DIR/ssh_host_ed25519_key
PidFile ${PIDFILE[sshd]}
# no PAM here; that is why the users' password field is "*" not "!"
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AuthorizedKeysFile .ssh/authorized_keys
# certificates signed by the lab CA are accepted for principal == user name
TrustedUserCAKeys $SSH_DIR/user_ca.pub
AllowUsers ${LAB_USERS[*]}
MaxSessions 10
# tests open many connections at once; the default 10:30:100 drops some
MaxStartups 100:30:200
LogLevel VERBOSE
PrintMotd no
X11Forwarding no
Subsystem sftp internal-sftp
EOF

start_sshd() {
  local pid
  if pid="$(daemon_pid sshd)"; then
    log "sshd: running (pid $pid)"; WAS_RUNNING=1
    return 0
  fi
  port_listening "$LAB_SSH_PORT" && die "port $LAB_SSH_PORT in use by something else"
  install -d -m 0755 /run/sshd   # privilege separation dir
  /usr/sbin/sshd -t -f "$SSH_DIR/sshd_config" || die "sshd config test failed"
  log "sshd: starting"
  /usr/sbin/sshd -f "$SSH_DIR/sshd_config" -E "${LOGFILE[sshd]}" </dev/null >/dev/null 2>&1 9>&- \
    || fail_with_logs "sshd failed to start"
  wait_until 10 daemon_pid sshd || fail_with_logs "sshd did not write its pid file"
}
start_sshd
wait_until 10 port_listening "$LAB_SSH_PORT" || fail_with_logs "sshd not listening on $LAB_SSH_PORT"

# ---------------------------------------------------------------------------
# 8. env file for tests (lab/env.sh sources it)
# ---------------------------------------------------------------------------
write_env() {
  write_file "$LAB_STATE/env.sh" 0644 root:root <<EOF
# generated by lab/up.sh; source lab/env.sh rather than this file
export WESGATE_LAB_STATE='$LAB_STATE'
export WESGATE_LAB_SSH_ADDR='127.0.0.1:$LAB_SSH_PORT'
export WESGATE_LAB_KNOWN_HOSTS='$SSH_DIR/known_hosts'
export WESGATE_LAB_USER1='$LAB_USER1'
export WESGATE_LAB_USER2='$LAB_USER2'
export WESGATE_LAB_KEY1='$KEY_DIR/$LAB_USER1'
export WESGATE_LAB_KEY2='$KEY_DIR/$LAB_USER2'
export WESGATE_LAB_SVC_USER='$LAB_SVC_USER'
export WESGATE_LAB_SVC_KEY='$KEY_DIR/$LAB_SVC_USER'
export WESGATE_LAB_CA_KEY='$SSH_DIR/user_ca'
export WESGATE_LAB_CA_PUB='$SSH_DIR/user_ca.pub'
export WESGATE_LAB_PARTITION='debug'
export WESGATE_LAB_PARTITION2='long'
export WESGATE_LAB_BASE='$LAB_BASE'
export WESGATE_LAB_SLURM_CONF='$LAB_SLURM_CONF'
EOF
}

# ---------------------------------------------------------------------------
# 9. Verify: ssh in as a test user (key and CA cert), sbatch, wait for sacct
# ---------------------------------------------------------------------------
lab_ssh() { # lab_ssh USER IDENTITY COMMAND [extra ssh options...]
  local user="$1" key="$2" cmd="$3"; shift 3
  ssh -F /dev/null -p "$LAB_SSH_PORT" -i "$key" \
    -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=10 \
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$SSH_DIR/known_hosts" \
    -o LogLevel=ERROR "$@" "$user@127.0.0.1" "$cmd" </dev/null
}

# CA login: a throwaway key with a 2-minute cert for wesuser2
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
ssh-keygen -q -t ed25519 -N '' -f "$TMP/k"
ssh-keygen -q -s "$SSH_DIR/user_ca" -I lab-selftest -n "$LAB_USER2" -V -1m:+2m "$TMP/k.pub"
who="$(lab_ssh "$LAB_USER2" "$TMP/k" whoami -o CertificateFile="$TMP/k-cert.pub")" \
  || fail_with_logs "ssh with a CA-signed certificate failed"
[[ "$who" == "$LAB_USER2" ]] || fail_with_logs "cert login landed as '$who'"

# ssh sessions must find the shims first (lab/ctl.sh slow and count)
shim="$(lab_ssh "$LAB_USER1" "$KEY_DIR/$LAB_USER1" "command -v sbatch")" \
  || fail_with_logs "ssh as $LAB_USER1 failed"
[[ "$shim" == "$SHIM_DIR/sbatch" ]] \
  || fail_with_logs "ssh sessions run '$shim', not the lab's shim $SHIM_DIR/sbatch (PATH)"

T_JOB="$EPOCHREALTIME"
JOBID="$(lab_ssh "$LAB_USER1" "$KEY_DIR/$LAB_USER1" \
  "sbatch --parsable -J lab-selftest -o /dev/null --wrap hostname")" \
  || fail_with_logs "sbatch over ssh as $LAB_USER1 failed"
JOBID="${JOBID%%;*}"
[[ "$JOBID" =~ ^[0-9]+$ ]] || fail_with_logs "sbatch printed '$JOBID'"
job_state() { sacct -n -X -P -j "$JOBID" -o State 2>/dev/null | head -n 1; }
job_done() { [[ "$(job_state)" == COMPLETED ]]; }
job_final_bad() { [[ "$(job_state)" =~ ^(FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL) ]]; }
deadline=$((SECONDS + LAB_WAIT))
until job_done; do
  job_final_bad && fail_with_logs "smoke job $JOBID ended $(job_state)"
  ((SECONDS < deadline)) || fail_with_logs "smoke job $JOBID not COMPLETED after ${LAB_WAIT}s (state: '$(job_state)')"
  sleep 0.1
done
JOB_SECS="$(elapsed "$T_JOB")"
# Who ran it: ask slurmctld (keeps finished jobs for MinJobAge=300 s). sacct is
# no good for this yet: for a job that ends within ~1 s, slurmdbd first holds a
# stub record (User=root, JobName=allocation, no Partition) that is completed
# a few seconds later, once slurmctld's job-start message has been processed.
JOB_USER="$(scontrol show job -o "$JOBID" | grep -o 'UserId=[^( ]*' | cut -d= -f2)"
[[ "$JOB_USER" == "$LAB_USER1" ]] || fail_with_logs "smoke job ran as '$JOB_USER'"

write_env

# ---------------------------------------------------------------------------
# 10. Summary
# ---------------------------------------------------------------------------
if [[ -n "$WAS_RUNNING" ]] && ((${#CONFIG_CHANGED[@]})); then
  log "NOTE: config changed this run (${CONFIG_CHANGED[*]}); daemons that were"
  log "      already running keep the old one until lab/down.sh && lab/up.sh"
fi
cat <<EOF
wesgate lab is up (${LAB_STATE})
  slurm     cluster=$LAB_CLUSTER node=$NODE partitions=debug(default),long  ctld 127.0.0.1:6817 dbd 127.0.0.1:6819
  mariadb   127.0.0.1:$LAB_MYSQL_PORT (db slurm_acct_db)
  sshd      127.0.0.1:$LAB_SSH_PORT  users: ${LAB_USERS[*]}
  run base  $LAB_BASE
  selftest  job $JOBID as $JOB_USER COMPLETED in ${JOB_SECS}s (sbatch->sacct); CA cert login ok
  env       source $LAB_DIR/env.sh   (-> $LAB_STATE/env.sh)
  total     $(elapsed "$T_START")s
EOF
