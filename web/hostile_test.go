package web_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
printf '{"evil":{"class":"File","location":"javascript:alert(document.domain)"},' 
printf '"phish":{"class":"File","location":"https://evil.example/phish"},'
printf '"data":{"class":"File","location":"data:text/html,<script>alert(1)</script>"},'
printf '"other":{"class":"File","location":"/ga4gh/wes/v1/runs/00000000-0000-4000-8000-000000000000/files/outputs/x.txt"},'
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
	want := env.API + "/runs/" + id + "/files/outputs/good.txt"
	if !slices.Equal(hrefs, []string{want}) {
		t.Errorf("the outputs link to %q, want only %q", hrefs, want)
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
