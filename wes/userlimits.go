package wes

import (
	"fmt"
	"time"
)

// UserLimits cap what one user may have the cluster do. Zero means no cap.
type UserLimits struct {
	// MaxActiveRuns bounds the user's runs that have not ended.
	MaxActiveRuns int
	// MaxSubmissionsPerMinute bounds the runs the user creates in any minute.
	MaxSubmissionsPerMinute int
	// MaxAttachmentBytes bounds the attachment bytes of the user's runs that
	// have not ended (a finished run's files no longer take room on the
	// cluster's queue, and WES has no way for users to delete runs, so a
	// total over all runs would lock people out for good).
	MaxAttachmentBytes int64
	// AdminsExempt lets admins past every cap.
	AdminsExempt bool
}

// Quota is what the store checks, in the transaction that stores a run, for
// the run's owner: the caps, and the start of the submission window.
type Quota struct {
	MaxActiveRuns           int
	MaxSubmissionsPerMinute int
	MaxAttachmentBytes      int64
	WindowStart             time.Time // runs created at or after it count toward MaxSubmissionsPerMinute
}

// None reports whether q caps nothing.
func (q Quota) None() bool {
	return q.MaxActiveRuns <= 0 && q.MaxSubmissionsPerMinute <= 0 && q.MaxAttachmentBytes <= 0
}

// LimitError says that a user has reached a cap; the request may succeed
// after RetryAfter. The edge answers it with 429 Too Many Requests.
type LimitError struct {
	Msg        string
	RetryAfter time.Duration
}

func (e *LimitError) Error() string { return e.Msg }

// Usage is what a user has, as the store counts it for a Quota.
type Usage struct {
	ActiveRuns      int
	ActiveBytes     int64
	RecentRuns      int       // among the newest MaxSubmissionsPerMinute runs, those in the window
	OldestRecent    time.Time // the oldest of those
	AttachmentBytes int64     // of the run being stored
}

// CheckQuota returns a *LimitError when storing one more run would go over
// q, given what the owner has; the store calls it inside its transaction.
func CheckQuota(q Quota, u Usage) error {
	switch {
	case q.MaxActiveRuns > 0 && u.ActiveRuns >= q.MaxActiveRuns:
		return &LimitError{Msg: fmt.Sprintf("you have %d runs that have not ended, the most this server allows; "+
			"try again when one has ended", u.ActiveRuns), RetryAfter: time.Minute}
	case q.MaxSubmissionsPerMinute > 0 && u.RecentRuns >= q.MaxSubmissionsPerMinute:
		wait := u.OldestRecent.Sub(q.WindowStart) // when the oldest of them leaves the window
		return &LimitError{Msg: fmt.Sprintf("you have submitted %d runs in the last minute, the most this server allows; "+
			"try again shortly", u.RecentRuns), RetryAfter: max(wait, time.Second)}
	case q.MaxAttachmentBytes > 0 && u.ActiveBytes+u.AttachmentBytes > q.MaxAttachmentBytes:
		return &LimitError{Msg: fmt.Sprintf("the attachments of your runs that have not ended would take %d bytes, "+
			"more than the %d this server allows; try again when one has ended", u.ActiveBytes+u.AttachmentBytes,
			q.MaxAttachmentBytes), RetryAfter: time.Minute}
	}
	return nil
}

// quota returns the caps that apply to u at now.
func (s *Service) quota(u User, now time.Time) Quota {
	l := s.cfg.UserLimits
	if u.Admin && l.AdminsExempt {
		return Quota{}
	}
	return Quota{MaxActiveRuns: l.MaxActiveRuns, MaxSubmissionsPerMinute: l.MaxSubmissionsPerMinute,
		MaxAttachmentBytes: l.MaxAttachmentBytes, WindowStart: now.Add(-time.Minute)}
}
