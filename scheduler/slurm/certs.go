package slurm

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// CertAuthority mints short-lived SSH user certificates, so that wesgate
// logs in to the cluster as each person's own account without storing
// their keys or using sudo. The cluster's sshd trusts the CA's public key
// (TrustedUserCAKeys); each certificate names exactly one principal, the
// cluster username, and expires after TTL.
type CertAuthority struct {
	ca  ssh.Signer
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex // guards certs
	certs map[string]mintedCert
}

type mintedCert struct {
	signer ssh.Signer
	renew  time.Time
}

// NewCertAuthority reads the CA's private key (unencrypted).
func NewCertAuthority(keyFile string, ttl time.Duration) (*CertAuthority, error) {
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("user CA key: %w", err)
	}
	ca, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("user CA key %s: %w", keyFile, err)
	}
	return NewCertAuthorityFromSigner(ca, ttl), nil
}

// NewCertAuthorityFromSigner uses ca as the CA key.
func NewCertAuthorityFromSigner(ca ssh.Signer, ttl time.Duration) *CertAuthority {
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	return &CertAuthority{ca: ca, ttl: ttl, now: time.Now, certs: map[string]mintedCert{}}
}

// Credentials returns a certificate signer for account, minting a new key
// and certificate when the last one is past half its life.
func (c *CertAuthority) Credentials(account string) (Credentials, error) {
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
	if err := cert.SignCert(rand.Reader, c.ca); err != nil {
		return nil, fmt.Errorf("sign certificate for %s: %w", principal, err)
	}
	return ssh.NewCertSigner(cert, key)
}
