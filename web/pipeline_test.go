package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wesgate/wesgate/lab/labenv"
	"github.com/wesgate/wesgate/pipeline"
	"github.com/wesgate/wesgate/wes"
)

// The pipeline tests run hostile workflows next to plain ones and assert
// what the plain ones did meanwhile: one run's files, links, FIFOs or a
// hung command never hold up another run.

// shEngine runs the attached workflow with /bin/sh in work/ and reads its
// stdout as a CWL output object: each test's workflow is the attack.
func shEngine() wes.Engine {
	return wes.Engine{
		Name: "sh", Version: "1", Types: map[string][]string{"CWL": {"v1.2"}},
		Command: []string{"/bin/sh", wes.PHWorkflow}, VersionCommand: []string{"/bin/echo", "1"},
		Outputs: wes.OutputsCWL,
	}
}

// shRun is a run of shEngine with script as its workflow.
func shRun(script string) []e2ePart {
	return e2eCWLRun("wf.sh", "{}", e2ePart{Name: "workflow_attachment", Filename: "wf.sh", Value: script})
}

// Scripts: the run directory is the parent of the working directory.
const (
	plainScript = `set -e
echo plain > out.txt
printf '{"out": {"class": "File", "path": "%s/work/out.txt"}}' "$(dirname "$PWD")"
`
	devZeroScript = `printf '{"zero": {"class": "File", "path": "/dev/zero"}, "up": {"class": "File", "path": "%s/../../../../../../dev/zero"}}' "$(dirname "$PWD")"
`
	symlinkScript = `ln -s /etc/passwd ../outputs/pw
printf '{"pw": {"class": "File", "path": "%s/outputs/pw"}}' "$(dirname "$PWD")"
`
	// The job's own stdout becomes a FIFO while it runs; it lives on for a
	// while so that its log is read live.
	fifoScript = `rm -f ../stdout.txt && mkfifo ../stdout.txt
echo "stdout is a fifo now" >&2
sleep 4
`
)

// pipelineEnv is a wesgate running shEngine on the local executor or on
// the lab's Slurm.
func pipelineEnv(t *testing.T, kind string, tune func(*pipeline.Config)) *testEnv {
	t.Helper()
	o := envOptions{Engines: []wes.Engine{shEngine()}, MaxJobs: 8, Pipeline: tune}
	if kind == "slurm" {
		return newSlurmEnv(t, requireLab(t), o)
	}
	return newTestEnv(t, o)
}

// TestPipelineHostileFiles: outputs that name /dev/zero or a path above the
// run directory, a symlink to /etc/passwd among the outputs, and a job that
// turns its own stdout into a FIFO. Each ends with a clear line; the plain
// run beside them completes with its output, and reading the FIFO run's
// log while it runs answers at once.
func TestPipelineHostileFiles(t *testing.T) {
	for _, kind := range []string{"local", "slurm"} {
		t.Run(kind, func(t *testing.T) {
			env := pipelineEnv(t, kind, func(c *pipeline.Config) { c.CollectTimeout = 20 * time.Second })
			c := http.DefaultClient
			fifo := e2eSubmit(t, c, env, shRun(fifoScript))
			zero := e2eSubmit(t, c, env, shRun(devZeroScript))
			link := e2eSubmit(t, c, env, shRun(symlinkScript))
			plain := e2eSubmit(t, c, env, shRun(plainScript))

			// While the FIFO run runs, its log answers at once (empty), and
			// so does another run's.
			slurmWait(t, c, env, fifo, slurmRunDeadline, wes.Running)
			waitStderr(t, c, env, fifo, "stdout is a fifo now")
			for _, id := range []string{fifo, plain} {
				start := time.Now()
				status, _, _ := e2eGetText(t, c, env.API+"/runs/"+id+"/stdout")
				if status != http.StatusOK || time.Since(start) > 5*time.Second {
					t.Errorf("stdout of %s: %d after %s", id, status, time.Since(start))
				}
			}

			slurmWait(t, c, env, plain, slurmRunDeadline, wes.Complete)
			rl := slurmGetRun(t, c, env, plain)
			var out e2eFile
			if err := json.Unmarshal(rl.Outputs["out"], &out); err != nil || out.Checksum == "" || out.Size != 6 {
				t.Errorf("plain run's output %s: %+v, %v", rl.Outputs["out"], out, err)
			}

			slurmWait(t, c, env, zero, slurmRunDeadline, wes.Complete)
			rl = slurmGetRun(t, c, env, zero)
			for name, raw := range rl.Outputs {
				if bytes.Contains(raw, []byte("checksum")) || bytes.Contains(raw, []byte("/files/")) {
					t.Errorf("output %s outside the run directory was read or served: %s", name, raw)
				}
			}
			wantLine(t, rl, "outside the run directory")

			slurmWait(t, c, env, link, slurmRunDeadline, wes.Complete)
			rl = slurmGetRun(t, c, env, link)
			if bytes.Contains(rl.Outputs["pw"], []byte("/files/")) || bytes.Contains(rl.Outputs["pw"], []byte("checksum")) {
				t.Errorf("the symlink to /etc/passwd is served: %s", rl.Outputs["pw"])
			}
			if status, _, b := e2eGetText(t, c, env.API+"/runs/"+link+"/files/outputs/pw"); status != http.StatusNotFound || bytes.Contains(b, []byte("root:")) {
				t.Errorf("GET the symlink: %d %q", status, b)
			}

			slurmWait(t, c, env, fifo, slurmRunDeadline, wes.ExecutorError)
			wantLine(t, slurmGetRun(t, c, env, fifo), "stdout.txt is not a regular file")
		})
	}
}

