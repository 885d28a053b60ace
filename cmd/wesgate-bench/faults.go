package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// runFaults runs the scripted faults that need a separate wesgate process:
// kill -9 while runs are being submitted to Slurm (every accepted run ends
// up with exactly one job), and a full data disk (clear errors, no
// half-written runs, recovery when space returns). Both print what they
// found and fail on a violation.
func runFaults(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wesgate-bench faults", flag.ContinueOnError)
	which := fs.String("only", "", "run only this fault: kill9 or diskfull")
	n := fs.Int("runs", 50, "runs submitted around the kill")
	if err := fs.Parse(args); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "wesgate-faults-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := buildWesgate(ctx, work, stderr)
	if err != nil {
		return err
	}
	var errs []error
	if *which == "" || *which == "kill9" {
		errs = append(errs, faultKill9(ctx, bin, work, *n, stdout, stderr))
	}
	if *which == "" || *which == "diskfull" {
		errs = append(errs, faultDiskFull(ctx, bin, work, stdout, stderr))
	}
	return errors.Join(errs...)
}

func faultKill9(ctx context.Context, bin, work string, n int, stdout, stderr io.Writer) error {
	lab, err := labEnv()
	if err != nil {
		return fmt.Errorf("kill9: %w", err)
	}
	client, err := labSSH(lab)
	if err != nil {
		return err
	}
	defer client.Close()
	defer remote(client, "scancel --me")
	cfg := filepath.Join(work, "kill9.toml")
	if err := os.WriteFile(cfg, []byte(labConfig(lab, time.Second)), 0o600); err != nil {
		return err
	}
	data := filepath.Join(work, "kill9-data")
	srv, err := startServer(ctx, bin, cfg, data, io.Discard)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	wf := "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [sleep, \"3600\"]\ninputs: []\noutputs: []\n"
	var (
		mu       sync.Mutex
		accepted []string
		wg       sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			if id, err := postRun(hc, srv.base, wf, "{}"); err == nil {
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
			}
		})
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		k := len(accepted)
		mu.Unlock()
		if k >= n/2 && srv.cmd.ProcessState == nil {
			srv.cmd.Process.Kill() // SIGKILL: no shutdown of any kind
		}
	}
	wg.Wait()
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	fmt.Fprintf(stderr, "kill9: %d runs accepted before and around the kill; restarting\n", len(accepted))

	srv, err = startServer(ctx, bin, cfg, data, io.Discard)
	if err != nil {
		return err
	}
	defer srv.stop()
	stored, err := listRuns(hc, srv.base)
	if err != nil {
		return err
	}
	// Wait until every stored run has its job, then count jobs per run.
	counts := map[string]int{}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		counts, err = jobsByName(client)
		if err != nil {
			return err
		}
		all := true
		for _, id := range stored {
			if counts["wes-"+id] == 0 {
				all = false
			}
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	lost, none, twice := 0, 0, 0
	storedSet := map[string]bool{}
	for _, id := range stored {
		storedSet[id] = true
		switch counts["wes-"+id] {
		case 0:
			none++
		case 1:
		default:
			twice++
		}
	}
	for _, id := range accepted {
		if !storedSet[id] {
			lost++
		}
	}
	fmt.Fprintf(stdout, "\nkill -9 while %d runs were being submitted to Slurm\n\n", n)
	fmt.Fprintln(stdout, "| measure | value |")
	fmt.Fprintln(stdout, "|---|---:|")
	fmt.Fprintf(stdout, "| runs accepted (200 before the kill) | %d |\n", len(accepted))
	fmt.Fprintf(stdout, "| runs in the store after restart | %d |\n", len(stored))
	fmt.Fprintf(stdout, "| accepted runs lost | %d |\n", lost)
	fmt.Fprintf(stdout, "| stored runs with exactly one Slurm job / none / more than one | %d / %d / %d |\n",
		len(stored)-none-twice, none, twice)
	if lost+none+twice > 0 {
		return fmt.Errorf("kill9: %d lost, %d without a job, %d with several", lost, none, twice)
	}
	return nil
}

