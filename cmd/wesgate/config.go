package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/wesgate/wesgate/wes"
)

// duration is a time.Duration written as "5s" in the config file.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// config is the configuration file; wesgate.example.toml documents each key.
type config struct {
	Addr            string `toml:"addr"`
	Data            string `toml:"data"`
	PublicURL       string `toml:"public_url"`
	LogLevel        string `toml:"log_level"`
	LogFormat       string `toml:"log_format"`
	MaxRequestBytes int64  `toml:"max_request_bytes"`
	// Slow clients: how long headers, and a whole request, may take.
	ReadHeaderTimeout duration `toml:"read_header_timeout"`
	ReadTimeout       duration `toml:"read_timeout"`

	Service struct {
		ID               string `toml:"id"`
		Name             string `toml:"name"`
		Description      string `toml:"description"`
		OrganizationName string `toml:"organization_name"`
		OrganizationURL  string `toml:"organization_url"`
		ContactURL       string `toml:"contact_url"`
		DocumentationURL string `toml:"documentation_url"`
		Environment      string `toml:"environment"`
	} `toml:"service"`

	Limits struct {
		MaxAttachments   int   `toml:"max_attachments"`
		MaxFieldBytes    int64 `toml:"max_field_bytes"`
		MaxWorkflowBytes int64 `toml:"max_workflow_bytes"`
		MaxJSONDepth     int   `toml:"max_json_depth"`
		// Per-user caps (0: none).
		MaxActiveRunsPerUser           int   `toml:"max_active_runs_per_user"`
		MaxSubmissionsPerMinutePerUser int   `toml:"max_submissions_per_minute_per_user"`
		MaxAttachmentBytesPerUser      int64 `toml:"max_attachment_bytes_per_user"`
		AdminsExempt                   bool  `toml:"admins_exempt"`
	} `toml:"limits"`

	Runs struct {
		DefaultPageSize int      `toml:"default_page_size"`
		MaxPageSize     int      `toml:"max_page_size"`
		PollInterval    duration `toml:"poll_interval"`
		FastPoll        duration `toml:"fast_poll"`
		HotFor          duration `toml:"hot_for"`
		CommandTimeout  duration `toml:"command_timeout"`
		CollectTimeout  duration `toml:"collect_timeout"`
		MaxBatch        int      `toml:"max_batch"`
		SettleWorkers   int      `toml:"settle_workers"`
		MaxCollectFiles int      `toml:"max_collect_files"`
		MaxUserBytes    int64    `toml:"max_collected_bytes_per_user"`
	} `toml:"runs"`

	WorkflowURL struct {
		Fetch        *bool    `toml:"fetch"`
		AllowPrivate bool     `toml:"allow_private"`
		Timeout      duration `toml:"timeout"`
		FilePrefixes []string `toml:"file_prefixes"`
	} `toml:"workflow_url"`

	Executor struct {
		Kind        string   `toml:"kind"`
		MaxJobs     int      `toml:"max_jobs"`
		CancelGrace duration `toml:"cancel_grace"`
		// With [auth] mode = "oidc": everyone who can log in is trusted
		// with the wesgate account (local jobs run as it).
		LocalSingleUser bool `toml:"local_single_user"`
	} `toml:"executor"`

	Metrics struct {
		Access string `toml:"access"`
	} `toml:"metrics"`

	Auth struct {
		Mode            string   `toml:"mode"`
		Issuer          string   `toml:"issuer"`
		ClientID        string   `toml:"client_id"`
		ClientSecret    string   `toml:"client_secret"`
		Audiences       []string `toml:"audiences"`
		UsernameClaim   string   `toml:"username_claim"`
		GroupsClaim     string   `toml:"groups_claim"`
		AdminGroup      string   `toml:"admin_group"`
		RequiredScope   string   `toml:"required_scope"`
		UserMap         string   `toml:"user_map"`
		InsecureCookies bool     `toml:"insecure_cookies"`
		SessionLifetime duration `toml:"session_lifetime"`

		// Secrets and account rules (secrets.go, accounts.go).
		ClientSecretFile string   `toml:"client_secret_file"`
		DenyUsernames    []string `toml:"deny_usernames"`
	} `toml:"auth"`

	Slurm struct {
		PerUser          bool     `toml:"per_user"`
		UserCAKey        string   `toml:"user_ca_key"`
		CertTTL          duration `toml:"cert_ttl"`
		Cluster          string   `toml:"cluster"`
		SSHAddr          string   `toml:"ssh_addr"`
		User             string   `toml:"user"`
		KeyFile          string   `toml:"key_file"`
		KnownHosts       string   `toml:"known_hosts"`
		RemoteBase       string   `toml:"remote_base"`
		DefaultPartition string   `toml:"default_partition"`
		MaxSessions      int      `toml:"max_sessions"`
		CancelGrace      duration `toml:"cancel_grace"`
		GoneGrace        duration `toml:"gone_grace"`
		MaxCollectBytes  int64    `toml:"max_collect_bytes"`

		// Account rules and certificate options (accounts.go).
		MinUID            int    `toml:"min_uid"`
		CertSourceAddress string `toml:"cert_source_address"`
	} `toml:"slurm"`

	Engines []engineConfig `toml:"engines"`
}

// engineConfig changes a built-in engine (same name) or adds one.
type engineConfig struct {
	Name           string              `toml:"name"`
	Disabled       bool                `toml:"disabled"`
	Types          map[string][]string `toml:"types"`
	Command        []string            `toml:"command"`
	VersionCommand []string            `toml:"version_command"`
	Outputs        string              `toml:"outputs"`
	Setup          []string            `toml:"setup"`
	Params         []paramConfig       `toml:"params"`
}

