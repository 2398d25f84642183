package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// LeasePrefix is where the daemon keeps its leases in the repository's
// store: LeasePrefix + JOB + "/" + GENERATION (20 digits).
const LeasePrefix = "daemon/leases/"

// Lease states.
const (
	StateRunning = "running"
	StateDone    = "done"    // the run finished, successfully or not (OK says)
	StateAborted = "aborted" // the run was cancelled (SIGTERM): another replica may run it
)

// Record is one generation of a job's lease. Every generation is a new
// object created with create-if-absent (S3 If-None-Match: *; a hard link on
// a local disk), so that of two daemons that try to write the same
// generation exactly one succeeds: taking a lease, renewing it, taking it
// over after it expired and releasing it all write the next generation.
// Nothing is ever overwritten, which keeps the leases readable in buckets
// with versioning or object lock and needs no delete permission.
type Record struct {
	Job        string    `json:"job"`
	Generation uint64    `json:"generation"`
	Owner      string    `json:"owner"`
	State      string    `json:"state"`
	Run        time.Time `json:"run"` // the scheduled time of the run: with Job, its identity
	Expires    time.Time `json:"expires"`
	OK         bool      `json:"ok,omitempty"`
	Snapshot   string    `json:"snapshot,omitempty"`
	// LastSuccess is carried from generation to generation: the scheduled
	// time of the job's last successful run, and when it ended.
	LastSuccess    time.Time `json:"last_success,omitzero"`
	LastSuccessEnd time.Time `json:"last_success_end,omitzero"`
}

// ErrLeaseLost is a renewal that found that another daemon took the lease.
var ErrLeaseLost = errors.New("lease lost: another daemon took the job over")

// Leases are the leases of a store's jobs.
type Leases struct {
	Store storage.Store
	Owner string
	TTL   time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (l *Leases) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func leaseName(job string, gen uint64) string {
	return fmt.Sprintf("%s%s/%020d", LeasePrefix, job, gen)
}

// Latest returns the newest generation of job's lease, or nil.
func (l *Leases) Latest(ctx context.Context, job string) (*Record, error) {
	for i := 0; ; i++ {
		r, err := l.latest(ctx, job)
		// The newest generation listed may be deleted by the time it is
		// read, when two newer ones were written meanwhile: list again.
		if errors.Is(err, storage.ErrNotExist) && i < 5 {
			continue
		}
		return r, err
	}
}

func (l *Leases) latest(ctx context.Context, job string) (*Record, error) {
	// Generations are zero-padded: the last name listed is the newest.
	// Old generations are deleted (best effort) as new ones are written,
	// so the listing stays short.
	var last string
	err := l.Store.List(ctx, LeasePrefix+job+"/", func(fi storage.ObjectInfo) error {
		last = fi.Name
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list leases of %s: %w", job, err)
	}
	if last == "" {
		return nil, nil
	}
	rc, err := l.Store.Open(ctx, last, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", last, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<16))
	if err != nil {
		return nil, fmt.Errorf("read lease %s: %w", last, err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("lease %s does not parse: %w", last, err)
	}
	gen, err := strconv.ParseUint(last[strings.LastIndex(last, "/")+1:], 10, 64)
	if err != nil || gen != r.Generation || r.Job != job {
		return nil, fmt.Errorf("lease %s does not match its name", last)
	}
	return &r, nil
}

// write creates generation r.Generation; storage.ErrExists means another
// daemon wrote it first.
func (l *Leases) write(ctx context.Context, r *Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	name := leaseName(r.Job, r.Generation)
	if err := l.Store.Put(ctx, name, bytes.NewReader(b), int64(len(b)), storage.PutOptions{IfNotExists: true}); err != nil {
		if !errors.Is(err, storage.ErrExists) || !l.landed(ctx, name, b) {
			return err
		}
		// A retried write whose first try landed: ours.
	}
	// Best effort: generations older than the previous one are of no use
	// (a host without delete permission keeps them).
	if r.Generation > 2 {
		_ = l.Store.Delete(ctx, leaseName(r.Job, r.Generation-2))
	}
	return nil
}

// landed reports whether the object name holds exactly b.
func (l *Leases) landed(ctx context.Context, name string, b []byte) bool {
	rc, err := l.Store.Open(ctx, name, 0, -1)
	if err != nil {
		return false
	}
	defer rc.Close()
	got, err := io.ReadAll(io.LimitReader(rc, 1<<16))
	return err == nil && bytes.Equal(got, b)
}

// Busy says why a run could not take its job's lease.
type Busy struct {
	// Holder is the current generation.
	Holder *Record
	// Done: the run already happened (here or on another replica) or a
	// later one did; there is nothing to wait for.
	Done bool
}

// Acquire takes job's lease for the run scheduled at run. It returns the
// new generation, or a Busy that says who holds it. A run that another
// daemon is running is not taken until its lease expires; a run that is
// done (or a later one) never is, except that with again a run that is
// done without success may be run again (a catch-up at start).
func (l *Leases) Acquire(ctx context.Context, job string, run time.Time, again bool) (*Record, *Busy, error) {
	cur, err := l.Latest(ctx, job)
	if err != nil {
		return nil, nil, err
	}
	next := &Record{Job: job, Generation: 1, Owner: l.Owner, State: StateRunning, Run: run.UTC(), Expires: l.now().Add(l.TTL).UTC()}
	if cur != nil {
		expired := !l.now().Before(cur.Expires)
		switch {
		case cur.Run.After(run):
			return nil, &Busy{Holder: cur, Done: true}, nil
		case cur.Run.Equal(run) && cur.State == StateDone && (cur.OK || !again):
			return nil, &Busy{Holder: cur, Done: true}, nil
		case cur.State == StateRunning && !expired:
			return nil, &Busy{Holder: cur}, nil
		}
		next.Generation = cur.Generation + 1
		next.LastSuccess, next.LastSuccessEnd = cur.LastSuccess, cur.LastSuccessEnd
	}
	if err := l.write(ctx, next); err != nil {
		if errors.Is(err, storage.ErrExists) {
			// Another daemon took this generation first.
			holder, _ := l.Latest(ctx, job)
			return nil, &Busy{Holder: holder}, nil
		}
		return nil, nil, fmt.Errorf("take lease of %s: %w", job, err)
	}
	return next, nil, nil
}

// Renew extends a held lease by writing its next generation; ErrLeaseLost
// means another daemon wrote it first (it took the job over).
func (l *Leases) Renew(ctx context.Context, r *Record) (*Record, error) {
	n := *r
	n.Generation++
	n.Expires = l.now().Add(l.TTL).UTC()
	if err := l.write(ctx, &n); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return nil, ErrLeaseLost
		}
		return nil, fmt.Errorf("renew lease of %s: %w", r.Job, err)
	}
	return &n, nil
}

// Release ends a held lease: done (ok says whether the run succeeded,
// snapshot names what it made) or, when aborted, open for another replica
// to run again.
func (l *Leases) Release(ctx context.Context, r *Record, state string, ok bool, snapshot string) error {
	n := *r
	n.Generation++
	n.State, n.OK, n.Snapshot = state, ok, snapshot
	n.Expires = l.now().UTC()
	if ok {
		n.LastSuccess, n.LastSuccessEnd = r.Run, l.now().UTC()
	}
	if err := l.write(ctx, &n); err != nil {
		if errors.Is(err, storage.ErrExists) {
			return ErrLeaseLost
		}
		return fmt.Errorf("release lease of %s: %w", r.Job, err)
	}
	return nil
}
