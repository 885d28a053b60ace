// Package labenv is the Go side of the wesgate lab (lab/up.sh) for tests and
// the benchmark: the lab's settings from the WESGATE_LAB_* variables that
// lab/env.sh exports, an in-process latency proxy in front of the lab's sshd
// (Lag), the lab's slow Slurm commands (Slow, Hang) and the count of remote
// commands per account (CountOn, Mark, Counts).
//
// Lag touches nothing global. Slow, Hang, SlowOff and the count functions
// change the shared lab (every user of it sees slow commands), need root and
// a lab brought up by a lab/up.sh with shims; see lab/README.md.
package labenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/wesgate/wesgate/lab/lagproxy"
)

// Env is the lab as lab/env.sh describes it.
type Env struct {
	State      string // WESGATE_LAB_STATE: the lab's state dir
	SSHAddr    string // WESGATE_LAB_SSH_ADDR: the lab's sshd, 127.0.0.1:2222
	LagAddr    string // WESGATE_LAB_LAG_ADDR: `lab/ctl.sh lag`'s proxy; "" when it does not run
	LagDelay   string // WESGATE_LAB_LAG_DELAY: its one-way delay, e.g. "25ms"
	KnownHosts string // WESGATE_LAB_KNOWN_HOSTS: accepts the host key at SSHAddr and at port 2223

	User1, Key1     string // WESGATE_LAB_USER1, WESGATE_LAB_KEY1
	User2, Key2     string // WESGATE_LAB_USER2, WESGATE_LAB_KEY2
	SvcUser, SvcKey string // WESGATE_LAB_SVC_USER, WESGATE_LAB_SVC_KEY
	CAKey, CAPub    string // WESGATE_LAB_CA_KEY, WESGATE_LAB_CA_PUB

	Partition, Partition2 string // WESGATE_LAB_PARTITION, WESGATE_LAB_PARTITION2
	Base                  string // WESGATE_LAB_BASE: the run base
	SlurmConf             string // WESGATE_LAB_SLURM_CONF
}

// Load reads the lab's settings with getenv (os.Getenv). It reports false
// when the lab is not up (WESGATE_LAB_SSH_ADDR unset): tests then skip.
func Load(getenv func(string) string) (Env, bool) {
	e := Env{
		State:      getenv("WESGATE_LAB_STATE"),
		SSHAddr:    getenv("WESGATE_LAB_SSH_ADDR"),
		LagAddr:    getenv("WESGATE_LAB_LAG_ADDR"),
		LagDelay:   getenv("WESGATE_LAB_LAG_DELAY"),
		KnownHosts: getenv("WESGATE_LAB_KNOWN_HOSTS"),
		User1:      getenv("WESGATE_LAB_USER1"),
		Key1:       getenv("WESGATE_LAB_KEY1"),
		User2:      getenv("WESGATE_LAB_USER2"),
		Key2:       getenv("WESGATE_LAB_KEY2"),
		SvcUser:    getenv("WESGATE_LAB_SVC_USER"),
		SvcKey:     getenv("WESGATE_LAB_SVC_KEY"),
		CAKey:      getenv("WESGATE_LAB_CA_KEY"),
		CAPub:      getenv("WESGATE_LAB_CA_PUB"),
		Partition:  getenv("WESGATE_LAB_PARTITION"),
		Partition2: getenv("WESGATE_LAB_PARTITION2"),
		Base:       getenv("WESGATE_LAB_BASE"),
		SlurmConf:  getenv("WESGATE_LAB_SLURM_CONF"),
	}
	if e.State == "" {
		e.State = "/var/lib/wesgate-lab"
	}
	return e, e.SSHAddr != ""
}

// Lag starts a latency proxy in this process in front of the lab's sshd,
// adding delay each way (2*delay per round trip, plus one round trip per new
// connection), and returns its address (127.0.0.1, a free port). The proxy
// stops when ctx is done or stop is called; stop waits until it has. The lab's
// known_hosts does not name that port: see WriteKnownHosts.
func (e Env) Lag(ctx context.Context, delay time.Duration) (addr string, stop func(), err error) {
	if err := lagproxy.CheckLoopback(e.SSHAddr); err != nil {
		return "", nil, err
	}
	ln, err := lagproxy.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &lagproxy.Proxy{Target: e.SSHAddr, Delay: delay}
	var wg sync.WaitGroup
	wg.Go(func() { p.Serve(ctx, ln) })
	return ln.Addr().String(), func() { cancel(); wg.Wait() }, nil
}

