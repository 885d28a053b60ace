package wes

// JobName is the batch job name of a run: it carries the run id, so that a
// job submitted just before a crash is found again by name.
func JobName(runID string) string { return "wes-" + runID }

// WorkflowArg is the workflow as the engine gets it: relative to work/, or
// the absolute path of an allowed file: URL.
func (r *Run) WorkflowArg() string { return workflowArg(r) }

// Wakeups signals that a run was created or a cancel requested: the run
// pipeline looks at the active runs at once.
func (s *Service) Wakeups() <-chan struct{} { return s.wake }

// Wake asks the run pipeline to look at the active runs now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
