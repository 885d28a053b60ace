package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/wes"
	"github.com/wesgate/wesgate/wes/sqlite"
)

// fakeCluster is a batch system at the scheduler seam: jobs end when the
// test says so, and each operation can be made to hang for an account.
// It counts the operations, per account, as remote commands.
type fakeCluster struct {
	mu      sync.Mutex // guards the fields below
	next    int
	jobs    map[string]*fakeJob // job id -> job
	calls   map[string]int      // op+"/"+account -> count
	hang    map[string]bool     // op+"/"+account -> block until ctx ends
	cancel  [][2][]string       // term, kill of each CancelBatch
	dataDir string
}

type fakeJob struct {
	account, name, dir string
	state              string
}

func newFakeCluster(dataDir string) *fakeCluster {
	return &fakeCluster{jobs: map[string]*fakeJob{}, calls: map[string]int{}, hang: map[string]bool{}, dataDir: dataDir}
}

func (f *fakeCluster) op(ctx context.Context, op, account string) error {
	f.mu.Lock()
	f.calls[op+"/"+account]++
	h := f.hang[op+"/"+account]
	f.mu.Unlock()
	if h {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *fakeCluster) count(op, account string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op+"/"+account]
}

func (f *fakeCluster) setHang(op, account string, on bool) {
	f.mu.Lock()
	f.hang[op+"/"+account] = on
	f.mu.Unlock()
}

// end ends every job of account as state; the wrapper's rc is written
// into the run's local directory (the fake's Collect copies nothing).
func (f *fakeCluster) end(account, state string, rc int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.account == account && !terminal(j.state) {
			j.finish(state, rc)
		}
	}
}

// endRun ends the job of one run.
func (f *fakeCluster) endRun(runID, state string, rc int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.dir == f.RunDir("", runID) {
			j.finish(state, rc)
		}
	}
}

func (j *fakeJob) finish(state string, rc int) {
	j.state = state
	rec := filepath.Join(j.dir, scheduler.RecordDir)
	os.MkdirAll(rec, 0o750)
	os.WriteFile(filepath.Join(rec, "started"), []byte("2026-01-01T00:00:00Z\n"), 0o640)
	os.WriteFile(filepath.Join(rec, "rc"), []byte(strconv.Itoa(rc)+"\n"), 0o640)
}

func terminal(state string) bool { return (scheduler.JobStatus{State: state}).Terminal() }

func (f *fakeCluster) Name() string                                      { return "fake" }
func (f *fakeCluster) Account(user string) string                        { return user }
func (f *fakeCluster) Options() []scheduler.Option                       { return nil }
func (f *fakeCluster) Directives(map[string]string) []string             { return nil }
func (f *fakeCluster) CheckOption(context.Context, string, string) error { return nil }
func (f *fakeCluster) RunDir(_, runID string) string                     { return filepath.Join(f.dataDir, "runs", runID) }
func (f *fakeCluster) Open(context.Context, string, string) (io.ReadSeekCloser, error) {
	return nil, os.ErrNotExist
}
func (f *fakeCluster) Queue(context.Context) (scheduler.Queue, error) { return scheduler.Queue{}, nil }
func (f *fakeCluster) Partitions(context.Context) ([]string, error)   { return nil, nil }
func (f *fakeCluster) Health() []scheduler.Health                     { return nil }

func (f *fakeCluster) SubmitBatch(ctx context.Context, account string, jobs []scheduler.Job) []scheduler.Submitted {
	res := make([]scheduler.Submitted, len(jobs))
	if err := f.op(ctx, "submit", account); err != nil {
		for i := range res {
			res[i].Err = err
		}
		return res
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, j := range jobs {
		f.next++
		id := strconv.Itoa(f.next)
		f.jobs[id] = &fakeJob{account: account, name: j.Name, dir: j.Dir, state: scheduler.StateRunning}
		res[i].JobID = id
	}
	return res
}

func (f *fakeCluster) Status(ctx context.Context, account string, ids []string) (map[string]scheduler.JobStatus, error) {
	if err := f.op(ctx, "status", account); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]scheduler.JobStatus{}
	for _, id := range ids {
		if j, ok := f.jobs[id]; ok {
			out[id] = scheduler.JobStatus{ID: id, State: j.state, Start: time.Now()}
		}
	}
	return out, nil
}

func (f *fakeCluster) CancelBatch(ctx context.Context, account string, term, kill []string) error {
	if err := f.op(ctx, "cancel", account); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancel = append(f.cancel, [2][]string{term, kill})
	for _, id := range kill {
		if j, ok := f.jobs[id]; ok && !terminal(j.state) {
			j.state = scheduler.StateCancelled
		}
	}
	return nil
}

func (f *fakeCluster) Collect(ctx context.Context, account, _, _ string, _ scheduler.CollectLimits) (scheduler.Collected, error) {
	return scheduler.Collected{}, f.op(ctx, "collect", account)
}

// fakeService is the WES service at the pipeline's seam.
type fakeService struct {
	data string
	wake chan struct{}
}

func (s *fakeService) Engines() []wes.Engine {
	return []wes.Engine{{Name: "sh", Command: []string{"/bin/true"}, Outputs: wes.OutputsDirectory}}
}
func (s *fakeService) LocalRunDir(id string) string { return filepath.Join(s.data, "runs", id) }
func (s *fakeService) Wakeups() <-chan struct{}     { return s.wake }

// harness is a pipeline over real SQLite and a fake cluster.
type harness struct {
	db      *sqlite.DB
	cluster *fakeCluster
	svc     *fakeService
	data    string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	data := t.TempDir()
	db, err := sqlite.Open(context.Background(), filepath.Join(data, "wesgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &harness{db: db, cluster: newFakeCluster(data), svc: &fakeService{data: data, wake: make(chan struct{}, 1)}, data: data}
}

// start runs a pipeline until the test ends (or stop is called).
func (h *harness) start(t *testing.T, tune func(*Config)) (stop func()) {
	t.Helper()
	cfg := Config{PollInterval: 200 * time.Millisecond, FastPoll: 50 * time.Millisecond, CancelGrace: time.Second,
		CollectTimeout: time.Second, CommandTimeout: time.Second, SubmitTimeout: time.Second}
	if tune != nil {
		tune(&cfg)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := New(cfg, h.db, h.cluster, h.svc, wes.NewWatch(), nil, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// addRuns stores n queued runs of user, each with its directory in place.
func (h *harness) addRuns(t *testing.T, user string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", len(user)*1000+i, time.Now().UnixNano()%1e12)
		r := &wes.Run{ID: id, Owner: "o-" + user, Username: user, State: wes.Queued, Created: time.Now(),
			Request: wes.RunRequest{WorkflowType: "CWL", WorkflowEngine: "sh", WorkflowURL: "wf.cwl",
				WorkflowParams: json.RawMessage("{}")}, Outputs: json.RawMessage("{}")}
		if err := h.db.CreateRun(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(h.data, "runs", id, scheduler.WorkDir), 0o750); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func (h *harness) state(t *testing.T, id string) *wes.Run {
	t.Helper()
	r, err := h.db.GetRun(context.Background(), id, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitAll waits until every run is in state.
func (h *harness) waitAll(t *testing.T, ids []string, state wes.State, within time.Duration) {
	t.Helper()
	end := time.Now().Add(within)
	for _, id := range ids {
		for {
			r := h.state(t, id)
			if r.State == state {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("run %s is %s (logs %q), want %s", id, r.State, r.SystemLogs, state)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// A burst of runs is submitted in a few batches per account and followed
// with one status call per account per poll; 200 cancels are one command
// per account, not one or two per run.
func TestBatchesNotRoundTrips(t *testing.T) {
	h := newHarness(t)
	a := h.addRuns(t, "alice", 100)
	b := h.addRuns(t, "bob", 100)
	stop := h.start(t, nil)
	h.waitAll(t, a, wes.Running, 10*time.Second)
	h.waitAll(t, b, wes.Running, 10*time.Second)
	for _, acct := range []string{"alice", "bob"} {
		if n := h.cluster.count("submit", acct); n != 1 {
			t.Errorf("%s: %d submission batches for 100 runs, want 1", acct, n)
		}
	}
	// 200 cancels requested while wesgate is down are sent at its start,
	// one command per account.
	stop()
	for _, id := range append(a, b...) {
		if err := h.db.UpdateRun(context.Background(), id, func(r *wes.Run) error {
			r.CancelRequested, r.State = true, wes.Canceling
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	h.start(t, nil)
	time.Sleep(500 * time.Millisecond)
	for _, acct := range []string{"alice", "bob"} {
		if n := h.cluster.count("cancel", acct); n != 1 {
			t.Errorf("%s: %d cancel commands for 100 cancels, want 1", acct, n)
		}
	}
	h.cluster.end("alice", scheduler.StateCancelled, 143)
	h.cluster.end("bob", scheduler.StateCancelled, 143)
	h.waitAll(t, append(a, b...), wes.Canceled, 10*time.Second)
}

// An account whose status command hangs does not hold up another
// account's polls, nor the settling of its runs.
func TestHungAccountDoesNotStallOthers(t *testing.T) {
	h := newHarness(t)
	slow := h.addRuns(t, "slow", 3)
	fast := h.addRuns(t, "fast", 3)
	h.start(t, func(c *Config) { c.CommandTimeout = time.Hour })
	h.waitAll(t, append(slow, fast...), wes.Running, 10*time.Second)
	h.cluster.setHang("status", "slow", true)
	time.Sleep(300 * time.Millisecond) // the slow account's poll is stuck now
	h.cluster.end("fast", scheduler.StateCompleted, 0)
	h.cluster.end("slow", scheduler.StateCompleted, 0)
	h.waitAll(t, fast, wes.Complete, 5*time.Second)
	if r := h.state(t, slow[0]); r.State != wes.Running {
		t.Errorf("a run of the hung account is %s, want RUNNING until its poll answers", r.State)
	}
	// One poll of the hung account is in flight, never a pile of them.
	if n := h.cluster.count("status", "slow"); n > 3 {
		t.Errorf("%d status calls for the hung account, want its polls not to pile up", n)
	}
}

// A collection that hangs fails that run's settling only, at its deadline,
// with a system_logs line; the other runs of the same account settle.
func TestHungCollectFailsOneRun(t *testing.T) {
	h := newHarness(t)
	runs := h.addRuns(t, "carol", 4)
	h.start(t, func(c *Config) { c.CollectTimeout = 200 * time.Millisecond; c.SettlePerAccount = 4 })
	h.waitAll(t, runs, wes.Running, 10*time.Second)
	// The first run's job ends first and its collection hangs.
	h.cluster.setHang("collect", "carol", true)
	h.cluster.endRun(runs[0], scheduler.StateCompleted, 0)
	time.Sleep(400 * time.Millisecond)
	h.cluster.setHang("collect", "carol", false)
	h.cluster.end("carol", scheduler.StateCompleted, 0)
	h.waitAll(t, runs[1:], wes.Complete, 5*time.Second)
	r := h.state(t, runs[0])
	found := false
	for _, l := range r.SystemLogs {
		found = found || strings.Contains(l, "copying the run's files from the cluster failed")
	}
	if !found {
		t.Errorf("the hung run's logs %q lack the failed-copy line", r.SystemLogs)
	}
	h.waitAll(t, runs[:1], wes.Complete, 10*time.Second) // retried with backoff
}

// A cancel requested but not yet sent survives a restart; a job that
// ignores SIGTERM is cancelled outright after the grace period.
func TestCancelSurvivesRestartAndEscalates(t *testing.T) {
	h := newHarness(t)
	runs := h.addRuns(t, "dave", 1)
	stop := h.start(t, nil)
	h.waitAll(t, runs, wes.Running, 10*time.Second)
	h.cluster.setHang("cancel", "dave", true)
	if err := h.db.UpdateRun(context.Background(), runs[0], func(r *wes.Run) error {
		r.CancelRequested, r.State = true, wes.Canceling
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h.svc.wake <- struct{}{}
	time.Sleep(300 * time.Millisecond)
	stop() // wesgate stops before the cancel went out
	if r := h.state(t, runs[0]); r.CancelSent {
		t.Fatal("the cancel is marked sent although it never went out")
	}
	h.cluster.setHang("cancel", "dave", false)
	h.start(t, func(c *Config) { c.CancelGrace = 300 * time.Millisecond })
	// The job ignores SIGTERM: first a term, then a kill.
	end := time.Now().Add(5 * time.Second)
	for {
		h.cluster.mu.Lock()
		var terms, kills int
		for _, c := range h.cluster.cancel {
			terms += len(c[0])
			kills += len(c[1])
		}
		h.cluster.mu.Unlock()
		if terms >= 1 && kills >= 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("after the restart: %d SIGTERMs and %d scancels, want both", terms, kills)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.waitAll(t, runs, wes.Canceled, 5*time.Second)
}
