package wes

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
)

// FuzzCheckAttachmentPath: whatever a client sends as a file name, an
// accepted name never leaves the run's directory, never names wesgate's own
// files, and is returned unchanged.
func FuzzCheckAttachmentPath(f *testing.F) {
	for _, s := range []string{"wf.cwl", "dir/sub/tool.cwl", "../x", "/etc/passwd", "a//b", "a/./b", ".wesgate-params.json",
		"a\x00b", "a\nb", `a\b`, "ünïcode/файл.txt", strings.Repeat("a/", 300), "..", "a/..", " ", "-rf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		clean, err := CheckAttachmentPath(name)
		if err != nil {
			return
		}
		if clean != name {
			t.Fatalf("accepted %q as %q", name, clean)
		}
		if strings.HasPrefix(clean, "/") || strings.Contains(clean, `\`) {
			t.Fatalf("accepted an absolute or backslashed path %q", clean)
		}
		for _, part := range strings.Split(clean, "/") {
			if part == "" || part == "." || part == ".." {
				t.Fatalf("accepted %q with component %q", clean, part)
			}
		}
		if strings.HasPrefix(clean, ".wesgate") {
			t.Fatalf("accepted a reserved name %q", clean)
		}
		for _, r := range clean {
			if r == 0 || unicode.IsControl(r) {
				t.Fatalf("accepted a control character in %q", clean)
			}
		}
	})
}

// FuzzPageToken: only tokens this server made, for this query, are taken.
func FuzzPageToken(f *testing.F) {
	tokens := pageTokens{key: []byte("0123456789abcdef0123456789abcdef")}
	fp := fingerprint("runs", "owner")
	good := tokens.make(42, fp)
	f.Add(good)
	f.Add("")
	f.Add("AAAA")
	f.Add(good[:len(good)-1] + "A")
	f.Fuzz(func(t *testing.T, s string) {
		pos, err := tokens.parse(s, fp)
		if err != nil {
			return
		}
		if s != good && tokens.make(pos, fp) != s {
			t.Fatalf("accepted a token the server did not make: %q (position %d)", s, pos)
		}
		if pos <= 0 {
			t.Fatalf("accepted position %d", pos)
		}
	})
}

// FuzzDecodeObject: the decoding of workflow_params, tags and engine
// parameters either reports a problem or returns an object that re-encodes,
// and never panics or nests deeper than the limit.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `[]`, `null`, `"x"`, `{"a":`, `{"a":1}{}`, strings.Repeat("[", 100),
		`{"a":{"b":{"c":[1,2,{"d":null}]}}}`, `{"\u0000":"\ud800"}`, `  {"x": 1e400}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		inv := &InvalidError{}
		obj := decodeObject("workflow_params", raw, 8, inv)
		if obj == nil {
			if inv.OrNil() == nil {
				t.Fatalf("%q: no object and no problem", raw)
			}
			return
		}
		if inv.OrNil() != nil {
			t.Fatalf("%q: an object and a problem: %v", raw, inv)
		}
		b := compactJSON(obj)
		if !json.Valid(b) || b[0] != '{' {
			t.Fatalf("%q re-encoded to %q, not a JSON object", raw, b)
		}
		if jsonDepth(b) > 8 {
			t.Fatalf("%q: accepted nesting deeper than the limit", raw)
		}
	})
}

// FuzzCollectOutputs: whatever CWL output object a job prints, collecting
// it never reads or serves a file outside the run directory, never follows
// the symlink planted in it, and never hangs (a FIFO sits in it too).
func FuzzCollectOutputs(f *testing.F) {
	const runDir = "/cluster/runs/r1"
	for _, s := range []string{
		`{"a": {"class": "File", "path": "/cluster/runs/r1/outputs/a.txt"}}`,
		`{"z": {"class": "File", "path": "/dev/zero"}}`,
		`{"up": {"class": "File", "path": "/cluster/runs/r1/../../../etc/passwd"}}`,
		`{"l": {"class": "File", "location": "file:///cluster/runs/r1/outputs/link"}}`,
		`{"f": {"class": "File", "path": "/cluster/runs/r1/outputs/fifo"}}`,
		`{"d": {"class": "Directory", "path": "/cluster/runs/r1/outputs"}, "n": [1, {"class": "File", "path": "/cluster/runs/r1//outputs/a.txt"}]}`,
		`[]`, `null`, `{"a": {"class": "File", "path": "/cluster/runs/r1/outputs/a.txt\u0000x"}}`,
	} {
		f.Add(s)
	}
	local := f.TempDir()
	for _, d := range []string{"outputs", "work"} {
		if err := os.MkdirAll(filepath.Join(local, d), 0o750); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(local, "outputs", "a.txt"), []byte("a\n"), 0o640); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(local, "outputs", "link")); err != nil {
		f.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(local, "outputs", "fifo"), 0o640); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, object string) {
		if err := os.WriteFile(filepath.Join(local, "stdout.txt"), []byte(object), 0o640); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, _, err := CollectOutputs(ctx, OutputsCWL, local, runDir, nil, OutputLimits{})
		if err != nil {
			return
		}
		for _, ref := range strings.Split(string(out), fileMarker)[1:] {
			rel, _, _ := strings.Cut(ref, `"`)
			rel, _ = url.PathUnescape(rel)
			if rel != "outputs/a.txt" && rel != "outputs" && rel != "work" && rel != "outputs/" {
				t.Fatalf("serves %q from %s", rel, out)
			}
		}
		if strings.Contains(string(out), "root:") {
			t.Fatalf("read /etc/passwd: %s", out)
		}
	})
}