// WriteKnownHosts writes a known_hosts file at path that accepts the lab's
// sshd host key (from e.KnownHosts) at each of addrs, e.g. the address Lag
// returned.
func (e Env) WriteKnownHosts(path string, addrs ...string) error {
	b, err := os.ReadFile(e.KnownHosts)
	if err != nil {
		return fmt.Errorf("labenv: %w", err)
	}
	_, _, key, _, _, err := ssh.ParseKnownHosts(b)
	if err != nil {
		return fmt.Errorf("labenv: %s: %w", e.KnownHosts, err)
	}
	return os.WriteFile(path, []byte(knownhosts.Line(addrs, key)+"\n"), 0o644)
}

// shimmed are the Slurm commands lab/up.sh puts a shim in front of
// (lab/lib.sh SHIM_CMDS); Slow, Hang and the counts apply to these.
var shimmed = [...]string{"sbatch", "squeue", "sacct", "scancel"}

// shimDir is where lab/up.sh installs the shims (lab/lib.sh SHIM_DIR).
const shimDir = "/usr/local/bin"

// Slow makes every later run of cmd (sbatch, squeue, sacct or scancel) on the lab, by anyone,
// sleep d before it starts, as a busy slurmctld would make it answer late.
// d <= 0 makes cmd fast again. Needs root.
func (e Env) Slow(cmd string, d time.Duration) error {
	if d <= 0 {
		return e.slowFile(cmd, "")
	}
	return e.slowFile(cmd, fmt.Sprintf("%.3f", d.Seconds()))
}

// Hang makes every later run of cmd never answer: it waits until Slow(cmd, 0)
// or SlowOff (or until its caller is gone) and then fails with exit code 1.
// Needs root.
func (e Env) Hang(cmd string) error { return e.slowFile(cmd, "hang") }

// SlowOff makes all commands fast again (lab/ctl.sh slow off). Needs root.
func (e Env) SlowOff() error {
	for _, c := range shimmed {
		if err := e.slowFile(c, ""); err != nil {
			return err
		}
	}
	return nil
}

// slowFile writes $State/slow/cmd (the shim reads one line: seconds or
// "hang") or removes it for "".
func (e Env) slowFile(cmd, value string) error {
	if !slices.Contains(shimmed[:], cmd) {
		return fmt.Errorf("labenv: %q is not one of the lab's shimmed commands %v", cmd, shimmed)
	}
	path := filepath.Join(e.State, "slow", cmd)
	if value == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("labenv: %w", err)
		}
		return nil
	}
	if err := checkShim(cmd); err != nil {
		return err
	}
	// write then rename: a shim never reads half a value
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("labenv: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("labenv: %w", err)
	}
	return nil
}

// checkShim fails unless lab/up.sh's shim for cmd is installed, so that a
// slow setting or a count cannot silently do nothing.
func checkShim(cmd string) error {
	b, err := os.ReadFile(filepath.Join(shimDir, cmd))
	if err != nil || !bytes.Contains(b, []byte("wesgate-lab shim")) {
		return fmt.Errorf("labenv: no lab shim at %s/%s: run lab/up.sh", shimDir, cmd)
	}
	return nil
}

// Key names what a count is of: an account and a command. Command is sbatch,
// squeue, sacct or scancel (from the shims' log), or "ssh:command", "ssh:shell",
// "ssh:subsystem:sftp" for each session the lab's sshd started (from its log,
// LogLevel VERBOSE; all remote commands, Slurm or not, via any port).
type Key struct {
	User    string
	Command string
}

// Mark is a point in the lab's logs; Counts counts what came after it.
type Mark struct {
	shims, sshd int64
}

