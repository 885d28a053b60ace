package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/wesgate/wesgate/wes"
	"github.com/wesgate/wesgate/wes/sqlite"
)

func open(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var created = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// newRun returns a run as the service creates it.
func newRun(n int, owner string, state wes.State, tags map[string]string) *wes.Run {
	if tags == nil {
		tags = map[string]string{}
	}
	return &wes.Run{
		ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), Owner: owner, Username: "alice", State: state,
		Request: wes.RunRequest{
			WorkflowParams: json.RawMessage(`{"n":` + fmt.Sprint(n) + `}`), WorkflowType: "CWL", WorkflowTypeVersion: "v1.2",
			Tags: tags, WorkflowEngineParameters: map[string]string{"--parallel": "true"},
			WorkflowEngine: "cwltool", WorkflowEngineVersion: "3.1", WorkflowURL: "wf.cwl",
		},
		Name: "wf.cwl", Attachments: []string{"wf.cwl", "data/in.txt"},
		Created: created.Add(time.Duration(n) * time.Second), Outputs: json.RawMessage("{}"),
	}
}

func mustCreate(t *testing.T, db *sqlite.DB, r *wes.Run) *wes.Run {
	t.Helper()
	if err := db.CreateRun(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.Seq == 0 {
		t.Fatal("CreateRun did not set Seq")
	}
	return r
}

func ids(runs []*wes.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.ID
	}
	return out
}

func TestCreateGetOwner(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "wes.db"))
	r := mustCreate(t, db, newRun(1, "alice@idp", wes.Queued, map[string]string{"name": "first", "project": "x"}))

	for _, owner := range []string{"alice@idp", ""} { // the owner, or an admin
		got, err := db.GetRun(ctx, r.ID, owner)
		if err != nil {
			t.Fatalf("GetRun as %q: %v", owner, err)
		}
		if !reflect.DeepEqual(got.Request, r.Request) || got.Owner != r.Owner || got.Username != r.Username ||
			got.Name != r.Name || !slices.Equal(got.Attachments, r.Attachments) || !got.Created.Equal(r.Created) ||
			got.State != wes.Queued || got.Seq != r.Seq || string(got.Outputs) != "{}" || got.ExitCode != nil {
			t.Errorf("GetRun as %q:\n got %+v\nwant %+v", owner, got, r)
		}
		if st, err := db.GetState(ctx, r.ID, owner); err != nil || st != wes.Queued {
			t.Errorf("GetState as %q: %s, %v", owner, st, err)
		}
	}
	// Another owner's run and a missing run are the same answer.
	for _, tc := range []struct{ id, owner string }{{r.ID, "mallory@idp"}, {r.ID, "alice@other-idp"},
		{"00000000-0000-4000-8000-999999999999", "alice@idp"}, {"00000000-0000-4000-8000-999999999999", ""}} {
		if got, err := db.GetRun(ctx, tc.id, tc.owner); !errors.Is(err, wes.ErrNotFound) || got != nil {
			t.Errorf("GetRun(%s, %q) = %v, %v; want ErrNotFound", tc.id, tc.owner, got, err)
		}
		if _, err := db.GetState(ctx, tc.id, tc.owner); !errors.Is(err, wes.ErrNotFound) {
			t.Errorf("GetState(%s, %q): %v; want ErrNotFound", tc.id, tc.owner, err)
		}
	}
	// Run ids are unique.
	if err := db.CreateRun(ctx, newRun(1, "bob@idp", wes.Queued, nil)); err == nil {
		t.Error("a second run with the same id was stored")
	}
}

