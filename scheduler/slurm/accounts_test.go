package slurm

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestParsePasswd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		out, name string
		uid       int
		ok        bool
	}{
		{"wesuser1:x:1001:1001:wesgate lab:/home/wesuser1:/bin/bash\n", "wesuser1", 1001, true},
		{"root:x:0:0:root:/root:/bin/bash\n", "root", 0, true},
		{"alice:*:4294967294:100::/home/alice:/bin/sh", "alice", 4294967294, true},
		{"root:x:0:0:root:/root:/bin/bash\n", "alice", 0, false}, // another account's line
		{"alice:x:-1:0::/:/bin/sh\n", "alice", 0, false},
		{"alice:x:4294967296:0::/:/bin/sh\n", "alice", 0, false},
		{"alice:x:1001\n", "alice", 0, false},
		{"alice:x:1001:1001::/home/alice:/bin/sh:extra\n", "alice", 0, false},
		{"", "alice", 0, false},
	} {
		uid, err := parsePasswd([]byte(tc.out), tc.name)
		if (err == nil) != tc.ok || (tc.ok && uid != tc.uid) {
			t.Errorf("parsePasswd(%q, %q) = %d, %v", tc.out, tc.name, uid, err)
		}
	}
}

// TestCertAuthorityRefusals: no certificate for an invalid account name, or
// for one the CA's check refuses; a source address is checked at start and
// carried as the source-address critical option.
func TestCertAuthorityRefusals(t *testing.T) {
	t.Parallel()
	ca := NewCertAuthorityFromSigner(certTestCA(t), time.Minute)
	var authErr *AuthError
	for _, name := range []string{"", "Root", "../root", "a b", "alice\n", "1000"} {
		if c, err := ca.Credentials(name); !errors.As(err, &authErr) {
			t.Errorf("credentials for %q: %+v, %v; want an *AuthError", name, c, err)
		}
	}
	keyFile := writeTestCAKey(t)
	refusing, err := NewCertAuthority(keyFile, time.Minute, RefusePrincipals(func(p string) error {
		if p == "root" || p == "svc" {
			return errors.New("a system account")
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root", "svc"} {
		if _, err := refusing.Credentials(name); !errors.As(err, &authErr) || !strings.Contains(err.Error(), "system account") {
			t.Errorf("credentials for %s: %v", name, err)
		}
	}
	if c, err := refusing.Credentials("alice"); err != nil || certOf(t, c.Signer).Permissions.CriticalOptions["source-address"] != "" {
		t.Errorf("credentials for alice: %v", err)
	}

	for _, bad := range []string{"not-an-address", "10.0.0.0/33", "127.0.0.1,", "host.example.org"} {
		if _, err := NewCertAuthority(keyFile, time.Minute, SourceAddress(bad)); err == nil || !strings.Contains(err.Error(), "source address") {
			t.Errorf("source address %q: %v", bad, err)
		}
	}
	bound, err := NewCertAuthority(keyFile, time.Minute, SourceAddress("192.0.2.7, 10.1.0.0/16,::1"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := bound.Credentials("alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := certOf(t, c.Signer).Permissions.CriticalOptions; len(got) != 1 || got["source-address"] != "192.0.2.7,10.1.0.0/16,::1" {
		t.Errorf("critical options %v", got)
	}
}

// writeTestCAKey writes a fresh CA key to a file and returns its path.
func writeTestCAKey(t testing.TB) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/user_ca"
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLabAccounts looks accounts up on the lab's login node as its service
// account: uids agree with the system's, a missing account is not found,
// answers are cached, and a name that is no account name is never sent.
func TestLabAccounts(t *testing.T) {
	t.Parallel()
	addr, known := os.Getenv("WESGATE_LAB_SSH_ADDR"), os.Getenv("WESGATE_LAB_KNOWN_HOSTS")
	svc, svcKey, user1 := os.Getenv("WESGATE_LAB_SVC_USER"), os.Getenv("WESGATE_LAB_SVC_KEY"), os.Getenv("WESGATE_LAB_USER1")
	if addr == "" || svcKey == "" {
		if os.Getenv("WESGATE_REQUIRE_LAB") == "1" {
			t.Fatal("the Slurm lab is required (WESGATE_REQUIRE_LAB=1) but WESGATE_LAB_* is not set")
		}
		t.Skip("Slurm lab not up: run `go tool task lab:up` and `. lab/env.sh` to run this test")
	}
	b, err := os.ReadFile(svcKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	var logins []string
	var away bool // the cluster is away: no login works
	pool, err := NewPool(SSHConfig{Addr: addr, KnownHosts: known, Credentials: func(a string) (Credentials, error) {
		if away {
			return Credentials{}, ErrUnreachable
		}
		logins = append(logins, a)
		return Credentials{User: svc, Signer: signer}, nil
	}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	accts := NewAccounts(pool, svc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	for _, name := range []string{"a;id", "$(id)", "Root", "-x", "root\n"} {
		if _, _, err := accts.UID(ctx, name); err == nil {
			t.Errorf("UID(%q): no error", name)
		}
	}
	if len(logins) != 0 {
		t.Fatalf("logged in (%v) for names that are no account names", logins)
	}
	for _, name := range []string{user1, svc, "root", "daemon"} {
		want, err := user.Lookup(name) // the lab's login node is this machine
		if err != nil {
			t.Fatal(err)
		}
		uid, found, err := accts.UID(ctx, name)
		if err != nil || !found || strconv.Itoa(uid) != want.Uid {
			t.Errorf("UID(%s) = %d, %v, %v; want %s", name, uid, found, err, want.Uid)
		}
	}
	if uid, found, err := accts.UID(ctx, "wesgate-nosuchuser"); err != nil || found {
		t.Errorf("UID of a missing account = %d, %v, %v", uid, found, err)
	}

	// Cached: the answers stay when the cluster goes away; a new name fails.
	away = true
	pool.Close()
	if uid, found, err := accts.UID(ctx, user1); err != nil || !found || uid < 1000 {
		t.Errorf("cached UID(%s) = %d, %v, %v", user1, uid, found, err)
	}
	if _, found, err := accts.UID(ctx, "wesgate-nosuchuser"); err != nil || found {
		t.Errorf("cached missing account: %v, %v", found, err)
	}
	if _, _, err := accts.UID(ctx, "wesuser2"); err == nil {
		t.Error("a lookup with the pool closed succeeded")
	}
	// Past their lifetimes the answers are asked again.
	accts.now = func() time.Time { return time.Now().Add(accountTTL + time.Second) }
	if _, _, err := accts.UID(ctx, user1); err == nil {
		t.Error("a cached answer outlived its lifetime")
	}
}

// TestLabCertSourceAddress: the lab's sshd accepts a certificate bound to
// the address wesgate connects from, and refuses one bound elsewhere.
func TestLabCertSourceAddress(t *testing.T) {
	t.Parallel()
	l := requireCertLab(t)
	for _, tc := range []struct {
		source string
		ok     bool
	}{
		{"127.0.0.1/32", true},
		{"192.0.2.0/24", false},
	} {
		ca, err := NewCertAuthority(l.caKey, 2*time.Minute, SourceAddress(tc.source))
		if err != nil {
			t.Fatal(err)
		}
		pool, err := NewPool(SSHConfig{Addr: l.addr, KnownHosts: l.knownHosts, Credentials: ca.Credentials}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		certWaitSSHD(ctx, t, l.addr)
		out, err := pool.Run(ctx, l.user1, "id -un", nil)
		cancel()
		pool.Close()
		var authErr *AuthError
		switch {
		case tc.ok && (err != nil || strings.TrimSpace(string(out)) != l.user1):
			t.Errorf("source-address %s: %q, %v; want a login as %s", tc.source, out, err, l.user1)
		case !tc.ok && !errors.As(err, &authErr):
			t.Errorf("source-address %s: %q, %v; want sshd's refusal", tc.source, out, err)
		}
	}
}