type paramConfig struct {
	Name    string   `toml:"name"`
	Type    string   `toml:"type"`
	Default string   `toml:"default"`
	Flag    string   `toml:"flag"`
	Choices []string `toml:"choices"`
	Min     *float64 `toml:"min"`
	Max     *float64 `toml:"max"`
	Help    string   `toml:"help"`
}

func defaultConfig() config {
	var c config
	c.Addr = "127.0.0.1:8080"
	c.Data = "./wesgate-data"
	c.LogLevel = "info"
	c.LogFormat = "text"
	c.MaxRequestBytes = 256 << 20
	c.ReadHeaderTimeout = duration{10 * time.Second}
	c.ReadTimeout = duration{15 * time.Minute}
	c.Service.ID = "org.ga4gh.wesgate"
	c.Service.Name = "wesgate"
	c.Service.Description = "GA4GH WES for a Slurm cluster"
	c.Service.OrganizationName = "wesgate"
	c.Service.OrganizationURL = "https://example.org"
	c.Service.Environment = "dev"
	c.Limits.MaxActiveRunsPerUser = 200
	c.Limits.MaxSubmissionsPerMinutePerUser = 60
	c.Limits.MaxAttachmentBytesPerUser = 10 << 30
	c.Limits.AdminsExempt = true
	c.Runs.PollInterval = duration{5 * time.Second}
	c.Runs.FastPoll = duration{250 * time.Millisecond}
	c.Runs.HotFor = duration{time.Minute}
	c.Runs.CommandTimeout = duration{time.Minute}
	c.Runs.CollectTimeout = duration{10 * time.Minute}
	c.Runs.MaxBatch = 500
	c.Runs.SettleWorkers = 8
	c.Runs.MaxCollectFiles = 20000
	c.WorkflowURL.Timeout = duration{30 * time.Second}
	c.Executor.Kind = "local"
	c.Executor.MaxJobs = 2
	c.Executor.CancelGrace = duration{10 * time.Second}
	c.Metrics.Access = "loopback"
	c.Auth.Mode = "local"
	c.Auth.UsernameClaim = "preferred_username"
	c.Auth.GroupsClaim = "groups"
	c.Auth.SessionLifetime = duration{12 * time.Hour}
	c.Slurm.CertTTL = duration{5 * time.Minute}
	c.Slurm.Cluster = "cluster"
	c.Slurm.MaxSessions = 8
	c.Slurm.CancelGrace = duration{30 * time.Second}
	c.Slurm.GoneGrace = duration{time.Minute}
	c.Slurm.MaxCollectBytes = 1 << 30
	c.Slurm.MinUID = 1000
	return c
}

// loadConfig reads the file at path over the defaults. Unknown keys are an
// error, so a misspelt key does not silently do nothing.
func loadConfig(path string, c *config) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	md, err := toml.Decode(string(b), c)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		return fmt.Errorf("config %s: unknown key %q", path, undec[0].String())
	}
	return nil
}

// engines merges the configured engines over the built-in ones.
func (c *config) engines() ([]wes.Engine, error) {
	list := wes.DefaultEngines()
	for _, ec := range c.Engines {
		if ec.Name == "" {
			return nil, errors.New("config: an engine has no name")
		}
		i := -1
		for j := range list {
			if list[j].Name == ec.Name {
				i = j
			}
		}
		if i < 0 {
			list = append(list, wes.Engine{Name: ec.Name, Outputs: wes.OutputsWorkdir})
			i = len(list) - 1
		}
		e := &list[i]
		if ec.Disabled {
			list = append(list[:i], list[i+1:]...)
			continue
		}
		if ec.Types != nil {
			e.Types = ec.Types
		}
		if ec.Command != nil {
			e.Command = ec.Command
		}
		if ec.VersionCommand != nil {
			e.VersionCommand = ec.VersionCommand
		}
		if ec.Outputs != "" {
			e.Outputs = ec.Outputs
		}
		if ec.Setup != nil {
			e.Setup = ec.Setup
		}
		if ec.Params != nil {
			e.Params = nil
			for _, p := range ec.Params {
				e.Params = append(e.Params, wes.EngineParam{Name: p.Name, Type: p.Type, Default: p.Default,
					Flag: p.Flag, Choices: p.Choices, Min: p.Min, Max: p.Max, Help: p.Help})
			}
		}
		if err := checkEngine(e); err != nil {
			return nil, err
		}
	}
	return list, nil
}

func checkEngine(e *wes.Engine) error {
	switch {
	case len(e.Types) == 0:
		return fmt.Errorf("config: engine %s has no workflow types", e.Name)
	case len(e.Command) == 0:
		return fmt.Errorf("config: engine %s has no command", e.Name)
	case len(e.VersionCommand) == 0:
		return fmt.Errorf("config: engine %s has no version_command", e.Name)
	}
	switch e.Outputs {
	case wes.OutputsCWL, wes.OutputsDirectory, wes.OutputsWorkdir:
	default:
		return fmt.Errorf("config: engine %s: outputs must be cwl, directory or workdir", e.Name)
	}
	for _, p := range e.Params {
		switch p.Type {
		case wes.ParamBool, wes.ParamInt, wes.ParamFloat, wes.ParamString:
		default:
			return fmt.Errorf("config: engine %s: parameter %s: type must be bool, int, float or string", e.Name, p.Name)
		}
	}
	return nil
}

// isLoopback reports whether a listen address only accepts local connections.
func isLoopback(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return true, nil
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback(), nil
}
