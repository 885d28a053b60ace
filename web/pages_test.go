package web_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	"golang.org/x/net/html"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/wes"
)

// The pages tests read the HTML pages as a person relies on them: what each
// page says, where its links and forms lead, over real HTTP against real
// SQLite, with a stand-in engine run by the local executor.

// pagesDeadline bounds every wait for a run.
const pagesDeadline = 60 * time.Second

// pagesEngineScript is a stand-in workflow engine. The workflow's name says
// what it does: sleep.cwl runs until it is cancelled, fail.cwl exits with 3
// after a coloured line on stderr, any other writes result.txt and says so
// on stdout.
const pagesEngineScript = `wf=$1; shift 2
case "$wf" in
*sleep*) echo sleeping-now; exec sleep 300 ;;
*fail*) echo "about to fail"; printf '\033[1;31mERROR\033[0m failing on purpose\n' >&2; exit 3 ;;
esac
echo "stand-in ran $wf with: $*"
printf 'hello pages\n' > result.txt
`

// pagesResult is what a successful stand-in run writes into result.txt.
const pagesResult = "hello pages\n"

// pagesEngine is the stand-in engine, for CWL v1.0 and v1.2.
func pagesEngine(t testing.TB) wes.Engine {
	t.Helper()
	one := 1.0
	e := wes.Engine{
		Name:           "standin",
		Types:          map[string][]string{"CWL": {"v1.0", "v1.2"}},
		Command:        []string{"/bin/sh", "-c", pagesEngineScript, "standin", wes.PHWorkflow, wes.PHParams, wes.PHEngineParams},
		VersionCommand: []string{"/bin/echo", "standin 1.0"},
		Outputs:        wes.OutputsWorkdir,
		Params: []wes.EngineParam{
			{Name: "--parallel", Type: wes.ParamBool, Default: "false", Help: "run steps in parallel"},
			{Name: "--cores", Type: wes.ParamInt, Default: "1", Min: &one},
		},
	}
	if err := e.Detect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// pagesEnv is a local-mode env (every request acts for the local admin)
// with the stand-in engine.
func pagesEnv(t testing.TB) (*testEnv, wes.User) {
	t.Helper()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{pagesEngine(t)}, MaxJobs: 4})
	local, err := auth.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	return env, local.User
}

// pagesClient does not follow redirects, so that tests see them.
func pagesClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// pagesDoc is a fetched page, parsed.
type pagesDoc struct {
	url    string
	status int
	header http.Header
	body   string
	root   *html.Node
}

// pagesLeaks are things no page may show: internals of a failure.
var pagesLeaks = []string{"internal server error", "sqlite", "goroutine ", "panic", "%!", "<nil>", "runtime error",
	"something went wrong", "no such file", "database", "context canceled", "context deadline"}

// pagesDo sends req and parses the answer. It fails the test when the
// status is not want, or when an HTML page shows internals.
func pagesDo(t testing.TB, c *http.Client, req *http.Request, want int) *pagesDoc {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	d := &pagesDoc{url: req.URL.String(), status: resp.StatusCode, header: resp.Header, body: string(b)}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s, want %d; body:\n%s", req.Method, req.URL, resp.Status, want, pagesExcerpt(d.body))
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		if d.root, err = html.Parse(bytes.NewReader(b)); err != nil {
			t.Fatalf("%s: %v", req.URL, err)
		}
		text := strings.ToLower(pagesText(d.root))
		for _, leak := range pagesLeaks {
			if strings.Contains(text, leak) {
				t.Errorf("%s %s shows %q:\n%s", req.Method, req.URL, leak, pagesExcerpt(pagesText(d.root)))
			}
		}
	}
	return d
}

// pagesGet gets a page and requires the status.
func pagesGet(t testing.TB, c *http.Client, rawURL string, want int) *pagesDoc {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pagesDo(t, c, req, want)
}

// pagesPost posts a form as a browser on the same site does (with Origin).
func pagesPost(t testing.TB, c *http.Client, env *testEnv, path, contentType string, body io.Reader, want int) *pagesDoc {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Origin", env.URL)
	return pagesDo(t, c, req, want)
}

func pagesExcerpt(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "…"
	}
	return s
}

// pagesField is one field of the submit form; with a filename, a file.
type pagesField struct{ name, filename, value string }

