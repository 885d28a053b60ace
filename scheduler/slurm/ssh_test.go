package slurm

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/wesgate/wesgate/scheduler"
)

// testSSHD is a throwaway sshd of the test's own on a free loopback port,
// with its own host key, letting in the lab's users with their usual keys.
// Tests may kill it, restart it and change its host key; the lab's sshd is
// shared and left alone.
type testSSHD struct {
	t          testing.TB
	Addr       string
	KnownHosts string // holds the current host key for Addr
	dir        string
	config     string
	cmd        *exec.Cmd
}

// startSSHD starts a throwaway sshd; extra lines go into its sshd_config.
// It is killed, with every session it started, when the test ends.
func startSSHD(t testing.TB, l *lab, extra ...string) *testSSHD {
	t.Helper()
	const bin = "/usr/sbin/sshd"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no %s: %v", bin, err)
	}
	d := &testSSHD{t: t, Addr: closedAddr(t), dir: t.TempDir()}
	d.KnownHosts = filepath.Join(d.dir, "known_hosts")
	d.config = filepath.Join(d.dir, "sshd_config")
	_, port, _ := net.SplitHostPort(d.Addr)
	users := []string{l.SvcUser}
	if l.User1 != "" {
		users = append(users, l.User1)
	}
	// Modelled on the lab's $WESGATE_LAB_STATE/ssh/sshd_config.
	conf := []string{
		"Port " + port,
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(d.dir, "host_key"),
		"PidFile " + filepath.Join(d.dir, "sshd.pid"),
		"UsePAM no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"PermitRootLogin no",
		"AuthorizedKeysFile .ssh/authorized_keys",
		"AllowUsers " + strings.Join(users, " "),
		"MaxSessions 10",
		"MaxStartups 100:30:200",
		"LogLevel VERBOSE",
		"PrintMotd no",
		"X11Forwarding no",
		"Subsystem sftp internal-sftp",
	}
	conf = append(conf, extra...)
	if err := os.WriteFile(d.config, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.NewHostKey()
	d.Start()
	t.Cleanup(d.Kill)
	return d
}

