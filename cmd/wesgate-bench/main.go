// Command wesgate-bench loads a wesgate data directory with many finished
// runs, starts the real wesgate binary on it, drives it with concurrent
// HTTP clients on loopback, and prints latency, throughput and memory as a
// Markdown table. It measures; it asserts nothing.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/wes"
	"github.com/wesgate/wesgate/wes/sqlite"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wesgate-bench:", err)
		os.Exit(1)
	}
}

type result struct {
	name     string
	clients  int
	requests int
	errors   int
	seconds  float64
	lat      []time.Duration
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(float64(len(r.lat)-1) * p)
	return r.lat[i]
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "slurm":
			return runSlurm(ctx, args[1:], stdout, stderr)
		case "load":
			return runLoad(ctx, args[1:], stdout, stderr)
		case "faults":
			return runFaults(ctx, args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("wesgate-bench", flag.ContinueOnError)
	nRuns := fs.Int("runs", 100_000, "finished runs to load into the store")
	dur := fs.Duration("duration", 10*time.Second, "length of each load phase")
	concList := fs.String("concurrency", "4,16", "concurrent clients, a comma-separated list: each phase runs at each level")
	keep := fs.Bool("keep", false, "keep the data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var levels []int
	for _, f := range strings.Split(*concList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("-concurrency: %q is not a positive number", f)
		}
		levels = append(levels, n)
	}
	conc := slices.Max(levels)
	work, err := os.MkdirTemp("", "wesgate-bench-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	bin, err := buildWesgate(ctx, work, stderr)
	if err != nil {
		return err
	}
	data := filepath.Join(work, "data")
	local, err := auth.NewLocal()
	if err != nil {
		return err
	}
	start := time.Now()
	ids, err := load(ctx, data, local.User, *nRuns)
	if err != nil {
		return err
	}
	loadTime := time.Since(start)
	fmt.Fprintf(stderr, "loaded %d runs in %s\n", len(ids), loadTime.Round(time.Millisecond))

	started := time.Now()
	srv, err := startServer(ctx, bin, "", data, io.Discard, "PATH=/usr/bin:/bin") // engines are irrelevant here
	if err != nil {
		return err
	}
	defer srv.stop()
	startup := time.Since(started)
	addr, base := srv.addr, srv.base
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2}, Timeout: 10 * time.Second}

	tokens, err := collectTokens(ctx, client, base, len(ids)/100)
	if err != nil {
		return err
	}
	deep := tokens[len(tokens)/2:] // the second half of the list: deep pages
	var results []result
	for _, c := range levels {
		results = append(results,
			hammer(ctx, client, "GET /runs/{id}/status", c, *dur, func(r *rand.Rand) string {
				return base + "/runs/" + ids[r.IntN(len(ids))] + "/status"
			}),
			hammer(ctx, client, "GET /runs?page_size=100 (deep pages)", c, *dur, func(r *rand.Rand) string {
				return base + "/runs?page_size=100&page_token=" + deep[r.IntN(len(deep))]
			}),
			hammer(ctx, client, "GET /runs/{id} (RunLog)", c, *dur/2, func(r *rand.Rand) string {
				return base + "/runs/" + ids[r.IntN(len(ids))]
			}),
			hammer(ctx, client, "GET /runs/{id} run page (HTML)", c, *dur/2, func(r *rand.Rand) string {
				return "http://" + addr + "/runs/" + ids[r.IntN(len(ids))]
			}))
	}
	hwm, rss := memory(srv.cmd.Process.Pid)
	dbSize := fileSize(filepath.Join(data, "wesgate.db")) + fileSize(filepath.Join(data, "wesgate.db-wal"))

	fmt.Fprintf(stdout, "\nwesgate benchmark, %s, %s, %d CPUs (%s), %s\n\n", time.Now().UTC().Format("2006-01-02"),
		runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), cpuModel(), runtime.Version())
	fmt.Fprintf(stdout, "%d finished runs in the store; closed-loop clients on loopback, load generator on the same machine.\n\n", len(ids))
	fmt.Fprintln(stdout, "| endpoint | clients | requests/s | p50 | p99 | errors |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(stdout, "| %s | %d | %.0f | %s | %s | %d |\n", r.name, r.clients, float64(r.requests)/r.seconds,
			ms(r.pct(0.50)), ms(r.pct(0.99)), r.errors)
	}
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "| measure | value |")
	fmt.Fprintln(stdout, "|---|---:|")
	fmt.Fprintf(stdout, "| server peak RSS (VmHWM) | %.1f MB |\n", float64(hwm)/1e6)
	fmt.Fprintf(stdout, "| server RSS at the end | %.1f MB |\n", float64(rss)/1e6)
	fmt.Fprintf(stdout, "| database size | %.1f MB |\n", float64(dbSize)/1e6)
	fmt.Fprintf(stdout, "| start-up to first answer | %s |\n", ms(startup))
	fmt.Fprintf(stdout, "| loading %d runs | %s |\n", len(ids), loadTime.Round(time.Millisecond))
	return nil
}

// buildWesgate builds the server binary into dir.
func buildWesgate(ctx context.Context, dir string, stderr io.Writer) (string, error) {
	fmt.Fprintf(stderr, "building wesgate into %s\n", dir)
	bin := filepath.Join(dir, "wesgate")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/wesgate")
	build.Stdout, build.Stderr = stderr, stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build: %w", err)
	}
	return bin, nil
}

// server is a wesgate process started by one of the measurements.
type server struct {
	cmd  *exec.Cmd
	addr string // host:port
	base string // the WES API's base URL
}

