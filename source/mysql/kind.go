// Package mysql is the MySQL/MariaDB source kind: a database dumped as SQL
// statements by coffer itself, inside one consistent snapshot that also
// fingerprints it, and restored statement by statement into a new
// database, all or nothing.
package mysql

import (
	"context"

	"github.com/cofferhq/coffer/source"
)

// Kind is the MySQL kind's registry entry.
var Kind = source.Kind{
	Name:     "mysql",
	Location: "a MySQL/MariaDB DSN (user:password@tcp(host:port)/db or mysql://)",
	Checks:   true,
	New: func(name string, spec source.Spec) (source.Source, error) {
		return &Source{SourceName: name, DSN: spec.Location, Checks: spec.Checks}, nil
	},
	Target: "new database (DSN)",
	Drill:  Drill,
	Restore: func(ctx context.Context, src source.Reader, target string, o source.RestoreOptions) (*source.Restored, error) {
		res, err := Restore(ctx, src, target, Options{Replace: o.Replace, Force: o.Force, Owner: o.Owner})
		if err != nil {
			return nil, err
		}
		return res.Restored(), nil
	},
}
