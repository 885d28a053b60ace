package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/wesgate/wesgate/wes"
)

// The contract tests check wesgate against the published GA4GH WES 1.1.0
// specification (testdata/spec): every request a test sends through
// contractClient and every answer it gets back is validated against it.

// contractSpecFile is the WES specification; it refers to the service-info schema
// next to it.
var contractSpecFile = filepath.Join("testdata", "spec", "wes-1.1.0.openapi.yaml")

// contractKeepEveryField lists the schemas whose objects carry every field the
// schema lists (testdata/spec/README.md: a rule of the project's first
// specification that stays in force), even where 1.1.0 makes them optional.
var contractKeepEveryField = []string{"ServiceInfo", "RunLog", "Log", "RunRequest", "RunStatus", "RunListResponse", "ErrorResponse"}

// contractSpec is the loaded specification, with its paths served under one API base URL.
type contractSpec struct {
	doc      *openapi3.T
	router   routers.Router
	api      *url.URL
	errorRes *openapi3.Schema
	complete map[*openapi3.Schema]string // schema -> name, for contractKeepEveryField
	opts     []openapi3.SchemaValidationOption
}

// contractLoad loads the specification with apiBase (the test server's
// URL + /ga4gh/wes/v1) as its only server.
func contractLoad(t testing.TB, apiBase string) *contractSpec {
	t.Helper()
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = true
	doc, err := loader.LoadFromFile(contractSpecFile)
	if err != nil {
		t.Fatalf("load %s: %v", contractSpecFile, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the specification itself is invalid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: apiBase}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	api, err := url.Parse(apiBase)
	if err != nil {
		t.Fatal(err)
	}
	c := &contractSpec{doc: doc, router: router, api: api, complete: map[*openapi3.Schema]string{},
		// kin-openapi checks date-time on its own; "uri" (organization.url,
		// contactUrl, documentationUrl) needs a validator.
		opts: []openapi3.SchemaValidationOption{openapi3.WithStringFormatValidator("uri",
			openapi3.NewCallbackValidator(func(s string) error {
				u, err := url.Parse(s)
				if err != nil || !u.IsAbs() {
					return fmt.Errorf("%q is not an absolute URI", s)
				}
				return nil
			}))},
	}
	for _, name := range contractKeepEveryField {
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Fatalf("the specification has no schema %s", name)
		}
		c.complete[ref.Value] = name
	}
	c.errorRes = doc.Components.Schemas["ErrorResponse"].Value
	return c
}

// contractClient returns an HTTP client for env whose every exchange with
// the WES API is checked against the specification; violations fail t.
func contractClient(t testing.TB, env *testEnv) *http.Client {
	t.Helper()
	return &http.Client{
		Transport: &contractTransport{c: contractLoad(t, env.API), next: env.Server.Client().Transport, report: t.Errorf},
		Timeout:   60 * time.Second,
	}
}

// contractTransport validates the requests it sends to the WES API and the
// responses it gets:
//
//   - an operation of the specification: the request, and the response
//     with its status (openapi3filter, IncludeResponseStatus);
//   - an error status the operation does not declare (405, 413, 415, ...):
//     the body must still be an ErrorResponse, validated against that schema;
//   - DELETE /runs/{run_id}, which cancels like POST /runs/{run_id}/cancel
//     (testdata/spec/README.md): validated as CancelRun;
//   - paths the specification does not have (/stdout, /stderr, /files/...):
//     a success is passed through unvalidated, as the specification says
//     nothing about it, but an error must still be an ErrorResponse.
//
// Every ErrorResponse must name the HTTP status in status_code, and objects
// of contractKeepEveryField must carry all their fields. Requests to other hosts, or
// outside the API, pass through untouched.
type contractTransport struct {
	c      *contractSpec
	next   http.RoundTripper
	report func(format string, args ...any)
}

