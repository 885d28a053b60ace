package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/scheduler/slurm"
	"github.com/wesgate/wesgate/web"
)

// errConfigInvalid reports that check-config found problems; they have
// been written to stderr, so main only exits with status 2.
var errConfigInvalid = errors.New("the configuration has problems")

// runCheckConfig is `wesgate check-config`: it reads the configuration the
// way serve does, checks everything that can be checked without starting
// (values, files, the keys' permissions) and lists every problem found.
// It opens no database and listens nowhere; it contacts the identity
// provider and the cluster only with --reach.
func runCheckConfig(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("wesgate check-config", flag.ContinueOnError)
	flags.SetOutput(stderr)
	cfgPath := flags.String("config", "", "configuration file, TOML (WESGATE_CONFIG)")
	reach := flags.Bool("reach", false, "also reach the identity provider (OIDC discovery) and the cluster (SSH login as [slurm] user, sinfo --version)")
	flags.Usage = func() {
		fmt.Fprint(stderr, "Usage: wesgate check-config [--config F] [--reach]\n\n"+
			"Checks the configuration without starting wesgate: exit 0 when it is usable, 2 with each problem.\n"+
			"With --reach it also contacts the identity provider and the cluster, each within 20 s.\n\n")
		flags.PrintDefaults()
	}
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	path := firstOf(*cfgPath, getenv("WESGATE_CONFIG"))
	name := path
	if name == "" {
		name = "the embedded defaults"
	}
	cfg := defaultConfig()
	if err := loadConfig(path, &cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return errConfigInvalid
	}
	cfg.Addr = firstOf(getenv("WESGATE_ADDR"), cfg.Addr)
	cfg.Data = firstOf(getenv("WESGATE_DATA"), cfg.Data)
	problems := checkConfig(cfg)
	if *reach && len(problems) == 0 {
		problems = reachServices(ctx, cfg, stdout)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "%s: %s\n", name, p)
		}
		fmt.Fprintf(stderr, "%s: %d problem(s)\n", name, len(problems))
		return errConfigInvalid
	}
	fmt.Fprintf(stdout, "%s: OK (listen %s, data %s, executor %s, auth %s)\n", name, cfg.Addr, cfg.Data,
		cfg.Executor.Kind, cfg.Auth.Mode)
	return nil
}

