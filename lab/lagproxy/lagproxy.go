// Package lagproxy is the lab's latency proxy: a TCP forwarder that delays
// every byte by a fixed one-way delay in each direction, so that a service on
// loopback (the lab's sshd) looks like a login node far away.
//
// It is a delay line, not a rate limiter: each chunk read is stamped with the
// time it arrived and written out when that time plus the delay has come, while
// the reader keeps reading. Throughput is therefore unchanged (up to the bytes
// that may be in flight per direction, see MaxInFlight); only latency is added.
// A new connection also costs one round trip before the target is dialled, as
// a TCP handshake over the slow link would. End of stream (a half close) is
// delayed like data.
//
// Only loopback addresses (127.0.0.0/8, ::1) may be listened on or dialled:
// this is test tooling and must never relay anything off the machine.
package lagproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Defaults for Proxy's zero fields.
const (
	// ChunkSize is the size of one read buffer.
	ChunkSize = 32 << 10
	// MaxInFlight is how many bytes one direction of one connection holds at
	// most (read but not yet written). When it is full the proxy stops reading
	// and TCP flow control pushes back on the sender. At 25 ms one-way delay,
	// 4 MiB in flight allows about 160 MiB/s.
	MaxInFlight = 4 << 20
)

// ErrNotLoopback is returned for an address that is not an IP literal in
// 127.0.0.0/8 or ::1.
var ErrNotLoopback = errors.New("lagproxy: address is not loopback")

// CheckLoopback returns ErrNotLoopback unless addr is host:port with host an
// IP literal on loopback. Names (even "localhost") are refused, so that what is
// checked is what is used.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("lagproxy: %q: %w", addr, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return nil
}

// Listen listens on addr, which must be a loopback address (see
// CheckLoopback).
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	if err := CheckLoopback(addr); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", addr)
}

// Proxy forwards connections to Target, delaying each direction by Delay.
type Proxy struct {
	Target string        // host:port, loopback only
	Delay  time.Duration // one way; the round trip grows by twice this
	Log    *slog.Logger  // nil: discard

	// MaxInFlight overrides the package default when > 0.
	MaxInFlight int
}

// Serve accepts connections on ln and forwards each to p.Target until ctx is
// cancelled or ln fails. It then closes ln and every open connection, waits
// for them, and returns nil if ctx was cancelled, else the accept error.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	if err := CheckLoopback(p.Target); err != nil {
		ln.Close()
		return err
	}
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Deferred in this order so that connections are cancelled first and then
	// waited for.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			ln.Close()
			return fmt.Errorf("lagproxy: accept: %w", err)
		}
		wg.Go(func() {
			start := time.Now()
			up, down, err := p.handle(ctx, c)
			if err != nil {
				log.Info("connection ended", "from", c.RemoteAddr().String(), "err", err)
				return
			}
			log.Debug("connection closed", "from", c.RemoteAddr().String(),
				"up_bytes", up, "down_bytes", down, "secs", time.Since(start).Seconds())
		})
	}
}

// handle forwards one client connection and returns the bytes relayed each
// way. It closes c.
func (p *Proxy) handle(ctx context.Context, c net.Conn) (up, down int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer c.Close()

	// One round trip for the handshake the slow link would have needed.
	if err := sleep(ctx, 2*p.Delay); err != nil {
		return 0, 0, err
	}
	var d net.Dialer
	t, err := d.DialContext(ctx, "tcp", p.Target)
	if err != nil {
		return 0, 0, fmt.Errorf("dial target: %w", err)
	}
	defer t.Close()
	// Cancellation (or a failed direction) closes both sides at once, which
	// unblocks every read and write.
	stop := context.AfterFunc(ctx, func() { c.Close(); t.Close() })
	defer stop()

	limit := p.MaxInFlight
	if limit <= 0 {
		limit = MaxInFlight
	}
	var wg sync.WaitGroup
	var upErr, downErr error
	wg.Go(func() {
		up, upErr = relay(ctx, cancel, t, c, p.Delay, limit)
	})
	wg.Go(func() {
		down, downErr = relay(ctx, cancel, c, t, p.Delay, limit)
	})
	wg.Wait()
	if ctx.Err() != nil && upErr == nil && downErr == nil {
		return up, down, ctx.Err()
	}
	return up, down, errors.Join(upErr, downErr)
}

// chunk is one read: data (nil for end of stream) and when it may be written.
type chunk struct {
	buf  []byte // from the pool; data is buf[:n]
	n    int
	due  time.Time
	eof  bool
	rerr error // read error other than EOF: abort after the earlier data
}

// relay copies src to dst through a delay line and half-closes dst when src
// ends. It returns the bytes written and the first error (nil for a clean
// end of stream). On an error it calls abort, which must close both
// connections (that is what stops the reader blocked in src.Read).
func relay(ctx context.Context, abort func(), dst, src net.Conn, delay time.Duration, limit int) (int64, error) {
	nbuf := max(limit/ChunkSize, 1)
	// tokens bounds the buffers in flight; free recycles them. Buffers are
	// allocated on first use, so an idle connection costs one.
	tokens := make(chan struct{}, nbuf)
	free := make(chan []byte, nbuf)
	// Never blocks the reader: at most nbuf chunks of data plus the final
	// end-of-stream or error marker.
	line := make(chan chunk, nbuf+1)

	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(line)
		for {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			var buf []byte
			select {
			case buf = <-free:
			default:
				buf = make([]byte, ChunkSize)
			}
			n, err := src.Read(buf)
			now := time.Now()
			if n > 0 {
				line <- chunk{buf: buf, n: n, due: now.Add(delay)}
			} else {
				<-tokens
			}
			if err != nil {
				c := chunk{due: now.Add(delay), eof: errors.Is(err, io.EOF)}
				if !c.eof {
					c.rerr = err
				}
				line <- c
				return
			}
		}
	})
	written, err := deliver(ctx, dst, line, tokens, free)
	if err != nil {
		abort()
	}
	wg.Wait()
	return written, err
}

// deliver writes each chunk from line to dst when it is due, returning its
// buffer to free and its token.
func deliver(ctx context.Context, dst net.Conn, line <-chan chunk, tokens chan struct{}, free chan []byte) (int64, error) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var written int64
	for c := range line {
		if wait := time.Until(c.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return written, ctx.Err()
			}
		}
		switch {
		case c.rerr != nil:
			return written, fmt.Errorf("read: %w", c.rerr)
		case c.eof:
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				if err := cw.CloseWrite(); err != nil {
					return written, fmt.Errorf("close write: %w", err)
				}
			}
			return written, nil
		}
		n, err := dst.Write(c.buf[:c.n])
		written += int64(n)
		select {
		case free <- c.buf:
		default:
		}
		<-tokens
		if err != nil {
			return written, fmt.Errorf("write: %w", err)
		}
	}
	// line closed without a marker: the reader stopped on cancellation.
	return written, ctx.Err()
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