// CountOn makes the shims log every Slurm command (as `lab/ctl.sh count on`
// does, but without starting a fresh log) and returns a Mark. Needs root.
func (e Env) CountOn() (Mark, error) {
	if err := checkShim("sbatch"); err != nil {
		return Mark{}, err
	}
	dir := filepath.Join(e.State, "count")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Mark{}, fmt.Errorf("labenv: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
	if err != nil {
		return Mark{}, fmt.Errorf("labenv: %w", err)
	}
	f.Close()
	// the lab users' shims append to it; umask took the write bits
	if err := os.Chmod(filepath.Join(dir, "log"), 0o666); err != nil {
		return Mark{}, fmt.Errorf("labenv: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "on"), nil, 0o644); err != nil {
		return Mark{}, fmt.Errorf("labenv: %w", err)
	}
	return e.Mark()
}

// CountOff stops the shims' logging (lab/ctl.sh count off). Needs root.
func (e Env) CountOff() error {
	err := os.Remove(filepath.Join(e.State, "count", "on"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("labenv: %w", err)
	}
	return nil
}

// Mark returns the current end of the shims' log and of sshd's log.
func (e Env) Mark() (Mark, error) {
	shims, err := size(filepath.Join(e.State, "count", "log"))
	if err != nil {
		return Mark{}, err
	}
	sshd, err := size(filepath.Join(e.State, "log", "sshd.log"))
	if err != nil {
		return Mark{}, err
	}
	return Mark{shims: shims, sshd: sshd}, nil
}

// Counts returns how often each account ran each command since m: Slurm
// commands (while counting was on) and ssh sessions. Commands still running
// are counted (the shim logs before it starts the command).
func (e Env) Counts(m Mark) (map[Key]int, error) {
	n := make(map[Key]int)
	err := scanFrom(filepath.Join(e.State, "count", "log"), m.shims, func(line string) {
		// UNIXTIME USER COMMAND
		if f := strings.Fields(line); len(f) == 3 {
			n[Key{User: f[1], Command: f[2]}]++
		}
	})
	if err != nil {
		return nil, err
	}
	err = scanFrom(filepath.Join(e.State, "log", "sshd.log"), m.sshd, func(line string) {
		if k, ok := parseSession(line); ok {
			n[k]++
		}
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// parseSession reads sshd's (LogLevel VERBOSE) line for a new session:
//
//	Starting session: command for wesuser1 from 127.0.0.1 port 40808 id 0
//	Starting session: subsystem 'sftp' for wesuser1 from 127.0.0.1 port 40810 id 1
func parseSession(line string) (Key, bool) {
	_, rest, ok := strings.Cut(line, "Starting session: ")
	if !ok {
		return Key{}, false
	}
	i := strings.LastIndex(rest, " for ")
	if i < 0 {
		return Key{}, false
	}
	kind, who := rest[:i], rest[i+len(" for "):]
	user, _, ok := strings.Cut(who, " from ")
	if !ok || user == "" {
		return Key{}, false
	}
	switch {
	case strings.HasPrefix(kind, "subsystem '"):
		kind = "subsystem:" + strings.Trim(strings.TrimPrefix(kind, "subsystem "), "'")
	case strings.HasPrefix(kind, "forced-command"):
		kind = "forced-command"
	case strings.HasPrefix(kind, "command"):
		kind = "command" // "command on /dev/pts/N" with a tty
	case strings.HasPrefix(kind, "shell"):
		kind = "shell"
	}
	return Key{User: user, Command: "ssh:" + kind}, true
}

// size is the size of the file at path, 0 if there is none.
func size(path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("labenv: %w", err)
	}
	return fi.Size(), nil
}

// scanFrom calls fn for each complete line of the file at path after offset.
func scanFrom(path string, offset int64, fn func(string)) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("labenv: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("labenv: %w", err)
	}
	if fi.Size() < offset {
		return fmt.Errorf("labenv: %s was truncated after the mark (lab/ctl.sh count on starts a fresh log)", path)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("labenv: %w", err)
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// a last line without its newline is still being written
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("labenv: %w", err)
		}
		fn(strings.TrimSuffix(line, "\n"))
	}
}
