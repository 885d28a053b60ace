package slurm

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wesgate/wesgate/scheduler"
)

// The Lab tests run against the real Slurm cluster and sshd of lab/README.md
// (`lab/up.sh`, then `. lab/env.sh`). They skip when WESGATE_LAB_SSH_ADDR is
// unset, and fail instead with WESGATE_REQUIRE_LAB=1. Other engineers use the
// lab at the same time: jobs may queue behind theirs (two cores), and
// slurmctld may be restarted under us, so waits are generous and transient
// Status errors are retried.

// lab is the lab's environment.
type lab struct {
	Addr, KnownHosts      string
	SvcUser, SvcKey       string
	User1, Key1           string
	Partition, Partition2 string
	Base, State           string
	SlurmConf             string
}

func requireLab(t testing.TB) *lab {
	t.Helper()
	l := &lab{
		Addr: os.Getenv("WESGATE_LAB_SSH_ADDR"), KnownHosts: os.Getenv("WESGATE_LAB_KNOWN_HOSTS"),
		SvcUser: os.Getenv("WESGATE_LAB_SVC_USER"), SvcKey: os.Getenv("WESGATE_LAB_SVC_KEY"),
		User1: os.Getenv("WESGATE_LAB_USER1"), Key1: os.Getenv("WESGATE_LAB_KEY1"),
		Partition: os.Getenv("WESGATE_LAB_PARTITION"), Partition2: os.Getenv("WESGATE_LAB_PARTITION2"),
		Base: os.Getenv("WESGATE_LAB_BASE"), State: os.Getenv("WESGATE_LAB_STATE"),
		SlurmConf: os.Getenv("WESGATE_LAB_SLURM_CONF"),
	}
	if l.Addr == "" {
		if os.Getenv("WESGATE_REQUIRE_LAB") == "1" {
			t.Fatal("the Slurm lab is required (WESGATE_REQUIRE_LAB=1) but WESGATE_LAB_SSH_ADDR is not set: run lab/up.sh and source lab/env.sh")
		}
		t.Skip("Slurm lab not up: run lab/up.sh and `. lab/env.sh` to run this test")
	}
	return l
}

