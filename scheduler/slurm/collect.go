package slurm

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/wesgate/wesgate/scheduler"
)

// collectOrder is what a collection asks tar for, in order: the wrapper's
// records and the logs come first, so a limit reached in a large work
// directory never costs them.
var collectOrder = []string{"./" + scheduler.RecordDir, "./" + scheduler.StdoutFile, "./" + scheduler.StderrFile,
	"./" + scheduler.OutputsDir, "./" + scheduler.WorkDir}

// noRunDir is the exit status of a collection whose run directory does not
// exist (nothing was staged).
const noRunDir = 64

// Collect copies a finished run's directory home with one remote tar
// stream: records, logs, outputs and the work directory, without what
// lim.Skip names (the attachments, already home). Everything a job wrote
// is the user's and is treated as hostile: only regular files and
// directories are written, through an os.Root of localDir, with names
// checked component by component; FIFOs, devices and symlinks are listed
// in Problems and never opened (tar stores them without reading them).
// When lim.MaxBytes or lim.MaxFiles is reached, the stream is stopped and
// the rest stays on the cluster. The context's deadline bounds the whole
// collection: a hung filesystem fails this run's collection only.
func (e *Executor) Collect(ctx context.Context, account, runDir, localDir string, lim scheduler.CollectLimits) (scheduler.Collected, error) {
	var got scheduler.Collected
	if err := os.MkdirAll(localDir, 0o750); err != nil {
		return got, err
	}
	root, err := os.OpenRoot(localDir)
	if err != nil {
		return got, err
	}
	defer root.Close()
	var skip strings.Builder
	for _, p := range lim.Skip {
		if !strings.ContainsAny(p, "\n\r") {
			skip.WriteString("./" + p + "\n")
		}
	}
	args := make([]string, len(collectOrder))
	for i, a := range collectOrder {
		args[i] = quote(a)
	}
	cmd := fmt.Sprintf("cd -- %s 2>/dev/null || exit %d; exec tar -c -f - --ignore-failed-read --anchored --no-wildcards --exclude-from=- -- %s",
		quote(runDir), noRunDir, strings.Join(args, " "))
	start := time.Now()
	err = e.pool.Stream(ctx, account, cmd, strings.NewReader(skip.String()), func(r io.Reader) error {
		return untar(r, root, lim, &got)
	})
	e.logCommand("collect", account, time.Since(start), err)
	var ee *ExitError
	if errors.As(err, &ee) {
		switch ee.Status {
		case noRunDir:
			return got, nil // nothing was staged
		case 1: // "file changed as we read it": what was read is fine
			return got, nil
		}
	}
	return got, err
}

// maxProblems bounds the problem lines of one collection.
const maxProblems = 10

// untar writes a tar stream's regular files and directories under root.
func untar(r io.Reader, root *os.Root, lim scheduler.CollectLimits, got *scheduler.Collected) error {
	tr := tar.NewReader(r)
	problems := 0
	note := func(format string, a ...any) {
		problems++
		if problems <= maxProblems {
			got.Problems = append(got.Problems, fmt.Sprintf(format, a...))
		} else if problems == maxProblems+1 {
			got.Problems = append(got.Problems, "more files were refused")
		}
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("collect: %w", err)
		}
		name, ok := memberName(hdr.Name)
		if !ok {
			note("%q was not copied: its name is not a plain relative path", truncateName(hdr.Name))
			continue
		}
		if name == "" {
			continue
		}
		if lim.MaxFiles > 0 && got.Files >= lim.MaxFiles {
			note("collection stopped after %d files; the rest is on the cluster", lim.MaxFiles)
			return errStopped
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			got.Files++
			if err := root.MkdirAll(name, 0o750); err != nil {
				return fmt.Errorf("collect: %w", err)
			}
		case tar.TypeReg:
			if lim.MaxBytes > 0 && got.Bytes+hdr.Size > lim.MaxBytes {
				note("collection stopped at %d MiB (the limit) before %s; the rest is on the cluster", lim.MaxBytes>>20, name)
				return errStopped
			}
			got.Files++
			if err := writeMember(root, name, tr, hdr.Size); err != nil {
				return err
			}
			got.Bytes += hdr.Size
		case tar.TypeSymlink, tar.TypeLink:
			// Never followed, never copied; engines leave links about.
			got.Refused = append(got.Refused, name)
		default:
			got.Refused = append(got.Refused, name)
			note("%s is not a regular file; it was not copied", name)
		}
	}
}

