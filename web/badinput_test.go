package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wesgate/wesgate/wes"
)

// biPart is one part of a RunWorkflow request: a form field, or a
// workflow_attachment file when file is set.
type biPart struct {
	name, value string
	file        bool
	filename    string
}

func biField(name, value string) biPart { return biPart{name: name, value: value} }

func biFile(filename, content string) biPart {
	return biPart{name: "workflow_attachment", value: content, file: true, filename: filename}
}

// biDisposition writes a Content-Disposition the way clients do: a quoted
// filename, or RFC 2231's filename* when it has control characters.
func biDisposition(p biPart) string {
	d := `form-data; name="` + p.name + `"`
	if !p.file {
		return d
	}
	if strings.ContainsFunc(p.filename, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return d + `; filename*=UTF-8''` + url.PathEscape(p.filename)
	}
	return d + `; filename="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.filename) + `"`
}

// biMultipart encodes parts as multipart/form-data.
func biMultipart(t testing.TB, parts []biPart) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{"Content-Disposition": {biDisposition(p)}}
		if p.file {
			h.Set("Content-Type", "application/octet-stream")
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, p.value)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), w.FormDataContentType()
}

// biRun is a valid request for the stand-in engine, without the fields named in drop.
func biRun(drop ...string) []biPart {
	parts := []biPart{
		biField("workflow_type", "CWL"),
		biField("workflow_type_version", "v1.2"),
		biField("workflow_url", "wf.cwl"),
		biField("workflow_params", `{"message": "hello"}`),
		biField("tags", `{"project": "badinput"}`),
		biFile("wf.cwl", "cwlVersion: v1.2\nclass: Workflow\n"),
	}
	return slices.DeleteFunc(parts, func(p biPart) bool { return slices.Contains(drop, p.name) })
}

// biWith replaces the fields of parts named in extra (fields only) and adds the rest.
func biWith(parts []biPart, extra ...biPart) []biPart {
	out := slices.Clone(parts)
	for _, e := range extra {
		i := slices.IndexFunc(out, func(p biPart) bool { return !e.file && !p.file && p.name == e.name })
		if i >= 0 {
			out[i] = e
		} else {
			out = append(out, e)
		}
	}
	return out
}

// biEngine is a stand-in engine that finishes at once, with parameters of each type.
func biEngine(t testing.TB) wes.Engine {
	t.Helper()
	one := 1.0
	e := wes.Engine{
		Name:           "standin",
		Types:          map[string][]string{"CWL": {"v1.0", "v1.2"}},
		Command:        []string{"/bin/true", wes.PHWorkflow},
		VersionCommand: []string{"/bin/echo", "standin 1.0"},
		Outputs:        wes.OutputsWorkdir,
		Params: []wes.EngineParam{
			{Name: "--parallel", Type: wes.ParamBool, Default: "false"},
			{Name: "--cores", Type: wes.ParamInt, Default: "1", Min: &one},
			{Name: "-profile", Type: wes.ParamString},
		},
	}
	if err := e.Detect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// biErrorBody is the WES ErrorResponse.
type biErrorBody struct {
	Msg        string `json:"msg"`
	StatusCode int    `json:"status_code"`
}

// biCheckError checks that resp is an ErrorResponse with status and a
// message that names every one of want.
func biCheckError(t testing.TB, resp *http.Response, body []byte, status int, want ...string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d; body %s", resp.StatusCode, status, body)
		return
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e biErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Errorf("body is not an ErrorResponse: %v: %s", err, body)
		return
	}
	t.Logf("%d: %s", status, e.Msg)
	if e.StatusCode != status {
		t.Errorf("status_code %d, want %d", e.StatusCode, status)
	}
	for _, w := range want {
		if !strings.Contains(e.Msg, w) {
			t.Errorf("msg %q does not mention %q", e.Msg, w)
		}
	}
}