func (ct *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !ct.c.inAPI(req.URL) {
		return ct.next.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	send := req.Clone(req.Context())
	if req.Body != nil {
		send.Body = io.NopCloser(bytes.NewReader(body))
		send.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		send.ContentLength = int64(len(body))
	}
	what := req.Method + " " + req.URL.Path

	route, params, err := ct.c.route(req)
	var input *openapi3filter.RequestValidationInput
	switch {
	case err == nil:
		check := req.Clone(req.Context())
		if req.Body != nil {
			check.Body = io.NopCloser(bytes.NewReader(body))
		}
		if route.Method != req.Method { // DELETE /runs/{run_id} as CancelRun
			check.Method = route.Method
			check.Body, check.ContentLength = nil, 0
		}
		input = &openapi3filter.RequestValidationInput{Request: check, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
				SchemaValidationOptions: ct.c.opts}}
		if err := openapi3filter.ValidateRequest(req.Context(), input); err != nil {
			ct.report("contract: request %s does not conform to the specification: %v", what, err)
		}
	case errors.Is(err, routers.ErrPathNotFound), errors.Is(err, routers.ErrMethodNotAllowed):
		// Not an operation of the specification: wesgate's extensions
		// (/stdout, /stderr, /files/...) or a method the path does not
		// have. The request passes unvalidated, and so does a successful
		// answer; an error answer must still be an ErrorResponse.
	default:
		ct.report("contract: %s: %v", what, err)
	}

	resp, err := ct.next.RoundTrip(send)
	if err != nil {
		return nil, err
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(rb))
	if req.Method == http.MethodHead {
		return resp, nil
	}
	for _, problem := range ct.c.checkResponse(input, resp, rb) {
		ct.report("contract: response %d to %s: %s\nbody: %s", resp.StatusCode, what, problem, contractTruncate(rb))
	}
	return resp, nil
}

// inAPI reports whether u is under the API base.
func (c *contractSpec) inAPI(u *url.URL) bool {
	return u.Host == c.api.Host && (u.Path == c.api.Path || strings.HasPrefix(u.Path, c.api.Path+"/"))
}

// route finds the operation of a request; DELETE /runs/{run_id} is CancelRun.
func (c *contractSpec) route(req *http.Request) (*routers.Route, map[string]string, error) {
	route, params, err := c.router.FindRoute(req)
	if !errors.Is(err, routers.ErrMethodNotAllowed) || req.Method != http.MethodDelete {
		return route, params, err
	}
	alias := req.Clone(req.Context())
	alias.Method = http.MethodPost
	alias.URL.Path = strings.TrimSuffix(req.URL.Path, "/") + "/cancel"
	alias.URL.RawPath = ""
	aRoute, aParams, aErr := c.router.FindRoute(alias)
	if aErr != nil || aRoute.Operation.OperationID != "CancelRun" {
		return route, params, err
	}
	return aRoute, aParams, nil
}

// checkResponse lists what is wrong with a response. input is nil when the
// request is not an operation of the specification.
func (c *contractSpec) checkResponse(input *openapi3filter.RequestValidationInput, resp *http.Response, body []byte) []string {
	var problems []string
	declared := input != nil && (input.Route.Operation.Responses.Status(resp.StatusCode) != nil ||
		input.Route.Operation.Responses.Default() != nil)
	switch {
	case declared:
		rv := &openapi3filter.ResponseValidationInput{RequestValidationInput: input, Status: resp.StatusCode,
			Header: resp.Header, Options: &openapi3filter.Options{IncludeResponseStatus: true,
				MultiError: true, SchemaValidationOptions: c.opts}}
		rv.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), rv); err != nil {
			problems = append(problems, err.Error())
			break
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			break // not JSON: ValidateResponse judged it by the declared content
		}
		ref := input.Route.Operation.Responses.Status(resp.StatusCode)
		if ref == nil {
			ref = input.Route.Operation.Responses.Default()
		}
		if mt := ref.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
			c.missingFields(mt.Schema.Value, v, "$", &problems)
		}
	case resp.StatusCode >= 400:
		problems = append(problems, c.checkErrorResponse(resp, body)...)
	case input != nil:
		problems = append(problems, fmt.Sprintf("status %d is not declared for %s", resp.StatusCode, input.Route.Operation.OperationID))
	}
	if resp.StatusCode >= 400 {
		var e struct {
			StatusCode *int `json:"status_code"`
		}
		if json.Unmarshal(body, &e) == nil && (e.StatusCode == nil || *e.StatusCode != resp.StatusCode) {
			problems = append(problems, "status_code in the ErrorResponse is not the HTTP status")
		}
	}
	return problems
}

