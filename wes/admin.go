package wes

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// PollStatus is how the monitor's last polls of one account went.
type PollStatus struct {
	Account string
	LastOK  time.Time
	LastErr time.Time
	Err     string // what went wrong last, for admins
}

// Dashboard is what admins see about the whole service.
type Dashboard struct {
	Queue       scheduler.Queue
	QueueErr    string
	Counts      map[State]int64
	Users       []UserCount
	Failures    []*Run
	Connections []scheduler.Health
	Polls       []PollStatus
	Samples     []Sample
	Scheduler   string
}

// Dashboard gathers the admin dashboard. Only admins may see it.
func (s *Service) Dashboard(ctx context.Context, u User) (*Dashboard, error) {
	if !u.Admin {
		return nil, fmt.Errorf("%w: the dashboard is for administrators", ErrForbidden)
	}
	d := &Dashboard{Scheduler: s.sched.Name(), Connections: s.sched.Health(), Polls: s.watch.Polls()}
	q, err := s.sched.Queue(ctx)
	if err != nil {
		s.log.Warn("dashboard: queue", "err", err)
		d.QueueErr = "the cluster's queue could not be read just now"
	}
	d.Queue = q
	if d.Counts, err = s.store.CountStates(ctx, ""); err != nil {
		return nil, err
	}
	if d.Users, err = s.store.CountByUser(ctx); err != nil {
		return nil, err
	}
	failed, err := s.store.ListRuns(ctx, ListQuery{States: []State{ExecutorError, SystemError}, Limit: 10})
	if err != nil {
		return nil, err
	}
	for _, r := range failed {
		full, err := s.store.GetRun(ctx, r.ID, "")
		if err != nil {
			return nil, err
		}
		d.Failures = append(d.Failures, full)
	}
	if d.Samples, err = s.store.Samples(ctx, s.cfg.Now().Add(-24*time.Hour)); err != nil {
		return nil, err
	}
	return d, nil
}

// Watch records how the cluster answered the run pipeline, for the
// dashboard, /readyz and the metrics. The pipeline writes it; the service
// reads it.
type Watch struct {
	mu        sync.Mutex            // guards the fields below
	polls     map[string]PollStatus // account -> how its polls went
	lastReach time.Time             // the cluster last answered a poll or a queue sample
}

// NewWatch returns an empty Watch.
func NewWatch() *Watch { return &Watch{polls: map[string]PollStatus{}} }

// Reached records that the cluster answered.
func (w *Watch) Reached() {
	w.mu.Lock()
	w.lastReach = time.Now()
	w.mu.Unlock()
}

// LastReach is when the cluster last answered.
func (w *Watch) LastReach() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastReach
}

// Polled records the outcome of polling one account.
func (w *Watch) Polled(account string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		w.lastReach = time.Now()
	}
	p := w.polls[account]
	p.Account = account
	if err != nil {
		p.LastErr, p.Err = time.Now(), err.Error()
	} else {
		p.LastOK = time.Now()
	}
	w.polls[account] = p
}

// Keep forgets the poll records of accounts that have no active run.
func (w *Watch) Keep(accounts []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for a := range w.polls {
		if !slices.Contains(accounts, a) {
			delete(w.polls, a)
		}
	}
}

// Polls lists every account's poll record.
func (w *Watch) Polls() []PollStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]PollStatus, 0, len(w.polls))
	for _, p := range w.polls {
		out = append(out, p)
	}
	return out
}

// Pinger checks that a store answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Ready lists what keeps the service from working: a store that does not
// answer, a cluster not reached (by a poll or a queue sample) for two sample
// intervals and a minute, or a cluster account with active runs not polled
// successfully within three poll intervals (at least a minute). Empty means
// ready.
func (s *Service) Ready(ctx context.Context) []string {
	var problems []string
	if p, ok := s.store.(Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			s.log.Warn("readyz: database", "err", err)
			problems = append(problems, "the database does not answer")
		}
	}
	limit := max(3*s.cfg.PollInterval, time.Minute)
	lastReach := s.watch.LastReach()
	if reachLimit := 2*s.cfg.SampleInterval + time.Minute; time.Since(lastReach) > reachLimit {
		if lastReach.IsZero() {
			problems = append(problems, "the cluster has not been reached yet")
		} else {
			problems = append(problems, fmt.Sprintf("the cluster has not been reached for over %s", reachLimit.Round(time.Second)))
		}
	}
	for _, p := range s.watch.Polls() {
		if time.Since(p.LastOK) > limit {
			problems = append(problems, fmt.Sprintf("account %s has not been polled successfully for over %s", p.Account, limit))
		}
	}
	return problems
}