func biDo(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func biPost(t testing.TB, env *testEnv, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, env.API+"/runs", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return biDo(t, req)
}

func biGet(t testing.TB, rawURL string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return biDo(t, req)
}

// biRunList is the WES RunListResponse.
type biRunList struct {
	Runs          []wes.RunSummary `json:"runs"`
	NextPageToken *string          `json:"next_page_token"`
}

// biCheckNothingStored checks that no run exists, in the API, the database
// and the data directory, and no draft is left behind.
func biCheckNothingStored(t testing.TB, env *testEnv) {
	t.Helper()
	resp, body := biGet(t, env.API+"/runs")
	var list biRunList
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Runs) != 0 {
		t.Errorf("GET /runs: %d %s, want no runs", resp.StatusCode, body)
	}
	ctx := context.Background()
	counts, err := env.DB.CountStates(ctx, "")
	if err != nil || len(counts) != 0 {
		t.Errorf("runs in the database by state: %v, %v", counts, err)
	}
	if runs, err := env.DB.ListRuns(ctx, wes.ListQuery{Limit: 10}); err != nil || len(runs) != 0 {
		t.Errorf("runs in the database: %d, %v", len(runs), err)
	}
	for _, sub := range []string{"runs", "tmp"} {
		entries, err := os.ReadDir(filepath.Join(env.Data, sub))
		if err != nil || len(entries) != 0 {
			t.Errorf("%s/ holds %v (%v), want nothing", sub, entries, err)
		}
	}
	entries, err := os.ReadDir(env.Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains([]string{"runs", "tmp"}, e.Name()) && !strings.HasPrefix(e.Name(), "wesgate.db") {
			t.Errorf("the data directory holds %s", e.Name())
		}
	}
}

// chunked hides a body's length, so the client sends it chunked.
type chunked struct{ io.Reader }

