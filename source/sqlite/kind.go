// Package sqlite is the SQLite source kind: a database copied with VACUUM
// INTO and fingerprinted inside one read transaction, and restored to a
// file that must pass an integrity check before it is renamed into place.
package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cofferhq/coffer/source"
)

// Kind is the SQLite kind's registry entry.
var Kind = source.Kind{
	Name:     "sqlite",
	Location: "a SQLite database file (or a SQLAlchemy URL sqlite:////abs/path)",
	Path:     true,
	Checks:   true,
	New: func(name string, spec source.Spec) (source.Source, error) {
		path, err := PathOf(spec.Location)
		if err != nil {
			return nil, err
		}
		return &Source{SourceName: name, Path: path, Checks: spec.Checks}, nil
	},
	Target: "file",
	Drill:  Drill,
	Restore: func(ctx context.Context, src source.Reader, target string, o source.RestoreOptions) (*source.Restored, error) {
		target, err := PathOf(target)
		if err != nil {
			return nil, err
		}
		if err := Restore(ctx, src, target, o.Force); err != nil {
			return nil, err
		}
		return &source.Restored{Facts: map[string]any{"file": target}}, nil
	},
}

// PathOf returns the database file a location names: a path as it is, or
// the path of a SQLAlchemy URL (sqlite:////abs/path is /abs/path,
// sqlite:///rel/path is rel/path relative to the working folder).
func PathOf(location string) (string, error) {
	if !strings.HasPrefix(location, "sqlite:") && !strings.HasPrefix(location, "sqlite+") {
		return location, nil
	}
	u, err := source.ParseSQLAlchemyURL(location)
	if err != nil {
		return "", fmt.Errorf("sqlite: %w", err)
	}
	if u.Dialect != "sqlite" {
		return "", fmt.Errorf("sqlite: a %s URL names no SQLite database", u.Scheme())
	}
	if u.Host != "" || u.User != "" {
		return "", errors.New("sqlite: a sqlite URL has no host: write sqlite:////absolute/path or sqlite:///relative/path")
	}
	if u.Database == "" || u.Database == ":memory:" {
		return "", errors.New("sqlite: the URL names an in-memory database, which has nothing to back up")
	}
	return u.Database, nil
}
