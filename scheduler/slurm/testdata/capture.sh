#!/bin/bash
# capture.sh re-captures the squeue/sacct outputs in this directory from the
# lab cluster (lab/README.md), as wesuser1, with the environment and formats
# that parse.go's squeueFormat and sacctFields ask for. Run as root after
# ". lab/env.sh"; then update the expectations in parse_test.go (job ids and
# times change with every capture).
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

# sacct right after a short job ended: the placeholder ("allocation") record.
remote "
j=\$(sbatch --parsable -o /dev/null --job-name=cap-stub --wrap true)
for i in \$(seq 200); do
  out=\$($SACCT -j \$j)
  case \$out in *COMPLETED*) printf '%s\n' \"\$out\"; exit 0;; esac
  sleep 0.05
done
exit 1" > sacct_placeholder.txt

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
head -n 100 squeue.txt sacct_*.txt
