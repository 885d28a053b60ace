package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/wes"
)

// poll asks the scheduler once about every active job of an account,
// records what changed in one transaction, and hands jobs that ended to the
// settle stage at once.
func (p *Pipeline) poll(ctx context.Context, acct string, runs []wes.ActiveRun) error {
	now := p.cfg.Now()
	p.mu.Lock()
	p.lastPoll[acct] = now
	p.mu.Unlock()
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.JobID
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, p.cfg.CommandTimeout)
	statuses, err := p.sched.Status(pctx, acct, ids)
	cancel()
	took := time.Since(start)
	p.metrics.pollDuration.Observe(took.Seconds())
	p.metrics.stage.WithLabelValues("poll").Observe(took.Seconds())
	if ctx.Err() != nil {
		return nil
	}
	p.watch.Polled(acct, err)
	if err != nil {
		p.log.Warn("pipeline: job status", "account", acct, "jobs", len(ids), "err", err)
		return fmt.Errorf("poll: %w", err)
	}
	p.log.Debug("pipeline: poll", "account", acct, "jobs", len(ids), "took", took.Round(time.Microsecond))

	var ups []wes.JobUpdate
	var doomed []string
	var doomedRuns []settleItem
	started := false
	for _, r := range runs {
		st, known := statuses[r.JobID]
		switch {
		case !known:
			if r.GoneSince.IsZero() && p.cfg.GoneGrace > 0 {
				ups = append(ups, update(r, r.State, scheduler.JobStatus{}, now))
				continue
			}
			p.enqueueSettle(settleItem{run: r})
		case st.Terminal():
			p.enqueueSettle(settleItem{run: r, st: &st})
		default:
			m := wes.MapJobState(st, nil, false, r.CancelRequested)
			if m.Doomed {
				// GoneSince doubles as "doomed since" while the job waits.
				if r.GoneSince.IsZero() {
					ups = append(ups, update(r, r.State, st, now))
					continue
				}
				if now.Sub(r.GoneSince) >= p.cfg.DoomedGrace {
					doomed = append(doomed, r.JobID)
					mm := m
					doomedRuns = append(doomedRuns, settleItem{run: r, final: &mm})
				}
				continue
			}
			if m.State == wes.Running && r.State != wes.Running {
				started = true
			}
			if m.State != r.State || !st.Start.IsZero() && r.Started.IsZero() || st.Node != r.Node ||
				st.Partition != r.Partition || !r.GoneSince.IsZero() {
				ups = append(ups, update(r, m.State, st, time.Time{}))
			}
		}
	}
	if err := p.store.UpdateJobs(ctx, ups); err != nil && ctx.Err() == nil {
		p.log.Error("pipeline: record job states", "account", acct, "err", err)
	}
	if len(doomed) > 0 {
		cctx, cancel := context.WithTimeout(ctx, p.cfg.CommandTimeout)
		err := p.sched.CancelBatch(cctx, acct, nil, doomed)
		cancel()
		if err != nil {
			p.log.Warn("pipeline: cancel doomed jobs", "account", acct, "err", err)
		} else {
			for _, it := range doomedRuns {
				p.enqueueSettle(it)
			}
		}
	}
	if started {
		p.heat(acct) // a job that starts may end soon
	}
	return nil
}

// update is a JobUpdate of r; gone sets GoneSince (the zero time clears it).
func update(r wes.ActiveRun, state wes.State, st scheduler.JobStatus, gone time.Time) wes.JobUpdate {
	u := wes.JobUpdate{ID: r.ID, State: state, Node: r.Node, Partition: r.Partition, GoneSince: gone}
	if st.Node != "" {
		u.Node = st.Node
	}
	if st.Partition != "" {
		u.Partition = st.Partition
	}
	if !st.Start.IsZero() {
		u.Started = st.Start.UTC()
	}
	if !gone.IsZero() && !r.GoneSince.IsZero() {
		u.GoneSince = r.GoneSince
	}
	return u
}
