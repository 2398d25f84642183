package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// RetryOptions tune WithRetry. Zero values pick the defaults.
type RetryOptions struct {
	// MaxAttempts is the number of tries of one operation, the first
	// included (default 5). With a Budget it is not a limit unless set.
	MaxAttempts int
	// Budget, if set, is how long one operation is tried again from its
	// first try: a transient error is retried until Budget has passed (a
	// storage outage shorter than Budget is ridden out), whatever the
	// number of attempts, unless MaxAttempts is also set.
	Budget time.Duration
	// BaseDelay is the wait before the second try (default 200ms); each
	// later wait doubles, up to MaxDelay (default 10s), with full jitter.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// OnRetry, if set, is called before each new try with the number of the
	// failed attempt (from 1) and its error, for logging.
	OnRetry func(op string, attempt int, err error)
}

// WithRetry wraps s so that operations failing with a transient error are
// tried again with exponential backoff and jitter. Missing or existing
// objects, a missing bucket, invalid requests and context errors are not
// retried. Put is retried only when its reader is an io.Seeker, which is
// rewound to where it was before the first try.
func WithRetry(s Store, opts RetryOptions) Store {
	if opts.MaxAttempts <= 0 && opts.Budget <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = 200 * time.Millisecond
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = 10 * time.Second
	}
	if opts.MaxDelay < opts.BaseDelay {
		opts.MaxDelay = opts.BaseDelay
	}
	return &retryStore{s: s, opts: opts}
}

type retryStore struct {
	s    Store
	opts RetryOptions
}

// Unwrap returns the wrapped Store.
func (r *retryStore) Unwrap() Store { return r.s }

func (r *retryStore) Location() string { return r.s.Location() }

// permanentError marks an error that retrying cannot fix, such as an invalid
// name or a refused request.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// transient reports whether err is worth another try.
func transient(err error) bool {
	var p *permanentError
	switch {
	case err == nil,
		errors.Is(err, ErrNotExist),
		errors.Is(err, ErrExists),
		errors.Is(err, ErrBucketNotFound),
		errors.Is(err, context.Canceled),
		errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &p):
		return false
	}
	return true
}

// do runs f until it succeeds, fails permanently, runs out of attempts or
// ctx is done.
func (r *retryStore) do(ctx context.Context, op string, f func() error) error {
	delay := r.opts.BaseDelay
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := f()
		outOfAttempts := r.opts.MaxAttempts > 0 && attempt >= r.opts.MaxAttempts
		outOfTime := r.opts.Budget > 0 && time.Since(start) >= r.opts.Budget
		if !transient(err) || outOfAttempts || outOfTime {
			if err != nil && attempt > 1 && transient(err) {
				return fmt.Errorf("%w (after %d attempts in %s)", err, attempt, time.Since(start).Round(time.Second))
			}
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		if r.opts.OnRetry != nil {
			r.opts.OnRetry(op, attempt, err)
		}
		wait := time.Duration(rand.Int64N(int64(delay)) + 1) // full jitter
		if r.opts.Budget > 0 {
			// The last wait ends at the budget, so that the last try is
			// made when the budget runs out rather than never.
			wait = max(min(wait, r.opts.Budget-time.Since(start)), time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		delay = min(delay*2, r.opts.MaxDelay)
	}
}

func (r *retryStore) Put(ctx context.Context, name string, rd io.Reader, size int64, opts PutOptions) error {
	seeker, ok := rd.(io.Seeker)
	if !ok {
		return r.s.Put(ctx, name, rd, size, opts)
	}
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		// Not really seekable (a pipe behind an *os.File, say).
		return r.s.Put(ctx, name, rd, size, opts)
	}
	first := true
	return r.do(ctx, "put "+name, func() error {
		if !first {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return permanent(fmt.Errorf("put %s: rewind: %w", name, err))
			}
		}
		first = false
		return r.s.Put(ctx, name, rd, size, opts)
	})
}

// Open retries opening; reads from the returned stream are not retried.
func (r *retryStore) Open(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "open "+name, func() error {
		var err error
		rc, err = r.s.Open(ctx, name, off, length)
		return err
	})
	return rc, err
}

func (r *retryStore) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	var fi ObjectInfo
	err := r.do(ctx, "stat "+name, func() error {
		var err error
		fi, err = r.s.Stat(ctx, name)
		return err
	})
	return fi, err
}

// List resumes a failed listing after the last name it passed to fn, so fn
// never sees a name twice. Errors from fn are returned as they are.
func (r *retryStore) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	var (
		last    string
		started bool
		fnErr   error
	)
	err := r.do(ctx, "list "+prefix, func() error {
		err := r.s.List(ctx, prefix, func(fi ObjectInfo) error {
			if started && fi.Name <= last {
				return nil
			}
			if err := fn(fi); err != nil {
				fnErr = err
				return err
			}
			last, started = fi.Name, true
			return nil
		})
		if fnErr != nil {
			return permanent(fnErr) // stop retrying; returned bare below
		}
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

func (r *retryStore) Delete(ctx context.Context, name string) error {
	return r.do(ctx, "delete "+name, func() error { return r.s.Delete(ctx, name) })
}
