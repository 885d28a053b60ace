package sqlite

import (
	"context"
	"time"

	"github.com/wesgate/wesgate/wes"
)

// AddSample records the queue's pending and running jobs at a moment, and
// forgets samples older than a week.
func (db *DB) AddSample(ctx context.Context, s wes.Sample) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO queue_samples (at, pending, running) VALUES (?, ?, ?)`,
		s.At.Unix(), s.Pending, s.Running); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM queue_samples WHERE at < ?`, s.At.Add(-7*24*time.Hour).Unix()); err != nil {
		return err
	}
	return tx.Commit()
}

// Samples returns the samples taken since a moment, oldest first.
func (db *DB) Samples(ctx context.Context, since time.Time) ([]wes.Sample, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT at, pending, running FROM queue_samples WHERE at >= ? ORDER BY at`, since.Unix())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []wes.Sample
	for rows.Next() {
		var at int64
		var s wes.Sample
		if err := rows.Scan(&at, &s.Pending, &s.Running); err != nil {
			return nil, err
		}
		s.At = time.Unix(at, 0).UTC()
		out = append(out, s)
	}
	return out, rows.Err()
}

// CountByUser counts every cluster user's runs by state.
func (db *DB) CountByUser(ctx context.Context) ([]wes.UserCount, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT username, state, count(*) FROM runs GROUP BY username, state ORDER BY username`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []wes.UserCount
	for rows.Next() {
		var username, state string
		var n int64
		if err := rows.Scan(&username, &state, &n); err != nil {
			return nil, err
		}
		if len(out) == 0 || out[len(out)-1].Username != username {
			out = append(out, wes.UserCount{Username: username, States: map[wes.State]int64{}})
		}
		out[len(out)-1].States[wes.State(state)] = n
		out[len(out)-1].Total += n
	}
	return out, rows.Err()
}
