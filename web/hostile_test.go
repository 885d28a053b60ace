package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/wes"
)

// Tests for the "hostile tenants" items: a tenant who crafts requests to
// reach the engine's options, exhaust memory, flood the cluster, make the
// server fetch from inside the network, or plant links on a run page.

// TestOptionLikePathsRefused: a file name that an engine would read as an
// option (workflow_url=--outdir=DIR reached cwltool and wrote outside the
// run) is refused in every path component, and nothing is stored.
func TestOptionLikePathsRefused(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{biEngine(t)}})
	outside := filepath.Join(t.TempDir(), "outside")
	opt := "--outdir=" + outside
	tests := []struct {
		name  string
		parts []biPart
		want  []string
	}{
		{"workflow_url is an option", biWith(biRun(), biField("workflow_url", opt), biFile(opt, "class: Workflow\n")),
			[]string{"workflow_attachment", "workflow_url", `starting with "-"`}},
		{"workflow_url with ./ is an option", biWith(biRun(), biField("workflow_url", "./-v"), biFile("-v", "x")),
			[]string{"workflow_url", `starting with "-"`}},
		{"attachment is an option", biWith(biRun(), biFile("--debug", "x")), []string{"workflow_attachment", `starting with "-"`}},
		{"attachment in a directory", biWith(biRun(), biFile("tools/-x.cwl", "x")), []string{"workflow_attachment", `starting with "-"`}},
		{"workflow in a directory", biWith(biRun(), biField("workflow_url", "tools/--x.cwl"), biFile("tools/--x.cwl", "x")),
			[]string{"workflow_url", `starting with "-"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := biMultipart(t, tt.parts)
			resp, b := biPost(t, env, ct, body)
			biCheckError(t, resp, b, 400, tt.want...)
			biCheckNothingStored(t, env)
		})
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Errorf("%s was made (%v)", outside, err)
	}
}

// TestWorkflowPassedAsDotSlash: the engine gets a relative workflow as
// "./path", so no name can read as an option.
func TestWorkflowPassedAsDotSlash(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{biEngine(t)}})
	c := contractClient(t, env)
	parts := e2eCWLRun("wf.cwl", "{}", e2eAttach("wf.cwl", "cwlVersion: v1.2\nclass: Workflow\n"))
	id := e2eSubmit(t, c, env, parts)
	e2eWait(t, c, env, id, e2eRunDeadline, wes.Complete)
	if cmd := e2eGetRun(t, c, env, id).RunLog.Cmd; !slices.Contains(cmd, "./wf.cwl") || slices.Contains(cmd, "wf.cwl") {
		t.Errorf("cmd = %q, want the workflow as ./wf.cwl", cmd)
	}
}

// TestCWLToolRunsDotSlashWorkflow: Debian's cwltool runs a workflow given
// as ./path, with its tools in a directory.
func TestCWLToolRunsDotSlashWorkflow(t *testing.T) {
	t.Parallel()
	requireCWLTool(t)
	env := newTestEnv(t, envOptions{})
	c := contractClient(t, env)
	parts := e2eCWLRun("workflow.cwl", `{"infile":{"class":"File","location":"input.txt"}}`,
		e2eAttach("workflow.cwl", e2eWorkflow),
		e2eAttach("tools/step1.cwl", e2eStep1),
		e2eAttach("tools/step2.cwl", e2eStep2),
		e2eAttach("input.txt", e2eInput))
	id := e2eSubmit(t, c, env, parts)
	e2eWait(t, c, env, id, e2eRunDeadline, wes.Complete)
	if cmd := e2eGetRun(t, c, env, id).RunLog.Cmd; !slices.Contains(cmd, "./workflow.cwl") {
		t.Errorf("cmd = %q, want the workflow as ./workflow.cwl", cmd)
	}
}

// TestFetchRefusesSpecialAddresses: the fetcher's dialer refuses every
// address that is not global unicast, before it connects (so this test sends
// nothing anywhere), including IPv4 addresses wrapped in IPv6.
func TestFetchRefusesSpecialAddresses(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{biEngine(t)}, Fetcher: wes.NewFetcher(5*time.Second, false)})
	for _, host := range []string{
		"127.0.0.1", "100.64.0.1", "198.18.0.1", "192.0.0.8", "240.0.0.1", "255.255.255.255",
		"[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::a00:1]",
		"[2002:7f00:1::1]", "[2001:0:a00:1::1]", "[fec0::1]", "[fd00::1]",
	} {
		t.Run(host, func(t *testing.T) {
			parts := biWith(biRun(), biField("workflow_url", "http://"+host+":9/wf.cwl"))
			parts = slices.DeleteFunc(parts, func(p biPart) bool { return p.file })
			body, ct := biMultipart(t, parts)
			resp, b := biPost(t, env, ct, body)
			biCheckError(t, resp, b, 400, "workflow_url", "does not fetch from")
			biCheckNothingStored(t, env)
		})
	}
}

// hostileOutputsScript is an engine that reports CWL outputs whose
// locations point elsewhere, and one real file.
const hostileOutputsScript = `out=$1
printf 'good\n' > "$out/good.txt"
printf 'dash\n' > "$out/-dash.txt"
printf '{"evil":{"class":"File","location":"javascript:alert(document.domain)"},' 
printf '"phish":{"class":"File","location":"https://evil.example/phish"},'
printf '"data":{"class":"File","location":"data:text/html,<script>alert(1)</script>"},'
printf '"other":{"class":"File","location":"/ga4gh/wes/v1/runs/00000000-0000-4000-8000-000000000000/files/outputs/x.txt"},'
printf '"dash":{"class":"File","path":"%s/-dash.txt"},' "$out"
printf '"good":{"class":"File","path":"%s/good.txt"}}\n' "$out"
`

// TestRunPageLinksOnlyOwnFiles: the run page links an output only when its
// location is this run's own download URL; a location the workflow made up
// is shown as text.
func TestRunPageLinksOnlyOwnFiles(t *testing.T) {
	t.Parallel()
	eng := wes.Engine{
		Name:           "standin",
		Types:          map[string][]string{"CWL": {"v1.2"}},
		Command:        []string{"/bin/sh", "-c", hostileOutputsScript, "standin", wes.PHOutputs, wes.PHWorkflow},
		VersionCommand: []string{"/bin/echo", "standin 1.0"},
		Outputs:        wes.OutputsCWL,
	}
	if err := eng.Detect(context.Background()); err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{eng}})
	c := contractClient(t, env)
	id := e2eSubmit(t, c, env, e2eCWLRun("wf.cwl", "{}", e2eAttach("wf.cwl", "class: Workflow\n")))
	e2eWait(t, c, env, id, e2eRunDeadline, wes.Complete)

	d := pagesGet(t, pagesClient(), env.URL+"/runs/"+id, http.StatusOK)
	out := d.section(t, "h-out")
	var hrefs []string
	for _, a := range pagesFind(out, pagesEl("a")) {
		hrefs = append(hrefs, pagesAttr(a, "href"))
	}
	// A file the run made may start with "-": it is never given to an engine.
	want := []string{env.API + "/runs/" + id + "/files/outputs/-dash.txt", env.API + "/runs/" + id + "/files/outputs/good.txt"}
	if !slices.Equal(hrefs, want) {
		t.Errorf("the outputs link to %q, want only %q", hrefs, want)
	}
	if resp, b := biGet(t, want[0]); resp.StatusCode != http.StatusOK || string(b) != "dash\n" {
		t.Errorf("GET %s: %d %q", want[0], resp.StatusCode, b)
	}
	text := pagesText(out)
	for _, s := range []string{"javascript:alert(document.domain)", "https://evil.example/phish", "data:text/html"} {
		if !strings.Contains(text, s) {
			t.Errorf("the outputs do not show %q as text:\n%s", s, text)
		}
	}
	if strings.Contains(d.body, `href="javascript:`) || strings.Contains(d.body, `href="https://evil.example`) ||
		strings.Contains(d.body, `href="data:`) {
		t.Errorf("the page links a workflow's location:\n%s", pagesExcerpt(d.body))
	}
}

// TestFieldCaps: the fields of a run request are capped by count and size
// on every path (multipart, urlencoded, JSON), a request with many made-up
// fields gets a short answer, and nothing is stored.
func TestFieldCaps(t *testing.T) {
	t.Parallel()
	const maxField = 16 << 10
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{biEngine(t)},
		Limits: wes.Limits{MaxFieldBytes: maxField}})
	unknown := func(n, nameLen int) []biPart {
		parts := biRun()
		for i := range n {
			parts = append(parts, biField(fmt.Sprintf("x%05d-%s", i, strings.Repeat("n", nameLen)), "v"))
		}
		return parts
	}
	form := func(n int) []byte {
		v := url.Values{"workflow_type": {"CWL"}, "workflow_type_version": {"v1.2"}}
		for i := range n {
			v.Set(fmt.Sprintf("f%d", i), "v")
		}
		return []byte(v.Encode())
	}
	jsonFields := func(n int) []byte {
		m := map[string]string{"workflow_type": "CWL"}
		for i := range n {
			m[fmt.Sprintf("f%d", i)] = "v"
		}
		b, _ := json.Marshal(m)
		return b
	}
	tests := []struct {
		name   string
		ct     string
		body   []byte
		status int
		want   []string
	}{
		{"multipart: 30 unknown fields", "", nil, 400, []string{"is not a field", "and 20 more"}},
		{"multipart: 5,000 unknown fields", "", nil, 400, []string{"more than 100 fields"}},
		{"multipart: long workflow_type", "", nil, 400, []string{"workflow_type", "longer than 4096 bytes"}},
		{"urlencoded: 101 fields", "application/x-www-form-urlencoded", form(101), 400, []string{"more than 100 fields"}},
		{"urlencoded: over the field limit", "application/x-www-form-urlencoded",
			[]byte("workflow_params=" + strings.Repeat("a", maxField+2<<20)), 413, []string{"larger than"}},
		{"JSON: 101 fields", "application/json", jsonFields(101), 400, []string{"more than 100 fields"}},
	}
	for i := range tests {
		tt := &tests[i]
		if tt.ct != "" {
			continue
		}
		var parts []biPart
		switch i {
		case 0:
			parts = unknown(30, 2000)
		case 1:
			parts = unknown(5000, 100)
		case 2:
			parts = biWith(biRun(), biField("workflow_type", strings.Repeat("C", 4097)))
		}
		tt.body, tt.ct = biMultipart(t, parts)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := biPost(t, env, tt.ct, tt.body)
			biCheckError(t, resp, b, tt.status, tt.want...)
			if len(b) > 4096 {
				t.Errorf("the answer has %d bytes, want a short one", len(b))
			}
			biCheckNothingStored(t, env)
		})
	}
	t.Run("urlencoded over the field limit, chunked", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, env.API+"/runs",
			chunked{strings.NewReader("workflow_params=" + strings.Repeat("a", maxField+2<<20))})
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, b := biDo(t, req)
		biCheckError(t, resp, b, 413, "larger than")
		biCheckNothingStored(t, env)
	})
}

