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
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

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
	// Lookback bounds sacct queries (-S now-Lookback).
	Lookback time.Duration
	// FileTimeout bounds each SFTP request of a live log read (default 20s).
	FileTimeout time.Duration
	// Metrics counts remote commands (nil: none).
	Metrics *Metrics
}

// Executor is the Slurm executor.
type Executor struct {
	cfg  Config
	pool *Pool
	log  *slog.Logger

	mu        sync.Mutex // guards partCache, partAt
	partCache []string
	partAt    time.Time

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
	if cfg.FileTimeout <= 0 {
		cfg.FileTimeout = 20 * time.Second
	}
	if cfg.Lookback <= 0 {
		cfg.Lookback = 7 * 24 * time.Hour
	}
	return &Executor{cfg: cfg, pool: pool, log: log}, nil
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
	e.logCommand(kind, account, time.Since(start), err)
	return out, err
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

func (e *Executor) since() string {
	return time.Now().UTC().Add(-e.cfg.Lookback).Format(goTimeFormat)
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
	return result, nil
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
