package wes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wesgate/wesgate/scheduler"
)

// Info is the operator-provided part of service-info.
type Info struct {
	ID               string
	Name             string
	Description      string
	OrganizationName string
	OrganizationURL  string
	ContactURL       string
	DocumentationURL string
	Environment      string
	Version          string // wesgate's own version
	CreatedAt        time.Time
}

// Config configures a Service.
type Config struct {
	DataDir string
	Engines []Engine // detected engines; only these are offered
	Limits  Limits
	// UserLimits cap each user's runs (zero values: no cap).
	UserLimits UserLimits
	Info       Info
	// FileURLPrefixes are directories under which file: workflow URLs are
	// allowed. Empty: file: URLs are refused.
	FileURLPrefixes []string
	// Fetcher fetches http(s) workflow URLs. Nil: such URLs are refused.
	Fetcher *Fetcher
	// PollInterval is how often active runs are checked.
	PollInterval time.Duration
	// GoneGrace is how long a job may be unknown to the scheduler before a
	// run without an exit-code record is settled as SYSTEM_ERROR.
	GoneGrace time.Duration
	// DoomedGrace is how long a job that can never start waits before it is cancelled.
	DoomedGrace     time.Duration
	DefaultPageSize int
	MaxPageSize     int
	// SampleInterval is how often the queue is sampled for the dashboard's
	// chart (default 5 minutes).
	SampleInterval time.Duration
	// Metrics registers the service's Prometheus metrics (nil: none).
	Metrics prometheus.Registerer
	// Watch is where the run pipeline records how the cluster answers
	// (nil: a new one, for a service without a pipeline).
	Watch *Watch
	// Wakeups is the channel the service signals when a run is created or a
	// cancel requested (nil: a channel of its own); others may signal it too.
	Wakeups chan struct{}
	Now     func() time.Time
}

// Service is the WES service: every rule of the API lives here, and both the
// JSON API and the web UI call it.
type Service struct {
	cfg     Config
	store   Store
	sched   Scheduler
	log     *slog.Logger
	tokens  pageTokens
	wake    chan struct{}
	metrics *metrics

	engMu   sync.RWMutex // guards engines
	engines []Engine

	watch *Watch
}