// TestSubmitFormFieldCaps: the submit form keeps only its own fields
// (made-up ones are neither read nor kept, and do not fail the run), caps
// them by count, and says so on the page.
func TestSubmitFormFieldCaps(t *testing.T) {
	t.Parallel()
	env, _ := pagesEnv(t)
	c := pagesClient()
	junk := pagesField{name: "junk", value: strings.Repeat("j", 9<<20)} // more than the 8 MiB field limit
	id := pagesSubmitRun(t, c, env, pagesForm("hello.cwl", junk))
	if id == "" {
		t.Fatal("no run")
	}
	var many []pagesField
	for i := range 101 {
		many = append(many, pagesField{name: fmt.Sprintf("junk%d", i), value: "v"})
	}
	d := pagesSubmit(t, c, env, pagesForm("hello.cwl", many...), http.StatusBadRequest)
	if got := pagesText(d.one(t, nil, "form error", pagesEl("p", "class", "error"))); !strings.Contains(got, "more than 100 fields") {
		t.Errorf("101 made-up fields: the page says %q", got)
	}
	long := pagesField{name: "engine", value: strings.Repeat("e", 5000)}
	d = pagesSubmit(t, c, env, pagesForm("hello.cwl", long), http.StatusBadRequest)
	if got := pagesText(d.root); !strings.Contains(got, "longer than 4096 bytes") {
		t.Errorf("a 5000-byte engine name: the page says %q", pagesExcerpt(got))
	}
}

