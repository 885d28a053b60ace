package slurm

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// SubmitBatch stages and submits jobs of one account with a fixed number of
// remote commands, whatever the number of jobs: one lookup by name for the
// jobs an earlier attempt may have submitted, one tar stream that stages
// every run directory, and one script that runs sbatch for each job after
// checking that its batch script is the one staged (a SHA-256 recorded
// here). results[i] belongs to jobs[i].
func (e *Executor) SubmitBatch(ctx context.Context, account string, jobs []scheduler.Job) []scheduler.Submitted {
	res := make([]scheduler.Submitted, len(jobs))
	failAll := func(idx []int, err error) {
		for _, i := range idx {
			res[i].Err = err
		}
	}
	var pending []int
	var retryNames []string
	for i, j := range jobs {
		pending = append(pending, i)
		if j.Retry {
			retryNames = append(retryNames, j.Name)
		}
	}
	if len(jobs) == 0 {
		return res
	}
	if e.cfg.PerUser && account == e.cfg.ServiceAccount {
		// A run stored for a person whose name is the service account's
		// (before such names were refused) never runs with the service key.
		failAll(pending, &scheduler.RejectedError{Msg: fmt.Sprintf("account %s is wesgate's own and cannot run a person's jobs", account)})
		return res
	}
	if len(retryNames) > 0 {
		found, err := e.findByNames(ctx, account, retryNames)
		if err != nil {
			failAll(pending, e.submitError(account, err))
			return res
		}
		var rest []int
		for _, i := range pending {
			if id, ok := found[jobs[i].Name]; ok {
				e.log.Info("slurm: found the job of an earlier attempt", "job", id, "name", jobs[i].Name)
				res[i].JobID = id
				continue
			}
			rest = append(rest, i)
		}
		pending = rest
	}
	if len(pending) == 0 {
		return res
	}
	start := time.Now()
	if err := e.stage(ctx, account, jobs, pending); err != nil {
		failAll(pending, e.submitError(account, fmt.Errorf("stage: %w", err)))
		return res
	}
	e.log.Debug("slurm: staged", "account", account, "runs", len(pending), "took", time.Since(start).Round(time.Millisecond))
	e.sbatchAll(ctx, account, jobs, pending, res)
	return res
}

// submitError turns a refused login into a rejection of the job; other
// errors are passing (the run waits).
func (e *Executor) submitError(account string, err error) error {
	var authErr *AuthError
	if errors.As(err, &authErr) {
		return &scheduler.RejectedError{Msg: fmt.Sprintf(
			"the cluster refused the login of account %s (no such account, or wesgate is not trusted for it)", account)}
	}
	return err
}

// Submit stages and submits one job (SubmitBatch with one job).
func (e *Executor) Submit(ctx context.Context, job scheduler.Job, localDir string) (string, error) {
	job.LocalDir = localDir
	r := e.SubmitBatch(ctx, job.User, []scheduler.Job{job})[0]
	return r.JobID, r.Err
}

// stage sends the run directories of jobs[idx] as one tar stream that a
// single remote tar unpacks. Run directories are the account's alone
// (umask 077: not even its group, which on a cluster is often everyone's);
// the batch script goes last in each directory.
func (e *Executor) stage(ctx context.Context, account string, jobs []scheduler.Job, idx []int) error {
	byParent := map[string][]int{}
	var parents []string
	for _, i := range idx {
		parent := path.Dir(jobs[i].Dir)
		if _, ok := byParent[parent]; !ok {
			parents = append(parents, parent)
		}
		byParent[parent] = append(byParent[parent], i)
	}
	for _, parent := range parents {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeStage(pw, jobs, byParent[parent])) }()
		cmd := "umask 077 && mkdir -p -- " + quote(parent) + " && exec tar -x -f - --no-same-owner -C " + quote(parent)
		_, err := e.streamLogged(ctx, account, "tar", cmd, pr, nil)
		pr.CloseWithError(errors.New("stage ended")) // stops the writer if the command did
		if err != nil {
			return err
		}
	}
	return nil
}

