package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/wesgate/wesgate/wes"
)

// terminalStates are the states of runs that have ended.
var terminalStates = func() []any {
	var out []any
	for _, st := range wes.States {
		if st.Terminal() {
			out = append(out, string(st))
		}
	}
	return out
}()

// CreateRunWithin stores a new run unless its owner would then go over q.
// The write transaction takes SQLite's write lock when it begins
// (_txlock=immediate), so no other run is stored between the count and the
// insert: concurrent requests of one user cannot all slip under a cap.
func (db *DB) CreateRunWithin(ctx context.Context, r *wes.Run, q wes.Quota) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if !q.None() {
		u, err := usage(ctx, tx, r.Owner, q)
		if err != nil {
			return fmt.Errorf("count runs: %w", err)
		}
		u.AttachmentBytes = r.AttachmentBytes
		if err := wes.CheckQuota(q, u); err != nil {
			return err
		}
	}
	seq, err := insertRun(ctx, tx, r)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	r.Seq = seq
	return nil
}

// usage counts what owner has that q caps: runs that have not ended and
// their attachment bytes, and the runs created since q.WindowStart among
// the newest q.MaxSubmissionsPerMinute (no more need be read).
func usage(ctx context.Context, tx *sql.Tx, owner string, q wes.Quota) (wes.Usage, error) {
	var u wes.Usage
	args := append([]any{owner}, terminalStates...)
	err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(attachment_bytes), 0) FROM runs
		WHERE owner = ? AND state NOT IN (`+placeholders(len(terminalStates))+`)`, args...).Scan(&u.ActiveRuns, &u.ActiveBytes)
	if err != nil {
		return u, err
	}
	if q.MaxSubmissionsPerMinute <= 0 {
		return u, nil
	}
	var oldest sql.NullString
	err = tx.QueryRowContext(ctx, `SELECT count(*), min(created) FROM
		(SELECT created FROM runs WHERE owner = ? ORDER BY seq DESC LIMIT ?) WHERE julianday(created) >= julianday(?)`,
		owner, q.MaxSubmissionsPerMinute, fmtTime(q.WindowStart)).Scan(&u.RecentRuns, &oldest)
	if err != nil {
		return u, err
	}
	if oldest.Valid {
		if u.OldestRecent, err = parseTime(oldest.String); err != nil {
			return u, err
		}
	}
	return u, nil
}
