// Package auth establishes who a request acts for: OIDC bearer tokens for
// WES clients, browser sessions for people, or, in development, the single
// local identity of the person running wesgate.
package auth

import (
	"errors"
	"net/http"
	"os/user"

	"github.com/wesgate/wesgate/wes"
)

// Authenticator finds the user a request acts for.
type Authenticator interface {
	// Authenticate returns the request's user, ErrNoCredentials when the
	// request carries none, or another error when they are not valid.
	Authenticate(r *http.Request) (wes.User, error)
	// Mode names the kind of authentication for logs and pages.
	Mode() string
}

// ErrNoCredentials means the request carries no credentials at all.
var ErrNoCredentials = errors.New("no credentials")

// LocalIssuer is the issuer part of the local identity's owner.
const LocalIssuer = "local"

// Local is the development identity: every request acts for the account
// running wesgate, as an admin. wesgate allows it on loopback addresses only.
type Local struct {
	User wes.User
}

// NewLocal returns the local identity of the current OS account.
func NewLocal() (*Local, error) {
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	return &Local{User: wes.User{Owner: LocalIssuer + "|" + u.Username, Username: u.Username,
		Display: u.Username, Admin: true}}, nil
}

// Authenticate returns the local user for every request.
func (l *Local) Authenticate(*http.Request) (wes.User, error) { return l.User, nil }

// Mode is "local".
func (l *Local) Mode() string { return "local" }

// Browser is an Authenticator that also logs people in with a browser and
// keeps a session for them.
type Browser interface {
	Authenticator
	// Middleware loads and saves the session around h.
	Middleware(h http.Handler) http.Handler
	HandleLogin() http.Handler
	// HandleCallback finishes a login; fail renders a problem for the person.
	HandleCallback(fail func(w http.ResponseWriter, r *http.Request, status int, msg string)) http.Handler
	HandleLogout() http.Handler
	Issuer() string
	ClientID() string
}
