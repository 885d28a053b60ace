// Package slurm runs wesgate's jobs on a Slurm cluster over SSH: it stages
// run directories with SFTP, submits with sbatch, follows jobs with one
// batched squeue (and sacct for jobs that left the queue) per account and
// tick, cancels with scancel, and copies what a finished run left back home.
// Command lines carry only values wesgate made (job ids, paths it chose);
// user values travel inside files.
package slurm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"github.com/wesgate/wesgate/scheduler"
)

// Config configures the Slurm executor.
type Config struct {
	// Cluster names the cluster in pages and logs.
	Cluster string
	// Base is the directory for run directories on the cluster's shared
	// filesystem; "{user}" in it stands for the account.
	Base string
	// DefaultPartition is used when a run names none ("" lets Slurm choose).
	DefaultPartition string
	// ServiceAccount is the account that runs jobs in service-account mode,
	// and asks sinfo.
	ServiceAccount string
	// PerUser makes jobs run as each owner's own account.
	PerUser bool
	// CancelGrace is how long a running job has to stop after SIGTERM before
	// it is cancelled outright.
	CancelGrace time.Duration
	// MaxCollectBytes bounds what is copied home from one run directory.
	MaxCollectBytes int64
	// Lookback bounds sacct queries (-S now-Lookback).
	Lookback time.Duration
	// Metrics counts remote commands (nil: none).
	Metrics *Metrics
}

// Executor is the Slurm executor.
type Executor struct {
	cfg  Config
	pool *Pool
	log  *slog.Logger

	mu        sync.Mutex // guards partCache, partAt, cancels
	partCache []string
	partAt    time.Time
	cancels   map[string]time.Time // job id -> when SIGTERM was sent

	queueMu sync.Mutex // guards queue, and serializes its refresh
	queue   scheduler.Queue
}

// New returns an Executor over pool.
func New(cfg Config, pool *Pool, log *slog.Logger) (*Executor, error) {
	if !path.IsAbs(cfg.Base) || strings.ContainsAny(strings.ReplaceAll(cfg.Base, "{user}", "u"), " \t\n'\"$`\\;&|<>(){}*?!#~") {
		return nil, fmt.Errorf("slurm: remote base %q must be an absolute path of plain characters", cfg.Base)
	}
	if !cfg.PerUser && cfg.ServiceAccount == "" {
		return nil, errors.New("slurm: a service account is needed unless jobs run as each user")
	}
	if cfg.CancelGrace <= 0 {
		cfg.CancelGrace = 30 * time.Second
	}
	if cfg.MaxCollectBytes <= 0 {
		cfg.MaxCollectBytes = 1 << 30
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 7 * 24 * time.Hour
	}
	return &Executor{cfg: cfg, pool: pool, log: log, cancels: map[string]time.Time{}}, nil
}

// Name is "slurm".
func (e *Executor) Name() string { return "slurm" }

// Pool returns the SSH connections.
func (e *Executor) Pool() *Pool { return e.pool }

// Health reports the SSH connection of every account in use.
func (e *Executor) Health() []scheduler.Health { return e.pool.Health() }

// Account is the cluster account whose jobs carry user's runs.
func (e *Executor) Account(user string) string {
	if e.cfg.PerUser {
		return user
	}
	return e.cfg.ServiceAccount
}

// RunDir is base/runID, with {user} in base filled in.
func (e *Executor) RunDir(account, runID string) string {
	return strings.ReplaceAll(e.cfg.Base, "{user}", account) + "/" + runID
}

// command joins a program and its arguments, each quoted, after the
// environment that makes Slurm's output parseable.
func command(prog string, args ...string) string {
	words := []string{"TZ=UTC", "SLURM_TIME_FORMAT=" + quote(slurmTimeFormat), prog}
	for _, a := range args {
		words = append(words, quote(a))
	}
	return strings.Join(words, " ")
}

func quote(s string) string {
	q, err := scheduler.Quote(s)
	if err != nil {
		panic("slurm: command argument with NUL: " + err.Error()) // wesgate makes every argument
	}
	return q
}

// run runs a Slurm command as account and logs it.
func (e *Executor) run(ctx context.Context, account, kind, prog string, args ...string) ([]byte, error) {
	start := time.Now()
	out, err := e.pool.Run(ctx, account, command(prog, args...), nil)
	took := time.Since(start)
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
	return out, err
}

