package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/wesgate/wesgate/wes"
)

// The Slurm end-to-end tests run real workflows (Debian's cwltool) as jobs
// of the lab's Slurm cluster (lab/README.md), submitted over SSH as the
// service account, and read everything back through contractClient. The
// lab is shared: the tests look only at their own jobs (found by the name
// wesgate gives them, wes-<run id>) and leave the cluster as they found it.

const (
	// slurmRunDeadline bounds one run: cwltool takes 2-5 s in a job, more
	// when the lab's two CPUs are busy with other tests' jobs.
	slurmRunDeadline = 90 * time.Second
	// slurmPoll is how often the tests look at a run or the cluster.
	slurmPoll = 250 * time.Millisecond
)

// newSlurmEnv starts a wesgate whose jobs go to the lab's Slurm. Unless o
// says otherwise, the monitor polls every 500 ms, and GoneGrace is 5 s:
// greater than zero, as in production (1 min), so that a job in the moment
// between leaving squeue and reaching sacct (a few tenths of a second, see
// lab/README.md) is looked for once more before its run is settled from the
// wrapper's rc file alone, which knows neither the Slurm steps nor Slurm's
// end time.
func newSlurmEnv(t *testing.T, lab *labEnv, o envOptions) *testEnv {
	t.Helper()
	o.Slurm = lab
	if o.PollInterval == 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.GoneGrace == 0 {
		o.GoneGrace = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slurmLogBuffer(t)
	}
	return newTestEnv(t, o)
}

// slurmLogBuffer collects wesgate's log and shows its end when t fails.
func slurmLogBuffer(t *testing.T) io.Writer {
	w := &syncBuffer{}
	t.Cleanup(func() { // registered before the env's cleanup, so it runs after it
		if t.Failed() {
			b := w.Bytes()
			if len(b) > 30000 {
				b = b[len(b)-30000:]
			}
			t.Logf("wesgate log (end):\n%s", b)
		}
	})
	return w
}

type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// labRun runs a shell command on the lab's login node as the service
// account, over its own SSH connection, and returns its stdout. The
// commands are the tests' own, made of job and run ids.
func labRun(t testing.TB, lab *labEnv, cmd string) (string, error) {
	t.Helper()
	key, err := os.ReadFile(lab.SvcKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	hk, err := knownhosts.New(lab.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	addr := lab.SSHAddr
	cl, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: lab.SvcUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hk, Timeout: 10 * time.Second})
	if err != nil {
		return "", err
	}
	defer cl.Close()
	sess, err := cl.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	var stdout, stderr bytes.Buffer
	sess.Stdout, sess.Stderr = &stdout, &stderr
	timer := time.AfterFunc(60*time.Second, func() { cl.Close() })
	defer timer.Stop()
	err = sess.Run("export TZ=UTC SLURM_TIME_FORMAT=%Y-%m-%dT%H:%M:%S; " + cmd)
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", cmd, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// labMust is labRun that fails the test on an error.
func labMust(t testing.TB, lab *labEnv, cmd string) string {
	t.Helper()
	out, err := labRun(t, lab, cmd)
	if err != nil {
		t.Fatalf("on the lab: %v", err)
	}
	return out
}

// labJob is one job as sacct -X reports it.
type labJob struct {
	ID, Name, State, Partition, Start, End, ExitCode, Timelimit string
}

func parseLabJobs(t testing.TB, out string) []labJob {
	t.Helper()
	var jobs []labJob
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 8 {
			t.Fatalf("sacct line %q has %d fields, want 8", line, len(f))
		}
		jobs = append(jobs, labJob{ID: f[0], Name: f[1], State: f[2], Partition: f[3], Start: f[4], End: f[5], ExitCode: f[6], Timelimit: f[7]})
	}
	return jobs
}

const labSacctFormat = "--noheader --parsable2 -X --format=JobID,JobName,State,Partition,Start,End,ExitCode,Timelimit"

