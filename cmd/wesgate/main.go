// Command wesgate serves the GA4GH Workflow Execution Service API and web
// pages for a Slurm cluster (or, by default, this machine).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/crypto/ssh"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/pipeline"
	"github.com/wesgate/wesgate/scheduler"
	"github.com/wesgate/wesgate/scheduler/local"
	"github.com/wesgate/wesgate/scheduler/slurm"
	"github.com/wesgate/wesgate/web"
	"github.com/wesgate/wesgate/wes"
	"github.com/wesgate/wesgate/wes/sqlite"
)

// newAuthenticator builds the configured authentication: the local
// development identity, or OIDC with browser sessions in the database.
// Goroutines it starts stop with ctx and are counted in wg.
func newAuthenticator(ctx context.Context, cfg config, db *sqlite.DB, accounts *auth.AccountPolicy, log *slog.Logger, wg *sync.WaitGroup) (auth.Authenticator, error) {
	switch cfg.Auth.Mode {
	case "local":
		authn, err := auth.NewLocal()
		if err != nil {
			return nil, fmt.Errorf("local identity: %w", err)
		}
		log.Warn("development mode: no identity provider; every request acts for the local account", "user", authn.User.Username)
		return authn, nil
	case "oidc":
		a := cfg.Auth
		if cfg.PublicURL == "" {
			return nil, errors.New("config: [auth] mode = \"oidc\" needs public_url (the login callback is public_url/auth/callback)")
		}
		var users auth.UserMap
		if a.UserMap != "" {
			var err error
			if users, err = auth.LoadUserMap(a.UserMap); err != nil {
				return nil, err
			}
		}
		sessions := scs.New()
		sessions.Store = db.Sessions()
		sessions.Lifetime = a.SessionLifetime.Duration
		sessions.IdleTimeout = min(a.SessionLifetime.Duration, 2*time.Hour)
		sessions.Cookie.Name = web.SessionCookie
		sessions.Cookie.HttpOnly = true
		sessions.Cookie.SameSite = http.SameSiteLaxMode
		sessions.Cookie.Secure = !a.InsecureCookies
		sessions.Cookie.Path = "/"
		sessions.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
			log.Error("session", "err", err)
			http.Error(w, "internal server error", http.StatusInternalServerError)
		}
		wg.Go(func() { db.Sessions().Cleanup(ctx, 10*time.Minute) })
		o, err := auth.NewOIDC(ctx, auth.OIDCConfig{Issuer: a.Issuer, ClientID: a.ClientID, ClientSecret: a.ClientSecret,
			Audiences: a.Audiences, UsernameClaim: a.UsernameClaim, GroupsClaim: a.GroupsClaim, AdminGroup: a.AdminGroup,
			RequiredScope: a.RequiredScope, PublicURL: cfg.PublicURL, Users: users, Accounts: accounts}, sessions, log.With("component", "auth"))
		if err != nil {
			return nil, err
		}
		log.Info("authentication: OIDC", "issuer", a.Issuer, "client_id", a.ClientID, "admin_group", a.AdminGroup)
		return o, nil
	}
	return nil, fmt.Errorf("config: [auth] mode %q is not known (local or oidc)", cfg.Auth.Mode)
}

