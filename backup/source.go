package backup

import (
	"context"
	"io"
	"io/fs"
	"time"
)

// Source is one thing to back up: a folder, a database, a bucket. All sources
// of one backup call form one snapshot.
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
	// Warn reports a problem that does not fail the backup unless the user
	// asked for --strict (for example a file that changed while read).
	Warn(format string, args ...any) error
}