// labJobsOfRun lists the service account's jobs named for the run, as sacct
// knows them (without -j, sacct lists a job once its full record is in).
func labJobsOfRun(t testing.TB, lab *labEnv, runID string) []labJob {
	t.Helper()
	return parseLabJobs(t, labMust(t, lab, "sacct "+labSacctFormat+" --starttime=now-7days --name="+wes.JobName(runID)))
}

// labJob returns sacct's record of one job, waiting until it is complete
// (a job that ended within a second first has a stub record).
func labJobByID(t testing.TB, lab *labEnv, jobID string) labJob {
	t.Helper()
	end := time.Now().Add(30 * time.Second)
	for {
		jobs := parseLabJobs(t, labMust(t, lab, "sacct "+labSacctFormat+" --jobs="+jobID))
		if len(jobs) == 1 && jobs[0].Name != "allocation" && jobs[0].Partition != "" && jobs[0].End != "Unknown" {
			return jobs[0]
		}
		if time.Now().After(end) {
			t.Fatalf("sacct has no complete record of job %s: %+v", jobID, jobs)
		}
		time.Sleep(slurmPoll)
	}
}

// labOneJob requires that exactly one Slurm job carries the run's name,
// and that it is the job the run records.
func labOneJob(t testing.TB, env *testEnv, lab *labEnv, runID string) labJob {
	t.Helper()
	jobID := slurmJobID(t, env, runID, time.Second)
	want := labJobByID(t, lab, jobID) // waits for the full record, which the name query needs
	jobs := labJobsOfRun(t, lab, runID)
	if len(jobs) != 1 || jobs[0].ID != jobID {
		t.Errorf("jobs named %s: %+v, want just job %s", wes.JobName(runID), jobs, jobID)
	}
	return want
}

// labQueued lists the service account's jobs that squeue shows (pending,
// running, completing), id -> state.
func labQueued(t testing.TB, lab *labEnv) map[string]string {
	t.Helper()
	jobs := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(labMust(t, lab, "squeue --me --noheader '--format=%i|%T'")), "\n") {
		if id, state, ok := strings.Cut(line, "|"); ok {
			jobs[id] = state
		}
	}
	return jobs
}

// slurmRun is the part of a RunLog these tests read beyond e2eRunLog.
type slurmRun struct {
	e2eRunLog
	Name string
}

func slurmGetRun(t testing.TB, c *http.Client, env *testEnv, id string) slurmRun {
	t.Helper()
	var rl slurmRun
	e2eGetJSON(t, c, env.API+"/runs/"+id, http.StatusOK, &rl.e2eRunLog)
	var named struct {
		RunLog struct {
			Name string `json:"name"`
		} `json:"run_log"`
	}
	e2eGetJSON(t, c, env.API+"/runs/"+id, http.StatusOK, &named)
	rl.Name = named.RunLog.Name
	return rl
}

// slurmWait polls the run's status until it is in one of want. A terminal
// state that is not wanted, or the deadline, fails the test with the run's
// log and stderr.
func slurmWait(t testing.TB, c *http.Client, env *testEnv, id string, deadline time.Duration, want ...wes.State) wes.State {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		var st wes.RunStatus
		e2eGetJSON(t, c, env.API+"/runs/"+id+"/status", http.StatusOK, &st)
		if slices.Contains(want, st.State) {
			return st.State
		}
		if st.State.Terminal() || time.Now().After(end) {
			_, _, stderr := e2eGetText(t, c, env.API+"/runs/"+id+"/stderr")
			var rl json.RawMessage
			e2eGetJSON(t, c, env.API+"/runs/"+id, http.StatusOK, &rl)
			t.Fatalf("run %s is %s, want %v\nrun log: %s\nstderr:\n%s", id, st.State, want, rl, stderr)
		}
		time.Sleep(slurmPoll)
	}
}

