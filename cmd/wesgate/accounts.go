package main

import (
	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/scheduler/slurm"
	"github.com/wesgate/wesgate/wes"
)

// accountPolicy is the rule for the cluster accounts people may act as: a
// valid account name, not in auth.deny_usernames, not the service account
// and, when jobs run as each person's own account, an account the cluster
// knows with a uid of at least slurm.min_uid.
func accountPolicy(cfg config, sched wes.Scheduler) *auth.AccountPolicy {
	p := &auth.AccountPolicy{Deny: cfg.Auth.DenyUsernames, MinUID: cfg.Slurm.MinUID}
	if cfg.Executor.Kind == "slurm" {
		p.ServiceAccount = cfg.Slurm.User
	}
	if e, ok := sched.(*slurm.Executor); ok && cfg.Slurm.PerUser {
		p.Lookup = slurm.NewAccounts(e.Pool(), cfg.Slurm.User).UID
	}
	return p
}

// certOptions are the user CA's options: it signs for no account the
// policy's names refuse, and binds certificates to slurm.cert_source_address.
func certOptions(cfg config) []slurm.CertOption {
	names := &auth.AccountPolicy{Deny: cfg.Auth.DenyUsernames, ServiceAccount: cfg.Slurm.User}
	opts := []slurm.CertOption{slurm.RefusePrincipals(names.CheckName)}
	if cfg.Slurm.CertSourceAddress != "" {
		opts = append(opts, slurm.SourceAddress(cfg.Slurm.CertSourceAddress))
	}
	return opts
}
