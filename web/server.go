// Package web is wesgate's HTTP surface: the WES JSON API under
// /ga4gh/wes/v1 and the server-rendered pages, both over the same wes.Service.
package web

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/static"
	"github.com/wesgate/wesgate/wes"
)

// Config is what the HTTP layer needs beyond the service.
type Config struct {
	// PublicURL is the external base URL (https://wes.example.edu). Empty:
	// taken from each request's Host.
	PublicURL string
	// MaxRequestBytes bounds a request body; larger ones get 413.
	MaxRequestBytes int64
	// Registry registers the HTTP metrics (nil: none); Metrics serves all
	// of wesgate's metrics at /metrics (nil: not served).
	Registry prometheus.Registerer
	Metrics  http.Handler
	// MetricsAccess is MetricsLoopback (default), MetricsAdmins or MetricsAnonymous.
	MetricsAccess string
}

// Server holds the dependencies of the handlers.
type Server struct {
	cfg     Config
	runs    *wes.Service
	auth    auth.Authenticator
	assets  *static.Assets
	metrics *httpMetrics
	log     *slog.Logger
}

// NewServer returns the whole HTTP handler.
func NewServer(cfg Config, runs *wes.Service, authn auth.Authenticator, log *slog.Logger) http.Handler {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 256 << 20
	}
	s := &Server{cfg: cfg, runs: runs, auth: authn, assets: static.New("/static/"),
		metrics: newHTTPMetrics(cfg.Registry), log: log}
	return s.routes()
}

// baseURL is the external base URL for links in responses.
func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// writeJSON encodes v into a buffer first, so an encoding failure is a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"msg":"internal server error","status_code":500}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
