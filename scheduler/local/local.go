// Package local runs wesgate's batch scripts as child processes on the
// wesgate host: the executor for a laptop or a single workstation, and the
// embedded default. It reports job states in Slurm's words, like the Slurm
// executor, so the wes package treats both alike.
package local

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// envJob marks a job's processes with the job's name.
const envJob = "WESGATE_JOB_NAME"

// jobEnv is the whole environment a job starts with: a few variables that
// programs expect, and the marker. wesgate's own environment is not passed
// on, since it may hold secrets (WESGATE_OIDC_CLIENT_SECRET, tokens) that a
// workflow must not read; an engine that needs more sets it in its setup
// lines.
func jobEnv(getenv func(string) string, name string) []string {
	env := []string{"PATH=" + cmp.Or(getenv("PATH"), "/usr/local/bin:/usr/bin:/bin")}
	for _, k := range []string{"HOME", "LANG", "TMPDIR"} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return append(env, envJob+"="+name)
}

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
	// The run directory is wesgate's to make: the service stores a run
	// before it moves the run's directory into place, and a job started in
	// between would make a directory of its own there and make that move
	// fail. Not ready is an error the monitor retries.
	if _, err := os.Stat(filepath.Join(j.Dir, scheduler.WorkDir)); err != nil {
		return "", fmt.Errorf("local submit: run directory not ready: %w", err)
	}
	e.killOrphan(j.Name, j.Dir)
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
	cmd.Env = jobEnv(os.Getenv, jb.id)
	// Its own process group, so a cancel reaches the engine and its tools.
	// (No Pdeathsig: it fires when the forking OS thread ends, not the
	// process; jobs left by a dead wesgate are found by their pid record.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	jb.pgid = cmd.Process.Pid
	if err := writePidRecord(jb.dir, jb.pgid); err != nil {
		// Without the record a wesgate that dies cannot stop this job at
		// its next start; the job itself is fine.
		e.log.Warn("local: record job pid", "job", jb.id, "err", err)
	}
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
	for id := range unknown {
		e.killOrphan(id, e.RunDir("", id))
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

// pidFile holds "PID STARTTIME" of a job's process group leader (the batch
// script): the pid, and its start time in clock ticks after boot (field 22
// of /proc/PID/stat), which tells that process apart from a later one that
// was given the same pid.
const pidFile = scheduler.RecordDir + "/pid"

// writePidRecord records the job's process group leader in its run
// directory, for a later wesgate to find if this one dies.
func writePidRecord(dir string, pid int) error {
	start, err := procStartTime(pid)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, scheduler.RecordDir), 0o750); err != nil {
		return err
	}
	tmp := filepath.Join(dir, pidFile+".tmp")
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d %d\n", pid, start), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, pidFile))
}

// killOrphan stops the process group that a wesgate before this one (which
// died without stopping it) started for the job. It signals only a group
// whose leader still has the recorded pid and start time, leads its own
// group and carries the job's marker: never a process that merely reuses
// the pid, nor anything without a record, such as the jobs of another
// wesgate that was wrongly pointed at the same data directory.
func (e *Executor) killOrphan(name, dir string) {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if err != nil {
		return // never started, or started by a wesgate that kept no record
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &pid, &start); err != nil || pid <= 1 || pid == os.Getpid() {
		e.log.Warn("local: unusable pid record", "job", name)
		return
	}
	if now, err := procStartTime(pid); err != nil || now != start {
		return // gone, or the pid now belongs to another process
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid || pgid == syscall.Getpgrp() {
		return
	}
	if !hasMarker(pid, name) {
		return
	}
	e.mu.Lock()
	jb, ok := e.jobs[name]
	mine := ok && jb.pgid == pid
	e.mu.Unlock()
	if mine {
		return // started by this wesgate a moment ago
	}
	e.log.Info("local: stopping a job left by an earlier wesgate", "job", name, "pgid", pid)
	syscall.Kill(-pid, syscall.SIGKILL)
}

// procStartTime reads a process's start time (clock ticks after boot),
// field 22 of /proc/PID/stat.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Field 2, the command name, is in parentheses and may hold spaces or
	// parentheses itself: count fields after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	fields := strings.Fields(string(b[i+1:])) // from field 3 on
	if len(fields) < 20 {
		return 0, errors.New("proc stat: too few fields")
	}
	return strconv.ParseUint(fields[22-3], 10, 64)
}

// hasMarker reports whether the process was started as the named job.
func hasMarker(pid int, name string) bool {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	return slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return string(kv) == envJob+"="+name })
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
