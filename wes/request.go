package wes

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/wesgate/wesgate/scheduler"
)

// The form fields of a run request, as the specification names them.
const (
	FieldParams        = "workflow_params"
	FieldType          = "workflow_type"
	FieldTypeVersion   = "workflow_type_version"
	FieldTags          = "tags"
	FieldEngine        = "workflow_engine"
	FieldEngineVersion = "workflow_engine_version"
	FieldEngineParams  = "workflow_engine_parameters"
	FieldURL           = "workflow_url"
	FieldAttachment    = "workflow_attachment"
)

var knownFields = map[string]bool{FieldParams: true, FieldType: true, FieldTypeVersion: true,
	FieldTags: true, FieldEngine: true, FieldEngineVersion: true, FieldEngineParams: true, FieldURL: true}

// MaxFormFields bounds the fields (parts other than attachments, keys of a
// JSON request) one request may send; reading stops beyond it.
const MaxFormFields = 100

// shortFieldBytes bounds the fields that hold a name or a version.
const shortFieldBytes = 4096

// Limits bound what one run request may carry.
type Limits struct {
	MaxAttachments   int   // number of distinct attachment paths
	MaxFieldBytes    int64 // size of one form field (workflow_params is the largest)
	MaxWorkflowBytes int64 // size of a workflow fetched from an http(s) URL
	MaxJSONDepth     int   // nesting depth of workflow_params
}

// DefaultLimits are the limits used when the configuration sets none.
var DefaultLimits = Limits{MaxAttachments: 1000, MaxFieldBytes: 8 << 20, MaxWorkflowBytes: 16 << 20, MaxJSONDepth: 64}

// Draft collects a run request while it arrives: form fields, and attachments
// streamed into a private staging directory. Nothing in it is visible until
// Service.CreateRun accepts it; Discard removes every trace of a rejected one.
type Draft struct {
	dir     string // staging directory; attachments go under work/
	limits  Limits
	fields  map[string]string
	files   map[string][sha256.Size]byte // attachment path -> content hash
	bytes   int64                        // the attachments' size
	invalid InvalidError
}

// Dir is the staging directory of the draft.
func (d *Draft) Dir() string { return d.dir }

// FieldLimit is how many bytes the field called name may hold: the field
// limit for the JSON fields, less for the short ones, and 0 for a name that
// is not a field of a run request (its value need not be read at all).
func (d *Draft) FieldLimit(name string) int64 {
	switch {
	case name == FieldParams || name == FieldTags || name == FieldEngineParams:
		return d.limits.MaxFieldBytes
	case knownFields[name]:
		return min(shortFieldBytes, d.limits.MaxFieldBytes)
	}
	return 0
}

// SetField records a form field. Unknown fields, repeated fields and
// fields longer than FieldLimit are problems.
func (d *Draft) SetField(name, value string) {
	switch limit := d.FieldLimit(name); {
	case !knownFields[name]:
		d.invalid.Add(name, "is not a field of a run request")
	case int64(len(value)) > limit:
		d.invalid.Add(name, fmt.Sprintf("is longer than %d bytes", limit))
	default:
		if _, dup := d.fields[name]; dup {
			d.invalid.Add(name, "is given more than once")
			return
		}
		d.fields[name] = value
	}
}

// Reject records a problem found while reading the request.
func (d *Draft) Reject(field, problem string) { d.invalid.Add(field, problem) }

// Field returns the value of a field as sent ("" when absent).
func (d *Draft) Field(name string) string { return d.fields[name] }