func readSigner(t testing.TB, path string) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newKey makes a throwaway ed25519 key.
func newKey(t testing.TB) (ed25519.PrivateKey, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, s
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// testLog logs to the test's log (shown with -v or on failure).
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// labPool connects to the lab's sshd as the service account; mod adjusts the
// configuration first. The pool closes when the test ends.
func labPool(t testing.TB, l *lab, mod func(*SSHConfig), log *slog.Logger) *Pool {
	t.Helper()
	signer := readSigner(t, l.SvcKey)
	cfg := SSHConfig{Addr: l.Addr, KnownHosts: l.KnownHosts, DialTimeout: 10 * time.Second,
		Credentials: func(string) (Credentials, error) { return Credentials{User: l.SvcUser, Signer: signer}, nil }}
	if mod != nil {
		mod(&cfg)
	}
	pool, err := NewPool(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// labExecutor is an Executor in service-account mode, like web's harness.
func labExecutor(t testing.TB, l *lab, pool *Pool, log *slog.Logger) *Executor {
	t.Helper()
	ex, err := New(Config{Cluster: "lab", Base: l.Base + "/{user}", DefaultPartition: l.Partition,
		ServiceAccount: l.SvcUser}, pool, log)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

// labJob is a job with a fresh name and its local run directory.
type labJob struct {
	scheduler.Job
	Local string
}

// newLabJob makes the batch script of a job running cmd. When the test ends,
// every job of that name is cancelled and the run directory removed.
func newLabJob(t testing.TB, ex *Executor, cmd []string, directives ...string) labJob {
	t.Helper()
	name := "wes-slurmtest-" + randHex(t, 6)
	account := ex.Account("")
	dir := ex.RunDir(account, name)
	script, err := scheduler.Script(scheduler.ScriptSpec{Name: name, Dir: dir, Directives: directives, Command: cmd})
	if err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	if err := os.MkdirAll(filepath.Join(local, scheduler.WorkDir), 0o750); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Through lab outages too: nothing of ours should stay queued.
		err := retry(t, "cleanup: scancel", func(ctx context.Context) error {
			_, err := ex.run(ctx, account, "scancel", "scancel", "--name="+name)
			return err
		})
		if err != nil {
			t.Logf("cleanup: scancel --name=%s: %v", name, err)
		}
		// The wrapper's recorder outlives SIGTERM and would write into a
		// directory removed under it: wait for the job to be gone (KillWait).
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, err := ex.run(ctx, account, "squeue", "squeue", "--me", "--noheader", "--name="+name, "--format=%i")
			cancel()
			if err == nil && strings.TrimSpace(string(out)) == "" {
				break
			}
		}
		err = retry(t, "cleanup: remove", func(ctx context.Context) error {
			fsys, err := ex.pool.SFTP(ctx, account)
			if err != nil {
				return err
			}
			if err := fsys.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		})
		if err != nil {
			t.Logf("cleanup: remove %s: %v", dir, err)
		}
	})
	return labJob{Job: scheduler.Job{Name: name, User: account, Dir: dir, Script: script}, Local: local}
}

func writeFile(t testing.TB, name, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(data), 0o640); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// outageWait bounds how long a helper retries ErrUnreachable: other
// engineers restart the lab's sshd and slurmctld now and then.
const outageWait = 90 * time.Second

// retry calls f until it returns anything but ErrUnreachable, for at most
// outageWait.
func retry(t testing.TB, what string, f func(ctx context.Context) error) error {
	t.Helper()
	deadline := time.Now().Add(outageWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := f(ctx)
		cancel()
		if !errors.Is(err, ErrUnreachable) || time.Now().After(deadline) {
			return err
		}
		t.Logf("%s: %v; retrying", what, err)
		time.Sleep(time.Second)
	}
}

// submit submits j, retrying as the monitor would while the lab is away
// (a retry is the crash case Submit is built for).
func submit(t testing.TB, ex *Executor, j labJob) string {
	t.Helper()
	var id string
	err := retry(t, "Submit", func(ctx context.Context) (err error) {
		id, err = ex.Submit(ctx, j.Job, j.Local)
		return err
	})
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if !validJobID(id) {
		t.Fatalf("Submit returned %q, not a job id", id)
	}
	return id
}

// waitStatus polls Status until ok accepts the job's status. Errors are
// retried: the lab's slurmctld may be restarted by someone else.
func waitStatus(t testing.TB, ex *Executor, id string, within time.Duration, what string, ok func(scheduler.JobStatus) bool) scheduler.JobStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	var last scheduler.JobStatus
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		st, err := ex.Status(ctx, ex.Account(""), []string{id})
		cancel()
		if err != nil {
			lastErr = err
		} else if s, found := st[id]; found {
			last = s
			if ok(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s not %s within %s; last status %+v; last error %v", id, what, within, last, lastErr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func terminal(s scheduler.JobStatus) bool { return s.Terminal() }

// settled is a terminal status whose accounting has caught up: the end is
// known and, for a job that ran, so is its batch step's. For a while after
// slurmdbd restarts (other engineers' fault tests restart it), sacct shows
// terminal jobs without an end, with exit code 0 and no or running steps.
func settled(s scheduler.JobStatus) bool {
	if !s.Terminal() || s.End.IsZero() {
		return false
	}
	if s.Node == "" {
		return true // never ran
	}
	i := slices.IndexFunc(s.Steps, func(st scheduler.Step) bool { return st.ID == "batch" })
	return i >= 0 && !s.Steps[i].End.IsZero()
}
func running(s scheduler.JobStatus) bool { return s.State == scheduler.StateRunning }

// readRemote reads a file of the run directory through Open.
func readRemote(t testing.TB, ex *Executor, name string) (string, error) {
	t.Helper()
	var b []byte
	err := retry(t, "open "+name, func(ctx context.Context) error {
		f, err := ex.Open(ctx, ex.Account(""), name)
		if err != nil {
			return err
		}
		defer f.Close()
		b, err = io.ReadAll(f)
		return err
	})
	return string(b), err
}

// waitRemote polls a remote file until it contains want.
func waitRemote(t testing.TB, ex *Executor, name, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, err := readRemote(t, ex, name)
		if err == nil && strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q, %v after %s; want %q in it", name, got, err, within, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func batchStep(t testing.TB, st scheduler.JobStatus) scheduler.Step {
	t.Helper()
	i := slices.IndexFunc(st.Steps, func(s scheduler.Step) bool { return s.ID == "batch" })
	if i < 0 {
		t.Fatalf("job %s has no batch step: %+v", st.ID, st.Steps)
	}
	return st.Steps[i]
}

// sacctCode reports whether got is how sacct shows a batch script's exit
// status code. The lab's Slurm (22.05) keeps only its low 7 bits in
// accounting (137 -> 9, 143 -> 15, 200 -> 72; testdata/sacct_over128.txt),
// while scontrol and slurmctld's log have the whole byte: above 127 the
// wrapper's rc file is the only faithful record.
func sacctCode(got, code int) bool { return got == code || got == code&127 }

// remoteLines runs a Slurm command as the service account and returns its
// non-empty output lines.
func remoteLines(t testing.TB, ex *Executor, prog string, args ...string) []string {
	t.Helper()
	var out []byte
	err := retry(t, prog, func(ctx context.Context) (err error) {
		out, err = ex.run(ctx, ex.Account(""), prog, prog, args...)
		if err != nil { // read-only: sacct fails while slurmdbd restarts
			err = fmt.Errorf("%w: %w", ErrUnreachable, err)
		}
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", prog, err)
	}
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}

func TestLabSubmitStatusCollect(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	ex := labExecutor(t, l, labPool(t, l, nil, log), log)
	j := newLabJob(t, ex, []string{"/bin/sh", "-c", "echo hello; cat sub/deeper/b.txt; cp a.txt ../outputs/a-copy.txt"})
	writeFile(t, filepath.Join(j.Local, "work", "a.txt"), "alpha\n")
	writeFile(t, filepath.Join(j.Local, "work", "sub", "deeper", "b.txt"), "beta\n")
	if err := os.MkdirAll(filepath.Join(j.Local, "work", "empty"), 0o750); err != nil {
		t.Fatal(err)
	}
	id := submit(t, ex, j)

	// Staged as stage() promises: the tree, the modes, no leftover .tmp.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fsys, err := ex.pool.SFTP(ctx, l.SvcUser)
	if err != nil {
		t.Fatal(err)
	}
	// The run directory is the account's alone; the files in it need no
	// modes of their own.
	if fi, err := fsys.Stat(j.Dir); err != nil {
		t.Errorf("run directory: %v", err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("run directory has mode %v, want 0700", fi.Mode().Perm())
	}
	for _, name := range []string{scheduler.ScriptFile, "work/a.txt", "work/sub/deeper/b.txt"} {
		if fi, err := fsys.Stat(j.Dir + "/" + name); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("staged %s: %v", name, err)
		}
	}
	for _, d := range []string{"work/empty", scheduler.OutputsDir} {
		if fi, err := fsys.Stat(j.Dir + "/" + d); err != nil || !fi.IsDir() {
			t.Errorf("staged directory %s: %v", d, err)
		}
	}
	if _, err := fsys.Stat(j.Dir + "/" + scheduler.ScriptFile + ".tmp"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("job.sh.tmp left behind: %v", err)
	}

	st := waitStatus(t, ex, id, 2*time.Minute, "settled", settled)
	if st.State != scheduler.StateCompleted || st.ExitCode != 0 || !st.HasExit || st.ID != id {
		t.Errorf("status %+v, want COMPLETED with exit code 0", st)
	}
	if b := batchStep(t, st); b.State != scheduler.StateCompleted || b.ExitCode != 0 || !b.HasExit {
		t.Errorf("batch step %+v, want COMPLETED 0", b)
	}
	if st.Start.IsZero() || st.End.Before(st.Start) || st.Node == "" {
		t.Errorf("status %+v: want start <= end and a node", st)
	}

	// Into a fresh directory: everything comes home, the staged tree too
	// (not the batch script: wesgate wrote it).
	home := t.TempDir()
	if err := retry(t, "Collect", func(ctx context.Context) error {
		_, err := ex.Collect(ctx, l.SvcUser, j.Dir, home, scheduler.CollectLimits{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		scheduler.StdoutFile:    "hello\nbeta\n",
		scheduler.StderrFile:    "",
		scheduler.RCFile:        "0\n",
		"outputs/a-copy.txt":    "alpha\n",
		"work/a.txt":            "alpha\n",
		"work/sub/deeper/b.txt": "beta\n",
	} {
		if got := readFile(t, filepath.Join(home, filepath.FromSlash(name))); got != want {
			t.Errorf("collected %s = %q, want %q", name, got, want)
		}
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, filepath.Join(home, scheduler.RecordDir, "engine.pid")))); err != nil || pid <= 0 {
		t.Errorf("collected engine.pid: %d, %v", pid, err)
	}
	for _, rec := range []string{scheduler.StartedFile, scheduler.EndedFile} {
		tm, err := time.Parse(time.RFC3339, strings.TrimSpace(readFile(t, filepath.Join(home, filepath.FromSlash(rec)))))
		if err != nil || tm.Before(time.Now().Add(-time.Hour)) {
			t.Errorf("collected %s: %v, %v", rec, tm, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(home, "work", "empty")); err != nil || !fi.IsDir() {
		t.Errorf("empty directory not collected: %v", err)
	}
	if _, err := os.Stat(filepath.Join(home, scheduler.ScriptFile+".tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("collected job.sh.tmp: %v", err)
	}
	// Into the run's own directory, as wes does: the attachments are there
	// already; the logs and records arrive.
	if err := retry(t, "Collect", func(ctx context.Context) error {
		_, err := ex.Collect(ctx, l.SvcUser, j.Dir, j.Local, scheduler.CollectLimits{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(j.Local, scheduler.StdoutFile)); got != "hello\nbeta\n" {
		t.Errorf("stdout collected into the run directory: %q", got)
	}
	if got := readFile(t, filepath.Join(j.Local, filepath.FromSlash(scheduler.RCFile))); got != "0\n" {
		t.Errorf("rc collected into the run directory: %q", got)
	}
	// Nothing of a half-done download stays behind.
	for _, dir := range []string{home, j.Local} {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if strings.HasSuffix(p, ".part") || strings.HasSuffix(p, ".tmp") {
				t.Errorf("collect left %s", p)
			}
			return nil
		})
	}
}

func TestLabFailingJob(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	ex := labExecutor(t, l, labPool(t, l, nil, log), log)
	tests := []struct {
		name   string
		cmd    string
		code   int
		stderr string
	}{
		{"exit3", "echo oops >&2; exit 3", 3, "oops\n"},
		// The wrapper records an engine killed by a signal as 128+signal and
		// exits with it (sacct then shows 9:0, see sacctCode); bash reports
		// the kill on stderr.
		{"sigkill", "kill -9 $$", 137, "Killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := newLabJob(t, ex, []string{"/bin/sh", "-c", tt.cmd})
			id := submit(t, ex, j)
			st := waitStatus(t, ex, id, 2*time.Minute, "settled", settled)
			if st.State != scheduler.StateFailed || !sacctCode(st.ExitCode, tt.code) || !st.HasExit {
				t.Errorf("status %+v, want FAILED %d", st, tt.code)
			}
			if b := batchStep(t, st); b.State != scheduler.StateFailed || !sacctCode(b.ExitCode, tt.code) {
				t.Errorf("batch step %+v, want FAILED %d", b, tt.code)
			}
			if rc, err := readRemote(t, ex, j.Dir+"/"+scheduler.RCFile); err != nil || rc != strconv.Itoa(tt.code)+"\n" {
				t.Errorf("rc file %q, %v; want %d", rc, err, tt.code)
			}
			if got, err := readRemote(t, ex, j.Dir+"/"+scheduler.StderrFile); err != nil || !strings.Contains(got, tt.stderr) {
				t.Errorf("stderr %q, %v; want %q in it", got, err, tt.stderr)
			}
		})
	}
}

func TestLabOpenWhileRunning(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	ex := labExecutor(t, l, labPool(t, l, nil, log), log)
	j := newLabJob(t, ex, []string{"/bin/sh", "-c", "echo started; sleep 60"})
	id := submit(t, ex, j)
	waitStatus(t, ex, id, 2*time.Minute, "running", running)
	waitRemote(t, ex, j.Dir+"/"+scheduler.StdoutFile, "started\n", outageWait)
	// The read happened while the job ran.
	st := waitStatus(t, ex, id, 0, "still running", func(scheduler.JobStatus) bool { return true })
	if st.State != scheduler.StateRunning {
		t.Errorf("job %s is %s after the read; the test wanted to read a running job's output", id, st.State)
	}
	if _, err := readRemote(t, ex, j.Dir+"/no-such-file"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestLabHeldJob(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	pool := labPool(t, l, nil, log)
	ex := labExecutor(t, l, pool, log)
	// --begin keeps the job from starting before the hold reaches it.
	j := newLabJob(t, ex, []string{"/bin/sh", "-c", "echo released"}, "--begin=now+1hour")
	id := submit(t, ex, j)
	st := waitStatus(t, ex, id, outageWait, "pending", func(s scheduler.JobStatus) bool { return s.State == scheduler.StatePending })
	if st.Reason != "BeginTime" || !st.Start.IsZero() {
		t.Errorf("status %+v, want reason BeginTime and no start (squeue's %%S is a forecast here)", st)
	}

	scontrol := func(args string) {
		t.Helper()
		err := retry(t, "scontrol", func(ctx context.Context) error {
			if _, err := pool.Run(ctx, l.SvcUser, "scontrol "+args, nil); err != nil {
				return fmt.Errorf("%w: %w", ErrUnreachable, err) // idempotent; slurmctld may be restarting
			}
			return nil
		})
		if err != nil {
			t.Fatalf("scontrol %s: %v", args, err)
		}
	}
	scontrol("hold " + id)
	st = waitStatus(t, ex, id, outageWait, "held", func(s scheduler.JobStatus) bool { return s.Reason == "JobHeldUser" })
	if st.State != scheduler.StatePending || !st.Start.IsZero() || st.Partition != l.Partition || st.Node != "" {
		t.Errorf("held status %+v, want PENDING in %s, no start, no node", st, l.Partition)
	}

	scontrol("update JobId=" + id + " StartTime=now")
	scontrol("release " + id)
	st = waitStatus(t, ex, id, 2*time.Minute, "settled", settled)
	if st.State != scheduler.StateCompleted || st.ExitCode != 0 || st.Start.IsZero() {
		t.Errorf("released job: %+v, want COMPLETED 0 with a start", st)
	}
	if out, err := readRemote(t, ex, j.Dir+"/"+scheduler.StdoutFile); err != nil || out != "released\n" {
		t.Errorf("stdout %q, %v", out, err)
	}
}

func TestLabCancelPending(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	ex := labExecutor(t, l, labPool(t, l, nil, log), log)
	j := newLabJob(t, ex, []string{"/bin/sh", "-c", "echo never"}, "--begin=now+1hour")
	id := submit(t, ex, j)
	waitStatus(t, ex, id, outageWait, "pending", func(s scheduler.JobStatus) bool { return s.State == scheduler.StatePending })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := retry(t, "Cancel", func(ctx context.Context) error { return ex.Cancel(ctx, l.SvcUser, id) }); err != nil {
		t.Fatalf("Cancel of a pending job: %v", err)
	}
	st := waitStatus(t, ex, id, time.Minute, "settled", settled)
	uid := remoteLines(t, ex, "id", "-u")
	if st.State != scheduler.StateCancelled || len(uid) != 1 || st.CancelledBy != uid[0] {
		t.Errorf("status %+v, want CANCELLED by %v", st, uid)
	}
	if !st.Start.IsZero() || st.Node != "" || len(st.Steps) != 0 {
		t.Errorf("status %+v: a job cancelled while pending has no start, node or steps", st)
	}
	if _, err := readRemote(t, ex, j.Dir+"/"+scheduler.RCFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rc file of a job that never ran: %v, want none", err)
	}
	// Cancelling again, or a job that is gone, is not an error either.
	if err := retry(t, "Cancel", func(ctx context.Context) error { return ex.Cancel(ctx, l.SvcUser, id) }); err != nil {
		t.Errorf("second Cancel: %v", err)
	}
	if err := ex.Cancel(ctx, l.SvcUser, "1;id"); err == nil {
		t.Error("Cancel accepted a malformed job id")
	}
}

func TestLabCancelRunning(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	ex := labExecutor(t, l, labPool(t, l, nil, log), log)
	j := newLabJob(t, ex, []string{"/bin/sh", "-c", "echo running; sleep 300"})
	id := submit(t, ex, j)
	waitStatus(t, ex, id, 2*time.Minute, "running", running)
	// The engine is up (and the wrapper's traps are set) once it printed.
	waitRemote(t, ex, j.Dir+"/"+scheduler.StdoutFile, "running\n", outageWait)

	start := time.Now()
	if err := retry(t, "Cancel", func(ctx context.Context) error { return ex.Cancel(ctx, l.SvcUser, id) }); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	st := waitStatus(t, ex, id, 15*time.Second, "terminal", terminal)
	t.Logf("cancelled job ended after %s: %+v", time.Since(start).Round(10*time.Millisecond), st)
	st = waitStatus(t, ex, id, time.Minute, "settled", settled)
	// SIGTERM went to the batch script alone; it forwarded it to the engine,
	// recorded 128+15 and exited with it: for Slurm the job failed (FAILED
	// 15:0, see sacctCode), it was not cancelled; scancel's escalation after
	// CancelGrace was not needed.
	if st.State != scheduler.StateFailed || !sacctCode(st.ExitCode, 143) || st.CancelledBy != "" {
		t.Errorf("status %+v, want FAILED 143", st)
	}
	if rc, err := readRemote(t, ex, j.Dir+"/"+scheduler.RCFile); err != nil || rc != "143\n" {
		t.Errorf("rc file %q, %v; want 143", rc, err)
	}
	if _, err := readRemote(t, ex, j.Dir+"/"+scheduler.EndedFile); err != nil {
		t.Errorf("the wrapper did not record the end: %v", err)
	}
}

// A crash between sbatch and recording the job id must not submit twice: a
// restarted wesgate (new connections, new executor) finds the job by name.
func TestLabSubmitTwice(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	restarted := func() *Executor { return labExecutor(t, l, labPool(t, l, nil, log), log) }
	ex := restarted()

	// While the job runs.
	j := newLabJob(t, ex, []string{"/bin/sh", "-c", "sleep 3"})
	id := submit(t, ex, j)
	j.Retry = true // as the pipeline marks a run whose submission was attempted
	if again := submit(t, restarted(), j); again != id {
		t.Errorf("second Submit: job %s, want %s", again, id)
	}
	waitStatus(t, ex, id, 2*time.Minute, "terminal", terminal)
	if again := submit(t, restarted(), j); again != id {
		t.Errorf("Submit after the end: job %s, want %s", again, id)
	}
	onlyJobNamed(t, ex, j.Name, id)

	// Right after a job that ended within a second: sacct shows a
	// placeholder without the name for a few seconds, and plain squeue has
	// already dropped the job.
	quick := newLabJob(t, ex, []string{"true"})
	qid := submit(t, ex, quick)
	quick.Retry = true
	waitStatus(t, ex, qid, 2*time.Minute, "terminal", terminal)
	if again := submit(t, restarted(), quick); again != qid {
		t.Errorf("Submit right after a quick job ended: job %s, want %s", again, qid)
	}
	onlyJobNamed(t, ex, quick.Name, qid)
}

// onlyJobNamed checks that squeue (which keeps ended jobs for MinJobAge and
// lists a new one at once) knows one job called name, and that sacct's real
// record, once it arrives, says the same.
func onlyJobNamed(t *testing.T, ex *Executor, name, id string) {
	t.Helper()
	if got := remoteLines(t, ex, "squeue", "--me", "--noheader", "--states=all", "--name="+name, "--format=%i"); !slices.Equal(got, []string{id}) {
		t.Errorf("squeue lists %q by the name %s, want only %s", got, name, id)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := remoteLines(t, ex, "sacct", "--noheader", "--parsable2", "-X", "--name="+name, "--starttime=now-1hour", "--format=JobID")
		if len(got) > 0 {
			if !slices.Equal(got, []string{id}) {
				t.Errorf("sacct lists %q by the name %s, want only %s", got, name, id)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sacct does not list %s by name after 30s", id)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// A script staged by an attempt that never reached sbatch is submitted once.
func TestLabSubmitAfterStagingOnly(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	ex := labExecutor(t, l, labPool(t, l, nil, log), log)
	j := newLabJob(t, ex, []string{"/bin/sh", "-c", "echo once"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	j.LocalDir = j.Local
	if err := ex.stage(ctx, l.SvcUser, []scheduler.Job{j.Job}, []int{0}); err != nil {
		t.Fatal(err)
	}
	j.Retry = true
	id := submit(t, ex, j)
	waitStatus(t, ex, id, 2*time.Minute, "terminal", terminal)
	if got := remoteLines(t, ex, "squeue", "--me", "--noheader", "--states=all", "--name="+j.Name, "--format=%i"); !slices.Equal(got, []string{id}) {
		t.Errorf("squeue lists %q by the name, want only %s", got, id)
	}
}

// commandCounter counts the executor's "slurm: command" records: run logs
// exactly one per remote Slurm command, whatever its outcome.
type commandCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (h commandCounter) Enabled(context.Context, slog.Level) bool { return true }

func (h commandCounter) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "slurm: command") {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h commandCounter) WithAttrs(a []slog.Attr) slog.Handler {
	return commandCounter{h.Handler.WithAttrs(a), h.n}
}

func (h commandCounter) WithGroup(g string) slog.Handler {
	return commandCounter{h.Handler.WithGroup(g), h.n}
}

// Status answers for many jobs with one squeue and one sacct.
func TestLabStatusBatch(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	var n atomic.Int64
	ex := labExecutor(t, l, labPool(t, l, nil, log), slog.New(commandCounter{log.Handler(), &n}))
	done := newLabJob(t, ex, []string{"true"})
	doneID := submit(t, ex, done)
	pending := newLabJob(t, ex, []string{"true"}, "--begin=now+1hour")
	pendingID := submit(t, ex, pending)
	waitStatus(t, ex, doneID, 2*time.Minute, "settled", settled)

	ids := []string{doneID, pendingID}
	for i := range 48 {
		ids = append(ids, strconv.Itoa(3_999_000_000+i)) // no such jobs
	}
	ids = append(ids, "1;id", "", "12 13") // never reach a command line
	var st map[string]scheduler.JobStatus
	err := retry(t, "Status", func(ctx context.Context) (err error) {
		n.Store(0)
		if st, err = ex.Status(ctx, l.SvcUser, ids); err != nil {
			err = fmt.Errorf("%w: %w", ErrUnreachable, err) // slurmdbd may be restarting
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("Status of %d ids ran %d remote commands, want 2 (squeue, sacct)", len(ids), got)
	}
	if len(st) != 2 || st[doneID].State != scheduler.StateCompleted || st[pendingID].State != scheduler.StatePending {
		t.Errorf("Status = %+v, want %s COMPLETED and %s PENDING only", st, doneID, pendingID)
	}

	// Jobs that are all still queued need no sacct.
	err = retry(t, "Status", func(ctx context.Context) (err error) {
		n.Store(0)
		_, err = ex.Status(ctx, l.SvcUser, []string{pendingID})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("Status of a queued job ran %d remote commands, want 1", got)
	}
}

// sbatch's refusal comes back as a RejectedError with Slurm's words.
func TestLabSubmitRejected(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	log := testLog(t)
	ex := labExecutor(t, l, labPool(t, l, nil, log), log)
	j := newLabJob(t, ex, []string{"true"}, "--partition=nosuch")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := ex.Submit(ctx, j.Job, j.Local)
	var rej *scheduler.RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("Submit = %q, %v; want a *scheduler.RejectedError", id, err)
	}
	if rej.Msg != "invalid partition specified: nosuch" {
		t.Errorf("RejectedError.Msg = %q, want Slurm's message without its prefix", rej.Msg)
	}
	if errors.Is(err, ErrUnreachable) {
		t.Errorf("a refusal is not an outage: %v", err)
	}
}

// When slurmctld does not answer, sbatch fails too; that is an outage to
// retry, not a refusal that would fail the run for good. The throwaway sshd
// gives its sessions a slurm.conf whose controller port is closed.
func TestLabSubmitControllerDown(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	conf, err := os.ReadFile(l.SlurmConf)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(closedAddr(t))
	var lines []string
	for _, line := range strings.Split(string(conf), "\n") {
		if strings.HasPrefix(line, "SlurmctldPort=") {
			line = "SlurmctldPort=" + port
		}
		lines = append(lines, line)
	}
	dir, err := os.MkdirTemp("", "wesgate-slurmconf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the service account reads it
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "slurm.conf"), strings.Join(lines, "\n"))
	if err := os.Chmod(filepath.Join(dir, "slurm.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startSSHD(t, l, "SetEnv SLURM_CONF="+filepath.Join(dir, "slurm.conf"))

	log := testLog(t)
	ex := labExecutor(t, l, labPool(t, l, func(c *SSHConfig) { c.Addr, c.KnownHosts = d.Addr, d.KnownHosts }, log), log)
	// Cleaned up through the lab's own sshd, where Slurm answers.
	j := newLabJob(t, labExecutor(t, l, labPool(t, l, nil, log), log), []string{"true"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, err := ex.Submit(ctx, j.Job, j.Local)
	var rej *scheduler.RejectedError
	if errors.As(err, &rej) || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Submit with slurmctld away = %q, %v; want an ErrUnreachable, not a rejection", id, err)
	}
}
