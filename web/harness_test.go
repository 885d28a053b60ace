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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/pipeline"
	"golang.org/x/crypto/ssh"

	"github.com/wesgate/wesgate/scheduler/local"
	"github.com/wesgate/wesgate/scheduler/slurm"
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
	UserLimits      wes.UserLimits
	PollInterval    time.Duration
	Fetcher         *wes.Fetcher
	FilePrefixes    []string
	MaxJobs         int
	Log             io.Writer // nil: discard
	// Slurm runs jobs on the lab's Slurm cluster over SSH (see requireLab)
	// instead of the local executor.
	Slurm *labEnv
	// GoneGrace is passed to the service (Slurm only).
	GoneGrace time.Duration
	// Pipeline adjusts the run pipeline's configuration.
	Pipeline func(*pipeline.Config)
	// Auth builds the authenticator on the env's database (nil: the local
	// development identity).
	Auth func(t testing.TB, db *sqlite.DB) auth.Authenticator
	// MetricsAccess, when set, registers and serves Prometheus metrics with
	// this access mode (web.MetricsLoopback, ...).
	MetricsAccess string
	// Scheduler, when set, replaces the executor (for example a Slurm
	// executor in per-user mode).
	Scheduler func(t testing.TB, log *slog.Logger) wes.Scheduler
}

// labEnv is the Slurm lab as lab/up.sh describes it in lab/env.sh.
type labEnv struct {
	SSHAddr, KnownHosts          string
	SvcUser, SvcKey              string
	User1, Key1, User2, Key2     string
	CAKey, Partition, Partition2 string
	Base, State                  string
}

// requireLab returns the running Slurm lab, or skips the test (fails it with
// WESGATE_REQUIRE_LAB=1) when the lab is not up: run `bash lab/up.sh`.
func requireLab(t testing.TB) *labEnv {
	t.Helper()
	l := &labEnv{
		SSHAddr: os.Getenv("WESGATE_LAB_SSH_ADDR"), KnownHosts: os.Getenv("WESGATE_LAB_KNOWN_HOSTS"),
		SvcUser: os.Getenv("WESGATE_LAB_SVC_USER"), SvcKey: os.Getenv("WESGATE_LAB_SVC_KEY"),
		User1: os.Getenv("WESGATE_LAB_USER1"), Key1: os.Getenv("WESGATE_LAB_KEY1"),
		User2: os.Getenv("WESGATE_LAB_USER2"), Key2: os.Getenv("WESGATE_LAB_KEY2"),
		CAKey: os.Getenv("WESGATE_LAB_CA_KEY"), Partition: os.Getenv("WESGATE_LAB_PARTITION"),
		Partition2: os.Getenv("WESGATE_LAB_PARTITION2"), Base: os.Getenv("WESGATE_LAB_BASE"),
		State: os.Getenv("WESGATE_LAB_STATE"),
	}
	if l.SSHAddr == "" || l.SvcKey == "" {
		if os.Getenv("WESGATE_REQUIRE_LAB") == "1" {
			t.Fatal("the Slurm lab is required (WESGATE_REQUIRE_LAB=1) but WESGATE_LAB_* is not set: run lab/up.sh and source lab/env.sh")
		}
		t.Skip("Slurm lab not up: run `bash lab/up.sh` and `. lab/env.sh` to run this test")
	}
	return l
}

// newLabScheduler connects to the lab as its service account.
func newLabScheduler(t testing.TB, l *labEnv, log *slog.Logger) *slurm.Executor {
	t.Helper()
	b, err := os.ReadFile(l.SvcKey)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := slurm.NewPool(slurm.SSHConfig{Addr: l.SSHAddr, KnownHosts: l.KnownHosts,
		Credentials: func(string) (slurm.Credentials, error) {
			return slurm.Credentials{User: l.SvcUser, Signer: signer}, nil
		}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	exec, err := slurm.New(slurm.Config{Cluster: "lab", Base: l.Base + "/" + l.SvcUser, DefaultPartition: l.Partition,
		ServiceAccount: l.SvcUser}, pool, log)
	if err != nil {
		t.Fatal(err)
	}
	return exec
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
	var registry *prometheus.Registry
	var reg prometheus.Registerer // stays a nil interface without metrics
	if o.MetricsAccess != "" {
		registry = prometheus.NewRegistry()
		reg = registry
	}
	var sched wes.Scheduler
	if o.Scheduler != nil {
		sched = o.Scheduler(t, log)
	} else if o.Slurm != nil {
		sched = newLabScheduler(t, o.Slurm, log)
	} else {
		exec := local.New(local.Config{RunsDir: filepath.Join(data, "runs"), MaxJobs: o.MaxJobs, Grace: 3 * time.Second,
			OnChange: func() {
				select {
				case wake <- struct{}{}:
				default:
				}
			}}, log)
		t.Cleanup(exec.Close)
		sched = exec
	}
	poll := o.PollInterval
	if poll == 0 {
		poll = 200 * time.Millisecond
	}
	watch := wes.NewWatch()
	svc, err = wes.NewService(ctx, wes.Config{
		DataDir: data, Engines: engines, Limits: o.Limits, UserLimits: o.UserLimits, PollInterval: poll,
		Info:    wes.Info{ID: "org.ga4gh.wesgate.test", Name: "wesgate test", OrganizationName: "Test University", OrganizationURL: "https://example.org", Version: "test"},
		Fetcher: o.Fetcher, FileURLPrefixes: o.FilePrefixes, Metrics: reg,
		GoneGrace: o.GoneGrace, Watch: watch,
	}, db, sched, log)
	if err != nil {
		t.Fatal(err)
	}
	pc := pipeline.Config{PollInterval: poll, GoneGrace: o.GoneGrace, CancelGrace: 5 * time.Second}
	if o.Pipeline != nil {
		o.Pipeline(&pc)
	}
	pipe := pipeline.New(pc, db, sched, svc, watch, pipeline.NewMetrics(reg), log)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe.Run(ctx)
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
	var authn auth.Authenticator
	if o.Auth != nil {
		authn = o.Auth(t, db)
	} else {
		local, err := auth.NewLocal()
		if err != nil {
			t.Fatal(err)
		}
		authn = local
	}
	webCfg := web.Config{MaxRequestBytes: o.MaxRequestBytes}
	if o.MetricsAccess != "" {
		webCfg.Registry, webCfg.MetricsAccess = reg, o.MetricsAccess
		webCfg.Metrics = promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
	}
	srv := httptest.NewServer(web.NewServer(webCfg, svc, authn, log))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		db.Close()
	})
	return &testEnv{URL: srv.URL, API: srv.URL + "/ga4gh/wes/v1", Data: data, Service: svc, DB: db, Server: srv}
}