// checkErrorResponse checks an error the specification does not declare:
// its body must still be a JSON ErrorResponse.
func (c *contractSpec) checkErrorResponse(resp *http.Response, body []byte) []string {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return []string{fmt.Sprintf("an error answers Content-Type %q, not application/json", resp.Header.Get("Content-Type"))}
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return []string{"the error body is not JSON: " + err.Error()}
	}
	if err := c.errorRes.VisitJSON(v, append(slices.Clone(c.opts), openapi3.MultiErrors())...); err != nil {
		return []string{"the error body is not an ErrorResponse: " + err.Error()}
	}
	var problems []string
	c.missingFields(c.errorRes, v, "$", &problems)
	return problems
}

// missingFields walks v along schema s and lists the fields missing from
// objects of the contractKeepEveryField schemas. The fields of such a schema are its
// properties and those of the inline parts of its allOf (ServiceInfo's WES
// part; the service-info base it refers to has optional fields).
func (c *contractSpec) missingFields(s *openapi3.Schema, v any, at string, out *[]string) {
	if s == nil {
		return
	}
	if name, ok := c.complete[s]; ok {
		if obj, ok := v.(map[string]any); ok {
			for _, f := range contractOwnFields(s) {
				if _, has := obj[f]; !has {
					*out = append(*out, fmt.Sprintf("%s: a %s must keep every field, but %q is missing", at, name, f))
				}
			}
		}
	}
	for _, sub := range s.AllOf {
		c.missingFields(sub.Value, v, at, out)
	}
	for _, alts := range [][]*openapi3.SchemaRef{s.AnyOf, s.OneOf} {
		if len(alts) == 0 {
			continue
		}
		// The value must be complete as one of the alternatives it matches.
		var first []string
		complete := false
		for _, alt := range alts {
			if alt.Value.VisitJSON(v) != nil {
				continue
			}
			var m []string
			c.missingFields(alt.Value, v, at, &m)
			if len(m) == 0 {
				complete = true
				break
			}
			if first == nil {
				first = m
			}
		}
		if !complete {
			*out = append(*out, first...)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for _, k := range contractKeys(x) {
			if p := s.Properties[k]; p != nil {
				c.missingFields(p.Value, x[k], at+"."+k, out)
			} else if ap := s.AdditionalProperties.Schema; ap != nil {
				c.missingFields(ap.Value, x[k], at+"."+k, out)
			}
		}
	case []any:
		if s.Items != nil {
			for i, e := range x {
				c.missingFields(s.Items.Value, e, fmt.Sprintf("%s[%d]", at, i), out)
			}
		}
	}
}

func contractOwnFields(s *openapi3.Schema) []string {
	var fields []string
	for k := range s.Properties {
		fields = append(fields, k)
	}
	for _, sub := range s.AllOf {
		if sub.Ref == "" && sub.Value != nil {
			for k := range sub.Value.Properties {
				fields = append(fields, k)
			}
		}
	}
	sort.Strings(fields)
	return fields
}

func contractKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func contractTruncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "…"
	}
	return string(b)
}

// contractRecorder collects what a contractTransport reports, for the tests
// that show it catches violations.
type contractRecorder struct{ problems []string }