// slurmStored returns the run as the store holds it (job id, run dir).
func slurmStored(t testing.TB, env *testEnv, id string) *wes.Run {
	t.Helper()
	r, err := env.Service.GetRun(context.Background(), wes.User{Admin: true}, id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// slurmJobID waits until the run has a Slurm job and returns its id.
func slurmJobID(t testing.TB, env *testEnv, id string, deadline time.Duration) string {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		r := slurmStored(t, env, id)
		if r.JobID != "" {
			return r.JobID
		}
		if time.Now().After(end) {
			t.Fatalf("run %s (%s) has no Slurm job after %s; system_logs %q", id, r.State, deadline, r.SystemLogs)
		}
		time.Sleep(slurmPoll)
	}
}

// slurmTime converts a Slurm time (UTC, as labRun asks for) to WES's format.
func slurmTime(s string) string { return s + "Z" }

// slurmHeldRun creates a run and holds its Slurm job before it starts, as
// the service account. A job starts about half a second after sbatch, so a
// loop on the login node waits for the job to appear by name and holds it
// at once. scontrol hold also "succeeds" on a running job (which goes on
// running), so the job must still be pending after it; when the job won,
// the run is cancelled and tried again (at most three times).
func slurmHeldRun(t *testing.T, c *http.Client, env *testEnv, lab *labEnv, parts []e2ePart) (runID, jobID string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		id := e2eSubmit(t, c, env, parts)
		name := wes.JobName(id)
		out, err := labRun(t, lab, fmt.Sprintf(`for i in $(seq 400); do
  j=$(squeue --me --noheader --name=%s --format=%%i)
  if [ -n "$j" ]; then
    scontrol hold "$j" && [ "$(squeue --noheader --jobs="$j" --format=%%T)" = PENDING ] && echo "$j" && exit
    echo "job $j started before it was held" >&2; exit 4
  fi
  sleep 0.05
done
echo "no job named %s appeared" >&2; exit 3`, name, name))
		if err == nil {
			jobID = strings.TrimSpace(out)
			if got := slurmJobID(t, env, id, 30*time.Second); got != jobID {
				t.Fatalf("held job %s, but the run records job %s", jobID, got)
			}
			return id, jobID
		}
		if attempt == 3 {
			t.Fatalf("could not hold the job of a run in three attempts: %v", err)
		}
		t.Logf("attempt %d: the job started before it could be held (%v); trying again", attempt, err)
		e2eDoJSON(t, c, http.MethodPost, env.API+"/runs/"+id+"/cancel", http.StatusOK, nil)
		slurmWait(t, c, env, id, 30*time.Second, wes.Canceled)
	}
}

// slurmEchoTool writes its input, after a pause, to out.txt.
const slurmEchoTool = `cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'sleep "$0"; printf "done %s\n" "$1"']
inputs:
  pause: {type: int, inputBinding: {position: 1}}
  word: {type: string, inputBinding: {position: 2}}
stdout: out.txt
outputs:
  out: {type: stdout}
`

// slurmEchoRun is a run of slurmEchoTool that pauses so many seconds.
func slurmEchoRun(pause int, word string) []e2ePart {
	return e2eCWLRun("echo.cwl", fmt.Sprintf(`{"pause":%d,"word":%q}`, pause, word), e2eAttach("echo.cwl", slurmEchoTool))
}

// slurmCheckEcho requires the run to be COMPLETE with out.txt saying word.
func slurmCheckEcho(t testing.TB, c *http.Client, env *testEnv, id, word string) {
	t.Helper()
	rl := slurmGetRun(t, c, env, id)
	if rl.State != wes.Complete || rl.RunLog.ExitCode == nil || *rl.RunLog.ExitCode != 0 {
		t.Errorf("run %s: %s with exit_code %s, want COMPLETE 0", id, rl.State, e2eCode(rl.RunLog.ExitCode))
	}
	var out e2eFile
	if err := json.Unmarshal(rl.Outputs["out"], &out); err != nil {
		t.Errorf("run %s: outputs %v: %v", id, rl.Outputs, err)
		return
	}
	e2eCheckFile(t, c, env, id, out, "done "+word+"\n")
}

