// Package pipeline moves runs through the batch system: it submits queued
// runs, follows their jobs, sends cancels, and settles runs whose jobs have
// ended. It sits between wes (the rules of runs, the store) and scheduler
// (talking to batch systems).
//
// The data flow of one run:
//
//	POST /runs ──> store: QUEUED, files in DATA/runs/ID ──> Service.Wake
//	                                                           │
//	 submit stage (per account, one batch at a time) <─────────┘
//	   BeginSubmit (account, run dir, command; "attempted")
//	   Scheduler.SubmitBatch: one lookup by name for retries, one tar stream
//	   that stages every run directory, one script running every sbatch
//	   RecordJobs (job ids) ──> the account polls fast for a while
//	                                                           │
//	 poll stage (per account, never waits for the others) <────┘
//	   Scheduler.Status: one squeue (+ one sacct for jobs that left it)
//	   UpdateJobs (state, start, node) in one transaction
//	   a job that ended (or vanished) ──> settle queue, in the same tick
//	                                                           │
//	 settle stage (a pool of workers, a few per account) <─────┘
//	   Scheduler.Collect: one tar stream home, regular files only, capped
//	   records (rc, started, ended) ──> MapJobState ──> outputs (os.Root)
//	   SettleRun: state, exit code, logs, outputs and tasks in one transaction
//
//	 cancel stage (per account): Service.Cancel marks cancel_requested in the
//	   store; the stage sends one scancel command for every requested job of
//	   an account (SIGTERM to running batch scripts), records cancel_sent_at,
//	   and cancels outright those still active after the grace period.
//
// Every remote operation has a deadline. A stage that fails for one account
// or one run waits with backoff and leaves a system_logs line; it never
// holds up the other accounts, the other stages or the other runs.
package pipeline

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/wes"
)

// Config configures a Pipeline. Zero values take the defaults in New.
type Config struct {
	// PollInterval is how often every account with active runs is polled.
	PollInterval time.Duration
	// FastPoll is how often an account is polled while it is hot: a job of
	// it was submitted or started within HotFor. Polling sooner only then
	// keeps the load on slurmctld flat however many long jobs are active.
	FastPoll time.Duration
	HotFor   time.Duration
	// SampleInterval is how often the queue is sampled for the dashboard.
	SampleInterval time.Duration
	// GoneGrace is how long a job may be unknown to the scheduler before a
	// run without an exit-code record is settled as SYSTEM_ERROR.
	GoneGrace time.Duration
	// DoomedGrace is how long a job that can never start waits before it is
	// cancelled.
	DoomedGrace time.Duration
	// CancelGrace is how long a job has after SIGTERM before it is
	// cancelled outright.
	CancelGrace time.Duration
	// CommandTimeout is the deadline of one poll or cancel command.
	CommandTimeout time.Duration
	// SubmitTimeout is the deadline of a submission batch, plus
	// SubmitPerJob for each job in it.
	SubmitTimeout time.Duration
	SubmitPerJob  time.Duration
	// MaxBatch bounds the runs of one submission batch.
	MaxBatch int
	// CollectTimeout is the deadline of settling one run: collecting its
	// files and reading its outputs.
	CollectTimeout time.Duration
	// SettleWorkers is the size of the settle pool; SettlePerAccount bounds
	// how many of them work for one account at once.
	SettleWorkers    int
	SettlePerAccount int
	// Collect bounds what is copied home from one run; MaxUserBytes bounds
	// what is copied home for one cluster user over all runs (0: no bound).
	Collect      scheduler.CollectLimits
	MaxUserBytes int64
	// Outputs bound the reading of a run's outputs.
	Outputs wes.OutputLimits
	Now     func() time.Time
}

// Service is what the pipeline needs of the WES service.
type Service interface {
	// Engines lists the engines offered now.
	Engines() []wes.Engine
	// LocalRunDir is a run's directory in the data directory.
	LocalRunDir(id string) string
	// Wakeups signals a new run or a cancel request.
	Wakeups() <-chan struct{}
}

