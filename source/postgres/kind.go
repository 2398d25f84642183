// Package postgres is the PostgreSQL source kind: a database backed up with
// pg_dump (custom format, uncompressed) and fingerprinted in the same
// snapshot, restored with pg_restore into a new database, all or nothing.
package postgres

import (
	"context"

	"github.com/cofferhq/coffer/source"
)

// Kind is the PostgreSQL kind's registry entry.
var Kind = source.Kind{
	Name:     "postgres",
	Location: "a PostgreSQL DSN (URL, keyword/value, or SQLAlchemy URL postgresql+psycopg2://)",
	Checks:   true,
	Globals:  true,
	New: func(name string, spec source.Spec) (source.Source, error) {
		dsn, err := DSN(spec.Location)
		if err != nil {
			return nil, err
		}
		return &Source{SourceName: name, DSN: dsn, Checks: spec.Checks, Globals: spec.Globals}, nil
	},
	Target: "new database (DSN)",
	Drill: func(ctx context.Context, src source.Reader, target string, o source.DrillOptions) []source.DrillCheck {
		return Drill(ctx, src, target, o)
	},
	Restore: func(ctx context.Context, src source.Reader, target string, o source.RestoreOptions) (*source.Restored, error) {
		target, err := DSN(target)
		if err != nil {
			return nil, err
		}
		res, err := Restore(ctx, src, target, Options{Replace: o.Replace, Force: o.Force, Jobs: o.Jobs, MemoryBudget: o.MemoryBudget, Owner: o.Owner})
		if err != nil {
			return nil, err
		}
		return res.Restored(), nil
	},
}
