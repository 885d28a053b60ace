package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/wesgate/wesgate/wes"
)

// cancel sends one account's cancels in one command. A cancel is asked for
// by Service.Cancel (cancel_requested in the store); this stage sends it
// once (scancel of a pending job, SIGTERM to a running batch script, so the
// wrapper records the engine's end) and records when, then cancels
// outright a job still active CancelGrace later. Both facts live in the
// store, so a cancel survives a restart. The run is settled CANCELED by the
// settle stage when its job has ended.
func (p *Pipeline) cancel(ctx context.Context, acct string, runs []wes.ActiveRun) error {
	start := time.Now()
	var term, kill, ids []string
	for _, r := range runs {
		if r.CancelSent {
			kill = append(kill, r.JobID)
		} else {
			term = append(term, r.JobID)
		}
		ids = append(ids, r.ID)
	}
	cctx, done := context.WithTimeout(ctx, p.cfg.CommandTimeout)
	err := p.sched.CancelBatch(cctx, acct, term, kill)
	done()
	p.metrics.stage.WithLabelValues("cancel").Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("pipeline: cancel", "account", acct, "jobs", len(ids), "err", err)
		}
		return fmt.Errorf("cancel: %w", err)
	}
	if err := p.store.MarkCancelSent(context.WithoutCancel(ctx), ids, p.cfg.Now().UTC()); err != nil {
		p.log.Error("pipeline: record cancel", "account", acct, "err", err)
		return err
	}
	p.log.Info("run cancels sent", "account", acct, "sigterm", len(term), "scancel", len(kill))
	p.heat(acct)
	return nil
}
