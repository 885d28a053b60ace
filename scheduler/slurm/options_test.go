package slurm

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wesgate/wesgate/scheduler"
)

// offlineExecutor is an Executor whose pool is never used: every option but
// a well-formed --partition is checked without the cluster.
func offlineExecutor(t *testing.T) *Executor {
	t.Helper()
	ex, err := New(Config{Base: "/srv/runs/{user}", ServiceAccount: "svc", DefaultPartition: "debug"}, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

type optionCase struct {
	name, value string
	ok          bool
}

var optionCases = []optionCase{
	// Slurm's time formats (sbatch(1) --time).
	{"--time", "0", true},
	{"--time", "30", true},
	{"--time", "30:00", true},
	{"--time", "1:30:00", true},
	{"--time", "01:00:00", true},
	{"--time", "1-0", true},
	{"--time", "1-00", true},
	{"--time", "2-12:30", true},
	{"--time", "2-12:30:15", true},
	{"--time", "UNLIMITED", true},
	{"--time", "INFINITE", true},
	{"--time", "", false},
	{"--time", "1h", false},
	{"--time", "1:2:3:4", false},
	{"--time", "1-2:3:4:5", false},
	{"--time", "-5", false},
	{"--time", "1-", false},
	{"--time", "1-2-3", false},
	{"--time", ":", false},
	{"--time", "1::2", false},
	{"--time", "a:b", false},
	{"--time", " 1", false},
	{"--time", "1 ", false},
	{"--time", "1.5", false},
	{"--time", "1e3", false},
	{"--time", "1234567890", false}, // more than 9 digits
	{"--time", "UNLIMITED;id", false},
	{"--time", "forever", false},

	{"--mem", "0", true},
	{"--mem", "100", true},
	{"--mem", "100K", true},
	{"--mem", "512M", true},
	{"--mem", "8G", true},
	{"--mem", "1T", true},
	{"--mem", "", false},
	{"--mem", "G", false},
	{"--mem", "8GB", false},
	{"--mem", "8GG", false},
	{"--mem", "8P", false},
	{"--mem", "8.5G", false},
	{"--mem", "-1G", false},
	{"--mem", "8 G", false},
	{"--mem", "G8", false},
	{"--mem", "8g", false}, // sbatch takes it; wesgate asks for the documented form

	{"--cpus-per-task", "1", true},
	{"--cpus-per-task", "64", true},
	{"--cpus-per-task", "4096", true},
	{"--cpus-per-task", "0", false},
	{"--cpus-per-task", "4097", false},
	{"--cpus-per-task", "-1", false},
	{"--cpus-per-task", "+4", false},
	{"--cpus-per-task", "1.5", false},
	{"--cpus-per-task", "0x10", false},
	{"--cpus-per-task", " 4", false},
	{"--cpus-per-task", "", false},
	{"--cpus-per-task", "two", false},
	{"--cpus-per-task", "99999999999999999999", false},

	{"--account", "lab", true},
	{"--account", "proj-1_a.b", true},
	{"--account", strings.Repeat("a", 64), true},
	{"--account", strings.Repeat("a", 65), false},
	{"--account", "", false},
	{"--account", "a b", false},
	{"--account", "a/b", false},

	{"--qos", "normal", true},
	{"--qos", "high prio", false},

	{"--gres", "gpu:1", true},
	{"--gres", "gpu:a100:2", true},
	{"--gres", "gpu:1,shard:2", true},
	{"--gres", "gpu:1|x", false},
	{"--gres", "gpu/1", false},

	{"--constraint", "intel", true},
	{"--constraint", "intel&avx2", true},
	{"--constraint", "a100|h100", true},
	{"--constraint", "intel,avx2", true},
	{"--constraint", "[a|b]", false},
	{"--constraint", "a*2", false},
	{"--constraint", "a>b", false},

	// A --partition with a bad format is refused before the cluster is asked.
	{"--partition", "", false},
	{"--partition", "deb ug", false},
	{"--partition", "debug,long", false},
	{"--partition", strings.Repeat("p", 65), false},
}

func TestCheckOption(t *testing.T) {
	ex := offlineExecutor(t)
	ctx := context.Background()
	for _, tt := range optionCases {
		if tt.name == "--partition" && tt.ok {
			continue // needs the cluster: TestLabCheckPartition
		}
		err := ex.CheckOption(ctx, tt.name, tt.value)
		if (err == nil) != tt.ok {
			t.Errorf("CheckOption(%s, %q) = %v, want ok=%v", tt.name, tt.value, err, tt.ok)
		}
		if err != nil && err.Error() == "" {
			t.Errorf("CheckOption(%s, %q): empty message", tt.name, tt.value)
		}
	}
}

// No shell or Slurm metacharacter passes any option, except & and | in
// --constraint, which are Slurm's AND and OR there.
func TestCheckOptionRefusesMetacharacters(t *testing.T) {
	ex := offlineExecutor(t)
	good := map[string]string{"--partition": "debug", "--time": "10", "--cpus-per-task": "2", "--mem": "8G",
		"--account": "lab", "--qos": "normal", "--gres": "gpu:1", "--constraint": "intel"}
	for _, o := range ex.Options() {
		if _, ok := good[o.Name]; !ok {
			t.Fatalf("no test value for %s", o.Name)
		}
	}
	const meta = ";|&$`'\"\\<>(){}[]*?!#~=% \t\n\r\x00"
	for name, v := range good {
		for _, c := range meta {
			if name == "--constraint" && (c == '&' || c == '|') {
				continue
			}
			for _, bad := range []string{string(c) + v, v + string(c), v[:1] + string(c) + v[1:], v + string(c) + "id"} {
				if err := ex.CheckOption(context.Background(), name, bad); err == nil {
					t.Errorf("CheckOption(%s, %q) accepted", name, bad)
				}
				if d := ex.Directives(map[string]string{name: bad}); slices.Contains(d, name+"="+bad) {
					t.Errorf("Directives rendered %q for %s=%q", d, name, bad)
				}
			}
		}
	}
}

func TestCheckOptionUnknown(t *testing.T) {
	ex := offlineExecutor(t)
	for _, name := range []string{"--array", "-a", "-A", "-p", "--wrap", "--export", "--output", "--error", "--chdir",
		"--uid", "--get-user-env", "--begin", "--dependency", "--job-name", "partition", "--Partition", "--partition ", ""} {
		if err := ex.CheckOption(context.Background(), name, "x"); err == nil {
			t.Errorf("CheckOption(%q) accepted an option wesgate does not pass on", name)
		}
	}
}

func TestDirectives(t *testing.T) {
	ex := offlineExecutor(t)
	tests := []struct {
		in   map[string]string
		want []string
	}{
		// The default partition when none is given.
		{nil, []string{"--partition=debug"}},
		{map[string]string{"--partition": "long"}, []string{"--partition=long"}},
		// Declared order, whatever the map's; always the long form with "=":
		// -a would be --array, and "--account lab" two words.
		{map[string]string{"--constraint": "intel&avx2", "--account": "lab", "--mem": "8G", "--time": "1-00:00:00",
			"--cpus-per-task": "4", "--qos": "normal", "--gres": "gpu:1"},
			[]string{"--partition=debug", "--time=1-00:00:00", "--cpus-per-task=4", "--mem=8G", "--account=lab",
				"--qos=normal", "--gres=gpu:1", "--constraint=intel&avx2"}},
		// Values that would not pass CheckOption and unknown options are
		// dropped, should one get this far.
		{map[string]string{"--time": "1;id", "--wrap": "id", "--mem": "$(id)", "--account": "-a"},
			[]string{"--partition=debug", "--account=-a"}},
	}
	for _, tt := range tests {
		if got := ex.Directives(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Directives(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	noDefault, err := New(Config{Base: "/srv/runs", ServiceAccount: "svc"}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := noDefault.Directives(nil); len(got) != 0 {
		t.Errorf("without a default partition Directives(nil) = %q, want none (Slurm chooses)", got)
	}
	for _, o := range ex.Options() {
		if o.Name == "--partition" && o.Default != "debug" {
			t.Errorf("Options: --partition default %q, want debug", o.Default)
		}
	}
}

// Every value CheckOption accepts must make a directive scheduler.Script
// takes; otherwise a run is accepted and then cannot start.
func TestDirectivesAcceptedByScript(t *testing.T) {
	ex := offlineExecutor(t)
	for _, tt := range optionCases {
		if !tt.ok {
			continue
		}
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			d := ex.Directives(map[string]string{tt.name: tt.value})
			if !slices.Contains(d, tt.name+"="+tt.value) {
				t.Fatalf("Directives = %q, want %s=%s in it", d, tt.name, tt.value)
			}
			_, err := scheduler.Script(scheduler.ScriptSpec{Name: "wes-x", Dir: "/srv/runs/x", Directives: d, Command: []string{"true"}})
			if err != nil {
				t.Error(err)
			}
		})
	}
}

// When the cluster cannot be asked and nothing is cached, a well-formed
// partition passes and sbatch decides.
func TestCheckPartitionOffline(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := NewPool(SSHConfig{Addr: closedAddr(t), KnownHosts: kh, DialTimeout: 2 * time.Second,
		Credentials: func(string) (Credentials, error) { return Credentials{User: "svc", Signer: newSigner(t)}, nil }},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ex, err := New(Config{Base: "/srv/runs", ServiceAccount: "svc"}, pool, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := ex.CheckOption(context.Background(), "--partition", "anything"); err != nil {
		t.Errorf("CheckOption with the cluster away: %v, want nil", err)
	}
	if err := ex.CheckOption(context.Background(), "--partition", "any;thing"); err == nil {
		t.Error("a malformed partition passed while the cluster was away")
	}
}

// The partition list comes from the lab's real sinfo.
func TestLabCheckPartition(t *testing.T) {
	l := requireLab(t)
	t.Parallel()
	ex := labExecutor(t, l, labPool(t, l, nil, testLog(t)), testLog(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var parts []string
	err := retry(t, "sinfo", func(ctx context.Context) (err error) {
		parts, err = ex.Partitions(ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(parts, l.Partition) || !slices.Contains(parts, l.Partition2) {
		t.Fatalf("Partitions = %q, want %s and %s (no \"*\" for the default)", parts, l.Partition, l.Partition2)
	}
	for _, p := range []string{l.Partition, l.Partition2} {
		if err := ex.CheckOption(ctx, "--partition", p); err != nil {
			t.Errorf("CheckOption(--partition, %s): %v", p, err)
		}
	}
	err = ex.CheckOption(ctx, "--partition", "nosuch")
	if err == nil {
		t.Fatal("CheckOption(--partition, nosuch) accepted")
	}
	for _, want := range []string{`"nosuch"`, l.Partition, l.Partition2} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	for _, bad := range []string{"debug*", l.Partition + " ", strings.ToUpper(l.Partition)} {
		if err := ex.CheckOption(ctx, "--partition", bad); err == nil {
			t.Errorf("CheckOption(--partition, %q) accepted", bad)
		}
	}
}

func newSigner(t testing.TB) ssh.Signer {
	t.Helper()
	_, signer := newKey(t)
	return signer
}
