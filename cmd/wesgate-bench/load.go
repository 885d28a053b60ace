package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runLoad sends many concurrent POST /runs with attachments to a fresh
// wesgate on the local executor, while another client keeps asking for a
// run's status, and checks that every accepted run is stored exactly once.
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wesgate-bench load", flag.ContinueOnError)
	n := fs.Int("posts", 200, "concurrent POST /runs")
	files := fs.Int("attachments", 5, "attachments per run")
	size := fs.Int("size", 64<<10, "bytes per attachment")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "wesgate-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := buildWesgate(ctx, work, stderr)
	if err != nil {
		return err
	}
	engine := writeStandInEngine(work)
	cfg := filepath.Join(work, "wesgate.toml")
	os.WriteFile(cfg, fmt.Appendf(nil, `log_level = "warn"
[executor]
max_jobs = 2
[[engines]]
name = "cwltool"
command = [%q, "{workflow}"]
version_command = [%q, "--version"]
outputs = "workdir"
[[engines]]
name = "snakemake"
disabled = true
[[engines]]
name = "nextflow"
disabled = true
[[engines]]
name = "miniwdl"
disabled = true
`, engine, engine), 0o600)
	data := filepath.Join(work, "data")
	srv, err := startServer(ctx, bin, cfg, data, stderr)
	if err != nil {
		return err
	}
	defer srv.stop()
	base := srv.base
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: *n}}
	probe, err := postRun(hc, base, "cwlVersion: v1.2\n", "{}")
	if err != nil {
		return err
	}

	// The prober measures responsiveness during the burst.
	var probeLat []time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			t := time.Now()
			resp, err := hc.Get(base + "/runs/" + probe + "/status")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				probeLat = append(probeLat, time.Since(t))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	payload := make([]byte, *size)
	for i := range payload {
		payload[i] = byte('a' + rand.IntN(26))
	}
	var (
		mu       sync.Mutex
		ids      []string
		postLat  []time.Duration
		failures atomic.Int64
	)
	start := time.Now()
	var posts sync.WaitGroup
	for i := range *n {
		posts.Go(func() {
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			mw.WriteField("workflow_type", "CWL")
			mw.WriteField("workflow_type_version", "v1.2")
			mw.WriteField("workflow_url", "wf.cwl")
			mw.WriteField("workflow_params", fmt.Sprintf(`{"i": %d}`, i))
			fw, _ := mw.CreateFormFile("workflow_attachment", "wf.cwl")
			fw.Write([]byte("cwlVersion: v1.2\n"))
			for k := range *files {
				fw, _ := mw.CreateFormFile("workflow_attachment", fmt.Sprintf("data/part-%d.txt", k))
				fw.Write(payload)
			}
			mw.Close()
			t := time.Now()
			resp, err := hc.Post(base+"/runs", mw.FormDataContentType(), &body)
			if err != nil {
				failures.Add(1)
				return
			}
			var out struct {
				RunID string `json:"run_id"`
			}
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || out.RunID == "" {
				failures.Add(1)
				return
			}
			mu.Lock()
			ids = append(ids, out.RunID)
			postLat = append(postLat, time.Since(t))
			mu.Unlock()
		})
	}
	posts.Wait()
	burst := time.Since(start)
	close(stop)
	wg.Wait()
	hwm, _ := memory(srv.cmd.Process.Pid)

	// Every accepted run is stored once, with its attachments.
	listed := map[string]int{}
	all, err := listRuns(hc, base)
	if err != nil {
		return err
	}
	for _, id := range all {
		listed[id]++
	}
	missing, twice, incomplete := 0, 0, 0
	for _, id := range ids {
		switch listed[id] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
		for k := range *files {
			fi, err := os.Stat(filepath.Join(data, "runs", id, "work", "data", fmt.Sprintf("part-%d.txt", k)))
			if err != nil || fi.Size() != int64(*size) {
				incomplete++
			}
		}
	}
	slices.Sort(postLat)
	slices.Sort(probeLat)
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[int(float64(len(d)-1)*p)]
	}
	fmt.Fprintf(stdout, "\n%d concurrent POST /runs, %d attachments of %d KiB each, local executor\n\n", *n, *files, *size>>10)
	fmt.Fprintln(stdout, "| measure | value |")
	fmt.Fprintln(stdout, "|---|---:|")
	fmt.Fprintf(stdout, "| accepted / failed | %d / %d |\n", len(ids), failures.Load())
	fmt.Fprintf(stdout, "| stored exactly once / missing / twice | %d / %d / %d |\n", len(ids)-missing-twice, missing, twice)
	fmt.Fprintf(stdout, "| attachments incomplete on disk | %d |\n", incomplete)
	fmt.Fprintf(stdout, "| whole burst | %s |\n", burst.Round(time.Millisecond))
	fmt.Fprintf(stdout, "| POST latency p50 / p99 | %s / %s |\n", ms(pct(postLat, .5)), ms(pct(postLat, .99)))
	fmt.Fprintf(stdout, "| GET status during the burst p50 / p99 / max (%d probes) | %s / %s / %s |\n", len(probeLat),
		ms(pct(probeLat, .5)), ms(pct(probeLat, .99)), ms(pct(probeLat, 1)))
	fmt.Fprintf(stdout, "| server peak RSS | %.1f MB |\n", float64(hwm)/1e6)
	// The requests meant to exhaust memory each go to a fresh server, so
	// that its resident set before and its peak during are the request's.
	fresh := func(i int) (*server, error) {
		return startServer(ctx, bin, cfg, filepath.Join(work, fmt.Sprintf("fresh-%d", i)), stderr)
	}
	abuse := abuseChecks(hc, srv, fresh)
	hwmAfter, _ := memory(srv.cmd.Process.Pid)
	fmt.Fprintln(stdout, "\n| abusive request | answer | answer bytes | took | RSS before | peak RSS during |")
	fmt.Fprintln(stdout, "|---|---:|---:|---:|---:|---:|")
	bad := 0
	for _, a := range abuse {
		fmt.Fprintf(stdout, "| %s | %d | %d | %s | %.1f MB | %.1f MB |\n", a.name, a.status, a.bodyBytes, ms(a.took),
			float64(a.rssBefore)/1e6, float64(a.peak)/1e6)
		if a.status < 400 || a.status >= 500 {
			bad++
		}
	}
	fmt.Fprintf(stdout, "\nserver peak RSS after the abusive requests: %.1f MB\n", float64(hwmAfter)/1e6)
	if bad > 0 {
		return fmt.Errorf("load: %d abusive requests did not get a 4xx", bad)
	}
	if missing+twice+incomplete > 0 || failures.Load() > 0 {
		return fmt.Errorf("load: %d failed, %d missing, %d twice, %d incomplete", failures.Load(), missing, twice, incomplete)
	}
	return nil
}

