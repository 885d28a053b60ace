package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/wesgate/wesgate/wes"
)

// TestCreateRunWithin: the caps count only the owner's runs, active runs
// for the active caps, and runs in the window (to the sub-second) for the
// rate; over a cap nothing is stored.
func TestCreateRunWithin(t *testing.T) {
	ctx := context.Background()
	db := open(t, filepath.Join(t.TempDir(), "w.db"))
	now := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	n := 0
	add := func(owner string, st wes.State, created time.Time, bytes int64, q wes.Quota) error {
		n++
		r := newRun(n, owner, st, nil)
		r.Created, r.AttachmentBytes = created, bytes
		return db.CreateRunWithin(ctx, r, q)
	}
	limited := func(err error) bool {
		var le *wes.LimitError
		return errors.As(err, &le)
	}
	// Active runs: two of alice's are active, one ended; bob's do not count.
	active := wes.Quota{MaxActiveRuns: 2}
	for _, st := range []wes.State{wes.Running, wes.Complete, wes.Queued} {
		if err := add("alice", st, now.Add(-time.Hour), 100, wes.Quota{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := add("bob", wes.Running, now, 0, active); err != nil {
		t.Errorf("bob's first run: %v", err)
	}
	if err := add("alice", wes.Queued, now, 0, active); !limited(err) {
		t.Errorf("alice's third active run: %v, want a LimitError", err)
	}
	// Bytes of active runs: alice has 200 active (the ended run's 100 do not count).
	if err := add("alice", wes.Queued, now, 50, wes.Quota{MaxAttachmentBytes: 250}); err != nil {
		t.Errorf("250 of 250 bytes: %v", err)
	}
	if err := add("alice", wes.Queued, now, 1, wes.Quota{MaxAttachmentBytes: 250}); !limited(err) {
		t.Errorf("251 of 250 bytes: %v, want a LimitError", err)
	}
	// Rate: carol has runs 61 s, 59.5 s and 0.25 s ago: two in the window.
	rate := wes.Quota{MaxSubmissionsPerMinute: 3, WindowStart: now.Add(-time.Minute)}
	for _, ago := range []time.Duration{61 * time.Second, 59500 * time.Millisecond, 250 * time.Millisecond} {
		if err := add("carol", wes.Complete, now.Add(-ago), 0, wes.Quota{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := add("carol", wes.Complete, now, 0, rate); err != nil {
		t.Errorf("carol's third run in a minute: %v", err)
	}
	err := add("carol", wes.Complete, now, 0, rate)
	var le *wes.LimitError
	if !errors.As(err, &le) {
		t.Fatalf("carol's fourth run in a minute: %v, want a LimitError", err)
	}
	if le.RetryAfter != 500*time.Millisecond && le.RetryAfter != time.Second {
		t.Errorf("Retry-After %s, want the 0.5 s until the oldest leaves the window (at least 1 s)", le.RetryAfter)
	}
	counts, err := db.CountStates(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if total := counts[wes.Queued] + counts[wes.Running] + counts[wes.Complete]; total != 4 {
		t.Errorf("alice has %d runs stored (%v), want 4: refused runs are not stored", total, counts)
	}
}