// Submit stages the run directory and submits the batch script. When an
// earlier attempt staged it already, the job is looked up by name first,
// so a crash between sbatch and recording its id never submits twice.
func (e *Executor) Submit(ctx context.Context, job scheduler.Job, localDir string) (string, error) {
	fsys, err := e.pool.SFTP(ctx, job.User)
	var authErr *AuthError
	if errors.As(err, &authErr) {
		return "", &scheduler.RejectedError{Msg: fmt.Sprintf("the cluster refused the login of account %s (no such account, or wesgate is not trusted for it)", job.User)}
	}
	if err != nil {
		return "", err
	}
	script := job.Dir + "/" + scheduler.ScriptFile
	if _, err := fsys.Stat(script); err == nil {
		id, err := e.findByName(ctx, job.User, job.Name)
		if err != nil {
			return "", err
		}
		if id != "" {
			e.log.Info("slurm: found the job of an earlier attempt", "job", id, "name", job.Name)
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		e.pool.sftpFailed(job.User, err)
		return "", fmt.Errorf("%w: stat: %v", ErrUnreachable, err)
	}
	start := time.Now()
	if err := e.stage(fsys, job, localDir); err != nil {
		e.cfg.Metrics.command("sftp", "error", time.Since(start).Seconds())
		e.pool.sftpFailed(job.User, err)
		return "", fmt.Errorf("stage %s: %w", job.Dir, err)
	}
	e.cfg.Metrics.command("sftp", "ok", time.Since(start).Seconds())
	e.log.Debug("slurm: staged", "dir", job.Dir, "took", time.Since(start).Round(time.Millisecond))
	out, err := e.run(ctx, job.User, "sbatch", "sbatch", "--parsable", script)
	var ee *ExitError
	if errors.As(err, &ee) {
		// sbatch exits 1 for a refusal and for a controller it cannot reach;
		// only the first fails the run for good.
		if _, perr := e.run(ctx, job.User, "scontrol", "scontrol", "ping"); perr != nil {
			return "", fmt.Errorf("%w: sbatch: %s (slurmctld does not answer: %v)", ErrUnreachable, slurmMessage(ee.Stderr), perr)
		}
		return "", &scheduler.RejectedError{Msg: slurmMessage(ee.Stderr)}
	}
	if err != nil {
		return "", err
	}
	return parseJobID(out)
}

// slurmMessage is sbatch's complaint without its prefix.
func slurmMessage(stderr string) string {
	msg := firstLine(stderr)
	msg = strings.TrimPrefix(msg, "sbatch: error: ")
	if msg == "" {
		msg = "sbatch failed without a message"
	}
	return msg
}

// findByName returns the id of the account's job called name, queued or
// recently finished, or "".
func (e *Executor) findByName(ctx context.Context, account, name string) (string, error) {
	// --states=all: squeue keeps an ended job for MinJobAge, while sacct
	// lists a job that ended within a second by name only seconds later.
	out, err := e.run(ctx, account, "squeue", "squeue", "--me", "--noheader", "--states=all", "--name="+name, "--format=%i")
	if err != nil {
		return "", err
	}
	if id := strings.TrimSpace(string(out)); id != "" {
		id, _, _ = strings.Cut(id, "\n")
		return strings.TrimSpace(id), nil
	}
	out, err = e.run(ctx, account, "sacct", "sacct", "--noheader", "--parsable2", "-X", "--name="+name,
		"--starttime="+e.since(), "--format=JobID")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if id := strings.TrimSpace(line); validJobID(id) {
			return id, nil
		}
	}
	return "", nil
}

func (e *Executor) since() string {
	return time.Now().UTC().Add(-e.cfg.Lookback).Format(goTimeFormat)
}

// stage copies localDir/work to the run directory and writes the script.
func (e *Executor) stage(fsys *sftp.Client, job scheduler.Job, localDir string) error {
	// The run directory is the owner's alone (0750), so the files in it keep
	// the server's default mode without a chmod each: fewer round trips.
	if err := mkdir(fsys, job.Dir); err != nil {
		return err
	}
	if err := fsys.Chmod(job.Dir, 0o750); err != nil {
		return err
	}
	for _, d := range []string{job.Dir + "/" + scheduler.WorkDir, job.Dir + "/" + scheduler.OutputsDir} {
		if err := mkdir(fsys, d); err != nil {
			return err
		}
	}
	work := filepath.Join(localDir, scheduler.WorkDir)
	err := filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(work, p)
		if err != nil || rel == "." {
			return err
		}
		remote := job.Dir + "/" + scheduler.WorkDir + "/" + filepath.ToSlash(rel)
		if d.IsDir() {
			return mkdir(fsys, remote)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return upload(fsys, p, remote)
	})
	if err != nil {
		return err
	}
	// The script goes last: its presence tells a later attempt that this one
	// may have reached sbatch.
	return writeRemote(fsys, job.Dir+"/"+scheduler.ScriptFile, job.Script)
}

