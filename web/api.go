package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wesgate/wesgate/wes"
)

func (s *Server) handleServiceInfo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u *wes.User
		if user, ok := userFrom(r.Context()); ok {
			u = &user
		}
		info, err := s.runs.ServiceInfo(r.Context(), u, s.baseURL(r))
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, info)
	})
}

// runID is the WES RunId object.
type runID struct {
	RunID string `json:"run_id"`
}

func (s *Server) handleCreateRun() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
		if r.ContentLength > s.cfg.MaxRequestBytes {
			s.apiError(w, r, wes.ErrTooLarge)
			return
		}
		draft, err := s.runs.NewDraft()
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		defer draft.Discard()
		if err := s.decodeRunRequest(r, draft); err != nil {
			s.apiError(w, r, err)
			return
		}
		id, err := s.runs.CreateRun(r.Context(), u, draft)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, runID{RunID: id})
	})
}

// decodeRunRequest reads a RunWorkflow request into the draft: the
// specification's multipart/form-data, a urlencoded form, or (a convenience)
// a JSON RunRequest without attachments.
func (s *Server) decodeRunRequest(r *http.Request, d *wes.Draft) error {
	ct, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return &statusError{http.StatusUnsupportedMediaType, "Content-Type must be multipart/form-data, application/x-www-form-urlencoded or application/json"}
	}
	switch ct {
	case "multipart/form-data":
		if params["boundary"] == "" {
			return wes.Invalid("Content-Type", "multipart/form-data needs a boundary")
		}
		return s.decodeMultipart(r, d)
	case "application/json", "application/x-www-form-urlencoded":
		// A body without files is bounded by its fields, so it is never
		// held in memory much beyond them.
		limit := s.runs.Limits().MaxFieldBytes + 1<<20
		if r.ContentLength > limit {
			return wes.ErrTooLarge
		}
		body := http.MaxBytesReader(nil, r.Body, limit)
		if ct == "application/json" {
			return decodeJSONRequest(body, d)
		}
		return decodeURLEncoded(body, d)
	}
	return &statusError{http.StatusUnsupportedMediaType, "Content-Type must be multipart/form-data, application/x-www-form-urlencoded or application/json"}
}

// bodyError keeps a size-limit error recognisable and words any other body
// failure as the client's problem.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return err
	}
	return wes.Invalid("body", "could not be read as the declared Content-Type")
}

// decodeURLEncoded reads a urlencoded form into the draft, one field at a
// time and at most wes.MaxFormFields of them (url.ParseQuery would make a
// map of every name first).
func decodeURLEncoded(body io.Reader, d *wes.Draft) error {
	b, err := io.ReadAll(body)
	if err != nil {
		return bodyError(err)
	}
	for n := 0; len(b) > 0; {
		var pair []byte
		pair, b, _ = bytes.Cut(b, []byte("&"))
		if len(pair) == 0 {
			continue
		}
		if n++; n > wes.MaxFormFields {
			return tooManyFields()
		}
		k, v, _ := bytes.Cut(pair, []byte("="))
		name, err1 := url.QueryUnescape(string(k))
		value, err2 := url.QueryUnescape(string(v))
		if err1 != nil || err2 != nil {
			return wes.Invalid("body", "is not a valid urlencoded form")
		}
		d.SetField(name, value)
	}
	return nil
}

// tooManyFields is the answer to a request with more than wes.MaxFormFields fields.
func tooManyFields() error {
	return wes.Invalid("body", fmt.Sprintf("has more than %d fields", wes.MaxFormFields))
}

func (s *Server) decodeMultipart(r *http.Request, d *wes.Draft) error {
	_, err := s.readMultipart(r, d, d.FieldLimit, d.SetField, func() { d.Reject(wes.FieldAttachment, "a part has no filename") })
	return err
}

// readMultipart streams a multipart body into the draft: workflow_attachment
// parts are stored under their file name (noName is called for one without),
// and every other part is a field of at most limit(name) bytes (some clients
// send the JSON fields as file parts; their content counts). A field whose
// limit is 0 is not read: field gets it empty. Beyond wes.MaxFormFields
// fields reading stops. It returns the attachments' names in the order they
// came.
func (s *Server) readMultipart(r *http.Request, d *wes.Draft, limit func(name string) int64,
	field func(name, value string), noName func()) ([]string, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, bodyError(err)
	}
	var files []string
	fields := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, bodyError(err)
		}
		if name := part.FormName(); name != wes.FieldAttachment {
			if fields++; fields > wes.MaxFormFields {
				part.Close()
				return nil, tooManyFields()
			}
			n := limit(name)
			if n == 0 {
				part.Close() // reads the rest of the part, without keeping it
				field(name, "")
				continue
			}
			b, err := io.ReadAll(io.LimitReader(part, n+1))
			part.Close()
			if err != nil {
				return nil, bodyError(err)
			}
			field(name, string(b))
			continue
		}
		// Part.FileName drops directories; the filename parameter keeps them.
		_, cd, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		filename := cd["filename"]
		if filename == "" {
			noName()
			io.Copy(io.Discard, part)
			part.Close()
			continue
		}
		files = append(files, filename)
		err = d.AddAttachment(filename, part)
		part.Close()
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) || errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "multipart") {
				return nil, bodyError(err)
			}
			return nil, fmt.Errorf("store attachment: %w", err) // the disk: 507 when full, else 500
		}
	}
}