// limitRun is a run request for the stand-in engine of the pages tests;
// a workflow whose name has "sleep" in it runs for five minutes.
func limitRun(workflow string, attachmentBytes int) []biPart {
	return []biPart{
		biField("workflow_type", "CWL"),
		biField("workflow_type_version", "v1.2"),
		biField("workflow_url", workflow),
		biFile(workflow, strings.Repeat("#", attachmentBytes)),
	}
}

func limitPost(t testing.TB, env *testEnv, parts []biPart) (*http.Response, []byte) {
	t.Helper()
	body, ct := biMultipart(t, parts)
	return biPost(t, env, ct, body)
}

// limitCheck429 checks a 429 ErrorResponse with a Retry-After of 1 to 60 seconds.
func limitCheck429(t testing.TB, resp *http.Response, body []byte, want ...string) {
	t.Helper()
	biCheckError(t, resp, body, http.StatusTooManyRequests, want...)
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Errorf("Retry-After %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
	}
}

// limitStored counts the runs in the store and in the data directory, and
// checks that no draft is left.
func limitStored(t testing.TB, env *testEnv) int {
	t.Helper()
	runs, err := env.DB.ListRuns(context.Background(), wes.ListQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := os.ReadDir(filepath.Join(env.Data, "runs"))
	tmp, _ := os.ReadDir(filepath.Join(env.Data, "tmp"))
	if len(dirs) != len(runs) || len(tmp) != 0 {
		t.Errorf("%d runs stored, %d run directories, %d drafts left", len(runs), len(dirs), len(tmp))
	}
	return len(runs)
}

// TestPerUserActiveRunsLimit: over the cap on active runs, the API and the
// submit form answer 429 with Retry-After and store nothing.
func TestPerUserActiveRunsLimit(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{pagesEngine(t)}, MaxJobs: 4,
		UserLimits: wes.UserLimits{MaxActiveRuns: 2}})
	for i := range 2 {
		if resp, b := limitPost(t, env, limitRun("sleep.cwl", 10)); resp.StatusCode != http.StatusOK {
			t.Fatalf("run %d: %d %s", i+1, resp.StatusCode, b)
		}
	}
	resp, b := limitPost(t, env, limitRun("sleep.cwl", 10))
	limitCheck429(t, resp, b, "2 runs that have not ended")
	if n := limitStored(t, env); n != 2 {
		t.Errorf("%d runs stored, want 2", n)
	}

	// The submit form says so too.
	c := pagesClient()
	d := pagesSubmit(t, c, env, pagesForm("hello.cwl"), http.StatusTooManyRequests)
	if got := pagesText(d.one(t, nil, "form error", pagesEl("p", "class", "error"))); !strings.Contains(got, "have not ended") {
		t.Errorf("the form says %q", got)
	}
	if d.header.Get("Retry-After") == "" {
		t.Error("the form's 429 has no Retry-After")
	}
	if n := limitStored(t, env); n != 2 {
		t.Errorf("%d runs stored, want 2", n)
	}

	// A run that ends makes room.
	runs, _ := env.DB.ListRuns(context.Background(), wes.ListQuery{Limit: 10})
	local, _ := auth.NewLocal()
	if err := env.Service.Cancel(context.Background(), local.User, runs[0].ID); err != nil {
		t.Fatal(err)
	}
	pagesWait(t, env, local.User, runs[0].ID, wes.Canceled)
	if resp, b := limitPost(t, env, limitRun("sleep.cwl", 10)); resp.StatusCode != http.StatusOK {
		t.Errorf("after one run ended: %d %s", resp.StatusCode, b)
	}
}

