package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/wesgate/wesgate/lab/labenv"
)

// runSlurm measures wesgate's run pipeline against the Slurm lab (issue 9's
// targets), each against a bare baseline on the same link:
//
//  1. a burst of runs POSTed at once until every run has its job id, over a
//     50 ms round-trip link, against one SSH command running as many bare
//     sbatch;
//  2. as many ended jobs until every run is terminal with its files home;
//  3. the poll period per account during both bursts;
//  4. remote commands per poll tick during both bursts;
//  5. plain runs beside hostile ones (an output naming /dev/zero, a stdout
//     that becomes a FIFO);
//  6. on loopback with the shipped defaults: POST to COMPLETE against a bare
//     sbatch to COMPLETED, and squeue/sacct calls per minute with many
//     long-running runs against a few.
//
// With -before COMMIT it builds wesgate at that commit in a temporary git
// worktree and measures 1, 2 and 6 for both binaries at -before-size runs.
func runSlurm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wesgate-bench slurm", flag.ContinueOnError)
	o := slurmOpts{}
	fs.DurationVar(&o.lag, "lag", 25*time.Millisecond, "one-way delay of the latency proxy in front of the lab's sshd (round trip: twice this)")
	fs.IntVar(&o.burst, "burst", 1000, "runs POSTed at once, and ended jobs settled at once")
	fs.IntVar(&o.active, "active", 1000, "long-running active runs while counting squeue/sacct calls per minute (against 10)")
	fs.IntVar(&o.samples, "samples", 10, "samples of POST to COMPLETE and of bare sbatch to COMPLETED")
	fs.IntVar(&o.plain, "plain", 10, "plain runs submitted with and without the hostile ones")
	fs.DurationVar(&o.window, "window", time.Minute, "how long squeue/sacct calls are counted")
	fs.StringVar(&o.before, "before", "", "also measure wesgate at this commit (e.g. cb2be0b), built in a temporary git worktree")
	fs.IntVar(&o.beforeSize, "before-size", 100, "burst and active runs for the before/after comparison")
	fs.StringVar(&o.account, "account", "user2", "lab account wesgate runs jobs as: user1, user2 or svc (one no test uses at the time)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	env, ok := labenv.Load(os.Getenv)
	if !ok {
		return errors.New("the Slurm lab is not up: run `go tool task lab:up` and `. lab/env.sh`")
	}
	switch o.account {
	case "user1":
		o.user, o.key = env.User1, env.Key1
	case "user2":
		o.user, o.key = env.User2, env.Key2
	case "svc":
		o.user, o.key = env.SvcUser, env.SvcKey
	default:
		return fmt.Errorf("-account: %q is not user1, user2 or svc", o.account)
	}
	work, err := os.MkdirTemp("", "wesgate-slurmbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	newBin, err := buildWesgate(ctx, work, stderr)
	if err != nil {
		return err
	}
	var oldBin string
	if o.before != "" {
		if oldBin, err = buildAt(ctx, o.before, work, stderr); err != nil {
			return err
		}
	}

	lagAddr, stopLag, err := env.Lag(ctx, o.lag)
	if err != nil {
		return err
	}
	defer stopLag()
	lagHosts := filepath.Join(work, "known_hosts")
	if err := env.WriteKnownHosts(lagHosts, lagAddr); err != nil {
		return err
	}
	b := &bench{opts: o, env: env, work: work, stderr: stderr, lagAddr: lagAddr, lagHosts: lagHosts,
		remoteBase: env.Base + "/" + o.user}
	// The observer: a direct connection for checks and clean-up, never timed.
	if b.direct, err = dialLab(env.SSHAddr, env.KnownHosts, o.user, o.key); err != nil {
		return err
	}
	defer b.direct.Close()
	defer b.cleanup()
	// Count Slurm commands on the lab; leave counting as it was found.
	if _, err := os.Stat(filepath.Join(env.State, "count", "on")); errors.Is(err, os.ErrNotExist) {
		defer env.CountOff()
	}
	if _, err := env.CountOn(); err != nil {
		fmt.Fprintf(stderr, "lab counts unavailable: %v\n", err)
		b.noCounts = true
	}

	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { b.watchSlow(wctx) })
	defer wg.Wait()
	defer stopWatch()

	after := b.burstPhase(ctx, newBin, false, o.burst, true)
	afterLoop := b.loopPhase(ctx, newBin, false, o.active)
	var before, afterSmall *burstResult
	var beforeLoop *loopResult
	if oldBin != "" {
		afterSmall = b.burstPhase(ctx, newBin, false, o.beforeSize, false)
		before = b.burstPhase(ctx, oldBin, true, o.beforeSize, false)
		beforeLoop = b.loopPhase(ctx, oldBin, true, o.beforeSize)
	}
	b.print(stdout, after, afterLoop, afterSmall, before, beforeLoop)
	return ctx.Err()
}

type slurmOpts struct {
	lag                    time.Duration
	burst, active, samples int
	plain, beforeSize      int
	window                 time.Duration
	before, account        string
	user, key              string
}

type bench struct {
	opts       slurmOpts
	env        labenv.Env
	work       string
	stderr     io.Writer
	lagAddr    string
	lagHosts   string
	remoteBase string
	direct     *ssh.Client // to the lab's sshd, for the benchmark's own checks
	noCounts   bool

	mu       sync.Mutex // guards the fields below
	jobs     []string   // every job id of the benchmark's, for clean-up
	runs     []string   // every run id, for removing run directories
	slowSeen []string   // "15:04:05 sbatch=hang": another user slowed the shared lab
}

// slowNow lists the lab's slow settings now (lab/ctl.sh slow, labenv.Slow):
// the lab is shared, and another user's test may slow or hang a command.
func (b *bench) slowNow() []string {
	entries, _ := os.ReadDir(filepath.Join(b.env.State, "slow"))
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		v, _ := os.ReadFile(filepath.Join(b.env.State, "slow", e.Name()))
		out = append(out, e.Name()+"="+strings.TrimSpace(string(v)))
	}
	return out
}