func TestRunWorkflowRejectsBadRequests(t *testing.T) {
	t.Parallel()
	const maxRequest = 64 << 10
	env := newTestEnv(t, envOptions{
		Engines:         []wes.Engine{biEngine(t)},
		MaxRequestBytes: maxRequest,
		Limits:          wes.Limits{MaxAttachments: 3, MaxFieldBytes: 16 << 10, MaxWorkflowBytes: 1 << 20, MaxJSONDepth: 8},
	})
	deep := strings.Repeat(`{"a":`, 9) + "1" + strings.Repeat("}", 9)
	big := strings.Repeat("x", maxRequest)

	tests := []struct {
		name  string
		parts []biPart
		want  []string // what the message must mention
	}{
		{"missing workflow_type", biRun("workflow_type"), []string{"workflow_type", "required"}},
		{"missing workflow_type_version", biRun("workflow_type_version"), []string{"workflow_type_version", "required"}},
		{"missing workflow_url", biRun("workflow_url"), []string{"workflow_url", "required"}},
		{"blank workflow_type", biWith(biRun(), biField("workflow_type", "  ")), []string{"workflow_type", "required"}},
		{"unknown type", biWith(biRun(), biField("workflow_type", "XYZ")), []string{"workflow_type", "XYZ", "CWL"}},
		{"unsupported type version", biWith(biRun(), biField("workflow_type_version", "v9.9")), []string{"workflow_type_version", "v9.9"}},
		{"engine version without engine", biWith(biRun(), biField("workflow_engine_version", "1.0")),
			[]string{"workflow_engine", "workflow_engine_version"}},
		{"unknown engine", biWith(biRun(), biField("workflow_engine", "nosuchengine")), []string{"workflow_engine", "nosuchengine"}},
		{"wrong engine version", biWith(biRun(), biField("workflow_engine", "standin"), biField("workflow_engine_version", "9.9")),
			[]string{"workflow_engine_version", "9.9", "1.0"}},
		{"workflow_params not JSON", biWith(biRun(), biField("workflow_params", `{"message": `)), []string{"workflow_params", "JSON"}},
		{"workflow_params not an object", biWith(biRun(), biField("workflow_params", `["a"]`)), []string{"workflow_params", "object"}},
		{"workflow_params trailing data", biWith(biRun(), biField("workflow_params", `{} {}`)), []string{"workflow_params", "after"}},
		{"workflow_params too deep", biWith(biRun(), biField("workflow_params", deep)), []string{"workflow_params", "deeper than 8"}},
		{"workflow_params too long", biWith(biRun(), biField("workflow_params", `{"a":"`+strings.Repeat("x", 17<<10)+`"}`)),
			[]string{"workflow_params", "longer than"}},
		{"tags not an object", biWith(biRun(), biField("tags", `"project"`)), []string{"tags", "object"}},
		{"tag with a number", biWith(biRun(), biField("tags", `{"count": 3}`)), []string{"tags", `"count"`, "string"}},
		{"tag with an object", biWith(biRun(), biField("tags", `{"nested": {"a": "b"}}`)), []string{"tags", `"nested"`}},
		{"engine params not an object", biWith(biRun(), biField("workflow_engine_parameters", `["--parallel"]`)),
			[]string{"workflow_engine_parameters", "object"}},
		{"unknown engine param", biWith(biRun(), biField("workflow_engine_parameters", `{"--rm-everything": true}`)),
			[]string{"workflow_engine_parameters", "--rm-everything", "--parallel"}},
		{"bool engine param of another type", biWith(biRun(), biField("workflow_engine_parameters", `{"--parallel": "yes"}`)),
			[]string{"workflow_engine_parameters", "--parallel", "true or false"}},
		{"int engine param below minimum", biWith(biRun(), biField("workflow_engine_parameters", `{"--cores": 0}`)),
			[]string{"--cores", "at least 1"}},
		{"string engine param with a shell word", biWith(biRun(), biField("workflow_engine_parameters", `{"-profile": "a;reboot"}`)),
			[]string{"-profile"}},
		{"absolute attachment", biWith(biRun(), biFile("/etc/passwd", "x")), []string{"workflow_attachment", "absolute"}},
		{"dot-dot attachment", biWith(biRun(), biFile("../escape.cwl", "x")), []string{"workflow_attachment", `".."`}},
		{"empty component", biWith(biRun(), biFile("a//b.cwl", "x")), []string{"workflow_attachment", "empty path component"}},
		{"trailing slash", biWith(biRun(), biFile("dir/", "x")), []string{"workflow_attachment", "empty path component"}},
		{"NUL in attachment name", biWith(biRun(), biFile("a\x00b.cwl", "x")), []string{"workflow_attachment", "control character"}},
		{"control character in attachment name", biWith(biRun(), biFile("a\x1b[2Jb.cwl", "x")),
			[]string{"workflow_attachment", "control character"}},
		{"newline in attachment name", biWith(biRun(), biFile("a\nb.cwl", "x")), []string{"workflow_attachment", "control character"}},
		{"backslash in attachment name", biWith(biRun(), biFile(`..\..\x.cwl`, "x")), []string{"workflow_attachment", "backslash"}},
		{"params file as attachment", biWith(biRun(), biFile(".wesgate-params.json", `{"message": "forged"}`)),
			[]string{"workflow_attachment", ".wesgate"}},
		{"wrapper records as attachment", biWith(biRun(), biFile(".wesgate/rc", "0")), []string{"workflow_attachment", ".wesgate"}},
		{"empty attachment name", biWith(biRun(), biFile("", "x")), []string{"workflow_attachment"}},
		{"attachment part without a filename", biWith(biRun(), biField("workflow_attachment", "x")),
			[]string{"workflow_attachment", "filename"}},
		{"conflicting duplicate attachments", biWith(biRun(), biFile("wf.cwl", "something else")),
			[]string{"workflow_attachment", "wf.cwl", "different content"}},
		{"file and directory of the same name", biWith(biRun(), biFile("data", "x"), biFile("data/in.txt", "y")),
			[]string{"workflow_attachment", "clashes"}},
		{"too many attachments", biWith(biRun(), biFile("a.txt", "a"), biFile("b.txt", "b"), biFile("c.txt", "c")),
			[]string{"workflow_attachment", "more than 3"}},
		{"workflow_url names a missing attachment", biWith(biRun(), biField("workflow_url", "other.cwl")),
			[]string{"workflow_url", "other.cwl"}},
		{"workflow_url leaves work", biWith(biRun(), biField("workflow_url", "../wf.cwl")), []string{"workflow_url", `".."`}},
		{"workflow_url absolute path", biWith(biRun(), biField("workflow_url", "/etc/passwd")), []string{"workflow_url", "absolute"}},
		{"file URL without allowed prefixes", biWith(biRun(), biField("workflow_url", "file:///etc/passwd")),
			[]string{"workflow_url", "file:"}},
		{"ftp URL", biWith(biRun(), biField("workflow_url", "ftp://example.org/wf.cwl")), []string{"workflow_url", "ftp"}},
		{"http URL without a fetcher", biWith(biRun(), biField("workflow_url", "https://example.org/wf.cwl")),
			[]string{"workflow_url", "http"}},
		{"unknown form field", biWith(biRun(), biField("workflow_dependencies", "x")),
			[]string{"workflow_dependencies", "not a field"}},
		{"field sent twice", append(biRun(), biField("workflow_type", "CWL")), []string{"workflow_type", "more than once"}},
		// Every problem is reported, not only the first.
		{"several problems", biWith(biRun("workflow_url"), biField("tags", "[]"), biFile("/abs", "x")),
			[]string{"workflow_url", "tags", "workflow_attachment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := biMultipart(t, tt.parts)
			resp, respBody := biPost(t, env, ct, body)
			biCheckError(t, resp, respBody, http.StatusBadRequest, tt.want...)
			biCheckNothingStored(t, env)
		})
	}

	t.Run("urlencoded form with a bad field", func(t *testing.T) {
		form := url.Values{"workflow_type": {"CWL"}, "workflow_type_version": {"v1.2"}, "workflow_url": {"wf.cwl"}}
		resp, body := biPost(t, env, "application/x-www-form-urlencoded", []byte(form.Encode()))
		biCheckError(t, resp, body, http.StatusBadRequest, "workflow_url", "wf.cwl")
		biCheckNothingStored(t, env)
	})
	t.Run("JSON body that is not an object", func(t *testing.T) {
		resp, body := biPost(t, env, "application/json", []byte(`["workflow_type"]`))
		biCheckError(t, resp, body, http.StatusBadRequest, "body")
		biCheckNothingStored(t, env)
	})
	t.Run("JSON body with a bad field", func(t *testing.T) {
		resp, body := biPost(t, env, "application/json",
			[]byte(`{"workflow_type":"CWL","workflow_type_version":"v1.2","workflow_url":"wf.cwl","workflow_params":[1]}`))
		biCheckError(t, resp, body, http.StatusBadRequest, "workflow_params", "workflow_url")
		biCheckNothingStored(t, env)
	})
	t.Run("multipart without a boundary", func(t *testing.T) {
		body, _ := biMultipart(t, biRun())
		resp, respBody := biPost(t, env, "multipart/form-data", body)
		biCheckError(t, resp, respBody, http.StatusBadRequest, "boundary")
		biCheckNothingStored(t, env)
	})
	t.Run("truncated multipart body", func(t *testing.T) {
		body, ct := biMultipart(t, biRun())
		resp, respBody := biPost(t, env, ct, body[:len(body)-40])
		biCheckError(t, resp, respBody, http.StatusBadRequest, "body")
		biCheckNothingStored(t, env)
	})
	t.Run("wrong content type", func(t *testing.T) {
		for _, ct := range []string{"text/plain", "application/xml", "", "not a media type"} {
			resp, body := biPost(t, env, ct, []byte("workflow_type=CWL"))
			biCheckError(t, resp, body, http.StatusUnsupportedMediaType, "Content-Type")
		}
		biCheckNothingStored(t, env)
	})
	t.Run("declared body over the limit", func(t *testing.T) {
		body, ct := biMultipart(t, biWith(biRun(), biFile("big.bin", big)))
		resp, respBody := biPost(t, env, ct, body)
		biCheckError(t, resp, respBody, http.StatusRequestEntityTooLarge, "larger")
		biCheckNothingStored(t, env)
	})
	t.Run("chunked body over the limit", func(t *testing.T) {
		for name, parts := range map[string][]biPart{
			"in an attachment": biWith(biRun(), biFile("big.bin", big)),
			"in a field":       biWith(biRun(), biField("workflow_dependencies", big)),
		} {
			body, ct := biMultipart(t, parts)
			req, err := http.NewRequest(http.MethodPost, env.API+"/runs", chunked{bytes.NewReader(body)})
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", ct)
			req.ContentLength = -1 // unknown: sent chunked, so only the body reader can stop it
			resp, respBody := biDo(t, req)
			t.Log(name)
			biCheckError(t, resp, respBody, http.StatusRequestEntityTooLarge, "larger")
			biCheckNothingStored(t, env)
		}
	})
}

