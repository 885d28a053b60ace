package web_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/scheduler/slurm"
	"github.com/wesgate/wesgate/wes"
)

// The Slurm fault tests break the lab the way clusters break (the login
// node's sshd goes away, slurmctld restarts, slurmdbd stops, the host key
// changes, wesgate loses the job id it had just got) and show that every
// run still ends where it should, with one Slurm job each. They stop
// daemons of the shared lab with lab/ctl.sh, so they do not run in
// parallel with each other; every outage ends within 60 s, and in
// t.Cleanup whatever happens.

// labMaxOutage bounds every outage: a daemon the tests stopped is started
// again after it even when a test hangs.
const labMaxOutage = 60 * time.Second

// labCtl runs lab/ctl.sh.
func labCtl(action, daemon string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join("..", "lab", "ctl.sh"), action, daemon).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab/ctl.sh %s %s: %w\n%s", action, daemon, err, out)
	}
	return nil
}

// labOutage is a daemon of the lab that a test stopped.
type labOutage struct {
	daemon string
	since  time.Time
	once   sync.Once
	err    error // of starting it again
}

// labStop stops a daemon of the lab. It is started again by Restore, in
// t.Cleanup, and at the latest after labMaxOutage.
func labStop(t *testing.T, daemon string) *labOutage {
	t.Helper()
	o := &labOutage{daemon: daemon, since: time.Now()}
	backstop := time.AfterFunc(labMaxOutage, func() {
		if err := o.restore(); err != nil {
			fmt.Fprintf(os.Stderr, "restoring the lab after %s: %v\n", labMaxOutage, err)
		}
	})
	t.Cleanup(func() {
		backstop.Stop()
		if err := o.restore(); err != nil {
			t.Errorf("restoring the lab: %v", err)
		}
	})
	if err := labCtl("stop", daemon); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s stopped", daemon)
	return o
}

func (o *labOutage) restore() error {
	o.once.Do(func() { o.err = labCtl("start", o.daemon) })
	return o.err
}

// Restore starts the daemon again and waits until it answers.
func (o *labOutage) Restore(t *testing.T) {
	t.Helper()
	if err := o.restore(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s back after %s", o.daemon, time.Since(o.since).Round(100*time.Millisecond))
}

// sshProxy forwards TCP connections to the lab's sshd, so that a test can
// cut the connections of its wesgate: stopping sshd stops only its
// listener, and the sessions it already serves would go on.
type sshProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex // guards conns and cuts
	conns map[net.Conn]bool
	cuts  int // how often Cut was called
}

func newSSHProxy(t *testing.T, target string) *sshProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &sshProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *sshProxy) Addr() string { return p.ln.Addr().String() }

func (p *sshProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() {
			p.mu.Lock()
			cuts := p.cuts
			p.mu.Unlock()
			s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				c.Close() // sshd is down: refused, as without the proxy
				return
			}
			if !p.track(c, s, cuts) {
				return
			}
			var copies sync.WaitGroup
			copies.Go(func() { io.Copy(s, c); s.Close() })
			copies.Go(func() { io.Copy(c, s); c.Close() })
			copies.Wait()
			p.untrack(c, s)
		})
	}
}

// track records a forwarded connection; one dialled across a Cut is closed.
func (p *sshProxy) track(a, b net.Conn, cuts int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cuts != cuts {
		a.Close()
		b.Close()
		return false
	}
	p.conns[a], p.conns[b] = true, true
	return true
}

func (p *sshProxy) untrack(a, b net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, a)
	delete(p.conns, b)
}

// Cut closes every connection that goes through the proxy.
func (p *sshProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts++
	for c := range p.conns {
		c.Close()
	}
}