// TestSlurmWorkflow runs the two-step workflow of TestE2EWorkflow (tools
// attached under tools/) as a Slurm job and reads back what Slurm and the
// job left: outputs copied home, logs, the job's steps, Slurm's times.
func TestSlurmWorkflow(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{})
	c := contractClient(t, env)

	id := e2eSubmit(t, c, env, e2eCWLRun("workflow.cwl", `{"infile":{"class":"File","location":"input.txt"}}`,
		e2eAttach("workflow.cwl", e2eWorkflow),
		e2eAttach("tools/step1.cwl", e2eStep1),
		e2eAttach("tools/step2.cwl", e2eStep2),
		e2eAttach("input.txt", e2eInput)))
	slurmWait(t, c, env, id, slurmRunDeadline, wes.Complete)

	stored := slurmStored(t, env, id)
	job := labOneJob(t, env, lab, id)
	if want := lab.Base + "/" + lab.SvcUser + "/" + id; stored.RunDir != want {
		t.Errorf("run dir %q, want %q", stored.RunDir, want)
	}
	if job.State != "COMPLETED" || job.ExitCode != "0:0" || job.Partition != lab.Partition {
		t.Errorf("sacct: %+v, want COMPLETED 0:0 in %s", job, lab.Partition)
	}

	rl := slurmGetRun(t, c, env, id)
	api := env.API + "/runs/" + id
	log := rl.RunLog
	if log.ExitCode == nil || *log.ExitCode != 0 {
		t.Errorf("exit_code = %s, want 0", e2eCode(log.ExitCode))
	}
	if log.StartTime != slurmTime(job.Start) || log.EndTime != slurmTime(job.End) {
		t.Errorf("start_time %q, end_time %q; want Slurm's %s and %s", log.StartTime, log.EndTime, job.Start, job.End)
	}
	if !slices.ContainsFunc(log.Cmd, func(a string) bool { return strings.HasSuffix(a, "cwltool") }) ||
		!slices.Contains(log.Cmd, stored.RunDir+"/outputs") {
		t.Errorf("cmd = %q, want cwltool writing to %s/outputs", log.Cmd, stored.RunDir)
	}

	// The output was produced on the cluster and copied home.
	var result e2eFile
	if err := json.Unmarshal(rl.Outputs["result"], &result); err != nil || len(rl.Outputs) != 1 {
		t.Fatalf("outputs = %v, want just result (%v)", rl.Outputs, err)
	}
	if result.Basename != "result.txt" {
		t.Errorf("result is %q, want result.txt", result.Basename)
	}
	e2eCheckFile(t, c, env, id, result, e2eResult)
	if b, err := os.ReadFile(filepath.Join(env.Data, "runs", id, "outputs", "result.txt")); err != nil || string(b) != e2eResult {
		t.Errorf("the output is not home in the data directory: %q, %v", b, err)
	}
	// The attachment kept its directory on the cluster too.
	if b, err := os.ReadFile(filepath.Join(stored.RunDir, "work", "tools", "step1.cwl")); err != nil || string(b) != e2eStep1 {
		t.Errorf("tools/step1.cwl on the cluster: %q, %v", b, err)
	}

	status, _, stdout := e2eGetText(t, c, log.Stdout)
	var cwlOut struct {
		Result struct{ Basename, Location string }
	}
	if log.Stdout != api+"/stdout" || status != http.StatusOK || json.Unmarshal(stdout, &cwlOut) != nil ||
		cwlOut.Result.Basename != "result.txt" || !strings.HasPrefix(cwlOut.Result.Location, "file://"+stored.RunDir+"/outputs/") {
		t.Errorf("GET %s: %d %q, want cwltool's output object naming %s/outputs/result.txt", log.Stdout, status, stdout, stored.RunDir)
	}
	status, _, stderr := e2eGetText(t, c, log.Stderr)
	if log.Stderr != api+"/stderr" || status != http.StatusOK || !bytes.Contains(stderr, []byte("Final process status is success")) {
		t.Errorf("GET %s: %d, want cwltool's log; got:\n%s", log.Stderr, status, stderr)
	}

	var tasks struct {
		TaskLogs []slurmTask `json:"task_logs"`
	}
	e2eGetJSON(t, c, rl.TaskLogsURL, http.StatusOK, &tasks)
	i := slices.IndexFunc(tasks.TaskLogs, func(x slurmTask) bool { return x.Name == "batch" })
	if i < 0 {
		t.Fatalf("tasks = %+v, want Slurm's batch step", tasks.TaskLogs)
	}
	batch := tasks.TaskLogs[i]
	if batch.ID != "batch" || batch.ExitCode == nil || *batch.ExitCode != 0 || batch.StartTime == "" || batch.EndTime == "" ||
		!slices.Equal(batch.Cmd, log.Cmd) {
		t.Errorf("batch task = %+v, want id batch, exit 0, times, and the run's command", batch)
	}
	for _, task := range tasks.TaskLogs {
		if task.ExitCode == nil || *task.ExitCode != 0 || task.EndTime == "" {
			t.Errorf("task %s: exit_code %s, end_time %q; want 0 and an end", task.ID, e2eCode(task.ExitCode), task.EndTime)
		}
	}
}

