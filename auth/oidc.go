package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/wesgate/wesgate/wes"
)

// OIDCConfig configures authentication against the university's OIDC provider.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// Audiences a bearer token may be issued for (default: ClientID).
	Audiences []string
	// UsernameClaim names the cluster username (default preferred_username).
	UsernameClaim string
	// GroupsClaim holds the groups (default groups); AdminGroup makes admins.
	GroupsClaim string
	AdminGroup  string
	// RequiredScope, when set, must be in a bearer token's scope claim.
	RequiredScope string
	// PublicURL is wesgate's external base URL; the login callback is
	// PublicURL/auth/callback.
	PublicURL string
	// Users overrides the username claim (nil: none).
	Users UserMap
	// Accounts decides which cluster accounts people may act as (nil: valid
	// names not in DefaultDeny). A token that names a refused account is
	// refused: nobody logs in or calls the API as root.
	Accounts *AccountPolicy
	// KeysMaxAge is how long the provider's signing keys are trusted before
	// they are fetched again (default an hour), so that a key the provider
	// withdrew stops working.
	KeysMaxAge time.Duration
}

// OIDC authenticates WES clients by bearer token and people by a browser
// login (authorization code flow with PKCE, state and nonce) that leaves a
// server-side session.
type OIDC struct {
	cfg        OIDCConfig
	provider   *oidc.Provider
	bearer     *oidc.IDTokenVerifier // signature, issuer, expiry; audience is checked here
	idTokens   *oidc.IDTokenVerifier // signature, issuer, expiry, audience = client id
	oauth      oauth2.Config
	endSession string
	sessions   *scs.SessionManager
	log        *slog.Logger

	mu    sync.Mutex // guards cache
	cache map[[32]byte]cachedUser
}

type cachedUser struct {
	user    wes.User
	expires time.Time
}

