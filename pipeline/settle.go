package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/wes"
)

// maxSettleTries is how many times a run's collection may fail (a hung
// filesystem, a cluster away) before the run is settled without its files.
const maxSettleTries = 5

// enqueueSettle queues a run for the settle stage unless it is queued,
// being settled, or waiting after a failed attempt.
func (p *Pipeline) enqueueSettle(it settleItem) {
	p.mu.Lock()
	if p.settling[it.run.ID] || p.cfg.Now().Before(p.settleAfter[it.run.ID]) {
		p.mu.Unlock()
		return
	}
	p.settling[it.run.ID] = true
	p.mu.Unlock()
	select {
	case p.settleQ <- it:
		p.metrics.queue.WithLabelValues("settle").Set(float64(len(p.settleQ)))
	default: // full: the next poll offers it again
		p.mu.Lock()
		delete(p.settling, it.run.ID)
		p.mu.Unlock()
	}
}

// settleWorker settles queued runs until ctx ends. Each account has a few
// slots, so one account's slow files never take every worker.
func (p *Pipeline) settleWorker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-p.settleQ:
			p.metrics.queue.WithLabelValues("settle").Set(float64(len(p.settleQ)))
			acct := it.run.Account
			if acct == "" {
				acct = p.sched.Account(it.run.Username)
			}
			slot := p.slot(acct)
			select {
			case slot <- struct{}{}:
			case <-ctx.Done():
				return
			}
			start := time.Now()
			retryAfter := p.settle(ctx, acct, it)
			<-slot
			p.metrics.stage.WithLabelValues("settle").Observe(time.Since(start).Seconds())
			p.mu.Lock()
			delete(p.settling, it.run.ID)
			if retryAfter > 0 {
				p.settleAfter[it.run.ID] = p.cfg.Now().Add(retryAfter)
			} else {
				delete(p.settleAfter, it.run.ID)
			}
			p.mu.Unlock()
		}
	}
}

func (p *Pipeline) slot(acct string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.slots[acct]
	if !ok {
		s = make(chan struct{}, p.cfg.SettlePerAccount)
		p.slots[acct] = s
	}
	return s
}

// settleNow settles a run without asking the cluster (a rejection, a
// cancel before submission).
func (p *Pipeline) settleNow(ctx context.Context, r wes.ActiveRun, m wes.Settlement) {
	p.finish(ctx, r, wes.Final{State: m.State, ExitCode: m.ExitCode, Ended: p.cfg.Now().UTC(),
		Logs: p.lines(m.Log)})
}

func (p *Pipeline) lines(msgs ...string) []string {
	var out []string
	for _, m := range msgs {
		if m != "" {
			out = append(out, wes.FormatTime(p.cfg.Now())+" "+m)
		}
	}
	return out
}

