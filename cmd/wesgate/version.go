package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is empty unless the release build sets it with
// -ldflags "-X main.version=v0.1.0"; otherwise buildVersion reads it from
// the build information the go command embeds.
var version string

// errUsage reports a command line that was wrong. The message and the usage
// have already been written to stderr, so main only exits with status 2.
var errUsage = errors.New("usage")

// buildVersion names the code this binary was built from: the release
// version, else the module version (set by `go install ...@v0.1.0`, or by
// `go build` in a tagged checkout), else the commit with "-dirty" when the
// working tree had changes, else "devel" (`go run`, or -buildvcs=false).
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return versionFrom(version, nil)
	}
	return versionFrom(version, bi)
}

func versionFrom(ldflags string, bi *debug.BuildInfo) string {
	if ldflags != "" {
		return ldflags
	}
	if bi == nil {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// runVersion is `wesgate version`: the version, the Go release and the
// platform, on one line.
func runVersion(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wesgate version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "Usage: wesgate version") }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	printVersion(stdout)
	return nil
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "wesgate %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// parseFlags parses a subcommand's flags and refuses positional arguments.
// Mistakes are written to the flag set's output once and become errUsage;
// -h and --help stay flag.ErrHelp (exit 0).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage // the flag package has written the error and the usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q (try --help)\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	return nil
}

// exitCode turns run's result into the process's exit status, writing the
// error unless it was already written: 0 on success and for --help, 2 for a
// wrong command line or configuration (check-config), 1 for everything else.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage), errors.Is(err, errConfigInvalid):
		return 2
	}
	fmt.Fprintln(stderr, "wesgate:", err)
	return 1
}