// slurmTask is the part of a TaskLog the tests read.
type slurmTask struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	ExitCode  *int     `json:"exit_code"`
	StartTime string   `json:"start_time"`
	EndTime   string   `json:"end_time"`
	Cmd       []string `json:"cmd"`
}

// TestSlurmFailingTool: a tool that fails makes the Slurm job FAILED and
// the run EXECUTOR_ERROR with cwltool's exit code, in the run and its task.
func TestSlurmFailingTool(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{})
	c := contractClient(t, env)
	tool := `cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, "echo failing on purpose >&2; exit 3"]
inputs: []
outputs: []
`
	id := e2eSubmit(t, c, env, e2eCWLRun("fail.cwl", "{}", e2eAttach("fail.cwl", tool)))
	slurmWait(t, c, env, id, slurmRunDeadline, wes.ExecutorError)
	rl := slurmGetRun(t, c, env, id)
	// cwltool ends with exit code 1 when a tool fails (permanentFail).
	if rl.RunLog.ExitCode == nil || *rl.RunLog.ExitCode != 1 {
		t.Errorf("exit_code = %s, want cwltool's 1", e2eCode(rl.RunLog.ExitCode))
	}
	if !slices.ContainsFunc(rl.RunLog.SystemLogs, func(l string) bool { return strings.Contains(l, "exited with code 1") }) {
		t.Errorf("system_logs = %q, want the engine's exit code explained", rl.RunLog.SystemLogs)
	}
	_, _, stderr := e2eGetText(t, c, rl.RunLog.Stderr)
	if !bytes.Contains(stderr, []byte("failing on purpose")) {
		t.Errorf("stderr does not show the tool's failure:\n%s", stderr)
	}
	job := labOneJob(t, env, lab, id)
	if job.State != "FAILED" || job.ExitCode != "1:0" || rl.RunLog.EndTime != slurmTime(job.End) {
		t.Errorf("sacct: %+v; want FAILED 1:0 ending at the run's end_time %s", job, rl.RunLog.EndTime)
	}
	var task struct {
		ExitCode *int `json:"exit_code"`
	}
	e2eGetJSON(t, c, rl.TaskLogsURL+"/batch", http.StatusOK, &task)
	if task.ExitCode == nil || *task.ExitCode != 1 {
		t.Errorf("batch task exit_code = %s, want 1", e2eCode(task.ExitCode))
	}
}

