// Package views holds wesgate's templ components. They render view models
// that handlers build; they call nothing.
package views

import "strconv"

func boolAttr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }
