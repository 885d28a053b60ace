package auth

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// FuzzSafeNext: a post-login target that safeNext keeps is one every browser
// reads as a path on this site. Browsers drop TAB, CR and LF and read a
// backslash as a slash before they resolve a Location, so the value is
// checked after doing the same.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/runs?state=RUNNING", "/runs/abc/cancel", "//evil.example/x", "/\t/evil.example/x",
		"/%09/evil.example/x", "/\\evil.example", "/%5C%5Cevil.example", "https://evil.example/", "/\r\n/evil.example",
		"/%2F/evil.example", "/auth/login?next=/x", " /x", "/x#frag", "/\x00", "/é"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://wes.example.org/runs/")
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got != "/" && got != next {
			t.Fatalf("safeNext(%q) = %q: neither the value nor /", next, got)
		}
		browser := strings.NewReplacer("\t", "", "\r", "", "\n", "", "\\", "/").Replace(got)
		u, err := url.Parse(browser)
		if err != nil {
			t.Fatalf("safeNext(%q) = %q, which a browser reads as %q, does not parse: %v", next, got, browser, err)
		}
		if u.Scheme != "" || u.Host != "" || !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") {
			t.Fatalf("safeNext(%q) = %q, which a browser reads as %q: scheme %q host %q", next, got, browser, u.Scheme, u.Host)
		}
		if to := base.ResolveReference(u); to.Host != base.Host || to.Scheme != base.Scheme {
			t.Fatalf("safeNext(%q) = %q leads to %s", next, got, to)
		}
	})
}

// posixName is the rule ValidUsername implements, written as a regular
// expression.
var posixName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// FuzzValidUsername: ValidUsername accepts exactly the names of posixName,
// and an accepted name is safe as an SSH principal, a path component and a
// shell word.
func FuzzValidUsername(f *testing.F) {
	for _, s := range []string{"alice", "_svc", "j.doe", "mary-jane", "1alice", "-x", ".x", "..", "a/b", "Alice",
		"alice\n", "a b", "é", strings.Repeat("a", 32), strings.Repeat("a", 33), "", "a$", "root"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := ValidUsername(s)
		if ok != posixName.MatchString(s) {
			t.Fatalf("ValidUsername(%q) = %v, the regular expression says %v", s, ok, !ok)
		}
		if ok && (s == "." || s == ".." || strings.ContainsAny(s, "/\\ \t\n'\"$`;&|<>(){}*?!#~=,:@") || len(s) > 32) {
			t.Fatalf("ValidUsername(%q) = true", s)
		}
	})
}