// checkConfig returns every problem with a configuration that serve would
// refuse, or that would fail later (files that cannot be read, private keys
// others may read). The wording names the key to change.
func checkConfig(cfg config) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if _, err := newLogger(io.Discard, cfg.LogLevel, cfg.LogFormat); err != nil {
		add("%v", strings.TrimPrefix(err.Error(), "config: "))
	}
	if loop, err := isLoopback(cfg.Addr); err != nil {
		add("addr: %v", err)
	} else if cfg.Auth.Mode == "local" && !loop {
		add("addr %s is not a loopback address: without an identity provider ([auth] mode = \"oidc\") wesgate serves only loopback addresses", cfg.Addr)
	}
	if dir, err := filepath.Abs(cfg.Data); err != nil {
		add("data: %v", err)
	} else if strings.ContainsAny(dir, " \t\n'\"$`\\;&|<>(){}*?!#~") {
		add("data %q: use a path of plain characters (it appears in batch scripts)", dir)
	}
	switch cfg.Metrics.Access {
	case web.MetricsLoopback, web.MetricsAdmins, web.MetricsAnonymous, "off":
	default:
		add("[metrics] access %q: must be loopback, admins, anonymous or off", cfg.Metrics.Access)
	}
	if cfg.Runs.PollInterval.Duration <= 0 {
		add("[runs] poll_interval must be positive")
	}

	switch a := cfg.Auth; a.Mode {
	case "local":
	case "oidc":
		if cfg.PublicURL == "" {
			add("public_url is needed with [auth] mode = \"oidc\" (the login callback is public_url/auth/callback)")
		} else if u, err := url.Parse(cfg.PublicURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			add("public_url %q: want an absolute http(s) URL", cfg.PublicURL)
		} else if u.Scheme == "http" && !a.InsecureCookies && u.Hostname() != "localhost" && u.Hostname() != "127.0.0.1" {
			add("public_url %q is http, but session cookies are Secure: browsers will not keep them; serve https (see docs/deploy/nginx.md) or set [auth] insecure_cookies = true for a test", cfg.PublicURL)
		}
		if a.Issuer == "" {
			add("[auth] issuer is needed with mode = \"oidc\"")
		}
		if a.ClientID == "" {
			add("[auth] client_id is needed with mode = \"oidc\"")
		}
		if a.UserMap != "" {
			if _, err := auth.LoadUserMap(a.UserMap); err != nil {
				add("[auth] user_map: %v", err)
			}
		}
	default:
		add("[auth] mode %q: must be local or oidc", a.Mode)
	}

	switch sc := cfg.Slurm; cfg.Executor.Kind {
	case "local":
		if cfg.Executor.MaxJobs < 1 {
			add("[executor] max_jobs must be at least 1")
		}
	case "slurm":
		for _, k := range []struct{ key, val string }{{"ssh_addr", sc.SSHAddr}, {"user", sc.User},
			{"key_file", sc.KeyFile}, {"known_hosts", sc.KnownHosts}, {"remote_base", sc.RemoteBase}} {
			if k.val == "" {
				add("[slurm] %s is needed with [executor] kind = \"slurm\"", k.key)
			}
		}
		if sc.KeyFile != "" {
			if _, err := loadKey(sc.KeyFile); err != nil { // permissions included
				add("[slurm] %v", err)
			}
		}
		if sc.KnownHosts != "" {
			if _, err := knownhosts.New(sc.KnownHosts); err != nil {
				add("[slurm] known_hosts: %v", err)
			}
		}
		if sc.RemoteBase != "" && !strings.HasPrefix(sc.RemoteBase, "/") {
			add("[slurm] remote_base %q: want an absolute path on the cluster", sc.RemoteBase)
		}
		if sc.PerUser {
			if sc.UserCAKey == "" {
				add("[slurm] per_user needs user_ca_key")
			} else if err := checkPrivateKey("slurm user_ca_key", sc.UserCAKey); err != nil {
				add("[slurm] %v", err)
			} else if _, err := slurm.NewCertAuthority(sc.UserCAKey, sc.CertTTL.Duration); err != nil {
				add("[slurm] %v", err)
			}
		}
	default:
		add("[executor] kind %q: must be local or slurm", cfg.Executor.Kind)
	}

	if _, err := cfg.engines(); err != nil {
		add("%s", strings.TrimPrefix(err.Error(), "config: "))
	}
	return problems
}

// reachServices contacts what the configuration names, as serve would at
// start: the identity provider's discovery document (its issuer must match)
// and the cluster's login node (host key, the service account's key, Slurm
// on PATH). It reports what answered on stdout and returns the problems.
func reachServices(ctx context.Context, cfg config, stdout io.Writer) []string {
	var problems []string
	if cfg.Auth.Mode == "oidc" {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		if _, err := oidc.NewProvider(ctx, cfg.Auth.Issuer); err != nil {
			problems = append(problems, fmt.Sprintf("[auth] issuer %s: %v", cfg.Auth.Issuer, err))
		} else {
			fmt.Fprintf(stdout, "identity provider %s: discovery OK\n", cfg.Auth.Issuer)
		}
		cancel()
	}
	if cfg.Executor.Kind == "slurm" {
		sc := cfg.Slurm
		out, err := reachCluster(ctx, sc.SSHAddr, sc.KnownHosts, sc.User, sc.KeyFile)
		if err != nil {
			problems = append(problems, fmt.Sprintf("[slurm] %s as %s: %v", sc.SSHAddr, sc.User, err))
		} else {
			fmt.Fprintf(stdout, "cluster %s as %s: %s\n", sc.SSHAddr, sc.User, strings.TrimSpace(string(out)))
		}
	}
	return problems
}

// reachCluster logs in as the service account and runs sinfo --version.
func reachCluster(ctx context.Context, addr, knownHosts, user, keyFile string) ([]byte, error) {
	signer, err := loadKey(keyFile)
	if err != nil {
		return nil, err
	}
	pool, err := slurm.NewPool(slurm.SSHConfig{Addr: addr, KnownHosts: knownHosts, MaxSessions: 2,
		Credentials: func(string) (slurm.Credentials, error) {
			return slurm.Credentials{User: user, Signer: signer}, nil
		}}, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return pool.Run(ctx, user, "sinfo --version", nil)
}
