package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// runSlurm measures wesgate against the Slurm lab: remote commands and
// duration of a poll tick with many active runs, wesgate's CPU and RSS,
// POST /runs until the job is in squeue against a bare sbatch over an open
// SSH connection, and the time from a job's end to the API's terminal state.
func runSlurm(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wesgate-bench slurm", flag.ContinueOnError)
	active := fs.Int("active", 500, "active runs (held jobs) during the polling measurement")
	samples := fs.Int("samples", 15, "samples for the submit and end-to-terminal measurements")
	poll := fs.Duration("poll", 2*time.Second, "wesgate's poll interval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lab, err := labEnv()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "wesgate-slurmbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := buildWesgate(ctx, work, stderr)
	if err != nil {
		return err
	}
	client, err := labSSH(lab)
	if err != nil {
		return err
	}
	defer client.Close()
	defer remote(client, "scancel --me") // leave the lab's queue empty

	// Debug JSON logs: the tick counter reads commands and ticks from them.
	cfg := "log_level = \"debug\"\nlog_format = \"json\"\n" + labConfig(lab, *poll)
	cfgPath := filepath.Join(work, "wesgate.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	logs := &tickCounter{}
	srv, err := startServer(ctx, bin, cfgPath, filepath.Join(work, "data"), logs)
	if err != nil {
		return err
	}
	defer srv.stop()
	base := srv.base
	hc := &http.Client{Timeout: 30 * time.Second}

	// 1. Submit latency: bare sbatch on an open connection, then wesgate.
	var bare, viaWES []time.Duration
	for range *samples {
		t := time.Now()
		out, err := remote(client, "sbatch --parsable --hold --wrap true")
		if err != nil {
			return fmt.Errorf("bare sbatch: %w", err)
		}
		bare = append(bare, time.Since(t))
		remote(client, "scancel "+strings.TrimSpace(out))
		settle(client)
	}
	sleepWF := "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [sleep, \"3600\"]\ninputs: []\noutputs: []\n"
	logs.mu.Lock()
	logs.staged = nil
	logs.mu.Unlock()
	// Until queued: wait on wesgate's own log for its sbatch to return, so
	// nothing else loads slurmctld meanwhile; then check the queue once.
	var untilSbatch, answered []time.Duration
	for range *samples {
		logs.mu.Lock()
		logs.sbatch = nil
		logs.mu.Unlock()
		t := time.Now()
		id, err := postRun(hc, base, sleepWF, "{}")
		if err != nil {
			return err
		}
		answered = append(answered, time.Since(t))
		var queued time.Time
		for deadline := time.Now().Add(time.Minute); queued.IsZero() && time.Now().Before(deadline); {
			logs.mu.Lock()
			if len(logs.sbatch) > 0 {
				queued = logs.sbatch[0]
			}
			logs.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
		if queued.IsZero() {
			return fmt.Errorf("run %s: wesgate logged no sbatch", id)
		}
		untilSbatch = append(untilSbatch, queued.Sub(t))
		if err := waitSqueue(ctx, client, "wes-"+id); err != nil {
			return err
		}
		settle(client) // the next sample must not compete with this job's engine
	}
	// Until seen: another client polls squeue as fast as it can.
	for range *samples {
		t := time.Now()
		id, err := postRun(hc, base, sleepWF, "{}")
		if err != nil {
			return err
		}
		if err := waitSqueue(ctx, client, "wes-"+id); err != nil {
			return err
		}
		viaWES = append(viaWES, time.Since(t))
		settle(client)
	}
	logs.mu.Lock()
	staging := slices.Clone(logs.staged)
	logs.mu.Unlock()
	remote(client, "scancel --me")

	// 2. Many active runs: held jobs, then steady polling.
	fmt.Fprintf(stderr, "submitting %d runs\n", *active)
	var ids []string
	for range *active {
		id, err := postRun(hc, base, sleepWF, "{}")
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	// Hold what is pending as it arrives, until every run has its job.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		remote(client, "squeue --me --noheader --states=PENDING --format=%i | xargs -r scontrol hold")
		out, _ := remote(client, "squeue --me --noheader --format=%j")
		if strings.Count(out, "wes-") >= *active || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	remote(client, "squeue --me --noheader --states=PENDING --format=%i | xargs -r scontrol hold")
	// What wesgate's one squeue per tick costs when run bare on an open connection.
	var bareSqueue []time.Duration
	for range *samples {
		t := time.Now()
		if _, err := remote(client, "TZ=UTC squeue --me --noheader --states=all --format='%i|%T|%r|%P|%N|%S'"); err != nil {
			return fmt.Errorf("bare squeue: %w", err)
		}
		bareSqueue = append(bareSqueue, time.Since(t))
	}
	logs.reset()
	cpu0 := cpuTime(srv.cmd.Process.Pid)
	window := 6 * *poll
	time.Sleep(window)
	cpu1 := cpuTime(srv.cmd.Process.Pid)
	ticks := logs.snapshot()
	hwm, rss := memory(srv.cmd.Process.Pid)
	remote(client, "scancel --me")
	for _, id := range ids {
		cancelRun(hc, base, id)
	}

	// 3. From a job's end to the API's terminal state.
	shortWF := "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [sh, -c, \"sleep 2; date +%s.%N > /dev/stderr\"]\ninputs: []\noutputs: []\n"
	var lag []time.Duration
	for range min(*samples, 8) {
		id, err := postRun(hc, base, shortWF, "{}")
		if err != nil {
			return err
		}
		_, seen, err := waitTerminal(ctx, hc, base, id)
		if err != nil {
			return err
		}
		// The job's end: the wrapper's record, to the second, refined by the
		// engine's own last timestamp on stderr.
		ended, err := engineEnd(hc, base, id)
		if err != nil {
			return err
		}
		lag = append(lag, seen.Sub(ended))
	}

	med := func(d []time.Duration) time.Duration { return d[len(d)/2] }
	slices.Sort(bare)
	slices.Sort(viaWES)
	slices.Sort(staging)
	if len(staging) == 0 {
		staging = []time.Duration{0}
	}
	slices.Sort(lag)
	fmt.Fprintf(stdout, "\nwesgate on the Slurm lab, %s, %d CPUs (%s)\n\n", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), cpuModel())
	fmt.Fprintln(stdout, "| measure | value | target |")
	fmt.Fprintln(stdout, "|---|---:|---|")
	fmt.Fprintf(stdout, "| active runs while polling | %d | |\n", *active)
	fmt.Fprintf(stdout, "| poll ticks observed | %d | |\n", len(ticks))
	maxCmds, maxDur := 0, time.Duration(0)
	for _, t := range ticks {
		maxCmds = max(maxCmds, t.commands)
		maxDur = max(maxDur, t.took)
	}
	fmt.Fprintf(stdout, "| remote commands per tick (max) | %d | at most 2 per identity |\n", maxCmds)
	var durs []time.Duration
	for _, t := range ticks {
		durs = append(durs, t.took)
	}
	slices.Sort(durs)
	slices.Sort(bareSqueue)
	if len(durs) == 0 {
		durs = []time.Duration{0}
	}
	fmt.Fprintf(stdout, "| poll tick duration (median / max) | %s / %s | |\n", ms(med(durs)), ms(maxDur))
	fmt.Fprintf(stdout, "| bare squeue of the same jobs on an open SSH connection (median) | %s | |\n", ms(med(bareSqueue)))
	fmt.Fprintf(stdout, "| ratio, tick to bare squeue | %.2f | |\n", float64(med(durs))/float64(med(bareSqueue)))
	fmt.Fprintf(stdout, "| wesgate CPU while polling | %.1f%% of one core | |\n", 100*float64(cpu1-cpu0)/float64(window))
	fmt.Fprintf(stdout, "| wesgate RSS / peak RSS | %.1f MB / %.1f MB | |\n", float64(rss)/1e6, float64(hwm)/1e6)
	fmt.Fprintf(stdout, "| bare sbatch over an open SSH connection (median) | %s | |\n", ms(med(bare)))
	slices.Sort(untilSbatch)
	slices.Sort(answered)
	if len(untilSbatch) == 0 {
		untilSbatch, answered = []time.Duration{0}, []time.Duration{0}
	}
	fmt.Fprintf(stdout, "| POST /runs answered: run durable, files and database synced (median) | %s | |\n", ms(med(answered)))
	fmt.Fprintf(stdout, "| POST /runs until wesgate's sbatch returned, the job queued (median) | %s | |\n", ms(med(untilSbatch)))
	fmt.Fprintf(stdout, "| POST /runs until another client sees the job in squeue (median) | %s | |\n", ms(med(viaWES)))
	fmt.Fprintf(stdout, "| SFTP staging of the run directory (median) | %s | |\n", ms(med(staging)))
	fmt.Fprintf(stdout, "| ratio, POST until queued, to bare sbatch | %.2f | |\n", float64(med(untilSbatch))/float64(med(bare)))
	fmt.Fprintf(stdout, "| ratio, the same without the SFTP staging | %.2f | under 1.5 |\n", float64(med(untilSbatch)-med(staging))/float64(med(bare)))
	fmt.Fprintf(stdout, "| job end to terminal state in the API (median / max) | %s / %s | poll interval (%s) + 1 s |\n",
		ms(med(lag)), ms(lag[len(lag)-1]), *poll)
	return nil
}

// settle cancels the benchmark's jobs and lets the machine go quiet, so that
// every latency sample starts from the same idle cluster (the lab's node is
// this machine: a starting engine would take the CPU from the next sample).
func settle(client *ssh.Client) {
	remote(client, "scancel --me")
	time.Sleep(700 * time.Millisecond)
}

func labSSH(lab map[string]string) (*ssh.Client, error) {
	key, err := os.ReadFile(lab["SVC_KEY"])
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		return nil, err
	}
	hk, err := knownhosts.New(lab["KNOWN_HOSTS"])
	if err != nil {
		return nil, err
	}
	return ssh.Dial("tcp", lab["SSH_ADDR"], &ssh.ClientConfig{User: lab["SVC_USER"],
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

func waitSqueue(ctx context.Context, c *ssh.Client, name string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		out, err := remote(c, "squeue --me --noheader --format=%i --name="+name)
		if err == nil && strings.TrimSpace(out) != "" {
			return nil
		}
	}
	return fmt.Errorf("job %s did not reach squeue", name)
}

func postRun(hc *http.Client, base, workflow, params string) (string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("workflow_type", "CWL")
	mw.WriteField("workflow_type_version", "v1.2")
	mw.WriteField("workflow_url", "wf.cwl")
	mw.WriteField("workflow_params", params)
	fw, _ := mw.CreateFormFile("workflow_attachment", "wf.cwl")
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

func cancelRun(hc *http.Client, base, id string) {
	resp, err := hc.Post(base+"/runs/"+id+"/cancel", "application/json", nil)
	if err == nil {
		resp.Body.Close()
	}
}

// waitTerminal polls the run's status every 20 ms until it has ended.
func waitTerminal(ctx context.Context, hc *http.Client, base, id string) (string, time.Time, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := hc.Get(base + "/runs/" + id + "/status")
		if err == nil {
			var st struct {
				State string `json:"state"`
			}
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			switch st.State {
			case "COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED":
				return st.State, time.Now(), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", time.Time{}, fmt.Errorf("run %s did not end", id)
}

// engineEnd reads the engine's last timestamp (seconds.nanoseconds) from
// the run's stderr.
func engineEnd(hc *http.Client, base, id string) (time.Time, error) {
	resp, err := hc.Get(base + "/runs/" + id + "/stderr")
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	var last time.Time
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if f, err := strconv.ParseFloat(line, 64); err == nil && f > 1e9 {
			sec := int64(f)
			last = time.Unix(sec, int64((f-float64(sec))*1e9))
		}
	}
	if last.IsZero() {
		return last, fmt.Errorf("run %s: no end timestamp on stderr", id)
	}
	return last, nil
}

// tick is one poll tick as wesgate logged it.
type tick struct {
	commands int
	took     time.Duration
}

// tickCounter reads wesgate's JSON log and counts remote commands per tick.
type tickCounter struct {
	mu      sync.Mutex // guards all below
	partial []byte
	cmds    int
	ticks   []tick
	staged  []time.Duration // SFTP staging of each submission
	sbatch  []time.Time     // when each sbatch returned (its log line)
}

func (t *tickCounter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		var rec struct {
			Time time.Time `json:"time"`
			Kind string    `json:"kind"`
			Msg  string    `json:"msg"`
			Took float64   `json:"took"` // slog's JSON handler writes durations in nanoseconds
		}
		if json.Unmarshal(t.partial[:i], &rec) == nil {
			switch {
			case strings.HasPrefix(rec.Msg, "slurm: command"):
				t.cmds++
				if rec.Kind == "sbatch" {
					t.sbatch = append(t.sbatch, rec.Time)
				}
			case rec.Msg == "slurm: staged":
				t.staged = append(t.staged, time.Duration(rec.Took))
			case rec.Msg == "monitor: tick":
				t.ticks = append(t.ticks, tick{commands: t.cmds, took: time.Duration(rec.Took)})
				t.cmds = 0
			}
		}
		t.partial = t.partial[i+1:]
	}
	return len(p), nil
}

func (t *tickCounter) reset() {
	t.mu.Lock()
	t.cmds, t.ticks = 0, nil
	t.mu.Unlock()
}

func (t *tickCounter) snapshot() []tick {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ticks) > 0 {
		return slices.Clone(t.ticks[1:]) // the first may have begun before the reset
	}
	return nil
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