// pagesSubmit posts the submit form as multipart/form-data.
func pagesSubmit(t testing.TB, c *http.Client, env *testEnv, fields []pagesField, want int) *pagesDoc {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		var pw io.Writer
		var err error
		if f.filename != "" {
			pw, err = w.CreateFormFile(f.name, f.filename)
		} else {
			pw, err = w.CreateFormField(f.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, f.value)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return pagesPost(t, c, env, "/runs/new", w.FormDataContentType(), &b, want)
}

// pagesForm is a valid submit form for the stand-in engine running workflow.
func pagesForm(workflow string, extra ...pagesField) []pagesField {
	return append([]pagesField{
		{name: "workflow_attachment", filename: workflow, value: "cwlVersion: v1.2\nclass: Workflow\n"},
		{name: "workflow_url", value: ""},
		{name: "type_version", value: "CWL|v1.2"},
		{name: "engine", value: "standin"},
		{name: "workflow_params", value: `{"greeting": "hello", "n": 3}`},
	}, extra...)
}

// pagesRunPath is where a successful submission sends the browser.
var pagesRunPath = regexp.MustCompile(`^/runs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)

// pagesSubmitRun submits the form and returns the new run's id.
func pagesSubmitRun(t testing.TB, c *http.Client, env *testEnv, fields []pagesField) string {
	t.Helper()
	d := pagesSubmit(t, c, env, fields, http.StatusSeeOther)
	m := pagesRunPath.FindStringSubmatch(d.header.Get("Location"))
	if m == nil {
		t.Fatalf("the submission sent the browser to %q, want /runs/RUN_ID", d.header.Get("Location"))
	}
	return m[1]
}

// pagesWait waits until the run is in state want; another terminal state fails.
func pagesWait(t testing.TB, env *testEnv, u wes.User, id string, want wes.State) {
	t.Helper()
	end := time.Now().Add(pagesDeadline)
	for {
		st, err := env.Service.GetStatus(context.Background(), u, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == want {
			return
		}
		if st.State.Terminal() || time.Now().After(end) {
			run, _ := env.Service.GetRun(context.Background(), u, id)
			t.Fatalf("run %s is %s, want %s; system logs %q", id, st.State, want, run.SystemLogs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pagesWaitPage gets a page until ok says it shows what the test waits for.
func pagesWaitPage(t testing.TB, c *http.Client, rawURL string, what string, ok func(*pagesDoc) bool) *pagesDoc {
	t.Helper()
	end := time.Now().Add(pagesDeadline)
	for {
		d := pagesGet(t, c, rawURL, http.StatusOK)
		if ok(d) {
			return d
		}
		if time.Now().After(end) {
			t.Fatalf("%s never showed %s:\n%s", rawURL, what, pagesExcerpt(pagesText(d.root)))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pagesNewID makes a run id as wesgate does (a random UUID).
func pagesNewID(t testing.TB) string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// pagesSeed stores ended runs directly, as if they had run (the monitor
// leaves ended runs alone), with their system logs.
func pagesSeed(t testing.TB, env *testEnv, runs ...*wes.Run) {
	t.Helper()
	ctx := context.Background()
	if err := env.DB.CreateRuns(ctx, runs); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if len(r.SystemLogs) == 0 {
			continue
		}
		logs := r.SystemLogs
		if err := env.DB.UpdateRun(ctx, r.ID, func(x *wes.Run) error { x.SystemLogs = logs; return nil }); err != nil {
			t.Fatal(err)
		}
	}
}

// pagesEnded is an ended run of u, created at created, that ran for 1h 2m 5s.
func pagesEnded(t testing.TB, u wes.User, name string, st wes.State, created time.Time, tags map[string]string) *wes.Run {
	if tags == nil {
		tags = map[string]string{}
	}
	code := 0
	if st != wes.Complete {
		code = 2
	}
	return &wes.Run{
		ID: pagesNewID(t), Owner: u.Owner, Username: u.Username, State: st, Name: name,
		Request: wes.RunRequest{WorkflowType: "CWL", WorkflowTypeVersion: "v1.2", WorkflowURL: "wf.cwl",
			WorkflowParams: json.RawMessage("{}"), Tags: tags, WorkflowEngine: "standin", WorkflowEngineVersion: "1.0"},
		Created: created, Started: created.Add(30 * time.Second), Ended: created.Add(30*time.Second + time.Hour + 2*time.Minute + 5*time.Second),
		ExitCode: &code, Outputs: json.RawMessage("{}"),
	}
}

// HTML helpers.

func pagesWalk(n *html.Node, match func(*html.Node) bool, out *[]*html.Node) {
	if n.Type == html.ElementNode && match(n) {
		*out = append(*out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		pagesWalk(c, match, out)
	}
}

// pagesFind returns the elements under n that match.
func pagesFind(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	if n != nil {
		pagesWalk(n, match, &out)
	}
	return out
}

// pagesEl matches elements by tag ("" for any) and attributes given as
// name, value pairs; "class" matches one class among several.
func pagesEl(tag string, attrs ...string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		if tag != "" && n.Data != tag {
			return false
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			v, ok := pagesAttrOK(n, attrs[i])
			if !ok {
				return false
			}
			if attrs[i] == "class" {
				if !slices.Contains(strings.Fields(v), attrs[i+1]) {
					return false
				}
			} else if v != attrs[i+1] {
				return false
			}
		}
		return true
	}
}

func pagesAttrOK(n *html.Node, name string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val, true
		}
	}
	return "", false
}

func pagesAttr(n *html.Node, name string) string {
	v, _ := pagesAttrOK(n, name)
	return v
}

// pagesRaw is the text of n as it is (for pre and textarea).
func pagesRaw(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// pagesBlocks are the elements a browser lays out on lines of their own.
var pagesBlocks = map[string]bool{"div": true, "p": true, "li": true, "tr": true, "td": true, "th": true, "br": true,
	"h1": true, "h2": true, "h3": true, "pre": true, "dt": true, "dd": true, "section": true, "table": true, "form": true}

// pagesText is the text of n with whitespace collapsed, as a person reads it.
func pagesText(n *html.Node) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		block := n.Type == html.ElementNode && pagesBlocks[n.Data]
		if block {
			b.WriteString(" ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if block {
			b.WriteString(" ")
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// one returns the only element matching under n, or fails.
func (d *pagesDoc) one(t testing.TB, n *html.Node, what string, match func(*html.Node) bool) *html.Node {
	t.Helper()
	if n == nil {
		n = d.root
	}
	found := pagesFind(n, match)
	if len(found) != 1 {
		t.Fatalf("%s: %d elements for %s, want 1; page:\n%s", d.url, len(found), what, pagesExcerpt(pagesText(d.root)))
	}
	return found[0]
}

// id returns the element with the id, or fails.
func (d *pagesDoc) id(t testing.TB, id string) *html.Node {
	t.Helper()
	return d.one(t, nil, "#"+id, pagesEl("", "id", id))
}

// has reports whether the page has an element matching.
func (d *pagesDoc) has(match func(*html.Node) bool) bool { return len(pagesFind(d.root, match)) > 0 }

// section is the section headed by the heading with id.
func (d *pagesDoc) section(t testing.TB, headingID string) *html.Node {
	t.Helper()
	return d.one(t, nil, "section "+headingID, pagesEl("section", "aria-labelledby", headingID))
}

// facts maps the terms of the page's definition lists to their descriptions.
func (d *pagesDoc) facts() map[string]string {
	out := map[string]string{}
	for _, dt := range pagesFind(d.root, pagesEl("dt")) {
		for dd := dt.NextSibling; dd != nil; dd = dd.NextSibling {
			if dd.Type == html.ElementNode {
				if dd.Data == "dd" {
					out[pagesText(dt)] = pagesText(dd)
				}
				break
			}
		}
	}
	return out
}

// pagesRows returns the cells' text of the body rows of the tables under n.
func pagesRows(n *html.Node) [][]string {
	var rows [][]string
	for _, tr := range pagesFind(n, pagesEl("tr")) {
		if tr.Parent == nil || tr.Parent.Data != "tbody" {
			continue
		}
		var cells []string
		for _, td := range pagesFind(tr, pagesEl("td")) {
			cells = append(cells, pagesText(td))
		}
		rows = append(rows, cells)
	}
	return rows
}

// runIDs lists the run ids the runs list links to, in order.
func (d *pagesDoc) runIDs() []string {
	var ids []string
	for _, a := range pagesFind(d.root, pagesEl("a")) {
		if m := pagesRunPath.FindStringSubmatch(pagesAttr(a, "href")); m != nil && a.Parent != nil && a.Parent.Data == "td" {
			ids = append(ids, m[1])
		}
	}
	return ids
}

// TestPagesRunsList: the runs list shows each run's name, state badge,
// type and times; its state and tag filters and its "Older" link work.
func TestPagesRunsList(t *testing.T) {
	t.Parallel()
	env, u := pagesEnv(t)
	c := pagesClient()

	empty := pagesGet(t, c, env.URL+"/runs", http.StatusOK)
	if got := pagesText(empty.one(t, nil, "empty note", pagesEl("p", "class", "empty"))); !strings.Contains(got, "No runs here yet") {
		t.Errorf("empty list says %q", got)
	}

	base := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	var runs []*wes.Run
	for i := range 120 {
		st, tags := wes.Complete, map[string]string{"batch": "bulk"}
		switch {
		case i%10 == 3:
			st = wes.ExecutorError
		case i%10 == 7:
			st, tags["project"] = wes.Canceled, "apollo"
		}
		runs = append(runs, pagesEnded(t, u, fmt.Sprintf("bulk-%03d", i), st, base.Add(time.Duration(i)*time.Minute), tags))
	}
	pagesSeed(t, env, runs...)
	byID := map[string]*wes.Run{}
	for _, r := range runs {
		byID[r.ID] = r
	}

	// The first page: the newest run first, with everything a row says.
	first := pagesGet(t, c, env.URL+"/runs", http.StatusOK)
	newest := runs[len(runs)-1]
	rows := pagesRows(first.one(t, nil, "runs table", pagesEl("table", "class", "runs")))
	if len(rows) != 50 {
		t.Fatalf("the first page has %d rows, want 50", len(rows))
	}
	// State, Run (name and id), Type, User (admins), Submitted, Started, Ended, Duration.
	want := []string{"COMPLETE", "bulk-119 " + newest.ID, "CWL", u.Username, "2025-03-04 07:05:07Z",
		"2025-03-04 07:05:37Z", "2025-03-04 08:07:42Z", "1h 02m"}
	if !slices.Equal(rows[0], want) {
		t.Errorf("the newest run's row is %q, want %q", rows[0], want)
	}
	if badge := pagesFind(first.root, pagesEl("span", "class", "badge"))[0]; pagesAttr(badge, "class") != "badge s-COMPLETE" {
		t.Errorf("the badge of a COMPLETE run has class %q, want \"badge s-COMPLETE\"", pagesAttr(badge, "class"))
	}

	// Paging with "Older" visits every run once, newest first.
	pageIDs := func(filter string, wantSizes ...int) []string {
		t.Helper()
		var all []string
		next := env.URL + "/runs" + filter
		for i, size := range wantSizes {
			d := pagesGet(t, c, next, http.StatusOK)
			ids := d.runIDs()
			if len(ids) != size {
				t.Fatalf("page %d of %q has %d runs, want %d", i+1, filter, len(ids), size)
			}
			all = append(all, ids...)
			older := pagesFind(d.root, pagesEl("a", "rel", "next"))
			newestLink := pagesFind(d.root, func(n *html.Node) bool { return n.Data == "a" && pagesText(n) == "« Newest" })
			if (len(newestLink) == 1) != (i > 0) {
				t.Errorf("page %d of %q: %d \"Newest\" links", i+1, filter, len(newestLink))
			}
			if i == len(wantSizes)-1 {
				if len(older) != 0 {
					t.Errorf("the last page of %q links to an older one", filter)
				}
				break
			}
			if len(older) != 1 || pagesText(older[0]) != "Older »" {
				t.Fatalf("page %d of %q has no \"Older\" link", i+1, filter)
			}
			href, err := url.Parse(pagesAttr(older[0], "href"))
			if err != nil || href.Path != "/runs" || href.Query().Get("page_token") == "" {
				t.Fatalf("the Older link is %q", pagesAttr(older[0], "href"))
			}
			next = env.URL + href.String()
		}
		seen := map[string]bool{}
		for _, id := range all {
			if seen[id] {
				t.Errorf("run %s (%s) is listed twice while paging %q", id, byID[id].Name, filter)
			}
			seen[id] = true
		}
		for i := 1; i < len(all); i++ {
			if byID[all[i-1]].Created.Before(byID[all[i]].Created) {
				t.Errorf("paging %q: %s before %s, want newest first", filter, byID[all[i-1]].Name, byID[all[i]].Name)
			}
		}
		return all
	}
	if all := pageIDs("", 50, 50, 20); len(all) != len(runs) {
		t.Errorf("paging visited %d runs, want %d", len(all), len(runs))
	}

	// The state filter, also across pages: 96 runs are COMPLETE.
	for _, id := range pageIDs("?state=COMPLETE", 50, 46) {
		if byID[id].State != wes.Complete {
			t.Errorf("the COMPLETE filter lists %s, %s", byID[id].Name, byID[id].State)
		}
	}
	failed := pagesGet(t, c, env.URL+"/runs?state=EXECUTOR_ERROR", http.StatusOK)
	if ids := failed.runIDs(); len(ids) != 12 {
		t.Errorf("the EXECUTOR_ERROR filter lists %d runs, want 12", len(ids))
	}
	for _, row := range pagesRows(failed.root) {
		if row[0] != "EXECUTOR_ERROR" {
			t.Errorf("the EXECUTOR_ERROR filter shows a row %q", row)
		}
	}
	sel := failed.one(t, nil, "selected state", func(n *html.Node) bool {
		_, selected := pagesAttrOK(n, "selected")
		return n.Data == "option" && selected
	})
	if pagesAttr(sel, "value") != "EXECUTOR_ERROR" {
		t.Errorf("the filter form shows state %q selected, want EXECUTOR_ERROR", pagesAttr(sel, "value"))
	}

	// The tag filter: 12 runs are tagged project=apollo, all CANCELED.
	tagged := pagesGet(t, c, env.URL+"/runs?tag=project%3Aapollo", http.StatusOK)
	if ids := tagged.runIDs(); len(ids) != 12 {
		t.Errorf("the tag filter lists %d runs, want 12", len(ids))
	}
	for _, id := range tagged.runIDs() {
		if byID[id].Request.Tags["project"] != "apollo" {
			t.Errorf("the tag filter lists %s, tags %v", byID[id].Name, byID[id].Request.Tags)
		}
	}
	if in := tagged.one(t, nil, "tag input", pagesEl("input", "name", "tag")); pagesAttr(in, "value") != "project:apollo" {
		t.Errorf("the filter form shows tag %q, want project:apollo", pagesAttr(in, "value"))
	}
	if ids := pagesGet(t, c, env.URL+"/runs?tag=project%3Aapollo&state=COMPLETE", http.StatusOK).runIDs(); len(ids) != 0 {
		t.Errorf("tag and state filters together list %d runs, want none", len(ids))
	}

	// A filter that is not valid is explained, not a failure.
	for _, q := range []string{"?state=FINISHED", "?tag=project", "?page_token=bogus"} {
		d := pagesGet(t, c, env.URL+"/runs"+q, http.StatusOK)
		alert := d.one(t, nil, "the filter's error", pagesEl("p", "role", "alert"))
		if !strings.HasPrefix(pagesText(alert), "The filter is not valid:") {
			t.Errorf("%s: the alert says %q", q, pagesText(alert))
		}
	}
}

// TestPagesRunPage: the page of an ended run shows its request, job,
// outputs (downloadable, with size and checksum), tasks and logs; a failed
// run's page shows why it failed. Neither offers to cancel.
func TestPagesRunPage(t *testing.T) {
	t.Parallel()
	env, u := pagesEnv(t)
	c := pagesClient()
	host, _ := os.Hostname()

	id := pagesSubmitRun(t, c, env, pagesForm("ok.cwl",
		pagesField{name: "eng--parallel", value: "true"},
		pagesField{name: "eng--cores", value: "2"},
		pagesField{name: "tags_text", value: "name=pages complete\nproject = apollo\n"}))
	failID := pagesSubmitRun(t, c, env, pagesForm("fail.cwl"))
	pagesWait(t, env, u, id, wes.Complete)
	pagesWait(t, env, u, failID, wes.ExecutorError)

	d := pagesGet(t, c, env.URL+"/runs/"+id, http.StatusOK)
	if h1 := pagesText(d.one(t, nil, "h1", pagesEl("h1"))); h1 != "pages complete" {
		t.Errorf("the heading is %q, want the run's name tag", h1)
	}
	if st := pagesText(d.id(t, "run-state")); st != "COMPLETE" {
		t.Errorf("the state badge says %q", st)
	}
	if active := pagesAttr(d.id(t, "run"), "data-active"); active != "false" {
		t.Errorf("an ended run's page has data-active=%q: its script would keep following", active)
	}
	facts := d.facts()
	for term, want := range map[string]string{
		"Job": "wes-" + id, "Exit code": "0", "Partition": "local", "Node": host, "Owner": u.Username,
		"Workflow": "ok.cwl", "Type": "CWL v1.2", "Engine": "standin 1.0",
		"--parallel": "true", "--cores": "2", "Tag project": "apollo", "Tag name": "pages complete",
	} {
		if facts[term] != want {
			t.Errorf("%s: %q, want %q", term, facts[term], want)
		}
	}
	if !strings.HasPrefix(facts["Command"], "/bin/sh -c") {
		t.Errorf("Command: %q, want the engine's command line", facts["Command"])
	}
	params := pagesRaw(d.one(t, nil, "parameters", pagesEl("pre", "class", "params")))
	if want := "{\n  \"greeting\": \"hello\",\n  \"n\": 3\n}"; params != want {
		t.Errorf("the parameters are shown as\n%s\nwant\n%s", params, want)
	}

	// The output: a download link, its size and its checksum; the link works.
	out := d.section(t, "h-out")
	rows := pagesRows(out)
	sum := sha1.Sum([]byte(pagesResult))
	if len(rows) != 1 || !strings.HasPrefix(rows[0][0], "result.txt ") || !strings.HasSuffix(rows[0][0], "/work/result.txt") ||
		rows[0][1] != "12 B" || rows[0][2] != "sha1$"+hex.EncodeToString(sum[:]) {
		t.Errorf("outputs: %q, want result.txt with its path, 12 B and its sha1", rows)
	}
	link := d.one(t, out, "output link", pagesEl("a", "download", ""))
	if href := pagesAttr(link, "href"); href != env.API+"/runs/"+id+"/files/work/result.txt" {
		t.Errorf("the output links to %q", href)
	} else if got := pagesGet(t, c, href, http.StatusOK); got.body != pagesResult {
		t.Errorf("the output link gives %q, want %q", got.body, pagesResult)
	}

	// The task: the job's batch step, with its exit code.
	tasks := pagesRows(d.section(t, "h-tasks"))
	if len(tasks) != 1 || tasks[0][0] != "batch" || tasks[0][1] != "batch" || tasks[0][2] == "" || tasks[0][3] == "" || tasks[0][4] != "0" {
		t.Errorf("tasks: %q, want the batch step, started, ended, exit code 0", tasks)
	}

	// stdout, whole, where the script continues following it.
	stdout := d.id(t, "log-stdout")
	wantOut := "stand-in ran ./ok.cwl with: --parallel --cores 2\n" // relative workflows are given as ./path
	if got := pagesRaw(stdout); got != wantOut {
		t.Errorf("stdout shows %q, want %q", got, wantOut)
	}
	if off := pagesAttr(stdout, "data-offset"); off != fmt.Sprint(len(wantOut)) || pagesAttr(stdout, "data-url") != env.API+"/runs/"+id+"/stdout" {
		t.Errorf("stdout follows from %s at %q", pagesAttr(stdout, "data-url"), off)
	}
	if d.has(pagesEl("section", "aria-labelledby", "h-sys")) {
		t.Error("a clean run shows system messages")
	}
	if d.has(pagesEl("a", "href", "/runs/"+id+"/cancel")) {
		t.Error("an ended run offers to cancel it")
	}

	// The failed run says why, with its exit code and its stderr.
	f := pagesGet(t, c, env.URL+"/runs/"+failID, http.StatusOK)
	if st := pagesText(f.id(t, "run-state")); st != "EXECUTOR_ERROR" {
		t.Errorf("the failed run's badge says %q", st)
	}
	if code := f.facts()["Exit code"]; code != "3" {
		t.Errorf("the failed run's exit code is %q, want 3", code)
	}
	if sys := pagesText(f.section(t, "h-sys")); !strings.Contains(sys, "the workflow engine exited with code 3") {
		t.Errorf("system messages: %q", sys)
	}
	// Without the terminal's colour codes, which the download keeps.
	stderr := f.id(t, "log-stderr")
	if got := pagesRaw(stderr); got != "ERROR failing on purpose\n" {
		t.Errorf("the failed run's stderr shows %q, want %q", got, "ERROR failing on purpose\n")
	}
	raw := "\x1b[1;31mERROR\x1b[0m failing on purpose\n"
	if off := pagesAttr(stderr, "data-offset"); off != fmt.Sprint(len(raw)) {
		t.Errorf("stderr is followed from byte %s, want %d (the file's length)", off, len(raw))
	}
	if got := pagesGet(t, c, pagesAttr(stderr, "data-url"), http.StatusOK).body; got != raw {
		t.Errorf("the stderr download is %q, want %q", got, raw)
	}
	if got := pagesText(f.section(t, "h-out")); !strings.Contains(got, "This run has no output files.") {
		t.Errorf("the failed run's outputs say %q", got)
	}
	if f.has(pagesEl("a", "href", "/runs/"+failID+"/cancel")) {
		t.Error("a failed run offers to cancel it")
	}
}

// TestPagesCancel: an active run's page offers "Cancel run…" and follows
// its stdout; the confirm page's form cancels it; afterwards neither the
// link nor the confirm page is offered again.
func TestPagesCancel(t *testing.T) {
	t.Parallel()
	env, u := pagesEnv(t)
	c := pagesClient()
	id := pagesSubmitRun(t, c, env, pagesForm("sleep.cwl", pagesField{name: "tags_text", value: "name=sleeper"}))
	runURL := env.URL + "/runs/" + id

	d := pagesWaitPage(t, c, runURL, "RUNNING with its stdout", func(d *pagesDoc) bool {
		return pagesText(d.id(t, "run-state")) == "RUNNING" && pagesRaw(d.id(t, "log-stdout")) == "sleeping-now\n"
	})
	if active := pagesAttr(d.id(t, "run"), "data-active"); active != "true" {
		t.Errorf("a running run's page has data-active=%q: its script would not follow it", active)
	}
	cancel := d.one(t, nil, "the cancel link", pagesEl("a", "href", "/runs/"+id+"/cancel"))
	if pagesText(cancel) != "Cancel run…" {
		t.Errorf("the cancel link says %q", pagesText(cancel))
	}
	if got := pagesText(d.section(t, "h-out")); !strings.Contains(got, "Outputs appear when the run has ended.") {
		t.Errorf("a running run's outputs say %q", got)
	}
	if got := d.facts()["Job"]; got != "wes-"+id {
		t.Errorf("a running run's job is %q", got)
	}

	// The confirm page names the run and posts back to the same address.
	confirm := pagesGet(t, c, runURL+"/cancel", http.StatusOK)
	if h1 := pagesText(confirm.one(t, nil, "h1", pagesEl("h1"))); h1 != "Cancel sleeper?" {
		t.Errorf("the confirm page asks %q", h1)
	}
	form := confirm.one(t, nil, "the confirm form", pagesEl("form", "action", "/runs/"+id+"/cancel"))
	if pagesAttr(form, "method") != "post" || pagesText(confirm.one(t, form, "button", pagesEl("button"))) != "Yes, cancel this run" {
		t.Errorf("the confirm form: %s %q", pagesAttr(form, "method"), pagesText(form))
	}
	if !confirm.has(pagesEl("a", "href", "/runs/"+id)) {
		t.Error("the confirm page has no way back to the run")
	}

	// Another site's form cannot cancel it.
	req, _ := http.NewRequest(http.MethodPost, runURL+"/cancel", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	pagesDo(t, c, req, http.StatusForbidden)
	if st, _ := env.Service.GetStatus(context.Background(), u, id); st.State != wes.Running {
		t.Fatalf("after a cross-site POST the run is %s", st.State)
	}

	posted := pagesPost(t, c, env, "/runs/"+id+"/cancel", "application/x-www-form-urlencoded", nil, http.StatusSeeOther)
	if loc := posted.header.Get("Location"); loc != "/runs/"+id {
		t.Errorf("the cancel sends the browser to %q", loc)
	}
	after := pagesGet(t, c, runURL, http.StatusOK)
	if st := pagesText(after.id(t, "run-state")); st != "CANCELING" && st != "CANCELED" {
		t.Errorf("right after the cancel the page says %s", st)
	}
	if after.has(pagesEl("a", "href", "/runs/"+id+"/cancel")) {
		t.Error("a run being cancelled still offers to cancel it")
	}
	pagesWait(t, env, u, id, wes.Canceled)
	done := pagesGet(t, c, runURL, http.StatusOK)
	if st := pagesText(done.id(t, "run-state")); st != "CANCELED" {
		t.Errorf("the cancelled run's page says %s", st)
	}
	if step := pagesFind(done.root, pagesEl("li", "class", "done")); len(step) != 3 || !strings.HasPrefix(pagesText(step[2]), "Canceled ") {
		t.Errorf("the timeline of the cancelled run: %d steps done, last %q", len(step), pagesText(step[len(step)-1]))
	}
	// The confirm page of an ended run leads back to the run.
	if again := pagesGet(t, c, runURL+"/cancel", http.StatusSeeOther); again.header.Get("Location") != "/runs/"+id {
		t.Errorf("the confirm page of an ended run redirects to %q", again.header.Get("Location"))
	}
}

// TestPagesSubmitForm: the form offers the engines and their options; a
// valid upload becomes a run; a mistake comes back as the same form, with
// what was typed and the problem next to its field.
func TestPagesSubmitForm(t *testing.T) {
	t.Parallel()
	env, u := pagesEnv(t)
	c := pagesClient()

	form := pagesGet(t, c, env.URL+"/runs/new", http.StatusOK)
	var types []string
	for _, o := range pagesFind(form.id(t, "f-type"), pagesEl("option")) {
		types = append(types, pagesAttr(o, "value")+"="+pagesText(o))
	}
	if want := []string{"CWL|v1.2=CWL v1.2", "CWL|v1.0=CWL v1.0"}; !slices.Equal(types, want) {
		t.Errorf("type choices %q, want %q (newest first)", types, want)
	}
	engine := form.one(t, form.id(t, "f-engine"), "engine option", pagesEl("option"))
	if pagesAttr(engine, "value") != "standin" || pagesText(engine) != "standin 1.0" {
		t.Errorf("engine choice %q = %q", pagesAttr(engine, "value"), pagesText(engine))
	}
	if !form.has(pagesEl("input", "type", "checkbox", "name", "eng--parallel")) || !form.has(pagesEl("input", "name", "eng--cores", "placeholder", "1")) {
		t.Error("the form lacks the engine's options")
	}
	if got := pagesRaw(form.id(t, "f-params")); got != "{}" {
		t.Errorf("the parameters start as %q, want {}", got)
	}

	// A valid upload is a run: the browser goes to its page.
	id := pagesSubmitRun(t, c, env, pagesForm("hello.cwl",
		pagesField{name: "eng--parallel", value: "true"},
		pagesField{name: "tags_text", value: "name=from the form\nproject=apollo"}))
	page := pagesGet(t, c, env.URL+"/runs/"+id, http.StatusOK)
	if h1 := pagesText(page.one(t, nil, "h1", pagesEl("h1"))); h1 != "from the form" {
		t.Errorf("the new run's page is headed %q", h1)
	}
	run, err := env.Service.GetRun(context.Background(), u, id)
	if err != nil {
		t.Fatal(err)
	}
	if r := run.Request; r.WorkflowURL != "hello.cwl" || r.WorkflowType != "CWL" || r.WorkflowTypeVersion != "v1.2" ||
		r.WorkflowEngine != "standin" || r.WorkflowEngineParameters["--parallel"] != "true" ||
		r.Tags["project"] != "apollo" || string(r.WorkflowParams) != `{"greeting":"hello","n":3}` {
		t.Errorf("the form made the request %+v", r)
	}

	count := func() int {
		runs, _, err := env.Service.ListRuns(context.Background(), u, wes.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(runs)
	}
	before := count()

	// Parameters that are not JSON: the form again, as typed, with the
	// problem next to the parameters.
	typed := `{"greeting": "hello",}`
	tags := "name=kept\nproject=apollo"
	bad := pagesSubmit(t, c, env, []pagesField{
		{name: "workflow_attachment", filename: "hello.cwl", value: "cwlVersion: v1.2\n"},
		{name: "type_version", value: "CWL|v1.0"},
		{name: "engine", value: "standin"},
		{name: "workflow_params", value: typed},
		{name: "eng--parallel", value: "true"},
		{name: "eng--cores", value: "3"},
		{name: "tags_text", value: tags},
	}, http.StatusBadRequest)
	errEl := bad.id(t, "err-workflow_params")
	if got := pagesText(errEl); !strings.Contains(got, "not valid JSON") {
		t.Errorf("the parameters' error says %q", got)
	}
	if fs := errEl.Parent; fs == nil || len(pagesFind(fs, pagesEl("textarea", "id", "f-params"))) != 1 {
		t.Error("the parameters' error is not next to the parameters")
	}
	if !strings.Contains(pagesAttr(bad.id(t, "f-params"), "aria-describedby"), "err-workflow_params") {
		t.Error("the parameters field is not described by its error")
	}
	if got := pagesRaw(bad.id(t, "f-params")); got != typed {
		t.Errorf("the parameters came back as %q, want %q", got, typed)
	}
	if got := pagesRaw(bad.id(t, "f-tags")); got != tags {
		t.Errorf("the tags came back as %q, want %q", got, tags)
	}
	if got := pagesAttr(bad.id(t, "f-eng--cores"), "value"); got != "3" {
		t.Errorf("--cores came back as %q", got)
	}
	if _, checked := pagesAttrOK(bad.one(t, nil, "--parallel", pagesEl("input", "name", "eng--parallel")), "checked"); !checked {
		t.Error("--parallel came back unchecked")
	}
	sel := bad.one(t, bad.id(t, "f-type"), "selected type", func(n *html.Node) bool {
		_, ok := pagesAttrOK(n, "selected")
		return n.Data == "option" && ok
	})
	if pagesAttr(sel, "value") != "CWL|v1.0" {
		t.Errorf("the type came back as %q", pagesAttr(sel, "value"))
	}
	if alert := bad.one(t, nil, "form error", pagesEl("p", "class", "error")); !strings.Contains(pagesText(alert), "not submitted") {
		t.Errorf("the form's error says %q", pagesText(alert))
	}

	// An option the engine does not have, or a batch option this executor
	// does not take, is named next to the options.
	for _, f := range []pagesField{{name: "eng--bogus", value: "1"}, {name: "opt--partition", value: "debug"}} {
		key := strings.TrimPrefix(strings.TrimPrefix(f.name, "eng"), "opt")
		d := pagesSubmit(t, c, env, pagesForm("hello.cwl", f), http.StatusBadRequest)
		if got := pagesText(d.id(t, "err-workflow_engine_parameters")); !strings.Contains(got, `"`+key+`"`) || !strings.Contains(got, "--parallel") {
			t.Errorf("%s: the options' error says %q, want it to name %s and the allowed ones", f.name, got, key)
		}
	}

	// Not a multipart form.
	d := pagesPost(t, c, env, "/runs/new", "application/x-www-form-urlencoded", strings.NewReader("workflow_params=%7B%7D"), http.StatusBadRequest)
	if got := pagesText(d.one(t, nil, "form error", pagesEl("p", "class", "error"))); !strings.Contains(got, "multipart/form-data") {
		t.Errorf("a urlencoded form: %q", got)
	}
	if n := count(); n != before {
		t.Errorf("%d runs were stored by failed submissions", n-before)
	}
}

// TestPagesDashboard: the admin dashboard shows the queue by partition, the
// nodes, the runs by state and by user, recent failures with their reason,
// and a chart of the queue once samples exist.
func TestPagesDashboard(t *testing.T) {
	t.Parallel()
	env, u := pagesEnv(t)
	c := pagesClient()
	host, _ := os.Hostname()
	now := time.Now().UTC()
	alice, bob := u, u
	alice.Owner, alice.Username = "idp|alice", "alice"
	bob.Owner, bob.Username = "idp|bob", "bob"
	f1 := pagesEnded(t, alice, "broken-1", wes.ExecutorError, now.Add(-3*time.Hour), nil)
	f1.SystemLogs = []string{"2025-01-01T00:00:00Z first note", "2025-01-01T00:00:01Z the workflow engine exited with code 2"}
	f2 := pagesEnded(t, alice, "broken-2", wes.SystemError, now.Add(-2*time.Hour), nil)
	f2.SystemLogs = []string{"2025-01-01T00:00:00Z the job failed before the workflow engine started"}
	pagesSeed(t, env, f1, f2, pagesEnded(t, bob, "fine", wes.Complete, now.Add(-time.Hour), nil))
	id := pagesSubmitRun(t, c, env, pagesForm("sleep.cwl"))
	pagesWait(t, env, u, id, wes.Running)
	for _, s := range []wes.Sample{{At: now.Add(-2 * time.Hour), Pending: 7, Running: 3}, {At: now.Add(-time.Hour), Pending: 2, Running: 5}} {
		if err := env.DB.AddSample(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}

	d := pagesGet(t, c, env.URL+"/admin", http.StatusOK)
	if got := pagesRows(d.section(t, "h-queue")); !slices.Equal(got[0], []string{"local", "RUNNING 1", "1"}) || len(got) != 1 {
		t.Errorf("queue by partition: %q, want local with one running job", got)
	}
	if got := pagesRows(d.section(t, "h-nodes")); len(got) != 1 || !slices.Equal(got[0], []string{host, "mixed", "local"}) {
		t.Errorf("nodes: %q, want %s mixed local", got, host)
	}
	var counts []string
	for _, p := range pagesFind(d.section(t, "h-states"), pagesEl("span", "class", "pill")) {
		counts = append(counts, pagesText(p))
	}
	if want := []string{"RUNNING 1", "COMPLETE 1", "EXECUTOR_ERROR 1", "SYSTEM_ERROR 1"}; !slices.Equal(counts, want) {
		t.Errorf("runs by state: %q, want %q", counts, want)
	}
	users := pagesRows(d.section(t, "h-users"))
	slices.SortFunc(users, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	want := [][]string{{"alice", "2", "0", "2"}, {"bob", "1", "0", "0"}, {u.Username, "1", "1", "0"}}
	slices.SortFunc(want, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	if !slices.EqualFunc(users, want, slices.Equal) {
		t.Errorf("runs by user: %q, want %q", users, want)
	}
	if !d.has(pagesEl("a", "href", "/runs?user=alice")) {
		t.Error("the users table does not link to alice's runs")
	}
	failures := pagesRows(d.section(t, "h-fail"))
	if len(failures) != 2 || !slices.Equal(failures[0], []string{"broken-2", "alice", "SYSTEM_ERROR", fmtPageTime(f2.Ended),
		"2025-01-01T00:00:00Z the job failed before the workflow engine started"}) ||
		failures[1][0] != "broken-1" || failures[1][4] != "2025-01-01T00:00:01Z the workflow engine exited with code 2" {
		t.Errorf("recent failures: %q", failures)
	}
	if !d.has(pagesEl("a", "href", "/runs/"+f1.ID)) {
		t.Error("a failure does not link to its run")
	}
	svg := d.one(t, d.section(t, "h-queue"), "chart", pagesEl("svg"))
	lines := pagesFind(svg, pagesEl("polyline"))
	if len(lines) != 2 || len(strings.Fields(pagesAttr(lines[0], "points"))) < 2 {
		t.Errorf("the chart has %d lines", len(lines))
	}
	var ticks []string
	for _, tx := range pagesFind(svg, pagesEl("text")) {
		ticks = append(ticks, pagesText(tx))
	}
	if !slices.Contains(ticks, "7") {
		t.Errorf("the chart's labels are %q, want the highest count 7", ticks)
	}

	// The admin's runs list can look at one user's runs.
	mine := pagesGet(t, c, env.URL+"/runs?user=alice", http.StatusOK)
	if ids := mine.runIDs(); len(ids) != 2 {
		t.Errorf("alice's runs: %d, want 2", len(ids))
	}
}

func fmtPageTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// TestPagesAdminOnly: with an identity provider, a person who is not an
// admin gets a 403 page at /admin and no link to it; an admin gets the
// dashboard. Nobody gets a page without logging in.
func TestPagesAdminOnly(t *testing.T) {
	t.Parallel()
	m := uiStartMockOIDC(t)
	env := uiNewOIDCEnv(t, m, envOptions{Engines: []wes.Engine{pagesEngine(t)}})

	anon := pagesGet(t, pagesClient(), env.URL+"/runs/new", http.StatusFound)
	if loc := anon.header.Get("Location"); loc != "/auth/login?next=%2Fruns%2Fnew" {
		t.Errorf("an anonymous request for a page is sent to %q", loc)
	}
	if d := pagesGet(t, pagesClient(), env.URL+"/", http.StatusOK); !d.has(func(n *html.Node) bool {
		return n.Data == "a" && pagesText(n) == "Log in" && strings.HasPrefix(pagesAttr(n, "href"), "/auth/login?next=")
	}) {
		t.Error("the start page has no \"Log in\" link")
	}

	carol := uiLogin(t, env, m, &mockoidc.MockUser{Subject: "sub-carol", PreferredUsername: "carol", Groups: []string{"staff"}})
	runs := pagesGet(t, carol, env.URL+"/runs", http.StatusOK)
	if who := pagesText(runs.one(t, nil, "the user", pagesEl("div", "class", "who"))); !strings.HasPrefix(who, "carol") {
		t.Errorf("the header names %q, want carol", who)
	}
	if runs.has(pagesEl("a", "href", "/admin")) {
		t.Error("a person who is not an admin is offered the dashboard")
	}
	forbidden := pagesGet(t, carol, env.URL+"/admin", http.StatusForbidden)
	if h1 := pagesText(forbidden.one(t, nil, "h1", pagesEl("h1"))); h1 != "Forbidden" {
		t.Errorf("the 403 page is headed %q", h1)
	}
	if !strings.Contains(pagesText(forbidden.root), "administrators") {
		t.Errorf("the 403 page does not say why:\n%s", pagesText(forbidden.root))
	}

	dave := uiLogin(t, env, m, &mockoidc.MockUser{Subject: "sub-dave", PreferredUsername: "dave", Groups: []string{uiAdminGroup}})
	if !pagesGet(t, dave, env.URL+"/runs", http.StatusOK).has(pagesEl("a", "href", "/admin")) {
		t.Error("an admin is not offered the dashboard")
	}
	dash := pagesGet(t, dave, env.URL+"/admin", http.StatusOK)
	if h1 := pagesText(dash.one(t, nil, "h1", pagesEl("h1"))); h1 != "Dashboard" {
		t.Errorf("the admin's dashboard is headed %q", h1)
	}
	if q := dash.section(t, "h-queue"); !strings.Contains(pagesText(q), "No jobs are waiting or running.") || len(pagesFind(q, pagesEl("table"))) != 0 {
		t.Errorf("an idle queue is shown as %q", pagesText(q))
	}
}

// TestPagesNotFound: unknown runs and addresses get a 404 page that says so.
func TestPagesNotFound(t *testing.T) {
	t.Parallel()
	env, _ := pagesEnv(t)
	c := pagesClient()
	missing := pagesNewID(t)
	for _, tc := range []struct {
		method, path, says string
	}{
		{http.MethodGet, "/runs/" + missing, "There is no such run, or it is not yours."},
		{http.MethodGet, "/runs/not-a-run-id", "There is no such run, or it is not yours."},
		{http.MethodGet, "/runs/" + missing + "/cancel", "There is no such run, or it is not yours."},
		{http.MethodPost, "/runs/" + missing + "/cancel", "There is no such run, or it is not yours."},
		{http.MethodGet, "/nowhere", "There is no page at this address."},
		{http.MethodGet, "/runs/" + missing + "/extra", "There is no page at this address."},
	} {
		req, _ := http.NewRequest(tc.method, env.URL+tc.path, nil)
		req.Header.Set("Origin", env.URL)
		d := pagesDo(t, c, req, http.StatusNotFound)
		if ct := d.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
			continue
		}
		if !strings.Contains(pagesText(d.root), tc.says) || !d.has(pagesEl("a", "href", "/")) {
			t.Errorf("%s %s says:\n%s", tc.method, tc.path, pagesText(d.root))
		}
	}
}

// TestPagesStaticAssets: pages link their CSS and script by content-hashed
// URLs that may be cached for a year; other names are not found.
func TestPagesStaticAssets(t *testing.T) {
	t.Parallel()
	env, _ := pagesEnv(t)
	c := pagesClient()
	d := pagesGet(t, c, env.URL+"/runs", http.StatusOK)
	css := pagesAttr(d.one(t, nil, "stylesheet", pagesEl("link", "rel", "stylesheet")), "href")
	js := pagesAttr(d.one(t, nil, "script", pagesEl("script")), "src")
	hashed := regexp.MustCompile(`^/static/app\.[0-9a-f]{12}\.(css|js)$`)
	for _, tc := range []struct{ url, mime, contains string }{
		{css, "text/css; charset=utf-8", ":root"},
		{js, "text/javascript; charset=utf-8", "followRun"},
	} {
		if !hashed.MatchString(tc.url) {
			t.Errorf("asset URL %q is not content-hashed", tc.url)
			continue
		}
		a := pagesGet(t, c, env.URL+tc.url, http.StatusOK)
		if cc := a.header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", tc.url, cc)
		}
		if ct := a.header.Get("Content-Type"); ct != tc.mime {
			t.Errorf("%s: Content-Type %q, want %q", tc.url, ct, tc.mime)
		}
		if !strings.Contains(a.body, tc.contains) {
			t.Errorf("%s does not look like the asset", tc.url)
		}
	}
	for _, p := range []string{"/static/app.css", "/static/app.000000000000.css", "/static/", "/static/app.js"} {
		if a := pagesGet(t, c, env.URL+p, http.StatusNotFound); strings.Contains(a.header.Get("Cache-Control"), "immutable") {
			t.Errorf("%s: a 404 may be cached for a year", p)
		}
	}
}
