package wes

import (
	"net/url"
	"strings"

	"github.com/wesgate/wesgate/scheduler"
)

// FileLink reports whether an output's location may be a link: only wesgate's own download URL of a
// file of this run (baseURL/ga4gh/wes/v1/runs/{id}/files/outputs/... or
// .../files/work/...) is. Anything else in a location came from the
// workflow (javascript:..., https://elsewhere/...) and must be shown as
// text, never as a link.
func FileLink(runID, baseURL, location string) bool {
	if !validRunID(runID) {
		return false
	}
	prefix := "/ga4gh/wes/v1/runs/" + runID + "/files/"
	rest, ok := strings.CutPrefix(location, baseURL+prefix)
	if !ok || rest == "" || strings.ContainsAny(rest, "?#\\") {
		return false
	}
	rel, err := url.PathUnescape(rest)
	if err != nil {
		return false
	}
	clean, err := checkRelPath(rel)
	if err != nil || !(strings.HasPrefix(clean, scheduler.OutputsDir+"/") || strings.HasPrefix(clean, scheduler.WorkDir+"/")) {
		return false
	}
	return true
}
