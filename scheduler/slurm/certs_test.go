package slurm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// certTestCA returns a fresh CA key.
func certTestCA(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// certOf returns the certificate a signer presents.
func certOf(t testing.TB, s ssh.Signer) *ssh.Certificate {
	t.Helper()
	cert, ok := s.PublicKey().(*ssh.Certificate)
	if !ok {
		t.Fatalf("signer presents a %s, not a certificate", s.PublicKey().Type())
	}
	return cert
}

func TestCertAuthorityMint(t *testing.T) {
	t.Parallel()
	caKey := certTestCA(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ca := NewCertAuthorityFromSigner(caKey, 10*time.Minute)
	ca.now = func() time.Time { return now }

	s, err := ca.Mint("alice", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	cert := certOf(t, s)
	if cert.CertType != ssh.UserCert || cert.KeyId != "wesgate:alice" ||
		len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != "alice" {
		t.Errorf("certificate type %d id %q principals %q", cert.CertType, cert.KeyId, cert.ValidPrincipals)
	}
	if got, want := time.Unix(int64(cert.ValidAfter), 0), now.Add(-time.Minute); !got.Equal(want) {
		t.Errorf("valid after %s, want %s (a minute of clock skew)", got, want)
	}
	if got, want := time.Unix(int64(cert.ValidBefore), 0), now.Add(10*time.Minute); !got.Equal(want) {
		t.Errorf("valid before %s, want %s", got, want)
	}
	if len(cert.CriticalOptions) != 0 {
		t.Errorf("critical options %v", cert.CriticalOptions)
	}
	if !bytes.Equal(cert.SignatureKey.Marshal(), caKey.PublicKey().Marshal()) {
		t.Error("not signed by the CA")
	}

	// What sshd does with TrustedUserCAKeys, at several moments.
	checker := func(at time.Time) *ssh.CertChecker {
		return &ssh.CertChecker{Clock: func() time.Time { return at },
			IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), caKey.PublicKey().Marshal()) }}
	}
	if err := checker(now).CheckCert("alice", cert); err != nil {
		t.Errorf("now, as alice: %v", err)
	}
	if err := checker(now.Add(-50*time.Second)).CheckCert("alice", cert); err != nil {
		t.Errorf("with the server's clock 50 s behind: %v", err)
	}
	for what, err := range map[string]error{
		"as bob":              checker(now).CheckCert("bob", cert),
		"after its lifetime":  checker(now.Add(11*time.Minute)).CheckCert("alice", cert),
		"before its lifetime": checker(now.Add(-2*time.Minute)).CheckCert("alice", cert),
	} {
		if err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
	other := &ssh.CertChecker{Clock: func() time.Time { return now },
		IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), certTestCA(t).PublicKey().Marshal()) }}
	if _, err := other.Authenticate(certConnMeta("alice"), cert); err == nil {
		t.Error("a server trusting another CA accepted the certificate")
	}

	// Every certificate has a key of its own.
	s2, err := ca.Mint("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(certOf(t, s2).Key.Marshal(), cert.Key.Marshal()) {
		t.Error("two certificates share a key")
	}
	if _, err := ca.Mint("", time.Minute); err == nil {
		t.Error("a certificate without a principal was minted")
	}
}

// certConnMeta is the connection metadata of a login as user.
type certConnMeta string

func (m certConnMeta) User() string          { return string(m) }
func (m certConnMeta) SessionID() []byte     { return nil }
func (m certConnMeta) ClientVersion() []byte { return nil }
func (m certConnMeta) ServerVersion() []byte { return nil }
func (m certConnMeta) RemoteAddr() net.Addr  { return nil }
func (m certConnMeta) LocalAddr() net.Addr   { return nil }

func TestCertAuthorityCredentials(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ca := NewCertAuthorityFromSigner(certTestCA(t), 4*time.Minute)
	ca.now = func() time.Time { return now }

	first, err := ca.Credentials("alice")
	if err != nil {
		t.Fatal(err)
	}
	if first.User != "alice" || certOf(t, first.Signer).ValidPrincipals[0] != "alice" {
		t.Errorf("credentials for alice: user %q, principals %q", first.User, certOf(t, first.Signer).ValidPrincipals)
	}
	bob, err := ca.Credentials("bob")
	if err != nil {
		t.Fatal(err)
	}
	if bob.User != "bob" || certOf(t, bob.Signer).ValidPrincipals[0] != "bob" {
		t.Errorf("credentials for bob: user %q", bob.User)
	}

	// Reused until half the lifetime has passed, then renewed.
	now = now.Add(2*time.Minute - time.Second)
	again, _ := ca.Credentials("alice")
	if again.Signer != first.Signer {
		t.Error("a certificate with more than half its life left was replaced")
	}
	now = now.Add(2 * time.Second)
	renewed, _ := ca.Credentials("alice")
	if renewed.Signer == first.Signer {
		t.Fatal("a certificate past half its life was reused")
	}
	if got, want := time.Unix(int64(certOf(t, renewed.Signer).ValidBefore), 0), now.Add(4*time.Minute); !got.Equal(want) {
		t.Errorf("renewed certificate valid before %s, want %s", got, want)
	}

	// No TTL: five minutes.
	d := NewCertAuthorityFromSigner(certTestCA(t), 0)
	d.now = func() time.Time { return now }
	c, err := d.Credentials("alice")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := time.Unix(int64(certOf(t, c.Signer).ValidBefore), 0), now.Add(5*time.Minute); !got.Equal(want) {
		t.Errorf("default lifetime: valid before %s, want %s", got, want)
	}
}

