package wes

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// fileMarker stands for the run's file-download URL in stored outputs; the
// URL depends on the address the client used, so it is filled in when read.
const fileMarker = "wesgate-file:"

// expandOutputs replaces file markers with download URLs under filesURL.
func expandOutputs(stored json.RawMessage, filesURL string) json.RawMessage {
	if len(stored) == 0 {
		return json.RawMessage("{}")
	}
	if !bytes.Contains(stored, []byte(fileMarker)) {
		return stored
	}
	quoted, _ := json.Marshal(filesURL) // a string always encodes
	prefix := quoted[:len(quoted)-1]    // `"https://…/files/` without the closing quote
	return bytes.ReplaceAll(stored, []byte(`"`+fileMarker), prefix)
}

// fileRef is the marker for rel, a slash-separated path inside the run directory.
func fileRef(rel string) string {
	parts := strings.Split(rel, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return fileMarker + strings.Join(parts, "/")
}

// collectOutputs builds the outputs object of a finished run from its local
// directory. runDir is where the run lived on the execution side (the paths
// an engine reports are there).
func collectOutputs(mode, localDir, runDir string, attachments []string) (json.RawMessage, error) {
	switch mode {
	case OutputsCWL:
		return collectCWL(localDir, runDir)
	case OutputsDirectory:
		return collectTree(localDir, runDir, "outputs", nil)
	case OutputsWorkdir:
		return collectTree(localDir, runDir, "work", attachments)
	}
	return nil, fmt.Errorf("unknown outputs mode %q", mode)
}

// collectCWL reads the CWL output object the engine printed on stdout and
// points every File and Directory at wesgate's download URL, adding the
// size and checksum where the engine left them out.
func collectCWL(localDir, runDir string) (json.RawMessage, error) {
	b, err := os.ReadFile(filepath.Join(localDir, "stdout.txt"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return json.RawMessage("{}"), nil
		}
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, errors.New("the engine's stdout is not a CWL output object")
	}
	walkCWL(obj, localDir, runDir)
	return compactJSON(obj), nil
}

func walkCWL(v any, localDir, runDir string) {
	switch x := v.(type) {
	case map[string]any:
		class, _ := x["class"].(string)
		if class == "File" || class == "Directory" {
			rewriteCWLFile(x, class, localDir, runDir)
		}
		for _, k := range sortedKeys(x) {
			walkCWL(x[k], localDir, runDir)
		}
	case []any:
		for _, e := range x {
			walkCWL(e, localDir, runDir)
		}
	}
}

func rewriteCWLFile(x map[string]any, class, localDir, runDir string) {
	p, _ := x["path"].(string)
	if p == "" {
		if loc, _ := x["location"].(string); strings.HasPrefix(loc, "file://") {
			if u, err := url.Parse(loc); err == nil {
				p = u.Path
			}
		}
	}
	rel, ok := strings.CutPrefix(p, runDir+"/")
	if !ok || rel == "" {
		return // outside the run directory: leave the engine's location
	}
	x["location"] = fileRef(rel)
	x["path"] = p
	if class != "File" {
		return
	}
	local := filepath.Join(localDir, filepath.FromSlash(rel))
	if _, has := x["size"]; !has {
		if fi, err := os.Stat(local); err == nil {
			x["size"] = fi.Size()
		}
	}
	if _, has := x["checksum"]; !has {
		if sum, err := sha1File(local); err == nil {
			x["checksum"] = "sha1$" + sum
		}
	}
}

func sha1File(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha1.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// maxListedOutputs bounds the outputs object of engines that do not report
// their outputs themselves.
const maxListedOutputs = 10000

// collectTree lists the regular files under sub/ (skipping hidden
// directories and the given attachments) as CWL-style File objects keyed by
// their path relative to sub/.
func collectTree(localDir, runDir, sub string, skip []string) (json.RawMessage, error) {
	root := filepath.Join(localDir, sub)
	out := map[string]any{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") || slices.Contains(skip, rel) {
			return nil
		}
		if len(out) >= maxListedOutputs {
			return filepath.SkipAll
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum, err := sha1File(p)
		if err != nil {
			return err
		}
		out[rel] = map[string]any{
			"class": "File", "basename": d.Name(), "location": fileRef(sub + "/" + rel),
			"path": runDir + "/" + sub + "/" + rel, "size": fi.Size(), "checksum": "sha1$" + sum,
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return compactJSON(out), nil
}