// decodeJSONRequest reads a RunRequest object, one member at a time and at
// most wes.MaxFormFields of them. Its object fields may be objects (as the
// schema says) or JSON strings (as multipart sends them).
func decodeJSONRequest(body io.Reader, d *wes.Draft) error {
	dec := json.NewDecoder(body)
	fail := func(err error) error {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return wes.Invalid("body", "is not a JSON object")
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fail(err)
	}
	for n := 0; dec.More(); {
		if n++; n > wes.MaxFormFields {
			return tooManyFields()
		}
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		k, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fail(err)
		}
		var str string
		switch {
		case json.Unmarshal(raw, &str) == nil:
			d.SetField(k, str)
		case string(raw) == "null":
		default:
			d.SetField(k, string(raw))
		}
	}
	if _, err := dec.Token(); err != nil {
		return fail(err)
	}
	return nil
}

// parsePageSize reads page_size; absent is 0 (the default).
func parsePageSize(r *http.Request) (int, error) {
	v := r.URL.Query().Get("page_size")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, wes.Invalid("page_size", "must be a positive whole number")
	}
	if n > 1<<30 {
		n = 1 << 30
	}
	return int(n), nil
}

func (s *Server) handleListRuns() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		size, err := parsePageSize(r)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		q := r.URL.Query()
		opts := wes.ListOptions{PageSize: size, PageToken: q.Get("page_token"), Tag: q.Get("tag"), Username: q.Get("user"), Brief: true}
		for _, st := range q["state"] {
			for _, one := range strings.Split(st, ",") {
				opts.States = append(opts.States, wes.State(strings.ToUpper(strings.TrimSpace(one))))
			}
		}
		runs, next, err := s.runs.ListRuns(r.Context(), u, opts)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		list := wes.RunList{Runs: make([]wes.RunSummary, len(runs)), NextPageToken: next}
		for i, run := range runs {
			list.Runs[i] = wes.Summary(run)
		}
		writeJSON(w, http.StatusOK, list)
	})
}

func (s *Server) handleGetRunLog() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		run, tasks, err := s.runs.RunAndTasks(r.Context(), u, r.PathValue("run_id"))
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.runs.RunLog(run, tasks, s.baseURL(r)))
	})
}

func (s *Server) handleGetRunStatus() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		st, err := s.runs.GetStatus(r.Context(), u, r.PathValue("run_id"))
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
}

func (s *Server) handleCancelRun() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		id := r.PathValue("run_id")
		if err := s.runs.Cancel(r.Context(), u, id); err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, runID{RunID: id})
	})
}

func (s *Server) handleListTasks() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		size, err := parsePageSize(r)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		id := r.PathValue("run_id")
		run, err := s.runs.GetRun(r.Context(), u, id)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		tasks, next, err := s.runs.ListTasks(r.Context(), u, id, size, r.URL.Query().Get("page_token"))
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		list := wes.TaskList{TaskLogs: make([]wes.TaskLog, len(tasks)), NextPageToken: next}
		for i, t := range tasks {
			list.TaskLogs[i] = s.runs.TaskLog(run, t, s.baseURL(r))
		}
		writeJSON(w, http.StatusOK, list)
	})
}

func (s *Server) handleGetTask() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		id := r.PathValue("run_id")
		run, err := s.runs.GetRun(r.Context(), u, id)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		t, err := s.runs.GetTask(r.Context(), u, id, r.PathValue("task_id"))
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.runs.TaskLog(run, *t, s.baseURL(r)))
	})
}

// handleLog serves a run's stdout or stderr as text, with Range support;
// while the run is active it reads the file the job is writing.
func (s *Server) handleLog(stream string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		f, run, err := s.runs.OpenLog(r.Context(), u, r.PathValue("run_id"), stream)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !run.State.Terminal() {
			w.Header().Set("Cache-Control", "no-store")
		}
		serveContent(w, r, time.Time{}, f)
	})
}

// handleFile serves an output file of a run for download.
func (s *Server) handleFile() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := userFrom(r.Context())
		rel := r.PathValue("path")
		f, err := s.runs.OpenFile(r.Context(), u, r.PathValue("run_id"), rel)
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			s.apiError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fi.Name()}))
		serveContent(w, r, fi.ModTime(), f)
	})
}

// serveContent is http.ServeContent (Range, conditional requests) whose 416
// is an ErrorResponse like every other error of the API: a client tailing a
// log with "Range: bytes=N-" meets it whenever nothing new has been written.
func serveContent(w http.ResponseWriter, r *http.Request, modtime time.Time, content io.ReadSeeker) {
	http.ServeContent(&rangeErrorWriter{ResponseWriter: w}, r, "", modtime, content)
}

// rangeErrorWriter answers http.ServeContent's 416 with an ErrorResponse
// and drops the plain-text body ServeContent writes after it.
type rangeErrorWriter struct {
	http.ResponseWriter
	swallow bool
}

func (w *rangeErrorWriter) WriteHeader(status int) {
	if status != http.StatusRequestedRangeNotSatisfiable {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.swallow = true
	writeJSON(w.ResponseWriter, status, errorResponse{Msg: "the requested range is not satisfiable", StatusCode: status})
}

func (w *rangeErrorWriter) Write(b []byte) (int, error) {
	if w.swallow {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the underlying writer's sendfile path for downloads.
func (w *rangeErrorWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.swallow {
		return io.Copy(io.Discard, src)
	}
	return io.Copy(w.ResponseWriter, src)
}

func (w *rangeErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
