package web_test

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wesgate/wesgate/wes"
)

// The end-to-end tests run real workflows: Debian's cwltool, or a stand-in
// engine script, under the local executor, over HTTP through contractClient.

// e2eRunDeadline bounds one run; cwltool takes 1-3 s, more under -race on a busy machine.
const e2eRunDeadline = 90 * time.Second

// e2ePart is one part of a multipart RunWorkflow request: a form field, or
// (with Filename) a workflow_attachment.
type e2ePart struct {
	Name     string
	Filename string
	Value    string
}

// e2eAttach is a workflow_attachment part.
func e2eAttach(filename, content string) e2ePart {
	return e2ePart{Name: "workflow_attachment", Filename: filename, Value: content}
}

// e2eMultipart encodes parts as multipart/form-data. The headers are
// written by hand so that a filename keeps its directories (tools/step1.cwl)
// exactly as the specification's clients send them.
func e2eMultipart(t testing.TB, parts []e2ePart) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		params := map[string]string{"name": p.Name}
		if p.Filename != "" {
			params["filename"] = p.Filename
			h.Set("Content-Type", "application/octet-stream")
		}
		h.Set("Content-Disposition", mime.FormatMediaType("form-data", params))
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, p.Value)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &b, w.FormDataContentType()
}

// e2ePost sends a RunWorkflow request and returns the response, read.
func e2ePost(t testing.TB, c *http.Client, env *testEnv, parts []e2ePart) (int, []byte) {
	t.Helper()
	body, ct := e2eMultipart(t, parts)
	resp, err := c.Post(env.API+"/runs", ct, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// e2eSubmit creates a run and returns its id.
func e2eSubmit(t testing.TB, c *http.Client, env *testEnv, parts []e2ePart) string {
	t.Helper()
	status, b := e2ePost(t, c, env, parts)
	var id struct {
		RunID string `json:"run_id"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &id) != nil || id.RunID == "" {
		t.Fatalf("POST /runs: %d %s", status, b)
	}
	return id.RunID
}

// e2eCWLRun is the fields of a CWL v1.2 run request.
func e2eCWLRun(workflowURL, params string, attachments ...e2ePart) []e2ePart {
	return append([]e2ePart{
		{Name: "workflow_type", Value: "CWL"},
		{Name: "workflow_type_version", Value: "v1.2"},
		{Name: "workflow_url", Value: workflowURL},
		{Name: "workflow_params", Value: params},
	}, attachments...)
}

// e2eGetJSON gets url, requires status, and decodes the body into v.
func e2eGetJSON(t testing.TB, c *http.Client, url string, status int, v any) {
	t.Helper()
	e2eDoJSON(t, c, http.MethodGet, url, status, v)
}

func e2eDoJSON(t testing.TB, c *http.Client, method, url string, status int, v any) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, status)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
}

// e2eGetText gets a log or file and returns its status, headers and body.
func e2eGetText(t testing.TB, c *http.Client, url string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// e2eRunLog is the part of a RunLog the tests read.
type e2eRunLog struct {
	RunID   string `json:"run_id"`
	State   wes.State
	Request struct {
		WorkflowParams        json.RawMessage   `json:"workflow_params"`
		WorkflowType          string            `json:"workflow_type"`
		WorkflowTypeVersion   string            `json:"workflow_type_version"`
		WorkflowURL           string            `json:"workflow_url"`
		WorkflowEngine        string            `json:"workflow_engine"`
		WorkflowEngineVersion string            `json:"workflow_engine_version"`
		Tags                  map[string]string `json:"tags"`
	}
	RunLog struct {
		Cmd        []string `json:"cmd"`
		StartTime  string   `json:"start_time"`
		EndTime    string   `json:"end_time"`
		Stdout     string   `json:"stdout"`
		Stderr     string   `json:"stderr"`
		ExitCode   *int     `json:"exit_code"`
		SystemLogs []string `json:"system_logs"`
	} `json:"run_log"`
	TaskLogsURL string                     `json:"task_logs_url"`
	Outputs     map[string]json.RawMessage `json:"outputs"`
}

// e2eFile is a CWL File object in outputs.
type e2eFile struct {
	Class    string `json:"class"`
	Location string `json:"location"`
	Basename string `json:"basename"`
	Size     int64  `json:"size"`
	Checksum string `json:"checksum"`
}

func e2eGetRun(t testing.TB, c *http.Client, env *testEnv, id string) e2eRunLog {
	t.Helper()
	var rl e2eRunLog
	e2eGetJSON(t, c, env.API+"/runs/"+id, http.StatusOK, &rl)
	return rl
}

// e2eWait polls the run's status every 100 ms until it is in one of want.
// A terminal state that is not wanted, or the deadline, fails the test with
// the run's log.
func e2eWait(t testing.TB, c *http.Client, env *testEnv, id string, deadline time.Duration, want ...wes.State) wes.State {
	t.Helper()
	end := time.Now().Add(deadline)
	var st wes.RunStatus
	for {
		e2eGetJSON(t, c, env.API+"/runs/"+id+"/status", http.StatusOK, &st)
		if st.RunID != id {
			t.Fatalf("status of %s names run %q", id, st.RunID)
		}
		if slices.Contains(want, st.State) {
			return st.State
		}
		if st.State.Terminal() || time.Now().After(end) {
			_, _, stderr := e2eGetText(t, c, env.API+"/runs/"+id+"/stderr")
			var rl json.RawMessage
			e2eGetJSON(t, c, env.API+"/runs/"+id, http.StatusOK, &rl)
			t.Fatalf("run %s is %s, want %v\nrun log: %s\nstderr:\n%s", id, st.State, want, rl, stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func e2eSHA1(b []byte) string {
	s := sha1.Sum(b)
	return "sha1$" + hex.EncodeToString(s[:])
}

// e2eCheckFile requires f to be an absolute download URL under the run's
// files/ that serves want, with the right size and checksum.
func e2eCheckFile(t testing.TB, c *http.Client, env *testEnv, id string, f e2eFile, want string) {
	t.Helper()
	prefix := env.API + "/runs/" + id + "/files/"
	if u, err := url.Parse(f.Location); err != nil || !u.IsAbs() || !strings.HasPrefix(f.Location, prefix) {
		t.Errorf("location %q is not an absolute URL under %s", f.Location, prefix)
	}
	if f.Class != "File" || f.Size != int64(len(want)) || f.Checksum != e2eSHA1([]byte(want)) {
		t.Errorf("file %+v, want class File, size %d, checksum %s", f, len(want), e2eSHA1([]byte(want)))
	}
	status, h, got := e2eGetText(t, c, f.Location)
	if status != http.StatusOK || string(got) != want {
		t.Errorf("GET %s: %d %q, want 200 %q", f.Location, status, got, want)
	}
	if e2eSHA1(got) != f.Checksum {
		t.Errorf("the download's sha1 %s is not the checksum %s", e2eSHA1(got), f.Checksum)
	}
	if cd := h.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
		t.Errorf("Content-Disposition = %q, want an attachment", cd)
	}
}

const (
	e2eWorkflow = `cwlVersion: v1.2
class: Workflow
inputs:
  infile: File
outputs:
  result:
    type: File
    outputSource: lower/out
steps:
  upper:
    run: tools/step1.cwl
    in: {infile: infile}
    out: [out]
  lower:
    run: tools/step2.cwl
    in: {infile: upper/out}
    out: [out]
`
	e2eStep1 = `cwlVersion: v1.2
class: CommandLineTool
baseCommand: [tr, a-z, A-Z]
inputs:
  infile: File
stdin: $(inputs.infile.path)
stdout: upper.txt
outputs:
  out: {type: stdout}
`
	e2eStep2 = `cwlVersion: v1.2
class: CommandLineTool
baseCommand: [tr, " ", "_"]
inputs:
  infile: File
stdin: $(inputs.infile.path)
stdout: result.txt
outputs:
  out: {type: stdout}
`
	e2eInput  = "hello world\nsecond line\n"
	e2eResult = "HELLO_WORLD\nSECOND_LINE\n"
)

// TestE2EWorkflow runs a two-step CWL workflow whose tools are attached
// under tools/, with an attached input file, and follows everything a
// client reads about it: state, outputs, downloads, logs, tasks, the list.
func TestE2EWorkflow(t *testing.T) {
	t.Parallel()
	requireCWLTool(t)
	env := newTestEnv(t, envOptions{})
	c := contractClient(t, env)

	params := `{"infile":{"class":"File","location":"input.txt"}}`
	parts := e2eCWLRun("workflow.cwl", params,
		e2eAttach("workflow.cwl", e2eWorkflow),
		e2eAttach("tools/step1.cwl", e2eStep1),
		e2eAttach("tools/step2.cwl", e2eStep2),
		e2eAttach("input.txt", e2eInput))
	if body, _ := e2eMultipart(t, parts); !bytes.Contains(body.Bytes(), []byte(`filename="tools/step1.cwl"`)) {
		t.Fatalf("the request does not carry the directory of tools/step1.cwl:\n%s", body)
	}
	id := e2eSubmit(t, c, env, parts)
	e2eWait(t, c, env, id, e2eRunDeadline, wes.Complete)

	// The attachment kept its directory (the workflow could not have run otherwise).
	if _, err := os.Stat(filepath.Join(env.Data, "runs", id, "work", "tools", "step1.cwl")); err != nil {
		t.Errorf("tools/step1.cwl is not where the workflow refers to it: %v", err)
	}

	rl := e2eGetRun(t, c, env, id)
	api := env.API + "/runs/" + id
	if rl.RunID != id || rl.State != wes.Complete {
		t.Errorf("run log names %s in %s, want %s COMPLETE", rl.RunID, rl.State, id)
	}
	req := rl.Request
	if req.WorkflowType != "CWL" || req.WorkflowTypeVersion != "v1.2" || req.WorkflowURL != "workflow.cwl" ||
		req.WorkflowEngine != "cwltool" || req.WorkflowEngineVersion == "" {
		t.Errorf("request echoed as %+v", req)
	}
	var gotParams, wantParams any
	json.Unmarshal(req.WorkflowParams, &gotParams)
	json.Unmarshal([]byte(params), &wantParams)
	if !reflect.DeepEqual(gotParams, wantParams) {
		t.Errorf("workflow_params echoed as %s, want %s", req.WorkflowParams, params)
	}
	log := rl.RunLog
	if log.ExitCode == nil || *log.ExitCode != 0 {
		t.Errorf("exit_code = %s, want 0", e2eCode(log.ExitCode))
	}
	start, err1 := time.Parse(wes.TimeFormat, log.StartTime)
	end, err2 := time.Parse(wes.TimeFormat, log.EndTime)
	if err1 != nil || err2 != nil || end.Before(start) {
		t.Errorf("start_time %q, end_time %q: want two WES times, in order", log.StartTime, log.EndTime)
	}
	if !slices.ContainsFunc(log.Cmd, func(a string) bool { return strings.HasSuffix(a, "cwltool") }) {
		t.Errorf("cmd = %q, want the cwltool command line", log.Cmd)
	}
	if log.Stdout != api+"/stdout" || log.Stderr != api+"/stderr" || rl.TaskLogsURL != api+"/tasks" {
		t.Errorf("stdout %q, stderr %q, task_logs_url %q: want absolute URLs under %s", log.Stdout, log.Stderr, rl.TaskLogsURL, api)
	}

	// Outputs name the produced file, downloadable, with size and checksum.
	if len(rl.Outputs) != 1 || rl.Outputs["result"] == nil {
		t.Fatalf("outputs = %v, want just result", rl.Outputs)
	}
	var result e2eFile
	if err := json.Unmarshal(rl.Outputs["result"], &result); err != nil {
		t.Fatal(err)
	}
	if result.Basename != "result.txt" {
		t.Errorf("result is %q, want result.txt", result.Basename)
	}
	e2eCheckFile(t, c, env, id, result, e2eResult)

	// stdout is the engine's real CWL output object; stderr its log.
	status, h, stdout := e2eGetText(t, c, log.Stdout)
	var cwlOut struct {
		Result struct {
			Class, Basename, Checksum, Location string
			Size                                int64
		}
	}
	if status != http.StatusOK || json.Unmarshal(stdout, &cwlOut) != nil {
		t.Fatalf("GET stdout: %d %q, want cwltool's output object", status, stdout)
	}
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != "text/plain" {
		t.Errorf("stdout has Content-Type %q, want text/plain", h.Get("Content-Type"))
	}
	if cwlOut.Result.Class != "File" || cwlOut.Result.Basename != "result.txt" || cwlOut.Result.Checksum != e2eSHA1([]byte(e2eResult)) ||
		!strings.HasPrefix(cwlOut.Result.Location, "file://") {
		t.Errorf("cwltool's output object is %+v", cwlOut.Result)
	}
	status, _, stderr := e2eGetText(t, c, log.Stderr)
	if status != http.StatusOK || !bytes.Contains(stderr, []byte("Final process status is success")) {
		t.Errorf("GET stderr: %d, want cwltool's log; got:\n%s", status, stderr)
	}

	t.Run("range", func(t *testing.T) {
		if len(stdout) < 20 {
			t.Fatalf("stdout is too short for the test: %q", stdout)
		}
		for _, r := range []struct {
			header     string
			start, end int // inclusive
		}{{"bytes=0-9", 0, 9}, {"bytes=5-14", 5, 14}, {"bytes=-7", len(stdout) - 7, len(stdout) - 1}} {
			status, h, got := e2eGetText(t, c, log.Stdout, "Range", r.header)
			want := stdout[r.start : r.end+1]
			wantRange := fmt.Sprintf("bytes %d-%d/%d", r.start, r.end, len(stdout))
			if status != http.StatusPartialContent || !bytes.Equal(got, want) || h.Get("Content-Range") != wantRange {
				t.Errorf("Range %s: %d %q (Content-Range %q), want 206 %q (%s)", r.header, status, got, h.Get("Content-Range"), want, wantRange)
			}
		}
		// A client tailing the log asks for the bytes after those it has;
		// when there are none yet, the answer is a 416 ErrorResponse.
		for _, u := range []string{log.Stdout, result.Location} {
			status, h, body := e2eGetText(t, c, u, "Range", "bytes=100000-")
			var e struct {
				StatusCode int `json:"status_code"`
			}
			if status != http.StatusRequestedRangeNotSatisfiable || !strings.HasPrefix(h.Get("Content-Range"), "bytes */") ||
				json.Unmarshal(body, &e) != nil || e.StatusCode != status {
				t.Errorf("GET %s past its end: %d (Content-Range %q) %s, want a 416 ErrorResponse with the size", u, status, h.Get("Content-Range"), body)
			}
		}
	})

	t.Run("tasks", func(t *testing.T) {
		var list struct {
			TaskLogs []struct {
				ID       string `json:"id"`
				Name     string `json:"name"`
				ExitCode *int   `json:"exit_code"`
			} `json:"task_logs"`
			NextPageToken string `json:"next_page_token"`
		}
		e2eGetJSON(t, c, rl.TaskLogsURL, http.StatusOK, &list)
		if len(list.TaskLogs) == 0 || list.NextPageToken != "" {
			t.Fatalf("tasks = %+v, want the run's tasks on one page", list)
		}
		for _, task := range list.TaskLogs {
			var one struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			}
			e2eGetJSON(t, c, rl.TaskLogsURL+"/"+url.PathEscape(task.ID), http.StatusOK, &one)
			if one.ID != task.ID || one.Name != task.Name {
				t.Errorf("GET task %s answers %+v", task.ID, one)
			}
			if task.ExitCode == nil || *task.ExitCode != 0 {
				t.Errorf("task %s: exit_code %s, want 0", task.ID, e2eCode(task.ExitCode))
			}
		}
		e2eGetJSON(t, c, rl.TaskLogsURL+"/no-such-task", http.StatusNotFound, nil)
		e2eGetJSON(t, c, env.API+"/runs/00000000-0000-4000-8000-000000000000/tasks", http.StatusNotFound, nil)
	})

	t.Run("list", func(t *testing.T) {
		var list struct {
			Runs []struct {
				RunID     string                     `json:"run_id"`
				State     wes.State                  `json:"state"`
				Tags      map[string]json.RawMessage `json:"tags"`
				StartTime string                     `json:"start_time"`
				EndTime   string                     `json:"end_time"`
			} `json:"runs"`
		}
		var raw map[string]json.RawMessage
		e2eGetJSON(t, c, env.API+"/runs", http.StatusOK, &raw)
		if err := json.Unmarshal(raw["runs"], &list.Runs); err != nil || len(list.Runs) != 1 {
			t.Fatalf("runs = %s, want one run", raw["runs"])
		}
		got := list.Runs[0]
		if got.RunID != id || got.State != wes.Complete || got.Tags == nil || len(got.Tags) != 0 ||
			got.StartTime != log.StartTime || got.EndTime != log.EndTime {
			t.Errorf("listed as %+v, want %s COMPLETE with tags {} and the run's times", got, id)
		}
		if !bytes.Contains(raw["runs"], []byte(`"tags":{}`)) {
			t.Errorf("tags are not sent as {}: %s", raw["runs"])
		}
		var info struct {
			Counts map[wes.State]int64 `json:"system_state_counts"`
		}
		e2eGetJSON(t, c, env.API+"/service-info", http.StatusOK, &info)
		if info.Counts[wes.Complete] != 1 {
			t.Errorf("system_state_counts = %v, want COMPLETE 1", info.Counts)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		for _, path := range []string{"/runs/00000000-0000-4000-8000-000000000000", "/runs/not-a-run-id",
			"/runs/00000000-0000-4000-8000-000000000000/status", "/runs/00000000-0000-4000-8000-000000000000/stdout",
			"/runs/" + id + "/files/work/no-such-file", "/runs/" + id + "/files/work%2F..%2F..%2Fwesgate.db",
			"/runs/" + id + "/files/.wesgate/rc"} {
			status, _, body := e2eGetText(t, c, env.API+path)
			if status != http.StatusNotFound {
				t.Errorf("GET %s: %d %s, want 404", path, status, body)
			}
		}
	})
}

// TestE2EFailingTool: a tool that fails makes the run EXECUTOR_ERROR with
// the engine's exit code, and cancelling the ended run changes nothing.
func TestE2EFailingTool(t *testing.T) {
	t.Parallel()
	requireCWLTool(t)
	env := newTestEnv(t, envOptions{})
	c := contractClient(t, env)
	tool := `cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, "echo failing on purpose >&2; exit 3"]
inputs: []
outputs: []
`
	id := e2eSubmit(t, c, env, e2eCWLRun("fail.cwl", "{}", e2eAttach("fail.cwl", tool)))
	e2eWait(t, c, env, id, e2eRunDeadline, wes.ExecutorError)
	rl := e2eGetRun(t, c, env, id)
	// cwltool ends a workflow whose tool failed (permanentFail) with exit code 1.
	if rl.RunLog.ExitCode == nil || *rl.RunLog.ExitCode != 1 {
		t.Errorf("exit_code = %s, want cwltool's 1", e2eCode(rl.RunLog.ExitCode))
	}
	if _, err := time.Parse(wes.TimeFormat, rl.RunLog.EndTime); err != nil {
		t.Errorf("end_time = %q, want a WES time", rl.RunLog.EndTime)
	}
	if !slices.ContainsFunc(rl.RunLog.SystemLogs, func(l string) bool { return strings.Contains(l, "exited with code 1") }) {
		t.Errorf("system_logs = %q, want the engine's exit code explained", rl.RunLog.SystemLogs)
	}
	_, _, stderr := e2eGetText(t, c, rl.RunLog.Stderr)
	if !bytes.Contains(stderr, []byte("failing on purpose")) || !bytes.Contains(stderr, []byte("permanentFail")) {
		t.Errorf("stderr does not show the tool's failure:\n%s", stderr)
	}

	// Cancelling an ended run answers 200 and changes nothing.
	for _, cancel := range []struct{ method, path string }{{"POST", "/cancel"}, {"DELETE", ""}} {
		var got struct {
			RunID string `json:"run_id"`
		}
		e2eDoJSON(t, c, cancel.method, env.API+"/runs/"+id+cancel.path, http.StatusOK, &got)
		if got.RunID != id {
			t.Errorf("%s %s answers run_id %q", cancel.method, cancel.path, got.RunID)
		}
		after := e2eGetRun(t, c, env, id)
		if after.State != wes.ExecutorError || after.RunLog.EndTime != rl.RunLog.EndTime ||
			e2eCode(after.RunLog.ExitCode) != e2eCode(rl.RunLog.ExitCode) {
			t.Errorf("after %s the run is %s, ended %s, exit %s; want it unchanged", cancel.method, after.State,
				after.RunLog.EndTime, e2eCode(after.RunLog.ExitCode))
		}
	}
	e2eDoJSON(t, c, "POST", env.API+"/runs/00000000-0000-4000-8000-000000000000/cancel", http.StatusNotFound, nil)
	e2eDoJSON(t, c, "DELETE", env.API+"/runs/00000000-0000-4000-8000-000000000000", http.StatusNotFound, nil)
}

// e2eCode shows an exit_code that may be missing.
func e2eCode(p *int) string {
	if p == nil {
		return "missing"
	}
	return strconv.Itoa(*p)
}

// e2eProc is a process of a run's job.
type e2eProc struct {
	pid  int
	cmd  string // the command line, arguments joined by spaces
	pgid int
}

// e2eJobProcs lists the live processes of a run's job: those whose
// environment names its job (the local executor sets WESGATE_JOB_NAME), and
// the processes in their process groups (cwltool runs tools with a clean
// environment, but leaves them in the job's process group).
func e2eJobProcs(t testing.TB, runID string) []e2eProc {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc: cannot look for a job's processes")
	}
	marker := []byte("WESGATE_JOB_NAME=" + wes.JobName(runID))
	type info struct {
		e2eProc
		ours bool
	}
	var all []info
	groups := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue // a zombie has ended; only its exit status is left
		}
		pgid, _ := strconv.Atoi(fields[2])
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		env, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		p := info{e2eProc{pid: pid, pgid: pgid, cmd: strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '})))}, false}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, marker) {
				p.ours = true
				groups[pgid] = true
			}
		}
		all = append(all, p)
	}
	var procs []e2eProc
	for _, p := range all {
		if p.ours || groups[p.pgid] {
			procs = append(procs, p.e2eProc)
		}
	}
	return procs
}

// e2eWaitProc waits until the run's job has a process running cmd.
func e2eWaitProc(t testing.TB, runID, cmd string, deadline time.Duration) e2eProc {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		procs := e2eJobProcs(t, runID)
		for _, p := range procs {
			if p.cmd == cmd {
				return p
			}
		}
		if time.Now().After(end) {
			t.Fatalf("no %q among the processes of run %s: %+v", cmd, runID, procs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const e2eSleepTool = `cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, "echo sleeping-now; exec sleep 300"]
inputs: []
outputs: []
`

// TestE2ECancel cancels long-running runs, through POST /runs/{id}/cancel
// and through DELETE /runs/{id}: each ends CANCELED within seconds, and no
// process of it is left.
func TestE2ECancel(t *testing.T) {
	t.Parallel()
	requireCWLTool(t)
	env := newTestEnv(t, envOptions{})
	for _, tt := range []struct {
		name, method, path string
	}{
		{"POST cancel", http.MethodPost, "/cancel"},
		{"DELETE", http.MethodDelete, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := contractClient(t, env)
			id := e2eSubmit(t, c, env, e2eCWLRun("sleep.cwl", "{}", e2eAttach("sleep.cwl", e2eSleepTool)))
			e2eWait(t, c, env, id, e2eRunDeadline, wes.Running)
			sleeper := e2eWaitProc(t, id, "sleep 300", e2eRunDeadline)
			// The Log keeps every field: no end and no exit code (-1) yet.
			if rl := e2eGetRun(t, c, env, id); rl.State != wes.Running || rl.RunLog.StartTime == "" || rl.RunLog.EndTime != "" ||
				rl.RunLog.ExitCode == nil || *rl.RunLog.ExitCode != -1 {
				t.Errorf("while running: state %s, start_time %q, end_time %q, exit_code %s; want RUNNING, started, not ended, -1",
					rl.State, rl.RunLog.StartTime, rl.RunLog.EndTime, e2eCode(rl.RunLog.ExitCode))
			}

			// While it runs, its log is readable: cwltool relays the tool's output to stderr.
			end := time.Now().Add(20 * time.Second)
			for {
				_, h, stderr := e2eGetText(t, c, env.API+"/runs/"+id+"/stderr")
				if bytes.Contains(stderr, []byte("sleeping-now")) {
					if h.Get("Cache-Control") != "no-store" {
						t.Errorf("the log of an active run has Cache-Control %q, want no-store", h.Get("Cache-Control"))
					}
					break
				}
				if time.Now().After(end) {
					t.Fatalf("stderr of the running run does not show the tool's output:\n%s", stderr)
				}
				time.Sleep(100 * time.Millisecond)
			}

			var got struct {
				RunID string `json:"run_id"`
			}
			e2eDoJSON(t, c, tt.method, env.API+"/runs/"+id+tt.path, http.StatusOK, &got)
			if got.RunID != id {
				t.Errorf("%s answers run_id %q, want %s", tt.method, got.RunID, id)
			}
			var st wes.RunStatus
			e2eGetJSON(t, c, env.API+"/runs/"+id+"/status", http.StatusOK, &st)
			if st.State != wes.Canceling && st.State != wes.Canceled {
				t.Errorf("right after the cancel the run is %s, want CANCELING or CANCELED", st.State)
			}
			e2eWait(t, c, env, id, 20*time.Second, wes.Canceled)

			rl := e2eGetRun(t, c, env, id)
			if rl.RunLog.EndTime == "" {
				t.Errorf("a cancelled run has no end_time")
			}
			// The executor kills the job's process group when the job ends;
			// give the kernel a moment to take the processes away.
			end = time.Now().Add(5 * time.Second)
			for {
				left := e2eJobProcs(t, id)
				alive := e2eAlive(sleeper)
				if len(left) == 0 && !alive {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("processes of the cancelled run are left: %+v (sleep %d alive: %v)", left, sleeper.pid, alive)
				}
				time.Sleep(100 * time.Millisecond)
			}

			// A second cancel of the ended run changes nothing.
			e2eDoJSON(t, c, tt.method, env.API+"/runs/"+id+tt.path, http.StatusOK, nil)
			if again := e2eGetRun(t, c, env, id); again.State != wes.Canceled || again.RunLog.EndTime != rl.RunLog.EndTime {
				t.Errorf("after a second cancel the run is %s, ended %s; want it unchanged", again.State, again.RunLog.EndTime)
			}
		})
	}
}

// e2eAlive reports whether p still runs (as the same command; a zombie has ended).
func e2eAlive(p e2eProc) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) == 0 || fields[0] == "Z" || fields[0] == "X" {
		return false
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/cmdline")
	return strings.TrimSpace(string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))) == p.cmd
}

// e2eStandIn writes an engine script into a temporary directory and returns
// a detected engine for NFL DSL2 that runs it like nextflow.
func e2eStandIn(t testing.TB, script string) wes.Engine {
	t.Helper()
	path := filepath.Join(t.TempDir(), "standin-nextflow")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := wes.Engine{
		Name:           "nextflow",
		Types:          map[string][]string{"NFL": {"DSL2"}},
		Command:        []string{path, "run", wes.PHWorkflow, "-params-file", wes.PHParams, wes.PHEngineParams},
		VersionCommand: []string{path, "-version"},
		Outputs:        wes.OutputsWorkdir,
	}
	// A process forked by a parallel test while the script was open for
	// writing holds it until it execs: "text file busy" for a moment.
	for try := 0; ; try++ {
		err := e.Detect(context.Background())
		if err == nil {
			return e
		}
		if !errors.Is(err, syscall.ETXTBSY) || try == 20 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// e2eNFLRun is the fields of a run of the stand-in engine.
func e2eNFLRun(params string) []e2ePart {
	return []e2ePart{
		{Name: "workflow_type", Value: "NFL"},
		{Name: "workflow_type_version", Value: "DSL2"},
		{Name: "workflow_url", Value: "main.nf"},
		{Name: "workflow_params", Value: params},
		{Name: "tags", Value: `{"project":"e2e"}`},
		e2eAttach("main.nf", "workflow { }\n"),
	}
}

// TestE2EStandInEngine runs an engine that reports no outputs itself: the
// outputs are the files it created in the working directory, and not the
// attachments or wesgate's own files.
func TestE2EStandInEngine(t *testing.T) {
	t.Parallel()
	// The banner of nextflow -version, then a run that writes two files.
	eng := e2eStandIn(t, `#!/bin/sh
if [ "$1" = -version ]; then
  printf '\n      N E X T F L O W\n      version 24.04.4 build 5917\n      created 01-08-2024 17:17 UTC\n'
  exit 0
fi
[ "$1" = run ] && [ -f "$2" ] && [ "$3" = -params-file ] && [ -f "$4" ] || { echo "bad arguments: $*" >&2; exit 64; }
printf 'made from %s\n' "$2" > result.txt
mkdir -p sub && printf 'nested\n' > sub/nested.txt
cat "$4"
echo "stand-in engine done" >&2
`)
	if eng.Version != "24.04.4" {
		t.Errorf("detected version %q, want 24.04.4", eng.Version)
	}
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{eng}})
	c := contractClient(t, env)
	id := e2eSubmit(t, c, env, e2eNFLRun(`{"greeting":"hi"}`))
	e2eWait(t, c, env, id, e2eRunDeadline, wes.Complete)

	rl := e2eGetRun(t, c, env, id)
	if rl.Request.WorkflowEngine != "nextflow" || rl.Request.WorkflowEngineVersion != "24.04.4" || rl.Request.Tags["project"] != "e2e" {
		t.Errorf("request echoed as %+v", rl.Request)
	}
	want := map[string]string{"result.txt": "made from ./main.nf\n", "sub/nested.txt": "nested\n"}
	if len(rl.Outputs) != len(want) {
		t.Errorf("outputs = %v, want just %v", contractKeys(rl.Outputs), contractKeys(want))
	}
	for name, content := range want {
		var f e2eFile
		if err := json.Unmarshal(rl.Outputs[name], &f); err != nil {
			t.Errorf("outputs[%s]: %v", name, err)
			continue
		}
		e2eCheckFile(t, c, env, id, f, content)
	}
	_, _, stdout := e2eGetText(t, c, rl.RunLog.Stdout)
	if strings.TrimSpace(string(stdout)) != `{"greeting":"hi"}` {
		t.Errorf("the engine read the params file as %q", stdout)
	}
	_, _, stderr := e2eGetText(t, c, rl.RunLog.Stderr)
	if !bytes.Contains(stderr, []byte("stand-in engine done")) {
		t.Errorf("stderr = %q", stderr)
	}
	var list struct {
		Runs []wes.RunSummary `json:"runs"`
	}
	e2eGetJSON(t, c, env.API+"/runs", http.StatusOK, &list)
	if len(list.Runs) != 1 || list.Runs[0].Tags["project"] != "e2e" {
		t.Errorf("runs = %+v, want the run with its tag", list.Runs)
	}
}

// TestE2ELiveLogs: while a run is RUNNING, its stdout and stderr already
// show what the engine wrote, and are not cached.
func TestE2ELiveLogs(t *testing.T) {
	t.Parallel()
	eng := e2eStandIn(t, `#!/bin/sh
if [ "$1" = -version ]; then echo "nextflow version 24.04.4"; exit 0; fi
echo "live-stdout-line"
echo "live-stderr-line" >&2
exec sleep 300
`)
	env := newTestEnv(t, envOptions{Engines: []wes.Engine{eng}})
	c := contractClient(t, env)
	id := e2eSubmit(t, c, env, e2eNFLRun("{}"))
	e2eWait(t, c, env, id, e2eRunDeadline, wes.Running)
	for stream, want := range map[string]string{"stdout": "live-stdout-line\n", "stderr": "live-stderr-line\n"} {
		end := time.Now().Add(20 * time.Second)
		for {
			status, h, got := e2eGetText(t, c, env.API+"/runs/"+id+"/"+stream)
			if status == http.StatusOK && string(got) == want {
				if h.Get("Cache-Control") != "no-store" {
					t.Errorf("%s of an active run has Cache-Control %q, want no-store", stream, h.Get("Cache-Control"))
				}
				break
			}
			if status != http.StatusOK || time.Now().After(end) {
				t.Fatalf("%s while running: %d %q, want 200 %q", stream, status, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var st wes.RunStatus
	e2eGetJSON(t, c, env.API+"/runs/"+id+"/status", http.StatusOK, &st)
	if st.State != wes.Running {
		t.Errorf("the run is %s after its logs were read, want still RUNNING", st.State)
	}
	e2eDoJSON(t, c, http.MethodPost, env.API+"/runs/"+id+"/cancel", http.StatusOK, nil)
	e2eWait(t, c, env, id, 20*time.Second, wes.Canceled)
}

// TestE2EWorkflowURL runs a workflow named by an http URL, which wesgate
// fetches, and shows that a server refusing private addresses refuses it.
func TestE2EWorkflowURL(t *testing.T) {
	t.Parallel()
	requireCWLTool(t)
	tool := `cwlVersion: v1.2
class: CommandLineTool
baseCommand: [echo, fetched-and-run]
inputs: []
stdout: hello.txt
outputs:
  out: {type: stdout}
`
	// serve starts a server of the workflow that counts the requests it gets.
	serve := func(t *testing.T) (string, *atomic.Int64) {
		var hits atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			if r.URL.Path != "/workflows/hello.cwl" {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, tool)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/workflows/hello.cwl", &hits
	}

	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		workflowURL, hits := serve(t)
		env := newTestEnv(t, envOptions{Fetcher: wes.NewFetcher(10*time.Second, true)})
		c := contractClient(t, env)
		id := e2eSubmit(t, c, env, e2eCWLRun(workflowURL, "{}"))
		e2eWait(t, c, env, id, e2eRunDeadline, wes.Complete)
		rl := e2eGetRun(t, c, env, id)
		if rl.Request.WorkflowURL != workflowURL {
			t.Errorf("workflow_url echoed as %q, want %q", rl.Request.WorkflowURL, workflowURL)
		}
		var out e2eFile
		if err := json.Unmarshal(rl.Outputs["out"], &out); err != nil {
			t.Fatalf("outputs = %v: %v", rl.Outputs, err)
		}
		e2eCheckFile(t, c, env, id, out, "fetched-and-run\n")
		if hits.Load() != 1 {
			t.Errorf("the workflow was fetched %d times, want once", hits.Load())
		}
	})

	t.Run("private address refused", func(t *testing.T) {
		t.Parallel()
		workflowURL, hits := serve(t)
		env := newTestEnv(t, envOptions{Fetcher: wes.NewFetcher(10*time.Second, false)})
		c := contractClient(t, env)
		status, body := e2ePost(t, c, env, e2eCWLRun(workflowURL, "{}"))
		var e struct {
			Msg        string `json:"msg"`
			StatusCode int    `json:"status_code"`
		}
		if status != http.StatusBadRequest || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Msg, "workflow_url") {
			t.Errorf("POST /runs: %d %s, want 400 about workflow_url", status, body)
		}
		var list struct {
			Runs []json.RawMessage `json:"runs"`
		}
		e2eGetJSON(t, c, env.API+"/runs", http.StatusOK, &list)
		if len(list.Runs) != 0 {
			t.Errorf("a refused request left runs: %s", list.Runs)
		}
		// The check is on the address dialled, so nothing reached the server.
		if hits.Load() != 0 {
			t.Errorf("the workflow server got %d requests from a fetcher that refuses private addresses", hits.Load())
		}
	})
}
