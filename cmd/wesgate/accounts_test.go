package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wesgate/wesgate/auth"
)

// TestRunClusterAccounts runs the whole program against the Slurm lab in
// per-user mode with OIDC, as a site would configure it: slurm.min_uid and
// auth.deny_usernames decide who is refused, with uids looked up on the
// cluster; the service account is refused; a person's account is not.
func TestRunClusterAccounts(t *testing.T) {
	env := map[string]string{}
	for _, k := range []string{"WESGATE_LAB_SSH_ADDR", "WESGATE_LAB_KNOWN_HOSTS", "WESGATE_LAB_SVC_USER", "WESGATE_LAB_SVC_KEY",
		"WESGATE_LAB_CA_KEY", "WESGATE_LAB_BASE", "WESGATE_LAB_USER1", "WESGATE_LAB_USER2"} {
		env[k] = os.Getenv(k)
	}
	if env["WESGATE_LAB_SSH_ADDR"] == "" || env["WESGATE_LAB_CA_KEY"] == "" {
		if os.Getenv("WESGATE_REQUIRE_LAB") == "1" {
			t.Fatal("the Slurm lab is required (WESGATE_REQUIRE_LAB=1) but WESGATE_LAB_* is not set")
		}
		t.Skip("Slurm lab not up: run `go tool task lab:up` and `. lab/env.sh` to run this test")
	}
	idp, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Shutdown() })
	addr := freeAddr(t)
	conf := fmt.Sprintf(`public_url = "http://%s"
[auth]
mode = "oidc"
issuer = %q
client_id = %q
insecure_cookies = true
deny_usernames = ["root", %q]
[executor]
kind = "slurm"
[slurm]
per_user = true
user_ca_key = %q
cert_source_address = "127.0.0.1/32"
min_uid = 1000
ssh_addr = %q
user = %q
key_file = %q
known_hosts = %q
remote_base = "%s/{user}"
`, addr, idp.Issuer(), idp.ClientID, env["WESGATE_LAB_USER2"], env["WESGATE_LAB_CA_KEY"], env["WESGATE_LAB_SSH_ADDR"],
		env["WESGATE_LAB_SVC_USER"], env["WESGATE_LAB_SVC_KEY"], env["WESGATE_LAB_KNOWN_HOSTS"], env["WESGATE_LAB_BASE"])
	cfg := filepath.Join(t.TempDir(), "wesgate.toml")
	os.WriteFile(cfg, []byte(conf), 0o600)
	base, err := startWith(t, nil, io.Discard, "--addr", addr, "--data", t.TempDir(), "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}

	bearer := func(name string) string {
		now := time.Now()
		tok, err := idp.Keypair.SignJWT(jwt.MapClaims{"iss": idp.Issuer(), "aud": idp.ClientID, "iat": now.Unix(),
			"exp": now.Add(time.Hour).Unix(), "sub": "sub-" + name, "preferred_username": name, "groups": []string{}})
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	for _, tc := range []struct {
		name   string
		status int
		reason string
	}{
		{env["WESGATE_LAB_USER1"], http.StatusOK, ""},
		{"daemon", http.StatusForbidden, "system account"},                 // uid 1, found on the cluster
		{"nobody", http.StatusForbidden, "system account"},                 // uid 65534
		{env["WESGATE_LAB_USER2"], http.StatusForbidden, "system account"}, // deny_usernames
		{env["WESGATE_LAB_SVC_USER"], http.StatusForbidden, "service account"},
		{"wesgate-nosuchuser", http.StatusForbidden, "no such account"},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+"/ga4gh/wes/v1/runs", nil)
		req.Header.Set("Authorization", bearer(tc.name))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Msg string `json:"msg"`
		}
		json.Unmarshal(b, &e)
		if resp.StatusCode != tc.status || !strings.Contains(e.Msg, tc.reason) {
			t.Errorf("GET /runs as %s: %d %s; want %d %q", tc.name, resp.StatusCode, b, tc.status, tc.reason)
		}
	}

	// A source address that is not an address stops wesgate at start.
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte(strings.Replace(conf, `cert_source_address = "127.0.0.1/32"`, `cert_source_address = "wesgate.example.org"`, 1)), 0o600)
	if _, err := startWith(t, nil, io.Discard, "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--config", bad); err == nil ||
		!strings.Contains(err.Error(), "source address") {
		t.Errorf("cert_source_address = \"wesgate.example.org\": %v", err)
	}
}

// TestExampleDenyList: the example configuration loads, and the deny list
// it shows is the default one.
func TestExampleDenyList(t *testing.T) {
	cfg := defaultConfig()
	if err := loadConfig(filepath.Join("..", "..", "wesgate.example.toml"), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Auth.DenyUsernames, auth.DefaultDeny()) {
		t.Errorf("wesgate.example.toml deny_usernames = %q,\nthe default is %q", cfg.Auth.DenyUsernames, auth.DefaultDeny())
	}
	if cfg.Slurm.MinUID != 1000 || defaultConfig().Slurm.MinUID != 1000 {
		t.Errorf("min_uid: example %d, default %d; want 1000", cfg.Slurm.MinUID, defaultConfig().Slurm.MinUID)
	}
}