func TestNewCertAuthority(t *testing.T) {
	t.Parallel()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "wesgate test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "user_ca")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := NewCertAuthority(keyFile, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ca.Mint("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := ssh.NewPublicKey(priv.Public())
	if !bytes.Equal(certOf(t, s).SignatureKey.Marshal(), pub.Marshal()) {
		t.Error("not signed by the key in the file")
	}

	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key\n"), 0o600)
	for _, f := range []string{filepath.Join(dir, "missing"), garbage} {
		if _, err := NewCertAuthority(f, time.Minute); err == nil || !strings.Contains(err.Error(), "user CA key") {
			t.Errorf("%s: err = %v", filepath.Base(f), err)
		}
	}
}

// certLab is the lab's sshd and user CA (lab/README.md), or skips the test
// (fails it with WESGATE_REQUIRE_LAB=1) when the lab is not up.
type certLab struct {
	addr, knownHosts, caKey, user1, user2 string
}

func requireCertLab(t testing.TB) certLab {
	t.Helper()
	l := certLab{addr: os.Getenv("WESGATE_LAB_SSH_ADDR"), knownHosts: os.Getenv("WESGATE_LAB_KNOWN_HOSTS"),
		caKey: os.Getenv("WESGATE_LAB_CA_KEY"), user1: os.Getenv("WESGATE_LAB_USER1"), user2: os.Getenv("WESGATE_LAB_USER2")}
	if l.addr == "" || l.caKey == "" || l.user1 == "" || l.user2 == "" {
		if os.Getenv("WESGATE_REQUIRE_LAB") == "1" {
			t.Fatal("the Slurm lab is required (WESGATE_REQUIRE_LAB=1) but WESGATE_LAB_* is not set: run lab/up.sh and source lab/env.sh")
		}
		t.Skip("Slurm lab not up: run `bash lab/up.sh` and `. lab/env.sh` to run this test")
	}
	return l
}

// TestLabCertificates logs in to the lab's sshd with minted certificates:
// a good one works; an expired one, one for another principal, and one from
// a CA the server does not trust are refused, and the pool says why.
func TestLabCertificates(t *testing.T) {
	t.Parallel()
	l := requireCertLab(t)
	ca, err := NewCertAuthority(l.caKey, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := NewCertAuthority(l.caKey, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	stale.now = func() time.Time { return time.Now().Add(-time.Hour) } // minted an hour ago
	elapsed, err := ca.Mint(l.user1, -90*time.Second)                  // expired 90 s ago
	if err != nil {
		t.Fatal(err)
	}
	forUser2, err := ca.Mint(l.user2, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := NewCertAuthorityFromSigner(certTestCA(t), 2*time.Minute).Mint(l.user1, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		creds func(account string) (Credentials, error)
		ok    bool
	}{
		{"valid", ca.Credentials, true},
		{"minted by a CA whose clock is an hour behind", stale.Credentials, false},
		{"expired", func(a string) (Credentials, error) { return Credentials{User: a, Signer: elapsed}, nil }, false},
		{"for another principal", func(a string) (Credentials, error) { return Credentials{User: a, Signer: forUser2}, nil }, false},
		{"from an untrusted CA", func(a string) (Credentials, error) { return Credentials{User: a, Signer: untrusted}, nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var pool *Pool
			var out []byte
			var err error
			// Other tests of the lab stop and start its sshd: an attempt that
			// did not reach it says nothing about the certificate.
			for try := 0; ; try++ {
				certWaitSSHD(ctx, t, l.addr)
				pool, err = NewPool(SSHConfig{Addr: l.addr, KnownHosts: l.knownHosts, DialTimeout: 10 * time.Second,
					Credentials: tc.creds}, slog.New(slog.DiscardHandler))
				if err != nil {
					t.Fatal(err)
				}
				defer pool.Close()
				out, err = pool.Run(ctx, l.user1, "id -un", nil)
				if err == nil || !certOutage(err) || try == 4 {
					break
				}
				t.Logf("attempt %d did not reach sshd: %v", try+1, err)
			}
			health := pool.Health()
			if len(health) != 1 || health[0].Account != l.user1 {
				t.Fatalf("health = %+v, want one entry for %s", health, l.user1)
			}
			h := health[0]
			if tc.ok {
				if err != nil || strings.TrimSpace(string(out)) != l.user1 {
					t.Fatalf("id -un = %q, %v; want %s", out, err, l.user1)
				}
				if !h.Connected || h.LastError != "" || h.LastOK.IsZero() {
					t.Errorf("health %+v, want connected without an error", h)
				}
				return
			}
			if err == nil {
				t.Fatalf("logged in as %s (%q)", l.user1, out)
			}
			if !strings.Contains(err.Error(), "unable to authenticate") {
				t.Errorf("err = %v, want sshd's refusal", err)
			}
			if h.Connected || h.HostKey || !strings.Contains(h.LastError, "unable to authenticate") {
				t.Errorf("health %+v, want disconnected with the refusal as the last error", h)
			}
			// The pool waits before trying again rather than hammering sshd.
			if _, err := pool.Run(ctx, l.user1, "id -un", nil); err == nil || !errors.Is(err, ErrUnreachable) ||
				!strings.Contains(err.Error(), "retrying in") {
				t.Errorf("second attempt: %v", err)
			}
		})
	}
}

// certWaitSSHD waits until something accepts connections at addr.
func certWaitSSHD(ctx context.Context, t testing.TB, addr string) {
	t.Helper()
	for {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the lab's sshd at %s does not answer: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// certOutage reports whether err is sshd being away rather than its answer.
func certOutage(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset") ||
		(strings.Contains(msg, "EOF") && !strings.Contains(msg, "unable to authenticate"))
}
