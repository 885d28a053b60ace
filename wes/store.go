package wes

import (
	"context"
	"encoding/json"
	"time"
)

// User is the identity a request acts for.
type User struct {
	// Owner identifies the person across logins: issuer and subject.
	Owner string
	// Username is the person's account on the cluster.
	Username string
	// Display is a name to show ("" falls back to Username).
	Display string
	// Admin users see and cancel every run.
	Admin bool
}

// Run is one workflow run as the store keeps it.
type Run struct {
	Seq             int64 // insertion order; the list is newest-first by Seq
	ID              string
	Owner           string
	Username        string
	State           State
	Request         RunRequest
	Name            string
	Attachments     []string // attachment paths, relative to work/
	AttachmentBytes int64    // their size (written when the run is stored; not read back)
	Created         time.Time
	Started         time.Time
	Ended           time.Time
	JobID           string // the scheduler's job id, once submitted
	Account         string // the cluster account of the run's job, once submitted
	SubmitAttempted bool   // a submission may have reached the batch system
	RunDir          string // where the run lives on the execution side, once submitted
	CancelRequested bool
	CancelSent      bool
	ExitCode        *int
	Cmd             []string
	SystemLogs      []string
	Outputs         json.RawMessage // "{}" until known; file locations are stored relative, see outputRef
	Partition       string
	Node            string
	GoneSince       time.Time // first time the scheduler no longer knew the job
}

// Task is one step of a run.
type Task struct {
	ID         string
	Name       string
	Cmd        []string
	Start      time.Time
	End        time.Time
	ExitCode   *int
	SystemLogs []string
}

// Sample is the cluster queue at one moment.
type Sample struct {
	At      time.Time
	Pending int
	Running int
}

// UserCount is one cluster user's runs by state.
type UserCount struct {
	Username string
	States   map[State]int64
	Total    int64
}

// ListQuery selects a page of runs.
type ListQuery struct {
	Owner    string  // "" for every owner (admins)
	Username string  // only runs of this cluster user ("" for all)
	States   []State // any of these; empty for all
	TagKey   string  // with TagValue: only runs tagged so
	TagValue string
	Before   int64 // only runs with Seq below this (0: from the newest)
	Limit    int
	// Brief fills only what a WES RunSummary needs: Seq, ID, State,
	// Request.Tags, Started and Ended.
	Brief bool
}

// Store keeps runs durably. Every method is one transaction.
type Store interface {
	// CreateRun stores a new run.
	CreateRun(ctx context.Context, r *Run) error
	// CreateRunWithin stores a new run unless its owner's runs would then
	// go over q (see CheckQuota): then it returns a *LimitError and stores
	// nothing. The count and the insert are one transaction.
	CreateRunWithin(ctx context.Context, r *Run, q Quota) error
	// DeleteRun removes a run and its tasks (ErrNotFound when there is none).
	DeleteRun(ctx context.Context, id string) error
	// GetRun returns the run with id, if owner is "" or owns it; else ErrNotFound.
	GetRun(ctx context.Context, id, owner string) (*Run, error)
	// GetState returns the run's state, with the same rule as GetRun.
	GetState(ctx context.Context, id, owner string) (State, error)
	// ListRuns returns runs newest first, at most q.Limit of them, with the
	// summary fields filled: Seq, ID, Owner, Username, State, Name,
	// Request.WorkflowType, Request.Tags, Created, Started, Ended.
	ListRuns(ctx context.Context, q ListQuery) ([]*Run, error)
	// CountStates counts runs by state, of one owner or ("") of everyone.
	CountStates(ctx context.Context, owner string) (map[State]int64, error)
	// ActiveRuns returns every run whose state is not terminal.
	ActiveRuns(ctx context.Context) ([]*Run, error)
	// UpdateRun reads the run, lets fn change it, and writes it back, in one
	// transaction. ErrNotFound when there is no such run.
	UpdateRun(ctx context.Context, id string, fn func(*Run) error) error
	// ReplaceTasks sets the tasks of a run.
	ReplaceTasks(ctx context.Context, runID string, tasks []Task) error
	// ListTasks returns tasks of a run owned by owner (or anyone's, for ""),
	// starting after position after, at most limit; ErrNotFound for no run.
	ListTasks(ctx context.Context, runID, owner string, after, limit int) ([]Task, error)
	// GetTask returns one task; ErrNotFound when the run or task is missing.
	GetTask(ctx context.Context, runID, owner, taskID string) (*Task, error)
	// AddSample records a queue sample; Samples returns those since a moment.
	AddSample(ctx context.Context, s Sample) error
	Samples(ctx context.Context, since time.Time) ([]Sample, error)
	// CountByUser counts each cluster user's runs by state.
	CountByUser(ctx context.Context) ([]UserCount, error)
	// Secret returns a random key of 32 bytes kept under name, made on first use.
	Secret(ctx context.Context, name string) ([]byte, error)
}

// ActiveRun is what the run pipeline reads of an active run on every tick:
// small columns only, never the request.
type ActiveRun struct {
	ID              string
	Username        string
	Account         string // "" until submitted
	State           State
	JobID           string
	RunDir          string
	SubmitAttempted bool
	CancelRequested bool
	CancelSent      bool
	CancelSentAt    time.Time
	GoneSince       time.Time
	Started         time.Time
	Node            string
	Partition       string
}

// JobUpdate is what a poll learned about an active run's job.
type JobUpdate struct {
	ID        string
	State     State
	Started   time.Time // zero: unchanged
	Node      string
	Partition string
	GoneSince time.Time // zero clears it
}

// Submission records where and how a run was handed to the batch system.
type Submission struct {
	ID      string
	Account string
	RunDir  string
	Cmd     []string
	JobID   string // "" while the submission is being attempted
}

// Final is a run's settlement, written in one transaction with its tasks.
type Final struct {
	State          State
	ExitCode       *int
	Started        time.Time // used when the run has no start yet
	Ended          time.Time
	Logs           []string // appended to system_logs
	Outputs        json.RawMessage
	Node           string
	Partition      string
	CollectedBytes int64
	Tasks          []Task // nil keeps the run's tasks
}

// PipelineStore is what the run pipeline needs of the store beyond Store.
// Every method is one transaction.
type PipelineStore interface {
	Store
	// ActiveJobs returns every run that has not ended, oldest first, with
	// the columns of ActiveRun only.
	ActiveJobs(ctx context.Context) ([]ActiveRun, error)
	// BeginSubmit records the account of runs about to be submitted, and
	// marks them attempted.
	BeginSubmit(ctx context.Context, subs []Submission) error
	// RecordJobs records the job ids, accounts, run directories and
	// commands of submitted runs.
	RecordJobs(ctx context.Context, subs []Submission) error
	// UpdateJobs applies poll results to runs that are still active; a run
	// whose cancel was requested stays CANCELING.
	UpdateJobs(ctx context.Context, ups []JobUpdate) error
	// MarkCancelSent records that a cancel was sent to the runs' jobs at at.
	MarkCancelSent(ctx context.Context, ids []string, at time.Time) error
	// SettleRun writes a run's final state, logs, outputs and tasks at once.
	// It returns ErrNoChange when the run has already ended.
	SettleRun(ctx context.Context, id string, f Final) error
	// CollectedBytes totals the bytes collected for a cluster user's runs.
	CollectedBytes(ctx context.Context, username string) (int64, error)
}