// newScheduler builds the configured executor. It returns how long a job may
// be unknown to it before its run is settled, and a function that stops it.
func newScheduler(cfg config, dataDir string, wake func(), reg prometheus.Registerer, log *slog.Logger) (wes.Scheduler, time.Duration, func(), error) {
	switch cfg.Executor.Kind {
	case "local":
		exec := local.New(local.Config{RunsDir: filepath.Join(dataDir, "runs"), MaxJobs: cfg.Executor.MaxJobs,
			Grace: cfg.Executor.CancelGrace.Duration, OnChange: wake}, log.With("component", "local"))
		return exec, 0, exec.Close, nil
	case "slurm":
		sc := cfg.Slurm
		if sc.SSHAddr == "" || sc.User == "" || sc.KeyFile == "" || sc.KnownHosts == "" || sc.RemoteBase == "" {
			return nil, 0, nil, errors.New("config: [slurm] needs ssh_addr, user, key_file, known_hosts and remote_base")
		}
		signer, err := loadKey(sc.KeyFile)
		if err != nil {
			return nil, 0, nil, err
		}
		creds := func(account string) (slurm.Credentials, error) {
			return slurm.Credentials{User: sc.User, Signer: signer}, nil
		}
		if sc.PerUser {
			if sc.UserCAKey == "" {
				return nil, 0, nil, errors.New("config: [slurm] per_user needs user_ca_key")
			}
			if err := checkPrivateKey("slurm user_ca_key", sc.UserCAKey); err != nil {
				return nil, 0, nil, err
			}
			ca, err := slurm.NewCertAuthority(sc.UserCAKey, sc.CertTTL.Duration, certOptions(cfg)...)
			if err != nil {
				return nil, 0, nil, err
			}
			// The service account (sinfo, engine versions) keeps its key;
			// everyone else gets a short-lived certificate.
			creds = func(account string) (slurm.Credentials, error) {
				if account == sc.User {
					return slurm.Credentials{User: sc.User, Signer: signer}, nil
				}
				return ca.Credentials(account)
			}
		}
		metrics := slurm.NewMetrics(reg)
		pool, err := slurm.NewPool(slurm.SSHConfig{
			Addr: sc.SSHAddr, KnownHosts: sc.KnownHosts, MaxSessions: sc.MaxSessions, Credentials: creds,
			Metrics: metrics,
		}, log.With("component", "ssh"))
		if err != nil {
			return nil, 0, nil, err
		}
		exec, err := slurm.New(slurm.Config{Cluster: sc.Cluster, Base: sc.RemoteBase, DefaultPartition: sc.DefaultPartition,
			ServiceAccount: sc.User, PerUser: sc.PerUser, Metrics: metrics},
			pool, log.With("component", "slurm"))
		if err != nil {
			pool.Close()
			return nil, 0, nil, err
		}
		return exec, sc.GoneGrace.Duration, pool.Close, nil
	}
	return nil, 0, nil, fmt.Errorf("config: executor kind %q is not known (local or slurm)", cfg.Executor.Kind)
}

// pipelineConfig is the run pipeline's part of the configuration.
func pipelineConfig(cfg config) pipeline.Config {
	pc := pipeline.Config{
		PollInterval: cfg.Runs.PollInterval.Duration, FastPoll: cfg.Runs.FastPoll.Duration,
		HotFor: cfg.Runs.HotFor.Duration, CommandTimeout: cfg.Runs.CommandTimeout.Duration,
		CollectTimeout: cfg.Runs.CollectTimeout.Duration, MaxBatch: cfg.Runs.MaxBatch,
		SettleWorkers: cfg.Runs.SettleWorkers, MaxUserBytes: cfg.Runs.MaxUserBytes,
		Collect:     scheduler.CollectLimits{MaxFiles: cfg.Runs.MaxCollectFiles},
		CancelGrace: cfg.Executor.CancelGrace.Duration,
	}
	if cfg.Executor.Kind == "slurm" {
		pc.GoneGrace = cfg.Slurm.GoneGrace.Duration
		pc.CancelGrace = cfg.Slurm.CancelGrace.Duration
		pc.Collect.MaxBytes = cfg.Slurm.MaxCollectBytes
	}
	return pc
}

// detectLater retries, once a minute, the engines whose version could not be
// detected because the cluster was unreachable at start, and offers each as
// soon as it answers.
func detectLater(ctx context.Context, engines []wes.Engine, run wes.VersionRunner, svc *wes.Service, log *slog.Logger) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for len(engines) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var still []wes.Engine
		for _, e := range engines {
			err := e.DetectWith(ctx, run)
			switch {
			case err == nil:
				log.Info("engine offered", "engine", e.Name, "version", e.Version)
				svc.AddEngine(e)
			case errors.Is(err, slurm.ErrUnreachable):
				still = append(still, e)
			default:
				log.Info("engine not offered", "engine", e.Name, "reason", err)
			}
		}
		engines = still
	}
}

// versionRunner runs engine version commands where jobs run: on the
// cluster for Slurm, here for the local executor.
func versionRunner(sched wes.Scheduler) wes.VersionRunner {
	if r, ok := sched.(interface {
		EngineVersion(ctx context.Context, setup, cmd []string) ([]byte, error)
	}); ok {
		return r.EngineVersion
	}
	return wes.LocalVersion
}

