package web

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the HTTP layer's Prometheus metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wesgate_http_requests_total",
			Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "wesgate_http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration)
	}
	return m
}

// requestInfo is filled in by inner handlers for the request's log line.
type requestInfo struct {
	user string
}

type infoKey struct{}

func noteUser(ctx context.Context, user string) {
	if info, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		info.user = user
	}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe logs one line per request (method, route pattern, status,
// duration, user) and counts it. The route is the mux pattern, so metrics
// have bounded labels whatever paths clients send.
func (s *Server) observe(mux *http.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, route := mux.Handler(r)
		if route == "" {
			route = "unmatched"
		}
		info := &requestInfo{}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		took := time.Since(start)
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(took.Seconds())
		s.log.Info("request", "method", r.Method, "route", route, "status", sw.status,
			"took", took.Round(time.Microsecond), "bytes", sw.bytes, "user", info.user)
	})
}

// handleHealthz says the process is alive.
func (s *Server) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
}

// handleReadyz says whether wesgate can do its work: the database answers
// and every cluster account in use was polled successfully recently. The
// problems name cluster accounts, so only admins see them; anyone else is
// told just "not ready".
func (s *Server) handleReadyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		problems := s.runs.Ready(ctx)
		status := http.StatusOK
		if len(problems) > 0 {
			status = http.StatusServiceUnavailable
			if u, err := s.auth.Authenticate(r); err != nil || !u.Admin {
				problems = []string{"not ready"}
			}
		}
		body, _ := json.Marshal(struct {
			Ready    bool     `json:"ready"`
			Problems []string `json:"problems"`
		}{len(problems) == 0, append([]string{}, problems...)})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		w.Write(append(body, '\n'))
	})
}

// Metrics access modes.
const (
	MetricsLoopback  = "loopback"  // anonymous, from loopback addresses only
	MetricsAdmins    = "admins"    // admins only, from anywhere
	MetricsAnonymous = "anonymous" // anyone
)

// handleMetrics serves Prometheus metrics to whom the configuration allows.
func (s *Server) handleMetrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.cfg.MetricsAccess {
		case MetricsAnonymous:
		case MetricsAdmins:
			u, err := s.auth.Authenticate(r)
			if err != nil {
				s.apiError(w, r, &statusError{http.StatusUnauthorized, "credentials are required"})
				return
			}
			if !u.Admin {
				s.apiError(w, r, &statusError{http.StatusForbidden, "metrics are for administrators"})
				return
			}
		default:
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() || forwarded(r.Header) {
				s.apiError(w, r, &statusError{http.StatusForbidden, "metrics are served to loopback addresses only"})
				return
			}
		}
		s.cfg.Metrics.ServeHTTP(w, r)
	})
}

// forwarded reports whether a request carries any header a proxy adds to
// say whom it forwards for. A request from loopback that came through a
// proxy on this host is not from this host: the loopback rule refuses it
// whatever the header says, rather than trusting a list of proxies.
func forwarded(h http.Header) bool {
	for name := range h {
		name = http.CanonicalHeaderKey(name)
		switch {
		case name == "Forwarded", name == "Via", name == "X-Real-Ip", name == "Client-Ip",
			strings.HasPrefix(name, "X-Forwarded-"), strings.HasPrefix(name, "X-Original-"),
			strings.HasSuffix(name, "-Client-Ip"), strings.HasSuffix(name, "-Connecting-Ip"):
			return true
		}
	}
	return false
}