func TestListRunsRejectsBadQueries(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{biEngine(t)}})
	for range 3 {
		body, ct := biMultipart(t, biRun())
		if resp, respBody := biPost(t, env, ct, body); resp.StatusCode != http.StatusOK {
			t.Fatalf("create: %d %s", resp.StatusCode, respBody)
		}
	}
	resp, body := biGet(t, env.API+"/runs?page_size=1")
	var page biRunList
	if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != http.StatusOK || page.NextPageToken == nil || *page.NextPageToken == "" {
		t.Fatalf("first page: %d %s", resp.StatusCode, body)
	}
	token := *page.NextPageToken
	forged := []byte(token)
	forged[len(forged)/2] ^= 1
	if forged[len(forged)/2] == '-' || forged[len(forged)/2] == '_' {
		forged[len(forged)/2] = 'A'
	}

	tests := []struct {
		query string
		want  string
	}{
		{"page_size=0", "page_size"},
		{"page_size=-1", "page_size"},
		{"page_size=abc", "page_size"},
		{"page_size=1.5", "page_size"},
		{"page_size=", ""}, // empty is the default: accepted
		{"page_token=garbage", "page_token"},
		{"page_token=" + url.QueryEscape(string(forged)), "page_token"},
		{"page_token=" + token[:len(token)-2], "page_token"},
		{"page_token=" + token + "&state=COMPLETE", "page_token"},
		{"page_token=" + token + "&tag=project:badinput", "page_token"},
		{"state=BOGUS", "state"},
		{"tag=nocolon", "tag"},
		{"page_token=" + token, ""}, // the same query: accepted
	}
	for _, tt := range tests {
		resp, body := biGet(t, env.API+"/runs?"+tt.query)
		if tt.want == "" {
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %d %s, want 200", tt.query, resp.StatusCode, body)
			}
			continue
		}
		t.Run(tt.query, func(t *testing.T) { biCheckError(t, resp, body, http.StatusBadRequest, tt.want) })
	}
}

