package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/views"
	"github.com/wesgate/wesgate/wes"
)

// ui authenticates a page request; without a user it sends the person to
// log in (and back here afterwards).
func (s *Server) ui(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.auth.Authenticate(r)
		if err != nil {
			if _, ok := s.auth.(auth.Browser); ok && r.Method == http.MethodGet {
				http.Redirect(w, r, "/auth/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
				return
			}
			s.problemPage(w, r, http.StatusUnauthorized, "Please log in first.")
			return
		}
		noteUser(r.Context(), u.Owner)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// optionalUser sets the user when the request has valid credentials.
func (s *Server) optionalUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, err := s.auth.Authenticate(r); err == nil {
			r = r.WithContext(context.WithValue(r.Context(), userKey{}, u))
		}
		next.ServeHTTP(w, r)
	})
}

// pageError renders a service error as a page: 404, 403 or a generic 500.
func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := s.classify(r, err)
	switch status {
	case http.StatusNotFound:
		msg = "There is no such run, or it is not yours."
	case http.StatusServiceUnavailable:
		msg = "The cluster cannot be reached just now. Your runs are safe; try again in a minute."
	case http.StatusInternalServerError:
		msg = "Something went wrong on our side. It has been logged."
	}
	s.problemPage(w, r, status, msg)
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func fmtDuration(start, end time.Time) string {
	if start.IsZero() {
		return ""
	}
	if end.IsZero() {
		end = time.Now()
	}
	d := end.Sub(start).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
}

func (s *Server) handleRunsPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		q := r.URL.Query()
		v := views.RunsView{State: q.Get("state"), Tag: q.Get("tag"), User: q.Get("user"), Admin: u.Admin}
		for _, st := range wes.States {
			v.States = append(v.States, string(st))
		}
		opts := wes.ListOptions{PageSize: 50, PageToken: q.Get("page_token"), Tag: v.Tag, Username: v.User}
		if v.State != "" {
			opts.States = []wes.State{wes.State(v.State)}
		}
		runs, next, err := s.runs.ListRuns(r.Context(), u, opts)
		var inv *wes.InvalidError
		if errors.As(err, &inv) {
			v.Error = "The filter is not valid: " + inv.Error()
		} else if err != nil {
			s.pageError(w, r, err)
			return
		}
		for _, run := range runs {
			v.Runs = append(v.Runs, views.RunRow{ID: run.ID, Name: run.Name, State: string(run.State),
				Type: run.Request.WorkflowType, User: run.Username, Submitted: fmtTime(run.Created),
				Started: fmtTime(run.Started), Ended: fmtTime(run.Ended), Duration: fmtDuration(run.Started, run.Ended)})
		}
		if next != "" {
			nq := url.Values{}
			for k, vs := range q {
				nq[k] = vs
			}
			nq.Set("page_token", next)
			v.NextURL = "/runs?" + nq.Encode()
		}
		if q.Get("page_token") != "" {
			fq := url.Values{}
			for k, vs := range q {
				fq[k] = vs
			}
			fq.Del("page_token")
			v.FirstURL = "/runs?" + fq.Encode()
		}
		s.render(w, r, http.StatusOK, views.Runs(s.page(r, "Runs"), v))
	})
}

// logTail is how much of a log the run page shows at first.
const logTail = 64 << 10

func (s *Server) handleRunPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		id := r.PathValue("run_id")
		run, tasks, err := s.runs.RunAndTasks(r.Context(), u, id)
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		base := s.baseURL(r)
		api := base + apiBase + "/runs/" + id
		v := views.RunView{
			ID: run.ID, Name: run.Name, State: string(run.State), Owner: run.Username,
			Type: run.Request.WorkflowType, TypeVersion: run.Request.WorkflowTypeVersion,
			Engine: run.Request.WorkflowEngine, EngineVersion: run.Request.WorkflowEngineVersion,
			WorkflowURL: run.Request.WorkflowURL, JobID: run.JobID, Partition: run.Partition, Node: run.Node,
			Cmd: strings.Join(run.Cmd, " "), SystemLogs: run.SystemLogs,
			Active: !run.State.Terminal(), CanCancel: !run.State.Terminal() && !run.CancelRequested,
			APIURL: apiBase + "/runs/" + id,
		}
		if run.ExitCode != nil {
			v.ExitCode = strconv.Itoa(*run.ExitCode)
		}
		var pretty bytes.Buffer
		if json.Indent(&pretty, run.Request.WorkflowParams, "", "  ") == nil {
			v.Params = pretty.String()
		}
		for _, k := range sortedKeys(run.Request.WorkflowEngineParameters) {
			v.EngineParams = append(v.EngineParams, views.KV{Key: k, Value: run.Request.WorkflowEngineParameters[k]})
		}
		for _, k := range sortedKeys(run.Request.Tags) {
			v.Tags = append(v.Tags, views.KV{Key: k, Value: run.Request.Tags[k]})
		}
		v.Timeline = []views.Step{
			{Label: "Submitted", Time: fmtTime(run.Created), Done: true},
			{Label: "Started", Time: fmtTime(run.Started), Done: !run.Started.IsZero()},
			{Label: endLabel(run.State), Time: fmtTime(run.Ended), Done: run.State.Terminal()},
		}
		for _, t := range tasks {
			row := views.TaskRow{ID: t.ID, Name: t.Name, Start: fmtTime(t.Start), End: fmtTime(t.End)}
			if t.ExitCode != nil {
				row.ExitCode = strconv.Itoa(*t.ExitCode)
			}
			v.Tasks = append(v.Tasks, row)
		}
		rl := s.runs.RunLog(run, nil, base)
		v.Outputs = outputRows(rl.Outputs, id, base)
		v.Stdout = s.logView(r.Context(), u, id, wes.Stdout, api)
		v.Stderr = s.logView(r.Context(), u, id, wes.Stderr, api)
		s.render(w, r, http.StatusOK, views.Run(s.page(r, run.Name), v))
	})
}

