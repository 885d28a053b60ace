// Package static holds wesgate's CSS and scripts, embedded in the binary and
// served under content-hashed names so browsers may cache them for a year.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed files
var files embed.FS

// Assets maps logical names ("app.css") to hashed URLs and serves them.
type Assets struct {
	byURL  map[string]asset
	byName map[string]string
}

type asset struct {
	name string
	data []byte
}

// New hashes every embedded file.
func New(prefix string) *Assets {
	a := &Assets{byURL: map[string]asset{}, byName: map[string]string{}}
	sub, _ := fs.Sub(files, "files")
	fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		ext := path.Ext(p)
		url := prefix + strings.TrimSuffix(p, ext) + "." + hex.EncodeToString(sum[:6]) + ext
		a.byURL[url] = asset{name: p, data: data}
		a.byName[p] = url
		return nil
	})
	return a
}

// URL returns the hashed URL of a logical name.
func (a *Assets) URL(name string) string { return a.byName[name] }

// ServeHTTP serves an asset by its hashed URL with a one-year cache lifetime.
func (a *Assets) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := a.byURL[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, f.name, time.Time{}, strings.NewReader(string(f.data)))
}