// Pipeline runs the stages. Start it with Run.
type Pipeline struct {
	cfg     Config
	store   wes.PipelineStore
	sched   wes.Scheduler
	svc     Service
	watch   *wes.Watch
	log     *slog.Logger
	metrics *Metrics
	settleQ chan settleItem
	kick    chan struct{} // a stage asks for a round now

	mu          sync.Mutex           // guards the fields below
	busy        map[string]bool      // stage+"/"+account: an operation is in flight
	doneAt      map[string]time.Time // stage+"/"+account: when the last operation ended
	notBefore   map[string]time.Time // stage+"/"+account: backoff after a failure
	failures    map[string]int       // stage+"/"+account: failures in a row
	hot         map[string]time.Time // account -> poll fast until
	lastPoll    map[string]time.Time // account -> last poll started
	submitting  map[string]bool      // run ids in a submission batch
	settling    map[string]bool      // run ids queued or being settled
	settleAfter map[string]time.Time // run id -> no settle attempt before
	settleTries map[string]int       // run id -> failed settle attempts
	waitLogged  map[string]bool      // run ids whose "waiting to submit" line is written
	slots       map[string]chan struct{}
	lastFull    time.Time
}

// settleItem is a run whose job has ended (st set) or vanished (st nil).
type settleItem struct {
	run wes.ActiveRun
	st  *scheduler.JobStatus
	// final, when set, settles the run without asking the cluster.
	final *wes.Settlement
}

// New returns a Pipeline.
func New(cfg Config, store wes.PipelineStore, sched wes.Scheduler, svc Service, watch *wes.Watch, m *Metrics, log *slog.Logger) *Pipeline {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.PollInterval, 5*time.Second)
	def(&cfg.FastPoll, 250*time.Millisecond)
	cfg.FastPoll = min(cfg.FastPoll, cfg.PollInterval)
	def(&cfg.HotFor, time.Minute)
	def(&cfg.SampleInterval, 5*time.Minute)
	def(&cfg.DoomedGrace, time.Minute)
	def(&cfg.CancelGrace, 30*time.Second)
	def(&cfg.CommandTimeout, time.Minute)
	def(&cfg.SubmitTimeout, 2*time.Minute)
	def(&cfg.SubmitPerJob, 250*time.Millisecond)
	def(&cfg.CollectTimeout, 10*time.Minute)
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	if cfg.SettleWorkers <= 0 {
		cfg.SettleWorkers = 8
	}
	if cfg.SettlePerAccount <= 0 {
		cfg.SettlePerAccount = 4
	}
	if cfg.Collect.MaxBytes <= 0 {
		cfg.Collect.MaxBytes = 1 << 30
	}
	if cfg.Collect.MaxFiles <= 0 {
		cfg.Collect.MaxFiles = 20000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Pipeline{cfg: cfg, store: store, sched: sched, svc: svc, watch: watch, log: log, metrics: m,
		settleQ: make(chan settleItem, 1<<16), kick: make(chan struct{}, 1),
		busy: map[string]bool{}, doneAt: map[string]time.Time{}, notBefore: map[string]time.Time{}, failures: map[string]int{},
		hot: map[string]time.Time{}, lastPoll: map[string]time.Time{}, submitting: map[string]bool{},
		settling: map[string]bool{}, settleAfter: map[string]time.Time{}, settleTries: map[string]int{},
		waitLogged: map[string]bool{}, slots: map[string]chan struct{}{}}
}

// minRoundGap spaces rounds that wakes ask for.
const minRoundGap = 20 * time.Millisecond

// Run runs every stage until ctx ends, and waits for them.
func (p *Pipeline) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { p.sample(ctx) })
	for range p.cfg.SettleWorkers {
		wg.Go(func() { p.settleWorker(ctx) })
	}
	t := time.NewTicker(p.cfg.FastPoll)
	defer t.Stop()
	wake := true
	for {
		p.round(ctx, &wg, wake)
		wake = false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.svc.Wakeups():
			wake = true
		case <-p.kick:
			wake = true
		}
		if wake {
			// A burst of requests wakes the pipeline once per request:
			// rounds are spaced so that the store is read a bounded
			// number of times per second.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(minRoundGap):
			}
		}
	}
}

// poke asks for a round now.
func (p *Pipeline) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// start runs fn for stage and account in its own goroutine unless one is
// in flight, backing off, or finished after seen (the moment the round read
// the store: its view of this account is older than that operation's
// writes); it reports whether it started.
func (p *Pipeline) start(ctx context.Context, wg *sync.WaitGroup, seen time.Time, stage, account string, fn func(context.Context) error) bool {
	key := stage + "/" + account
	p.mu.Lock()
	if p.busy[key] || p.cfg.Now().Before(p.notBefore[key]) || p.doneAt[key].After(seen) {
		p.mu.Unlock()
		return false
	}
	p.busy[key] = true
	p.mu.Unlock()
	wg.Go(func() {
		err := fn(ctx)
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.busy, key)
		p.doneAt[key] = time.Now()
		if err != nil && ctx.Err() == nil {
			p.failures[key]++
			backoff := min(time.Second<<min(p.failures[key]-1, 5), 30*time.Second)
			p.notBefore[key] = p.cfg.Now().Add(backoff)
			return
		}
		delete(p.failures, key)
		delete(p.notBefore, key)
	})
	return true
}