// NewService returns a Service. It makes the data directory and removes the
// leftovers of requests that were interrupted (staging directories, and run
// directories that never reached the store).
func NewService(ctx context.Context, cfg Config, store Store, sched Scheduler, log *slog.Logger) (*Service, error) {
	if cfg.Limits.MaxAttachments <= 0 {
		cfg.Limits.MaxAttachments = DefaultLimits.MaxAttachments
	}
	if cfg.Limits.MaxFieldBytes <= 0 {
		cfg.Limits.MaxFieldBytes = DefaultLimits.MaxFieldBytes
	}
	if cfg.Limits.MaxWorkflowBytes <= 0 {
		cfg.Limits.MaxWorkflowBytes = DefaultLimits.MaxWorkflowBytes
	}
	if cfg.Limits.MaxJSONDepth <= 0 {
		cfg.Limits.MaxJSONDepth = DefaultLimits.MaxJSONDepth
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.DefaultPageSize <= 0 {
		cfg.DefaultPageSize = 50
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SampleInterval <= 0 {
		cfg.SampleInterval = 5 * time.Minute
	}
	if cfg.DoomedGrace <= 0 {
		cfg.DoomedGrace = time.Minute
	}
	for _, d := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "tmp"), filepath.Join(cfg.DataDir, "runs")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
	}
	key, err := store.Secret(ctx, "page-token")
	if err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	s := &Service{cfg: cfg, store: store, sched: sched, log: log, tokens: pageTokens{key: key},
		wake: cfg.Wakeups, watch: cfg.Watch}
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
	}
	if s.watch == nil {
		s.watch = NewWatch()
	}
	s.engines = slices.Clone(cfg.Engines)
	s.metrics = newMetrics(cfg.Metrics, s)
	if err := s.cleanData(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// cleanData removes staging directories, and runs whose request was
// interrupted after it was stored but before its directory was in place
// (their client never got an answer).
func (s *Service) cleanData(ctx context.Context) error {
	tmp := filepath.Join(s.cfg.DataDir, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
	}
	active, err := s.store.ActiveRuns(ctx)
	if err != nil {
		return err
	}
	for _, r := range active {
		if r.JobID != "" {
			continue
		}
		if _, err := os.Stat(s.LocalRunDir(r.ID)); errors.Is(err, os.ErrNotExist) {
			s.log.Warn("removing a run whose creation was interrupted", "run", r.ID)
			if err := s.store.DeleteRun(ctx, r.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// Engines returns the engines the service offers.
func (s *Service) Engines() []Engine {
	s.engMu.RLock()
	defer s.engMu.RUnlock()
	return slices.Clone(s.engines)
}

// AddEngine offers an engine detected after start (its version command
// could not reach the cluster then), replacing one of the same name.
func (s *Service) AddEngine(e Engine) {
	s.engMu.Lock()
	defer s.engMu.Unlock()
	for i := range s.engines {
		if s.engines[i].Name == e.Name {
			s.engines[i] = e
			return
		}
	}
	s.engines = append(s.engines, e)
}

// Options lists the scheduler's options a run may set.
func (s *Service) Options() []scheduler.Option { return s.sched.Options() }

// Partitions lists the cluster's partitions, for the submit form.
func (s *Service) Partitions(ctx context.Context) ([]string, error) { return s.sched.Partitions(ctx) }

// Limits returns the request limits.
func (s *Service) Limits() Limits { return s.cfg.Limits }

// LocalRunDir is the run's directory in wesgate's data directory.
func (s *Service) LocalRunDir(id string) string { return filepath.Join(s.cfg.DataDir, "runs", id) }

// NewDraft starts a run request.
func (s *Service) NewDraft() (*Draft, error) {
	dir, err := os.MkdirTemp(filepath.Join(s.cfg.DataDir, "tmp"), "draft-")
	if err != nil {
		return nil, fmt.Errorf("draft: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, scheduler.WorkDir), 0o750); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("draft: %w", err)
	}
	return &Draft{dir: dir, limits: s.cfg.Limits, fields: map[string]string{}, files: map[string][32]byte{}}, nil
}

// ServiceInfo describes the service. State counts are the caller's runs, or
// everyone's for an admin; an anonymous caller (nil) sees zeros.
func (s *Service) ServiceInfo(ctx context.Context, u *User, baseURL string) (*ServiceInfo, error) {
	counts := map[State]int64{}
	for _, st := range States {
		counts[st] = 0
	}
	if u != nil {
		owner := u.Owner
		if u.Admin {
			owner = ""
		}
		c, err := s.store.CountStates(ctx, owner)
		if err != nil {
			return nil, fmt.Errorf("service-info: %w", err)
		}
		for st, n := range c {
			counts[st] = n
		}
	}
	info := s.cfg.Info
	si := &ServiceInfo{
		ID:                           info.ID,
		Name:                         info.Name,
		Type:                         ServiceType{Group: "org.ga4gh", Artifact: "wes", Version: "1.1.0"},
		Description:                  info.Description,
		Organization:                 Organization{Name: info.OrganizationName, URL: info.OrganizationURL},
		ContactURL:                   info.ContactURL,
		DocumentationURL:             info.DocumentationURL,
		CreatedAt:                    FormatTime(info.CreatedAt),
		UpdatedAt:                    FormatTime(info.CreatedAt),
		Environment:                  info.Environment,
		Version:                      info.Version,
		WorkflowTypeVersions:         map[string]TypeVersions{},
		SupportedWESVersions:         []string{"1.1.0", "1.0.0"},
		SupportedFilesystemProtocols: []string{"file", "http", "https"},
		WorkflowEngineVersions:       map[string]EngineVersions{},
		DefaultEngineParameters:      []DefaultParam{},
		SystemStateCounts:            counts,
		AuthInstructionsURL:          baseURL + "/auth/instructions",
		Tags:                         map[string]string{"scheduler": s.sched.Name()},
	}
	for _, e := range s.Engines() {
		si.WorkflowEngineVersions[e.Name] = EngineVersions{WorkflowEngineVersion: []string{e.Version}}
		for t, vs := range e.Types {
			tv := si.WorkflowTypeVersions[t]
			for _, v := range vs {
				if !slices.Contains(tv.WorkflowTypeVersion, v) {
					tv.WorkflowTypeVersion = append(tv.WorkflowTypeVersion, v)
				}
			}
			si.WorkflowTypeVersions[t] = tv
		}
		for _, p := range e.Params {
			si.DefaultEngineParameters = append(si.DefaultEngineParameters,
				DefaultParam{Name: p.Name, Type: p.Type, DefaultValue: p.Default})
		}
		si.Tags["engine."+e.Name+".types"] = strings.Join(sortedKeys(e.Types), ",")
	}
	for _, o := range s.sched.Options() {
		si.DefaultEngineParameters = append(si.DefaultEngineParameters,
			DefaultParam{Name: o.Name, Type: o.Type, DefaultValue: o.Default})
	}
	return si, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// newRunID returns a random version-4 UUID.
func newRunID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// validRunID reports whether id has the form of a run id, so that a path
// made from it cannot leave the runs directory.
func validRunID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, c := range id {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'):
		default:
			return false
		}
	}
	return true
}

// CreateRun validates the draft and stores it as a new run owned by u. The
// run is durable when CreateRun returns. On any error the draft is discarded.
func (s *Service) CreateRun(ctx context.Context, u User, d *Draft) (string, error) {
	defer d.Discard() // after a success the directory has moved away
	if u.Username == "" {
		return "", fmt.Errorf("%w: no cluster account is known for this user", ErrForbidden)
	}
	req, attachments, err := s.validate(ctx, d)
	if err != nil {
		return "", err
	}
	id := newRunID()
	params := req.WorkflowParams
	if err := writeFileSync(filepath.Join(d.dir, scheduler.WorkDir, ParamsFile), append(slices.Clone(params), '\n')); err != nil {
		return "", fmt.Errorf("create run: %w", err)
	}
	name := req.Tags["name"]
	if name == "" {
		name = path.Base(strings.SplitN(req.WorkflowURL, "#", 2)[0])
	}
	now := s.cfg.Now().UTC()
	r := &Run{
		ID: id, Owner: u.Owner, Username: u.Username, State: Queued, Request: *req, Name: name,
		Attachments: attachments, AttachmentBytes: d.bytes, Created: now, Outputs: json.RawMessage("{}"),
	}
	q := s.quota(u, now)
	if q.MaxAttachmentBytes > 0 && r.AttachmentBytes > q.MaxAttachmentBytes {
		return "", fmt.Errorf("%w: the attachments are larger than the per-user limit", ErrTooLarge)
	}
	// Stored first, then moved into place: a crash in between leaves a run
	// without a directory, which the next start removes (see cleanData).
	if err := s.store.CreateRunWithin(ctx, r, q); err != nil {
		var le *LimitError
		if errors.As(err, &le) {
			s.log.Info("run refused: per-user limit", "owner", u.Owner, "user", u.Username, "limit", le.Msg)
			return "", err
		}
		return "", fmt.Errorf("create run: %w", err)
	}
	runDir := s.LocalRunDir(id)
	err = os.Rename(d.dir, runDir)
	if err == nil {
		err = syncDir(filepath.Dir(runDir))
	}
	if err != nil {
		os.RemoveAll(runDir)
		if derr := s.store.DeleteRun(context.WithoutCancel(ctx), id); derr != nil {
			s.log.Error("create run: remove the half-made run", "run", id, "err", derr)
		}
		return "", fmt.Errorf("create run: %w", err)
	}
	s.log.Info("run created", "run", id, "owner", u.Owner, "user", u.Username,
		"type", req.WorkflowType, "engine", req.WorkflowEngine, "attachments", len(attachments))
	s.Wake()
	return id, nil
}

// validate applies every rule of a run request to d.
func (s *Service) validate(ctx context.Context, d *Draft) (*RunRequest, []string, error) {
	inv := &d.invalid
	req := &RunRequest{}

	params := decodeObject(FieldParams, d.fields[FieldParams], s.cfg.Limits.MaxJSONDepth, inv)
	if params != nil {
		req.WorkflowParams = compactJSON(params)
	}
	req.Tags = map[string]string{}
	if tags := decodeObject(FieldTags, d.fields[FieldTags], 2, inv); tags != nil {
		for k, v := range tags {
			sv, ok := v.(string)
			switch {
			case !ok:
				inv.Add(FieldTags, fmt.Sprintf("tag %q must have a string value", truncate(k, 100)))
			case k == "" || len(k) > 256 || len(sv) > 4096:
				inv.Add(FieldTags, "tag keys must have 1 to 256 bytes and values at most 4096")
			default:
				req.Tags[k] = sv
			}
		}
	}

	// Type, version and engine.
	wtype := strings.TrimSpace(d.fields[FieldType])
	wver := strings.TrimSpace(d.fields[FieldTypeVersion])
	ename := strings.TrimSpace(d.fields[FieldEngine])
	ever := strings.TrimSpace(d.fields[FieldEngineVersion])
	var engine *Engine
	switch {
	case wtype == "":
		inv.Add(FieldType, "is required")
	case wver == "":
		inv.Add(FieldTypeVersion, "is required")
	case ever != "" && ename == "":
		inv.Add(FieldEngine, "is required when workflow_engine_version is given")
	default:
		engine = s.pickEngine(wtype, wver, ename, ever, req, inv)
	}

	// Engine parameters: an allowlist per engine; null counts as absent.
	req.WorkflowEngineParameters = map[string]string{}
	if ep := decodeObject(FieldEngineParams, d.fields[FieldEngineParams], 2, inv); ep != nil && engine != nil {
		for _, k := range sortedKeys(ep) {
			v := ep[k]
			if v == nil {
				continue
			}
			if n, ok := v.(json.Number); ok {
				f, _ := n.Float64()
				v = f
			}
			p, ok := engine.param(k)
			if !ok {
				if s.schedulerOption(k) {
					norm, err := s.checkOption(ctx, k, v)
					if err != nil {
						inv.Add(FieldEngineParams, fmt.Sprintf("%q %v", k, err))
						continue
					}
					req.WorkflowEngineParameters[k] = norm
					continue
				}
				inv.Add(FieldEngineParams, fmt.Sprintf("%q is not a parameter of %s (allowed: %s)",
					truncate(k, 100), engine.Name, strings.Join(s.paramNames(engine), ", ")))
				continue
			}
			norm, err := normalizeParam(p, v)
			if err != nil {
				inv.Add(FieldEngineParams, fmt.Sprintf("%q %v", k, err))
				continue
			}
			req.WorkflowEngineParameters[k] = norm
		}
	}

	attachments := sortedKeys(d.files)
	req.WorkflowURL = strings.TrimSpace(d.fields[FieldURL])
	if err := s.resolveWorkflowURL(ctx, d, req, &attachments); err != nil {
		return nil, nil, err
	}
	if err := inv.OrNil(); err != nil {
		return nil, nil, err
	}
	return req, attachments, nil
}

// pickEngine finds the engine for a type, type version, engine name and
// engine version, matching types and engines without regard to case and type
// versions with or without a leading "v". It writes the configured spellings
// into req.
func (s *Service) pickEngine(wtype, wver, ename, ever string, req *RunRequest, inv *InvalidError) *Engine {
	var typeKnown, versionKnown bool
	engines := s.Engines()
	for i := range engines {
		e := &engines[i]
		for t, versions := range e.Types {
			if !strings.EqualFold(t, wtype) {
				continue
			}
			typeKnown = true
			for _, v := range versions {
				if !strings.EqualFold(strings.TrimPrefix(v, "v"), strings.TrimPrefix(wver, "v")) {
					continue
				}
				versionKnown = true
				if ename != "" && !strings.EqualFold(ename, e.Name) {
					continue
				}
				if ever != "" && ever != e.Version {
					inv.Add(FieldEngineVersion, fmt.Sprintf("%s version %q is not offered (offered: %s)",
						e.Name, truncate(ever, 100), e.Version))
					return nil
				}
				req.WorkflowType, req.WorkflowTypeVersion = t, v
				req.WorkflowEngine, req.WorkflowEngineVersion = e.Name, e.Version
				return e
			}
		}
	}
	switch {
	case !typeKnown:
		inv.Add(FieldType, fmt.Sprintf("%q is not offered (offered: %s)", truncate(wtype, 100), strings.Join(s.typeNames(), ", ")))
	case !versionKnown:
		inv.Add(FieldTypeVersion, fmt.Sprintf("%s version %q is not offered", strings.ToUpper(wtype), truncate(wver, 100)))
	default:
		inv.Add(FieldEngine, fmt.Sprintf("%q does not run %s %s here", truncate(ename, 100), strings.ToUpper(wtype), wver))
	}
	return nil
}

func (s *Service) typeNames() []string {
	var names []string
	for _, e := range s.Engines() {
		for t := range e.Types {
			if !slices.Contains(names, t) {
				names = append(names, t)
			}
		}
	}
	sort.Strings(names)
	return names
}

// paramNames lists what a run of engine may set: the engine's parameters,
// then the scheduler's options.
func (s *Service) paramNames(e *Engine) []string {
	var names []string
	for _, p := range e.Params {
		names = append(names, p.Name)
	}
	for _, o := range s.sched.Options() {
		names = append(names, o.Name)
	}
	return names
}

// schedulerOption reports whether name is one of the scheduler's options.
func (s *Service) schedulerOption(name string) bool {
	for _, o := range s.sched.Options() {
		if o.Name == name {
			return true
		}
	}
	return false
}

// checkOption checks a scheduler option's value: first as its declared
// type, then by the scheduler (format, known partitions).
func (s *Service) checkOption(ctx context.Context, name string, v any) (string, error) {
	var opt EngineParam
	for _, o := range s.sched.Options() {
		if o.Name == name {
			opt = EngineParam{Name: o.Name, Type: o.Type}
		}
	}
	// A string option's format is the scheduler's to check (a constraint
	// may hold & and |); numbers are checked as numbers first.
	if str, ok := v.(string); ok && opt.Type == ParamString {
		return str, s.sched.CheckOption(ctx, name, str)
	}
	norm, err := normalizeParam(opt, v)
	if err != nil {
		return "", err
	}
	return norm, s.sched.CheckOption(ctx, name, norm)
}

// resolveWorkflowURL checks workflow_url: a relative path naming an
// attachment (a "#fragment" is kept for the engine), an http(s) URL that is
// fetched into the draft, or a file: URL under an allowed directory.
func (s *Service) resolveWorkflowURL(ctx context.Context, d *Draft, req *RunRequest, attachments *[]string) error {
	inv := &d.invalid
	raw := req.WorkflowURL
	if raw == "" {
		inv.Add(FieldURL, "is required")
		return nil
	}
	if len(raw) > 2048 {
		inv.Add(FieldURL, "is longer than 2048 bytes")
		return nil
	}
	scheme, _, hasScheme := strings.Cut(raw, ":")
	if hasScheme && isScheme(scheme) {
		switch strings.ToLower(scheme) {
		case "http", "https":
			if s.cfg.Fetcher == nil {
				inv.Add(FieldURL, "http(s) workflow URLs are not fetched by this server")
				return nil
			}
			if inv.OrNil() != nil {
				return nil // do not fetch for a request that fails anyway
			}
			name, err := s.cfg.Fetcher.Fetch(ctx, raw, filepath.Join(d.dir, scheduler.WorkDir), s.cfg.Limits.MaxWorkflowBytes)
			if err != nil {
				var ie *InvalidError
				if errors.As(err, &ie) {
					for k, v := range ie.Problems {
						inv.Add(k, v)
					}
					return nil
				}
				return err
			}
			if slices.Contains(*attachments, name) {
				inv.Add(FieldURL, fmt.Sprintf("the fetched workflow %q clashes with an attachment", name))
				return nil
			}
			*attachments = append(*attachments, name)
			sort.Strings(*attachments)
			if fi, err := os.Stat(filepath.Join(d.dir, scheduler.WorkDir, name)); err == nil {
				d.bytes += fi.Size()
			}
			return nil
		case "file":
			p, ok := s.allowedFilePath(raw)
			if !ok {
				inv.Add(FieldURL, "file: URLs are not allowed here")
				return nil
			}
			if _, err := os.Stat(p); err != nil {
				inv.Add(FieldURL, "names a file that does not exist on the server")
			}
			return nil
		default:
			inv.Add(FieldURL, fmt.Sprintf("the %q scheme is not supported (use a relative attachment path, http or https)", truncate(scheme, 20)))
			return nil
		}
	}
	file, _, _ := strings.Cut(raw, "#")
	file = strings.TrimPrefix(file, "./")
	clean, err := CheckAttachmentPath(file)
	if err != nil {
		inv.Add(FieldURL, fmt.Sprintf("%v", err))
		return nil
	}
	if _, ok := d.files[clean]; !ok {
		inv.Add(FieldURL, fmt.Sprintf("%q is not among the attachments", truncate(clean, 200)))
	}
	return nil
}

// isScheme reports whether s is a URL scheme (RFC 3986: a letter, then
// letters, digits, "+", "-" or "."). A single letter is not taken as one.
func isScheme(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, c := range s {
		isLetter := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !isLetter && (i == 0 || !((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// allowedFilePath returns the local path of a file: URL when it lies under
// one of the configured prefixes.
func (s *Service) allowedFilePath(raw string) (string, bool) {
	p := strings.TrimPrefix(raw, "file://")
	if p == raw {
		p = strings.TrimPrefix(raw, "file:")
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\x00#?") || strings.Contains(p, "%") {
		return "", false
	}
	if filepath.Clean(p) != p {
		return "", false
	}
	for _, prefix := range s.cfg.FileURLPrefixes {
		prefix = filepath.Clean(prefix)
		if strings.HasPrefix(p, prefix+"/") {
			return p, true
		}
	}
	return "", false
}

// workflowArg is the workflow as the engine gets it: "./path" relative to
// work/ (so that it can never read as an option, whatever the path), or the
// absolute path of an allowed file: URL.
func workflowArg(r *Run) string {
	u := r.Request.WorkflowURL
	if strings.HasPrefix(strings.ToLower(u), "file:") {
		p := strings.TrimPrefix(u, "file://")
		if p == u {
			p = strings.TrimPrefix(u, "file:")
		}
		return p
	}
	if strings.HasPrefix(strings.ToLower(u), "http://") || strings.HasPrefix(strings.ToLower(u), "https://") {
		return "./" + fetchedName(u)
	}
	return "./" + strings.TrimPrefix(u, "./")
}

// writeFileSync writes a file and flushes it to disk.
func writeFileSync(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir flushes a directory's entries (a rename into it) to disk.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// owner returns the owner filter for u: "" (everyone) for admins.
func owner(u User) string {
	if u.Admin {
		return ""
	}
	return u.Owner
}

// GetRun returns a run the user may see.
func (s *Service) GetRun(ctx context.Context, u User, id string) (*Run, error) {
	if !validRunID(id) {
		return nil, ErrNotFound
	}
	return s.store.GetRun(ctx, id, owner(u))
}

// GetStatus returns the state of a run the user may see.
func (s *Service) GetStatus(ctx context.Context, u User, id string) (*RunStatus, error) {
	if !validRunID(id) {
		return nil, ErrNotFound
	}
	st, err := s.store.GetState(ctx, id, owner(u))
	if err != nil {
		return nil, err
	}
	return &RunStatus{RunID: id, State: st}, nil
}

// ListOptions selects runs to list.
type ListOptions struct {
	PageSize  int
	PageToken string
	States    []State
	Tag       string // "key" or "key:value"... see ParseTagFilter
	Brief     bool   // only the fields of a WES RunSummary are needed
	Username  string // only the runs of this cluster user (admins use it to look at one person's runs)
}

// ListRuns lists the runs u may see, newest first, one page at a time.
// Runs created while a client pages appear only before its first page, so
// paging never repeats or skips a run.
func (s *Service) ListRuns(ctx context.Context, u User, o ListOptions) ([]*Run, string, error) {
	q := ListQuery{Owner: owner(u), Username: o.Username, States: o.States, Limit: s.pageSize(o.PageSize), Brief: o.Brief}
	for _, st := range o.States {
		if !st.Valid() {
			return nil, "", Invalid("state", fmt.Sprintf("%q is not a WES state", truncate(string(st), 40)))
		}
	}
	if o.Tag != "" {
		k, v, ok := strings.Cut(o.Tag, ":")
		if !ok || k == "" {
			return nil, "", Invalid("tag", "must be key:value")
		}
		q.TagKey, q.TagValue = k, v
	}
	states := make([]string, len(o.States))
	for i, st := range o.States {
		states[i] = string(st)
	}
	sort.Strings(states)
	fp := fingerprint("runs", q.Owner, q.Username, strings.Join(states, ","), q.TagKey, q.TagValue)
	if o.PageToken != "" {
		pos, err := s.tokens.parse(o.PageToken, fp)
		if err != nil {
			return nil, "", Invalid("page_token", "is not valid for this request")
		}
		q.Before = pos
	}
	q.Limit++ // one more tells whether there is a next page
	runs, err := s.store.ListRuns(ctx, q)
	if err != nil {
		return nil, "", fmt.Errorf("list runs: %w", err)
	}
	next := ""
	if len(runs) == q.Limit {
		runs = runs[:q.Limit-1]
		next = s.tokens.make(runs[len(runs)-1].Seq, fp)
	}
	return runs, next, nil
}

func (s *Service) pageSize(n int) int {
	switch {
	case n <= 0:
		return s.cfg.DefaultPageSize
	case n > s.cfg.MaxPageSize:
		return s.cfg.MaxPageSize
	}
	return n
}

// ListTasks lists the tasks of a run, one page at a time.
func (s *Service) ListTasks(ctx context.Context, u User, id string, pageSize int, token string) ([]Task, string, error) {
	if !validRunID(id) {
		return nil, "", ErrNotFound
	}
	fp := fingerprint("tasks", id)
	after := 0
	if token != "" {
		pos, err := s.tokens.parse(token, fp)
		if err != nil {
			return nil, "", Invalid("page_token", "is not valid for this request")
		}
		after = int(pos)
	}
	limit := s.pageSize(pageSize)
	tasks, err := s.store.ListTasks(ctx, id, owner(u), after, limit+1)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(tasks) > limit {
		tasks = tasks[:limit]
		next = s.tokens.make(int64(after+limit), fp)
	}
	return tasks, next, nil
}

// GetTask returns one task of a run.
func (s *Service) GetTask(ctx context.Context, u User, id, taskID string) (*Task, error) {
	if !validRunID(id) {
		return nil, ErrNotFound
	}
	return s.store.GetTask(ctx, id, owner(u), taskID)
}

// RunAndTasks returns a run the user may see and all its tasks: what a
// RunLog and the run page show.
func (s *Service) RunAndTasks(ctx context.Context, u User, id string) (*Run, []Task, error) {
	r, err := s.GetRun(ctx, u, id)
	if err != nil {
		return nil, nil, err
	}
	tasks, err := s.Tasks(ctx, u, id)
	if err != nil {
		return nil, nil, err
	}
	return r, tasks, nil
}

// Tasks returns every task of a run the user may see.
func (s *Service) Tasks(ctx context.Context, u User, id string) ([]Task, error) {
	return s.store.ListTasks(ctx, id, owner(u), 0, 10000)
}

// Cancel asks for a run to stop. A run that has ended is left as it is.
func (s *Service) Cancel(ctx context.Context, u User, id string) error {
	if !validRunID(id) {
		return ErrNotFound
	}
	if _, err := s.store.GetState(ctx, id, owner(u)); err != nil {
		return err
	}
	err := s.store.UpdateRun(ctx, id, func(r *Run) error {
		if r.State.Terminal() || r.CancelRequested {
			return ErrNoChange
		}
		r.CancelRequested = true
		r.State = Canceling
		return nil
	})
	if errors.Is(err, ErrNoChange) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cancel: %w", err)
	}
	s.log.Info("run cancel requested", "run", id, "by", u.Owner)
	s.Wake()
	return nil
}

// ErrNoChange is returned by an UpdateRun callback that changes nothing; the
// store then commits nothing and UpdateRun returns it.
var ErrNoChange = errors.New("no change")

// Log streams.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// OpenLog opens the stdout or stderr of a run. While the run is active the
// file is read where the job writes it; afterwards from the data directory.
func (s *Service) OpenLog(ctx context.Context, u User, id, stream string) (io.ReadSeekCloser, *Run, error) {
	r, err := s.GetRun(ctx, u, id)
	if err != nil {
		return nil, nil, err
	}
	name := scheduler.StdoutFile
	if stream == Stderr {
		name = scheduler.StderrFile
	}
	if r.RunDir != "" && !r.State.Terminal() {
		f, err := s.sched.Open(ctx, s.sched.Account(r.Username), r.RunDir+"/"+name)
		if err == nil {
			return f, r, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			// The cluster is away; the log is there when it is back.
			s.log.Warn("open log on the cluster", "run", id, "err", err)
			return nil, nil, fmt.Errorf("%w: the run's log cannot be read from the cluster just now", ErrUnavailable)
		}
	}
	root, err := os.OpenRoot(s.LocalRunDir(id))
	if err != nil {
		return emptyFile{}, r, nil // not written yet: an empty log
	}
	defer root.Close()
	// The job wrote this file: a FIFO or device in its place is refused
	// rather than opened (an open would block, a read never end).
	f, _, err := OpenRegular(root, name)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNotRegular) {
		return emptyFile{}, r, nil // not written yet (or not a file): an empty log
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open log: %w", err)
	}
	return f, r, nil
}

type emptyFile struct{ strings.Reader }

func (emptyFile) Read([]byte) (int, error)       { return 0, io.EOF }
func (emptyFile) Seek(int64, int) (int64, error) { return 0, nil }
func (emptyFile) Close() error                   { return nil }

// OpenFile opens an output file of a finished run: rel is relative to the
// run directory and must lie under outputs/ or work/.
func (s *Service) OpenFile(ctx context.Context, u User, id, rel string) (*os.File, error) {
	if _, err := s.GetRun(ctx, u, id); err != nil {
		return nil, err
	}
	clean, err := checkRelPath(rel)
	if err != nil || !(strings.HasPrefix(clean, scheduler.OutputsDir+"/") || strings.HasPrefix(clean, scheduler.WorkDir+"/")) {
		return nil, ErrNotFound
	}
	root, err := os.OpenRoot(s.LocalRunDir(id))
	if err != nil {
		return nil, ErrNotFound
	}
	defer root.Close()
	f, _, err := OpenRegular(root, filepath.FromSlash(clean))
	if err != nil {
		return nil, ErrNotFound
	}
	return f, nil
}

// RunLog renders a run as a WES RunLog; baseURL makes absolute links.
func (s *Service) RunLog(r *Run, tasks []Task, baseURL string) RunLog {
	api := baseURL + "/ga4gh/wes/v1/runs/" + r.ID
	rl := RunLog{
		RunID:   r.ID,
		Request: r.Request,
		State:   r.State,
		RunLog: Log{
			Name: r.Name, Cmd: nonNil(r.Cmd), StartTime: FormatTime(r.Started), EndTime: FormatTime(r.Ended),
			Stdout: api + "/stdout", Stderr: api + "/stderr", ExitCode: -1,
			SystemLogs: nonNil(r.SystemLogs),
		},
		TaskLogsURL: api + "/tasks",
		TaskLogs:    make([]TaskLog, len(tasks)),
		Outputs:     expandOutputs(r.Outputs, api+"/files/"),
	}
	if r.ExitCode != nil {
		rl.RunLog.ExitCode = *r.ExitCode
	}
	if rl.Request.WorkflowParams == nil {
		rl.Request.WorkflowParams = json.RawMessage("{}")
	}
	for i, t := range tasks {
		rl.TaskLogs[i] = s.TaskLog(r, t, baseURL)
	}
	return rl
}

// TaskLog renders a task as a WES TaskLog.
func (s *Service) TaskLog(r *Run, t Task, baseURL string) TaskLog {
	api := baseURL + "/ga4gh/wes/v1/runs/" + r.ID
	tl := TaskLog{
		ID: t.ID, Name: t.Name, Cmd: nonNil(t.Cmd), StartTime: FormatTime(t.Start), EndTime: FormatTime(t.End),
		Stdout: api + "/stdout", Stderr: api + "/stderr", ExitCode: -1, SystemLogs: nonNil(t.SystemLogs),
	}
	if t.ExitCode != nil {
		tl.ExitCode = *t.ExitCode
	}
	return tl
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Summary renders a run as a WES RunSummary.
func Summary(r *Run) RunSummary {
	tags := r.Request.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return RunSummary{RunID: r.ID, State: r.State, StartTime: FormatTime(r.Started), EndTime: FormatTime(r.Ended), Tags: tags}
}