// endLabel names the last step of the timeline: "Executor error" for EXECUTOR_ERROR.
func endLabel(st wes.State) string {
	if st.Terminal() {
		s := strings.ReplaceAll(strings.ToLower(string(st)), "_", " ")
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return "Ended"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// logView reads the tail of a log for the run page.
func (s *Server) logView(ctx context.Context, u wes.User, id, stream, api string) views.LogView {
	lv := views.LogView{Name: stream, URL: api + "/" + stream}
	f, _, err := s.runs.OpenLog(ctx, u, id, stream)
	if err != nil {
		s.log.Warn("run page: log", "run", id, "stream", stream, "err", err)
		lv.Unavailable = true
		return lv
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return lv
	}
	start := max(size-logTail, 0)
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return lv
	}
	b, _ := io.ReadAll(io.LimitReader(f, size-start))
	lv.Text, lv.Offset, lv.Truncated = stripTerminal(string(b)), start+int64(len(b)), start > 0
	return lv
}

// terminalEscape matches the escape sequences that engines write for
// terminals (cwltool colours its log even into a file): CSI sequences such
// as "\x1b[1;30m", and the two-byte escapes other than CSI's "\x1b[".
var terminalEscape = regexp.MustCompile(`\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\\]^_])`)

// stripTerminal removes terminal escape sequences, which a page would show
// as stray characters. The downloaded log keeps them. static/files/app.js
// does the same to what it appends.
func stripTerminal(s string) string {
	if !strings.Contains(s, "\x1b") {
		return s
	}
	return terminalEscape.ReplaceAllString(s, "")
}

// outputRows lists the files of an outputs object (CWL File objects, at any
// depth) for the run page. Only the run's own download URLs become links.
func outputRows(outputs json.RawMessage, runID, base string) []views.Output {
	var v any
	if json.Unmarshal(outputs, &v) != nil {
		return nil
	}
	var rows []views.Output
	var walk func(name string, v any)
	walk = func(name string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["class"] == "File" {
				o := views.Output{Name: name}
				o.Location, _ = x["location"].(string)
				if wes.FileLink(runID, base, o.Location) {
					o.URL, o.Location = o.Location, ""
				}
				o.Path, _ = x["path"].(string)
				o.Checksum, _ = x["checksum"].(string)
				if size, ok := x["size"].(float64); ok {
					o.Size = humanBytes(int64(size))
				}
				if b, _ := x["basename"].(string); b != "" && b != path.Base(name) {
					o.Name = name + " (" + b + ")"
				}
				rows = append(rows, o)
				return
			}
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				walk(strings.TrimPrefix(name+"."+k, "."), x[k])
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", name, i), e)
			}
		}
	}
	walk("", v)
	return rows
}

func humanBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

func (s *Server) handleCancelConfirm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		run, err := s.runs.GetRun(r.Context(), u, r.PathValue("run_id"))
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		if run.State.Terminal() {
			http.Redirect(w, r, "/runs/"+run.ID, http.StatusSeeOther)
			return
		}
		s.render(w, r, http.StatusOK, views.ConfirmCancel(s.page(r, "Cancel "+run.Name),
			views.CancelView{ID: run.ID, Name: run.Name, State: string(run.State)}))
	})
}

func (s *Server) handleCancelForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		id := r.PathValue("run_id")
		if err := s.runs.Cancel(r.Context(), u, id); err != nil {
			s.pageError(w, r, err)
			return
		}
		http.Redirect(w, r, "/runs/"+id, http.StatusSeeOther)
	})
}

// submitForm is what the submit page needs from the service.
func (s *Server) submitView(ctx context.Context) views.SubmitView {
	v := views.SubmitView{Values: map[string]string{"workflow_params": "{}"}, Errors: map[string]string{}}
	types := map[string]bool{}
	for _, e := range s.runs.Engines() {
		v.Engines = append(v.Engines, views.Choice{Value: e.Name, Label: e.Name + " " + e.Version})
		for t, vs := range e.Types {
			for _, ver := range vs {
				key := t + "|" + ver
				if !types[key] {
					types[key] = true
					v.Types = append(v.Types, views.Choice{Value: key, Label: t + " " + ver})
				}
			}
		}
		for _, p := range e.Params {
			v.EngineFlags = append(v.EngineFlags, views.OptionField{Name: p.Name, Label: e.Name + " " + p.Name,
				Help: p.Help, Type: p.Type, Default: p.Default})
		}
	}
	sort.Slice(v.Types, func(i, j int) bool { return v.Types[i].Label > v.Types[j].Label }) // newest version first
	for _, o := range s.runs.Options() {
		v.Options = append(v.Options, views.OptionField{Name: o.Name, Label: strings.TrimPrefix(o.Name, "--"),
			Help: o.Help, Type: o.Type, Default: o.Default})
	}
	if parts, err := s.runs.Partitions(ctx); err == nil {
		v.Partitions = parts
	}
	return v
}

