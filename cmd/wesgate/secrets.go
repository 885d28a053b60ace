package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// Secrets on disk: private keys must be private to wesgate's account, and
// the OIDC client secret may come from the environment or its own file
// rather than the configuration file.

// secretEnv names the environment variable that holds the OIDC client
// secret; it wins over client_secret and client_secret_file.
const secretEnv = "WESGATE_OIDC_CLIENT_SECRET"

// checkPrivateKey refuses a private key that the group or others may read
// or write, as OpenSSH refuses one: whoever can read it acts on the cluster
// as wesgate does.
func checkPrivateKey(setting, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", setting, err)
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("%s %s can be read or written by its group or others (mode %04o); make it private to wesgate's account: chmod 600 %s",
			setting, path, mode, path)
	}
	return nil
}

// loadClientSecret sets cfg.Auth.ClientSecret from WESGATE_OIDC_CLIENT_SECRET
// or auth.client_secret_file when either is set, and warns when a file that
// holds the secret can be read by others. configPath is the configuration
// file ("" for none).
func loadClientSecret(cfg *config, configPath string, getenv func(string) string, log *slog.Logger) error {
	a := &cfg.Auth
	if a.ClientSecret != "" && a.ClientSecretFile != "" {
		return errors.New("config: [auth] set client_secret or client_secret_file, not both")
	}
	switch {
	case getenv(secretEnv) != "":
		a.ClientSecret = getenv(secretEnv)
		return nil
	case a.ClientSecretFile != "":
		b, err := os.ReadFile(a.ClientSecretFile)
		if err != nil {
			return fmt.Errorf("config: [auth] client_secret_file: %w", err)
		}
		a.ClientSecret = strings.TrimRight(string(b), "\r\n")
		if a.ClientSecret == "" {
			return fmt.Errorf("config: [auth] client_secret_file %s is empty", a.ClientSecretFile)
		}
		warnReadable(log, "auth.client_secret_file", a.ClientSecretFile)
	case a.ClientSecret != "" && configPath != "":
		warnReadable(log, "the configuration file, which holds auth.client_secret,", configPath)
	}
	return nil
}

// warnReadable logs a warning when the group or others may read path.
func warnReadable(log *slog.Logger, what, path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	log.Warn(fmt.Sprintf("%s can be read by its group or others: chmod 600 %s, or pass the secret in %s", what, path, secretEnv),
		"file", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
}
