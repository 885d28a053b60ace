package wes

import (
	"errors"
	"fmt"
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

// maxProblems bounds the problems an InvalidError keeps, and maxFieldName
// the length of a field's name in one: a request with 50,000 made-up
// fields gets a short answer, not one that repeats them all.
const (
	maxProblems  = 10
	maxFieldName = 64
)

// InvalidError says what is wrong with a request, field by field.
type InvalidError struct {
	Problems map[string]string // field -> what is wrong with it
	More     int               // fields with problems beyond the first maxProblems
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
	if e.More > 0 {
		parts = append(parts, fmt.Sprintf("and %d more", e.More))
	}
	return strings.Join(parts, "; ")
}

// Add records a problem with field, keeping the first one said about it,
// and the problems of at most maxProblems fields (the others are counted).
// A long field name is shortened.
func (e *InvalidError) Add(field, problem string) {
	if e.Problems == nil {
		e.Problems = map[string]string{}
	}
	field = truncate(field, maxFieldName)
	if _, ok := e.Problems[field]; ok {
		return
	}
	if len(e.Problems) >= maxProblems {
		e.More++
		return
	}
	e.Problems[field] = problem
}

// OrNil returns e when it holds problems, else nil.
func (e *InvalidError) OrNil() error {
	if e == nil || len(e.Problems) == 0 {
		return nil
	}
	return e
}
