package auth

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/wesgate/wesgate/scheduler"
)

// UserMap overrides the cluster username derived from a token claim. Each
// line of its file is "CLAIM_VALUE USERNAME"; USERNAME "-" means the person
// has no cluster account. Blank lines and lines starting with # are ignored.
type UserMap map[string]string

// LoadUserMap reads a user map file.
func LoadUserMap(path string) (UserMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("user map: %w", err)
	}
	defer f.Close()
	m := UserMap{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("user map %s:%d: want CLAIM_VALUE USERNAME", path, n)
		}
		if f[1] != "-" && !ValidUsername(f[1]) {
			return nil, fmt.Errorf("user map %s:%d: %q is not a valid cluster username", path, n, f[1])
		}
		m[f[0]] = f[1]
	}
	return m, sc.Err()
}

// Account maps a claim value to the cluster account it names: the map's
// entry, or else the claim value itself. ok is false when the map says the
// person has no cluster account ("-"). The account is not checked here;
// see AccountPolicy.
func (m UserMap) Account(claim string) (account string, ok bool) {
	if u, mapped := m[claim]; mapped {
		return u, u != "-"
	}
	return claim, true
}

// ValidUsername reports whether s is a conservative POSIX account name,
// ^[a-z_][a-z0-9_.-]{0,31}$ (see scheduler.ValidAccountName): it becomes an
// SSH principal and part of paths on the cluster.
func ValidUsername(s string) bool { return scheduler.ValidAccountName(s) }
