package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/web"
	"github.com/wesgate/wesgate/wes"
	"github.com/wesgate/wesgate/wes/sqlite"
)

// The pages and browser tests log people in through mockoidc, a real OIDC
// provider (authorization code flow with PKCE), into wesgate's real
// auth.OIDC with sessions in the env's SQLite database.

// uiAdminGroup is the admin group of the OIDC envs.
const uiAdminGroup = "wes-admins"

// uiOIDC is an auth.Browser whose auth.OIDC is made once the test server
// runs: the login's callback URL is built from the server's address, which
// newTestEnv knows only after it has made the authenticator. Every method
// forwards to the auth.OIDC at request time.
type uiOIDC struct {
	o atomic.Pointer[auth.OIDC]
}

func (p *uiOIDC) get() *auth.OIDC {
	o := p.o.Load()
	if o == nil {
		panic("uiOIDC: request before uiNewOIDCEnv finished")
	}
	return o
}

func (p *uiOIDC) Authenticate(r *http.Request) (wes.User, error) { return p.get().Authenticate(r) }
func (p *uiOIDC) Mode() string                                   { return "oidc" }
func (p *uiOIDC) Issuer() string                                 { return p.get().Issuer() }
func (p *uiOIDC) ClientID() string                               { return p.get().ClientID() }

func (p *uiOIDC) Middleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.get().Middleware(h).ServeHTTP(w, r) })
}

func (p *uiOIDC) HandleLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.get().HandleLogin().ServeHTTP(w, r) })
}

func (p *uiOIDC) HandleCallback(fail func(w http.ResponseWriter, r *http.Request, status int, msg string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.get().HandleCallback(fail).ServeHTTP(w, r)
	})
}

func (p *uiOIDC) HandleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.get().HandleLogout().ServeHTTP(w, r) })
}

var _ auth.Browser = (*uiOIDC)(nil)

// uiStartMockOIDC runs a mockoidc provider for the test.
func uiStartMockOIDC(t testing.TB) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	m.Keypair.KeyID() // computed once here, not by concurrent handlers
	return m
}

// uiNewOIDCEnv starts a test env whose people log in at m, with sessions
// configured as cmd/wesgate configures them (but without Secure cookies:
// the test server speaks plain HTTP). Members of uiAdminGroup are admins.
func uiNewOIDCEnv(t testing.TB, m *mockoidc.MockOIDC, o envOptions) *testEnv {
	t.Helper()
	p := &uiOIDC{}
	o.Auth = func(testing.TB, *sqlite.DB) auth.Authenticator { return p }
	env := newTestEnv(t, o)
	sessions := scs.New()
	sessions.Store = env.DB.Sessions()
	sessions.Lifetime = 12 * time.Hour
	sessions.IdleTimeout = 2 * time.Hour
	sessions.Cookie.Name = web.SessionCookie
	sessions.Cookie.HttpOnly = true
	sessions.Cookie.SameSite = http.SameSiteLaxMode
	sessions.Cookie.Secure = false
	sessions.Cookie.Path = "/"
	oidc, err := auth.NewOIDC(context.Background(), auth.OIDCConfig{
		Issuer: m.Issuer(), ClientID: m.ClientID, ClientSecret: m.ClientSecret,
		AdminGroup: uiAdminGroup, PublicURL: env.URL,
	}, sessions, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.o.Store(oidc)
	return env
}

// uiLogin logs user in through the whole browser flow (wesgate's login,
// the provider's authorization endpoint, wesgate's callback) and returns a
// client that carries the session cookie.
func uiLogin(t testing.TB, env *testEnv, m *mockoidc.MockOIDC, user *mockoidc.MockUser) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar}
	m.QueueUser(user)
	resp, err := c.Get(env.URL + "/auth/login?next=%2Fruns")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/runs" {
		t.Fatalf("login of %s ended at %s with %s, want /runs with 200", user.PreferredUsername, resp.Request.URL, resp.Status)
	}
	return c
}