// settle collects a run's files, maps its end to a WES state and writes it
// all in one transaction. It returns how long to wait before trying again
// (0 when done, or when the next poll should decide).
func (p *Pipeline) settle(ctx context.Context, acct string, it settleItem) time.Duration {
	ar := it.run
	if it.final != nil && it.st == nil && (ar.RunDir == "" || it.final.State == wes.Canceled && ar.JobID == "") {
		p.settleNow(ctx, ar, *it.final)
		return 0
	}
	r, err := p.store.GetRun(ctx, ar.ID, "")
	if err != nil {
		if ctx.Err() == nil {
			p.log.Error("pipeline: read run", "run", ar.ID, "err", err)
		}
		return p.cfg.PollInterval
	}
	if r.State.Terminal() {
		return 0
	}
	local := p.svc.LocalRunDir(r.ID)
	var got scheduler.Collected
	if r.RunDir != "" {
		lim := p.cfg.Collect
		lim.Skip = make([]string, len(r.Attachments))
		for i, a := range r.Attachments {
			lim.Skip[i] = scheduler.WorkDir + "/" + a
		}
		if p.cfg.MaxUserBytes > 0 {
			used, err := p.store.CollectedBytes(ctx, r.Username)
			if err != nil {
				p.log.Error("pipeline: collected bytes", "user", r.Username, "err", err)
				return p.cfg.PollInterval
			}
			left := max(p.cfg.MaxUserBytes-used, 64<<10) // logs and records still come home
			lim.MaxBytes = min(lim.MaxBytes, left)
		}
		cctx, cancel := context.WithTimeout(ctx, p.cfg.CollectTimeout)
		got, err = p.sched.Collect(cctx, acct, r.RunDir, local, lim)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			return p.collectFailed(ctx, ar, r, err)
		}
	}
	rec := readRecords(local)
	var m wes.Settlement
	var st *scheduler.JobStatus
	switch {
	case it.final != nil:
		m = *it.final
	case it.st != nil:
		st = it.st
		m = wes.MapJobState(*st, rec.rc, rec.started, r.CancelRequested)
	case rec.rc != nil:
		// The job left the batch system's memory, but the wrapper recorded
		// the engine's end.
		state := scheduler.StateCompleted
		if *rec.rc != 0 {
			state = scheduler.StateFailed
		}
		st = &scheduler.JobStatus{ID: r.JobID, State: state, ExitCode: *rec.rc, HasExit: true}
		m = wes.MapJobState(*st, rec.rc, rec.started, r.CancelRequested)
	case p.cfg.Now().Sub(ar.GoneSince) < p.cfg.GoneGrace:
		return p.cfg.PollInterval // the next polls decide
	case r.CancelRequested:
		m = wes.Settlement{State: wes.Canceled, ExitCode: intp(-1)}
	default:
		m = wes.Settlement{State: wes.SystemError, ExitCode: intp(-1),
			Log: "the job is gone from the batch system and left no exit code (was wesgate or the cluster restarted?)"}
	}
	logs := p.lines(m.Log)
	problems := append(got.Problems, rec.problems...)
	if m.State == wes.Complete && (len(rec.problems) > 0 || slices.ContainsFunc(got.Refused, isRecord)) {
		m.State = wes.ExecutorError
		logs = append(logs, p.lines("the run's files are not what the engine writes, so the run did not complete cleanly")...)
	}
	logs = append(logs, p.lines(problems...)...)
	outputs := r.Outputs
	if eng := p.engine(r.Request.WorkflowEngine); eng != nil && rec.started && m.State != wes.Canceled {
		octx, cancel := context.WithTimeout(ctx, p.cfg.CollectTimeout)
		o, oproblems, err := wes.CollectOutputs(octx, eng.Outputs, local, r.RunDir, r.Attachments, p.cfg.Outputs)
		cancel()
		logs = append(logs, p.lines(oproblems...)...)
		switch {
		case err == nil:
			outputs = o
		case errors.Is(err, wes.ErrNotCWLObject):
			logs = append(logs, p.lines("outputs could not be collected: "+err.Error())...)
		default:
			p.log.Warn("pipeline: outputs", "run", r.ID, "err", err)
			logs = append(logs, p.lines("outputs could not be collected: the output files could not be read")...)
		}
	}
	f := wes.Final{State: m.State, ExitCode: m.ExitCode, Logs: logs, Outputs: outputs, CollectedBytes: got.Bytes,
		Ended: p.cfg.Now().UTC()}
	switch {
	case st != nil && !st.End.IsZero():
		f.Ended = st.End.UTC()
	case !rec.ended.IsZero():
		f.Ended = rec.ended
	}
	switch {
	case st != nil && !st.Start.IsZero():
		f.Started = st.Start.UTC()
	case !rec.startedAt.IsZero():
		f.Started = rec.startedAt
	}
	if st != nil {
		f.Node, f.Partition = st.Node, st.Partition
		for _, step := range st.Steps {
			t := wes.Task{ID: step.ID, Name: step.Name, Start: step.Start.UTC(), End: step.End.UTC()}
			if step.HasExit {
				c := step.ExitCode
				t.ExitCode = &c
			}
			if step.Name == "batch" {
				t.Cmd = r.Cmd
			}
			f.Tasks = append(f.Tasks, t)
		}
	}
	p.finish(ctx, ar, f)
	p.mu.Lock()
	delete(p.settleTries, r.ID)
	p.mu.Unlock()
	return 0
}

