package scheduler_test

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestScriptGolden(t *testing.T) {
	script, err := scheduler.Script(scheduler.ScriptSpec{
		Name:       "wes-0b9a6a5e-3f51-4c4e-9a51-5d1f0c6f2b7e",
		Dir:        "/home/alice/.wesgate/runs/0b9a6a5e-3f51-4c4e-9a51-5d1f0c6f2b7e",
		Directives: []string{"--partition=short", "--time=01:00:00", "--mem=4G"},
		Setup:      []string{"module load cwltool/3.1"},
		Command: []string{"cwltool", "--outdir", "/home/alice/.wesgate/runs/0b9a6a5e-3f51-4c4e-9a51-5d1f0c6f2b7e/outputs",
			"--parallel", "it's $(here)/wf.cwl", ".wesgate-params.json"},
	})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "job.sh.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, script, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./scheduler -update to write it)", err)
	}
	if !bytes.Equal(script, want) {
		t.Errorf("script differs from %s (run with -update after checking the change):\n%s", golden, script)
	}
	// The golden script must be valid bash.
	if out, err := exec.Command("bash", "-n", golden).CombinedOutput(); err != nil {
		t.Errorf("bash -n %s: %v\n%s", golden, err, out)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `''`},
		{"plain", `'plain'`},
		{"'", `''\'''`},
		{"it's", `'it'\''s'`},
		{"''", `''\'''\'''`},
		{"$(id)", `'$(id)'`},
		{"`id`", "'`id`'"},
		{"a\nb", "'a\nb'"},
		{`back\slash`, `'back\slash'`},
		{`"double"`, `'"double"'`},
		{"-rf", `'-rf'`},
	}
	for _, tt := range tests {
		got, err := scheduler.Quote(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Quote(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"\x00", "a\x00b", "ok'\x00"} {
		if got, err := scheduler.Quote(bad); err == nil {
			t.Errorf("Quote(%q) = %q, want an error", bad, got)
		}
	}
}

// hostile are values a user controls (attachment paths, parameters) that a
// shell would act on if they were not quoted.
var hostile = []string{
	"; touch PWNED",
	"a;touch PWNED",
	"| touch PWNED",
	"& touch PWNED &",
	"&& touch PWNED",
	"$(touch PWNED)",
	"`touch PWNED`",
	"${IFS}touch${IFS}PWNED",
	"'; touch PWNED; '",
	"'\"'\"'; touch PWNED; #",
	`"; touch PWNED; "`,
	`\'; touch PWNED #`,
	"\\",
	"'",
	"''",
	`"`,
	"x\ntouch PWNED",
	"x\r\ntouch PWNED\n",
	"\n",
	"*",
	"?",
	"[a-z]*",
	"~",
	"~root",
	"$HOME",
	"!!",
	"> PWNED",
	"< /etc/passwd",
	"-n",
	"--help",
	"-e \\n",
	"%s%s%n",
	"tab\there",
	"ünïcödé ✓ 日本語 🧬",
	"\x01\x1b[31mred\x7f",
	"",
	" leading and trailing ",
}

// runScript writes the script into dir and runs it the way the local
// executor does: bash in the run's work directory, its own process group.
func runScript(t *testing.T, dir string, spec scheduler.ScriptSpec) (stdout, stderr string, code int) {
	t.Helper()
	script, err := scheduler.Script(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, scheduler.ScriptFile)
	if err := os.WriteFile(path, script, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/bash", path)
	cmd.Dir = filepath.Join(dir, scheduler.WorkDir)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

// newRunDir makes a run directory with an empty work/ in a fresh temporary directory.
func newRunDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(filepath.Join(dir, scheduler.WorkDir), 0o750); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tree lists the paths under dir, relative and slash-separated.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		paths = append(paths, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

func TestScriptArgumentsAreInert(t *testing.T) {
	for i, value := range hostile {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			dir := newRunDir(t)
			// A file the glob values would expand to, were they expanded.
			if err := os.WriteFile(filepath.Join(dir, "work", "globbed"), nil, 0o640); err != nil {
				t.Fatal(err)
			}
			sentinel := filepath.Join(filepath.Dir(dir), "PWNED-ABS")
			absolute := strings.ReplaceAll(value, "PWNED", sentinel)
			for _, v := range []string{value, absolute} {
				stdout, stderr, code := runScript(t, dir, scheduler.ScriptSpec{
					Name: "job-" + strconv.Itoa(i), Dir: dir,
					Command: []string{"/usr/bin/printf", "%s", v},
				})
				if code != 0 {
					t.Fatalf("value %q: script exited %d; stderr:\n%s", v, code, stderr)
				}
				if stdout != v {
					t.Errorf("the engine got %q, want %q byte for byte", stdout, v)
				}
			}
			want := []string{".", ".wesgate", ".wesgate/ended", ".wesgate/engine.pid", ".wesgate/rc", ".wesgate/started",
				scheduler.ScriptFile, "outputs", "work", "work/globbed"}
			if got := tree(t, dir); !slices.Equal(got, want) {
				t.Errorf("run directory holds %q, want %q", got, want)
			}
			if _, err := os.Stat(sentinel); err == nil {
				t.Errorf("value %q ran a command: %s exists", absolute, sentinel)
			}
		})
	}
}

func TestScriptArgumentsInPlainShell(t *testing.T) {
	// The same values through sh -c, as an engine's wrapper script might
	// receive them: "$1" stays one argument.
	for i, value := range hostile {
		dir := newRunDir(t)
		out := filepath.Join(dir, "out.txt")
		_, stderr, code := runScript(t, dir, scheduler.ScriptSpec{
			Name: "job-" + strconv.Itoa(i), Dir: dir,
			Command: []string{"/bin/sh", "-c", `printf '%s' "$1" > "$2"`, "x", value, out},
		})
		if code != 0 {
			t.Fatalf("value %q: script exited %d; stderr:\n%s", value, code, stderr)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != value {
			t.Errorf("sh got %q, want %q", got, value)
		}
		if _, err := os.Stat(filepath.Join(dir, "work", "PWNED")); err == nil {
			t.Errorf("value %q created PWNED", value)
		}
	}
}

func readRecord(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func checkTimestamp(t *testing.T, dir, name string, notBefore time.Time) time.Time {
	t.Helper()
	ts, err := time.Parse("2006-01-02T15:04:05Z", readRecord(t, dir, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if ts.Before(notBefore.Truncate(time.Second)) || ts.After(time.Now().Add(time.Second)) {
		t.Errorf("%s = %v, not between %v and now", name, ts, notBefore)
	}
	return ts
}

func TestScriptRecordsExitCode(t *testing.T) {
	for _, want := range []int{0, 1, 7, 255} {
		dir := newRunDir(t)
		begin := time.Now()
		_, stderr, code := runScript(t, dir, scheduler.ScriptSpec{
			Name: "exit", Dir: dir, Command: []string{"sh", "-c", "exit " + strconv.Itoa(want)},
		})
		if code != want {
			t.Errorf("exit %d: script exited %d; stderr:\n%s", want, code, stderr)
		}
		if rc := readRecord(t, dir, scheduler.RCFile); rc != strconv.Itoa(want) {
			t.Errorf("exit %d: rc file says %q", want, rc)
		}
		started := checkTimestamp(t, dir, scheduler.StartedFile, begin)
		ended := checkTimestamp(t, dir, scheduler.EndedFile, begin)
		if ended.Before(started) {
			t.Errorf("ended %v before started %v", ended, started)
		}
		if _, err := os.Stat(filepath.Join(dir, ".wesgate", "rc.tmp")); err == nil {
			t.Error("rc.tmp left behind")
		}
	}
}

func TestScriptSetupAndWorkDir(t *testing.T) {
	dir := newRunDir(t)
	stdout, stderr, code := runScript(t, dir, scheduler.ScriptSpec{
		Name: "setup", Dir: dir,
		Setup:   []string{"export WESGATE_SETUP=loaded"},
		Command: []string{"sh", "-c", `printf '%s %s' "$WESGATE_SETUP" "$(pwd -P)"`},
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	work, _ := filepath.EvalSymlinks(filepath.Join(dir, "work"))
	if want := "loaded " + work; stdout != want {
		t.Errorf("engine saw %q, want %q (setup applied, cwd work/)", stdout, want)
	}
	if fi, err := os.Stat(filepath.Join(dir, scheduler.OutputsDir)); err != nil || !fi.IsDir() {
		t.Errorf("outputs/ not made: %v", err)
	}
}

func TestScriptWithoutWorkDirRecordsNoStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	script, err := scheduler.Script(scheduler.ScriptSpec{Name: "nowork", Dir: dir, Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, scheduler.ScriptFile)
	if err := os.WriteFile(path, script, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/bash", path)
	cmd.Dir = dir
	if err := cmd.Run(); err == nil {
		t.Fatal("script succeeded without a work directory")
	}
	// The engine never started: neither a start nor an exit code is recorded,
	// so the run is the system's failure, not the workflow's.
	for _, name := range []string{scheduler.StartedFile, scheduler.RCFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s written although the engine never started", name)
		}
	}
}

// startScript starts the script in its own process group and waits until
// the engine has written ready in the run directory.
func startScript(t *testing.T, dir string, engine string) *exec.Cmd {
	t.Helper()
	script, err := scheduler.Script(scheduler.ScriptSpec{Name: "term", Dir: dir, Command: []string{"sh", "-c", engine}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, scheduler.ScriptFile)
	if err := os.WriteFile(path, script, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/bash", path)
	cmd.Dir = filepath.Join(dir, "work")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	waitFor(t, filepath.Join(dir, "ready"))
	return cmd
}

// waitFor waits until a file exists and is not empty.
func waitFor(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if fi, err := os.Stat(name); err == nil && fi.Size() > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestScriptRecordsTermination(t *testing.T) {
	tests := []struct {
		name   string
		engine string
		group  bool // signal the process group (scancel, the local executor), else the script alone
		rc     int
	}{
		// The engine dies of SIGTERM: 128+15.
		{"killed", "echo > ../ready; exec sleep 60", true, 143},
		// The engine handles SIGTERM and exits with its own code.
		{"handled", `trap 'exit 5' TERM; echo > ../ready; sleep 60 & wait`, true, 5},
		// The engine cleans up after SIGTERM and succeeds.
		{"handled cleanly", `trap 'sleep 0.2; exit 0' TERM; echo > ../ready; sleep 60 & wait`, true, 0},
		// Slurm's --signal=B:TERM reaches the batch script only: it forwards.
		{"forwarded", "echo > ../ready; exec sleep 60", false, 143},
		{"forwarded and handled", `trap 'exit 6' TERM; echo > ../ready; sleep 60 & wait`, false, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newRunDir(t)
			cmd := startScript(t, dir, tt.engine)
			pid := cmd.Process.Pid
			if tt.group {
				pid = -pid
			}
			// The engine may be running before the script has written its
			// pid for forwarding; wait for that too.
			waitFor(t, filepath.Join(dir, ".wesgate", "engine.pid"))
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if code := cmd.ProcessState.ExitCode(); code != tt.rc {
				t.Errorf("script exited %d, want %d", code, tt.rc)
			}
			if rc := readRecord(t, dir, scheduler.RCFile); rc != strconv.Itoa(tt.rc) {
				t.Errorf("rc file says %q, want %d", rc, tt.rc)
			}
			readRecord(t, dir, scheduler.EndedFile)
		})
	}
}

func TestScriptRejectsUnsafeSpecs(t *testing.T) {
	ok := scheduler.ScriptSpec{Name: "wes-1", Dir: "/srv/runs/1", Directives: []string{"--partition=short"},
		Setup: []string{"module load x"}, Command: []string{"true"}}
	if _, err := scheduler.Script(ok); err != nil {
		t.Fatalf("a safe spec is refused: %v", err)
	}
	tests := []struct {
		name   string
		change func(*scheduler.ScriptSpec)
	}{
		{"empty name", func(s *scheduler.ScriptSpec) { s.Name = "" }},
		{"name with space", func(s *scheduler.ScriptSpec) { s.Name = "wes 1" }},
		{"name with semicolon", func(s *scheduler.ScriptSpec) { s.Name = "wes;id" }},
		{"name with newline", func(s *scheduler.ScriptSpec) { s.Name = "wes\n#SBATCH --uid=0" }},
		{"name with dollar", func(s *scheduler.ScriptSpec) { s.Name = "$(id)" }},
		{"name with unicode", func(s *scheduler.ScriptSpec) { s.Name = "wés" }},
		{"relative dir", func(s *scheduler.ScriptSpec) { s.Dir = "srv/runs/1" }},
		{"empty dir", func(s *scheduler.ScriptSpec) { s.Dir = "" }},
		{"dir with space", func(s *scheduler.ScriptSpec) { s.Dir = "/srv/my runs/1" }},
		{"dir with quote", func(s *scheduler.ScriptSpec) { s.Dir = "/srv/run's/1" }},
		{"dir with command", func(s *scheduler.ScriptSpec) { s.Dir = "/srv/$(id)" }},
		{"dir with backtick", func(s *scheduler.ScriptSpec) { s.Dir = "/srv/`id`" }},
		{"dir with semicolon", func(s *scheduler.ScriptSpec) { s.Dir = "/srv;id" }},
		{"dir with newline", func(s *scheduler.ScriptSpec) { s.Dir = "/srv\nid" }},
		{"dir with tilde", func(s *scheduler.ScriptSpec) { s.Dir = "/srv/~root" }},
		{"dir with glob", func(s *scheduler.ScriptSpec) { s.Dir = "/srv/*" }},
		{"dir with slurm pattern", func(s *scheduler.ScriptSpec) { s.Dir = "/srv/%j" }},
		{"directive without dashes", func(s *scheduler.ScriptSpec) { s.Directives = []string{"partition=short"} }},
		{"directive with space", func(s *scheduler.ScriptSpec) { s.Directives = []string{"--partition=a b"} }},
		{"directive with newline", func(s *scheduler.ScriptSpec) { s.Directives = []string{"--partition=a\n#SBATCH --uid=0"} }},
		{"directive with command", func(s *scheduler.ScriptSpec) { s.Directives = []string{"--comment=$(id)"} }},
		{"empty directive", func(s *scheduler.ScriptSpec) { s.Directives = []string{""} }},
		{"setup with newline", func(s *scheduler.ScriptSpec) { s.Setup = []string{"module load x\nid"} }},
		{"setup with carriage return", func(s *scheduler.ScriptSpec) { s.Setup = []string{"module load x\rid"} }},
		{"empty command", func(s *scheduler.ScriptSpec) { s.Command = nil }},
		{"argument with NUL", func(s *scheduler.ScriptSpec) { s.Command = []string{"true", "a\x00b"} }},
	}
	for _, tt := range tests {
		spec := ok
		spec.Directives = slices.Clone(ok.Directives)
		spec.Setup = slices.Clone(ok.Setup)
		spec.Command = slices.Clone(ok.Command)
		tt.change(&spec)
		if script, err := scheduler.Script(spec); err == nil {
			t.Errorf("%s: accepted:\n%s", tt.name, script)
		}
	}
}
