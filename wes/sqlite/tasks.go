package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wesgate/wesgate/wes"
)

// ReplaceTasks sets the tasks of a run, in order.
func (db *DB) ReplaceTasks(ctx context.Context, runID string, tasks []wes.Task) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var seq int64
	err = tx.QueryRowContext(ctx, `SELECT seq FROM runs WHERE id = ?`, runID).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return wes.ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := replaceTasks(ctx, tx, seq, tasks); err != nil {
		return err
	}
	return tx.Commit()
}

// replaceTasks sets the tasks of the run with seq inside tx.
func replaceTasks(ctx context.Context, tx *sql.Tx, seq int64, tasks []wes.Task) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM tasks WHERE run_seq = ?`, seq); err != nil {
		return err
	}
	for i, t := range tasks {
		_, err := tx.ExecContext(ctx, `INSERT INTO tasks (run_seq, position, id, name, cmd, started, ended, exit_code,
			system_logs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, seq, i+1, t.ID, t.Name, mustJSON(nonNilList(t.Cmd)),
			fmtTime(t.Start), fmtTime(t.End), exitValue(t.ExitCode), mustJSON(nonNilList(t.SystemLogs)))
		if err != nil {
			return fmt.Errorf("insert task: %w", err)
		}
	}
	return nil
}

const taskColumns = `t.id, t.name, t.cmd, t.started, t.ended, t.exit_code, t.system_logs`

func scanTask(row scanner) (wes.Task, error) {
	var (
		t                         wes.Task
		cmd, started, ended, logs string
		exitCode                  sql.NullInt64
	)
	if err := row.Scan(&t.ID, &t.Name, &cmd, &started, &ended, &exitCode, &logs); err != nil {
		return t, err
	}
	if exitCode.Valid {
		c := int(exitCode.Int64)
		t.ExitCode = &c
	}
	var errs [4]error
	errs[0] = json.Unmarshal([]byte(cmd), &t.Cmd)
	errs[1] = json.Unmarshal([]byte(logs), &t.SystemLogs)
	t.Start, errs[2] = parseTime(started)
	t.End, errs[3] = parseTime(ended)
	return t, errors.Join(errs[:]...)
}

// runSeq finds a run visible to owner; wes.ErrNotFound otherwise.
func (db *DB) runSeq(ctx context.Context, runID, owner string) (int64, error) {
	where, args := ownerClause(owner, []any{runID})
	var seq int64
	err := db.read.QueryRowContext(ctx, `SELECT seq FROM runs r WHERE id = ?`+where, args...).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, wes.ErrNotFound
	}
	return seq, err
}

// ListTasks returns the tasks of a run after position after.
func (db *DB) ListTasks(ctx context.Context, runID, owner string, after, limit int) ([]wes.Task, error) {
	seq, err := db.runSeq(ctx, runID, owner)
	if err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT `+taskColumns+` FROM tasks t
		WHERE t.run_seq = ? AND t.position > ? ORDER BY t.position LIMIT ?`, seq, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	tasks := []wes.Task{}
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, t)
	}
	return tasks, rows.Err()
}

// GetTask returns one task of a run.
func (db *DB) GetTask(ctx context.Context, runID, owner, taskID string) (*wes.Task, error) {
	where, args := ownerClause(owner, []any{runID, taskID})
	t, err := scanTask(db.read.QueryRowContext(ctx, `SELECT `+taskColumns+` FROM tasks t
		JOIN runs r ON r.seq = t.run_seq WHERE r.id = ? AND t.id = ?`+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wes.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &t, nil
}