func listRuns(hc *http.Client, base string) ([]string, error) {
	var ids []string
	next := ""
	for {
		url := base + "/runs?page_size=1000"
		if next != "" {
			url += "&page_token=" + next
		}
		resp, err := hc.Get(url)
		if err != nil {
			return nil, err
		}
		var page struct {
			Runs []struct {
				RunID string `json:"run_id"`
			} `json:"runs"`
			Next string `json:"next_page_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		for _, r := range page.Runs {
			ids = append(ids, r.RunID)
		}
		if page.Next == "" {
			return ids, nil
		}
		next = page.Next
	}
}

// jobsByName counts the service account's jobs (queued or finished in the
// last hour) by job name.
func jobsByName(c *ssh.Client) (map[string]int, error) {
	out, err := remote(c, "sacct --noheader --parsable2 -X --starttime=now-1hour --format=JobID,JobName")
	if err != nil {
		return nil, fmt.Errorf("sacct: %v: %s", err, out)
	}
	seen := map[string]bool{}
	counts := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		id, name, ok := strings.Cut(strings.TrimSpace(line), "|")
		if ok && !seen[id] {
			seen[id] = true
			counts[name]++
		}
	}
	// A job that just started may be in squeue before sacct has its name.
	out, err = remote(c, "squeue --me --noheader --states=all --format=%i|%j")
	if err == nil {
		for _, line := range strings.Split(out, "\n") {
			id, name, ok := strings.Cut(strings.TrimSpace(line), "|")
			if ok && !seen[id] {
				seen[id] = true
				counts[name]++
			}
		}
	}
	return counts, nil
}

func faultDiskFull(ctx context.Context, bin, work string, stdout, stderr io.Writer) error {
	mnt := filepath.Join(work, "small-disk")
	os.MkdirAll(mnt, 0o755)
	// A small filesystem of its own: loopback only, gone when unmounted.
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("diskfull: mount tmpfs (needs root): %v: %s", err, out)
	}
	defer exec.Command("umount", "-l", mnt).Run()
	data := filepath.Join(mnt, "data")
	engine := writeStandInEngine(work)
	cfg := filepath.Join(work, "diskfull.toml")
	os.WriteFile(cfg, fmt.Appendf(nil, "log_level = \"error\"\n[[engines]]\nname = \"cwltool\"\ncommand = [%q, \"{workflow}\"]\nversion_command = [%q, \"--version\"]\n", engine, engine), 0o600)
	srv, err := startServer(ctx, bin, cfg, data, io.Discard)
	if err != nil {
		return err
	}
	defer srv.stop()
	hc := &http.Client{Timeout: 30 * time.Second}
	big := strings.Repeat("x", 1<<20)
	statuses := map[int]int{}
	var firstFullMsg string
	for range 8 { // 8 MiB into a 4 MiB disk
		id, status, msg := postStatus(hc, srv.base, big)
		statuses[status]++
		if status != http.StatusOK && firstFullMsg == "" {
			firstFullMsg = msg
		}
		_ = id
	}
	storedFull, err := listRuns(hc, srv.base)
	if err != nil {
		return err
	}
	half := countHalfWritten(filepath.Join(data, "runs"), storedFull)
	tmpLeft, _ := os.ReadDir(filepath.Join(data, "tmp"))
	// Space returns.
	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("diskfull: grow tmpfs: %v: %s", err, out)
	}
	_, after, _ := postStatus(hc, srv.base, big)
	// The disk turns read-only: a running wesgate holds its database open,
	// so the filesystem cannot be remounted under it; wesgate is stopped,
	// the disk remounted read-only, and wesgate started on it.
	srv.stop()
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("diskfull: remount read-only: %v: %s", err, out)
	}
	var roErr strings.Builder
	roStart := exec.CommandContext(ctx, bin, "--addr", "127.0.0.1:0", "--data", data, "--config", cfg)
	roStart.Stderr = &roErr
	roRun := roStart.Run()
	readOnlyMsg := lastLine(roErr.String())
	if out, err := exec.Command("mount", "-o", "remount,rw", mnt).CombinedOutput(); err != nil {
		return fmt.Errorf("diskfull: remount read-write: %v: %s", err, out)
	}
	srv, err = startServer(ctx, bin, cfg, data, io.Discard)
	if err != nil {
		return fmt.Errorf("diskfull: start after the disk is writable again: %w", err)
	}
	_, writable, _ := postStatus(hc, srv.base, "small")
	fmt.Fprintf(stdout, "\ndata directory on a 4 MiB disk, 8 runs of 1 MiB each, then the disk grows to 64 MiB, then turns read-only and back\n\n")
	fmt.Fprintln(stdout, "| measure | value |")
	fmt.Fprintln(stdout, "|---|---:|")
	fmt.Fprintf(stdout, "| answers while filling | %v |\n", statuses)
	fmt.Fprintf(stdout, "| first refusal's message | %s |\n", firstFullMsg)
	fmt.Fprintf(stdout, "| runs stored / half-written run directories / staging left in tmp | %d / %d / %d |\n", len(storedFull), half, len(tmpLeft))
	fmt.Fprintf(stdout, "| POST after space returned | %d |\n", after)
	fmt.Fprintf(stdout, "| start on a read-only disk | refused: %s |\n", readOnlyMsg)
	fmt.Fprintf(stdout, "| start and POST once writable again | %d |\n", writable)
	var problems []string
	if statuses[http.StatusInternalServerError] > 0 {
		problems = append(problems, "a full disk gave 500")
	}
	if half > 0 || len(tmpLeft) > 0 {
		problems = append(problems, "half-written runs or staging left behind")
	}
	if after != http.StatusOK {
		problems = append(problems, "no recovery after space returned")
	}
	if roRun == nil || readOnlyMsg == "" || writable != http.StatusOK {
		problems = append(problems, "a read-only disk was not refused clearly at start, or there was no recovery")
	}
	if len(problems) > 0 {
		return errors.New("diskfull: " + strings.Join(problems, "; "))
	}
	return nil
}

func postStatus(hc *http.Client, base, attachment string) (string, int, string) {
	id, err := postRun(hc, base, "cwlVersion: v1.2\n#"+attachment, "{}")
	if err == nil {
		return id, http.StatusOK, ""
	}
	var code int
	var msg string
	fmt.Sscanf(err.Error(), "POST /runs: %d", &code)
	if _, m, ok := strings.Cut(err.Error(), fmt.Sprintf("%d ", code)); ok {
		msg = m
	}
	return "", code, msg
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// countHalfWritten counts run directories that belong to no stored run.
func countHalfWritten(runsDir string, stored []string) int {
	entries, _ := os.ReadDir(runsDir)
	known := map[string]bool{}
	for _, id := range stored {
		known[id] = true
	}
	n := 0
	for _, e := range entries {
		if !known[e.Name()] {
			n++
		}
	}
	return n
}
