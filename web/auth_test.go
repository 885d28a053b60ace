package web_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/web"
	"github.com/wesgate/wesgate/wes"
	"github.com/wesgate/wesgate/wes/sqlite"
)

// The authentication tests run wesgate with OIDC against mockoidc, a real
// OIDC provider on loopback. Helpers here (au*) serve authz_test.go and
// peruser_test.go too.

// auIdP is a mockoidc provider for one test.
type auIdP struct {
	*mockoidc.MockOIDC
	// EndSession is the end-session endpoint discovery advertises ("" for none).
	EndSession string
}

// auStartIdP starts mockoidc; with endSession its discovery document also
// advertises an end_session_endpoint, as Keycloak's and Entra's do.
func auStartIdP(t testing.TB, endSession bool) *auIdP {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &auIdP{MockOIDC: m}
	if endSession {
		p.EndSession = "http://" + ln.Addr().String() + mockoidc.IssuerBase + "/logout"
		m.AddMiddleware(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != mockoidc.DiscoveryEndpoint {
					next.ServeHTTP(w, r)
					return
				}
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				var doc map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				doc["end_session_endpoint"] = p.EndSession
				w.Header().Set("Content-Type", "application/json")
				json.NewEncoder(w).Encode(doc)
			})
		})
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	m.Keypair.KeyID() // computed once now; SignJWT and the JWKS handler only read it after
	return p
}