type abuseResult struct {
	name      string
	status    int
	bodyBytes int64
	took      time.Duration
	rssBefore int64 // the server's resident set before the request
	peak      int64 // its peak resident set while the request was served
}

// resetPeak resets the kernel's record of pid's peak resident set (VmHWM)
// to its current one, so that the next reading is the peak since now.
func resetPeak(pid int) {
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// abuseChecks sends requests meant to exhaust the server: each must get a
// clear 4xx without the server holding the body in memory. The server's
// resident set is measured around each one.
func abuseChecks(hc *http.Client, srv *server, fresh func(int) (*server, error)) []abuseResult {
	var out []abuseResult
	on := func(srv *server, name, path, contentType string, body io.Reader) {
		addr, pid := srv.addr, srv.cmd.Process.Pid
		resetPeak(pid)
		_, before := memory(pid)
		t := time.Now()
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+path, body)
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Origin", "http://"+addr) // the submit form is a same-origin POST
		status, n := 0, int64(0)
		if resp, err := hc.Do(req); err == nil {
			n, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		peak, _ := memory(pid)
		out = append(out, abuseResult{name: name, status: status, bodyBytes: n, took: time.Since(t), rssBefore: before, peak: peak})
	}
	send := func(name, contentType string, body io.Reader) { on(srv, name, "/ga4gh/wes/v1/runs", contentType, body) }
	nfresh := 0
	post := func(name, path, contentType string, body io.Reader) {
		nfresh++
		s, err := fresh(nfresh)
		if err != nil {
			out = append(out, abuseResult{name: name + " (the server did not start)"})
			return
		}
		defer s.stop()
		time.Sleep(time.Second) // let it settle
		on(s, name, path, contentType, body)
	}
	// 5,000 tiny attachments (the limit is 1,000).
	var many bytes.Buffer
	mw := multipart.NewWriter(&many)
	mw.WriteField("workflow_type", "CWL")
	mw.WriteField("workflow_type_version", "v1.2")
	mw.WriteField("workflow_url", "f0.txt")
	for i := range 5000 {
		fw, _ := mw.CreateFormFile("workflow_attachment", fmt.Sprintf("f%d.txt", i))
		fw.Write([]byte("x"))
	}
	mw.Close()
	send("5,000 attachments", mw.FormDataContentType(), &many)
	// workflow_params nested 100,000 deep.
	var deep bytes.Buffer
	mw = multipart.NewWriter(&deep)
	mw.WriteField("workflow_type", "CWL")
	mw.WriteField("workflow_type_version", "v1.2")
	mw.WriteField("workflow_url", "wf.cwl")
	mw.WriteField("workflow_params", strings.Repeat("[", 100000)+strings.Repeat("]", 100000))
	fw, _ := mw.CreateFormFile("workflow_attachment", "wf.cwl")
	fw.Write([]byte("cwlVersion: v1.2\n"))
	mw.Close()
	send("workflow_params nested 100,000 deep", mw.FormDataContentType(), &deep)
	// A 1 GiB body, streamed (the limit is 256 MiB).
	pr, pw := io.Pipe()
	bigw := multipart.NewWriter(pw)
	go func() {
		mw := bigw
		fw, _ := mw.CreateFormFile("workflow_attachment", "big.bin")
		chunk := make([]byte, 1<<20)
		for range 1024 {
			if _, err := fw.Write(chunk); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		mw.Close()
		pw.Close()
	}()
	send("1 GiB body, streamed", bigw.FormDataContentType(), pr)
	pr.Close() // stop the writer if the server answered early
	// A JSON body of 20 MiB in one field (fields are limited to 8 MiB).
	send("20 MiB workflow_params (JSON body)", "application/json",
		strings.NewReader(`{"workflow_type":"CWL","workflow_type_version":"v1.2","workflow_url":"x","workflow_params":"`+strings.Repeat("a", 20<<20)+`"}`))
	// A 200 MiB application/x-www-form-urlencoded body, streamed.
	post("200 MiB urlencoded body, streamed", "/ga4gh/wes/v1/runs", "application/x-www-form-urlencoded",
		io.MultiReader(strings.NewReader("workflow_params="), io.LimitReader(repeatReader('a'), 200<<20)))
	// The submit form with 24 made-up fields of 8 MiB each.
	pr, pw = io.Pipe()
	formw := multipart.NewWriter(pw)
	go func() {
		formw.WriteField("type_version", "CWL|v1.2")
		chunk := bytes.Repeat([]byte("a"), 1<<20)
		for i := range 24 {
			fw, _ := formw.CreateFormField(fmt.Sprintf("junk%d", i))
			for range 8 {
				if _, err := fw.Write(chunk); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
		}
		formw.Close()
		pw.Close()
	}()
	post("submit form: 24 made-up fields of 8 MiB", "/runs/new", formw.FormDataContentType(), pr)
	pr.Close()
	// 50,000 made-up multipart field names.
	var names bytes.Buffer
	mw = multipart.NewWriter(&names)
	for i := range 50000 {
		mw.WriteField(fmt.Sprintf("unknown-field-%d-%s", i, strings.Repeat("n", 1000)), "v")
	}
	mw.Close()
	post("50,000 unknown field names", "/ga4gh/wes/v1/runs", mw.FormDataContentType(), &names)
	return out
}

// repeatReader reads as an endless run of one byte.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}