// memberName checks a tar member name ("./a/b") component by component and
// returns it without "./"; "" is the top directory.
func memberName(raw string) (string, bool) {
	name := strings.TrimSuffix(strings.TrimPrefix(raw, "./"), "/")
	if name == "." || name == "" {
		return "", true
	}
	if strings.HasPrefix(name, "/") || strings.ContainsAny(name, "\\\x00") {
		return "", false
	}
	for _, c := range strings.Split(name, "/") {
		if c == "" || c == "." || c == ".." {
			return "", false
		}
		for _, r := range c {
			if r < 0x20 || r == 0x7f {
				return "", false
			}
		}
	}
	return name, path.Clean(name) == name
}

func truncateName(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// writeMember writes one regular file through root, replacing whatever was
// there (never following a symlink out of the run directory).
func writeMember(root *os.Root, name string, r io.Reader, size int64) error {
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("collect: %w", err)
		}
	}
	tmp := name + ".part"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("collect: %w", err)
	}
	if _, err := io.CopyN(f, r, size); err != nil {
		f.Close()
		root.Remove(tmp)
		return fmt.Errorf("collect %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		root.Remove(tmp)
		return fmt.Errorf("collect: %w", err)
	}
	return root.Rename(tmp, name)
}

// errNotRegular refuses a live read of something that is not a regular file.
var errNotRegular = errors.New("not a regular file")

// Open opens a regular file of a run directory on the cluster for reading
// (a running job's log). It looks before it opens: a FIFO, device or
// symlink is refused as if missing, never opened. Every SFTP request has a
// deadline (FileTimeout); one that hangs (a FIFO swapped in after the look,
// a hung NFS mount) drops that SFTP client, so the next operation gets a
// fresh one instead of queueing behind it.
func (e *Executor) Open(ctx context.Context, account, name string) (io.ReadSeekCloser, error) {
	fsys, err := e.pool.SFTP(ctx, account)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var f *sftp.File
	err = e.pool.sftpCall(ctx, account, fsys, e.cfg.FileTimeout, func() error {
		fi, err := fsys.Lstat(name)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return errNotRegular
		}
		f, err = fsys.Open(name)
		return err
	})
	e.cfg.Metrics.command("sftp", outcome(err), time.Since(start).Seconds())
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotRegular) {
		return nil, fs.ErrNotExist
	}
	if err != nil {
		return nil, err
	}
	return &remoteFile{f: f, pool: e.pool, account: account, fsys: fsys, timeout: e.cfg.FileTimeout}, nil
}

func outcome(err error) string {
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errNotRegular) {
		return "error"
	}
	return "ok"
}

// remoteFile is an open SFTP file whose reads have a deadline each.
type remoteFile struct {
	f       *sftp.File
	pool    *Pool
	account string
	fsys    *sftp.Client
	timeout time.Duration
}

func (r *remoteFile) Read(p []byte) (int, error) {
	var n int
	err := r.pool.sftpCall(context.Background(), r.account, r.fsys, r.timeout, func() error {
		var err error
		n, err = r.f.Read(p)
		return err
	})
	return n, err
}

func (r *remoteFile) Seek(off int64, whence int) (int64, error) { return r.f.Seek(off, whence) }
func (r *remoteFile) Close() error                              { return r.f.Close() }

// sftpCall runs fn, a call on fsys, with a deadline. When the deadline
// passes first, fsys is closed and dropped from the pool (its session is
// stuck behind the call), and the call fails with ErrUnreachable.
func (p *Pool) sftpCall(ctx context.Context, account string, fsys *sftp.Client, timeout time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, io.EOF) {
			p.sftpFailed(account, err)
		}
		return err
	case <-ctx.Done():
		p.dropSFTP(account, fsys, ctx.Err())
		<-done // closing the client ends the call
		return fmt.Errorf("%w: sftp: %w", ErrUnreachable, ctx.Err())
	}
}

// dropSFTP closes fsys if it is still the account's SFTP client.
func (p *Pool) dropSFTP(account string, fsys *sftp.Client, cause error) {
	c := p.conn(account)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sftp != fsys {
		return
	}
	p.log.Warn("ssh: sftp request timed out; the SFTP session is dropped", "account", account, "err", cause)
	c.sftp.Close()
	c.sftp = nil
	<-c.sem
}
