package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/scheduler/local"
	"github.com/wesgate/wesgate/wes"
)

// Tests for the "hostile tenants" boundaries (docs/security.md): what an
// anonymous caller or a person with a hostile token can learn or reach.

// tnUnpolled is the local executor whose jobs are submitted but can never be
// polled: a cluster account whose squeue keeps failing.
type tnUnpolled struct{ *local.Executor }

func (tnUnpolled) Submit(context.Context, scheduler.Job, string) (string, error) { return "4242", nil }

func (tnUnpolled) Status(context.Context, string, []string) (map[string]scheduler.JobStatus, error) {
	return nil, errors.New("squeue: slurm_load_jobs error: Unable to contact slurm controller")
}

// TestReadyzHidesAccounts: when wesgate is not ready, /readyz says only
// "not ready" to anonymous callers and to people who are not admins; the
// problems, which name cluster accounts, are for admins.
func TestReadyzHidesAccounts(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)},
		Scheduler: func(t testing.TB, log *slog.Logger) wes.Scheduler {
			exec := local.New(local.Config{RunsDir: t.TempDir()}, log)
			t.Cleanup(exec.Close)
			return tnUnpolled{exec}
		}})
	auSubmit(t, nil, env, env.IdP.bearer(t, "sub-alice", "alice"), false)

	readyz := func(authorization string) (int, []string) {
		t.Helper()
		resp, b := auDo(t, nil, http.MethodGet, env.URL+"/readyz", nil, "Authorization", authorization)
		var r struct {
			Ready    bool     `json:"ready"`
			Problems []string `json:"problems"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("readyz: %d %s", resp.StatusCode, b)
		}
		return resp.StatusCode, r.Problems
	}
	admin := env.IdP.bearer(t, "sub-carol", "carol", "wes-admins")
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, problems := readyz(admin)
		if code == http.StatusServiceUnavailable && strings.Contains(strings.Join(problems, "\n"), "account alice") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz for an admin never named the unpolled account: %d %q", code, problems)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, caller := range []struct{ name, authorization string }{
		{"anonymous", ""},
		{"a person", env.IdP.bearer(t, "sub-bob", "bob")},
		{"bad credentials", "Bearer not.a.token"},
	} {
		code, problems := readyz(caller.authorization)
		if code != http.StatusServiceUnavailable || len(problems) != 1 || problems[0] != "not ready" {
			t.Errorf("readyz for %s: %d %q, want 503 and just \"not ready\"", caller.name, code, problems)
		}
	}
}