// startServer starts wesgate on a free loopback port and waits until it
// answers; env adds environment variables.
func startServer(ctx context.Context, bin, cfg, data string, stderr io.Writer, env ...string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"--addr", addr, "--data", data}
	if cfg != "" {
		args = append(args, "--config", cfg)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, stderr
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: addr, base: "http://" + addr + "/ga4gh/wes/v1"}
	if err := waitUp(ctx, &http.Client{Timeout: 5 * time.Second}, s.base+"/service-info"); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) stop() {
	if s == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
}

// labEnv reads the Slurm lab's settings that lab/env.sh exports.
func labEnv() (map[string]string, error) {
	lab := map[string]string{}
	for _, k := range []string{"SSH_ADDR", "KNOWN_HOSTS", "SVC_USER", "SVC_KEY", "BASE", "PARTITION"} {
		if lab[k] = os.Getenv("WESGATE_LAB_" + k); lab[k] == "" {
			return nil, errors.New("the Slurm lab is not up: run `bash lab/up.sh` and `. lab/env.sh`")
		}
	}
	return lab, nil
}

// labConfig is a wesgate configuration that runs jobs on the lab as its
// service account, polling every poll.
func labConfig(lab map[string]string, poll time.Duration) string {
	return fmt.Sprintf(`[executor]
kind = "slurm"
[runs]
poll_interval = %q
[slurm]
cluster = "lab"
ssh_addr = %q
user = %q
key_file = %q
known_hosts = %q
remote_base = %q
default_partition = %q
`, poll.String(), lab["SSH_ADDR"], lab["SVC_USER"], lab["SVC_KEY"], lab["KNOWN_HOSTS"],
		lab["BASE"]+"/"+lab["SVC_USER"], lab["PARTITION"])
}

// writeStandInEngine writes an engine that does nothing, so a measurement
// measures wesgate rather than cwltool, and returns its path.
func writeStandInEngine(dir string) string {
	engine := filepath.Join(dir, "engine.sh")
	os.WriteFile(engine, []byte("#!/bin/sh\n[ \"$1\" = --version ] && { echo stand-in 1.0; exit 0; }\nexit 0\n"), 0o755)
	return engine
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// load fills a fresh store with n finished runs of u, in batches.
func load(ctx context.Context, data string, u wes.User, n int) ([]string, error) {
	if err := os.MkdirAll(data, 0o750); err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, filepath.Join(data, "wesgate.db"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	states := []wes.State{wes.Complete, wes.Complete, wes.Complete, wes.ExecutorError, wes.Canceled, wes.SystemError}
	ids := make([]string, 0, n)
	t0 := time.Now().Add(-time.Duration(n) * time.Minute).UTC()
	for len(ids) < n {
		batch := make([]*wes.Run, 0, 5000)
		for i := 0; i < 5000 && len(ids)+len(batch) < n; i++ {
			k := len(ids) + len(batch)
			id := fmt.Sprintf("%08x-0000-4000-8000-%012x", rand.Uint32(), k)
			code := 0
			created := t0.Add(time.Duration(k) * time.Minute)
			batch = append(batch, &wes.Run{
				ID: id, Owner: u.Owner, Username: u.Username, State: states[k%len(states)], Name: "wf.cwl",
				Request: wes.RunRequest{WorkflowParams: json.RawMessage(`{"message":"hello"}`), WorkflowType: "CWL",
					WorkflowTypeVersion: "v1.2", Tags: map[string]string{"project": "p" + strconv.Itoa(k%50)},
					WorkflowEngineParameters: map[string]string{}, WorkflowEngine: "cwltool",
					WorkflowEngineVersion: "3.1", WorkflowURL: "wf.cwl"},
				Attachments: []string{"wf.cwl"}, Created: created, Started: created.Add(2 * time.Second),
				Ended: created.Add(40 * time.Second), ExitCode: &code, Cmd: []string{"cwltool", "wf.cwl"},
				Outputs: json.RawMessage(`{}`),
			})
		}
		if err := db.CreateRuns(ctx, batch); err != nil {
			return nil, err
		}
		for _, r := range batch {
			ids = append(ids, r.ID)
			if err := os.MkdirAll(filepath.Join(data, "runs", r.ID), 0o750); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitUp(ctx context.Context, c *http.Client, url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("wesgate did not answer within 60s")
}

// hammer runs conc closed-loop clients for d and records every latency.
func hammer(ctx context.Context, c *http.Client, name string, conc int, d time.Duration, url func(*rand.Rand) string) result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu   sync.Mutex
		all  []time.Duration
		errs atomic.Int64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for i := range conc {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 42))
			var lat []time.Duration
			for ctx.Err() == nil {
				t := time.Now()
				resp, err := c.Get(url(r))
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat = append(lat, time.Since(t))
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(all)
	return result{name: name, clients: conc, requests: len(all), errors: int(errs.Load()), seconds: time.Since(start).Seconds(), lat: all}
}

// collectTokens walks the list to gather page tokens at every depth.
func collectTokens(ctx context.Context, c *http.Client, base string, pages int) ([]string, error) {
	var tokens []string
	next := ""
	for len(tokens) < pages {
		url := base + "/runs?page_size=100"
		if next != "" {
			url += "&page_token=" + next
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		var page wes.RunList
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if page.NextPageToken == "" {
			break
		}
		next = page.NextPageToken
		tokens = append(tokens, next)
	}
	if len(tokens) == 0 {
		return nil, errors.New("the list has a single page; load more runs")
	}
	return tokens, nil
}

// memory reads the peak and current resident set of pid, in bytes.
func memory(pid int) (hwm, rss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmHWM:":
			hwm = kb * 1024
		case "VmRSS:":
			rss = kb * 1024
		}
	}
	return hwm, rss
}

func fileSize(name string) int64 {
	fi, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
