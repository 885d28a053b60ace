package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wesgate/wesgate/wes"
)

const activeJobColumns = `id, username, account, state, job_id, run_dir, submit_attempted, cancel_requested,
	cancel_sent, cancel_sent_at, gone_since, started, node, partition`

// ActiveJobs returns every unfinished run, oldest first, with the small
// columns the pipeline reads on every tick.
func (db *DB) ActiveJobs(ctx context.Context) ([]wes.ActiveRun, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+activeJobColumns+` FROM runs WHERE state IN (`+
		placeholders(len(activeStates))+`) ORDER BY seq`, activeStates...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []wes.ActiveRun
	for rows.Next() {
		var (
			r                          wes.ActiveRun
			state, sentAt, gone, start string
		)
		if err := rows.Scan(&r.ID, &r.Username, &r.Account, &state, &r.JobID, &r.RunDir, &r.SubmitAttempted,
			&r.CancelRequested, &r.CancelSent, &sentAt, &gone, &start, &r.Node, &r.Partition); err != nil {
			return nil, err
		}
		r.State = wes.State(state)
		var errs [3]error
		r.CancelSentAt, errs[0] = parseTime(sentAt)
		r.GoneSince, errs[1] = parseTime(gone)
		r.Started, errs[2] = parseTime(start)
		if err := errors.Join(errs[:]...); err != nil {
			return nil, fmt.Errorf("run %s: %w", r.ID, err)
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// BeginSubmit records the account of runs about to be submitted and marks
// them attempted, in one transaction.
func (db *DB) BeginSubmit(ctx context.Context, subs []wes.Submission) error {
	return db.each(ctx, len(subs), `UPDATE runs SET account = ?, submit_attempted = 1 WHERE id = ? AND job_id = ''`,
		func(i int) []any { return []any{subs[i].Account, subs[i].ID} })
}

// RecordJobs records the job id, account, run directory and command of
// submitted runs, in one transaction. A run that ended meanwhile keeps its
// state but still learns its job.
func (db *DB) RecordJobs(ctx context.Context, subs []wes.Submission) error {
	return db.each(ctx, len(subs), `UPDATE runs SET job_id = ?, account = ?, run_dir = ?, cmd = ? WHERE id = ?`,
		func(i int) []any {
			s := subs[i]
			return []any{s.JobID, s.Account, s.RunDir, mustJSON(nonNilList(s.Cmd)), s.ID}
		})
}

// UpdateJobs applies poll results to the runs that are still active.
func (db *DB) UpdateJobs(ctx context.Context, ups []wes.JobUpdate) error {
	return db.each(ctx, len(ups), `UPDATE runs SET
		state = CASE WHEN cancel_requested THEN 'CANCELING' ELSE ? END,
		started = CASE WHEN started = '' THEN ? ELSE started END,
		node = ?, partition = ?, gone_since = ?
		WHERE id = ? AND state NOT IN (`+placeholders(len(terminalStates))+`)`, func(i int) []any {
		u := ups[i]
		return append([]any{string(u.State), fmtTime(u.Started), u.Node, u.Partition, fmtTime(u.GoneSince), u.ID},
			terminalStates...)
	})
}

// MarkCancelSent records when a cancel was sent.
func (db *DB) MarkCancelSent(ctx context.Context, ids []string, at time.Time) error {
	return db.each(ctx, len(ids), `UPDATE runs SET cancel_sent = 1, cancel_sent_at = ? WHERE id = ?`,
		func(i int) []any { return []any{fmtTime(at), ids[i]} })
}

// each runs one statement n times in one transaction.
func (db *DB) each(ctx context.Context, n int, query string, args func(i int) []any) error {
	if n == 0 {
		return nil
	}
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range n {
		if _, err := stmt.ExecContext(ctx, args(i)...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// SettleRun writes a run's final state, logs, outputs and tasks in one
// transaction; wes.ErrNoChange when the run has already ended.
func (db *DB) SettleRun(ctx context.Context, id string, f wes.Final) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var (
		seq         int64
		state, logs string
		started     string
		node, part  string
	)
	err = tx.QueryRowContext(ctx, `SELECT seq, state, system_logs, started, node, partition FROM runs WHERE id = ?`, id).
		Scan(&seq, &state, &logs, &started, &node, &part)
	if errors.Is(err, sql.ErrNoRows) {
		return wes.ErrNotFound
	}
	if err != nil {
		return err
	}
	if wes.State(state).Terminal() {
		return wes.ErrNoChange
	}
	var all []string
	if err := json.Unmarshal([]byte(logs), &all); err != nil {
		return fmt.Errorf("run %s: system_logs: %w", id, err)
	}
	all = append(all, f.Logs...)
	if started == "" {
		started = fmtTime(f.Started)
	}
	if f.Node != "" {
		node = f.Node
	}
	if f.Partition != "" {
		part = f.Partition
	}
	outputs := string(f.Outputs)
	if outputs == "" {
		outputs = "{}"
	}
	_, err = tx.ExecContext(ctx, `UPDATE runs SET state = ?, exit_code = ?, started = ?, ended = ?, system_logs = ?,
		outputs = ?, node = ?, partition = ?, collected_bytes = collected_bytes + ? WHERE seq = ?`,
		string(f.State), exitValue(f.ExitCode), started, fmtTime(f.Ended), mustJSON(nonNilList(all)), outputs,
		node, part, f.CollectedBytes, seq)
	if err != nil {
		return fmt.Errorf("settle run: %w", err)
	}
	if f.Tasks != nil {
		if err := replaceTasks(ctx, tx, seq, f.Tasks); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// CollectedBytes totals what was copied home for a cluster user's runs.
func (db *DB) CollectedBytes(ctx context.Context, username string) (int64, error) {
	var n int64
	err := db.read.QueryRowContext(ctx, `SELECT coalesce(sum(collected_bytes), 0) FROM runs WHERE username = ?`,
		username).Scan(&n)
	return n, err
}
