package restore

import (
	"context"
	"io"

	"github.com/cofferhq/coffer/backup"
)

// SourceReader reads one source of a snapshot. Contents are decrypted and
// verified against the catalog's hashes as they are read: a Read that would
// return unverified bytes returns an error instead, and the final Read
// before io.EOF checks the whole-file hash.
type SourceReader interface {
	Name() string
	Kind() string
	// Meta decodes the metadata stored under key (see backup.Writer.SetMeta)
	// into v. It returns an error wrapping ErrNoMeta when key is absent.
	Meta(key string, v any) error
	// Entries returns the source's entries in the order they were written.
	Entries() []backup.Entry
	// Open streams the contents of the file at path.
	Open(ctx context.Context, path string) (io.ReadCloser, error)
}