// AddAttachment checks name and streams r into the draft. An identical repeat
// of an attachment is accepted once; a different file under the same name is
// a problem. The error is non-nil only when the disk fails or the body breaks;
// problems with the request are reported by CreateRun.
func (d *Draft) AddAttachment(name string, r io.Reader) error {
	clean, err := CheckAttachmentPath(name)
	if err != nil {
		d.invalid.Add(FieldAttachment, fmt.Sprintf("%q: %v", truncate(name, 200), err))
		_, err := io.Copy(io.Discard, r)
		return err
	}
	_, seen := d.files[clean]
	if !seen && len(d.files) >= d.limits.MaxAttachments {
		d.invalid.Add(FieldAttachment, fmt.Sprintf("more than %d attachments", d.limits.MaxAttachments))
		_, err := io.Copy(io.Discard, r)
		return err
	}
	dst := filepath.Join(d.dir, scheduler.WorkDir, filepath.FromSlash(clean))
	if seen {
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		if [sha256.Size]byte(h.Sum(nil)) != d.files[clean] {
			d.invalid.Add(FieldAttachment, fmt.Sprintf("%q is sent twice with different content", clean))
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		if isPathConflict(err) {
			d.invalid.Add(FieldAttachment, fmt.Sprintf("%q clashes with another attachment", clean))
			_, err := io.Copy(io.Discard, r)
			return err
		}
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		if errors.Is(err, os.ErrExist) || isPathConflict(err) {
			d.invalid.Add(FieldAttachment, fmt.Sprintf("%q clashes with another attachment", clean))
			_, err := io.Copy(io.Discard, r)
			return err
		}
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	d.bytes += n
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	d.files[clean] = [sha256.Size]byte(h.Sum(nil))
	return nil
}

// isPathConflict reports whether err comes from a file standing where a
// directory must be (or the other way round): "a" and "a/b" both attached.
func isPathConflict(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && (errors.Is(err, os.ErrExist) ||
		strings.Contains(pe.Err.Error(), "not a directory") || strings.Contains(pe.Err.Error(), "is a directory"))
}

// Discard removes the draft's staging directory.
func (d *Draft) Discard() error { return os.RemoveAll(d.dir) }

// CheckAttachmentPath checks a workflow_attachment file name and returns it
// with "/" separators. It refuses absolute paths, "..", ".", empty components,
// components starting with "-" (an engine would take "--outdir=x" for an
// option), backslashes, NUL and control characters, names wesgate reserves
// (".wesgate*" at the top) and overlong names.
func CheckAttachmentPath(name string) (string, error) {
	clean, err := checkRelPath(name)
	if err != nil {
		return "", err
	}
	for _, p := range strings.Split(clean, "/") {
		if p[0] == '-' {
			return "", errors.New(`has a path component starting with "-"`)
		}
	}
	return clean, nil
}

// checkRelPath is CheckAttachmentPath without the rule on a leading "-":
// for paths that wesgate opens itself and never hands to an engine (the
// files a run made, downloaded by their owner).
func checkRelPath(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("has no file name")
	case len(name) > 1024:
		return "", errors.New("is longer than 1024 bytes")
	case !utf8.ValidString(name):
		return "", errors.New("is not valid UTF-8")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("is an absolute path")
	case strings.Contains(name, `\`):
		return "", errors.New("contains a backslash")
	}
	for _, r := range name {
		if r == 0 || unicode.IsControl(r) {
			return "", errors.New("contains a control character")
		}
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		switch {
		case p == "":
			return "", errors.New("has an empty path component")
		case p == "." || p == "..":
			return "", fmt.Errorf("has a %q path component", p)
		case len(p) > 255:
			return "", errors.New("has a path component longer than 255 bytes")
		}
	}
	if strings.HasPrefix(parts[0], ".wesgate") {
		return "", errors.New("uses a name reserved by wesgate (.wesgate*)")
	}
	return name, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// decodeObject decodes a JSON object field. Empty means {}.
func decodeObject(field, raw string, maxDepth int, inv *InvalidError) map[string]any {
	if strings.TrimSpace(raw) == "" {
		return map[string]any{}
	}
	if depth := jsonDepth([]byte(raw)); depth > maxDepth {
		inv.Add(field, fmt.Sprintf("is nested deeper than %d levels", maxDepth))
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		inv.Add(field, "is not valid JSON: "+jsonProblem(err))
		return nil
	}
	if dec.More() {
		inv.Add(field, "has data after the JSON object")
		return nil
	}
	if _, err := dec.Token(); err != io.EOF {
		inv.Add(field, "has data after the JSON object")
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		inv.Add(field, "must be a JSON object")
		return nil
	}
	return obj
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	return "cannot be decoded"
}

// jsonDepth returns the deepest nesting of objects and arrays in b, without
// decoding it, so that hostile input cannot exhaust the decoder.
func jsonDepth(b []byte) int {
	depth, max := 0, 0
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				max = depth
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return max
}

// compactJSON re-encodes a decoded object canonically.
func compactJSON(v any) json.RawMessage {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // decoded JSON always encodes
	return json.RawMessage(bytes.TrimRight(b.Bytes(), "\n"))
}
