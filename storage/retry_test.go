package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/storage"
)

// flakyStore fails the first failures calls of every operation with err,
// then delegates to a real store.
type flakyStore struct {
	storage.Store
	failures int
	err      error
	calls    int
	puts     []string // what each Put attempt read
}

func (f *flakyStore) fail() error {
	f.calls++
	if f.calls <= f.failures {
		return f.err
	}
	return nil
}

func (f *flakyStore) Put(ctx context.Context, name string, r io.Reader, size int64, opts storage.PutOptions) error {
	b, _ := io.ReadAll(r)
	f.puts = append(f.puts, string(b))
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Put(ctx, name, bytes.NewReader(b), int64(len(b)), opts)
}

func (f *flakyStore) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := f.fail(); err != nil {
		return storage.ObjectInfo{}, err
	}
	return f.Store.Stat(ctx, name)
}

func (f *flakyStore) Open(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.Store.Open(ctx, name, off, length)
}

func (f *flakyStore) Delete(ctx context.Context, name string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Delete(ctx, name)
}

// List fails after passing the first object to fn, as a listing broken
// midway would.
func (f *flakyStore) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	first := true
	return f.Store.List(ctx, prefix, func(fi storage.ObjectInfo) error {
		if err := fn(fi); err != nil {
			return err
		}
		if first {
			first = false
			return f.fail()
		}
		return nil
	})
}

var errTransient = errors.New("connection reset by peer")

func newFlaky(t *testing.T, failures int, err error) (*flakyStore, storage.Store) {
	local, lerr := storage.NewLocal(t.TempDir())
	if lerr != nil {
		t.Fatal(lerr)
	}
	f := &flakyStore{Store: local, failures: failures, err: err}
	return f, storage.WithRetry(f, storage.RetryOptions{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond})
}

func TestRetry(t *testing.T) {
	ctx := context.Background()

	t.Run("transient put", func(t *testing.T) {
		f, s := newFlaky(t, 2, errTransient)
		r := strings.NewReader("hello, world")
		r.Seek(7, io.SeekStart) // retries rewind to here, not to 0
		if err := s.Put(ctx, "x", r, 5, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if got, want := f.calls, 3; got != want {
			t.Errorf("attempts = %d, want %d", got, want)
		}
		for i, p := range f.puts {
			if p != "world" {
				t.Errorf("attempt %d read %q, want %q", i+1, p, "world")
			}
		}
		if got := get(t, s, "x"); string(got) != "world" {
			t.Errorf("stored %q", got)
		}
	})

	t.Run("gives up", func(t *testing.T) {
		f, s := newFlaky(t, 100, errTransient)
		_, err := s.Stat(ctx, "x")
		if !errors.Is(err, errTransient) {
			t.Fatalf("Stat = %v, want %v", err, errTransient)
		}
		if got, want := f.calls, 4; got != want {
			t.Errorf("attempts = %d, want %d", got, want)
		}
	})

	t.Run("non-seekable put", func(t *testing.T) {
		f, s := newFlaky(t, 1, errTransient)
		err := s.Put(ctx, "x", io.MultiReader(strings.NewReader("data")), -1, storage.PutOptions{})
		if !errors.Is(err, errTransient) {
			t.Fatalf("Put = %v, want %v", err, errTransient)
		}
		if got, want := f.calls, 1; got != want {
			t.Errorf("attempts = %d, want %d", got, want)
		}
	})

	for _, perm := range []error{
		fmt.Errorf("open x: %w", storage.ErrNotExist),
		fmt.Errorf("put x: %w", storage.ErrExists),
		fmt.Errorf("bucket: %w", storage.ErrBucketNotFound),
		context.Canceled,
		fmt.Errorf("get: %w", context.DeadlineExceeded),
	} {
		t.Run("permanent "+perm.Error(), func(t *testing.T) {
			f, s := newFlaky(t, 100, perm)
			if _, err := s.Open(ctx, "x", 0, -1); !errors.Is(err, perm) {
				t.Errorf("Open = %v, want %v", err, perm)
			}
			if got, want := f.calls, 1; got != want {
				t.Errorf("attempts = %d, want %d", got, want)
			}
		})
	}

	t.Run("list resumes", func(t *testing.T) {
		f, s := newFlaky(t, 2, errTransient)
		for _, n := range []string{"a", "b", "c"} {
			put(t, f.Store, n, []byte(n))
		}
		if got, want := listNames(t, s, ""), []string{"a", "b", "c"}; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("List = %q, want %q (each once)", got, want)
		}
		if got, want := f.calls, 3; got != want {
			t.Errorf("attempts = %d, want %d", got, want)
		}
	})

	t.Run("list fn error", func(t *testing.T) {
		f, s := newFlaky(t, 0, nil)
		put(t, f.Store, "a", nil)
		stop := errors.New("stop")
		var calls int
		err := s.List(ctx, "", func(storage.ObjectInfo) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Errorf("List = %v after %d calls, want %v after 1", err, calls, stop)
		}
	})

	t.Run("context", func(t *testing.T) {
		f, _ := newFlaky(t, 100, errTransient)
		s := storage.WithRetry(f, storage.RetryOptions{MaxAttempts: 100, BaseDelay: time.Hour})
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := s.Delete(cctx, "x"); err == nil {
			t.Fatal("Delete succeeded")
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("Delete took %v after the context ended", elapsed)
		}
	})

	t.Run("unwrap", func(t *testing.T) {
		f, s := newFlaky(t, 0, nil)
		u, ok := s.(interface{ Unwrap() storage.Store })
		if !ok || u.Unwrap() != storage.Store(f) {
			t.Errorf("Unwrap() does not return the wrapped store")
		}
		if got, want := s.Location(), f.Location(); got != want {
			t.Errorf("Location() = %q, want %q", got, want)
		}
	})
}

// TestRetryBudget: with a Budget, an operation is tried again for as long
// as the budget lasts, however many attempts that takes, and then given up.
func TestRetryBudget(t *testing.T) {
	ctx := context.Background()
	local, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// 30 failures: far more than the default 5 attempts.
	f := &flakyStore{Store: local, failures: 30, err: errTransient}
	s := storage.WithRetry(f, storage.RetryOptions{Budget: 10 * time.Second, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond})
	if err := s.Put(ctx, "x", strings.NewReader("hello"), 5, storage.PutOptions{}); err != nil {
		t.Fatalf("Put within the budget = %v", err)
	}

	f = &flakyStore{Store: local, failures: 1 << 30, err: errTransient}
	s = storage.WithRetry(f, storage.RetryOptions{Budget: 300 * time.Millisecond, BaseDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond})
	start := time.Now()
	err = s.Delete(ctx, "x")
	if err == nil || !errors.Is(err, errTransient) {
		t.Fatalf("Delete past the budget = %v, want the transient error", err)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 5*time.Second {
		t.Errorf("Delete gave up after %v, want about the 300ms budget", el)
	}
}
