package labenv

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestLoad(t *testing.T) {
	vars := map[string]string{
		"WESGATE_LAB_SSH_ADDR": "127.0.0.1:2222", "WESGATE_LAB_LAG_ADDR": "127.0.0.1:2223",
		"WESGATE_LAB_LAG_DELAY": "25ms", "WESGATE_LAB_USER1": "wesuser1", "WESGATE_LAB_KEY2": "/k2",
		"WESGATE_LAB_STATE": "/st",
	}
	e, ok := Load(func(k string) string { return vars[k] })
	if !ok || e.SSHAddr != "127.0.0.1:2222" || e.LagAddr != "127.0.0.1:2223" || e.LagDelay != "25ms" ||
		e.User1 != "wesuser1" || e.Key2 != "/k2" || e.State != "/st" {
		t.Errorf("Load = %+v, %v", e, ok)
	}
	e, ok = Load(func(string) string { return "" })
	if ok || e.State != "/var/lib/wesgate-lab" {
		t.Errorf("Load without a lab = %+v, %v; want false and the default state dir", e, ok)
	}
}

func TestParseSession(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Key
		ok   bool
	}{
		{"Starting session: command for wesuser1 from 127.0.0.1 port 40808 id 0", Key{"wesuser1", "ssh:command"}, true},
		{"Starting session: subsystem 'sftp' for wesgate-svc from 127.0.0.1 port 1 id 3", Key{"wesgate-svc", "ssh:subsystem:sftp"}, true},
		{"Starting session: shell on pts/0 for wesuser2 from 127.0.0.1 port 2 id 0", Key{"wesuser2", "ssh:shell"}, true},
		{"Starting session: command on pts/1 for wesuser2 from 127.0.0.1 port 2 id 0", Key{"wesuser2", "ssh:command"}, true},
		{"Starting session: forced-command (key-option) 'x for y' for wesuser1 from 127.0.0.1 port 2 id 0", Key{"wesuser1", "ssh:forced-command"}, true},
		{"Close session: user wesuser1 from 127.0.0.1 port 40808 id 0", Key{}, false},
		{"Accepted publickey for wesuser1 from 127.0.0.1 port 40808 ssh2", Key{}, false},
	} {
		got, ok := parseSession(tc.line)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseSession(%q) = %v, %v; want %v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

// TestCountsSinceMark: only what the logs got after the mark counts, and a
// line still being written does not.
func TestCountsSinceMark(t *testing.T) {
	e := Env{State: t.TempDir()}
	shims := filepath.Join(e.State, "count", "log")
	sshd := filepath.Join(e.State, "log", "sshd.log")
	for _, p := range []string{shims, sshd} {
		os.MkdirAll(filepath.Dir(p), 0o755)
	}
	write(t, shims, "1.0 wesuser1 sbatch\n")
	write(t, sshd, "Starting session: command for wesuser1 from 127.0.0.1 port 1 id 0\n")
	m, err := e.Mark()
	if err != nil {
		t.Fatal(err)
	}
	write(t, shims, "2.0 wesuser1 sbatch\n2.1 wesuser1 squeue\n2.2 wesuser2 sbatch\n3.0 wesuser2 sac")
	write(t, sshd, "Connection from 127.0.0.1 port 5 on 127.0.0.1 port 2222 rdomain \"\"\n"+
		"Starting session: command for wesuser1 from 127.0.0.1 port 5 id 0\n"+
		"Starting session: command for wesuser1 from 127.0.0.1 port 5 id 1\n"+
		"Starting session: subsystem 'sftp' for wesuser2 from 127.0.0.1 port 6 id 0\n")
	got, err := e.Counts(m)
	if err != nil {
		t.Fatal(err)
	}
	want := map[Key]int{
		{"wesuser1", "sbatch"}: 1, {"wesuser1", "squeue"}: 1, {"wesuser2", "sbatch"}: 1,
		{"wesuser1", "ssh:command"}: 2, {"wesuser2", "ssh:subsystem:sftp"}: 1,
	}
	if !equal(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}

	if err := os.Truncate(shims, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Counts(m); err == nil {
		t.Error("Counts after the log was truncated below the mark: no error")
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func equal(a, b map[Key]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSlowRejectsOtherCommands(t *testing.T) {
	e := Env{State: t.TempDir()}
	for _, cmd := range []string{"ls", "../sbatch", "sinfo", ""} {
		if err := e.Slow(cmd, time.Second); err == nil {
			t.Errorf("Slow(%q) = nil, want an error", cmd)
		}
	}
}

// requireLab returns the lab's Env or skips (fails with WESGATE_REQUIRE_LAB=1).
func requireLab(t *testing.T) Env {
	t.Helper()
	e, ok := Load(os.Getenv)
	if !ok {
		if os.Getenv("WESGATE_REQUIRE_LAB") == "1" {
			t.Fatal("WESGATE_REQUIRE_LAB=1 but the lab is not up (. lab/env.sh)")
		}
		t.Skip("lab not up (. lab/env.sh)")
	}
	return e
}

// dialLab logs in as the lab's user 1 at addr, checking the host key against
// knownHostsFile.
func dialLab(t *testing.T, e Env, addr, knownHostsFile string) *ssh.Client {
	t.Helper()
	hk, err := knownhosts.New(knownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(e.Key1)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User: e.User1, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hk, Timeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs cmd in a new session and returns its stdout, stderr, how long it
// took (opening the session included) and the error.
func run(t *testing.T, c *ssh.Client, cmd string) (string, string, time.Duration, error) {
	t.Helper()
	start := time.Now()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	err = s.Run(cmd)
	return out.String(), errb.String(), time.Since(start), err
}

// TestLagAgainstLab: ssh through an in-process proxy at 25 ms each way
// (a login node 50 ms away), with the lab's host key.
func TestLagAgainstLab(t *testing.T) {
	e := requireLab(t)
	const delay = 25 * time.Millisecond
	addr, stop, err := e.Lag(t.Context(), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := e.WriteKnownHosts(kh, addr); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	c := dialLab(t, e, addr, kh)
	t.Logf("ssh connect + auth through the proxy: %v", time.Since(start))
	var best time.Duration
	for range 5 {
		if _, _, d, err := run(t, c, "true"); err != nil {
			t.Fatal(err)
		} else if best == 0 || d < best {
			best = d
		}
	}
	// channel open; exec request, then output and exit status: two round trips
	t.Logf("session running `true` (best of 5): %v", best)
	if best < 2*2*delay {
		t.Errorf("a session took %v through a %v proxy, want >= %v", best, delay, 4*delay)
	}
	out, _, d, err := run(t, c, "sbatch --parsable --hold -o /dev/null --wrap=true")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	if _, _, _, err := run(t, c, "scancel "+id); err != nil {
		t.Errorf("scancel %s: %v", id, err)
	}
	t.Logf("session running sbatch (job %s): %v", id, d)
}

// TestSlowHangAndCount switch the shared lab's scancel to slow, then hang,
// for about two seconds, and count commands meanwhile.
func TestSlowHangAndCount(t *testing.T) {
	e := requireLab(t)
	if os.Geteuid() != 0 {
		t.Skip("changing the lab's slow and count settings needs root")
	}
	_, statErr := os.Stat(filepath.Join(e.State, "count", "on"))
	m, err := e.CountOn()
	if err != nil {
		t.Fatal(err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		t.Cleanup(func() { e.CountOff() })
	}
	t.Cleanup(func() { e.Slow("scancel", 0) })
	c := dialLab(t, e, e.SSHAddr, e.KnownHosts)

	// scancel without ids: fails at once (exit 1), no jobs involved
	_, fastErr, fast, err := run(t, c, "scancel")
	if err == nil {
		t.Fatal("scancel without ids succeeded")
	}
	if err := e.Slow("scancel", time.Second); err != nil {
		t.Fatal(err)
	}
	_, slowErr, slow, err2 := run(t, c, "scancel")
	if err := e.Slow("scancel", 0); err != nil {
		t.Fatal(err)
	}
	t.Logf("scancel: %v fast, %v with Slow(1s)", fast, slow)
	if slow < time.Second {
		t.Errorf("scancel took %v with Slow(scancel, 1s)", slow)
	}
	// transparent apart from the delay
	if fastErr != slowErr || err.Error() != err2.Error() {
		t.Errorf("slow scancel answered %q, %v; fast one %q, %v", slowErr, err2, fastErr, err)
	}

	if err := e.Hang("scancel"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, _, _, err := run(t, c, "scancel"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("scancel answered (%v) while hanging", err)
	case <-time.After(time.Second):
	}
	if err := e.Slow("scancel", 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 1 {
			t.Errorf("released scancel: %v, want exit status 1", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("scancel still hanging 10 s after Slow(scancel, 0)")
	}

	got, err := e.Counts(m)
	if err != nil {
		t.Fatal(err)
	}
	// others may use the lab as the same user at the same time: at least
	if n := got[Key{e.User1, "scancel"}]; n < 3 {
		t.Errorf("counted %d scancel for %s, want >= 3 (%v)", n, e.User1, got)
	}
	if n := got[Key{e.User1, "ssh:command"}]; n < 3 {
		t.Errorf("counted %d ssh sessions for %s, want >= 3 (%v)", n, e.User1, got)
	}
}
