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

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// PutOptions tune a Put.
type PutOptions struct {
	// IfNotExists makes the write fail with ErrExists when the object is
	// already there (S3 If-None-Match: *, a hard link on local disks).
	IfNotExists bool
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
