package scheduler

// ValidAccountName reports whether s is a conservative POSIX account name,
// ^[a-z_][a-z0-9_.-]{0,31}$: a lower-case letter or underscore, then up to
// 31 lower-case letters, digits, underscores, dots or hyphens. Such a name
// is safe as an SSH principal, a path component ("." and ".." cannot be
// formed) and a shell word, and is never a number that getent would read
// as a uid. The dot is kept for sites with first.last account names.
func ValidAccountName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c == '_':
		case (c >= '0' && c <= '9') || c == '-' || c == '.':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}
