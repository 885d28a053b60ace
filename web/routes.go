package web

import (
	"net/http"

	"github.com/wesgate/wesgate/auth"
)

// apiBase is the WES API's base path.
const apiBase = "/ga4gh/wes/v1"

// routes is the whole HTTP surface of wesgate, with the middleware guarding
// each route: api() needs an authenticated user and answers errors as WES
// ErrorResponses; anonAPI() also serves anonymous callers.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()

	// The WES API (GA4GH WES 1.1.0), and documented extensions.
	mux.Handle("GET "+apiBase+"/service-info", s.anonAPI(s.handleServiceInfo()))
	mux.Handle("GET "+apiBase+"/runs", s.api(s.handleListRuns()))
	mux.Handle("POST "+apiBase+"/runs", s.api(s.handleCreateRun()))
	mux.Handle("GET "+apiBase+"/runs/{run_id}", s.api(s.handleGetRunLog()))
	mux.Handle("DELETE "+apiBase+"/runs/{run_id}", s.api(s.handleCancelRun()))
	mux.Handle("GET "+apiBase+"/runs/{run_id}/status", s.api(s.handleGetRunStatus()))
	mux.Handle("POST "+apiBase+"/runs/{run_id}/cancel", s.api(s.handleCancelRun()))
	mux.Handle("GET "+apiBase+"/runs/{run_id}/tasks", s.api(s.handleListTasks()))
	mux.Handle("GET "+apiBase+"/runs/{run_id}/tasks/{task_id}", s.api(s.handleGetTask()))
	mux.Handle("GET "+apiBase+"/runs/{run_id}/stdout", s.api(s.handleLog("stdout")))
	mux.Handle("GET "+apiBase+"/runs/{run_id}/stderr", s.api(s.handleLog("stderr")))
	mux.Handle("GET "+apiBase+"/runs/{run_id}/files/{path...}", s.api(s.handleFile()))
	mux.Handle(apiBase+"/", s.apiFallback(mux))

	// Browser login, when an identity provider is configured.
	var handler http.Handler = mux
	if b, ok := s.auth.(auth.Browser); ok {
		mux.Handle("GET /auth/login", b.HandleLogin())
		mux.Handle("GET /auth/callback", b.HandleCallback(s.problemPage))
		mux.Handle("POST /auth/logout", b.HandleLogout())
		handler = b.Middleware(mux)
	}

	// Operations.
	mux.Handle("GET /healthz", s.handleHealthz())
	mux.Handle("GET /readyz", s.handleReadyz())
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.handleMetrics())
	}

	// Pages, over the same service with the same rules.
	mux.Handle("GET /auth/instructions", s.optionalUser(s.handleAuthInstructions()))
	mux.Handle("GET /{$}", s.optionalUser(s.handleHome()))
	mux.Handle("GET /runs", s.ui(s.handleRunsPage()))
	mux.Handle("GET /runs/new", s.ui(s.handleSubmitPage()))
	mux.Handle("POST /runs/new", s.ui(s.handleSubmitForm()))
	mux.Handle("GET /runs/{run_id}", s.ui(s.handleRunPage()))
	mux.Handle("GET /runs/{run_id}/cancel", s.ui(s.handleCancelConfirm()))
	mux.Handle("POST /runs/{run_id}/cancel", s.ui(s.handleCancelForm()))
	mux.Handle("GET /admin", s.ui(s.handleDashboard()))
	mux.Handle("GET /static/", s.handleStatic())
	mux.Handle("/", s.optionalUser(s.handleNotFoundPage()))

	return s.observe(mux, s.recoverPanics(securityHeaders(s.crossSiteProtection(handler))))
}
