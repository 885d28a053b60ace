package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionFrom(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev},
			{Key: "vcs.modified", Value: modified}}
	}
	const rev = "cb2be0b1234567890abcdef1234567890abcdef0"
	for _, tc := range []struct {
		name    string
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"release build", "v0.1.0", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "v0.1.0"},
		{"go install at a tag", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.1.0"}}, "v0.1.0"},
		{"clean checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "false")}, "devel-cb2be0b12345"},
		{"changed checkout", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "true")}, "devel-cb2be0b12345-dirty"},
		{"go run", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel"},
		{"no build info", "", nil, "devel"},
	} {
		if got := versionFrom(tc.ldflags, tc.bi); got != tc.want {
			t.Errorf("%s: version = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"serve", "--version"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		if code := exitCode(err, &stderr); code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
		want := "wesgate " + buildVersion() + " go"
		if !strings.HasPrefix(stdout.String(), want) || strings.Count(stdout.String(), "\n") != 1 {
			t.Errorf("%v printed %q, want one line starting %q", args, stdout.String(), want)
		}
	}
}

// TestUsageErrors: a wrong command line exits 2 and says what is wrong
// exactly once (it used to exit 1 and print the flag error twice).
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		say  string
	}{
		{[]string{"--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"serve", "--addr"}, "flag needs an argument: -addr"},
		{[]string{"frobnicate"}, `unexpected argument "frobnicate"`},
		{[]string{"version", "extra"}, `unexpected argument "extra"`},
		{[]string{"version", "--short"}, "flag provided but not defined: -short"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, func(string) string { return "" }, &stdout, &stderr)
		if code := exitCode(err, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (err %v)", tc.args, code, err)
		}
		if n := strings.Count(stderr.String(), tc.say); n != 1 {
			t.Errorf("%v: stderr says %q %d times, want once:\n%s", tc.args, tc.say, n, stderr.String())
		}
		if strings.Contains(stderr.String(), "wesgate: usage") {
			t.Errorf("%v: the usage sentinel leaked to stderr:\n%s", tc.args, stderr.String())
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &bytes.Buffer{}, &stderr)
	if code := exitCode(err, &stderr); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	if !strings.Contains(stderr.String(), "wesgate version") {
		t.Errorf("--help does not list the version command:\n%s", stderr.String())
	}
}
