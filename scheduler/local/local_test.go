package local_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/scheduler/local"
)

// fixture is an executor over a temporary runs directory.
type fixture struct {
	e       *local.Executor
	runs    string
	changes atomic.Int64
}

func newFixture(t *testing.T, maxJobs int, grace time.Duration) *fixture {
	t.Helper()
	f := &fixture{runs: t.TempDir()}
	f.e = local.New(local.Config{RunsDir: f.runs, MaxJobs: maxJobs, Grace: grace,
		OnChange: func() { f.changes.Add(1) }}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(f.e.Close)
	return f
}

// submit runs engine (a sh -c script, in work/) as job name. The name
// carries the test process id: the executor stops stray processes by job
// name, and other test binaries run at the same time.
func (f *fixture) submit(t *testing.T, name, engine string) (id, dir string) {
	t.Helper()
	name = fmt.Sprintf("lt%d-%s", os.Getpid(), name)
	dir = f.e.RunDir("", name)
	if err := os.MkdirAll(filepath.Join(dir, scheduler.WorkDir), 0o750); err != nil {
		t.Fatal(err)
	}
	script, err := scheduler.Script(scheduler.ScriptSpec{Name: name, Dir: dir, Command: []string{"sh", "-c", engine}})
	if err != nil {
		t.Fatal(err)
	}
	id, err = f.e.Submit(context.Background(), scheduler.Job{Name: name, Dir: dir, Script: script}, "")
	if err != nil {
		t.Fatal(err)
	}
	return id, dir
}

func (f *fixture) status(t *testing.T, id string) scheduler.JobStatus {
	t.Helper()
	m, err := f.e.Status(context.Background(), "", []string{id})
	if err != nil {
		t.Fatal(err)
	}
	st, ok := m[id]
	if !ok {
		t.Fatalf("job %s is unknown to the executor", id)
	}
	return st
}

// waitEnd waits until the job has ended.
func (f *fixture) waitEnd(t *testing.T, id string) scheduler.JobStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := f.status(t, id)
		if st.Terminal() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s", id, st.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFile waits for a non-empty file and returns its trimmed content.
func waitFile(t *testing.T, name string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(name); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// engineGroup waits for an engine that wrote its pid to ../pid and returns
// its process group.
func engineGroup(t *testing.T, dir string) int {
	t.Helper()
	pid, err := strconv.Atoi(waitFile(t, filepath.Join(dir, "pid")))
	if err != nil {
		t.Fatal(err)
	}
	pgid, err := syscall.Getpgid(pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid == syscall.Getpgrp() {
		t.Fatal("the job runs in the test's own process group")
	}
	return pgid
}

// waitGroupGone waits until no process is left in the group.
func waitGroupGone(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(-pgid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d is still alive", pgid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// blocker is an engine that runs until the file go appears in the run directory.
const blocker = `echo $$ > ../pid; while [ ! -e ../go ]; do sleep 0.02; done`

func release(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestExitCodes(t *testing.T) {
	f := newFixture(t, 2, time.Second)
	okID, okDir := f.submit(t, "ok", `echo out; echo err >&2; exit 0`)
	failID, failDir := f.submit(t, "fail", `exit 3`)

	ok := f.waitEnd(t, okID)
	if ok.State != scheduler.StateCompleted || !ok.HasExit || ok.ExitCode != 0 {
		t.Errorf("exit 0: %s exit %d (has %v), want COMPLETED 0", ok.State, ok.ExitCode, ok.HasExit)
	}
	if ok.Start.IsZero() || ok.End.Before(ok.Start) {
		t.Errorf("exit 0: start %v, end %v", ok.Start, ok.End)
	}
	if len(ok.Steps) != 1 || ok.Steps[0].Name != "batch" || ok.Steps[0].State != scheduler.StateCompleted {
		t.Errorf("exit 0: steps %+v, want one COMPLETED batch step", ok.Steps)
	}
	fail := f.waitEnd(t, failID)
	if fail.State != scheduler.StateFailed || !fail.HasExit || fail.ExitCode != 3 {
		t.Errorf("exit 3: %s exit %d (has %v), want FAILED 3", fail.State, fail.ExitCode, fail.HasExit)
	}

	for dir, want := range map[string]string{okDir: "0", failDir: "3"} {
		if rc := waitFile(t, filepath.Join(dir, scheduler.RCFile)); rc != want {
			t.Errorf("%s: rc %q, want %q", dir, rc, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(okDir, scheduler.StdoutFile)); string(b) != "out\n" {
		t.Errorf("stdout.txt = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(okDir, scheduler.StderrFile)); string(b) != "err\n" {
		t.Errorf("stderr.txt = %q", b)
	}
	// The monitor is woken when jobs start and end.
	if n := f.changes.Load(); n < 2 {
		t.Errorf("OnChange called %d times, want at least 2", n)
	}
}

func TestUnknownJobIsAbsent(t *testing.T) {
	f := newFixture(t, 1, time.Second)
	m, err := f.e.Status(context.Background(), "", []string{fmt.Sprintf("lt%d-never-submitted", os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 0 {
		t.Errorf("Status of an unknown job = %+v, want it absent", m)
	}
	if err := f.e.Cancel(context.Background(), "", "no-such-job"); err != nil {
		t.Errorf("Cancel of an unknown job: %v", err)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	f := newFixture(t, 1, time.Second)
	firstID, firstDir := f.submit(t, "first", blocker)
	secondID, secondDir := f.submit(t, "second", `exit 0`)

	engineGroup(t, firstDir) // the first job's engine is running
	if st := f.status(t, firstID); st.State != scheduler.StateRunning {
		t.Fatalf("first job %s, want RUNNING", st.State)
	}
	time.Sleep(200 * time.Millisecond) // a second job that could start would have
	st := f.status(t, secondID)
	if st.State != scheduler.StatePending || !st.Start.IsZero() {
		t.Fatalf("second job %s (start %v) while the first runs, want PENDING", st.State, st.Start)
	}
	if exists(filepath.Join(secondDir, scheduler.StartedFile)) || exists(filepath.Join(secondDir, scheduler.StdoutFile)) {
		t.Fatal("the second job has started")
	}

	release(t, firstDir)
	first := f.waitEnd(t, firstID)
	second := f.waitEnd(t, secondID)
	if first.State != scheduler.StateCompleted || second.State != scheduler.StateCompleted {
		t.Fatalf("states %s, %s; want both COMPLETED", first.State, second.State)
	}
	if second.Start.Before(first.End) {
		t.Errorf("second job started at %v, before the first ended at %v", second.Start, first.End)
	}
}

func TestCancelPending(t *testing.T) {
	f := newFixture(t, 1, time.Second)
	firstID, firstDir := f.submit(t, "first", blocker)
	secondID, secondDir := f.submit(t, "second", `echo ran > ../ran`)
	engineGroup(t, firstDir)

	if err := f.e.Cancel(context.Background(), "", secondID); err != nil {
		t.Fatal(err)
	}
	st := f.status(t, secondID)
	if st.State != scheduler.StateCancelled || st.HasExit {
		t.Errorf("cancelled pending job: %s (has exit %v), want CANCELLED without an exit code", st.State, st.HasExit)
	}
	if err := f.e.Cancel(context.Background(), "", secondID); err != nil {
		t.Errorf("second cancel: %v", err)
	}

	release(t, firstDir)
	if st := f.waitEnd(t, firstID); st.State != scheduler.StateCompleted {
		t.Errorf("first job %s, want COMPLETED", st.State)
	}
	time.Sleep(200 * time.Millisecond) // a wrongly queued job would start now
	if st := f.status(t, secondID); st.State != scheduler.StateCancelled {
		t.Errorf("cancelled job later %s", st.State)
	}
	for _, name := range []string{"ran", scheduler.StartedFile, scheduler.StdoutFile} {
		if exists(filepath.Join(secondDir, name)) {
			t.Errorf("the cancelled job ran: %s exists", name)
		}
	}
}

func TestCancelRunning(t *testing.T) {
	tests := []struct {
		name   string
		engine string
		exit   int  // the job's exit code
		rc     bool // whether the wrapper records the engine's exit code
	}{
		// The engine ends on SIGTERM; the wrapper records it.
		{"polite", `echo $$ > ../pid; sleep 300 & wait`, 143, true},
		// The engine ignores SIGTERM: SIGKILL after the grace period.
		{"stubborn", `trap '' TERM; echo $$ > ../pid; sleep 300; sleep 300`, 128 + 9, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 1, 500*time.Millisecond)
			id, dir := f.submit(t, tt.name, tt.engine)
			pgid := engineGroup(t, dir)
			if err := f.e.Cancel(context.Background(), "", id); err != nil {
				t.Fatal(err)
			}
			st := f.waitEnd(t, id)
			if st.State != scheduler.StateCancelled || st.ExitCode != tt.exit {
				t.Errorf("%s exit %d, want CANCELLED %d", st.State, st.ExitCode, tt.exit)
			}
			waitGroupGone(t, pgid)
			if got := exists(filepath.Join(dir, scheduler.RCFile)); got != tt.rc {
				t.Errorf("rc file exists: %v, want %v", got, tt.rc)
			}
			if tt.rc {
				if rc := waitFile(t, filepath.Join(dir, scheduler.RCFile)); rc != "143" {
					t.Errorf("rc %q, want 143", rc)
				}
			}
		})
	}
}

func TestResubmitKeepsRunningJob(t *testing.T) {
	// The monitor submits again when it could not record the job id: the
	// job that runs must go on, with its records.
	f := newFixture(t, 1, time.Second)
	id, dir := f.submit(t, "again", blocker)
	pgid := engineGroup(t, dir)
	pid := waitFile(t, filepath.Join(dir, "pid"))
	again, _ := f.submit(t, "again", blocker)
	if again != id {
		t.Errorf("second submission gave job %q, want %q", again, id)
	}
	if err := syscall.Kill(-pgid, 0); err != nil {
		t.Fatalf("the running job was stopped by the second submission: %v", err)
	}
	if !exists(filepath.Join(dir, scheduler.StartedFile)) {
		t.Error("the running job's records were removed")
	}
	release(t, dir)
	st := f.waitEnd(t, id)
	if st.State != scheduler.StateCompleted || st.ExitCode != 0 {
		t.Errorf("%s exit %d, want COMPLETED 0", st.State, st.ExitCode)
	}
	if now := waitFile(t, filepath.Join(dir, "pid")); now != pid {
		t.Errorf("the job was started again (engine pid %s, then %s)", pid, now)
	}
	if rc := waitFile(t, filepath.Join(dir, scheduler.RCFile)); rc != "0" {
		t.Errorf("rc %q, want 0", rc)
	}
}

func TestResubmitEndedJobRunsAgain(t *testing.T) {
	f := newFixture(t, 1, time.Second)
	id, dir := f.submit(t, "retry", `exit 4`)
	if st := f.waitEnd(t, id); st.ExitCode != 4 {
		t.Fatalf("exit %d, want 4", st.ExitCode)
	}
	// A new attempt (a requeue): it runs, and the old rc is not taken for its own.
	id, _ = f.submit(t, "retry", `[ ! -e ../.wesgate/rc ] || exit 9; exit 0`)
	if st := f.waitEnd(t, id); st.State != scheduler.StateCompleted {
		t.Errorf("second attempt %s exit %d, want COMPLETED 0", st.State, st.ExitCode)
	}
	if rc := waitFile(t, filepath.Join(dir, scheduler.RCFile)); rc != "0" {
		t.Errorf("rc %q, want 0", rc)
	}
}

func TestCloseStopsJobs(t *testing.T) {
	f := newFixture(t, 1, 10*time.Second)
	id, dir := f.submit(t, "running", `echo $$ > ../pid; trap '' TERM; sleep 300; sleep 300`)
	_, pendingDir := f.submit(t, "pending", `echo ran > ../ran`)
	pgid := engineGroup(t, dir)

	done := make(chan struct{})
	go func() {
		f.e.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
	waitGroupGone(t, pgid)
	if exists(filepath.Join(pendingDir, "ran")) || exists(filepath.Join(pendingDir, scheduler.StartedFile)) {
		t.Error("a waiting job started during Close")
	}
	if st := f.status(t, id); !st.Terminal() {
		t.Errorf("running job is %s after Close", st.State)
	}
	late := fmt.Sprintf("lt%d-late", os.Getpid())
	job := scheduler.Job{Name: late, Dir: filepath.Join(f.runs, late), Script: []byte("exit 0\n")}
	if _, err := f.e.Submit(context.Background(), job, ""); err == nil {
		t.Error("Submit after Close succeeded")
	}
}

// TestJobEnvironmentIsMinimal: a job does not inherit wesgate's environment,
// where secrets such as the OIDC client secret live; it gets PATH and the
// job marker.
func TestJobEnvironmentIsMinimal(t *testing.T) {
	t.Setenv("WESGATE_OIDC_CLIENT_SECRET", "s3cret-value")
	t.Setenv("WESGATE_TEST_OTHER", "other-value")
	f := newFixture(t, 1, time.Second)
	id, dir := f.submit(t, "env", `env > ../env.txt`)
	if st := f.waitEnd(t, id); st.State != scheduler.StateCompleted {
		t.Fatalf("%s exit %d", st.State, st.ExitCode)
	}
	b, err := os.ReadFile(filepath.Join(dir, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	for _, leak := range []string{"s3cret-value", "WESGATE_OIDC_CLIENT_SECRET", "WESGATE_TEST_OTHER"} {
		if strings.Contains(env, leak) {
			t.Errorf("the job's environment holds %s:\n%s", leak, env)
		}
	}
	for _, want := range []string{"\nPATH=" + os.Getenv("PATH") + "\n", "\nWESGATE_JOB_NAME=" + id + "\n"} {
		if !strings.Contains("\n"+env, want) {
			t.Errorf("the job's environment lacks %q:\n%s", strings.TrimSpace(want), env)
		}
	}
}

// leaderRecord is the pid record of the process group leader pgid: its pid
// and its start time, field 22 of /proc/PID/stat.
func leaderRecord(t *testing.T, pgid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pgid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return fmt.Sprintf("%d %s\n", pgid, fields[22-3])
}

// TestOrphans: a second executor on the same runs directory (a wesgate
// started after one that died) stops a job only when the job's pid record
// still names its process group leader: same pid, same start time, the
// job's marker. A record whose start time does not match (the pid was given
// to another process) or that points at another job's leader stops nothing.
func TestOrphans(t *testing.T) {
	tests := []struct {
		name      string
		record    func(own, other string) string // the job's pid record, from both leaders' records
		ownKilled bool
	}{
		{"record matches", func(own, _ string) string { return own }, true},
		{"start time differs", func(own, _ string) string {
			var pid, start int
			fmt.Sscanf(own, "%d %d", &pid, &start)
			return fmt.Sprintf("%d %d\n", pid, start+1)
		}, false},
		{"another job's leader", func(_, other string) string { return other }, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 2, time.Second)
			ownID, ownDir := f.submit(t, fmt.Sprintf("orphan%d", i), blocker)
			otherID, otherDir := f.submit(t, fmt.Sprintf("bystander%d", i), blocker)
			own := leaderRecord(t, engineGroup(t, ownDir))
			other := leaderRecord(t, engineGroup(t, otherDir))
			record := filepath.Join(ownDir, scheduler.RecordDir, "pid")
			if b, _ := os.ReadFile(record); string(b) != own {
				t.Errorf("the executor recorded %q, want %q", b, own)
			}
			os.MkdirAll(filepath.Dir(record), 0o750)
			if err := os.WriteFile(record, []byte(tt.record(own, other)), 0o640); err != nil {
				t.Fatal(err)
			}

			later := local.New(local.Config{RunsDir: f.runs, MaxJobs: 1}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			defer later.Close()
			if m, err := later.Status(context.Background(), "", []string{ownID}); err != nil || len(m) != 0 {
				t.Fatalf("Status from a later executor = %v, %v; want the job absent", m, err)
			}

			if tt.ownKilled {
				if st := f.waitEnd(t, ownID); st.State == scheduler.StateCompleted {
					t.Errorf("the orphan was not stopped: %s", st.State)
				}
			} else {
				time.Sleep(300 * time.Millisecond) // a killed job would have ended by now
				if st := f.status(t, ownID); st.State != scheduler.StateRunning {
					t.Errorf("the job whose record does not match is %s, want RUNNING", st.State)
				}
			}
			if st := f.status(t, otherID); st.State != scheduler.StateRunning {
				t.Errorf("the bystander job is %s, want RUNNING", st.State)
			}
			release(t, ownDir)
			release(t, otherDir)
		})
	}
}

// TestSubmitWaitsForRunDirectory: a job whose run directory is not in place
// yet (the service stores a run, then moves its directory in) is refused
// for now, and no directory is made there, so the move succeeds.
func TestSubmitWaitsForRunDirectory(t *testing.T) {
	f := newFixture(t, 1, time.Second)
	name := fmt.Sprintf("lt%d-early", os.Getpid())
	dir := f.e.RunDir("", name)
	script, err := scheduler.Script(scheduler.ScriptSpec{Name: name, Dir: dir, Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.e.Submit(context.Background(), scheduler.Job{Name: name, Dir: dir, Script: script}, ""); err == nil {
		t.Error("Submit of a job without its run directory succeeded")
	}
	if exists(dir) {
		t.Fatal("Submit made the run directory")
	}
}
