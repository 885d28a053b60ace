package web_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wesgate/wesgate/wes"
)

// azMissingRun is a well-formed run id that no run has.
const azMissingRun = "0b9a6a5e-3f51-4c4e-9a51-5d1f0c6f2b7e"

// azCaller is one identity of the authorization matrix.
type azCaller struct {
	name, authorization string
}

// TestAuthzMatrix asks every endpoint as nobody, the owner of a run,
// another user, and an admin. Anonymous callers get 401 (except
// service-info and the pages); another user's run is answered exactly as a
// run that does not exist; owner and admin succeed.
func TestAuthzMatrix(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t), auSlowEngine(t)}, MaxJobs: 4})
	owner := azCaller{"owner", env.IdP.bearer(t, "sub-alice", "alice")}
	other := azCaller{"other user", env.IdP.bearer(t, "sub-bob", "bob")}
	admin := azCaller{"admin", env.IdP.bearer(t, "sub-carol", "carol", "staff", "wes-admins")}
	anon := azCaller{"anonymous", ""}

	done := auSubmit(t, nil, env, owner.authorization, false)
	running := auSubmit(t, nil, env, owner.authorization, true)
	bobs := auSubmit(t, nil, env, other.authorization, false)
	auWait(t, env, owner.authorization, done, time.Minute, wes.Complete)
	auWait(t, env, other.authorization, bobs, time.Minute, wes.Complete)
	auWait(t, env, owner.authorization, running, time.Minute, wes.Running)
	created := map[string][]string{owner.name: {done, running}, other.name: {bobs}}

	// kind says who may use an endpoint.
	const (
		api       = iota // WES API: callers with credentials
		anonAPI          // WES API open to anonymous callers
		page             // a page open to all
		loginPage        // a page for people logged in; others are sent to log in
	)
	type endpoint struct {
		method, path string
		kind         int
	}
	endpoints := []endpoint{
		{http.MethodGet, "/ga4gh/wes/v1/service-info", anonAPI},
		{http.MethodGet, "/ga4gh/wes/v1/runs", api},
		{http.MethodPost, "/ga4gh/wes/v1/runs", api},
		{http.MethodGet, "/ga4gh/wes/v1/runs/{id}", api},
		{http.MethodGet, "/ga4gh/wes/v1/runs/{id}/status", api},
		{http.MethodGet, "/ga4gh/wes/v1/runs/{id}/tasks", api},
		{http.MethodGet, "/ga4gh/wes/v1/runs/{id}/tasks/batch", api},
		{http.MethodGet, "/ga4gh/wes/v1/runs/{id}/stdout", api},
		{http.MethodGet, "/ga4gh/wes/v1/runs/{id}/stderr", api},
		{http.MethodGet, "/ga4gh/wes/v1/runs/{id}/files/work/wf.cwl", api},
		{http.MethodPost, "/ga4gh/wes/v1/runs/{id}/cancel", api},
		{http.MethodDelete, "/ga4gh/wes/v1/runs/{id}", api},
		{http.MethodGet, "/", page},
		{http.MethodGet, "/auth/instructions", page},
		{http.MethodGet, "/runs", loginPage},
		{http.MethodGet, "/runs/{id}", loginPage},
		{http.MethodPost, "/runs/{id}/cancel", loginPage},
	}
	do := func(c azCaller, e endpoint, id string) (*http.Response, []byte) {
		t.Helper()
		path := strings.ReplaceAll(e.path, "{id}", id)
		if path == "/ga4gh/wes/v1/runs" && e.method == http.MethodPost {
			body, ct := auRunForm(t, false)
			return auDo(t, nil, e.method, env.URL+path, body, "Authorization", c.authorization, "Content-Type", ct)
		}
		return auDo(t, nil, e.method, env.URL+path, nil, "Authorization", c.authorization)
	}

	for _, e := range endpoints {
		for _, c := range []azCaller{anon, owner, other, admin} {
			what := c.name + ": " + e.method + " " + e.path
			resp, b := do(c, e, done)
			switch {
			case c == anon && e.kind == api:
				auCheckUnauthorized(t, what, resp, b)
			case c == anon && e.kind == loginPage:
				if e.method == http.MethodGet && (resp.StatusCode != http.StatusFound ||
					!strings.HasPrefix(resp.Header.Get("Location"), "/auth/login?next=")) {
					t.Errorf("%s: %d to %q, want a redirect to log in", what, resp.StatusCode, resp.Header.Get("Location"))
				}
				if e.method != http.MethodGet && resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("%s: %d, want 401", what, resp.StatusCode)
				}
			case c == other && strings.Contains(e.path, "{id}"):
				// Exactly what a run that does not exist gets (pages name
				// the address they were asked for; that aside).
				missResp, miss := do(other, e, azMissingRun)
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("%s: %d %.200s, want 404", what, resp.StatusCode, b)
					continue
				}
				if e.kind == api {
					auCheckError(t, what, resp, b, http.StatusNotFound)
				}
				same := strings.ReplaceAll(string(b), done, "RUN") == strings.ReplaceAll(string(miss), azMissingRun, "RUN")
				if resp.StatusCode != missResp.StatusCode || !same || resp.Header.Get("Content-Type") != missResp.Header.Get("Content-Type") {
					t.Errorf("%s: %d %.300s\nbut for a missing run %d %.300s", what, resp.StatusCode, b, missResp.StatusCode, miss)
				}
			default:
				ok := resp.StatusCode == http.StatusOK
				switch {
				case e.kind == page && c != anon && resp.StatusCode == http.StatusFound:
					ok = resp.Header.Get("Location") == "/runs" // the home page sends people to their runs
				case e.kind == loginPage && e.method == http.MethodPost:
					ok = resp.StatusCode == http.StatusSeeOther && resp.Header.Get("Location") == "/runs/"+done
				}
				if !ok {
					t.Errorf("%s: %d %q %.300s", what, resp.StatusCode, resp.Header.Get("Location"), b)
					continue
				}
				if (e.kind == page || e.kind == loginPage) && resp.StatusCode == http.StatusOK &&
					!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
					t.Errorf("%s: Content-Type %q", what, resp.Header.Get("Content-Type"))
				}
				if e.path == "/ga4gh/wes/v1/runs" && e.method == http.MethodPost {
					var id wes.RunStatus
					if json.Unmarshal(b, &id) != nil || id.RunID == "" {
						t.Errorf("%s: %s", what, b)
					}
					created[c.name] = append(created[c.name], id.RunID)
				}
				if strings.HasSuffix(e.path, "/files/work/wf.cwl") && string(b) != auWorkflow {
					t.Errorf("%s: the file is %q", what, b)
				}
				if strings.HasSuffix(e.path, "/tasks/batch") && !strings.Contains(string(b), `"id":"batch"`) {
					t.Errorf("%s: %s", what, b)
				}
			}
		}
	}
	// Cancelling a finished run changes nothing.
	if st := auState(t, env, owner.authorization, done); st != wes.Complete {
		t.Errorf("the finished run is %s after cancels, want COMPLETE", st)
	}

	// A running run: another user cannot cancel it; an admin can.
	for _, req := range []struct{ method, path string }{
		{http.MethodPost, "/runs/" + running + "/cancel"}, {http.MethodDelete, "/runs/" + running},
	} {
		resp, b := auDo(t, nil, req.method, env.API+req.path, nil, "Authorization", other.authorization)
		auCheckError(t, "other user: "+req.method+" "+req.path, resp, b, http.StatusNotFound)
	}
	if st := auState(t, env, owner.authorization, running); st != wes.Running {
		t.Fatalf("after another user's cancel the run is %s", st)
	}
	resp, b := auDo(t, nil, http.MethodPost, env.API+"/runs/"+running+"/cancel", nil, "Authorization", admin.authorization)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin cancel: %d %s", resp.StatusCode, b)
	}
	auWait(t, env, owner.authorization, running, time.Minute, wes.Canceled)

	// Lists: one's own runs; an admin sees all, and filters by user.
	all := slices.Concat(created[owner.name], created[other.name], created[admin.name])
	for _, tc := range []struct {
		c     azCaller
		query string
		want  []string
	}{
		{owner, "", created[owner.name]},
		{other, "", created[other.name]},
		{other, "?user=alice", nil}, // a filter never widens what one may see
		{admin, "", all},
		{admin, "?user=alice", created[owner.name]},
		{admin, "?user=bob", created[other.name]},
		{admin, "?user=carol", created[admin.name]},
		{admin, "?user=nobody", nil},
	} {
		resp, b := auDo(t, nil, http.MethodGet, env.API+"/runs"+tc.query, nil, "Authorization", tc.c.authorization)
		var list wes.RunList
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &list) != nil {
			t.Errorf("%s: GET /runs%s: %d %s", tc.c.name, tc.query, resp.StatusCode, b)
			continue
		}
		var got []string
		for _, r := range list.Runs {
			got = append(got, r.RunID)
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tc.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s: GET /runs%s = %v, want %v", tc.c.name, tc.query, got, want)
		}
	}
}

