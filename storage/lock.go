package storage

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// WithRetention wraps s so that every Put locks the object it writes for
// days from the moment of the write, in mode (S3 Object Lock). A store that
// cannot lock objects refuses each write (ErrLockUnsupported).
func WithRetention(s Store, mode LockMode, days int) Store {
	return &retentionStore{Store: s, mode: mode, days: days}
}

type retentionStore struct {
	Store
	mode LockMode
	days int
}

// Unwrap returns the wrapped Store.
func (r *retentionStore) Unwrap() Store { return r.Store }

func (r *retentionStore) Put(ctx context.Context, name string, rd io.Reader, size int64, opts PutOptions) error {
	if opts.Retention == nil {
		opts.Retention = &Retention{Mode: r.mode, Until: time.Now().Add(time.Duration(r.days) * 24 * time.Hour).UTC()}
	}
	return r.Store.Put(ctx, name, rd, size, opts)
}

// WithFirstVersions wraps a store that keeps versions so that it shows,
// for every name, the oldest version that is still stored, and ignores
// newer versions and delete markers.
//
// A repository writes every name once, create-if-absent, so its first
// version is the only one coffer ever wrote: a later version is an
// overwrite, a delete marker a delete, by someone else. With object lock
// the first version cannot be removed until its retention ends, so a
// reader through WithFirstVersions sees the repository as it was written
// whatever plain PUTs and DELETEs did to the current versions. Put and
// Delete go to s unchanged (a Delete only hides an object from readers
// that do not look at versions).
func WithFirstVersions(s Store, v Versioned) Store {
	return &firstVersions{Store: s, v: v, first: map[string]ObjectVersion{}}
}

type firstVersions struct {
	Store
	v Versioned

	mu    sync.Mutex
	first map[string]ObjectVersion // resolved names
}

// Unwrap returns the wrapped Store.
func (f *firstVersions) Unwrap() Store { return f.Store }

func (f *firstVersions) remember(ov ObjectVersion) {
	f.mu.Lock()
	f.first[ov.Name] = ov
	f.mu.Unlock()
}

// List lists, for each name, its oldest stored version.
func (f *firstVersions) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	var cur ObjectVersion
	var have, seen bool
	flush := func() error {
		if !have {
			return nil
		}
		have = false
		f.remember(cur)
		return fn(cur.ObjectInfo)
	}
	var last string
	err := f.v.ListVersions(ctx, prefix, func(ov ObjectVersion) error {
		if seen && ov.Name != last {
			if err := flush(); err != nil {
				return err
			}
		}
		seen, last = true, ov.Name
		if !ov.DeleteMarker {
			cur, have = ov, true // versions come newest first: the last one wins
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// resolve finds the oldest stored version of name.
func (f *firstVersions) resolve(ctx context.Context, name string) (ObjectVersion, error) {
	f.mu.Lock()
	ov, ok := f.first[name]
	f.mu.Unlock()
	if ok {
		return ov, nil
	}
	var found bool
	err := f.v.ListVersions(ctx, name, func(v ObjectVersion) error {
		if v.Name == name && !v.DeleteMarker {
			ov, found = v, true
		}
		return nil
	})
	if err != nil {
		return ov, err
	}
	if !found {
		return ov, ErrNotExist
	}
	f.remember(ov)
	return ov, nil
}

// Open reads the oldest stored version of name.
func (f *firstVersions) Open(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	ov, err := f.resolve(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return f.v.OpenVersion(ctx, name, ov.VersionID, off, length)
}

// Stat describes the oldest stored version of name.
func (f *firstVersions) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	ov, err := f.resolve(ctx, name)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("stat %s: %w", name, err)
	}
	return ov.ObjectInfo, nil
}

// Delete deletes through s and forgets what it knew of name.
func (f *firstVersions) Delete(ctx context.Context, name string) error {
	f.mu.Lock()
	delete(f.first, name)
	f.mu.Unlock()
	return f.Store.Delete(ctx, name)
}