// writeStage writes the tar stream of the jobs' run directories, named
// relative to their parent.
func writeStage(w io.Writer, jobs []scheduler.Job, idx []int) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	now := time.Now()
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700, ModTime: now})
	}
	for _, i := range idx {
		j := jobs[i]
		base := path.Base(j.Dir)
		for _, d := range []string{base, base + "/" + scheduler.WorkDir, base + "/" + scheduler.OutputsDir} {
			if err := dir(d); err != nil {
				return err
			}
		}
		if j.LocalDir != "" {
			work := filepath.Join(j.LocalDir, scheduler.WorkDir)
			err := filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					if errors.Is(err, fs.ErrNotExist) && p == work {
						return nil
					}
					return err
				}
				rel, err := filepath.Rel(work, p)
				if err != nil || rel == "." {
					return err
				}
				name := base + "/" + scheduler.WorkDir + "/" + filepath.ToSlash(rel)
				if d.IsDir() {
					return dir(name)
				}
				if !d.Type().IsRegular() {
					return nil
				}
				return addFile(tw, p, name, now)
			})
			if err != nil {
				return err
			}
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: base + "/" + scheduler.ScriptFile, Mode: 0o700,
			Size: int64(len(j.Script)), ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(j.Script); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func addFile(tw *tar.Writer, local, name string, now time.Time) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: fi.Size(), ModTime: now}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, fi.Size())
	return err
}

// sbatchScript runs sbatch for each staged job and prints one line each:
// index, exit status, sbatch's stdout and the start of its stderr, tab
// separated. A job whose script no longer has the staged digest is not
// submitted ("changed"). When any sbatch failed, scontrol ping tells a
// refusal from a controller that does not answer.
const sbatchPrelude = `e=$(mktemp) || exit 97
trap 'rm -f -- "$e"' EXIT
failed=0
s() {
  if [ "$(sha256sum < "$2")" != "$3  -" ]; then printf '%s\tchanged\t\t\n' "$1"; return; fi
  o=$(sbatch --parsable "$2" </dev/null 2>"$e"); r=$?
  [ "$r" = 0 ] || failed=1
  printf '%s\t%s\t%s\t%s\n' "$1" "$r" "$(printf %s "$o" | tr '\t\n' '  ')" "$(head -n 1 -- "$e" | head -c 300 | tr '\t\n' '  ')"
}
`

const sbatchCoda = `if [ "$failed" = 1 ]; then scontrol ping >/dev/null 2>&1; printf 'ping\t%s\n' "$?"; fi
`

func (e *Executor) sbatchAll(ctx context.Context, account string, jobs []scheduler.Job, idx []int, res []scheduler.Submitted) {
	var b strings.Builder
	b.WriteString(sbatchPrelude)
	for _, i := range idx {
		sum := sha256.Sum256(jobs[i].Script)
		fmt.Fprintf(&b, "s %d %s %s\n", i, quote(jobs[i].Dir+"/"+scheduler.ScriptFile), hex.EncodeToString(sum[:]))
	}
	b.WriteString(sbatchCoda)
	out, err := e.streamLogged(ctx, account, "sbatch", "TZ=UTC exec bash -s", strings.NewReader(b.String()), new(bytes.Buffer))
	// Lines that came back count even when the command did not finish: those
	// jobs exist. The others may or may not: their runs are retried, looking
	// for the job by name first.
	type line struct{ rc, out, stderr string }
	got := map[int]line{}
	pingOK := true
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "\t")
		if len(f) == 2 && f[0] == "ping" {
			pingOK = f[1] == "0"
			continue
		}
		if len(f) != 4 {
			continue
		}
		i, perr := strconv.Atoi(f[0])
		if perr != nil || i < 0 || i >= len(jobs) {
			continue
		}
		got[i] = line{f[1], f[2], f[3]}
	}
	for _, i := range idx {
		l, ok := got[i]
		switch {
		case !ok:
			if err == nil {
				err = errors.New("sbatch: no answer for this job")
			}
			res[i].Err = fmt.Errorf("%w: sbatch: %w", ErrUnreachable, err)
		case l.rc == "changed":
			res[i].Err = &scheduler.RejectedError{Msg: "the batch script changed on the cluster after wesgate staged it; it was not submitted"}
		case l.rc != "0":
			msg := slurmMessage(l.stderr)
			if !pingOK {
				res[i].Err = fmt.Errorf("%w: sbatch: %s (slurmctld does not answer)", ErrUnreachable, msg)
				continue
			}
			res[i].Err = &scheduler.RejectedError{Msg: msg}
		default:
			res[i].JobID, res[i].Err = parseJobID([]byte(l.out))
		}
	}
}

