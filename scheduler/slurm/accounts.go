package slurm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wesgate/wesgate/scheduler"
)

// Accounts looks cluster accounts up with getent passwd, run on the login
// node as the service account, so that wesgate can refuse to act as a
// system account (a small uid) whatever a token calls it. Answers are
// cached: an account for accountTTL, a missing one for missingTTL.
type Accounts struct {
	pool    *Pool
	service string
	now     func() time.Time

	mu    sync.Mutex // guards cache
	cache map[string]accountEntry
}

type accountEntry struct {
	uid   int
	found bool
	until time.Time
}

const (
	accountTTL    = 10 * time.Minute
	missingTTL    = time.Minute
	lookupTimeout = 15 * time.Second
	maxCached     = 10000
)

// lookupCommand reads the account name from stdin: no value from a token
// is ever part of a command line, whatever its shell would make of it.
const lookupCommand = `IFS= read -r name && exec getent passwd -- "$name"`

// NewAccounts returns an Accounts that asks the cluster as serviceAccount.
func NewAccounts(pool *Pool, serviceAccount string) *Accounts {
	return &Accounts{pool: pool, service: serviceAccount, now: time.Now, cache: map[string]accountEntry{}}
}

// UID returns the uid of the cluster account name. found is false when the
// cluster has no such account. An error means the cluster could not be
// asked, or name is not a valid account name (it is never sent).
func (a *Accounts) UID(ctx context.Context, name string) (uid int, found bool, err error) {
	if !scheduler.ValidAccountName(name) {
		return 0, false, fmt.Errorf("account lookup: %q is not a valid account name", name)
	}
	now := a.now()
	a.mu.Lock()
	e, ok := a.cache[name]
	a.mu.Unlock()
	if ok && now.Before(e.until) {
		return e.uid, e.found, nil
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	start := time.Now()
	out, err := a.pool.Run(ctx, a.service, lookupCommand, []byte(name+"\n"))
	took := time.Since(start).Seconds()
	var ee *ExitError
	switch {
	case errors.As(err, &ee) && ee.Status == 2: // getent: no such key
		a.pool.cfg.Metrics.command("getent", "exit", took)
		e = accountEntry{until: now.Add(missingTTL)}
	case err != nil:
		a.pool.cfg.Metrics.command("getent", "error", took)
		return 0, false, fmt.Errorf("account lookup: %w", err)
	default:
		a.pool.cfg.Metrics.command("getent", "ok", took)
		uid, err := parsePasswd(out, name)
		if err != nil {
			return 0, false, fmt.Errorf("account lookup: %w", err)
		}
		e = accountEntry{uid: uid, found: true, until: now.Add(accountTTL)}
	}
	a.mu.Lock()
	if len(a.cache) >= maxCached { // bounded: start again rather than grow
		clear(a.cache)
	}
	a.cache[name] = e
	a.mu.Unlock()
	return e.uid, e.found, nil
}

// parsePasswd reads the uid of name from a getent passwd line
// (name:password:uid:gid:gecos:home:shell).
func parsePasswd(out []byte, name string) (int, error) {
	line, _, _ := strings.Cut(string(out), "\n")
	f := strings.Split(line, ":")
	if len(f) != 7 || f[0] != name {
		return 0, fmt.Errorf("getent passwd %s: unexpected answer %q", name, firstLine(line))
	}
	uid, err := strconv.ParseUint(f[2], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("getent passwd %s: uid %q: %v", name, f[2], err)
	}
	return int(uid), nil
}