func (r *contractRecorder) Errorf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// TestContractTransportCatchesViolations shows that the contract transport
// fails what breaks the specification, so that the tests built on it can fail.
func TestContractTransportCatchesViolations(t *testing.T) {
	runID := "6b0d5bd4-5f8e-4c4a-9c1c-3a2f4e0b1c2d"
	tests := []struct {
		name        string
		method      string
		path        string
		status      int
		contentType string
		body        string
		want        string // part of the one problem expected; "" for none
	}{
		{"valid status", "GET", "/runs/" + runID + "/status", 200, "application/json",
			`{"run_id":"` + runID + `","state":"RUNNING"}`, ""},
		{"state outside the enum", "GET", "/runs/" + runID + "/status", 200, "application/json",
			`{"run_id":"` + runID + `","state":"DONE"}`, "DONE"},
		{"RunStatus without state", "GET", "/runs/" + runID + "/status", 200, "application/json",
			`{"run_id":"` + runID + `"}`, `"state" is missing`},
		{"RunLog whose Log drops exit_code", "GET", "/runs/" + runID, 200, "application/json",
			`{"run_id":"` + runID + `","request":{"workflow_params":{},"workflow_type":"CWL","workflow_type_version":"v1.2",` +
				`"tags":{},"workflow_engine_parameters":{},"workflow_engine":"cwltool","workflow_engine_version":"3","workflow_url":"w.cwl"},` +
				`"state":"COMPLETE","run_log":{"name":"w","cmd":[],"start_time":"","end_time":"","stdout":"","stderr":"","system_logs":[]},` +
				`"task_logs_url":"","task_logs":[],"outputs":{}}`, `"exit_code" is missing`},
		{"undeclared success", "GET", "/runs/" + runID + "/status", 202, "application/json",
			`{"run_id":"` + runID + `","state":"RUNNING"}`, "not declared"},
		{"declared error with the wrong status_code", "GET", "/runs/" + runID, 404, "application/json",
			`{"msg":"not found","status_code":400}`, "status_code"},
		{"undeclared 413 as text", "POST", "/runs", 413, "text/plain", "too large", "application/json"},
		{"undeclared 405 without msg", "PUT", "/runs", 405, "application/json",
			`{"status_code":405}`, `"msg" is missing`},
		{"undeclared 405 with a string status_code", "PUT", "/runs", 405, "application/json",
			`{"msg":"no","status_code":"405"}`, "ErrorResponse"},
		{"error of an extension path", "GET", "/runs/" + runID + "/stdout", 404, "text/plain", "404 page not found", "application/json"},
		{"success of an extension path", "GET", "/runs/" + runID + "/stdout", 200, "text/plain", "anything", ""},
		{"DELETE answers like CancelRun", "DELETE", "/runs/" + runID, 200, "application/json", `{"run_id":7}`, "run_id"},
		{"ServiceInfo with a bad organization url", "GET", "/service-info", 200, "application/json",
			`{"id":"x","name":"x","type":{"group":"org.ga4gh","artifact":"wes","version":"1.1.0"},"organization":{"name":"o","url":"not a url"},` +
				`"version":"1","workflow_type_versions":{},"supported_wes_versions":[],"supported_filesystem_protocols":[],"workflow_engine_versions":{},` +
				`"default_workflow_engine_parameters":[],"system_state_counts":{},"auth_instructions_url":"","tags":{}}`, "absolute URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			rec := &contractRecorder{}
			c := &http.Client{Transport: &contractTransport{c: contractLoad(t, srv.URL+"/ga4gh/wes/v1"),
				next: srv.Client().Transport, report: rec.Errorf}}
			req, err := http.NewRequest(tt.method, srv.URL+"/ga4gh/wes/v1"+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch {
			case tt.want == "" && len(rec.problems) > 0:
				t.Errorf("problems reported for a valid exchange:\n%s", strings.Join(rec.problems, "\n"))
			case tt.want != "" && len(rec.problems) != 1:
				t.Errorf("got %d problems, want one mentioning %q:\n%s", len(rec.problems), tt.want, strings.Join(rec.problems, "\n"))
			case tt.want != "" && !strings.Contains(rec.problems[0], tt.want):
				t.Errorf("problem %q does not mention %q", rec.problems[0], tt.want)
			}
		})
	}
}

