// Package local runs wesgate's batch scripts as child processes on the
// wesgate host: the executor for a laptop or a single workstation, and the
// embedded default. It reports job states in Slurm's words, like the Slurm
// executor, so the wes package treats both alike.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// envJob marks a job's processes, so that jobs left behind by a wesgate that
// died can be recognised and stopped.
const envJob = "WESGATE_JOB_NAME"

// Executor runs jobs as process groups, at most MaxJobs at a time; the rest
// wait in submission order.
type Executor struct {
	runsDir  string
	maxJobs  int
	grace    time.Duration
	log      *slog.Logger
	onChange func()
	host     string

	mu      sync.Mutex // guards jobs, queue, running, closed
	jobs    map[string]*job
	queue   []*job
	running int
	closed  bool
	wg      sync.WaitGroup
}

type job struct {
	id, dir   string
	state     string
	pgid      int
	start     time.Time
	end       time.Time
	exit      int
	hasExit   bool
	cancelled bool
	done      chan struct{}
}

// Config configures an Executor.
type Config struct {
	RunsDir string        // absolute directory holding run directories
	MaxJobs int           // concurrent jobs (default 2)
	Grace   time.Duration // SIGTERM to SIGKILL on cancel (default 10s)
	// OnChange is called (without locks held) when a job starts or ends.
	OnChange func()
}

