package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/wesgate/wesgate/scheduler"
)

// Credentials are how one cluster account logs in.
type Credentials struct {
	User   string
	Signer ssh.Signer
}

// SSHConfig configures the connections to the cluster's login node.
type SSHConfig struct {
	Addr        string        // host:port
	KnownHosts  string        // known_hosts file; the host key must be in it
	DialTimeout time.Duration // default 10s
	KeepAlive   time.Duration // default 30s
	MaxSessions int           // concurrent sessions per connection (OpenSSH allows 10); default 8
	// CommandTimeout is the deadline of a remote command whose caller set
	// none (default 5 minutes).
	CommandTimeout time.Duration
	// Credentials returns how an account logs in (a service key, or a
	// short-lived certificate minted for the account).
	Credentials func(account string) (Credentials, error)
	// Metrics counts connection events (nil: none).
	Metrics *Metrics
}

// HostKeyError means the cluster presented a host key that known_hosts does
// not hold for it. wesgate never connects past it.
type HostKeyError struct {
	Addr string
	Err  error
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("host key of %s does not match known_hosts: %v", e.Addr, e.Err)
}

func (e *HostKeyError) Unwrap() error { return e.Err }

// ExitError is a remote command that ran and exited non-zero.
type ExitError struct {
	Command string
	Status  int
	Stderr  string
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("%s: exit status %d: %s", e.Command, e.Status, firstLine(e.Stderr))
}

// AuthError means the cluster's sshd refused the account's key or
// certificate: waiting will not help (no such account, an untrusted CA, a
// revoked key).
type AuthError struct {
	Account string
	Err     error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("the cluster refused the login of %s: %v", e.Account, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// ErrUnreachable wraps failures to reach the cluster.
var ErrUnreachable = errors.New("cluster unreachable")

// Pool keeps one SSH connection per cluster account, reused for many
// sessions, capped in concurrent sessions, kept alive, and re-dialled with
// backoff after a failure.
type Pool struct {
	cfg      SSHConfig
	hostKeys ssh.HostKeyCallback
	log      *slog.Logger
	ctx      context.Context // ends keepalives
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns map[string]*conn
}

// conn is the connection of one account.
type conn struct {
	sem chan struct{} // session slots

	mu        sync.Mutex // guards the fields below
	client    *ssh.Client
	sftp      *sftp.Client
	failures  int
	notBefore time.Time // no dial before this, after failures
	lastErr   error
	lastOK    time.Time
	dialled   bool // connected at least once: the next connect is a reconnect
}

// NewPool returns a Pool. It reads known_hosts at once, so a missing file
// fails at start.
func NewPool(cfg SSHConfig, log *slog.Logger) (*Pool, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 8
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = 5 * time.Minute
	}
	if cfg.MaxSessions < 2 {
		return nil, errors.New("ssh: MaxSessions must be at least 2: the SFTP client keeps one session open")
	}
	hk, err := knownhosts.New(cfg.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Pool{cfg: cfg, hostKeys: hk, log: log, ctx: ctx, cancel: cancel, conns: map[string]*conn{}}, nil
}

// Close closes every connection and stops the keepalives.
func (p *Pool) Close() {
	p.cancel()
	p.mu.Lock()
	for _, c := range p.conns {
		c.mu.Lock()
		c.drop()
		c.mu.Unlock()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Pool) conn(account string) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.conns[account]
	if !ok {
		c = &conn{sem: make(chan struct{}, p.cfg.MaxSessions)}
		p.conns[account] = c
	}
	return c
}

// Health reports every account's connection.
func (p *Pool) Health() []scheduler.Health {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []scheduler.Health
	for acct, c := range p.conns {
		c.mu.Lock()
		h := scheduler.Health{Account: acct, Connected: c.client != nil, LastOK: c.lastOK}
		if c.lastErr != nil {
			h.LastError = c.lastErr.Error()
			var hk *HostKeyError
			h.HostKey = errors.As(c.lastErr, &hk)
		}
		c.mu.Unlock()
		out = append(out, h)
	}
	return out
}

// drop closes the connection; c.mu is held.
func (c *conn) drop() {
	if c.sftp != nil {
		c.sftp.Close()
		c.sftp = nil
		<-c.sem // the SFTP client's session slot
	}
	if c.client != nil {
		c.client.Close()
		c.client = nil
	}
}

// client returns the account's connection, dialling if needed.
func (p *Pool) client(ctx context.Context, account string) (*conn, *ssh.Client, error) {
	c := p.conn(account)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c, c.client, nil
	}
	if wait := time.Until(c.notBefore); wait > 0 {
		// %w twice: a *HostKeyError stays one while the dial waits.
		return nil, nil, fmt.Errorf("%w: retrying in %s after: %w", ErrUnreachable, wait.Round(time.Second), c.lastErr)
	}
	cl, err := p.dial(ctx, account)
	if err != nil {
		c.failures++
		backoff := min(time.Second<<min(c.failures-1, 5), 30*time.Second)
		var hk *HostKeyError
		if errors.As(err, &hk) {
			backoff = time.Minute // a changed host key will not fix itself soon
			p.cfg.Metrics.ssh("hostkey_error")
		} else {
			p.cfg.Metrics.ssh("error")
		}
		c.notBefore = time.Now().Add(backoff)
		c.lastErr = err
		p.log.Warn("ssh: connect failed", "account", account, "addr", p.cfg.Addr, "retry_in", backoff, "err", err)
		return nil, nil, err
	}
	c.failures, c.notBefore, c.client = 0, time.Time{}, cl
	c.lastOK, c.lastErr = time.Now(), nil
	if c.dialled {
		p.cfg.Metrics.ssh("reconnect")
	}
	p.cfg.Metrics.ssh("connect")
	c.dialled = true
	p.log.Info("ssh: connected", "account", account, "addr", p.cfg.Addr)
	p.wg.Go(func() { p.keepAlive(c, cl) })
	return c, cl, nil
}

func (p *Pool) dial(ctx context.Context, account string) (*ssh.Client, error) {
	cred, err := p.cfg.Credentials(account)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", account, err)
	}
	var hostKeyErr error
	cfg := &ssh.ClientConfig{
		User: cred.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(cred.Signer)},
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			err := p.hostKeys(host, remote, key)
			if err != nil {
				hostKeyErr = &HostKeyError{Addr: p.cfg.Addr, Err: err}
			}
			return err
		},
		Timeout: p.cfg.DialTimeout,
	}
	d := net.Dialer{Timeout: p.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", p.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	// The handshake has its own deadline, as ssh.Dial would set.
	nc.SetDeadline(time.Now().Add(p.cfg.DialTimeout))
	sc, chans, reqs, err := ssh.NewClientConn(nc, p.cfg.Addr, cfg)
	if err != nil {
		nc.Close()
		if hostKeyErr != nil {
			return nil, hostKeyErr
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, &AuthError{Account: cred.User, Err: err}
		}
		return nil, fmt.Errorf("%w: ssh handshake: %w", ErrUnreachable, err)
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// keepAlive pings the server; a failed ping drops the connection so the next
// use re-dials.
func (p *Pool) keepAlive(c *conn, cl *ssh.Client) {
	t := time.NewTicker(p.cfg.KeepAlive)
	defer t.Stop()
	done := make(chan struct{})
	go func() { cl.Wait(); close(done) }()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-done:
			p.forget(c, cl, errors.New("connection closed"))
			return
		case <-t.C:
			errc := make(chan error, 1)
			go func() {
				_, _, err := cl.SendRequest("keepalive@openssh.com", true, nil)
				errc <- err
			}()
			select {
			case err := <-errc:
				if err != nil {
					p.forget(c, cl, err)
					return
				}
			case <-time.After(p.cfg.KeepAlive):
				p.forget(c, cl, errors.New("keepalive timed out"))
				return
			case <-p.ctx.Done():
				return
			}
		}
	}
}

