package auth

import (
	"bufio"
	"fmt"
	"os"
	"strings"
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

// Username maps a claim value to a cluster username; "" when the person
// has no cluster account.
func (m UserMap) Username(claim string) string {
	if u, ok := m[claim]; ok {
		if u == "-" {
			return ""
		}
		return u
	}
	if ValidUsername(claim) {
		return claim
	}
	return ""
}

// ValidUsername reports whether s is a conservative POSIX account name:
// it becomes an SSH principal and part of paths on the cluster.
func ValidUsername(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case (r >= '0' && r <= '9') || r == '-' || r == '.':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
