package slurm

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wesgate/wesgate/scheduler"
)

// CertAuthority mints short-lived SSH user certificates, so that wesgate
// logs in to the cluster as each person's own account without storing
// their keys or using sudo. The cluster's sshd trusts the CA's public key
// (TrustedUserCAKeys); each certificate names exactly one principal, the
// cluster username, and expires after TTL.
type CertAuthority struct {
	ca     ssh.Signer
	ttl    time.Duration
	now    func() time.Time
	source string                       // source-address critical option ("" for none)
	refuse func(principal string) error // nil: every valid account name

	mu    sync.Mutex // guards certs
	certs map[string]mintedCert
}

type mintedCert struct {
	signer ssh.Signer
	renew  time.Time
}

// CertOption changes how a CertAuthority mints certificates.
type CertOption func(*CertAuthority) error

// SourceAddress makes every certificate carry the source-address critical
// option: sshd accepts it only from these addresses, a comma-separated list
// of IP addresses and CIDR blocks (wesgate's own), so a certificate that
// leaks is of no use elsewhere.
func SourceAddress(list string) CertOption {
	return func(c *CertAuthority) error {
		var clean []string
		for _, a := range strings.Split(list, ",") {
			a = strings.TrimSpace(a)
			if _, _, err := net.ParseCIDR(a); err != nil && net.ParseIP(a) == nil {
				return fmt.Errorf("certificate source address %q is not an IP address or CIDR block", a)
			}
			clean = append(clean, a)
		}
		c.source = strings.Join(clean, ",")
		return nil
	}
}

// RefusePrincipals makes Credentials refuse to mint a certificate for an
// account when check returns an error (for system accounts).
func RefusePrincipals(check func(principal string) error) CertOption {
	return func(c *CertAuthority) error {
		c.refuse = check
		return nil
	}
}

// NewCertAuthority reads the CA's private key (unencrypted).
func NewCertAuthority(keyFile string, ttl time.Duration, opts ...CertOption) (*CertAuthority, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("user CA key: %w", err)
	}
	ca, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("user CA key %s: %w", keyFile, err)
	}
	c := NewCertAuthorityFromSigner(ca, ttl)
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// NewCertAuthorityFromSigner uses ca as the CA key.
func NewCertAuthorityFromSigner(ca ssh.Signer, ttl time.Duration) *CertAuthority {
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	return &CertAuthority{ca: ca, ttl: ttl, now: time.Now, certs: map[string]mintedCert{}}
}

// Credentials returns a certificate signer for account, minting a new key
// and certificate when the last one is past half its life. It mints none
// for a name that is not a valid account name or that the CA refuses, and
// says so with an *AuthError: waiting will not help, so a run of such an
// account fails rather than waits.
func (c *CertAuthority) Credentials(account string) (Credentials, error) {
	if !scheduler.ValidAccountName(account) {
		return Credentials{}, &AuthError{Account: account, Err: errors.New("wesgate mints no certificate for it: not a valid account name")}
	}
	if c.refuse != nil {
		if err := c.refuse(account); err != nil {
			return Credentials{}, &AuthError{Account: account, Err: fmt.Errorf("wesgate mints no certificate for it: %w", err)}
		}
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.certs[account]; ok && now.Before(m.renew) {
		return Credentials{User: account, Signer: m.signer}, nil
	}
	signer, err := c.Mint(account, c.ttl)
	if err != nil {
		return Credentials{}, err
	}
	c.certs[account] = mintedCert{signer: signer, renew: now.Add(c.ttl / 2)}
	return Credentials{User: account, Signer: signer}, nil
}

// Mint makes a fresh key and a certificate for principal valid for ttl
// (from a minute ago, to allow for clock skew).
func (c *CertAuthority) Mint(principal string, ttl time.Duration) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	key, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	now := c.now()
	cert := &ssh.Certificate{
		Key:             key.PublicKey(),
		CertType:        ssh.UserCert,
		KeyId:           "wesgate:" + principal,
		ValidPrincipals: []string{principal},
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(ttl).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{}},
	}
	if c.source != "" {
		cert.Permissions.CriticalOptions = map[string]string{"source-address": c.source}
	}
	if err := cert.SignCert(rand.Reader, c.ca); err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", principal, err)
	}
	return ssh.NewCertSigner(cert, key)
}
