package slurm

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// Output formats wesgate asks Slurm for. Every remote command runs with
// TZ=UTC and this SLURM_TIME_FORMAT, so times parse without guessing zones.
const (
	slurmTimeFormat = "%Y-%m-%dT%H:%M:%S"
	goTimeFormat    = "2006-01-02T15:04:05"
	squeueFormat    = "%i|%T|%r|%P|%N|%S"
	sacctFields     = "JobID,JobName,State,ExitCode,Start,End,Partition,NodeList"
)

// parseTime reads a Slurm time; "None", "Unknown", "N/A" and "" are zero.
func parseTime(s string) (time.Time, error) {
	switch s {
	case "", "None", "Unknown", "N/A":
		return time.Time{}, nil
	}
	return time.ParseInLocation(goTimeFormat, s, time.UTC)
}

// parseExitCode reads sacct's "code:signal": a signal gives 128+signal.
func parseExitCode(s string) (int, error) {
	code, sig, ok := strings.Cut(s, ":")
	if !ok {
		return 0, fmt.Errorf("exit code %q is not code:signal", s)
	}
	c, err1 := strconv.Atoi(code)
	g, err2 := strconv.Atoi(sig)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("exit code %q is not code:signal", s)
	}
	if g > 0 {
		return 128 + g, nil
	}
	return c, nil
}

// parseSqueue parses `squeue --noheader --format=squeueFormat` output.
func parseSqueue(out []byte) (map[string]scheduler.JobStatus, error) {
	jobs := map[string]scheduler.JobStatus{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 6 {
			return nil, fmt.Errorf("squeue: %d fields in %q, want 6", len(f), line)
		}
		start, err := parseTime(f[5])
		if err != nil {
			return nil, fmt.Errorf("squeue: %w", err)
		}
		if f[1] == scheduler.StatePending {
			// %S of a pending job is Slurm's forecast (a --begin time, a
			// backfill estimate), not a start.
			start = time.Time{}
		}
		reason := f[2]
		if reason == "None" {
			reason = ""
		}
		st := scheduler.JobStatus{ID: f[0], State: f[1], Reason: reason, Partition: f[3],
			Node: f[4], Start: start}
		if st.State == scheduler.StatePending {
			st.Held, st.Doomed = heldReasons[reason], unsatisfiable[reason]
		}
		jobs[f[0]] = st
	}
	return jobs, nil
}

// unsatisfiable lists Slurm pending reasons that no wait will cure. Reasons
// that pass with time stay out: QOSJobLimit (the QOS's job count is reached
// until other jobs end) and PartitionNodeLimit (also given while the nodes
// are down or drained).
var unsatisfiable = map[string]bool{
	"PartitionConfig": true, "InvalidAccount": true, "InvalidQOS": true, "BadConstraints": true,
}

// heldReasons are the pending reasons of a held job.
var heldReasons = map[string]bool{"JobHeldUser": true, "JobHeldAdmin": true}

// parseSacct parses `sacct --noheader --parsable2 --format=sacctFields`
// output (without -X, so job steps follow their job). Steps other than the
// batch step and srun steps (extern, interactive) are left out.
func parseSacct(out []byte) (map[string]scheduler.JobStatus, error) {
	jobs := map[string]scheduler.JobStatus{}
	var order []string
	steps := map[string][]scheduler.Step{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 8 {
			return nil, fmt.Errorf("sacct: %d fields in %q, want 8", len(f), line)
		}
		state, by, _ := strings.Cut(f[2], " by ")
		state = strings.TrimSuffix(state, "+")
		code, err := parseExitCode(f[3])
		if err != nil {
			return nil, fmt.Errorf("sacct: %w", err)
		}
		start, err1 := parseTime(f[4])
		end, err2 := parseTime(f[5])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("sacct: bad time in %q", line)
		}
		jobID, stepID, isStep := strings.Cut(f[0], ".")
		if !isStep && nodeList(f[7]) == "" {
			// Never given a node, never started: sacct has the cancel time
			// as Start of a job cancelled while waiting for its --begin.
			start = time.Time{}
		}
		if !isStep {
			jobs[jobID] = scheduler.JobStatus{ID: jobID, State: state, CancelledBy: by, ExitCode: code,
				HasExit: true, Start: start, End: end, Partition: f[6], Node: nodeList(f[7])}
			order = append(order, jobID)
			continue
		}
		if stepID == "extern" || stepID == "interactive" {
			continue
		}
		steps[jobID] = append(steps[jobID], scheduler.Step{ID: stepID, Name: f[1], State: state,
			ExitCode: code, HasExit: true, Start: start, End: end})
	}
	for _, id := range order {
		j := jobs[id]
		j.Steps = steps[id]
		jobs[id] = j
	}
	return jobs, nil
}

func nodeList(s string) string {
	if s == "None assigned" {
		return ""
	}
	return s
}

// parseJobID reads `sbatch --parsable` output: "123" or "123;cluster".
func parseJobID(out []byte) (string, error) {
	s := strings.TrimSpace(string(out))
	id, _, _ := strings.Cut(s, ";")
	if !validJobID(id) {
		return "", fmt.Errorf("sbatch printed %q, not a job id", firstLine(s))
	}
	return id, nil
}

// validJobID reports whether s is a plain Slurm job id (digits).
func validJobID(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