// NewOIDC discovers the issuer's configuration and keys.
func NewOIDC(ctx context.Context, cfg OIDCConfig, sessions *scs.SessionManager, log *slog.Logger) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("oidc: issuer and client_id are required")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if len(cfg.Audiences) == 0 {
		cfg.Audiences = []string{cfg.ClientID}
	}
	if cfg.KeysMaxAge <= 0 {
		cfg.KeysMaxAge = time.Hour
	}
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", cfg.Issuer, err)
	}
	var extra struct {
		EndSession string   `json:"end_session_endpoint"`
		JWKS       string   `json:"jwks_uri"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := provider.Claims(&extra); err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", cfg.Issuer, err)
	}
	if extra.JWKS == "" {
		return nil, fmt.Errorf("oidc: discovery at %s: no jwks_uri", cfg.Issuer)
	}
	keys := &keySet{ctx: context.WithoutCancel(ctx), url: extra.JWKS, maxAge: cfg.KeysMaxAge}
	algs := signingAlgs(extra.Algs)
	o := &OIDC{
		cfg:      cfg,
		provider: provider,
		bearer:   oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{SkipClientIDCheck: true, SupportedSigningAlgs: algs}),
		idTokens: oidc.NewVerifier(cfg.Issuer, keys, &oidc.Config{ClientID: cfg.ClientID, SupportedSigningAlgs: algs}),
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: provider.Endpoint(),
			RedirectURL: strings.TrimRight(cfg.PublicURL, "/") + "/auth/callback",
			Scopes:      []string{oidc.ScopeOpenID, "profile", "email", "groups"},
		},
		endSession: extra.EndSession,
		sessions:   sessions,
		log:        log,
		cache:      map[[32]byte]cachedUser{},
	}
	return o, nil
}

// keySet is the provider's signing keys: go-oidc's RemoteKeySet, made anew
// once it is older than maxAge. RemoteKeySet fetches the keys again only for
// a token with an unknown key id, so on its own it would trust a key the
// provider withdrew for as long as wesgate runs.
type keySet struct {
	ctx    context.Context // for the HTTP client; never cancelled
	url    string
	maxAge time.Duration

	mu    sync.Mutex // guards keys, since
	keys  *oidc.RemoteKeySet
	since time.Time
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	k.mu.Lock()
	if k.keys == nil || time.Since(k.since) > k.maxAge {
		k.keys, k.since = oidc.NewRemoteKeySet(k.ctx, k.url), time.Now()
	}
	keys := k.keys
	k.mu.Unlock()
	return keys.VerifySignature(ctx, jwt)
}

// signingAlgs keeps the asymmetric algorithms of those the provider
// advertises (RS256 when it names none): never "none", never HMAC.
func signingAlgs(advertised []string) []string {
	var algs []string
	for _, a := range advertised {
		switch a {
		case oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
			oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA:
			algs = append(algs, a)
		}
	}
	if len(algs) == 0 {
		algs = []string{oidc.RS256}
	}
	return algs
}

// Mode is "oidc".
func (o *OIDC) Mode() string { return "oidc" }

// Issuer is the configured issuer URL.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

// ClientID is the configured client id.
func (o *OIDC) ClientID() string { return o.cfg.ClientID }

// Authenticate accepts a bearer token, or else a browser session.
func (o *OIDC) Authenticate(r *http.Request) (wes.User, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return wes.User{}, errors.New("authorization header is not a bearer token")
		}
		return o.verifyBearer(r.Context(), strings.TrimSpace(token))
	}
	return o.sessionUser(r)
}

// claims are the parts of a token wesgate reads.
type claims map[string]any

func (c claims) str(name string) string {
	s, _ := c[name].(string)
	return s
}

func (c claims) list(name string) []string {
	switch v := c[name].(type) {
	case []any:
		var out []string
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case string:
		return strings.Fields(v)
	}
	return nil
}

// verifyBearer checks a bearer token: signature against the issuer's keys
// (rotation is followed), issuer, expiry, an accepted audience and the
// required scope. Claims the token lacks (username, groups) come from the
// userinfo endpoint. Results are cached until the token expires (at most
// ten minutes).
func (o *OIDC) verifyBearer(ctx context.Context, raw string) (wes.User, error) {
	key := sha256.Sum256([]byte(raw))
	o.mu.Lock()
	if c, ok := o.cache[key]; ok && time.Now().Before(c.expires) {
		o.mu.Unlock()
		return c.user, nil
	}
	o.mu.Unlock()
	tok, err := o.bearer.Verify(ctx, raw)
	if err != nil {
		return wes.User{}, fmt.Errorf("bearer token: %w", err)
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(o.cfg.Audiences, a) }) {
		return wes.User{}, errors.New("bearer token: not issued for an accepted audience")
	}
	var c claims
	if err := tok.Claims(&c); err != nil {
		return wes.User{}, fmt.Errorf("bearer token claims: %w", err)
	}
	if o.cfg.RequiredScope != "" {
		scopes := c.list("scope")
		if len(scopes) == 0 {
			scopes = c.list("scp")
		}
		if !slices.Contains(scopes, o.cfg.RequiredScope) {
			return wes.User{}, fmt.Errorf("bearer token: scope %q missing", o.cfg.RequiredScope)
		}
	}
	needName, needGroups := o.lacks(c)
	if needName || needGroups {
		ts := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: raw, TokenType: "Bearer"})
		if err := o.addUserinfo(ctx, ts, tok.Subject, c); err != nil {
			if needName {
				return wes.User{}, err
			}
			// The person is known; only the admin group could not be checked.
			o.log.Warn("oidc: groups not in the token and userinfo failed; not an admin", "err", err)
		}
	}
	u, err := o.user(ctx, tok.Issuer, tok.Subject, c)
	if err != nil {
		return wes.User{}, err
	}
	expires := tok.Expiry
	if expires.IsZero() || time.Until(expires) > 10*time.Minute {
		expires = time.Now().Add(10 * time.Minute)
	}
	o.mu.Lock()
	if len(o.cache) > 10000 { // bounded: drop everything rather than grow
		clear(o.cache)
	}
	o.cache[key] = cachedUser{user: u, expires: expires}
	o.mu.Unlock()
	return u, nil
}

// lacks reports whether verified claims lack the username, or the groups
// that decide who is an admin (only asked when an admin group is set).
func (o *OIDC) lacks(c claims) (name, groups bool) {
	_, hasName := c[o.cfg.UsernameClaim]
	_, hasGroups := c[o.cfg.GroupsClaim]
	return !hasName, o.cfg.AdminGroup != "" && !hasGroups
}

// addUserinfo adds the claims of the userinfo endpoint that c lacks. The
// answer must be about subject.
func (o *OIDC) addUserinfo(ctx context.Context, ts oauth2.TokenSource, subject string, c claims) error {
	info, err := o.provider.UserInfo(ctx, ts)
	if err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	var more claims
	if err := info.Claims(&more); err != nil {
		return fmt.Errorf("userinfo claims: %w", err)
	}
	if more.str("sub") != subject {
		return errors.New("userinfo: subject differs from the token's")
	}
	for k, v := range more {
		if _, has := c[k]; !has {
			c[k] = v
		}
	}
	return nil
}

// user builds the identity from verified claims. A person whose claims
// name no cluster account (no username claim, or "-" in the user map) gets
// none; one whose claims name an account the policy refuses is refused
// (*RefusedError), and so is one whose account cannot be checked now
// (wes.ErrUnavailable).
func (o *OIDC) user(ctx context.Context, issuer, subject string, c claims) (wes.User, error) {
	name := c.str(o.cfg.UsernameClaim)
	display := c.str("name")
	if display == "" {
		display = name
	}
	var account string
	if name != "" {
		if a, ok := o.cfg.Users.Account(name); ok {
			if err := o.cfg.Accounts.Check(ctx, a); err != nil {
				return wes.User{}, err
			}
			account = a
		}
	}
	return wes.User{
		Owner:    issuer + "|" + subject,
		Username: account,
		Display:  display,
		Admin:    o.cfg.AdminGroup != "" && slices.Contains(c.list(o.cfg.GroupsClaim), o.cfg.AdminGroup),
	}, nil
}

// Session keys.
const (
	keyUser     = "user"
	keyIDToken  = "id_token"
	keyState    = "oauth_state"
	keyVerifier = "oauth_verifier"
	keyNonce    = "oauth_nonce"
	keyNext     = "oauth_next"
)

func (o *OIDC) sessionUser(r *http.Request) (wes.User, error) {
	b, ok := o.sessions.Get(r.Context(), keyUser).([]byte)
	if !ok || len(b) == 0 {
		return wes.User{}, ErrNoCredentials
	}
	var u wes.User
	if err := json.Unmarshal(b, &u); err != nil {
		return wes.User{}, ErrNoCredentials
	}
	return u, nil
}

// Middleware loads and saves the browser session around h.
func (o *OIDC) Middleware(h http.Handler) http.Handler { return o.sessions.LoadAndSave(h) }

func random() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// safeNext keeps a post-login redirect on this site, and out of the login
// itself: a problem page's "log in" link after a failed callback would
// otherwise lead back to that spent callback.
func safeNext(next string) string {
	if !localPath(next) {
		return "/"
	}
	switch path, _, _ := strings.Cut(next, "?"); path {
	case "/auth/login", "/auth/callback", "/auth/logout":
		return "/"
	}
	return next
}

// localPath reports whether s is a path on this site that every browser
// reads as one. Browsers drop TAB, CR and LF anywhere in a URL and read a
// backslash as a slash, so "/\t/evil.example" and "/\\evil.example" lead
// to another host; control bytes, backslashes and non-ASCII bytes are
// therefore refused outright, in the value and in its decoded path, and what
// is left must parse with no scheme and no host and start with a single "/".
func localPath(s string) bool {
	if len(s) > 4096 || !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || !plainASCII(s) {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Opaque != "" || u.User != nil {
		return false
	}
	return strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(u.Path, "//") && plainASCII(u.Path)
}

// plainASCII reports whether s holds only printable ASCII other than the
// backslash.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '\\' {
			return false
		}
	}
	return true
}

// HandleLogin sends the browser to the provider.
func (o *OIDC) HandleLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
		ctx := r.Context()
		o.sessions.Put(ctx, keyState, state)
		o.sessions.Put(ctx, keyNonce, nonce)
		o.sessions.Put(ctx, keyVerifier, verifier)
		o.sessions.Put(ctx, keyNext, safeNext(r.URL.Query().Get("next")))
		url := o.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
		http.Redirect(w, r, url, http.StatusFound)
	})
}

// HandleCallback completes the login: it checks state, exchanges the code
// with the PKCE verifier, verifies the ID token and its nonce, renews the
// session token and stores the user.
func (o *OIDC) HandleCallback(fail func(w http.ResponseWriter, r *http.Request, status int, msg string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		state := o.sessions.PopString(ctx, keyState)
		nonce := o.sessions.PopString(ctx, keyNonce)
		verifier := o.sessions.PopString(ctx, keyVerifier)
		next := safeNext(o.sessions.PopString(ctx, keyNext))
		q := r.URL.Query()
		// State first: only the provider, answering a login started here,
		// knows it, so nobody else can put words on the error page.
		if state == "" || q.Get("state") != state {
			fail(w, r, http.StatusBadRequest, "This login link has expired or was not started here. Please log in again.")
			return
		}
		if e := q.Get("error"); e != "" {
			fail(w, r, http.StatusUnauthorized, "The identity provider did not log you in ("+truncate(e, 60)+").")
			return
		}
		tok, err := o.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			o.log.Warn("oidc: code exchange failed", "err", err)
			fail(w, r, http.StatusUnauthorized, "The login could not be completed. Please try again.")
			return
		}
		rawID, _ := tok.Extra("id_token").(string)
		idt, err := o.idTokens.Verify(ctx, rawID)
		if err != nil || idt.Nonce != nonce {
			o.log.Warn("oidc: id token refused", "err", err, "nonce_ok", err == nil && idt.Nonce == nonce)
			fail(w, r, http.StatusUnauthorized, "The login could not be verified. Please try again.")
			return
		}
		var c claims
		if err := idt.Claims(&c); err != nil {
			fail(w, r, http.StatusUnauthorized, "The login could not be verified. Please try again.")
			return
		}
		if needName, needGroups := o.lacks(c); needName || needGroups {
			// Best effort: without a username the person can look but not submit.
			if err := o.addUserinfo(ctx, oauth2.StaticTokenSource(tok), idt.Subject, c); err != nil {
				o.log.Warn("oidc: userinfo at login", "err", err)
			}
		}
		u, err := o.user(ctx, idt.Issuer, idt.Subject, c)
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			o.log.Warn("login refused", "owner", idt.Issuer+"|"+idt.Subject, "account", refused.Account, "reason", refused.Reason)
			fail(w, r, http.StatusForbidden, "You cannot log in: "+refused.Error()+".")
			return
		case err != nil:
			o.log.Warn("login: cluster account not checked", "owner", idt.Issuer+"|"+idt.Subject, "err", err)
			fail(w, r, http.StatusServiceUnavailable, "Your cluster account could not be checked just now. Please try again in a minute.")
			return
		}
		b, _ := json.Marshal(u)
		if err := o.sessions.RenewToken(ctx); err != nil {
			o.log.Error("session: renew token", "err", err)
			fail(w, r, http.StatusInternalServerError, "The session could not be started.")
			return
		}
		o.sessions.Put(ctx, keyUser, b)
		o.sessions.Put(ctx, keyIDToken, rawID)
		o.log.Info("login", "owner", u.Owner, "user", u.Username, "admin", u.Admin)
		http.Redirect(w, r, next, http.StatusSeeOther)
	})
}

// HandleLogout ends the session, and the provider's session when it has an
// end-session endpoint.
func (o *OIDC) HandleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		idToken := o.sessions.GetString(ctx, keyIDToken)
		if err := o.sessions.Destroy(ctx); err != nil {
			o.log.Error("session: destroy", "err", err)
		}
		target := "/"
		if o.endSession != "" {
			v := url.Values{"post_logout_redirect_uri": {strings.TrimRight(o.cfg.PublicURL, "/") + "/"}, "client_id": {o.cfg.ClientID}}
			if idToken != "" {
				v.Set("id_token_hint", idToken)
			}
			target = o.endSession + "?" + v.Encode()
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