// mkdir makes a directory in one round trip when its parent exists (the
// usual case), else with its parents; an existing directory is fine.
func mkdir(fsys *sftp.Client, dir string) error {
	if fsys.Mkdir(dir) == nil {
		return nil
	}
	return fsys.MkdirAll(dir)
}

func upload(fsys *sftp.Client, local, remote string) error {
	src, err := os.Open(local)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := fsys.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := dst.ReadFrom(src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// writeRemote writes a file whole or not at all (a temporary name, then a
// rename).
func writeRemote(fsys *sftp.Client, remote string, data []byte) error {
	tmp := remote + ".tmp"
	dst, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := dst.Write(data); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return fsys.PosixRename(tmp, remote)
}

// Status asks squeue once for all of the account's jobs, and sacct once for
// those that have left the queue; jobs neither knows are absent.
func (e *Executor) Status(ctx context.Context, account string, ids []string) (map[string]scheduler.JobStatus, error) {
	want := map[string]bool{}
	for _, id := range ids {
		if validJobID(id) {
			want[id] = true
		}
	}
	out, err := e.run(ctx, account, "squeue", "squeue", "--me", "--noheader", "--states=all", "--format="+squeueFormat)
	if err != nil {
		return nil, err
	}
	queued, err := parseSqueue(out)
	if err != nil {
		return nil, err
	}
	result := map[string]scheduler.JobStatus{}
	var gone []string
	for id := range want {
		st, ok := queued[id]
		if ok && !st.Terminal() {
			result[id] = st
			continue
		}
		gone = append(gone, id)
	}
	if len(gone) > 0 {
		out, err := e.run(ctx, account, "sacct", "sacct", "--noheader", "--parsable2", "--jobs="+strings.Join(gone, ","),
			"--starttime="+e.since(), "--format="+sacctFields)
		if err != nil {
			return nil, err
		}
		done, err := parseSacct(out)
		if err != nil {
			return nil, err
		}
		for _, id := range gone {
			if st, ok := done[id]; ok {
				result[id] = st
			}
		}
	}
	e.escalateCancels(ctx, account, result)
	return result, nil
}

// escalateCancels cancels outright the jobs that ignored SIGTERM too long.
func (e *Executor) escalateCancels(ctx context.Context, account string, st map[string]scheduler.JobStatus) {
	e.mu.Lock()
	var late []string
	for id, at := range e.cancels {
		s, ok := st[id]
		switch {
		case ok && s.Terminal(), !ok && time.Since(at) > 10*e.cfg.CancelGrace:
			delete(e.cancels, id)
		case ok && time.Since(at) > e.cfg.CancelGrace:
			late = append(late, id)
			delete(e.cancels, id)
		}
	}
	e.mu.Unlock()
	for _, id := range late {
		if _, err := e.run(ctx, account, "scancel", "scancel", id); err != nil {
			e.log.Warn("slurm: scancel after grace", "job", id, "err", err)
		}
	}
}

// Cancel cancels a pending job outright and sends SIGTERM to the batch
// script of a running one, so the wrapper records the engine's end; a job
// still running after the grace period is cancelled outright.
func (e *Executor) Cancel(ctx context.Context, account, jobID string) error {
	if !validJobID(jobID) {
		return fmt.Errorf("slurm cancel: bad job id %q", jobID)
	}
	if _, err := e.run(ctx, account, "scancel", "scancel", "--state=PENDING", jobID); err != nil {
		return e.cancelFailed(ctx, account, jobID, err, scheduler.StatePending, scheduler.StateRunning)
	}
	if _, err := e.run(ctx, account, "scancel", "scancel", "--state=RUNNING", "--batch", "--signal=TERM", jobID); err != nil {
		return e.cancelFailed(ctx, account, jobID, err, scheduler.StateRunning)
	}
	e.mu.Lock()
	e.cancels[jobID] = time.Now()
	e.mu.Unlock()
	return nil
}

// cancelFailed judges a failed scancel. scancel exits 1 when no job matches
// its --state: the job ended, or was pending and the first scancel
// cancelled it. That is a failure only while squeue still shows the job in
// one of states.
func (e *Executor) cancelFailed(ctx context.Context, account, jobID string, err error, states ...string) error {
	var ee *ExitError
	if !errors.As(err, &ee) {
		return err
	}
	out, qerr := e.run(ctx, account, "squeue", "squeue", "--noheader", "--states=all", "--jobs="+jobID, "--format=%T")
	if qerr != nil && !errors.As(qerr, &ee) { // an ExitError: squeue no longer knows the job
		return err
	}
	for _, s := range states {
		if strings.TrimSpace(string(out)) == s {
			return err
		}
	}
	return nil
}

// Open opens a file on the cluster for reading.
func (e *Executor) Open(ctx context.Context, account, name string) (io.ReadSeekCloser, error) {
	fsys, err := e.pool.SFTP(ctx, account)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	f, err := fsys.Open(name)
	e.cfg.Metrics.command("sftp", outcome(err), time.Since(start).Seconds())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fs.ErrNotExist
		}
		e.pool.sftpFailed(account, err)
		return nil, err
	}
	return f, nil
}

