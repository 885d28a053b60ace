package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wesgate/wesgate/web"
	"github.com/wesgate/wesgate/wes"
)

func obGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// obEngine is a stand-in engine that ends at once.
func obEngine(t *testing.T) []wes.Engine {
	t.Helper()
	e := wes.Engine{Name: "cwltool", Types: map[string][]string{"CWL": {"v1.2"}},
		Command: []string{"/bin/true"}, VersionCommand: []string{"/bin/echo", "3.1"}, Outputs: wes.OutputsWorkdir}
	if err := e.Detect(t.Context()); err != nil {
		t.Fatal(err)
	}
	return []wes.Engine{e}
}

func TestObserveHealthReadyMetricsAndLogs(t *testing.T) {
	logs := &syncBuffer{}
	env := newTestEnv(t, envOptions{Engines: obEngine(t), MetricsAccess: web.MetricsLoopback, Log: logs})

	if code, body := obGet(t, env.URL+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("healthz: %d %q", code, body)
	}
	// Ready once the database answers and the executor has been reached.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := obGet(t, env.URL+"/readyz")
		var r struct {
			Ready    bool     `json:"ready"`
			Problems []string `json:"problems"`
		}
		json.Unmarshal([]byte(body), &r)
		if code == 200 && r.Ready && len(r.Problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz never ready: %d %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Requests, then the metrics count them by route pattern and status.
	resp, err := http.Post(env.API+"/runs", "application/json", strings.NewReader(
		`{"workflow_type":"CWL","workflow_type_version":"v1.2","workflow_url":"https://example.org/wf.cwl"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // refused (the fetcher is off): a 400 to count
	obGet(t, env.API+"/runs/00000000-0000-4000-8000-000000000000/status")
	code, metrics := obGet(t, env.URL+"/metrics")
	if code != 200 {
		t.Fatalf("metrics from loopback: %d", code)
	}
	for _, want := range []string{
		`wesgate_runs{state="COMPLETE"} 0`,
		`wesgate_http_requests_total{method="POST",route="POST /ga4gh/wes/v1/runs",status="400"} 1`,
		`wesgate_http_requests_total{method="GET",route="GET /ga4gh/wes/v1/runs/{run_id}/status",status="404"} 1`,
		`wesgate_poll_duration_seconds_count`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// One log line per request, with the route pattern, never the raw path's id.
	if !strings.Contains(string(logs.Bytes()), `msg=request`) || !strings.Contains(string(logs.Bytes()), `route="GET /ga4gh/wes/v1/runs/{run_id}/status" status=404`) {
		t.Errorf("no request log line with the route pattern:\n%s", string(logs.Bytes()))
	}
}

func TestObserveMetricsAccess(t *testing.T) {
	// From loopback but through a proxy: refused in loopback mode, whichever
	// header the proxy uses to say so.
	env := newTestEnv(t, envOptions{Engines: obEngine(t), MetricsAccess: web.MetricsLoopback})
	for _, h := range [][2]string{
		{"X-Forwarded-For", "203.0.113.9"}, {"X-Forwarded-Host", "wes.example.org"}, {"X-Forwarded-Proto", "https"},
		{"Forwarded", "for=203.0.113.9;proto=https"}, {"X-Real-IP", "203.0.113.9"}, {"X-Client-IP", "203.0.113.9"},
		{"True-Client-IP", "203.0.113.9"}, {"CF-Connecting-IP", "203.0.113.9"}, {"Fastly-Client-IP", "203.0.113.9"},
		{"X-Cluster-Client-IP", "203.0.113.9"}, {"Via", "1.1 proxy"}, {"x-real-ip", "203.0.113.9"},
	} {
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/metrics", nil)
		req.Header[h[0]] = []string{h[1]} // as sent, not canonicalized
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "loopback") {
			t.Errorf("metrics request with %s: %d %s, want 403", h[0], resp.StatusCode, b)
		}
	}
	// Other headers do not count.
	req, _ := http.NewRequest(http.MethodGet, env.URL+"/metrics", nil)
	req.Header.Set("X-Request-Id", "abc")
	req.Header.Set("User-Agent", "Prometheus/3.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("plain metrics request from loopback: %d, want 200", resp.StatusCode)
	}
	// Without metrics configured there is no such endpoint.
	plain := newTestEnv(t, envOptions{Engines: obEngine(t)})
	if code, _ := obGet(t, plain.URL+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("metrics without configuration: %d, want 404", code)
	}
}

// TestEngineOfferedLater: an engine detected after start (the cluster was
// away) is offered in service-info and accepted for runs from then on.
func TestEngineOfferedLater(t *testing.T) {
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{}})
	body := `{"workflow_type":"CWL","workflow_type_version":"v1.2","workflow_url":"https://example.org/wf.cwl"}`
	resp, err := http.Post(env.API+"/runs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "workflow_type") {
		t.Fatalf("before: %d %s, want 400 about workflow_type", resp.StatusCode, b)
	}
	env.Service.AddEngine(obEngine(t)[0])
	_, info := obGet(t, env.API+"/service-info")
	if !strings.Contains(info, `"cwltool":{"workflow_engine_version":["3.1"]}`) {
		t.Fatalf("service-info does not offer the engine: %s", info)
	}
	resp, err = http.Post(env.API+"/runs", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	// Now the type is known; what is left is that http URLs are not fetched here.
	if strings.Contains(string(b), "workflow_type") || !strings.Contains(string(b), "workflow_url") {
		t.Fatalf("after: %d %s, want only a workflow_url problem", resp.StatusCode, b)
	}
}