// waitStderr waits until the run's stderr holds want.
func waitStderr(t *testing.T, c *http.Client, env *testEnv, id, want string) {
	t.Helper()
	for end := time.Now().Add(slurmRunDeadline); ; {
		_, _, b := e2eGetText(t, c, env.API+"/runs/"+id+"/stderr")
		if strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("stderr of %s: %q, want %q", id, b, want)
		}
		time.Sleep(slurmPoll)
	}
}

// wantLine requires a system_logs line containing want.
func wantLine(t *testing.T, rl slurmRun, want string) {
	t.Helper()
	for _, l := range rl.RunLog.SystemLogs {
		if strings.Contains(l, want) {
			return
		}
	}
	t.Errorf("run %s (%s): no system_logs line with %q in %q", rl.RunID, rl.State, want, rl.RunLog.SystemLogs)
}

// TestPipelineHungSbatch: sbatch never answers. The submission fails at its
// deadline with a system_logs line, while a run submitted before goes on
// being polled and settled; once sbatch answers again the waiting run is
// submitted once. Not parallel: the hang is the whole lab's.
func TestPipelineHungSbatch(t *testing.T) {
	lab := requireLab(t)
	le, _ := labenv.Load(os.Getenv)
	env := newSlurmEnv(t, lab, envOptions{Engines: []wes.Engine{shEngine()}, Pipeline: func(c *pipeline.Config) {
		c.SubmitTimeout, c.SubmitPerJob = 3*time.Second, time.Millisecond
	}})
	c := http.DefaultClient
	before := e2eSubmit(t, c, env, shRun("sleep 4\n"+plainScript))
	slurmWait(t, c, env, before, slurmRunDeadline, wes.Running)
	if err := le.Hang("sbatch"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { le.Slow("sbatch", 0) })
	waiting := e2eSubmit(t, c, env, shRun(plainScript))
	rl := slurmWaitLogged(t, c, env, waiting, "waiting to submit", 30*time.Second)
	if rl.State != wes.Queued {
		t.Errorf("the run whose sbatch hangs is %s, want QUEUED", rl.State)
	}
	// Meanwhile the earlier run is followed to its end.
	slurmWait(t, c, env, before, slurmRunDeadline, wes.Complete)
	if err := le.Slow("sbatch", 0); err != nil {
		t.Fatal(err)
	}
	slurmWait(t, c, env, waiting, slurmRunDeadline, wes.Complete)
	labOneJob(t, env, lab, waiting)
}

// TestPipelineSlowLink: the login node is 50 ms away (a latency proxy of
// the lab's own in front of its sshd). A burst of runs is submitted in a
// few batches, not a round trip or two per run, and every run completes.
func TestPipelineSlowLink(t *testing.T) {
	lab := requireLab(t)
	t.Parallel()
	le, _ := labenv.Load(os.Getenv)
	ctx := t.Context()
	addr, stop, err := le.Lag(ctx, 25*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	far := *lab
	far.SSHAddr = addr
	far.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	if err := le.WriteKnownHosts(far.KnownHosts, addr); err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	env := newSlurmEnv(t, &far, envOptions{Engines: []wes.Engine{shEngine()}, Log: log})
	c := http.DefaultClient
	const n = 20
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ids[i] = e2eSubmit(t, c, env, shRun(plainScript)) })
	}
	wg.Wait()
	for _, id := range ids {
		slurmWait(t, c, env, id, 2*slurmRunDeadline, wes.Complete)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(log.Bytes()), "\n") {
		if strings.Contains(line, `msg="slurm: command`) {
			for _, kind := range []string{"sbatch", "tar", "collect", "squeue", "sacct"} {
				if strings.Contains(line, " kind="+kind+" ") {
					counts[kind]++
				}
			}
		}
	}
	t.Logf("remote commands for %d runs over a 50 ms link: %v", n, counts)
	// The runs arrive over a few hundred milliseconds, so a few batches.
	if counts["sbatch"] > n/2 || counts["tar"] > n/2 {
		t.Errorf("%d sbatch scripts and %d staging streams for %d runs: want batches", counts["sbatch"], counts["tar"], n)
	}
	if counts["collect"] != n {
		t.Errorf("%d collections for %d runs, want one each", counts["collect"], n)
	}

}