// round looks at the active runs and starts what is due: submissions,
// polls and cancels, each per account.
func (p *Pipeline) round(ctx context.Context, wg *sync.WaitGroup, wake bool) {
	now := p.cfg.Now()
	p.mu.Lock()
	due := wake || now.Sub(p.lastFull) >= p.cfg.PollInterval
	for _, until := range p.hot {
		if now.Before(until) {
			due = true
		}
	}
	p.mu.Unlock()
	if !due {
		return
	}
	seen := time.Now()
	runs, err := p.store.ActiveJobs(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Error("pipeline: active runs", "err", err)
		}
		return
	}
	p.mu.Lock()
	full := now.Sub(p.lastFull) >= p.cfg.PollInterval
	if full {
		p.lastFull = now
	}
	p.mu.Unlock()

	queued := map[string][]wes.ActiveRun{}
	polled := map[string][]wes.ActiveRun{}
	cancels := map[string][]wes.ActiveRun{}
	var accounts []string
	waiting := 0
	for _, r := range runs {
		if r.JobID == "" {
			if p.isSubmitting(r.ID) {
				continue
			}
			if r.CancelRequested {
				code := -1
				p.enqueueSettle(settleItem{run: r, final: &wes.Settlement{State: wes.Canceled, ExitCode: &code,
					Log: "cancelled before it was submitted"}})
				continue
			}
			acct := p.sched.Account(r.Username)
			queued[acct] = append(queued[acct], r)
			waiting++
			continue
		}
		acct := r.Account
		if acct == "" { // submitted by a wesgate before accounts were recorded
			acct = p.sched.Account(r.Username)
		}
		if _, ok := polled[acct]; !ok {
			accounts = append(accounts, acct)
		}
		polled[acct] = append(polled[acct], r)
		if r.CancelRequested && (!r.CancelSent || now.Sub(r.CancelSentAt) >= p.cfg.CancelGrace) {
			cancels[acct] = append(cancels[acct], r)
		}
	}
	p.metrics.queue.WithLabelValues("submit").Set(float64(waiting))
	p.watch.Keep(accounts)
	for acct, rs := range queued {
		if len(rs) > p.cfg.MaxBatch {
			rs = rs[:p.cfg.MaxBatch]
		}
		p.start(ctx, wg, seen, "submit", acct, func(ctx context.Context) error { return p.submit(ctx, acct, rs) })
	}
	pending := 0
	for acct, rs := range cancels {
		pending += len(rs)
		p.start(ctx, wg, seen, "cancel", acct, func(ctx context.Context) error { return p.cancel(ctx, acct, rs) })
	}
	p.metrics.queue.WithLabelValues("cancel").Set(float64(pending))
	for _, acct := range accounts {
		// An account is polled every PollInterval, or every FastPoll while it
		// is hot or something happened (a job of the local executor ended, a
		// run was created): never more often, however many wakes arrive.
		period := p.cfg.PollInterval
		if wake || p.isHot(acct, now) {
			period = p.cfg.FastPoll
		}
		if now.Sub(p.lastPolled(acct)) < period {
			continue
		}
		rs := polled[acct]
		p.start(ctx, wg, seen, "poll", acct, func(ctx context.Context) error { return p.poll(ctx, acct, rs) })
	}
}

func (p *Pipeline) isSubmitting(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.submitting[id]
}

func (p *Pipeline) isHot(acct string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return now.Before(p.hot[acct])
}

// heat makes an account poll fast for HotFor.
func (p *Pipeline) heat(acct string) {
	p.mu.Lock()
	p.hot[acct] = p.cfg.Now().Add(p.cfg.HotFor)
	p.mu.Unlock()
}

func (p *Pipeline) lastPolled(acct string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastPoll[acct]
}

// sample stores a queue sample every SampleInterval until ctx ends. Asking
// for the queue also shows that the cluster can be reached when no run is
// active.
func (p *Pipeline) sample(ctx context.Context) {
	t := time.NewTicker(p.cfg.SampleInterval)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, p.cfg.CommandTimeout)
		q, err := p.sched.Queue(qctx)
		cancel()
		if err == nil {
			p.watch.Reached()
			err := p.store.AddSample(ctx, wes.Sample{At: p.cfg.Now().UTC().Truncate(time.Second), Pending: q.Pending(), Running: q.Running()})
			if err != nil && ctx.Err() == nil {
				p.log.Warn("queue sample", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
