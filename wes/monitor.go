package wes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// JobName is the batch job name of a run: it carries the run id, so that a
// job submitted just before a crash is found again by name.
func JobName(runID string) string { return "wes-" + runID }

// Wake asks the monitor to look at the active runs now.
func (s *Service) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run submits queued runs and follows active ones until ctx is done. Each
// tick asks the scheduler once per cluster user for all of that user's jobs.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.sample(ctx, s.cfg.SampleInterval) })
	t := time.NewTicker(s.cfg.PollInterval)
	defer t.Stop()
	for {
		s.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.wake:
		}
	}
}

// Tick does one round of submitting and polling.
func (s *Service) Tick(ctx context.Context) {
	start := time.Now()
	runs, err := s.store.ActiveRuns(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("monitor: active runs", "err", err)
		}
		return
	}
	defer func() {
		took := time.Since(start)
		s.metrics.pollDuration.Observe(took.Seconds())
		s.log.Debug("monitor: tick", "active", len(runs), "took", took.Round(time.Microsecond))
	}()
	byUser := map[string][]*Run{}
	var users []string
	for _, r := range runs {
		if ctx.Err() != nil {
			return
		}
		if r.JobID == "" {
			if r.CancelRequested {
				code := -1
				s.finish(ctx, r, Settlement{State: Canceled, ExitCode: &code, Log: "cancelled before it was submitted"}, nil)
				continue
			}
			s.submit(ctx, r)
			continue
		}
		acct := s.sched.Account(r.Username)
		if _, seen := byUser[acct]; !seen {
			users = append(users, acct)
		}
		byUser[acct] = append(byUser[acct], r)
	}
	s.keepPolls(users)
	for _, user := range users {
		rs := byUser[user]
		ids := make([]string, len(rs))
		for i, r := range rs {
			ids[i] = r.JobID
		}
		statuses, err := s.sched.Status(ctx, user, ids)
		if ctx.Err() == nil {
			s.notePoll(user, err)
		}
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("monitor: job status", "account", user, "jobs", len(ids), "err", err)
			}
			continue
		}
		for _, r := range rs {
			st, ok := statuses[r.JobID]
			s.track(ctx, r, st, ok)
		}
	}
}

func (s *Service) engine(name string) *Engine {
	engines := s.Engines()
	for i := range engines {
		if engines[i].Name == name {
			return &engines[i]
		}
	}
	return nil
}

// submit hands a queued run to the scheduler.
func (s *Service) submit(ctx context.Context, r *Run) {
	fail := func(msg string) {
		code := -1
		s.finish(ctx, r, Settlement{State: SystemError, ExitCode: &code, Log: msg}, nil)
	}
	eng := s.engine(r.Request.WorkflowEngine)
	if eng == nil {
		fail(fmt.Sprintf("the engine %s is no longer offered by this server", r.Request.WorkflowEngine))
		return
	}
	acct := s.sched.Account(r.Username)
	dir := s.sched.RunDir(acct, r.ID)
	cmd := eng.CommandLine(workflowArg(r), dir, r.Request.WorkflowEngineParameters)
	script, err := scheduler.Script(scheduler.ScriptSpec{Name: JobName(r.ID), Dir: dir, Setup: eng.Setup, Command: cmd,
		Directives: s.sched.Directives(r.Request.WorkflowEngineParameters)})
	if err != nil {
		s.log.Error("monitor: batch script", "run", r.ID, "err", err)
		fail("wesgate could not write the batch script for this run")
		return
	}
	job := scheduler.Job{Name: JobName(r.ID), User: acct, Dir: dir, Script: script}
	start := time.Now()
	jobID, err := s.sched.Submit(ctx, job, s.LocalRunDir(r.ID))
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		var rej *scheduler.RejectedError
		if errors.As(err, &rej) {
			s.metrics.submissions.WithLabelValues("rejected").Inc()
			s.log.Warn("monitor: job rejected", "run", r.ID, "err", err)
			fail("the batch system rejected the job: " + rej.Msg)
			return
		}
		s.metrics.submissions.WithLabelValues("retry").Inc()
		s.log.Warn("monitor: submit failed; will retry", "run", r.ID, "err", err)
		s.mu.Lock()
		first := !s.waitLogged[r.ID]
		s.waitLogged[r.ID] = true
		s.mu.Unlock()
		if first {
			line := fmt.Sprintf("%s waiting to submit: the %s scheduler cannot be reached; the run will be submitted when it is back",
				FormatTime(s.cfg.Now()), s.sched.Name())
			err := s.store.UpdateRun(ctx, r.ID, func(r *Run) error {
				r.SystemLogs = append(r.SystemLogs, line)
				return nil
			})
			if err != nil {
				s.log.Error("monitor: record wait", "run", r.ID, "err", err)
			}
		}
		return
	}
	s.mu.Lock()
	delete(s.waitLogged, r.ID)
	s.mu.Unlock()
	// The job exists now: record it even while shutting down, so that a
	// restart follows this job rather than looking for it.
	err = s.store.UpdateRun(context.WithoutCancel(ctx), r.ID, func(r *Run) error {
		r.JobID, r.RunDir, r.Cmd = jobID, dir, cmd
		return nil
	})
	if err != nil {
		s.log.Error("monitor: record job id", "run", r.ID, "job", jobID, "err", err)
		return
	}
	s.metrics.submissions.WithLabelValues("submitted").Inc()
	s.log.Info("run submitted", "run", r.ID, "job", jobID, "account", acct, "took", time.Since(start).Round(time.Millisecond))
}

