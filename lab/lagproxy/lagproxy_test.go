package lagproxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// start runs a proxy to target with the given delay and returns its address.
// It is stopped, and Serve's result checked, at the end of the test.
func start(t testing.TB, target string, delay time.Duration, maxInFlight int) string {
	t.Helper()
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{Target: target, Delay: delay, MaxInFlight: maxInFlight}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// serve runs handle for each connection accepted on a fresh loopback
// listener and returns its address.
func serve(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); handle(c) })
		}
	})
	return ln.Addr().String()
}

func echo(c net.Conn) { io.Copy(c, c) }

func dial(t testing.TB, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	return c.(*net.TCPConn)
}

func TestRoundTripAddsTwiceTheDelay(t *testing.T) {
	const delay = 40 * time.Millisecond
	addr := start(t, serve(t, echo), delay, 0)

	t0 := time.Now()
	c := dial(t, addr)
	b := []byte{0}
	roundTrip := func() time.Duration {
		s := time.Now()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		return time.Since(s)
	}
	roundTrip()
	// connect costs one round trip (the handshake), the first echo another
	if first := time.Since(t0); first < 4*delay {
		t.Errorf("connect + first echo took %v, want >= %v", first, 4*delay)
	}
	for range 5 {
		if rtt := roundTrip(); rtt < 2*delay {
			t.Errorf("round trip took %v, want >= %v", rtt, 2*delay)
		} else {
			t.Logf("round trip %v (delay %v each way)", rtt, delay)
		}
	}
}

// TestDataIntegrityBothWays sends several MB each way at the same time and
// checks both arrive intact and in order.
func TestDataIntegrityBothWays(t *testing.T) {
	const size = 6 << 20
	up := randomBytes(size, 1)
	down := randomBytes(size+12345, 2)

	gotUp := make(chan [32]byte, 1)
	target := serve(t, func(c net.Conn) {
		var wg sync.WaitGroup
		wg.Go(func() {
			// odd write sizes, to cut the stream anywhere
			for rest := down; len(rest) > 0; {
				n := min(len(rest), 1+rand.IntN(100000))
				if _, err := c.Write(rest[:n]); err != nil {
					t.Error(err)
					return
				}
				rest = rest[n:]
			}
			c.(*net.TCPConn).CloseWrite()
		})
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			t.Error(err)
		}
		gotUp <- [32]byte(h.Sum(nil))
		wg.Wait()
	})
	// a small window, so that backpressure is exercised too
	c := dial(t, start(t, target, 5*time.Millisecond, 256<<10))

	var wg sync.WaitGroup
	wg.Go(func() {
		if _, err := c.Write(up); err != nil {
			t.Error(err)
		}
		c.CloseWrite()
	})
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !bytes.Equal(got, down) {
		t.Errorf("downstream: got %d bytes (sha %x), want %d (sha %x)", len(got), sha256.Sum256(got), len(down), sha256.Sum256(down))
	}
	if h := <-gotUp; h != sha256.Sum256(up) {
		t.Errorf("upstream arrived corrupted: sha %x, want %x", h, sha256.Sum256(up))
	}
}

func TestClosePropagates(t *testing.T) {
	const delay = 30 * time.Millisecond

	t.Run("client half-closes, server answers, server closes", func(t *testing.T) {
		target := serve(t, func(c net.Conn) {
			b, err := io.ReadAll(c) // until the client's half close
			if err != nil {
				t.Error(err)
				return
			}
			c.Write(append([]byte("got "), b...))
		})
		c := dial(t, start(t, target, delay, 0))
		c.Write([]byte("ping"))
		s := time.Now()
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(c) // until the server's close
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "got ping" {
			t.Errorf("got %q, want %q", got, "got ping")
		}
		// EOF one way, the answer and EOF back: at least a round trip
		if d := time.Since(s); d < 2*delay {
			t.Errorf("answer after the half close came in %v, want >= %v", d, 2*delay)
		}
	})

	t.Run("server closes first", func(t *testing.T) {
		target := serve(t, func(c net.Conn) { c.Write([]byte("bye")) })
		c := dial(t, start(t, target, delay, 0))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "bye" {
			t.Fatalf("got %q, %v; want \"bye\", EOF", got, err)
		}
	})

	t.Run("client closes, server sees EOF", func(t *testing.T) {
		eof := make(chan error, 1)
		target := serve(t, func(c net.Conn) {
			_, err := io.Copy(io.Discard, c)
			eof <- err
		})
		c := dial(t, start(t, target, delay, 0))
		c.Write([]byte("x"))
		c.Close()
		select {
		case err := <-eof:
			if err != nil {
				t.Errorf("server read: %v, want EOF", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("server never saw the client's close")
		}
	})
}

// TestBackpressure: a target that does not read must stop the client, not
// make the proxy buffer without bound.
func TestBackpressure(t *testing.T) {
	stall := make(chan struct{})
	target := serve(t, func(c net.Conn) { <-stall })
	defer close(stall)
	c := dial(t, start(t, target, time.Millisecond, 1<<20))

	const limit = 256 << 20 // far above kernel buffers + the proxy's 1 MiB
	buf := make([]byte, 1<<20)
	total := 0
	for total < limit {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := c.Write(buf)
		total += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Logf("writes blocked after %d MiB", total>>20)
			return
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("wrote %d MiB into a target that reads nothing; the proxy does not push back", total>>20)
}

func TestCancelClosesConnections(t *testing.T) {
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	p := &Proxy{Target: serve(t, echo), Delay: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()

	c := dial(t, ln.Addr().String())
	c.Write([]byte("a"))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := c.Read(b); err == nil {
		t.Error("client connection still open after Serve returned")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepting after Serve returned")
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:2222", "127.9.8.7:1", "[::1]:2222", "[::ffff:127.0.0.1]:22"} {
		if err := CheckLoopback(addr); err != nil {
			t.Errorf("CheckLoopback(%q) = %v, want nil", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:2223", ":2223", "[::]:2223", "10.0.0.1:22", "192.168.1.1:22",
		"localhost:22", "example.org:22", "128.0.0.1:22", "127.0.0.1"} {
		if err := CheckLoopback(addr); err == nil {
			t.Errorf("CheckLoopback(%q) = nil, want an error", addr)
		}
	}
	if ln, err := Listen(t.Context(), "0.0.0.0:0"); !errors.Is(err, ErrNotLoopback) {
		if ln != nil {
			ln.Close()
		}
		t.Errorf("Listen(0.0.0.0:0) = %v, want ErrNotLoopback", err)
	}
	ln, err := Listen(t.Context(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Target: "10.1.2.3:22"}
	if err := p.Serve(t.Context(), ln); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("Serve with target 10.1.2.3:22 = %v, want ErrNotLoopback", err)
	}
}

// BenchmarkThroughput measures bulk transfer through the proxy at 25 ms
// one-way delay: a delay line keeps it at many MB/s; sleeping per chunk
// would not.
func BenchmarkThroughput(b *testing.B) {
	target := serve(b, func(c net.Conn) { io.Copy(io.Discard, c) })
	c := dial(b, start(b, target, 25*time.Millisecond, 0))
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
