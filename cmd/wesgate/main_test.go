package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
)

// lineWriter hands the first line that contains a marker to a channel.
type lineWriter struct {
	mu     sync.Mutex
	buf    strings.Builder
	marker string
	found  chan string
	sent   bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if !w.sent {
		for _, line := range strings.Split(w.buf.String(), "\n") {
			if strings.Contains(line, w.marker) {
				w.found <- line
				w.sent = true
				break
			}
		}
	}
	return len(p), nil
}

// startWesgate runs the whole program until the test ends or stop is
// called, and returns its base URL.
func startWesgate(t *testing.T, args ...string) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{marker: "listening on", found: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, out, io.Discard) }()
	select {
	case line := <-out.found:
		_, rest, _ := strings.Cut(line, "http://")
		addr, _, _ := strings.Cut(rest, "/")
		base = "http://" + addr
	case err := <-done:
		cancel()
		t.Fatalf("wesgate stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("wesgate did not start within 30s")
	}
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(30 * time.Second):
				result = fmt.Errorf("wesgate did not stop within 30s")
			}
		})
		return result
	}
	t.Cleanup(func() { stop() })
	return base, stop
}

func TestRunServesAndShutsDown(t *testing.T) {
	data := t.TempDir()
	base, stop := startWesgate(t, "serve", "--addr", "127.0.0.1:0", "--data", data)
	resp, err := http.Get(base + "/ga4gh/wes/v1/service-info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Type struct{ Artifact, Version string }
	}
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if resp.StatusCode != 200 || info.Type.Artifact != "wes" || info.Type.Version != "1.1.0" {
		t.Fatalf("service-info: %d %+v", resp.StatusCode, info)
	}
	if err := stop(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
	if _, err := os.Stat(filepath.Join(data, "wesgate.db")); err != nil {
		t.Fatalf("database not in the data directory: %v", err)
	}
}

func TestRunRefusesPublicAddressWithoutAuth(t *testing.T) {
	err := run(context.Background(), []string{"--addr", "0.0.0.0:0", "--data", t.TempDir()},
		func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err = %v, want a refusal that explains loopback", err)
	}
}

func TestRunConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key": "adr = \"127.0.0.1:0\"\n",
		"bad kind":    "[executor]\nkind = \"pbs\"\n",
		"bad metrics": "[metrics]\naccess = \"everyone\"\n",
		"oidc no url": "[executor]\nlocal_single_user = true\n[auth]\nmode = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"x\"\n",
	} {
		t.Run(name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".toml")
			os.WriteFile(cfg, []byte(body), 0o600)
			err := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", cfg},
				func(string) string { return "" }, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("started with a bad configuration")
			}
		})
	}
}

// TestRestartSettlesLocalRuns: a run whose local process ended with wesgate
// is settled as SYSTEM_ERROR with a reason at the next start, never left
// RUNNING.
func TestRestartSettlesLocalRuns(t *testing.T) {
	dir := t.TempDir()
	engine := filepath.Join(dir, "engine.sh")
	os.WriteFile(engine, []byte("#!/bin/sh\n[ \"$1\" = --version ] && { echo stand-in 1.0; exit 0; }\nexec sleep 300\n"), 0o755)
	cfg := filepath.Join(dir, "wesgate.toml")
	os.WriteFile(cfg, fmt.Appendf(nil, "[runs]\npoll_interval = \"200ms\"\n[[engines]]\nname = \"cwltool\"\ncommand = [%q, \"{workflow}\"]\nversion_command = [%q, \"--version\"]\n", engine, engine), 0o600)
	data := filepath.Join(dir, "data")
	args := []string{"--addr", "127.0.0.1:0", "--data", data, "--config", cfg}

	base, stop := startWesgate(t, args...)
	id := postRun(t, base)
	waitState(t, base, id, "RUNNING")
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	base, _ = startWesgate(t, args...)
	waitState(t, base, id, "SYSTEM_ERROR")
	resp, err := http.Get(base + "/ga4gh/wes/v1/runs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rl struct {
		RunLog struct {
			SystemLogs []string `json:"system_logs"`
			ExitCode   int      `json:"exit_code"`
			EndTime    string   `json:"end_time"`
		} `json:"run_log"`
	}
	json.NewDecoder(resp.Body).Decode(&rl)
	if len(rl.RunLog.SystemLogs) == 0 || rl.RunLog.EndTime == "" {
		t.Fatalf("settled run has no reason or end time: %+v", rl.RunLog)
	}
}

