// Package scheduler holds the vocabulary wesgate uses to talk to batch systems:
// jobs, their Slurm-style states and steps, and the one batch-script generator
// that every executor runs. It speaks Slurm, not WES: the wes package maps
// these states to WES states.
package scheduler

import (
	"time"
)

// Job is one workflow run handed to an executor.
type Job struct {
	// Name is the job name; it carries the run id so that a job can be found
	// again by name after a crash between submission and recording its id.
	Name string
	// User is the cluster account the job runs as ("" means the executor's own).
	User string
	// Dir is the run directory on the execution side. It holds work/ (the
	// attachments, the engine's working directory), the batch script, the
	// engine's stdout and stderr, and the wrapper's .wesgate/ records.
	Dir string
	// Script is the batch script, as made by Script.
	Script []byte
	// LocalDir is the run's directory on the wesgate host; its work/ holds
	// the attachments to stage.
	LocalDir string
	// Retry says an earlier attempt may have reached the batch system: the
	// executor looks for a job called Name before submitting.
	Retry bool
}

// Submitted is the outcome of submitting one job of a batch: a job id, or
// an error (a *RejectedError when the batch system refused the job for good).
type Submitted struct {
	JobID string
	Err   error
}

// CollectLimits bound what is copied home from one run directory.
type CollectLimits struct {
	MaxBytes int64 // bytes of file content
	MaxFiles int   // files and directories
	// Skip lists paths relative to the run directory that are home already
	// (the staged attachments, as work/NAME).
	Skip []string
}

// Collected says what a collection copied and what it refused.
type Collected struct {
	Bytes int64
	Files int
	// Problems are user-safe lines for the run's system_logs: files that
	// were not regular, limits that were reached.
	Problems []string
	// Refused names the entries (relative to the run directory) that were
	// not copied because they are not regular files or directories.
	Refused []string
}

// Files the batch-script wrapper and the executors use inside a run directory.
const (
	ScriptFile  = "job.sh"
	StdoutFile  = "stdout.txt"
	StderrFile  = "stderr.txt"
	WorkDir     = "work"
	OutputsDir  = "outputs"
	RecordDir   = ".wesgate"
	RCFile      = ".wesgate/rc"
	StartedFile = ".wesgate/started"
	EndedFile   = ".wesgate/ended"
)

// Job states, named as Slurm names them (sacct/squeue). Executors that are not
// Slurm report the nearest Slurm state.
const (
	StatePending     = "PENDING"
	StateConfiguring = "CONFIGURING"
	StateRunning     = "RUNNING"
	StateCompleting  = "COMPLETING"
	StateCompleted   = "COMPLETED"
	StateFailed      = "FAILED"
	StateCancelled   = "CANCELLED"
	StateTimeout     = "TIMEOUT"
	StateDeadline    = "DEADLINE"
	StateOutOfMemory = "OUT_OF_MEMORY"
	StateNodeFail    = "NODE_FAIL"
	StateBootFail    = "BOOT_FAIL"
	StatePreempted   = "PREEMPTED"
	StateSuspended   = "SUSPENDED"
	StateStopped     = "STOPPED"
	StateRequeued    = "REQUEUED"
)

// JobStatus is what an executor knows about one job.
type JobStatus struct {
	ID    string
	State string // one of the State constants
	// Reason is Slurm's pending reason or a short executor note.
	Reason string
	// Held says the job waits for a release (a user or admin hold); Doomed
	// that it waits for something no wait will bring (its partition,
	// account or QOS refuses it). The executor classifies its own reasons.
	Held   bool
	Doomed bool
	// CancelledBy is the uid or name that cancelled the job, when known.
	CancelledBy string
	// ExitCode is the job's exit code; a job ended by a signal reports 128+signal.
	ExitCode  int
	HasExit   bool
	Start     time.Time
	End       time.Time
	Partition string
	Node      string
	Steps     []Step
}

// Terminal reports whether the job has stopped for good.
func (s JobStatus) Terminal() bool {
	switch s.State {
	case StateCompleted, StateFailed, StateCancelled, StateTimeout, StateDeadline,
		StateOutOfMemory, StateNodeFail, StateBootFail, StatePreempted:
		return true
	}
	return false
}

// Step is one step of a job (Slurm's batch step and srun steps).
type Step struct {
	ID       string
	Name     string
	State    string
	ExitCode int
	HasExit  bool
	Start    time.Time
	End      time.Time
}

// RejectedError is a submission the batch system refused for good (for
// example an unknown partition). Msg is safe to show the run's owner.
type RejectedError struct {
	Msg string
}

func (e *RejectedError) Error() string { return "job rejected: " + e.Msg }

// Option is a batch-system option that a run may set (Slurm's --partition,
// --time, ...). Clients send it in workflow_engine_parameters.
type Option struct {
	Name    string // "--partition"
	Type    string // "string" or "int", as WES parameter types
	Default string
	Help    string
}

// QueueCount is how many jobs of a partition are in a state.
type QueueCount struct {
	Partition string
	State     string
	Count     int
}

// NodeState is one node as sinfo reports it.
type NodeState struct {
	Name       string
	State      string
	Partitions string
}

// Queue is a picture of the whole cluster's queue and nodes.
type Queue struct {
	At     time.Time
	Counts []QueueCount
	Nodes  []NodeState
}

// Pending and Running total the picture's jobs.
func (q Queue) Pending() int { return q.sum(StatePending) }

// Running counts running jobs.
func (q Queue) Running() int { return q.sum(StateRunning) }

func (q Queue) sum(state string) int {
	n := 0
	for _, c := range q.Counts {
		if c.State == state {
			n += c.Count
		}
	}
	return n
}

// Health is the state of the connection of one cluster account, for admins.
type Health struct {
	Account   string
	Connected bool
	LastOK    time.Time
	LastError string
	HostKey   bool // the last error was a host key mismatch
}
