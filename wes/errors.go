package wes

import (
	"errors"
	"sort"
	"strings"
)

// Errors the service returns. The HTTP edge maps them to status codes.
var (
	// ErrNotFound: no such run or task, or it belongs to someone else.
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the caller may not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrUnauthorized: no valid credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrTooLarge: the request is larger than the configured limit.
	ErrTooLarge = errors.New("request too large")
	// ErrUnavailable: a dependency (the cluster, the disk) cannot serve now.
	ErrUnavailable = errors.New("service unavailable")
)

// InvalidError says what is wrong with a request, field by field.
type InvalidError struct {
	Problems map[string]string // field -> what is wrong with it
}

// Invalid returns an InvalidError with one problem.
func Invalid(field, problem string) *InvalidError {
	return &InvalidError{Problems: map[string]string{field: problem}}
}

// Error lists the problems in a stable order, "field: problem; ...".
func (e *InvalidError) Error() string {
	keys := make([]string, 0, len(e.Problems))
	for k := range e.Problems {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Problems[k]
	}
	return strings.Join(parts, "; ")
}

// Add records a problem with field, keeping the first one said about it.
func (e *InvalidError) Add(field, problem string) {
	if e.Problems == nil {
		e.Problems = map[string]string{}
	}
	if _, ok := e.Problems[field]; !ok {
		e.Problems[field] = problem
	}
}

// OrNil returns e when it holds problems, else nil.
func (e *InvalidError) OrNil() error {
	if e == nil || len(e.Problems) == 0 {
		return nil
	}
	return e
}