func TestListRuns(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "wes.db"))
	var all []*wes.Run
	for i := 1; i <= 9; i++ {
		owner := "alice"
		if i%3 == 0 {
			owner = "bob"
		}
		state := wes.Queued
		if i%2 == 0 {
			state = wes.Complete
		}
		tags := map[string]string{"batch": fmt.Sprint(i % 2)}
		if i == 5 {
			tags["name"] = "five"
		}
		all = append(all, mustCreate(t, db, newRun(i, owner, state, tags)))
	}
	pick := func(ns ...int) []string {
		var out []string
		for _, n := range ns {
			out = append(out, all[n-1].ID)
		}
		return out
	}
	tests := []struct {
		name string
		q    wes.ListQuery
		want []string
	}{
		{"everyone newest first", wes.ListQuery{Limit: 100}, pick(9, 8, 7, 6, 5, 4, 3, 2, 1)},
		{"limit", wes.ListQuery{Limit: 3}, pick(9, 8, 7)},
		{"owner", wes.ListQuery{Owner: "alice", Limit: 100}, pick(8, 7, 5, 4, 2, 1)},
		{"before", wes.ListQuery{Before: all[6].Seq, Limit: 2}, pick(6, 5)},
		{"owner before", wes.ListQuery{Owner: "bob", Before: all[8].Seq, Limit: 100}, pick(6, 3)},
		{"state", wes.ListQuery{States: []wes.State{wes.Complete}, Limit: 100}, pick(8, 6, 4, 2)},
		{"states", wes.ListQuery{States: []wes.State{wes.Complete, wes.Queued}, Limit: 100}, pick(9, 8, 7, 6, 5, 4, 3, 2, 1)},
		{"state none", wes.ListQuery{States: []wes.State{wes.Running}, Limit: 100}, nil},
		{"tag", wes.ListQuery{TagKey: "batch", TagValue: "1", Limit: 100}, pick(9, 7, 5, 3, 1)},
		{"tag and owner and state", wes.ListQuery{Owner: "alice", TagKey: "batch", TagValue: "0",
			States: []wes.State{wes.Complete}, Limit: 100}, pick(8, 4, 2)},
		{"tag value must match", wes.ListQuery{TagKey: "name", TagValue: "four", Limit: 100}, nil},
		{"tag name", wes.ListQuery{TagKey: "name", TagValue: "five", Limit: 100}, pick(5)},
		{"other owner", wes.ListQuery{Owner: "carol", Limit: 100}, nil},
	}
	for _, tt := range tests {
		runs, err := db.ListRuns(ctx, tt.q)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := ids(runs); !slices.Equal(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
	// Listed runs carry their tags.
	runs, _ := db.ListRuns(ctx, wes.ListQuery{TagKey: "name", TagValue: "five", Limit: 1})
	if len(runs) == 1 && runs[0].Request.Tags["name"] != "five" {
		t.Errorf("tags %v", runs[0].Request.Tags)
	}

	counts, err := db.CountStates(ctx, "")
	if err != nil || counts[wes.Queued] != 5 || counts[wes.Complete] != 4 || len(counts) != 2 {
		t.Errorf("CountStates everyone = %v, %v", counts, err)
	}
	counts, err = db.CountStates(ctx, "bob")
	if err != nil || counts[wes.Queued] != 2 || counts[wes.Complete] != 1 {
		t.Errorf("CountStates bob = %v, %v", counts, err)
	}

	active, err := db.ActiveRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(active), pick(1, 3, 5, 7, 9); !slices.Equal(got, want) {
		t.Errorf("ActiveRuns = %q, want the unfinished runs oldest first %q", got, want)
	}
}

func TestActiveRunsStates(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "wes.db"))
	var want []string
	for i, st := range wes.States {
		r := mustCreate(t, db, newRun(i+1, "alice", st, nil))
		if !st.Terminal() {
			want = append(want, r.ID)
		}
	}
	active, err := db.ActiveRuns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(active); !slices.Equal(got, want) {
		t.Errorf("ActiveRuns = %q, want %q", got, want)
	}
}

func TestUpdateRunRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "wes.db"))
	r := mustCreate(t, db, newRun(1, "alice", wes.Queued, map[string]string{"k": "v"}))

	loc := time.FixedZone("CEST", 2*3600)
	started := time.Date(2024, 3, 1, 14, 0, 1, 123456789, loc) // stored in UTC, to the nanosecond
	ended := started.Add(90 * time.Minute)
	gone := started.Add(time.Hour)
	err := db.UpdateRun(ctx, r.ID, func(x *wes.Run) error {
		x.State = wes.ExecutorError
		x.Started, x.Ended, x.GoneSince = started, ended, gone
		x.JobID, x.RunDir = "12345", "/home/alice/.wesgate/runs/"+r.ID
		x.CancelRequested, x.CancelSent = true, true
		x.ExitCode = new(int)
		*x.ExitCode = 3
		x.Cmd = []string{"cwltool", "it's \"quoted\"", "ünï"}
		x.SystemLogs = []string{"line one", "line\ntwo"}
		x.Outputs = json.RawMessage(`{"out":{"class":"File","location":"wesgate-file:outputs/a%20b.txt"}}`)
		x.Partition, x.Node = "short", "node-01"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.GetRun(ctx, r.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		field string
		ok    bool
	}{
		{"State", got.State == wes.ExecutorError},
		{"Started", got.Started.Equal(started) && got.Started.Location() == time.UTC},
		{"Ended", got.Ended.Equal(ended)},
		{"GoneSince", got.GoneSince.Equal(gone)},
		{"JobID", got.JobID == "12345"},
		{"RunDir", got.RunDir == "/home/alice/.wesgate/runs/"+r.ID},
		{"CancelRequested", got.CancelRequested},
		{"CancelSent", got.CancelSent},
		{"ExitCode", got.ExitCode != nil && *got.ExitCode == 3},
		{"Cmd", slices.Equal(got.Cmd, []string{"cwltool", "it's \"quoted\"", "ünï"})},
		{"SystemLogs", slices.Equal(got.SystemLogs, []string{"line one", "line\ntwo"})},
		{"Outputs", string(got.Outputs) == `{"out":{"class":"File","location":"wesgate-file:outputs/a%20b.txt"}}`},
		{"Partition", got.Partition == "short"},
		{"Node", got.Node == "node-01"},
		// What UpdateRun does not change stays as created.
		{"Request", reflect.DeepEqual(got.Request, r.Request)},
		{"Created", got.Created.Equal(r.Created)},
		{"Attachments", slices.Equal(got.Attachments, r.Attachments)},
		{"Seq", got.Seq == r.Seq},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s did not round-trip: %+v", c.field, got)
		}
	}

	// Back to empty values: they round-trip too.
	err = db.UpdateRun(ctx, r.ID, func(x *wes.Run) error {
		x.ExitCode, x.Cmd, x.SystemLogs = nil, nil, nil
		x.Started, x.GoneSince = time.Time{}, time.Time{}
		x.CancelRequested = false
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ = db.GetRun(ctx, r.ID, "")
	if got.ExitCode != nil || len(got.Cmd) != 0 || len(got.SystemLogs) != 0 || !got.Started.IsZero() ||
		!got.GoneSince.IsZero() || got.CancelRequested {
		t.Errorf("cleared fields: %+v", got)
	}

	if err := db.UpdateRun(ctx, "00000000-0000-4000-8000-999999999999", func(*wes.Run) error { return nil }); !errors.Is(err, wes.ErrNotFound) {
		t.Errorf("UpdateRun of a missing run: %v, want ErrNotFound", err)
	}
}

func TestUpdateRunErrorCommitsNothing(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "wes.db"))
	r := mustCreate(t, db, newRun(1, "alice", wes.Running, nil))
	boom := errors.New("boom")
	for _, want := range []error{wes.ErrNoChange, boom} {
		err := db.UpdateRun(ctx, r.ID, func(x *wes.Run) error {
			x.State = wes.Complete
			x.JobID = "changed"
			x.SystemLogs = append(x.SystemLogs, "written?")
			return want
		})
		if !errors.Is(err, want) {
			t.Errorf("UpdateRun returned %v, want %v", err, want)
		}
		got, _ := db.GetRun(ctx, r.ID, "")
		if got.State != wes.Running || got.JobID != "" || len(got.SystemLogs) != 0 {
			t.Errorf("after %v the run changed: %+v", want, got)
		}
	}
}

func TestUpdateRunConcurrent(t *testing.T) {
	// Each update is one transaction: concurrent appends are all kept.
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "wes.db"))
	r := mustCreate(t, db, newRun(1, "alice", wes.Running, nil))
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- db.UpdateRun(ctx, r.ID, func(x *wes.Run) error {
				x.SystemLogs = append(x.SystemLogs, fmt.Sprint(i))
				return nil
			})
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	got, _ := db.GetRun(ctx, r.ID, "")
	if len(got.SystemLogs) != n {
		t.Errorf("%d log lines kept, want %d: %q", len(got.SystemLogs), n, got.SystemLogs)
	}
}

func TestTasks(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "wes.db"))
	r := mustCreate(t, db, newRun(1, "alice", wes.Running, nil))
	other := mustCreate(t, db, newRun(2, "bob", wes.Running, nil))

	if tasks, err := db.ListTasks(ctx, r.ID, "alice", 0, 10); err != nil || tasks == nil || len(tasks) != 0 {
		t.Errorf("no tasks yet: %v (nil %v), %v; want an empty list", tasks, tasks == nil, err)
	}
	var tasks []wes.Task
	start := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		tk := wes.Task{ID: fmt.Sprintf("step-%d", 6-i), Name: fmt.Sprintf("name %d", i), // ids out of order on purpose
			Cmd: []string{"tool", fmt.Sprint(i)}, Start: start.Add(time.Duration(i) * time.Minute), SystemLogs: []string{}}
		if i%2 == 1 {
			tk.End = tk.Start.Add(30 * time.Second)
			tk.ExitCode = new(int)
			*tk.ExitCode = i
		}
		tasks = append(tasks, tk)
	}
	if err := db.ReplaceTasks(ctx, r.ID, tasks); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceTasks(ctx, other.ID, tasks[:1]); err != nil {
		t.Fatal(err)
	}

	var paged []wes.Task
	for after := 0; ; after += 2 {
		page, err := db.ListTasks(ctx, r.ID, "alice", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if len(page) < 2 {
			break
		}
	}
	if len(paged) != len(tasks) {
		t.Fatalf("paged %d tasks, want %d", len(paged), len(tasks))
	}
	for i := range tasks {
		want, got := tasks[i], paged[i]
		if got.ID != want.ID || got.Name != want.Name || !slices.Equal(got.Cmd, want.Cmd) || !got.Start.Equal(want.Start) ||
			!got.End.Equal(want.End) || (got.ExitCode == nil) != (want.ExitCode == nil) ||
			(got.ExitCode != nil && *got.ExitCode != *want.ExitCode) {
			t.Errorf("task %d:\n got %+v\nwant %+v", i, got, want)
		}
	}

	tk, err := db.GetTask(ctx, r.ID, "alice", "step-3")
	if err != nil || tk.Name != "name 3" {
		t.Errorf("GetTask = %+v, %v", tk, err)
	}
	if _, err := db.GetTask(ctx, r.ID, "", "step-3"); err != nil {
		t.Errorf("GetTask as admin: %v", err)
	}
	for _, tc := range []struct{ run, owner, task string }{
		{r.ID, "bob", "step-3"},     // not bob's run
		{other.ID, "bob", "step-3"}, // bob's run has only step-5
		{r.ID, "alice", "step-9"},   // no such task
		{"00000000-0000-4000-8000-999999999999", "", "step-1"},
	} {
		if _, err := db.GetTask(ctx, tc.run, tc.owner, tc.task); !errors.Is(err, wes.ErrNotFound) {
			t.Errorf("GetTask(%s, %s, %s): %v, want ErrNotFound", tc.run, tc.owner, tc.task, err)
		}
	}
	if _, err := db.ListTasks(ctx, r.ID, "bob", 0, 10); !errors.Is(err, wes.ErrNotFound) {
		t.Errorf("ListTasks of another owner's run: %v, want ErrNotFound", err)
	}

	// Replacing keeps only the new list.
	if err := db.ReplaceTasks(ctx, r.ID, tasks[3:]); err != nil {
		t.Fatal(err)
	}
	got, err := db.ListTasks(ctx, r.ID, "", 0, 10)
	if err != nil || len(got) != 2 || got[0].ID != tasks[3].ID || got[1].ID != tasks[4].ID {
		t.Errorf("after replace: %+v, %v", got, err)
	}
	if err := db.ReplaceTasks(ctx, "00000000-0000-4000-8000-999999999999", tasks); !errors.Is(err, wes.ErrNotFound) {
		t.Errorf("ReplaceTasks of a missing run: %v, want ErrNotFound", err)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	// A directory name with URL-special characters: the path must not be
	// read as a URL.
	dir := filepath.Join(t.TempDir(), "data dir?x=1#frag%20")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "wes.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := db.Secret(ctx, "page-token")
	if err != nil || len(key) != 32 {
		t.Fatalf("Secret: %x, %v", key, err)
	}
	again, _ := db.Secret(ctx, "page-token")
	other, _ := db.Secret(ctx, "other")
	if !slices.Equal(key, again) || slices.Equal(key, other) || len(other) != 32 {
		t.Errorf("secrets: %x, %x, %x", key, again, other)
	}
	r := mustCreate(t, db, newRun(1, "alice", wes.Queued, nil))
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at %s: %v", path, err)
	}

	// Reopening applies no migration twice and keeps everything.
	for range 2 {
		db = open(t, path)
		if err := db.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _ := db.Secret(ctx, "page-token"); !slices.Equal(got, key) {
			t.Errorf("secret changed across reopen: %x, was %x", got, key)
		}
		if got, err := db.GetRun(ctx, r.ID, "alice"); err != nil || got.Seq != r.Seq {
			t.Errorf("run after reopen: %+v, %v", got, err)
		}
		db.Close()
	}
	// Sequence numbers keep growing: a new run is newer than every old one.
	db = open(t, path)
	r2 := mustCreate(t, db, newRun(2, "alice", wes.Queued, nil))
	if r2.Seq <= r.Seq {
		t.Errorf("seq %d after %d", r2.Seq, r.Seq)
	}
}

// TestWriteConnectionIsDurable: a commit on the write connection is synced
// before it returns (synchronous=FULL, 2), so a run answered with its run_id
// survives a power loss; the log stays WAL.
func TestWriteConnectionIsDurable(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "wesgate.db"))
	for pragma, want := range map[string]string{"synchronous": "2", "journal_mode": "wal"} {
		got, err := sqlite.WritePragma(context.Background(), db, pragma)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s on the write connection = %s, want %s", pragma, got, want)
		}
	}
}

// BenchmarkCreateRun measures one stored run: one write transaction, synced
// (synchronous=FULL) before it returns. Put the temporary directory on the
// disk that will hold the data directory (TMPDIR), not a tmpfs.
func BenchmarkCreateRun(b *testing.B) {
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "wesgate.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	n := 0
	for b.Loop() {
		n++
		if err := db.CreateRun(context.Background(), newRun(n, "alice", wes.Queued, nil)); err != nil {
			b.Fatal(err)
		}
	}
}
