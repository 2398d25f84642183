// Package source is the contract between a source kind and coffer's
// snapshot writer and reader. A kind (a folder, a PostgreSQL, MySQL or
// SQLite database; one package each under source/) streams its contents
// into a Writer during a backup, reads them back from a Reader during a
// restore, and is listed once, as a Kind, in the registry
// (source/registry).
//
// The package holds interfaces and plain types only: package backup
// implements Writer, package restore implements Reader, and neither knows
// any kind.
package source

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"
)

// Source is one thing to back up: a folder, a database. All sources of one
// backup form one snapshot.
type Source interface {
	// Name is the source's name in the snapshot ("metadb", "dags").
	Name() string
	// Kind is the source kind ("dir", "postgres", "mysql", "sqlite").
	Kind() string
	// Backup streams the source's contents into w. It returns once every
	// entry is written; the snapshot is published only if every source of
	// the snapshot returned nil.
	Backup(ctx context.Context, w Writer) error
}

// Entry is the metadata of one item inside a source. Path is slash
// separated, relative to the source root, without a leading slash ("." is
// the root itself).
type Entry struct {
	Path    string
	Type    EntryType
	Mode    fs.FileMode // permission bits plus setuid/setgid/sticky
	ModTime time.Time
	UID     int
	GID     int
	User    string
	Group   string
	// Size is the expected size of a file, or -1 when unknown (a dump
	// stream). The catalog records the number of bytes actually read.
	Size int64
	// Link is the target of a symlink.
	Link string
}

// EntryType is the type of an entry.
type EntryType string

const (
	TypeFile    EntryType = "file"
	TypeDir     EntryType = "dir"
	TypeSymlink EntryType = "symlink"
)

// Writer receives a source's entries during a backup. It is safe for use by
// one goroutine at a time.
type Writer interface {
	// WriteFile stores a file entry whose contents are read from r until
	// io.EOF. The contents are chunked, deduplicated, compressed and
	// encrypted; nothing is written to local disk.
	WriteFile(ctx context.Context, e Entry, r io.Reader) error
	// WriteEntry stores an entry without contents (a directory, a symlink).
	WriteEntry(ctx context.Context, e Entry) error
	// SetMeta records source-level metadata under key (for example a
	// database's fingerprints). v is encoded as JSON and kept only in the
	// encrypted catalog.
	SetMeta(key string, v any) error
	// Warn reports a problem that does not fail the backup unless the
	// backup is strict (for example a file that changed while read); then
	// it returns an error wrapping ErrStrict.
	Warn(format string, args ...any) error
}

// ErrStrict is wrapped by the error a Writer's Warn returns when the
// backup treats warnings as errors.
var ErrStrict = errors.New("warning is an error in a strict backup")

// WalkOrdered is implemented by a source that writes its entries in the
// order of a folder walk (filepath.WalkDir): the root first, each folder
// before its contents, a folder's names in byte order, so that paths
// sort with '/' below every other byte. The writer then checks each path
// against the folders still open instead of a set of every path, and
// refuses an entry out of that order.
type WalkOrdered interface {
	WalkOrdered() bool
}

// Skipper is an optional capability of a Writer, found by type assertion:
// a source that can leave out what it cannot read (a folder's unreadable
// file or subfolder) asks it instead of failing. Without it, the source
// fails.
type Skipper interface {
	// Skip records that path (relative to the source root, as in Entry)
	// was left out because of err. The snapshot is then saved but marked
	// incomplete. In a strict backup Skip returns an error wrapping
	// ErrStrict, and the source must fail with it.
	Skip(path string, err error) error
}

// FileState identifies one version of a file on disk: its size, times and
// inode. A file whose state is unchanged since the last backup need not be
// read again.
type FileState struct {
	Size  int64
	MTime int64
	CTime int64
	Ino   uint64
	Dev   uint64
	// ETag is an object's entity tag (bucket sources; MTime is then its
	// last-modified time).
	ETag string
}

// ChangeTracker is an optional capability of a Writer, found by type
// assertion: a folder source asks it before reading a file.
type ChangeTracker interface {
	// Unchanged records the file e without reading it when its state is
	// the one the last backup stored and every chunk it had is still in
	// the repository. It reports whether it did.
	Unchanged(e Entry, st FileState) (bool, error)
	// Remember notes the state of the file WriteFile just stored, for the
	// next backup.
	Remember(path string, st FileState)
}

// ObjectTracker is an optional capability of a Writer, found by type
// assertion: a source whose items carry metadata beyond an Entry (a
// bucket's objects: content type, user metadata) asks it, so that an
// unchanged item is neither read again nor asked for its metadata.
type ObjectTracker interface {
	// Known reports whether the item at path in state st is in the change
	// cache with every chunk it had still in the repository. It records
	// nothing: a source asks it ahead, to fetch only what changed.
	Known(path string, st FileState) bool
	// UnchangedMeta is ChangeTracker.Unchanged that also returns the
	// metadata RememberMeta stored with the item.
	UnchangedMeta(e Entry, st FileState) (meta []byte, ok bool, err error)
	// RememberMeta is ChangeTracker.Remember with the item's metadata.
	RememberMeta(path string, st FileState, meta []byte)
}

// Reader reads one source of a snapshot. Contents are decrypted and
// verified against the catalog's hashes as they are read: a Read that would
// return unverified bytes returns an error instead, and the final Read
// before io.EOF checks the whole-file hash.
type Reader interface {
	Name() string
	Kind() string
	// Meta decodes the metadata stored under key (see Writer.SetMeta) into
	// v. It returns an error wrapping ErrNoMeta when key is absent.
	Meta(key string, v any) error
	// Entries returns the source's entries in the order they were written.
	Entries() []Entry
	// Open streams the contents of the file at path.
	Open(ctx context.Context, path string) (io.ReadCloser, error)
}

// ErrNoMeta is wrapped when a source has no metadata under a key.
var ErrNoMeta = errors.New("no such metadata")

// Lookup returns the entry at path among a reader's entries.
func Lookup(r Reader, path string) (Entry, bool) {
	for _, e := range r.Entries() {
		if e.Path == path {
			return e, true
		}
	}
	return Entry{}, false
}

// TreeRestorer is an optional capability of a Reader, found by type
// assertion: a composite kind's restore asks it to write one of its folder
// parts to disk the way a folder restore does (verified contents, modes,
// times and links; all or nothing).
type TreeRestorer interface {
	// RestoreTree writes the entries under dir (dir itself becomes
	// target) into the folder target, which must not exist.
	RestoreTree(ctx context.Context, dir, target string) (files int, bytes int64, err error)
}

// Range is a byte range of a file: Length bytes from Offset.
type Range struct {
	Offset, Length int64
}

// RangeReader is an optional capability of a Reader, found by type
// assertion: a kind that knows where the parts of a stored file lie (the
// data blocks of a PostgreSQL dump) reads just those. Every byte it
// returns comes from chunks verified against their keyed ids, as Open's
// do; the whole-file hash, which needs every byte in order, is not
// checked, so the caller must check that the bytes are what it expects.
type RangeReader interface {
	// OpenRanges streams the bytes of the file at path in ranges, one
	// range after another, in the order given. A chunk that holds the
	// end of one range and the start of the next is read once.
	OpenRanges(ctx context.Context, path string, ranges []Range) (io.ReadCloser, error)
}
