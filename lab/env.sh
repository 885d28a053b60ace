# shellcheck shell=bash
# Source this (". lab/env.sh") to get the WESGATE_LAB_* variables that the
# integration tests read. The values are written by lab/up.sh, after its
# self-test passed, to $LAB_STATE/env.sh (default /var/lib/wesgate-lab); this
# file only forwards to that. lab/down.sh deletes it, so when the lab is down
# nothing is exported and the tests skip.
#
# Exports: WESGATE_LAB_SSH_ADDR, WESGATE_LAB_KNOWN_HOSTS, WESGATE_LAB_USER1,
# WESGATE_LAB_USER2, WESGATE_LAB_KEY1, WESGATE_LAB_KEY2, WESGATE_LAB_CA_KEY,
# WESGATE_LAB_CA_PUB, WESGATE_LAB_PARTITION, WESGATE_LAB_PARTITION2,
# WESGATE_LAB_BASE, WESGATE_LAB_SVC_USER, WESGATE_LAB_SVC_KEY,
# WESGATE_LAB_SLURM_CONF, WESGATE_LAB_STATE; and, while the latency proxy
# runs (lab/ctl.sh lag 25ms), WESGATE_LAB_LAG_ADDR and WESGATE_LAB_LAG_DELAY.
# See lab/README.md.
#
# Safe to source from any shell with `set -eu`: it never exits, and returns 0
# even when the lab is not up (with a note on stderr).
if [ -r "${LAB_STATE:-/var/lib/wesgate-lab}/env.sh" ]; then
  # shellcheck disable=SC1091
  . "${LAB_STATE:-/var/lib/wesgate-lab}/env.sh"
  # written by `lab/ctl.sh lag`; only while the proxy's process is alive
  if [ -r "${LAB_STATE:-/var/lib/wesgate-lab}/lag.env" ] &&
    [ -s "${LAB_STATE:-/var/lib/wesgate-lab}/run/lagproxy.pid" ] &&
    [ -d "/proc/$(cat "${LAB_STATE:-/var/lib/wesgate-lab}/run/lagproxy.pid")" ]; then
    # shellcheck disable=SC1091
    . "${LAB_STATE:-/var/lib/wesgate-lab}/lag.env"
  fi
else
  echo "lab/env.sh: lab not up (no ${LAB_STATE:-/var/lib/wesgate-lab}/env.sh); run lab/up.sh" >&2
fi
true