// track applies one job status to a run.
func (s *Service) track(ctx context.Context, r *Run, st scheduler.JobStatus, known bool) {
	now := s.cfg.Now().UTC()
	if !known {
		s.trackGone(ctx, r, now)
		return
	}
	if st.Terminal() {
		s.finish(ctx, r, Settlement{}, &st)
		return
	}
	m := MapJobState(st, nil, false, r.CancelRequested)
	if m.Doomed {
		since := r.GoneSince
		if since.IsZero() {
			s.update(ctx, r.ID, func(r *Run) error { r.GoneSince = now; return nil })
			return
		}
		if now.Sub(since) < s.cfg.DoomedGrace {
			return
		}
		if err := s.sched.Cancel(ctx, s.sched.Account(r.Username), r.JobID); err != nil {
			s.log.Warn("monitor: cancel doomed job", "run", r.ID, "job", r.JobID, "err", err)
			return
		}
		s.finish(ctx, r, m, &st)
		return
	}
	sendCancel := r.CancelRequested && !r.CancelSent
	if sendCancel {
		if err := s.sched.Cancel(ctx, s.sched.Account(r.Username), r.JobID); err != nil {
			s.log.Warn("monitor: cancel", "run", r.ID, "job", r.JobID, "err", err)
			sendCancel = false
		} else {
			s.log.Info("run cancel sent", "run", r.ID, "job", r.JobID)
		}
	}
	changed := sendCancel || m.State != r.State || (!st.Start.IsZero() && r.Started.IsZero()) ||
		st.Node != r.Node || st.Partition != r.Partition || !r.GoneSince.IsZero()
	if !changed {
		return
	}
	s.update(ctx, r.ID, func(x *Run) error {
		if x.State.Terminal() {
			return ErrNoChange
		}
		x.State = m.State
		if x.CancelRequested && x.State != Canceling {
			x.State = Canceling
		}
		if x.Started.IsZero() && !st.Start.IsZero() {
			x.Started = st.Start.UTC()
		}
		x.Node, x.Partition = st.Node, st.Partition
		x.GoneSince = time.Time{}
		if sendCancel {
			x.CancelSent = true
		}
		return nil
	})
}

// trackGone handles a job the scheduler no longer knows: the wrapper's rc
// file settles it; without one it becomes SYSTEM_ERROR after a grace period.
func (s *Service) trackGone(ctx context.Context, r *Run, now time.Time) {
	if r.GoneSince.IsZero() && s.cfg.GoneGrace > 0 {
		s.update(ctx, r.ID, func(x *Run) error { x.GoneSince = now; return nil })
		return
	}
	if err := s.sched.Collect(ctx, s.sched.Account(r.Username), r.RunDir, s.LocalRunDir(r.ID)); err != nil {
		s.log.Warn("monitor: collect", "run", r.ID, "err", err)
		return
	}
	rec := readRecords(s.LocalRunDir(r.ID))
	if rec.rc != nil {
		state := scheduler.StateCompleted
		if *rec.rc != 0 {
			state = scheduler.StateFailed
		}
		st := scheduler.JobStatus{ID: r.JobID, State: state, ExitCode: *rec.rc, HasExit: true}
		s.finish(ctx, r, Settlement{}, &st)
		return
	}
	if now.Sub(r.GoneSince) < s.cfg.GoneGrace {
		return
	}
	code := -1
	m := Settlement{State: SystemError, ExitCode: &code,
		Log: "the job is gone from the batch system and left no exit code (was wesgate or the cluster restarted?)"}
	if r.CancelRequested {
		m = Settlement{State: Canceled, ExitCode: &code}
	}
	s.finish(ctx, r, m, nil)
}

