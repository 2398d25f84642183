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
//
// The store it returns is an Overwrites: it can list the names whose first
// version is hidden behind newer versions or delete markers.
func WithFirstVersions(s Store, v Versioned) Store {
	return &firstVersions{Store: s, v: v, first: map[string]ObjectVersion{}}
}

// Overwrites is a store that reads the first versions of objects (see
// WithFirstVersions) and can tell which of them someone overwrote or
// deleted since.
type Overwrites interface {
	// Overwritten lists, in lexical order, the names starting with prefix
	// whose first version has a newer version or a delete marker over it.
	Overwritten(ctx context.Context, prefix string) ([]string, error)
}

type firstVersions struct {
	Store
	v Versioned

	mu    sync.Mutex
	first map[string]ObjectVersion // resolved names; a first version never changes
}

var _ Overwrites = (*firstVersions)(nil)

// Unwrap returns the wrapped Store.
func (f *firstVersions) Unwrap() Store { return f.Store }

func (f *firstVersions) remember(ov ObjectVersion) {
	f.mu.Lock()
	f.first[ov.Name] = ov
	f.mu.Unlock()
}

// firsts calls fn with the first version of every name starting with
// prefix, and whether newer versions or delete markers hide it.
//
// Within a name, listings give versions newest first, but servers differ
// in where they put delete markers (versitygw lists a page's delete
// markers before its versions; the S3 API keeps them in a separate
// list): the versions of a name are grouped by name, and a delete marker
// seen for a name before its versions end marks it as hidden.
func (f *firstVersions) firsts(ctx context.Context, prefix string, fn func(ov ObjectVersion, hidden bool) error) error {
	var cur ObjectVersion
	var have bool
	var n int                   // versions of cur's name
	marked := map[string]bool{} // names with a delete marker seen
	flush := func() error {
		if !have {
			return nil
		}
		have = false
		hidden := n > 1 || marked[cur.Name]
		delete(marked, cur.Name)
		f.remember(cur)
		return fn(cur, hidden)
	}
	err := f.v.ListVersions(ctx, prefix, func(ov ObjectVersion) error {
		if ov.DeleteMarker {
			marked[ov.Name] = true
			return nil
		}
		if have && ov.Name != cur.Name {
			if err := flush(); err != nil {
				return err
			}
		}
		if !have {
			n = 0
		}
		cur, have = ov, true // newest first: the last one is the first written
		n++
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// List lists, for each name, its oldest stored version.
func (f *firstVersions) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	return f.firsts(ctx, prefix, func(ov ObjectVersion, _ bool) error { return fn(ov.ObjectInfo) })
}

// Overwritten lists the names whose first version is hidden.
func (f *firstVersions) Overwritten(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	err := f.firsts(ctx, prefix, func(ov ObjectVersion, hidden bool) error {
		if hidden {
			names = append(names, ov.Name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list versions %s: %w", prefix, err)
	}
	return names, nil
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