// TestSlurmHeldJob: a job held in Slurm makes its run PAUSED; released,
// it runs to COMPLETE. Released but due to begin only in an hour, it is
// QUEUED, and squeue's start column holds that estimate: the run has no
// start_time until the job really starts, and then Slurm's.
func TestSlurmHeldJob(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{})
	c := contractClient(t, env)
	id, jobID := slurmHeldRun(t, c, env, lab, slurmEchoRun(0, "released"))
	slurmWait(t, c, env, id, 30*time.Second, wes.Paused)
	if st := labQueued(t, lab)[jobID]; st != "PENDING" {
		t.Fatalf("the held job %s is %q in squeue, want PENDING", jobID, st)
	}

	labMust(t, lab, "scontrol update JobId="+jobID+" StartTime=now+3600 && scontrol release "+jobID)
	slurmWait(t, c, env, id, 30*time.Second, wes.Queued)
	estimate := strings.TrimSpace(labMust(t, lab, "squeue --noheader --format=%S --jobs="+jobID))
	time.Sleep(2 * time.Second) // a few ticks of the monitor
	if rl := slurmGetRun(t, c, env, id); rl.State != wes.Queued || rl.RunLog.StartTime != "" {
		t.Errorf("a run whose job waits to begin at %s is %s with start_time %q, want QUEUED without one",
			estimate, rl.State, rl.RunLog.StartTime)
	}

	labMust(t, lab, "scontrol update JobId="+jobID+" StartTime=now")
	slurmWait(t, c, env, id, slurmRunDeadline, wes.Complete)
	slurmCheckEcho(t, c, env, id, "released")
	job := labOneJob(t, env, lab, id)
	if rl := slurmGetRun(t, c, env, id); rl.RunLog.StartTime != slurmTime(job.Start) || rl.RunLog.EndTime != slurmTime(job.End) {
		t.Errorf("start_time %q, end_time %q; want the job's %s and %s", rl.RunLog.StartTime, rl.RunLog.EndTime, job.Start, job.End)
	}
}

// TestSlurmCancel cancels a pending (held) run and a running one: each
// ends CANCELED within 20 s and its job leaves the queue.
func TestSlurmCancel(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{})

	check := func(t *testing.T, c *http.Client, id, jobID string) {
		start := time.Now()
		e2eDoJSON(t, c, http.MethodPost, env.API+"/runs/"+id+"/cancel", http.StatusOK, nil)
		slurmWait(t, c, env, id, 20*time.Second, wes.Canceled)
		t.Logf("CANCELED %s after the request", time.Since(start).Round(time.Millisecond))
		if rl := slurmGetRun(t, c, env, id); rl.RunLog.EndTime == "" {
			t.Errorf("a cancelled run has no end_time")
		}
		for end := time.Now().Add(10 * time.Second); ; {
			st, queued := labQueued(t, lab)[jobID]
			if !queued {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("job %s of the cancelled run is still in squeue: %s", jobID, st)
			}
			time.Sleep(slurmPoll)
		}
		if job := labJobByID(t, lab, jobID); !strings.HasPrefix(job.State, "CANCELLED") && job.State != "FAILED" && job.State != "COMPLETED" {
			t.Errorf("sacct: %+v, want the job ended", job)
		}
	}

	t.Run("pending", func(t *testing.T) {
		t.Parallel()
		c := contractClient(t, env)
		id, jobID := slurmHeldRun(t, c, env, lab, slurmEchoRun(0, "never"))
		slurmWait(t, c, env, id, 30*time.Second, wes.Paused)
		check(t, c, id, jobID)
		if job := labJobByID(t, lab, jobID); !strings.HasPrefix(job.State, "CANCELLED") {
			t.Errorf("sacct: %+v, want CANCELLED", job)
		}
	})

	t.Run("running", func(t *testing.T) {
		t.Parallel()
		c := contractClient(t, env)
		id := e2eSubmit(t, c, env, e2eCWLRun("sleep.cwl", "{}", e2eAttach("sleep.cwl", e2eSleepTool)))
		slurmWait(t, c, env, id, slurmRunDeadline, wes.Running)
		jobID := slurmJobID(t, env, id, time.Second)
		// While it runs, its log is read on the cluster: cwltool relays the tool's output to stderr.
		for end := time.Now().Add(30 * time.Second); ; {
			_, h, stderr := e2eGetText(t, c, env.API+"/runs/"+id+"/stderr")
			if bytes.Contains(stderr, []byte("sleeping-now")) {
				if h.Get("Cache-Control") != "no-store" {
					t.Errorf("the log of an active run has Cache-Control %q, want no-store", h.Get("Cache-Control"))
				}
				break
			}
			if time.Now().After(end) {
				t.Fatalf("stderr of the running run does not show the tool's output:\n%s", stderr)
			}
			time.Sleep(slurmPoll)
		}
		check(t, c, id, jobID)
	})
}

