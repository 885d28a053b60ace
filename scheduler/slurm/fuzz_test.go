package slurm

import (
	"strings"
	"testing"
)

// FuzzParseSqueue: squeue output never panics the parser, and a job it
// returns carries the id of its line.
func FuzzParseSqueue(f *testing.F) {
	for _, s := range []string{"12|PENDING|JobHeldUser|debug||N/A\n", "13|RUNNING|None|debug|vm|2026-11-27T23:20:22\n",
		"x|y", "||||||", "1|RUNNING|None|debug|vm|not-a-time\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		jobs, err := parseSqueue([]byte(out))
		if err != nil {
			return
		}
		for id, st := range jobs {
			if st.ID != id || !strings.Contains(out, id+"|") {
				t.Fatalf("job %q from %q", id, out)
			}
		}
	})
}

// FuzzParseSacct: sacct output never panics the parser; exit codes are
// never negative, and steps belong to jobs in the output.
func FuzzParseSacct(f *testing.F) {
	for _, s := range []string{
		"13|allocation|FAILED|3:0|2026-11-27T23:20:22|2026-11-27T23:20:23||vm\n13.batch|batch|FAILED|3:0|2026-11-27T23:20:22|2026-11-27T23:20:23||vm\n",
		"12|wrap|CANCELLED by 1001|0:0|None|2026-11-27T23:18:42|debug|None assigned\n",
		"7|x|FAILED|0:9|Unknown|Unknown|debug|vm\n", "1|a|b|c|d|e|f|g\n", "1.extern|extern|COMPLETED|0:0|None|None||\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, out string) {
		jobs, err := parseSacct([]byte(out))
		if err != nil {
			return
		}
		for id, st := range jobs {
			if st.ExitCode < 0 && !strings.Contains(out, "-") {
				t.Fatalf("job %s: exit code %d from %q", id, st.ExitCode, out)
			}
			for _, step := range st.Steps {
				if !strings.Contains(out, id+"."+step.ID+"|") {
					t.Fatalf("step %s of job %s not in %q", step.ID, id, out)
				}
			}
		}
	})
}
