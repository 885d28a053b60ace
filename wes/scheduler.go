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
	// Submit stages job (the attachments from localDir, and the script) and
	// submits it, returning the job id. When a job named job.Name already
	// exists it returns that job's id instead of submitting twice.
	Submit(ctx context.Context, job scheduler.Job, localDir string) (string, error)
	// Status reports the jobs of user with the given ids. A job the batch
	// system no longer knows is absent from the map.
	Status(ctx context.Context, user string, ids []string) (map[string]scheduler.JobStatus, error)
	// Cancel asks the batch system to stop a job; the wrapper gets SIGTERM
	// first so that it records the end.
	Cancel(ctx context.Context, user, jobID string) error
	// Open opens a file of a run directory on the execution side for reading.
	Open(ctx context.Context, user, path string) (io.ReadSeekCloser, error)
	// Queue pictures the whole cluster's queue and nodes (cached briefly).
	Queue(ctx context.Context) (scheduler.Queue, error)
	// Partitions lists the cluster's partitions (nil when it has none).
	Partitions(ctx context.Context) ([]string, error)
	// Health reports the executor's connections to the cluster.
	Health() []scheduler.Health
	// Collect copies what a finished run left (logs, records, outputs) from
	// its run directory into localDir. Executors that run in localDir do nothing.
	Collect(ctx context.Context, user, runDir, localDir string) error
}
