// Package storage is where coffer keeps its objects: a small, context-first,
// streaming interface with a local-filesystem backend (the embedded default)
// and an S3 backend, plus decorators (retry) that wrap any backend.
//
// Object names are slash-separated relative paths such as "config" or
// "data/3f/3fa9...". Backends never interpret them beyond that.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotExist is returned (wrapped) when an object does not exist.
var ErrNotExist = errors.New("object does not exist")

// ErrExists is returned (wrapped) by Put with PutOptions.IfNotExists when the
// object is already there.
var ErrExists = errors.New("object already exists")

// ErrDeleteDenied is returned (wrapped) by Delete and Purge when the store
// refuses to delete: credentials without delete rights (a backup host
// usually has none), a read-only folder.
var ErrDeleteDenied = errors.New("the store refuses to delete (these credentials may not delete objects)")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// ErrLockUnsupported is returned (wrapped) by Put with PutOptions.Retention
// on a store that cannot lock objects.
var ErrLockUnsupported = errors.New("object lock is not supported by this store")

// PutOptions tune a Put.
type PutOptions struct {
	// IfNotExists makes the write fail with ErrExists when the object is
	// already there (S3 If-None-Match: *, a hard link on local disks).
	IfNotExists bool
	// Retention, if set, locks the object until Retention.Until (S3 Object
	// Lock). A store that cannot lock objects refuses the write with
	// ErrLockUnsupported rather than store it unlocked.
	Retention *Retention
}

// LockMode is an S3 Object Lock retention mode.
type LockMode string

// Retention modes. In governance mode a principal granted
// s3:BypassGovernanceRetention may still delete a locked object version; in
// compliance mode nobody can, the bucket's owner included, until the
// retention ends.
const (
	LockGovernance LockMode = "governance"
	LockCompliance LockMode = "compliance"
)

// Valid reports whether m is a known mode.
func (m LockMode) Valid() bool { return m == LockGovernance || m == LockCompliance }

// Retention keeps an object version from being deleted or overwritten
// until a time.
type Retention struct {
	Mode  LockMode
	Until time.Time
}

// Store is a flat namespace of immutable objects.
//
// Put writes an object atomically: readers see either the old state or the
// whole new object, never a part of it. size is the number of bytes r yields,
// or -1 when unknown. If r is an io.Seeker, decorators may rewind and retry.
type Store interface {
	Put(ctx context.Context, name string, r io.Reader, size int64, opts PutOptions) error
	// Open returns length bytes of the object starting at off; length < 0
	// reads to the end. A missing object gives an error wrapping ErrNotExist.
	Open(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	// List calls fn for every object whose name starts with prefix, in
	// lexical order. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// Location is a human-readable URL of the store, without credentials.
	Location() string
}

// Optional capabilities. A decorator that wraps a Store has an Unwrap()
// Store method; As finds a capability through decorators.

// Locker is a store that can lock objects (S3 Object Lock).
type Locker interface {
	// ObjectLockEnabled reports whether objects written with a Retention
	// are locked: on S3, whether the bucket has object lock enabled.
	ObjectLockEnabled(ctx context.Context) (bool, error)
}

// ObjectVersion is one stored version of an object, or a delete marker.
type ObjectVersion struct {
	ObjectInfo
	VersionID    string
	DeleteMarker bool
}

// Versioned is a store that keeps the earlier versions of its objects (an
// S3 bucket with versioning, which object lock turns on).
type Versioned interface {
	// Versioning reports whether the store keeps versions.
	Versioning(ctx context.Context) (bool, error)
	// ListVersions calls fn for every version and delete marker of the
	// objects whose names start with prefix: the versions in lexical order
	// of names, newest first within a name; delete markers may come
	// anywhere before the versions of their page end (servers differ).
	ListVersions(ctx context.Context, prefix string, fn func(ObjectVersion) error) error
	// OpenVersion is Open of one version.
	OpenVersion(ctx context.Context, name, versionID string, off, length int64) (io.ReadCloser, error)
}

// Cleaner is a store that can remove what interrupted writes left behind:
// temporary files on a local disk, incomplete multipart uploads on S3.
type Cleaner interface {
	// CleanStale removes leftovers of writes that started more than
	// olderThan ago and returns how many it removed.
	CleanStale(ctx context.Context, olderThan time.Duration) (int, error)
}

// As returns the first store of type T found in s or in the stores it
// decorates (through their Unwrap() Store methods).
func As[T any](s Store) (T, bool) {
	for s != nil {
		if t, ok := s.(T); ok {
			return t, true
		}
		u, ok := s.(interface{ Unwrap() Store })
		if !ok {
			break
		}
		s = u.Unwrap()
	}
	var zero T
	return zero, false
}

// CleanStale calls s's Cleaner, if it has one; a store without one has
// nothing to clean.
func CleanStale(ctx context.Context, s Store, olderThan time.Duration) (int, error) {
	c, ok := As[Cleaner](s)
	if !ok {
		return 0, nil
	}
	return c.CleanStale(ctx, olderThan)
}

// Purger is a store that keeps versions and can remove them for good,
// around S3 Object Lock retention.
type Purger interface {
	// Purge removes every version of name that no retention locks, and
	// returns the latest retention end among the versions it left (zero
	// when it removed them all).
	Purge(ctx context.Context, name string) (lockedUntil time.Time, err error)
}

// Purge removes name for good: through s's Purger when it has one (every
// version whose retention has ended), else with Delete. It never tries to
// delete a locked version; lockedUntil says when the last one frees up.
func Purge(ctx context.Context, s Store, name string) (lockedUntil time.Time, err error) {
	if p, ok := As[Purger](s); ok {
		return p.Purge(ctx, name)
	}
	return time.Time{}, s.Delete(ctx, name)
}