// TestSlurmPartition: an unknown partition is refused with a 400 that names
// --partition; a run in the second partition with a time limit runs there
// with that limit.
func TestSlurmPartition(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{})
	c := contractClient(t, env)

	params := func(p string) []e2ePart {
		return append(slurmEchoRun(0, "long"), e2ePart{Name: "workflow_engine_parameters", Value: p})
	}
	status, body := e2ePost(t, c, env, params(`{"--partition":"nosuch"}`))
	var e struct {
		Msg string `json:"msg"`
	}
	if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Msg, "--partition") {
		t.Errorf("unknown partition: %d %s, want 400 naming --partition", status, body)
	}

	id := e2eSubmit(t, c, env, params(`{"--partition":"`+lab.Partition2+`","--time":"5"}`))
	slurmWait(t, c, env, id, slurmRunDeadline, wes.Complete)
	slurmCheckEcho(t, c, env, id, "long")
	job := labOneJob(t, env, lab, id)
	if job.Partition != lab.Partition2 || job.Timelimit != "00:05:00" {
		t.Errorf("sacct: %+v, want partition %s and time limit 00:05:00", job, lab.Partition2)
	}
	var rl struct {
		Request struct {
			EngineParams map[string]string `json:"workflow_engine_parameters"`
		} `json:"request"`
	}
	e2eGetJSON(t, c, env.API+"/runs/"+id, http.StatusOK, &rl)
	if rl.Request.EngineParams["--partition"] != lab.Partition2 || rl.Request.EngineParams["--time"] != "5" {
		t.Errorf("workflow_engine_parameters echoed as %v", rl.Request.EngineParams)
	}
}

// slurmMetaWorkflow echoes a string parameter into echoed.txt and copies a
// file of an attached directory, named by a string parameter, into
// copied.txt. Every value reaches the tools as one argument, without a shell.
const slurmMetaWorkflow = `cwlVersion: v1.2
class: Workflow
inputs:
  msg: string
  dir: Directory
  name: string
outputs:
  echoed: {type: File, outputSource: echo/out}
  copied: {type: File, outputSource: copy/out}
steps:
  echo:
    run:
      class: CommandLineTool
      baseCommand: [printf, "%s"]
      inputs: {msg: {type: string, inputBinding: {position: 1}}}
      stdout: echoed.txt
      outputs: {out: {type: stdout}}
    in: {msg: msg}
    out: [out]
  copy:
    run:
      class: CommandLineTool
      baseCommand: [cat]
      inputs: {dir: Directory, name: string}
      arguments: [$(inputs.dir.path)/$(inputs.name)]
      stdout: copied.txt
      outputs: {out: {type: stdout}}
    in: {dir: dir, name: name}
    out: [out]
`

