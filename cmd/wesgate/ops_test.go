package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oauth2-proxy/mockoidc"
)

func noEnv(string) string { return "" }

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	goodKey := filepath.Join(dir, "id_good")
	writeKey(t, goodKey, 0o600)
	openKey := filepath.Join(dir, "id_open")
	writeKey(t, openKey, 0o644)
	knownHosts := filepath.Join(dir, "known_hosts")
	os.WriteFile(knownHosts, nil, 0o644)
	slurm := func(key string) string {
		return fmt.Sprintf("[executor]\nkind = \"slurm\"\n[slurm]\nssh_addr = \"127.0.0.1:2222\"\nuser = \"wesgate\"\n"+
			"key_file = %q\nknown_hosts = %q\nremote_base = \"/shared/wesgate\"\n", key, knownHosts)
	}
	for _, tc := range []struct {
		name string
		body string
		want []string // each problem must be reported; none means the file is good
	}{
		{"defaults", "", nil},
		{"slurm", slurm(goodKey), nil},
		{"oidc", "public_url = \"https://wes.example.org\"\naddr = \"0.0.0.0:8080\"\n[auth]\nmode = \"oidc\"\n" +
			"issuer = \"https://idp.example.org/realms/hpc\"\nclient_id = \"wesgate\"\n", nil},
		{"unknown key", "adr = \"127.0.0.1:0\"\n", []string{`unknown key "adr"`}},
		{"not TOML", "addr = \n", []string{"toml"}},
		{"several problems", "addr = \"0.0.0.0:8080\"\nlog_level = \"loud\"\n[metrics]\naccess = \"everyone\"\n" +
			"[executor]\nkind = \"pbs\"\n",
			[]string{"not a loopback address", "log_level", `[metrics] access "everyone"`, `[executor] kind "pbs"`}},
		{"oidc incomplete", "public_url = \"http://wes.example.org\"\n[auth]\nmode = \"oidc\"\n",
			[]string{"issuer is needed", "client_id is needed", "cookies are Secure"}},
		{"slurm incomplete", "[executor]\nkind = \"slurm\"\n",
			[]string{"ssh_addr is needed", "user is needed", "key_file is needed", "known_hosts is needed", "remote_base is needed"}},
		{"key others may read", slurm(openKey), []string{"by its group or others (mode 0644)"}},
		{"key missing", slurm(filepath.Join(dir, "nothing")), []string{"key_file", "no such file"}},
		{"bad engine", "[[engines]]\nname = \"mine\"\ncommand = [\"x\"]\nversion_command = [\"x\", \"-v\"]\n",
			[]string{"engine mine has no workflow types"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			os.WriteFile(path, []byte(tc.body), 0o600)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"check-config", "--config", path}, noEnv, &stdout, &stderr)
			code := exitCode(err, &stderr)
			if len(tc.want) == 0 {
				if code != 0 || !strings.Contains(stdout.String(), "OK") {
					t.Fatalf("exit %d for a good file:\n%s%s", code, stdout.String(), stderr.String())
				}
				return
			}
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("problems do not mention %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}

// TestBackupAndRestore: `wesgate backup` copies the database of a serving
// wesgate; a new data directory holding only that copy as wesgate.db starts
// and answers for the runs made before the backup.
func TestBackupAndRestore(t *testing.T) {
	dir := t.TempDir()
	engine := filepath.Join(dir, "engine.sh")
	os.WriteFile(engine, []byte("#!/bin/sh\n[ \"$1\" = --version ] && { echo stand-in 1.0; exit 0; }\necho done\n"), 0o755)
	cfg := filepath.Join(dir, "wesgate.toml")
	os.WriteFile(cfg, fmt.Appendf(nil, "[runs]\npoll_interval = \"200ms\"\n[[engines]]\nname = \"cwltool\"\ncommand = [%q, \"{workflow}\"]\nversion_command = [%q, \"--version\"]\n", engine, engine), 0o600)
	data := filepath.Join(dir, "data")

	base, stop := startWesgate(t, "--addr", "127.0.0.1:0", "--data", data, "--config", cfg)
	done := postRun(t, base)
	waitState(t, base, done, "COMPLETE")

	dest := filepath.Join(dir, "wesgate-backup.db")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"backup", "--data", data, "--config", cfg, dest}, noEnv, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 0 {
		t.Fatalf("backup while serving: exit %d: %s", code, stderr.String())
	}
	after := postRun(t, base) // not in the backup
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Restore as docs/operations.md says: the copy becomes wesgate.db of
	// an empty data directory.
	restored := filepath.Join(dir, "restored")
	os.Mkdir(restored, 0o750)
	b, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(restored, "wesgate.db"), b, 0o600)
	base, _ = startWesgate(t, "--addr", "127.0.0.1:0", "--data", restored, "--config", cfg)
	waitState(t, base, done, "COMPLETE")
	resp, err := httpGet(base + "/ga4gh/wes/v1/runs/" + after + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if resp != 404 {
		t.Errorf("a run made after the backup answers %d in the restored copy, want 404", resp)
	}

	// A second backup to the same file is refused.
	stderr.Reset()
	err = run(context.Background(), []string{"backup", "--data", data, dest}, noEnv, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 1 || !strings.Contains(stderr.String(), "already exists") {
		t.Errorf("backup over an existing file: exit %d: %s", code, stderr.String())
	}
	// No destination is a usage error.
	stderr.Reset()
	err = run(context.Background(), []string{"backup", "--data", data}, noEnv, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 2 {
		t.Errorf("backup without a destination: exit %d, want 2", code)
	}
	// A data directory without a database is not backed up (nor created).
	stderr.Reset()
	empty := filepath.Join(dir, "empty")
	err = run(context.Background(), []string{"backup", "--data", empty, filepath.Join(dir, "x.db")}, noEnv, &stdout, &stderr)
	if code := exitCode(err, &stderr); code != 1 || !strings.Contains(stderr.String(), "no database") {
		t.Errorf("backup of a missing database: exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(empty); err == nil {
		t.Error("backup created a data directory")
	}
}

func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestCheckConfigReach: with --reach, check-config contacts the identity
// provider and the cluster and reports each that does not answer.
func TestCheckConfigReach(t *testing.T) {
	dir := t.TempDir()
	check := func(t *testing.T, body string) (int, string, string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "wesgate.toml")
		os.WriteFile(path, []byte(body), 0o600)
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"check-config", "--reach", "--config", path}, noEnv, &stdout, &stderr)
		return exitCode(err, &stderr), stdout.String(), stderr.String()
	}

	t.Run("identity provider", func(t *testing.T) {
		m, err := mockoidc.Run()
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf("public_url = \"https://wes.example.org\"\n[auth]\nmode = \"oidc\"\nissuer = %q\nclient_id = \"wesgate\"\n", m.Issuer())
		if code, out, errOut := check(t, body); code != 0 || !strings.Contains(out, "discovery OK") {
			t.Errorf("a reachable provider: exit %d\n%s%s", code, out, errOut)
		}
		m.Shutdown()
		if code, out, errOut := check(t, body); code != 2 || !strings.Contains(errOut, "[auth] issuer "+m.Issuer()) {
			t.Errorf("a provider that is down: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("cluster down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		key := filepath.Join(dir, "id")
		writeKey(t, key, 0o600)
		known := filepath.Join(dir, "known_hosts")
		os.WriteFile(known, nil, 0o644)
		body := fmt.Sprintf("[executor]\nkind = \"slurm\"\n[slurm]\nssh_addr = %q\nuser = \"wesgate\"\nkey_file = %q\n"+
			"known_hosts = %q\nremote_base = \"/shared/wesgate\"\n", addr, key, known)
		if code, out, errOut := check(t, body); code != 2 || !strings.Contains(errOut, "[slurm] "+addr+" as wesgate") {
			t.Errorf("an unreachable cluster: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("lab cluster", func(t *testing.T) {
		addr := os.Getenv("WESGATE_LAB_SSH_ADDR")
		if addr == "" {
			if os.Getenv("WESGATE_REQUIRE_LAB") == "1" {
				t.Fatal("the Slurm lab is required (WESGATE_REQUIRE_LAB=1) but WESGATE_LAB_* is not set")
			}
			t.Skip("Slurm lab not up: run `bash lab/up.sh` and `. lab/env.sh` to run this test")
		}
		body := fmt.Sprintf("[executor]\nkind = \"slurm\"\n[slurm]\nssh_addr = %q\nuser = %q\nkey_file = %q\n"+
			"known_hosts = %q\nremote_base = %q\n", addr, os.Getenv("WESGATE_LAB_SVC_USER"), os.Getenv("WESGATE_LAB_SVC_KEY"),
			os.Getenv("WESGATE_LAB_KNOWN_HOSTS"), os.Getenv("WESGATE_LAB_BASE"))
		if code, out, errOut := check(t, body); code != 0 || !strings.Contains(out, "as "+os.Getenv("WESGATE_LAB_SVC_USER")+": slurm") {
			t.Errorf("the lab's cluster: exit %d\n%s%s", code, out, errOut)
		}
	})
}