// TestPerUserLimitConcurrent: many requests at once cannot all slip under
// the cap: the count and the insert are one transaction.
func TestPerUserLimitConcurrent(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{pagesEngine(t)}, MaxJobs: 4,
		UserLimits: wes.UserLimits{MaxActiveRuns: 3}})
	var wg sync.WaitGroup
	statuses := make([]int, 12)
	for i := range statuses {
		wg.Go(func() {
			resp, _ := limitPost(t, env, limitRun("sleep.cwl", 10))
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	ok, limited := 0, 0
	for _, s := range statuses {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
		}
	}
	if ok != 3 || limited != 9 {
		t.Errorf("statuses %v: %d accepted and %d limited, want 3 and 9", statuses, ok, limited)
	}
	if n := limitStored(t, env); n != 3 {
		t.Errorf("%d runs stored, want 3", n)
	}
}

// TestPerUserSubmissionRate: more runs in a minute than the cap get 429,
// even when the earlier ones have ended.
func TestPerUserSubmissionRate(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{pagesEngine(t)},
		UserLimits: wes.UserLimits{MaxSubmissionsPerMinute: 2}})
	for i := range 2 {
		if resp, b := limitPost(t, env, limitRun("quick.cwl", 10)); resp.StatusCode != http.StatusOK {
			t.Fatalf("run %d: %d %s", i+1, resp.StatusCode, b)
		}
	}
	resp, b := limitPost(t, env, limitRun("quick.cwl", 10))
	limitCheck429(t, resp, b, "submitted 2 runs in the last minute")
	if n := limitStored(t, env); n != 2 {
		t.Errorf("%d runs stored, want 2", n)
	}
}

