package wes

import (
	"bytes"
	"context"
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
	"syscall"

	"github.com/wesgate/wesgate/scheduler"
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

// OutputLimits bound the work of reading a run's outputs: every byte in a
// run directory was written by the user's job and may be hostile (a FIFO, a
// device, a symlink, a file of 100 GB).
type OutputLimits struct {
	// MaxObjectBytes bounds the CWL output object read from stdout.
	MaxObjectBytes int64
	// MaxHashBytes bounds the bytes hashed for checksums, over all files; past
	// it, files are listed without a checksum.
	MaxHashBytes int64
	// MaxFiles bounds the files listed.
	MaxFiles int
}

// DefaultOutputLimits are used where a limit is 0.
var DefaultOutputLimits = OutputLimits{MaxObjectBytes: 16 << 20, MaxHashBytes: 8 << 30, MaxFiles: 10000}

// ErrNotCWLObject means the engine's stdout holds no CWL output object.
var ErrNotCWLObject = errors.New("the engine's stdout is not a CWL output object")

// CollectOutputs builds the outputs object of a finished run from its local
// directory. runDir is where the run lived on the execution side (the paths
// an engine reports are there). Files are read through an os.Root of
// localDir, regular files only, looked at before they are opened; paths
// are checked component by component; hashing stops at lim.MaxHashBytes
// and when ctx ends. problems are user-safe lines for system_logs.
func CollectOutputs(ctx context.Context, mode, localDir, runDir string, attachments []string, lim OutputLimits) (out json.RawMessage, problems []string, err error) {
	if lim.MaxObjectBytes <= 0 {
		lim.MaxObjectBytes = DefaultOutputLimits.MaxObjectBytes
	}
	if lim.MaxHashBytes <= 0 {
		lim.MaxHashBytes = DefaultOutputLimits.MaxHashBytes
	}
	if lim.MaxFiles <= 0 {
		lim.MaxFiles = DefaultOutputLimits.MaxFiles
	}
	root, err := os.OpenRoot(localDir)
	if err != nil {
		return nil, nil, err
	}
	defer root.Close()
	c := &outputCollector{ctx: ctx, root: root, runDir: runDir, lim: lim}
	switch mode {
	case OutputsCWL:
		out, err = c.cwl()
	case OutputsDirectory:
		out, err = c.tree(scheduler.OutputsDir, nil)
	case OutputsWorkdir:
		out, err = c.tree(scheduler.WorkDir, attachments)
	default:
		return nil, nil, fmt.Errorf("unknown outputs mode %q", mode)
	}
	return out, c.problems, err
}

// outputCollector reads one run's outputs.
type outputCollector struct {
	ctx      context.Context
	root     *os.Root
	runDir   string
	lim      OutputLimits
	hashed   int64
	problems []string
}

func (c *outputCollector) note(format string, a ...any) {
	if len(c.problems) < 10 {
		c.problems = append(c.problems, fmt.Sprintf(format, a...))
	}
}

// OpenRegular opens name under root for reading when it is a regular file,
// without following a symlink and without blocking on a FIFO.
func OpenRegular(root *os.Root, name string) (*os.File, os.FileInfo, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file: %w", name, ErrNotRegular)
	}
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err = f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file: %w", name, ErrNotRegular)
	}
	return f, fi, nil
}

// ErrNotRegular is a run file that is a FIFO, device, socket or symlink.
var ErrNotRegular = errors.New("not a regular file")

