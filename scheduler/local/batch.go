package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/wesgate/wesgate/scheduler"
)

// SubmitBatch submits each job in turn: nothing is remote here.
func (e *Executor) SubmitBatch(ctx context.Context, _ string, jobs []scheduler.Job) []scheduler.Submitted {
	res := make([]scheduler.Submitted, len(jobs))
	for i, j := range jobs {
		res[i].JobID, res[i].Err = e.Submit(ctx, j, j.LocalDir)
	}
	return res
}

// CancelBatch cancels each job; the executor sends SIGTERM first and
// SIGKILL after its grace period by itself, so kill is the same as term.
func (e *Executor) CancelBatch(ctx context.Context, account string, term, kill []string) error {
	for _, id := range append(append([]string(nil), term...), kill...) {
		if err := e.Cancel(ctx, account, id); err != nil {
			return err
		}
	}
	return nil
}

// Open opens a regular file of a run directory for reading. A job may have
// replaced its log with a FIFO or a device: the file is opened without
// blocking and refused unless it is a regular file, so a read never hangs.
func (e *Executor) Open(_ context.Context, _, path string) (io.ReadSeekCloser, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: %w (not a regular file)", path, os.ErrNotExist)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: %w (not a regular file)", path, os.ErrNotExist)
	}
	return f, nil
}

// Collect copies nothing: local runs already live in wesgate's data
// directory, where the pipeline reads them as regular files only.
func (e *Executor) Collect(context.Context, string, string, string, scheduler.CollectLimits) (scheduler.Collected, error) {
	return scheduler.Collected{}, nil
}
