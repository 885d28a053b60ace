package wes

import (
	"fmt"

	"github.com/wesgate/wesgate/scheduler"
)

// Settlement is what the monitor learns from one job status.
type Settlement struct {
	State State
	// ExitCode is set when the run has ended.
	ExitCode *int
	// Log is a line for system_logs ("" for none).
	Log string
	// Doomed marks a pending job that can never start: it is cancelled.
	Doomed bool
}

// MapJobState maps a batch-system job status to a WES state. rc is the
// engine's exit code from the wrapper's rc file (nil when it wrote none),
// started says whether the wrapper started the engine (it writes its started
// record just before), and cancelRequested whether
// the owner (or an admin) asked wesgate to cancel the run.
func MapJobState(st scheduler.JobStatus, rc *int, started, cancelRequested bool) Settlement {
	active := func(s State) Settlement {
		if cancelRequested {
			s = Canceling
		}
		return Settlement{State: s}
	}
	switch st.State {
	case scheduler.StatePending:
		switch {
		case st.Held:
			return active(Paused)
		case st.Doomed:
			return Settlement{State: SystemError, ExitCode: exitCode(st, rc),
				Log: fmt.Sprintf("the job can never start: Slurm reason %s", st.Reason), Doomed: true}
		}
		return active(Queued)
	case scheduler.StateConfiguring:
		return active(Initializing)
	case scheduler.StateRunning, scheduler.StateCompleting:
		return active(Running)
	case scheduler.StateSuspended, scheduler.StateStopped:
		return active(Paused)
	case scheduler.StateRequeued:
		return active(Queued)
	case scheduler.StateCompleted:
		if rc != nil && *rc == 0 {
			return Settlement{State: Complete, ExitCode: rc}
		}
		if rc == nil {
			return Settlement{State: SystemError, ExitCode: exitCode(st, rc),
				Log: "the job completed but the engine's exit code was not recorded"}
		}
		if cancelRequested {
			return Settlement{State: Canceled, ExitCode: rc}
		}
		return Settlement{State: ExecutorError, ExitCode: rc,
			Log: fmt.Sprintf("the workflow engine exited with code %d", *rc)}
	case scheduler.StateFailed:
		if cancelRequested {
			return Settlement{State: Canceled, ExitCode: exitCode(st, rc)}
		}
		if started {
			code := exitCode(st, rc)
			return Settlement{State: ExecutorError, ExitCode: code,
				Log: fmt.Sprintf("the workflow engine exited with code %d", *code)}
		}
		return Settlement{State: SystemError, ExitCode: exitCode(st, rc),
			Log: "the job failed before the workflow engine started"}
	case scheduler.StateTimeout, scheduler.StateDeadline, scheduler.StateOutOfMemory:
		return Settlement{State: ExecutorError, ExitCode: exitCode(st, rc),
			Log: fmt.Sprintf("the job ended with Slurm state %s", st.State)}
	case scheduler.StateNodeFail, scheduler.StateBootFail:
		return Settlement{State: SystemError, ExitCode: exitCode(st, rc),
			Log: fmt.Sprintf("the job ended with Slurm state %s", st.State)}
	case scheduler.StatePreempted:
		return Settlement{State: Preempted, ExitCode: exitCode(st, rc),
			Log: "the job was preempted by the cluster"}
	case scheduler.StateCancelled:
		if cancelRequested {
			return Settlement{State: Canceled, ExitCode: exitCode(st, rc)}
		}
		who := st.CancelledBy
		if who == "" {
			who = "someone other than wesgate"
		}
		return Settlement{State: SystemError, ExitCode: exitCode(st, rc),
			Log: fmt.Sprintf("the job was cancelled outside wesgate (by %s)", who)}
	}
	return active(Unknown)
}

// exitCode prefers the engine's own exit code, then the job's, then -1
// (the engine never ran, so there is no exit code to report).
func exitCode(st scheduler.JobStatus, rc *int) *int {
	if rc != nil {
		return rc
	}
	if st.HasExit {
		c := st.ExitCode
		return &c
	}
	c := -1
	return &c
}