// records is what the batch-script wrapper wrote.
type records struct {
	rc           *int
	started      time.Time
	ended        time.Time
	startedExist bool
}

func readRecords(localDir string) records {
	var rec records
	if b, err := os.ReadFile(filepath.Join(localDir, filepath.FromSlash(scheduler.RCFile))); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			rec.rc = &n
		}
	}
	if b, err := os.ReadFile(filepath.Join(localDir, filepath.FromSlash(scheduler.StartedFile))); err == nil {
		rec.startedExist = true
		rec.started, _ = time.Parse(TimeFormat, strings.TrimSpace(string(b)))
	}
	if b, err := os.ReadFile(filepath.Join(localDir, filepath.FromSlash(scheduler.EndedFile))); err == nil {
		rec.ended, _ = time.Parse(TimeFormat, strings.TrimSpace(string(b)))
	}
	return rec
}

// finish settles a run for good. With a job status, the run's files are
// first collected home and the state is mapped from the status and the
// wrapper's records; otherwise m is the settlement.
func (s *Service) finish(ctx context.Context, r *Run, m Settlement, st *scheduler.JobStatus) {
	local := s.LocalRunDir(r.ID)
	var rec records
	if r.RunDir != "" {
		if err := s.sched.Collect(ctx, s.sched.Account(r.Username), r.RunDir, local); err != nil {
			s.log.Warn("monitor: collect; will retry", "run", r.ID, "err", err)
			return
		}
		rec = readRecords(local)
	}
	if st != nil {
		m = MapJobState(*st, rec.rc, rec.startedExist, r.CancelRequested)
	}
	var logs []string
	if m.Log != "" {
		logs = append(logs, FormatTime(s.cfg.Now())+" "+m.Log)
	}
	outputs := r.Outputs
	if eng := s.engine(r.Request.WorkflowEngine); eng != nil && rec.startedExist {
		o, err := collectOutputs(eng.Outputs, local, r.RunDir, r.Attachments)
		if err != nil {
			s.log.Warn("monitor: outputs", "run", r.ID, "err", err)
			logs = append(logs, FormatTime(s.cfg.Now())+" outputs could not be collected: "+outputProblem(err))
		} else {
			outputs = o
		}
	}
	var tasks []Task
	if st != nil {
		for _, step := range st.Steps {
			t := Task{ID: step.ID, Name: step.Name, Start: step.Start.UTC(), End: step.End.UTC()}
			if step.HasExit {
				c := step.ExitCode
				t.ExitCode = &c
			}
			if step.Name == "batch" {
				t.Cmd = r.Cmd
			}
			tasks = append(tasks, t)
		}
	}
	end := s.cfg.Now().UTC()
	switch {
	case st != nil && !st.End.IsZero():
		end = st.End.UTC()
	case !rec.ended.IsZero():
		end = rec.ended
	}
	err := s.store.UpdateRun(ctx, r.ID, func(x *Run) error {
		if x.State.Terminal() {
			return ErrNoChange
		}
		x.State = m.State
		x.ExitCode = m.ExitCode
		if x.Started.IsZero() {
			switch {
			case st != nil && !st.Start.IsZero():
				x.Started = st.Start.UTC()
			case !rec.started.IsZero():
				x.Started = rec.started
			}
		}
		x.Ended = end
		x.SystemLogs = append(x.SystemLogs, logs...)
		x.Outputs = outputs
		if st != nil && st.Node != "" {
			x.Node = st.Node
		}
		if st != nil && st.Partition != "" {
			x.Partition = st.Partition
		}
		return nil
	})
	if errors.Is(err, ErrNoChange) {
		return
	}
	if err != nil {
		s.log.Error("monitor: settle", "run", r.ID, "err", err)
		return
	}
	if len(tasks) > 0 {
		if err := s.store.ReplaceTasks(ctx, r.ID, tasks); err != nil {
			s.log.Error("monitor: tasks", "run", r.ID, "err", err)
		}
	}
	s.log.Info("run ended", "run", r.ID, "state", m.State, "job", r.JobID)
}

// outputProblem is a short, user-safe description of an outputs failure.
func outputProblem(err error) string {
	if errors.Is(err, os.ErrPermission) {
		return "permission denied"
	}
	if strings.Contains(err.Error(), "CWL output object") {
		return err.Error()
	}
	return "the output files could not be read"
}

func (s *Service) update(ctx context.Context, id string, fn func(*Run) error) {
	if err := s.store.UpdateRun(ctx, id, fn); err != nil && !errors.Is(err, ErrNoChange) {
		s.log.Error("monitor: update run", "run", id, "err", err)
	}
}