func (s *Server) handleSubmitPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusOK, views.Submit(s.page(r, "Submit"), s.submitView(r.Context())))
	})
}

// handleSubmitForm turns the submit form into a run request: the same
// Draft and CreateRun as POST /ga4gh/wes/v1/runs, so the same rules apply.
func (s *Server) handleSubmitForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
		v := s.submitView(r.Context())
		fail := func(status int, msg string) {
			v.FormError = msg
			s.render(w, r, status, views.Submit(s.page(r, "Submit"), v))
		}
		draft, err := s.runs.NewDraft()
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		defer draft.Discard()
		var files []string
		if err := s.readSubmitForm(r, draft, v.Values, &files); err != nil {
			status, msg := s.classify(r, err)
			fail(status, msg)
			return
		}
		fields := formToRequest(v.Values, files)
		for k, val := range fields {
			draft.SetField(k, val)
		}
		id, err := s.runs.CreateRun(r.Context(), u, draft)
		var inv *wes.InvalidError
		switch {
		case errors.As(err, &inv):
			for k, p := range inv.Problems {
				v.Errors[k] = p
			}
			fail(http.StatusBadRequest, "The run was not submitted: please correct the fields marked below.")
			return
		case err != nil:
			status, msg := s.classify(r, err)
			setRetryAfter(w, err)
			fail(status, msg)
			return
		}
		http.Redirect(w, r, "/runs/"+id, http.StatusSeeOther)
	})
}

// readSubmitForm streams the form's files into the draft and keeps its
// text fields in values. An empty file input sends a part without a name.
func (s *Server) readSubmitForm(r *http.Request, d *wes.Draft, values map[string]string, files *[]string) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "multipart/form-data" {
		return wes.Invalid("form", "must be sent as multipart/form-data")
	}
	limit := s.submitFieldLimit()
	names, err := s.readMultipart(r, d, limit, func(name, value string) {
		if limit(name) > 0 {
			values[name] = value
		}
	}, func() {})
	*files = names
	return err
}

// submitFieldLimit returns the byte limit of each field of the submit
// form: the field limit for the JSON parameters and the tags, less for the
// others, and 0 for a name the form does not have (it is not read or kept).
// Engine parameters and batch options ("eng-...", "opt-...") are passed on,
// so that the service names one the engine does not have.
func (s *Server) submitFieldLimit() func(name string) int64 {
	maxField := s.runs.Limits().MaxFieldBytes
	short := min(4096, maxField)
	known := map[string]int64{"workflow_params": maxField, "tags_text": maxField,
		"type_version": short, "engine": short, "workflow_url": short}
	return func(name string) int64 {
		if strings.HasPrefix(name, "eng-") || strings.HasPrefix(name, "opt-") {
			return short
		}
		return known[name]
	}
}

// formToRequest maps the submit form's fields to WES run request fields.
func formToRequest(values map[string]string, files []string) map[string]string {
	out := map[string]string{wes.FieldParams: values["workflow_params"]}
	t, ver, _ := strings.Cut(values["type_version"], "|")
	out[wes.FieldType], out[wes.FieldTypeVersion] = t, ver
	if e := values["engine"]; e != "" {
		out[wes.FieldEngine] = e
	}
	wurl := strings.TrimSpace(values["workflow_url"])
	if wurl == "" && len(files) == 1 {
		wurl = files[0]
	}
	out[wes.FieldURL] = wurl
	tags := map[string]string{}
	for _, line := range strings.Split(values["tags_text"], "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, val, _ := strings.Cut(line, "=")
		tags[strings.TrimSpace(k)] = strings.TrimSpace(val)
	}
	b, _ := json.Marshal(tags)
	out[wes.FieldTags] = string(b)
	params := map[string]string{}
	for k, val := range values {
		switch {
		case strings.HasPrefix(k, "opt--") && strings.TrimSpace(val) != "":
			params[strings.TrimPrefix(k, "opt")] = strings.TrimSpace(val)
		case strings.HasPrefix(k, "eng-") && strings.TrimSpace(val) != "":
			params[strings.TrimPrefix(k, "eng")] = strings.TrimSpace(val)
		}
	}
	b, _ = json.Marshal(params)
	out[wes.FieldEngineParams] = string(b)
	return out
}

func (s *Server) handleDashboard() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		d, err := s.runs.Dashboard(r.Context(), u)
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		s.render(w, r, http.StatusOK, views.Dashboard(s.page(r, "Dashboard"), dashboardView(d)))
	})
}
