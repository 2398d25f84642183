package sqlite

import (
	"context"
	"database/sql"

	"github.com/cofferhq/coffer/internal/fingerprint"
	"github.com/cofferhq/coffer/source"
)

// Drill runs a restore drill's SQLite checks on the database file target,
// where Restore restored src: PRAGMA integrity_check and the user checks.
func Drill(ctx context.Context, src source.Reader, target string, o source.DrillOptions) []source.DrillCheck {
	path, err := PathOf(target)
	if err != nil {
		return []source.DrillCheck{{Name: "engine", Result: source.DrillFail, Detail: err.Error()}}
	}
	db, err := Open(path, true)
	if err != nil {
		return []source.DrillCheck{{Name: "engine", Result: source.DrillFail, Detail: err.Error()}}
	}
	defer db.Close()
	out := []source.DrillCheck{{Name: "engine", Result: source.DrillPass, Detail: "PRAGMA integrity_check: ok"}}
	if err := sqliteIntegrity(ctx, db); err != nil {
		out[0].Result, out[0].Detail = source.DrillFail, err.Error()
	}
	if len(o.Checks) > 0 {
		var want fingerprint.Fingerprints
		_ = src.Meta(fingerprint.MetaKey, &want)
		out = append(out, source.RunUserChecks(o.Checks, want.Checks, func(q string) ([]string, error) {
			tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
			if err != nil {
				return nil, err
			}
			defer tx.Rollback()
			return sqliteText(ctx, tx, q)
		})...)
	}
	return out
}
