package scheduler

import (
	"os/exec"
	"strings"
	"testing"
)

// unquote reads one shell word made only of single-quoted parts and \'
// (what Quote writes), as a POSIX shell would.
func unquote(t *testing.T, word string) string {
	var b strings.Builder
	for i := 0; i < len(word); {
		switch {
		case word[i] == '\'':
			j := strings.IndexByte(word[i+1:], '\'')
			if j < 0 {
				t.Fatalf("unterminated quote in %q", word)
			}
			b.WriteString(word[i+1 : i+1+j])
			i += j + 2
		case strings.HasPrefix(word[i:], `\'`):
			b.WriteByte('\'')
			i += 2
		default:
			t.Fatalf("unquoted byte %q at %d in %q", word[i], i, word)
		}
	}
	return b.String()
}

// FuzzQuote: every value Quote accepts comes back byte for byte from the
// shell's reading, so no value can become code.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "plain", "it's", `$(touch x)`, "`id`", "a\nb", `\`, `"`, "'''", "; rm -rf ~", "ünï", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Quote(s)
		if err != nil {
			if !strings.Contains(s, "\x00") {
				t.Fatalf("Quote(%q) failed: %v", s, err)
			}
			return
		}
		if got := unquote(t, q); got != s {
			t.Fatalf("Quote(%q) = %s reads back as %q", s, q, got)
		}
	})
}

// TestQuoteThroughBash checks the fuzzer's reader against the real shell
// for the seed values.
func TestQuoteThroughBash(t *testing.T) {
	for _, s := range []string{"plain", "it's", `$(touch x)`, "`id`", "a\nb", `\`, `"`, "'''", "; rm -rf ~", "ünï"} {
		q, err := Quote(s)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("/bin/bash", "-c", "printf '%s' "+q).Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != s || unquote(t, q) != s {
			t.Fatalf("%q: bash read %q, unquote read %q", s, out, unquote(t, q))
		}
	}
}
