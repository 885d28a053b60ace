package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/wes"
)

type userKey struct{}

// userFrom returns the request's user, set by api() or anonAPI().
func userFrom(ctx context.Context) (wes.User, bool) {
	u, ok := ctx.Value(userKey{}).(wes.User)
	return u, ok
}

// api requires an authenticated user.
func (s *Server) api(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.auth.Authenticate(r)
		if err != nil {
			if !errors.Is(err, auth.ErrNoCredentials) {
				s.log.Info("authentication failed", "path", r.URL.Path, "err", err)
			}
			s.apiError(w, r, authError(err))
			return
		}
		noteUser(r.Context(), u.Owner)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}

// anonAPI lets anonymous callers through; a user is set when credentials are valid.
func (s *Server) anonAPI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, err := s.auth.Authenticate(r)
		switch {
		case err == nil:
			r = r.WithContext(context.WithValue(r.Context(), userKey{}, u))
		case !errors.Is(err, auth.ErrNoCredentials):
			s.apiError(w, r, authError(err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authError is what the API answers when authentication failed: 403 with
// the reason for valid credentials that name a cluster account wesgate will
// not act as, 503 when that account could not be checked, else 401.
func authError(err error) error {
	var refused *auth.RefusedError
	switch {
	case errors.As(err, &refused):
		return &statusError{http.StatusForbidden, refused.Error()}
	case errors.Is(err, wes.ErrUnavailable):
		return wes.ErrUnavailable
	}
	return wes.ErrUnauthorized
}

// apiFallback answers requests under the API base that no route took: 405
// with Allow when the path exists for other methods, else 404; both as
// ErrorResponses.
func (s *Server) apiFallback(mux *http.ServeMux) http.Handler {
	fallback := apiBase + "/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "" && pattern != fallback {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			if contains(allowed, http.MethodGet) {
				allowed = append(allowed, http.MethodHead)
			}
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			s.apiError(w, r, &statusError{http.StatusMethodNotAllowed,
				fmt.Sprintf("method %s is not allowed here", r.Method)})
			return
		}
		s.apiError(w, r, &statusError{http.StatusNotFound, "no such endpoint"})
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// crossSiteProtection refuses state-changing requests made by another site
// (Fetch metadata, then Origin; net/http's CrossOriginProtection). A
// state-changing request that rides on the session cookie, rather than a
// bearer token, must also say where it comes from: browsers always do, so a
// request without Sec-Fetch-Site or Origin is not a browser's form.
func (s *Server) crossSiteProtection(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		err := cop.Check(r)
		if err == nil && r.Header.Get("Authorization") == "" && hasSessionCookie(r) &&
			r.Header.Get("Sec-Fetch-Site") == "" && r.Header.Get("Origin") == "" {
			err = errors.New("no Origin or Sec-Fetch-Site on a cookie-authenticated request")
		}
		if err != nil {
			s.log.Info("cross-site request refused", "method", r.Method, "path", r.URL.Path, "reason", err)
			if strings.HasPrefix(r.URL.Path, apiBase+"/") {
				s.apiError(w, r, &statusError{http.StatusForbidden, "cross-site request refused"})
				return
			}
			s.problemPage(w, r, http.StatusForbidden, "This request came from another site and was refused.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SessionCookie is the name of wesgate's session cookie.
const SessionCookie = "wesgate_session"

func hasSessionCookie(r *http.Request) bool {
	_, err := r.Cookie(SessionCookie)
	return err == nil
}

// securityHeaders sets headers every response carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic in a handler into a logged 500.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.LogAttrs(r.Context(), slog.LevelError, "panic", slog.String("path", r.URL.Path), slog.Any("panic", v))
				s.apiError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
