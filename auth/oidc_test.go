package auth_test

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/wes"
	"github.com/wesgate/wesgate/wes/sqlite"
)

// fakeIdP is an OIDC provider under the test's control: discovery, a JWKS
// whose keys can be rotated, and a userinfo endpoint answering for the
// access tokens the test registers. It stands for the university's
// provider; mockoidc, a real implementation, is used below too.
type fakeIdP struct {
	srv *httptest.Server

	mu       sync.Mutex // guards keys, userinfo, calls
	keys     []*fakeKey
	userinfo map[string]map[string]any // access token -> userinfo claims
	calls    int                       // userinfo requests
}

// fakeKey is an RSA signing key and its key id.
type fakeKey struct {
	kid  string
	priv *rsa.PrivateKey
}

func newFakeKey(t testing.TB, kid string) *fakeKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeKey{kid: kid, priv: k}
}

func newFakeIdP(t testing.TB, keys ...*fakeKey) *fakeIdP {
	t.Helper()
	p := &fakeIdP{keys: keys, userinfo: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		u := p.srv.URL
		writeTestJSON(w, map[string]any{
			"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token",
			"jwks_uri": u + "/jwks", "userinfo_endpoint": u + "/userinfo",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		var keys []map[string]string
		for _, k := range p.keys {
			keys = append(keys, map[string]string{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": k.kid,
				"n": b64(k.priv.N.Bytes()), "e": b64(big.NewInt(int64(k.priv.E)).Bytes())})
		}
		writeTestJSON(w, map[string]any{"keys": keys})
	})
	mux.HandleFunc("GET /userinfo", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.calls++
		info, ok := p.userinfo[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
			return
		}
		writeTestJSON(w, info)
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func writeTestJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// publish replaces the keys in the JWKS.
func (p *fakeIdP) publish(keys ...*fakeKey) {
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
}

// answer makes userinfo answer info for the access token.
func (p *fakeIdP) answer(token string, info map[string]any) {
	p.mu.Lock()
	p.userinfo[token] = info
	p.mu.Unlock()
}

func (p *fakeIdP) userinfoCalls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// claims are a valid access token's claims for alice; change them with set.
func (p *fakeIdP) claims(set map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": p.srv.URL, "aud": "wesgate", "sub": "sub-alice", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"preferred_username": "alice", "name": "Alice Liddell",
	}
	for k, v := range set {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func jsonB64(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b64(b)
}

// signJWT signs claims with RS256 and k, naming k's key id in the header.
func signJWT(t testing.TB, k *fakeKey, claims map[string]any) string {
	t.Helper()
	input := jsonB64(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": k.kid}) + "." + jsonB64(t, claims)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// newTestOIDC discovers p with wesgate's defaults, changed by adjust.
func newTestOIDC(t testing.TB, issuer string, adjust func(*auth.OIDCConfig)) *auth.OIDC {
	t.Helper()
	cfg := auth.OIDCConfig{Issuer: issuer, ClientID: "wesgate", ClientSecret: "secret", PublicURL: "https://wes.example.org"}
	if adjust != nil {
		adjust(&cfg)
	}
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "wesgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sessions := scs.New()
	sessions.Store = db.Sessions()
	o, err := auth.NewOIDC(context.Background(), cfg, sessions, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// authenticate runs o.Authenticate on a request with the Authorization
// header (none when empty), inside the session middleware as in wesgate.
func authenticate(o *auth.OIDC, authorization string) (wes.User, error) {
	var u wes.User
	var err error
	h := o.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err = o.Authenticate(r)
	}))
	r := httptest.NewRequest(http.MethodGet, "/ga4gh/wes/v1/runs", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	h.ServeHTTP(httptest.NewRecorder(), r)
	return u, err
}

func TestOIDCBearerTokens(t *testing.T) {
	t.Parallel()
	key, stranger := newFakeKey(t, "key-1"), newFakeKey(t, "stranger")
	idp := newFakeIdP(t, key)
	o := newTestOIDC(t, idp.srv.URL, nil)
	now := time.Now()
	good := signJWT(t, key, idp.claims(nil))
	head, payload, sig := splitJWT(t, good)

	// tampered flips one bit of the signature.
	rawSig, _ := base64.RawURLEncoding.DecodeString(sig)
	rawSig[len(rawSig)/2] ^= 1
	tampered := head + "." + payload + "." + b64(rawSig)
	// promoted keeps the signature but changes the claims it covers.
	promoted := head + "." + jsonB64(t, idp.claims(map[string]any{"preferred_username": "root"})) + "." + sig
	// none is an unsigned token; hs256 is signed with the public key as an
	// HMAC secret (the key-confusion attack).
	none := jsonB64(t, map[string]any{"alg": "none", "typ": "JWT"}) + "." + payload + "."
	hsInput := jsonB64(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "key-1"}) + "." + payload
	mac := hmac.New(sha256.New, key.priv.N.Bytes())
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + b64(mac.Sum(nil))

	bad := []struct {
		name, header string
	}{
		{"expired", "Bearer " + signJWT(t, key, idp.claims(map[string]any{"exp": now.Add(-2 * time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix()}))},
		{"no expiry", "Bearer " + signJWT(t, key, idp.claims(map[string]any{"exp": nil}))},
		// go-oidc allows five minutes of clock skew on nbf.
		{"not yet valid", "Bearer " + signJWT(t, key, idp.claims(map[string]any{"nbf": now.Add(time.Hour).Unix()}))},
		{"wrong issuer", "Bearer " + signJWT(t, key, idp.claims(map[string]any{"iss": "https://evil.example"}))},
		{"wrong audience", "Bearer " + signJWT(t, key, idp.claims(map[string]any{"aud": "another-app"}))},
		{"no audience", "Bearer " + signJWT(t, key, idp.claims(map[string]any{"aud": nil}))},
		{"unknown key", "Bearer " + signJWT(t, stranger, idp.claims(nil))},
		{"known kid, other key", "Bearer " + signJWT(t, &fakeKey{kid: "key-1", priv: stranger.priv}, idp.claims(nil))},
		{"tampered signature", "Bearer " + tampered},
		{"tampered claims", "Bearer " + promoted},
		{"alg none", "Bearer " + none},
		{"alg HS256", "Bearer " + hs256},
		{"garbage", "Bearer not.a.jwt"},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:secret"))},
		{"token without scheme", good},
		{"empty bearer", "Bearer "},
		{"bearer alone", "Bearer"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			u, err := authenticate(o, tc.header)
			if err == nil {
				t.Fatalf("accepted as %+v", u)
			}
			if errors.Is(err, auth.ErrNoCredentials) {
				t.Errorf("err = %v: bad credentials are not the absence of credentials", err)
			}
			if _, tok, _ := strings.Cut(tc.header, " "); len(tok) > 8 && strings.Contains(err.Error(), tok) {
				t.Errorf("the error repeats the credentials: %v", err)
			}
		})
	}

	for _, header := range []string{"Bearer " + good, "bearer " + good, "Bearer  " + good + " "} {
		u, err := authenticate(o, header)
		if err != nil {
			t.Fatalf("%.20q: %v", header, err)
		}
		want := wes.User{Owner: idp.srv.URL + "|sub-alice", Username: "alice", Display: "Alice Liddell"}
		if u != want {
			t.Errorf("user = %+v, want %+v", u, want)
		}
	}
	if calls := idp.userinfoCalls(); calls != 0 {
		t.Errorf("userinfo asked %d times for tokens that carry the username", calls)
	}
}

func splitJWT(t testing.TB, tok string) (string, string, string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	return parts[0], parts[1], parts[2]
}

// TestOIDCNoCredentials: a request without an Authorization header or a
// session is anonymous (ErrNoCredentials), which anonAPI lets through.
func TestOIDCNoCredentials(t *testing.T) {
	t.Parallel()
	idp := newFakeIdP(t, newFakeKey(t, "k"))
	o := newTestOIDC(t, idp.srv.URL, nil)
	if _, err := authenticate(o, ""); !errors.Is(err, auth.ErrNoCredentials) {
		t.Errorf("err = %v, want ErrNoCredentials", err)
	}
	if o.Mode() != "oidc" || o.Issuer() != idp.srv.URL || o.ClientID() != "wesgate" {
		t.Errorf("mode %q issuer %q client %q", o.Mode(), o.Issuer(), o.ClientID())
	}
}

// TestOIDCKeyRotation: after the provider publishes a new key, tokens it
// signs are accepted without a restart, and a key it withdrew no longer is.
func TestOIDCKeyRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newFakeKey(t, "2024"), newFakeKey(t, "2025")
	idp := newFakeIdP(t, oldKey)
	// Keys are trusted for a nanosecond: each token sees the current JWKS.
	o := newTestOIDC(t, idp.srv.URL, func(c *auth.OIDCConfig) { c.KeysMaxAge = time.Nanosecond })
	// With the default (an hour), a new key is picked up by its key id.
	lasting := newTestOIDC(t, idp.srv.URL, nil)
	if _, err := authenticate(lasting, "Bearer "+signJWT(t, oldKey, idp.claims(nil))); err != nil {
		t.Fatalf("token of the current key: %v", err)
	}
	if _, err := authenticate(o, "Bearer "+signJWT(t, oldKey, idp.claims(nil))); err != nil {
		t.Fatalf("token of the current key: %v", err)
	}
	if _, err := authenticate(o, "Bearer "+signJWT(t, newKey, idp.claims(nil))); err == nil {
		t.Fatal("a token signed by a key not yet published was accepted")
	}
	idp.publish(oldKey, newKey)
	u, err := authenticate(o, "Bearer "+signJWT(t, newKey, idp.claims(map[string]any{"sub": "sub-bob", "preferred_username": "bob"})))
	if err != nil {
		t.Fatalf("token of the newly published key: %v", err)
	}
	if u.Username != "bob" {
		t.Errorf("user = %+v", u)
	}
	if _, err := authenticate(lasting, "Bearer "+signJWT(t, newKey, idp.claims(map[string]any{"jti": "lasting"}))); err != nil {
		t.Errorf("token of the newly published key, keys cached: %v", err)
	}
	idp.publish(newKey)
	// A fresh token (not in the cache) of the withdrawn key.
	if _, err := authenticate(o, "Bearer "+signJWT(t, oldKey, idp.claims(map[string]any{"jti": "after-withdrawal"}))); err == nil {
		t.Error("a token of a withdrawn key was accepted")
	}
	if _, err := authenticate(o, "Bearer "+signJWT(t, newKey, idp.claims(map[string]any{"jti": "x"}))); err != nil {
		t.Errorf("token of the new key: %v", err)
	}
}

func TestOIDCAudiences(t *testing.T) {
	t.Parallel()
	key := newFakeKey(t, "k")
	idp := newFakeIdP(t, key)
	o := newTestOIDC(t, idp.srv.URL, func(c *auth.OIDCConfig) { c.Audiences = []string{"wes-api", "wes-cli"} })
	for _, tc := range []struct {
		aud any
		ok  bool
	}{
		{"wes-api", true},
		{[]string{"other", "wes-cli"}, true},
		{"wesgate", false}, // the client id is not accepted when audiences are configured
		{[]string{"other"}, false},
	} {
		_, err := authenticate(o, "Bearer "+signJWT(t, key, idp.claims(map[string]any{"aud": tc.aud})))
		if (err == nil) != tc.ok {
			t.Errorf("aud %v: err = %v, want ok=%v", tc.aud, err, tc.ok)
		}
	}
}

func TestOIDCRequiredScope(t *testing.T) {
	t.Parallel()
	key := newFakeKey(t, "k")
	idp := newFakeIdP(t, key)
	o := newTestOIDC(t, idp.srv.URL, func(c *auth.OIDCConfig) { c.RequiredScope = "wes" })
	for _, tc := range []struct {
		name   string
		claims map[string]any
		ok     bool
	}{
		{"no scope", nil, false},
		{"other scopes", map[string]any{"scope": "openid profile"}, false},
		{"prefix of the scope", map[string]any{"scope": "openid wesx"}, false},
		{"scope string", map[string]any{"scope": "openid wes profile"}, true},
		{"scp list", map[string]any{"scp": []string{"openid", "wes"}}, true},
	} {
		_, err := authenticate(o, "Bearer "+signJWT(t, key, idp.claims(tc.claims)))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	// Without a required scope any token of the provider will do.
	open := newTestOIDC(t, idp.srv.URL, nil)
	if _, err := authenticate(open, "Bearer "+signJWT(t, key, idp.claims(nil))); err != nil {
		t.Errorf("no required scope: %v", err)
	}
}

func TestOIDCAdminGroup(t *testing.T) {
	t.Parallel()
	key := newFakeKey(t, "k")
	idp := newFakeIdP(t, key)
	o := newTestOIDC(t, idp.srv.URL, func(c *auth.OIDCConfig) { c.AdminGroup = "wes-admins" })
	custom := newTestOIDC(t, idp.srv.URL, func(c *auth.OIDCConfig) { c.AdminGroup = "wes-admins"; c.GroupsClaim = "roles" })
	none := newTestOIDC(t, idp.srv.URL, nil)
	for _, tc := range []struct {
		name   string
		o      *auth.OIDC
		claims map[string]any
		admin  bool
	}{
		{"in the group", o, map[string]any{"groups": []string{"staff", "wes-admins"}}, true},
		{"groups as a string", o, map[string]any{"groups": "staff wes-admins"}, true},
		{"not in the group", o, map[string]any{"groups": []string{"staff", "wes-admins-2"}}, false},
		{"empty groups", o, map[string]any{"groups": []string{}}, false},
		{"other claim name", custom, map[string]any{"roles": []string{"wes-admins"}, "groups": []string{}}, true},
		{"group in the wrong claim", custom, map[string]any{"roles": []string{}, "groups": []string{"wes-admins"}}, false},
		{"no admin group configured", none, map[string]any{"groups": []string{"wes-admins"}}, false},
	} {
		u, err := authenticate(tc.o, "Bearer "+signJWT(t, key, idp.claims(tc.claims)))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if u.Admin != tc.admin {
			t.Errorf("%s: admin = %v, want %v", tc.name, u.Admin, tc.admin)
		}
	}
}

// TestOIDCUserinfo: claims an access token lacks come from the userinfo
// endpoint, for the same subject only; the answer is cached with the token.
func TestOIDCUserinfo(t *testing.T) {
	t.Parallel()
	key := newFakeKey(t, "k")
	idp := newFakeIdP(t, key)
	o := newTestOIDC(t, idp.srv.URL, func(c *auth.OIDCConfig) { c.AdminGroup = "wes-admins" })

	bare := signJWT(t, key, idp.claims(map[string]any{"preferred_username": nil, "name": nil, "jti": "bare"}))
	idp.answer(bare, map[string]any{"sub": "sub-alice", "preferred_username": "alice", "name": "Alice", "groups": []string{"wes-admins"}})
	for range 3 {
		u, err := authenticate(o, "Bearer "+bare)
		if err != nil {
			t.Fatal(err)
		}
		if want := (wes.User{Owner: idp.srv.URL + "|sub-alice", Username: "alice", Display: "Alice", Admin: true}); u != want {
			t.Fatalf("user = %+v, want %+v", u, want)
		}
	}
	if n := idp.userinfoCalls(); n != 1 {
		t.Errorf("userinfo asked %d times for one token, want 1 (cached)", n)
	}

	// The token's own claims win over userinfo's.
	named := signJWT(t, key, idp.claims(map[string]any{"jti": "named"}))
	idp.answer(named, map[string]any{"sub": "sub-alice", "preferred_username": "mallory", "groups": []string{"wes-admins"}})
	if u, err := authenticate(o, "Bearer "+named); err != nil || u.Username != "alice" || !u.Admin {
		t.Errorf("token with a username but no groups: %+v, %v; want alice from the token, admin from userinfo", u, err)
	}

	// Userinfo about someone else is refused.
	swapped := signJWT(t, key, idp.claims(map[string]any{"preferred_username": nil, "jti": "swapped"}))
	idp.answer(swapped, map[string]any{"sub": "sub-mallory", "preferred_username": "mallory"})
	if u, err := authenticate(o, "Bearer "+swapped); err == nil {
		t.Errorf("userinfo for another subject accepted: %+v", u)
	}

	// No username anywhere: refused when userinfo fails; without only the
	// groups the person is known, but not an admin.
	unknown := signJWT(t, key, idp.claims(map[string]any{"preferred_username": nil, "jti": "unknown"}))
	if u, err := authenticate(o, "Bearer "+unknown); err == nil {
		t.Errorf("token whose username userinfo could not give accepted: %+v", u)
	}
	calls := idp.userinfoCalls()
	if _, err := authenticate(o, "Bearer "+unknown); err == nil {
		t.Error("accepted on the second try")
	}
	if idp.userinfoCalls() != calls+1 {
		t.Error("a failure was cached")
	}
	groupless := signJWT(t, key, idp.claims(map[string]any{"jti": "groupless"}))
	if u, err := authenticate(o, "Bearer "+groupless); err != nil || u.Username != "alice" || u.Admin {
		t.Errorf("groups unavailable: %+v, %v; want alice, not an admin", u, err)
	}
}

// TestOIDCUserinfoMockOIDC: mockoidc's access tokens carry no username or
// groups; wesgate finds both at its userinfo endpoint.
func TestOIDCUserinfoMockOIDC(t *testing.T) {
	t.Parallel()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	m.Keypair.KeyID() // computed once here, not by concurrent handlers

	cfg := func(c *auth.OIDCConfig) {
		c.ClientID, c.ClientSecret, c.AdminGroup = m.ClientID, m.ClientSecret, "wes-admins"
	}
	o := newTestOIDC(t, m.Issuer(), cfg)
	token := mockAccessToken(t, m, &mockoidc.MockUser{Subject: "u-1", PreferredUsername: "carol", Groups: []string{"wes-admins"}})
	_, payload, _ := splitJWT(t, token)
	raw, _ := base64.RawURLEncoding.DecodeString(payload)
	if strings.Contains(string(raw), "preferred_username") {
		t.Fatalf("mockoidc's access token has a username claim now (%s): this test no longer tests the fallback", raw)
	}
	u, err := authenticate(o, "Bearer "+token)
	if err != nil {
		t.Fatal(err)
	}
	if want := (wes.User{Owner: m.Issuer() + "|u-1", Username: "carol", Display: "carol", Admin: true}); u != want {
		t.Errorf("user = %+v, want %+v", u, want)
	}
	// A token mockoidc signed itself, with the claims in it, needs no userinfo.
	signed, err := m.Keypair.SignJWT(jwt.MapClaims{"iss": m.Issuer(), "aud": m.ClientID, "sub": "u-2",
		"exp": time.Now().Add(time.Hour).Unix(), "preferred_username": "dave", "groups": []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if u, err := authenticate(o, "Bearer "+signed); err != nil || u.Username != "dave" || u.Admin {
		t.Errorf("signed token: %+v, %v", u, err)
	}
}

// mockAccessToken logs user in at m (authorization code flow) and returns
// the access token.
func mockAccessToken(t testing.TB, m *mockoidc.MockOIDC, user *mockoidc.MockUser) string {
	t.Helper()
	m.QueueUser(user)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {m.ClientID}, "response_type": {"code"}, "scope": {"openid profile groups"},
		"state": {"s"}, "redirect_uri": {"http://127.0.0.1/cb"}}
	resp, err := noRedirect.Get(m.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %s %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = http.PostForm(m.TokenEndpoint(), url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"client_id": {m.ClientID}, "client_secret": {m.ClientSecret}, "redirect_uri": {"http://127.0.0.1/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token: %s %s", resp.Status, b)
	}
	return tok.AccessToken
}

func TestOIDCUsernameClaimAndUserMap(t *testing.T) {
	t.Parallel()
	key := newFakeKey(t, "k")
	idp := newFakeIdP(t, key)
	users := auth.UserMap{"alice@example.org": "alice", "mallory@example.org": "-"}
	o := newTestOIDC(t, idp.srv.URL, func(c *auth.OIDCConfig) { c.UsernameClaim = "email"; c.Users = users })
	for _, tc := range []struct {
		email, want string
	}{
		{"alice@example.org", "alice"},
		{"mallory@example.org", ""}, // no cluster account, though the claim is there
	} {
		u, err := authenticate(o, "Bearer "+signJWT(t, key, idp.claims(map[string]any{"email": tc.email, "jti": tc.email})))
		if err != nil {
			t.Errorf("%s: %v", tc.email, err)
			continue
		}
		if u.Username != tc.want {
			t.Errorf("%s: username %q, want %q", tc.email, u.Username, tc.want)
		}
		if u.Owner != idp.srv.URL+"|sub-alice" {
			t.Errorf("%s: owner %q: the owner is issuer and subject, never the username", tc.email, u.Owner)
		}
	}
	// A claim that the map does not know and that is no account name is
	// refused, never mangled into one; so is a preferred_username that is
	// no account name.
	plain := newTestOIDC(t, idp.srv.URL, nil)
	for _, tc := range []struct {
		o     *auth.OIDC
		claim string
		value string
	}{
		{o, "email", "bob@example.org"},
		{plain, "preferred_username", "Not Valid!"},
	} {
		u, err := authenticate(tc.o, "Bearer "+signJWT(t, key, idp.claims(map[string]any{tc.claim: tc.value, "jti": tc.value})))
		var refused *auth.RefusedError
		if !errors.As(err, &refused) || refused.Account != tc.value || !strings.Contains(err.Error(), "not a valid account name") {
			t.Errorf("%s %q: %+v, %v; want a refusal", tc.claim, tc.value, u, err)
		}
	}
}

// TestOIDCRefusedAccounts: a token that names a system account, the
// service account, or an account the cluster says is a system one (a small
// uid) or does not have, is refused; one whose account the cluster cannot
// be asked about is unavailable, not refused; nothing is cached for them.
func TestOIDCRefusedAccounts(t *testing.T) {
	t.Parallel()
	key := newFakeKey(t, "k")
	idp := newFakeIdP(t, key)
	uids := map[string]int{"alice": 1001, "sysop": 999, "zero": 0, "nobody2": 65534, "svc": 1003}
	var lookups []string
	var down bool
	o := newTestOIDC(t, idp.srv.URL, func(c *auth.OIDCConfig) {
		c.Accounts = &auth.AccountPolicy{ServiceAccount: "svc", MinUID: 1000,
			Deny: append(auth.DefaultDeny(), "backupd"),
			Lookup: func(_ context.Context, name string) (int, bool, error) {
				lookups = append(lookups, name)
				if down {
					return 0, false, errors.New("ssh: connection refused")
				}
				uid, ok := uids[name]
				return uid, ok, nil
			}}
	})
	as := func(name string) (wes.User, error) {
		return authenticate(o, "Bearer "+signJWT(t, key, idp.claims(map[string]any{"preferred_username": name, "jti": name})))
	}
	if u, err := as("alice"); err != nil || u.Username != "alice" {
		t.Fatalf("alice: %+v, %v", u, err)
	}
	for _, tc := range []struct{ name, reason string }{
		{"root", "system account"}, {"daemon", "system account"}, {"slurm", "system account"}, {"munge", "system account"},
		{"systemd-network", "system account"}, {"backupd", "system account"},
		{"svc", "service account"},
		{"sysop", "system account"}, {"zero", "system account"}, {"nobody2", "system account"},
		{"ghost", "no such account"},
		{"Root", "not a valid account name"}, {"root\n", "not a valid account name"}, {"../root", "not a valid account name"},
	} {
		u, err := as(tc.name)
		var refused *auth.RefusedError
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%q: %+v, %v; want refused as %q", tc.name, u, err, tc.reason)
		}
	}
	for _, name := range lookups {
		if name == "root" || name == "svc" || name == "Root" || name == "../root" {
			t.Errorf("the cluster was asked about %q, which no cluster answer could make acceptable", name)
		}
	}
	down = true
	if _, err := as("carol"); !errors.Is(err, wes.ErrUnavailable) {
		t.Errorf("cluster down: %v, want ErrUnavailable", err)
	}
	down, lookups = false, nil
	if _, err := as("sysop"); err == nil || len(lookups) != 1 {
		t.Errorf("a refused token again: %v after %d lookups; want a refusal asked anew", err, len(lookups))
	}
}

func TestNewOIDCErrors(t *testing.T) {
	t.Parallel()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "wesgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sessions := scs.New()
	sessions.Store = db.Sessions()
	log := slog.New(slog.DiscardHandler)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	for _, cfg := range []auth.OIDCConfig{
		{ClientID: "wesgate"},
		{Issuer: "https://idp.example.org"},
		{Issuer: dead.URL, ClientID: "wesgate"},
	} {
		if _, err := auth.NewOIDC(context.Background(), cfg, sessions, log); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}
