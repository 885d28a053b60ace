package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/crypto/ssh"
)

// syncLog collects what wesgate writes to stderr.
type syncLog struct {
	mu sync.Mutex // guards b
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWith runs the whole program with env as its environment and its log
// in stderr, until the test ends; it returns the listening base URL, or the
// error run stopped with at start.
func startWith(t *testing.T, env map[string]string, stderr io.Writer, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{marker: "listening on", found: make(chan string, 1)}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, out, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("wesgate did not stop within 30s")
		}
	})
	select {
	case line := <-out.found:
		_, rest, _ := strings.Cut(line, "http://")
		addr, _, _ := strings.Cut(rest, "/")
		return "http://" + addr, nil
	case err := <-done:
		done <- err // for the cleanup
		return "", err
	case <-time.After(30 * time.Second):
		t.Fatal("wesgate did not start within 30s")
	}
	return "", nil
}

// writeKey writes a new unencrypted OpenSSH private key with mode.
func writeKey(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// TestRunRefusesReadableKeys: wesgate does not start with a service key or
// user-CA key that its group or others can read, and says which file and
// how to fix it; private keys start.
func TestRunRefusesReadableKeys(t *testing.T) {
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	os.WriteFile(known, nil, 0o600)
	for _, tc := range []struct {
		name            string
		keyMode         os.FileMode
		caMode          os.FileMode // 0: not per-user
		refuse, setting string
	}{
		{"world-readable service key", 0o644, 0, "key", "slurm key_file"},
		{"group-readable service key", 0o640, 0, "key", "slurm key_file"},
		{"group-writable service key", 0o620, 0, "key", "slurm key_file"},
		{"group-readable CA key", 0o600, 0o640, "ca", "slurm user_ca_key"},
		{"world-readable CA key", 0o400, 0o604, "ca", "slurm user_ca_key"},
		{"private keys", 0o600, 0o400, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := t.TempDir()
			key, ca := filepath.Join(sub, "svc_key"), filepath.Join(sub, "user_ca")
			writeKey(t, key, tc.keyMode)
			conf := fmt.Sprintf("[executor]\nkind = \"slurm\"\n[slurm]\nssh_addr = \"127.0.0.1:1\"\nuser = \"wesgate-svc\"\n"+
				"key_file = %q\nknown_hosts = %q\nremote_base = \"/scratch/{user}/wesgate\"\n", key, known)
			if tc.caMode != 0 {
				writeKey(t, ca, tc.caMode)
				conf += fmt.Sprintf("per_user = true\nuser_ca_key = %q\n", ca)
			}
			cfg := filepath.Join(sub, "wesgate.toml")
			os.WriteFile(cfg, []byte(conf), 0o600)
			base, err := startWith(t, nil, io.Discard, "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", cfg)
			if tc.refuse == "" {
				if err != nil || base == "" {
					t.Fatalf("private keys: %v", err)
				}
				return
			}
			file := key
			if tc.refuse == "ca" {
				file = ca
			}
			if err == nil {
				t.Fatalf("started with %s (%s)", tc.name, base)
			}
			for _, want := range []string{tc.setting, file, "chmod 600 " + file} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// freeAddr returns a loopback address nobody listens on just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// login logs a person in with the browser against wesgate at base and
// reports whether the login ended back on wesgate's pages.
func login(t *testing.T, idp *mockoidc.MockOIDC, base string) bool {
	t.Helper()
	idp.QueueUser(&mockoidc.MockUser{Subject: "sub-alice", PreferredUsername: "alice", Groups: []string{}})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(base + "/auth/login?next=" + url.QueryEscape("/runs"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && resp.Request.URL.Path == "/runs"
}

// TestRunClientSecretSources: the OIDC client secret can come from the
// environment or a file of its own; the environment wins; a secret file or
// configuration file that others can read is warned about; the secret is
// never logged.
func TestRunClientSecretSources(t *testing.T) {
	idp, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Shutdown() })
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "client_secret")
	os.WriteFile(secretFile, []byte(idp.ClientSecret+"\n"), 0o600)
	looseSecretFile := filepath.Join(dir, "client_secret_loose")
	os.WriteFile(looseSecretFile, []byte(idp.ClientSecret+"\n"), 0o600)
	os.Chmod(looseSecretFile, 0o644)

	for _, tc := range []struct {
		name     string
		auth     string // lines of [auth]
		mode     os.FileMode
		env      map[string]string
		loggedIn bool
		warn     string // "" for none
	}{
		{"secret in a private config file", "client_secret = %q\n", 0o600, nil, true, ""},
		{"secret in a readable config file", "client_secret = %q\n", 0o644, nil, true, "holds auth.client_secret"},
		{"secret in the environment", "", 0o644, map[string]string{secretEnv: idp.ClientSecret}, true, ""},
		{"the environment wins", "client_secret = \"wrong\"\n", 0o600, map[string]string{secretEnv: idp.ClientSecret}, true, ""},
		{"a wrong secret in the environment", "client_secret = %q\n", 0o600, map[string]string{secretEnv: "wrong"}, false, ""},
		{"secret file", "client_secret_file = " + fmt.Sprintf("%q", secretFile) + "\n", 0o644, nil, true, ""},
		{"readable secret file", "client_secret_file = " + fmt.Sprintf("%q", looseSecretFile) + "\n", 0o600, nil, true, "client_secret_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freeAddr(t)
			authLines := tc.auth
			if strings.Contains(authLines, "%q") {
				authLines = fmt.Sprintf(authLines, idp.ClientSecret)
			}
			conf := fmt.Sprintf("public_url = \"http://%s\"\n[executor]\nlocal_single_user = true\n[auth]\nmode = \"oidc\"\nissuer = %q\nclient_id = %q\ninsecure_cookies = true\n%s",
				addr, idp.Issuer(), idp.ClientID, authLines)
			cfg := filepath.Join(t.TempDir(), "wesgate.toml")
			os.WriteFile(cfg, []byte(conf), 0o600)
			os.Chmod(cfg, tc.mode)
			logs := &syncLog{}
			base, err := startWith(t, tc.env, logs, "--addr", addr, "--data", t.TempDir(), "--config", cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := login(t, idp, base); got != tc.loggedIn {
				t.Errorf("logged in: %v, want %v", got, tc.loggedIn)
			}
			warned := strings.Contains(logs.String(), "chmod 600")
			if (tc.warn != "") != warned || (warned && !strings.Contains(logs.String(), tc.warn)) {
				t.Errorf("warning %q: log says\n%s", tc.warn, logs.String())
			}
			if strings.Contains(logs.String(), idp.ClientSecret) {
				t.Errorf("the client secret is in the log")
			}
		})
	}

	// Both in the configuration is a mistake.
	cfg := filepath.Join(dir, "both.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("public_url = \"http://127.0.0.1:1\"\n[auth]\nmode = \"oidc\"\nissuer = %q\nclient_id = \"x\"\nclient_secret = \"a\"\nclient_secret_file = %q\n",
		idp.Issuer(), secretFile)), 0o600)
	if _, err := startWith(t, nil, io.Discard, "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", cfg); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("client_secret and client_secret_file: %v", err)
	}
}