// Collect copies the run directory home: logs, the wrapper's records,
// outputs and anything the engine wrote, up to MaxCollectBytes; files that
// are already home with the same size (the attachments) are skipped.
func (e *Executor) Collect(ctx context.Context, account, runDir, localDir string) (err error) {
	start := time.Now()
	defer func() { e.cfg.Metrics.command("sftp", outcome(err), time.Since(start).Seconds()) }()
	fsys, err := e.pool.SFTP(ctx, account)
	if err != nil {
		return err
	}
	var total int64
	w := fsys.Walk(runDir)
	for w.Step() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := w.Err(); err != nil {
			if errors.Is(err, fs.ErrNotExist) && w.Path() == runDir {
				return nil // nothing was staged
			}
			e.pool.sftpFailed(account, err)
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(w.Path(), runDir), "/")
		if rel == "" {
			continue
		}
		local := filepath.Join(localDir, filepath.FromSlash(rel))
		fi := w.Stat()
		if fi.IsDir() {
			if err := os.MkdirAll(local, 0o750); err != nil {
				return err
			}
			continue
		}
		if !fi.Mode().IsRegular() || rel == scheduler.ScriptFile+".tmp" {
			continue
		}
		if have, err := os.Stat(local); err == nil && have.Size() == fi.Size() && !isRecord(rel) {
			continue
		}
		if total+fi.Size() > e.cfg.MaxCollectBytes {
			e.log.Warn("slurm: collect limit reached; left on the cluster", "file", rel, "dir", runDir)
			continue
		}
		total += fi.Size()
		if err := download(fsys, w.Path(), local); err != nil {
			e.pool.sftpFailed(account, err)
			return err
		}
	}
	return nil
}

func outcome(err error) string {
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "error"
	}
	return "ok"
}

// isRecord reports whether rel may change size-preservingly between
// collections (logs and the wrapper's records are always copied).
func isRecord(rel string) bool {
	return strings.HasPrefix(rel, scheduler.RecordDir+"/") || rel == scheduler.StdoutFile || rel == scheduler.StderrFile
}

func download(fsys *sftp.Client, remote, local string) error {
	src, err := fsys.Open(remote)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(local), 0o750); err != nil {
		return err
	}
	tmp := local + ".part"
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := src.WriteTo(dst); err != nil {
		dst.Close()
		os.Remove(tmp)
		return err
	}
	if err := dst.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, local)
}

// EngineVersion runs an engine's version command on the cluster, as the
// service account, after the engine's setup lines (module load ...). Both
// come from the administrator's configuration; the script goes to bash on
// standard input, not on the command line.
func (e *Executor) EngineVersion(ctx context.Context, setup, cmd []string) ([]byte, error) {
	var b strings.Builder
	for _, line := range setup {
		b.WriteString(line + "\n")
	}
	words := make([]string, len(cmd))
	for i, w := range cmd {
		words[i] = quote(w)
	}
	b.WriteString(strings.Join(words, " ") + " 2>&1\n")
	account := e.cfg.ServiceAccount
	out, err := e.pool.Run(ctx, account, "bash -s", []byte(b.String()))
	var ee *ExitError
	if errors.As(err, &ee) {
		return nil, fmt.Errorf("on the cluster: %s exited %d: %s", cmd[0], ee.Status, firstLine(string(out)+ee.Stderr))
	}
	return out, err
}