// sign signs claims with the provider's key, filling in a valid issuer,
// audience and lifetime where claims has none.
func (p *auIdP) sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	now := time.Now()
	for k, v := range map[string]any{"iss": p.Issuer(), "aud": p.ClientID, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()} {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	tok, err := p.Keypair.SignJWT(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// bearer is an Authorization header for a token of the person sub, whose
// preferred_username is username, in groups.
func (p *auIdP) bearer(t testing.TB, sub, username string, groups ...string) string {
	t.Helper()
	if groups == nil {
		groups = []string{} // present, so wesgate need not ask userinfo for them
	}
	return "Bearer " + p.sign(t, jwt.MapClaims{"sub": sub, "preferred_username": username, "groups": groups})
}

// accessToken logs user in at the provider (authorization code flow) and
// returns mockoidc's access token, which has no username or groups claims.
func (p *auIdP) accessToken(t testing.TB, user *mockoidc.MockUser) string {
	t.Helper()
	p.QueueUser(user)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {p.ClientID}, "response_type": {"code"}, "scope": {"openid profile groups"},
		"state": {"s"}, "redirect_uri": {"http://127.0.0.1/cb"}}
	resp, err := c.Get(p.AuthorizationEndpoint() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorize: %s %q", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = c.PostForm(p.TokenEndpoint(), url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"client_id": {p.ClientID}, "client_secret": {p.ClientSecret}, "redirect_uri": {"http://127.0.0.1/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token endpoint: %s %s", resp.Status, b)
	}
	return tok.AccessToken
}

// auLog collects the server's log lines; handlers write from many goroutines.
type auLog struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *auLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *auLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// auEnv is a testEnv whose authentication is OIDC against IdP. Its URL is
// the public URL the provider redirects browsers back to.
type auEnv struct {
	*testEnv
	IdP *auIdP
	Log *auLog
}

// auOptions adjust an auEnv.
type auOptions struct {
	Engines      []wes.Engine
	MaxJobs      int
	PollInterval time.Duration
	GoneGrace    time.Duration
	Scheduler    func(t testing.TB, log *slog.Logger) wes.Scheduler
	// SecureCookies marks the session cookie Secure (insecure_cookies = false).
	SecureCookies bool
	// EndSession makes the provider advertise an end-session endpoint.
	EndSession bool
	// Config adjusts the OIDC configuration (admin group "wes-admins" by default).
	Config func(*auth.OIDCConfig)
}

// auNewEnv starts wesgate with OIDC. The login callback must be known
// before the server starts, so the public listener is made first and
// serves the same handler as the harness's server.
func auNewEnv(t testing.TB, o auOptions) *auEnv {
	t.Helper()
	idp := auStartIdP(t, o.EndSession)
	logs := &auLog{}
	t.Cleanup(func() { // registered before the env's cleanup, so it runs after it
		if t.Failed() {
			s := logs.String()
			t.Logf("wesgate log (end):\n%s", s[max(0, len(s)-20000):])
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	env := newTestEnv(t, envOptions{Engines: o.Engines, MaxJobs: o.MaxJobs, PollInterval: o.PollInterval,
		GoneGrace: o.GoneGrace, Scheduler: o.Scheduler, Log: logs,
		Auth: func(t testing.TB, db *sqlite.DB) auth.Authenticator {
			// As cmd/wesgate's newAuthenticator configures the sessions.
			sessions := scs.New()
			sessions.Store = db.Sessions()
			sessions.Lifetime = 12 * time.Hour
			sessions.IdleTimeout = 2 * time.Hour
			sessions.Cookie.Name = web.SessionCookie
			sessions.Cookie.HttpOnly = true
			sessions.Cookie.SameSite = http.SameSiteLaxMode
			sessions.Cookie.Secure = o.SecureCookies
			sessions.Cookie.Path = "/"
			cfg := auth.OIDCConfig{Issuer: idp.Issuer(), ClientID: idp.ClientID, ClientSecret: idp.ClientSecret,
				AdminGroup: "wes-admins", PublicURL: public}
			if o.Config != nil {
				o.Config(&cfg)
			}
			a, err := auth.NewOIDC(context.Background(), cfg, sessions, slog.New(slog.NewTextHandler(logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			return a
		}})
	front := httptest.NewUnstartedServer(env.Server.Config.Handler)
	front.Listener.Close()
	front.Listener = ln
	front.Start()
	t.Cleanup(front.Close)
	e := *env
	e.URL, e.API = public, public+"/ga4gh/wes/v1"
	return &auEnv{testEnv: &e, IdP: idp, Log: logs}
}

// auEngine is a stand-in for cwltool that finishes at once with no outputs.
func auEngine(t testing.TB) wes.Engine {
	t.Helper()
	e := wes.Engine{
		Name:           "cwltool",
		Types:          map[string][]string{"CWL": {"v1.2"}},
		Command:        []string{"/bin/sh", "-c", "echo '{}'"},
		VersionCommand: []string{"/bin/echo", "3.1"},
		Outputs:        wes.OutputsCWL,
	}
	if err := e.Detect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// auSlowEngine runs NFL DSL2 "workflows" that take a minute, to be cancelled.
func auSlowEngine(t testing.TB) wes.Engine {
	t.Helper()
	e := wes.Engine{
		Name:           "slowflow",
		Types:          map[string][]string{"NFL": {"DSL2"}},
		Command:        []string{"/bin/sleep", "60"},
		VersionCommand: []string{"/bin/echo", "1.0"},
		Outputs:        wes.OutputsWorkdir,
	}
	if err := e.Detect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// auWorkflow is the workflow every test run attaches.
const auWorkflow = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [\"true\"]\ninputs: []\noutputs: []\n"

// auRunForm is a RunWorkflow request: a CWL run of auWorkflow, or (slow) a
// run of the slow engine.
func auRunForm(t testing.TB, slow bool) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	fields := [][2]string{{"workflow_type", "CWL"}, {"workflow_type_version", "v1.2"}, {"workflow_url", "wf.cwl"}, {"workflow_params", "{}"}}
	name := "wf.cwl"
	if slow {
		fields = [][2]string{{"workflow_type", "NFL"}, {"workflow_type_version", "DSL2"}, {"workflow_url", "main.nf"}, {"workflow_params", "{}"}}
		name = "main.nf"
	}
	for _, f := range fields {
		w.WriteField(f[0], f[1])
	}
	fw, err := w.CreateFormFile("workflow_attachment", name)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(fw, auWorkflow)
	w.Close()
	return &b, w.FormDataContentType()
}

// auDo sends a request with headers (name, value, name, value...) and
// returns the response with its body read.
func auDo(t testing.TB, c *http.Client, method, rawURL string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	if c == nil {
		c = auNoRedirects(nil)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// auNoRedirects is a client that returns redirects instead of following them.
func auNoRedirects(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// auSubmit creates a run with the Authorization header (or the client's
// cookies, with headers such as Origin) and returns its id.
func auSubmit(t testing.TB, c *http.Client, env *auEnv, authorization string, slow bool, headers ...string) string {
	t.Helper()
	body, ct := auRunForm(t, slow)
	resp, b := auDo(t, c, http.MethodPost, env.API+"/runs", body, append([]string{"Authorization", authorization, "Content-Type", ct}, headers...)...)
	var id struct {
		RunID string `json:"run_id"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &id) != nil || id.RunID == "" {
		t.Fatalf("POST /runs: %d %s", resp.StatusCode, b)
	}
	return id.RunID
}

// auState returns a run's state as authorization sees it.
func auState(t testing.TB, env *auEnv, authorization, id string) wes.State {
	t.Helper()
	resp, b := auDo(t, nil, http.MethodGet, env.API+"/runs/"+id+"/status", nil, "Authorization", authorization)
	var st wes.RunStatus
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil {
		t.Fatalf("GET status of %s: %d %s", id, resp.StatusCode, b)
	}
	return st.State
}

// auWait polls a run until it is in one of want, failing on any other
// terminal state or after deadline.
func auWait(t testing.TB, env *auEnv, authorization, id string, deadline time.Duration, want ...wes.State) wes.State {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		st := auState(t, env, authorization, id)
		for _, w := range want {
			if st == w {
				return st
			}
		}
		if st.Terminal() {
			t.Fatalf("run %s ended %s, want %v", id, st, want)
		}
		if time.Now().After(end) {
			t.Fatalf("run %s still %s after %s, want %v", id, st, deadline, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// auErrorBody is the WES ErrorResponse.
type auErrorBody struct {
	Msg        string `json:"msg"`
	StatusCode int    `json:"status_code"`
}

// auCheckError requires an ErrorResponse with status, and returns it.
func auCheckError(t testing.TB, what string, resp *http.Response, body []byte, status int) auErrorBody {
	t.Helper()
	var e auErrorBody
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d (%s)", what, resp.StatusCode, status, body)
		return e
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if err := json.Unmarshal(body, &e); err != nil || e.StatusCode != status || e.Msg == "" {
		t.Errorf("%s: body %s is not an ErrorResponse with status_code %d", what, body, status)
	}
	return e
}

// auCheckUnauthorized requires a 401 ErrorResponse with a Bearer challenge.
func auCheckUnauthorized(t testing.TB, what string, resp *http.Response, body []byte) {
	t.Helper()
	auCheckError(t, what, resp, body, http.StatusUnauthorized)
	if h := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", what, h)
	}
}

// TestAuthBadBearerTokens: every kind of bad credentials is a 401
// ErrorResponse with a Bearer challenge, on every kind of route, and
// neither the answer nor the log repeats the credentials.
func TestAuthBadBearerTokens(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)}})
	p := env.IdP
	now := time.Now()
	good := p.sign(t, jwt.MapClaims{"sub": "sub-alice", "preferred_username": "alice", "groups": []string{}})
	parts := strings.Split(good, ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[10] ^= 0x40
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	unknown := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": p.Issuer(), "aud": p.ClientID, "sub": "sub-alice",
		"preferred_username": "alice", "exp": now.Add(time.Hour).Unix()})
	unknown.Header["kid"] = "not-in-the-jwks"
	unknownKey, err := unknown.SignedString(stranger)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	algNone := enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."

	for _, tc := range []struct {
		name, header string
	}{
		{"expired", "Bearer " + p.sign(t, jwt.MapClaims{"sub": "s", "preferred_username": "alice", "exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-time.Hour).Unix()})},
		{"not yet valid", "Bearer " + p.sign(t, jwt.MapClaims{"sub": "s", "preferred_username": "alice", "nbf": now.Add(time.Hour).Unix()})},
		{"wrong issuer", "Bearer " + p.sign(t, jwt.MapClaims{"sub": "s", "preferred_username": "alice", "iss": "https://evil.example/oidc"})},
		{"wrong audience", "Bearer " + p.sign(t, jwt.MapClaims{"sub": "s", "preferred_username": "alice", "aud": "some-other-app"})},
		{"unknown signing key", "Bearer " + unknownKey},
		{"tampered signature", "Bearer " + parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)},
		{"alg none", "Bearer " + algNone},
		{"garbage", "Bearer " + "eyJhbGciOiJSUzI1NiJ9.garbage-garbage.garbage"},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:hunter2-secret"))},
		{"empty bearer", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, secret, _ := strings.Cut(tc.header, " ")
			for _, req := range []struct{ method, path string }{
				{http.MethodGet, "/runs"},
				{http.MethodGet, "/service-info"}, // anonymous is fine there; bad credentials are not
				{http.MethodPost, "/runs"},
				{http.MethodGet, "/runs/00000000-0000-4000-8000-000000000000"},
			} {
				var body io.Reader
				ct := ""
				if req.method == http.MethodPost {
					body, ct = auRunForm(t, false)
				}
				resp, b := auDo(t, nil, req.method, env.API+req.path, body, "Authorization", tc.header, "Content-Type", ct)
				what := req.method + " " + req.path
				auCheckUnauthorized(t, what, resp, b)
				if len(secret) > 0 && bytes.Contains(b, []byte(secret)) {
					t.Errorf("%s: the answer repeats the credentials: %s", what, b)
				}
			}
			if len(secret) > 8 && strings.Contains(env.Log.String(), secret) {
				t.Errorf("the log repeats the credentials")
			}
		})
	}

	resp, b := auDo(t, nil, http.MethodGet, env.API+"/runs", nil, "Authorization", "Bearer "+good)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("good token: %d %s", resp.StatusCode, b)
	}
	for _, path := range []string{"/runs", "/runs/00000000-0000-4000-8000-000000000000/status"} {
		resp, b := auDo(t, nil, http.MethodGet, env.API+path, nil)
		auCheckUnauthorized(t, "no credentials: GET "+path, resp, b)
	}
}

// TestAuthUserinfoFallback: a mockoidc access token carries no username;
// wesgate asks the provider's userinfo endpoint, and the run belongs to the
// cluster account named there.
func TestAuthUserinfoFallback(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)}})
	token := env.IdP.accessToken(t, &mockoidc.MockUser{Subject: "sub-erin", PreferredUsername: "erin", Groups: []string{"staff"}})
	id := auSubmit(t, nil, env, "Bearer "+token, false)
	admin := env.IdP.bearer(t, "sub-carol", "carol", "wes-admins")
	resp, b := auDo(t, nil, http.MethodGet, env.API+"/runs?user=erin", nil, "Authorization", admin)
	var list wes.RunList
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &list) != nil {
		t.Fatalf("GET /runs?user=erin: %d %s", resp.StatusCode, b)
	}
	if len(list.Runs) != 1 || list.Runs[0].RunID != id {
		t.Errorf("erin's runs = %+v, want just %s", list.Runs, id)
	}
	// The same access token of an admin makes an admin (groups from userinfo).
	adminToken := env.IdP.accessToken(t, &mockoidc.MockUser{Subject: "sub-root2", PreferredUsername: "root2", Groups: []string{"wes-admins"}})
	resp, b = auDo(t, nil, http.MethodGet, env.API+"/runs?user=erin", nil, "Authorization", "Bearer "+adminToken)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list.Runs) != 1 {
		t.Errorf("admin by userinfo groups: %d %s", resp.StatusCode, b)
	}
}

// TestAuthNoUsername: a person whose token names no cluster account may
// look but not submit, and is told why; one whose token names something
// that is no account name is refused outright (TestTenantsRefusedAccounts);
// a user map gives or takes accounts.
func TestAuthNoUsername(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.map")
	if err := os.WriteFile(path, []byte("# claim value   account\nAlice.Smith asmith\nmallory -\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, err := auth.LoadUserMap(path)
	if err != nil {
		t.Fatal(err)
	}
	mapped := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)}, Config: func(c *auth.OIDCConfig) { c.Users = users }})

	for _, tc := range []struct {
		env      *auEnv
		username string
	}{
		{mapped, "mallory"}, // a valid name that the map says has no account
	} {
		body, ct := auRunForm(t, false)
		resp, b := auDo(t, nil, http.MethodPost, tc.env.API+"/runs", body,
			"Authorization", tc.env.IdP.bearer(t, "sub-x", tc.username), "Content-Type", ct)
		e := auCheckError(t, "submit as "+tc.username, resp, b, http.StatusForbidden)
		if !strings.Contains(e.Msg, "no cluster account") {
			t.Errorf("submit as %q: message %q does not say why", tc.username, e.Msg)
		}
		// Looking is allowed; there is nothing to see.
		resp, b = auDo(t, nil, http.MethodGet, tc.env.API+"/runs", nil, "Authorization", tc.env.IdP.bearer(t, "sub-x", tc.username))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("list as %q: %d %s", tc.username, resp.StatusCode, b)
		}
	}

	id := auSubmit(t, nil, mapped, mapped.IdP.bearer(t, "sub-alice", "Alice.Smith"), false)
	resp, b := auDo(t, nil, http.MethodGet, mapped.API+"/runs?user=asmith", nil, "Authorization", mapped.IdP.bearer(t, "sub-carol", "carol", "wes-admins"))
	var list wes.RunList
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &list) != nil || len(list.Runs) != 1 || list.Runs[0].RunID != id {
		t.Errorf("runs of asmith: %d %s; want %s", resp.StatusCode, b, id)
	}
	auWait(t, mapped, mapped.IdP.bearer(t, "sub-alice", "Alice.Smith"), id, time.Minute, wes.Complete)
}

// auLogin is one browser login, hop by hop.
type auLogin struct {
	Client    *http.Client // follows redirects, with the cookie jar
	Jar       http.CookieJar
	Authorize *url.URL       // the request wesgate sent the browser to
	Callback  *url.URL       // the provider's redirect back
	Before    *http.Cookie   // the session cookie set by /auth/login
	After     *http.Cookie   // the session cookie set by /auth/callback
	Next      *url.URL       // where the callback sent the browser
	Final     *http.Response // the page the login ended on
}

// auBrowserLogin logs in as the next queued mockoidc user, following every
// redirect with a cookie jar as a browser does, and records each hop.
func auBrowserLogin(t testing.TB, env *auEnv, next string) *auLogin {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &auLogin{Jar: jar}
	sessionCookie := func(resp *http.Response) *http.Cookie {
		for _, c := range resp.Cookies() {
			if c.Name == web.SessionCookie {
				return c
			}
		}
		return nil
	}
	l.Client = &http.Client{Jar: jar, Timeout: time.Minute, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		prev := req.Response // the redirect being followed
		switch prev.Request.URL.Path {
		case "/auth/login":
			l.Before, l.Authorize = sessionCookie(prev), req.URL
		case mockoidc.AuthorizationEndpoint:
			l.Callback = req.URL
		case "/auth/callback":
			l.After, l.Next = sessionCookie(prev), req.URL
		}
		if len(via) > 5 {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	u := env.URL + "/auth/login"
	if next != "" {
		u += "?next=" + url.QueryEscape(next)
	}
	resp, err := l.Client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.Final = resp
	if l.Authorize == nil || l.Callback == nil || l.Next == nil {
		t.Fatalf("login did not go to the provider and back: ended at %s with %s", resp.Request.URL, resp.Status)
	}
	return l
}

// TestAuthBrowserLogin follows a person through login, use of the API with
// the session cookie alone, the cross-site defences of that cookie, and
// logout.
func TestAuthBrowserLogin(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auSlowEngine(t)}, EndSession: true})
	env.IdP.QueueUser(&mockoidc.MockUser{Subject: "sub-alice", PreferredUsername: "alice", Groups: []string{"staff"}})
	l := auBrowserLogin(t, env, "/auth/instructions")

	// The authorization request: code flow with PKCE (S256), state and nonce,
	// back to the public URL.
	q := l.Authorize.Query()
	if l.Authorize.Host != strings.TrimPrefix(strings.TrimPrefix(env.IdP.Addr(), "http://"), "https://") {
		t.Errorf("login went to %s, not the provider", l.Authorize)
	}
	for k, want := range map[string]string{"response_type": "code", "client_id": env.IdP.ClientID,
		"redirect_uri": env.URL + "/auth/callback", "code_challenge_method": "S256"} {
		if q.Get(k) != want {
			t.Errorf("authorize %s = %q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 32 {
			t.Errorf("authorize %s = %q: missing or short", k, q.Get(k))
		}
	}
	if !strings.Contains(" "+q.Get("scope")+" ", " openid ") {
		t.Errorf("scope %q lacks openid", q.Get("scope"))
	}

	// The cookie: HttpOnly, SameSite=Lax, not Secure (insecure_cookies), and
	// a new session token once logged in.
	if l.Before == nil || l.After == nil {
		t.Fatalf("session cookie before login %v, after %v", l.Before, l.After)
	}
	for _, c := range []*http.Cookie{l.Before, l.After} {
		if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/" {
			t.Errorf("cookie %s: HttpOnly %v SameSite %v Secure %v Path %q", c.Name, c.HttpOnly, c.SameSite, c.Secure, c.Path)
		}
	}
	if l.Before.Value == l.After.Value {
		t.Error("the session token was not renewed at login (session fixation)")
	}
	if l.Next.Path != "/auth/instructions" || l.Final.StatusCode != http.StatusOK {
		t.Errorf("login went on to %s and ended with %s, want the page it started from", l.Next, l.Final.Status)
	}

	// The cookie alone is enough for the API; the pre-login token is not.
	resp, b := auDo(t, l.Client, http.MethodGet, env.API+"/runs", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /runs with the session cookie: %d %s", resp.StatusCode, b)
	}
	resp, b = auDo(t, nil, http.MethodGet, env.API+"/runs", nil, "Cookie", web.SessionCookie+"="+l.Before.Value)
	auCheckUnauthorized(t, "GET /runs with the pre-login session token", resp, b)

	// Unsafe requests that ride on the cookie must say where they come from.
	body, ct := auRunForm(t, true)
	resp, b = auDo(t, l.Client, http.MethodPost, env.API+"/runs", body, "Content-Type", ct)
	auCheckError(t, "POST /runs with the cookie and no Origin", resp, b, http.StatusForbidden)
	id := auSubmit(t, l.Client, env, "", true, "Origin", env.URL)
	bearer := env.IdP.bearer(t, "sub-alice", "alice")
	auWait(t, env, bearer, id, time.Minute, wes.Running)

	for _, tc := range []struct {
		name, method string
		headers      []string
	}{
		{"no Origin", http.MethodPost, nil},
		{"no Origin, DELETE", http.MethodDelete, nil},
		{"another site's Origin", http.MethodPost, []string{"Origin", "https://evil.example"}},
		{"a sibling port's Origin", http.MethodPost, []string{"Origin", "http://127.0.0.1:1"}},
		{"cross-site fetch metadata", http.MethodPost, []string{"Sec-Fetch-Site", "cross-site"}},
		{"same-site fetch metadata", http.MethodPost, []string{"Sec-Fetch-Site", "same-site"}},
	} {
		path := "/runs/" + id + "/cancel"
		if tc.method == http.MethodDelete {
			path = "/runs/" + id
		}
		resp, b := auDo(t, l.Client, tc.method, env.API+path, nil, tc.headers...)
		auCheckError(t, "cancel, "+tc.name, resp, b, http.StatusForbidden)
	}
	if st := auState(t, env, bearer, id); st != wes.Running {
		t.Fatalf("after refused cancels the run is %s, want RUNNING", st)
	}
	resp, b = auDo(t, l.Client, http.MethodPost, env.API+"/runs/"+id+"/cancel", nil, "Origin", env.URL)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(id)) {
		t.Fatalf("same-origin cancel: %d %s", resp.StatusCode, b)
	}
	auWait(t, env, bearer, id, time.Minute, wes.Canceled)
	// Fetch metadata alone will do, as browsers send it.
	resp, b = auDo(t, l.Client, http.MethodPost, env.API+"/runs/"+id+"/cancel", nil, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("cancel with Sec-Fetch-Site: same-origin: %d %s", resp.StatusCode, b)
	}

	// Logout: refused without an Origin, then ends this session and the
	// provider's.
	noFollow := auNoRedirects(l.Jar)
	resp, _ = auDo(t, noFollow, http.MethodPost, env.URL+"/auth/logout", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without Origin: %d", resp.StatusCode)
	}
	if resp, _ := auDo(t, l.Client, http.MethodGet, env.API+"/runs", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a refused logout ended the session: %d", resp.StatusCode)
	}
	resp, _ = auDo(t, noFollow, http.MethodPost, env.URL+"/auth/logout", nil, "Origin", env.URL)
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("logout: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != env.IdP.EndSession {
		t.Errorf("logout redirects to %s, want the end-session endpoint %s", got, env.IdP.EndSession)
	}
	lq := loc.Query()
	if lq.Get("post_logout_redirect_uri") != env.URL+"/" || lq.Get("client_id") != env.IdP.ClientID {
		t.Errorf("end-session parameters %v", lq)
	}
	if hint := lq.Get("id_token_hint"); hint == "" {
		t.Error("no id_token_hint")
	} else if tok, err := env.IdP.Keypair.VerifyJWT(hint, time.Now); err != nil {
		t.Errorf("id_token_hint is not the provider's token: %v", err)
	} else if sub, _ := tok.Claims.GetSubject(); sub != "sub-alice" {
		t.Errorf("id_token_hint is about %q", sub)
	}
	resp, b = auDo(t, nil, http.MethodGet, env.API+"/runs", nil, "Cookie", web.SessionCookie+"="+l.After.Value)
	auCheckUnauthorized(t, "GET /runs with the logged-out session token", resp, b)
	for _, c := range l.Jar.Cookies(resp.Request.URL) {
		if c.Name == web.SessionCookie {
			t.Errorf("the browser keeps the session cookie after logout")
		}
	}
}

// TestAuthLogoutWithoutEndSession: without an end-session endpoint logout
// ends wesgate's session and returns home.
func TestAuthLogoutWithoutEndSession(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)}})
	l := auBrowserLogin(t, env, "")
	if l.Next.Path != "/" || l.Final.StatusCode != http.StatusOK {
		t.Errorf("login without next went on to %s and ended with %s", l.Next, l.Final.Status)
	}
	resp, _ := auDo(t, auNoRedirects(l.Jar), http.MethodPost, env.URL+"/auth/logout", nil, "Origin", env.URL)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("logout: %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, b := auDo(t, nil, http.MethodGet, env.API+"/runs", nil, "Cookie", web.SessionCookie+"="+l.After.Value)
	auCheckUnauthorized(t, "after logout", resp, b)
}

// TestAuthSecureCookie: unless insecure_cookies is set, the session cookie
// is Secure.
func TestAuthSecureCookie(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)}, SecureCookies: true})
	resp, _ := auDo(t, nil, http.MethodGet, env.URL+"/auth/login", nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET /auth/login: %d", resp.StatusCode)
	}
	var found bool
	for _, c := range resp.Cookies() {
		if c.Name == web.SessionCookie {
			found = true
			if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("cookie Secure %v HttpOnly %v SameSite %v", c.Secure, c.HttpOnly, c.SameSite)
			}
		}
	}
	if !found {
		t.Errorf("no %s cookie in %q", web.SessionCookie, resp.Header.Values("Set-Cookie"))
	}
}

// TestAuthCallbackRefusals: a callback that does not answer a login started
// in this browser is refused with a page, and logs nobody in.
func TestAuthCallbackRefusals(t *testing.T) {
	t.Parallel()
	env := auNewEnv(t, auOptions{Engines: []wes.Engine{auEngine(t)}})
	startLogin := func() (*http.Client, string) {
		jar, _ := cookiejar.New(nil)
		c := auNoRedirects(jar)
		resp, _ := auDo(t, c, http.MethodGet, env.URL+"/auth/login", nil)
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("state") == "" {
			t.Fatalf("GET /auth/login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return c, loc.Query().Get("state")
	}
	checkPage := func(what string, resp *http.Response, body []byte, status int, want string) {
		t.Helper()
		if resp.StatusCode != status || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %d %s, want a %d page", what, resp.StatusCode, resp.Header.Get("Content-Type"), status)
		}
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("%s: the page does not say %q", what, want)
		}
	}
	loggedIn := func(c *http.Client) bool {
		resp, _ := auDo(t, c, http.MethodGet, env.API+"/runs", nil)
		return resp.StatusCode == http.StatusOK
	}

	c, _ := startLogin()
	resp, b := auDo(t, c, http.MethodGet, env.URL+"/auth/callback?"+url.Values{"state": {"forged"}, "code": {"x"}}.Encode(), nil)
	checkPage("state mismatch", resp, b, http.StatusBadRequest, "not started here")
	if loggedIn(c) {
		t.Error("logged in by a forged state")
	}

	jar, _ := cookiejar.New(nil)
	resp, b = auDo(t, auNoRedirects(jar), http.MethodGet, env.URL+"/auth/callback?state=s&code=x", nil)
	checkPage("no login started", resp, b, http.StatusBadRequest, "not started here")

	// An error from "the provider" counts only for a login started here:
	// nobody else can put words on the page.
	c, _ = startLogin()
	resp, b = auDo(t, c, http.MethodGet, env.URL+"/auth/callback?"+url.Values{"state": {"forged"}, "error": {"Call-0800-SCAM"}}.Encode(), nil)
	checkPage("error with a forged state", resp, b, http.StatusBadRequest, "not started here")
	if bytes.Contains(b, []byte("did not log you in")) {
		t.Error("the page shows an error text from a forged callback")
	}
	c, state := startLogin()
	resp, b = auDo(t, c, http.MethodGet, env.URL+"/auth/callback?"+url.Values{"state": {state}, "error": {"access_denied"}}.Encode(), nil)
	checkPage("the provider's error", resp, b, http.StatusUnauthorized, "access_denied")

	// A callback is good once: replayed, its state is spent.
	l := auBrowserLogin(t, env, "")
	resp, b = auDo(t, l.Client, http.MethodGet, l.Callback.String(), nil)
	checkPage("replayed callback", resp, b, http.StatusBadRequest, "not started here")

	// A post-login target off this site, or back into the login itself (a
	// problem page's "log in" link), is replaced by the home page.
	// Browsers drop TAB, CR and LF and read "\\" as "/": "/\t/evil.example"
	// would be "//evil.example", another host.
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example",
		"/auth/callback?state=old&code=old", "/auth/login", "/\t/evil.example/x", "/\r\n/evil.example/x",
		"/\n/evil.example", "\t//evil.example", "/%5C/evil.example", "/%2F/evil.example", "/\x00/x", "/\x7f/x"} {
		l := auBrowserLogin(t, env, next)
		if l.Next.Host != strings.TrimPrefix(env.URL, "http://") || l.Next.Path != "/" || l.Next.RawQuery != "" {
			t.Errorf("next=%q: login went on to %s", next, l.Next)
		}
		if l.Final.StatusCode != http.StatusOK {
			t.Errorf("next=%q: login ended with %s", next, l.Final.Status)
		}
	}
	if l := auBrowserLogin(t, env, "/runs?state=RUNNING"); l.Next.RequestURI() != "/runs?state=RUNNING" {
		t.Errorf("next=/runs?state=RUNNING: login went on to %s", l.Next)
	}
}
