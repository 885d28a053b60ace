package wes

import (
	"strings"
	"testing"
)

func TestCheckAttachmentPath(t *testing.T) {
	long := strings.Repeat("a", 255)
	tests := []struct {
		name string
		ok   bool
		why  string // a substring of the error
	}{
		{"workflow.cwl", true, ""},
		{"dir/sub/file.cwl", true, ""},
		{"inputs/sample 1.fastq", true, ""},
		{"données/résumé.txt", true, ""},
		{"日本語/ワークフロー.cwl", true, ""},
		{"🧬.wdl", true, ""},
		{".hidden", true, ""},
		{"dir/.wesgate", true, ""}, // reserved only at the top
		{"a-b/c-", true, ""},
		{"$(id).cwl", true, ""}, // quoted where it is used
		{long, true, ""},
		{long + "/" + long, true, ""},

		{"", false, "no file name"},
		{"/etc/passwd", false, "absolute"},
		{"//server/share", false, "absolute"},
		{"..", false, `".."`},
		{"../x", false, `".."`},
		{"a/../../x", false, `".."`},
		{"a/..", false, `".."`},
		{".", false, `"."`},
		{"./x", false, `"."`},
		{"a/./b", false, `"."`},
		{"a//b", false, "empty path component"},
		{"dir/", false, "empty path component"},
		{"a\x00b", false, "control character"},
		{"a\nb", false, "control character"},
		{"a\rb", false, "control character"},
		{"a\tb", false, "control character"},
		{"\x1b[31mred", false, "control character"},
		{"a\x7fb", false, "control character"},
		{"a\u0085b", false, "control character"},
		{`dir\file`, false, "backslash"},
		{`..\..\x`, false, "backslash"},
		{".wesgate", false, "reserved"},
		{".wesgate-params.json", false, "reserved"},
		{".wesgate/rc", false, "reserved"},
		{long + "a", false, "255"},
		{"ok/" + long + "a", false, "255"},
		{strings.Repeat("a/", 513) + "b", false, "1024"},
		{"bad\xffutf8", false, "UTF-8"},
		{"-rf", false, `starting with "-"`},
		{"--outdir=/tmp/x", false, `starting with "-"`},
		{"dir/-x.cwl", false, `starting with "-"`},
		{"a/b/--debug", false, `starting with "-"`},
	}
	for _, tt := range tests {
		got, err := CheckAttachmentPath(tt.name)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%q refused: %v", tt.name, err)
		case tt.ok && got != tt.name:
			t.Errorf("%q became %q", tt.name, got)
		case !tt.ok && err == nil:
			t.Errorf("%q accepted", tt.name)
		case !tt.ok && !strings.Contains(err.Error(), tt.why):
			t.Errorf("%q: error %q, want it to mention %q", tt.name, err, tt.why)
		}
	}
}

func TestJSONDepth(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{``, 0},
		{`1`, 0},
		{`"[[[["`, 0},
		{`{}`, 1},
		{`[]`, 1},
		{`{"a":[1,2,{"b":null}]}`, 3},
		{`{"a":"}}}{{{"}`, 1},
		{`{"a":"\"[[["}`, 1},
		{`{"a":"\\"}`, 1},
		{`{"a":"\\","b":[[]]}`, 3},
		{`[[],[],[]]`, 2},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), 100},
		{strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), 65},
	}
	for _, tt := range tests {
		if got := jsonDepth([]byte(tt.in)); got != tt.want {
			t.Errorf("jsonDepth(%.40q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestDecodeObject(t *testing.T) {
	tests := []struct {
		in      string
		problem string // "" when accepted
	}{
		{``, ""},
		{`   `, ""},
		{`{}`, ""},
		{` {"a": [1, {"b": 2}]} `, ""},
		{`{"n": 12345678901234567890}`, ""},
		{`[]`, "must be a JSON object"},
		{`"{}"`, "must be a JSON object"},
		{`null`, "must be a JSON object"},
		{`42`, "must be a JSON object"},
		{`{`, "not valid JSON"},
		{`{"a":}`, "not valid JSON"},
		{`{'a': 1}`, "not valid JSON"},
		{`{} {}`, "data after"},
		{`{}]`, "data after"},
		{`{} x`, "data after"},
		{`{"a":[[[[1]]]]}`, "nested deeper than 4"},
	}
	for _, tt := range tests {
		var inv InvalidError
		obj := decodeObject("f", tt.in, 4, &inv)
		problem := inv.Problems["f"]
		switch {
		case tt.problem == "" && (problem != "" || obj == nil):
			t.Errorf("%q: refused: %q", tt.in, problem)
		case tt.problem != "" && (obj != nil || !strings.Contains(problem, tt.problem)):
			t.Errorf("%q: got %v, problem %q; want %q", tt.in, obj, problem, tt.problem)
		}
	}
	// Big numbers keep their digits.
	var inv InvalidError
	obj := decodeObject("f", `{"n": 12345678901234567890}`, 4, &inv)
	if got := string(compactJSON(obj)); got != `{"n":12345678901234567890}` {
		t.Errorf("re-encoded as %s", got)
	}
	// The error does not echo the input back.
	inv = InvalidError{}
	decodeObject("f", `{"secret": <script>}`, 4, &inv)
	if strings.Contains(inv.Error(), "script") {
		t.Errorf("error echoes the input: %s", inv.Error())
	}
}