// labKnownHosts writes a known_hosts file that holds key for addr and
// returns its path; with a nil key, the lab's own host key.
func labKnownHosts(t *testing.T, lab *labEnv, addr string, key ssh.PublicKey) string {
	t.Helper()
	if key == nil {
		b, err := os.ReadFile(lab.KnownHosts)
		if err != nil {
			t.Fatal(err)
		}
		_, _, key, _, _, err = ssh.ParseKnownHosts(b)
		if err != nil {
			t.Fatalf("%s: %v", lab.KnownHosts, err)
		}
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// slurmWaitLogged waits until the run's system_logs has a line containing
// want, and returns the run log.
func slurmWaitLogged(t *testing.T, c *http.Client, env *testEnv, id, want string, deadline time.Duration) slurmRun {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		rl := slurmGetRun(t, c, env, id)
		if slices.ContainsFunc(rl.RunLog.SystemLogs, func(l string) bool { return strings.Contains(l, want) }) {
			return rl
		}
		if rl.State.Terminal() || time.Now().After(end) {
			t.Fatalf("run %s is %s with system_logs %q, want a line with %q", id, rl.State, rl.RunLog.SystemLogs, want)
		}
		time.Sleep(slurmPoll)
	}
}

// slurmWaitRunning waits until the run is RUNNING and returns its job id.
func slurmWaitRunning(t *testing.T, c *http.Client, env *testEnv, id string) string {
	t.Helper()
	slurmWait(t, c, env, id, slurmRunDeadline, wes.Running)
	return slurmJobID(t, env, id, time.Second)
}

// waitingLine is what the monitor writes to system_logs while it cannot submit.
const waitingLine = "waiting to submit"

// TestSlurmFaultSSHDown: the login node's sshd goes away for 20 s, with
// its sessions, while two runs are active; a run created meanwhile waits
// in QUEUED and says so in system_logs. When sshd is back, all three end
// COMPLETE with their outputs, and each has exactly one Slurm job.
func TestSlurmFaultSSHDown(t *testing.T) {
	lab := requireLab(t)
	requireCWLTool(t)
	proxy := newSSHProxy(t, lab.SSHAddr)
	viaProxy := *lab
	viaProxy.SSHAddr = proxy.Addr()
	viaProxy.KnownHosts = labKnownHosts(t, lab, proxy.Addr(), nil)
	env := newSlurmEnv(t, &viaProxy, envOptions{})
	c := contractClient(t, env)

	words := []string{"first", "second", "third"}
	ids := make([]string, 3)
	for i := range 2 {
		ids[i] = e2eSubmit(t, c, env, slurmEchoRun(15, words[i]))
	}
	for i := range 2 {
		slurmWaitRunning(t, c, env, ids[i])
	}

	outage := labStop(t, "sshd")
	proxy.Cut()
	ids[2] = e2eSubmit(t, c, env, slurmEchoRun(1, words[2]))
	rl := slurmWaitLogged(t, c, env, ids[2], waitingLine, 15*time.Second)
	if job := slurmStored(t, env, ids[2]).JobID; rl.State != wes.Queued || job != "" {
		t.Errorf("the run created while sshd is down is %s with job %q, want QUEUED without a job", rl.State, job)
	}
	time.Sleep(time.Until(outage.since.Add(20 * time.Second)))
	for _, id := range ids {
		if st := slurmGetRun(t, c, env, id).State; st.Terminal() {
			t.Errorf("run %s ended %s while the cluster could not be reached", id, st)
		}
	}
	outage.Restore(t)

	for i, id := range ids {
		slurmWait(t, c, env, id, slurmRunDeadline, wes.Complete)
		slurmCheckEcho(t, c, env, id, words[i])
		labOneJob(t, env, lab, id)
	}
	if rl := slurmGetRun(t, c, env, ids[2]); !slices.ContainsFunc(rl.RunLog.SystemLogs, func(l string) bool { return strings.Contains(l, waitingLine) }) {
		t.Errorf("system_logs of the run that waited: %q, want the wait kept", rl.RunLog.SystemLogs)
	}
}

// TestSlurmFaultLostJobID models wesgate going down between sbatch and
// recording the job id: the job runs, but the run has no job id (nor run
// directory) in the store. The monitor submits again, finds the job by its
// name instead of submitting a second one, and the run completes with it.
func TestSlurmFaultLostJobID(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{})
	c := contractClient(t, env)

	id := e2eSubmit(t, c, env, slurmEchoRun(8, "once"))
	jobID := slurmJobID(t, env, id, 30*time.Second)
	for end := time.Now().Add(30 * time.Second); labQueued(t, lab)[jobID] == ""; {
		if time.Now().After(end) {
			t.Fatalf("job %s of run %s is not in squeue", jobID, id)
		}
		time.Sleep(slurmPoll)
	}
	err := env.DB.UpdateRun(context.Background(), id, func(r *wes.Run) error {
		r.JobID, r.RunDir = "", ""
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The monitor finds the job again within a few ticks.
	if again := slurmJobID(t, env, id, 30*time.Second); again != jobID {
		t.Fatalf("the run now records job %s, want the job it had, %s", again, jobID)
	}
	slurmWait(t, c, env, id, slurmRunDeadline, wes.Complete)
	slurmCheckEcho(t, c, env, id, "once")
	labOneJob(t, env, lab, id)
	if r := slurmStored(t, env, id); r.RunDir != lab.Base+"/"+lab.SvcUser+"/"+id {
		t.Errorf("run dir %q after the job was found again", r.RunDir)
	}
}

// TestSlurmFaultResubmitEndedJob: the same, one level down and later: a
// fresh executor (a restarted wesgate) submitting a job that an earlier one
// staged and submitted, and that has ended meanwhile, gets the id of that
// job back and submits nothing.
func TestSlurmFaultResubmitEndedJob(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	log := slog.New(slog.NewTextHandler(slurmLogBuffer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	var b [8]byte
	rand.Read(b[:])
	runID := fmt.Sprintf("%08x-0000-4000-8000-%012x", b[:4], b[4:])
	first := newLabScheduler(t, lab, log)
	acct := first.Account("anyone")
	job := scheduler.Job{Name: wes.JobName(runID), User: acct, Dir: first.RunDir(acct, runID)}
	var err error
	job.Script, err = scheduler.Script(scheduler.ScriptSpec{Name: job.Name, Dir: job.Dir, Command: []string{"true"},
		Directives: first.Directives(nil)})
	if err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	if err := os.Mkdir(filepath.Join(local, scheduler.WorkDir), 0o750); err != nil {
		t.Fatal(err)
	}
	jobID, err := first.Submit(ctx, job, local)
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(60 * time.Second); ; {
		st, err := first.Status(ctx, acct, []string{jobID})
		if err != nil {
			t.Fatal(err)
		}
		if st[jobID].Terminal() {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("job %s has not ended: %+v", jobID, st[jobID])
		}
		time.Sleep(slurmPoll)
	}
	job.Retry = true // the store says this run's submission was attempted
	again, err := newLabScheduler(t, lab, log).Submit(ctx, job, local)
	if err != nil || again != jobID {
		t.Fatalf("the second Submit returned %q, %v; want the first job %s", again, err, jobID)
	}
	labJobByID(t, lab, jobID)
	if jobs := labJobsOfRun(t, lab, runID); len(jobs) != 1 || jobs[0].ID != jobID || jobs[0].State != "COMPLETED" {
		t.Errorf("jobs named %s: %+v, want just the completed job %s", job.Name, jobs, jobID)
	}
}

// TestSlurmFaultSlurmctldRestart: slurmctld restarts while a run's job
// runs; the job goes on and the run ends COMPLETE.
func TestSlurmFaultSlurmctldRestart(t *testing.T) {
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{})
	c := contractClient(t, env)
	id := e2eSubmit(t, c, env, slurmEchoRun(10, "restarted"))
	jobID := slurmWaitRunning(t, c, env, id)
	outage := labStop(t, "slurmctld")
	outage.Restore(t)
	if st := labQueued(t, lab)[jobID]; st != "RUNNING" && st != "COMPLETING" && st != "" {
		t.Errorf("job %s is %s after slurmctld restarted", jobID, st)
	}
	slurmWait(t, c, env, id, slurmRunDeadline, wes.Complete)
	slurmCheckEcho(t, c, env, id, "restarted")
	labOneJob(t, env, lab, id)
}

// TestSlurmFaultSlurmctldDownAtSubmit: a run created while slurmctld is
// down is not failed because sbatch could not reach it (sbatch exits 1
// then, as for a refused job): it waits in QUEUED, says so, and runs when
// slurmctld is back.
func TestSlurmFaultSlurmctldDownAtSubmit(t *testing.T) {
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{})
	c := contractClient(t, env)
	outage := labStop(t, "slurmctld")
	id := e2eSubmit(t, c, env, slurmEchoRun(0, "later"))
	// sbatch tries to reach slurmctld for about 13 s before it gives up.
	rl := slurmWaitLogged(t, c, env, id, waitingLine, 45*time.Second)
	if rl.State != wes.Queued {
		t.Errorf("the run is %s while slurmctld is down, want QUEUED", rl.State)
	}
	outage.Restore(t)
	slurmWait(t, c, env, id, slurmRunDeadline, wes.Complete)
	slurmCheckEcho(t, c, env, id, "later")
	labOneJob(t, env, lab, id)
}

// TestSlurmFaultSlurmdbdDown: slurmdbd stops while a run's job runs, so
// sacct cannot report the job when it ends. The run is not settled
// wrongly meanwhile (GoneGrace is 3 s here, so the outage lasts well past
// it), and ends COMPLETE with its output and exit code once slurmdbd is
// back.
func TestSlurmFaultSlurmdbdDown(t *testing.T) {
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{GoneGrace: 3 * time.Second})
	c := contractClient(t, env)
	id := e2eSubmit(t, c, env, slurmEchoRun(6, "accounted"))
	jobID := slurmWaitRunning(t, c, env, id)
	outage := labStop(t, "slurmdbd")
	if _, err := labRun(t, lab, "sacct --noheader --jobs="+jobID); err == nil {
		t.Logf("note: sacct answers while slurmdbd is down")
	}
	for end := time.Now().Add(40 * time.Second); labQueued(t, lab)[jobID] != ""; {
		if time.Now().After(end) {
			t.Fatalf("job %s did not end during the slurmdbd outage", jobID)
		}
		time.Sleep(slurmPoll)
	}
	ended := time.Now()
	var seen []wes.State
	for time.Since(ended) < 8*time.Second {
		st := slurmGetRun(t, c, env, id).State
		if !slices.Contains(seen, st) {
			seen = append(seen, st)
		}
		if st.Terminal() && st != wes.Complete {
			t.Fatalf("the run was settled %s while slurmdbd was down", st)
		}
		time.Sleep(slurmPoll)
	}
	t.Logf("states while slurmdbd was down and the job had ended: %v", seen)
	if _, err := labRun(t, lab, "sacct --noheader --jobs="+jobID); err == nil {
		// The lab is shared: lab/up.sh or another test may start it again.
		t.Logf("note: slurmdbd was started again by someone else during the outage")
	}
	outage.Restore(t)
	slurmWait(t, c, env, id, slurmRunDeadline, wes.Complete)
	slurmCheckEcho(t, c, env, id, "accounted")
	labOneJob(t, env, lab, id)

	// Right after slurmdbd is back, sacct may report the job ended while its
	// batch step has no end yet: the run may be settled with such a task.
	// Its TaskLog still keeps every field of Log (contractClient checks).
	started := slurmStored(t, env, id).Started
	if err := env.DB.ReplaceTasks(context.Background(), id, []wes.Task{{ID: "batch", Name: "batch", Start: started}}); err != nil {
		t.Fatal(err)
	}
	var task struct {
		EndTime  *string `json:"end_time"`
		ExitCode *int    `json:"exit_code"`
	}
	e2eGetJSON(t, c, env.API+"/runs/"+id+"/tasks/batch", http.StatusOK, &task)
	if task.EndTime == nil || *task.EndTime != "" || task.ExitCode == nil || *task.ExitCode != -1 {
		t.Errorf("a task without an end: end_time %v, exit_code %s; want \"\" and -1", task.EndTime, e2eCode(task.ExitCode))
	}
	slurmGetRun(t, c, env, id)
}

// TestSlurmFaultHostKeyChanged: with a known_hosts that holds another key
// for the login node, the executor refuses to connect, and a run stays
// QUEUED, saying it waits, with nothing staged or submitted.
func TestSlurmFaultHostKeyChanged(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	spoofed := *lab
	spoofed.KnownHosts = labKnownHosts(t, lab, lab.SSHAddr, other)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	executor := newLabScheduler(t, &spoofed, log)
	_, err = executor.Status(context.Background(), spoofed.SvcUser, []string{"1"})
	var hk *slurm.HostKeyError
	if !errors.As(err, &hk) {
		t.Errorf("Status with a wrong host key: %v, want a HostKeyError", err)
	}
	if h := executor.Pool().Health(); len(h) != 1 || h[0].Connected || !h[0].HostKey {
		t.Errorf("health = %+v, want one account, not connected, with a host key error", h)
	}

	requireCWLTool(t)
	env := newSlurmEnv(t, &spoofed, envOptions{})
	c := contractClient(t, env)
	id := e2eSubmit(t, c, env, slurmEchoRun(0, "never"))
	slurmWaitLogged(t, c, env, id, waitingLine, 15*time.Second)
	time.Sleep(2 * time.Second) // a few more ticks
	rl := slurmGetRun(t, c, env, id)
	if r := slurmStored(t, env, id); rl.State != wes.Queued || r.JobID != "" || r.RunDir != "" {
		t.Errorf("the run is %s with job %q and run dir %q, want QUEUED without either", rl.State, r.JobID, r.RunDir)
	}
	if out := labMust(t, lab, "squeue --me --noheader --states=all --format=%i --name="+wes.JobName(id)); strings.TrimSpace(out) != "" {
		t.Errorf("squeue lists jobs for the run: %q", out)
	}
	if jobs := labJobsOfRun(t, lab, id); len(jobs) != 0 {
		t.Errorf("sacct lists jobs for the run: %+v", jobs)
	}
	if _, err := os.Stat(filepath.Join(lab.Base, lab.SvcUser, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run was staged on the cluster: %v", err)
	}
}
