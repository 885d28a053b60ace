package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wesgate/wesgate/wes"
	"github.com/wesgate/wesgate/wes/sqlite"
)

// TestBackupWhileWriting: a backup taken while another goroutine keeps
// creating runs is a complete database that opens and holds every run
// created before it started.
func TestBackupWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := open(t, filepath.Join(dir, "wesgate.db"))
	for i := 1; i <= 50; i++ {
		mustCreate(t, db, newRun(i, "alice", wes.Complete, nil))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	wg.Go(func() {
		for i := 1000; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.CreateRun(ctx, newRun(i, "bob", wes.Queued, nil)); err != nil {
				writeErr = err
				return
			}
		}
	})
	dest := filepath.Join(dir, "backup", "wesgate-backup.db")
	os.Mkdir(filepath.Dir(dest), 0o700)
	err := db.Backup(ctx, dest)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if writeErr != nil {
		t.Fatalf("writes during the backup failed: %v", writeErr)
	}
	if _, err := os.Stat(dest + ".partial"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the partial file is left behind: %v", err)
	}

	copyDB := open(t, dest)
	for i := 1; i <= 50; i++ {
		want := newRun(i, "alice", wes.Complete, nil)
		got, err := copyDB.GetRun(ctx, want.ID, "alice")
		if err != nil {
			t.Fatalf("run %d is not in the backup: %v", i, err)
		}
		if got.State != wes.Complete || string(got.Request.WorkflowParams) != string(want.Request.WorkflowParams) {
			t.Errorf("run %d in the backup: state %s params %s", i, got.State, got.Request.WorkflowParams)
		}
	}
}

// TestBackupNeverOverwrites: a second backup to the same file is refused
// and the first is left as it was.
func TestBackupNeverOverwrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := open(t, filepath.Join(dir, "wesgate.db"))
	dest := filepath.Join(dir, "b.db")
	if err := os.WriteFile(dest, []byte("an older backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Backup(ctx, dest); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("err = %v, want a refusal to overwrite", err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "an older backup" {
		t.Errorf("the existing file was changed: %q", b)
	}
}

// TestOpenRefusesNewerSchema: a database that a newer wesgate migrated
// (it records a migration this binary does not embed) is refused with a
// message that says so, and is left untouched.
func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wesgate.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO migrations (name) VALUES ('migrations/9001_from_the_future.sql')`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db, err = sqlite.Open(ctx, path)
	if err == nil {
		db.Close()
		t.Fatal("an older binary opened a database migrated by a newer one")
	}
	if !errors.Is(err, sqlite.ErrNewerSchema) || !strings.Contains(err.Error(), "9001_from_the_future.sql") {
		t.Fatalf("err = %v, want ErrNewerSchema naming the unknown migration", err)
	}
}