// loadKey reads an unencrypted SSH private key.
func loadKey(path string) (ssh.Signer, error) {
	if err := checkPrivateKey("slurm key_file", path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("slurm key_file: %w", err)
	}
	signer, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("slurm key_file %s: %w", path, err)
	}
	return signer, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := exitCode(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `wesgate serves the GA4GH WES 1.1.0 API and web pages for workflow runs.

Usage:
  wesgate [serve] [flags]
  wesgate version
  wesgate check-config [--config F] [--reach]
  wesgate backup [--config F] [--data D] DEST

With no flags it listens on 127.0.0.1:8080, keeps its data in ./wesgate-data
and runs workflows on this machine with the engines found on PATH.

Flags (each also read from the environment variable shown):
`

// run is the whole program: it reads the configuration, builds every part,
// serves until ctx ends, and shuts down in order.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			args = args[1:]
		case "version":
			return runVersion(args[1:], stdout, stderr)
		case "check-config":
			return runCheckConfig(ctx, args[1:], getenv, stdout, stderr)
		case "backup":
			return runBackup(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("wesgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "listen address (WESGATE_ADDR; default 127.0.0.1:8080)")
	data := fs.String("data", "", "data directory: database and run directories (WESGATE_DATA; default ./wesgate-data)")
	cfgPath := fs.String("config", "", "configuration file, TOML (WESGATE_CONFIG; see wesgate.example.toml)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *showVersion {
		printVersion(stdout)
		return nil
	}
	cfg := defaultConfig()
	if err := loadConfig(firstOf(*cfgPath, getenv("WESGATE_CONFIG")), &cfg); err != nil {
		return err
	}
	cfg.Addr = firstOf(*addr, getenv("WESGATE_ADDR"), cfg.Addr)
	cfg.Data = firstOf(*data, getenv("WESGATE_DATA"), cfg.Data)

	log, err := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	if err := loadClientSecret(&cfg, firstOf(*cfgPath, getenv("WESGATE_CONFIG")), getenv, log); err != nil {
		return err
	}

	loop, err := isLoopback(cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.Auth.Mode == "local" && !loop {
		// Without an identity provider every request acts for the local
		// account, so only this machine may connect.
		return fmt.Errorf("refusing to listen on %s: without authentication configured ([auth] mode = \"oidc\") wesgate serves only loopback addresses (127.0.0.1, ::1, localhost)", cfg.Addr)
	}
	if err := checkIsolation(cfg, log); err != nil {
		return err
	}

	dataDir, err := filepath.Abs(cfg.Data)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if strings.ContainsAny(dataDir, " \t\n'\"$`\\;&|<>(){}*?!#~") {
		return fmt.Errorf("data directory %q: use a path of plain characters (it appears in batch scripts)", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := checkWritable(dataDir); err != nil {
		return err
	}
	unlock, err := lockDataDir(dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	db, err := sqlite.Open(ctx, filepath.Join(dataDir, "wesgate.db"))
	if err != nil {
		return err
	}
	defer db.Close()

	// The pipeline looks at the runs at once when one is created or
	// cancelled (the service signals) or a local job ends (the executor does).
	wakeups := make(chan struct{}, 1)
	wake := func() {
		select {
		case wakeups <- struct{}{}:
		default:
		}
	}
	switch cfg.Metrics.Access {
	case web.MetricsLoopback, web.MetricsAdmins, web.MetricsAnonymous, "off":
	default:
		return fmt.Errorf("config: [metrics] access must be loopback, admins, anonymous or off")
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sched, goneGrace, closeSched, err := newScheduler(cfg, dataDir, wake, registry, log)
	if err != nil {
		return err
	}
	defer closeSched()

	engines, err := cfg.engines()
	if err != nil {
		return err
	}
	var offered, later []wes.Engine
	for _, e := range engines {
		if err := e.DetectWith(ctx, versionRunner(sched)); err != nil {
			if errors.Is(err, slurm.ErrUnreachable) {
				// The cluster is away: try again in the background.
				later = append(later, e)
			}
			log.Info("engine not offered", "engine", e.Name, "reason", err)
			continue
		}
		log.Info("engine offered", "engine", e.Name, "version", e.Version)
		offered = append(offered, e)
	}

	watch := wes.NewWatch()
	var fetcher *wes.Fetcher
	if cfg.WorkflowURL.Fetch == nil || *cfg.WorkflowURL.Fetch {
		fetcher = wes.NewFetcher(cfg.WorkflowURL.Timeout.Duration, cfg.WorkflowURL.AllowPrivate)
	}
	limits := wes.DefaultLimits
	setIf(&limits.MaxAttachments, cfg.Limits.MaxAttachments)
	setIf(&limits.MaxFieldBytes, cfg.Limits.MaxFieldBytes)
	setIf(&limits.MaxWorkflowBytes, cfg.Limits.MaxWorkflowBytes)
	setIf(&limits.MaxJSONDepth, cfg.Limits.MaxJSONDepth)
	svc, err := wes.NewService(ctx, wes.Config{
		DataDir: dataDir,
		Engines: offered,
		Limits:  limits,
		UserLimits: wes.UserLimits{MaxActiveRuns: cfg.Limits.MaxActiveRunsPerUser, AdminsExempt: cfg.Limits.AdminsExempt,
			MaxSubmissionsPerMinute: cfg.Limits.MaxSubmissionsPerMinutePerUser, MaxAttachmentBytes: cfg.Limits.MaxAttachmentBytesPerUser},
		Info: wes.Info{ID: cfg.Service.ID, Name: cfg.Service.Name, Description: cfg.Service.Description,
			OrganizationName: cfg.Service.OrganizationName, OrganizationURL: cfg.Service.OrganizationURL,
			ContactURL: cfg.Service.ContactURL, DocumentationURL: cfg.Service.DocumentationURL,
			Environment: cfg.Service.Environment, Version: buildVersion(), CreatedAt: time.Now()},
		FileURLPrefixes: cfg.WorkflowURL.FilePrefixes,
		Fetcher:         fetcher,
		PollInterval:    cfg.Runs.PollInterval.Duration,
		DefaultPageSize: cfg.Runs.DefaultPageSize,
		MaxPageSize:     cfg.Runs.MaxPageSize,
		GoneGrace:       goneGrace,
		Metrics:         registry,
		Watch:           watch,
		Wakeups:         wakeups,
	}, db, sched, log.With("component", "wes"))
	if err != nil {
		return err
	}
	pipe := pipeline.New(pipelineConfig(cfg), db, sched, svc, watch, pipeline.NewMetrics(registry),
		log.With("component", "pipeline"))

	// Every goroutine below stops when bgCtx ends and is waited for, on
	// every way out of run.
	var wg sync.WaitGroup
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer func() {
		stopBackground()
		wg.Wait()
	}()
	if len(later) > 0 {
		wg.Go(func() { detectLater(bgCtx, later, versionRunner(sched), svc, log) })
	}
	authn, err := newAuthenticator(bgCtx, cfg, db, accountPolicy(cfg, sched), log, &wg)
	if err != nil {
		return err
	}
	webCfg := web.Config{PublicURL: cfg.PublicURL, MaxRequestBytes: cfg.MaxRequestBytes, Registry: registry,
		MetricsAccess: cfg.Metrics.Access}
	if cfg.Metrics.Access != "off" {
		webCfg.Metrics = promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
	}
	handler := web.NewServer(webCfg, svc, authn, log.With("component", "web"))

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.Duration,
		ReadTimeout:       cfg.ReadTimeout.Duration, // large uploads take time; slower clients are cut off
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	wg.Go(func() { pipe.Run(bgCtx) })
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	log.Info("wesgate listening", "url", "http://"+ln.Addr().String()+"/", "data", dataDir, "executor", sched.Name(),
		"engines", len(offered))
	fmt.Fprintf(stdout, "wesgate listening on http://%s/ (WES API at http://%s/ga4gh/wes/v1)\n", ln.Addr(), ln.Addr())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-serveErr:
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	return runErr // the deferred stopBackground ends the monitor and the session cleanup
}

// checkWritable fails clearly when the data directory cannot be written
// (a read-only or full disk), before the database reports it obscurely.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-check-")
	if err == nil {
		_, err = f.Write([]byte("ok"))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		os.Remove(f.Name())
	}
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	return nil
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func setIf[T int | int64](dst *T, v T) {
	if v > 0 {
		*dst = v
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("config: log_level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("config: log_format must be text or json")
}
