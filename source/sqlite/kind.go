// Package sqlite is the SQLite source kind: a database copied with VACUUM
// INTO and fingerprinted inside one read transaction, and restored to a
// file that must pass an integrity check before it is renamed into place.
package sqlite

import (
	"context"

	"github.com/cofferhq/coffer/source"
)

// Kind is the SQLite kind's registry entry.
var Kind = source.Kind{
	Name:     "sqlite",
	Location: "a SQLite database file",
	Path:     true,
	Checks:   true,
	New: func(name string, spec source.Spec) (source.Source, error) {
		return &Source{SourceName: name, Path: spec.Location, Checks: spec.Checks}, nil
	},
	Target: "file",
	Restore: func(ctx context.Context, src source.Reader, target string, o source.RestoreOptions) (*source.Restored, error) {
		if err := Restore(ctx, src, target, o.Force); err != nil {
			return nil, err
		}
		return &source.Restored{Facts: map[string]any{"file": target}}, nil
	},
}