// TestRunWorkflowAcceptsEdgeCases: requests near the rules that must succeed,
// stored as the rules say.
func TestRunWorkflowAcceptsEdgeCases(t *testing.T) {
	t.Parallel()
	shared := t.TempDir()
	if err := os.WriteFile(filepath.Join(shared, "wf.cwl"), []byte("cwlVersion: v1.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{biEngine(t)}, FilePrefixes: []string{shared}})
	ctx := context.Background()

	create := func(t *testing.T, contentType string, body []byte) *wes.Run {
		t.Helper()
		before, _ := env.DB.ListRuns(ctx, wes.ListQuery{Limit: 1000})
		resp, respBody := biPost(t, env, contentType, body)
		var id struct {
			RunID string `json:"run_id"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(respBody, &id) != nil || id.RunID == "" {
			t.Fatalf("create: %d %s", resp.StatusCode, respBody)
		}
		after, _ := env.DB.ListRuns(ctx, wes.ListQuery{Limit: 1000})
		if len(after) != len(before)+1 {
			t.Errorf("%d runs stored, want one more than %d", len(after), len(before))
		}
		r, err := env.DB.GetRun(ctx, id.RunID, "")
		if err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(filepath.Join(env.Data, "tmp")); len(entries) != 0 {
			t.Errorf("tmp/ holds %v after a successful request", entries)
		}
		return r
	}
	multipartRun := func(t *testing.T, parts []biPart) *wes.Run {
		t.Helper()
		body, ct := biMultipart(t, parts)
		return create(t, ct, body)
	}

	t.Run("null engine parameter is absent", func(t *testing.T) {
		r := multipartRun(t, biWith(biRun(), biField("workflow_engine_parameters", `{"--parallel": null, "--cores": 2}`)))
		if want := map[string]string{"--cores": "2"}; !maps.Equal(r.Request.WorkflowEngineParameters, want) {
			t.Errorf("engine parameters stored as %v, want %v", r.Request.WorkflowEngineParameters, want)
		}
	})
	t.Run("identical duplicate attachment", func(t *testing.T) {
		r := multipartRun(t, biWith(biRun(), biFile("wf.cwl", "cwlVersion: v1.2\nclass: Workflow\n"), biFile("data/in.txt", "in")))
		if want := []string{"data/in.txt", "wf.cwl"}; !slices.Equal(r.Attachments, want) {
			t.Errorf("attachments %q, want %q", r.Attachments, want)
		}
		b, err := os.ReadFile(filepath.Join(env.Data, "runs", r.ID, "work", "wf.cwl"))
		if err != nil || string(b) != "cwlVersion: v1.2\nclass: Workflow\n" {
			t.Errorf("stored attachment: %q, %v", b, err)
		}
	})
	t.Run("workflow type in lower case", func(t *testing.T) {
		r := multipartRun(t, biWith(biRun(), biField("workflow_type", "cwl"), biField("workflow_type_version", "1.2")))
		if r.Request.WorkflowType != "CWL" || r.Request.WorkflowTypeVersion != "v1.2" {
			t.Errorf("stored as %q %q, want CWL v1.2", r.Request.WorkflowType, r.Request.WorkflowTypeVersion)
		}
		if r.Request.WorkflowEngine != "standin" || r.Request.WorkflowEngineVersion != "1.0" {
			t.Errorf("engine %q %q, want standin 1.0", r.Request.WorkflowEngine, r.Request.WorkflowEngineVersion)
		}
	})
	t.Run("engine named in another case", func(t *testing.T) {
		r := multipartRun(t, biWith(biRun(), biField("workflow_engine", "StandIn"), biField("workflow_engine_version", "1.0")))
		if r.Request.WorkflowEngine != "standin" {
			t.Errorf("engine stored as %q", r.Request.WorkflowEngine)
		}
	})
	t.Run("unicode attachment names", func(t *testing.T) {
		r := multipartRun(t, biWith(biRun(), biField("workflow_url", "données/flux ✓.cwl"), biFile("données/flux ✓.cwl", "x")))
		if r.Request.WorkflowURL != "données/flux ✓.cwl" || !slices.Contains(r.Attachments, "données/flux ✓.cwl") {
			t.Errorf("stored %q with %q", r.Request.WorkflowURL, r.Attachments)
		}
	})
	t.Run("JSON RunRequest", func(t *testing.T) {
		req := map[string]any{
			"workflow_type": "CWL", "workflow_type_version": "v1.2",
			"workflow_url":               "file://" + filepath.Join(shared, "wf.cwl"),
			"workflow_params":            map[string]any{"n": 1, "s": "x"},
			"tags":                       map[string]string{"via": "json"},
			"workflow_engine_parameters": map[string]any{"--parallel": true},
			"workflow_engine":            nil,
		}
		body, _ := json.Marshal(req)
		r := create(t, "application/json", body)
		if r.Request.WorkflowURL != req["workflow_url"] || r.Request.Tags["via"] != "json" ||
			string(r.Request.WorkflowParams) != `{"n":1,"s":"x"}` || r.Request.WorkflowEngineParameters["--parallel"] != "true" {
			t.Errorf("stored %+v", r.Request)
		}
	})
	t.Run("deep nesting only inside strings", func(t *testing.T) {
		params := `{"a":"` + strings.Repeat("[", 100) + `"}`
		r := multipartRun(t, biWith(biRun(), biField("workflow_params", params)))
		if string(r.Request.WorkflowParams) != params {
			t.Errorf("params stored as %s", r.Request.WorkflowParams)
		}
	})
}