// New returns an Executor.
func New(cfg Config, log *slog.Logger) *Executor {
	if cfg.MaxJobs <= 0 {
		cfg.MaxJobs = 2
	}
	if cfg.Grace <= 0 {
		cfg.Grace = 10 * time.Second
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	host, _ := os.Hostname()
	return &Executor{runsDir: cfg.RunsDir, maxJobs: cfg.MaxJobs, grace: cfg.Grace, log: log,
		onChange: cfg.OnChange, host: host, jobs: map[string]*job{}}
}

// Name is "local".
func (e *Executor) Name() string { return "local" }

// Account is the user: the local executor runs everything as wesgate's
// own account, and groups by nothing.
func (e *Executor) Account(user string) string { return user }

// Options is empty: the local executor takes no batch options.
func (e *Executor) Options() []scheduler.Option { return nil }

// CheckOption refuses every option.
func (e *Executor) CheckOption(context.Context, string, string) error {
	return errors.New("is not an option of the local executor")
}

// Directives is empty.
func (e *Executor) Directives(map[string]string) []string { return nil }

// RunDir is the run's directory under the runs directory; the local executor
// runs jobs where wesgate stored them.
func (e *Executor) RunDir(_, runID string) string { return filepath.Join(e.runsDir, runID) }

// Submit writes the batch script into the run directory and starts the job,
// or queues it. The job id is the job name. A process group left by an
// earlier wesgate for the same job is stopped first, so a job never runs twice.
func (e *Executor) Submit(ctx context.Context, j scheduler.Job, _ string) (string, error) {
	// The same job again (its id was not recorded): it must keep running,
	// with its records, so look before stopping orphans or clearing records.
	e.mu.Lock()
	old, ok := e.jobs[j.Name]
	active := ok && !terminal(old.state)
	e.mu.Unlock()
	if active {
		return j.Name, nil
	}
	if err := killOrphans(map[string]bool{j.Name: true}); err != nil {
		e.log.Warn("local: orphan check", "job", j.Name, "err", err)
	}
	if err := os.MkdirAll(filepath.Join(j.Dir, scheduler.OutputsDir), 0o750); err != nil {
		return "", fmt.Errorf("local submit: %w", err)
	}
	// Records of an earlier attempt would be taken for this one's.
	if err := os.RemoveAll(filepath.Join(j.Dir, scheduler.RecordDir)); err != nil {
		return "", fmt.Errorf("local submit: %w", err)
	}
	if err := os.WriteFile(filepath.Join(j.Dir, scheduler.ScriptFile), j.Script, 0o750); err != nil {
		return "", fmt.Errorf("local submit: %w", err)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return "", errors.New("local submit: executor is shutting down")
	}
	if old, ok := e.jobs[j.Name]; ok && !terminal(old.state) {
		e.mu.Unlock()
		return j.Name, nil
	}
	jb := &job{id: j.Name, dir: j.Dir, state: scheduler.StatePending, done: make(chan struct{})}
	e.jobs[j.Name] = jb
	e.queue = append(e.queue, jb)
	e.mu.Unlock()
	e.startQueued()
	return j.Name, nil
}

func terminal(state string) bool {
	return scheduler.JobStatus{State: state}.Terminal()
}

// startQueued starts waiting jobs while there is room.
func (e *Executor) startQueued() {
	changed := false
	e.mu.Lock()
	for !e.closed && e.running < e.maxJobs && len(e.queue) > 0 {
		jb := e.queue[0]
		e.queue = e.queue[1:]
		if err := e.start(jb); err != nil {
			e.log.Error("local: start job", "job", jb.id, "err", err)
			jb.state, jb.end = scheduler.StateFailed, time.Now()
			close(jb.done)
		}
		changed = true
	}
	e.mu.Unlock()
	if changed {
		e.onChange()
	}
}

// start runs a job's script; e.mu is held.
func (e *Executor) start(jb *job) error {
	stdout, err := os.OpenFile(filepath.Join(jb.dir, scheduler.StdoutFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	defer stdout.Close()
	stderr, err := os.OpenFile(filepath.Join(jb.dir, scheduler.StderrFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	defer stderr.Close()
	cmd := exec.Command("/bin/bash", filepath.Join(jb.dir, scheduler.ScriptFile))
	cmd.Dir = filepath.Join(jb.dir, scheduler.WorkDir)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(), envJob+"="+jb.id)
	// Its own process group, so a cancel reaches the engine and its tools.
	// (No Pdeathsig: it fires when the forking OS thread ends, not the
	// process; jobs left by a dead wesgate are found by envJob instead.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	jb.pgid = cmd.Process.Pid
	jb.state, jb.start = scheduler.StateRunning, time.Now()
	e.running++
	e.wg.Go(func() { e.wait(jb, cmd) })
	return nil
}

// wait records the end of a job and starts the next one.
func (e *Executor) wait(jb *job, cmd *exec.Cmd) {
	err := cmd.Wait()
	code := 0
	if cmd.ProcessState != nil {
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		} else {
			code = cmd.ProcessState.ExitCode()
		}
	} else if err != nil {
		code = -1
	}
	// Stop whatever the engine left behind in the group.
	syscall.Kill(-jb.pgid, syscall.SIGKILL)
	e.mu.Lock()
	jb.end, jb.exit, jb.hasExit = time.Now(), code, true
	switch {
	case jb.cancelled:
		jb.state = scheduler.StateCancelled
	case code == 0:
		jb.state = scheduler.StateCompleted
	default:
		jb.state = scheduler.StateFailed
	}
	e.running--
	close(jb.done)
	e.mu.Unlock()
	e.log.Debug("local: job ended", "job", jb.id, "state", jb.state, "exit", code)
	e.startQueued()
	e.onChange()
}

// Status reports jobs. Jobs this process did not start (a wesgate before a
// restart did) are absent; any processes they left are stopped.
func (e *Executor) Status(_ context.Context, _ string, ids []string) (map[string]scheduler.JobStatus, error) {
	out := make(map[string]scheduler.JobStatus, len(ids))
	unknown := map[string]bool{}
	e.mu.Lock()
	for _, id := range ids {
		jb, ok := e.jobs[id]
		if !ok {
			unknown[id] = true
			continue
		}
		st := scheduler.JobStatus{ID: id, State: jb.state, Start: jb.start, End: jb.end,
			ExitCode: jb.exit, HasExit: jb.hasExit, Partition: "local", Node: e.host}
		if !jb.start.IsZero() {
			st.Steps = []scheduler.Step{{ID: "batch", Name: "batch", State: jb.state, Start: jb.start,
				End: jb.end, ExitCode: jb.exit, HasExit: jb.hasExit}}
		}
		out[id] = st
	}
	e.mu.Unlock()
	if len(unknown) > 0 {
		if err := killOrphans(unknown); err != nil {
			e.log.Warn("local: orphan check", "err", err)
		}
	}
	return out, nil
}

// Cancel stops a job: a waiting one at once; a running one with SIGTERM to
// its process group (the wrapper records the end), then SIGKILL after the
// grace period.
func (e *Executor) Cancel(_ context.Context, _, id string) error {
	e.mu.Lock()
	jb, ok := e.jobs[id]
	if !ok {
		e.mu.Unlock()
		return nil // already gone
	}
	if terminal(jb.state) || jb.cancelled {
		e.mu.Unlock()
		return nil
	}
	jb.cancelled = true
	if jb.state == scheduler.StatePending {
		for i, q := range e.queue {
			if q == jb {
				e.queue = append(e.queue[:i], e.queue[i+1:]...)
				break
			}
		}
		jb.state, jb.end = scheduler.StateCancelled, time.Now()
		close(jb.done)
		e.mu.Unlock()
		e.onChange()
		return nil
	}
	pgid := jb.pgid
	e.mu.Unlock()
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("local cancel: %w", err)
	}
	e.wg.Go(func() {
		select {
		case <-jb.done:
		case <-time.After(e.grace):
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
	})
	return nil
}

// Close stops every job and waits for them. Runs that were active are
// settled as SYSTEM_ERROR when wesgate starts again.
func (e *Executor) Close() {
	e.mu.Lock()
	e.closed = true
	e.queue = nil
	var pgids []int
	for _, jb := range e.jobs {
		if jb.state == scheduler.StateRunning {
			pgids = append(pgids, jb.pgid)
		}
	}
	e.mu.Unlock()
	for _, pgid := range pgids {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	e.wg.Wait()
}

// killOrphans stops process groups whose environment names one of the jobs,
// left running by a wesgate process that died.
func killOrphans(names map[string]bool) error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil // not Linux: nothing to look at
	}
	self := os.Getpid()
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + ent.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			name, ok := strings.CutPrefix(string(kv), envJob+"=")
			if !ok || !names[name] {
				continue
			}
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 {
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}
	}
	return nil
}

// Queue pictures the local executor's jobs as one partition, "local".
func (e *Executor) Queue(context.Context) (scheduler.Queue, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	counts := map[string]int{}
	for _, jb := range e.jobs {
		if !terminal(jb.state) {
			counts[jb.state]++
		}
	}
	q := scheduler.Queue{At: time.Now(), Nodes: []scheduler.NodeState{{Name: e.host, State: "idle", Partitions: "local"}}}
	if e.running > 0 {
		q.Nodes[0].State = "allocated"
		if e.running < e.maxJobs {
			q.Nodes[0].State = "mixed"
		}
	}
	for _, st := range []string{scheduler.StatePending, scheduler.StateRunning} {
		if counts[st] > 0 {
			q.Counts = append(q.Counts, scheduler.QueueCount{Partition: "local", State: st, Count: counts[st]})
		}
	}
	return q, nil
}

// Health is empty: the local executor has no connections.
func (e *Executor) Health() []scheduler.Health { return nil }

// Partitions is empty: the local executor has no partitions.
func (e *Executor) Partitions(context.Context) ([]string, error) { return nil, nil }
