package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/wes"
)

// submit hands a batch of one account's queued runs to the scheduler.
func (p *Pipeline) submit(ctx context.Context, acct string, queued []wes.ActiveRun) error {
	start := time.Now()
	var (
		jobs []scheduler.Job
		subs []wes.Submission
		runs []wes.ActiveRun
	)
	for _, ar := range queued {
		// A run is stored before its directory moves into place: wait for it.
		if _, err := os.Stat(p.svc.LocalRunDir(ar.ID)); err != nil {
			continue
		}
		r, err := p.store.GetRun(ctx, ar.ID, "")
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("pipeline: read run", "run", ar.ID, "err", err)
			}
			continue
		}
		// The round's snapshot may be older than a batch that just ended.
		if r.JobID != "" || r.State.Terminal() || r.CancelRequested {
			continue
		}
		job, sub, msg := p.jobOf(r, acct, r.SubmitAttempted)
		if msg != "" {
			p.settleNow(ctx, ar, wes.Settlement{State: wes.SystemError, ExitCode: intp(-1), Log: msg})
			continue
		}
		jobs, subs, runs = append(jobs, job), append(subs, sub), append(runs, ar)
	}
	if len(jobs) == 0 {
		return nil
	}
	p.mu.Lock()
	for _, r := range runs {
		p.submitting[r.ID] = true
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		for _, r := range runs {
			delete(p.submitting, r.ID)
		}
		p.mu.Unlock()
	}()
	// Marked attempted before sbatch can run, so that after a crash the
	// next attempt looks for the job by name instead of submitting twice.
	if err := p.store.BeginSubmit(ctx, subs); err != nil {
		return fmt.Errorf("begin submit: %w", err)
	}
	bctx, cancel := context.WithTimeout(ctx, p.cfg.SubmitTimeout+time.Duration(len(jobs))*p.cfg.SubmitPerJob)
	results := p.sched.SubmitBatch(bctx, acct, jobs)
	cancel()
	var done []wes.Submission
	var retry error
	for i, res := range results {
		r := runs[i]
		var rej *scheduler.RejectedError
		switch {
		case res.Err == nil:
			subs[i].JobID = res.JobID
			done = append(done, subs[i])
		case errors.As(res.Err, &rej):
			p.metrics.submissions.WithLabelValues("rejected").Inc()
			p.log.Warn("pipeline: job rejected", "run", r.ID, "err", res.Err)
			p.settleNow(ctx, r, wes.Settlement{State: wes.SystemError, ExitCode: intp(-1),
				Log: "the batch system rejected the job: " + rej.Msg})
		default:
			retry = res.Err
			p.metrics.submissions.WithLabelValues("retry").Inc()
			p.noteWaiting(ctx, r.ID, res.Err)
		}
	}
	// The jobs exist now: record them even while shutting down, so that a
	// restart follows them rather than looking for them.
	if err := p.store.RecordJobs(context.WithoutCancel(ctx), done); err != nil {
		p.log.Error("pipeline: record job ids", "account", acct, "jobs", len(done), "err", err)
		return err
	}
	p.mu.Lock()
	for _, s := range done {
		delete(p.waitLogged, s.ID)
	}
	p.mu.Unlock()
	p.metrics.submissions.WithLabelValues("submitted").Add(float64(len(done)))
	took := time.Since(start)
	p.metrics.stage.WithLabelValues("submit").Observe(took.Seconds())
	if len(done) > 0 {
		p.heat(acct)
		p.poke()
		p.log.Info("runs submitted", "account", acct, "runs", len(done), "took", took.Round(time.Millisecond))
		for _, s := range done {
			p.log.Debug("run submitted", "run", s.ID, "job", s.JobID, "account", acct)
		}
	}
	return retry
}

// jobOf builds the batch job of a run, or says why it cannot run.
func (p *Pipeline) jobOf(r *wes.Run, acct string, retry bool) (scheduler.Job, wes.Submission, string) {
	eng := p.engine(r.Request.WorkflowEngine)
	if eng == nil {
		return scheduler.Job{}, wes.Submission{}, fmt.Sprintf("the engine %s is no longer offered by this server", r.Request.WorkflowEngine)
	}
	dir := p.sched.RunDir(acct, r.ID)
	cmd := eng.CommandLine(r.WorkflowArg(), dir, r.Request.WorkflowEngineParameters)
	script, err := scheduler.Script(scheduler.ScriptSpec{Name: wes.JobName(r.ID), Dir: dir, Setup: eng.Setup, Command: cmd,
		Directives: p.sched.Directives(r.Request.WorkflowEngineParameters)})
	if err != nil {
		p.log.Error("pipeline: batch script", "run", r.ID, "err", err)
		return scheduler.Job{}, wes.Submission{}, "wesgate could not write the batch script for this run"
	}
	job := scheduler.Job{Name: wes.JobName(r.ID), User: acct, Dir: dir, Script: script,
		LocalDir: p.svc.LocalRunDir(r.ID), Retry: retry}
	return job, wes.Submission{ID: r.ID, Account: acct, RunDir: dir, Cmd: cmd}, ""
}

func (p *Pipeline) engine(name string) *wes.Engine {
	for _, e := range p.svc.Engines() {
		if e.Name == name {
			return &e
		}
	}
	return nil
}

// noteWaiting writes a run's "waiting to submit" line once.
func (p *Pipeline) noteWaiting(ctx context.Context, id string, cause error) {
	p.log.Warn("pipeline: submit failed; will retry", "run", id, "err", cause)
	p.mu.Lock()
	first := !p.waitLogged[id]
	p.waitLogged[id] = true
	p.mu.Unlock()
	if !first {
		return
	}
	line := fmt.Sprintf("%s waiting to submit: the %s scheduler cannot be reached; the run will be submitted when it is back",
		wes.FormatTime(p.cfg.Now()), p.sched.Name())
	p.appendLog(ctx, id, line)
}

// appendLog adds a line to a run's system_logs.
func (p *Pipeline) appendLog(ctx context.Context, id, line string) {
	err := p.store.UpdateRun(context.WithoutCancel(ctx), id, func(r *wes.Run) error {
		r.SystemLogs = append(r.SystemLogs, line)
		return nil
	})
	if err != nil {
		p.log.Error("pipeline: system log", "run", id, "err", err)
	}
}

func intp(n int) *int { return &n }
