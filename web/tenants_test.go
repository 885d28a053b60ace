package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/scheduler/local"
	"github.com/wesgate/wesgate/scheduler/slurm"
	"github.com/wesgate/wesgate/wes"
)

// Tests for the "hostile tenants" boundaries (docs/security.md): what an
// anonymous caller or a person with a hostile token can learn or reach.

// tnUnpolled is the local executor whose jobs are submitted but can never be
// polled: a cluster account whose squeue keeps failing.
type tnUnpolled struct{ *local.Executor }

func (tnUnpolled) SubmitBatch(_ context.Context, _ string, jobs []scheduler.Job) []scheduler.Submitted {
	res := make([]scheduler.Submitted, len(jobs))
	for i := range res {
		res[i].JobID = strconv.Itoa(4242 + i)
	}
	return res
}

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

// tnRefused requires a 403 ErrorResponse that names the account and why it
// is refused.
func tnRefused(t testing.TB, what string, resp *http.Response, body []byte, account, reason string) {
	t.Helper()
	e := auCheckError(t, what, resp, body, http.StatusForbidden)
	if !strings.Contains(e.Msg, strconv.Quote(account)) || !strings.Contains(e.Msg, reason) {
		t.Errorf("%s: message %q does not name %q and say %q", what, e.Msg, account, reason)
	}
}

// tnRunCount is how many runs the database holds.
func tnRunCount(t testing.TB, env *auEnv) int {
	t.Helper()
	runs, err := env.DB.ListRuns(context.Background(), wes.ListQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(runs)
}

// TestTenantsRefusedAccounts: a token whose preferred_username is a system
// account, wesgate's service account, or no account name at all is refused
// on every API route with a 403 that says why, and a browser login as one
// ends on a page that says why, with nobody logged in; nothing is stored.
// A person's own account works as before.
func TestTenantsRefusedAccounts(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)},
		Config: func(c *auth.OIDCConfig) { c.Accounts = &auth.AccountPolicy{ServiceAccount: "wesgate-svc"} }})

	for _, tc := range []struct{ name, reason string }{
		{"root", "system account"}, {"daemon", "system account"}, {"bin", "system account"}, {"slurm", "system account"},
		{"munge", "system account"}, {"mysql", "system account"}, {"nobody", "system account"}, {"sshd", "system account"},
		{"wesgate-svc", "service account"},
		{"Not Valid!", "not a valid account name"}, {"alice@example.org", "not a valid account name"},
		{"../root", "not a valid account name"}, {"root\tx", "not a valid account name"},
	} {
		bearer := env.IdP.bearer(t, "sub-"+tc.name, tc.name)
		body, ct := auRunForm(t, false)
		resp, b := auDo(t, nil, http.MethodPost, env.API+"/runs", body, "Authorization", bearer, "Content-Type", ct)
		tnRefused(t, "submit as "+tc.name, resp, b, tc.name, tc.reason)
		for _, path := range []string{"/runs", "/runs/00000000-0000-4000-8000-000000000000", "/service-info"} {
			resp, b := auDo(t, nil, http.MethodGet, env.API+path, nil, "Authorization", bearer)
			tnRefused(t, tc.name+": GET "+path, resp, b, tc.name, tc.reason)
		}
		// Admin membership changes nothing.
		resp, b = auDo(t, nil, http.MethodGet, env.API+"/runs", nil, "Authorization", env.IdP.bearer(t, "sub-"+tc.name, tc.name, "wes-admins"))
		tnRefused(t, tc.name+" as an admin: GET /runs", resp, b, tc.name, tc.reason)
	}
	if n := tnRunCount(t, env); n != 0 {
		t.Errorf("%d runs stored for refused tokens", n)
	}

	// The browser: the login ends on a page that says why, and leaves no
	// logged-in session behind.
	for _, tc := range []struct{ name, reason string }{{"root", "system account"}, {"wesgate-svc", "service account"}, {"Daemon", "not a valid account name"}} {
		env.IdP.QueueUser(&mockoidc.MockUser{Subject: "sub-" + tc.name, PreferredUsername: tc.name, Groups: []string{"wes-admins"}})
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: time.Minute}
		resp, page := auDo(t, c, http.MethodGet, env.URL+"/auth/login?next=%2Fruns", nil)
		if resp.Request.URL.Path != "/auth/callback" || resp.StatusCode != http.StatusForbidden ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("login as %s ended at %s with %d %s, want a 403 page", tc.name, resp.Request.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.Contains(page, []byte(tc.reason)) {
			t.Errorf("login as %s: the page does not say %q:\n%s", tc.name, tc.reason, page)
		}
		if resp, _ := auDo(t, c, http.MethodGet, env.API+"/runs", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("after a refused login as %s, GET /runs with its cookie: %d, want 401", tc.name, resp.StatusCode)
		}
	}

	// A person's own account works.
	alice := env.IdP.bearer(t, "sub-alice", "alice")
	id := auSubmit(t, nil, env, alice, false)
	auWait(t, env, alice, id, time.Minute, wes.Complete)
	if n := tnRunCount(t, env); n != 1 {
		t.Errorf("%d runs stored, want alice's one", n)
	}
}

// TestTenantsLabAccounts asks the lab's cluster about accounts, as wesgate
// does in per-user mode: a person's account (uid 1000 or more) may submit
// and the job runs as that account; root, a system account known only by
// its small uid on the cluster (the deny list is emptied), an account the
// cluster does not have and the service account are refused, and no
// certificate is ever minted for them.
func TestTenantsLabAccounts(t *testing.T) {
	t.Parallel()
	lab := requireLab(t)
	var exec *slurm.Executor
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)}, PollInterval: 500 * time.Millisecond,
		Scheduler: func(t testing.TB, log *slog.Logger) wes.Scheduler {
			exec = puScheduler(t, lab, log)
			return exec
		},
		Config: func(c *auth.OIDCConfig) {
			c.Accounts = &auth.AccountPolicy{Deny: []string{}, ServiceAccount: lab.SvcUser, MinUID: 1000,
				Lookup: slurm.NewAccounts(exec.Pool(), lab.SvcUser).UID}
		}})

	for _, tc := range []struct{ name, reason string }{
		{"root", "system account"},
		{"daemon", "system account"}, // uid 1 on the cluster
		{"bin", "system account"},    // uid 2
		{"wesgate-nosuchuser", "no such account"},
		{lab.SvcUser, "service account"},
	} {
		body, ct := auRunForm(t, false)
		resp, b := auDo(t, nil, http.MethodPost, env.API+"/runs", body, "Authorization", env.IdP.bearer(t, "sub-"+tc.name, tc.name), "Content-Type", ct)
		tnRefused(t, "submit as "+tc.name, resp, b, tc.name, tc.reason)
	}
	if n := tnRunCount(t, env); n != 0 {
		t.Errorf("%d runs stored for refused tokens", n)
	}
	for _, h := range exec.Health() {
		if h.Account != lab.SvcUser {
			t.Errorf("wesgate logged in to the cluster as %s", h.Account)
		}
	}

	// wesuser1 (uid 1001) is a person: the run is accepted and runs.
	user1 := env.IdP.bearer(t, "sub-"+lab.User1, lab.User1)
	id := puSubmit(t, env, user1)
	st := auWait(t, env, user1, id, 3*time.Minute, wes.Complete)
	stored, err := env.Service.GetRun(context.Background(), wes.User{Admin: true}, id)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Username != lab.User1 || stored.JobID == "" {
		t.Errorf("%s's run: state %s, username %q, job %q", lab.User1, st, stored.Username, stored.JobID)
	}
}