// TestAuthzServiceInfoCounts: service-info's system_state_counts are zeros
// for anonymous callers, the caller's own runs for a user, and everyone's
// for an admin.
func TestAuthzServiceInfoCounts(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)}})
	alice := env.IdP.bearer(t, "sub-alice", "alice")
	bob := env.IdP.bearer(t, "sub-bob", "bob")
	admin := env.IdP.bearer(t, "sub-carol", "carol", "wes-admins")
	var runs []string
	for _, who := range []string{alice, alice, bob} {
		runs = append(runs, auSubmit(t, nil, env, who, false))
	}
	auWait(t, env, alice, runs[0], time.Minute, wes.Complete)
	auWait(t, env, alice, runs[1], time.Minute, wes.Complete)
	auWait(t, env, bob, runs[2], time.Minute, wes.Complete)

	for _, tc := range []struct {
		name, authorization string
		complete            int64
	}{
		{"anonymous", "", 0},
		{"alice", alice, 2},
		{"bob", bob, 1},
		{"admin", admin, 3},
		{"a user without runs", env.IdP.bearer(t, "sub-dave", "dave"), 0},
	} {
		resp, b := auDo(t, nil, http.MethodGet, env.API+"/service-info", nil, "Authorization", tc.authorization)
		var info wes.ServiceInfo
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &info) != nil {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, b)
			continue
		}
		if len(info.SystemStateCounts) != len(wes.States) {
			t.Errorf("%s: counts for %d states, want all %d: %v", tc.name, len(info.SystemStateCounts), len(wes.States), info.SystemStateCounts)
		}
		var sum int64
		for _, n := range info.SystemStateCounts {
			sum += n
		}
		if info.SystemStateCounts[wes.Complete] != tc.complete || sum != tc.complete {
			t.Errorf("%s: counts %v, want %d COMPLETE and nothing else", tc.name, info.SystemStateCounts, tc.complete)
		}
	}
}
