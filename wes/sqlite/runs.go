package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wesgate/wesgate/wes"
)

const runColumns = `seq, id, owner, username, state, request, name, attachments, created, started, ended,
	job_id, run_dir, cancel_requested, cancel_sent, exit_code, cmd, system_logs, outputs, partition, node, gone_since, account, submit_attempted`

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

type scanner interface{ Scan(...any) error }

func scanRun(row scanner) (*wes.Run, error) {
	var (
		r                                           wes.Run
		state, request, attachments, cmd, logs      string
		outputs, created, started, ended, goneSince string
		cancelRequested, cancelSent                 bool
		exitCode                                    sql.NullInt64
	)
	err := row.Scan(&r.Seq, &r.ID, &r.Owner, &r.Username, &state, &request, &r.Name, &attachments,
		&created, &started, &ended, &r.JobID, &r.RunDir, &cancelRequested, &cancelSent, &exitCode,
		&cmd, &logs, &outputs, &r.Partition, &r.Node, &goneSince, &r.Account, &r.SubmitAttempted)
	if err != nil {
		return nil, err
	}
	r.State = wes.State(state)
	r.CancelRequested, r.CancelSent = cancelRequested, cancelSent
	if exitCode.Valid {
		c := int(exitCode.Int64)
		r.ExitCode = &c
	}
	r.Outputs = json.RawMessage(outputs)
	var errs []error
	for _, f := range []struct {
		s string
		v any
	}{{request, &r.Request}, {attachments, &r.Attachments}, {cmd, &r.Cmd}, {logs, &r.SystemLogs}} {
		errs = append(errs, json.Unmarshal([]byte(f.s), f.v))
	}
	for _, f := range []struct {
		s string
		t *time.Time
	}{{created, &r.Created}, {started, &r.Started}, {ended, &r.Ended}, {goneSince, &r.GoneSince}} {
		var err error
		*f.t, err = parseTime(f.s)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("run %s: %w", r.ID, err)
	}
	return &r, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sqlite: cannot encode %T: %v", v, err)) // only plain types reach here
	}
	return string(b)
}

func nonNilList(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func exitValue(c *int) any {
	if c == nil {
		return nil
	}
	return *c
}

func tagsOf(r *wes.Run) map[string]string {
	if r.Request.Tags == nil {
		return map[string]string{}
	}
	return r.Request.Tags
}

// CreateRun stores a new run and its tags.
func (db *DB) CreateRun(ctx context.Context, r *wes.Run) error {
	return db.CreateRunWithin(ctx, r, wes.Quota{})
}

// insertRun inserts a new run and its tags and returns its seq.
func insertRun(ctx context.Context, tx *sql.Tx, r *wes.Run) (int64, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO runs (id, owner, username, state, request, tags, name, workflow_type,
		attachments, attachment_bytes, created, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Owner, r.Username, string(r.State), mustJSON(r.Request), mustJSON(tagsOf(r)), r.Name, r.Request.WorkflowType,
		mustJSON(nonNilList(r.Attachments)), r.AttachmentBytes, fmtTime(r.Created), string(r.Outputs))
	if err != nil {
		return 0, fmt.Errorf("insert run: %w", err)
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	for k, v := range r.Request.Tags {
		if _, err := tx.ExecContext(ctx, `INSERT INTO run_tags (run_seq, key, value) VALUES (?, ?, ?)`, seq, k, v); err != nil {
			return 0, fmt.Errorf("insert tag: %w", err)
		}
	}
	return seq, nil
}

// DeleteRun removes a run; its tags and tasks go with it.
func (db *DB) DeleteRun(ctx context.Context, id string) error {
	res, err := db.write.ExecContext(ctx, `DELETE FROM runs WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("delete run: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return wes.ErrNotFound
	}
	return nil
}

// ownerClause restricts a query to owner unless owner is "".
func ownerClause(owner string, args []any) (string, []any) {
	if owner == "" {
		return "", args
	}
	return " AND r.owner = ?", append(args, owner)
}

// GetRun returns a run; a run of another owner is wes.ErrNotFound.
func (db *DB) GetRun(ctx context.Context, id, owner string) (*wes.Run, error) {
	where, args := ownerClause(owner, []any{id})
	r, err := scanRun(db.read.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs r WHERE id = ?`+where, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, wes.ErrNotFound
	}
	return r, err
}

// GetState returns a run's state.
func (db *DB) GetState(ctx context.Context, id, owner string) (wes.State, error) {
	where, args := ownerClause(owner, []any{id})
	var st string
	err := db.read.QueryRowContext(ctx, `SELECT state FROM runs r WHERE id = ?`+where, args...).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", wes.ErrNotFound
	}
	return wes.State(st), err
}

// summaryColumns are what a list shows: ListRuns fills only these fields.
const summaryColumns = `r.seq, r.id, r.owner, r.username, r.state, r.tags, r.name, r.workflow_type, r.created, r.started, r.ended`

func scanSummary(row scanner) (*wes.Run, error) {
	var (
		r                       wes.Run
		state, tags, wtype      string
		created, started, ended string
	)
	if err := row.Scan(&r.Seq, &r.ID, &r.Owner, &r.Username, &state, &tags, &r.Name, &wtype,
		&created, &started, &ended); err != nil {
		return nil, err
	}
	r.State = wes.State(state)
	r.Request.WorkflowType = wtype
	var errs [4]error
	errs[0] = json.Unmarshal([]byte(tags), &r.Request.Tags)
	r.Created, errs[1] = parseTime(created)
	r.Started, errs[2] = parseTime(started)
	r.Ended, errs[3] = parseTime(ended)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("run %s: %w", r.ID, err)
	}
	return &r, nil
}

// ListRuns returns runs newest first, with their summary fields only:
// Seq, ID, Owner, Username, State, Name, Request.WorkflowType,
// Request.Tags, Created, Started and Ended.
func (db *DB) ListRuns(ctx context.Context, q wes.ListQuery) ([]*wes.Run, error) {
	var (
		conds []string
		args  []any
	)
	if q.Owner != "" {
		conds, args = append(conds, "r.owner = ?"), append(args, q.Owner)
	}
	if q.Username != "" {
		conds, args = append(conds, "r.username = ?"), append(args, q.Username)
	}
	if q.Before > 0 {
		conds, args = append(conds, "r.seq < ?"), append(args, q.Before)
	}
	if len(q.States) > 0 {
		conds = append(conds, "r.state IN ("+placeholders(len(q.States))+")")
		for _, s := range q.States {
			args = append(args, string(s))
		}
	}
	if q.TagKey != "" {
		conds = append(conds, "EXISTS (SELECT 1 FROM run_tags t WHERE t.run_seq = r.seq AND t.key = ? AND t.value = ?)")
		args = append(args, q.TagKey, q.TagValue)
	}
	cols, scan := summaryColumns, scanSummary
	if q.Brief {
		cols, scan = briefColumns, scanBrief
	}
	query := `SELECT ` + cols + ` FROM runs r`
	if len(conds) > 0 {
		query += " WHERE " + strings.Join(conds, " AND ")
	}
	query += " ORDER BY r.seq DESC LIMIT ?"
	args = append(args, q.Limit)
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []*wes.Run
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// briefColumns are what a WES RunSummary shows.
const briefColumns = `r.seq, r.id, r.state, r.tags, r.started, r.ended`

func scanBrief(row scanner) (*wes.Run, error) {
	var (
		r              wes.Run
		state, tags    string
		started, ended string
	)
	if err := row.Scan(&r.Seq, &r.ID, &state, &tags, &started, &ended); err != nil {
		return nil, err
	}
	r.State = wes.State(state)
	var errs [3]error
	errs[0] = json.Unmarshal([]byte(tags), &r.Request.Tags)
	r.Started, errs[1] = parseTime(started)
	r.Ended, errs[2] = parseTime(ended)
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("run %s: %w", r.ID, err)
	}
	return &r, nil
}

// CountStates counts runs by state.
func (db *DB) CountStates(ctx context.Context, owner string) (map[wes.State]int64, error) {
	query, args := `SELECT state, count(*) FROM runs GROUP BY state`, []any(nil)
	if owner != "" {
		query, args = `SELECT state, count(*) FROM runs WHERE owner = ? GROUP BY state`, []any{owner}
	}
	rows, err := db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[wes.State]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		counts[wes.State(st)] = n
	}
	return counts, rows.Err()
}

// activeStates are the states ActiveRuns selects.
var activeStates = []any{string(wes.Unknown), string(wes.Queued), string(wes.Initializing),
	string(wes.Running), string(wes.Paused), string(wes.Canceling)}

// ActiveRuns returns every run that has not ended, oldest first.
func (db *DB) ActiveRuns(ctx context.Context) ([]*wes.Run, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE state IN (`+
		placeholders(len(activeStates))+`) ORDER BY seq`, activeStates...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var runs []*wes.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, rows.Err()
}

// UpdateRun changes a run in one transaction.
func (db *DB) UpdateRun(ctx context.Context, id string, fn func(*wes.Run) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	r, err := scanRun(tx.QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return wes.ErrNotFound
	}
	if err != nil {
		return err
	}
	if err := fn(r); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE runs SET state = ?, started = ?, ended = ?, job_id = ?, run_dir = ?,
		cancel_requested = ?, cancel_sent = ?, exit_code = ?, cmd = ?, system_logs = ?, outputs = ?,
		partition = ?, node = ?, gone_since = ? WHERE seq = ?`,
		string(r.State), fmtTime(r.Started), fmtTime(r.Ended), r.JobID, r.RunDir, r.CancelRequested, r.CancelSent,
		exitValue(r.ExitCode), mustJSON(nonNilList(r.Cmd)), mustJSON(nonNilList(r.SystemLogs)), string(r.Outputs),
		r.Partition, r.Node, fmtTime(r.GoneSince), r.Seq)
	if err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	return tx.Commit()
}

// CreateRuns stores many runs in one transaction (imports, benchmarks).
func (db *DB) CreateRuns(ctx context.Context, runs []*wes.Run) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO runs (id, owner, username, state, request, tags, name, workflow_type,
		attachments, created, started, ended, exit_code, cmd, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	tag, err := tx.PrepareContext(ctx, `INSERT INTO run_tags (run_seq, key, value) VALUES (?, ?, ?)`)
	if err != nil {
		return err
	}
	defer tag.Close()
	for _, r := range runs {
		res, err := ins.ExecContext(ctx, r.ID, r.Owner, r.Username, string(r.State), mustJSON(r.Request), mustJSON(tagsOf(r)), r.Name,
			r.Request.WorkflowType, mustJSON(nonNilList(r.Attachments)), fmtTime(r.Created), fmtTime(r.Started),
			fmtTime(r.Ended), exitValue(r.ExitCode), mustJSON(nonNilList(r.Cmd)), string(r.Outputs))
		if err != nil {
			return fmt.Errorf("insert run: %w", err)
		}
		if r.Seq, err = res.LastInsertId(); err != nil {
			return err
		}
		for k, v := range r.Request.Tags {
			if _, err := tag.ExecContext(ctx, r.Seq, k, v); err != nil {
				return fmt.Errorf("insert tag: %w", err)
			}
		}
	}
	return tx.Commit()
}