// NewHostKey gives the sshd a new host key, effective at its next start, and
// writes it to KnownHosts.
func (d *testSSHD) NewHostKey() {
	d.t.Helper()
	priv, signer := newKey(d.t)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "host_key"), pem.EncodeToMemory(block), 0o600); err != nil {
		d.t.Fatal(err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(d.Addr)}, signer.PublicKey())
	if err := os.WriteFile(d.KnownHosts, []byte(line+"\n"), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// Start starts sshd and waits until it accepts connections.
func (d *testSSHD) Start() {
	d.t.Helper()
	logf, err := os.OpenFile(filepath.Join(d.dir, "sshd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = exec.Command("/usr/sbin/sshd", "-D", "-e", "-f", d.config)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.dir, "sshd.log"))
			d.t.Fatalf("sshd on %s did not start: %v\n%s", d.Addr, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill kills sshd and every process it started (one per connection, and
// their sessions), as a crashed or rebooted login node would lose them.
func (d *testSSHD) Kill() {
	if d.cmd == nil {
		return
	}
	pids := append(descendants(d.cmd.Process.Pid), d.cmd.Process.Pid)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	d.cmd.Wait()
	d.cmd = nil
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out
}

// mustRun runs cmd as account and fails the test on an error (after
// retrying a lab outage).
func mustRun(t testing.TB, pool *Pool, account, cmd string) string {
	t.Helper()
	var out []byte
	err := retry(t, cmd, func(ctx context.Context) (err error) {
		out, err = pool.Run(ctx, account, cmd, nil)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out)
}

// exists reports whether path exists on the cluster.
func exists(t testing.TB, pool *Pool, account, path string) bool {
	t.Helper()
	err := retry(t, "test -e", func(ctx context.Context) error {
		_, err := pool.Run(ctx, account, "test -e "+path, nil)
		return err
	})
	var ee *ExitError
	if errors.As(err, &ee) && ee.Status == 1 {
		return false
	}
	if err != nil {
		t.Fatalf("test -e %s: %v", path, err)
	}
	return true
}

func healthOf(t testing.TB, pool *Pool, account string) scheduler.Health {
	t.Helper()
	hs := pool.Health()
	i := slices.IndexFunc(hs, func(h scheduler.Health) bool { return h.Account == account })
	if i < 0 {
		t.Fatalf("Health() = %+v has no %s", hs, account)
	}
	return hs[i]
}

// A host key that known_hosts does not hold for the address stops wesgate
// before it authenticates, so no command runs; Health says why.
func TestHostKeyMismatch(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	_, other := newKey(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(l.Addr)}, other.PublicKey())
	if err := os.WriteFile(kh, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := testLog(t)
	good := labPool(t, l, nil, log)
	bad := labPool(t, l, func(c *SSHConfig) { c.KnownHosts = kh }, log)
	marker := fmt.Sprintf("%s/%s/hostkey-marker-%s", l.Base, l.SvcUser, randHex(t, 6))
	t.Cleanup(func() { good.Run(context.Background(), l.SvcUser, "rm -f "+marker, nil) })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := bad.Run(ctx, l.SvcUser, "touch "+marker, nil)
	var hk *HostKeyError
	if !errors.As(err, &hk) || hk.Addr != l.Addr {
		t.Fatalf("Run with a wrong host key: %v, want a *HostKeyError for %s", err, l.Addr)
	}
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) != 1 {
		t.Errorf("want the knownhosts.KeyError naming the one known key, got %v", err)
	}
	if exists(t, good, l.SvcUser, marker) {
		t.Fatal("the command ran despite the host key mismatch")
	}
	h := healthOf(t, bad, l.SvcUser)
	if !h.HostKey || h.Connected || !strings.Contains(h.LastError, "host key") || !h.LastOK.IsZero() {
		t.Errorf("Health = %+v, want a host key error, not connected", h)
	}
	// Within the back-off the error keeps its cause and nothing is dialled.
	start := time.Now()
	_, err = bad.Run(ctx, l.SvcUser, "touch "+marker, nil)
	if !errors.As(err, &hk) || !errors.Is(err, ErrUnreachable) || time.Since(start) > time.Second {
		t.Errorf("second Run: %v after %s; want a prompt ErrUnreachable that is also a *HostKeyError", err, time.Since(start))
	}

	// The same command with the right known_hosts does run: the check above
	// can fail.
	mustRun(t, good, l.SvcUser, "touch "+marker)
	if !exists(t, good, l.SvcUser, marker) {
		t.Fatal("touch with the right host key made no marker")
	}
}

// A host known_hosts does not list at all is refused the same way.
func TestUnknownHost(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	b, err := os.ReadFile(l.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	// The lab's own key, but for another port only.
	_, _, key, _, _, err := ssh.ParseKnownHosts(b)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(l.Addr)
	p, _ := strconv.Atoi(port)
	other := net.JoinHostPort(host, strconv.Itoa(p+1))
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(knownhosts.Line([]string{knownhosts.Normalize(other)}, key)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := testLog(t)
	good := labPool(t, l, nil, log)
	pool := labPool(t, l, func(c *SSHConfig) { c.KnownHosts = kh }, log)
	marker := fmt.Sprintf("%s/%s/unknownhost-marker-%s", l.Base, l.SvcUser, randHex(t, 6))
	t.Cleanup(func() { good.Run(context.Background(), l.SvcUser, "rm -f "+marker, nil) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = pool.Run(ctx, l.SvcUser, "touch "+marker, nil)
	var hk *HostKeyError
	var ke *knownhosts.KeyError
	if !errors.As(err, &hk) || !errors.As(err, &ke) || len(ke.Want) != 0 {
		t.Fatalf("Run against an unknown host: %v, want a *HostKeyError for a host known_hosts does not list", err)
	}
	if exists(t, good, l.SvcUser, marker) {
		t.Fatal("the command ran on an unknown host")
	}

	// An empty known_hosts knows no host; a missing one fails at start.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pool = labPool(t, l, func(c *SSHConfig) { c.KnownHosts = empty }, log)
	if _, err := pool.Run(ctx, l.SvcUser, "true", nil); !errors.As(err, &hk) {
		t.Errorf("Run with an empty known_hosts: %v, want a *HostKeyError", err)
	}
	if _, err := NewPool(SSHConfig{Addr: l.Addr, KnownHosts: filepath.Join(t.TempDir(), "missing")}, log); err == nil {
		t.Error("NewPool with a missing known_hosts file succeeded")
	}
}

// interval is when one remote command ran, by the cluster's clock.
type interval struct{ start, end float64 }

// timedSleeps runs n concurrent `sleep 1` and returns when each ran.
func timedSleeps(t testing.TB, pool *Pool, account string, n int) []interval {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := make([]interval, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b, err := pool.Run(ctx, account, "date +%s.%N; sleep 1; date +%s.%N", nil)
			if err != nil {
				errs[i] = err
				return
			}
			f := strings.Fields(string(b))
			if len(f) != 2 {
				errs[i] = fmt.Errorf("output %q", b)
				return
			}
			out[i].start, _ = strconv.ParseFloat(f[0], 64)
			out[i].end, _ = strconv.ParseFloat(f[1], 64)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// maxOverlap is the most intervals running at once.
func maxOverlap(iv []interval) int {
	most := 0
	for _, a := range iv {
		n := 0
		for _, b := range iv {
			if b.start <= a.start && a.start < b.end {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

func TestSessionCap(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	pool := labPool(t, l, func(c *SSHConfig) { c.MaxSessions = 2 }, testLog(t))
	mustRun(t, pool, l.SvcUser, "true") // connect first: the dial is not what is measured
	start := time.Now()
	iv := timedSleeps(t, pool, l.SvcUser, 6)
	took := time.Since(start)
	if took < 2900*time.Millisecond {
		t.Errorf("6 x sleep 1 with 2 sessions took %s, want >= 3s", took)
	}
	if n := maxOverlap(iv); n != 2 {
		t.Errorf("at most %d commands ran at once, want 2 (the cap, and used): %v", n, iv)
	}
	// One session would leave none beside the SFTP client's.
	if _, err := NewPool(SSHConfig{Addr: l.Addr, KnownHosts: l.KnownHosts, MaxSessions: 1}, testLog(t)); err == nil {
		t.Error("NewPool with MaxSessions 1 succeeded")
	}
}

// The SFTP client holds a session of its own: with it open, MaxSessions
// commands at once must still fit the server's MaxSessions (the lab's sshd
// allows 10), or one channel is refused and the connection dropped with
// every command on it.
func TestSessionCapCountsSFTP(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	pool := labPool(t, l, func(c *SSHConfig) { c.MaxSessions = 10 }, testLog(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := pool.SFTP(ctx, l.SvcUser); err != nil {
		t.Fatal(err)
	}
	iv := timedSleeps(t, pool, l.SvcUser, 10)
	if n := maxOverlap(iv); n > 9 {
		t.Errorf("%d commands ran beside the SFTP session, want at most 9", n)
	}
	fsys, err := pool.SFTP(ctx, l.SvcUser)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Getwd(); err != nil {
		t.Errorf("SFTP after the commands: %v", err)
	}
}

// Ending the context kills the remote command, not just the wait for it.
func TestRunContextKillsRemote(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	pool := labPool(t, l, nil, testLog(t))
	mustRun(t, pool, l.SvcUser, "true")
	sleep := fmt.Sprintf("sleep 30.%06d", rand.IntN(1e6)) // a command line no one else runs
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := pool.Run(ctx, l.SvcUser, sleep, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run(%s) = %v, want context.DeadlineExceeded", sleep, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Run returned %s after the deadline", took-time.Second)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// pgrep -x -f matches whole command lines: not the shell running it.
		out := mustRun(t, pool, l.SvcUser, "pgrep -x -f '"+sleep+"' || true")
		if strings.TrimSpace(out) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still runs (pids %s) 5s after its context ended", sleep, strings.Fields(out))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The connection is still good.
	if out := mustRun(t, pool, l.SvcUser, "echo ok"); out != "ok\n" {
		t.Errorf("after the kill: %q", out)
	}
	// A non-zero exit is an *ExitError with the status and stderr.
	_, err = pool.Run(context.Background(), l.SvcUser, "echo why >&2; exit 7", nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Status != 7 || ee.Stderr != "why\n" || errors.Is(err, ErrUnreachable) {
		t.Errorf("exit 7: %v", err)
	}
	if out := mustRun(t, pool, l.SvcUser, "cat"); out != "" {
		t.Errorf("cat without stdin: %q", out)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if out, err := pool.Run(ctx2, l.SvcUser, "cat", []byte("in\n")); err != nil || string(out) != "in\n" {
		t.Errorf("cat with stdin: %q, %v", out, err)
	}
}

// After the login node goes away, commands fail as ErrUnreachable; when it is
// back, the pool reconnects by itself once the back-off has passed.
func TestReconnect(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	d := startSSHD(t, l)
	pool := labPool(t, l, func(c *SSHConfig) {
		c.Addr, c.KnownHosts, c.DialTimeout, c.KeepAlive = d.Addr, d.KnownHosts, 2*time.Second, time.Second
	}, testLog(t))
	mustRun(t, pool, l.SvcUser, "true")
	if h := healthOf(t, pool, l.SvcUser); !h.Connected || h.LastOK.IsZero() {
		t.Fatalf("Health = %+v, want connected", h)
	}

	d.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for range 3 { // the dead connection, then failed dials, then the back-off
		if _, err := pool.Run(ctx, l.SvcUser, "true", nil); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Run with sshd down: %v, want ErrUnreachable", err)
		}
	}
	if h := healthOf(t, pool, l.SvcUser); h.Connected || h.LastError == "" || h.HostKey {
		t.Errorf("Health with sshd down = %+v", h)
	}

	d.Start()
	back := time.Now()
	for {
		_, err := pool.Run(ctx, l.SvcUser, "true", nil)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Run while reconnecting: %v, want ErrUnreachable", err)
		}
		// The back-off after a few failures is a few seconds (1s, 2s, 4s...).
		if time.Since(back) > 15*time.Second {
			t.Fatalf("no reconnect 15s after sshd came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("reconnected %s after sshd came back", time.Since(back).Round(time.Millisecond))
	if h := healthOf(t, pool, l.SvcUser); !h.Connected || h.LastError != "" {
		t.Errorf("Health after reconnect = %+v", h)
	}
	// SFTP works on the new connection too.
	fsys, err := pool.SFTP(ctx, l.SvcUser)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Getwd(); err != nil {
		t.Errorf("SFTP after reconnect: %v", err)
	}
}

// A login node that comes back with another host key is not trusted.
func TestHostKeyChanged(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	d := startSSHD(t, l)
	pinned := filepath.Join(t.TempDir(), "known_hosts") // the key known at start
	b, err := os.ReadFile(d.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pinned, b, 0o644); err != nil {
		t.Fatal(err)
	}
	pool := labPool(t, l, func(c *SSHConfig) { c.Addr, c.KnownHosts = d.Addr, pinned }, testLog(t))
	mustRun(t, pool, l.SvcUser, "true")

	d.Kill()
	d.NewHostKey()
	d.Start()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var hk *HostKeyError
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := pool.Run(ctx, l.SvcUser, "true", nil)
		if errors.As(err, &hk) {
			break
		}
		if err == nil {
			t.Fatal("Run succeeded against a changed host key")
		}
		// First the dropped connection, then a back-off before the new dial.
		if time.Now().After(deadline) {
			t.Fatalf("no host key error 10s after the key changed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if h := healthOf(t, pool, l.SvcUser); !h.HostKey || h.Connected {
		t.Errorf("Health = %+v, want the host key error", h)
	}
}