// cwl reads the CWL output object the engine printed on stdout and points
// every File and Directory at wesgate's download URL, adding the size and
// checksum where the engine left them out.
func (c *outputCollector) cwl() (json.RawMessage, error) {
	f, _, err := OpenRegular(c.root, scheduler.StdoutFile)
	if errors.Is(err, os.ErrNotExist) {
		return json.RawMessage("{}"), nil
	}
	if errors.Is(err, ErrNotRegular) {
		return nil, fmt.Errorf("stdout.txt is not a regular file, so the outputs cannot be read: %w", ErrNotCWLObject)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, c.lim.MaxObjectBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > c.lim.MaxObjectBytes {
		return nil, fmt.Errorf("stdout.txt is larger than %d MiB: %w", c.lim.MaxObjectBytes>>20, ErrNotCWLObject)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, ErrNotCWLObject
	}
	c.walk(obj, 0)
	return compactJSON(obj), nil
}

func (c *outputCollector) walk(v any, depth int) {
	if depth > 64 {
		return
	}
	switch x := v.(type) {
	case map[string]any:
		class, _ := x["class"].(string)
		if class == "File" || class == "Directory" {
			c.rewrite(x, class)
		}
		for _, k := range sortedKeys(x) {
			c.walk(x[k], depth+1)
		}
	case []any:
		for _, e := range x {
			c.walk(e, depth+1)
		}
	}
}

// insideRun returns p relative to the run directory when every component
// of it stays inside (no "..", ".", empty or control characters).
func (c *outputCollector) insideRun(p string) (string, bool) {
	rel, ok := strings.CutPrefix(p, c.runDir+"/")
	if !ok || rel == "" {
		return "", false
	}
	for _, part := range strings.Split(rel, "/") {
		if part == "" || part == "." || part == ".." || strings.ContainsFunc(part, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", false
		}
	}
	return rel, true
}

func (c *outputCollector) rewrite(x map[string]any, class string) {
	p, _ := x["path"].(string)
	if p == "" {
		if loc, _ := x["location"].(string); strings.HasPrefix(loc, "file://") {
			if u, err := url.Parse(loc); err == nil {
				p = u.Path
			}
		}
	}
	rel, ok := c.insideRun(p)
	if !ok {
		// Outside the run directory: never read, never served.
		if p != "" {
			c.note("output %s lies outside the run directory; it is not served", truncate(p, 200))
		}
		delete(x, "path")
		return
	}
	local := filepath.FromSlash(rel)
	fi, err := c.root.Lstat(local)
	if err != nil {
		return // not collected (a limit, or the engine removed it)
	}
	if class == "File" && !fi.Mode().IsRegular() || class == "Directory" && !fi.IsDir() {
		c.note("output %s is not a regular %s; it is not served", rel, strings.ToLower(class))
		delete(x, "path")
		return
	}
	x["location"] = fileRef(rel)
	x["path"] = p
	if class != "File" {
		return
	}
	if _, has := x["size"]; !has {
		x["size"] = fi.Size()
	}
	if _, has := x["checksum"]; !has {
		if sum, ok := c.sha1(local, fi.Size()); ok {
			x["checksum"] = "sha1$" + sum
		}
	}
}

// sha1 hashes a regular file under the root, within the hashing budget and
// while ctx lasts.
func (c *outputCollector) sha1(name string, size int64) (string, bool) {
	if c.hashed+size > c.lim.MaxHashBytes || c.ctx.Err() != nil {
		return "", false
	}
	f, _, err := OpenRegular(c.root, name)
	if err != nil {
		return "", false
	}
	defer f.Close()
	h := sha1.New()
	n, err := io.Copy(h, ctxReader{c.ctx, io.LimitReader(f, size)})
	c.hashed += n
	if err != nil || n != size {
		return "", false
	}
	return hex.EncodeToString(h.Sum(nil)), true
}

// ctxReader stops reading when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// tree lists the regular files under sub/ (skipping hidden directories and
// the given attachments) as CWL-style File objects keyed by their path
// relative to sub/. Symlinks, FIFOs and devices are skipped.
func (c *outputCollector) tree(sub string, skip []string) (json.RawMessage, error) {
	out := map[string]any{}
	fsys := c.root.FS()
	err := fs.WalkDir(fsys, sub, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, sub), "/")
		if d.IsDir() {
			if rel != "" && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), ".") || slices.Contains(skip, rel) {
			return nil
		}
		if len(out) >= c.lim.MaxFiles {
			c.note("more than %d output files; the rest are not listed", c.lim.MaxFiles)
			return fs.SkipAll
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		f := map[string]any{
			"class": "File", "basename": d.Name(), "location": fileRef(sub + "/" + rel),
			"path": c.runDir + "/" + sub + "/" + rel, "size": fi.Size(),
		}
		if sum, ok := c.sha1(filepath.FromSlash(p), fi.Size()); ok {
			f["checksum"] = "sha1$" + sum
		}
		out[rel] = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	return compactJSON(out), nil
}
