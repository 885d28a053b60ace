package slurm

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// The files in testdata/ are real outputs of the lab cluster (Slurm 22.05),
// made by testdata/capture.sh as wesuser1 with the formats below. If a
// format changes, re-capture and update the expectations.
func TestCaptureUsesOurFormats(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "capture.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`--format="` + squeueFormat + `"`, "--format=" + sacctFields, "SLURM_TIME_FORMAT=" + slurmTimeFormat, "TZ=UTC"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("capture.sh does not use %s: re-capture testdata with the format parse.go asks for", want)
		}
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// at is a time of the capture, in UTC as Slurm printed it (TZ=UTC).
func at(hms string) time.Time {
	tm, err := time.Parse(time.DateTime, "2026-11-27 "+hms)
	if err != nil {
		panic(err)
	}
	return tm
}

func TestParseSqueue(t *testing.T) {
	got, err := parseSqueue(readTestdata(t, "squeue.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]scheduler.JobStatus{
		// Finished jobs stay in `squeue --states=all` for MinJobAge.
		"24": {ID: "24", State: "COMPLETED", Partition: "debug", Node: "vm", Start: at("23:23:43")},
		// For a pending job %S is Slurm's guess (here the --begin time, an
		// hour ahead), not a start: it must not be reported as one.
		"22": {ID: "22", State: "PENDING", Reason: "BeginTime", Partition: "debug"},
		"23": {ID: "23", State: "PENDING", Reason: "Dependency", Partition: "debug"},
		"21": {ID: "21", State: "PENDING", Reason: "JobHeldUser", Held: true, Partition: "debug"},
		"20": {ID: "20", State: "RUNNING", Partition: "debug", Node: "vm", Start: at("23:23:43")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSqueue:\n got %+v\nwant %+v", got, want)
	}
}

// Expected parses of the captured sacct outputs, by file.
var sacctWant = map[string]scheduler.JobStatus{
	"sacct_completed.txt": {ID: "26", State: "COMPLETED", HasExit: true,
		Start: at("23:23:45"), End: at("23:23:45"), Partition: "debug", Node: "vm",
		Steps: []scheduler.Step{{ID: "batch", Name: "batch", State: "COMPLETED", HasExit: true, Start: at("23:23:45"), End: at("23:23:45")}}},
	"sacct_exit3.txt": {ID: "27", State: "FAILED", ExitCode: 3, HasExit: true,
		Start: at("23:23:45"), End: at("23:23:45"), Partition: "debug", Node: "vm",
		Steps: []scheduler.Step{{ID: "batch", Name: "batch", State: "FAILED", ExitCode: 3, HasExit: true, Start: at("23:23:45"), End: at("23:23:45")}}},
	// `kill -9 $$`: the job is FAILED 0:9, its batch step CANCELLED 0:9.
	"sacct_sigkill.txt": {ID: "28", State: "FAILED", ExitCode: 128 + 9, HasExit: true,
		Start: at("23:23:46"), End: at("23:23:46"), Partition: "debug", Node: "vm",
		Steps: []scheduler.Step{{ID: "batch", Name: "batch", State: "CANCELLED", ExitCode: 128 + 9, HasExit: true, Start: at("23:23:46"), End: at("23:23:46")}}},
	// `srun true; srun false`: steps in sacct's order, named after the program.
	"sacct_steps.txt": {ID: "29", State: "FAILED", ExitCode: 1, HasExit: true,
		Start: at("23:23:46"), End: at("23:23:46"), Partition: "debug", Node: "vm",
		Steps: []scheduler.Step{
			{ID: "batch", Name: "batch", State: "FAILED", ExitCode: 1, HasExit: true, Start: at("23:23:46"), End: at("23:23:46")},
			{ID: "0", Name: "true", State: "COMPLETED", HasExit: true, Start: at("23:23:46"), End: at("23:23:46")},
			{ID: "1", Name: "false", State: "FAILED", ExitCode: 1, HasExit: true, Start: at("23:23:46"), End: at("23:23:46")},
		}},
	// scancel as wesuser1 (uid 1001) while running: the job line says 0:0,
	// the batch step was killed by SIGTERM.
	"sacct_cancelled_running.txt": {ID: "30", State: "CANCELLED", CancelledBy: "1001", HasExit: true,
		Start: at("23:23:47"), End: at("23:23:48"), Partition: "debug", Node: "vm",
		Steps: []scheduler.Step{{ID: "batch", Name: "batch", State: "CANCELLED", ExitCode: 128 + 15, HasExit: true, Start: at("23:23:47"), End: at("23:23:48")}}},
	// scancel while held: Start "None", NodeList "None assigned", no steps.
	"sacct_cancelled_pending.txt": {ID: "31", State: "CANCELLED", CancelledBy: "1001", HasExit: true,
		End: at("23:23:48"), Partition: "debug"},
	// scancel while waiting for --begin: sacct has Start = End = the cancel
	// time, but no node; a job that never had a node never started.
	"sacct_cancelled_begin.txt": {ID: "143", State: "CANCELLED", CancelledBy: "1001", HasExit: true,
		End: at("23:36:21"), Partition: "debug"},
	// Right after the end: the placeholder ("allocation", no partition), but
	// state, exit code and the batch step are right.
	"sacct_placeholder.txt": {ID: "25", State: "COMPLETED", HasExit: true,
		Start: at("23:23:44"), End: at("23:23:44"), Node: "vm",
		Steps: []scheduler.Step{{ID: "batch", Name: "batch", State: "COMPLETED", HasExit: true, Start: at("23:23:44"), End: at("23:23:44")}}},
}

func TestParseSacct(t *testing.T) {
	for file, want := range sacctWant {
		t.Run(file, func(t *testing.T) {
			got, err := parseSacct(readTestdata(t, file))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[want.ID], want) {
				t.Errorf("parseSacct:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// One sacct call answers for many jobs; each job's steps stay with it.
func TestParseSacctMany(t *testing.T) {
	got, err := parseSacct(readTestdata(t, "sacct_all.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]scheduler.JobStatus{}
	for file, st := range sacctWant {
		if file != "sacct_placeholder.txt" && file != "sacct_cancelled_begin.txt" {
			want[st.ID] = st
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSacct:\n got %+v\nwant %+v", got, want)
	}
}

// The lab has no PrologFlags=Contain, so it never makes extern steps; this
// input is hand-made in the shape sacct prints them on clusters that do.
func TestParseSacctSkipsExternAndInteractive(t *testing.T) {
	in := "7|wes-x|COMPLETED|0:0|2026-11-27T10:00:00|2026-11-27T10:00:05|debug|vm\n" +
		"7.batch|batch|COMPLETED|0:0|2026-11-27T10:00:00|2026-11-27T10:00:05||vm\n" +
		"7.extern|extern|COMPLETED|0:0|2026-11-27T10:00:00|2026-11-27T10:00:05||vm\n" +
		"7.interactive|interactive|COMPLETED|0:0|2026-11-27T10:00:00|2026-11-27T10:00:05||vm\n" +
		"7.0|true|COMPLETED|0:0|2026-11-27T10:00:01|2026-11-27T10:00:02||vm\n"
	got, err := parseSacct([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range got["7"].Steps {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, ",") != "batch,0" {
		t.Errorf("steps %v, want batch,0", ids)
	}
}

func TestParseMalformed(t *testing.T) {
	squeue := []string{
		"20|RUNNING|None|debug|vm",                          // 5 fields
		"20|RUNNING|None|debug|vm|2026-11-27T23:23:43|x",    // 7 fields
		"20|RUNNING|None|debug|vm|yesterday",                // not a time
		"20|RUNNING|None|debug|vm|2026-11-27 23:23:43",      // default SLURM_TIME_FORMAT was not overridden
		"20|RUNNING|None|debug|vm|11/27-23:23:43",           // ditto (Slurm's "standard" format)
		"             JOBID PARTITION     NAME     USER ST", // a human header
	}
	for _, in := range squeue {
		if got, err := parseSqueue([]byte(in + "\n")); err == nil {
			t.Errorf("parseSqueue(%q) = %v, want an error", in, got)
		}
	}
	sacct := []string{
		"26|cap-ok|COMPLETED|0:0|2026-11-27T23:23:45|2026-11-27T23:23:45|debug",      // 7 fields
		"26|cap-ok|COMPLETED|0:0|2026-11-27T23:23:45|2026-11-27T23:23:45|debug|vm|x", // 9 fields
		"26|cap-ok|COMPLETED|0|2026-11-27T23:23:45|2026-11-27T23:23:45|debug|vm",     // exit code without signal
		"26|cap-ok|COMPLETED|x:0|2026-11-27T23:23:45|2026-11-27T23:23:45|debug|vm",   // not a number
		"26|cap-ok|COMPLETED|0:0|2026-11-27T23:23:45|2026-13-27T23:23:45|debug|vm",   // month 13
		"26|cap-ok|COMPLETED|0:0|Nov 27 23:23|2026-11-27T23:23:45|debug|vm",          // other time format
		"26.batch|batch|COMPLETED|0:0|2026-11-27T23:23:45|yesterday||vm",             // bad step time
		"JobID   JobName  State  ExitCode",                                           // not --parsable2
		"26|cap-ok|COMPLETED|0:0|2026-11-27T23:23:45|2026-11-27T23:23:45|debug|vm|",  // --parsable (trailing |)
	}
	for _, in := range sacct {
		if got, err := parseSacct([]byte(in + "\n")); err == nil {
			t.Errorf("parseSacct(%q) = %v, want an error", in, got)
		}
	}
	// Nothing at all is an empty answer, not an error.
	for _, in := range []string{"", "\n", "\n\n"} {
		if got, err := parseSqueue([]byte(in)); err != nil || len(got) != 0 {
			t.Errorf("parseSqueue(%q) = %v, %v", in, got, err)
		}
		if got, err := parseSacct([]byte(in)); err != nil || len(got) != 0 {
			t.Errorf("parseSacct(%q) = %v, %v", in, got, err)
		}
	}
}

func TestParseExitCode(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"0:0", 0},
		{"1:0", 1},
		{"3:0", 3},
		{"255:0", 255},
		{"0:9", 137},   // SIGKILL
		{"0:15", 143},  // SIGTERM
		{"0:2", 130},   // SIGINT
		{"143:0", 143}, // a wrapper that records an engine killed by SIGTERM
	}
	for _, tt := range tests {
		if got, err := parseExitCode(tt.in); err != nil || got != tt.want {
			t.Errorf("parseExitCode(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "0", "3", ":", "3:", ":0", "a:0", "0:b", "3:0:0", " 3:0", "3 :0"} {
		if got, err := parseExitCode(bad); err == nil {
			t.Errorf("parseExitCode(%q) = %d, want an error", bad, got)
		}
	}
}

func TestParseJobID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"26\n", "26"},
		{"26", "26"},
		{"26;wesgate-lab\n", "26"}, // --parsable on a multi-cluster setup
		{"  26  \n", "26"},
		{"12345678901234567890\n", "12345678901234567890"},
	}
	for _, tt := range tests {
		if got, err := parseJobID([]byte(tt.in)); err != nil || got != tt.want {
			t.Errorf("parseJobID(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	bad := []string{
		"", "\n", ";wesgate-lab",
		"Submitted batch job 26\n", // sbatch without --parsable
		"26_1", "26.batch", "-26", "0x1a", "26 27",
		"123456789012345678901", // 21 digits
		"sbatch: error: invalid partition specified: nosuch\n",
	}
	for _, in := range bad {
		if got, err := parseJobID([]byte(in)); err == nil {
			t.Errorf("parseJobID(%q) = %q, want an error", in, got)
		}
	}
}

// Slurm 22.05's accounting keeps 7 bits of a batch script's exit status
// (slurmctld logs "WEXITSTATUS 137", sacct says 9:0; scontrol show job says
// 137:0). The parser cannot undo that; this records what it gets: a job can
// be FAILED with exit code 0 (exit 128). The wrapper's rc file is the record
// to trust for codes above 127.
func TestParseSacctExitAbove127(t *testing.T) {
	got, err := parseSacct(readTestdata(t, "sacct_over128.txt"))
	if err != nil {
		t.Fatal(err)
	}
	exits := map[string]int{"116": 127, "117": 128, "118": 129, "119": 137, "120": 143, "121": 200, "122": 255}
	if len(got) != len(exits) {
		t.Fatalf("%d jobs, want %d", len(got), len(exits))
	}
	for id, exit := range exits {
		st := got[id]
		if st.State != scheduler.StateFailed || st.ExitCode != exit&127 || len(st.Steps) != 1 || st.Steps[0].ExitCode != exit&127 {
			t.Errorf("job %s (exit %d): %+v, want FAILED with code %d as sacct printed it", id, exit, st, exit&127)
		}
	}
}

// The slurm package classifies pending reasons: wes maps Held and Doomed.
func TestPendingReasons(t *testing.T) {
	for _, tt := range []struct {
		reason       string
		held, doomed bool
	}{
		{"Priority", false, false}, {"Resources", false, false}, {"QOSJobLimit", false, false},
		{"PartitionNodeLimit", false, false}, {"AssocGrpCpuLimit", false, false},
		{"JobHeldUser", true, false}, {"JobHeldAdmin", true, false},
		{"PartitionConfig", false, true}, {"InvalidAccount", false, true}, {"InvalidQOS", false, true},
		{"BadConstraints", false, true},
	} {
		out := []byte("7|PENDING|" + tt.reason + "|debug||N/A\n")
		jobs, err := parseSqueue(out)
		if err != nil {
			t.Fatal(err)
		}
		if st := jobs["7"]; st.Held != tt.held || st.Doomed != tt.doomed {
			t.Errorf("%s: held %v doomed %v, want %v %v", tt.reason, st.Held, st.Doomed, tt.held, tt.doomed)
		}
	}
	// A running job's reason is not classified.
	jobs, _ := parseSqueue([]byte("8|RUNNING|JobHeldUser|debug|n1|2026-11-27T23:23:43\n"))
	if jobs["8"].Held {
		t.Error("a running job is not held")
	}
}

// In per-user mode a run never reaches the cluster as the service account,
// whatever name it was stored with: no connection is even made.
func TestPerUserRefusesServiceAccount(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dialled := false
	pool, err := NewPool(SSHConfig{Addr: "127.0.0.1:1", KnownHosts: kh, Credentials: func(string) (Credentials, error) {
		dialled = true
		return Credentials{}, errors.New("no")
	}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ex, err := New(Config{Base: "/srv/{user}/runs", ServiceAccount: "wesgate-svc", PerUser: true}, pool, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	res := ex.SubmitBatch(context.Background(), "wesgate-svc", []scheduler.Job{{Name: "wes-x", User: "wesgate-svc", Dir: "/srv/wesgate-svc/runs/x"}})
	var rej *scheduler.RejectedError
	if !errors.As(res[0].Err, &rej) || dialled {
		t.Errorf("submit as the service account in per-user mode: %v (dialled %v), want a rejection without a login", res[0].Err, dialled)
	}
}
