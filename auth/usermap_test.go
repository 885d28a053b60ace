package auth_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wesgate/wesgate/auth"
)

func writeUserMap(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users.map")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadUserMap(t *testing.T) {
	t.Parallel()
	m, err := auth.LoadUserMap(writeUserMap(t, `# claim value      cluster account
alice@example.org   alice

  bob@example.org	 rbob_2
# guests have no account
guest@example.org   -
CN=Carol,O=Uni      carol.c
`))
	if err != nil {
		t.Fatal(err)
	}
	want := auth.UserMap{"alice@example.org": "alice", "bob@example.org": "rbob_2", "guest@example.org": "-", "CN=Carol,O=Uni": "carol.c"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("map = %v, want %v", m, want)
	}

	empty, err := auth.LoadUserMap(writeUserMap(t, "# nobody yet\n\n"))
	if err != nil || len(empty) != 0 {
		t.Errorf("a file of comments: %v, %v", empty, err)
	}
}

func TestLoadUserMapErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, content, want string
	}{
		{"one field", "alice@example.org\n", ":1: want CLAIM_VALUE USERNAME"},
		{"three fields", "ok@example.org ok\nalice@example.org alice extra\n", ":2: want CLAIM_VALUE USERNAME"},
		{"invalid account", "# header\nalice@example.org Alice\n", `:2: "Alice" is not a valid cluster username`},
		{"account with a slash", "alice@example.org ../root\n", "is not a valid cluster username"},
		{"account starting with a digit", "alice@example.org 1alice\n", "is not a valid cluster username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := auth.LoadUserMap(writeUserMap(t, tc.content))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadUserMap = %v, %v; want an error with %q", m, err, tc.want)
			}
		})
	}
	if _, err := auth.LoadUserMap(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "user map") {
		t.Errorf("missing file: %v", err)
	}
}

func TestUserMapAccount(t *testing.T) {
	t.Parallel()
	m := auth.UserMap{"alice@example.org": "alice", "guest": "-", "root-ish": "alice2"}
	for _, tc := range []struct {
		m           auth.UserMap
		claim, want string
		ok          bool
	}{
		{m, "alice@example.org", "alice", true}, // mapped
		{m, "guest", "", false},                 // "-": no account, though "guest" is a valid name
		{m, "root-ish", "alice2", true},         // the map wins over the claim itself
		{m, "bob", "bob", true},                 // unmapped names pass, to be checked by the policy
		{m, "Bob", "Bob", true},
		{nil, "carol", "carol", true}, // no map at all
		{nil, "-", "-", true},         // not a map entry: the policy refuses it
	} {
		got, ok := tc.m.Account(tc.claim)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("Account(%q) with %v = %q, %v; want %q, %v", tc.claim, tc.m, got, ok, tc.want, tc.ok)
		}
	}
}

func TestValidUsername(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"alice", "_svc", "a", "wesuser1", "mary-jane", "j.doe", "a_b-c.d9", strings.Repeat("a", 32)} {
		if !auth.ValidUsername(s) {
			t.Errorf("ValidUsername(%q) = false", s)
		}
	}
	for _, s := range []string{"", "Alice", "1alice", "-alice", ".alice", "al ice", "al/ice", "../x", "alice;id",
		"al$ice", "alice\n", "é", strings.Repeat("a", 33), "alice@example.org", "-"} {
		if auth.ValidUsername(s) {
			t.Errorf("ValidUsername(%q) = true", s)
		}
	}
}
