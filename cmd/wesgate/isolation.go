package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// checkIsolation refuses configurations in which one user's workflow could
// act as wesgate itself, and warns about those in which users' workflows
// share one account.
func checkIsolation(cfg config, log *slog.Logger) error {
	if cfg.Auth.Mode != "oidc" {
		return nil // one local user: nobody to isolate from
	}
	switch cfg.Executor.Kind {
	case "local":
		// A local job runs as the wesgate account: it can read the
		// database (sessions included) and every other user's runs.
		if !cfg.Executor.LocalSingleUser {
			return errors.New(`refusing to start: [executor] kind = "local" runs every user's workflows as wesgate's own account, ` +
				`which can read wesgate's database (login sessions included) and all other users' runs; with [auth] mode = "oidc" ` +
				`use [executor] kind = "slurm" with [slurm] per_user = true, or set [executor] local_single_user = true ` +
				`only if every person who can log in is trusted with the wesgate account`)
		}
		log.Warn(`local_single_user: every user's workflows run as wesgate's own account and can act as wesgate; ` +
			`only for people trusted with that account`)
	case "slurm":
		if !cfg.Slurm.PerUser {
			log.Warn(`service-account mode: every user's jobs run as one Unix account, so one user's job can read and change `+
				`another's run directory, its queued job script included; set [slurm] per_user = true to run each user's jobs as that user`,
				"account", cfg.Slurm.User)
		}
	}
	return nil
}

// lockDataDir takes an exclusive lock on the data directory for as long as
// this process lives (or until unlock), so a second wesgate on the same
// directory stops at once instead of settling and stopping the first one's
// runs. The lock file holds the owner's pid, for the message.
func lockDataDir(dir string) (unlock func(), err error) {
	name := filepath.Join(dir, "wesgate.lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o640) // close-on-exec: jobs do not inherit it
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			owner := "another process"
			if b, _ := os.ReadFile(name); len(strings.TrimSpace(string(b))) > 0 {
				owner = "pid " + strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("data directory %s is in use by another wesgate (%s): "+
				"two servers on one data directory would settle and stop each other's runs", dir, owner)
		}
		return nil, fmt.Errorf("data directory lock %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt(fmt.Appendf(nil, "%d\n", os.Getpid()), 0)
	}
	return func() { f.Close() }, nil
}
