package web

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wesgate/wesgate/wes"
)

// errorResponse is the WES ErrorResponse.
type errorResponse struct {
	Msg        string `json:"msg"`
	StatusCode int    `json:"status_code"`
}

// apiError writes err as an ErrorResponse. Domain errors map to their status;
// anything else is a 500 whose cause is logged and never sent.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := s.classify(r, err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="wesgate"`)
	}
	setRetryAfter(w, err)
	writeJSON(w, status, errorResponse{Msg: msg, StatusCode: status})
}

// classify maps an error to a status and a message that is safe to show.
func (s *Server) classify(r *http.Request, err error) (int, string) {
	var inv *wes.InvalidError
	var tooBig *http.MaxBytesError
	var se *statusError
	var limit *wes.LimitError
	switch {
	case errors.As(err, &se):
		return se.status, se.msg
	case errors.As(err, &limit):
		return http.StatusTooManyRequests, limit.Msg
	case errors.As(err, &inv):
		return http.StatusBadRequest, inv.Error()
	case errors.As(err, &tooBig), errors.Is(err, wes.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "the request is larger than this server accepts"
	case errors.Is(err, wes.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, wes.ErrUnauthorized):
		return http.StatusUnauthorized, "a valid bearer token is required"
	case errors.Is(err, wes.ErrForbidden):
		return http.StatusForbidden, err.Error() // the service words these for the user
	case diskFull(err):
		s.log.Error("disk full", "method", r.Method, "path", r.URL.Path, "err", err)
		return http.StatusInsufficientStorage, "the server has no space left for this request; try again later"
	case errors.Is(err, syscall.EROFS):
		s.log.Error("read-only data directory", "method", r.Method, "path", r.URL.Path, "err", err)
		return http.StatusServiceUnavailable, "the server cannot store anything just now; try again later"
	case errors.Is(err, wes.ErrUnavailable):
		return http.StatusServiceUnavailable, "the service cannot handle this request now; try again later"
	}
	s.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
	return http.StatusInternalServerError, "internal server error"
}

// setRetryAfter tells a client over a per-user limit when to try again,
// in whole seconds.
func setRetryAfter(w http.ResponseWriter, err error) {
	var limit *wes.LimitError
	if errors.As(err, &limit) {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(limit.RetryAfter, time.Second).Seconds()))))
	}
}

// diskFull reports whether err comes from a full filesystem: the kernel's
// ENOSPC, or SQLite's SQLITE_FULL.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "database or disk is full")
}

// statusError is an HTTP status with a safe message, for the edge's own checks.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }
