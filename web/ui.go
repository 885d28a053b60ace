package web

import (
	"bytes"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/a-h/templ"

	"github.com/wesgate/wesgate/auth"
	"github.com/wesgate/wesgate/views"
)

// render writes a component into a buffer first, so a failed render is a
// clean 500 and nothing is written after the response has started.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	var b bytes.Buffer
	if err := c.Render(r.Context(), &b); err != nil {
		s.log.Error("render", "path", r.URL.Path, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// page returns the frame of a page.
func (s *Server) page(r *http.Request, title string) views.Page {
	_, browser := s.auth.(auth.Browser)
	p := views.Page{Title: title, CSS: s.assets.URL("app.css"), JS: s.assets.URL("app.js"),
		Browser: browser, Path: url.QueryEscape(r.URL.RequestURI())}
	if u, ok := userFrom(r.Context()); ok {
		p.User, p.Admin = u.Display, u.Admin
		if p.User == "" {
			p.User = u.Username
		}
	}
	return p
}

func (s *Server) handleHome() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := userFrom(r.Context()); ok {
			http.Redirect(w, r, "/runs", http.StatusFound)
			return
		}
		v := views.HomeView{APIBase: s.baseURL(r) + apiBase}
		for _, e := range s.runs.Engines() {
			var types []string
			for t, vs := range e.Types {
				types = append(types, t+" "+strings.Join(vs, ", "))
			}
			sort.Strings(types)
			v.Engines = append(v.Engines, views.EngineView{Name: e.Name, Version: e.Version, Types: strings.Join(types, "; ")})
		}
		s.render(w, r, http.StatusOK, views.Home(s.page(r, "Start"), v))
	})
}

func (s *Server) handleAuthInstructions() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := s.baseURL(r) + apiBase
		header, statusHeader := "", ""
		if s.auth.Mode() != "local" {
			header = "  -H \"Authorization: Bearer $TOKEN\" \\\n"
			statusHeader = "-H \"Authorization: Bearer $TOKEN\" "
		}
		example := "curl -X POST " + base + "/runs \\\n" + header +
			"  -F workflow_type=CWL -F workflow_type_version=v1.2 \\\n" +
			"  -F workflow_url=workflow.cwl \\\n" +
			"  -F 'workflow_params={\"message\": \"hello\"}' \\\n" +
			"  -F 'workflow_attachment=@workflow.cwl;filename=workflow.cwl'\n\n" +
			"curl " + statusHeader + base + "/runs/RUN_ID/status\n"
		v := views.InstructionsView{APIBase: base, Mode: s.auth.Mode(), Example: example}
		if b, ok := s.auth.(auth.Browser); ok {
			v.Issuer, v.ClientID = b.Issuer(), b.ClientID()
			v.Example = "# A token from your institution's identity provider, for example with oidc-agent:\n" +
				"#   oidc-gen --issuer " + v.Issuer + " wesgate   (once)\n" +
				"TOKEN=$(oidc-token wesgate)\n\n" + v.Example
		}
		s.render(w, r, http.StatusOK, views.Instructions(s.page(r, "API access"), v))
	})
}

// problemPage renders a page that explains a problem, without internals.
func (s *Server) problemPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, r, status, views.Problem(s.page(r, http.StatusText(status)), http.StatusText(status), msg))
}

func (s *Server) handleStatic() http.Handler { return s.assets }

func (s *Server) handleNotFoundPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusNotFound, views.NotFound(s.page(r, "Not found"), "There is no page at this address."))
	})
}
