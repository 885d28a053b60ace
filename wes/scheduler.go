package wes

import (
	"context"
	"io"

	"github.com/wesgate/wesgate/scheduler"
)

// Scheduler runs jobs on a batch system: the local executor or Slurm.
type Scheduler interface {
	// Name is a short name for logs and pages ("local", "slurm").
	Name() string
	// Account is the cluster account whose jobs carry the runs of the
	// cluster user user (a service account, or the user). Every other
	// method takes an account.
	Account(user string) string
	// Options lists the batch-system options a run may set in
	// workflow_engine_parameters (Slurm's --partition, --time, ...).
	Options() []scheduler.Option
	// CheckOption checks one option value; the error says what is wrong.
	CheckOption(ctx context.Context, name, value string) error
	// Directives turns checked option values into batch-script directives.
	Directives(values map[string]string) []string
	// RunDir is the absolute directory where run runID of account lives on
	// the execution side. It is made only of characters wesgate chose.
	RunDir(account, runID string) string
	// SubmitBatch stages jobs of one account (the attachments from each
	// job's LocalDir, and its script) and submits them, with a fixed number
	// of remote commands whatever the number of jobs. results[i] belongs to
	// jobs[i]: a job id, a *scheduler.RejectedError (refused for good), or
	// another error (try again later). A job marked Retry whose name the
	// batch system already knows is not submitted again: its id is returned.
	SubmitBatch(ctx context.Context, account string, jobs []scheduler.Job) []scheduler.Submitted
	// Status reports the jobs of user with the given ids. A job the batch
	// system no longer knows is absent from the map.
	Status(ctx context.Context, user string, ids []string) (map[string]scheduler.JobStatus, error)
	// CancelBatch stops jobs of one account with one remote command: the
	// jobs in term get SIGTERM (pending ones are cancelled outright), so the
	// wrapper records the end; those in kill are cancelled outright.
	CancelBatch(ctx context.Context, account string, term, kill []string) error
	// Open opens a regular file of a run directory on the execution side for
	// reading; anything else (a FIFO, a symlink) is fs.ErrNotExist.
	Open(ctx context.Context, user, path string) (io.ReadSeekCloser, error)
	// Queue pictures the whole cluster's queue and nodes (cached briefly).
	Queue(ctx context.Context) (scheduler.Queue, error)
	// Partitions lists the cluster's partitions (nil when it has none).
	Partitions(ctx context.Context) ([]string, error)
	// Health reports the executor's connections to the cluster.
	Health() []scheduler.Health
	// Collect copies what a finished run left (logs, records, outputs) from
	// its run directory into localDir, regular files only, within lim.
	// Executors that run in localDir copy nothing.
	Collect(ctx context.Context, account, runDir, localDir string, lim scheduler.CollectLimits) (scheduler.Collected, error)
}
