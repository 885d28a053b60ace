package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/scheduler/local"
	"github.com/wesgate/wesgate/web"
	"github.com/wesgate/wesgate/wes"
	"github.com/wesgate/wesgate/wes/sqlite"
)

// testEnv is a real wesgate over HTTP: real SQLite in a temporary
// directory, the local executor, and the engines found on PATH.
type testEnv struct {
	URL     string // base URL of the server
	API     string // URL + "/ga4gh/wes/v1"
	Data    string // the data directory
	Service *wes.Service
	DB      *sqlite.DB
	Server  *httptest.Server
}

// envOptions adjust a testEnv.
type envOptions struct {
	Engines         []wes.Engine // nil: detect the default engines
	MaxRequestBytes int64
	Limits          wes.Limits
	PollInterval    time.Duration
	Fetcher         *wes.Fetcher
	FilePrefixes    []string
	MaxJobs         int
	Log             io.Writer // nil: discard
}

// requireCWLTool skips (or, with WESGATE_REQUIRE_LAB=1, fails) a test that
// needs Debian's cwltool.
func requireCWLTool(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("cwltool"); err != nil {
		if os.Getenv("WESGATE_REQUIRE_LAB") == "1" {
			t.Fatalf("cwltool is required (WESGATE_REQUIRE_LAB=1) but not on PATH: apt-get install cwltool")
		}
		t.Skip("cwltool not on PATH; install Debian's cwltool package to run this test")
	}
}

// newTestEnv starts a server that stops when the test ends.
func newTestEnv(t testing.TB, o envOptions) *testEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	data := t.TempDir()
	w := o.Log
	if w == nil {
		w = io.Discard
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	engines := o.Engines
	if engines == nil {
		for _, e := range wes.DefaultEngines() {
			if e.Detect(ctx) == nil {
				engines = append(engines, e)
			}
		}
	}
	db, err := sqlite.Open(ctx, filepath.Join(data, "wesgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	var svc *wes.Service
	wake := make(chan struct{}, 1)
	exec := local.New(local.Config{RunsDir: filepath.Join(data, "runs"), MaxJobs: o.MaxJobs, Grace: 3 * time.Second,
		OnChange: func() {
			select {
			case wake <- struct{}{}:
			default:
			}
		}}, log)
	poll := o.PollInterval
	if poll == 0 {
		poll = 200 * time.Millisecond
	}
	svc, err = wes.NewService(ctx, wes.Config{
		DataDir: data, Engines: engines, Limits: o.Limits, PollInterval: poll,
		Info:    wes.Info{ID: "org.ga4gh.wesgate.test", Name: "wesgate test", OrganizationName: "Test University", OrganizationURL: "https://example.org", Version: "test"},
		Fetcher: o.Fetcher, FileURLPrefixes: o.FilePrefixes,
	}, db, exec, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(ctx)
	}()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-wake:
				svc.Wake()
			}
		}
	}()
	authn, err := auth.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.NewServer(web.Config{MaxRequestBytes: o.MaxRequestBytes}, svc, authn, log))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		exec.Close()
		db.Close()
	})
	return &testEnv{URL: srv.URL, API: srv.URL + "/ga4gh/wes/v1", Data: data, Service: svc, DB: db, Server: srv}
}
