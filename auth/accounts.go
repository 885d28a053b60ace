package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/wesgate/wesgate/wes"
)

// DefaultDeny lists the accounts wesgate never acts as unless the
// configuration replaces the list: the superuser, the usual system and
// daemon accounts of Linux distributions, and those of the services a Slurm
// cluster runs. An entry ending in "*" refuses every name it begins.
func DefaultDeny() []string {
	return []string{
		"root", "toor", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
		"www-data", "backup", "list", "irc", "gnats", "nobody", "nfsnobody", "adm", "admin", "operator", "halt",
		"shutdown", "ftp", "sshd", "messagebus", "dbus", "polkitd", "avahi", "postfix", "chrony", "ntp", "tss",
		"_apt", "systemd-*", "slurm", "slurmdbd", "munge", "mysql", "mariadb", "postgres", "ldap", "openldap",
		"sssd", "nslcd", "nscd", "rpc", "rpcuser", "statd", "apache", "nginx", "docker", "podman",
	}
}

// RefusedError means a person's token names a cluster account that wesgate
// will not act as. Its message is safe to show that person.
type RefusedError struct {
	Account string
	Reason  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the cluster account %q cannot be used through wesgate: %s", truncate(e.Account, 64), e.Reason)
}

// AccountPolicy decides which cluster accounts people may act as. The zero
// value refuses invalid names and DefaultDeny.
type AccountPolicy struct {
	// Deny lists refused names (nil: DefaultDeny). "root" is refused always.
	Deny []string
	// ServiceAccount is wesgate's own account on the cluster: nobody may act
	// as it, since it holds the service key ("" for none).
	ServiceAccount string
	// Lookup, when set, finds an account's uid on the cluster; found is
	// false when the cluster has no such account. An error means the
	// cluster could not be asked.
	Lookup func(ctx context.Context, name string) (uid int, found bool, err error)
	// MinUID is the lowest uid of a person's account (with Lookup): system
	// accounts have smaller ones.
	MinUID int
}

// CheckName applies the rules that need no cluster: a valid account name,
// not denied, not the service account. It returns a *RefusedError or nil.
func (p *AccountPolicy) CheckName(name string) error {
	deny := DefaultDeny()
	if p != nil && p.Deny != nil {
		deny = p.Deny
	}
	switch {
	case !ValidUsername(name):
		return &RefusedError{name, "it is not a valid account name (^[a-z_][a-z0-9_.-]{0,31}$); ask the administrators to map your identity to your cluster account"}
	case name == "root" || slices.ContainsFunc(deny, func(d string) bool { return denies(d, name) }):
		return &RefusedError{name, "it is a system account"}
	case p != nil && name == p.ServiceAccount:
		return &RefusedError{name, "it is wesgate's own service account"}
	}
	return nil
}

// Check applies every rule, asking the cluster when a Lookup is set. It
// returns nil when wesgate may act as name, a *RefusedError when it may
// not, or an error wrapping wes.ErrUnavailable when the cluster could not
// be asked.
func (p *AccountPolicy) Check(ctx context.Context, name string) error {
	if err := p.CheckName(name); err != nil {
		return err
	}
	if p == nil || p.Lookup == nil {
		return nil
	}
	uid, found, err := p.Lookup(ctx, name)
	switch {
	case err != nil:
		return fmt.Errorf("%w: checking the cluster account %s: %v", wes.ErrUnavailable, name, err)
	case !found:
		return &RefusedError{name, "the cluster has no such account"}
	case uid == 0 || uid < p.MinUID || uid == 65534 || uid >= 1<<32-2: // root, system, nobody, (uid_t)-2 and -1
		return &RefusedError{name, "it is a system account"}
	}
	return nil
}

// denies reports whether the deny-list entry d refuses name.
func denies(d, name string) bool {
	if prefix, ok := strings.CutSuffix(d, "*"); ok {
		return strings.HasPrefix(name, prefix)
	}
	return d == name
}