// TestPerUserAttachmentBytes: the attachments of a user's active runs are
// capped; one run larger than the cap alone is too large (413), not 429.
func TestPerUserAttachmentBytes(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{pagesEngine(t)}, MaxJobs: 4,
		UserLimits: wes.UserLimits{MaxAttachmentBytes: 1000}})
	if resp, b := limitPost(t, env, limitRun("sleep.cwl", 600)); resp.StatusCode != http.StatusOK {
		t.Fatalf("600 bytes: %d %s", resp.StatusCode, b)
	}
	resp, b := limitPost(t, env, limitRun("sleep.cwl", 600))
	limitCheck429(t, resp, b, "1200 bytes", "1000")
	resp, b = limitPost(t, env, limitRun("sleep.cwl", 1500))
	biCheckError(t, resp, b, http.StatusRequestEntityTooLarge)
	if n := limitStored(t, env); n != 1 {
		t.Errorf("%d runs stored, want 1", n)
	}
}

// TestPerUserLimitsAdminsExempt: with admins_exempt, an admin (the local
// development identity is one) is not capped.
func TestPerUserLimitsAdminsExempt(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{pagesEngine(t)}, MaxJobs: 4,
		UserLimits: wes.UserLimits{MaxActiveRuns: 1, MaxSubmissionsPerMinute: 1, AdminsExempt: true}})
	for i := range 3 {
		if resp, b := limitPost(t, env, limitRun("sleep.cwl", 10)); resp.StatusCode != http.StatusOK {
			t.Errorf("admin's run %d: %d %s", i+1, resp.StatusCode, b)
		}
	}
}