// TestSlurmShellMetacharacters sends shell metacharacters everywhere a
// client can put them: in the workflow's path (which is on the engine's
// command line in the batch script), attachment names, workflow_params,
// tags and the run name, and engine parameter keys and values. The run
// completes with every value byte-exact, what cannot be a parameter is
// refused, and nothing the payloads would run has run: no file named by
// the test's marker exists under the run base, /tmp or the service
// account's home.
func TestSlurmShellMetacharacters(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	requireCWLTool(t)
	env := newSlurmEnv(t, lab, envOptions{})
	c := contractClient(t, env)

	marker := fmt.Sprintf("PWNED-%d", time.Now().UnixNano())
	payload := fmt.Sprintf("a;b $(touch %[1]s) `touch %[1]s` 'q' \"dq\" \n&& touch /tmp/%[1]s | touch %[1]s; echo $HOME %%s %%%% \\ end\n", marker)
	workflow := fmt.Sprintf("wf dir;`touch %[1]s`/a b;$(touch %[1]s) && x | y 'q' \"dq\".cwl", marker)
	data := map[string]string{
		fmt.Sprintf("data/a b;$(touch %s).txt", marker):                   "weird content\n",
		fmt.Sprintf("data/it's \"q\" `touch %s` && x | y; z.txt", marker): payload,
	}
	copied := fmt.Sprintf("a b;$(touch %s).txt", marker)
	params, _ := json.Marshal(map[string]any{"msg": payload, "name": copied,
		"dir": map[string]string{"class": "Directory", "location": "data"}})
	tags, _ := json.Marshal(map[string]string{"name": payload, "k;$(touch " + marker + ")": "v`touch " + marker + "`" + payload})
	parts := func(engineParams string) []e2ePart {
		p := append(e2eCWLRun(workflow, string(params), e2eAttach(workflow, slurmMetaWorkflow)),
			e2ePart{Name: "tags", Value: string(tags)}, e2ePart{Name: "workflow_engine_parameters", Value: engineParams})
		for name, content := range data {
			p = append(p, e2eAttach(name, content))
		}
		return p
	}

	// Engine parameters are booleans and checked Slurm options: a payload
	// in a key or a value is refused.
	for _, ep := range []string{
		`{"--debug; touch ` + marker + `": true}`,
		`{"--parallel && touch ` + marker + ` | x": "true"}`,
		`{"--debug": "$(touch ` + marker + `)"}`,
		`{"--partition": "debug;touch ` + marker + `"}`,
		`{"--time": "` + "`touch " + marker + "`" + `"}`,
		`{"--account": "a$(touch ` + marker + `)"}`,
	} {
		status, body := e2ePost(t, c, env, parts(ep))
		if status != http.StatusBadRequest || !bytes.Contains(body, []byte("workflow_engine_parameters")) {
			t.Errorf("workflow_engine_parameters %s: %d %s, want 400 about workflow_engine_parameters", ep, status, body)
		}
	}

	id := e2eSubmit(t, c, env, parts(`{"--parallel": true}`))
	slurmWait(t, c, env, id, slurmRunDeadline, wes.Complete)
	rl := slurmGetRun(t, c, env, id)
	if rl.Name != payload || rl.Request.WorkflowURL != workflow {
		t.Errorf("run name %q and workflow_url %q, want the payload and %q", rl.Name, rl.Request.WorkflowURL, workflow)
	}
	var gotTags map[string]string
	json.Unmarshal(tags, &gotTags)
	if !maps.Equal(rl.Request.Tags, gotTags) {
		t.Errorf("tags echoed as %q, want %q", rl.Request.Tags, gotTags)
	}
	var gotParams struct{ Msg, Name string }
	if err := json.Unmarshal(rl.Request.WorkflowParams, &gotParams); err != nil || gotParams.Msg != payload || gotParams.Name != copied {
		t.Errorf("workflow_params echoed as %s", rl.Request.WorkflowParams)
	}
	for name, want := range map[string]string{"echoed": payload, "copied": data["data/"+copied]} {
		var f e2eFile
		if err := json.Unmarshal(rl.Outputs[name], &f); err != nil {
			t.Errorf("outputs[%s]: %v in %v", name, err, rl.Outputs)
			continue
		}
		e2eCheckFile(t, c, env, id, f, want)
	}
	// The attachments reached the cluster under their names, byte-exact.
	runDir := slurmStored(t, env, id).RunDir
	for name, want := range map[string]string{workflow: slurmMetaWorkflow} {
		data[name] = want
	}
	for name, want := range data {
		if b, err := os.ReadFile(filepath.Join(runDir, "work", filepath.FromSlash(name))); err != nil || string(b) != want {
			t.Errorf("attachment %q on the cluster: %q, %v", name, b, err)
		}
	}

	var list struct {
		Runs []wes.RunSummary `json:"runs"`
	}
	e2eGetJSON(t, c, env.API+"/runs", http.StatusOK, &list)
	if len(list.Runs) != 1 {
		t.Errorf("runs = %+v, want only the accepted run", list.Runs)
	}

	home, err := user.Lookup(lab.SvcUser)
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{lab.Base, "/tmp", os.TempDir(), home.HomeDir} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == marker {
				t.Errorf("a payload ran: %s exists", p)
			}
			return nil // unreadable directories of other tests do not matter
		})
	}
}