// forget drops cl if it is still the account's connection.
func (p *Pool) forget(c *conn, cl *ssh.Client, cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client == cl {
		p.cfg.Metrics.ssh("lost")
		p.log.Warn("ssh: connection lost", "addr", p.cfg.Addr, "err", cause)
		c.lastErr = cause
		c.drop()
	}
}

// Run runs a command as account and returns its stdout. A non-zero exit is
// an *ExitError; a broken connection is dropped and reported as
// ErrUnreachable. When ctx ends, the remote command is killed.
func (p *Pool) Run(ctx context.Context, account, cmd string, stdin []byte) ([]byte, error) {
	var stdout bytes.Buffer
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	err := p.Stream(ctx, account, cmd, in, func(r io.Reader) error {
		_, err := stdout.ReadFrom(r)
		return err
	})
	var ee *ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, err
	}
	return stdout.Bytes(), err
}

// errStopped is returned by a consume function that has read enough: the
// remote command is then killed, and Stream reports no error of its own.
var errStopped = errors.New("stopped reading")

// Stream runs a command as account with stdin (nil for none), handing its
// stdout to consume while it runs. When consume returns errStopped, the
// command is killed and Stream returns nil; another error of consume is
// returned as it is. A non-zero exit is an *ExitError; a broken connection
// is dropped and reported as ErrUnreachable. When ctx ends, the remote
// command is killed and the session closed, so a command that hangs never
// holds a session slot past its deadline.
func (p *Pool) Stream(ctx context.Context, account, cmd string, stdin io.Reader, consume func(io.Reader) error) error {
	if _, ok := ctx.Deadline(); !ok {
		// Every remote command has a deadline, even when its caller set none.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.cfg.CommandTimeout)
		defer cancel()
	}
	c, cl, err := p.client(ctx, account)
	if err != nil {
		return err
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	sess, err := cl.NewSession()
	// sshd frees a closed session a moment after the close, so at its
	// MaxSessions it may refuse the next one; the connection is fine.
	var refused *ssh.OpenChannelError
	for try := 1; err != nil && errors.As(err, &refused) && try <= 5; try++ {
		select {
		case <-time.After(time.Duration(try) * 20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		sess, err = cl.NewSession()
	}
	if err != nil {
		if !errors.As(err, &refused) {
			p.forget(c, cl, err)
		}
		return fmt.Errorf("%w: new session: %w", ErrUnreachable, err)
	}
	defer sess.Close()
	var stderr limitedBuffer
	sess.Stderr = &stderr
	sess.Stdin = stdin
	out, err := sess.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%w: stdout: %w", ErrUnreachable, err)
	}
	if err := sess.Start(cmd); err != nil {
		return fmt.Errorf("%w: start: %w", ErrUnreachable, err)
	}
	// The session is closed when ctx ends, which unblocks consume and Wait.
	stop := context.AfterFunc(ctx, func() {
		sess.Signal(ssh.SIGKILL)
		sess.Close()
	})
	defer stop()
	cerr := consume(out)
	if cerr != nil {
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		io.Copy(io.Discard, out)
	} else {
		io.Copy(io.Discard, out) // what consume left, so Wait can finish
	}
	err = sess.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(cerr, errStopped) {
		c.markOK()
		return nil
	}
	if cerr != nil {
		return cerr
	}
	if err != nil {
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			c.markOK()
			return &ExitError{Command: commandName(cmd), Status: ee.ExitStatus(), Stderr: stderr.String()}
		}
		p.forget(c, cl, err)
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	c.markOK()
	return nil
}

// limitedBuffer keeps the first 64 KiB written to it: a remote command's
// stderr, for messages.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *conn) markOK() {
	c.mu.Lock()
	c.lastOK = time.Now()
	c.mu.Unlock()
}

// SFTP returns the account's SFTP client, opening it on first use. The
// client is shared; it holds one session of the connection's cap.
func (p *Pool) SFTP(ctx context.Context, account string) (*sftp.Client, error) {
	c, cl, err := p.client(ctx, account)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.sftp != nil && c.client == cl {
		defer c.mu.Unlock()
		return c.sftp, nil
	}
	c.mu.Unlock()
	// The slot is taken before c.mu, which a Run holding a slot may wait for.
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sftp != nil && c.client == cl { // opened meanwhile
		<-c.sem
		return c.sftp, nil
	}
	if c.client != cl {
		<-c.sem
		return nil, fmt.Errorf("%w: connection lost", ErrUnreachable)
	}
	sc, err := p.newSFTP(ctx, cl)
	if err != nil {
		<-c.sem
		return nil, fmt.Errorf("%w: sftp: %w", ErrUnreachable, err)
	}
	c.sftp = sc // holds its slot until drop
	return sc, nil
}

// newSFTP starts the SFTP subsystem on a session of its own, within the
// dial timeout: a subsystem that never answers its version exchange (a
// stuck login node) closes the session instead of hanging the caller.
func (p *Pool) newSFTP(ctx context.Context, cl *ssh.Client) (*sftp.Client, error) {
	sess, err := cl.NewSession()
	if err != nil {
		return nil, err
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		sess.Close()
		return nil, err
	}
	w, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	sc, err := sftp.NewClientPipe(r, w, sftp.UseConcurrentWrites(true))
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, fmt.Errorf("sftp start: %w", ctx.Err())
	}
	if err != nil {
		sess.Close()
		return nil, err
	}
	// The client ends the session when it is closed.
	go func() {
		sc.Wait()
		sess.Close()
	}()
	return sc, nil
}

// sftpFailed drops the connection after an SFTP transport failure.
func (p *Pool) sftpFailed(account string, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, net.ErrClosed) {
		c := p.conn(account)
		c.mu.Lock()
		c.lastErr = err
		c.drop()
		c.mu.Unlock()
	}
}

func firstLine(s string) string {
	s = string(bytes.TrimSpace([]byte(s)))
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// commandName is the program of a command line, for errors and logs.
func commandName(cmd string) string {
	f := bytes.Fields([]byte(cmd))
	for _, w := range f {
		if !bytes.Contains(w, []byte("=")) {
			return string(bytes.Trim(w, "'"))
		}
	}
	return "command"
}
