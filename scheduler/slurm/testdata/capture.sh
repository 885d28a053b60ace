#!/bin/bash
# capture.sh re-captures the squeue/sacct outputs in this directory from the
# lab cluster (lab/README.md), as wesuser1, with the environment and formats
# that parse.go's squeueFormat and sacctFields ask for. Run as root after
# ". lab/env.sh"; then update the expectations in parse_test.go (job ids and
# times change with every capture).
#
#   capture.sh [squeue] [placeholder] [sacct] [over128] [begin]   (default: all)
set -euo pipefail
cd "$(dirname "$0")"
: "${WESGATE_LAB_SSH_ADDR:?run . lab/env.sh first}"
remote() {
  ssh -i "$WESGATE_LAB_KEY1" -p "${WESGATE_LAB_SSH_ADDR##*:}" -o BatchMode=yes \
    -o UserKnownHostsFile="$WESGATE_LAB_KNOWN_HOSTS" "$WESGATE_LAB_USER1@${WESGATE_LAB_SSH_ADDR%:*}" \
    "export TZ=UTC SLURM_TIME_FORMAT=%Y-%m-%dT%H:%M:%S; cd $WESGATE_LAB_BASE/$WESGATE_LAB_USER1 || exit 1; $1"
}
SQUEUE='squeue --me --noheader --states=all --format="%i|%T|%r|%P|%N|%S"'
SACCT='sacct --noheader --parsable2 --format=JobID,JobName,State,ExitCode,Start,End,Partition,NodeList'

capture_squeue() {
# squeue: running, held, pending (begin time, dependency), recently completed.
remote "
r=\$(sbatch --parsable -o /dev/null --job-name=cap-running --wrap 'sleep 60')
h=\$(sbatch --parsable -o /dev/null --hold --job-name=cap-held --wrap true)
b=\$(sbatch --parsable -o /dev/null --begin=now+1hour --job-name=cap-begin --wrap true)
d=\$(sbatch --parsable -o /dev/null --dependency=afterok:\$r --job-name=cap-dep --wrap true)
c=\$(sbatch --parsable -o /dev/null --job-name=cap-done --wrap true)
for i in \$(seq 50); do
  [ \"\$(squeue -h -j \$r -o %T)\" = RUNNING ] && [ -z \"\$(squeue -h -j \$c -t PD,R,CG -o %i)\" ] && break
  sleep 0.2
done
$SQUEUE | grep -E \"^(\$r|\$h|\$b|\$d|\$c)\\|\"
scancel \$r \$h \$b \$d" > squeue.txt
}

capture_placeholder() {
# sacct right after a short job ended: the placeholder ("allocation") record.
remote "
j=\$(sbatch --parsable -o /dev/null --job-name=cap-stub --wrap true)
for i in \$(seq 200); do
  out=\$($SACCT -j \$j)
  case \$out in *COMPLETED*) printf '%s\n' \"\$out\"; exit 0;; esac
  sleep 0.05
done
exit 1" > sacct_placeholder.txt
}

capture_sacct() {
# sacct after the real records arrived.
remote "
ok=\$(sbatch --parsable -o /dev/null --job-name=cap-ok --wrap 'echo hello')
fail=\$(sbatch --parsable -o /dev/null --job-name=cap-exit3 --wrap 'exit 3')
kill=\$(sbatch --parsable -o /dev/null --job-name=cap-sigkill --wrap 'kill -9 \$\$')
steps=\$(sbatch --parsable -o /dev/null --job-name=cap-steps --wrap 'srun true; srun false')
run=\$(sbatch --parsable -o /dev/null --job-name=cap-cancel-running --wrap 'sleep 60')
pend=\$(sbatch --parsable -o /dev/null --hold --job-name=cap-cancel-pending --wrap true)
for i in \$(seq 100); do [ \"\$(squeue -h -j \$run -o %T)\" = RUNNING ] && break; sleep 0.2; done
sleep 1
scancel \$run \$pend
for i in \$(seq 100); do [ -z \"\$(squeue -h -j \$ok,\$fail,\$kill,\$steps,\$run,\$pend -t PD,R,CG -o %i)\" ] && break; sleep 0.2; done
sleep 6
echo \"\$ok \$fail \$kill \$steps \$run \$pend\"
" > ids.tmp
read -r ok fail kill steps run pend < ids.tmp
rm ids.tmp
remote "$SACCT -j $ok" > sacct_completed.txt
remote "$SACCT -j $fail" > sacct_exit3.txt
remote "$SACCT -j $kill" > sacct_sigkill.txt
remote "$SACCT -j $steps" > sacct_steps.txt
remote "$SACCT -j $run" > sacct_cancelled_running.txt
remote "$SACCT -j $pend" > sacct_cancelled_pending.txt
remote "$SACCT -j $ok,$fail,$kill,$steps,$run,$pend" > sacct_all.txt
}

capture_over128() {
# Batch scripts exiting 128..255 (as wesgate's wrapper does for an engine
# killed by a signal): slurmctld logs the whole status, sacct keeps 7 bits.
remote "
ids=
for c in 127 128 129 137 143 200 255; do ids=\$ids,\$(sbatch --parsable -o /dev/null --job-name=cap-exit\$c --wrap \"exit \$c\"); done
ids=\${ids#,}
for i in \$(seq 100); do [ -z \"\$(squeue -h -j \$ids -t PD,R,CG -o %i)\" ] && break; sleep 0.2; done
sleep 6
$SACCT -j \$ids" > sacct_over128.txt
}

capture_begin() {
# A job cancelled while waiting for its --begin time: sacct gives it the
# cancel time as Start, though it never ran (NodeList "None assigned").
remote "
j=\$(sbatch --parsable -o /dev/null --begin=now+1hour --job-name=cap-cancel-begin --wrap true)
sleep 1
scancel \$j
for i in \$(seq 100); do
  out=\$($SACCT -j \$j)
  case \$out in *cap-cancel-begin*) printf '%s\n' \"\$out\"; exit 0;; esac
  sleep 0.2
done
exit 1" > sacct_cancelled_begin.txt
}

for section in "${@:-squeue placeholder sacct over128 begin}"; do
  for s in $section; do "capture_$s"; done
done
head -n 100 squeue.txt sacct_*.txt
