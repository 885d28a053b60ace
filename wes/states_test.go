package wes

import (
	"strings"
	"testing"

	"github.com/wesgate/wesgate/scheduler"
)

func ip(n int) *int { return &n }

func TestMapJobState(t *testing.T) {
	type in struct {
		state, reason, by string
		exit              *int // the job's exit code, when the batch system knows it
		rc                *int // the wrapper's record of the engine's exit code
		started, cancel   bool
	}
	tests := []struct {
		name   string
		in     in
		want   State
		exit   *int   // nil: no exit code
		log    string // a substring of the system log line ("" for none)
		doomed bool
	}{
		// Waiting.
		{"pending", in{state: scheduler.StatePending, reason: "Priority"}, Queued, nil, "", false},
		{"pending no reason", in{state: scheduler.StatePending}, Queued, nil, "", false},
		{"pending cancel requested", in{state: scheduler.StatePending, reason: "Resources", cancel: true}, Canceling, nil, "", false},
		{"held by user", in{state: scheduler.StatePending, reason: "JobHeldUser"}, Paused, nil, "", false},
		{"held by admin", in{state: scheduler.StatePending, reason: "JobHeldAdmin"}, Paused, nil, "", false},
		{"held cancel requested", in{state: scheduler.StatePending, reason: "JobHeldAdmin", cancel: true}, Canceling, nil, "", false},
		{"bad partition", in{state: scheduler.StatePending, reason: "PartitionConfig"}, SystemError, ip(-1), "PartitionConfig", true},
		{"bad account", in{state: scheduler.StatePending, reason: "InvalidAccount"}, SystemError, ip(-1), "InvalidAccount", true},
		{"bad qos", in{state: scheduler.StatePending, reason: "InvalidQOS"}, SystemError, ip(-1), "InvalidQOS", true},
		{"bad constraints", in{state: scheduler.StatePending, reason: "BadConstraints"}, SystemError, ip(-1), "BadConstraints", true},
		// Limits that pass with time: the job waits, it is not doomed.
		{"qos job limit", in{state: scheduler.StatePending, reason: "QOSJobLimit"}, Queued, nil, "", false},
		{"partition node limit", in{state: scheduler.StatePending, reason: "PartitionNodeLimit"}, Queued, nil, "", false},
		{"assoc limit", in{state: scheduler.StatePending, reason: "AssocGrpCpuLimit"}, Queued, nil, "", false},
		{"configuring", in{state: scheduler.StateConfiguring}, Initializing, nil, "", false},
		{"configuring cancel requested", in{state: scheduler.StateConfiguring, cancel: true}, Canceling, nil, "", false},
		{"running", in{state: scheduler.StateRunning, started: true}, Running, nil, "", false},
		{"completing", in{state: scheduler.StateCompleting, started: true}, Running, nil, "", false},
		{"running cancel requested", in{state: scheduler.StateRunning, cancel: true}, Canceling, nil, "", false},
		{"completing cancel requested", in{state: scheduler.StateCompleting, cancel: true}, Canceling, nil, "", false},
		{"suspended", in{state: scheduler.StateSuspended}, Paused, nil, "", false},
		{"stopped", in{state: scheduler.StateStopped}, Paused, nil, "", false},
		{"suspended cancel requested", in{state: scheduler.StateSuspended, cancel: true}, Canceling, nil, "", false},
		{"requeued", in{state: scheduler.StateRequeued}, Queued, nil, "", false},

		// Ended: the job completed, but only the engine's own 0 is success.
		{"completed rc 0", in{state: scheduler.StateCompleted, exit: ip(0), rc: ip(0), started: true}, Complete, ip(0), "", false},
		{"completed rc 3", in{state: scheduler.StateCompleted, exit: ip(0), rc: ip(3), started: true}, ExecutorError, ip(3), "exited with code 3", false},
		{"completed without rc", in{state: scheduler.StateCompleted, exit: ip(0), started: true}, SystemError, ip(0), "not recorded", false},
		{"completed rc 0 cancel too late", in{state: scheduler.StateCompleted, rc: ip(0), started: true, cancel: true}, Complete, ip(0), "", false},
		{"completed rc 143 cancelled", in{state: scheduler.StateCompleted, rc: ip(143), started: true, cancel: true}, Canceled, ip(143), "", false},
		{"failed engine ran", in{state: scheduler.StateFailed, exit: ip(2), rc: ip(2), started: true}, ExecutorError, ip(2), "exited with code 2", false},
		{"failed engine rc wins", in{state: scheduler.StateFailed, exit: ip(1), rc: ip(5), started: true}, ExecutorError, ip(5), "code 5", false},
		{"failed started no rc", in{state: scheduler.StateFailed, exit: ip(137), started: true}, ExecutorError, ip(137), "code 137", false},
		{"failed before engine", in{state: scheduler.StateFailed, exit: ip(1)}, SystemError, ip(1), "before the workflow engine started", false},
		{"failed before engine no exit", in{state: scheduler.StateFailed}, SystemError, ip(-1), "before the workflow engine started", false},
		{"failed cancel requested", in{state: scheduler.StateFailed, exit: ip(143), rc: ip(143), started: true, cancel: true}, Canceled, ip(143), "", false},
		{"timeout", in{state: scheduler.StateTimeout, exit: ip(0), started: true}, ExecutorError, ip(0), "TIMEOUT", false},
		{"timeout rc", in{state: scheduler.StateTimeout, rc: ip(143), started: true}, ExecutorError, ip(143), "TIMEOUT", false},
		{"deadline", in{state: scheduler.StateDeadline}, ExecutorError, ip(-1), "DEADLINE", false},
		{"out of memory", in{state: scheduler.StateOutOfMemory, exit: ip(0), started: true}, ExecutorError, ip(0), "OUT_OF_MEMORY", false},
		{"node fail", in{state: scheduler.StateNodeFail, started: true}, SystemError, ip(-1), "NODE_FAIL", false},
		{"boot fail", in{state: scheduler.StateBootFail}, SystemError, ip(-1), "BOOT_FAIL", false},
		{"preempted", in{state: scheduler.StatePreempted, exit: ip(0), started: true}, Preempted, ip(0), "preempted", false},
		{"cancelled as asked", in{state: scheduler.StateCancelled, rc: ip(143), started: true, cancel: true}, Canceled, ip(143), "", false},
		{"cancelled as asked before start", in{state: scheduler.StateCancelled, cancel: true}, Canceled, ip(-1), "", false},
		{"cancelled by someone", in{state: scheduler.StateCancelled, by: "1042", exit: ip(0), started: true}, SystemError, ip(0), "by 1042", false},
		{"cancelled by unknown", in{state: scheduler.StateCancelled}, SystemError, ip(-1), "outside wesgate", false},

		{"unknown state", in{state: "RESIZING"}, Unknown, nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := scheduler.JobStatus{ID: "42", State: tt.in.state, Reason: tt.in.reason, CancelledBy: tt.in.by,
				// The executor classifies reasons (see the slurm package's tests).
				Held:   strings.HasPrefix(tt.in.reason, "JobHeld"),
				Doomed: tt.doomed}
			if tt.in.exit != nil {
				st.ExitCode, st.HasExit = *tt.in.exit, true
			}
			got := MapJobState(st, tt.in.rc, tt.in.started, tt.in.cancel)
			if got.State != tt.want {
				t.Errorf("state %s, want %s", got.State, tt.want)
			}
			switch {
			case tt.exit == nil && got.ExitCode != nil:
				t.Errorf("exit code %d, want none", *got.ExitCode)
			case tt.exit != nil && got.ExitCode == nil:
				t.Errorf("no exit code, want %d", *tt.exit)
			case tt.exit != nil && *got.ExitCode != *tt.exit:
				t.Errorf("exit code %d, want %d", *got.ExitCode, *tt.exit)
			}
			if tt.log == "" && got.Log != "" {
				t.Errorf("log %q, want none", got.Log)
			}
			if !strings.Contains(got.Log, tt.log) {
				t.Errorf("log %q, want it to mention %q", got.Log, tt.log)
			}
			if got.Doomed != tt.doomed {
				t.Errorf("doomed %v, want %v", got.Doomed, tt.doomed)
			}
			// Every final answer carries an exit code; no running one does.
			if got.State.Terminal() != (got.ExitCode != nil) {
				t.Errorf("state %s with exit code %v", got.State, got.ExitCode)
			}
			// Failures say why.
			if (got.State == SystemError || got.State == ExecutorError) && got.Log == "" {
				t.Errorf("%s without a log line", got.State)
			}
		})
	}
}

func TestMapJobStateCoversEveryTerminalJobState(t *testing.T) {
	for _, s := range []string{scheduler.StateCompleted, scheduler.StateFailed, scheduler.StateCancelled,
		scheduler.StateTimeout, scheduler.StateDeadline, scheduler.StateOutOfMemory, scheduler.StateNodeFail,
		scheduler.StateBootFail, scheduler.StatePreempted} {
		st := scheduler.JobStatus{State: s}
		if !st.Terminal() {
			t.Errorf("%s is not terminal for the scheduler", s)
		}
		for _, cancel := range []bool{false, true} {
			if got := MapJobState(st, nil, false, cancel); !got.State.Terminal() || got.ExitCode == nil {
				t.Errorf("%s (cancel %v) maps to %s with exit code %v", s, cancel, got.State, got.ExitCode)
			}
		}
	}
}