// findByNames returns the ids of the account's jobs with the given names,
// queued or recently ended: one squeue and, for names it does not know, one
// sacct.
func (e *Executor) findByNames(ctx context.Context, account string, names []string) (map[string]string, error) {
	found := map[string]string{}
	// --states=all: squeue keeps an ended job for MinJobAge, while sacct
	// lists a job that ended within a second by name only seconds later.
	out, err := e.run(ctx, account, "squeue", "squeue", "--me", "--noheader", "--states=all",
		"--name="+strings.Join(names, ","), "--format=%j|%i")
	if err != nil {
		return nil, err
	}
	addFound(found, out)
	var rest []string
	for _, n := range names {
		if _, ok := found[n]; !ok {
			rest = append(rest, n)
		}
	}
	if len(rest) == 0 {
		return found, nil
	}
	out, err = e.run(ctx, account, "sacct", "sacct", "--noheader", "--parsable2", "-X", "--name="+strings.Join(rest, ","),
		"--starttime="+e.since(), "--format=JobName,JobID")
	if err != nil {
		return nil, err
	}
	addFound(found, out)
	return found, nil
}

// addFound reads "name|id" lines; the first id of a name wins.
func addFound(found map[string]string, out []byte) {
	for _, line := range strings.Split(string(out), "\n") {
		name, id, ok := strings.Cut(strings.TrimSpace(line), "|")
		if !ok || !validJobID(id) {
			continue
		}
		if _, seen := found[name]; !seen {
			found[name] = id
		}
	}
}

// CancelBatch cancels jobs of one account with one remote command: the
// jobs in term are cancelled outright while pending, and their batch
// script gets SIGTERM while running (the wrapper records the engine's
// end); the jobs in kill are cancelled outright in any state. scancel's
// complaints about jobs that already ended are ignored: the next poll
// shows what happened.
func (e *Executor) CancelBatch(ctx context.Context, account string, term, kill []string) error {
	for _, id := range append(append([]string(nil), term...), kill...) {
		if !validJobID(id) {
			return fmt.Errorf("slurm cancel: bad job id %q", id)
		}
	}
	var parts []string
	if len(term) > 0 {
		ids := strings.Join(term, " ")
		parts = append(parts, "scancel --state=PENDING "+ids+" 2>/dev/null",
			"scancel --state=RUNNING --batch --signal=TERM "+ids+" 2>/dev/null")
	}
	if len(kill) > 0 {
		parts = append(parts, "scancel "+strings.Join(kill, " ")+" 2>/dev/null")
	}
	if len(parts) == 0 {
		return nil
	}
	_, err := e.streamLogged(ctx, account, "scancel", strings.Join(parts, "; ")+"; true", nil, new(bytes.Buffer))
	return err
}

// Cancel cancels one job (CancelBatch with SIGTERM first).
func (e *Executor) Cancel(ctx context.Context, account, jobID string) error {
	return e.CancelBatch(ctx, account, []string{jobID}, nil)
}

// streamLogged runs a remote command through the pool, logging and
// counting it like run; with a buffer, it returns what the command printed.
func (e *Executor) streamLogged(ctx context.Context, account, kind, cmd string, stdin io.Reader, out *bytes.Buffer) (string, error) {
	start := time.Now()
	err := e.pool.Stream(ctx, account, cmd, stdin, func(r io.Reader) error {
		if out == nil {
			_, err := io.Copy(io.Discard, r)
			return err
		}
		_, err := out.ReadFrom(io.LimitReader(r, 16<<20))
		return err
	})
	e.logCommand(kind, account, time.Since(start), err)
	if out == nil {
		return "", err
	}
	return out.String(), err
}

// logCommand logs and counts one remote command.
func (e *Executor) logCommand(kind, account string, took time.Duration, err error) {
	attrs := []any{"kind", kind, "account", account, "took", took.Round(time.Millisecond)}
	var ee *ExitError
	switch {
	case errors.As(err, &ee):
		e.cfg.Metrics.command(kind, "exit", took.Seconds())
		e.log.Info("slurm: command failed", append(attrs, "exit", ee.Status, "stderr", firstLine(ee.Stderr))...)
	case err != nil:
		e.cfg.Metrics.command(kind, "error", took.Seconds())
		e.log.Warn("slurm: command not run", append(attrs, "err", err)...)
	default:
		e.cfg.Metrics.command(kind, "ok", took.Seconds())
		e.log.Debug("slurm: command", attrs...)
	}
}
