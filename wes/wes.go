// Package wes is the GA4GH Workflow Execution Service 1.1.0 vocabulary and its
// rules: run requests, run logs, states, and the Service that both the JSON API
// and the web UI call. It consumes a Store (durable runs) and a Scheduler (the
// batch system that executes them), both declared here.
package wes

import (
	"encoding/json"
	"time"
)

// State is a WES run state.
type State string

// The eleven WES states.
const (
	Unknown       State = "UNKNOWN"
	Queued        State = "QUEUED"
	Initializing  State = "INITIALIZING"
	Running       State = "RUNNING"
	Paused        State = "PAUSED"
	Complete      State = "COMPLETE"
	ExecutorError State = "EXECUTOR_ERROR"
	SystemError   State = "SYSTEM_ERROR"
	Canceled      State = "CANCELED"
	Canceling     State = "CANCELING"
	Preempted     State = "PREEMPTED"
)

// States lists every WES state in the order of the specification.
var States = []State{Unknown, Queued, Initializing, Running, Paused, Complete,
	ExecutorError, SystemError, Canceled, Canceling, Preempted}

// Terminal reports whether a run in state s will not change again.
func (s State) Terminal() bool {
	switch s {
	case Complete, ExecutorError, SystemError, Canceled, Preempted:
		return true
	}
	return false
}

// Valid reports whether s is one of the eleven states.
func (s State) Valid() bool {
	for _, v := range States {
		if v == s {
			return true
		}
	}
	return false
}

// TimeFormat is the WES time format, %Y-%m-%dT%H:%M:%SZ, always in UTC.
const TimeFormat = "2006-01-02T15:04:05Z"

// FormatTime formats t for WES; the zero time is "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(TimeFormat)
}

// RunRequest is a normalized, validated run request as stored and echoed.
type RunRequest struct {
	WorkflowParams           json.RawMessage   `json:"workflow_params"`
	WorkflowType             string            `json:"workflow_type"`
	WorkflowTypeVersion      string            `json:"workflow_type_version"`
	Tags                     map[string]string `json:"tags"`
	WorkflowEngineParameters map[string]string `json:"workflow_engine_parameters"`
	WorkflowEngine           string            `json:"workflow_engine"`
	WorkflowEngineVersion    string            `json:"workflow_engine_version"`
	WorkflowURL              string            `json:"workflow_url"`
}

// Log is the WES Log object for a run. It keeps every field (the project's
// contract, web/testdata/spec/README.md): the times are "" and ExitCode is
// -1 until they are known.
type Log struct {
	Name       string   `json:"name"`
	Cmd        []string `json:"cmd"`
	StartTime  string   `json:"start_time"`
	EndTime    string   `json:"end_time"`
	Stdout     string   `json:"stdout"`
	Stderr     string   `json:"stderr"`
	ExitCode   int      `json:"exit_code"`
	SystemLogs []string `json:"system_logs"`
}

// TaskLog is the WES TaskLog object: one step of a run. Like Log, it keeps
// every field: the times are "" and ExitCode is -1 until they are known.
type TaskLog struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Cmd        []string `json:"cmd"`
	StartTime  string   `json:"start_time"`
	EndTime    string   `json:"end_time"`
	Stdout     string   `json:"stdout"`
	Stderr     string   `json:"stderr"`
	ExitCode   int      `json:"exit_code"`
	SystemLogs []string `json:"system_logs"`
}

// RunLog is the WES RunLog object.
type RunLog struct {
	RunID       string          `json:"run_id"`
	Request     RunRequest      `json:"request"`
	State       State           `json:"state"`
	RunLog      Log             `json:"run_log"`
	TaskLogsURL string          `json:"task_logs_url"`
	TaskLogs    []TaskLog       `json:"task_logs"`
	Outputs     json.RawMessage `json:"outputs"`
}

// RunStatus is the WES RunStatus object.
type RunStatus struct {
	RunID string `json:"run_id"`
	State State  `json:"state"`
}

// RunSummary is the WES RunSummary object, as listed by ListRuns.
type RunSummary struct {
	RunID     string            `json:"run_id"`
	State     State             `json:"state"`
	StartTime string            `json:"start_time,omitempty"`
	EndTime   string            `json:"end_time,omitempty"`
	Tags      map[string]string `json:"tags"`
}

// RunList is one page of runs.
type RunList struct {
	Runs          []RunSummary `json:"runs"`
	NextPageToken string       `json:"next_page_token"`
}

// TaskList is one page of tasks.
type TaskList struct {
	TaskLogs      []TaskLog `json:"task_logs"`
	NextPageToken string    `json:"next_page_token"`
}

// ServiceType is the GA4GH service type.
type ServiceType struct {
	Group    string `json:"group"`
	Artifact string `json:"artifact"`
	Version  string `json:"version"`
}

// Organization names who runs the service.
type Organization struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// VersionList is the WES {"workflow_type_version": [...]} or
// {"workflow_engine_version": [...]} object.
type TypeVersions struct {
	WorkflowTypeVersion []string `json:"workflow_type_version"`
}

// EngineVersions lists the versions of one engine.
type EngineVersions struct {
	WorkflowEngineVersion []string `json:"workflow_engine_version"`
}

// DefaultParam is the WES DefaultWorkflowEngineParameter object.
type DefaultParam struct {
	Name         string `json:"name"`
	Type         string `json:"type"`
	DefaultValue string `json:"default_value"`
}

// ServiceInfo is the WES ServiceInfo object with the GA4GH service-info base.
type ServiceInfo struct {
	ID                           string                    `json:"id"`
	Name                         string                    `json:"name"`
	Type                         ServiceType               `json:"type"`
	Description                  string                    `json:"description,omitempty"`
	Organization                 Organization              `json:"organization"`
	ContactURL                   string                    `json:"contactUrl,omitempty"`
	DocumentationURL             string                    `json:"documentationUrl,omitempty"`
	CreatedAt                    string                    `json:"createdAt,omitempty"`
	UpdatedAt                    string                    `json:"updatedAt,omitempty"`
	Environment                  string                    `json:"environment,omitempty"`
	Version                      string                    `json:"version"`
	WorkflowTypeVersions         map[string]TypeVersions   `json:"workflow_type_versions"`
	SupportedWESVersions         []string                  `json:"supported_wes_versions"`
	SupportedFilesystemProtocols []string                  `json:"supported_filesystem_protocols"`
	WorkflowEngineVersions       map[string]EngineVersions `json:"workflow_engine_versions"`
	DefaultEngineParameters      []DefaultParam            `json:"default_workflow_engine_parameters"`
	SystemStateCounts            map[State]int64           `json:"system_state_counts"`
	AuthInstructionsURL          string                    `json:"auth_instructions_url"`
	Tags                         map[string]string         `json:"tags"`
}