// postRun submits a run with one attached workflow file.
func postRun(t *testing.T, base string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/ga4gh/wes/v1/runs", strings.NewReader("--X\r\n"+
		"Content-Disposition: form-data; name=\"workflow_type\"\r\n\r\nCWL\r\n--X\r\n"+
		"Content-Disposition: form-data; name=\"workflow_type_version\"\r\n\r\nv1.2\r\n--X\r\n"+
		"Content-Disposition: form-data; name=\"workflow_url\"\r\n\r\nwf.cwl\r\n--X\r\n"+
		"Content-Disposition: form-data; name=\"workflow_attachment\"; filename=\"wf.cwl\"\r\n\r\ncwlVersion: v1.2\r\n--X--\r\n"))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=X")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		RunID string `json:"run_id"`
		Msg   string `json:"msg"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		t.Fatalf("POST /runs: %d %s", resp.StatusCode, out.Msg)
	}
	return out.RunID
}

func waitState(t *testing.T, base, id, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/ga4gh/wes/v1/runs/" + id + "/status")
		if err == nil {
			var st struct{ State string }
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			last = st.State
			if st.State == want {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("run %s is %s, want %s", id, last, want)
}

// TestSlowClientIsCutOff: a client that sends its headers a byte at a time
// is disconnected after read_header_timeout, and others are served meanwhile.
func TestSlowClientIsCutOff(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "wesgate.toml")
	os.WriteFile(cfg, []byte("read_header_timeout = \"1s\"\n"), 0o600)
	base, _ := startWesgate(t, "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--config", cfg)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	closed := false
	for _, b := range []byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") {
		if _, err := conn.Write([]byte{b}); err != nil {
			closed = true
			break
		}
		// Meanwhile a normal client is served.
		if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("a normal client was not served while a slow one was connected: %v", err)
		} else {
			resp.Body.Close()
		}
		time.Sleep(150 * time.Millisecond)
		if time.Since(start) > 5*time.Second {
			break
		}
	}
	if !closed {
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 512)
		n, err := conn.Read(buf)
		closed = err != nil || strings.Contains(string(buf[:n]), "408")
	}
	if !closed {
		t.Fatal("the slow client was not cut off")
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Fatalf("cut off after %s, want about 1s", took)
	}
}

// runRefused runs the whole program and returns its error if it stops at
// start. If it starts instead, that is an error of the test; it is stopped
// after hold.
func runRefused(t *testing.T, hold time.Duration, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lineWriter{marker: "listening on", found: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, out, io.Discard) }()
	select {
	case err := <-done:
		return err
	case <-out.found:
		t.Error("wesgate started; want a refusal")
		time.Sleep(hold)
		cancel()
		<-done
		return nil
	case <-time.After(30 * time.Second):
		t.Fatal("wesgate neither started nor stopped within 30s")
		return nil
	}
}

// TestRunRefusesOIDCWithLocalExecutor: with logins, local jobs would run as
// wesgate's own account (able to read the sessions table and act for any
// user), so the combination is refused unless local_single_user says that
// everyone who can log in is trusted with that account.
func TestRunRefusesOIDCWithLocalExecutor(t *testing.T) {
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	oidc := fmt.Sprintf("public_url = \"http://127.0.0.1:8080\"\n[auth]\nmode = \"oidc\"\nissuer = %q\nclient_id = %q\nclient_secret = %q\n",
		m.Issuer(), m.ClientID, m.ClientSecret)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "refused.toml")
	os.WriteFile(cfg, []byte(oidc), 0o600)
	err = runRefused(t, 0, "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "refused"), "--config", cfg)
	if err == nil || !strings.Contains(err.Error(), `kind = "local"`) || !strings.Contains(err.Error(), "local_single_user") {
		t.Fatalf("err = %v, want a refusal naming executor kind local and local_single_user", err)
	}

	// Said explicitly, it starts.
	cfg = filepath.Join(dir, "single.toml")
	os.WriteFile(cfg, []byte(oidc+"[executor]\nlocal_single_user = true\n"), 0o600)
	base, _ := startWesgate(t, "--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "single"), "--config", cfg)
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	}
}

// TestRunWarnsServiceAccountMode: with logins and Slurm jobs run as one
// service account, the start says that users' jobs can reach each other's
// run directories, and recommends per_user.
func TestRunWarnsServiceAccountMode(t *testing.T) {
	for _, perUser := range []bool{false, true} {
		t.Run(fmt.Sprintf("per_user=%v", perUser), func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "wesgate.toml")
			// The [slurm] section is incomplete: run stops at the scheduler,
			// after the warning, without a cluster.
			os.WriteFile(cfg, fmt.Appendf(nil, "public_url = \"http://127.0.0.1:8080\"\n[executor]\nkind = \"slurm\"\n"+
				"[slurm]\nper_user = %v\nuser = \"wesgate\"\n[auth]\nmode = \"oidc\"\nissuer = \"http://127.0.0.1:1\"\nclient_id = \"x\"\n", perUser), 0o600)
			var stderr strings.Builder
			err := run(context.Background(), []string{"--addr", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--config", cfg},
				func(string) string { return "" }, io.Discard, &stderr)
			if err == nil {
				t.Fatal("started without a complete [slurm] section")
			}
			warned := strings.Contains(stderr.String(), "level=WARN") && strings.Contains(stderr.String(), "per_user = true")
			if warned == perUser {
				t.Errorf("per_user = %v: warned %v, want %v; log:\n%s", perUser, warned, !perUser, stderr.String())
			}
		})
	}
}

// TestSecondInstanceOnDataDirRefused: a second wesgate on the same data
// directory stops at once, naming the directory and the first one's pid;
// the first one's running run goes on.
func TestSecondInstanceOnDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	engine := filepath.Join(dir, "engine.sh")
	os.WriteFile(engine, []byte("#!/bin/sh\n[ \"$1\" = --version ] && { echo stand-in 1.0; exit 0; }\nexec sleep 300\n"), 0o755)
	cfg := filepath.Join(dir, "wesgate.toml")
	os.WriteFile(cfg, fmt.Appendf(nil, "[runs]\npoll_interval = \"200ms\"\n[[engines]]\nname = \"cwltool\"\ncommand = [%q, \"{workflow}\"]\nversion_command = [%q, \"--version\"]\n", engine, engine), 0o600)
	data := filepath.Join(dir, "data")
	args := []string{"--addr", "127.0.0.1:0", "--data", data, "--config", cfg}

	base, _ := startWesgate(t, args...)
	id := postRun(t, base)
	waitState(t, base, id, "RUNNING")

	// A second wesgate that starts by mistake runs long enough to settle
	// the first one's runs.
	err := runRefused(t, 2*time.Second, args...)
	if err == nil || !strings.Contains(err.Error(), data) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("second instance: err = %v, want a refusal naming %s and pid %d", err, data, os.Getpid())
	}
	time.Sleep(time.Second) // several of the first one's poll ticks
	waitState(t, base, id, "RUNNING")
}