// TestContractTransportChecksRequests shows that a request outside the specification
// is reported: an unknown multipart field of RunWorkflow.
func TestContractTransportChecksRequests(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"run_id":"x"}`)
	}))
	defer srv.Close()
	rec := &contractRecorder{}
	c := &http.Client{Transport: &contractTransport{c: contractLoad(t, srv.URL+"/ga4gh/wes/v1"),
		next: srv.Client().Transport, report: rec.Errorf}}
	body, ct := e2eMultipart(t, []e2ePart{{Name: "workflow_url", Value: "w.cwl"}, {Name: "workflow_colour", Value: "blue"}})
	resp, err := c.Post(srv.URL+"/ga4gh/wes/v1/runs", ct, body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(rec.problems) != 1 || !strings.Contains(rec.problems[0], "workflow_colour") {
		t.Errorf("want one problem about workflow_colour, got %q", rec.problems)
	}
}

// TestContractServiceInfo checks service-info beyond its schema: the type,
// a count for each of the eleven states, the engine parameters as an
// array, and an auth_instructions_url that answers with a page.
func TestContractServiceInfo(t *testing.T) {
	t.Parallel()
	requireCWLTool(t)
	env := newTestEnv(t, envOptions{})
	c := contractClient(t, env)
	var info struct {
		Type struct {
			Group, Artifact, Version string
		}
		SystemStateCounts        map[string]int64  `json:"system_state_counts"`
		DefaultEngineParameters  json.RawMessage   `json:"default_workflow_engine_parameters"`
		AuthInstructionsURL      string            `json:"auth_instructions_url"`
		WorkflowTypeVersions     map[string]any    `json:"workflow_type_versions"`
		WorkflowEngineVersions   map[string]any    `json:"workflow_engine_versions"`
		SupportedWESVersions     []string          `json:"supported_wes_versions"`
		Tags                     map[string]string `json:"tags"`
		SupportedFilesystemProto []string          `json:"supported_filesystem_protocols"`
	}
	e2eGetJSON(t, c, env.API+"/service-info", http.StatusOK, &info)
	if info.Type.Group != "org.ga4gh" || info.Type.Artifact != "wes" || info.Type.Version != "1.1.0" {
		t.Errorf("type = %+v, want org.ga4gh wes 1.1.0", info.Type)
	}
	if len(info.SystemStateCounts) != len(wes.States) {
		t.Errorf("system_state_counts has %d states, want %d: %v", len(info.SystemStateCounts), len(wes.States), info.SystemStateCounts)
	}
	for _, st := range wes.States {
		if n, ok := info.SystemStateCounts[string(st)]; !ok || n != 0 {
			t.Errorf("system_state_counts[%s] = %d, %v; want 0 on a new server", st, n, ok)
		}
	}
	if !slices.Contains(info.SupportedWESVersions, "1.1.0") {
		t.Errorf("supported_wes_versions = %q, want 1.1.0 among them", info.SupportedWESVersions)
	}
	var params []wes.DefaultParam
	if err := json.Unmarshal(info.DefaultEngineParameters, &params); err != nil || !bytes.HasPrefix(info.DefaultEngineParameters, []byte("[")) {
		t.Fatalf("default_workflow_engine_parameters is not an array: %s", info.DefaultEngineParameters)
	}
	if !slices.Contains(params, wes.DefaultParam{Name: "--parallel", Type: "bool", DefaultValue: "false"}) {
		t.Errorf("default_workflow_engine_parameters = %+v, want cwltool's --parallel among them", params)
	}
	if info.WorkflowTypeVersions["CWL"] == nil || info.WorkflowEngineVersions["cwltool"] == nil {
		t.Errorf("workflow_type_versions %v / workflow_engine_versions %v do not offer CWL with cwltool",
			info.WorkflowTypeVersions, info.WorkflowEngineVersions)
	}

	u, err := url.Parse(info.AuthInstructionsURL)
	if err != nil || !u.IsAbs() {
		t.Fatalf("auth_instructions_url %q is not an absolute URL", info.AuthInstructionsURL)
	}
	resp, err := c.Get(info.AuthInstructionsURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != "text/html" {
		t.Errorf("auth_instructions_url answers %d %q, want 200 text/html", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Contains(page, []byte(env.API)) {
		t.Errorf("the instructions page does not show the API base %s", env.API)
	}
}

// TestContractServiceInfoWithoutEngines: with no engine, the engine maps and the
// parameter list are empty, never null.
func TestContractServiceInfoWithoutEngines(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{}})
	c := contractClient(t, env)
	var info map[string]json.RawMessage
	e2eGetJSON(t, c, env.API+"/service-info", http.StatusOK, &info)
	for field, want := range map[string]string{"default_workflow_engine_parameters": "[]",
		"workflow_engine_versions": "{}", "workflow_type_versions": "{}"} {
		if got := string(info[field]); got != want {
			t.Errorf("%s = %s, want %s", field, got, want)
		}
	}
}

// TestContractAPIFallback: an unknown route under the API base is a 404
// ErrorResponse, and a known path with a wrong method a 405 ErrorResponse
// naming the allowed methods.
func TestContractAPIFallback(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{}})
	c := contractClient(t, env)
	tests := []struct {
		method, path string
		status       int
		allow        []string
	}{
		{"GET", "/no-such-endpoint", http.StatusNotFound, nil},
		{"GET", "/runs/x/y/z", http.StatusNotFound, nil},
		{"POST", "/service-info/extra", http.StatusNotFound, nil},
		{"PUT", "/runs", http.StatusMethodNotAllowed, []string{"GET", "HEAD", "POST"}},
		{"PATCH", "/service-info", http.StatusMethodNotAllowed, []string{"GET", "HEAD"}},
		{"GET", "/runs/6b0d5bd4-5f8e-4c4a-9c1c-3a2f4e0b1c2d/cancel", http.StatusMethodNotAllowed, []string{"POST"}},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, env.API+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Msg        string `json:"msg"`
			StatusCode int    `json:"status_code"`
		}
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tt.status || err != nil || e.StatusCode != tt.status || e.Msg == "" {
			t.Errorf("%s %s: %d %+v (%v), want %d and an ErrorResponse", tt.method, tt.path, resp.StatusCode, e, err, tt.status)
		}
		if tt.allow == nil {
			continue
		}
		var allow []string
		for _, m := range strings.Split(resp.Header.Get("Allow"), ",") {
			allow = append(allow, strings.TrimSpace(m))
		}
		sort.Strings(allow)
		if !slices.Equal(allow, tt.allow) {
			t.Errorf("%s %s: Allow = %q, want %q", tt.method, tt.path, resp.Header.Get("Allow"), strings.Join(tt.allow, ", "))
		}
	}
}

// TestContractErrorResponses: the errors a client meets, declared for their
// operation (400, 404) or not (413), are ErrorResponses naming their status.
func TestContractErrorResponses(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{}, MaxRequestBytes: 4096})
	c := contractClient(t, env)
	type errorResponse struct {
		Msg        string `json:"msg"`
		StatusCode int    `json:"status_code"`
	}
	post := func(parts []e2ePart) (int, errorResponse) {
		t.Helper()
		status, body := e2ePost(t, c, env, parts)
		var e errorResponse
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("POST /runs: %d %s", status, body)
		}
		return status, e
	}

	status, e := post(e2eCWLRun("w.cwl", "{}", e2eAttach("w.cwl", "class: Workflow\n")))
	if status != http.StatusBadRequest || !strings.Contains(e.Msg, "workflow_type") {
		t.Errorf("a type no engine runs: %d %+v, want 400 about workflow_type", status, e)
	}
	status, e = post(e2eCWLRun("w.cwl", "{}", e2eAttach("w.cwl", strings.Repeat("#\n", 4096))))
	if status != http.StatusRequestEntityTooLarge || e.Msg == "" {
		t.Errorf("a request over the limit: %d %+v, want 413", status, e)
	}

	for _, tt := range []struct {
		path   string
		status int
	}{
		{"/runs?page_size=0", http.StatusBadRequest},
		{"/runs?page_token=not-a-token", http.StatusBadRequest},
		{"/runs/00000000-0000-4000-8000-000000000000", http.StatusNotFound},
		{"/runs/00000000-0000-4000-8000-000000000000/status", http.StatusNotFound},
		{"/runs/00000000-0000-4000-8000-000000000000/tasks", http.StatusNotFound},
		{"/runs/00000000-0000-4000-8000-000000000000/tasks/batch", http.StatusNotFound},
		{"/runs/00000000-0000-4000-8000-000000000000/stderr", http.StatusNotFound},
		{"/runs/00000000-0000-4000-8000-000000000000/files/work/x", http.StatusNotFound},
	} {
		var e errorResponse
		e2eGetJSON(t, c, env.API+tt.path, tt.status, &e)
		if e.StatusCode != tt.status || e.Msg == "" {
			t.Errorf("GET %s: %+v, want an ErrorResponse with status_code %d", tt.path, e, tt.status)
		}
	}
}