// watchSlow records, until ctx ends, when the lab was slowed.
func (b *bench) watchSlow(ctx context.Context) {
	last := ""
	for ctx.Err() == nil {
		if now := strings.Join(b.slowNow(), ","); now != last {
			last = now
			if now == "" {
				now = "fast again"
			}
			b.mu.Lock()
			b.slowSeen = append(b.slowSeen, time.Now().Format("15:04:05")+" "+now)
			b.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitFast waits (up to 10 minutes) until no Slurm command of the lab is
// slowed, so that a measurement does not start inside another user's fault.
func (b *bench) waitFast(ctx context.Context) {
	for end := time.Now().Add(10 * time.Minute); ctx.Err() == nil && time.Now().Before(end); {
		slow := b.slowNow()
		if len(slow) == 0 {
			return
		}
		b.logf("the lab is slowed by another user (%s): waiting", strings.Join(slow, ", "))
		time.Sleep(5 * time.Second)
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// buildAt builds cmd/wesgate at commit in a temporary git worktree.
func buildAt(ctx context.Context, commit, work string, stderr io.Writer) (string, error) {
	tree := filepath.Join(work, "before-src")
	bin := filepath.Join(work, "wesgate-before")
	fmt.Fprintf(stderr, "building wesgate at %s into %s\n", commit, bin)
	if out, err := exec.CommandContext(ctx, "git", "worktree", "add", "--detach", tree, commit).CombinedOutput(); err != nil {
		return "", fmt.Errorf("git worktree add %s: %v: %s", commit, err, out)
	}
	defer exec.Command("git", "worktree", "remove", "--force", tree).Run()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/wesgate")
	build.Dir = tree
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", commit, err)
	}
	return bin, nil
}

// config is a wesgate configuration on the lab: debug JSON logs (the
// benchmark reads them), the shipped poll settings, and one engine that
// runs the attached workflow with /bin/sh and reads a CWL output object
// from its stdout, so that every measurement measures wesgate.
func (b *bench) config(addr, knownHosts string, old bool) string {
	var s strings.Builder
	fmt.Fprintf(&s, "log_level = \"debug\"\nlog_format = \"json\"\n[runs]\nmax_page_size = 1000\npoll_interval = \"5s\"\n")
	if !old {
		s.WriteString("collect_timeout = \"1m\"\n")
	}
	fmt.Fprintf(&s, `[executor]
kind = "slurm"
[slurm]
cluster = "lab"
ssh_addr = %q
user = %q
key_file = %q
known_hosts = %q
remote_base = %q
default_partition = %q
[[engines]]
name = "cwltool"
command = ["/bin/sh", "{workflow}"]
version_command = ["/bin/echo", "1"]
outputs = "cwl"
[[engines]]
name = "snakemake"
disabled = true
[[engines]]
name = "nextflow"
disabled = true
[[engines]]
name = "miniwdl"
disabled = true
`, addr, b.opts.user, b.opts.key, knownHosts, b.remoteBase, b.env.Partition)
	return s.String()
}

// start starts a wesgate on data with cfg and a fresh log watcher.
func (b *bench) start(ctx context.Context, bin, cfg, data string) (*server, *logWatch, error) {
	path := filepath.Join(b.work, "wesgate-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, nil, err
	}
	w := &logWatch{}
	srv, err := startServer(ctx, bin, path, data, w)
	return srv, w, err
}

// Workflows of the stand-in engine: the run directory is the parent of the
// working directory.
const (
	// quickScript writes one output file and names it.
	quickScript = `echo hi > out.txt
printf '{"out": {"class": "File", "path": "%s/work/out.txt"}}' "$(dirname "$PWD")"
`
	longScript    = "sleep 3600\necho '{}'\n"
	devZeroScript = `printf '{"zero": {"class": "File", "path": "/dev/zero"}, "up": {"class": "File", "path": "%s/../../../../../../dev/zero"}}' "$(dirname "$PWD")"
`
	fifoScript = `rm -f ../stdout.txt && mkfifo ../stdout.txt
echo "stdout is a fifo now" >&2
sleep 4
`
)

// flagScript waits for flag to exist, then does what quickScript does.
func flagScript(flag string) string {
	return "while [ ! -e " + flag + " ]; do sleep 1; done\n" + quickScript
}

// burstResult is what one burst phase measured.
type burstResult struct {
	n   int
	old bool
	err error

	bare        time.Duration // one SSH command running n bare sbatch
	answered    time.Duration // first POST to the last POST answered
	postP50     time.Duration
	recorded    time.Duration // first POST to every run with its job id
	inSqueue    int           // jobs of the burst in squeue once all were recorded
	drain       time.Duration // flag to squeue empty (wesgate stopped)
	settle      time.Duration // squeue empty to every run terminal
	states      map[string]int
	withOutputs int // runs whose output file came home with a checksum

	submitPolls, settlePolls pollStats
	submitCmds, settleCmds   cmdCounts

	hostile *hostileResult
}

// pollStats are the polls of one account in a window.
type pollStats struct {
	polls                int
	periodP50, periodP99 time.Duration
	periodMax            time.Duration
	tookP50, tookMax     time.Duration
}

// cmdCounts are the remote commands in a window: from wesgate's log by kind,
// and from the lab (shims and sshd) by command, for the account.
type cmdCounts struct {
	polls int
	log   map[string]int
	took  map[string][]time.Duration // each logged command's duration, by kind
	lab   map[string]int
}

type hostileResult struct {
	alone  []time.Duration // POST to the last plain run terminal, before and after
	beside time.Duration
	runs   []hostileRun
}

type hostileRun struct {
	name, state string
	took        time.Duration
	logs        []string
}

// burstPhase runs n bare sbatch over the proxied link, then n runs POSTed at
// once to a wesgate on the same link whose jobs wait for a flag file; it
// stops wesgate, lets every job end, starts it again and measures until
// every run is terminal.
func (b *bench) burstPhase(ctx context.Context, bin string, old bool, n int, hostile bool) *burstResult {
	r := &burstResult{n: n, old: old}
	r.err = b.burst(ctx, r, bin, hostile)
	if r.err != nil {
		b.logf("burst of %d (old=%v): %v", n, old, r.err)
	}
	b.cleanup()
	return r
}

func (b *bench) burst(ctx context.Context, r *burstResult, bin string, hostile bool) error {
	n := r.n
	far, err := dialLab(b.lagAddr, b.lagHosts, b.opts.user, b.opts.key)
	if err != nil {
		return err
	}
	defer far.Close()
	// 1, baseline: one command, n sbatch, over the same link; those jobs are
	// cancelled at once after.
	b.logf("baseline: %d bare sbatch in one remote command over the proxy", n)
	var out string
	for try := 0; ; try++ {
		b.waitFast(ctx)
		t := time.Now()
		out, err = remote(far, fmt.Sprintf("for i in $(seq %d); do sbatch --parsable --job-name=wesbench-bare --output=/dev/null --wrap=true || exit 1; done", n))
		r.bare = time.Since(t)
		if err == nil {
			break
		}
		remote(b.direct, "scancel --me --name=wesbench-bare")
		if try == 2 {
			return fmt.Errorf("bare sbatch: %v: %s", err, lastLine(out))
		}
		b.logf("bare sbatch: %v: %s; again", err, lastLine(out))
	}
	if k := len(strings.Fields(out)); k != n {
		return fmt.Errorf("bare sbatch: %d job ids, want %d", k, n)
	}
	remote(b.direct, "scancel --me --name=wesbench-bare")
	if err := b.waitGone(ctx, func(name string) bool { return name == "wesbench-bare" }, 3*time.Minute); err != nil {
		return err
	}

	data := filepath.Join(b.work, fmt.Sprintf("burst-%d-%v", n, r.old))
	cfg := b.config(b.lagAddr, b.lagHosts, r.old)
	srv, logs, err := b.start(ctx, bin, cfg, data)
	if err != nil {
		return err
	}
	defer func() { srv.stop() }()
	flag := fmt.Sprintf("%s/wesbench-go-%d", b.remoteBase, time.Now().UnixNano())
	script := flagScript(flag)

	// 2, the burst: n POSTs at once (64 at a time).
	b.waitFast(ctx)
	b.logf("burst: %d runs POSTed at once", n)
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	mark := b.mark()
	t0 := time.Now()
	ids, lat, err := postMany(hc, srv.base, script, n, 64)
	r.answered = time.Since(t0)
	b.addRuns(ids...)
	if err != nil {
		return err
	}
	slices.Sort(lat)
	r.postP50 = lat[len(lat)/2]
	want := set(ids)
	sub, err := logs.waitRuns(ctx, "run submitted", want, time.Duration(n)*time.Second+2*time.Minute)
	b.addJobs(logs)
	if err != nil {
		return err
	}
	tRec := latest(sub)
	r.recorded = tRec.Sub(t0)
	r.submitPolls = logs.polls(b.opts.user, t0, tRec)
	r.submitCmds = b.counts(logs, mark, t0, tRec, r.submitPolls.polls)
	if out, err := remote(b.direct, "squeue --me --noheader --format=%j"); err == nil {
		for _, name := range strings.Fields(out) {
			if want[strings.TrimPrefix(name, "wes-")] {
				r.inSqueue++
			}
		}
	}

	// 3, settle: wesgate stops, every job ends, wesgate starts again.
	srv.stop()
	b.logf("drain: wesgate stopped; the flag releases %d jobs", n)
	tFlag := time.Now()
	if out, err := remote(b.direct, "touch "+flag); err != nil {
		return fmt.Errorf("touch flag: %v: %s", err, out)
	}
	defer remote(b.direct, "rm -f "+flag)
	isRun := func(name string) bool { return want[strings.TrimPrefix(name, "wes-")] }
	if err := b.waitGone(ctx, isRun, time.Duration(n)*time.Second+3*time.Minute); err != nil {
		return err
	}
	tEmpty := time.Now()
	r.drain = tEmpty.Sub(tFlag)
	b.logf("settle: squeue empty after %s; wesgate starts again", r.drain.Round(time.Second))
	b.waitFast(ctx)
	if now := time.Now(); now.Sub(tEmpty) > time.Second {
		tEmpty = now // a wait for the lab is not wesgate's
	}
	mark = b.mark()
	srv, logs, err = b.start(ctx, bin, cfg, data)
	if err != nil {
		return err
	}
	ended, err := logs.waitRuns(ctx, "run ended", want, 10*time.Minute)
	if err != nil {
		return err
	}
	tEnd := latest(ended)
	r.settle = tEnd.Sub(tEmpty)
	r.settlePolls = logs.polls(b.opts.user, tEmpty, tEnd)
	r.settleCmds = b.counts(logs, mark, tEmpty, tEnd, r.settlePolls.polls)
	r.states = map[string]int{}
	for _, e := range ended {
		r.states[e.State]++
	}
	for _, id := range ids {
		rl, err := getRun(hc, srv.base, id)
		if err != nil {
			continue
		}
		var f struct {
			Checksum string `json:"checksum"`
		}
		if json.Unmarshal(rl.Outputs["out"], &f) == nil && f.Checksum != "" {
			r.withOutputs++
		}
	}
	if hostile {
		b.logf("hostile runs beside %d plain runs", b.opts.plain)
		r.hostile, err = b.hostile(ctx, hc, srv.base, logs)
		if err != nil {
			return err
		}
	}
	return nil
}

// hostile submits plain runs alone, then together with a run whose output
// names /dev/zero and one whose stdout becomes a FIFO, then alone again
// once the hostile runs have ended (the lab is shared: one round may meet
// another user's jobs).
func (b *bench) hostile(ctx context.Context, hc *http.Client, base string, logs *logWatch) (*hostileResult, error) {
	h := &hostileResult{}
	// round POSTs the plain runs and extra at once and returns when the
	// plain ones have ended.
	round := func(extra map[string]string) (time.Duration, map[string]string, time.Time, error) {
		t0 := time.Now()
		extraIDs := map[string]string{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		var errs []error
		for name, script := range extra {
			wg.Go(func() {
				id, err := postScript(hc, base, script)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				extraIDs[id] = name
			})
		}
		plain, _, err := postMany(hc, base, quickScript, b.opts.plain, b.opts.plain)
		wg.Wait()
		b.addRuns(plain...)
		for id := range extraIDs {
			b.addRuns(id)
		}
		if err = errors.Join(append(errs, err)...); err != nil {
			return 0, nil, t0, err
		}
		ended, err := logs.waitRuns(ctx, "run ended", set(plain), 5*time.Minute)
		b.addJobs(logs)
		if err != nil {
			return 0, nil, t0, err
		}
		return latest(ended).Sub(t0), extraIDs, t0, nil
	}
	alone, _, _, err := round(nil)
	if err != nil {
		return nil, err
	}
	h.alone = append(h.alone, alone)
	beside, hostileIDs, t0, err := round(map[string]string{"output names /dev/zero": devZeroScript, "stdout.txt becomes a FIFO": fifoScript})
	if err != nil {
		return nil, err
	}
	h.beside = beside
	ids := map[string]bool{}
	for id := range hostileIDs {
		ids[id] = true
	}
	ended, err := logs.waitRuns(ctx, "run ended", ids, 3*time.Minute)
	b.addJobs(logs)
	if err != nil {
		b.logf("hostile runs: %v", err) // their state says so
	}
	endAt := map[string]time.Time{}
	for _, e := range ended {
		endAt[e.Run] = e.At
	}
	for id, name := range hostileIDs {
		hr := hostileRun{name: name, state: "not terminal after 3m"}
		if at, ok := endAt[id]; ok {
			hr.took = at.Sub(t0)
		}
		if rl, err := getRun(hc, base, id); err == nil {
			if !endAt[id].IsZero() {
				hr.state = rl.State
			}
			hr.logs = rl.RunLog.SystemLogs
		}
		h.runs = append(h.runs, hr)
	}
	slices.SortFunc(h.runs, func(a, b hostileRun) int { return strings.Compare(a.name, b.name) })
	if alone, _, _, err = round(nil); err != nil {
		return nil, err
	}
	h.alone = append(h.alone, alone)
	return h, nil
}

// loopResult is what the loopback phase measured.
type loopResult struct {
	n   int
	old bool
	err error

	bare, viaWES    []time.Duration // sbatch to COMPLETED; POST to COMPLETE
	toJob, jobToEnd []time.Duration // POST to the job id recorded; from there to COMPLETE
	notComplete     int
	few, many       perMinute
	cpu             float64 // share of one core while the many runs were active
	rss, hwm        int64
	bareSqueue      time.Duration
}

// perMinute are the calls counted in a window with active runs.
type perMinute struct {
	active              int
	window              time.Duration
	squeue, sacct       int // from wesgate's log
	polls               int
	labSqueue, labSacct int
	tookP50             time.Duration
}

// loopPhase measures on loopback with the shipped defaults.
func (b *bench) loopPhase(ctx context.Context, bin string, old bool, n int) *loopResult {
	r := &loopResult{n: n, old: old}
	r.err = b.loop(ctx, r, bin)
	if r.err != nil {
		b.logf("loopback (old=%v): %v", old, r.err)
	}
	b.cleanup()
	return r
}

func (b *bench) loop(ctx context.Context, r *loopResult, bin string) error {
	data := filepath.Join(b.work, fmt.Sprintf("loop-%v", r.old))
	srv, logs, err := b.start(ctx, bin, b.config(b.env.SSHAddr, b.env.KnownHosts, r.old), data)
	if err != nil {
		return err
	}
	defer func() { srv.stop() }()
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.logf("loopback: %d samples of sbatch to COMPLETED and POST to COMPLETE", b.opts.samples)
	for range b.opts.samples {
		b.waitFast(ctx)
		t := time.Now()
		out, err := remote(b.direct, `id=$(sbatch --parsable --job-name=wesbench-bare --output=/dev/null --wrap=true) || exit 1
for i in $(seq 1200); do sacct -n -X -P -j "$id" -o State | grep -q COMPLETED && exit 0; sleep 0.05; done; exit 1`)
		if err != nil {
			return fmt.Errorf("bare sbatch to COMPLETED: %v: %s", err, lastLine(out))
		}
		r.bare = append(r.bare, time.Since(t))
		time.Sleep(time.Second)
		t = time.Now()
		id, err := postScript(hc, srv.base, quickScript)
		if err != nil {
			return err
		}
		b.addRuns(id)
		ended, err := logs.waitRuns(ctx, "run ended", map[string]bool{id: true}, 2*time.Minute)
		if err != nil {
			return err
		}
		r.viaWES = append(r.viaWES, ended[0].At.Sub(t))
		if sub, err := logs.waitRuns(ctx, "run submitted", map[string]bool{id: true}, time.Second); err == nil {
			r.toJob = append(r.toJob, sub[0].At.Sub(t))
			r.jobToEnd = append(r.jobToEnd, ended[0].At.Sub(sub[0].At))
		}
		if ended[0].State != "COMPLETE" {
			r.notComplete++
		}
		time.Sleep(time.Second)
	}
	b.addJobs(logs)

	hotFor := time.Minute
	if r.old {
		hotFor = 0
	}
	count := func(active int, ids []string) (perMinute, error) {
		sub, err := logs.waitRuns(ctx, "run submitted", set(ids), time.Duration(len(ids))*time.Second+2*time.Minute)
		b.addJobs(logs)
		if err != nil {
			return perMinute{}, err
		}
		// Held jobs never start; the two that run sleep. The account polls
		// fast for hot_for after a submission or a job start: count once it
		// has cooled (two polls in a row at least 4 s apart).
		var pending []string
		if out, err := remote(b.direct, "squeue --me --noheader --states=PENDING --format=%i"); err == nil {
			b.mu.Lock()
			for _, j := range strings.Fields(out) {
				if _, mine := slices.BinarySearch(b.jobs, j); mine {
					pending = append(pending, j)
				}
			}
			b.mu.Unlock()
		}
		for c := range slices.Chunk(pending, 500) {
			remote(b.direct, "scontrol hold "+strings.Join(c, ","))
		}
		time.Sleep(time.Until(latest(sub).Add(hotFor)))
		for end := time.Now().Add(3 * time.Minute); time.Now().Before(end) && !logs.cool(b.opts.user, 4*time.Second); {
			time.Sleep(time.Second)
		}
		b.logf("%d active runs (%d held): counting for %s", active, len(pending), b.opts.window)
		mark := b.mark()
		t0 := time.Now()
		cpu0 := cpuTime(srv.cmd.Process.Pid)
		time.Sleep(b.opts.window)
		t1 := time.Now()
		if active > 10 {
			r.cpu = float64(cpuTime(srv.cmd.Process.Pid)-cpu0) / float64(t1.Sub(t0))
			r.hwm, r.rss = memory(srv.cmd.Process.Pid)
		}
		pm := perMinute{active: active, window: t1.Sub(t0)}
		c := b.counts(logs, mark, t0, t1, 0)
		pm.squeue, pm.sacct = c.log["squeue"], c.log["sacct"]
		pm.labSqueue, pm.labSacct = c.lab["squeue"], c.lab["sacct"]
		ps := logs.polls(b.opts.user, t0, t1)
		pm.polls, pm.tookP50 = ps.polls, ps.tookP50
		return pm, nil
	}
	b.logf("loopback: 10 long-running runs")
	few, _, err := postMany(hc, srv.base, longScript, 10, 10)
	b.addRuns(few...)
	if err != nil {
		return err
	}
	if r.few, err = count(10, few); err != nil {
		return err
	}
	b.logf("loopback: %d more long-running runs", r.n-10)
	more, _, err := postMany(hc, srv.base, longScript, r.n-10, 64)
	b.addRuns(more...)
	if err != nil {
		return err
	}
	if r.many, err = count(r.n, more); err != nil {
		return err
	}
	// What one poll's squeue of these jobs costs when run bare.
	var bare []time.Duration
	for range 5 {
		t := time.Now()
		if out, err := remote(b.direct, "TZ=UTC squeue --me --noheader --states=all --format='%i|%T|%r|%P|%N|%S'"); err != nil {
			return fmt.Errorf("bare squeue: %v: %s", err, lastLine(out))
		}
		bare = append(bare, time.Since(t))
	}
	slices.Sort(bare)
	r.bareSqueue = bare[len(bare)/2]
	return nil
}

// mark is a point in the lab's logs (zero when counting is unavailable).
func (b *bench) mark() labenv.Mark {
	if b.noCounts {
		return labenv.Mark{}
	}
	m, err := b.env.Mark()
	if err != nil {
		b.logf("lab mark: %v", err)
	}
	return m
}

// counts are the account's remote commands in [from, to]: wesgate's log by
// kind, and the lab's shims and sshd since mark (which also count any other
// user of the account).
func (b *bench) counts(logs *logWatch, mark labenv.Mark, from, to time.Time, polls int) cmdCounts {
	c := cmdCounts{polls: polls, log: map[string]int{}, took: map[string][]time.Duration{}, lab: map[string]int{}}
	for _, e := range logs.between(from, to) {
		if e.Msg == "slurm: command" || e.Msg == "slurm: command failed" {
			c.log[e.Kind]++
			c.took[e.Kind] = append(c.took[e.Kind], e.Took)
		}
	}
	if !b.noCounts {
		lab, err := b.env.Counts(mark)
		if err != nil {
			b.logf("lab counts: %v", err)
		}
		for k, v := range lab {
			if k.User == b.opts.user {
				c.lab[k.Command] += v
			}
		}
	}
	return c
}

// waitGone waits until squeue lists no job of the account whose name mine
// accepts.
func (b *bench) waitGone(ctx context.Context, mine func(string) bool, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for ctx.Err() == nil {
		out, err := remote(b.direct, "squeue --me --noheader --format=%j")
		if err == nil {
			left := 0
			for _, name := range strings.Fields(out) {
				if mine(name) {
					left++
				}
			}
			if left == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d jobs still in squeue after %s", left, limit)
			}
		}
		time.Sleep(time.Second)
	}
	return ctx.Err()
}

var idRE = regexp.MustCompile(`^[0-9a-f-]{36}$`)
var jobRE = regexp.MustCompile(`^[0-9]+$`)

func (b *bench) addRuns(ids ...string) {
	b.mu.Lock()
	b.runs = append(b.runs, ids...)
	b.mu.Unlock()
}

// addJobs remembers the job ids wesgate logged, for clean-up.
func (b *bench) addJobs(logs *logWatch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range logs.between(time.Time{}, time.Now().Add(time.Hour)) {
		if e.Msg == "run submitted" && jobRE.MatchString(e.Job) {
			b.jobs = append(b.jobs, e.Job)
		}
	}
	slices.Sort(b.jobs)
	b.jobs = slices.Compact(b.jobs)
}

// cleanup cancels the benchmark's jobs (by id and by its own job names,
// never the account's others) and removes its run directories on the lab.
func (b *bench) cleanup() {
	b.mu.Lock()
	jobs, runs := b.jobs, b.runs
	b.jobs, b.runs = nil, nil
	b.mu.Unlock()
	remote(b.direct, "scancel --me --name=wesbench-bare")
	for c := range slices.Chunk(jobs, 500) {
		remote(b.direct, "scancel "+strings.Join(c, " ")+" 2>/dev/null; true")
	}
	var safe []string
	for _, id := range runs {
		if idRE.MatchString(id) {
			safe = append(safe, id)
		}
	}
	for c := range slices.Chunk(safe, 500) {
		remote(b.direct, "cd "+b.remoteBase+" && rm -rf -- "+strings.Join(c, " "))
	}
}

// postMany POSTs n runs of script, conc at a time, and returns their ids
// and each POST's latency.
func postMany(hc *http.Client, base, script string, n, conc int) ([]string, []time.Duration, error) {
	var (
		mu   sync.Mutex
		ids  []string
		lat  []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for range min(conc, n) {
		wg.Go(func() {
			for range next {
				t := time.Now()
				id, err := postScript(hc, base, script)
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					ids = append(ids, id)
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return ids, lat, fmt.Errorf("%d of %d POSTs failed, the first: %w", len(errs), n, errs[0])
	}
	return ids, lat, nil
}

// postScript POSTs a run of the stand-in engine with script as its workflow.
func postScript(hc *http.Client, base, script string) (string, error) {
	return post(hc, base, "wf.sh", script, "{}")
}

func postRun(hc *http.Client, base, workflow, params string) (string, error) {
	return post(hc, base, "wf.cwl", workflow, params)
}

func post(hc *http.Client, base, name, workflow, params string) (string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("workflow_type", "CWL")
	mw.WriteField("workflow_type_version", "v1.2")
	mw.WriteField("workflow_url", name)
	mw.WriteField("workflow_params", params)
	fw, _ := mw.CreateFormFile("workflow_attachment", name)
	fw.Write([]byte(workflow))
	mw.Close()
	resp, err := hc.Post(base+"/runs", mw.FormDataContentType(), &body)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		RunID string `json:"run_id"`
		Msg   string `json:"msg"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("POST /runs: %d %s", resp.StatusCode, out.Msg)
	}
	return out.RunID, nil
}

// runLog is the part of a RunLog the benchmark reads.
type runLog struct {
	State   string                     `json:"state"`
	Outputs map[string]json.RawMessage `json:"outputs"`
	RunLog  struct {
		SystemLogs []string `json:"system_logs"`
	} `json:"run_log"`
}

func getRun(hc *http.Client, base, id string) (*runLog, error) {
	resp, err := hc.Get(base + "/runs/" + id)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /runs/%s: %d", id, resp.StatusCode)
	}
	var rl runLog
	return &rl, json.NewDecoder(resp.Body).Decode(&rl)
}

// labSSH connects to the lab's sshd as its service account.
func labSSH(lab map[string]string) (*ssh.Client, error) {
	return dialLab(lab["SSH_ADDR"], lab["KNOWN_HOSTS"], lab["SVC_USER"], lab["SVC_KEY"])
}

func dialLab(addr, knownHosts, user, keyFile string) (*ssh.Client, error) {
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return nil, err
	}
	hk, err := knownhosts.New(knownHosts)
	if err != nil {
		return nil, err
	}
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: hk, Timeout: 10 * time.Second})
}

// remote runs a fixed command of the benchmark's own on an open connection.
func remote(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// event is one line of wesgate's JSON log.
type event struct {
	At                           time.Time
	Msg, Kind, Account, Run, Job string
	State                        string
	Took                         time.Duration
}

// logWatch reads wesgate's JSON log (its stderr) and keeps the lines the
// benchmark measures with.
type logWatch struct {
	mu      sync.Mutex // guards all below
	partial []byte
	events  []event
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		var rec struct {
			Time    time.Time `json:"time"`
			Msg     string    `json:"msg"`
			Kind    string    `json:"kind"`
			Account string    `json:"account"`
			Run     string    `json:"run"`
			Job     string    `json:"job"`
			State   string    `json:"state"`
			Took    float64   `json:"took"` // slog's JSON handler writes durations in nanoseconds
		}
		if json.Unmarshal(w.partial[:i], &rec) == nil {
			switch rec.Msg {
			case "slurm: command", "slurm: command failed", "pipeline: poll", "monitor: tick", "run submitted", "run ended":
				w.events = append(w.events, event{At: rec.Time, Msg: rec.Msg, Kind: rec.Kind, Account: rec.Account,
					Run: rec.Run, Job: rec.Job, State: rec.State, Took: time.Duration(rec.Took)})
			}
		}
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// between returns the events in [from, to].
func (w *logWatch) between(from, to time.Time) []event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []event
	for _, e := range w.events {
		if !e.At.Before(from) && !e.At.After(to) {
			out = append(out, e)
		}
	}
	return out
}

// waitRuns waits until an event msg has been logged for every run in ids
// and returns those events (the first of each run).
func (w *logWatch) waitRuns(ctx context.Context, msg string, ids map[string]bool, limit time.Duration) ([]event, error) {
	deadline := time.Now().Add(limit)
	for {
		seen := map[string]bool{}
		var got []event
		w.mu.Lock()
		for _, e := range w.events {
			if e.Msg == msg && ids[e.Run] && !seen[e.Run] {
				seen[e.Run] = true
				got = append(got, e)
			}
		}
		w.mu.Unlock()
		if len(got) == len(ids) {
			return got, nil
		}
		if ctx.Err() != nil {
			return got, ctx.Err()
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%q logged for %d of %d runs within %s", msg, len(got), len(ids), limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cool reports whether the account's last two polls were at least gap
// apart (an older wesgate's ticks: always).
func (w *logWatch) cool(account string, gap time.Duration) bool {
	ps := w.between(time.Now().Add(-time.Hour), time.Now())
	var at []time.Time
	for _, e := range ps {
		if e.Msg == "pipeline: poll" && e.Account == account {
			at = append(at, e.At)
		}
		if e.Msg == "monitor: tick" {
			return true
		}
	}
	return len(at) >= 3 && at[len(at)-1].Sub(at[len(at)-2]) >= gap && at[len(at)-2].Sub(at[len(at)-3]) >= gap
}

// polls are the account's polls in [from, to]: "pipeline: poll" lines, or
// an older wesgate's "monitor: tick" (one for all accounts).
func (w *logWatch) polls(account string, from, to time.Time) pollStats {
	var at []time.Time
	var took []time.Duration
	for _, e := range w.between(from, to) {
		if e.Msg == "pipeline: poll" && e.Account == account || e.Msg == "monitor: tick" {
			at = append(at, e.At)
			took = append(took, e.Took)
		}
	}
	s := pollStats{polls: len(at)}
	var periods []time.Duration
	for i := 1; i < len(at); i++ {
		periods = append(periods, at[i].Sub(at[i-1]))
	}
	s.periodP50, s.periodP99, s.periodMax = pct(periods, 0.5), pct(periods, 0.99), pct(periods, 1)
	s.tookP50, s.tookMax = pct(took, 0.5), pct(took, 1)
	return s
}

// pct is the p-quantile of d (nearest rank), 0 for none.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[int(float64(len(d)-1)*p+0.5)]
}

func latest(es []event) time.Time {
	var t time.Time
	for _, e := range es {
		if e.At.After(t) {
			t = e.At
		}
	}
	return t
}

func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// cpuTime is the user+system CPU time of pid.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// print writes the tables.
func (b *bench) print(w io.Writer, after *burstResult, loop *loopResult, afterSmall, before *burstResult, beforeLoop *loopResult) {
	o := b.opts
	fmt.Fprintf(w, "\nwesgate's run pipeline on the Slurm lab, %s, %d CPUs (%s), %s; account %s; "+
		"the login node %s away (%s each way through labenv's latency proxy); shipped poll settings "+
		"(poll_interval 5s, fast_poll 250ms, hot_for 1m), collect_timeout 1m\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), cpuModel(), runtime.Version(), o.user, 2*o.lag, o.lag)
	fmt.Fprintln(w, "| # | target | measured | target | met |")
	fmt.Fprintln(w, "|---|---|---:|---|---|")
	if after.err != nil {
		fmt.Fprintf(w, "| | burst of %d | failed: %v | | |\n", after.n, after.err)
	}
	if after.recorded > 0 {
		ratio := float64(after.recorded) / float64(after.bare)
		fmt.Fprintf(w, "| 1 | %d runs POSTed at once until every run has its job id, vs one SSH command running %d bare `sbatch` | %s vs %s: %.2fx | at most 3x | %s |\n",
			after.n, after.n, sec(after.recorded), sec(after.bare), ratio, yes(ratio <= 3))
	}
	if after.settle > 0 {
		fmt.Fprintf(w, "| 2 | %d ended jobs (squeue empty) until all %d runs are terminal with logs and outputs | %s | within 60 s | %s |\n",
			after.n, after.n, sec(after.settle), yes(after.settle <= time.Minute))
	}
	if after.submitPolls.polls > 0 || after.settlePolls.polls > 0 {
		p99 := max(after.submitPolls.periodP99, after.settlePolls.periodP99)
		fmt.Fprintf(w, "| 3 | poll period of the account, p50 / p99, submit burst; settle burst | %s / %s; %s / %s | p99 under 2 x poll_interval (10 s) | %s |\n",
			sec(after.submitPolls.periodP50), sec(after.submitPolls.periodP99), sec(after.settlePolls.periodP50),
			sec(after.settlePolls.periodP99), yes(p99 < 10*time.Second))
		fmt.Fprintf(w, "| 4 | remote commands per poll tick, submit burst; settle burst (by kind below) | %s; %s | one squeue (+ one sacct) per tick | |\n",
			perTick(after.submitCmds), perTick(after.settleCmds))
	}
	if h := after.hostile; h != nil {
		alone := (h.alone[0] + h.alone[1]) / 2
		fmt.Fprintf(w, "| 5 | %d plain runs, POST to the last terminal: alone (before; after); beside a /dev/zero output and a FIFO stdout | %s; %s; %s (%+.1f s) | at most one operation deadline later (collect_timeout 1m) | %s |\n",
			o.plain, sec(h.alone[0]), sec(h.alone[1]), sec(h.beside), (h.beside - alone).Seconds(), yes(h.beside-alone <= time.Minute))
	}
	if loop.err != nil {
		fmt.Fprintf(w, "| | loopback | failed: %v | | |\n", loop.err)
	}
	if len(loop.bare) > 0 && len(loop.viaWES) > 0 {
		ratio := float64(pct(loop.viaWES, .5)) / float64(pct(loop.bare, .5))
		fmt.Fprintf(w, "| 6a | loopback: POST to COMPLETE vs bare `sbatch` to COMPLETED in sacct on an open connection, median of %d | %s vs %s: %.2fx | at most 1.5x | %s |\n",
			len(loop.viaWES), sec(pct(loop.viaWES, .5)), sec(pct(loop.bare, .5)), ratio, yes(ratio <= 1.5))
	}
	if loop.many.window > 0 {
		f, m := loop.few, loop.many
		// The window catches 11 or 12 polls at 5 s, and maybe the
		// dashboard's queue sample (one squeue --all every 5 minutes).
		rf := float64(f.squeue+f.sacct) / f.window.Minutes()
		rm := float64(m.squeue+m.sacct) / m.window.Minutes()
		fmt.Fprintf(w, "| 6b | loopback: squeue + sacct calls per minute, %d vs %d long-running active runs (held) | %.1f vs %.1f | does not grow | %s |\n",
			m.active, f.active, rm, rf, yes(rm <= rf*1.1+1.5))
	}

	// Details.
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| detail | value |")
	fmt.Fprintln(w, "|---|---:|")
	burstDetails(w, "", after)
	if loop.many.window > 0 {
		fmt.Fprintf(w, "| loopback: POST to COMPLETE, min / median / max | %s / %s / %s |\n", sec(pct(loop.viaWES, 0)), sec(pct(loop.viaWES, .5)), sec(pct(loop.viaWES, 1)))
		fmt.Fprintf(w, "| loopback: bare sbatch to COMPLETED, min / median / max | %s / %s / %s |\n", sec(pct(loop.bare, 0)), sec(pct(loop.bare, .5)), sec(pct(loop.bare, 1)))
		fmt.Fprintf(w, "| loopback: POST to the job id recorded; from there to COMPLETE (medians) | %s; %s |\n", sec(pct(loop.toJob, .5)), sec(pct(loop.jobToEnd, .5)))
		for _, pm := range []perMinute{loop.few, loop.many} {
			fmt.Fprintf(w, "| loopback, %d active runs, %s: polls; squeue / sacct (wesgate's log); squeue / sacct (lab shims) | %d; %d / %d; %d / %d |\n",
				pm.active, pm.window.Round(time.Second), pm.polls, pm.squeue, pm.sacct, pm.labSqueue, pm.labSacct)
		}
		fmt.Fprintf(w, "| loopback, %d active runs: poll duration (median) vs a bare squeue of the same jobs | %s vs %s |\n", loop.many.active, ms(loop.many.tookP50), ms(loop.bareSqueue))
		fmt.Fprintf(w, "| loopback, %d active runs: wesgate CPU; RSS / peak RSS | %.1f%% of one core; %.1f MB / %.1f MB |\n",
			loop.many.active, 100*loop.cpu, float64(loop.rss)/1e6, float64(loop.hwm)/1e6)
	}
	if h := after.hostile; h != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| hostile run | state | POST to terminal | system_logs |")
		fmt.Fprintln(w, "|---|---|---:|---|")
		for _, r := range h.runs {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.name, r.state, sec(r.took), strings.ReplaceAll(strings.Join(r.logs, "<br>"), "|", "\\|"))
		}
	}
	cmdTable(w, after)
	b.mu.Lock()
	if len(b.slowSeen) > 0 {
		fmt.Fprintf(w, "\nThe shared lab was slowed by another user's test at times (measurements waited for it to be fast before starting): %s\n", strings.Join(b.slowSeen, "; "))
	}
	b.mu.Unlock()

	if before == nil {
		return
	}
	fmt.Fprintf(w, "\nBefore and after the run pipeline: wesgate at %s (one monitor loop) against this one, %d runs, same link and lab\n\n", o.before, o.beforeSize)
	fmt.Fprintf(w, "| measure | before (%s), %d runs | after, %d runs | after, %d runs |\n", o.before, o.beforeSize, o.beforeSize, after.n)
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	rows := []struct {
		name string
		f    func(*burstResult) string
	}{
		{"1. bare sbatch, one remote command", func(r *burstResult) string { return sec(r.bare) }},
		{"1. POSTs at once until every run has its job id", func(r *burstResult) string { return orErr(r, r.recorded) }},
		{"1. ratio to the bare sbatch", func(r *burstResult) string {
			if r.recorded == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2fx", float64(r.recorded)/float64(r.bare))
		}},
		{"1. poll period p50 / p99 during the submit burst", func(r *burstResult) string {
			return sec(r.submitPolls.periodP50) + " / " + sec(r.submitPolls.periodP99)
		}},
		{"2. squeue empty until every run is terminal", func(r *burstResult) string { return orErr(r, r.settle) }},
		{"2. poll period p50 / p99 during the settle burst", func(r *burstResult) string {
			return sec(r.settlePolls.periodP50) + " / " + sec(r.settlePolls.periodP99)
		}},
		{"2. remote commands per poll tick, settle burst", func(r *burstResult) string { return perTick(r.settleCmds) }},
	}
	for _, row := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", row.name, row.f(before), row.f(afterSmall), row.f(after))
	}
	lr := func(l *loopResult, f func(*loopResult) string) string {
		if l == nil || l.err != nil || len(l.viaWES) == 0 {
			return "-"
		}
		return f(l)
	}
	loopRows := []struct {
		name string
		f    func(*loopResult) string
	}{
		{"6a. loopback: POST to COMPLETE, median", func(l *loopResult) string { return sec(pct(l.viaWES, .5)) }},
		{"6a. loopback: bare sbatch to COMPLETED, median", func(l *loopResult) string { return sec(pct(l.bare, .5)) }},
		{"6a. ratio", func(l *loopResult) string {
			return fmt.Sprintf("%.2fx", float64(pct(l.viaWES, .5))/float64(pct(l.bare, .5)))
		}},
		{"6b. squeue + sacct per minute, 10 active runs", func(l *loopResult) string {
			return fmt.Sprintf("%.1f", float64(l.few.squeue+l.few.sacct)/l.few.window.Minutes())
		}},
		{"6b. squeue + sacct per minute, many active runs", func(l *loopResult) string {
			return fmt.Sprintf("%.1f (%d runs)", float64(l.many.squeue+l.many.sacct)/l.many.window.Minutes(), l.many.active)
		}},
	}
	for _, row := range loopRows {
		fmt.Fprintf(w, "| %s | %s | | %s |\n", row.name, lr(beforeLoop, row.f), lr(loop, row.f))
	}
}

func burstDetails(w io.Writer, prefix string, r *burstResult) {
	if r.recorded == 0 {
		return
	}
	fmt.Fprintf(w, "| %sburst: %d POSTs answered (64 clients), all / p50 of one POST | %s / %s |\n", prefix, r.n, sec(r.answered), ms(r.postP50))
	fmt.Fprintf(w, "| %sburst: jobs in squeue once every run had its job id | %d of %d |\n", prefix, r.inSqueue, r.n)
	if r.settle > 0 {
		fmt.Fprintf(w, "| %ssettle: the released jobs ran (wesgate stopped) until squeue was empty | %s |\n", prefix, sec(r.drain))
		var st []string
		for k, v := range r.states {
			st = append(st, fmt.Sprintf("%s %d", k, v))
		}
		slices.Sort(st)
		fmt.Fprintf(w, "| %ssettle: final states; runs with their output file home (checksum) | %s; %d |\n", prefix, strings.Join(st, ", "), r.withOutputs)
	}
	for _, p := range []struct {
		name string
		s    pollStats
	}{{"submit burst", r.submitPolls}, {"settle burst", r.settlePolls}} {
		fmt.Fprintf(w, "| %s%s: polls; period p50 / p99 / max; poll duration p50 / max | %d; %s / %s / %s; %s / %s |\n", prefix, p.name,
			p.s.polls, sec(p.s.periodP50), sec(p.s.periodP99), sec(p.s.periodMax), ms(p.s.tookP50), ms(p.s.tookMax))
	}
}

// cmdTable prints the remote commands of both bursts by kind.
func cmdTable(w io.Writer, r *burstResult) {
	if r.submitCmds.log == nil {
		return
	}
	fmt.Fprintf(w, "\nRemote commands of the account during the bursts of %d runs: wesgate's log by kind (count (per poll tick); duration p50 / max), and the lab's count (Slurm command shims; sshd sessions)\n\n", r.n)
	fmt.Fprintln(w, "| kind | submit burst | settle burst |")
	fmt.Fprintln(w, "|---|---:|---:|")
	fmt.Fprintf(w, "| poll ticks | %d | %d |\n", r.submitCmds.polls, r.settleCmds.polls)
	kinds := map[string]bool{}
	for k := range r.submitCmds.log {
		kinds[k] = true
	}
	for k := range r.settleCmds.log {
		kinds[k] = true
	}
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	cell := func(c cmdCounts, k string) string {
		if c.polls == 0 {
			return strconv.Itoa(c.log[k])
		}
		return fmt.Sprintf("%d (%.2f); %s / %s", c.log[k], float64(c.log[k])/float64(c.polls), ms(pct(c.took[k], .5)), ms(pct(c.took[k], 1)))
	}
	for _, k := range ks {
		fmt.Fprintf(w, "| log: %s | %s | %s |\n", k, cell(r.submitCmds, k), cell(r.settleCmds, k))
	}
	labKinds := map[string]bool{}
	for k := range r.submitCmds.lab {
		labKinds[k] = true
	}
	for k := range r.settleCmds.lab {
		labKinds[k] = true
	}
	ks = ks[:0]
	for k := range labKinds {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	for _, k := range ks {
		fmt.Fprintf(w, "| lab: %s | %d | %d |\n", k, r.submitCmds.lab[k], r.settleCmds.lab[k])
	}
}

// perTick summarises the Slurm commands per poll tick from wesgate's log.
func perTick(c cmdCounts) string {
	if c.polls == 0 {
		return "-"
	}
	var parts []string
	for _, k := range []string{"squeue", "sacct"} {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, float64(c.log[k])/float64(c.polls)))
	}
	return strings.Join(parts, ", ")
}

func orErr(r *burstResult, d time.Duration) string {
	if r == nil {
		return "-"
	}
	if d == 0 && r.err != nil {
		return "failed"
	}
	return sec(d)
}

func sec(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	if d >= 10*time.Second {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