// collectFailed handles a collection that failed: the run waits with
// backoff and a system_logs line, and after maxSettleTries it is settled
// without its files.
func (p *Pipeline) collectFailed(ctx context.Context, ar wes.ActiveRun, r *wes.Run, err error) time.Duration {
	p.mu.Lock()
	p.settleTries[r.ID]++
	tries := p.settleTries[r.ID]
	p.mu.Unlock()
	p.log.Warn("pipeline: collect; will retry", "run", r.ID, "try", tries, "err", err)
	why := "the cluster did not answer"
	if errors.Is(err, context.DeadlineExceeded) {
		why = fmt.Sprintf("it took longer than %s", p.cfg.CollectTimeout)
	}
	if tries >= maxSettleTries {
		p.finish(ctx, ar, wes.Final{State: wes.SystemError, ExitCode: intp(-1), Ended: p.cfg.Now().UTC(),
			Logs: p.lines(fmt.Sprintf("the run's files could not be copied from the cluster (%s, %d times); they are left there", why, tries))})
		p.mu.Lock()
		delete(p.settleTries, r.ID)
		p.mu.Unlock()
		return 0
	}
	if tries == 1 {
		p.appendLog(ctx, r.ID, p.lines(fmt.Sprintf("copying the run's files from the cluster failed (%s); wesgate will try again", why))[0])
	}
	return min(p.cfg.PollInterval<<tries, 5*time.Minute)
}

// finish writes a run's settlement.
func (p *Pipeline) finish(ctx context.Context, r wes.ActiveRun, f wes.Final) {
	err := p.store.SettleRun(context.WithoutCancel(ctx), r.ID, f)
	if errors.Is(err, wes.ErrNoChange) {
		return
	}
	if err != nil {
		p.log.Error("pipeline: settle", "run", r.ID, "err", err)
		return
	}
	p.metrics.settled.WithLabelValues(string(f.State)).Inc()
	p.log.Info("run ended", "run", r.ID, "state", f.State, "job", r.JobID)
}

// isRecord reports whether a run-directory entry is one of the logs or
// the wrapper's records: if one of those is not a regular file, the run's
// end cannot be trusted.
func isRecord(name string) bool {
	return name == scheduler.StdoutFile || name == scheduler.StderrFile || name == scheduler.RecordDir ||
		strings.HasPrefix(name, scheduler.RecordDir+"/")
}

// records is what the batch-script wrapper wrote.
type records struct {
	rc        *int
	started   bool // the engine was started
	startedAt time.Time
	ended     time.Time
	problems  []string
}

// readRecords reads the wrapper's records and checks the logs, through an
// os.Root of the run's local directory: regular files only, a few bytes
// each. A log or record that is a FIFO, device or symlink is a problem line.
func readRecords(localDir string) records {
	var rec records
	root, err := os.OpenRoot(localDir)
	if err != nil {
		return rec
	}
	defer root.Close()
	read := func(name string) (string, bool) {
		f, _, err := wes.OpenRegular(root, name)
		if err != nil {
			if errors.Is(err, wes.ErrNotRegular) {
				rec.problems = append(rec.problems, name+" is not a regular file")
			}
			return "", false
		}
		defer f.Close()
		b, _ := io.ReadAll(io.LimitReader(f, 128))
		return strings.TrimSpace(string(b)), true
	}
	if s, ok := read(scheduler.RCFile); ok {
		if n, err := strconv.Atoi(s); err == nil {
			rec.rc = &n
		}
	}
	if s, ok := read(scheduler.StartedFile); ok {
		rec.started = true
		rec.startedAt, _ = time.Parse(wes.TimeFormat, s)
	}
	if s, ok := read(scheduler.EndedFile); ok {
		rec.ended, _ = time.Parse(wes.TimeFormat, s)
	}
	for _, name := range []string{scheduler.StdoutFile, scheduler.StderrFile} {
		if fi, err := root.Lstat(name); err == nil && !fi.Mode().IsRegular() {
			rec.problems = append(rec.problems, name+" is not a regular file")
		}
	}
	return rec
}
